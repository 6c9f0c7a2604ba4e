/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests of the protocol verbs on real SysV objects: the doorbell stays
 * at 1 however many joins and leaves a busy ring sees, a registration's
 * generation keeps an abandoned consumer's verbs off the entry's next
 * registration, and the producer steps through a consumer's tail instead of
 * jumping over it. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ringcopy/ring.h"
#include "ringcopy/ringproto.h"

#define BS 4096u

static struct rc_ring ring;
static struct rc_proto_prod prod;

/* A ring of nslots slots for an nblocks-block image, with ourselves as its
 * running producer. */
static void make_ring(uint32_t nblocks, uint32_t nslots)
{
	struct rc_ring_params p = {
		.src_kind = RC_SRC_FILE, .src_id0 = 1, .src_id1 = 2,
		.image_size = (uint64_t)nblocks * BS, .block_size = BS,
		.buffer_size = (uint64_t)nslots * BS, .ncons = 4,
	};
	char err[256];

	memset(&prod, 0, sizeof prod);
	assert_int_equal(rc_ring_create(&p, &ring, err, sizeof err), 0);
	assert_int_equal(ring.nslots, nslots);
	assert_int_equal(rc_proto_producer_start(&ring, &prod), 0);
}

static int remove_ring(void **state)
{
	(void)state;
	rc_ring_remove(&ring);
	return 0;
}

static void reg(struct rc_reg *e, bool sequential)
{
	const char *names[1] = { "t" };
	uint64_t before;

	assert_int_equal(rc_proto_lock(&ring), 0);
	assert_int_equal(rc_proto_register(&ring, 1, names, &sequential, e,
					   &before), 0);
	rc_proto_unlock(&ring);
}

/* JOIN is posted on every register and leave; it used to grow by two per
 * copy while the ring stayed busy, reach SEMVMX and refuse every join. */
static void test_doorbell_bounded(void **state)
{
	struct rc_reg e;
	int i;

	(void)state;
	make_ring(4, 2);
	for (i = 0; i < 17000; i++) {
		reg(&e, false);
		assert_int_equal(rc_proto_claim(&ring, &e), 0);
		rc_proto_hand_off(&ring, &e);
		rc_proto_leave(&ring, &e);
		assert_int_equal(rc_proto_semval(&ring, RC_SEM_JOIN), 1);
		/* The producer frees the entry; it never looked at JOIN. */
		assert_int_equal(rc_proto_evict(&ring, &prod, 0), 0);
	}
	assert_true(e.gen == 17000);
	/* One wait consumes it. */
	assert_int_equal(rc_proto_wait_table(&ring, 0), 0);
	assert_int_equal(rc_proto_semval(&ring, RC_SEM_JOIN), 0);
}

/* The invocation gave up an entry its child had not claimed yet (it was
 * interrupted during the hand-off); the entry was registered again by
 * another copy.  The first child's claim and leave touch nothing. */
static void test_generation(void **state)
{
	struct rc_reg old, cur;

	(void)state;
	make_ring(4, 2);
	reg(&old, false);
	rc_proto_abandon(&ring, &old);
	assert_int_equal(ring.ctab[old.idx].state, RC_CONS_LEAVING);
	assert_int_equal(rc_proto_evict(&ring, &prod, 0), 0);
	reg(&cur, false);
	assert_int_equal(cur.idx, old.idx);
	/* The old registration's consumer (the same process here) finds
	 * its entry taken: its generation is not the entry's. */
	assert_int_equal(rc_proto_check(&ring, &old), -EPROTO);
	assert_false(rc_proto_served(&ring, &old));
	assert_true(rc_proto_served(&ring, &cur));
	assert_true(cur.gen == old.gen + 1);

	assert_int_equal(rc_proto_claim(&ring, &old), -ESTALE);
	assert_non_null(strstr(ring.why, "given up before the copy began"));
	rc_proto_leave(&ring, &old);
	assert_int_equal(ring.ctab[cur.idx].state, RC_CONS_ACTIVE);
	assert_int_equal(rc_proto_semval(&ring, RC_SEM_FREE(cur.idx)), 2);
	assert_int_equal(rc_proto_semval(&ring, RC_SEM_ALIVE(cur.idx)), 1);

	/* Claimed, the entry is its consumer's: the registrant's abandon
	 * only drops the registrant's token. */
	assert_int_equal(rc_proto_claim(&ring, &cur), 0);
	rc_proto_abandon(&ring, &cur);
	assert_int_equal(ring.ctab[cur.idx].state, RC_CONS_ACTIVE);
	assert_int_equal(rc_proto_semval(&ring, RC_SEM_ALIVE(cur.idx)), 1);
	assert_int_equal(rc_proto_check(&ring, &cur), 0);
	rc_proto_leave(&ring, &cur);
	assert_int_equal(ring.ctab[cur.idx].state, RC_CONS_LEAVING);
	assert_int_equal(rc_proto_semval(&ring, RC_SEM_ALIVE(cur.idx)), 0);
}

