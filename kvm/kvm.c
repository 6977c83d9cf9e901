/* The VM lifecycle: create, start, pause/resume, stop, destroy. See kvm.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "kvm/kvm.h"
#include "kvm/dirtyrate.h"
#include "kvm/dirtylimit.h"
#include "kvm/lazymem.h"
#include "kvm/ioport.h"
#include "kvm/kvm-cpu.h"
#include "kvm/uart.h"
#include "kvm/virtio-blk.h"
#include "kvm/x86/x86.h"

#define KVM_DEV "/dev/kvm"

uint64_t kvm__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t kvm__wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t kvm__thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int kvm__check(struct kvm *kvm, int fd, long cap)
{
	int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);

	return r < 0 ? 0 : r;
}

static int kvm__read_caps(struct kvm *kvm)
{
	struct kvm_caps *c = &kvm->caps;
	int version = ioctl(kvm->sys_fd, KVM_GET_API_VERSION, 0);

	if (version != KVM_API_VERSION) {
		log_error("KVM API version %d, expected %d", version, KVM_API_VERSION);
		return KM_ERR_UNSUPPORTED;
	}
	c->sync_regs = kvm__check(kvm, kvm->vm_fd, KVM_CAP_SYNC_REGS);
	c->xsave2_size = kvm__check(kvm, kvm->vm_fd, KVM_CAP_XSAVE2);
	c->sregs2 = kvm__check(kvm, kvm->vm_fd, KVM_CAP_SREGS2);
	c->tsc_control = kvm__check(kvm, kvm->vm_fd, KVM_CAP_TSC_CONTROL);
	c->debugregs = kvm__check(kvm, kvm->vm_fd, KVM_CAP_DEBUGREGS);
	c->xcrs = kvm__check(kvm, kvm->vm_fd, KVM_CAP_XCRS);
	c->vcpu_events = kvm__check(kvm, kvm->vm_fd, KVM_CAP_VCPU_EVENTS);
	c->immediate_exit = kvm__check(kvm, kvm->vm_fd, KVM_CAP_IMMEDIATE_EXIT);
	c->nr_memslots = kvm__check(kvm, kvm->vm_fd, KVM_CAP_NR_MEMSLOTS);
	/* Pausing relies on immediate_exit (Linux 4.11+); without it we cannot promise it. */
	if (!c->immediate_exit) {
		log_error("KVM lacks KVM_CAP_IMMEDIATE_EXIT, needed to pause vCPUs safely");
		return KM_ERR_UNSUPPORTED;
	}
	if (kvm->cfg.irqchip && !kvm__check(kvm, kvm->vm_fd, KVM_CAP_IRQCHIP)) {
		log_error("KVM lacks KVM_CAP_IRQCHIP; run with --no-irqchip");
		return KM_ERR_UNSUPPORTED;
	}
	return 0;
}

static int kvm__create_irqchip(struct kvm *kvm)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	int r;

	if (ioctl(kvm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		r = km_errno();
		log_error("KVM_CREATE_IRQCHIP: %s", km_strerror(r));
		return r;
	}
	if (ioctl(kvm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		r = km_errno();
		log_error("KVM_CREATE_PIT2: %s", km_strerror(r));
		return r;
	}
	return 0;
}

/*
 * The console file: never through a symlink, and never in a directory
 * that others may write to (they could plant the file and read what the
 * guest prints, or swap it). stderr when none is given (kvm-run's and the
 * daemon's log: ioport.c marks the guest's lines there).
 */
static int kvm__open_console(struct kvm *kvm)
{
	const char *path = kvm->cfg.console_path;
	char dir[4096];
	const char *slash;
	struct stat st;
	int r;

	if (!path) {
		kvm->console_fd = STDERR_FILENO;
		kvm->console_marked = true;
		return 0;
	}
	slash = strrchr(path, '/');
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) + (slash == path) : 1,
		 slash ? path : ".");
	if (stat(dir, &st) < 0) {
		r = km_errno();
		log_error("console %s: %s: %s", path, dir, km_strerror(r));
		return r;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		log_error("console %s: the directory %s is writable by others: choose another",
			  path, dir);
		return KM_ERR_STATE;
	}
	kvm->console_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (kvm->console_fd < 0) {
		r = km_errno();
		log_error("console %s: %s", path, r == -ELOOP ? "is a symlink" : km_strerror(r));
		return r;
	}
	kvm->console_owned = true;
	return 0;
}

