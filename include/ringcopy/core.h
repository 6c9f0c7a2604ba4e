/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the core: election, producer, consumer, results. */
#ifndef RINGCOPY_CORE_H
#define RINGCOPY_CORE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ringcopy/backend.h"
#include "ringcopy/ring.h"
#include "ringcopy/ringproto.h"

/* "file-<dev>-<ino>", "blk-<major>-<minor>", "zst-<dev>-<ino>", ... from
 * a source's identity (backend.h); returns -ENAMETOOLONG if
 * it does not fit. */
int rc_rdv_name(const struct rc_source_id *id, char *buf, size_t len);

/* The run directory: RINGCOPY_RUNDIR, /run/ringcopy for root, otherwise
 * $XDG_RUNTIME_DIR/ringcopy.  Created 0700; refused when it is a symlink,
 * not a directory, not ours, or open to others, or when another user
 * could rename it or a parent of it (a parent that user owns, or may
 * write and is not sticky as /tmp is).  rc_rundir_open returns it held
 * open (walked from / component by component with O_NOFOLLOW, checked on
 * its descriptors), or -errno with err: everything in it is reached
 * through that descriptor, never by its path again.  buf gets its path,
 * for messages.  rc_rundir checks it and closes it. */
int rc_rundir_open(char *buf, size_t len, bool create, char *err,
		   size_t errlen);
int rc_rundir(char *buf, size_t len, bool create, char *err, size_t errlen);

/* A rendezvous file: the run directory held open, and the file's name in
 * it. */
struct rc_rdv {
	int dirfd;      /* rc_rundir_open's descriptor, or -1 */
	char name[64];  /* rc_rdv_name */
};
/* Parse a rendezvous file's content: 0, or -ENOENT/-EINVAL. */
int rc_rdv_read(int fd, int *shmid, int *semid);

/* What an invocation asks of the election. */
struct rc_join_req {
	struct rc_source_id id;
	uint64_t image_size;
	bool size_set;              /* image_size given with --size */
	uint32_t block_size;
	bool block_size_set;
	uint64_t buffer_size;
	bool buffer_size_set;
	uint64_t rate;
	bool rate_set;
	uint32_t ntargets;
	const char *const *targets; /* names for the consumer table */
	const bool *sequential;     /* per target: starts at a pass's block 0 */
	int source_fd;              /* kept open by a forked producer */
	struct rc_dev *source;      /* read by a forked producer */
	uint32_t stall_ms;          /* --stall-timeout of a new ring */
	uint32_t linger_ms;         /* --linger of a new ring */
	bool rescue;                /* --rescue: fill unreadable sectors */
	int map_fd;                 /* --rescue map file, or -1 */
	uint64_t start_block;       /* --start-at of a new ring */
	/* Producer skip (--skip-equal with --expect, a source read at any
	 * offset): a new ring gets a needed bitmap; per target, the blocks
	 * its target was found to hold (NULL: it needs every block). */
	bool need_map;
	const uint8_t *const *held;
};

struct rc_join {
	struct rc_ring ring;
	bool created;              /* this invocation created the ring */
	struct rc_reg reg[RC_CONS_MAX]; /* our registration per target */
	uint64_t first_seq[RC_CONS_MAX]; /* where each target of ours starts */
	char rdv_path[PATH_MAX];   /* the rendezvous file, for messages */
	struct rc_rdv rdv;         /* the rendezvous file, held; its dirfd
				    * is closed by rc_elect_close */
	int rdv_fd;                /* held, locked, until rc_elect_release */
	uint64_t read_before;      /* source bytes read before we joined */
};

/* Find the live ring of the source and register ntargets consumers in it,
 * or create a ring and register them (j->created: its producer is still
 * to be spawned).  Returns with the rendezvous file locked: nobody else
 * decides until rc_elect_release() (or rc_elect_undo() for a ring we
 * created and cannot start).  Returns 0, -EBUSY/-EINVAL for a refusal
 * (err says why; exit 2), other -errno for a failure (exit 1). */
int rc_elect(const struct rc_join_req *req, struct rc_join *out, char *err,
	     size_t errlen);
void rc_elect_release(struct rc_join *j);
void rc_elect_undo(struct rc_join *j);
/* Close the run directory rc_elect held open (after the consumers forked:
 * they and the producer remove the rendezvous file through it). */
