/*
 * flood FROM HOST PORT N [BYTES]: a connection flood for the daemon tests.
 * Opens N TCP connections to HOST:PORT, each from the local address FROM
 * (e.g. 127.0.0.2: loopback has all of 127/8), sends BYTES bytes of the
 * start of a TLS ClientHello on each (0: nothing, an idle connection; 5: a
 * record header and then silence, a slow handshake), and holds them all
 * open until killed. Prints "flood: N connected, M closed by the peer" once
 * every connection was made and the peer had a second to close any; from
 * then on it opens again, every second, those the peer closed (the
 * pressure stays), and says how many it reopened.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	static const unsigned char hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01 };
	struct sockaddr_in from = { .sin_family = AF_INET }, to = { .sin_family = AF_INET };
	unsigned long n, bytes = 0, i, open_now, round;
	struct pollfd *p;

	if (argc < 5 || inet_pton(AF_INET, argv[1], &from.sin_addr) != 1 ||
	    inet_pton(AF_INET, argv[2], &to.sin_addr) != 1) {
		fprintf(stderr, "usage: flood FROM HOST PORT N [BYTES]\n");
		return 2;
	}
	to.sin_port = htons((unsigned short)strtoul(argv[3], NULL, 10));
	n = strtoul(argv[4], NULL, 10);
	if (argc > 5)
		bytes = strtoul(argv[5], NULL, 10);
	if (bytes > sizeof(hello))
		bytes = sizeof(hello);
	if (!(p = calloc(n, sizeof(*p))))
		return 1;
	for (i = 0; i < n; i++)
		p[i].fd = -1;
	for (round = 0;; round++) {
		unsigned long reopened = 0;

		for (i = 0; i < n; i++) {
			int fd;

			if (p[i].fd >= 0)
				continue;
			fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (fd < 0 || bind(fd, (struct sockaddr *)&from, sizeof(from)) < 0 ||
			    connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0) {
				perror("flood: connect");
				return 1;
			}
			if (bytes && send(fd, hello, bytes, MSG_NOSIGNAL) != (ssize_t)bytes) {
				perror("flood: send");
				return 1;
			}
			p[i].fd = fd;
			p[i].events = POLLIN;
			reopened++;
		}
		sleep(1);
		/* A peer that closed makes the socket readable with EOF (or an error). */
		poll(p, n, 0);
		for (i = 0, open_now = 0; i < n; i++) {
			if (p[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
				char b;

				if (recv(p[i].fd, &b, 1, MSG_DONTWAIT) <= 0) {
					close(p[i].fd);
					p[i].fd = -1;
				}
			}
			open_now += p[i].fd >= 0;
		}
		if (round == 0)
			printf("flood: %lu connected, %lu closed by the peer\n", n, n - open_now);
		else
			printf("flood: %lu opened again, %lu open\n", reopened, open_now);
		fflush(stdout);
	}
}
