/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests: a relay's upstream NBD connection read as it passes
 * (src/nbdtap.c): which reads the node's disks answer, what goes on to
 * the server, and where the server's messages end. */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ringcopy/nbdtap.h"
#include "ringcopy/verify.h"

#include "tmpdir.h"

#define BS     65536u
#define NB     4u
#define TAIL   1000u /* the image ends 1000 bytes into block 4 */
#define IMAGE  (NB * BS + TAIL)

static unsigned char image[IMAGE];
static char disk[PATH_MAX], manifest[PATH_MAX];

static void put(unsigned char *p, uint64_t v, int n)
{
	while (n--)
		p[n] = (unsigned char)v, v >>= 8;
}

static uint64_t get(const unsigned char *p, int n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | *p++;
	return v;
}

/* A request: READ 0, WRITE 1, FLUSH 3. */
static size_t req(unsigned char *p, int type, uint64_t handle, uint64_t off,
		  uint32_t len)
{
	put(p, 0x25609513, 4);
	put(p + 4, 0, 2);
	put(p + 6, (uint64_t)type, 2);
	put(p + 8, handle, 8);
	put(p + 16, off, 8);
	put(p + 24, len, 4);
	return 28;
}

/* The image, its manifest, and a disk holding it but for block 2 (and
 * its tail, which it lacks). */
static int make_disk(void **state)
{
	uint64_t hashes[NB + 1];
	struct rc_image_hashes h = { IMAGE, BS, NB + 1, hashes };
	char err[256];
	uint32_t b;
	int fd;
	size_t i;

	if (setup(state) < 0)
		return -1;
	for (i = 0; i < IMAGE; i++)
		image[i] = (unsigned char)(i * 7 + i / 251);
	for (b = 0; b <= NB; b++)
		hashes[b] = rc_block_hash(image + (size_t)b * BS,
					  b < NB ? BS : TAIL);
	snprintf(manifest, sizeof manifest, "%s/image.mf", base);
	snprintf(disk, sizeof disk, "%s/disk.img", base);
	if (rc_manifest_write(manifest, &h, err, sizeof err) < 0)
		return -1;
	fd = open(disk, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, image, NB * BS) != (ssize_t)(NB * BS))
		return -1;
	/* Block 2 differs in one byte. */
	if (pwrite(fd, "x", 1, 2 * BS + 100) != 1)
		return -1;
	return close(fd);
}

static struct rc_disks *open_disk(void)
{
	char *specs[] = { disk, "/nonexistent/dir/disk.img" };
	char err[256];
	int n = -1;
	struct rc_disks *d = rc_disks_open(manifest, specs, 2, &n, err,
					   sizeof err);

	assert_non_null(d);
	assert_int_equal(n, 1); /* the missing one holds nothing */
	return d;
}

static void test_disks_read(void **state)
{
	struct rc_disks *d = open_disk();
	static unsigned char out[3 * BS];

	/* Within a block, across two, at the end of one. */
	assert_true(rc_disks_read(d, 100, 4096, out));
	assert_memory_equal(out, image + 100, 4096);
	assert_true(rc_disks_read(d, BS - 10, 20, out));
	assert_memory_equal(out, image + BS - 10, 20);
	assert_true(rc_disks_read(d, 0, 2 * BS, out));
	assert_memory_equal(out, image, 2 * BS);
	assert_true(rc_disks_read(d, 3 * BS, BS, out));
	assert_memory_equal(out, image + 3 * BS, BS);
	/* Block 2 differs; a range touching it is not answered, twice. */
	assert_false(rc_disks_read(d, 2 * BS, 512, out));
	assert_false(rc_disks_read(d, BS, 2 * BS, out));
	/* The tail the disk does not have, past the image, nothing. */
	assert_false(rc_disks_read(d, NB * BS, TAIL, out));
	assert_false(rc_disks_read(d, IMAGE - 10, 20, out));
	assert_false(rc_disks_read(d, 0, 0, out));
	assert_int_equal(rc_disks_answered(d), 4096 + 20 + 2 * BS + BS);
	rc_disks_close(d);
}

/* Requests in, split anywhere: the answered reads are kept back and their
 * replies queued, the rest passes unchanged, a write with its payload. */
