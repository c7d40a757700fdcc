#!/usr/bin/env python3
"""Benchmark driver for bench/run.sh. Every subcommand except `startup` must run inside a
network namespace made for it (run.sh uses `ip netns exec dfwbench-...`): it loads, flushes and
rewrites that namespace's iptables tables. It refuses to run in the machine's own namespace.

  measure.py process  --backend B --bin BIN --work DIR --sizes 100,1000 --sources 10,100 --reps 5
  measure.py auto     --backend B --bin BIN --work DIR --size 10000 --nsources 100 --reps 5
  measure.py ansible  --backend B --bin BIN --work DIR --size 1000 --sources 10,100 --reps 3 --venv V
  measure.py startup  --bin BIN --reps 200
  measure.py compare  --backend B --bins BIN1,BIN2 --work DIR --sizes 10000 --sources 100 --reps 7

Each prints one JSON object per measurement on stdout (times in milliseconds; every sample is
kept, the report takes medians). Every time is taken twice: wall clock (key) and CPU time, user +
system of the process and everything it ran (key_cpu, from RUSAGE_CHILDREN). On a loaded machine
the CPU time is the steadier figure: a run that lasts longer is preempted more, so wall-clock
ratios between short and long runs drift with the load; CPU time does not.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_foreign import generate  # noqa: E402

SBIN = "/usr/sbin"
FAMILIES = {"ipv4": ("iptables", 4), "ipv6": ("ip6tables", 6)}


def emit(**record):
    print(json.dumps(record), flush=True)


def die(msg):
    sys.exit(f"measure.py: {msg}")


def ensure_private_netns():
    """Refuse to touch the machine's own firewall: we must be inside the namespace named by
    DFWBENCH_NETNS (a dfwbench-* namespace made by run.sh), i.e. under `ip netns exec` of it."""
    name = os.environ.get("DFWBENCH_NETNS", "")
    if not name.startswith("dfwbench-"):
        die("DFWBENCH_NETNS must name the dfwbench-* namespace this runs in (see run.sh)")
    try:
        ours = os.stat("/proc/self/ns/net").st_ino
        theirs = os.stat(f"/run/netns/{name}").st_ino
    except OSError as e:
        die(f"cannot check the network namespace: {e}")
    if ours != theirs:
        die(f"not inside network namespace {name}; run under `ip netns exec {name}`")


def tool(family, backend, what):
    return os.path.join(SBIN, f"{FAMILIES[family][0]}-{backend}-{what}")


class T:
    """A measured time: wall clock and CPU (ms). Adds up."""

    def __init__(self, wall=0.0, cpu=0.0):
        self.wall, self.cpu = wall, cpu

    def __add__(self, other):
        return T(self.wall + other.wall, self.cpu + other.cpu)


def _children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * 1000


def run(argv, stdin_text=None, env=None, check=True):
    """-> (T, stdout text). The clock covers spawn, the child's whole run and reading its output
    through a pipe (as the module reads iptables-save); decoding happens after. CPU time covers the
    child and every process it ran and waited for."""
    data = stdin_text.encode() if stdin_text is not None else None
    c0 = _children_cpu()
    t0 = time.perf_counter()
    p = subprocess.run(argv, input=data, stdin=None if data is not None else subprocess.DEVNULL,
                       capture_output=True, env=env)
    wall = (time.perf_counter() - t0) * 1000
    cpu = _children_cpu() - c0
    if check and p.returncode != 0:
        die(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.decode(errors='replace').strip()[:2000]}")
    return T(wall, cpu), p.stdout.decode(errors="replace")


class Rec(dict):
    """Samples by key: key -> wall-clock ms, key_cpu -> CPU ms."""

    def add(self, key, t):
        self.setdefault(key, []).append(t.wall)
        self.setdefault(f"{key}_cpu", []).append(t.cpu)


class Host:
    """The benchmark namespace's firewall on one backend: a baseline of foreign rules per family."""

    def __init__(self, backend, work):
        self.backend, self.work = backend, work
        self.baseline = {}

    def load_baseline(self, n):
        for family, (_, fam) in FAMILIES.items():
            text = generate(n, fam)
            path = os.path.join(self.work, f"baseline.{n}.{family}")
            with open(path, "w") as f:
                f.write(text)
            self.baseline[family] = text
        self.reset()
        for family in FAMILIES:
            _, out = run([tool(family, self.backend, "save")])
            got = sum(1 for line in out.splitlines() if line.startswith("-A "))
            if got != n:
                die(f"{family}: baseline loaded {got} rules, wanted {n}")

    def reset(self):
        """Back to the baseline (full restore: flushes the tables it names, which are all the module
        writes to with strategy docker_user). Untimed."""
        for family, text in self.baseline.items():
            run([tool(family, self.backend, "restore"), "--wait"], text)

    def save_all(self):
        """The no-op floor: one iptables-save per family. -> (total T, {family: T})"""
        parts = {f: run([tool(f, self.backend, "save")])[0] for f in FAMILIES}
        return sum(parts.values(), T()), parts

    def restore_noflush(self, inputs):
        """The applying floor: the module's own restore input, one --noflush --wait per family."""
        parts = {}
        for family, text in inputs.items():
            if text:
                parts[family] = run([tool(family, self.backend, "restore"), "--noflush", "--wait"], text)[0]
        return sum(parts.values(), T()), parts


