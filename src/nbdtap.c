/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - a relay's upstream NBD connection read as it passes.
 *
 * In a delta rollout (`ringcopy relay --skip-equal') a node's disks hold
 * most of the image already.  QEMU's copy-on-read overlay asks its
 * upstream for every block read through the node that it does not hold:
 * the node's own copy asks only for what its disks lack (producer skip),
 * but a node downstream whose disk is new asks for everything.  The relay
 * stands between QEMU and the upstream (src/relay.c); this file reads that
 * connection's requests and replies, and answers a read itself when the
 * node's disks hold every block it covers as the manifest says, hashing
 * each block as it reads it.  The upstream sends only the rest.
 *
 * The NBD protocol as QEMU 7.2's client and nbdkit's or QEMU's server
 * speak it (doc/proto.md of the NBD project): 28-byte requests (magic
 * 0x25609513, flags, type, handle, offset, length; a write's payload
 * follows), simple replies (magic 0x67446698, error, handle; a read's
 * data follows unless error) and, once negotiated, structured reply
 * chunks (magic 0x668e33ef, flags, type, handle, length, payload).  A
 * reply of ours is written to the client only between two of the
 * server's messages.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ringcopy/backend.h"
#include "ringcopy/nbdtap.h"
#include "ringcopy/ring.h"
#include "ringcopy/util.h"
#include "ringcopy/verify.h"

#define NBD_REQUEST_MAGIC    0x25609513u
#define NBD_SIMPLE_MAGIC     0x67446698u
#define NBD_STRUCTURED_MAGIC 0x668e33efu
#define NBD_CMD_READ         0
#define NBD_CMD_WRITE        1
#define NBD_REPLY_FLAG_DONE  1
#define NBD_REPLY_OFFSET_DATA 1
/* The largest read answered from the disks (QEMU's copy-on-read asks
 * what its reader asks, 128 KiB from a node's copy or the next node). */
#define TAP_READ_MAX (4u << 20)
/* Blocks kept after they were read and hashed: the requests of one block
 * come one after another. */
#define DISK_CACHE 4
#define WHO_UNKNOWN 0
#define WHO_NONE    0xff

struct disk {
	struct rc_dev *dev, *rd;        /* rd: read past the page cache */
	const char *spec;
};

struct rc_disks {
	struct rc_image_hashes h;
	struct disk d[RC_TARGETS_MAX];
	int n;
	uint8_t *who;                   /* per block: 1 + the disk that
					 * held it, or WHO_* */
	struct {
		uint64_t b;
		bool valid;
		void *buf;
	} c[DISK_CACHE];
	int next;
	uint64_t answered;
};

static uint16_t get16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static void put32(unsigned char *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static void put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

/* --- the node's disks ------------------------------------------------ */

struct rc_disks *rc_disks_open(const char *manifest, char *const specs[],
			       int n, int *nopen, char *err, size_t errlen)
{
	struct rc_disks *d = calloc(1, sizeof *d);
	const char *how;
	int i;

	*nopen = 0;
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (rc_manifest_read(manifest, &d->h, UINT64_MAX, err, errlen) != 0) {
		free(d);
		return NULL;
	}
	d->who = calloc(d->h.nblocks ? d->h.nblocks : 1, 1);
	for (i = 0; d->who && i < DISK_CACHE; i++)
		if (posix_memalign(&d->c[i].buf, RC_ALIGN, d->h.block_size))
			d->c[i].buf = NULL;
	for (i = 0; i < DISK_CACHE; i++)
		if (!d->who || !d->c[i].buf) {
			snprintf(err, errlen, "out of memory");
			rc_disks_close(d);
			return NULL;
		}
	for (i = 0; i < n && d->n < (int)RC_TARGETS_MAX; i++) {
		struct disk *k = &d->d[d->n];

		k->spec = specs[i];
		if (rc_dev_open(k->spec, RC_OPEN_SOURCE, &k->dev, NULL, 0) < 0)
			continue;
		if (!(k->dev->caps & RC_CAP_SEEKABLE) ||
		    (k->dev->caps & (RC_CAP_NOWHERE | RC_CAP_DECODES)) ||
		    !k->dev->size || k->dev->size == RC_SIZE_UNKNOWN) {
			rc_dev_close(k->dev);
			k->dev = NULL;
			continue;
		}
		if (!k->dev->be->open_readback ||
		    k->dev->be->open_readback(k->dev, &k->rd, &how) < 0)
			k->rd = k->dev;
		d->n++;
	}
	*nopen = d->n;
	return d;
}

static void disk_close(struct disk *k)
{
	if (k->rd && k->rd != k->dev)
		rc_dev_close(k->rd);
	if (k->dev)
		rc_dev_close(k->dev);
	k->rd = k->dev = NULL;
}

void rc_disks_close(struct rc_disks *d)
{
	int i;

	if (!d)
		return;
	for (i = 0; i < d->n; i++)
		disk_close(&d->d[i]);
	for (i = 0; i < DISK_CACHE; i++)
		free(d->c[i].buf);
	free(d->who);
	free(d->h.hash);
	free(d);
}

uint64_t rc_disks_answered(const struct rc_disks *d)
{
	return d ? d->answered : 0;
}

/* Does disk k hold block b as the manifest says?  Read into buf and
 * hashed; a disk that cannot be read is left out from then on. */
static bool disk_holds(struct rc_disks *d, int k, uint64_t b, void *buf)
{
	struct disk *dk = &d->d[k];
	uint32_t len = rc_block_len(d->h.image_size, d->h.block_size, b);
	char err[400];
	const struct rc_readback rb = { dk->rd, NULL, buf, &d->h, dk->spec,
					err, sizeof err };
	uint64_t hash;

	if (!dk->dev || b * d->h.block_size + len > dk->dev->size)
		return false;
	if (rc_readback_hash(&rb, b, &hash) < 0) {
		rc_msg("relay: reading the node's disks: %s; upstream sends what that disk held",
		       err);
		disk_close(dk);
		return false;
	}
	return hash == d->h.hash[b];
}

/* Block b as a disk holds it, hashed now; NULL when none does. */
static const unsigned char *held_block(struct rc_disks *d, uint64_t b)
{
	int i, k, first;
	void *buf;

	for (i = 0; i < DISK_CACHE; i++)
		if (d->c[i].valid && d->c[i].b == b)
			return d->c[i].buf;
	if (d->who[b] == WHO_NONE)
		return NULL;
	i = d->next;
	d->next = (d->next + 1) % DISK_CACHE;
	d->c[i].valid = false;
	buf = d->c[i].buf;
	/* The disk that held it last time first. */
	first = d->who[b] == WHO_UNKNOWN ? 0 : d->who[b] - 1;
	for (k = 0; k < d->n; k++) {
		int j = (first + k) % d->n;

		if (disk_holds(d, j, b, buf)) {
			d->who[b] = (uint8_t)(j + 1);
			d->c[i].b = b;
			d->c[i].valid = true;
			return buf;
		}
	}
	/* Not asked again: once the copy wrote it, the overlay holds it. */
	d->who[b] = WHO_NONE;
	return NULL;
}

bool rc_disks_read(struct rc_disks *d, uint64_t off, uint32_t len,
		   void *out)
{
	uint32_t bs = d->h.block_size;
	uint64_t b, end = off + len;

	if (!len || !d->n || off >= d->h.image_size ||
	    len > d->h.image_size - off)
		return false;
	for (b = off / bs; b * bs < end; b++) {
		const unsigned char *blk = held_block(d, b);
		uint64_t from = b * bs > off ? b * bs : off;
		uint64_t to = (b + 1) * bs < end ? (b + 1) * bs : end;

		if (!blk)
			return false;
		memcpy((unsigned char *)out + (from - off), blk + (from - b * bs),
		       to - from);
	}
	d->answered += len;
	return true;
}

/* --- the connection -------------------------------------------------- */

int rc_tap_init(struct rc_tap *t, struct rc_disks *d, size_t bufsize)
{
	memset(t, 0, sizeof *t);
	t->disks = d;
	t->cap = bufsize / 16 + 2;
	t->ends = malloc(t->cap * sizeof *t->ends);
	return t->ends ? 0 : -1;
}

void rc_tap_free(struct rc_tap *t)
{
	free(t->ends);
	free(t->q);
	memset(t, 0, sizeof *t);
}

/* Room for n more bytes in the queue: the replies already sent dropped
 * (from the one being written on), the buffer grown by half at least. */
static bool queue_room(struct rc_tap *t, size_t n)
{
	int i;

	if (t->qhead) {
		memmove(t->q, t->q + t->qhead, t->qlen - t->qhead);
		for (i = 0; i < t->nq; i++)
			t->qend[i] -= t->qhead;
		t->qoff -= t->qhead;
		t->qlen -= t->qhead;
		t->qhead = 0;
	}
	if (t->qcap - t->qlen < n) {
		size_t cap = t->qcap + t->qcap / 2;
		unsigned char *q;

		if (cap < t->qlen + n)
			cap = t->qlen + n;
		q = realloc(t->q, cap);
		if (!q)
			return false;
		t->q = q;
		t->qcap = cap;
	}
	return true;
}

/* Answer a read of len bytes at off from the disks: its reply queued. */
static bool answer(struct rc_tap *t, uint64_t handle, uint64_t off,
		   uint32_t len)
{
	size_t hdr = t->structured ? 28 : 16;
	unsigned char *h;

	if (!t->disks || !len || len > TAP_READ_MAX ||
	    t->nq == RC_TAP_QUEUED ||
	    rc_tap_queued(t) + hdr + len > RC_TAP_QUEUE_MAX ||
	    !queue_room(t, hdr + len))
		return false;
	h = t->q + t->qlen;
	if (!rc_disks_read(t->disks, off, len, h + hdr))
		return false;
	if (t->structured) {
		/* One NBD_REPLY_TYPE_OFFSET_DATA chunk, the last. */
		put32(h, NBD_STRUCTURED_MAGIC);
		put16(h + 4, NBD_REPLY_FLAG_DONE);
		put16(h + 6, NBD_REPLY_OFFSET_DATA);
		put64(h + 8, handle);
		put32(h + 16, len + 8);
		put64(h + 20, off);
	} else {
		put32(h, NBD_SIMPLE_MAGIC);
		put32(h + 4, 0);
		put64(h + 8, handle);
	}
	t->qlen += hdr + len;
	t->qend[t->nq++] = t->qlen;
	return true;
}

const unsigned char *rc_tap_next(const struct rc_tap *t, size_t *len)
{
	*len = t->nq ? t->qend[0] - t->qoff : 0;
	return t->q + t->qoff;
}

void rc_tap_sent(struct rc_tap *t, size_t n)
{
	t->qoff += n;
	if (t->nq && t->qoff == t->qend[0]) {
		t->qhead = t->qoff;
		memmove(t->qend, t->qend + 1, --t->nq * sizeof t->qend[0]);
	}
	if (t->qoff == t->qlen)
		t->qoff = t->qlen = t->qhead = 0;
}

int rc_tap_client(struct rc_tap *t, const unsigned char *in, size_t n,
		  unsigned char *out, size_t *outlen)
{
	size_t i = 0, o = 0;

	while (i < n) {
		uint16_t type;
		uint64_t handle, off;
		uint32_t len;

		if (t->crem) { /* a write's payload */
			size_t k = n - i < t->crem ? n - i : (size_t)t->crem;

			memcpy(out + o, in + i, k);
			o += k;
			i += k;
			t->crem -= k;
			continue;
		}
		t->chdr[t->cn++] = in[i++];
		if (t->cn == 4 && get32(t->chdr) != NBD_REQUEST_MAGIC)
			return -1;
		if (t->cn < sizeof t->chdr)
			continue;
		t->cn = 0;
		type = get16(t->chdr + 6);
		handle = get64(t->chdr + 8);
		off = get64(t->chdr + 16);
		len = get32(t->chdr + 24);
		if (type == NBD_CMD_READ && answer(t, handle, off, len))
			continue;
		memcpy(out + o, t->chdr, sizeof t->chdr);
		o += sizeof t->chdr;
		if (type == NBD_CMD_READ) {
			if (t->nrd == RC_TAP_INFLIGHT)
				return -1;
			t->rd[t->nrd].handle = handle;
			t->rd[t->nrd].len = len;
			t->nrd++;
		} else if (type == NBD_CMD_WRITE) {
			t->crem = len;
		}
	}
	*outlen = o;
	return 0;
}

/* The forwarded read of this handle: its length, and forgotten when
 * done.  0 when the handle is not a read's. */
static uint32_t read_done(struct rc_tap *t, uint64_t handle, bool done)
{
	int i;

	for (i = 0; i < t->nrd; i++)
		if (t->rd[i].handle == handle) {
			uint32_t len = t->rd[i].len;

			if (done)
				t->rd[i] = t->rd[--t->nrd];
			return len;
		}
	return 0;
}

static void message_ends(struct rc_tap *t, size_t at)
{
	if (t->nends < t->cap)
		t->ends[t->nends++] = (uint32_t)at;
}

int rc_tap_server(struct rc_tap *t, const unsigned char *buf, size_t from,
		  size_t used)
{
	size_t i = from;

	t->nends = t->iend = 0;
	t->starts = !from && !t->sn && !t->srem;
	if (from)
		message_ends(t, from);
	while (i < used) {
		uint32_t magic, need, len;
		uint64_t handle;

		if (t->srem) {
			size_t k = used - i < t->srem ? used - i
						      : (size_t)t->srem;

			i += k;
			t->srem -= k;
			if (!t->srem)
				message_ends(t, i);
			continue;
		}
		t->shdr[t->sn++] = buf[i++];
		if (t->sn < 4)
			continue;
		magic = get32(t->shdr);
		if (magic == NBD_SIMPLE_MAGIC)
			need = 16;
		else if (magic == NBD_STRUCTURED_MAGIC)
			need = 20;
		else
			return -1;
		if (t->sn < need)
			continue;
		t->sn = 0;
		handle = get64(t->shdr + 8);
		if (magic == NBD_SIMPLE_MAGIC) {
			/* A read's data follows unless it failed. */
			len = read_done(t, handle, true);
			t->srem = get32(t->shdr + 4) ? 0 : len;
		} else {
			t->srem = get32(t->shdr + 16);
			if (get16(t->shdr + 4) & NBD_REPLY_FLAG_DONE)
				read_done(t, handle, true);
		}
		if (!t->srem)
			message_ends(t, i);
	}
	return 0;
}

bool rc_tap_between(struct rc_tap *t, size_t off, size_t used)
{
	if (t->qoff > t->qhead)
		return true; /* a reply of ours is half written: on with it */
	if (off == used)
		return !t->sn && !t->srem;
	if (off == 0)
		return t->starts;
	while (t->iend < t->nends && t->ends[t->iend] < off)
		t->iend++;
	return t->iend < t->nends && t->ends[t->iend] == off;
}

size_t rc_tap_span(struct rc_tap *t, size_t off, size_t used)
{
	if (!rc_tap_queued(t) || off == used)
		return used - off;
	while (t->iend < t->nends && t->ends[t->iend] <= off)
		t->iend++;
	return t->iend < t->nends ? t->ends[t->iend] - off : used - off;
}
