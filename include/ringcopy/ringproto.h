/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the shared-ring protocol: every verb by name.
 *
 * This module is the only code in src/ that operates the ring's semaphores
 * (ring.c creates and removes the objects).  The producer, the consumers,
 * the election, status and the invocation call these verbs and nothing
 * else.  src/ringproto.pml models the same verbs for SPIN; doc/design.md
 * says what the model proves and what it leaves out.
 *
 * Semaphores (indices in ring.h):
 *   LOCK      mutex over the header and the consumer table, SEM_UNDO
 *   JOIN      doorbell: 1 when the table changed since the producer last
 *             looked, never more (posted only when it is 0)
 *   PALIVE    1 while the producer lives (SEM_UNDO)
 *   AVAIL[i]  blocks published for entry i and not yet taken
 *   FREE[i]   credits: slots the producer may still fill ahead of entry i
 *   ALIVE[i]  tokens of whoever answers for entry i (SEM_UNDO)
 *
 * Every wait is bounded or interruptible: a lock not granted within
 * RC_PROTO_LOCK_MS means the ring stopped making sense (a stopped process
 * holds it, or someone set it), and the verb fails naming the ring.  On an
 * error a verb leaves its reason, naming the ring, in r->why.
 */
#ifndef RINGCOPY_RINGPROTO_H
#define RINGCOPY_RINGPROTO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/sem.h>
#include <sys/types.h>

#include "ringcopy/ring.h"

#define RC_PROTO_WAIT_MS 500   /* a wait looks at its peers this often */
#define RC_PROTO_LOCK_MS 10000 /* LOCK is held for microseconds */

/* Set by the invocation's and the consumers' signal handlers: every
 * blocking verb returns -EINTR once it is set.  (The producer has a flag
 * of its own: SIGTERM ends its linger, never its service.) */
extern volatile int rc_interrupted;

/* One registered consumer-table entry, as its registrant and its consumer
 * know it.  The generation tells this registration from every earlier and
 * later one of the same entry: a verb whose generation no longer matches
 * touches nothing. */
struct rc_reg {
	uint32_t idx;    /* consumer-table entry */
	uint64_t gen;    /* the entry's generation at registration */
	uint64_t first;  /* first sequence number it needs */
	pid_t owner;     /* the registrant */
};

/* ---- common --------------------------------------------------------- */

/* Semaphore operation with a timeout: 0 tries once (IPC_NOWAIT), < 0
 * waits forever, else milliseconds.  EINTR is retried with the deadline
 * recomputed unless rc_interrupted is set.  0, -EAGAIN (timed out),
 * -EINTR, -EIDRM (the set is gone), -ERANGE (a value would pass SEMVMX)
 * or another -errno. */
int rc_proto_semop(int semid, struct sembuf *ops, size_t nops,
		   int timeout_ms);
/* LOCK, bounded by RC_PROTO_LOCK_MS: 0, -ETIMEDOUT, -EINTR (only when
 * interruptible and rc_interrupted), -EIDRM. */
int rc_proto_lock(struct rc_ring *r);
int rc_proto_lock_intr(struct rc_ring *r, bool interruptible);
void rc_proto_unlock(struct rc_ring *r);
/* Value of semaphore idx, or -errno. */
int rc_proto_semval(struct rc_ring *r, int idx);
/* Does the header still say what it said when we validated it (magic,
 * version, geometry, offsets, a known state)?  0, or -EPROTO with
 * r->why. */
int rc_proto_header_sane(struct rc_ring *r);
/* Is the ring's producer alive: its token up, or its pid still the
 * process that started at its recorded time? */
bool rc_proto_producer_alive(struct rc_ring *r);
/* Copy the header and the table (r->ncons entries) under LOCK (ringcopy
 * status), each entry's state as status tells it (live[i]), and whether
 * the producer still holds its token and lives. */
enum rc_live {
	RC_LIVE_FREE = 0,     /* unused */
	RC_LIVE_COPYING = 1,  /* served */
	RC_LIVE_LEAVING = 2,  /* gone, not yet dropped by the producer */
	RC_LIVE_EVICTED = 3,  /* stalled past --stall-timeout */
	RC_LIVE_UNKNOWN = 4,  /* a state that makes no sense */
};
int rc_proto_snapshot(struct rc_ring *r, struct rc_ring_hdr *h,
		      struct rc_cons_ent *ctab, enum rc_live *live,
		      bool *producer_alive);

/* ---- the registrant (an invocation) ---------------------------------- */

/* Register n entries (LOCK held by the caller, who has checked the ring
 * is joinable).  Each gets a fresh generation, AVAIL 0, FREE nslots, and
 * one liveness token of the caller (SEM_UNDO) so that the producer sees it
 * alive before its consumer exists.  A sequential entry starts at the next
 * pass's block 0.  *read_before is the source bytes read so far.  0, or
 * -EBUSY (no room), -EPROTO (the ring does not make sense), -errno. */
