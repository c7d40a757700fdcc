#!/usr/bin/env bash
# bench/dataplanes.sh — the module's applying and no-op runs on each dataplane, with many allowed
# sources: iptables (one hash:net ipset per entry and family from 100 sources on; one rule per source
# below) and nftables (one interval set), on a Docker host of
# 1,000 foreign rules (bench/gen_foreign.py, iptables-nft). Run by hand as root; prints medians.
#
# usage: bench/dataplanes.sh [SOURCES] [REPS] [BIN]     (defaults: 10000 7 the release binary)
#
# Safety: everything runs inside a network namespace made here (dfwbench-<pid>-dp), deleted on
# exit; the module runs with persist: false.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SOURCES=${1:-10000} REPS=${2:-7}
BIN=${3:-$ROOT/target/x86_64-unknown-linux-gnu/release/docker_firewall}
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 2; }
WORK=$(mktemp -d /tmp/dfwbench-dp.XXXXXX)
ns=dfwbench-$$-dp
trap 'ip netns delete "$ns" 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add eth0 type veth peer name eth1
python3 "$ROOT/bench/gen_foreign.py" 1000 4 | ip netns exec "$ns" iptables-nft-restore
python3 "$ROOT/bench/gen_foreign.py" 1000 6 | ip netns exec "$ns" ip6tables-nft-restore
python3 - "$WORK" "$SOURCES" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
v4 = [f"100.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}" for i in range(n)]
v6 = [f"fd00:100::{i:x}" for i in range(n)]
for dp in ("iptables", "nftables"):
    for state in ("present", "absent"):
        args = {"dataplane": dp, "state": state, "persist": False, "external_interfaces": ["eth0"],
                "ingress": {"allow": [{"ports": [443], "sources": v4}, {"ports": [443], "sources": v6}]}}
        json.dump(args, open(f"{work}/{dp}-{state}.json", "w"))
PY
run() { ip netns exec "$ns" "$BIN" "$WORK/$1.json" >"$WORK/out.json"; }
ms() { python3 -c 'import sys,statistics; v=sorted(float(x) for x in sys.argv[1:]); print(f"{statistics.median(v):.0f} ms (min {v[0]:.0f}, max {v[-1]:.0f})")' "$@"; }
now() { date +%s%N; }
echo "sources: $SOURCES per family, reps: $REPS, host: 1,000 foreign rules per family (iptables-nft)"
for dp in iptables nftables; do
    apply=() noop=()
    for _ in $(seq "$REPS"); do
        run "$dp-absent"
        t0=$(now); run "$dp-present"; t1=$(now)
        jq -e '.changed == true' "$WORK/out.json" >/dev/null || { echo "apply did not change: $(head -c 300 "$WORK/out.json")" >&2; exit 1; }
        run "$dp-present"; t2=$(now); run "$dp-present"; t3=$(now)
        jq -e '.changed == false' "$WORK/out.json" >/dev/null || { echo "no-op changed" >&2; exit 1; }
        apply+=("$(( (t1 - t0) / 1000000 ))") noop+=("$(( (t3 - t2) / 1000000 ))")
    done
    echo "$dp: apply $(ms "${apply[@]}"), no-op $(ms "${noop[@]}")"
done
