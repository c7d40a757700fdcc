#!/usr/bin/env bash
# tests/package/run.sh — the packages: the Debian package (scripts/build-deb) and the Ansible collection
# dockerfw.docker_firewall (scripts/build-collection), built from the repository and used as a user would.
#
#   bash tests/package/run.sh                 (root: network namespaces, an overlay of / for dpkg)
#   bash tests/package/run.sh deb collection_play   # only these steps (function names; builds run always)
#
# One line per step, "ok - ..." / "not ok - ..." (with the step's log as "# ..." lines on failure), then
# "N passed, N failed". DFW_PKG_VERBOSE=1 shows every step's log. Everything that runs the module binary
# runs in a throw-away network namespace; the .deb is installed into an overlay of / (tests/package/deb_root.sh).
# ansible-test sanity keeps its venvs in target/ansible-test-home (the first run installs them from PyPI).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT" || exit 1
VENV=${DFW_VENV:-$ROOT/.venv}
export DFW_VENV=$VENV
export PATH="$VENV/bin:${HOME:-/root}/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 NO_COLOR=1 PY_COLORS=0 LANG=C.UTF-8 LC_ALL=C.UTF-8
export PYTHONWARNINGS=ignore::DeprecationWarning

DFW_PKG_OUTER_NETNS=$(readlink /proc/self/ns/net) && DFW_PKG_OUTER_MNTNS=$(readlink /proc/self/ns/mnt) || exit 1
export DFW_PKG_OUTER_NETNS DFW_PKG_OUTER_MNTNS
WORK=$(mktemp -d /tmp/dfwpkg-run.XXXXXX) || exit 1
trap 'rm -rf "$WORK"' EXIT
export ANSIBLE_HOME=$WORK/ansible-home ANSIBLE_LOCAL_TEMP=$WORK/tmp ANSIBLE_REMOTE_TEMP=$WORK/tmp
mkdir -p "$WORK/tmp"
PASSED=0
FAILED=0
N=0
NAMESPACE=dockerfw
NAME=docker_firewall
FQCN=$NAMESPACE.$NAME.docker_firewall

ONLY="$*"
step() {
    local name=$1 log rc
    shift
    if [ -n "$ONLY" ] && [[ " $ONLY " != *" $1 "* ]] && [[ "$1" != build_* ]]; then
        return 0
    fi
    N=$((N + 1))
    log=$WORK/step-$N.log
    "$@" >"$log" 2>&1 </dev/null
    rc=$?
    if [ "$rc" = 0 ]; then
        echo "ok - $name"
        [ -z "${DFW_PKG_VERBOSE:-}" ] || sed 's/^/# /' "$log"
        PASSED=$((PASSED + 1))
    else
        echo "not ok - $name (exit $rc)"
        tail -n "${DFW_PKG_LOG_LINES:-60}" "$log" | sed 's/^/# /'
        FAILED=$((FAILED + 1))
    fi
    return "$rc"
}

# ---------------------------------------------------------------- lint
shell_lint() {
    shellcheck -x -S warning scripts/build-deb scripts/build-collection tests/package/*.sh \
        packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm
}
yaml_lint() { yamllint -s packaging/collection; }

# ---------------------------------------------------------------- builds
DEB=""
TARBALL=""
build_deb() {
    local out
    out=$(bash scripts/build-deb) || return 1
    DEB=$(tail -n 1 <<<"$out")
    [ -f "$DEB" ] && [[ "$DEB" == */dist/docker-firewall_*_amd64.deb ]]
}
build_collection() {
    local out
    out=$(bash scripts/build-collection) || return 1
    TARBALL=$(tail -n 1 <<<"$out")
    [ -f "$TARBALL" ] && [[ "$TARBALL" == */dist/$NAMESPACE-$NAME-*.tar.gz ]]
}

# ---------------------------------------------------------------- the Debian package
# no errors and no warnings (the accepted ones are overridden in the package, with reasons)
lintian_clean() {
    local out
    out=$(lintian -EI --pedantic "$DEB" 2>&1 | grep -v 'running with root privileges')
    echo "$out"
    ! grep -q '^[EW]: ' <<<"$out"
}
deb_root() {
    # its own ok/not ok lines: kept in the log, summed up here
    bash tests/package/deb_root.sh "$DEB"
}
deb_contents() {
    local list
    list=$(dpkg-deb -c "$DEB" | awk '{ print $6 }')
    echo "$list"
    grep -qx './usr/sbin/docker_firewall' <<<"$list" && grep -qx './lib/systemd/system/docker-firewall.service' <<<"$list" &&
        grep -qx './usr/share/man/man8/docker_firewall.8.gz' <<<"$list" &&
        grep -qx './usr/share/doc/docker-firewall/examples/policy.json' <<<"$list" &&
        grep -qx './usr/share/doc/docker-firewall/changelog.Debian.gz' <<<"$list" &&
        # the binary is the static build, not something else
        dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/sbin/docker_firewall | cmp - target/x86_64-unknown-linux-gnu/release/docker_firewall
}

