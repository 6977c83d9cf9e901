/*
 * The KVM side of dirty tracking, one small table of operations per backend
 * in the manner of KVM selftests' dirty_log_test:
 *
 *   bitmap  KVM_GET_DIRTY_LOG returns a slot's bitmap and, in the same call,
 *           clears it and write-protects those pages again (the 2006
 *           patchset's kvm_mmu_slot_remove_write_access).
 *   clear   manual protect (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2): GET only
 *           reads; KVM_CLEAR_DIRTY_LOG then re-protects just the dirty
 *           pages, one chunk at a time, so no single ioctl holds the MMU
 *           lock for a whole large slot. With INITIALLY_SET, enabling does
 *           not write-protect the slot at all; the first harvest does it.
 *   ring    each vCPU pushes (slot, offset) entries into its own ring as it
 *           dirties pages; we collect entries marked DIRTY (acquire), mark
 *           them RESET (release), then KVM_RESET_DIRTY_RINGS re-protects.
 *           A vCPU whose ring is full exits with KVM_EXIT_DIRTY_RING_FULL
 *           and may not run until its entries are collected and reset.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "err.h"
#include "log.h"
#include "kvm/dirty-kvm.h"
#include "kvm/kvm.h"
#include "kvm/kvm-cpu.h"

static int dirty_kvm__fail(const char *what)
{
	int r = km_errno();

	log_error("%s: %s", what, km_strerror(r));
	return r;
}

static int dirty_kvm__enable_cap(struct kvm *kvm, uint32_t cap, uint64_t arg)
{
	struct kvm_enable_cap c = { .cap = cap };

	c.args[0] = arg;
	return ioctl(kvm->vm_fd, KVM_ENABLE_CAP, &c);
}

int dirty_kvm__init(struct dirty_tracker *t)
{
	struct kvm *kvm = t->kvm;
	int flags, max;

	if (t->backend == DIRTY_DEFAULT) {
		/* Manual protect spreads re-protection over harvests, as QEMU prefers too. */
		flags = ioctl(kvm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
		t->backend = flags > 0 ? DIRTY_CLEAR : DIRTY_BITMAP;
	}
	switch (t->backend) {
	case DIRTY_DEFAULT:
	case DIRTY_BITMAP:
		return 0;
	case DIRTY_CLEAR:
		flags = ioctl(kvm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
		if (flags <= 0 || !(flags & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE)) {
			log_error("dirty log 'clear': KVM lacks KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2");
			return KM_ERR_UNSUPPORTED;
		}
		t->manual_initially_set = flags & KVM_DIRTY_LOG_INITIALLY_SET;
		flags &= KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET;
		if (dirty_kvm__enable_cap(kvm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, flags) < 0)
			return dirty_kvm__fail("KVM_ENABLE_CAP(MANUAL_DIRTY_LOG_PROTECT2)");
		return 0;
	case DIRTY_RING:
		/* Sizes are powers of two of whole pages, up to what KVM says. */
		if (t->ring_bytes < 4096 || (t->ring_bytes & (t->ring_bytes - 1))) {
			log_error("dirty ring size %u: need a power of two, at least 4096",
				  t->ring_bytes);
			return KM_ERR_INVALID;
		}
		max = ioctl(kvm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING_ACQ_REL);
		if (max > 0) {
			if ((uint32_t)max < t->ring_bytes)
				goto too_big;
			if (dirty_kvm__enable_cap(kvm, KVM_CAP_DIRTY_LOG_RING_ACQ_REL,
						  t->ring_bytes) < 0)
				return dirty_kvm__fail("KVM_ENABLE_CAP(DIRTY_LOG_RING_ACQ_REL)");
			return 0;
		}
		/* x86 is strongly ordered: the older cap behaves the same there. */
		max = ioctl(kvm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING);
		if (max <= 0) {
			log_error("dirty log 'ring': KVM lacks KVM_CAP_DIRTY_LOG_RING(_ACQ_REL)");
			return KM_ERR_UNSUPPORTED;
		}
		if ((uint32_t)max < t->ring_bytes)
			goto too_big;
		if (dirty_kvm__enable_cap(kvm, KVM_CAP_DIRTY_LOG_RING, t->ring_bytes) < 0)
			return dirty_kvm__fail("KVM_ENABLE_CAP(DIRTY_LOG_RING)");
		return 0;
	}
	return KM_ERR_INVALID;
too_big:
	log_error("dirty ring size %u is above this KVM's limit of %d bytes", t->ring_bytes, max);
	return KM_ERR_UNSUPPORTED;
}

static struct kvm_dirty_gfn **dirty_kvm__rings(struct dirty_tracker *t)
{
	return (struct kvm_dirty_gfn **)t->rings;
}

int dirty_kvm__init_vcpus(struct dirty_tracker *t)
{
	struct kvm *kvm = t->kvm;
	long page = sysconf(_SC_PAGESIZE);
	unsigned int i;
	void *p;

	if (t->backend != DIRTY_RING)
		return 0;
	for (i = 0; i < kvm->nr_cpus; i++) {
		p = mmap(NULL, t->ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
			 kvm->cpus[i]->fd, (off_t)KVM_DIRTY_LOG_PAGE_OFFSET * page);
		if (p == MAP_FAILED)
			return dirty_kvm__fail("mmap dirty ring");
		t->rings[i] = p;
	}
	return 0;
}

void dirty_kvm__destroy(struct dirty_tracker *t)
{
	unsigned int i;

	for (i = 0; i < KM_MAX_VCPUS; i++) {
		if (t->rings[i])
			munmap(t->rings[i], t->ring_bytes);
		t->rings[i] = NULL;
	}
}

