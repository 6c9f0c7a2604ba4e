/* ringcopy - the producer: reads the source once per pass into the ring.
 *
 * For each sequence number n (DESIGN.md, "The semaphores"):
 *  1. under LOCK, drop consumers that left, take n = next_seq++ and the set
 *     R of active consumers that need n; with nobody to serve, leave;
 *  2. one semtimedop takes FREE[i] -1 for every i in R at once: SysV applies
 *     all or nothing, so no slot is overwritten before every consumer that
 *     needs it has read it;
 *  3. read block n mod nblocks into slot n mod nslots, hash it;
 *  4. one semop posts AVAIL[i] +1 for every i in R.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sem.h>
#include <time.h>
#include <unistd.h>

#include "ringcopy/core.h"
#include "ringcopy/util.h"
#include "ringcopy/verify.h"

#define WAIT_MS 500 /* how long a wait goes before checking on its peers */

struct producer {
	struct rc_ring *r;
	struct rc_dev *src;
	struct rc_select sel;
	struct sembuf ops[RC_CONS_MAX];
	uint64_t rate_t0, rate_bytes;
	/* The hash of every block the first time it was read, to catch a
	 * source that changes between passes (NULL if out of memory). */
	uint64_t *first_hash;
	uint8_t *seen; /* bitmap of blocks read at least once */
	struct rc_holes holes; /* the source's holes are not read */
	/* Stall tracking, per consumer-table entry: the entry's first_seq
	 * identifies its occupant, blocks_done its progress. */
	struct {
		uint64_t first, done, since_ns;
	} stall[RC_CONS_MAX];
	int map_fd;             /* --rescue map file, or -1 */
	uint64_t idle_since;    /* when the last consumer left (--linger) */
	uint64_t bad_off, bad_len; /* the bad range being extended */
};

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

/* Mark dead consumers of the table as leaving (LOCK held).  A consumer is
 * dead when its liveness token is gone: SEM_UNDO dropped it with the
 * process, whatever killed it. */
static void evict_dead_locked(struct producer *p)
{
	struct rc_ring *r = p->r;
	uint32_t i;

	for (i = 0; i < r->ncons; i++)
		if (r->ctab[i].state == RC_CONS_ACTIVE &&
		    rc_sem_get(r, RC_SEM_ALIVE(i)) == 0)
			r->ctab[i].state = RC_CONS_LEAVING;
}

static uint32_t prune(struct rc_ring *r, uint32_t *set, uint32_t n)
{
	uint32_t k, j = 0;

	for (k = 0; k < n; k++)
		if (r->ctab[set[k]].state == RC_CONS_ACTIVE)
			set[j++] = set[k];
	return j;
}

/* An evicted entry becomes free once its process has dropped its token
 * (it noticed, or it died); until then a new occupant's token would be
 * indistinguishable from the stalled one's (LOCK held). */
static void reap_evicted_locked(struct producer *p)
{
	struct rc_ring *r = p->r;
	uint32_t i;

	for (i = 0; i < r->ncons; i++)
		if (r->ctab[i].state == RC_CONS_EVICTED &&
		    rc_sem_get(r, RC_SEM_ALIVE(i)) == 0)
			r->ctab[i].state = RC_CONS_FREE;
}

/* Evict the consumers we wait for that made no progress for the stall
 * timeout: alive (a SIGSTOPped process keeps its token) but holding every
 * other target hostage (LOCK held). */
static void evict_stalled_locked(struct producer *p)
{
	struct rc_ring *r = p->r;
	uint64_t now = rc_now_ns(), limit = (uint64_t)r->hdr->stall_ms * 1000000u;
	uint32_t k;

	if (!limit)
		return;
	for (k = 0; k < p->sel.nwait; k++) {
		uint32_t i = p->sel.wait[k];
		struct rc_cons_ent *c = &r->ctab[i];
		uint64_t done = __atomic_load_n(&c->blocks_done, __ATOMIC_RELAXED);

		if (c->state != RC_CONS_ACTIVE)
			continue;
		/* Only one that holds us: its credits are spent.  Those that
		 * wait for data starve with us and are not to blame. */
		if (p->stall[i].first != c->first_seq || !p->stall[i].since_ns ||
		    p->stall[i].done != done ||
		    rc_sem_get(r, RC_SEM_FREE(i)) != 0) {
			p->stall[i].first = c->first_seq;
			p->stall[i].done = done;
			p->stall[i].since_ns = now;
		} else if (now - p->stall[i].since_ns > limit) {
			c->state = RC_CONS_EVICTED;
			p->stall[i].since_ns = 0;
		}
	}
}

/* Keep only the members of the sets that are still active (LOCK held). */
static void prune_sets_locked(struct producer *p)
{
	evict_dead_locked(p);
	evict_stalled_locked(p);
	p->sel.nwait = prune(p->r, p->sel.wait, p->sel.nwait);
	p->sel.nneed = prune(p->r, p->sel.need, p->sel.nneed);
}

