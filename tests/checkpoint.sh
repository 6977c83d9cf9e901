#!/bin/bash
# Checkpoints of a running verify guest (docs/kvm-snapshot.1): periodic and
# asked-for, bases and increments; restores of a base, of the middle of a
# chain and of the newest, each proven twice: the restored memory has the
# hash the VM's memory had at the capture, and the guest's own check finds
# every page it wrote at the version it wrote last. Each outcome is a
# CHECKPOINT event for the control socket's clients that enable events, and
# only for them.
. "$(dirname "$0")/lib.sh"
require_kvm
. "$(dirname "$0")/lib-migrate.sh"
. "$(dirname "$0")/lib-checkpoint.sh"

tap_plan 38

run="$tmp/run"
ck="$tmp/ck"
PAGES=$(wss_pages 64)
RATE=$(rate_of 20000 2)
echo "# working set $PAGES pages, $RATE pages/s per vCPU"


# 1-2. Periodic checkpoints while the guest writes.
start_vm c1 "$run" "$RATE" "$PAGES" --mem 256M --vcpus 2 --checkpoint-dir "$ck" \
	--checkpoint-every "$(pace_time 200)" --checkpoint-chain 4
sock="$run/c1.sock"
ok_if "periodic checkpoints are taken while the guest writes" \
	wait_for "5 checkpoints" 60 taken "$sock" 5
st=$(q "$sock" '{"execute": "query-checkpoints"}')
ok_if "none failed, and the VM runs on" \
	eval '[ "$(field "$st" failed)" = 0 ] && running "$sock"'

# 3-6. A base, increments on it, and the newest, each with the memory's hash.
q "$sock" '{"execute": "checkpoint-set", "arguments": {"every-ms": 0}}' >/dev/null
if ckpt "$sock" '{"full": true, "hash": true}' &&
   [ "$(field "$reply" kind)" = base ]; then tap_ok "a base on request"
else tap_fail "a base on request" "$reply"; fi
base=$(field "$reply" id) base_hash=$(field "$reply" memory-hash)
ckpt "$sock" '{}'
ckpt "$sock" '{"hash": true}'
mid=$(field "$reply" id) mid_hash=$(field "$reply" memory-hash)
if [ "$(field "$reply" kind)" = increment ] && [ -n "$mid_hash" ]; then
	tap_ok "increments on it"
else tap_fail "increments on it" "$reply"; fi
ckpt "$sock" '{}'
ckpt "$sock" '{"hash": true}'
new=$(field "$reply" id) new_hash=$(field "$reply" memory-hash)
ok_if "checkpoint ids grow ($base < $mid < $new)" \
	eval '[ "$base" -lt "$mid" ] && [ "$mid" -lt "$new" ]'
ok_if "the guest's pages all check before it stops" vm_ok "$sock"
quit_vm "$sock"
wait_for "c1 to stop" 30 eval '! kill -0 '"$vm_pid"

# restored ID HASH NAME: kvm-run --restore DIR@ID, paused; its memory has
# HASH; then it runs and its check finds every page right.
restored() {
	local id="$1" hash="$2" name="$3" s="$run/$3.sock" got
	VM_PAGES[$name]=$PAGES
	"$KVM_RUN" --name "$name" --rundir "$run" --restore "$ck@$id" --paused \
		>"$tmp/vm-$name.log" 2>&1 &
	pids+=($!)
	if ! wait_for "restored $name" 30 answers "$s"; then
		tap_fail "checkpoint $id restores" "$(tail -3 "$tmp/vm-$name.log")"
		tap_fail "checkpoint $id: the guest checks"
		return
	fi
	got=$(field "$(q "$s" '{"execute": "query-memory-hash"}')" hash)
	if [ -n "$hash" ] && [ "$got" = "$hash" ]; then
		tap_ok "checkpoint $id restores byte for byte (memory hash $got)"
	else tap_fail "checkpoint $id restores byte for byte" "hash $got, wanted $hash"; fi
	q "$s" '{"execute": "cont"}' >/dev/null
	ok_if "checkpoint $id: the guest runs on and its pages all check" vm_ok "$s"
	quit_vm "$s"
}
# 7-12.
restored "$base" "$base_hash" r1
restored "$mid" "$mid_hash" r2
restored "$new" "$new_hash" r3

