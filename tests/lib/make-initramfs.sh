#!/bin/bash
# make-initramfs.sh [--modules KVER=MOD,...] [--kmwork FILE] OUT.cpio.gz [MARKER]:
# a tiny initramfs for Linux guests of kvm-run (tests/linux-*.sh): Debian's
# static busybox and an /init that mounts proc, sys and dev, prints MARKER
# (default KVM-MIGRATE-INIT) with the uptime, and runs a shell on the
# console. Needs busybox-static, cpio and gzip.
#   --modules KVER=MOD[,MOD...]  also copies those kernel modules of
#     /lib/modules/KVER (and what they need, by modules.dep; uncompressed
#     .ko only, as busybox's insmod loads them) and has /init insmod them,
#     dependencies first, before it prints MARKER.
#   --kmwork FILE  also the workload program FILE (guest-linux/kmwork,
#     static) as /bin/kmwork.
set -eu
modules=
kmwork=
while [ $# -gt 0 ]; do
	case $1 in
	--modules) modules=$2; shift 2 ;;
	--kmwork) kmwork=$2; shift 2 ;;
	*) break ;;
	esac
done
out=$1
marker=${2:-KVM-MIGRATE-INIT}
bb=/bin/busybox
[ -x "$bb" ] || { echo "make-initramfs: $bb is missing (install busybox-static)" >&2; exit 1; }
# Debian's dynamic "busybox" package installs the same path: it would not run without its libraries.
if ldd "$bb" >/dev/null 2>&1; then
	echo "make-initramfs: $bb is dynamically linked (install busybox-static)" >&2
	exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,root}
cp "$bb" "$tmp/bin/busybox"
insmods=
if [ -n "$modules" ]; then
	kver=${modules%%=*}
	dep=/lib/modules/$kver/modules.dep
	[ -r "$dep" ] || { echo "make-initramfs: no $dep" >&2; exit 1; }
	# Each module after what it needs (modules.dep lists a module's dependencies, deepest last).
	order=
	add_mod() {
		local rel line d
		line=$(grep -E "(^|/)$1\.ko(\.[a-z]+)?:" "$dep" | head -1)
		[ -n "$line" ] || { echo "make-initramfs: no module $1 in $dep" >&2; exit 1; }
		rel=${line%%:*}
		case " $order " in *" $rel "*) return ;; esac
		for d in $(printf '%s\n' ${line#*:} | tac); do
			add_mod "$(basename "${d%%.ko*}")"
		done
		case $rel in *.ko) ;; *) echo "make-initramfs: $rel is compressed; busybox insmod needs .ko" >&2; exit 1 ;; esac
		order="$order $rel"
	}
	for m in $(printf '%s' "${modules#*=}" | tr ',' ' '); do add_mod "$m"; done
	mkdir -p "$tmp/lib/modules"
	for rel in $order; do
		cp "/lib/modules/$kver/$rel" "$tmp/lib/modules/"
		insmods="${insmods}insmod /lib/modules/$(basename "$rel")
"
	done
fi
if [ -n "$kmwork" ]; then
	if [ ! -x "$kmwork" ] || ldd "$kmwork" >/dev/null 2>&1; then
		echo "make-initramfs: $kmwork is not a static executable" >&2
		exit 1
	fi
	cp "$kmwork" "$tmp/bin/kmwork"
fi
cat > "$tmp/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The cpio has no /dev/console (making one needs mknod): the kernel then
# starts init with no stdin/out/err, so take the console from devtmpfs.
exec </dev/console >/dev/console 2>&1
${insmods}echo "$marker uptime \$(cut -d' ' -f1 /proc/uptime) cpus \$(grep -c ^processor /proc/cpuinfo)"
# A shell on the console, with it as its controlling terminal (job control, ^C).
exec setsid cttyhack sh
INIT
chmod 755 "$tmp/init"
(cd "$tmp" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -9) > "$out.tmp"
mv -f "$out.tmp" "$out"
