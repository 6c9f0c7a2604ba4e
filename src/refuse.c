/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - refusing unsafe targets, before anything is written.
 *
 * Every check here runs for every target before any target is created,
 * truncated or written (prepare() comes later), so a refusal loses nothing.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/loop.h>
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

/* --- the same storage ---------------------------------------------- *
 *
 * One disk has many names: two loop devices over one file, a loop device
 * over another, the file under them.  A stack is what an object's bytes
 * are, down through loop devices: [0] the object itself (a regular file,
 * or the whole disk a block device belongs to), each next layer the file
 * or disk the loop device above it reads and writes.  Two objects are the
 * same storage when their stacks share a layer; every rule (the source,
 * another target, a mounted or held disk, a running copy's source, an
 * output) asks that one question.
 */
#define LAYERS_MAX 8

struct layer {
	bool disk;       /* a whole disk (dev), else a regular file */
	dev_t dev;       /* file: st_dev; disk: its number */
	dev_t part;      /* disk: the partition named, at the top; else dev */
	ino_t ino;       /* file: st_ino */
	char name[256];  /* for messages: a path, or major:minor */
};

struct stack {
	int n;
	struct layer l[LAYERS_MAX];
};

static bool same_layer(const struct layer *a, const struct layer *b)
{
	return a->disk == b->disk && a->dev == b->dev &&
	       (a->disk || a->ino == b->ino);
}

/* The node /dev/NAME of a disk number (its uevent's DEVNAME): 0, or -1. */
static int disk_node(dev_t dev, char *buf, size_t len)
{
	char path[96], line[128];
	int rc = -1;
	FILE *f;

	snprintf(path, sizeof path, "/sys/dev/block/%u:%u/uevent", major(dev),
		 minor(dev));
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "DEVNAME=", 8))
			continue;
		line[strcspn(line, "\n")] = '\0';
		if ((size_t)snprintf(buf, len, "/dev/%s", line + 8) < len)
			rc = 0;
		break;
	}
	fclose(f);
	return rc;
}

static void disk_layer(dev_t dev, struct layer *l)
{
	l->disk = true;
	l->dev = whole_disk(dev);
	l->part = l->dev;
	l->ino = 0;
	if (disk_node(l->dev, l->name, sizeof l->name) < 0)
		snprintf(l->name, sizeof l->name, "device %u:%u",
			 major(l->dev), minor(l->dev));
}

/* The layer under loop device disk: 0, or -1 when it is no loop device
 * or is not attached.  The kernel's own word first (LOOP_GET_STATUS64:
 * the backing file's device and inode, whatever its name is now), sysfs's
 * backing_file where the node cannot be opened. */
static int loop_under(dev_t disk, struct layer *l)
{
	char path[PATH_MAX], file[PATH_MAX];
	struct loop_info64 info;
	struct stat st;
	bool got = false;
	size_t n;
	FILE *f;
	int fd;

	snprintf(path, sizeof path, "/sys/dev/block/%u:%u/loop/backing_file",
		 major(disk), minor(disk));
	f = fopen(path, "re");
	if (!f)
		return -1; /* not a loop device, or not attached */
	if (!fgets(file, sizeof file, f))
		file[0] = '\0';
	fclose(f);
	n = strlen(file);
	if (n && file[n - 1] == '\n')
		file[--n] = '\0';
	/* Zeroed: valgrind does not know what this ioctl writes. */
	memset(&info, 0, sizeof info);
	if (disk_node(disk, path, sizeof path) == 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd >= 0) {
			if (fstat(fd, &st) == 0 && S_ISBLK(st.st_mode) &&
			    st.st_rdev == disk &&
			    ioctl(fd, LOOP_GET_STATUS64, &info) == 0)
				got = true;
			close(fd);
		}
	}
	if (got && info.lo_rdevice) {
		disk_layer((dev_t)info.lo_rdevice, l);
	} else if (got) {
		l->disk = false;
		l->dev = (dev_t)info.lo_device;
		l->ino = (ino_t)info.lo_inode;
	} else if (file[0] && stat(file, &st) == 0) {
		if (S_ISBLK(st.st_mode)) {
			disk_layer(st.st_rdev, l);
		} else {
			l->disk = false;
			l->dev = st.st_dev;
			l->ino = st.st_ino;
		}
	} else {
		return -1; /* deleted: nobody else can reach it by name */
	}
	if (!l->disk) {
		if (file[0])
			rc_strlcpy(l->name, file, sizeof l->name);
		else
			snprintf(l->name, sizeof l->name,
				 "inode %ju of device %u:%u",
				 (uintmax_t)l->ino, major(l->dev),
				 minor(l->dev));
	}
	return 0;
}

