/*
 * x86 vCPU and VM state capture and restore (see kvm/state.h).
 *
 * Restore order, and why:
 *   CPUID      before anything: KVM validates XSAVE, MSRs... against it
 *   TSC kHz    before MSRs: IA32_TSC is scaled by the guest frequency
 *   SREGS      control registers, EFER and the APIC base come first
 *   REGS
 *   XCRS       XCR0 before the XSAVE area whose components it enables
 *   XSAVE
 *   LAPIC      before MSRs: TSC_DEADLINE is dropped unless the LVT timer
 *              is already in deadline mode
 *   MSRS
 *   DEBUGREGS
 *   MP_STATE   after LAPIC (an in-kernel LAPIC would reset it)
 *   EVENTS     last: pending exceptions and NMIs apply to the final state
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "err.h"
#include "log.h"
#include "record.h"
#include "kvm/kvm.h"
#include "kvm/kvm-cpu.h"
#include "kvm/state.h"
#include "kvm/uart.h"
#include "kvm/virtio-blk.h"
#include "kvm/x86/x86.h"

#define MSRS_MAX	4096
#define CPUID_MAX	1024
#define XSAVE_MAX	(64 * 1024)

static int state__ioctl_fail(struct kvm_cpu *cpu, const char *what)
{
	int r = km_errno();

	if (cpu)
		log_error("vCPU %u: %s: %s", cpu->id, what, km_strerror(r));
	else
		log_error("%s: %s", what, km_strerror(r));
	return r;
}

#define GET_FIELD(cpu, req, type, tag, payload)					\
	({									\
		type __v;							\
		int __r = 0;							\
		memset(&__v, 0, sizeof(__v));					\
		if (ioctl((cpu)->fd, req, &__v) < 0)				\
			__r = state__ioctl_fail(cpu, #req);			\
		else								\
			__r = rec_put_field(payload, tag, &__v, sizeof(__v));	\
		__r;								\
	})

static int state__save_msrs(struct kvm_cpu *cpu, struct buf *payload)
{
	struct kvm *kvm = cpu->kvm;
	struct kvm_msrs *m;
	unsigned int i, n = kvm->nr_msr_index;
	int r;

	m = calloc(1, sizeof(*m) + n * sizeof(m->entries[0]));
	if (!m)
		return -ENOMEM;
	m->nmsrs = n;
	for (i = 0; i < n; i++)
		m->entries[i].index = kvm->msr_index[i];
	r = ioctl(cpu->fd, KVM_GET_MSRS, m);
	if (r < 0) {
		r = state__ioctl_fail(cpu, "KVM_GET_MSRS");
		goto out;
	}
	if ((unsigned int)r != n) {
		log_error("vCPU %u: KVM_GET_MSRS read %d of %u MSRs (stopped at 0x%x)",
			  cpu->id, r, n, kvm->msr_index[r]);
		r = KM_ERR_KVM;
		goto out;
	}
	r = rec_put_field(payload, ST_MSRS, m->entries, n * sizeof(m->entries[0]));
out:
	free(m);
	return r;
}

static int state__save_xsave(struct kvm_cpu *cpu, struct buf *payload)
{
	int size = cpu->kvm->caps.xsave2_size > (int)sizeof(struct kvm_xsave) ?
		   cpu->kvm->caps.xsave2_size : (int)sizeof(struct kvm_xsave);
	unsigned long req = cpu->kvm->caps.xsave2_size ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
	void *x;
	int r;

	if (size > XSAVE_MAX)
		return KM_ERR_TOO_LARGE;
	x = calloc(1, size);
	if (!x)
		return -ENOMEM;
	if (ioctl(cpu->fd, req, x) < 0)
		r = state__ioctl_fail(cpu, "KVM_GET_XSAVE");
	else
		r = rec_put_field(payload, ST_XSAVE, x, size);
	free(x);
	return r;
}

static int state__save_cpuid(struct kvm_cpu *cpu, struct buf *payload)
{
	unsigned int n = cpu->cpuid_nent;
	struct kvm_cpuid2 *c;
	int r;

	/*
	 * What KVM holds for the vCPU, read back with exactly the count we
	 * gave it: older kernels (6.1) neither report the count on E2BIG nor
	 * update it on success.
	 */
	if (n == 0 || n > CPUID_MAX)
		return KM_ERR_STATE;
	c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
	if (!c)
		return -ENOMEM;
	c->nent = n;
	if (ioctl(cpu->fd, KVM_GET_CPUID2, c) < 0)
		r = state__ioctl_fail(cpu, "KVM_GET_CPUID2");
	else
		r = rec_put_field(payload, ST_CPUID, c->entries, n * sizeof(c->entries[0]));
	free(c);
	return r;
}

