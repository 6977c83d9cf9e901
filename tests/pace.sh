#!/bin/bash
# The pace of the machine the KVM tests run on, measured where they run (on
# this host's /dev/kvm, or inside the QEMU sandbox when scripts/check uses
# it). Prints shell assignments; tests/lib.sh derives every guest size,
# dirty rate, bandwidth cap and timeout of the migration tests from them
# (tests/README.md, "Sizes follow the machine"):
#   KM_PACE_WHERE      native | sandbox (emulated: figures are far lower)
#   KM_PACE_TLS_PPS    random 4 KiB pages/s through the migration's page path
#                      (lib/pages + lib/stream, lz4 tried) over loopback TLS 1.3
#                      (the slower of two runs)
#   KM_PACE_UNIX_PPS   the same over a unix socket
#   KM_PACE_DIRTY_PPS  distinct pages/s the verify guest dirties on one vCPU,
#                      writing as fast as it can at uniformly random pages of
#                      256 MiB (as the tests' guests do) with dirty logging on
#                      (each first write after a harvest is a write-protect
#                      fault); a floor: at most the 65536 pages of that set
# Usage: tests/pace.sh [--stream-only] [BUILDDIR]   (exit 1 with the reason
# if a figure fails; --stream-only: the stream figures, which need no KVM)
set -u
only_stream=0
[ "${1:-}" = --stream-only ] && { only_stream=1; shift; }
b=${1:-${top_builddir:-$(cd "$(dirname "$0")/.." && pwd)/build}}
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
vm=
cleanup() {
	[ -n "$vm" ] && kill -KILL "$vm" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
die() { echo "tests/pace.sh: $*" >&2; exit 1; }

for f in tests/bench/bench-limits tests/lib/qmp-send kvm/kvm-run; do
	[ -x "$b/$f" ] || die "$b/$f is not built (make check-programs in $b)"
done
where=native
[ -n "${KVM_MIGRATE_IN_SANDBOX:-}" ] && where=sandbox
"$src/scripts/make-certs" "$tmp/x509" >/dev/null 2>&1 || die "scripts/make-certs failed"

# 16 MiB natively is a few tens of ms; in the sandbox 2 MiB take about a second.
mib=16
[ "$where" = sandbox ] && mib=2
say() { [ -n "${KM_PACE_VERBOSE:-}" ] && echo "tests/pace.sh: $(date +%T) $*" >&2; return 0; }
# The slower of two runs: this machine's speed swings by 2x within minutes,
# and the tests had better be sized to its slow moments.
stream_pps() {
	local i v min=
	for i in 1 2; do
		say "stream over $1"
		v=$(timeout 120 "$b/tests/bench/bench-limits" stream --transport "$1" --tls-dir "$tmp/x509" \
			--mib "$mib" | sed -n "s/^stream_$1_pps //p")
		[ -n "$v" ] || return 1
		[ -z "$min" ] || [ "$v" -lt "$min" ] && min=$v
	done
	echo "$min"
}
tls=$(stream_pps tls) && [ -n "$tls" ] || die "bench-limits stream over TLS failed"
unix=$(stream_pps unix) && [ -n "$unix" ] || die "bench-limits stream over a unix socket failed"
if [ "$only_stream" = 1 ]; then
	printf 'KM_PACE_WHERE=%s\nKM_PACE_TLS_PPS=%s\nKM_PACE_UNIX_PPS=%s\n' "$where" "$tls" "$unix"
	exit 0
fi

say "the guest's dirtying pace"
# The guest's dirtying pace, over 256 MiB so that, natively, a one-second
# window is not capped by the working set before about 60000 pages/s.
KVM_MIGRATE_GUEST_DIR=$b/kvm/guest "$b/kvm/kvm-run" --name pace --rundir "$tmp/run" --mem 512M \
	--guest verify --guest-arg rate=0,wss=256M >"$tmp/vm.log" 2>&1 &
vm=$!
qs() { "$b/tests/lib/qmp-send" "$tmp/run/pace.sock" "$@" 2>/dev/null; }
end=$(( $(date +%s) + 120 ))
until qs '{"execute": "query-stats"}' | grep -Eq '"progress": *[1-9]'; do
	kill -0 "$vm" 2>/dev/null || die "kvm-run of the verify guest failed: $(tail -3 "$tmp/vm.log")"
	[ "$(date +%s)" -lt "$end" ] || die "the verify guest reported no progress in 120 s: $(tail -5 "$tmp/vm.log"; qs "{\"execute\": \"query-stats\"}")"
	sleep 0.02
done
say "the guest runs"
dirty=$(qs '{"execute": "query-dirty-rate", "arguments": {"window-ms": 1000}}' |
	sed -n 's/.*"dirty-pages": *\([0-9]*\).*/\1/p')
[ -n "$dirty" ] || die "query-dirty-rate gave no figure: $(tail -3 "$tmp/vm.log")"
qs '{"execute": "quit"}' >/dev/null
wait "$vm" 2>/dev/null
vm=
say "done"

printf 'KM_PACE_WHERE=%s\nKM_PACE_TLS_PPS=%s\nKM_PACE_UNIX_PPS=%s\nKM_PACE_DIRTY_PPS=%s\n' \
	"$where" "$tls" "$unix" "$dirty"
