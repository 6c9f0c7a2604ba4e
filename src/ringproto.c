/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the shared-ring protocol: every verb on the semaphores.
 *
 * See include/ringcopy/ringproto.h for the verbs and doc/design.md for the
 * protocol; src/ringproto.pml is its model.  Everything read from the
 * segment is input: a value is checked where it is used, and a ring that
 * stops making sense fails with a message that names it.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <time.h>
#include <unistd.h>

#include "ringcopy/ringproto.h"
#include "ringcopy/util.h"

volatile int rc_interrupted;

/* Say what went wrong with ring r, naming it. */
static int why(struct rc_ring *r, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int why(struct rc_ring *r, int rc, const char *fmt, ...)
{
	char msg[sizeof r->why - 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(r->why, sizeof r->why, "ring (shm %d, sem %d): %s", r->shmid,
		 r->semid, msg);
	return rc;
}

int rc_proto_semop(int semid, struct sembuf *ops, size_t nops, int timeout_ms)
{
	uint64_t deadline = 0;
	struct timespec ts;
	size_t k;
	int rc;

	if (timeout_ms == 0)
		for (k = 0; k < nops; k++)
			ops[k].sem_flg |= IPC_NOWAIT;
	else if (timeout_ms > 0)
		deadline = rc_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		if (timeout_ms > 0) {
			uint64_t now = rc_now_ns();
			uint64_t left = now < deadline ? deadline - now : 0;

			ts.tv_sec = (time_t)(left / 1000000000u);
			ts.tv_nsec = (long)(left % 1000000000u);
			rc = semtimedop(semid, ops, nops, &ts);
		} else {
			rc = semop(semid, ops, nops);
		}
		if (rc == 0 || errno != EINTR || rc_interrupted)
			break;
	}
	if (rc < 0)
		rc = errno == EINVAL ? -EIDRM : -errno;
	/* The caller's operations as they were given. */
	if (timeout_ms == 0)
		for (k = 0; k < nops; k++)
			ops[k].sem_flg &= (short)~IPC_NOWAIT;
	return rc;
}

int rc_proto_lock_intr(struct rc_ring *r, bool interruptible)
{
	struct sembuf op = { RC_SEM_LOCK, -1, SEM_UNDO };
	uint64_t deadline = rc_now_ns() + RC_PROTO_LOCK_MS * UINT64_C(1000000);
	int rc;

	/* SEM_UNDO frees the lock when its holder dies; a lock that stays
	 * taken for seconds has a stopped holder or was set by hand. */
	for (;;) {
		rc = rc_proto_semop(r->semid, &op, 1, RC_PROTO_WAIT_MS);
		if (rc == 0)
			return 0;
		if (rc == -EINTR && interruptible)
			return why(r, rc, "interrupted while waiting for its lock");
		if (rc != -EAGAIN && rc != -EINTR)
			break;
		if (rc_now_ns() >= deadline)
			return why(r, -ETIMEDOUT,
				   "its lock was not released for %d s: a stopped process holds it, or its semaphores were set by hand",
				   RC_PROTO_LOCK_MS / 1000);
	}
	if (rc == -EIDRM)
		return why(r, rc, "the ring was removed");
	return why(r, rc, "semop (lock): %s", strerror(-rc));
}

int rc_proto_lock(struct rc_ring *r)
{
	return rc_proto_lock_intr(r, true);
}

void rc_proto_unlock(struct rc_ring *r)
{
	struct sembuf op = { RC_SEM_LOCK, 1, SEM_UNDO };

	/* ERANGE would mean someone raised LOCK by hand; the next lock
	 * still works (it is a count), so there is nothing to undo. */
	rc_proto_semop(r->semid, &op, 1, -1);
}

int rc_proto_semval(struct rc_ring *r, int idx)
{
	int v = semctl(r->semid, idx, GETVAL);

	return v < 0 ? (errno == EINVAL ? -EIDRM : -errno) : v;
}

int rc_proto_header_sane(struct rc_ring *r)
{
	const volatile struct rc_ring_hdr *h = r->hdr;
	uint32_t state = h->state;

	if (h->magic != RC_RING_MAGIC || h->version != RC_RING_VERSION ||
	    h->block_size != r->block_size || h->nslots != r->nslots ||
	    h->ncons != r->ncons || h->nblocks != r->nblocks ||
	    h->image_size != r->image_size || h->seg_size != r->size ||
	    (unsigned char *)r->base + h->data_off != r->data ||
	    h->need_bytes != (r->need ? RC_NEED_BYTES(r->nblocks) : 0))
		return why(r, -EPROTO,
			   "its header was overwritten: the shared memory no longer describes the ring it was");
	if (state < RC_RING_STARTING || state > RC_RING_FAILED)
		return why(r, -EPROTO, "its state %u makes no sense", state);
	return 0;
}

/* This process as the protocol names it (a registrant, a consumer). */
static pid_t self(const struct rc_ring *r)
{
	return r->self ? r->self : getpid();
}

/* The producer's identity, as recorded when we last looked under LOCK. */
static bool producer_running(struct rc_ring *r)
{
	return rc_proc_alive(r->producer_pid, r->producer_start);
}

bool rc_proto_producer_alive(struct rc_ring *r)
{
	const volatile struct rc_ring_hdr *h = r->hdr;

	return rc_proto_semval(r, RC_SEM_PALIVE) > 0 &&
	       rc_proc_alive(h->producer_pid, h->producer_start);
}

static enum rc_live live_of(uint32_t state)
{
	switch (state) {
	case RC_CONS_FREE: return RC_LIVE_FREE;
	case RC_CONS_ACTIVE: return RC_LIVE_COPYING;
	case RC_CONS_LEAVING: return RC_LIVE_LEAVING;
	case RC_CONS_EVICTED: return RC_LIVE_EVICTED;
	default: return RC_LIVE_UNKNOWN;
	}
}

int rc_proto_snapshot(struct rc_ring *r, struct rc_ring_hdr *h,
		      struct rc_cons_ent *ctab, enum rc_live *live,
		      bool *producer_alive)
{
	uint32_t i;
	int rc = rc_proto_lock(r);

	if (rc < 0)
		return rc;
	memcpy(h, r->hdr, sizeof *h);
	memcpy(ctab, r->ctab, sizeof *ctab * r->ncons);
	/* Under LOCK: a producer starts and closes under it. */
	*producer_alive = rc_proto_producer_alive(r);
	rc_proto_unlock(r);
	for (i = 0; i < r->ncons; i++)
		live[i] = live_of(ctab[i].state);
	return 0;
}

/* Ring the doorbell: JOIN becomes 1 if it was 0.  Already 1 means the
 * producer has yet to look, and it will see our change then. */
static void doorbell(struct rc_ring *r)
{
	struct sembuf ops[2] = { { RC_SEM_JOIN, 0, IPC_NOWAIT },
				 { RC_SEM_JOIN, 1, 0 } };

	rc_proto_semop(r->semid, ops, 2, -1);
}

/* Post count to one semaphore, in steps a semop can take; say what
 * went wrong. */
static int post(struct rc_ring *r, int idx, uint32_t count, const char *what)
{
	while (count) {
		short step = count > SHRT_MAX ? SHRT_MAX : (short)count;
		struct sembuf op = { (unsigned short)idx, step, 0 };
		int rc = rc_proto_semop(r->semid, &op, 1, -1);

		if (rc == -ERANGE)
			return why(r, rc,
				   "%s would pass the kernel's limit (SEMVMX): its semaphores were set by hand",
				   what);
		if (rc == -EIDRM)
			return why(r, rc, "the ring was removed");
		if (rc < 0)
			return why(r, rc, "semop (%s): %s", what,
				   strerror(-rc));
		count -= (uint32_t)step;
	}
	return 0;
}

/* ---- the registrant ------------------------------------------------------ */

/* A skipping consumer's blocks: every block its target lacks (held[b]
 * clear) is needed from now on (LOCK held, before the entry is ACTIVE:
 * the producer's next select sees both the bits and the flag).  The bits
 * are never cleared: a block needed by nobody any more is read anyway,
 * which is safe; a block skipped that someone lacks would not be. */
static void need_lacking(struct rc_ring *r, const uint8_t *held)
{
	uint64_t b;

	for (b = 0; b < r->nblocks; b++)
		if (!(held[b / 8] & (1u << (b % 8))))
			r->need[b / 64] |= UINT64_C(1) << (b % 64);
}

int rc_proto_register(struct rc_ring *r, uint32_t n, const char *const *names,
		      const bool *sequential, struct rc_reg *out,
		      uint64_t *read_before)
{
	return rc_proto_register_held(r, n, names, sequential, NULL, out,
				      read_before);
}

int rc_proto_register_held(struct rc_ring *r, uint32_t n,
			   const char *const *names, const bool *sequential,
			   const uint8_t *const *held, struct rc_reg *out,
			   uint64_t *read_before)
{
	struct sembuf ops[RC_CONS_MAX];
	uint64_t next = r->hdr->next_seq, pstart = rc_proc_start(getpid());
	uint32_t i, k = 0;
	int rc;

	if (n > RC_CONS_MAX)
		return why(r, -EINVAL, "%u consumers asked, at most %u", n,
			   RC_CONS_MAX);
	if (next >= RC_SEQ_LIMIT)
		return why(r, -EPROTO,
			   "its next sequence number %llu is out of range: the shared memory was overwritten",
			   (unsigned long long)next);
	*read_before = r->hdr->bytes_read;
	for (i = 0; i < r->ncons && k < n; i++)
		if (r->ctab[i].state == RC_CONS_FREE)
			out[k++].idx = i;
	if (k < n)
		return why(r, -EBUSY,
			   "it has room for %u more consumers, %u asked (capacity %u)",
			   k, n, r->ncons);
	for (k = 0; k < n; k++) {
		struct rc_cons_ent *c = &r->ctab[out[k].idx];
		uint32_t e = out[k].idx;
		uint64_t gen = c->gen + 1;

		if (semctl(r->semid, RC_SEM_AVAIL(e), SETVAL, 0) < 0 ||
		    semctl(r->semid, RC_SEM_FREE(e), SETVAL, (int)r->nslots) < 0)
			return why(r, -errno, "semctl SETVAL: %s",
				   strerror(errno));
		ops[k].sem_num = (unsigned short)RC_SEM_ALIVE(e);
		ops[k].sem_op = 1;
		ops[k].sem_flg = SEM_UNDO;
		memset(c, 0, sizeof *c);
		c->gen = gen;
		c->pid = self(r);
		c->pstart = pstart;
		/* A sequential target cannot take the end of the image
		 * before its start: it waits for the next pass's block 0. */
		c->first_seq = sequential && sequential[k]
				       ? RC_WIN_SEQ_START(next, r->nblocks)
				       : next;
		c->start_ns = rc_now_ns();
		rc_strlcpy(c->target, names[k], sizeof c->target);
		/* Without a bitmap in the ring, or a held map of its own, a
		 * consumer needs every block. */
		if (r->need && held && held[k]) {
			need_lacking(r, held[k]);
			c->skips = 1;
		}
		out[k].gen = gen;
		out[k].first = c->first_seq;
		out[k].owner = self(r);
	}
	/* Our tokens: the producer sees the entries alive from the moment
	 * they are active. */
	rc = n ? rc_proto_semop(r->semid, ops, n, -1) : 0;
	if (rc < 0)
		return why(r, rc, "semop (register): %s", strerror(-rc));
	for (k = 0; k < n; k++)
		r->ctab[out[k].idx].state = RC_CONS_ACTIVE;
	doorbell(r);
	return 0;
}

static void drop_token(struct rc_ring *r, uint32_t idx)
{
	struct sembuf op = { (unsigned short)RC_SEM_ALIVE(idx), -1,
			     SEM_UNDO };

	rc_proto_semop(r->semid, &op, 1, 0);
}

void rc_proto_hand_off(struct rc_ring *r, const struct rc_reg *e)
{
	drop_token(r, e->idx);
}

/* Take entry e out of service if it is still e's and held by pid
 * (LOCK held): one last credit for a producer that still counts it, then
 * LEAVING.  Both in one LOCK section, so that no later registration of the
 * entry can receive the credit. */
static bool leave_locked(struct rc_ring *r, const struct rc_reg *e,
			 bool unclaimed_only)
{
	struct rc_cons_ent *c = &r->ctab[e->idx];

	if (c->state != RC_CONS_ACTIVE || c->gen != e->gen ||
	    c->pid != self(r) || (unclaimed_only && c->claimed))
		return false;
	post(r, RC_SEM_FREE(e->idx), 1, "a leaving consumer's credit");
	c->state = RC_CONS_LEAVING;
	return true;
}

void rc_proto_abandon(struct rc_ring *r, const struct rc_reg *e)
{
	bool left = false;

	if (rc_proto_lock_intr(r, false) == 0) {
		left = leave_locked(r, e, true);
		rc_proto_unlock(r);
	}
	if (left)
		doorbell(r);
	drop_token(r, e->idx);
}

/* ---- a consumer -------------------------------------------------------- */

int rc_proto_claim(struct rc_ring *r, const struct rc_reg *e)
{
	struct sembuf tok = { (unsigned short)RC_SEM_ALIVE(e->idx), 1,
			      SEM_UNDO };
	struct rc_cons_ent *c = &r->ctab[e->idx];
	int rc;

	/* Our own token first: from now on our death is seen. */
	rc = rc_proto_semop(r->semid, &tok, 1, -1);
	if (rc < 0)
		return why(r, rc, "the ring was removed before the copy began");
	rc = rc_proto_lock_intr(r, false);
	if (rc < 0) {
		drop_token(r, e->idx);
		return rc;
	}
	if (c->state != RC_CONS_ACTIVE || c->gen != e->gen ||
	    c->pid != e->owner || c->claimed || c->first_seq != e->first) {
		rc_proto_unlock(r);
		drop_token(r, e->idx);
		return why(r, -ESTALE,
			   "its consumer-table entry %u was given up before the copy began",
			   e->idx);
	}
	c->pid = self(r);
	c->pstart = rc_proc_start(getpid());
	c->claimed = 1;
	r->producer_pid = r->hdr->producer_pid;
	r->producer_start = r->hdr->producer_start;
	rc_proto_unlock(r);
	return 0;
}

int rc_proto_check(struct rc_ring *r, const struct rc_reg *e)
{
	const volatile struct rc_ring_hdr *h = r->hdr;
	const volatile struct rc_cons_ent *c = &r->ctab[e->idx];
	int rc;

	/* The producer's message first: it may have removed the ring after
	 * failing it, and its words say more than "removed". */
	if (__atomic_load_n(&r->hdr->state, __ATOMIC_ACQUIRE) ==
	    RC_RING_FAILED) {
		snprintf(r->why, sizeof r->why, "%.*s", (int)sizeof h->err_msg,
			 h->err_msg);
		r->why[sizeof r->why - 1] = '\0';
		return -EPIPE;
	}
	rc = rc_proto_header_sane(r);
	if (rc < 0)
		return rc;
	if (c->gen != e->gen || (c->pid != self(r) && c->pid != e->owner))
		return why(r, -EPROTO,
			   "consumer-table entry %u was taken from us: its shared memory was overwritten",
			   e->idx);
	if (c->state == RC_CONS_EVICTED)
		return why(r, -ESTALE,
			   "evicted from the ring: it made no progress for more than %u s (--stall-timeout)",
			   r->stall_ms / 1000);
	if (c->state != RC_CONS_ACTIVE)
		return why(r, -EPROTO,
			   "consumer-table entry %u was dropped by the producer (state %u) while it still copied: its liveness token was taken by hand",
			   e->idx, (unsigned)c->state);
	rc = rc_proto_semval(r, RC_SEM_PALIVE);
	if (rc == -EIDRM)
		return why(r, rc, "the ring was removed");
	if (rc == 0 && !producer_running(r)) {
		snprintf(r->why, sizeof r->why, "producer died (pid %d)",
			 (int)r->producer_pid);
		return -EPIPE;
	}
	return 0;
}

int rc_proto_wait_block(struct rc_ring *r, const struct rc_reg *e,
			int timeout_ms)
{
	struct sembuf op = { (unsigned short)RC_SEM_AVAIL(e->idx), -1, 0 };
	uint64_t deadline = timeout_ms > 0
				    ? rc_now_ns() + (uint64_t)timeout_ms * 1000000u
				    : 0;

	for (;;) {
		int slice = timeout_ms == 0 ? 0 : RC_PROTO_WAIT_MS;
		int rc;

		/* A signal that came during a write did not interrupt a
		 * semop: look at the flag too. */
		if (rc_interrupted)
			return why(r, -EINTR, "interrupted");
		if (timeout_ms > 0) {
			uint64_t now = rc_now_ns();

			if (now >= deadline)
				return -EAGAIN;
			if ((deadline - now) / 1000000u < (uint64_t)slice)
				slice = (int)((deadline - now) / 1000000u) + 1;
		}
		rc = rc_proto_semop(r->semid, &op, 1, slice);
		if (rc == 0) {
			/* A failed ring wakes everyone with a post. */
			if (__atomic_load_n(&r->hdr->state,
					    __ATOMIC_ACQUIRE) != RC_RING_FAILED &&
			    r->ctab[e->idx].state == RC_CONS_ACTIVE)
				return 0;
			rc = rc_proto_check(r, e);
			return rc < 0 ? rc : why(r, -EPROTO, "a block was published to an entry no longer served");
		}
		if (rc == -EINTR)
			return why(r, rc, "interrupted");
		if (rc != -EAGAIN && rc != -EIDRM)
			return why(r, rc, "semop (wait for a block): %s",
				   strerror(-rc));
		rc = rc_proto_check(r, e);
		if (rc < 0)
			return rc;
		if (timeout_ms == 0)
			return -EAGAIN;
	}
}

int rc_proto_release(struct rc_ring *r, const struct rc_reg *e,
		     uint32_t count)
{
	int rc = post(r, RC_SEM_FREE(e->idx), count, "a consumer's credit");

	/* Removed because the producer failed it: its words. */
	if (rc == -EIDRM && rc_proto_check(r, e) == -EPIPE)
		return -EPIPE;
	return rc;
}

void rc_proto_leave(struct rc_ring *r, const struct rc_reg *e)
{
	const struct rc_cons_ent *c = &r->ctab[e->idx];
	bool left = false, mine = true;

	/* An evicted entry stays evicted: the producer frees it once our
	 * token is gone.  An entry that is no longer ours holds no token of
	 * ours either: dropping one would take its new owner's. */
	if (rc_proto_lock_intr(r, false) == 0) {
		mine = c->gen == e->gen && c->pid == self(r) && c->claimed;
		left = leave_locked(r, e, false);
		rc_proto_unlock(r);
	}
	if (left)
		doorbell(r);
	if (mine)
		drop_token(r, e->idx);
}

bool rc_proto_served(struct rc_ring *r, const struct rc_reg *e)
{
	const volatile struct rc_cons_ent *c = &r->ctab[e->idx];

	return c->state == RC_CONS_ACTIVE && c->gen == e->gen;
}

bool rc_proto_producer_gone(struct rc_ring *r)
{
	return rc_proto_semval(r, RC_SEM_PALIVE) == 0;
}

void rc_proto_progress(struct rc_ring *r, const struct rc_reg *e,
		       uint64_t done, uint64_t bytes)
{
	struct rc_cons_ent *c = &r->ctab[e->idx];

	__atomic_store_n(&c->blocks_done, done, __ATOMIC_RELAXED);
	__atomic_store_n(&c->bytes_written,
			 __atomic_load_n(&c->bytes_written, __ATOMIC_RELAXED) +
				 bytes,
			 __ATOMIC_RELAXED);
}

void rc_proto_slot_view(struct rc_ring *r, uint64_t seq,
			struct rc_slot_view *v)
{
	uint32_t slot = rc_seq_slot(seq, r->nslots);
	const volatile struct rc_slot_hdr *s = &r->shdr[slot];

	/* The seq first, with acquire: the header and data it vouches
	 * for were stored before it. */
	v->slot = slot;
	v->seq = __atomic_load_n(&r->shdr[slot].seq, __ATOMIC_ACQUIRE);
	v->block = s->block;
	v->len = s->len;
	v->flags = s->flags;
	v->hash = s->hash;
	v->data = rc_slot_data(r, slot);
}

bool rc_proto_slot_holds(struct rc_ring *r, uint64_t seq)
{
	uint32_t slot = rc_seq_slot(seq, r->nslots);

	return __atomic_load_n(&r->shdr[slot].seq, __ATOMIC_ACQUIRE) == seq;
}

bool rc_proto_slot_checked(struct rc_ring *r, uint64_t seq)
{
	uint32_t slot = rc_seq_slot(seq, r->nslots);

	return __atomic_load_n(&r->shdr[slot].checked, __ATOMIC_ACQUIRE) ==
	       seq;
}

void rc_proto_slot_mark_checked(struct rc_ring *r, uint64_t seq)
{
	uint32_t slot = rc_seq_slot(seq, r->nslots);

	__atomic_store_n(&r->shdr[slot].checked, seq, __ATOMIC_RELEASE);
}

uint32_t rc_proto_free_entries(const struct rc_ring *r)
{
	uint32_t i, k = 0;

	for (i = 0; i < r->ncons; i++)
		if (r->ctab[i].state == RC_CONS_FREE)
			k++;
	return k;
}

bool rc_proto_last_out(struct rc_ring *r)
{
	uint32_t i, active = 0;

	if (rc_proto_lock_intr(r, false) < 0)
		return false;
	for (i = 0; i < r->ncons; i++)
		if (r->ctab[i].state == RC_CONS_ACTIVE &&
		    rc_proto_semval(r, RC_SEM_ALIVE(i)) > 0)
			active++;
	if (active || rc_proto_semval(r, RC_SEM_PALIVE) > 0) {
		rc_proto_unlock(r);
		return false;
	}
	/* Removing the set releases the lock with it. */
	semctl(r->semid, 0, IPC_RMID);
	shmctl(r->shmid, IPC_RMID, NULL);
	return true;
}

/* ---- the producer ------------------------------------------------------ */

int rc_proto_producer_start(struct rc_ring *r, struct rc_proto_prod *p)
{
	struct sembuf op = { RC_SEM_PALIVE, 1, SEM_UNDO };
	int rc = rc_proto_semop(r->semid, &op, 1, -1);

	if (rc < 0)
		return why(r, rc, "semop (producer token): %s", strerror(-rc));
	rc = rc_proto_lock_intr(r, false);
	if (rc < 0)
		return rc;
	r->hdr->producer_pid = getpid();
	r->hdr->producer_start = rc_proc_start(getpid());
	r->producer_pid = r->hdr->producer_pid;
	r->producer_start = r->hdr->producer_start;
	r->hdr->state = RC_RING_RUNNING;
	p->next = r->hdr->next_seq;
	rc_proto_unlock(r);
	return 0;
}

/* Is the table what a producer can serve (LOCK held)?  Every active entry
 * starts no later than a pass after the next sequence number, which is as
 * far ahead as a sequential joiner registers. */
static int table_sane(struct rc_ring *r, uint64_t n)
{
	uint32_t i;

	for (i = 0; i < r->ncons; i++) {
		const struct rc_cons_ent *c = &r->ctab[i];

		if (c->state > RC_CONS_EVICTED)
			return why(r, -EPROTO,
				   "consumer-table entry %u has state %u: its shared memory was overwritten",
				   i, (unsigned)c->state);
		if (c->state == RC_CONS_ACTIVE &&
		    c->first_seq > n + r->nblocks)
			return why(r, -EPROTO,
				   "consumer-table entry %u starts at sequence number %llu, past %llu: its shared memory was overwritten",
				   i, (unsigned long long)c->first_seq,
				   (unsigned long long)n);
	}
	return 0;
}

/* Is block n held by every consumer it is published to (LOCK held, the
 * need set fixed)?  Only when the producer has the manifest (its hash
 * goes into the slot), every member skips, and no registration so far
 * lacks the block.  A consumer registering later starts past n. */
static void need_held(struct rc_ring *r, struct rc_proto_prod *p)
{
	uint64_t b = rc_seq_block(p->n, r->nblocks);
	uint32_t k;

	p->held = p->skipping = false;
	if (!r->need || !r->expect || r->stream)
		return;
	for (k = 0; k < p->sel.nneed; k++)
		if (!r->ctab[p->sel.need[k]].skips)
			return;
	p->skipping = true;
	p->held = !(r->need[b / 64] & (UINT64_C(1) << (b % 64)));
}

int rc_proto_select(struct rc_ring *r, struct rc_proto_prod *p,
		    bool close_if_idle)
{
	struct rc_ring_hdr *h = r->hdr;
	uint32_t active;
	int rc = rc_proto_lock_intr(r, false);

	if (rc < 0)
		return rc;
	for (;;) {
		if (h->next_seq != p->next) {
			rc = why(r, -EPROTO,
				 "its next sequence number was changed from %llu to %llu behind the producer's back",
				 (unsigned long long)p->next,
				 (unsigned long long)h->next_seq);
			break;
		}
		rc = rc_proto_header_sane(r);
		if (rc == 0)
			rc = table_sane(r, p->next);
		if (rc < 0)
			break;
		p->n = p->next;
		active = rc_ring_select(r->ctab, r->ncons, r->nblocks,
					r->nslots, p->n, &p->sel);
		if (!active) {
			if (close_if_idle) {
				h->state = RC_RING_CLOSING;
				rc = RC_STEP_CLOSED;
			} else {
				rc = RC_STEP_IDLE;
			}
			break;
		}
		if (p->sel.nneed) {
			rc = RC_STEP_PRODUCE;
			need_held(r, p);
		} else if (p->sel.nwait) {
			/* A consumer still reading its tail may need what
			 * slot n holds: step, do not jump over it. */
			rc = RC_STEP_SKIP;
		} else if (p->sel.later != UINT64_MAX) {
			/* Nobody needs n and no slot is in use: jump to the
			 * next start, read nothing. */
			p->next = h->next_seq = p->sel.later;
			continue;
		} else {
			rc = RC_STEP_DRAIN;
			break;
		}
		if (p->n + 1 >= RC_SEQ_LIMIT) {
			rc = why(r, -EPROTO, "sequence numbers exhausted");
			break;
		}
		p->next = h->next_seq = p->n + 1;
		break;
	}
	rc_proto_unlock(r);
	return rc;
}

int rc_proto_take_credits(struct rc_ring *r, struct rc_proto_prod *p,
			  int timeout_ms)
{
	uint32_t k;
	int rc;

	if (!p->sel.nwait)
		return 0;
	for (k = 0; k < p->sel.nwait; k++) {
		p->ops[k].sem_num = (unsigned short)RC_SEM_FREE(p->sel.wait[k]);
		p->ops[k].sem_op = -1;
		p->ops[k].sem_flg = 0;
	}
	rc = rc_proto_semop(r->semid, p->ops, p->sel.nwait, timeout_ms);
	if (rc == 0 || rc == -EAGAIN)
		return rc;
	if (rc == -EINTR)
		return -EAGAIN; /* the producer's SIGTERM: look again */
	if (rc == -EIDRM)
		return why(r, rc, "the ring was removed");
	return why(r, rc, "semop (take credits): %s", strerror(-rc));
}

static uint32_t prune(struct rc_ring *r, uint32_t *set, uint32_t n)
{
	uint32_t k, j = 0;

	for (k = 0; k < n; k++)
		if (r->ctab[set[k]].state == RC_CONS_ACTIVE)
			set[j++] = set[k];
	return j;
}

int rc_proto_evict(struct rc_ring *r, struct rc_proto_prod *p,
		   uint32_t stall_ms)
{
	uint64_t now = rc_ring_now(r), limit = (uint64_t)stall_ms * 1000000u;
	uint32_t i, k, active = 0;
	int rc = rc_proto_lock_intr(r, false);

	if (rc < 0)
		return rc;
	for (i = 0; i < r->ncons; i++) {
		struct rc_cons_ent *c = &r->ctab[i];
		int alive = c->state == RC_CONS_ACTIVE ||
					    c->state == RC_CONS_EVICTED
				    ? rc_proto_semval(r, RC_SEM_ALIVE(i))
				    : 1;

		if (alive == -EIDRM) {
			rc_proto_unlock(r);
			return why(r, -EIDRM, "the ring was removed");
		}
		/* Its token went with its process, whatever killed it. */
		if (c->state == RC_CONS_ACTIVE && alive == 0)
			c->state = RC_CONS_LEAVING;
		/* An evicted entry is free once its process dropped its
		 * token; before, a new occupant's token would look like
		 * the stopped one's. */
		else if (c->state == RC_CONS_EVICTED && alive == 0)
			c->state = RC_CONS_FREE;
	}
	/* Evict the members of the wait set that hold us: alive (a stopped
	 * process keeps its token), no credit left, no progress.  Those
	 * that starve with us are not to blame. */
	for (k = 0; limit && k < p->sel.nwait; k++) {
		struct rc_cons_ent *c;
		uint64_t done;

		i = p->sel.wait[k];
		c = &r->ctab[i];
		done = __atomic_load_n(&c->blocks_done, __ATOMIC_RELAXED);
		if (c->state != RC_CONS_ACTIVE)
			continue;
		if (p->stall[i].gen != c->gen || !p->stall[i].since_ns ||
		    p->stall[i].done != done ||
		    rc_proto_semval(r, RC_SEM_FREE(i)) != 0) {
			p->stall[i].gen = c->gen;
			p->stall[i].done = done;
			p->stall[i].since_ns = now;
		} else if (now - p->stall[i].since_ns > limit) {
			c->state = RC_CONS_EVICTED;
			p->stall[i].since_ns = 0;
		}
	}
	p->sel.nwait = prune(r, p->sel.wait, p->sel.nwait);
	p->sel.nneed = prune(r, p->sel.need, p->sel.nneed);
	for (i = 0; i < r->ncons; i++) {
		if (r->ctab[i].state == RC_CONS_LEAVING)
			r->ctab[i].state = RC_CONS_FREE;
		else if (r->ctab[i].state == RC_CONS_ACTIVE)
			active++;
	}
	rc_proto_unlock(r);
	return (int)active;
}

static int post_set(struct rc_ring *r, struct sembuf *ops,
		    const uint32_t *set, uint32_t n)
{
	uint32_t k;
	int rc;

	if (!n)
		return 0;
	for (k = 0; k < n; k++) {
		ops[k].sem_num = (unsigned short)RC_SEM_AVAIL(set[k]);
		ops[k].sem_op = 1;
		ops[k].sem_flg = 0;
	}
	rc = rc_proto_semop(r->semid, ops, n, -1);
	if (rc == -ERANGE)
		return why(r, rc,
			   "a block count would pass the kernel's limit (SEMVMX): its semaphores were set by hand");
	if (rc == -EIDRM)
		return why(r, rc, "the ring was removed");
	if (rc < 0)
		return why(r, rc, "semop (publish): %s", strerror(-rc));
	return 0;
}

int rc_proto_fill(struct rc_ring *r, struct rc_proto_prod *p,
		  rc_fill_fn *fill, void *arg)
{
	uint32_t slot = rc_seq_slot(p->n, r->nslots);
	struct rc_slot_hdr *s = &r->shdr[slot];
	struct rc_fill f = { 0, 0, 0 };
	int rc;

	/* The slot holds no seq while it is filled: a consumer evicted
	 * while it still writes from it finds its seq gone when its write
	 * returns, even if the fill is not finished. */
	__atomic_store_n(&s->seq, RC_SEQ_NONE, __ATOMIC_SEQ_CST);
	if (fill(arg, p->n, rc_slot_data(r, slot), &f) < 0)
		return -ECANCELED;
	s->block = rc_seq_block(p->n, r->nblocks);
	s->len = f.len;
	s->flags = f.flags;
	s->hash = f.hash;
	s->checked = RC_SEQ_NONE;
	/* The header and the data before the seq that vouches for them,
	 * and the seq before the post that sends readers to it. */
	__atomic_store_n(&s->seq, p->n, __ATOMIC_RELEASE);
	rc = post_set(r, p->ops, p->sel.need, p->sel.nneed);
	return rc;
}

uint64_t rc_proto_need_ahead(struct rc_ring *r, uint64_t n)
{
	uint64_t need = 0;
	uint32_t i;

	for (i = 0; i < r->ncons; i++) {
		const struct rc_cons_ent *c = &r->ctab[i];
		uint64_t last;

		if (__atomic_load_n(&c->state, __ATOMIC_RELAXED) !=
		    RC_CONS_ACTIVE)
			continue;
		last = __atomic_load_n(&c->first_seq, __ATOMIC_RELAXED) +
		       r->nblocks;
		if (last > n && last - n > need)
			need = last - n;
	}
	return need;
}

int rc_proto_fail(struct rc_ring *r, int err, uint64_t off, const char *msg)
{
	struct rc_ring_hdr *h = r->hdr;
	struct sembuf ops[RC_CONS_MAX];
	uint32_t i, n = 0, set[RC_CONS_MAX];
	int rc = rc_proto_lock_intr(r, false);

	if (rc < 0)
		return rc;
	h->err_code = err;
	h->err_offset = off;
	rc_strlcpy(h->err_msg, msg, sizeof h->err_msg);
	__atomic_store_n(&h->state, RC_RING_FAILED, __ATOMIC_RELEASE);
	for (i = 0; i < r->ncons; i++)
		if (r->ctab[i].state == RC_CONS_ACTIVE)
			set[n++] = i;
	rc_proto_unlock(r);
	/* Wake them: they see FAILED.  A count at SEMVMX wakes nobody, and
	 * nobody needs waking there. */
	post_set(r, ops, set, n);
	return 0;
}

int rc_proto_wait_table(struct rc_ring *r, int timeout_ms)
{
	struct sembuf op = { RC_SEM_JOIN, -1, 0 };
	int rc = rc_proto_semop(r->semid, &op, 1, timeout_ms);

	if (rc == -EIDRM)
		return why(r, rc, "the ring was removed");
	if (rc < 0 && rc != -EAGAIN && rc != -EINTR)
		return why(r, rc, "semop (doorbell): %s", strerror(-rc));
	return 0;
}

void rc_proto_abort(struct rc_ring *r, const char *msg)
{
	struct rc_ring_hdr *h = r->hdr;

	if (h) {
		h->err_code = EPROTO;
		h->err_offset = 0;
		rc_strlcpy(h->err_msg, msg, sizeof h->err_msg);
		__atomic_store_n(&h->state, RC_RING_FAILED, __ATOMIC_RELEASE);
	}
	/* Everyone waiting on the set wakes with EIDRM and reads the
	 * message from the segment it still has mapped. */
	if (r->semid >= 0)
		semctl(r->semid, 0, IPC_RMID);
	if (r->shmid >= 0)
		shmctl(r->shmid, IPC_RMID, NULL);
}
