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
 * exits; forked children _exit().
 */
#include "config.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ringcopy/cli.h"
#include "ringcopy/core.h"
#include "ringcopy/describe.h"
#include "ringcopy/progress.h"
#include "ringcopy/refuse.h"
#include "ringcopy/report.h"
#include "ringcopy/util.h"
#include "ringcopy/verify.h"

struct opts {
	uint32_t block_size;
	bool block_size_set;
	uint64_t buffer;
	bool buffer_set;
	uint64_t rate;
	bool rate_set;
	bool json;
	bool verify;
	const char *manifest;
	int sparse;          /* enum rc_sparse */
	bool force;
	int size_mode;       /* SIZE_AUTO, SIZE_DEVICE, SIZE_GIVEN */
	uint64_t size;       /* with SIZE_GIVEN */
	bool size_quiet;     /* the size came from --expect, said there */
	uint32_t stall_ms;
	const char *rescue_map;
	int progress;        /* PROGRESS_* as asked */
	bool progress_set;
	uint32_t linger_ms;
	bool linger_set;
	bool dry_run;
	bool skip_equal;     /* write only the blocks a target lacks */
	bool raw;            /* never decompress the source */
	int start_mode;      /* START_* */
	uint64_t start_at;   /* with START_BLOCK */
	const char *expect;  /* --expect: the golden manifest */
	bool serve;          /* `ringcopy serve': a producer, no targets */
	bool foreground;     /* serve: wait until the producer leaves */
};

enum { PROGRESS_AUTO, PROGRESS_PLAIN, PROGRESS_JSON };

enum { SIZE_AUTO, SIZE_DEVICE, SIZE_GIVEN };

enum { START_ZERO, START_BLOCK, START_RANDOM };

/* What a step asks of the pipeline. */
enum { NEXT = 0, REPORT = 1, END = 2 };

struct invocation {
	struct opts o;
	int argc;
	char **argv;
	int n;                            /* targets */
	char **specs;                     /* as named */
	struct rc_dev *src;
	struct stat src_st;
	uint64_t image;                   /* bytes of the source copied (a
					   * stream: the most it may hold) */
	bool stream;                      /* read to its end, size unknown */
	struct rc_image_hashes expect;    /* --expect: the golden hashes */
	struct rc_dev *dst[RC_TARGETS_MAX];
	char *owned[RC_TARGETS_MAX];      /* resolved symlink specs */
	bool seq_only[RC_TARGETS_MAX];    /* targets written in order only */
	struct rc_target_req treq;
	struct rc_join_req req;
	struct rc_join *j;
	bool map_new;                     /* --rescue map created by us */
	struct rc_result *res;            /* shared with the consumers */
	uint64_t *hashes;                 /* block hashes, shared */
	size_t hashes_len;
	struct rc_progress prog;
	uint64_t bytes_read;
	int status;                       /* the exit status so far */
	char err[512];
	struct rc_run *run;               /* what the caller asked, and
					   * where the outcome goes */
};

/* Consumers not yet reaped: a signal to the invocation is passed on to
 * them by the loops that wait for them, never from the handler (a reaped
 * child's pid may already be someone else's). */
static pid_t children[RC_TARGETS_MAX];
static size_t nchildren;
static bool forwarded;