static void test_client(void **state)
{
	struct rc_disks *d = open_disk();
	struct rc_tap t;
	unsigned char in[512], want[512], out[1024];
	size_t n = 0, w = 0, got = 0, o, i, cut;
	int structured;

	for (structured = 0; structured < 2; structured++) {
		assert_int_equal(rc_tap_init(&t, d, 4096), 0);
		t.structured = structured;
		n = w = got = 0;
		n += req(in + n, 0, 1, 512, 1024);              /* answered */
		i = n;
		n += req(in + n, 0, 2, 2 * BS, 4096);           /* block 2 */
		n += req(in + n, 1, 3, 0, 10);                  /* a write */
		memcpy(in + n, "0123456789", 10);
		n += 10;
		memcpy(want, in + i, n - i);
		w = n - i;
		n += req(in + n, 0, 4, BS - 4, 8);              /* answered */
		i = n;
		n += req(in + n, 3, 5, 0, 0);                   /* flush */
		memcpy(want + w, in + i, n - i);
		w += n - i;
		/* Fed in pieces that split headers and the payload. */
		for (i = 0; i < n; i += cut) {
			cut = i % 3 ? 5 : 31;
			if (cut > n - i)
				cut = n - i;
			assert_int_equal(rc_tap_client(&t, in + i, cut,
						       out + got, &o), 0);
			assert_true(o <= cut + 28);
			got += o;
		}
		assert_int_equal(got, w);
		assert_memory_equal(out, want, w);
		/* Two replies queued, in order. */
		o = structured ? 28 : 16;
		assert_int_equal(rc_tap_queued(&t), 2 * o + 1024 + 8);
		assert_int_equal(get(t.q, 4),
				 structured ? 0x668e33ef : 0x67446698);
		assert_int_equal(get(t.q + 8, 8), 1);
		if (structured) {
			assert_int_equal(get(t.q + 4, 2), 1);  /* DONE */
			assert_int_equal(get(t.q + 6, 2), 1);  /* OFFSET_DATA */
			assert_int_equal(get(t.q + 16, 4), 1024 + 8);
			assert_int_equal(get(t.q + 20, 8), 512);
		} else {
			assert_int_equal(get(t.q + 4, 4), 0);  /* no error */
		}
		assert_memory_equal(t.q + o, image + 512, 1024);
		assert_int_equal(get(t.q + o + 1024 + 8, 8), 4);
		assert_memory_equal(t.q + 2 * o + 1024, image + BS - 4, 8);
		/* The forwarded read is known, to read its simple reply. */
		assert_int_equal(t.nrd, 1);
		assert_int_equal(t.rd[0].handle, 2);
		assert_int_equal(t.rd[0].len, 4096);
		/* Not a request: refused. */
		memset(in, 0xee, 28);
		assert_int_equal(rc_tap_client(&t, in, 28, out, &o), -1);
		rc_tap_free(&t);
	}
	rc_disks_close(d);
}

/* The server's replies: where its messages end, so that ours go only
 * between them. */
