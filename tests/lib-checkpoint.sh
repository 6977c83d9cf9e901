# Helpers of the checkpoint tests (after lib.sh and lib-migrate.sh).
KVM_SNAPSHOT="$top_builddir/snapshot/kvm-snapshot"

# field JSON NAME: a field's value in a one-line reply.
field() { printf '%s\n' "$1" | grep -o "\"$2\": *\"*[^,}\"]*" | head -1 | sed 's/.*: *"*//'; }
# ckpt SOCK ARGS: a checkpoint now; true if it was taken; the reply in $reply.
ckpt() {
	reply=$(q "$1" "{\"execute\": \"checkpoint\", \"arguments\": $2}" 2>&1)
	printf '%s\n' "$reply" | grep -q '"return"'
}
# taken SOCK N: at least N checkpoints were committed.
taken() {
	local t
	t=$(q "$1" '{"execute": "query-checkpoints"}' 2>/dev/null) || return 1
	[ "$(field "$t" taken)" -ge "$2" ] 2>/dev/null
}
