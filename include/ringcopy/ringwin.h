/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - the ring's window predicates, defined once.
 *
 * Included by the C (ring.h) and by the SPIN model (src/ringproto.pml: spin
 * runs its input through cpp), so the model checks the very expressions
 * the producer and the registrant evaluate.  Plain expressions of their
 * arguments: no types, no calls, nothing Promela lacks.  A consumer
 * registered at `first' reads seq first .. first + nblocks - 1, one pass
 * of the image; the slot of its last block is overwritten only nslots
 * seqs later.
 */
#ifndef RINGCOPY_RINGWIN_H
#define RINGCOPY_RINGWIN_H

/* Does a consumer starting at first need seq n?  (Subtraction after the
 * comparison: no overflow near the top of the sequence space.) */
#define RC_WIN_NEEDS(first, nblocks, n) \
	((n) >= (first) && (n) - (first) < (nblocks))

/* Must its credit be taken before slot n mod nslots is filled: it needs
 * n, or it may still have to read the slot's previous occupant n - nslots
 * (it took nslots credits at registration and posts one per block, so the
 * takes balance at nblocks + nslots). */
#define RC_WIN_IN_WAIT(first, nblocks, nslots, n) \
	RC_WIN_NEEDS(first, (nblocks) + (nslots), n)

/* Where a sequential joiner starts when the producer is at next: the
 * next pass's block 0 (next itself when it is one). */
#define RC_WIN_SEQ_START(next, nblocks) \
	(((next) + (nblocks) - 1) / (nblocks) * (nblocks))

#endif
