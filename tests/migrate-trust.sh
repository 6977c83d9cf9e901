#!/bin/bash
# The trust model for a fleet (README "Security"): scripts/make-certs keeps
# the CA key apart and gives each host its own keys and names; two hosts
# migrate a VM there and back, each proving its own name; --allow-peer
# narrows the CA's word to listed names; a revoked certificate (ca-crl.pem)
# is refused at either end; a private key open to others is refused; plain
# TCP is refused on a non-loopback address unless asked for; the server's
# private key is only in the daemon's key agent, not in the daemon nor in
# the VMs it received. Sizes follow the machine's pace (tests/README.md).
. "$(dirname "$0")/lib.sh"
require_kvm
. "$(dirname "$0")/lib-migrate.sh"

tap_plan 27

CA=$tmp/ca
MEMGREP=$top_builddir/tests/lib/memgrep
A=$tmp/a B=$tmp/b
rate1=$(rate_of 2000 1) pages16=$(wss_pages 16)

# The fleet's material.
"$MAKE_CERTS" --ca "$CA" >/dev/null && for h in hosta hostb hostc; do
	"$MAKE_CERTS" --ca-from "$CA" --cn "$h" "$tmp/$h" >/dev/null || break
done
ok_if "a CA, and three hosts' directories signed by it" \
	test -s "$tmp/hostc/client-cert.pem" -a -s "$CA/ca-key.pem"
no_ca_key() { ! ls "$tmp"/host?/ca-key.pem >/dev/null 2>&1; }
ok_if "no host's directory holds the CA's key" no_ca_key
ok_if "each host has its own key pair" \
	sh -c "! cmp -s '$tmp/hosta/server-key.pem' '$tmp/hostb/server-key.pem'"
keys_private() { [ "$(stat -c %a "$tmp"/host?/*-key.pem | sort -u)" = 600 ]; }
ok_if "private keys are mode 600" keys_private
readme_recipe() {
	"$MAKE_CERTS" "$tmp/hostd" --ca-from "$CA" --cn hostd --san IP:192.0.2.4,DNS:hostd \
		>/dev/null && openssl x509 -in "$tmp/hostd/server-cert.pem" -noout -ext subjectAltName |
		grep -q "IP Address:192.0.2.4"
}
ok_if "options after the directory work, as the README's recipe has them" readme_recipe

# Host A and host B, each with its own certificates: there and back.
tls_daemon() {	# tls_daemon NAME RUNDIR TLSDIR [ARGS]: as start_daemon, another x509 dir
	local name="$1" rundir="$2" dir="$3" log="$tmp/daemon-$1.log"
	shift 3
	"$KVM_MIGRATED" --listen 127.0.0.1:0 --tls-dir "$dir" --rundir "$rundir" "$@" >"$log" 2>&1 &
	pids+=($!)
	eval "pid_$name=$!"
	wait_for "daemon $name" 10 grep -q "listening on" "$log" || return 1
	eval "port_$name=$(sed -n 's/.*, port \([0-9]*\),.*/\1/p' "$log")"
}
tls_daemon a "$A" "$tmp/hosta"
tls_daemon b "$B" "$tmp/hostb"
start_vm t1 "$A" "$rate1" "$pages16" --mem 256M
go() {	# go OUT TLSDIR ARGS...: kvm-migrate with a host's certificates
	local out="$1" dir="$2"
	shift 2
	timeout "$(pace_time 120)" "$KVM_MIGRATE" --tls-dir "$dir" --downtime-ms "$MIG_DOWNTIME" \
		"$@" >"$out" 2>&1
}
there_back() {
	go "$tmp/ab.out" "$tmp/hosta" --rundir "$A" t1 "127.0.0.1:$port_b" && vm_ok "$B/t1.sock" &&
		go "$tmp/ba.out" "$tmp/hostb" --rundir "$B" t1 "127.0.0.1:$port_a" && vm_ok "$A/t1.sock"
}
ok_if "A -> B with host A's certificates, B -> A with host B's: every page correct" there_back
ok_if "each daemon names the other host as the peer" \
	sh -c "grep -q 'VM t1 from CN=hosta' '$tmp/daemon-b.log' && grep -q 'VM t1 from CN=hostb' '$tmp/daemon-a.log'"

# --allow-peer: host B takes VMs from host A only; host C holds a valid
# certificate of the same CA.
tls_daemon b2 "$tmp/b2" "$tmp/hostb" --allow-peer hosta
go "$tmp/c.out" "$tmp/hostc" --rundir "$A" t1 "127.0.0.1:$port_b2" && st=0 || st=$?
not_listed() {
	[ "$st" = 1 ] && grep -q "not on this daemon's --allow-peer list" "$tmp/c.out" &&
		grep -q "refused CN=hostc .*--allow-peer" "$tmp/daemon-b2.log"
}
ok_if "--allow-peer hosta: host C (same CA) is refused, both ends say why" not_listed
source_intact "not on the list" "$A/t1.sock"
ok_if "host A is taken" go "$tmp/a2.out" "$tmp/hosta" --rundir "$A" t1 "127.0.0.1:$port_b2"
ok_if "every page correct there" vm_ok "$tmp/b2/t1.sock"
go "$tmp/back.out" "$tmp/hostb" --rundir "$tmp/b2" t1 "127.0.0.1:$port_a"

