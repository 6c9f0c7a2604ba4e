/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit test: the producer's and the consumers' own steps (steps.h: what
 * the binary runs, rc_producer_step, rc_consumer_start/step/finish) driven
 * by one process under a seeded random scheduler, over a real SysV ring.
 *
 * Each schedule picks a geometry (blocks of 4 KiB; images of 1..6 blocks,
 * the last whole or short; 1..4 slots; 2..4 table entries; --start-at; a
 * stream of unknown size that ends at a random byte), a stall timeout, a
 * linger, perhaps a source that fails at a block on a pass, and 1..5
 * consumers: registered at the start, late, sequential (the next pass's
 * block 0), abandoned by their registrant before their claim, dying
 * (their liveness token dropped mid-copy), or stopping for longer than the
 * stall timeout.  Every actor has its own identity to the protocol (the
 * registrant's and the consumer's pid in r->self) and entries are reused
 * (new generations) when there are more consumers than entries.  Time is a
 * simulated clock (r->now_ns): it moves 1 ms a step, and 500 ms (a wait's
 * slice) whenever a round of steps changed nothing, so the stall eviction,
 * the linger and a failed ring's wait for its consumers run as they do on
 * a real clock.  The source and the targets are backends of this test:
 * the source serves bytes derived from the block's index, each target
 * records what was written where.
 *
 * Properties (not the implementation's formulas):
 *   - every write a target receives is whole blocks at block offsets
 *     holding exactly that block's bytes: no slot is read with the wrong
 *     seq or bytes;
 *   - a consumer reported ok received every block of its pass exactly
 *     once, block 0 last (when it is held back);
 *   - a consumer that was not disturbed (not stopped past the stall
 *     timeout, not killed, not abandoned, the source did not fail) is
 *     reported ok;
 *   - a consumer that was not ok says why: evicted, the source's error,
 *     or its claim refused (abandoned);
 *   - credits are conserved: for an active entry, the credits it holds,
 *     the blocks published to it and not taken, and the blocks its consumer
 *     holds add up to the ring's slots while its pass runs (no credit made
 *     or lost), never more after;
 *   - the producer ends (the ring closed or failed) and nothing deadlocks;
 *   - producer skip (a ring with a needed bitmap and a manifest, a third
 *     of the schedules that are not streams): consumers registered with
 *     a random "held" map (their target holds those blocks already, as
 *     --skip-equal's scan would find), late joiners with none or an empty
 *     one.  A consumer ends ok only if its target equals the image (each
 *     block written once, or held and not written), and the producer
 *     reads no block that every consumer registered so far held when it
 *     selected it (those that left count: the ring's bits are never
 *     cleared).
 *
 * RINGSTEPS_SEED (default 1), RINGSTEPS_SCHEDULES (default 6000; 300 under
 * RINGCOPY_VALGRIND=1), RINGSTEPS_ONLY=k (that schedule alone, verbose).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sem.h>
#include <unistd.h>

#include "ringcopy/backend.h"
#include "ringcopy/core.h"
#include "ringcopy/ring.h"
#include "ringcopy/ringproto.h"
#include "ringcopy/steps.h"
#include "ringcopy/verify.h"

#define BS 4096u
#define MAX_NB 6u
#define MAX_SIM 5u
#define STEP_LIMIT 200000u

#define REG_PID(c)  ((pid_t)(4100000 + 2 * (int)(c)))
#define CONS_PID(c) ((pid_t)(4100001 + 2 * (int)(c)))

static uint64_t sim_ns;
static uint64_t sim_now(void)
{
	return sim_ns;
}

static uint64_t rng;
static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static unsigned rnd(unsigned n)
{
	return (unsigned)(splitmix(&rng) % n);
}

/* Byte j of block b: never all zeros, different in every block. */
static unsigned char pat(uint64_t b, uint32_t j)
{
	return (unsigned char)(((b * 251 + j * 7 + 3) & 0xff) | 1);
}

static bool verbose;
static uint64_t cur_sched;
static int failures;

static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "schedule %llu: ", (unsigned long long)cur_sched);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	failures++;
}

