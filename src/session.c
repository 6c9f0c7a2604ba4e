/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the run directory, rendezvous files and role election.
 *
 * An invocation finds the ring of its source through a rendezvous file
 * named from the source's identity and held with flock(LOCK_EX) while it
 * decides: a live, valid ring of this user means join; anything else means
 * create a ring and fork its producer.  The lock makes the election
 * race-free; the producer takes the same lock to remove the file, so a
 * joiner never attaches to a ring that is being torn down without seeing
 * its CLOSING state first.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ringcopy/core.h"
#include "ringcopy/util.h"

#define RDV_TAG "ringcopy-rendezvous 1"

int rc_rdv_name(const struct rc_source_id *id, char *buf, size_t len)
{
	int n;

	switch (id->kind) {
	case RC_SRC_FILE:
		n = snprintf(buf, len, "file-%" PRIx64 "-%" PRIx64, id->id0,
			     id->id1);
		break;
	case RC_SRC_BLOCK:
		n = snprintf(buf, len, "blk-%u-%u", major(id->id0),
			     minor(id->id0));
		break;
	case RC_SRC_PIPE:
		n = snprintf(buf, len, "pipe-%" PRIx64 "-%" PRIx64, id->id0,
			     id->id1);
		break;
	case RC_SRC_DECODED:
		n = snprintf(buf, len, "zst-%" PRIx64 "-%" PRIx64, id->id0,
			     id->id1);
		break;
	case RC_SRC_URI:
		n = snprintf(buf, len, "uri-%016" PRIx64 "%016" PRIx64, id->id0,
			     id->id1);
		break;
	default:
		return -EINVAL;
	}
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* Why a run directory is refused, in one place: each reason's words. */
enum rundir_why {
	RUNDIR_NOT_DIR,         /* a symlink, or not a directory */
	RUNDIR_NOT_PRIVATE,     /* not ours, or open to others */
	RUNDIR_PARENT_FOREIGN,  /* a parent another user owns */
	RUNDIR_PARENT_WRITABLE, /* a parent others may rename entries in */
};

static int rundir_refused(char *err, size_t errlen, const char *dir,
			  enum rundir_why why, const char *parent,
			  const struct stat *st)
{
	switch (why) {
	case RUNDIR_NOT_DIR:
		snprintf(err, errlen,
			 "run directory %s refused: it is not a directory (a symlink?)",
			 dir);
		break;
	case RUNDIR_NOT_PRIVATE:
		/* Made by a plain mkdir (0755): ours, and one chmod away. */
		snprintf(err, errlen,
			 "run directory %s refused: owned by uid %u with mode %03o, want uid %u and 0700%s%s",
			 dir, (unsigned)st->st_uid,
			 (unsigned)(st->st_mode & 0777), (unsigned)geteuid(),
			 st->st_uid == geteuid() ? ": chmod 700 " : "",
			 st->st_uid == geteuid() ? dir : "");
		break;
	case RUNDIR_PARENT_FOREIGN:
		snprintf(err, errlen,
			 "run directory %s refused: its parent %s is owned by uid %u, another user, who could swap the run directory for a symlink: give a run directory whose parents only you or root own",
			 dir, parent, (unsigned)st->st_uid);
		break;
	case RUNDIR_PARENT_WRITABLE:
		snprintf(err, errlen,
			 "run directory %s refused: its parent %s (mode %04o) is writable by other users, who could swap the run directory for a symlink: give a run directory whose parents only you or root can write (or sticky ones, as /tmp)",
			 dir, parent, (unsigned)(st->st_mode & 07777));
		break;
	}
	return -EPERM;
}

/* May another user rename child (its stat) in parent (its stat)?  The
 * owner of parent may, unless that is us or root; anyone who may write
 * parent may, unless it is sticky (as /tmp) and child is ours or root's
 * (then only they and parent's owner may). */
static int parent_unsafe(const struct stat *parent, const struct stat *child)
{
	uid_t me = geteuid();

	if (parent->st_uid != me && parent->st_uid != 0)
		return RUNDIR_PARENT_FOREIGN;
	if (!(parent->st_mode & (S_IWGRP | S_IWOTH)))
		return 0;
	if ((parent->st_mode & S_ISVTX) &&
	    (child->st_uid == me || child->st_uid == 0))
		return 0;
	return RUNDIR_PARENT_WRITABLE;
}

/* The path as it was given, before any link in it is resolved: no
 * directory along it may let another user rename or plant what the next
 * name finds (a symbolic link of theirs to a directory of their choice,
 * which resolving the path first would follow).  Each directory is
 * checked by the rule parent_unsafe() applies to the resolved walk; once
 * every directory along the name is ours or root's and safe, nobody else
 * can change what the name reaches.  0, or -EPERM with err. */
static int given_path_safe(const char *path, char *err, size_t errlen)
{
	char cur[PATH_MAX], copy[PATH_MAX], *comp, *save;
	struct stat dst, cst;
	int why;

	rc_strlcpy(copy, path, sizeof copy);
	rc_strlcpy(cur, path[0] == '/' ? "/" : ".", sizeof cur);
	for (comp = strtok_r(copy, "/", &save); comp;
	     comp = strtok_r(NULL, "/", &save)) {
		size_t n = strlen(cur);

		if (!strcmp(comp, "."))
			continue;
		if (stat(cur, &dst) < 0)
			return 0; /* the walk that follows says why */
		if (n + strlen(comp) + 2 > sizeof cur)
			return 0;
		snprintf(cur + n, sizeof cur - n, "%s%s",
			 cur[n - 1] == '/' ? "" : "/", comp);
		if (lstat(cur, &cst) < 0)
			return 0; /* missing from here on: made by us */
		why = parent_unsafe(&dst, &cst);
		if (why) {
			cur[n] = '\0';
			return rundir_refused(err, errlen, path, why, cur, &dst);
		}
	}
	return 0;
}

/* Where the run directory is: its path in buf.  0, or -errno with err. */
static int rundir_path(char *buf, size_t len, char *err, size_t errlen)
{
	const char *env = getenv("RINGCOPY_RUNDIR");
	int n;

	if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "/run/ringcopy");
	else if ((env = getenv("XDG_RUNTIME_DIR")) && *env)
		n = snprintf(buf, len, "%s/ringcopy", env);
	else {
		snprintf(err, errlen,
			 "no run directory: set XDG_RUNTIME_DIR or RINGCOPY_RUNDIR");
		return -ENXIO;
	}
	if (n < 0 || (size_t)n >= len) {
		snprintf(err, errlen, "run directory path too long");
		return -ENAMETOOLONG;
	}
	return 0;
}

