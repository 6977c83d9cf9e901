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

/* ---- REC_DISK_BLOCKS ---- */

#define DSIZE	(3 * 4096 + 512)	/* a short last block */

struct disk_img {
	uint8_t d[4 * 4096];
	uint64_t puts;
};

static int disk_put(void *ctx, uint64_t off, const uint8_t *data)
{
	struct disk_img *img = ctx;

	if (data)
		memcpy(img->d + off, data, off + 4096 > DSIZE ? DSIZE - off : 4096);
	else
		memset(img->d + off, 0, off + 4096 > DSIZE ? DSIZE - off : 4096);
	img->puts++;
	return 0;
}

static int disk_keep(void *ctx, const uint8_t *p, uint32_t len)
{
	return buf_put(ctx, p, len);
}

/* Four blocks (random, zero, compressible, short) of a disk of DSIZE, encoded into out. */
static void disk_encode(struct buf *out, struct disk_img *src, bool lz4)
{
	struct vmrec_disk_enc e;
	unsigned int i;

	memset(src, 0, sizeof(*src));
	for (i = 0; i < 4096; i++) {
		src->d[i] = (uint8_t)random();
		src->d[2 * 4096 + i] = (uint8_t)(i / 64);
	}
	memset(src->d + 3 * 4096, 0x77, 512);
	assert_ok(vmrec_disk_enc_init(&e, DSIZE, lz4, disk_keep, out));
	for (i = 0; i < 4; i++)
		assert_ok(vmrec_disk_enc_block(&e, i, src->d + i * 4096));
	assert_err(vmrec_disk_enc_block(&e, 4, src->d), KM_ERR_INVALID);
	assert_ok(vmrec_disk_enc_flush(&e));
	assert_int_equal(e.blocks, 4);
	vmrec_disk_enc_free(&e);
}

static void test_disk_round_trip(void **state)
{
	struct buf *p = buf_new(1 << 20);
	struct disk_img src, dst;
	uint64_t size = 0, n = 0;
	char why[200];

	disk_encode(p, &src, true);
	memset(&dst, 0xff, sizeof(dst));
	dst.puts = 0;
	assert_ok(vmrec_disk_walk(buf_ptr(p), (uint32_t)buf_len(p), 0, true, disk_put, &dst,
				  &size, &n, why, sizeof(why)));
	assert_int_equal(size, DSIZE);
	assert_int_equal(n, 4);
	assert_int_equal(dst.puts, 4);
	assert_memory_equal(dst.d, src.d, DSIZE);
	/* Smaller than raw: the zero block is 8 bytes, the pattern lz4. */
	assert_true(buf_len(p) < 8 + 2 * (8 + 4096) + 8 + 3000);
	buf_free(p);
}

static void test_disk_refuses(void **state)
{
	struct buf *p = buf_new(1 << 20);
	struct disk_img src, dst;
	uint8_t *copy;
	uint64_t v, n;
	uint32_t len, cut;
	char why[200];
	int r;

	disk_encode(p, &src, true);
	len = (uint32_t)buf_len(p);
	copy = malloc(len);
	assert_non_null(copy);
	/* Another disk's blocks; lz4 where the file announced none. */
	assert_err(vmrec_disk_walk(buf_ptr(p), len, DSIZE + 512, true, NULL, NULL, NULL, NULL, why,
				   sizeof(why)), KM_ERR_INVALID);
	assert_err(vmrec_disk_walk(buf_ptr(p), len, DSIZE, false, NULL, NULL, NULL, NULL, why,
				   sizeof(why)), KM_ERR_CORRUPT);
	assert_non_null(strstr(why, "lz4"));
	/* Every cut: no size, or an entry torn, or (at an entry's end) fewer blocks. */
	for (cut = 0; cut < len; cut++) {
		dst.puts = 0;
		n = 0;
		r = vmrec_disk_walk(buf_ptr(p), cut, DSIZE, true, disk_put, &dst, NULL, &n, why,
				    sizeof(why));
		if (cut < 8)
			assert_int_equal(r, KM_ERR_CORRUPT);
		else
			assert_true(r == KM_ERR_TRUNCATED || (r == 0 && n < 4));
		assert_int_equal(dst.puts, n);
	}
	/* A size of 0 or not whole sectors; a block past the end; an unknown kind. */
	for (v = 0; v < 4; v++) {
		uint64_t bad[] = { 0, DSIZE + 1, DSIZE, DSIZE };

		memcpy(copy, buf_ptr(p), len);
		memcpy(copy, &bad[v], 8);
		if (v == 2) {
			uint64_t e = 4 * 4096;	/* block 4: at the disk's end, a zero entry */

			memcpy(copy + 8, &e, 8);
		} else if (v == 3) {
			copy[8] = 7;		/* the first entry's kind */
		}
		assert_err(vmrec_disk_walk(copy, len, 0, true, NULL, NULL, NULL, NULL, why,
					   sizeof(why)), KM_ERR_CORRUPT);
	}
	free(copy);
	buf_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pages_round_trip),
		cmocka_unit_test(test_page_numbering),
		cmocka_unit_test(test_loader_refuses),
		cmocka_unit_test(test_disk_round_trip),
		cmocka_unit_test(test_disk_refuses),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
