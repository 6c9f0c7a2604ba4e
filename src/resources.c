/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the invocation's refusals of its own: how a step stops with
 * one, and what the invocation asks of the machine, checked before
 * anything is written (open files and the memory for its ring); and
 * whether the source holds holes (a longer ring then costs nothing). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>

#include "ringcopy/core.h"
#include "ringcopy/invocation.h"
#include "ringcopy/report.h"
#include "ringcopy/util.h"

/* Does the image hold a hole?  Then the default ring is larger: hole slots
 * carry no data, so a longer ring lets the producer run through the holes
 * to the next data while the consumers write, at no cost in cache. */
bool rc_source_has_holes(struct rc_dev *src, uint64_t image)
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
int rc_check_resources(int n, const struct rc_join_req *req, char *err,
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

/* Stop with a refusal: nothing was written. */
int rc_inv_refuse(struct invocation *inv)
{
	if (inv->run->capture)
		rc_strlcpy(inv->run->error, inv->err, sizeof inv->run->error);
	else
		rc_err("%s", inv->err);
	inv->status = RC_EXIT_REFUSED;
	return END;
}
