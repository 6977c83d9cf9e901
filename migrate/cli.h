/* What kvm-migrate's commands share (kvm-migrate.c, dirtyrate-cli.c). */
#ifndef KM_MIGRATE_CLI_H
#define KM_MIGRATE_CLI_H

#include <signal.h>

struct dtrace;

/* Set by SIGINT or SIGTERM once on_sigint is their handler: cancel, then report. */
extern volatile sig_atomic_t interrupted;
void on_sigint(int sig);

/* kvm-migrate dirty-rate VM [OPTION]... (argv[0] is "dirty-rate"). */
int dirtyrate_cli(int argc, char **argv);
/* kvm-migrate trace FILE [--json | --csv] (argv[0] is "trace"): trace-cli.c. */
int trace_cli(int argc, char **argv);
/* kvm-migrate simulate FILE OPTION... (argv[0] is "simulate"): simulate-cli.c. */
int simulate_cli(int argc, char **argv);
/*
 * Loads a trace for command prog: 0 and *out, or the exit status with the
 * reason on stderr (1 damaged, cut short, later version; 3 cannot be opened).
 */
int trace_open_cli(const char *prog, const char *path, struct dtrace **out);

#endif
