/*
 * kvm-probe: check that /dev/kvm really works.
 *
 * Steps (each prints PASS / FAIL / INFO lines):
 *   1. open /dev/kvm, KVM_GET_API_VERSION (must be 12)
 *   2. KVM_CHECK_EXTENSION for the capabilities kvm-migrate cares about
 *   3. real-mode guest (the classic LWN "Using the KVM API" example):
 *      out to port 0x3f8, then hlt -> KVM_EXIT_IO, KVM_EXIT_HLT
 *   4. 64-bit long-mode guest entered at CPL3 (CS RPL3/DPL3, IOPL=3,
 *      4-level identity-mapped page tables with U/S set): runs a
 *      dec/jnz loop, writes to a dirty-logged memslot, does in/out,
 *      then a burst of `out` exits (exit round-trip benchmark)
 *   5. dirty bitmap (KVM_GET_DIRTY_LOG) on the data memslot
 *   6. vCPU state ioctls a migrating VMM uses (GET_REGS, SREGS2, XSAVE2,
 *      vcpu events, MSRs, nested state, ...)
 *   7. dirty ring (KVM_CAP_DIRTY_LOG_RING[_ACQ_REL]) on a second VM
 *
 * Exit status: 0 if steps 1, 3 and 4 pass, 1 otherwise, 2 if /dev/kvm
 * cannot be opened.  Optional features only print INFO/WARN.
 *
 * usage: kvm-probe [-n LOOP_ITERATIONS] [-e OUT_EXITS] [-d /dev/kvm]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef KVM_CAP_DIRTY_LOG_RING_ACQ_REL
#define KVM_CAP_DIRTY_LOG_RING_ACQ_REL 223
#endif
#ifndef KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP
#define KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP 225
#endif

static int failures;

#define PASS(...) do { printf("PASS  "); printf(__VA_ARGS__); putchar('\n'); } while (0)
#define FAIL(...) do { printf("FAIL  "); printf(__VA_ARGS__); putchar('\n'); failures++; } while (0)
#define INFO(...) do { printf("INFO  "); printf(__VA_ARGS__); putchar('\n'); } while (0)
#define WARN(...) do { printf("WARN  "); printf(__VA_ARGS__); putchar('\n'); } while (0)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* Guest code, assembled by the host assembler (position independent). */

extern const unsigned char guest16_start[], guest16_end[];
extern const unsigned char guest64_start[], guest64_end[];

__asm__(
	".pushsection .rodata\n"
	".globl guest16_start\n.globl guest16_end\n"
	"guest16_start:\n"
	".code16\n"
	"  mov $0x3f8, %dx\n"
	"  add %bl, %al\n"
	"  add $'0', %al\n"
	"  out %al, (%dx)\n"
	"  mov $'\\n', %al\n"
	"  out %al, (%dx)\n"
	"  hlt\n"
	".code64\n"
	"guest16_end:\n"
	/*
	 * 64-bit guest. In: rcx = loop count, rbx = number of `out` exits,
	 * rdi = address of dirty-logged data area.
	 */
	".globl guest64_start\n.globl guest64_end\n"
	"guest64_start:\n"
	"1: dec %rcx\n"
	"  jnz 1b\n"
	"  out %al, $0x10\n"          /* loop done */
	"  mov %cs, %eax\n"
	"  out %eax, $0x15\n"         /* report CS selector (RPL must be 3) */
	"  pushfq\n"
	"  pop %rax\n"
	"  out %eax, $0x16\n"         /* report RFLAGS (IOPL must be 3) */
	"  movq $0x1234, (%rdi)\n"    /* dirty page 0 of data slot */
	"  movq $0x5678, 0x3000(%rdi)\n" /* dirty page 3 of data slot */
	"  in $0x11, %al\n"           /* VMM answers 0x5a */
	"  inc %al\n"
	"  out %al, $0x12\n"          /* VMM expects 0x5b */
	"  test %rbx, %rbx\n"
	"  jz 3f\n"
	"2: out %al, $0x13\n"         /* exit-latency burst */
	"  dec %rbx\n"
	"  jnz 2b\n"
	"3: out %al, $0x14\n"         /* done */
	"4: jmp 4b\n"
	"guest64_end:\n"
	".popsection\n");

/* ------------------------------------------------------------------ */

struct vm {
	int fd;
	int vcpu;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *mem;       /* slot 0: GPA 0 .. MEM_SIZE */
	uint8_t *data;      /* slot 1: GPA DATA_GPA .. + DATA_SIZE */
};

#define MEM_SIZE   0x200000UL   /* 2 MiB */
#define DATA_GPA   0x200000UL
#define DATA_SIZE  0x10000UL    /* 16 pages */
#define DATA_PAGES (DATA_SIZE / 4096)

static int kvm_fd;
static int mmap_size;

static const char *exit_name(unsigned r)
{
	static char buf[32];
	switch (r) {
	case KVM_EXIT_UNKNOWN: return "KVM_EXIT_UNKNOWN";
	case KVM_EXIT_EXCEPTION: return "KVM_EXIT_EXCEPTION";
	case KVM_EXIT_IO: return "KVM_EXIT_IO";
	case KVM_EXIT_HLT: return "KVM_EXIT_HLT";
	case KVM_EXIT_MMIO: return "KVM_EXIT_MMIO";
	case KVM_EXIT_SHUTDOWN: return "KVM_EXIT_SHUTDOWN";
	case KVM_EXIT_FAIL_ENTRY: return "KVM_EXIT_FAIL_ENTRY";
	case KVM_EXIT_INTERNAL_ERROR: return "KVM_EXIT_INTERNAL_ERROR";
	case KVM_EXIT_INTR: return "KVM_EXIT_INTR";
	default: snprintf(buf, sizeof buf, "exit_reason=%u", r); return buf;
	}
}

