/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - live progress of an invocation's targets.
 *
 * Drawn by the invocation while it waits for its consumers, from what they
 * publish in the shared result array and from the ring's header: percent
 * of the image, rate, ETA, the producer's pass, and how far the target
 * lags behind the producer.  On a terminal the lines are redrawn in place
 * with one write() per frame (no flicker); otherwise plain lines every two
 * seconds with --progress, or JSON lines every second with
 * --progress=json.
 */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ringcopy/progress.h"
#include "ringcopy/util.h"

static const char *phase_name(const struct rc_result *r)
{
	if (r->status == RC_RES_OK)
		return "done";
	if (r->status == RC_RES_FAILED)
		return "failed";
	if (r->status == RC_RES_MISMATCH)
		return "mismatch";
	if (r->status == RC_RES_RESCUED)
		return "rescued";
	switch (r->phase) {
	case RC_PHASE_FLUSH: return "flushing";
	case RC_PHASE_VERIFY: return "verifying";
	default: return "copying";
	}
}

/* The rate shown, and the ETA drawn from it, are smoothed over about
 * RATE_TAU seconds: a frame sees whole blocks land, so its own rate jumps
 * between 0 and several times the real one. */
#define RATE_TAU 3.0

static double smooth(double prev, double now, double dt)
{
	if (prev < 0)
		return now;
	return prev + (now - prev) * (1 - exp(-dt / RATE_TAU));
}

/* "-" when unknown, else 42s, 3m07s or 2h05m. */
static void eta_str(double eta, char *buf, size_t len)
{
	uint64_t s = eta < 0 ? 0 : (uint64_t)(eta + 0.5);

	if (eta < 0)
		snprintf(buf, len, "-");
	else if (s < 60)
		snprintf(buf, len, "%" PRIu64 "s", s);
	else if (s < 3600)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60,
			 s % 60);
	else
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600,
			 s / 60 % 60);
}

static void human(double bytes, char *buf, size_t len)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int i = 0;

	while (bytes >= 1024 && i < 4) {
		bytes /= 1024;
		i++;
	}
	snprintf(buf, len, "%.1f %s", bytes, u[i]);
}

/* One target's figures in a frame. */
struct figures {
	uint64_t bytes;  /* of the image written */
	uint64_t vbytes; /* read back */
	uint64_t lag;    /* blocks behind the producer */
	double rate;     /* bytes per second, 0 when it has none */
	double pct;      /* -1 when unknown (a stream) */
	double eta;      /* seconds, -1 when unknown */
	bool verifying;  /* reading back: the figures are the read-back's */
};

/* Target i's figures dt seconds after the last frame, the producer at
 * sequence next; its counters and rates are kept in p for the next. */
static void figures_of(struct rc_progress *p, int i, double dt,
		       uint64_t next, struct figures *f)
{
	const struct rc_result *r = &p->res[i];
	uint64_t bytes = __atomic_load_n(&r->bytes_written, __ATOMIC_RELAXED);
	uint64_t vbytes = __atomic_load_n(&r->bytes_verified,
					  __ATOMIC_RELAXED);
	uint64_t blocks, at;

	f->verifying = r->phase == RC_PHASE_VERIFY &&
		       r->status == RC_RES_PENDING;
	if (bytes < p->prev[i])
		bytes = p->prev[i]; /* counters only grow */
	if (vbytes < p->vprev[i])
		vbytes = p->vprev[i];
	if (!p->prev_ns) {
		p->rate[i] = -1;
		p->vrate[i] = -1;
	} else if (dt > 0) {
		p->rate[i] = smooth(p->rate[i],
				    (double)(bytes - p->prev[i]) / dt, dt);
		/* The read-back's own rate, from its first frame. */
		p->vrate[i] = p->vprev[i] || vbytes
				      ? smooth(p->vrate[i],
					       (double)(vbytes - p->vprev[i]) / dt,
					       dt)
				      : -1;
	}
	p->prev[i] = bytes;
	p->vprev[i] = vbytes;
	f->bytes = bytes;
	f->vbytes = vbytes;
	blocks = bytes / p->ring->block_size;
	at = p->first[i] + blocks;
	f->lag = next > at ? next - at : 0;
	/* Only a copy still running has a rate and an ETA. */
	f->rate = r->phase == RC_PHASE_COPY && r->status == RC_RES_PENDING &&
			       p->rate[i] > 0
		       ? p->rate[i]
		       : 0;
	f->pct = p->stream ? -1
			   : 100.0 * (double)bytes / (double)p->ring->image_size;
	f->eta = f->rate > 0 && !p->stream
			 ? (double)(p->ring->image_size - bytes) / f->rate
			 : -1;
	/* Reading back: its percentage of the image, its rate, its
	 * ETA (what the image's bytes written no longer say). */
	if (f->verifying) {
		uint64_t image = __atomic_load_n(&r->image_bytes,
						 __ATOMIC_RELAXED);

		if (!image)
			image = p->ring->image_size;
		f->rate = p->vrate[i] > 0 ? p->vrate[i] : 0;
		f->pct = 100.0 * (double)vbytes / (double)(image ? image : 1);
		f->eta = f->rate > 0 && image >= vbytes
				 ? (double)(image - vbytes) / f->rate
				 : -1;
	}
}

