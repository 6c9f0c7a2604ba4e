/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit test: the real ring-protocol verbs (src/ringproto.c) run by one
 * process that plays the producer and up to MAX_SIM consumers as explicit
 * state machines, one verb call per scheduler step, every blocking verb
 * called with timeout 0.  A seeded scheduler picks the next actor among the
 * runnable ones (weighted: each actor has its own speed), now and then an
 * actor that is blocked (its try must fail), over many geometries and join
 * patterns: consumers registered at the start (in one register call), late,
 * sequential, into entries others left (new generations), refused when the
 * table is full, leaving early (holding slots or not), abandoned before
 * their claim, dying (their liveness token dropped, never leaving), and
 * orphaned (the registrant's token dropped before the claim, which then
 * finds the entry still its own, or freed and perhaps reused: -ESTALE).
 * Geometries: blocks of 4 KiB, images of 1..6 blocks (the last one whole or
 * short), 1..4 slots, 2..4 table entries; first a deterministic regression
 * case (the producer steps through a tail, it does not jump).
 *
 * After every step the real segment and semaphores must agree with what the
 * actors did:
 *   - LOCK is 1 between verbs, JOIN (the doorbell) is 0 or 1, PALIVE is 1;
 *   - every entry that is not FREE belongs to the registration the table
 *     says (generation, first sequence number, pid, claim, state);
 *   - credits are conserved exactly: FREE[i] = nslots + released + (1 once
 *     left) - credits the producer took for i, AVAIL[i] = published - taken
 *     by the consumer, ALIVE[i] = the tokens the actors hold;
 *   - the producer takes i's credits for first, first+1, ... with no gap
 *     (it never jumps over a sequence number in an active entry's window
 *     first .. first+nblocks+nslots-1) and publishes first, first+1, ...;
 *   - every slot a live consumer may still read (published to it and not
 *     released) holds its sequence number: never overwritten while needed;
 *   - each consumer receives seq first+k, block (first+k) mod nblocks, with
 *     the length, hash and data the producer wrote, each block exactly once;
 *   - if no actor can move and the schedule is not over, it deadlocked;
 *   - at the end every entry is free and select(close_if_idle) closes.
 * A failure prints the seed, the schedule and the last steps, and how to
 * replay that one schedule with its whole trace.
 *
 * RINGPROTO_SEED (default 1), RINGPROTO_SCHEDULES (default 100000; 2000
 * under RINGCOPY_VALGRIND=1), RINGPROTO_ONLY=k (run schedule k alone,
 * printing every step), RINGPROTO_JOBS (worker processes that share the
 * schedules out, default 2 on two or more CPUs; schedule k is the same
 * whichever worker runs it).
 */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "ringcopy/ring.h"
#include "ringcopy/ringproto.h"

#define BS 4096u
#define MAX_NBLOCKS 10u /* the regression case's image */
#define MAX_NCONS 4u    /* table capacity */
#define MAX_SIM 6u      /* consumers in one schedule */
#define STEP_LIMIT 20000u
#define TRACE_KEEP 64u
#define TRACE_SHOW 40u

union sim_semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

enum pstate { P_SELECT, P_TAKE, P_FILL, P_WAIT, P_CLOSED };
enum cstate { C_UNBORN, C_REG, C_ORPHAN, C_CLAIMED, C_RUN, C_DONE };
/* How a consumer ends: it copies everything, leaves early, is abandoned
 * by its registrant before its claim, dies (token dropped, never leaves),
 * or its registrant dies before it claims (orphan: the claim finds the
 * entry still its own, or freed by the producer or reused). */
enum cend { E_COMPLETE, E_EARLY, E_ABANDON, E_DIE, E_ORPHAN };
enum act {
	A_REGISTER, A_CLAIM, A_HANDOFF, A_ABANDON, A_WAIT, A_RELEASE,
	A_LEAVE, A_DIE, A_REGDIE
};
enum tkind {
	T_REG, T_CLAIM, T_HANDOFF, T_ABANDON, T_WAIT, T_RELEASE, T_LEAVE,
	T_DIE, T_REGDIE, T_SELECT, T_TAKE, T_EVICT, T_FILL, T_PUBLISH, T_WAKE
};

struct trec {
	uint64_t step;
	int kind, actor;
	long long rc;
	uint64_t a, b, c, d;
};

struct scons {
	enum cstate st;
	enum cend end;
	bool at_start, sequential;
	unsigned weight, joinw, hold;
	uint64_t stop_at;     /* E_EARLY, E_DIE: after this many blocks */
	struct rc_reg reg;
	uint64_t got, rel, pub, taken;
	uint32_t seen;        /* blocks received, one bit each */
	unsigned leavepost;   /* 1 once leave/abandon posted its credit */
	unsigned tokens;      /* ALIVE tokens the actors hold for it */
	pid_t regpid;         /* its registrant (REG_PID of the first of
			       * the registration) */
	bool claimed, left, dead, freed;
};

struct sim {
	struct rc_ring r;
	bool live;
	struct rc_proto_prod p;
	uint64_t seed, sched, rng;
	uint64_t nblocks, image;
	uint32_t nslots, ncons;
	unsigned nsim;
	struct scons c[MAX_SIM];
	int owner[MAX_NCONS]; /* sim consumer of each non-free entry */
	enum pstate pst;
	int stepkind;         /* PRODUCE or SKIP while in P_TAKE */
	bool drain;           /* P_WAIT after DRAIN (evicts), not IDLE */
	unsigned pweight;
	unsigned short sem[RC_NSEMS(MAX_NCONS)];
	bool woke;            /* the producer has just waited on JOIN */
	uint64_t steps;       /* verb steps in this schedule */
	uint64_t ntrace;
	struct trec trace[TRACE_KEEP];
	bool verbose;
};

static struct sim S;
static unsigned char pat[MAX_NBLOCKS][BS];
static pid_t mypid;
/* Each actor its own identity to the protocol (ring.h `self'): the
 * registrant of consumer c, and consumer c itself.  Not real processes:
 * only the protocol's owner checks look at them. */
#define REG_PID(c)  ((pid_t)(4000000 + 2 * (int)(c)))
#define CONS_PID(c) ((pid_t)(4000001 + 2 * (int)(c)))

/* Rings by geometry, each reset to what rc_ring_create made before a
 * schedule uses it: creating and removing SysV objects costs more than a
 * whole schedule. */
#define POOL_MAX 256u
static struct pooled {
	uint64_t image;
	uint32_t nslots, ncons;
	struct rc_ring r;              /* as rc_ring_create left it */
	struct rc_ring_hdr hdr;        /* the header it wrote */
} pool[POOL_MAX];
static unsigned npool;
static bool in_worker; /* a forked worker: a failure exits it */

/* What the schedules did: counts, then the geometries seen. */
struct counts {
	uint64_t schedules, steps, skips, jumps, blocked_takes, evicted_dead;
	uint64_t late, sequential, early, abandoned, died, reused, busy;
	uint64_t short_last, held_at_leave, multi_reg, orphans, stale_claims;
	uint64_t geoms; /* bit (nblocks-1)*4 + nslots-1; last */
};
static struct counts stats;

/* ---- plumbing ------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static unsigned rnd(struct sim *s, unsigned n)
{
	return (unsigned)(splitmix(&s->rng) % n);
}

/* The hash the producer records for seq: any value, as long as it is
 * known to the test. */
static uint64_t hash_of(uint64_t seq)
{
	uint64_t x = seq ^ UINT64_C(0x5eed5eed5eed5eed);

	return splitmix(&x);
}

