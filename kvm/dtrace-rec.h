/*
 * Recording a dirty trace of a running VM (kvm-run --record-dirty): a
 * thread with its own dirty subscriber reads the pages dirtied in each
 * interval and writes them with the guest's progress counter
 * (lib/dtrace.h, docs/format.md s.10). The vCPUs never wait for it: they
 * only pay dirty logging's write faults, as for any subscriber, and the
 * subscriber is its own, so migrations and checkpoints (their own
 * subscribers, kvm/dirty.h) see every page whatever it reads.
 */
#ifndef KM_DTRACE_REC_H
#define KM_DTRACE_REC_H

#include <stddef.h>
#include <stdint.h>

struct kvm;
struct dtrace_recorder;

#define DTRACE_REC_DEFAULT_MS	100

/*
 * Creates path (0644, replaced if it exists), writes the trace's header and
 * starts recording kvm in intervals of interval_ms (1 to 3600000). 0 and
 * *out, or a negative error with a sentence in err.
 */
int dtrace_rec__start(struct kvm *kvm, const char *path, uint64_t interval_ms,
		      struct dtrace_recorder **out, char *err, size_t errlen);
/*
 * Ends the recording: the last (shorter) interval, the trailer with the
 * recording's cost, the file closed and synced. NULL-safe. Returns 0, or
 * the error that ended it early (the file then lacks its trailer and is
 * refused by readers as cut short); logs what it recorded.
 */
int dtrace_rec__stop(struct dtrace_recorder *rec);

#endif