# Revocation: host C's certificates revoked; host B's directory gets the CRL.
revoked=$("$MAKE_CERTS" --ca-from "$CA" --revoke "$tmp/hostc" 2>&1)
ok_if "make-certs --revoke writes the CA's CRL" test -s "$CA/ca-crl.pem"
cp -r "$tmp/hostb" "$tmp/hostb-crl" && cp "$CA/ca-crl.pem" "$tmp/hostb-crl/"
tls_daemon b3 "$tmp/b3" "$tmp/hostb-crl"
go "$tmp/rev.out" "$tmp/hostc" --rundir "$A" t1 "127.0.0.1:$port_b3" && st=0 || st=$?
ok_if "a daemon with the CRL refuses host C's revoked certificate" \
	sh -c "[ $st = 1 ] && grep -q 'certificate revoked' '$tmp/daemon-b3.log'"
source_intact "revoked client" "$A/t1.sock"
ok_if "and still takes host A" go "$tmp/a3.out" "$tmp/hosta" --rundir "$A" t1 "127.0.0.1:$port_b3"
go "$tmp/back3.out" "$tmp/hostb" --rundir "$tmp/b3" t1 "127.0.0.1:$port_a"
# The client side too: host A, with the CRL, will not send to host C's daemon.
cp -r "$tmp/hosta" "$tmp/hosta-crl" && cp "$CA/ca-crl.pem" "$tmp/hosta-crl/"
tls_daemon c "$tmp/c" "$tmp/hostc"
go "$tmp/toc.out" "$tmp/hosta-crl" --rundir "$A" t1 "127.0.0.1:$port_c" && st=0 || st=$?
ok_if "a client with the CRL refuses a daemon whose certificate is revoked" \
	sh -c "[ $st = 1 ] && grep -q 'revoked' '$tmp/toc.out'"
ok_if "the VM still runs at A" running "$A/t1.sock"

# A private key that other users can read is refused, saying how to fix it.
cp -r "$tmp/hostb" "$tmp/hostb-open" && chmod 644 "$tmp/hostb-open/server-key.pem"
check "kvm-migrated refuses a server key open to others" 3 "open to other users .*chmod 600" \
	timeout 20 "$KVM_MIGRATED" --listen 127.0.0.1:0 --tls-dir "$tmp/hostb-open" --rundir "$tmp/o"
chmod 640 "$tmp/hosta-crl/client-key.pem"
check "kvm-migrate refuses a client key open to others" 1 "open to other users" \
	timeout 60 "$KVM_MIGRATE" --tls-dir "$tmp/hosta-crl" --rundir "$A" t1 "127.0.0.1:$port_b"

# Plain TCP (no authentication at all) only on loopback, unless asked for.
check "--insecure on all addresses is refused" 2 "give a loopback --listen address" \
	timeout 20 "$KVM_MIGRATED" --insecure --rundir "$tmp/i"
"$KVM_MIGRATED" --insecure-network --listen 0.0.0.0:0 --rundir "$tmp/i" >"$tmp/daemon-i.log" 2>&1 &
pids+=($!)
ok_if "--insecure-network says it means it: the daemon listens" \
	wait_for "daemon i" 10 grep -q "listening on 0.0.0.0:0 (no TLS)" "$tmp/daemon-i.log"

# The server's private key lives in the key agent only: not in the daemon,
# not in the process of a VM it received (a search of their memory for the
# private scalar, both byte orders; the agent is the control).
priv=$(openssl pkey -in "$tmp/hostb/server-key.pem" -noout -text |
	sed -n '/^priv:/,/^pub:/p' | grep -v '^p' | tr -d ' :\n' | sed 's/^00\(.\{64\}\)$/\1/')
rev=$(echo "$priv" | sed 's/../& /g' | tr ' ' '\n' | tac | tr -d '\n')
go "$tmp/mem.out" "$tmp/hosta" --rundir "$A" t1 "127.0.0.1:$port_b"
agent=$(pgrep -P "$pid_b" -x km-keyagent)
vm=$(pgrep -n -P "$pid_b" -x kvm-migrated)
ok_if "the key agent (pid ${agent:-?}) holds the key: the search works" \
	"$MEMGREP" "${agent:-0}" "$priv" "$rev"
ok_if "the daemon (pid $pid_b) does not" sh -c "! '$MEMGREP' '$pid_b' '$priv' '$rev'"
ok_if "the VM it received (pid ${vm:-?}) does not" \
	sh -c "[ -n '$vm' ] && ! '$MEMGREP' '$vm' '$priv' '$rev'"
ok_if "and that VM runs, every page correct" vm_ok "$B/t1.sock"
