/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - zstd backend: compressed images, sequential both ways.
 *
 * As a source (`.zst' magic, or the `zstd:' prefix) the file is mapped and
 * decompressed straight into the ring slots; the image size is the sum of
 * the frames' content sizes, so multi-frame files from zstd -T and pzstd
 * (with their skippable frames) work.  Reading an offset below the current
 * position (the wrap to block 0) restarts decompression from the start;
 * an offset above it (a producer that jumps) decompresses and discards.
 *
 * As a target (`.zst' suffix or `zstd:'), blocks must arrive in order;
 * compression uses one worker per online CPU and pledges the image size in
 * the frame header, so the result is a ringcopy source and `zstd -d' input.
 * Verification decompresses the target and hashes what comes out.
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "internal.h"

struct zstd_dev {
	struct rc_dev dev; /* first */
	int mode;
	/* source */
	const unsigned char *map; /* the compressed file, mapped */
	size_t map_len;
	ZSTD_DCtx *dctx;
	size_t in_pos;     /* compressed bytes consumed */
	uint64_t out_pos;  /* decompressed bytes delivered */
	char err[200];     /* the last error, for messages */
	/* target */
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

static int frames_size(const unsigned char *p, size_t len, uint64_t *size,
		       char *err, size_t errlen);

/* A regular file whose first frame, past any skippable frames (pzstd
 * writes one first), is a zstd frame, and whose frames say how large the
 * image is or are damaged (refused when opened, with the offset).  One
 * whose frames do not say is read as a stream by the decode layer. */
static bool is_zstd_image(const char *path)
{
	struct stat st;
	unsigned char m[8];
	uint64_t at = 0, size;
	bool yes = false;
	char err[8];
	ssize_t got;
	void *map;
	int fd, k;

	/* Only a regular file may be peeked at: reading a FIFO to probe it
	 * would steal its first bytes from whoever reads it. */
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return false;
	for (k = 0; k < 64 && (got = pread(fd, m, 8, (off_t)at)) >= 4; k++) {
		if (got == 8 && (m[0] & 0xf0) == 0x50 && m[1] == 0x2a && m[2] == 0x4d &&
		    m[3] == 0x18) {
			at += 8 + ((uint64_t)m[4] | (uint64_t)m[5] << 8 |
				   (uint64_t)m[6] << 16 | (uint64_t)m[7] << 24);
			continue;
		}
		yes = m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f &&
		      m[3] == 0xfd;
		break;
	}
	if (yes && fstat(fd, &st) == 0 && st.st_size > 0) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE,
			   fd, 0);
		if (map != MAP_FAILED) {
			yes = frames_size(map, (size_t)st.st_size, &size, err,
					  sizeof err) < 0 ||
			      size != UINT64_MAX;
			munmap(map, (size_t)st.st_size);
		}
	}
	close(fd);
	return yes;
}

static int zstd_probe(const char *path, int mode)
{
	size_t n = strlen(path);

	if (mode == RC_OPEN_SOURCE)
		return is_zstd_image(path) ? 20 : 0;
	return n > 4 && !strcmp(path + n - 4, ".zst") ? 20 : 0;
}

/* Sum the frames' content sizes; UINT64_MAX when a frame does not say. */
static int frames_size(const unsigned char *p, size_t len, uint64_t *size,
		       char *err, size_t errlen)
{
	size_t off = 0;
	uint64_t total = 0;

	while (off < len) {
		unsigned long long c = ZSTD_getFrameContentSize(p + off,
								len - off);
		size_t fl = ZSTD_findFrameCompressedSize(p + off, len - off);

		if (c == ZSTD_CONTENTSIZE_UNKNOWN) {
			*size = UINT64_MAX; /* --size must say */
			return 0;
		}
		if (ZSTD_isError(fl) &&
		    ZSTD_getErrorCode(fl) == ZSTD_error_srcSize_wrong) {
			snprintf(err, errlen,
				 "zstd data truncated: the frame at compressed offset %zu is cut short by the end of the file at %zu",
				 off, len);
			return -EBADMSG;
		}
		if (ZSTD_isError(fl) || c == ZSTD_CONTENTSIZE_ERROR) {
			snprintf(err, errlen,
				 "zstd data corrupt: no valid zstd frame at compressed offset %zu: %s",
				 off, ZSTD_isError(fl) ? ZSTD_getErrorName(fl)
						       : "bad frame header");
			return -EBADMSG;
		}
		total += c; /* skippable frames count 0 */
		off += fl;
	}
	*size = total;
	return 0;
}

static int open_source(struct zstd_dev *z, const char *path)
{
	struct stat st;
	void *m;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		rc = fstat(fd, &st) < 0 ? -errno : -EINVAL;
		close(fd);
		return rc;
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED) {
		rc = -errno;
		close(fd);
		return rc;
	}
	madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
	z->map = m;
	z->map_len = (size_t)st.st_size;
	z->dev.fd = fd;
	rc = frames_size(z->map, z->map_len, &z->dev.size, z->err,
			 sizeof z->err);
	if (rc < 0)
		return rc;
	z->dctx = ZSTD_createDCtx();
	return z->dctx ? 0 : -ENOMEM;
}

static int zstd_close(struct rc_dev *dev);

static int zstd_open(const char *path, int mode, struct rc_dev **out,
		     char *why, size_t whylen)
{
	struct zstd_dev *z = calloc(1, sizeof *z);
	int rc = 0, fd;

	if (!z)
		return -ENOMEM;
	rc_dev_init(&z->dev, &rc_zstd_backend, path, -1, 0);
	z->mode = mode;
	z->dev.caps = RC_CAP_SEQUENTIAL | RC_CAP_DECODES |
		      (mode == RC_OPEN_SOURCE ? RC_CAP_SOURCE : RC_CAP_TARGET);
	if (mode == RC_OPEN_SOURCE) {
		rc = open_source(z, path);
		if (rc < 0) {
			snprintf(why, whylen, "%s", z->err);
			zstd_close(&z->dev);
			return rc;
		}
	} else {
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
	}
	*out = &z->dev;
	return 0;
}

/* Restart decompression from the first byte (the wrap to block 0). */
static void rewind_source(struct zstd_dev *z)
{
	ZSTD_DCtx_reset(z->dctx, ZSTD_reset_session_only);
	z->in_pos = 0;
	z->out_pos = 0;
}

/* Decompress exactly len bytes into buf (NULL: discard). */
static ssize_t inflate(struct zstd_dev *z, void *buf, size_t len)
{
	static unsigned char scratch[1 << 16];
	size_t done = 0;

	while (done < len) {
		size_t want = len - done, r;
		ZSTD_outBuffer o = { scratch, want, 0 };
		ZSTD_inBuffer i = { z->map, z->map_len, z->in_pos };

		/* NULL: skip forward, through the scratch buffer. */
		if (buf)
			o.dst = (char *)buf + done;
		else if (want > sizeof scratch)
			o.size = sizeof scratch;
		r = ZSTD_decompressStream(z->dctx, &o, &i);

		if (ZSTD_isError(r) &&
		    ZSTD_getErrorCode(r) == ZSTD_error_checksum_wrong) {
			snprintf(z->err, sizeof z->err,
				 "zstd data corrupt: %s at compressed offset %zu (uncompressed %" PRIu64 "); the damage is before it",
				 ZSTD_getErrorName(r), i.pos, z->out_pos);
			return -EBADMSG;
		}
		if (ZSTD_isError(r)) {
			snprintf(z->err, sizeof z->err,
				 "zstd data corrupt at compressed offset %zu (uncompressed %" PRIu64 "): %s",
				 z->in_pos, z->out_pos, ZSTD_getErrorName(r));
			return -EBADMSG;
		}
		z->in_pos = i.pos;
		z->out_pos += o.pos;
		done += o.pos;
		if (i.pos == i.size && r == 0) {
			/* The last frame is complete: the end of the data. */
			snprintf(z->err, sizeof z->err,
				 "ends at uncompressed offset %" PRIu64,
				 z->out_pos);
			break;
		}
		if (i.pos == i.size && o.pos == 0) {
			snprintf(z->err, sizeof z->err,
				 "zstd data truncated at compressed offset %zu (uncompressed %" PRIu64 "): the last frame is incomplete",
				 z->in_pos, z->out_pos);
			return -EBADMSG;
		}
	}
	return (ssize_t)done;
}

/* The frames said how large the image is: the image read to that size,
 * the rest of the file must decode to nothing more and end a frame
 * cleanly (zstd's own check of a frame's size runs only at its end: a
 * frame that under-states its size would otherwise be copied short). */
static int check_end(struct zstd_dev *z)
{
	static unsigned char scratch[1 << 16];
	size_t r = 0;

	while (z->in_pos < z->map_len) {
		ZSTD_outBuffer o = { scratch, sizeof scratch, 0 };
		ZSTD_inBuffer i = { z->map, z->map_len, z->in_pos };

		r = ZSTD_decompressStream(z->dctx, &o, &i);
		if (ZSTD_isError(r)) {
			snprintf(z->err, sizeof z->err,
				 "zstd data corrupt at compressed offset %zu (uncompressed %" PRIu64 "): %s",
				 z->in_pos, z->out_pos, ZSTD_getErrorName(r));
			return -EBADMSG;
		}
		if (o.pos) {
			snprintf(z->err, sizeof z->err,
				 "zstd data holds more than the %" PRIu64 " bytes its frames say (more at compressed offset %zu)",
				 z->dev.size, z->in_pos);
			return -EBADMSG;
		}
		if (i.pos == z->in_pos && r != 0)
			break;
		z->in_pos = i.pos;
	}
	if (r != 0) {
		snprintf(z->err, sizeof z->err,
			 "zstd data truncated at compressed offset %zu (uncompressed %" PRIu64 "): the last frame is incomplete",
			 z->in_pos, z->out_pos);
		return -EBADMSG;
	}
	return 0;
}

static ssize_t zstd_pread(struct rc_dev *dev, void *buf, size_t len,
			  uint64_t off)
{
	struct zstd_dev *z = (struct zstd_dev *)dev;
	ssize_t n;

	if (off < z->out_pos)
		rewind_source(z);
	if (off > z->out_pos) {
		n = inflate(z, NULL, off - z->out_pos);
		if (n < 0)
			return n;
		if (z->out_pos != off)
			return 0; /* ended before off */
	}
	if (z->dev.size != UINT64_MAX && len > z->dev.size - off)
		len = (size_t)(z->dev.size - off);
	n = inflate(z, buf, len);
	if (n >= 0 && z->dev.size != UINT64_MAX && z->out_pos == z->dev.size) {
		int rc = check_end(z);

		if (rc < 0)
			return rc;
	}
	return n;
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

	if (z->map)
		munmap((void *)z->map, z->map_len);
	ZSTD_freeDCtx(z->dctx);
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
	struct zstd_dev *z;
	struct stat a, b;
	char why[sizeof z->err];
	int rc;

	/* Past the page cache where the filesystem lets us, then through
	 * the decompressor: what a user restoring the image would get. */
	if (dev->fd >= 0)
		posix_fadvise(dev->fd, 0, 0, POSIX_FADV_DONTNEED);
	rc = zstd_open(dev->path, RC_OPEN_SOURCE, out, why, sizeof why);
	if (rc < 0)
		return rc;
	z = (struct zstd_dev *)*out;
	if (dev->fd >= 0 && (fstat(dev->fd, &a) < 0 || fstat(z->dev.fd, &b) < 0 ||
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

/* The decoded image of the file: it meets other copies of the same .zst
 * (read again from its first frame at the wrap), never a copy of its raw
 * bytes named file:x.zst. */
static int zstd_identity(struct rc_dev *dev, struct rc_source_id *id)
{
	struct stat st;

	if (dev->fd < 0 || fstat(dev->fd, &st) < 0)
		return -EBADF;
	memset(id, 0, sizeof *id);
	id->kind = S_ISREG(st.st_mode) ? RC_SRC_DECODED : RC_SRC_PIPE;
	id->id0 = st.st_dev;
	id->id1 = st.st_ino;
	return 0;
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
	.pread = zstd_pread,
	.pwrite = zstd_pwrite,
	.flush = zstd_flush,
	.close = zstd_close,
	.open_readback = zstd_open_readback,
	.describe_error = zstd_describe,
	.identity = zstd_identity,
	.config = zstd_config,
	.unknown_size = "its zstd frames do not say how large the image is (made with --no-content-size, or streamed)",
};
