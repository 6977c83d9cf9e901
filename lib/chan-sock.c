/*
 * Channels' sockets (see chan.h): addresses, listening, and connecting
 * within a deadline. chan.c turns a connected socket into a channel.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "chan.h"
#include "chan-int.h"
#include "err.h"

/* A parsed address: a unix path, or a host ("" if none) and a port. */
struct chan_addr {
	bool is_unix;
	struct sockaddr_un sun;
	char host[CHAN_HOST_MAX];
	char port[8];
};

static int chan_parse_port(const char *s, struct chan_addr *a)
{
	char *end;
	long p;

	if (s == NULL) {
		snprintf(a->port, sizeof(a->port), "%d", CHAN_DEFAULT_PORT);
		return 0;
	}
	if (!isdigit((unsigned char)s[0]))
		return KM_ERR_INVALID;
	errno = 0;
	p = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || p < 0 || p > 65535)
		return KM_ERR_INVALID;
	snprintf(a->port, sizeof(a->port), "%ld", p);
	return 0;
}

/* "unix:PATH", "[V6]:PORT", "HOST:PORT", "HOST"; a bare "V6" is a host. */
static int chan_parse(const char *addr, struct chan_addr *a, char *err, size_t errlen)
{
	const char *host = addr, *port = NULL, *rb, *colon;
	size_t hlen;

	memset(a, 0, sizeof(*a));
	if (addr == NULL) {
		chan__errf(err, errlen, "no address");
		return KM_ERR_INVALID;
	}
	if (strncmp(addr, "unix:", 5) == 0) {
		a->is_unix = true;
		a->sun.sun_family = AF_UNIX;
		if (addr[5] == '\0' || strlen(addr + 5) >= sizeof(a->sun.sun_path))
			goto bad;
		strcpy(a->sun.sun_path, addr + 5);
		return 0;
	}
	if (addr[0] == '[') {
		if ((rb = strchr(addr, ']')) == NULL || (rb[1] != '\0' && rb[1] != ':'))
			goto bad;
		host = addr + 1;
		hlen = (size_t)(rb - host);
		port = rb[1] == ':' ? rb + 2 : NULL;
	} else if ((colon = strchr(addr, ':')) != NULL && strchr(colon + 1, ':') == NULL) {
		hlen = (size_t)(colon - addr);
		port = colon + 1;
	} else {
		hlen = strlen(addr);
	}
	if (hlen >= sizeof(a->host) || chan_parse_port(port, a) != 0)
		goto bad;
	memcpy(a->host, host, hlen);
	return 0;
bad:
	chan__errf(err, errlen, "bad address '%s'", addr);
	return KM_ERR_INVALID;
}

void chan__fmt_sa(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN], serv[8];

	if (sa->sa_family == AF_UNIX) {
		snprintf(out, outlen, "unix");
		return;
	}
	if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(out, outlen, "?");
		return;
	}
	snprintf(out, outlen, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

static int chan_resolve(const char *host, const char *port, const struct addrinfo *hints,
			struct addrinfo **res, char *err, size_t errlen)
{
	int r = getaddrinfo(host, port, hints, res);

	if (r == 0)
		return 0;
	*res = NULL;
	if (r == EAI_SYSTEM) {
		r = km_errno();
		chan__errf(err, errlen, "cannot resolve %s: %s", host, km_strerror(r));
		return r;
	}
	chan__errf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(r));
	return KM_ERR_INVALID;
}

/*
 * A socket file nobody accepts on is left behind by a crash: replace it.
 * One that someone accepts on, or that is not a socket, stays. (Another
 * process may bind between our probe and unlink; the loser's bind fails.)
 */
