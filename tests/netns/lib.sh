# shellcheck shell=bash disable=SC2119
# tests/netns/lib.sh — helpers for the namespace tests (sourced by tests/netns/test_*.sh).
#
# Output: one line per test case, "ok - <tag>: <name>" / "not ok - <tag>: <name>", diagnostics as
# "# ..." lines. t_done exits 0 when nothing failed.
#
# Environment: BACKEND (legacy|nft), LAYOUT (docker20|docker28), DFW_BIN (module binary),
# T_DIR (artifacts; default: a temp dir removed at exit), T_KEEP=1 (keep T_DIR).

T_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lab/lab.sh
. "$T_ROOT/tests/lab/lab.sh"

BACKEND=${BACKEND:-nft}
LAYOUT=${LAYOUT:-docker20}
DFW_BIN=${DFW_BIN:-$T_ROOT/target/x86_64-unknown-linux-gnu/release/docker_firewall}
T_NAME=$(basename "$0" .sh)
T_NAME=${T_NAME#test_}
T_TAG="[$BACKEND/$LAYOUT] $T_NAME"
T_PASS=0
T_FAIL=0
if [ -z "${T_DIR:-}" ]; then
    T_DIR=$(mktemp -d /tmp/dfwtest.XXXXXX)
    T_DIR_CREATED=1
fi
mkdir -p "$T_DIR"
T_SEQ=0

t_cleanup() {
    lab_down
    if [ -n "${T_DIR_CREATED:-}" ] && [ -z "${T_KEEP:-}" ]; then rm -rf "$T_DIR"; fi
    return 0
}
t_trap() {
    trap 't_cleanup' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# ---------------------------------------------------------------- reporting
diag() { local l; for l in "$@"; do while IFS= read -r x; do echo "# $x"; done <<<"$l"; done; }
ok() { echo "ok - $T_TAG: $1"; T_PASS=$((T_PASS + 1)); }
# not_ok <name> [diagnostic text...]
not_ok() {
    echo "not ok - $T_TAG: $1"
    T_FAIL=$((T_FAIL + 1))
    shift
    [ $# -gt 0 ] && diag "$@"
    return 0
}
# check <name> cmd... — ok when the command succeeds
check() {
    local name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name" "command failed: $*"; fi
}
# t_eq <name> <expected> <actual> [extra diag]
t_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected: $2" "actual:   $3" "${@:4}"; fi
}
# t_match <name> <ERE> <actual>
t_match() {
    if grep -Eq -- "$2" <<<"$3"; then ok "$1"; else not_ok "$1" "expected to match: $2" "actual: $3"; fi
}
# t_same <name> <file-expected> <file-actual> — byte-identical files, diff as diagnostics
t_same() {
    if cmp -s "$2" "$3"; then ok "$1"; else not_ok "$1" "$(diff -u "$2" "$3" | head -60)"; fi
}
# t_figure <text> — a measured figure: "# figure: <tag>: <text>" on stdout (shown by run.sh only with
# failures) and, when DFW_FIGURES names a file, appended there for the docs
t_figure() {
    echo "# figure: $T_TAG: $*"
    if [ -n "${DFW_FIGURES:-}" ]; then flock "$DFW_FIGURES" sh -c 'echo "$1" >>"$2"' _ "$T_TAG: $*" "$DFW_FIGURES"; fi
    return 0
}
t_done() {
    echo "# $T_TAG: $T_PASS passed, $T_FAIL failed"
    [ "$T_FAIL" -eq 0 ]
    exit $?
}

# t_lab_up — lab_up or a failure line and exit
t_lab_up() {
    if ! lab_up >"$T_DIR/lab_up.log" 2>&1; then
        not_ok "lab comes up" "$(tail -20 "$T_DIR/lab_up.log")"
        t_done
    fi
}
t_lab_reset() { lab_down; t_lab_up; }

# ---------------------------------------------------------------- firewall snapshots
# t_norm — drop "# Generated/Completed" comment lines, zero the counters
t_norm() { grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/g'; }
# snap [file] — both families of the host, normalised
snap() {
    local out=${1:-/dev/stdout}
    { echo "=== ipv4"; ipt_save; echo "=== ipv6"; ipt6_save; } | t_norm >"$out"
}
# t_owned — keep only what the module owns (DFW-* chains and their rules, rules tagged
# docker_firewall:) of a snap, under its "=== ipvN" and "*table" headers (tables without owned lines
# left out)
t_owned() {
    awk '/^===/ { print; next }
        /^\*/ { t = $0; shown = 0; next }
        /^(:DFW-|-A DFW-)/ || /docker_firewall:/ { if (!shown) { print t; shown = 1 }; print }'
}
# owned_snap [file] — t_owned of a snap of both families
owned_snap() { snap /dev/stdout | t_owned >"${1:-/dev/stdout}"; }
# t_unowned — drop what the module owns (DFW-* chains, rules tagged docker_firewall:)
t_unowned() { grep -v 'docker_firewall:' | grep -Ev '^(:DFW-|-A DFW-)'; }
# first_rule <4|6> <table> <chain> — the first rule of a chain, as iptables-save shows it
first_rule() { lab_xt "$NS_HOST" "$1" save -t "$2" | grep -m1 -- "^-A $3 "; }
# chain_rules <4|6> <table> <chain>
chain_rules() { lab_xt "$NS_HOST" "$1" save -t "$2" | grep -- "^-A $3 "; }
# files_state <file>... — existence + checksum of files
files_state() { local f; for f in "$@"; do if [ -e "$f" ]; then echo "$f $(sha256sum <"$f" | cut -c1-16)"; else echo "$f absent"; fi; done; }

# ---------------------------------------------------------------- module
# Logging wrappers for the iptables tools, first in the module's PATH: they show which tools the
# module ran (e.g. no *-restore on a no-op run). A module calling absolute paths bypasses them.
T_WRAP=$T_DIR/xtwrap
T_XTLOG=$T_DIR/xt.log
t_make_wrappers() {
    mkdir -p "$T_WRAP"
    local b
    for b in iptables ip6tables iptables-save ip6tables-save iptables-restore ip6tables-restore \
        iptables-legacy ip6tables-legacy iptables-legacy-save ip6tables-legacy-save \
        iptables-legacy-restore ip6tables-legacy-restore iptables-nft ip6tables-nft \
        iptables-nft-save ip6tables-nft-save iptables-nft-restore ip6tables-nft-restore \
        xtables-legacy-multi xtables-nft-multi; do
        [ -x "/usr/sbin/$b" ] || continue
        printf '#!/bin/sh\necho "%s $*" >>"%s"\nexec /usr/sbin/%s "$@"\n' "$b" "$T_XTLOG" "$b" >"$T_WRAP/$b"
        chmod +x "$T_WRAP/$b"
    done
}
t_make_wrappers

RULES_DIR=$T_DIR/rules
mkdir -p "$RULES_DIR"
# new_rules_dir — a fresh, empty directory for rules_v4/rules_v6 of the following runs
new_rules_dir() { RULES_DIR=$(mktemp -d "$T_DIR/rules.XXXXXX"); }

# dfw_base — the default module arguments for this lab (JSON)
dfw_base() {
    jq -n --arg backend "$BACKEND" --arg r4 "$RULES_DIR/rules.v4" --arg r6 "$RULES_DIR/rules.v6" \
        --arg a4 "$ALLOWED4" --arg a6 "$ALLOWED6" --arg d4 "$DENIED4" --arg d6 "$DENIED6" '{
        state: "present",
        backend: $backend,
        external_interfaces: ["eth0"],
        strategy: "docker_user",
        ingress: {
            default: "drop",
            allow: [
                {ports: [8080], proto: "tcp", sources: [$a4, $a6], comment: "web from allowed"},
                {ports: ["8400-8500"], proto: "tcp", sources: [($a4 + "/32"), ($a6 + "/128")]},
                {ports: [8080, 8443], proto: "udp", sources: [$d4, $d6]}
            ]
        },
        persist: true,
        rules_v4: $r4,
        rules_v6: $r6,
        _ansible_check_mode: false,
        _ansible_diff: true,
        _ansible_verbosity: 0,
        _ansible_no_log: false,
        _ansible_version: "2.19.14",
        _ansible_module_name: "docker_firewall",
        _ansible_tmpdir: "/tmp"
    }'
}
# dfw_args [override-json] — write an args file (base deep-merged with override; top-level keys set
# to null are removed); prints its path
dfw_args() {
    local f o=${1:-}
    [ -n "$o" ] || o='{}'
    f=$T_DIR/args.$T_SEQ.json
    jq -n --argjson b "$(dfw_base)" --argjson o "$o" '($b * $o) | with_entries(select(.value != null))' >"$f" ||
        { echo "# bad override JSON: $1" >&2; return 1; }
    echo "$f"
}
# dfw_exec args... — run the binary with these arguments in the host namespace (the iptables
# wrappers first in PATH, LANG=C, bounded to 60 s). /etc is covered by a throw-away overlay for the
# run (in the private mount namespace of "ip netns exec"), so a run writing its default
# /etc/iptables/rules.v* can never reach the real /etc; what it wrote there is listed in
# $DFW_ETC_WRITES and copied to $DFW_ETC_COPY (a write there is a failure unless
# DFW_EXPECT_ETC_WRITES is set). Sets DFW_OUT (stdout file), DFW_ERR, DFW_RC.
dfw_exec() {
    DFW_OUT=$T_DIR/out.$T_SEQ.json
    DFW_ERR=$T_DIR/err.$T_SEQ.txt
    DFW_ETC_WRITES=$T_DIR/etc-writes.$T_SEQ
    DFW_ETC_COPY=$T_DIR/etc-copy.$T_SEQ
    : >"$T_XTLOG"
    mkdir -p "$T_DIR/etcovl" "$DFW_ETC_COPY"
    # shellcheck disable=SC2016  # expanded by the inner shell
    ip netns exec "$NS_HOST" env PATH="$T_WRAP:$PATH" LANG=C OVL="$T_DIR/etcovl" \
        WRITES="$DFW_ETC_WRITES" COPY="$DFW_ETC_COPY" sh -c '
        mount -t tmpfs dfw-etc "$OVL" && mkdir "$OVL/u" "$OVL/w" &&
            mount -t overlay dfw-etc -o "lowerdir=/etc,upperdir=$OVL/u,workdir=$OVL/w" /etc ||
            { echo "test harness: cannot cover /etc with an overlay" >&2; exit 97; }
        timeout -k 5 60 "$0" "$@"
        rc=$?
        (cd "$OVL/u" && find . -mindepth 1 ! -type d) >"$WRITES"
        cp -a "$OVL/u/." "$COPY/" 2>/dev/null
        exit $rc' "$DFW_BIN" "$@" >"$DFW_OUT" 2>"$DFW_ERR" </dev/null
    DFW_RC=$?
    if [ -s "$DFW_ETC_WRITES" ] && [ -z "${DFW_EXPECT_ETC_WRITES:-}" ]; then
        not_ok "module writes only the rules files it was given (it wrote under /etc, caught by the overlay)" \
            "$(cat "$DFW_ETC_WRITES")" "command: $*" "$(for a in "$@"; do [ -f "$a" ] && echo "args: $(jq -c . "$a" 2>/dev/null)"; done)"
    fi
    return 0
}
# dfw_run <argsfile> — run the module in the host namespace like Ansible does (argv[1] = args file),
# through dfw_exec. Returns 0 when stdout is one valid JSON object.
dfw_run() {
    local args=$1
    DFW_ARGS=$args
    dfw_exec "$args"
    if [ "$(jq -s 'length' "$DFW_OUT" 2>/dev/null)" != 1 ]; then
        not_ok "module prints exactly one JSON value on stdout" "stdout: $(head -c 1500 "$DFW_OUT")" "stderr: $(head -c 500 "$DFW_ERR")"
        return 1
    fi
    jq -e 'type == "object"' "$DFW_OUT" >/dev/null 2>&1
}
# dfw_policy <file> [override-json] — a policy file for "apply/watch --policy": dfw_base deep-merged
# with the override (top-level keys set to null removed), without Ansible's _ansible_* keys, and with
# "persist": false unless the override sets it
dfw_policy() {
    local o=${2:-}
    [ -n "$o" ] || o='{}'
    jq -n --argjson b "$(dfw_base)" --argjson o "$o" '(($b | .persist = false) * $o)
        | with_entries(select(.value != null and (.key | startswith("_ansible_") | not)))' >"$1" ||
        { echo "# bad override JSON: $2" >&2; return 1; }
}
# dfw_spawn <name> args... — the binary in the background in the host namespace (as dfw_exec: /etc
# under a throw-away overlay), stdout to $T_DIR/<name>.out, stderr to $T_DIR/<name>.log with each
# line prefixed by the epoch time it arrived ("1733520000.123456 <line>"). The PID (the binary's
# own, a child of this shell: "wait" gives its exit status) is left in DFW_PID and recorded in
# $LAB_DIR/pids, so lab_down stops it. DOCKER_HOST is unset; NOTIFY_SOCKET is $DFW_NOTIFY_SOCKET
# when that is set (systemd's Type=notify), else unset.
dfw_spawn() {
    local name=$1
    shift
    mkdir -p "$T_DIR/etcovl"
    # shellcheck disable=SC2016  # expanded by the inner shell
    ip netns exec "$NS_HOST" env -u DOCKER_HOST -u NOTIFY_SOCKET ${DFW_NOTIFY_SOCKET:+NOTIFY_SOCKET="$DFW_NOTIFY_SOCKET"} \
        PATH="$T_WRAP:$PATH" LANG=C OVL="$T_DIR/etcovl" sh -c '
        mount -t tmpfs dfw-etc "$OVL" && mkdir "$OVL/u" "$OVL/w" &&
            mount -t overlay dfw-etc -o "lowerdir=/etc,upperdir=$OVL/u,workdir=$OVL/w" /etc ||
            { echo "test harness: cannot cover /etc with an overlay" >&2; exit 97; }
        exec "$0" "$@"' "$DFW_BIN" "$@" >"$T_DIR/$name.out" 2> >(_dfw_stamp >"$T_DIR/$name.log") </dev/null &
    DFW_PID=$!
    echo "$name $DFW_PID" >>"$LAB_DIR/pids"
}
# dfw_alive <pid> — the process still runs (a zombie does not count)
dfw_alive() { local s; s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) && [ "${s%% *}" != Z ]; }
# dfw_reap <pid> — wait for a process dfw_spawn started (it must be ending) and drop it from
# $LAB_DIR/pids; returns its exit status
dfw_reap() {
    local rc
    wait "$1"
    rc=$?
    sed -i "/ $1\$/d" "$LAB_DIR/pids"
    return $rc
}
_dfw_stamp() { local l; while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }

# dfw [override-json] — dfw_args + dfw_run
dfw() {
    local a
    T_SEQ=$((T_SEQ + 1))
    a=$(dfw_args "${1:-}") || return 1
    dfw_run "$a"
}
# dfw_q <jq filter> — query the last result (raw output)
dfw_q() { jq -r "$1" "$DFW_OUT" 2>/dev/null; }
# dfw_show — the last run as diagnostics
dfw_show() {
    echo "args: $(jq -c . "$DFW_ARGS" 2>/dev/null)"
    if jq -e . "$DFW_OUT" >/dev/null 2>&1; then
        echo "rc=$DFW_RC result: $(jq -c '{changed, failed, msg, warnings, plan}' "$DFW_OUT" | head -c 2500)"
    else
        echo "rc=$DFW_RC stdout: $(head -c 2500 "$DFW_OUT")"
    fi
    [ -s "$DFW_ERR" ] && echo "stderr: $(head -c 1500 "$DFW_ERR")"
    echo "tools run: $(tr '\n' ';' <"$T_XTLOG" | head -c 800)"
}
# dfw_restores — how many *-restore calls (other than --test) the last run made via PATH
dfw_restores() { grep -E 'restore' "$T_XTLOG" 2>/dev/null | grep -cv -- '--test'; }
# dfw_tools_seen — did the last run go through the PATH wrappers at all?
dfw_tools_seen() { [ -s "$T_XTLOG" ]; }

# t_dfw_ok <name> [override] — run; ok when it did not fail; sets the result for dfw_q
t_dfw_ok() {
    local name=$1
    if dfw "${2:-}" && [ "$(dfw_q '.failed // false')" = false ]; then
        ok "$name"
        return 0
    fi
    not_ok "$name" "$(dfw_show)"
    return 1
}
# t_changed <name> <true|false> — the last result's "changed"
t_changed() { t_eq "$1" "$2" "$(dfw_q '.changed')" "$(dfw_show)"; }

# t_need_bin — the module binary must exist; otherwise one failure and exit
t_need_bin() {
    if [ ! -x "$DFW_BIN" ]; then
        not_ok "module binary exists ($DFW_BIN)"
        t_done
    fi
}

# ---------------------------------------------------------------- reachability
# expect_probes "<label>|<ns>|<addr>|<port>|<expect>"... — concurrent probes, one result line each.
# expect: open | closed (refused or timeout) | timeout | refused | dnat | proxy |
#         fastfail (refused within 1000 ms)
expect_probes() {
    local specs=() s label ns addr port exp res state ms who good i=0
    for s in "$@"; do
        IFS='|' read -r label ns addr port exp <<<"$s"
        specs+=("$ns $addr $port")
    done
    mapfile -t res < <(lab_probe_many "${specs[@]}")
    for s in "$@"; do
        IFS='|' read -r label ns addr port exp <<<"$s"
        state=${res[$i]%% *}
        ms=$(awk '{print $2}' <<<"${res[$i]}")
        who=${res[$i]##*| }
        case $exp in
            open) [ "$state" = open ] && good=1 || good= ;;
            closed) [ "$state" = refused ] || [ "$state" = timeout ] && good=1 || good= ;;
            timeout | refused) [ "$state" = "$exp" ] && good=1 || good= ;;
            dnat | proxy) [ "$who" = "$exp" ] && good=1 || good= ;;
            fastfail) [ "$state" = refused ] && [ "${ms:-99999}" -lt 1000 ] && good=1 || good= ;;
            *) good= ;;
        esac
        if [ -n "$good" ]; then ok "${T_PRE:-}$label ($exp)"; else not_ok "${T_PRE:-}$label (expected $exp)" "probe: ${res[$i]}"; fi
        i=$((i + 1))
    done
}

