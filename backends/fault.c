/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - fault backend: wraps another spec and injects failures.
 *
 *   fault:OPTIONS:SPEC      OPTIONS is a comma-separated list of
 *
 *   read-fail=N     the Nth read fails          (counting from 1)
 *   write-fail=N    the Nth write fails
 *   read-at=OFF     the read covering byte OFF fails
 *   write-at=OFF    the write covering byte OFF fails
 *   flush-fail      every flush (fsync) fails
 *   corrupt-at=OFF  the write covering byte OFF silently flips that byte
 *   short           reads and writes transfer at most half what is asked
 *   errno=NAME      the error injected: EIO (default), ENOSPC, EROFS, EPERM,
 *                   ENXIO, EINVAL
 *
 * For the test suite, and for users debugging how a setup behaves when a
 * disk fails.  A layer (nbdkit's filters): the core opens SPEC below it
 * (fault_stack); what it does not change goes to that device through the
 * rc_next_* forwarders.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

struct fault_dev {
	struct rc_dev dev; /* first; dev.inner is the wrapped device */
	uint64_t read_fail, write_fail; /* 0 = never */
	uint64_t read_at, write_at, corrupt_at; /* UINT64_MAX = never */
	uint64_t nreads, nwrites;
	bool flush_fail, short_io;
	int err;
};

static const struct {
	const char *name;
	int err;
} errnames[] = {
	{ "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EROFS", EROFS },
	{ "EPERM", EPERM }, { "ENXIO", ENXIO }, { "EINVAL", EINVAL },
};

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno || *end ? -EINVAL : 0;
}

static int parse_opts(struct fault_dev *f, char *opts)
{
	char *save = NULL, *o;

	for (o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		char *val = strchr(o, '=');
		size_t i;

		if (val)
			*val++ = '\0';
		if (!strcmp(o, "flush-fail") && !val)
			f->flush_fail = true;
		else if (!strcmp(o, "short") && !val)
			f->short_io = true;
		else if (!val)
			return -EINVAL;
		else if (!strcmp(o, "read-fail"))
			{ if (parse_u64(val, &f->read_fail)) return -EINVAL; }
		else if (!strcmp(o, "write-fail"))
			{ if (parse_u64(val, &f->write_fail)) return -EINVAL; }
		else if (!strcmp(o, "read-at"))
			{ if (parse_u64(val, &f->read_at)) return -EINVAL; }
		else if (!strcmp(o, "write-at"))
			{ if (parse_u64(val, &f->write_at)) return -EINVAL; }
		else if (!strcmp(o, "corrupt-at"))
			{ if (parse_u64(val, &f->corrupt_at)) return -EINVAL; }
		else if (!strcmp(o, "errno")) {
			for (i = 0; i < sizeof errnames / sizeof errnames[0]; i++)
				if (!strcmp(val, errnames[i].name))
					break;
			if (i == sizeof errnames / sizeof errnames[0])
				return -EINVAL;
			f->err = errnames[i].err;
		} else
			return -EINVAL;
	}
	return 0;
}

/* The options (path holds only them): the device below comes later. */
static int fault_open(const char *path, int mode, struct rc_dev **out,
		      char *why, size_t whylen)
{
	struct fault_dev *f = calloc(1, sizeof *f);
	char *opts = strdup(path);
	int rc;

	if (!f || !opts) {
		free(f);
		free(opts);
		return -ENOMEM;
	}
	f->read_at = f->write_at = f->corrupt_at = UINT64_MAX;
	f->err = EIO;
	rc = parse_opts(f, opts);
	free(opts);
	if (rc < 0) {
		free(f);
		return rc;
	}
	rc_dev_init(&f->dev, &rc_fault_backend, path, -1, 0);
	*out = &f->dev;
	return 0;
}

/* The wrapped device as it is: its descriptor, size and capabilities. */
static int fault_stack(struct rc_dev *dev, struct rc_dev *inner)
{
	dev->fd = inner->fd;
	dev->size = inner->size;
	dev->caps = inner->caps;
	return 0;
}

/* A fault-injecting source is a ring of its own: it neither joins nor is
 * joined by copies of the object it wraps (or another fault: source). */
static int fault_identity(struct rc_dev *dev, struct rc_source_id *id)
{
	struct timespec ts;

	(void)dev;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	memset(id, 0, sizeof *id);
	id->kind = RC_SRC_PIPE;
	id->id0 = (uint64_t)getpid();
	id->id1 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	return 0;
}

static bool covers(uint64_t at, size_t len, uint64_t off)
{
	return at != UINT64_MAX && at >= off && at - off < len;
}

static ssize_t fault_pread(struct rc_dev *dev, void *buf, size_t len,
			   uint64_t off)
{
	struct fault_dev *f = (struct fault_dev *)dev;

	f->nreads++;
	if (f->nreads == f->read_fail || covers(f->read_at, len, off))
		return -f->err;
	if (f->short_io && len > 1)
		len /= 2;
	return dev->inner->be->pread(dev->inner, buf, len, off);
}

static ssize_t fault_pwrite(struct rc_dev *dev, const void *buf, size_t len,
			    uint64_t off)
{
	struct fault_dev *f = (struct fault_dev *)dev;
	ssize_t rc;

	f->nwrites++;
	if (f->nwrites == f->write_fail || covers(f->write_at, len, off))
		return -f->err;
	if (f->short_io && len > 1)
		len /= 2;
	if (covers(f->corrupt_at, len, off)) {
		unsigned char *copy = malloc(len);

		if (!copy)
			return -ENOMEM;
		memcpy(copy, buf, len);
		copy[f->corrupt_at - off] ^= 0x01;
		rc = dev->inner->be->pwrite(dev->inner, copy, len, off);
		free(copy);
		return rc;
	}
	return dev->inner->be->pwrite(dev->inner, buf, len, off);
}

static int fault_zero(struct rc_dev *dev, uint64_t off, uint64_t len)
{
	struct fault_dev *f = (struct fault_dev *)dev;

	if (covers(f->write_at, len, off))
		return -f->err;
	return rc_dev_zero(dev->inner, off, len);
}

static int fault_flush(struct rc_dev *dev)
{
	struct fault_dev *f = (struct fault_dev *)dev;

	if (f->flush_fail)
		return -f->err;
	return rc_dev_flush(dev->inner);
}

static int fault_close(struct rc_dev *dev)
{
	int rc = rc_dev_close(dev->inner);

	free(dev);
	return rc;
}

const struct rc_backend rc_fault_backend = {
	.version = RC_BACKEND_VERSION,
	.name = "fault",
	.prefix = "fault:",
	.caps = RC_CAP_SEEKABLE | RC_CAP_SOURCE | RC_CAP_TARGET,
	.open = fault_open,
	.stack = fault_stack,
	/* Forwarded as they are: the read-back is the wrapped device as
	 * it really is (injected faults stop there). */
	.prepare = rc_next_prepare,
	.finish = rc_next_finish,
	.open_readback = rc_next_open_readback,
	/* Its own: the faults, and a ring of its own. */
	.pread = fault_pread,
	.pwrite = fault_pwrite,
	.zero = fault_zero,
	.flush = fault_flush,
	.close = fault_close,
	.identity = fault_identity,
	/* Not forwarded, on purpose: extents (a fault: source reads every
	 * block, holes too, so read-at= can hit one), describe_error (an
	 * injected error has no backend words) and prefetch (the reads the
	 * faults count are the ones asked for, none ahead). */
};
