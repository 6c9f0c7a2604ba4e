/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the one option table (see ringcopy/options.h) and the copy's
 * command line parsed from it: getopt_long's arrays are generated from the
 * table for the command at hand, and each option found is handed to its
 * entry's parser.  Errors are said once, where they are found, with exit
 * status 2; nothing here exits. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ringcopy/cli.h"
#include "ringcopy/core.h"
#include "ringcopy/options.h"
#include "ringcopy/util.h"

#define GO (-1) /* a parser's "go on" */

static int set_block_size(struct rc_opts *o, const char *arg)
{
	uint64_t v;

	if (rc_parse_size(arg, &v) < 0 || !rc_is_pow2(v) ||
	    v < RC_BLOCK_MIN || v > RC_BLOCK_MAX)
		return rc_usage_error(NULL, "--block-size '%s': want a power of two from 4K to 64M",
				      arg);
	o->block_size = (uint32_t)v;
	o->block_size_set = true;
	return GO;
}

static int set_buffer(struct rc_opts *o, const char *arg)
{
	uint64_t v;

	if (rc_parse_size(arg, &v) < 0 || v == 0)
		return rc_usage_error(NULL, "--buffer '%s': want a size such as 64M",
				      arg);
	o->buffer = v;
	o->buffer_set = true;
	return GO;
}

static int set_rate(struct rc_opts *o, const char *arg)
{
	uint64_t v;

	if (rc_parse_size(arg, &v) < 0 || v == 0)
		return rc_usage_error(NULL, "--rate '%s': want bytes per second such as 100M",
				      arg);
	o->rate = v;
	o->rate_set = true;
	return GO;
}

static int set_json(struct rc_opts *o, const char *arg)
{
	(void)arg;
	o->json = true;
	return GO;
}

static int set_no_verify(struct rc_opts *o, const char *arg)
{
	(void)arg;
	o->verify = false;
	return GO;
}

static int set_manifest(struct rc_opts *o, const char *arg)
{
	if (!*arg)
		return rc_usage_error(NULL, "--manifest needs a file name");
	o->manifest = arg;
	return GO;
}

static int set_size(struct rc_opts *o, const char *arg)
{
	uint64_t v;

	if (!strcmp(arg, "auto")) {
		o->size_mode = RC_SIZE_AUTO;
	} else if (!strcmp(arg, "device")) {
		o->size_mode = RC_SIZE_DEVICE;
	} else if (rc_parse_size(arg, &v) == 0 && v > 0) {
		o->size_mode = RC_SIZE_GIVEN;
		o->size = v;
	} else {
		return rc_usage_error(NULL, "--size '%s': want auto, device or a size such as 8G",
				      arg);
	}
	return GO;
}

static int set_sparse(struct rc_opts *o, const char *arg)
{
	if (!strcmp(arg, "auto"))
		o->sparse = RC_SPARSE_AUTO;
	else if (!strcmp(arg, "always"))
		o->sparse = RC_SPARSE_ALWAYS;
	else if (!strcmp(arg, "never"))
		o->sparse = RC_SPARSE_NEVER;
	else
		return rc_usage_error(NULL, "--sparse '%s': want auto, always or never",
				      arg);
	return GO;
}

static int set_force(struct rc_opts *o, const char *arg)
{
	(void)arg;
	o->force = true;
	return GO;
}

int rc_opt_seconds(const char *cmd, const struct rc_option *e,
		   const char *arg, uint32_t *ms)
{
	uint32_t n;

	if (rc_parse_count(arg, e->lo, e->hi, &n) < 0)
		return rc_usage_error(cmd, "%s '%s': want seconds from %u to %u",
				      e->flag, arg, e->lo, e->hi);
	*ms = n * 1000u;
	return 0;
}

static int set_stall(struct rc_opts *o, const char *arg)
{
	return rc_opt_seconds(NULL, &rc_options[RC_OPT_STALL], arg,
			      &o->stall_ms) ? RC_EXIT_REFUSED : GO;
}

static int set_rescue(struct rc_opts *o, const char *arg)
{
	if (!*arg)
		return rc_usage_error(NULL, "--rescue needs a map file name");
	o->rescue_map = arg;
	return GO;
}