def sources(count):
    """count IPv4 and count IPv6 sources (documentation / CGNAT ranges), so each family gets count."""
    v4 = [f"100.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}" for i in range(1, count + 1)]
    v6 = [f"2001:db8::{i:x}" for i in range(1, count + 1)]
    return v4, v6


def module_args(backend, work, allow_sources, families=("ipv4", "ipv6")):
    return {
        "state": "present",
        "families": list(families),
        "backend": backend,
        "external_interfaces": ["eth0"],
        "strategy": "docker_user",
        "ingress": {"default": "drop",
                    "allow": [{"ports": [8080], "proto": "tcp", "sources": allow_sources,
                               "comment": "bench"}]},
        # never /etc/iptables: no persistence, and the paths point into the work dir anyway
        "persist": False,
        "rules_v4": os.path.join(work, "rules.v4"),
        "rules_v6": os.path.join(work, "rules.v6"),
        "_ansible_check_mode": False,
        "_ansible_diff": False,
    }


class Module:
    def __init__(self, binary, work, args, tag):
        self.binary = binary
        self.args_path = os.path.join(work, f"args.{tag}.json")
        with open(self.args_path, "w") as f:
            json.dump(args, f)

    def run(self, expect_changed, env=None):
        """-> (T, result)"""
        t, out = run([self.binary, self.args_path], env=env)
        try:
            result = json.loads(out)
        except json.JSONDecodeError:
            die(f"module printed no JSON: {out[:500]}")
        if result.get("failed"):
            die(f"{self.binary} failed: {result.get('msg')}")
        if result.get("changed") != expect_changed:
            die(f"{self.binary}: changed={result.get('changed')}, expected {expect_changed}: {result.get('msg')}; "
                f"plan: {json.dumps(result.get('plan'))[:1500]}")
        return t, result


def capture_restore_input(host, module, work):
    """Runs the module once with wrappers first in PATH that tee the restore input to files; the
    module looks its tools up in PATH first. -> {family: restore input text}"""
    wrap = os.path.join(work, "wrap")
    os.makedirs(wrap, exist_ok=True)
    files = {}
    for family in FAMILIES:
        real = tool(family, host.backend, "restore")
        files[family] = os.path.join(work, f"restore-input.{family}")
        if os.path.exists(files[family]):
            os.remove(files[family])
        script = os.path.join(wrap, os.path.basename(real))
        with open(script, "w") as f:
            f.write(f'#!/bin/sh\ntee "{files[family]}" | "{real}" "$@"\n')
        os.chmod(script, 0o755)
    env = dict(os.environ, PATH=wrap + ":" + os.environ.get("PATH", ""))
    host.reset()
    module.run(True, env=env)
    inputs = {}
    for family, path in files.items():
        inputs[family] = open(path).read() if os.path.exists(path) else ""
    if not any(inputs.values()):
        die("the module ran no iptables-restore through the wrappers")
    # Sanity: the captured input alone brings the host to the state the module wants.
    host.reset()
    host.restore_noflush(inputs)
    module.run(False)
    return inputs


def cmd_process(a):
    host = Host(a.backend, a.work)
    for n in a.sizes:
        host.load_baseline(n)
        for s in a.sources:
            v4, v6 = sources(s)
            module = Module(a.bin, a.work, module_args(a.backend, a.work, v4 + v6), f"{n}.{s}")
            inputs = capture_restore_input(host, module, a.work)
            rec = Rec()
            started = time.monotonic()
            rep = 0
            # at least --reps rounds, more (up to 4x) while the cell has taken under --min-seconds:
            # cheap cells get more samples, so their medians are as steady as the expensive ones'
            while rep < a.reps or (rep < 4 * a.reps and time.monotonic() - started < a.min_seconds):
                rep += 1
                # interleaved, so that a burst of load from elsewhere hits module and floor alike
                host.reset()
                t, parts = host.restore_noflush(inputs)
                rec.add("floor_apply", t)
                for f, v in parts.items():
                    rec.add(f"restore_{f}", v)
                host.reset()
                rec.add("module_apply", module.run(True)[0])
                rec.add("module_noop", module.run(False)[0])
                t, parts = host.save_all()
                rec.add("floor_noop", t)
                for f, v in parts.items():
                    rec.add(f"save_{f}", v)
            emit(kind="process", backend=a.backend, foreign=n, sources=s, samples=rep,
                 restore_lines={f: t.count("\n") for f, t in inputs.items()}, **rec)
    host.reset()


