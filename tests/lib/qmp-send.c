/*
 * qmp-send SOCKET REQUEST...: a test client for control sockets. Reads the
 * greeting, sends each REQUEST as one line (exactly as given, malformed or
 * not) and prints each reply line. Exit 0 when every request got a reply,
 * 1 on connection errors. Replies are awaited with a 60 s bound.
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

static char inbuf[1 << 17];
static size_t inlen;

/* Reads one line into out (NUL-terminated, no newline). 0 or -1. */
static int read_line(int fd, char *out, size_t max)
{
	for (;;) {
		char *nl = memchr(inbuf, '\n', inlen);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (nl) {
			size_t len = (size_t)(nl - inbuf);

			if (len >= max)
				len = max - 1;
			memcpy(out, inbuf, len);
			out[len] = 0;
			inlen -= (size_t)(nl - inbuf) + 1;
			memmove(inbuf, nl + 1, inlen);
			return 0;
		}
		if (inlen == sizeof(inbuf))
			return -1;
		if (poll(&p, 1, 60000) != 1)
			return -1;
		n = read(fd, inbuf + inlen, sizeof(inbuf) - inlen);
		if (n <= 0)
			return -1;
		inlen += (size_t)n;
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	static char line[1 << 17];
	int fd, i;

	if (argc < 2) {
		fprintf(stderr, "usage: qmp-send SOCKET REQUEST...\n");
		return 2;
	}
	if (strlen(argv[1]) >= sizeof(sun.sun_path))
		return 2;
	strcpy(sun.sun_path, argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "qmp-send: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (read_line(fd, line, sizeof(line)) < 0 || !strstr(line, "\"QMP\"")) {
		fprintf(stderr, "qmp-send: no greeting\n");
		return 1;
	}
	for (i = 2; i < argc; i++) {
		size_t len = strlen(argv[i]);
		char *req = malloc(len + 2);

		memcpy(req, argv[i], len);
		req[len] = '\n';
		if (send(fd, req, len + 1, MSG_NOSIGNAL) != (ssize_t)len + 1) {
			free(req);
			fprintf(stderr, "qmp-send: send failed\n");
			return 1;
		}
		free(req);
		if (read_line(fd, line, sizeof(line)) < 0) {
			fprintf(stderr, "qmp-send: no reply to request %d\n", i - 1);
			return 1;
		}
		printf("%s\n", line);
		fflush(stdout);
	}
	close(fd);
	return 0;
}
