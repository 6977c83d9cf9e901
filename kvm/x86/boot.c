/*
 * The CPL3 long-mode boot of the workload guests (guest/abi.h): the VMM
 * builds what firmware and a kernel would have built, page tables, GDT and
 * TSS, then sets the vCPU registers as if a kernel had just returned to user
 * mode. No guest code runs at CPL0, which this project's KVM would emulate
 * slowly (DESIGN.md s.2).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "err.h"
#include "log.h"
#include "kvm/kvm.h"
#include "kvm/kvm-cpu.h"
#include "kvm/x86/x86.h"

#define PTE_P		(1ULL << 0)
#define PTE_RW		(1ULL << 1)
#define PTE_US		(1ULL << 2)
#define PTE_PS		(1ULL << 7)

#define PML4_GPA	(KM_PGTABLE_GPA)
#define PT0_GPA		(KM_PGTABLE_GPA + 0x1000)	/* 4 KiB map of the first 2 MiB */
#define PDPT_GPA	(KM_PGTABLE_GPA + 0x2000)
#define PD_GPA		(KM_PGTABLE_GPA + 0x3000)	/* one page per GiB of address space */
#define TSS_GPA		(KM_GDT_GPA + 0x100)

#define SEL_KCODE	0x08
#define SEL_KDATA	0x10
#define SEL_UDATA	0x1b	/* GDT entry 3, RPL 3 */
#define SEL_UCODE	0x23	/* GDT entry 4, RPL 3 */
#define SEL_TSS		0x28	/* GDT entries 5 and 6 */
#define GDT_ENTRIES	7

#define CR0_PE		(1ULL << 0)
#define CR0_MP		(1ULL << 1)
#define CR0_ET		(1ULL << 4)
#define CR0_NE		(1ULL << 5)
#define CR0_WP		(1ULL << 16)
#define CR0_PG		(1ULL << 31)
#define CR4_PAE		(1ULL << 5)
#define CR4_OSFXSR	(1ULL << 9)
#define CR4_OSXMMEXCPT	(1ULL << 10)
#define CR4_OSXSAVE	(1ULL << 18)
#define EFER_SCE	(1ULL << 0)
#define EFER_LME	(1ULL << 8)
#define EFER_LMA	(1ULL << 10)
#define RFLAGS_FIXED	(1ULL << 1)
#define RFLAGS_IOPL3	(3ULL << 12)

#define CPUID1_ECX_XSAVE	(1U << 26)
/* x87, SSE, AVX, AVX-512 opmask/ZMM_Hi256/Hi16_ZMM: user state we enable. */
#define XCR0_USER_MASK	0xe7ULL

static uint64_t gdt_entry(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags)
{
	return (uint64_t)(limit & 0xffff) |
	       ((uint64_t)(base & 0xffffff) << 16) |
	       ((uint64_t)access << 40) |
	       ((uint64_t)((limit >> 16) & 0xf) << 48) |
	       ((uint64_t)(flags & 0xf) << 52) |
	       ((uint64_t)((base >> 24) & 0xff) << 56);
}

static int boot__page_tables(struct kvm *kvm)
{
	uint64_t end = memory__end_gpa(&kvm->mem);
	uint64_t top = end > KM_MMIO_GPA + KM_MMIO_SIZE ? end : KM_MMIO_GPA + KM_MMIO_SIZE;
	uint64_t nr_pd = (top + (1ULL << 30) - 1) >> 30;
	uint64_t e, gpa, i;
	int r;

	if (PD_GPA + nr_pd * 0x1000 > KM_PGTABLE_END || nr_pd > 512) {
		log_error("guest memory too large for the boot page tables");
		return KM_ERR_INVALID;
	}
	/* Upper levels are user-accessible: U/S is ANDed down the walk. */
	e = PDPT_GPA | PTE_P | PTE_RW | PTE_US;
	if ((r = memory__write(&kvm->mem, PML4_GPA, &e, 8)) != 0)
		return r;
	for (i = 0; i < nr_pd; i++) {
		e = (PD_GPA + i * 0x1000) | PTE_P | PTE_RW | PTE_US;
		if ((r = memory__write(&kvm->mem, PDPT_GPA + i * 8, &e, 8)) != 0)
			return r;
	}
	/* 2 MiB pages for all RAM; the hole and what is past RAM stay absent. */
	for (gpa = 2ULL << 20; gpa < end; gpa += 2ULL << 20) {
		if (!memory__slot(&kvm->mem, gpa))
			continue;
		e = gpa | PTE_P | PTE_RW | PTE_US | PTE_PS;
		r = memory__write(&kvm->mem, PD_GPA + (gpa >> 21) * 8, &e, 8);
		if (r)
			return r;
	}
	/* The hypercall MMIO page (abi.h): a 2 MiB mapping of the hole. */
	e = (KM_MMIO_GPA & ~((2ULL << 20) - 1)) | PTE_P | PTE_RW | PTE_US | PTE_PS;
	if ((r = memory__write(&kvm->mem, PD_GPA + (KM_MMIO_GPA >> 21) * 8, &e, 8)) != 0)
		return r;
	e = PT0_GPA | PTE_P | PTE_RW | PTE_US;
	if ((r = memory__write(&kvm->mem, PD_GPA, &e, 8)) != 0)
		return r;
	/*
	 * The first 2 MiB: page 0 absent (null pointers fault), the boot info
	 * read-only, GDT/TSS supervisor-only (the CPU reaches them by linear
	 * address), page tables unmapped (walks use physical addresses), and
	 * everything from the image up user read-write.
	 */
	for (gpa = 0; gpa < (2ULL << 20); gpa += KM_PAGE_SIZE) {
		if (gpa == KM_BOOT_INFO_GPA)
			e = gpa | PTE_P | PTE_US;
		else if (gpa == KM_GDT_GPA)
			e = gpa | PTE_P | PTE_RW;
		else
			e = 0;
		if (e && (r = memory__write(&kvm->mem, PT0_GPA + (gpa >> 12) * 8, &e, 8)))
			return r;
	}
	return 0;
}

