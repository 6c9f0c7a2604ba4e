/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests: the one option table (src/options.c) - getopt's arrays for
 * each command as they were spelled by hand before, every option a
 * command takes handled or forwarded, the copy's parser (values, refusals,
 * --help returning instead of exiting), the forwarded argv. */
#include "config.h"

#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ringcopy/cli.h"
#include "ringcopy/core.h"
#include "ringcopy/options.h"
#include "ringcopy/util.h"

static struct option lo[RC_OPT_COUNT + 1];
static char so[2 * RC_OPT_COUNT + 2];

static bool has(const char *name)
{
	for (struct option *o = lo; o->name; o++)
		if (!strcmp(o->name, name))
			return true;
	return false;
}

static int count(void)
{
	int n = 0;

	while (lo[n].name)
		n++;
	return n;
}

/* The long options each command's getopt_long listed by hand. */
static void test_getopt_arrays(void **state)
{
	static const char *const copy[] = {
		"block-size", "buffer", "rate", "json", "no-verify",
		"manifest", "size", "sparse", "force", "stall-timeout",
		"rescue", "compress-level", "progress", "linger", "dry-run",
		"skip-equal", "raw", "start-at", "expect", "connect-timeout",
		"foreground", "quiet", "help", "version",
	};
	static const char *const station[] = {
		"match", "block-size", "buffer", "rate", "size", "raw",
		"expect", "connect-timeout", "force", "no-verify", "sparse",
		"skip-equal", "stall-timeout", "json", "quiet", "help",
	};
	static const char *const relay[] = {
		"listen", "upstream", "linger", "expect", "connect-timeout",
		"start-at", "block-size", "buffer", "rate", "sparse", "force",
		"no-verify", "stall-timeout", "manifest", "skip-equal",
		"compress-level", "progress", "json", "quiet", "help",
		"no-seed",
	};
	size_t i;

	(void)state;
	rc_opt_getopt(RC_CMD_COPY, lo, so);
	assert_string_equal(so, ":b:qhV");
	assert_int_equal(count(), (int)(sizeof copy / sizeof copy[0]));
	for (i = 0; i < sizeof copy / sizeof copy[0]; i++)
		assert_true(has(copy[i]));
	rc_opt_getopt(RC_CMD_SERVE, lo, so);
	assert_string_equal(so, ":b:qhV");
	assert_int_equal(count(), (int)(sizeof copy / sizeof copy[0]));
	rc_opt_getopt(RC_CMD_STATION, lo, so);
	assert_string_equal(so, ":b:qh");
	assert_int_equal(count(), (int)(sizeof station / sizeof station[0]));
	for (i = 0; i < sizeof station / sizeof station[0]; i++)
		assert_true(has(station[i]));
	rc_opt_getopt(RC_CMD_RELAY, lo, so);
	assert_string_equal(so, ":b:qh");
	assert_int_equal(count(), (int)(sizeof relay / sizeof relay[0]));
	for (i = 0; i < sizeof relay / sizeof relay[0]; i++)
		assert_true(has(relay[i]));
	/* getopt's value leads back to the entry. */
	for (i = 0; lo[i].name; i++)
		assert_string_equal(rc_opt_entry(lo[i].val)->flag + 2,
				    lo[i].name);
	assert_null(rc_opt_entry('?'));
	assert_null(rc_opt_entry(':'));
}

/* What the station and the relay act on themselves (src/station.c,
 * src/relay.c); everything else they take, they forward. */
static void test_every_option_goes_somewhere(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < RC_OPT_COUNT; i++) {
		const struct rc_option *e = &rc_options[i];
		enum rc_opt_id id = rc_opt_id(e);

		assert_non_null(e->flag);
		assert_true(!strncmp(e->flag, "--", 2));
		if (e->cmds & (RC_CMD_COPY | RC_CMD_SERVE))
			assert_non_null(e->set);
		if (e->cmds & RC_CMD_STATION)
			assert_true(id == RC_OPT_MATCH || id == RC_OPT_JSON ||
				    id == RC_OPT_QUIET || id == RC_OPT_HELP ||
				    (e->fwd & (RC_FWD_STATION_SERVE |
					       RC_FWD_STATION_COPY)));
		else
			assert_false(e->fwd & (RC_FWD_STATION_SERVE |
					       RC_FWD_STATION_COPY));
		if (e->cmds & RC_CMD_RELAY)
			assert_true(id == RC_OPT_LISTEN ||
				    id == RC_OPT_UPSTREAM ||
				    id == RC_OPT_NO_SEED ||
				    id == RC_OPT_LINGER || id == RC_OPT_HELP ||
				    (e->fwd & RC_FWD_RELAY));
		else
			assert_false(e->fwd & RC_FWD_RELAY);
		/* A forwarded value joined to its name needs a joiner. */
		if (e->fwd && e->has_arg == optional_argument)
			assert_non_null(e->joined);
	}
}

