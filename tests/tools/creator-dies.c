/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy, dying where a crash leaves a ring without a producer: after
 * the ring is created, before its producer is forked (test-stale.sh).
 * Linked with -Wl,--wrap=rc_producer_spawn into a test binary of its
 * own, so the tool itself carries no test hook on its production path. */
#include "config.h"

#include <stddef.h>
#include <unistd.h>

#include "ringcopy/core.h"
#include "ringcopy/util.h"

int __wrap_rc_producer_spawn(struct rc_ring *r, struct rc_dev *src,
			     const struct rc_rdv *rdv, int map_fd, char *err,
			     size_t errlen);

int __wrap_rc_producer_spawn(struct rc_ring *r, struct rc_dev *src,
			     const struct rc_rdv *rdv, int map_fd, char *err,
			     size_t errlen)
{
	(void)r;
	(void)src;
	(void)rdv;
	(void)map_fd;
	(void)err;
	(void)errlen;
	_exit(RC_EXIT_FAILED);
}
