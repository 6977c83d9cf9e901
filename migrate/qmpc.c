/* A small control-socket client: see qmpc.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "err.h"
#include "qmp.h"
#include "migrate/qmpc.h"

struct qmpc {
	int fd;
	struct qmp_linebuf *lb;
};

/* The next line, waiting at most timeout_ms; KM_ERR_TIMEOUT, KM_ERR_END. */
static int qmpc_line(struct qmpc *q, int timeout_ms, const char **line, size_t *len)
{
	struct pollfd p = { .fd = q->fd, .events = POLLIN };
	int r;

	for (;;) {
		r = qmp_linebuf_next(q->lb, line, len);
		if (r != KM_ERR_TRUNCATED)
			return r;
		if ((r = poll(&p, 1, timeout_ms)) == 0)
			return KM_ERR_TIMEOUT;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return km_errno();
		}
		r = qmp_linebuf_fill(q->lb, q->fd);
		if (r != 0 && r != -EAGAIN && r != -EINTR)
			return r;
	}
}

int qmpc_open(const char *path, struct qmpc **out)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct qmpc *q;
	const char *line;
	size_t len;
	int r;

	if (strlen(path) >= sizeof(sun.sun_path))
		return KM_ERR_TOO_LARGE;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (!(q = calloc(1, sizeof(*q))))
		return -ENOMEM;
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (q->fd < 0 || connect(q->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		r = km_errno();
		goto fail;
	}
	if (!(q->lb = qmp_linebuf_new())) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = qmpc_line(q, 10000, &line, &len)) != 0)
		goto fail;
	if (!strstr(line, "\"QMP\"")) {
		r = KM_ERR_PEER;
		goto fail;
	}
	*out = q;
	return 0;
fail:
	qmpc_close(q);
	return r;
}

void qmpc_close(struct qmpc *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	qmp_linebuf_free(q->lb);
	free(q);
}

int qmpc_call(struct qmpc *q, const char *cmd, json_t *args, int timeout_ms, json_t **ret,
	      char *err, size_t errlen)
{
	json_t *req = json_pack("{s:s, s:o}", "execute", cmd, "arguments",
				args ? args : json_object());
	json_t *reply = NULL, *v;
	const char *line;
	char *s = NULL;
	size_t len, off = 0;
	ssize_t n;
	int r;

	*ret = NULL;
	if (!req || !(s = json_dumps(req, JSON_COMPACT))) {
		r = -ENOMEM;
		goto out;
	}
	len = strlen(s);
	s[len++] = '\n';	/* json_dumps left room: replaces the NUL */
	while (off < len) {
		n = send(q->fd, s + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = KM_ERR_PEER;
			goto out;
		}
		off += (size_t)n;
	}
	/* Skip asynchronous events: the reply is the next non-event line. */
	for (;;) {
		if ((r = qmpc_line(q, timeout_ms, &line, &len)) != 0)
			goto out;
		json_decref(reply);
		if (!(reply = json_loadb(line, len, 0, NULL))) {
			r = KM_ERR_PEER;
			goto out;
		}
		if (!json_object_get(reply, "event"))
			break;
	}
	if ((v = json_object_get(reply, "return")) != NULL) {
		*ret = json_incref(v);
		r = 0;
	} else {
		const char *desc = NULL;

		json_unpack(reply, "{s:{s:s}}", "error", "desc", &desc);
		snprintf(err, errlen, "%s", desc ? desc : "malformed reply");
		r = KM_ERR_REFUSED;
	}
out:
	json_decref(reply);
	json_decref(req);
	free(s);
	return r;
}