static void describe_exit(struct vm *vm)
{
	struct kvm_run *run = vm->run;
	struct kvm_regs regs;
	printf("      exit: %s", exit_name(run->exit_reason));
	if (run->exit_reason == KVM_EXIT_IO)
		printf(" dir=%s port=0x%x size=%u count=%u", run->io.direction ? "out" : "in",
		       run->io.port, run->io.size, run->io.count);
	if (run->exit_reason == KVM_EXIT_FAIL_ENTRY)
		printf(" hw_reason=0x%llx", (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
	if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR)
		printf(" suberror=%u", run->internal.suberror);
	if (ioctl(vm->vcpu, KVM_GET_REGS, &regs) == 0)
		printf(" rip=0x%llx", (unsigned long long)regs.rip);
	putchar('\n');
}

static int vm_create(struct vm *vm, int with_data_slot, uint32_t data_flags)
{
	memset(vm, 0, sizeof *vm);
	vm->fd = vm->vcpu = -1;
	vm->fd = ioctl(kvm_fd, KVM_CREATE_VM, 0UL);
	if (vm->fd < 0) {
		FAIL("KVM_CREATE_VM: %s", strerror(errno));
		return -1;
	}
	/* needed on Intel (real mode via vm86 TSS); harmless on AMD */
	if (ioctl(vm->fd, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0)
		WARN("KVM_SET_TSS_ADDR: %s", strerror(errno));

	vm->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->mem == MAP_FAILED) {
		FAIL("mmap guest memory: %s", strerror(errno));
		return -1;
	}
	struct kvm_userspace_memory_region r = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
		.userspace_addr = (uintptr_t)vm->mem,
	};
	if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		FAIL("KVM_SET_USER_MEMORY_REGION slot 0: %s", strerror(errno));
		return -1;
	}
	if (with_data_slot) {
		vm->data = mmap(NULL, DATA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (vm->data == MAP_FAILED) {
			FAIL("mmap data memory: %s", strerror(errno));
			return -1;
		}
		struct kvm_userspace_memory_region d = {
			.slot = 1, .flags = data_flags, .guest_phys_addr = DATA_GPA,
			.memory_size = DATA_SIZE, .userspace_addr = (uintptr_t)vm->data,
		};
		if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &d) < 0) {
			FAIL("KVM_SET_USER_MEMORY_REGION slot 1 (flags 0x%x): %s", data_flags, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int vcpu_create(struct vm *vm)
{
	vm->vcpu = ioctl(vm->fd, KVM_CREATE_VCPU, 0UL);
	if (vm->vcpu < 0) {
		FAIL("KVM_CREATE_VCPU: %s", strerror(errno));
		return -1;
	}
	vm->run_size = mmap_size;
	vm->run = mmap(NULL, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu, 0);
	if (vm->run == MAP_FAILED) {
		FAIL("mmap kvm_run: %s", strerror(errno));
		return -1;
	}
	/* Give the vCPU the host-supported CPUID (long mode needs CPUID.LM). */
	int n = 256;
	struct kvm_cpuid2 *cpuid = calloc(1, sizeof *cpuid + n * sizeof(struct kvm_cpuid_entry2));
	cpuid->nent = n;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
		FAIL("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		free(cpuid);
		return -1;
	}
	if (ioctl(vm->vcpu, KVM_SET_CPUID2, cpuid) < 0) {
		FAIL("KVM_SET_CPUID2: %s", strerror(errno));
		free(cpuid);
		return -1;
	}
	free(cpuid);
	return 0;
}

static void vm_destroy(struct vm *vm)
{
	if (vm->run && vm->run != MAP_FAILED)
		munmap(vm->run, vm->run_size);
	if (vm->mem && vm->mem != MAP_FAILED)
		munmap(vm->mem, MEM_SIZE);
	if (vm->data && vm->data != MAP_FAILED)
		munmap(vm->data, DATA_SIZE);
	if (vm->vcpu >= 0)
		close(vm->vcpu);
	if (vm->fd >= 0)
		close(vm->fd);
	memset(vm, 0, sizeof *vm);
}

static int vcpu_run(struct vm *vm)
{
	for (;;) {
		if (ioctl(vm->vcpu, KVM_RUN, 0UL) == 0)
			return 0;
		if (errno == EINTR || errno == EAGAIN)
			continue;
		FAIL("KVM_RUN: %s", strerror(errno));
		return -1;
	}
}

/* ------------------------------------------------------------------ */

static const struct { int cap; const char *name; } caps[] = {
#define C(x) { x, #x }
	C(KVM_CAP_IRQCHIP),
	C(KVM_CAP_USER_MEMORY),
	C(KVM_CAP_SET_TSS_ADDR),
	C(KVM_CAP_EXT_CPUID),
	C(KVM_CAP_NR_VCPUS),
	C(KVM_CAP_MAX_VCPUS),
	C(KVM_CAP_NR_MEMSLOTS),
	C(KVM_CAP_SYNC_MMU),
	C(KVM_CAP_IMMEDIATE_EXIT),
	C(KVM_CAP_SYNC_REGS),
	C(KVM_CAP_XSAVE),
	C(KVM_CAP_XSAVE2),
	C(KVM_CAP_XCRS),
	C(KVM_CAP_SREGS2),
	C(KVM_CAP_VCPU_EVENTS),
	C(KVM_CAP_DEBUGREGS),
	C(KVM_CAP_MP_STATE),
	C(KVM_CAP_NESTED_STATE),
	C(KVM_CAP_TSC_CONTROL),
	C(KVM_CAP_GET_TSC_KHZ),
	C(KVM_CAP_VM_TSC_CONTROL),
	C(KVM_CAP_ADJUST_CLOCK),
	C(KVM_CAP_KVMCLOCK_CTRL),
	C(KVM_CAP_GET_MSR_FEATURES),
	C(KVM_CAP_X86_USER_SPACE_MSR),
	C(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2),
	C(KVM_CAP_DIRTY_LOG_RING),
	C(KVM_CAP_DIRTY_LOG_RING_ACQ_REL),
	C(KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP),
	C(KVM_CAP_SPLIT_IRQCHIP),
	C(KVM_CAP_PIT2),
	C(KVM_CAP_PIT_STATE2),
	C(KVM_CAP_IRQ_ROUTING),
	C(KVM_CAP_IRQFD),
	C(KVM_CAP_IOEVENTFD),
	C(KVM_CAP_SET_GUEST_DEBUG),
	C(KVM_CAP_EXIT_HYPERCALL),
	C(KVM_CAP_BINARY_STATS_FD),
	C(KVM_CAP_X86_ROBUST_SINGLESTEP),
#undef C
};

static void check_caps(int fd, const char *what)
{
	printf("---- capabilities (KVM_CHECK_EXTENSION on %s fd)\n", what);
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		int r = ioctl(fd, KVM_CHECK_EXTENSION, (unsigned long)caps[i].cap);
		printf("CAP   %-36s %s", caps[i].name, r > 0 ? "yes" : "NO ");
		if (r > 1 || r < 0)
			printf(" (%d%s)", r, r < 0 ? ", error" : "");
		putchar('\n');
	}
}

/* ------------------------------------------------------------------ */

static int test_real_mode(void)
{
	struct vm vm;
	int ok = 0;
	printf("---- real-mode guest (out to 0x3f8, hlt)\n");
	if (vm_create(&vm, 0, 0) < 0 || vcpu_create(&vm) < 0)
		goto out;
	memcpy(vm.mem + 0x1000, guest16_start, guest16_end - guest16_start);

	struct kvm_sregs sregs;
	if (ioctl(vm.vcpu, KVM_GET_SREGS, &sregs) < 0) {
		FAIL("KVM_GET_SREGS: %s", strerror(errno));
		goto out;
	}
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vm.vcpu, KVM_SET_SREGS, &sregs) < 0) {
		FAIL("KVM_SET_SREGS: %s", strerror(errno));
		goto out;
	}
	struct kvm_regs regs = { .rip = 0x1000, .rax = 2, .rbx = 2, .rflags = 0x2 };
	if (ioctl(vm.vcpu, KVM_SET_REGS, &regs) < 0) {
		FAIL("KVM_SET_REGS: %s", strerror(errno));
		goto out;
	}
	char outbuf[16];
	size_t outlen = 0;
	for (int i = 0; i < 10; i++) {
		if (vcpu_run(&vm) < 0)
			goto out;
		if (vm.run->exit_reason == KVM_EXIT_IO && vm.run->io.direction == KVM_EXIT_IO_OUT &&
		    vm.run->io.port == 0x3f8 && vm.run->io.size == 1) {
			char c = *((char *)vm.run + vm.run->io.data_offset);
			if (outlen < sizeof outbuf - 1)
				outbuf[outlen++] = c;
			continue;
		}
		if (vm.run->exit_reason == KVM_EXIT_HLT)
			break;
		FAIL("unexpected exit in real-mode guest");
		describe_exit(&vm);
		goto out;
	}
	outbuf[outlen] = 0;
	if (vm.run->exit_reason == KVM_EXIT_HLT && strcmp(outbuf, "4\n") == 0) {
		PASS("real-mode guest wrote \"4\\n\" to port 0x3f8 (2 KVM_EXIT_IO) then KVM_EXIT_HLT");
		ok = 1;
	} else {
		FAIL("real-mode guest: output \"%s\", last exit %s", outbuf, exit_name(vm.run->exit_reason));
	}
