/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - nbd backend: sources and targets served by NBD servers
 * (nbdkit, qemu-nbd), through libnbd.
 *
 * Specs are NBD URIs: nbd://host[:port]/export, nbd+unix:///export?socket=
 * PATH, and the TLS forms nbds:// and nbds+unix:// with libnbd's
 * certificate and PSK query parameters.  Connecting has a deadline.  A
 * block is written as several asynchronous requests in flight at once, so
 * a round trip does not cost a block's worth of throughput; zero blocks
 * are NBD_CMD_WRITE_ZEROES where the server can.  A source read in order
 * is read ahead: once two reads follow each other, the next blocks are
 * asked for before they are wanted, so a server with latency (a swarm, an
 * HTTP origin, a remote disk) streams at its link's rate rather than at
 * one round trip per block.  A read-only export is refused as a target
 * before anything is written.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "internal.h"
#include "ringcopy/ring.h"
#include "ringcopy/util.h"

static int nbd_probe(const char *path, int mode)
{
	static const char *const schemes[] = {
		"nbd://", "nbds://", "nbd+unix://", "nbds+unix://",
		"nbd+vsock://", "nbds+vsock://",
	};
	size_t i;

	for (i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
		if (!strncmp(path, schemes[i], strlen(schemes[i])))
			return 100;
	return 0;
}

#ifdef HAVE_LIBNBD
#include <libnbd.h>
#include <sys/mman.h>

/* Bytes per request: a 1 MiB block is two.  QEMU's NBD server (7.2, as
 * `ringcopy relay' reads it) spends four times the CPU on 1 MiB reads
 * that it spends on 512 KiB ones (doc/design.md, the relay chain). */
#define NBD_CHUNK (128u * 1024u)
#define NBD_RA_MIN (64u * 1024u)  /* smaller blocks are not read ahead */
#define NBD_CONNECT_MS 10000      /* default connection deadline */
#define NBD_IO_MS 60000           /* a request with no answer this long */
#define NBD_SLICE_MS 500          /* asks rc_io_should_stop this often */

#define NBD_WMAX 64               /* asynchronous block writes in flight */
#define NBD_RA_MAX 64             /* blocks read ahead, at most */
#define NBD_RA_BYTES (32u << 20)  /* bytes read ahead, at most */

/* One block read or written asynchronously: its requests and how many
 * are left. */
struct nbd_block {
	uint64_t off;
	size_t len;
	unsigned nc, left;  /* requests issued, not yet answered */
	int err;            /* the first error among them */
	int64_t cookies[RC_BLOCK_MAX / NBD_CHUNK + 1];
};

/* A block asked for ahead of its read, into a buffer of our own. */
struct nbd_rblock {
	struct nbd_block io;
	void *buf;
	size_t cap;
};

struct nbd_dev {
	struct rc_dev dev; /* first */
	struct nbd_handle *h;
	int mode;
	int werr;          /* first error of the requests in flight */
	int failed;        /* an asynchronous write failed: final */
	char err[200];     /* the last error, for messages */
	struct nbd_block *w; /* NBD_WMAX, a FIFO of blocks in flight */
	unsigned whead, wcount;
	/* Read-ahead: a FIFO of the blocks after the last one read. */
	struct nbd_rblock *ra;
	unsigned rhead, rcount, rdepth;
	uint64_t last_end;    /* where the last read ended */
	uint64_t ra_next;     /* the next offset to ask for ahead */
	uint64_t ra_end;      /* prefetch(): reads ahead stop here (0: the
			       * producer never said, so never ahead) */
};

static unsigned connect_ms = NBD_CONNECT_MS;

/* The options this backend owns: how long a connection may take to
 * become ready, in seconds. */
static int nbd_config(const char *key, const char *value)
{
	unsigned long n;

	if (strcmp(key, "connect-timeout") != 0)
		return -ENOENT;
	if (rc_config_count(value, 1, 86400, &n) < 0)
		return -EINVAL;
	connect_ms = (unsigned)n * 1000u;
	return 0;
}

/* libnbd failed: keep its message for describe_error(), and return its
 * errno (fallback when it has none). */
static int libnbd_error(struct nbd_dev *n, int fallback)
{
	snprintf(n->err, sizeof n->err, "%s", nbd_get_error());
	return nbd_get_errno() ? -nbd_get_errno() : -fallback;
}

/* Move the connection on: wait up to NBD_IO_MS for it when wait, else only
 * take what is ready.  1 when something happened, 0 when nothing did
 * (never when wait: no answer for that long is an error), -errno. */
static int poll_io(struct nbd_dev *n, bool wait)
{
	int waited, r;

	if (!wait) {
		r = nbd_poll(n->h, 0);
		return r == -1 ? libnbd_error(n, EIO) : r;
	}
	/* In slices, so that an evicted or interrupted consumer does not
	 * wait for a stopped server. */
	for (waited = 0; waited < NBD_IO_MS; waited += NBD_SLICE_MS) {
		r = nbd_poll(n->h, NBD_SLICE_MS);
		if (r == -1)
			return libnbd_error(n, EIO);
		if (r > 0)
			return r;
		if (rc_io_should_stop && rc_io_should_stop()) {
			snprintf(n->err, sizeof n->err,
				 "cancelled while waiting for the server");
			return -ECANCELED;
		}
	}
	snprintf(n->err, sizeof n->err,
		 "the server did not answer within %d s", NBD_IO_MS / 1000);
	return -ETIMEDOUT;
}

static int connect_uri(struct nbd_dev *n, const char *uri)
{
	uint64_t deadline = rc_now_ns() + (uint64_t)connect_ms * 1000000u;

	if (nbd_aio_connect_uri(n->h, uri) == -1)
		goto fail;
	while (!nbd_aio_is_ready(n->h)) {
		uint64_t now = rc_now_ns();

		if (nbd_aio_is_dead(n->h) || nbd_aio_is_closed(n->h))
			goto fail;
		if (now >= deadline) {
			snprintf(n->err, sizeof n->err,
				 "not ready within %u s (--connect-timeout)",
				 connect_ms / 1000);
			return -ETIMEDOUT;
		}
		if (nbd_poll(n->h, (int)((deadline - now) / 1000000u) + 1) == -1)
			goto fail;
	}
	return 0;
fail:
	return libnbd_error(n, ECONNREFUSED);
}

static int nbd_dev_open(const char *uri, int mode, struct rc_dev **out,
			char *why, size_t whylen)
{
	struct nbd_dev *n = calloc(1, sizeof *n);
	int64_t size;
	int rc;

	if (!n)
		return -ENOMEM;
	rc_dev_init(&n->dev, &rc_nbd_backend, uri, -1, 0);
	n->mode = mode;
	n->h = nbd_create();
	if (!n->h) {
		free(n);
		return -ENOMEM;
	}
	/* URIs may name a TLS certificate directory or PSK file. */
	nbd_set_uri_allow_local_file(n->h, true);
	/* A source's holes, so that they are not read. */
	if (mode == RC_OPEN_SOURCE)
		nbd_add_meta_context(n->h, LIBNBD_CONTEXT_BASE_ALLOCATION);
	rc = connect_uri(n, uri);
	if (rc == 0) {
		size = nbd_get_size(n->h);
		if (size < 0) {
			snprintf(n->err, sizeof n->err, "%s", nbd_get_error());
			rc = -EIO;
		} else {
			n->dev.size = (uint64_t)size;
		}
	}
	if (rc == 0 && mode == RC_OPEN_TARGET && nbd_is_read_only(n->h) == 1) {
		snprintf(n->err, sizeof n->err, "the export is read-only");
		rc = -EROFS;
	}
	if (rc < 0) {
		snprintf(why, whylen, "%s", n->err);
		nbd_close(n->h);
		free(n);
		return rc;
	}
	n->dev.caps = RC_CAP_FIXED | RC_CAP_SEEKABLE |
		      (mode == RC_OPEN_SOURCE ? RC_CAP_SOURCE : RC_CAP_TARGET);
	if (nbd_can_zero(n->h) == 1)
		n->dev.caps |= RC_CAP_ZERO;
	if (mode == RC_OPEN_SOURCE &&
	    nbd_can_meta_context(n->h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1)
		n->dev.caps |= RC_CAP_SPARSE;
	/* The socket, so that a forked producer keeps it open. */
	n->dev.fd = nbd_aio_get_fd(n->h);
	if (mode == RC_OPEN_SOURCE)
		n->rdepth = NBD_RA_MAX; /* bounded by bytes at the first read */
	*out = &n->dev;
	return 0;
}

static int done_cb(void *user_data, int *error)
{
	struct nbd_dev *n = user_data;

	if (*error && !n->werr)
		n->werr = *error;
	/* Not retired here: libnbd 1.14 still touches a command that
	 * completes (and is auto-retired) inside the nbd_aio_* call that
	 * issued it (valgrind: use after free).  nbd_io() retires them. */
	return 0;
}

/* Wait for every request in flight; the first error, if any. */
static int drain(struct nbd_dev *n)
{
	while (nbd_aio_in_flight(n->h) > 0) {
		int r = poll_io(n, true);

		if (r < 0)
			return r;
	}
	if (n->werr) {
		snprintf(n->err, sizeof n->err, "the server said: %s",
			 strerror(n->werr));
		return -n->werr;
	}
	return 0;
}

/* Split [off, off+len) into requests, all in flight at once. */
static ssize_t nbd_io(struct rc_dev *dev, void *rbuf, const void *wbuf,
		      size_t len, uint64_t off)
{
	struct nbd_dev *n = (struct nbd_dev *)dev;
	nbd_completion_callback cb = { .callback = done_cb, .user_data = n };
	int64_t cookies[RC_BLOCK_MAX / NBD_CHUNK + 1];
	size_t done, nc = 0, k;
	int rc;

	if (len > RC_BLOCK_MAX)
		return -EINVAL; /* the core never asks for more than a block */
	n->werr = 0;
	for (done = 0; done < len; done += NBD_CHUNK) {
		size_t c = len - done < NBD_CHUNK ? len - done : NBD_CHUNK;
		int64_t cookie =
			rbuf ? nbd_aio_pread(n->h, (char *)rbuf + done, c,
					     off + done, cb, 0)
			     : nbd_aio_pwrite(n->h, (const char *)wbuf + done, c,
					      off + done, cb, 0);

		if (cookie == -1) {
			rc = libnbd_error(n, EIO);
			drain(n);
			goto retire;
		}
		cookies[nc++] = cookie;
	}
	rc = drain(n);
retire:
	for (k = 0; k < nc; k++)
		nbd_aio_command_completed(n->h, cookies[k]);
	return rc < 0 ? rc : (ssize_t)len;
}

static int block_done_cb(void *user_data, int *error)
{
	struct nbd_block *b = user_data;

	if (*error && !b->err)
		b->err = *error;
	b->left--;
	return 0; /* retired by block_retire, as in nbd_io */
}

/* Ask for block b = [off, off+len) in requests of NBD_CHUNK, all in
 * flight at once: read into rbuf, or written from wbuf.  0, or -errno
 * with the requests already issued still in flight (b->left says how
 * many). */
static int block_submit(struct nbd_dev *n, struct nbd_block *b, void *rbuf,
			const void *wbuf, uint64_t off, size_t len)
{
	size_t done;

	b->off = off;
	b->len = len;
	b->nc = b->left = 0;
	b->err = 0;
	for (done = 0; done < len; done += NBD_CHUNK) {
		size_t c = len - done < NBD_CHUNK ? len - done : NBD_CHUNK;
		nbd_completion_callback cb = { .callback = block_done_cb,
					       .user_data = b };
		int64_t cookie;

		b->left++; /* before: the answer may come inside the call */
		cookie = rbuf ? nbd_aio_pread(n->h, (char *)rbuf + done, c,
					      off + done, cb, 0)
			      : nbd_aio_pwrite(n->h, (const char *)wbuf + done,
					       c, off + done, cb, 0);
		if (cookie == -1) {
			b->left--;
			return libnbd_error(n, EIO);
		}
		b->cookies[b->nc++] = cookie;
	}
	return 0;
}

/* Retire an answered block's requests. */
static void block_retire(struct nbd_dev *n, struct nbd_block *b)
{
	unsigned k;

	for (k = 0; k < b->nc; k++)
		nbd_aio_command_completed(n->h, b->cookies[k]);
	b->nc = 0;
}

/* Start writing a block: its requests join those of earlier blocks still
 * in flight, so the connection never idles between blocks. */
static int nbd_dev_write_submit(struct rc_dev *dev, const void *buf,
				size_t len, uint64_t off)
{
	struct nbd_dev *n = (struct nbd_dev *)dev;
	int rc;

	if (n->failed)
		return -EIO;
	if (len > RC_BLOCK_MAX || n->wcount == NBD_WMAX)
		return -EINVAL; /* the core reaps long before */
	if (!n->w && !(n->w = calloc(NBD_WMAX, sizeof *n->w)))
		return -ENOMEM;
	rc = block_submit(n, &n->w[(n->whead + n->wcount) % NBD_WMAX], NULL,
			  buf, off, len);
	n->wcount++;
	if (rc < 0)
		n->failed = 1;
	return rc;
}

/* Retire the finished blocks at the head of the FIFO; wait (driving the
 * connection) while more than keep are in flight. */
static int nbd_dev_write_reap(struct rc_dev *dev, unsigned keep)
{
	struct nbd_dev *n = (struct nbd_dev *)dev;
	int finished = 0;

	if (n->failed)
		return -EIO;
	while (n->wcount) {
		struct nbd_block *b = &n->w[n->whead];
		int r;

		if (b->left == 0) {
			block_retire(n, b);
			if (b->err) {
				snprintf(n->err, sizeof n->err,
					 "the server said: %s",
					 strerror(b->err));
				n->failed = 1;
				return -b->err;
			}
			n->whead = (n->whead + 1) % NBD_WMAX;
			n->wcount--;
			finished++;
			continue;
		}
		/* Unanswered: progress without blocking, then block only
		 * while there are more than keep. */
		r = poll_io(n, n->wcount > keep);
		if (r < 0) {
			n->failed = 1;
			return r;
		}
		if (r == 0 || (n->wcount <= keep && b->left))
			break;
	}
	return finished;
}

/* Forget the head of the read-ahead FIFO, once it is answered. */
static void ra_retire(struct nbd_dev *n)
{
	block_retire(n, &n->ra[n->rhead].io);
	n->rhead = (n->rhead + 1) % NBD_RA_MAX;
	n->rcount--;
}

/* Drop the blocks read ahead (a read elsewhere): wait for their answers,
 * which land in our buffers, and forget them. */
static int ra_drop(struct nbd_dev *n)
{
	int rc = 0;

	while (n->rcount) {
		while (n->ra[n->rhead].io.left && rc == 0 && !n->failed)
			rc = poll_io(n, true) < 0 ? -EIO : 0;
		if (rc < 0 || n->failed) {
			n->failed = 1;
			/* The connection is broken: the buffers stay ours
			 * until close, whatever libnbd still holds. */
			n->rcount = 0;
			break;
		}
		ra_retire(n);
	}
	return rc;
}

/* Ask for the blocks after end, up to the read-ahead depth. */
static int ra_fill(struct nbd_dev *n, size_t len)
{
	unsigned depth = NBD_RA_BYTES / len;

	if (depth > n->rdepth)
		depth = n->rdepth;
	if (depth < 2)
		depth = 2;
	while (n->rcount < depth && n->ra_next < n->ra_end &&
	       n->ra_next < n->dev.size) {
		struct nbd_rblock *b =
			&n->ra[(n->rhead + n->rcount) % NBD_RA_MAX];
		uint64_t end = n->ra_end < n->dev.size ? n->ra_end
							: n->dev.size;
		size_t l = end - n->ra_next < len ? (size_t)(end - n->ra_next)
						  : len;
		int rc;

		if (b->cap < l) {
			free(b->buf);
			b->buf = NULL;
			b->cap = 0;
			if (posix_memalign(&b->buf, RC_ALIGN, l))
				return -ENOMEM;
			b->cap = l;
#ifdef MADV_POPULATE_WRITE
			/* Its pages at once, not a fault each as the first
			 * answer lands (see rc_ring_populate). */
			(void)madvise(b->buf, l & ~(size_t)(RC_ALIGN - 1),
				      MADV_POPULATE_WRITE);
#endif
		}
		rc = block_submit(n, &b->io, b->buf, NULL, n->ra_next, l);
		n->rcount++;
		if (rc < 0)
			return rc;
		n->ra_next += l;
	}
	return 0;
}

/* A read: from the read-ahead FIFO when it was foreseen, else directly.
 * Two reads in a row start the read-ahead; a read elsewhere drops it.
 * Only where the producer said how far (prefetch()): never in the
 * invocation before it forks, nor in a read-back.  Failing to read ahead
 * only stops reading ahead. */
static ssize_t nbd_dev_pread(struct rc_dev *dev, void *buf, size_t len,
			     uint64_t off)
{
	struct nbd_dev *n = (struct nbd_dev *)dev;
	/* Never again after a failure: an answer that comes late would land
	 * in a buffer given to another block. */
	bool in_order = off == n->last_end && off > 0 && n->rdepth &&
			len >= NBD_RA_MIN && !n->failed &&
			off + len <= n->ra_end && off + len <= dev->size;

	if (n->rcount && (n->ra[n->rhead].io.off != off ||
			  n->ra[n->rhead].io.len != len)) {
		if (ra_drop(n) < 0)
			return libnbd_error(n, EIO);
	}
	if (!n->rcount) {
		n->last_end = off + len;
		if (!in_order)
			return nbd_io(dev, buf, NULL, len, off);
		if (!n->ra && !(n->ra = calloc(NBD_RA_MAX, sizeof *n->ra)))
			return nbd_io(dev, buf, NULL, len, off);
		/* In order: this block and the next ones, all at once. */
		n->ra_next = off;
		if (ra_fill(n, len) < 0 || !n->rcount ||
		    n->ra[n->rhead].io.len != len) {
			ra_drop(n);
			n->rdepth = 0; /* not again on this connection */
			return nbd_io(dev, buf, NULL, len, off);
		}
	}
	/* The head is ours: wait for it, keep the rest in flight.  A
	 * connection that failed is not waited on again (not even at
	 * close). */
	while (n->ra[n->rhead].io.left) {
		int r = poll_io(n, true);

		if (r < 0) {
			n->failed = 1;
			return r;
		}
	}
	{
		struct nbd_rblock *b = &n->ra[n->rhead];
		int err = b->io.err;

		if (!err)
			memcpy(buf, b->buf, len);
		ra_retire(n);
		n->last_end = off + len;
		if (err) {
			ra_drop(n);
			snprintf(n->err, sizeof n->err, "the server said: %s",
				 strerror(err));
			return -err;
		}
	}
	if (ra_fill(n, len) < 0) {
		ra_drop(n);
		n->rdepth = 0;
	}
	return (ssize_t)len;
}

static ssize_t nbd_dev_pwrite(struct rc_dev *dev, const void *buf, size_t len,
			      uint64_t off)
{
	return nbd_io(dev, NULL, buf, len, off);
}

static int nbd_dev_zero(struct rc_dev *dev, uint64_t off, uint64_t len)
{
	struct nbd_dev *n = (struct nbd_dev *)dev;

	if (!(dev->caps & RC_CAP_ZERO))
		return -EOPNOTSUPP;
	if (nbd_zero(n->h, len, off, 0) == -1) {
		return libnbd_error(n, EIO);
	}
	return 0;
}

/* The first data extent at or after the queried offset, as base:allocation
 * describes it: holes and ranges that read as zeros are not data. */
struct nbd_extent_scan {
	uint64_t pos;             /* where the server's answer ends */
	uint64_t data_off, data_len;
	int found, closed;        /* data seen; its extent ended */
};

static int extent_cb(void *user_data, const char *metacontext,
		     uint64_t offset, uint32_t *entries, size_t nr_entries,
		     int *error)
{
	struct nbd_extent_scan *x = user_data;
	uint64_t pos = offset;
	size_t i;

	if (strcmp(metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
		return 0;
	for (i = 0; i + 1 < nr_entries; i += 2) {
		uint32_t len = entries[i];
		bool zero = entries[i + 1] &
			    (LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO);

		if (!zero && !x->found) {
			x->found = 1;
			x->data_off = pos;
			x->data_len = len;
		} else if (!zero && !x->closed &&
			   pos == x->data_off + x->data_len) {
			x->data_len += len;
		} else if (x->found) {
			x->closed = 1;
		}
		pos += len;
	}
	x->pos = pos;
	return 0;
}

/* At most this many block-status round trips per question: a server that
 * answers in tiny pieces makes the rest "data", which is read and still
 * found to be zeros. */
#define NBD_EXTENT_QUERIES 64
#define NBD_EXTENT_SPAN (UINT64_C(1) << 31) /* bytes asked about at once */

static int nbd_dev_extents(struct rc_dev *dev, uint64_t off,
			   uint64_t *data_off, uint64_t *data_len)
{
	struct nbd_dev *n = (struct nbd_dev *)dev;
	struct nbd_extent_scan x = { .pos = off };
	nbd_extent_callback cb = { .callback = extent_cb, .user_data = &x };
	int q;

	for (q = 0; q < NBD_EXTENT_QUERIES && x.pos < dev->size &&
		    !(x.found && x.closed); q++) {
		uint64_t left = dev->size - x.pos, at = x.pos;

		if (nbd_block_status(n->h,
				     left < NBD_EXTENT_SPAN ? left
							    : NBD_EXTENT_SPAN,
				     at, cb, 0) == -1) {
			return libnbd_error(n, EIO);
		}
		if (x.pos <= at)
			return -EPROTO; /* no progress: do not loop */
	}
	if (x.found) {
		*data_off = x.data_off;
		*data_len = x.data_len;
	} else if (x.pos >= dev->size) {
		*data_off = dev->size; /* only holes to the end */
		*data_len = 0;
	} else {
		/* Too many pieces: zeros up to pos, and the block there is
		 * read like data; the next question starts after it. */
		*data_off = x.pos;
		*data_len = 1;
	}
	return 0;
}

static int nbd_dev_flush(struct rc_dev *dev)
{
	struct nbd_dev *n = (struct nbd_dev *)dev;

	if (nbd_can_flush(n->h) != 1)
		return 0;
	if (nbd_flush(n->h, 0) == -1) {
		return libnbd_error(n, EIO);
	}
	return 0;
}

static int nbd_dev_close(struct rc_dev *dev)
{
	struct nbd_dev *n = (struct nbd_dev *)dev;

	/* nbd_close alone: a forked copy of this handle may still be in
	 * use by a consumer, and a disconnect would end its session.  Our
	 * own reads ahead are answered first: a server whose answer finds
	 * the socket closed may take it badly (nbdkit 1.32 aborts). */
	if (n->rcount)
		ra_drop(n);
	nbd_close(n->h);
	free(n->w);
	if (n->ra) {
		unsigned k;

		for (k = 0; k < NBD_RA_MAX; k++)
			free(n->ra[k].buf);
		free(n->ra);
	}
	free(n);
	return 0;
}

static int nbd_dev_open_readback(struct rc_dev *dev, struct rc_dev **out,
				 const char **how)
{
	/* A new connection: what the server has, after our flush. */
	char why[256];
	int rc = nbd_dev_open(dev->path, RC_OPEN_SOURCE, out, why, sizeof why);

	*how = "nbd";
	return rc;
}

/* How far the producer will read in order: reads ahead stay inside it. */
static void nbd_dev_prefetch(struct rc_dev *dev, uint64_t off, uint64_t len)
{
	struct nbd_dev *n = (struct nbd_dev *)dev;

	n->ra_end = len > UINT64_MAX - off ? UINT64_MAX : off + len;
}

static int nbd_dev_describe(struct rc_dev *dev, char *buf, size_t len)
{
	return rc_describe_from(((struct nbd_dev *)dev)->err, buf, len);
}

/* An export is named by its URI: every copy of the same export meets in
 * one ring. */
static int nbd_dev_identity(struct rc_dev *dev, struct rc_source_id *id)
{
	XXH128_hash_t u = XXH3_128bits(dev->spec, strlen(dev->spec));

	memset(id, 0, sizeof *id);
	id->kind = RC_SRC_URI;
	id->id0 = u.high64;
	id->id1 = u.low64;
	return 0;
}

const struct rc_backend rc_nbd_backend = {
	.version = RC_BACKEND_VERSION,
	.name = "nbd",
	.prefix = NULL,
	.caps = RC_CAP_SEEKABLE | RC_CAP_ZERO | RC_CAP_SOURCE | RC_CAP_TARGET,
	.probe = nbd_probe,
	.open = nbd_dev_open,
	.pread = nbd_dev_pread,
	.pwrite = nbd_dev_pwrite,
	.zero = nbd_dev_zero,
	.extents = nbd_dev_extents,
	.flush = nbd_dev_flush,
	.close = nbd_dev_close,
	.open_readback = nbd_dev_open_readback,
	.describe_error = nbd_dev_describe,
	.write_submit = nbd_dev_write_submit,
	.write_reap = nbd_dev_write_reap,
	.max_in_flight = NBD_WMAX,
	.identity = nbd_dev_identity,
	.config = nbd_config,
	.prefetch = nbd_dev_prefetch,
};

#else /* !HAVE_LIBNBD: the kmod habit, a stub that says why */

static int nbd_dev_open(const char *uri, int mode, struct rc_dev **out,
			char *why, size_t whylen)
{
	snprintf(why, whylen, "this ringcopy was built without libnbd");
	return -ENOSYS;
}

static int nbd_dev_close(struct rc_dev *dev)
{
	return 0;
}

static ssize_t nbd_dev_io(struct rc_dev *dev, void *buf, size_t len,
			  uint64_t off)
{
	return -ENOSYS;
}

static ssize_t nbd_dev_wio(struct rc_dev *dev, const void *buf, size_t len,
			   uint64_t off)
{
	return -ENOSYS;
}

static int nbd_dev_flush(struct rc_dev *dev)
{
	return -ENOSYS;
}

const struct rc_backend rc_nbd_backend = {
	.version = RC_BACKEND_VERSION,
	.name = "nbd",
	.caps = RC_CAP_SOURCE | RC_CAP_TARGET,
	.probe = nbd_probe,
	.open = nbd_dev_open,
	.pread = nbd_dev_io,
	.pwrite = nbd_dev_wio,
	.flush = nbd_dev_flush,
	.close = nbd_dev_close,
};
#endif
