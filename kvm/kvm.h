/*
 * The VM: one KVM VM, its guest memory, its vCPU threads, and the state that
 * the control socket and the run loop share. One VM per process.
 */
#ifndef KM_KVM_H
#define KM_KVM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "kvm/guest/abi.h"
#include "kvm/dirty.h"
#include "rundir.h"
#include "kvm/memory.h"
#include "kvm/progress.h"

struct kvm_cpu;
struct control;
struct lazymem;
struct uart;
struct virtio_blk;

/* How a VM is made: what kvm-run's command line or a test asks for. */
struct kvm_config {
	uint64_t mem_size;		/* bytes, a multiple of 2 MiB, >= KM_MIN_MEM */
	unsigned int nr_vcpus;		/* 1 .. KM_MAX_VCPUS */
	bool irqchip;			/* in-kernel PIC/IOAPIC/LAPIC and PIT */
	const char *name;		/* for logs and the control socket, may be NULL */
	const char *console_path;	/* NULL: console to stderr */
	enum dirty_backend dirty_backend;
	uint32_t dirty_ring_bytes;	/* per vCPU, ring backend; 0: default */
};

enum kvm_run_state {
	KVM_STATE_CREATED,	/* vCPU threads not started */
	KVM_STATE_RUNNING,
	KVM_STATE_PAUSED,	/* all vCPUs parked outside KVM_RUN */
	KVM_STATE_STOPPED,	/* the guest finished, failed, or quit was asked */
};

/* Why a VM stopped, for kvm-run's exit status and query-status. */
enum kvm_stop_reason {
	KVM_STOP_NONE,
	KVM_STOP_DONE,		/* every vCPU reported KM_HC_DONE */
	KVM_STOP_QUIT,		/* quit command, signal, or --seconds ran out */
	KVM_STOP_GUEST_FAIL,	/* KM_HC_FAIL or a failed guest assertion */
	KVM_STOP_SHUTDOWN,	/* triple fault */
	KVM_STOP_INTERNAL,	/* FAIL_ENTRY, INTERNAL_ERROR, unknown exit, host error */
	KVM_STOP_MIGRATED,	/* the VM now runs on another host */
	KVM_STOP_POWEROFF,	/* a Linux guest powered off (ACPI S5) */
	KVM_STOP_RESET,		/* a Linux guest reset the machine (reboot): not restarted */
};

/* Exit counters, by reason; atomics because every vCPU thread adds to them. */
struct kvm_exit_stats {
	atomic_uint_fast64_t io, mmio, hlt, shutdown, intr, fail_entry,
			     internal_error, hypercalls, dirty_ring_full, other;
};

/* What the KVM on this host offers (KVM_CHECK_EXTENSION), read once. */
struct kvm_caps {
	int sync_regs;
	int xsave2_size;	/* 0: use struct kvm_xsave (4096 bytes) */
	int sregs2;
	int tsc_control;
	int debugregs;
	int xcrs;
	int vcpu_events;
	int immediate_exit;
	int nr_memslots;
};

#define KVM_CONSOLE_LINE	512	/* a marked console line: longer ones are split */

struct kvm {
	int sys_fd;			/* /dev/kvm */
	int vm_fd;
	int vcpu_mmap_size;
	struct kvm_caps caps;
	struct kvm_config cfg;
	char name[64];
	/*
	 * The name held in a run directory (lib/rundir.h), if any: taken before
	 * the VM may start, given up when it stops or has migrated away.
	 */
	struct rundir_name reservation;

	struct kvm_memory mem;
	struct dirty_tracker dirty;
	struct kvm_cpuid2 *cpuid;	/* what every vCPU is given (before APIC ids) */
	uint32_t *msr_index;		/* MSRs saved and restored for each vCPU */
	unsigned int nr_msr_index;

	struct kvm_cpu *cpus[KM_MAX_VCPUS];
	unsigned int nr_cpus;

	/*
	 * Pause protocol (kvm__pause / kvm__resume). Timeline of the race it
	 * closes: a vCPU thread checks pause_req (0) and is about to call
	 * KVM_RUN; the pauser sets pause_req, sets immediate_exit in that
	 * vCPU's kvm_run, and signals the thread. Whether the signal lands
	 * before KVM_RUN (immediate_exit makes KVM_RUN return -EINTR at once)
	 * or inside it (the signal makes it return -EINTR), the thread comes
	 * back to its loop, sees pause_req, re-enters KVM_RUN once with
	 * immediate_exit set so that a pending port read completes and the
	 * guest state is consistent, then parks. kvm__pause returns only when
	 * every live vCPU is parked, so none is inside KVM_RUN.
	 */
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* any change of the fields below */
	atomic_int pause_req;		/* holds != 0 */
	unsigned int holds;		/* enum kvm_hold bits: who keeps the vCPUs parked */
	unsigned int nr_parked;
	unsigned int nr_live;		/* vCPU threads that have not exited */
	enum kvm_run_state state;
	enum kvm_stop_reason stop_reason;
	char stop_detail[256];
	atomic_int stop_req;

	/* Requests for the guest (enum km_req), answered through hypercalls. */
	atomic_int guest_req;
	unsigned int check_answers;
	uint64_t check_pages, check_bad;

	struct kvm_exit_stats exits;
	struct progress_log progress;
	uint64_t start_ns;		/* when the vCPUs were first started */
	uint64_t tsc_khz;

