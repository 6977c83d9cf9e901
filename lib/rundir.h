/* Where control sockets live (DESIGN.md s.3). */
#ifndef KM_RUNDIR_H
#define KM_RUNDIR_H

#include <stddef.h>

/*
 * The run directory: opt if given, else $KVM_MIGRATE_RUNDIR, else
 * /run/kvm-migrate as root and $XDG_RUNTIME_DIR/kvm-migrate otherwise
 * (KM_ERR_INVALID without XDG_RUNTIME_DIR: no shared /tmp fallback).
 * Created (mode 0700) if missing. The directory itself must be a real
 * directory, not a symlink (-ELOOP), owned by the caller (KM_ERR_AUTH)
 * and closed to others (KM_ERR_STATE): another local user must not be
 * able to plant it or to reach the sockets in it.
 */
int rundir_resolve(const char *opt, char *out, size_t len);
/* What rundir_resolve's error means, for a message (static text). */
const char *rundir_strerror(int r);

/*
 * The control socket of VM name: "DIR/NAME.sock". A name holding a '/' is
 * taken as a socket path as it is. KM_ERR_INVALID for names that are empty
 * or too long for a unix socket address.
 */
int rundir_socket_path(const char *dir, const char *name, char *out, size_t len);

/* Names are [A-Za-z0-9._-], 1..48 characters, not starting with '.'. */
int rundir_valid_name(const char *name);

/*
 * A VM name reserved in a run directory (docs/protocol.md s.6): the process
 * that holds a reservation is the only one that may run a VM of that name
 * there. DIR/NAME.lock carries an OFD write lock for as long as the
 * reservation lives (the kernel drops it when the process dies);
 * DIR/NAME.state records, once, whether the holder runs the VM ("running")
 * or never will ("aborted"), so that a query and a starting receiver
 * cannot both win.
 */
struct rundir_name {
	int fd;			/* the lock file, locked; -1 when not held */
	char lock[4096];
	char state[4096];
};

/*
 * Reserves name in dir for this process (a stale NAME.state from a holder
 * that died is removed). KM_ERR_STATE if a live process holds it. With
 * wait_ms > 0, a holder that has not decided yet (a receiver whose
 * migration has not switched over, likely one whose source gave up) is
 * decided "aborted", so that it never starts, and its lock is awaited for
 * up to wait_ms; a holder that runs its VM is refused at once.
 */
int rundir_reserve(const char *dir, const char *name, struct rundir_name *rn,
		   unsigned int wait_ms);
/*
 * Records that the holder runs the VM: 0, or KM_ERR_CANCELED if a query
 * already decided that it never will (then it must not start).
 */
int rundir_decide_running(struct rundir_name *rn);
/* Gives the name up: its state is removed, then the lock released. Idempotent. */
void rundir_release(struct rundir_name *rn);
/* A name not (or no longer) reserved: fd -1, so that release does nothing. */
void rundir_name_init(struct rundir_name *rn);

enum rundir_presence {
	RUNDIR_ABSENT = 0,	/* no VM of that name runs here, and none can start */
	RUNDIR_RUNNING = 1,	/* it runs here, or is starting and cannot be stopped */
	RUNDIR_UNKNOWN = 2,	/* this process cannot tell (an error) */
};

/*
 * Whether a VM of that name runs in dir. A holder that has not yet decided
 * is decided first, as "aborted": it will never start, so ABSENT is exact.
 */
enum rundir_presence rundir_query(const char *dir, const char *name);

#endif
