# The VMM core, linked into kvm-run and into the KVM tests.
noinst_LIBRARIES += kvm/libkmvm.a
kvm_libkmvm_a_SOURCES = \
	kvm/kvm.c kvm/kvm.h \
	kvm/kvm-cpu.c kvm/kvm-cpu.h \
	kvm/memory.c kvm/memory.h kvm/lazymem.c kvm/lazymem.h \
	kvm/ioport.c kvm/ioport.h kvm/uart.c kvm/uart.h \
	kvm/virtqueue.c kvm/virtqueue.h kvm/virtio-mmio.c kvm/virtio-mmio.h \
	kvm/virtio-blk.c kvm/virtio-blk.h kvm/virtio-blk-int.h kvm/virtio-blk-state.c \
	kvm/virtio-blk-track.c kvm/virtio-blk-stage.c kvm/vmrec-disk.c \
	kvm/progress.c kvm/progress.h \
	kvm/loader.c kvm/loader.h \
	kvm/control.c kvm/control.h \
	kvm/stats.c kvm/stats.h \
	kvm/state.h kvm/dirty.c kvm/dirty.h kvm/dirty-kvm.c kvm/dirty-kvm.h kvm/dirtyrate.c kvm/dirtyrate.h \
	kvm/dirtylimit.c kvm/dirtylimit.h \
	kvm/dtrace-rec.c kvm/dtrace-rec.h \
	kvm/vmrec.h kvm/vmrec-save.c kvm/vmrec-load.c kvm/throttle.c kvm/throttle.h \
	kvm/x86/x86.h kvm/x86/cpuid.c kvm/x86/boot.c kvm/x86/state.c \
	kvm/x86/linux.c kvm/x86/linux.h kvm/x86/elf.c kvm/x86/acpi.c \
	kvm/x86/pc.c kvm/x86/pc.h
kvm_libkmvm_a_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)

KVM_LIBS = kvm/libkmvm.a lib/libkm.a $(JANSSON_LIBS) $(XXHASH_LIBS) $(LZ4_LIBS) $(OPENSSL_LIBS)

bin_PROGRAMS += kvm/kvm-run
kvm_kvm_run_SOURCES = kvm/kvm-run.c
kvm_kvm_run_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
kvm_kvm_run_LDADD = migrate/libkmmig.a snapshot/libsnapshot.a $(KVM_LIBS)

dist_man_MANS += docs/kvm-run.1
