/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests: image digests and the manifest writer and parser. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include <cmocka.h>

#include "ringcopy/verify.h"

#include "tmpdir.h"

static void test_digest(void **state)
{
	uint64_t hv[3] = { 0x0102030405060708ull, 0, ~0ull };
	struct rc_image_hashes h = { 3 * 4096, 4096, 3, hv };
	unsigned char le[24];
	char d[RC_DIGEST_HEX], want[RC_DIGEST_HEX];
	XXH128_canonical_t c;
	int i, k;

	/* Independently: XXH3-128 of the little-endian words. */
	for (k = 0; k < 3; k++)
		for (i = 0; i < 8; i++)
			le[8 * k + i] = (unsigned char)(hv[k] >> (8 * i));
	XXH128_canonicalFromHash(&c, XXH3_128bits(le, sizeof le));
	for (i = 0; i < 16; i++)
		snprintf(want + 2 * i, 3, "%02x", c.digest[i]);
	rc_digest(&h, d);
	assert_string_equal(d, want);
	/* Order matters. */
	hv[0] = ~0ull;
	hv[2] = 0x0102030405060708ull;
	rc_digest(&h, want);
	assert_string_not_equal(d, want);
}

static void test_zero_hash(void **state)
{
	char z[8192] = { 0 };

	assert_true(rc_zero_hash(4096) == XXH3_64bits(z, 4096));
	assert_true(rc_zero_hash(100) == XXH3_64bits(z, 100));
	assert_true(rc_zero_hash(8192) == XXH3_64bits(z, 8192));
	assert_true(rc_zero_hash(4096) == XXH3_64bits(z, 4096));
}

/* The block hash may be a vector build picked at run time (AVX2): it must
 * give the portable XXH3-64 for every length and alignment, or targets
 * written by one machine would not verify on another. */
static void test_block_hash(void **state)
{
	static const size_t lens[] = { 0, 1, 3, 16, 17, 128, 129, 240, 241,
				       1023, 4096, 65537, 1 << 20 };
	unsigned char *buf = malloc((1 << 20) + 8);
	size_t i, k, a;

	assert_non_null(buf);
	for (i = 0; i < (1 << 20) + 8; i++)
		buf[i] = (unsigned char)(i * 2654435761u >> 13);
	for (k = 0; k < sizeof lens / sizeof *lens; k++)
		for (a = 0; a < 4; a++)
			assert_true(rc_block_hash(buf + a, lens[k]) ==
				    XXH3_64bits(buf + a, lens[k]));
	/* And the published value of the empty input. */
	assert_true(rc_block_hash("", 0) == 0x2D06800538D394C2ull);
	free(buf);
}

static void test_manifest_roundtrip(void **state)
{
	uint64_t hv[6];
	struct rc_image_hashes h = { 5 * 4096 + 10, 4096, 6, hv }, back;
	char path[PATH_MAX], err[512];

	hv[0] = 42;
	hv[1] = rc_zero_hash(4096);
	hv[2] = rc_zero_hash(4096);
	hv[3] = 7;
	hv[4] = rc_zero_hash(4096);
	hv[5] = rc_zero_hash(10); /* the short last block, zero */
	snprintf(path, sizeof path, "%s/m.txt", base);
	assert_int_equal(rc_manifest_write(path, &h, err, sizeof err), 0);
	assert_int_equal(rc_manifest_read(path, &back, UINT64_MAX, err, sizeof err), 0);
	assert_true(back.image_size == h.image_size);
	assert_int_equal(back.block_size, 4096);
	assert_true(back.nblocks == 6);
	assert_memory_equal(back.hash, hv, sizeof hv);
	free(back.hash);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void expect_bad(const char *text, const char *where)
{
	struct rc_image_hashes h;
	char path[PATH_MAX], err[512];

	snprintf(path, sizeof path, "%s/bad.txt", base);
	write_file(path, text);
	assert_int_equal(rc_manifest_read(path, &h, UINT64_MAX, err, sizeof err), -EINVAL);
	if (!strstr(err, where))
		fail_msg("'%s' not in '%s'", where, err);
	assert_null(h.hash);
}

static void test_manifest_malformed(void **state)
{
	expect_bad("", ":1: truncated");
	expect_bad("hello\n", ":1: not a ringcopy manifest");
	expect_bad("ringcopy-manifest 2\n", ":1: unsupported manifest version");
	expect_bad("ringcopy-manifest 1\nimage-size -1\n", ":2:");
	expect_bad("ringcopy-manifest 1\nimage-size 10\nblock-size 3000\n",
		   ":3: want 'block-size N'");
	expect_bad("ringcopy-manifest 1\nimage-size 10\nblock-size 4096\n"
		   "blocks 2\n", ":4: blocks 2 does not match");
	expect_bad("ringcopy-manifest 1\nimage-size 10\nblock-size 4096\n"
		   "blocks 1\ndigest xyz\n", ":5: want 'digest'");
	expect_bad("ringcopy-manifest 1\nimage-size 10\nblock-size 4096\n"
		   "blocks 1\ndigest 00000000000000000000000000000000\n"
		   "block 0 00000000000000001\n", ":6: block 0: want 16 hex");
	expect_bad("ringcopy-manifest 1\nimage-size 10\nblock-size 4096\n"
		   "blocks 1\ndigest 00000000000000000000000000000000\n"
		   "zeros 0 5\n", ":6: zeros run ends beyond");
	expect_bad("ringcopy-manifest 1\nimage-size 10\nblock-size 4096\n"
		   "blocks 1\ndigest 00000000000000000000000000000000\n"
		   "block 0 0000000000000000\nend\nmore\n", ":8: text after 'end'");
	expect_bad("ringcopy-manifest 1\nimage-size 10", ":2: line too long or not terminated");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_zero_hash),
		cmocka_unit_test(test_block_hash),
		cmocka_unit_test(test_manifest_roundtrip),
		cmocka_unit_test(test_manifest_malformed),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
