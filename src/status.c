/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - `ringcopy status [--json] [SOURCE]': every ring of this user.
 *
 * Each rendezvous file of the run directory names a ring; status attaches
 * to it (with the same checks as a joiner: ours, 0600, a valid header),
 * takes a snapshot of the header and consumer table under LOCK, and lets
 * go.  It never registers, never removes anything, and never blocks a copy
 * for longer than the snapshot takes.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringcopy/cli.h"
#include "ringcopy/core.h"
#include "ringcopy/describe.h"
#include "ringcopy/util.h"

struct snap {
	struct rc_ring_hdr h;
	struct rc_cons_ent c[RC_TARGETS_MAX];
	enum rc_live live[RC_TARGETS_MAX];
	bool producer_alive; /* its token up and its process the one */
	uint32_t ncons;
	int shmid;
};

/* A starting or running ring whose producer dropped its token (killed,
 * even with SIGKILL) is no copy in progress: it is gone. */
static bool producer_gone(const struct snap *sn)
{
	return !sn->producer_alive && (sn->h.state == RC_RING_STARTING ||
				       sn->h.state == RC_RING_RUNNING);
}

static const char *ring_state(const struct snap *sn)
{
	if (producer_gone(sn))
		return "gone";
	switch (sn->h.state) {
	case RC_RING_STARTING: return "starting";
	case RC_RING_RUNNING: return "running";
	case RC_RING_CLOSING: return "closing";
	case RC_RING_FAILED: return "failed";
	default: return "?";
	}
}

static const char *cons_state(enum rc_live s)
{
	switch (s) {
	case RC_LIVE_COPYING: return "copying";
	case RC_LIVE_LEAVING: return "leaving";
	case RC_LIVE_EVICTED: return "evicted";
	default: return "free";
	}
}

/* The pass of the block the producer reads now. */
static uint64_t ring_pass(const struct rc_ring_hdr *h)
{
	return h->next_seq ? (h->next_seq - 1) / h->nblocks + 1 : 1;
}

/* A consumer's mean rate since it registered, bytes per second. */
static double cons_rate(const struct rc_cons_ent *c, uint64_t now)
{
	double secs = c->start_ns && now > c->start_ns
			      ? (double)(now - c->start_ns) / 1e9
			      : 0;

	return secs > 0 ? (double)c->bytes_written / secs : 0;
}

/* The parent of pid, or 0. */
static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512], *p;
	int ppid = 0;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(buf, sizeof buf, f) && (p = strrchr(buf, ')')) &&
	    sscanf(p + 1, " %*c %d", &ppid) != 1)
		ppid = 0;
	fclose(f);
	return ppid;
}

/* The station a consumer writes for, or 0: a station's copy is its child
 * and the consumer that copy's (before the hand-off the entry names the
 * copy itself).  A station names itself "rc-station" (src/station.c). */
static pid_t station_of(pid_t pid)
{
	char path[64], comm[32];
	int k;

	for (k = 0; k < 3 && pid > 1; k++, pid = parent_of(pid)) {
		FILE *f;
		bool is;

		snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
		f = fopen(path, "re");
		if (!f)
			return 0;
		is = fgets(comm, sizeof comm, f) &&
		     !strcmp(comm, "rc-station\n");
		fclose(f);
		if (is)
			return pid;
	}
	return 0;
}

/* A snapshot of the ring named by the rendezvous file at path: 0,
 * -ENOENT (gone, or not ours: nothing to show), or -EPROTO with why (the
 * ring is there and does not make sense). */
static int take(int dirfd, const char *name, struct snap *sn, char *why,
		size_t whylen)
{
	struct rc_ring r;
	const char *bad;
	char err[256];
	struct stat st;
	int fd, shmid, semid, rc = -ENOENT;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
					 O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 0077) ||
	    rc_rdv_read(fd, &shmid, &semid) < 0) {
		close(fd);
		return -ENOENT;
	}
	rc = rc_ring_attach(shmid, semid, &r, err, sizeof err);
	if (rc < 0) {
		close(fd);
		/* Ours and not a ring: say so; gone: nothing to show. */
		if (rc != -EINVAL)
			return -ENOENT;
		rc_strlcpy(why, err, whylen);
		return -EPROTO;
	}
	close(fd);
	rc = rc_proto_snapshot(&r, &sn->h, sn->c, sn->live,
			       &sn->producer_alive);
	if (rc == -EIDRM) {
		rc = -ENOENT; /* it ended meanwhile */
	} else if (rc < 0) {
		rc_strlcpy(why, r.why, whylen);
		rc = -EPROTO;
	} else if (rc_ring_validate(&sn->h, r.size, &bad) < 0 ||
		   sn->h.nblocks != r.nblocks || sn->h.ncons != r.ncons) {
		/* The copy is input as much as the segment: what changed
		 * since the attach is not shown, and says so. */
		snprintf(why, whylen,
			 "ring (shm %d, sem %d): its header was overwritten (%s)",
			 shmid, semid, bad ? bad : "geometry changed");
		rc = -EPROTO;
	} else {
		sn->ncons = r.ncons;
		for (uint32_t i = 0; i < r.ncons; i++) /* input: terminate */
			sn->c[i].target[sizeof sn->c[i].target - 1] = '\0';
		sn->shmid = shmid;
	}
	rc_ring_detach(&r);
	sn->h.src_name[sizeof sn->h.src_name - 1] = '\0';
	return rc;
}

static void print_text(const struct snap *sn, const char *holds)
{
	const struct rc_ring_hdr *h = &sn->h;
	uint64_t now = rc_now_ns();
	uint32_t i, shown = 0;

	bool stream = h->src_kind == RC_SRC_PIPE;

	/* A stream's ring is sized for a bound, not its image: what it
	 * holds is known at its end. */
	if (stream)
		printf("%s  size unknown (a stream read once, to its end)%s%s\n",
		       h->src_name, holds[0] ? ", " : "", holds);
	else
		printf("%s  %" PRIu64 " bytes%s%s\n", h->src_name,
		       h->image_size, holds[0] ? ", " : "", holds);
	if (stream)
		printf("  producer pid %d, %s, at block %" PRIu64 ", %" PRIu64 " bytes read so far, %u x %u-byte slots\n",
		       h->producer_pid, ring_state(sn), h->next_seq,
		       h->bytes_read, h->nslots, h->block_size);
	else
		printf("  producer pid %d, %s, pass %" PRIu64 ", at block %" PRIu64 " of %" PRIu64 ", %" PRIu64 " bytes read, %u x %u-byte slots\n",
		       h->producer_pid, ring_state(sn), ring_pass(h),
		       h->next_seq % h->nblocks, h->nblocks, h->bytes_read,
		       h->nslots, h->block_size);
	if (h->blocks_held)
		printf("  %" PRIu64 " blocks not read: every consumer held them (--skip-equal)\n",
		       h->blocks_held);
	for (i = 0; i < sn->ncons; i++) {
		const struct rc_cons_ent *c = &sn->c[i];
		pid_t station;

		if (sn->live[i] == RC_LIVE_FREE)
			continue;
		if (stream)
			printf("  %-8s %s  %" PRIu64 " bytes written  %.1f MB/s  pid %d",
			       cons_state(sn->live[i]), c->target,
			       c->bytes_written, cons_rate(c, now) / 1e6,
			       c->pid);
		else
			printf("  %-8s %s  start block %" PRIu64 "  %5.1f%%  %.1f MB/s  pid %d",
			       cons_state(sn->live[i]), c->target,
			       c->first_seq % h->nblocks,
			       100.0 * (double)c->blocks_done /
				       (double)h->nblocks,
			       cons_rate(c, now) / 1e6, c->pid);
		station = station_of(c->pid);
		if (station)
			printf("  station pid %d", (int)station);
		putchar('\n');
		shown++;
	}
	if (!shown)
		printf("  no consumers (lingering for joiners)\n");
}

static void print_json(const struct snap *sn, const char *holds, bool first)
{
	const struct rc_ring_hdr *h = &sn->h;
	uint64_t now = rc_now_ns();
	uint32_t i;
	bool f = true;

	bool stream = h->src_kind == RC_SRC_PIPE;

	printf("%s{\"source\": ", first ? "" : ", ");
	rc_json_str(stdout, h->src_name);
	/* A stream: its size is unknown (null) until its end. */
	if (stream)
		printf(", \"image_bytes\": null, \"stream\": true, \"holds\": ");
	else
		printf(", \"image_bytes\": %" PRIu64 ", \"stream\": false, \"holds\": ",
		       h->image_size);
	rc_json_str(stdout, holds[0] ? holds : NULL);
	printf(", \"block_size\": %u, \"slots\": %u, \"producer_pid\": %d, \"state\": \"%s\", \"pass\": %" PRIu64 ", \"position_block\": %" PRIu64 ", ",
	       h->block_size, h->nslots, h->producer_pid, ring_state(sn),
	       ring_pass(h), h->next_seq % h->nblocks);
	if (stream)
		printf("\"blocks\": null");
	else
		printf("\"blocks\": %" PRIu64, h->nblocks);
	printf(", \"source_bytes_read\": %" PRIu64
	       ", \"blocks_not_read\": %" PRIu64 ", \"consumers\": [",
	       h->bytes_read, h->blocks_held);
	for (i = 0; i < sn->ncons; i++) {
		const struct rc_cons_ent *c = &sn->c[i];
		pid_t station;

		if (sn->live[i] == RC_LIVE_FREE)
			continue;
		printf("%s{\"target\": ", f ? "" : ", ");
		rc_json_str(stdout, c->target);
		printf(", \"state\": \"%s\", \"pid\": %d, \"start_block\": %" PRIu64 ", \"blocks_done\": %" PRIu64 ", \"bytes_written\": %" PRIu64 ", \"rate\": %.0f, \"station_pid\": ",
		       cons_state(sn->live[i]), c->pid,
		       c->first_seq % h->nblocks, c->blocks_done, c->bytes_written, cons_rate(c, now));
		station = station_of(c->pid);
		if (station)
			printf("%d}", (int)station);
		else
			printf("null}");
		f = false;
	}
	printf("]}");
}

/* The rendezvous name of the ring a copy of source would meet, into
 * want: 0, or -errno (said). */
static int source_ring(const char *source, char *want, size_t len)
{
	struct rc_source_id id;
	struct rc_dev *dev = NULL;
	struct stat st;
	char detail[256] = "";
	int fd = -1, rc;

	/* The ring a copy of SOURCE would meet, as the copy finds it
	 * (a .zst by its decoded image, an export by its URI); a
	 * FIFO or character device without a blocking open (a FIFO
	 * would wait for a writer, a tty for carrier). */
	if (stat(source, &st) == 0 &&
	    (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))) {
		fd = open(source, O_RDONLY | O_CLOEXEC | O_NOCTTY |
					  O_NONBLOCK);
		rc = fd < 0 ? -errno : rc_source_identity(fd, &id);
		if (fd >= 0)
			close(fd);
	} else {
		const char *format;

		rc = rc_source_open(source, false, &dev, &format, detail,
				    sizeof detail);
		if (rc == 0)
			rc = rc_dev_identity(dev, &id);
		rc_dev_close(dev);
	}
	if (rc == 0)
		rc = rc_rdv_name(&id, want, len);
	if (rc < 0)
		rc_err("status: source %s: %s", source,
		       detail[0] ? detail : strerror(-rc));
	return rc;
}

/* Show the ring of the rendezvous file name in the run directory dfd
 * (dir, for messages), in JSON after the first: 1 when shown, 0 when it
 * is no ring (any more).  *status becomes RC_EXIT_FAILED when it cannot
 * be read or its producer is gone. */
static int show_ring(int dfd, const char *dir, const char *name, bool json,
		     bool first, int *status)
{
	char path[PATH_MAX], err[512], holds[200] = "";
	struct rc_describe d;
	struct snap *sn;
	struct stat st;
	int rc;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	sn = calloc(1, sizeof *sn);
	if (!sn) {
		rc_err("status: out of memory");
		*status = RC_EXIT_FAILED;
		return 0;
	}
	if ((rc = take(dfd, name, sn, err, sizeof err)) < 0) {
		if (rc == -EPROTO) {
			rc_err("status: %s: %s", path, err);
			*status = RC_EXIT_FAILED;
		}
		free(sn);
		return 0;
	}
	/* What libblkid says the source is, where it is a disk. */
	if (stat(sn->h.src_name, &st) == 0 && S_ISBLK(st.st_mode) &&
	    rc_describe_path(sn->h.src_name, sn->h.image_size, &d) == 0)
		rc_describe_holds(&d, holds, sizeof holds);
	if (json)
		print_json(sn, holds, first);
	else
		print_text(sn, holds);
	if (producer_gone(sn)) {
		rc_err("status: %s: its producer (pid %d) is gone: the copy ended without it (a joiner of the same source removes the ring)",
		       sn->h.src_name, (int)sn->h.producer_pid);
		*status = RC_EXIT_FAILED;
	}
	free(sn);
	return 1;
}

int rc_cmd_status(int argc, char **argv)
{
	char dir[PATH_MAX - 300], err[512], want[64] = "";
	char name[256];
	const char *source = NULL;
	struct dirent **names = NULL;
	bool json = false, first = true;
	int i, n, rc, dfd, found = 0, status = RC_EXIT_OK;

	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else
			return rc_bad_option("status", c, argv);
	}
	if (argc - optind > 1)
		return rc_usage_error("status", "one SOURCE at most");
	if (optind < argc)
		source = argv[optind];
	if (source && source_ring(source, want, sizeof want) < 0)
		return RC_EXIT_REFUSED;
	/* No run directory is no copy; one we cannot use is said. */
	dfd = rc_rundir_open(dir, sizeof dir, false, err, sizeof err);
	rc = dfd < 0 ? dfd : 0;
	if (rc < 0 && rc != -ENOENT) {
		rc_err("status: %s: cannot look for running copies", err);
		return RC_EXIT_FAILED;
	}
	if (json)
		printf("{\"rings\": [");
	if (rc == 0)
		n = scandirat(dfd, ".", &names, NULL, alphasort);
	else
		n = 0;
	for (i = 0; i < n; i++) {
		if (names[i]->d_name[0] == '.' ||
		    (want[0] && strcmp(names[i]->d_name, want))) {
			free(names[i]);
			continue;
		}
		rc_strlcpy(name, names[i]->d_name, sizeof name);
		free(names[i]);
		if (show_ring(dfd, dir, name, json, first, &status)) {
			first = false;
			found++;
		}
	}
	free(names);
	if (dfd >= 0)
		close(dfd);
	if (json)
		printf("]}\n");
	else if (!found)
		printf("no copies running%s%s (run directory %s)\n",
		       source ? " of " : "", source ? source : "", dir);
	return status;
}
