#!/bin/bash
# Live migration on this machine, as users run it: real kvm-run VMs, real
# kvm-migrated daemons (loopback TLS with certificates made by
# scripts/make-certs, and unix sockets), the kvm-migrate client. Every
# migration is followed by the verify guest's own check of every page it
# wrote. The limits and the faults are in migrate-limits.sh and
# migrate-faults.sh. Sizes follow the machine's pace (tests/README.md).
# KVM_MIGRATE_TESTS_QUICK=1: the first migrations only (TLS there and back,
# unix), as the sanitizer pass in the sandbox runs it (scripts/check).
. "$(dirname "$0")/lib.sh"
require_kvm
. "$(dirname "$0")/lib-migrate.sh"

quick=${KVM_MIGRATE_TESTS_QUICK:-0}
if [ "$quick" = 1 ]; then tap_plan 18; else tap_plan 41; fi

A=$tmp/a B=$tmp/b C=$tmp/c
start_daemon b "$B" || echo "# daemon b did not start: $(cat "$tmp/daemon-b.log")"
start_daemon a "$A" || echo "# daemon a did not start"

# TLS over loopback, the verify guest writing on 2 vCPUs while it moves.
rate=$(rate_of 10000 2)
start_vm vm1 "$A" "$rate" "$(wss_pages 64)" --mem 512M --vcpus 2
src_pid=$vm_pid
wait_for "the guest to write a while" 20 progress_above "$A/vm1.sock" "$(sized 5000 "$rate")"
if migrate "$tmp/m1.out" --rundir "$A" --trace "$tmp/m1.csv" --progress "$tmp/p1.csv" vm1 \
	"127.0.0.1:$port_b"; then
	tap_ok "TLS loopback migration of a guest writing $rate pages/s per vCPU: exit 0"
else
	tap_fail "TLS migration exit $?" "$(cat "$tmp/m1.out")" "$(tail -5 "$tmp/daemon-b.log")"
fi
ok_if "the report says completed, with downtime and pages" \
	grep -Eq "migration completed" "$tmp/m1.out"
# Each end's migration threads ran at most the whole migration on two threads.
cpu_ok() {
	awk '/^  total time/ {t = $3} /^  CPU time/ {s = $3; d = $8}
	     END {exit !(s > 0 && d > 0 && s <= 2 * t + 1 && d <= 2 * t + 1)}' "$1"
}
# The trace: one row per round plus the stop-and-copy, whose pages add up
# to the report's (taken with the final status: the source stops after it).
trace_ok() {
	local rounds pages
	rounds=$(awk '/^  rounds/ {print $2}' "$tmp/m1.out")
	pages=$(awk '/^  pages sent/ {print $3}' "$tmp/m1.out")
	awk -F, -v r="$rounds" -v p="$pages" 'NR > 1 {n++; s += $5}
		END {exit !(n == r + 1 && s == p)}' "$tmp/m1.csv"
}
ok_if "--trace: rounds + 1 rows whose pages add up to the report's ($(wc -l <"$tmp/m1.csv") lines)" \
	trace_ok
# Each row's pages by encoding add up to its pages sent, and its remaining
# bytes are its dirty pages' bytes.
split_ok() {
	awk -F, 'NR == 1 {ok = ($11 == "zero_pages" && $12 == "lz4_pages" && $13 == "raw_pages")}
		NR > 1 && ($11 + $12 + $13 != $5 || $9 != $4 * 4096 || $10 < 0) {ok = 0}
		END {exit !ok}' "$tmp/m1.csv"
}
ok_if "--trace: per round, zero + lz4 + raw pages = pages sent, remaining bytes = dirty pages x 4096 ($(awk -F, 'NR == 2 {print "round 0: " $11 " zero, " $12 " lz4, " $13 " raw; expected downtime " $10 " ms"}' "$tmp/m1.csv"))" \
	split_ok