int kvm__create(const struct kvm_config *cfg, struct kvm **out)
{
	struct kvm *kvm;
	unsigned int i;
	int r;

	*out = NULL;
	if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > KM_MAX_VCPUS) {
		log_error("vCPU count must be 1 to %d", KM_MAX_VCPUS);
		return KM_ERR_INVALID;
	}
	kvm = calloc(1, sizeof(*kvm));
	if (!kvm)
		return -ENOMEM;
	kvm->sys_fd = kvm->vm_fd = kvm->console_fd = -1;
	kvm->mem.memfd = -1;
	rundir_name_init(&kvm->reservation);
	kvm->cfg = *cfg;
	snprintf(kvm->name, sizeof(kvm->name), "%s", cfg->name ? cfg->name : "vm");
	kvm->cfg.name = kvm->name;
	pthread_mutex_init(&kvm->lock, NULL);
	pthread_mutex_init(&kvm->console_lock, NULL);
	{
		pthread_condattr_t ca;

		/* Deadlines are CLOCK_MONOTONIC: wall-clock steps must not matter. */
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&kvm->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	kvm->state = KVM_STATE_CREATED;
	if ((r = progress__init(&kvm->progress)) != 0)
		goto out_fail;
	if ((r = kvm_cpu__init_signals()) != 0)
		goto out_fail;

	kvm->sys_fd = open(KVM_DEV, O_RDWR | O_CLOEXEC);
	if (kvm->sys_fd < 0) {
		r = km_errno();
		log_error("%s: %s", KVM_DEV, km_strerror(r));
		goto out_fail;
	}
	kvm->vm_fd = ioctl(kvm->sys_fd, KVM_CREATE_VM, 0);
	if (kvm->vm_fd < 0) {
		r = km_errno();
		log_error("KVM_CREATE_VM: %s", km_strerror(r));
		goto out_fail;
	}
	if ((r = kvm__read_caps(kvm)) != 0)
		goto out_fail;
	kvm->vcpu_mmap_size = ioctl(kvm->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (kvm->vcpu_mmap_size < (int)sizeof(struct kvm_run)) {
		r = kvm->vcpu_mmap_size < 0 ? km_errno() : KM_ERR_KVM;
		log_error("KVM_GET_VCPU_MMAP_SIZE: %s", km_strerror(r));
		goto out_fail;
	}
	/* Intel without unrestricted guest wants these set before any vCPU. */
	ioctl(kvm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000UL);
	if (kvm->cfg.irqchip && (r = kvm__create_irqchip(kvm)) != 0)
		goto out_fail;
	if (kvm->caps.xsave2_size)
		kvm__check(kvm, kvm->vm_fd, KVM_CAP_XSAVE2);	/* opts in to the large XSAVE */
	if ((r = memory__init(&kvm->mem, kvm->vm_fd, cfg->mem_size)) != 0)
		goto out_fail;
	/* Before the vCPUs: the dirty ring must be enabled before any exists. */
	if ((r = dirty__init(&kvm->dirty, kvm, cfg->dirty_backend, cfg->dirty_ring_bytes)) != 0)
		goto out_fail;
	kvm->mem.dirty = &kvm->dirty;
	if ((r = x86__supported_cpuid(kvm->sys_fd, &kvm->cpuid)) != 0)
		goto out_fail;
	for (i = 0; i < cfg->nr_vcpus; i++) {
		if ((r = kvm_cpu__create(kvm, i, kvm->cpuid, &kvm->cpus[i])) != 0)
			goto out_fail;
		kvm->nr_cpus++;
	}
	if ((r = dirty__init_vcpus(&kvm->dirty)) != 0)
		goto out_fail;
	r = ioctl(kvm->cpus[0]->fd, KVM_GET_TSC_KHZ, 0);
	kvm->tsc_khz = r > 0 ? (uint64_t)r : 0;
	if ((r = x86__probe_msrs(kvm, kvm->cpus[0])) != 0)
		goto out_fail;
	if ((r = kvm__open_console(kvm)) != 0)
		goto out_fail;
	*out = kvm;
	return 0;

out_fail:
	kvm__destroy(kvm);
	return r;
}

int kvm__setup_boot(struct kvm *kvm, const char *guest, const char *args,
		    uint64_t entry_gpa)
{
	unsigned int i;
	int r;

	if ((r = x86__setup_memory(kvm, guest, args)) != 0)
		return r;
	for (i = 0; i < kvm->nr_cpus; i++)
		if ((r = x86__setup_vcpu(kvm->cpus[i], entry_gpa)) != 0)
			return r;
	return 0;
}

int kvm__start(struct kvm *kvm)
{
	unsigned int i;
	int r = 0;

	pthread_mutex_lock(&kvm->lock);
	if (kvm->state != KVM_STATE_CREATED) {
		pthread_mutex_unlock(&kvm->lock);
		return KM_ERR_STATE;
	}
	kvm->state = KVM_STATE_RUNNING;
	kvm->start_ns = kvm__now_ns();
	/* Counted before the threads exist, so a pause cannot miss one. */
	kvm->nr_live = kvm->nr_cpus;
	pthread_mutex_unlock(&kvm->lock);
	for (i = 0; i < kvm->nr_cpus; i++) {
		if ((r = kvm_cpu__start(kvm->cpus[i])) != 0) {
			pthread_mutex_lock(&kvm->lock);
			kvm->nr_live -= kvm->nr_cpus - i;
			pthread_cond_broadcast(&kvm->cond);
			pthread_mutex_unlock(&kvm->lock);
			kvm__request_stop(kvm, KVM_STOP_INTERNAL,
					  "cannot start vCPU %u thread", i);
			break;
		}
	}
	return r;
}

int kvm__start_paused(struct kvm *kvm)
{
	int r;

	/* Set before any thread exists: each parks before its first KVM_RUN. */
	kvm->holds |= KVM_HOLD_USER;
	atomic_store(&kvm->pause_req, 1);
	if ((r = kvm__start(kvm)) != 0)
		return r;
	return kvm__pause(kvm);
}

static void kvm__kick_all(struct kvm *kvm)
{
	unsigned int i;

	/* vCPUs sleeping in KM_HC_SLEEP wait on the condition, not in KVM_RUN. */
	pthread_mutex_lock(&kvm->lock);
	pthread_cond_broadcast(&kvm->cond);
	pthread_mutex_unlock(&kvm->lock);

	for (i = 0; i < kvm->nr_cpus; i++)
		if (kvm->cpus[i]->thread_started)
			kvm_cpu__kick(kvm->cpus[i]);
}

/* RUNNING or PAUSED as the holds say (the throttle's, a checkpoint's and an inspection's do not show); under kvm->lock. */
static void kvm__update_state(struct kvm *kvm)
{
	if (kvm->state != KVM_STATE_RUNNING && kvm->state != KVM_STATE_PAUSED)
		return;
	kvm->state = kvm->holds & ~(KVM_HOLD_THROTTLE | KVM_HOLD_CHECKPOINT | KVM_HOLD_INSPECT) ?
		     KVM_STATE_PAUSED : KVM_STATE_RUNNING;
}

int kvm__hold(struct kvm *kvm, unsigned int hold)
{
	pthread_mutex_lock(&kvm->lock);
	if (kvm->state == KVM_STATE_STOPPED || kvm->state == KVM_STATE_CREATED) {
		pthread_mutex_unlock(&kvm->lock);
		return kvm->state == KVM_STATE_CREATED ? 0 : KM_ERR_STATE;
	}
	kvm->holds |= hold;
	atomic_store(&kvm->pause_req, 1);
	pthread_mutex_unlock(&kvm->lock);

	kvm__kick_all(kvm);

	pthread_mutex_lock(&kvm->lock);
	/* Parked or exited vCPUs both count: neither is inside KVM_RUN. */
	while (kvm->nr_parked < kvm->nr_live)
		pthread_cond_wait(&kvm->cond, &kvm->lock);
	kvm__update_state(kvm);
	pthread_mutex_unlock(&kvm->lock);
	return 0;
}

int kvm__release(struct kvm *kvm, unsigned int hold)
{
	pthread_mutex_lock(&kvm->lock);
	if (kvm->state == KVM_STATE_STOPPED) {
		pthread_mutex_unlock(&kvm->lock);
		return KM_ERR_STATE;
	}
	kvm->holds &= ~hold;
	/* The vCPUs run again only when nobody holds them. */
	if (!kvm->holds)
		atomic_store(&kvm->pause_req, 0);
	kvm__update_state(kvm);
	pthread_cond_broadcast(&kvm->cond);
	pthread_mutex_unlock(&kvm->lock);
	return 0;
}

unsigned int kvm__holds(struct kvm *kvm)
{
	unsigned int h;

	pthread_mutex_lock(&kvm->lock);
	h = kvm->holds;
	pthread_mutex_unlock(&kvm->lock);
	return h;
}

int kvm__pause(struct kvm *kvm)
{
	return kvm__hold(kvm, KVM_HOLD_USER);
}

int kvm__resume(struct kvm *kvm)
{
	return kvm__release(kvm, KVM_HOLD_USER);
}

void kvm__request_stop(struct kvm *kvm, enum kvm_stop_reason reason,
		       const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&kvm->lock);
	if (kvm->stop_reason == KVM_STOP_NONE) {
		kvm->stop_reason = reason;
		va_start(ap, fmt);
		vsnprintf(kvm->stop_detail, sizeof(kvm->stop_detail), fmt, ap);
		va_end(ap);
	}
	atomic_store(&kvm->stop_req, 1);
	kvm->state = KVM_STATE_STOPPED;
	pthread_cond_broadcast(&kvm->cond);
	pthread_mutex_unlock(&kvm->lock);
	kvm__kick_all(kvm);
}