/* Stop with a refusal: nothing was written. */
static int refuse(struct invocation *inv)
{
	if (inv->run->capture)
		rc_strlcpy(inv->run->error, inv->err, sizeof inv->run->error);
	else
		rc_err("%s", inv->err);
	inv->status = RC_EXIT_REFUSED;
	return END;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	enum { OPT_BUFFER = 256, OPT_RATE, OPT_JSON, OPT_NO_VERIFY,
	       OPT_MANIFEST, OPT_SIZE, OPT_SPARSE, OPT_FORCE, OPT_STALL,
	       OPT_RESCUE, OPT_LEVEL, OPT_PROGRESS, OPT_LINGER, OPT_DRY_RUN,
	       OPT_SKIP_EQUAL, OPT_RAW, OPT_START_AT, OPT_EXPECT,
	       OPT_CONNECT_TIMEOUT, OPT_FOREGROUND };
	static const struct option longopts[] = {
		{ "block-size", required_argument, NULL, 'b' },
		{ "buffer", required_argument, NULL, OPT_BUFFER },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },
		{ "manifest", required_argument, NULL, OPT_MANIFEST },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "sparse", required_argument, NULL, OPT_SPARSE },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "stall-timeout", required_argument, NULL, OPT_STALL },
		{ "rescue", required_argument, NULL, OPT_RESCUE },
		{ "compress-level", required_argument, NULL, OPT_LEVEL },
		{ "progress", optional_argument, NULL, OPT_PROGRESS },
		{ "linger", required_argument, NULL, OPT_LINGER },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "skip-equal", no_argument, NULL, OPT_SKIP_EQUAL },
		{ "raw", no_argument, NULL, OPT_RAW },
		{ "start-at", required_argument, NULL, OPT_START_AT },
		{ "expect", required_argument, NULL, OPT_EXPECT },
		{ "connect-timeout", required_argument, NULL,
		  OPT_CONNECT_TIMEOUT },
		{ "foreground", no_argument, NULL, OPT_FOREGROUND },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	uint32_t n;
	int c;

	o->block_size = RC_BLOCK_DEFAULT;
	o->buffer = RC_BUFFER_DEFAULT;
	o->verify = true;
	o->stall_ms = 60000;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":b:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (rc_parse_size(optarg, &v) < 0 || !rc_is_pow2(v) ||
			    v < RC_BLOCK_MIN || v > RC_BLOCK_MAX)
				return rc_usage_error(NULL, "--block-size '%s': want a power of two from 4K to 64M",
						   optarg);
			o->block_size = (uint32_t)v;
			o->block_size_set = true;
			break;
		case OPT_BUFFER:
			if (rc_parse_size(optarg, &v) < 0 || v == 0)
				return rc_usage_error(NULL, "--buffer '%s': want a size such as 64M",
						   optarg);
			o->buffer = v;
			o->buffer_set = true;
			break;
		case OPT_RATE:
			if (rc_parse_size(optarg, &v) < 0 || v == 0)
				return rc_usage_error(NULL, "--rate '%s': want bytes per second such as 100M",
						   optarg);
			o->rate = v;
			o->rate_set = true;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_NO_VERIFY:
			o->verify = false;
			break;
		case OPT_SIZE:
			if (!strcmp(optarg, "auto")) {
				o->size_mode = SIZE_AUTO;
			} else if (!strcmp(optarg, "device")) {
				o->size_mode = SIZE_DEVICE;
			} else if (rc_parse_size(optarg, &v) == 0 && v > 0) {
				o->size_mode = SIZE_GIVEN;
				o->size = v;
			} else {
				return rc_usage_error(NULL, "--size '%s': want auto, device or a size such as 8G",
						   optarg);
			}
			break;
		case OPT_SPARSE:
			if (!strcmp(optarg, "auto"))
				o->sparse = RC_SPARSE_AUTO;
			else if (!strcmp(optarg, "always"))
				o->sparse = RC_SPARSE_ALWAYS;
			else if (!strcmp(optarg, "never"))
				o->sparse = RC_SPARSE_NEVER;
			else
				return rc_usage_error(NULL, "--sparse '%s': want auto, always or never",
						   optarg);
			break;
		case OPT_FORCE:
			o->force = true;
			break;
		case OPT_STALL:
			if (rc_parse_count(optarg, 0, 86400, &n) < 0)
				return rc_usage_error(NULL, "--stall-timeout '%s': want seconds from 0 to 86400",
						   optarg);
			o->stall_ms = n * 1000u;
			break;
		case OPT_LEVEL:
			if (rc_parse_count(optarg, 1, 19, &n) < 0)
				return rc_usage_error(NULL, "--compress-level '%s': want 1 to 19",
						   optarg);
			rc_backend_config("compress-level", optarg);
			break;
		case OPT_PROGRESS:
			o->progress_set = true;
			if (!optarg || !strcmp(optarg, "plain"))
				o->progress = PROGRESS_PLAIN;
			else if (!strcmp(optarg, "json"))
				o->progress = PROGRESS_JSON;
			else
				return rc_usage_error(NULL, "--progress='%s': want --progress or --progress=json",
						   optarg);
			break;
		case OPT_LINGER:
			if (rc_parse_count(optarg, 0, 4000000, &n) < 0)
				return rc_usage_error(NULL, "--linger '%s': want seconds from 0 to 4000000",
						   optarg);
			o->linger_ms = n * 1000u;
			o->linger_set = true;
			break;
		case OPT_DRY_RUN:
			o->dry_run = true;
			break;
		case OPT_SKIP_EQUAL:
			o->skip_equal = true;
			break;
		case OPT_RAW:
			o->raw = true;
			break;
		case OPT_START_AT:
			if (!strcmp(optarg, "random")) {
				o->start_mode = START_RANDOM;
			} else if (rc_parse_size(optarg, &v) == 0 &&
				   strspn(optarg, "0123456789") ==
					   strlen(optarg)) {
				o->start_mode = v ? START_BLOCK : START_ZERO;
				o->start_at = v;
			} else {
				return rc_usage_error(NULL, "--start-at '%s': want a block number or random",
						   optarg);
			}
			break;
		case OPT_EXPECT:
			if (!*optarg)
				return rc_usage_error(NULL, "--expect needs a manifest file name");
			o->expect = optarg;
			break;
		case OPT_CONNECT_TIMEOUT:
			if (rc_parse_count(optarg, 1, 86400, &n) < 0)
				return rc_usage_error(NULL, "--connect-timeout '%s': want seconds from 1 to 86400",
						   optarg);
			rc_backend_config("connect-timeout", optarg);
			break;
		case OPT_FOREGROUND:
			if (!o->serve)
				return rc_usage_error(NULL, "--foreground is an option of serve: a copy always waits for its targets");
			o->foreground = true;
			break;
		case OPT_RESCUE:
			if (!*optarg)
				return rc_usage_error(NULL, "--rescue needs a map file name");
			o->rescue_map = optarg;
			break;
		case OPT_MANIFEST:
			if (!*optarg)
				return rc_usage_error(NULL, "--manifest needs a file name");
			o->manifest = optarg;
			break;
		case 'q':
			rc_quiet = true;
			break;
		case 'h':
			rc_usage(stdout);
			exit(RC_EXIT_OK);
		case 'V':
			printf("ringcopy %s\n", PACKAGE_VERSION);
			exit(RC_EXIT_OK);
		default:
			return rc_bad_option(NULL, c, argv);
		}
	}
	if (o->buffer < o->block_size)
		return rc_usage_error(NULL, "--buffer %llu is smaller than one block of %u bytes",
				   (unsigned long long)o->buffer,
				   o->block_size);
	if (o->serve) {
		if (argc - optind != 1)
			return rc_usage_error(NULL, "%s", argc - optind < 1
							 ? "serve: missing SOURCE"
							 : "serve takes one SOURCE and no TARGET");
		if (!o->linger_set)
			o->linger_ms = UINT32_MAX; /* until SIGTERM */
		return -1;
	}
	if (argc - optind < 2)
		return rc_usage_error(NULL, "%s", argc - optind < 1
						 ? "missing SOURCE and TARGET"
						 : "missing TARGET");
	if ((size_t)(argc - optind - 1) > RC_TARGETS_MAX)
		return rc_usage_error(NULL, "%d targets: at most %u per invocation",
				   argc - optind - 1, RC_TARGETS_MAX);
	return -1;
}

