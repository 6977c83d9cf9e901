# The libFuzzer target of the stream reader. Not built by make: it needs
# clang's -fsanitize=fuzzer, which gcc lacks; scripts/fuzz builds and runs
# it (the same source, with -DFUZZ_MAKE_SEEDS, writes its seed corpus).
EXTRA_DIST += tests/fuzz/fuzz-stream.c
EXTRA_DIST += tests/fuzz/fuzz-dtrace.c
