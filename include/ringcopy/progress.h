/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - live progress of an invocation's targets. */
#ifndef RINGCOPY_PROGRESS_H
#define RINGCOPY_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "ringcopy/core.h"

enum rc_progress_mode {
	RC_PROGRESS_NONE = 0,
	RC_PROGRESS_TTY = 1,   /* redrawn in place on standard error */
	RC_PROGRESS_LINES = 2, /* plain lines every 2 s on standard error */
	RC_PROGRESS_JSON = 3,  /* JSON lines every second on standard output */
};

struct rc_progress {
	int mode;                  /* enum rc_progress_mode */
	int n;                     /* targets */
	char *const *specs;        /* their names */
	const struct rc_ring *ring;
	const uint64_t *first;     /* each target's first sequence number */
	const struct rc_result *res; /* what the consumers publish */
	uint64_t t0;               /* when the copy started */
	bool stream;               /* size unknown: no percent, no ETA */
	uint64_t prev_ns;          /* the previous frame */
	uint64_t prev[RC_CONS_MAX]; /* bytes at the previous frame */
	double rate[RC_CONS_MAX];  /* smoothed bytes per second, -1: none yet */
	uint64_t vprev[RC_CONS_MAX]; /* bytes verified at the previous frame */
	double vrate[RC_CONS_MAX]; /* smoothed read-back rate, -1: none yet */
	int drawn;                 /* lines on screen (TTY) */
};

/* Draw a frame if one is due (always when last). */
void rc_progress_tick(struct rc_progress *p, bool last);
/* Erase the live lines before the summary. */
void rc_progress_end(struct rc_progress *p);

#endif
