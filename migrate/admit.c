/* kvm-migrated's admission control: see admit.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "migrate/admit.h"

enum admit_kind {
	MSG_STATE = 1,		/* child: value = enum admit_state */
	MSG_RECEIVE = 2,	/* child: may it receive a VM of value guest bytes? */
	MSG_GRANTED = 3,	/* daemon */
	MSG_REFUSED = 4,	/* daemon: why in text */
	MSG_SIGN = 5,		/* child: sign the digest in text (value bytes) */
	MSG_SIGNED = 6,		/* daemon: the signature in text (value bytes) */
};

struct admit_msg {
	uint32_t kind;
	uint32_t reserved;
	uint64_t value;
	char text[200];
};

enum child_state { CHILD_HANDSHAKE = 0 };	/* then enum admit_state */

struct child {
	pid_t pid;
	int state;
	int fd;			/* -1 once the child closed it */
	uint64_t mem;		/* guest bytes granted */
	char addr[64];
};

struct admit {
	struct admit_limits lim;
	admit_sign_fn sign;	/* the key agent, for children in their handshake */
	void *sign_ctx;
	struct child *c;
	size_t n, cap;
};

struct admit *admit__new(const struct admit_limits *lim, admit_sign_fn sign, void *sign_ctx)
{
	struct admit *a = calloc(1, sizeof(*a));

	if (a) {
		a->lim = *lim;
		a->sign = sign;
		a->sign_ctx = sign_ctx;
	}
	return a;
}

void admit__free(struct admit *a)
{
	size_t i;

	if (!a)
		return;
	for (i = 0; i < a->n; i++)
		if (a->c[i].fd >= 0)
			close(a->c[i].fd);
	free(a->c);
	free(a);
}

static uint64_t admit__mem_in_use(const struct admit *a, unsigned int *holders)
{
	uint64_t sum = 0;
	size_t i;

	*holders = 0;
	for (i = 0; i < a->n; i++) {
		if (a->c[i].mem) {
			sum += a->c[i].mem;
			(*holders)++;
		}
	}
	return sum;
}

static unsigned int admit__receives(const struct admit *a)
{
	unsigned int n = 0;
	size_t i;

	for (i = 0; i < a->n; i++)
		n += a->c[i].state == ADMIT_RECEIVE;
	return n;
}

void admit__counts(const struct admit *a, unsigned int *handshakes, unsigned int *receives,
		   unsigned int *vms)
{
	size_t i;

	*handshakes = *receives = *vms = 0;
	for (i = 0; i < a->n; i++) {
		if (a->c[i].state == CHILD_HANDSHAKE)
			(*handshakes)++;
		else if (a->c[i].state == ADMIT_RECEIVE)
			(*receives)++;
		else if (a->c[i].state == ADMIT_VM)
			(*vms)++;
	}
}

int admit__may_accept(struct admit *a, const char *addr, char *why, size_t whylen)
{
	unsigned int all = 0, peer = 0;
	size_t i;

	for (i = 0; i < a->n; i++) {
		if (a->c[i].state != CHILD_HANDSHAKE)
			continue;
		all++;
		if (!strcmp(a->c[i].addr, addr))
			peer++;
	}
	if (peer >= a->lim.per_peer) {
		snprintf(why, whylen, "%u connections from %s are already in their handshake", peer,
			 addr);
		return KM_ERR_REFUSED;
	}
	if (all >= a->lim.handshakes) {
		snprintf(why, whylen, "%u connections are already in their handshake", all);
		return KM_ERR_REFUSED;
	}
	return 0;
}

int admit__add(struct admit *a, pid_t pid, const char *addr, int fd)
{
	struct child *c;

	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;

		if (!(c = realloc(a->c, cap * sizeof(*c))))
			return -ENOMEM;
		a->c = c;
		a->cap = cap;
	}
	c = &a->c[a->n++];
	memset(c, 0, sizeof(*c));
	c->pid = pid;
	c->fd = fd;
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	return 0;
}

void admit__exited(struct admit *a, pid_t pid)
{
	size_t i;

	for (i = 0; i < a->n; i++) {
		if (a->c[i].pid != pid)
			continue;
		if (a->c[i].fd >= 0)
			close(a->c[i].fd);
		a->c[i] = a->c[--a->n];
		return;
	}
}

size_t admit__nr(const struct admit *a)
{
	return a->n;
}

int admit__fd(const struct admit *a, size_t index)
{
	return index < a->n ? a->c[index].fd : -1;
}

static void admit__send(int fd, const struct admit_msg *m)
{
	/* A child that went away is reaped by SIGCHLD; nothing to do here. */
	(void)send(fd, m, sizeof(*m), MSG_NOSIGNAL | MSG_DONTWAIT);
}

