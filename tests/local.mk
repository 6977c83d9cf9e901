# The KVM tests (scripts/check counts their checks apart: they must run).
# TESTS starts with them (Makefile.am), the longest first, so that make -j
# starts them first.
KM_MIGRATE_TESTS = tests/migrate-daemon.sh tests/migrate-limits.sh tests/migrate-faults.sh \
	tests/migrate-netns.sh tests/migrate-switchover.sh tests/migrate.sh \
	tests/migrate-trust.sh
KM_KVM_TESTS = $(KM_MIGRATE_TESTS) tests/kvm/test-dirty tests/kvm/test-verify \
	tests/kvm/test-state tests/kvm/test-vm tests/kvm-run.sh tests/local-users.sh \
	tests/checkpoint.sh tests/checkpoint-faults.sh tests/checkpoint-migrate.sh \
	tests/checkpoint-lazy.sh tests/checkpoint-bound.sh tests/dirty-rate.sh tests/dirty-trace.sh \
	tests/dirty-limit.sh \
	tests/linux-boot.sh tests/linux-migrate.sh tests/linux-disk.sh tests/linux-checkpoint.sh \
	tests/guest-sdk.sh

include tests/unit/local.mk
include tests/bench/local.mk

# Tests that run guest code: the test binary itself is loaded into the guest
# (tests/lib/kvm_test.h), so it is linked at fixed addresses (-no-pie) and
# its guest parts must not be instrumented or call libc behind our back.
KVM_TEST_CFLAGS = -Wall -Wextra -Wno-unused-parameter -pthread -O2 -g \
	-fno-pie -fno-stack-protector -fcf-protection=none \
	-fno-tree-loop-distribute-patterns -fno-builtin \
	$(CMOCKA_CFLAGS) $(JANSSON_CFLAGS)
KVMTEST_LINK = -no-pie -pthread $(SAN_CFLAGS)
KVM_TEST_LIBS = tests/lib/libkmtest.a $(KVM_LIBS) $(CMOCKA_LIBS)

check_LIBRARIES = tests/lib/libkmtest.a
tests_lib_libkmtest_a_SOURCES = tests/lib/kvm_test.c tests/lib/kvm_test.h
tests_lib_libkmtest_a_CFLAGS = $(KVM_TEST_CFLAGS)

check_PROGRAMS += tests/kvm/test-state
tests_kvm_test_state_SOURCES = tests/kvm/test-state.c
tests_kvm_test_state_CFLAGS = $(KVM_TEST_CFLAGS) -mgeneral-regs-only
tests_kvm_test_state_LDFLAGS = $(KVMTEST_LINK)
tests_kvm_test_state_LDADD = $(KVM_TEST_LIBS)

check_PROGRAMS += tests/kvm/test-vm
tests_kvm_test_vm_SOURCES = tests/kvm/test-vm.c
tests_kvm_test_vm_CFLAGS = $(KVM_TEST_CFLAGS)
tests_kvm_test_vm_LDFLAGS = $(KVMTEST_LINK)
tests_kvm_test_vm_LDADD = $(KVM_TEST_LIBS)

check_PROGRAMS += tests/lib/qmp-send tests/lib/flip-proxy tests/lib/switch-proxy tests/lib/flood \
	tests/lib/memgrep tests/lib/ckpt-strip tests/lib/ckpt-poke
tests_lib_qmp_send_SOURCES = tests/lib/qmp-send.c
tests_lib_qmp_send_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
tests_lib_qmp_send_LDADD = $(JANSSON_LIBS)
tests_lib_flip_proxy_SOURCES = tests/lib/flip-proxy.c tests/lib/sockutil.h
tests_lib_switch_proxy_SOURCES = tests/lib/switch-proxy.c tests/lib/sockutil.h
tests_lib_flood_SOURCES = tests/lib/flood.c
tests_lib_memgrep_SOURCES = tests/lib/memgrep.c
tests_lib_ckpt_strip_SOURCES = tests/lib/ckpt-strip.c
tests_lib_ckpt_poke_SOURCES = tests/lib/ckpt-poke.c
tests_lib_ckpt_poke_LDADD = $(KVM_LIBS)

# Shell tests (TAP through tests/lib.sh).
TESTS += tests/cli.sh tests/kmwork.sh
EXTRA_DIST += tests/README.md tests/lib.sh tests/lib-migrate.sh tests/lib-checkpoint.sh tests/pace.sh tests/timed.sh \
	tests/cli.sh tests/kmwork.sh tests/kvm-run.sh tests/local-users.sh tests/checkpoint.sh \
	tests/checkpoint-faults.sh tests/checkpoint-migrate.sh tests/checkpoint-lazy.sh \
	tests/checkpoint-bound.sh tests/dirty-rate.sh tests/dirty-trace.sh tests/dirty-limit.sh \
	tests/linux-boot.sh tests/linux-migrate.sh tests/linux-disk.sh tests/linux-checkpoint.sh \
	tests/lib-linux.sh tests/lib/make-initramfs.sh tests/lib/extract-vmlinux.sh tests/guest-sdk.sh \
	$(KM_MIGRATE_TESTS)
# linux-boot.sh's vmlinux, taken out of /boot's bzImage and kept between runs.
CLEANFILES += tests/linux-boot.vmlinux

check_PROGRAMS += tests/kvm/test-verify
tests_kvm_test_verify_SOURCES = tests/kvm/test-verify.c
tests_kvm_test_verify_CFLAGS = $(KVM_TEST_CFLAGS)
tests_kvm_test_verify_LDFLAGS = $(KVMTEST_LINK)
tests_kvm_test_verify_LDADD = $(KVM_TEST_LIBS)

check_PROGRAMS += tests/kvm/test-dirty
tests_kvm_test_dirty_SOURCES = tests/kvm/test-dirty.c
tests_kvm_test_dirty_CFLAGS = $(KVM_TEST_CFLAGS)
tests_kvm_test_dirty_LDFLAGS = $(KVMTEST_LINK)
tests_kvm_test_dirty_LDADD = $(KVM_TEST_LIBS)
include tests/fuzz/local.mk

# kvm-snapshot on synthetic checkpoint directories (tests/lib/mkckpt: no KVM).
check_PROGRAMS += tests/lib/mkckpt
tests_lib_mkckpt_SOURCES = tests/lib/mkckpt.c
tests_lib_mkckpt_CFLAGS = $(AM_CFLAGS) $(XXHASH_CFLAGS)
tests_lib_mkckpt_LDADD = snapshot/libsnapshot.a $(KVM_LIBS)
TESTS += tests/snapshot-cli.sh
EXTRA_DIST += tests/snapshot-cli.sh
