/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - copy one disk image to many targets, reading the source once.
 *
 * main() only dispatches: `verify', `status', `serve' and `station' are
 * subcommands (src/station.c: the duplicator station), and so is `relay'
 * (src/relay.c: one node of a fleet's relay chain);
 * anything else is a copy (src/invocation.c walks it step by step).  Every
 * subcommand parses its options with getopt_long (src/cli.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "ringcopy/cli.h"
#include "ringcopy/core.h"
#include "ringcopy/util.h"
#include "ringcopy/verify.h"

static int dispatch(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (strcmp(cmd, "verify") == 0)
		return rc_cmd_verify(argc - 1, argv + 1);
	if (strcmp(cmd, "status") == 0)
		return rc_cmd_status(argc - 1, argv + 1);
	if (strcmp(cmd, "serve") == 0)
		return rc_cmd_copy(argc - 1, argv + 1, 1);
	if (strcmp(cmd, "station") == 0)
		return rc_cmd_station(argc - 1, argv + 1);
	if (strcmp(cmd, "relay") == 0)
		return rc_cmd_relay(argc - 1, argv + 1);
	return rc_cmd_copy(argc, argv, 0);
}

/* Descriptors 0, 1 and 2 are open before anything else is: a source or
 * target opened into a closed one would later be pointed at /dev/null by
 * a forked process (which read an empty source and copied zeros "ok").
 * A closed standard input or error becomes /dev/null; a closed standard
 * output becomes /dev/full, so that whatever is written to it fails and
 * is reported (the report, or a target "-"), never lost in silence. */
static void std_fds_open(void)
{
	static const char *const dev[] = { "/dev/null", "/dev/full",
					   "/dev/null" };
	int fd;

	for (fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		if (open(dev[fd], fd ? O_WRONLY : O_RDONLY) != fd)
			_exit(RC_EXIT_REFUSED); /* nothing was done */
		if (fd == 1)
			rc_stdout_was_closed();
	}
}

int main(int argc, char **argv)
{
	int status;

	std_fds_open();
	rc_check_stdout_at_exit();
	status = dispatch(argc, argv);
	exit(status);
}
