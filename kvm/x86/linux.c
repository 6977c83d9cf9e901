/*
 * The Linux boot: a bzImage loaded per the x86 boot protocol
 * (Documentation/arch/x86/boot.rst) and entered at its 64-bit entry point,
 * as kvmtool and Firecracker do, or an ELF vmlinux (elf.c) entered the same
 * way. See linux.h for the memory layout.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <asm/bootparam.h>

#include "err.h"
#include "log.h"
#include "kvm/kvm.h"
#include "kvm/kvm-cpu.h"
#include "kvm/x86/linux.h"
#include "kvm/x86/x86.h"

#define BOOT_FLAG_MAGIC		0xaa55
#define HDRS_MAGIC		0x53726448	/* "HdrS" */
#define PROTO_MIN		0x206		/* cmdline_size is there from 2.06 */
#define LOADFLAG_LOADED_HIGH	(1U << 0)
#define LOADFLAG_CAN_USE_HEAP	(1U << 7)
#define E820_RAM		1
#define E820_RESERVED		2

#define PTE_P		(1ULL << 0)
#define PTE_RW		(1ULL << 1)
#define PTE_PS		(1ULL << 7)
#define PML4_GPA	LINUX_PGTABLE_GPA
#define PDPT_GPA	(LINUX_PGTABLE_GPA + 0x1000)
#define PD_GPA		(LINUX_PGTABLE_GPA + 0x2000)	/* 4 pages: the first 4 GiB */

#define SEL_CODE	0x08
#define SEL_DATA	0x10
#define SEL_TSS		0x18

#define CR0_PE		(1ULL << 0)
#define CR0_ET		(1ULL << 4)
#define CR0_NE		(1ULL << 5)
#define CR0_PG		(1ULL << 31)
#define CR4_PAE		(1ULL << 5)
#define EFER_LME	(1ULL << 8)
#define EFER_LMA	(1ULL << 10)


/* Reads a whole file of at most max bytes into a malloc'd buffer. */
static int linux__read_file(const char *what, const char *path, uint64_t max,
			    uint8_t **out, uint64_t *len)
{
	uint8_t *data = NULL;
	struct stat st;
	uint64_t got = 0;
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = km_errno();
		log_error("%s %s: %s", what, path, km_strerror(r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = km_errno();
		log_error("%s %s: %s", what, path, km_strerror(r));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > max) {
		log_error("%s %s: %s (%lld bytes; at most %llu)", what, path,
			  S_ISREG(st.st_mode) ? "empty or too large" : "not a regular file",
			  (long long)st.st_size, (unsigned long long)max);
		r = S_ISREG(st.st_mode) ? KM_ERR_TOO_LARGE : KM_ERR_INVALID;
		goto out;
	}
	data = malloc((size_t)st.st_size);
	if (!data) {
		r = -ENOMEM;
		goto out;
	}
	while (got < (uint64_t)st.st_size) {
		n = read(fd, data + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? km_errno() : KM_ERR_TRUNCATED;
			log_error("%s %s: short read: %s", what, path, km_strerror(r));
			goto out;
		}
		got += (uint64_t)n;
	}
	*out = data;
	*len = got;
	data = NULL;
	r = 0;
out:
	free(data);
	close(fd);
	return r;
}

/* Where the e820 map says RAM is: exactly the memory slots, less the BIOS areas below 1 MiB. */
static void linux__e820(struct kvm *kvm, struct boot_params *bp)
{
	struct boot_e820_entry *e = bp->e820_table;
	unsigned int n = 0, i;

	e[n++] = (struct boot_e820_entry){ 0, LINUX_EBDA_GPA, E820_RAM };
	e[n++] = (struct boot_e820_entry){ LINUX_EBDA_GPA, 0xa0000 - LINUX_EBDA_GPA, E820_RESERVED };
	/* 0xa0000-0xe0000 (VGA, option ROMs) is in no entry: nothing is there. */
	e[n++] = (struct boot_e820_entry){ LINUX_ACPI_GPA, LINUX_HIGH_GPA - LINUX_ACPI_GPA,
					   E820_RESERVED };
	for (i = 0; i < kvm->mem.nr_slots; i++) {
		const struct kvm_slot *s = &kvm->mem.slots[i];
		uint64_t start = s->gpa < LINUX_HIGH_GPA ? LINUX_HIGH_GPA : s->gpa;

		e[n++] = (struct boot_e820_entry){ start, s->gpa + s->size - start, E820_RAM };
	}
	bp->e820_entries = (uint8_t)n;
}

/* Identity map of the first 4 GiB with 2 MiB pages, supervisor-only: enough for startup_64. */
static int linux__page_tables(struct kvm *kvm)
{
	uint64_t e, i;
	int r;

	e = PDPT_GPA | PTE_P | PTE_RW;
	if ((r = memory__write(&kvm->mem, PML4_GPA, &e, 8)) != 0)
		return r;
	for (i = 0; i < 4; i++) {
		e = (PD_GPA + i * 0x1000) | PTE_P | PTE_RW;
		if ((r = memory__write(&kvm->mem, PDPT_GPA + i * 8, &e, 8)) != 0)
			return r;
	}
	for (i = 0; i < 4 * 512; i++) {
		e = (i << 21) | PTE_P | PTE_RW | PTE_PS;
		if ((r = memory__write(&kvm->mem, PD_GPA + i * 8, &e, 8)) != 0)
			return r;
	}
	return 0;
}

static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000) << 32) | ((uint64_t)(flags & 0xf0ff) << 40) |
	       ((uint64_t)(limit & 0xf0000) << 32) | ((uint64_t)(base & 0xffffff) << 16) |
	       (limit & 0xffff);
}