/* The run directory buf split into its parent's real path (parent) and
 * its own name (name): the parents by their real names (a symlink among
 * them, such as /var/run, is followed once, here); the run directory
 * itself is never a symlink.  parent and name hold PATH_MAX bytes.  0,
 * or -errno with err. */
static int rundir_split(const char *buf, bool create, char *parent,
			char *name, char *err, size_t errlen)
{
	char walk[PATH_MAX], *slash, *base;
	int rc;

	rc_strlcpy(walk, buf, sizeof walk);
	while ((slash = strrchr(walk, '/')) && slash != walk && !slash[1])
		*slash = '\0'; /* trailing slashes */
	slash = strrchr(walk, '/');
	base = slash ? slash + 1 : walk;
	if ((!strcmp(base, ".") || !strcmp(base, "..")) &&
	    realpath(walk, parent)) {
		/* "." or "..": the directory it is, by its real name. */
		rc_strlcpy(walk, parent, sizeof walk);
		slash = strrchr(walk, '/');
		base = slash + 1;
	}
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		snprintf(err, errlen,
			 "run directory %s refused: name the directory itself",
			 buf);
		return -EINVAL;
	}
	/* Its own copy: walk is cut at the slash below. */
	rc_strlcpy(name, base, PATH_MAX);
	if (slash == walk)
		rc_strlcpy(parent, "/", PATH_MAX);
	else if (slash) {
		*slash = '\0';
		if (!realpath(walk, parent)) {
			rc = -errno;
			if (rc == -ENOENT && !create) {
				snprintf(err, errlen,
					 "run directory %s does not exist", buf);
				return rc;
			}
			/* Its parent is missing: mkdir's words, as the dry
			 * run says them. */
			if (rc == -ENOENT)
				snprintf(err, errlen, "run directory %s: mkdir: %s",
					 buf, strerror(-rc));
			else
				snprintf(err, errlen, "run directory %s: %s: %s",
					 buf, walk, strerror(-rc));
			return rc;
		}
	} else if (!getcwd(parent, PATH_MAX)) {
		rc = -errno;
		snprintf(err, errlen, "run directory %s: getcwd: %s", buf,
			 strerror(-rc));
		return rc;
	}
	return 0;
}

