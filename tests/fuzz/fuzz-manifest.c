/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libFuzzer target: the manifest parser.  Whatever the text, it must not
 * crash or leak; a manifest it accepts must be self-consistent. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringcopy/verify.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("RC_FUZZ_SEED_DIR");
	uint64_t hv[3] = { 1, 2, 3 };
	struct rc_image_hashes h = { 3 * 4096 - 7, 4096, 3, hv };
	char seed[4096], err[256];

	snprintf(path, sizeof path, "%s/rc-fuzz-manifest.%d",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
	if (dir) {
		snprintf(seed, sizeof seed, "%s/valid-manifest", dir);
		rc_manifest_write(seed, &h, err, sizeof err);
		hv[1] = rc_zero_hash(4096);
		hv[2] = rc_zero_hash(4096 - 7);
		snprintf(seed, sizeof seed, "%s/zeros-manifest", dir);
		rc_manifest_write(seed, &h, err, sizeof err);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rc_image_hashes h;
	char err[512];
	FILE *f = fopen(path, "wb");

	if (!f)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	if (rc_manifest_read(path, &h, UINT64_MAX, err, sizeof err) == 0) {
		if (!h.hash || h.nblocks != h.image_size / h.block_size +
						    !!(h.image_size % h.block_size))
			abort();
		free(h.hash);
	} else if (!strstr(err, "manifest ")) {
		abort(); /* every refusal names the manifest */
	}
	unlink(path);
	return 0;
}
