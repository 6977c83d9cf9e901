/* vCPU threads and the run loop. See kvm-cpu.h and the pause timeline in kvm.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "kvm/dirtylimit.h"
#include "kvm/ioport.h"
#include "kvm/kvm.h"
#include "kvm/kvm-cpu.h"
#include "kvm/x86/x86.h"

#define SIG_KICK SIGUSR1

static void kvm_cpu__kick_handler(int sig)
{
	(void)sig;	/* its only job is to make KVM_RUN return -EINTR */
}

int kvm_cpu__init_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kvm_cpu__kick_handler;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: the point is to interrupt KVM_RUN. */
	if (sigaction(SIG_KICK, &sa, NULL) < 0)
		return km_errno();
	return 0;
}

int kvm_cpu__create(struct kvm *kvm, unsigned int id,
		    const struct kvm_cpuid2 *cpuid, struct kvm_cpu **out)
{
	struct kvm_cpuid2 *mine = NULL;
	struct kvm_cpu *cpu;
	int r;

	cpu = calloc(1, sizeof(*cpu));
	if (!cpu)
		return -ENOMEM;
	cpu->kvm = kvm;
	cpu->id = id;
	cpu->run = MAP_FAILED;
	cpu->fd = ioctl(kvm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (cpu->fd < 0) {
		r = km_errno();
		log_error("KVM_CREATE_VCPU %u: %s", id, km_strerror(r));
		goto out_free;
	}
	cpu->run = mmap(NULL, kvm->vcpu_mmap_size, PROT_READ | PROT_WRITE,
			MAP_SHARED, cpu->fd, 0);
	if (cpu->run == MAP_FAILED) {
		r = km_errno();
		log_error("mmap kvm_run of vCPU %u: %s", id, km_strerror(r));
		goto out_free;
	}
	if ((r = x86__cpuid_for_vcpu(cpuid, id, &mine)) != 0)
		goto out_free;
	if (ioctl(cpu->fd, KVM_SET_CPUID2, mine) < 0) {
		r = km_errno();
		log_error("KVM_SET_CPUID2 on vCPU %u: %s", id, km_strerror(r));
		goto out_free;
	}
	cpu->cpuid_nent = mine->nent;
	free(mine);
	*out = cpu;
	return 0;

out_free:
	free(mine);
	kvm_cpu__destroy(cpu);
	return r;
}

void kvm_cpu__destroy(struct kvm_cpu *cpu)
{
	if (!cpu)
		return;
	if (cpu->run != MAP_FAILED && cpu->run)
		munmap(cpu->run, cpu->kvm->vcpu_mmap_size);
	if (cpu->fd >= 0)
		close(cpu->fd);
	free(cpu);
}

void kvm_cpu__kick(struct kvm_cpu *cpu)
{
	/* Order matters (see kvm.h): the request flag is already set. */
	__atomic_store_n(&cpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(cpu->thread, SIG_KICK);
}

int kvm_cpu__complete_io(struct kvm_cpu *cpu)
{
	int r;

	__atomic_store_n(&cpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	r = ioctl(cpu->fd, KVM_RUN, 0);
	__atomic_store_n(&cpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	if (r < 0 && errno != EINTR)
		return km_errno();
	return 0;
}

void kvm_cpu__dump(struct kvm_cpu *cpu, const char *why)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	log_error("vCPU %u: %s", cpu->id, why);
	if (ioctl(cpu->fd, KVM_GET_REGS, &regs) == 0) {
		log_error("  rip %016llx rsp %016llx rflags %016llx", regs.rip,
			  regs.rsp, regs.rflags);
		log_error("  rax %016llx rbx %016llx rcx %016llx rdx %016llx",
			  regs.rax, regs.rbx, regs.rcx, regs.rdx);
		log_error("  rsi %016llx rdi %016llx rbp %016llx", regs.rsi,
			  regs.rdi, regs.rbp);
	}
	if (ioctl(cpu->fd, KVM_GET_SREGS, &sregs) == 0) {
		log_error("  cr0 %016llx cr2 %016llx cr3 %016llx cr4 %016llx efer %llx",
			  sregs.cr0, sregs.cr2, sregs.cr3, sregs.cr4, sregs.efer);
		log_error("  cs %04x (dpl %u) ss %04x (dpl %u)", sregs.cs.selector,
			  sregs.cs.dpl, sregs.ss.selector, sregs.ss.dpl);
		if (sregs.cs.selector == 0xf000)
			log_error("  (these are reset values: on AMD, KVM resets a vCPU "
				  "that triple-faulted)");
	}
}

/* One KVM exit: what the loop should do next. */
static enum ioport_action kvm_cpu__handle_exit(struct kvm_cpu *cpu, struct km_ucall *uc)
{
	struct kvm_run *run = cpu->run;
	struct kvm *kvm = cpu->kvm;
	char why[256];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		atomic_fetch_add(&kvm->exits.io, 1);
		return ioport__handle(cpu, uc);
	case KVM_EXIT_MMIO:
		atomic_fetch_add(&kvm->exits.mmio, 1);
		return ioport__mmio(cpu, uc);
	case KVM_EXIT_INTR:
		atomic_fetch_add(&kvm->exits.intr, 1);
		return IOPORT_CONTINUE;
	case KVM_EXIT_DIRTY_RING_FULL:
		/* The vCPU may not run until its ring is collected and reset. */
		atomic_fetch_add(&kvm->exits.dirty_ring_full, 1);
		if (dirty__ring_full(&kvm->dirty, cpu) != 0) {
			kvm__request_stop(kvm, KVM_STOP_INTERNAL,
					  "vCPU %u: dirty ring full and cannot be harvested", cpu->id);
			return IOPORT_STOP;
		}
		return IOPORT_CONTINUE;
	case KVM_EXIT_HLT:
		/* Nothing can wake it: guests have no interrupts. */
		atomic_fetch_add(&kvm->exits.hlt, 1);
		kvm_cpu__dump(cpu, "halted, and nothing can wake it");
		kvm__request_stop(kvm, KVM_STOP_GUEST_FAIL, "vCPU %u halted", cpu->id);
		return IOPORT_STOP;
	case KVM_EXIT_SHUTDOWN:
		atomic_fetch_add(&kvm->exits.shutdown, 1);
		kvm_cpu__dump(cpu, "triple fault (shutdown)");
		kvm__request_stop(kvm, KVM_STOP_SHUTDOWN,
				  "vCPU %u: triple fault (the guest took an exception)",
				  cpu->id);
		return IOPORT_STOP;
	case KVM_EXIT_FAIL_ENTRY:
		atomic_fetch_add(&kvm->exits.fail_entry, 1);
		snprintf(why, sizeof(why), "VM entry failed, hardware reason 0x%llx",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		kvm_cpu__dump(cpu, why);
		kvm__request_stop(kvm, KVM_STOP_INTERNAL, "vCPU %u: %s", cpu->id, why);
		return IOPORT_STOP;
	case KVM_EXIT_INTERNAL_ERROR:
		atomic_fetch_add(&kvm->exits.internal_error, 1);
		snprintf(why, sizeof(why),
			 "KVM internal error, suberror %u (1 = emulation failed: "
			 "often a privileged or unsupported instruction)",
			 run->internal.suberror);
		kvm_cpu__dump(cpu, why);
		kvm__request_stop(kvm, KVM_STOP_INTERNAL, "vCPU %u: %s", cpu->id, why);
		return IOPORT_STOP;
	case KVM_EXIT_SYSTEM_EVENT:
		atomic_fetch_add(&kvm->exits.other, 1);
		kvm__request_stop(kvm, KVM_STOP_SHUTDOWN, "vCPU %u: system event %u",
				  cpu->id, run->system_event.type);
		return IOPORT_STOP;
	default:
		atomic_fetch_add(&kvm->exits.other, 1);
		snprintf(why, sizeof(why), "unexpected exit reason %u", run->exit_reason);
		kvm_cpu__dump(cpu, why);
		kvm__request_stop(kvm, KVM_STOP_INTERNAL, "vCPU %u: %s", cpu->id, why);
		return IOPORT_STOP;
	}
}

/*
 * Enters the guest once. 0 after an exit, 1 after -EINTR, <0 on failure
 * (the VM is then stopping, with the reason recorded).
 */
static int kvm_cpu__enter(struct kvm_cpu *cpu)
{
	int r;

	if (cpu->kvm->caps.sync_regs)
		cpu->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
	if (ioctl(cpu->fd, KVM_RUN, 0) < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 1;
		r = km_errno();
		kvm__request_stop(cpu->kvm, KVM_STOP_INTERNAL, "vCPU %u: KVM_RUN: %s",
				  cpu->id, km_strerror(r));
		return r;
	}
	return 0;
}

/* Parks until the pause ends; the caller has seen pause_req. */
static void kvm_cpu__park(struct kvm_cpu *cpu)
{
	struct kvm *kvm = cpu->kvm;
	int r;

	if ((r = kvm_cpu__complete_io(cpu)) != 0)
		log_warn("vCPU %u: completing I/O before pause: %s", cpu->id,
			 km_strerror(r));
	pthread_mutex_lock(&kvm->lock);
	cpu->parked = true;
	kvm->nr_parked++;
	pthread_cond_broadcast(&kvm->cond);
	while (atomic_load(&kvm->pause_req) && !atomic_load(&kvm->stop_req))
		pthread_cond_wait(&kvm->cond, &kvm->lock);
	cpu->parked = false;
	kvm->nr_parked--;
	pthread_mutex_unlock(&kvm->lock);
}

static void *kvm_cpu__thread(void *arg)
{
	struct kvm_cpu *cpu = arg;
	struct kvm *kvm = cpu->kvm;
	enum ioport_action a;
	struct km_ucall uc;
	sigset_t set;
	char name[16];
	int r;

	snprintf(name, sizeof(name), "vcpu%u", cpu->id);
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&set);
	sigaddset(&set, SIG_KICK);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	for (;;) {
		/* Cleared before the flags are read: see the timeline in kvm.h. */
		__atomic_store_n(&cpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		if (atomic_load(&kvm->stop_req))
			break;
		if (atomic_load(&kvm->pause_req)) {
			kvm_cpu__park(cpu);
			continue;
		}
		/* Over its dirty limit: this vCPU alone sleeps, the others run on. */
		if (atomic_load(&cpu->dl_sleep_until)) {
			dirtylimit__vcpu_sleep(cpu);
			continue;
		}
		r = kvm_cpu__enter(cpu);
		if (r == 1)
			continue;
		if (r < 0)
			break;
		a = kvm_cpu__handle_exit(cpu, &uc);
		if (a == IOPORT_UCALL)
			a = ioport__default_ucall(cpu, &uc);
		if (a == IOPORT_STOP)
			break;
		if (a == IOPORT_VCPU_DONE) {
			kvm_cpu__complete_io(cpu);
			cpu->finished = true;
			break;
		}
	}

	pthread_mutex_lock(&kvm->lock);
	kvm->nr_live--;
	pthread_cond_broadcast(&kvm->cond);
	pthread_mutex_unlock(&kvm->lock);
	if (cpu->finished) {
		unsigned int i, done = 0;

		for (i = 0; i < kvm->nr_cpus; i++)
			done += kvm->cpus[i]->finished;
		if (done == kvm->nr_cpus)
			kvm__request_stop(kvm, KVM_STOP_DONE, "every vCPU finished");
	}
	return NULL;
}

int kvm_cpu__start(struct kvm_cpu *cpu)
{
	sigset_t set, old;
	int r;

	/* The thread starts with the kick signal blocked and unblocks it itself. */
	sigemptyset(&set);
	sigaddset(&set, SIG_KICK);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	r = pthread_create(&cpu->thread, NULL, kvm_cpu__thread, cpu);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		log_error("vCPU %u: pthread_create: %s", cpu->id, strerror(r));
		return -r;
	}
	cpu->thread_started = true;
	return 0;
}

int kvm_cpu__run_until_ucall(struct kvm_cpu *cpu, struct km_ucall *uc)
{
	struct kvm *kvm = cpu->kvm;
	enum ioport_action a;
	int r;

	for (;;) {
		if (atomic_load(&kvm->stop_req))
			return KM_ERR_STATE;
		r = kvm_cpu__enter(cpu);
		if (r == 1)
			continue;
		if (r < 0)
			return r;
		a = kvm_cpu__handle_exit(cpu, uc);
		switch (a) {
		case IOPORT_UCALL:
			return 0;
		case IOPORT_CONTINUE:
			continue;
		case IOPORT_VCPU_DONE:
			cpu->finished = true;
			return KM_ERR_END;
		case IOPORT_STOP:
			return KM_ERR_GUEST;
		}
	}
}
