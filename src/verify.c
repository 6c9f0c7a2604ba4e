/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - block hashes, image digests, manifests and read-back.
 *
 * The manifest is a line-oriented text file (documented in ringcopy(1)):
 *
 *   ringcopy-manifest 1
 *   image-size BYTES
 *   block-size BYTES
 *   blocks N
 *   digest HEX32
 *   block INDEX HEX16          one block's XXH3-64
 *   zeros FIRST LAST           a run of all-zero blocks
 *   end
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#if defined(HAVE_XXH3_64BITS_DISPATCH) && defined(HAVE_XXH_X86DISPATCH_H)
/* The x86 build of libxxhash: vector code chosen at run time. */
#define RC_XXH_DISPATCH 1
#include <xxh_x86dispatch.h>
#endif

#include "ringcopy/cli.h"
#include "ringcopy/ring.h"
#include "ringcopy/ringproto.h"
#include "ringcopy/util.h"
#include "ringcopy/verify.h"

void rc_digest(const struct rc_image_hashes *h, char out[RC_DIGEST_HEX])
{
	XXH3_state_t *st = XXH3_createState();
	unsigned char le[8 * 512];
	XXH128_canonical_t c;
	XXH128_hash_t d;
	uint64_t b = 0;
	size_t n = 0;
	int i;

	XXH3_128bits_reset(st);
	for (b = 0; b < h->nblocks; b++) {
		for (i = 0; i < 8; i++)
			le[n++] = (unsigned char)(h->hash[b] >> (8 * i));
		if (n == sizeof le) {
			XXH3_128bits_update(st, le, n);
			n = 0;
		}
	}
	XXH3_128bits_update(st, le, n);
	d = XXH3_128bits_digest(st);
	XXH3_freeState(st);
	XXH128_canonicalFromHash(&c, d);
	for (i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", c.digest[i]);
}

uint64_t rc_block_hash(const void *data, size_t len)
{
#ifdef RC_XXH_DISPATCH
	return XXH3_64bits_dispatch(data, len);
#else
	return XXH3_64bits(data, len);
#endif
}

uint64_t rc_zero_hash(uint32_t len)
{
	static uint64_t cached;
	static uint32_t cached_len;
	void *z;

	if (len == cached_len && len)
		return cached;
	z = calloc(1, len ? len : 1);
	if (!z)
		abort();
	cached = rc_block_hash(z, len);
	cached_len = len;
	free(z);
	return cached;
}

void rc_expect_mismatch(char *buf, size_t len, uint64_t off, uint64_t got,
			uint64_t want, const char *source, const char *manifest)
{
	snprintf(buf, len,
		 "the block at offset %llu hashes %016llx, the manifest expects %016llx: not the golden image (source %.60s, manifest %.60s)",
		 (unsigned long long)off, (unsigned long long)got,
		 (unsigned long long)want, source, manifest);
}

int rc_manifest_write(const char *path, const struct rc_image_hashes *h,
		      char *err, size_t errlen)
{
	char tmp[4096], digest[RC_DIGEST_HEX];
	uint64_t b, zfull = rc_zero_hash(h->block_size);
	FILE *f;
	int fd;

	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", path) >=
	    sizeof tmp) {
		snprintf(err, errlen, "manifest %s: path too long", path);
		return -ENAMETOOLONG;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		snprintf(err, errlen, "manifest %s: %s", path, strerror(errno));
		return -errno;
	}
	fchmod(fd, 0644);
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(tmp);
		snprintf(err, errlen, "manifest %s: %s", path, strerror(errno));
		return -ENOMEM;
	}
	rc_digest(h, digest);
	fprintf(f, RC_MANIFEST_TAG " %d\nimage-size %" PRIu64
		   "\nblock-size %u\nblocks %" PRIu64 "\ndigest %s\n",
		RC_MANIFEST_VERSION, h->image_size, h->block_size, h->nblocks,
		digest);
	for (b = 0; b < h->nblocks;) {
		uint32_t len = rc_block_len(h->image_size, h->block_size, b);
		uint64_t z = len == h->block_size ? zfull : rc_zero_hash(len);
		uint64_t e = b;

		if (h->hash[b] != z) {
			fprintf(f, "block %" PRIu64 " %016" PRIx64 "\n", b,
				h->hash[b]);
			b++;
			continue;
		}
		/* A run of zero blocks (full-size ones, and the last). */
		while (e + 1 < h->nblocks) {
			uint32_t l2 = rc_block_len(h->image_size,
						   h->block_size, e + 1);

			if (h->hash[e + 1] !=
			    (l2 == h->block_size ? zfull : rc_zero_hash(l2)))
				break;
			e++;
		}
		fprintf(f, "zeros %" PRIu64 " %" PRIu64 "\n", b, e);
		b = e + 1;
	}
	fputs("end\n", f);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
		snprintf(err, errlen, "manifest %s: write: %s", path,
			 strerror(errno));
		fclose(f);
		unlink(tmp);
		return -EIO;
	}
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		snprintf(err, errlen, "manifest %s: %s", path, strerror(errno));
		unlink(tmp);
		return -EIO;
	}
	return 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