/* ---- the source --------------------------------------------------------- */

struct src {
	struct rc_dev dev;
	uint64_t len;          /* bytes of data (a stream's end) */
	uint64_t fail_block;   /* UINT64_MAX: never fails */
	unsigned fail_read;    /* fails on this read of fail_block */
	unsigned reads[MAX_NB];
	bool failed;
	uint64_t nread;        /* blocks read */
};

/* Producer skip: at the last select that chose to produce, did every
 * consumer of seq sel_n hold its block (the test's own view)? */
static bool sel_allheld;
static uint64_t sel_n;
static void skip_read_check(uint64_t b);

static void during_fill(void);

static ssize_t src_pread(struct rc_dev *d, void *buf, size_t len,
			 uint64_t off)
{
	struct src *s = (struct src *)d;
	uint64_t b = off / BS;
	unsigned char *p = buf;
	size_t i;

	if (off % BS == 0 && b < MAX_NB && b == s->fail_block &&
	    ++s->reads[b] == s->fail_read) {
		s->failed = true;
		return -EIO;
	}
	if (off % BS == 0)
		skip_read_check(b);
	s->nread++;
	/* The consumers run while the producer fills a slot. */
	during_fill();
	if (off >= s->len)
		return 0;
	if (len > s->len - off)
		len = (size_t)(s->len - off);
	for (i = 0; i < len; i++)
		p[i] = pat((off + i) / BS, (uint32_t)((off + i) % BS));
	return (ssize_t)len;
}

static int nop_close(struct rc_dev *d)
{
	(void)d;
	return 0;
}

static const struct rc_backend src_be = {
	.version = RC_BACKEND_VERSION, .name = "testsrc",
	.pread = src_pread, .close = nop_close,
};

/* ---- a target ------------------------------------------------------------ */

struct tgt {
	struct rc_dev dev;
	unsigned count[MAX_NB];   /* writes of each block */
	uint64_t order[MAX_NB];   /* the write's number (1..) of each block */
	uint64_t nwrites;
	uint64_t next_off;        /* a sequential target: the next write's */
	uint64_t write_ns;        /* each write takes this long (a slow
				   * target): its consumer is busy */
	uint64_t busy_until;
	int sim;
};

static uint64_t img_len; /* the image's bytes (a stream's: its end) */

static void record(struct tgt *t, const unsigned char *p, size_t len,
		   uint64_t off)
{
	uint64_t b = off / BS, want;
	size_t j;

	want = img_len - off < BS ? img_len - off : BS;
	if (off % BS || b >= MAX_NB || off >= img_len || len != want) {
		fail("consumer %d: a write of %zu bytes at offset %llu is not block %llu of the image",
		     t->sim, len, (unsigned long long)off,
		     (unsigned long long)b);
		return;
	}
	for (j = 0; p && j < len; j++)
		if (p[j] != pat(b, (uint32_t)j)) {
			fail("consumer %d: block %llu byte %zu is %u, not %u",
			     t->sim, (unsigned long long)b, j, p[j],
			     pat(b, (uint32_t)j));
			return;
		}
	if ((t->dev.caps & RC_CAP_SEQUENTIAL) && off != t->next_off)
		fail("consumer %d: sequential target written at %llu, not %llu",
		     t->sim, (unsigned long long)off,
		     (unsigned long long)t->next_off);
	t->next_off = off + len;
	t->count[b]++;
	t->order[b] = ++t->nwrites;
	t->busy_until = sim_ns + t->write_ns;
}

static ssize_t tgt_pwrite(struct rc_dev *d, const void *buf, size_t len,
			  uint64_t off)
{
	record((struct tgt *)d, buf, len, off);
	return (ssize_t)len;
}

static const struct rc_backend tgt_be = {
	.version = RC_BACKEND_VERSION, .name = "testtgt",
	.pwrite = tgt_pwrite, .close = nop_close,
};

/* ---- a schedule -------------------------------------------------------- */

enum cst { C_UNBORN, C_REG, C_RUN, C_DONE, C_DEAD, C_REFUSED };

