#!/usr/bin/env python3
"""bench/conn_rate.py — helpers of bench/conn_rate.sh (no netfilter calls of its own).

  sources N 4|6            the policy's N sources of one family, one a line, the client's network last
  policy N BACKEND WORK [DATAPLANE]   the module's arguments (JSON) for N sources per family
  ipsetify 4|6 SET         stdin: iptables-save output holding the module's rules; stdout: the same
                           ruleset with DFW-INGRESS-POLICY's per-source RETURN rules replaced by one
                           `-m set --match-set SET src` rule (stderr: how many rules it replaced)
  nft N PORT EXT BRIDGE    stdout: the nft -f input of the hand-built `inet docker_firewall` table
                           (sets allow_0_v4 and allow_1_v6: the policy's two allow entries)
  pyclient ADDR PORT SECONDS WORKERS   the same client as conn_rate.c, in Python (to show its cap)
  report RESULTS[,MORE] META   stdout: the Markdown report of the measurements (several runs'
                           results files joined by commas are merged, each round paired within its run)
"""
import ipaddress
import json
import multiprocessing
import os
import socket
import statistics
import struct
import sys
import time

# The client's own network, last in every allow list, and the least specific prefix in it: a
# hash:net ipset probes its prefix lengths from the most specific down, so it probes all of them
# (9 per family) before it matches; rule by rule the client's rule is the last of N.
CLIENT_NET = {4: "198.19.255.0/24", 6: "fd00:200::/120"}
# The other N-1 sources: prefix lengths /32../25 (IPv6 /128../121) in turn, not overlapping, in
# the CGNAT and documentation ranges (no traffic is ever sent to them).
BASE = {4: ipaddress.ip_address("100.64.0.0"), 6: ipaddress.ip_address("2001:db8::")}
BITS = {4: 32, 6: 128}


def sources(n, fam):
    out, cursor, bits = [], int(BASE[fam]), BITS[fam]
    for i in range(n - 1):
        plen = bits - (i % 8)
        size = 1 << (bits - plen)
        cursor = (cursor + size - 1) // size * size
        out.append(f"{ipaddress.ip_address(cursor)}/{plen}")
        cursor += size
    out.append(CLIENT_NET[fam])
    return out


# The module matches an entry of 100 or more sources of a family with an ipset; the per-rule cells
# split the list into entries of 99 (same order: the client's network stays last) to keep one rule
# per source, the layout being measured.
RULES_PER_ENTRY = 99


def entries(n, fam, per_entry):
    srcs = sources(n, fam)
    return [{"ports": [8080], "proto": "tcp", "sources": srcs[i:i + per_entry], "comment": f"connrate v{fam}"}
            for i in range(0, len(srcs), per_entry)]


def policy(n, backend, work, dataplane=None):
    # one entry per family where the dataplane uses sets (at most 10,000 sources per entry)
    per_entry = n if dataplane else RULES_PER_ENTRY
    args = {
        "state": "present",
        "families": ["ipv4", "ipv6"],
        "backend": backend,
        "external_interfaces": ["eth0"],
        "strategy": "docker_user",
        "ingress": {"default": "drop",
                    "allow": entries(n, 4, per_entry) + entries(n, 6, per_entry)},
        "persist": False,
        "rules_v4": os.path.join(work, "rules.v4"),
        "rules_v6": os.path.join(work, "rules.v6"),
        "_ansible_check_mode": False,
        "_ansible_diff": False,
    }
    if dataplane:
        args["dataplane"] = dataplane
    return args


def ipsetify(fam, setname, text):
    out, replaced = [], 0
    for line in text.splitlines():
        words = line.split()
        if (len(words) > 4 and words[:3] == ["-A", "DFW-INGRESS-POLICY", "-s"]
                and words[-2:] == ["-j", "RETURN"]):
            if replaced == 0:
                out.append(" ".join(["-A", "DFW-INGRESS-POLICY", "-m", "set", "--match-set",
                                     setname, "src"] + words[4:]))
            replaced += 1
            continue
        out.append(line)
    print(f"replaced {replaced} rules", file=sys.stderr)
    if replaced == 0:
        sys.exit("no per-source rule found in DFW-INGRESS-POLICY")
    return "\n".join(out) + "\n"


