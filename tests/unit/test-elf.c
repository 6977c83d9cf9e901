/*
 * Unit tests of the ELF vmlinux loader (kvm/x86/elf.c) on guest memory
 * without /dev/kvm: a small well-formed image loads where its segments
 * say, and each header field a file could get wrong, cut short or make
 * wrap around is refused with its error, before anything is written.
 */
#define _GNU_SOURCE
#include "config.h"

#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "kvm/kvm.h"
#include "kvm/x86/linux.h"

#define MEM		(64ULL << 20)
#define SEG0_GPA	0x1000000ULL	/* 16 MiB, as a vmlinux's text */
#define SEG1_GPA	0x1400000ULL
#define SEG_BYTES	4096

/* An ELF header, three program headers (LOAD, LOAD with .bss, NOTE), two segments. */
struct image {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[3];
	uint8_t pad[4096 - sizeof(Elf64_Ehdr) - 3 * sizeof(Elf64_Phdr)];
	uint8_t seg[2][SEG_BYTES];
};

static struct kvm *vm;

static int setup(void **state)
{
	vm = calloc(1, sizeof(*vm));
	assert_non_null(vm);
	assert_ok(memory__init_image(&vm->mem, MEM));
	return 0;
}

static int teardown(void **state)
{
	memory__destroy(&vm->mem);
	free(vm);
	return 0;
}

static struct image *good(void)
{
	struct image *im = calloc(1, sizeof(*im));

	assert_non_null(im);
	memcpy(im->eh.e_ident, ELFMAG, SELFMAG);
	im->eh.e_ident[EI_CLASS] = ELFCLASS64;
	im->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	im->eh.e_ident[EI_VERSION] = EV_CURRENT;
	im->eh.e_type = ET_EXEC;
	im->eh.e_machine = EM_X86_64;
	im->eh.e_version = EV_CURRENT;
	im->eh.e_entry = SEG0_GPA + 0x10;
	im->eh.e_phoff = sizeof(Elf64_Ehdr);
	im->eh.e_ehsize = sizeof(Elf64_Ehdr);
	im->eh.e_phentsize = sizeof(Elf64_Phdr);
	im->eh.e_phnum = 3;
	im->ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = offsetof(struct image, seg[0]),
				  .p_vaddr = 0xffffffff81000000ULL, .p_paddr = SEG0_GPA,
				  .p_filesz = SEG_BYTES, .p_memsz = SEG_BYTES };
	im->ph[1] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = offsetof(struct image, seg[1]),
				  .p_paddr = SEG1_GPA, .p_filesz = SEG_BYTES,
				  .p_memsz = 3 * SEG_BYTES };
	im->ph[2] = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = 64, .p_filesz = 8 };
	memset(im->seg[0], 0xa1, SEG_BYTES);
	memset(im->seg[1], 0xb2, SEG_BYTES);
	return im;
}

static int load(const struct image *im, uint64_t len, struct linux_image *li)
{
	return elf__load_vmlinux(vm, "test", (const uint8_t *)im, len, li);
}

static void test_good_loads_at_paddr(void **state)
{
	struct image *im = good();
	struct linux_image li;
	uint8_t *m0 = memory__hva(&vm->mem, SEG0_GPA, SEG_BYTES);
	uint8_t *m1 = memory__hva(&vm->mem, SEG1_GPA, SEG_BYTES);

	assert_true(elf__is_elf((const uint8_t *)im, sizeof(*im)));
	assert_ok(load(im, sizeof(*im), &li));
	assert_memory_equal(m0, im->seg[0], SEG_BYTES);
	assert_memory_equal(m1, im->seg[1], SEG_BYTES);
	assert_int_equal(li.entry, SEG0_GPA + 0x10);
	assert_int_equal(li.start, SEG0_GPA);
	assert_int_equal(li.end, SEG1_GPA + 3 * SEG_BYTES);
	assert_int_equal(li.hdr.boot_flag, 0xaa55);
	assert_int_equal(li.hdr.header, 0x53726448);
	assert_int_equal(li.hdr.version, LINUX_ELF_PROTO);
	assert_int_equal(li.hdr.cmdline_size, LINUX_ELF_CMDLINE_MAX);
	memset(m0, 0, SEG_BYTES);
	memset(m1, 0, SEG_BYTES);
	free(im);
}

/* One way to spoil a good image, and the error that must come of it. */
struct spoil {
	const char *what;
	void (*apply)(struct image *im, uint64_t *len);
	int err;
};