# --progress: the guest's reports at the source until the switchover, then
# at the destination after it; each vCPU's counter never goes back, across
# the move too; the times are in order, and no report falls in the gap.
progress_ok() {
	awk -F, 'NR == 1 {ok = ($0 == "ms,vcpu,counter,host")}
		NR > 1 {if ($4 == "source") {if (d) ok = 0; s++; ss[$2] = 1}
			else if ($4 == "destination") {d++; dd[$2] = 1} else ok = 0
			if ($2 in last && $3 < last[$2]) ok = 0; last[$2] = $3
			if ($1 < prev) ok = 0; prev = $1}
		END {exit !(ok && s > 0 && d > 0 && (0 in ss) && (1 in ss) && (0 in dd) && (1 in dd))}' "$tmp/p1.csv"
}
gap_ms() {	# the time from the last report at the source to the first at the destination
	awk -F, '$4 == "source" {s = $1} $4 == "destination" && !d {d = $1} END {printf "%.1f", d - s}' "$tmp/p1.csv"
}
ok_if "--progress: both vCPUs' reports at the source, then at the destination, in order ($(grep -c ',source$' "$tmp/p1.csv") + $(grep -c ',destination$' "$tmp/p1.csv") rows, a gap of $(gap_ms) ms across the switchover)" \
	progress_ok
# scripts/plot draws it (gnuplot), and an older trace without the encoding columns too.
if "$top_srcdir/scripts/plot" "$tmp/m1.csv" -o "$tmp/m1.png" --size 800x600 >"$tmp/plot.out" 2>&1 &&
   [ "$(png_size "$tmp/m1.png")" = 800x600 ] && cut -d, -f1-8 "$tmp/m1.csv" >"$tmp/old.csv" &&
   "$top_srcdir/scripts/plot" "$tmp/old.csv" --size 640x480 >>"$tmp/plot.out" 2>&1 &&
   [ "$(png_size "$tmp/old.png")" = 640x480 ] &&
   "$top_srcdir/scripts/plot" "$tmp/p1.csv" --size 700x400 >>"$tmp/plot.out" 2>&1 &&
   [ "$(png_size "$tmp/p1.png")" = 700x400 ]; then
	tap_ok "scripts/plot makes PNGs of the trace and of the progress, of the sizes asked ($(tr '\n' ' ' <"$tmp/plot.out"))"
else tap_fail "scripts/plot makes PNGs of the trace and of the progress" "$(cat "$tmp/plot.out")"; fi
ok_if "the report gives both ends' CPU time, each above 0 and at most 2 x total ($(grep -h 'CPU time\|total time' "$tmp/m1.out" | tr -s ' ' | tr '\n' ';'))" \
	cpu_ok "$tmp/m1.out"
ok_if "the VM answers at the destination's run directory" running "$B/vm1.sock"
ok_if "after migration: the guest's check finds all its pages correct" vm_ok "$B/vm1.sock"
wait "$src_pid" && st=0 || st=$?
ok_if "the source kvm-run exited 0 after the switchover" [ "$st" = 0 ]
# The guest resumed where it was: each vCPU's first report at the
# destination is at or past its last one at the source (the source's exit
# table), so a guest restarted from zero fails here.
wait_for "every vCPU's first report at B" 20 all_reported "$B/vm1.sock"
continued() {
	local firsts
	firsts=$(q "$B/vm1.sock" '{"execute": "query-stats"}' |
		grep -o '"first-progress": *[0-9]*' | grep -o '[0-9]*$' | tr '\n' ' ')
	echo "# source's last reports: $(awk '/^  vcpu /{f=1; next} f && NF >= 5 {printf "%s ", $2}' \
		"$tmp/vm-vm1.log"); first at B: $firsts"
	awk -v firsts="$firsts" 'BEGIN {n = split(firsts, f, " ")}
		/^  vcpu /{on = 1; next} on && NF >= 5 {i++; if (i > n || f[i] < $2) bad = 1}
		END {exit !(i == 2 && n == 2 && !bad)}' "$tmp/vm-vm1.log"
}
ok_if "each vCPU's first report at the destination is at or past its last at the source" continued
ok_if "the daemon logged the peer's certificate name" \
	wait_for "the daemon's line" 10 grep -q "VM vm1 from CN=" "$tmp/daemon-b.log"

# And back again: B -> A.
if migrate "$tmp/m2.out" --rundir "$B" vm1 "127.0.0.1:$port_a"; then tap_ok "migrated back B -> A"
else tap_fail "migrate back" "$(cat "$tmp/m2.out")"; fi
ok_if "back at A: every page correct" vm_ok "$A/vm1.sock"
# At once to B again: the copy that just left B may still be exiting
# there, but the name is no longer its own.
if migrate "$tmp/m2b.out" --rundir "$A" vm1 "127.0.0.1:$port_b" && vm_ok "$B/vm1.sock" &&
   migrate "$tmp/m2c.out" --rundir "$B" vm1 "127.0.0.1:$port_a"; then
	tap_ok "A -> B -> A again at once: the departing copy does not hold the name"
