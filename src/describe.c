/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - describe a disk or image with libblkid: what it holds, and the
 * size of the image on it ([0018]: a copy runs from the beginning of the
 * disk to the size of the image on it).
 *
 *  - an MBR (dos) partition table: up to the end of the last partition;
 *  - a GPT: the whole device (its backup header is at the end);
 *  - a bare filesystem: its size (FSSIZE where libblkid reports it; with
 *    libblkid < 2.39 read from the ext2/3/4, XFS or btrfs superblock);
 *  - anything else: the whole device or file.
 */
#include "config.h"

#include <blkid.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringcopy/backend.h"
#include "ringcopy/describe.h"
#include "ringcopy/util.h"

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static uint64_t be64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* The filesystem's own idea of its size, from its superblock. */
static uint64_t fs_size(int fd, const char *type)
{
	unsigned char sb[4096];

	if (!strncmp(type, "ext", 3)) {
		uint64_t blocks;
		uint32_t log;

		if (pread(fd, sb, 1024, 1024) != 1024 ||
		    sb[0x38] != 0x53 || sb[0x39] != 0xef)
			return 0;
		log = le32(sb + 0x18);
		if (log > 6)
			return 0;
		blocks = le32(sb + 0x4);
		if (le32(sb + 0x60) & 0x80) /* INCOMPAT_64BIT */
			blocks |= (uint64_t)le32(sb + 0x150) << 32;
		return blocks * (1024u << log);
	}
	if (!strcmp(type, "xfs")) {
		uint32_t bs;

		if (pread(fd, sb, 512, 0) != 512 || memcmp(sb, "XFSB", 4))
			return 0;
		bs = be32(sb + 4);
		return bs && bs <= 65536 ? be64(sb + 8) * bs : 0;
	}
	if (!strcmp(type, "btrfs")) {
		if (pread(fd, sb, 4096, 65536) != 4096 ||
		    memcmp(sb + 0x40, "_BHRfS_M", 8))
			return 0;
		return le64(sb + 0x70);
	}
	return 0;
}

static void copy_value(blkid_probe pr, const char *name, char *dst,
		       size_t len)
{
	const char *v = NULL;

	if (blkid_probe_lookup_value(pr, name, &v, NULL) == 0 && v)
		rc_strlcpy(dst, v, len);
}

static int describe_fd(int fd, uint64_t dev_size, struct rc_describe *d);

