/* The project's error space: see err.h. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "err.h"

/* Indexed by code - KM_ERR_BASE; the compiler checks the table fits the enum. */
static const char *const km_err_text[KM_ERR_LAST - KM_ERR_BASE] = {
	[KM_ERR_NO_SPACE - KM_ERR_BASE]		= "buffer size limit exceeded",
	[KM_ERR_TRUNCATED - KM_ERR_BASE]	= "input truncated",
	[KM_ERR_CORRUPT - KM_ERR_BASE]		= "data corrupt (checksum or structure)",
	[KM_ERR_TOO_LARGE - KM_ERR_BASE]	= "length exceeds its limit",
	[KM_ERR_BAD_MAGIC - KM_ERR_BASE]	= "not a kvm-migrate stream or file (bad magic)",
	[KM_ERR_VERSION - KM_ERR_BASE]		= "unsupported format version",
	[KM_ERR_INVALID - KM_ERR_BASE]		= "invalid argument or value",
	[KM_ERR_UNSUPPORTED - KM_ERR_BASE]	= "capability not supported by this host's KVM",
	[KM_ERR_KVM - KM_ERR_BASE]		= "KVM refused the operation",
	[KM_ERR_GUEST - KM_ERR_BASE]		= "the guest failed",
	[KM_ERR_TIMEOUT - KM_ERR_BASE]		= "timed out",
	[KM_ERR_STATE - KM_ERR_BASE]		= "operation not valid in this state",
	[KM_ERR_END - KM_ERR_BASE]		= "end of data",
	[KM_ERR_AUTH - KM_ERR_BASE]		= "TLS handshake or peer authentication failed",
	[KM_ERR_PEER - KM_ERR_BASE]		= "the peer closed the connection or broke the protocol",
	[KM_ERR_CANCELED - KM_ERR_BASE]		= "canceled",
	[KM_ERR_REFUSED - KM_ERR_BASE]		= "refused by the peer",
};

const char *km_strerror(int err)
{
	const char *s;

	if (err == 0)
		return "success";
	if (err >= KM_ERR_BASE && err < KM_ERR_LAST) {
		s = km_err_text[err - KM_ERR_BASE];
		return s != NULL ? s : "unknown kvm-migrate error";
	}
	if (err < 0 && err >= -4095) {
		/*
		 * strerror() may format unknown codes into a shared static
		 * buffer; strerrordesc_np() only returns constant strings, so
		 * it is safe from any thread and the result never changes.
		 */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
		s = strerrordesc_np(-err);
		return s != NULL ? s : "unknown system error";
#else
		/* musl's strerror() returns constant strings as well. */
		return strerror(-err);
#endif
	}
	return "invalid error code";
}

int km_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}
