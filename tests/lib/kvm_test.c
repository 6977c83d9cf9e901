/* The selftests-style test library. See kvm_test.h. */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "tests/lib/kvm_test.h"
#include "kvm/loader.h"
#include "kvm/x86/x86.h"

/*
 * Guest entry for guest functions: the ABI enters with RSP 16-byte aligned,
 * but a C function expects the alignment a call leaves (RSP+8 aligned), so
 * enter through a call. A guest function that returns ends in KM_UCALL_DONE.
 */
void (*kvm_test_guest_fn)(void);
void kvm_test_guest_entry(void);
static __attribute__((used)) void kvm_test_guest_return(void)
{
	KM_GUEST_DONE();
	km_done(0);
}
asm(".pushsection .text\n"
    ".globl kvm_test_guest_entry\n"
    "kvm_test_guest_entry:\n"
    "	andq $-16, %rsp\n"
    "	call *kvm_test_guest_fn(%rip)\n"
    "	call kvm_test_guest_return\n"
    "1:	jmp 1b\n"
    ".popsection\n");

const char *kvm_test_unavailable(void)
{
	static char why[256];
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC), version;

	if (fd < 0) {
		snprintf(why, sizeof(why), "needs /dev/kvm, which cannot be opened here: %s",
			 strerror(errno));
		return why;
	}
	/* Something at /dev/kvm that is not KVM (a stray file) is no KVM either. */
	version = ioctl(fd, KVM_GET_API_VERSION, 0);
	close(fd);
	if (version != KVM_API_VERSION) {
		snprintf(why, sizeof(why), "/dev/kvm does not answer KVM_GET_API_VERSION "
			 "with %d (got %d: %s)", KVM_API_VERSION, version,
			 version < 0 ? strerror(errno) : "wrong version");
		return why;
	}
	return NULL;
}

void kvm_test_require_kvm(void)
{
	const char *why = kvm_test_unavailable();
	const char *sandbox = getenv("KVM_MIGRATE_SANDBOX");
	const char *force = getenv("KVM_MIGRATE_FORCE_SANDBOX");
	char exe[4096];
	ssize_t n;
	pid_t pid;
	int st;

	/*
	 * scripts/check sets KVM_MIGRATE_SANDBOX when this host has no KVM (or
	 * KVM_MIGRATE_FORCE_SANDBOX=1) and scripts/sandbox/kvm-sandbox boots an
	 * emulated machine that has a real one: run this same binary in there
	 * (once: the marker variable stops a second hop). The sandbox failing
	 * is an error of this test, never a skip.
	 */
	if (sandbox && *sandbox && !getenv("KVM_MIGRATE_IN_SANDBOX") &&
	    (why || (force && !strcmp(force, "1")))) {
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n <= 0) {
			printf("Bail out! /proc/self/exe: %s\n", strerror(errno));
			exit(1);
		}
		exe[n] = 0;
		printf("# running in the QEMU sandbox's nested KVM\n");
		fflush(stdout);
		setenv("KVM_MIGRATE_IN_SANDBOX", "1", 1);
		if ((pid = fork()) == 0) {
			execl(sandbox, sandbox, "--timeout", "900", "--", exe, (char *)NULL);
			printf("Bail out! %s: %s\n", sandbox, strerror(errno));
			_exit(1);
		}
		if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) {
			printf("Bail out! the sandbox did not run\n");
			exit(1);
		}
		if (WEXITSTATUS(st) == 124 || WEXITSTATUS(st) == 125)
			printf("Bail out! the sandbox %s\n",
			       WEXITSTATUS(st) == 124 ? "timed out" : "failed to start");
		exit(WEXITSTATUS(st));
	}
	if (!why)
		return;
	printf("1..0 # SKIP %s\n", why);
	exit(0);
}

unsigned int kvm_test_time_factor(void)
{
	const char *path = getenv("KVM_MIGRATE_PACE"), *in_sandbox = getenv("KVM_MIGRATE_IN_SANDBOX");
	const char *want = in_sandbox ? "sandbox" : "native";
	unsigned long long tls = 0;
	char line[256], where[32] = "";
	FILE *f;

	/* As tests/lib.sh's pace_time: x1 natively, else 5000 / TLS pages/s in 1..5. */
	if (path && (f = fopen(path, "r"))) {
		while (fgets(line, sizeof(line), f)) {
			sscanf(line, "KM_PACE_WHERE=%31s", where);
			sscanf(line, "KM_PACE_TLS_PPS=%llu", &tls);
		}
		fclose(f);
	}
	if (strcmp(where, want))
		return in_sandbox ? 5 : 1;	/* not measured for here */
	if (!in_sandbox || tls >= 5000)
		return 1;
	return tls < 1000 ? 5 : (unsigned int)(5000 / tls);
}

/* Loads the PT_LOAD segments of our own executable at their addresses. */
static void vm_load_self(struct kvm *kvm)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	struct stat st;
	uint8_t *file;
	unsigned int i;
	int fd;

	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	file = malloc(st.st_size);
	assert_non_null(file);
	assert_int_equal(read(fd, file, st.st_size), st.st_size);
	close(fd);
	memcpy(&eh, file, sizeof(eh));
	assert_memory_equal(eh.e_ident, ELFMAG, SELFMAG);
	/* -no-pie: fixed addresses; a PIE would be linked at 0 and not fit. */
	assert_int_equal(eh.e_type, ET_EXEC);
	for (i = 0; i < eh.e_phnum; i++) {
		memcpy(&ph, file + eh.e_phoff + (uint64_t)i * eh.e_phentsize, sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		assert_true(ph.p_vaddr >= KM_FREE_GPA);
		assert_true(ph.p_offset + ph.p_filesz <= (uint64_t)st.st_size);
		assert_int_equal(memory__write(&kvm->mem, ph.p_vaddr, file + ph.p_offset,
					       ph.p_filesz), 0);
	}
	free(file);
}