static volatile sig_atomic_t interrupt_sig; /* the first one we got */

static void on_signal(int sig)
{
	if (!interrupt_sig)
		interrupt_sig = sig;
	rc_interrupted = 1;
}

/* The signal that interrupted us, in the user's words. */
static const char *interrupt_name(void)
{
	switch (interrupt_sig) {
	case SIGINT: return "SIGINT (Ctrl-C)";
	case SIGTERM: return "SIGTERM";
	default: return "a signal (the invocation died)";
	}
}

/* Pass an interruption on to the consumers still running (once). */
static void forward_interrupt(void)
{
	size_t i;

	if (!rc_interrupted || forwarded)
		return;
	forwarded = true;
	for (i = 0; i < nchildren; i++)
		if (children[i] > 0)
			kill(children[i], SIGTERM);
}

/* A child reaped: its pid is no longer ours to signal. */
static void forget_child(pid_t pid)
{
	size_t i;

	for (i = 0; i < nchildren; i++)
		if (children[i] == pid)
			children[i] = 0;
}

static void set_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; /* no SA_RESTART: waits see EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

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

static int image_size(const struct opts *o, struct rc_dev *src,
		      uint64_t *image, bool *stream)
{
	struct rc_source_id id;
	struct rc_describe d;

	*image = src->size;
	if (o->size_mode == SIZE_GIVEN) {
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
	if (o->size_mode == SIZE_DEVICE || !(src->caps & RC_CAP_BLOCKDEV) ||
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

/* --dry-run: an existing --rescue map must open for writing, as the run
 * opens it (nothing is written: no O_CREAT, no O_TRUNC). */