	int console_fd;
	bool console_owned;
	/*
	 * The console is a log (stderr) rather than a file of its own: the
	 * guest's output goes out in whole lines, each marked "guest NAME| "
	 * and written at once, control bytes escaped, so that a guest cannot
	 * forge the VMM's log lines nor continue one of its own after them.
	 */
	bool console_marked;
	char console_line[KVM_CONSOLE_LINE];	/* the marked line being gathered */
	unsigned int console_len;
	pthread_mutex_t console_lock;	/* vCPUs print one at a time */
	struct control *control;	/* the control socket, if any (control.c sets it) */
	struct lazymem *lazy;		/* a lazy restore bringing pages in (lazymem.c sets it) */
	/*
	 * A Linux guest (x86/linux.h): the PC platform's ports answer (the
	 * 16550, ACPI power off, i8042 reset) and the workload hypercall
	 * ports do not.
	 */
	bool linux_guest;
	struct uart *uart;		/* COM1 as a 16550 (uart.h), or NULL: COM1 is write-only */
	struct virtio_blk *blk;		/* a Linux guest's disk (virtio-blk.h), or NULL */
};

/*
 * Opens /dev/kvm, creates the VM, its memory and its vCPUs (not yet
 * running). On success *out owns everything; on failure everything made is
 * undone. Returns 0 or a negative error (KM_ERR_UNSUPPORTED with a log line
 * naming what is missing, -ENOENT if /dev/kvm does not exist).
 */
int kvm__create(const struct kvm_config *cfg, struct kvm **out);
/* Stops the vCPU threads if running, then frees everything. NULL-safe. */
void kvm__destroy(struct kvm *kvm);

/*
 * Prepares a fresh boot: page tables, GDT/TSS, boot info (with the guest
 * name and argument text) and every vCPU's registers for CPL3 entry at
 * entry_gpa. The image must already be in guest memory.
 */
int kvm__setup_boot(struct kvm *kvm, const char *guest, const char *args,
		    uint64_t entry_gpa);

/* Starts one thread per vCPU. The VM is RUNNING afterwards. */
int kvm__start(struct kvm *kvm);
/*
 * Starts the vCPU threads parked: no guest instruction runs until
 * kvm__resume. The VM is PAUSED afterwards (a migrated VM that was paused
 * at its source arrives paused).
 */
int kvm__start_paused(struct kvm *kvm);

/*
 * Who keeps the vCPUs parked. Each holder pauses and releases only its
 * own hold, and the vCPUs run again when no hold is left: so a throttle
 * ending does not undo a user's stop, and a user's cont cannot run a VM
 * that a migration is switching over.
 */
enum kvm_hold {
	KVM_HOLD_USER = 1U << 0,	/* stop/cont: kvm__pause, kvm__resume */
	KVM_HOLD_MIGRATION = 1U << 1,	/* the stop-and-copy until the outcome is known */
	KVM_HOLD_THROTTLE = 1U << 2,	/* auto-converge's pauses (the VM still shows running) */
	KVM_HOLD_CHECKPOINT = 1U << 3,	/* a checkpoint's capture (the VM still shows running) */
	KVM_HOLD_INSPECT = 1U << 4,	/* query-memory-hash (the VM still shows running) */
	KVM_HOLD_CKPT_THROTTLE = 1U << 5, /* a checkpoint's throttle (the VM still shows running) */
};

/*
 * Adds hold and parks every vCPU outside KVM_RUN with its state
 * consistent (pending I/O completed). Returns 0 once all are parked, or
 * when the VM has stopped. Idempotent per hold. Not from a vCPU thread.
 * The VM shows PAUSED while a user or migration hold is on.
 */
int kvm__hold(struct kvm *kvm, unsigned int hold);
/* Drops hold; the vCPUs run again if it was the last one. */
int kvm__release(struct kvm *kvm, unsigned int hold);
/* The holds on now (enum kvm_hold bits). */
unsigned int kvm__holds(struct kvm *kvm);
/* The user's hold: kvm__hold/kvm__release(KVM_HOLD_USER). */
int kvm__pause(struct kvm *kvm);
int kvm__resume(struct kvm *kvm);

/* Asks the VM to stop (reason recorded if it is the first) and wakes waiters. */
void kvm__request_stop(struct kvm *kvm, enum kvm_stop_reason reason,
		       const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/*
 * SIGINT, SIGTERM and SIGHUP stop the VM cleanly (KVM_STOP_QUIT): a
 * detached thread waits for them. The caller blocks them in every thread
 * first (before creating any), so that only this one takes them.
 */
int kvm__stop_on_signals(struct kvm *kvm);
/* Waits until the VM stopped or deadline_ns (CLOCK_MONOTONIC, 0 = forever). */
int kvm__wait_stopped(struct kvm *kvm, uint64_t deadline_ns);
/* Joins the vCPU threads of a stopped (or stopping) VM. */
void kvm__join(struct kvm *kvm);

/*
 * Asks the guest to check its pages (verify workload) and waits up to
 * timeout_ms for every vCPU's answer. KM_ERR_STATE if paused or stopped.
 */
int kvm__guest_check(struct kvm *kvm, unsigned int timeout_ms,
		     uint64_t *pages, uint64_t *bad);

const char *kvm__state_name(enum kvm_run_state s);
const char *kvm__stop_reason_name(enum kvm_stop_reason r);

/* Monotonic clock in nanoseconds. */
uint64_t kvm__now_ns(void);
/* Wall clock (CLOCK_REALTIME) in nanoseconds: what two hosts can compare. */
uint64_t kvm__wall_ns(void);
/* CPU time of the calling thread, ns. */
uint64_t kvm__thread_cpu_ns(void);

#endif
