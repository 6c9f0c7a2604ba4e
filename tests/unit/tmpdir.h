/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A temporary directory per unit-test binary: `base', made by setup() and
 * removed with everything in it by teardown() (cmocka group fixtures). */
#ifndef RINGCOPY_TEST_TMPDIR_H
#define RINGCOPY_TEST_TMPDIR_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

static char base[PATH_MAX / 2];

static int setup(void **state)
{
	snprintf(base, sizeof base, "%s/rc-unit.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	return mkdtemp(base) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
	return system(cmd) == 0 ? 0 : -1;
}

#endif
