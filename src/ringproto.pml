/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - a SPIN model of the ring protocol (include/ringcopy/ringproto.h).
 *
 * The inlines carry the verbs' names: proto_select (rc_proto_select;
 * "select" is a Promela keyword), take_credits, evict, fill and fail
 * (-DFAIL) for the producer; register, abandon and hand_off for the
 * registrant; claim, wait_block, release and leave for a consumer
 * (tests/model/check-verbs.sh lists the C's verbs against them).
 * doc/design.md ("The model and what it proves", "The proof protects the
 * code") says what the model proves and what it leaves out.
 * tests/model/run-model.sh [small|big|bug] runs it; by hand:
 *
 *   spin -a -DNSLOTS=2 -DNBLOCKS=3 -DNCONS=3 ringproto.pml
 *   gcc -O2 -DSAFETY -o pan pan.c && ./pan -m1000000
 *   spin -t [the same -D...] ringproto.pml    (replays a trail: the
 *                                              printf lines tell the story)
 *
 * Geometry and cast (all -D on the spin command line):
 *   NSLOTS   slots in the ring                     (default 2)
 *   NBLOCKS  blocks in the image                   (default 3)
 *   NCONS    consumer processes, 1..5              (default 3)
 *   NENT     consumer-table entries, 1..4          (default min(NCONS, 4));
 *            fewer entries than consumers makes entries be reused
 *   LEAVERS  bit mask: consumer c may leave early (interrupted) (default 31)
 *   DIERS    bit mask: consumer c may die (SIGKILL)             (default 31)
 *   STALL    the producer may also evict a stalled consumer (EVICTED)
 *   FAIL     the producer may fail the ring (a source read error)
 *   HOLD     producer skip (--skip-equal with --expect): consumers whose
 *            targets hold blocks register with a held mask (HELDMASK):
 *            they OR the blocks they lack into the ring's needed bitmap
 *            and are marked as skipping; at select the producer publishes
 *            n HELD (reads nothing) when every member of NEED skips and
 *            n's block is not needed.  Consumer 0 holds every block but
 *            block 1, consumer 1 (a late joiner) scans nothing: it needs
 *            every one; consumer 2 (sequential) holds all but block 0,
 *            consumer 3 skips but holds none, consumer 4 holds all.
 *            Checked: no consumer ever takes a HELD slot for a block it
 *            lacks (property 5).
 *   HOLD_NOFLAG  with HOLD, the broken producer that trusts the bitmap
 *            alone (ignores that a consumer without a scan skips
 *            nothing): SPIN finds a late joiner taking a HELD slot.
 *   OLD_JUMP the old producer: when nobody needs n and someone starts
 *            later it jumps there, even when a consumer's tail is in the
 *            way (no SKIP).  SPIN finds the overwrite with it and nothing
 *            without it.  With 2 slots and 3 blocks: consumer 0 (first 0)
 *            has read 0 and 1; late joiner 1 (first 1) ran ahead and left,
 *            so next_seq = 4; sequential joiner 2 registered with first 6.
 *            At n = 4 nobody needs 4 and 6 starts later: the jump; at 6
 *            consumer 0 is past its wait window (0 + 3 + 2 <= 6), so no
 *            credit of it is taken, and seq 6 goes into slot 0 over seq 2,
 *            which consumer 0 has not read.  The fixed producer SKIPs 4
 *            and 5 (taking consumer 0's credits) before it jumps.
 *
 * The cast: consumer 0 registers when the ring starts (first 0),
 * consumers 1 and 3 are late joiners (first = next_seq whenever they
 * register), consumers 2 and 4 are sequential joiners (first = the next
 * pass's block 0).  The joiners register at whatever moment the
 * interleaving picks, or find the ring closed and go.
 *
 * Properties:
 *   1. check_overwrite (the producer, before it fills a slot): no ACTIVE
 *      entry needs the slot's occupant and has not released it.  The
 *      consumer checks too that the slot holds exactly its seq when it
 *      reads it and still when it releases it.
 *   2. publish posts seq n to an entry only as its next seq (first +
 *      blocks published so far): every consumer gets each of its blocks
 *      once, in its order; a consumer that took its NBLOCKS blocks finds no
 *      AVAIL left over.
 *   3. No invalid end state (deadlock).  Valid ends: a process that ran
 *      to its end (a consumer done, gone or dead, a producer that closed
 *      the ring), and a producer idling with nobody registered (end_idle:
 *      a linger forever).
 *   4. FREE[i] never passes NSLOTS + 1 (SEMVMX headroom, ring.h).
 *   5. (HOLD) a consumer takes a HELD slot only for a block its target
 *      holds.
 *
 * Atomicity: a LOCK section is one atomic/d_step (the mutex makes it one
 * for everybody else).  A semop on several semaphores is one step too (all
 * or nothing).  Sequence numbers are bytes: each consumer registers once,
 * so next_seq stays below NCONS * (2 NBLOCKS + NSLOTS); register asserts
 * the bound.  Blocking waits are guards, never polling loops: a loop that
 * retried would hide a deadlock from the end-state check.
 */

#ifndef NSLOTS
#define NSLOTS 2
#endif
#ifndef NBLOCKS
#define NBLOCKS 3
#endif
#ifndef NCONS
#define NCONS 3
#endif
#ifndef NENT
#if NCONS > 4
#define NENT 4
#else
#define NENT NCONS
#endif
#endif
#ifndef LEAVERS
#define LEAVERS 31
#endif
#ifndef DIERS
#define DIERS 31
#endif

#define MAXENT 4 /* the guards below spell out entries 0..3 */
#if NENT > MAXENT || NENT < 1
#error "NENT must be 1..4"
#endif
#if NCONS > 5 || NCONS < 1
#error "NCONS must be 1..5"
#endif

#define NOSEQ 255 /* an empty slot; "no later start" */
#define NONE  255 /* no entry */

/* Ring states (ring.h). */
#define R_RUNNING 2
#define R_CLOSING 3
#define R_FAILED  4

/* Entry states (ring.h). */
#define E_FREE    0
#define E_ACTIVE  1
#define E_LEAVING 2
#define E_EVICTED 3

/* Producer steps (ringproto.h rc_step, plus JUMP). */
mtype = { PRODUCE, SKIP, JUMP, DRAIN, IDLE, CLOSED };

typedef Ent {
	byte state;
	byte gen;
	byte first;
	bit claimed; /* its consumer holds its own token (rc_proto_claim) */
	bit skips;   /* HOLD: its target holds every block not needed */
};

/* ---- shared: the segment and the semaphore set ---- */
Ent tab[MAXENT];
byte next_seq = 0;
byte ring_state = R_RUNNING;
byte slot[NSLOTS] = NOSEQ;/* the seq each slot holds (its header's seq) */
byte sem_avail[MAXENT];  /* AVAIL[i] */
byte sem_free[MAXENT];   /* FREE[i] */
byte sem_alive[MAXENT];  /* ALIVE[i]: the registrant's token, then the
			  * consumer's: both for a moment (claim to
			  * hand-off) */
bit sem_join = 0;        /* JOIN doorbell */
#ifdef HOLD
#define ALLBLOCKS ((1 << NBLOCKS) - 1)
/* What consumer id's target holds (its scan before registering), and
 * whether it scanned (skips) at all. */
#define HELDMASK(id) (id == 0 -> (ALLBLOCKS & ~2) : \
		      (id == 2 -> (ALLBLOCKS & ~1) : \
		       (id == 4 -> ALLBLOCKS : 0)))
#define SCANS(id) (id != 1)
byte need_bits = 0;      /* the needed bitmap: never cleared */
bit slot_held[NSLOTS];   /* the slot's HELD flag */
#endif

/* ---- ghosts: for the assertions only ---- */
byte g_rel[MAXENT];      /* blocks the entry's owner released */
byte g_pub[MAXENT];      /* blocks published to the entry's owner */
byte g_ended = 0;        /* consumers that ended (done, left, died, or
			  * never got an entry) */
bit g_pgone = 0;         /* the producer closed the ring and left */
bit g_pidle = 0;         /* the producer idles: nobody registered */

#ifdef LIVE
/* Progress: every consumer eventually ends, and the producer eventually
 * leaves or idles with nobody registered (a linger).  Checked with
 * pan -a -f (weak fairness): tests/model/run-model.sh live. */
ltl progress { <> (g_ended == NCONS && (g_pgone || g_pidle)) }
#endif

/* Entry k exists and is ACTIVE with its token gone (a dead consumer). */
#define DEAD(k)   (k < NENT && tab[k].state == E_ACTIVE && sem_alive[k] == 0)
#define ANY_DEAD  (DEAD(0) || DEAD(1) || DEAD(2) || DEAD(3))
/* take_credits can proceed: every member of WAIT has a credit. */
#define CREDIT(k) (!wait[k] || sem_free[k] > 0)
#define CREDITS   (CREDIT(0) && CREDIT(1) && CREDIT(2) && CREDIT(3))
/* A member of WAIT that holds the producer up: no credit left. */
#define STALLED(k) (wait[k] && tab[k].state == E_ACTIVE && sem_free[k] == 0)
#define ANY_STALLED (STALLED(0) || STALLED(1) || STALLED(2) || STALLED(3))
/* LEAVING/EVICTED -> FREE.  What the last owner left in the entry and its
 * semaphores is cleared here too (register sets it all again): nobody
 * touches a free entry (its owner is gone: no token), and the model keeps
 * fewer states. */
#define FREE_ENTRY(k) \
	tab[k].state = E_FREE; tab[k].first = 0; tab[k].claimed = 0; \
	tab[k].skips = 0; \
	sem_avail[k] = 0; sem_free[k] = 0; g_rel[k] = 0; g_pub[k] = 0

/* The window predicates are the C's own (include/ringcopy/ringwin.h,
 * copied next to the model by tests/model/run-model.sh). */
#include "ringwin.h"
/* Does an entry starting at f need seq n? */
#define NEEDS(f, n)   RC_WIN_NEEDS(f, NBLOCKS, n)
/* Must its credit be taken before slot n is filled (the wait set)? */
#define IN_WAIT(f, n) RC_WIN_IN_WAIT(f, NBLOCKS, NSLOTS, n)

/* ======================= the producer ======================= */

/* Under LOCK: entries that left become free; the need and wait sets of
 * n = next_seq; the decision.  Nobody active: close, or idle (the linger
 * may end at any time). */
inline proto_select() /* rc_proto_select: "select" is a Promela keyword */
{
	atomic {
		n = next_seq;
		later = NOSEQ;
		nact = 0;
		nneed = 0;
		nwait = 0;
		i = 0;
		do
		:: i < NENT ->
			if
			:: tab[i].state == E_LEAVING -> FREE_ENTRY(i)
#ifdef STALL
			:: tab[i].state == E_EVICTED && sem_alive[i] == 0 ->
				FREE_ENTRY(i)
#endif
			:: else
			fi;
			need[i] = 0;
			wait[i] = 0;
			if
			:: tab[i].state == E_ACTIVE ->
				nact++;
				if
				:: NEEDS(tab[i].first, n) ->
					need[i] = 1;
					nneed++
				:: else ->
					if
					:: tab[i].first > n && tab[i].first < later ->
						later = tab[i].first
					:: else
					fi
				fi;
				if
				:: IN_WAIT(tab[i].first, n) ->
					wait[i] = 1;
					nwait++
				:: else
				fi
			:: else
			fi;
			i++
		:: else -> break
		od;
		i = 0;
		if
		:: nact == 0 ->
			if
			:: step = IDLE
			:: ring_state = R_CLOSING; step = CLOSED
			fi
		:: nneed > 0 ->
			next_seq = n + 1;
#ifdef HOLD
			/* Held: every member of NEED skips and nobody
			 * registered so far lacks n's block. */
			heldn = !((need_bits >> (n % NBLOCKS)) & 1);
			i = 0;
			do
			:: i < NENT ->
#ifndef HOLD_NOFLAG
				if
				:: need[i] && !tab[i].skips -> heldn = 0
				:: else
				fi;
#endif
				i++
			:: else -> break
			od;
			i = 0;
#endif
			step = PRODUCE
#ifdef OLD_JUMP
		/* The bug: the tail of a consumer still reading is not
		 * looked at; slots it has not read are filled from later. */
		:: nneed == 0 && later != NOSEQ ->
			next_seq = later;
			step = JUMP
#else
		:: nneed == 0 && nwait > 0 ->
			next_seq = n + 1;
			step = SKIP
		:: nneed == 0 && nwait == 0 && later != NOSEQ ->
			next_seq = later;
			step = JUMP
#endif
		:: else ->
			step = DRAIN
		fi;
		printf("P: select n=%d: %e, next_seq=%d\n", n, step, next_seq)
	}
}

/* evict, under LOCK (the producer's timeout): entries whose token is gone
 * become LEAVING; with STALL and stall set, members of WAIT without a
 * credit become EVICTED, and evicted entries whose token is gone become
 * FREE; the need and wait sets keep only ACTIVE entries.  All in one LOCK
 * section: were the sets pruned in another, an entry reaped here could be
 * registered again in between and keep its old place in them. */
inline evict(stall)
{
	i = 0;
	do
	:: i < NENT ->
		if
		:: tab[i].state == E_ACTIVE && sem_alive[i] == 0 ->
			printf("P: evict entry %d (dead)\n", i);
			tab[i].state = E_LEAVING
#ifdef STALL
		:: stall && STALLED(i) ->
			printf("P: evict entry %d (stalled)\n", i);
			tab[i].state = E_EVICTED
		:: tab[i].state == E_EVICTED && sem_alive[i] == 0 ->
			FREE_ENTRY(i)
#endif
		:: else
		fi;
		need[i] = need[i] && tab[i].state == E_ACTIVE;
		wait[i] = wait[i] && tab[i].state == E_ACTIVE;
		i++
	:: else -> break
	od;
	i = 0
}

/* One FREE credit from every member of WAIT, all or nothing; when that
 * cannot be had (the semop times out), evict and try again. */
inline take_credits()
{
	do
	:: d_step {
		CREDITS ->
		i = 0;
		do
		:: i < NENT ->
			if
			:: wait[i] -> sem_free[i]--
			:: else
			fi;
			i++
		:: else -> break
		od;
		i = 0
	   };
	   break
	:: d_step { ANY_DEAD -> evict(0) }
#ifdef STALL
	:: d_step { ANY_STALLED -> evict(1) }
#endif
	od
}

/* Property 1: the slot's occupant is nobody's unreleased block. */
inline check_overwrite(s)
{
	o = slot[s];
	i = 0;
	do
	:: i < NENT ->
		assert(!(tab[i].state == E_ACTIVE && o != NOSEQ &&
			 NEEDS(tab[i].first, o) &&
			 g_rel[i] <= o - tab[i].first));
		i++
	:: else -> break
	od;
	i = 0;
	o = 0
}

/* rc_proto_fill: the slot retired, filled, its seq set, then AVAIL[i] += 1
 * for every member of NEED (the fill and its publication are one verb in
 * the C; the model's slot holds only its seq, so retire, fill and seq are
 * one step, and the posts another). */
inline fill()
{
	d_step {
		printf("P: fill slot %d (held %d) with %d\n",
		       n % NSLOTS, slot[n % NSLOTS], n);
		check_overwrite(n % NSLOTS);
#ifdef HOLD
		slot_held[n % NSLOTS] = heldn;
		heldn = 0;
#endif
		slot[n % NSLOTS] = n
	};
	d_step {
		i = 0;
		do
		:: i < NENT ->
			if
			:: need[i] ->
				/* Property 2: n is the entry's next seq. */
				assert(tab[i].state != E_ACTIVE ||
				       n == tab[i].first + g_pub[i]);
				g_pub[i]++;
				sem_avail[i]++
			:: else
			fi;
			i++
		:: else -> break
		od;
		i = 0
	}
}

/* Sleep until the doorbell rings, or (the timeout) someone died. */
inline wait_table()
{
	if
	:: atomic { sem_join > 0 -> sem_join = 0 }
	:: d_step { ANY_DEAD -> evict(0) }
	fi
}

#ifdef FAIL
/* A read error: the ring FAILED, every active entry woken; then wait
 * until every consumer is gone (evicting the dead) and close. */
inline fail()
{
	d_step {
		ring_state = R_FAILED;
		i = 0;
		do
		:: i < NENT ->
			if
			:: tab[i].state == E_ACTIVE -> sem_avail[i]++
			:: else
			fi;
			i++
		:: else -> break
		od;
		i = 0
	};
	do
	:: d_step {
		evict(0);
		nact = 0;
		do
		:: i < NENT ->
			if
			:: tab[i].state == E_ACTIVE -> nact++
			:: else
			fi;
			i++
		:: else -> break
		od;
		i = 0
	   };
	   if
	   :: nact == 0 -> break
	   :: else -> wait_table()
	   fi
	od
}
#endif

proctype Producer()
{
	byte n, later, o, i, nact, nneed, nwait;
	mtype step;
#ifdef HOLD
	bit heldn; /* select's decision: publish n HELD */
#endif
	bit need[MAXENT], wait[MAXENT];

	do
	:: proto_select();
	   if
	   :: step == CLOSED -> g_pgone = 1; break
	   :: step == IDLE ->
		/* Nobody registered: a linger forever may sleep here for
		 * good, a valid end state. */
		g_pidle = 1;
end_idle:	atomic { sem_join > 0 -> sem_join = 0; g_pidle = 0 }
	   :: step == JUMP -> skip
	   :: step == DRAIN -> wait_table()
	   :: step == PRODUCE || step == SKIP ->
		take_credits();
		if
		:: step == PRODUCE ->
#ifdef FAIL
			if
			:: skip
			:: fail(); g_pgone = 1; break
			fi;
#endif
			fill()
		:: else
		fi
	   fi;
	   /* The step's scratch is dead here: keep the state vector small. */
	   d_step {
		n = 0; step = 0; later = 0; nact = 0; nneed = 0; nwait = 0;
		need[0] = 0; need[1] = 0; need[2] = 0; need[3] = 0;
		wait[0] = 0; wait[1] = 0; wait[2] = 0; wait[3] = 0
	   }
	od
}

/* ======================= a consumer ======================= */

/* The entry is still this registration's, and served. */
#define OURS (tab[e].state == E_ACTIVE && tab[e].gen == mygen)

/* The registrant (the invocation), under LOCK: a FREE entry, a fresh
 * generation, AVAIL 0, FREE nslots, the registrant's liveness token,
 * first = next_seq or the next pass's block 0; then the doorbell.  A
 * closed or failed ring, or a full table, is not joined. */
inline register()
{
	atomic {
		e = NONE;
		if
		:: ring_state == R_RUNNING ->
			i = 0;
			do
			:: i < NENT && tab[i].state == E_FREE -> e = i; break
			:: i < NENT && tab[i].state != E_FREE -> i++
			:: i >= NENT -> break
			od;
			i = 0
		:: else
		fi;
		if
		:: e != NONE ->
			assert(next_seq < NOSEQ - 2 * NBLOCKS - NSLOTS);
			tab[e].gen++;
			mygen = tab[e].gen;
			sem_avail[e] = 0;
			sem_free[e] = NSLOTS;
			sem_alive[e]++; /* the registrant's token (+1, SEM_UNDO) */
			if
			:: sequential ->
				tab[e].first = RC_WIN_SEQ_START(next_seq,
								NBLOCKS)
			:: else ->
				tab[e].first = next_seq
			fi;
			myfirst = tab[e].first;
#ifdef HOLD
			/* Before the entry is ACTIVE, in the same section:
			 * the blocks its target lacks are needed from now
			 * on, and it skips. */
			tab[e].skips = SCANS(id);
			if
			:: SCANS(id) ->
				need_bits = need_bits |
					    (ALLBLOCKS & ~HELDMASK(id))
			:: else
			fi;
#endif
			tab[e].state = E_ACTIVE;
			tab[e].claimed = 0;
			printf("C%d: register entry %d, first %d\n", id, e,
			       myfirst);
			g_rel[e] = 0;
			g_pub[e] = 0
		:: else
		fi
	};
	/* The doorbell: its own semop, after the LOCK section. */
	if
	:: e != NONE -> sem_join = 1
	:: else
	fi
}

/* The consumer takes the entry over: its own token first (a semop of its
 * own), then under LOCK the entry must still be this registration's and
 * unclaimed; if not, it drops its token and goes. */
inline claim()
{
	sem_alive[e]++;
	atomic {
		if
		:: OURS && !tab[e].claimed ->
			tab[e].claimed = 1;
			left = 0
		:: else ->
			printf("C%d: claim finds entry %d given up\n", id, e);
			left = 1
		fi
	};
	if
	:: left -> sem_alive[e]--; goto gone
	:: else
	fi
}

/* The registrant drops its token: the consumer answers for the entry. */
inline hand_off()
{
	sem_alive[e]--
}

/* The registrant gives up an entry its consumer never claimed (it could
 * not be started, or died first): under LOCK, if still this registration
 * and unclaimed, one credit and LEAVING; the doorbell; the registrant's
 * token dropped either way: three steps, as in the C. */
inline abandon()
{
	atomic {
		if
		:: OURS && !tab[e].claimed ->
			printf("C%d: abandoned before its claim\n", id);
			sem_free[e]++;
			assert(sem_free[e] <= NSLOTS + 1); /* property 4 */
			tab[e].state = E_LEAVING;
			left = 1
		:: else -> left = 0
		fi
	};
	if
	:: left -> sem_join = 1
	:: else
	fi;
	sem_alive[e]--
}

/* Under LOCK, while the entry is still ours: one last credit for a
 * producer that may be waiting for it, LEAVING.  Then the doorbell, and
 * our token dropped if the entry is still this registration (an entry
 * freed and registered again holds no token of ours): three semops, as
 * in the C. */
inline leave()
{
	atomic {
		mine = tab[e].gen == mygen;
		if
		:: OURS ->
			printf("C%d: leave after %d blocks\n", id, k);
			sem_free[e]++;
			assert(sem_free[e] <= NSLOTS + 1); /* property 4 */
			tab[e].state = E_LEAVING;
			left = 1
		:: else -> left = 0
		fi
	};
	if
	:: left -> sem_join = 1
	:: else
	fi;
	if
	:: mine -> sem_alive[e]--
	:: else
	fi
}

/* SIGKILL: our token goes (SEM_UNDO), nothing else. */
inline die()
{
	d_step {
		printf("C%d: dies after %d blocks\n", id, k);
		sem_alive[e]--
	}
}

/* Take the next block; or be interrupted (leave), or die, or (STALL) find
 * the entry evicted when the wait times out. */
inline wait_block()
{
	if
	:: atomic { sem_avail[e] > 0 -> sem_avail[e]-- }
	:: can_leave -> leave(); goto gone
	:: can_die -> die(); goto gone
#ifdef STALL
	:: !OURS -> leave(); goto gone
#endif
	fi
}

/* FREE[i] += 1: the slot of seq myfirst + k may be refilled. */
inline release()
{
	d_step {
		/* Property 1, the consumer's side: nobody refilled it while
		 * we wrote it out (an evicted consumer's torn check). */
		assert(slot[(myfirst + k) % NSLOTS] == myfirst + k || !OURS);
		sem_free[e]++;
		assert(sem_free[e] <= NSLOTS + 1); /* property 4 */
		g_rel[e]++;
		k++
	}
}

proctype Consumer(byte id; bit sequential; bit can_leave; bit can_die)
{
	byte e, mygen, myfirst, k, i;
	bit left, mine;

	register();
	if
	:: e == NONE -> goto gone
	:: else
	fi;
	/* The invocation may give the entry up before its consumer runs. */
	if
	:: can_leave -> abandon(); goto gone
	:: skip
	fi;
	claim();
	hand_off();
	do
	:: k < NBLOCKS ->
		wait_block();
#ifdef FAIL
		if
		:: ring_state == R_FAILED -> leave(); goto gone
		:: else
		fi;
#endif
		/* Read the slot: it must hold exactly our seq (property 1). */
		printf("C%d: read slot %d: %d, want %d\n", id,
		       (myfirst + k) % NSLOTS, slot[(myfirst + k) % NSLOTS],
		       myfirst + k);
		if
		:: slot[(myfirst + k) % NSLOTS] == myfirst + k
#ifdef HOLD
			/* Property 5: a HELD slot only for a block our
			 * target holds (the C fails the target otherwise;
			 * the model proves it never has to). */
			assert(!slot_held[(myfirst + k) % NSLOTS] ||
			       (SCANS(id) &&
			       ((HELDMASK(id) >> ((myfirst + k) % NBLOCKS)) & 1)))
#endif
		:: else ->
			/* Only an evicted consumer may find it refilled: it
			 * fails its target. */
			assert(!OURS);
			leave();
			goto gone
		fi;
		/* Writing the block to the target: anything may happen. */
		if
		:: skip
		:: can_leave -> leave(); goto gone
		:: can_die -> die(); goto gone
		fi;
		release()
	:: else -> break
	od;
	/* Property 2: all our blocks, and nothing more published to us. */
	assert(k == NBLOCKS);
	assert(sem_avail[e] == 0 || !OURS || ring_state == R_FAILED);
	leave();
gone:
	skip;
	/* A process that ended keeps its locals in the state vector. */
	d_step {
		e = 0; mygen = 0; myfirst = 0; k = 0; i = 0; left = 0;
		mine = 0; g_ended++
	}
}

init
{
	/* The invocation that started the ring registers its consumer before
	 * the producer runs; the joiners come when they come. */
	run Consumer(0, 0, (LEAVERS >> 0) & 1, (DIERS >> 0) & 1);
	tab[0].gen > 0;
	atomic {
		run Producer();
#if NCONS > 1
		run Consumer(1, 0, (LEAVERS >> 1) & 1, (DIERS >> 1) & 1);
#endif
#if NCONS > 2
		run Consumer(2, 1, (LEAVERS >> 2) & 1, (DIERS >> 2) & 1);
#endif
#if NCONS > 3
		run Consumer(3, 0, (LEAVERS >> 3) & 1, (DIERS >> 3) & 1);
#endif
#if NCONS > 4
		run Consumer(4, 1, (LEAVERS >> 4) & 1, (DIERS >> 4) & 1);
#endif
	}
}