int state__save_vcpu(struct kvm_cpu *cpu, struct buf *payload)
{
	struct kvm *kvm = cpu->kvm;
	int r, khz;

	if ((r = rec_put_field_u64(payload, ST_VCPU_ID, cpu->id)) != 0)
		return r;
	if ((r = state__save_cpuid(cpu, payload)) != 0)
		return r;
	khz = ioctl(cpu->fd, KVM_GET_TSC_KHZ, 0);
	if (khz > 0 && (r = rec_put_field_u64(payload, ST_TSC_KHZ, (uint64_t)khz)) != 0)
		return r;
	if (kvm->caps.sregs2)
		r = GET_FIELD(cpu, KVM_GET_SREGS2, struct kvm_sregs2, ST_SREGS2, payload);
	else
		r = GET_FIELD(cpu, KVM_GET_SREGS, struct kvm_sregs, ST_SREGS, payload);
	if (r)
		return r;
	if ((r = GET_FIELD(cpu, KVM_GET_REGS, struct kvm_regs, ST_REGS, payload)) != 0)
		return r;
	if (kvm->caps.xcrs &&
	    (r = GET_FIELD(cpu, KVM_GET_XCRS, struct kvm_xcrs, ST_XCRS, payload)) != 0)
		return r;
	if ((r = state__save_xsave(cpu, payload)) != 0)
		return r;
	if (kvm->cfg.irqchip &&
	    (r = GET_FIELD(cpu, KVM_GET_LAPIC, struct kvm_lapic_state, ST_LAPIC, payload)) != 0)
		return r;
	if ((r = state__save_msrs(cpu, payload)) != 0)
		return r;
	if (kvm->caps.debugregs &&
	    (r = GET_FIELD(cpu, KVM_GET_DEBUGREGS, struct kvm_debugregs, ST_DEBUGREGS,
			   payload)) != 0)
		return r;
	if ((r = GET_FIELD(cpu, KVM_GET_MP_STATE, struct kvm_mp_state, ST_MP_STATE,
			   payload)) != 0)
		return r;
	if (kvm->caps.vcpu_events &&
	    (r = GET_FIELD(cpu, KVM_GET_VCPU_EVENTS, struct kvm_vcpu_events, ST_EVENTS,
			   payload)) != 0)
		return r;
	return 0;
}

/* Fields of one payload by tag: the last occurrence wins, unknown tags are skipped. */
struct state_fields {
	const uint8_t *data[128];
	uint32_t len[128];
};

/* Indexes a payload's fields into a new *out (caller frees), bounded by len. */
static int state__index(const uint8_t *payload, uint32_t len, struct state_fields **out)
{
	struct state_fields *f = calloc(1, sizeof(*f));
	struct buf *b = buf_view(payload, len);
	const uint8_t *data;
	uint32_t tag, flen;
	int r;

	if (!f || !b) {
		free(f);
		buf_free(b);
		return -ENOMEM;
	}
	while ((r = rec_get_field(b, &tag, &data, &flen)) == 0) {
		if (tag < 128) {
			f->data[tag] = data;
			f->len[tag] = flen;
		}
	}
	buf_free(b);
	if (r != KM_ERR_END) {
		free(f);
		return r;
	}
	*out = f;
	return 0;
}

/* Copies field tag into dst of exactly size bytes; 1 if absent. */
static int state__field(const struct state_fields *f, uint32_t tag, void *dst, size_t size)
{
	if (!f->data[tag])
		return 1;
	if (f->len[tag] != size) {
		log_error("state field %u: %u bytes, expected %zu", tag, f->len[tag], size);
		return KM_ERR_CORRUPT;
	}
	memcpy(dst, f->data[tag], size);
	return 0;
}

