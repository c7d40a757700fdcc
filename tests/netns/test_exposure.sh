#!/usr/bin/env bash
# Issue 10's proof: `docker_firewall exposure` agrees with real packets, as a scanner nobody here
# wrote sees them. For each scenario a fresh lab host gets its rules, `exposure --json` runs INSIDE
# the host namespace (live rules), then nmap (Debian's package, SYN scan, bounded) scans every
# published port from the allowed client and from the stranger (the lab's "denied" client), IPv4
# and IPv6. A verdict agrees when:
#   open       -> both clients see the port open
#   restricted -> a client sees it open iff its address is within `sources`
#   closed     -> neither sees it open (nmap: closed or filtered)
#   unknown    -> not compared, counted
# Every lab-published port must have a row per family. `exposure --from v4.save --from v6.save`
# on the same host's iptables-save output, run as nobody in an empty namespace, must give the live
# verdicts. nmap must also see what the scenario intends (a check of the harness itself), and
# what tests/fixtures/exposure/<layout>-<scenario>.expect.json recorded (the golden fixtures).
# A lab port without a row agrees only when neither client reaches it. Without docker-proxy
# (scenarios "-noproxy") --from may differ from live: the contract lets it assume docker-proxy
# listens (Docker's default); such differences are shown, not failed.
# Scenarios: Docker's rules only; the seeds' INPUT drop; each strategy with an allowlist holding the
# allowed client only; audit mode (docker_user, prerouting); an admin's own DOCKER-USER rules, alone
# and above the module's hook; ufw's real chains (`ufw deny` of the ports; the ufw-docker block);
# the module's INPUT guard deleted by hand (with and without docker-proxy); a match the analysis
# cannot evaluate (xt_recent: unknown); IPv6 through docker-proxy (no IPv6 NAT), with and without
# the proxy. Layouts docker20 and docker28 (the lab's docker28 is Docker 28.2.2+/29's layout).
# UDP: the lab publishes TCP only; the udp-* scenarios publish 5353/udp to a responder in c1 that
# answers every datagram (and a docker-proxy-like UDP listener), so nmap -sU gives a definite
# answer: open = answered = reached; open|filtered = not reached.
# Where the module wrote the rules (and nobody else touched them), its result's `exposure` (after
# the run) and a check-mode run's prediction must equal the live analysis. Every row must name the
# rule that decides it. Ends with a figure line: agreements, disagreements, unknown verdicts.
#
# DFW_EXPOSURE_RECORD=<dir>: also write the golden fixtures of the scenarios listed in RECORD below
# (for this layout and backend) into <dir> (see tests/fixtures/exposure/README.md).
# DFW_EXPOSURE_ONLY="scenario ...": run only these scenarios (debugging).
# layouts: docker20 docker28
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin

EXP_FIXTURES=${DFW_EXPOSURE_FIXTURES:-$T_ROOT/tests/fixtures/exposure}
NMAP_TIMEOUT=${NMAP_TIMEOUT:-25}
# the golden fixtures: "<layout>-<scenario>.<backend>"
RECORD="docker20-input-drop.legacy docker20-foreign.legacy docker20-ufw-docker.nft
docker28-prerouting.nft docker28-v6proxy-docker_user.legacy docker28-foreign-over-module.nft"

if ! command -v nmap >/dev/null; then
    not_ok "nmap is installed (Debian: apt-get install -y --no-install-recommends nmap)"
    t_done
fi

AGREE=0 DISAGREE=0 UNKNOWN=0 ROWS=0 NOT_SCANNED=0 FROM_DIFF=0 FROM_PROXY=0 N_SC=0 NMAP_BAD=0
EXPOSURE_OK=yes
T_START=$SECONDS

# ---------------------------------------------------------------- addresses
_ip2int() { local IFS=. a b c d; read -r a b c d <<<"$1"; echo $(((a << 24) | (b << 16) | (c << 8) | d)); }
# in_cidr <addr> <cidr|addr> — the address is within the network (same family)
in_cidr() {
    local a=$1 c=$2 net len
    net=${c%/*}
    if [[ $c == */* ]]; then len=${c#*/}; elif [[ $net == *:* ]]; then len=128; else len=32; fi
    [[ $len =~ ^[0-9]+$ ]] || return 1
    if [[ $a == *:* ]]; then
        [[ $net == *:* ]] || return 1
        local x y nib rem m
        x=$(_lab_v6full "$a") y=$(_lab_v6full "$net")
        x=${x//:/} y=${y//:/}
        [ ${#x} -eq 32 ] && [ ${#y} -eq 32 ] || return 1
        nib=$((len / 4)) rem=$((len % 4))
        [ "${x:0:nib}" = "${y:0:nib}" ] || return 1
        [ "$rem" -eq 0 ] && return 0
        m=$(((0xf << (4 - rem)) & 0xf))
        [ $((0x${x:nib:1} & m)) -eq $((0x${y:nib:1} & m)) ]
    else
        [[ $net == *:* ]] && return 1
        [[ $a =~ ^[0-9]+(\.[0-9]+){3}$ && $net =~ ^[0-9]+(\.[0-9]+){3}$ ]] || return 1
        [ "$len" -eq 0 ] && return 0
        local mask=$(((0xffffffff << (32 - len)) & 0xffffffff))
        [ $(($(_ip2int "$a") & mask)) -eq $(($(_ip2int "$net") & mask)) ]
    fi
}
# in_any <addr> <cidr>... — within one of them
in_any() { local a=$1 c; shift; for c in "$@"; do in_cidr "$a" "$c" && return 0; done; return 1; }

client_ns() { if [ "$1" = allowed ]; then echo "$NS_ALLOWED"; else echo "$NS_DENIED"; fi; }
client_addr() { # <allowed|stranger> <ipv4|ipv6>
    case $1/$2 in
        allowed/ipv4) echo "$ALLOWED4" ;; allowed/ipv6) echo "$ALLOWED6" ;;
        stranger/ipv4) echo "$DENIED4" ;; stranger/ipv6) echo "$DENIED6" ;;
    esac
}