def cmd_auto(a):
    host = Host(a.backend, a.work)
    host.load_baseline(a.size)
    v4, v6 = sources(a.nsources)
    fixed = Module(a.bin, a.work, module_args(a.backend, a.work, v4 + v6), "fixed")
    auto = Module(a.bin, a.work, module_args("auto", a.work, v4 + v6), "auto")
    rec = Rec()
    for _ in range(a.reps):
        host.reset()
        t, result = auto.run(True)
        if result.get("backend") != a.backend:
            die(f"auto chose {result.get('backend')}, the host's rules are in {a.backend}")
        rec.add("auto_apply", t)
        rec.add("auto_noop", auto.run(False)[0])
        host.reset()
        rec.add("fixed_apply", fixed.run(True)[0])
        rec.add("fixed_noop", fixed.run(False)[0])
        rec.add("floor_noop", host.save_all()[0])
    emit(kind="auto", backend=a.backend, foreign=a.size, sources=a.nsources, **rec)
    host.reset()


ANSIBLE_CFG = """[defaults]
gather_facts = false
retry_files_enabled = false
nocolor = true
host_key_checking = false
interpreter_python = {python}
local_tmp = {work}/ansible-local
remote_tmp = {work}/ansible-remote
"""

PLAY_EMPTY = """- hosts: all
  gather_facts: false
  tasks:
    - name: nothing (an action plugin, runs no module on the host)
      ansible.builtin.debug:
        msg: start-up only
"""

PLAY_MODULE = """- hosts: all
  gather_facts: false
  tasks:
    - name: docker_firewall, one task
      docker_firewall:
        backend: "{{ backend }}"
        families: [ipv4]
        external_interfaces: [eth0]
        strategy: docker_user
        ingress:
          default: drop
          allow:
            - ports: [8080]
              proto: tcp
              sources: "{{ sources }}"
        persist: false
        rules_v4: "{{ work }}/rules.v4"
        rules_v6: "{{ work }}/rules.v6"
"""

# The same policy as close as ansible.builtin.iptables can write it: one rule per source at the
# top of DOCKER-USER (inserted in order, so the DROP lands after them and before Docker's RETURN).
PLAY_LOOPED = """- hosts: all
  gather_facts: false
  tasks:
    - name: one rule per allowed source
      ansible.builtin.iptables:
        chain: DOCKER-USER
        in_interface: eth0
        protocol: tcp
        source: "{{ item }}"
        destination_port: "8080"
        jump: RETURN
        action: insert
        rule_num: "{{ idx + 1 }}"
        comment: bench
      loop: "{{ sources }}"
      loop_control:
        index_var: idx
    - name: then drop the rest coming in on eth0
      ansible.builtin.iptables:
        chain: DOCKER-USER
        in_interface: eth0
        jump: DROP
        action: insert
        rule_num: "{{ sources | length + 1 }}"
        comment: bench
"""


