#!/bin/bash
# kvm-migrated's limits (README "Security", migrate/admit.h): floods of
# idle and slow-handshake connections from other addresses do not lock out
# a real migration nor the settlement query; received VMs do not count
# against connections (more of them than the 64 connections of the old
# limit); the guest memory budget, the number of receives at once, a
# receive's deadline and its round bound each refuse with the reason, and
# the source runs on. Sizes follow the machine's pace (tests/README.md).
. "$(dirname "$0")/lib.sh"
require_kvm
. "$(dirname "$0")/lib-migrate.sh"

tap_plan 22

FLOOD=$top_builddir/tests/lib/flood
A=$tmp/a B=$tmp/b
rate1=$(rate_of 2000 1) pages16=$(wss_pages 16)

# Floods from 127.0.0.2 (idle) and 127.0.0.3 (a TLS record header, then
# silence), 40 connections each, reopened as they are closed: no more than
# 8 of each take handshake slots.
start_daemon b "$B"
start_vm fl1 "$A" "$rate1" "$pages16" --mem 256M
"$FLOOD" 127.0.0.2 127.0.0.1 "$port_b" 40 0 >"$tmp/flood2.out" 2>&1 &
floods=($!)
"$FLOOD" 127.0.0.3 127.0.0.1 "$port_b" 40 5 >"$tmp/flood3.out" 2>&1 &
floods+=($!)
pids+=("${floods[@]}")
flooded() { grep -q "40 connected, 32 closed by the peer" "$1"; }
ok_if "40 idle connections from one address: 8 are held, 32 are closed at once" \
	wait_for "the idle flood" 30 flooded "$tmp/flood2.out"
ok_if "40 slow handshakes from another: the same" \
	wait_for "the slow flood" 30 flooded "$tmp/flood3.out"
ok_if "the daemon says why, once a second at most" \
	grep -q "refused a connection: 8 connections from 127.0.0.[23] are already in their handshake" \
	"$tmp/daemon-b.log"
if migrate "$tmp/fl1.out" --rundir "$A" fl1 "127.0.0.1:$port_b" && vm_ok "$B/fl1.sock"; then
	tap_ok "during the floods, a migration from a third address succeeds, every page correct"
else
	tap_fail "migration during the floods" "$(cat "$tmp/fl1.out")" "$(tail -3 "$tmp/daemon-b.log")"
fi
ok_if "and the settlement query is answered: fl1 runs there" \
	"$KVM_MIGRATE" --tls-dir "$tmp/x509" --ask fl1 "127.0.0.1:$port_b"
quit_vm "$B/fl1.sock"
kill "${floods[@]}" 2>/dev/null

# More received VMs than the old limit of 64 connections: they do not
# count; a migration and a query still get through.
n=65
for i in $(seq $n); do
	"$KVM_RUN" --name "idle$i" --rundir "$A" --mem 16M --guest idle >/dev/null 2>&1 &
	pids+=($!)
done
all_up() { [ "$(ls "$A"/idle*.sock 2>/dev/null | wc -l)" = "$n" ]; }
wait_for "$n idle VMs" 120 all_up
moved=0
for i in $(seq $n); do
	migrate "$tmp/idle.out" --rundir "$A" "idle$i" "127.0.0.1:$port_b" && moved=$((moved + 1))
done
ok_if "$n VMs migrated to one daemon, each a process of its own there ($moved moved)" \
	[ "$moved" = "$n" ]
start_vm after1 "$A" "$rate1" "$pages16" --mem 256M
if migrate "$tmp/after1.out" --rundir "$A" after1 "127.0.0.1:$port_b" && vm_ok "$B/after1.sock"; then
	tap_ok "with $n VMs received, one more migration succeeds, every page correct"
else
	tap_fail "migration after $n VMs" "$(cat "$tmp/after1.out")" "$(tail -3 "$tmp/daemon-b.log")"
fi
ok_if "and a query is answered" "$KVM_MIGRATE" --tls-dir "$tmp/x509" --ask idle1 "127.0.0.1:$port_b"
for i in $(seq $n); do quit_vm "$B/idle$i.sock"; done
quit_vm "$B/after1.sock"

# The guest memory budget: two 256 MiB VMs fill 512 MiB; a third is refused
# before any page, whatever it says it uses; once one leaves, it fits.
start_daemon m "$tmp/m" --max-guest-mem 512M
for v in bud1 bud2 bud3; do start_vm "$v" "$A" "$rate1" "$pages16" --mem 256M; done
migrate "$tmp/bud1.out" --rundir "$A" bud1 "127.0.0.1:$port_m" &&
	migrate "$tmp/bud2.out" --rundir "$A" bud2 "127.0.0.1:$port_m" && st=0 || st=$?
