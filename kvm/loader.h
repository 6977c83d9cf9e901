/* Finding and loading guest images. */
#ifndef KM_LOADER_H
#define KM_LOADER_H

#include <stddef.h>
#include <stdint.h>

struct kvm;

/*
 * Resolves a --guest value to an image path: a value holding '/' is a path;
 * otherwise NAME.bin is looked up in $KVM_MIGRATE_GUEST_DIR, next to the
 * running binary (guest/NAME.bin: the build tree), then in the installed
 * guest directory. -ENOENT with the places tried logged.
 */
int loader__find_guest(const char *name, char *path, size_t len);

/* Loads a flat image at KM_IMAGE_GPA; its entry is its first byte. */
int loader__load_flat(struct kvm *kvm, const char *path, uint64_t *entry);

#endif
