/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - a consumer: copies its nblocks slots from the ring to a target.
 *
 * A consumer that starts at sequence number s needs exactly s .. s+nblocks-1:
 * the end of the image from its start block, then, after the producer wraps
 * around, block 0 up to its start block ([0039], [0057]).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringcopy/core.h"
#include "ringcopy/ringproto.h"
#include "ringcopy/steps.h"
#include "ringcopy/util.h"
#include "ringcopy/verify.h"

static void set_counter(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* The producer died: nobody will remove the ring unless the last consumer
 * out does. */
static void last_one_out(struct rc_ring *r, const struct rc_rdv *rdv)
{
	int shmid = r->shmid, semid = r->semid;

	if (rc_proto_last_out(r) && rdv)
		rc_rdv_remove_if_ours(rdv, shmid, semid);
}

/* What a backend waiting for a stopped device asks: are we still served?
 * Static: rc_io_should_stop is a callback without an argument that the
 * backends call from deep in their waits, and a process runs one
 * consumer (the schedule test runs several, over backends that never
 * ask). */
static struct rc_ring *stop_ring;
static const struct rc_reg *stop_reg;

static bool should_stop(void)
{
	if (rc_interrupted)
		return true;
	if (!stop_ring)
		return false;
	return !rc_proto_served(stop_ring, stop_reg);
}

/* The ring's reason, as the target's error. */
static int ring_error(struct rc_ring *r, int rc, char *err, size_t errlen)
{
	rc_strlcpy(err, r->why, errlen);
	return rc;
}

/* Say which write failed, in the backend's words where it has some. */
static int write_failed(struct rc_dev *dst, int rc, uint32_t len,
			uint64_t off, char *err, size_t errlen)
{
	char detail[200];

	rc_dev_describe(dst, strerror(-rc), detail, sizeof detail);
	snprintf(err, errlen, "target %s: write of %u bytes at offset %llu: %s",
		 dst->spec, len, (unsigned long long)off, detail);
	return rc;
}

static int write_block(struct rc_dev *dst, const void *data, uint32_t len,
		       uint64_t off, char *err, size_t errlen)
{
	ssize_t w = rc_dev_pwrite(dst, data, len, off);

	return w < 0 ? write_failed(dst, (int)w, len, off, err, errlen) : 0;
}

static int flush(struct rc_dev *dst, char *err, size_t errlen)
{
	int rc = rc_dev_flush(dst);

	/* Final: the kernel may have dropped the pages that failed, so a
	 * second fsync could succeed without the data being there. */
	if (rc < 0)
		snprintf(err, errlen, "target %s: fsync: %s", dst->spec,
			 strerror(-rc));
	return rc;
}

/* A zero block: the slot carries the flag, maybe not the zeros. */
static int write_zero_block(const struct rc_consumer_args *a, uint32_t len,
			    uint64_t off, char *err, size_t errlen)
{
	struct rc_dev *dst = a->dst;
	int rc;

	if (a->sparse == RC_SPARSE_ALWAYS ||
	    (a->sparse == RC_SPARSE_AUTO && (dst->caps & RC_CAP_ZERO)))
		rc = rc_dev_zero(dst, off, len);
	else
		rc = rc_dev_write_zeros(dst, off, len);
	if (rc < 0)
		snprintf(err, errlen,
			 "target %s: zeroing %u bytes at offset %llu: %s",
			 dst->spec, len, (unsigned long long)off,
			 strerror(-rc));
	return rc;
}

/* Does the slot's data match the hash the producer published?  One
 * consumer's check serves them all: the data cannot change before every
 * consumer has released the slot, so the first one to hash it records the
 * seq in the slot header and the others trust that record.  (A process
 * that can write the segment can forge the hash as well as the record;
 * the check is against our own mistakes, a torn or stale slot, not against
 * the owner of the segment.) */
static bool slot_data_ok(struct rc_ring *r, uint32_t slot, uint64_t seq,
			 const unsigned char *data, uint32_t len, uint64_t hash,
			 bool zero)
{
	(void)slot;
	if (zero)
		return hash == rc_zero_hash(len);
	if (rc_proto_slot_checked(r, seq))
		return true;
	if (rc_block_hash(data, len) != hash)
		return false;
	rc_proto_slot_mark_checked(r, seq);
	return true;
}

/* Verification behind the copy: while a consumer waits for the source, it
 * reads back blocks it has already written, so that with a slow source the
 * read-back costs no time at the end.  Only on a disk read O_DIRECT: there
 * reading back before the final fsync reads what reading back after it
 * would, the disk is ours (opened O_EXCL), and the time saved is the
 * disk's.  A file is read back whole at the end: anyone with write access
 * can change a block of it after it was read back (and reading it from
 * the page cache costs little).  Block 0, written last, and whatever is
 * left are read back at the end.  (struct rc_behind, steps.h.) */

static void behind_stop(struct rc_behind *vb)
{
	rc_dev_close(vb->rd);
	vb->rd = NULL;
}

static void behind_free(struct rc_behind *vb)
{
	behind_stop(vb);
	free(vb->buf);
	free(vb->have);
	free(vb->got);
	memset(vb, 0, sizeof *vb);
}

/* Set vb up, or leave it all NULL (off). */
static void behind_start(struct rc_behind *vb, const struct rc_consumer_args *a,
			 const struct rc_image_hashes *h, uint64_t first,
			 bool block0_held)
{
	struct rc_dev *dst = a->dst;
	const char *how = "";

	memset(vb, 0, sizeof *vb);
	if (!a->verify || !a->hashes || !block0_held || a->stream ||
	    !dst->be->open_readback || dst->be->write_submit)
		return;
	vb->first = first;
	vb->h = h;
	vb->have = calloc(h->nblocks, 1);
	vb->got = malloc(h->nblocks * sizeof *vb->got);
	if (!vb->have || !vb->got ||
	    posix_memalign(&vb->buf, RC_ALIGN, h->block_size) ||
	    !(dst->caps & RC_CAP_BLOCKDEV) ||
	    dst->be->open_readback(dst, &vb->rd, &how) < 0 ||
	    !(vb->rd->caps & RC_CAP_DIRECT))
		behind_free(vb);
}

/* Is there a written block left to read back? */
static bool behind_pending(const struct rc_behind *vb, uint64_t released)
{
	return vb->rd && vb->next_k < released;
}

/* Read back the next written block, if any.  A read error stops the
 * reading behind: the final pass reports it. */
static void behind_step(struct rc_behind *vb, uint64_t released,
			const char *spec, uint64_t *counter)
{
	char err[256];
	uint64_t b;
	uint32_t len;

	if (!behind_pending(vb, released))
		return;
	b = rc_seq_block(vb->first + vb->next_k++, vb->h->nblocks);
	len = rc_block_len(vb->h->image_size, vb->h->block_size, b);
	/* Block 0 is held back, written last.  A zero block may be a hole
	 * now: the final pass asks the target where its holes are, once the
	 * target no longer changes; here data blocks are simply read. */
	if (b == 0 || vb->h->hash[b] == rc_zero_hash(len))
		return;
	const struct rc_readback rb = { vb->rd, NULL, vb->buf, vb->h, spec,
					err, sizeof err };

	if (rc_readback_hash(&rb, b, &vb->got[b]) < 0)
		behind_stop(vb);
	else {
		vb->have[b] = 1;
		set_counter(counter, *counter + len);
	}
}

/* Is the target still what was verified?  A file truncated, extended,
 * removed or replaced at its path after the read-back, or a device node
 * that names another disk now, is not reported verified: 0, else 1 (no
 * longer the image: a mismatch) or -1 (no longer the target), with err. */
static int still_the_target(struct rc_dev *dst, uint64_t size, char *err,
			    size_t errlen)
{
	struct stat a, b;
	int named;

	if (dst->fd < 0 || fstat(dst->fd, &a) < 0 ||
	    (dst->caps & RC_CAP_SEQUENTIAL))
		return 0; /* nothing to look at, or not the image's bytes */
	named = stat(dst->path, &b);
	if (S_ISREG(a.st_mode)) {
		if ((uint64_t)a.st_size != size) {
			snprintf(err, errlen,
				 "target %s changed after it was verified: it holds %lld bytes, the image has %llu",
				 dst->spec, (long long)a.st_size,
				 (unsigned long long)size);
			return 1;
		}
		if (a.st_nlink == 0) {
			snprintf(err, errlen,
				 "target %s was removed after it was verified",
				 dst->spec);
			return -1;
		}
		if (named == 0 &&
		    (a.st_dev != b.st_dev || a.st_ino != b.st_ino)) {
			snprintf(err, errlen,
				 "target %s was replaced after it was verified: its name now holds another file",
				 dst->spec);
			return -1;
		}
	} else if (S_ISBLK(a.st_mode) && named == 0 &&
		   (!S_ISBLK(b.st_mode) || a.st_rdev != b.st_rdev)) {
		snprintf(err, errlen,
			 "target %s names another device than the one verified",
			 dst->spec);
		return -1;
	}
	return 0;
}

/* --skip-equal: the target read before each block is written
 * (struct rc_equal, the consumer's state). */
static void equal_stop(struct rc_equal *eq)
{
	rc_dev_close(eq->rd);
	free(eq->buf);
	eq->rd = NULL;
	eq->buf = NULL;
}

/* Open the target for reading, or say why every block is written. */
static void equal_start(struct rc_equal *eq, const struct rc_consumer_args *a)
{
	struct rc_dev *dst = a->dst;
	const char *how = "";

	memset(eq, 0, sizeof *eq);
	if (!a->skip_equal)
		return;
	if (!dst->be->open_readback || (dst->caps & RC_CAP_SEQUENTIAL)) {
		rc_msg("target %s cannot be read before it is written: --skip-equal writes every block",
		       dst->spec);
		return;
	}
	if (posix_memalign(&eq->buf, RC_ALIGN, a->ring->block_size) ||
	    dst->be->open_readback(dst, &eq->rd, &how) < 0) {
		rc_msg("target %s: cannot open it for reading: --skip-equal writes every block",
		       dst->spec);
		equal_stop(eq);
	}
}

/* Does the target already hold the block (XXH3 of what it holds equals
 * the source block's)?  A read error or a short read means no: the block
 * is written, and the read-back at the end has the last word. */
static bool target_holds(const struct rc_equal *eq, uint64_t off,
			 uint32_t len, uint64_t hash, uint32_t block_size)
{
	/* O_DIRECT wants whole sectors: the tail is read rounded up. */
	uint32_t alen = (len + RC_ALIGN - 1) / RC_ALIGN * RC_ALIGN;
	ssize_t n;

	if (!eq->rd)
		return false;
	if (alen > block_size)
		alen = block_size;
	n = eq->rd->be->pread(eq->rd, eq->buf, alen, off);
	return n >= (ssize_t)len && rc_block_hash(eq->buf, len) == hash;
}

/* Did our own scan find the target holds block b as our manifest has it
 * (hash)? */
static bool held_here(const struct rc_consumer_args *a, uint64_t b,
		      uint64_t hash)
{
	return a->held && a->expect && (a->held[b / 8] & (1u << (b % 8))) &&
	       a->expect[b] == hash;
}

static void count_equal(struct rc_result *res, uint32_t len)
{
	set_counter(&res->skipped_bytes, res->skipped_bytes + len);
}

/* A block taken from the ring and not yet released: its write may still be
 * in flight (asynchronous targets), and its slot stays ours until the
 * write is done.  Slots are released in ring order, because a FREE post is
 * a count, not a name: releasing a later slot first would let the producer
 * overwrite an earlier one still being sent. */
struct rc_pending {
	uint64_t seq, block, off, hash;
	uint32_t slot, len;
	bool async; /* written by write_submit, not yet reaped */
	bool equal; /* --skip-equal: the target held it, not written */
};

/* Reap asynchronous writes until at most keep are in flight, then release
 * every finished block at the head of the FIFO. */
static int retire(struct rc_consumer *cs, uint32_t keep)
{
	const struct rc_consumer_args *a = cs->a;
	struct rc_ring *r = a->ring;
	struct rc_result *res = a->res;
	uint32_t released = 0;
	char *err = res->error;
	size_t errlen = sizeof res->error;
	int rc;

	if (cs->nasync) {
		uint32_t i;

		rc = a->dst->be->write_reap(a->dst, keep);
		if (rc < 0) {
			const struct rc_pending *p;

			/* The oldest write still in flight is the one. */
			for (i = 0; !cs->q[(cs->head + i) % r->nslots].async;
			     i++)
				;
			p = &cs->q[(cs->head + i) % r->nslots];
			/* Cancelled because we were evicted or interrupted:
			 * that is the news, not the write. */
			if (rc == -ECANCELED &&
			    (rc = rc_proto_check(r, &a->reg)) < 0)
				return ring_error(r, rc, err, errlen);
			if (rc == 0 && rc_interrupted)
				return ring_error(r, -EINTR, err, errlen);
			return write_failed(a->dst, rc ? rc : -ECANCELED,
					    p->len, p->off, err, errlen);
		}
		for (i = 0; rc > 0 && i < cs->count; i++) {
			struct rc_pending *p =
				&cs->q[(cs->head + i) % r->nslots];

			if (p->async) {
				p->async = false;
				cs->nasync--;
				rc--;
			}
		}
	}
	while (cs->count && !cs->q[cs->head].async) {
		const struct rc_pending *p = &cs->q[cs->head];

		if (!rc_proto_slot_holds(r, p->seq)) {
			/* Evicted (the producer stopped waiting for us), or
			 * the ring failed: that is why. */
			rc = rc_proto_check(r, &a->reg);
			if (rc < 0)
				return ring_error(r, rc, err, errlen);
			snprintf(err, errlen,
				 "ring slot %u was overwritten while block at offset %llu was written",
				 p->slot, (unsigned long long)p->off);
			return -EPROTO;
		}
		released++;
		if (a->hashes)
			a->hashes[p->block] = p->hash;
		cs->done++;
		rc_proto_progress(r, &a->reg, cs->done, p->len);
		set_counter(&res->bytes_written, res->bytes_written + p->len);
		if (p->equal)
			count_equal(res, p->len);
		cs->head = (cs->head + 1) % r->nslots;
		cs->count--;
	}
	/* One post releases them all. */
	if (released && (rc = rc_proto_release(r, &a->reg, released)) < 0)
		return ring_error(r, rc, err, errlen);
	return 0;
}

/* The next slot.  While the producer has nothing for us, keep our writes
 * in flight moving, or read back what is written, rather than sleep in
 * semop.  -EAGAIN: a try (wait_ms 0) found nothing yet. */
static int next_avail(struct rc_consumer *cs, char *err, size_t errlen)
{
	const struct rc_consumer_args *a = cs->a;
	struct rc_ring *r = a->ring;
	int rc;

	while (cs->nasync || behind_pending(&cs->vb, cs->done)) {
		rc = rc_proto_wait_block(r, &a->reg, 0);
		if (rc != -EAGAIN)
			return rc < 0 ? ring_error(r, rc, err, errlen) : 0;
		if (cs->nasync) {
			rc = retire(cs, cs->nasync - 1);
			if (rc < 0)
				return rc;
		} else {
			behind_step(&cs->vb, cs->done, a->dst->spec,
				    &a->res->behind_bytes);
		}
		if (!cs->wait_ms)
			return -EAGAIN;
	}
	do
		rc = rc_proto_wait_block(r, &a->reg, cs->wait_ms);
	while (rc == -EAGAIN && cs->wait_ms < 0);
	if (rc == -EAGAIN)
		return rc;
	return rc < 0 ? ring_error(r, rc, err, errlen) : 0;
}

/* Set the copy up: the FIFO of taken blocks and the asynchronous window. */
static int copy_begin(struct rc_consumer *cs)
{
	const struct rc_consumer_args *a = cs->a;
	struct rc_ring *r = a->ring;
	struct rc_result *res = a->res;

	cs->q = calloc(r->nslots, sizeof *cs->q);
	if (!cs->q) {
		snprintf(res->error, sizeof res->error, "out of memory");
		return -ENOMEM;
	}
	/* Half the ring in flight: the producer keeps the other half to
	 * read ahead into. */
	if (a->dst->be->write_submit) {
		cs->window = r->nslots / 2 ? r->nslots / 2 : 1;
		/* No more than the backend can hold (-b 64K and a 16M ring
		 * used to ask NBD for 128 and fail its 65th write). */
		/* The window is what stays in flight after a submit, so
		 * one more is in flight for a moment. */
		if (cs->window >= a->dst->be->max_in_flight)
			cs->window = a->dst->be->max_in_flight > 1
					     ? a->dst->be->max_in_flight - 1
					     : 1;
	}
	return 0;
}

/* The slot header is input: it must claim exactly the block we wait for.
 * Only a stream's last block may be short, and only in a ring we know
 * reads a stream (*last, *len its length). */
static int check_slot(struct rc_consumer *cs, const struct rc_slot_view *s,
		      uint64_t seq, uint64_t block, uint32_t *len, bool *last)
{
	const struct rc_consumer_args *a = cs->a;
	struct rc_result *res = a->res;
	char *err = res->error;
	size_t errlen = sizeof res->error;
	uint64_t off = block * a->ring->block_size;

	*last = a->stream && (s->flags & RC_SLOT_END);
	if (s->seq != seq || s->block != block ||
	    (*last ? s->len > *len : s->len != *len)) {
		snprintf(err, errlen,
			 "ring slot %u holds seq %llu block %llu len %u, expected seq %llu block %llu len %u",
			 rc_seq_slot(seq, a->ring->nslots),
			 (unsigned long long)s->seq,
			 (unsigned long long)s->block, s->len,
			 (unsigned long long)seq, (unsigned long long)block,
			 *len);
		return -EPROTO;
	}
	if (*last)
		*len = s->len;
	/* A device holds what it holds: a stream that outgrows it fails
	 * this target alone. */
	if (a->stream && a->dst->size < off + *len) {
		snprintf(err, errlen,
			 "target %s: the stream outgrew it: it holds %llu bytes, the block at offset %llu ends at %llu",
			 a->dst->spec, (unsigned long long)a->dst->size,
			 (unsigned long long)off,
			 (unsigned long long)(off + *len));
		return -ENOSPC;
	}
	return 0;
}

/* Write the block just taken (p, the FIFO's newest), or hold it back
 * (block 0), or find the target holds it already. */
static int write_taken(struct rc_consumer *cs, struct rc_pending *p,
		       const unsigned char *data, bool zero)
{
	const struct rc_consumer_args *a = cs->a;
	struct rc_result *res = a->res;
	char *err = res->error;
	size_t errlen = sizeof res->error;
	uint32_t len = p->len;
	uint64_t off = p->off;
	int rc = 0;

	if (p->block == 0 && cs->block0) {
		/* Written last: see rc_consumer_finish. */
		if (!zero)
			memcpy(cs->block0, data, len);
		cs->block0_len = len;
		cs->block0_zero = zero;
	} else if (len == 0) {
		/* A stream that ended on a block boundary. */
	} else if (cs->eq.rd && held_here(a, p->block, p->hash)) {
		p->equal = true; /* our scan read it before we registered */
	} else if (target_holds(&cs->eq, off, len, p->hash,
				a->ring->block_size)) {
		p->equal = true; /* counted when released */
	} else if (zero) {
		rc = write_zero_block(a, len, off, err, errlen);
	} else if (cs->window) {
		rc = a->dst->be->write_submit(a->dst, data, len, off);
		if (rc < 0) {
			write_failed(a->dst, rc, len, off, err, errlen);
		} else {
			p->async = true;
			cs->nasync++;
		}
	} else {
		rc = write_block(a->dst, data, len, off, err, errlen);
	}
	return rc;
}

/* A HELD slot (p, the FIFO's next): the producer read nothing, because
 * every consumer of the block said it holds it.  Shared memory is input:
 * only our own scan and our own manifest let us take it; anything else
 * fails this target, and nothing is written for it. */
static int take_held(struct rc_consumer *cs, struct rc_pending *p)
{
	const struct rc_consumer_args *a = cs->a;
	struct rc_result *res = a->res;

	if (!held_here(a, p->block, p->hash)) {
		snprintf(res->error, sizeof res->error,
			 "target %s: the producer did not read block %llu (offset %llu), saying every consumer holds it, but this target was not found to hold it: not written",
			 a->dst->spec, (unsigned long long)p->block,
			 (unsigned long long)p->off);
		return -EPROTO;
	}
	cs->count++;
	if (p->block == 0 && cs->block0) {
		cs->block0_len = p->len;
		cs->block0_held = true; /* counted at the end */
	} else {
		p->equal = true; /* counted when released */
	}
	return retire(cs, cs->window);
}

/* Copy block k of our pass: 0, 1 when it was a stream's last block,
 * -EAGAIN (a try found nothing yet), or -errno with the error. */
static int copy_block(struct rc_consumer *cs)
{
	const struct rc_consumer_args *a = cs->a;
	struct rc_ring *r = a->ring;
	struct rc_result *res = a->res;
	char *err = res->error;
	size_t errlen = sizeof res->error;
	uint64_t seq = a->reg.first + cs->k;
	struct rc_slot_view s;
	uint32_t slot = rc_seq_slot(seq, r->nslots);
	uint64_t block = rc_seq_block(seq, r->nblocks);
	uint32_t len = rc_block_len(r->image_size, r->block_size, block);
	uint64_t off = block * r->block_size;
	struct rc_pending *p;
	bool zero, last;
	int rc;

	rc = next_avail(cs, err, errlen);
	if (rc < 0)
		return rc;
	rc_proto_slot_view(r, seq, &s);
	rc = check_slot(cs, &s, seq, block, &len, &last);
	if (rc < 0)
		return rc;
	p = &cs->q[(cs->head + cs->count) % r->nslots];
	*p = (struct rc_pending){ .seq = seq, .block = block, .off = off,
				  .hash = s.hash, .slot = slot, .len = len };
	zero = s.flags & RC_SLOT_ZERO;
	if (s.flags & RC_SLOT_HELD)
		return take_held(cs, p);
	if (!slot_data_ok(r, slot, seq, s.data, len, p->hash, zero)) {
		snprintf(err, errlen,
			 "checksum mismatch in ring slot %u (block at offset %llu): not written",
			 slot, (unsigned long long)off);
		return -EBADMSG;
	}
	cs->count++;
	rc = write_taken(cs, p, s.data, zero);
	if (rc < 0)
		return rc;
	rc = retire(cs, cs->window);
	if (rc < 0)
		return rc;
	if (last) {
		cs->stream_end = off + len;
		return 1;
	}
	return 0;
}

int rc_consumer_step(struct rc_consumer *cs)
{
	int rc;

	if (cs->k >= cs->a->ring->nblocks)
		return 0;
	rc = copy_block(cs);
	if (rc < 0)
		return rc;
	cs->k = rc == 1 ? cs->a->ring->nblocks : cs->k + 1;
	return cs->k < cs->a->ring->nblocks;
}

/* The copy's end: the last writes reaped and released. */
static int copy_end(struct rc_consumer *cs, int rc)
{
	const struct rc_consumer_args *a = cs->a;
	struct rc_ring *r = a->ring;
	struct rc_result *res = a->res;

	if (rc == 0 && cs->q)
		rc = retire(cs, 0);
	/* Evicted while the last writes were in flight: the producer may
	 * have refilled their slots under them, and no later wait would
	 * say so. */
	if (rc == 0 && !rc_proto_served(r, &a->reg)) {
		rc = rc_proto_check(r, &a->reg);
		if (rc < 0)
			ring_error(r, rc, res->error, sizeof res->error);
		else
			rc = 0;
	}
	free(cs->q);
	cs->q = NULL;
	return rc;
}

int rc_consumer_start(struct rc_consumer *c, const struct rc_consumer_args *a,
		      int wait_ms)
{
	struct rc_ring *r = a->ring;
	struct rc_dev *dst = a->dst;
	struct rc_result *res = a->res;
	char *err = res->error;
	size_t errlen = sizeof res->error;
	int rc;

	memset(c, 0, sizeof *c);
	c->a = a;
	c->wait_ms = wait_ms;
	c->t0 = rc_ring_now(r);
	c->h = (struct rc_image_hashes){
		.image_size = r->image_size,
		.block_size = r->block_size,
		.nblocks = r->nblocks,
		.hash = a->hashes,
	};
	c->stream_end = UINT64_MAX;
	res->status = RC_RES_PENDING;
	/* Our own liveness token and the entry: from now on our death is
	 * seen, and the entry is ours to leave. */
	rc = rc_proto_claim(r, &a->reg);
	if (rc < 0) {
		ring_error(r, rc, err, errlen);
		res->status = RC_RES_FAILED;
		return rc;
	}
	c->claimed = true;
	stop_ring = r;
	stop_reg = &a->reg;
	rc_io_should_stop = should_stop;
	/* Tell the invocation it may drop the token it held for us. */
	if (a->ready_fd >= 0) {
		ssize_t w = write(a->ready_fd, "1", 1);

		(void)w;
		close(a->ready_fd);
	}
	res->start_block = rc_seq_block(a->reg.first, r->nblocks);

	/* Block 0 (partition table, superblock) is written last, once every
	 * other block is on stable storage: a target interrupted mid-copy
	 * never looks like a complete image. */
	if (r->nblocks > 1 && !(dst->caps & RC_CAP_SEQUENTIAL) &&
	    posix_memalign(&c->block0, RC_ALIGN, r->block_size)) {
		c->block0 = NULL;
		snprintf(err, errlen, "out of memory for block 0");
		return -ENOMEM;
	}
	behind_start(&c->vb, a, &c->h, a->reg.first, c->block0 != NULL);
	equal_start(&c->eq, a);
	return copy_begin(c);
}

/* A stream's size is known now: the image is what it held. */
static int settle_stream(struct rc_consumer *c, int rc)
{
	const struct rc_consumer_args *a = c->a;
	struct rc_ring *r = a->ring;
	struct rc_dev *dst = a->dst;
	struct rc_result *res = a->res;
	char *err = res->error;
	size_t errlen = sizeof res->error;
	uint64_t stream_end = c->stream_end;

	if (rc == 0 && a->stream) {
		if (stream_end == UINT64_MAX) {
			snprintf(err, errlen,
				 "the stream holds more than %llu bytes, the most this block size allows: give --size, or a larger --block-size",
				 (unsigned long long)r->image_size);
			rc = -EFBIG;
		} else {
			c->h.image_size = stream_end;
			c->h.nblocks = (stream_end + r->block_size - 1) /
				       r->block_size;
			res->image_bytes = stream_end;
			/* A file grew as it was written: its backend cuts
			 * it to the stream's size. */
			rc = rc_dev_finish(dst, stream_end);
			if (rc < 0) {
				snprintf(err, errlen,
					 "target %s: truncate to %llu bytes: %s",
					 dst->spec,
					 (unsigned long long)stream_end,
					 strerror(-rc));
			}
		}
	} else {
		res->image_bytes = r->image_size;
	}
	return rc;
}

/* Flush, then write block 0 (held back) and flush again. */
static int write_block0(struct rc_consumer *c, int rc)
{
	const struct rc_consumer_args *a = c->a;
	struct rc_ring *r = a->ring;
	struct rc_dev *dst = a->dst;
	struct rc_result *res = a->res;
	char *err = res->error;
	size_t errlen = sizeof res->error;

	if (rc == 0) {
		res->phase = RC_PHASE_FLUSH; /* else still the copy's */
		rc = flush(dst, err, errlen);
	}
	if (rc == 0 && c->block0 && (c->block0_held ||
	    (a->hashes && target_holds(&c->eq, 0, c->block0_len, a->hashes[0],
					r->block_size)))) {
		/* Held: the read-back below has the last word. */
		count_equal(res, c->block0_len);
	} else if (rc == 0 && c->block0 && c->block0_len) {
		rc = c->block0_zero ? write_zero_block(a, c->block0_len, 0,
						       err, errlen)
				    : write_block(dst, c->block0,
						  c->block0_len, 0, err,
						  errlen);
		if (rc == 0)
			rc = flush(dst, err, errlen);
	}
	free(c->block0);
	c->block0 = NULL;
	equal_stop(&c->eq);
	/* Interrupted while flushing: the user asked to stop, so the
	 * read-back (minutes on a large disk) is not started. */
	if (rc == 0 && rc_interrupted) {
		snprintf(err, errlen,
			 "interrupted while flushing: not read back, not reported complete");
		rc = -EINTR;
	}
	return rc;
}

/* Read the target back (or say why not), and the image's digest. */
static int read_back(struct rc_consumer *c, int rc)
{
	const struct rc_consumer_args *a = c->a;
	struct rc_dev *dst = a->dst;
	struct rc_result *res = a->res;
	char *err = res->error;
	size_t errlen = sizeof res->error;
	struct rc_image_hashes *h = &c->h;

	if (rc == 0 && a->hashes && h->nblocks == 0) {
		/* An empty stream: nothing to read back but the size. */
		rc_digest(h, res->digest);
		rc_strlcpy(res->how, "size", sizeof res->how);
		if (still_the_target(dst, 0, err, errlen) == 0)
			res->verified = dst->be->open_readback != NULL;
		else
			res->status = RC_RES_MISMATCH;
		res->unverifiable = !dst->be->open_readback;
	} else if (rc == 0 && a->hashes) {
		if (a->verify && dst->be->open_readback) {
			struct rc_verified pre = { c->vb.have, c->vb.got };
			struct rc_verify_out v;
			int vr;

			res->phase = RC_PHASE_VERIFY;
			rc_verify_progress = &res->bytes_verified;
			vr = rc_verify_dev(dst, h, c->vb.have ? &pre : NULL,
					   &v);
			rc_verify_progress = NULL;
			rc_strlcpy(res->how, v.how, sizeof res->how);
			if (vr < 0) {
				rc_strlcpy(err, v.error, errlen);
				rc = vr;
			} else if (vr > 0) {
				char d[200];

				rc_verify_describe(&v, d, sizeof d);
				snprintf(err, errlen,
					 "verification failed: %s", d);
				rc_strlcpy(res->digest, v.digest,
					   sizeof res->digest);
				res->status = RC_RES_MISMATCH;
			} else {
				rc_strlcpy(res->digest, v.digest,
					   sizeof res->digest);
				vr = still_the_target(dst, h->image_size, err,
						      errlen);
				if (vr > 0)
					res->status = RC_RES_MISMATCH;
				else if (vr < 0)
					rc = -ESTALE;
				else
					res->verified = 1;
			}
		} else {
			/* --no-verify, or a sink such as null: that holds
			 * nothing to read back: the digest as copied. */
			res->unverifiable = !dst->be->open_readback;
			rc_digest(h, res->digest);
			rc_strlcpy(res->how, "none", sizeof res->how);
		}
	}
	return rc;
}

/* Close the target and say what happened. */
static int close_target(struct rc_consumer *c, int rc)
{
	const struct rc_consumer_args *a = c->a;
	struct rc_dev *dst = a->dst;
	struct rc_result *res = a->res;
	char *err = res->error;
	size_t errlen = sizeof res->error;

	if (rc == 0) {
		rc = rc_dev_close(dst);
		if (rc < 0)
			snprintf(err, errlen, "target %s: close: %s",
				 dst->spec, strerror(-rc));
	} else {
		rc_dev_close(dst);
	}
	/* Interrupted in its last moments (flush, read-back): the user
	 * asked to stop, so it is not reported ok, even if it would be. */
	if (rc == 0 && rc_interrupted && res->status != RC_RES_MISMATCH) {
		snprintf(err, errlen,
			 "interrupted after the copy, while it was flushed or read back: not reported complete");
		res->verified = 0;
		rc = -EINTR;
	}
	res->interrupted = rc < 0 && rc_interrupted;
	res->ns = rc_ring_now(a->ring) - c->t0;
	if (res->status != RC_RES_MISMATCH)
		res->status = rc == 0 ? RC_RES_OK : RC_RES_FAILED;
	return rc;
}

int rc_consumer_finish(struct rc_consumer *c, int rc)
{
	const struct rc_consumer_args *a = c->a;
	struct rc_ring *r = a->ring;

	rc = copy_end(c, rc);
	behind_stop(&c->vb);
	/* We have read all we need (or failed): free the producer now, not
	 * after the flush and verification. */
	rc_proto_leave(r, &a->reg);
	stop_ring = NULL; /* no longer served: flush and verify go on */
	/* A producer that died after publishing all we needed leaves the
	 * ring to the last one out, whatever its copy's outcome. */
	if (rc_proto_producer_gone(r))
		last_one_out(r, a->rdv);
	rc = settle_stream(c, rc);
	rc = write_block0(c, rc);
	rc = read_back(c, rc);
	behind_free(&c->vb);
	return close_target(c, rc);
}

/* The binary runs the steps the schedule test runs: claim, copy block by
 * block, then finish (leave, a stream's size, block 0, read back,
 * close). */
int rc_consumer_run(const struct rc_consumer_args *a)
{
	struct rc_consumer c;
	int rc;

	rc_ring_populate(a->ring);
	rc = rc_consumer_start(&c, a, -1);

	if (!c.claimed)
		return rc;
	if (rc == 0)
		while ((rc = rc_consumer_step(&c)) > 0)
			;
	return rc_consumer_finish(&c, rc);
}