# 13. The newest is the default.
"$KVM_RUN" --name r4 --rundir "$run" --restore "$ck" --paused >"$tmp/vm-r4.log" 2>&1 &
pids+=($!)
wait_for "r4" 30 answers "$run/r4.sock"
got=$(field "$(q "$run/r4.sock" '{"execute": "query-memory-hash"}')" hash)
ok_if "--restore DIR restores the newest ($new)" \
	eval 'grep -q "from checkpoint $new " "$tmp/vm-r4.log" && [ "$got" = "$new_hash" ]'
quit_vm "$run/r4.sock"

# 14-17. Compaction while the VM goes on checkpointing into the same store.
ck2="$tmp/ck2"
start_vm c2 "$run" "$RATE" "$PAGES" --mem 256M --vcpus 2 --checkpoint-dir "$ck2" \
	--checkpoint-every "$(pace_time 100)"
wait_for "3 checkpoints" 60 taken "$run/c2.sock" 3
ok=0
for i in 1 2 3; do
	"$KVM_SNAPSHOT" compact "$ck2" >>"$tmp/compact.out" 2>&1 && ok=$((ok + 1))
	n=$(field "$(q "$run/c2.sock" '{"execute": "query-checkpoints"}')" taken)
	wait_for "a checkpoint after compaction $i" 60 taken "$run/c2.sock" $(( n + 2 ))
done
ok_if "kvm-snapshot compact while the VM checkpoints ($ok of 3 merged a chain)" \
	eval '[ "$ok" -ge 1 ] && ! grep -v -e "is now base" -e "is a base: nothing" "$tmp/compact.out"'
st=$(q "$run/c2.sock" '{"execute": "query-checkpoints"}')
# One may fail if a compaction removed its parent between its check and its
# commit (its pages then go to the next one): that is the only failure allowed.
ok_if "the VM's checkpoints went on (failed: $(field "$st" failed), only ever for a parent compacted away)" \
	eval '[ "$(field "$st" failed)" = 0 ] || printf "%s\n" "$st" | grep -q "is not listed (removed meanwhile"'
ckpt "$run/c2.sock" '{"hash": true}'
c2_id=$(field "$reply" id) c2_hash=$(field "$reply" memory-hash)
check "every listed checkpoint verifies" 0 "all restorable" "$KVM_SNAPSHOT" verify "$ck2"
ok_if "the newest, taken after compactions, has the memory of its capture" \
	test "$("$KVM_SNAPSHOT" memory-hash "$ck2@$c2_id")" = "$c2_hash"
quit_vm "$run/c2.sock"

# 18-19. Bad requests get clear errors.
check "--restore of an id that is not there" 3 "checkpoint 99999 |99999.*(not|no)" \
	"$KVM_RUN" --restore "$ck@99999"
check "--restore with --mem is refused" 2 "come from the checkpoint" \
	"$KVM_RUN" --restore "$ck" --mem 64M

# 20-25. Each checkpoint's outcome as a CHECKPOINT event (docs/control.md),
# sent only to the clients that enabled events.
start_vm e1 "$run" "$RATE" "$PAGES" --mem 256M --vcpus 2 --checkpoint-dir "$tmp/ck-ev" \
	--checkpoint-every "$(pace_time 200)"
es="$run/e1.sock"
# line_of OUT PATTERN...: the number of the first line of OUT holding every PATTERN (grep -F).
line_of() {
	local lines p
	lines=$(printf '%s\n' "$1" | grep -n '')
	shift
	for p in "$@"; do lines=$(printf '%s\n' "$lines" | grep -F -- "$p"); done
	printf '%s\n' "$lines" | head -1 | cut -d: -f1
}
out=$(q -g "$es" 2>&1)
ok_if "the greeting offers the events capability" \
	eval 'printf "%s\n" "$out" | head -1 | grep -q "\"capabilities\":\[\"events\"\]"'