static int set_level(struct rc_opts *o, const char *arg)
{
	uint32_t n;

	(void)o;
	if (rc_parse_count(arg, 1, 19, &n) < 0)
		return rc_usage_error(NULL, "--compress-level '%s': want 1 to 19",
				      arg);
	rc_backend_config("compress-level", arg);
	return GO;
}

static int set_progress(struct rc_opts *o, const char *arg)
{
	o->progress_set = true;
	if (!arg || !strcmp(arg, "plain"))
		o->progress = RC_PROG_PLAIN;
	else if (!strcmp(arg, "json"))
		o->progress = RC_PROG_JSON;
	else
		return rc_usage_error(NULL, "--progress='%s': want --progress or --progress=json",
				      arg);
	return GO;
}

/* Forwarded as the copy reads it: JSON lines, or plain ones. */
static const char *joined_progress(const char *arg)
{
	return arg && !strcmp(arg, "json") ? "--progress=json" : "--progress";
}

static int set_linger(struct rc_opts *o, const char *arg)
{
	if (rc_opt_seconds(NULL, &rc_options[RC_OPT_LINGER], arg,
			   &o->linger_ms))
		return RC_EXIT_REFUSED;
	o->linger_set = true;
	return GO;
}

static int set_dry_run(struct rc_opts *o, const char *arg)
{
	(void)arg;
	o->dry_run = true;
	return GO;
}

static int set_skip_equal(struct rc_opts *o, const char *arg)
{
	(void)arg;
	o->skip_equal = true;
	return GO;
}

static int set_raw(struct rc_opts *o, const char *arg)
{
	(void)arg;
	o->raw = true;
	return GO;
}

static int set_start_at(struct rc_opts *o, const char *arg)
{
	uint64_t v;

	if (!strcmp(arg, "random")) {
		o->start_mode = RC_START_RANDOM;
	} else if (rc_parse_size(arg, &v) == 0 &&
		   strspn(arg, "0123456789") == strlen(arg)) {
		o->start_mode = v ? RC_START_BLOCK : RC_START_ZERO;
		o->start_at = v;
	} else {
		return rc_usage_error(NULL, "--start-at '%s': want a block number or random",
				      arg);
	}
	return GO;
}

static int set_expect(struct rc_opts *o, const char *arg)
{
	if (!*arg)
		return rc_usage_error(NULL, "--expect needs a manifest file name");
	o->expect = arg;
	return GO;
}

static int set_connect_timeout(struct rc_opts *o, const char *arg)
{
	uint32_t ms = 0;

	(void)o;
	if (rc_opt_seconds(NULL, &rc_options[RC_OPT_CONNECT_TIMEOUT], arg,
			   &ms))
		return RC_EXIT_REFUSED;
	rc_backend_config("connect-timeout", arg);
	return GO;
}

static int set_foreground(struct rc_opts *o, const char *arg)
{
	(void)arg;
	if (!o->serve)
		return rc_usage_error(NULL, "--foreground is an option of serve: a copy always waits for its targets");
	o->foreground = true;
	return GO;
}

static int set_quiet(struct rc_opts *o, const char *arg)
{
	(void)o;
	(void)arg;
	rc_quiet = true;
	return GO;
}

static int set_help(struct rc_opts *o, const char *arg)
{
	(void)o;
	(void)arg;
	rc_usage(stdout);
	return RC_EXIT_OK;
}

static int set_version(struct rc_opts *o, const char *arg)
{
	(void)o;
	(void)arg;
	printf("ringcopy %s\n", PACKAGE_VERSION);
	return RC_EXIT_OK;
}

#define C  (RC_CMD_COPY | RC_CMD_SERVE)
#define ST RC_CMD_STATION
#define RL RC_CMD_RELAY
#define REQ required_argument
#define NO  no_argument

/* In the order the copy's getopt_long has always listed them.  The
 * station's and the relay's own options (--match, --listen, --upstream)
 * have no copy parser: those commands handle them. */
