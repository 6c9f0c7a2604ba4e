/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - null backend: a target that discards what it is given.
 *
 * For benchmarks of the ring itself and for dry plumbing tests: `null:' as
 * a target accepts any image size and writes nothing.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

static int null_open(const char *path, int mode, struct rc_dev **out,
		     char *why, size_t whylen)
{
	struct rc_dev *dev;

	if (mode != RC_OPEN_TARGET)
		return -EOPNOTSUPP;
	dev = calloc(1, sizeof *dev);
	if (!dev)
		return -ENOMEM;
	rc_dev_init(dev, &rc_null_backend, path, -1, UINT64_MAX);
	*out = dev;
	return 0;
}

static ssize_t null_pwrite(struct rc_dev *dev, const void *buf, size_t len,
			   uint64_t off)
{
	return (ssize_t)len;
}

static int null_zero(struct rc_dev *dev, uint64_t off, uint64_t len)
{
	return 0;
}

static int null_flush(struct rc_dev *dev)
{
	return 0;
}

static int null_close(struct rc_dev *dev)
{
	free(dev);
	return 0;
}

const struct rc_backend rc_null_backend = {
	.version = RC_BACKEND_VERSION,
	.name = "null",
	.prefix = "null:",
	.caps = RC_CAP_SEEKABLE | RC_CAP_ZERO | RC_CAP_TARGET | RC_CAP_NOWHERE,
	.open = null_open,
	.pwrite = null_pwrite,
	.zero = null_zero,
	.flush = null_flush,
	.close = null_close,
};
