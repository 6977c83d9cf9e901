#!/bin/bash
# kvm-snapshot (docs/kvm-snapshot.1) on checkpoint directories that
# tests/lib/mkckpt builds with the real store and file writers: no KVM.
# Every directory is a copy of one built here, with one kind of damage.
. "$(dirname "$0")/lib.sh"

KVM_SNAPSHOT="$top_builddir/snapshot/kvm-snapshot"
MKCKPT="$top_builddir/tests/lib/mkckpt"
CKPT_POKE="$top_builddir/tests/lib/ckpt-poke"
export TZ=UTC	# list and inspect print local times
umask 077	# the store refuses files others may write

t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
ks() { "$KVM_SNAPSHOT" "$@"; }

# check_each DESC STATUS PATTERNS CMD...: as check, but every line of
# PATTERNS (grep -E) must match some line of the output.
check_each() {
	local desc="$1" want="$2" pats="$3" out st p missing=""
	shift 3
	out=$("$@" 2>&1) && st=0 || st=$?
	while IFS= read -r p; do
		[ -n "$p" ] || continue
		printf '%s\n' "$out" | grep -Eq -- "$p" || missing="$missing /$p/"
	done <<<"$pats"
	if [ "$st" = "$want" ] && [ -z "$missing" ]; then
		tap_ok "$desc"
	else
		tap_fail "$desc" "command: $*" "exit status $st, wanted $want; unmatched:$missing" \
			"$(printf '%s\n' "$out" | head -30)"
	fi
}

# check_json DESC STATUS FILTER CMD...: CMD's stdout is one JSON document
# for which the jq FILTER is true.
have_jq=0
command -v jq >/dev/null && have_jq=1
check_json() {
	local desc="$1" want="$2" filter="$3" out st
	shift 3
	if [ "$have_jq" = 0 ]; then
		TAP_N=$((TAP_N + 1))
		echo "ok $TAP_N # SKIP jq is not installed: $desc"
		return
	fi
	out=$("$@" 2>/dev/null) && st=0 || st=$?
	if [ "$st" = "$want" ] && printf '%s' "$out" | jq -e "$filter" >/dev/null 2>&1; then
		tap_ok "$desc"
	else
		tap_fail "$desc" "command: $*" "exit status $st, wanted $want; jq: $filter" \
			"$(printf '%s\n' "$out" | head -c 2000)"
	fi
}

