/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests: rendezvous naming, the run directory's safety checks. */
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
#include <sys/sysmacros.h>
#include <unistd.h>
#include <cmocka.h>

#include "ringcopy/core.h"

#include "tmpdir.h"

static void test_rdv_name(void **state)
{
	struct rc_source_id f = { RC_SRC_FILE, 0x803, 0x1234 };
	struct rc_source_id b = { RC_SRC_BLOCK, makedev(7, 3), 0 };
	struct rc_source_id bad = { 0, 0, 0 };
	char buf[64];

	assert_int_equal(rc_rdv_name(&f, buf, sizeof buf), 0);
	assert_string_equal(buf, "file-803-1234");
	assert_int_equal(rc_rdv_name(&b, buf, sizeof buf), 0);
	assert_string_equal(buf, "blk-7-3");
	assert_int_equal(rc_rdv_name(&f, buf, 8), -ENAMETOOLONG);
	assert_int_equal(rc_rdv_name(&bad, buf, sizeof buf), -EINVAL);
}

static void test_identity(void **state)
{
	struct rc_source_id a, b;
	char path[PATH_MAX];
	struct stat st;
	int fd, fd2;

	snprintf(path, sizeof path, "%s/img", base);
	fd = open(path, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	fd2 = open(path, O_RDONLY);
	assert_true(fd2 >= 0);
	assert_int_equal(rc_source_identity(fd, &a), 0);
	assert_int_equal(rc_source_identity(fd2, &b), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(a.kind, RC_SRC_FILE);
	assert_true(a.id0 == st.st_dev && a.id1 == st.st_ino);
	/* Two opens of one file: one identity, one ring. */
	assert_memory_equal(&a, &b, sizeof a);
	close(fd);
	close(fd2);
}

static void test_rundir_created_private(void **state)
{
	char want[PATH_MAX], got[PATH_MAX], err[256];
	struct stat st;

	snprintf(want, sizeof want, "%s/run", base);
	setenv("RINGCOPY_RUNDIR", want, 1);
	assert_int_equal(rc_rundir(got, sizeof got, true, err, sizeof err), 0);
	assert_string_equal(got, want);
	assert_int_equal(lstat(want, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	/* Again: an existing private directory is fine. */
	assert_int_equal(rc_rundir(got, sizeof got, true, err, sizeof err), 0);
}

static void test_rundir_refusals(void **state)
{
	char dir[PATH_MAX], link[PATH_MAX], got[PATH_MAX], err[256];

	snprintf(dir, sizeof dir, "%s/open", base);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	setenv("RINGCOPY_RUNDIR", dir, 1);
	assert_int_equal(rc_rundir(got, sizeof got, true, err, sizeof err), -EPERM);
	assert_non_null(strstr(err, "refused"));

	/* A planted symlink to a private directory is still refused. */
	snprintf(dir, sizeof dir, "%s/target", base);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(link, sizeof link, "%s/link", base);
	assert_int_equal(symlink(dir, link), 0);
	setenv("RINGCOPY_RUNDIR", link, 1);
	assert_int_equal(rc_rundir(got, sizeof got, true, err, sizeof err), -EPERM);
	assert_non_null(strstr(err, "symlink"));

	/* A file where the directory should be. */
	snprintf(dir, sizeof dir, "%s/file", base);
	assert_int_equal(close(open(dir, O_CREAT | O_WRONLY, 0600)), 0);
	setenv("RINGCOPY_RUNDIR", dir, 1);
	assert_int_equal(rc_rundir(got, sizeof got, true, err, sizeof err), -EPERM);
	unsetenv("RINGCOPY_RUNDIR");
}

/* A parent another user could rename entries in: refused, on the
 * descriptors the walk opened; a sticky one (as /tmp) is fine. */
static void test_rundir_parents(void **state)
{
	char dir[PATH_MAX], got[PATH_MAX], err[512];
	int fd;

	snprintf(dir, sizeof dir, "%s/shared", base);
	assert_int_equal(mkdir(dir, 0777), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	snprintf(dir, sizeof dir, "%s/shared/run", base);
	setenv("RINGCOPY_RUNDIR", dir, 1);
	assert_int_equal(rc_rundir(got, sizeof got, true, err, sizeof err), -EPERM);
	assert_non_null(strstr(err, "is writable by other users"));

	snprintf(dir, sizeof dir, "%s/sticky", base);
	assert_int_equal(mkdir(dir, 0777), 0);
	assert_int_equal(chmod(dir, 01777), 0);
	/* With a trailing slash, and held open: usable through openat. */
	snprintf(dir, sizeof dir, "%s/sticky/run/", base);
	setenv("RINGCOPY_RUNDIR", dir, 1);
	fd = rc_rundir_open(got, sizeof got, true, err, sizeof err);
	assert_true(fd >= 0);
	assert_int_equal(close(openat(fd, "x", O_CREAT | O_WRONLY | O_CLOEXEC, 0600)), 0);
	snprintf(dir, sizeof dir, "%s/sticky/run/x", base);
	assert_int_equal(access(dir, F_OK), 0);
	close(fd);
	unsetenv("RINGCOPY_RUNDIR");
}

/* A run directory named relative to the working directory, with and
 * without "./": created and opened there (the walk's path for messages
 * once overwrote the name it was about to open). */
static void test_rundir_relative(void **state)
{
	const char *names[] = { "rel", "./rel2" };
	char got[PATH_MAX], err[512], want[PATH_MAX];
	struct stat a, b;
	int cwd, fd, i;

	cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(cwd >= 0);
	assert_int_equal(chdir(base), 0);
	for (i = 0; i < 2; i++) {
		setenv("RINGCOPY_RUNDIR", names[i], 1);
		fd = rc_rundir_open(got, sizeof got, true, err, sizeof err);
		assert_true(fd >= 0);
		snprintf(want, sizeof want, "%s/%s", base, names[i]);
		assert_int_equal(fstat(fd, &a), 0);
		assert_int_equal(stat(want, &b), 0);
		assert_true(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
		assert_int_equal(b.st_mode & 07777, 0700);
		close(fd);
	}
	unsetenv("RINGCOPY_RUNDIR");
	assert_int_equal(fchdir(cwd), 0);
	close(cwd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rdv_name),
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_rundir_created_private),
		cmocka_unit_test(test_rundir_refusals),
		cmocka_unit_test(test_rundir_parents),
		cmocka_unit_test(test_rundir_relative),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
