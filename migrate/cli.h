/* What kvm-migrate's commands share (kvm-migrate.c, dirtyrate-cli.c). */
#ifndef KM_MIGRATE_CLI_H
#define KM_MIGRATE_CLI_H

#include <signal.h>

/* Set by SIGINT or SIGTERM once on_sigint is their handler: cancel, then report. */
extern volatile sig_atomic_t interrupted;
void on_sigint(int sig);

/* kvm-migrate dirty-rate VM [OPTION]... (argv[0] is "dirty-rate"). */
int dirtyrate_cli(int argc, char **argv);

#endif
