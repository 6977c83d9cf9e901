/*
 * Channels (see chan.h): connected sockets made channels, and their
 * blocking read and write loops. Addresses, listening and connecting are
 * in chan-sock.c, the TLS half in chan-tls.c.
 *
 * Every connected descriptor is non-blocking and every wait is a poll():
 * one mechanism bounds connect, handshake and I/O alike, and chan_abort
 * only has to shutdown(2) the socket, which wakes any poll on it at once.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chan.h"
#include "chan-int.h"
#include "err.h"

#define CHAN_PEER_MAX	200
/* One read or write step's size: keeps counts far inside int64_t and int. */
#define CHAN_IO_MAX	((size_t)1 << 30)

struct chan {
	int fd;
	struct ssl_st *ssl;	/* NULL for a plain channel */
	bool file;		/* a file, not a socket (chan_file) */
	int timeout_ms;		/* longest wait without progress; 0: none */
	atomic_bool aborted;	/* chan_abort may run in another thread */
	char peer[CHAN_PEER_MAX];
	char cn[128];		/* the peer certificate's CN; "" without TLS */
};

void chan__errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	char *p;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	/* Reasons quote peers' names and certificates: keep them one line. */
	for (p = err; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
}

int64_t chan__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t chan_deadline(int timeout_ms)
{
	return timeout_ms > 0 ? chan__now_ms() + timeout_ms : -1;
}

int chan__wait(int fd, short events, int64_t deadline, int cancel_fd)
{
	struct pollfd p[2] = { { .fd = fd, .events = events }, { .fd = cancel_fd, .events = POLLIN } };
	int64_t left;
	int n;

	for (;;) {
		left = deadline < 0 ? -1 : deadline - chan__now_ms();
		if (deadline >= 0 && left <= 0)
			return KM_ERR_TIMEOUT;
		n = poll(p, cancel_fd >= 0 ? 2 : 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0 && cancel_fd >= 0 && p[1].revents)
			return KM_ERR_CANCELED;
		/* Readiness, an error or a hangup: the next call reports which. */
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return km_errno();
	}
}

/*
 * Non-blocking and close-on-exec; TCP_NODELAY because queries are small
 * request/reply exchanges (stream writers hand over large buffers anyway).
 */
static int chan_sock_setup(int fd)
{
	int fl, one = 1;

	if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return km_errno();
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));	/* fails on unix */
	return 0;
}

static int chan_wrap(int fd, struct ssl_st *ssl, struct chan **out)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char addr[64], cn[128];
	struct chan *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	c->fd = fd;
	c->ssl = ssl;
	atomic_init(&c->aborted, false);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
		chan__fmt_sa((struct sockaddr *)&ss, len, addr, sizeof(addr));
	else
		snprintf(addr, sizeof(addr), "?");
	if (ssl != NULL) {
		chan_tls_peer_cn(ssl, cn, sizeof(cn));
		snprintf(c->cn, sizeof(c->cn), "%s", cn);
		snprintf(c->peer, sizeof(c->peer), "CN=%s (%s)", cn, addr);
	} else {
		snprintf(c->peer, sizeof(c->peer), "%s", addr);
	}
	*out = c;
	return 0;
}

/*
 * The common end of accept and connect: socket options, the TLS handshake
 * if tls, the channel. Owns fd: closed on failure.
 */
static int chan_open(int fd, struct chan_tls *tls, bool server, const char *host,
		     int64_t deadline, int cancel_fd, struct chan **out, char *err, size_t errlen)
{
	struct ssl_st *ssl = NULL;
	int r;

	if ((r = chan_sock_setup(fd)) != 0) {
		chan__errf(err, errlen, "socket setup: %s", km_strerror(r));
		goto out_close;
	}
	if (tls != NULL && (r = chan_tls_handshake(tls, server, fd, host, deadline, cancel_fd,
						   &ssl, err, errlen)) != 0)
		goto out_close;
	if ((r = chan_wrap(fd, ssl, out)) == 0)
		return 0;
	chan__errf(err, errlen, "%s", km_strerror(r));
	chan_tls_end(ssl, false);
out_close:
	close(fd);
	return r;
}

int chan_file(int fd, const char *name, struct chan **out)
{
	struct chan *c;

	*out = NULL;
	if (fd < 0)
		return KM_ERR_INVALID;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	c->fd = fd;
	c->file = true;
	atomic_init(&c->aborted, false);
	snprintf(c->peer, sizeof(c->peer), "%s", name ? name : "file");
	*out = c;
	return 0;
}

int chan_accept_fd(int fd, struct chan_tls *tls, int timeout_ms, struct chan **out,
		   char *err, size_t errlen)
{
	*out = NULL;
	if (fd < 0)
		return KM_ERR_INVALID;
	return chan_open(fd, tls, true, NULL, chan_deadline(timeout_ms), -1, out, err, errlen);
}

int chan_connect_cancellable(const char *addr, struct chan_tls *tls, int timeout_ms,
			     int cancel_fd, struct chan **out, char *err, size_t errlen)
{
	int64_t deadline = chan_deadline(timeout_ms);
	char host[CHAN_HOST_MAX];
	int fd;

	*out = NULL;
	if ((fd = chan__dial(addr, deadline, cancel_fd, host, sizeof(host), err, errlen)) < 0)
		return fd;
	/* A unix socket has no name to check: its file's permissions guard it. */
	return chan_open(fd, tls, false, host[0] ? host : NULL, deadline, cancel_fd, out, err,
			 errlen);
}