# flip FILE OFFSET: inverts one byte.
flip() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $((b ^ 0xff)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
size() { stat -c %s "$1"; }
copy() { cp -a "$t/good" "$t/$1"; }
ck() { printf '%s/ckpt-%08d.kmc' "$t/$1" "$2"; }

tap_plan 63

# Two chains: 1 <- 2 <- 3 and 4 <- 5.
"$MKCKPT" "$t/good" --chain full,incr,incr,full,incr >/dev/null || bail "mkckpt failed"
"$MKCKPT" "$t/again" --chain full,incr,incr,full,incr >/dev/null || bail "mkckpt failed"
same_files() {
	local i
	for i in 1 2 3 4 5; do cmp -s "$(ck good $i)" "$(ck again $i)" || return 1; done
}
ok_if "mkckpt is deterministic (the same command, the same files)" same_files

# ---- list ------------------------------------------------------------------
check_each "list: five checkpoints, two chains, kinds, parents, chain positions" 0 '
^ +ID +TIME +KIND +PARENT +CHAIN +PAGES +BYTES +PAUSE-MS$
^ +1  2026-01-01 00:01:00\.001  base +- +0 +48 +[0-9]+ +1\.250$
^ +2  2026-01-01 00:02:00\.002  incr +1 +1 +12 +[0-9]+ +1\.500$
^ +3  2026-01-01 00:03:00\.003  incr +2 +2 +12 +[0-9]+ +1\.750$
^ +4  2026-01-01 00:04:00\.004  base +- +0 +48 +[0-9]+ +2\.000$
^ +5  2026-01-01 00:05:00\.005  incr +4 +1 +12 +[0-9]+ +2\.250$
^5 checkpoints in 2 chains$' ks list "$t/good"
check_json "list --json: count, ids, kinds, parents, chain positions" 0 '
	.count == 5 and ([.checkpoints[].id] == [1,2,3,4,5]) and
	([.checkpoints[].kind] == ["base","incr","incr","base","incr"]) and
	([.checkpoints[].parent] == [null,1,2,null,4]) and
	([.checkpoints[]."chain-pos"] == [0,1,2,0,1])' ks list "$t/good" --json
check_json "list --json: every field of an entry" 0 '
	.checkpoints[2] | .time == "2026-01-01T00:03:00.003+00:00" and
	."time-ns" == 1767225780003000000 and .pages == 12 and .bytes > 0 and
	."pause-ms" == 1.75 and (.hash | test("^0x[0-9a-f]{16}$"))' ks list "$t/good" --json
"$MKCKPT" "$t/empty" --chain '' || bail "mkckpt of an empty store failed"
check "list of an empty store" 0 "no checkpoints" ks list "$t/empty"

# ---- inspect ---------------------------------------------------------------
check_each "inspect a base: header, identity, config, pages by kind, state, end, chain" 0 '
^checkpoint 1 of
header +format 1\.0, caps 0x1 \(lz4\)
identity +checkpoint 1, base, VM "mkvm"
VM config +memory 16777216 bytes \(16\.0 MiB\), 2 vCPUs, name "mkvm"
pages +48 entries \(48 distinct pages\) in 6 records: zero 16 \(0 bytes\), raw 16 \(65536 bytes\), lz4 16 \([0-9]+ bytes\)
state +VM state present, 2 vCPU states \(ids 0 1\)
end +captured 2026-01-01 00:01:00\.001, pause 1\.250 ms, 48 pages, memory hash 0x6d6b636b70740001
chain +1 \(position 0\); increments on it: 2
file .*ckpt-00000001\.kmc: [0-9]+ bytes, XXH3 0x[0-9a-f]{16} \(as listed\)' ks inspect "$t/good@1"
check_each "inspect an increment: its parent, its chain, no memory hash" 0 '
identity +checkpoint 3, incr on 2, VM "mkvm"
pages +12 entries
chain +1 2 3 \(position 2\)$
end +captured 2026-01-01 00:03:00\.003, pause 1\.750 ms, 12 pages$' ks inspect "$t/good@3"
check_json "inspect --json of an increment" 0 '
	.id == 3 and .kind == "incr" and .parent == 2 and .identity.kind == "incr" and
	.identity.parent == 2 and .config.vcpus == 2 and .config."memory-size" == 16777216 and
	.pages.entries == 12 and (.pages.zero + .pages.raw + .pages.lz4) == 12 and
	.state."vm-state" and .state."vcpu-ids" == [0,1] and .end.pages == 12 and
	.end."memory-hash" == null and .chain == [1,2,3] and .children == [] and
	.damage == null and ."hash-ok" and .format.major == 1' ks inspect "$t/good@3" --json

# ---- verify: a good store --------------------------------------------------
check_each "verify a good store: exit 0, every file ok" 0 '
ckpt-00000001\.kmc: ok$
ckpt-00000005\.kmc: ok$
: ok: 5 checkpoints verified, all restorable$' ks verify "$t/good"
check_json "verify --json of a good store" 0 '
	.ok and .checked == 5 and .restorable == [1,2,3,4,5] and ."not-restorable" == [] and
	.damaged == [] and .notes == [] and ([.checkpoints[].status] | unique) == ["ok"]' \
	ks verify "$t/good" --json
check_each "verify DIR@ID checks that chain only" 0 '
ckpt-00000004\.kmc: ok$
ckpt-00000005\.kmc: ok$
: ok: 2 checkpoints verified' ks verify "$t/good@5"

# ---- verify: one flipped byte in the middle of an increment ---------------
copy flip
flip "$(ck flip 2)" $(( $(size "$(ck flip 2)") / 2 ))
check_each "a flipped byte: exit 1, the file and its record named, 2 and 3 not restorable" 1 '
ckpt-00000002\.kmc: record [0-9]+: damaged \(checksum or field mismatch\)$
ckpt-00000001\.kmc: ok$
ckpt-00000003\.kmc: ok$
^checkpoint 2: not restorable: its file is damaged$
^checkpoint 3: not restorable: needs checkpoint 2, whose file is damaged$
^not restorable: 2 3$
^restorable: 1 4 5$
damage found: 1 of 5 checkpoint files damaged or missing, 2 of 5 checkpoints not restorable' \
	ks verify "$t/flip"
check_json "a flipped byte, --json: damaged, record, restorable lists" 1 '
	(.ok | not) and .damaged == [2] and ."not-restorable" == [2,3] and
	.restorable == [1,4,5] and (.checkpoints[1] | .status == "damaged" and
	(.record | type) == "number" and .record >= 2 and (."hash-ok" | not) and
	."size-ok" and (.error | test("ckpt-00000002.kmc: record [0-9]+: damaged")))' \
	ks verify "$t/flip" --json
check_each "a flipped byte: verify of the chain through it exits 1" 1 '
^not restorable: 2 3$
^restorable: 1$' ks verify "$t/flip@3"
check "a flipped byte: verify of the other chain exits 0" 0 ": ok: 2 checkpoints verified" \
	ks verify "$t/flip@5"
check_each "a flipped byte: inspect shows the file and names the damage" 1 '
identity +checkpoint 2, incr on 1
kvm-snapshot: .*ckpt-00000002\.kmc: record [0-9]+: damaged' ks inspect "$t/flip@2"

# ---- verify: a truncated base ---------------------------------------------
copy trunc
truncate -s $(( $(size "$(ck trunc 4)") / 2 )) "$(ck trunc 4)"
check_each "a truncated base: exit 1, ends in the middle, 4 and 5 not restorable" 1 '
ckpt-00000004\.kmc: record [0-9]+: the file ends in the middle
^checkpoint 5: not restorable: needs checkpoint 4, whose file is damaged$
^not restorable: 4 5$
^restorable: 1 2 3$' ks verify "$t/trunc"
check_json "a truncated base, --json: sizes differ" 1 '
	.damaged == [4] and (.checkpoints[3] | (."size-ok" | not) and (."hash-ok" | not))' \
	ks verify "$t/trunc" --json

# ---- verify: a listed file missing ----------------------------------------
copy missing
rm "$(ck missing 3)"
check_each "a missing file: exit 1, named, only it not restorable" 1 '
ckpt-00000003\.kmc: missing \(listed in the manifest\)$
^not restorable: 3$
^restorable: 1 2 4 5$' ks verify "$t/missing"
check "a missing file: inspect exits 1 and names it" 1 "ckpt-00000003\.kmc: No such file" \
	ks inspect "$t/missing@3"

# ---- verify: a file that is another checkpoint's; data after the end ----------
copy swap
cp "$(ck swap 3)" "$(ck swap 2)"
check "another checkpoint's file under its name: exit 1, identity named" 1 \
	"ckpt-00000002\.kmc: record 1: damaged \(the file is checkpoint 3 \(incr\), the manifest lists checkpoint 2" \
	ks verify "$t/swap"
copy tail
printf 'more bytes' >>"$(ck tail 5)"
check "data after the end record: exit 1" 1 \
	"ckpt-00000005\.kmc: record [0-9]+: damaged \(data after the end record\)" ks verify "$t/tail"
# A page index that names a page record one byte off, its checksum right:
# only the comparison with the page records finds it.
copy index
"$CKPT_POKE" "$(ck index 2)" 18 0 >/dev/null || bail "ckpt-poke failed"
check "a page index one byte off, well checksummed: exit 1, the index named" 1 \
	"ckpt-00000002\.kmc: record [0-9]+: damaged \(its page index does not match its page records" \
	ks verify "$t/index"

# ---- verify: leftovers are notes; gc removes them ---------------------------
copy left
cp "$(ck left 4)" "$(ck left 9)"
: >"$t/left/.ckpt-00000010.4242.tmp"
: >"$t/left/manifest.tmp"
check_each "leftovers: notes, not damage (exit 0)" 0 '
^note: .*/ckpt-00000009\.kmc: not listed in the manifest
^note: .*/\.ckpt-00000010\.4242\.tmp: an abandoned temporary file
^note: .*/manifest\.tmp: the next manifest of a transaction that died
: ok: 5 checkpoints verified, all restorable$' ks verify "$t/left"
check_json "leftovers, --json: three notes" 0 '.ok and (.notes | length) == 3' \
	ks verify "$t/left" --json
check "gc removes the three leftovers" 0 "removed 3 leftover files" ks gc "$t/left"
gc_done() {
	[ ! -e "$(ck left 9)" ] && [ ! -e "$t/left/.ckpt-00000010.4242.tmp" ] &&
		[ ! -e "$t/left/manifest.tmp" ] &&
		[ -e "$(ck left 4)" ] && ! ks verify "$t/left" | grep -q '^note:'
}
ok_if "after gc: the leftovers are gone, the listed files stay, no notes" gc_done
check_json "gc --json" 0 '.removed == 0' ks gc "$t/left" --json

# ---- the manifest: damaged, newer -----------------------------------------
copy badman
flip "$t/badman/manifest" 100
check "a damaged manifest: verify exits 1 and names it" 1 "manifest: damaged at record" \
	ks verify "$t/badman"
check "a damaged manifest: list exits 3" 3 "manifest: damaged at record" ks list "$t/badman"
copy newer
"$MKCKPT" "$t/newer" --manifest-major 2 || bail "mkckpt --manifest-major failed"
check "a newer manifest: list exits 3" 3 "written by a newer kvm-migrate \(format 2\)" \
	ks list "$t/newer"
check "a newer manifest: verify exits 3" 3 "written by a newer kvm-migrate \(format 2\)" \
	ks verify "$t/newer"

# ---- prune -----------------------------------------------------------------
copy prune2
check_each "prune --keep 2: the older chain goes, whole" 0 '
^removed checkpoint 1 \(base\)
^removed checkpoint 2 \(incr\)
^removed checkpoint 3 \(incr\)
removed 3, kept 2 checkpoints$' ks prune "$t/prune2" --keep 2
check_json "after prune: list has 4 and 5" 0 '[.checkpoints[].id] == [4,5]' \
	ks list "$t/prune2" --json
prune_done() {
	[ ! -e "$(ck prune2 1)" ] && [ ! -e "$(ck prune2 2)" ] && [ ! -e "$(ck prune2 3)" ] &&
		ks verify "$t/prune2" >/dev/null
}
ok_if "after prune: the files of 1-3 are gone, 4 and 5 verify" prune_done
copy prune3
check "prune --keep 3: 3 needs 1 and 2, so nothing goes (never an ancestor)" 0 \
	"nothing to remove: the newest 3 checkpoints need all 5" ks prune "$t/prune3" --keep 3
copy prune1
check_json "prune --keep 1 --json: 5 needs 4" 0 '.removed == [1,2,3] and .kept == [4,5]' \
	ks prune "$t/prune1" --keep 1 --json

# ---- usage and unopenable stores ------------------------------------------
check "--help exits 0"                   0 "Usage: kvm-snapshot"         ks --help
check "no command"                       2 "need a command"              ks
check "unknown command"                  2 "unknown command 'frob'"      ks frob "$t/good"
check "inspect without @ID"              2 "inspect: need DIR@ID"        ks inspect "$t/good"
check "prune without --keep"             2 "prune: need --keep N"        ks prune "$t/good"
check "prune --keep 0"                   2 "--keep '0': need 1 to"       ks prune "$t/good" --keep 0
check "an unknown option"                2 "unrecognized option '--frob'" ks list --frob "$t/good"
check "list of DIR@ID"                   2 "list: takes DIR, not DIR@ID" ks list "$t/good@3"
check "an ID out of range"               2 "the ID must be 1 to"         ks verify "$t/good@0"
check "an ID not listed"                 1 "checkpoint 77 is not listed" ks inspect "$t/good@77"
"$MKCKPT" "$t/at@x" --chain full >/dev/null && "$MKCKPT" "$t/at@7/" --chain full,incr >/dev/null ||
	bail "mkckpt failed"
check "DIR with an '@' not followed by digits only" 0 "^1 checkpoint in 1 chain$" \
	ks list "$t/at@x"
check "DIR ending in '@' and digits, given with a '/', then @ID" 0 \
	"at@7/ckpt-00000002.kmc: ok" ks verify "$t/at@7/@2"
mkdir -m 700 "$t/plain"
check "a directory without a manifest: exit 3" 3 "not a checkpoint store" ks verify "$t/plain"

# ---- compaction (no VM: the chain applied to memory, kvm-snapshot memory-hash)
"$MKCKPT" "$t/cmp" --chain full,incr,incr,full,incr >/dev/null || bail "mkckpt failed"
h3=$(ks memory-hash "$t/cmp@3")
check "compact DIR@3: the chain 1-3 becomes one base" 0 \
	"checkpoint 3 is now base 6: 3 files merged" ks compact "$t/cmp@3"
check "the base restores the memory checkpoint 3 did ($h3)" 0 "^$h3$" ks memory-hash "$t/cmp@6"
check_json "1-3 are gone, 6 is a base with 3's time, 4-5 untouched" 0 \
	'[.checkpoints[].id] == [4,5,6] and (.checkpoints[] | select(.id == 6) | .kind == "base"
	 and ."chain-pos" == 0 and ."time-ns" == 1767225780003000000)' ks list "$t/cmp" --json