else
	tap_fail "at once again" "$(cat "$tmp/m2b.out" "$tmp/m2c.out" 2>/dev/null)"
fi
ok_if "and every page correct at A" vm_ok "$A/vm1.sock"

# A unix-socket transport.
"$KVM_MIGRATED" --listen "unix:$tmp/c.sock" --rundir "$C" >"$tmp/daemon-c.log" 2>&1 &
pids+=($!)
wait_for "daemon c" 10 test -S "$tmp/c.sock"
if migrate "$tmp/m3.out" --rundir "$A" vm1 "unix:$tmp/c.sock"; then tap_ok "unix socket migration"
else tap_fail "unix migration" "$(cat "$tmp/m3.out")"; fi
ok_if "over unix: every page correct" vm_ok "$C/vm1.sock"
quit_vm "$C/vm1.sock"
[ "$quick" = 1 ] && exit 0

# Smaller guests for the rest: one vCPU.
rate1=$(rate_of 2000 1) pages16=$(wss_pages 16)

# A VM paused before its migration arrives paused, and runs on after cont.
start_vm paused1 "$A" "$rate1" "$pages16" --mem 256M
q "$A/paused1.sock" '{"execute": "stop"}' >/dev/null
if migrate "$tmp/paused1.out" --rundir "$A" paused1 "127.0.0.1:$port_b" &&
   q "$B/paused1.sock" '{"execute": "query-status"}' | grep -q '"status": *"paused"'; then
	tap_ok "a paused VM migrates and arrives paused"
else
	tap_fail "paused VM" "$(cat "$tmp/paused1.out")" \
		"$(q "$B/paused1.sock" '{"execute": "query-status"}' 2>&1)"
fi
q "$B/paused1.sock" '{"execute": "cont"}' >/dev/null 2>&1
ok_if "after cont it runs, every page correct" vm_ok "$B/paused1.sock"
quit_vm "$B/paused1.sock"

# Every dirty-tracking backend, 1 and 2 vCPUs.
for be in bitmap clear ring; do
	for v in 1 2; do
		start_vm "be-$be-$v" "$A" "$(rate_of 5000 "$v")" "$(wss_pages 32)" --mem 256M \
			--vcpus "$v" --dirty-log "$be"
		if migrate "$tmp/be.out" --rundir "$A" "be-$be-$v" "127.0.0.1:$port_b" &&
		   vm_ok "$B/be-$be-$v.sock"; then
			tap_ok "--dirty-log $be, $v vCPU(s): migrated, every page correct"
		else
			tap_fail "--dirty-log $be, $v vCPU(s)" "$(cat "$tmp/be.out")"
		fi
		quit_vm "$B/be-$be-$v.sock"
	done
done

# A 4 GiB guest that touched almost nothing: what it never touched is
# neither read nor sent, and is not allocated at the destination.
"$KVM_RUN" --name idle4 --rundir "$A" --mem 4G --guest idle >"$tmp/vm-idle4.log" 2>&1 &
pids+=($!)
wait_for "idle4" 20 running "$A/idle4.sock"
migrate "$tmp/idle4.out" --rundir "$A" --json idle4 "127.0.0.1:$port_b" && st=0 || st=$?
ok_if "idle 4 GiB guest migrates" [ "$st" = 0 ]
wire=$(grep -o '"transferred": *[0-9]*' "$tmp/idle4.out" | grep -o '[0-9]*$')
ok_if "idle 4 GiB: ${wire:-?} bytes on the wire (< 1 MiB)" [ "${wire:-9999999}" -lt 1048576 ]
rss=$(q "$B/idle4.sock" '{"execute": "query-stats"}' | grep -o '"resident": *[0-9]*' | grep -o '[0-9]*$')
ok_if "idle 4 GiB: ${rss:-?} bytes resident at the destination (< 16 MiB)" \
	[ "${rss:-999999999}" -lt 16777216 ]
quit_vm "$B/idle4.sock"

