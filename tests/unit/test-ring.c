/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests: sequence arithmetic, consumer selection, header validation,
 * and real SysV objects created, attached and refused. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>
#include <cmocka.h>

#include "ringcopy/ring.h"
#include "ringcopy/ringproto.h"

static void test_seq_arith(void **state)
{
	/* 10 blocks, 4 slots. */
	assert_true(rc_seq_block(0, 10) == 0);
	assert_true(rc_seq_block(9, 10) == 9);
	assert_true(rc_seq_block(10, 10) == 0);
	assert_true(rc_seq_block(23, 10) == 3);
	assert_int_equal(rc_seq_slot(0, 4), 0);
	assert_int_equal(rc_seq_slot(5, 4), 1);
	assert_int_equal(rc_seq_slot(UINT64_C(1) << 40, 3),
			 (uint32_t)((UINT64_C(1) << 40) % 3));
}

static void test_consumer_range(void **state)
{
	/* A consumer starting at seq 7 of a 10-block image needs 7..16:
	 * blocks 7, 8, 9, then 0..6 after the wrap. */
	assert_false(rc_cons_needs(7, 10, 6));
	assert_true(rc_cons_needs(7, 10, 7));
	assert_true(rc_cons_needs(7, 10, 16));
	assert_false(rc_cons_needs(7, 10, 17));
	assert_true(rc_cons_last_seq(7, 10) == 16);
	assert_true(rc_seq_block(rc_cons_last_seq(7, 10), 10) == 6);
	/* One block: first == last. */
	assert_true(rc_cons_last_seq(3, 1) == 3);
	assert_false(rc_cons_needs(3, 1, 4));
}

static void test_block_len(void **state)
{
	assert_int_equal(rc_block_len(10000, 4096, 0), 4096);
	assert_int_equal(rc_block_len(10000, 4096, 2), 10000 - 8192);
	assert_int_equal(rc_block_len(10000, 4096, 3), 0);
	assert_int_equal(rc_block_len(8192, 4096, 1), 4096);
	assert_int_equal(rc_block_len(1, 4096, 0), 1);
}

static void test_select(void **state)
{
	struct rc_cons_ent t[5];
	struct rc_select sel;
	uint32_t active;

	/* 10 blocks, 4 slots. */
	memset(t, 0, sizeof t);
	t[0].state = RC_CONS_ACTIVE; t[0].first_seq = 0;  /* 0..9 */
	t[1].state = RC_CONS_ACTIVE; t[1].first_seq = 5;  /* 5..14 */
	t[2].state = RC_CONS_LEAVING; t[2].first_seq = 0;
	t[3].state = RC_CONS_ACTIVE; t[3].first_seq = 20; /* waits */
	t[4].state = RC_CONS_FREE;

	active = rc_ring_select(t, 5, 10, 4, 7, &sel);
	assert_int_equal(active, 3);
	assert_int_equal(sel.nneed, 2);
	assert_int_equal(sel.need[0], 0);
	assert_int_equal(sel.need[1], 1);
	assert_int_equal(sel.nwait, 2);
	assert_true(sel.later == 20);
	/* The leaving entry was reclaimed. */
	assert_int_equal(t[2].state, RC_CONS_FREE);

	/* Seq 12 (block 2, after the wrap) is needed by the joiner only,
	 * but slot 0 still holds seq 8 of the first consumer: its FREE must
	 * be taken too, or a slow first consumer loses block 8. */
	active = rc_ring_select(t, 5, 10, 4, 12, &sel);
	assert_int_equal(sel.nneed, 1);
	assert_int_equal(sel.need[0], 1);
	assert_int_equal(sel.nwait, 2);
	assert_int_equal(sel.wait[0], 0);
	assert_int_equal(sel.wait[1], 1);
	/* Seq 14 overwrites seq 10's slot: nobody's but the joiner's. */
	active = rc_ring_select(t, 5, 10, 4, 14, &sel);
	assert_int_equal(sel.nwait, 1);
	assert_int_equal(sel.wait[0], 1);

	/* Past everyone but the waiting one: nobody needs 15, jump to 20. */
	active = rc_ring_select(t, 5, 10, 4, 15, &sel);
	assert_int_equal(sel.nneed, 0);
	assert_true(sel.later == 20);
	assert_int_equal(active, 3);

	/* A ring as large as the image: the slot of seq 3 is next reused
	 * by seq 6, outside a 3-block consumer's range 3..5. */
	memset(t, 0, sizeof t);
	t[0].state = RC_CONS_ACTIVE; t[0].first_seq = 3;
	t[1].state = RC_CONS_ACTIVE; t[1].first_seq = 5;
	rc_ring_select(t, 5, 3, 3, 6, &sel);
	assert_int_equal(sel.nneed, 1);
	assert_int_equal(sel.nwait, 2);

	/* Nobody active: the producer leaves. */
	memset(t, 0, sizeof t);
	active = rc_ring_select(t, 5, 10, 4, 0, &sel);
	assert_int_equal(active, 0);
	assert_true(sel.later == UINT64_MAX);
}

