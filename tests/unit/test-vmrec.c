/*
 * Unit tests of kvm/vmrec (the VM as records) without /dev/kvm: two VMs
 * are made of guest memory alone (a memfd, mapped, split into the two
 * slots kvm/memory.c makes), pages of one are encoded into REC_PAGES
 * payloads and loaded into the other, and both memories must then read
 * the same. The pages mix the kinds and the page numbers jump around and
 * repeat, so that runs break, lz4 scratch slots fill, and zero pages land
 * on pages written before: the loader's bookkeeping is what is tested.
 */
#define _GNU_SOURCE
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "unit.h"
#include "record.h"
#include "kvm/kvm.h"
#include "kvm/vmrec.h"

#define MEM	(8ULL << 20)

/* A VM of memory only: slot 0 [0, 6M), slot 1 from 4G holding the rest. */
static struct kvm *mem_vm(void)
{
	struct kvm *vm = calloc(1, sizeof(*vm));

	assert_non_null(vm);
	vm->mem.memfd = memfd_create("test-vmrec", MFD_CLOEXEC);
	assert_true(vm->mem.memfd >= 0);
	assert_int_equal(ftruncate(vm->mem.memfd, MEM), 0);
	vm->mem.base = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED, vm->mem.memfd, 0);
	assert_true(vm->mem.base != MAP_FAILED);
	vm->mem.size = MEM;
	vm->mem.nr_slots = 2;
	vm->mem.slots[0] = (struct kvm_slot){ .gpa = 0, .size = 6 << 20, .hva = vm->mem.base };
	vm->mem.slots[1] = (struct kvm_slot){ .id = 1, .gpa = 4ULL << 30, .size = MEM - (6 << 20),
					      .offset = 6 << 20, .hva = vm->mem.base + (6 << 20) };
	return vm;
}

static void mem_vm_free(struct kvm *vm)
{
	munmap(vm->mem.base, MEM);
	close(vm->mem.memfd);
	free(vm);
}

/* Page n with content of kind k (0 zero, 1 random, 2 text) and version v. */
static void fill(uint8_t *p, unsigned int k, uint64_t n, uint64_t v)
{
	uint64_t x = (n + 1) * 0x9e3779b97f4a7c15ULL ^ v;
	unsigned int i;

	memset(p, 0, KM_PAGE_SIZE);
	for (i = 0; k && i < KM_PAGE_SIZE; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = k == 1 ? (uint8_t)x : (uint8_t)("lorem ipsum dolor "[(i + v) % 18] + n % 61);
	}
}

struct sink {
	struct vmrec_loader *ld;
	unsigned int batches;
};

/* Each full batch goes straight into the other VM, as a stream would bring it. */
static int to_loader(void *ctx, struct buf **payload, const struct pages_stats *st)
{
	struct sink *k = ctx;
	int r = vmrec_load_pages(k->ld, buf_ptr(*payload), (uint32_t)buf_len(*payload));

	buf_reset(*payload);
	k->batches++;
	return r;
}

static void test_pages_round_trip(void **state)
{
	struct kvm *src = mem_vm(), *dst = mem_vm();
	uint64_t nr = memory__nr_pages(&src->mem), n, round, i, len;
	struct vmrec_loader ld;
	struct vmrec_enc enc;
	struct sink k = { .ld = &ld };
	struct bitmap set;
	uint64_t h1, h2;

	assert_ok(bitmap_init(&set, nr));
	assert_ok(vmrec_load_init(&ld, dst, true));
	assert_ok(vmrec_enc_init(&enc, src, true, to_loader, &k));
	/* Rounds of writes as a guest's, each sent as a pre-copy round would be. */
	for (round = 0; round < 6; round++) {
		bitmap_clear_all(&set);
		/*
		 * Runs of consecutive pages of varying length, then a jump: runs
		 * break mid-batch, and a run may hold more lz4 pages than the
		 * one before.
		 */
		for (i = 0, n = round * 104729 % nr, len = 0; i < 1500; i++, n = (n + 1) % nr) {
			if (len-- == 0) {
				len = 20 + (i * 37 + round * 11) % 230;
				n = (n + 7919) % nr;
			}
			fill(memory__page_hva(&src->mem, n), (i + round) % 5 ? 2 : (i % 2), n, round);
			bitmap_set(&set, n);
		}
		assert_ok(vmrec_enc_set(&enc, &set, round == 0, NULL, NULL, NULL));
		assert_ok(vmrec_enc_flush(&enc));
		assert_ok(memory__hash(&src->mem, &h1));
		assert_ok(memory__hash(&dst->mem, &h2));
		assert_true(h1 == h2);
		assert_memory_equal(src->mem.base, dst->mem.base, MEM);
	}
	assert_true(k.batches >= 6);
	vmrec_enc_free(&enc);
	vmrec_load_free(&ld);
	bitmap_free(&set);
	mem_vm_free(src);
	mem_vm_free(dst);
}

/* Page numbering: every page's gpa maps back to it; the hole and beyond are not RAM. */
static void test_page_numbering(void **state)
{
	struct kvm *vm = mem_vm();
	uint64_t n;

	for (n = 0; n < memory__nr_pages(&vm->mem); n++)
		assert_true(memory__page_of(&vm->mem, memory__gpa_of(&vm->mem, n)) == n);
	assert_true(memory__gpa_of(&vm->mem, (6 << 20) / 4096) == 4ULL << 30);
	assert_true(memory__page_of(&vm->mem, 6 << 20) == UINT64_MAX);
	assert_true(memory__page_of(&vm->mem, (4ULL << 30) + MEM) == UINT64_MAX);
	mem_vm_free(vm);
}

/* An address outside RAM, and lz4 where it was not agreed: refused, named. */
static void test_loader_refuses(void **state)
{
	struct kvm *vm = mem_vm();
	struct vmrec_loader ld;
	struct buf *b = buf_new(VMREC_BATCH);
	uint8_t page[KM_PAGE_SIZE];

	assert_ok(vmrec_load_init(&ld, vm, false));
	fill(page, 2, 1, 1);
	assert_ok(pages_put(b, 6 << 20, page, false, &(struct pages_stats){ 0 }));
	assert_err(vmrec_load_pages(&ld, buf_ptr(b), (uint32_t)buf_len(b)), KM_ERR_CORRUPT);
	assert_non_null(strstr(ld.why, "outside guest memory"));
	buf_reset(b);
	assert_ok(pages_put(b, 0, page, true, &(struct pages_stats){ 0 }));
	assert_err(vmrec_load_pages(&ld, buf_ptr(b), (uint32_t)buf_len(b)), KM_ERR_CORRUPT);
	assert_non_null(strstr(ld.why, "lz4"));
	buf_free(b);
	vmrec_load_free(&ld);
	mem_vm_free(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pages_round_trip),
		cmocka_unit_test(test_page_numbering),
		cmocka_unit_test(test_loader_refuses),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