# ---------------------------------------------------------------- rules of the scenarios
POLICY_ALLOWED=$(jq -nc --arg a4 "$ALLOWED4" --arg a6 "$ALLOWED6" '{
    ingress: {default: "drop", allow: [{ports: [8080, 8443], proto: "tcp", sources: [$a4, $a6], comment: "allowed client only"}]}}')
# module_apply <strategy> [extra override json] — a check-mode run first (its result's `exposure`
# is the prediction), then the real one; both results are kept in the scenario's directory
module_apply() {
    local o x=${2:-}
    [ -n "$x" ] || x='{}'
    o=$(jq -nc --argjson p "$POLICY_ALLOWED" --arg s "$1" --argjson x "$x" '$p * {strategy: $s} * $x')
    new_rules_dir
    if dfw "$(jq -nc --argjson o "$o" '$o * {_ansible_check_mode: true}')"; then cp "$DFW_OUT" "$SC_DIR/module.check.json"; fi
    t_dfw_ok "$SC: module applies ($o)" "$o" && cp "$DFW_OUT" "$SC_DIR/module.apply.json"
}
# the seeds' "fix": a DROP in INPUT for the published ports (what many admins believe closes them)
input_drop() {
    local f
    for f in 4 6; do ipt_fam "$f" -I INPUT -p tcp -m multiport --dports 8080,8443 -m comment --comment "admin: close 8080,8443" -j DROP || return 1; done
}
# an admin's own DOCKER-USER rules, no module: 8080 for the allowed client only (ACCEPT, then a
# REJECT with tcp-reset for the rest, matched on the original port), 8443 closed for the stranger
# (matched after DNAT: container address and port)
foreign_admin() {
    local f a d c2
    for f in 4 6; do
        if [ "$f" = 6 ]; then a=$ALLOWED6 d=$DENIED6 c2=$C2_6; else a=$ALLOWED4 d=$DENIED4 c2=$C2_4; fi
        ipt_fam "$f" -I DOCKER-USER 1 -i eth0 -p tcp -m conntrack --ctorigdstport 8080 -m comment --comment "admin: 8080 for the office only" -j REJECT --reject-with tcp-reset || return 1
        ipt_fam "$f" -I DOCKER-USER 1 -i eth0 -s "$a" -p tcp -m conntrack --ctorigdstport 8080 -j ACCEPT || return 1
        ipt_fam "$f" -I DOCKER-USER 1 -s "$d" -d "$c2" -p tcp -m tcp --dport 443 -j DROP || return 1
    done
}
# the module (docker_user, allowed client only), then an admin's rules above its hook: the
# stranger is let in to 8080 (ACCEPT), the allowed client is kept out of 8443 (DROP after DNAT)
foreign_over_module() {
    module_apply docker_user || return 1
    local f a d
    for f in 4 6; do
        if [ "$f" = 6 ]; then a=$ALLOWED6 d=$DENIED6; else a=$ALLOWED4 d=$DENIED4; fi
        ipt_fam "$f" -I DOCKER-USER 1 -i eth0 -s "$d" -p tcp -m conntrack --ctorigdstport 8080 -m comment --comment "admin: stranger may use 8080" -j ACCEPT || return 1
        ipt_fam "$f" -I DOCKER-USER 1 -i eth0 -s "$a" -p tcp -m tcp --dport 443 -j DROP || return 1
    done
}
# the module (prerouting), then a hand edit deletes its INPUT hook (DFW-PROXY-GUARD): what the nat
# gate keeps from DNAT now reaches docker-proxy on the host (when one listens)
prerouting_no_guard() {
    module_apply prerouting || return 1
    local f hook
    for f in 4 6; do
        hook=$(lab_xt "$NS_HOST" "$f" save -t filter | grep -m1 -- '^-A INPUT .*-j DFW-PROXY-GUARD') || return 1
        # the rule text as iptables-save prints it (quoted comment), re-split into words
        eval "ipt_fam $f -t filter ${hook/#-A/-D}" || return 1
    done
}
# an admin's DOCKER-USER rule with a match the analysis cannot evaluate (xt_recent: who is in the
# list is kernel state), for 8443 only; the list is empty, so nothing is dropped
foreign_unknown() {
    local f
    for f in 4 6; do
        ipt_fam "$f" -I DOCKER-USER 1 -i eth0 -p tcp -m conntrack --ctorigdstport 8443 -m recent --rcheck --seconds 60 --name dfw-scanners -j DROP || return 1
    done
}
# publish_udp — what Docker does for `-p 5353:5353/udp` to c1 (DNAT + filter ACCEPT, each family
# Docker writes NAT for), a UDP responder in c1 answering every datagram ("c1-udp"), and the
# docker-proxy-like UDP listeners on the host
publish_udp() {
    local fam c1 d
    for fam in 4 6; do
        if [ "$fam" = 6 ]; then c1=$C1_6/128 d="[$C1_6]"; else c1=$C1_4/32 d=$C1_4; fi
        printf '%s\n' '*nat' "-A DOCKER ! -i docker0 -p udp -m udp --dport 5353 -j DNAT --to-destination $d:5353" COMMIT \
            '*filter' "-I DOCKER 1 -d $c1 ! -i docker0 -o docker0 -p udp -m udp --dport 5353 -j ACCEPT" COMMIT |
            lab_xt "$NS_HOST" "$fam" restore --noflush || return 1
    done
    lab_spawn udp-c1-4 "$NS_C1" socat UDP4-RECVFROM:5353,fork SYSTEM:'echo c1-udp'
    lab_spawn udp-c1-6 "$NS_C1" socat UDP6-RECVFROM:5353,fork,ipv6only=1 SYSTEM:'echo c1-udp'
    lab_spawn udp-proxy-4 "$NS_HOST" socat UDP4-RECVFROM:5353,fork "UDP4-SENDTO:$C1_4:5353"
    lab_spawn udp-proxy-6 "$NS_HOST" socat UDP6-RECVFROM:5353,fork,ipv6only=1 "UDP6-SENDTO:[$C1_6]:5353"
    local _
    for _ in $(seq 1 60); do
        [ "$(ip netns exec "$NS_C1" ss -Hlun 'sport = :5353' | wc -l)" -ge 2 ] &&
            [ "$(ip netns exec "$NS_HOST" ss -Hlun 'sport = :5353' | wc -l)" -ge 2 ] && break
        sleep 0.05
    done
    LAB_UDP_PORTS=5353
}
# udp_module <strategy> — publish_udp, then the module with 5353/udp (and the TCP ports) for the
# allowed client only
udp_module() {
    publish_udp || return 1
    module_apply "$1" "$(jq -nc --arg a4 "$ALLOWED4" --arg a6 "$ALLOWED6" '{ingress: {default: "drop", allow: [
        {ports: [8080, 8443], proto: "tcp", sources: [$a4, $a6]}, {ports: [5353], proto: "udp", sources: [$a4, $a6]}]}}')"
}
# ufw_rules <4|6> <deny|docker> — ufw's chains as a real ufw 0.36.2 wrote them
# (tests/fixtures/layouts/docker-20.10-ufw.*.rules, captured from a real ufw + dockerd), moved onto
# the lab's addresses and bridge, as noflush restore input. deny: `ufw deny 8080/tcp` and
# `ufw deny 8443/tcp` added, no ufw-docker block (the seeds' false sense of safety); docker: the
# ufw-docker block in DOCKER-USER (private sources pass, `ufw route allow` to c2:443) as captured.
ufw_rules() {
    local fam=$1 mode=$2 u=ufw c2old=10.200.20.2/32 c2=$C2_4/32
    [ "$fam" = 6 ] && u=ufw6 c2old=fd00:200:20::2/128 c2=$C2_6/128
    awk -v mode="$mode" -v u="$u" -v c2old="$c2old" -v c2="$c2" -v br="$LAB_BR2" '
        /^\*/ { t = substr($0, 2); next }
        t != "filter" { next }
        /^:ufw/ { print $1 " - [0:0]"; next }
        $1 == "-A" && ($2 == "INPUT" || $2 == "OUTPUT" || $2 == "FORWARD") && $3 == "-j" && index($4, "ufw") == 1 { print; next }
        $1 == "-A" && index($2, "ufw") == 1 { gsub(c2old, c2); gsub("br-4c6068e6ce98", br); rules[++n] = $0; next }
        $1 == "-A" && $2 == "DOCKER-USER" && mode == "docker" { gsub(c2old, c2); gsub("br-4c6068e6ce98", br); du[++m] = $0; next }
        END {
            for (i = 1; i <= n; i++) print rules[i]
            if (mode == "deny") {
                print "-A " u "-user-input -p tcp -m tcp --dport 8080 -j DROP"
                print "-A " u "-user-input -p tcp -m tcp --dport 8443 -j DROP"
            }
            if (m > 0) { print "-F DOCKER-USER"; for (i = 1; i <= m; i++) print du[i] }
        }' "$T_ROOT/tests/fixtures/layouts/docker-20.10-ufw.v$fam.rules"
}
ufw_like() { # deny|docker
    local f
    for f in 4 6; do
        { echo '*filter'; ufw_rules "$f" "$1"; echo COMMIT; } >"$T_DIR/ufw.$f.restore"
        lab_xt "$NS_HOST" "$f" restore --noflush <"$T_DIR/ufw.$f.restore" || return 1
        ipt_fam "$f" -P INPUT DROP || return 1
    done
}

