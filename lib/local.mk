noinst_LIBRARIES += lib/libkm.a
lib_libkm_a_SOURCES = lib/err.h lib/buf.h lib/record.h lib/parse.h lib/log.h lib/qmp.h \
	lib/err.c lib/log.c lib/buf.c lib/record.c lib/parse.c lib/qmp.c
lib_libkm_a_CFLAGS = $(AM_CFLAGS) $(XXHASH_CFLAGS) $(JANSSON_CFLAGS) $(OPENSSL_CFLAGS)
lib_libkm_a_SOURCES += lib/rundir.c lib/rundir.h
lib_libkm_a_SOURCES += lib/bitmap.c lib/bitmap.h
lib_libkm_a_SOURCES += lib/dtrace.c lib/dtrace.h
lib_libkm_a_SOURCES += lib/pages.c lib/pages.h lib/stream.c lib/stream.h
lib_libkm_a_SOURCES += lib/chan.c lib/chan.h lib/chan-int.h lib/chan-sock.c lib/chan-tls.c \
	lib/chan-tls-key.c
lib_libkm_a_SOURCES += lib/stream-async.c lib/stream-int.h
lib_libkm_a_SOURCES += lib/stream-reader.c
