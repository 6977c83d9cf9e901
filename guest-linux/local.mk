# Programs for Linux guests (not for the workload guests of kvm/guest):
# static, so that tests/lib/make-initramfs.sh can copy them into a busybox
# initramfs as they are. Not installed. No sanitizers: they do not link
# statically.
noinst_PROGRAMS += guest-linux/kmwork
guest_linux_kmwork_SOURCES = guest-linux/kmwork.c guest-linux/stamp.c guest-linux/stamp.h \
	guest-linux/disk.c guest-linux/disk.h kvm/guest/prng.h
guest_linux_kmwork_CFLAGS = -Wall -Wextra -Wno-unused-parameter -O2 -g
guest_linux_kmwork_LDFLAGS = -static
