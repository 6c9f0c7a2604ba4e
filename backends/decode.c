/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - compressed sources recognised by content: a layer over any
 * source device (a file, standard input, a FIFO, an NBD export) that
 * decompresses xz, gzip, bzip2, lz4 and zstd streams.
 *
 * The first bytes are read into the layer's input buffer and their magic
 * decides the format; they are then fed to the decoder, so nothing is lost
 * from a pipe.  A source with no known magic that cannot be read twice
 * keeps the layer as a pass-through (its first bytes are in the buffer);
 * one that can be read again is returned as it was.  Reading is in order;
 * offset 0 again restarts decoding where the source can be read again
 * (the wrap to block 0 of a late joiner).  The uncompressed size is
 * known in advance only from an xz file's index or a zstd file's frame
 * headers (xz_size, zstd_size: this is the one zstd decoder; the zstd
 * backend only writes); otherwise the image is read to its end, as a
 * stream.  Errors name the compressed offset.
 *
 * A layer (dev.inner is the device below), stacked by the core
 * (rc_source_open) or by the zstd backend for `zstd:' (rc_decode_zstd),
 * never opened by a spec: it has no open() and is not in the table.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bzlib.h>
#include <lz4.h>
#include <lz4frame.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "internal.h"

#define IN_SIZE (256u << 10)

enum fmt { F_RAW, F_XZ, F_GZIP, F_BZIP2, F_LZ4, F_ZSTD,
	   F_LZ4L /* lz4 legacy frames (lz4 -l) */,
	   F_PENDING /* not looked at yet: a source read once */ };

static const char *const fmt_name[] = { "raw", "xz", "gzip", "bzip2",
					 "lz4", "zstd", "lz4", "?" };

/* lz4 legacy frames: after the magic, blocks of at most 8 MiB each
 * compressed on its own, each behind its compressed size (32 bits, little
 * endian); no checksum, no end mark but the end of the input or another
 * frame's magic (lz4's own CLI reads them so). */
#define LZ4L_BLOCK (8u << 20)
#define LZ4L_BOUND ((size_t)LZ4_COMPRESSBOUND(LZ4L_BLOCK))

struct decode_dev {
	struct rc_dev dev;     /* first; dev.inner holds the compressed
				* bytes */
	enum fmt fmt;
	unsigned char *in;
	size_t in_len, in_pos; /* buffered input, and how much is used */
	uint64_t in_off;       /* inner offset of in[in_len] */
	bool in_eof;           /* the inner source has no more */
	bool ended;            /* a stream ended and no input follows */
	bool between;          /* at a stream boundary (gzip, bzip2) */
	uint64_t out_pos;      /* uncompressed bytes delivered */
	union {
		lzma_stream x;
		z_stream g;
		bz_stream b;
	} s;
	LZ4F_dctx *lz4;
	ZSTD_DCtx *zstd;
	bool live;             /* the decoder state is initialised */
	struct {               /* lz4 legacy: one block decoded at a time */
		unsigned char *in, *out;
		size_t in_len, in_want; /* gathered, and the block's size */
		size_t out_len, out_pos;
		bool have_size; /* in_want is known */
	} l;
	uint64_t size;         /* uncompressed, or RC_SIZE_UNKNOWN */
	bool named;            /* read as zstd because it was named so
				* (zstd:, a zstd target's read-back) */
	char err[240];
};

static uint64_t consumed(const struct decode_dev *d)
{
	return d->in_off - (d->in_len - d->in_pos);
}

static const struct {
	enum fmt fmt;
	unsigned char len;
	const char *magic;
} magics[] = {
	{ F_XZ, 6, "\xfd" "7zXZ\0" },
	{ F_GZIP, 3, "\x1f\x8b\x08" },
	{ F_BZIP2, 3, "BZh" }, /* and a digit, 1-9 */
	{ F_LZ4, 4, "\x04\x22\x4d\x18" },
	{ F_LZ4L, 4, "\x02\x21\x4c\x18" },
	{ F_ZSTD, 4, "\x28\xb5\x2f\xfd" },
};

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* A skippable frame (zstd's and lz4's: magic 0x184D2A50-5F). */
static bool skippable(const unsigned char *m, size_t n)
{
	return n >= 4 && (m[0] & 0xf0) == 0x50 && m[1] == 0x2a &&
	       m[2] == 0x4d && m[3] == 0x18;
}

/* The format whose magic m[0..n) begins with.  all: m holds the whole
 * source, so a source shorter than a magic but holding at least three of
 * its bytes is that format cut short (decoded, so failed), never raw. */
static enum fmt magic_at(const unsigned char *m, size_t n, bool all)
{
	size_t i;

	for (i = 0; i < sizeof magics / sizeof magics[0]; i++) {
		size_t len = magics[i].len;

		if (magics[i].fmt == F_BZIP2 && n > 3 &&
		    (m[3] < '1' || m[3] > '9'))
			continue;
		if (n >= len && !memcmp(m, magics[i].magic, len))
			return magics[i].fmt;
		if (all && n < len && n >= 3 && !memcmp(m, magics[i].magic, n))
			return magics[i].fmt;
	}
	return F_RAW;
}

/* The format of a source whose first n bytes are m (all: the whole
 * source).  Skippable frames before the first frame are looked past: lz4
 * data behind them is lz4, anything else zstd (whose decoder then judges
 * it, as zstd -d does). */
static enum fmt sniff(const unsigned char *m, size_t n, bool all)
{
	size_t p = 0;
	bool skipped = false;
	enum fmt f;

	while (n - p >= 8 && skippable(m + p, n - p)) {
		uint64_t next = (uint64_t)p + 8 + le32(m + p + 4);

		skipped = true;
		if (next >= n)
			return F_ZSTD; /* nothing more to look at here */
		p = (size_t)next;
	}
	if (!skipped && (skippable(m, n) ||
			 (all && n == 3 && (m[0] & 0xf0) == 0x50 && m[1] == 0x2a &&
			  m[2] == 0x4d)))
		return F_ZSTD; /* a skippable frame cut short */
	f = magic_at(m + p, n - p, all);
	if (!skipped)
		return f;
	return f == F_LZ4 || f == F_LZ4L ? F_LZ4 : F_ZSTD;
}

static void end_decoder(struct decode_dev *d)
{
	if (!d->live)
		return;
	switch (d->fmt) {
	case F_XZ:
		lzma_end(&d->s.x);
		break;
	case F_GZIP:
		inflateEnd(&d->s.g);
		break;
	case F_BZIP2:
		BZ2_bzDecompressEnd(&d->s.b);
		break;
	default:
		break;
	}
	d->live = false;
}

static int start_decoder(struct decode_dev *d)
{
	int ok;

	end_decoder(d);
	memset(&d->s, 0, sizeof d->s);
	switch (d->fmt) {
	case F_XZ:
		d->s.x = (lzma_stream)LZMA_STREAM_INIT;
		/* One stream at a time: what follows a stream is looked
		 * at by next_stream(), as for the other formats. */
		ok = lzma_stream_decoder(&d->s.x, UINT64_MAX,
					 LZMA_TELL_UNSUPPORTED_CHECK) ==
		     LZMA_OK;
		break;
	case F_GZIP:
		ok = inflateInit2(&d->s.g, 16 + MAX_WBITS) == Z_OK;
		break;
	case F_BZIP2:
		ok = BZ2_bzDecompressInit(&d->s.b, 0, 0) == BZ_OK;
		break;
	case F_LZ4:
		ok = d->lz4 || !LZ4F_isError(LZ4F_createDecompressionContext(
				       &d->lz4, LZ4F_VERSION));
		if (ok)
			LZ4F_resetDecompressionContext(d->lz4);
		break;
	case F_ZSTD:
		if (!d->zstd)
			d->zstd = ZSTD_createDCtx();
		ok = d->zstd != NULL;
		if (ok)
			ZSTD_DCtx_reset(d->zstd, ZSTD_reset_session_only);
		break;
	case F_LZ4L:
		if (!d->l.in)
			d->l.in = malloc(LZ4L_BOUND);
		if (!d->l.out)
			d->l.out = malloc(LZ4L_BLOCK);
		ok = d->l.in && d->l.out;
		d->l.in_len = d->l.in_want = d->l.out_len = d->l.out_pos = 0;
		d->l.have_size = false;
		break;
	default:
		ok = 1;
	}
	if (!ok)
		return -ENOMEM;
	d->live = true;
	return 0;
}

/* Up to want bytes of the inner source at off: never past the end of a
 * source whose size is known (the range check refuses that). */
static ssize_t read_inner(struct rc_dev *inner, unsigned char *buf,
			  size_t want, uint64_t off)
{
	if (inner->size != UINT64_MAX) {
		if (off >= inner->size)
			return 0;
		if (inner->size - off < want)
			want = (size_t)(inner->size - off);
	}
	return rc_dev_pread(inner, buf, want, off);
}

/* Read more input; 0, or -errno from the inner source. */
static int refill(struct decode_dev *d)
{
	ssize_t n;

	if (d->in_pos < d->in_len || d->in_eof)
		return 0;
	n = read_inner(d->dev.inner, d->in, IN_SIZE, d->in_off);
	if (n < 0) {
		rc_dev_describe(d->dev.inner, strerror((int)-n), d->err,
				sizeof d->err);
		return (int)n;
	}
	d->in_len = (size_t)n;
	d->in_pos = 0;
	d->in_off += (uint64_t)n;
	if ((size_t)n < IN_SIZE)
		d->in_eof = true;
	return 0;
}

/* At least n bytes buffered from in_pos on, unless the input ends first:
 * what is left moves to the front and more is read behind it.  0, or
 * -errno from the inner source. */
static int fill(struct decode_dev *d, size_t n)
{
	size_t left = d->in_len - d->in_pos;
	ssize_t got;

	while (left < n && !d->in_eof) {
		memmove(d->in, d->in + d->in_pos, left);
		d->in_pos = 0;
		d->in_len = left;
		got = read_inner(d->dev.inner, d->in + left, IN_SIZE - left,
				 d->in_off);
		if (got < 0) {
			rc_dev_describe(d->dev.inner, strerror((int)-got), d->err,
					sizeof d->err);
			return (int)got;
		}
		if (got == 0)
			d->in_eof = true;
		d->in_len += (size_t)got;
		d->in_off += (uint64_t)got;
		left = d->in_len;
	}
	return 0;
}

static int corrupt(struct decode_dev *d, const char *what)
{
	snprintf(d->err, sizeof d->err,
		 "%s data corrupt at compressed offset %" PRIu64
		 " (uncompressed %" PRIu64 "): %s",
		 fmt_name[d->fmt], consumed(d), d->out_pos, what);
	return -EBADMSG;
}

/* A check that covers what came before it failed (gzip's CRC32, zstd's
 * and lz4's checksums): the offset is where it was checked, not where
 * the damage is. */
static int check_failed(struct decode_dev *d, const char *what)
{
	snprintf(d->err, sizeof d->err,
		 "%s data corrupt: %s at compressed offset %" PRIu64
		 " (uncompressed %" PRIu64 "); the damage is before it",
		 fmt_name[d->fmt], what, consumed(d), d->out_pos);
	return -EBADMSG;
}

/* What follows the end of a stream is no stream of its format. */
static int garbage(struct decode_dev *d)
{
	snprintf(d->err, sizeof d->err,
		 "%s data ends at compressed offset %" PRIu64
		 " (uncompressed %" PRIu64 "), followed by bytes that are not %s data (trailing garbage)",
		 fmt_name[d->fmt], consumed(d), d->out_pos, fmt_name[d->fmt]);
	return -EBADMSG;
}

static int truncated(struct decode_dev *d)
{
	snprintf(d->err, sizeof d->err,
		 "%s data truncated at compressed offset %" PRIu64
		 " (uncompressed %" PRIu64 "): the input ended inside a stream",
		 fmt_name[d->fmt], consumed(d), d->out_pos);
	return -EBADMSG;
}

/* lz4 legacy frames, a block at a time: the rest of the block decoded
 * last, else the next block's size, else its bytes gathered and decoded.
 * Where a block's size should be, the end of the input ends the data,
 * another frame's magic starts that frame.  0, or -errno. */
static int lz4l_step(struct decode_dev *d, unsigned char *out, size_t cap,
		     size_t *made)
{
	size_t avail, take;
	uint32_t v;
	int rc, n;

	if (d->l.out_pos < d->l.out_len) {
		take = d->l.out_len - d->l.out_pos;
		take = take < cap ? take : cap;
		memcpy(out, d->l.out + d->l.out_pos, take);
		d->l.out_pos += take;
		*made = take;
		return 0;
	}
	if (!d->l.have_size) {
		rc = fill(d, 4);
		if (rc < 0)
			return rc;
		avail = d->in_len - d->in_pos;
		if (!avail) {
			d->ended = true;
			return 0;
		}
		if (avail < 4) {
			d->in_pos += avail;
			return truncated(d);
		}
		v = le32(d->in + d->in_pos);
		if (v == 0x184C2102) { /* another legacy frame */
			d->in_pos += 4;
			return 0;
		}
		if (v == 0x184D2204 || skippable(d->in + d->in_pos, 4)) {
			d->fmt = F_LZ4; /* an lz4 frame follows */
			return start_decoder(d);
		}
		if (v > LZ4L_BOUND)
			return garbage(d);
		d->in_pos += 4;
		d->l.in_want = v;
		d->l.in_len = 0;
		d->l.have_size = true;
	}
	avail = d->in_len - d->in_pos;
	take = d->l.in_want - d->l.in_len;
	take = take < avail ? take : avail;
	memcpy(d->l.in + d->l.in_len, d->in + d->in_pos, take);
	d->l.in_len += take;
	d->in_pos += take;
	if (d->l.in_len < d->l.in_want)
		return !take && d->in_eof ? truncated(d) : 0;
	n = LZ4_decompress_safe((const char *)d->l.in, (char *)d->l.out,
				(int)d->l.in_want, (int)LZ4L_BLOCK);
	d->l.have_size = false;
	if (n < 0)
		return corrupt(d, "a legacy block does not decode");
	d->l.out_len = (size_t)n;
	d->l.out_pos = 0;
	return 0;
}

/* After the end of a stream (an xz stream, a gzip member, a bzip2
 * stream, an lz4 or zstd frame): the end of the input ends the data;
 * another stream of the format starts again (xz after its stream
 * padding, gzip after trailing zeros only, as gzip -d does); anything
 * else is trailing garbage.  0 (d->ended at the end), or -errno. */
static int next_stream(struct decode_dev *d)
{
	bool zeros = false; /* gzip: zeros seen, so only zeros may follow */

	for (;;) {
		const unsigned char *m;
		size_t avail, z;
		enum fmt f;
		int rc = fill(d, 12);

		if (rc < 0)
			return rc;
		m = d->in + d->in_pos;
		avail = d->in_len - d->in_pos;
		if (!avail) {
			d->ended = true;
			return 0;
		}
		for (z = 0; z < avail && !m[z]; z++)
			;
		if (d->fmt == F_XZ && z >= 4) {
			d->in_pos += z - z % 4; /* stream padding */
			continue;
		}
		if (d->fmt == F_GZIP && z == avail) {
			d->in_pos += z; /* zeros, to the end or more zeros */
			zeros = true;
			continue;
		}
		if (zeros)
			return garbage(d); /* zeros then anything: not gzip's */
		f = magic_at(m, avail, false);
		if ((d->fmt == F_LZ4 || d->fmt == F_ZSTD) &&
		    skippable(m, avail))
			f = d->fmt;
		if (d->fmt == F_LZ4 && f == F_LZ4L)
			d->fmt = F_LZ4L;
		if (f != d->fmt)
			return garbage(d);
		return start_decoder(d);
	}
}

/* One decoding step of each format: from in[0..avail) (the unused input)
 * into out[0..cap): *used input bytes taken, *made bytes made,
 * *stream_end when a stream (an xz stream, a gzip member, a bzip2 stream,
 * an lz4 or zstd frame) ended.  0, or -EBADMSG with d->err said (the
 * input taken counted first, so the offset is where the error is). */
struct step_io {
	const unsigned char *in;
	size_t avail, used;
	unsigned char *out;
	size_t cap, made;
	bool stream_end;
};

static int step_xz(struct decode_dev *d, struct step_io *io)
{
	lzma_ret r;

	d->s.x.next_in = io->in;
	d->s.x.avail_in = io->avail;
	d->s.x.next_out = io->out;
	d->s.x.avail_out = io->cap;
	r = lzma_code(&d->s.x, d->in_eof && io->avail == 0 ? LZMA_FINISH
							   : LZMA_RUN);
	io->used = io->avail - d->s.x.avail_in;
	io->made = io->cap - d->s.x.avail_out;
	if (r == LZMA_STREAM_END) {
		io->stream_end = true;
	} else if (r == LZMA_BUF_ERROR && d->in_eof && !io->avail) {
		d->in_pos += io->used;
		return truncated(d);
	} else if (r != LZMA_OK) {
		d->in_pos += io->used;
		return corrupt(d, r == LZMA_DATA_ERROR ? "data error"
				  : r == LZMA_UNSUPPORTED_CHECK ? "its integrity check is of a kind this liblzma cannot verify"
				  : r == LZMA_FORMAT_ERROR ? "not xz data"
				  : r == LZMA_MEM_ERROR ? "out of memory"
				  : "decoder error");
	}
	return 0;
}

static int step_gzip(struct decode_dev *d, struct step_io *io)
{
	int r;

	d->s.g.next_in = (unsigned char *)io->in;
	d->s.g.avail_in = (uInt)io->avail;
	d->s.g.next_out = io->out;
	d->s.g.avail_out = (uInt)io->cap;
	r = inflate(&d->s.g, Z_NO_FLUSH);
	io->used = io->avail - d->s.g.avail_in;
	io->made = io->cap - d->s.g.avail_out;
	if (r == Z_STREAM_END) {
		io->stream_end = true;
	} else if (r == Z_BUF_ERROR && !io->avail && d->in_eof) {
		return truncated(d);
	} else if (r != Z_OK && r != Z_BUF_ERROR) {
		d->in_pos += io->used;
		if (d->s.g.msg && strstr(d->s.g.msg, "check"))
			return check_failed(d, d->s.g.msg);
		return corrupt(d, d->s.g.msg ? d->s.g.msg : "inflate error");
	}
	return 0;
}

static int step_bzip2(struct decode_dev *d, struct step_io *io)
{
	int r;

	d->s.b.next_in = (char *)io->in;
	d->s.b.avail_in = (unsigned)io->avail;
	d->s.b.next_out = (char *)io->out;
	d->s.b.avail_out = (unsigned)io->cap;
	r = BZ2_bzDecompress(&d->s.b);
	io->used = io->avail - d->s.b.avail_in;
	io->made = io->cap - d->s.b.avail_out;
	if (r == BZ_STREAM_END) {
		io->stream_end = true;
	} else if (r != BZ_OK) {
		d->in_pos += io->used;
		return corrupt(d, r == BZ_DATA_ERROR ? "data error"
				  : r == BZ_DATA_ERROR_MAGIC ? "not bzip2 data"
				  : "decoder error");
	} else if (!io->avail && !io->made && d->in_eof) {
		return truncated(d);
	}
	return 0;
}

static int step_lz4(struct decode_dev *d, struct step_io *io)
{
	size_t o = io->cap, i = io->avail, r;

	r = LZ4F_decompress(d->lz4, io->out, &o, io->in, &i, NULL);
	io->used = i;
	io->made = o;
	if (LZ4F_isError(r)) {
		d->in_pos += io->used;
		if (strstr(LZ4F_getErrorName(r), "hecksum"))
			return check_failed(d, LZ4F_getErrorName(r));
		return corrupt(d, LZ4F_getErrorName(r));
	}
	/* 0: a frame is complete; frames may follow. */
	io->stream_end = r == 0;
	if (r && !io->avail && !o && d->in_eof)
		return truncated(d);
	return 0;
}

static int step_zstd(struct decode_dev *d, struct step_io *io)
{
	ZSTD_inBuffer ib = { io->in, io->avail, 0 };
	ZSTD_outBuffer ob = { io->out, io->cap, 0 };
	size_t r = ZSTD_decompressStream(d->zstd, &ob, &ib);

	io->used = ib.pos;
	io->made = ob.pos;
	if (ZSTD_isError(r)) {
		d->in_pos += io->used;
		if (ZSTD_getErrorCode(r) == ZSTD_error_checksum_wrong)
			return check_failed(d, ZSTD_getErrorName(r));
		return corrupt(d, ZSTD_getErrorName(r));
	}
	io->stream_end = r == 0;
	if (r && !io->avail && !ob.pos && d->in_eof)
		return truncated(d);
	return 0;
}

/* Not compressed (a pass-through over a source read once): copied. */
static int step_raw(struct decode_dev *d, struct step_io *io)
{
	size_t n = io->avail < io->cap ? io->avail : io->cap;

	(void)d;
	memcpy(io->out, io->in, n);
	io->used = io->made = n;
	io->stream_end = true;
	return 0;
}

/* One decoding step into out[0..cap): *made bytes; *stream_end when a
 * stream (gzip member, bzip2 stream) ended.  0 or -EBADMSG. */
static int step(struct decode_dev *d, unsigned char *out, size_t cap,
		size_t *made, bool *stream_end)
{
	struct step_io io = {
		.in = d->in + d->in_pos,
		.avail = d->in_len - d->in_pos,
		.out = out,
		.cap = cap,
	};
	int rc;

	*made = 0;
	*stream_end = false;
	switch (d->fmt) {
	case F_XZ:
		rc = step_xz(d, &io);
		break;
	case F_GZIP:
		rc = step_gzip(d, &io);
		break;
	case F_BZIP2:
		rc = step_bzip2(d, &io);
		break;
	case F_LZ4:
		rc = step_lz4(d, &io);
		break;
	case F_ZSTD:
		rc = step_zstd(d, &io);
		break;
	case F_LZ4L:
		return lz4l_step(d, out, cap, made);
	default:
		rc = step_raw(d, &io);
		break;
	}
	if (rc < 0)
		return rc;
	*made = io.made;
	*stream_end = io.stream_end;
	d->in_pos += io.used;
	return 0;
}

/* Decompress up to len bytes into buf: the count, short only at the end
 * of the data; or -errno. */
static ssize_t decode_into(struct decode_dev *d, unsigned char *buf,
			   size_t len)
{
	size_t done = 0;

	while (done < len && !d->ended) {
		size_t made;
		bool stream_end;
		int rc = refill(d);

		if (rc < 0)
			return rc;
		/* A source read once is looked at when it is first read (by
		 * the producer), never when it is opened: an invocation
		 * that is then refused must not take its first bytes. */
		if (d->fmt == F_PENDING) {
			rc = fill(d, 64);
			if (rc < 0)
				return rc;
			d->fmt = sniff(d->in, d->in_len, d->in_eof);
			rc = start_decoder(d);
			if (rc < 0)
				return rc;
		}
		/* After a stream: another one, the end, or garbage. */
		if (d->between) {
			rc = next_stream(d);
			if (rc < 0)
				return rc;
			d->between = false;
			continue;
		}
		rc = step(d, buf + done, len - done, &made, &stream_end);
		if (rc < 0)
			return rc;
		done += made;
		d->out_pos += made;
		if (d->fmt == F_RAW && d->in_pos == d->in_len && d->in_eof) {
			d->ended = true;
			break;
		}
		if (stream_end && d->fmt != F_RAW)
			d->between = true;
		if (!stream_end && !made && d->in_pos == d->in_len &&
		    d->in_eof && d->fmt != F_XZ && d->fmt != F_LZ4L &&
		    !d->ended)
			return truncated(d);
	}
	return (ssize_t)done;
}

/* Back to the first byte, where the source can be read again. */
static int rewind_to_start(struct decode_dev *d)
{
	if (!(d->dev.inner->caps & RC_CAP_SEEKABLE) ||
	    (d->dev.inner->caps & RC_CAP_SEQUENTIAL))
		return -ESPIPE;
	d->in_len = d->in_pos = 0;
	d->in_off = 0;
	d->in_eof = d->ended = d->between = false;
	d->out_pos = 0;
	return start_decoder(d);
}

/* An xz file of known size (its index's): the data decoded is what the
 * index says, no more, and the file ends where its last stream does. */
/* What says the size: xz's index, zstd's frames. */
static const char *size_says(const struct decode_dev *d)
{
	return d->fmt == F_XZ ? "its index says" : "its frames say";
}

static int short_of_index(struct decode_dev *d)
{
	snprintf(d->err, sizeof d->err,
		 "%s data ends at compressed offset %" PRIu64
		 " after %" PRIu64 " bytes, but %s %" PRIu64,
		 fmt_name[d->fmt], consumed(d), d->out_pos, size_says(d),
		 d->size);
	return -EBADMSG;
}

static int check_end(struct decode_dev *d)
{
	unsigned char extra[4096];
	ssize_t n;

	while (!d->ended) {
		n = decode_into(d, extra, sizeof extra);
		if (n < 0)
			return (int)n;
		if (n > 0) {
			snprintf(d->err, sizeof d->err,
				 "%s data holds more than the %" PRIu64
				 " bytes %s (more at compressed offset %" PRIu64 ")",
				 fmt_name[d->fmt], d->size, size_says(d),
				 consumed(d));
			return -EBADMSG;
		}
	}
	return 0;
}

static ssize_t decode_pread(struct rc_dev *dev, void *buf, size_t len,
			    uint64_t off)
{
	struct decode_dev *d = (struct decode_dev *)dev;
	static unsigned char scratch[1 << 16];
	ssize_t n;
	int rc;

	/* Backwards only to the start (the wrap), where the source can be
	 * read again; forwards by decoding what is skipped. */
	if (d->size != RC_SIZE_UNKNOWN && off >= d->size)
		return 0;
	if (off < d->out_pos) {
		rc = off == 0 ? rewind_to_start(d) : -ESPIPE;
		if (rc < 0)
			return rc;
	}
	while (off > d->out_pos && !d->ended) {
		uint64_t gap = off - d->out_pos;

		n = decode_into(d, scratch, gap < sizeof scratch
						    ? (size_t)gap
						    : sizeof scratch);
		if (n < 0)
			return n;
	}
	if (off != d->out_pos)
		return 0; /* the data ended before off */
	if (d->size == RC_SIZE_UNKNOWN)
		return decode_into(d, buf, len);
	if (len > d->size - off)
		len = (size_t)(d->size - off);
	n = decode_into(d, buf, len);
	if (n >= 0 && d->out_pos < d->size && d->ended)
		return short_of_index(d);
	if (n >= 0 && d->out_pos == d->size) {
		rc = check_end(d);
		if (rc < 0)
			return rc;
	}
	return n;
}

/* The uncompressed size of an xz file from its index (the Stream Footer
 * and Index at its end: a few reads, no decompression), where the file
 * can be read at any offset.  0, or -errno (unknown). */
static int xz_size(struct decode_dev *d, uint64_t *size)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_index *idx = NULL;
	uint64_t at = 0, total = d->dev.inner->size;
	unsigned char *buf = malloc(IN_SIZE);
	lzma_ret r;
	int rc = -EINVAL;

	if (!buf || lzma_file_info_decoder(&s, &idx, UINT64_MAX, total) !=
			    LZMA_OK) {
		free(buf);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t n = read_inner(d->dev.inner, buf, IN_SIZE, at);

		if (n <= 0)
			break;
		s.next_in = buf;
		s.avail_in = (size_t)n;
		r = lzma_code(&s, LZMA_RUN);
		if (r == LZMA_SEEK_NEEDED) {
			at = s.seek_pos;
			continue;
		}
		if (r == LZMA_STREAM_END) {
			*size = lzma_index_uncompressed_size(idx);
			rc = 0;
			break;
		}
		if (r != LZMA_OK)
			break;
		at += (uint64_t)n;
	}
	if (idx)
		lzma_index_end(idx, NULL);
	lzma_end(&s);
	free(buf);
	return rc;
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

/* Whether the first frame past any skippable frames (pzstd writes one
 * first; at most 64 are looked past) is a zstd frame: only then do the
 * frames say the size. */
static bool zstd_first(const unsigned char *p, size_t len)
{
	uint64_t at = 0;
	int k;

	for (k = 0; k < 64 && at + 4 <= len; k++) {
		if (at + 8 <= len && skippable(p + at, 8)) {
			at += 8 + le32(p + at + 4);
			continue;
		}
		return !memcmp(p + at, "\x28\xb5\x2f\xfd", 4);
	}
	return false;
}

/* The uncompressed size of a zstd file from its frames' headers, the way
 * xz_size() reads the index: the file mapped, each frame's content size
 * summed and its compressed size walked (its block headers; nothing is
 * decompressed).  A frame that does not say leaves the size unknown (a
 * stream).  0, or -EBADMSG with the offset of a damaged or truncated
 * frame in d->err (refused when opened, before anything is written);
 * -EINVAL for what is not a non-empty regular file when named zstd. */
static int zstd_size(struct decode_dev *d, uint64_t *size)
{
	struct rc_dev *inner = d->dev.inner;
	struct stat st;
	void *map;
	int rc = 0;

	*size = RC_SIZE_UNKNOWN;
	if (inner->fd < 0 || fstat(inner->fd, &st) < 0 ||
	    !S_ISREG(st.st_mode) || st.st_size == 0)
		return d->named ? -EINVAL : 0;
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE,
		   inner->fd, 0);
	if (map == MAP_FAILED)
		return d->named ? -errno : 0;
	if (d->named || zstd_first(map, (size_t)st.st_size))
		rc = frames_size(map, (size_t)st.st_size, size, d->err,
				 sizeof d->err);
	munmap(map, (size_t)st.st_size);
	return rc;
}

static int decode_identity(struct rc_dev *dev, struct rc_source_id *id)
{
	struct decode_dev *d = (struct decode_dev *)dev;
	int rc = rc_dev_identity(d->dev.inner, id);

	/* Never the ring of its compressed bytes: its decoded image when
	 * its size is known (read again at the wrap), else read once,
	 * never joined. */
	if (rc == 0 && d->fmt != F_RAW)
		id->kind = (d->size != RC_SIZE_UNKNOWN || d->named) &&
					   id->kind == RC_SRC_FILE
				   ? RC_SRC_DECODED
				   : RC_SRC_PIPE;
	return rc;
}

static int decode_describe(struct rc_dev *dev, char *buf, size_t len)
{
	return rc_describe_from(((struct decode_dev *)dev)->err, buf, len);
}

static int decode_close(struct rc_dev *dev)
{
	struct decode_dev *d = (struct decode_dev *)dev;
	int rc;

	end_decoder(d);
	free(d->l.in);
	free(d->l.out);
	LZ4F_freeDecompressionContext(d->lz4);
	ZSTD_freeDCtx(d->zstd);
	rc = rc_dev_close(d->dev.inner);
	free(d->in);
	free(d);
	return rc;
}

/* The compressed bytes are read in order to their end: where the producer
 * lets us read ahead, the device below may read all of them ahead. */
static void decode_prefetch(struct rc_dev *dev, uint64_t off, uint64_t len)
{
	rc_dev_prefetch(dev->inner, 0, off + len ? dev->inner->size : 0);
}

/* A layer the core stacks over a source (rc_source_open, through
 * rc_decode_wrap), never opened by a spec: not in the table, so it has no
 * open(). */
static const struct rc_backend decode_layer = {
	.version = RC_BACKEND_VERSION,
	.name = "decode",
	.caps = RC_CAP_SEQUENTIAL | RC_CAP_SOURCE | RC_CAP_DECODES,
	.pread = decode_pread,
	.close = decode_close,
	.describe_error = decode_describe,
	.identity = decode_identity,
	.prefetch = decode_prefetch,
	.unknown_size = "it is compressed, and its uncompressed size is known only at its end",
};

static int stack_decoder(struct rc_dev **srcp, enum fmt fmt, bool named,
			 const char **format, char *why, size_t whylen);

int rc_decode_wrap(struct rc_dev **srcp, const char **format, char *why,
		   size_t whylen)
{
	struct rc_dev *src = *srcp;
	bool once = src->caps & RC_CAP_SEQUENTIAL;
	unsigned char *m = NULL;
	enum fmt fmt = F_PENDING;
	ssize_t n;

	*format = NULL;
	if (!once) {
		/* Read again later from the start: look at its first bytes
		 * now (a hole there is no compressed stream). */
		struct rc_holes h;
		size_t want = src->size < 4096 ? (size_t)src->size : 4096;

		rc_holes_init(&h);
		if (want < 3 || rc_is_hole(src, &h, 0, want < 8 ? want : 8))
			return 0;
		if (!(m = malloc(IN_SIZE)))
			return -ENOMEM;
		n = rc_dev_pread(src, m, want, 0);
		/* Skippable frames first: look as far as a pipe's first
		 * buffer would show. */
		if (n == 4096 && skippable(m, 4) && src->size > 4096)
			n = rc_dev_pread(src, m, src->size < IN_SIZE
						      ? (size_t)src->size
						      : IN_SIZE, 0);
		/* A file shorter than a magic but holding its first bytes
		 * is that format cut short: decoded, so failed. */
		if (n >= 0)
			fmt = sniff(m, (size_t)n, (uint64_t)n == src->size);
		free(m);
		if (n < 0)
			return (int)n;
		if (fmt == F_RAW)
			return 0; /* plain bytes: as they were */
	}
	return stack_decoder(srcp, fmt, false, format, why, whylen);
}

int rc_decode_zstd(struct rc_dev **srcp, char *why, size_t whylen)
{
	const char *format;

	return stack_decoder(srcp, F_ZSTD, true, &format, why, whylen);
}

/* The layer over *srcp, decoding fmt (F_PENDING: looked at when first
 * read). */
static int stack_decoder(struct rc_dev **srcp, enum fmt fmt, bool named,
			 const char **format, char *why, size_t whylen)
{
	struct rc_dev *src = *srcp;
	bool once = src->caps & RC_CAP_SEQUENTIAL;
	struct decode_dev *d;
	int rc = 0;

	d = calloc(1, sizeof *d);
	if (!d || !(d->in = malloc(IN_SIZE))) {
		free(d);
		return -ENOMEM;
	}
	d->dev.inner = src; /* read from (xz_size) before rc_dev_init */
	d->fmt = fmt;
	d->named = named;
	if (fmt != F_PENDING && start_decoder(d) < 0) {
		free(d->in);
		free(d);
		return -ENOMEM;
	}
	/* A source read once is a stream whatever it holds; an xz file
	 * says its size in its index: then it is an image of known size,
	 * read again from its start at the wrap, and joinable. */
	d->size = RC_SIZE_UNKNOWN;
	if (fmt == F_XZ && src->size != UINT64_MAX &&
	    (src->caps & RC_CAP_SEEKABLE) && xz_size(d, &d->size) < 0)
		d->size = RC_SIZE_UNKNOWN;
	/* An index that says nothing: no block would ever be read, so the
	 * end would never be checked; read it as a stream, to its end. */
	if (fmt == F_XZ && d->size == 0)
		d->size = RC_SIZE_UNKNOWN;
	/* A zstd file says its size in its frames (what the zstd backend
	 * read it for, before issue 26): an image, read again at the wrap;
	 * damaged frames are refused now, with their offset. */
	if (fmt == F_ZSTD && !once)
		rc = zstd_size(d, &d->size);
	if (rc < 0) {
		snprintf(why, whylen, "%s", d->err);
		end_decoder(d);
		ZSTD_freeDCtx(d->zstd);
		free(d->in);
		free(d);
		return rc;
	}
	rc_dev_init(&d->dev, &decode_layer, src->path, src->fd, d->size);
	d->dev.inner = src; /* rc_dev_init cleared it */
	if (once)
		d->dev.unknown_size = src->unknown_size; /* a pipe's words */
	if (named)
		d->dev.unknown_size = "its zstd frames do not say how large the image is (made with --no-content-size, or streamed)";
	d->dev.spec = src->spec; /* shown as named; freed with the inner */
	src->spec = src->spec ? strdup(src->spec) : NULL;
	if (d->dev.spec && !src->spec) {
		src->spec = d->dev.spec;
		d->dev.spec = NULL;
		decode_close(&d->dev);
		return -ENOMEM;
	}
	/* A zstd file whose frames say its size was read by the zstd
	 * backend, which said nothing of it: still said nothing. */
	if (fmt != F_PENDING && !(fmt == F_ZSTD && d->size != RC_SIZE_UNKNOWN))
		*format = fmt_name[fmt];
	*srcp = &d->dev;
	return 0;
}