/* Remove every ring (teardown, atexit). */
static void remove_ring(void)
{
	unsigned i;

	for (i = 0; i < npool; i++)
		rc_ring_remove(&pool[i].r);
	npool = 0;
	S.live = false;
}

static const char *step_name(long long rc)
{
	switch (rc) {
	case RC_STEP_PRODUCE: return "PRODUCE";
	case RC_STEP_SKIP: return "SKIP";
	case RC_STEP_IDLE: return "IDLE";
	case RC_STEP_DRAIN: return "DRAIN";
	case RC_STEP_CLOSED: return "CLOSED";
	default: return "error";
	}
}

static void print_trec(const struct trec *t)
{
	unsigned long long a = t->a, b = t->b, c = t->c, d = t->d;

	fprintf(stderr, "  %5llu ", (unsigned long long)t->step);
	switch (t->kind) {
	case T_REG:
		fprintf(stderr, "c%d register%s -> %lld: entry %llu first %llu gen %llu\n",
			t->actor, d ? " (sequential)" : "", t->rc, a, b, c);
		break;
	case T_CLAIM:
		fprintf(stderr, "c%d claim -> %lld\n", t->actor, t->rc);
		break;
	case T_HANDOFF:
		fprintf(stderr, "c%d hand_off\n", t->actor);
		break;
	case T_ABANDON:
		fprintf(stderr, "c%d abandon (unclaimed)\n", t->actor);
		break;
	case T_WAIT:
		fprintf(stderr, "c%d wait_block(0) -> %lld (AVAIL was %llu; seq %llu)\n",
			t->actor, t->rc, a, b);
		break;
	case T_RELEASE:
		fprintf(stderr, "c%d release %llu -> %lld (seq %llu..%llu)\n",
			t->actor, a, t->rc, b, b + a - 1);
		break;
	case T_LEAVE:
		fprintf(stderr, "c%d leave (got %llu, released %llu)\n",
			t->actor, a, b);
		break;
	case T_DIE:
		fprintf(stderr, "c%d dies: token dropped (got %llu, released %llu)\n",
			t->actor, a, b);
		break;
	case T_REGDIE:
		fprintf(stderr, "c%d's registrant dies before the claim: its token dropped\n",
			t->actor);
		break;
	case T_SELECT:
		fprintf(stderr, "P select(close_if_idle=%llu) -> %s n=%llu nneed=%llu nwait=%llu\n",
			d, step_name(t->rc), a, b, c);
		break;
	case T_TAKE:
		fprintf(stderr, "P take_credits(0) n=%llu nwait=%llu -> %lld\n",
			a, b, t->rc);
		break;
	case T_EVICT:
		fprintf(stderr, "P evict -> %lld (nwait %llu nneed %llu)\n",
			t->rc, a, b);
		break;
	case T_FILL:
		fprintf(stderr, "P fill slot %llu: seq %llu block %llu (was seq %llu)\n",
			a, b, c, d);
		break;
	case T_PUBLISH:
		fprintf(stderr, "P publish seq %llu to %llu entries -> %lld\n",
			a, b, t->rc);
		break;
	case T_WAKE:
		fprintf(stderr, "P wait_table(0) (JOIN was %llu)%s\n", a,
			b ? " after DRAIN" : " after IDLE");
		break;
	}
}

static void trace(struct sim *s, int kind, int actor, long long rc,
		  uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
	struct trec *t = &s->trace[s->ntrace++ % TRACE_KEEP];

	t->step = s->steps;
	t->kind = kind;
	t->actor = actor;
	t->rc = rc;
	t->a = a;
	t->b = b;
	t->c = c;
	t->d = d;
	if (s->verbose)
		print_trec(t);
}

static void sim_fail(struct sim *s, int line, const char *cond,
		     const char *fmt, ...)
	__attribute__((noreturn, format(printf, 4, 5)));

static void sim_fail(struct sim *s, int line, const char *cond,
		     const char *fmt, ...)
{
	va_list ap;
	uint64_t k, from;
	uint32_t i;

	fprintf(stderr, "\nringproto-sched: FAILED (line %d: %s)\n  ", line,
		cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n  seed %llu, schedule %llu, step %llu; geometry: %llu blocks (image %llu bytes), %u slots, %u entries, %u consumers\n",
		(unsigned long long)s->seed, (unsigned long long)s->sched,
		(unsigned long long)s->steps, (unsigned long long)s->nblocks,
		(unsigned long long)s->image, s->nslots, s->ncons, s->nsim);
	if (s->sched == UINT64_MAX)
		fprintf(stderr, "  (the deterministic regression case)\n");
	else
		fprintf(stderr, "  replay: RINGPROTO_SEED=%llu RINGPROTO_ONLY=%llu tests/unit/test-ringproto-sched\n",
			(unsigned long long)s->seed,
			(unsigned long long)s->sched);
	fprintf(stderr, "  last steps:\n");
	from = s->ntrace > TRACE_SHOW ? s->ntrace - TRACE_SHOW : 0;
	for (k = from; k < s->ntrace; k++)
		print_trec(&s->trace[k % TRACE_KEEP]);
	if (s->live) {
		fprintf(stderr, "  producer: state %d next %llu n %llu; table:\n",
			(int)s->pst, (unsigned long long)s->p.next,
			(unsigned long long)s->p.n);
		for (i = 0; i < s->ncons; i++) {
			const struct rc_cons_ent *e = &s->r.ctab[i];

			fprintf(stderr, "    entry %u: state %u gen %llu first %llu claimed %u FREE %d AVAIL %d ALIVE %d (c%d)\n",
				i, e->state, (unsigned long long)e->gen,
				(unsigned long long)e->first_seq, e->claimed,
				rc_proto_semval(&s->r, RC_SEM_FREE(i)),
				rc_proto_semval(&s->r, RC_SEM_AVAIL(i)),
				rc_proto_semval(&s->r, RC_SEM_ALIVE(i)),
				s->owner[i]);
		}
		for (i = 0; i < s->nslots; i++)
			fprintf(stderr, "    slot %u: seq %llu block %llu len %u\n",
				i, (unsigned long long)s->r.shdr[i].seq,
				(unsigned long long)s->r.shdr[i].block,
				s->r.shdr[i].len);
	}
	for (i = 0; i < s->nsim; i++) {
		const struct scons *c = &s->c[i];

		fprintf(stderr, "    c%u: state %d end %d%s%s first %llu got %llu released %llu published %llu taken %llu tokens %u%s%s\n",
			i, (int)c->st, (int)c->end,
			c->sequential ? " sequential" : "",
			c->at_start ? " at-start" : "",
			(unsigned long long)c->reg.first,
			(unsigned long long)c->got, (unsigned long long)c->rel,
			(unsigned long long)c->pub,
			(unsigned long long)c->taken, c->tokens,
			c->left ? " left" : "", c->dead ? " dead" : "");
	}
	if (in_worker) {
		remove_ring();
		_exit(1);
	}
	if (s->sched == UINT64_MAX)
		fail_msg("ringproto-sched: the regression case failed");
	else
		fail_msg("ringproto-sched: seed %llu schedule %llu failed",
			 (unsigned long long)s->seed,
			 (unsigned long long)s->sched);
	abort();
}

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond))                                               \
			sim_fail(s, __LINE__, #cond, __VA_ARGS__);         \
	} while (0)

/* ---- the invariants --------------------------------------------------------- */

