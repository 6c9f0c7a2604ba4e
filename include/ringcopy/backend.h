/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - backend interface.
 *
 * A backend is one `const struct rc_backend' with designated initialisers,
 * listed in the static array of backends/table.c.  This header is the
 * only contract between the core and the backends: fields are only ever
 * appended, and `version' is checked when the registry is loaded, so a
 * backend built against an older layout is refused rather than misread.
 *
 * Functions return 0 (or a count) on success and -errno on failure.  The
 * core validates every range once, in the rc_dev_* wrappers, so backends
 * never re-check their arguments.
 */
#ifndef RINGCOPY_BACKEND_H
#define RINGCOPY_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RC_BACKEND_VERSION 5

/* Capability bits of a backend (and of an open device). */
#define RC_CAP_SEEKABLE   (1u << 0) /* pread/pwrite at any offset */
#define RC_CAP_SEQUENTIAL (1u << 1) /* offsets must only grow */
#define RC_CAP_SPARSE     (1u << 2) /* extents() reports holes */
#define RC_CAP_ZERO       (1u << 3) /* zero() is cheaper than writing */
#define RC_CAP_DIRECT     (1u << 4) /* opened O_DIRECT: aligned I/O only,
				     * and reads come from the storage, not
				     * the page cache (a read-back that may
				     * run while the target is written) */
#define RC_CAP_BLOCKDEV   (1u << 5) /* fd and path name a kernel block
				     * device: its ioctls (BLKROGET,
				     * BLKGETSIZE64) and libblkid apply, and
				     * what it holds may be smaller than it
				     * (file: and dev: both set it) */
#define RC_CAP_SOURCE     (1u << 6) /* may be opened as a source */
#define RC_CAP_TARGET     (1u << 7) /* may be opened as a target */
#define RC_CAP_FIXED      (1u << 8) /* its size is fixed (a disk, an
				     * export): it must hold the image, and
				     * what it holds is probed */
#define RC_CAP_DECODES    (1u << 10) /* what pread() returns is already
				     * decoded out of what the object holds
				     * (zstd, the decode layer): never
				     * decoded again, and its bytes are not
				     * the object's (no reading it as a
				     * seed) */
#define RC_CAP_NOWHERE    (1u << 9) /* writes to nothing (null:): no path,
				     * no identity, nothing to read back;
				     * may be named any number of times */

/* Source identity kinds: copies of sources with the same identity meet in
 * one ring (the rendezvous file is named from it). */
enum rc_src_kind {
	RC_SRC_FILE = 1,    /* id0 = st_dev, id1 = st_ino */
	RC_SRC_BLOCK = 2,   /* id0 = st_rdev, id1 = 0 */
	RC_SRC_PIPE = 3,    /* read once: a second copy is refused */
	RC_SRC_URI = 4,     /* id0, id1 = XXH3-128 of the URI (NBD) */
	RC_SRC_DECODED = 5, /* a compressed file's image, by st_dev and
			     * st_ino: never the ring of its raw bytes */
};

struct rc_source_id {
	uint32_t kind; /* enum rc_src_kind */
	uint64_t id0, id1;
};

/* How a device is opened. */
enum rc_open_mode {
	RC_OPEN_SOURCE = 0, /* read only */
	RC_OPEN_TARGET = 1, /* write; created if the backend can */
};

struct rc_backend;

/* An open source or target.  Each backend embeds this as the first member
 * of its private struct (the nbdcopy `struct rw' habit). */
struct rc_dev {
	const struct rc_backend *be; /* the backend that opened it */
	char *spec;                  /* the spec as given, for messages */
	const char *path;            /* spec without its prefix */
	uint64_t size;               /* bytes; UINT64_MAX for unbounded sinks */
	unsigned caps;               /* RC_CAP_* of this very device */
	int fd;                      /* descriptor, or -1 */
	uint32_t sector;             /* smallest I/O unit (512 by default) */
	unsigned flags;              /* RC_DEV_*, set by the core */
	const char *unknown_size;    /* why its size may be unknown (the
				      * backend's unknown_size, or a layer's
				      * own words) */
	struct rc_dev *inner;        /* a layer's device below it (nbdkit's
				      * next): what the layer does not
				      * change it forwards there; NULL for
				      * a backend's own device */
};

/* Set on a target before prepare(): keep what it holds (--skip-equal reads
 * each block and writes only those that differ), so prepare() sizes a
 * file to the image without emptying it first. */
#define RC_DEV_KEEP (1u << 0)

