/*
 * Channels: a connected byte stream over a unix socket, plain TCP, or TLS
 * 1.3 over TCP with mutual X.509 authentication (OpenSSL). Migration
 * streams and the daemon's queries travel over these; nothing above this
 * file knows which kind it has.
 *
 * Addresses: "unix:PATH", "HOST:PORT", "[V6ADDR]:PORT", or "HOST" (the
 * port is then CHAN_DEFAULT_PORT). HOST may be a name or a numeric address;
 * an empty HOST (":PORT") listens on every address, IPv4 and IPv6.
 *
 * TLS material follows QEMU's x509 directory layout: ca-cert.pem,
 * server-cert.pem, server-key.pem (the listening side), client-cert.pem,
 * client-key.pem (the connecting side). Both sides present a certificate
 * and verify the other's chain against ca-cert.pem; the client also checks
 * that the server certificate names the host it connected to (DNS or IP
 * subjectAltName; the subject CN is never used for that). TLS 1.3 only.
 *
 * A channel is used by one thread at a time, except that chan_abort may
 * be called from any thread. Timeouts are in ms; 0 means none.
 *
 * Errors are the project's negative codes; every failure also writes a
 * one-line human reason into the caller's err buffer (e.g. "client
 * certificate verify failed: certificate has expired"), which callers log.
 */
#ifndef KM_CHAN_H
#define KM_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHAN_DEFAULT_PORT	4917
#define CHAN_ERR_MAX		256

struct chan;
struct chan_tls;	/* an SSL_CTX and what it was loaded from */

/*
 * Loads the TLS material of dir for one side (server: server-cert/key,
 * client: client-cert/key; ca-cert.pem for both). KM_ERR_INVALID with the
 * missing or unreadable file named in err. *out owned by the caller.
 */
int chan_tls_new(const char *dir, bool server, struct chan_tls **out, char *err, size_t errlen);

/*
 * Private keys kept out of the process that speaks TLS (kvm-migrated's key
 * agent). chan_tls_sign_fn: the server key's ECDSA signature (DER, at most
 * CHAN_TLS_SIG_MAX bytes) of a handshake digest, made elsewhere; 0 or an
 * error.
 */
#define CHAN_TLS_SIG_MAX	160
typedef int (*chan_tls_sign_fn)(const uint8_t *digest, size_t len, uint8_t *sig,
				size_t *siglen, void *ctx);
/*
 * A server context as chan_tls_new(dir, true, ...) makes, except that
 * server-key.pem is never read: the certificate's public key signs
 * through sign(..., sign_ctx). KM_ERR_UNSUPPORTED unless the key is ECDSA.
 */
int chan_tls_new_remote_key(const char *dir, chan_tls_sign_fn sign, void *sign_ctx,
			    struct chan_tls **out, char *err, size_t errlen);
/* The key agent's side: dir/server-key.pem (private to its user, ECDSA), and signing. */
struct chan_tls_key;
int chan_tls_key_load(const char *dir, struct chan_tls_key **out, char *err, size_t errlen);
/* *siglen: the room at sig (at least CHAN_TLS_SIG_MAX), then the length. */
int chan_tls_key_sign(struct chan_tls_key *k, const uint8_t *digest, size_t len, uint8_t *sig,
		      size_t *siglen);
void chan_tls_key_free(struct chan_tls_key *k);	/* NULL-safe; the key is cleared */
/* NULL-safe. */
void chan_tls_free(struct chan_tls *tls);

/*
 * A listening socket for addr (unix: a stale socket file is replaced, the
 * new one is mode 0600; TCP: SO_REUSEADDR, port 0 picks a free one).
 * Returns the fd (CLOEXEC) or a negative error.
 */
int chan_listen(const char *addr, char *err, size_t errlen);
/*
 * For an accepted unix socket: 0 if the peer runs as this process's user
 * or as root (the only ones a unix listener of this project serves: it has
 * no TLS), KM_ERR_AUTH otherwise; *uid is the peer's user.
 */
int chan_unix_peer_check(int fd, unsigned int *uid);
/* The TCP port a listening or connected socket is bound to, or 0. */
int chan_local_port(int fd);

