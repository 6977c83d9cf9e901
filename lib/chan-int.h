/*
 * Internal to chan.c, chan-sock.c and chan-tls.c; other modules use chan.h.
 * Only chan-tls.c and chan-tls-key.c include OpenSSL.
 */
#ifndef KM_CHAN_INT_H
#define KM_CHAN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "chan.h"

/* Longest host name or numeric address in an address. */
#define CHAN_HOST_MAX	256

struct ssl_st;	/* OpenSSL's SSL */

/* Formats a one-line reason into err (NULL-safe); control characters become '?'. */
void chan__errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* CLOCK_MONOTONIC in ms. */
int64_t chan__now_ms(void);
/*
 * Waits until fd is ready for events (POLLIN/POLLOUT) or the deadline (a
 * chan__now_ms() value; < 0: none) passes: 0, KM_ERR_TIMEOUT or -errno;
 * KM_ERR_CANCELED as soon as cancel_fd (if >= 0) is readable.
 */
int chan__wait(int fd, short events, int64_t deadline, int cancel_fd);

/* "ADDR:PORT", "[V6ADDR]:PORT" or "unix" for a peer's or our address. */
void chan__fmt_sa(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen);
/*
 * Connects a non-blocking socket to addr before deadline: the fd, or a
 * negative error with the reason in err. host receives the address's host
 * for the certificate name check ("" for a unix socket).
 */
int chan__dial(const char *addr, int64_t deadline, int cancel_fd, char *host, size_t hostlen,
	       char *err, size_t errlen);

/*
 * Runs the server or client handshake on the connected non-blocking fd
 * before deadline or cancel_fd (see chan__wait) (KM_ERR_INVALID if tls
 * was loaded for the other side).
 * host, for a client, is the name or numeric address the server's
 * certificate must carry (NULL: the chain only). *out owned by the
 * caller, who still owns fd.
 */
int chan_tls_handshake(struct chan_tls *tls, bool server, int fd, const char *host,
		       int64_t deadline, int cancel_fd, struct ssl_st **out, char *err,
		       size_t errlen);
/*
 * One non-blocking step: the count moved (> 0); or 0 with *want set to
 * POLLIN or POLLOUT, to wait for before calling again with the same
 * arguments; or KM_ERR_END (close_notify), KM_ERR_AUTH (the peer's alert
 * refused our certificate), KM_ERR_PEER.
 */
int64_t chan_tls_read(struct ssl_st *ssl, void *data, size_t len, short *want);
int64_t chan_tls_write(struct ssl_st *ssl, const void *data, size_t len, short *want);
/* The peer certificate's subject CN made printable, or "" if none. */
void chan_tls_peer_cn(struct ssl_st *ssl, char *out, size_t outlen);
/* Sends close_notify if notify (best effort, never waits) and frees. NULL-safe. */
void chan_tls_end(struct ssl_st *ssl, bool notify);
/* KM_ERR_AUTH (with the fix in err) if the key file at path is open to others. */
int chan_tls__key_private(const char *path, char *err, size_t errlen);
/* Installs in ctx (its certificate loaded) the public key signing through sign. */
struct ssl_ctx_st;
int chan_tls__remote_key(struct ssl_ctx_st *ctx, chan_tls_sign_fn sign, void *sctx, char *err,
			 size_t errlen);

#endif