# ---------------------------------------------------------------- scenarios
# "<name>|<lab>|<setup command>|<intended reach>|<product's rules only: yes|no>"
# lab: LAB_IPV6 (nat: Docker's IPv6 NAT; proxy: none, IPv6 goes to docker-proxy), "-noproxy": no
# docker-proxy-like listeners on the host (Docker's "userland-proxy": false)
# intended reach: "<fam>:<port>=<who>" with who A (allowed), S (stranger), AS, or - (nobody):
# what the scenario is built to do; nmap must see exactly that (a check of the harness, not of
# `exposure`).
ALL_OPEN="4:8080=AS 4:8443=AS 6:8080=AS 6:8443=AS"
ALLOWED_ONLY="4:8080=A 4:8443=A 6:8080=A 6:8443=A"
SCENARIOS=(
    "none|nat|true|$ALL_OPEN|no"
    "input-drop|nat|input_drop|$ALL_OPEN|no"
    "docker_user|nat|module_apply docker_user|$ALLOWED_ONLY|yes"
    "prerouting|nat|module_apply prerouting|$ALLOWED_ONLY|yes"
    "both|nat|module_apply both|$ALLOWED_ONLY|yes"
    "audit|nat|module_apply docker_user {\"audit\":true}|$ALL_OPEN|yes"
    "foreign|nat|foreign_admin|$ALLOWED_ONLY|no"
    "foreign-over-module|nat|foreign_over_module|4:8080=AS 4:8443=- 6:8080=AS 6:8443=-|no"
    "ufw-deny|nat|ufw_like deny|$ALL_OPEN|no"
    "ufw-docker|nat|ufw_like docker|$ALL_OPEN|no"
    "v6proxy-none|proxy|true|$ALL_OPEN|no"
    "v6proxy-input-drop|proxy|input_drop|4:8080=AS 4:8443=AS 6:8080=- 6:8443=-|no"
    "v6proxy-docker_user|proxy|module_apply docker_user|$ALLOWED_ONLY|yes"
    "v6proxy-prerouting|proxy|module_apply prerouting|$ALLOWED_ONLY|yes"
    "v6proxy-ufw-deny|proxy|ufw_like deny|4:8080=AS 4:8443=AS 6:8080=- 6:8443=-|no"
    "audit-prerouting|nat|module_apply prerouting {\"audit\":true}|$ALL_OPEN|yes"
    "prerouting-no-guard|nat|prerouting_no_guard|$ALL_OPEN|no"
    "prerouting-no-guard-noproxy|nat-noproxy|prerouting_no_guard|$ALLOWED_ONLY|no"
    "v6proxy-noproxy|proxy-noproxy|true|4:8080=AS 4:8443=AS 6:8080=- 6:8443=-|no"
    "foreign-unknown|nat|foreign_unknown|$ALL_OPEN|no"
    "udp-none|nat|publish_udp|$ALL_OPEN 4:u5353=AS 6:u5353=AS|no"
    "udp-docker_user|nat|udp_module docker_user|$ALLOWED_ONLY 4:u5353=A 6:u5353=A|yes"
    "udp-prerouting|nat|udp_module prerouting|$ALLOWED_ONLY 4:u5353=A 6:u5353=A|yes"
)
LAB_PORTS="8080 8443"   # TCP ports the lab publishes
LAB_UDP_PORTS=""        # UDP ports published by the scenario (publish_udp)

