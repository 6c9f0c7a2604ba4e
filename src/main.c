/* ringcopy - copy one disk image to many targets, reading the source once.
 *
 * main() only dispatches: `verify', `status', `serve' and `station' are
 * subcommands (src/station.c: the duplicator station), and so is `relay'
 * (src/relay.c: one node of a fleet's relay chain);
 * anything else is a copy (src/invocation.c walks it step by step).  Every
 * subcommand parses its options with getopt_long (src/cli.c).
 */
#include "config.h"

#include <stdlib.h>
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

int main(int argc, char **argv)
{
	int status;

	rc_check_stdout_at_exit();
	status = dispatch(argc, argv);
	exit(status);
}
