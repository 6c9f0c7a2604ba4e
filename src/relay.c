/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ringcopy - `ringcopy relay': one node of a relay chain (a fleet rollout).
 *
 *   ringcopy relay --listen ADDR --upstream URI[,URI...] --expect MANIFEST
 *                  [copy options] TARGET...
 *
 * The node relays the image on QEMU's block layer: a qemu-storage-daemon
 * opens a qcow2 overlay (in a private directory) whose backing file is the
 * upstream's NBD export, under the copy-on-read filter, and exports it
 * read-only.  Every block read through it is fetched from upstream once and
 * kept in the overlay, so the node's own copy and every node downstream of
 * it pull the image through one link.
 *
 * The relay process stands between QEMU and the network on both sides:
 *  - upstream: QEMU's NBD client connects to a Unix socket of the relay,
 *    which forwards the bytes to the current upstream URI.  When that
 *    upstream closes the connection or stops answering, the relay drops
 *    QEMU's connection and forwards the next one to the next URI; QEMU
 *    reconnects within its reconnect-delay and sends again the requests
 *    that were in flight, so the overlay keeps its blocks and the copy
 *    goes on (a dead neighbour is not a dead rollout).
 *  - downstream: the relay listens on ADDR and forwards each connection to
 *    the daemon's export, which tells it when downstream went idle.
 * With --skip-equal, the relay answers QEMU's upstream reads of the blocks
 * the TARGETs already hold as the manifest says from the TARGETs
 * (src/nbdtap.c), so that only the changed blocks come from upstream (a
 * delta rollout).
 * The node's own copy is a forked `ringcopy' invocation (rc_cmd_run) of
 * the daemon's export to the TARGETs, with --expect: nothing upstream is
 * trusted, every block is proved.  The relay exits once its copy is done
 * and its downstream has been idle for --linger seconds (or on SIGTERM,
 * SIGINT, SIGHUP), with the copy's exit status.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ringcopy/cli.h"
#include "ringcopy/nbdtap.h"
#include "ringcopy/core.h"
#include "ringcopy/options.h"
#include "ringcopy/ringproto.h"
#include "ringcopy/util.h"
#include "ringcopy/verify.h"

#define UPSTREAM_MAX 16
#define OPTS_MAX     64
#define PAIRS_MAX    64
#define XFER_BUF     (256 * 1024)
/* Once an upstream streams (BATCH_AFTER bytes in), its answers are read
 * BATCH_LOWAT bytes at a time (SO_RCVLOWAT), not packet by packet as they
 * trickle in from a shaped link: every system call of the relay, and of
 * QEMU behind it, costs CPU (doc/design.md, the relay chain's CPU).  A
 * tail below it (the stream paused) is read once nothing has come for
 * BATCH_STALL_MS (fill_poll). */
#define BATCH_LOWAT     (64 * 1024)
#define BATCH_AFTER     (1024 * 1024)
#define BATCH_STALL_MS  20
/* A connection refused is tried again after this long: the daemon's
 * export (a local socket that appears once the daemon has opened its
 * upstream), and an upstream (a node whose relay is still starting).  A
 * chain starts hop by hop, each export waiting for the one above it, and
 * in a chain of links of one speed a node never catches up the time it
 * lost at the start: each retry's wait is paid by every node below
 * (doc/design.md, the chain's start). */
#define RETRY_EXPORT_MS 10
#define RETRY_UP_MS     50
#define NBD_PORT     "10809"
/* How long QEMU keeps a request waiting for an upstream connection: the
 * relay finds the next upstream well within it. */
#define RECONNECT_DELAY_S 60

/* An NBD server: a TCP address or a Unix socket. */
struct endpoint {
	char text[256];                 /* as given, for messages */
	bool unix_sock;
	struct sockaddr_storage sa;
	socklen_t salen;
};

/* Bytes forwarded between two sockets, both ways. */
struct pair {
	int a, b;                       /* a accepted, b connected by us */
	bool up;                        /* a is QEMU's upstream client */
	bool connecting;                /* b's connect() is under way */
	char *buf[2];                   /* [0] a->b, [1] b->a */
	size_t off[2], len[2];
	uint64_t since;                 /* b's connect began (ns) */
	uint64_t last_rx;               /* b answered last (ns) */
	bool owed;                      /* sent to b since it last answered */
	bool batch;                     /* b is TCP with SO_RCVLOWAT */
	uint64_t got;                   /* bytes b sent, before batch */
	bool copy;                      /* a is the node's own copy */
	uint64_t exact;                 /* the size b's handshake is to say */
	int hs;                         /* where b's handshake is (hs_scan) */
	uint32_t hs_n, hs_len;
	bool hs_info;
	bool hs_go;                     /* the server acknowledged NBD_OPT_GO */
	bool hs_opaque;                 /* ... or an option after which the
					 * tap cannot read the stream */
	unsigned char hs_hdr[20];
	struct rc_tap *tap;             /* up: reads the disks answer */
	const char *broke;              /* why b's stream was refused */
	int pipe[2];                    /* b->a without a copy (splice):
					 * once made, every later reply
					 * passes through it, and len[1]
					 * bytes are in it */
	bool nopipe;                    /* none to be made: buf[1] */
};

struct relay {
	struct endpoint listen;
	struct endpoint up[UPSTREAM_MAX];
	int nup;
	int cur;                        /* the upstream used now */
	uint64_t cur_since;             /* its first failure in a row (ns) */
	char export[128];               /* the export name every URI names */
	uint32_t linger_ms;
	uint32_t timeout_ms;            /* --connect-timeout */
	const char *expect;
	uint64_t image_size;
	char *copt[OPTS_MAX];           /* the copy's options */
	int ncopt;
	char **targets;
	int ntargets;

	char dir[256];                  /* private directory */
	char overlay[300], up_sock[300], exp_sock[300], log[300];
	char exact_sock[300];
	int lfd, upfd, sigfd, cfd;      /* cfd: the copy's, exact_sock */
	struct pair pairs[PAIRS_MAX];
	int npairs;
	pid_t qsd, copy;
	int copy_status;
	bool copy_done, stopping, listen_made;
	bool skip_equal;                /* the TARGETs answer upstream
					 * reads of blocks they hold */
	bool no_seed;                   /* --no-seed: they do not (every
					 * node holds the old image: the
					 * copy reads only what its disks
					 * lack) */
	struct rc_disks *disks;         /* the TARGETs, read for that */
	bool tap_off;                   /* they answer nothing more */
	unsigned char *scratch;         /* QEMU's requests, as read */
	uint64_t idle_since;            /* downstream's last byte (ns) */
	uint64_t bytes_up, bytes_down;
};