int rc_describe_path(const char *path, uint64_t dev_size,
		     struct rc_describe *d)
{
	/* A descriptor of our own, buffered: libblkid's reads are not
	 * aligned for the O_DIRECT descriptors the copy uses. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	return describe_fd(fd, dev_size, d);
}

/* How much of each end of a device without a descriptor is probed: every
 * signature libblkid knows lies in the first MiB (GPT, MBR, ext*, XFS,
 * btrfs at 64K, ...) or the last (GPT's backup, MD 0.90/1.0). */
#define PROBE_SPAN (UINT64_C(1) << 20)

int rc_describe_dev(struct rc_dev *dev, struct rc_describe *d)
{
	uint64_t size = dev->size, at[2], k;
	void *buf = malloc(PROBE_SPAN);
	int fd, rc = 0;

	fd = memfd_create("ringcopy-probe", MFD_CLOEXEC);
	if (!buf || fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		rc = buf ? -errno : -ENOMEM;
		goto out;
	}
	/* A sparse copy of both ends, read through the backend, for
	 * libblkid to probe as if it were the device. */
	at[0] = 0;
	at[1] = size > PROBE_SPAN ? size - PROBE_SPAN : 0;
	for (k = 0; k < 2 && rc == 0; k++) {
		uint64_t len = size - at[k] < PROBE_SPAN ? size - at[k]
							 : PROBE_SPAN;
		ssize_t n = rc_dev_pread(dev, buf, len, at[k]);

		if (n < 0)
			rc = (int)n;
		else if (pwrite(fd, buf, (size_t)n, (off_t)at[k]) != n)
			rc = -errno;
	}
	if (rc == 0) {
		rc = describe_fd(fd, size, d);
		fd = -1; /* closed there */
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

static int describe_fd(int fd, uint64_t dev_size, struct rc_describe *d)
{
	blkid_probe pr;
	int rc;

	memset(d, 0, sizeof *d);
	d->image_size = dev_size;
	snprintf(d->why, sizeof d->why, "no partition table or filesystem: the whole %" PRIu64 " bytes",
		 dev_size);
	pr = blkid_new_probe();
	if (!pr || blkid_probe_set_device(pr, fd, 0, (blkid_loff_t)dev_size) < 0) {
		if (pr)
			blkid_free_probe(pr);
		close(fd);
		return -EIO;
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE |
						      BLKID_SUBLKS_LABEL);
	blkid_probe_enable_partitions(pr, 1);
	rc = blkid_do_safeprobe(pr);
	if (rc == -2) {
		/* Ambiguous: several signatures.  Say so; size the whole. */
		rc_strlcpy(d->fstype, "ambiguous", sizeof d->fstype);
		snprintf(d->why, sizeof d->why,
			 "several conflicting signatures: the whole %" PRIu64 " bytes",
			 dev_size);
		blkid_free_probe(pr);
		close(fd);
		return 0;
	}
	if (rc == 0) {
		copy_value(pr, "PTTYPE", d->pttype, sizeof d->pttype);
		copy_value(pr, "TYPE", d->fstype, sizeof d->fstype);
		copy_value(pr, "LABEL", d->label, sizeof d->label);
	}
	if (d->pttype[0]) {
		blkid_partlist ls = blkid_probe_get_partitions(pr);
		int i, n = ls ? blkid_partlist_numof_partitions(ls) : 0;
		uint64_t end = 0;

		d->nparts = n > 0 ? n : 0;
		for (i = 0; i < n; i++) {
			blkid_partition p = blkid_partlist_get_partition(ls, i);
			uint64_t e = (uint64_t)(blkid_partition_get_start(p) +
						blkid_partition_get_size(p)) *
				     512;

			if (e > end)
				end = e;
		}
		if (!strcmp(d->pttype, "gpt")) {
			snprintf(d->why, sizeof d->why,
				 "GPT partition table (%d partition%s): the whole %" PRIu64 " bytes, for the backup header at the end",
				 d->nparts, d->nparts == 1 ? "" : "s", dev_size);
		} else if (end && end <= dev_size) {
			d->image_size = end;
			snprintf(d->why, sizeof d->why,
				 "%s partition table (%d partition%s): up to the end of the last partition, %" PRIu64 " bytes",
				 d->pttype, d->nparts, d->nparts == 1 ? "" : "s",
				 end);
		} else {
			snprintf(d->why, sizeof d->why,
				 "%s partition table with no usable partitions: the whole %" PRIu64 " bytes",
				 d->pttype, dev_size);
		}
	} else if (d->fstype[0]) {
		uint64_t fs = 0;
#ifdef BLKID_SUBLKS_FSINFO
		const char *v = NULL;

		if (blkid_probe_lookup_value(pr, "FSSIZE", &v, NULL) == 0 && v)
			fs = strtoull(v, NULL, 10);
#endif
		if (!fs)
			fs = fs_size(fd, d->fstype);
		if (fs && fs <= dev_size) {
			d->image_size = fs;
			snprintf(d->why, sizeof d->why,
				 "%s filesystem%s%s: its size, %" PRIu64 " bytes",
				 d->fstype, d->label[0] ? " labelled " : "",
				 d->label, fs);
		} else {
			snprintf(d->why, sizeof d->why,
				 "%s filesystem of unknown size: the whole %" PRIu64 " bytes",
				 d->fstype, dev_size);
		}
	}
	blkid_free_probe(pr);
	close(fd);
	return 0;
}

/* "a" or "an" before a type name as it is said: a word that starts with
 * a vowel ("an ext4", "an atari"), or initials whose first letter is
 * said with one ("an xfs", "an ntfs"). */
static const char *article(const char *type)
{
	static const char *const initials[] = { "xfs", "ntfs", "f2fs", "hfs",
						"hfsplus", "nilfs2",
						"LVM2_member", "mbr" };
	size_t i;

	if (strchr("aeiouAEIOU", type[0]) && type[0])
		return "an";
	for (i = 0; i < sizeof initials / sizeof initials[0]; i++)
		if (!strcmp(type, initials[i]))
			return "an";
	return "a";
}

void rc_describe_holds(const struct rc_describe *d, char *buf, size_t len)
{
	size_t n;

	if (d->pttype[0])
		snprintf(buf, len, "%s %s partition table with %d partition%s",
			 article(d->pttype), d->pttype, d->nparts,
			 d->nparts == 1 ? "" : "s");
	else if (!strcmp(d->fstype, "ambiguous"))
		snprintf(buf, len, "several conflicting signatures");
	else if (d->fstype[0])
		snprintf(buf, len, "%s %s filesystem", article(d->fstype),
			 d->fstype);
	else
		snprintf(buf, len, "no partition table or filesystem");
	n = strlen(buf);
	if (d->label[0] && n < len)
		snprintf(buf + n, len - n, " labelled '%s'", d->label);
}

bool rc_describe_in_use(const struct rc_describe *d)
{
	return d->pttype[0] || d->fstype[0];
}

/* A disk larger than the image it now holds: if the image is a GPT, its
 * backup header (and backup partition array) sit at the image's end, not
 * at the disk's, and partitioning tools complain.  Read from the target
 * itself, just verified: the primary header at LBA 1 (512-byte or 4K
 * sectors) names the backup's LBA. */
bool rc_gpt_backup_note(const struct rc_dev *d, const char *spec,
			uint64_t image, char *note, size_t len)
{
	static const uint32_t sectors[] = { 512, 4096 };
	unsigned char h[92];
	bool said = false;
	size_t k;
	int fd;

	if (!d || !(d->caps & RC_CAP_BLOCKDEV) || !d->path || d->size <= image)
		return false;
	fd = open(d->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return false;
	for (k = 0; k < sizeof sectors / sizeof sectors[0]; k++) {
		uint64_t my, alt, end;

		if (pread(fd, h, sizeof h, sectors[k]) != (ssize_t)sizeof h ||
		    memcmp(h, "EFI PART", 8))
			continue;
		memcpy(&my, h + 24, 8);
		memcpy(&alt, h + 32, 8);
		my = le64toh(my);
		alt = le64toh(alt);
		if (my != 1 || alt > UINT64_MAX / sectors[k] - 1)
			continue;
		end = (alt + 1) * sectors[k];
		if (end >= d->size)
			break;
		snprintf(note, len,
			 "target %s holds a GPT whose backup header is at byte %llu, not at the end of the disk (%llu bytes): move it there with 'sgdisk -e %s'",
			 spec, (unsigned long long)(end - sectors[k]),
			 (unsigned long long)d->size, d->path);
		said = true;
		break;
	}
	close(fd);
	return said;
}