int kvm__wait_stopped(struct kvm *kvm, uint64_t deadline_ns)
{
	struct timespec ts;
	int r = 0;

	pthread_mutex_lock(&kvm->lock);
	while (kvm->state != KVM_STATE_STOPPED) {
		if (!deadline_ns) {
			pthread_cond_wait(&kvm->cond, &kvm->lock);
			continue;
		}
		if (kvm__now_ns() >= deadline_ns) {
			r = KM_ERR_TIMEOUT;
			break;
		}
		/* kvm->cond uses CLOCK_MONOTONIC (set in kvm__create). */
		ts.tv_sec = deadline_ns / 1000000000ULL;
		ts.tv_nsec = deadline_ns % 1000000000ULL;
		pthread_cond_timedwait(&kvm->cond, &kvm->lock, &ts);
	}
	pthread_mutex_unlock(&kvm->lock);
	return r;
}

void kvm__join(struct kvm *kvm)
{
	unsigned int i;

	for (i = 0; i < kvm->nr_cpus; i++) {
		struct kvm_cpu *cpu = kvm->cpus[i];

		if (cpu && cpu->thread_started) {
			pthread_join(cpu->thread, NULL);
			cpu->thread_started = false;
		}
	}
}

int kvm__guest_check(struct kvm *kvm, unsigned int timeout_ms,
		     uint64_t *pages, uint64_t *bad)
{
	uint64_t deadline = kvm__now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	struct timespec ts;
	unsigned int i, want;
	int r = 0;

	pthread_mutex_lock(&kvm->lock);
	if (kvm->state != KVM_STATE_RUNNING) {
		pthread_mutex_unlock(&kvm->lock);
		return KM_ERR_STATE;
	}
	if (atomic_load(&kvm->guest_req) != KM_REQ_NONE) {
		pthread_mutex_unlock(&kvm->lock);
		return KM_ERR_STATE;	/* another check is in flight */
	}
	kvm->check_answers = 0;
	kvm->check_pages = kvm->check_bad = 0;
	for (i = 0; i < kvm->nr_cpus; i++)
		kvm->cpus[i]->answered_check = false;
	atomic_store(&kvm->guest_req, KM_REQ_CHECK);
	pthread_cond_broadcast(&kvm->cond);	/* wakes vCPUs sleeping in KM_HC_SLEEP */
	for (;;) {
		want = 0;
		for (i = 0; i < kvm->nr_cpus; i++)
			if (!kvm->cpus[i]->finished)
				want++;
		if (kvm->check_answers >= want)
			break;
		if (kvm->state == KVM_STATE_STOPPED || kvm__now_ns() >= deadline) {
			r = kvm->state == KVM_STATE_STOPPED ? KM_ERR_STATE : KM_ERR_TIMEOUT;
			break;
		}
		ts.tv_sec = deadline / 1000000000ULL;
		ts.tv_nsec = deadline % 1000000000ULL;
		pthread_cond_timedwait(&kvm->cond, &kvm->lock, &ts);
	}
	atomic_store(&kvm->guest_req, KM_REQ_NONE);
	*pages = kvm->check_pages;
	*bad = kvm->check_bad;
	pthread_mutex_unlock(&kvm->lock);
	return r;
}