out:
	vm_destroy(&vm);
	return ok;
}

/* Set up 4-level identity paging for GPA 0..4 MiB with 4 KiB pages, U/S=1. */
#define PML4_GPA 0x2000
#define PDPT_GPA 0x3000
#define PD_GPA   0x4000
#define PT0_GPA  0x5000   /* 0 .. 2 MiB   */
#define PT1_GPA  0x6000   /* 2 .. 4 MiB   */
#define GDT_GPA  0x7000
#define TSS_GPA  0x8000
#define CODE_GPA 0x10000
#define STACK_TOP 0x100000

static void setup_long_mode(struct vm *vm, struct kvm_sregs *s)
{
	const uint64_t P = 1, RW = 2, US = 4;
	uint64_t *pml4 = (uint64_t *)(vm->mem + PML4_GPA);
	uint64_t *pdpt = (uint64_t *)(vm->mem + PDPT_GPA);
	uint64_t *pd = (uint64_t *)(vm->mem + PD_GPA);
	uint64_t *pt0 = (uint64_t *)(vm->mem + PT0_GPA);
	uint64_t *pt1 = (uint64_t *)(vm->mem + PT1_GPA);
	pml4[0] = PDPT_GPA | P | RW | US;
	pdpt[0] = PD_GPA | P | RW | US;
	pd[0] = PT0_GPA | P | RW | US;
	pd[1] = PT1_GPA | P | RW | US;
	for (int i = 1; i < 512; i++)    /* leave page 0 unmapped (NULL) */
		pt0[i] = (uint64_t)i * 4096 | P | RW | US;
	for (unsigned i = 0; i < DATA_PAGES; i++)
		pt1[i] = (DATA_GPA + (uint64_t)i * 4096) | P | RW | US;

	/* GDT in memory (not strictly needed: hidden parts come from sregs) */
	uint64_t *gdt = (uint64_t *)(vm->mem + GDT_GPA);
	gdt[0] = 0;
	gdt[1] = 0x00af9b000000ffffULL;  /* 0x08: kernel code 64 */
	gdt[2] = 0x00cf93000000ffffULL;  /* 0x10: kernel data */
	gdt[3] = 0x00affb000000ffffULL;  /* 0x18: user code 64, DPL3 */
	gdt[4] = 0x00cff3000000ffffULL;  /* 0x20: user data, DPL3 */
	/* 0x28: 64-bit TSS (busy), 16 bytes */
	gdt[5] = 0x0000890000000067ULL | ((uint64_t)(TSS_GPA & 0xffffff) << 16) |
		 ((uint64_t)((TSS_GPA >> 24) & 0xff) << 56) | (0x2ULL << 40);
	gdt[6] = 0;

	s->cr3 = PML4_GPA;
	s->cr4 = 0x20 | 0x200 | 0x400;           /* PAE | OSFXSR | OSXMMEXCPT */
	s->cr0 = 0x80050033;                      /* PG | AM | WP | NE | ET | MP | PE */
	s->efer = 0x500;                          /* LME | LMA */
	s->gdt.base = GDT_GPA;
	s->gdt.limit = 7 * 8 - 1;
	s->idt.base = 0;
	s->idt.limit = 0;

	struct kvm_segment cs = {
		.base = 0, .limit = 0xffffffff, .selector = 0x18 | 3,
		.type = 11, .present = 1, .dpl = 3, .db = 0, .s = 1, .l = 1, .g = 1,
	};
	struct kvm_segment ds = {
		.base = 0, .limit = 0xffffffff, .selector = 0x20 | 3,
		.type = 3, .present = 1, .dpl = 3, .db = 1, .s = 1, .l = 0, .g = 1,
	};
	struct kvm_segment tr = {
		.base = TSS_GPA, .limit = 0x67, .selector = 0x28,
		.type = 11, .present = 1, .dpl = 0, .s = 0,
	};
	struct kvm_segment ldt = { .selector = 0, .type = 2, .present = 0, .unusable = 1 };
	s->cs = cs;
	s->ds = s->es = s->fs = s->gs = s->ss = ds;
	s->tr = tr;
	s->ldt = ldt;
}