static int chan_unlink_stale(const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, r;

	if (lstat(sun->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : km_errno();
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return km_errno();
	/* Non-blocking: a live listener with a full backlog gives EAGAIN. */
	r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0 ? 0 : -errno;
	close(fd);
	if (r != -ECONNREFUSED)
		return -EADDRINUSE;
	return unlink(sun->sun_path) == 0 || errno == ENOENT ? 0 : km_errno();
}

int chan_unix_peer_check(int fd, unsigned int *uid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	*uid = (unsigned int)-1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return km_errno();
	*uid = (unsigned int)cr.uid;
	return cr.uid == 0 || cr.uid == geteuid() ? 0 : KM_ERR_AUTH;
}

static int chan_listen_unix(const struct sockaddr_un *sun, char *err, size_t errlen)
{
	int fd, r;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		r = km_errno();
		goto out;
	}
	r = bind(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0 ? 0 : km_errno();
	if (r == -EADDRINUSE && (r = chan_unlink_stale(sun)) == 0)
		r = bind(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0 ? 0 : km_errno();
	/* Beside the peer check at accept: no other user may even connect. */
	if (r == 0 && chmod(sun->sun_path, 0600) < 0)
		r = km_errno();
	if (r == 0 && listen(fd, SOMAXCONN) < 0)
		r = km_errno();
out:
	if (r == 0)
		return fd;
	chan__errf(err, errlen, "listen on unix:%s: %s", sun->sun_path, km_strerror(r));
	if (fd >= 0)
		close(fd);
	return r;
}

/* dual: an IPv6 socket also takes IPv4 (for the "every address" case). */
static int chan_listen_tcp(const char *host, const char *port, bool dual,
			   char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	int fd = -1, r, one = 1, v6only = dual ? 0 : 1;

	if ((r = chan_resolve(host, port, &hints, &res, err, errlen)) != 0)
		return r;
	r = -EADDRNOTAVAIL;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0)) < 0) {
			r = km_errno();
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
			break;
		r = km_errno();
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0)
		return fd;
	chan__errf(err, errlen, "listen on %s port %s: %s", host, port, km_strerror(r));
	return r;
}

int chan_listen(const char *addr, char *err, size_t errlen)
{
	struct chan_addr a;
	int r;

	if ((r = chan_parse(addr, &a, err, errlen)) != 0)
		return r;
	if (a.is_unix)
		return chan_listen_unix(&a.sun, err, errlen);
	if (a.host[0] != '\0')
		return chan_listen_tcp(a.host, a.port, false, err, errlen);
	/* No host: every address, of both families where the host has IPv6. */
	if ((r = chan_listen_tcp("::", a.port, true, err, errlen)) >= 0)
		return r;
	return chan_listen_tcp("0.0.0.0", a.port, false, err, errlen);
}

int chan_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

/* A connect bounded by deadline on a non-blocking fd: 0 or a negative error. */
static int chan_connect_sa(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline,
			   int cancel_fd)
{
	socklen_t sl = sizeof(int);
	int r, soerr = 0;

	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EINTR)
		return km_errno();
	if ((r = chan__wait(fd, POLLOUT, deadline, cancel_fd)) != 0)
		return r;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		return km_errno();
	return -soerr;
}

/* Tries each address of host in turn, all within one deadline: the fd or an error. */
static int chan_connect_tcp(const char *host, const char *port, int64_t deadline,
			    int cancel_fd, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	char where[64] = "?";
	int fd = -1, r;

	if ((r = chan_resolve(host, port, &hints, &res, err, errlen)) != 0)
		return r;
	r = -EHOSTUNREACH;
	for (ai = res; ai != NULL && r != KM_ERR_TIMEOUT && r != KM_ERR_CANCELED; ai = ai->ai_next) {
		chan__fmt_sa(ai->ai_addr, ai->ai_addrlen, where, sizeof(where));
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			r = km_errno();
			continue;
		}
		if ((r = chan_connect_sa(fd, ai->ai_addr, ai->ai_addrlen, deadline, cancel_fd)) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0)
		return fd;
	chan__errf(err, errlen, "connect to %s: %s", where, km_strerror(r));
	return r;
}

static int chan_connect_unix(const struct sockaddr_un *sun, int64_t deadline, int cancel_fd,
			     char *err, size_t errlen)
{
	int fd, r;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		r = km_errno();
	} else if ((r = chan_connect_sa(fd, (const struct sockaddr *)sun, sizeof(*sun),
					deadline, cancel_fd)) == 0) {
		return fd;
	} else {
		close(fd);
	}
	chan__errf(err, errlen, "connect to unix:%s: %s", sun->sun_path, km_strerror(r));
	return r;
}

int chan__dial(const char *addr, int64_t deadline, int cancel_fd, char *host, size_t hostlen,
	       char *err, size_t errlen)
{
	struct chan_addr a;
	int r;

	if ((r = chan_parse(addr, &a, err, errlen)) != 0)
		return r;
	host[0] = '\0';
	if (a.is_unix)
		return chan_connect_unix(&a.sun, deadline, cancel_fd, err, errlen);
	if (a.host[0] == '\0' || strlen(a.host) >= hostlen) {
		chan__errf(err, errlen, "no host in '%s'", addr);
		return KM_ERR_INVALID;
	}
	strcpy(host, a.host);
	return chan_connect_tcp(a.host, a.port, deadline, cancel_fd, err, errlen);
}
