/*
 * The VM's control socket: JSON lines framed like QEMU's QMP (one request
 * per line, one reply per line), served by one thread. Commands are listed
 * in docs/control.md.
 */
#ifndef KM_CONTROL_H
#define KM_CONTROL_H

#include <stdbool.h>

#include <jansson.h>

struct kvm;
struct control;
struct qmp_request;

/*
 * A command that lives outside kvm/ (migration: migrate/commands.c), so
 * that kvm/ does not depend on what is built on it. It runs on the control
 * thread and returns the reply line (qmp_reply_return/_error). The table
 * ends with a NULL name.
 */
struct control_cmd {
	const char *name;
	char *(*fn)(void *ctx, const struct qmp_request *req);
	void *ctx;
	bool slow;	/* may take seconds: answered on a worker thread, as check is */
};

/*
 * Listens on the unix socket path (a stale socket left by a dead VM is
 * replaced; a live one is an error: -EADDRINUSE) and serves it from a new
 * thread until control__stop.
 */
int control__start(struct kvm *kvm, const char *path, struct control **out);
/* The same, also serving the commands of extra (NULL: none), which must outlive c. */
int control__start_ext(struct kvm *kvm, const char *path, const struct control_cmd *extra,
		       struct control **out);
/*
 * Removes the socket file (if it is still the one this VM made) while the
 * connections already open keep working: after a migration the name
 * belongs to the destination, even while this process lingers. NULL-safe.
 */
void control__unpublish(struct control *c);
/*
 * One table of the commands of a and b (a program main serving both, e.g.
 * the migration's and the checkpoints'). The process has one VM: the
 * joined table is static, overwritten by each call.
 */
const struct control_cmd *control__join(const struct control_cmd *a,
					const struct control_cmd *b);
/* Stops the thread, closes every connection and removes the socket. NULL-safe. */
void control__stop(struct control *c);
/*
 * Sends the event {"event": name, "data": data, "timestamp": ...} (QMP's
 * form) to every client of kvm's control socket that enabled events
 * (qmp_capabilities {"enable": ["events"]}); the others never see one.
 * Callable from any thread; data is stolen (NULL: {}). A line goes out
 * whole, never inside a reply. Never waits for a client: one whose socket
 * buffer cannot take the whole line is disconnected (docs/control.md).
 * Every client sees the events in the same order (one emitter at a time).
 * Does nothing (but free data) when kvm has no control socket.
 */
void control__event(struct kvm *kvm, const char *name, json_t *data);

#endif
