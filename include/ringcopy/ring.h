/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the shared ring: SysV shared-memory layout and semaphores.
 *
 * The segment holds offsets, never pointers, so every process may map it at
 * a different address.  Every field read from it is input: a process that
 * attaches validates the header with rc_ring_validate() before using it, and
 * every index taken from it is bounds-checked again where it is used.
 */
#ifndef RINGCOPY_RING_H
#define RINGCOPY_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/sem.h>
#include <sys/types.h>

#include "ringcopy/backend.h"
#include "ringcopy/ringwin.h"

#define RC_RING_MAGIC   UINT64_C(0x3159504f43474e52) /* "RNGCOPY1" */
#define RC_RING_VERSION 4

#define RC_BLOCK_MIN     4096u
#define RC_BLOCK_MAX     (64u << 20)
#define RC_BLOCK_DEFAULT (1u << 20)
/* 16 MiB: the geometry sweep (bench/RESULTS.md, case f) found rings that
 * stay in the last-level cache faster than 64 MiB ones. */
#define RC_BUFFER_DEFAULT (UINT64_C(16) << 20)
/* 64 MiB for a source with holes: case d of the same sweep. */
#define RC_BUFFER_SPARSE (UINT64_C(64) << 20)
/* FREE[i] starts at the slot count and must fit SEMVMX (32767) even after a
 * leaving consumer's final post. */
#define RC_SLOTS_MAX  16384u
#define RC_CONS_MAX   128u /* consumer capacity of a ring */
/* The same, as a count of targets: the name outside the ring's own code
 * (only ringproto.c and ring.c name RC_CONS_* and RC_SEM_*). */
#define RC_TARGETS_MAX RC_CONS_MAX
#define RC_NAME_MAX   256u
#define RC_ERRMSG_MAX 256u
#define RC_ALIGN      4096u /* slot data alignment, for O_DIRECT */

/* Ring states (header `state'). */
enum rc_ring_state {
	RC_RING_STARTING = 1, /* created, producer not yet running */
	RC_RING_RUNNING = 2,  /* joinable */
	RC_RING_CLOSING = 3,  /* producer leaving: do not join */
	RC_RING_FAILED = 4,   /* source failed: err_* say why */
};

/* Consumer-table entry states. */
enum rc_cons_state {
	RC_CONS_FREE = 0,    /* unused; may be registered */
	RC_CONS_ACTIVE = 1,  /* registered; the producer serves it */
	RC_CONS_LEAVING = 2, /* gone; the producer still has to drop it */
	RC_CONS_EVICTED = 3, /* stalled past the stall timeout: no longer
			      * served; free once its token is gone */
};

struct rc_ring_hdr {
	uint64_t magic;       /* RC_RING_MAGIC */
	uint32_t version;     /* RC_RING_VERSION */
	uint32_t hdr_size;    /* sizeof(struct rc_ring_hdr) */
	uint64_t seg_size;    /* bytes in the segment, checked vs IPC_STAT */
	uint32_t src_kind;    /* enum rc_src_kind */
	uint32_t block_size;  /* bytes per block, power of two */
	uint64_t src_id0;     /* source identity, see rc_src_kind */
	uint64_t src_id1;
	uint64_t image_size;  /* bytes in the image */
	uint64_t nblocks;     /* ceil(image_size / block_size) */
	uint32_t nslots;      /* slots in the ring */
	uint32_t ncons;       /* consumer-table capacity */
	uint64_t ctab_off;    /* offset of the consumer table */
	uint64_t shdr_off;    /* offset of the slot headers */
	uint64_t data_off;    /* offset of slot data, RC_ALIGN aligned */
	uint32_t state;       /* enum rc_ring_state, under LOCK */
	int32_t producer_pid; /* producer process */
	uint64_t producer_start; /* its start time (/proc stat field 22) */
	uint64_t rate;        /* source read cap in bytes/s, 0 = none */
	uint64_t next_seq;    /* next sequence number to produce, under LOCK */
	/* Counters, written by the producer only. */
	uint64_t bytes_read;  /* bytes read from the source, all passes */
	uint64_t blocks_read; /* blocks read from the source, all passes */
	uint64_t passes;      /* times the last block was read */
	uint64_t zero_blocks; /* all-zero blocks seen */
	/* The producer's error, valid when state == RC_RING_FAILED. */
	int32_t err_code;     /* positive errno */
	uint32_t pad0;
	uint64_t err_offset;  /* source offset of the failure */
	char err_msg[RC_ERRMSG_MAX]; /* NUL-terminated */
	/* Appended in layout 1 before any release. */
	uint32_t stall_ms;    /* evict a consumer stalled this long, 0 never */
	uint32_t rescue;      /* 1: unreadable sectors are filled, not fatal */
	uint64_t bad_bytes;   /* bytes filled with the marker (--rescue) */
	uint64_t bad_ranges;  /* unreadable ranges found (--rescue) */
	uint32_t linger_ms;   /* idle producer waits this long, ~0u forever */
	uint32_t pad1;
	uint64_t started_ns;  /* CLOCK_MONOTONIC when the ring was created */
	char src_name[RC_NAME_MAX]; /* source spec, for `status' */
	/* Layout 4: the "needed" bitmap (producer skip, --skip-equal with
	 * --expect).  One bit per block, set by a registrant (under LOCK,
	 * before its entry is ACTIVE) for every block one of its skipping
	 * consumers lacks; never cleared while the ring lives.  need_bytes
	 * 0: the ring has none (its producer has no manifest, or reads a
	 * source in order) and no block is ever skipped. */
	uint64_t need_off;    /* offset of the bitmap: the segment's tail */
	uint64_t need_bytes;  /* 0, or RC_NEED_BYTES(nblocks) */
	uint64_t blocks_held; /* blocks published HELD (not read), by the
			       * producer only */
};
/* Bytes of a needed bitmap for nblocks blocks (whole 64-bit words). */
#define RC_NEED_BYTES(nblocks) (((uint64_t)(nblocks) + 63) / 64 * 8)