struct rc_backend {
	/* RC_BACKEND_VERSION the backend was built against. */
	uint32_t version;
	/* Short name, used in messages and `status'. */
	const char *name;
	/* Explicit spec prefix including the colon ("file:"), or NULL. */
	const char *prefix;
	/* RC_CAP_* the backend can offer. */
	unsigned caps;
	/* Score how well the backend fits a spec without a prefix: 0 means
	 * not at all, higher wins.  May be NULL (prefix only). */
	int (*probe)(const char *path, int mode);
	/* Open path (prefix stripped) in mode; on success *out holds a new
	 * device whose size is known.  A target is not truncated here.  On
	 * failure the backend may put its own words into why[0..whylen)
	 * (always a buffer; "" when it has none to add).  A layer (stack
	 * set) gets only its options here. */
	int (*open)(const char *path, int mode, struct rc_dev **out,
		    char *why, size_t whylen);
	/* Prepare a target to receive an image of `size' bytes (create or
	 * truncate a file), or of a size known only at its end
	 * (RC_SIZE_UNKNOWN: a stream; the core cuts a regular file to the
	 * stream's size when it ends).  Called once, after every refusal
	 * check.  May be NULL. */
	int (*prepare)(struct rc_dev *dev, uint64_t size);
	/* Read exactly len bytes at off; short only at end of data. */
	ssize_t (*pread)(struct rc_dev *dev, void *buf, size_t len,
			 uint64_t off);
	/* Write exactly len bytes at off, or fail. */
	ssize_t (*pwrite)(struct rc_dev *dev, const void *buf, size_t len,
			  uint64_t off);
	/* Make [off, off+len) read as zeros.  NULL: the core writes zeros. */
	int (*zero)(struct rc_dev *dev, uint64_t off, uint64_t len);
	/* Report the data extent at or after off in data_off and data_len;
	 * data_len is 0 when only a hole follows.  NULL: all data. */
	int (*extents)(struct rc_dev *dev, uint64_t off, uint64_t *data_off,
		       uint64_t *data_len);
	/* Make every write so far durable.  An error is final. */
	int (*flush)(struct rc_dev *dev);
	/* Release the device; returns the first deferred error, if any. */
	int (*close)(struct rc_dev *dev);
	/* Open a new read-only device on the same object that reads past the
	 * page cache (O_DIRECT, else POSIX_FADV_DONTNEED), for verification;
	 * *how names the method.  Must refuse an object that is not the one
	 * dev has open.  NULL: cannot be read back. */
	int (*open_readback)(struct rc_dev *dev, struct rc_dev **out,
			     const char **how);
	/* Describe the last error in the backend's own terms (a codec's
	 * offsets and error name) into buf; -ENOENT when it has nothing to
	 * add.  May be NULL. */
	int (*describe_error)(struct rc_dev *dev, char *buf, size_t len);
	/* Asynchronous writes, for a backend that keeps requests in flight
	 * across blocks (a network server): both NULL, or both set.
	 * write_submit() starts writing len bytes from buf at off; buf stays
	 * valid and unchanged until write_reap() has counted the write as
	 * finished.  write_reap() drives the I/O until at most `keep'
	 * submitted writes are unfinished, and returns how many finished,
	 * oldest first, since its last call; or -errno when the oldest
	 * unfinished write failed, which is final (describe_error() has the
	 * server's words).  write_reap(dev, 0) before flush(). */
	int (*write_submit)(struct rc_dev *dev, const void *buf, size_t len,
			    uint64_t off);
	int (*write_reap)(struct rc_dev *dev, unsigned keep);
	/* Version 3: how many writes write_submit() can keep in flight at
	 * most (set by every backend that has the pair): the core keeps no
	 * more than that, whatever the ring's size. */
	unsigned max_in_flight;
	/* Version 4: the identity of an open source, which decides the ring
	 * it meets other copies in.  NULL: the object its descriptor names
	 * (rc_source_identity()). */
	int (*identity)(struct rc_dev *dev, struct rc_source_id *id);
	/* Version 4: why open() may leave a source's size RC_SIZE_UNKNOWN,
	 * said when --size is then required.  NULL: it never does. */
	const char *unknown_size;
	/* Version 5 (issue 26).  An option of the invocation that this
	 * backend owns (nbdkit's .config): 0 when taken, -ENOENT when the
	 * key is not this backend's, -EINVAL when the value is not valid.
	 * Called for every backend by rc_backend_config().  May be NULL. */
	int (*config)(const char *key, const char *value);
	/* Version 5: a layer over another device (nbdkit's filters): its
	 * spec is PREFIX OPTIONS:SPEC.  The core opens the layer with
	 * OPTIONS (open()), then SPEC, and hands that device here as inner
	 * (stored in dev->inner; the layer takes what it needs of it: fd,
	 * size, caps).  The layer owns inner from then on.  NULL: not a
	 * layer. */
	int (*stack)(struct rc_dev *dev, struct rc_dev *inner);
	/* Version 5: a stream has ended and the image is `size' bytes: a
	 * target that grew as it was written is cut to it (nbdcopy's
	 * truncate).  Called once, after the last write, before flush().
	 * NULL: nothing to do (a disk, a pipe, a compressed file). */
	int (*finish)(struct rc_dev *dev, uint64_t size);
	/* Version 5: advice, before a read at off, that [off, off+len) will
	 * be read in order (nbdkit's .cache): a backend that reads ahead may
	 * ask for that much and no more.  len 0: read nothing ahead.  Never
	 * called in a read-back, nor before the producer forks.  NULL: it
	 * never reads ahead. */
	void (*prefetch)(struct rc_dev *dev, uint64_t off, uint64_t len);
};