struct lm_result {
	int ok;
	double loop_sec;
	double exits_sec;
	unsigned long loops, exits;
};

/* Run the CPL3 long-mode guest on an already created VM/vCPU. Returns 1 on success. */
static int run_long_mode(struct vm *vm, unsigned long loops, unsigned long exits,
			 struct lm_result *res, int verbose)
{
	int f0 = failures;
	memset(res, 0, sizeof *res);
	res->loops = loops;
	res->exits = exits;
	memcpy(vm->mem + CODE_GPA, guest64_start, guest64_end - guest64_start);

	struct kvm_sregs sregs;
	if (ioctl(vm->vcpu, KVM_GET_SREGS, &sregs) < 0) {
		FAIL("KVM_GET_SREGS: %s", strerror(errno));
		return 0;
	}
	setup_long_mode(vm, &sregs);
	if (ioctl(vm->vcpu, KVM_SET_SREGS, &sregs) < 0) {
		FAIL("KVM_SET_SREGS (long mode, CPL3): %s", strerror(errno));
		return 0;
	}
	struct kvm_regs regs = {
		.rip = CODE_GPA, .rsp = STACK_TOP, .rflags = 0x2 | 0x3000 /* IOPL=3 */,
		.rcx = loops ? loops : 1, .rbx = exits, .rdi = DATA_GPA,
	};
	if (ioctl(vm->vcpu, KVM_SET_REGS, &regs) < 0) {
		FAIL("KVM_SET_REGS: %s", strerror(errno));
		return 0;
	}

