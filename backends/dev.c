/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - an open device: the range-checked rc_dev_* wrappers the core
 * calls, the helpers the backends build their devices with, and a layer's
 * forwarders.  Nothing here names a backend (backends/table.c does): the
 * backends call in here, never the other way, so the object call graph has
 * no cycle.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

int rc_source_identity(int fd, struct rc_source_id *id)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	memset(id, 0, sizeof *id);
	if (S_ISBLK(st.st_mode)) {
		id->kind = RC_SRC_BLOCK;
		id->id0 = st.st_rdev;
	} else if (S_ISREG(st.st_mode)) {
		id->kind = RC_SRC_FILE;
		id->id0 = st.st_dev;
		id->id1 = st.st_ino;
	} else {
		/* A pipe, FIFO or character device: read once.  Named all
		 * the same, so that a second copy of it is refused. */
		id->kind = RC_SRC_PIPE;
		id->id0 = st.st_dev;
		id->id1 = st.st_ino;
	}
	return 0;
}

int rc_describe_from(const char *err, char *buf, size_t len)
{
	if (!err[0])
		return -ENOENT;
	snprintf(buf, len, "%s", err);
	return 0;
}

int rc_fsync_parent(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

int rc_dev_identity(struct rc_dev *dev, struct rc_source_id *id)
{
	if (dev->be->identity)
		return dev->be->identity(dev, id);
	if (dev->fd < 0)
		return -EBADF;
	return rc_source_identity(dev->fd, id);
}

int rc_dev_init(struct rc_dev *dev, const struct rc_backend *be,
		const char *path, int fd, uint64_t size)
{
	dev->be = be;
	dev->spec = NULL;
	dev->path = path;
	dev->size = size;
	dev->caps = be->caps;
	dev->fd = fd;
	dev->sector = 512;
	dev->flags = 0;
	dev->unknown_size = be->unknown_size;
	dev->inner = NULL;
	return 0;
}

int rc_config_count(const char *value, unsigned long lo, unsigned long hi,
		    unsigned long *out)
{
	char *end;

	if (!value || *value < '0' || *value > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoul(value, &end, 10);
	if (errno || *end || *out < lo || *out > hi)
		return -EINVAL;
	return 0;
}

static int range_ok(const struct rc_dev *dev, size_t len, uint64_t off)
{
	if (dev->size == UINT64_MAX)
		return 1;
	return off <= dev->size && len <= dev->size - off;
}

/* Short counts are retried here, once for every backend: a read is short
 * only at the end of the data, a write never. */
ssize_t rc_dev_pread(struct rc_dev *dev, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	if (!range_ok(dev, len, off))
		return -ERANGE;
	while (done < len) {
		ssize_t n = dev->be->pread(dev, (char *)buf + done, len - done,
					   off + done);

		if (n < 0)
			return n;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

ssize_t rc_dev_pwrite(struct rc_dev *dev, const void *buf, size_t len,
		      uint64_t off)
{
	size_t done = 0;

	if (!range_ok(dev, len, off))
		return -ENOSPC;
	while (done < len) {
		ssize_t n = dev->be->pwrite(dev, (const char *)buf + done,
					    len - done, off + done);

		if (n < 0)
			return n;
		if (n == 0)
			return -ENOSPC;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int rc_dev_write_zeros(struct rc_dev *dev, uint64_t off, uint64_t len)
{
	/* Aligned, so that O_DIRECT devices can take it as it is. */
	static const unsigned char zeros[65536] __attribute__((aligned(4096)));

	if (!range_ok(dev, len, off))
		return -ENOSPC;
	while (len) {
		size_t n = len < sizeof zeros ? (size_t)len : sizeof zeros;
		ssize_t w = rc_dev_pwrite(dev, zeros, n, off);

		if (w < 0)
			return (int)w;
		off += n;
		len -= n;
	}
	return 0;
}

int rc_dev_zero(struct rc_dev *dev, uint64_t off, uint64_t len)
{
	if (!range_ok(dev, len, off))
		return -ENOSPC;
	if (dev->be->zero) {
		int rc = dev->be->zero(dev, off, len);

		if (rc != -EOPNOTSUPP && rc != -ENOTTY)
			return rc;
	}
	return rc_dev_write_zeros(dev, off, len);
}

void rc_holes_init(struct rc_holes *c)
{
	memset(c, 0, sizeof *c);
}

int rc_is_hole(struct rc_dev *dev, struct rc_holes *c, uint64_t off,
	       uint64_t len)
{
	uint64_t d, dl;

	if (c->off || !dev->be->extents || !(dev->caps & RC_CAP_SPARSE))
		return 0;
	if (off >= c->hole_start && off + len <= c->hole_end)
		return 1;
	if (off >= c->data_start && off < c->data_end)
		return 0;
	if (dev->be->extents(dev, off, &d, &dl) < 0) {
		c->off = 1;
		return 0;
	}
	if (dl == 0 || d > off) {
		/* A hole from off up to the next data (or the end). */
		c->hole_start = off;
		c->hole_end = dl == 0 ? UINT64_MAX : d;
		if (off + len <= c->hole_end)
			return 1;
	}
	if (dl) {
		c->data_start = d;
		c->data_end = d + dl;
	}
	return 0;
}

int rc_dev_flush(struct rc_dev *dev)
{
	return dev->be->flush ? dev->be->flush(dev) : 0;
}

int rc_dev_finish(struct rc_dev *dev, uint64_t size)
{
	return dev->be->finish ? dev->be->finish(dev, size) : 0;
}

void rc_dev_prefetch(struct rc_dev *dev, uint64_t off, uint64_t len)
{
	if (dev->be->prefetch)
		dev->be->prefetch(dev, off, len);
}

int rc_next_prepare(struct rc_dev *dev, uint64_t size)
{
	struct rc_dev *inner = dev->inner;
	int rc;

	inner->flags = dev->flags;
	rc = inner->be->prepare ? inner->be->prepare(inner, size) : 0;
	/* A file created or resized below: the layer shows what it is. */
	dev->fd = inner->fd;
	dev->size = inner->size;
	return rc;
}

int rc_next_finish(struct rc_dev *dev, uint64_t size)
{
	return rc_dev_finish(dev->inner, size);
}

int rc_next_open_readback(struct rc_dev *dev, struct rc_dev **out,
			  const char **how)
{
	struct rc_dev *inner = dev->inner;

	if (!inner->be->open_readback)
		return -EOPNOTSUPP;
	return inner->be->open_readback(inner, out, how);
}


void rc_dev_describe(struct rc_dev *dev, const char *fallback, char *buf,
		     size_t len)
{
	if (!dev->be->describe_error ||
	    dev->be->describe_error(dev, buf, len) < 0)
		snprintf(buf, len, "%s", fallback);
}

int rc_dev_close(struct rc_dev *dev)
{
	char *spec;
	int rc;

	if (!dev)
		return 0;
	spec = dev->spec;
	rc = dev->be->close(dev);
	free(spec);
	return rc;
}