#define SET_FIELD(cpu, f, tag, req, type, required)				\
	({									\
		type __v;							\
		int __r = state__field(f, tag, &__v, sizeof(__v));		\
		if (__r == 1)							\
			__r = (required) ? KM_ERR_CORRUPT : 0;			\
		else if (__r == 0 && ioctl((cpu)->fd, req, &__v) < 0)		\
			__r = state__ioctl_fail(cpu, #req);			\
		if (__r == KM_ERR_CORRUPT && (required) && !(f)->data[tag])	\
			log_error("state lacks required field %u", tag);	\
		__r;								\
	})

static int state__load_cpuid(struct kvm_cpu *cpu, const struct state_fields *f)
{
	uint32_t n, len = f->len[ST_CPUID];
	struct kvm_cpuid2 *c;
	int r;

	if (!f->data[ST_CPUID])
		return 0;
	if (len % sizeof(c->entries[0]) || len / sizeof(c->entries[0]) > CPUID_MAX)
		return KM_ERR_CORRUPT;
	n = len / sizeof(c->entries[0]);
	/*
	 * Checked as the config's CPUID is (state__check_cpuid): a peer's
	 * vCPU must not be given features this host does not offer.
	 */
	{
		char why[160] = "";

		if (x86__cpuid_compatible((const void *)f->data[ST_CPUID], n, cpu->kvm->cpuid, why,
					  sizeof(why)) != 0) {
			log_error("vCPU %u: its saved CPUID asks for more than this host offers: %s",
				  cpu->id, why);
			return KM_ERR_UNSUPPORTED;
		}
	}
	c = calloc(1, sizeof(*c) + len);
	if (!c)
		return -ENOMEM;
	c->nent = n;
	memcpy(c->entries, f->data[ST_CPUID], len);
	r = 0;
	if (ioctl(cpu->fd, KVM_SET_CPUID2, c) < 0) {
		r = state__ioctl_fail(cpu, "KVM_SET_CPUID2");
		log_error("vCPU %u: the saved CPUID has %u entries", cpu->id, n);
	} else {
		cpu->cpuid_nent = n;
	}
	free(c);
	return r;
}

static int state__load_xsave(struct kvm_cpu *cpu, const struct state_fields *f)
{
	int size = cpu->kvm->caps.xsave2_size > (int)sizeof(struct kvm_xsave) ?
		   cpu->kvm->caps.xsave2_size : (int)sizeof(struct kvm_xsave);
	uint32_t len = f->len[ST_XSAVE];
	void *x;
	int r = 0;

	if (!f->data[ST_XSAVE])
		return 0;
	if (len > (uint32_t)size) {
		log_error("vCPU %u: XSAVE state of %u bytes, this host takes %d",
			  cpu->id, len, size);
		return KM_ERR_UNSUPPORTED;
	}
	x = calloc(1, size);
	if (!x)
		return -ENOMEM;
	memcpy(x, f->data[ST_XSAVE], len);
	if (ioctl(cpu->fd, KVM_SET_XSAVE, x) < 0)
		r = state__ioctl_fail(cpu, "KVM_SET_XSAVE");
	free(x);
	return r;
}

/*
 * An MSR value KVM refused on restore. It matters only if the vCPU does not
 * already hold that value (KVM refuses some writes of the reset value, e.g.
 * MSR_KVM_ASYNC_PF_INT = 0 when the feature is off).
 */
static void state__msr_refused(struct kvm_cpu *cpu, const struct kvm_msr_entry *e)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} now;

	memset(&now, 0, sizeof(now));
	now.hdr.nmsrs = 1;
	now.e.index = e->index;
	if (ioctl(cpu->fd, KVM_GET_MSRS, &now) == 1 && now.e.data == e->data) {
		log_debug("vCPU %u: MSR 0x%x write refused, but it holds 0x%llx already",
			  cpu->id, e->index, (unsigned long long)e->data);
		return;
	}
	log_warn("vCPU %u: MSR 0x%x value 0x%llx not accepted by KVM; it stays 0x%llx",
		 cpu->id, e->index, (unsigned long long)e->data,
		 (unsigned long long)now.e.data);
}

static bool state__msr_known(const struct kvm *kvm, uint32_t index)
{
	unsigned int i;

	for (i = 0; i < kvm->nr_msr_index; i++)
		if (kvm->msr_index[i] == index)
			return true;
	return false;
}

