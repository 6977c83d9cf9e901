# Shared by the migration tests (sourced after lib.sh and require_kvm):
# certificates, daemons, verify VMs, kvm-migrate, and the sizes of all of
# them, which follow the machine's pace (tests/README.md).

tmp=$(mktemp -d)
pids=()
cleanup() {
	exec 2>/dev/null	# no "Killed" notices for what is killed on purpose
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	pkill -KILL -f "$tmp/" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# ---- sizes: the native ones, or derived from the pace (lib.sh) -----------
T=$KM_PACE_TLS_PPS
D=$KM_PACE_DIRTY_PPS
# wss_pages NATIVE_MIB: a working set whose first copy takes about 2 s over TLS.
wss_pages() { sized $(( $1 * 256 )) $(( 2 * T )); }
# rate_of NATIVE VCPUS: a per-vCPU rate for a writer that converges: its
# vCPUs together dirty at most a tenth of what the link carries (the link
# may be slower than measured a minute later) and a quarter of what the
# guest can.
rate_of() {
	local link=$(( T / (10 * $2) )) guest=$(( D / (4 * $2) ))
	sized "$1" $(( link < guest ? link : guest ))
}
# The downtime limit every migration here is given: the default natively.
MIG_DOWNTIME=$(pace_time 50)

# start_daemon NAME RUNDIR [ARGS...]: a kvm-migrated on 127.0.0.1, port chosen
# by the kernel; sets port_NAME and pid_NAME.
start_daemon() {
	local name="$1" rundir="$2" log="$tmp/daemon-$1.log"
	shift 2
	"$KVM_MIGRATED" --listen 127.0.0.1:0 --tls-dir "$tmp/x509" --rundir "$rundir" "$@" \
		>"$log" 2>&1 &
	pids+=($!)
	eval "pid_$name=$!"
	wait_for "daemon $name" 10 grep -q "listening on" "$log" || return 1
	eval "port_$name=$(sed -n 's/.*, port \([0-9]*\),.*/\1/p' "$log")"
}

# start_vm NAME RUNDIR RATE PAGES [kvm-run ARGS...]: a verify VM writing RATE
# pages/s per vCPU (0: as fast as it can) over PAGES pages; waits until the
# guest has reported progress. Sets vm_pid; vm_ok knows its page count.
declare -A VM_PAGES
start_vm() {
	local name="$1" rundir="$2" rate="$3" pages="$4"
	shift 4
	VM_PAGES[$name]=$pages
	"$KVM_RUN" --name "$name" --rundir "$rundir" --guest verify \
		--guest-arg "rate=$rate,wss=$(( pages * 4 ))K" "$@" >"$tmp/vm-$name.log" 2>&1 &
	pids+=($!)
	vm_pid=$!
	wait_for "VM $name" 20 progress_above "$rundir/$name.sock" 0 ||
		echo "# VM $name: $(tail -3 "$tmp/vm-$name.log")"
}
# vm_ok SOCK: the verify guest behind SOCK checked all its pages, none bad.
vm_ok() {
	local n=${1##*/}
	n=${n%.sock}
	checked_ok "$1" "${VM_PAGES[$n]}"
}
# The sum of the vCPUs' progress counters (or of their first reports here).
progress() {
	q "$1" '{"execute": "query-stats"}' 2>/dev/null |
		grep -o "\"${2:-progress}\": *[0-9]*" | grep -o '[0-9]*$' | awk '{s += $1} END {print s + 0}'
}
progress_above() { [ "$(progress "$1")" -gt "$2" ]; }
# Every vCPU has reported at SOCK (this process's first reports are in).
all_reported() {
	local r
	r=$(q "$1" '{"execute": "query-stats"}' 2>/dev/null | grep -o '"reports": *[0-9]*') &&
		[ -n "$r" ] && ! printf '%s\n' "$r" | grep -q '"reports": *0$'
}
# The source after a failed migration: running, every page correct.
source_intact() {
	ok_if "$1: the source VM still runs" running "$2"
	ok_if "$1: the source guest's pages all check" vm_ok "$2"
}
# migrate OUT SRC DST [ARGS...]: kvm-migrate with the certificates, output
# in OUT; returns its status. A caller may run it through MIG_VIA (a
# command prefix, e.g. ip netns exec).
MIG_VIA=()
migrate() {
	local out="$1"
	shift
	timeout "$(pace_time 120)" "${MIG_VIA[@]}" "$KVM_MIGRATE" --tls-dir "$tmp/x509" \
		--downtime-ms "$MIG_DOWNTIME" "$@" >"$out" 2>&1
}
migrating() {	# migrating SOCK BYTES: the migration is active and sent more than BYTES
	local st
	st=$(q "$1" '{"execute": "query-migrate"}' 2>/dev/null) &&
		printf '%s\n' "$st" | grep -q '"status": *"active"' &&
		[ "$(printf '%s\n' "$st" | grep -o '"transferred": *[0-9]*' | grep -o '[0-9]*$')" \
			-gt "$2" ] 2>/dev/null
}
quit_vm() { q "$1" '{"execute": "quit"}' >/dev/null 2>&1; }

"$MAKE_CERTS" "$tmp/x509" >/dev/null 2>&1 || bail "scripts/make-certs failed"
