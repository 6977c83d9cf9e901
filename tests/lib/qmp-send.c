/*
 * qmp-send [-g] [-e] [-x] [-w NAME[:N]] [-t SEC] SOCKET REQUEST...: a test
 * client for control sockets. Reads the greeting, sends each REQUEST as one
 * line (exactly as given, malformed or not) and prints each line it reads,
 * replies and events, in the order they came. Waits are bounded by -t
 * seconds (default 60).
 *   -g           print the greeting too
 *   -e           enable events first (qmp_capabilities {"enable":
 *                ["events"]}; its reply is printed): the reply to a request
 *                is then the next line that is not an event
 *   -x           exact: the reply to a request is the very next line, with
 *                the request's "id" (each REQUEST needs one); an event line,
 *                a reply out of step, or any line left over after the last
 *                reply is an error (exit 3). For a client that did not
 *                enable events: it must never see one
 *   -w NAME[:N]  after the replies, read on until N (default 1) events NAME
 *                have come in all (exit 4 if the bound passes or the
 *                socket closes first)
 * Exit 0 when every request got a reply (and -x, -w held), 1 on connection
 * errors, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

static char inbuf[1 << 17];
static size_t inlen;
static int timeout_ms = 60000;

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
		if (poll(&p, 1, timeout_ms) != 1)
			return -1;
		n = read(fd, inbuf + inlen, sizeof(inbuf) - inlen);
		if (n <= 0)
			return -1;
		inlen += (size_t)n;
	}
}

/* Whether anything is left to read at once: buffered, or on the socket. */
static bool pending(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (inlen)
		return true;
	if (poll(&p, 1, 0) != 1)
		return false;
	n = recv(fd, inbuf, sizeof(inbuf), MSG_DONTWAIT);
	if (n <= 0)
		return false;	/* the end, or nothing after all: no line */
	inlen = (size_t)n;
	return true;
}

/* The line's "event" name, or NULL if it is not an event (or not JSON). */
static const char *event_name(json_t *j)
{
	return json_string_value(json_object_get(j, "event"));
}

static void put(const char *line)
{
	printf("%s\n", line);
	fflush(stdout);
}

static int send_line(int fd, const char *s)
{
	size_t len = strlen(s);
	char *req = malloc(len + 2);
	bool ok;

	if (!req)
		return -1;
	memcpy(req, s, len);
	req[len] = '\n';
	ok = send(fd, req, len + 1, MSG_NOSIGNAL) == (ssize_t)len + 1;
	free(req);
	return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	static char line[1 << 17];
	bool greeting = false, events = false, exact = false;
	const char *wait_name = NULL;
	long wait_n = 1, seen = 0;
	char *colon;
	int fd, i, opt;

	while ((opt = getopt(argc, argv, "+gexw:t:")) != -1) {
		switch (opt) {
		case 'g':
			greeting = true;
			break;
		case 'e':
			events = true;
			break;
		case 'x':
			exact = true;
			break;
		case 'w':
			wait_name = optarg;
			if ((colon = strchr(optarg, ':'))) {
				*colon = 0;
				wait_n = strtol(colon + 1, NULL, 10);
			}
			break;
		case 't':
			timeout_ms = (int)strtol(optarg, NULL, 10) * 1000;
			break;
		default:
			return 2;
		}
	}
	if (optind >= argc || timeout_ms <= 0 || wait_n < 1) {
		fprintf(stderr, "usage: qmp-send [-g] [-e] [-x] [-w NAME[:N]] [-t SEC] SOCKET "
			"REQUEST...\n");
		return 2;
	}
	if (strlen(argv[optind]) >= sizeof(sun.sun_path))
		return 2;
	strcpy(sun.sun_path, argv[optind]);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "qmp-send: %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	if (read_line(fd, line, sizeof(line)) < 0 || !strstr(line, "\"QMP\"")) {
		fprintf(stderr, "qmp-send: no greeting\n");
		return 1;
	}
	if (greeting)
		put(line);
	if (events) {
		if (send_line(fd, "{\"execute\": \"qmp_capabilities\", "
			      "\"arguments\": {\"enable\": [\"events\"]}}") < 0 ||
		    read_line(fd, line, sizeof(line)) < 0) {
			fprintf(stderr, "qmp-send: events not enabled\n");
			return 1;
		}
		put(line);
	}
	for (i = optind + 1; i < argc; i++) {
		json_t *req = json_loads(argv[i], 0, NULL), *id = json_object_get(req, "id");

		if (exact && !id) {
			fprintf(stderr, "qmp-send: -x: request %d has no \"id\"\n", i - optind);
			return 2;
		}
		if (send_line(fd, argv[i]) < 0) {
			fprintf(stderr, "qmp-send: send failed\n");
			return 1;
		}
		/* The reply: the next line, or with events on, the next that is no event. */
		for (;;) {
			json_t *got;
			const char *ev;

			if (read_line(fd, line, sizeof(line)) < 0) {
				fprintf(stderr, "qmp-send: no reply to request %d\n", i - optind);
				return 1;
			}
			put(line);
			got = json_loads(line, 0, NULL);
			ev = event_name(got);
			if (ev && wait_name && !strcmp(ev, wait_name))
				seen++;
			if (exact && (ev || !json_equal(json_object_get(got, "id"), id))) {
				fprintf(stderr, "qmp-send: -x: request %d: %s, not its reply\n",
					i - optind, ev ? "an event" : "a line out of step");
				return 3;
			}
			json_decref(got);
			if (!ev || !events)
				break;
		}
		json_decref(req);
	}
	if (exact && pending(fd)) {
		fprintf(stderr, "qmp-send: -x: a line nobody asked for after the last reply: %.*s\n",
			(int)(inlen < 200 ? inlen : 200), inbuf);
		return 3;
	}
	while (wait_name && seen < wait_n) {
		json_t *got;
		const char *ev;

		if (read_line(fd, line, sizeof(line)) < 0) {
			fprintf(stderr, "qmp-send: %ld of %ld %s events\n", seen, wait_n, wait_name);
			return 4;
		}
		put(line);
		got = json_loads(line, 0, NULL);
		ev = event_name(got);
		if (ev && !strcmp(ev, wait_name))
			seen++;
		json_decref(got);
	}
	close(fd);
	return 0;
}
