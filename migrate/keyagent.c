/* kvm-migrated's key agent: see keyagent.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"
#include "err.h"
#include "migrate/keyagent.h"

#define AGENT_REPLY_MS	5000	/* a signature takes well under a millisecond */

/* Request: the digest. Reply: one status byte (0 ok), then the DER signature or a text. */
struct agent_msg {
	uint8_t status;
	uint8_t len;
	uint8_t data[CHAN_ERR_MAX > 255 ? 255 : CHAN_ERR_MAX];
};

static void keyagent__serve(const char *dir, int fd)
{
	struct chan_tls_key *key = NULL;
	struct agent_msg m = { 0 };
	char err[CHAN_ERR_MAX] = "";
	uint8_t digest[64];
	ssize_t n;

	prctl(PR_SET_NAME, "km-keyagent");
	prctl(PR_SET_DUMPABLE, 0);	/* no core, no ptrace by the same user */
	if (chan_tls_key_load(dir, &key, err, sizeof(err)) != 0) {
		m.status = 1;
		m.len = (uint8_t)strnlen(err, sizeof(m.data));
		memcpy(m.data, err, m.len);
		(void)send(fd, &m, sizeof(m), MSG_NOSIGNAL);
		_exit(1);
	}
	(void)send(fd, &m, sizeof(m), MSG_NOSIGNAL);	/* ready */
	/* Until the daemon goes: its end closing ends this loop. */
	while ((n = recv(fd, digest, sizeof(digest), 0)) > 0) {
		size_t len = sizeof(m.data);

		memset(&m, 0, sizeof(m));
		if (chan_tls_key_sign(key, digest, (size_t)n, m.data, &len) != 0)
			m.status = 1;
		else
			m.len = (uint8_t)len;
		if (send(fd, &m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m))
			break;
	}
	chan_tls_key_free(key);
	_exit(0);
}

static int keyagent__reply(int fd, struct agent_msg *m)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	while ((r = poll(&p, 1, AGENT_REPLY_MS)) < 0 && errno == EINTR)
		;
	if (r == 0)
		return KM_ERR_TIMEOUT;
	if (r < 0)
		return km_errno();
	if (recv(fd, m, sizeof(*m), 0) != (ssize_t)sizeof(*m))
		return KM_ERR_PEER;
	return 0;
}

int keyagent__start(const char *dir, int *fd, pid_t *pid, char *err, size_t errlen)
{
	struct agent_msg m;
	int sp[2], r;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return km_errno();
	if ((*pid = fork()) < 0) {
		r = km_errno();
		close(sp[0]);
		close(sp[1]);
		return r;
	}
	if (*pid == 0) {
		close(sp[0]);
		keyagent__serve(dir, sp[1]);
	}
	close(sp[1]);
	if ((r = keyagent__reply(sp[0], &m)) != 0 || m.status != 0) {
		if (r == 0)
			snprintf(err, errlen, "%.*s", (int)m.len, (const char *)m.data);
		else
			snprintf(err, errlen, "the key agent did not start: %s", km_strerror(r));
		close(sp[0]);
		return r ? r : KM_ERR_INVALID;
	}
	*fd = sp[0];
	return 0;
}

int keyagent__sign(int fd, const uint8_t *digest, size_t len, uint8_t *sig, size_t *siglen)
{
	struct agent_msg m;
	int r;

	if (len == 0 || len > 64)
		return KM_ERR_INVALID;
	if (send(fd, digest, len, MSG_NOSIGNAL) != (ssize_t)len)
		return km_errno();
	if ((r = keyagent__reply(fd, &m)) != 0)
		return r;
	if (m.status != 0 || m.len > *siglen)
		return KM_ERR_AUTH;
	memcpy(sig, m.data, m.len);
	*siglen = m.len;
	return 0;
}
