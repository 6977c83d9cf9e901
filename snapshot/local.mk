# Checkpoints (DESIGN.md s.9): the crash-safe store of a VM's checkpoint files.
noinst_LIBRARIES += snapshot/libsnapshot.a
snapshot_libsnapshot_a_SOURCES = snapshot/store.c snapshot/store.h snapshot/store-int.h \
	snapshot/store-manifest.c snapshot/store-gc.c snapshot/store-chain.c \
	snapshot/ckptfile.c snapshot/ckptfile.h \
	snapshot/checkpoint.c snapshot/checkpoint.h snapshot/commands.c \
	snapshot/restore.c snapshot/restore.h snapshot/restore-int.h \
	snapshot/restore-lazy.c snapshot/compact.c snapshot/compact.h
snapshot_libsnapshot_a_CFLAGS = $(AM_CFLAGS) $(XXHASH_CFLAGS) $(JANSSON_CFLAGS)

# kvm-snapshot: list, verify, inspect, prune and gc a checkpoint directory, without a VM.
bin_PROGRAMS += snapshot/kvm-snapshot
snapshot_kvm_snapshot_SOURCES = snapshot/kvm-snapshot.c snapshot/snapcli.h \
	snapshot/snapcli-scan.c snapshot/snapcli-verify.c snapshot/snapcli-inspect.c
snapshot_kvm_snapshot_CFLAGS = $(AM_CFLAGS) $(XXHASH_CFLAGS) $(JANSSON_CFLAGS)
snapshot_kvm_snapshot_LDADD = snapshot/libsnapshot.a $(KVM_LIBS)
dist_man_MANS += docs/kvm-snapshot.1