static void linux__segment(struct kvm_segment *s, uint64_t desc, uint16_t sel)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = (desc >> 40) & 0xf;
	s->s = (desc >> 44) & 1;
	s->dpl = (desc >> 45) & 3;
	s->present = (desc >> 47) & 1;
	s->avl = (desc >> 52) & 1;
	s->l = (desc >> 53) & 1;
	s->db = (desc >> 54) & 1;
	s->g = (desc >> 55) & 1;
}

/* vCPU 0 at the 64-bit entry, CPL0, paging on, RSI at the zero page (boot.rst "64-bit BOOT PROTOCOL"). */
static int linux__setup_bsp(struct kvm *kvm, uint64_t entry)
{
	uint64_t gdt[4] = {
		0,
		gdt_entry(0xa09b, 0, 0xfffff),	/* code: L=1, DPL0 */
		gdt_entry(0xc093, 0, 0xfffff),	/* data */
		gdt_entry(0x808b, 0, 0xfffff),	/* TSS: VM entry wants a usable TR */
	};
	uint64_t idt = 0;
	struct kvm_cpu *cpu = kvm->cpus[0];
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	int r;

	if ((r = memory__write(&kvm->mem, LINUX_GDT_GPA, gdt, sizeof(gdt))) != 0 ||
	    (r = memory__write(&kvm->mem, LINUX_IDT_GPA, &idt, sizeof(idt))) != 0)
		return r;
	if (ioctl(cpu->fd, KVM_GET_SREGS, &sregs) < 0) {
		r = km_errno();
		log_error("vCPU 0: KVM_GET_SREGS: %s", km_strerror(r));
		return r;
	}
	linux__segment(&sregs.cs, gdt[1], SEL_CODE);
	linux__segment(&sregs.ds, gdt[2], SEL_DATA);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	linux__segment(&sregs.tr, gdt[3], SEL_TSS);
	sregs.gdt.base = LINUX_GDT_GPA;
	sregs.gdt.limit = sizeof(gdt) - 1;
	sregs.idt.base = LINUX_IDT_GPA;
	sregs.idt.limit = sizeof(idt) - 1;
	sregs.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
	sregs.cr3 = PML4_GPA;
	sregs.cr4 = CR4_PAE;
	sregs.efer = EFER_LME | EFER_LMA;
	if (ioctl(cpu->fd, KVM_SET_SREGS, &sregs) < 0) {
		r = km_errno();
		log_error("vCPU 0: KVM_SET_SREGS: %s", km_strerror(r));
		return r;
	}
	memset(&regs, 0, sizeof(regs));
	regs.rip = entry;
	regs.rsi = LINUX_ZERO_PAGE_GPA;
	regs.rsp = regs.rbp = LINUX_STACK_GPA;
	regs.rflags = 2;
	if (ioctl(cpu->fd, KVM_SET_REGS, &regs) < 0) {
		r = km_errno();
		log_error("vCPU 0: KVM_SET_REGS: %s", km_strerror(r));
		return r;
	}
	return 0;
}

/*
 * What KVM offers, plus what a kernel should know (x86__cpuid_vmm_bits:
 * the hypervisor bit, the TSC-deadline timer). Anything KVM does not
 * offer is not in the list to begin with.
 */