struct sc {
	enum cst st;
	bool at_start, sequential, abandon, die, stall;
	unsigned weight;
	uint64_t die_at, stall_at, resume_ns;
	bool stalled, handed, slow;
	bool pend;             /* its copy ended inside a fill: finish next */
	int pend_rc;
	unsigned reg;          /* its registrant (several share one) */
	struct rc_ring r, rr;  /* the consumer's and its registrant's view */
	struct rc_consumer_args a;
	struct rc_consumer c;
	struct rc_result res;
	struct tgt *t;
	uint64_t hashes[MAX_NB];
	uint8_t held[1];       /* blocks its target holds (MAX_NB bits) */
	bool holds;            /* registered with held (else: needs all) */
	int rc;
};

struct sched {
	struct rc_ring r;      /* the producer's view */
	struct rc_producer p;
	struct src src;
	uint64_t nblocks, image;
	uint32_t nslots, ncons;
	bool stream;
	bool skip;             /* a needed bitmap and a manifest */
	uint64_t expect[MAX_NB];
	uint8_t lacked;        /* blocks some consumer registered so far
				* lacked (the ring's bits are never
				* cleared: a consumer gone still counts) */
	unsigned n;
	struct sc c[MAX_SIM];
};

static struct sched S;
static struct {
	uint64_t schedules, steps, evicted, died, abandoned, failed_src;
	uint64_t streams, start_at, late, sequential, reused, lingered, slow;
	uint64_t skip, held_slots, reads, late_blank;
} st;

static void say(const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "[%llu ms] ", (unsigned long long)(sim_ns / 1000000));
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static int sem(int idx)
{
	return semctl(S.r.semid, idx, GETVAL);
}

/* Register consumer i, as an invocation does under the election's lock. */
static void do_register(unsigned i)
{
	struct sc *c = &S.c[i];
	const char *names[1] = { "t" };
	uint64_t before;
	int rc;

	rc = rc_proto_lock(&c->rr);
	if (rc < 0) {
		fail("lock: %d", rc);
		c->st = C_REFUSED;
		return;
	}
	/* The election joins only a ring that is starting or running. */
	if ((S.r.hdr->state != RC_RING_RUNNING &&
	     S.r.hdr->state != RC_RING_STARTING) ||
	    !rc_proto_free_entries(&c->rr)) {
		rc_proto_unlock(&c->rr);
		c->st = C_REFUSED;
		say("c%u refused", i);
		return;
	}
	const uint8_t *held[1] = { c->holds ? c->held : NULL };

	rc = rc_proto_register_held(&c->rr, 1, names, &c->sequential, held,
				    &c->a.reg, &before);
	rc_proto_unlock(&c->rr);
	if (rc < 0) {
		fail("register: %d (%s)", rc, c->rr.why);
		c->st = C_REFUSED;
		return;
	}
	S.lacked |= c->holds ? (uint8_t)~c->held[0] : 0xff;
	if (c->a.reg.gen > 1)
		st.reused++;
	say("c%u registered: entry %u gen %llu first %llu", i, c->a.reg.idx,
	    (unsigned long long)c->a.reg.gen,
	    (unsigned long long)c->a.reg.first);
	c->st = C_REG;
	if (c->abandon) {
		rc_proto_abandon(&c->rr, &c->a.reg);
		c->handed = true;
		st.abandoned++;
	}
}

/* Drop the tokens consumer i holds: it died. */
static void kill_consumer(unsigned i)
{
	struct sc *c = &S.c[i];
	struct sembuf op = { (unsigned short)RC_SEM_ALIVE(c->a.reg.idx), -1,
			     SEM_UNDO };

	if (semop(S.r.semid, &op, 1) < 0)
		fail("c%u: its token: %s", i, strerror(errno));
	c->st = C_DEAD;
	c->pend = false;
	st.died++;
	say("c%u died at block %llu", i, (unsigned long long)c->c.k);
}

/* A consumer stopped for three times the stall timeout and a second
 * resumes: with a stall timeout, the producer no longer waits for it. */
