/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - one invocation of the copy (and of `serve'), as a pipeline.
 *
 * A `struct invocation' is walked by named steps, in order: parse the
 * command line, open the source, describe it (how much of it is the
 * image), refuse what is unsafe (targets, --manifest, --rescue, the
 * descriptors and memory asked for) before anything is opened for
 * writing, elect (join the ring of the source or create it and spawn its
 * producer), prepare the targets, run one consumer per target, finish
 * (the source's unreadable sectors, the manifest) and report.  A step
 * returns NEXT, or REPORT (nothing more to run: say how the targets
 * ended) or END (the status is set: say nothing more).  Only main()
 * exits; forked children _exit().  The steps are here; what they call is
 * in rooms of its own (options.c, supervise.c, serve.c, expect.c,
 * resources.c, dryrun.c, describe.c): see doc/design.md, "The
 * invocation's rooms (issue 26)".  With RINGCOPY_DEBUG set, each step
 * says how it ended on standard error.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringcopy/cli.h"
#include "ringcopy/core.h"
#include "ringcopy/describe.h"
#include "ringcopy/invocation.h"
#include "ringcopy/options.h"
#include "ringcopy/progress.h"
#include "ringcopy/refuse.h"
#include "ringcopy/report.h"
#include "ringcopy/util.h"
#include "ringcopy/verify.h"

/* How much of the source is the image (--size), said to the user. */
/* The most a stream of unknown size may hold: its ring, its block
 * hashes (8 bytes a block, mapped without reserve) and every count are
 * sized for it; 16 TiB, or 2^28 blocks at small block sizes. */
static uint64_t stream_bound(uint32_t block_size)
{
	uint64_t by_blocks = (UINT64_C(1) << 28) * block_size;

	return by_blocks < (UINT64_C(16) << 40) ? by_blocks
						: UINT64_C(16) << 40;
}

static int image_size(const struct rc_opts *o, struct rc_dev *src,
		      uint64_t *image, bool *stream)
{
	struct rc_source_id id;
	struct rc_describe d;

	*image = src->size;
	if (o->size_mode == RC_SIZE_GIVEN) {
		if (o->size > src->size && src->size != RC_SIZE_UNKNOWN) {
			rc_err("--size %llu refused: the source %s holds only %llu bytes",
			       (unsigned long long)o->size, src->spec,
			       (unsigned long long)src->size);
			return RC_EXIT_REFUSED;
		}
		*image = o->size;
		if (!o->size_quiet)
			rc_msg("source %s: copying the first %llu bytes (--size)",
			       src->spec, (unsigned long long)*image);
		return 0;
	}
	/* A source read once whose size nobody knows is read to its end:
	 * the image is what it held. */
	if (src->size == RC_SIZE_UNKNOWN && rc_dev_identity(src, &id) == 0 &&
	    id.kind == RC_SRC_PIPE) {
		*stream = true;
		*image = stream_bound(o->block_size);
		rc_msg("source %s: %s: read to its end", src->spec,
		       src->unknown_size ? src->unknown_size
					     : "its size is not known");
		return 0;
	}
	if (src->size == RC_SIZE_UNKNOWN) {
		rc_err("source %s refused: %s: give its size with --size",
		       src->spec,
		       src->unknown_size ? src->unknown_size
					     : "its backend does not know its size");
		return RC_EXIT_REFUSED;
	}
	/* auto sizes disks, whose image may be smaller than the device;
	 * an image file is copied whole. */
	if (o->size_mode == RC_SIZE_DEVICE || !(src->caps & RC_CAP_BLOCKDEV) ||
	    src->fd < 0)
		return 0;
	if (rc_describe_path(src->path, src->size, &d) == 0) {
		*image = d.image_size;
		rc_msg("source %s: %s", src->spec, d.why);
	}
	return 0;
}
/* An empty image needs no ring: every target becomes empty. */
static void copy_empty(int n, struct rc_dev **dst, struct rc_result *res)
{
	int i, rc;

	for (i = 0; i < n; i++) {
		rc = dst[i]->be->prepare ? dst[i]->be->prepare(dst[i], 0) : 0;
		if (rc == 0)
			rc = rc_dev_flush(dst[i]);
		if (rc < 0)
			snprintf(res[i].error, sizeof res[i].error,
				 "target %s: %s", dst[i]->spec, strerror(-rc));
		res[i].status = rc < 0 ? RC_RES_FAILED : RC_RES_OK;
	}
}

/* Live lines on a terminal, plain or JSON lines when asked, never with -q. */
static int progress_mode(const struct rc_opts *o, bool capture)
{
	if (rc_quiet || capture)
		return RC_PROGRESS_NONE;
	if (o->progress_set && o->progress == RC_PROG_JSON)
		return RC_PROGRESS_JSON;
	if (isatty(STDERR_FILENO))
		return RC_PROGRESS_TTY;
	return o->progress_set ? RC_PROGRESS_LINES : RC_PROGRESS_NONE;
}


/* parse: the options and the specs. */
static int step_parse(struct invocation *inv)
{
	int i, rc = rc_opts_parse(inv->argc, inv->argv, &inv->o);

	if (rc >= 0) {
		inv->status = rc;
		return END;
	}
	inv->specs = inv->argv + optind + 1;
	inv->n = inv->argc - optind - 1;
	for (i = 0; i < inv->n; i++) {
		if (strcmp(inv->specs[i], "-"))
			continue;
		if (inv->o.json) {
			inv->status = rc_usage_error(NULL, "--json and the target - both want standard output: drop one");
			return END;
		}
		/* zstd's rule: an image is never written to a terminal. */
		if (isatty(STDOUT_FILENO)) {
			inv->status = rc_usage_error(NULL, "target - refused: standard output is a terminal, and the image is binary: redirect it to a file or a pipe");
			return END;
		}
	}
	return NEXT;
}

/* open source: read only, through its backend. */
static int step_open_source(struct invocation *inv)
{
	const char *spec = inv->argv[optind], *format;
	char detail[256];
	int rc;

	rc = rc_source_open(spec, inv->o.raw, &inv->src, &format, detail,
			    sizeof detail);
	if (rc < 0) {
		snprintf(inv->err, sizeof inv->err, "source %s refused: %s%s",
			 spec,
			 detail[0] ? detail : strerror(-rc),
			 rc == -EOPNOTSUPP ? " (this backend cannot be read)"
					   : "");
		return rc_inv_refuse(inv);
	}
	if (format)
		rc_msg("source %s: %s-compressed: decompressed as it is read (--raw copies its bytes)",
		       inv->src->spec, format);
	if (inv->src->fd < 0 || fstat(inv->src->fd, &inv->src_st) < 0) {
		snprintf(inv->err, sizeof inv->err, "source %s: fstat: %s",
			 inv->src->spec, strerror(errno));
		return rc_inv_refuse(inv);
	}
	return NEXT;
}

/* describe: how much of the source is the image. */
static int step_describe(struct invocation *inv)
{
	if (inv->o.expect && rc_load_expect(inv) < 0)
		return rc_inv_refuse(inv);
	inv->status = image_size(&inv->o, inv->src, &inv->image, &inv->stream);
	if (inv->status)
		return END;
	if (inv->image == 0 && inv->o.serve) {
		snprintf(inv->err, sizeof inv->err,
			 "serve: source %s is empty: nothing to serve",
			 inv->src->spec);
		return rc_inv_refuse(inv);
	}
	return NEXT;
}

/* --start-at: where a new ring's first pass starts.  `random' spreads
 * the nodes of a fleet over the image, so that a swarm has pieces to
 * trade.  A source read only in order has no other start than 0. */
static int start_block(struct invocation *inv)
{
	const struct rc_opts *o = &inv->o;
	/* The blocks of the ring it would create. */
	struct rc_ring_params p = { .image_size = inv->image,
				    .block_size = o->block_size,
				    .buffer_size = inv->req.buffer_size };
	uint64_t nblocks, nslots, r = 0;

	if (o->start_mode == RC_START_ZERO)
		return 0;
	rc_ring_geometry(&p, &nblocks, &nslots);
	if (inv->stream || (inv->src->caps & RC_CAP_SEQUENTIAL) ||
	    !(inv->src->caps & RC_CAP_SEEKABLE)) {
		snprintf(inv->err, sizeof inv->err,
			 "--start-at refused: the source %s is read only in order, from its start",
			 inv->src->spec);
		return -1;
	}
	/* A target written in order only waits for a pass's block 0: the
	 * blocks before it would be read twice. */
	for (int i = 0; i < inv->n; i++)
		if (inv->seq_only[i]) {
			rc_msg("--start-at: target %s takes blocks in order only: the copy starts at block 0",
			       inv->specs[i]);
			return 0;
		}
	if (o->start_mode == RC_START_BLOCK) {
		if (o->start_at >= nblocks) {
			snprintf(inv->err, sizeof inv->err,
				 "--start-at %llu refused: the image has %llu blocks of %u bytes (0 to %llu)",
				 (unsigned long long)o->start_at,
				 (unsigned long long)nblocks, o->block_size,
				 (unsigned long long)(nblocks ? nblocks - 1 : 0));
			return -1;
		}
		inv->req.start_block = o->start_at;
		return 0;
	}
	if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
		r = rc_now_ns() ^ ((uint64_t)getpid() << 32);
	inv->req.start_block = nblocks ? r % nblocks : 0;
	return 0;
}

/* The election's request, from the options and the open source. */
static int join_request(struct invocation *inv)
{
	struct rc_join_req *req = &inv->req;
	const struct rc_opts *o = &inv->o;
	int i, rc;

	memset(req, 0, sizeof *req);
	req->map_fd = -1;
	/* The backend says which ring the source meets other copies in. */
	rc = rc_dev_identity(inv->src, &req->id);
	if (rc < 0) {
		snprintf(inv->err, sizeof inv->err, "source %s: its identity: %s",
			 inv->src->spec, strerror(-rc));
		return rc;
	}
	req->image_size = inv->image;
	req->size_set = o->size_mode == RC_SIZE_GIVEN;
	req->block_size = o->block_size;
	req->block_size_set = o->block_size_set;
	req->buffer_size = o->buffer;
	req->buffer_size_set = o->buffer_set;
	if (!o->buffer_set && inv->image &&
	    rc_source_has_holes(inv->src, inv->image))
		req->buffer_size = RC_BUFFER_SPARSE;
	req->rate = o->rate;
	req->rate_set = o->rate_set;
	req->ntargets = (uint32_t)inv->n;
	req->targets = (const char *const *)inv->specs;
	for (i = 0; i < inv->n; i++)
		inv->seq_only[i] = inv->dst[i]->caps & RC_CAP_SEQUENTIAL;
	req->sequential = inv->seq_only;
	req->source_fd = inv->src->fd;
	req->source = inv->src;
	req->stall_ms = o->stall_ms;
	req->linger_ms = o->linger_ms;
	req->rescue = o->rescue_map != NULL;
	return start_block(inv);
}

/* Is the source read once (a pipe, standard input, a compressed file
 * that does not say its size)?  It cannot be opened again. */
static bool read_once(struct invocation *inv)
{
	struct rc_source_id id;

	return inv->stream || rc_dev_identity(inv->src, &id) < 0 ||
	       id.kind == RC_SRC_PIPE;
}

/* --skip-equal: the image's block 0, read through a second opening of
 * the source (the first one stays where the producer will start).  A
 * disk that begins with it holds this image's partition table: an earlier
 * copy, or one interrupted after block 0 (written last) was written, which
 * --skip-equal finishes without --force.  A source read once (a pipe,
 * standard input) cannot give it twice: NULL, and such a disk still needs
 * --force. */
static void *image_block0(struct invocation *inv, size_t *len)
{
	struct rc_dev *d = NULL;
	const char *format;
	void *buf = NULL;
	size_t rlen;

	*len = inv->image < inv->o.block_size ? (size_t)inv->image
					      : inv->o.block_size;
	if (!inv->o.skip_equal || !*len || read_once(inv) ||
	    !(S_ISREG(inv->src_st.st_mode) || S_ISBLK(inv->src_st.st_mode)))
		return NULL;
	rlen = (*len + RC_ALIGN - 1) / RC_ALIGN * RC_ALIGN;
	if (rc_source_open(inv->argv[optind], inv->o.raw, &d, &format, NULL,
			   0) < 0)
		return NULL;
	if (posix_memalign(&buf, RC_ALIGN, rlen) ||
	    rc_dev_pread(d, buf, *len, 0) != (ssize_t)*len) {
		free(buf);
		buf = NULL;
	}
	rc_dev_close(d);
	return buf;
}

/* refuse: every path the invocation writes, and what it asks of the
 * machine, before anything is opened for writing. */
static int step_refuse(struct invocation *inv)
{
	const char *what[2] = { "--manifest", "--rescue map" };
	const char *paths[2] = { inv->o.manifest, inv->o.rescue_map };
	struct rc_target_req *t = &inv->treq;
	struct rc_targets_seen *seen;
	void *block0;
	int rc;

	t->n = inv->n;
	t->specs = inv->specs;
	t->src_st = &inv->src_st;
	t->src_spec = inv->src->spec;
	t->image_size = inv->stream ? 0 : inv->image; /* a stream: each
						       * target holds what it
						       * can */
	t->force = inv->o.force;
	t->dry_run = inv->o.dry_run;
	t->block0 = block0 = image_block0(inv, &t->block0_len);
	rc = rc_open_targets(t, inv->dst, inv->owned, &seen, inv->err,
			     sizeof inv->err);
	free(block0);
	t->block0 = NULL;
	if (rc == 0)
		rc = rc_refuse_outputs(t, seen, what, paths, 2, inv->err,
				       sizeof inv->err);
	rc_targets_seen_free(seen);
	if (rc < 0)
		return rc_inv_refuse(inv);
	if (join_request(inv) < 0)
		return rc_inv_refuse(inv);
	/* What --rate counts, where the rates shown count something else. */
	if (inv->o.rate_set && !inv->o.dry_run && inv->image &&
	    rc_source_has_holes(inv->src, inv->image))
		rc_msg("--rate limits the bytes read from %s; its holes are not read, so the rates shown (bytes of the image per second, holes included) may be far above it",
		       inv->src->spec);
	if (inv->image &&
	    rc_check_resources(inv->n, &inv->req, inv->err, sizeof inv->err) < 0)
		return rc_inv_refuse(inv);
	/* Results live in memory shared with the consumers. */
	inv->res = mmap(NULL, sizeof *inv->res * (size_t)(inv->n ? inv->n : 1),
			PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			-1, 0);
	inv->j = calloc(1, sizeof *inv->j);
	if (inv->res == MAP_FAILED || !inv->j) {
		snprintf(inv->err, sizeof inv->err, "out of memory");
		return rc_inv_refuse(inv);
	}
	inv->j->rdv.dirfd = -1; /* until rc_elect opens the run directory */
	rc_signals_set();
	if (inv->o.dry_run &&
	    rc_dry_rescue_map(inv->o.rescue_map, inv->err, sizeof inv->err) < 0)
		return rc_inv_refuse(inv);
	if (inv->o.dry_run) {
		inv->status = rc_dry_run(&inv->o, &inv->req, inv->src, inv->image,
				      inv->n, inv->specs, inv->dst);
		return END;
	}
	if (inv->image == 0) {
		copy_empty(inv->n, inv->dst, inv->res);
		return REPORT;
	}
	return NEXT;
}

/* The --rescue map: opened before the election (not truncated: a joiner
 * leaves the running copy's map alone), emptied once we start the ring,
 * written by the producer. */
static int open_rescue_map(struct invocation *inv)
{
	const char *map = inv->o.rescue_map;
	struct stat st;
	int fd;

	inv->map_new = access(map, F_OK) < 0;
	fd = open(map, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK |
			       O_CLOEXEC,
		  0644);
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		fd = -1;
		errno = EINVAL;
	}
	if (fd < 0) {
		snprintf(inv->err, sizeof inv->err,
			 "--rescue map file %s refused: %s", map,
			 strerror(errno));
		return -1;
	}
	inv->req.map_fd = fd;
	return 0;
}

/* elect: join the ring of the source, or create it and spawn its
 * producer.  Nothing is written yet (targets are prepared after it), so
 * whatever stops it exits 2. */
static int step_elect(struct invocation *inv)
{
	struct rc_join *j = inv->j;
	const char *map = inv->o.rescue_map;
	int rc;

	if (map && open_rescue_map(inv) < 0)
		return rc_inv_refuse(inv);
	rc = rc_elect(&inv->req, j, inv->err, sizeof inv->err);
	/* The producer forks with these. */
	j->ring.stream = inv->stream;
	j->ring.expect = inv->expect.hash;
	j->ring.expect_name = inv->o.expect;
	/* Block hashes, shared: every consumer stores what it saw (the same
	 * values), and the manifest is written from them.  Without them
	 * nothing could be verified: refused before the map is emptied or
	 * a producer started. */
	if (rc == 0) {
		inv->hashes_len = j->ring.nblocks * sizeof *inv->hashes;
		inv->hashes = mmap(NULL, inv->hashes_len,
				   PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
				   -1, 0);
		if (inv->hashes == MAP_FAILED) {
			inv->hashes = NULL;
			snprintf(inv->err, sizeof inv->err,
				 "no memory for %llu block hashes (%s): nothing was written",
				 (unsigned long long)j->ring.nblocks,
				 strerror(errno));
			if (j->created) {
				rc_elect_undo(j);
			} else {
				rc_abandon_all(inv);
				rc_elect_release(j);
			}
			rc = -ENOMEM;
		}
	}
	if (rc == 0 && inv->req.map_fd >= 0 && !j->created && inv->map_new)
		unlink(map); /* created by our open: not our map */
	/* Our map: emptied before the producer that writes it starts (it
	 * serves our registered entries at once, and writes at its own
	 * offset in the file). */
	if (rc == 0 && inv->req.map_fd >= 0 && j->created &&
	    ftruncate(inv->req.map_fd, 0) < 0) {
		snprintf(inv->err, sizeof inv->err,
			 "--rescue map %s: truncate: %s", map, strerror(errno));
		rc_elect_undo(j);
		rc = -EIO;
	}
	if (rc == 0 && j->created) {
		rc = rc_producer_spawn(&j->ring, inv->src, &j->rdv,
				       inv->req.map_fd, inv->err,
				       sizeof inv->err);
		if (rc < 0)
			rc_elect_undo(j);
	}
	if (rc == 0)
		rc_elect_release(j);
	if (inv->req.map_fd >= 0)
		close(inv->req.map_fd);
	inv->req.map_fd = -1;
	if (rc < 0) {
		if (map && inv->map_new)
			unlink(map); /* ours, and no copy to map */
		return rc_inv_refuse(inv);
	}
	return NEXT;
}

/* Say where a joining invocation's targets start. */
static void say_joined(const struct invocation *inv)
{
	const struct rc_join *j = inv->j;
	int i;

	if (inv->o.linger_set)
		rc_msg("joined a running copy: its producer keeps its own --linger");
	if (inv->o.rescue_map)
		rc_msg("joined a running copy: --rescue and its map file belong to the copy that started it");
	if (inv->o.start_mode != RC_START_ZERO)
		rc_msg("joined a running copy: --start-at belongs to the copy that started it");
	for (i = 0; i < inv->n; i++) {
		uint64_t b = rc_seq_block(j->first_seq[i], j->ring.nblocks);

		if (inv->seq_only[i])
			rc_msg("target %s takes blocks in order only: it starts with the next pass, at block 0",
			       inv->specs[i]);
		else if (i == 0 || inv->seq_only[i - 1] ||
			 j->first_seq[i] != j->first_seq[i - 1])
			rc_msg("joined the running copy of %s at block %llu of %llu",
			       inv->src->spec, (unsigned long long)b,
			       (unsigned long long)j->ring.nblocks);
	}
}

/* prepare: the shared block hashes, then the targets (created or
 * truncated: the first write). */
static int step_prepare(struct invocation *inv)
{
	struct rc_join *j = inv->j;
	int i, rc;

	if (!j->created)
		say_joined(inv);
	else if (inv->o.start_mode != RC_START_ZERO && inv->req.start_block)
		rc_msg("the first pass starts at block %llu of %llu (--start-at); block 0 comes with the wrap and is written last",
		       (unsigned long long)inv->req.start_block,
		       (unsigned long long)j->ring.nblocks);
	/* Every refusal is behind us: now targets may be created. */
	inv->run->started = true;
	for (i = 0; i < inv->n; i++) {
		struct rc_dev *d = inv->dst[i];

		if (inv->o.skip_equal)
			d->flags |= RC_DEV_KEEP;
		rc = !d->be->prepare ? 0
		     : d->be->prepare(d, inv->stream ? RC_SIZE_UNKNOWN
						      : j->ring.image_size);
		if (rc < 0) {
			snprintf(inv->res[i].error, sizeof inv->res[i].error,
				 "target %s: cannot prepare it: %s", d->spec,
				 strerror(-rc));
			inv->res[i].status = RC_RES_FAILED;
		}
		inv->res[i].start_block = rc_seq_block(j->first_seq[i],
						       j->ring.nblocks);
	}
	return NEXT;
}

/* run consumers: one per target, with progress. */
static int step_run(struct invocation *inv)
{
	struct rc_progress *prog = &inv->prog;

	prog->mode = progress_mode(&inv->o, inv->run->capture);
	prog->n = inv->n;
	prog->specs = inv->specs;
	prog->ring = &inv->j->ring;
	prog->first = inv->j->first_seq;
	prog->res = inv->res;
	prog->t0 = rc_now_ns();
	prog->stream = inv->stream;
	rc_run_consumers(inv);
	return NEXT;
}

/* A larger disk whose GPT's backup header is not at its end: said, and
 * kept for the caller. */
static void gpt_note(struct invocation *inv, int i)
{
	/* A stream's image is what it held, known at its end. */
	uint64_t image = inv->stream ? inv->res[i].image_bytes
				     : inv->j->ring.image_size;

	if ((inv->res[i].status == RC_RES_OK ||
	     inv->res[i].status == RC_RES_RESCUED) &&
	    rc_gpt_backup_note(inv->dst[i], inv->specs[i], image,
			       inv->run->note, sizeof inv->run->note) &&
	    !inv->run->capture)
		rc_msg("%s", inv->run->note);
}

/* finish: what the source could not give, the manifest, what a larger
 * disk still needs. */
static int step_finish(struct invocation *inv)
{
	struct rc_ring *r = &inv->j->ring;
	uint64_t bad;

	inv->bytes_read = __atomic_load_n(&r->hdr->bytes_read,
					  __ATOMIC_RELAXED);
	bad = __atomic_load_n(&r->hdr->bad_bytes, __ATOMIC_RELAXED);
	if (bad) {
		rc_err("source %s: %llu bytes in %llu range%s could not be read and hold the marker 'RINGCOPY-BADSECT'%s%s",
		       inv->src->spec, (unsigned long long)bad,
		       (unsigned long long)r->hdr->bad_ranges,
		       r->hdr->bad_ranges == 1 ? "" : "s",
		       inv->o.rescue_map ? "; map: " : "",
		       inv->o.rescue_map ? inv->o.rescue_map : "");
		inv->status = RC_EXIT_FAILED;
		/* Complete and verified, but not the source: a status of
		 * their own, never "ok". */
		for (int i = 0; i < inv->n; i++) {
			if (inv->res[i].status != RC_RES_OK)
				continue;
			inv->res[i].status = RC_RES_RESCUED;
			snprintf(inv->res[i].error, sizeof inv->res[i].error,
				 "holds the marker 'RINGCOPY-BADSECT' in the %llu bytes the source could not read",
				 (unsigned long long)bad);
		}
	}
	if (inv->o.expect)
		rc_check_expected(inv);
	if (inv->o.manifest &&
	    rc_write_manifest(inv->o.manifest, r, inv->hashes, inv->res,
			   inv->n) < 0)
		inv->status = RC_EXIT_FAILED;
	for (int i = 0; i < inv->n; i++)
		gpt_note(inv, i);
	rc_ring_detach(r);
	return NEXT;
}

/* report: a line per target, the JSON summary, the exit status. */
static void report(struct invocation *inv)
{
	struct rc_report rp = {
		.n = inv->n, .specs = inv->specs, .res = inv->res,
		.image_size = inv->image,
		.block_size = inv->j->ring.block_size ? inv->j->ring.block_size
						      : inv->o.block_size,
		.bytes_read = inv->bytes_read,
		.read_before = inv->j->read_before, .json = inv->o.json,
	};

	int i;

	/* An interrupted target says by what, in which phase, and what it
	 * was left holding. */
	for (i = 0; i < inv->n; i++) {
		struct rc_result *r = &inv->res[i];

		if (r->status != RC_RES_FAILED || !r->interrupted)
			continue;
		if (r->phase == RC_PHASE_COPY && inv->stream)
			snprintf(r->error, sizeof r->error,
				 "interrupted by %s while copying: %llu bytes of the stream written, the stream not read to its end: the target does not hold the image",
				 rc_interrupt_name(),
				 (unsigned long long)r->bytes_written);
		else if (r->phase == RC_PHASE_COPY)
			snprintf(r->error, sizeof r->error,
				 "interrupted by %s while copying: %llu of %llu bytes written; the rest, and block 0 (written last), are not: the target does not hold the image",
				 rc_interrupt_name(),
				 (unsigned long long)r->bytes_written,
				 (unsigned long long)inv->image);
		else
			snprintf(r->error, sizeof r->error,
				 "interrupted by %s while %s: %s: not reported complete",
				 rc_interrupt_name(),
				 r->phase == RC_PHASE_FLUSH ? "flushing" : "reading back",
				 r->phase == RC_PHASE_FLUSH
					 ? "every block was sent, block 0 last, but it may not all be on stable storage"
					 : "every block was written and flushed, but not all read back: not verified");
	}
	/* A stream's image is what its targets received. */
	for (i = 0; i < inv->n && inv->stream; i++)
		if (i == 0 || inv->res[i].image_bytes > rp.image_size)
			rp.image_size = inv->res[i].image_bytes;
	if (!inv->run->capture)
		rc_report(&rp);
	inv->status = rc_exit_status(inv->status, inv->res, inv->n);
	/* An interrupted copy can be finished without writing again what
	 * its targets already hold. */
	for (i = 0; i < inv->n && rc_interrupted; i++)
		if (inv->res[i].status == RC_RES_FAILED &&
		    inv->res[i].bytes_written) {
			bool force = false;
			int k;

			/* A stream cannot show its block 0 again: a disk
			 * that now holds the image's table needs --force. */
			for (k = 0; k < inv->n && read_once(inv) &&
				    !inv->o.force; k++)
				if (inv->res[k].interrupted &&
				    inv->res[k].phase != RC_PHASE_COPY &&
				    (inv->dst[k]->caps &
				     (RC_CAP_BLOCKDEV | RC_CAP_FIXED)))
					force = true;
			rc_msg("interrupted: to finish, run the same command with --skip-equal%s: each block is read from the targets and written only where it differs",
			       force ? " --force (a disk now holds the image's own partition table, and a stream cannot show its block 0 again to prove it)" : "");
			break;
		}
}

static void cleanup(struct invocation *inv)
{
	int i;

	for (i = 0; i < inv->n; i++) {
		rc_dev_close(inv->dst[i]); /* the consumers closed theirs */
		free(inv->owned[i]);
	}
	rc_dev_close(inv->src);
	free(inv->expect.hash);
	if (inv->hashes)
		munmap(inv->hashes, inv->hashes_len);
	if (inv->held_map)
		munmap(inv->held_map, inv->held_len);
	if (inv->res && inv->res != MAP_FAILED)
		munmap(inv->res, sizeof *inv->res * (size_t)(inv->n ? inv->n : 1));
	if (inv->j)
		rc_elect_close(inv->j);
	free(inv->j);
}

int rc_cmd_copy(int argc, char **argv, int serve)
{
	struct rc_run run = { .serve = serve };

	return rc_cmd_run(argc, argv, &run);
}

int rc_cmd_run(int argc, char **argv, struct rc_run *run)
{
	static const struct {
		const char *name;
		int (*run)(struct invocation *inv);
	} steps[] = {
		{ "parse", step_parse },
		{ "open source", step_open_source },
		{ "describe", step_describe },
		{ "refuse", step_refuse },
		{ "scan", rc_step_scan },
		{ "elect", step_elect },
		{ "serve", rc_step_serve },
		{ "prepare", step_prepare },
		{ "run consumers", step_run },
		{ "finish", step_finish },
	};
	static const char *const outcome[] = { "next", "report", "end" };
	const char *debug = getenv("RINGCOPY_DEBUG");
	struct invocation inv;
	size_t i;
	int r = NEXT;

	memset(&inv, 0, sizeof inv);
	inv.argc = argc;
	inv.argv = argv;
	inv.o.serve = run->serve;
	inv.run = run;
	for (i = 0; i < sizeof steps / sizeof steps[0] && r == NEXT; i++) {
		r = steps[i].run(&inv);
		/* RINGCOPY_DEBUG: which step ended the walk, and how. */
		if (debug && *debug && strcmp(debug, "0"))
			fprintf(stderr, "ringcopy: debug: step '%s': %s (status %d)\n",
				steps[i].name, outcome[r], inv.status);
	}
	if (r != END)
		report(&inv);
	run->status = inv.status;
	run->refused = inv.status == RC_EXIT_REFUSED;
	run->interrupted = rc_interrupted;
	if (inv.res && inv.res != MAP_FAILED && inv.n > 0)
		run->res = inv.res[0];
	run->done = true;
	cleanup(&inv);
	return inv.status;
}

