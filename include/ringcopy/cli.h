/* ringcopy - the command line: usage, and one way of parsing options for
 * every subcommand (getopt_long, errors said the same way, exit 2). */
#ifndef RINGCOPY_CLI_H
#define RINGCOPY_CLI_H

#include <stdint.h>
#include <stdio.h>

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

/* The subcommands (each parses its own options with getopt_long). */
int rc_cmd_copy(int argc, char **argv, int serve);

#endif
