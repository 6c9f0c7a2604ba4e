/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the shared ring: layout, validation, creation, semaphores. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <time.h>
#include <unistd.h>

#include "ringcopy/ring.h"
#include "ringcopy/util.h"

union rc_semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

int rc_ring_layout(uint32_t block_size, uint32_t nslots, uint32_t ncons,
		   struct rc_layout *out)
{
	uint64_t data;

	if (!rc_is_pow2(block_size) || block_size < RC_BLOCK_MIN ||
	    block_size > RC_BLOCK_MAX || nslots == 0 ||
	    nslots > RC_SLOTS_MAX || ncons == 0 || ncons > RC_CONS_MAX)
		return -EINVAL;
	out->ctab_off = align_up(sizeof(struct rc_ring_hdr), 64);
	out->shdr_off = align_up(out->ctab_off +
				 (uint64_t)ncons * sizeof(struct rc_cons_ent),
				 64);
	out->data_off = align_up(out->shdr_off +
				 (uint64_t)nslots * sizeof(struct rc_slot_hdr),
				 RC_ALIGN);
	/* Bounded above: 16384 slots of 64 MiB fit 64 bits easily. */
	data = (uint64_t)nslots * block_size;
	out->seg_size = out->data_off + data;
	return 0;
}

uint32_t rc_block_len(uint64_t image_size, uint32_t block_size,
		      uint64_t block)
{
	uint64_t off = block * block_size;

	if (off >= image_size)
		return 0;
	return image_size - off < block_size ? (uint32_t)(image_size - off)
					     : block_size;
}

uint32_t rc_ring_select(struct rc_cons_ent *ctab, uint32_t ncons,
			uint64_t nblocks, uint32_t nslots, uint64_t n,
			struct rc_select *sel)
{
	uint32_t i, active = 0;

	sel->nneed = sel->nwait = 0;
	sel->later = UINT64_MAX;
	for (i = 0; i < ncons && i < RC_CONS_MAX; i++) {
		struct rc_cons_ent *c = &ctab[i];
		uint64_t first = c->first_seq;

		if (c->state == RC_CONS_LEAVING) {
			c->state = RC_CONS_FREE;
			continue;
		}
		/* An evicted entry is reclaimed by the producer once its
		 * process dropped its token (see evict in producer.c). */
		if (c->state != RC_CONS_ACTIVE)
			continue;
		active++;
		if (RC_WIN_NEEDS(first, nblocks, n))
			sel->need[sel->nneed++] = i;
		else if (first > n && first < sel->later)
			sel->later = first;
		/* Its last nslots slots stay protected after its range
		 * (ringwin.h). */
		if (RC_WIN_IN_WAIT(first, nblocks, nslots, n))
			sel->wait[sel->nwait++] = i;
	}
	return active;
}

int rc_ring_validate(const struct rc_ring_hdr *h, uint64_t seg_size,
		     const char **why)
{
	struct rc_layout l;
	const char *w = NULL;

	if (seg_size < sizeof *h)
		w = "segment smaller than a ring header";
	else if (h->magic != RC_RING_MAGIC)
		w = "bad magic";
	else if (h->version != RC_RING_VERSION)
		w = "unsupported layout version";
	else if (h->hdr_size != sizeof *h)
		w = "bad header size";
	else if (h->seg_size != seg_size)
		w = "segment size does not match the header";
	else if (!rc_is_pow2(h->block_size) || h->block_size < RC_BLOCK_MIN ||
		 h->block_size > RC_BLOCK_MAX)
		w = "block size is not a power of two from 4K to 64M";
	else if (h->nslots == 0 || h->nslots > RC_SLOTS_MAX)
		w = "slot count out of range";
	else if (h->ncons == 0 || h->ncons > RC_CONS_MAX)
		w = "consumer capacity out of range";
	else if (h->nblocks != h->image_size / h->block_size +
				       !!(h->image_size % h->block_size) ||
		 h->nblocks == 0)
		w = "block count does not match the image size";
	else if (h->src_kind < RC_SRC_FILE || h->src_kind > RC_SRC_DECODED)
		w = "bad source kind";
	else if (h->state < RC_RING_STARTING || h->state > RC_RING_FAILED)
		w = "bad ring state";
	else if (rc_ring_layout(h->block_size, h->nslots, h->ncons, &l) < 0 ||
		 h->need_bytes > seg_size ||
		 l.seg_size != seg_size - h->need_bytes)
		w = "geometry does not fit the segment";
	else if (h->ctab_off != l.ctab_off || h->shdr_off != l.shdr_off ||
		 h->data_off != l.data_off)
		w = "offsets outside the expected layout";
	else if (h->need_bytes ? h->need_bytes != RC_NEED_BYTES(h->nblocks) ||
					 h->need_off != l.seg_size
			       : h->need_off != 0)
		w = "needed bitmap outside the expected layout";
	if (why)
		*why = w;
	return w ? -EINVAL : 0;
}

