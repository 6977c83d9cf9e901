#!/bin/bash
# Local users cannot reach other users' VMs (README "Security"): run
# directories planted by someone else, or open to others, are refused;
# control sockets and the daemon's unix listener are 0600 and refuse a
# peer of another user even when it can reach the path (here: uid nobody
# holding CAP_DAC_OVERRIDE); console files are never opened through a
# symlink or in a directory others can write; a guest cannot forge the
# VMM's log lines through its console.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || tap_skip_all "needs root (to act as another user, nobody)"
command -v setpriv >/dev/null || tap_skip_all "setpriv (util-linux) is not installed"
require_kvm

tmp=$(mktemp -d)
pids=()
cleanup() {
	exec 2>/dev/null
	for p in "${pids[@]}"; do kill -KILL "$p"; done
	rm -rf "$tmp"
}
trap cleanup EXIT
tap_plan 15

NOBODY=65534
as_nobody() { setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups -- "$@"; }
# nobody, but able to reach any path: only the socket's own check is left.
as_nobody_anywhere() {
	setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups --inh-caps=+dac_override \
		--ambient-caps=+dac_override -- "$@"
}
migrated_rundir() {	# migrated_rundir DIR: kvm-migrated's verdict on DIR as its run directory
	timeout 20 "$KVM_MIGRATED" --insecure --listen "unix:$tmp/never.sock" --rundir "$1" 2>&1
}

# Run directories.
mkdir -m 700 "$tmp/mine"
ln -s "$tmp/mine" "$tmp/link"
check "a run directory that is a symlink is refused" 3 "it is a symlink" \
	migrated_rundir "$tmp/link"
mkdir -m 700 "$tmp/theirs" && chown "$NOBODY" "$tmp/theirs"
check "a run directory another user owns is refused" 3 "not owned by this user" \
	migrated_rundir "$tmp/theirs"
mkdir -m 755 "$tmp/open"
check "a run directory open to others is refused" 3 "it is open to others" \
	migrated_rundir "$tmp/open"
check "without XDG_RUNTIME_DIR a user gets no /tmp fallback" 3 "XDG_RUNTIME_DIR is not set" \
	as_nobody env -u XDG_RUNTIME_DIR -u KVM_MIGRATE_RUNDIR "$KVM_MIGRATED" --insecure \
	--listen 127.0.0.1:0

# A VM's control socket.
R=$tmp/run
"$KVM_RUN" --name vm1 --rundir "$R" --mem 64M --guest idle >"$tmp/vm1.log" 2>&1 &
pids+=($!)
wait_for "vm1" 20 running "$R/vm1.sock"
ok_if "the run directory is mode 700 ($(stat -c %a "$R"))" [ "$(stat -c %a "$R")" = 700 ]
ok_if "the control socket is mode 600 ($(stat -c %a "$R/vm1.sock"))" \
	[ "$(stat -c %a "$R/vm1.sock")" = 600 ]
refused_peer() {
	! as_nobody_anywhere "$QMP_SEND" "$1" '{"execute": "query-status"}' >"$tmp/peer.out" 2>&1 &&
		! grep -q '"return"' "$tmp/peer.out"
}
ok_if "another user who can reach the control socket gets no answer" refused_peer "$R/vm1.sock"
ok_if "and the VM says so" wait_for "the VM's line" 10 \
	grep -q "refused a connection from uid $NOBODY" "$tmp/vm1.log"
ok_if "the VM's own user still gets answers" running "$R/vm1.sock"
q "$R/vm1.sock" '{"execute": "quit"}' >/dev/null

# The daemon's unix listener (no TLS there).
"$KVM_MIGRATED" --listen "unix:$tmp/d.sock" --rundir "$tmp/d" >"$tmp/daemon.log" 2>&1 &
pids+=($!)
wait_for "the daemon" 10 test -S "$tmp/d.sock"
ok_if "the daemon's unix listener is mode 600 ($(stat -c %a "$tmp/d.sock"))" \
	[ "$(stat -c %a "$tmp/d.sock")" = 600 ]
nobody_pushes() {
	as_nobody_anywhere "$QMP_SEND" "$tmp/d.sock" '{}' >/dev/null 2>&1
	wait_for "the daemon's line" 10 grep -q "uid $NOBODY may not use this unix socket" \
		"$tmp/daemon.log"
}
ok_if "another user cannot connect to the daemon's unix listener; the daemon says so" nobody_pushes

# Console files.
mkdir -m 700 "$tmp/con"
ln -s "$tmp/con/target" "$tmp/con/link"
check "a console path that is a symlink is refused" 3 "is a symlink" \
	timeout 30 "$KVM_RUN" --mem 64M --guest idle --seconds 1 --console "$tmp/con/link"
ok_if "and nothing was written through it" [ ! -e "$tmp/con/target" ]
mkdir -m 1777 "$tmp/shared"
check "a console in a directory others can write is refused" 3 "writable by others" \
	timeout 30 "$KVM_RUN" --mem 64M --guest idle --seconds 1 --console "$tmp/shared/c.log"

# A guest that prints a fake log line of the VMM and a terminal escape,
# then stops (ud2): mov eax, 0xd0000000 (the console byte); mov [rax], c ...
forged=$'\n2026-01-01 00:00:00.000 kvm-run[1]: info: VM forged runs here\n\x1b[2J'
{
	printf '\xb8\x00\x00\x00\xd0'
	for ((i = 0; i < ${#forged}; i++)); do
		printf '\xc6\x00'
		printf "\\x$(printf %02x "'${forged:i:1}")"
	done
	printf '\x0f\x0b'
} >"$tmp/forge.bin"
timeout 30 "$KVM_RUN" --name forger --rundir "$R" --mem 64M --guest "$tmp/forge.bin" \
	>"$tmp/forge.out" 2>&1
not_forged() {
	! grep -q '^2026-01-01 00:00:00.000 kvm-run\[1\]' "$tmp/forge.out" &&
		grep -q '^guest forger| 2026-01-01 00:00:00.000 kvm-run\[1\]' "$tmp/forge.out" &&
		grep -q 'guest forger| \\x1b\[2J' "$tmp/forge.out" && return 0
	sed 's/^/# /' "$tmp/forge.out"
	return 1
}
ok_if "a guest's console lines in the VMM's log are marked and escaped: no forged log line" \
	not_forged