static int linux__cpuid(struct kvm *kvm)
{
	struct kvm_cpuid2 *mine = NULL;
	unsigned int i;
	int r;

	x86__cpuid_vmm_bits(kvm->vm_fd, kvm->cpuid);
	for (i = 0; i < kvm->nr_cpus; i++) {
		if ((r = x86__cpuid_for_vcpu(kvm->cpuid, i, &mine)) != 0)
			return r;
		if (ioctl(kvm->cpus[i]->fd, KVM_SET_CPUID2, mine) < 0) {
			r = km_errno();
			log_error("vCPU %u: KVM_SET_CPUID2: %s", i, km_strerror(r));
			free(mine);
			return r;
		}
		free(mine);
		mine = NULL;
	}
	return 0;
}

/* The header checks of boot.rst: a bzImage of protocol 2.06 or later with a 64-bit entry. */
static int linux__check_header(const char *path, const uint8_t *img, uint64_t len,
			       const struct setup_header **out)
{
	const struct setup_header *h;

	if (len < 0x1f1 + sizeof(*h)) {
		log_error("kernel %s: not a Linux bzImage (%llu bytes, too short for the "
			  "boot protocol header)", path, (unsigned long long)len);
		return KM_ERR_BAD_MAGIC;
	}
	h = (const struct setup_header *)(img + 0x1f1);
	if (h->boot_flag != BOOT_FLAG_MAGIC || h->header != HDRS_MAGIC) {
		log_error("kernel %s: not a Linux bzImage (no \"HdrS\" boot header)", path);
		return KM_ERR_BAD_MAGIC;
	}
	if (h->version < PROTO_MIN) {
		log_error("kernel %s: boot protocol %u.%02u; kvm-run needs 2.06 or later", path,
			  h->version >> 8, h->version & 0xff);
		return KM_ERR_VERSION;
	}
	if (h->version < 0x20c || !(h->xloadflags & XLF_KERNEL_64)) {
		log_error("kernel %s: no 64-bit entry point (XLF_KERNEL_64); kvm-run enters "
			  "kernels in 64-bit mode only", path);
		return KM_ERR_VERSION;
	}
	if (!(h->loadflags & LOADFLAG_LOADED_HIGH)) {
		log_error("kernel %s: a zImage (loaded low); only bzImages are supported", path);
		return KM_ERR_VERSION;
	}
	*out = h;
	return 0;
}

/*
 * Loads the protected-mode part of a bzImage where its header prefers
 * (2.10+: pref_address), which a relocatable kernel would move from but
 * need not; it then needs init_size bytes from there to decompress in
 * place.
 */
static int linux__load_bzimage(struct kvm *kvm, const char *path, const uint8_t *img,
			       uint64_t img_len, struct linux_image *li)
{
	const struct setup_header *h;
	uint64_t setup, load, need, low_end;
	int r;

	if ((r = linux__check_header(path, img, img_len, &h)) != 0)
		return r;
	setup = ((uint64_t)(h->setup_sects ? h->setup_sects : 4) + 1) * 512;
	if (setup >= img_len) {
		log_error("kernel %s: setup sectors run past the end of the file", path);
		return KM_ERR_CORRUPT;
	}
	load = h->version >= 0x20a ? h->pref_address : 0x100000;
	if (h->relocatable_kernel && h->kernel_alignment &&
	    (load % h->kernel_alignment || load < LINUX_HIGH_GPA))
		load = ((load < LINUX_HIGH_GPA ? LINUX_HIGH_GPA : load) + h->kernel_alignment - 1) /
		       h->kernel_alignment * h->kernel_alignment;
	need = h->init_size > img_len - setup ? h->init_size : img_len - setup;
	low_end = kvm->mem.slots[0].gpa + kvm->mem.slots[0].size;
	if (load < LINUX_HIGH_GPA || load > low_end || need > low_end - load) {
		log_error("kernel %s: needs %llu MiB from %#llx, beyond the %llu MiB of RAM below "
			  "the hole: give more --mem", path, (unsigned long long)(need >> 20),
			  (unsigned long long)load, (unsigned long long)(low_end >> 20));
		return KM_ERR_TOO_LARGE;
	}
	if ((r = memory__write(&kvm->mem, load, img + setup, img_len - setup)) != 0)
		return r;
	/* The header as the file has it (boot.rst: copy it, then fill in the loader's fields). */
	memset(li, 0, sizeof(*li));
	memcpy(&li->hdr, h, sizeof(*h));
	li->hdr.code32_start = (uint32_t)load;
	li->entry = load + 0x200;
	li->start = load;
	li->end = load + need;
	li->kind = h->relocatable_kernel ? "bzImage, relocatable" : "bzImage";
	return 0;
}