static void check_stall(unsigned i)
{
	struct sc *c = &S.c[i];
	struct rc_cons_ent *e = &S.r.ctab[c->a.reg.idx];
	uint32_t k;

	if (!S.r.stall_ms || e->state != RC_CONS_ACTIVE ||
	    e->gen != c->a.reg.gen || S.p.phase != RC_PH_CREDITS ||
	    sem(RC_SEM_FREE(c->a.reg.idx)) != 0)
		return;
	for (k = 0; k < S.p.pp.sel.nwait; k++)
		if (S.p.pp.sel.wait[k] == c->a.reg.idx)
			fail("c%u stopped for %llu ms, the producer still waits for it (--stall-timeout %u ms)",
			     i, (unsigned long long)(3 * S.r.stall_ms + 1000),
			     S.r.stall_ms);
}

/* One step of consumer i: true when something changed. */
static bool consumer_step(unsigned i)
{
	struct sc *c = &S.c[i];
	int rc;

	switch (c->st) {
	case C_UNBORN:
		do_register(i);
		return true;
	case C_REG:
		rc = rc_consumer_start(&c->c, &c->a, 0);
		if (!c->c.claimed) {
			say("c%u claim refused: %s", i, c->res.error);
			c->rc = rc;
			c->st = C_DONE;
			/* Its target is the invocation's to close. */
			rc_dev_close(c->a.dst);
			return true;
		}
		/* The registrant hands off at once (the pipe's byte). */
		rc_proto_hand_off(&c->rr, &c->a.reg);
		c->handed = true;
		if (rc < 0) {
			c->rc = rc_consumer_finish(&c->c, rc);
			c->st = C_DONE;
		} else {
			c->st = C_RUN;
		}
		return true;
	case C_RUN:
		if (c->die && c->c.k >= c->die_at) {
			kill_consumer(i);
			return true;
		}
		if (c->stall && !c->stalled && c->c.k >= c->stall_at) {
			c->stalled = true;
			c->resume_ns = sim_ns +
				       (uint64_t)S.r.stall_ms * 3000000u +
				       1000000000u;
			say("c%u stops at block %llu", i,
			    (unsigned long long)c->c.k);
		}
		if ((c->stalled && sim_ns < c->resume_ns) ||
		    sim_ns < c->t->busy_until)
			return false;
		if (c->stalled && c->resume_ns) {
			check_stall(i);
			c->resume_ns = 0;
		}
		if (c->pend) {
			rc = c->pend_rc;
			c->pend = false;
		} else {
			rc = rc_consumer_step(&c->c);
		}
		if (rc == -EAGAIN)
			return false;
		if (rc > 0)
			return true;
		c->rc = rc_consumer_finish(&c->c, rc);
		c->st = C_DONE;
		say("c%u done: %d %s", i, c->rc, c->res.error);
		return true;
	default:
		return false;
	}
}

/* While the producer reads into a slot (between its retire and its
 * publication), a consumer may take a step of its copy; one that ends
 * finishes at its next turn (finishing takes LOCK: not inside a fill). */
static void during_fill(void)
{
	unsigned i = rnd(2 * MAX_SIM);
	struct sc *c;
	int rc;

	if (i >= S.n)
		return;
	c = &S.c[i];
	if (c->st != C_RUN || c->pend || c->stalled ||
	    sim_ns < c->t->busy_until)
		return;
	rc = rc_consumer_step(&c->c);
	if (rc == -EAGAIN || rc > 0)
		return;
	c->pend = true;
	c->pend_rc = rc;
}

/* Credits: for every active entry whose consumer has not left, what it
 * may still be given (FREE), what was given and not taken (AVAIL) and
 * what it holds add up to the slots while its pass runs, never more. */
