/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the end of an invocation: a line per target, the JSON
 * summary, and the exit status rules.
 *
 * A target is reported one of three ways: "ok" (complete; "verified" when
 * it was read back and matched, "not verified" with the reason when it
 * was not: --no-verify, or a target that cannot be read back such as
 * null: and standard output), "MISMATCH" (complete but read back
 * differently), "rescued" (complete and verified, but holding --rescue
 * markers where the source could not be read) or "FAILED" (with the
 * error).  Exit 0 therefore means
 * every target is complete and every target that can be read back was
 * verified, unless --no-verify was given.
 */
#include "config.h"

#include <stdio.h>

#include "ringcopy/report.h"
#include "ringcopy/util.h"

static const char *status_word(const struct rc_result *r)
{
	switch (r->status) {
	case RC_RES_OK:
		return "ok";
	case RC_RES_MISMATCH:
		return "mismatch";
	case RC_RES_RESCUED:
		return "rescued";
	default:
		return "failed";
	}
}

/* How an ok target stands with respect to verification, in words. */
static const char *verified_words(const struct rc_result *r)
{
	if (r->verified)
		return "verified";
	if (r->unverifiable)
		return "written, cannot be read back: not verified; digest as copied";
	return "not verified (--no-verify); digest as copied";
}

static void report_text(const struct rc_report *rp)
{
	int i, rescued = 0;

	for (i = 0; i < rp->n; i++) {
		const struct rc_result *r = &rp->res[i];
		double s = (double)r->ns / 1e9;

		rescued += r->status == RC_RES_RESCUED;
		double mbs = s > 0 ? (double)r->bytes_written / 1e6 / s : 0;

		if (rc_quiet && r->status == RC_RES_OK)
			continue; /* -q: failures only */
		fprintf(stderr, "%-8s %s  %llu bytes  start block %llu  %.2f s  %.1f MB/s",
			r->status == RC_RES_OK ? "ok" :
			r->status == RC_RES_MISMATCH ? "MISMATCH" :
			r->status == RC_RES_RESCUED ? "rescued" : "FAILED",
			rp->specs[i],
			(unsigned long long)(r->bytes_written - r->skipped_bytes),
			(unsigned long long)r->start_block, s, mbs);
		if (r->skipped_bytes)
			fprintf(stderr, "  %llu bytes equal, not written",
				(unsigned long long)r->skipped_bytes);
		if (r->status == RC_RES_OK)
			fprintf(stderr, "  %s %s\n", verified_words(r),
				r->digest[0] ? r->digest : "-");
		else if (r->status == RC_RES_RESCUED)
			fprintf(stderr, "  %s %s  %s\n", verified_words(r),
				r->digest[0] ? r->digest : "-", r->error);
		else
			fprintf(stderr, "  %s\n", r->error);
	}
	if (rescued)
		fprintf(stderr, "%d of %d target%s rescued: complete, but holding the marker where the source could not be read\n",
			rescued, rp->n, rp->n == 1 ? "" : "s");
}

void rc_report_target_json(FILE *f, const char *spec,
			   const struct rc_result *r, const char *status)
{
	fprintf(f, "\"target\": ");
	rc_json_str(f, spec);
	fprintf(f, ", \"status\": \"%s\", \"start_block\": %llu, \"bytes_written\": %llu, \"seconds\": %.3f, \"verified\": %s, \"verifiable\": %s, \"verify_method\": ",
		status ? status : status_word(r),
		(unsigned long long)r->start_block,
		(unsigned long long)(r->bytes_written - r->skipped_bytes),
		(double)r->ns / 1e9, r->verified ? "true" : "false",
		r->unverifiable ? "false" : "true");
	rc_json_str(f, r->how[0] ? r->how : NULL);
	fprintf(f, ", \"bytes_read_back_during_copy\": %llu",
		(unsigned long long)r->behind_bytes);
	fprintf(f, ", \"bytes_skipped_equal\": %llu",
		(unsigned long long)r->skipped_bytes);
	fprintf(f, ", \"bytes_verified\": %llu",
		(unsigned long long)r->bytes_verified);
	fprintf(f, ", \"digest\": ");
	rc_json_str(f, r->digest[0] ? r->digest : NULL);
	fprintf(f, ", \"error\": ");
	rc_json_str(f, r->status == RC_RES_OK ? NULL : r->error);
}

static void report_json(const struct rc_report *rp)
{
	int i, rescued = 0;

	for (i = 0; i < rp->n; i++)
		rescued += rp->res[i].status == RC_RES_RESCUED;
	printf("{\"image_bytes\": %llu, \"block_size\": %u, \"source_bytes_read\": %llu, \"source_bytes_before_join\": %llu, \"targets_rescued\": %d, \"targets\": [",
	       (unsigned long long)rp->image_size, rp->block_size,
	       (unsigned long long)rp->bytes_read,
	       (unsigned long long)rp->read_before, rescued);
	for (i = 0; i < rp->n; i++) {
		printf("%s{", i ? ", " : "");
		rc_report_target_json(stdout, rp->specs[i], &rp->res[i], NULL);
		putchar('}');
	}
	printf("]}\n");
	fflush(stdout);
}

void rc_report(const struct rc_report *rp)
{
	report_text(rp);
	if (rp->json)
		report_json(rp);
}

int rc_exit_status(int status, const struct rc_result *res, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (res[i].status == RC_RES_MISMATCH)
			status = RC_EXIT_MISMATCH;
		else if (res[i].status != RC_RES_OK &&
			 status != RC_EXIT_MISMATCH)
			status = RC_EXIT_FAILED;
	}
	return status;
}