# ---------------------------------------------------------------- nmap
# nmap_scan <client> <ipv4|ipv6> <ports,comma> <out file> — SYN scan of the host from a client,
# bounded; the grepable output goes to <out file>
# <ports> is nmap's -p value ("T:8080,8443" or "T:8080,U:5353"); UDP ports add a UDP scan (-sU)
nmap_scan() {
    local ns six=() target=$HOST4 udp=()
    ns=$(client_ns "$1")
    [ "$2" = ipv6 ] && six=(-6) target=$HOST6
    [[ $3 == *U:* ]] && udp=(-sU)
    timeout -k 2 "$NMAP_TIMEOUT" ip netns exec "$ns" nmap "${six[@]}" -sS "${udp[@]}" -Pn -n -T5 --max-retries 1 \
        --host-timeout $((NMAP_TIMEOUT - 5))s -p "$3" -oG - "$target" >"$4" 2>"$4.err"
}
# nmap_state <out file> <port> [tcp|udp] — open | closed | filtered | open|filtered | none (no
# answer from nmap). A client reaches the port iff the state is open: for UDP that needs an answer,
# and every UDP listener of the lab answers each datagram, so open|filtered means not reached.
# (from NMAP_STATES, filled by nmap_load after the scans)
declare -A NMAP_STATES
nmap_state() { echo "${NMAP_STATES[$1|$2/${3:-tcp}]:-none}"; }
# nmap_load <out file> — its port states into NMAP_STATES (one parse per scan)
nmap_load() {
    local port state proto
    while IFS=/ read -r port state proto; do
        [ -n "$port" ] && NMAP_STATES[$1|$port/$proto]=$state
    done < <(grep -m1 'Ports:' "$1" 2>/dev/null | sed 's/.*Ports: //' | tr ',' '\n' | sed 's/^ *//' | cut -d/ -f1-3)
}
nmap_line() { grep -m1 'Ports:' "$1" 2>/dev/null || echo "(no Ports line; stderr: $(head -c 300 "$1.err" 2>/dev/null))"; }