# Capabilities are negotiated: a destination that does not take lz4 gets
# raw pages from a source that offered lz4, and says so in REC_ACCEPT.
KVM_MIGRATE_FAULT=no-lz4 start_daemon nolz "$tmp/nolz"
start_vm nolz1 "$A" "$rate1" "$pages16" --mem 256M
migrate "$tmp/nolz1.out" --rundir "$A" --json nolz1 "127.0.0.1:$port_nolz" && st=0 || st=$?
nolz_ok() { [ "$st" = 0 ] && vm_ok "$tmp/nolz/nolz1.sock"; }
ok_if "a destination without lz4: the migration completes, every page correct" nolz_ok
raw_only() {
	grep -Eq '"compressed": *0[,}]' "$tmp/nolz1.out" && grep -q "does not take lz4" "$tmp/vm-nolz1.log"
}
ok_if "the source offered lz4, was told no, and sent no lz4 page" raw_only
one_line() {	# one_line LOG VM PATTERN: the daemon said one line of that VM, matching
	wait_for "the daemon's line" 10 grep -q "$2.*from CN=.*$3" "$1" &&
		[ "$(grep "kvm-migrated\[" "$1" | grep -c "$2")" = 1 ] ||
		{ echo "# $(grep "$2" "$1")"; return 1; }
}
ok_if "the daemon logged one line for the migration: peer and outcome" \
	one_line "$tmp/daemon-nolz.log" nolz1 "runs here: 256 MiB, 1 vCPU"
quit_vm "$tmp/nolz/nolz1.sock"

# A destination that cannot hold the VM refuses it up front, saying why
# (here it must keep more free than the host has), and the source runs on.
start_daemon full "$tmp/full" --min-free 1000000G
start_vm full1 "$A" "$rate1" "$pages16" --mem 256M
migrate "$tmp/full1.out" --rundir "$A" full1 "127.0.0.1:$port_full" && st=0 || st=$?
refused_mem() {
	[ "$st" = 1 ] && grep -q "not enough memory here: the VM has [0-9]* MiB in use" "$tmp/full1.out" &&
		wait_for "the daemon's line" 10 grep -q "not enough memory here" "$tmp/daemon-full.log"
}
ok_if "a destination without the memory refuses at once, saying why (exit 1)" refused_mem
ok_if "the daemon logged one line for the refusal: peer and reason" \
	one_line "$tmp/daemon-full.log" full1 "refused: not enough memory"
source_intact "not enough memory there" "$A/full1.sock"
quit_vm "$A/full1.sock"

# The name already runs at the destination: refused before any page, the
# source runs on, and the VM already there is untouched.
start_vm dup1 "$A" "$rate1" "$pages16" --mem 256M
start_vm dup1 "$B" "$rate1" "$pages16" --mem 256M
migrate "$tmp/dup1.out" --rundir "$A" dup1 "127.0.0.1:$port_b" && st=0 || st=$?
dup_refused() { [ "$st" = 1 ] && grep -q "a VM named dup1 already runs here" "$tmp/dup1.out"; }
ok_if "a VM of that name already runs at the destination: refused, saying so (exit 1)" dup_refused
source_intact "name taken there" "$A/dup1.sock"
dup_there_ok() { running "$B/dup1.sock" && vm_ok "$B/dup1.sock"; }
ok_if "the VM already at the destination still runs, correct" dup_there_ok
quit_vm "$A/dup1.sock"
quit_vm "$B/dup1.sock"

# Plain TCP when both sides say --insecure.
"$KVM_MIGRATED" --listen 127.0.0.1:0 --insecure --rundir "$tmp/e" >"$tmp/daemon-e.log" 2>&1 &
pids+=($!)
wait_for "daemon e" 10 grep -q "listening on" "$tmp/daemon-e.log"
port_e=$(sed -n 's/.*, port \([0-9]*\),.*/\1/p' "$tmp/daemon-e.log")
start_vm plain1 "$A" "$rate1" "$pages16" --mem 256M
if migrate "$tmp/plain1.out" --rundir "$A" --insecure plain1 "127.0.0.1:$port_e" &&
   vm_ok "$tmp/e/plain1.sock"; then
	tap_ok "--insecure on both sides: plain TCP works, every page correct"
else
	tap_fail "--insecure" "$(cat "$tmp/plain1.out")"
fi
quit_vm "$tmp/e/plain1.sock"
