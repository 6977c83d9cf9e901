#!/bin/bash
# Dirty-rate measurement (kvm/dirtyrate.h, kvm-migrate dirty-rate): a
# dirtier guest writing a known number of distinct pages per second (its
# own progress counter counts them: a sequential walk over a working set
# far larger than one interval's writes) is measured exactly (bitmap) and
# by sampling; the measurement runs in the background while the control
# socket serves other requests, one at a time, and can be cancelled.
. "$(dirname "$0")/lib.sh"
require_kvm
. "$(dirname "$0")/lib-migrate.sh"

tap_plan 19

A=$tmp/a
mkdir -m 700 "$A"
RATE=2000	# pages/s: every machine here keeps it (tests/README.md, pace)
"$KVM_RUN" --name d1 --rundir "$A" --mem 128M --guest dirtier \
	--guest-arg "rate=$RATE,wss=64M,pattern=sequential" >"$tmp/vm-d1.log" 2>&1 &
pids+=($!)
S=$A/d1.sock
wait_for "the dirtier" 30 progress_above "$S" 0
DR() { "$KVM_MIGRATE" dirty-rate --rundir "$A" d1 "$@"; }
field() { printf '%s\n' "$1" | jq -r ".$2"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# 1-3. Exact: the pages the guest wrote, measured, against its own count.
p0=$(progress "$S") t0=$(now_ms)
out=$(DR --seconds 3 --interval 500 --json 2>&1) && st=0 || st=$?
p1=$(progress "$S") t1=$(now_ms)
truth=$(awk -v a="$p0" -v b="$p1" -v ms=$(( t1 - t0 )) 'BEGIN {printf "%.0f", (b - a) / (ms / 1000)}')
exact=$(field "$out" '"pages-per-second"' 2>/dev/null | cut -d. -f1)
ok_if "bitmap: measured (status $(field "$out" status 2>/dev/null), 6 intervals)" \
	eval '[ "$st" = 0 ] && [ "$(field "$out" status)" = measured ] && [ "$(field "$out" intervals)" = 6 ]'
ok_if "bitmap: $exact pages/s against the guest's own $truth pages/s (within 20 %: its counter is sampled around the command, not at the intervals)" \
	awk -v m="$exact" -v t="$truth" 'BEGIN {exit !(t > 0 && m >= 0.8 * t && m <= 1.2 * t)}'
ok_if "and MB/s is pages/s x 4096 / 10^6" \
	awk -v p="$(field "$out" '"pages-per-second"')" -v m="$(field "$out" '"mb-per-second"')" \
	'BEGIN {d = m - p * 4096 / 1e6; exit !(d < 0.001 && d > -0.001)}'

# 4-5. Sampled: no dirty logging; its error against the exact count, reported.
out=$(DR --seconds 3 --interval 500 --mode sample --sample-pages 8192 --json 2>&1) && st=0 || st=$?
est=$(field "$out" '"pages-per-second"' 2>/dev/null | cut -d. -f1)
err=$(awk -v e="$est" -v x="$exact" 'BEGIN {printf "%.1f", (e - x) / x * 100}')
sp=$(field "$out" '"sample-pages"' 2>/dev/null)
ok_if "sample: measured with $sp pages of 32768 ($(field "$out" status 2>/dev/null))" \
	eval '[ "$st" = 0 ] && [ "$(field "$out" status)" = measured ] && [ "$sp" = 8192 ]'
ok_if "sample: $est pages/s, $err % from the exact $exact (within 25 %)" \
	awk -v e="$err" 'BEGIN {exit !(e <= 25 && e >= -25)}'

# 6-9. The writable working set of a sequential writer grows with the window
# as rate x window (its working set, 16384 pages, is never reached here).
out=$(DR --seconds 4 --interval 250 --wws --json 2>&1) && st=0 || st=$?
w1=$(field "$out" 'wws[0].pages' 2>/dev/null | cut -d. -f1)
wn=$(field "$out" 'wws[-1].pages' 2>/dev/null | cut -d. -f1)
kn=$(field "$out" 'wws[-1]."window-ms"' 2>/dev/null)
rate=$(field "$out" '"pages-per-second"' 2>/dev/null | cut -d. -f1)
ok_if "wws: windows of 250 ms up to $kn ms ($(printf '%s' "$out" | jq -c '[.wws[] | [."window-ms", (.pages | floor)]]' 2>/dev/null))" \
	eval '[ "$st" = 0 ] && [ "$kn" = 4000 ] && printf "%s" "$out" | jq -e "[.wws[].pages] | . == sort" >/dev/null'
ok_if "wws over 250 ms: $w1 pages, the measured $rate pages/s x 0.25 s (within 20 %)" \
	awk -v w="$w1" -v r="$rate" 'BEGIN {e = r * 0.25; exit !(w >= 0.8 * e && w <= 1.2 * e)}'
ok_if "wws over 4 s: $wn pages, 16 x the 250 ms one (within 20 %)" \
	awk -v a="$w1" -v b="$wn" 'BEGIN {exit !(a > 0 && b / a >= 12.8 && b / a <= 19.2)}'

printf '%s\n' "$out" >"$tmp/wws.json"
ok_if "scripts/plot draws the curve: a PNG of the size asked" \
	eval '"$top_srcdir/scripts/plot" "$tmp/wws.json" --size 900x400 >/dev/null && [ "$(png_size "$tmp/wws.png")" = 900x400 ]'

# 10-12. Per vCPU, from the dirty rings: two vCPUs writing half the rate each.
"$KVM_RUN" --name d2 --rundir "$A" --mem 128M --vcpus 2 --guest dirtier --dirty-log ring \
	--guest-arg "rate=$RATE,wss=64M,pattern=sequential" >"$tmp/vm-d2.log" 2>&1 &
pids+=($!)
wait_for "the ring dirtier" 30 progress_above "$A/d2.sock" 0
out=$("$KVM_MIGRATE" dirty-rate --rundir "$A" d2 --seconds 3 --interval 500 --mode ring --json 2>&1) &&
	st=0 || st=$?
v0=$(field "$out" '"vcpu-pages-per-second"[0]' 2>/dev/null | cut -d. -f1)
v1=$(field "$out" '"vcpu-pages-per-second"[1]' 2>/dev/null | cut -d. -f1)
all=$(field "$out" '"pages-per-second"' 2>/dev/null | cut -d. -f1)
ok_if "ring: measured, with both vCPUs' counts ($v0 and $v1 pages/s, $all in all)" \
	eval '[ "$st" = 0 ] && [ "$(field "$out" status)" = measured ] && [ -n "$v0" ] && [ -n "$v1" ]'
ok_if "ring: each vCPU writes half of what the VM writes (within 20 %: the guest splits its rate evenly)" \
	awk -v a="$v0" -v b="$v1" -v r="$all" 'BEGIN {h = r / 2; exit !(h > 0 && a >= 0.8 * h && a <= 1.2 * h && b >= 0.8 * h && b <= 1.2 * h)}'
ok_if "ring: the vCPUs' counts add up to the exact total (within 5 %: their shares are disjoint)" \
	awk -v a="$v0" -v b="$v1" -v t="$all" 'BEGIN {exit !(t > 0 && (a + b) >= 0.95 * t && (a + b) <= 1.05 * t)}'
quit_vm "$A/d2.sock"

# 13-16. In the background: the socket answers meanwhile; one at a time; cancelled.
r=$(q "$S" '{"execute": "calc-dirty-rate", "arguments": {"duration-ms": 60000, "interval-ms": 200}}')
ok_if "calc-dirty-rate returns at once ($r)" eval 'printf "%s" "$r" | grep -q "\"return\""'
st=$(q "$S" '{"execute": "query-dirty-rate"}')
ok_if "meanwhile query-dirty-rate says measuring, and the VM answers" \
	eval 'printf "%s" "$st" | jq -e ".return.status == \"measuring\"" >/dev/null && running "$S"'
r=$(q "$S" '{"execute": "calc-dirty-rate"}')
ok_if "a second one is refused while it runs" eval 'printf "%s" "$r" | grep -q "a measurement is running"'
q "$S" '{"execute": "cancel-dirty-rate"}' >/dev/null
st=$(q "$S" '{"execute": "query-dirty-rate"}')
ok_if "cancel-dirty-rate ends it ($(printf '%s' "$st" | jq -c '.return | {status, intervals}'))" \
	eval 'printf "%s" "$st" | jq -e ".return.status == \"cancelled\"" >/dev/null'

# 17-19. Bad requests.
r=$(q "$S" '{"execute": "calc-dirty-rate", "arguments": {"mode": "ring"}}')
ok_if "mode ring on a VM without the ring backend is refused, saying why" \
	eval 'printf "%s" "$r" | grep -q "needs the dirty-ring backend"'
check "kvm-migrate dirty-rate: --interval longer than --seconds" 2 "longer than --seconds" \
	"$KVM_MIGRATE" dirty-rate --rundir "$A" d1 --seconds 1 --interval 2000
check "kvm-migrate dirty-rate: a VM that does not run" 3 "cannot reach" \
	"$KVM_MIGRATE" dirty-rate --rundir "$A" nosuch --seconds 1
quit_vm "$S"