static void test_server(void **state)
{
	struct rc_tap t;
	unsigned char buf[8192], r[64], out[64];
	size_t n = 0, o;

	assert_int_equal(rc_tap_init(&t, NULL, sizeof buf), 0);
	/* Two forwarded reads, then a write (no disks: all pass). */
	assert_int_equal(rc_tap_client(&t, r, req(r, 0, 7, 0, 100), out, &o), 0);
	assert_int_equal(rc_tap_client(&t, r, req(r, 0, 8, 0, 50), out, &o), 0);
	assert_int_equal(rc_tap_client(&t, r, req(r, 1, 9, 0, 0), out, &o), 0);
	assert_int_equal(t.nrd, 2);
	/* A simple reply with read 7's 100 bytes, the write's simple reply,
	 * a simple error reply to read 8 (no data), and half of a
	 * structured chunk. */
	put(buf + n, 0x67446698, 4), put(buf + n + 4, 0, 4), put(buf + n + 8, 7, 8);
	n += 16 + 100;
	put(buf + n, 0x67446698, 4), put(buf + n + 4, 0, 4), put(buf + n + 8, 9, 8);
	n += 16;
	put(buf + n, 0x67446698, 4), put(buf + n + 4, 5, 4), put(buf + n + 8, 8, 8);
	n += 16;
	put(buf + n, 0x668e33ef, 4), put(buf + n + 4, 0, 2), put(buf + n + 6, 1, 2);
	put(buf + n + 8, 10, 8), put(buf + n + 16, 40, 4);
	n += 20 + 10;
	assert_int_equal(rc_tap_server(&t, buf, 0, n), 0);
	assert_int_equal(t.nrd, 0);
	/* Nothing of ours queued: write it all. */
	assert_int_equal(rc_tap_span(&t, 0, n), n);
	/* Something queued: only between messages. */
	t.q = malloc(16);
	t.qlen = t.qcap = 16;
	t.qend[t.nq++] = 16;
	assert_true(rc_tap_between(&t, 0, n));
	assert_int_equal(rc_tap_span(&t, 0, n), 116);
	assert_false(rc_tap_between(&t, 50, n));
	assert_int_equal(rc_tap_span(&t, 50, n), 66);
	assert_true(rc_tap_between(&t, 116, n));
	assert_int_equal(rc_tap_span(&t, 116, n), 16);
	assert_true(rc_tap_between(&t, 132, n));
	assert_true(rc_tap_between(&t, 148, n));
	assert_int_equal(rc_tap_span(&t, 148, n), n - 148);
	/* The chunk is half read: not at its end, nor after the buffer. */
	assert_false(rc_tap_between(&t, n, n));
	/* Its other 30 bytes: the next buffer ends at a message's end. */
	assert_int_equal(rc_tap_server(&t, buf, 0, 30), 0);
	assert_false(rc_tap_between(&t, 0, 30));
	assert_int_equal(rc_tap_span(&t, 0, 30), 30);
	assert_true(rc_tap_between(&t, 30, 30));
	/* One of ours half written goes on first. */
	t.qoff = 3;
	assert_true(rc_tap_between(&t, 0, 30));
	/* The handshake ends 10 bytes into a buffer: a message starts. */
	t.qoff = 0;
	put(buf + 10, 0x67446698, 4), put(buf + 14, 0, 4), put(buf + 18, 11, 8);
	assert_int_equal(rc_tap_server(&t, buf, 10, 26), 0);
	assert_false(rc_tap_between(&t, 0, 26));
	assert_int_equal(rc_tap_span(&t, 0, 26), 10);
	assert_true(rc_tap_between(&t, 10, 26));
	/* Not a reply: refused. */
	memset(buf, 0xee, 20);
	assert_int_equal(rc_tap_server(&t, buf, 0, 20), -1);
	rc_tap_free(&t);
}

/* A simple reply to a handle that is not a forwarded read's carries no
 * data (a write's, a flush's): the next message starts right after it,
 * and what is not a reply there is refused. */
static void test_unknown_handle(void **state)
{
	struct rc_tap t;
	unsigned char buf[64];

	assert_int_equal(rc_tap_init(&t, NULL, sizeof buf), 0);
	put(buf, 0x67446698, 4), put(buf + 4, 0, 4), put(buf + 8, 42, 8);
	put(buf + 16, 0x67446698, 4), put(buf + 20, 0, 4), put(buf + 24, 43, 8);
	assert_int_equal(rc_tap_server(&t, buf, 0, 32), 0);
	assert_int_equal(t.nends, 2);
	assert_int_equal(t.ends[0], 16);
	assert_int_equal(t.ends[1], 32);
	memset(buf + 16, 0xee, 16);
	assert_int_equal(rc_tap_server(&t, buf, 0, 32), -1);
	rc_tap_free(&t);
}

/* Replies of ours go one at a time, the server's messages between them;
 * what was sent is dropped as more are queued, so a long rollout's queue
 * stays as small as what is in flight. */
