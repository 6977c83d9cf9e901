#!/bin/bash
# Checkpoints and migrations of the same VM (docs/kvm-snapshot.1): both at
# once, each one its own dirty subscriber; a restored VM migrated; a
# migrated VM checkpointed (checkpoint-set with dir on the VM a daemon
# received) and that checkpoint restored; a live snapshot (kvm-migrate VM
# file:DIR) restored. The verify guest checks every
# page after each; the restores are also compared by memory hash.
. "$(dirname "$0")/lib.sh"
require_kvm
. "$(dirname "$0")/lib-migrate.sh"
. "$(dirname "$0")/lib-checkpoint.sh"

tap_plan 13

A=$tmp/a B=$tmp/b
start_daemon b "$B" || echo "# daemon b did not start: $(cat "$tmp/daemon-b.log")"
ck="$tmp/ck"
PAGES=$(wss_pages 64)
RATE=$(rate_of 10000 2)

count() { "$KVM_SNAPSHOT" list --json "$1" 2>/dev/null | grep -o '"id": *[0-9]*' | wc -l; }

# 1-4. Periodic checkpoints go on while the VM migrates.
start_vm vm1 "$A" "$RATE" "$PAGES" --mem 256M --vcpus 2 --checkpoint-dir "$ck" \
	--checkpoint-every "$(pace_time 100)"
wait_for "checkpoints" 60 taken "$A/vm1.sock" 2
before=$(count "$ck")
if migrate "$tmp/m1.out" --rundir "$A" vm1 "127.0.0.1:$port_b"; then
	tap_ok "migrated while checkpoints were taken"
else tap_fail "migrated while checkpoints were taken" "$(tail -5 "$tmp/m1.out")"; fi
ok_if "the migrated guest's pages all check" vm_ok "$B/vm1.sock"
ok_if "checkpoints were committed during the migration ($before before, $(count "$ck") after)" \
	eval '[ "$(count "$ck")" -gt "$before" ]'
VM_PAGES[r1]=$PAGES
"$KVM_RUN" --name r1 --rundir "$A" --restore "$ck" >"$tmp/vm-r1.log" 2>&1 &
pids+=($!)
if wait_for "r1" 30 progress_above "$A/r1.sock" 0 && vm_ok "$A/r1.sock"; then
	tap_ok "the newest checkpoint taken during the migration restores, every page right"
else tap_fail "the newest checkpoint taken during the migration restores" "$(tail -3 "$tmp/vm-r1.log")"; fi
quit_vm "$B/vm1.sock"

# 5-6. A restored VM migrates.
if migrate "$tmp/m2.out" --rundir "$A" r1 "127.0.0.1:$port_b"; then
	tap_ok "a restored VM migrates"
else tap_fail "a restored VM migrates" "$(tail -5 "$tmp/m2.out")"; fi
VM_PAGES[r1]=$PAGES
ok_if "and its pages all check there" vm_ok "$B/r1.sock"

# 7-9. kvm-migrate VM file:DIR: a live snapshot of a writing guest.
if "$KVM_MIGRATE" --rundir "$B" r1 "file:$tmp/live" >"$tmp/live.out" 2>&1 &&
   grep -q "it runs on" "$tmp/live.out"; then
	tap_ok "kvm-migrate VM file:DIR saves it live: $(head -1 "$tmp/live.out")"
else tap_fail "kvm-migrate VM file:DIR saves it live" "$(cat "$tmp/live.out")"; fi
ok_if "and the VM runs on, every page right" eval 'running "$B/r1.sock" && vm_ok "$B/r1.sock"'
VM_PAGES[l1]=$PAGES
"$KVM_RUN" --name l1 --rundir "$A" --restore "$tmp/live" >"$tmp/vm-l1.log" 2>&1 &
pids+=($!)
if wait_for "l1" 30 progress_above "$A/l1.sock" 0 && vm_ok "$A/l1.sock"; then
	tap_ok "kvm-run --restore of that file: every page right"
else tap_fail "kvm-run --restore of that file" "$(tail -3 "$tmp/vm-l1.log")"; fi
quit_vm "$A/l1.sock"

# 10-13. The migrated VM starts keeping checkpoints there; one restores.
ck2="$tmp/ck2"
out=$(q "$B/r1.sock" "{\"execute\": \"checkpoint-set\", \"arguments\": {\"dir\": \"$ck2\"}}")
ok_if "checkpoint-set with dir starts checkpoints on a VM that arrived by migration" \
	eval 'printf "%s\n" "$out" | grep -q "\"return\""'
reply=$(q "$B/r1.sock" '{"execute": "checkpoint", "arguments": {"hash": true}}')
h=$(field "$reply" memory-hash)
ok_if "it takes a base there" eval '[ "$(field "$reply" kind)" = base ] && [ -n "$h" ]'
quit_vm "$B/r1.sock"
VM_PAGES[r2]=$PAGES
"$KVM_RUN" --name r2 --rundir "$A" --restore "$ck2" --paused >"$tmp/vm-r2.log" 2>&1 &
pids+=($!)
wait_for "r2" 30 answers "$A/r2.sock"
got=$(field "$(q "$A/r2.sock" '{"execute": "query-memory-hash"}')" hash)
ok_if "which restores byte for byte (hash $got)" test "$got" = "$h"
q "$A/r2.sock" '{"execute": "cont"}' >/dev/null
ok_if "and runs on, every page right" vm_ok "$A/r2.sock"