/* Does the open descriptor fd hold the object that stat() described? */
static bool opened_is_checked(int fd, const struct stat *checked)
{
	struct stat now;

	return fstat(fd, &now) == 0 && now.st_dev == checked->st_dev &&
	       now.st_ino == checked->st_ino &&
	       (now.st_mode & S_IFMT) == (checked->st_mode & S_IFMT) &&
	       (!S_ISBLK(now.st_mode) || now.st_rdev == checked->st_rdev);
}

/* The stack of an object: st from stat(), name how it was named. */
static void stack_of(const struct stat *st, const char *name,
		     struct stack *s)
{
	struct layer *top = &s->l[0];

	memset(s, 0, sizeof *s);
	s->n = 1;
	if (S_ISBLK(st->st_mode)) {
		disk_layer(st->st_rdev, top);
		top->part = st->st_rdev;
	} else {
		top->disk = false;
		top->dev = st->st_dev;
		top->ino = st->st_ino;
	}
	rc_strlcpy(top->name, name, sizeof top->name);
	while (s->n < LAYERS_MAX && s->l[s->n - 1].disk &&
	       loop_under(s->l[s->n - 1].dev, &s->l[s->n]) == 0)
		s->n++;
}

/* The first layers a and b share: 0 and their indices, or -1. */
static int shared(const struct stack *a, const struct stack *b, int *ia,
		  int *ib)
{
	int i, j;

	for (i = 0; i < a->n; i++)
		for (j = 0; j < b->n; j++)
			if (same_layer(&a->l[i], &b->l[j])) {
				*ia = i;
				*ib = j;
				return 0;
			}
	return -1;
}

/* Are a and b one target?  They share a layer, other than two partitions
 * of one disk named at the top (the kernel's O_EXCL keeps a partition and
 * its whole disk apart). */
static bool same_target(const struct stack *a, const struct stack *b)
{
	int i, j;

	if (shared(a, b, &i, &j) < 0)
		return false;
	return i || j || !a->l[0].disk || a->l[0].part == b->l[0].part;
}

/* Is a file of stack files kept on storage of stack disks: stored on a
 * filesystem whose disk (through its loop devices, and the disks their
 * files are kept on) is a layer of disks? */
static bool kept_on(const struct stack *disks, const struct stack *files,
		    int depth)
{
	struct stack home;
	struct stat st;
	int i, a, b;

	if (depth > 3)
		return false;
	for (i = 0; i < files->n; i++) {
		if (files->l[i].disk)
			continue;
		memset(&st, 0, sizeof st);
		st.st_mode = S_IFBLK;
		st.st_rdev = files->l[i].dev;
		stack_of(&st, files->l[i].name, &home);
		if (major(home.l[0].dev) == 0)
			continue; /* tmpfs, overlayfs...: no disk of ours */
		if (shared(disks, &home, &a, &b) == 0 ||
		    kept_on(disks, &home, depth + 1))
			return true;
	}
	return false;
}

/* Every attached loop device whose stack shares a layer with s (s's own
 * top excluded): their numbers, at most max; how many. */