static int state__load_msrs(struct kvm_cpu *cpu, const struct state_fields *f)
{
	uint32_t len = f->len[ST_MSRS], n, done = 0;
	struct kvm_msrs *m;
	int r;

	if (!f->data[ST_MSRS])
		return 0;
	if (len % sizeof(struct kvm_msr_entry) || len / sizeof(struct kvm_msr_entry) > MSRS_MAX)
		return KM_ERR_CORRUPT;
	n = len / sizeof(struct kvm_msr_entry);
	/* Only the MSRs this VMM saves (state__save_msrs) may come back. */
	for (done = 0; done < n; done++) {
		struct kvm_msr_entry e;

		memcpy(&e, (const uint8_t *)f->data[ST_MSRS] + done * sizeof(e), sizeof(e));
		if (!state__msr_known(cpu->kvm, e.index)) {
			log_error("vCPU %u: saved state sets MSR 0x%x, which this VMM does not "
				  "save", cpu->id, e.index);
			return KM_ERR_CORRUPT;
		}
	}
	done = 0;
	m = calloc(1, sizeof(*m) + len);
	if (!m)
		return -ENOMEM;
	/*
	 * KVM_SET_MSRS stops at the first MSR it refuses. An MSR this host
	 * reads but will not take back is reported and skipped rather than
	 * failing the whole restore; the state tests show which.
	 */
	while (done < n) {
		m->nmsrs = n - done;
		memmove(m->entries, (const uint8_t *)f->data[ST_MSRS] +
			done * sizeof(struct kvm_msr_entry),
			m->nmsrs * sizeof(struct kvm_msr_entry));
		r = ioctl(cpu->fd, KVM_SET_MSRS, m);
		if (r < 0) {
			r = state__ioctl_fail(cpu, "KVM_SET_MSRS");
			goto out;
		}
		done += (uint32_t)r;
		if (done < n) {
			state__msr_refused(cpu, &m->entries[r]);
			done++;
		}
	}
	r = 0;
out:
	free(m);
	return r;
}

int state__load_vcpu(struct kvm_cpu *cpu, const uint8_t *payload, uint32_t len)
{
	struct kvm *kvm = cpu->kvm;
	struct state_fields *f;
	uint64_t khz;
	int r;

	if ((r = state__index(payload, len, &f)) != 0)
		return r;
	if ((r = state__load_cpuid(cpu, f)) != 0)
		goto out;
	if (f->data[ST_TSC_KHZ] &&
	    rec_field_u64(f->data[ST_TSC_KHZ], f->len[ST_TSC_KHZ], &khz) == 0 &&
	    khz != (uint64_t)ioctl(cpu->fd, KVM_GET_TSC_KHZ, 0)) {
		if (!kvm->caps.tsc_control || ioctl(cpu->fd, KVM_SET_TSC_KHZ, khz) < 0)
			log_warn("vCPU %u: cannot set the guest TSC to %llu kHz; it runs at the host's",
				 cpu->id, (unsigned long long)khz);
	}
	if (f->data[ST_SREGS2]) {
		if (!kvm->caps.sregs2) {
			log_error("state has SREGS2, which this host's KVM lacks");
			r = KM_ERR_UNSUPPORTED;
			goto out;
		}
		r = SET_FIELD(cpu, f, ST_SREGS2, KVM_SET_SREGS2, struct kvm_sregs2, 1);
	} else {
		r = SET_FIELD(cpu, f, ST_SREGS, KVM_SET_SREGS, struct kvm_sregs, 1);
	}
	if (r)
		goto out;
	if ((r = SET_FIELD(cpu, f, ST_REGS, KVM_SET_REGS, struct kvm_regs, 1)) != 0)
		goto out;
	if ((r = SET_FIELD(cpu, f, ST_XCRS, KVM_SET_XCRS, struct kvm_xcrs, 0)) != 0)
		goto out;
	if ((r = state__load_xsave(cpu, f)) != 0)
		goto out;
	if (kvm->cfg.irqchip &&
	    (r = SET_FIELD(cpu, f, ST_LAPIC, KVM_SET_LAPIC, struct kvm_lapic_state, 0)) != 0)
		goto out;
	if ((r = state__load_msrs(cpu, f)) != 0)
		goto out;
	if ((r = SET_FIELD(cpu, f, ST_DEBUGREGS, KVM_SET_DEBUGREGS, struct kvm_debugregs, 0)))
		goto out;
	if ((r = SET_FIELD(cpu, f, ST_MP_STATE, KVM_SET_MP_STATE, struct kvm_mp_state, 0)))
		goto out;
	if (f->data[ST_EVENTS]) {
		struct kvm_vcpu_events ev;

		if ((r = state__field(f, ST_EVENTS, &ev, sizeof(ev))) != 0)
			goto out;
		/* Say which parts are meant; KVM_GET reports only some as valid. */
		ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
			    KVM_VCPUEVENT_VALID_SHADOW;
		if (ioctl(cpu->fd, KVM_SET_VCPU_EVENTS, &ev) < 0) {
			r = state__ioctl_fail(cpu, "KVM_SET_VCPU_EVENTS");
			goto out;
		}
	}
	r = 0;
out:
	free(f);
	return r;
}

