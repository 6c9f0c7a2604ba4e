/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests: a real consumer run against a real ring whose slots this test
 * fills the way the producer does, to check what the consumer trusts in a
 * slot and what it refuses. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sem.h>
#include <unistd.h>
#include <cmocka.h>
#include <xxhash.h>

#include "ringcopy/backend.h"
#include "ringcopy/core.h"
#include "ringcopy/ring.h"
#include "ringcopy/ringproto.h"
#include "ringcopy/util.h"
#include "tmpdir.h"

#define BS 4096u
#define NB 4u

struct fixture {
	struct rc_ring r;
	struct rc_reg reg;
	struct rc_dev *dst;
	struct rc_result res;
	char path[PATH_MAX];
};

/* A ring of NB one-block slots for a NB-block image, one active consumer
 * needing seq 0 .. NB-1, and ourselves as its live producer. */
static void make_ring(struct fixture *f, const char *name)
{
	struct rc_ring_params p = {
		.src_kind = RC_SRC_FILE, .src_id0 = 7, .src_id1 = 8,
		.image_size = NB * BS, .block_size = BS,
		.buffer_size = NB * BS, .ncons = 2,
	};
	struct sembuf palive = { RC_SEM_PALIVE, 1, SEM_UNDO };
	const char *names[1] = { name };
	uint64_t before;
	char err[256];

	memset(f, 0, sizeof *f);
	assert_int_equal(rc_ring_create(&p, &f->r, err, sizeof err), 0);
	assert_int_equal(f->r.nslots, NB);
	f->r.hdr->producer_pid = getpid();
	f->r.hdr->producer_start = rc_proc_start(getpid());
	assert_int_equal(rc_proto_semop(f->r.semid, &palive, 1, -1), 0);
	f->r.hdr->state = RC_RING_RUNNING;
	/* Registered the way an invocation does it. */
	assert_int_equal(rc_proto_lock(&f->r), 0);
	assert_int_equal(rc_proto_register(&f->r, 1, names, NULL, &f->reg,
					   &before), 0);
	rc_proto_unlock(&f->r);
	assert_int_equal(f->reg.idx, 0);
	assert_true(f->reg.first == 0);
	snprintf(f->path, sizeof f->path, "%s/%s", base, name);
	assert_int_equal(rc_dev_open(f->path, RC_OPEN_TARGET, &f->dst, NULL, 0), 0);
	assert_int_equal(f->dst->be->prepare(f->dst, NB * BS), 0);
}

/* Publish block n the way the producer does; `hash_of' is what the hash
 * field is computed from, so a test can make it disagree with the data. */
static void fill(struct fixture *f, uint64_t n, unsigned char byte,
		 unsigned char hash_byte)
{
	struct rc_slot_hdr *s = &f->r.shdr[n];
	unsigned char *d = rc_slot_data(&f->r, (uint32_t)n);
	struct sembuf avail = { RC_SEM_AVAIL(0), 1, 0 };

	memset(d, hash_byte, BS);
	s->hash = XXH3_64bits(d, BS);
	memset(d, byte, BS);
	s->seq = n;
	s->block = n;
	s->len = BS;
	s->flags = 0;
	s->checked = RC_SEQ_NONE;
	assert_int_equal(rc_proto_semop(f->r.semid, &avail, 1, -1), 0);
}

/* Publish every block, block n filled with n + 1; block `bad' (NB: none)
 * carries a hash that does not match its data. */
static void fill_all(struct fixture *f, uint64_t bad)
{
	uint64_t n;

	for (n = 0; n < NB; n++)
		fill(f, n, (unsigned char)(n + 1),
		     n == bad ? 0xee : (unsigned char)(n + 1));
}

static int run(struct fixture *f)
{
	struct rc_consumer_args a = {
		.ring = &f->r, .reg = f->reg, .dst = f->dst, .res = &f->res,
		.ready_fd = -1, .verify = false,
	};
	int rc = rc_consumer_run(&a);

	/* What the invocation does once its consumer holds its token. */
	rc_proto_hand_off(&f->r, &f->reg);
	return rc;
}

static void done(struct fixture *f)
{
	rc_ring_remove(&f->r);
}

/* Data that does not match the slot's hash is never written. */
static void test_mismatch_refused(void **state)
{
	struct fixture f;
	unsigned char buf[BS];
	FILE *fp;

	make_ring(&f, "mismatch.img");
	fill_all(&f, 2);
	assert_int_equal(run(&f), -EBADMSG);
	assert_int_equal(f.res.status, RC_RES_FAILED);
	assert_non_null(strstr(f.res.error,
			       "checksum mismatch in ring slot 2 (block at offset 8192): not written"));
	/* Block 1 went out, block 2 did not, block 0 (held back) neither. */
	fp = fopen(f.path, "rb");
	assert_non_null(fp);
	assert_int_equal(fread(buf, 1, BS, fp), BS);
	assert_int_equal(buf[0], 0);
	assert_int_equal(fread(buf, 1, BS, fp), BS);
	assert_int_equal(buf[0], 2);
	assert_int_equal(fread(buf, 1, BS, fp), BS);
	assert_int_equal(buf[0], 0);
	fclose(fp);
	done(&f);
}