static int parse_hex64(const char *s, uint64_t *v)
{
	char *end;

	if (strlen(s) != 16 || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 16);
	return errno || *end ? -1 : 0;
}

/* A manifest read so far. */
struct mread {
	struct rc_image_hashes *h;
	uint64_t max_bytes; /* larger images are not read past the header */
	int state;          /* header lines seen: tag, size, bsize, blocks,
			     * digest */
	uint64_t next;      /* the block the next line must begin with */
	bool ended;         /* the 'end' line was read */
	char digest[RC_DIGEST_HEX];
	char msg[200];      /* why the manifest is refused */
};

/* Refuse the manifest, saying why in m->msg. */
#define REJECT(...)                                                    \
	do {                                                           \
		snprintf(m->msg, sizeof m->msg, __VA_ARGS__);          \
		return -1;                                             \
	} while (0)

/* Header line number m->state: 0, 1 when the image is larger than
 * m->max_bytes (read no further), or -1 with m->msg. */
static int manifest_header(struct mread *m, const char *line)
{
	struct rc_image_hashes *h = m->h;
	char a[64], extra;
	uint64_t v;

	switch (m->state) {
	case 0:
		if (sscanf(line, RC_MANIFEST_TAG " %63s%c", a, &extra) != 1)
			REJECT("not a ringcopy manifest (want '" RC_MANIFEST_TAG " %d')",
			       RC_MANIFEST_VERSION);
		if (parse_u64(a, &v) < 0 || v != RC_MANIFEST_VERSION)
			REJECT("unsupported manifest version '%s' (this ringcopy reads version %d)",
			       a, RC_MANIFEST_VERSION);
		break;
	case 1:
		if (sscanf(line, "image-size %63s%c", a, &extra) != 1 ||
		    parse_u64(a, &h->image_size) < 0)
			REJECT("want 'image-size BYTES'");
		break;
	case 2:
		if (sscanf(line, "block-size %63s%c", a, &extra) != 1 ||
		    parse_u64(a, &v) < 0 || !rc_is_pow2(v) ||
		    v < RC_BLOCK_MIN || v > RC_BLOCK_MAX)
			REJECT("want 'block-size N', a power of two from 4096 to 64M");
		h->block_size = (uint32_t)v;
		break;
	case 3:
		if (sscanf(line, "blocks %63s%c", a, &extra) != 1 ||
		    parse_u64(a, &h->nblocks) < 0)
			REJECT("want 'blocks N'");
		if (h->nblocks != h->image_size / h->block_size +
					  !!(h->image_size % h->block_size))
			REJECT("blocks %" PRIu64 " does not match image-size %" PRIu64 " and block-size %u",
			       h->nblocks, h->image_size, h->block_size);
		if (h->nblocks > (UINT64_C(1) << 34))
			REJECT("too many blocks");
		if (h->image_size > m->max_bytes)
			return 1; /* larger than what it is for */
		h->hash = calloc(h->nblocks ? h->nblocks : 1, sizeof *h->hash);
		if (!h->hash)
			REJECT("out of memory for %" PRIu64 " blocks",
			       h->nblocks);
		break;
	case 4:
		if (sscanf(line, "digest %63s%c", a, &extra) != 1 ||
		    strlen(a) != 32 || strspn(a, "0123456789abcdef") != 32)
			REJECT("want 'digest' and 32 lower-case hex digits");
		memcpy(m->digest, a, sizeof m->digest);
		break;
	}
	m->state++;
	return 0;
}

