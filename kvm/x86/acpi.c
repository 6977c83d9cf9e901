/*
 * The fewest ACPI tables that let Linux power the VM off and see every
 * vCPU: a hardware-reduced FADT (no PM1 blocks, no SCI, no PM timer, no
 * GPEs; ACPI 5.0's sleep control register is the one power-off port), a
 * DSDT with \_S5 (ACPICA asks it for the sleep type before it will power
 * off) and COM1, and a MADT listing the local APICs and the IOAPIC.
 * Without ACPI, a Linux guest's `poweroff` has no way to reach the VMM:
 * pm_power_off stays NULL and the kernel just stops the calling process.
 *
 * Hardware-reduced ACPI also tells Linux there is no 8259 PIC and no
 * PIT timer to wire up: interrupts go through the IOAPIC, ticks come from
 * the LAPIC timer (TSC deadline), the clock from kvmclock. The FADT's boot
 * flags say there is no CMOS RTC, no VGA and no i8042, so none is probed.
 */
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "kvm/kvm.h"
#include "kvm/virtio-mmio.h"
#include "kvm/x86/linux.h"

#define RSDP_GPA	LINUX_ACPI_GPA
#define XSDT_GPA	(LINUX_ACPI_GPA + 0x40)
#define FADT_GPA	(LINUX_ACPI_GPA + 0x100)
#define DSDT_GPA	(LINUX_ACPI_GPA + 0x300)
#define MADT_GPA	(LINUX_ACPI_GPA + 0x400)

#define FADT_LEN		276	/* ACPI 6.0: through the hypervisor vendor id */
#define FADT_HW_REDUCED		(1U << 20)
#define FADT_PWR_BUTTON		(1U << 4)	/* no fixed-feature power button */
#define FADT_SLP_BUTTON		(1U << 5)
#define BOOT_ARCH_NO_VGA	(1U << 2)
#define BOOT_ARCH_NO_CMOS_RTC	(1U << 5)
#define SCI_IRQ			9	/* unused (hardware-reduced), but Linux wires it up */
#define LAPIC_GPA		0xfee00000U
#define IOAPIC_GPA		0xfec00000U

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static uint8_t acpi__sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

/* The common 36-byte header; the checksum is set last, over len bytes. */
static void acpi__header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	put32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, "KVMMIG", 6);
	memcpy(t + 16, "KVMMIGRT", 8);
	put32(t + 24, 1);
	memcpy(t + 28, "KMIG", 4);
	put32(t + 32, 1);
}

static void acpi__checksum(uint8_t *t, uint32_t len)
{
	t[9] = 0;
	t[9] = (uint8_t)-acpi__sum(t, len);
}

/*
 * An AML PkgLength for a package of len bytes after it: one byte up to
 * 63 (the length counts itself), else two. Returns the bytes written.
 */
static unsigned int acpi__pkglen(uint8_t *p, unsigned int len)
{
	if (len + 1 <= 63) {
		p[0] = (uint8_t)(len + 1);
		return 1;
	}
	len += 2;
	p[0] = (uint8_t)(0x40 | (len & 0x0f));
	p[1] = (uint8_t)(len >> 4);
	return 2;
}

/*
 * The disk's AML (x86/linux.h), when the VM has one:
 *   Scope (\_SB) { Device (VBLK) {
 *     Name (_HID, "LNRO0005") Name (_UID, 0)
 *     Name (_CRS, ResourceTemplate () {
 *       Memory32Fixed (ReadWrite, LINUX_VIRTIO_BLK_GPA, VIRTIO_MMIO_SIZE)
 *       Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) { LINUX_VIRTIO_BLK_GSI }
 *     })
 *   } }
 * Lengths are computed, not counted by hand. Returns the bytes written
 * (at most ACPI_VBLK_MAX).
 */
