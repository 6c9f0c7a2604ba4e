/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - one invocation of the copy (and of `serve'): the struct its
 * steps walk, and the rooms the steps call into.  The struct is a local
 * of rc_cmd_run, passed down; see doc/design.md, "The invocation's rooms
 * (issue 26)". */
#ifndef RINGCOPY_INVOCATION_H
#define RINGCOPY_INVOCATION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "ringcopy/cli.h"
#include "ringcopy/core.h"
#include "ringcopy/options.h"
#include "ringcopy/progress.h"
#include "ringcopy/refuse.h"
#include "ringcopy/verify.h"

/* What a step asks of the pipeline. */
enum { NEXT = 0, REPORT = 1, END = 2 };

/* What the steps share, from the command line to the report. */
struct invocation {
	struct rc_opts o;
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
	/* --skip-equal with --expect: per target, the blocks found to hold
	 * the manifest's (NULL: none), in one shared map (scan.c). */
	uint8_t *held[RC_TARGETS_MAX];
	uint8_t *held_map;
	size_t held_len;
	struct rc_progress prog;
	uint64_t bytes_read;
	int status;                       /* the exit status so far */
	char err[512];
	struct rc_run *run;               /* what the caller asked, and
					   * where the outcome goes */
};


/* supervise.c: the consumer processes and the signals that stop them. */
void rc_signals_set(void);
const char *rc_interrupt_name(void);
void rc_run_consumers(struct invocation *inv);
void rc_abandon_all(struct invocation *inv);

/* serve.c: what `serve' does once elected. */
int rc_step_serve(struct invocation *inv);

/* expect.c: --expect (the golden manifest) and --manifest. */
int rc_load_expect(struct invocation *inv);
void rc_check_expected(struct invocation *inv);
int rc_write_manifest(const char *path, struct rc_ring *r, uint64_t *hashes,
		      struct rc_result *res, int n);

/* scan.c: what each target holds already, before it registers. */
int rc_step_scan(struct invocation *inv);

/* resources.c: stop with a refusal (nothing was written): END; what the
 * invocation asks of the machine. */
int rc_inv_refuse(struct invocation *inv);
bool rc_source_has_holes(struct rc_dev *src, uint64_t image);
int rc_check_resources(int n, const struct rc_join_req *req, char *err,
		       size_t errlen);

/* dryrun.c: --dry-run. */
int rc_dry_rescue_map(const char *map, char *err, size_t errlen);
int rc_dry_run(const struct rc_opts *o, const struct rc_join_req *req,
	       struct rc_dev *src, uint64_t image, int n, char **specs,
	       struct rc_dev **dst);

#endif