	double t0 = now(), t_loop = 0, t_burst0 = 0, t_end = 0;
	unsigned long burst = 0;
	int got_cs = 0, got_fl = 0, got_in = 0, got_out = 0;
	for (;;) {
		if (vcpu_run(vm) < 0)
			return 0;
		struct kvm_run *run = vm->run;
		if (run->exit_reason != KVM_EXIT_IO) {
			FAIL("unexpected exit in long-mode guest");
			describe_exit(vm);
			return 0;
		}
		uint8_t *d = (uint8_t *)run + run->io.data_offset;
		uint32_t v = 0;
		memcpy(&v, d, run->io.size);
		switch (run->io.port) {
		case 0x10:
			t_loop = now();
			if (verbose)
				PASS("CPL3 guest finished %lu-iteration dec/jnz loop -> KVM_EXIT_IO out port 0x10", loops);
			break;
		case 0x15:
			got_cs = 1;
			if ((v & 3) == 3 && v == (0x18 | 3)) {
				if (verbose)
					PASS("guest reads CS=0x%x (RPL/CPL 3)", v);
			} else {
				FAIL("guest CS=0x%x, expected 0x1b", v);
			}
			break;
		case 0x16:
			got_fl = 1;
			if (((v >> 12) & 3) == 3) {
				if (verbose)
					PASS("guest RFLAGS=0x%x (IOPL 3)", v);
			} else {
				FAIL("guest RFLAGS=0x%x, IOPL != 3", v);
			}
			break;
		case 0x11:
			if (run->io.direction != KVM_EXIT_IO_IN) {
				FAIL("port 0x11: expected IN");
				return 0;
			}
			*d = 0x5a;
			got_in = 1;
			if (verbose)
				PASS("guest `in al,0x11` -> KVM_EXIT_IO (dir=in size=%u); VMM supplied 0x5a", run->io.size);
			break;
		case 0x12:
			got_out = 1;
			if ((v & 0xff) == 0x5b) {
				if (verbose)
					PASS("guest `out 0x12,al` -> KVM_EXIT_IO with 0x5b (in value + 1)");
			} else {
				FAIL("guest out 0x12 = 0x%x, expected 0x5b", v & 0xff);
			}
			t_burst0 = now();
			break;
		case 0x13:
			burst++;
			break;
		case 0x14:
			t_end = now();
			goto done;
		default:
			FAIL("unexpected port 0x%x", run->io.port);
			describe_exit(vm);
			return 0;
		}
	}
done:
	if (!t_burst0)
		t_burst0 = t_end;
	res->loop_sec = t_loop - t0;
	res->exits_sec = t_end - t_burst0;
	if (burst != exits)
		FAIL("saw %lu burst exits, expected %lu", burst, exits);
	res->ok = got_cs && got_fl && got_in && got_out && burst == exits && failures == f0;
	/* state check after the run */
	if (ioctl(vm->vcpu, KVM_GET_SREGS, &sregs) == 0 && verbose) {
		if ((sregs.cs.selector & 3) == 3 && sregs.cs.dpl == 3 && sregs.ss.dpl == 3 && sregs.cs.l == 1 &&
		    (sregs.efer & 0x400))
			PASS("KVM_GET_SREGS after run: cs=0x%x cs.dpl=%u ss.dpl=%u cs.l=%u efer=0x%llx (long mode, CPL3)",
			     sregs.cs.selector, sregs.cs.dpl, sregs.ss.dpl, sregs.cs.l, (unsigned long long)sregs.efer);
		else
			FAIL("KVM_GET_SREGS after run: cs=0x%x cs.dpl=%u ss.dpl=%u cs.l=%u efer=0x%llx",
			     sregs.cs.selector, sregs.cs.dpl, sregs.ss.dpl, sregs.cs.l, (unsigned long long)sregs.efer);
	}
	return res->ok;
}

static void test_state_ioctls(struct vm *vm, int vm_has_irqchip)
{
	printf("---- vCPU/VM state ioctls (as used for save/restore)\n");
	struct kvm_regs regs;
	struct kvm_sregs sregs;
#define TRY(name, ok_expr)                                                       \
	do {                                                                     \
		if (ok_expr)                                                     \
			printf("IOCTL %-28s ok\n", name);                        \
		else                                                             \
			printf("IOCTL %-28s FAILED: %s\n", name, strerror(errno)); \
	} while (0)
	TRY("KVM_GET_REGS", ioctl(vm->vcpu, KVM_GET_REGS, &regs) == 0);
	TRY("KVM_SET_REGS", ioctl(vm->vcpu, KVM_SET_REGS, &regs) == 0);
	TRY("KVM_GET_SREGS", ioctl(vm->vcpu, KVM_GET_SREGS, &sregs) == 0);
	TRY("KVM_SET_SREGS", ioctl(vm->vcpu, KVM_SET_SREGS, &sregs) == 0);
#ifdef KVM_GET_SREGS2
	if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SREGS2) > 0) {
		struct kvm_sregs2 s2;
		TRY("KVM_GET_SREGS2", ioctl(vm->vcpu, KVM_GET_SREGS2, &s2) == 0);
		TRY("KVM_SET_SREGS2", ioctl(vm->vcpu, KVM_SET_SREGS2, &s2) == 0);
	}
#endif
	struct kvm_fpu fpu;
	TRY("KVM_GET_FPU", ioctl(vm->vcpu, KVM_GET_FPU, &fpu) == 0);
	struct kvm_xsave xs;
	TRY("KVM_GET_XSAVE", ioctl(vm->vcpu, KVM_GET_XSAVE, &xs) == 0);
	TRY("KVM_SET_XSAVE", ioctl(vm->vcpu, KVM_SET_XSAVE, &xs) == 0);
