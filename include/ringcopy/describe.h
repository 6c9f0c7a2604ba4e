/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - what a disk or image holds (libblkid), and its image size. */
#ifndef RINGCOPY_DESCRIBE_H
#define RINGCOPY_DESCRIBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rc_describe {
	char pttype[32];     /* "dos", "gpt", or "" */
	char fstype[32];     /* "ext4", ..., "ambiguous", or "" */
	char label[64];      /* filesystem label, or "" */
	int nparts;          /* partitions in the table */
	uint64_t image_size; /* the size of the image on it */
	char why[256];       /* how image_size was chosen, for the user */
};

/* Probe path (a device or image of dev_size bytes) through a descriptor
 * of its own. */
int rc_describe_path(const char *path, uint64_t dev_size,
		     struct rc_describe *d);
/* Probe a device that has no descriptor to hand to libblkid (an NBD
 * export): both ends of it are read through its backend into a sparse
 * memory file of its size, and that is probed. */
struct rc_dev;
int rc_describe_dev(struct rc_dev *dev, struct rc_describe *d);
/* "a dos partition table with 2 partitions", "an ext4 filesystem labelled
 * 'root'", "no partition table or filesystem". */
void rc_describe_holds(const struct rc_describe *d, char *buf, size_t len);
/* Does it hold a partition table or a filesystem? */
bool rc_describe_in_use(const struct rc_describe *d);

/* A disk larger than the image it now holds, whose image is a GPT: the
 * note that its backup header is not at the disk's end (in note), true;
 * false when there is nothing to say. */
bool rc_gpt_backup_note(const struct rc_dev *d, const char *spec,
			uint64_t image, char *note, size_t len);

#endif
