/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - small helpers shared by src, backends and tests. */
#ifndef RINGCOPY_UTIL_H
#define RINGCOPY_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Exit codes, as documented in ringcopy(1). */
#define RC_EXIT_OK       0
#define RC_EXIT_FAILED   1
#define RC_EXIT_REFUSED  2
#define RC_EXIT_MISMATCH 3

/* Parse "123", "4K", "1M", "2G", "1T" (powers of 1024; a trailing "B" or
 * "iB" is accepted).  Returns 0 or -EINVAL (garbage) / -ERANGE (overflow). */
int rc_parse_size(const char *s, uint64_t *out);
bool rc_is_pow2(uint64_t v);

/* Messages go to standard error, prefixed with the program name. */
void rc_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rc_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern bool rc_quiet;

/* Start time of a process in clock ticks since boot (field 22 of
 * /proc/PID/stat), or 0 when it does not exist. */
uint64_t rc_proc_start(pid_t pid);
/* Is pid alive and started at start? (pid alone can be reused.) */
bool rc_proc_alive(pid_t pid, uint64_t start);

/* Monotonic clock in nanoseconds. */
uint64_t rc_now_ns(void);

/* snprintf into a fixed buffer, always terminated, never failing. */
void rc_strlcpy(char *dst, const char *src, size_t len);

/* Close every descriptor except those listed (for the producer). */
void rc_close_fds_except(const int *keep, size_t nkeep);

/* A backend waiting long for a device (a server that does not answer)
 * asks this between short waits; true ends the wait with -ECANCELED.
 * A consumer points it at a check of its eviction; NULL: never. */
extern bool (*rc_io_should_stop)(void);

/* Write a JSON string literal (with quotes) to f. */
void rc_json_str(FILE *f, const char *s);

/* Check standard output when this process exits: a lost report is exit
 * 1 with a message (util-linux's close_stdout). */
void rc_check_stdout_at_exit(void);
/* main() found descriptor 1 closed (and put /dev/full there). */
void rc_stdout_was_closed(void);

/* Tell a service manager that the service is ready, with a status line
 * (systemd's Type=notify), then forget NOTIFY_SOCKET so that nothing
 * forked later says it again.  Nothing happens without NOTIFY_SOCKET. */
void rc_notify_ready(const char *status);

#endif