/* Open the run directory buf, name in parent (rundir_split's), from the
 * root down: every step is opened under the one before it, without
 * following a link, and checked on its descriptor; nothing is looked up
 * by path again.  Its descriptor, or -errno with err. */
static int rundir_walk(const char *buf, char *parent, const char *name,
		       bool create, char *err, size_t errlen)
{
	char walk[PATH_MAX], *comp, *save;
	struct stat pst, st;
	int pfd, fd, rc;

	pfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0 || fstat(pfd, &pst) < 0) {
		rc = -errno;
		snprintf(err, errlen, "run directory %s: /: %s", buf,
			 strerror(-rc));
		if (pfd >= 0)
			close(pfd);
		return rc;
	}
	rc_strlcpy(walk, "/", sizeof walk);
	for (comp = strtok_r(parent, "/", &save);; comp = strtok_r(NULL, "/", &save)) {
		const char *c = comp ? comp : name;
		bool last = !comp;

		if (last && create && mkdirat(pfd, c, 0700) < 0 &&
		    errno != EEXIST) {
			rc = -errno;
			snprintf(err, errlen, "run directory %s: mkdir: %s",
				 buf, strerror(-rc));
			break;
		}
		fd = openat(pfd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					    O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			if (rc == -ENOENT && !create)
				snprintf(err, errlen,
					 "run directory %s does not exist", buf);
			else if (last && (rc == -ELOOP || rc == -ENOTDIR))
				rc = rundir_refused(err, errlen, buf,
						    RUNDIR_NOT_DIR, NULL, NULL);
			else
				snprintf(err, errlen, "run directory %s: %s%s%s: %s",
					 buf, walk, strcmp(walk, "/") ? "/" : "",
					 c, strerror(-rc));
			break;
		}
		if (fstat(fd, &st) < 0) {
			rc = -errno;
			snprintf(err, errlen, "run directory %s: %s", buf,
				 strerror(-rc));
			close(fd);
			break;
		}
		/* Who may rename what we just opened: checked on the
		 * descriptors, so the check and the use are one object. */
		rc = parent_unsafe(&pst, &st);
		if (rc) {
			rc = rundir_refused(err, errlen, buf, rc, walk, &pst);
			close(fd);
			break;
		}
		if (last) {
			if (st.st_uid != geteuid() || (st.st_mode & 0077)) {
				rc = rundir_refused(err, errlen, buf,
						    RUNDIR_NOT_PRIVATE, NULL,
						    &st);
				close(fd);
				break;
			}
			close(pfd);
			return fd;
		}
		if (strlen(walk) + strlen(c) + 2 < sizeof walk) {
			if (strcmp(walk, "/"))
				strcat(walk, "/");
			strcat(walk, c);
		}
		close(pfd);
		pfd = fd;
		pst = st;
	}
	close(pfd);
	return rc;
}

int rc_rundir_open(char *buf, size_t len, bool create, char *err,
		   size_t errlen)
{
	char parent[PATH_MAX], name[PATH_MAX];
	int rc;

	rc = rundir_path(buf, len, err, errlen);
	if (rc < 0)
		return rc;
	rc = given_path_safe(buf, err, errlen);
	if (rc < 0)
		return rc;
	rc = rundir_split(buf, create, parent, name, err, errlen);
	if (rc < 0)
		return rc;
	return rundir_walk(buf, parent, name, create, err, errlen);
}