static int loop_aliases(const struct stack *s, dev_t *out, int max)
{
	char path[300], buf[64];
	struct dirent *e;
	unsigned maj, min;
	int n = 0, a, b;
	DIR *dir;

	dir = opendir("/sys/block");
	if (!dir)
		return 0;
	while (n < max && (e = readdir(dir))) {
		struct stack ls;
		struct stat st;
		FILE *f;

		if (strncmp(e->d_name, "loop", 4))
			continue;
		snprintf(path, sizeof path, "/sys/block/%s/dev", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (!fgets(buf, sizeof buf, f) ||
		    sscanf(buf, "%u:%u", &maj, &min) != 2) {
			fclose(f);
			continue;
		}
		fclose(f);
		memset(&st, 0, sizeof st);
		st.st_mode = S_IFBLK;
		st.st_rdev = makedev(maj, min);
		if (s->l[0].disk && s->l[0].dev == st.st_rdev)
			continue;
		stack_of(&st, e->d_name, &ls);
		if (ls.n > 1 && shared(s, &ls, &a, &b) == 0)
			out[n++] = st.st_rdev;
	}
	closedir(dir);
	return n;
}

/* Is disk (a whole disk) or one of its partitions mounted or held (a
 * filesystem, a device mapper, another program's exclusive open)?  The
 * kernel's own answer: an exclusive open fails with EBUSY.  A partition
 * is asked on its own: claiming a whole disk does not look at its
 * partitions' claims.  parts_only: its partitions only.  true, with the
 * busy node in node. */
static bool disk_busy(dev_t disk, bool parts_only, char *node, size_t len)
{
	char path[300], name[64];
	struct dirent *e;
	size_t nlen;
	DIR *dir;
	int fd;

	if (disk_node(disk, node, len) < 0)
		return false;
	rc_strlcpy(name, strrchr(node, '/') + 1, sizeof name);
	if (!parts_only) {
		fd = open(node, O_RDONLY | O_EXCL | O_CLOEXEC | O_NOCTTY |
					O_NONBLOCK);
		if (fd >= 0)
			close(fd);
		else if (errno == EBUSY)
			return true;
	}
	nlen = strlen(name);
	snprintf(path, sizeof path, "/sys/dev/block/%u:%u", major(disk),
		 minor(disk));
	dir = opendir(path);
	while (dir && (e = readdir(dir))) {
		if (strncmp(e->d_name, name, nlen) || !e->d_name[nlen])
			continue; /* partitions are named after their disk */
		if ((size_t)snprintf(node, len, "/dev/%s", e->d_name) >= len)
			continue;
		fd = open(node, O_RDONLY | O_EXCL | O_CLOEXEC | O_NOCTTY |
					O_NONBLOCK);
		if (fd >= 0) {
			close(fd);
		} else if (errno == EBUSY) {
			closedir(dir);
			return true;
		}
	}
	if (dir)
		closedir(dir);
	return false;
}

/* Is stack t's storage mounted or held under another name: a partition
 * of its own disk, or another loop device over one of its layers (or one
 * of that device's partitions)?  0, or -EBUSY with why.  The target's
 * own node is left to its O_EXCL open. */
static int alias_in_use(const struct stack *t, char *why, size_t len)
{
	dev_t alias[64];
	char node[256];
	int n, k, a, b;

	if (t->l[0].disk && t->l[0].part == t->l[0].dev &&
	    disk_busy(t->l[0].dev, true, node, sizeof node)) {
		snprintf(why, len,
			 "in use: its partition %s is mounted or held by another program (--force does not override this)",
			 node);
		return -EBUSY;
	}
	n = loop_aliases(t, alias, 64);
	for (k = 0; k < n; k++) {
		struct stack ls;
		struct stat st;

		if (!disk_busy(alias[k], false, node, sizeof node))
			continue;
		memset(&st, 0, sizeof st);
		st.st_mode = S_IFBLK;
		st.st_rdev = alias[k];
		stack_of(&st, node, &ls);
		shared(t, &ls, &a, &b);
		snprintf(why, len,
			 "in use: %s, another name of the same storage (%s), is mounted or held by another program (--force does not override this)",
			 node, t->l[a].name);
		return -EBUSY;
	}
	return 0;
}

static bool same_object(const struct stat *a, const struct stat *b)
{
	if (S_ISBLK(a->st_mode) && S_ISBLK(b->st_mode))
		return a->st_rdev == b->st_rdev;
	return !S_ISBLK(a->st_mode) && !S_ISBLK(b->st_mode) &&
	       a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Why target t (stack ts) must not be written while reading source s
 * (stack ss), or NULL. */
static const char *related(const struct stat *s, const struct stack *ss,
			   const struct stat *t, const struct stack *ts,
			   char *buf, size_t len)
{
	int i, j;

	if (same_object(s, t))
		return "it is the source";
	if (shared(ss, ts, &i, &j) == 0) {
		if (i == 0 && j == 0) {
			snprintf(buf, len, "it is on the same disk as the source (%u:%u)",
				 major(ss->l[0].dev), minor(ss->l[0].dev));
			return buf;
		}
		if (i == 0 && j == 1 && !S_ISBLK(s->st_mode))
			return "it is a loop device backed by the source file";
		if (j == 0 && !S_ISBLK(t->st_mode))
			return "the source is a loop device backed by this file";
		snprintf(buf, len,
			 "it is another name of the source's storage: both reach %s",
			 ss->l[i].name);
		return buf;
	}
	if (kept_on(ts, ss, 0))
		return "the source file is stored on this device";
	if (kept_on(ss, ts, 0))
		return "it is a file on the source device";
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

/* The producer of a running copy whose source is fd's object or another
 * name of its storage (stack t), or 0. */
static pid_t running_source(int fd, const struct stack *t)
{
	/* A file is read as itself, compressed as the image it decodes
	 * to, or streamed on someone's standard input: any of those rings
	 * counts. */
	static const uint32_t file_kinds[] = { RC_SRC_FILE, RC_SRC_DECODED,
					       RC_SRC_PIPE };
	struct rc_join_req jr;
	struct rc_peek pk;
	dev_t alias[64];
	int i, k, n;

	memset(&jr, 0, sizeof jr);
	if (rc_source_identity(fd, &jr.id) == 0 && jr.id.kind == RC_SRC_BLOCK &&
	    rc_peek(&jr, &pk) == 0 && pk.live)
		return pk.producer; /* a partition, named exactly */
	for (i = 0; i < t->n; i++) {
		memset(&jr, 0, sizeof jr);
		jr.id.id0 = t->l[i].dev;
		if (t->l[i].disk) {
			jr.id.kind = RC_SRC_BLOCK;
			if (rc_peek(&jr, &pk) == 0 && pk.live)
				return pk.producer;
			continue;
		}
		jr.id.id1 = t->l[i].ino;
		for (k = 0; k < 3; k++) {
			jr.id.kind = file_kinds[k];
			if (rc_peek(&jr, &pk) == 0 && pk.live)
				return pk.producer;
		}
	}
	n = loop_aliases(t, alias, 64);
	for (i = 0; i < n; i++) {
		memset(&jr, 0, sizeof jr);
		jr.id.kind = RC_SRC_BLOCK;
		jr.id.id0 = alias[i];
		if (rc_peek(&jr, &pk) == 0 && pk.live)
			return pk.producer;
	}
	return 0;
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

/* What rc_open_targets found of one target, for rc_refuse_outputs: where
 * a local path lands (resolved, new or not; "" for others), and its stat
 * when it exists. */
struct seen_target {
	struct stat st;
	struct stack stack;
	bool have;
	char where[PATH_MAX];
};

/* The scan's findings, the caller's to free: nothing of one invocation's
 * targets outlives it in this file. */
struct rc_targets_seen {
	int n;                     /* targets scanned so far */
	struct seen_target t[];    /* as many as the request names */
};

void rc_targets_seen_free(struct rc_targets_seen *seen)
{
	free(seen);
}

/* The source, its mode, its other names: an existing target t (named
 * name) that none of them forbids. */
static int check_existing(const struct rc_target_req *req,
			  const struct stack *src, const struct seen_target *t,
			  const char *name, char *err, size_t errlen)
{
	char why[PATH_MAX];

	if (req->src_st) {
		const char *r = related(req->src_st, src, &t->st, &t->stack,
					why, sizeof why);

		if (r) {
			snprintf(err, errlen,
				 "target %s refused: %s (source %s)",
				 name, r, req->src_spec);
			return -EINVAL;
		}
	}
	if (S_ISREG(t->st.st_mode) && !(t->st.st_mode & 0222)) {
		snprintf(err, errlen,
			 "target %s refused: read-only (mode %04o): make it writable to overwrite it",
			 name, (unsigned)(t->st.st_mode & 07777));
		return -EROFS;
	}
	/* Mounted or held under another name: never with --force,
	 * which overrides what a disk holds, not its use. */
	if (alias_in_use(&t->stack, why, sizeof why) < 0) {
		snprintf(err, errlen, "target %s refused: %s", name, why);
		return -EBUSY;
	}
	return 0;
}

/* Target i before it is opened: what stands at its name and where a new
 * file would land (kept in seen), then every rule a name can answer.
 * spec is the name to open (a resolved symlink). */
static int check_named(const struct rc_target_req *req,
		       const struct stack *src, struct rc_targets_seen *seen,
		       int i, const char *spec, char *err, size_t errlen)
{
	struct seen_target *t = seen->t;
	const struct rc_backend *be;
	const char *path;
	struct stat dir;
	bool nowhere;
	int j;

	be = rc_backend_for(spec, RC_OPEN_TARGET, &path);
	nowhere = be && (be->caps & RC_CAP_NOWHERE);
	t[i].have = be && !nowhere && stat(path, &t[i].st) == 0;
	if (t[i].have)
		stack_of(&t[i].st, req->specs[i], &t[i].stack);
	/* Where a local path lands, new or not: one new file named
	 * two ways is one target, and a new file on the source's
	 * device is written into the source. */
	t[i].where[0] = '\0';
	if (be && !nowhere &&
	    resolve_path(path, t[i].where, sizeof t[i].where, &dir) == 0 &&
	    !t[i].have && req->src_st) {
		if (new_file_on_source(req->src_st, &dir)) {
			snprintf(err, errlen,
				 "target %s refused: a new file there would be written into the source's device (source %s)",
				 req->specs[i], req->src_spec);
			return -EINVAL;
		}
	}
	seen->n = i + 1;
	/* A sink (null:) holds nothing: it may be named many times. */
	for (j = 0; j < i && !nowhere; j++) {
		if (strcmp(req->specs[i], req->specs[j]) == 0 ||
		    (t[i].where[0] && !strcmp(t[i].where, t[j].where)) ||
		    (t[i].have && t[j].have &&
		     same_target(&t[i].stack, &t[j].stack))) {
			snprintf(err, errlen,
				 "target %s refused: the same target as %s",
				 req->specs[i], req->specs[j]);
			return -EINVAL;
		}
	}
	if (!t[i].have)
		return 0;
	/* Another user's file in a sticky world-writable directory
	 * (/tmp): a planted FIFO or file, not a target of ours. */
	if (t[i].where[0] && t[i].st.st_uid != geteuid() &&
	    (dir.st_mode & S_ISVTX) && (dir.st_mode & S_IWOTH)) {
		snprintf(err, errlen,
			 "target %s refused: owned by uid %u in a sticky world-writable directory, where anyone can plant a file: name a path of your own",
			 req->specs[i], (unsigned)t[i].st.st_uid);
		return -EPERM;
	}
	return check_existing(req, src, &t[i], req->specs[i], err, errlen);
}

/* Target t (named name), opened as dst: still what was checked, and the
 * source of no running copy. */
static int check_opened(const struct seen_target *t, const char *name,
			struct rc_dev *dst, char *err, size_t errlen)
{
	/* Opened by name again: it must be what was checked, or a
	 * name swapped meanwhile (a directory renamed, a symlink
	 * planted) would escape every rule above. */
	if (t->have && dst->fd >= 0 && !opened_is_checked(dst->fd, &t->st)) {
		snprintf(err, errlen,
			 "target %s refused: it was replaced while it was checked (another file or device now stands at that name)",
			 name);
		return -EAGAIN;
	}
	/* The source of a running copy, under any of its names:
	 * writing it would change an image other copies are
	 * reading. */
	if (dst->fd >= 0 && t->have) {
		pid_t producer = running_source(dst->fd, &t->stack);

		if (producer) {
			snprintf(err, errlen,
				 "target %s refused: it is the source of a running copy (producer pid %d)",
				 name, (int)producer);
			return -EBUSY;
		}
	}
	return 0;
}

/* A target of a fixed size (a disk, an export), opened as dst: writable,
 * large enough, and holding nothing unless --force or --skip-equal lets
 * it be overwritten. */
static int check_fixed(const struct rc_target_req *req, const char *name,
		       struct rc_dev *dst, char *err, size_t errlen)
{
	int ro = 0, probed;
	struct rc_describe d;
	char holds[160];
	bool ours;

	if ((dst->caps & RC_CAP_BLOCKDEV) &&
	    ioctl(dst->fd, BLKROGET, &ro) == 0 && ro) {
		snprintf(err, errlen,
			 "target %s refused: the device is read-only", name);
		return -EROFS;
	}
	if (dst->size < req->image_size) {
		snprintf(err, errlen,
			 "target %s refused: it holds %" PRIu64 " bytes, the image has %" PRIu64,
			 name, dst->size, req->image_size);
		return -ENOSPC;
	}
	/* A disk through libblkid on its own descriptor; an
	 * export through reads of its backend. */
	probed = dst->caps & RC_CAP_BLOCKDEV
			 ? rc_describe_path(dst->path, dst->size, &d)
			 : rc_describe_dev(dst, &d);
	if (probed != 0)
		return 0;
	ours = rc_describe_in_use(&d) && !req->force && holds_block0(req, dst);
	rc_describe_holds(&d, holds, sizeof holds);
	if (ours) {
		if (!req->dry_run)
			rc_msg("target %s holds %s: its block 0 is the image's (an earlier or interrupted copy of it): --skip-equal writes only what differs",
			       name, holds);
		return 0;
	}
	if (rc_describe_in_use(&d) && !req->force) {
		snprintf(err, errlen,
			 "target %s refused: it holds %s; give --force to overwrite it",
			 name, holds);
		return -EEXIST;
	}
	if (!req->dry_run)
		rc_msg("target %s holds %s%s", name, holds,
		       rc_describe_in_use(&d) ? ": overwriting it (--force)" : "");
	return 0;
}

/* Check target i, open it as *dst and check it again; *owned is a
 * resolved symlink's spec.  Both are left NULL when it is refused before
 * they exist. */
static int open_target(const struct rc_target_req *req,
		       const struct stack *src, struct rc_targets_seen *seen,
		       int i, struct rc_dev **dst, char **owned, char *err,
		       size_t errlen)
{
	const char *spec = req->specs[i];
	char detail[256];
	int rc;

	*owned = NULL;
	*dst = NULL;
	rc = check_symlink(&spec, owned, err, errlen);
	if (rc < 0)
		return rc;
	rc = check_named(req, src, seen, i, spec, err, errlen);
	if (rc < 0)
		return rc;
	rc = rc_dev_open(spec, RC_OPEN_TARGET, dst, detail, sizeof detail);
	if (rc < 0) {
		snprintf(err, errlen, "target %s refused: %s%s", req->specs[i],
			 detail[0] ? detail : strerror(-rc),
			 detail[0] ? "" : open_hint(rc));
		return rc;
	}
	rc = check_opened(&seen->t[i], req->specs[i], *dst, err, errlen);
	if (rc < 0)
		return rc;
	if ((*dst)->caps & (RC_CAP_BLOCKDEV | RC_CAP_FIXED))
		return check_fixed(req, req->specs[i], *dst, err, errlen);
	return 0;
}

int rc_open_targets(const struct rc_target_req *req, struct rc_dev **dst,
		    char **owned, struct rc_targets_seen **seenp, char *err,
		    size_t errlen)
{
	struct rc_targets_seen *seen;
	struct stack src;
	int i, rc;

	*seenp = NULL;
	seen = calloc(1, sizeof *seen +
				 (size_t)(req->n > 0 ? req->n : 0) *
					 sizeof seen->t[0]);
	if (!seen) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (req->src_st)
		stack_of(req->src_st, req->src_spec, &src);
	for (i = 0; i < req->n; i++) {
		rc = open_target(req, &src, seen, i, &dst[i], &owned[i], err,
				 errlen);
		if (rc < 0) {
			rc_targets_seen_free(seen);
			return rc;
		}
	}
	*seenp = seen;
	return 0;
}

/* Why an output path (what) must not be written, checked like a target:
 * NULL when it may. */
static const char *output_refused(const struct rc_target_req *req,
				  const struct stack *src, const char *path,
				  const struct stat *lst, struct stack *ostack,
				  bool exists, char *buf, size_t len)
{
	const char *r;

	if (!exists)
		return NULL;
	if (S_ISLNK(lst->st_mode))
		return "it is a symlink: name the file itself";
	if (!S_ISREG(lst->st_mode))
		return "it exists and is not a regular file (a device, a FIFO or a directory is never replaced)";
	stack_of(lst, path, ostack);
	if (req->src_st && (r = related(req->src_st, src, lst, ostack, buf,
					len)))
		return r;
	return NULL;
}

int rc_refuse_outputs(const struct rc_target_req *req,
		      const struct rc_targets_seen *seen,
		      const char *const *what, const char *const *paths, int n,
		      char *err, size_t errlen)
{
	char where[2][PATH_MAX], twhere[PATH_MAX], why[PATH_MAX];
	struct stack src, ostack;
	struct stat lst, tst, dir;
	int i, k, j;

	if (req->src_st)
		stack_of(req->src_st, req->src_spec, &src);

	for (i = 0; i < n && i < 2; i++) {
		bool exists;
		const char *r;

		if (!paths[i])
			continue;
		exists = lstat(paths[i], &lst) == 0;
		r = output_refused(req, &src, paths[i], &lst, &ostack, exists,
				   why, sizeof why);
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
		 * them: seen). */
		for (j = 0; !r && j < req->n; j++) {
			if (!strcmp(req->specs[j], "-")) {
				/* Standard output may be the very file. */
				if (exists && fstat(STDOUT_FILENO, &tst) == 0 &&
				    same_object(&lst, &tst))
					r = "it is standard output, a target";
				continue;
			}
			if (!seen || j >= seen->n)
				continue;
			if ((exists && seen->t[j].have &&
			     same_target(&ostack, &seen->t[j].stack)) ||
			    (seen->t[j].where[0] &&
			     !strcmp(seen->t[j].where, where[i]))) {
				snprintf(why, sizeof why, "it is the target %s",
					 req->specs[j]);
				r = why;
			}
		}
		/* Mounted or held under another name (our own targets,
		 * held now, are named above). */
		if (!r && exists && S_ISREG(lst.st_mode) &&
		    alias_in_use(&ostack, why, sizeof why) < 0)
			r = why;
		if (r) {
			snprintf(err, errlen, "%s %s refused: %s (nothing was written)",
				 what[i], paths[i], r);
			return -EINVAL;
		}
	}
	return 0;
}
