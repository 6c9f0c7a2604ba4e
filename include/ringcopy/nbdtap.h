/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - a relay's upstream NBD connection read as it passes, so that
 * the reads the node's own disks can answer are answered from them (a
 * delta rollout: `ringcopy relay --skip-equal', src/relay.c). */
#ifndef RINGCOPY_NBDTAP_H
#define RINGCOPY_NBDTAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The node's disks, read as the image's manifest says. */
struct rc_disks;

/* Open the disks of specs[0..n) that can be read back as they are (a
 * target not there yet, unreadable, or one that writes to nothing or
 * decodes holds nothing), for the image MANIFEST describes.  NULL with
 * err set when the manifest cannot be read; else *nopen of them open
 * (maybe none). */
struct rc_disks *rc_disks_open(const char *manifest, char *const specs[],
			       int n, int *nopen, char *err, size_t errlen);
void rc_disks_close(struct rc_disks *d);
/* The image's bytes [off, off + len) into out when every block they touch
 * is held by one of the disks as the manifest says (each block hashed as
 * it is read now, the bytes given are the bytes hashed); false, out
 * undefined, when one is not. */
bool rc_disks_read(struct rc_disks *d, uint64_t off, uint32_t len,
		   void *out);
/* Bytes rc_disks_read gave so far. */
uint64_t rc_disks_answered(const struct rc_disks *d);

/* Reads forwarded to the server and not answered yet: QEMU's NBD client
 * keeps at most 16 in flight. */
#define RC_TAP_INFLIGHT 256
/* Replies of ours queued at most (more reads are forwarded), and their
 * bytes at most. */
#define RC_TAP_QUEUED   64
#define RC_TAP_QUEUE_MAX (16u << 20)

/* One NBD connection's transmission, both ways.  The client's requests
 * pass through rc_tap_client, which keeps back the reads the disks answer
 * and queues their replies; the server's replies are parsed by
 * rc_tap_server as they are read, so that a queued reply is written to
 * the client only between two of the server's messages (rc_tap_span). */
struct rc_tap {
	struct rc_disks *disks;         /* NULL: forward everything */
	bool structured;                /* the server acknowledged
					 * NBD_OPT_STRUCTURED_REPLY */
	/* client -> server: a request's header being read, a write's
	 * payload still to pass */
	unsigned char chdr[28];
	uint32_t cn;
	uint64_t crem;
	/* server -> client: a reply's header being read, its payload */
	unsigned char shdr[20];
	uint32_t sn;
	uint64_t srem;
	struct {
		uint64_t handle;
		uint32_t len;
	} rd[RC_TAP_INFLIGHT];          /* forwarded reads */
	int nrd;
	/* the server's buffer being written: does its first byte start a
	 * message, and where do its messages end */
	bool starts;
	uint32_t *ends;
	size_t nends, iend, cap;
	/* replies from the disks, whole, waiting to be written: q[qoff,
	 * qlen) unsent, the first of them begun at qhead, each ending at
	 * qend[0..nq) */
	unsigned char *q;
	size_t qoff, qlen, qcap, qhead;
	size_t qend[RC_TAP_QUEUED];
	int nq;
};

/* A tap over a buffer of bufsize bytes for the server's side; -1 when out
 * of memory. */
int rc_tap_init(struct rc_tap *t, struct rc_disks *d, size_t bufsize);
void rc_tap_free(struct rc_tap *t);
/* The client's n bytes at in (its transmission: requests, writes'
 * payloads): what goes on to the server into out (room for n + 28 bytes),
 * its length in *outlen.  -1 when they are not NBD requests. */
int rc_tap_client(struct rc_tap *t, const unsigned char *in, size_t n,
		  unsigned char *out, size_t *outlen);
/* The server's buffer, just filled with used bytes: [0, from) end its
 * handshake (from > 0 only on the read that ends it), [from, used) are
 * replies.  -1 when they are not NBD replies.  A simple reply to a handle
 * that is not a forwarded read's carries no data (a write's, a
 * flush's). */
int rc_tap_server(struct rc_tap *t, const unsigned char *buf, size_t from,
		  size_t used);
/* The server's buffer written up to off of used bytes: may the next
 * queued reply be written now (the stream is between two of the server's
 * messages, or that reply is half written)? */
bool rc_tap_between(struct rc_tap *t, size_t off, size_t used);
/* How many of the server's bytes to write now: up to the end of its
 * message when replies are queued, else all. */
size_t rc_tap_span(struct rc_tap *t, size_t off, size_t used);
/* Queued replies not written yet. */
static inline size_t rc_tap_queued(const struct rc_tap *t)
{
	return t->qlen - t->qoff;
}
/* The rest of the first queued reply: write it, then say how much went
 * with rc_tap_sent.  One reply at a time, so that the server's next
 * message may go between two of ours. */
const unsigned char *rc_tap_next(const struct rc_tap *t, size_t *len);
void rc_tap_sent(struct rc_tap *t, size_t n);

#endif