ok_if "--max-guest-mem 512M: two 256 MiB VMs arrive" [ "$st" = 0 ]
migrate "$tmp/bud3.out" --rundir "$A" bud3 "127.0.0.1:$port_m" && st=0 || st=$?
over() { [ "$st" = 1 ] && grep -q "guest memory budget: the VM has 256 MiB, 512 MiB" "$tmp/bud3.out"; }
ok_if "a third is refused up front with the numbers (exit 1)" over
source_intact "over the budget" "$A/bud3.sock"
quit_vm "$tmp/m/bud1.sock"
wait_for "bud1 to leave" 20 sh -c "! test -S '$tmp/m/bud1.sock'"
freed() { migrate "$tmp/bud3b.out" --rundir "$A" bud3 "127.0.0.1:$port_m" && vm_ok "$tmp/m/bud3.sock"; }
ok_if "once one has gone, it fits: migrated, every page correct" freed
quit_vm "$tmp/m/bud2.sock"
quit_vm "$tmp/m/bud3.sock"

# A slow migration to hold a receive: the receive slots, the deadline. The
# link is capped below the guest's dirtying, and the 1 ms downtime limit
# keeps it from converging where the guest dirties slower than told (the
# sandbox, whose CPU the guest shares with the migration).
slow_k=$(sized 4096 "$T")
slow_rate=$(sized 2000 $(( slow_k / 4 * 2 )))
slow_pages=$(sized 16384 $(( slow_rate * 8 )))
# Both VMs first: the second migration follows the first at once, well
# inside the first one's deadline.
start_daemon one "$tmp/one" --max-receives 1 --max-receive-time "$(pace_time 6)"
start_vm slow1 "$A" "$slow_rate" "$slow_pages" --mem 256M
start_vm two1 "$A" "$rate1" "$pages16" --mem 256M
"$KVM_MIGRATE" --tls-dir "$tmp/x509" --rundir "$A" --bandwidth "${slow_k}K" --downtime-ms 1 \
	slow1 "127.0.0.1:$port_one" >"$tmp/slow1.out" 2>&1 &
mig_pid=$!
wait_for "the first receive" 20 migrating "$A/slow1.sock" 0
migrate "$tmp/two1.out" --rundir "$A" two1 "127.0.0.1:$port_one" && st=0 || st=$?
slots_full() {
	[ "$st" = 1 ] && grep -q '1 migrations are already arriving here' "$tmp/two1.out" && return 0
	sed 's/^/# /' "$tmp/two1.out"
	return 1
}
ok_if "--max-receives 1: a second migration while one arrives is refused (exit 1)" slots_full
source_intact "receive slots full" "$A/two1.sock"
wait "$mig_pid" && st=0 || st=$?
past_deadline() {
	[ "$st" = 1 ] && grep -q 'still arriving at its deadline' "$tmp/slow1.out" && return 0
	sed 's/^/# /' "$tmp/slow1.out"
	grep slow1 "$tmp/daemon-one.log" | sed 's/^/# /'
	return 1
}
ok_if "--max-receive-time: the slow one is refused at its deadline, the source told why (exit 1)" \
	past_deadline
source_intact "past the deadline" "$A/slow1.sock"

# The round bound: the source willing to go 30 rounds, the daemon only 3.
# A downtime limit of 1 ms, not a link slower than the guest, keeps the
# source from converging: in the sandbox the guest may dirty slower than
# it is told to (it shares the CPU with the migration), and a migration
# that converged in 3 rounds would not meet the bound.
start_daemon r "$tmp/r" --max-rounds 3
migrate "$tmp/rounds.out" --rundir "$A" --downtime-ms 1 --max-rounds 30 \
	--trace "$tmp/rounds.csv" slow1 "127.0.0.1:$port_r" && st=0 || st=$?
past_rounds() {
	[ "$st" = 1 ] && grep -q 'more than 3 pre-copy rounds' "$tmp/rounds.out" && return 0
	echo "# kvm-migrate exited $st"
	sed 's/^/# /' "$tmp/rounds.out"
	grep slow1 "$tmp/daemon-r.log" | sed 's/^/# /'
	sed 's/^/# /' "$tmp/rounds.csv"
	return 1
}
ok_if "--max-rounds 3 at the destination: refused after 3 rounds (exit 1)" past_rounds
source_intact "past the round bound" "$A/slow1.sock"