#define ACPI_VBLK_MAX	96
static unsigned int acpi__vblk(uint8_t *out)
{
	uint8_t crs[23], dev[64];
	unsigned int n = 0, d = 0, len;

	crs[n++] = 0x86;			/* Memory32Fixed */
	put16(crs + n, 9);
	n += 2;
	crs[n++] = 1;				/* read-write */
	put32(crs + n, (uint32_t)LINUX_VIRTIO_BLK_GPA);
	put32(crs + n + 4, VIRTIO_MMIO_SIZE);
	n += 8;
	crs[n++] = 0x89;			/* Extended Interrupt */
	put16(crs + n, 6);
	n += 2;
	crs[n++] = 0x01;			/* consumer, level, active high, exclusive */
	crs[n++] = 1;				/* one interrupt */
	put32(crs + n, LINUX_VIRTIO_BLK_GSI);
	n += 4;
	crs[n++] = 0x79;			/* end tag, checksum 0 */
	crs[n++] = 0x00;

	memcpy(dev + d, "VBLK", 4);
	d += 4;
	memcpy(dev + d, "\x08_HID\x0dLNRO0005\0", 15);
	d += 15;
	memcpy(dev + d, "\x08_UID\x00", 6);
	d += 6;
	memcpy(dev + d, "\x08_CRS\x11", 6);
	d += 6;
	d += acpi__pkglen(dev + d, 2 + n);	/* Buffer: BufferSize (ByteConst n), then the bytes */
	dev[d++] = 0x0a;
	dev[d++] = (uint8_t)n;
	memcpy(dev + d, crs, n);
	d += n;

	len = 0;
	out[len++] = 0x10;			/* Scope */
	len += acpi__pkglen(out + len, 5 + 2 + (d + 2 > 64 ? 2 : 1) + d);
	memcpy(out + len, "\\_SB_", 5);
	len += 5;
	out[len++] = 0x5b;			/* Device */
	out[len++] = 0x82;
	len += acpi__pkglen(out + len, d);
	memcpy(out + len, dev, d);
	return len + d;
}

/* A Generic Address Structure for one byte of I/O space. */
static void acpi__gas_io8(uint8_t *g, uint16_t port)
{
	g[0] = 1;	/* system I/O */
	g[1] = 8;	/* bit width */
	g[2] = 0;	/* bit offset */
	g[3] = 1;	/* byte access */
	put64(g + 4, port);
}

