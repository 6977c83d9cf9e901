/* Guest RAM: a memfd split into PC-like KVM slots. See memory.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <endian.h>
#include <linux/kvm.h>

#include <xxhash.h>

#include "err.h"
#include "log.h"
#include "pages.h"
#include "kvm/guest/abi.h"
#include "kvm/dirty.h"
#include "kvm/memory.h"

static int memory__add_slot(struct kvm_memory *mem, int vm_fd, uint64_t gpa,
			    uint64_t size, uint64_t offset)
{
	struct kvm_slot *s = &mem->slots[mem->nr_slots];
	struct kvm_userspace_memory_region region = {
		.slot = mem->nr_slots,
		.flags = 0,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)(mem->base + offset),
	};

	/* An image (memory__init_image) has the layout without a VM. */
	if (vm_fd >= 0 && ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		int r = km_errno();

		log_error("KVM_SET_USER_MEMORY_REGION slot %u gpa 0x%llx size 0x%llx: %s",
			  region.slot, (unsigned long long)gpa,
			  (unsigned long long)size, km_strerror(r));
		return r;
	}
	s->id = region.slot;
	s->flags = 0;
	s->gpa = gpa;
	s->size = size;
	s->offset = offset;
	s->hva = mem->base + offset;
	mem->nr_slots++;
	return 0;
}

int memory__init(struct kvm_memory *mem, int vm_fd, uint64_t size)
{
	uint64_t low;
	int r;

	memset(mem, 0, sizeof(*mem));
	mem->memfd = -1;
	if (size < KM_MIN_MEM || size % (2ULL << 20) != 0) {
		log_error("guest memory must be a multiple of 2 MiB and at least 16 MiB");
		return KM_ERR_INVALID;
	}
	mem->memfd = memfd_create("kvm-guest-ram", MFD_CLOEXEC);
	if (mem->memfd < 0) {
		r = km_errno();
		log_error("memfd_create: %s", km_strerror(r));
		goto out_fail;
	}
	/* ftruncate allocates nothing: pages appear when first touched. */
	if (ftruncate(mem->memfd, (off_t)size) < 0) {
		r = km_errno();
		log_error("ftruncate guest memory to %llu bytes: %s",
			  (unsigned long long)size, km_strerror(r));
		goto out_close;
	}
	mem->base = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_NORESERVE, mem->memfd, 0);
	if (mem->base == MAP_FAILED) {
		mem->base = NULL;
		r = km_errno();
		log_error("mmap guest memory: %s", km_strerror(r));
		goto out_close;
	}
	mem->size = size;
	/* Guest memory is no use in a core dump and may be huge. */
	madvise(mem->base, size, MADV_DONTDUMP);

	low = size < KM_HOLE_START ? size : KM_HOLE_START;
	if ((r = memory__add_slot(mem, vm_fd, 0, low, 0)) != 0)
		goto out_unmap;
	if (size > low &&
	    (r = memory__add_slot(mem, vm_fd, KM_HIGH_GPA, size - low, low)) != 0)
		goto out_unmap;
	return 0;

out_unmap:
	munmap(mem->base, size);
	mem->base = NULL;
out_close:
	close(mem->memfd);
	mem->memfd = -1;
out_fail:
	return r;
}

int memory__init_image(struct kvm_memory *mem, uint64_t size)
{
	return memory__init(mem, -1, size);
}

void memory__destroy(struct kvm_memory *mem)
{
	if (!mem)
		return;
	if (mem->base)
		munmap(mem->base, mem->size);
	if (mem->memfd >= 0)
		close(mem->memfd);
	mem->base = NULL;
	mem->memfd = -1;
	mem->nr_slots = 0;
}

uint64_t memory__page_of(const struct kvm_memory *mem, uint64_t gpa)
{
	const struct kvm_slot *s = memory__slot(mem, gpa);

	return s ? (s->offset + (gpa - s->gpa)) / KM_PAGE_SIZE : UINT64_MAX;
}

uint64_t memory__gpa_of(const struct kvm_memory *mem, uint64_t n)
{
	uint64_t off = n * KM_PAGE_SIZE;
	unsigned int i;

	for (i = mem->nr_slots; i-- > 1;)
		if (off >= mem->slots[i].offset)
			return mem->slots[i].gpa + (off - mem->slots[i].offset);
	return mem->slots[0].gpa + off;
}

const struct kvm_slot *memory__slot(const struct kvm_memory *mem, uint64_t gpa)
{
	unsigned int i;

	for (i = 0; i < mem->nr_slots; i++) {
		const struct kvm_slot *s = &mem->slots[i];

		if (gpa >= s->gpa && gpa - s->gpa < s->size)
			return s;
	}
	return NULL;
}