/* Sleep until the consumer table may have changed, or WAIT_MS. */
static int wait_table(struct producer *p)
{
	struct sembuf op = { RC_SEM_JOIN, -1, 0 };
	int rc = rc_semop(p->r->semid, &op, 1, WAIT_MS);

	if (rc == -EIDRM)
		return rc;
	semctl(p->r->semid, RC_SEM_JOIN, SETVAL, 0);
	return 0;
}

static int wait_free(struct producer *p)
{
	struct rc_ring *r = p->r;
	uint32_t k;
	int rc;

	for (;;) {
		for (k = 0; k < p->sel.nwait; k++) {
			p->ops[k].sem_num =
				(unsigned short)RC_SEM_FREE(p->sel.wait[k]);
			p->ops[k].sem_op = -1;
			p->ops[k].sem_flg = 0;
		}
		rc = rc_semop(r->semid, p->ops, p->sel.nwait, WAIT_MS);
		if (rc == 0)
			return 0;
		if (rc != -EAGAIN && rc != -EINTR)
			return rc;
		/* Slow or dead consumers: drop the dead and the departed,
		 * and wait again for the rest. */
		rc = rc_ring_lock(r);
		if (rc < 0)
			return rc;
		prune_sets_locked(p);
		rc_ring_unlock(r);
		if (p->sel.nwait == 0)
			return 0;
	}
}

static int post_avail(struct producer *p)
{
	uint32_t k;

	for (k = 0; k < p->sel.nneed; k++) {
		p->ops[k].sem_num =
			(unsigned short)RC_SEM_AVAIL(p->sel.need[k]);
		p->ops[k].sem_op = 1;
		p->ops[k].sem_flg = 0;
	}
	return rc_semop(p->r->semid, p->ops, p->sel.nneed, -1);
}

