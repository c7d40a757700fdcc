#!/usr/bin/env python3
"""Foreign rules for the benchmark host: a Docker 20.10 layout (docker0 + one user bridge) that
publishes many container ports, plus kube-proxy (iptables mode) services with endpoints, plus an
admin's INPUT chain to pad to the exact count. Modelled on tests/fixtures/layouts/docker-20.10.*
and tests/fixtures/capture/gen-foreign-admin-kube.py; deterministic.

usage: gen_foreign.py N FAMILY(4|6) > rules      (exactly N "-A" lines, iptables-restore format)

Mix of the N rules: ~25 Docker base rules; then units of one kube service (1 + 1 + 3e rules for
e = 1..3 endpoints) and two published containers (3 rules each: filter DOCKER ACCEPT, nat
DOCKER DNAT, nat POSTROUTING MASQUERADE) until N is nearly reached; ADMIN-IN rules pad the rest.
At 1,000 rules and up about 15% of the rules are in filter, 85% in nat (kube-proxy lives in nat).
"""
import base64
import hashlib
import sys

BR2 = "br-2a9f44ca9e43"


def h(s):
    return base64.b32encode(hashlib.sha256(s.encode()).digest()).decode()[:16]


def addr(fam, kind, i):
    """Deterministic unique addresses per kind (container, cluster IP, pod, admin source)."""
    if fam == 4:
        base = {"ctr": (172, 17), "cip": (10, 96), "pod": (10, 244), "adm": (198, 18)}[kind]
        return f"{base[0]}.{base[1] + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"
    prefix = {"ctr": "fd00:d0c", "cip": "fd00:96", "pod": "fd00:244", "adm": "fd00:198"}[kind]
    return f"{prefix}::{i >> 16:x}:{i & 0xffff:x}" if i >> 16 else f"{prefix}::{i & 0xffff:x}"