static int boot__gdt(struct kvm *kvm)
{
	uint64_t gdt[GDT_ENTRIES] = { 0 };

	gdt[1] = gdt_entry(0, 0xfffff, 0x9b, 0xa);	/* kernel code, L=1 G=1 */
	gdt[2] = gdt_entry(0, 0xfffff, 0x93, 0xc);	/* kernel data */
	gdt[3] = gdt_entry(0, 0xfffff, 0xf3, 0xc);	/* user data, DPL3 */
	gdt[4] = gdt_entry(0, 0xfffff, 0xfb, 0xa);	/* user code, DPL3, L=1 */
	gdt[5] = gdt_entry((uint32_t)TSS_GPA, 0x67, 0x8b, 0);	/* busy 64-bit TSS */
	gdt[6] = TSS_GPA >> 32;
	/* The TSS itself stays zero: no privilege change ever happens. */
	return memory__write(&kvm->mem, KM_GDT_GPA, gdt, sizeof(gdt));
}

static int boot__info(struct kvm *kvm, const char *guest, const char *args)
{
	struct km_boot_info *bi;
	uint64_t low_end;

	bi = calloc(1, sizeof(*bi));
	if (!bi)
		return -ENOMEM;
	bi->magic = KM_BOOT_MAGIC;
	bi->version = KM_BOOT_VERSION;
	bi->mem_size = kvm->mem.size;
	bi->nr_vcpus = kvm->nr_cpus;
	bi->tsc_khz = kvm->tsc_khz;
	low_end = kvm->mem.slots[0].size;
	bi->free[0].start = KM_FREE_GPA;
	bi->free[0].len = low_end - KM_FREE_GPA;
	bi->nr_ranges = 1;
	if (kvm->mem.nr_slots > 1) {
		bi->free[1].start = kvm->mem.slots[1].gpa;
		bi->free[1].len = kvm->mem.slots[1].size;
		bi->nr_ranges = 2;
	}
	strncpy(bi->guest, guest ? guest : "", sizeof(bi->guest) - 1);
	strncpy(bi->args, args ? args : "", sizeof(bi->args) - 1);
	int r = memory__write(&kvm->mem, KM_BOOT_INFO_GPA, bi, sizeof(*bi));
	free(bi);
	return r;
}

int x86__setup_memory(struct kvm *kvm, const char *guest, const char *args)
{
	int r;

	if (args && strlen(args) >= KM_BOOT_ARGS_MAX) {
		log_error("guest arguments longer than %d bytes", KM_BOOT_ARGS_MAX - 1);
		return KM_ERR_INVALID;
	}
	if ((r = boot__page_tables(kvm)) != 0)
		return r;
	if ((r = boot__gdt(kvm)) != 0)
		return r;
	return boot__info(kvm, guest, args);
}

static void boot__segment(struct kvm_segment *s, uint16_t sel, uint8_t type, int code)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->dpl = sel & 3;
	s->s = 1;
	s->g = 1;
	s->l = code ? 1 : 0;
	s->db = code ? 0 : 1;
}

static uint64_t boot__xcr0(struct kvm *kvm)
{
	const struct kvm_cpuid_entry2 *e1 = x86__cpuid_entry(kvm->cpuid, 1, 0);
	const struct kvm_cpuid_entry2 *ed = x86__cpuid_entry(kvm->cpuid, 0xd, 0);
	uint64_t supported;

	if (!e1 || !(e1->ecx & CPUID1_ECX_XSAVE) || !ed)
		return 0;
	supported = ((uint64_t)ed->edx << 32) | ed->eax;
	/* AVX-512 state is all or nothing (SDM: XCR0 bits 5-7 together). */
	if ((supported & 0xe0) != 0xe0)
		supported &= ~0xe0ULL;
	return supported & XCR0_USER_MASK;
}