static void short_header(struct image *im, uint64_t *len) { *len = sizeof(Elf64_Ehdr) - 1; }
static void class32(struct image *im, uint64_t *len) { im->eh.e_ident[EI_CLASS] = ELFCLASS32; }
static void big_endian(struct image *im, uint64_t *len) { im->eh.e_ident[EI_DATA] = ELFDATA2MSB; }
static void aarch64(struct image *im, uint64_t *len) { im->eh.e_machine = EM_AARCH64; }
static void dyn(struct image *im, uint64_t *len) { im->eh.e_type = ET_DYN; }
static void phentsize(struct image *im, uint64_t *len) { im->eh.e_phentsize = 32; }
static void no_phdrs(struct image *im, uint64_t *len) { im->eh.e_phnum = 0; }
static void many_phdrs(struct image *im, uint64_t *len) { im->eh.e_phnum = 65; }
static void phoff_past(struct image *im, uint64_t *len) { im->eh.e_phoff = sizeof(*im) - 100; }
static void phoff_wraps(struct image *im, uint64_t *len) { im->eh.e_phoff = UINT64_MAX - 8; }
static void cut_in_seg(struct image *im, uint64_t *len) { *len = sizeof(*im) - 1; }
static void filesz_big(struct image *im, uint64_t *len) { im->ph[0].p_memsz = 100; }
static void offset_wraps(struct image *im, uint64_t *len) { im->ph[1].p_offset = UINT64_MAX - 16; }
static void below_1m(struct image *im, uint64_t *len) { im->ph[1].p_paddr = 0x7000; }
static void beyond_ram(struct image *im, uint64_t *len) { im->ph[1].p_paddr = MEM - 4096; }
static void paddr_wraps(struct image *im, uint64_t *len)
{
	im->ph[1].p_paddr = UINT64_MAX - 4095;
	im->ph[1].p_memsz = 8192;
}
static void no_load(struct image *im, uint64_t *len) { im->ph[0].p_type = im->ph[1].p_type = PT_NOTE; }
static void entry_out(struct image *im, uint64_t *len) { im->eh.e_entry = SEG0_GPA + SEG_BYTES; }

static const struct spoil spoils[] = {
	{ "shorter than the ELF header", short_header, KM_ERR_TRUNCATED },
	{ "ELFCLASS32", class32, KM_ERR_BAD_MAGIC },
	{ "big-endian", big_endian, KM_ERR_BAD_MAGIC },
	{ "EM_AARCH64", aarch64, KM_ERR_BAD_MAGIC },
	{ "ET_DYN", dyn, KM_ERR_BAD_MAGIC },
	{ "e_phentsize 32", phentsize, KM_ERR_CORRUPT },
	{ "no program header", no_phdrs, KM_ERR_CORRUPT },
	{ "65 program headers", many_phdrs, KM_ERR_CORRUPT },
	{ "program headers past the end", phoff_past, KM_ERR_TRUNCATED },
	{ "e_phoff near 2^64", phoff_wraps, KM_ERR_TRUNCATED },
	{ "file cut inside a segment", cut_in_seg, KM_ERR_TRUNCATED },
	{ "p_filesz > p_memsz", filesz_big, KM_ERR_CORRUPT },
	{ "p_offset near 2^64", offset_wraps, KM_ERR_TRUNCATED },
	{ "a segment below 1 MiB", below_1m, KM_ERR_INVALID },
	{ "a segment past the end of RAM", beyond_ram, KM_ERR_TOO_LARGE },
	{ "p_paddr + p_memsz wraps", paddr_wraps, KM_ERR_TOO_LARGE },
	{ "no PT_LOAD", no_load, KM_ERR_CORRUPT },
	{ "e_entry in no segment", entry_out, KM_ERR_CORRUPT },
};

static void test_spoiled_refused_unwritten(void **state)
{
	const uint8_t *m0 = memory__hva(&vm->mem, SEG0_GPA, SEG_BYTES);
	static const uint8_t zero[SEG_BYTES];
	struct linux_image li;
	unsigned int i;

	for (i = 0; i < sizeof(spoils) / sizeof(spoils[0]); i++) {
		struct image *im = good();
		uint64_t len = sizeof(*im);
		int r;

		spoils[i].apply(im, &len);
		r = load(im, len, &li);
		if (r != spoils[i].err)
			fail_msg("%s: got %d (%s), want %d (%s)", spoils[i].what, r,
				 km_strerror(r), spoils[i].err, km_strerror(spoils[i].err));
		/* Checked before written: the first, good segment is not there either. */
		if (memcmp(m0, zero, SEG_BYTES) != 0)
			fail_msg("%s: refused, but segment 0 was written", spoils[i].what);
		free(im);
	}
}

static void test_not_elf(void **state)
{
	static const uint8_t bz[] = "MZ\x00\x00 not ELF";

	assert_false(elf__is_elf(bz, sizeof(bz)));
	assert_false(elf__is_elf((const uint8_t *)ELFMAG, SELFMAG - 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_loads_at_paddr),
		cmocka_unit_test(test_spoiled_refused_unwritten),
		cmocka_unit_test(test_not_elf),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