static int state__save_irqchip(struct kvm *kvm, uint32_t chip, uint32_t tag,
			       struct buf *payload)
{
	struct kvm_irqchip c;

	memset(&c, 0, sizeof(c));
	c.chip_id = chip;
	if (ioctl(kvm->vm_fd, KVM_GET_IRQCHIP, &c) < 0)
		return state__ioctl_fail(NULL, "KVM_GET_IRQCHIP");
	return rec_put_field(payload, tag, &c, sizeof(c));
}

/* The disk's state as one field (ST_VM_DISK) holding virtio_blk__save's list. */
static int state__save_disk(struct kvm *kvm, struct buf *payload)
{
	struct buf *d = buf_new(4096);
	int r;

	if (!d)
		return -ENOMEM;
	if ((r = virtio_blk__save(kvm->blk, d)) == 0)
		r = rec_put_field(payload, ST_VM_DISK, buf_ptr(d), (uint32_t)buf_len(d));
	buf_free(d);
	return r;
}

int state__save_vm(struct kvm *kvm, struct buf *payload)
{
	struct kvm_clock_data clock;
	struct kvm_pit_state2 pit;
	int r;

	memset(&clock, 0, sizeof(clock));
	if (ioctl(kvm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return state__ioctl_fail(NULL, "KVM_GET_CLOCK");
	if ((r = rec_put_field(payload, ST_VM_CLOCK, &clock, sizeof(clock))) != 0)
		return r;
	if (kvm->uart) {
		struct uart_state us;

		uart__get_state(kvm->uart, &us);
		if ((r = rec_put_field(payload, ST_VM_UART, &us, sizeof(us))) != 0)
			return r;
	}
	if (kvm->blk && (r = state__save_disk(kvm, payload)) != 0)
		return r;
	if (!kvm->cfg.irqchip)
		return 0;
	if ((r = state__save_irqchip(kvm, KVM_IRQCHIP_PIC_MASTER, ST_VM_PIC_MASTER, payload)) ||
	    (r = state__save_irqchip(kvm, KVM_IRQCHIP_PIC_SLAVE, ST_VM_PIC_SLAVE, payload)) ||
	    (r = state__save_irqchip(kvm, KVM_IRQCHIP_IOAPIC, ST_VM_IOAPIC, payload)))
		return r;
	memset(&pit, 0, sizeof(pit));
	if (ioctl(kvm->vm_fd, KVM_GET_PIT2, &pit) < 0)
		return state__ioctl_fail(NULL, "KVM_GET_PIT2");
	return rec_put_field(payload, ST_VM_PIT2, &pit, sizeof(pit));
}

/*
 * After the irqchip: the UART drives its IRQ line to the level its
 * registers call for, and the IOAPIC's and PIC's latches must already be
 * the saved ones. A record and a VM must agree on having a UART.
 */
static int state__load_uart(struct kvm *kvm, const struct state_fields *f)
{
	struct uart_state us;
	int r = state__field(f, ST_VM_UART, &us, sizeof(us));

	if (r < 0)
		return r;
	if ((r == 0) != (kvm->uart != NULL)) {
		log_error("the saved VM %s a console UART and this one %s", r == 0 ? "has" :
			  "has no", kvm->uart ? "has" : "has not");
		return KM_ERR_CORRUPT;
	}
	if (r == 1)
		return 0;
	if ((r = uart__set_state(kvm->uart, &us)) != 0)
		log_error("the saved console UART state is not one a UART can be in");
	return r;
}

/* After the irqchip too (the disk's IRQ line); a record and a VM must agree on having a disk. */
static int state__load_disk(struct kvm *kvm, const struct state_fields *f)
{
	int r;

	if ((f->data[ST_VM_DISK] != NULL) != (kvm->blk != NULL)) {
		log_error("the saved VM %s a disk and this one %s", f->data[ST_VM_DISK] ? "has" :
			  "has no", kvm->blk ? "has" : "has not");
		return KM_ERR_CORRUPT;
	}
	if (!kvm->blk)
		return 0;
	if ((r = virtio_blk__load(kvm->blk, f->data[ST_VM_DISK], f->len[ST_VM_DISK])) != 0)
		log_error("the saved state of disk %s: %s", virtio_blk__path(kvm->blk),
			  km_strerror(r));
	return r;
}

int state__load_vm(struct kvm *kvm, const uint8_t *payload, uint32_t len)
{
	static const uint32_t chips[3][2] = {
		{ ST_VM_PIC_MASTER, KVM_IRQCHIP_PIC_MASTER },
		{ ST_VM_PIC_SLAVE, KVM_IRQCHIP_PIC_SLAVE },
		{ ST_VM_IOAPIC, KVM_IRQCHIP_IOAPIC },
	};
	struct state_fields *f;
	struct kvm_clock_data clock;
	unsigned int i;
	int r;

	if ((r = state__index(payload, len, &f)) != 0)
		return r;
	if ((r = state__field(f, ST_VM_CLOCK, &clock, sizeof(clock))) < 0)
		goto out;
	if (r == 0) {
		struct kvm_clock_data set = { .clock = clock.clock };

		/* Only the clock value: the other fields describe the old host. */
		if (ioctl(kvm->vm_fd, KVM_SET_CLOCK, &set) < 0) {
			r = state__ioctl_fail(NULL, "KVM_SET_CLOCK");
			goto out;
		}
	}
	if (!kvm->cfg.irqchip) {
		r = 0;
		goto out;
	}
	for (i = 0; i < 3; i++) {
		struct kvm_irqchip c;

		r = state__field(f, chips[i][0], &c, sizeof(c));
		if (r < 0)
			goto out;
		if (r == 1)
			continue;
		if (c.chip_id != chips[i][1]) {
			r = KM_ERR_CORRUPT;
			goto out;
		}
		if (ioctl(kvm->vm_fd, KVM_SET_IRQCHIP, &c) < 0) {
			r = state__ioctl_fail(NULL, "KVM_SET_IRQCHIP");
			goto out;
		}
	}
	{
		struct kvm_pit_state2 pit;

		r = state__field(f, ST_VM_PIT2, &pit, sizeof(pit));
		if (r < 0)
			goto out;
		if (r == 0 && ioctl(kvm->vm_fd, KVM_SET_PIT2, &pit) < 0) {
			r = state__ioctl_fail(NULL, "KVM_SET_PIT2");
			goto out;
		}
	}
	if ((r = state__load_uart(kvm, f)) != 0)
		goto out;
	r = state__load_disk(kvm, f);
out:
	free(f);
	return r;
}

int state__save_config(struct kvm *kvm, struct buf *payload)
{
	struct kvm_cpuid2 *c;
	unsigned int i;
	int r;

	if ((r = rec_put_field_u64(payload, ST_CFG_MEM_SIZE, kvm->mem.size)) ||
	    (r = rec_put_field_u64(payload, ST_CFG_NR_VCPUS, kvm->nr_cpus)) ||
	    (r = rec_put_field_u64(payload, ST_CFG_IRQCHIP, kvm->cfg.irqchip)))
		return r;
	/* Absent for a workload guest: what older readers expect. */
	if (kvm->linux_guest &&
	    (r = rec_put_field_u64(payload, ST_CFG_PLATFORM, STATE_PLATFORM_PC)) != 0)
		return r;
	if (kvm->blk) {
		char abs[PATH_MAX];
		const char *path = virtio_blk__path(kvm->blk);

		/* Absolute: the destination's working directory is not ours. */
		if (realpath(path, abs))
			path = abs;
		if ((r = rec_put_field(payload, ST_CFG_DISK, path, (uint32_t)strlen(path))) != 0 ||
		    (r = rec_put_field_u64(payload, ST_CFG_DISK_RO, virtio_blk__ro(kvm->blk))) != 0 ||
		    (r = rec_put_field_u64(payload, ST_CFG_DISK_SIZE, virtio_blk__size(kvm->blk))) != 0)
			return r;
	}
	for (i = 0; i < kvm->mem.nr_slots; i++) {
		const struct kvm_slot *s = &kvm->mem.slots[i];
		uint64_t v[3] = { s->gpa, s->size, s->offset };

		if ((r = rec_put_field(payload, ST_CFG_SLOT, v, sizeof(v))) != 0)
			return r;
	}
	/*
	 * As given to vCPU 0: KVM_GET_SUPPORTED_CPUID reports the APIC id of
	 * whichever host CPU ran the ioctl, which must not make two captures
	 * of one VM differ.
	 */
	if ((r = x86__cpuid_for_vcpu(kvm->cpuid, 0, &c)) != 0)
		return r;
	r = rec_put_field(payload, ST_CFG_CPUID, c->entries,
			  c->nent * (uint32_t)sizeof(c->entries[0]));
	free(c);
	if (r)
		return r;
	return rec_put_field(payload, ST_CFG_NAME, kvm->name, (uint32_t)strlen(kvm->name));
}

int state__check_cpuid(struct kvm *kvm, const uint8_t *payload, uint32_t len, char *why,
		       size_t whylen)
{
	struct kvm_cpuid2 *offer = NULL;
	struct state_fields *f;
	uint32_t n;
	int r;

	if ((r = state__index(payload, len, &f)) != 0)
		return r;
	r = 0;
	if (f->data[ST_CFG_CPUID]) {
		n = f->len[ST_CFG_CPUID];
		if (n % sizeof(struct kvm_cpuid_entry2))
			r = KM_ERR_CORRUPT;
		else if ((r = x86__cpuid_for_vcpu(kvm->cpuid, 0, &offer)) == 0) {
			/* What this VMM adds to KVM's list is offered here too. */
			x86__cpuid_vmm_bits(kvm->vm_fd, offer);
			r = x86__cpuid_compatible((const void *)f->data[ST_CFG_CPUID],
						  n / (uint32_t)sizeof(struct kvm_cpuid_entry2),
						  offer, why, whylen);
		}
	}
	free(offer);
	free(f);
	return r;
}

int state__parse_config(const uint8_t *payload, uint32_t len, struct kvm_config *cfg)
{
	struct state_fields *f;
	uint64_t mem = 0, nr = 0, irq = 0;
	int r;

	if ((r = state__index(payload, len, &f)) != 0)
		return r;
	r = KM_ERR_CORRUPT;
	if (!f->data[ST_CFG_MEM_SIZE] || !f->data[ST_CFG_NR_VCPUS] ||
	    rec_field_u64(f->data[ST_CFG_MEM_SIZE], f->len[ST_CFG_MEM_SIZE], &mem) ||
	    rec_field_u64(f->data[ST_CFG_NR_VCPUS], f->len[ST_CFG_NR_VCPUS], &nr))
		goto out;
	if (f->data[ST_CFG_IRQCHIP] &&
	    rec_field_u64(f->data[ST_CFG_IRQCHIP], f->len[ST_CFG_IRQCHIP], &irq))
		goto out;
	if (nr < 1 || nr > KM_MAX_VCPUS || mem < KM_MIN_MEM || mem % (2ULL << 20))
		goto out;
	cfg->mem_size = mem;
	cfg->nr_vcpus = (unsigned int)nr;
	cfg->irqchip = irq != 0;
	r = 0;
out:
	free(f);
	return r;
}

int state__config_platform(const uint8_t *payload, uint32_t len, enum state_platform *out)
{
	uint64_t v;
	int r = rec_find_u64(payload, len, ST_CFG_PLATFORM, &v);

	if (r == KM_ERR_END) {
		*out = STATE_PLATFORM_WORKLOAD;
		return 0;
	}
	if (r != 0)
		return r;
	if (v != STATE_PLATFORM_WORKLOAD && v != STATE_PLATFORM_PC)
		return KM_ERR_UNSUPPORTED;
	*out = (enum state_platform)v;
	return 0;
}

static int state__put_record(struct buf *out, uint32_t type, struct buf *payload)
{
	return rec_put(out, type, buf_ptr(payload), (uint32_t)buf_len(payload));
}

int state__save_all(struct kvm *kvm, struct buf *out)
{
	struct buf *p = buf_new(REC_MAX_PAYLOAD);
	unsigned int i;
	int r;

	if (!p)
		return -ENOMEM;
	if ((r = state__save_config(kvm, p)) || (r = state__put_record(out, REC_VM_CONFIG, p)))
		goto out;
	buf_reset(p);
	if ((r = state__save_vm(kvm, p)) || (r = state__put_record(out, REC_VM_STATE, p)))
		goto out;
	for (i = 0; i < kvm->nr_cpus; i++) {
		buf_reset(p);
		if ((r = state__save_vcpu(kvm->cpus[i], p)) != 0 ||
		    (r = state__put_record(out, REC_VCPU_STATE, p)) != 0)
			goto out;
	}
out:
	buf_free(p);
	return r;
}

static int state__vcpu_id(const uint8_t *payload, uint32_t len, uint64_t *id)
{
	struct state_fields *f;
	int r;

	if ((r = state__index(payload, len, &f)) != 0)
		return r;
	r = f->data[ST_VCPU_ID] ?
	    rec_field_u64(f->data[ST_VCPU_ID], f->len[ST_VCPU_ID], id) : KM_ERR_CORRUPT;
	free(f);
	return r;
}

int state__load_record(struct kvm *kvm, struct state_loader *sl, uint32_t type,
		       const uint8_t *p, uint32_t len)
{
	enum state_platform platform;
	struct kvm_config cfg;
	uint64_t id;
	int r;

	switch (type) {
	case REC_VM_CONFIG:
		if ((r = state__parse_config(p, len, &cfg)) != 0 ||
		    (r = state__config_platform(p, len, &platform)) != 0)
			return r;
		if ((platform == STATE_PLATFORM_PC) != kvm->linux_guest) {
			log_error("the saved VM is %s; this VM is %s",
				  platform == STATE_PLATFORM_PC ? "a Linux guest's PC" :
				  "a workload guest", kvm->linux_guest ? "a Linux guest's PC" :
				  "a workload guest");
			return KM_ERR_INVALID;
		}
		if (cfg.mem_size != kvm->mem.size || cfg.nr_vcpus != kvm->nr_cpus ||
		    cfg.irqchip != kvm->cfg.irqchip) {
			log_error("saved VM has %llu bytes, %u vCPUs, irqchip %d; "
				  "this VM has %llu, %u, %d",
				  (unsigned long long)cfg.mem_size, cfg.nr_vcpus,
				  cfg.irqchip, (unsigned long long)kvm->mem.size,
				  kvm->nr_cpus, kvm->cfg.irqchip);
			return KM_ERR_INVALID;
		}
		sl->have_config = true;
		return 0;
	case REC_VM_STATE:
		return state__load_vm(kvm, p, len);
	case REC_VCPU_STATE:
		if ((r = state__vcpu_id(p, len, &id)) != 0)
			return r;
		if (id >= kvm->nr_cpus || (sl->loaded & (1ULL << id))) {
			log_error("vCPU state record for vCPU %llu: %s", (unsigned long long)id,
				  id >= kvm->nr_cpus ? "no such vCPU" : "given twice");
			return KM_ERR_CORRUPT;
		}
		if ((r = state__load_vcpu(kvm->cpus[id], p, len)) != 0)
			return r;
		sl->loaded |= 1ULL << id;
		sl->vcpus++;
		return 0;
	default:
		/* Other records (pages...) belong to other readers. */
		return 0;
	}
}

int state__load_complete(struct kvm *kvm, const struct state_loader *sl)
{
	return sl->have_config && sl->vcpus == kvm->nr_cpus ? 0 : KM_ERR_TRUNCATED;
}

int state__load_all(struct kvm *kvm, const uint8_t *data, size_t len)
{
	struct buf *in = buf_view(data, len);
	struct state_loader sl = { 0 };
	const uint8_t *p;
	uint32_t type, plen;
	int r = 0;

	if (!in)
		return -ENOMEM;
	while (buf_len(in) > 0 && r == 0)
		if ((r = rec_get(in, REC_MAX_PAYLOAD, &type, &p, &plen)) == 0)
			r = state__load_record(kvm, &sl, type, p, plen);
	if (r == 0)
		r = state__load_complete(kvm, &sl);
	buf_free(in);
	return r;
}

int state__advance_tsc(struct kvm *kvm, uint64_t ns)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m;
	struct kvm_clock_data clock, set = { 0 };
	unsigned int i;
	uint64_t khz, ticks;

	for (i = 0; i < kvm->nr_cpus; i++) {
		struct kvm_cpu *cpu = kvm->cpus[i];
		int k = ioctl(cpu->fd, KVM_GET_TSC_KHZ, 0);

		khz = k > 0 ? (uint64_t)k : kvm->tsc_khz;
		ticks = (uint64_t)((double)ns * (double)khz / 1e6);
		memset(&m, 0, sizeof(m));
		m.hdr.nmsrs = 1;
		m.e.index = 0x10;	/* IA32_TIME_STAMP_COUNTER */
		if (ioctl(cpu->fd, KVM_GET_MSRS, &m) != 1)
			return state__ioctl_fail(cpu, "KVM_GET_MSRS(TSC)");
		m.e.data += ticks;
		if (ioctl(cpu->fd, KVM_SET_MSRS, &m) != 1)
			return state__ioctl_fail(cpu, "KVM_SET_MSRS(TSC)");
	}
	/* kvmclock (what a Linux guest's clocks read) moves on with the TSC. */
	memset(&clock, 0, sizeof(clock));
	if (ioctl(kvm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return state__ioctl_fail(NULL, "KVM_GET_CLOCK");
	set.clock = clock.clock + ns;
	if (ioctl(kvm->vm_fd, KVM_SET_CLOCK, &set) < 0)
		return state__ioctl_fail(NULL, "KVM_SET_CLOCK");
	return 0;
}