#ifdef KVM_GET_XSAVE2
	int xsz = ioctl(vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (xsz > 0) {
		size_t sz = (size_t)xsz < sizeof(struct kvm_xsave) ? sizeof(struct kvm_xsave) : (size_t)xsz;
		struct kvm_xsave *x2 = calloc(1, sz);
		printf("INFO  KVM_CAP_XSAVE2 size on VM fd: %d bytes\n", xsz);
		TRY("KVM_GET_XSAVE2", ioctl(vm->vcpu, KVM_GET_XSAVE2, x2) == 0);
		free(x2);
	}
#endif
	struct kvm_xcrs xcrs;
	TRY("KVM_GET_XCRS", ioctl(vm->vcpu, KVM_GET_XCRS, &xcrs) == 0);
	struct kvm_vcpu_events ev;
	TRY("KVM_GET_VCPU_EVENTS", ioctl(vm->vcpu, KVM_GET_VCPU_EVENTS, &ev) == 0);
	TRY("KVM_SET_VCPU_EVENTS", ioctl(vm->vcpu, KVM_SET_VCPU_EVENTS, &ev) == 0);
	struct kvm_debugregs dr;
	TRY("KVM_GET_DEBUGREGS", ioctl(vm->vcpu, KVM_GET_DEBUGREGS, &dr) == 0);
	struct kvm_mp_state mp;
	TRY("KVM_GET_MP_STATE", ioctl(vm->vcpu, KVM_GET_MP_STATE, &mp) == 0);
	if (vm_has_irqchip) {
		struct kvm_lapic_state lapic;
		TRY("KVM_GET_LAPIC", ioctl(vm->vcpu, KVM_GET_LAPIC, &lapic) == 0);
		struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_IOAPIC };
		TRY("KVM_GET_IRQCHIP(IOAPIC)", ioctl(vm->fd, KVM_GET_IRQCHIP, &chip) == 0);
	}
	int khz = ioctl(vm->vcpu, KVM_GET_TSC_KHZ, 0UL);
	if (khz > 0)
		printf("IOCTL %-28s ok (%d kHz)\n", "KVM_GET_TSC_KHZ", khz);
	else
		printf("IOCTL %-28s FAILED: %s\n", "KVM_GET_TSC_KHZ", strerror(errno));
	if (khz > 0) {
		/* same rate (what a migration between equal hosts does), higher, lower */
		const struct { const char *name; unsigned long v; } t[] = {
			{ "KVM_SET_TSC_KHZ(same)", (unsigned long)khz },
			{ "KVM_SET_TSC_KHZ(+10%)", (unsigned long)khz + khz / 10 },
			{ "KVM_SET_TSC_KHZ(-10%)", (unsigned long)khz - khz / 10 },
		};
		for (int i = 0; i < 3; i++) {
			int r = ioctl(vm->vcpu, KVM_SET_TSC_KHZ, t[i].v);
			printf("IOCTL %-28s %s%s\n", t[i].name, r == 0 ? "ok" : "FAILED: ", r == 0 ? "" : strerror(errno));
		}
		ioctl(vm->vcpu, KVM_SET_TSC_KHZ, (unsigned long)khz);
	}
	struct kvm_clock_data clk;
	memset(&clk, 0, sizeof clk);
	TRY("KVM_GET_CLOCK", ioctl(vm->fd, KVM_GET_CLOCK, &clk) == 0);

	/* MSRs: index list, then read them all */
	struct kvm_msr_list probe = { .nmsrs = 0 };
	ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe);   /* E2BIG, fills nmsrs */
	if (probe.nmsrs) {
		struct kvm_msr_list *list = calloc(1, sizeof *list + probe.nmsrs * sizeof(uint32_t));
		list->nmsrs = probe.nmsrs;
		if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list) == 0) {
			struct kvm_msrs *msrs = calloc(1, sizeof *msrs + list->nmsrs * sizeof(struct kvm_msr_entry));
			msrs->nmsrs = list->nmsrs;
			for (unsigned i = 0; i < list->nmsrs; i++)
				msrs->entries[i].index = list->indices[i];
			int got = ioctl(vm->vcpu, KVM_GET_MSRS, msrs);
			printf("IOCTL %-28s %d of %u MSRs from KVM_GET_MSR_INDEX_LIST read\n", "KVM_GET_MSRS", got,
			       list->nmsrs);
			free(msrs);
		}
		free(list);
	} else {
		printf("IOCTL %-28s FAILED\n", "KVM_GET_MSR_INDEX_LIST");
	}
	int nsz = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NESTED_STATE);
	if (nsz > 0) {
		struct kvm_nested_state *ns = calloc(1, nsz);
		ns->size = nsz;
		TRY("KVM_GET_NESTED_STATE", ioctl(vm->vcpu, KVM_GET_NESTED_STATE, ns) == 0);
		free(ns);
	}
#undef TRY
}

static int bitmap_test(const unsigned long *bm, unsigned bit)
{
	return (bm[bit / (8 * sizeof(long))] >> (bit % (8 * sizeof(long)))) & 1;
}