int rc_proto_register(struct rc_ring *r, uint32_t n, const char *const *names,
		      const bool *sequential, struct rc_reg *out,
		      uint64_t *read_before);
/* The same, with a held map per entry (held NULL, or held[k] NULL: it
 * needs every block): a consumer whose target was found to hold blocks
 * (--skip-equal with --expect, compared before it registers) sets the
 * ring's needed bit of every block it lacks and is marked as skipping, in
 * the same LOCK section, before it is ACTIVE.  A ring without a needed
 * bitmap ignores held. */
int rc_proto_register_held(struct rc_ring *r, uint32_t n,
			   const char *const *names, const bool *sequential,
			   const uint8_t *const *held, struct rc_reg *out,
			   uint64_t *read_before);
/* Hand off: the consumer holds its own token now; drop the registrant's. */
void rc_proto_hand_off(struct rc_ring *r, const struct rc_reg *e);
/* Give up an entry whose consumer never claimed it (it could not be
 * started, died first, or we were interrupted): the producer stops
 * counting it.  An entry already claimed is its consumer's to leave.
 * Drops the registrant's token either way. */
void rc_proto_abandon(struct rc_ring *r, const struct rc_reg *e);

/* ---- a consumer -------------------------------------------------------- */

/* Take over entry e: our own liveness token, then under LOCK the entry must
 * still be e's registration (state, generation, registrant, unclaimed).
 * Records our pid and the producer's identity in r.  0, or -ESTALE (the
 * entry was abandoned or reused meanwhile), -errno; r->why says which. */
int rc_proto_claim(struct rc_ring *r, const struct rc_reg *e);
/* Take the next published block: 0 (a block is ready), -EAGAIN (none
 * within timeout_ms, nothing wrong), -EINTR, or the reason nothing will
 * come (rc_proto_check's).  timeout_ms < 0: wait until one or the other. */
int rc_proto_wait_block(struct rc_ring *r, const struct rc_reg *e,
			int timeout_ms);
/* Why would nothing come: the ring failed (-EPIPE, the producer's
 * message), the producer died (-EPIPE), the entry was evicted for a stall
 * (-ESTALE) or taken from us (-EPROTO), the header was overwritten
 * (-EPROTO), the ring was removed (-EIDRM).  0 when all is well. */
int rc_proto_check(struct rc_ring *r, const struct rc_reg *e);
/* Release count slots, oldest first (FREE[i] += count). */
int rc_proto_release(struct rc_ring *r, const struct rc_reg *e,
		     uint32_t count);
/* Leave: one last credit for a producer still counting us, the entry
 * LEAVING, the doorbell, our token dropped.  Only while the entry is
 * still ours (generation and pid). */
void rc_proto_leave(struct rc_ring *r, const struct rc_reg *e);
/* Are we still served: is entry e still ACTIVE under e's generation?
 * (Read without the lock: a backend waiting on a stopped device asks.) */
bool rc_proto_served(struct rc_ring *r, const struct rc_reg *e);
/* Has the producer dropped its liveness token (died or left)? */
bool rc_proto_producer_gone(struct rc_ring *r);
/* Our progress, for status and stall eviction: done blocks released,
 * bytes more written. */
void rc_proto_progress(struct rc_ring *r, const struct rc_reg *e,
		       uint64_t done, uint64_t bytes);
/* Slot seq mod nslots as its header says now, copied out of the segment
 * (input: the caller checks it is the block it waits for). */
struct rc_slot_view {
	uint32_t slot;
	uint64_t seq, block, hash;
	uint32_t len, flags;
	const unsigned char *data; /* the slot's buffer */
};
void rc_proto_slot_view(struct rc_ring *r, uint64_t seq,
			struct rc_slot_view *v);
/* Does the slot still hold seq (not refilled under a slow write)? */
bool rc_proto_slot_holds(struct rc_ring *r, uint64_t seq);
/* Has a consumer found seq's data to match its hash already, and say we
 * did (the others need not hash it again). */
bool rc_proto_slot_checked(struct rc_ring *r, uint64_t seq);
void rc_proto_slot_mark_checked(struct rc_ring *r, uint64_t seq);
/* The producer died and nobody is active: the last one out removes the
 * ring's objects.  true when it did (the caller removes the rendezvous
 * file). */
bool rc_proto_last_out(struct rc_ring *r);
/* How many consumer entries are free (the caller holds the lock): what
 * register would find, for a join refusal the dry run can predict. */
uint32_t rc_proto_free_entries(const struct rc_ring *r);