int linux__boot(struct kvm *kvm, const struct linux_params *p)
{
	const char *cmdline = p->cmdline ? p->cmdline : "";
	struct linux_image li;
	struct boot_params *bp = NULL;
	uint8_t *img = NULL, *rd = NULL;
	uint64_t img_len = 0, rd_len = 0, low_end, rd_max, rd_gpa = 0;
	uint64_t rsdp = 0, cmd_len = strlen(cmdline);
	int r;

	if (!kvm->cfg.irqchip) {
		log_error("--kernel needs the in-kernel irqchip (no --no-irqchip)");
		return KM_ERR_INVALID;
	}
	if ((r = linux__read_file("kernel", p->kernel, LINUX_KERNEL_MAX, &img, &img_len)) != 0)
		goto out;
	if (elf__is_elf(img, img_len))
		r = elf__load_vmlinux(kvm, p->kernel, img, img_len, &li);
	else
		r = linux__load_bzimage(kvm, p->kernel, img, img_len, &li);
	if (r != 0)
		goto out;
	if (cmd_len > li.hdr.cmdline_size || cmd_len >= LINUX_CMDLINE_MAX) {
		log_error("--append: %llu bytes; this kernel takes at most %u",
			  (unsigned long long)cmd_len,
			  li.hdr.cmdline_size < LINUX_CMDLINE_MAX - 1 ? li.hdr.cmdline_size :
			  LINUX_CMDLINE_MAX - 1);
		r = KM_ERR_TOO_LARGE;
		goto out;
	}
	low_end = kvm->mem.slots[0].gpa + kvm->mem.slots[0].size;

	bp = calloc(1, sizeof(*bp));
	if (!bp) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(&bp->hdr, &li.hdr, sizeof(li.hdr));
	bp->hdr.type_of_loader = 0xff;		/* "undefined" boot loader */
	bp->hdr.loadflags |= LOADFLAG_CAN_USE_HEAP;
	bp->hdr.heap_end_ptr = 0xfe00;
	bp->hdr.cmd_line_ptr = (uint32_t)LINUX_CMDLINE_GPA;
	if ((r = memory__write(&kvm->mem, LINUX_CMDLINE_GPA, cmdline, cmd_len + 1)) != 0)
		goto out;

	if (p->initrd) {
		if ((r = linux__read_file("initrd", p->initrd, low_end, &rd, &rd_len)) != 0)
			goto out;
		/* As high as it may go (initrd_addr_max), page-aligned, clear of the kernel. */
		rd_max = (uint64_t)li.hdr.initrd_addr_max + 1 < low_end ?
			 (uint64_t)li.hdr.initrd_addr_max + 1 : low_end;
		if (rd_len > rd_max || ((rd_max - rd_len) & ~0xfffULL) < li.end) {
			log_error("initrd %s: %llu MiB do not fit between the kernel and %#llx: "
				  "give more --mem", p->initrd, (unsigned long long)(rd_len >> 20),
				  (unsigned long long)rd_max);
			r = KM_ERR_TOO_LARGE;
			goto out;
		}
		rd_gpa = (rd_max - rd_len) & ~0xfffULL;
		if ((r = memory__write(&kvm->mem, rd_gpa, rd, rd_len)) != 0)
			goto out;
		bp->hdr.ramdisk_image = (uint32_t)rd_gpa;
		bp->hdr.ramdisk_size = (uint32_t)rd_len;
	}
	linux__e820(kvm, bp);
	if ((r = acpi__setup(kvm, &rsdp)) != 0)
		goto out;
	/* 2.14+ reads it here; older kernels find the RSDP by scanning 0xe0000-0xfffff. */
	bp->acpi_rsdp_addr = rsdp;
	if ((r = memory__write(&kvm->mem, LINUX_ZERO_PAGE_GPA, bp, sizeof(*bp))) != 0 ||
	    (r = linux__page_tables(kvm)) != 0 ||
	    (r = linux__cpuid(kvm)) != 0 ||
	    (r = linux__setup_bsp(kvm, li.entry)) != 0)
		goto out;
	kvm->linux_guest = true;
	log_info("kernel %s: %s, boot protocol %u.%02u, %llu KiB at %#llx, entry %#llx, "
		 "initrd %llu KiB at %#llx", p->kernel, li.kind, li.hdr.version >> 8,
		 li.hdr.version & 0xff, (unsigned long long)((li.end - li.start) >> 10),
		 (unsigned long long)li.start, (unsigned long long)li.entry,
		 (unsigned long long)(rd_len >> 10), (unsigned long long)rd_gpa);
out:
	free(bp);
	free(rd);
	free(img);
	return r;
}