static void test_dirty_log(struct vm *vm)
{
	printf("---- dirty logging (KVM_GET_DIRTY_LOG on slot 1, %lu pages)\n", DATA_PAGES);
	unsigned long bm[(DATA_PAGES + 63) / 64 + 1];
	memset(bm, 0, sizeof bm);
	struct kvm_dirty_log log = { .slot = 1, .dirty_bitmap = bm };
	if (ioctl(vm->fd, KVM_GET_DIRTY_LOG, &log) < 0) {
		WARN("KVM_GET_DIRTY_LOG: %s", strerror(errno));
		return;
	}
	char pages[64] = "";
	int n = 0;
	for (unsigned i = 0; i < DATA_PAGES; i++)
		if (bitmap_test(bm, i))
			n += snprintf(pages + n, sizeof pages - n, "%s%u", n ? "," : "", i);
	uint64_t v0, v3;
	memcpy(&v0, vm->data, 8);
	memcpy(&v3, vm->data + 0x3000, 8);
	if (bitmap_test(bm, 0) && bitmap_test(bm, 3) && v0 == 0x1234 && v3 == 0x5678)
		PASS("dirty bitmap shows the pages the guest wrote (pages %s), host sees the data", pages);
	else
		WARN("dirty bitmap pages [%s], data 0x%llx/0x%llx (expected pages 0,3 and 0x1234/0x5678)", pages,
		     (unsigned long long)v0, (unsigned long long)v3);
}

