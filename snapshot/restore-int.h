/*
 * What the eager restore (restore.c) and the lazy one (restore-lazy.c)
 * share: making the VM from the first file's config, and taking the
 * restored checkpoint's state records.
 */
#ifndef KM_RESTORE_INT_H
#define KM_RESTORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvm/vmrec.h"
#include "snapshot/ckptfile.h"
#include "snapshot/restore.h"

struct restore {
	struct restore_image *img;	/* image mode: memory only, state kept as records */
	struct kvm_config *cfg;
	char *name;
	size_t namelen;
	struct kvm *kvm;
	struct vmrec_loader ld;
	bool loader;
	struct restore_info *info;
	char *err;
	size_t errlen;
};

/* The VM (or image) made from a REC_VM_CONFIG payload of f; the reason in rs->err. */
int restore__create(struct restore *rs, struct ckptfile *f, const uint8_t *p, uint32_t len);
/* A state record of the checkpoint restored: into the VM, or kept (image mode); why in rs->ld.why. */
int restore__state(struct restore *rs, uint32_t type, const uint8_t *p, uint32_t len);

#endif
