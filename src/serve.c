/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - `ringcopy serve' once elected: say where the producer is and
 * leave it, refuse to claim a producer that would not serve long enough,
 * or (--foreground) wait until the producer leaves, passing SIGTERM and
 * SIGINT on to it. */
#include "config.h"

#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ringcopy/core.h"
#include "ringcopy/invocation.h"
#include "ringcopy/report.h"
#include "ringcopy/util.h"

/* serve --foreground: wait until the producer (not our child: it is
 * twice removed) leaves, passing SIGTERM and SIGINT on to it, so that a
 * service manager can run and stop `serve' like any daemon.  Its pid and
 * start time are looked at every 200 ms (a pidfd would say it at once,
 * but valgrind 3.19 does not know pidfd_open, and a fifth of a second
 * does not matter to a service manager). */
static void wait_producer(pid_t pid, uint64_t start)
{
	struct timespec tick = { 0, 200000000 };
	sigset_t block, old;
	bool passed = false;

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &old);
	while (rc_proc_alive(pid, start)) {
		if (rc_interrupted && !passed) {
			kill(pid, SIGTERM); /* alive and ours, checked above */
			passed = true;
		}
		/* The signals are unblocked only inside the wait: one that
		 * arrives after the check above still ends it at once. */
		ppoll(NULL, 0, &tick, &old);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

/* What `serve' does once elected: say where the producer is, and leave
 * it (or, with --foreground, stay until it leaves). */
int rc_step_serve(struct invocation *inv)
{
	struct rc_join *j = inv->j;
	pid_t pid = j->ring.producer_pid;

	if (!inv->o.serve)
		return NEXT;
	inv->run->producer = pid;
	inv->run->producer_start = j->ring.producer_start;
	inv->run->created = j->created;
	inv->run->stream = inv->stream;
	/* A producer that leaves before we would have ours leave (a plain
	 * copy's, which does not linger): "already served" would be untrue
	 * once its copy ends.  Its linger is copied at its start and never
	 * re-read, so it cannot be extended: refused. */
	if (!j->created && (inv->o.foreground ||
			    (!inv->run->capture &&
			     j->ring.linger_ms < inv->o.linger_ms))) {
		char lg[64] = "does not linger (a plain copy's)";

		if (j->ring.linger_ms)
			snprintf(lg, sizeof lg, "lingers only %u s",
				 j->ring.linger_ms / 1000);
		if (inv->o.foreground)
			snprintf(inv->err, sizeof inv->err,
				 "serve --foreground: %s is already being served by producer pid %d, which this command did not start: stop that one first",
				 inv->src->spec, (int)pid);
		else
			snprintf(inv->err, sizeof inv->err,
				 "serve %s refused: it is being read by producer pid %d, which %s: it leaves after the copies it serves and nothing would serve the source then; run serve once it has left, or give the copy --linger",
				 inv->src->spec, (int)pid, lg);
		rc_ring_detach(&j->ring);
		return rc_inv_refuse(inv);
	}
	rc_ring_detach(&j->ring);
	if (inv->o.json) {
		printf("{\"source\": ");
		rc_json_str(stdout, inv->src->spec);
		printf(", \"producer_pid\": %d, \"started\": %s}\n", (int)pid,
		       j->created ? "true" : "false");
		fflush(stdout);
	}
	if (!j->created) {
		if (!inv->run->capture)
			rc_msg("%s is already being served (producer pid %d): nothing to do",
			       inv->src->spec, (int)pid);
		return END;
	}
	if (inv->run->capture)
		return END; /* the caller says where the producer is */
	if (inv->o.linger_ms == UINT32_MAX && !inv->o.foreground)
		rc_msg("serving %s: producer pid %d, a ring of %u x %u-byte slots; it waits for joiners until SIGTERM (kill %d)",
		       inv->src->spec, (int)pid, j->ring.nslots,
		       j->ring.block_size, (int)pid);
	else
		rc_msg("serving %s: producer pid %d, a ring of %u x %u-byte slots; it waits for joiners %s",
		       inv->src->spec, (int)pid, j->ring.nslots,
		       j->ring.block_size,
		       inv->o.linger_ms != UINT32_MAX
			       ? "for --linger seconds after the last leaves"
			       : "until this command gets SIGTERM");
	if (inv->o.foreground) {
		char ready[PATH_MAX + 64];

		snprintf(ready, sizeof ready, "serving %s: producer pid %d",
			 inv->src->spec, (int)pid);
		rc_notify_ready(ready);
		wait_producer(pid, j->ring.producer_start);
		/* A producer that leaves tears its ring down first: one that
		 * did not was killed, and a service manager restarts a
		 * server that failed (Restart=on-failure), not one that
		 * ended. */
		if (rc_ring_left(&j->ring)) {
			rc_err("producer pid %d of %s was killed: it left its ring (shm %d, sem %d), which the next ringcopy of %s removes",
			       (int)pid, inv->src->spec, j->ring.shmid,
			       j->ring.semid, inv->src->spec);
			inv->status = RC_EXIT_FAILED;
			return END;
		}
		rc_msg("producer pid %d of %s has left", (int)pid,
		       inv->src->spec);
	}
	return END;
}