static void check_credits(void)
{
	unsigned i;

	/* A failed ring wakes every consumer with a post that is no
	 * block. */
	if (S.r.hdr->state == RC_RING_FAILED)
		return;
	for (i = 0; i < S.n; i++) {
		struct sc *c = &S.c[i];
		struct rc_cons_ent *e;
		int fr, av;
		uint64_t sum, held;

		if (c->st != C_REG && c->st != C_RUN && c->st != C_DEAD)
			continue;
		e = &S.r.ctab[c->a.reg.idx];
		if (e->state != RC_CONS_ACTIVE || e->gen != c->a.reg.gen)
			continue;
		fr = sem(RC_SEM_FREE(c->a.reg.idx));
		av = sem(RC_SEM_AVAIL(c->a.reg.idx));
		held = c->st == C_RUN ? c->c.count : 0;
		sum = (uint64_t)fr + (uint64_t)av + held;
		if (sum > S.nslots ||
		    (S.p.pp.next <= c->a.reg.first + S.nblocks &&
		     sum != S.nslots))
			fail("c%u: credits %d + published %d + held %llu = %llu, the ring has %u slots (producer at %llu, first %llu)",
			     i, fr, av, (unsigned long long)held,
			     (unsigned long long)sum, S.nslots,
			     (unsigned long long)S.p.pp.next,
			     (unsigned long long)c->a.reg.first);
	}
}

/* Consumer i: how it joins and ends, its views of the ring, its target. */
static void setup_consumer(unsigned i)
{
	struct sc *c = &S.c[i];

	c->at_start = i == 0 || S.stream || rnd(3) == 0;
	c->sequential = !c->at_start && rnd(3) == 0;
	c->abandon = rnd(12) == 0;
	c->die = !c->abandon && rnd(8) == 0;
	c->die_at = rnd((unsigned)S.nblocks);
	c->stall = !c->abandon && !c->die && rnd(6) == 0;
	c->stall_at = rnd((unsigned)S.nblocks);
	c->weight = 1 + rnd(8);
	c->r = S.r;
	c->r.self = CONS_PID(i);
	c->rr = S.r;
	c->reg = rnd(2);
	c->rr.self = REG_PID(c->reg);
	c->t = calloc(1, sizeof *c->t);
	c->t->dev.be = &tgt_be;
	c->t->dev.spec = strdup("testtgt");
	c->t->dev.path = "testtgt";
	c->t->dev.size = UINT64_MAX;
	c->t->dev.fd = -1;
	c->t->dev.sector = 512;
	c->t->sim = (int)i;
	if (c->sequential)
		c->t->dev.caps = RC_CAP_SEQUENTIAL;
	c->slow = !c->stall && !c->die && rnd(5) == 0;
	if (c->slow)
		c->t->write_ns = 300000000u;
	st.slow += c->slow;
	c->a.ring = &c->r;
	c->a.dst = &c->t->dev;
	c->a.res = &c->res;
	c->a.ready_fd = -1;
	c->a.hashes = c->hashes;
	c->a.sparse = RC_SPARSE_NEVER;
	c->a.stream = S.stream;
	/* Producer skip: a target that can be read back holds random
	 * blocks; a late joiner often holds none (blank, or no scan). */
	c->holds = S.skip && !c->sequential && rnd(4) != 0;
	if (c->holds && !(!c->at_start && rnd(2)))
		c->held[0] = (uint8_t)rnd(1u << MAX_NB);
	else
		st.late_blank += S.skip && !c->at_start;
	if (S.skip && rnd(3) == 0)
		c->held[0] = (uint8_t)((1u << MAX_NB) - 1); /* holds all */
	c->a.held = c->holds ? c->held : NULL;
	c->a.expect = S.skip ? S.expect : NULL;
	st.late += !c->at_start;
	st.sequential += c->sequential;
}

