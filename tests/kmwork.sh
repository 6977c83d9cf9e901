#!/bin/bash
# kmwork (guest-linux/kmwork.c), the Linux guests' workload, run here on
# the host: it is a plain static Linux program, so its protocol (start,
# check, corrupt, stop, no daemon) is tested without KVM and fast;
# tests/linux-boot.sh runs it in a guest.
. "$(dirname "$0")/lib.sh"

KMWORK="$top_builddir/guest-linux/kmwork"
[ -x "$KMWORK" ] || bail "$KMWORK is not built"
tmp=$(mktemp -d)
export KMWORK_DIR=$tmp
cleanup() {
	local p
	p=$(cat "$tmp/kmwork.pid" 2>/dev/null) && kill -KILL "$p" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# field NAME LINE: the value of NAME=... in a KMWORK line.
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

tap_plan 15
check "check with no daemon: 'no daemon', exit 1" 1 "^KMWORK check: no daemon$" "$KMWORK" check
check "a bad --rate: usage error, exit 2" 2 "bad --rate x" "$KMWORK" start --rate x

s=$("$KMWORK" start --mib 4 --rate 500) && st=0 || st=$?
ok_if "start returns at once with its line: $s" \
	eval '[ $st = 0 ] && printf "%s\n" "$s" | grep -Eq "^KMWORK started pid=[0-9]+ pages=1024 rate=500$"'
pid=$(field pid "$s")
check "a second start is refused while the daemon runs" 1 "^KMWORK start: already running pid=$pid$" \
	"$KMWORK" start

re="^KMWORK check pid=$pid pages=1024 bad=0 writes=[0-9]+ backwards=0 max_gap_ms=[0-9]+ uptime_s=[0-9]+$"
c1=$("$KMWORK" check)
ok_if "check: every page as its version says ($c1)" eval 'printf "%s\n" "$c1" | grep -Eq "$re"'
# The daemon writes 500 pages a second: poll until it has written more.
more() { c2=$("$KMWORK" check) && [ "$(field writes "$c2")" -gt "$(field writes "$c1")" ]; }
ok_if "a later check: more writes, still none bad, same daemon" \
	eval 'wait_for "more writes" 30 more && printf "%s\n" "$c2" | grep -Eq "$re"'

check "corrupt flips a byte of page 7" 0 "^KMWORK corrupted pid=$pid page=7$" "$KMWORK" corrupt 7
check "and check finds it: bad=1, first_bad=7, exit 0" 0 \
	"^KMWORK check pid=$pid pages=1024 bad=1 writes=[0-9]+ backwards=0 .* first_bad=7$" "$KMWORK" check

check "stop: the daemon answers and exits" 0 "^KMWORK stopped pid=$pid writes=[0-9]+$" "$KMWORK" stop
ok_if "it is gone, its pid file and no reply file left" \
	eval '! kill -0 "$pid" 2>/dev/null && [ -z "$(ls -A "$tmp")" ]'

# A daemon killed without stop leaves its pid file behind: still "no daemon".
s=$("$KMWORK" start --mib 1 --rate 0)
pid=$(field pid "$s")
kill -KILL "$pid"
gone() { ! kill -0 "$pid" 2>/dev/null; }
wait_for "the daemon to die" 10 gone
check "a killed daemon: check says no daemon, exit 1" 1 "^KMWORK check: no daemon$" "$KMWORK" check
check "and a new start works despite its stale pid file" 0 "^KMWORK started pid=" \
	"$KMWORK" start --mib 1 --rate 10

# The disk mode on a file: stamped blocks read back, a newer version of
# some, a byte flipped in one.
img="$tmp/disk.img"
"$KMWORK" disk-write "$img" --blocks 64 >/dev/null
check "disk-write then disk-verify: 64 blocks, none bad" 0 \
	"^KMWORK disk-verify dev=$img blocks=64 bad=0 versions=1-1$" "$KMWORK" disk-verify "$img"
"$KMWORK" disk-write "$img" --blocks 32 --version 2 >/dev/null
check "blocks of another version than asked are bad (--version 2: 32 of 64)" 0 \
	"^KMWORK disk-verify dev=$img blocks=64 bad=32 versions=2-2 first_bad=32$" \
	"$KMWORK" disk-verify "$img" --version 2
printf 'X' | dd of="$img" bs=1 seek=$((4096 * 40 + 100)) conv=notrunc status=none
check "a byte flipped in block 40: bad=1, first_bad=40" 0 \
	"^KMWORK disk-verify dev=$img blocks=64 bad=1 versions=1-2 first_bad=40$" \
	"$KMWORK" disk-verify "$img"