void kvm__destroy(struct kvm *kvm)
{
	unsigned int i;

	if (!kvm)
		return;
	if (kvm->state == KVM_STATE_RUNNING || kvm->state == KVM_STATE_PAUSED) {
		kvm__request_stop(kvm, KVM_STOP_QUIT, "VM destroyed");
		kvm->holds = 0;
		atomic_store(&kvm->pause_req, 0);
	}
	kvm__join(kvm);
	/* After the vCPUs: one may wait on a page only the lazy restore's thread brings. */
	lazymem__stop(kvm);
	uart__destroy(kvm->uart);
	virtio_blk__destroy(kvm->blk);
	ioport__console_end(kvm);
	dirtyrate__stop(kvm);
	dirtylimit__stop(kvm);
	dirty__destroy(&kvm->dirty);
	for (i = 0; i < KM_MAX_VCPUS; i++)
		kvm_cpu__destroy(kvm->cpus[i]);
	memory__destroy(&kvm->mem);
	if (kvm->vm_fd >= 0)
		close(kvm->vm_fd);
	if (kvm->sys_fd >= 0)
		close(kvm->sys_fd);
	if (kvm->console_owned)
		close(kvm->console_fd);
	free(kvm->cpuid);
	free(kvm->msr_index);
	rundir_release(&kvm->reservation);
	progress__destroy(&kvm->progress);
	pthread_cond_destroy(&kvm->cond);
	pthread_mutex_destroy(&kvm->console_lock);
	pthread_mutex_destroy(&kvm->lock);
	free(kvm);
}