def nft(n, port, ext, bridge):
    def elems(fam):
        return ",\n      ".join(sources(n, fam))
    return f"""table inet docker_firewall {{
  set allow_0_v4 {{
    type ipv4_addr; flags interval;
    elements = {{ {elems(4)} }}
  }}
  set allow_1_v6 {{
    type ipv6_addr; flags interval;
    elements = {{ {elems(6)} }}
  }}
  chain forward {{
    type filter hook forward priority filter - 10; policy accept;
    ct state established,related return
    iifname "{ext}" oifname "{bridge}" ct state new jump ingress_policy
  }}
  chain ingress_policy {{
    ip saddr @allow_0_v4 meta l4proto tcp ct original proto-dst {port} return
    ip6 saddr @allow_1_v6 meta l4proto tcp ct original proto-dst {port} return
    drop
  }}
}}
"""


def _pyworker(args):
    addr, port, end = args
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    linger = struct.pack("ii", 1, 0)
    ok = err = 0
    while time.monotonic() < end:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        try:
            s.connect((addr, port))
            ok += 1
        except OSError:
            err += 1
        s.close()
    return ok, err


def pyclient(addr, port, seconds, workers):
    start = time.monotonic()
    with multiprocessing.Pool(workers) as pool:
        res = pool.map(_pyworker, [(addr, port, start + seconds)] * workers)
    print(sum(r[0] for r in res), sum(r[1] for r in res), f"{time.monotonic() - start:.3f}")


# ------------------------------------------------------------------ report
def fmt(x):
    return f"{x:,.0f}"


def load(paths):
    """paths: one results file, or several joined by commas (runs merged; rounds kept apart)"""
    rows = []
    for i, path in enumerate(paths.split(",")):
        with open(path) as f:
            for line in f:
                cell, dp, backend, size, fam, rep, ok, err, el = line.split()
                rows.append(dict(cell=cell, dp=dp, backend=backend, size=int(size), fam=fam,
                                 rep=1000 * i + int(rep), ok=int(ok), err=int(err), rate=int(ok) / float(el)))
    return rows


DP_NAME = {
    "loop": "client cap: client and server in one namespace over lo",
    "route": "forwarded, no netfilter at all",
    "docker": "Docker's rules only (no policy)",
    "rules": "iptables, one rule per source (entries under 100 sources)",
    "ipset": "iptables + ipset hash:net",
    "nft": "nftables table, interval set",
    "pyloop": "Python client (multiprocessing), over lo",
    "pydocker": "Python client, Docker's rules only",
}