int rc_rundir(char *buf, size_t len, bool create, char *err, size_t errlen)
{
	int fd = rc_rundir_open(buf, len, create, err, errlen);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

/* Open the rendezvous file name in the run directory dirfd (path names it
 * in messages), creating it, and lock it.  Retries when the file it
 * locked was unlinked or replaced meanwhile. */
static int rdv_open_locked(int dirfd, const char *name, const char *path,
			   char *err, size_t errlen)
{
	int tries;

	for (tries = 0; tries < 100; tries++) {
		struct stat fst, pst;
		int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW |
						     O_CLOEXEC | O_NOCTTY,
				0600);

		if (fd < 0) {
			snprintf(err, errlen, "rendezvous file %s: %s%s", path,
				 strerror(errno),
				 errno == ELOOP ? " (a symlink: refused)" : "");
			return -errno;
		}
		if (flock(fd, LOCK_EX) < 0) {
			int e = errno;

			close(fd);
			if (e == EINTR && !rc_interrupted)
				continue;
			snprintf(err, errlen, "rendezvous file %s: flock: %s",
				 path, strerror(e));
			return -e;
		}
		if (fstat(fd, &fst) < 0 ||
		    fstatat(dirfd, name, &pst, AT_SYMLINK_NOFOLLOW) < 0 ||
		    fst.st_ino != pst.st_ino || fst.st_dev != pst.st_dev) {
			close(fd); /* removed or replaced under us */
			continue;
		}
		if (!S_ISREG(fst.st_mode) || fst.st_uid != geteuid() ||
		    (fst.st_mode & 0077)) {
			close(fd);
			snprintf(err, errlen,
				 "rendezvous file %s refused: not a private regular file of uid %u",
				 path, (unsigned)geteuid());
			return -EPERM;
		}
		return fd;
	}
	snprintf(err, errlen, "rendezvous file %s keeps changing", path);
	return -EAGAIN;
}

int rc_rdv_read(int fd, int *shmid, int *semid)
{
	char buf[128];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	char tail;

	if (n <= 0)
		return -ENOENT;
	buf[n] = '\0';
	if (sscanf(buf, RDV_TAG " %d %d%c", shmid, semid, &tail) != 3 ||
	    tail != '\n' || *shmid < 0 || *semid < 0)
		return -EINVAL;
	return 0;
}

static int rdv_write(int fd, int shmid, int semid)
{
	char buf[128];
	int n = snprintf(buf, sizeof buf, RDV_TAG " %d %d\n", shmid, semid);

	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
		return -errno;
	return 0;
}

