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

# The machine limits a live migration runs against (scripts/bench-migrate):
# loopback channels (lib/chan.h: TCP, TLS, unix), the page codec
# (lib/pages.h), filling a fresh memfd as a destination does.
noinst_PROGRAMS += tests/bench/bench-limits
tests_bench_bench_limits_SOURCES = tests/bench/bench-limits.c
tests_bench_bench_limits_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(LZ4_CFLAGS)
tests_bench_bench_limits_LDADD = lib/libkm.a $(JANSSON_LIBS) $(XXHASH_LIBS) $(LZ4_LIBS) \
	$(OPENSSL_LIBS)
