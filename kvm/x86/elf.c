/*
 * An uncompressed x86-64 ELF vmlinux, loaded as Firecracker does: each
 * PT_LOAD segment at its physical address, entry at e_entry (the kernel's
 * own startup_64, which takes the 64-bit boot protocol's state: long mode,
 * an identity map, RSI at the zero page). There is no setup header in such
 * a file, so the loader writes the one the zero page needs (linux.h).
 * Every field of the file is bounded before use: a foreign, truncated or
 * inconsistent file is refused with the reason.
 */
#include <elf.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "kvm/kvm.h"
#include "kvm/x86/linux.h"

#define ELF_PHDRS_MAX	64	/* a vmlinux has about 5; more is not a kernel of ours */

bool elf__is_elf(const uint8_t *img, uint64_t len)
{
	return len >= SELFMAG && memcmp(img, ELFMAG, SELFMAG) == 0;
}

/* The ELF header's checks: a little-endian 64-bit x86-64 executable with sane program headers. */
static int elf__check_header(const char *path, const uint8_t *img, uint64_t len,
			     const Elf64_Ehdr **out)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;

	if (len < sizeof(*eh)) {
		log_error("kernel %s: truncated ELF file (%llu bytes, shorter than its header)",
			  path, (unsigned long long)len);
		return KM_ERR_TRUNCATED;
	}
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh->e_machine != EM_X86_64) {
		log_error("kernel %s: an ELF file, but not for x86-64 (class %u, data %u, "
			  "machine %u)", path, eh->e_ident[EI_CLASS], eh->e_ident[EI_DATA],
			  eh->e_machine);
		return KM_ERR_BAD_MAGIC;
	}
	if (eh->e_type != ET_EXEC) {
		log_error("kernel %s: an x86-64 ELF file of type %u, not an executable "
			  "(a vmlinux is ET_EXEC)", path, eh->e_type);
		return KM_ERR_BAD_MAGIC;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 ||
	    eh->e_phnum > ELF_PHDRS_MAX) {
		log_error("kernel %s: %u program headers of %u bytes (a vmlinux has 1 to %u "
			  "of %zu)", path, eh->e_phnum, eh->e_phentsize, ELF_PHDRS_MAX,
			  sizeof(Elf64_Phdr));
		return KM_ERR_CORRUPT;
	}
	/* e_phnum is bounded above, so the product cannot wrap. */
	if (eh->e_phoff > len || len - eh->e_phoff < (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr)) {
		log_error("kernel %s: truncated ELF file (program headers past its end)", path);
		return KM_ERR_TRUNCATED;
	}
	*out = eh;
	return 0;
}

/*
 * One PT_LOAD segment's bounds: its bytes within the file, its memory
 * within the RAM below the hole and above the VMM's low-memory layout
 * (linux.h), which the kernel must not overwrite.
 */
static int elf__check_segment(const char *path, unsigned int i, const Elf64_Phdr *ph,
			      uint64_t len, uint64_t low_end)
{
	if (ph->p_filesz > ph->p_memsz) {
		log_error("kernel %s: segment %u has more file bytes (%llu) than memory (%llu)",
			  path, i, (unsigned long long)ph->p_filesz,
			  (unsigned long long)ph->p_memsz);
		return KM_ERR_CORRUPT;
	}
	if (ph->p_offset > len || len - ph->p_offset < ph->p_filesz) {
		log_error("kernel %s: truncated ELF file (segment %u: %llu bytes from byte %llu, "
			  "the file has %llu)", path, i, (unsigned long long)ph->p_filesz,
			  (unsigned long long)ph->p_offset, (unsigned long long)len);
		return KM_ERR_TRUNCATED;
	}
	if (ph->p_paddr < LINUX_HIGH_GPA) {
		log_error("kernel %s: segment %u at %#llx, below 1 MiB where kvm-run keeps the "
			  "zero page, page tables and ACPI tables", path, i,
			  (unsigned long long)ph->p_paddr);
		return KM_ERR_INVALID;
	}
	if (ph->p_paddr > low_end || low_end - ph->p_paddr < ph->p_memsz) {
		log_error("kernel %s: segment %u (%llu KiB at %#llx) is outside the %llu MiB of "
			  "RAM below the hole: give more --mem", path, i,
			  (unsigned long long)(ph->p_memsz >> 10), (unsigned long long)ph->p_paddr,
			  (unsigned long long)(low_end >> 20));
		return KM_ERR_TOO_LARGE;
	}
	return 0;
}

