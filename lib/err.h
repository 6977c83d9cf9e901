/*
 * One negative error space for the whole project (as OpenSSH's ssherr):
 * 0 is success; -1 .. -4095 are -errno values passed through from the
 * system; KM_ERR_* below are the project's own conditions. Below main(),
 * functions return these and never exit.
 */
#ifndef KM_ERR_H
#define KM_ERR_H

enum km_err {
	KM_ERR_BASE = -5000,
	KM_ERR_NO_SPACE = KM_ERR_BASE,	/* a bounded buffer's cap would be exceeded */
	KM_ERR_TRUNCATED,		/* input ended before a complete item */
	KM_ERR_CORRUPT,			/* checksum or structure check failed */
	KM_ERR_TOO_LARGE,		/* a length exceeds its bound */
	KM_ERR_BAD_MAGIC,		/* not one of our streams or files */
	KM_ERR_VERSION,			/* a version we do not speak */
	KM_ERR_INVALID,			/* an invalid argument or value */
	KM_ERR_UNSUPPORTED,		/* the host's KVM lacks a needed capability */
	KM_ERR_KVM,			/* KVM refused an operation (details logged) */
	KM_ERR_GUEST,			/* the guest failed (triple fault, bad state...) */
	KM_ERR_TIMEOUT,			/* a bounded wait ran out */
	KM_ERR_STATE,			/* the operation is not valid in this state */
	KM_ERR_END,			/* iteration finished (not a failure) */
	KM_ERR_AUTH,			/* TLS handshake or peer authentication failed */
	KM_ERR_PEER,			/* the peer closed the connection or broke the protocol */
	KM_ERR_CANCELED,		/* the operation was canceled on request */
	KM_ERR_REFUSED,			/* the peer refused the request (its reason is logged) */
	KM_ERR_LAST
};

/* Static text for an error code; never NULL. */
const char *km_strerror(int err);

/* -errno for the current errno, never 0 (EIO if errno was 0). */
int km_errno(void);

#endif
