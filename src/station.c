/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - `ringcopy station [OPTIONS] SOURCE': a duplicator station.
 *
 * The station serves SOURCE (a producer, as `serve' starts one) and writes
 * it to every disk that appears while it runs and matches every --match.
 * It listens to the kernel's uevents through libudev's monitor on the
 * "kernel" netlink source, so it needs no udevd.  A disk is acted on when
 * it is added with media, or when a change event shows media appearing
 * (its size goes from 0 to more: a card in a reader, a loop device
 * attached); disks present when the station starts are left alone.
 *
 * Each disk becomes a target the way `ringcopy SOURCE DISK' makes one: a
 * forked child runs that very invocation (rc_cmd_run with the station's
 * copy options), which joins the station's ring as a late joiner and makes
 * every refusal a copy makes.  The child says how it ended through memory
 * shared with the station, which reports one line per disk (and, with
 * --json, one JSON line per event).  SIGTERM or SIGINT interrupts the
 * copies in flight, reports them, and lets the producer go.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <libudev.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ringcopy/cli.h"
#include "ringcopy/core.h"
#include "ringcopy/options.h"
#include "ringcopy/report.h"
#include "ringcopy/util.h"

/* The name `ringcopy status' knows a station by (its /proc/PID/comm). */
#define STATION_COMM "rc-station"

#define MATCH_MAX 32
#define OPTS_MAX 32
#define DISKS_MAX 1024

/* One --match: a kernel name glob, or a test of a sysfs attribute. */
enum { M_NAME, M_EQ, M_NE, M_LT, M_LE, M_GT, M_GE };

struct match {
	const char *text;    /* as given */
	int op;
	char attr[64];       /* a file under /sys/class/block/NAME */
	const char *value;   /* glob (=, != on text) or number */
	bool numeric;
	uint64_t num;        /* bytes for size */
};

/* Every disk the station has seen: its size tells media appearing from a
 * change that is not (a partition table re-read, udevd's own "change"
 * after a close). */
struct disk {
	char name[64];       /* kernel name */
	char node[96];       /* /dev/NAME */
	uint64_t size;       /* bytes, as last seen */
	pid_t pid;           /* the copy writing it, or 0 */
	int slot;            /* its outcome in runs[] */
	bool removed;        /* its media went away while being written */
	bool announced;      /* its copy was said to start */
};

struct station {
	struct match m[MATCH_MAX];
	int nm;
	char *popt[OPTS_MAX];   /* options of the producer and every copy */
	int npopt;
	char *copt[OPTS_MAX];   /* options of the copies only */
	int ncopt;
	const char *source;
	bool json;
	struct udev *udev;
	struct udev_monitor *mon;
	struct udev_device *cur;  /* the event being handled: a copy forked
				   * meanwhile still holds it (never lost) */
	int sigfd;
	struct rc_run *runs;    /* RC_TARGETS_MAX outcomes, shared */
	bool used[RC_TARGETS_MAX];
	struct disk disks[DISKS_MAX];
	size_t ndisks;
	size_t running;
	pid_t producer;
	uint64_t pstart;
	bool created;
	bool stopping;
	int nok, nfailed, nrefused, ninterrupted, nmismatch;
};

/* --- the patterns ---------------------------------------------------- */

static int bad_match(const char *text, const char *why)
{
	return rc_usage_error("station", "--match '%s': %s", text, why);
}

