/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the producer and a consumer as the steps they run.
 *
 * The binary runs these and nothing else: the producer's loop is
 * rc_producer_step() until it returns 0, a consumer's run is
 * rc_consumer_start(), rc_consumer_step() until it returns 0 or an error,
 * and rc_consumer_finish().  With wait_ms RC_PROTO_WAIT_MS (the
 * producer) and -1 (a consumer) every wait blocks as it always did; with
 * wait_ms 0 a step that would wait tries once and returns, so that one
 * process can run a producer and several consumers under a scheduler of
 * its own (tests/unit/test-ringsteps.c).  Time comes from the ring's clock
 * (rc_ring_now).
 */
#ifndef RINGCOPY_STEPS_H
#define RINGCOPY_STEPS_H

#include <stdbool.h>
#include <stdint.h>

#include "ringcopy/backend.h"
#include "ringcopy/core.h"
#include "ringcopy/ring.h"
#include "ringcopy/ringproto.h"
#include "ringcopy/verify.h"

/* ---- the producer --------------------------------------------------- */

enum rc_prod_phase {
	RC_PH_SELECT = 0, /* select what step n is */
	RC_PH_CREDITS,    /* take step n's credits, evicting between tries */
	RC_PH_FAILING,    /* the ring failed: wait until nobody is active */
	RC_PH_DONE,       /* nobody left to serve, or the ring is gone */
};

struct rc_producer {
	struct rc_ring *r;
	struct rc_dev *src;
	struct rc_proto_prod pp;
	int wait_ms;            /* RC_PROTO_WAIT_MS; 0: every wait a try */
	enum rc_prod_phase phase;
	int step;               /* the rc_step being taken (RC_PH_CREDITS) */
	int failing_active;     /* RC_PH_FAILING: the last evict's count */
	uint64_t rate_t0, rate_bytes;
	/* The hash of every block the first time it was read, to catch a
	 * source that changes between passes (NULL if out of memory). */
	uint64_t *first_hash;
	uint8_t *seen; /* bitmap of blocks read at least once */
	struct rc_holes holes; /* the source's holes are not read */
	int map_fd;             /* --rescue map file, or -1 */
	uint64_t idle_since;    /* when the last consumer left (--linger) */
	uint64_t bad_off, bad_len; /* the bad range being extended */
	bool aborted;           /* the ring stopped making sense */
	bool ended;             /* a stream's last block is published */
};

/* Set p up to serve r from src (map_fd: --rescue's map, or -1); the
 * caller then takes the producer's token (rc_proto_producer_start on
 * &p->pp) and calls rc_producer_tables(). */
void rc_producer_init(struct rc_producer *p, struct rc_ring *r,
		      struct rc_dev *src, int map_fd);
/* The per-block hash tables that catch a source changing between passes
 * (none for a stream, or out of memory: not checked). */
void rc_producer_tables(struct rc_producer *p);
/* One step of the producer's loop: 1 to step again, 0 when nobody is
 * left to serve or the ring failed or is gone. */
int rc_producer_step(struct rc_producer *p);
/* Flush the rescue map, free the tables (the ring is not touched). */
void rc_producer_finish(struct rc_producer *p);

/* ---- a consumer ----------------------------------------------------- */

/* Verification behind the copy (consumer.c says when it is on). */
struct rc_behind {
	struct rc_dev *rd;      /* the read-back device; NULL: off */
	const struct rc_image_hashes *h; /* what the blocks should hash to */
	void *buf;
	uint8_t *have;          /* per block: read back, hash in got */
	uint64_t *got;
	uint64_t first, next_k; /* our first seq; next k to read back */
};

/* --skip-equal: the target read before each block is written. */
struct rc_equal {
	struct rc_dev *rd; /* read-back device on the target; NULL: off */
	void *buf;
};

struct rc_pending;

struct rc_consumer {
	const struct rc_consumer_args *a;
	int wait_ms;       /* -1: wait for a block; 0: a try (-EAGAIN) */
	uint64_t t0;
	struct rc_image_hashes h;
	struct rc_behind vb;
	struct rc_equal eq;
	void *block0;      /* block 0, written last; NULL: in its turn */
	uint32_t block0_len;
	bool block0_zero;
	bool block0_held;  /* published HELD: the target holds it */
	uint64_t stream_end; /* UINT64_MAX until a stream's end is seen */
	/* The copy: blocks taken, not yet released (a FIFO of nslots). */
	struct rc_pending *q;
	uint32_t head, count;
	uint32_t nasync;   /* entries still async (all in the FIFO) */
	uint32_t window;   /* async writes kept in flight, 0: synchronous */
	uint64_t done;     /* blocks released */
	uint64_t k;        /* the next block of the pass to take */
	bool claimed;      /* the entry is ours: finish leaves it */
};

/* Claim the entry (our own liveness token), tell the invocation, and set
 * the copy up.  0; or -errno with *res filled: when the claim failed
 * (c->claimed false) the run is over, nothing to finish; else
 * rc_consumer_finish(c, rc) reports it. */
int rc_consumer_start(struct rc_consumer *c, const struct rc_consumer_args *a,
		      int wait_ms);
/* Copy the next block from the ring: 1 (more to come), 0 (every block of
 * the pass copied), -EAGAIN (wait_ms 0: nothing published yet), or
 * -errno with res->error. */
int rc_consumer_step(struct rc_consumer *c);
/* The rest, after the copy's last step (rc its result): the last writes,
 * leave the ring, settle a stream's size, block 0, read back, close.
 * Returns the run's result; *res says what happened. */
int rc_consumer_finish(struct rc_consumer *c, int rc);

#endif
