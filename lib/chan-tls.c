/*
 * The TLS half of channels (see chan.h and chan-int.h), on OpenSSL 3.
 *
 * SSL objects move bytes through our own BIO, not BIO_s_socket(): that one
 * writes with write(2), which raises SIGPIPE when the peer has gone, and a
 * library should not depend on every caller ignoring that signal. Ours
 * uses send(MSG_NOSIGNAL) and is otherwise a plain socket BIO.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "chan.h"
#include "chan-int.h"
#include "err.h"
#include "log.h"

struct chan_tls {
	SSL_CTX *ctx;
	bool server;	/* loaded server-cert/key (else client-cert/key) */
};

static BIO_METHOD *chan_bio_method;
static pthread_once_t chan_bio_once = PTHREAD_ONCE_INIT;

static int chan_bio_write(BIO *b, const char *data, int len)
{
	ssize_t n = send((int)(intptr_t)BIO_get_data(b), data, (size_t)len, MSG_NOSIGNAL);

	BIO_clear_retry_flags(b);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		BIO_set_retry_write(b);
	return (int)n;
}

static int chan_bio_read(BIO *b, char *data, int len)
{
	ssize_t n = recv((int)(intptr_t)BIO_get_data(b), data, (size_t)len, 0);

	BIO_clear_retry_flags(b);
	if (n == 0)
		BIO_set_flags(b, BIO_FLAGS_IN_EOF);	/* what BIO_eof() reports */
	else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		BIO_set_retry_read(b);
	return (int)n;
}

static long chan_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_EOF:
		return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
	case BIO_C_GET_FD:
		if (ptr != NULL)
			*(int *)ptr = (int)(intptr_t)BIO_get_data(b);
		return (long)(intptr_t)BIO_get_data(b);
	default:
		return 0;
	}
}

static void chan_bio_init(void)
{
	BIO_METHOD *m;

	m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
			 "kvm-migrate socket");
	if (m == NULL || !BIO_meth_set_write(m, chan_bio_write) ||
	    !BIO_meth_set_read(m, chan_bio_read) || !BIO_meth_set_ctrl(m, chan_bio_ctrl)) {
		BIO_meth_free(m);
		return;
	}
	chan_bio_method = m;	/* lives as long as the process */
}

static BIO *chan_bio_new(int fd)
{
	BIO *b;

	if (pthread_once(&chan_bio_once, chan_bio_init) != 0 || chan_bio_method == NULL)
		return NULL;
	if ((b = BIO_new(chan_bio_method)) == NULL)
		return NULL;
	BIO_set_data(b, (void *)(intptr_t)fd);
	BIO_set_init(b, 1);
	return b;
}

/* An encrypted key would make OpenSSL prompt on the terminal: fail instead. */
static int chan_tls_no_passwd(char *buf, int size, int rw, void *u)
{
	return 0;
}

static const char *chan_tls_reason(unsigned long e)
{
	const char *s = e != 0 ? ERR_reason_error_string(e) : NULL;

	return s != NULL ? s : "unknown error";
}

static int chan_tls_path(char *out, size_t outlen, const char *dir, const char *name,
			 char *err, size_t errlen)
{
	if ((size_t)snprintf(out, outlen, "%s/%s", dir, name) >= outlen) {
		chan__errf(err, errlen, "TLS directory path too long: %s", dir);
		return KM_ERR_INVALID;
	}
	if (access(out, R_OK) < 0) {
		chan__errf(err, errlen, "cannot read %s: %s", out, km_strerror(km_errno()));
		return KM_ERR_INVALID;
	}
	return 0;
}

/* A private key others can read is no secret: refuse it, saying how to fix it. */
int chan_tls__key_private(const char *key, char *err, size_t errlen)
{
	struct stat st;

	if (stat(key, &st) < 0) {
		chan__errf(err, errlen, "cannot read %s: %s", key, km_strerror(km_errno()));
		return KM_ERR_INVALID;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		chan__errf(err, errlen, "%s is open to other users (mode %04o): chmod 600 it, "
			   "and consider the key compromised", key, (unsigned int)(st.st_mode & 07777));
		return KM_ERR_AUTH;
	}
	return 0;
}

/*
 * ca-crl.pem, if the directory has one (QEMU's layout): certificates it
 * revokes are refused, and every certificate of the chain is checked.
 */
