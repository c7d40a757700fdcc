#!/usr/bin/env bash
# Faults injected into real runs (issue 11, item 2): fake iptables tools first in the module's PATH
# (the module looks its tools up in PATH first, src/system/process.rs), and rules-file locations that
# cannot be written, made inside a private mount namespace (unshare --mount) so nothing leaks.
# Each case: the run fails with a message naming what failed, every table of both families is
# byte-identical to before (iptables-save, counters zeroed; foreign rules in raw, mangle, nat and
# filter included), the rules files are unchanged, and the next normal run converges (a second
# reports changed=false).
# layouts: docker20
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
t_trap
t_need_bin
t_lab_up
lab_foreign_rules || not_ok "foreign rules loaded"
for f in 4 6; do
    ipt_fam "$f" -t raw -A PREROUTING -i eth0 -m comment --comment "foreign: raw" -j ACCEPT ||
        not_ok "foreign raw rule loaded (ipv$f)"
done

REAL_BIN=$DFW_BIN
XT=(iptables ip6tables)
# Policy A writes filter only; B also nat (strategy both) and more filter chains (egress), in both
# families: a run from A to B restores two tables per family.
POL_A=$(jq -nc --arg a4 "$ALLOWED4" --arg a6 "$ALLOWED6" \
    '{strategy: "docker_user", ingress: {allow: [{ports: [8080], sources: [$a4, $a6], comment: "faults A"}]}}')
POL_B=$(jq -nc --arg a4 "$ALLOWED4" --arg a6 "$ALLOWED6" \
    '{strategy: "both", egress: {deny_private: true},
      ingress: {allow: [{ports: [8443, "8400-8500"], sources: [$a4, $a6], comment: "faults B"}]}}')
# with_files <override> <rules_v4> <rules_v6> — the override with these rules files
with_files() { jq -c --arg r4 "$2" --arg r6 "$3" '. + {rules_v4: $r4, rules_v6: $r6}' <<<"$1"; }

FAULTS=0 SURVIVED=0
# ---------------------------------------------------------------- fake tools
FAKE_DIR=
# fake_tools — a PATH directory: the logging wrappers, over which the fakes are written
fake_tools() {
    FAKE_DIR=$(mktemp -d "$T_DIR/fakes.XXXXXX")
    cp -a "$T_DIR/xtwrap/." "$FAKE_DIR/"
}
# fake_restore <4|6> <mode> — iptables-restore that fails once: "all" applies nothing; "last-table"
# commits every table before the input's last one (as iptables-restore does, table by table) and
# then fails on it. It names the failing input line the way the real tools do.
fake_restore() {
    local name="${XT[$(($1 / 6))]}-$BACKEND-restore"
    cat >"$FAKE_DIR/$name" <<EOF
#!/bin/bash
# fault injection (tests/netns/test_faults.sh): $name fails once ($2)
input=\$(cat; echo .)
input=\${input%.}
if [ -e "$FAKE_DIR/fired" ]; then printf '%s' "\$input" | /usr/sbin/$name "\$@"; exit; fi
printf '%s' "\$input" >"$FAKE_DIR/input"
first=1
if [ "$2" = last-table ]; then
    first=\$(printf '%s' "\$input" | grep -n '^\*' | tail -1 | cut -d: -f1)
    echo "\$(printf '%s' "\$input" | sed -n "\${first}p")" >"$FAKE_DIR/failed-table"
    if [ "\$first" -gt 1 ]; then
        printf '%s' "\$input" | head -n \$((first - 1)) | /usr/sbin/$name "\$@" || exit 97
    fi
fi
line=\$(printf '%s' "\$input" | awk -v from="\$first" 'NR >= from && /^-/ { print NR; exit }')
: >"$FAKE_DIR/fired"
echo "$name: line \${line:-\$first} failed" >&2
exit 1
EOF
    chmod +x "$FAKE_DIR/$name"
}
# fake_readback <4|6> — the read-back (iptables -t TABLE -S) loses the first owned rule, once
fake_readback() {
    local name="${XT[$(($1 / 6))]}-$BACKEND"
    cat >"$FAKE_DIR/$name" <<EOF
#!/bin/bash
# fault injection (tests/netns/test_faults.sh): $name -S drops one owned rule, once
case " \$* " in *" -S "*) ;; *) exec /usr/sbin/$name "\$@" ;; esac
[ -e "$FAKE_DIR/fired" ] && exec /usr/sbin/$name "\$@"
out=\$(/usr/sbin/$name "\$@") || exit \$?
if grep -q '^-A DFW-' <<<"\$out"; then
    grep -m1 '^-A DFW-' <<<"\$out" >"$FAKE_DIR/dropped"
    : >"$FAKE_DIR/fired"
    awk '/^-A DFW-/ && !done { done = 1; next } { print }' <<<"\$out"
else
    printf '%s\n' "\$out"
fi
EOF
    chmod +x "$FAKE_DIR/$name"
}