static void throttle(struct producer *p, uint32_t len)
{
	uint64_t rate = p->r->hdr->rate, due, now;
	struct timespec ts;

	if (!rate)
		return;
	if (!p->rate_t0)
		p->rate_t0 = rc_now_ns();
	/* The time by which the bytes read so far were due. */
	due = p->rate_t0 +
	      (uint64_t)((double)p->rate_bytes * 1e9 / (double)rate);
	now = rc_now_ns();
	if (due > now) {
		ts.tv_sec = (time_t)((due - now) / 1000000000u);
		ts.tv_nsec = (long)((due - now) % 1000000000u);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	p->rate_bytes += len;
}

/* Fail the ring: every consumer reports err; then wait for them to go. */
static void fail_ring(struct producer *p, int err, uint64_t off,
		      const char *msg)
{
	struct rc_ring *r = p->r;
	struct rc_ring_hdr *h = r->hdr;
	uint32_t i;

	if (rc_ring_lock(r) < 0)
		return;
	h->err_code = err;
	h->err_offset = off;
	rc_strlcpy(h->err_msg, msg, sizeof h->err_msg);
	h->state = RC_RING_FAILED;
	p->sel.nneed = 0;
	for (i = 0; i < r->ncons; i++)
		if (r->ctab[i].state == RC_CONS_ACTIVE)
			p->sel.need[p->sel.nneed++] = i;
	rc_ring_unlock(r);
	post_avail(p); /* wake them: they see FAILED */
	for (;;) {
		uint32_t active = 0;

		if (rc_ring_lock(r) < 0)
			return;
		evict_dead_locked(p);
		reap_evicted_locked(p);
		for (i = 0; i < r->ncons; i++) {
			if (r->ctab[i].state == RC_CONS_LEAVING)
				r->ctab[i].state = RC_CONS_FREE;
			else if (r->ctab[i].state == RC_CONS_ACTIVE)
				active++;
		}
		rc_ring_unlock(r);
		if (!active || wait_table(p) < 0)
			return;
	}
}

/* The marker written over unreadable sectors (--rescue): documented in
 * ringcopy(1), so that a user can find them in a copy. */
static const char rescue_marker[16] = "RINGCOPY-BADSECT";

static void map_flush(struct producer *p)
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
static int rescue_block(struct producer *p, uint64_t off, uint32_t len,
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
static int read_block(struct producer *p, uint64_t off, uint32_t len,
		      unsigned char *data, bool *hole)
{
	char msg[RC_ERRMSG_MAX];
	ssize_t got;

	*hole = rc_is_hole(p->src, &p->holes, off, len);
	if (*hole)
		return 0; /* the ring carries the flag, not the zeros */
	throttle(p, len);
	got = rc_dev_pread(p->src, data, len, off);
	if (got < 0 && p->r->hdr->rescue) {
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
static int check_stable(struct producer *p, uint64_t block, uint64_t hash,
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

static int produce(struct producer *p, uint64_t n)
{
	struct rc_ring *r = p->r;
	struct rc_ring_hdr *h = r->hdr;
	uint64_t block = rc_seq_block(n, r->nblocks);
	uint64_t off = block * r->block_size;
	uint32_t len = rc_block_len(r->image_size, r->block_size, block);
	uint32_t slot = rc_seq_slot(n, r->nslots);
	struct rc_slot_hdr *s = &r->shdr[slot];
	unsigned char *data = rc_slot_data(r, slot);
	uint64_t hash;
	bool hole, zero;

	if (read_block(p, off, len, data, &hole) < 0)
		return -1;
	zero = hole || all_zero(data, len);
	hash = hole ? rc_zero_hash(len) : rc_block_hash(data, len);
	if (check_stable(p, block, hash, off) < 0)
		return -1;
	s->seq = n;
	s->block = block;
	s->len = len;
	s->flags = zero ? RC_SLOT_ZERO : 0;
	s->hash = hash;
	s->checked = RC_SEQ_NONE;
	if (!hole)
		set_counter(&h->bytes_read, h->bytes_read + len);
	set_counter(&h->blocks_read, h->blocks_read + 1);
	if (zero)
		set_counter(&h->zero_blocks, h->zero_blocks + 1);
	if (block == r->nblocks - 1)
		set_counter(&h->passes, h->passes + 1);
	return 0;
}

/* How many more milliseconds an idle producer waits for a joiner:
 * INT64_MAX forever, 0 not at all. */
static int64_t linger(struct producer *p)
{
	uint32_t ms = p->r->hdr->linger_ms;
	uint64_t now = rc_now_ns(), idle;

	if (!ms || rc_interrupted)
		return 0; /* SIGTERM ends the linger */
	if (ms == UINT32_MAX)
		return INT64_MAX;
	if (!p->idle_since)
		p->idle_since = now;
	idle = (now - p->idle_since) / 1000000u;
	return idle < ms ? (int64_t)(ms - idle) : 0;
}

static void on_term(int sig)
{
	rc_interrupted = 1;
}

/* The main loop; returns when nobody is left to serve or the ring fails. */
static void serve(struct producer *p)
{
	struct rc_ring *r = p->r;
	struct rc_ring_hdr *h = r->hdr;

	for (;;) {
		uint64_t n;
		uint32_t active;

		if (rc_ring_lock(r) < 0)
			return;
		n = h->next_seq;
		reap_evicted_locked(p);
		active = rc_ring_select(r->ctab, r->ncons, r->nblocks,
					r->nslots, n, &p->sel);
		if (!active && linger(p) > 0) {
			/* Idle: nothing is read and no CPU is used until a
			 * joiner posts JOIN, the linger ends or SIGTERM. */
			struct sembuf op = { RC_SEM_JOIN, -1, 0 };
			int64_t left = linger(p);

			rc_ring_unlock(r);
			if (rc_semop(r->semid, &op, 1,
				     left == INT64_MAX ? -1 : (int)left) == -EIDRM)
				return;
			semctl(r->semid, RC_SEM_JOIN, SETVAL, 0);
			continue;
		}
		if (!active) {
			h->state = RC_RING_CLOSING;
			rc_ring_unlock(r);
			return;
		}
		p->idle_since = 0;
		if (!p->sel.nneed) {
			if (p->sel.later != UINT64_MAX) {
				/* Nobody needs n: jump, read nothing. */
				h->next_seq = p->sel.later;
				rc_ring_unlock(r);
				continue;
			}
			/* Everyone has what they need and is finishing. */
			evict_dead_locked(p);
			rc_ring_unlock(r);
			if (wait_table(p) < 0)
				return;
			continue;
		}
		h->next_seq = n + 1;
		rc_ring_unlock(r);

		if (wait_free(p) < 0)
			return;
		if (!p->sel.nneed)
			continue; /* those who needed n are gone */
		if (produce(p, n) < 0)
			return;
		if (post_avail(p) < 0)
			return;
	}
}

void rc_producer_main(struct rc_ring *r, struct rc_dev *src,
		      const char *rdv_path, int ready_fd, int map_fd)
{
	struct producer p = { .r = r, .src = src, .map_fd = map_fd };
	struct sembuf op = { RC_SEM_PALIVE, 1, SEM_UNDO };
	int keep[3] = { src->fd, ready_fd, map_fd };
	int fd;

	rc_holes_init(&p.holes);
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
	rc_close_fds_except(keep, 3);
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	if (rc_semop(r->semid, &op, 1, -1) < 0 || rc_ring_lock(r) < 0)
		_exit(1);
	r->hdr->producer_pid = getpid();
	r->hdr->producer_start = rc_proc_start(getpid());
	r->hdr->state = RC_RING_RUNNING;
	rc_ring_unlock(r);
	if (write(ready_fd, "1", 1) != 1)
		_exit(1);
	close(ready_fd);

	p.first_hash = malloc(r->nblocks * sizeof *p.first_hash);
	p.seen = calloc(r->nblocks / 8 + 1, 1);
	if (!p.first_hash || !p.seen) {
		free(p.first_hash);
		free(p.seen);
		p.first_hash = NULL;
		p.seen = NULL;
	}
	serve(&p);
	map_flush(&p);
	if (p.map_fd >= 0)
		close(p.map_fd);
	free(p.first_hash);
	free(p.seen);

	{
		int shmid = r->shmid, semid = r->semid;

		rc_ring_remove(r);
		rc_rdv_remove_if_ours(rdv_path, shmid, semid);
	}
	rc_dev_close(src);
	_exit(0);
}
