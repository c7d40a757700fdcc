#!/usr/bin/env python3
"""tests/hostfw/probe.py - continuous TCP probes and the windows they saw (tests/hostfw/run.sh).

  probe.py run OUT STOPFILE INTERVAL TIMEOUT KEY=ADDR:PORT...
      Every INTERVAL seconds, start one connection attempt per KEY (each bounded by TIMEOUT
      seconds, so a dropped SYN is never retransmitted and a late answer is never counted), until
      STOPFILE exists or SIGTERM. A connection that is accepted sends "GET /cgi-bin/who" and keeps
      the first line of the body (busybox httpd's CGI says who the container saw). One line per
      attempt in OUT: "KEY START END RESULT [DETAIL]" with RESULT open|refused|timeout|error.
      Attempts start on a fixed schedule, whatever earlier attempts are doing.

  probe.py report OUT open|closed KEY...
      For each KEY: attempts, how many had the given outcome (open: connected; closed: anything
      else), and the longest run of consecutive such attempts, as the time from the start of its
      first attempt to the start of the next attempt with the other outcome (the end of the
      probing when none came). Prints one line per KEY:
      "KEY attempts=N open|closed=N longest=SECONDS [to-the-end]" and a last line "max SECONDS".
"""
import asyncio
import errno
import os
import signal
import socket
import sys
import time


async def attempt(key, addr, port, timeout, out):
    start = time.time()
    result, detail = "error", ""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(addr, port, family=family), timeout)
        result = "open"
        try:
            writer.write(b"GET /cgi-bin/who HTTP/1.0\r\n\r\n")
            body = await asyncio.wait_for(reader.read(65536), 1.0)
            while len(body) < 65536:
                more = await asyncio.wait_for(reader.read(65536), 1.0)
                if not more:
                    break
                body += more
            lines = [x for x in body.decode("utf-8", "replace").splitlines() if x.strip()]
            detail = lines[-1] if lines else "(no answer)"
        except (asyncio.TimeoutError, OSError):
            detail = "(connected, no answer)"
    except asyncio.TimeoutError:
        result = "timeout"
    except ConnectionRefusedError:
        result = "refused"
    except OSError as e:
        detail = errno.errorcode.get(e.errno, "") if e.errno else str(e)
    finally:
        if writer is not None:
            writer.close()
    end = time.time()
    out.write(f"{key} {start:.3f} {end:.3f} {result} {detail}".rstrip() + "\n")
    out.flush()


async def run(path, stopfile, interval, timeout, specs):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = set()
    with open(path, "a", encoding="utf-8") as out:
        nxt = time.monotonic()
        while not stop.is_set() and not os.path.exists(stopfile):
            for key, addr, port in specs:
                t = asyncio.ensure_future(attempt(key, addr, port, timeout, out))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            nxt += interval
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, nxt - time.monotonic()))
            except asyncio.TimeoutError:
                pass
        if tasks:
            await asyncio.wait(tasks, timeout=timeout + 2)


def report(path, outcome, keys):
    rows = {k: [] for k in keys}
    with open(path, encoding="utf-8") as f:
        for line in f:
            p = line.split(None, 4)
            if len(p) >= 4 and p[0] in rows:
                rows[p[0]].append((float(p[1]), float(p[2]), p[3]))
    worst = 0.0
    for k in keys:
        r = sorted(rows[k])
        n_open, longest, first, still = 0, 0.0, None, False
        for start, _end, res in r:
            if (res == "open") == (outcome == "open"):
                n_open += 1
                if first is None:
                    first = start
            elif first is not None:
                longest = max(longest, start - first)
                first = None
        if first is not None:
            longest = max(longest, r[-1][1] - first)
            still = True
        worst = max(worst, longest)
        print(f"{k} attempts={len(r)} {outcome}={n_open} longest={longest:.2f}" + (" to-the-end" if still else ""))
    print(f"max {worst:.2f}")


def main(argv):
    if len(argv) >= 6 and argv[1] == "run":
        specs = []
        for s in argv[6:]:
            key, rest = s.split("=", 1)
            addr, port = rest.rsplit(":", 1)
            specs.append((key, addr.strip("[]"), int(port)))
        asyncio.run(run(argv[2], argv[3], float(argv[4]), float(argv[5]), specs))
        return 0
    if len(argv) >= 4 and argv[1] == "report" and argv[3] in ("open", "closed"):
        report(argv[2], argv[3], argv[4:])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
