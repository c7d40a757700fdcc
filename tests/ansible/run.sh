#!/usr/bin/env bash
# tests/ansible/run.sh — drive the docker_firewall module through real ansible-playbook runs
# (the venv's ansible-core), each case in its own fresh network namespace (unshare --net), so the
# machine's own firewall is never touched. Rules files go to a temp dir, never /etc/iptables.
#
# Needs: scripts/setup done (.venv, library/docker_firewall), root.
# Prints "ok - ..." / "not ok - ..." lines and finally "N passed, N failed".
# Usage: bash tests/ansible/run.sh [CASE...]   (default: every case)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VENV=$ROOT/.venv
MODULE=$ROOT/library/docker_firewall
ALL_CASES=(apply-nft both-legacy check-diff bad-input doc-examples)
CASES=("$@")
[ "${#CASES[@]}" -gt 0 ] || CASES=("${ALL_CASES[@]}")

PASSED=0
FAILED=0
count() {
    local out=$1 line
    while IFS= read -r line; do
        echo "$line"
        case $line in
            "ok - "*) PASSED=$((PASSED + 1)) ;;
            "not ok - "*) FAILED=$((FAILED + 1)) ;;
        esac
    done <"$out"
}
finish() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" = 0 ] && [ "$PASSED" -gt 0 ]
    exit $?
}

# ---------------------------------------------------------------- preflight
pre=()
[ "$(id -u)" = 0 ] || pre+=("must run as root (network namespaces, iptables)")
[ -x "$VENV/bin/ansible-playbook" ] || pre+=("$VENV/bin/ansible-playbook missing: run scripts/setup")
[ -x "$MODULE" ] || pre+=("$MODULE missing: run scripts/setup")
command -v unshare >/dev/null 2>&1 || pre+=("unshare missing")
command -v iptables-legacy >/dev/null 2>&1 || pre+=("iptables-legacy missing: run scripts/setup")
if [ "${#pre[@]}" -gt 0 ]; then
    for p in "${pre[@]}"; do echo "not ok - preflight: $p"; done
    FAILED=${#pre[@]}
    finish
fi

WORK=$(mktemp -d /tmp/dfw-ansible.XXXXXX)
if [ "${DFW_KEEP_WORK:-0}" = 1 ]; then echo "# keeping $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi

# ---------------------------------------------------------------- ansible-doc reads the sidecar docs
doc_out="$WORK/ansible-doc.txt"
if ANSIBLE_HOME="$WORK/ansible-doc-home" ANSIBLE_NOCOLOR=1 \
    timeout 120 "$VENV/bin/ansible-doc" -M "$ROOT/library" docker_firewall >"$doc_out" 2>&1 &&
    grep -q 'external_interfaces' "$doc_out" && grep -q 'RETURN VALUES' "$doc_out" &&
    ! grep -q 'ERROR' "$doc_out"; then
    echo "ok - ansible-doc -M library docker_firewall renders options, examples and return values"
    PASSED=$((PASSED + 1))
else
    echo "not ok - ansible-doc -M library docker_firewall"
    sed 's/^/#   /' "$doc_out" | head -20
    FAILED=$((FAILED + 1))
fi

# ---------------------------------------------------------------- the cases, one namespace each
for c in "${CASES[@]}"; do
    mkdir -p "$WORK/$c"
    out="$WORK/$c.out"
    DFW_TEST_IN_NETNS=1 timeout --kill-after=20 900 \
        unshare --net --fork bash "$HERE/case.sh" "$c" "$WORK/$c" </dev/null >"$out" 2>&1
    rc=$?
    count "$out"
    if [ "$rc" != 0 ] && ! grep -q '^not ok - ' "$out"; then
        echo "not ok - $c: exited $rc without a failed check"
        FAILED=$((FAILED + 1))
    fi
done

finish