int acpi__setup(struct kvm *kvm, uint64_t *rsdp_gpa)
{
	/*
	 * The DSDT's AML, by hand (it is short and never changes):
	 *   Name (_S5, Package (2) { 5, 0 })	the S5 sleep type (our port ignores it)
	 *   Scope (\_SB) { Device (COM1) {
	 *     Name (_HID, EisaId ("PNP0501")) Name (_UID, 1)
	 *     Name (_CRS, ResourceTemplate () { IO (Decode16, 0x3f8, 0x3f8, 0, 8) IRQNoFlags () {4} })
	 *   } }
	 * COM1 must be there: without a PIC (hardware-reduced), Linux makes an
	 * IRQ number for an ISA interrupt only when a device names it, and the
	 * 8250 driver's built-in COM1 (IRQ 4 by number) would find none.
	 */
	static const uint8_t aml[] = {
		0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0a, 0x05, 0x00,
		0x10, 0x33, '\\', '_', 'S', 'B', '_',
		0x5b, 0x82, 0x2b, 'C', 'O', 'M', '1',
		0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01,
		0x08, '_', 'U', 'I', 'D', 0x01,
		0x08, '_', 'C', 'R', 'S', 0x11, 0x10, 0x0a, 0x0d,
		0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x00, 0x08,
		0x22, 0x10, 0x00,
		0x79, 0x00,
	};
	uint8_t rsdp[36] = { 0 }, xsdt[36 + 16] = { 0 }, fadt[FADT_LEN] = { 0 };
	uint8_t dsdt[36 + sizeof(aml) + ACPI_VBLK_MAX] = { 0 }, madt[44 + 8 * KM_MAX_VCPUS + 12] = { 0 };
	uint32_t madt_len = 44, dsdt_len = 36 + sizeof(aml);
	unsigned int i;
	int r;

	memcpy(dsdt + 36, aml, sizeof(aml));
	if (kvm->blk)
		dsdt_len += acpi__vblk(dsdt + dsdt_len);
	acpi__header(dsdt, "DSDT", dsdt_len, 2);
	acpi__checksum(dsdt, dsdt_len);

	acpi__header(fadt, "FACP", FADT_LEN, 6);
	put32(fadt + 40, (uint32_t)DSDT_GPA);
	put16(fadt + 46, SCI_IRQ);
	put16(fadt + 109, BOOT_ARCH_NO_VGA | BOOT_ARCH_NO_CMOS_RTC);
	put32(fadt + 112, FADT_HW_REDUCED | FADT_PWR_BUTTON | FADT_SLP_BUTTON);
	fadt[131] = 0;					/* minor version: 6.0 */
	put64(fadt + 140, DSDT_GPA);			/* X_DSDT */
	acpi__gas_io8(fadt + 244, LINUX_PORT_SLEEP_CTL);
	acpi__gas_io8(fadt + 256, LINUX_PORT_SLEEP_STS);
	memcpy(fadt + 268, "KVMMIGRT", 8);		/* hypervisor vendor identity */
	acpi__checksum(fadt, FADT_LEN);

	put32(madt + 36, LAPIC_GPA);
	put32(madt + 40, 0);	/* no PCAT_COMPAT: hardware-reduced, no 8259 to mask */
	for (i = 0; i < kvm->nr_cpus; i++) {
		uint8_t *e = madt + madt_len;

		e[0] = 0;		/* processor local APIC */
		e[1] = 8;
		e[2] = (uint8_t)i;	/* ACPI processor id */
		e[3] = (uint8_t)i;	/* APIC id, as CPUID says (x86__cpuid_for_vcpu) */
		put32(e + 4, 1);	/* enabled */
		madt_len += 8;
	}
	madt[madt_len] = 1;		/* IOAPIC */
	madt[madt_len + 1] = 12;
	madt[madt_len + 2] = 0;		/* IOAPIC id */
	put32(madt + madt_len + 4, IOAPIC_GPA);
	put32(madt + madt_len + 8, 0);	/* GSI base: ISA IRQ n is GSI n */
	madt_len += 12;
	acpi__header(madt, "APIC", madt_len, 4);
	acpi__checksum(madt, madt_len);

	acpi__header(xsdt, "XSDT", sizeof(xsdt), 1);
	put64(xsdt + 36, FADT_GPA);
	put64(xsdt + 44, MADT_GPA);
	acpi__checksum(xsdt, sizeof(xsdt));

	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, "KVMMIG", 6);
	rsdp[15] = 2;			/* ACPI 2.0+: the XSDT */
	put32(rsdp + 20, sizeof(rsdp));
	put64(rsdp + 24, XSDT_GPA);
	rsdp[8] = (uint8_t)-acpi__sum(rsdp, 20);
	rsdp[32] = (uint8_t)-acpi__sum(rsdp, sizeof(rsdp));

	if ((r = memory__write(&kvm->mem, RSDP_GPA, rsdp, sizeof(rsdp))) != 0 ||
	    (r = memory__write(&kvm->mem, XSDT_GPA, xsdt, sizeof(xsdt))) != 0 ||
	    (r = memory__write(&kvm->mem, FADT_GPA, fadt, sizeof(fadt))) != 0 ||
	    (r = memory__write(&kvm->mem, DSDT_GPA, dsdt, dsdt_len)) != 0 ||
	    (r = memory__write(&kvm->mem, MADT_GPA, madt, madt_len)) != 0)
		return r;
	*rsdp_gpa = RSDP_GPA;
	return 0;
}
