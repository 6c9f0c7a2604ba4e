/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - block hashes, image digests, manifests and read-back. */
#ifndef RINGCOPY_VERIFY_H
#define RINGCOPY_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "ringcopy/backend.h"

#define RC_MANIFEST_TAG "ringcopy-manifest"
#define RC_MANIFEST_VERSION 1
#define RC_DIGEST_HEX 33 /* 32 hex digits and a NUL */
#define RC_BAD_MAX 8     /* bad offsets named in a report */

/* The XXH3-64 of every block of an image, in block order. */
struct rc_image_hashes {
	uint64_t image_size;
	uint32_t block_size;
	uint64_t nblocks;
	uint64_t *hash; /* nblocks entries */
};

/* XXH3-128 over the block hashes (as little-endian 64-bit words) in block
 * order, as 32 hex digits. */
void rc_digest(const struct rc_image_hashes *h, char out[RC_DIGEST_HEX]);
/* The XXH3-64 of a block: what slots carry and read-backs compare. */
uint64_t rc_block_hash(const void *data, size_t len);
/* XXH3-64 of len zero bytes. */
uint64_t rc_zero_hash(uint32_t len);

/* The words of an --expect mismatch, the same from the producer and from
 * the invocation: what matters first (the offset and both hashes), the
 * names last and shortened, so that it fits a ring's 256-byte message. */
void rc_expect_mismatch(char *buf, size_t len, uint64_t off, uint64_t got,
			uint64_t want, const char *source,
			const char *manifest);

/* Write the manifest atomically (a temporary file renamed over path). */
int rc_manifest_write(const char *path, const struct rc_image_hashes *h,
		      char *err, size_t errlen);
/* Parse a manifest; on error err says "PATH:LINE: what".  Returns 0,
 * -EINVAL for a malformed manifest, or -errno when it cannot be read.
 * h->hash is malloc'ed.  Memory follows what is verified: a manifest whose
 * image is larger than max_bytes (the largest target, a source's size;
 * UINT64_MAX for no bound) is read to its header only, and 1 returned with
 * h->hash NULL and h->image_size, block_size and nblocks set. */
int rc_manifest_read(const char *path, struct rc_image_hashes *h,
		     uint64_t max_bytes, char *err, size_t errlen);

struct rc_verify_out {
	uint64_t nbad;                /* blocks that differ */
	uint64_t bad_off[RC_BAD_MAX]; /* the first bad blocks' byte offsets */
	const char *how;              /* "direct", "fadvise" */
	char digest[RC_DIGEST_HEX];   /* digest of what the target holds */
	char error[256];              /* when it could not be read */
};

/* Blocks a consumer already read back while it waited for the source:
 * have[b] says block b's hash as read back is got[b]. */
struct rc_verified {
	const uint8_t *have;
	const uint64_t *got;
};

/* Read dev back past the page cache and compare every block with h; the
 * blocks in pre (may be NULL) are not read again.  Returns 0 when it
 * matches, 1 on a mismatch, -errno when it cannot be read (out->error
 * says why). */
int rc_verify_dev(struct rc_dev *dev, const struct rc_image_hashes *h,
		  const struct rc_verified *pre, struct rc_verify_out *out);
/* Where rc_verify_dev publishes the bytes it has compared so far (a
 * consumer points it at its result, for progress), or NULL. */
extern uint64_t *rc_verify_progress;
/* A target read back block after block: what rc_readback_hash needs
 * besides the block's number, set once per target. */
struct rc_readback {
	struct rc_dev *rd;               /* the target, from open_readback */
	struct rc_holes *holes;          /* its holes, read as zeros; NULL:
					  * every block is read */
	void *buf;                       /* a block, RC_ALIGN-aligned */
	const struct rc_image_hashes *h; /* the image's geometry and hashes */
	const char *spec;                /* the target, for messages */
	char *err;                       /* why a block cannot be read */
	size_t errlen;
};
/* The hash of block b as rb->rd holds it (a hole: the hash of zeros); 0,
 * or -errno with rb->err naming rb->spec, the offset and the error when
 * it cannot be read. */
int rc_readback_hash(const struct rc_readback *rb, uint64_t b,
		     uint64_t *hash);
/* "offsets 0, 1048576 and 2 more" for messages. */
void rc_verify_describe(const struct rc_verify_out *v, char *buf,
			size_t len);

/* `ringcopy verify MANIFEST TARGET...' */
int rc_cmd_verify(int argc, char **argv);

#endif