def report(results, meta):
    rows = load(results)
    with open(meta) as f:
        m = json.load(f)
    groups = {}
    for r in rows:
        groups.setdefault((r["dp"], r["backend"], r["fam"], r["size"]), []).append(r)

    def stat(key):
        g = groups.get(key)
        if not g:
            return None
        rates = [r["rate"] for r in g]
        return dict(med=statistics.median(rates), lo=min(rates), hi=max(rates), n=len(rates),
                    err=sum(r["err"] for r in g))

    def paired(key, base_key):
        """median over rounds of rate / the base cell's rate in the same round (adjacent in time,
        so a change of the machine's load between rounds cancels)"""
        a = {r["rep"]: r["rate"] for r in groups.get(key, [])}
        b = {r["rep"]: r["rate"] for r in groups.get(base_key, [])}
        rs = [a[k] / b[k] for k in a if k in b and b[k] > 0]
        return statistics.median(rs) if rs else None

    def label(dp, backend):
        if dp in ("rules", "ipset", "docker", "pydocker"):
            return f"{DP_NAME[dp]}, iptables-{backend}"
        if dp == "nft":
            return f"{DP_NAME[dp]} (Docker on iptables-{backend})"
        return DP_NAME[dp]

    p = print
    p("### Machine and run\n")
    for k in ("command", "date", "commit", "nproc", "cpu", "kernel", "iptables", "nft", "ipset", "layout",
              "duration_per_run", "reps", "client", "load_before", "load_after", "elapsed", "nft_table"):
        if k in m:
            p(f"* {k}: {m[k]}")
    p()
    sizes = sorted({s for (dp, _, _, s) in groups if dp in ("rules", "ipset", "nft")})
    main_sizes = [s for s in sizes if s in m.get("main_sizes", sizes)]
    for fam in ("4", "6"):
        keys = sorted({(dp, b) for (dp, b, f, s) in groups if f == fam and dp in ("rules", "ipset", "nft")},
                      key=lambda k: (["rules", "ipset", "nft"].index(k[0]), k[1]))
        if not keys:
            continue
        fam_sizes = [s for s in main_sizes if any((dp, b, fam, s) in groups for dp, b in keys)]
        p(f"### New connections per second, IPv{fam}: median (min–max) of the runs; "
          f"× = ratio to the same dataplane at {fam_sizes[0]} sources (median of the per-round ratios)\n")
        p("| dataplane | " + " | ".join(f"{s:,} sources" for s in fam_sizes) + " |")
        p("|---|" + "---:|" * len(fam_sizes))
        for dp, b in keys:
            base = stat((dp, b, fam, fam_sizes[0]))
            cells = []
            for s in fam_sizes:
                st = stat((dp, b, fam, s))
                if not st:
                    cells.append("–")
                    continue
                c = f"{fmt(st['med'])} ({fmt(st['lo'])}–{fmt(st['hi'])})"
                pr = paired((dp, b, fam, s), (dp, b, fam, fam_sizes[0]))
                if pr is not None:
                    c += f" **{pr:.2f}×**"
                if st["err"]:
                    c += f" [{st['err']} failed connects]"
                cells.append(c)
            p(f"| {label(dp, b)} | " + " | ".join(cells) + " |")
        p()
        refs = sorted({(dp, b) for (dp, b, f, s) in groups if f == fam and dp not in ("rules", "ipset", "nft")},
                      key=lambda k: (list(DP_NAME).index(k[0]), k[1]))
        if refs:
            p(f"Reference points, IPv{fam} (no policy):\n")
            p("| path | connections/s, median (min–max) |")
            p("|---|---:|")
            for dp, b in refs:
                st = stat((dp, b, fam, 0))
                if st:
                    p(f"| {label(dp, b)} | {fmt(st['med'])} ({fmt(st['lo'])}–{fmt(st['hi'])}) |")
            p()

    # threshold: rate(N) = 1 / (a + c N) on the per-rule layout, fitted on the per-round ratios
    p("### Where a set starts to pay (iptables, one rule per source, IPv4)\n")
    p("Median rate, and in brackets its change against 10 sources (median of the per-round ratios). "
      "The fit: 1/rate = a + c·N, i.e. rate(10)/rate(N) − 1 = k·(N − 10) with k = c/(a + 10c), "
      "least squares through the per-round ratios; c (ns) is the wall time one more rule adds to a "
      "new connection at the machine's throughput, N(5%) and N(10%) where the fit loses 5% and 10%.\n")
    rs = sorted({s for (dp, b, f, s) in groups if dp == "rules" and f == "4"})
    p("| backend | " + " | ".join(f"{s:,}" for s in rs) + " | c (ns/rule) | N(5%) | N(10%) |")
    p("|---|" + "---:|" * (len(rs) + 3))
    for b in sorted({b for (dp, b, f, s) in groups if dp == "rules"}):
        base_key = ("rules", b, "4", rs[0])
        if not stat(base_key):
            continue
        xs, ys, cells = [], [], []
        for s in rs:
            st = stat(("rules", b, "4", s))
            if not st:
                cells.append("–")
                continue
            pr = paired(("rules", b, "4", s), base_key)
            cells.append(f"{fmt(st['med'])} ({(pr - 1) * 100:+.1f}%)".replace("-", "−"))
            a = {r["rep"]: r["rate"] for r in groups[("rules", b, "4", s)]}
            z = {r["rep"]: r["rate"] for r in groups[base_key]}
            for k in a:
                if k in z and s != rs[0]:
                    xs.append(s - rs[0])
                    ys.append(z[k] / a[k] - 1)
        k = sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs) if xs else 0
        c = k / stat(base_key)["med"]

        def at(loss):
            return f"{rs[0] + (1 / (1 - loss) - 1) / k:,.0f}" if k > 0 else "–"
        p(f"| {b} | " + " | ".join(cells) + f" | {c * 1e9:.1f} | {at(0.05)} | {at(0.10)} |")
    p()


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    a = sys.argv[2:]
    if cmd == "sources":
        print("\n".join(sources(int(a[0]), int(a[1]))))
    elif cmd == "policy":
        print(json.dumps(policy(int(a[0]), a[1], a[2], a[3] if len(a) > 3 else None)))
    elif cmd == "ipsetify":
        sys.stdout.write(ipsetify(int(a[0]), a[1], sys.stdin.read()))
    elif cmd == "nft":
        sys.stdout.write(nft(int(a[0]), int(a[1]), a[2], a[3]))
    elif cmd == "pyclient":
        pyclient(a[0], int(a[1]), float(a[2]), int(a[3]))
    elif cmd == "report":
        report(a[0], a[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