static int chan_tls_load_crl(SSL_CTX *ctx, const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	X509_CRL *crl;
	FILE *f;
	int n = 0;

	if ((size_t)snprintf(path, sizeof(path), "%s/ca-crl.pem", dir) >= sizeof(path))
		return KM_ERR_INVALID;
	if (!(f = fopen(path, "re")))
		return errno == ENOENT ? 0 : (chan__errf(err, errlen, "cannot read %s: %s", path,
					      km_strerror(km_errno())), KM_ERR_INVALID);
	while ((crl = PEM_read_X509_CRL(f, NULL, NULL, NULL)) != NULL) {
		if (X509_STORE_add_crl(store, crl) != 1) {
			X509_CRL_free(crl);
			fclose(f);
			chan__errf(err, errlen, "cannot load %s: %s", path,
				   chan_tls_reason(ERR_peek_last_error()));
			return KM_ERR_INVALID;
		}
		X509_CRL_free(crl);
		n++;
	}
	fclose(f);
	ERR_clear_error();	/* the end of the file reads as an error */
	if (n == 0) {
		chan__errf(err, errlen, "%s holds no CRL", path);
		return KM_ERR_INVALID;
	}
	X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	return 0;
}

/* The CA, the certificate chain, the CRL, and the key (unless sign: then it signs). */
static int chan_tls_load(SSL_CTX *ctx, const char *dir, bool server, chan_tls_sign_fn sign,
			 void *sctx, char *err, size_t errlen)
{
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	const char *bad;
	int r;

	if ((r = chan_tls_path(ca, sizeof(ca), dir, "ca-cert.pem", err, errlen)) != 0 ||
	    (r = chan_tls_path(cert, sizeof(cert), dir, server ? "server-cert.pem" :
			       "client-cert.pem", err, errlen)) != 0)
		return r;
	if (sign) {
		if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
			bad = ca;
		} else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
			bad = cert;
		} else {
			if ((r = chan_tls__remote_key(ctx, sign, sctx, err, errlen)) != 0)
				return r;
			return chan_tls_load_crl(ctx, dir, err, errlen);
		}
		chan__errf(err, errlen, "cannot load %s: %s", bad,
			   chan_tls_reason(ERR_peek_last_error()));
		return KM_ERR_INVALID;
	}
	if ((r = chan_tls_path(key, sizeof(key), dir, server ? "server-key.pem" :
			       "client-key.pem", err, errlen)) != 0 ||
	    (r = chan_tls__key_private(key, err, errlen)) != 0)
		return r;
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
		bad = ca;
	else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		bad = cert;
	else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		bad = key;
	else if (SSL_CTX_check_private_key(ctx) != 1) {
		chan__errf(err, errlen, "%s does not match %s", key, cert);
		return KM_ERR_INVALID;
	} else
		return chan_tls_load_crl(ctx, dir, err, errlen);
	chan__errf(err, errlen, "cannot load %s: %s", bad, chan_tls_reason(ERR_peek_last_error()));
	return KM_ERR_INVALID;
}

static int chan_tls_setup(SSL_CTX *ctx, bool server)
{
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1)
		return KM_ERR_UNSUPPORTED;
	/* chan_write loops itself; partial writes let it see progress. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	/*
	 * Read ahead: one recv for many TLS records instead of two per record
	 * (header, then body). Safe because chan_read tries SSL_read before
	 * it polls, so data buffered inside OpenSSL is never waited for.
	 */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, 256 * 1024);
	SSL_CTX_set_default_passwd_cb(ctx, chan_tls_no_passwd);
	if (!server) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		return 0;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	/*
	 * No resumption: every connection is authenticated in full, and no
	 * session ticket is left unread in a client's socket.
	 */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	return 0;
}

static int chan_tls_make(const char *dir, bool server, chan_tls_sign_fn sign, void *sctx,
			 struct chan_tls **out, char *err, size_t errlen);

int chan_tls_new(const char *dir, bool server, struct chan_tls **out, char *err, size_t errlen)
{
	return chan_tls_make(dir, server, NULL, NULL, out, err, errlen);
}

int chan_tls_new_remote_key(const char *dir, chan_tls_sign_fn sign, void *sign_ctx,
			    struct chan_tls **out, char *err, size_t errlen)
{
	return chan_tls_make(dir, true, sign, sign_ctx, out, err, errlen);
}

static int chan_tls_make(const char *dir, bool server, chan_tls_sign_fn sign, void *sctx,
			 struct chan_tls **out, char *err, size_t errlen)
{
	struct chan_tls *t = NULL;
	int r;