static void test_dirty_ring(void)
{
	int cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
	int max = ioctl(kvm_fd, KVM_CHECK_EXTENSION, cap);
	if (max <= 0) {
		cap = KVM_CAP_DIRTY_LOG_RING;
		max = ioctl(kvm_fd, KVM_CHECK_EXTENSION, cap);
	}
	printf("---- dirty ring\n");
	if (max <= 0) {
		INFO("dirty ring not supported (neither KVM_CAP_DIRTY_LOG_RING_ACQ_REL nor KVM_CAP_DIRTY_LOG_RING)");
		return;
	}
	struct vm vm;
	memset(&vm, 0, sizeof vm);
	vm.fd = vm.vcpu = -1;
	vm.fd = ioctl(kvm_fd, KVM_CREATE_VM, 0UL);
	if (vm.fd < 0) {
		WARN("KVM_CREATE_VM: %s", strerror(errno));
		return;
	}
	uint32_t entries = 4096;
	uint64_t bytes = entries * sizeof(struct kvm_dirty_gfn);
	if ((int64_t)bytes > max)
		bytes = max;
	struct kvm_enable_cap ec = { .cap = cap, .args = { bytes } };
	if (ioctl(vm.fd, KVM_ENABLE_CAP, &ec) < 0) {
		WARN("KVM_ENABLE_CAP(%s, %llu): %s", cap == KVM_CAP_DIRTY_LOG_RING ? "DIRTY_LOG_RING" : "DIRTY_LOG_RING_ACQ_REL",
		     (unsigned long long)bytes, strerror(errno));
		close(vm.fd);
		return;
	}
	/* re-use vm_create's memory setup: do it by hand on the existing fd */
	vm.mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	vm.data = mmap(NULL, DATA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct kvm_userspace_memory_region r0 = { .slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
						  .userspace_addr = (uintptr_t)vm.mem };
	struct kvm_userspace_memory_region r1 = { .slot = 1, .flags = KVM_MEM_LOG_DIRTY_PAGES,
						  .guest_phys_addr = DATA_GPA, .memory_size = DATA_SIZE,
						  .userspace_addr = (uintptr_t)vm.data };
	if (ioctl(vm.fd, KVM_SET_USER_MEMORY_REGION, &r0) < 0 || ioctl(vm.fd, KVM_SET_USER_MEMORY_REGION, &r1) < 0) {
		WARN("KVM_SET_USER_MEMORY_REGION (dirty ring VM): %s", strerror(errno));
		vm_destroy(&vm);
		return;
	}
	if (vcpu_create(&vm) < 0) {
		vm_destroy(&vm);
		return;
	}
	long psz = sysconf(_SC_PAGESIZE);
	struct kvm_dirty_gfn *ring = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vm.vcpu,
					  (off_t)KVM_DIRTY_LOG_PAGE_OFFSET * psz);
	if (ring == MAP_FAILED) {
		WARN("mmap dirty ring: %s", strerror(errno));
		vm_destroy(&vm);
		return;
	}
	struct lm_result res;
	int saved = failures;
	if (!run_long_mode(&vm, 1000, 0, &res, 0)) {
		WARN("long-mode guest failed on dirty-ring VM");
		failures = saved;
	} else {
		unsigned n = 0, slot1 = 0;
		char pages[128] = "";
		int pl = 0;
		for (uint32_t i = 0; i < bytes / sizeof *ring; i++) {
			uint32_t fl = __atomic_load_n(&ring[i].flags, __ATOMIC_ACQUIRE);
			if (!(fl & KVM_DIRTY_GFN_F_DIRTY))
				break;
			n++;
			if (ring[i].slot == 1) {
				slot1++;
				pl += snprintf(pages + pl, sizeof pages - pl > 0 ? sizeof pages - pl : 0, "%s%llu",
					       slot1 > 1 ? "," : "", (unsigned long long)ring[i].offset);
			}
			__atomic_store_n(&ring[i].flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		}
		int reset = ioctl(vm.fd, KVM_RESET_DIRTY_RINGS, 0UL);
		if (slot1 >= 2)
			PASS("dirty ring (%s, %llu bytes): %u entries, slot 1 offsets [%s]; KVM_RESET_DIRTY_RINGS -> %d",
			     cap == KVM_CAP_DIRTY_LOG_RING ? "KVM_CAP_DIRTY_LOG_RING" : "KVM_CAP_DIRTY_LOG_RING_ACQ_REL",
			     (unsigned long long)bytes, n, pages, reset);
		else
			WARN("dirty ring: %u entries, %u for slot 1 (expected >= 2)", n, slot1);
	}
	munmap(ring, bytes);
	vm_destroy(&vm);
}

static void test_sync_regs(void)
{
	printf("---- KVM_CAP_SYNC_REGS\n");
	int valid = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
	if (valid <= 0) {
		INFO("KVM_CAP_SYNC_REGS not supported");
		return;
	}
	struct vm vm;
	if (vm_create(&vm, 1, 0) < 0 || vcpu_create(&vm) < 0) {
		vm_destroy(&vm);
		return;
	}
	vm.run->kvm_valid_regs = valid;
	struct lm_result res;
	int saved = failures;
	if (run_long_mode(&vm, 100, 0, &res, 0)) {
		struct kvm_regs regs;
		ioctl(vm.vcpu, KVM_GET_REGS, &regs);
		if (vm.run->s.regs.regs.rip == regs.rip && (vm.run->s.regs.sregs.cs.selector & 3) == 3)
			PASS("sync regs (valid mask 0x%x): run->s.regs.rip=0x%llx matches KVM_GET_REGS, cs=0x%x",
			     valid, (unsigned long long)vm.run->s.regs.regs.rip, vm.run->s.regs.sregs.cs.selector);
		else
			WARN("sync regs mismatch: rip 0x%llx vs 0x%llx", (unsigned long long)vm.run->s.regs.regs.rip,
			     (unsigned long long)regs.rip);
	} else {
		WARN("long-mode guest with sync regs failed");
		failures = saved;
	}
	vm_destroy(&vm);
}

int main(int argc, char **argv)
{
	unsigned long loops = 10000000, exits = 10000;
	const char *dev = "/dev/kvm";
	int opt;
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt(argc, argv, "n:e:d:h")) != -1) {
		switch (opt) {
		case 'n': loops = strtoul(optarg, NULL, 0); break;
		case 'e': exits = strtoul(optarg, NULL, 0); break;
		case 'd': dev = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-n LOOP_ITERATIONS] [-e OUT_EXITS] [-d /dev/kvm]\n", argv[0]);
			return opt == 'h' ? 0 : 1;
		}
	}

	printf("---- %s\n", dev);
	kvm_fd = open(dev, O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0) {
		printf("FAIL  open %s: %s\n", dev, strerror(errno));
		return 2;
	}
	PASS("open %s", dev);
	int api = ioctl(kvm_fd, KVM_GET_API_VERSION, 0UL);
	if (api != KVM_API_VERSION) {
		FAIL("KVM_GET_API_VERSION = %d (expected %d)", api, KVM_API_VERSION);
		return 1;
	}
	PASS("KVM_GET_API_VERSION = %d", api);
	mmap_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0UL);
	if (mmap_size <= 0) {
		FAIL("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		return 1;
	}
	PASS("KVM_GET_VCPU_MMAP_SIZE = %d", mmap_size);

	check_caps(kvm_fd, "/dev/kvm");

	int ok_real = test_real_mode();

	printf("---- 64-bit long-mode guest at CPL3 (%lu loop iterations, %lu out exits)\n", loops, exits);
	struct vm vm;
	int ok_long = 0, irqchip = 0;
	struct lm_result res;
	if (vm_create(&vm, 1, KVM_MEM_LOG_DIRTY_PAGES) == 0) {
		if (ioctl(vm.fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP) > 0) {
			if (ioctl(vm.fd, KVM_CREATE_IRQCHIP, 0UL) == 0) {
				irqchip = 1;
				PASS("KVM_CREATE_IRQCHIP (in-kernel PIC/IOAPIC/LAPIC)");
			} else {
				WARN("KVM_CREATE_IRQCHIP: %s", strerror(errno));
			}
		}
		if (vcpu_create(&vm) == 0) {
			PASS("KVM_CREATE_VM + KVM_CREATE_VCPU + KVM_SET_CPUID2");
			ok_long = run_long_mode(&vm, loops, exits, &res, 1);
			if (ok_long) {
				PASS("long-mode CPL3 guest ran to completion");
				printf("TIME  CPL3 dec/jnz loop: %lu iterations in %.3f s = %.1f M iter/s\n", loops,
				       res.loop_sec, res.loop_sec > 0 ? loops / res.loop_sec / 1e6 : 0);
				if (exits)
					printf("TIME  KVM_EXIT_IO round trips: %lu in %.3f s = %.1f us/exit (%.0f exits/s)\n",
					       exits, res.exits_sec, res.exits_sec * 1e6 / exits,
					       res.exits_sec > 0 ? exits / res.exits_sec : 0);
				test_dirty_log(&vm);
			}
			test_state_ioctls(&vm, irqchip);
			check_caps(vm.fd, "VM");
		}
	}
	vm_destroy(&vm);

	int saved = failures;
	test_sync_regs();
	test_dirty_ring();
	failures = saved;   /* optional tests do not change the verdict */

	int ok = ok_real && ok_long && failures == 0;
	printf("---- RESULT: %s (real-mode %s, long-mode CPL3 %s)\n", ok ? "PASS" : "FAIL",
	       ok_real ? "ok" : "failed", ok_long ? "ok" : "failed");
	return ok ? 0 : 1;
}
