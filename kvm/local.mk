bin_PROGRAMS += kvm/kvm-run
kvm_kvm_run_SOURCES = kvm/kvm-run.c
kvm_kvm_run_LDADD = lib/libkm.a $(JANSSON_LIBS) $(XXHASH_LIBS)
