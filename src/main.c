/* ringcopy - copy one disk image to many targets, reading the source once.
 *
 * The invocation: parse the command line, open the source and every target
 * and refuse what is unsafe before anything is written, join or create the
 * ring of the source, fork one consumer per target, wait for them and
 * report.  Only main() exits; forked children _exit().
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "ringcopy/core.h"
#include "ringcopy/describe.h"
#include "ringcopy/progress.h"
#include "ringcopy/targets.h"
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
	uint32_t stall_ms;
	const char *rescue_map;
	int progress;        /* PROGRESS_* as asked */
	bool progress_set;
	uint32_t linger_ms;
	bool linger_set;
	bool dry_run;
	bool serve;          /* `ringcopy serve': a producer, no targets */
};

enum { PROGRESS_AUTO, PROGRESS_PLAIN, PROGRESS_JSON };

enum { SIZE_AUTO, SIZE_DEVICE, SIZE_GIVEN };

/* Consumers not yet reaped: a signal to the invocation is passed on to
 * them by the loops that wait for them, never from the handler (a reaped
 * child's pid may already be someone else's). */
static pid_t children[RC_CONS_MAX];
static size_t nchildren;
static bool forwarded;

static void usage(FILE *f)
{
	fputs("Usage:\n"
	      " ringcopy [options] SOURCE TARGET...\n"
	      " ringcopy serve [options] SOURCE\n"
	      " ringcopy status [--json] [SOURCE]\n"
	      " ringcopy verify [-q] MANIFEST TARGET...\n"
	      "\n"
	      "Copy the image in SOURCE to every TARGET, reading SOURCE once.\n"
	      "Started again on the same SOURCE while a copy runs, ringcopy\n"
	      "joins that copy: its targets start at the block being read and\n"
	      "receive the blocks before it when reading wraps to block 0.\n"
	      "\n"
	      "Options:\n"
	      " -b, --block-size SIZE  block size, a power of two from 4K to 64M (default 1M)\n"
	      "     --buffer SIZE      ring size (default 16M)\n"
	      "     --rate SIZE        cap the source read rate, bytes per second\n"
	      "     --size auto|device|SIZE  how much of SOURCE to copy (default auto:\n"
	      "                        the image on a disk, see ringcopy(1))\n"
	      "     --sparse auto|always|never  how zero blocks are written (default auto)\n"
	      "     --force            overwrite a device holding a partition table or filesystem\n"
	      "     --compress-level N zstd level of .zst targets, 1-19 (default 3)\n"
	      "     --no-verify        do not read the targets back\n"
	      "     --stall-timeout SECONDS  evict a target stalled this long (default 60, 0 never)\n"
	      "     --rescue MAPFILE   fill unreadable source sectors with a marker, list them in MAPFILE\n"
	      "     --manifest FILE    write the block hashes and digest to FILE\n"
	      "     --json             print a JSON summary on standard output\n"
	      "     --progress[=json]  progress lines (JSON lines) even off a terminal\n"
	      "     --linger SECONDS   keep the producer waiting for joiners after the last leaves\n"
	      "     --dry-run          say what would happen; write and register nothing\n"
	      " -q, --quiet            print only errors\n"
	      " -h, --help             display this help\n"
	      " -V, --version          display the version\n"
	      "\n"
	      "SIZE accepts K, M, G and T suffixes (powers of 1024).\n"
	      "Specs: a path (block device, file, .zst image), dev:PATH, file:PATH,\n"
	      "zstd:PATH, - (standard input or output), null: (discard),\n"
	      "fault:OPTIONS:SPEC (inject failures).\n"
	      "Exit status: 0 every target complete and verified; 1 a target or\n"
	      "the source failed; 2 refused before anything was written; 3 a\n"
	      "target read back differently.\n"
	      "See ringcopy(1).\n",
	      f);
}

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	rc_err("%s (try 'ringcopy --help')", buf);
	return RC_EXIT_REFUSED;
}

