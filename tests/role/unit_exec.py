#!/usr/bin/env python3
"""Run a systemd unit's ExecStart the way systemd would, without systemd (tests/role).

    unit_exec.py UNIT_FILE [--run SECONDS] [--ready-timeout SECONDS] [--before-ready CMD]

Only for use inside a throw-away network namespace (tests/role/run.sh and molecule verify call it
there): it refuses to run in the namespace named by DFW_ROLE_OUTER_NETNS (the callers' own) or
without it. It reads ExecStart=, StateDirectory= and CapabilityBoundingSet= from UNIT_FILE, creates the state
directories under /var/lib (the callers cover /var/lib with a throw-away overlay), and starts the command:
with NOTIFY_SOCKET pointing at a datagram socket of its own (Type=notify), and, when setpriv is
available, with the unit's capability bounding set, no inheritable capabilities and no_new_privs (as
systemd would). It waits for READY=1, lets the command run SECONDS more, stops it by its PID with
SIGTERM and waits for it to exit. Prints key=value lines:

    command=...        the command as started
    ready=<seconds>    READY=1 received after that long (or ready=none)
    running=yes|no     still running when SIGTERM was due
    exit=<status>      its exit status after SIGTERM (or exit=timeout: killed with SIGKILL)
    log: ...           its stderr, one line each

Exit status 0 when it became ready, ran, and exited 0 on SIGTERM; 1 otherwise.
"""
import argparse
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def unit_values(path, key):
    """Every value of KEY= in the unit (continuation lines joined), in order."""
    values = []
    with open(path, encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(key + "="):
            values.append(line[len(key) + 1:].strip())
    return values


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("unit")
    ap.add_argument("--run", type=float, default=3.0)
    ap.add_argument("--ready-timeout", type=float, default=60.0)
    args = ap.parse_args()

    # the caller's network namespace (tests/role/run.sh and molecule.sh export it): this must be another
    outer = os.environ.get("DFW_ROLE_OUTER_NETNS", "")
    if not outer or os.readlink("/proc/self/ns/net") == outer:
        print("refusing to run outside a network namespace of its own (DFW_ROLE_OUTER_NETNS)", file=sys.stderr)
        return 2

    execstart = unit_values(args.unit, "ExecStart")
    if len(execstart) != 1:
        print(f"expected one ExecStart=, found {execstart}", file=sys.stderr)
        return 2
    # systemd's prefixes (-, @, :, +, !) are not used by the unit; refuse them rather than guess
    if execstart[0][:1] in "-@:+!":
        print(f"ExecStart= prefix not handled: {execstart[0]}", file=sys.stderr)
        return 2
    argv = shlex.split(execstart[0])

    # StateDirectory=: systemd creates /var/lib/NAME (mode StateDirectoryMode=) before starting
    mode = int((unit_values(args.unit, "StateDirectoryMode") or ["0755"])[-1], 8)
    for name in " ".join(unit_values(args.unit, "StateDirectory")).split():
        os.makedirs(os.path.join("/var/lib", name), mode=mode, exist_ok=True)
        os.chmod(os.path.join("/var/lib", name), mode)

    caps = " ".join(unit_values(args.unit, "CapabilityBoundingSet")).split()
    if caps and shutil.which("setpriv"):
        bounding = ",".join(["-all"] + ["+" + c.lower().removeprefix("cap_") for c in caps])
        argv = ["setpriv", "--bounding-set", bounding, "--inh-caps", "-all", "--no-new-privs", "--"] + argv
    print("command=" + shlex.join(argv), flush=True)

    work = tempfile.mkdtemp(prefix="dfw-unit-exec.")
    sock_path = os.path.join(work, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path)
    log_path = os.path.join(work, "stderr")
    ok = True
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        start = time.monotonic()
        ready = None
        sock.settimeout(0.2)
        while time.monotonic() - start < args.ready_timeout and proc.poll() is None:
            try:
                msg = sock.recv(4096).decode(errors="replace")
            except socket.timeout:
                continue
            if "READY=1" in msg.split("\n"):
                ready = time.monotonic() - start
                break
        print(f"ready={ready:.2f}" if ready is not None else "ready=none", flush=True)
        ok = ready is not None
        if ok:
            time.sleep(args.run)
        running = proc.poll() is None
        print("running=" + ("yes" if running else "no"), flush=True)
        ok = ok and running
        if running:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=10)
            print(f"exit={rc}")
            ok = ok and rc == 0
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            print("exit=timeout")
            ok = False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
        with open(log_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                print("log: " + line.rstrip("\n"))
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