int elf__load_vmlinux(struct kvm *kvm, const char *path, const uint8_t *img, uint64_t len,
		      struct linux_image *li)
{
	uint64_t low_end = kvm->mem.slots[0].gpa + kvm->mem.slots[0].size;
	uint64_t start = UINT64_MAX, end = 0;
	const Elf64_Ehdr *eh;
	const Elf64_Phdr *ph;
	unsigned int i, loads = 0;
	bool entry_in = false;
	int r;

	if ((r = elf__check_header(path, img, len, &eh)) != 0)
		return r;
	/* Every segment checked before any is written: a refused file leaves memory as it was. */
	for (i = 0; i < eh->e_phnum; i++) {
		ph = (const Elf64_Phdr *)(img + eh->e_phoff) + i;
		if (ph->p_type != PT_LOAD)
			continue;
		if ((r = elf__check_segment(path, i, ph, len, low_end)) != 0)
			return r;
		loads++;
		if (ph->p_paddr < start)
			start = ph->p_paddr;
		if (ph->p_paddr + ph->p_memsz > end)
			end = ph->p_paddr + ph->p_memsz;
		if (eh->e_entry >= ph->p_paddr && eh->e_entry - ph->p_paddr < ph->p_memsz)
			entry_in = true;
	}
	if (!loads) {
		log_error("kernel %s: an x86-64 ELF file with no PT_LOAD segment", path);
		return KM_ERR_CORRUPT;
	}
	if (!entry_in) {
		log_error("kernel %s: entry point %#llx is in no loaded segment (a vmlinux "
			  "enters at the physical address of startup_64)", path,
			  (unsigned long long)eh->e_entry);
		return KM_ERR_CORRUPT;
	}
	/*
	 * Memory past p_filesz (.bss, .brk) must read as zeros: it does, a
	 * new VM's memory is a fresh memfd, and the kernel clears its .bss
	 * itself anyway.
	 */
	for (i = 0; i < eh->e_phnum; i++) {
		ph = (const Elf64_Phdr *)(img + eh->e_phoff) + i;
		if (ph->p_type != PT_LOAD || !ph->p_filesz)
			continue;
		if ((r = memory__write(&kvm->mem, ph->p_paddr, img + ph->p_offset,
				       ph->p_filesz)) != 0)
			return r;
	}

	/*
	 * The setup header a bzImage would carry and a boot loader would
	 * complete (boot.rst), made up: what the kernel reads of it is the
	 * magic, the loader's fields (linux.c fills cmd_line_ptr and the
	 * initrd's) and its version; the rest is for loaders, ours included
	 * (the command line and initrd bounds).
	 */
	memset(li, 0, sizeof(*li));
	li->hdr.boot_flag = 0xaa55;
	li->hdr.header = 0x53726448;			/* "HdrS" */
	li->hdr.version = LINUX_ELF_PROTO;
	li->hdr.loadflags = 1;				/* LOADED_HIGH: it is above 1 MiB */
	li->hdr.kernel_alignment = 0x1000000;		/* x86-64's CONFIG_PHYSICAL_ALIGN default */
	li->hdr.initrd_addr_max = 0x7fffffff;		/* 2.03+ kernels' value */
	li->hdr.cmdline_size = LINUX_ELF_CMDLINE_MAX;
	li->hdr.code32_start = (uint32_t)start;
	li->entry = eh->e_entry;
	li->start = start;
	li->end = end;
	li->kind = "ELF vmlinux";
	log_info("kernel %s: ELF vmlinux, %u PT_LOAD segments at %#llx-%#llx, entry %#llx",
		 path, loads, (unsigned long long)start, (unsigned long long)end,
		 (unsigned long long)eh->e_entry);
	return 0;
}
