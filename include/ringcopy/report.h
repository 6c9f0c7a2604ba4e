/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - what an invocation says when it ends, and its exit status. */
#ifndef RINGCOPY_REPORT_H
#define RINGCOPY_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ringcopy/core.h"

struct rc_report {
	int n;                     /* targets */
	char *const *specs;        /* as the user named them */
	const struct rc_result *res;
	uint64_t image_size;
	uint32_t block_size;
	uint64_t bytes_read;       /* by the producer, all passes */
	uint64_t read_before;      /* before we joined */
	bool json;                 /* the JSON summary on standard output */
};

/* One line per target on standard error (failures only with -q), and the
 * JSON summary with --json. */
void rc_report(const struct rc_report *rp);

/* One target's fields of the JSON summary ("target": ..., "status": ...,
 * ..., "error": ...), without the braces, so that another object (a
 * station's event line) can carry them; status replaces the word the
 * result gives ("ok", "mismatch", "failed") when not NULL. */
void rc_report_target_json(FILE *f, const char *spec,
			   const struct rc_result *r, const char *status);

/* The exit status: a mismatch outranks a failure (a target that looks
 * complete but is wrong is the worst outcome of a rollout), a failure
 * outranks success; `status' is what the invocation found before (the
 * source's unreadable sectors, an unwritten manifest). */
int rc_exit_status(int status, const struct rc_result *res, int n);

#endif