# ---------------------------------------------------------------- rules files that cannot be written
FS_OUT=
# fs_wrapper <mode> <dir> — DFW_BIN for the next run: in a private mount namespace, <dir> becomes
# "full" (a tiny tmpfs holding the old files, then filled), "ro" (a read-only bind mount of itself)
# or "immutable" (a tmpfs holding the old files, chattr +i); then the module runs, and what <dir>
# holds afterwards is recorded in $FS_OUT (the tmpfs vanishes with the namespace).
fs_wrapper() {
    FS_OUT=$(mktemp -d "$T_DIR/fs.XXXXXX")
    mkdir -p "$FS_OUT/seed"
    cat >"$FS_OUT/run" <<EOF
#!/bin/bash
# fault injection (tests/netns/test_faults.sh): rules files in a "$1" directory
exec unshare --mount --propagation private bash -c '
    dir=$2 out=$FS_OUT
    cp -a "\$dir/." "\$out/seed/" || exit 98
    case $1 in
        full) mount -t tmpfs -o size=256k,mode=0755 dfw-full "\$dir" && cp -a "\$out/seed/." "\$dir/" &&
              { dd if=/dev/zero of="\$dir/filler" bs=4k 2>/dev/null; df --output=avail -B1 "\$dir" | tail -1 >"\$out/avail"; } ;;
        ro) mount --bind "\$dir" "\$dir" && mount -o remount,bind,ro "\$dir" ;;
        immutable) mount -t tmpfs -o size=1m,mode=0755 dfw-imm "\$dir" && cp -a "\$out/seed/." "\$dir/" && chattr +i "\$dir" ;;
    esac || { echo "test harness: cannot set up the $1 directory" >&2; exit 98; }
    "\$0" "\$@"
    rc=\$?
    ls -A "\$dir" >"\$out/ls"
    for f in "\$dir"/rules.v*; do [ -f "\$f" ] && cp "\$f" "\$out/after.\${f##*/}"; done
    [ $1 = immutable ] && chattr -i "\$dir"
    exit \$rc' "$REAL_BIN" "\$@"
EOF
    chmod +x "$FS_OUT/run"
    DFW_BIN=$FS_OUT/run
}

# ---------------------------------------------------------------- one case
# fault_case <label> <rules_v4> <rules_v6> <setup...> — policy A applied normally, then the run
# to B under the fault set up by the command <setup...> (fake_* or fs_wrapper); the checks that
# follow are the caller's (fault_checks and its own)
fault_case() {
    local label=$1 r4=$2 r6=$3
    shift 3
    CASE=$label
    FAULTS=$((FAULTS + 1))
    CASE_BAD=$T_FAIL
    t_dfw_ok "$label: policy A applied normally" "$(with_files "$POL_A" "$r4" "$r6")" || return 1
    snap "$T_DIR/before"
    files_state "$r4" "$r6" >"$T_DIR/files-before"
    FAKE_DIR="" FS_OUT=""
    local wrap=$T_WRAP
    "$@"
    [ -n "$FAKE_DIR" ] && T_WRAP=$FAKE_DIR
    dfw "$(with_files "$POL_B" "$r4" "$r6")"
    T_WRAP=$wrap DFW_BIN=$REAL_BIN
    t_eq "$label: the run fails" true "$(dfw_q '.failed')" "$(dfw_show)"
    snap "$T_DIR/after"
    t_same "$label: every table of both families is as before (foreign rules included)" "$T_DIR/before" "$T_DIR/after"
    t_same "$label: the rules files are unchanged" "$T_DIR/files-before" <(files_state "$r4" "$r6")
    return 0
}
# converges <r4> <r6> — the next normal run converges, and the one after changes nothing
converges() {
    if t_dfw_ok "$CASE: the next run converges" "$(with_files "$POL_B" "$1" "$2")"; then
        t_dfw_ok "$CASE: a second run" "$(with_files "$POL_B" "$1" "$2")" &&
            t_changed "$CASE: a second run reports changed=false" false
    fi
    [ "$T_FAIL" = "$CASE_BAD" ] && SURVIVED=$((SURVIVED + 1))
    return 0
}
msg() { dfw_q '.msg'; }
R4=$RULES_DIR/rules.v4 R6=$RULES_DIR/rules.v6

# 1. ip6tables-restore fails after the IPv4 family was applied: IPv4 is rolled back
fault_case "ip6tables-restore fails" "$R4" "$R6" eval 'fake_tools; fake_restore 6 all'
t_match "$CASE: the message names the family, the command and the failing input line" \
    "ipv6: '[^']*ip6tables-$BACKEND-restore [^']*' failed \(exit status: 1\): ip6tables-$BACKEND-restore: line [0-9]+ failed; input line [0-9]+: -" "$(msg)"
t_match "$CASE: the message says IPv4 (applied) and IPv6 (failed) were rolled back" '^ipv4 rolled back, ipv6 rolled back: ipv6: ' "$(msg)"
check "$CASE: the fault fired" test -e "$FAKE_DIR/fired"
converges "$R4" "$R6"

