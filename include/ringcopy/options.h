/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the one option table: every long option of the copy, of
 * `serve', of the station and of the relay, with its argument, its parser
 * and the commands that take it.  The copy parses with it; the station and
 * the relay accept the copy's options it marks for them and forward them
 * to their child copies from it, so that no other file spells them. */
#ifndef RINGCOPY_OPTIONS_H
#define RINGCOPY_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

/* What the copy (and `serve') were asked, once parsed. */
struct rc_opts {
	uint32_t block_size;
	bool block_size_set;
	uint64_t buffer;
	bool buffer_set;
	uint64_t rate;
	bool rate_set;
	bool json;
	bool verify;
	const char *manifest;
	int sparse;          /* enum rc_sparse */
	bool force;
	int size_mode;       /* RC_SIZE_AUTO, RC_SIZE_DEVICE, RC_SIZE_GIVEN */
	uint64_t size;       /* with RC_SIZE_GIVEN */
	bool size_quiet;     /* the size came from --expect, said there */
	uint32_t stall_ms;
	const char *rescue_map;
	int progress;        /* RC_PROG_* as asked */
	bool progress_set;
	uint32_t linger_ms;
	bool linger_set;
	bool dry_run;
	bool skip_equal;     /* write only the blocks a target lacks */
	bool raw;            /* never decompress the source */
	int start_mode;      /* RC_START_* */
	uint64_t start_at;   /* with RC_START_BLOCK */
	const char *expect;  /* --expect: the golden manifest */
	bool serve;          /* `ringcopy serve': a producer, no targets */
	bool foreground;     /* serve: wait until the producer leaves */
};

enum { RC_PROG_AUTO, RC_PROG_PLAIN, RC_PROG_JSON };

enum { RC_SIZE_AUTO, RC_SIZE_DEVICE, RC_SIZE_GIVEN };

enum { RC_START_ZERO, RC_START_BLOCK, RC_START_RANDOM };

/* The options, by the index of their entry in the table. */
enum rc_opt_id {
	RC_OPT_BLOCK_SIZE, RC_OPT_BUFFER, RC_OPT_RATE, RC_OPT_JSON,
	RC_OPT_NO_VERIFY, RC_OPT_MANIFEST, RC_OPT_SIZE, RC_OPT_SPARSE,
	RC_OPT_FORCE, RC_OPT_STALL, RC_OPT_RESCUE, RC_OPT_LEVEL,
	RC_OPT_PROGRESS, RC_OPT_LINGER, RC_OPT_DRY_RUN, RC_OPT_SKIP_EQUAL,
	RC_OPT_RAW, RC_OPT_START_AT, RC_OPT_EXPECT, RC_OPT_CONNECT_TIMEOUT,
	RC_OPT_FOREGROUND, RC_OPT_MATCH, RC_OPT_LISTEN, RC_OPT_UPSTREAM,
	RC_OPT_NO_SEED, RC_OPT_QUIET, RC_OPT_HELP, RC_OPT_VERSION,
	RC_OPT_COUNT
};

/* Which commands take an option (rc_option.cmds). */
#define RC_CMD_COPY    0x01u
#define RC_CMD_SERVE   0x02u
#define RC_CMD_STATION 0x04u
#define RC_CMD_RELAY   0x08u
/* Where the station and the relay forward it (rc_option.fwd). */
#define RC_FWD_STATION_SERVE 0x01u /* the station's producer and every
				    * disk's copy */
#define RC_FWD_STATION_COPY  0x02u /* every disk's copy only */
#define RC_FWD_RELAY         0x04u /* the relay node's copy */

struct rc_option {
	const char *flag;        /* "--name": getopt's name is flag + 2 */
	int short_name;          /* 'b', or 0 */
	int has_arg;             /* getopt's no/required/optional_argument */
	/* The copy's parser: -1 to go on, or the exit status to end with
	 * (2 refused, already said; 0 for --help and --version). */
	int (*set)(struct rc_opts *o, const char *arg);
	/* The one argv entry forwarded for an option whose value is
	 * optional (it must be joined to its name); NULL: the generic
	 * "--name" [VALUE]. */
	const char *(*joined)(const char *arg);
	unsigned cmds;           /* RC_CMD_* */
	unsigned fwd;            /* RC_FWD_* */
	uint32_t lo, hi;         /* an option of seconds: their range */
};

extern const struct rc_option rc_options[RC_OPT_COUNT];

/* What getopt_long returned, as an entry of the table (NULL: ':', '?'). */
const struct rc_option *rc_opt_entry(int c);
static inline enum rc_opt_id rc_opt_id(const struct rc_option *e)
{
	return (enum rc_opt_id)(e - rc_options);
}

/* getopt_long's arguments for a command (RC_CMD_*): the long options
 * (RC_OPT_COUNT + 1 entries, NULL-terminated) and the short ones (room
 * for 2 * RC_OPT_COUNT + 2, with a leading ':').  struct option is
 * <getopt.h>'s. */
struct option;
void rc_opt_getopt(unsigned cmd, struct option *longopts, char *shortopts);

/* Append an option to a child copy's argv: "--name" and its value, or its
 * joined form.  0, or the refusal's exit status ("CMD: too many
 * options") when more than max entries would be used. */
int rc_opt_forward(const char *cmd, const struct rc_option *e,
		   const char *arg, char **v, int *n, int max);

/* An option of seconds (its range in the table) as milliseconds: 0, or
 * the refusal's exit status, said for cmd (NULL: the copy). */
int rc_opt_seconds(const char *cmd, const struct rc_option *e,
		   const char *arg, uint32_t *ms);

/* The copy's (or serve's) command line: -1 to go on with argv[optind] the
 * source and the targets after it, or the exit status to end with (said
 * already; 0 after --help or --version).  Never exits. */
int rc_opts_parse(int argc, char **argv, struct rc_opts *o);

#endif
