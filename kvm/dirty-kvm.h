/* The KVM side of the dirty-tracking backends (internal to kvm/dirty*.c). */
#ifndef KM_DIRTY_KVM_H
#define KM_DIRTY_KVM_H

#include "kvm/dirty.h"

/* Checks and enables what the backend needs before vCPUs exist. */
int dirty_kvm__init(struct dirty_tracker *t);
/* Maps the vCPU rings (ring backend). */
int dirty_kvm__init_vcpus(struct dirty_tracker *t);
void dirty_kvm__destroy(struct dirty_tracker *t);
/* Sets KVM_MEM_LOG_DIRTY_PAGES on every slot (and what else the backend needs). */
int dirty_kvm__enable(struct dirty_tracker *t);
int dirty_kvm__disable(struct dirty_tracker *t);
/* ORs the pages KVM logged since the last harvest into out, and re-protects them. */
int dirty_kvm__harvest(struct dirty_tracker *t, struct bitmap *out);

#endif
