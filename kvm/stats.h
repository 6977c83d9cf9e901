/* VM statistics: the query-stats reply and kvm-run's exit report. */
#ifndef KM_STATS_H
#define KM_STATS_H

#include <stdio.h>
#include <jansson.h>

struct kvm;

/* A new JSON object (caller owns): uptime, exits by reason, per-vCPU progress, memory. */
json_t *stats__query(struct kvm *kvm);
/* The dirty tracker's state and counters (part of query-stats). */
json_t *stats__dirty(struct kvm *kvm);
/* The same as a human-readable table. */
void stats__print(struct kvm *kvm, FILE *f);

#endif
