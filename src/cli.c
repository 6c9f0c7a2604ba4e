/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - usage and the option-parsing conventions every subcommand
 * follows: getopt_long with opterr off, and a refusal that names the
 * option, with exit status 2. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringcopy/cli.h"
#include "ringcopy/util.h"

void rc_usage(FILE *f)
{
	fputs("Usage:\n"
	      " ringcopy [options] SOURCE TARGET...\n"
	      " ringcopy serve [options] SOURCE\n"
	      " ringcopy station --match PATTERN... [options] SOURCE\n"
	      " ringcopy relay --listen ADDR --upstream URI[,URI...] --expect MANIFEST\n"
	      "                [options] TARGET...\n"
	      " ringcopy status [--json] [SOURCE]\n"
	      " ringcopy verify [-q] MANIFEST TARGET...\n"
	      "\n"
	      "Copy the image in SOURCE to every TARGET, reading SOURCE once.\n"
	      "Started again on the same SOURCE while a copy runs, ringcopy\n"
	      "joins that copy: its targets start at the block being read and\n"
	      "receive the blocks before it when reading wraps to block 0.\n"
	      "\n"
	      "Options:\n"
	      " -b, --block-size SIZE  block size, a power of two from 4K to 64M (default 1M)\n"
	      "     --buffer SIZE      ring size (default 16M; 64M for a source with holes)\n"
	      "     --rate SIZE        cap the source read rate, bytes per second\n"
	      "     --size auto|device|SIZE  how much of SOURCE to copy (default auto:\n"
	      "                        the image on a disk, a pipe to its end; see ringcopy(1))\n"
	      "     --sparse auto|always|never  how zero blocks are written (default auto)\n"
	      "     --force            overwrite a device holding a partition table or filesystem\n"
	      "     --compress-level N zstd level of .zst targets, 1-19 (default 3)\n"
	      "     --no-verify        do not read the targets back\n"
	      "     --stall-timeout SECONDS  evict a target stalled this long (default 60, 0 never)\n"
	      "     --rescue MAPFILE   fill unreadable source sectors with a marker, list them in MAPFILE\n"
	      "     --manifest FILE    write the block hashes and digest to FILE\n"
	      "     --json             print a JSON summary on standard output\n"
	      "     --progress[=json]  progress lines (JSON lines) even off a terminal\n"
	      "     --linger SECONDS   keep the producer waiting for joiners after the last leaves\n"
	      "     --dry-run          say what would happen; write and register nothing\n"
	      "     --skip-equal       read each target block first, write only those that differ\n"
	      "     --raw              copy a compressed source's bytes, do not decompress them\n"
	      "     --start-at BLOCK|random  a new copy's first pass starts there (fleets)\n"
	      "     --expect MANIFEST  prove every block against a golden manifest\n"
	      "     --connect-timeout SECONDS  NBD connection deadline (default 10)\n"
	      "     --foreground       serve: stay until the producer leaves (for a service manager)\n"
	      "     --match PATTERN    station: a disk to write (see 'ringcopy station --help')\n"
	      " -q, --quiet            print only errors\n"
	      " -h, --help             display this help\n"
	      " -V, --version          display the version\n"
	      "\n"
	      "SIZE accepts K, M, G and T suffixes (powers of 1024).\n"
	      "Specs: a path (block device, file, .zst image), dev:PATH, file:PATH,\n"
	      "zstd:PATH, - (standard input or output), null: (discard),\n"
	      "fault:OPTIONS:SPEC (inject failures).\n"
	      "Exit status: 0 every target complete, and verified where it can be\n"
	      "read back (null: and - cannot: reported not verified); 1 a target or\n"
	      "the source failed; 2 refused, nothing written (--dry-run refuses\n"
	      "alike); 3 a target read back differently.\n"
	      "See ringcopy(1).\n",
	      f);
}

int rc_usage_error(const char *cmd, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	rc_err("%s%s%s (try 'ringcopy --help')", cmd ? cmd : "",
	       cmd ? ": " : "", buf);
	return RC_EXIT_REFUSED;
}

int rc_bad_option(const char *cmd, int c, char **argv)
{
	if (c == ':')
		return rc_usage_error(cmd, "option '%s' needs a value",
				      argv[optind - 1]);
	return rc_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
}

int rc_parse_count(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = (uint32_t)v;
	return 0;
}