void admit__serve(struct admit *a, size_t index)
{
	struct child *c;
	struct admit_msg m, reply = { 0 };
	unsigned int holders;
	uint64_t used;
	ssize_t n;

	if (index >= a->n)
		return;
	c = &a->c[index];
	n = recv(c->fd, &m, sizeof(m), MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		/* The child closed its end (it became a VM and no longer reports). */
		close(c->fd);
		c->fd = -1;
		return;
	}
	if (n != (ssize_t)sizeof(m))
		return;
	switch (m.kind) {
	case MSG_STATE:
		if (m.value >= ADMIT_QUERY && m.value <= ADMIT_VM)
			c->state = (int)m.value;
		break;
	case MSG_RECEIVE:
		used = admit__mem_in_use(a, &holders) - c->mem;
		reply.kind = MSG_REFUSED;
		if (admit__receives(a) >= a->lim.receives) {
			snprintf(reply.text, sizeof(reply.text), "%u migrations are already arriving "
				 "here (kvm-migrated --max-receives)", admit__receives(a));
		} else if (m.value > a->lim.guest_mem || used > a->lim.guest_mem - m.value) {
			snprintf(reply.text, sizeof(reply.text), "guest memory budget: the VM has %llu "
				 "MiB, %llu MiB of the %llu MiB this host allows are taken by %u VM%s "
				 "received or arriving (kvm-migrated --max-guest-mem)",
				 (unsigned long long)(m.value >> 20), (unsigned long long)(used >> 20),
				 (unsigned long long)(a->lim.guest_mem >> 20), holders,
				 holders == 1 ? "" : "s");
		} else {
			c->mem = m.value;
			c->state = ADMIT_RECEIVE;
			reply.kind = MSG_GRANTED;
		}
		admit__send(c->fd, &reply);
		break;
	case MSG_SIGN: {
		size_t len = sizeof(reply.text);

		/* Only while its handshake runs: a VM process is no signing oracle. */
		if (c->state != CHILD_HANDSHAKE || !a->sign || m.value == 0 || m.value > 64 ||
		    a->sign((const uint8_t *)m.text, (size_t)m.value, (uint8_t *)reply.text, &len,
			    a->sign_ctx) != 0) {
			reply.kind = MSG_REFUSED;
			snprintf(reply.text, sizeof(reply.text), "no signature");
		} else {
			reply.kind = MSG_SIGNED;
			reply.value = len;
		}
		admit__send(c->fd, &reply);
		break;
	}
	default:
		log_warn("child %d: unknown report %u", (int)c->pid, m.kind);
	}
}

int admit__report(int fd, enum admit_state state)
{
	struct admit_msg m = { .kind = MSG_STATE, .value = (uint64_t)state };

	return send(fd, &m, sizeof(m), MSG_NOSIGNAL) == (ssize_t)sizeof(m) ? 0 : km_errno();
}

/* Sends m and waits for the daemon's answer into m. */
static int admit__ask(int fd, struct admit_msg *m, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	if (send(fd, m, sizeof(*m), MSG_NOSIGNAL) != (ssize_t)sizeof(*m))
		return km_errno();
	while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	if (r == 0)
		return KM_ERR_TIMEOUT;
	if (r < 0 || recv(fd, m, sizeof(*m), 0) != (ssize_t)sizeof(*m))
		return r < 0 ? km_errno() : KM_ERR_PEER;
	return 0;
}

int admit__ask_sign(int fd, const uint8_t *digest, size_t len, uint8_t *sig, size_t *siglen)
{
	struct admit_msg m = { .kind = MSG_SIGN, .value = len };
	int r;

	if (len == 0 || len > 64)
		return KM_ERR_INVALID;
	memcpy(m.text, digest, len);
	if ((r = admit__ask(fd, &m, 10000)) != 0)
		return r;
	if (m.kind != MSG_SIGNED || m.value > *siglen || m.value > sizeof(m.text))
		return KM_ERR_AUTH;
	memcpy(sig, m.text, (size_t)m.value);
	*siglen = (size_t)m.value;
	return 0;
}

int admit__ask_receive(int fd, uint64_t bytes, int timeout_ms, char *why, size_t whylen)
{
	struct admit_msg m = { .kind = MSG_RECEIVE, .value = bytes };
	int r;

	if ((r = admit__ask(fd, &m, timeout_ms)) != 0)
		return r;
	if (m.kind == MSG_GRANTED)
		return 0;
	m.text[sizeof(m.text) - 1] = 0;
	snprintf(why, whylen, "%s", m.text);
	return KM_ERR_REFUSED;
}
