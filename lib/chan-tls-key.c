/*
 * Server keys kept out of the process that speaks TLS (chan.h,
 * chan_tls_new_remote_key, chan_tls_key_*): the context holds the
 * certificate's public key with an EC_KEY_METHOD whose signing is done
 * elsewhere (kvm-migrated's key agent); the agent side loads the private
 * key and signs digests. The EC_KEY_METHOD interface is deprecated in
 * OpenSSL 3 but kept; a provider would do the same with far more code.
 * ECDSA only: scripts/make-certs makes P-256 keys.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "chan.h"
#include "chan-int.h"
#include "err.h"

struct chan_tls_key {
	EC_KEY *ec;
};

/* The remote signer of an EC key made by chan_tls__remote_key. */
struct remote {
	chan_tls_sign_fn sign;
	void *ctx;
};

static int remote_index = -1;
static EC_KEY_METHOD *remote_method;

static ECDSA_SIG *remote_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
				  const BIGNUM *rp, EC_KEY *eckey)
{
	struct remote *rm = EC_KEY_get_ex_data(eckey, remote_index);
	uint8_t der[CHAN_TLS_SIG_MAX];
	const unsigned char *p = der;
	size_t len = sizeof(der);

	if (!rm || dlen < 0 || rm->sign(dgst, (size_t)dlen, der, &len, rm->ctx) != 0)
		return NULL;
	return d2i_ECDSA_SIG(NULL, &p, (long)len);
}

static int remote_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig,
		       unsigned int *siglen, const BIGNUM *kinv, const BIGNUM *r, EC_KEY *eckey)
{
	ECDSA_SIG *s = remote_sign_sig(dgst, dlen, kinv, r, eckey);
	unsigned char *p = sig;
	int n;

	if (!s)
		return 0;
	n = i2d_ECDSA_SIG(s, &p);
	ECDSA_SIG_free(s);
	if (n <= 0)
		return 0;
	*siglen = (unsigned int)n;
	return 1;
}

static void remote_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			void *argp)
{
	free(ptr);
}

int chan_tls__remote_key(SSL_CTX *ctx, chan_tls_sign_fn sign, void *sctx, char *err,
			 size_t errlen)
{
	int (*setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **) = NULL;
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	EVP_PKEY *pub = cert ? X509_get_pubkey(cert) : NULL, *pk = NULL;
	EC_KEY *ec = NULL;
	struct remote *rm = NULL;
	int r = KM_ERR_INVALID;

	if (!pub || EVP_PKEY_base_id(pub) != EVP_PKEY_EC) {
		chan__errf(err, errlen, "the server certificate's key is not ECDSA: a key kept "
			   "apart needs one (scripts/make-certs makes P-256 keys)");
		r = KM_ERR_UNSUPPORTED;
		goto out;
	}
	if (remote_index < 0)
		remote_index = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, remote_free);
	if (!remote_method) {
		remote_method = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
		if (remote_method) {
			EC_KEY_METHOD_get_sign(EC_KEY_OpenSSL(), NULL, &setup, NULL);
			EC_KEY_METHOD_set_sign(remote_method, remote_sign, setup, remote_sign_sig);
		}
	}
	if (remote_index < 0 || !remote_method || !(ec = EVP_PKEY_get1_EC_KEY(pub)) ||
	    !(rm = calloc(1, sizeof(*rm))) || !(pk = EVP_PKEY_new())) {
		chan__errf(err, errlen, "cannot make the remote key: out of memory");
		r = -ENOMEM;
		goto out;
	}
	rm->sign = sign;
	rm->ctx = sctx;
	if (EC_KEY_set_method(ec, remote_method) != 1 ||
	    EC_KEY_set_ex_data(ec, remote_index, rm) != 1 ||
	    EVP_PKEY_assign_EC_KEY(pk, ec) != 1) {
		chan__errf(err, errlen, "cannot make the remote key");
		goto out;
	}
	rm = NULL;	/* the key's ex data now */
	ec = NULL;	/* pk's now */
	if (SSL_CTX_use_PrivateKey(ctx, pk) != 1) {
		chan__errf(err, errlen, "cannot use the remote key with the certificate");
		goto out;
	}
	r = 0;
out:
	free(rm);
	EC_KEY_free(ec);
	EVP_PKEY_free(pk);
	EVP_PKEY_free(pub);
	ERR_clear_error();
	return r;
}

int chan_tls_key_load(const char *dir, struct chan_tls_key **out, char *err, size_t errlen)
{
	char path[PATH_MAX];
	EVP_PKEY *pk = NULL;
	FILE *f;
	int r;

	*out = NULL;
	if ((size_t)snprintf(path, sizeof(path), "%s/server-key.pem", dir) >= sizeof(path))
		return KM_ERR_INVALID;
	if ((r = chan_tls__key_private(path, err, errlen)) != 0)
		return r;
	if (!(f = fopen(path, "re"))) {
		chan__errf(err, errlen, "cannot read %s: %s", path, km_strerror(km_errno()));
		return KM_ERR_INVALID;
	}
	pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!pk || EVP_PKEY_base_id(pk) != EVP_PKEY_EC ||
	    !(*out = calloc(1, sizeof(**out))) || !((*out)->ec = EVP_PKEY_get1_EC_KEY(pk))) {
		chan__errf(err, errlen, "cannot load %s as an ECDSA key", path);
		free(*out);
		*out = NULL;
		EVP_PKEY_free(pk);
		ERR_clear_error();
		return KM_ERR_INVALID;
	}
	EVP_PKEY_free(pk);
	return 0;
}

int chan_tls_key_sign(struct chan_tls_key *k, const uint8_t *digest, size_t len, uint8_t *sig,
		      size_t *siglen)
{
	ECDSA_SIG *s;
	unsigned char *p = sig;
	int n;

	if (len > 64 || *siglen < CHAN_TLS_SIG_MAX)
		return KM_ERR_INVALID;
	if (!(s = ECDSA_do_sign(digest, (int)len, k->ec))) {
		ERR_clear_error();
		return KM_ERR_AUTH;
	}
	n = i2d_ECDSA_SIG(s, &p);
	ECDSA_SIG_free(s);
	if (n <= 0)
		return KM_ERR_AUTH;
	*siglen = (size_t)n;
	return 0;
}

void chan_tls_key_free(struct chan_tls_key *k)
{
	if (!k)
		return;
	EC_KEY_free(k->ec);	/* clears the private scalar */
	free(k);
}