	if (out == NULL || dir == NULL) {
		chan__errf(err, errlen, "no TLS directory");
		return KM_ERR_INVALID;
	}
	*out = NULL;
	ERR_clear_error();
	if ((t = calloc(1, sizeof(*t))) == NULL || (t->ctx = SSL_CTX_new(TLS_method())) == NULL) {
		chan__errf(err, errlen, "cannot make a TLS context: out of memory");
		r = -ENOMEM;
		goto out;
	}
	t->server = server;
	if ((r = chan_tls_setup(t->ctx, server)) != 0) {
		chan__errf(err, errlen, "this OpenSSL cannot do TLS 1.3");
		goto out;
	}
	if ((r = chan_tls_load(t->ctx, dir, server, sign, sctx, err, errlen)) != 0)
		goto out;
	*out = t;
	t = NULL;
out:
	chan_tls_free(t);
	ERR_clear_error();
	return r;
}

void chan_tls_free(struct chan_tls *tls)
{
	if (tls == NULL)
		return;
	SSL_CTX_free(tls->ctx);
	free(tls);
}

/* No fallback to the subject CN: the name must be in the subjectAltName. */
static int chan_tls_expect_host(SSL *ssl, const char *host, char *err, size_t errlen)
{
	X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
	unsigned char bin[sizeof(struct in6_addr)];
	int ok;

	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
					X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1)
		ok = X509_VERIFY_PARAM_set1_ip_asc(vp, host);
	else
		ok = SSL_set1_host(ssl, host) == 1 && SSL_set_tlsext_host_name(ssl, host) == 1;
	if (ok)
		return 0;
	chan__errf(err, errlen, "cannot check the server's name against '%s'", host);
	return KM_ERR_INVALID;
}

/* What to add to OpenSSL's text for a verify error, so the fix is obvious. */
static void chan_tls_hint(long vr, const char *host, char *out, size_t outlen)
{
	switch (vr) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
		snprintf(out, outlen, " (not issued by the CA in our ca-cert.pem)");
		break;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		snprintf(out, outlen, " (%s is not in its subjectAltName)", host ? host : "?");
		break;
	default:
		out[0] = '\0';
	}
}

/* Record-layer complaints about the first bytes: the peer does not speak TLS. */
static bool chan_tls_not_tls(unsigned long e)
{
	int reason = ERR_GET_REASON(e);

	return ERR_GET_LIB(e) == ERR_LIB_SSL &&
	       (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_HTTP_REQUEST ||
		reason == SSL_R_HTTPS_PROXY_REQUEST || reason == SSL_R_UNKNOWN_PROTOCOL);
}

/* A one-line reason for a failed handshake, and its code. */
static int chan_tls_why(SSL *ssl, int ret, bool server, const char *host,
			char *err, size_t errlen)
{
	const char *peer = server ? "client" : "server";
	int saved = errno, kind = SSL_get_error(ssl, ret);
	unsigned long e = ERR_peek_error();
	long vr = SSL_get_verify_result(ssl);
	char hint[CHAN_ERR_MAX / 2];

	if (vr != X509_V_OK) {
		chan_tls_hint(vr, host, hint, sizeof(hint));
		chan__errf(err, errlen, "%s certificate verify failed: %s%s", peer,
			   X509_verify_cert_error_string(vr), hint);
		return KM_ERR_AUTH;
	}
	if (kind == SSL_ERROR_SYSCALL && e == 0 && saved != 0) {
		chan__errf(err, errlen, "TLS handshake with the %s: %s", peer,
			   km_strerror(-saved));
		return saved == ECONNRESET || saved == EPIPE ? KM_ERR_PEER : -saved;
	}
	if (e == 0 || ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
		chan__errf(err, errlen, "the %s closed the connection during the TLS handshake",
			   peer);
		return KM_ERR_PEER;
	}
	if (chan_tls_not_tls(e))
		chan__errf(err, errlen, "not a TLS %s (%s)", peer, chan_tls_reason(e));
	else if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET)
		chan__errf(err, errlen, "the %s refused the TLS handshake: %s", peer,
			   chan_tls_reason(e));
	else
		chan__errf(err, errlen, "TLS handshake with the %s failed: %s", peer,
			   chan_tls_reason(e));
	return KM_ERR_AUTH;
}