static int dry_rescue_map(const char *map, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	if (!map || lstat(map, &st) < 0)
		return 0; /* a new one: rc_refuse_outputs checked its directory */
	fd = open(map, O_WRONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK |
			       O_CLOEXEC);
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		fd = -1;
		errno = EINVAL;
	}
	if (fd < 0) {
		snprintf(err, errlen, "--rescue map file %s refused: %s", map,
			 strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

/* --dry-run: what would happen, with nothing created, written or
 * registered. */
static int dry_run(const struct opts *o, const struct rc_join_req *req,
		   struct rc_dev *src, uint64_t image, int n, char **specs,
		   struct rc_dev **dst)
{
	struct rc_peek pk;
	int i;

	rc_peek(req, &pk);
	/* What the election would refuse, the dry run refuses alike (an
	 * empty image has no election). */
	if (pk.refused && image) {
		rc_err("%s", pk.why);
		return RC_EXIT_REFUSED;
	}
	if (src->size == RC_SIZE_UNKNOWN && o->size_mode != SIZE_GIVEN)
		printf("source %s: %s backend, a stream read to its end (at most %llu bytes)\n",
		       src->spec, src->be->name, (unsigned long long)image);
	else
		printf("source %s: %s backend, image of %llu bytes\n",
		       src->spec, src->be->name, (unsigned long long)image);
	if (pk.live)
		printf("would join the running copy (producer pid %d) at block %llu of %llu, block size %u\n",
		       pk.producer, (unsigned long long)pk.next_block,
		       (unsigned long long)pk.nblocks, pk.block_size);
	else
		printf("would start a new copy: block size %u, ring of %llu bytes, first pass from block %llu%s\n",
		       o->block_size, (unsigned long long)req->buffer_size,
		       (unsigned long long)req->start_block,
		       o->start_mode == START_RANDOM ? " (--start-at random: a run picks again)" : "");
	for (i = 0; i < n; i++) {
		struct rc_describe d;
		char holds[200] = "";

		if ((dst[i]->caps & RC_CAP_BLOCKDEV) &&
		    rc_describe_path(dst[i]->path, dst[i]->size, &d) == 0)
			rc_describe_holds(&d, holds, sizeof holds);
		printf("target %s (%s backend): %s%s%s%s\n", specs[i],
		       dst[i]->be->name,
		       dst[i]->caps & RC_CAP_NOWHERE ? "writes nowhere (a sink)"
		       : dst[i]->fd < 0 ? "a new file"
		       : dst[i]->size == UINT64_MAX
			       ? o->skip_equal ? "an existing file, sized to the image and kept: only the blocks that differ would be written (--skip-equal)"
					       : "an existing file, truncated to the image"
			       : "a device",
		       holds[0] ? " holding " : "", holds,
		       (dst[i]->caps & RC_CAP_SEQUENTIAL) && pk.live
			       ? ", would start at the next pass's block 0"
			       : "");
	}
	printf("dry run: nothing was written or registered\n");
	return RC_EXIT_OK;
}

/* Live lines on a terminal, plain or JSON lines when asked, never with -q. */
static int progress_mode(const struct opts *o, bool capture)
{
	if (rc_quiet || capture)
		return RC_PROGRESS_NONE;
	if (o->progress_set && o->progress == PROGRESS_JSON)
		return RC_PROGRESS_JSON;
	if (isatty(STDERR_FILENO))
		return RC_PROGRESS_TTY;
	return o->progress_set ? RC_PROGRESS_LINES : RC_PROGRESS_NONE;
}

/* The manifest needs every block's hash: any target that completed the
 * copy saw them all. */
static int write_manifest(const char *path, struct rc_ring *r,
			  uint64_t *hashes, struct rc_result *res, int n)
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

/* Does the image hold a hole?  Then the default ring is larger: hole slots
 * carry no data, so a longer ring lets the producer run through the holes
 * to the next data while the consumers write, at no cost in cache. */
static bool source_has_holes(struct rc_dev *src, uint64_t image)
{
	struct rc_holes h;
	uint64_t off;

	rc_holes_init(&h);
	for (off = 0; off < image; off = h.data_end) {
		if (rc_is_hole(src, &h, off, 1))
			return true;
		if (h.off || h.data_end <= off)
			return false; /* no extents, or no answer */
	}
	return false;
}

/* Descriptors and memory for what was asked, before anything is written:
 * each consumer needs a pipe for its hand-off and a descriptor to read its
 * target back, and the ring must fit in memory (an oversized --buffer used
 * to get the producer OOM-killed mid-copy). */
static int check_resources(int n, const struct rc_join_req *req, char *err,
			   size_t errlen)
{
	struct rc_ring_params p = { .image_size = req->image_size,
				    .block_size = req->block_size,
				    .buffer_size = req->buffer_size };
	uint64_t nblocks, nslots, ring;
	struct rlimit rl;
	unsigned long long avail = 0;
	long open_now = 0, need;
	char line[128];
	DIR *d;
	FILE *f;

	d = opendir("/proc/self/fd");
	if (d) {
		while (readdir(d))
			open_now++;
		closedir(d);
		open_now -= 2; /* . and .. */
	}
	need = open_now + 3L * n + 8;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)need > rl.rlim_cur) {
		snprintf(err, errlen,
			 "%d target%s need%s about %ld open files, the limit is %llu: raise it (ulimit -n) or copy to fewer targets at once",
			 n, n == 1 ? "" : "s", n == 1 ? "s" : "", need, (unsigned long long)rl.rlim_cur);
		return -EMFILE;
	}
	/* The ring as it would be made: never larger than the image. */
	rc_ring_geometry(&p, &nblocks, &nslots);
	ring = nslots * req->block_size;
	f = fopen("/proc/meminfo", "re");
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "MemAvailable: %llu kB", &avail) == 1)
			break;
	if (f)
		fclose(f);
	if (avail && ring > avail * 1024) {
		snprintf(err, errlen,
			 "--buffer: a ring of %llu bytes would not fit in the %llu bytes of memory available: use a smaller --buffer",
			 (unsigned long long)ring, avail * 1024);
		return -ENOMEM;
	}
	return 0;
}