/* Parse one --match: 0, or the refusal's exit status. */
static int parse_match(const char *s, struct match *m)
{
	const char *p, *v;
	size_t alen;

	memset(m, 0, sizeof *m);
	m->text = s;
	if (!*s)
		return bad_match(s, "an empty pattern");
	p = strpbrk(s, "=<>!");
	if (!p) {
		if (strchr(s, '/'))
			return bad_match(s, "want a kernel name or a glob of one, such as sdb or 'sd[b-z]', not a path");
		m->op = M_NAME;
		return 0;
	}
	alen = (size_t)(p - s);
	if (!strncmp(p, "!=", 2))
		m->op = M_NE, v = p + 2;
	else if (!strncmp(p, "<=", 2))
		m->op = M_LE, v = p + 2;
	else if (!strncmp(p, ">=", 2))
		m->op = M_GE, v = p + 2;
	else if (*p == '=')
		m->op = M_EQ, v = p + 1;
	else if (*p == '<')
		m->op = M_LT, v = p + 1;
	else if (*p == '>')
		m->op = M_GT, v = p + 1;
	else
		return bad_match(s, "want an attribute test such as removable=1 or size>=8G (operators =, !=, <, <=, >, >=)");
	if (!alen || alen >= sizeof m->attr)
		return bad_match(s, "want an attribute test such as removable=1 or size>=8G (operators =, !=, <, <=, >, >=)");
	memcpy(m->attr, s, alen);
	if (m->attr[0] == '/' || strstr(m->attr, "..") ||
	    strspn(m->attr, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./") != alen)
		return bad_match(s, "want a file of /sys/class/block/NAME, such as size, removable or device/model");
	if (!*v || strchr("=<>!", *v))
		return bad_match(s, "want one operator (=, !=, <, <=, >, >=) and a value after it");
	m->value = v;
	/* size is compared in bytes; the other attributes as numbers only
	 * where the operator orders them. */
	if (!strcmp(m->attr, "size") || (m->op != M_EQ && m->op != M_NE)) {
		m->numeric = true;
		if (rc_parse_size(v, &m->num) < 0)
			return bad_match(s, !strcmp(m->attr, "size")
						  ? "want a size in bytes, such as 8G or 512M (K, M, G, T: powers of 1024)"
						  : "want a number after <, <=, > or >=");
	}
	return 0;
}

/* The first line of /sys/class/block/NAME/ATTR, trimmed: 0 or -1. */
static int read_attr(const char *name, const char *attr, char *buf,
		     size_t len)
{
	char path[PATH_MAX];
	size_t n;
	FILE *f;

	snprintf(path, sizeof path, "/sys/class/block/%s/%s", name, attr);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (!fgets(buf, (int)len, f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

/* A disk's size in bytes now (sysfs counts 512-byte sectors). */
static uint64_t disk_size(const char *name)
{
	char buf[64], *end;
	unsigned long long v;

	if (read_attr(name, "size", buf, sizeof buf) < 0)
		return 0;
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno || end == buf || v > UINT64_MAX / 512)
		return 0;
	return (uint64_t)v * 512;
}

static bool match_one(const struct match *m, const char *name)
{
	char buf[256], *end;
	unsigned long long v;
	uint64_t x;
	bool eq;

	if (m->op == M_NAME)
		return fnmatch(m->text, name, 0) == 0;
	if (read_attr(name, m->attr, buf, sizeof buf) < 0)
		return false; /* no such attribute: not this kind of disk */
	if (!m->numeric) {
		eq = fnmatch(m->value, buf, 0) == 0;
		return m->op == M_EQ ? eq : !eq;
	}
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno || end == buf || *end)
		return false;
	x = v;
	if (!strcmp(m->attr, "size")) {
		if (x > UINT64_MAX / 512)
			return false;
		x *= 512;
	}
	switch (m->op) {
	case M_EQ: return x == m->num;
	case M_NE: return x != m->num;
	case M_LT: return x < m->num;
	case M_LE: return x <= m->num;
	case M_GT: return x > m->num;
	default: return x >= m->num;
	}
}

/* Every --match must hold: see ringcopy(1), STATION. */
static const char *unmatched(const struct station *st, const char *name)
{
	int i;

	for (i = 0; i < st->nm; i++)
		if (!match_one(&st->m[i], name))
			return st->m[i].text;
	return NULL;
}

/* --- the command line ------------------------------------------------ */

static void usage_station(FILE *f)
{
	fputs("Usage: ringcopy station --match PATTERN... [options] SOURCE\n"
	      "\n"
	      "Serve SOURCE and write it to every disk that appears while the\n"
	      "station runs and matches every --match (a kernel name glob such\n"
	      "as 'sd[b-z]', or a sysfs attribute test such as removable=1 or\n"
	      "size>=8G).  Each disk is copied, verified and reported as\n"
	      "`ringcopy SOURCE DISK' would; a disk that copy would refuse is\n"
	      "left untouched.  SIGTERM or SIGINT ends the station.\n"
	      "\n"
	      "Options:\n"
	      "     --match PATTERN    a disk to write (repeatable: all must hold)\n"
	      " -b, --block-size, --buffer, --rate, --size, --raw, --expect,\n"
	      "     --connect-timeout  the producer's and every copy's, as for a copy\n"
	      "     --force, --no-verify, --sparse, --skip-equal, --stall-timeout\n"
	      "                        each disk's copy, as for a copy\n"
	      "     --json             one JSON line per event on standard output\n"
	      " -q, --quiet            print only errors\n"
	      "See ringcopy(1), STATION.\n",
	      f);
}

/* One option of the table: the station's own, or forwarded to the
 * producer and every copy, or to every copy only (as the table says). */
static int station_option(struct station *st, const struct rc_option *e)
{
	switch (rc_opt_id(e)) {
	case RC_OPT_MATCH:
		if (st->nm == MATCH_MAX)
			return rc_usage_error("station", "at most %d --match", MATCH_MAX);
		return parse_match(optarg, &st->m[st->nm++]);
	case RC_OPT_JSON:
		st->json = true;
		return 0;
	case RC_OPT_QUIET:
		rc_quiet = true;
		return 0;
	case RC_OPT_HELP:
		usage_station(stdout);
		return -1;
	default:
		break;
	}
	if (e->fwd & RC_FWD_STATION_SERVE)
		return rc_opt_forward("station", e, optarg, st->popt,
				      &st->npopt, OPTS_MAX);
	if (e->fwd & RC_FWD_STATION_COPY)
		return rc_opt_forward("station", e, optarg, st->copt,
				      &st->ncopt, OPTS_MAX);
	/* The table marks it the station's, and nothing here takes it. */
	return rc_usage_error("station", "option '%s' is not handled", e->flag);
}

static int parse_station(int argc, char **argv, struct station *st)
{
	struct option longopts[RC_OPT_COUNT + 1];
	char shortopts[2 * RC_OPT_COUNT + 2];
	const struct rc_option *e;
	int c, rc = 0;

	rc_opt_getopt(RC_CMD_STATION, longopts, shortopts);
	optind = 1;
	opterr = 0;
	while (rc == 0 &&
	       (c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		e = rc_opt_entry(c);
		if (!e || !(e->cmds & RC_CMD_STATION))
			return rc_bad_option("station", c, argv);
		rc = station_option(st, e);
		if (rc < 0)
			return RC_EXIT_OK; /* --help */
	}
	if (rc)
		return rc;
	if (argc - optind != 1)
		return rc_usage_error("station", "%s", argc - optind < 1
					   ? "missing SOURCE"
					   : "one SOURCE and no TARGET: the targets are the disks that appear");
	if (!st->nm)
		return rc_usage_error("station", "at least one --match is needed: there is no default that writes every disk that appears (e.g. --match 'sd[b-z]' --match removable=1)");
	st->source = argv[optind];
	return -1;
}

/* --- reporting ------------------------------------------------------- */

static void json_begin(const char *event)
{
	printf("{\"event\": \"%s\", ", event);
}

static void json_end(void)
{
	printf("}\n");
	fflush(stdout);
}

/* A copy ended: one line, and its JSON event. */
static void report_disk(struct station *st, struct disk *d)
{
	struct rc_run *r = &st->runs[d->slot];
	struct rc_result res = r->res;
	const char *status;

	if (!r->done) {
		/* Killed before it could say: no result of its own. */
		res.status = RC_RES_FAILED;
		if (!res.error[0])
			snprintf(res.error, sizeof res.error,
				 "the copy of %s ended before reporting",
				 d->node);
	}
	if (r->done && r->refused) {
		status = "refused";
		res.status = RC_RES_FAILED;
		snprintf(res.error, sizeof res.error, "%s",
			 r->error[0] ? r->error : "refused (see above)");
		st->nrefused++;
		rc_err("station: %s (left untouched)", res.error);
	} else {
		struct rc_report rp = { .n = 1, .specs = &(char *){ d->node },
					.res = &res };

		if (res.status == RC_RES_PENDING)
			res.status = RC_RES_FAILED;
		if (d->removed && res.status != RC_RES_OK) {
			size_t n = strlen(res.error);

			snprintf(res.error + n, sizeof res.error - n,
				 "%sthe disk's media went away while it was written",
				 n ? "; " : "");
		}
		if (res.status == RC_RES_OK) {
			status = "ok";
			st->nok++;
		} else if (res.status == RC_RES_MISMATCH) {
			status = "mismatch";
			st->nmismatch++;
		} else if (r->interrupted || st->stopping) {
			status = "interrupted";
			st->ninterrupted++;
		} else {
			status = "failed";
			st->nfailed++;
		}
		rc_report(&rp);
		if (r->note[0])
			rc_err("station: %s", r->note);
	}
	if (st->json) {
		json_begin("done");
		printf("\"name\": ");
		rc_json_str(stdout, d->name);
		printf(", ");
		rc_report_target_json(stdout, d->node, &res, status);
		printf(", \"note\": ");
		rc_json_str(stdout, r->note[0] ? r->note : NULL);
		json_end();
	}
}

/* --- the copies ------------------------------------------------------ */

static void copy_to(struct station *st, struct disk *d)
{
	char *argv[2 * OPTS_MAX + 8];
	pid_t pid, self = getpid();
	int argc = 0, slot, i;

	for (slot = 0; slot < (int)RC_TARGETS_MAX && st->used[slot]; slot++)
		;
	if (slot == (int)RC_TARGETS_MAX) {
		rc_err("station: %s left untouched: %d disks are being written already, the most one station writes at once",
		       d->node, (int)RC_TARGETS_MAX);
		return;
	}
	memset(&st->runs[slot], 0, sizeof st->runs[slot]);
	st->runs[slot].capture = true;
	st->runs[slot].res.status = RC_RES_PENDING;
	argv[argc++] = "ringcopy";
	for (i = 0; i < st->npopt; i++)
		argv[argc++] = st->popt[i];
	for (i = 0; i < st->ncopt; i++)
		argv[argc++] = st->copt[i];
	argv[argc++] = "--";
	argv[argc++] = (char *)st->source;
	argv[argc++] = d->node;
	argv[argc] = NULL;
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		rc_err("station: %s left untouched: cannot start its copy: %s",
		       d->node, strerror(errno));
		return;
	}
	if (pid == 0) {
		sigset_t none;

		/* The station's death (even SIGKILL) interrupts the copy. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != self)
			_exit(RC_EXIT_FAILED);
		prctl(PR_SET_NAME, "ringcopy");
		close(st->sigfd);
		close(udev_monitor_get_fd(st->mon));
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		rc_interrupted = 0;
		rc_quiet = true; /* the station says how it went */
		optind = 0;      /* a fresh getopt for the copy's options */
		rc_cmd_run(argc, argv, &st->runs[slot]);
		_exit(st->runs[slot].status);
	}
	st->used[slot] = true;
	st->running++;
	d->pid = pid;
	d->slot = slot;
	d->removed = false;
	d->announced = false;
	/* Its copy starts once the disk passed every refusal (announce). */
	rc_msg("station: %s: a new disk of %" PRIu64 " bytes that matches: checking it (pid %d)",
	       d->node, d->size, (int)pid);
}

/* Say that a copy started, once its invocation is past every refusal: a
 * disk it refuses is never said to be copied. */
static void announce(struct station *st, struct disk *d)
{
	if (!d->pid || d->announced || !st->runs[d->slot].started)
		return;
	d->announced = true;
	rc_msg("station: %s: its copy starts (pid %d)", d->node, (int)d->pid);
	if (st->json) {
		json_begin("start");
		printf("\"name\": ");
		rc_json_str(stdout, d->name);
		printf(", \"target\": ");
		rc_json_str(stdout, d->node);
		printf(", \"status\": \"copying\", \"device_bytes\": %" PRIu64 ", \"pid\": %d",
		       d->size, (int)d->pid);
		json_end();
	}
}

/* Reap every copy that ended, and report it. */
static void reap(struct station *st, bool block)
{
	int status;
	pid_t pid;
	size_t i;

	while (st->running &&
	       (pid = waitpid(-1, &status, block ? 0 : WNOHANG)) != 0) {
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (i = 0; i < st->ndisks; i++) {
			struct disk *d = &st->disks[i];

			if (d->pid != pid)
				continue;
			announce(st, d);
			if (!st->runs[d->slot].done && WIFSIGNALED(status))
				snprintf(st->runs[d->slot].res.error,
					 sizeof st->runs[d->slot].res.error,
					 "its copy was killed by signal %d",
					 WTERMSIG(status));
			report_disk(st, d);
			st->used[d->slot] = false;
			st->running--;
			d->pid = 0;
			d->size = disk_size(d->name); /* as it is now */
			break;
		}
	}
}

/* --- the uevents ----------------------------------------------------- */

static struct disk *disk_named(struct station *st, const char *name,
			       bool add)
{
	struct disk *d;
	size_t i;

	for (i = 0; i < st->ndisks; i++)
		if (!strcmp(st->disks[i].name, name))
			return &st->disks[i];
	if (!add || strlen(name) >= sizeof d->name)
		return NULL;
	if (st->ndisks == DISKS_MAX) {
		/* Forget one that is not being written. */
		for (i = 0; i < st->ndisks && st->disks[i].pid; i++)
			;
		if (i == st->ndisks)
			return NULL;
		st->disks[i] = st->disks[--st->ndisks];
	}
	d = &st->disks[st->ndisks++];
	memset(d, 0, sizeof *d);
	rc_strlcpy(d->name, name, sizeof d->name);
	return d;
}

/* The disks there before us, with their sizes: a change event for one
 * of them writes it only if its media appear later. */
static void scan_present(struct station *st)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *dir = opendir("/sys/class/block");

	while (dir && (e = readdir(dir))) {
		struct disk *d;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/sys/class/block/%s/partition",
			 e->d_name);
		if (access(path, F_OK) == 0)
			continue;
		d = disk_named(st, e->d_name, true);
		if (d)
			d->size = disk_size(e->d_name);
	}
	if (dir)
		closedir(dir);
}

static void on_uevent(struct station *st, struct udev_device *dev)
{
	const char *action = udev_device_get_action(dev);
	const char *name = udev_device_get_sysname(dev);
	const char *type = udev_device_get_devtype(dev);
	const char *node = udev_device_get_devnode(dev);
	const char *sub = udev_device_get_subsystem(dev);
	const char *why;
	struct disk *d;
	uint64_t was;

	if (!action || !name || !sub || strcmp(sub, "block") || !type ||
	    strcmp(type, "disk"))
		return;
	d = disk_named(st, name, true);
	if (!d)
		return;
	was = d->size;
	d->size = strcmp(action, "remove") ? disk_size(name) : 0;
	if (d->pid) {
		/* Being written: only its disappearance matters. */
		if (!d->size && !d->removed) {
			d->removed = true;
			rc_err("station: %s: its media went away while it was written",
			       d->node);
			if (st->json) {
				json_begin("removed");
				printf("\"name\": ");
				rc_json_str(stdout, d->name);
				printf(", \"target\": ");
				rc_json_str(stdout, d->node);
				printf(", \"status\": \"removed\"");
				json_end();
			}
		}
		return;
	}
	if (!d->size || st->stopping)
		return;
	/* Added with media, or media appeared; any other change (a re-read
	 * partition table, udevd's "change" after a close) is not a new
	 * disk. */
	if (strcmp(action, "add") && !(strcmp(action, "change") == 0 && !was))
		return;
	if (node)
		rc_strlcpy(d->node, node, sizeof d->node);
	else
		snprintf(d->node, sizeof d->node, "/dev/%s", name);
	why = unmatched(st, name);
	if (why) {
		rc_msg("station: %s (%" PRIu64 " bytes) appeared; it does not match '%s': left alone",
		       d->node, d->size, why);
		return;
	}
	copy_to(st, d);
}

/* --- the station ----------------------------------------------------- */

static int listen_uevents(struct station *st)
{
	errno = 0;
	st->udev = udev_new();
	if (st->udev)
		st->mon = udev_monitor_new_from_netlink(st->udev, "kernel");
	if (!st->mon ||
	    udev_monitor_filter_add_match_subsystem_devtype(st->mon, "block",
							    "disk") < 0 ||
	    udev_monitor_enable_receiving(st->mon) < 0) {
		rc_err("station: cannot listen to the kernel's uevents (netlink): %s; without them no disk is seen appearing",
		       errno ? strerror(errno) : "libudev failed");
		return -1;
	}
	return 0;
}

/* The station's own producer: started by serve, ended by SIGTERM (its
 * linger is "until SIGTERM"), waited for so that nothing is left behind
 * when the station exits. */
static void end_producer(struct station *st)
{
	int i;

	if (!st->created || !rc_proc_alive(st->producer, st->pstart))
		return;
	kill(st->producer, SIGTERM);
	for (i = 0; i < 6000 && rc_proc_alive(st->producer, st->pstart); i++)
		usleep(10000);
	if (rc_proc_alive(st->producer, st->pstart))
		rc_err("station: its producer (pid %d) has not left after 60 s",
		       (int)st->producer);
}

static void say_stop(struct station *st, const char *why)
{
	rc_msg("station: stopped (%s): %d written and verified, %d failed, %d interrupted, %d refused, %d read back differently",
	       why, st->nok, st->nfailed, st->ninterrupted, st->nrefused,
	       st->nmismatch);
	if (st->json) {
		json_begin("stop");
		printf("\"why\": ");
		rc_json_str(stdout, why);
		printf(", \"ok\": %d, \"failed\": %d, \"interrupted\": %d, \"refused\": %d, \"mismatch\": %d",
		       st->nok, st->nfailed, st->ninterrupted, st->nrefused,
		       st->nmismatch);
		json_end();
	}
}

static int serve_source(struct station *st)
{
	char *argv[OPTS_MAX + 4];
	struct rc_run run = { .serve = true, .capture = true };
	int argc = 0, i, rc;

	argv[argc++] = "ringcopy";
	for (i = 0; i < st->npopt; i++)
		argv[argc++] = st->popt[i];
	argv[argc++] = "--";
	argv[argc++] = (char *)st->source;
	argv[argc] = NULL;
	optind = 0;
	rc = rc_cmd_run(argc, argv, &run);
	if (rc) {
		if (run.error[0])
			rc_err("station: %s", run.error);
		return rc;
	}
	st->producer = run.producer;
	st->pstart = run.producer_start;
	st->created = run.created;
	if (run.stream) {
		rc_err("station: source %s refused: it is read once, to its end (a pipe or a stream): a disk that appears later could not join it; give an image file or a disk",
		       st->source);
		end_producer(st);
		return RC_EXIT_REFUSED;
	}
	return 0;
}

/* Said once the station serves: to the user, on standard output with
 * --json, and to a service manager. */
static void say_serving(struct station *st)
{
	char ready[PATH_MAX + 64];

	rc_msg("station: serving %s (%s producer pid %d); writing every disk that appears and matches %s%d pattern%s",
	       st->source, st->created ? "its" : "the running copy's",
	       (int)st->producer, st->nm == 1 ? "" : "all ", st->nm,
	       st->nm == 1 ? "" : "s");
	if (st->json) {
		json_begin("serving");
		printf("\"source\": ");
		rc_json_str(stdout, st->source);
		printf(", \"station_pid\": %d, \"producer_pid\": %d, \"started\": %s, \"match\": [",
		       (int)getpid(), (int)st->producer,
		       st->created ? "true" : "false");
		for (int i = 0; i < st->nm; i++) {
			printf("%s", i ? ", " : "");
			rc_json_str(stdout, st->m[i].text);
		}
		printf("]");
		json_end();
	}
	snprintf(ready, sizeof ready,
		 "station: serving %s (producer pid %d)", st->source,
		 (int)st->producer);
	rc_notify_ready(ready);
}

/* Write every disk that appears until a signal, a failed poll or the
 * producer's end stops the station: why it stopped (a failure also sets
 * *status). */
static const char *watch(struct station *st, int *status)
{
	const char *why = NULL;

	while (!why) {
		struct pollfd p[2] = {
			{ .fd = udev_monitor_get_fd(st->mon), .events = POLLIN },
			{ .fd = st->sigfd, .events = POLLIN },
		};
		struct signalfd_siginfo si;
		int n = poll(p, 2, 1000);

		if (n < 0 && errno != EINTR) {
			rc_err("station: poll: %s", strerror(errno));
			*status = RC_EXIT_FAILED;
			why = "poll failed";
			break;
		}
		while (read(st->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
			if (si.ssi_signo == SIGTERM)
				why = "SIGTERM";
			else if (si.ssi_signo == SIGINT)
				why = "SIGINT";
			else if (si.ssi_signo == SIGHUP)
				why = "SIGHUP";
		}
		if (why)
			break;
		/* Events first: a disk whose media went away is known as
		 * such when its copy's failure is reported. */
		if (p[0].revents & POLLIN) {
			while ((st->cur = udev_monitor_receive_device(st->mon))) {
				on_uevent(st, st->cur);
				st->cur = udev_device_unref(st->cur);
			}
		}
		reap(st, false);
		for (size_t i = 0; i < st->ndisks; i++)
			announce(st, &st->disks[i]);
		/* Without its producer the station has nothing to give. */
		if (!rc_proc_alive(st->producer, st->pstart)) {
			rc_err("station: the producer of %s (pid %d) is gone: stopping",
			       st->source, (int)st->producer);
			*status = RC_EXIT_FAILED;
			why = "the producer is gone";
		}
	}
	return why;
}

static int run_station(struct station *st)
{
	sigset_t set;
	int status = 0;
	const char *why = NULL;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP); /* its terminal gone: stop as cleanly */
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	st->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (st->sigfd < 0) {
		rc_err("station: signalfd: %s", strerror(errno));
		return RC_EXIT_FAILED;
	}
	if (rc_interrupted) {
		why = "interrupted while starting";
	} else {
		say_serving(st);
		why = watch(st, &status);
	}
	/* Interrupt what is in flight, and report it. */
	st->stopping = true;
	for (size_t i = 0; i < st->ndisks; i++)
		if (st->disks[i].pid)
			kill(st->disks[i].pid, SIGTERM);
	reap(st, true);
	end_producer(st);
	say_stop(st, why);
	close(st->sigfd);
	if (status)
		return status;
	if (st->nmismatch)
		return RC_EXIT_MISMATCH;
	if (st->nfailed || st->ninterrupted || st->nrefused)
		return RC_EXIT_FAILED;
	return RC_EXIT_OK;
}

int rc_cmd_station(int argc, char **argv)
{
	struct station *st = calloc(1, sizeof *st);
	int rc;

	if (!st) {
		rc_err("station: out of memory");
		return RC_EXIT_FAILED;
	}
	st->sigfd = -1;
	rc = parse_station(argc, argv, st);
	if (rc >= 0)
		goto out;
	st->runs = mmap(NULL, sizeof *st->runs * RC_TARGETS_MAX,
			PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
			0);
	if (st->runs == MAP_FAILED) {
		st->runs = NULL;
		rc_err("station: out of memory");
		rc = RC_EXIT_REFUSED;
		goto out;
	}
	/* Listening before serving: a station that cannot see disks
	 * appear starts nothing.  Then the disks already there. */
	if (listen_uevents(st) < 0) {
		rc = RC_EXIT_REFUSED;
		goto out;
	}
	scan_present(st);
	rc = serve_source(st);
	/* Named once its producer is forked (which keeps the name it has). */
	prctl(PR_SET_NAME, STATION_COMM);
	if (rc == 0)
		rc = run_station(st);
out:
	if (st->mon)
		udev_monitor_unref(st->mon);
	if (st->udev)
		udev_unref(st->udev);
	if (st->runs)
		munmap(st->runs, sizeof *st->runs * RC_TARGETS_MAX);
	free(st);
	return rc;
}