def generate(n, fam):
    host = 32 if fam == 4 else 128
    lo = "127.0.0.0/8" if fam == 4 else "::1/128"
    net0 = "172.17.0.0/16" if fam == 4 else "fd00:d0c::/64"
    net2 = "172.18.0.0/16" if fam == 4 else "fd00:d0d::/64"
    filt = {c: [] for c in ["INPUT", "FORWARD", "OUTPUT", "DOCKER", "DOCKER-ISOLATION-STAGE-1",
                            "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER", "ADMIN-IN", "KUBE-FORWARD",
                            "KUBE-FIREWALL"]}
    nat = {c: [] for c in ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "DOCKER", "KUBE-SERVICES",
                           "KUBE-MARK-MASQ", "KUBE-POSTROUTING"]}
    f, t = filt, nat
    f["FORWARD"] += ["-j DOCKER-USER", "-j DOCKER-ISOLATION-STAGE-1",
                     '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD']
    for br in (BR2, "docker0"):
        f["FORWARD"] += [f"-o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                         f"-o {br} -j DOCKER", f"-i {br} ! -o {br} -j ACCEPT", f"-i {br} -o {br} -j ACCEPT"]
        f["DOCKER-ISOLATION-STAGE-1"].append(f"-i {br} ! -o {br} -j DOCKER-ISOLATION-STAGE-2")
        f["DOCKER-ISOLATION-STAGE-2"].append(f"-o {br} -j DROP")
    f["DOCKER-ISOLATION-STAGE-1"].append("-j RETURN")
    f["DOCKER-ISOLATION-STAGE-2"].append("-j RETURN")
    f["DOCKER-USER"].append("-j RETURN")
    f["INPUT"] += ["-j KUBE-FIREWALL", "-j ADMIN-IN"]
    f["OUTPUT"].append("-j KUBE-FIREWALL")
    f["KUBE-FIREWALL"].append(f'! -s {lo} -d {lo} -m comment --comment "block incoming localnet connections" '
                              "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")
    f["KUBE-FORWARD"] += ["-m conntrack --ctstate INVALID -j DROP",
                          '-m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT']
    t["PREROUTING"] += ['-m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
                        "-m addrtype --dst-type LOCAL -j DOCKER"]
    t["OUTPUT"] += ['-m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
                    f"! -d {lo} -m addrtype --dst-type LOCAL -j DOCKER"]
    t["POSTROUTING"] += ['-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
                         f"-s {net2} ! -o {BR2} -j MASQUERADE", f"-s {net0} ! -o docker0 -j MASQUERADE"]
    t["DOCKER"] += [f"-i {BR2} -j RETURN", "-i docker0 -j RETURN"]
    t["KUBE-MARK-MASQ"].append("-j MARK --set-xmark 0x4000/0x4000")
    t["KUBE-POSTROUTING"] += ["-m mark ! --mark 0x4000/0x4000 -j RETURN", "-j MARK --set-xmark 0x4000/0x0",
                              '-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully']
    extra_nat_chains = []

    def count():
        return sum(map(len, f.values())) + sum(map(len, t.values()))

    ctr = svc = pod = 0

    def container():
        nonlocal ctr
        ip, br = addr(fam, "ctr", ctr + 2), ("docker0" if ctr % 2 == 0 else BR2)
        cport, hport = (80, 443, 8080, 5432)[ctr % 4], 10000 + ctr
        dest = f"{ip}:{cport}" if fam == 4 else f"[{ip}]:{cport}"
        f["DOCKER"].append(f"-d {ip}/{host} ! -i {br} -o {br} -p tcp -m tcp --dport {cport} -j ACCEPT")
        t["DOCKER"].append(f"! -i {br} -p tcp -m tcp --dport {hport} -j DNAT --to-destination {dest}")
        t["POSTROUTING"].append(f"-s {ip}/{host} -d {ip}/{host} -p tcp -m tcp --dport {cport} -j MASQUERADE")
        ctr += 1

    def service(budget):
        nonlocal svc, pod
        eps = min(1 + svc % 3, (budget - 2) // 3)
        spn, proto, port = f"ns{svc // 20}/svc{svc}:p", ("tcp", "tcp", "udp")[svc % 3], 1000 + svc % 50000
        cip = addr(fam, "cip", svc + 1)
        name = "KUBE-SVC-" + h(f"{fam}{spn}{proto}")
        extra_nat_chains.append(name)
        t["KUBE-SERVICES"].append(f'-d {cip}/{host} -p {proto} -m comment --comment "{spn} cluster IP" '
                                  f"-m {proto} --dport {port} -j {name}")
        rules = [f'! -s {"10.244.0.0/16" if fam == 4 else "fd00:244::/64"} -d {cip}/{host} -p {proto} '
                 f'-m comment --comment "{spn} cluster IP" -m {proto} --dport {port} -j KUBE-MARK-MASQ']
        for k in range(eps):
            ip = addr(fam, "pod", pod + 2)
            pod += 1
            ep = f"{ip}:8080" if fam == 4 else f"[{ip}]:8080"
            sep = "KUBE-SEP-" + h(f"{fam}{spn}{ep}")
            left = eps - k
            stat = f" -m statistic --mode random --probability {1.0 / left:0.11f}" if left > 1 else ""
            rules.append(f'-m comment --comment "{spn} -> {ep}"{stat} -j {sep}')
            extra_nat_chains.append(sep)
            t[sep] = [f'-s {ip}/{host} -m comment --comment "{spn}" -j KUBE-MARK-MASQ',
                      f'-p {proto} -m comment --comment "{spn}" -m {proto} -j DNAT --to-destination {ep}']
        t[name] = rules
        svc += 1

    while True:
        left = n - count()
        if left >= 11 + 6:
            service(11)
            container()
            container()
        elif left >= 5:
            service(left)
        elif left >= 3:
            container()
        else:
            break
    i = 0
    while count() < n:
        f["ADMIN-IN"].append(f"-s {addr(fam, 'adm', i + 1)}/{host} -p tcp -m tcp --dport 22 -j ACCEPT")
        i += 1
    if count() != n:
        sys.exit(f"gen_foreign.py: N must be at least {count()}")
    out = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]"]
    out += [f":{c} - [0:0]" for c in filt if c not in ("INPUT", "FORWARD", "OUTPUT")]
    out += [f"-A {c} {r}" for c, rules in filt.items() for r in rules]
    out += ["COMMIT", "*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
            ":POSTROUTING ACCEPT [0:0]"]
    out += [f":{c} - [0:0]" for c in nat if c not in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")]
    out += [f"-A {c} {r}" for c, rules in nat.items() for r in rules]
    out += ["COMMIT"]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    n, fam = int(sys.argv[1]), int(sys.argv[2])
    sys.stdout.write(generate(n, fam))