static int dirty_kvm__slot_flags(struct dirty_tracker *t, bool log)
{
	struct kvm_memory *mem = &t->kvm->mem;
	unsigned int i;

	for (i = 0; i < mem->nr_slots; i++) {
		struct kvm_slot *s = &mem->slots[i];
		struct kvm_userspace_memory_region region = {
			.slot = s->id,
			.flags = log ? KVM_MEM_LOG_DIRTY_PAGES : 0,
			.guest_phys_addr = s->gpa,
			.memory_size = s->size,
			.userspace_addr = (uintptr_t)s->hva,
		};

		/* Only the flags change: KVM keeps the mappings and guest memory. */
		if (ioctl(t->kvm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
			return dirty_kvm__fail("KVM_SET_USER_MEMORY_REGION (dirty log flag)");
		s->flags = region.flags;
	}
	return 0;
}

int dirty_kvm__enable(struct dirty_tracker *t)
{
	unsigned int i;

	/* A ring may still hold entries from an earlier logging period: drop them. */
	if (t->backend == DIRTY_RING) {
		for (i = 0; i < t->kvm->nr_cpus; i++) {
			struct kvm_dirty_gfn *ring = dirty_kvm__rings(t)[i];
			uint32_t nent = t->ring_bytes / sizeof(*ring);

			while (ring && (__atomic_load_n(&ring[t->ring_fetch[i] % nent].flags,
							__ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY)) {
				__atomic_store_n(&ring[t->ring_fetch[i] % nent].flags,
						 KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
				t->ring_fetch[i]++;
			}
		}
		ioctl(t->kvm->vm_fd, KVM_RESET_DIRTY_RINGS, 0);
	}
	return dirty_kvm__slot_flags(t, true);
}

int dirty_kvm__disable(struct dirty_tracker *t)
{
	return dirty_kvm__slot_flags(t, false);
}

static int dirty_kvm__get_log(struct dirty_tracker *t, const struct kvm_slot *s)
{
	struct kvm_dirty_log log = { .slot = s->id, .dirty_bitmap = t->kvm_bitmap };

	/* No clearing first: KVM writes every word of the slot's bitmap. */
	if (ioctl(t->kvm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
		return dirty_kvm__fail("KVM_GET_DIRTY_LOG");
	return 0;
}

/* Re-protects the pages set in t->kvm_bitmap, one chunk per ioctl. */
static int dirty_kvm__clear_log(struct dirty_tracker *t, const struct kvm_slot *s)
{
	uint64_t pages = s->size / KM_PAGE_SIZE, first, n, w;
	bool any;

	for (first = 0; first < pages; first += DIRTY_CLEAR_CHUNK_PAGES) {
		n = pages - first < DIRTY_CLEAR_CHUNK_PAGES ? pages - first : DIRTY_CLEAR_CHUNK_PAGES;
		any = false;
		for (w = first / 64; w < (first + n + 63) / 64 && !any; w++)
			any = t->kvm_bitmap[w] != 0;
		if (!any)
			continue;
		struct kvm_clear_dirty_log c = {
			.slot = s->id,
			.num_pages = (uint32_t)n,
			.first_page = first,
			.dirty_bitmap = t->kvm_bitmap + first / 64,
		};
		if (ioctl(t->kvm->vm_fd, KVM_CLEAR_DIRTY_LOG, &c) < 0)
			return dirty_kvm__fail("KVM_CLEAR_DIRTY_LOG");
	}
	return 0;
}

static int dirty_kvm__harvest_rings(struct dirty_tracker *t, struct bitmap *out)
{
	const struct kvm_memory *mem = &t->kvm->mem;
	uint32_t nent = t->ring_bytes / sizeof(struct kvm_dirty_gfn);
	uint64_t collected = 0, bad = 0;
	unsigned int i;

	for (i = 0; i < t->kvm->nr_cpus; i++) {
		struct kvm_dirty_gfn *ring = dirty_kvm__rings(t)[i];

		for (;;) {
			struct kvm_dirty_gfn *e = &ring[t->ring_fetch[i] % nent];
			uint32_t slot;

			if (!(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY))
				break;
			slot = e->slot & 0xffff;	/* the high half is the address space */
			if (slot < mem->nr_slots && e->offset < mem->slots[slot].size / KM_PAGE_SIZE)
				bitmap_set(out, t->slot_first[slot] + e->offset);
			else
				bad++;
			__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
			t->ring_fetch[i]++;
			collected++;
		}
	}
	if (bad)
		log_warn("dirty ring: %llu entries outside guest RAM ignored",
			 (unsigned long long)bad);
	if (collected && ioctl(t->kvm->vm_fd, KVM_RESET_DIRTY_RINGS, 0) < 0)
		return dirty_kvm__fail("KVM_RESET_DIRTY_RINGS");
	return 0;
}

int dirty_kvm__harvest(struct dirty_tracker *t, struct bitmap *out)
{
	const struct kvm_memory *mem = &t->kvm->mem;
	unsigned int i;
	int r;

	if (t->backend == DIRTY_RING)
		return dirty_kvm__harvest_rings(t, out);
	for (i = 0; i < mem->nr_slots; i++) {
		const struct kvm_slot *s = &mem->slots[i];

		if ((r = dirty_kvm__get_log(t, s)) != 0)
			return r;
		if (t->backend == DIRTY_CLEAR && (r = dirty_kvm__clear_log(t, s)) != 0)
			return r;
		bitmap_or_at(out, t->slot_first[i], t->kvm_bitmap, s->size / KM_PAGE_SIZE);
	}
	return 0;
}