/* Slot of seq holds seq as the producer wrote it (data too if asked). */
static void check_slot(struct sim *s, int ci, uint64_t seq, bool data)
{
	uint32_t slot = rc_seq_slot(seq, s->nslots);
	const struct rc_slot_hdr *h = &s->r.shdr[slot];
	uint64_t block = rc_seq_block(seq, s->nblocks);
	uint32_t len = rc_block_len(s->image, BS, block);

	CHECK(h->seq == seq && h->block == block && h->len == len &&
		      h->flags == 0 && h->hash == hash_of(seq) &&
		      h->checked == RC_SEQ_NONE,
	      "slot %u holds seq %llu (block %llu, len %u) but consumer c%d still needs seq %llu (block %llu, len %u) there: overwritten while needed",
	      slot, (unsigned long long)h->seq,
	      (unsigned long long)h->block, h->len, ci,
	      (unsigned long long)seq, (unsigned long long)block, len);
	if (data)
		CHECK(memcmp(rc_slot_data(&s->r, slot), pat[block], len) == 0,
		      "slot %u data is not block %llu's (seq %llu, consumer c%d)",
		      slot, (unsigned long long)block,
		      (unsigned long long)seq, ci);
}

static bool all_done(struct sim *s)
{
	unsigned i;

	for (i = 0; i < s->nsim; i++)
		if (s->c[i].st != C_DONE)
			return false;
	return true;
}

static void check_inv(struct sim *s)
{
	struct rc_ring *r = &s->r;
	union sim_semun arg = { .array = s->sem };
	uint32_t i;
	unsigned ci;

	CHECK(semctl(r->semid, 0, GETALL, arg) == 0, "semctl GETALL: %s",
	      strerror(errno));
	CHECK(s->sem[RC_SEM_LOCK] == 1, "LOCK is %u between verbs",
	      s->sem[RC_SEM_LOCK]);
	CHECK(s->sem[RC_SEM_JOIN] <= 1, "the doorbell JOIN grew to %u",
	      s->sem[RC_SEM_JOIN]);
	CHECK(s->sem[RC_SEM_PALIVE] == 1, "PALIVE is %u",
	      s->sem[RC_SEM_PALIVE]);
	CHECK(!s->woke || s->sem[RC_SEM_JOIN] == 0,
	      "the doorbell is still rung after the producer's wait");
	s->woke = false;
	CHECK(r->hdr->next_seq == s->p.next,
	      "next_seq %llu in the header, %llu in the producer",
	      (unsigned long long)r->hdr->next_seq,
	      (unsigned long long)s->p.next);
	CHECK(r->hdr->state == (s->pst == P_CLOSED ? RC_RING_CLOSING
						   : RC_RING_RUNNING),
	      "ring state %u", r->hdr->state);
	CHECK(r->hdr->producer_pid == mypid, "producer_pid %d",
	      (int)r->hdr->producer_pid);
	for (i = 0; i < s->ncons; i++) {
		const struct rc_cons_ent *e = &r->ctab[i];
		unsigned fr = s->sem[RC_SEM_FREE(i)];
		unsigned av = s->sem[RC_SEM_AVAIL(i)];
		unsigned al = s->sem[RC_SEM_ALIVE(i)];
		int o = s->owner[i];
		struct scons *c;
		uint64_t k, expect_free;

		CHECK(e->state <= RC_CONS_LEAVING, "entry %u has state %u", i,
		      e->state);
		if (e->state == RC_CONS_FREE) {
			CHECK(al == 0, "free entry %u has %u tokens", i, al);
			if (o >= 0) {
				CHECK(s->c[o].left || s->c[o].dead,
				      "entry %u was freed under live consumer c%d",
				      i, o);
				s->c[o].freed = true;
				s->owner[i] = -1;
			}
			continue;
		}
		CHECK(o >= 0, "entry %u is in state %u but nobody registered it",
		      i, e->state);
		c = &s->c[o];
		CHECK(e->gen == c->reg.gen && e->first_seq == c->reg.first &&
			      e->pid == (c->claimed ? CONS_PID(o) : c->regpid),
		      "entry %u (gen %llu, first %llu) is not c%d's registration (gen %llu, first %llu)",
		      i, (unsigned long long)e->gen,
		      (unsigned long long)e->first_seq, o,
		      (unsigned long long)c->reg.gen,
		      (unsigned long long)c->reg.first);
		CHECK(e->state == (c->left ? RC_CONS_LEAVING : RC_CONS_ACTIVE),
		      "entry %u is in state %u, c%d %s", i, e->state, o,
		      c->left ? "left" : c->dead ? "died" : "is live");
		CHECK(e->claimed == (uint32_t)c->claimed,
		      "entry %u claimed %u, c%d %s", i, e->claimed, o,
		      c->claimed ? "claimed it" : "did not claim it");
		CHECK(al == c->tokens, "entry %u has %u tokens, c%d's actors hold %u",
		      i, al, o, c->tokens);
		expect_free = s->nslots + c->rel + c->leavepost - c->taken;
		CHECK(c->taken <= s->nslots + c->rel + c->leavepost &&
			      fr == expect_free,
		      "credits not conserved: FREE[%u] = %u, expected nslots %u + released %llu + leave %u - taken by the producer %llu",
		      i, fr, s->nslots, (unsigned long long)c->rel,
		      c->leavepost, (unsigned long long)c->taken);
		CHECK(av == c->pub - c->got,
		      "AVAIL[%u] = %u, published %llu - taken by c%d %llu", i,
		      av, (unsigned long long)c->pub, o,
		      (unsigned long long)c->got);
		CHECK(c->got <= c->pub && c->rel <= c->got &&
			      c->got - c->rel <= s->nslots,
		      "c%d holds %llu slots of %u", o,
		      (unsigned long long)(c->got - c->rel), s->nslots);
		if (e->state == RC_CONS_ACTIVE)
			CHECK(fr <= s->nslots && av <= s->nslots,
			      "active entry %u: FREE %u AVAIL %u > %u slots",
			      i, fr, av, s->nslots);
		CHECK(c->taken <= s->nblocks + s->nslots &&
			      c->pub <= s->nblocks,
		      "c%d: %llu credits taken, %llu blocks published", o,
		      (unsigned long long)c->taken,
		      (unsigned long long)c->pub);
		/* Within the range a credit is taken only to publish:
		 * at most one is in flight, between take and publish. */
		if (c->taken <= s->nblocks && c->taken != c->pub)
			CHECK(c->taken == c->pub + 1 &&
				      s->pst == P_FILL &&
				      s->p.n == c->reg.first + c->pub,
			      "c%d: %llu credits taken but %llu blocks published",
			      o, (unsigned long long)c->taken,
			      (unsigned long long)c->pub);
		/* Never overwritten while needed: all it was published
		 * and did not release. */
		if (!c->left && !c->dead)
			for (k = c->reg.first + c->rel;
			     k < c->reg.first + c->pub; k++)
				check_slot(s, o, k, false);
	}
	for (ci = 0; ci < s->nsim; ci++) {
		const struct scons *c = &s->c[ci];

		if (c->st != C_UNBORN && !c->freed && !c->left && !c->dead)
			CHECK(s->owner[c->reg.idx] == (int)ci,
			      "c%u lost its entry %u", ci, c->reg.idx);
	}
}

/* Would the producer step over [from, to) in some active entry's window
 * (first .. first + nblocks + nslots - 1)? */
static void check_jump(struct sim *s, uint64_t from, uint64_t to)
{
	unsigned ci;

	if (to == from)
		return;
	stats.jumps++;
	for (ci = 0; ci < s->nsim; ci++) {
		const struct scons *c = &s->c[ci];
		const struct rc_cons_ent *e;
		uint64_t lo, hi;

		if (c->st == C_UNBORN || c->freed)
			continue;
		e = &s->r.ctab[c->reg.idx];
		if (e->state != RC_CONS_ACTIVE || e->gen != c->reg.gen)
			continue;
		lo = c->reg.first;
		hi = lo + s->nblocks + s->nslots;
		CHECK(to <= lo || from >= hi,
		      "the producer jumped from seq %llu to %llu over c%u's window %llu..%llu (it still holds slots there)",
		      (unsigned long long)from, (unsigned long long)to, ci,
		      (unsigned long long)lo, (unsigned long long)(hi - 1));
	}
}

