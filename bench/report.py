#!/usr/bin/env python3
"""Renders bench/run.sh results (JSON lines from measure.py plus run.sh's machine records) as the
Markdown that goes into docs/benchmarks.md: medians, ratios, and the targets, met or not.

usage: report.py RESULTS.jsonl
"""
import json
import os
import statistics
import sys

LIMIT_NOOP = 1.5
LIMIT_APPLY = 1.5
LIMIT_ANSIBLE = 50
LINEAR_SLACK = 1.5  # a later per-unit slope up to 1.5x the earlier one still counts as linear (noise)


def med(v):
    return statistics.median(v) if v else float("nan")


def ms(v):
    if v != v:
        return "–"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def x(v):
    return f"{v:.2f}x" if v < 10 else f"{v:.0f}x"


def yes(ok):
    return "**met**" if ok else "**not met**"


def main():
    recs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    by = lambda kind: [r for r in recs if r.get("kind") == kind]  # noqa: E731
    machine = {r["key"]: r["value"] for r in by("machine")}
    out = []
    p = out.append

    if machine:
        p("### Machine and run")
        p("")
    for key in ("command", "date", "commit", "binary", "nproc", "cpu", "kernel", "iptables",
                "ansible", "reps", "load_before", "load_after", "duration"):
        if key in machine:
            p(f"* {key}: {machine[key]}")
    p("")

    proc = by("process")
    growth_notes = []
    backends = sorted({r["backend"] for r in proc})
    targets = []

    if proc:
        p("### 1–2. The module as a process, beside its floor (median ms)")
        p("")
        p("Both families: N foreign rules in IPv4 and N in IPv6; S allowed sources per family (one allow "
          "entry, port 8080/tcp). *No-op floor* = `iptables-save` + `ip6tables-save`. *Apply floor* = "
          "`iptables-restore --noflush --wait` + `ip6tables-restore ...` of the module's own restore input "
          "(captured through a tee wrapper first in PATH). *Read+write* = both floors added: what any "
          "tool that reads before it writes pays.")
        p("")
        p("Each cell: median wall-clock ms; *CPU* = the ratio of median CPU times (user + system of the "
          "process and all it ran), which the load from other jobs on the machine disturbs far less.")
        p("")
        p("| backend | foreign N | sources S | restore lines | no-op | no-op floor | **ratio** | CPU | apply | "
          "apply floor | **ratio** | CPU | read+write floor | ratio | CPU |")
        p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in sorted(proc, key=lambda r: (r["backend"], r["foreign"], r["sources"])):
            noop, fnoop = med(r["module_noop"]), med(r["floor_noop"])
            app, fapp = med(r["module_apply"]), med(r["floor_apply"])
            c = {k: med(r[f"{k}_cpu"]) for k in ("module_noop", "floor_noop", "module_apply", "floor_apply")}
            rw = fnoop + fapp
            rwc = c["floor_noop"] + c["floor_apply"]
            r["_"] = dict(noop=noop, fnoop=fnoop, app=app, fapp=fapp, rw=rw,
                          noop_cpu=c["module_noop"], app_cpu=c["module_apply"],
                          rnoop_cpu=c["module_noop"] / c["floor_noop"], rapp_cpu=c["module_apply"] / c["floor_apply"],
                          rrw_cpu=c["module_apply"] / rwc)
            q = r["_"]
            lines = sum(r["restore_lines"].values())
            p(f"| {r['backend']} | {r['foreign']:,} | {r['sources']:,} | {lines:,} | {ms(noop)} | {ms(fnoop)} | "
              f"{x(noop / fnoop)} | {x(q['rnoop_cpu'])} | {ms(app)} | {ms(fapp)} | {x(app / fapp)} | "
              f"{x(q['rapp_cpu'])} | {ms(rw)} | {x(app / rw)} | {x(q['rrw_cpu'])} |")
        p("")
        p("Floor parts (median ms, per family): save v4 / save v6 / restore v4 / restore v6")
        p("")
        p("| backend | foreign N | sources S | save v4 | save v6 | restore v4 | restore v6 |")
        p("|---|---:|---:|---:|---:|---:|---:|")
        for r in sorted(proc, key=lambda r: (r["backend"], r["foreign"], r["sources"])):
            p(f"| {r['backend']} | {r['foreign']:,} | {r['sources']:,} | {ms(med(r['save_ipv4']))} | "
              f"{ms(med(r['save_ipv6']))} | {ms(med(r['restore_ipv4']))} | {ms(med(r['restore_ipv6']))} |")
        p("")

        big = max(r["foreign"] for r in proc)
        rows = [r for r in proc if r["foreign"] == big]
        worst = max(rows, key=lambda r: r["_"]["noop"] / r["_"]["fnoop"])
        ok = all(r["_"]["noop"] / r["_"]["fnoop"] <= LIMIT_NOOP for r in rows)
        worst_cpu = max(rows, key=lambda r: r["_"]["rnoop_cpu"])
        targets.append((f"no-op run ≤ {LIMIT_NOOP}x its floor at {big:,} foreign rules", ok,
                        f"worst {x(worst['_']['noop'] / worst['_']['fnoop'])} ({worst['backend']}, S={worst['sources']:,}); "
                        f"CPU: worst {x(worst_cpu['_']['rnoop_cpu'])} ({worst_cpu['backend']}, S={worst_cpu['sources']:,}); "
                        + ", ".join(f"{r['backend']} S={r['sources']:,}: {x(r['_']['noop'] / r['_']['fnoop'])}"
                                    for r in sorted(rows, key=lambda r: (r['backend'], r['sources'])))))
        worst = max(proc, key=lambda r: r["_"]["app"] / r["_"]["fapp"])
        best = min(proc, key=lambda r: r["_"]["app"] / r["_"]["fapp"])
        ok = all(r["_"]["app"] / r["_"]["fapp"] <= LIMIT_APPLY for r in proc)
        # What a run that reads before it writes cannot beat: (save + restore) / restore.
        bound = sorted(r["_"]["rw"] / r["_"]["fapp"] for r in rows)
        targets.append((f"applying run ≤ {LIMIT_APPLY}x its floor (the restore)", ok,
                        f"from {x(best['_']['app'] / best['_']['fapp'])} ({best['backend']}, N={best['foreign']:,}, "
                        f"S={best['sources']:,}) to {x(worst['_']['app'] / worst['_']['fapp'])} ({worst['backend']}, "
                        f"N={worst['foreign']:,}, S={worst['sources']:,}); a run that must read the ruleset before "
                        f"writing cannot go below (save + restore) / restore, {x(bound[0])} to {x(bound[-1])} "
                        f"at N={big:,}"))
        worst = max(proc, key=lambda r: r["_"]["app"] / r["_"]["rw"])
        ok = all(r["_"]["app"] / r["_"]["rw"] <= LIMIT_APPLY for r in proc)
        targets.append((f"(for reference) applying run ≤ {LIMIT_APPLY}x read+write floor", ok,
                        f"worst {x(worst['_']['app'] / worst['_']['rw'])} ({worst['backend']}, N={worst['foreign']:,}, "
                        f"S={worst['sources']:,}); at N={big:,}: "
                        + ", ".join(f"{r['backend']} S={r['sources']:,}: {x(r['_']['app'] / r['_']['rw'])}"
                                    for r in sorted(rows, key=lambda r: (r['backend'], r['sources'])))))

        # Linear or better, per step of 10x: the marginal cost per unit over the larger step
        # (t3 - t2) / (n3 - n2) must not exceed the average cost per unit at the middle point, t2 / n2,
        # which is what a + b*n (a >= 0) gives; a superlinear cost (c*n^2) fails it by ~10x.
        notes, fails = [], []
        for b in backends:
            rb = {(r["foreign"], r["sources"]): r["_"] for r in proc if r["backend"] == b}
            sizes = sorted({k[0] for k in rb})
            srcs = sorted({k[1] for k in rb})
            for what in ("noop", "app"):
                for dim, fixed_values, steps in (("N", srcs, sizes), ("S", sizes, srcs)):
                    if len(steps) < 3:
                        continue
                    for fixed in fixed_values:
                        key = (lambda v: (v, fixed)) if dim == "N" else (lambda v: (fixed, v))
                        t = [rb[key(v)][f"{what}_cpu"] for v in steps[-3:]]
                        n = steps[-3:]
                        marginal = (t[2] - t[1]) / (n[2] - n[1])
                        average = t[1] / n[1]
                        line = (f"{b} {'no-op' if what == 'noop' else 'apply'} along {dim} "
                                f"({'S' if dim == 'N' else 'N'}={fixed:,}): {marginal * 1000:.0f} µs/unit "
                                f"marginal vs {average * 1000:.0f} µs/unit average")
                        notes.append(line)
                        if marginal > average * LINEAR_SLACK:
                            fails.append(line)
        targets.append(("cost grows linearly or better with foreign rules (N) and allowed sources (S) (CPU time)", not fails,
                        ("; ".join(fails) if fails else
                         "every 10x step: marginal cost per unit ≤ average cost per unit at the step's start")))
        growth_notes = notes

        p("Growth (median ms, module; the floor's in brackets): no-op and apply along N at S=100, along S at N=1,000")
        p("")
        p("| backend | run | N=100 | N=1,000 | N=10,000 | S=10 | S=100 | S=1,000 |")
        p("|---|---|---:|---:|---:|---:|---:|---:|")
        for b in backends:
            rb = {(r["foreign"], r["sources"]): r["_"] for r in proc if r["backend"] == b}
            for what, floor in (("noop", "fnoop"), ("app", "fapp")):
                cells = []
                for k in ((100, 100), (1000, 100), (10000, 100), (1000, 10), (1000, 100), (1000, 1000)):
                    cells.append(f"{ms(rb[k][what])} ({ms(rb[k][floor])})" if k in rb else "–")
                p(f"| {b} | {'no-op' if what == 'noop' else 'apply'} | " + " | ".join(cells) + " |")
        p("")

    if proc:
        p("Linearity check on the module's CPU time (marginal cost per added rule or source over the last 10x "
          "step, against the average cost per unit before it; a + b·n with a ≥ 0 gives marginal ≤ average, "
          f"c·n² gives ~10x more; verdict allows {LINEAR_SLACK}x for noise):")
        p("")
        for line in growth_notes:
            p(f"* {line}")
        p("")

    auto = by("auto")
    if auto:
        p("### backend: auto (median ms)")
        p("")
        p("| backend of the host | foreign N | sources S | auto no-op | fixed no-op | no-op floor | auto apply | fixed apply |")
        p("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in auto:
            p(f"| {r['backend']} | {r['foreign']:,} | {r['sources']:,} | {ms(med(r['auto_noop']))} | "
              f"{ms(med(r['fixed_noop']))} | {ms(med(r['floor_noop']))} | {ms(med(r['auto_apply']))} | "
              f"{ms(med(r['fixed_apply']))} |")
        p("")

    ans = by("ansible")
    if ans:
        p("### 3. End to end through ansible-playbook (median ms, wall clock of `ansible-playbook`)")
        p("")
        p("IPv4 only, host holding N foreign rules; `docker_firewall` task allowing S sources vs the looped "
          "`ansible.builtin.iptables` task (one `-I DOCKER-USER` rule per source with `destination_port`, "
          "then a DROP). Apply = first run on a host without the rules; re-run = the same playbook again "
          "(nothing to change). *Empty* is a playbook whose one task is `debug` (Ansible's own start-up "
          "and teardown). *Task* = the tasks' own wall time, from a timing callback "
          "(bench/callback_plugins/dfwbench_timer.py). Ansible defaults otherwise (no pipelining).")
        p("")
        p("| backend | foreign N | sources S | empty playbook | module apply: playbook (task) | module re-run | "
          "looped apply: playbook (task) | looped re-run | **ratio** playbook | ratio task |")
        p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        gaps, ceilings = {}, {}
        for r in sorted(ans, key=lambda r: (r["backend"], r["sources"])):
            e, m, mn, lp = med(r["empty"]), med(r["module_apply"]), med(r["module_noop"]), med(r["looped_apply"])
            mt, lt = med(r["module_apply_task"]), med(r["looped_apply_task"])
            ln = med(r.get("looped_noop", []))
            e2e, task = lp / m, lt / mt
            gaps.setdefault(r["backend"], []).append((r["sources"], e2e, task))
            ceilings.setdefault(r["backend"], {})[r["sources"]] = lp / e
            p(f"| {r['backend']} | {r['foreign']:,} | {r['sources']:,} | {ms(e)} | {ms(m)} ({ms(mt)}) | {ms(mn)} | "
              f"{ms(lp)} ({ms(lt)}) | {ms(ln)} | {x(e2e)} | {x(task)} |")
        p("")
        at100 = [(b, e2e, task) for b, g in gaps.items() for s, e2e, task in g if s == 100]
        if at100:
            ok = all(t >= LIMIT_ANSIBLE for _, _, t in at100)
            targets.append((f"≥ {LIMIT_ANSIBLE}x faster than the looped ansible.builtin.iptables task at 100 "
                            "rules (task against task)", ok,
                            ", ".join(f"{b}: {x(t)}" for b, _, t in at100)))
            ok = all(e2e >= LIMIT_ANSIBLE for _, e2e, _ in at100)
            targets.append((f"(for reference) ≥ {LIMIT_ANSIBLE}x, whole ansible-playbook runs", ok,
                            ", ".join(f"{b}: {x(e2e)} (Ansible's start-up alone, looped playbook / "
                                      f"empty playbook: {x(ceilings[b][100])})"
                                      for b, e2e, _ in at100)))
        grows = all(all(g[i + 1][1] > g[i][1] and g[i + 1][2] > g[i][2] for i in range(len(g) - 1))
                    for g in (sorted(v) for v in gaps.values()))
        targets.append(("the gap grows with the rule count", grows,
                        "; ".join(f"{b}: " + " → ".join(f"{x(e)} / {x(t)} (S={s})" for s, e, t in sorted(g))
                                  for b, g in gaps.items()) + " (playbook / task)"))

    st = by("startup")
    size = by("size")
    if st or size:
        p("### 4. Binary")
        p("")
        if size:
            b = size[0]["bytes"]
            p(f"* static binary: {b:,} bytes ({b / 1048576:.2f} MiB)")
        for r in st:
            label = "`docker_firewall --version`" if r["what"] == "version" else "`/bin/true` (spawn cost)"
            p(f"* {label}: median {med(r['samples']):.2f} ms over {len(r['samples'])} runs "
              f"(min {min(r['samples']):.2f} ms)")
        p("")

    cmp = by("compare")
    if cmp:
        p("### Binaries compared (median ms; ratio to the floor)")
        p("")
        p("| backend | foreign N | sources S | binary | no-op | ratio | apply | ratio | ratio to read+write floor |")
        p("|---|---:|---:|---|---:|---:|---:|---:|---:|")
        for r in cmp:
            fn, fa = med(r["floor"]["noop"]), med(r["floor"]["apply"])
            fnc, fac = med(r["floor"]["noop_cpu"]), med(r["floor"]["apply_cpu"])
            p(f"| {r['backend']} | {r['foreign']:,} | {r['sources']:,} | floor | {ms(fn)} (CPU {ms(fnc)}) | | "
              f"{ms(fa)} (CPU {ms(fac)}) | | |")
            for b, v in r["bins"].items():
                n, a = med(v["noop"]), med(v["apply"])
                nc, ac = med(v["noop_cpu"]), med(v["apply_cpu"])
                p(f"| | | | {os.path.basename(b)} | {ms(n)} (CPU {ms(nc)}) | {x(n / fn)} (CPU {x(nc / fnc)}) | {ms(a)} (CPU {ms(ac)}) | "
                  f"{x(a / fa)} (CPU {x(ac / fac)}) | {x(a / (fa + fn))} (CPU {x(ac / (fac + fnc))}) |")
        p("")

    if targets:
        p("### Targets")
        p("")
        p("| target | result | figures |")
        p("|---|---|---|")
        for name, ok, detail in targets:
            p(f"| {name} | {yes(ok)} | {detail} |")
        p("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