void rc_rdv_remove_if_ours(const struct rc_rdv *rdv, int shmid, int semid)
{
	struct stat fst, pst;
	int fd, a, b;

	if (!rdv || rdv->dirfd < 0)
		return;
	fd = openat(rdv->dirfd, rdv->name,
		    O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return;
	/* Blocks while an invocation decides; it may replace our ring. */
	while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
		;
	if (fstat(fd, &fst) == 0 &&
	    fstatat(rdv->dirfd, rdv->name, &pst, AT_SYMLINK_NOFOLLOW) == 0 &&
	    fst.st_ino == pst.st_ino && fst.st_dev == pst.st_dev &&
	    fst.st_uid == geteuid() && rc_rdv_read(fd, &a, &b) == 0 &&
	    a == shmid && b == semid)
		unlinkat(rdv->dirfd, rdv->name, 0);
	close(fd);
}

/* Register the request's targets (LOCK held). */
static int register_targets(struct rc_ring *r, const struct rc_join_req *req,
			    struct rc_join *out, char *err, size_t errlen)
{
	uint32_t k;
	int rc = rc_proto_register_held(r, req->ntargets, req->targets,
					req->sequential, req->held, out->reg,
					&out->read_before);

	if (rc < 0) {
		rc_strlcpy(err, r->why, errlen);
		return rc == -EPROTO ? -EIO : rc;
	}
	for (k = 0; k < req->ntargets; k++)
		out->first_seq[k] = out->reg[k].first;
	return 0;
}

/* Is the attached ring live and the one of this source? */
static bool ring_joinable(struct rc_ring *r, const struct rc_join_req *req)
{
	const struct rc_ring_hdr *h = r->hdr;

	return h->state == RC_RING_RUNNING && h->src_kind == req->id.kind &&
	       h->src_id0 == req->id.id0 && h->src_id1 == req->id.id1 &&
	       rc_proto_producer_alive(r);
}

/* What a running copy cannot give this request: 0, or -errno with err
 * saying why (the election refuses it; --dry-run predicts it). */
static int join_refusal(const struct rc_ring *r, const struct rc_join_req *req,
			char *err, size_t errlen)
{
	struct stat st;
	int rc = 0;

	if (req->id.kind == RC_SRC_PIPE && req->source_fd >= 0 &&
	    fstat(req->source_fd, &st) == 0 && S_ISREG(st.st_mode)) {
		/* A file read once: compressed in a format that does not
		 * say its size (gzip, bzip2, lz4). */
		snprintf(err, errlen,
			 "the source is a compressed file that does not say its image's size, so it is decompressed in one pass, to its end, and another copy is reading that pass: a late copy could not get its earlier blocks; start it when that copy has ended, or decompress the file first");
		rc = -EINVAL;
	} else if (req->id.kind == RC_SRC_PIPE) {
		snprintf(err, errlen,
			 "the source is read once (a pipe, or standard input) and another copy is reading it: a late copy could not get its earlier blocks");
		rc = -EINVAL;
	} else if (req->block_size_set && req->block_size != r->block_size) {
		snprintf(err, errlen,
			 "--block-size %u conflicts with the running copy of this source (block size %u): omit it to join",
			 req->block_size, r->block_size);
		rc = -EINVAL;
	} else if (r->image_size != req->image_size && req->size_set) {
		snprintf(err, errlen,
			 "--size %llu conflicts with the running copy of this source (image of %llu bytes): omit it to join",
			 (unsigned long long)req->image_size,
			 (unsigned long long)r->image_size);
		rc = -EINVAL;
	} else if (r->image_size != req->image_size) {
		snprintf(err, errlen,
			 "the running copy of this source has an image of %llu bytes, the source now has %llu: source changed",
			 (unsigned long long)r->image_size,
			 (unsigned long long)req->image_size);
		rc = -ESTALE;
	} else {
		/* A full consumer table: register would say the same
		 * (under the same lock), and --dry-run predicts it. */
		uint32_t k = rc_proto_free_entries(r);

		if (k < req->ntargets) {
			snprintf(err, errlen,
				 "ring (shm %d, sem %d): it has room for %u more consumers, %u asked (capacity %u)",
				 r->shmid, r->semid, k, req->ntargets,
				 r->ncons);
			rc = -EBUSY;
		}
	}
	return rc;
}

static int try_join(int shmid, int semid, const struct rc_join_req *req,
		    struct rc_join *out, char *err, size_t errlen)
{
	struct rc_ring *r = &out->ring;
	char why[256];
	struct shmid_ds ds;
	bool stale;
	int rc;

	rc = rc_ring_attach(shmid, semid, r, why, sizeof why);
	if (rc < 0) {
		if (rc == -EPERM || rc == -EINVAL)
			rc_msg("not joining: %s", why);
		return 1; /* gone or foreign: create a new ring */
	}
	rc = rc_proto_lock(r);
	if (rc == -EINTR) {
		rc_strlcpy(err, r->why, errlen);
		rc_ring_detach(r);
		return rc;
	}
	if (rc < 0) {
		/* Broken: its producer aborts it too.  A new ring serves
		 * us meanwhile. */
		rc_msg("not joining: %s", r->why);
		rc_ring_detach(r);
		return 1;
	}
	if (!ring_joinable(r, req)) {
		stale = r->hdr->state != RC_RING_CLOSING &&
			rc_proto_producer_gone(r);
		rc_proto_unlock(r);
		/* A dead producer's ring that nobody else has attached: ours
		 * to remove.  A closing one is removed by its producer. */
		if (stale && shmctl(shmid, IPC_STAT, &ds) == 0 &&
		    ds.shm_nattch == 1) {
			rc_msg("removed the stale ring of a dead producer (shm %d, sem %d)",
			       shmid, semid);
			rc_ring_remove(r);
		} else {
			rc_ring_detach(r);
		}
		return 1;
	}
	/* What the running copy cannot give: refuse, and say why. */
	rc = join_refusal(r, req, err, errlen);
	if (rc == 0)
		rc = register_targets(r, req, out, err, errlen);
	rc_proto_unlock(r);
	if (rc < 0) {
		rc_ring_detach(r);
		return rc;
	}
	if (req->buffer_size_set &&
	    req->buffer_size != (uint64_t)r->nslots * r->block_size)
		rc_msg("joining a ring of %u slots of %u bytes: --buffer ignored",
		       r->nslots, r->block_size);
	if (req->rate_set && req->rate != r->rate)
		rc_msg("joining a running copy: its read rate stays as it is, --rate ignored");
	out->created = false;
	return 0;
}

static int check_limits(struct rc_ring_params *p, uint32_t ntargets,
			char *err, size_t errlen);

int rc_peek(const struct rc_join_req *req, struct rc_peek *out)
{
	char dir[PATH_MAX - 64], name[64];
	struct rc_ring_params p;
	struct rc_ring r;
	int dfd, fd, rc, shmid, semid;

	memset(out, 0, sizeof *out);
	/* Nothing is created: not the run directory, not the file.  A run
	 * directory that does not exist yet is made by the real run. */
	dfd = rc_rundir_open(dir, sizeof dir, false, out->why,
			     sizeof out->why);
	if (dfd == -ENOENT) {
		/* The real run makes it with mkdir: its parent must be a
		 * directory we may write (the same words as mkdir's). */
		char parent[PATH_MAX];
		struct stat st;
		int e = 0;

		rc_strlcpy(parent, dir, sizeof parent);
		if (stat(dirname(parent), &st) < 0)
			e = errno;
		else if (!S_ISDIR(st.st_mode))
			e = ENOTDIR;
		else if (access(parent, W_OK | X_OK) < 0)
			e = errno;
		out->why[0] = '\0';
		if (e) {
			snprintf(out->why, sizeof out->why,
				 "run directory %.*s: mkdir: %s",
				 (int)sizeof out->why - 64, dir, strerror(e));
			out->refused = -e;
			return 0;
		}
		goto new_ring;
	}
	rc = dfd;
	if (dfd < 0 || (rc = rc_rdv_name(&req->id, name, sizeof name)) < 0) {
		if (!out->why[0])
			snprintf(out->why, sizeof out->why,
				 "cannot name the rendezvous file");
		out->refused = rc;
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	close(dfd);
	if (fd < 0)
		goto new_ring;
	if (rc_rdv_read(fd, &shmid, &semid) == 0 &&
	    rc_ring_attach(shmid, semid, &r, out->why, sizeof out->why) == 0) {
		if (rc_proto_lock(&r) == 0) {
			out->live = ring_joinable(&r, req);
			out->next_block = rc_seq_block(r.hdr->next_seq, r.nblocks);
			out->nblocks = r.nblocks;
			out->block_size = r.block_size;
			out->producer = r.hdr->producer_pid;
			if (out->live)
				out->refused = join_refusal(&r, req, out->why,
							    sizeof out->why);
			rc_proto_unlock(&r);
		}
		rc_ring_detach(&r);
	}
	if (!out->refused)
		out->why[0] = '\0';
	close(fd);
	if (out->live)
		return 0;
new_ring:
	if (!req->block_size || !req->image_size)
		return 0; /* asked only whether a ring runs */
	memset(&p, 0, sizeof p);
	p.image_size = req->image_size;
	p.block_size = req->block_size;
	p.buffer_size = req->buffer_size;
	out->refused = check_limits(&p, req->ntargets, out->why,
				    sizeof out->why);
	return 0;
}

/* Say which sysctl to raise before shmget fails with a bare EINVAL. */
static int check_shm_limits(const struct rc_ring_params *p,
			    const struct rc_ipc_limits *lim, char *err,
			    size_t errlen)
{
	uint64_t nblocks, nslots, pages;
	struct rc_layout l;

	rc_ring_geometry(p, &nblocks, &nslots);
	if (rc_ring_layout(p->block_size, (uint32_t)nslots, p->ncons, &l) < 0)
		return 0; /* rc_ring_create says why */
	if (l.seg_size > lim->shmmax) {
		snprintf(err, errlen,
			 "the ring needs %llu bytes of shared memory, kernel.shmmax allows %llu: raise kernel.shmmax or use a smaller --buffer",
			 (unsigned long long)l.seg_size,
			 (unsigned long long)lim->shmmax);
		return -ENOSPC;
	}
	pages = (l.seg_size + 4095) / 4096;
	if (pages > lim->shmall_pages) {
		snprintf(err, errlen,
			 "the ring needs %llu pages of shared memory, kernel.shmall allows %llu in all: raise kernel.shmall or use a smaller --buffer",
			 (unsigned long long)pages,
			 (unsigned long long)lim->shmall_pages);
		return -ENOSPC;
	}
	return 0;
}

/* The kernel limits a new ring must fit in: p->ncons is set to what they
 * allow.  0, or -ENOSPC with err naming the sysctl to raise. */
static int check_limits(struct rc_ring_params *p, uint32_t ntargets,
			char *err, size_t errlen)
{
	struct rc_ipc_limits lim;
	uint32_t cap;

	if (rc_ipc_limits(&lim) < 0)
		return 0; /* unknown: shmget/semget say */
	cap = rc_ipc_cons_capacity(&lim);
	if (cap < ntargets) {
		snprintf(err, errlen,
			 "kernel.sem allows %u consumer%s per ring (SEMOPM %ld, SEMMSL %ld), %u target%s asked: raise them in kernel.sem",
			 cap, cap == 1 ? "" : "s", lim.semopm, lim.semmsl,
			 ntargets, ntargets == 1 ? "" : "s");
		return -ENOSPC;
	}
	p->ncons = cap;
	return check_shm_limits(p, &lim, err, errlen);
}

int rc_elect(const struct rc_join_req *req, struct rc_join *out, char *err,
	     size_t errlen)
{
	struct rc_ring_params p;
	char dir[PATH_MAX - 64], path[PATH_MAX], src_abs[PATH_MAX];
	struct rc_rdv *rdv = &out->rdv;
	int fd, rc, shmid, semid;

	memset(out, 0, sizeof *out);
	out->rdv_fd = -1;
	rdv->dirfd = rc_rundir_open(dir, sizeof dir, true, err, errlen);
	if (rdv->dirfd < 0)
		return rdv->dirfd;
	rc = rc_rdv_name(&req->id, rdv->name, sizeof rdv->name);
	if (rc < 0) {
		snprintf(err, errlen, "cannot name the rendezvous file");
		rc_elect_close(out);
		return rc;
	}
	snprintf(path, sizeof path, "%s/%s", dir, rdv->name);
	rc_strlcpy(out->rdv_path, path, sizeof out->rdv_path);
	fd = rdv_open_locked(rdv->dirfd, rdv->name, path, err, errlen);
	if (fd < 0) {
		rc_elect_close(out);
		return fd;
	}
	if (rc_rdv_read(fd, &shmid, &semid) == 0) {
		rc = try_join(shmid, semid, req, out, err, errlen);
		if (rc < 0) {
			close(fd); /* releases the lock */
			rc_elect_close(out);
			return rc;
		}
		if (rc == 0) {
			out->rdv_fd = fd;
			return 0;
		}
	}

	memset(&p, 0, sizeof p);
	p.src_kind = req->id.kind;
	p.src_id0 = req->id.id0;
	p.src_id1 = req->id.id1;
	p.image_size = req->image_size;
	p.block_size = req->block_size;
	p.buffer_size = req->buffer_size;
	p.ncons = RC_TARGETS_MAX;
	p.rate = req->rate;
	p.stall_ms = req->stall_ms;
	p.rescue = req->rescue;
	p.linger_ms = req->linger_ms;
	p.start_block = req->start_block;
	p.need_map = req->need_map;
	/* The source as status shows it: absolute where it is a path. */
	if (!req->source || !realpath(req->source->path, src_abs))
		rc_strlcpy(src_abs, req->source ? req->source->spec : "",
			   sizeof src_abs);
	p.src_name = src_abs;
	rc = check_limits(&p, req->ntargets, err, errlen);
	if (rc < 0)
		goto unlink_out;
	rc = rc_ring_create(&p, &out->ring, err, errlen);
	if (rc < 0)
		goto unlink_out;
	/* Nobody else can see the ring yet: the lock is a formality that
	 * keeps rc_proto_register's contract. */
	rc = rc_proto_lock(&out->ring);
	if (rc < 0) {
		rc_strlcpy(err, out->ring.why, errlen);
	} else {
		rc = register_targets(&out->ring, req, out, err, errlen);
		rc_proto_unlock(&out->ring);
	}
	if (rc == 0) {
		rc = rdv_write(fd, out->ring.shmid, out->ring.semid);
		if (rc < 0)
			snprintf(err, errlen, "rendezvous file %s: write: %s",
				 path, strerror(-rc));
	}
	if (rc < 0) {
		rc_ring_remove(&out->ring);
		goto unlink_out;
	}
	out->created = true;
	out->rdv_fd = fd;
	return 0;
unlink_out:
	unlinkat(rdv->dirfd, rdv->name, 0);
	close(fd);
	rc_elect_close(out);
	return rc;
}

void rc_elect_release(struct rc_join *j)
{
	if (j->rdv_fd >= 0)
		close(j->rdv_fd); /* releases the lock */
	j->rdv_fd = -1;
}

void rc_elect_undo(struct rc_join *j)
{
	rc_ring_remove(&j->ring);
	if (j->rdv_fd >= 0 && j->rdv.dirfd >= 0)
		unlinkat(j->rdv.dirfd, j->rdv.name, 0);
	rc_elect_release(j);
}

void rc_elect_close(struct rc_join *j)
{
	if (j->rdv.dirfd >= 0)
		close(j->rdv.dirfd);
	j->rdv.dirfd = -1;
}