void *memory__hva(const struct kvm_memory *mem, uint64_t gpa, uint64_t len)
{
	const struct kvm_slot *s = memory__slot(mem, gpa);

	if (!s)
		return NULL;
	/* Written so that no sum can overflow: gpa - s->gpa < s->size holds. */
	if (len > s->size - (gpa - s->gpa))
		return NULL;
	return s->hva + (gpa - s->gpa);
}

uint64_t memory__end_gpa(const struct kvm_memory *mem)
{
	const struct kvm_slot *s;

	if (!mem->nr_slots)
		return 0;
	s = &mem->slots[mem->nr_slots - 1];
	return s->gpa + s->size;
}

/* The first page at or after page n a lazy restore has not brought in, or nr if none. */
static uint64_t memory__next_absent(const uint64_t *absent, uint64_t n, uint64_t nr)
{
	uint64_t w;

	while (n < nr) {
		w = __atomic_load_n(&absent[n / 64], __ATOMIC_ACQUIRE) >> (n % 64);
		if (w)
			return n + (uint64_t)__builtin_ctzll(w) < nr ? n + (uint64_t)__builtin_ctzll(w) : nr;
		n = (n / 64 + 1) * 64;
	}
	return nr;
}

/* The end of the run of absent pages that starts at page n. */
static uint64_t memory__absent_end(const uint64_t *absent, uint64_t n, uint64_t nr)
{
	while (n < nr && ((__atomic_load_n(&absent[n / 64], __ATOMIC_ACQUIRE) >> (n % 64)) & 1))
		n++;
	return n;
}

int memory__next_data(const struct kvm_memory *mem, uint64_t off, uint64_t *start,
		      uint64_t *end)
{
	const uint64_t *absent = __atomic_load_n(&mem->absent, __ATOMIC_ACQUIRE);
	uint64_t nr = memory__nr_pages(mem), a = nr;
	off_t d, h;

	if (off >= mem->size)
		return KM_ERR_END;
	/*
	 * Absent pages are looked at before the memfd: a page brought in
	 * between the two looks is then data, and none is missed.
	 */
	if (absent)
		a = memory__next_absent(absent, off / KM_PAGE_SIZE, nr);
	d = lseek(mem->memfd, (off_t)off, SEEK_DATA);
	if (d < 0 && errno != ENXIO)
		return km_errno();
	if (d < 0 || (a < nr && a * KM_PAGE_SIZE < (uint64_t)d)) {
		if (a >= nr)
			return KM_ERR_END;
		*start = a * KM_PAGE_SIZE > off ? a * KM_PAGE_SIZE : off;
		*end = memory__absent_end(absent, a, nr) * KM_PAGE_SIZE;
		return 0;
	}
	h = lseek(mem->memfd, d, SEEK_HOLE);
	if (h < 0)
		return km_errno();
	*start = (uint64_t)d;
	*end = (uint64_t)h < mem->size ? (uint64_t)h : mem->size;
	return 0;
}

int memory__write(struct kvm_memory *mem, uint64_t gpa, const void *data, uint64_t len)
{
	void *p = memory__hva(mem, gpa, len);

	if (!p)
		return KM_ERR_INVALID;
	memcpy(p, data, len);
	if (mem->dirty)
		dirty__mark(mem->dirty, gpa, len);
	return 0;
}

int memory__read(const struct kvm_memory *mem, uint64_t gpa, void *data, uint64_t len)
{
	const void *p = memory__hva(mem, gpa, len);

	if (!p)
		return KM_ERR_INVALID;
	memcpy(data, p, len);
	return 0;
}

int memory__resident(const struct kvm_memory *mem, uint64_t *bytes)
{
	struct stat st;

	/*
	 * What the memfd holds, mapped here or not: a migration's destination
	 * writes pages with pwritev, so they are in memory before anything
	 * maps them (the mapping's Rss in smaps would not count them).
	 */
	if (fstat(mem->memfd, &st) < 0)
		return km_errno();
	*bytes = (uint64_t)st.st_blocks * 512;
	return 0;
}

int memory__hash(const struct kvm_memory *mem, uint64_t *hash)
{
	XXH3_state_t *x = XXH3_createState();
	uint64_t start, end, off = 0, n, le;
	int r;

	if (!x)
		return -ENOMEM;
	XXH3_64bits_reset(x);
	while ((r = memory__next_data(mem, off, &start, &end)) == 0) {
		for (n = start / KM_PAGE_SIZE; n < (end + KM_PAGE_SIZE - 1) / KM_PAGE_SIZE; n++) {
			const uint8_t *p = memory__page_hva(mem, n);

			if (pages_is_zero(p))
				continue;
			le = htole64(n);
			XXH3_64bits_update(x, &le, sizeof(le));
			XXH3_64bits_update(x, p, KM_PAGE_SIZE);
		}
		off = end;
	}
	*hash = XXH3_64bits_digest(x);
	XXH3_freeState(x);
	return r == KM_ERR_END ? 0 : r;
}