int chan_connect(const char *addr, struct chan_tls *tls, int timeout_ms, struct chan **out,
		 char *err, size_t errlen)
{
	return chan_connect_cancellable(addr, tls, timeout_ms, -1, out, err, errlen);
}

/* After chan_abort the socket's EOF or EPIPE is our own doing, not the peer's. */
static int chan_fail(struct chan *c, int r)
{
	return atomic_load(&c->aborted) ? KM_ERR_CANCELED : r;
}

static int64_t chan_read_step(struct chan *c, void *data, size_t len, short *want)
{
	ssize_t n;

	if (c->ssl != NULL)
		return chan_tls_read(c->ssl, data, len, want);
	n = c->file ? read(c->fd, data, len) : recv(c->fd, data, len, 0);
	if (n > 0)
		return n;
	if (n == 0)
		return KM_ERR_END;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		*want = POLLIN;
		return 0;
	}
	return errno == ECONNRESET ? KM_ERR_PEER : km_errno();
}

static int64_t chan_write_step(struct chan *c, const void *data, size_t len, short *want)
{
	ssize_t n;

	if (c->ssl != NULL)
		return chan_tls_write(c->ssl, data, len, want);
	n = c->file ? write(c->fd, data, len) : send(c->fd, data, len, MSG_NOSIGNAL);
	if (n > 0 || (n == 0 && !c->file))
		return n;
	if (n == 0)
		return -EIO;	/* a file that takes nothing: no progress will come */
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		*want = POLLOUT;
		return 0;
	}
	return errno == EPIPE || errno == ECONNRESET ? KM_ERR_PEER : km_errno();
}

int64_t chan_read(struct chan *c, void *data, size_t len)
{
	short want = POLLIN;
	int64_t n;
	int r;

	if (c == NULL || (data == NULL && len > 0))
		return KM_ERR_INVALID;
	if (len == 0)
		return 0;
	if (len > CHAN_IO_MAX)
		len = CHAN_IO_MAX;
	for (;;) {
		if (atomic_load(&c->aborted))
			return KM_ERR_CANCELED;
		if ((n = chan_read_step(c, data, len, &want)) != 0)
			return n > 0 ? n : chan_fail(c, (int)n);
		if ((r = chan__wait(c->fd, want, chan_deadline(c->timeout_ms), -1)) != 0)
			return chan_fail(c, r);
	}
}

int chan_read_full(struct chan *c, void *data, size_t len)
{
	size_t got = 0;
	int64_t n;

	if (data == NULL && len > 0)
		return KM_ERR_INVALID;
	while (got < len) {
		if ((n = chan_read(c, (uint8_t *)data + got, len - got)) < 0)
			return n == KM_ERR_END && got > 0 ? KM_ERR_TRUNCATED : (int)n;
		got += (size_t)n;
	}
	return 0;
}

int chan_write(struct chan *c, const void *data, size_t len)
{
	const uint8_t *p = data;
	short want = POLLOUT;
	int64_t n;
	int r;

	if (c == NULL || (data == NULL && len > 0))
		return KM_ERR_INVALID;
	while (len > 0) {
		if (atomic_load(&c->aborted))
			return KM_ERR_CANCELED;
		n = chan_write_step(c, p, len > CHAN_IO_MAX ? CHAN_IO_MAX : len, &want);
		if (n < 0)
			return chan_fail(c, (int)n);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if ((r = chan__wait(c->fd, want, chan_deadline(c->timeout_ms), -1)) != 0) {
			return chan_fail(c, r);
		}
	}
	return 0;
}

int chan_set_timeout(struct chan *c, int timeout_ms)
{
	if (c == NULL || timeout_ms < 0)
		return KM_ERR_INVALID;
	c->timeout_ms = timeout_ms;
	return 0;
}

void chan_abort(struct chan *c)
{
	if (c == NULL)
		return;
	/* The flag first: whoever wakes from the shutdown must see it. */
	atomic_store(&c->aborted, true);
	shutdown(c->fd, SHUT_RDWR);
}

void chan_close(struct chan *c)
{
	if (c == NULL)
		return;
	/* After an abort the socket is shut: no close_notify can go out. */
	chan_tls_end(c->ssl, !atomic_load(&c->aborted));
	close(c->fd);
	free(c);
}

int chan_fd(const struct chan *c)
{
	return c != NULL ? c->fd : -1;
}

void chan_linger(struct chan *c, int ms)
{
	int64_t deadline;
	char sink[16384];
	ssize_t n;
	int r;

	if (c == NULL || c->fd < 0)
		return;
	shutdown(c->fd, SHUT_WR);
	deadline = chan_deadline(ms);
	for (;;) {
		/* Raw reads: what arrives now is to be thrown away, TLS or not. */
		n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			return;
		if (n > 0)
			continue;
		if ((r = chan__wait(c->fd, POLLIN, deadline, -1)) != 0)
			return;
	}
}

const char *chan_peer_cn(const struct chan *c)
{
	return c != NULL ? c->cn : "";
}

const char *chan_peer(const struct chan *c)
{
	return c != NULL ? c->peer : "?";
}

bool chan_is_tls(const struct chan *c)
{
	return c != NULL && c->ssl != NULL;
}