# ---------------------------------------------------------------- the collection
COLL=$WORK/collections
collection_install() {
    ansible-galaxy collection install "$TARBALL" -p "$COLL" &&
        [ -x "$COLL/ansible_collections/$NAMESPACE/$NAME/plugins/modules/docker_firewall" ] &&
        [ ! -e "$COLL/ansible_collections/$NAMESPACE/$NAME/roles/docker_firewall/library" ]
}
# ansible-doc of the installed collection lists every option (nested ones too) and every return value
# of library/docker_firewall.yml
collection_doc() {
    ANSIBLE_COLLECTIONS_PATH=$COLL ansible-doc --json "$FQCN" >"$WORK/doc.json" || return 1
    ANSIBLE_COLLECTIONS_PATH=$COLL ansible-doc "$FQCN" >"$WORK/doc.txt" || return 1
    ANSIBLE_COLLECTIONS_PATH=$COLL ansible-doc -t role "$FQCN" >"$WORK/role-doc.txt" || return 1
    grep -q 'docker_firewall_ingress' "$WORK/role-doc.txt" || { echo "the role's doc lacks docker_firewall_ingress"; return 1; }
    python3 - "$WORK/doc.json" library/docker_firewall.yml "$FQCN" <<'PY'
import json, sys, yaml
shown = json.load(open(sys.argv[1]))[sys.argv[3]]
src = yaml.safe_load(open(sys.argv[2]))
def keys(tree, sub, prefix=""):
    out = set()
    for k, v in (tree or {}).items():
        out.add(prefix + k)
        out |= keys((v or {}).get(sub), sub, prefix + k + ".")
    return out
missing = []
for what, want, got in (("option", keys(src["DOCUMENTATION"]["options"], "suboptions"), keys(shown["doc"]["options"], "suboptions")),
                        ("return value", keys(src["RETURN"], "contains"), keys(shown["return"], "contains"))):
    print(f"{len(got)} {what}s shown, {len(want)} documented")
    missing += [f"{what} {k}" for k in sorted(want - got)]
if "dockerfw.docker_firewall.docker_firewall:" not in shown["examples"]:
    missing.append("examples in FQCN")
print("\n".join(missing))
sys.exit(1 if missing else 0)
PY
}

# in_netns DIR SCRIPT: bash SCRIPT in DIR, in a fresh network namespace (eth0 with the default routes,
# docker0 and a user-defined bridge, Docker 20.10's rules from tests/ansible/fixtures) and a private mount
# namespace where /etc, /usr/local and /var/lib are throw-away overlays (the role's service files go there)
in_netns() {
    # shellcheck disable=SC2016  # expanded by the inner shell
    unshare --net --mount --propagation private --fork env ROOT="$ROOT" bash -c '
        set -u
        [ "$(readlink /proc/self/ns/net)" != "$DFW_PKG_OUTER_NETNS" ] || exit 99
        [ "$(readlink /proc/self/ns/mnt)" != "$DFW_PKG_OUTER_MNTNS" ] || exit 99
        ovl=$1/overlay
        mkdir -p "$ovl" && mount -t tmpfs dfwpkg-ovl "$ovl" || exit 97
        for d in /etc /usr/local /var/lib; do
            n=$(echo "$d" | tr / _)
            mkdir "$ovl/u$n" "$ovl/w$n" &&
                mount -t overlay dfwpkg-ovl -o "lowerdir=$d,upperdir=$ovl/u$n,workdir=$ovl/w$n" "$d" || exit 97
        done
        ip link set lo up &&
            ip link add eth0 type veth peer name eth0-peer && ip link set eth0-peer up &&
            ip addr add 10.207.0.2/24 dev eth0 && ip -6 addr add fd00:207::2/64 dev eth0 nodad &&
            ip link set eth0 up &&
            ip route add default via 10.207.0.1 && ip -6 route add default via fd00:207::1 &&
            ip link add docker0 type bridge && ip link set docker0 up &&
            ip link add br-0123456789ab type bridge && ip link set br-0123456789ab up || exit 98
        iptables-restore < "$ROOT/tests/ansible/fixtures/docker-20.10.v4.rules" &&
            ip6tables-restore < "$ROOT/tests/ansible/fixtures/docker-20.10.v6.rules" || exit 96
        cd "$1" && eval "$2"' in-netns "$1" "$2"
}

