/* A small client of the VMs' control sockets (QMP-style JSON lines), for kvm-migrate. */
#ifndef KM_QMPC_H
#define KM_QMPC_H

#include <jansson.h>

struct qmpc;

/* Connects to a control socket and reads the greeting. 0 or a negative error. */
int qmpc_open(const char *path, struct qmpc **out);
void qmpc_close(struct qmpc *q);	/* NULL-safe */

/*
 * Runs one command (args stolen; NULL for none). 0 and *ret (the "return"
 * value, owned by the caller), or KM_ERR_REFUSED with the error's desc in
 * err, or a transport error. Replies are awaited for at most timeout_ms.
 */
int qmpc_call(struct qmpc *q, const char *cmd, json_t *args, int timeout_ms, json_t **ret,
	      char *err, size_t errlen);

#endif
