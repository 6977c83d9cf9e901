/* Finding, reading and loading workload guest images (docs/guests.md). */
#ifndef KM_LOADER_H
#define KM_LOADER_H

#include <stddef.h>
#include <stdint.h>

struct kvm;

/* A flat image read into memory and checked; loader__image_free frees it. */
struct loader_image {
	void *data;
	size_t size;	/* 1 .. KM_IMAGE_MAX bytes, .bss included */
};

/*
 * Resolves a --guest value to an image path: a value holding '/' is a path,
 * taken as it is (loader__image_read checks it); otherwise NAME.bin is looked up in $KVM_MIGRATE_GUEST_DIR, next to the
 * running binary (guest/NAME.bin: the build tree), then in the installed
 * guest directory. -ENOENT with the places tried logged.
 */
int loader__find_guest(const char *name, char *path, size_t len);

/*
 * Reads the flat image at path and checks that it can be one: a readable
 * regular file of 1 .. KM_IMAGE_MAX bytes that is not an ELF file (the
 * SDK's .elf before objcopy) or a Linux kernel (--kernel's). Logs why not:
 * -errno of open/read, KM_ERR_INVALID (not a regular file, empty),
 * KM_ERR_TOO_LARGE, KM_ERR_BAD_MAGIC (ELF or kernel). On success the caller
 * owns img->data.
 */
int loader__image_read(const char *path, struct loader_image *img);
void loader__image_free(struct loader_image *img);

/* Writes the image at KM_IMAGE_GPA; its entry is its first byte. */
int loader__image_load(struct kvm *kvm, const struct loader_image *img, uint64_t *entry);

/* loader__image_read, then loader__image_load. */
int loader__load_flat(struct kvm *kvm, const char *path, uint64_t *entry);

/*
 * The workload name a --guest-image path gives the boot info (its guest[]
 * field, and the VM's log line): the file's base name without ".bin".
 */
void loader__image_name(const char *path, char *name, size_t len);

#endif