static int relay_refuse(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int relay_refuse(const char *fmt, ...)
{
	char buf[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	rc_err("relay: %s", buf);
	return RC_EXIT_REFUSED;
}

/* --- addresses ------------------------------------------------------- */

static int resolve(struct endpoint *e, const char *host, const char *port,
		   bool passive)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = passive ? AI_PASSIVE : 0 };
	struct addrinfo *ai;
	int r;

	r = getaddrinfo(*host ? host : NULL, port, &hints, &ai);
	if (r)
		return -1;
	memcpy(&e->sa, ai->ai_addr, ai->ai_addrlen);
	e->salen = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static int unix_endpoint(struct endpoint *e, const char *path)
{
	struct sockaddr_un *su = (struct sockaddr_un *)&e->sa;

	if (strlen(path) >= sizeof su->sun_path)
		return -1;
	memset(su, 0, sizeof *su);
	su->sun_family = AF_UNIX;
	strcpy(su->sun_path, path);
	e->salen = sizeof *su;
	e->unix_sock = true;
	return 0;
}

/* HOST, HOST:PORT, [V6]:PORT, or a Unix socket's absolute path. */
static int parse_listen(struct endpoint *e, const char *s)
{
	char host[256], port[16] = NBD_PORT;
	const char *colon;

	rc_strlcpy(e->text, s, sizeof e->text);
	if (*s == '/')
		return unix_endpoint(e, s);
	if (*s == '[') {
		const char *end = strchr(s, ']');

		if (!end || (size_t)(end - s - 1) >= sizeof host)
			return -1;
		memcpy(host, s + 1, end - s - 1);
		host[end - s - 1] = 0;
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] && !colon)
			return -1;
	} else {
		colon = strrchr(s, ':');
		if ((size_t)(colon ? colon - s : (ptrdiff_t)strlen(s)) >=
		    sizeof host)
			return -1;
		snprintf(host, sizeof host, "%.*s",
			 (int)(colon ? colon - s : (ptrdiff_t)strlen(s)), s);
	}
	if (colon) {
		if (!colon[1] || strlen(colon + 1) >= sizeof port ||
		    strspn(colon + 1, "0123456789") != strlen(colon + 1))
			return -1;
		strcpy(port, colon + 1);
	}
	return resolve(e, host, port, true);
}

/* An export name QEMU's options and a URI carry without escaping. */
static bool plain_name(const char *s)
{
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-/", *s))
			return false;
	return true;
}

/* nbd://HOST[:PORT][/EXPORT] or nbd+unix:///[EXPORT]?socket=PATH; the
 * export name goes to name. */
static int parse_uri(struct endpoint *e, const char *s, char *name,
		     size_t namelen, const char **why)
{
	const char *p, *q;

	rc_strlcpy(e->text, s, sizeof e->text);
	*why = "want nbd://HOST[:PORT][/EXPORT] or nbd+unix:///[EXPORT]?socket=PATH";
	if (!strncmp(s, "nbd+unix://", 11)) {
		p = s + 11;
		if (*p != '/')
			return -1;
		q = strstr(p, "?socket=");
		if (!q || (size_t)(q - p - 1) >= namelen)
			return -1;
		snprintf(name, namelen, "%.*s", (int)(q - p - 1), p + 1);
		if (q[8] != '/' || strchr(q + 8, '&')) {
			*why = "the socket must be an absolute path, and no other query is understood";
			return -1;
		}
		if (unix_endpoint(e, q + 8) < 0) {
			*why = "the socket's path is too long";
			return -1;
		}
	} else if (!strncmp(s, "nbd://", 6)) {
		char listen[300];

		p = s + 6;
		q = strchr(p, '/');
		snprintf(listen, sizeof listen, "%.*s",
			 (int)(q ? q - p : (ptrdiff_t)strlen(p)), p);
		rc_strlcpy(name, q ? q + 1 : "", namelen);
		if (!*listen || strchr(listen, '?') || strchr(name, '?'))
			return -1;
		if (parse_listen(e, listen) < 0 || e->unix_sock) {
			*why = "cannot resolve its host and port";
			return -1;
		}
	} else {
		return -1;
	}
	if (!plain_name(name)) {
		*why = "an export name of letters, digits and ._-/ only";
		return -1;
	}
	rc_strlcpy(e->text, s, sizeof e->text);
	return 0;
}

/* --- the command line ------------------------------------------------ */

static void usage_relay(FILE *f)
{
	fputs("Usage: ringcopy relay --listen ADDR --upstream URI[,URI...]\n"
	      "                      --expect MANIFEST [options] TARGET...\n"
	      "\n"
	      "One node of a relay chain: relay the image of the first URI\n"
	      "that answers (the node before this one, then the next URIs when\n"
	      "it dies) through QEMU's copy-on-read block layer, export it\n"
	      "read-only on ADDR to the next node, and copy it to every TARGET,\n"
	      "proved block by block against MANIFEST.  The relay stays until\n"
	      "its own copy is done and nothing has been read from ADDR for\n"
	      "--linger seconds.\n"
	      "\n"
	      "Options:\n"
	      "     --listen ADDR      HOST[:PORT] (port 10809) or a socket path\n"
	      "     --upstream URIS    nbd://HOST[:PORT][/EXPORT] or\n"
	      "                        nbd+unix:///[EXPORT]?socket=PATH, in order\n"
	      "     --expect MANIFEST  the golden manifest (required)\n"
	      "     --linger SECONDS   downstream idle this long ends it (default 10)\n"
	      "     --connect-timeout SECONDS  an upstream silent this long is dead (default 10)\n"
	      " -b, --block-size, --buffer, --rate, --sparse, --force, --no-verify,\n"
	      "     --stall-timeout, --manifest, --skip-equal, --start-at BLOCK,\n"
	      "     --compress-level, --progress, --json  the copy's, as for a copy\n"
	      "     --skip-equal       also: the blocks the TARGETs hold as\n"
	      "                        MANIFEST says are not asked upstream (a delta)\n"
	      "     --no-seed          with --skip-equal: only the copy's own reads\n"
	      "                        skip them (every node holds the old image)\n"
	      " -q, --quiet            print only errors\n"
	      "See ringcopy(1), RELAY.\n",
	      f);
}

static int parse_upstreams(struct relay *rl, char *list)
{
	char *save = NULL, *tok, name[128];
	const char *why;

	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (rl->nup == UPSTREAM_MAX)
			return rc_usage_error("relay", "--upstream: at most %d URIs",
					      UPSTREAM_MAX);
		if (parse_uri(&rl->up[rl->nup], tok, name, sizeof name,
			      &why) < 0)
			return rc_usage_error("relay", "--upstream '%s': %s",
					      tok, why);
		if (rl->nup && strcmp(name, rl->export))
			return rc_usage_error("relay", "--upstream '%s' names the export '%s', '%s' names '%s': every upstream must serve the same export (the relay reconnects QEMU's client to it as it is)",
					      tok, name, rl->up[0].text,
					      rl->export);
		rc_strlcpy(rl->export, name, sizeof rl->export);
		rl->nup++;
	}
	if (!rl->nup)
		return rc_usage_error("relay", "--upstream needs at least one URI");
	return 0;
}

/* The relay's own handling of an option of the table, before it is
 * forwarded to the node's copy where the table says so: 0 to go on, 1
 * after --help, or the refusal's exit status. */
static int relay_option(struct relay *rl, const struct rc_option *e,
			const char **listen, char **upstream)
{
	switch (rc_opt_id(e)) {
	case RC_OPT_LISTEN:
		*listen = optarg;
		return 0;
	case RC_OPT_UPSTREAM:
		*upstream = optarg;
		return 0;
	case RC_OPT_LINGER: /* the relay's own: downstream idle */
		return rc_opt_seconds("relay", e, optarg, &rl->linger_ms);
	case RC_OPT_CONNECT_TIMEOUT:
		if (rc_opt_seconds("relay", e, optarg, &rl->timeout_ms))
			return RC_EXIT_REFUSED;
		break;
	case RC_OPT_EXPECT:
		if (!*optarg)
			return rc_usage_error("relay", "--expect needs a manifest file name");
		rl->expect = optarg;
		break;
	case RC_OPT_START_AT:
		if (!strcmp(optarg, "random"))
			return rc_usage_error("relay", "--start-at random refused: a chain relays the blocks in the order the first node reads them, and a random start makes each node fetch other blocks from upstream than the node after it asks for (use --start-at BLOCK, or none)");
		break;
	case RC_OPT_SKIP_EQUAL:
		rl->skip_equal = true;
		break;
	case RC_OPT_NO_SEED: /* the relay's own */
		rl->no_seed = true;
		return 0;
	case RC_OPT_QUIET:
		rc_quiet = true;
		break;
	case RC_OPT_HELP:
		usage_relay(stdout);
		return 1;
	default:
		break;
	}
	if (!(e->fwd & RC_FWD_RELAY))
		return rc_usage_error("relay", "option '%s' is not handled",
				      e->flag);
	return rc_opt_forward("relay", e, optarg, rl->copt, &rl->ncopt,
			      OPTS_MAX);
}

