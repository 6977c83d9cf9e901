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
