/*
 * flip-proxy LISTEN_PATH TARGET_PATH OFFSET: a fault injector for the
 * migration tests. Accepts one connection on the unix socket LISTEN_PATH,
 * connects to TARGET_PATH, and forwards both ways, but flips the lowest
 * bit of byte OFFSET of the client-to-server stream. Exits when either
 * side closes. Prints "flipped" on stderr once it did.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/lib/sockutil.h"

int main(int argc, char **argv)
{
	struct sockaddr_un a, b;
	static char buf[1 << 16];
	unsigned long long off, seen = 0;
	int lfd, cfd, sfd;

	if (argc != 4 || unix_addr(argv[1], &a) || unix_addr(argv[2], &b)) {
		fprintf(stderr, "usage: flip-proxy LISTEN_PATH TARGET_PATH OFFSET\n");
		return 2;
	}
	off = strtoull(argv[3], NULL, 0);
	unlink(argv[1]);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1)) {
		perror("flip-proxy: listen");
		return 1;
	}
	cfd = accept(lfd, NULL, NULL);
	sfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (cfd < 0 || sfd < 0 || connect(sfd, (struct sockaddr *)&b, sizeof(b))) {
		perror("flip-proxy: connect");
		return 1;
	}
	for (;;) {
		struct pollfd p[2] = { { .fd = cfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (p[0].revents) {
			n = read(cfd, buf, sizeof(buf));
			if (n <= 0)
				break;
			if (off >= seen && off < seen + (unsigned long long)n) {
				buf[off - seen] ^= 1;
				fprintf(stderr, "flipped\n");
			}
			seen += (unsigned long long)n;
			if (write_all(sfd, buf, (size_t)n))
				break;
		}
		if (p[1].revents) {
			n = read(sfd, buf, sizeof(buf));
			if (n <= 0 || write_all(cfd, buf, (size_t)n))
				break;
		}
	}
	return 0;
}