struct rc_cons_ent {
	uint32_t state;         /* enum rc_cons_state, under LOCK */
	int32_t pid;            /* consumer process (its owner until handoff) */
	uint64_t pstart;        /* start time of pid */
	uint64_t first_seq;     /* first sequence number it needs */
	uint64_t blocks_done;   /* written so far, by the consumer only */
	uint64_t bytes_written; /* written so far, by the consumer only */
	char target[RC_NAME_MAX]; /* target spec, NUL-terminated, for status */
	uint64_t start_ns;      /* CLOCK_MONOTONIC at registration */
	uint64_t gen;           /* registrations of this entry so far: tells
				 * one registration from the next (layout 3) */
	uint32_t claimed;       /* 1 once its consumer holds its own token */
	uint32_t skips;         /* 1: its target holds every block whose
				 * needed bit is clear (layout 4); 0: it
				 * needs every block */
};

/* Slot flags. */
#define RC_SLOT_ZERO (1u << 0) /* data is all zeros */
#define RC_SLOT_END  (1u << 1) /* a stream's last block: len may be short
				* (0 when the stream ended on a block
				* boundary); nothing follows */
#define RC_SLOT_HELD (1u << 2) /* not read: every consumer it was
				* published to holds the block already;
				* no data, hash is the manifest's */

struct rc_slot_hdr {
	uint64_t seq;   /* sequence number whose block the slot holds */
	uint64_t block; /* block index = seq mod nblocks */
	uint32_t len;   /* valid bytes: block_size, less for the last block */
	uint32_t flags; /* RC_SLOT_* */
	uint64_t hash;  /* XXH3-64 of the len data bytes */
	/* The seq whose data a consumer found to match hash, so that the
	 * other consumers need not hash it again; the producer sets it to
	 * RC_SEQ_NONE when it fills the slot. */
	uint64_t checked;
};
#define RC_SEQ_NONE UINT64_MAX

_Static_assert(sizeof(struct rc_ring_hdr) == 752, "ring header layout");
_Static_assert(sizeof(struct rc_cons_ent) == 320, "consumer entry layout");
_Static_assert(sizeof(struct rc_slot_hdr) == 40, "slot header layout");
_Static_assert(offsetof(struct rc_ring_hdr, next_seq) == 120,
	       "ring header layout");

/* Semaphore indices in a ring's set. */
#define RC_SEM_LOCK   0 /* mutex for header and consumer table (SEM_UNDO) */
#define RC_SEM_JOIN   1 /* posted when a consumer registers */
#define RC_SEM_PALIVE 2 /* 1 while the producer lives (SEM_UNDO) */
#define RC_SEM_AVAIL(i) (3 + 3 * (i)) /* slots ready for consumer i */
#define RC_SEM_FREE(i)  (4 + 3 * (i)) /* slots consumer i released */
#define RC_SEM_ALIVE(i) (5 + 3 * (i)) /* 1 while consumer i lives */
#define RC_NSEMS(ncons) (3 + 3 * (ncons))

/* Geometry computed from the parameters, used both to create a segment and
 * to validate one. */
struct rc_layout {
	uint64_t ctab_off, shdr_off, data_off, seg_size;
};

int rc_ring_layout(uint32_t block_size, uint32_t nslots, uint32_t ncons,
		   struct rc_layout *out);
/* Validate a header read from a segment of seg_size bytes.  Returns 0 or
 * -EINVAL with a reason in why (may be NULL). */
int rc_ring_validate(const struct rc_ring_hdr *h, uint64_t seg_size,
		     const char **why);

/* Sequence arithmetic. */
static inline uint64_t rc_seq_block(uint64_t seq, uint64_t nblocks)
{
	return seq % nblocks;
}
static inline uint32_t rc_seq_slot(uint64_t seq, uint32_t nslots)
{
	return (uint32_t)(seq % nslots);
}
/* Does a consumer starting at first need seq? */
static inline bool rc_cons_needs(uint64_t first, uint64_t nblocks,
				 uint64_t seq)
{
	return RC_WIN_NEEDS(first, nblocks, seq);
}
static inline uint64_t rc_cons_last_seq(uint64_t first, uint64_t nblocks)
{
	return first + nblocks - 1;
}
uint32_t rc_block_len(uint64_t image_size, uint32_t block_size,
		      uint64_t block);