/* A line after the header: 'end', a block's hash or a run of zero
 * blocks.  0, or -1 with m->msg. */
static int manifest_body(struct mread *m, const char *line)
{
	struct rc_image_hashes *h = m->h;
	char a[64], b[64], extra;
	uint64_t v, v2;

	if (strcmp(line, "end") == 0) {
		m->ended = true;
		return 0;
	}
	if (sscanf(line, "block %63s %63s%c", a, b, &extra) == 2) {
		if (parse_u64(a, &v) < 0 || v != m->next)
			REJECT("block '%s' out of order (want %" PRIu64 ")", a,
			       m->next);
		if (v >= h->nblocks)
			REJECT("block %" PRIu64 " beyond the %" PRIu64 " block%s",
			       v, h->nblocks, h->nblocks == 1 ? "" : "s");
		if (parse_hex64(b, &h->hash[v]) < 0)
			REJECT("block %" PRIu64 ": want 16 hex digits", v);
		m->next++;
		return 0;
	}
	if (sscanf(line, "zeros %63s %63s%c", a, b, &extra) == 2) {
		if (parse_u64(a, &v) < 0 || v != m->next ||
		    parse_u64(b, &v2) < 0 || v2 < v)
			REJECT("zeros '%s %s' out of order (want %" PRIu64 " and a last block not before it)",
			       a, b, m->next);
		if (v2 >= h->nblocks)
			REJECT("zeros run ends beyond the %" PRIu64 " block%s",
			       h->nblocks, h->nblocks == 1 ? "" : "s");
		for (; v <= v2; v++)
			h->hash[v] = rc_zero_hash(rc_block_len(
				h->image_size, h->block_size, v));
		m->next = v2 + 1;
		return 0;
	}
	REJECT("unknown line '%.40s'", line);
}
#undef REJECT

#define BAD(...)                                                       \
	do {                                                           \
		snprintf(m->msg, sizeof m->msg, __VA_ARGS__);          \
		goto bad;                                              \
	} while (0)

int rc_manifest_read(const char *path, struct rc_image_hashes *h,
		     uint64_t max_bytes, char *err, size_t errlen)
{
	struct mread mr = { .h = h, .max_bytes = max_bytes }, *m = &mr;
	char line[256], want_digest[RC_DIGEST_HEX];
	uint64_t lineno = 0;
	FILE *f;
	int rc;

	memset(h, 0, sizeof *h);
	f = fopen(path, "re");
	if (!f) {
		snprintf(err, errlen, "manifest %s: %s", path, strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof line, f)) {
		size_t n = strlen(line);

		lineno++;
		if (n == 0 || line[n - 1] != '\n')
			BAD("line too long or not terminated");
		line[--n] = '\0';
		if (m->ended)
			BAD("text after 'end'");
		rc = m->state < 5 ? manifest_header(m, line)
				  : manifest_body(m, line);
		if (rc == 1) {
			fclose(f);
			return 1; /* larger than what it is for */
		}
		if (rc < 0)
			goto bad;
	}
	if (ferror(f))
		BAD("read error");
	lineno++;
	if (m->state < 5)
		BAD("truncated: the header is incomplete");
	if (m->next != h->nblocks)
		BAD("truncated: %" PRIu64 " of %" PRIu64 " block%s listed",
		    m->next, h->nblocks, h->nblocks == 1 ? "" : "s");
	if (!m->ended)
		BAD("truncated: no 'end' line");
	fclose(f);
	rc_digest(h, want_digest);
	if (strcmp(want_digest, m->digest) != 0) {
		snprintf(err, errlen,
			 "manifest %s: the digest %s does not match its block hashes (%s): corrupt",
			 path, m->digest, want_digest);
		free(h->hash);
		h->hash = NULL;
		return -EINVAL;
	}
	return 0;
bad:
	snprintf(err, errlen, "manifest %s:%" PRIu64 ": %s", path, lineno,
		 m->msg);
	fclose(f);
	free(h->hash);
	h->hash = NULL;
	return -EINVAL;
}
#undef BAD