/* Waits for SIGINT/SIGTERM/SIGHUP (blocked everywhere) and stops the VM. */
static void *kvm__signal_thread(void *arg)
{
	struct kvm *kvm = arg;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (sigwait(&set, &sig) == 0)
		kvm__request_stop(kvm, KVM_STOP_QUIT, "signal %s", strsignal(sig));
	return NULL;
}

int kvm__stop_on_signals(struct kvm *kvm)
{
	pthread_t t;
	int r;

	if ((r = pthread_create(&t, NULL, kvm__signal_thread, kvm)) != 0)
		return -r;
	pthread_detach(t);
	return 0;
}

const char *kvm__state_name(enum kvm_run_state s)
{
	switch (s) {
	case KVM_STATE_CREATED: return "prelaunch";
	case KVM_STATE_RUNNING: return "running";
	case KVM_STATE_PAUSED: return "paused";
	case KVM_STATE_STOPPED: return "shutdown";
	}
	return "unknown";
}

const char *kvm__stop_reason_name(enum kvm_stop_reason r)
{
	switch (r) {
	case KVM_STOP_NONE: return "none";
	case KVM_STOP_DONE: return "guest-done";
	case KVM_STOP_QUIT: return "quit";
	case KVM_STOP_GUEST_FAIL: return "guest-failed";
	case KVM_STOP_SHUTDOWN: return "triple-fault";
	case KVM_STOP_INTERNAL: return "internal-error";
	case KVM_STOP_MIGRATED: return "migrated";
	case KVM_STOP_POWEROFF: return "poweroff";
	case KVM_STOP_RESET: return "reset";
	}
	return "unknown";
}