/* rc_proto_fill's filler: an empty block. */
static int fill_nothing(void *arg, uint64_t n, unsigned char *data,
			struct rc_fill *f)
{
	(void)arg;
	(void)n;
	(void)data;
	f->len = 0;
	return 0;
}

/* Produce (fill nothing, publish) the current step's seq. */
static void produce(void)
{
	assert_int_equal(rc_proto_take_credits(&ring, &prod, 0), 0);
	assert_int_equal(rc_proto_fill(&ring, &prod, fill_nothing, NULL), 0);
	assert_true(ring.shdr[prod.n % ring.nslots].seq == prod.n);
}

/* 10 blocks, 4 slots.  A reads 0..9 but has released only 0..5 when the
 * producer is at 10, past A's range: slots 2 and 3 still hold 6..9 for A.
 * A sequential B starts at 20.  The producer must step (SKIP) through
 * A's tail, taking A's credits, not jump to 20 over it. */
static void test_skip_tail(void **state)
{
	struct rc_reg a, b;
	uint64_t k;

	(void)state;
	make_ring(10, 4);
	reg(&a, false);
	assert_int_equal(rc_proto_claim(&ring, &a), 0);
	rc_proto_hand_off(&ring, &a);
	for (k = 0; k < 10; k++) {
		assert_int_equal(rc_proto_select(&ring, &prod, false),
				 RC_STEP_PRODUCE);
		if (k >= 4) /* A releases k - 4 to make room for k */
			assert_int_equal(rc_proto_release(&ring, &a, 1), 0);
		produce();
		assert_int_equal(rc_proto_wait_block(&ring, &a, 0), 0);
	}
	/* A has taken 0..9 and released 0..5. */
	reg(&b, true);
	assert_true(b.first == 10);
	assert_int_equal(rc_proto_select(&ring, &prod, false),
			 RC_STEP_PRODUCE);
	assert_true(prod.n == 10);
	/* Slot 2 (seq 10) still holds A's seq 6: no credit until A
	 * releases it. */
	assert_int_equal(rc_proto_take_credits(&ring, &prod, 0), -EAGAIN);
	assert_int_equal(rc_proto_release(&ring, &a, 1), 0);
	assert_int_equal(rc_proto_take_credits(&ring, &prod, 0), 0);
	assert_int_equal(rc_proto_fill(&ring, &prod, fill_nothing, NULL), 0);

	/* Now the sequential start at a later pass: register C at 20 with
	 * nobody needing 11..19. */
	rc_proto_leave(&ring, &b);
	assert_int_equal(rc_proto_evict(&ring, &prod, 0), 1);
	reg(&b, true);
	assert_true(b.first == 20);
	assert_int_equal(rc_proto_select(&ring, &prod, false), RC_STEP_SKIP);
	assert_true(prod.n == 11);
	assert_int_equal(rc_proto_take_credits(&ring, &prod, 0), -EAGAIN);
	/* A releases the rest, one slot at a time; each lets one skip. */
	for (k = 11; k < 14; k++) {
		assert_int_equal(rc_proto_release(&ring, &a, 1), 0);
		assert_int_equal(rc_proto_take_credits(&ring, &prod, 0), 0);
		assert_int_equal(rc_proto_select(&ring, &prod, false),
				 k < 13 ? RC_STEP_SKIP : RC_STEP_PRODUCE);
	}
	/* Past A's tail, it jumped to B's start. */
	assert_true(prod.n == 20);
}