static void setup(uint64_t k)
{
	struct rc_ring_params prm = { 0 };
	char err[256];
	unsigned i, startat;

	memset(&S, 0, sizeof S);
	S.nblocks = 1 + rnd(MAX_NB);
	S.nslots = 1 + rnd(4);
	S.ncons = 2 + rnd(3);
	S.stream = rnd(5) == 0;
	S.image = (S.nblocks - 1) * BS + (rnd(2) ? BS : 1 + rnd(BS));
	startat = !S.stream && rnd(3) == 0 ? rnd((unsigned)S.nblocks) : 0;
	prm.src_kind = RC_SRC_FILE;
	prm.src_id0 = k;
	prm.src_id1 = 1;
	prm.image_size = S.image;
	prm.block_size = BS;
	prm.buffer_size = (uint64_t)S.nslots * BS;
	prm.ncons = S.ncons;
	prm.stall_ms = rnd(3) ? 1000 : 0;
	prm.linger_ms = rnd(3) == 0 ? 200 + rnd(2000) : 0;
	prm.start_block = startat;
	S.skip = !S.stream && rnd(3) == 0;
	prm.need_map = S.skip;
	if (rc_ring_create(&prm, &S.r, err, sizeof err) < 0) {
		fprintf(stderr, "rc_ring_create: %s\n", err);
		exit(99);
	}
	S.r.now_ns = sim_now;
	S.nslots = S.r.nslots; /* the ring's own rounding */
	S.r.stream = S.stream;
	if (S.skip) {
		/* The manifest: the hash of each block as the source has
		 * it. */
		unsigned char blk[BS];
		uint64_t b;
		uint32_t j, len;

		for (b = 0; b < S.nblocks; b++) {
			len = rc_block_len(S.image, BS, b);
			for (j = 0; j < len; j++)
				blk[j] = pat(b, j);
			S.expect[b] = rc_block_hash(blk, len);
		}
		S.r.expect = S.expect;
		st.skip++;
	}
	st.streams += S.stream;
	st.start_at += startat != 0;
	st.lingered += prm.linger_ms != 0;

	S.src.dev.be = &src_be;
	S.src.dev.spec = strdup("testsrc");
	S.src.dev.path = "testsrc";
	S.src.dev.size = S.image;
	S.src.dev.fd = -1;
	S.src.dev.sector = 512;
	S.src.len = S.stream ? rnd((unsigned)S.image) : S.image;
	S.src.fail_block = UINT64_MAX;
	if (rnd(6) == 0) {
		S.src.fail_block = rnd((unsigned)S.nblocks);
		S.src.fail_read = 1 + rnd(2);
	}
	img_len = S.src.len;

	S.n = 1 + rnd(MAX_SIM);
	for (i = 0; i < S.n; i++)
		setup_consumer(i);
	/* The invocation that creates the ring registers its targets before
	 * the producer starts. */
	for (i = 0; i < S.n; i++)
		if (S.c[i].at_start)
			do_register(i);
	rc_producer_init(&S.p, &S.r, &S.src.dev, -1);
	S.p.wait_ms = 0;
	if (rc_proto_producer_start(&S.r, &S.p.pp) < 0) {
		fprintf(stderr, "producer_start: %s\n", S.r.why);
		exit(99);
	}
	rc_producer_tables(&S.p);
	say("schedule %llu: %llu blocks (%llu bytes%s), %u slots, %u entries, start at %u, stall %u ms, linger %u ms, %u consumers, source fails at %lld",
	    (unsigned long long)k, (unsigned long long)S.nblocks,
	    (unsigned long long)img_len, S.stream ? ", a stream" : "",
	    S.nslots, S.ncons, startat, prm.stall_ms, prm.linger_ms, S.n,
	    S.src.fail_block == UINT64_MAX ? -1LL
					   : (long long)S.src.fail_block);
}

