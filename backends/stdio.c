/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - stdio backend: `-' is standard input as a source and standard
 * output as a target; a FIFO or character device given by path is treated
 * the same way.  All are sequential: a pipe is read once, so no copy can
 * join it late, and standard output takes blocks in order only.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

struct stdio_dev {
	struct rc_dev dev; /* first */
	uint64_t pos;      /* bytes read or written so far */
};

static int stdio_probe(const char *path, int mode)
{
	struct stat st;

	if (strcmp(path, "-") == 0)
		return 100;
	return stat(path, &st) == 0 &&
			       (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))
		       ? 50
		       : 0;
}

static int stdio_open(const char *path, int mode, struct rc_dev **out,
		      char *why, size_t whylen)
{
	struct stdio_dev *s;
	struct stat st;
	int fd;

	if (strcmp(path, "-") == 0) {
		/* A descriptor of our own above 2: the producer points 0-2
		 * at /dev/null. */
		fd = fcntl(mode == RC_OPEN_SOURCE ? 0 : 1, F_DUPFD_CLOEXEC, 3);
	} else if (mode == RC_OPEN_SOURCE) {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	} else {
		/* A target: never through a symlink, and never blocked in
		 * open() by a FIFO nobody reads (ENXIO says so at once). */
		fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW |
					O_NONBLOCK);
		if (fd < 0 && errno == ENXIO) {
			snprintf(why, whylen,
				 "a FIFO with no reader");
			return -ENXIO;
		}
	}
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -errno;
	}
	if (mode == RC_OPEN_TARGET && strcmp(path, "-") != 0) {
		/* What we opened must be what the probe saw: a FIFO or a
		 * character device, not a file swapped in meanwhile. */
		if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)) {
			close(fd);
			snprintf(why, whylen,
				 "it changed while it was examined (now not a FIFO or character device)");
			return -EINVAL;
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	}
	s = calloc(1, sizeof *s);
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	/* A regular file on standard input is read from where its offset
	 * stands (a shell may have consumed a header), to its end. */
	if (mode == RC_OPEN_SOURCE && S_ISREG(st.st_mode)) {
		off_t at = lseek(fd, 0, SEEK_CUR);

		s->pos = 0;
		rc_dev_init(&s->dev, &rc_stdio_backend, path, fd,
			    (uint64_t)(st.st_size - (at > 0 && at <= st.st_size
							     ? at : 0)));
	} else {
		rc_dev_init(&s->dev, &rc_stdio_backend, path, fd, UINT64_MAX);
	}
	s->dev.caps = RC_CAP_SEQUENTIAL |
		      (mode == RC_OPEN_SOURCE ? RC_CAP_SOURCE : RC_CAP_TARGET);
	*out = &s->dev;
	return 0;
}

static ssize_t stdio_pread(struct rc_dev *dev, void *buf, size_t len,
			   uint64_t off)
{
	struct stdio_dev *s = (struct stdio_dev *)dev;
	ssize_t n;

	if (off != s->pos)
		return -ESPIPE; /* a pipe cannot be read twice */
	do {
		n = read(dev->fd, buf, len);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	s->pos += (uint64_t)n;
	return n;
}

static ssize_t stdio_pwrite(struct rc_dev *dev, const void *buf, size_t len,
			    uint64_t off)
{
	struct stdio_dev *s = (struct stdio_dev *)dev;
	ssize_t n;

	if (off != s->pos)
		return -ESPIPE;
	do {
		n = write(dev->fd, buf, len);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	s->pos += (uint64_t)n;
	return n;
}

static int stdio_flush(struct rc_dev *dev)
{
	/* Pipes and terminals cannot be synced; a file can. */
	if (fsync(dev->fd) < 0 && errno != EINVAL && errno != EROFS)
		return -errno;
	return 0;
}

static int stdio_close(struct rc_dev *dev)
{
	int rc = 0;

	if (dev->fd >= 0 && close(dev->fd) < 0 && errno != EINTR)
		rc = -errno;
	free(dev);
	return rc;
}

/* Read once, whatever it is: even a regular file on standard input is
 * streamed from its offset, so it never meets the ring of the file named
 * as a source (which reads it again at the wrap). */
static int stdio_identity(struct rc_dev *dev, struct rc_source_id *id)
{
	struct stat st;

	if (fstat(dev->fd, &st) < 0)
		return -errno;
	memset(id, 0, sizeof *id);
	id->kind = RC_SRC_PIPE;
	id->id0 = st.st_dev;
	id->id1 = st.st_ino;
	return 0;
}

const struct rc_backend rc_stdio_backend = {
	.version = RC_BACKEND_VERSION,
	.name = "stdio",
	.prefix = NULL,
	.caps = RC_CAP_SEQUENTIAL | RC_CAP_SOURCE | RC_CAP_TARGET,
	.probe = stdio_probe,
	.open = stdio_open,
	.pread = stdio_pread,
	.pwrite = stdio_pwrite,
	.flush = stdio_flush,
	.close = stdio_close,
	.identity = stdio_identity,
	.unknown_size = "it is a pipe, whose size nobody knows in advance",
};