/* What the filler saw while it filled, for test_fill_order. */
struct fill_seen {
	const struct rc_reg *e;
	uint64_t seq_during;
	int avail_during;
	unsigned calls;
};

/* A filler that looks at the slot and the consumer's AVAIL while it
 * fills: the slot's seq must be retired and nothing published yet. */
static int fill_and_look(void *arg, uint64_t n, unsigned char *data,
			 struct rc_fill *f)
{
	struct fill_seen *seen = arg;
	uint32_t slot = rc_seq_slot(n, ring.nslots);

	seen->calls++;
	seen->seq_during = ring.shdr[slot].seq;
	seen->avail_during = rc_proto_semval(&ring, RC_SEM_AVAIL(seen->e->idx));
	memset(data, (int)(n & 0xff), BS);
	f->len = BS;
	f->flags = 0;
	f->hash = 1000 + n;
	return 0;
}

static int fill_fails(void *arg, uint64_t n, unsigned char *data,
		      struct rc_fill *f)
{
	(void)arg;
	(void)n;
	(void)data;
	(void)f;
	return -1;
}

/* rc_proto_fill owns the slot's order: during the fill the slot holds no
 * seq and the consumer has no AVAIL for it; after it the header describes
 * the block, the seq is n and AVAIL is posted.  A filler that fails
 * publishes nothing and leaves the slot with no seq. */
static void test_fill_order(void **state)
{
	struct fill_seen seen = { 0 };
	struct rc_slot_view v;
	struct rc_reg a;
	uint64_t k;

	(void)state;
	make_ring(4, 2);
	reg(&a, false);
	seen.e = &a;
	assert_int_equal(rc_proto_claim(&ring, &a), 0);
	rc_proto_hand_off(&ring, &a);
	for (k = 0; k < 4; k++) {
		assert_int_equal(rc_proto_select(&ring, &prod, false),
				 RC_STEP_PRODUCE);
		assert_int_equal(rc_proto_take_credits(&ring, &prod, 0), 0);
		seen.seq_during = 0;
		seen.avail_during = -1;
		assert_int_equal(rc_proto_fill(&ring, &prod, fill_and_look,
					       &seen), 0);
		assert_int_equal(seen.calls, k + 1);
		assert_true(seen.seq_during == RC_SEQ_NONE);
		assert_int_equal(seen.avail_during, 0);
		assert_int_equal(rc_proto_semval(&ring, RC_SEM_AVAIL(a.idx)),
				 1);
		assert_true(rc_proto_slot_holds(&ring, k));
		assert_false(rc_proto_slot_checked(&ring, k));
		rc_proto_slot_view(&ring, k, &v);
		assert_true(v.seq == k && v.block == k && v.len == BS &&
			    v.hash == 1000 + k && v.flags == 0);
		assert_int_equal(v.data[0], (int)k);
		assert_int_equal(rc_proto_wait_block(&ring, &a, 0), 0);
		rc_proto_slot_mark_checked(&ring, k);
		assert_true(rc_proto_slot_checked(&ring, k));
		assert_int_equal(rc_proto_release(&ring, &a, 1), 0);
	}
	/* A second consumer's pass: a failed fill publishes nothing. */
	rc_proto_leave(&ring, &a);
	reg(&a, false);
	assert_int_equal(rc_proto_claim(&ring, &a), 0);
	assert_int_equal(rc_proto_select(&ring, &prod, false),
			 RC_STEP_PRODUCE);
	assert_int_equal(rc_proto_take_credits(&ring, &prod, 0), 0);
	assert_int_equal(rc_proto_fill(&ring, &prod, fill_fails, NULL),
			 -ECANCELED);
	assert_false(rc_proto_slot_holds(&ring, prod.n));
	assert_int_equal(rc_proto_semval(&ring, RC_SEM_AVAIL(a.idx)), 0);
}

