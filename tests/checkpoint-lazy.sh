#!/bin/bash
# Lazy restore (kvm-run --restore DIR --lazy, docs/kvm-snapshot.1): the VM
# may run before its pages are read. Prefetch brings every page in on its
# own; touch mode only what is touched. A lazily restored VM checkpointed
# and migrated before any of its pages was read: the checkpoint and the
# migration hold every page (the restore of that checkpoint and the
# migrated VM have the memory hash of the original checkpoint, and the
# verify guest checks every page). A damaged page record is found when it
# is first read: the VM ends with an error naming the file and record; a
# page index that names the wrong record, before the VM runs.
. "$(dirname "$0")/lib.sh"
require_kvm
. "$(dirname "$0")/lib-migrate.sh"
. "$(dirname "$0")/lib-checkpoint.sh"

tap_plan 25

A=$tmp/a B=$tmp/b
start_daemon b "$B" || echo "# daemon b did not start: $(cat "$tmp/daemon-b.log")"
ck="$tmp/ck"
PAGES=$(wss_pages 32)
RATE=$(rate_of 10000 2)

# lazy SOCK FIELD: a field of query-stats' lazy-restore object.
lazy() { q "$1" '{"execute": "query-stats"}' 2>/dev/null | jq -r ".return[\"lazy-restore\"][\"$2\"]"; }
all_in() { [ "$(lazy "$1" absent)" = 0 ]; }
hash_of() { field "$(q "$1" '{"execute": "query-memory-hash"}')" hash; }
# whole SOCK SAME RUNS: the paused VM at SOCK holds the checkpoint's memory
# (its hash is $want; check SAME), then runs on with every page right
# (check RUNS); then it quits.
whole() {
	local got
	got=$(hash_of "$1")
	ok_if "$2 (hash $got)" [ "$got" = "$want" ]
	q "$1" '{"execute": "cont"}' >/dev/null
	ok_if "$3" vm_ok "$1"
	quit_vm "$1"
}
# restore NAME RUNDIR ARGS...: kvm-run --restore ..., waits for its socket.
restore() {
	local name="$1" rundir="$2"
	shift 2
	VM_PAGES[$name]=$PAGES
	"$KVM_RUN" --name "$name" --rundir "$rundir" "$@" >"$tmp/vm-$name.log" 2>&1 &
	pids+=($!)
	vm_pid=$!
	wait_for "restored $name" 30 answers "$rundir/$name.sock" ||
		echo "# $name: $(tail -3 "$tmp/vm-$name.log")"
}

# 1. A chain: a base and increments of a writing guest, the newest with its hash.
start_vm c1 "$A" "$RATE" "$PAGES" --mem 128M --vcpus 2 --checkpoint-dir "$ck"
ckpt "$A/c1.sock" '{}'
ckpt "$A/c1.sock" '{}'
ckpt "$A/c1.sock" '{"hash": true}'
id=$(field "$reply" id) want=$(field "$reply" memory-hash)
ok_if "a chain of three checkpoints of a writing guest (the newest: $id)" \
	eval '[ "$(field "$reply" kind)" = increment ] && [ -n "$want" ]'
quit_vm "$A/c1.sock"
check "kvm-snapshot verify checks each file's page index against its page records" 0 \
	"all restorable" "$KVM_SNAPSHOT" verify "$ck"

# 2-6. Prefetch, paused: every page comes in without being touched.
restore p1 "$A" --restore "$ck" --lazy --paused
ok_if "--lazy starts the VM before reading its pages, from the files' page indexes ($(grep -o 'restored lazily.*' "$tmp/vm-p1.log"))" \
	grep -q "restored lazily from checkpoint $id (3 files, 3 with a page index; .* [1-9][0-9]* to bring in" "$tmp/vm-p1.log"
ok_if "the prefetch brings every page in while the VM is paused" \
	wait_for "every page in" 60 all_in "$A/p1.sock"
ok_if "none of them was touched first ($(lazy "$A/p1.sock" prefetched) prefetched of $(lazy "$A/p1.sock" total))" \
	eval '[ "$(lazy "$A/p1.sock" touched)" = 0 ] &&
	      [ "$(lazy "$A/p1.sock" prefetched)" = "$(lazy "$A/p1.sock" total)" ]'
whole "$A/p1.sock" "its memory is the checkpoint's byte for byte" "it runs on, every page right"

# 7-8. Prefetch while the guest runs and writes.
restore p2 "$A" --restore "$ck" --lazy
ok_if "restored lazily and running, the guest's pages all check" vm_ok "$A/p2.sock"
wait_for "every page in" 60 all_in "$A/p2.sock"
ok_if "and the prefetch finishes (in $(lazy "$A/p2.sock" done-ms) ms)" all_in "$A/p2.sock"
quit_vm "$A/p2.sock"