/* A plain decimal number from lo to hi: 0, or -1 for anything else. */
static int parse_count(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	enum { OPT_BUFFER = 256, OPT_RATE, OPT_JSON, OPT_NO_VERIFY,
	       OPT_MANIFEST, OPT_SIZE, OPT_SPARSE, OPT_FORCE, OPT_STALL,
	       OPT_RESCUE, OPT_LEVEL, OPT_PROGRESS, OPT_LINGER, OPT_DRY_RUN };
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
				return usage_error("--block-size '%s': want a power of two from 4K to 64M",
						   optarg);
			o->block_size = (uint32_t)v;
			o->block_size_set = true;
			break;
		case OPT_BUFFER:
			if (rc_parse_size(optarg, &v) < 0 || v == 0)
				return usage_error("--buffer '%s': want a size such as 64M",
						   optarg);
			o->buffer = v;
			o->buffer_set = true;
			break;
		case OPT_RATE:
			if (rc_parse_size(optarg, &v) < 0 || v == 0)
				return usage_error("--rate '%s': want bytes per second such as 100M",
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
				return usage_error("--size '%s': want auto, device or a size such as 8G",
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
				return usage_error("--sparse '%s': want auto, always or never",
						   optarg);
			break;
		case OPT_FORCE:
			o->force = true;
			break;
		case OPT_STALL:
			if (parse_count(optarg, 0, 86400, &n) < 0)
				return usage_error("--stall-timeout '%s': want seconds from 0 to 86400",
						   optarg);
			o->stall_ms = n * 1000u;
			break;
		case OPT_LEVEL:
			if (parse_count(optarg, 1, 19, &n) < 0)
				return usage_error("--compress-level '%s': want 1 to 19",
						   optarg);
			rc_zstd_set_level((int)n);
			break;
		case OPT_PROGRESS:
			o->progress_set = true;
			if (!optarg || !strcmp(optarg, "plain"))
				o->progress = PROGRESS_PLAIN;
			else if (!strcmp(optarg, "json"))
				o->progress = PROGRESS_JSON;
			else
				return usage_error("--progress='%s': want --progress or --progress=json",
						   optarg);
			break;
		case OPT_LINGER:
			if (parse_count(optarg, 0, 4000000, &n) < 0)
				return usage_error("--linger '%s': want seconds from 0 to 4000000",
						   optarg);
			o->linger_ms = n * 1000u;
			o->linger_set = true;
			break;
		case OPT_DRY_RUN:
			o->dry_run = true;
			break;
		case OPT_RESCUE:
			if (!*optarg)
				return usage_error("--rescue needs a map file name");
			o->rescue_map = optarg;
			break;
		case OPT_MANIFEST:
			if (!*optarg)
				return usage_error("--manifest needs a file name");
			o->manifest = optarg;
			break;
		case 'q':
			rc_quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(RC_EXIT_OK);
		case 'V':
			printf("ringcopy %s\n", PACKAGE_VERSION);
			exit(RC_EXIT_OK);
		case ':':
			return usage_error("option '%s' needs a value",
					   argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'",
					   argv[optind - 1]);
		}
	}
	if (o->buffer < o->block_size)
		return usage_error("--buffer %llu is smaller than one block of %u bytes",
				   (unsigned long long)o->buffer,
				   o->block_size);
	if (o->serve) {
		if (argc - optind != 1)
			return usage_error("%s", argc - optind < 1
							 ? "serve: missing SOURCE"
							 : "serve takes one SOURCE and no TARGET");
		if (!o->linger_set)
			o->linger_ms = UINT32_MAX; /* until SIGTERM */
		return -1;
	}
	if (argc - optind < 2)
		return usage_error("%s", argc - optind < 1
						 ? "missing SOURCE and TARGET"
						 : "missing TARGET");
	if ((size_t)(argc - optind - 1) > RC_CONS_MAX)
		return usage_error("%d targets: at most %u per invocation",
				   argc - optind - 1, RC_CONS_MAX);
	return -1;
}

