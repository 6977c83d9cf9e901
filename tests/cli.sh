#!/bin/bash
# kvm-run refuses bad command lines with a clear message and status 2,
# before touching KVM (so this runs everywhere).
. "$(dirname "$0")/lib.sh"

tap_plan 42
check "--help exits 0"               0 "Usage: kvm-run"            "$KVM_RUN" --help
check "--version exits 0"            0 "kvm-run \(kvm-migrate"     "$KVM_RUN" --version
check "--mem too small"              2 "--mem '3M'"                "$KVM_RUN" --mem 3M
check "--mem not a multiple of 2M"   2 "multiple of 2M"            "$KVM_RUN" --mem 17M
check "--mem garbage"                2 "--mem 'lots'"              "$KVM_RUN" --mem lots
check "--mem overflow"               2 "--mem"                     "$KVM_RUN" --mem 99999999999999999999G
check "--vcpus 0"                    2 "need 1 to 16"              "$KVM_RUN" --vcpus 0
check "--vcpus 17"                   2 "need 1 to 16"              "$KVM_RUN" --vcpus 17
check "--vcpus not a number"         2 "need 1 to 16"              "$KVM_RUN" --vcpus two
check "--seconds 0"                  2 "--seconds '0'"             "$KVM_RUN" --seconds 0
check "--seconds negative"           2 "--seconds '-1'"            "$KVM_RUN" --seconds -1
check "--name with a slash"          2 "--name 'a/b'"              "$KVM_RUN" --name a/b
check "unknown option"               2 "unrecognized option"       "$KVM_RUN" --frobnicate
check "stray argument"               2 "unexpected argument 'x'"   "$KVM_RUN" x
check "--guest-arg too long"         2 "longer than 1023 bytes"    "$KVM_RUN" --guest-arg "$(head -c 2000 /dev/zero | tr '\0' a)"
check "unknown guest"                3 "guest 'nosuch' not found"  "$KVM_RUN" --guest nosuch
check "--dirty-log unknown backend"  2 "use bitmap, clear or ring" "$KVM_RUN" --dirty-log pml
check "--dirty-ring-size not 2^n"    2 "power of two"              "$KVM_RUN" --dirty-ring-size 5000
check "--dirty-ring-size too small"  2 "power of two"              "$KVM_RUN" --dirty-ring-size 1K
check "--record-interval 0"          2 "--record-interval '0'"     "$KVM_RUN" --record-dirty /dev/null --record-interval 0
check "--record-interval alone"      2 "needs --record-dirty"      "$KVM_RUN" --record-interval 50

# kvm-migrate and kvm-migrated: bad command lines and unreachable things.
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
check "kvm-migrate --help exits 0"    0 "Usage: kvm-migrate"        "$KVM_MIGRATE" --help
# Dirty traces (docs/format.md s.10): what needs no recorded trace.
check "kvm-migrate trace without a file" 2 "Usage: kvm-migrate trace" "$KVM_MIGRATE" trace
check "kvm-migrate trace: a missing file" 3 "No such file" "$KVM_MIGRATE" trace "$t/nosuch.kmdt"
printf 'not a dirty trace at all, just text\n' >"$t/text"
check "kvm-migrate trace: not a trace" 1 "not a kvm-migrate record file" "$KVM_MIGRATE" trace "$t/text"
check "kvm-migrate simulate without --bandwidth" 2 "bandwidth is required" \
	"$KVM_MIGRATE" simulate "$t/text"
check "kvm-migrate simulate --compress below 1" 2 "--compress '0.5'" \
	"$KVM_MIGRATE" simulate "$t/text" --bandwidth 1G --compress 0.5
check "kvm-migrate needs SRC and DST" 2 "need SRC and DST"          "$KVM_MIGRATE" vm1
check "kvm-migrate --downtime-ms 0"   2 "--downtime-ms '0'"         "$KVM_MIGRATE" --downtime-ms 0 a b
check "kvm-migrate --bandwidth junk"  2 "--bandwidth 'fast'"        "$KVM_MIGRATE" --bandwidth fast a b
check "kvm-migrate: no such VM"       3 "cannot reach its control socket" \
	"$KVM_MIGRATE" --rundir "$t" nosuchvm 127.0.0.1
check "kvm-migrated --help exits 0"   0 "Usage: kvm-migrated"       "$KVM_MIGRATED" --help
check "kvm-migrated unknown option"   2 "unrecognized option"       "$KVM_MIGRATED" --frobnicate
check "kvm-migrated: no TLS material" 3 "TLS: cannot read .*server-key.pem" \
	"$KVM_MIGRATED" --listen 127.0.0.1:0 --tls-dir "$t/none" --rundir "$t/run"
check "kvm-migrated: bad address"     3 "bad address .127.0.0.1:99999" \
	"$KVM_MIGRATED" --insecure --listen 127.0.0.1:99999 --rundir "$t/run"
check "kvm-migrated --io-timeout 0"   2 "--io-timeout '0'"          "$KVM_MIGRATED" --io-timeout 0
check "kvm-migrated --min-free junk"  2 "--min-free 'lots'"         "$KVM_MIGRATED" --min-free lots
# The example systemd unit, with this build's binary: systemd's own check.
if command -v systemd-analyze >/dev/null; then
	sed -e "s|@bindir@|$top_builddir/migrate|g" "$top_srcdir/migrate/kvm-migrated.service.in" \
		>"$t/kvm-migrated.service"
	check "the systemd unit passes systemd-analyze verify, KillMode=process" 0 "" \
		sh -c "systemd-analyze verify '$t/kvm-migrated.service' && grep -q '^KillMode=process' '$t/kvm-migrated.service'"
else
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N # SKIP systemd-analyze is not installed: the unit file is not checked"
fi


# scripts/plot: what is not a trace is refused, and nothing is written.
PLOT="$top_srcdir/scripts/plot"
printf 'a,b,c\n1,2,3\n' >"$t/notrace.csv"
check "plot: a file that is not a trace"   1 "not a kvm-migrate --trace file" "$PLOT" "$t/notrace.csv"
printf 'round,start_ms,duration_ms,dirty_pages,pages_sent,bytes,mbps,throttle_pct\n0,0,1,2,x,4,5,0\n' >"$t/bad.csv"
check "plot: a row that is not numbers"    1 "line 2 is not a row of numbers" "$PLOT" "$t/bad.csv"
check "plot: --size garbage"               2 "WIDTHxHEIGHT"                   "$PLOT" "$t/bad.csv" --size big
ok_if "plot: nothing written for them" eval '! ls "$t"/*.png >/dev/null 2>&1'