/* A valid header in a buffer of the right size. */
static struct rc_ring_hdr *make_hdr(uint64_t *seg)
{
	struct rc_layout l;
	struct rc_ring_hdr *h;

	assert_int_equal(rc_ring_layout(4096, 4, 8, &l), 0);
	h = calloc(1, l.seg_size);
	assert_non_null(h);
	h->magic = RC_RING_MAGIC;
	h->version = RC_RING_VERSION;
	h->hdr_size = sizeof *h;
	h->seg_size = l.seg_size;
	h->src_kind = RC_SRC_FILE;
	h->block_size = 4096;
	h->image_size = 10000;
	h->nblocks = 3;
	h->nslots = 4;
	h->ncons = 8;
	h->ctab_off = l.ctab_off;
	h->shdr_off = l.shdr_off;
	h->data_off = l.data_off;
	h->state = RC_RING_RUNNING;
	*seg = l.seg_size;
	return h;
}

static void expect_invalid(struct rc_ring_hdr *h, uint64_t seg)
{
	const char *why = NULL;

	assert_int_equal(rc_ring_validate(h, seg, &why), -EINVAL);
	assert_non_null(why);
}

static void test_validate(void **state)
{
	uint64_t seg;
	struct rc_ring_hdr *h = make_hdr(&seg), saved;
	const char *why = "x";

	assert_int_equal(rc_ring_validate(h, seg, &why), 0);
	assert_null(why);
	assert_int_equal(h->data_off % RC_ALIGN, 0);
	saved = *h;

#define BAD(stmt)                          \
	do {                               \
		*h = saved;                \
		stmt;                      \
		expect_invalid(h, seg);    \
	} while (0)
	BAD(h->magic ^= 1);
	BAD(h->version = RC_RING_VERSION + 1);
	BAD(h->hdr_size = 8);
	BAD(h->seg_size = seg + 4096);
	BAD(h->nslots = 0);
	BAD(h->nslots = RC_SLOTS_MAX + 1);
	BAD(h->nslots = 0x7fffffff);
	BAD(h->ncons = 0);
	BAD(h->ncons = RC_CONS_MAX + 1);
	BAD(h->block_size = 4096 + 512);  /* not a power of two */
	BAD(h->block_size = 2048);        /* too small */
	BAD(h->block_size = 1u << 31);    /* too large */
	BAD(h->nblocks = 4);
	BAD(h->image_size = 0; h->nblocks = 0);
	BAD(h->ctab_off = seg);           /* outside the segment */
	BAD(h->shdr_off = UINT64_MAX - 8);
	BAD(h->data_off = seg - 100);
	BAD(h->data_off = h->shdr_off);   /* overlaps the slot headers */
	BAD(h->state = 0);
	BAD(h->state = 99);
	BAD(h->src_kind = 0);
	/* The needed bitmap (layout 4): none, or exactly the segment's
	 * tail of RC_NEED_BYTES(nblocks). */
	BAD(h->need_off = seg);
	BAD(h->need_bytes = RC_NEED_BYTES(3));          /* past the segment */
	BAD(h->need_bytes = 8; h->need_off = seg - 8);  /* inside the data */
#undef BAD
	/* A segment with a bitmap of the right size at its tail. */
	*h = saved;
	h->need_off = seg;
	h->need_bytes = RC_NEED_BYTES(3);
	h->seg_size = seg + h->need_bytes;
	assert_int_equal(rc_ring_validate(h, seg + h->need_bytes, &why), 0);
	h->need_off = seg - 8;
	expect_invalid(h, seg + h->need_bytes);
	/* A bitmap of another size than the image's blocks. */
	h->need_off = seg;
	h->need_bytes = 16;
	h->seg_size = seg + 16;
	expect_invalid(h, seg + 16);
	/* A segment too small for the header it claims. */
	*h = saved;
	expect_invalid(h, 16);
	expect_invalid(h, seg - 1);
	free(h);
}

