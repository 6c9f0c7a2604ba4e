/* ringcopy - a consumer: copies its nblocks slots from the ring to a target.
 *
 * A consumer that starts at sequence number s needs exactly s .. s+nblocks-1:
 * the end of the image from its start block, then, after the producer wraps
 * around, block 0 up to its start block ([0039], [0057]).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/sem.h>
#include <unistd.h>
#include <xxhash.h>

#include "ringcopy/core.h"
#include "ringcopy/util.h"

#define WAIT_MS 500

static void set_counter(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* Why the producer is not delivering, or NULL to keep waiting. */
static const char *check_producer(struct rc_ring *r, char *buf, size_t len)
{
	const struct rc_ring_hdr *h = r->hdr;

	if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) == RC_RING_FAILED) {
		snprintf(buf, len, "%.*s", (int)sizeof h->err_msg,
			 h->err_msg);
		return buf;
	}
	if (rc_sem_get(r, RC_SEM_PALIVE) == 0 &&
	    !rc_proc_alive(h->producer_pid, h->producer_start)) {
		snprintf(buf, len, "producer died (pid %d)",
			 (int)h->producer_pid);
		return buf;
	}
	return NULL;
}

static int wait_avail(struct rc_ring *r, uint32_t idx, char *err,
		      size_t errlen)
{
	struct sembuf op = { (unsigned short)RC_SEM_AVAIL(idx), -1, 0 };
	const char *why;

	for (;;) {
		int rc = rc_semop(r->semid, &op, 1, WAIT_MS);

		if (rc == 0)
			return 0;
		if (rc == -EINTR) {
			snprintf(err, errlen, "interrupted");
			return rc;
		}
		if (rc == -EIDRM) {
			snprintf(err, errlen, "the ring was removed");
			return rc;
		}
		if (rc != -EAGAIN) {
			snprintf(err, errlen, "semop: %s", strerror(-rc));
			return rc;
		}
		why = check_producer(r, err, errlen);
		if (why)
			return -EPIPE;
		if (r->ctab[idx].state != RC_CONS_ACTIVE) {
			snprintf(err, errlen, "evicted from the ring");
			return -ESTALE;
		}
	}
}

static void leave(struct rc_ring *r, uint32_t idx)
{
	struct sembuf fr = { (unsigned short)RC_SEM_FREE(idx), 1, 0 };
	struct sembuf join = { RC_SEM_JOIN, 1, 0 };
	struct sembuf tok = { (unsigned short)RC_SEM_ALIVE(idx), -1,
			      SEM_UNDO | IPC_NOWAIT };

	/* One FREE post unblocks a producer that still counted us.  It goes
	 * before the entry is marked: once LEAVING, the entry may be reset
	 * and reused, and a late post would credit its next consumer with a
	 * slot it has not read. */
	rc_semop(r->semid, &fr, 1, -1);
	if (rc_ring_lock(r) == 0) {
		if (r->ctab[idx].state == RC_CONS_ACTIVE &&
		    r->ctab[idx].pid == getpid())
			r->ctab[idx].state = RC_CONS_LEAVING;
		rc_ring_unlock(r);
	}
	rc_semop(r->semid, &join, 1, -1);
	rc_semop(r->semid, &tok, 1, -1);
}

int rc_consumer_run(struct rc_ring *r, uint32_t idx, struct rc_dev *dst,
		    struct rc_result *res, int ready_fd)
{
	struct sembuf tok = { (unsigned short)RC_SEM_ALIVE(idx), 1, SEM_UNDO };
	struct sembuf fr = { (unsigned short)RC_SEM_FREE(idx), 1, 0 };
	struct rc_cons_ent *c = &r->ctab[idx];
	uint64_t first, k, t0 = rc_now_ns();
	char *err = res->error;
	size_t errlen = sizeof res->error;
	int rc = 0;

	res->status = RC_RES_PENDING;
	/* Our own liveness token: from now on our death is seen. */
	if (rc_semop(r->semid, &tok, 1, -1) < 0) {
		snprintf(err, errlen, "the ring was removed before the copy began");
		res->status = RC_RES_FAILED;
		return -EIDRM;
	}
	/* Tell the invocation it may drop the token it held for us. */
	if (ready_fd >= 0) {
		ssize_t w = write(ready_fd, "1", 1);

		(void)w;
		close(ready_fd);
	}
	if (rc_ring_lock(r) < 0) {
		snprintf(err, errlen, "the ring was removed before the copy began");
		res->status = RC_RES_FAILED;
		return -EIDRM;
	}
	c->pid = getpid();
	c->pstart = rc_proc_start(getpid());
	first = c->first_seq;
	rc_ring_unlock(r);
	res->start_block = rc_seq_block(first, r->nblocks);

	for (k = 0; k < r->nblocks; k++) {
		uint64_t seq = first + k;
		uint32_t slot = rc_seq_slot(seq, r->nslots);
		const volatile struct rc_slot_hdr *s = &r->shdr[slot];
		const unsigned char *data = rc_slot_data(r, slot);
		uint64_t block = rc_seq_block(seq, r->nblocks);
		uint32_t len = rc_block_len(r->image_size, r->block_size,
					    block);
		uint64_t off = block * r->block_size;
		ssize_t w;

		rc = wait_avail(r, idx, err, errlen);
		if (rc < 0)
			break;
		if (check_producer(r, err, errlen)) {
			rc = -EPIPE;
			break;
		}
		/* The slot header is input: it must claim exactly the
		 * block we wait for. */
		if (s->seq != seq || s->block != block || s->len != len) {
			snprintf(err, errlen,
				 "ring slot %u holds seq %llu block %llu len %u, expected seq %llu block %llu len %u",
				 slot, (unsigned long long)s->seq,
				 (unsigned long long)s->block, s->len,
				 (unsigned long long)seq,
				 (unsigned long long)block, len);
			rc = -EPROTO;
			break;
		}
		if (XXH3_64bits(data, len) != s->hash) {
			snprintf(err, errlen,
				 "checksum mismatch in ring slot %u (block at offset %llu): not written",
				 slot, (unsigned long long)off);
			rc = -EBADMSG;
			break;
		}
		w = rc_dev_pwrite(dst, data, len, off);
		if (w < 0) {
			snprintf(err, errlen, "target %s: write of %u bytes at offset %llu: %s",
				 dst->spec, len, (unsigned long long)off,
				 strerror((int)-w));
			rc = (int)w;
			break;
		}
		if (s->seq != seq) {
			snprintf(err, errlen,
				 "ring slot %u was overwritten while block at offset %llu was written",
				 slot, (unsigned long long)off);
			rc = -EPROTO;
			break;
		}
		rc = rc_semop(r->semid, &fr, 1, -1);
		if (rc < 0) {
			snprintf(err, errlen, "the ring was removed");
			break;
		}
		set_counter(&c->blocks_done, k + 1);
		set_counter(&c->bytes_written, c->bytes_written + len);
		res->bytes_written += len;
	}
	if (rc == 0) {
		rc = rc_dev_flush(dst);
		if (rc < 0)
			snprintf(err, errlen, "target %s: fsync: %s", dst->spec,
				 strerror(-rc));
	}
	leave(r, idx);
	if (rc == 0) {
		rc = rc_dev_close(dst);
		if (rc < 0)
			snprintf(err, errlen, "target %s: close: %s", dst->spec,
				 strerror(-rc));
	} else {
		rc_dev_close(dst);
	}
	res->ns = rc_now_ns() - t0;
	res->status = rc == 0 ? RC_RES_OK : RC_RES_FAILED;
	return rc;
}
