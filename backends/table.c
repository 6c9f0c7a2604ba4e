/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the table of backends, and opening a spec through it.
 *
 * One ordered static array (the libblkid habit): an explicit prefix picks a
 * backend; otherwise each backend's probe scores the spec and the highest
 * score wins, earlier entries winning ties.  This file is the only one
 * that names the backends: they call back only into backends/dev.c, so
 * the object call graph has no cycle.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const struct rc_backend *const backends[] = {
	&rc_null_backend,
	&rc_fault_backend,
	&rc_stdio_backend,
	&rc_nbd_backend,
	&rc_zstd_backend,
	&rc_blockdev_backend,
	&rc_file_backend,
	NULL,
};

const struct rc_backend *const *rc_backends(void)
{
	return backends;
}

int rc_backend_check(const struct rc_backend *be)
{
	if (!be || be->version != RC_BACKEND_VERSION || !be->name ||
	    !be->open || !be->close)
		return -EINVAL;
	/* A backend that decodes may open its sources as the decode layer's
	 * devices (zstd:), whose pread reads them. */
	if ((be->caps & RC_CAP_SOURCE) && !be->pread &&
	    !(be->caps & RC_CAP_DECODES))
		return -EINVAL;
	if ((be->caps & RC_CAP_TARGET) && (!be->pwrite || !be->flush))
		return -EINVAL;
	if (!be->write_submit != !be->write_reap ||
	    (be->write_submit && !be->max_in_flight))
		return -EINVAL;
	/* A layer is named by its prefix, never probed. */
	if (be->stack && (!be->prefix || be->probe))
		return -EINVAL;
	return 0;
}

int rc_backend_config(const char *key, const char *value)
{
	int rc = -ENOENT;
	size_t i;

	for (i = 0; backends[i]; i++) {
		int r;

		if (rc_backend_check(backends[i]) < 0 || !backends[i]->config)
			continue;
		r = backends[i]->config(key, value);
		if (r != -ENOENT && rc != -EINVAL)
			rc = r;
	}
	return rc;
}

const struct rc_backend *rc_backend_for(const char *spec, int mode,
					 const char **path)
{
	const struct rc_backend *best = NULL;
	int best_score = 0;
	size_t i;

	for (i = 0; backends[i]; i++) {
		const struct rc_backend *be = backends[i];
		size_t n;

		if (rc_backend_check(be) < 0)
			continue;
		if (!be->prefix)
			continue;
		n = strlen(be->prefix);
		if (strncmp(spec, be->prefix, n) == 0) {
			*path = spec + n;
			return be;
		}
	}
	for (i = 0; backends[i]; i++) {
		const struct rc_backend *be = backends[i];
		int score;

		if (rc_backend_check(be) < 0 || !be->probe)
			continue;
		score = be->probe(spec, mode);
		if (score > best_score) {
			best = be;
			best_score = score;
		}
	}
	*path = spec;
	return best;
}

/* A layer's spec, OPTIONS:SPEC (path): the layer opened with its options,
 * then the device below it, then the two stacked. */
static int open_layer(const struct rc_backend *be, const char *path,
		      int mode, struct rc_dev **out, char *why, size_t whylen)
{
	const char *colon = strchr(path, ':');
	struct rc_dev *dev = NULL, *inner = NULL;
	char *opts;
	int rc;

	if (!colon || colon == path || !colon[1])
		return -EINVAL;
	opts = strndup(path, (size_t)(colon - path));
	if (!opts)
		return -ENOMEM;
	rc = be->open(opts, mode, &dev, why, whylen);
	free(opts);
	if (rc < 0)
		return rc;
	dev->path = path; /* the whole spec below the prefix, as before */
	rc = rc_dev_open(colon + 1, mode, &inner, why, whylen);
	if (rc == 0) {
		dev->inner = inner;
		rc = be->stack(dev, inner);
	}
	if (rc < 0) {
		rc_dev_close(dev); /* and inner, which it owns */
		return rc;
	}
	*out = dev;
	return 0;
}

int rc_dev_open(const char *spec, int mode, struct rc_dev **out, char *why,
		size_t whylen)
{
	const struct rc_backend *be;
	const char *path;
	struct rc_dev *dev = NULL;
	char scratch[256], *copy;
	int rc;

	if (!why || !whylen) {
		why = scratch;
		whylen = sizeof scratch;
	}
	why[0] = '\0';
	*out = NULL;
	be = rc_backend_for(spec, mode, &path);
	if (!be)
		return -ENOENT;
	if (!(be->caps & (mode == RC_OPEN_SOURCE ? RC_CAP_SOURCE
						 : RC_CAP_TARGET)))
		return -EOPNOTSUPP;
	copy = strdup(spec);
	if (!copy)
		return -ENOMEM;
	/* path points into the caller's spec: repoint it into our copy. */
	if (be->stack)
		rc = open_layer(be, copy + (path - spec), mode, &dev, why,
				whylen);
	else
		rc = be->open(copy + (path - spec), mode, &dev, why, whylen);
	if (rc < 0) {
		free(copy);
		return rc;
	}
	dev->spec = copy;
	*out = dev;
	return 0;
}

int rc_source_open(const char *spec, bool raw, struct rc_dev **out,
		   const char **format, char *why, size_t whylen)
{
	const char *path;
	char scratch[256];
	int rc = rc_dev_open(spec, RC_OPEN_SOURCE, out, why, whylen);

	*format = NULL;
	/* A compressed image is read decompressed, whatever carries it,
	 * unless raw or an explicit prefix (file:x.xz) asks for its bytes;
	 * a disk is an image as it is; what is decoded already is not
	 * decoded again. */
	if (rc < 0 || raw ||
	    ((*out)->caps & (RC_CAP_BLOCKDEV | RC_CAP_DECODES)) ||
	    !rc_backend_for(spec, RC_OPEN_SOURCE, &path) || path != spec)
		return rc;
	if (!why || !whylen) {
		why = scratch;
		whylen = sizeof scratch;
	}
	rc = rc_decode_wrap(out, format, why, whylen);
	if (rc < 0) {
		rc_dev_close(*out);
		*out = NULL;
	}
	return rc;
}