int rc_readback_hash(const struct rc_readback *rb, uint64_t b,
		     uint64_t *hash)
{
	const struct rc_image_hashes *h = rb->h;
	uint32_t len = rc_block_len(h->image_size, h->block_size, b);
	/* O_DIRECT wants whole sectors: read the tail rounded up. */
	uint32_t alen = (len + RC_ALIGN - 1) / RC_ALIGN * RC_ALIGN;
	uint64_t off = b * h->block_size;
	ssize_t n;

	if (alen > h->block_size)
		alen = h->block_size;
	if (rb->holes && rc_is_hole(rb->rd, rb->holes, off, len)) {
		/* A hole reads as zeros by definition. */
		*hash = rc_zero_hash(len);
		return 0;
	}
	n = rb->rd->be->pread(rb->rd, rb->buf, alen, off);
	if (n < 0) {
		snprintf(rb->err, rb->errlen,
			 "target %s: read-back of %u bytes at offset %" PRIu64 ": %s",
			 rb->spec, alen, off, strerror((int)-n));
		return (int)n;
	}
	/* A short target cannot match. */
	*hash = (uint64_t)n < len ? ~h->hash[b] : rc_block_hash(rb->buf, len);
	return 0;
}

uint64_t *rc_verify_progress;

int rc_verify_dev(struct rc_dev *dev, const struct rc_image_hashes *h,
		  const struct rc_verified *pre, struct rc_verify_out *out)
{
	struct rc_image_hashes got = *h;
	struct rc_dev *rd = NULL;
	struct rc_readback rb;
	struct rc_holes holes;
	void *buf = NULL;
	uint64_t b;
	int rc;

	memset(out, 0, sizeof *out);
	if (!dev->be->open_readback) {
		snprintf(out->error, sizeof out->error,
			 "the %s backend cannot be read back", dev->be->name);
		return -EOPNOTSUPP;
	}
	rc = dev->be->open_readback(dev, &rd, &out->how);
	if (rc < 0) {
		snprintf(out->error, sizeof out->error,
			 "target %s: cannot open it to read it back: %s",
			 dev->spec, strerror(-rc));
		return rc;
	}
	got.hash = malloc((h->nblocks ? h->nblocks : 1) * sizeof *got.hash);
	if (!got.hash || posix_memalign(&buf, RC_ALIGN, h->block_size)) {
		rc = -ENOMEM;
		snprintf(out->error, sizeof out->error, "out of memory");
		goto out;
	}
	rc_holes_init(&holes);
	rb = (struct rc_readback){ .rd = rd, .holes = &holes, .buf = buf,
				   .h = h, .spec = dev->spec,
				   .err = out->error,
				   .errlen = sizeof out->error };
	for (b = 0; b < h->nblocks; b++) {
		if (pre && pre->have[b]) {
			got.hash[b] = pre->got[b]; /* read back during the copy */
		} else {
			rc = rc_readback_hash(&rb, b, &got.hash[b]);
			if (rc < 0)
				goto out;
		}
		if (got.hash[b] != h->hash[b]) {
			if (out->nbad < RC_BAD_MAX)
				out->bad_off[out->nbad] = b * h->block_size;
			out->nbad++;
		}
		if (rc_verify_progress)
			__atomic_store_n(rc_verify_progress,
					 b * h->block_size +
						 rc_block_len(h->image_size,
							      h->block_size, b),
					 __ATOMIC_RELAXED);
		/* Asked to stop: minutes of reading back are not waited
		 * for. */
		if (rc_interrupted) {
			snprintf(out->error, sizeof out->error,
				 "target %s: interrupted while reading back",
				 dev->spec);
			rc = -EINTR;
			goto out;
		}
	}
	rc_digest(&got, out->digest);
	rc = out->nbad ? 1 : 0;
out:
	free(buf);
	free(got.hash);
	rc_dev_close(rd);
	return rc;
}

void rc_verify_describe(const struct rc_verify_out *v, char *buf, size_t len)
{
	size_t used;
	uint64_t i, shown = v->nbad < 4 ? v->nbad : 4;

	used = (size_t)snprintf(buf, len, "%" PRIu64 " bad block%s at offset%s ",
				v->nbad, v->nbad == 1 ? "" : "s",
				v->nbad == 1 ? "" : "s");
	for (i = 0; i < shown && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%" PRIu64,
					 i ? ", " : "", v->bad_off[i]);
	if (v->nbad > shown && used < len)
		snprintf(buf + used, len - used, " and %" PRIu64 " more",
			 v->nbad - shown);
}

