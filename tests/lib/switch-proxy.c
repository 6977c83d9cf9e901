/*
 * switch-proxy LISTEN_PATH TARGET_PATH DIRECTION TYPE ACTION: a fault
 * injector for the switchover tests (tests/migrate-switchover.sh). Accepts
 * connections on the unix socket LISTEN_PATH and forwards each to
 * TARGET_PATH, both ways, record by record (lib/record.h framing: a
 * 16-byte header with the type and payload length; no TLS on unix
 * sockets). On the first connection only, at the first record of TYPE
 * going DIRECTION (to-dst: from the client, to-src: from the server), it
 * does ACTION:
 *   delay:MS      hold that record and what follows it in that direction
 *                 for MS ms (the other direction flows on);
 *   drop-before   close both sockets instead of forwarding it;
 *   drop-after    forward it, then close both sockets.
 * A side that closes has what it sent delivered first (held or not), as
 * TCP delivers data in flight before the FIN; then the close is passed on.
 * Later connections (a status query) pass as they are. Prints
 * "switch-proxy: ACTION at record TYPE" on stderr when it acted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/sockutil.h"

#define BUF_MAX	(4U << 20)

struct dir {
	int from, to;
	uint8_t *buf;
	size_t len;
	uint64_t left;		/* bytes of the current record still to forward */
	int acts;		/* this direction carries the action */
	uint64_t hold_until;	/* ms, CLOCK_MONOTONIC: forward nothing before */
	int close_after;	/* close once the current record is through */
	int eof;		/* the sender closed: deliver what is held, then pass it on */
};

static uint32_t want_type;
static int action;		/* 0 delay, 1 drop-before, 2 drop-after */
static unsigned long delay_ms;
static const char *action_text;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Forwards what may go now. 1: close the connection; 0: go on. */
static int pump(struct dir *d)
{
	uint32_t type, plen;
	size_t n;

	for (;;) {
		if (d->hold_until && now_ms() < d->hold_until)
			return 0;
		if (d->left > 0) {
			n = d->len < d->left ? d->len : (size_t)d->left;
			if (n == 0)
				return 0;
			if (write_all(d->to, d->buf, n))
				return 1;
			memmove(d->buf, d->buf + n, d->len - n);
			d->len -= n;
			d->left -= n;
			if (d->left == 0 && d->close_after)
				return 1;
			continue;
		}
		if (d->len < 16)
			return 0;
		memcpy(&type, d->buf, 4);
		memcpy(&plen, d->buf + 4, 4);
		d->left = 16 + (uint64_t)plen;
		if (d->acts && type == want_type) {
			d->acts = 0;
			fprintf(stderr, "switch-proxy: %s at record %u\n", action_text, type);
			if (action == 1)
				return 1;
			if (action == 2)
				d->close_after = 1;
			else
				d->hold_until = now_ms() + delay_ms;
		}
	}
}

static void serve(int cfd, const struct sockaddr_un *target, int first, int to_dst)
{
	struct dir d[2];
	int sfd = socket(AF_UNIX, SOCK_STREAM, 0), i;

	if (sfd < 0 || connect(sfd, (const struct sockaddr *)target, sizeof(*target)) < 0) {
		perror("switch-proxy: connect");
		_exit(1);
	}
	memset(d, 0, sizeof(d));
	d[0].from = cfd;
	d[0].to = sfd;
	d[1].from = sfd;
	d[1].to = cfd;
	for (i = 0; i < 2; i++)
		if (!(d[i].buf = malloc(BUF_MAX)))
			_exit(1);
	d[to_dst ? 0 : 1].acts = first;
	for (;;) {
		struct pollfd p[2];
		int timeout = -1;
		uint64_t t = now_ms();

		for (i = 0; i < 2; i++) {
			p[i].fd = d[i].eof ? -1 : d[i].from;
			p[i].events = d[i].len < BUF_MAX ? POLLIN : 0;
			p[i].revents = 0;
			if (d[i].hold_until > t && (timeout < 0 || d[i].hold_until - t < (uint64_t)timeout))
				timeout = (int)(d[i].hold_until - t);
		}
		if (d[0].eof && d[1].eof && timeout < 0)
			_exit(0);
		if (poll(p, 2, timeout) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		for (i = 0; i < 2; i++) {
			if (p[i].revents) {
				ssize_t n = read(d[i].from, d[i].buf + d[i].len, BUF_MAX - d[i].len);

				if (n <= 0)
					d[i].eof = 1;
				else
					d[i].len += (size_t)n;
			}
			if (pump(&d[i]))
				_exit(0);
			/* All of it delivered: the close goes on too. */
			if (d[i].eof && d[i].len == 0 && d[i].hold_until <= now_ms() &&
			    d[i].eof != 2) {
				shutdown(d[i].to, SHUT_WR);
				d[i].eof = 2;
			}
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un a, b;
	int lfd, cfd, first = 1, to_dst;
	pid_t pid;

	if (argc != 6 || unix_addr(argv[1], &a) || unix_addr(argv[2], &b) ||
	    (strcmp(argv[3], "to-dst") && strcmp(argv[3], "to-src")))
		goto usage;
	to_dst = !strcmp(argv[3], "to-dst");
	want_type = (uint32_t)strtoul(argv[4], NULL, 0);
	action_text = argv[5];
	if (!strncmp(argv[5], "delay:", 6)) {
		action = 0;
		delay_ms = strtoul(argv[5] + 6, NULL, 0);
	} else if (!strcmp(argv[5], "drop-before")) {
		action = 1;
	} else if (!strcmp(argv[5], "drop-after")) {
		action = 2;
	} else {
		goto usage;
	}
	signal(SIGCHLD, SIG_IGN);	/* no zombies */
	unlink(argv[1]);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 8)) {
		perror("switch-proxy: listen");
		return 1;
	}
	for (;;) {
		if ((cfd = accept(lfd, NULL, NULL)) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if ((pid = fork()) == 0) {
			close(lfd);
			serve(cfd, &b, first, to_dst);
		}
		close(cfd);
		first = 0;
	}
usage:
	fprintf(stderr, "usage: switch-proxy LISTEN_PATH TARGET_PATH to-dst|to-src TYPE "
			"delay:MS|drop-before|drop-after\n");
	return 2;
}
