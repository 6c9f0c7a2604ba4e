/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the invocation's consumer processes and the signals that stop
 * them: one forked consumer per target, the hand-off of each registration
 * to its consumer, the wait for them all (drawing progress), and an
 * interruption (SIGINT, SIGTERM) passed on to the consumers still running.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ringcopy/core.h"
#include "ringcopy/invocation.h"
#include "ringcopy/progress.h"
#include "ringcopy/ringproto.h"
#include "ringcopy/util.h"

/* The signal that interrupted us: file-scope because the handler sets it
 * and a handler is given nothing else to write to. */
static volatile sig_atomic_t interrupt_sig; /* the first one we got */

static void on_signal(int sig)
{
	if (!interrupt_sig)
		interrupt_sig = sig;
	rc_interrupted = 1;
}

/* The signal that interrupted us, in the user's words. */
const char *rc_interrupt_name(void)
{
	switch (interrupt_sig) {
	case SIGINT: return "SIGINT (Ctrl-C)";
	case SIGTERM: return "SIGTERM";
	default: return "a signal (the invocation died)";
	}
}

/* The consumers of one invocation, from their fork to their reaping.  A
 * signal to the invocation is passed on to them by the loops that wait
 * for them, never from the handler (a reaped child's pid may already be
 * someone else's): pids[i] is 0 once reaped or never started. */
struct crew {
	struct invocation *inv;
	pid_t pids[RC_TARGETS_MAX];
	int pipes[RC_TARGETS_MAX];  /* each one's hand-off, or -1 */
	bool forwarded;             /* the interruption was passed on */
};

/* Pass an interruption on to the consumers still running (once). */
static void forward_interrupt(struct crew *c)
{
	int i;

	if (!rc_interrupted || c->forwarded)
		return;
	c->forwarded = true;
	for (i = 0; i < c->inv->n; i++)
		if (c->pids[i] > 0)
			kill(c->pids[i], SIGTERM);
}

void rc_signals_set(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; /* no SA_RESTART: waits see EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Give our registrations up: no consumer will claim them. */
void rc_abandon_all(struct invocation *inv)
{
	int i;

	for (i = 0; i < inv->n; i++)
		rc_proto_abandon(&inv->j->ring, &inv->j->reg[i]);
	rc_ring_detach(&inv->j->ring);
}


/* In the consumer for target i, just forked: close what belongs to the
 * others and to the invocation, run, and _exit with how it ended. */
static void consumer_child(struct crew *c, int i, pid_t parent, int ready_fd)
{
	struct invocation *inv = c->inv;
	struct rc_join *j = inv->j;
	int k;

	/* The invocation's death (even SIGKILL) interrupts us like its
	 * SIGTERM would: stop and leave. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		rc_interrupted = 1;
	for (k = 0; k < inv->n; k++) {
		if (k != i && inv->dst[k])
			close(inv->dst[k]->fd);
		if (k < i && c->pipes[k] >= 0)
			close(c->pipes[k]);
	}
	rc_dev_close(inv->src);
	struct rc_consumer_args a = {
		.ring = &j->ring, .reg = j->reg[i],
		.dst = inv->dst[i], .res = &inv->res[i],
		.ready_fd = ready_fd, .hashes = inv->hashes,
		.verify = inv->o.verify, .sparse = inv->o.sparse,
		.skip_equal = inv->o.skip_equal,
		.held = inv->held[i], .expect = inv->expect.hash,
		.stream = j->ring.stream,
		.rdv = &j->rdv,
	};

	inv->res[i].status = RC_RES_PENDING;
	rc_consumer_run(&a);
	_exit(inv->res[i].status == RC_RES_OK ? 0 : 1);
}

/* Fork one consumer per registered target still standing; a target that
 * cannot have one gives its registration up. */
static void start_consumers(struct crew *c)
{
	struct invocation *inv = c->inv;
	struct rc_result *res = inv->res;
	struct rc_join *j = inv->j;
	pid_t parent = getpid();
	int i;

	for (i = 0; i < inv->n; i++) {
		int pfd[2] = { -1, -1 };
		pid_t pid;

		c->pipes[i] = -1;
		if (res[i].status == RC_RES_FAILED) {
			rc_proto_abandon(&j->ring, &j->reg[i]);
			continue;
		}
		if (pipe2(pfd, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
			snprintf(res[i].error, sizeof res[i].error,
				 "cannot start a consumer: %s",
				 strerror(errno));
			res[i].status = RC_RES_FAILED;
			if (pfd[0] >= 0) {
				close(pfd[0]);
				close(pfd[1]);
			}
			rc_proto_abandon(&j->ring, &j->reg[i]);
			continue;
		}
		if (pid == 0) {
			close(pfd[0]);
			consumer_child(c, i, parent, pfd[1]);
		}
		close(pfd[1]);
		c->pipes[i] = pfd[0];
		c->pids[i] = pid;
	}
}

/* Hand each entry's liveness over to its consumer.  The child either
 * claims its entry and says so, or dies (EOF): an interruption is passed
 * on and the wait goes on, because an entry is given up only when its
 * consumer cannot have claimed it. */
static void hand_off(struct crew *c)
{
	struct rc_join *j = c->inv->j;
	int i;

	for (i = 0; i < c->inv->n; i++) {
		char ch;
		ssize_t r;

		if (c->pipes[i] < 0)
			continue;
		do {
			forward_interrupt(c);
			r = read(c->pipes[i], &ch, 1);
		} while (r < 0 && errno == EINTR);
		close(c->pipes[i]);
		if (r == 1)
			rc_proto_hand_off(&j->ring, &j->reg[i]);
		else
			rc_proto_abandon(&j->ring, &j->reg[i]);
	}
}

/* Reap the consumers that ended (a death without a result of its own is
 * its failure): how many are still running. */
static int reap(struct crew *c)
{
	struct rc_result *res = c->inv->res;
	int i, left = 0;

	for (i = 0; i < c->inv->n; i++) {
		int status;
		pid_t w;

		if (!c->pids[i])
			continue;
		w = waitpid(c->pids[i], &status, WNOHANG);
		if (w == 0 || (w < 0 && errno == EINTR)) {
			left++;
			continue;
		}
		c->pids[i] = 0; /* no longer ours to signal */
		if (w < 0 || res[i].status != RC_RES_PENDING)
			continue;
		res[i].status = RC_RES_FAILED;
		if (WIFSIGNALED(status))
			snprintf(res[i].error, sizeof res[i].error,
				 "consumer killed by signal %d",
				 WTERMSIG(status));
		else
			snprintf(res[i].error, sizeof res[i].error,
				 "consumer exited with status %d",
				 WEXITSTATUS(status));
	}
	return left;
}

/* Fork one consumer per registered target and wait for all of them,
 * drawing progress meanwhile.  SIGCHLD stays pending while blocked, so
 * sigtimedwait() returns as soon as a consumer exits (even between the
 * waitpid() and the wait), not at the next progress tick. */
void rc_run_consumers(struct invocation *inv)
{
	struct crew c = { .inv = inv };
	sigset_t chld, old_mask;

	start_consumers(&c);
	hand_off(&c);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old_mask);
	for (;;) {
		struct timespec ts = { 0, 100000000 };
		int left = reap(&c);

		rc_progress_tick(&inv->prog, left == 0);
		if (!left)
			break;
		forward_interrupt(&c);
		sigtimedwait(&chld, NULL, &ts);
	}
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	rc_progress_end(&inv->prog);
}
