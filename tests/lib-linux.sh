# Shared by the Linux guest tests (sourced after lib.sh): Debian's kernel,
# the busybox initramfs, and the guest's console (typing into its socket,
# finding what it printed).

linux_kernel=$(printf '%s\n' /boot/vmlinuz-* | sort -V | tail -1)
linux_kver=${linux_kernel#/boot/vmlinuz-}

# require_linux [--disk]: skips the script without a kernel and the
# initramfs tools (and with --disk, the kernel's virtio modules), then
# runs it where KVM is. A kernel runs at CPL0, which kvm_pvm
# emulates too slowly and too partially to boot one (DESIGN.md s.2): there
# too, these tests run in the sandbox.
require_linux() {
	local t
	[ -r "$linux_kernel" ] ||
		tap_skip_all "no readable kernel /boot/vmlinuz-* (install linux-image-amd64)"
	for t in cpio gzip perl; do
		command -v "$t" >/dev/null || tap_skip_all "$t is missing (scripts/install-deps installs it)"
	done
	[ -x /bin/busybox ] || tap_skip_all "no /bin/busybox (install busybox-static)"
	[ "${1:-}" != --disk ] || [ -r "/lib/modules/$linux_kver/modules.dep" ] ||
		tap_skip_all "no /lib/modules/$linux_kver (the virtio modules)"
	if [ -z "${KVM_MIGRATE_IN_SANDBOX:-}" ] && [ -d /sys/module/kvm_pvm ]; then
		export KVM_MIGRATE_FORCE_SANDBOX=1
		export KVM_MIGRATE_SANDBOX=${KVM_MIGRATE_SANDBOX:-$top_srcdir/scripts/sandbox/kvm-sandbox}
	fi
	require_kvm
}

# console_type SOCKET TEXT: TEXT into a console socket (a client at a
# time: each call connects, sends, leaves).
console_type() {
	perl -MIO::Socket::UNIX -e '
		my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "connect $ARGV[0]: $!\n";
		print $s $ARGV[1]; close $s;' "$1" "$2"
}

# printed_in LINE FILE...: the guest printed LINE (a whole line, an
# extended regex) on one of the console logs FILE... The echo of what was
# typed does not match when LINE's text is computed by the command
# ($((...)), $(...)).
printed_in() {
	local line=$1
	shift
	cat "$@" 2>/dev/null | tr -d '\r' | grep -Eq "^$line\$"
}
# the_line LINE FILE...: the last such line.
the_line() {
	local line=$1
	shift
	cat "$@" 2>/dev/null | tr -d '\r' | grep -E "^$line\$" | tail -1
}

# The tests that drive one kvm-run at a time keep it in $pid, its name in
# $vm, its run directory in $run, its console log in $con; these use them.
type_in() { console_type "$run/$vm.console" "$1"; }
gone() { ! kill -0 "$pid" 2>/dev/null; }

marker_or_gone() { grep -q "^KVM-MIGRATE-INIT " "$con" || gone; }
# boot_vm NAME DESC KVM-RUN-ARGS...: kvm-run --name NAME (in $run, console
# to $tmp/NAME.console, output to $tmp/NAME.out) with the args; waits for
# the init marker (KVM-MIGRATE-INIT). Sets vm, con, pid and ms (the wall
# time to the marker, also printed as a comment with DESC). 1 if no marker
# came, with the console's and kvm-run's last lines printed.
boot_vm() {
	local t0
	vm=$1
	con="$tmp/$1.console"
	t0=$(date +%s%N)
	"$KVM_RUN" --name "$1" --rundir "$run" --console "$con" "${@:3}" >"$tmp/$1.out" 2>&1 &
	pid=$!
	# A kvm-run that ended (refused its arguments) is not waited for.
	if wait_for "the init marker" 120 marker_or_gone && grep -q "^KVM-MIGRATE-INIT " "$con"; then
		ms=$(( ($(date +%s%N) - t0) / 1000000 ))
		echo "# boot to the init marker, $2: $ms ms wall ($KM_PACE_WHERE)," \
			"$(grep -m1 '^KVM-MIGRATE-INIT' "$con" | tr -d '\r')"
		return 0
	fi
	echo "# no init marker; console tail:"
	tail -20 "$con" 2>/dev/null | sed 's/^/#   /'
	tail -5 "$tmp/$1.out" 2>/dev/null | sed 's/^/#   /'
	return 1
}

# vm_end DESC COMMAND: types COMMAND (poweroff -f, reboot -f) into the
# guest; one check: kvm-run ends, with status 0.
vm_end() {
	local st t1
	t1=$(date +%s%N)
	type_in "$2"$'\n'
	if wait_for "kvm-run to end after $2" 60 gone; then
		wait "$pid" && st=0 || st=$?
		pid=
		ok_if "$1: kvm-run ends with status 0 ($st) in $(( ($(date +%s%N) - t1) / 1000000 )) ms" \
			[ "$st" = 0 ]
	else
		tap_fail "$1: kvm-run still runs after $2" "$(tail -5 "$con")"
	fi
}
