/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - blockdev backend: raw block devices, O_DIRECT from the ring.
 *
 * Reads and writes go straight between the device and the page-aligned
 * ring slots with O_DIRECT.  Only an unaligned tail (an image whose size is
 * not a multiple of the logical block size, written to a larger device)
 * goes through a second, buffered descriptor; there is no silent fallback
 * for the whole copy.  Targets are opened O_EXCL, so a mounted or otherwise
 * claimed device is refused by the kernel itself.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "internal.h"

struct blockdev_dev {
	struct rc_dev dev;  /* first */
	int bfd;            /* buffered descriptor for unaligned I/O, or -1 */
	int mode;           /* RC_OPEN_* */
	unsigned lbs;       /* logical block size */
	bool zeroout_off;   /* BLKZEROOUT said ENOTTY/EOPNOTSUPP once */
	bool write_zeroes;  /* the device offloads zeroing */
};

static int blockdev_probe(const char *path, int mode)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISBLK(st.st_mode) ? 10 : 0;
}

/* Does the device zero ranges without writing them (sysfs)? */
static bool offloads_zeroes(dev_t rdev)
{
	char path[128];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof path,
		 "/sys/dev/block/%u:%u/queue/write_zeroes_max_bytes",
		 major(rdev), minor(rdev));
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v > 0;
}

static int blockdev_open(const char *path, int mode, struct rc_dev **out,
			 char *why, size_t whylen)
{
	struct blockdev_dev *b;
	struct stat st;
	uint64_t size;
	int fd, flags, ssz = 512, rc;

	flags = mode == RC_OPEN_SOURCE ? O_RDONLY : O_WRONLY | O_EXCL;
	fd = open(path, flags | O_DIRECT | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno; /* EBUSY: mounted, or claimed by someone */
	if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode)) {
		rc = fstat(fd, &st) < 0 ? -errno : -ENOTBLK;
		close(fd);
		return rc;
	}
	if (ioctl(fd, BLKGETSIZE64, &size) < 0 ||
	    ioctl(fd, BLKSSZGET, &ssz) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	b = calloc(1, sizeof *b);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	rc_dev_init(&b->dev, &rc_blockdev_backend, path, fd, size);
	b->bfd = -1;
	b->mode = mode;
	b->lbs = ssz > 0 ? (unsigned)ssz : 512;
	b->dev.sector = b->lbs;
	b->write_zeroes = offloads_zeroes(st.st_rdev);
	if (!b->write_zeroes)
		b->dev.caps &= ~RC_CAP_ZERO; /* zeroing would write anyway */
	*out = &b->dev;
	return 0;
}

static bool aligned(const struct blockdev_dev *b, const void *buf, size_t len,
		    uint64_t off)
{
	return (uintptr_t)buf % b->lbs == 0 && len % b->lbs == 0 &&
	       off % b->lbs == 0;
}

/* The buffered descriptor, opened on first need. */
static int buffered_fd(struct blockdev_dev *b)
{
	if (b->bfd < 0) {
		/* Not O_EXCL: our own O_DIRECT descriptor holds the claim. */
		b->bfd = open(b->dev.path,
			      (b->mode == RC_OPEN_SOURCE ? O_RDONLY : O_WRONLY) |
				      O_CLOEXEC | O_NOCTTY);
		if (b->bfd < 0)
			return -errno;
	}
	return b->bfd;
}

/* One transfer: O_DIRECT when aligned, the buffered descriptor if not. */
static ssize_t blockdev_io(struct rc_dev *dev, void *rbuf, const void *wbuf,
			   size_t len, uint64_t off)
{
	struct blockdev_dev *b = (struct blockdev_dev *)dev;
	int fd = dev->fd;
	ssize_t n;

	if (!aligned(b, rbuf ? rbuf : wbuf, len, off)) {
		fd = buffered_fd(b);
		if (fd < 0)
			return fd;
	}
	do {
		n = rbuf ? pread(fd, rbuf, len, (off_t)off)
			 : pwrite(fd, wbuf, len, (off_t)off);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t blockdev_pread(struct rc_dev *dev, void *buf, size_t len,
			      uint64_t off)
{
	return blockdev_io(dev, buf, NULL, len, off);
}

static ssize_t blockdev_pwrite(struct rc_dev *dev, const void *buf,
			       size_t len, uint64_t off)
{
	return blockdev_io(dev, NULL, buf, len, off);
}

static int blockdev_zero(struct rc_dev *dev, uint64_t off, uint64_t len)
{
	struct blockdev_dev *b = (struct blockdev_dev *)dev;
	uint64_t range[2] = { off, len };

	if (b->zeroout_off || off % b->lbs || len % b->lbs)
		return -EOPNOTSUPP; /* the core writes zeros */
	if (ioctl(dev->fd, BLKZEROOUT, range) == 0)
		return 0;
	if (errno == ENOTTY || errno == EOPNOTSUPP || errno == EINVAL) {
		/* Switched off once, never retried (the nbdcopy habit). */
		b->zeroout_off = true;
		return -EOPNOTSUPP;
	}
	return -errno;
}

static int blockdev_flush(struct rc_dev *dev)
{
	struct blockdev_dev *b = (struct blockdev_dev *)dev;

	if (b->bfd >= 0 && fsync(b->bfd) < 0)
		return -errno;
	if (fsync(dev->fd) < 0)
		return -errno;
	return 0;
}

static int blockdev_close(struct rc_dev *dev)
{
	struct blockdev_dev *b = (struct blockdev_dev *)dev;
	int rc = 0;

	if (b->bfd >= 0 && close(b->bfd) < 0 && errno != EINTR)
		rc = -errno;
	if (dev->fd >= 0 && close(dev->fd) < 0 && errno != EINTR && !rc)
		rc = -errno;
	free(b);
	return rc;
}

static int blockdev_open_readback(struct rc_dev *dev, struct rc_dev **out,
				  const char **how)
{
	struct blockdev_dev *b;
	struct stat a, w;
	int fd;

	fd = open(dev->path, O_RDONLY | O_DIRECT | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &a) < 0 || fstat(dev->fd, &w) < 0 ||
	    a.st_rdev != w.st_rdev) {
		close(fd);
		return -ESTALE;
	}
	b = calloc(1, sizeof *b);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	rc_dev_init(&b->dev, &rc_blockdev_backend, dev->path, fd, dev->size);
	b->bfd = -1;
	b->mode = RC_OPEN_SOURCE;
	b->lbs = ((struct blockdev_dev *)dev)->lbs;
	*how = "direct";
	*out = &b->dev;
	return 0;
}

const struct rc_backend rc_blockdev_backend = {
	.version = RC_BACKEND_VERSION,
	.name = "blockdev",
	.prefix = "dev:",
	.caps = RC_CAP_SEEKABLE | RC_CAP_ZERO | RC_CAP_DIRECT |
		RC_CAP_BLOCKDEV | RC_CAP_SOURCE | RC_CAP_TARGET,
	.probe = blockdev_probe,
	.open = blockdev_open,
	.pread = blockdev_pread,
	.pwrite = blockdev_pwrite,
	.zero = blockdev_zero,
	.flush = blockdev_flush,
	.close = blockdev_close,
	.open_readback = blockdev_open_readback,
};
