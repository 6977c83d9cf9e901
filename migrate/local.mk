# Migration: the engine (linked into kvm-run and kvm-migrated), the daemon and the client.
noinst_LIBRARIES += migrate/libkmmig.a
migrate_libkmmig_a_SOURCES = migrate/migrate.h migrate/mig.h \
	migrate/policy.c migrate/policy.h migrate/sim.c migrate/sim.h migrate/migrate.c migrate/mig.c migrate/send.c migrate/recv.c migrate/proto.c \
	migrate/commands.c
migrate_libkmmig_a_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(OPENSSL_CFLAGS)

MIGRATE_LIBS = migrate/libkmmig.a $(KVM_LIBS)

bin_PROGRAMS += migrate/kvm-migrated migrate/kvm-migrate
migrate_kvm_migrated_SOURCES = migrate/kvm-migrated.c migrate/admit.c migrate/admit.h \
	migrate/keyagent.c migrate/keyagent.h
migrate_kvm_migrated_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
# The VMs it receives keep checkpoints too (checkpoint-set): wired here, not in migrate/'s engine.
migrate_kvm_migrated_LDADD = migrate/libkmmig.a snapshot/libsnapshot.a $(KVM_LIBS)
migrate_kvm_migrate_SOURCES = migrate/kvm-migrate.c migrate/dirtyrate-cli.c migrate/cli.h \
	migrate/trace-cli.c migrate/simulate-cli.c \
	migrate/qmpc.c migrate/qmpc.h
migrate_kvm_migrate_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
migrate_kvm_migrate_LDADD = $(MIGRATE_LIBS) -lm
dist_man_MANS += docs/kvm-migrate.1 docs/kvm-migrated.8

# An example systemd unit for the daemon, with this build's bindir.
pkgdata_DATA = migrate/kvm-migrated.service
EXTRA_DIST += migrate/kvm-migrated.service.in
CLEANFILES += migrate/kvm-migrated.service
migrate/kvm-migrated.service: $(srcdir)/migrate/kvm-migrated.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) migrate && \
	sed -e 's|@bindir[@]|$(bindir)|g' $(srcdir)/migrate/kvm-migrated.service.in >$@