int x86__setup_vcpu(struct kvm_cpu *cpu, uint64_t entry)
{
	struct kvm *kvm = cpu->kvm;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	uint64_t xcr0 = boot__xcr0(kvm);
	int r;

	if (ioctl(cpu->fd, KVM_GET_SREGS, &sregs) < 0)
		goto fail_get;
	boot__segment(&sregs.cs, SEL_UCODE, 0xb, 1);
	boot__segment(&sregs.ss, SEL_UDATA, 0x3, 0);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss;
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.base = TSS_GPA;
	sregs.tr.limit = 0x67;
	sregs.tr.selector = SEL_TSS;
	sregs.tr.type = 0xb;
	sregs.tr.present = 1;
	memset(&sregs.ldt, 0, sizeof(sregs.ldt));
	sregs.ldt.type = 0x2;
	sregs.ldt.unusable = 1;
	sregs.gdt.base = KM_GDT_GPA;
	sregs.gdt.limit = GDT_ENTRIES * 8 - 1;
	/* An empty IDT: any exception escalates to a triple fault (SHUTDOWN). */
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	sregs.cr3 = PML4_GPA;
	sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | (xcr0 ? CR4_OSXSAVE : 0);
	sregs.efer = EFER_SCE | EFER_LME | EFER_LMA;
	if (ioctl(cpu->fd, KVM_SET_SREGS, &sregs) < 0) {
		r = km_errno();
		log_error("vCPU %u: KVM_SET_SREGS: %s", cpu->id, km_strerror(r));
		return r;
	}
	if (xcr0) {
		struct kvm_xcrs xcrs = { .nr_xcrs = 1 };

		xcrs.xcrs[0].xcr = 0;
		xcrs.xcrs[0].value = xcr0;
		if (ioctl(cpu->fd, KVM_SET_XCRS, &xcrs) < 0) {
			r = km_errno();
			log_error("vCPU %u: KVM_SET_XCRS 0x%llx: %s", cpu->id,
				  (unsigned long long)xcr0, km_strerror(r));
			return r;
		}
	}
	memset(&regs, 0, sizeof(regs));
	regs.rip = entry;
	regs.rsp = KM_STACKS_GPA + (cpu->id + 1) * KM_STACK_SIZE;
	regs.rdi = KM_BOOT_INFO_GPA;
	regs.rsi = cpu->id;
	regs.rflags = RFLAGS_FIXED | RFLAGS_IOPL3;
	if (ioctl(cpu->fd, KVM_SET_REGS, &regs) < 0) {
		r = km_errno();
		log_error("vCPU %u: KVM_SET_REGS: %s", cpu->id, km_strerror(r));
		return r;
	}
	if (kvm->cfg.irqchip) {
		/* With an in-kernel LAPIC, APs would wait for INIT/SIPI otherwise. */
		struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };

		if (ioctl(cpu->fd, KVM_SET_MP_STATE, &mp) < 0) {
			r = km_errno();
			log_error("vCPU %u: KVM_SET_MP_STATE: %s", cpu->id, km_strerror(r));
			return r;
		}
	}
	return 0;

fail_get:
	r = km_errno();
	log_error("vCPU %u: KVM_GET_SREGS: %s", cpu->id, km_strerror(r));
	return r;
}

int x86__probe_msrs(struct kvm *kvm, struct kvm_cpu *cpu)
{
	struct kvm_msr_list probe = { .nmsrs = 0 }, *list = NULL;
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} one;
	uint32_t *keep = NULL;
	unsigned int i, n = 0;
	int r;

	/* The first call only reports how many there are (E2BIG). */
	if (ioctl(kvm->sys_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG) {
		r = km_errno();
		log_error("KVM_GET_MSR_INDEX_LIST: %s", km_strerror(r));
		return r;
	}
	if (probe.nmsrs > 4096) {
		log_error("KVM reports %u MSRs; refusing more than 4096", probe.nmsrs);
		return KM_ERR_TOO_LARGE;
	}
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
	keep = calloc(probe.nmsrs + 1, sizeof(uint32_t));
	if (!list || !keep) {
		r = -ENOMEM;
		goto out;
	}
	list->nmsrs = probe.nmsrs;
	if (ioctl(kvm->sys_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		r = km_errno();
		log_error("KVM_GET_MSR_INDEX_LIST: %s", km_strerror(r));
		goto out;
	}
	/* KVM_GET_MSRS stops at the first MSR it cannot read: probe one by one. */
	for (i = 0; i < list->nmsrs && i < probe.nmsrs; i++) {
		memset(&one, 0, sizeof(one));
		one.hdr.nmsrs = 1;
		one.e.index = list->indices[i];
		if (ioctl(cpu->fd, KVM_GET_MSRS, &one) == 1)
			keep[n++] = list->indices[i];
		else
			log_debug("MSR 0x%x is listed but not readable; not saved",
				  list->indices[i]);
	}
	free(kvm->msr_index);
	kvm->msr_index = keep;
	kvm->nr_msr_index = n;
	keep = NULL;
	r = 0;
out:
	free(list);
	free(keep);
	return r;
}
