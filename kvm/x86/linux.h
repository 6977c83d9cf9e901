/*
 * Booting a Linux kernel the way kvmtool and Firecracker do: no firmware,
 * the VMM writes what a boot loader and a BIOS would leave behind (the boot
 * protocol's zero page with an e820 map, the command line, the initrd, ACPI
 * tables) and enters the kernel's 64-bit entry point at CPL0. The kernel is
 * either
 *   - a bzImage (linux.c): its protected-mode part goes where its setup
 *     header prefers (16 MiB for Debian's), entered at its 64-bit entry
 *     (start + 0x200), where it decompresses itself; or
 *   - an uncompressed x86-64 ELF vmlinux (elf.c), as Firecracker boots:
 *     each PT_LOAD segment at its p_paddr (16 MiB on), entered at e_entry
 *     (startup_64). There is no setup header in the file: the loader makes
 *     up the fields the kernel reads (boot flag, "HdrS", version) and
 *     fills in a loader's as for a bzImage. Told apart by the ELF magic.
 * The initrd goes above the kernel, as high as the kernel allows.
 *
 * Guest physical memory below 1 MiB, which no kernel segment may overlap:
 *   0x000500  GDT (null, code64, data, TSS)
 *   0x000520  IDT (empty: the kernel loads its own before it enables interrupts)
 *   0x007000  zero page (struct boot_params)
 *   0x008ff0  boot stack (grows down)
 *   0x009000  page tables: PML4, PDPT, 4 PDs identity-mapping 4 GiB in 2 MiB pages
 *   0x020000  kernel command line
 *   0x09fc00  EBDA (reserved in e820, empty)
 *   0x0e0000  ACPI tables: RSDP, XSDT, FADT, DSDT, MADT (reserved in e820)
 *
 * Platform ports besides the in-kernel PIC, PIT and the 16550 (kvm/uart.h):
 *   0x600  ACPI sleep control register (hardware-reduced ACPI, FADT): a
 *          write with SLP_EN (bit 5) powers the machine off
 *   0x601  ACPI sleep status register (reads 0x80, WAK_STS)
 *   0x64   i8042 command port: 0xfe (pulse the reset line) resets, which
 *          kvm-run treats as the end of the VM (docs/kvm-run.1). Linux
 *          uses it with reboot=k; its default here jumps to the BIOS's
 *          reset vector, and there is no BIOS.
 *
 * With a disk (kvm-run --disk, kvm/virtio-blk.h), one MMIO device:
 *   0xd0000000  virtio-mmio (version 2) window of 0x200 bytes, a virtio-blk
 *               disk, in the PCI hole (RAM stops at 3 GiB, resumes at 4 GiB;
 *               e820 says nothing of the hole). Its interrupt is GSI 16 of
 *               the IOAPIC, level-triggered, active high. The DSDT declares
 *               it as \_SB.VBLK, _HID "LNRO0005", which Linux's virtio_mmio
 *               driver matches (Debian builds it as a module and without
 *               virtio_mmio.device= command line devices).
 */
#ifndef KM_X86_LINUX_H
#define KM_X86_LINUX_H

#include <stdbool.h>
#include <stdint.h>
#include <asm/bootparam.h>

struct kvm;

