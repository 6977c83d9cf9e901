# Checkpoints (DESIGN.md s.9): the crash-safe store of a VM's checkpoint files.
noinst_LIBRARIES += snapshot/libsnapshot.a
snapshot_libsnapshot_a_SOURCES = snapshot/store.c snapshot/store.h \
	snapshot/ckptfile.c snapshot/ckptfile.h \
	snapshot/checkpoint.c snapshot/checkpoint.h snapshot/commands.c \
	snapshot/restore.c snapshot/restore.h
snapshot_libsnapshot_a_CFLAGS = $(AM_CFLAGS) $(XXHASH_CFLAGS) $(JANSSON_CFLAGS)
