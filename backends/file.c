/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - file backend: image files (and, until the blockdev backend
 * takes them, block devices through the page cache).
 *
 * A target that does not exist yet is not created by open(): refusals are
 * decided for every target before any of them is touched, so creation and
 * truncation happen in prepare().
 */
#include "config.h"

#include <errno.h>
#include <linux/falloc.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

struct file_dev {
	struct rc_dev dev; /* first: the core sees only this */
	int create;        /* target does not exist yet */
	int is_blk;        /* a block device */
	int fresh;         /* truncated by prepare(): all holes until written */
	int punch_off;     /* hole punching said EOPNOTSUPP once */
	int new_name;      /* created by prepare(): its directory is not
			    * yet synced */
};

static int file_probe(const char *path, int mode)
{
	/* The fallback for anything that is a path. */
	return 1;
}

static int parent_writable(const char *path)
{
	char *copy = strdup(path);
	struct stat st;
	int rc = 0;

	const char *dir;

	if (!copy)
		return -ENOMEM;
	dir = dirname(copy); /* once: it may change copy in place */
	if (stat(dir, &st) < 0)
		rc = -errno;
	else if (!S_ISDIR(st.st_mode))
		rc = -ENOTDIR;
	else if (access(dir, W_OK | X_OK) < 0)
		rc = -errno;
	free(copy);
	return rc;
}

static int file_open(const char *path, int mode, struct rc_dev **out,
		     char *why, size_t whylen)
{
	struct file_dev *f;
	struct stat st;
	int fd = -1, create = 0, rc;
	uint64_t size = 0;

	if (mode == RC_OPEN_SOURCE) {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return -errno;
	} else {
		/* Never through a symlink: a planted link would redirect a
		 * write meant for an image onto something else. */
		fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
		if (fd < 0 && errno == ENOENT) {
			rc = parent_writable(path);
			if (rc < 0)
				return rc;
			create = 1;
		} else if (fd < 0) {
			return errno == ELOOP ? -ELOOP : -errno;
		}
	}
	if (fd >= 0 && mode == RC_OPEN_TARGET && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		/* Every ringcopy writing a file holds this lock. */
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(fd);
		return rc;
	}
	if (fd >= 0) {
		if (fstat(fd, &st) < 0) {
			rc = -errno;
			close(fd);
			return rc;
		}
		if (S_ISDIR(st.st_mode)) {
			close(fd);
			return -EISDIR;
		}
		if (S_ISBLK(st.st_mode)) {
			if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
				rc = -errno;
				close(fd);
				return rc;
			}
		} else if (S_ISREG(st.st_mode)) {
			size = (uint64_t)st.st_size;
		} else {
			close(fd);
			return -EINVAL; /* pipes and ttys: the stdio backend */
		}
	}
	f = calloc(1, sizeof *f);
	if (!f) {
		if (fd >= 0)
			close(fd);
		return -ENOMEM;
	}
	rc_dev_init(&f->dev, &rc_file_backend, path, fd, size);
	f->create = create;
	f->is_blk = fd >= 0 && S_ISBLK(st.st_mode);
	if (f->is_blk)
		f->dev.caps |= RC_CAP_BLOCKDEV;
	else
		f->dev.caps |= RC_CAP_SPARSE | RC_CAP_ZERO;
	/* A regular-file target grows to the image: no size limit. */
	if (mode == RC_OPEN_TARGET && !f->is_blk)
		f->dev.size = UINT64_MAX;
	*out = &f->dev;
	return 0;
}

static int file_prepare(struct rc_dev *dev, uint64_t size)
{
	struct file_dev *f = (struct file_dev *)dev;

	if (f->create) {
		dev->fd = open(dev->path,
			       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
				       O_NOFOLLOW | O_NOCTTY,
			       0644);
		if (dev->fd < 0)
			return -errno;
		f->create = 0;
		f->new_name = 1;
		if (flock(dev->fd, LOCK_EX | LOCK_NB) < 0)
			return errno == EWOULDBLOCK ? -EBUSY : -errno;
	}
	if (!f->is_blk && size == RC_SIZE_UNKNOWN) {
		/* A stream: the file grows as it is written, and is cut to
		 * the stream's size at its end. */
		if (!(dev->flags & RC_DEV_KEEP) && ftruncate(dev->fd, 0) < 0)
			return -errno;
		dev->size = UINT64_MAX;
		f->fresh = !(dev->flags & RC_DEV_KEEP);
	} else if (!f->is_blk && (dev->flags & RC_DEV_KEEP)) {
		/* What it holds is compared block by block: only sized. */
		if (ftruncate(dev->fd, (off_t)size) < 0)
			return -errno;
		dev->size = size;
	} else if (!f->is_blk) {
		/* Empty, then the image size: every byte is a hole until a
		 * block is written, so zero blocks cost nothing. */
		if (ftruncate(dev->fd, 0) < 0 ||
		    ftruncate(dev->fd, (off_t)size) < 0)
			return -errno;
		dev->size = size;
		f->fresh = 1;
	}
	return 0;
}

