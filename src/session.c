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

int rc_rundir(char *buf, size_t len, bool create, char *err, size_t errlen)
{
	const char *env = getenv("RINGCOPY_RUNDIR");
	struct stat st;
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
	if (!create && access(buf, F_OK) < 0 && errno == ENOENT) {
		snprintf(err, errlen, "run directory %s does not exist", buf);
		return -ENOENT;
	}
	if (create && mkdir(buf, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "run directory %s: mkdir: %s", buf,
			 strerror(errno));
		return -errno;
	}
	if (lstat(buf, &st) < 0) {
		snprintf(err, errlen, "run directory %s: %s", buf,
			 strerror(errno));
		return -errno;
	}
	if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen,
			 "run directory %s refused: it is not a directory (a symlink?)",
			 buf);
		return -EPERM;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 0077)) {
		snprintf(err, errlen,
			 "run directory %s refused: owned by uid %u with mode %03o, want uid %u and 0700",
			 buf, (unsigned)st.st_uid,
			 (unsigned)(st.st_mode & 0777), (unsigned)geteuid());
		return -EPERM;
	}
	return 0;
}

/* Open the rendezvous file at path, creating it, and lock it.  Retries
 * when the file it locked was unlinked or replaced meanwhile. */
static int rdv_open_locked(const char *path, char *err, size_t errlen)
{
	int tries;

	for (tries = 0; tries < 100; tries++) {
		struct stat fst, pst;
		int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
					    O_NOCTTY,
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
		if (fstat(fd, &fst) < 0 || lstat(path, &pst) < 0 ||
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

void rc_rdv_remove_if_ours(const char *path, int shmid, int semid)
{
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	struct stat fst, pst;
	int a, b;

	if (fd < 0)
		return;
	/* Blocks while an invocation decides; it may replace our ring. */
	while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
		;
	if (fstat(fd, &fst) == 0 && lstat(path, &pst) == 0 &&
	    fst.st_ino == pst.st_ino && fst.st_dev == pst.st_dev &&
	    fst.st_uid == geteuid() && rc_rdv_read(fd, &a, &b) == 0 &&
	    a == shmid && b == semid)
		unlink(path);
	close(fd);
}

/* Register the request's targets (LOCK held). */
static int register_targets(struct rc_ring *r, const struct rc_join_req *req,
			    struct rc_join *out, char *err, size_t errlen)
{
	uint32_t k;
	int rc = rc_proto_register(r, req->ntargets, req->targets,
				   req->sequential, out->reg,
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
	int rc = 0;

	if (req->id.kind == RC_SRC_PIPE) {
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
	char dir[PATH_MAX - 64], name[64], path[PATH_MAX];
	struct rc_ring_params p;
	struct rc_ring r;
	int fd, rc, shmid, semid;

	memset(out, 0, sizeof *out);
	/* Nothing is created: not the run directory, not the file.  A run
	 * directory that does not exist yet is made by the real run. */
	rc = rc_rundir(dir, sizeof dir, false, out->why, sizeof out->why);
	if (rc == -ENOENT) {
		out->why[0] = '\0';
		goto new_ring;
	}
	if (rc < 0 || (rc = rc_rdv_name(&req->id, name, sizeof name)) < 0) {
		if (!out->why[0])
			snprintf(out->why, sizeof out->why,
				 "cannot name the rendezvous file");
		out->refused = rc;
		return 0;
	}
	snprintf(path, sizeof path, "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
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
	char dir[PATH_MAX - 64], name[64], path[PATH_MAX], src_abs[PATH_MAX];
	int fd, rc, shmid, semid;

	memset(out, 0, sizeof *out);
	out->rdv_fd = -1;
	rc = rc_rundir(dir, sizeof dir, true, err, errlen);
	if (rc < 0)
		return rc;
	rc = rc_rdv_name(&req->id, name, sizeof name);
	if (rc < 0) {
		snprintf(err, errlen, "cannot name the rendezvous file");
		return rc;
	}
	snprintf(path, sizeof path, "%s/%s", dir, name);
	rc_strlcpy(out->rdv_path, path, sizeof out->rdv_path);
	fd = rdv_open_locked(path, err, errlen);
	if (fd < 0)
		return fd;
	if (rc_rdv_read(fd, &shmid, &semid) == 0) {
		rc = try_join(shmid, semid, req, out, err, errlen);
		if (rc < 0) {
			close(fd); /* releases the lock */
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
	unlink(path);
	close(fd);
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
	if (j->rdv_fd >= 0)
		unlink(j->rdv_path);
	rc_elect_release(j);
}