/* Register e, claim it, and let the producer spend its credits without e
 * taking anything: the producer's next take fails. */
static void stall_once(struct rc_reg *e)
{
	uint32_t k;

	reg(e, false);
	assert_int_equal(rc_proto_claim(&ring, e), 0);
	rc_proto_hand_off(&ring, e);
	for (k = 0; k < ring.nslots; k++) {
		assert_int_equal(rc_proto_select(&ring, &prod, false),
				 RC_STEP_PRODUCE);
		assert_int_equal(rc_proto_take_credits(&ring, &prod, 0), 0);
		assert_int_equal(rc_proto_fill(&ring, &prod, fill_fails, NULL),
				 -ECANCELED);
	}
	assert_int_equal(rc_proto_select(&ring, &prod, false),
			 RC_STEP_PRODUCE);
	assert_int_equal(rc_proto_take_credits(&ring, &prod, 0), -EAGAIN);
}

/* Stall eviction with an entry reused: A stalls (no credit, no progress)
 * and is evicted; registered again, it stalls and leaves before the
 * timeout; B takes the same entry and stalls in its turn.  B's stall is
 * timed from when B began to stall, never from A's: a producer that
 * carried A's record over would evict B at its first look. */
static void test_stall_reused_entry(void **state)
{
	struct rc_reg a, b;

	(void)state;
	make_ring(64, 2);
	/* A takes nothing: two slots and its credits are spent. */
	stall_once(&a);
	/* The first look starts A's stall clock; 300 ms later A is past a
	 * 200 ms stall timeout and evicted. */
	assert_int_equal(rc_proto_evict(&ring, &prod, 200), 1);
	usleep(300 * 1000);
	assert_int_equal(rc_proto_evict(&ring, &prod, 200), 0);
	assert_int_equal(ring.ctab[a.idx].state, RC_CONS_EVICTED);
	assert_int_equal(rc_proto_check(&ring, &a), -ESTALE);
	/* Evicted, it stays so while its process holds its token. */
	assert_int_equal(rc_proto_evict(&ring, &prod, 200), 0);
	assert_int_equal(ring.ctab[a.idx].state, RC_CONS_EVICTED);
	rc_proto_leave(&ring, &a);
	assert_int_equal(rc_proto_evict(&ring, &prod, 200), 0);
	assert_int_equal(ring.ctab[a.idx].state, RC_CONS_FREE);

	/* A again (the entry's next registration) stalls, is looked at, and
	 * leaves before it is evicted: the producer's record of its stall
	 * stays behind. */
	stall_once(&a);
	assert_int_equal(rc_proto_evict(&ring, &prod, 200), 1);
	usleep(300 * 1000);
	rc_proto_leave(&ring, &a);
	assert_int_equal(rc_proto_evict(&ring, &prod, 200), 0);
	assert_int_equal(ring.ctab[a.idx].state, RC_CONS_FREE);

	/* B reuses the entry; its stall starts with its own first look. */
	stall_once(&b);
	assert_int_equal(b.idx, a.idx);
	assert_true(b.gen == a.gen + 1);
	assert_int_equal(rc_proto_evict(&ring, &prod, 200), 1);
	assert_int_equal(ring.ctab[b.idx].state, RC_CONS_ACTIVE);
	assert_int_equal(rc_proto_check(&ring, &b), 0);
	/* A consumer that makes progress is never stalled. */
	usleep(300 * 1000);
	assert_int_equal(rc_proto_release(&ring, &b, 1), 0);
	rc_proto_progress(&ring, &b, 1, BS);
	assert_int_equal(rc_proto_evict(&ring, &prod, 200), 1);
	assert_int_equal(ring.ctab[b.idx].state, RC_CONS_ACTIVE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_doorbell_bounded, remove_ring),
		cmocka_unit_test_teardown(test_generation, remove_ring),
		cmocka_unit_test_teardown(test_skip_tail, remove_ring),
		cmocka_unit_test_teardown(test_fill_order, remove_ring),
		cmocka_unit_test_teardown(test_stall_reused_entry,
					  remove_ring),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
