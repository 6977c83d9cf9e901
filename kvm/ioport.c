/*
 * Port I/O: COM1 output and the hypercalls (guest/abi.h). Arguments come in
 * registers, which KVM_CAP_SYNC_REGS hands over in the kvm_run page without
 * another ioctl; every guest address is bounded by memory__hva().
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "kvm/ioport.h"
#include "kvm/kvm.h"
#include "kvm/kvm-cpu.h"
#include "kvm/uart.h"
#include "kvm/virtio-blk.h"
#include "kvm/x86/linux.h"

#define SERIAL_LSR		(KM_PORT_SERIAL + 5)
#define SERIAL_LSR_THRE_TEMT	0x60	/* transmitter empty: a polling guest may write */
#define CONSOLE_MAX		4096
#define SLEEP_MAX_US		1000000ULL

static int ioport__regs(struct kvm_cpu *cpu, struct kvm_regs *regs)
{
	if (cpu->kvm->caps.sync_regs && (cpu->run->kvm_valid_regs & KVM_SYNC_X86_REGS)) {
		*regs = cpu->run->s.regs.regs;
		return 0;
	}
	if (ioctl(cpu->fd, KVM_GET_REGS, regs) < 0)
		return km_errno();
	return 0;
}

static void ioport__write_all(int fd, const uint8_t *b, size_t len)
{
	ssize_t n;

	/* Console output is best effort: a full pipe must not stop the guest for long. */
	while (len > 0) {
		n = write(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		b += n;
		len -= (size_t)n;
	}
}

/* Writes the gathered line, marked, with one write. Under console_lock. */
static void ioport__console_flush(struct kvm *kvm)
{
	char out[KVM_CONSOLE_LINE + 80];
	int n;

	if (kvm->console_len == 0)
		return;
	n = snprintf(out, sizeof(out), "guest %.48s| %.*s\n", kvm->name, (int)kvm->console_len,
		     kvm->console_line);
	if (n > 0)
		ioport__write_all(kvm->console_fd, (const uint8_t *)out,
				  (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1);
	kvm->console_len = 0;
}

/*
 * Guest bytes for a log: gathered into lines (printable ASCII and tab as
 * they are, anything else as \xNN), each written marked and whole when
 * the guest ends it, or when it grows too long.
 */
static void ioport__console_marked(struct kvm *kvm, const uint8_t *b, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (b[i] == '\n') {
			if (kvm->console_len == 0)
				kvm->console_line[kvm->console_len++] = ' ';
			ioport__console_flush(kvm);
			continue;
		}
		if (kvm->console_len + 4 > sizeof(kvm->console_line))
			ioport__console_flush(kvm);
		if (b[i] == '\t' || (b[i] >= 0x20 && b[i] < 0x7f))
			kvm->console_line[kvm->console_len++] = (char)b[i];
		else
			kvm->console_len += (unsigned int)snprintf(kvm->console_line + kvm->console_len,
				sizeof(kvm->console_line) - kvm->console_len, "\\x%02x", b[i]);
	}
}

/* What the guest left unfinished goes out as a line of its own. */
void ioport__console_end(struct kvm *kvm)
{
	pthread_mutex_lock(&kvm->console_lock);
	if (kvm->console_marked)
		ioport__console_flush(kvm);
	pthread_mutex_unlock(&kvm->console_lock);
}

void ioport__console_write(struct kvm *kvm, const void *p, size_t len)
{
	pthread_mutex_lock(&kvm->console_lock);
	if (kvm->console_marked)
		ioport__console_marked(kvm, p, len);
	else
		ioport__write_all(kvm->console_fd, p, len);
	pthread_mutex_unlock(&kvm->console_lock);
}

/* The request this vCPU has not yet been given an answer to. */
static uint32_t ioport__pending_req(struct kvm_cpu *cpu)
{
	int req = atomic_load(&cpu->kvm->guest_req);

	if (req == KM_REQ_CHECK && !cpu->answered_check)
		return KM_REQ_CHECK;
	return KM_REQ_NONE;
}

static void ioport__sleep(struct kvm_cpu *cpu, uint64_t us)
{
	struct kvm *kvm = cpu->kvm;
	uint64_t deadline;
	struct timespec ts;

	if (us > SLEEP_MAX_US)
		us = SLEEP_MAX_US;
	deadline = kvm__now_ns() + us * 1000ULL;
	ts.tv_sec = deadline / 1000000000ULL;
	ts.tv_nsec = deadline % 1000000000ULL;
	pthread_mutex_lock(&kvm->lock);
	while (!atomic_load(&kvm->pause_req) && !atomic_load(&kvm->stop_req) &&
	       ioport__pending_req(cpu) == KM_REQ_NONE &&
	       kvm__now_ns() < deadline)
		pthread_cond_timedwait(&kvm->cond, &kvm->lock, &ts);
	pthread_mutex_unlock(&kvm->lock);
}

static void ioport__check_result(struct kvm_cpu *cpu, uint64_t pages, uint64_t bad)
{
	struct kvm *kvm = cpu->kvm;

	pthread_mutex_lock(&kvm->lock);
	if (atomic_load(&kvm->guest_req) == KM_REQ_CHECK && !cpu->answered_check) {
		cpu->answered_check = true;
		kvm->check_pages += pages;
		kvm->check_bad += bad;
		kvm->check_answers++;
		pthread_cond_broadcast(&kvm->cond);
	}
	pthread_mutex_unlock(&kvm->lock);
}

static enum ioport_action ioport__hypercall(struct kvm_cpu *cpu, unsigned int nr,
					    uint32_t *ret, struct km_ucall *uc)
{
	struct kvm *kvm = cpu->kvm;
	struct kvm_regs regs;
	const void *p;
	int r;

	if ((r = ioport__regs(cpu, &regs)) != 0) {
		kvm__request_stop(kvm, KVM_STOP_INTERNAL, "vCPU %u: KVM_GET_REGS: %s",
				  cpu->id, km_strerror(r));
		return IOPORT_STOP;
	}
	atomic_fetch_add(&kvm->exits.hypercalls, 1);
	*ret = KM_REQ_NONE;
	switch (nr) {
	case KM_HC_CONSOLE:
		p = memory__hva(&kvm->mem, regs.rdi, regs.rsi);
		if (p && regs.rsi <= CONSOLE_MAX)
			ioport__console_write(kvm, p, regs.rsi);
		else
			log_warn("vCPU %u: console text at 0x%llx+%llu is out of bounds",
				 cpu->id, regs.rdi, regs.rsi);
		break;
	case KM_HC_PROGRESS:
		progress__record(&kvm->progress, cpu->id, regs.rdi, regs.r8);
		break;
	case KM_HC_SLEEP:
		ioport__sleep(cpu, regs.rdi);
		break;
	case KM_HC_CHECK_RESULT:
		ioport__check_result(cpu, regs.rdi, regs.rsi);
		break;
	case KM_HC_UCALL:
		p = memory__hva(&kvm->mem, regs.rdi, sizeof(*uc));
		if (!p) {
			kvm__request_stop(kvm, KVM_STOP_GUEST_FAIL,
					  "vCPU %u: ucall struct at 0x%llx is out of bounds",
					  cpu->id, regs.rdi);
			return IOPORT_STOP;
		}
		memcpy(uc, p, sizeof(*uc));
		uc->file[sizeof(uc->file) - 1] = 0;
		uc->msg[sizeof(uc->msg) - 1] = 0;
		*ret = ioport__pending_req(cpu);
		return IOPORT_UCALL;
	case KM_HC_DONE:
		log_debug("vCPU %u: guest done, status %llu", cpu->id, regs.rdi);
		if (regs.rdi != 0) {
			kvm__request_stop(kvm, KVM_STOP_GUEST_FAIL,
					  "vCPU %u: guest finished with status %llu",
					  cpu->id, regs.rdi);
			return IOPORT_STOP;
		}
		return IOPORT_VCPU_DONE;
	case KM_HC_FAIL: {
		char msg[256] = "(unreadable message)";

		p = memory__hva(&kvm->mem, regs.rdi, regs.rsi);
		if (p) {
			size_t n = regs.rsi < sizeof(msg) - 1 ? regs.rsi : sizeof(msg) - 1;

			memcpy(msg, p, n);
			msg[n] = 0;
		}
		kvm__request_stop(kvm, KVM_STOP_GUEST_FAIL, "vCPU %u: guest failed: %s",
				  cpu->id, msg);
		return IOPORT_STOP;
	}
	default:
		log_warn("vCPU %u: unknown hypercall %u", cpu->id, nr);
		*ret = (uint32_t)-1;
		return IOPORT_CONTINUE;
	}
	*ret = ioport__pending_req(cpu);
	return IOPORT_CONTINUE;
}

/*
 * The ports of a Linux guest's PC (x86/linux.h): COM1, ACPI power off,
 * the i8042's reset. Anything else reads as all ones (no device), which is
 * what the kernel expects of an empty slot.
 */
static enum ioport_action ioport__platform(struct kvm_cpu *cpu, uint8_t *data)
{
	struct kvm_run *run = cpu->run;
	struct kvm *kvm = cpu->kvm;
	bool out = run->io.direction == KVM_EXIT_IO_OUT;
	uint16_t port = run->io.port;
	uint32_t i;

	if (kvm->uart && uart__owns(port) && run->io.size == 1) {
		/* rep outsb/insb arrive as count bytes; each is one access. */
		for (i = 0; i < run->io.count; i++)
			uart__io(kvm->uart, port, out, data + i);
		return IOPORT_CONTINUE;
	}
	if (port == LINUX_PORT_SLEEP_CTL && out && (data[0] & LINUX_SLEEP_EN)) {
		kvm__request_stop(kvm, KVM_STOP_POWEROFF, "the guest powered off (vCPU %u)",
				  cpu->id);
		return IOPORT_STOP;
	}
	if (port == LINUX_PORT_I8042_CMD && out && data[0] == LINUX_I8042_RESET) {
		kvm__request_stop(kvm, KVM_STOP_RESET, "the guest reset the machine (vCPU %u)",
				  cpu->id);
		return IOPORT_STOP;
	}
	if (!out) {
		/* WAK_STS, so a sleep that somehow returns is seen as woken; the i8042 is never busy. */
		if (port == LINUX_PORT_SLEEP_STS)
			memset(data, 0x80, (size_t)run->io.size * run->io.count);
		else if (port == LINUX_PORT_I8042_CMD)
			memset(data, 0, (size_t)run->io.size * run->io.count);
		else
			memset(data, 0xff, (size_t)run->io.size * run->io.count);
	}
	log_debug("vCPU %u: %s port 0x%x (%u bytes) on a Linux guest", cpu->id,
		  out ? "out to" : "in from", port, run->io.size);
	return IOPORT_CONTINUE;
}

enum ioport_action ioport__handle(struct kvm_cpu *cpu, struct km_ucall *uc)
{
	struct kvm_run *run = cpu->run;
	struct kvm *kvm = cpu->kvm;
	uint64_t bytes = (uint64_t)run->io.size * run->io.count;
	uint8_t *data;
	uint32_t ret;
	enum ioport_action a;

	/* data_offset comes from the kernel, but bound it like anything else. */
	if (run->io.data_offset > (uint64_t)kvm->vcpu_mmap_size ||
	    bytes > (uint64_t)kvm->vcpu_mmap_size - run->io.data_offset) {
		kvm__request_stop(kvm, KVM_STOP_INTERNAL, "vCPU %u: bad I/O exit layout",
				  cpu->id);
		return IOPORT_STOP;
	}
	data = (uint8_t *)run + run->io.data_offset;
	if (kvm->linux_guest)
		return ioport__platform(cpu, data);
	if (run->io.port >= KM_PORT_HC && run->io.port < KM_PORT_HC + KM_PORT_HC_COUNT) {
		if (run->io.direction != KVM_EXIT_IO_IN || run->io.size != 4 ||
		    run->io.count != 1) {
			log_warn("vCPU %u: hypercall port 0x%x used without a 32-bit in",
				 cpu->id, run->io.port);
			return IOPORT_CONTINUE;
		}
		a = ioport__hypercall(cpu, run->io.port - KM_PORT_HC, &ret, uc);
		memcpy(data, &ret, 4);
		return a;
	}
	if (run->io.port == KM_PORT_SERIAL && run->io.direction == KVM_EXIT_IO_OUT) {
		ioport__console_write(kvm, data, bytes);
		return IOPORT_CONTINUE;
	}
	if (run->io.direction == KVM_EXIT_IO_IN) {
		/* No device: all ones, except that COM1 says it can always send. */
		memset(data, run->io.port == SERIAL_LSR ? SERIAL_LSR_THRE_TEMT : 0xff, bytes);
		if (run->io.port == SERIAL_LSR)
			return IOPORT_CONTINUE;
	}
	log_debug("vCPU %u: %s port 0x%x ignored", cpu->id,
		  run->io.direction == KVM_EXIT_IO_IN ? "in from" : "out to", run->io.port);
	return IOPORT_CONTINUE;
}

enum ioport_action ioport__mmio(struct kvm_cpu *cpu, struct km_ucall *uc)
{
	struct kvm_run *run = cpu->run;
	uint64_t a = run->mmio.phys_addr;
	enum ioport_action act;
	uint32_t ret;

	if (cpu->kvm->linux_guest) {
		/* A Linux guest's MMIO devices; the workload hypercall page is not its. */
		if (cpu->kvm->blk && virtio_blk__owns(cpu->kvm->blk, a) && run->mmio.len <= 8) {
			virtio_blk__mmio(cpu->kvm->blk, a, run->mmio.is_write, run->mmio.data,
					 run->mmio.len);
			return IOPORT_CONTINUE;
		}
		goto ignore;
	}
	if (a >= KM_MMIO_HC && a < KM_MMIO_HC + 4 * KM_PORT_HC_COUNT) {
		if (run->mmio.is_write || run->mmio.len != 4 || (a - KM_MMIO_HC) % 4) {
			log_warn("vCPU %u: hypercall MMIO 0x%llx used without an aligned 32-bit read",
				 cpu->id, (unsigned long long)a);
			return IOPORT_CONTINUE;
		}
		act = ioport__hypercall(cpu, (unsigned int)((a - KM_MMIO_HC) / 4), &ret, uc);
		memcpy(run->mmio.data, &ret, 4);
		return act;
	}
	if (a == KM_MMIO_SERIAL && run->mmio.is_write) {
		ioport__console_write(cpu->kvm, run->mmio.data,
				      run->mmio.len <= 8 ? run->mmio.len : 8);
		return IOPORT_CONTINUE;
	}
	/* No other device: reads see all ones, writes vanish. */
ignore:
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
	log_debug("vCPU %u: MMIO %s at 0x%llx ignored", cpu->id,
		  run->mmio.is_write ? "write" : "read", (unsigned long long)a);
	return IOPORT_CONTINUE;
}

enum ioport_action ioport__default_ucall(struct kvm_cpu *cpu, const struct km_ucall *uc)
{
	struct kvm *kvm = cpu->kvm;

	switch (uc->cmd) {
	case KM_UCALL_SYNC:
		log_debug("vCPU %u: guest sync %llu", cpu->id, uc->args[0]);
		return IOPORT_CONTINUE;
	case KM_UCALL_PRINT:
		ioport__console_write(kvm, uc->msg, strnlen(uc->msg, sizeof(uc->msg)));
		return IOPORT_CONTINUE;
	case KM_UCALL_DONE:
		return IOPORT_VCPU_DONE;
	case KM_UCALL_ASSERT:
		kvm__request_stop(kvm, KVM_STOP_GUEST_FAIL,
				  "vCPU %u: guest assertion failed: %s at %s:%llu (0x%llx, 0x%llx)",
				  cpu->id, uc->msg, uc->file, uc->args[0], uc->args[1],
				  uc->args[2]);
		return IOPORT_STOP;
	default:
		kvm__request_stop(kvm, KVM_STOP_GUEST_FAIL, "vCPU %u: unknown ucall %llu",
				  cpu->id, uc->cmd);
		return IOPORT_STOP;
	}
}