/* Fork one consumer per registered target and wait for all of them. */
static void run_consumers(struct rc_join *j, int n, struct rc_dev **dst,
			  struct rc_dev *src, struct rc_result *res,
			  uint64_t *hashes, const struct opts *o,
			  struct rc_progress *prog)
{
	pid_t pids[RC_TARGETS_MAX] = { 0 };
	pid_t parent = getpid();
	int pipes[RC_TARGETS_MAX];
	sigset_t chld, old_mask;
	int i, k;

	for (i = 0; i < n; i++) {
		int pfd[2] = { -1, -1 };
		pid_t pid;

		pipes[i] = -1;
		if (res[i].status == RC_RES_FAILED) {
			rc_proto_abandon(&j->ring, &j->reg[i]);
			continue;
		}
		if (pipe2(pfd, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
			snprintf(res[i].error, sizeof res[i].error,
				 "cannot start a consumer: %s",
				 strerror(errno));
			res[i].status = RC_RES_FAILED;
			if (pfd[0] >= 0) {
				close(pfd[0]);
				close(pfd[1]);
			}
			rc_proto_abandon(&j->ring, &j->reg[i]);
			continue;
		}
		if (pid == 0) {
			/* The invocation's death (even SIGKILL) interrupts
			 * us like its SIGTERM would: stop and leave. */
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			if (getppid() != parent)
				rc_interrupted = 1;
			nchildren = 0;
			close(pfd[0]);
			for (k = 0; k < n; k++) {
				if (k != i && dst[k])
					close(dst[k]->fd);
				if (k < i && pipes[k] >= 0)
					close(pipes[k]);
			}
			rc_dev_close(src);
			struct rc_consumer_args a = {
				.ring = &j->ring, .reg = j->reg[i],
				.dst = dst[i], .res = &res[i],
				.ready_fd = pfd[1], .hashes = hashes,
				.verify = o->verify, .sparse = o->sparse,
				.skip_equal = o->skip_equal,
				.stream = j->ring.stream,
				.rdv = &j->rdv,
			};

			res[i].status = RC_RES_PENDING;
			rc_consumer_run(&a);
			_exit(res[i].status == RC_RES_OK ? 0 : 1);
		}
		close(pfd[1]);
		children[nchildren++] = pid;
		pipes[i] = pfd[0];
		pids[i] = pid;
	}
	/* Hand each entry's liveness over to its consumer.  The child
	 * either claims its entry and says so, or dies (EOF): an
	 * interruption is passed on and the wait goes on, because an entry
	 * is given up only when its consumer cannot have claimed it. */
	for (i = 0; i < n; i++) {
		char c;
		ssize_t r;

		if (pipes[i] < 0)
			continue;
		do {
			forward_interrupt();
			r = read(pipes[i], &c, 1);
		} while (r < 0 && errno == EINTR);
		close(pipes[i]);
		if (r == 1)
			rc_proto_hand_off(&j->ring, &j->reg[i]);
		else
			rc_proto_abandon(&j->ring, &j->reg[i]);
	}
	/* Wait for them, drawing progress meanwhile.  SIGCHLD stays pending
	 * while blocked, so sigtimedwait() returns as soon as a consumer
	 * exits (even between the waitpid() and the wait), not at the next
	 * progress tick. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old_mask);
	for (;;) {
		struct timespec ts = { 0, 100000000 };
		int left = 0;

		for (i = 0; i < n; i++) {
			int status;
			pid_t w;

			if (!pids[i])
				continue;
			w = waitpid(pids[i], &status, WNOHANG);
			if (w == 0 || (w < 0 && errno == EINTR)) {
				left++;
				continue;
			}
			forget_child(pids[i]);
			pids[i] = 0;
			if (w < 0 || res[i].status != RC_RES_PENDING)
				continue;
			res[i].status = RC_RES_FAILED;
			if (WIFSIGNALED(status))
				snprintf(res[i].error, sizeof res[i].error,
					 "consumer killed by signal %d",
					 WTERMSIG(status));
			else
				snprintf(res[i].error, sizeof res[i].error,
					 "consumer exited with status %d",
					 WEXITSTATUS(status));
		}
		rc_progress_tick(prog, left == 0);
		if (!left)
			break;
		forward_interrupt();
		sigtimedwait(&chld, NULL, &ts);
	}
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	rc_progress_end(prog);
}


/* parse: the options and the specs. */
static int step_parse(struct invocation *inv)
{
	int i, rc = parse_args(inv->argc, inv->argv, &inv->o);

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
		return refuse(inv);
	}
	if (format)
		rc_msg("source %s: %s-compressed: decompressed as it is read (--raw copies its bytes)",
		       inv->src->spec, format);
	if (inv->src->fd < 0 || fstat(inv->src->fd, &inv->src_st) < 0) {
		snprintf(inv->err, sizeof inv->err, "source %s: fstat: %s",
			 inv->src->spec, strerror(errno));
		return refuse(inv);
	}
	return NEXT;
}

/* --expect: the golden manifest, read before the image is sized.  Its
 * blocks are the ring's blocks; its size is the image's: a disk larger
 * than the image gives its first bytes, a source of unknown size (a pipe,
 * a compressed stream) must hold exactly that many, and an image file
 * must be that size. */
static int load_expect(struct invocation *inv)
{
	struct rc_image_hashes *m = &inv->expect;
	struct opts *o = &inv->o;
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
	if (o->size_mode == SIZE_GIVEN && o->size != m->image_size) {
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
	if (o->size_mode != SIZE_GIVEN &&
	    (src->size == RC_SIZE_UNKNOWN || src->size != m->image_size))
		rc_msg("source %s: reading the %llu bytes the manifest %s describes (--expect)",
		       src->spec, (unsigned long long)m->image_size, o->expect);
	o->size_mode = SIZE_GIVEN;
	o->size = m->image_size;
	o->size_quiet = true;
	return 0;
}

/* describe: how much of the source is the image. */
static int step_describe(struct invocation *inv)
{
	if (inv->o.expect && load_expect(inv) < 0)
		return refuse(inv);
	inv->status = image_size(&inv->o, inv->src, &inv->image, &inv->stream);
	if (inv->status)
		return END;
	if (inv->image == 0 && inv->o.serve) {
		snprintf(inv->err, sizeof inv->err,
			 "serve: source %s is empty: nothing to serve",
			 inv->src->spec);
		return refuse(inv);
	}
	return NEXT;
}

/* --start-at: where a new ring's first pass starts.  `random' spreads
 * the nodes of a fleet over the image, so that a swarm has pieces to
 * trade.  A source read only in order has no other start than 0. */
static int start_block(struct invocation *inv)
{
	const struct opts *o = &inv->o;
	/* The blocks of the ring it would create. */
	struct rc_ring_params p = { .image_size = inv->image,
				    .block_size = o->block_size,
				    .buffer_size = inv->req.buffer_size };
	uint64_t nblocks, nslots, r = 0;

	if (o->start_mode == START_ZERO)
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
	if (o->start_mode == START_BLOCK) {
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
	const struct opts *o = &inv->o;
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
	req->size_set = o->size_mode == SIZE_GIVEN;
	req->block_size = o->block_size;
	req->block_size_set = o->block_size_set;
	req->buffer_size = o->buffer;
	req->buffer_size_set = o->buffer_set;
	if (!o->buffer_set && inv->image &&
	    source_has_holes(inv->src, inv->image))
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
	rc = rc_open_targets(t, inv->dst, inv->owned, inv->err,
			     sizeof inv->err);
	free(block0);
	t->block0 = NULL;
	if (rc < 0 ||
	    rc_refuse_outputs(t, what, paths, 2, inv->err,
			      sizeof inv->err) < 0)
		return refuse(inv);
	if (join_request(inv) < 0)
		return refuse(inv);
	/* What --rate counts, where the rates shown count something else. */
	if (inv->o.rate_set && !inv->o.dry_run && inv->image &&
	    source_has_holes(inv->src, inv->image))
		rc_msg("--rate limits the bytes read from %s; its holes are not read, so the rates shown (bytes of the image per second, holes included) may be far above it",
		       inv->src->spec);
	if (inv->image &&
	    check_resources(inv->n, &inv->req, inv->err, sizeof inv->err) < 0)
		return refuse(inv);
	/* Results live in memory shared with the consumers. */
	inv->res = mmap(NULL, sizeof *inv->res * (size_t)(inv->n ? inv->n : 1),
			PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			-1, 0);
	inv->j = calloc(1, sizeof *inv->j);
	if (inv->res == MAP_FAILED || !inv->j) {
		snprintf(inv->err, sizeof inv->err, "out of memory");
		return refuse(inv);
	}
	inv->j->rdv.dirfd = -1; /* until rc_elect opens the run directory */
	set_signals();
	if (inv->o.dry_run &&
	    dry_rescue_map(inv->o.rescue_map, inv->err, sizeof inv->err) < 0)
		return refuse(inv);
	if (inv->o.dry_run) {
		inv->status = dry_run(&inv->o, &inv->req, inv->src, inv->image,
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
static void abandon_all(struct invocation *inv);

static int step_elect(struct invocation *inv)
{
	struct rc_join *j = inv->j;
	const char *map = inv->o.rescue_map;
	int rc;

	if (map && open_rescue_map(inv) < 0)
		return refuse(inv);
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
				abandon_all(inv);
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
		return refuse(inv);
	}
	return NEXT;
}

/* serve --foreground: wait until the producer (not our child: it is
 * twice removed) leaves, passing SIGTERM and SIGINT on to it, so that a
 * service manager can run and stop `serve' like any daemon.  Its pid and
 * start time are looked at every 200 ms (a pidfd would say it at once,
 * but valgrind 3.19 does not know pidfd_open, and a fifth of a second
 * does not matter to a service manager). */
static void wait_producer(pid_t pid, uint64_t start)
{
	struct timespec tick = { 0, 200000000 };
	sigset_t block, old;
	bool passed = false;

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &old);
	while (rc_proc_alive(pid, start)) {
		if (rc_interrupted && !passed) {
			kill(pid, SIGTERM); /* alive and ours, checked above */
			passed = true;
		}
		/* The signals are unblocked only inside the wait: one that
		 * arrives after the check above still ends it at once. */
		ppoll(NULL, 0, &tick, &old);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

/* What `serve' does once elected: say where the producer is, and leave
 * it (or, with --foreground, stay until it leaves). */
static int step_serve(struct invocation *inv)
{
	struct rc_join *j = inv->j;
	pid_t pid = j->ring.producer_pid;

	if (!inv->o.serve)
		return NEXT;
	inv->run->producer = pid;
	inv->run->producer_start = j->ring.producer_start;
	inv->run->created = j->created;
	inv->run->stream = inv->stream;
	/* A producer that leaves before we would have ours leave (a plain
	 * copy's, which does not linger): "already served" would be untrue
	 * once its copy ends.  Its linger is copied at its start and never
	 * re-read, so it cannot be extended: refused. */
	if (!j->created && (inv->o.foreground ||
			    (!inv->run->capture &&
			     j->ring.linger_ms < inv->o.linger_ms))) {
		char lg[64] = "does not linger (a plain copy's)";

		if (j->ring.linger_ms)
			snprintf(lg, sizeof lg, "lingers only %u s",
				 j->ring.linger_ms / 1000);
		if (inv->o.foreground)
			snprintf(inv->err, sizeof inv->err,
				 "serve --foreground: %s is already being served by producer pid %d, which this command did not start: stop that one first",
				 inv->src->spec, (int)pid);
		else
			snprintf(inv->err, sizeof inv->err,
				 "serve %s refused: it is being read by producer pid %d, which %s: it leaves after the copies it serves and nothing would serve the source then; run serve once it has left, or give the copy --linger",
				 inv->src->spec, (int)pid, lg);
		rc_ring_detach(&j->ring);
		return refuse(inv);
	}
	rc_ring_detach(&j->ring);
	if (inv->o.json) {
		printf("{\"source\": ");
		rc_json_str(stdout, inv->src->spec);
		printf(", \"producer_pid\": %d, \"started\": %s}\n", (int)pid,
		       j->created ? "true" : "false");
		fflush(stdout);
	}
	if (!j->created) {
		if (!inv->run->capture)
			rc_msg("%s is already being served (producer pid %d): nothing to do",
			       inv->src->spec, (int)pid);
		return END;
	}
	if (inv->run->capture)
		return END; /* the caller says where the producer is */
	if (inv->o.linger_ms == UINT32_MAX && !inv->o.foreground)
		rc_msg("serving %s: producer pid %d, a ring of %u x %u-byte slots; it waits for joiners until SIGTERM (kill %d)",
		       inv->src->spec, (int)pid, j->ring.nslots,
		       j->ring.block_size, (int)pid);
	else
		rc_msg("serving %s: producer pid %d, a ring of %u x %u-byte slots; it waits for joiners %s",
		       inv->src->spec, (int)pid, j->ring.nslots,
		       j->ring.block_size,
		       inv->o.linger_ms != UINT32_MAX
			       ? "for --linger seconds after the last leaves"
			       : "until this command gets SIGTERM");
	if (inv->o.foreground) {
		char ready[PATH_MAX + 64];

		snprintf(ready, sizeof ready, "serving %s: producer pid %d",
			 inv->src->spec, (int)pid);
		rc_notify_ready(ready);
		wait_producer(pid, j->ring.producer_start);
		/* A producer that leaves tears its ring down first: one that
		 * did not was killed, and a service manager restarts a
		 * server that failed (Restart=on-failure), not one that
		 * ended. */
		if (rc_ring_left(&j->ring)) {
			rc_err("producer pid %d of %s was killed: it left its ring (shm %d, sem %d), which the next ringcopy of %s removes",
			       (int)pid, inv->src->spec, j->ring.shmid,
			       j->ring.semid, inv->src->spec);
			inv->status = RC_EXIT_FAILED;
			return END;
		}
		rc_msg("producer pid %d of %s has left", (int)pid,
		       inv->src->spec);
	}
	return END;
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
	if (inv->o.start_mode != START_ZERO)
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

/* Give our registrations up: no consumer will claim them. */
static void abandon_all(struct invocation *inv)
{
	int i;

	for (i = 0; i < inv->n; i++)
		rc_proto_abandon(&inv->j->ring, &inv->j->reg[i]);
	rc_ring_detach(&inv->j->ring);
}

/* prepare: the shared block hashes, then the targets (created or
 * truncated: the first write). */
static int step_prepare(struct invocation *inv)
{
	struct rc_join *j = inv->j;
	int i, rc;

	if (!j->created)
		say_joined(inv);
	else if (inv->o.start_mode != START_ZERO && inv->req.start_block)
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
	run_consumers(inv->j, inv->n, inv->dst, inv->src, inv->res,
		      inv->hashes, &inv->o, prog);
	return NEXT;
}

/* --expect, for this invocation's own targets: every block they were
 * given hashes as the golden manifest says.  The producer checks too when
 * it is ours; a copy that joined a ring started without --expect is
 * proved here. */
static void check_expected(struct invocation *inv)
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

/* A disk larger than the image it now holds: if the image is a GPT, its
 * backup header (and backup partition array) sit at the image's end, not
 * at the disk's, and partitioning tools complain.  Read from the target
 * itself, just verified: the primary header at LBA 1 (512-byte or 4K
 * sectors) names the backup's LBA. */
static void gpt_backup_note(struct invocation *inv, int i)
{
	static const uint32_t sectors[] = { 512, 4096 };
	struct rc_dev *d = inv->dst[i];
	/* A stream's image is what it held, known at its end. */
	uint64_t image = inv->stream ? inv->res[i].image_bytes
				     : inv->j->ring.image_size;
	unsigned char h[92];
	size_t k;
	int fd;

	if (!d || !(d->caps & RC_CAP_BLOCKDEV) || !d->path ||
	    (inv->res[i].status != RC_RES_OK &&
	     inv->res[i].status != RC_RES_RESCUED) || d->size <= image)
		return;
	fd = open(d->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return;
	for (k = 0; k < sizeof sectors / sizeof sectors[0]; k++) {
		uint64_t my, alt, end;

		if (pread(fd, h, sizeof h, sectors[k]) != (ssize_t)sizeof h ||
		    memcmp(h, "EFI PART", 8))
			continue;
		memcpy(&my, h + 24, 8);
		memcpy(&alt, h + 32, 8);
		my = le64toh(my);
		alt = le64toh(alt);
		if (my != 1 || alt > UINT64_MAX / sectors[k] - 1)
			continue;
		end = (alt + 1) * sectors[k];
		if (end >= d->size)
			break;
		snprintf(inv->run->note, sizeof inv->run->note,
			 "target %s holds a GPT whose backup header is at byte %llu, not at the end of the disk (%llu bytes): move it there with 'sgdisk -e %s'",
			 inv->specs[i], (unsigned long long)(end - sectors[k]),
			 (unsigned long long)d->size, d->path);
		if (!inv->run->capture)
			rc_msg("%s", inv->run->note);
		break;
	}
	close(fd);
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
		check_expected(inv);
	if (inv->o.manifest &&
	    write_manifest(inv->o.manifest, r, inv->hashes, inv->res,
			   inv->n) < 0)
		inv->status = RC_EXIT_FAILED;
	for (int i = 0; i < inv->n; i++)
		gpt_backup_note(inv, i);
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
				 interrupt_name(),
				 (unsigned long long)r->bytes_written);
		else if (r->phase == RC_PHASE_COPY)
			snprintf(r->error, sizeof r->error,
				 "interrupted by %s while copying: %llu of %llu bytes written; the rest, and block 0 (written last), are not: the target does not hold the image",
				 interrupt_name(),
				 (unsigned long long)r->bytes_written,
				 (unsigned long long)inv->image);
		else
			snprintf(r->error, sizeof r->error,
				 "interrupted by %s while %s: %s: not reported complete",
				 interrupt_name(),
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
		{ "elect", step_elect },
		{ "serve", step_serve },
		{ "prepare", step_prepare },
		{ "run consumers", step_run },
		{ "finish", step_finish },
	};
	static struct invocation inv;
	size_t i;
	int r = NEXT;

	memset(&inv, 0, sizeof inv);
	inv.argc = argc;
	inv.argv = argv;
	inv.o.serve = run->serve;
	inv.run = run;
	for (i = 0; i < sizeof steps / sizeof steps[0] && r == NEXT; i++) {
		r = steps[i].run(&inv);
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