/* Fill r's pointers and private geometry from a validated header. */
static void ring_bind(struct rc_ring *r)
{
	struct rc_ring_hdr *h = r->base;

	r->hdr = h;
	r->block_size = h->block_size;
	r->nslots = h->nslots;
	r->ncons = h->ncons;
	r->image_size = h->image_size;
	r->nblocks = h->nblocks;
	r->rate = h->rate;
	r->stall_ms = h->stall_ms;
	r->linger_ms = h->linger_ms;
	r->rescue = h->rescue != 0;
	r->producer_pid = h->producer_pid;
	r->producer_start = h->producer_start;
	r->ctab = (struct rc_cons_ent *)((char *)r->base + h->ctab_off);
	r->shdr = (struct rc_slot_hdr *)((char *)r->base + h->shdr_off);
	r->data = (unsigned char *)r->base + h->data_off;
	r->need = h->need_bytes ? (uint64_t *)((char *)r->base + h->need_off)
				: NULL;
}

static const char *shm_hint(int e)
{
	switch (e) {
	case EINVAL:
		return " (raise kernel.shmmax, or use a smaller --buffer)";
	case ENOSPC:
		return " (raise kernel.shmmni or kernel.shmall)";
	case ENOMEM:
		return " (not enough memory for the ring: use a smaller --buffer)";
	default:
		return "";
	}
}

void rc_ring_geometry(const struct rc_ring_params *p, uint64_t *nblocks,
		      uint64_t *nslots)
{
	*nblocks = p->image_size / p->block_size +
		   !!(p->image_size % p->block_size);
	*nslots = p->buffer_size / p->block_size;
	if (*nslots > *nblocks)
		*nslots = *nblocks; /* a ring larger than the image is waste */
	if (*nslots > RC_SLOTS_MAX)
		*nslots = RC_SLOTS_MAX;
	if (*nslots < 1)
		*nslots = 1;
}