static int parse(struct rc_opts *o, bool serve, char **argv)
{
	int argc = 0;

	while (argv[argc])
		argc++;
	memset(o, 0, sizeof *o);
	o->serve = serve;
	optind = 0;
	return rc_opts_parse(argc, argv, o);
}

static void test_parse(void **state)
{
	struct rc_opts o;
	char *ok[] = { "ringcopy", "-b", "64K", "--sparse", "never",
		       "--start-at", "5", "--progress=json", "--no-verify",
		       "--stall-timeout", "7", "src", "dst", NULL };
	char *small[] = { "ringcopy", "--buffer", "4K", "src", "dst", NULL };
	char *fg[] = { "ringcopy", "--foreground", "src", NULL };
	char *help[] = { "ringcopy", "--help", NULL };
	char *bad[] = { "ringcopy", "--bogus", "src", "dst", NULL };
	char *value[] = { "ringcopy", "--size", NULL };
	char *match[] = { "ringcopy", "--match", "sdb", "src", "dst", NULL };

	(void)state;
	rc_quiet = true;
	assert_int_equal(parse(&o, false, ok), -1);
	assert_int_equal(o.block_size, 65536);
	assert_true(o.block_size_set);
	assert_int_equal(o.sparse, RC_SPARSE_NEVER);
	assert_int_equal(o.start_mode, RC_START_BLOCK);
	assert_true(o.start_at == 5);
	assert_int_equal(o.progress, RC_PROG_JSON);
	assert_false(o.verify);
	assert_int_equal(o.stall_ms, 7000);
	assert_string_equal(ok[optind], "src");
	assert_int_equal(parse(&o, false, small), RC_EXIT_REFUSED);
	assert_int_equal(parse(&o, false, fg), RC_EXIT_REFUSED);
	assert_int_equal(parse(&o, true, fg), -1);
	assert_true(o.foreground);
	assert_true(o.linger_ms == UINT32_MAX); /* serve: until SIGTERM */
	/* --help returns (only main() exits). */
	assert_int_equal(parse(&o, false, help), RC_EXIT_OK);
	assert_int_equal(parse(&o, false, bad), RC_EXIT_REFUSED);
	assert_int_equal(parse(&o, false, value), RC_EXIT_REFUSED);
	/* The station's own option is not the copy's. */
	assert_int_equal(parse(&o, false, match), RC_EXIT_REFUSED);
}

static void test_forward(void **state)
{
	char *v[5];
	int n = 0;

	(void)state;
	assert_int_equal(rc_opt_forward("relay",
					&rc_options[RC_OPT_BLOCK_SIZE], "1M",
					v, &n, 5), 0);
	assert_int_equal(rc_opt_forward("relay", &rc_options[RC_OPT_FORCE],
					NULL, v, &n, 5), 0);
	assert_int_equal(rc_opt_forward("relay",
					&rc_options[RC_OPT_PROGRESS], "json",
					v, &n, 5), 0);
	assert_int_equal(n, 4);
	assert_string_equal(v[0], "--block-size");
	assert_string_equal(v[1], "1M");
	assert_string_equal(v[2], "--force");
	assert_string_equal(v[3], "--progress=json");
	n = 3;
	assert_int_equal(rc_opt_forward("relay",
					&rc_options[RC_OPT_PROGRESS], NULL,
					v, &n, 5), 0);
	assert_string_equal(v[3], "--progress");
	/* No room for an option and its value: refused, said once. */
	assert_int_equal(rc_opt_forward("relay", &rc_options[RC_OPT_RATE],
					"1M", v, &n, 5), RC_EXIT_REFUSED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_getopt_arrays),
		cmocka_unit_test(test_every_option_goes_somewhere),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_forward),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
