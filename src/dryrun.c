/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - --dry-run: what the invocation would do, said on standard
 * output, with nothing created, written or registered. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringcopy/core.h"
#include "ringcopy/describe.h"
#include "ringcopy/invocation.h"
#include "ringcopy/util.h"

/* --dry-run: an existing --rescue map must open for writing, as the run
 * opens it (nothing is written: no O_CREAT, no O_TRUNC). */
int rc_dry_rescue_map(const char *map, char *err, size_t errlen)
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
int rc_dry_run(const struct rc_opts *o, const struct rc_join_req *req,
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
	if (src->size == RC_SIZE_UNKNOWN && o->size_mode != RC_SIZE_GIVEN)
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
		       o->start_mode == RC_START_RANDOM ? " (--start-at random: a run picks again)" : "");
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
	/* Cheap: said, not scanned (the scan reads every target). */
	if (o->expect && o->skip_equal && image && pk.live)
		printf("would compare each target that can be read with the manifest first, and take from the running copy what it lacks (its producer skips reads only if it was started with --expect)\n");
	else if (o->expect && o->skip_equal && image)
		printf("would compare each target that can be read with the manifest first, and read from the source only the blocks some target lacks (a source read at any offset)\n");
	printf("dry run: nothing was written or registered\n");
	return RC_EXIT_OK;
}

