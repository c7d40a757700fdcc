#!/usr/bin/env python3
"""exposure_agrees.py EXPOSURE_JSON PROBES_DIR FAMILY PORT ALLOWED_ADDR STRANGER_ADDR

Compares `docker_firewall exposure --json` with what two clients' probes saw for one published
port and family (files PROBES_DIR/allowed-PORT-FAMILY and stranger-PORT-FAMILY, each starting
with "open" or "closed"). Prints one line; exit 0 agree, 1 disagree, 2 unknown verdict."""
import ipaddress
import json
import sys


def reaches(verdict, sources, addr):
    if verdict == "open":
        return True
    if verdict == "restricted":
        a = ipaddress.ip_address(addr)
        return any(a in ipaddress.ip_network(s) for s in sources)
    return False


def main():
    path, probes, fam, port, allowed, stranger = sys.argv[1:7]
    with open(path) as f:
        report = json.load(f)
    family = "ipv" + fam
    rows = [p for p in report["ports"] if p["family"] == family and p["host_port"] == int(port)
            and p["proto"] == "tcp" and p["host_address"] in ("0.0.0.0", "::")]
    if not rows:
        print(f"no exposure row for {port}/tcp {family}")
        return 1
    row = rows[0]
    if row["verdict"] == "unknown":
        print(f"{port} {family}: unknown ({row['rule']})")
        return 2
    bad = []
    for who, addr in (("allowed", allowed), ("stranger", stranger)):
        with open(f"{probes}/{who}-{port}-{fam}") as f:
            seen = f.read().strip()
        said = reaches(row["verdict"], row["sources"], addr)
        if said != seen.startswith("open"):
            bad.append(f"{who} ({addr}): exposure says {'reaches' if said else 'kept out'}, "
                       f"probe saw '{seen}'")
    verdict = row["verdict"] + (" " + ",".join(row["sources"]) if row["verdict"] == "restricted" else "")
    if bad:
        print(f"{port} {family}: {verdict}: " + "; ".join(bad) + f" (rule: {row['rule']})")
        return 1
    print(f"{port} {family}: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
