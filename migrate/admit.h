/*
 * kvm-migrated's admission control (docs/kvm-migrated.8, README
 * "Security"): which connections it takes, and how much guest memory it
 * lets arrive.
 *
 * The daemon forks a child per connection. Each child tells the daemon
 * over a socket pair what it has become: authenticated (a query or a
 * migration), a running VM; and asks it for a VM's guest memory before
 * accepting the VM. The daemon counts:
 *   - connections not yet authenticated (the TLS handshake), in all and
 *     per peer address: a flood of idle or slow handshakes from one
 *     address cannot take the slots of others;
 *   - migrations being received (authenticated);
 *   - never the queries (short) nor the received VMs (they live on).
 * Guest memory: the whole size of every VM being received and every VM
 * received and still running is summed, and a new one must fit in the
 * budget (--max-guest-mem): a peer cannot talk its way around it by what
 * it says it uses, and cannot push the host into the OOM killer, which
 * would hit the VMs already running here.
 */
#ifndef KM_MIGRATE_ADMIT_H
#define KM_MIGRATE_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct admit_limits {
	unsigned int handshakes;	/* unauthenticated connections, in all */
	unsigned int per_peer;		/* ... from one peer address */
	unsigned int receives;		/* migrations being received */
	uint64_t guest_mem;		/* bytes of guest memory, receives and VMs */
};

#define ADMIT_DEFAULT_HANDSHAKES	64
#define ADMIT_DEFAULT_PER_PEER		8
#define ADMIT_DEFAULT_RECEIVES		16

struct admit;

/* The key agent's signature of a handshake digest (keyagent.h), 0 or an error. */
typedef int (*admit_sign_fn)(const uint8_t *digest, size_t len, uint8_t *sig, size_t *siglen,
			     void *ctx);

/*
 * NULL if out of memory. sign (may be NULL): relays a child's handshake
 * signature to the key agent, for children still in their handshake only.
 */
struct admit *admit__new(const struct admit_limits *lim, admit_sign_fn sign, void *sign_ctx);
void admit__free(struct admit *a);	/* closes the children's sockets; NULL-safe */

/*
 * Whether a new connection from addr (the peer's address without its
 * port) may be served: 0, or KM_ERR_REFUSED with the reason in why.
 */
int admit__may_accept(struct admit *a, const char *addr, char *why, size_t whylen);
/*
 * Registers the child serving it; fd is the daemon's end of the child's
 * socket pair (owned from now on). -ENOMEM (then the caller kills it).
 */
int admit__add(struct admit *a, pid_t pid, const char *addr, int fd);
/* The child exited: its slot and its memory are free again. */
void admit__exited(struct admit *a, pid_t pid);
/* How many children there are; the socket of child index (-1: closed) to poll. */
size_t admit__nr(const struct admit *a);
int admit__fd(const struct admit *a, size_t index);
/* One message from child index, whose socket is readable. */
void admit__serve(struct admit *a, size_t index);
/* Children by state, for the log: handshakes, receives, VMs. */
void admit__counts(const struct admit *a, unsigned int *handshakes, unsigned int *receives,
		   unsigned int *vms);

/* ---- in the child, over its end of the socket pair ---- */

enum admit_state { ADMIT_QUERY = 1, ADMIT_RECEIVE = 2, ADMIT_VM = 3 };

/* Tells the daemon what this child has become (a query; a running VM). */
int admit__report(int fd, enum admit_state state);
/*
 * Asks the daemon whether this child may receive a VM of bytes of guest
 * memory (a receive slot, and the memory budget): 0 granted, KM_ERR_REFUSED
 * with the reason and the numbers in why, or an error (no answer within
 * timeout_ms).
 */
int admit__ask_receive(int fd, uint64_t bytes, int timeout_ms, char *why, size_t whylen);
/* The server key's signature of a handshake digest, through the daemon (0 or an error). */
int admit__ask_sign(int fd, const uint8_t *digest, size_t len, uint8_t *sig, size_t *siglen);

#endif
