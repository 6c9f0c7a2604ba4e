/* ringcopy - refusing unsafe targets, before anything is written.
 *
 * Every check here runs for every target before any target is created,
 * truncated or written (prepare() comes later), so a refusal loses nothing.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "ringcopy/core.h"
#include "ringcopy/describe.h"
#include "ringcopy/refuse.h"
#include "ringcopy/util.h"

/* The whole disk a block device belongs to (itself if it is one). */
static dev_t whole_disk(dev_t dev)
{
	char path[PATH_MAX + 32], real[PATH_MAX], buf[64];
	unsigned maj, min;
	FILE *f;

	snprintf(path, sizeof path, "/sys/dev/block/%u:%u", major(dev),
		 minor(dev));
	if (!realpath(path, real))
		return dev;
	snprintf(path, sizeof path, "%s/partition", real);
	if (access(path, F_OK) != 0)
		return dev;
	snprintf(path, sizeof path, "%s/../dev", real);
	f = fopen(path, "re");
	if (!f)
		return dev;
	if (!fgets(buf, sizeof buf, f) || sscanf(buf, "%u:%u", &maj, &min) != 2) {
		fclose(f);
		return dev;
	}
	fclose(f);
	return makedev(maj, min);
}

/* The file a loop device is backed by: 0 and its dev/ino, or -1. */
static int loop_backing(dev_t rdev, dev_t *bdev, ino_t *bino)
{
	char path[96], file[PATH_MAX];
	struct stat st;
	size_t n;
	FILE *f;

	snprintf(path, sizeof path, "/sys/dev/block/%u:%u/loop/backing_file",
		 major(rdev), minor(rdev));
	f = fopen(path, "re");
	if (!f)
		return -1; /* not a loop device, or not attached */
	if (!fgets(file, sizeof file, f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	n = strlen(file);
	if (n && file[n - 1] == '\n')
		file[--n] = '\0';
	if (stat(file, &st) < 0)
		return -1; /* deleted: it cannot be our source any more */
	*bdev = st.st_dev;
	*bino = st.st_ino;
	return 0;
}

static bool same_object(const struct stat *a, const struct stat *b)
{
	if (S_ISBLK(a->st_mode) && S_ISBLK(b->st_mode))
		return a->st_rdev == b->st_rdev;
	return !S_ISBLK(a->st_mode) && !S_ISBLK(b->st_mode) &&
	       a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}


/* How a file f and a block device b are related: b is a loop device over
 * f, or f is stored on b (or on another partition of its disk). */
enum { UNRELATED, LOOP_OVER_FILE, FILE_ON_DISK };

static int file_and_disk(const struct stat *f, const struct stat *b)
{
	dev_t d;
	ino_t i;

	if (loop_backing(b->st_rdev, &d, &i) == 0 && d == f->st_dev &&
	    i == f->st_ino)
		return LOOP_OVER_FILE;
	if (f->st_dev == b->st_rdev ||
	    whole_disk(f->st_dev) == whole_disk(b->st_rdev))
		return FILE_ON_DISK;
	return UNRELATED;
}
/* Why target t must not be written while reading source s, or NULL. */
static const char *related(const struct stat *s, const struct stat *t,
			   char *buf, size_t len)
{
	if (same_object(s, t))
		return "it is the source";
	if (S_ISBLK(s->st_mode) && S_ISBLK(t->st_mode)) {
		if (whole_disk(s->st_rdev) == whole_disk(t->st_rdev)) {
			snprintf(buf, len, "it is on the same disk as the source (%u:%u)",
				 major(whole_disk(s->st_rdev)),
				 minor(whole_disk(s->st_rdev)));
			return buf;
		}
	}
	if (S_ISBLK(t->st_mode) && !S_ISBLK(s->st_mode)) {
		switch (file_and_disk(s, t)) {
		case LOOP_OVER_FILE:
			return "it is a loop device backed by the source file";
		case FILE_ON_DISK:
			return "the source file is stored on this device";
		}
	}
	if (S_ISBLK(s->st_mode) && !S_ISBLK(t->st_mode)) {
		switch (file_and_disk(t, s)) {
		case LOOP_OVER_FILE:
			return "the source is a loop device backed by this file";
		case FILE_ON_DISK:
			return "it is a file on the source device";
		}
	}
	return NULL;
}

/* The absolute path a local path names: realpath of an existing one, or of
 * its directory plus its last component for a new one; *dir gets the
 * directory's stat.  0, or -errno (not a local path: a URI, say). */
static int resolve_path(const char *path, char *out, size_t len,
			struct stat *dir)
{
	char copy[PATH_MAX], real[PATH_MAX], *d, *b;

	if (!strcmp(path, "-"))
		return -EINVAL; /* standard input or output, not a file */
	if (realpath(path, real)) {
		char parent[PATH_MAX];

		rc_strlcpy(parent, real, sizeof parent);
		if (stat(dirname(parent), dir) < 0)
			return -errno;
		rc_strlcpy(out, real, len);
		return 0;
	}
	if (errno != ENOENT || strlen(path) >= sizeof copy)
		return -errno;
	rc_strlcpy(copy, path, sizeof copy);
	d = dirname(copy);
	if (!realpath(d, real) || stat(real, dir) < 0 || !S_ISDIR(dir->st_mode))
		return -ENOENT;
	rc_strlcpy(copy, path, sizeof copy);
	b = basename(copy);
	if ((size_t)snprintf(out, len, "%s/%s", strcmp(real, "/") ? real : "",
			     b) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* Would a new file in directory dir be written into the source device?
 * Its filesystem is the source device itself, or a partition of the disk
 * that the source is. */
static bool new_file_on_source(const struct stat *s, const struct stat *dir)
{
	return S_ISBLK(s->st_mode) &&
	       (dir->st_dev == s->st_rdev ||
		whole_disk(dir->st_dev) == s->st_rdev);
}

/* Resolve a symlink target that its owner may have planted: followed only
 * when the link belongs to us or to root.  *spec may be replaced by a new
 * string (prefix + resolved path). */
static int check_symlink(const char **spec, char **owned, char *err,
			 size_t errlen)
{
	const struct rc_backend *be;
	const char *path;
	char real[PATH_MAX];
	struct stat st;
	size_t plen;

	be = rc_backend_for(*spec, RC_OPEN_TARGET, &path);
	if (!be || lstat(path, &st) < 0 || !S_ISLNK(st.st_mode))
		return 0;
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		snprintf(err, errlen,
			 "target %s refused: a symlink owned by uid %u, another user: name the file itself",
			 *spec, (unsigned)st.st_uid);
		return -EPERM;
	}
	if (!realpath(path, real)) {
		if (errno != ENOENT) {
			snprintf(err, errlen, "target %s refused: %s", *spec,
				 strerror(errno));
			return -errno;
		}
		snprintf(err, errlen,
			 "target %s refused: a symlink to nothing: name the file itself",
			 *spec);
		return -ENOENT;
	}
	plen = (size_t)(path - *spec);
	*owned = malloc(plen + strlen(real) + 1);
	if (!*owned)
		return -ENOMEM;
	memcpy(*owned, *spec, plen);
	strcpy(*owned + plen, real);
	*spec = *owned;
	return 0;
}

static const char *open_hint(int rc)
{
	switch (rc) {
	case -EBUSY:
		return " (in use: mounted, or open by another program such as another ringcopy)";
	case -ELOOP:
		return " (a symlink: name the file itself)";
	case -EOPNOTSUPP:
		return " (this backend cannot be written)";
	case -EROFS:
		return " (read-only)";
	default:
		return "";
	}
}

/* --skip-equal: does the target begin with the image's block 0?  Then
 * the partition table or filesystem it holds is the image's own, written
 * by an earlier copy of it (block 0 is written last: an interrupted copy
 * that wrote it had written everything else).  Compared byte for byte. */
static bool holds_block0(const struct rc_target_req *req, struct rc_dev *t)
{
	size_t len = req->block0_len, rlen;
	struct rc_dev *rb = NULL;
	const char *how;
	void *buf;
	bool same;

	/* Read as a verification reads it: past the page cache. */
	if (!req->block0 || !len || t->size < len || !t->be->open_readback ||
	    t->be->open_readback(t, &rb, &how) < 0)
		return false;
	/* A disk is open O_DIRECT: whole sectors into an aligned buffer. */
	rlen = (len + RC_ALIGN - 1) / RC_ALIGN * RC_ALIGN;
	if (rlen > t->size)
		rlen = len;
	if (posix_memalign(&buf, RC_ALIGN, rlen)) {
		rc_dev_close(rb);
		return false;
	}
	same = rc_dev_pread(rb, buf, rlen, 0) >= (ssize_t)len &&
	       !memcmp(buf, req->block0, len);
	free(buf);
	rc_dev_close(rb);
	return same;
}

/* What rc_open_targets found of each target, for rc_refuse_outputs: where
 * a local path lands (resolved, new or not; "" for others), and its stat
 * when it exists. */
static struct {
	struct stat st[RC_TARGETS_MAX];
	bool have[RC_TARGETS_MAX];
	char where[RC_TARGETS_MAX][PATH_MAX];
	int n;
} seen;

int rc_open_targets(const struct rc_target_req *req, struct rc_dev **dst,
		    char **owned, char *err, size_t errlen)
{
	struct stat *st = seen.st, dir;
	bool *have = seen.have;
	char (*where)[PATH_MAX] = seen.where;
	char why[256], holds[160];
	int i, j, rc;

	seen.n = 0;
	for (i = 0; i < req->n; i++) {
		const char *spec = req->specs[i], *path;
		const struct rc_backend *be;
		bool nowhere;

		owned[i] = NULL;
		dst[i] = NULL;
		rc = check_symlink(&spec, &owned[i], err, errlen);
		if (rc < 0)
			return rc;
		be = rc_backend_for(spec, RC_OPEN_TARGET, &path);
		nowhere = be && (be->caps & RC_CAP_NOWHERE);
		have[i] = be && !nowhere && stat(path, &st[i]) == 0;
		/* Where a local path lands, new or not: one new file named
		 * two ways is one target, and a new file on the source's
		 * device is written into the source. */
		where[i][0] = '\0';
		if (be && !nowhere &&
		    resolve_path(path, where[i], sizeof where[i], &dir) == 0 &&
		    !have[i] && req->src_st) {
			if (new_file_on_source(req->src_st, &dir)) {
				snprintf(err, errlen,
					 "target %s refused: a new file there would be written into the source's device (source %s)",
					 req->specs[i], req->src_spec);
				return -EINVAL;
			}
		}
		seen.n = i + 1;
		/* A sink (null:) holds nothing: it may be named many times. */
		for (j = 0; j < i && !nowhere; j++) {
			if (strcmp(req->specs[i], req->specs[j]) == 0 ||
			    (where[i][0] && !strcmp(where[i], where[j])) ||
			    (have[i] && have[j] && same_object(&st[i], &st[j]))) {
				snprintf(err, errlen,
					 "target %s refused: the same target as %s",
					 req->specs[i], req->specs[j]);
				return -EINVAL;
			}
		}
		/* Another user's file in a sticky world-writable directory
		 * (/tmp): a planted FIFO or file, not a target of ours. */
		if (have[i] && where[i][0] && st[i].st_uid != geteuid() &&
		    (dir.st_mode & S_ISVTX) && (dir.st_mode & S_IWOTH)) {
			snprintf(err, errlen,
				 "target %s refused: owned by uid %u in a sticky world-writable directory, where anyone can plant a file: name a path of your own",
				 req->specs[i], (unsigned)st[i].st_uid);
			return -EPERM;
		}
		if (have[i] && req->src_st) {
			const char *r = related(req->src_st, &st[i], why,
						sizeof why);

			if (r) {
				snprintf(err, errlen,
					 "target %s refused: %s (source %s)",
					 req->specs[i], r, req->src_spec);
				return -EINVAL;
			}
		}
		if (have[i] && S_ISREG(st[i].st_mode) &&
		    !(st[i].st_mode & 0222)) {
			snprintf(err, errlen,
				 "target %s refused: read-only (mode %04o): make it writable to overwrite it",
				 req->specs[i], (unsigned)(st[i].st_mode & 07777));
			return -EROFS;
		}
		rc = rc_dev_open(spec, RC_OPEN_TARGET, &dst[i]);
		if (rc < 0) {
			snprintf(err, errlen, "target %s refused: %s%s",
				 req->specs[i],
				 rc_backend_detail[0] ? rc_backend_detail
						      : strerror(-rc),
				 rc_backend_detail[0] ? "" : open_hint(rc));
			return rc;
		}
		/* The source of a running copy: writing it would change an
		 * image other copies are reading. */
		if (dst[i]->fd >= 0 && have[i]) {
			struct rc_join_req jr;
			struct rc_peek pk;

			/* A file is read as itself, compressed as the
			 * image it decodes to, or streamed on someone's
			 * standard input: any of those rings counts. */
			static const uint32_t kinds[] = { 0, RC_SRC_DECODED,
							  RC_SRC_PIPE };
			size_t k;

			memset(&jr, 0, sizeof jr);
			for (k = 0; k < 3 &&
				    rc_source_identity(dst[i]->fd, &jr.id) == 0 &&
				    jr.id.kind != RC_SRC_PIPE;
			     k++) {
				if (kinds[k] && jr.id.kind != RC_SRC_FILE)
					break;
				if (kinds[k])
					jr.id.kind = kinds[k];
				if (rc_peek(&jr, &pk) == 0 && pk.live) {
					snprintf(err, errlen,
						 "target %s refused: it is the source of a running copy (producer pid %d)",
						 req->specs[i], pk.producer);
					return -EBUSY;
				}
			}
		}
		if (dst[i]->caps & (RC_CAP_BLOCKDEV | RC_CAP_FIXED)) {
			int ro = 0, probed;
			struct rc_describe d;

			if ((dst[i]->caps & RC_CAP_BLOCKDEV) &&
			    ioctl(dst[i]->fd, BLKROGET, &ro) == 0 && ro) {
				snprintf(err, errlen,
					 "target %s refused: the device is read-only",
					 req->specs[i]);
				return -EROFS;
			}
			if (dst[i]->size < req->image_size) {
				snprintf(err, errlen,
					 "target %s refused: it holds %" PRIu64 " bytes, the image has %" PRIu64,
					 req->specs[i], dst[i]->size,
					 req->image_size);
				return -ENOSPC;
			}
			/* A disk through libblkid on its own descriptor; an
			 * export through reads of its backend. */
			probed = dst[i]->caps & RC_CAP_BLOCKDEV
					 ? rc_describe_path(dst[i]->path,
							    dst[i]->size, &d)
					 : rc_describe_dev(dst[i], &d);
			if (probed == 0) {
				bool ours = rc_describe_in_use(&d) &&
					    !req->force &&
					    holds_block0(req, dst[i]);

				rc_describe_holds(&d, holds, sizeof holds);
				if (ours) {
					if (!req->dry_run)
						rc_msg("target %s holds %s: its block 0 is the image's (an earlier or interrupted copy of it): --skip-equal writes only what differs",
						       req->specs[i], holds);
					continue;
				}
				if (rc_describe_in_use(&d) && !req->force) {
					snprintf(err, errlen,
						 "target %s refused: it holds %s; give --force to overwrite it",
						 req->specs[i], holds);
					return -EEXIST;
				}
				if (!req->dry_run)
					rc_msg("target %s holds %s%s", req->specs[i],
					       holds,
					       rc_describe_in_use(&d) ? ": overwriting it (--force)" : "");
			}
		}
	}
	return 0;
}

/* Why an output path (what) must not be written, checked like a target:
 * NULL when it may. */
static const char *output_refused(const struct rc_target_req *req,
				  const char *path, const struct stat *lst,
				  bool exists, char *buf, size_t len)
{
	const char *r;

	if (!exists)
		return NULL;
	if (S_ISLNK(lst->st_mode))
		return "it is a symlink: name the file itself";
	if (!S_ISREG(lst->st_mode))
		return "it exists and is not a regular file (a device, a FIFO or a directory is never replaced)";
	if (req->src_st && (r = related(req->src_st, lst, buf, len)))
		return r;
	(void)path;
	return NULL;
}

int rc_refuse_outputs(const struct rc_target_req *req, const char *const *what,
		      const char *const *paths, int n, char *err,
		      size_t errlen)
{
	char where[2][PATH_MAX], twhere[PATH_MAX], why[256];
	struct stat lst, tst, dir;
	int i, k, j;

	for (i = 0; i < n && i < 2; i++) {
		bool exists;
		const char *r;

		if (!paths[i])
			continue;
		exists = lstat(paths[i], &lst) == 0;
		r = output_refused(req, paths[i], &lst, exists, why, sizeof why);
		if (!r && resolve_path(paths[i], where[i], sizeof where[i],
				       &dir) < 0)
			r = "its directory does not exist";
		if (!r && access(paths[i], F_OK) < 0 &&
		    access(dirname(strcpy(twhere, where[i])), W_OK | X_OK) < 0)
			r = "its directory is not writable";
		if (!r && !exists && req->src_st &&
		    new_file_on_source(req->src_st, &dir))
			r = "a new file there would be written into the source's device";
		for (k = 0; !r && k < i; k++)
			if (paths[k] && !strcmp(where[i], where[k]))
				r = "it is named for two outputs";
		/* Never a target, named any way (as rc_open_targets saw
		 * them). */
		for (j = 0; !r && j < req->n; j++) {
			if (!strcmp(req->specs[j], "-")) {
				/* Standard output may be the very file. */
				if (exists && fstat(STDOUT_FILENO, &tst) == 0 &&
				    same_object(&lst, &tst))
					r = "it is standard output, a target";
				continue;
			}
			if (j >= seen.n)
				continue;
			if ((exists && seen.have[j] &&
			     same_object(&lst, &seen.st[j])) ||
			    (seen.where[j][0] &&
			     !strcmp(seen.where[j], where[i]))) {
				snprintf(why, sizeof why, "it is the target %s",
					 req->specs[j]);
				r = why;
			}
		}
		if (r) {
			snprintf(err, errlen, "%s %s refused: %s (nothing was written)",
				 what[i], paths[i], r);
			return -EINVAL;
		}
	}
	return 0;
}
