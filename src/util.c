/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - small helpers. */
#include "config.h"

#include <ctype.h>
#include <stdbool.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/vfs.h>

#include "ringcopy/util.h"

bool rc_quiet;
bool (*rc_io_should_stop)(void);

bool rc_is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

int rc_parse_size(const char *s, uint64_t *out)
{
	const char *p = s;
	uint64_t v = 0;
	unsigned shift = 0;

	if (!s || !isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	switch (*p) {
	case 'k': case 'K': shift = 10; p++; break;
	case 'm': case 'M': shift = 20; p++; break;
	case 'g': case 'G': shift = 30; p++; break;
	case 't': case 'T': shift = 40; p++; break;
	default: break;
	}
	if (shift && *p == 'i')
		p++;
	if (*p == 'B' || *p == 'b')
		p++;
	if (*p)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

static void vmsg(const char *fmt, va_list ap)
{
	char buf[1024];

	vsnprintf(buf, sizeof buf, fmt, ap);
	/* One write, so lines from several processes do not interleave. */
	dprintf(STDERR_FILENO, "ringcopy: %s\n", buf);
}

void rc_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
}

void rc_msg(const char *fmt, ...)
{
	va_list ap;

	if (rc_quiet)
		return;
	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
}

uint64_t rc_proc_start(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long start = 0;
	const char *p;
	ssize_t n;
	int fd, field;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: fields count from the last
	 * ')'.  Field 3 (state) follows it. */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	p++;
	if (p[0] == ' ' && (p[1] == 'Z' || p[1] == 'X'))
		return 0; /* a zombie holds no resources and does no work */
	for (field = 2; field < 22 && *p; p++)
		if (*p == ' ')
			field++;
	if (field != 22 || sscanf(p, "%llu", &start) != 1)
		return 0;
	return start;
}

bool rc_proc_alive(pid_t pid, uint64_t start)
{
	uint64_t s = rc_proc_start(pid);

	return s != 0 && s == start;
}

uint64_t rc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void rc_strlcpy(char *dst, const char *src, size_t len)
{
	if (!len)
		return;
	snprintf(dst, len, "%s", src ? src : "");
}

void rc_close_fds_except(const int *keep, size_t nkeep)
{
	int fds[1024];
	size_t n = 0, i, k;
	struct dirent *de;
	DIR *d;

	/* Collect first: closing while reading the directory would close
	 * the directory's own descriptor under it. */
	d = opendir("/proc/self/fd");
	if (!d)
		return;
	while ((de = readdir(d)) && n < sizeof fds / sizeof fds[0]) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);

		if (*end || end == de->d_name || fd == dirfd(d))
			continue;
		fds[n++] = (int)fd;
	}
	closedir(d);
	for (i = 0; i < n; i++) {
		for (k = 0; k < nkeep; k++)
			if (keep[k] == fds[i])
				break;
		if (k == nkeep)
			close(fds[i]);
	}
}

/* Bytes in the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s)
{
	size_t n, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0; /* also stops at the terminating NUL */
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

void rc_json_str(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	while (*s) {
		unsigned char c = (unsigned char)*s;
		size_t n = utf8_seq((const unsigned char *)s);

		if (n == 0) {
			/* A file name need not be UTF-8; JSON must be.
			 * Each byte that is not is U+FFFD. */
			fputs("\\ufffd", f);
			s++;
			continue;
		}
		if (n > 1) {
			fwrite(s, 1, n, f);
			s += n;
			continue;
		}
		switch (c) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\t': fputs("\\t", f); break;
		case '\r': fputs("\\r", f); break;
		default:
			if (c < 0x20 || c == 0x7f)
				fprintf(f, "\\u%04x", c);
			else
				fputc(c, f);
		}
		s++;
	}
	fputc('"', f);
}

/* Standard output is checked once, at the exit of the process that asked
 * (util-linux's close_stdout): a report lost to a full disk or a closed
 * descriptor is an error, exit 1, said on standard error.  A reader that
 * went away (EPIPE) chose not to read it.  Forked children that exit()
 * leave it to their parent. */
static pid_t stdout_owner;
static bool stdout_closed; /* at start: descriptor 1 is /dev/full */

void rc_stdout_was_closed(void)
{
	stdout_closed = true;
}

/* A pipe or socket whose reader is gone (the errno of the write that
 * failed is long lost when ferror() tells of it). */
static bool reader_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	struct stat st;

	return fstat(fd, &st) == 0 &&
	       (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) &&
	       poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP));
}

static void close_stdout(void)
{
	bool failed;
	int err = 0;

	if (getpid() != stdout_owner)
		return;
	failed = ferror(stdout);
	if (failed && reader_gone(STDOUT_FILENO))
		err = EPIPE;
	if (fflush(stdout) != 0) {
		failed = true;
		err = err ? err : errno;
	}
	if (fclose(stdout) != 0 && errno != EBADF) {
		failed = true;
		err = err ? err : errno;
	}
	if (failed && err != EPIPE) {
		if (stdout_closed)
			fprintf(stderr, "ringcopy: write error on standard output: it is closed\n");
		else if (err)
			fprintf(stderr, "ringcopy: write error on standard output: %s\n",
				strerror(err));
		else
			fprintf(stderr, "ringcopy: write error on standard output\n");
		_exit(1);
	}
}

void rc_check_stdout_at_exit(void)
{
	stdout_owner = getpid();
	atexit(close_stdout);
}

/* systemd's notify protocol (sd_notify(3)): one datagram of NAME=value
 * lines to the AF_UNIX socket NOTIFY_SOCKET names, an abstract one when
 * the name starts with '@'.  Written here rather than linked from
 * libsystemd: it is one sendto. */
void rc_notify_ready(const char *status)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char msg[1024];
	size_t n;
	int fd, m;

	if (!path || !*path)
		return;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path) {
		rc_err("NOTIFY_SOCKET %s: not a socket path: the service manager is not told we are ready",
		       path);
		goto out;
	}
	memcpy(sa.sun_path, path, n);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	m = snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
	if (m < 0)
		goto out;
	if ((size_t)m >= sizeof msg)
		m = sizeof msg - 1;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    sendto(fd, msg, (size_t)m, MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		rc_err("NOTIFY_SOCKET %s: %s: the service manager is not told we are ready",
		       path, strerror(errno));
	if (fd >= 0)
		close(fd);
out:
	unsetenv("NOTIFY_SOCKET");
}
