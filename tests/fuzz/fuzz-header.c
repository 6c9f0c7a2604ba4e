/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libFuzzer target: shared-memory header validation.  Whatever the bytes,
 * rc_ring_validate() must not crash, and a header it accepts must describe
 * a layout that fits the segment it claims. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcopy/ring.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* With RC_FUZZ_SEED_DIR set, write one valid header there as a seed. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("RC_FUZZ_SEED_DIR");
	struct rc_ring_hdr h;
	struct rc_layout l;
	char path[4096];
	FILE *f;

	if (!dir)
		return 0;
	memset(&h, 0, sizeof h);
	rc_ring_layout(65536, 8, 4, &l);
	h.magic = RC_RING_MAGIC;
	h.version = RC_RING_VERSION;
	h.hdr_size = sizeof h;
	h.seg_size = l.seg_size;
	h.src_kind = RC_SRC_FILE;
	h.block_size = 65536;
	h.image_size = 1000000;
	h.nblocks = 16;
	h.nslots = 8;
	h.ncons = 4;
	h.ctab_off = l.ctab_off;
	h.shdr_off = l.shdr_off;
	h.data_off = l.data_off;
	h.state = RC_RING_RUNNING;
	snprintf(path, sizeof path, "%s/valid-header", dir);
	f = fopen(path, "wb");
	if (f) {
		/* The segment size travels in the first 8 bytes. */
		fwrite(&l.seg_size, sizeof l.seg_size, 1, f);
		fwrite(&h, sizeof h, 1, f);
		fclose(f);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rc_ring_hdr h;
	uint64_t seg;

	if (size < sizeof seg + sizeof h)
		return 0;
	memcpy(&seg, data, sizeof seg);
	memcpy(&h, data + sizeof seg, sizeof h);
	if (rc_ring_validate(&h, seg, NULL) != 0)
		return 0;
	/* Accepted: every region must lie inside the segment, in order. */
	if (h.ctab_off < sizeof h ||
	    h.shdr_off < h.ctab_off + (uint64_t)h.ncons * sizeof(struct rc_cons_ent) ||
	    h.data_off < h.shdr_off + (uint64_t)h.nslots * sizeof(struct rc_slot_hdr) ||
	    h.data_off % RC_ALIGN ||
	    h.data_off + (uint64_t)h.nslots * h.block_size > seg ||
	    h.nblocks == 0 || h.nslots == 0 || h.nslots > RC_SLOTS_MAX ||
	    (h.block_size & (h.block_size - 1)))
		abort();
	return 0;
}
