/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ring-tamper: a same-user process that corrupts a running ring, for
 * tests/func/test-tamper.sh.  It attaches with none of ringcopy's checks
 * and does one thing to the ring named by a rendezvous file:
 *
 *   ring-tamper RDVFILE lock-hold SECONDS  take LOCK and keep it
 *   ring-tamper RDVFILE lock-zero          set LOCK to 0 for good: take it
 *                                          without undo, waiting (at
 *                                          most 60 s) for a holder to
 *                                          give it back first
 *   ring-tamper RDVFILE sems-zero          set every semaphore to 0
 *   ring-tamper RDVFILE next-seq VALUE     overwrite next_seq
 *   ring-tamper RDVFILE header-random      random bytes over the header
 *   ring-tamper RDVFILE rate VALUE         overwrite the read rate
 *   ring-tamper RDVFILE nblocks VALUE      overwrite the block count
 *   ring-tamper RDVFILE free-max           every FREE[i] to SEMVMX
 *   ring-tamper RDVFILE join-max           JOIN to SEMVMX
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <time.h>
#include <unistd.h>

#include "ringcopy/core.h"
#include "ringcopy/ring.h"

#define SEMVMX 32767

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

static void die(const char *what)
{
	perror(what);
	exit(1);
}

int main(int argc, char **argv)
{
	struct rc_ring_hdr *h;
	struct semid_ds sds;
	union semun arg;
	int fd, shmid, semid;
	unsigned long i;

	if (argc < 3) {
		fprintf(stderr, "usage: ring-tamper RDVFILE ACTION [VALUE]\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0)
		die(argv[1]);
	if (rc_rdv_read(fd, &shmid, &semid) < 0) {
		fprintf(stderr, "%s: not a rendezvous file\n", argv[1]);
		return 1;
	}
	close(fd);
	h = shmat(shmid, NULL, 0);
	if (h == (void *)-1)
		die("shmat");
	arg.buf = &sds;
	if (semctl(semid, 0, IPC_STAT, arg) < 0)
		die("semctl IPC_STAT");

	if (!strcmp(argv[2], "lock-hold") && argc == 4) {
		struct sembuf op = { RC_SEM_LOCK, -1, SEM_UNDO };

		if (semop(semid, &op, 1) < 0)
			die("semop");
		printf("held\n");
		fflush(stdout);
		sleep((unsigned)atoi(argv[3]));
	} else if (!strcmp(argv[2], "lock-zero")) {
		/* Not SETVAL 0: under a holder (LOCK already 0) that would be
		 * undone by the holder's release, and nothing would be
		 * broken.  Taken when free and never given back, it is a
		 * holder that died without undo. */
		struct sembuf op = { RC_SEM_LOCK, -1, 0 };
		struct timespec ts = { 60, 0 };

		if (semtimedop(semid, &op, 1, &ts) < 0)
			die("semtimedop");
	} else if (!strcmp(argv[2], "sems-zero")) {
		unsigned short *v = calloc(sds.sem_nsems, sizeof *v);

		arg.array = v;
		if (!v || semctl(semid, 0, SETALL, arg) < 0)
			die("semctl SETALL");
		free(v);
	} else if (!strcmp(argv[2], "next-seq") && argc == 4) {
		h->next_seq = strtoull(argv[3], NULL, 0);
	} else if (!strcmp(argv[2], "header-random")) {
		unsigned char *p = (unsigned char *)h;

		srand((unsigned)getpid());
		for (i = 0; i < sizeof *h; i++)
			p[i] = (unsigned char)rand();
	} else if (!strcmp(argv[2], "rate") && argc == 4) {
		h->rate = strtoull(argv[3], NULL, 0);
	} else if (!strcmp(argv[2], "nblocks") && argc == 4) {
		h->nblocks = strtoull(argv[3], NULL, 0);
	} else if (!strcmp(argv[2], "free-max")) {
		arg.val = SEMVMX;
		for (i = 0; (unsigned long)RC_SEM_FREE(i) < sds.sem_nsems; i++)
			semctl(semid, (int)RC_SEM_FREE(i), SETVAL, arg);
	} else if (!strcmp(argv[2], "join-max")) {
		arg.val = SEMVMX;
		if (semctl(semid, RC_SEM_JOIN, SETVAL, arg) < 0)
			die("semctl SETVAL");
	} else {
		fprintf(stderr, "ring-tamper: unknown action %s\n", argv[2]);
		return 2;
	}
	shmdt(h);
	return 0;
}