check "and everything verifies" 0 "ok: 3 checkpoints verified, all restorable" ks verify "$t/cmp"
check "compact of a base: nothing to compact" 1 "checkpoint 6 is a base: nothing to compact" \
	ks compact "$t/cmp@6"
h5=$(ks memory-hash "$t/cmp@5")
check_json "compact DIR (the newest, 5) --json" 0 '.checkpoint == 5 and .base == 7 and .merged == 2' \
	ks compact "$t/cmp" --json
check "the newest is that base now, with 5's memory" 0 "^$h5$" ks memory-hash "$t/cmp"
# A crash at each step of compaction's commit: the chain or the base, never neither.
if ! strings "$KVM_SNAPSHOT" | grep -q after-manifest-rename; then
	for i in 1 2 3 4 5 6; do echo "ok $((TAP_N += 1)) # SKIP no fault injection in this build"; done
else
	for p in after-tmp-write after-rename mid-manifest-write after-manifest-rename \
		 after-manifest-fsync mid-remove; do
		d="$t/crash-$p"
		"$MKCKPT" "$d" --chain full,incr,incr >/dev/null || bail "mkckpt failed"
		h=$(ks memory-hash "$d@3")
		KVM_MIGRATE_STORE_CRASH=$p "$KVM_SNAPSHOT" compact "$d@3" >/dev/null 2>&1 && st=0 || st=$?
		v=$(ks verify "$d" 2>&1) && vst=0 || vst=$?
		got=$(ks memory-hash "$d" 2>&1)
		ks gc "$d" >/dev/null 2>&1
		if [ "$st" = 137 ] && [ "$vst" = 0 ] && [ "$got" = "$h" ] &&
		   [ "$(ks memory-hash "$d")" = "$h" ] && ks verify "$d" >/dev/null; then
			tap_ok "compaction killed at $p: all listed verify, the newest has 3's memory"
		else tap_fail "compaction killed at $p" "exit $st (wanted 137)" "verify $vst: $v" \
			"memory-hash '$got', wanted $h"; fi
	done
fi