/* The unknown size of a source that does not say (a pipe, a .zst made
 * with --no-content-size): --size must give it. */
#define RC_SIZE_UNKNOWN UINT64_MAX

/* The table of backends (backends/table.c). */
const struct rc_backend *const *rc_backends(void);
int rc_backend_check(const struct rc_backend *be);
const struct rc_backend *rc_backend_for(const char *spec, int mode,
					 const char **path);
/* Hand an option of the invocation (its long name without dashes, and its
 * value as given) to every backend: 0 when one took it, -ENOENT when none
 * owns it, -EINVAL when its owner refused the value. */
int rc_backend_config(const char *key, const char *value);
/* Open spec in mode.  why (may be NULL) receives the backend's detail of
 * a failure ("" when it has none): the caller reports it with its own
 * message. */
int rc_dev_open(const char *spec, int mode, struct rc_dev **out, char *why,
		size_t whylen);
/* Open spec as a source the way a copy reads it: through its backend,
 * then decompressed when its content is compressed (the decode layer),
 * unless raw, an explicit prefix, a disk or a device that decodes.
 * *format names the compression, or NULL; why as for rc_dev_open. */
int rc_source_open(const char *spec, bool raw, struct rc_dev **out,
		   const char **format, char *why, size_t whylen);

/* Range-checked wrappers used by the core (backends/dev.c). */
ssize_t rc_dev_pread(struct rc_dev *dev, void *buf, size_t len, uint64_t off);
ssize_t rc_dev_pwrite(struct rc_dev *dev, const void *buf, size_t len,
		      uint64_t off);
int rc_dev_zero(struct rc_dev *dev, uint64_t off, uint64_t len);
/* Write len zero bytes at off (what zero() falls back to). */
int rc_dev_write_zeros(struct rc_dev *dev, uint64_t off, uint64_t len);

/* A cache of the last hole and data extent seen, so that a sequential
 * reader asks the backend once per extent, not once per block. */
struct rc_holes {
	uint64_t hole_start, hole_end; /* [start, end) is a hole */
	uint64_t data_start, data_end; /* [start, end) holds data */
	int off;                       /* extents() failed: all data */
};
void rc_holes_init(struct rc_holes *c);
/* 1 when [off, off+len) is entirely a hole of dev, else 0. */
int rc_is_hole(struct rc_dev *dev, struct rc_holes *c, uint64_t off,
	       uint64_t len);
int rc_dev_flush(struct rc_dev *dev);
/* A stream ended at size bytes (the backend's finish(), if any). */
int rc_dev_finish(struct rc_dev *dev, uint64_t size);
/* Advice that [off, off+len) will be read in order (prefetch()). */
void rc_dev_prefetch(struct rc_dev *dev, uint64_t off, uint64_t len);
int rc_dev_close(struct rc_dev *dev);
/* The backend's own words for its last error (a server's answer, a
 * codec's offsets) into buf, else fallback. */
void rc_dev_describe(struct rc_dev *dev, const char *fallback, char *buf,
		     size_t len);

/* The identity of a descriptor's object: a regular file by device and
 * inode, a disk by device number, anything else read once. */
int rc_source_identity(int fd, struct rc_source_id *id);
/* The identity of an open source, through its backend. */
int rc_dev_identity(struct rc_dev *dev, struct rc_source_id *id);

#endif