struct kvm *vm_create_with_code(uint64_t mem, unsigned int nr_vcpus, bool irqchip,
				void (*guest_code)(void))
{
	struct kvm_config cfg = {
		.mem_size = mem, .nr_vcpus = nr_vcpus, .irqchip = irqchip, .name = "test",
	};

	return vm_create_with_code_cfg(&cfg, guest_code);
}

struct kvm *vm_create_with_code_cfg(const struct kvm_config *cfg, void (*guest_code)(void))
{
	struct kvm *kvm = NULL;
	int r;

	r = kvm__create(cfg, &kvm);
	if (r)
		fail_msg("kvm__create: %s", km_strerror(r));
	vm_load_self(kvm);
	kvm_test_guest_fn = guest_code;
	sync_global_to_guest(kvm, kvm_test_guest_fn);
	r = kvm__setup_boot(kvm, "test", "", (uint64_t)(uintptr_t)kvm_test_guest_entry);
	if (r)
		fail_msg("kvm__setup_boot: %s", km_strerror(r));
	return kvm;
}

struct kvm *vm_create_with_workload(uint64_t mem, unsigned int nr_vcpus,
				    const char *guest, const char *args)
{
	struct kvm_config cfg = {
		.mem_size = mem, .nr_vcpus = nr_vcpus, .irqchip = true, .name = guest,
	};
	struct kvm *kvm = NULL;
	char path[4096];
	uint64_t entry;
	int r;

	if ((r = loader__find_guest(guest, path, sizeof(path))) != 0)
		fail_msg("guest %s: %s", guest, km_strerror(r));
	if ((r = kvm__create(&cfg, &kvm)) != 0)
		fail_msg("kvm__create: %s", km_strerror(r));
	if ((r = loader__load_flat(kvm, path, &entry)) != 0)
		fail_msg("load %s: %s", path, km_strerror(r));
	if ((r = kvm__setup_boot(kvm, guest, args, entry)) != 0)
		fail_msg("kvm__setup_boot: %s", km_strerror(r));
	return kvm;
}

struct kvm *vm_create_like(struct kvm *src)
{
	struct kvm *kvm = NULL;
	int r;

	if ((r = kvm__create(&src->cfg, &kvm)) != 0)
		fail_msg("kvm__create: %s", km_strerror(r));
	return kvm;
}

void vm_sync_global(struct kvm *kvm, const void *addr, size_t size)
{
	assert_int_equal(memory__write(&kvm->mem, (uint64_t)(uintptr_t)addr, addr, size), 0);
}

void vm_copy_memory(struct kvm *dst, const struct kvm *src)
{
	unsigned int i;

	assert_int_equal(dst->mem.size, src->mem.size);
	assert_int_equal(dst->mem.nr_slots, src->mem.nr_slots);
	for (i = 0; i < src->mem.nr_slots; i++)
		memcpy(dst->mem.slots[i].hva, src->mem.slots[i].hva, src->mem.slots[i].size);
}

uint64_t vcpu_run_ucall(struct kvm_cpu *cpu, struct km_ucall *uc)
{
	int r = kvm_cpu__run_until_ucall(cpu, uc);

	if (r == KM_ERR_END)
		fail_msg("vCPU %u finished (KM_HC_DONE) instead of making a ucall", cpu->id);
	if (r)
		fail_msg("vCPU %u stopped: %s (%s)", cpu->id,
			 kvm__stop_reason_name(cpu->kvm->stop_reason), cpu->kvm->stop_detail);
	if (uc->cmd == KM_UCALL_ASSERT)
		fail_msg("guest assertion failed: %s at %s:%llu (0x%llx vs 0x%llx)",
			 uc->msg, uc->file, uc->args[0], uc->args[1], uc->args[2]);
	return uc->cmd;
}

void vcpu_run_to_sync(struct kvm_cpu *cpu, uint64_t stage, struct km_ucall *uc)
{
	uint64_t cmd = vcpu_run_ucall(cpu, uc);

	if (cmd != KM_UCALL_SYNC || uc->args[0] != stage)
		fail_msg("expected SYNC(%llu), got ucall %llu with arg %llu",
			 (unsigned long long)stage, (unsigned long long)cmd,
			 (unsigned long long)uc->args[0]);
}

uint64_t vm_progress(struct kvm *kvm, unsigned int vcpu)
{
	struct progress_vcpu p;

	progress__get(&kvm->progress, vcpu, &p);
	return p.counter;
}

void vm_wait_progress(struct kvm *kvm, unsigned int vcpu, uint64_t min,
		      unsigned int timeout_ms)
{
	uint64_t deadline = kvm__now_ns() +
			    (uint64_t)timeout_ms * kvm_test_time_factor() * 1000000ULL;
	struct timespec tick = { 0, 1000000 };

	/* Polls the condition (reports arrive every <= 100 ms); the tick is not a guess. */
	while (vm_progress(kvm, vcpu) < min) {
		if (kvm->state == KVM_STATE_STOPPED)
			fail_msg("VM stopped while waiting for progress: %s (%s)",
				 kvm__stop_reason_name(kvm->stop_reason), kvm->stop_detail);
		if (kvm__now_ns() > deadline)
			fail_msg("vCPU %u progress %llu after %u ms, wanted %llu", vcpu,
				 (unsigned long long)vm_progress(kvm, vcpu), timeout_ms,
				 (unsigned long long)min);
		nanosleep(&tick, NULL);
	}
}
