#!/bin/bash
# Two hosts on one machine: network namespaces A and B joined by a veth
# pair, addresses this test assigns inside them, a kvm-migrated in each,
# mutual TLS. A VM goes A -> B -> A ten times and every page is checked
# each time; then the link is cut mid-stream. Sizes follow the machine's
# pace (tests/README.md).
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || tap_skip_all "network namespaces need root"
command -v ip >/dev/null || tap_skip_all "ip (iproute2) is not installed"
require_kvm
. "$(dirname "$0")/lib-migrate.sh"

nsa=kmtest-a-$$ nsb=kmtest-b-$$ va=kma$$ vb=kmb$$
ipa=10.213.0.1 ipb=10.213.0.2
netns_cleanup() {
	cleanup
	ip netns del "$nsa" 2>/dev/null
	ip netns del "$nsb" 2>/dev/null
}
trap netns_cleanup EXIT

if ! { ip netns add "$nsa" && ip netns add "$nsb" &&
       ip link add "$va" type veth peer name "$vb" &&
       ip link set "$va" netns "$nsa" && ip link set "$vb" netns "$nsb" &&
       ip -n "$nsa" addr add "$ipa/24" dev "$va" && ip -n "$nsb" addr add "$ipb/24" dev "$vb" &&
       ip -n "$nsa" link set lo up && ip -n "$nsb" link set lo up &&
       ip -n "$nsa" link set "$va" up && ip -n "$nsb" link set "$vb" up; } 2>"$tmp/ip.err"; then
	tap_skip_all "cannot make network namespaces here: $(head -1 "$tmp/ip.err")"
fi

tap_plan 17

rm -rf "$tmp/x509"
"$MAKE_CERTS" --san "IP:$ipa,IP:$ipb" "$tmp/x509" >/dev/null 2>&1 || bail "scripts/make-certs failed"

in_a() { ip netns exec "$nsa" "$@"; }
in_b() { ip netns exec "$nsb" "$@"; }
# migrate (lib-migrate.sh) from inside host A or B.
in_a_migrate() { local MIG_VIA=(ip netns exec "$nsa"); migrate "$@"; }
in_b_migrate() { local MIG_VIA=(ip netns exec "$nsb"); migrate "$@"; }

A=$tmp/a B=$tmp/b
in_a "$KVM_MIGRATED" --listen "$ipa" --tls-dir "$tmp/x509" --rundir "$A" >"$tmp/daemon-a.log" 2>&1 &
pids+=($!)
in_b "$KVM_MIGRATED" --listen "$ipb" --tls-dir "$tmp/x509" --rundir "$B" >"$tmp/daemon-b.log" 2>&1 &
pids+=($!)
wait_for "daemon A" 10 grep -q listening "$tmp/daemon-a.log"
wait_for "daemon B" 10 grep -q listening "$tmp/daemon-b.log"

# Host A reaches host B's address through the veth pair, and only there.
ok_if "host A routes to host B over the veth pair" \
	sh -c "ip -n '$nsa' route get '$ipb' | grep -q 'dev $va'"

rate=$(rate_of 5000 2)
VM_PAGES[vm1]=$(wss_pages 32)
in_a "$KVM_RUN" --name vm1 --rundir "$A" --mem 256M --vcpus 2 --guest verify \
	--guest-arg "rate=$rate,wss=$(( VM_PAGES[vm1] * 4 ))K" >"$tmp/vm1.log" 2>&1 &
pids+=($!)
wait_for "vm1" 20 running "$A/vm1.sock"

# Ten round trips with mutual TLS on the daemons' default port.
for i in $(seq 1 10); do
	if in_a_migrate "$tmp/ab.out" --rundir "$A" vm1 "$ipb" && vm_ok "$B/vm1.sock" &&
	   in_b_migrate "$tmp/ba.out" --rundir "$B" vm1 "$ipa" && vm_ok "$A/vm1.sock"; then
		tap_ok "round trip $i: A -> B -> A, every page correct at each end"
	else
		tap_fail "round trip $i" "$(cat "$tmp/ab.out" "$tmp/ba.out" 2>/dev/null | tail -15)" \
			"$(tail -n 5 "$tmp/daemon-a.log" "$tmp/daemon-b.log")"
	fi
done
ok_if "after ten round trips the VM runs at A" running "$A/vm1.sock"

# The link goes down mid-stream: the source notices (I/O timeout), keeps
# running, stays correct; with the link back, the migration works. The cap
# (4 MiB/s natively, elsewhere half of what its two vCPUs dirty) keeps the
# migration going until then.
cap_k=$(sized 4096 $(( rate * 4 )))
in_a "$KVM_MIGRATE" --tls-dir "$tmp/x509" --rundir "$A" --bandwidth "${cap_k}K" --io-timeout 3 \
	vm1 "$ipb" >"$tmp/drop.out" 2>&1 &
mig=$!
wait_for "the bulk round" 20 migrating "$A/vm1.sock" "$(sized 1000000 $(( cap_k * 512 )))"
ip -n "$nsa" link set "$va" down
wait "$mig" && st=0 || st=$?
ok_if "link down mid-stream: kvm-migrate exits 1" [ "$st" = 1 ]
ok_if "link down: the source VM still runs" running "$A/vm1.sock"
ok_if "link down: every page of the source guest correct" vm_ok "$A/vm1.sock"
ip -n "$nsa" link set "$va" up
ok_if "the link back up: the migration succeeds" in_a_migrate "$tmp/back.out" --rundir "$A" vm1 "$ipb"
ok_if "and every page is correct at B" vm_ok "$B/vm1.sock"
q "$B/vm1.sock" '{"execute": "quit"}' >/dev/null 2>&1
