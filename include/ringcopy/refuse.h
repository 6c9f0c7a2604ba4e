/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the refusal policy: every path an invocation writes is checked
 * (and targets opened) before anything is written. */
#ifndef RINGCOPY_REFUSE_H
#define RINGCOPY_REFUSE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "ringcopy/backend.h"
#include "ringcopy/ring.h"

struct rc_target_req {
	int n;                     /* targets */
	char *const *specs;        /* as the user named them */
	const struct stat *src_st; /* the source, for relation checks */
	const char *src_spec;
	uint64_t image_size;       /* targets must hold it */
	bool force;                /* overwrite what a device holds */
	bool dry_run;              /* say nothing about overwriting */
	const void *block0;        /* --skip-equal: the image's block 0 (a
				    * disk that holds it holds this image's
				    * table: no --force needed), or NULL */
	size_t block0_len;
};

/* What rc_open_targets found of each target (where a path lands, what
 * stands there, which storage it reaches), for rc_refuse_outputs.  The
 * caller owns it: rc_targets_seen_free() it once the outputs are
 * checked. */
struct rc_targets_seen;

/* Open every target after checking it: the source itself or on the same
 * disk, a loop device over the source, named twice, a foreign symlink,
 * read-only, in use, too small, holding a partition table or filesystem
 * without force.  Nothing is created or written.  Returns 0 with *seen
 * the caller's to free, or -errno with err naming the target and the
 * reason (exit 2) and *seen NULL.  owned[i] is a string to free (a
 * resolved symlink), or NULL. */
int rc_open_targets(const struct rc_target_req *req, struct rc_dev **dst,
		    char **owned, struct rc_targets_seen **seen, char *err,
		    size_t errlen);
void rc_targets_seen_free(struct rc_targets_seen *seen);

/* The other paths an invocation writes (--manifest, the --rescue map;
 * NULL where not given), checked like targets before anything is
 * written: never the source, a target (by identity, or the same new path
 * named another way: seen, from rc_open_targets on the same req) or each
 * other, never a symlink or an existing non-regular file (a device node
 * is never replaced by a file), never a new file on the source's device,
 * and in a writable directory.  what[i] names the option in the message.
 * 0, or -EINVAL with err (exit 2). */
int rc_refuse_outputs(const struct rc_target_req *req,
		      const struct rc_targets_seen *seen,
		      const char *const *what, const char *const *paths, int n,
		      char *err, size_t errlen);

#endif
