/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the command line: usage, and one way of parsing options for
 * every subcommand (getopt_long, errors said the same way, exit 2). */
#ifndef RINGCOPY_CLI_H
#define RINGCOPY_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "ringcopy/core.h"

void rc_usage(FILE *f);
/* "CMD: message (try 'ringcopy --help')" on standard error; returns
 * RC_EXIT_REFUSED.  cmd may be NULL (the copy itself). */
int rc_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* What getopt_long returned for an option it did not accept (':' for a
 * missing value, '?' for an unknown option), said as rc_usage_error. */
int rc_bad_option(const char *cmd, int c, char **argv);
/* A plain decimal number from lo to hi: 0, or -1 for anything else. */
int rc_parse_count(const char *s, uint32_t lo, uint32_t hi, uint32_t *out);

/* The subcommands (each parses its own options with getopt_long; the
 * copy, serve, the station and the relay from the one option table of
 * ringcopy/options.h). */
int rc_cmd_copy(int argc, char **argv, int serve);
int rc_cmd_station(int argc, char **argv);
int rc_cmd_relay(int argc, char **argv);

/* An invocation run by another command (the station) instead of main():
 * what it is asked to be, and what it ended with.  argv is parsed as the
 * command line of `ringcopy [serve] ...' would be (argv[0] is skipped;
 * reset optind to 0 before a second parse in one process). */
struct rc_run {
	bool serve;              /* a producer only, as `ringcopy serve' */
	bool capture;            /* say nothing at the end and draw no
				  * progress: the caller reports from the
				  * fields below */
	/* Filled in by rc_cmd_run: */
	int status;              /* the exit status */
	pid_t producer;          /* the ring's producer (0: none) */
	uint64_t producer_start; /* its start time, for rc_proc_alive */
	bool created;            /* serve: this invocation started it */
	bool stream;             /* the source is read once, to its end */
	bool refused;            /* exit 2: nothing was written */
	bool interrupted;        /* SIGTERM or SIGINT ended it */
	bool done;               /* rc_cmd_run returned (not killed) */
	bool started;            /* past every refusal: targets are being
				  * written */
	struct rc_result res;    /* the first target's result */
	char error[512];         /* refused: why */
	char note[384];          /* what the user must still do (a GPT
				  * whose backup header is not at the end) */
};
int rc_cmd_run(int argc, char **argv, struct rc_run *run);

#endif
