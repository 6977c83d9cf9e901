/*
 * The VM's control socket: JSON lines framed like QEMU's QMP (one request
 * per line, one reply per line), served by one thread. Commands are listed
 * in docs/control.md.
 */
#ifndef KM_CONTROL_H
#define KM_CONTROL_H

struct kvm;
struct control;

/*
 * Listens on the unix socket path (a stale socket left by a dead VM is
 * replaced; a live one is an error: -EADDRINUSE) and serves it from a new
 * thread until control__stop.
 */
int control__start(struct kvm *kvm, const char *path, struct control **out);
/* Stops the thread, closes every connection and removes the socket. NULL-safe. */
void control__stop(struct control *c);

#endif