int rc_ring_create(const struct rc_ring_params *p, struct rc_ring *r,
		   char *err, size_t errlen)
{
	struct rc_ring_hdr *h;
	struct rc_layout l;
	unsigned short *vals;
	union rc_semun arg;
	uint64_t nblocks, nslots, need;
	int nsems, e;

	memset(r, 0, sizeof *r);
	r->shmid = r->semid = -1;
	rc_ring_geometry(p, &nblocks, &nslots);
	if (rc_ring_layout(p->block_size, (uint32_t)nslots, p->ncons, &l) < 0) {
		snprintf(err, errlen, "invalid ring geometry");
		return -EINVAL;
	}
	/* The needed bitmap is the segment's tail (8-byte aligned: the data
	 * before it is whole blocks). */
	need = p->need_map ? RC_NEED_BYTES(nblocks) : 0;
	l.seg_size += need;
	r->shmid = shmget(IPC_PRIVATE, l.seg_size, IPC_CREAT | IPC_EXCL | 0600);
	if (r->shmid < 0) {
		e = errno;
		snprintf(err, errlen, "shmget of %llu bytes: %s%s",
			 (unsigned long long)l.seg_size, strerror(e),
			 shm_hint(e));
		return -e;
	}
	nsems = RC_NSEMS(p->ncons);
	r->semid = semget(IPC_PRIVATE, nsems, IPC_CREAT | IPC_EXCL | 0600);
	if (r->semid < 0) {
		e = errno;
		snprintf(err, errlen, "semget of %d semaphores: %s%s", nsems,
			 strerror(e),
			 e == ENOSPC ? " (raise kernel.sem: SEMMNI or SEMMNS)"
			 : e == EINVAL ? " (raise kernel.sem: SEMMSL)" : "");
		goto fail;
	}
	vals = calloc((size_t)nsems, sizeof *vals);
	if (!vals) {
		e = ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	vals[RC_SEM_LOCK] = 1;
	arg.array = vals;
	if (semctl(r->semid, 0, SETALL, arg) < 0) {
		e = errno;
		free(vals);
		snprintf(err, errlen, "semctl SETALL: %s", strerror(e));
		goto fail;
	}
	free(vals);
	r->base = shmat(r->shmid, NULL, 0);
	if (r->base == (void *)-1) {
		e = errno;
		r->base = NULL;
		snprintf(err, errlen, "shmat: %s", strerror(e));
		goto fail;
	}
	r->size = l.seg_size;
	h = r->base;
	/* A fresh segment is zero-filled by the kernel. */
	h->magic = RC_RING_MAGIC;
	h->version = RC_RING_VERSION;
	h->hdr_size = sizeof *h;
	h->seg_size = l.seg_size;
	h->src_kind = p->src_kind;
	h->block_size = p->block_size;
	h->src_id0 = p->src_id0;
	h->src_id1 = p->src_id1;
	h->image_size = p->image_size;
	h->nblocks = nblocks;
	h->nslots = (uint32_t)nslots;
	h->ncons = p->ncons;
	h->ctab_off = l.ctab_off;
	h->shdr_off = l.shdr_off;
	h->data_off = l.data_off;
	h->need_off = need ? l.seg_size - need : 0;
	h->need_bytes = need;
	h->state = RC_RING_STARTING;
	h->rate = p->rate;
	h->stall_ms = p->stall_ms;
	h->rescue = p->rescue;
	h->linger_ms = p->linger_ms;
	h->started_ns = rc_now_ns();
	/* The first pass may start anywhere (--start-at): its block 0 comes
	 * with the wrap, as for a late joiner. */
	h->next_seq = p->start_block < nblocks ? p->start_block : 0;
	rc_strlcpy(h->src_name, p->src_name, sizeof h->src_name);
	ring_bind(r);
	return 0;
fail:
	rc_ring_remove(r);
	return -e;
}

int rc_ring_attach(int shmid, int semid, struct rc_ring *r, char *err,
		   size_t errlen)
{
	struct shmid_ds ds;
	struct semid_ds sds;
	union rc_semun arg;
	const char *why;
	uid_t me = geteuid();

	memset(r, 0, sizeof *r);
	r->shmid = r->semid = -1;
	/* Classify before attaching: only objects this user created, that
	 * nobody else may touch, are ever attached (PostgreSQL's habit). */
	if (shmctl(shmid, IPC_STAT, &ds) < 0) {
		snprintf(err, errlen, "shared memory %d: %s", shmid,
			 strerror(errno));
		return -ENOENT;
	}
	if (ds.shm_perm.uid != me || ds.shm_perm.cuid != me ||
	    (ds.shm_perm.mode & 0777) != 0600) {
		snprintf(err, errlen,
			 "shared memory %d is not ours (owner %u, creator %u, mode %03o)",
			 shmid, (unsigned)ds.shm_perm.uid,
			 (unsigned)ds.shm_perm.cuid,
			 (unsigned)(ds.shm_perm.mode & 0777));
		return -EPERM;
	}
	arg.buf = &sds;
	if (semctl(semid, 0, IPC_STAT, arg) < 0) {
		snprintf(err, errlen, "semaphore set %d: %s", semid,
			 strerror(errno));
		return -ENOENT;
	}
	if (sds.sem_perm.uid != me || sds.sem_perm.cuid != me ||
	    (sds.sem_perm.mode & 0777) != 0600) {
		snprintf(err, errlen, "semaphore set %d is not ours", semid);
		return -EPERM;
	}
	r->base = shmat(shmid, NULL, 0);
	if (r->base == (void *)-1) {
		r->base = NULL;
		snprintf(err, errlen, "shmat %d: %s", shmid, strerror(errno));
		return -ENOENT;
	}
	r->shmid = shmid;
	r->semid = semid;
	r->size = ds.shm_segsz;
	if (rc_ring_validate(r->base, ds.shm_segsz, &why) < 0) {
		snprintf(err, errlen, "shared memory %d is not a valid ring: %s",
			 shmid, why);
		goto bad;
	}
	ring_bind(r);
	if (sds.sem_nsems != (unsigned long)RC_NSEMS(r->ncons)) {
		snprintf(err, errlen,
			 "semaphore set %d has %lu semaphores, ring needs %d",
			 semid, (unsigned long)sds.sem_nsems,
			 RC_NSEMS(r->ncons));
		goto bad;
	}
	return 0;
bad:
	shmdt(r->base);
	memset(r, 0, sizeof *r);
	r->shmid = r->semid = -1;
	return -EINVAL;
}

/* Map the segment's pages into this process in one call, before the copy
 * touches them one by one: each of the producer and the consumers would
 * otherwise take a page fault per 4 KiB of the ring (fork does not copy a
 * shared mapping's page tables), which on a virtual machine cost an eighth
 * of a local copy's CPU (doc/design.md).  The ring has no more slots than
 * the image has blocks (rc_ring_geometry): a copy touches them all (one
 * whose producer skips blocks maybe not; the segment is the memory the
 * ring was sized for either way).  Failing changes nothing (kernels
 * before 5.14 do not know the advice). */
void rc_ring_populate(struct rc_ring *r)
{
#ifdef MADV_POPULATE_WRITE
	if (r->base)
		(void)madvise(r->base, r->size, MADV_POPULATE_WRITE);
#else
	(void)r;
#endif
}

void rc_ring_detach(struct rc_ring *r)
{
	if (r->base)
		shmdt(r->base);
	r->base = NULL;
	r->hdr = NULL;
}

bool rc_ring_left(const struct rc_ring *r)
{
	struct semid_ds sds;
	union rc_semun arg = { .buf = &sds };

	return r->semid >= 0 && semctl(r->semid, 0, IPC_STAT, arg) == 0;
}

uint64_t rc_ring_now(const struct rc_ring *r)
{
	return r->now_ns ? r->now_ns() : rc_now_ns();
}

void rc_ring_remove(struct rc_ring *r)
{
	rc_ring_detach(r);
	if (r->shmid >= 0)
		shmctl(r->shmid, IPC_RMID, NULL);
	if (r->semid >= 0)
		semctl(r->semid, 0, IPC_RMID);
	r->shmid = r->semid = -1;
}

static int read_longs(const char *path, long *v, int n)
{
	FILE *f = fopen(path, "re");
	int got = 0;

	if (!f)
		return -errno;
	while (got < n && fscanf(f, "%ld", &v[got]) == 1)
		got++;
	fclose(f);
	return got == n ? 0 : -EINVAL;
}

int rc_ipc_limits(struct rc_ipc_limits *l)
{
	long sem[4], v;
	unsigned long long u;
	FILE *f;

	memset(l, 0, sizeof *l);
	if (read_longs("/proc/sys/kernel/sem", sem, 4) < 0)
		return -ENOENT;
	l->semmsl = sem[0];
	l->semmns = sem[1];
	l->semopm = sem[2];
	l->semmni = sem[3];
	l->shmmax = UINT64_MAX;
	f = fopen("/proc/sys/kernel/shmmax", "re");
	if (f) {
		if (fscanf(f, "%llu", &u) == 1)
			l->shmmax = u;
		fclose(f);
	}
	l->shmall_pages = UINT64_MAX;
	f = fopen("/proc/sys/kernel/shmall", "re");
	if (f) {
		if (fscanf(f, "%llu", &u) == 1)
			l->shmall_pages = u;
		fclose(f);
	}
	if (read_longs("/proc/sys/kernel/shmmni", &v, 1) == 0)
		l->shmmni = v;
	return 0;
}

uint32_t rc_ipc_cons_capacity(const struct rc_ipc_limits *l)
{
	long cap = RC_CONS_MAX;

	/* The producer's all-or-nothing FREE wait holds one operation per
	 * consumer: SEMOPM bounds the capacity, SEMMSL the set size. */
	/* Registration posts one token per target and JOIN in one call. */
	if (l->semopm > 0 && l->semopm - 1 < cap)
		cap = l->semopm - 1;
	if (l->semmsl > 0 && (l->semmsl - 3) / 3 < cap)
		cap = (l->semmsl - 3) / 3;
	if (l->semmns > 0 && (l->semmns - 3) / 3 < cap)
		cap = (l->semmns - 3) / 3;
	return cap > 0 ? (uint32_t)cap : 0;
}
