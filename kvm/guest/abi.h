/*
 * The guest ABI: the contract between kvm-run and the workload guests.
 *
 * Guests are entered by the VMM directly in 64-bit long mode at CPL3 with
 * IOPL=3 (DESIGN.md s.5): on this project's KVM, CPL3 code runs natively and
 * CPL0 code is emulated. A guest never takes an interrupt or an exception; it
 * talks to the VMM only with port I/O. This header is included both by the
 * freestanding guests and by the VMM, so it uses only fixed-width types and
 * macros.
 *
 * Memory (guest physical == guest virtual, identity-mapped with 2 MiB pages,
 * user-accessible; the first 2 MiB are mapped with 4 KiB pages so the system
 * pages can be protected from the guest):
 *   0x000000  not present (null pointer traps: a triple fault, i.e. SHUTDOWN)
 *   0x001000  boot info, read-only to the guest       (struct km_boot_info)
 *   0x002000  GDT and TSS, supervisor-only
 *   0x010000  page tables, supervisor-only, up to 0x1fffff
 *   0x200000  the flat guest image, entry point at its first byte
 *   0x300000  stacks: vCPU i uses [0x300000 + i*64K, 0x300000 + (i+1)*64K)
 *   0x400000  free memory for the workload, up to the 3 GiB hole; RAM past
 *             3 GiB continues at 4 GiB (the free[] ranges of the boot info)
 *
 * Entry: RIP = 0x200000, RSP = top of the vCPU's stack (16-byte aligned),
 * RDI = address of the boot info, RSI = vCPU index, RFLAGS = IOPL3 (IF=0).
 * SSE and, where the host offers them, AVX/AVX-512 are enabled (CR4.OSFXSR,
 * CR4.OSXSAVE, XCR0). RDTSC is allowed at CPL3.
 */
#ifndef KVM_GUEST_ABI_H
#define KVM_GUEST_ABI_H

#define KM_PAGE_SIZE		0x1000ULL
#define KM_BOOT_INFO_GPA	0x1000ULL
#define KM_GDT_GPA		0x2000ULL
#define KM_PGTABLE_GPA		0x10000ULL
#define KM_PGTABLE_END		0x200000ULL
#define KM_IMAGE_GPA		0x200000ULL
#define KM_IMAGE_MAX		0x100000ULL
#define KM_STACKS_GPA		0x300000ULL
#define KM_STACK_SIZE		0x10000ULL
#define KM_FREE_GPA		0x400000ULL
#define KM_HOLE_START		0xc0000000ULL	/* 3 GiB: the PCI hole begins */
#define KM_HIGH_GPA		0x100000000ULL	/* 4 GiB: RAM above the hole */
#define KM_MAX_VCPUS		16
#define KM_MIN_MEM		(16ULL << 20)

/*
 * Port I/O.
 *
 * KM_PORT_SERIAL: COM1's transmit register; each `out` byte goes to the
 * console. Hypercalls: `in eax, dx` with DX = KM_PORT_HC + number (or the
 * MMIO read below, which the guests use), arguments
 * in RDI, RSI, R8, R9; the VMM returns a 32-bit value in EAX (for most calls a
 * pending request, enum km_req). An `in` is used rather than `out` so that
 * every call can carry a reply.
 */
#define KM_PORT_SERIAL		0x3f8
#define KM_PORT_HC		0x500
#define KM_PORT_HC_COUNT	16

/*
 * The same calls by MMIO, which is what the guests use: on a PVM host
 * (the kvm_pvm module of these machines) guest user mode runs in the
 * host's user mode, where IOPL cannot be granted, so `in`/`out` at CPL3
 * raise #GP there, while an access to a guest physical address that no
 * memory slot backs exits to the VMM on every kind of KVM host. The MMIO
 * page lies in the PCI hole (no RAM behind it), mapped user read-write
 * by the boot page tables:
 *   KM_MMIO_SERIAL        byte writes go to the console (like COM1's THR)
 *   KM_MMIO_HC + 4 * nr   a 32-bit read is hypercall nr; its value is the
 *                         reply (arguments in RDI, RSI, R8, R9 as above)
 */