# An unknown capability beside events: refused, and events stay off (the
# next checkpoint's reply is the very next line, -x).
out=$(q -x "$es" '{"execute": "qmp_capabilities", "arguments": {"enable": ["events", "oob"]}, "id": 1}' \
	'{"execute": "checkpoint", "id": 2}' 2>&1) && st=0 || st=$?
if [ "$st" = 0 ] && printf '%s\n' "$out" | head -1 | grep -q '"error".*oob' &&
   printf '%s\n' "$out" | sed -n 2p | grep -q '"return"'; then
	tap_ok "qmp_capabilities with an unknown capability is refused, naming it, and enables nothing"
else tap_fail "qmp_capabilities with an unknown capability is refused" "exit $st" "$out"; fi

out=$(q -e -w CHECKPOINT -t "$(pace_time 60)" "$es" 2>&1)
ev=$(printf '%s\n' "$out" | grep '"event":"CHECKPOINT"' | head -1)
id=$(field "$ev" id)
echo "# $ev"
if [ "$(field "$ev" status)" = completed ] && [ "$(field "$ev" trigger)" = periodic ] &&
   [ "$(field "$ev" dir)" = "$tmp/ck-ev" ] && [ "$(field "$ev" pages)" -gt 0 ] &&
   [ "$(field "$ev" bytes)" -gt 0 ] && [ "$(field "$ev" pause-us)" -ge 0 ] &&
   [ "$(field "$ev" duration-us)" -gt 0 ] &&
   "$KVM_SNAPSHOT" list --json "$tmp/ck-ev" | grep -q "\"id\": *$id[,}]"; then
	tap_ok "a client that enabled events gets a periodic checkpoint's CHECKPOINT completed ($id, listed)"
else tap_fail "a client that enabled events gets a periodic checkpoint's CHECKPOINT completed" "$out"; fi

# Requested: its event comes before the reply and tells the same checkpoint.
q "$es" '{"execute": "checkpoint-set", "arguments": {"every-ms": 0}}' >/dev/null
out=$(q -e "$es" '{"execute": "checkpoint", "id": "c1"}' 2>&1)
reply=$(printf '%s\n' "$out" | tail -1)
id=$(field "$reply" id)
n=$(line_of "$out" '"event":"CHECKPOINT"' "\"id\":$id," '"trigger":"requested"')
ev=$(printf '%s\n' "$out" | sed -n "${n:-0}p")
if printf '%s\n' "$reply" | grep -q '"return".*"id":"c1"' && [ -n "$n" ] &&
   [ "$n" -lt "$(printf '%s\n' "$out" | wc -l)" ] &&
   [ "$(field "$ev" status)" = completed ] && [ "$(field "$ev" kind)" = "$(field "$reply" kind)" ] &&
   [ "$(field "$ev" pages)" = "$(field "$reply" pages)" ] &&
   [ "$(field "$ev" bytes)" = "$(field "$reply" bytes)" ]; then
	tap_ok "a requested checkpoint's event comes before its reply, with the reply's id ($id)"
else tap_fail "a requested checkpoint's event comes before its reply, with the reply's id" "$out"; fi

# A client that did not enable events, while checkpoints run (periodic and
# its own) and another client gets their events: every line it reads is
# the reply to its request, and nothing is left over (-x). An event sent to
# it would come before its checkpoint's reply and break the step.
q -e -w CHECKPOINT:1000000 -t "$(pace_time 120)" "$es" >"$tmp/listener.out" 2>&1 &
listener=$!
pids+=($listener)
wait_for "the listener to enable events" 10 grep -q '"return"' "$tmp/listener.out"
q "$es" "{\"execute\": \"checkpoint-set\", \"arguments\": {\"every-ms\": $(pace_time 100)}}" >/dev/null
out=$(q -x "$es" '{"execute": "qmp_capabilities", "id": 1}' '{"execute": "checkpoint", "id": 2}' \
	'{"execute": "query-checkpoints", "id": 3}' '{"execute": "checkpoint", "id": 4}' \
	'{"execute": "query-status", "id": 5}' 2>&1) && st=0 || st=$?