/* A stream ended: a file grew as it was written, so its size is the
 * stream's, even where the stream ended in zeros (a disk keeps its own). */
static int file_finish(struct rc_dev *dev, uint64_t size)
{
	struct file_dev *f = (struct file_dev *)dev;

	if (f->is_blk || dev->fd < 0)
		return 0;
	if (ftruncate(dev->fd, (off_t)size) < 0)
		return -errno;
	return 0;
}

static ssize_t file_pread(struct rc_dev *dev, void *buf, size_t len,
			  uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(dev->fd, (char *)buf + done, len - done,
				  (off_t)(off + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break; /* end of file: the caller decides */
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static ssize_t file_pwrite(struct rc_dev *dev, const void *buf, size_t len,
			   uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(dev->fd, (const char *)buf + done,
				   len - done, (off_t)(off + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENOSPC;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int file_zero(struct rc_dev *dev, uint64_t off, uint64_t len)
{
	struct file_dev *f = (struct file_dev *)dev;

	if (f->is_blk)
		return -EOPNOTSUPP;
	if (f->fresh)
		return 0; /* a hole already, and written once at most */
	if (f->punch_off)
		return -EOPNOTSUPP;
	if (fallocate(dev->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno == EOPNOTSUPP || errno == ENOSYS) {
		f->punch_off = 1; /* off once, never retried */
		return -EOPNOTSUPP;
	}
	return -errno;
}

static int file_extents(struct rc_dev *dev, uint64_t off, uint64_t *data_off,
			uint64_t *data_len)
{
	off_t d, h;

	d = lseek(dev->fd, (off_t)off, SEEK_DATA);
	if (d < 0) {
		if (errno == ENXIO) { /* only a hole from off to the end */
			*data_off = dev->size;
			*data_len = 0;
			return 0;
		}
		return -errno; /* EINVAL: no SEEK_DATA here */
	}
	h = lseek(dev->fd, d, SEEK_HOLE);
	if (h < 0)
		return -errno;
	*data_off = (uint64_t)d;
	*data_len = (uint64_t)(h - d);
	return 0;
}

static int file_flush(struct rc_dev *dev)
{
	struct file_dev *f = (struct file_dev *)dev;
	int rc;

	/* fsync errors are final: the page cache may have dropped the
	 * failed pages, so a retry could report a success it has not. */
	if (dev->fd >= 0 && fsync(dev->fd) < 0)
		return -errno;
	if (f->new_name) {
		rc = rc_fsync_parent(dev->path);
		if (rc < 0)
			return rc;
		f->new_name = 0;
	}
	return 0;
}

static int file_open_readback(struct rc_dev *dev, struct rc_dev **out,
			      const char **how)
{
	struct file_dev *f = (struct file_dev *)dev, *r;
	struct stat a, b;
	bool direct = true;
	int fd, rc;

	*how = "direct";
	fd = open(dev->path, O_RDONLY | O_DIRECT | O_NOFOLLOW | O_CLOEXEC |
				     O_NOCTTY);
	if (fd < 0 && errno == EINVAL) {
		direct = false;
		/* No O_DIRECT here (tmpfs, some FUSE): the data was fsynced
		 * by the writer; drop the cached pages so the reads come
		 * from the storage where the filesystem allows it. */
		*how = "fadvise";
		fd = open(dev->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
					     O_NOCTTY);
		if (fd >= 0)
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	}
	if (fd < 0)
		return -errno;
	/* The path must still name what we wrote: a file swapped in
	 * meanwhile would be "verified" instead of the target. */
	if (dev->fd >= 0 &&
	    (fstat(fd, &a) < 0 || fstat(dev->fd, &b) < 0 ||
	     a.st_ino != b.st_ino || a.st_dev != b.st_dev ||
	     a.st_rdev != b.st_rdev)) {
		close(fd);
		return -ESTALE;
	}
	r = calloc(1, sizeof *r);
	if (!r) {
		close(fd);
		return -ENOMEM;
	}
	rc_dev_init(&r->dev, &rc_file_backend, dev->path, fd, dev->size);
	if (direct)
		r->dev.caps |= RC_CAP_DIRECT; /* reads past the page cache */
	r->is_blk = f->is_blk;
	r->dev.spec = NULL;
	rc = 0;
	*out = &r->dev;
	return rc;
}

static int file_close(struct rc_dev *dev)
{
	int rc = 0;

	if (dev->fd >= 0 && close(dev->fd) < 0 && errno != EINTR)
		rc = -errno;
	free(dev);
	return rc;
}

const struct rc_backend rc_file_backend = {
	.version = RC_BACKEND_VERSION,
	.name = "file",
	.prefix = "file:",
	.caps = RC_CAP_SEEKABLE | RC_CAP_SPARSE | RC_CAP_ZERO | RC_CAP_SOURCE |
		RC_CAP_TARGET,
	.probe = file_probe,
	.open = file_open,
	.prepare = file_prepare,
	.finish = file_finish,
	.pread = file_pread,
	.pwrite = file_pwrite,
	.zero = file_zero,
	.extents = file_extents,
	.flush = file_flush,
	.close = file_close,
	.open_readback = file_open_readback,
};