static int parse_relay(int argc, char **argv, struct relay *rl)
{
	struct option longopts[RC_OPT_COUNT + 1];
	char shortopts[2 * RC_OPT_COUNT + 2];
	const struct rc_option *e;
	const char *listen = NULL;
	char *upstream = NULL;
	int c, rc = 0;

	rl->linger_ms = 10000;
	rl->timeout_ms = 10000;
	rc_opt_getopt(RC_CMD_RELAY, longopts, shortopts);
	optind = 1;
	opterr = 0;
	while (rc == 0 &&
	       (c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		e = rc_opt_entry(c);
		if (!e || !(e->cmds & RC_CMD_RELAY))
			return rc_bad_option("relay", c, argv);
		rc = relay_option(rl, e, &listen, &upstream);
		if (rc == 1)
			return RC_EXIT_OK; /* --help */
	}
	if (rc)
		return rc;
	if (!listen)
		return rc_usage_error("relay", "--listen ADDR is needed: the address the next node reads this one's export from");
	if (!upstream)
		return rc_usage_error("relay", "--upstream URI is needed: the node before this one (then the others to try, in order)");
	if (!rl->expect)
		return rc_usage_error("relay", "--expect MANIFEST is needed: a node trusts nothing upstream, every block it relays and writes is proved against the golden manifest");
	if (argc - optind < 1)
		return rc_usage_error("relay", "missing TARGET");
	if (argc - optind > (int)RC_TARGETS_MAX)
		return rc_usage_error("relay", "%d targets: at most %u per invocation",
				      argc - optind, RC_TARGETS_MAX);
	if (parse_listen(&rl->listen, listen) < 0)
		return rc_usage_error("relay", "--listen '%s': want HOST[:PORT], [V6ADDR][:PORT] or a socket's absolute path",
				      listen);
	rc = parse_upstreams(rl, upstream);
	if (rc)
		return rc;
	rl->targets = argv + optind;
	rl->ntargets = argc - optind;
	return -1;
}

/* --- sockets --------------------------------------------------------- */

static int listen_on(struct endpoint *e, char *err, size_t errlen)
{
	int fd, one = 1;

	fd = socket(e->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (!e->unix_sock)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&e->sa, e->salen) < 0 ||
	    listen(fd, 64) < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int connect_to(const struct endpoint *e, bool *pending)
{
	int fd, one = 1;

	fd = socket(e->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
	if (fd < 0)
		return -1;
	if (!e->unix_sock)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	*pending = false;
	if (connect(fd, (const struct sockaddr *)&e->sa, e->salen) < 0) {
		if (errno != EINPROGRESS) {
			close(fd);
			return -1;
		}
		*pending = true;
	}
	return fd;
}

/* Is fd a Unix socket (no SO_RCVLOWAT batching there)? */
static bool is_unix_sock(int fd)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof ss;

	return getsockname(fd, (struct sockaddr *)&ss, &l) == 0 &&
	       ss.ss_family == AF_UNIX;
}

/* Pair p's replies pass through no pipe from now on. */
static void pipe_off(struct pair *p)
{
	if (p->pipe[0] >= 0) {
		close(p->pipe[0]);
		close(p->pipe[1]);
	}
	p->pipe[0] = p->pipe[1] = -1;
	p->nopipe = true;
}

static void pair_close(struct relay *rl, int i)
{
	struct pair *p = &rl->pairs[i];

	if (p->a >= 0)
		close(p->a);
	if (p->b >= 0)
		close(p->b);
	pipe_off(p);
	free(p->buf[0]);
	free(p->buf[1]);
	if (p->tap) {
		rc_tap_free(p->tap);
		free(p->tap);
	}
	rl->pairs[i] = rl->pairs[--rl->npairs];
}

/* The upstream connection of pair i failed (said how): the next one goes
 * to the next URI, QEMU reconnects and sends its requests again. */
static void upstream_failed(struct relay *rl, int i, const char *how)
{
	int next = (rl->cur + 1) % rl->nup;

	/* Once the copy has read every block, the overlay holds the image
	 * and nothing is asked upstream again: an upstream that ends then
	 * is one that lingered long enough, not news. */
	if (!rl->copy_done || rl->copy_status != RC_EXIT_OK)
		rc_msg("relay: upstream %s %s; QEMU reconnects through %s",
		       rl->up[rl->cur].text, how, rl->up[next].text);
	rl->cur = next;
	rl->cur_since = 0;
	pair_close(rl, i);
}

/* Pair p's b, a TCP upstream, wakes the relay BATCH_LOWAT bytes at a
 * time. */
static void batch_set(struct pair *p)
{
	int lowat = BATCH_LOWAT;

	if (!is_unix_sock(p->b) &&
	    setsockopt(p->b, SOL_SOCKET, SO_RCVLOWAT, &lowat,
		       sizeof lowat) == 0)
		p->batch = true;
}

/* Connect pair p's b to the current upstream; false when it cannot be
 * tried now (the next attempt is made by the loop). */
static bool upstream_connect(struct relay *rl, struct pair *p)
{
	uint64_t now = rc_now_ns();

	if (!rl->cur_since)
		rl->cur_since = now;
	if (now - rl->cur_since > (uint64_t)rl->timeout_ms * 1000000) {
		int next = (rl->cur + 1) % rl->nup;

		if (rl->nup > 1 &&
		    (!rl->copy_done || rl->copy_status != RC_EXIT_OK))
			rc_msg("relay: upstream %s did not answer in %u s; trying %s",
			       rl->up[rl->cur].text, rl->timeout_ms / 1000,
			       rl->up[next].text);
		rl->cur = next;
		rl->cur_since = now;
	}
	p->b = connect_to(&rl->up[rl->cur], &p->connecting);
	p->batch = false;
	p->got = 0;
	p->since = now;
	p->last_rx = now;
	/* An NBD server speaks first: one that says nothing for
	 * --connect-timeout is as dead as one that stops answering. */
	p->owed = true;
	return p->b >= 0;
}

static struct pair *pair_new(struct relay *rl, int a, bool up)
{
	struct pair *p;

	if (rl->npairs == PAIRS_MAX) {
		close(a);
		return NULL;
	}
	p = &rl->pairs[rl->npairs];
	memset(p, 0, sizeof *p);
	p->a = a;
	p->b = -1;
	p->pipe[0] = p->pipe[1] = -1;
	p->up = up;
	p->buf[0] = malloc(XFER_BUF);
	p->buf[1] = malloc(XFER_BUF);
	if (!p->buf[0] || !p->buf[1]) {
		free(p->buf[0]);
		free(p->buf[1]);
		close(a);
		return NULL;
	}
	rl->npairs++;
	return p;
}

/* The server's side of an NBD handshake (fixed newstyle), as far as the
 * size of the export: the greeting, then option replies, until the
 * acknowledgement of NBD_OPT_GO starts the transmission. */
enum { HS_GREET, HS_HDR, HS_DATA, HS_DONE };
#define NBD_REP_MAGIC 0x0003e889045565a9ULL
#define NBD_OPT_GO    7
#define NBD_REP_ACK   1
#define NBD_REP_INFO  3
#define NBD_OPT_STRUCTURED_REPLY 8
#define NBD_OPT_STARTTLS 5
#define NBD_OPT_EXTENDED_HEADERS 11

static uint32_t be32(const unsigned char *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	       (uint32_t)b[2] << 8 | b[3];
}

/* The len bytes at buf come from pair p's server (its b): an
 * NBD_INFO_EXPORT reply's size is replaced by p->exact (when set) as it
 * passes, and a tap learns whether replies are structured.  An answer to
 * NBD_OPT_EXPORT_NAME (no reply header; neither QEMU nor libnbd send that
 * option to a fixed-newstyle server) is passed as it is.  Returns how
 * many of the bytes are the handshake's. */
static size_t hs_scan(struct pair *p, unsigned char *buf, size_t len)
{
	static const unsigned char magic[8] = {
		NBD_REP_MAGIC >> 56 & 0xff, NBD_REP_MAGIC >> 48 & 0xff,
		NBD_REP_MAGIC >> 40 & 0xff, NBD_REP_MAGIC >> 32 & 0xff,
		NBD_REP_MAGIC >> 24 & 0xff, NBD_REP_MAGIC >> 16 & 0xff,
		NBD_REP_MAGIC >> 8 & 0xff, NBD_REP_MAGIC & 0xff,
	};
	size_t i;

	for (i = 0; i < len && p->hs != HS_DONE; i++) {
		switch (p->hs) {
		case HS_GREET: /* "NBDMAGIC", "IHAVEOPT", 2 bytes of flags */
			if (++p->hs_n == 18) {
				p->hs = HS_HDR;
				p->hs_n = 0;
			}
			break;
		case HS_HDR: /* magic, option, reply type, length */
			p->hs_hdr[p->hs_n++] = buf[i];
			if (p->hs_n == 8 && memcmp(p->hs_hdr, magic, 8))
				p->hs = HS_DONE;
			if (p->hs_n < 20)
				break;
			p->hs_len = be32(p->hs_hdr + 16);
			p->hs_info = be32(p->hs_hdr + 12) == NBD_REP_INFO &&
				     p->hs_len == 12;
			p->hs_n = 0;
			if (p->tap && be32(p->hs_hdr + 12) == NBD_REP_ACK &&
			    be32(p->hs_hdr + 8) == NBD_OPT_STRUCTURED_REPLY)
				p->tap->structured = true;
			/* TLS records, 32-byte requests: not for the tap. */
			if (be32(p->hs_hdr + 12) == NBD_REP_ACK &&
			    (be32(p->hs_hdr + 8) == NBD_OPT_STARTTLS ||
			     be32(p->hs_hdr + 8) == NBD_OPT_EXTENDED_HEADERS))
				p->hs_opaque = true;
			if (be32(p->hs_hdr + 12) == NBD_REP_ACK &&
			    be32(p->hs_hdr + 8) == NBD_OPT_GO) {
				p->hs = HS_DONE;
				p->hs_go = true;
			}
			else if (p->hs_len)
				p->hs = HS_DATA;
			break;
		case HS_DATA: /* NBD_INFO_EXPORT: 0 (2 bytes), size, flags */
			if (p->hs_n < 2 && buf[i])
				p->hs_info = false;
			if (p->hs_info && p->exact && p->hs_n >= 2 &&
			    p->hs_n < 10)
				buf[i] = (unsigned char)(p->exact >>
							 (8 * (9 - p->hs_n)));
			if (++p->hs_n == p->hs_len) {
				p->hs = HS_HDR;
				p->hs_n = 0;
			}
			break;
		}
	}
	return i;
}

/* Connect downstream pair p to the daemon's export: a node that asks
 * before the daemon exports (it is still opening its upstream) waits,
 * the loop tries again. */
static void export_connect(struct relay *rl, struct pair *p)
{
	struct endpoint e;

	unix_endpoint(&e, rl->exp_sock);
	p->b = connect_to(&e, &p->connecting);
	p->since = rc_now_ns();
	/* QEMU exports whole 512-byte sectors: the image's own size is
	 * said instead, as the origin says it. */
	p->exact = rl->image_size % 512 ? rl->image_size : 0;
	p->hs = HS_GREET;
	p->hs_n = 0;
}

static int tap_new(struct relay *rl, struct pair *p);

static void accept_on(struct relay *rl, int lfd, bool up, bool copy)
{
	struct pair *p;
	int fd;

	while ((fd = accept4(lfd, NULL, NULL,
			     SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		p = pair_new(rl, fd, up);
		if (!p)
			continue;
		if (up) {
			if (rl->disks && !rl->tap_off && tap_new(rl, p) < 0) {
				pair_close(rl, rl->npairs - 1);
				continue;
			}
			upstream_connect(rl, p);
			continue;
		}
		export_connect(rl, p);
		p->copy = copy;
		if (!copy)
			rl->idle_since = rc_now_ns();
	}
}

/* Upstream pair p reads QEMU's requests: the disks answer what they
 * hold (hs_scan tells the tap when the handshake ends). */
static int tap_new(struct relay *rl, struct pair *p)
{
	p->tap = malloc(sizeof *p->tap);
	if (!p->tap || rc_tap_init(p->tap, rl->disks, XFER_BUF) < 0) {
		free(p->tap);
		p->tap = NULL;
		return -1;
	}
	return 0;
}

/* Read what a can send into p->buf[0], through the tap once the
 * handshake is over: the bytes for b in *moved. */
static ssize_t read_client(struct relay *rl, struct pair *p,
			   uint64_t *moved)
{
	size_t out;
	ssize_t r;

	if (!p->tap || p->hs != HS_DONE) {
		r = read(p->a, p->buf[0], XFER_BUF);
		if (r > 0) {
			p->len[0] = (size_t)r;
			*moved += (uint64_t)r;
		}
		return r;
	}
	/* Room for a request's header held from the last read. */
	r = read(p->a, rl->scratch, XFER_BUF - 28);
	if (r <= 0)
		return r;
	if (rc_tap_client(p->tap, rl->scratch, (size_t)r,
			  (unsigned char *)p->buf[0], &out) < 0) {
		p->broke = "QEMU sent what is not an NBD request";
		errno = EPROTO;
		return -1;
	}
	p->len[0] = out;
	*moved += out;
	return r;
}

/* Read what b can send into p->buf[1]: the handshake scanned, the
 * replies parsed for the tap.  The bytes in *moved. */
static ssize_t read_server(struct pair *p, uint64_t *moved)
{
	size_t from = 0;
	ssize_t r = read(p->b, p->buf[1], XFER_BUF);

	if (r <= 0)
		return r;
	p->len[1] = (size_t)r;
	*moved += (uint64_t)r;
	if ((p->exact || p->tap) && p->hs != HS_DONE) {
		from = hs_scan(p, (unsigned char *)p->buf[1], (size_t)r);
		if (p->hs != HS_DONE)
			return r;
		/* A handshake that did not end in NBD_OPT_GO's ACK (an old
		 * server's NBD_OPT_EXPORT_NAME), or that chose TLS or
		 * extended headers: the bytes pass as they are. */
		if (p->tap && (!p->hs_go || p->hs_opaque)) {
			rc_msg("relay: the upstream's NBD connection is not one the node's disks can answer on; upstream sends every block");
			rc_tap_free(p->tap);
			free(p->tap);
			p->tap = NULL;
		}
	}
	if (p->tap && rc_tap_server(p->tap, (unsigned char *)p->buf[1], from,
				    (size_t)r) < 0) {
		p->broke = "the upstream sent what is not an NBD reply to QEMU's requests";
		errno = EPROTO;
		return -1;
	}
	return r;
}

/* May b's bytes go to a through a pipe, never read into the relay?  Once
 * nothing needs to read them (no tap, the handshake's size said), and a
 * pipe of XFER_BUF bytes can be made: splice(2) then moves the pages of
 * the upstream's replies to QEMU, and of QEMU's to the next node, with
 * no copy through this process (the relay chain's CPU, doc/design.md). */
static bool splice_ok(struct pair *p)
{
	if (p->tap || (p->exact && p->hs != HS_DONE) || p->nopipe)
		return false;
	if (p->pipe[0] >= 0)
		return true;
	if (pipe2(p->pipe, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    fcntl(p->pipe[1], F_SETPIPE_SZ, XFER_BUF) < 0) {
		pipe_off(p);
		return false;
	}
	return true;
}

/* What b can send, into the pipe. */
static ssize_t read_spliced(struct pair *p, uint64_t *moved)
{
	ssize_t r = splice(p->b, NULL, p->pipe[1], NULL, XFER_BUF,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

	if (r > 0) {
		p->len[1] = (size_t)r;
		*moved += (uint64_t)r;
	} else if (r < 0 && errno == EINVAL) {
		/* A socket this kernel cannot splice from (the pipe is
		 * empty): read it. */
		pipe_off(p);
		return read_server(p, moved);
	}
	return r;
}

/* The pipe's bytes, to a. */
static ssize_t write_spliced(struct pair *p)
{
	ssize_t r = splice(p->pipe[0], NULL, p->a, NULL, p->len[1],
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

	if (r > 0)
		p->len[1] -= (size_t)r;
	return r;
}

/* Has pair p bytes for a that can go now? */
static bool client_owed(struct pair *p)
{
	return p->len[1] ||
	       (p->tap && rc_tap_queued(p->tap) &&
		rc_tap_between(p->tap, p->off[1], p->off[1] + p->len[1]));
}

/* Write to a what the server sent and what the disks answered, never
 * one inside the other. */
static ssize_t write_client(struct pair *p)
{
	struct rc_tap *t = p->tap;
	size_t used = p->off[1] + p->len[1], n;
	ssize_t r = 0;

	for (;;) {
		if (t && rc_tap_queued(t) &&
		    rc_tap_between(t, p->off[1], used)) {
			const unsigned char *q = rc_tap_next(t, &n);

			r = write(p->a, q, n);
			if (r <= 0)
				break;
			rc_tap_sent(t, (size_t)r);
			if ((size_t)r < n)
				break;
			continue;
		}
		n = t ? rc_tap_span(t, p->off[1], used) : p->len[1];
		if (!n)
			break;
		r = write(p->a, p->buf[1] + p->off[1], n);
		if (r <= 0)
			break;
		p->off[1] += (size_t)r;
		p->len[1] -= (size_t)r;
		if ((size_t)r < n)
			break;
	}
	return r;
}

/* Move what is readable from one side to the other: -1 when a side
 * closed or failed (which one in *which: 0 a, 1 b). */
static int pump(struct relay *rl, struct pair *p, int dir, short rev,
		int *which, uint64_t *moved)
{
	ssize_t r;

	if (p->len[dir] == 0 && (rev & (POLLIN | POLLHUP | POLLERR))) {
		if (dir)
			r = splice_ok(p) ? read_spliced(p, moved)
					 : read_server(p, moved);
		else
			r = read_client(rl, p, moved);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
			*which = dir;
			return -1;
		}
		if (r > 0)
			p->off[dir] = 0;
	}
	/* The sockets do not block: try whenever there is data. */
	if (dir)
		r = p->pipe[0] >= 0 ? (p->len[1] ? write_spliced(p) : 0)
				    : client_owed(p) ? write_client(p) : 0;
	else if (p->len[0]) {
		r = write(p->b, p->buf[0] + p->off[0], p->len[0]);
		if (r > 0) {
			p->off[0] += (size_t)r;
			p->len[0] -= (size_t)r;
		}
	} else
		r = 0;
	if (r < 0 && errno != EAGAIN && errno != EINTR) {
		*which = !dir;
		return -1;
	}
	return 0;
}

/* --- QEMU ------------------------------------------------------------ */

/* s as a JSON string's contents (quotes and backslashes escaped). */
static void json_esc(char *out, size_t len, const char *s)
{
	size_t o = 0;

	for (; *s && o + 3 < len; s++) {
		if (*s == '"' || *s == '\\')
			out[o++] = '\\';
		out[o++] = *s;
	}
	out[o] = 0;
}

static int run_wait(char *const argv[])
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int nul = open("/dev/null", O_WRONLY);

		if (nul >= 0)
			dup2(nul, 1);
		execvp(argv[0], argv);
		rc_err("relay: cannot run %s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int make_overlay(struct relay *rl)
{
	char size[32];
	char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2",
			 rl->overlay, size, NULL };

	/* qcow2 counts 512-byte sectors; a tail past the image is never
	 * read by the copy. */
	snprintf(size, sizeof size, "%llu",
		 (unsigned long long)((rl->image_size + 511) & ~511ULL));
	if (run_wait(argv) != 0) {
		rc_err("relay: qemu-img could not create the overlay %s (is qemu-utils installed?)",
		       rl->overlay);
		return -1;
	}
	return 0;
}

static pid_t spawn_qsd(struct relay *rl, char *const argv[],
		       const sigset_t *old);

/* --nbd-server's argument for a Unix socket: it takes key=value only, so
 * a comma is doubled. */
static void server_arg(char *out, size_t len, const char *sock)
{
	char esc[400];
	size_t i, o = 0;

	for (i = 0; sock[i] && o + 3 < sizeof esc; i++) {
		if (sock[i] == ',')
			esc[o++] = ',';
		esc[o++] = sock[i];
	}
	esc[o] = 0;
	snprintf(out, len, "addr.type=unix,addr.path=%s", esc);
}

static pid_t start_qsd(struct relay *rl, const sigset_t *old)
{
	char up[700], ov[700], srv[700], exp[300], esc[400];
	char *argv[16];
	int n = 0;

	json_esc(esc, sizeof esc, rl->up_sock);
	snprintf(up, sizeof up,
		 "{\"driver\":\"nbd\",\"node-name\":\"upstream\",\"read-only\":true,"
		 "\"server\":{\"type\":\"unix\",\"path\":\"%s\"},"
		 "\"export\":\"%s\",\"reconnect-delay\":%d,\"open-timeout\":%d}",
		 esc, rl->export, RECONNECT_DELAY_S, RECONNECT_DELAY_S);
	json_esc(esc, sizeof esc, rl->overlay);
	snprintf(ov, sizeof ov,
		 "{\"driver\":\"qcow2\",\"node-name\":\"overlay\","
		 "\"file\":{\"driver\":\"file\",\"filename\":\"%s\"},"
		 "\"backing\":\"upstream\"}", esc);
	server_arg(srv, sizeof srv, rl->exp_sock);
	snprintf(exp, sizeof exp,
		 "{\"type\":\"nbd\",\"id\":\"relay\",\"node-name\":\"cor\","
		 "\"name\":\"%s\",\"writable\":false}", rl->export);
	argv[n++] = "qemu-storage-daemon";
	argv[n++] = "--blockdev";
	argv[n++] = up;
	argv[n++] = "--blockdev";
	argv[n++] = ov;
	argv[n++] = "--blockdev";
	argv[n++] = "{\"driver\":\"copy-on-read\",\"node-name\":\"cor\",\"file\":\"overlay\"}";
	argv[n++] = "--nbd-server";
	argv[n++] = srv;
	argv[n++] = "--export";
	argv[n++] = exp;
	argv[n] = NULL;
	return spawn_qsd(rl, argv, old);
}

/* Start qemu-storage-daemon with argv, its messages to the log. */
static pid_t spawn_qsd(struct relay *rl, char *const argv[],
		       const sigset_t *old)
{
	pid_t self = getpid(), pid;

	pid = fork();
	if (pid != 0)
		return pid;
	/* A relay that dies (even SIGKILL) takes its daemon along. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != self)
		_exit(127);
	sigprocmask(SIG_SETMASK, old, NULL);
	signal(SIGINT, SIG_IGN); /* the relay ends it, after the copy */
	{
		int nul = open("/dev/null", O_RDWR);
		/* Its messages (a client that went away as the copy was
		 * interrupted...) are said only if it fails. */
		int log = open(rl->log, O_WRONLY | O_CREAT | O_EXCL |
						O_NOFOLLOW, 0600);

		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
		}
		if (log >= 0)
			dup2(log, 2);
	}
	execvp(argv[0], argv);
	rc_err("relay: cannot run qemu-storage-daemon (is qemu-system-common installed?): %s",
	       strerror(errno));
	_exit(127);
}

/* --- the node's copy ------------------------------------------------- */

static pid_t start_copy(struct relay *rl, const sigset_t *old)
{
	char *argv[OPTS_MAX + RC_TARGETS_MAX + 8];
	char src[700];
	struct rc_run run;
	pid_t self = getpid(), pid;
	int argc = 0, i;

	/* Through the relay when the export is longer than the image. */
	snprintf(src, sizeof src, "nbd+unix:///%s?socket=%s", rl->export,
		 rl->cfd >= 0 ? rl->exact_sock : rl->exp_sock);
	argv[argc++] = "ringcopy";
	for (i = 0; i < rl->ncopt; i++)
		argv[argc++] = rl->copt[i];
	argv[argc++] = "--";
	argv[argc++] = src;
	for (i = 0; i < rl->ntargets; i++)
		argv[argc++] = rl->targets[i];
	argv[argc] = NULL;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid != 0)
		return pid;
	/* The relay's death (even SIGKILL) interrupts the copy. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != self)
		_exit(RC_EXIT_FAILED);
	close(rl->lfd);
	close(rl->upfd);
	close(rl->sigfd);
	if (rl->cfd >= 0)
		close(rl->cfd);
	for (i = 0; i < rl->npairs; i++) {
		close(rl->pairs[i].a);
		if (rl->pairs[i].b >= 0)
			close(rl->pairs[i].b);
		pipe_off(&rl->pairs[i]);
	}
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	sigprocmask(SIG_SETMASK, old, NULL);
	rc_interrupted = 0;
	optind = 0; /* a fresh getopt for the copy's options */
	memset(&run, 0, sizeof run);
	rc_cmd_run(argc, argv, &run);
	/* The copy's report is the node's: it is out before the relay
	 * lingers, and a lost one is a failure. */
	if (fflush(stdout) != 0 || ferror(stdout))
		_exit(run.status ? run.status : RC_EXIT_FAILED);
	_exit(run.status);
}

/* --- the loop -------------------------------------------------------- */

/* What qemu-storage-daemon said, to standard error. */
static void say_log(struct relay *rl)
{
	char buf[4096];
	ssize_t r;
	int fd = open(rl->log, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	fflush(stderr);
	while ((r = read(fd, buf, sizeof buf)) > 0)
		if (write(2, buf, (size_t)r) < 0)
			break;
	close(fd);
}

static void reap(struct relay *rl)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == rl->copy) {
			rl->copy = 0;
			rl->copy_done = true;
			rl->copy_status = WIFEXITED(status)
						  ? WEXITSTATUS(status)
						  : RC_EXIT_FAILED;
			if (WIFSIGNALED(status))
				rc_err("relay: the copy was killed by signal %d",
				       WTERMSIG(status));
			rl->idle_since = rc_now_ns();
			if (rl->copy_status == RC_EXIT_REFUSED) {
				rl->stopping = true;
			} else if (!rl->stopping && rl->linger_ms) {
				rc_msg("relay: the copy is done (exit %d); relaying on %s until it has been idle %u s",
				       rl->copy_status, rl->listen.text,
				       rl->linger_ms / 1000);
			}
		} else if (pid == rl->qsd) {
			rl->qsd = 0;
			if (!rl->stopping)
				say_log(rl);
			if (!rl->stopping) {
				rc_err("relay: qemu-storage-daemon ended (%s %d): nothing is relayed any more",
				       WIFEXITED(status) ? "exit" : "signal",
				       WIFEXITED(status) ? WEXITSTATUS(status)
							 : WTERMSIG(status));
				rl->stopping = true;
				if (!rl->copy_done)
					rl->copy_status = RC_EXIT_FAILED;
			}
		}
	}
}

static void stop_children(struct relay *rl)
{
	uint64_t t0;
	int i;

	if (rl->copy > 0)
		kill(rl->copy, SIGTERM);
	/* The copy first: it reads the daemon's export. */
	t0 = rc_now_ns();
	while (rl->copy > 0) {
		reap(rl);
		if (rl->copy > 0)
			usleep(20000);
		if (rl->copy > 0 && rc_now_ns() - t0 > 30ULL * 1000000000) {
			kill(rl->copy, SIGKILL);
			t0 = rc_now_ns();
		}
	}
	for (i = rl->npairs - 1; i >= 0; i--)
		pair_close(rl, i);
	if (rl->qsd > 0)
		kill(rl->qsd, SIGTERM);
	t0 = rc_now_ns();
	while (rl->qsd > 0) {
		reap(rl);
		if (rl->qsd > 0)
			usleep(20000);
		if (rl->qsd > 0 && rc_now_ns() - t0 > 5ULL * 1000000000)
			kill(rl->qsd, SIGKILL);
	}
}

static void remove_dir(struct relay *rl)
{
	if (!rl->dir[0])
		return;
	unlink(rl->overlay);
	unlink(rl->up_sock);
	unlink(rl->exp_sock);
	unlink(rl->log);
	unlink(rl->exact_sock);
	if (rmdir(rl->dir) < 0)
		rc_err("relay: cannot remove %s: %s", rl->dir, strerror(errno));
}

/* Start the copy once the daemon exports: 1 when the relay must end (the
 * copy cannot start, or the daemon never exported). */
static int copy_when_ready(struct relay *rl, const sigset_t *old,
			   uint64_t started, uint64_t now)
{
	struct stat st;

	if (rl->copy || rl->copy_done || rl->stopping)
		return 0;
	if (stat(rl->exp_sock, &st) == 0 && S_ISSOCK(st.st_mode)) {
		rl->copy = start_copy(rl, old);
		if (rl->copy >= 0)
			return 0;
		rc_err("relay: cannot start the copy: %s", strerror(errno));
		rl->copy = 0;
		rl->copy_status = RC_EXIT_FAILED;
		return 1;
	}
	if (now - started <= (uint64_t)(rl->timeout_ms + 20000) * 1000000)
		return 0;
	rc_err("relay: qemu-storage-daemon did not export the overlay in %u s: no upstream of %s answered",
	       rl->timeout_ms / 1000 + 20, rl->up[0].text);
	say_log(rl);
	rl->copy_status = RC_EXIT_FAILED;
	return 1;
}

/* Connections still to make, and an upstream that owes an answer for too
 * long is dead. */
static void check_pairs(struct relay *rl, uint64_t now)
{
	uint64_t lim = (uint64_t)rl->timeout_ms * 1000000;
	int i;

	for (i = 0; i < rl->npairs; i++) {
		struct pair *p = &rl->pairs[i];

		if (!p->up) {
			if (p->b < 0 &&
			    now - p->since >= RETRY_EXPORT_MS * 1000000ULL)
				export_connect(rl, p);
			continue;
		}
		if (p->b < 0 && now - p->since >= RETRY_UP_MS * 1000000ULL) {
			upstream_connect(rl, p);
		} else if (p->b >= 0 && p->connecting &&
			   now - p->since > lim) {
			close(p->b);
			p->b = -1;
			p->since = now;
		} else if (p->b >= 0 && p->owed && now - p->last_rx > lim) {
			upstream_failed(rl, i, "has not answered for --connect-timeout");
			i--;
		}
	}
}

/* May pair p's upstream hold bytes below SO_RCVLOWAT, which poll does not
 * report?  They are read once nothing came for BATCH_STALL_MS; the poll
 * waits that long at most while an answer is owed or was arriving in the
 * last second, else its usual 100 ms. */
static bool batch_wait(const struct pair *p)
{
	return p->batch && p->b >= 0 && !p->connecting && !p->len[1];
}

/* The descriptors to poll (the signalfd, the three listening sockets, then
 * a and b of each pair); the poll's timeout in *ms. */
static int fill_poll(struct relay *rl, struct pollfd *pfd, uint64_t now,
		     int *ms)
{
	int i, n = 0;

	*ms = 100;
	/* Until the copy starts, its export is looked for as often as a
	 * downstream connection tries it. */
	if (!rl->copy && !rl->copy_done && !rl->stopping)
		*ms = RETRY_EXPORT_MS;
	pfd[n++] = (struct pollfd){ .fd = rl->sigfd, .events = POLLIN };
	pfd[n++] = (struct pollfd){ .fd = rl->lfd, .events = POLLIN };
	pfd[n++] = (struct pollfd){ .fd = rl->upfd, .events = POLLIN };
	pfd[n++] = (struct pollfd){ .fd = rl->cfd, .events = POLLIN };
	for (i = 0; i < rl->npairs; i++) {
		struct pair *p = &rl->pairs[i];

		pfd[n].fd = p->a;
		pfd[n].events = (p->len[0] ? 0 : POLLIN) |
				(client_owed(p) ? POLLOUT : 0);
		if (p->b < 0 || p->connecting)
			pfd[n].events &= ~POLLIN;
		n++;
		pfd[n].fd = p->b;
		pfd[n].events = p->connecting ? POLLOUT
			: (p->len[1] ? 0 : POLLIN) | (p->len[0] ? POLLOUT : 0);
		n++;
		if (batch_wait(p) &&
		    (p->owed || now - p->last_rx < 1000000000ULL) &&
		    *ms > BATCH_STALL_MS)
			*ms = BATCH_STALL_MS;
		if (p->b < 0)
			*ms = p->up ? (*ms < RETRY_UP_MS ? *ms : RETRY_UP_MS)
				    : RETRY_EXPORT_MS;
	}
	return n;
}

/* SIGTERM, SIGINT, SIGHUP: stop; SIGCHLD: reap. */
static void read_signals(struct relay *rl)
{
	struct signalfd_siginfo si;

	while (read(rl->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
		if (si.ssi_signo == SIGCHLD)
			continue;
		if (!rl->stopping)
			rc_msg("relay: signal %d: stopping", (int)si.ssi_signo);
		rl->stopping = true;
		if (!rl->copy_done && !rl->copy)
			rl->copy_status = RC_EXIT_FAILED;
	}
	reap(rl);
}

/* b's non-blocking connect() is over: made, or to try again. */
static void connect_done(struct relay *rl, struct pair *p)
{
	int err = 0;
	socklen_t l = sizeof err;

	getsockopt(p->b, SOL_SOCKET, SO_ERROR, &err, &l);
	if (err) {
		close(p->b);
		p->b = -1;
		p->since = rc_now_ns();
		return;
	}
	p->connecting = false;
	p->last_rx = rc_now_ns();
	if (p->up)
		rl->cur_since = 0;
}

/* Forward what pair i's poll found, both ways. */
static void serve_pair(struct relay *rl, int i, struct pollfd *pa,
		       struct pollfd *pb, uint64_t polled)
{
	struct pair *p = &rl->pairs[i];
	uint64_t moved = 0, back = 0, now;
	int which = -1;

	if (p->b < 0) {
		if (pa->revents & (POLLHUP | POLLERR))
			pair_close(rl, i);
		return;
	}
	if (p->connecting) {
		if (pb->revents)
			connect_done(rl, p);
		return;
	}
	/* Below SO_RCVLOWAT poll says nothing: a stalled stream's tail is
	 * read anyway. */
	if (batch_wait(p) && !(pb->revents & POLLIN) &&
	    polled - p->last_rx >= BATCH_STALL_MS * 1000000ULL)
		pb->revents |= POLLIN;
	if (pump(rl, p, 0, pa->revents, &which, &moved) < 0 ||
	    pump(rl, p, 1, pb->revents, &which, &back) < 0) {
		/* The tap could not follow the stream: whoever is wrong,
		 * another upstream would not help; the disks answer nothing
		 * more and QEMU reconnects to the same one. */
		if (p->broke) {
			rc_msg("relay: %s; the node's disks answer nothing more, QEMU reconnects",
			       p->broke);
			rl->tap_off = true;
		} else if (p->up && which == 1) {
			upstream_failed(rl, i, "closed the connection");
			return;
		}
		pair_close(rl, i);
		return;
	}
	now = rc_now_ns();
	if (p->up) {
		if (moved)
			p->owed = true;
		if (back) {
			p->owed = false;
			p->last_rx = now;
			rl->bytes_up += back;
			if (!p->batch && (p->got += back) >= BATCH_AFTER)
				batch_set(p);
		}
	} else if ((moved || back) && !p->copy) {
		rl->idle_since = now;
		rl->bytes_down += back;
	}
}

static int loop(struct relay *rl, const sigset_t *old)
{
	struct pollfd pfd[4 + 2 * PAIRS_MAX];
	uint64_t started = rc_now_ns(), now;
	int i, n, ms;

	for (;;) {
		now = rc_now_ns();
		if (copy_when_ready(rl, old, started, now))
			return 0;
		if (rl->stopping)
			return 0;
		if (rl->copy_done &&
		    now - rl->idle_since >= (uint64_t)rl->linger_ms * 1000000)
			return 0;
		check_pairs(rl, now);
		n = fill_poll(rl, pfd, now, &ms);
		if (poll(pfd, n, ms) < 0 && errno != EINTR)
			return -1;
		if (pfd[0].revents & POLLIN)
			read_signals(rl);
		/* The pairs first: accepting moves them. */
		for (i = rl->npairs - 1; i >= 0; i--) {
			struct pollfd *pa = &pfd[4 + 2 * i];

			/* A pair made this round was not polled. */
			if (pa->fd == rl->pairs[i].a &&
			    pa[1].fd == rl->pairs[i].b)
				serve_pair(rl, i, pa, pa + 1, now);
		}
		if (pfd[1].revents & POLLIN)
			accept_on(rl, rl->lfd, false, false);
		if (pfd[2].revents & POLLIN)
			accept_on(rl, rl->upfd, true, false);
		if (pfd[3].revents & POLLIN)
			accept_on(rl, rl->cfd, false, true);
	}
}

/* The private directory (made by us alone, 0700, never one that is there
 * already), its paths, and the socket QEMU's NBD client connects to. */
static int make_private(struct relay *rl)
{
	const char *tmp = getenv("TMPDIR");
	struct endpoint e;
	char err[400];

	if (!tmp || *tmp != '/')
		tmp = "/var/tmp";
	snprintf(rl->dir, sizeof rl->dir, "%s/ringcopy-relay.XXXXXX", tmp);
	if (strlen(tmp) > 80 || !mkdtemp(rl->dir)) {
		rc_err("relay: cannot make a private directory in %s: %s",
		       tmp, strlen(tmp) > 80 ? "its path is too long for the sockets" : strerror(errno));
		rl->dir[0] = 0;
		return -1;
	}
	snprintf(rl->overlay, sizeof rl->overlay, "%s/overlay.qcow2", rl->dir);
	snprintf(rl->up_sock, sizeof rl->up_sock, "%s/upstream.sock", rl->dir);
	snprintf(rl->exp_sock, sizeof rl->exp_sock, "%s/export.sock", rl->dir);
	snprintf(rl->log, sizeof rl->log, "%s/qemu.log", rl->dir);
	snprintf(rl->exact_sock, sizeof rl->exact_sock, "%s/exact.sock",
		 rl->dir);
	unix_endpoint(&e, rl->up_sock);
	rl->upfd = listen_on(&e, err, sizeof err);
	if (rl->upfd < 0) {
		rc_err("relay: cannot listen on %s: %s", rl->up_sock, err);
		return -1;
	}
	if (!(rl->image_size % 512))
		return 0;
	/* An image that ends inside a sector: the copy reads it through
	 * the relay, which says the image's own size (hs_scan). */
	unix_endpoint(&e, rl->exact_sock);
	rl->cfd = listen_on(&e, err, sizeof err);
	if (rl->cfd < 0) {
		rc_err("relay: cannot listen on %s: %s", rl->exact_sock, err);
		return -1;
	}
	return 0;
}

/* SIGCHLD, SIGTERM, SIGINT and SIGHUP through a signalfd (the old mask in
 * *old, for the children). */
static int take_signals(struct relay *rl, sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, old);
	signal(SIGPIPE, SIG_IGN);
	rl->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (rl->sigfd < 0) {
		rc_err("relay: signalfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* --skip-equal: the TARGETs answer QEMU's reads of the blocks they hold
 * as the manifest says (src/nbdtap.c), so that upstream sends only the
 * others.  Nothing read there is trusted beyond that: the copy proves
 * every target as before.  A saving, never a condition: without them
 * every block read through this node (the copy's: only what its disks
 * lack) comes from upstream. */
static int open_disks(struct relay *rl)
{
	char err[400];
	int n;

	rl->scratch = malloc(XFER_BUF);
	if (!rl->scratch) {
		rc_err("relay: out of memory");
		return -1;
	}
	rl->disks = rc_disks_open(rl->expect, rl->targets, rl->ntargets, &n,
				  err, sizeof err);
	if (!rl->disks) {
		rc_err("relay: the node's disks cannot answer for upstream (%s): every block read through this node comes from upstream",
		       err);
	} else if (!n) {
		rc_msg("relay: no TARGET can be read yet: upstream sends every block read through this node");
		rc_disks_close(rl->disks);
		rl->disks = NULL;
	}
	return 0;
}

/* The overlay, the daemon, the copy and the forwarding until the end: the
 * copy's status. */
static int relay_run(struct relay *rl, const sigset_t *old)
{
	if (make_overlay(rl) < 0 ||
	    (rl->skip_equal && !rl->no_seed && open_disks(rl) < 0))
		return RC_EXIT_FAILED;
	if (rl->stopping)
		return RC_EXIT_FAILED;
	rl->qsd = start_qsd(rl, old);
	if (rl->qsd < 0) {
		rc_err("relay: cannot start qemu-storage-daemon: %s",
		       strerror(errno));
		rl->qsd = 0;
		return RC_EXIT_FAILED;
	}
	rc_msg("relay: %s relays %s (then %d more) to %s",
	       rl->dir, rl->up[0].text, rl->nup - 1, rl->listen.text);
	rl->copy_status = RC_EXIT_FAILED;
	if (loop(rl, old) < 0)
		rc_err("relay: poll: %s", strerror(errno));
	rl->stopping = true;
	if (!rc_quiet && rl->disks)
		rc_msg("relay: %s: %llu bytes from upstream, %llu bytes from the node's disks, %llu bytes to downstream",
		       rl->listen.text, (unsigned long long)rl->bytes_up,
		       (unsigned long long)rc_disks_answered(rl->disks),
		       (unsigned long long)rl->bytes_down);
	else if (!rc_quiet)
		rc_msg("relay: %s: %llu bytes from upstream, %llu bytes to downstream",
		       rl->listen.text, (unsigned long long)rl->bytes_up,
		       (unsigned long long)rl->bytes_down);
	return rl->copy_status;
}

int rc_cmd_relay(int argc, char **argv)
{
	struct relay *rl;
	struct rc_image_hashes m = { 0 };
	char err[400];
	sigset_t old;
	int rc, status;

	rl = calloc(1, sizeof *rl);
	if (!rl) {
		rc_err("relay: out of memory");
		return RC_EXIT_FAILED;
	}
	rl->lfd = rl->upfd = rl->sigfd = rl->cfd = -1;
	rc = parse_relay(argc, argv, rl);
	if (rc >= 0) {
		free(rl);
		return rc;
	}
	/* Its header only (the size; the node's copy reads the blocks). */
	if (rc_manifest_read(rl->expect, &m, 0, err, sizeof err) < 0) {
		free(rl);
		return relay_refuse("--expect refused: %s", err);
	}
	free(m.hash);
	rl->image_size = m.image_size;
	if (!rl->image_size) {
		rc = relay_refuse("--expect refused: the manifest %s describes an empty image: nothing to relay",
				  rl->expect);
		free(rl);
		return rc;
	}
	rl->lfd = listen_on(&rl->listen, err, sizeof err);
	if (rl->lfd < 0) {
		rc = relay_refuse("--listen %s refused: %s",
				  rl->listen.text, err);
		free(rl);
		return rc;
	}
	rl->listen_made = rl->listen.unix_sock;
	if (make_private(rl) < 0 || take_signals(rl, &old) < 0)
		status = RC_EXIT_FAILED;
	else
		status = relay_run(rl, &old);
	rl->stopping = true;
	stop_children(rl);
	if (rl->copy_done)
		status = rl->copy_status;
	if (rl->lfd >= 0)
		close(rl->lfd);
	if (rl->listen_made)
		unlink(rl->listen.text);
	if (rl->upfd >= 0)
		close(rl->upfd);
	if (rl->sigfd >= 0)
		close(rl->sigfd);
	if (rl->cfd >= 0)
		close(rl->cfd);
	remove_dir(rl);
	rc_disks_close(rl->disks);
	free(rl->scratch);
	free(rl);
	return status;
}
