/* Where control sockets live (DESIGN.md s.3). */
#ifndef KM_RUNDIR_H
#define KM_RUNDIR_H

#include <stddef.h>

/*
 * The run directory: opt if given, else $KVM_MIGRATE_RUNDIR, else
 * /run/kvm-migrate as root and $XDG_RUNTIME_DIR/kvm-migrate (or
 * /tmp/kvm-migrate-UID) otherwise. Created (mode 0700) if missing.
 */
int rundir_resolve(const char *opt, char *out, size_t len);

/*
 * The control socket of VM name: "DIR/NAME.sock". A name holding a '/' is
 * taken as a socket path as it is. KM_ERR_INVALID for names that are empty
 * or too long for a unix socket address.
 */
int rundir_socket_path(const char *dir, const char *name, char *out, size_t len);

/* Names are [A-Za-z0-9._-], 1..48 characters, not starting with '.'. */
int rundir_valid_name(const char *name);

#endif
