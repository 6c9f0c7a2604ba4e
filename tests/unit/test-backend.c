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

/* Options go to the backend that owns them, by key (issue 26). */
static void test_config(void **state)
{
	assert_int_equal(rc_backend_config("compress-level", "5"), 0);
	assert_int_equal(rc_backend_config("compress-level", "20"), -EINVAL);
	assert_int_equal(rc_backend_config("compress-level", "x"), -EINVAL);
	assert_int_equal(rc_backend_config("no-such-option", "1"), -ENOENT);
#ifdef HAVE_LIBNBD
	assert_int_equal(rc_backend_config("connect-timeout", "10"), 0);
	assert_int_equal(rc_backend_config("connect-timeout", "0"), -EINVAL);
#endif
	assert_int_equal(rc_backend_config("compress-level", "3"), 0);
}

/* fault: is a layer: its options are refused before the spec below it is
 * opened; the device below is dev->inner and gets what the layer forwards;
 * the layer's faults are its own. */
static void test_fault_layer(void **state)
{
	char path[PATH_MAX], spec[PATH_MAX + 64], buf[4096] = { 1 };
	struct rc_dev *t, *s;

	snprintf(spec, sizeof spec, "fault:bogus=1:%s/missing", base);
	assert_int_equal(rc_dev_open(spec, RC_OPEN_SOURCE, &s, NULL, 0),
			 -EINVAL);
	snprintf(spec, sizeof spec, "fault:read-fail=1:%s/missing", base);
	assert_int_equal(rc_dev_open(spec, RC_OPEN_SOURCE, &s, NULL, 0),
			 -ENOENT);
	assert_int_equal(rc_dev_open("fault::x", RC_OPEN_SOURCE, &s, NULL, 0),
			 -EINVAL);

	snprintf(path, sizeof path, "%s/layer.img", base);
	snprintf(spec, sizeof spec, "fault:flush-fail:%s", path);
	assert_int_equal(rc_dev_open(spec, RC_OPEN_TARGET, &t, NULL, 0), 0);
	assert_non_null(t->inner);
	assert_ptr_equal(t->inner->be, &rc_file_backend);
	/* prepare() is forwarded: the file below is created and sized. */
	assert_int_equal(t->be->prepare(t, sizeof buf), 0);
	assert_true(t->fd == t->inner->fd && t->fd >= 0);
	assert_true(t->size == sizeof buf);
	assert_int_equal(rc_dev_pwrite(t, buf, sizeof buf, 0),
			 (ssize_t)sizeof buf);
	assert_int_equal(rc_dev_flush(t), -EIO);
	assert_int_equal(rc_dev_close(t), 0);

	snprintf(spec, sizeof spec, "fault:read-fail=2:%s", path);
	assert_int_equal(rc_dev_open(spec, RC_OPEN_SOURCE, &s, NULL, 0), 0);
	assert_int_equal(rc_dev_pread(s, buf, 512, 0), 512);
	assert_int_equal(rc_dev_pread(s, buf, 512, 512), -EIO);
	assert_int_equal(rc_dev_close(s), 0);
}

/* A stream's file target is cut to the stream's size by finish(). */
static void test_finish(void **state)
{
	char path[PATH_MAX], buf[8192] = { 0 };
	struct rc_dev *t;
	struct stat st;

	snprintf(path, sizeof path, "%s/stream.img", base);
	assert_int_equal(rc_dev_open(path, RC_OPEN_TARGET, &t, NULL, 0), 0);
	assert_int_equal(t->be->prepare(t, RC_SIZE_UNKNOWN), 0);
	assert_int_equal(rc_dev_pwrite(t, buf, sizeof buf, 0),
			 (ssize_t)sizeof buf);
	assert_int_equal(rc_dev_finish(t, 5000), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size == 5000);
	assert_int_equal(rc_dev_close(t), 0);
	/* null: has nothing to cut. */
	assert_int_equal(rc_dev_open("null:", RC_OPEN_TARGET, &t, NULL, 0), 0);
	assert_int_equal(rc_dev_finish(t, 5000), 0);
	assert_int_equal(rc_dev_close(t), 0);
}

/* A backend's words for a failed open come back in the caller's buffer. */
static void test_open_detail(void **state)
{
	char path[PATH_MAX], why[256] = "stale";
	struct rc_dev *t;

	snprintf(path, sizeof path, "%s/fifo", base);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(rc_dev_open(path, RC_OPEN_TARGET, &t, why,
				     sizeof why), -ENXIO);
	assert_string_equal(why, "a FIFO with no reader");
	snprintf(path, sizeof path, "%s/missing", base);
	assert_int_equal(rc_dev_open(path, RC_OPEN_SOURCE, &t, why,
				     sizeof why), -ENOENT);
	assert_string_equal(why, "");
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
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_fault_layer),
		cmocka_unit_test(test_finish),
		cmocka_unit_test(test_open_detail),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
