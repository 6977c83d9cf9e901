#!/bin/bash
# kvm-run as a user runs it: real processes on /dev/kvm, the control socket,
# guests that fail, and memory that stays untouched.
. "$(dirname "$0")/lib.sh"
require_kvm

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

tap_plan 34

# 1-2. An 8 GiB idle guest touches almost nothing: RSS stays small.
out=$("$KVM_RUN" --mem 8G --guest idle --seconds 2 2>&1) && st=0 || st=$?
if [ $st = 0 ]; then tap_ok "idle 8G runs 2 s and exits 0"; else tap_fail "idle 8G exit $st" "$out"; fi
rss=$(printf '%s\n' "$out" | sed -n 's/.*peak RSS *\([0-9]*\) MiB.*/\1/p')
if [ -n "$rss" ] && [ "$rss" -lt 64 ]; then tap_ok "idle 8G peak RSS ${rss} MiB < 64 MiB"
else tap_fail "idle 8G peak RSS '${rss}' MiB, wanted < 64" "$out"; fi

# 3. A guest that triple-faults (ud2 with no IDT) is reported, exit 1, no hang.
printf '\x0f\x0b' > "$tmp/ud2.bin"
check "triple-faulting guest: clear error, exit 1" 1 "triple fault" \
	timeout 30 "$KVM_RUN" --guest "$tmp/ud2.bin"
# 4. A privileged instruction at CPL3 (hlt) ends the same way.
printf '\xf4' > "$tmp/hlt.bin"
check "privileged instruction: clear error, exit 1" 1 "triple fault" \
	timeout 30 "$KVM_RUN" --guest "$tmp/hlt.bin"

# 5-25. The control socket of a running dirtier VM.
run="$tmp/run"
"$KVM_RUN" --name t1 --rundir "$run" --mem 64M --vcpus 2 --guest verify \
	--guest-arg rate=5000,wss=8M >"$tmp/t1.out" 2>&1 &
pid=$!
pids+=("$pid")
sock="$run/t1.sock"
if wait_for "the control socket" 30 "$QMP_SEND" "$sock"; then tap_ok "control socket at RUNDIR/NAME.sock"
else tap_fail "no control socket" "$(cat "$tmp/t1.out")"; fi

q() { "$QMP_SEND" "$sock" "$@"; }
expect() {	# expect DESC PATTERN REQUEST...
	local desc="$1" pat="$2" out
	shift 2
	out=$(q "$@" 2>&1)
	if printf '%s\n' "$out" | grep -Eq -- "$pat"; then tap_ok "$desc"
	else tap_fail "$desc" "reply: $out" "wanted /$pat/"; fi
}
expect "query-status: running" '"status": ?"running"' '{"execute": "query-status"}'
expect "malformed JSON gets an error reply" '"error".*"GenericError"' '{"execute": '
expect "a JSON array gets an error reply" '"error"' '[1, 2]'
expect "unknown command: CommandNotFound" '"CommandNotFound"' '{"execute": "nosuch"}'
expect "arguments must be an object" '"error"' '{"execute": "query-status", "arguments": 3}'
expect "the VM keeps running after bad requests" '"running": ?true' '{"execute": "query-status"}'
expect "stop pauses" '"status": ?"paused"' '{"execute": "stop"}' '{"execute": "query-status"}'
expect "check refused while paused" '"error"' '{"execute": "check"}'
expect "cont resumes" '"status": ?"running"' '{"execute": "cont"}' '{"execute": "query-status"}'
expect "query-stats reports progress per vCPU" '"vcpus": ?\[\{.*"progress"' '{"execute": "query-stats"}'
expect "verify guest: check finds no bad page" '"bad": ?0[,}]' '{"execute": "check"}'
expect "query-stats: dirty tracking idle without subscribers" '"dirty": ?\{[^}]*"logging": ?false' '{"execute": "query-stats"}'
expect "query-dirty-rate measures a window" '"dirty-pages": ?[1-9][0-9]*.*"pages-per-second"' '{"execute": "query-dirty-rate", "arguments": {"window-ms": 300}}'
expect "query-dirty-rate refuses a bad window" '"error"' '{"execute": "query-dirty-rate", "arguments": {"window-ms": 1}}'
expect "dirty-log on: logging without subscribers" '"logging": ?true' '{"execute": "dirty-log", "arguments": {"mode": "on"}}'
expect "dirty-log auto: off again" '"logging": ?false' '{"execute": "dirty-log", "arguments": {"mode": "auto"}}'
expect "dirty-log refuses an unknown mode" '"error"' '{"execute": "dirty-log", "arguments": {"mode": "sometimes"}}'
expect "verify guest still correct after the toggles" '"bad": ?0[,}]' '{"execute": "check"}'
expect "quit is acknowledged" '"return"' '{"execute": "quit"}'
if wait "$pid"; then tap_ok "kvm-run exits 0 after quit"; else tap_fail "kvm-run exit $? after quit" "$(cat "$tmp/t1.out")"; fi

