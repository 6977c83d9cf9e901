/*
 * Guest RAM: one memfd (so it can be shared, mapped by another process and
 * inspected), mapped once with MAP_NORESERVE so untouched memory costs
 * nothing, and split into KVM memory slots laid out like a PC: RAM below the
 * PCI hole at 3 GiB, and the rest from 4 GiB.
 */
#ifndef KM_MEMORY_H
#define KM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KM_MAX_SLOTS 2

struct kvm_slot {
	uint32_t id;		/* KVM slot number */
	uint32_t flags;		/* KVM_MEM_* as last set */
	uint64_t gpa;
	uint64_t size;
	uint64_t offset;	/* in the memfd */
	uint8_t *hva;
};

struct dirty_tracker;

struct kvm_memory {
	int memfd;
	struct dirty_tracker *dirty;	/* told about VMM writes; may be NULL */
	/*
	 * A lazy restore's pages not brought in yet (lazymem.h), bit n for
	 * page n, read atomically: they count as written. NULL: none.
	 */
	const uint64_t *absent;
	uint8_t *base;		/* the whole memfd mapped */
	uint64_t size;		/* bytes of RAM */
	struct kvm_slot slots[KM_MAX_SLOTS];
	unsigned int nr_slots;
};

/*
 * Creates the memfd of size bytes, maps it and registers the slots with
 * the VM. size: multiple of 2 MiB, >= KM_MIN_MEM. Undoes itself on failure.
 */
int memory__init(struct kvm_memory *mem, int vm_fd, uint64_t size);
/*
 * Guest RAM of that size laid out the same way, for no VM: a checkpoint
 * chain applied to memory (compaction, memory hashes) without /dev/kvm.
 */
int memory__init_image(struct kvm_memory *mem, uint64_t size);
/* Unmaps and closes; NULL-safe on a zeroed or failed struct. */
void memory__destroy(struct kvm_memory *mem);

/*
 * Host address of [gpa, gpa+len) if that range lies within one slot, else
 * NULL. Every guest-supplied address goes through this bound.
 */
void *memory__hva(const struct kvm_memory *mem, uint64_t gpa, uint64_t len);

/* The slot holding gpa, or NULL. */
const struct kvm_slot *memory__slot(const struct kvm_memory *mem, uint64_t gpa);

/*
 * Page numbering, owned here: page n of guest RAM is at byte n * 4096 of
 * the memfd (the slots lie in it back to back, in gpa order), and dirty
 * bitmaps, page records and checkpoints all count pages this way.
 */
static inline uint64_t memory__nr_pages(const struct kvm_memory *mem)
{
	return mem->size / 4096;
}
/* Page number of gpa, or UINT64_MAX if gpa is not RAM. */
uint64_t memory__page_of(const struct kvm_memory *mem, uint64_t gpa);
/* Guest physical address of page n (n < memory__nr_pages). */
uint64_t memory__gpa_of(const struct kvm_memory *mem, uint64_t n);
/* Host address of page n, in the mapping of the whole memfd. */
static inline uint8_t *memory__page_hva(const struct kvm_memory *mem, uint64_t n)
{
	return mem->base + n * 4096;
}

/* One past the highest guest physical address of RAM. */
uint64_t memory__end_gpa(const struct kvm_memory *mem);

/*
 * The VMM's own writes into guest memory go through here (not through raw
 * pointers), so that dirty tracking can account for them (DESIGN.md s.5).
 */
int memory__write(struct kvm_memory *mem, uint64_t gpa, const void *data, uint64_t len);
int memory__read(const struct kvm_memory *mem, uint64_t gpa, void *data, uint64_t len);

/*
 * Guest RAM is one memfd; page n of the dirty tracker's numbering is at
 * byte n * 4096 of it. The next range of it at or after byte off that was
 * ever written (SEEK_DATA/SEEK_HOLE: memory never touched is a hole and
 * stays one when skipped): [*start, *end). KM_ERR_END if none. Pages a
 * lazy restore has not brought in yet count as written: reading them
 * through the mapping brings them in.
 */
int memory__next_data(const struct kvm_memory *mem, uint64_t off, uint64_t *start,
		      uint64_t *end);

/*
 * A hash of guest RAM's content: XXH3-64 over (u64 LE page number, 4096
 * bytes) of every page that is not all zero, in page order. Two VMs whose
 * memory reads the same have the same hash, however their memory was
 * filled (never-touched and zeroed pages count alike). Reads all memory
 * ever written: for tests and checks, not for a running guest's pause.
 */
int memory__hash(const struct kvm_memory *mem, uint64_t *hash);

/* Guest RAM allocated, in bytes: the memfd's blocks, mapped or not. */
int memory__resident(const struct kvm_memory *mem, uint64_t *bytes);

#endif