static void on_signal(int sig)
{
	(void)sig;
	rc_interrupted = 1;
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

static const char *status_word(const struct rc_result *r)
{
	switch (r->status) {
	case RC_RES_OK:
		return "ok";
	case RC_RES_MISMATCH:
		return "mismatch";
	default:
		return "failed";
	}
}

static void report(struct opts *o, int n, char **specs, struct rc_result *res,
		   uint64_t image, uint32_t bs, uint64_t bytes_read,
		   uint64_t read_before)
{
	int i;

	for (i = 0; i < n; i++) {
		const struct rc_result *r = &res[i];
		double s = (double)r->ns / 1e9;
		double mbs = s > 0 ? (double)r->bytes_written / 1e6 / s : 0;

		if (rc_quiet && r->status == RC_RES_OK)
			continue; /* -q: failures only */
		fprintf(stderr, "%-8s %s  %llu bytes  start block %llu  %.2f s  %.1f MB/s",
			r->status == RC_RES_OK ? "ok" :
			r->status == RC_RES_MISMATCH ? "MISMATCH" : "FAILED",
			specs[i], (unsigned long long)r->bytes_written,
			(unsigned long long)r->start_block, s, mbs);
		if (r->status == RC_RES_OK)
			fprintf(stderr, "  %s %s\n",
				r->verified ? "verified" : "digest",
				r->digest[0] ? r->digest : "-");
		else
			fprintf(stderr, "  %s\n", r->error);
	}
	if (!o->json)
		return;
	printf("{\"image_bytes\": %llu, \"block_size\": %u, \"source_bytes_read\": %llu, \"source_bytes_before_join\": %llu, \"targets\": [",
	       (unsigned long long)image, bs, (unsigned long long)bytes_read,
	       (unsigned long long)read_before);
	for (i = 0; i < n; i++) {
		const struct rc_result *r = &res[i];

		printf("%s{\"target\": ", i ? ", " : "");
		rc_json_str(stdout, specs[i]);
		printf(", \"status\": \"%s\", \"start_block\": %llu, \"bytes_written\": %llu, \"seconds\": %.3f, \"verified\": %s, \"verify_method\": ",
		       status_word(r), (unsigned long long)r->start_block,
		       (unsigned long long)r->bytes_written,
		       (double)r->ns / 1e9, r->verified ? "true" : "false");
		rc_json_str(stdout, r->how[0] ? r->how : NULL);
		printf(", \"bytes_read_back_during_copy\": %llu",
		       (unsigned long long)r->behind_bytes);
		printf(", \"digest\": ");
		rc_json_str(stdout, r->digest[0] ? r->digest : NULL);
		printf(", \"error\": ");
		rc_json_str(stdout, r->status == RC_RES_OK ? NULL : r->error);
		putchar('}');
	}
	printf("]}\n");
	fflush(stdout);
}

/* How much of the source is the image (--size), said to the user. */
static int image_size(const struct opts *o, struct rc_dev *src,
		      uint64_t *image)
{
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
		rc_msg("source %s: copying the first %llu bytes (--size)",
		       src->spec, (unsigned long long)*image);
		return 0;
	}
	if (src->size == RC_SIZE_UNKNOWN) {
		rc_err("source %s refused: %s: give its size with --size",
		       src->spec,
		       src->be->unknown_size ? src->be->unknown_size
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

/* --dry-run: what would happen, with nothing created, written or
 * registered. */
static int dry_run(const struct opts *o, const struct rc_join_req *req,
		   struct rc_dev *src, uint64_t image, int n, char **specs,
		   struct rc_dev **dst)
{
	struct rc_peek pk;
	int i;

	rc_peek(req, &pk);
	/* What the election would refuse, the dry run refuses alike. */
	if (pk.refused) {
		rc_err("%s", pk.why);
		return RC_EXIT_REFUSED;
	}
	printf("source %s: %s backend, image of %llu bytes\n", src->spec,
	       src->be->name, (unsigned long long)image);
	if (pk.live)
		printf("would join the running copy (producer pid %d) at block %llu of %llu, block size %u\n",
		       pk.producer, (unsigned long long)pk.next_block,
		       (unsigned long long)pk.nblocks, pk.block_size);
	else
		printf("would start a new copy: block size %u, ring of %llu bytes\n",
		       o->block_size, (unsigned long long)req->buffer_size);
	for (i = 0; i < n; i++) {
		struct rc_describe d;
		char holds[200] = "";

		if ((dst[i]->caps & RC_CAP_BLOCKDEV) &&
		    rc_describe_path(dst[i]->path, dst[i]->size, &d) == 0)
			rc_describe_holds(&d, holds, sizeof holds);
		printf("target %s: %s backend, %s%s%s%s\n", specs[i],
		       dst[i]->be->name,
		       dst[i]->fd < 0 ? "a new file"
		       : dst[i]->size == UINT64_MAX ? "an existing file, truncated to the image"
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
static int progress_mode(const struct opts *o)
{
	if (rc_quiet)
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

/* Fork one consumer per registered target and wait for all of them. */
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
			 "%d targets need about %ld open files, the limit is %llu: raise it (ulimit -n) or copy to fewer targets at once",
			 n, need, (unsigned long long)rl.rlim_cur);
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

static void run_consumers(struct rc_join *j, int n, struct rc_dev **dst,
			  struct rc_dev *src, struct rc_result *res,
			  uint64_t *hashes, const struct opts *o,
			  struct rc_progress *prog)
{
	pid_t pids[RC_CONS_MAX] = { 0 };
	pid_t parent = getpid();
	int pipes[RC_CONS_MAX];
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
				.rdv_path = j->rdv_path,
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

int main(int argc, char **argv)
{
	struct rc_dev *dst[RC_CONS_MAX] = { NULL };
	struct rc_target_req treq = { 0 };
	bool seq_only[RC_CONS_MAX] = { false };
	static struct rc_progress prog;
	char *owned[RC_CONS_MAX] = { NULL };
	struct rc_join_req req;
	struct rc_join *j = NULL;
	struct rc_result *res = MAP_FAILED;
	struct rc_dev *src = NULL;
	struct stat src_st, map_st;
	bool map_new = false;
	struct opts o;
	char err[512];
	char **specs;
	int n, i, rc, status = RC_EXIT_OK;
	uint64_t bytes_read = 0, bad_bytes = 0, image = 0, *hashes = NULL;
	size_t hashes_len = 0;

	if (argc > 1 && strcmp(argv[1], "verify") == 0)
		return rc_cmd_verify(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "status") == 0)
		return rc_cmd_status(argc - 1, argv + 1);
	memset(&o, 0, sizeof o);
	if (argc > 1 && strcmp(argv[1], "serve") == 0) {
		argc--;
		argv++;
		o.serve = true;
	}
	rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		return rc;
	specs = argv + optind + 1;
	n = argc - optind - 1;
	for (i = 0; i < n; i++)
		if (o.json && strcmp(specs[i], "-") == 0) {
			rc_err("--json and the target - both want standard output: drop one (try 'ringcopy --help')");
			return RC_EXIT_REFUSED;
		}

	rc = rc_dev_open(argv[optind], RC_OPEN_SOURCE, &src);
	if (rc < 0) {
		rc_err("source %s refused: %s%s%s", argv[optind],
		       rc_backend_detail[0] ? rc_backend_detail : strerror(-rc),
		       rc == -EOPNOTSUPP ? " (this backend cannot be read)"
					 : "",
		       "");
		return RC_EXIT_REFUSED;
	}
	if (src->fd < 0 || fstat(src->fd, &src_st) < 0) {
		rc_err("source %s: fstat: %s", src->spec, strerror(errno));
		status = RC_EXIT_REFUSED;
		goto out;
	}
	status = image_size(&o, src, &image);
	if (status)
		goto out;
	treq.n = n;
	treq.specs = specs;
	treq.src_st = &src_st;
	treq.src_spec = src->spec;
	treq.image_size = image;
	treq.force = o.force;
	treq.dry_run = o.dry_run;
	rc = rc_open_targets(&treq, dst, owned, err, sizeof err);
	if (rc == 0) {
		const char *what[2] = { "--manifest", "--rescue map" };
		const char *paths[2] = { o.manifest, o.rescue_map };

		rc = rc_refuse_outputs(&treq, what, paths, 2, err, sizeof err);
	}
	if (rc < 0) {
		rc_err("%s", err);
		status = RC_EXIT_REFUSED;
		goto out;
	}

	/* Results live in memory shared with the consumers. */
	res = mmap(NULL, sizeof *res * (size_t)(n ? n : 1), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	j = calloc(1, sizeof *j);
	if (res == MAP_FAILED || !j) {
		rc_err("out of memory");
		status = RC_EXIT_FAILED;
		goto out;
	}
	set_signals();

	if (image == 0 && o.serve) {
		rc_err("serve: source %s is empty: nothing to serve", src->spec);
		status = RC_EXIT_REFUSED;
		goto out;
	}
	if (image == 0 && !o.dry_run) {
		copy_empty(n, dst, res);
		goto done;
	}

	memset(&req, 0, sizeof req);
	/* The backend says which ring the source meets other copies in. */
	rc = rc_dev_identity(src, &req.id);
	if (rc < 0) {
		rc_err("source %s: its identity: %s", src->spec, strerror(-rc));
		status = RC_EXIT_REFUSED;
		goto out;
	}
	req.image_size = image;
	req.size_set = o.size_mode == SIZE_GIVEN;
	req.block_size = o.block_size;
	req.block_size_set = o.block_size_set;
	req.buffer_size = o.buffer;
	req.buffer_size_set = o.buffer_set;
	if (!o.buffer_set && source_has_holes(src, image))
		req.buffer_size = RC_BUFFER_SPARSE;
	req.rate = o.rate;
	req.rate_set = o.rate_set;
	req.ntargets = (uint32_t)n;
	req.targets = (const char *const *)specs;
	for (i = 0; i < n; i++)
		seq_only[i] = dst[i]->caps & RC_CAP_SEQUENTIAL;
	req.sequential = seq_only;
	req.source_fd = src->fd;
	req.source = src;
	req.stall_ms = o.stall_ms;
	req.linger_ms = o.linger_ms;
	req.rescue = o.rescue_map != NULL;
	if (check_resources(n, &req, err, sizeof err) < 0) {
		rc_err("%s", err);
		status = RC_EXIT_REFUSED;
		goto out;
	}
	req.map_fd = -1;
	if (o.rescue_map && !o.dry_run) {
		/* Opened here (not truncated: a joiner leaves the running
		 * copy's map alone), emptied once we start the ring, written
		 * by the producer. */
		map_new = access(o.rescue_map, F_OK) < 0;
		req.map_fd = open(o.rescue_map, O_WRONLY | O_CREAT | O_NOFOLLOW |
							 O_NOCTTY | O_NONBLOCK |
							 O_CLOEXEC,
				  0644);
		if (req.map_fd >= 0 && (fstat(req.map_fd, &map_st) < 0 ||
					!S_ISREG(map_st.st_mode))) {
			close(req.map_fd);
			req.map_fd = -1;
			errno = EINVAL;
		}
		if (req.map_fd < 0) {
			rc_err("--rescue map file %s refused: %s", o.rescue_map,
			       strerror(errno));
			status = RC_EXIT_REFUSED;
			goto out;
		}
	}
	if (o.dry_run) {
		status = dry_run(&o, &req, src, image, n, specs, dst);
		goto out;
	}
	rc = rc_elect(&req, j, err, sizeof err);
	if (rc == 0 && req.map_fd >= 0 && !j->created && map_new)
		unlink(o.rescue_map); /* created by our open: not our map */
	/* Our map: emptied before the producer that writes it starts (it
	 * serves our registered entries at once, and writes at its own
	 * offset in the file). */
	if (rc == 0 && req.map_fd >= 0 && j->created &&
	    ftruncate(req.map_fd, 0) < 0) {
		snprintf(err, sizeof err, "--rescue map %s: truncate: %s",
			 o.rescue_map, strerror(errno));
		rc_elect_undo(j);
		rc = -EIO;
	}
	if (rc == 0 && j->created) {
		rc = rc_producer_spawn(&j->ring, src, j->rdv_path, req.map_fd,
				       err, sizeof err);
		if (rc < 0)
			rc_elect_undo(j);
	}
	if (rc == 0)
		rc_elect_release(j);
	if (req.map_fd >= 0)
		close(req.map_fd);
	if (rc < 0) {
		if (map_new)
			unlink(o.rescue_map); /* ours, and no copy to map */
		rc_err("%s", err);
		/* Nothing was written (targets are prepared after the
		 * election): whatever stopped it, exit 2. */
		status = RC_EXIT_REFUSED;
		goto out;
	}
	if (o.serve) {
		if (j->created)
			rc_msg("serving %s: a ring of %u x %u-byte slots, its producer waits for joiners %s",
			       src->spec, j->ring.nslots, j->ring.block_size,
			       o.linger_ms == UINT32_MAX ? "until SIGTERM"
							  : "for --linger seconds after the last leaves");
		else
			rc_msg("%s is already being served (producer pid %d): nothing to do",
			       src->spec, (int)j->ring.producer_pid);
		rc_ring_detach(&j->ring);
		goto out;
	}
	if (o.linger_set && !j->created)
		rc_msg("joined a running copy: its producer keeps its own --linger");
	if (o.rescue_map && !j->created)
		rc_msg("joined a running copy: --rescue and its map file belong to the copy that started it");
	for (i = 0; i < n && !j->created; i++) {
		uint64_t b = rc_seq_block(j->first_seq[i], j->ring.nblocks);

		if (seq_only[i])
			rc_msg("target %s takes blocks in order only: it starts with the next pass, at block 0",
			       specs[i]);
		else if (i == 0 || seq_only[i - 1] ||
			 j->first_seq[i] != j->first_seq[i - 1])
			rc_msg("joined the running copy of %s at block %llu of %llu",
			       src->spec, (unsigned long long)b,
			       (unsigned long long)j->ring.nblocks);
	}

	/* Every refusal is behind us: now targets may be created. */
	for (i = 0; i < n; i++) {
		rc = dst[i]->be->prepare
			     ? dst[i]->be->prepare(dst[i], j->ring.image_size)
			     : 0;
		if (rc < 0) {
			snprintf(res[i].error, sizeof res[i].error,
				 "target %s: cannot prepare it: %s",
				 dst[i]->spec, strerror(-rc));
			res[i].status = RC_RES_FAILED;
		}
		res[i].start_block = rc_seq_block(j->first_seq[i],
						  j->ring.nblocks);
	}
	/* Block hashes, shared: every consumer stores what it saw (the same
	 * values), and the manifest is written from them. */
	hashes_len = j->ring.nblocks * sizeof *hashes;
	hashes = mmap(NULL, hashes_len, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (hashes == MAP_FAILED) {
		hashes = NULL;
		if (o.verify || o.manifest)
			rc_err("no memory for %llu block hashes: targets are not verified",
			       (unsigned long long)j->ring.nblocks);
	}
	prog.mode = progress_mode(&o);
	prog.n = n;
	prog.specs = specs;
	prog.ring = &j->ring;
	prog.first = j->first_seq;
	prog.res = res;
	prog.t0 = rc_now_ns();
	run_consumers(j, n, dst, src, res, hashes, &o, &prog);
	bytes_read = __atomic_load_n(&j->ring.hdr->bytes_read,
				     __ATOMIC_RELAXED);
	bad_bytes = __atomic_load_n(&j->ring.hdr->bad_bytes, __ATOMIC_RELAXED);
	if (bad_bytes) {
		rc_err("source %s: %llu bytes in %llu ranges could not be read and hold the marker 'RINGCOPY-BADSECT'%s%s",
		       src->spec, (unsigned long long)bad_bytes,
		       (unsigned long long)j->ring.hdr->bad_ranges,
		       o.rescue_map ? "; map: " : "",
		       o.rescue_map ? o.rescue_map : "");
		status = RC_EXIT_FAILED;
	}
	if (o.manifest && write_manifest(o.manifest, &j->ring, hashes, res,
					 n) < 0)
		status = RC_EXIT_FAILED;
	rc_ring_detach(&j->ring);
done:
	report(&o, n, specs, res, image, j->ring.block_size
					     ? j->ring.block_size
					     : o.block_size, bytes_read,
	       j->read_before);
	/* A mismatch outranks a failure: a target that looks complete but
	 * is wrong is the worst outcome of a rollout. */
	for (i = 0; i < n; i++) {
		if (res[i].status == RC_RES_MISMATCH)
			status = RC_EXIT_MISMATCH;
		else if (res[i].status != RC_RES_OK &&
			 status != RC_EXIT_MISMATCH)
			status = RC_EXIT_FAILED;
	}
out:
	for (i = 0; i < n; i++) {
		rc_dev_close(dst[i]); /* the consumers closed their copies */
		free(owned[i]);
	}
	rc_dev_close(src);
	if (hashes)
		munmap(hashes, hashes_len);
	if (res != MAP_FAILED)
		munmap(res, sizeof *res * (size_t)(n ? n : 1));
	free(j);
	return status;
}
