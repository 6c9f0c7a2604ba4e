/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - zstd backend: writes compressed images.
 *
 * As a target (`.zst' suffix or `zstd:'), blocks must arrive in order;
 * compression uses one worker per online CPU and pledges the image size in
 * the frame header, so the result is a ringcopy source and `zstd -d' input.
 * Verification decompresses the target and hashes what comes out.
 *
 * It decodes nothing itself (issue 26: one zstd decoder).  A `.zst' file
 * named as a source is read by the decode layer, which reads its frames'
 * content sizes as it reads an xz index; `zstd:FILE' as a source, and the
 * read-back of a target, are the decode layer over the file, told it is
 * zstd (rc_decode_zstd).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "internal.h"

struct zstd_dev {
	struct rc_dev dev; /* first */
	int mode;
	uint64_t out_pos;  /* bytes taken so far */
	char err[200];     /* the last error, for messages */
	ZSTD_CCtx *cctx;
	unsigned char *obuf;
	size_t obuf_len;
	bool create;
	bool new_name;     /* created: its directory not yet synced */
	int level;
};

static int zstd_level = 3; /* --compress-level, through zstd_config() */

/* The options this backend owns: the compression level of a target. */
static int zstd_config(const char *key, const char *value)
{
	unsigned long n;

	if (strcmp(key, "compress-level") != 0)
		return -ENOENT;
	if (rc_config_count(value, 1, 19, &n) < 0)
		return -EINVAL;
	zstd_level = (int)n;
	return 0;
}

static int zstd_probe(const char *path, int mode)
{
	size_t n = strlen(path);

	/* A source's content is judged by the decode layer. */
	if (mode == RC_OPEN_SOURCE)
		return 0;
	return n > 4 && !strcmp(path + n - 4, ".zst") ? 20 : 0;
}

/* A source named zstd: the file, read through the decode layer as zstd
 * (what it decodes, and where it refuses damaged frames). */
static int open_source(const char *path, struct rc_dev **out, char *why,
		       size_t whylen)
{
	struct rc_dev *raw;
	int rc = rc_file_backend.open(path, RC_OPEN_SOURCE, &raw, why, whylen);

	if (rc < 0)
		return rc == -EISDIR ? -EINVAL : rc;
	rc = rc_decode_zstd(&raw, why, whylen);
	if (rc < 0) {
		rc_dev_close(raw);
		return rc;
	}
	*out = raw;
	return 0;
}

static int zstd_open(const char *path, int mode, struct rc_dev **out,
		     char *why, size_t whylen)
{
	struct zstd_dev *z;
	int rc = 0, fd;

	if (mode == RC_OPEN_SOURCE)
		return open_source(path, out, why, whylen);
	z = calloc(1, sizeof *z);
	if (!z)
		return -ENOMEM;
	rc_dev_init(&z->dev, &rc_zstd_backend, path, -1, 0);
	z->mode = mode;
	z->dev.caps = RC_CAP_SEQUENTIAL | RC_CAP_DECODES | RC_CAP_TARGET;
	fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		z->create = true;
	} else if (fd < 0) {
		rc = -errno;
	} else if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(fd);
	} else {
		z->dev.fd = fd;
	}
	if (rc < 0) {
		free(z);
		return rc;
	}
	z->dev.size = UINT64_MAX;
	z->level = zstd_level;
	*out = &z->dev;
	return 0;
}

static int write_all(int fd, const void *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p = (const char *)p + w;
		len -= (size_t)w;
	}
	return 0;
}

static int zstd_prepare(struct rc_dev *dev, uint64_t size)
{
	struct zstd_dev *z = (struct zstd_dev *)dev;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (z->create) {
		dev->fd = open(dev->path, O_WRONLY | O_CREAT | O_EXCL |
						  O_CLOEXEC | O_NOFOLLOW,
			       0644);
		if (dev->fd < 0)
			return -errno;
		z->create = false;
		z->new_name = true;
	}
	if (ftruncate(dev->fd, 0) < 0)
		return -errno;
	z->cctx = ZSTD_createCCtx();
	z->obuf_len = ZSTD_CStreamOutSize();
	z->obuf = malloc(z->obuf_len);
	if (!z->cctx || !z->obuf)
		return -ENOMEM;
	ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, z->level);
	ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1);
	/* Workers: one per online CPU (ignored by a single-threaded lib). */
	ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_nbWorkers,
			       cpus > 1 ? (int)cpus : 0);
	/* A stream's size is not known: the frame then does not say it. */
	if (size != RC_SIZE_UNKNOWN &&
	    ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(z->cctx, size)))
		return -EINVAL;
	dev->size = size;
	return 0;
}

static int deflate(struct zstd_dev *z, const void *buf, size_t len,
		   ZSTD_EndDirective mode)
{
	ZSTD_inBuffer i = { buf, len, 0 };
	size_t r;
	int rc;

	do {
		ZSTD_outBuffer o = { z->obuf, z->obuf_len, 0 };

		r = ZSTD_compressStream2(z->cctx, &o, &i, mode);
		if (ZSTD_isError(r)) {
			snprintf(z->err, sizeof z->err, "%s",
				 ZSTD_getErrorName(r));
			return -EIO;
		}
		rc = write_all(z->dev.fd, z->obuf, o.pos);
		if (rc < 0)
			return rc;
	} while (mode == ZSTD_e_continue ? i.pos < i.size : r != 0);
	return 0;
}

static ssize_t zstd_pwrite(struct rc_dev *dev, const void *buf, size_t len,
			   uint64_t off)
{
	struct zstd_dev *z = (struct zstd_dev *)dev;
	int rc;

	if (off != z->out_pos)
		return -ESPIPE; /* sequential only: the core never does this */
	rc = deflate(z, buf, len, ZSTD_e_continue);
	if (rc < 0)
		return rc;
	z->out_pos += len;
	return (ssize_t)len;
}

static int zstd_flush(struct rc_dev *dev)
{
	struct zstd_dev *z = (struct zstd_dev *)dev;
	int rc;

	if (z->mode != RC_OPEN_TARGET || !z->cctx)
		return 0;
	rc = deflate(z, NULL, 0, ZSTD_e_end);
	if (rc < 0)
		return rc;
	if (fsync(dev->fd) < 0)
		return -errno;
	if (z->new_name) {
		rc = rc_fsync_parent(dev->path);
		if (rc < 0)
			return rc;
		z->new_name = false;
	}
	return 0;
}

static int zstd_close(struct rc_dev *dev)
{
	struct zstd_dev *z = (struct zstd_dev *)dev;
	int rc = 0;

	ZSTD_freeCCtx(z->cctx);
	free(z->obuf);
	if (dev->fd >= 0 && close(dev->fd) < 0 && errno != EINTR)
		rc = -errno;
	free(z);
	return rc;
}

static int zstd_open_readback(struct rc_dev *dev, struct rc_dev **out,
			      const char **how)
{
	struct stat a, b;
	char why[256];
	int rc;

	/* Past the page cache where the filesystem lets us, then through
	 * the decompressor: what a user restoring the image would get. */
	if (dev->fd >= 0)
		posix_fadvise(dev->fd, 0, 0, POSIX_FADV_DONTNEED);
	rc = open_source(dev->path, out, why, sizeof why);
	if (rc < 0)
		return rc;
	if (dev->fd >= 0 && (fstat(dev->fd, &a) < 0 || fstat((*out)->fd, &b) < 0 ||
			     a.st_ino != b.st_ino || a.st_dev != b.st_dev)) {
		rc_dev_close(*out);
		return -ESTALE;
	}
	*how = "decompress";
	return 0;
}

static int zstd_describe(struct rc_dev *dev, char *buf, size_t len)
{
	return rc_describe_from(((struct zstd_dev *)dev)->err, buf, len);
}

const struct rc_backend rc_zstd_backend = {
	.version = RC_BACKEND_VERSION,
	.name = "zstd",
	.prefix = "zstd:",
	.caps = RC_CAP_SEQUENTIAL | RC_CAP_SOURCE | RC_CAP_TARGET |
		RC_CAP_DECODES,
	.probe = zstd_probe,
	.open = zstd_open,
	.prepare = zstd_prepare,
	.pwrite = zstd_pwrite,
	.flush = zstd_flush,
	.close = zstd_close,
	.open_readback = zstd_open_readback,
	.describe_error = zstd_describe,
	.config = zstd_config,
};