/* ---- the producer -------------------------------------------------------------- */

static bool take_possible(struct sim *s)
{
	uint32_t k;

	for (k = 0; k < s->p.sel.nwait; k++)
		if (s->sem[RC_SEM_FREE(s->p.sel.wait[k])] == 0)
			return false;
	return true;
}

/* Would an evict change the wait set: a member that left, or whose tokens
 * are gone (the producer finds it when its wait times out)? */
static bool wait_set_stale(struct sim *s)
{
	uint32_t k, i;

	for (k = 0; k < s->p.sel.nwait; k++) {
		i = s->p.sel.wait[k];
		if (s->r.ctab[i].state != RC_CONS_ACTIVE ||
		    s->sem[RC_SEM_ALIVE(i)] == 0)
			return true;
	}
	return false;
}

/* An active entry whose tokens are gone. */
static bool dead_active(struct sim *s)
{
	uint32_t i;

	for (i = 0; i < s->ncons; i++)
		if (s->r.ctab[i].state == RC_CONS_ACTIVE &&
		    s->sem[RC_SEM_ALIVE(i)] == 0)
			return true;
	return false;
}

/* rc_proto_fill's filler: the block's pattern, as the producer reads it. */
static int sim_fill(void *arg, uint64_t n, unsigned char *data,
		    struct rc_fill *f)
{
	struct sim *s = arg;
	uint64_t block = rc_seq_block(n, s->nblocks);

	f->len = rc_block_len(s->image, BS, block);
	memcpy(data, pat[block], f->len);
	f->flags = 0;
	f->hash = hash_of(n);
	return 0;
}

static unsigned prod_enabled(struct sim *s)
{
	switch (s->pst) {
	case P_SELECT:
	case P_FILL:
		return s->pweight;
	case P_TAKE:
		return take_possible(s) || wait_set_stale(s) ? s->pweight : 0;
	case P_WAIT:
		return s->sem[RC_SEM_JOIN] || dead_active(s) || all_done(s)
			       ? s->pweight
			       : 0;
	case P_CLOSED:
		break;
	}
	return 0;
}

static struct scons *owner_of(struct sim *s, uint32_t i)
{
	int o = s->owner[i];

	CHECK(o >= 0 && s->r.ctab[i].gen == s->c[o].reg.gen,
	      "entry %u in the producer's sets belongs to no registration (c%d)",
	      i, o);
	return &s->c[o];
}

static void evict(struct sim *s)
{
	uint32_t i, dead = 0;
	int rc;

	for (i = 0; i < s->ncons; i++)
		if (s->r.ctab[i].state == RC_CONS_ACTIVE &&
		    s->sem[RC_SEM_ALIVE(i)] == 0)
			dead++;
	rc = rc_proto_evict(&s->r, &s->p, 0);
	trace(s, T_EVICT, -1, rc, s->p.sel.nwait, s->p.sel.nneed, 0, 0);
	CHECK(rc >= 0, "rc_proto_evict: %d (%s)", rc, s->r.why);
	stats.evicted_dead += dead;
}

/* One producer step: one verb (evict after a failed try, as the real
 * producer does after a timeout).  Returns the verb's result. */
static int prod_act(struct sim *s)
{
	struct rc_ring *r = &s->r;
	struct rc_proto_prod *p = &s->p;
	uint64_t from = p->next;
	uint32_t k, slot;
	int rc = 0;

	s->steps++;
	switch (s->pst) {
	case P_SELECT: {
		bool close = all_done(s);

		rc = rc_proto_select(r, p, close);
		trace(s, T_SELECT, -1, rc, p->n, p->sel.nneed, p->sel.nwait,
		      close);
		CHECK(rc > 0, "rc_proto_select: %d (%s)", rc, r->why);
		CHECK(p->n >= from, "select went back from %llu to %llu",
		      (unsigned long long)from, (unsigned long long)p->n);
		check_jump(s, from, p->n);
		switch (rc) {
		case RC_STEP_PRODUCE:
		case RC_STEP_SKIP:
			CHECK(rc == RC_STEP_PRODUCE ? p->sel.nneed > 0
						    : !p->sel.nneed &&
							      p->sel.nwait,
			      "%s with nneed %u nwait %u", step_name(rc),
			      p->sel.nneed, p->sel.nwait);
			CHECK(p->next == p->n + 1, "next %llu after step %llu",
			      (unsigned long long)p->next,
			      (unsigned long long)p->n);
			if (rc == RC_STEP_SKIP)
				stats.skips++;
			s->stepkind = rc;
			s->pst = P_TAKE;
			break;
		case RC_STEP_IDLE:
		case RC_STEP_DRAIN:
			CHECK(rc == RC_STEP_DRAIN || !close, "IDLE though closing");
			s->drain = rc == RC_STEP_DRAIN;
			s->pst = P_WAIT;
			break;
		case RC_STEP_CLOSED:
			CHECK(close, "closed though consumers are to come");
			s->pst = P_CLOSED;
			break;
		default:
			CHECK(0, "select returned %d", rc);
		}
		break;
	}
	case P_TAKE: {
		bool could = take_possible(s);

		rc = rc_proto_take_credits(r, p, 0);
		trace(s, T_TAKE, -1, rc, p->n, p->sel.nwait, 0, 0);
		if (rc == 0) {
			CHECK(could, "took credits the semaphores did not hold");
			for (k = 0; k < p->sel.nwait; k++) {
				struct scons *c = owner_of(s, p->sel.wait[k]);

				CHECK(p->n == c->reg.first + c->taken &&
					      p->n < c->reg.first +
							     s->nblocks +
							     s->nslots,
				      "credit for seq %llu taken from entry %u whose consumer (first %llu) gave credits up to seq %llu: a gap",
				      (unsigned long long)p->n,
				      p->sel.wait[k],
				      (unsigned long long)c->reg.first,
				      (unsigned long long)(c->reg.first +
							   c->taken));
				c->taken++;
			}
			/* Those who needed n may be gone: then a skip. */
			s->pst = s->stepkind == RC_STEP_SKIP || !p->sel.nneed
					 ? P_SELECT
					 : P_FILL;
			break;
		}
		CHECK(rc == -EAGAIN, "rc_proto_take_credits: %d (%s)", rc,
		      r->why);
		CHECK(!could, "take_credits failed though every FREE was > 0");
		stats.blocked_takes++;
		/* The real producer evicts after a wait that timed out. */
		check_inv(s);
		s->steps++;
		evict(s);
		break;
	}
	case P_FILL: {
		uint64_t block = rc_seq_block(p->n, s->nblocks);

		slot = rc_seq_slot(p->n, s->nslots);
		trace(s, T_FILL, -1, 0, slot, p->n, block, r->shdr[slot].seq);
		/* The producer's one verb: fill and publish. */
		rc = rc_proto_fill(r, p, sim_fill, s);
		trace(s, T_PUBLISH, -1, rc, p->n, p->sel.nneed, 0, 0);
		CHECK(rc == 0, "rc_proto_fill: %d (%s)", rc, r->why);
		for (k = 0; k < p->sel.nneed; k++) {
			struct scons *c = owner_of(s, p->sel.need[k]);

			CHECK(p->n == c->reg.first + c->pub,
			      "seq %llu published to entry %u whose next is %llu",
			      (unsigned long long)p->n, p->sel.need[k],
			      (unsigned long long)(c->reg.first + c->pub));
			c->pub++;
			CHECK(c->pub == c->taken,
			      "published %llu, credits taken %llu",
			      (unsigned long long)c->pub,
			      (unsigned long long)c->taken);
		}
		s->pst = P_SELECT;
		break;
	}
	case P_WAIT: {
		unsigned join = s->sem[RC_SEM_JOIN];

		rc = rc_proto_wait_table(r, 0);
		trace(s, T_WAKE, -1, rc, join, s->drain, 0, 0);
		CHECK(rc == 0, "rc_proto_wait_table: %d (%s)", rc, r->why);
		s->woke = true;
		if (s->drain) {
			check_inv(s);
			s->steps++;
			evict(s);
		}
		s->pst = P_SELECT;
		break;
	}
	case P_CLOSED:
		CHECK(0, "the producer has closed");
	}
	check_inv(s);
	return rc;
}