#define LINUX_GDT_GPA		0x500ULL
#define LINUX_IDT_GPA		0x520ULL
#define LINUX_ZERO_PAGE_GPA	0x7000ULL
#define LINUX_STACK_GPA		0x8ff0ULL
#define LINUX_PGTABLE_GPA	0x9000ULL
#define LINUX_CMDLINE_GPA	0x20000ULL
#define LINUX_CMDLINE_MAX	4096	/* ours, beside the kernel's own cmdline_size */
#define LINUX_EBDA_GPA		0x9fc00ULL
#define LINUX_ACPI_GPA		0xe0000ULL
#define LINUX_HIGH_GPA		0x100000ULL	/* 1 MiB: RAM again after the BIOS area */
#define LINUX_KERNEL_MAX	(256ULL << 20)	/* a kernel file larger than this is refused */
/* An ELF vmlinux has no header to say: the protocol and command line of 6.1's bzImage. */
#define LINUX_ELF_PROTO		0x20f		/* 2.15 */
#define LINUX_ELF_CMDLINE_MAX	2047		/* x86's COMMAND_LINE_SIZE - 1 */
#define LINUX_VIRTIO_BLK_GPA	0xd0000000ULL	/* the disk's virtio-mmio window, in the PCI hole */
#define LINUX_VIRTIO_BLK_GSI	16		/* its level-triggered IOAPIC pin, clear of ISA's 0-15 */

#define LINUX_PORT_SLEEP_CTL	0x600
#define LINUX_PORT_SLEEP_STS	0x601
#define LINUX_SLEEP_EN		0x20
#define LINUX_PORT_I8042_CMD	0x64
#define LINUX_I8042_RESET	0xfe

struct linux_params {
	const char *kernel;	/* path of a bzImage or an ELF vmlinux */
	const char *initrd;	/* path, or NULL */
	const char *cmdline;	/* NULL: "" */
};

/*
 * Loads the kernel (and initrd, command line) into the VM's memory, writes
 * the zero page, page tables, GDT and ACPI tables, gives every vCPU the
 * CPUID Linux should see, and sets vCPU 0 to enter the kernel's 64-bit
 * entry point at CPL0 (the others wait for the kernel's INIT/SIPI, which
 * the in-kernel LAPIC handles). Needs the in-kernel irqchip. Returns 0, or
 * a negative error with the reason logged: KM_ERR_BAD_MAGIC (not a
 * bzImage nor an x86-64 ELF executable), KM_ERR_VERSION (boot protocol too
 * old, no 64-bit entry), KM_ERR_CORRUPT (a header that points past the
 * file), KM_ERR_TRUNCATED (an ELF file cut short), KM_ERR_TOO_LARGE
 * (command line, or no room in memory), KM_ERR_INVALID (no irqchip, an ELF
 * segment below 1 MiB), -errno of a file.
 */
int linux__boot(struct kvm *kvm, const struct linux_params *p);

/* A kernel loaded into guest memory, as the rest of the boot needs it. */
struct linux_image {
	struct setup_header hdr;	/* the zero page's header before the loader's fields */
	uint64_t entry;			/* 64-bit entry point (guest physical) */
	uint64_t start, end;		/* what the kernel occupies and needs to run */
	const char *kind;		/* for the log */
};

/* Whether img starts with the ELF magic (the rest is elf__load_vmlinux's to check). */
bool elf__is_elf(const uint8_t *img, uint64_t len);

/*
 * Loads the ELF vmlinux img (len bytes of the file path) into the VM's
 * memory and describes it in *li (elf.c). Checks everything before it
 * writes anything: an x86-64 ET_EXEC, at most 64 program headers within
 * the file, at least one PT_LOAD, each within the file and within RAM
 * between 1 MiB and the hole, e_entry inside one. Returns 0, or
 * KM_ERR_TRUNCATED, KM_ERR_BAD_MAGIC (another machine or type),
 * KM_ERR_CORRUPT, KM_ERR_INVALID (below 1 MiB), KM_ERR_TOO_LARGE (beyond
 * RAM), the reason logged.
 */
int elf__load_vmlinux(struct kvm *kvm, const char *path, const uint8_t *img, uint64_t len,
		      struct linux_image *li);

/*
 * The ACPI tables at LINUX_ACPI_GPA (acpi.c): a hardware-reduced FADT
 * whose sleep registers are the ports above, a DSDT with \_S5, and a MADT
 * with one local APIC per vCPU and the IOAPIC. *rsdp is the RSDP's address.
 */
int acpi__setup(struct kvm *kvm, uint64_t *rsdp);

#endif