/* What the schedule must have come to. */
static void check_end(void)
{
	uint64_t nb = S.stream ? (img_len + BS - 1) / BS : S.nblocks, b;
	unsigned i;

	if (S.r.hdr->state != RC_RING_CLOSING &&
	    S.r.hdr->state != RC_RING_FAILED)
		fail("the producer ended with the ring in state %u",
		     S.r.hdr->state);
	for (i = 0; i < S.n; i++) {
		struct sc *c = &S.c[i];
		bool disturbed = c->abandon || c->die || S.src.failed ||
				 (c->stall && S.r.stall_ms);

		if (c->st == C_REFUSED || c->st == C_DEAD)
			continue;
		if (c->st != C_DONE) {
			fail("c%u never ended (state %d)", i, c->st);
			continue;
		}
		if (c->res.status == RC_RES_OK) {
			for (b = 0; b < nb; b++)
				if (c->t->count[b] != 1 &&
				    !(c->t->count[b] == 0 && c->holds &&
				      (c->held[0] >> b) & 1))
					fail("c%u reported ok, block %llu written %u times%s",
					     i, (unsigned long long)b,
					     c->t->count[b],
					     c->holds && (c->held[0] >> b) & 1
						     ? " (it held it)"
						     : " (it did not hold it)");
			if (nb > 1 && !c->sequential && c->t->count[0] &&
			    c->t->order[0] != c->t->nwrites)
				fail("c%u: block 0 not written last", i);
		} else if (!disturbed) {
			fail("c%u was not disturbed but failed: %s", i,
			     c->res.error);
		} else if (!strstr(c->res.error, "evicted") &&
			   !strstr(c->res.error, "read of") &&
			   !c->abandon) {
			fail("c%u failed without a reason it was given: %s",
			     i, c->res.error);
		}
		if (strstr(c->res.error, "evicted"))
			st.evicted++;
	}
}

static void teardown(void)
{
	unsigned i;

	rc_producer_finish(&S.p);
	rc_ring_remove(&S.r);
	free(S.src.dev.spec);
	for (i = 0; i < S.n; i++) {
		/* A consumer that never finished still holds its target. */
		if (S.c[i].st != C_DONE) {
			free(S.c[i].t->dev.spec);
			/* A killed consumer's copy state (a process's exit
			 * would free it). */
			if (S.c[i].st == C_DEAD) {
				free(S.c[i].c.q);
				free(S.c[i].c.block0);
			}
		}
		free(S.c[i].t);
	}
}

/* The consumer registered in table entry idx now (NULL: none of ours). */
static struct sc *entry_consumer(uint32_t idx)
{
	const struct rc_cons_ent *e = &S.r.ctab[idx];
	unsigned i;

	for (i = 0; i < S.n; i++)
		if (S.c[i].st != C_UNBORN && S.c[i].st != C_REFUSED &&
		    S.c[i].a.reg.idx == idx && S.c[i].a.reg.gen == e->gen)
			return &S.c[i];
	return NULL;
}

/* After a select that chose to produce n: does every consumer it serves
 * hold n's block (our own view, not the ring's bitmap)? */
static void note_select(void)
{
	uint64_t b = S.p.pp.n % S.nblocks;
	uint32_t k;

	sel_allheld = S.skip && S.p.pp.sel.nneed > 0 &&
		      !((S.lacked >> b) & 1);
	sel_n = S.p.pp.n;
	for (k = 0; sel_allheld && k < S.p.pp.sel.nneed; k++) {
		const struct sc *c = entry_consumer(S.p.pp.sel.need[k]);

		if (!c || !c->holds || !((c->held[0] >> b) & 1))
			sel_allheld = false;
	}
}

/* The producer reads block b: not one every consumer of it holds. */
static void skip_read_check(uint64_t b)
{
	if (sel_allheld && b == sel_n % S.nblocks)
		fail("the producer read block %llu (seq %llu), which every consumer it serves held when it selected it",
		     (unsigned long long)b, (unsigned long long)sel_n);
}

/* Is actor x (S.n: the producer) still to run? */
static bool live(unsigned x)
{
	if (x == S.n)
		return S.p.phase != RC_PH_DONE;
	return S.c[x].st == C_UNBORN || S.c[x].st == C_REG ||
	       S.c[x].st == C_RUN;
}