# 2. iptables-restore commits the first table of the input, then fails on the last one
fault_case "iptables-restore fails on its last table" "$R4" "$R6" eval 'fake_tools; fake_restore 4 last-table'
t_eq "$CASE: the input held several tables (the first committed)" 2 "$(grep -c '^\*' "$FAKE_DIR/input" 2>/dev/null)" "$(cat "$FAKE_DIR/input" 2>/dev/null | head -5)"
t_match "$CASE: the message names the command and the failing line of that table" \
    "ipv4: '[^']*iptables-$BACKEND-restore [^']*' failed .*line [0-9]+ failed; input line [0-9]+: -" "$(msg)"
# before the fix: "nothing was changed", and the committed table stayed
t_match "$CASE: the message says the failing family was rolled back" '^ipv4 rolled back: ipv4: ' "$(msg)"
converges "$R4" "$R6"

# 3. the read-back disagrees with the plan (one owned rule missing): verification fails, both
# families are rolled back
fault_case "the read-back disagrees" "$R4" "$R6" eval 'fake_tools; fake_readback 4'
t_match "$CASE: the message says what differs and that it was rolled back" \
    '^ipv4 rolled back, ipv6 rolled back: ipv4: the rules read back after iptables-restore differ from the plan; still to do: ' "$(msg)"
check "$CASE: the fault fired (a rule was dropped from the read-back)" test -s "$FAKE_DIR/dropped"
converges "$R4" "$R6"

# 4-6. the rules files' directory cannot be written: the old files stay whole, the run is undone
for mode in immutable ro full; do
    d=$T_DIR/files-$mode
    mkdir -p "$d"
    case $mode in
        immutable) why='Operation not permitted' ;;
        ro) why='Read-only file system' ;;
        full) why='No space left on device' ;;
    esac
    fault_case "rules files in a $mode directory" "$d/rules.v4" "$d/rules.v6" fs_wrapper "$mode" "$d"
    t_match "$CASE: the message names the file and the reason" "cannot write $d/rules.v4: $why" "$(msg)"
    t_match "$CASE: the live change was rolled back" '^ipv4 rolled back, ipv6 rolled back: ' "$(msg)"
    for f in rules.v4 rules.v6; do
        t_eq "$CASE: the old $f in that directory is intact" "$(sha256sum <"$FS_OUT/seed/$f")" \
            "$(sha256sum <"$FS_OUT/after.$f")"
    done
    t_eq "$CASE: no temporary file left" "rules.v4 rules.v6" "$(grep -v filler "$FS_OUT/ls" | sort | xargs)"
    [ "$mode" = full ] && t_eq "$CASE: the tmpfs was full" 0 "$(tr -d " " <"$FS_OUT/avail")"
    converges "$d/rules.v4" "$d/rules.v6"
done

# 7. rules.v4 written, then rules.v6 (on another mount, full) cannot be: rules.v4 is put back
d=$T_DIR/files-v6full
mkdir -p "$d"
fault_case "rules.v6 fails after rules.v4 was written" "$R4" "$d/rules.v6" fs_wrapper full "$d"
t_match "$CASE: the message says rules.v4 was put back and why rules.v6 failed" \
    "^ipv4 rolled back, ipv6 rolled back: $R4 put back: cannot write $d/rules.v6: No space left on device" "$(msg)"
t_eq "$CASE: the old rules.v6 on the full tmpfs is intact" "$(sha256sum <"$FS_OUT/seed/rules.v6")" \
    "$(sha256sum <"$FS_OUT/after.rules.v6")"
converges "$R4" "$d/rules.v6"

# 8. lockout (issue 11, item 4): egress.deny_host while the controller's SSH session comes from a
# container on docker0 is refused, naming the field, with nothing changed. The module finds
# SSH_CONNECTION in an ancestor's environment when sudo (Ansible's become) dropped it from its own.
snap "$T_DIR/before"
printf '#!/bin/bash\nexec env -u SSH_CONNECTION "%s" "$@"\n' "$REAL_BIN" >"$T_DIR/sudo-like"
chmod +x "$T_DIR/sudo-like"
POL_H=$(jq -c '.egress.deny_host = true' <<<"$POL_B")
for how in env ancestor; do
    [ "$how" = ancestor ] && DFW_BIN=$T_DIR/sudo-like
    SSH_CONNECTION="$C1_4 50122 $GW1_4 22" dfw "$(with_files "$POL_H" "$R4" "$R6")"
    DFW_BIN=$REAL_BIN
    t_match "lockout ($how): deny_host refused for a controller on docker0, naming the field" \
        "^egress.deny_host: the controller \\($C1_4\\) reaches this host over the Docker network on 'docker0'.*nothing was changed$" "$(msg)"
    snap "$T_DIR/after"
    t_same "lockout ($how): nothing changed" "$T_DIR/before" "$T_DIR/after"
done
SSH_CONNECTION="$ALLOWED4 50122 $HOST4 22" t_dfw_ok "lockout: the same policy from a controller outside is applied" \
    "$(with_files "$POL_H" "$R4" "$R6")"

t_figure "faults injected: $FAULTS, survived (failed clearly, nothing changed, converged after): $SURVIVED"
t_done
