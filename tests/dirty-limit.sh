#!/bin/bash
# The per-vCPU dirty limit (kvm/dirtylimit.h, set-vcpu-dirty-limit): a
# 2-vCPU guest on the dirty ring whose vCPU 0 computes and vCPU 1 writes as
# fast as it can (dirtier compute=1). With a limit on every vCPU, the
# writer's rate falls to about the limit while the computing vCPU keeps its
# speed; the cancel gives the writer its rate back; bad requests and the
# bitmap backend are refused, saying why. Then a migration that
# auto-converge cannot finish under a throttle cap converges with
# kvm-migrate --dirty-limit. Every rate is measured over a window of
# seconds (the ring mode of kvm-migrate dirty-rate, and the guest's own
# counters bracketing it), never after a sleep.
. "$(dirname "$0")/lib.sh"
require_kvm
. "$(dirname "$0")/lib-migrate.sh"

tap_plan 18

A=$tmp/a B=$tmp/b
mkdir -m 700 "$A" "$B"
"$KVM_RUN" --name m1 --rundir "$A" --mem 128M --vcpus 2 --dirty-log ring --guest dirtier \
	--guest-arg "compute=1,wss=64M,pattern=sequential" >"$tmp/vm-m1.log" 2>&1 &
pids+=($!)
S=$A/m1.sock
wait_for "the mixed guest" 30 all_reported "$S"
field() { printf '%s\n' "$1" | jq -r ".$2"; }
now_ns() { date +%s%N; }
# vcpu_progress SOCK I: vCPU I's progress counter.
vcpu_progress() { q "$1" '{"execute": "query-stats"}' | jq -r ".return.vcpus[$2].progress"; }
# window: a ring measurement of 3 s; sets W_V0/W_V1 (MB/s the rings gave for
# vCPU 0 and 1) and W_C0 (vCPU 0's hash steps per second over the same command).
window() {
	local c0 c1 t0 t1 out
	c0=$(vcpu_progress "$S" 0) t0=$(now_ns)
	out=$("$KVM_MIGRATE" dirty-rate --rundir "$A" m1 --seconds 3 --interval 500 --mode ring \
		--json 2>&1)
	c1=$(vcpu_progress "$S" 0) t1=$(now_ns)
	W_V0=$(field "$out" '"vcpu-pages-per-second"[0] * 4096 / 1e6' 2>/dev/null)
	W_V1=$(field "$out" '"vcpu-pages-per-second"[1] * 4096 / 1e6' 2>/dev/null)
	W_C0=$(awk -v a="$c0" -v b="$c1" -v ns=$(( t1 - t0 )) 'BEGIN {printf "%.0f", (b - a) / (ns / 1e9)}')
	echo "# window: vCPU 0 dirties $W_V0 MB/s and computes $W_C0 steps/s; vCPU 1 dirties $W_V1 MB/s"
}
within() { awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN {exit !(x != "" && x >= lo && x <= hi)}'; }
dl_query() { q "$S" '{"execute": "query-vcpu-dirty-limit"}'; }

# 1. Free running: the writer writes, the computer computes.
window
free_v1=$W_V1 free_c0=$W_C0
ok_if "free: vCPU 1 dirties $free_v1 MB/s, vCPU 0 computes $free_c0 steps/s and dirties $W_V0 MB/s" \
	awk -v v1="$free_v1" -v v0="$W_V0" -v c="$free_c0" 'BEGIN {exit !(v1 >= 4 && c > 0 && v0 < v1 / 10)}'

# 2-4. A limit on every vCPU of a quarter of the writer's free rate (at least 1 MB/s).
LIM=$(awk -v v="$free_v1" 'BEGIN {l = int(v / 4); print l < 1 ? 1 : l}')
r=$(q "$S" "{\"execute\": \"set-vcpu-dirty-limit\", \"arguments\": {\"dirty-rate\": $LIM}}")
ok_if "set-vcpu-dirty-limit $LIM MB/s on every vCPU ($r)" eval 'printf "%s" "$r" | grep -q "\"return\""'
# The controller settles within a few 500 ms periods: wait for the writer's rate to come down.
settled() {
	dl_query | jq -e ".return[1] | .\"current-rate\" > 0 and .\"current-rate\" <= $LIM * 1.3" >/dev/null
}
wait_for "the writer's rate to come down to the limit" 30 settled
window
# Tolerance: +-50 % (the point is the fall, 4x here). The controller
# corrects the writer's run share every 500 ms on the last period's count,
# and a 3 s window holds only six of its decisions; a limited vCPU runs in
# bursts, whose length the host's load sets: on this shared 2-core machine,
# in the sandbox, the kicks and wake-ups are late by milliseconds to tens of
# milliseconds of a 20 ms cycle (measured within 12 % when the machine was
# quiet; once 73 % below under a load of 8, before the controller took half
# steps near the limit over 500 ms periods).
ok_if "limited: vCPU 1 dirties $W_V1 MB/s, the limit $LIM MB/s (within 50 %)" \
	within "$W_V1" "$(awk -v l="$LIM" 'BEGIN {print l * 0.5}')" "$(awk -v l="$LIM" 'BEGIN {print l * 1.5}')"
lim_c0=$W_C0
out=$(dl_query)
ok_if "query-vcpu-dirty-limit: both limited at $LIM, only vCPU 1 slowed ($(printf '%s' "$out" | jq -c '[.return[] | {"cpu-index", "limit-rate", "current-rate", "run-share", "throttled-ms"}]'))" \
	eval 'printf "%s" "$out" | jq -e ".return | length == 2 and .[0].\"limit-rate\" == $LIM and .[1].\"limit-rate\" == $LIM and .[0].\"throttled-ms\" == 0 and .[0].\"run-share\" == 1 and .[1].\"run-share\" < 1 and .[1].\"throttled-ms\" > 0" >/dev/null'

# 5-7. The cancel gives the writer its rate back; the computer was never slowed.
r=$(q "$S" '{"execute": "cancel-vcpu-dirty-limit"}')
released() { dl_query | jq -e ".return[1] | .\"limit-rate\" == 0 and .\"run-share\" == 1" >/dev/null; }
ok_if "cancel-vcpu-dirty-limit ($r): no limit left" released
window
ok_if "cancelled: vCPU 1 dirties $W_V1 MB/s again, against $free_v1 free (at least 70 %)" \
	awk -v v="$W_V1" -v f="$free_v1" 'BEGIN {exit !(v >= 0.7 * f)}'
# The computing vCPU under the limit, against its free rate before and after:
# the two free windows bracket the limited one, and the slower of them is the
# reference, so that the machine's load drifting over the minute (other
# sandboxes on its two cores: the compute rate of a vCPU never asked to
# sleep swung 3x between windows once) does not count as the limit slowing
# it. Tolerance 15 %: a load change within the bracket.
ok_if "limited: vCPU 0 still computed $lim_c0 steps/s, against $free_c0 before and $W_C0 after (at least 85 % of the slower)" \
	awk -v c="$lim_c0" -v a="$free_c0" -v b="$W_C0" 'BEGIN {f = a < b ? a : b; exit !(c >= 0.85 * f)}'

# 8-12. Bad requests, and the bitmap backend.
r=$(q "$S" '{"execute": "set-vcpu-dirty-limit", "arguments": {"dirty-rate": 0}}')
ok_if "dirty-rate 0 is refused ($(field "$r" error.desc))" eval 'printf "%s" "$r" | grep -q "need 0.01 to"'
r=$(q "$S" '{"execute": "set-vcpu-dirty-limit", "arguments": {"dirty-rate": 5, "cpu-index": 2}}')
ok_if "cpu-index 2 of 2 vCPUs is refused ($(field "$r" error.desc))" \
	eval 'printf "%s" "$r" | grep -q "vCPUs 0 to 1"'
r=$(q "$S" '{"execute": "set-vcpu-dirty-limit", "arguments": {"rate": 5}}')
ok_if "an unknown argument is refused ($(field "$r" error.desc))" \
	eval 'printf "%s" "$r" | grep -q "dirty-rate\\\\\": MB/s"'
quit_vm "$S"
"$KVM_RUN" --name m2 --rundir "$A" --mem 64M --guest idle >"$tmp/vm-m2.log" 2>&1 &
pids+=($!)
wait_for "the bitmap VM" 30 answers "$A/m2.sock"
r=$(q "$A/m2.sock" '{"execute": "set-vcpu-dirty-limit", "arguments": {"dirty-rate": 5}}')
ok_if "on a VM without the dirty ring it is refused ($(field "$r" error.desc))" \
	eval 'printf "%s" "$r" | grep -q "needs the dirty-ring backend"'
check "kvm-migrate --dirty-limit on a VM without the dirty ring" 1 "needs the dirty-ring backend" \
	"$KVM_MIGRATE" --rundir "$A" --insecure --dirty-limit 5 m2 "unix:$tmp/none.sock"
quit_vm "$A/m2.sock"

# 13-18. Migration: a writer (one vCPU: in the one-CPU sandbox a computing
# vCPU would take the link's CPU) dirties faster than the link carries, over
# a working set that takes the link about 0.5 s to send. Auto-converge with
# the throttle capped at 50 % (--max-throttle) halves it, which is still
# more than the link: it gives up at the round limit. With --dirty-limit at
# about a tenth of the link, instead, the same migration converges, and no
# vCPU was throttled. (Both together, the limit first and the throttle two
# rounds later if the guest still outruns the link: tests/unit/test-policy.)
start_daemon b "$B" || echo "# daemon b did not start: $(cat "$tmp/daemon-b.log")"
# The link: 64 MiB/s natively; elsewhere what TLS carries here (pace).
cap_k=$(sized 65536 $(( T * 4 )))
"$KVM_RUN" --name m3 --rundir "$A" --mem 128M --dirty-log ring --guest dirtier \
	--guest-arg "wss=$(( cap_k / 2 ))K,pattern=sequential" >"$tmp/vm-m3.log" 2>&1 &
pids+=($!)
wait_for "the migration's guest" 30 all_reported "$A/m3.sock"
# A tenth of the link natively. In the sandbox one emulated CPU runs the
# guest, both ends of the migration and TLS, and the link carries a quarter
# of its cap or less while the guest writes (about 1.5 MB/s): 0.1 MB/s.
dl_mb=$(awk -v k="$cap_k" 'BEGIN {printf "%.1f", k * 1024 / 1e6 / 10}')
emulated && dl_mb=0.1
echo "# link ${cap_k} KiB/s; working set $(( cap_k / 2 )) KiB; dirty limit $dl_mb MB/s"
migrate "$tmp/ac.out" --rundir "$A" --bandwidth "${cap_k}K" --no-compress --auto-converge \
	--max-throttle 50 --max-rounds 6 m3 "127.0.0.1:$port_b" && st=0 || st=$?
ok_if "auto-converge capped at 50 %: does not converge in 6 rounds (exit $st)" \
	sh -c "[ $st = 1 ] && grep -q 'did not converge in 6 rounds' '$tmp/ac.out'"
ok_if "and its throttle reached the cap, 50 %" grep -Eq "throttle +50 %" "$tmp/ac.out"
ok_if "the source VM runs on" running "$A/m3.sock"
migrate "$tmp/dl.out" --rundir "$A" --bandwidth "${cap_k}K" --no-compress \
	--max-rounds 6 --dirty-limit "$dl_mb" --trace "$tmp/dl.csv" \
	m3 "127.0.0.1:$port_b" && st=0 || st=$?
ok_if "with --dirty-limit $dl_mb instead, the same migration converges (exit $st)" \
	sh -c "[ $st = 0 ] && grep -q 'migration completed' '$tmp/dl.out'"
ok_if "by the dirty limit alone (the report: throttle 0 %, dirty limit $dl_mb MB/s per vCPU)" \
	eval 'grep -Eq "throttle +0 %" "$tmp/dl.out" && grep -Eq "dirty limit +$dl_mb" "$tmp/dl.out"'
ok_if "and the VM runs at the destination" running "$B/m3.sock"
quit_vm "$B/m3.sock"
echo "# auto-converge: $(grep -E 'rounds|throttle|error' "$tmp/ac.out" | tr '\n' ' ')"
echo "# dirty limit: $(grep -E 'rounds|throttle|downtime|dirty limit|error' "$tmp/dl.out" | tr '\n' ' ')"
echo "# dirty limit's rounds: $(awk -F, 'NR > 1 {printf "%d pages in %.0f ms; ", $4, $3}' "$tmp/dl.csv")"