/* The producer's choice for sequence number n (LOCK held).  Entries that
 * left become free (the producer waits on nobody at this point, so they may
 * be reused).  need[] receives the active entries that need n: they get
 * AVAIL posts.  wait[] receives the active entries whose FREE must be taken
 * before slot n mod nslots is overwritten: those that need n, and those
 * that may still have to read the slot's previous occupant n - nslots,
 * i.e. that started at s with s <= n < s + nblocks + nslots.  *later is the
 * smallest start after n of the others (UINT64_MAX if none).  Returns the
 * number of active entries. */
struct rc_select {
	uint32_t need[RC_CONS_MAX], nneed;
	uint32_t wait[RC_CONS_MAX], nwait;
	uint64_t later;
};
uint32_t rc_ring_select(struct rc_cons_ent *ctab, uint32_t ncons,
			uint64_t nblocks, uint32_t nslots, uint64_t n,
			struct rc_select *sel);

/* A process's view of an attached ring. */
struct rc_ring {
	int shmid, semid;
	void *base;
	uint64_t size;
	struct rc_ring_hdr *hdr;
	struct rc_cons_ent *ctab;
	struct rc_slot_hdr *shdr;
	unsigned char *data;
	/* The needed bitmap (layout 4), nblocks bits in the segment; NULL:
	 * the ring has none, nothing is ever published HELD. */
	uint64_t *need;
	/* Copies of the validated geometry and settings: never re-read
	 * from the segment. */
	uint32_t block_size, nslots, ncons;
	uint64_t image_size, nblocks;
	uint64_t rate;
	uint32_t stall_ms, linger_ms;
	bool rescue;
	/* Known to this process, never read from the segment: the source is
	 * a stream of unknown size, read once to its end (image_size is
	 * then only a bound); its last block carries RC_SLOT_END. */
	bool stream;
	/* Known to the producer only (set before it is spawned): the golden
	 * manifest's block hashes (--expect), each block read is checked
	 * against before it is published; NULL without --expect. */
	const uint64_t *expect;
	const char *expect_name;
	/* Who this process is to the protocol: 0 is getpid().  The schedule
	 * test gives each actor (registrant, consumer) its own. */
	pid_t self;
	/* The clock of the protocol's timeouts (stall eviction, the
	 * producer's linger and rate): NULL is rc_now_ns(), CLOCK_MONOTONIC,
	 * what the tool uses.  The schedule test sets a simulated one. */
	uint64_t (*now_ns)(void);
	/* The producer as last seen under LOCK (rc_proto_claim). */
	pid_t producer_pid;
	uint64_t producer_start;
	/* Why the last protocol verb failed, naming the ring. */
	char why[RC_ERRMSG_MAX];
};

struct rc_ring_params {
	uint32_t src_kind;
	uint64_t src_id0, src_id1;
	uint64_t image_size;
	uint32_t block_size;
	uint64_t buffer_size;
	uint32_t ncons;
	uint64_t rate;
	uint32_t stall_ms;
	bool rescue;
	uint32_t linger_ms;
	const char *src_name;
	uint64_t start_block; /* --start-at: the first pass starts here */
	/* A needed bitmap in the segment: the producer has the manifest
	 * (--expect) and reads the source at any offset, so it may publish
	 * a block every consumer holds without reading it. */
	bool need_map;
};

/* The block and slot counts a ring of these parameters gets. */
void rc_ring_geometry(const struct rc_ring_params *p, uint64_t *nblocks,
		      uint64_t *nslots);
int rc_ring_create(const struct rc_ring_params *p, struct rc_ring *r,
		   char *err, size_t errlen);
int rc_ring_attach(int shmid, int semid, struct rc_ring *r, char *err,
		   size_t errlen);
void rc_ring_populate(struct rc_ring *r);
void rc_ring_detach(struct rc_ring *r);
/* Whether the ring's semaphore set still exists: teardown removes it
 * first, so a ring whose producer has gone and whose set is still there
 * was left behind (its producer killed). */
bool rc_ring_left(const struct rc_ring *r);
void rc_ring_remove(struct rc_ring *r);
/* The ring's clock (r->now_ns, else CLOCK_MONOTONIC), in ns. */
uint64_t rc_ring_now(const struct rc_ring *r);

static inline unsigned char *rc_slot_data(const struct rc_ring *r,
					  uint32_t slot)
{
	return r->data + (uint64_t)slot * r->block_size;
}

/* Kernel limits. */
struct rc_ipc_limits {
	long semmsl, semmns, semopm, semmni;
	uint64_t shmmax, shmall_pages;
	long shmmni;
};
int rc_ipc_limits(struct rc_ipc_limits *l);
/* Largest consumer capacity the limits allow (<= RC_CONS_MAX). */
uint32_t rc_ipc_cons_capacity(const struct rc_ipc_limits *l);

#endif