# ---------------------------------------------------------------- exposure
# exposure_live <out> — `exposure --json` in the host namespace (dfw_exec: /etc under an overlay)
exposure_live() {
    T_SEQ=$((T_SEQ + 1))
    dfw_exec exposure --json
    cp "$DFW_OUT" "$1"
    [ "$DFW_RC" = 0 ] && jq -e '(.ports | type == "array") and (.summary | type == "object")' "$1" >/dev/null 2>&1
}
# exposure_from <v4 save> <v6 save> <out> — `exposure --from --from --external eth0 --json` as
# nobody in an empty namespace (no live rules to read, no root): the saves are copied to a
# world-readable directory; falls back to root when nobody cannot run the binary
EXP_PUB=$(mktemp -d /tmp/dfwexp.XXXXXX)
chmod 755 "$EXP_PUB"
trap 't_cleanup; rm -rf "$EXP_PUB"' EXIT
exposure_from() {
    local rc
    cp "$1" "$EXP_PUB/v4.save" && cp "$2" "$EXP_PUB/v6.save" && chmod 644 "$EXP_PUB"/*.save
    lab_empty_ns from >/dev/null || return 1
    FROM_AS=nobody
    timeout -k 2 30 ip netns exec "$LAB_EMPTY_NS" setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$DFW_BIN" exposure --from "$EXP_PUB/v4.save" --from "$EXP_PUB/v6.save" --external eth0 --json >"$3" 2>"$3.err"
    rc=$?
    if [ "$rc" = 126 ] || [ "$rc" = 127 ]; then
        FROM_AS=root
        timeout -k 2 30 ip netns exec "$LAB_EMPTY_NS" \
            "$DFW_BIN" exposure --from "$EXP_PUB/v4.save" --from "$EXP_PUB/v6.save" --external eth0 --json >"$3" 2>"$3.err"
        rc=$?
    fi
    [ "$rc" = 0 ] && jq -e '.ports | type == "array"' "$3" >/dev/null 2>&1
}
# the fields that must be equal between live and --from, one line per row, sorted
verdict_lines() {
    jq -r '.ports[] | [.family, .proto, .host_address, (.host_port | tostring), .path, .verdict,
        ((.sources // []) | sort | join(",")), (.container_address // "-"), ((.container_port // "-") | tostring)] | join(" ")' "$1" | sort
}

# scan_spec <family> <live.json> <yes|no> — nmap's -p value: the lab's ports and every row's port
scan_spec() {
    local t u
    t=$( { printf '%s\n' $LAB_PORTS; [ "$3" = yes ] && jq -r --arg f "$1" '.ports[] | select(.family == $f and .proto == "tcp") | .host_port' "$2"; } | sort -un | paste -sd,)
    u=$( { [ -n "$LAB_UDP_PORTS" ] && printf '%s\n' $LAB_UDP_PORTS; [ "$3" = yes ] && jq -r --arg f "$1" '.ports[] | select(.family == $f and .proto == "udp") | .host_port' "$2"; } | sort -un | paste -sd,)
    echo "T:$t${u:+,U:$u}"
}

# ---------------------------------------------------------------- one scenario
# save_rules <dir> <base> — both families' iptables-save, counters zeroed
save_rules() {
    ipt_save | sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/g' >"$1/$2.v4.save"
    ipt6_save | sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/g' >"$1/$2.v6.save"
}

run_scenario() {
    local spec=$1 name lab6 setup intended ours
    IFS='|' read -r name lab6 setup intended ours <<<"$spec"
    SC="$name"
    local d=$T_DIR/exposure/$name
    SC_DIR=$d LAB_UDP_PORTS=""
    mkdir -p "$d"
    N_SC=$((N_SC + 1))
    LAB_IPV6=${lab6%-noproxy} LAB_PROXY=on
    [[ $lab6 == *-noproxy ]] && LAB_PROXY=off
    export LAB_IPV6 LAB_PROXY
    t_lab_reset
    # shellcheck disable=SC2086  # the setup command is a word list
    if ! $setup >"$d/setup.log" 2>&1; then
        not_ok "$SC: scenario's rules are in place ($setup)" "$(tail -15 "$d/setup.log")"
        return 0
    fi
    save_rules "$d" rules

    # exposure, live and from the saves
    local have_exp=no
    if [ "$EXPOSURE_OK" = yes ]; then
        if exposure_live "$d/live.json"; then
            have_exp=yes
        else
            not_ok "$SC: exposure --json (live, in the host namespace) prints the contract's JSON" \
                "rc=$DFW_RC" "stdout: $(head -c 1000 "$d/live.json")" "stderr: $(head -c 600 "$DFW_ERR")"
            if [ "$DFW_RC" = 64 ] || jq -e '.failed == true and (.msg | test("args file"))' "$d/live.json" >/dev/null 2>&1; then
                EXPOSURE_OK=no
                diag "this binary has no exposure subcommand: the nmap side only from here on"
            fi
        fi
    fi

    # the ports to scan: the lab's published ones and every row's port
    local p4 p6
    p4=$(scan_spec ipv4 "$d/live.json" $have_exp) p6=$(scan_spec ipv6 "$d/live.json" $have_exp)
    local c f fam pids=()
    for c in allowed stranger; do
        nmap_scan "$c" ipv4 "$p4" "$d/nmap.$c.ipv4" &
        pids+=($!)
        nmap_scan "$c" ipv6 "$p6" "$d/nmap.$c.ipv6" &
        pids+=($!)
    done
    wait "${pids[@]}"
    for c in allowed stranger; do for fam in ipv4 ipv6; do nmap_load "$d/nmap.$c.$fam"; done; done

    # the harness: nmap sees what the scenario is built to do
    local item fam port proto who want got got2 bad=()
    for item in $intended; do
        fam=ipv${item%%:*} port=${item#*:} who=${port#*=} port=${port%=*} proto=tcp
        [[ $port == u* ]] && port=${port#u} proto=udp
        for c in allowed stranger; do
            got=$(nmap_state "$d/nmap.$c.$fam" "$port" "$proto")
            want=shut
            [ "$c" = allowed ] && [[ $who == *A* ]] && want=open
            [ "$c" = stranger ] && [[ $who == *S* ]] && want=open
            if [ "$got" = none ]; then bad+=("$c $fam $port: nmap gave no answer: $(nmap_line "$d/nmap.$c.$fam")"); continue; fi
            [ "$got" = open ] && got2=open || got2=shut
            [ "$got2" = "$want" ] || bad+=("$c $fam $port/$proto: intended $want, nmap $got: $(nmap_line "$d/nmap.$c.$fam")")
        done
    done
    if [ ${#bad[@]} -eq 0 ]; then ok "$SC: nmap sees what the scenario is built to do ($intended)"; else
        NMAP_BAD=$((NMAP_BAD + 1))
        not_ok "$SC: nmap sees what the scenario is built to do ($intended)" "${bad[@]}" "rules: $d/rules.v4.save, $d/rules.v6.save (KEEP=1 keeps them)"
    fi

    golden_check "$name" "$d"
    record "$name" "$d" "$lab6" "$setup"

    [ $have_exp = yes ] || return 0
    t_eq "$SC: live external interfaces are the lab's uplink" '["eth0"]' "$(jq -c '.external_interfaces' "$d/live.json")"

    # every lab-published port has a row per family
    local pp
    for fam in ipv4 ipv6; do
        for pp in $(printf 'tcp/%s ' $LAB_PORTS; [ -n "$LAB_UDP_PORTS" ] && printf 'udp/%s ' $LAB_UDP_PORTS); do
            local n
            proto=${pp%/*} port=${pp#*/}
            n=$(jq --arg f "$fam" --arg pr "$proto" --argjson p "$port" '[.ports[] | select(.family == $f and .proto == $pr and .host_port == $p)] | length' "$d/live.json")
            [ "$n" -ge 1 ] && continue
            local sa ss
            sa=$(nmap_state "$d/nmap.allowed.$fam" "$port" "$proto") ss=$(nmap_state "$d/nmap.stranger.$fam" "$port" "$proto")
            if [ "$sa" != open ] && [ "$ss" != open ] && [ "$sa" != none ] && [ "$ss" != none ]; then
                AGREE=$((AGREE + 2))
                ok "$SC: $fam $port/$proto: no row (not published in this family), nmap allowed $sa, stranger $ss"
            else
                DISAGREE=$((DISAGREE + 2))
                not_ok "$SC: $fam $port/$proto: no row, yet nmap allowed $sa, stranger $ss" "rows: $(jq -c '.ports' "$d/live.json" | head -c 1500)" \
                    "nmap allowed: $(nmap_line "$d/nmap.allowed.$fam")" "nmap stranger: $(nmap_line "$d/nmap.stranger.$fam")" \
                    "rules: $d/rules.v4.save, $d/rules.v6.save (KEEP=1 keeps them)"
            fi
        done
    done

    # the matrix: each row against nmap, per client
    local row verdict sources srcs rule proto addr st reach expect unknown_here=0
    while IFS=$'\x1f' read -r fam proto port verdict srcs rule row; do
        read -ra sources <<<"$srcs"
        ROWS=$((ROWS + 1))
        if [ "$proto" != tcp ] && [ "$proto" != udp ]; then
            NOT_SCANNED=$((NOT_SCANNED + 1))
            ok "$SC: $fam $port/$proto: $verdict # SKIP not scanned (nmap scans tcp and udp here)"
            continue
        fi
        if [ "$verdict" = unknown ]; then
            UNKNOWN=$((UNKNOWN + 1)) unknown_here=$((unknown_here + 1))
            ok "$SC: $fam $port/$proto: unknown # SKIP not compared: $rule"
            continue
        fi
        for c in allowed stranger; do
            addr=$(client_addr "$c" "$fam")
            st=$(nmap_state "$d/nmap.$c.$fam" "$port" "$proto")
            [ "$st" = open ] && reach=yes || reach=no
            case $verdict in
                open) expect=yes ;;
                closed) expect=no ;;
                restricted) if in_any "$addr" "${sources[@]}"; then expect=yes; else expect=no; fi ;;
                *) expect=invalid ;;
            esac
            local shown="${sources[*]}"
            [ ${#sources[@]} -gt 4 ] && shown="${sources[*]:0:3} ... (${#sources[@]} networks)"
            local what="$SC: $fam $port/$proto $c ($addr): exposure $verdict${shown:+ [$shown]}, nmap $st"
            if [ "$st" = none ]; then
                DISAGREE=$((DISAGREE + 1))
                not_ok "$what (nmap gave no answer)" "row: $row" "nmap: $(nmap_line "$d/nmap.$c.$fam")"
            elif [ "$expect" = "$reach" ]; then
                AGREE=$((AGREE + 1))
                ok "$what"
            else
                DISAGREE=$((DISAGREE + 1))
                not_ok "$what" "row: $row" "nmap: $(nmap_line "$d/nmap.$c.$fam")" \
                    "rules: $d/rules.v4.save, $d/rules.v6.save (KEEP=1 keeps them)"
            fi
        done
    done < <(jq -r '.ports[] | [.family, .proto, (.host_port | tostring), .verdict, ((.sources // []) | join(" ")), (.rule // "-"), tojson] | join("\u001f")' "$d/live.json")
    if [ "$ours" = yes ]; then
        t_eq "$SC: no unknown verdict on the rules this product writes" 0 "$unknown_here" \
            "$(jq -c '.ports[] | select(.verdict == "unknown")' "$d/live.json")"
    fi
    # the module's own result: `exposure` after the run, and the check-mode run's prediction, must be
    # what the live analysis (checked against nmap above) says, where the rules are the module's only
    if [ "$ours" = yes ]; then
        local r
        verdict_lines "$d/live.json" >"$d/live.lines"
        for r in apply check; do
            [ -f "$d/module.$r.json" ] || { not_ok "$SC: module result ($r) kept"; continue; }
            jq '.exposure // {ports: []}' "$d/module.$r.json" >"$d/module.$r.exposure.json"
            verdict_lines "$d/module.$r.exposure.json" >"$d/module.$r.lines"
            t_same "$SC: the module's result$([ $r = check ] && echo " in check mode (prediction)") carries the live exposure" \
                "$d/live.lines" "$d/module.$r.lines"
        done
    fi
    t_eq "$SC: every row names the rule (or chain policy) that decides it" "" \
        "$(jq -c '.ports[] | select((.rule // "") == "")' "$d/live.json")"
    t_eq "$SC: summary counts the rows' verdicts" \
        "$(jq -c '[.ports[].verdict] as $v | {open: ($v | map(select(. == "open")) | length), restricted: ($v | map(select(. == "restricted")) | length), closed: ($v | map(select(. == "closed")) | length), unknown: ($v | map(select(. == "unknown")) | length)}' "$d/live.json")" \
        "$(jq -c '.summary | {open, restricted, closed, unknown}' "$d/live.json")"

    # --from on the same host's saves gives the live verdicts
    if exposure_from "$d/rules.v4.save" "$d/rules.v6.save" "$d/from.json"; then
        verdict_lines "$d/live.json" >"$d/live.lines"
        verdict_lines "$d/from.json" >"$d/from.lines"
        if cmp -s "$d/live.lines" "$d/from.lines"; then
            ok "$SC: exposure --from (saves, as $FROM_AS, empty namespace) gives the live verdicts"
        elif [ "$LAB_PROXY" = off ]; then
            FROM_PROXY=$((FROM_PROXY + $(diff "$d/live.lines" "$d/from.lines" | grep -c '^>')))
            ok "$SC: exposure --from differs from live where no docker-proxy listens # SKIP the contract's listener assumption: $(diff "$d/live.lines" "$d/from.lines" | grep '^[<>]' | tr '\n' ';')"
        else
            FROM_DIFF=$((FROM_DIFF + $(diff "$d/live.lines" "$d/from.lines" | grep -c '^>')))
            not_ok "$SC: exposure --from (saves, as $FROM_AS, empty namespace) gives the live verdicts" \
                "--- live / +++ from (family proto address port path verdict sources container)" \
                "$(diff -u "$d/live.lines" "$d/from.lines" | tail -n +3)"
        fi
    else
        not_ok "$SC: exposure --from v4 --from v6 --json runs" "stdout: $(head -c 800 "$d/from.json")" "stderr: $(head -c 600 "$d/from.json.err")"
    fi
}

# ---------------------------------------------------------------- golden fixtures
# reach_json <d> — nmap's view of the lab's ports: [{family, proto, host_port, allowed, stranger}]
reach_json() {
    local fam port
    for fam in ipv4 ipv6; do
        for port in $LAB_PORTS; do
            jq -nc --arg f "$fam" --argjson p "$port" --arg a "$(nmap_state "$1/nmap.allowed.$fam" "$port")" \
                --arg s "$(nmap_state "$1/nmap.stranger.$fam" "$port")" \
                '{family: $f, proto: "tcp", host_port: $p, allowed: $a, stranger: $s}'
        done
    done | jq -sc .
}
# published_json — where the lab's published ports go: {"<family> <port>": {container_address, container_port}}
published_json() {
    jq -nc --arg c14 "$C1_4" --arg c24 "$C2_4" --arg c16 "$C1_6" --arg c26 "$C2_6" '{
        "ipv4 8080": {container_address: $c14, container_port: 80}, "ipv4 8443": {container_address: $c24, container_port: 443},
        "ipv6 8080": {container_address: $c16, container_port: 80}, "ipv6 8443": {container_address: $c26, container_port: 443}}'
}
# golden_check <name> <d> — nmap sees (open or not) what the recorded fixture says
golden_check() {
    local g=$EXP_FIXTURES/$LAYOUT-$1.expect.json
    [ -f "$g" ] || return 0
    local want got
    want=$(jq -c '[.ports[] | {family, proto, host_port, allowed: (.allowed == "open"), stranger: (.stranger == "open")}]' "$g")
    got=$(reach_json "$2" | jq -c '[.[] | {family, proto, host_port, allowed: (.allowed == "open"), stranger: (.stranger == "open")}]')
    t_eq "$SC: nmap agrees with the recorded ground truth $(basename "$g")" "$want" "$got"
}
# record <name> <d> <lab6> <setup> — write the golden fixture when this scenario is in RECORD
record() {
    [ -n "${DFW_EXPOSURE_RECORD:-}" ] || return 0
    local key=$LAYOUT-$1 out=$DFW_EXPOSURE_RECORD
    case " ${RECORD//$'\n'/ } " in *" $key.$BACKEND "*) ;; *) return 0 ;; esac
    mkdir -p "$out"
    cp "$2/rules.v4.save" "$out/$key.$BACKEND.v4.save"
    cp "$2/rules.v6.save" "$out/$key.$BACKEND.v6.save"
    jq -n --arg sc "$key" --arg layout "$LAYOUT" --arg backend "$BACKEND" --arg lab6 "$3" --arg setup "$4" \
        --arg a4 "$ALLOWED4" --arg a6 "$ALLOWED6" --arg d4 "$DENIED4" --arg d6 "$DENIED6" --arg h4 "$HOST4" --arg h6 "$HOST6" \
        --argjson ports "$(reach_json "$2")" '$pub as $published | {
        scenario: $sc, layout: $layout, recorded_on: $backend,
        made_by: ("tests/netns/test_exposure.sh, scenario setup: " + $setup),
        external_interfaces: ["eth0"],
        host: {ipv4: $h4, ipv6: $h6},
        clients: {allowed: {ipv4: $a4, ipv6: $a6}, stranger: {ipv4: $d4, ipv6: $d6}},
        docker_ipv6: (if $lab6 == "nat" then "nat: Docker writes IPv6 NAT (DNAT in both families)" else "proxy: no IPv6 NAT; docker-proxy listens on [::]:8080 and [::]:8443 (INPUT path)" end),
        host_listeners: ["tcp 0.0.0.0:8080", "tcp 0.0.0.0:8443", "tcp [::]:8080", "tcp [::]:8443"],
        nmap: "nmap 7.93 -sS -Pn -n -T5 --max-retries 1 from each client namespace; a client reaches a port iff the state is open",
        ports: [$ports[] | . + ($published[.family + " " + (.host_port | tostring)] // {}) | . + {path: (if .family == "ipv6" and $lab6 == "proxy" then "input" else "forward" end)}
            | if .path == "input" then .container_address = null | .container_port = null else . end]
    }' --argjson pub "$(published_json)" >"$out/$key.expect.json" || { not_ok "$SC: golden fixture $key recorded"; return 0; }
    diag "recorded $out/$key.{$BACKEND.v4.save,$BACKEND.v6.save,expect.json}"
}