# 9-13. Touch mode: a checkpoint of the restored VM before any page was read.
restore t1 "$A" --restore "$ck" --lazy=touch --paused --checkpoint-dir "$tmp/ck3"
total=$(lazy "$A/t1.sock" total)
ok_if "touch mode, paused: no page is in yet ($(lazy "$A/t1.sock" absent) of $total absent)" \
	eval '[ "$total" -gt 0 ] && [ "$(lazy "$A/t1.sock" absent)" = "$total" ]'
if ckpt "$A/t1.sock" '{"hash": true}' && [ "$(field "$reply" kind)" = base ] &&
   [ "$(field "$reply" memory-hash)" = "$want" ]; then
	tap_ok "a base of it, taken before its pages were read, has the restored memory's hash"
else tap_fail "a base of it, taken before its pages were read" "$reply (wanted hash $want)"; fi
q "$A/t1.sock" '{"execute": "cont"}' >/dev/null
ok_if "it runs on, every page right" vm_ok "$A/t1.sock"
quit_vm "$A/t1.sock"
restore t2 "$A" --restore "$tmp/ck3" --paused
whole "$A/t2.sock" "that base restores byte for byte: no page was missing from it" \
	"and its guest checks every page right"

# 14-17. Touch mode: migrated before any page was read.
restore t3 "$A" --restore "$ck" --lazy=touch --paused
ok_if "touch mode, paused: nothing read ($(lazy "$A/t3.sock" absent) absent)" \
	eval '[ "$(lazy "$A/t3.sock" absent)" = "$(lazy "$A/t3.sock" total)" ]'
if migrate "$tmp/m1.out" --rundir "$A" t3 "127.0.0.1:$port_b"; then
	tap_ok "a lazily restored VM migrates before its pages were read"
else tap_fail "a lazily restored VM migrates before its pages were read" "$(tail -5 "$tmp/m1.out")"; fi
VM_PAGES[t3]=$PAGES
whole "$B/t3.sock" "it arrives whole: the destination's memory is the checkpoint's" \
	"and runs there, every page right"

# 18-20. Files an older writer made, without a page index: every entry walked.
cp -a "$ck" "$tmp/old"
for f in "$tmp"/old/ckpt-*.kmc; do "$top_builddir/tests/lib/ckpt-strip" "$f" 18 >/dev/null; done
restore o1 "$A" --restore "$tmp/old" --lazy=touch --paused
ok_if "files without a page index restore lazily too ($(grep -o '[0-9]* with a page index' "$tmp/vm-o1.log"))" \
	grep -q "restored lazily from checkpoint $id (3 files, 0 with a page index" "$tmp/vm-o1.log"
whole "$A/o1.sock" "byte for byte" "and the guest checks every page right"

# 21-22. A flipped byte in the newest file, whose every page is read.
cp -a "$ck" "$tmp/bad"
fb=$(printf 'ckpt-%08d.kmc' "$id")
size=$(stat -c %s "$tmp/bad/$fb")
printf '\xff' | dd of="$tmp/bad/$fb" bs=1 seek=$(( size / 2 )) conv=notrunc status=none
"$KVM_RUN" --name bad --rundir "$A" --restore "$tmp/bad" --lazy=touch --paused \
	>"$tmp/vm-bad.log" 2>&1 &
bad_pid=$!
pids+=($bad_pid)
# It is refused up front if the byte broke a page entry, else when its page is read.
wait_for "the damaged restore to end or answer" 30 \
	eval '! kill -0 '"$bad_pid"' 2>/dev/null || answers "$A/bad.sock"'
q "$A/bad.sock" '{"execute": "query-memory-hash"}' >/dev/null 2>&1
if wait_for "the damaged restore to end" 30 eval '! kill -0 '"$bad_pid"' 2>/dev/null'; then
	wait "$bad_pid" 2>/dev/null && st=0 || st=$?
else
	st="none: it still runs"
	kill -9 "$bad_pid" 2>/dev/null
fi
ok_if "a damaged page record ends the VM with an error (status $st)" [ "$st" -gt 0 ] 2>/dev/null
ok_if "naming the file and the record ($(grep -o "$fb: record [0-9]*: [a-z ]*" "$tmp/vm-bad.log" | head -1))" \
	grep -Eq "$fb: record [0-9]+: " "$tmp/vm-bad.log"

# 23. A page index one byte off, its checksum right (tests/lib/ckpt-poke):
# refused before the VM is made, naming the file.
cp -a "$ck" "$tmp/badix"
"$top_builddir/tests/lib/ckpt-poke" "$tmp/badix/$fb" 18 0 >/dev/null || bail "ckpt-poke failed"
check "a page index naming a record one byte off is refused up front, the file named, exit 3" 3 \
	"$fb: record [0-9]+: the page index does not match the file's page records" \
	timeout 60 "$KVM_RUN" --name badix --rundir "$A" --restore "$tmp/badix" --lazy=touch --paused

# 24. --lazy without --restore.
check "--lazy without --restore is a usage error" 2 "needs --restore" \
	"$KVM_RUN" --lazy --seconds 1
