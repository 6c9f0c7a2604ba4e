/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the manifests of an invocation: --expect's golden manifest,
 * read before the image is sized and checked against what the targets
 * were given, and the --manifest written once they are done. */
#include "config.h"

#include <errno.h>
#include <stdio.h>

#include "ringcopy/core.h"
#include "ringcopy/invocation.h"
#include "ringcopy/util.h"
#include "ringcopy/verify.h"

/* --expect: the golden manifest, read before the image is sized.  Its
 * blocks are the ring's blocks; its size is the image's: a disk larger
 * than the image gives its first bytes, a source of unknown size (a pipe,
 * a compressed stream) must hold exactly that many, and an image file
 * must be that size. */
int rc_load_expect(struct invocation *inv)
{
	struct rc_image_hashes *m = &inv->expect;
	struct rc_opts *o = &inv->o;
	struct rc_dev *src = inv->src;
	char err[400];

	/* A source of known size bounds what the manifest may make us hold
	 * (one larger than it is refused below, its blocks never read). */
	if (rc_manifest_read(o->expect, m,
			     src->size != RC_SIZE_UNKNOWN ? src->size
							  : UINT64_MAX,
			     err, sizeof err) < 0) {
		snprintf(inv->err, sizeof inv->err, "--expect refused: %s", err);
		return -1;
	}
	if (o->block_size_set && o->block_size != m->block_size) {
		snprintf(inv->err, sizeof inv->err,
			 "--block-size %u refused: the manifest %s has blocks of %u bytes (--expect compares block by block)",
			 o->block_size, o->expect, m->block_size);
		return -1;
	}
	if (m->image_size == 0) {
		snprintf(inv->err, sizeof inv->err,
			 "--expect refused: the manifest %s describes an empty image: nothing to check",
			 o->expect);
		return -1;
	}
	o->block_size = m->block_size;
	o->block_size_set = true; /* a ring of other blocks is refused */
	if (o->buffer < o->block_size)
		o->buffer = o->block_size;
	if (o->size_mode == RC_SIZE_GIVEN && o->size != m->image_size) {
		snprintf(inv->err, sizeof inv->err,
			 "--size %llu refused: the manifest %s describes an image of %llu bytes",
			 (unsigned long long)o->size, o->expect,
			 (unsigned long long)m->image_size);
		return -1;
	}
	if (src->size != RC_SIZE_UNKNOWN && src->size != m->image_size &&
	    (src->size < m->image_size || !(src->caps & RC_CAP_BLOCKDEV))) {
		snprintf(inv->err, sizeof inv->err,
			 "source %s refused: it holds %llu bytes, the manifest %s describes an image of %llu bytes: not the golden image",
			 src->spec, (unsigned long long)src->size, o->expect,
			 (unsigned long long)m->image_size);
		return -1;
	}
	if (o->size_mode != RC_SIZE_GIVEN &&
	    (src->size == RC_SIZE_UNKNOWN || src->size != m->image_size))
		rc_msg("source %s: reading the %llu bytes the manifest %s describes (--expect)",
		       src->spec, (unsigned long long)m->image_size, o->expect);
	o->size_mode = RC_SIZE_GIVEN;
	o->size = m->image_size;
	o->size_quiet = true;
	return 0;
}

/* --expect, for this invocation's own targets: every block they were
 * given hashes as the golden manifest says.  The producer checks too when
 * it is ours; a copy that joined a ring started without --expect is
 * proved here. */
void rc_check_expected(struct invocation *inv)
{
	const struct rc_image_hashes *m = &inv->expect;
	char msg[sizeof inv->res[0].error];
	uint64_t b;
	int i;

	for (i = 0; i < inv->n; i++)
		if (inv->res[i].status == RC_RES_OK ||
		    inv->res[i].status == RC_RES_RESCUED ||
		    inv->res[i].status == RC_RES_MISMATCH)
			break;
	if (i == inv->n || !inv->hashes)
		return;
	for (b = 0; b < m->nblocks; b++)
		if (inv->hashes[b] != m->hash[b])
			break;
	if (b == m->nblocks)
		return;
	rc_expect_mismatch(msg, sizeof msg, b * m->block_size, inv->hashes[b],
			   m->hash[b], inv->src->spec, inv->o.expect);
	for (i = 0; i < inv->n; i++)
		if (inv->res[i].status == RC_RES_OK ||
		    inv->res[i].status == RC_RES_RESCUED ||
		    inv->res[i].status == RC_RES_MISMATCH) {
			inv->res[i].status = RC_RES_FAILED;
			rc_strlcpy(inv->res[i].error, msg,
				   sizeof inv->res[i].error);
		}
}

/* The manifest needs every block's hash: any target that completed the
 * copy saw them all. */
int rc_write_manifest(const char *path, struct rc_ring *r, uint64_t *hashes,
		      struct rc_result *res, int n)
{
	struct rc_image_hashes h = {
		.image_size = r->image_size, .block_size = r->block_size,
		.nblocks = r->nblocks, .hash = hashes,
	};
	char err[512];
	int i;

	for (i = 0; i < n; i++)
		if (res[i].status == RC_RES_OK ||
		    res[i].status == RC_RES_RESCUED ||
		    res[i].status == RC_RES_MISMATCH)
			break;
	if (!hashes || i == n) {
		rc_err("manifest %s not written: no target completed the copy",
		       path);
		return -EIO;
	}
	if (rc_manifest_write(path, &h, err, sizeof err) < 0) {
		rc_err("%s", err);
		return -EIO;
	}
	return 0;
}