/* ---- the consumers ----------------------------------------------------------- */

static bool has_free_entry(struct sim *s)
{
	uint32_t i;

	for (i = 0; i < s->ncons; i++)
		if (s->r.ctab[i].state == RC_CONS_FREE)
			return true;
	return false;
}

static uint64_t cons_limit(struct sim *s, const struct scons *c)
{
	return c->end == E_EARLY || c->end == E_DIE ? c->stop_at : s->nblocks;
}

static unsigned cons_enabled(struct sim *s, unsigned ci)
{
	const struct scons *c = &s->c[ci];

	switch (c->st) {
	case C_UNBORN:
		return has_free_entry(s) ? c->joinw : 0;
	case C_REG:
	case C_ORPHAN:
	case C_CLAIMED:
		return c->weight;
	case C_RUN:
		return c->got >= cons_limit(s, c) || c->got > c->rel ||
				       s->sem[RC_SEM_AVAIL(c->reg.idx)]
			       ? c->weight
			       : 0;
	case C_DONE:
		break;
	}
	return 0;
}

static const char *const names[MAX_SIM] = { "c0", "c1", "c2",
					   "c3", "c4", "c5" };

/* Register consumers list[0..n) in one call, as an invocation does. */
static int cons_register(struct sim *s, const unsigned *list, uint32_t n)
{
	struct rc_reg regs[MAX_SIM];
	const char *nm[MAX_SIM];
	bool seq[MAX_SIM];
	uint64_t before, next;
	uint32_t k, nfree = 0, i;
	int rc;

	for (i = 0; i < s->ncons; i++)
		nfree += s->r.ctab[i].state == RC_CONS_FREE;
	for (k = 0; k < n; k++) {
		nm[k] = names[list[k]];
		seq[k] = s->c[list[k]].sequential;
	}
	s->steps++;
	rc = rc_proto_lock(&s->r);
	CHECK(rc == 0, "rc_proto_lock: %d (%s)", rc, s->r.why);
	/* The invocation joins a running ring only. */
	CHECK(s->r.hdr->state == RC_RING_RUNNING, "joining a ring in state %u",
	      s->r.hdr->state);
	next = s->r.hdr->next_seq;
	s->r.self = REG_PID(list[0]);
	rc = rc_proto_register(&s->r, n, nm, seq, regs, &before);
	s->r.self = 0;
	rc_proto_unlock(&s->r);
	for (k = 0; k < n; k++)
		trace(s, T_REG, (int)list[k], rc, rc ? 0 : regs[k].idx,
		      rc ? 0 : regs[k].first, rc ? 0 : regs[k].gen, seq[k]);
	if (nfree < n) {
		CHECK(rc == -EBUSY, "register of %u with %u free entries: %d",
		      n, nfree, rc);
		stats.busy++;
		check_inv(s);
		return rc;
	}
	CHECK(rc == 0, "rc_proto_register: %d (%s)", rc, s->r.why);
	for (k = 0; k < n; k++) {
		struct scons *c = &s->c[list[k]];
		uint64_t first = seq[k] ? (next + s->nblocks - 1) / s->nblocks *
						  s->nblocks
					: next;

		CHECK(regs[k].idx < s->ncons && s->owner[regs[k].idx] < 0,
		      "c%u got entry %u, still c%d's", list[k], regs[k].idx,
		      s->owner[regs[k].idx < s->ncons ? regs[k].idx : 0]);
		CHECK(regs[k].first == first &&
			      regs[k].owner == REG_PID(list[0]),
		      "c%u registered with first %llu, expected %llu",
		      list[k], (unsigned long long)regs[k].first,
		      (unsigned long long)first);
		if (regs[k].gen > 1)
			stats.reused++;
		s->owner[regs[k].idx] = (int)list[k];
		c->reg = regs[k];
		c->regpid = REG_PID(list[0]);
		c->tokens = 1;
		c->st = C_REG;
	}
	if (n > 1)
		stats.multi_reg++;
	check_inv(s);
	return 0;
}

static int cons_act_as(struct sim *s, unsigned ci, enum act a,
		       uint32_t count);

static int cons_act(struct sim *s, unsigned ci, enum act a, uint32_t count)
{
	struct scons *c = &s->c[ci];
	struct rc_ring *r = &s->r;
	int rc;

	if (a == A_REGISTER)
		return cons_register(s, &ci, 1);
	s->steps++;
	/* The registrant hands off and abandons; the rest is the
	 * consumer's. */
	r->self = a == A_HANDOFF || a == A_ABANDON ? c->regpid : CONS_PID(ci);
	rc = cons_act_as(s, ci, a, count);
	r->self = 0;
	return rc;
}