# 26-28. A ring-backed VM; SIGTERM stops it cleanly and removes the socket.
"$KVM_RUN" --name t2 --rundir "$run" --guest dirtier --guest-arg rate=1000 \
	--dirty-log ring --dirty-ring-size 64K >"$tmp/t2.out" 2>&1 &
pid=$!
pids+=("$pid")
sock=$run/t2.sock
if wait_for "t2's socket" 30 "$QMP_SEND" "$sock"; then
	expect "--dirty-log ring: the backend in query-stats" '"backend": ?"ring"' '{"execute": "query-stats"}'
else
	tap_fail "--dirty-log ring: no control socket" "$(cat "$tmp/t2.out")"
fi
kill -TERM "$pid"
if wait "$pid"; then tap_ok "SIGTERM: exit 0"; else tap_fail "SIGTERM: exit $?" "$(cat "$tmp/t2.out")"; fi
if [ ! -e "$run/t2.sock" ]; then tap_ok "socket removed at exit"; else tap_fail "socket left behind"; fi

# 29-30. The stall a guest feels leaves out the sleeps it asked for: an idle
# guest (asleep 90 ms per loop) feels none; a stop of the VM shows as the
# time it ran late against its own plan.
"$KVM_RUN" --name t3 --rundir "$run" --mem 64M --guest idle >"$tmp/t3.out" 2>&1 &
pid=$!
pids+=("$pid")
sock=$run/t3.sock
stat_of() { q '{"execute": "query-stats"}' | grep -o "\"$1\": *[0-9.]*" | head -1 | grep -o '[0-9.]*$'; }
reports_above() { [ "$(stat_of reports)" -gt "$1" ] 2>/dev/null; }
wait_for "t3's reports" 30 reports_above 3 || echo "# no reports from the idle guest"
felt=$(stat_of max-guest-stall-ms)
if reports_above 3 && awk -v f="$felt" 'BEGIN {exit !(f != "" && f < 85)}'; then
	tap_ok "idle guest: max-guest-stall-ms ${felt} < 85 (its 90 ms sleeps are not stalls)"
else
	tap_fail "idle guest felt a stall of '${felt}' ms" "$(q '{"execute": "query-stats"}')"
fi
n=$(stat_of reports)
t0=$(date +%s%N)
q '{"execute": "stop"}' >/dev/null
sleep 0.4	# the stall to be felt (measured below, not assumed)
q '{"execute": "cont"}' >/dev/null
paused_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait_for "a report after cont" 30 reports_above "$((n + 1))" || echo "# no report after cont"
felt=$(stat_of max-guest-stall-ms)
# The vCPUs were parked at least the 400 ms between stop's reply and cont,
# and at most paused_ms; a sleep of at most 90 ms can hide part of that.
if reports_above "$((n + 1))" &&
   awk -v f="$felt" -v p="$paused_ms" 'BEGIN {exit !(f != "" && f >= 400 - 90 && f <= p + 50)}'; then
	tap_ok "a ${paused_ms} ms stop: the guest felt ${felt} ms (at least 400 - 90, at most the stop)"
else
	tap_fail "a ${paused_ms} ms stop, felt '${felt}' ms" "$(q '{"execute": "query-stats"}')"
fi
q '{"execute": "quit"}' >/dev/null
wait "$pid" 2>/dev/null || true

# A long command (a 10 s dirty-rate window) does not hold up other clients:
# a query is answered and a quit ends the VM long before the window closes.
"$KVM_RUN" --name t4 --rundir "$run" --mem 64M --guest verify --guest-arg rate=200,wss=1M \
	>"$tmp/t4.out" 2>&1 &
pid=$!
pids+=("$pid")
sock=$run/t4.sock
wait_for "t4's socket" 30 "$QMP_SEND" "$sock"
q '{"execute": "query-dirty-rate", "arguments": {"window-ms": 10000}}' >"$tmp/long.out" 2>&1 &
long=$!
window_open() { q '{"execute": "query-stats"}' | grep -q '"subscribers": *[1-9]'; }
ok_if "the long command is under way (its dirty-log subscriber exists)" \
	wait_for "the window to open" 10 window_open
t0=$(date +%s%N)
expect "meanwhile another client's query-status is answered" '"running": ?true' '{"execute": "query-status"}'
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
ok_if "... in ${ms} ms, not after the window (< 5000)" [ "$ms" -lt 5000 ]
t0=$(date +%s%N)
q '{"execute": "quit"}' >/dev/null
wait "$pid"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait "$long"
ok_if "quit during the window: the VM ends in ${ms} ms (< 5000), the long command answers" \
	sh -c "[ $ms -lt 5000 ] && grep -q 'the VM stopped during the window' '$tmp/long.out'"