void rc_elect_close(struct rc_join *j);
/* What an election would find, without creating or registering anything
 * (--dry-run). */
struct rc_peek {
	bool live;           /* a joinable ring runs */
	uint64_t next_block; /* where a joiner would start */
	uint64_t nblocks;
	uint32_t block_size;
	int producer;
	int refused;         /* -errno: the election would refuse */
	char why[256];       /* ... and why */
};
/* What rc_elect would do, with nothing created or registered (--dry-run):
 * join a live ring, or create one, or refuse (and why). */
int rc_peek(const struct rc_join_req *req, struct rc_peek *out);

/* `ringcopy status [--json] [SOURCE]' */
int rc_cmd_status(int argc, char **argv);

/* Spawn the producer of a ring we created (twice removed: it outlives
 * us) and wait until it serves the ring.  0, or -errno with err. */
int rc_producer_spawn(struct rc_ring *r, struct rc_dev *src,
		      const struct rc_rdv *rdv, int map_fd, char *err,
		      size_t errlen);
/* Remove the rendezvous file at path if it still names (shmid, semid). */
void rc_rdv_remove_if_ours(const struct rc_rdv *rdv, int shmid, int semid);

/* Outcome of one target, written by its consumer into memory shared with
 * the invocation. */
enum rc_result_status {
	RC_RES_PENDING = 0,
	RC_RES_OK = 1,
	RC_RES_FAILED = 2,
	RC_RES_MISMATCH = 3, /* complete, but read back differently */
	RC_RES_RESCUED = 4,  /* complete and verified, but holding markers
			      * where the source could not be read
			      * (--rescue); set by the invocation */
};

/* What a consumer is doing, for progress. */
enum rc_phase {
	RC_PHASE_COPY = 0,
	RC_PHASE_FLUSH = 1,
	RC_PHASE_VERIFY = 2,
};

struct rc_result {
	int32_t status;       /* enum rc_result_status */
	int32_t verified;     /* read back and matched */
	int32_t phase;        /* enum rc_phase */
	int32_t unverifiable; /* cannot be read back (null:, standard output) */
	uint64_t start_block; /* where the target started */
	uint64_t bytes_written;
	uint64_t ns;          /* wall time of the copy and verification */
	uint64_t behind_bytes; /* read back while waiting for the source */
	uint64_t skipped_bytes; /* --skip-equal: found equal, not written */
	uint64_t image_bytes;  /* the image this target received (a
				* stream's size is known only at its end) */
	int32_t interrupted;   /* ended by the invocation's SIGINT/SIGTERM */
	uint64_t bytes_verified; /* read back and compared so far */
	char how[16];         /* read-back method: "direct", "fadvise" */
	char digest[33];      /* image digest of the target (or as copied) */
	char error[512];      /* message when failed or mismatched */
};

/* How a consumer writes zero blocks (--sparse). */
enum rc_sparse {
	RC_SPARSE_AUTO = 0,   /* holes or zero-out where that is cheap */
	RC_SPARSE_ALWAYS = 1, /* always ask the target to zero the range */
	RC_SPARSE_NEVER = 2,  /* write every zero byte */
};

struct rc_consumer_args {
	struct rc_ring *ring;
	struct rc_reg reg;     /* our registration */
	struct rc_dev *dst;    /* the target, prepared */
	struct rc_result *res; /* filled in */
	int ready_fd;          /* a byte once our liveness token is held */
	uint64_t *hashes;      /* nblocks XXH3-64s, filled as blocks pass */
	bool verify;           /* read the target back when complete */
	int sparse;            /* enum rc_sparse */
	bool skip_equal;       /* read each block first, write if it differs */
	/* --skip-equal with --expect: the blocks our target was found to
	 * hold before we registered (a bitmap, NULL: none), and the
	 * manifest they were compared with.  A HELD slot is taken only for
	 * a block held here whose manifest hash is the slot's. */
	const uint8_t *held;
	const uint64_t *expect;
	bool stream;           /* the ring reads a stream of unknown size */
	const struct rc_rdv *rdv; /* for the last one out of a dead ring */
};

/* Consumer: take over the liveness of its entry, copy nblocks slots to the
 * target holding block 0 back until the rest is on stable storage, leave
 * the ring, then verify.  Returns 0 or -errno; *res says what happened. */
int rc_consumer_run(const struct rc_consumer_args *a);

#endif
