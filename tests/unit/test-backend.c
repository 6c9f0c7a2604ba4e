/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests: the backend registry, version checks, and the file and null
 * backends against real files. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "ringcopy/backend.h"
#include "../../backends/internal.h"

#include "tmpdir.h"

static void test_registry_valid(void **state)
{
	const struct rc_backend *const *b = rc_backends();
	size_t n = 0;

	for (; *b; b++, n++)
		assert_int_equal(rc_backend_check(*b), 0);
	assert_true(n >= 2);
}

static int reap_nothing(struct rc_dev *dev, unsigned keep)
{
	return 0;
}

static void test_version_checked(void **state)
{
	struct rc_backend be = rc_file_backend;

	be.version = RC_BACKEND_VERSION + 1;
	assert_int_equal(rc_backend_check(&be), -EINVAL);
	be = rc_file_backend;
	be.pwrite = NULL; /* a target backend that cannot write */
	assert_int_equal(rc_backend_check(&be), -EINVAL);
	be = rc_file_backend;
	be.write_reap = reap_nothing; /* half an asynchronous pair */
	assert_int_equal(rc_backend_check(&be), -EINVAL);
	assert_int_equal(rc_backend_check(NULL), -EINVAL);
}

static void test_lookup(void **state)
{
	const char *path;

	assert_ptr_equal(rc_backend_for("null:", RC_OPEN_TARGET, &path),
			 &rc_null_backend);
	assert_ptr_equal(rc_backend_for("file:x.img", RC_OPEN_TARGET, &path),
			 &rc_file_backend);
	assert_string_equal(path, "x.img");
	assert_ptr_equal(rc_backend_for("plain.img", RC_OPEN_SOURCE, &path),
			 &rc_file_backend);
	assert_string_equal(path, "plain.img");
}

static void test_file_roundtrip(void **state)
{
	char path[PATH_MAX], buf[10000], back[10000];
	struct rc_dev *t, *s;
	size_t i;

	for (i = 0; i < sizeof buf; i++)
		buf[i] = (char)(i * 7);
	snprintf(path, sizeof path, "%s/t.img", base);
	/* Opening a missing target does not create it. */
	assert_int_equal(rc_dev_open(path, RC_OPEN_TARGET, &t, NULL, 0), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(t->be->prepare(t, sizeof buf), 0);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(rc_dev_pwrite(t, buf, sizeof buf, 0),
			 (ssize_t)sizeof buf);
	assert_int_equal(rc_dev_flush(t), 0);
	assert_int_equal(rc_dev_close(t), 0);

	assert_int_equal(rc_dev_open(path, RC_OPEN_SOURCE, &s, NULL, 0), 0);
	assert_true(s->size == sizeof buf);
	assert_int_equal(rc_dev_pread(s, back, sizeof back, 0),
			 (ssize_t)sizeof back);
	assert_memory_equal(buf, back, sizeof buf);
	/* Reads past the end are refused by the wrapper, once. */
	assert_int_equal(rc_dev_pread(s, back, 2, sizeof buf - 1), -ERANGE);
	assert_int_equal(rc_dev_close(s), 0);
}

static void test_file_refusals(void **state)
{
	char path[PATH_MAX], link[PATH_MAX];
	struct rc_dev *d;

	assert_int_equal(rc_dev_open(base, RC_OPEN_SOURCE, &d, NULL, 0), -EISDIR);
	snprintf(path, sizeof path, "%s/missing", base);
	assert_int_equal(rc_dev_open(path, RC_OPEN_SOURCE, &d, NULL, 0), -ENOENT);
	snprintf(path, sizeof path, "%s/nodir/x.img", base);
	assert_int_equal(rc_dev_open(path, RC_OPEN_TARGET, &d, NULL, 0), -ENOENT);
	/* A symlink as target is never followed. */
	snprintf(path, sizeof path, "%s/real", base);
	assert_int_equal(close(open(path, O_CREAT | O_WRONLY, 0600)), 0);
	snprintf(link, sizeof link, "%s/link", base);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(rc_dev_open(link, RC_OPEN_TARGET, &d, NULL, 0), -ELOOP);
	/* null: cannot be a source. */
	assert_int_equal(rc_dev_open("null:", RC_OPEN_SOURCE, &d, NULL, 0),
			 -EOPNOTSUPP);
}

static void test_null(void **state)
{
	struct rc_dev *d;
	char buf[16] = { 0 };

	assert_int_equal(rc_dev_open("null:", RC_OPEN_TARGET, &d, NULL, 0), 0);
	assert_true(d->size == UINT64_MAX);
	assert_int_equal(rc_dev_pwrite(d, buf, sizeof buf, 1ull << 50),
			 (ssize_t)sizeof buf);
	assert_int_equal(rc_dev_zero(d, 0, 1ull << 40), 0);
	assert_int_equal(rc_dev_close(d), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry_valid),
		cmocka_unit_test(test_version_checked),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_file_roundtrip),
		cmocka_unit_test(test_file_refusals),
		cmocka_unit_test(test_null),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
