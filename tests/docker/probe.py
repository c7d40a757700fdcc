#!/usr/bin/env python3
"""tests/docker/probe.py — continuous probes of published ports, and the windows they show.

    probe.py run LOG KEY=ADDR:PORT...     (run it inside the client's network namespace)
        Every --interval seconds (0.2) starts one HTTP request to each target (GET /cgi-bin/who),
        without waiting for the previous ones: a probe that hangs does not delay the next. Each is
        bounded (--timeout, 1 s, for the connection and again for the answer). Appends one line per
        probe to LOG when it ends:
            <start epoch> <connected epoch or -> <key> <result> [detail]
        result: open (an HTTP answer; detail = the last line, "<container> sees <client>"),
        connected (TCP handshake done, then no answer), refused, timeout, or an errno name.
        Runs until SIGTERM/SIGINT (or --stop-file appears), then waits for the probes in flight.
        IPv6 targets are written KEY=[ADDR]:PORT.

    probe.py window LOG [--keys PREFIX] [--since T] [--until T]
        The longest time a client could connect: over every key, the longest run of probes (in start
        order) that connected (open or connected), measured from the start of the first probe of the
        run to the start of the first probe after it that did not connect (or to --until when none
        did). A single connected probe counts as one interval (0.2 s). Prints
        "<seconds> <key> <from> <to> <probes that connected> <probes>" (seconds 0 and key "-" when no
        probe connected).

    probe.py failures LOG [--keys PREFIX] [--since T] [--until T] [--after-first-success]
                          [--exclude SUBSTRING...]
        Probes that did not connect, one line each; with --after-first-success only those after the
        key's first connected probe in the interval. Exit status 0 when there is none. Also checks that
        every key has a connected probe in the interval (else it prints "never <key>").

Standard library only (Python 3.7+).
"""
import argparse
import asyncio
import errno
import os
import signal
import sys
import time


def parse_target(spec):
    key, rest = spec.split("=", 1)
    if rest.startswith("["):
        addr, port = rest[1:].split("]:", 1)
    else:
        addr, port = rest.rsplit(":", 1)
    return key, addr, int(port)


async def probe_once(key, addr, port, timeout, out):
    t0 = time.time()
    tc = None
    result, detail = None, ""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(addr, port), timeout)
        tc = time.time()
        writer.write(b"GET /cgi-bin/who HTTP/1.0\r\nHost: probe\r\n\r\n")
        data = await asyncio.wait_for(reader.read(65536), timeout)
        body = data.decode("utf-8", "replace").strip().splitlines()
        if data.startswith(b"HTTP/"):
            result, detail = "open", (body[-1] if body else "")
        else:
            result, detail = "connected", "no answer"
    except asyncio.TimeoutError:
        result = "timeout" if tc is None else "connected"
        detail = "" if tc is None else "no answer in time"
    except ConnectionRefusedError:
        result = "refused" if tc is None else "connected"
    except OSError as e:
        if tc is None:
            result = errno.errorcode.get(e.errno, "error%s" % e.errno)
        else:
            result, detail = "connected", errno.errorcode.get(e.errno, str(e.errno))
    finally:
        if writer is not None:
            writer.close()
    tcs = "%.3f" % tc if tc is not None else "-"
    out.write("%.3f %s %s %s %s\n" % (t0, tcs, key, result, detail.replace("\n", " ")))
    out.flush()


async def run(args):
    targets = [parse_target(t) for t in args.targets]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    inflight = {k: set() for k, _, _ in targets}
    with open(args.log, "a", buffering=1) as out:
        if args.ready_file:
            open(args.ready_file, "w").close()
        nxt = time.monotonic()
        while not stop.is_set():
            if args.stop_file and os.path.exists(args.stop_file):
                break
            for key, addr, port in targets:
                if len(inflight[key]) >= args.max_inflight:
                    continue  # never pile up
                task = asyncio.ensure_future(probe_once(key, addr, port, args.timeout, out))
                inflight[key].add(task)
                task.add_done_callback(inflight[key].discard)
            nxt += args.interval
            delay = nxt - time.monotonic()
            if delay < 0:
                nxt = time.monotonic()
                delay = 0
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except asyncio.TimeoutError:
                pass
        pending = [t for s in inflight.values() for t in s]
        if pending:
            await asyncio.wait(pending, timeout=2 * args.timeout + 1)


def load(log, keys, since, until):
    rows = {}
    with open(log) as f:
        for line in f:
            parts = line.split(None, 4)
            if len(parts) < 4:
                continue
            t0 = float(parts[0])
            key, result = parts[2], parts[3]
            if keys and not key.startswith(keys):
                continue
            if since is not None and t0 < since:
                continue
            if until is not None and t0 > until:
                continue
            ok = result in ("open", "connected")
            rows.setdefault(key, []).append((t0, ok, result, parts[4].strip() if len(parts) > 4 else ""))
    for v in rows.values():
        v.sort()
    return rows


def window(args):
    rows = load(args.log, args.keys, args.since, args.until)
    best = (0.0, "-", 0.0, 0.0, 0, 0)
    total = sum(len(v) for v in rows.values())
    for key, probes in rows.items():
        i = 0
        while i < len(probes):
            if not probes[i][1]:
                i += 1
                continue
            j = i
            while j < len(probes) and probes[j][1]:
                j += 1
            start = probes[i][0]
            if j < len(probes):
                end = probes[j][0]
            else:
                end = args.until if args.until is not None else probes[-1][0] + args.interval
            length = max(end - start, args.interval)
            if length > best[0]:
                best = (length, key, start, end, j - i, total)
            i = j
    print("%.2f %s %.3f %.3f %d %d" % (best[0], best[1], best[2], best[3], best[4], total))


def failures(args):
    rows = load(args.log, args.keys, args.since, args.until)
    bad = 0
    for key in sorted(rows):
        probes = rows[key]
        seen = not args.after_first_success
        if any(x in key for x in args.exclude or []):
            continue
        if not any(p[1] for p in probes):
            print("never %s (%d probes, last: %s %s)" % (key, len(probes), probes[-1][2], probes[-1][3]))
            bad += 1
            continue
        for t0, ok, result, detail in probes:
            if ok:
                seen = True
                continue
            if seen:
                print("%.3f %s %s %s" % (t0, key, result, detail))
                bad += 1
    for key in args.expect or []:
        if key not in rows:
            print("never %s (no probe in the interval)" % key)
            bad += 1
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("log")
    r.add_argument("targets", nargs="+")
    r.add_argument("--interval", type=float, default=0.2)
    r.add_argument("--timeout", type=float, default=1.0)
    r.add_argument("--max-inflight", type=int, default=8)
    r.add_argument("--ready-file")
    r.add_argument("--stop-file")
    for name in ("window", "failures"):
        w = sub.add_parser(name)
        w.add_argument("log")
        w.add_argument("--keys", default="")
        w.add_argument("--since", type=float)
        w.add_argument("--until", type=float)
        w.add_argument("--interval", type=float, default=0.2)
        if name == "failures":
            w.add_argument("--after-first-success", action="store_true")
            w.add_argument("--expect", nargs="*")
            w.add_argument("--exclude", nargs="*", help="skip the keys that contain one of these")
    args = ap.parse_args()
    if args.cmd == "run":
        asyncio.run(run(args))
        return 0
    if args.cmd == "window":
        window(args)
        return 0
    return failures(args)


if __name__ == "__main__":
    sys.exit(main())