# golden_from_check — `exposure --from` over each recorded fixture of this layout and backend agrees
# with the nmap states recorded beside it (what the lead's golden tests assert, run here as well)
golden_from_check() {
    local g key v4 v6 out rows
    for g in "$EXP_FIXTURES/$LAYOUT"-*.expect.json; do
        [ -f "$g" ] || continue
        key=$(basename "$g" .expect.json)
        v4=$EXP_FIXTURES/$key.$BACKEND.v4.save v6=$EXP_FIXTURES/$key.$BACKEND.v6.save
        [ -f "$v4" ] && [ -f "$v6" ] || continue
        out=$T_DIR/golden.$key.json
        SC="golden $key.$BACKEND"
        if ! exposure_from "$v4" "$v6" "$out"; then
            not_ok "$SC: exposure --from runs" "stdout: $(head -c 800 "$out")" "stderr: $(head -c 600 "$out.err")"
            continue
        fi
        # per recorded port and client: does the verdict say what nmap saw? ("-" = no row)
        rows=$(jq -r --slurpfile e "$g" '. as $x | $e[0] as $g | $g.ports[] as $p
            | ([$x.ports[] | select(.family == $p.family and .proto == $p.proto and .host_port == $p.host_port)][0]) as $r
            | ["allowed", "stranger"][] as $c
            | [$p.family, ($p.host_port | tostring), $c, $g.clients[$c][$p.family], ($p[$c]),
               ($r.verdict // "-"), (($r.sources // []) | join(" "))] | join("\u001f")' "$out")
        local fam port c addr st verdict srcs expect bad=() n=0
        while IFS=$'\x1f' read -r fam port c addr st verdict srcs; do
            [ -n "$fam" ] || continue
            n=$((n + 1))
            read -ra sv <<<"$srcs"
            case $verdict in
                open) expect=open ;;
                closed | -) expect=shut ;;
                restricted) if in_any "$addr" "${sv[@]}"; then expect=open; else expect=shut; fi ;;
                *) bad+=("$fam $port $c: verdict $verdict (not compared)"); continue ;;
            esac
            [ "$st" = open ] || st=shut
            [ "$st" = "$expect" ] || bad+=("$fam $port/tcp $c ($addr): exposure --from $verdict [$srcs], recorded nmap $(jq -r --arg f "$fam" --argjson p "$port" --arg c "$c" '.ports[] | select(.family == $f and .host_port == $p) | .[$c]' "$g")")
        done <<<"$rows"
        if [ ${#bad[@]} -eq 0 ] && [ "$n" -gt 0 ]; then
            ok "$SC: exposure --from agrees with the recorded nmap states ($n port/client pairs)"
        else
            not_ok "$SC: exposure --from agrees with the recorded nmap states" "${bad[@]}" "fixture: $g"
        fi
    done
}

# ---------------------------------------------------------------- run
for spec in "${SCENARIOS[@]}"; do
    if [ -n "${DFW_EXPOSURE_ONLY:-}" ]; then case " $DFW_EXPOSURE_ONLY " in *" ${spec%%|*} "*) ;; *) continue ;; esac; fi
    run_scenario "$spec"
done
if [ "$EXPOSURE_OK" = yes ]; then
    t_lab_reset
    golden_from_check
fi
lab_down

t_figure "exposure vs nmap: $AGREE agreements, $DISAGREE disagreements, $UNKNOWN unknown verdicts" \
    "($ROWS rows in $N_SC scenarios, $NOT_SCANNED not scanned (neither tcp nor udp), $FROM_DIFF rows where --from differs from live" \
    "+ $FROM_PROXY where it differs by the contract's docker-proxy assumption," \
    "$NMAP_BAD scenarios where nmap did not see the intended reach; $((SECONDS - T_START)) s)"
t_done