/* A successful check is recorded in the slot, and a recorded check is what
 * spares the other consumers the hashing: a slot whose record names its
 * seq is trusted, one whose record names another seq is hashed. */
static void test_check_recorded(void **state)
{
	struct fixture f;
	uint64_t n;

	make_ring(&f, "recorded.img");
	fill_all(&f, 3);
	f.r.shdr[3].checked = 3; /* "already checked by another consumer" */
	assert_int_equal(run(&f), 0);
	assert_int_equal(f.res.status, RC_RES_OK);
	for (n = 0; n < 3; n++)
		assert_true(f.r.shdr[n].checked == n);
	done(&f);

	make_ring(&f, "stale.img");
	fill_all(&f, 3);
	f.r.shdr[3].checked = 3 + NB; /* a record of some other seq */
	assert_int_equal(run(&f), -EBADMSG);
	assert_non_null(strstr(f.res.error, "ring slot 3"));
	done(&f);
}

/* A slot header that claims another block than the one expected. */
static void test_wrong_block_refused(void **state)
{
	struct fixture f;

	make_ring(&f, "wrong.img");
	fill_all(&f, NB);
	f.r.shdr[1].block = 2;
	assert_int_equal(run(&f), -EPROTO);
	assert_non_null(strstr(f.res.error,
			       "ring slot 1 holds seq 1 block 2 len 4096, expected seq 1 block 1 len 4096"));
	done(&f);
}

/* Producer skip: a HELD slot (no data) is taken only for a block our own
 * scan found, with our manifest's hash; otherwise the target fails naming
 * the block, and nothing is written for it. */
static int run_held(struct fixture *f, const uint8_t *held,
		    const uint64_t *expect)
{
	struct rc_consumer_args a = {
		.ring = &f->r, .reg = f->reg, .dst = f->dst, .res = &f->res,
		.ready_fd = -1, .verify = false, .held = held,
		.expect = expect,
	};
	int rc = rc_consumer_run(&a);

	rc_proto_hand_off(&f->r, &f->reg);
	return rc;
}

static void test_held_slot(void **state)
{
	struct fixture f;
	unsigned char buf[BS];
	uint64_t expect[NB];
	uint8_t held = 1u << 1; /* our target holds block 1 */
	uint64_t n;
	FILE *fp;

	(void)state;
	for (n = 0; n < NB; n++) {
		memset(buf, (int)(n + 1), BS);
		expect[n] = XXH3_64bits(buf, BS);
	}
	/* Block 1 HELD, and we hold it: nothing written there. */
	make_ring(&f, "held.img");
	fill_all(&f, NB);
	f.r.shdr[1].flags = RC_SLOT_HELD;
	memset(rc_slot_data(&f.r, 1), 0xee, BS); /* no data: never read */
	assert_int_equal(run_held(&f, &held, expect), 0);
	assert_int_equal(f.res.status, RC_RES_OK);
	assert_int_equal(f.res.skipped_bytes, BS);
	fp = fopen(f.path, "rb");
	assert_non_null(fp);
	assert_int_equal(fread(buf, 1, BS, fp), BS);
	assert_int_equal(buf[0], 1);
	assert_int_equal(fread(buf, 1, BS, fp), BS);
	assert_int_equal(buf[0], 0); /* held: not written */
	fclose(fp);
	done(&f);
	/* Block 2 HELD, which we do not hold: refused, not written. */
	make_ring(&f, "lacks.img");
	fill_all(&f, NB);
	f.r.shdr[2].flags = RC_SLOT_HELD;
	assert_int_equal(run_held(&f, &held, expect), -EPROTO);
	assert_int_equal(f.res.status, RC_RES_FAILED);
	assert_non_null(strstr(f.res.error,
			       "the producer did not read block 2 (offset 8192), saying every consumer holds it, but this target was not found to hold it: not written"));
	done(&f);
	/* Block 1 HELD with another manifest's hash: refused too. */
	make_ring(&f, "other.img");
	fill_all(&f, NB);
	f.r.shdr[1].flags = RC_SLOT_HELD;
	f.r.shdr[1].hash ^= 1;
	assert_int_equal(run_held(&f, &held, expect), -EPROTO);
	assert_non_null(strstr(f.res.error, "did not read block 1"));
	done(&f);
	/* Without a scan (no held map) a HELD slot is refused. */
	make_ring(&f, "noscan.img");
	fill_all(&f, NB);
	f.r.shdr[3].flags = RC_SLOT_HELD;
	assert_int_equal(run(&f), -EPROTO);
	assert_non_null(strstr(f.res.error, "did not read block 3"));
	done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mismatch_refused),
		cmocka_unit_test(test_check_recorded),
		cmocka_unit_test(test_wrong_block_refused),
		cmocka_unit_test(test_held_slot),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
