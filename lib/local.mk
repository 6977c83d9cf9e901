noinst_LIBRARIES += lib/libkm.a
lib_libkm_a_SOURCES = lib/err.h lib/buf.h lib/record.h lib/parse.h lib/log.h
lib_libkm_a_CFLAGS = $(AM_CFLAGS) $(XXHASH_CFLAGS) $(JANSSON_CFLAGS)
