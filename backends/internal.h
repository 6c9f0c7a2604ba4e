/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - what the backends share among themselves and with the table
 * (backends/table.c), and the core never sees: the backends by name, the
 * helpers that build a device, and the forwarders of a layer.
 */
#ifndef RINGCOPY_BACKENDS_INTERNAL_H
#define RINGCOPY_BACKENDS_INTERNAL_H

#include "ringcopy/backend.h"

/* The table's entries (backends/table.c lists them in order). */
extern const struct rc_backend rc_file_backend;
extern const struct rc_backend rc_null_backend;
extern const struct rc_backend rc_fault_backend;
extern const struct rc_backend rc_blockdev_backend;
extern const struct rc_backend rc_zstd_backend;
extern const struct rc_backend rc_stdio_backend;
extern const struct rc_backend rc_nbd_backend;

/* Put the decode layer over an open source whose first bytes are an xz,
 * gzip, bzip2, lz4 or zstd stream (*format names it), or a pass-through
 * over one that cannot be read twice (its first bytes were read to look);
 * otherwise *srcp is left as it was (*format NULL).  The layer owns the
 * source from then on.  0, or -errno from reading the source. */
int rc_decode_wrap(struct rc_dev **srcp, const char **format, char *why,
		   size_t whylen);
/* The decode layer over src read as zstd whatever its first bytes (named
 * zstd: a `zstd:' source, a zstd target's read-back): its size from its
 * frames when they say it; its identity its decoded image even when they
 * do not (--size must then give it).  0, or -errno with why said; the
 * caller still owns src on failure. */
int rc_decode_zstd(struct rc_dev **srcp, char *why, size_t whylen);

/* Fill a new device of be (backends/dev.c). */
int rc_dev_init(struct rc_dev *dev, const struct rc_backend *be,
		const char *path, int fd, uint64_t size);
/* Make a new file's name durable: fsync the directory that holds path
 * (what a created target's flush does once, so that a target reported ok
 * survives a crash by name as well as by content). */
int rc_fsync_parent(const char *path);
/* describe_error() of a backend that keeps its last error as a string:
 * copies err into buf, or -ENOENT when it is empty. */
int rc_describe_from(const char *err, char *buf, size_t len);
/* A config() value that is a whole number from lo to hi; -EINVAL if not. */
int rc_config_count(const char *value, unsigned long lo, unsigned long hi,
		    unsigned long *out);

/* A layer's ops for what it does not change (nbdkit's next_ops): each
 * passes the call to dev->inner, through the core's wrapper.  A layer
 * names them in its vtable, so what it forwards is read in one place. */
int rc_next_prepare(struct rc_dev *dev, uint64_t size);
int rc_next_finish(struct rc_dev *dev, uint64_t size);
int rc_next_open_readback(struct rc_dev *dev, struct rc_dev **out,
			  const char **how);

#endif