const struct rc_option rc_options[RC_OPT_COUNT] = {
	[RC_OPT_BLOCK_SIZE] = { "--block-size", 'b', REQ, set_block_size, NULL,
				C | ST | RL,
				RC_FWD_STATION_SERVE | RC_FWD_RELAY },
	[RC_OPT_BUFFER] = { "--buffer", 0, REQ, set_buffer, NULL, C | ST | RL,
			    RC_FWD_STATION_SERVE | RC_FWD_RELAY },
	[RC_OPT_RATE] = { "--rate", 0, REQ, set_rate, NULL, C | ST | RL,
			  RC_FWD_STATION_SERVE | RC_FWD_RELAY },
	/* The station's --json is its own events'. */
	[RC_OPT_JSON] = { "--json", 0, NO, set_json, NULL, C | ST | RL,
			  RC_FWD_RELAY },
	[RC_OPT_NO_VERIFY] = { "--no-verify", 0, NO, set_no_verify, NULL,
			       C | ST | RL,
			       RC_FWD_STATION_COPY | RC_FWD_RELAY },
	[RC_OPT_MANIFEST] = { "--manifest", 0, REQ, set_manifest, NULL,
			      C | RL, RC_FWD_RELAY },
	[RC_OPT_SIZE] = { "--size", 0, REQ, set_size, NULL, C | ST,
			  RC_FWD_STATION_SERVE },
	[RC_OPT_SPARSE] = { "--sparse", 0, REQ, set_sparse, NULL, C | ST | RL,
			    RC_FWD_STATION_COPY | RC_FWD_RELAY },
	[RC_OPT_FORCE] = { "--force", 0, NO, set_force, NULL, C | ST | RL,
			   RC_FWD_STATION_COPY | RC_FWD_RELAY },
	[RC_OPT_STALL] = { "--stall-timeout", 0, REQ, set_stall, NULL,
			   C | ST | RL, RC_FWD_STATION_COPY | RC_FWD_RELAY,
			   .lo = 0, .hi = 86400 },
	[RC_OPT_RESCUE] = { "--rescue", 0, REQ, set_rescue, NULL, C, 0 },
	[RC_OPT_LEVEL] = { "--compress-level", 0, REQ, set_level, NULL,
			   C | RL, RC_FWD_RELAY },
	[RC_OPT_PROGRESS] = { "--progress", 0, optional_argument,
			      set_progress, joined_progress, C | RL,
			      RC_FWD_RELAY },
	/* The relay's --linger is its own (downstream idle), never its
	 * copy's. */
	[RC_OPT_LINGER] = { "--linger", 0, REQ, set_linger, NULL, C | RL, 0,
			    .lo = 0, .hi = 4000000 },
	[RC_OPT_DRY_RUN] = { "--dry-run", 0, NO, set_dry_run, NULL, C, 0 },
	[RC_OPT_SKIP_EQUAL] = { "--skip-equal", 0, NO, set_skip_equal, NULL,
				C | ST | RL,
				RC_FWD_STATION_COPY | RC_FWD_RELAY },
	[RC_OPT_RAW] = { "--raw", 0, NO, set_raw, NULL, C | ST,
			 RC_FWD_STATION_SERVE },
	[RC_OPT_START_AT] = { "--start-at", 0, REQ, set_start_at, NULL,
			      C | RL, RC_FWD_RELAY },
	/* The producer checks each block, every copy its disk. */
	[RC_OPT_EXPECT] = { "--expect", 0, REQ, set_expect, NULL, C | ST | RL,
			    RC_FWD_STATION_SERVE | RC_FWD_RELAY },
	/* Both the producer and the copies connect to an NBD source. */
	[RC_OPT_CONNECT_TIMEOUT] = { "--connect-timeout", 0, REQ,
				     set_connect_timeout, NULL, C | ST | RL,
				     RC_FWD_STATION_SERVE | RC_FWD_RELAY,
				     .lo = 1, .hi = 86400 },
	[RC_OPT_FOREGROUND] = { "--foreground", 0, NO, set_foreground, NULL,
				C, 0 },
	[RC_OPT_MATCH] = { "--match", 0, REQ, NULL, NULL, ST, 0 },
	[RC_OPT_LISTEN] = { "--listen", 0, REQ, NULL, NULL, RL, 0 },
	[RC_OPT_UPSTREAM] = { "--upstream", 0, REQ, NULL, NULL, RL, 0 },
	[RC_OPT_NO_SEED] = { "--no-seed", 0, NO, NULL, NULL, RL, 0 },
	/* The station's children inherit its quiet; the relay's copy is
	 * told. */
	[RC_OPT_QUIET] = { "--quiet", 'q', NO, set_quiet, NULL, C | ST | RL,
			   RC_FWD_RELAY },
	[RC_OPT_HELP] = { "--help", 'h', NO, set_help, NULL, C | ST | RL, 0 },
	[RC_OPT_VERSION] = { "--version", 'V', NO, set_version, NULL, C, 0 },
};