static SSL *chan_tls_ssl_new(struct chan_tls *tls, int fd)
{
	SSL *ssl;
	BIO *bio;

	if ((ssl = SSL_new(tls->ctx)) == NULL)
		return NULL;
	if ((bio = chan_bio_new(fd)) == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_bio(ssl, bio, bio);
	return ssl;
}

int chan_tls_handshake(struct chan_tls *tls, bool server, int fd, const char *host,
		       int64_t deadline, int cancel_fd, SSL **out, char *err, size_t errlen)
{
	SSL *ssl = NULL;
	short want;
	int r, ret;

	*out = NULL;
	if (tls == NULL || tls->server != server) {
		chan__errf(err, errlen, "TLS material loaded for the wrong side");
		return KM_ERR_INVALID;
	}
	ERR_clear_error();
	if ((ssl = chan_tls_ssl_new(tls, fd)) == NULL) {
		chan__errf(err, errlen, "cannot start TLS: out of memory");
		r = -ENOMEM;
		goto out;
	}
	if (server)
		SSL_set_accept_state(ssl);
	else
		SSL_set_connect_state(ssl);
	if (!server && host != NULL && (r = chan_tls_expect_host(ssl, host, err, errlen)) != 0)
		goto out;
	while ((ret = SSL_do_handshake(ssl)) != 1) {
		switch (SSL_get_error(ssl, ret)) {
		case SSL_ERROR_WANT_READ:
			want = POLLIN;
			break;
		case SSL_ERROR_WANT_WRITE:
			want = POLLOUT;
			break;
		default:
			r = chan_tls_why(ssl, ret, server, host, err, errlen);
			goto out;
		}
		if ((r = chan__wait(fd, want, deadline, cancel_fd)) != 0) {
			chan__errf(err, errlen, "TLS handshake with the %s: %s",
				   server ? "client" : "server", km_strerror(r));
			goto out;
		}
	}
	*out = ssl;
	ssl = NULL;
	r = 0;
out:
	SSL_free(ssl);
	ERR_clear_error();
	return r;
}

/* Alerts by which a TLS 1.3 server refuses our certificate after our handshake ended. */
static bool chan_tls_cert_alert(int reason)
{
	switch (reason) {
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		return true;
	default:
		return false;
	}
}

static int64_t chan_tls_io_fail(SSL *ssl, int ret, short *want)
{
	unsigned long e;
	int r;

	switch (SSL_get_error(ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		*want = POLLIN;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		*want = POLLOUT;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return KM_ERR_END;
	}
	/* Fatal: the connection is dead, and SSL_shutdown must not try to send. */
	SSL_set_quiet_shutdown(ssl, 1);
	e = ERR_peek_error();
	r = chan_tls_cert_alert(ERR_GET_REASON(e)) ? KM_ERR_AUTH : KM_ERR_PEER;
	if (r == KM_ERR_AUTH)
		log_warn("TLS: the peer refused our certificate: %s", chan_tls_reason(e));
	else if (e != 0)
		log_debug("TLS: %s", chan_tls_reason(e));
	ERR_clear_error();
	return r;
}

int64_t chan_tls_read(SSL *ssl, void *data, size_t len, short *want)
{
	size_t n = 0;
	int ret;

	ERR_clear_error();
	if ((ret = SSL_read_ex(ssl, data, len, &n)) == 1)
		return (int64_t)n;
	return chan_tls_io_fail(ssl, ret, want);
}

int64_t chan_tls_write(SSL *ssl, const void *data, size_t len, short *want)
{
	size_t n = 0;
	int ret;

	ERR_clear_error();
	if ((ret = SSL_write_ex(ssl, data, len, &n)) == 1)
		return (int64_t)n;
	return chan_tls_io_fail(ssl, ret, want);
}

void chan_tls_peer_cn(SSL *ssl, char *out, size_t outlen)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	X509_NAME *name;
	X509_NAME_ENTRY *ent;
	unsigned char *utf8 = NULL;
	int i, n;
	size_t k;

	out[0] = '\0';
	if (cert == NULL || (name = X509_get_subject_name(cert)) == NULL ||
	    (i = X509_NAME_get_index_by_NID(name, NID_commonName, -1)) < 0 ||
	    (ent = X509_NAME_get_entry(name, i)) == NULL ||
	    (n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(ent))) < 0)
		return;
	/* Printable ASCII only: it goes into log lines. */
	for (k = 0; k < (size_t)n && k + 1 < outlen; k++)
		out[k] = utf8[k] < 0x20 || utf8[k] >= 0x7f ? '?' : (char)utf8[k];
	out[k] = '\0';
	OPENSSL_free(utf8);
}

void chan_tls_end(SSL *ssl, bool notify)
{
	if (ssl == NULL)
		return;
	/*
	 * One non-blocking try: close_notify only lets the peer tell our end
	 * from a cut connection, so it is not worth waiting for.
	 */
	ERR_clear_error();
	if (notify)
		(void)SSL_shutdown(ssl);
	SSL_free(ssl);
	ERR_clear_error();
}