#define KM_MMIO_GPA		0xd0000000ULL
#define KM_MMIO_SERIAL		(KM_MMIO_GPA + 0x0)
#define KM_MMIO_HC		(KM_MMIO_GPA + 0x100)
#define KM_MMIO_SIZE		0x1000ULL

enum km_hc {
	/* RDI = address of text, RSI = length (<= 4096). Returns a request. */
	KM_HC_CONSOLE = 0,
	/*
	 * RDI = the vCPU's work counter (monotonic: pages written, loop
	 * iterations...), RSI = RDTSC at the report, R8 = the longest gap in
	 * TSC ticks between two iterations of the guest's loop since its
	 * previous report, not counting time it asked to sleep in KM_HC_SLEEP
	 * (what the guest felt as a pause). Guests report at least every
	 * 100 ms. Returns a request.
	 */
	KM_HC_PROGRESS = 1,
	/* RDI = address of a struct km_ucall. Returns a request. */
	KM_HC_UCALL = 2,
	/*
	 * RDI = microseconds to sleep (<= 1 s). The VMM parks the vCPU thread
	 * and returns early when a request is pending or the VM is paused.
	 * Idle guests use it instead of spinning. Returns a request.
	 */
	KM_HC_SLEEP = 3,
	/* Answer to KM_REQ_CHECK: RDI = pages checked, RSI = bad pages. */
	KM_HC_CHECK_RESULT = 4,
	/* The workload finished: RDI = 0 for success. The vCPU stops. */
	KM_HC_DONE = 5,
	/* The workload failed: RDI = address of text, RSI = length. */
	KM_HC_FAIL = 6,
};

/* What a hypercall returns: a request from the VMM to the guest. */
enum km_req {
	KM_REQ_NONE = 0,
	/*
	 * Verify all pages this vCPU has written and answer with
	 * KM_HC_CHECK_RESULT (the `check` control command).
	 */
	KM_REQ_CHECK = 1,
};

/* ucall commands, in the spirit of KVM selftests' ucall. */
enum km_ucall_cmd {
	KM_UCALL_SYNC = 1,	/* args[0] = stage; the host may inspect the VM */
	KM_UCALL_ASSERT = 2,	/* msg = "expr", args[0] = line, args[1..2] = values */
	KM_UCALL_DONE = 3,	/* the guest function returned successfully */
	KM_UCALL_PRINT = 4,	/* msg = text */
};

#define KM_UCALL_MSG_MAX	192

struct km_ucall {
	unsigned long long cmd;
	unsigned long long args[4];
	char file[64];
	char msg[KM_UCALL_MSG_MAX];
};

#define KM_BOOT_MAGIC		0x49424d4bU	/* "KMBI" */
#define KM_BOOT_VERSION		1
#define KM_BOOT_MAX_RANGES	4
#define KM_BOOT_ARGS_MAX	1024

struct km_mem_range {
	unsigned long long start;
	unsigned long long len;
};

/* Read-only to the guest, at KM_BOOT_INFO_GPA. */
struct km_boot_info {
	unsigned int magic;
	unsigned int version;
	unsigned long long mem_size;	/* bytes of guest RAM */
	unsigned int nr_vcpus;
	unsigned int reserved0;
	unsigned long long tsc_khz;	/* guest TSC frequency */
	unsigned int nr_ranges;
	unsigned int reserved1;
	/* Memory the workload may use: identity-mapped, writable, user. */
	struct km_mem_range free[KM_BOOT_MAX_RANGES];
	char guest[32];			/* workload name, NUL-terminated */
	char args[KM_BOOT_ARGS_MAX];	/* --guest-arg text, NUL-terminated */
};

#endif
