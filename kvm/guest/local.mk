# Workload guests (docs/guests.md): freestanding C linked at KM_IMAGE_GPA
# into flat images that kvm-run loads. They are compiled with the host's
# compiler but with none of the host programs' flags (no sanitizers, no PIE,
# no SSE, no libc), so they have their own explicit rules here instead of
# automake's. Objects are kvm/guest/NAME.guest.o, images kvm/guest/NAME.elf
# and kvm/guest/NAME.bin (the flat file, installed).
#
# The guest SDK (docs/guests.md s.8) is the same parts installed: the
# headers, libkmguest.a (entry code, runtime and pure logic), guest.lds,
# check-image.sh and kvm-migrate-guest.pc, whose Cflags and Libs are the
# flags below. The built-in guests link libkmguest.a like any other guest.
# Extra flags for the guests only, e.g. make GUEST_CFLAGS=-O1.
GUEST_CFLAGS = -g
# What every guest needs, the SDK's included: kvm-migrate-guest.pc.in
# carries these two lists too (configure substitutes them).
guest_cflags = -std=gnu11 -O2 $(GUEST_SDK_CFLAGS) \
	-Wall -Wextra -Wno-unused-parameter $(GUEST_CFLAGS)
guest_ldflags = $(GUEST_SDK_LDFLAGS)

guest_names = idle fill dirtier verify compute

guestdir = $(pkglibdir)/guests
guest_DATA = kvm/guest/idle.bin kvm/guest/fill.bin kvm/guest/dirtier.bin \
	kvm/guest/verify.bin kvm/guest/compute.bin

# Pure logic: built into the guests and, for the host, into test-guest-logic.
guest_pure_sources = kvm/guest/args.c kvm/guest/fmt.c kvm/guest/gmem.c \
	kvm/guest/pace.c kvm/guest/pick.c kvm/guest/prng.c kvm/guest/vpage.c \
	kvm/guest/zipf.c
guest_headers = kvm/guest/abi.h kvm/guest/hypercall.h kvm/guest/args.h \
	kvm/guest/fmt.h kvm/guest/gmem.h kvm/guest/pace.h kvm/guest/pick.h \
	kvm/guest/prng.h kvm/guest/runtime.h kvm/guest/vpage.h \
	kvm/guest/workset.h kvm/guest/zipf.h

# libkmguest.a: everything but the workloads' mains. ld takes start.S's
# object out of it because guest.lds names _start (EXTERN), and the rest
# as the guest refers to it.
guest_rt_objs = kvm/guest/start.guest.o kvm/guest/runtime.guest.o \
	kvm/guest/workset.guest.o $(guest_pure_sources:.c=.guest.o)
guest_main_objs = $(guest_names:%=kvm/guest/%.guest.o)
guest_objs = $(guest_rt_objs) $(guest_main_objs)
guest_elfs = $(guest_names:%=kvm/guest/%.elf)

# The SDK, installed: headers under $(includedir)/kvm-migrate/guest (they
# include each other by quoted names, so they move as one directory), the
# library, linker script and image check under $(pkglibdir)/sdk, and the
# pkg-config file.
guestincdir = $(includedir)/kvm-migrate/guest
guestinc_HEADERS = $(guest_headers)
guestsdkdir = $(pkglibdir)/sdk
guestsdk_DATA = kvm/guest/libkmguest.a kvm/guest/guest.lds
guestsdk_SCRIPTS = kvm/guest/check-image.sh
pkgconfigdir = $(libdir)/pkgconfig
pkgconfig_DATA = kvm/guest/kvm-migrate-guest.pc

kvm/guest/libkmguest.a: $(guest_rt_objs)
	$(AM_V_AR)rm -f $@ && $(AR) $(ARFLAGS) $@ $(guest_rt_objs) && $(RANLIB) $@

EXTRA_DIST += kvm/guest/guest.lds kvm/guest/start.S kvm/guest/runtime.c \
	kvm/guest/workset.c kvm/guest/idle.c kvm/guest/fill.c \
	kvm/guest/dirtier.c kvm/guest/verify.c kvm/guest/compute.c \
	kvm/guest/check-image.sh kvm/guest/test-images.sh
CLEANFILES += $(guest_objs) $(guest_elfs) $(guest_DATA) \
	$(guest_DATA:=.tmp) kvm/guest/libkmguest.a

kvm/guest/%.guest.o: kvm/guest/%.c
	@$(MKDIR_P) $(@D)
	$(AM_V_CC)$(CC) $(guest_cflags) -c -o $@ $<

kvm/guest/%.guest.o: kvm/guest/%.S
	@$(MKDIR_P) $(@D)
	$(AM_V_CC)$(CC) $(guest_cflags) -c -o $@ $<

# Every object is rebuilt when any guest header changes: there are few.
$(guest_objs): $(guest_headers)

# Named here so that make keeps them (no intermediate files).
kvm/guest/idle.elf: kvm/guest/idle.guest.o
kvm/guest/fill.elf: kvm/guest/fill.guest.o
kvm/guest/dirtier.elf: kvm/guest/dirtier.guest.o
kvm/guest/verify.elf: kvm/guest/verify.guest.o
kvm/guest/compute.elf: kvm/guest/compute.guest.o

# As the SDK's Libs say: the guest's objects, then -T guest.lds and the library.
kvm/guest/%.elf: kvm/guest/libkmguest.a kvm/guest/guest.lds
	$(AM_V_CCLD)$(CC) $(guest_cflags) $(guest_ldflags) -o $@ $(filter %.o,$^) \
		-T $(filter %.lds,$^) $(filter %.a,$^)

# The flat image with .bss as zeros (see guest.lds), checked against the
# ABI before it replaces the previous one.
kvm/guest/%.bin: kvm/guest/%.elf kvm/guest/check-image.sh
	$(AM_V_GEN)$(OBJCOPY) -O binary --set-section-flags .bss=alloc,load,contents \
		$< $@.tmp && \
	$(SHELL) $(filter %.sh,$^) $< $@.tmp && mv -f $@.tmp $@

# Host-side tests of the pure logic, and of the built images.
check_PROGRAMS += kvm/guest/test-guest-logic
kvm_guest_test_guest_logic_SOURCES = kvm/guest/test-guest-logic.c \
	$(guest_pure_sources)
kvm_guest_test_guest_logic_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
kvm_guest_test_guest_logic_LDADD = $(CMOCKA_LIBS)

# The real images run as host threads, hypercalls trapped (see the file).
# No sanitizers: it jumps onto guest stacks and lives in SIGSEGV handlers.
check_PROGRAMS += kvm/guest/test-guest-run
kvm_guest_test_guest_run_SOURCES = kvm/guest/test-guest-run.c kvm/guest/gmem.c
kvm_guest_test_guest_run_CFLAGS = -Wall -Wextra -Wno-unused-parameter -pthread \
	$(CMOCKA_CFLAGS)
kvm_guest_test_guest_run_LDFLAGS = -pthread
kvm_guest_test_guest_run_LDADD = $(CMOCKA_LIBS)

TESTS += kvm/guest/test-guest-logic kvm/guest/test-images.sh \
	kvm/guest/test-guest-run