/* ---- the producer ------------------------------------------------------ */

/* What the producer does next (rc_proto_select). */
enum rc_step {
	RC_STEP_PRODUCE = 1, /* take credits, fill slot n, publish */
	RC_STEP_SKIP = 2,    /* nobody needs n, but a consumer still reading
			      * its tail may need slot n's occupant: take
			      * credits, fill and publish nothing */
	RC_STEP_IDLE = 3,    /* nobody registered (and not closing) */
	RC_STEP_DRAIN = 4,   /* everyone has been given all it needs: wait
			      * for the table to change */
	RC_STEP_CLOSED = 5,  /* nobody registered: the ring is CLOSING */
};

struct rc_proto_prod {
	uint64_t next;        /* next_seq, private: the segment's copy is
			       * checked against it */
	uint64_t n;           /* the sequence number of the current step */
	struct rc_select sel; /* need and wait sets for n */
	bool skipping;        /* every member of the need set skips */
	bool held;            /* ... and none lacks block n: publish it
			       * HELD, read nothing (decided at select) */
	struct sembuf ops[RC_CONS_MAX];
	struct {
		uint64_t gen, done, since_ns;
	} stall[RC_CONS_MAX]; /* progress per entry, for --stall-timeout */
};

/* Take the producer's liveness token and mark the ring RUNNING. */
int rc_proto_producer_start(struct rc_ring *r, struct rc_proto_prod *p);
/* Under LOCK: free departed entries, compute the need and wait sets of
 * n = next_seq, and decide.  Nobody needing n and nobody's tail in the way
 * jumps to the next start without reading.  With close_if_idle an empty
 * table closes the ring in the same LOCK section (no joiner can slip in).
 * Returns an rc_step, or -errno with r->why (the ring stopped making
 * sense: the caller aborts it). */
int rc_proto_select(struct rc_ring *r, struct rc_proto_prod *p,
		    bool close_if_idle);
/* Take one FREE credit from every entry of the wait set, all or nothing.
 * 0, -EAGAIN (not within timeout_ms: evict, then try again), -errno. */
int rc_proto_take_credits(struct rc_ring *r, struct rc_proto_prod *p,
			  int timeout_ms);
/* Evict, under LOCK: entries whose tokens are gone become LEAVING; with
 * stall_ms, entries of the wait set that hold us (no credit left) and made
 * no progress for stall_ms become EVICTED; evicted entries whose tokens
 * are gone become FREE.  The need and wait sets keep only active entries.
 * Returns the number of active entries, or -errno. */
int rc_proto_evict(struct rc_ring *r, struct rc_proto_prod *p,
		   uint32_t stall_ms);
/* What the producer put into slot n's buffer. */
struct rc_fill {
	uint32_t len;   /* valid bytes (a stream's last block: maybe fewer) */
	uint32_t flags; /* RC_SLOT_* */
	uint64_t hash;  /* XXH3-64 of the len bytes */
};
/* Reads block n into data (the slot's buffer, block_size bytes) and says
 * what it holds in *f: 0, or < 0 when it could not (it has failed the
 * ring itself). */
typedef int rc_fill_fn(void *arg, uint64_t n, unsigned char *data,
		       struct rc_fill *f);
/* Fill slot n and publish it to the need set, in the only safe order: the
 * slot's seq retired first (a consumer evicted while it still writes from
 * the slot finds its seq gone, even mid-fill); fill() reads into the
 * slot; the header, and then the seq with release semantics; then
 * AVAIL[i] += 1 for every entry that needs n.  0; -ECANCELED when fill()
 * failed (nothing published); or -errno with r->why. */
int rc_proto_fill(struct rc_ring *r, struct rc_proto_prod *p,
		  rc_fill_fn *fill, void *arg);
/* How many seqs from n on the active entries still need (a hint for the
 * read-ahead, read without the lock: an entry that changes meanwhile only
 * makes one read longer or shorter). */
uint64_t rc_proto_need_ahead(struct rc_ring *r, uint64_t n);
/* Fail the ring: FAILED with the message, every active entry woken. */
int rc_proto_fail(struct rc_ring *r, int err, uint64_t off, const char *msg);
/* Sleep until the doorbell rings or timeout_ms (< 0: forever). */
int rc_proto_wait_table(struct rc_ring *r, int timeout_ms);
/* A ring that stopped making sense: FAILED with the message (without the
 * lock, which may be what is broken), and its objects removed, so that
 * every process waiting on it wakes and reports the message. */
void rc_proto_abort(struct rc_ring *r, const char *msg);

/* Sequence numbers past this are not from any real run (2^62 blocks):
 * a header that holds one was overwritten. */
#define RC_SEQ_LIMIT (UINT64_C(1) << 62)

#endif