/*
 * Wraps an accepted fd (the channel owns it from now, even on failure).
 * With tls (loaded for the server side), runs the server handshake,
 * requiring a client certificate signed by the CA, within timeout_ms:
 * KM_ERR_AUTH with the reason (unknown CA, expired, no certificate, not
 * TLS at all...) on failure; KM_ERR_PEER if the client hung up first.
 */
int chan_accept_fd(int fd, struct chan_tls *tls, int timeout_ms, struct chan **out,
		   char *err, size_t errlen);

/*
 * Connects to addr within timeout_ms (connect and handshake together);
 * with tls (required for TCP unless the caller deliberately passes NULL
 * for --insecure), the client handshake and the server's certificate and
 * name are checked (over a unix socket, the chain only).
 * -ECONNREFUSED, -EHOSTUNREACH, KM_ERR_TIMEOUT, KM_ERR_AUTH...
 * In TLS 1.3 the server judges the client's certificate after the
 * client's handshake has ended: a refusal shows at the first chan_read.
 */
int chan_connect(const char *addr, struct chan_tls *tls, int timeout_ms, struct chan **out,
		 char *err, size_t errlen);
/*
 * The same, given up with KM_ERR_CANCELED as soon as cancel_fd (an
 * eventfd or a pipe's read end, < 0: none) becomes readable, whether the
 * connect or the handshake is waiting: another thread's cancel does not
 * wait out timeout_ms on a peer that accepted and went silent.
 */
int chan_connect_cancellable(const char *addr, struct chan_tls *tls, int timeout_ms,
			     int cancel_fd, struct chan **out, char *err, size_t errlen);

/*
 * A channel over an open file (a checkpoint being written or read), so
 * that a record stream reads and writes files as it does sockets. Takes
 * fd (closed by chan_close; durability, fsync, is the caller's business).
 * Reads return KM_ERR_END at the end of the file; a write error is the
 * file system's (-ENOSPC...). name shows as the peer in messages.
 */
int chan_file(int fd, const char *name, struct chan **out);

/*
 * Writes all of len bytes (blocking). 0, or a negative error:
 * KM_ERR_PEER if the peer is gone, KM_ERR_TIMEOUT past the I/O timeout.
 */
int chan_write(struct chan *c, const void *data, size_t len);
/*
 * Reads up to len bytes, at least 1 (blocking; 0 if len is 0). Returns
 * the count, or KM_ERR_END on an orderly close, KM_ERR_PEER on a reset or
 * a TLS error, KM_ERR_AUTH if the TLS peer's alert refused our
 * certificate, KM_ERR_TIMEOUT past the I/O timeout.
 */
int64_t chan_read(struct chan *c, void *data, size_t len);
/*
 * Reads exactly len bytes; KM_ERR_TRUNCATED if the stream ends after
 * some of them, KM_ERR_END if it ends before the first.
 */
int chan_read_full(struct chan *c, void *data, size_t len);
/*
 * Both directions' timeout, in ms (0: none): the longest a read or write
 * waits without any progress, so a slow but moving transfer of a large
 * buffer does not time out. The default is none; protocol code sets one
 * so that a silent peer cannot block it forever.
 */
int chan_set_timeout(struct chan *c, int timeout_ms);
/*
 * Makes blocked and later reads and writes fail at once with
 * KM_ERR_CANCELED (shutdown(2) of the socket); callable from another
 * thread to cancel. The channel must still be closed with chan_close.
 */
void chan_abort(struct chan *c);
/* Sends close_notify (TLS) and closes. NULL-safe. */
void chan_close(struct chan *c);

/*
 * Before closing after an error the peer still has to read (a REC_ERROR):
 * stop writing (the peer reads our last words, then EOF) and read away
 * what the peer still sends, until it closes or ms have passed, so that
 * closing does not reset the connection and lose those words. Unusable
 * afterwards but for chan_close.
 */
void chan_linger(struct chan *c, int ms);
/* The socket descriptor (for poll). */
int chan_fd(const struct chan *c);
/*
 * Who the peer is, for logs: "CN=host-b (192.0.2.1:4917)", "unix", or the
 * address for plain TCP. Never NULL.
 */
const char *chan_peer(const struct chan *c);
/* The CN of the peer's certificate (verified by the handshake); "" without TLS. */
const char *chan_peer_cn(const struct chan *c);
/* True for a TLS channel. */
bool chan_is_tls(const struct chan *c);

#endif