/* The largest target bounds what the manifest may make us hold.  A
 * pipe or FIFO is not opened here (that would cost its writer its
 * data) and bounds nothing: it cannot be read back. */
static uint64_t largest_target(int ntargets, char **targets)
{
	uint64_t largest = 0;
	int i;

	for (i = 0; i < ntargets; i++) {
		struct rc_dev *dev;
		struct stat st;

		if ((!strcmp(targets[i], "-") ? fstat(STDIN_FILENO, &st)
					      : stat(targets[i], &st)) == 0 &&
		    (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
			continue;
		if (rc_dev_open(targets[i], RC_OPEN_SOURCE, &dev, NULL, 0) == 0) {
			if (dev->size != UINT64_MAX && dev->size > largest)
				largest = dev->size;
			rc_dev_close(dev);
		}
	}
	return largest;
}

/* Verify one target against h (header_only: the image is larger than
 * every target, its blocks were not read): RC_EXIT_OK, RC_EXIT_FAILED
 * (it cannot be read back) or RC_EXIT_MISMATCH, said on stderr. */
static int verify_target(const char *spec, const struct rc_image_hashes *h,
			 bool header_only)
{
	struct rc_verify_out v;
	struct rc_dev *dev;
	char err[512];
	int rc = rc_dev_open(spec, RC_OPEN_SOURCE, &dev, NULL, 0);

	if (rc < 0) {
		rc_err("verify: target %s: %s", spec, strerror(-rc));
		return RC_EXIT_FAILED;
	}
	/* The image is larger than every target: each is a
	 * mismatch, and the manifest's blocks were never read. */
	if (header_only && dev->size == UINT64_MAX) {
		rc_err("verify: target %s: its size is unknown (a pipe?): it cannot be read back",
		       spec);
		rc_dev_close(dev);
		return RC_EXIT_FAILED;
	}
	if (header_only) {
		fprintf(stderr, "MISMATCH %s  it ends at offset %" PRIu64 ", the image has %" PRIu64 " bytes\n",
			spec, dev->size, h->image_size);
		rc_dev_close(dev);
		return RC_EXIT_MISMATCH;
	}
	if (dev->size < h->image_size) {
		rc_err("verify: target %s holds %" PRIu64 " bytes, the image has %" PRIu64,
		       spec, dev->size, h->image_size);
	}
	rc = rc_verify_dev(dev, h, NULL, &v);
	rc_dev_close(dev);
	if (rc < 0) {
		rc_err("verify: %s", v.error);
		return RC_EXIT_FAILED;
	} else if (rc > 0) {
		rc_verify_describe(&v, err, sizeof err);
		fprintf(stderr, "MISMATCH %s  %s\n", spec, err);
		return RC_EXIT_MISMATCH;
	} else if (!rc_quiet) {
		fprintf(stderr, "ok       %s  digest %s  (read back: %s)\n",
			spec, v.digest, v.how);
	}
	return RC_EXIT_OK;
}

int rc_cmd_verify(int argc, char **argv)
{
	struct rc_image_hashes h;
	char err[512], digest[RC_DIGEST_HEX];
	int i, status = RC_EXIT_OK;
	bool header_only;

	static const struct option longopts[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":q", longopts, NULL)) != -1) {
		if (c == 'q')
			rc_quiet = true;
		else
			return rc_bad_option("verify", c, argv);
	}
	/* From here argv[1] is the manifest, argv[2...] the targets. */
	argc -= optind - 1;
	argv += optind - 1;
	if (argc < 3)
		return rc_usage_error("verify", "usage: ringcopy verify MANIFEST TARGET...");
	i = rc_manifest_read(argv[1], &h, largest_target(argc - 2, argv + 2),
			     err, sizeof err);
	if (i < 0) {
		rc_err("%s", err);
		return RC_EXIT_REFUSED;
	}
	header_only = i == 1;
	if (!header_only)
		rc_digest(&h, digest);
	/* A mismatch outweighs a target that could not be read. */
	for (i = 2; i < argc; i++) {
		int one = verify_target(argv[i], &h, header_only);

		if (one == RC_EXIT_MISMATCH ||
		    (one == RC_EXIT_FAILED && status == RC_EXIT_OK))
			status = one;
	}
	free(h.hash);
	return status;
}