# the README's examples, as written there (its yaml blocks), against this machine in a netns
make_project() {
    local p=$WORK/project readme=$COLL/ansible_collections/$NAMESPACE/$NAME/README.md
    mkdir -p "$p" || return 1
    python3 - "$readme" "$p" <<'PY' || return 1
import re, sys
blocks = re.findall(r"^```yaml\n(.*?)^```$", open(sys.argv[1]).read(), re.S | re.M)
assert len(blocks) == 2, f"expected 2 yaml blocks in the README, found {len(blocks)}"
for name, body in zip(("firewall.yml", "site.yml"), blocks):
    open(f"{sys.argv[2]}/{name}", "w").write("---\n" + body)
PY
    grep -q "$FQCN:" "$p/firewall.yml" && grep -q "role: $FQCN" "$p/site.yml" || return 1
    cat >"$p/inventory.ini" <<'EOF2'
[docker_hosts]
web1.example.com

[load_balancers]
lb1.example.com  ansible_host=192.0.2.10
lb2.example.com  ansible_host=192.0.2.11

[app_servers]
app1.example.com  ansible_host=198.51.100.21
app2.example.com  ansible_host=198.51.100.22
EOF2
    # the docker host is this machine (local connection, in the netns), no package installation (no network)
    jq -n --arg py "$VENV/bin/python" '{ansible_connection: "local", ansible_python_interpreter: $py,
        ansible_become: false, docker_firewall_install_packages: false}' >"$p/local.json"
}