static int cons_act_as(struct sim *s, unsigned ci, enum act a,
		       uint32_t count)
{
	struct scons *c = &s->c[ci];
	struct rc_ring *r = &s->r;
	uint64_t k;
	int rc = 0;

	switch (a) {
	case A_CLAIM:
		CHECK(c->st == C_REG || c->st == C_ORPHAN,
		      "c%u claims in state %d", ci, (int)c->st);
		rc = rc_proto_claim(r, &c->reg);
		trace(s, T_CLAIM, (int)ci, rc, 0, 0, 0, 0);
		if (c->st == C_ORPHAN && c->freed) {
			/* The producer freed the entry (it may be someone
			 * else's now): the claim must touch nothing. */
			CHECK(rc == -ESTALE,
			      "claim of an entry freed meanwhile: %d (%s)", rc,
			      r->why);
			c->st = C_DONE;
			stats.stale_claims++;
			break;
		}
		CHECK(rc == 0, "rc_proto_claim: %d (%s)", rc, r->why);
		c->claimed = true;
		if (c->st == C_ORPHAN) {
			/* Nobody is left to hand off: it runs on its own
			 * token. */
			c->tokens = 1;
			c->dead = false;
			c->st = C_RUN;
		} else {
			c->tokens = 2;
			c->st = C_CLAIMED;
		}
		break;
	case A_HANDOFF:
		CHECK(c->st == C_CLAIMED, "c%u hands off in state %d", ci,
		      (int)c->st);
		rc_proto_hand_off(r, &c->reg);
		trace(s, T_HANDOFF, (int)ci, 0, 0, 0, 0, 0);
		c->tokens = 1;
		c->st = C_RUN;
		break;
	case A_ABANDON:
		CHECK(c->st == C_REG, "c%u abandons in state %d", ci,
		      (int)c->st);
		rc_proto_abandon(r, &c->reg);
		trace(s, T_ABANDON, (int)ci, 0, 0, 0, 0, 0);
		c->tokens = 0;
		c->leavepost = 1;
		c->left = true;
		c->st = C_DONE;
		stats.abandoned++;
		break;
	case A_WAIT: {
		unsigned av = s->sem[RC_SEM_AVAIL(c->reg.idx)];
		uint64_t seq = c->reg.first + c->got;

		CHECK(c->st == C_RUN, "c%u waits in state %d", ci, (int)c->st);
		rc = rc_proto_wait_block(r, &c->reg, 0);
		trace(s, T_WAIT, (int)ci, rc, av, seq, 0, 0);
		if (!av) {
			CHECK(rc == -EAGAIN,
			      "wait_block(0) with AVAIL 0 returned %d (%s)",
			      rc, r->why);
			break;
		}
		CHECK(rc == 0, "wait_block(0) with AVAIL %u returned %d (%s)",
		      av, rc, r->why);
		CHECK(c->got < s->nblocks, "c%u got a block past its range",
		      ci);
		check_slot(s, (int)ci, seq, true);
		k = rc_seq_block(seq, s->nblocks);
		CHECK(!(c->seen & (UINT32_C(1) << k)),
		      "c%u received block %llu twice", ci,
		      (unsigned long long)k);
		c->seen |= UINT32_C(1) << k;
		c->got++;
		break;
	}
	case A_RELEASE:
		CHECK(c->st == C_RUN && count >= 1 && count <= c->got - c->rel,
		      "c%u releases %u holding %llu", ci, count,
		      (unsigned long long)(c->got - c->rel));
		/* What it held was intact until it let go. */
		for (k = 0; k < count; k++)
			check_slot(s, (int)ci, c->reg.first + c->rel + k, true);
		rc = rc_proto_release(r, &c->reg, count);
		trace(s, T_RELEASE, (int)ci, rc, count, c->reg.first + c->rel,
		      0, 0);
		CHECK(rc == 0, "rc_proto_release: %d (%s)", rc, r->why);
		c->rel += count;
		break;
	case A_LEAVE:
		CHECK(c->st == C_RUN, "c%u leaves in state %d", ci,
		      (int)c->st);
		for (k = c->reg.first + c->rel; k < c->reg.first + c->got; k++)
			check_slot(s, (int)ci, k, true);
		if (c->got > c->rel)
			stats.held_at_leave++;
		rc_proto_leave(r, &c->reg);
		trace(s, T_LEAVE, (int)ci, 0, c->got, c->rel, 0, 0);
		c->tokens = 0;
		c->leavepost = 1;
		c->left = true;
		c->st = C_DONE;
		if (c->end == E_EARLY)
			stats.early++;
		break;
	case A_DIE: {
		struct sembuf op = { (unsigned short)RC_SEM_ALIVE(c->reg.idx),
				     -1, SEM_UNDO };

		CHECK(c->st == C_RUN, "c%u dies in state %d", ci, (int)c->st);
		/* Its process exits: its token goes, nothing else. */
		rc = rc_proto_semop(r->semid, &op, 1, 0);
		trace(s, T_DIE, (int)ci, rc, c->got, c->rel, 0, 0);
		CHECK(rc == 0, "dropping c%u's token: %d", ci, rc);
		c->tokens = 0;
		c->dead = true;
		c->st = C_DONE;
		stats.died++;
		break;
	}
	case A_REGDIE: {
		struct sembuf op = { (unsigned short)RC_SEM_ALIVE(c->reg.idx),
				     -1, SEM_UNDO };

		CHECK(c->st == C_REG, "c%u's registrant dies in state %d", ci,
		      (int)c->st);
		rc = rc_proto_semop(r->semid, &op, 1, 0);
		trace(s, T_REGDIE, (int)ci, rc, 0, 0, 0, 0);
		CHECK(rc == 0, "dropping c%u's registrant token: %d", ci, rc);
		c->tokens = 0;
		c->dead = true; /* until its claim, if that succeeds */
		c->st = C_ORPHAN;
		stats.orphans++;
		break;
	}
	case A_REGISTER:
		break;
	}
	check_inv(s);
	return rc;
}

/* What consumer ci does when the scheduler lets it move. */
static void cons_random(struct sim *s, unsigned ci)
{
	struct scons *c = &s->c[ci];
	uint64_t held = c->got - c->rel;

	switch (c->st) {
	case C_UNBORN:
		cons_act(s, ci, A_REGISTER, 0);
		return;
	case C_REG:
		cons_act(s, ci, c->end == E_ABANDON ? A_ABANDON
				: c->end == E_ORPHAN ? A_REGDIE
						     : A_CLAIM,
			 0);
		return;
	case C_ORPHAN:
		cons_act(s, ci, A_CLAIM, 0);
		return;
	case C_CLAIMED:
		cons_act(s, ci, A_HANDOFF, 0);
		return;
	case C_RUN:
		break;
	case C_DONE:
		return;
	}
	if (c->got >= cons_limit(s, c)) {
		if (c->end == E_DIE)
			cons_act(s, ci, A_DIE, 0);
		else if (c->end == E_EARLY || !held || rnd(s, 8) == 0)
			cons_act(s, ci, A_LEAVE, 0);
		else
			cons_act(s, ci, A_RELEASE, 1 + rnd(s, (unsigned)held));
	} else if (s->sem[RC_SEM_AVAIL(c->reg.idx)] &&
		   (!held || (held < c->hold && rnd(s, 4)))) {
		cons_act(s, ci, A_WAIT, 0);
	} else if (held) {
		cons_act(s, ci, A_RELEASE, 1 + rnd(s, (unsigned)held));
	} else {
		cons_act(s, ci, A_WAIT, 0); /* a try that must fail */
	}
}

/* ---- schedules ---------------------------------------------------------------- */

static void sim_begin(struct sim *s, uint64_t nblocks, uint64_t image,
		      uint32_t nslots_req, uint32_t ncons)
{
	struct rc_ring_params prm = {
		.src_kind = RC_SRC_FILE, .src_id0 = 1, .src_id1 = 2,
		.image_size = image, .block_size = BS,
		.buffer_size = (uint64_t)nslots_req * BS, .ncons = ncons,
		.src_name = "ringproto-sched",
	};
	char err[256];
	uint32_t i;
	int rc;

	memset(&s->p, 0, sizeof s->p);
	memset(s->c, 0, sizeof s->c);
	s->steps = 0;
	s->ntrace = 0;
	s->nsim = 0;
	s->nblocks = nblocks;
	s->image = image;
	s->nslots = nslots_req < nblocks ? nslots_req : (uint32_t)nblocks;
	s->ncons = ncons;
	s->pst = P_SELECT;
	s->pweight = 4;
	for (i = 0; i < MAX_NCONS; i++)
		s->owner[i] = -1;
	for (i = 0; i < npool; i++)
		if (pool[i].image == image && pool[i].ncons == ncons &&
		    pool[i].nslots == s->nslots)
			break;
	if (i == npool) {
		CHECK(npool < POOL_MAX, "too many geometries");
		rc = rc_ring_create(&prm, &pool[i].r, err, sizeof err);
		CHECK(rc == 0, "rc_ring_create: %s", err);
		npool++;
		pool[i].image = image;
		pool[i].ncons = ncons;
		pool[i].nslots = s->nslots;
		pool[i].hdr = *pool[i].r.hdr;
	} else {
		/* Back to a new ring: SETALL also clears every process's
		 * undo adjustments of the set; the segment as the kernel
		 * gave it (zeroes) and the header as rc_ring_create wrote
		 * it. */
		unsigned short vals[RC_NSEMS(MAX_NCONS)] = { 0 };
		union sim_semun arg = { .array = vals };
		struct rc_ring *pr = &pool[i].r;

		vals[RC_SEM_LOCK] = 1;
		CHECK(semctl(pr->semid, 0, SETALL, arg) == 0,
		      "semctl SETALL: %s", strerror(errno));
		memset(pr->base, 0, pr->size);
		*pr->hdr = pool[i].hdr;
	}
	s->r = pool[i].r;
	s->live = true;
	CHECK(s->r.nblocks == nblocks && s->r.nslots == s->nslots &&
		      s->r.ncons == ncons,
	      "geometry %llu blocks %u slots", (unsigned long long)s->r.nblocks,
	      s->r.nslots);
	rc = rc_proto_producer_start(&s->r, &s->p);
	CHECK(rc == 0, "rc_proto_producer_start: %d (%s)", rc, s->r.why);
	CHECK(s->r.hdr->state == RC_RING_RUNNING &&
		      s->r.hdr->producer_pid == mypid && s->p.next == 0,
	      "after producer_start: state %u pid %d next %llu",
	      s->r.hdr->state, (int)s->r.hdr->producer_pid,
	      (unsigned long long)s->p.next);
	check_inv(s);
}