/* Target i's line of JSON on stdout, now. */
static void json_line(const struct rc_progress *p, int i, uint64_t now,
		      const struct figures *f, uint64_t pass)
{
	const struct rc_result *r = &p->res[i];

	printf("{\"time\": %.3f, \"target\": ", (double)(now - p->t0) / 1e9);
	/* The name goes through rc_json_str at print time. */
	rc_json_str(stdout, p->specs[i]);
	printf(", \"state\": \"%s\", \"bytes_written\": %" PRIu64 ", \"bytes_skipped_equal\": %" PRIu64 ", \"bytes_verified\": %" PRIu64 ", \"image_bytes\": %" PRIu64 ", \"percent\": %.1f, \"rate\": %.0f, \"eta\": %.1f, \"pass\": %" PRIu64 ", \"lag_blocks\": %" PRIu64 "}\n",
	       phase_name(r), f->bytes,
	       __atomic_load_n(&r->skipped_bytes, __ATOMIC_RELAXED),
	       f->vbytes, p->ring->image_size, f->pct, f->rate, f->eta, pass,
	       f->lag);
}

/* Target i's line of text into buf: what snprintf returns. */
static int text_line(const struct rc_progress *p, int i,
		     const struct figures *f, uint64_t pass, char *buf,
		     size_t len)
{
	char b[32], rt[32], et[32], pc[16];

	human((double)(f->verifying ? f->vbytes : f->bytes), b, sizeof b);
	human(f->rate, rt, sizeof rt);
	eta_str(f->eta, et, sizeof et);
	if (f->pct < 0)
		snprintf(pc, sizeof pc, "%6s", "?");
	else
		snprintf(pc, sizeof pc, "%5.1f%%", f->pct);
	return snprintf(buf, len,
		"%s%-9s %s  %10s  %10s/s  ETA %-6s pass %" PRIu64 "  lag %" PRIu64 " block%s  %s%s",
		p->mode == RC_PROGRESS_TTY ? "\r\033[K" : "",
		phase_name(&p->res[i]), pc, b, rt, et, pass, f->lag,
		f->lag == 1 ? " " : "s",
		p->specs[i], "\n");
}

void rc_progress_tick(struct rc_progress *p, bool last)
{
	uint64_t now = rc_now_ns();
	double dt = p->prev_ns ? (double)(now - p->prev_ns) / 1e9 : 0;
	uint64_t every = p->mode == RC_PROGRESS_TTY    ? 250000000u
			 : p->mode == RC_PROGRESS_JSON ? 1000000000u
						       : 2000000000u;
	const struct rc_ring_hdr *h = p->ring->hdr;
	uint64_t next = __atomic_load_n(&h->next_seq, __ATOMIC_RELAXED);
	/* The pass of the block the producer reads now. */
	uint64_t pass = next ? (next - 1) / p->ring->nblocks + 1 : 1;
	char frame[8192];
	size_t used = 0;
	int i;

	if (p->mode == RC_PROGRESS_NONE)
		return;
	if (!last && p->prev_ns && now - p->prev_ns < every)
		return;
	if (p->mode == RC_PROGRESS_TTY && p->drawn)
		used += (size_t)snprintf(frame + used, sizeof frame - used,
					 "\033[%dA", p->drawn);
	for (i = 0; i < p->n && used < sizeof frame - 512; i++) {
		struct figures f;

		figures_of(p, i, dt, next, &f);
		if (p->mode == RC_PROGRESS_JSON)
			json_line(p, i, now, &f, pass);
		else
			used += (size_t)text_line(p, i, &f, pass, frame + used,
						  sizeof frame - used);
	}
	if (p->mode == RC_PROGRESS_JSON) {
		fflush(stdout);
	} else if (used) {
		ssize_t w = write(STDERR_FILENO, frame, used);

		(void)w;
		p->drawn = p->mode == RC_PROGRESS_TTY ? p->n : 0;
	}
	p->prev_ns = now;
}

void rc_progress_end(struct rc_progress *p)
{
	char frame[64];
	int len;

	/* Make room for the summary: erase the live lines. */
	if (p->mode != RC_PROGRESS_TTY || !p->drawn)
		return;
	len = snprintf(frame, sizeof frame, "\033[%dA\033[J", p->drawn);
	if (write(STDERR_FILENO, frame, (size_t)len) < 0)
		return;
	p->drawn = 0;
}
