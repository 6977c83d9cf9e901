# Benchmarks (built by make, run by scripts/bench-*; never part of make check).

# The dirty-logging benchmark runs guest code from its own binary, like the
# KVM tests (tests/local.mk): the same flags, -no-pie and the test library.
noinst_PROGRAMS += tests/bench/bench-dirty-log
tests_bench_bench_dirty_log_SOURCES = tests/bench/bench-dirty-log.c \
	tests/bench/dirty-run.c tests/bench/dirty-run.h \
	tests/bench/baseline.c tests/bench/baseline.h
tests_bench_bench_dirty_log_CFLAGS = $(KVM_TEST_CFLAGS)
tests_bench_bench_dirty_log_LDFLAGS = $(KVMTEST_LINK)
tests_bench_bench_dirty_log_LDADD = $(KVM_TEST_LIBS)
