/*
 * Booting a Linux kernel (a bzImage) the way kvmtool and Firecracker do: no
 * firmware, the VMM writes what a boot loader and a BIOS would leave behind
 * (the boot protocol's zero page with an e820 map, the command line, the
 * initrd, ACPI tables) and enters the kernel's 64-bit entry point at CPL0.
 *
 * Guest physical memory below 1 MiB (the kernel itself goes where it
 * prefers, 16 MiB for Debian's):
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

#include <stdint.h>

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
#define LINUX_KERNEL_MAX	(256ULL << 20)	/* a bzImage file larger than this is refused */
#define LINUX_VIRTIO_BLK_GPA	0xd0000000ULL	/* the disk's virtio-mmio window, in the PCI hole */
#define LINUX_VIRTIO_BLK_GSI	16		/* its level-triggered IOAPIC pin, clear of ISA's 0-15 */

#define LINUX_PORT_SLEEP_CTL	0x600
#define LINUX_PORT_SLEEP_STS	0x601
#define LINUX_SLEEP_EN		0x20
#define LINUX_PORT_I8042_CMD	0x64
#define LINUX_I8042_RESET	0xfe

struct linux_params {
	const char *kernel;	/* path of a bzImage */
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
 * bzImage), KM_ERR_VERSION (boot protocol too old, no 64-bit entry),
 * KM_ERR_CORRUPT (a header that points past the file), KM_ERR_TOO_LARGE
 * (command line, or no room in memory), KM_ERR_INVALID (no irqchip),
 * -errno of a file.
 */
int linux__boot(struct kvm *kvm, const struct linux_params *p);

/*
 * The ACPI tables at LINUX_ACPI_GPA (acpi.c): a hardware-reduced FADT
 * whose sleep registers are the ports above, a DSDT with \_S5, and a MADT
 * with one local APIC per vCPU and the IOAPIC. *rsdp is the RSDP's address.
 */
int acpi__setup(struct kvm *kvm, uint64_t *rsdp);

#endif