collection_play() {
    local p=$WORK/project out
    # shellcheck disable=SC2016  # expanded by the inner shell
    out=$(ANSIBLE_COLLECTIONS_PATH=$COLL ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false in_netns "$p" '
        rules() { iptables-save | sed -E "/^#/d; s/\[[0-9]+:[0-9]+\]//"; ip6tables-save | sed -E "/^#/d; s/\[[0-9]+:[0-9]+\]//"; }
        run() { ansible-playbook -i inventory.ini "$1" -e @local.json "${@:2}"; }
        rules > before.rules
        run firewall.yml --check --diff > m1.log 2>&1; echo "m1=$?"
        rules > after-check.rules
        cmp -s before.rules after-check.rules && echo "check=unchanged"
        run firewall.yml > m2.log 2>&1; echo "m2=$?"
        run firewall.yml > m3.log 2>&1; echo "m3=$?"
        echo "=== live"; rules
        run site.yml --check --diff > r1.log 2>&1; echo "r1=$?"
        run site.yml > r2.log 2>&1; echo "r2=$?"
        run site.yml > r3.log 2>&1; echo "r3=$?"
        cmp -s /usr/local/sbin/docker_firewall "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/dockerfw/docker_firewall/plugins/modules/docker_firewall" &&
            echo "service-binary=collection"
        grep -q "^ExecStart=/usr/local/sbin/docker_firewall watch" /etc/systemd/system/docker-firewall.service && echo "unit=installed"
        for f in m1 m2 m3 r1 r2 r3; do echo "=== $f"; cat "$f.log"; done')
    echo "$out"
    local m1 m2 m3 live r2 r3
    live=$(sed -n '/^=== live$/,/^=== m1$/p' <<<"$out")
    m1=$(sed -n '/^=== m1$/,/^=== m2$/p' <<<"$out")
    m2=$(sed -n '/^=== m2$/,/^=== m3$/p' <<<"$out")
    m3=$(sed -n '/^=== m3$/,/^=== r1$/p' <<<"$out")
    r2=$(sed -n '/^=== r2$/,/^=== r3$/p' <<<"$out")
    r3=$(sed -n '/^=== r3$/,$p' <<<"$out")
    # the module's example: --check --diff previews and changes nothing, applies, then changes nothing
    grep -q '^m1=0$' <<<"$out" && grep -q '^check=unchanged$' <<<"$out" &&
        grep -Eq 'web1.example.com +: ok=1 +changed=1 .*failed=0' <<<"$m1" &&
        grep -q '^+.*-s 192.0.2.10/32 -p tcp -m conntrack --ctorigdstport 443 .*load balancers' <<<"$m1" &&
        grep -q '^+.*-s 2001:db8:10::/64 -p tcp -m conntrack --ctorigdstport 443 .*load balancers' <<<"$m1" &&
        grep -q '^m2=0$' <<<"$out" && grep -Eq 'web1.example.com +: ok=1 +changed=1 .*failed=0' <<<"$m2" &&
        grep -q -- '-A DFW-INGRESS-POLICY -s 198.51.100.21/32 -p tcp -m conntrack --ctorigdstport 5432 ' <<<"$live" &&
        grep -q '^m3=0$' <<<"$out" && grep -Eq 'web1.example.com +: ok=1 +changed=0 .*failed=0' <<<"$m3" &&
        # the role's example: applies (the service's files from the collection), then changes nothing
        grep -q '^r1=0$' <<<"$out" && grep -q '^r2=0$' <<<"$out" && grep -q '^r3=0$' <<<"$out" &&
        grep -q "TASK \[dockerfw.docker_firewall.docker_firewall : Apply the Docker firewall policy\]" <<<"$r2" &&
        grep -q '^service-binary=collection$' <<<"$out" && grep -q '^unit=installed$' <<<"$out" &&
        grep -Eq 'web1.example.com +: ok=[0-9]+ +changed=[1-9][0-9]* .*failed=0' <<<"$r2" &&
        grep -Eq 'web1.example.com +: ok=[0-9]+ +changed=0 .*failed=0' <<<"$r3"
}

# ansible-lint, production profile, on the collection as built (galaxy.yml included). galaxy[no-repository]
# is skipped while the build has no repository URL (DFW_COLLECTION_REPOSITORY).
collection_lint() {
    local tree=$ROOT/target/collection skip=()
    grep -q '^repository:' "$tree/ansible_collections/$NAMESPACE/$NAME/galaxy.yml" || skip=(--skip-list 'galaxy[no-repository]')
    (cd "$tree/ansible_collections/$NAMESPACE/$NAME" &&
        ANSIBLE_COLLECTIONS_PATH=$tree ansible-lint --offline --profile production "${skip[@]}")
}

# ansible-test sanity on a git copy of the built collection (it lists files with git). Its venvs and its
# pip bootstrap (tests/package/get_pip.py stands in for get-pip.py, which it would download from a host
# outside the package registries) live in target/ansible-test-home.
collection_sanity() {
    local home=$ROOT/target/ansible-test-home copy=$WORK/sanity/ansible_collections/$NAMESPACE/$NAME py
    mkdir -p "$home/.ansible/test/cache" "$(dirname "$copy")" || return 1
    # the pip version ansible-test 2.19 bootstraps its venvs with
    cp tests/package/get_pip.py "$home/.ansible/test/cache/get_pip_24_2.py" || return 1
    cp -r "$ROOT/target/collection/ansible_collections/$NAMESPACE/$NAME" "$copy" &&
        mkdir -p "$copy/tests/sanity" || return 1
    # the binary module's ignores (not shipped: ansible-lint and Galaxy's import refuse a !skip)
    for v in 2.16 2.17 2.18 2.19 2.20; do
        cp packaging/collection/tests/sanity/ignore.txt "$copy/tests/sanity/ignore-$v.txt" || return 1
    done
    (cd "$copy" && git init -q && git add -A) || return 1
    py=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || return 1
    (cd "$copy" && HOME=$home ansible-test sanity --local --python "$py" --color no)
}

if [ "$(id -u)" != 0 ]; then
    echo "not ok - run as root (network namespaces, an overlay of / for dpkg)"
    echo "0 passed, 1 failed"
    exit 1
fi

step "shellcheck scripts/build-deb, scripts/build-collection, tests/package, maintainer scripts" shell_lint
step "yamllint packaging/collection" yaml_lint
if step "scripts/build-deb builds dist/docker-firewall_<version>_amd64.deb" build_deb; then
    step "the .deb holds the static binary, the unit, the man pages, the example policy, the changelog" deb_contents
    step "lintian: no errors, no warnings" lintian_clean
    if [ -z "$ONLY" ] || [[ " $ONLY " == *" deb_root "* ]]; then
        N=$((N + 1))
        deb_out=$(bash tests/package/deb_root.sh "$DEB" 2>&1 </dev/null)
        grep -E '^(not )?ok - |^# ' <<<"$deb_out"
        PASSED=$((PASSED + $(grep -c '^ok - ' <<<"$deb_out")))
        FAILED=$((FAILED + $(grep -c '^not ok - ' <<<"$deb_out")))
        grep -Eq '^[0-9]+ passed, 0 failed$' <<<"$deb_out" ||
            { grep -q '^not ok - ' <<<"$deb_out" || { echo "not ok - deb: tests/package/deb_root.sh"; FAILED=$((FAILED + 1)); }; }
    fi
fi
if step "scripts/build-collection builds dist/$NAMESPACE-$NAME-<version>.tar.gz" build_collection; then
    if step "the tarball installs into a fresh collections path" collection_install; then
        step "ansible-doc $FQCN: every option and return value, FQCN examples; the role's argument spec" collection_doc
        if step "the README's examples as playbooks (inventory for this host)" make_project; then
            step "README examples in a netns: module --check --diff changes nothing, applies, idempotent; the role too" collection_play
        fi
    fi
    step "ansible-lint (production profile) on the collection" collection_lint
    step "ansible-test sanity (validate-modules skips the binary, validates its documentation)" collection_sanity
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
