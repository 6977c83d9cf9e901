/*
 * kvm-migrated's key agent: a process of its own, started before anything
 * else, that alone reads the server's private key and signs TLS handshake
 * digests for the daemon. The daemon and the children it forks for each
 * connection (each of which becomes the process of a VM it received)
 * never hold the key: a VM process taken over cannot read it out of its
 * memory, and can only have digests signed while its handshake runs (the
 * daemon relays for children in their handshake only, admit.h).
 */
#ifndef KM_MIGRATE_KEYAGENT_H
#define KM_MIGRATE_KEYAGENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Starts the agent for dir/server-key.pem: 0 with its socket in *fd and its
 * pid, or the reason in err (a key it cannot load, open to others...).
 */
int keyagent__start(const char *dir, int *fd, pid_t *pid, char *err, size_t errlen);
/* One signature of a digest by the agent (the daemon's side). */
int keyagent__sign(int fd, const uint8_t *digest, size_t len, uint8_t *sig, size_t *siglen);

#endif