id2=$(field "$(printf '%s\n' "$out" | sed -n 2p)" id)
id4=$(field "$(printf '%s\n' "$out" | sed -n 4p)" id)
# The listener got both (sent to it before the replies came here; it may not have printed them yet).
seen() { [ -n "$(line_of "$(cat "$tmp/listener.out")" "\"id\":$1," '"trigger":"requested"')" ]; }
wait_for "the listener's events of $id2 and $id4" 30 eval 'seen "$id2" && seen "$id4"' && both=1 || both=0
{ kill "$listener"; wait "$listener"; } 2>/dev/null
if [ "$st" = 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 5 ] && [ -n "$id2" ] && [ "$both" = 1 ]; then
	tap_ok "a client without events gets only its replies, in step, while another gets the events ($id2, $id4)"
else tap_fail "a client without events gets only its replies, in step" "exit $st" "$out" \
	"listener: $(grep -c CHECKPOINT "$tmp/listener.out") events"; fi

# A live snapshot (checkpoint-save: kvm-migrate VM file:DIR) is an event too, naming its directory.
out=$(q -e "$es" "{\"execute\": \"checkpoint-save\", \"arguments\": {\"dir\": \"$tmp/live-ev\"}}" 2>&1)
reply=$(printf '%s\n' "$out" | tail -1)
n=$(line_of "$out" '"event":"CHECKPOINT"' '"trigger":"snapshot"')
ev=$(printf '%s\n' "$out" | sed -n "${n:-0}p")
if [ -n "$n" ] && [ "$(field "$ev" status)" = completed ] && [ "$(field "$ev" kind)" = base ] &&
   [ "$(field "$ev" dir)" = "$tmp/live-ev" ] && [ "$(field "$ev" id)" = "$(field "$reply" id)" ] &&
   printf '%s\n' "$reply" | grep -q '"return"'; then
	tap_ok "a live snapshot's CHECKPOINT event names its directory and id ($(field "$ev" id))"
else tap_fail "a live snapshot's CHECKPOINT event" "$out"; fi
quit_vm "$es"

# 26-33. A full file system: the VM keeps running, the error is reported,
# earlier checkpoints stay, and once there is room again the next
# checkpoint holds every page dirtied during the outage.
if ! mkdir -p "$tmp/small" || ! mount -t tmpfs -o size=$(( PAGES * 4 * 3 / 2 ))k tmpfs "$tmp/small"; then
	for i in $(seq 26 38); do tap_ok "# SKIP cannot mount a tmpfs here"; done
	exit 0
fi
trap 'umount "$tmp/small" 2>/dev/null; cleanup' EXIT
start_vm f1 "$run" "$RATE" "$PAGES" --mem 256M --vcpus 2 --checkpoint-dir "$tmp/small/ck" \
	--no-checkpoint-compress
fs="$run/f1.sock"
ckpt "$fs" '{"full": true}'
first=$(field "$reply" id)
ok_if "a base on the small file system ($first)" test -n "$first"
# Fill what is left, so the next checkpoint cannot be written.
dd if=/dev/zero of="$tmp/small/filler" bs=64k >/dev/null 2>&1
if ckpt "$fs" '{}'; then tap_fail "a checkpoint on a full file system fails" "$reply"
else ok_if "a checkpoint on a full file system fails, saying why" \
	eval 'printf "%s\n" "$reply" | grep -Eqi "no space|ENOSPC"'; fi
ok_if "the VM keeps running" running "$fs"
st=$(q "$fs" '{"execute": "query-checkpoints"}')
ok_if "query-checkpoints shows the failure and the pages owed" \
	eval '[ "$(field "$st" failed)" -ge 1 ] && [ "$(field "$st" owed-pages)" -gt 0 ]'
ok_if "nothing half-written is left beside the checkpoints" \
	eval '[ -z "$(ls -A "$tmp/small/ck" | grep -v -e "^ckpt-" -e "^manifest$" -e "^lock$")" ]'
rm -f "$tmp/small/filler"
# Pages keep being dirtied; the next increment must carry those of the outage too.
p0=$(progress "$fs")
wait_for "more writes" 30 progress_above "$fs" $(( p0 + 3 ))
if ckpt "$fs" '{"hash": true}' && [ "$(field "$reply" kind)" = increment ]; then
	tap_ok "with room again, the next checkpoint is an increment on the base"
else tap_fail "with room again, the next checkpoint is an increment on the base" "$reply"; fi
after=$(field "$reply" id) after_hash=$(field "$reply" memory-hash)
quit_vm "$fs"
# 32-33: restoring it gives the memory of that instant, all pages right.
ck="$tmp/small/ck"
restored "$after" "$after_hash" r5

# 34-37. A read-only file system: refused up front, with the directory
# named; gone read-only under a running VM: the checkpoint fails saying
# so, the VM runs on, and checkpoints resume once it is writable again.
mount -o remount,ro "$tmp/small"
check "--checkpoint-dir on a read-only file system is refused, naming it" 3 \
	"$tmp/small/ro.*[Rr]ead-only" "$KVM_RUN" --checkpoint-dir "$tmp/small/ro" --seconds 1
mount -o remount,rw "$tmp/small"
start_vm f2 "$run" "$RATE" "$PAGES" --mem 256M --checkpoint-dir "$tmp/small/ck2"
mount -o remount,ro "$tmp/small"
if ckpt "$run/f2.sock" '{}'; then tap_fail "a checkpoint on a file system gone read-only fails" "$reply"
else ok_if "a checkpoint on a file system gone read-only fails, saying why" \
	eval 'printf "%s\n" "$reply" | grep -qi "read-only"'; fi
ok_if "the VM keeps running" running "$run/f2.sock"
mount -o remount,rw "$tmp/small"
if ckpt "$run/f2.sock" '{}' && [ "$(field "$reply" kind)" = base ]; then
	tap_ok "writable again: checkpoints resume"
else tap_fail "writable again: checkpoints resume" "$reply"; fi
quit_vm "$run/f2.sock"

# 38. A failed checkpoint is an event too: the error, and the pages owed.
# As above, a base first, then the file system is filled (the earlier
# stores, done with, make the room for the base).
rm -rf "$tmp/small/ck" "$tmp/small/ck2"
start_vm f3 "$run" "$RATE" "$PAGES" --mem 256M --checkpoint-dir "$tmp/small/ck3" \
	--no-checkpoint-compress
ckpt "$run/f3.sock" '{"full": true}' || echo "# f3's base: $reply"
dd if=/dev/zero of="$tmp/small/filler" bs=64k >/dev/null 2>&1
out=$(q -e "$run/f3.sock" '{"execute": "checkpoint", "id": "f"}' 2>&1)
reply=$(printf '%s\n' "$out" | tail -1)
n=$(line_of "$out" '"event":"CHECKPOINT"' '"status":"failed"' '"trigger":"requested"')
ev=$(printf '%s\n' "$out" | sed -n "${n:-0}p")
echo "# $ev"
if [ -n "$n" ] && printf '%s\n' "$reply" | grep -q '"error"' &&
   printf '%s\n' "$ev" | grep -Eqi '"error":"[^"]*(no space|ENOSPC)' &&
   [ "$(field "$ev" owed-pages)" -gt 0 ] && [ "$(field "$ev" dir)" = "$tmp/small/ck3" ]; then
	tap_ok "a checkpoint on a full file system is a CHECKPOINT failed event, with the error and the pages owed"
else tap_fail "a checkpoint on a full file system is a CHECKPOINT failed event" "$out"; fi
rm -f "$tmp/small/filler"
quit_vm "$run/f3.sock"