def cmd_ansible(a):
    host = Host(a.backend, a.work)
    host.load_baseline(a.size)
    adir = os.path.join(a.work, "ansible")
    lib = os.path.join(adir, "library")
    binp = os.path.join(adir, "bin")
    for d in (lib, binp):
        os.makedirs(d, exist_ok=True)
    shutil.copy(a.bin, os.path.join(lib, "docker_firewall"))
    # ansible.builtin.iptables runs the first `iptables` in PATH: make it the backend under test
    for name, target in (("iptables", f"iptables-{a.backend}"), ("ip6tables", f"ip6tables-{a.backend}")):
        link = os.path.join(binp, name)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.join(SBIN, target), link)
    python = os.path.join(a.venv, "bin", "python")
    with open(os.path.join(adir, "ansible.cfg"), "w") as f:
        f.write(ANSIBLE_CFG.format(python=python, work=adir))
    plays = {}
    for name, text in (("empty", PLAY_EMPTY), ("module", PLAY_MODULE), ("looped", PLAY_LOOPED)):
        plays[name] = os.path.join(adir, f"{name}.yml")
        with open(plays[name], "w") as f:
            f.write(text)
    times_file = os.path.join(adir, "task-times.json")
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(adir, "ansible.cfg"), ANSIBLE_LIBRARY=lib,
               PATH=binp + ":" + os.path.join(a.venv, "bin") + ":" + os.environ.get("PATH", ""),
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="dfwbench_timer", DFWBENCH_TIMES=times_file,
               ANSIBLE_FORCE_COLOR="0")

    def playbook(play, s):
        v4, _ = sources(s)
        varfile = os.path.join(adir, f"vars.{s}.json")
        with open(varfile, "w") as f:
            json.dump({"sources": v4, "backend": a.backend, "work": adir}, f)
        argv = [os.path.join(a.venv, "bin", "ansible-playbook"), "-i", "localhost,", "-c", "local",
                "-e", f"@{varfile}", plays[play]]
        if os.path.exists(times_file):
            os.remove(times_file)
        t, out = run(argv, env=env)
        if "failed=0" not in out:
            die(f"ansible-playbook {play} failed:\n{out[-3000:]}")
        with open(times_file) as f:
            task_ms = sum(x["ms"] for x in json.load(f))
        return t, task_ms

    def docker_user_rules():
        _, out = run([tool("ipv4", a.backend, "save"), "-t", "filter"])
        return [line for line in out.splitlines() if line.startswith("-A DOCKER-USER ")]

    for s in a.sources:
        rec = Rec()

        def timed(key, play):
            t, task = playbook(play, s)
            rec.add(key, t)
            rec.setdefault(f"{key}_task", []).append(task)

        for rep in range(a.reps):
            timed("empty", "empty")
            host.reset()
            timed("module_apply", "module")
            timed("module_noop", "module")
            host.reset()
            timed("looped_apply", "looped")
            if rep == 0:
                got = len(docker_user_rules())
                if got != s + 2:  # s RETURNs + DROP + Docker's own RETURN
                    die(f"looped iptables left {got} rules in DOCKER-USER, expected {s + 2}")
            if rep < a.looped_noop_reps:
                timed("looped_noop", "looped")
        emit(kind="ansible", backend=a.backend, foreign=a.size, sources=s, **rec)
    host.reset()


def cmd_compare(a):
    """The same cells for several binaries (e.g. before/after a change), interleaved run by run."""
    host = Host(a.backend, a.work)
    for n in a.sizes:
        host.load_baseline(n)
        for s in a.sources:
            v4, v6 = sources(s)
            args = module_args(a.backend, a.work, v4 + v6)
            mods = [(b, Module(b, a.work, args, f"cmp{i}.{n}.{s}")) for i, b in enumerate(a.bins)]
            rec = {b: Rec() for b in a.bins}
            floor = Rec()
            inputs = capture_restore_input(host, mods[0][1], a.work)
            for _ in range(a.reps):
                for b, m in mods:
                    host.reset()
                    rec[b].add("apply", m.run(True)[0])
                    rec[b].add("noop", m.run(False)[0])
                floor.add("noop", host.save_all()[0])
                host.reset()
                floor.add("apply", host.restore_noflush(inputs)[0])
            emit(kind="compare", backend=a.backend, foreign=n, sources=s, bins=rec, floor=floor)
    host.reset()


def cmd_startup(a):
    for argv, key in (([a.bin, "--version"], "version"), (["/bin/true"], "true")):
        samples = [run(argv)[0] for _ in range(a.reps)]
        emit(kind="startup", what=key, samples=[t.wall for t in samples], cpu=[t.cpu for t in samples])
    emit(kind="size", bytes=os.path.getsize(a.bin))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    for name in ("process", "auto", "ansible", "startup", "compare"):
        q = sub.add_parser(name)
        if name == "compare":
            q.add_argument("--bins", type=lambda v: v.split(","), required=True)
        else:
            q.add_argument("--bin", required=True)
        q.add_argument("--reps", type=int, default=5)
        if name != "startup":
            q.add_argument("--backend", required=True, choices=["legacy", "nft"])
            q.add_argument("--work", required=True)
        if name in ("process", "compare"):
            q.add_argument("--sizes", type=ints, default=[100, 1000, 10000])
            q.add_argument("--sources", type=ints, default=[10, 100, 1000])
            q.add_argument("--min-seconds", type=float, default=4.0)  # process only
        if name == "auto":
            q.add_argument("--size", type=int, default=10000)
            q.add_argument("--nsources", type=int, default=100)
        if name == "ansible":
            q.add_argument("--size", type=int, default=1000)
            q.add_argument("--sources", type=ints, default=[10, 100])
            q.add_argument("--venv", required=True)
            q.add_argument("--looped-noop-reps", type=int, default=0,
                           help="also time a second (converged) looped run this many times; slow")
    a = p.parse_args()
    if a.cmd != "startup":
        ensure_private_netns()
        os.makedirs(a.work, exist_ok=True)
    {"process": cmd_process, "auto": cmd_auto, "ansible": cmd_ansible, "startup": cmd_startup,
     "compare": cmd_compare}[a.cmd](a)


if __name__ == "__main__":
    main()