static void sim_end(struct sim *s)
{
	uint32_t i;
	unsigned ci;

	CHECK(s->pst == P_CLOSED && s->r.hdr->state == RC_RING_CLOSING,
	      "not closed");
	for (i = 0; i < s->ncons; i++) {
		CHECK(s->r.ctab[i].state == RC_CONS_FREE,
		      "entry %u is in state %u after the close", i,
		      s->r.ctab[i].state);
		CHECK(s->sem[RC_SEM_ALIVE(i)] == 0,
		      "entry %u keeps a token", i);
	}
	for (ci = 0; ci < s->nsim; ci++) {
		const struct scons *c = &s->c[ci];

		CHECK(c->st == C_DONE, "c%u not done", ci);
		if (c->end == E_ABANDON || (c->end == E_ORPHAN && c->dead))
			continue;
		CHECK(c->got == cons_limit(s, c),
		      "c%u received %llu blocks of %llu", ci,
		      (unsigned long long)c->got,
		      (unsigned long long)cons_limit(s, c));
		if (c->end == E_COMPLETE)
			CHECK(c->seen == (UINT32_C(1) << s->nblocks) - 1,
			      "c%u received blocks %#x", ci, c->seen);
	}
	stats.steps += s->steps;
	stats.schedules++;
	s->live = false;
}

/* Run the actors until the producer closes the ring. */
static void run_until_closed(struct sim *s)
{
	unsigned w[MAX_SIM + 1], total, i, pick;

	while (s->pst != P_CLOSED) {
		CHECK(s->steps < STEP_LIMIT,
		      "no end after %u steps: the actors go round in circles",
		      STEP_LIMIT);
		total = 0;
		w[0] = prod_enabled(s);
		total += w[0];
		for (i = 0; i < s->nsim; i++) {
			w[i + 1] = cons_enabled(s, i);
			total += w[i + 1];
		}
		CHECK(total > 0,
		      "deadlock: every actor is blocked (producer in state %d) and the copy is not over",
		      (int)s->pst);
		if (rnd(s, 16) == 0) {
			/* Someone who may be blocked tries anyway: its
			 * try must fail the way the semaphores say. */
			unsigned cand[MAX_SIM + 1], nc = 0;

			cand[nc++] = 0;
			for (i = 0; i < s->nsim; i++)
				if (s->c[i].st != C_DONE)
					cand[nc++] = i + 1;
			pick = cand[rnd(s, nc)];
		} else {
			unsigned x = rnd(s, total);

			for (pick = 0; x >= w[pick]; pick++)
				x -= w[pick];
		}
		if (pick == 0)
			prod_act(s);
		else
			cons_random(s, pick - 1);
	}
}

static void random_schedule(struct sim *s)
{
	uint64_t nblocks = 1 + rnd(s, 6), image = nblocks * BS;
	uint32_t nslots_req = 1 + rnd(s, 4), ncons = 2 + rnd(s, 3);
	unsigned start[MAX_SIM], nstart = 0, i;

	if (rnd(s, 3) == 0) {
		/* A short last block: 1, half or all but one byte short. */
		static const uint32_t cut[3] = { 1, BS / 2, BS - 1 };

		image -= cut[rnd(s, 3)];
		stats.short_last++;
	}
	sim_begin(s, nblocks, image, nslots_req, ncons);
	stats.geoms |= UINT64_C(1) << ((nblocks - 1) * 4 + s->nslots - 1);
	s->pweight = 1 + rnd(s, 8);
	s->nsim = 1 + rnd(s, ncons + 1);
	for (i = 0; i < s->nsim; i++) {
		struct scons *c = &s->c[i];
		unsigned e = rnd(s, 100);

		c->st = C_UNBORN;
		c->at_start = rnd(s, 3) == 0 && nstart < ncons;
		c->sequential = rnd(s, 4) == 0;
		c->end = e < 64 ? E_COMPLETE : e < 78 ? E_EARLY
			 : e < 86 ? E_ABANDON : e < 93 ? E_DIE : E_ORPHAN;
		c->weight = 1 + rnd(s, 8);
		c->joinw = 1 + rnd(s, 3);
		c->hold = 1 + rnd(s, s->nslots);
		c->stop_at = rnd(s, (unsigned)nblocks);
		if (c->at_start)
			start[nstart++] = i;
		else
			stats.late++;
		stats.sequential += c->sequential;
	}
	if (nstart)
		cons_register(s, start, nstart);
	run_until_closed(s);
	sim_end(s);
}

/* ---- the tests ------------------------------------------------------------------- */

static void init_patterns(void)
{
	uint32_t b, j;

	for (b = 0; b < MAX_NBLOCKS; b++)
		for (j = 0; j < BS; j++)
			pat[b][j] = (unsigned char)(b * 151u + j * 13u +
						    (j >> 8) * 7u + 1u);
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : dflt;
}

/* The regression: 10 blocks, 4 slots.  A (first 0) has read all its blocks
 * and still holds seq 8 and 9 (slots 0 and 1); the producer skips seq 10
 * (A's tail window is 10..13), then B registers sequentially (first 20).
 * Nobody needs 11..13, but the producer must step through them taking A's
 * credits (SKIP), not jump to 20: seq 20 goes to slot 0, where A's seq 8
 * still is.  The old select jumped. */
