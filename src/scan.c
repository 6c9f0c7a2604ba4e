/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the scan before registering (--skip-equal with --expect):
 * each target that can be read back is compared block by block with the
 * golden manifest, all targets at once (a forked scanner each, one read of
 * each disk), before its consumer registers.  What a target holds goes to
 * the ring's needed bitmap at registration; the producer then reads no
 * block that every registered consumer holds (doc/design.md, "The producer
 * reads only what some target lacks"). */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ringcopy/core.h"
#include "ringcopy/invocation.h"
#include "ringcopy/ringproto.h"
#include "ringcopy/util.h"
#include "ringcopy/verify.h"

/* Can the producer skip reads of this source: read at any offset, not a
 * pipe, a stream or a decoded compressed file (read in order: skipping
 * a block saves nothing)? */
static bool source_skippable(const struct invocation *inv)
{
	struct rc_source_id id;
	const struct rc_dev *src = inv->src;

	return !inv->stream && (src->caps & RC_CAP_SEEKABLE) &&
	       !(src->caps & (RC_CAP_SEQUENTIAL | RC_CAP_DECODES)) &&
	       rc_dev_identity(inv->src, &id) == 0 &&
	       id.kind != RC_SRC_PIPE && id.kind != RC_SRC_DECODED;
}

/* The scanner of one target (a child): set held's bit of every block the
 * target holds as the manifest says.  Exits 0, or 1 when it could not
 * read the target at all (it then holds nothing). */
static void scan_target(struct invocation *inv, int i, uint8_t *held)
	__attribute__((noreturn));

static void scan_target(struct invocation *inv, int i, uint8_t *held)
{
	const struct rc_image_hashes *m = &inv->expect;
	struct rc_dev *dst = inv->dst[i], *rd = NULL;
	const char *how = "";
	char err[300];
	void *buf = NULL;
	uint64_t b, hash;

	if (posix_memalign(&buf, RC_ALIGN, m->block_size)) {
		buf = NULL;
		_exit(1);
	}
	if (dst->be->open_readback(dst, &rd, &how) < 0) {
		free(buf);
		_exit(1);
	}
	const struct rc_readback rb = { rd, NULL, buf, m, dst->spec, err,
					sizeof err };

	for (b = 0; b < m->nblocks && !rc_interrupted; b++) {
		uint64_t off = b * m->block_size;

		if (off + rc_block_len(m->image_size, m->block_size, b) >
		    dst->size)
			break; /* a smaller target holds nothing past it */
		if (rc_readback_hash(&rb, b, &hash) < 0)
			break; /* unreadable from here on: written */
		if (hash == m->hash[b])
			held[b / 8] |= (uint8_t)(1u << (b % 8));
	}
	rc_dev_close(rd);
	free(buf);
	_exit(rc_interrupted ? 1 : 0);
}

/* Fork a scanner per target that can be read back; wait for them all. */
static void scan_all(struct invocation *inv, size_t bytes)
{
	pid_t pid[RC_TARGETS_MAX];
	int i, st;

	for (i = 0; i < inv->n; i++) {
		struct rc_dev *d = inv->dst[i];

		pid[i] = -1;
		if (!d->be->open_readback || (d->caps & RC_CAP_SEQUENTIAL))
			continue; /* holds nothing: needs every block */
		pid[i] = fork();
		if (pid[i] == 0)
			scan_target(inv, i, inv->held_map + (size_t)i * bytes);
	}
	for (i = 0; i < inv->n; i++) {
		if (pid[i] <= 0)
			continue;
		while (waitpid(pid[i], &st, 0) < 0)
			if (errno != EINTR)
				break;
			else if (rc_interrupted)
				kill(pid[i], SIGTERM);
		inv->held[i] = inv->held_map + (size_t)i * bytes;
	}
}

int rc_step_scan(struct invocation *inv)
{
	const struct rc_image_hashes *m = &inv->expect;
	size_t bytes = (size_t)(m->nblocks + 7) / 8;
	uint64_t b, count;
	int i;

	if (!inv->o.expect || !source_skippable(inv))
		return NEXT;
	/* A ring we create can serve joiners that skip, even if our own
	 * targets do not. */
	inv->req.need_map = true;
	if (!inv->o.skip_equal || !inv->n)
		return NEXT;
	inv->held_len = bytes * (size_t)inv->n;
	inv->held_map = mmap(NULL, inv->held_len, PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (inv->held_map == MAP_FAILED) {
		inv->held_map = NULL; /* every block is read, as before */
		return NEXT;
	}
	scan_all(inv, bytes);
	if (rc_interrupted) {
		/* Nothing registered, nothing written: stop here. */
		snprintf(inv->err, sizeof inv->err,
			 "interrupted while the targets were compared with %s: nothing was written",
			 inv->o.expect);
		rc_inv_refuse(inv);
		inv->status = RC_EXIT_FAILED;
		return END;
	}
	for (i = 0; i < inv->n; i++) {
		if (!inv->held[i])
			continue;
		for (b = count = 0; b < m->nblocks; b++)
			count += (inv->held[i][b / 8] >> (b % 8)) & 1;
		rc_msg("target %s holds %llu of the %llu blocks of %s (--skip-equal)",
		       inv->specs[i], (unsigned long long)count,
		       (unsigned long long)m->nblocks, inv->o.expect);
	}
	inv->req.held = (const uint8_t *const *)inv->held;
	return NEXT;
}
