# Unit tests of lib/: cmocka programs speaking TAP (CMOCKA_MESSAGE_OUTPUT=TAP
# comes from AM_TESTS_ENVIRONMENT in Makefile.am).
KM_UNIT_TESTS = tests/unit/test-buf tests/unit/test-record \
	tests/unit/test-parse tests/unit/test-qmp tests/unit/test-log \
	tests/unit/test-chan tests/unit/test-pages
check_PROGRAMS += $(KM_UNIT_TESTS)
TESTS += $(KM_UNIT_TESTS)
EXTRA_DIST += tests/unit/unit.h

KM_UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(JANSSON_CFLAGS) $(XXHASH_CFLAGS)
KM_UNIT_LDADD = lib/libkm.a $(CMOCKA_LIBS) $(JANSSON_LIBS) $(XXHASH_LIBS) $(OPENSSL_LIBS)

tests_unit_test_buf_SOURCES = tests/unit/test-buf.c
tests_unit_test_buf_CFLAGS = $(KM_UNIT_CFLAGS)
tests_unit_test_buf_LDADD = $(KM_UNIT_LDADD)

tests_unit_test_record_SOURCES = tests/unit/test-record.c
tests_unit_test_record_CFLAGS = $(KM_UNIT_CFLAGS)
tests_unit_test_record_LDADD = $(KM_UNIT_LDADD)

tests_unit_test_parse_SOURCES = tests/unit/test-parse.c
tests_unit_test_parse_CFLAGS = $(KM_UNIT_CFLAGS)
tests_unit_test_parse_LDADD = $(KM_UNIT_LDADD)

tests_unit_test_qmp_SOURCES = tests/unit/test-qmp.c
tests_unit_test_qmp_CFLAGS = $(KM_UNIT_CFLAGS)
tests_unit_test_qmp_LDADD = $(KM_UNIT_LDADD)

tests_unit_test_log_SOURCES = tests/unit/test-log.c
tests_unit_test_log_CFLAGS = $(KM_UNIT_CFLAGS)
tests_unit_test_log_LDADD = $(KM_UNIT_LDADD)

tests_unit_test_chan_SOURCES = tests/unit/test-chan.c
# make-certs is found through $top_srcdir (set by make check), else here.
tests_unit_test_chan_CFLAGS = $(KM_UNIT_CFLAGS) -DKM_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_chan_LDADD = $(KM_UNIT_LDADD)

tests_unit_test_pages_SOURCES = tests/unit/test-pages.c
tests_unit_test_pages_CFLAGS = $(KM_UNIT_CFLAGS) $(LZ4_CFLAGS)
tests_unit_test_pages_LDADD = $(KM_UNIT_LDADD) $(LZ4_LIBS)

# The CPUID compatibility check of an arriving VM: kvm/x86/cpuid.c alone.
check_PROGRAMS += tests/unit/test-cpuid
TESTS += tests/unit/test-cpuid
tests_unit_test_cpuid_SOURCES = tests/unit/test-cpuid.c kvm/x86/cpuid.c
tests_unit_test_cpuid_CFLAGS = $(KM_UNIT_CFLAGS)
tests_unit_test_cpuid_LDADD = $(KM_UNIT_LDADD)

# The checkpoint store: snapshot/store*.c, crash points and all (a build
# without fault injection skips those).
check_PROGRAMS += tests/unit/test-store
TESTS += tests/unit/test-store
tests_unit_test_store_SOURCES = tests/unit/test-store.c
tests_unit_test_store_CFLAGS = $(KM_UNIT_CFLAGS)
tests_unit_test_store_LDADD = snapshot/libsnapshot.a $(KM_UNIT_LDADD)

# The VM as records (kvm/vmrec.c) on guest memory without /dev/kvm.
check_PROGRAMS += tests/unit/test-vmrec
TESTS += tests/unit/test-vmrec
tests_unit_test_vmrec_SOURCES = tests/unit/test-vmrec.c
tests_unit_test_vmrec_CFLAGS = $(KM_UNIT_CFLAGS)
tests_unit_test_vmrec_LDADD = $(KVM_LIBS) $(CMOCKA_LIBS)

# The control socket's events (kvm/control.c) without /dev/kvm.
check_PROGRAMS += tests/unit/test-control
TESTS += tests/unit/test-control
tests_unit_test_control_SOURCES = tests/unit/test-control.c
tests_unit_test_control_CFLAGS = $(KM_UNIT_CFLAGS)
tests_unit_test_control_LDADD = $(KVM_LIBS) $(CMOCKA_LIBS)

# The virtio-blk disk, its transport and virtqueues (kvm/virtio-*.c) without /dev/kvm.
check_PROGRAMS += tests/unit/test-virtio-blk
TESTS += tests/unit/test-virtio-blk
tests_unit_test_virtio_blk_SOURCES = tests/unit/test-virtio-blk.c
tests_unit_test_virtio_blk_CFLAGS = $(KM_UNIT_CFLAGS)
tests_unit_test_virtio_blk_LDADD = $(KVM_LIBS) $(CMOCKA_LIBS)

# The ELF vmlinux loader (kvm/x86/elf.c) on guest memory without /dev/kvm.
check_PROGRAMS += tests/unit/test-elf
TESTS += tests/unit/test-elf
tests_unit_test_elf_SOURCES = tests/unit/test-elf.c
tests_unit_test_elf_CFLAGS = $(KM_UNIT_CFLAGS)
tests_unit_test_elf_LDADD = $(KVM_LIBS) $(CMOCKA_LIBS)

# The convergence policy (migrate/policy.c) the engine and the simulator share.
check_PROGRAMS += tests/unit/test-policy
TESTS += tests/unit/test-policy
tests_unit_test_policy_SOURCES = tests/unit/test-policy.c migrate/policy.c
tests_unit_test_policy_CFLAGS = $(KM_UNIT_CFLAGS)
tests_unit_test_policy_LDADD = $(KM_UNIT_LDADD)

# Dirty traces (lib/dtrace.c): round trip, and the reader's fuzzing.
check_PROGRAMS += tests/unit/test-dtrace
TESTS += tests/unit/test-dtrace
tests_unit_test_dtrace_SOURCES = tests/unit/test-dtrace.c
tests_unit_test_dtrace_CFLAGS = $(KM_UNIT_CFLAGS)
tests_unit_test_dtrace_LDADD = $(KM_UNIT_LDADD)

# The pre-copy simulator (migrate/sim.c) over synthetic traces, with the engine's policy.
check_PROGRAMS += tests/unit/test-sim
TESTS += tests/unit/test-sim
tests_unit_test_sim_SOURCES = tests/unit/test-sim.c migrate/sim.c migrate/policy.c
tests_unit_test_sim_CFLAGS = $(KM_UNIT_CFLAGS)
tests_unit_test_sim_LDADD = $(KM_UNIT_LDADD) -lm
