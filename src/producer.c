/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the producer: reads the source once per pass into the ring.
 *
 * For each step (the verbs are in ringproto.c, the protocol in
 * doc/design.md): select what n = next_seq needs; take one credit from
 * every consumer whose slot n may still hold data (all or nothing); read
 * block n mod nblocks into slot n mod nslots and hash it; publish it to
 * every consumer that needs n.  The producer is spawned here, twice
 * removed from the invocation, so that it outlives it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ringcopy/core.h"
#include "ringcopy/ringproto.h"
#include "ringcopy/steps.h"
#include "ringcopy/util.h"
#include "ringcopy/verify.h"

static void set_counter(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static bool all_zero(const unsigned char *p, size_t len)
{
	static const unsigned char z[16];

	if (len < 16)
		return memcmp(p, z, len) == 0;
	/* Compare the buffer with itself shifted: one pass, libc-fast. */
	return memcmp(p, z, 16) == 0 && memcmp(p, p + 16, len - 16) == 0;
}

static void throttle(struct rc_producer *p, uint32_t len)
{
	uint64_t rate = p->r->rate, due, now;
	struct timespec ts;

	if (!rate)
		return;
	if (!p->rate_t0)
		p->rate_t0 = rc_ring_now(p->r);
	/* The time by which the bytes read so far were due. */
	due = p->rate_t0 +
	      (uint64_t)((double)p->rate_bytes * 1e9 / (double)rate);
	now = rc_ring_now(p->r);
	/* A producer that waited (idle between joiners: serve, a station;
	 * held by a slow target) does not make up for the time in a burst:
	 * more than 100 ms behind, the rate counts from now. */
	if (due + 100000000u < now) {
		p->rate_t0 = now;
		p->rate_bytes = 0;
		due = now;
	}
	if (due > now) {
		ts.tv_sec = (time_t)((due - now) / 1000000000u);
		ts.tv_nsec = (long)((due - now) % 1000000000u);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	p->rate_bytes += len;
}

/* A ring that stopped making sense: every process on it wakes and
 * reports why. */
static void abort_ring(struct rc_producer *p)
{
	if (p->aborted)
		return;
	p->aborted = true;
	rc_proto_abort(p->r, p->r->why);
}

/* Fail the ring: every consumer reports err; then wait for them to go
 * (RC_PH_FAILING, the steps after the fill that failed). */
static void fail_ring(struct rc_producer *p, int err, uint64_t off,
		      const char *msg)
{
	struct rc_ring *r = p->r;

	if (rc_proto_fail(r, err, off, msg) < 0) {
		abort_ring(p);
		p->phase = RC_PH_DONE;
		return;
	}
	p->pp.sel.nwait = p->pp.sel.nneed = 0;
	p->phase = RC_PH_FAILING;
}

/* A failed ring: drop the dead until nobody is active. */
static void failing_step(struct rc_producer *p)
{
	struct rc_ring *r = p->r;
	int active = rc_proto_evict(r, &p->pp, 0);

	if (active > 0 && rc_proto_wait_table(r, p->wait_ms) == 0)
		return; /* again */
	if (active < 0 && active != -EIDRM)
		abort_ring(p);
	p->phase = RC_PH_DONE;
}

/* The marker written over unreadable sectors (--rescue): documented in
 * ringcopy(1), so that a user can find them in a copy. */
static const char rescue_marker[16] = "RINGCOPY-BADSECT";

static void map_flush(struct rc_producer *p)
{
	struct rc_ring_hdr *h = p->r->hdr;

	if (!p->bad_len)
		return;
	if (p->map_fd >= 0)
		dprintf(p->map_fd, "%llu %llu\n",
			(unsigned long long)p->bad_off,
			(unsigned long long)p->bad_len);
	set_counter(&h->bad_ranges, h->bad_ranges + 1);
	p->bad_len = 0;
}

/* Read what can be read of a failing block, sector by sector; fill the
 * rest with the marker and note it in the map.  The ranges of a later pass
 * are not noted again. */
static int rescue_block(struct rc_producer *p, uint64_t off, uint32_t len,
			unsigned char *data, bool first_pass)
{
	struct rc_ring_hdr *h = p->r->hdr;
	uint32_t sec = p->src->sector ? p->src->sector : 512, done, k;

	for (done = 0; done < len; done += sec) {
		uint32_t n = len - done < sec ? len - done : sec;
		ssize_t got = rc_dev_pread(p->src, data + done, n, off + done);

		if (got == (ssize_t)n)
			continue;
		if (got >= 0)
			return -EIO; /* short: the source shrank */
		for (k = 0; k < n; k++)
			data[done + k] = (unsigned char)rescue_marker[k % 16];
		if (!first_pass)
			continue;
		set_counter(&h->bad_bytes, h->bad_bytes + n);
		if (p->bad_len && p->bad_off + p->bad_len == off + done) {
			p->bad_len += n;
		} else {
			map_flush(p);
			p->bad_off = off + done;
			p->bad_len = n;
		}
	}
	return 0;
}

/* Read block into data, or learn it is a hole: 0, or -1 with the ring
 * failed. */
static int read_block(struct rc_producer *p, uint64_t off, uint32_t *lenp,
		      unsigned char *data, bool *hole)
{
	uint32_t len = *lenp;
	char msg[RC_ERRMSG_MAX];
	ssize_t got;

	*hole = rc_is_hole(p->src, &p->holes, off, len);
	if (*hole) {
		struct stat st;

		/* Past the end of a file that shrank, SEEK_DATA finds no
		 * data either: a hole there is the source shrinking. */
		if (p->src->fd >= 0 && fstat(p->src->fd, &st) == 0 &&
		    S_ISREG(st.st_mode) && (uint64_t)st.st_size < off + len) {
			snprintf(msg, sizeof msg,
				 "source %s: it shrank to %llu bytes while the block at offset %llu was read: the source changed",
				 p->src->spec, (unsigned long long)st.st_size,
				 (unsigned long long)off);
			fail_ring(p, EIO, (uint64_t)st.st_size, msg);
			return -1;
		}
		return 0; /* the ring carries the flag, not the zeros */
	}
	throttle(p, len);
	got = rc_dev_pread(p->src, data, len, off);
	if (got < 0 && p->r->rescue) {
		uint64_t block = off / p->r->block_size;
		bool first = !p->seen ||
			     !(p->seen[block / 8] & (1u << (block % 8)));

		if (rescue_block(p, off, len, data, first) == 0)
			return 0;
		got = 0; /* short: reported below */
	}
	if (got < 0) {
		char detail[200];

		rc_dev_describe(p->src, strerror((int)-got), detail,
				sizeof detail);
		snprintf(msg, sizeof msg, "source %s: read of %u bytes at offset %llu: %.150s",
			 p->src->spec, len, (unsigned long long)off, detail);
		fail_ring(p, (int)-got, off, msg);
		return -1;
	}
	if ((uint32_t)got < len && p->r->stream) {
		*lenp = (uint32_t)got; /* the end of the stream */
		p->ended = true;
		return 0;
	}
	if ((uint32_t)got < len && (p->src->caps & RC_CAP_SEQUENTIAL)) {
		snprintf(msg, sizeof msg,
			 "%s%s ended at %llu bytes; --size was %llu",
			 strcmp(p->src->spec, "-") ? "source " : "standard input",
			 strcmp(p->src->spec, "-") ? p->src->spec : "",
			 (unsigned long long)(off + (uint64_t)got),
			 (unsigned long long)p->r->image_size);
		fail_ring(p, EIO, off + (uint64_t)got, msg);
		return -1;
	}
	if ((uint32_t)got < len) {
		char detail[200];

		rc_dev_describe(p->src, "the source shrank", detail,
				sizeof detail);
		snprintf(msg, sizeof msg, "source %s: read at offset %llu returned %zd of %u bytes: %.150s",
			 p->src->spec, (unsigned long long)off, got, len, detail);
		fail_ring(p, EIO, off + (uint64_t)got, msg);
		return -1;
	}
	return 0;
}

/* A block read again on a later pass must hash as it did the first time:
 * consumers past their wrap would otherwise complete with a mix of two
 * versions of the image.  0, or -1 with the ring failed. */
static int check_stable(struct rc_producer *p, uint64_t block, uint64_t hash,
			uint64_t off)
{
	uint8_t bit = (uint8_t)(1u << (block % 8));
	char msg[RC_ERRMSG_MAX];

	if (!p->seen)
		return 0;
	if (!(p->seen[block / 8] & bit)) {
		p->seen[block / 8] |= bit;
		p->first_hash[block] = hash;
		return 0;
	}
	if (p->first_hash[block] == hash)
		return 0;
	snprintf(msg, sizeof msg,
		 "source %s changed at offset %llu since it was first read: no target can hold a consistent image",
		 p->src->spec, (unsigned long long)off);
	fail_ring(p, ESTALE, off, msg);
	return -1;
}

/* --expect: a block enters the ring only if it is the golden image's.
 * 0, or -1 with the ring failed. */
static int check_expected(struct rc_producer *p, uint64_t block, uint64_t hash,
			  uint64_t off)
{
	char msg[RC_ERRMSG_MAX];

	if (!p->r->expect || p->r->expect[block] == hash)
		return 0;
	rc_expect_mismatch(msg, sizeof msg, off, hash, p->r->expect[block],
			   p->src->spec, p->r->expect_name);
	fail_ring(p, EBADMSG, off, msg);
	return -1;
}

/* How far a backend may read the source ahead of block `block' (seq n):
 * to the end of what the registered consumers still need of this pass,
 * never past the image.  A hint, read without the lock: a consumer that
 * registers meanwhile only restarts the reading ahead at a later read, and
 * an entry overwritten by another process can only shorten or lengthen a
 * read that stays inside the image. */
static void read_ahead_hint(struct rc_producer *p, uint64_t n, uint64_t block)
{
	const struct rc_ring *r = p->r;
	uint64_t need = rc_proto_need_ahead(p->r, n), end = r->nblocks, off;

	if (need < end - block)
		end = block + need;
	/* Skipping consumers only: not past the next block they all hold
	 * (read without the lock: a bit set meanwhile only ends it later). */
	if (p->pp.skipping)
		for (off = block + 1; off < end; off++)
			if (!(__atomic_load_n(&r->need[off / 64],
					      __ATOMIC_RELAXED) &
			      (UINT64_C(1) << (off % 64)))) {
				end = off;
				break;
			}
	off = end * r->block_size;
	off = off < r->image_size ? off : r->image_size;
	rc_dev_prefetch(p->src, block * r->block_size,
			off - block * r->block_size);
}

/* Read block n into the slot's buffer (rc_proto_fill's filler): 0, or -1
 * with the ring failed. */
static int fill_slot(void *arg, uint64_t n, unsigned char *data,
		     struct rc_fill *f)
{
	struct rc_producer *p = arg;
	struct rc_ring *r = p->r;
	struct rc_ring_hdr *h = r->hdr;
	uint64_t block = rc_seq_block(n, r->nblocks);
	uint64_t off = block * r->block_size;
	uint32_t len = rc_block_len(r->image_size, r->block_size, block);
	uint64_t hash;
	bool hole, zero;

	if (!r->stream)
		read_ahead_hint(p, n, block);
	if (read_block(p, off, &len, data, &hole) < 0)
		return -1;
	zero = hole || all_zero(data, len);
	hash = hole ? rc_zero_hash(len) : rc_block_hash(data, len);
	if (check_stable(p, block, hash, off) < 0 ||
	    check_expected(p, block, hash, off) < 0)
		return -1;
	f->len = len;
	f->flags = (zero ? RC_SLOT_ZERO : 0) | (p->ended ? RC_SLOT_END : 0);
	f->hash = hash;
	if (!hole)
		set_counter(&h->bytes_read, h->bytes_read + len);
	set_counter(&h->blocks_read, h->blocks_read + 1);
	if (zero)
		set_counter(&h->zero_blocks, h->zero_blocks + 1);
	if (block == r->nblocks - 1)
		set_counter(&h->passes, h->passes + 1);
	return 0;
}

/* Publish block n without reading it (rc_proto_fill's filler when select
 * found every consumer of n holds it): its length, and the manifest's
 * hash, which each consumer compares with its own manifest and its own
 * scan of its target.  No data: the slot's buffer is left as it was. */
static int held_slot(void *arg, uint64_t n, unsigned char *data,
		     struct rc_fill *f)
{
	struct rc_producer *p = arg;
	struct rc_ring *r = p->r;
	uint64_t block = rc_seq_block(n, r->nblocks);

	(void)data;
	f->len = rc_block_len(r->image_size, r->block_size, block);
	f->flags = RC_SLOT_HELD;
	f->hash = r->expect[block];
	set_counter(&r->hdr->blocks_held, r->hdr->blocks_held + 1);
	if (block == r->nblocks - 1)
		set_counter(&r->hdr->passes, r->hdr->passes + 1);
	return 0;
}

/* Static: a signal handler sets it, and a handler has no argument to be
 * given the producer's state. */
static volatile sig_atomic_t terminated;

static void on_term(int sig)
{
	(void)sig;
	terminated = 1;
	rc_interrupted = 1; /* wakes an idle wait; no other verb gives up */
}

/* How many more milliseconds an idle producer waits for a joiner:
 * INT64_MAX forever, 0 not at all. */
static int64_t linger_left(struct rc_producer *p)
{
	uint32_t ms = p->r->linger_ms;
	uint64_t idle;

	if (!ms || terminated)
		return 0; /* SIGTERM ends the linger */
	if (ms == UINT32_MAX)
		return INT64_MAX;
	if (!p->idle_since)
		return ms;
	idle = (rc_ring_now(p->r) - p->idle_since) / 1000000u;
	return idle < ms ? (int64_t)(ms - idle) : 0;
}

/* The end of a step that went wrong: a ring removed (EIDRM) is gone,
 * anything else stopped making sense. */
static void step_failed(struct rc_producer *p, int rc)
{
	if (rc != -EIDRM)
		abort_ring(p);
	p->phase = RC_PH_DONE;
}

/* Take the credits of step n, evicting the dead and the stalled between
 * tries; with them, fill and publish slot n (PRODUCE). */
static void credits_step(struct rc_producer *p)
{
	struct rc_ring *r = p->r;
	int rc = rc_proto_take_credits(r, &p->pp, p->wait_ms);

	if (rc == -EAGAIN) {
		/* Slow or dead consumers: drop the dead and the stalled,
		 * and wait again for the rest. */
		rc = rc_proto_evict(r, &p->pp, r->stall_ms);
		if (rc >= 0)
			return; /* again */
	}
	if (rc < 0) {
		step_failed(p, rc);
		return;
	}
	p->phase = RC_PH_SELECT;
	/* Those who needed n may be gone meanwhile: then it is a skip. */
	if (p->step == RC_STEP_SKIP || !p->pp.sel.nneed)
		return;
	/* The fill and its publication are one verb: it owns the slot's
	 * seq and the order of its stores. */
	rc = rc_proto_fill(r, &p->pp, p->pp.held ? held_slot : fill_slot, p);
	if (rc == -ECANCELED) {
		/* fill_slot failed the ring (RC_PH_FAILING), or aborted. */
		if (p->phase == RC_PH_SELECT)
			p->phase = RC_PH_DONE;
	} else if (rc < 0) {
		step_failed(p, rc);
	}
}

/* Select step n and do what it asks short of taking credits: close, idle
 * (waiting for a joiner, the linger or SIGTERM), drain, or go on to the
 * credits. */
static void select_step(struct rc_producer *p)
{
	struct rc_ring *r = p->r;
	int64_t left = linger_left(p);
	int step = rc_proto_select(r, &p->pp, left == 0), rc;

	switch (step) {
	case RC_STEP_CLOSED:
		p->phase = RC_PH_DONE;
		return;
	case RC_STEP_IDLE:
		/* Nothing is read and no CPU is used until a joiner rings,
		 * the linger ends or SIGTERM. */
		if (!p->idle_since) {
			p->idle_since = rc_ring_now(r);
			return;
		}
		/* In slices: a SIGTERM between the look at the flag and the
		 * wait would otherwise be lost. */
		rc = rc_proto_wait_table(r, left > p->wait_ms ? p->wait_ms
							       : (int)left);
		break;
	case RC_STEP_DRAIN:
		/* Everyone has what it needs and is finishing. */
		p->idle_since = 0;
		rc = rc_proto_wait_table(r, p->wait_ms);
		if (rc == 0)
			rc = rc_proto_evict(r, &p->pp, 0);
		break;
	case RC_STEP_PRODUCE:
	case RC_STEP_SKIP:
		p->idle_since = 0;
		if (p->ended) {
			/* A stream has no more: its consumers leave once
			 * they have its last block. */
			rc = rc_proto_wait_table(r, p->wait_ms);
			if (rc == 0)
				rc = rc_proto_evict(r, &p->pp, r->stall_ms);
			break;
		}
		p->step = step;
		p->phase = RC_PH_CREDITS;
		return;
	default:
		rc = step;
		break;
	}
	if (rc < 0)
		step_failed(p, rc);
}

int rc_producer_step(struct rc_producer *p)
{
	switch (p->phase) {
	case RC_PH_SELECT:
		select_step(p);
		break;
	case RC_PH_CREDITS:
		credits_step(p);
		break;
	case RC_PH_FAILING:
		failing_step(p);
		break;
	case RC_PH_DONE:
		break;
	}
	return p->phase != RC_PH_DONE;
}

void rc_producer_init(struct rc_producer *p, struct rc_ring *r,
		      struct rc_dev *src, int map_fd)
{
	memset(p, 0, sizeof *p);
	p->r = r;
	p->src = src;
	p->map_fd = map_fd;
	p->wait_ms = RC_PROTO_WAIT_MS;
	p->phase = RC_PH_SELECT;
	rc_holes_init(&p->holes);
}

void rc_producer_tables(struct rc_producer *p)
{
	struct rc_ring *r = p->r;

	/* A stream is read once: no second pass to compare. */
	p->first_hash = r->stream ? NULL
				  : malloc(r->nblocks * sizeof *p->first_hash);
	p->seen = r->stream ? NULL : calloc(r->nblocks / 8 + 1, 1);
	if (!p->first_hash || !p->seen) {
		free(p->first_hash);
		free(p->seen);
		p->first_hash = NULL;
		p->seen = NULL;
	}
}

void rc_producer_finish(struct rc_producer *p)
{
	map_flush(p);
	if (p->map_fd >= 0)
		close(p->map_fd);
	p->map_fd = -1;
	free(p->first_hash);
	free(p->seen);
	p->first_hash = NULL;
	p->seen = NULL;
}

/* The producer: writes one byte to ready_fd once it serves the ring, then
 * closes it; never returns. */
static void producer_main(struct rc_ring *r, struct rc_dev *src,
			  const struct rc_rdv *rdv, int ready_fd, int map_fd)
	__attribute__((noreturn));

static void producer_main(struct rc_ring *r, struct rc_dev *src,
			  const struct rc_rdv *rdv, int ready_fd, int map_fd)
{
	struct rc_producer p;
	/* The run directory stays open: the rendezvous file is removed
	 * through it, never by its path. */
	int keep[4] = { src->fd, ready_fd, map_fd, rdv->dirfd };
	int fd;

	rc_ring_populate(r);
	rc_producer_init(&p, r, src, map_fd);
	setsid();
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_term; /* no SA_RESTART: ends a linger */
		sigaction(SIGTERM, &sa, NULL);
	}
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	rc_close_fds_except(keep, 4);
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	if (rc_proto_producer_start(r, &p.pp) < 0)
		_exit(1);
	if (write(ready_fd, "1", 1) != 1)
		_exit(1);
	close(ready_fd);

	rc_producer_tables(&p);
	/* The binary runs the steps the schedule test runs. */
	while (rc_producer_step(&p))
		;
	rc_producer_finish(&p);

	{
		int shmid = r->shmid, semid = r->semid;

		rc_ring_remove(r);
		rc_rdv_remove_if_ours(rdv, shmid, semid);
	}
	rc_dev_close(src);
	_exit(0);
}

int rc_producer_spawn(struct rc_ring *r, struct rc_dev *src,
		      const struct rc_rdv *rdv, int map_fd, char *err,
		      size_t errlen)
{
	int pfd[2], status;
	pid_t pid;
	char c;
	ssize_t n;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -errno;
	}
	/* Twice removed: the producer is nobody's child here, and outlives
	 * the invocation. */
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -errno;
	}
	if (pid == 0) {
		pid_t p2;

		close(pfd[0]);
		p2 = fork();
		if (p2 == 0)
			producer_main(r, src, rdv, pfd[1], map_fd);
		_exit(p2 < 0 ? 1 : 0);
	}
	close(pfd[1]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	do {
		n = read(pfd[0], &c, 1);
	} while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n != 1) {
		snprintf(err, errlen, "the producer failed to start");
		return -ECHILD;
	}
	r->producer_pid = r->hdr->producer_pid;
	r->producer_start = r->hdr->producer_start;
	return 0;
}