#undef C
#undef ST
#undef RL
#undef REQ
#undef NO

/* getopt_long's value for an entry: its short name, or past the chars. */
static int opt_val(const struct rc_option *e)
{
	return e->short_name ? e->short_name : 256 + (int)rc_opt_id(e);
}

const struct rc_option *rc_opt_entry(int c)
{
	size_t i;

	for (i = 0; i < RC_OPT_COUNT; i++)
		if (opt_val(&rc_options[i]) == c)
			return &rc_options[i];
	return NULL;
}

void rc_opt_getopt(unsigned cmd, struct option *longopts, char *shortopts)
{
	size_t i, n = 0, s = 0;

	shortopts[s++] = ':'; /* a missing value is ':', not '?' */
	for (i = 0; i < RC_OPT_COUNT; i++) {
		const struct rc_option *e = &rc_options[i];

		if (!(e->cmds & cmd))
			continue;
		longopts[n++] = (struct option){ e->flag + 2, e->has_arg,
						 NULL, opt_val(e) };
		if (!e->short_name)
			continue;
		shortopts[s++] = (char)e->short_name;
		if (e->has_arg == required_argument)
			shortopts[s++] = ':';
	}
	longopts[n] = (struct option){ NULL, 0, NULL, 0 };
	shortopts[s] = '\0';
}

int rc_opt_forward(const char *cmd, const struct rc_option *e,
		   const char *arg, char **v, int *n, int max)
{
	if (*n + 2 > max)
		return rc_usage_error(cmd, "too many options");
	if (e->joined) {
		v[(*n)++] = (char *)e->joined(arg);
		return 0;
	}
	v[(*n)++] = (char *)e->flag;
	if (e->has_arg == required_argument)
		v[(*n)++] = (char *)arg;
	return 0;
}

/* The operands, once the options are read. */
static int check_operands(int argc, struct rc_opts *o)
{
	if (o->buffer < o->block_size)
		return rc_usage_error(NULL, "--buffer %llu is smaller than one block of %u bytes",
				      (unsigned long long)o->buffer,
				      o->block_size);
	if (o->serve) {
		if (argc - optind != 1)
			return rc_usage_error(NULL, "%s", argc - optind < 1
							 ? "serve: missing SOURCE"
							 : "serve takes one SOURCE and no TARGET");
		if (!o->linger_set)
			o->linger_ms = UINT32_MAX; /* until SIGTERM */
		return GO;
	}
	if (argc - optind < 2)
		return rc_usage_error(NULL, "%s", argc - optind < 1
						 ? "missing SOURCE and TARGET"
						 : "missing TARGET");
	if ((size_t)(argc - optind - 1) > RC_TARGETS_MAX)
		return rc_usage_error(NULL, "%d targets: at most %u per invocation",
				      argc - optind - 1, RC_TARGETS_MAX);
	return GO;
}

int rc_opts_parse(int argc, char **argv, struct rc_opts *o)
{
	struct option longopts[RC_OPT_COUNT + 1];
	char shortopts[2 * RC_OPT_COUNT + 2];
	const struct rc_option *e;
	int c, rc;

	o->block_size = RC_BLOCK_DEFAULT;
	o->buffer = RC_BUFFER_DEFAULT;
	o->verify = true;
	o->stall_ms = 60000;
	rc_opt_getopt(o->serve ? RC_CMD_SERVE : RC_CMD_COPY, longopts,
		      shortopts);
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		e = rc_opt_entry(c);
		if (!e || !e->set)
			return rc_bad_option(NULL, c, argv);
		rc = e->set(o, optarg);
		if (rc != GO)
			return rc;
	}
	return check_operands(argc, o);
}