static void test_create_attach(void **state)
{
	struct rc_ring_params p = {
		.src_kind = RC_SRC_FILE, .src_id0 = 1, .src_id1 = 2,
		.image_size = 1000000, .block_size = 65536,
		.buffer_size = 1 << 20, .ncons = 4,
	};
	struct rc_ring a, b;
	char err[256];

	assert_int_equal(rc_ring_create(&p, &a, err, sizeof err), 0);
	/* The ring never holds more slots than the image has blocks. */
	assert_int_equal(a.nslots, 16);
	assert_true(a.nblocks == 16);
	assert_int_equal(rc_proto_semval(&a, RC_SEM_LOCK), 1);
	assert_int_equal(rc_proto_semval(&a, RC_SEM_FREE(3)), 0);
	assert_int_equal(rc_ring_attach(a.shmid, a.semid, &b, err,
					sizeof err), 0);
	assert_int_equal(b.block_size, 65536);
	assert_int_equal(b.ncons, 4);
	assert_true(((uintptr_t)b.data % RC_ALIGN) == 0);
	rc_ring_detach(&b);

	/* A corrupted header is refused, not trusted. */
	a.hdr->nslots = 9999;
	assert_int_equal(rc_ring_attach(a.shmid, a.semid, &b, err,
					sizeof err), -EINVAL);
	assert_non_null(strstr(err, "not a valid ring"));
	a.hdr->nslots = 16;

	/* Objects open to others are never attached. */
	{
		struct shmid_ds ds;

		assert_int_equal(shmctl(a.shmid, IPC_STAT, &ds), 0);
		ds.shm_perm.mode = 0644;
		assert_int_equal(shmctl(a.shmid, IPC_SET, &ds), 0);
		assert_int_equal(rc_ring_attach(a.shmid, a.semid, &b, err,
						sizeof err), -EPERM);
		assert_non_null(strstr(err, "not ours"));
	}
	/* A semaphore set of the wrong size is refused. */
	{
		int other = semget(IPC_PRIVATE, 5, IPC_CREAT | 0600);
		struct shmid_ds ds;

		assert_true(other >= 0);
		assert_int_equal(shmctl(a.shmid, IPC_STAT, &ds), 0);
		ds.shm_perm.mode = 0600;
		assert_int_equal(shmctl(a.shmid, IPC_SET, &ds), 0);
		assert_int_equal(rc_ring_attach(a.shmid, other, &b, err,
						sizeof err), -EINVAL);
		semctl(other, 0, IPC_RMID);
	}
	rc_ring_remove(&a);
	/* Removed: attaching fails cleanly. */
	assert_int_equal(rc_ring_attach(a.shmid, a.semid, &b, err,
					sizeof err), -ENOENT);
}

static void test_semop_timeout(void **state)
{
	struct rc_ring_params p = {
		.src_kind = RC_SRC_FILE, .image_size = 4096,
		.block_size = 4096, .buffer_size = 4096, .ncons = 1,
	};
	struct sembuf op = { RC_SEM_AVAIL(0), -1, 0 };
	struct rc_ring r;
	char err[256];
	int semid;

	assert_int_equal(rc_ring_create(&p, &r, err, sizeof err), 0);
	assert_int_equal(rc_proto_semop(r.semid, &op, 1, 50), -EAGAIN);
	assert_int_equal(rc_proto_semop(r.semid, &op, 1, 0), -EAGAIN);
	assert_int_equal(op.sem_flg, 0); /* the try left the op as it was */
	assert_int_equal(rc_proto_lock(&r), 0);
	rc_proto_unlock(&r);
	semid = r.semid;
	rc_ring_remove(&r);
	assert_int_equal(rc_proto_semop(semid, &op, 1, 50), -EIDRM);
}

static void test_limits(void **state)
{
	struct rc_ipc_limits l = { .semmsl = 32000, .semmns = 1 << 30,
				   .semopm = 500, .semmni = 32000 };

	assert_int_equal(rc_ipc_cons_capacity(&l), RC_CONS_MAX);
	l.semopm = 32;
	assert_int_equal(rc_ipc_cons_capacity(&l), 31);
	l.semmsl = 30; /* (30 - 3) / 3 */
	assert_int_equal(rc_ipc_cons_capacity(&l), 9);
	l.semmsl = 3;
	assert_int_equal(rc_ipc_cons_capacity(&l), 0);
	assert_int_equal(rc_ipc_limits(&l), 0);
	assert_true(l.semopm > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seq_arith),
		cmocka_unit_test(test_consumer_range),
		cmocka_unit_test(test_block_len),
		cmocka_unit_test(test_select),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_create_attach),
		cmocka_unit_test(test_semop_timeout),
		cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