static void test_queue(void **state)
{
	struct rc_disks *d = open_disk();
	struct rc_tap t;
	unsigned char r[28], out[64], buf[16];
	const unsigned char *q;
	size_t o, n, cap = 0;
	int i;

	assert_int_equal(rc_tap_init(&t, d, sizeof buf), 0);
	t.structured = true;
	/* The queue never empties: one reply is always half written. */
	assert_int_equal(rc_tap_client(&t, r, req(r, 0, 5000, 0, 4096), out, &o), 0);
	rc_tap_sent(&t, 28);
	for (i = 0; i < 1000; i++) {
		assert_int_equal(rc_tap_client(&t, r, req(r, 0, (uint64_t)i, 0, 4096),
					       out, &o), 0);
		assert_int_equal(o, 0);
		/* The half-written one goes on, whatever the server's
		 * stream, in two pieces. */
		assert_true(rc_tap_between(&t, 5, 10));
		q = rc_tap_next(&t, &n);
		assert_int_equal(n, 4096);
		rc_tap_sent(&t, 100);
		q = rc_tap_next(&t, &n);
		assert_int_equal(n, 4096 - 100);
		rc_tap_sent(&t, n);
		/* Whole: the next waits for the server's message to end. */
		put(buf, 0x67446698, 4), put(buf + 4, 0, 4), put(buf + 8, 77, 8);
		assert_int_equal(rc_tap_server(&t, buf, 0, 16), 0);
		assert_false(rc_tap_between(&t, 5, 16));
		assert_true(rc_tap_between(&t, 16, 16));
		q = rc_tap_next(&t, &n);
		assert_int_equal(n, 28 + 4096);
		assert_int_equal(get(q + 8, 8), (uint64_t)i);
		rc_tap_sent(&t, 28);
		assert_int_equal(rc_tap_queued(&t), 4096);
		/* What was sent is dropped: the buffer stays small. */
		assert_true(t.qcap <= 4 * (28 + 4096));
	}
	q = rc_tap_next(&t, &n);
	rc_tap_sent(&t, n);
	assert_int_equal(rc_tap_queued(&t), 0);
	/* Past RC_TAP_QUEUED replies unsent, reads are forwarded. */
	for (i = 0; i < RC_TAP_QUEUED; i++) {
		assert_int_equal(rc_tap_client(&t, r, req(r, 0, 1, 0, 512), out, &o), 0);
		assert_int_equal(o, 0);
	}
	assert_int_equal(rc_tap_client(&t, r, req(r, 0, 1, 0, 512), out, &o), 0);
	assert_int_equal(o, 28);
	rc_tap_free(&t);
	rc_disks_close(d);
}

/* Structured replies end a read with their DONE flag: a connection that
 * lives long (a rollout's) never fills the table of reads in flight. */
static void test_structured_done(void **state)
{
	struct rc_tap t;
	unsigned char buf[64], r[28], out[64];
	size_t o;
	int i;

	assert_int_equal(rc_tap_init(&t, NULL, sizeof buf), 0);
	t.structured = true;
	for (i = 0; i < 2 * RC_TAP_INFLIGHT; i++) {
		assert_int_equal(rc_tap_client(&t, r, req(r, 0, (uint64_t)i, 0, 4),
					       out, &o), 0);
		assert_int_equal(o, 28);
		/* A data chunk, then the DONE one (NBD_REPLY_TYPE_NONE). */
		put(buf, 0x668e33ef, 4), put(buf + 4, 0, 2), put(buf + 6, 1, 2);
		put(buf + 8, (uint64_t)i, 8), put(buf + 16, 12, 4);
		put(buf + 32, 0x668e33ef, 4), put(buf + 36, 1, 2), put(buf + 38, 0, 2);
		put(buf + 40, (uint64_t)i, 8), put(buf + 48, 0, 4);
		assert_int_equal(rc_tap_server(&t, buf, 0, 52), 0);
		assert_int_equal(t.nrd, 0);
	}
	/* Without their replies, the table fills: refused, not overrun. */
	for (i = 0; i < RC_TAP_INFLIGHT; i++)
		assert_int_equal(rc_tap_client(&t, r, req(r, 0, 1, 0, 4), out,
					       &o), 0);
	assert_int_equal(rc_tap_client(&t, r, req(r, 0, 1, 0, 4), out, &o), -1);
	rc_tap_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_disks_read),
		cmocka_unit_test(test_client),
		cmocka_unit_test(test_server),
		cmocka_unit_test(test_unknown_handle),
		cmocka_unit_test(test_queue),
		cmocka_unit_test(test_structured_done),
	};

	return cmocka_run_group_tests(tests, make_disk, teardown);
}