# reach_specs <who: allowed|denied> <expect> [ports...] — specs for v4+v6 x ports from a client
reach_specs() {
    local who=$1 exp=$2 ns p
    shift 2
    [ $# -gt 0 ] || set -- 8080 8443
    [ "$who" = allowed ] && ns=$NS_ALLOWED || ns=$NS_DENIED
    for p in "$@"; do
        echo "$who v4 -> host:$p|$ns|$HOST4|$p|$exp"
        echo "$who v6 -> host:$p|$ns|$HOST6|$p|$exp"
    done
}
# outbound_specs — containers reach the "internet" host, both families
outbound_specs() {
    echo "c1 v4 -> net|$NS_C1|$NET4|$NET_PORT|open"
    echo "c1 v6 -> net|$NS_C1|$NET6|$NET_PORT|open"
    echo "c2 v4 -> net|$NS_C2|$NET4|$NET_PORT|open"
    echo "c2 v6 -> net|$NS_C2|$NET6|$NET_PORT|open"
}

# publish_9090_like_docker — what Docker does when a container publishes host 9090 -> c1:80 after
# the module ran: nat DNAT + filter ACCEPT, both families, plus docker-proxy's listeners
publish_9090_like_docker() {
    local fam c1 d
    for fam in 4 6; do
        if [ "$fam" = 6 ]; then c1=$C1_6/128 d="[$C1_6]"; else c1=$C1_4/32 d=$C1_4; fi
        ipt_fam "$fam" -t nat -A DOCKER ! -i docker0 -p tcp -m tcp --dport 9090 -j DNAT --to-destination "$d:80"
        ipt_fam "$fam" -I DOCKER 1 -d "$c1" ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
    done
    lab_spawn proxy-9090-4 "$NS_HOST" socat TCP4-LISTEN:9090,fork,reuseaddr "TCP4:$C1_4:80"
    lab_spawn proxy-9090-6 "$NS_HOST" socat TCP6-LISTEN:9090,fork,reuseaddr,ipv6only=1 "TCP6:[$C1_6]:80"
    sleep 0.3
}
