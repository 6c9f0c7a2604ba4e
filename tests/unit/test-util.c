/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests: size parsing, JSON strings, process identity. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ringcopy/util.h"

static void parse_ok(const char *s, uint64_t want)
{
	uint64_t v = 0;

	assert_int_equal(rc_parse_size(s, &v), 0);
	assert_true(v == want);
}

static void test_size_suffixes(void **state)
{
	parse_ok("0", 0);
	parse_ok("4096", 4096);
	parse_ok("4K", 4096);
	parse_ok("4k", 4096);
	parse_ok("1M", 1u << 20);
	parse_ok("1MiB", 1u << 20);
	parse_ok("64MB", UINT64_C(64) << 20);
	parse_ok("2G", UINT64_C(2) << 30);
	parse_ok("3T", UINT64_C(3) << 40);
	parse_ok("18446744073709551615", UINT64_MAX);
}

static void test_size_garbage(void **state)
{
	uint64_t v = 7;

	assert_int_equal(rc_parse_size("", &v), -EINVAL);
	assert_int_equal(rc_parse_size("M", &v), -EINVAL);
	assert_int_equal(rc_parse_size("-1", &v), -EINVAL);
	assert_int_equal(rc_parse_size(" 1", &v), -EINVAL);
	assert_int_equal(rc_parse_size("1X", &v), -EINVAL);
	assert_int_equal(rc_parse_size("1MM", &v), -EINVAL);
	assert_int_equal(rc_parse_size("1.5M", &v), -EINVAL);
	assert_int_equal(rc_parse_size("0x10", &v), -EINVAL);
	assert_int_equal(rc_parse_size(NULL, &v), -EINVAL);
	assert_true(v == 7); /* untouched on error */
}

static void test_size_overflow(void **state)
{
	uint64_t v;

	assert_int_equal(rc_parse_size("18446744073709551616", &v), -ERANGE);
	assert_int_equal(rc_parse_size("16777216T", &v), -ERANGE);
	assert_int_equal(rc_parse_size("17179869184G", &v), -ERANGE);
	assert_int_equal(rc_parse_size("16777215T", &v), 0);
}

static void test_pow2(void **state)
{
	assert_false(rc_is_pow2(0));
	assert_true(rc_is_pow2(1));
	assert_true(rc_is_pow2(4096));
	assert_false(rc_is_pow2(4097));
	assert_true(rc_is_pow2(UINT64_C(1) << 63));
}

static void test_json_str(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	rc_json_str(f, "a\"b\\c\nd\x01");
	fputc(' ', f);
	rc_json_str(f, NULL);
	fclose(f);
	assert_string_equal(buf, "\"a\\\"b\\\\c\\nd\\u0001\" null");
	free(buf);
}

/* A name that is not UTF-8 still makes valid JSON: each stray byte is
 * U+FFFD; well-formed multibyte sequences pass as they are. */
static void test_json_utf8(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	(void)state;
	assert_non_null(f);
	/* latin-1 e-acute, a valid e-acute, an overlong '/', a surrogate,
	 * a truncated 3-byte sequence at the end. */
	rc_json_str(f, "a\xe9" "b \xc3\xa9 \xc0\xaf \xed\xa0\x80 \xe2\x82");
	fclose(f);
	assert_string_equal(buf, "\"a\\ufffdb \xc3\xa9 \\ufffd\\ufffd \\ufffd\\ufffd\\ufffd \\ufffd\\ufffd\"");
	free(buf);
}

static void test_proc_identity(void **state)
{
	uint64_t start = rc_proc_start(getpid());

	assert_true(start > 0);
	assert_true(rc_proc_alive(getpid(), start));
	/* Same pid, another start time: a reused pid is not our process. */
	assert_false(rc_proc_alive(getpid(), start + 1));
	assert_true(rc_proc_start(0) == 0);
	assert_true(rc_proc_start(-5) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_suffixes),
		cmocka_unit_test(test_size_garbage),
		cmocka_unit_test(test_size_overflow),
		cmocka_unit_test(test_pow2),
		cmocka_unit_test(test_json_str),
		cmocka_unit_test(test_json_utf8),
		cmocka_unit_test(test_proc_identity),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