static void run(uint64_t k)
{
	uint64_t steps;
	bool tried[MAX_SIM + 1] = { false };
	unsigned i, x;

	cur_sched = k;
	setup(k);
	for (steps = 0; steps < STEP_LIMIT; steps++) {
		unsigned total = 0, pick;
		bool changed, all_tried = true, any = false;

		sim_ns += 1000000;
		for (x = 0; x <= S.n; x++) {
			if (!live(x))
				continue;
			any = true;
			total += x == S.n ? 4 : S.c[x].weight;
		}
		if (!any)
			break;
		pick = rnd(total);
		for (x = 0; x <= S.n; x++) {
			unsigned w;

			if (!live(x))
				continue;
			w = x == S.n ? 4 : S.c[x].weight;
			if (pick < w)
				break;
			pick -= w;
		}
		if (x == S.n) {
			uint64_t next = S.p.pp.next;
			int ph = S.p.phase;

			rc_producer_step(&S.p);
			changed = S.p.pp.next != next || (int)S.p.phase != ph;
			if (ph == RC_PH_SELECT && S.p.phase == RC_PH_CREDITS &&
			    S.p.step == RC_STEP_PRODUCE)
				note_select();
		} else {
			/* Late joiners join when they are picked. */
			changed = consumer_step(x);
		}
		st.steps++;
		check_credits();
		if (changed) {
			memset(tried, 0, sizeof tried);
		} else {
			tried[x] = true;
			for (i = 0; i <= S.n; i++)
				if (live(i) && !tried[i])
					all_tried = false;
			if (all_tried) {
				/* Everyone waits: a wait's slice passes. */
				sim_ns += (uint64_t)RC_PROTO_WAIT_MS * 1000000u;
				memset(tried, 0, sizeof tried);
			}
		}
		if (failures)
			break;
	}
	if (steps == STEP_LIMIT)
		fail("no end after %u steps (producer phase %d)", STEP_LIMIT,
		     S.p.phase);
	if (!failures)
		check_end();
	st.failed_src += S.src.failed;
	st.held_slots += S.r.hdr->blocks_held;
	st.reads += S.src.nread;
	sel_allheld = false;
	teardown();
	st.schedules++;
}

int main(void)
{
	const char *e;
	uint64_t seed = 1, n = 6000, only = UINT64_MAX, k;

	if ((e = getenv("RINGSTEPS_SEED")))
		seed = strtoull(e, NULL, 0);
	if (getenv("RINGCOPY_VALGRIND") && !strcmp(getenv("RINGCOPY_VALGRIND"), "1"))
		n = 300;
	if ((e = getenv("RINGSTEPS_SCHEDULES")))
		n = strtoull(e, NULL, 0);
	if ((e = getenv("RINGSTEPS_ONLY"))) {
		only = strtoull(e, NULL, 0);
		verbose = true;
	}
	sim_ns = 1000000000;
	for (k = 0; k < n; k++) {
		if (only != UINT64_MAX && k != only)
			continue;
		rng = seed * UINT64_C(1000003) + k;
		run(k);
		if (failures) {
			fprintf(stderr,
				"FAIL: seed %llu schedule %llu; replay: RINGSTEPS_SEED=%llu RINGSTEPS_ONLY=%llu %s\n",
				(unsigned long long)seed,
				(unsigned long long)k,
				(unsigned long long)seed,
				(unsigned long long)k,
				"tests/unit/test-ringsteps");
			return 1;
		}
	}
	printf("test-ringsteps: seed %llu, %llu schedules, %llu steps: %llu streams, %llu with --start-at, %llu late joiners (%llu sequential), %llu entries reused, %llu abandoned, %llu died, %llu evicted, %llu source failures, %llu lingered, %llu slow; producer skip: %llu schedules, %llu blocks not read (%llu read in all), %llu blank late joiners\n",
	       (unsigned long long)seed, (unsigned long long)st.schedules,
	       (unsigned long long)st.steps, (unsigned long long)st.streams,
	       (unsigned long long)st.start_at, (unsigned long long)st.late,
	       (unsigned long long)st.sequential,
	       (unsigned long long)st.reused,
	       (unsigned long long)st.abandoned, (unsigned long long)st.died,
	       (unsigned long long)st.evicted,
	       (unsigned long long)st.failed_src,
	       (unsigned long long)st.lingered,
	       (unsigned long long)st.slow, (unsigned long long)st.skip,
	       (unsigned long long)st.held_slots,
	       (unsigned long long)st.reads,
	       (unsigned long long)st.late_blank);
	return 0;
}