static void test_skip_not_jump(void **state)
{
	struct sim *s = &S;
	unsigned a = 0, b = 1, listA[1] = { 0 };
	uint64_t seq;
	int rc;

	(void)state;
	s->seed = 0;
	s->sched = UINT64_MAX;
	s->rng = 12345;
	sim_begin(s, 10, 10 * BS, 4, 4);
	CHECK(s->nslots == 4, "nslots %u", s->nslots);
	s->nsim = 2;
	s->c[a].end = s->c[b].end = E_COMPLETE;
	s->c[a].weight = s->c[b].weight = 1;
	s->c[a].joinw = s->c[b].joinw = 1;
	s->c[a].hold = s->c[b].hold = 2;
	s->c[a].at_start = true;
	s->c[b].sequential = true;
	s->c[b].st = C_UNBORN;
	CHECK(cons_register(s, listA, 1) == 0, "register A");
	cons_act(s, a, A_CLAIM, 0);
	cons_act(s, a, A_HANDOFF, 0);
	for (seq = 0; seq < 10; seq++) {
		CHECK(prod_act(s) == RC_STEP_PRODUCE && s->p.n == seq,
		      "seq %llu not produced", (unsigned long long)seq);
		CHECK(prod_act(s) == 0, "take for seq %llu",
		      (unsigned long long)seq);
		prod_act(s); /* fill and publish */
		CHECK(cons_act(s, a, A_WAIT, 0) == 0, "A waits for %llu",
		      (unsigned long long)seq);
		if (seq < 8)
			cons_act(s, a, A_RELEASE, 1);
	}
	CHECK(s->pst == P_SELECT && s->p.next == 10 &&
		      s->c[a].got - s->c[a].rel == 2,
	      "A should hold seq 8 and 9 with the producer at 10");
	for (seq = 10; seq < 14; seq++) {
		if (seq == 11) {
			/* B joins sequentially in A's tail. */
			CHECK(cons_register(s, &b, 1) == 0 &&
				      s->c[b].reg.first == 20,
			      "B registered with first %llu, expected 20",
			      (unsigned long long)s->c[b].reg.first);
		}
		rc = prod_act(s);
		CHECK(rc == RC_STEP_SKIP && s->p.n == seq,
		      "in A's tail the producer must SKIP seq %llu; it chose %s at seq %llu",
		      (unsigned long long)seq, step_name(rc),
		      (unsigned long long)s->p.n);
		rc = prod_act(s); /* take A's credit */
		if (seq >= 12) {
			/* A's credits are spent: it holds seq 8 and 9. */
			CHECK(rc == -EAGAIN,
			      "took a credit A does not have for seq %llu",
			      (unsigned long long)seq);
			check_slot(s, (int)a, seq - 4, true);
			cons_act(s, a, A_RELEASE, 1);
			CHECK(prod_act(s) == 0, "take after A released");
		} else {
			CHECK(rc == 0, "take for skipped seq %llu",
			      (unsigned long long)seq);
		}
	}
	/* Past A's window: now the producer jumps to B's start. */
	rc = prod_act(s);
	CHECK(rc == RC_STEP_PRODUCE && s->p.n == 20,
	      "after A's window: %s at seq %llu, expected PRODUCE at 20",
	      step_name(rc), (unsigned long long)s->p.n);
	run_until_closed(s);
	sim_end(s);
}

/* Schedules lo, lo + stride, ... below hi. */
static void run_schedules(uint64_t seed, uint64_t lo, uint64_t hi,
			  uint64_t stride)
{
	struct sim *s = &S;
	uint64_t k;

	for (k = lo; k < hi; k += stride) {
		s->seed = seed;
		s->sched = k;
		s->rng = seed ^ (k * UINT64_C(0xd1342543de82ef95));
		splitmix(&s->rng);
		random_schedule(s);
	}
}

static void add_stats(const struct counts *w)
{
	const uint64_t *from = (const uint64_t *)(const void *)w;
	uint64_t *to = (uint64_t *)(void *)&stats;
	size_t k;

	for (k = 0; k < offsetof(struct counts, geoms) / sizeof *to; k++)
		to[k] += from[k];
	stats.geoms |= w->geoms;
}

/* The schedules are independent: jobs worker processes take every
 * jobs-th one (each schedule is still one process playing every actor). */
static bool run_workers(uint64_t seed, uint64_t lo, uint64_t hi,
			unsigned jobs)
{
	pid_t pid[8];
	int fd[8], p[2], status;
	unsigned j;
	bool ok = true;

	fflush(stdout);
	fflush(stderr);
	for (j = 0; j < jobs; j++) {
		assert_int_equal(pipe(p), 0);
		pid[j] = fork();
		assert_true(pid[j] >= 0);
		if (pid[j] == 0) {
			const char *b = (const char *)&stats;
			size_t off = 0;

			close(p[0]);
			in_worker = true;
			npool = 0; /* the parent's rings are not ours */
			S.live = false;
			mypid = getpid();
			memset(&stats, 0, sizeof stats);
			run_schedules(seed, lo + j, hi, jobs);
			remove_ring();
			while (off < sizeof stats) {
				ssize_t w = write(p[1], b + off,
						  sizeof stats - off);

				if (w <= 0)
					_exit(2);
				off += (size_t)w;
			}
			_exit(0);
		}
		close(p[1]);
		fd[j] = p[0];
	}
	for (j = 0; j < jobs; j++) {
		struct counts buf;
		size_t off = 0;
		ssize_t got;

		while (off < sizeof buf &&
		       (got = read(fd[j], (char *)&buf + off,
				    sizeof buf - off)) > 0)
			off += (size_t)got;
		close(fd[j]);
		if (waitpid(pid[j], &status, 0) != pid[j] ||
		    !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
		    off != sizeof buf) {
			ok = false;
			continue;
		}
		add_stats(&buf);
	}
	return ok;
}

static void test_random_schedules(void **state)
{
	uint64_t seed = env_u64("RINGPROTO_SEED", 1);
	const char *vg = getenv("RINGCOPY_VALGRIND");
	uint64_t n = env_u64("RINGPROTO_SCHEDULES",
			     vg && !strcmp(vg, "1") ? 2000 : 100000);
	const char *only = getenv("RINGPROTO_ONLY");
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t lo = 0, hi = n;
	unsigned jobs = (unsigned)env_u64("RINGPROTO_JOBS", ncpu >= 2 ? 2 : 1);

	(void)state;
	memset(&stats, 0, sizeof stats);
	if (only && *only) {
		lo = strtoull(only, NULL, 0);
		hi = lo + 1;
		S.verbose = true;
		jobs = 1;
	}
	if (jobs > 8)
		jobs = 8;
	if (jobs <= 1 || hi - lo < jobs)
		run_schedules(seed, lo, hi, 1);
	else if (!run_workers(seed, lo, hi, jobs))
		fail_msg("ringproto-sched: a worker failed (its report is above)");
	S.verbose = false;
	printf("ringproto-sched: %llu schedules, %llu steps (seed %llu, %u worker%s)\n",
	       (unsigned long long)stats.schedules,
	       (unsigned long long)stats.steps, (unsigned long long)seed,
	       jobs > 1 && hi - lo >= jobs ? jobs : 1,
	       jobs > 1 && hi - lo >= jobs ? "s" : "");
	printf("ringproto-sched: %u of 18 geometries (%llu with a short last block); %llu skips, %llu jumps, %llu blocked takes; joins: %llu late, %llu sequential, %llu multi-entry registrations, %llu reused entries, %llu refused (table full); ends: %llu early leaves, %llu left holding slots, %llu abandoned, %llu died (%llu evicted), %llu orphaned (%llu claims found the entry gone)\n",
	       (unsigned)__builtin_popcountll(stats.geoms),
	       (unsigned long long)stats.short_last,
	       (unsigned long long)stats.skips,
	       (unsigned long long)stats.jumps,
	       (unsigned long long)stats.blocked_takes,
	       (unsigned long long)stats.late,
	       (unsigned long long)stats.sequential,
	       (unsigned long long)stats.multi_reg,
	       (unsigned long long)stats.reused,
	       (unsigned long long)stats.busy,
	       (unsigned long long)stats.early,
	       (unsigned long long)stats.held_at_leave,
	       (unsigned long long)stats.abandoned,
	       (unsigned long long)stats.died,
	       (unsigned long long)stats.evicted_dead,
	       (unsigned long long)stats.orphans,
	       (unsigned long long)stats.stale_claims);
	assert_true(stats.schedules == hi - lo);
}

static int teardown(void **state)
{
	(void)state;
	remove_ring();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_skip_not_jump, teardown),
		cmocka_unit_test_teardown(test_random_schedules, teardown),
	};

	init_patterns();
	mypid = getpid();
	atexit(remove_ring);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
