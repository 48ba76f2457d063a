#!/usr/bin/env python3
# tests/recipes/contention.py — the lock contention acceptance test: N keelctl lock processes
# fight for one lock for a while, their critical sections logged with a monotonic clock must
# never overlap; then a holder is killed -9 and the lock must pass on within its TTL (+margin).
# Run through tests/lib/with_cluster.py (KEEL_TEST_ENDPOINTS). Prints its figures.
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

TTL = 3
MARGIN = 2.0


def log_line(path, text):
    # O_APPEND writes of one short line are atomic: no interleaving between processes.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)


def critical(a):
    """The command run under the lock: log acquire, hold a little, log release."""
    me = f"{os.getpid()} {os.getppid()}"
    log_line(a.log, f"acq {time.monotonic():.6f} {me} {os.environ.get('ETCD_LOCK_KEY', '')}")
    time.sleep(a.hold)
    log_line(a.log, f"rel {time.monotonic():.6f} {me}")
    return 0


def parse(path):
    """[(acq, rel or None, pid, keelctl pid)] in acquisition order."""
    open_ = {}
    out = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) < 4:
                continue
            t, pid, ppid = float(p[1]), int(p[2]), int(p[3])
            if p[0] == "acq":
                open_[pid] = len(out)
                out.append([t, None, pid, ppid])
            elif p[0] == "rel" and pid in open_:
                out[open_.pop(pid)][1] = t
    out.sort(key=lambda x: x[0])
    return out


def overlaps(intervals, end_of_open=None):
    n = 0
    for prev, cur in zip(intervals, intervals[1:]):
        prev_end = prev[1] if prev[1] is not None else end_of_open
        if prev_end is None or cur[0] < prev_end:
            n += 1
            print(f"overlap: {prev} and {cur}", file=sys.stderr)
    return n


def worker(cmd, deadline, results, idx):
    runs = fails = 0
    while time.monotonic() < deadline:
        r = subprocess.run(cmd, capture_output=True, text=True)
        runs += 1
        if r.returncode != 0:
            fails += 1
            print(f"worker {idx}: rc {r.returncode}: {r.stderr.strip()}", file=sys.stderr)
    results[idx] = (runs, fails)


def phase_contend(a, base, log):
    deadline = time.monotonic() + a.seconds
    cmd = base + ["lock", "--ttl", str(TTL), a.name, "--", sys.executable,
                  os.path.abspath(__file__), "--critical", "--log", log, "--hold", "0.01"]
    results = {}
    threads = [threading.Thread(target=worker, args=(cmd, deadline, results, i))
               for i in range(a.n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    iv = parse(log)
    runs = sum(r[0] for r in results.values())
    fails = sum(r[1] for r in results.values())
    unreleased = sum(1 for x in iv if x[1] is None)
    ov = overlaps(iv)
    print(f"contention: {a.n} processes, {a.seconds:.0f} s: {len(iv)} acquisitions "
          f"({runs} keelctl runs, {fails} failed), overlaps {ov}, unreleased {unreleased}")
    return len(iv) > 0 and fails == 0 and ov == 0 and unreleased == 0 and len(iv) == runs


def wait_lines(log, n, timeout):
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        iv = parse(log) if os.path.exists(log) else []
        if len(iv) >= n:
            return iv
        time.sleep(0.01)
    return parse(log) if os.path.exists(log) else []


def phase_kill(a, base, log):
    cmd = base + ["lock", "--ttl", str(TTL), a.name, "--", sys.executable,
                  os.path.abspath(__file__), "--critical", "--log", log, "--hold", "60"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True) for _ in range(a.n)]
    ok = False
    try:
        iv = wait_lines(log, 1, 30)
        if not iv:
            print("kill: nobody acquired the lock", file=sys.stderr)
            return False
        first = iv[0]
        time.sleep(TTL)  # a holder that has been alive for a while (renewed its lease)
        t_kill = time.monotonic()
        os.kill(first[3], signal.SIGKILL)   # keelctl
        os.kill(first[2], signal.SIGKILL)   # and the command it ran
        iv = wait_lines(log, 2, TTL + 30)
        if len(iv) < 2:
            print("kill: nobody took the lock over", file=sys.stderr)
            return False
        handover = iv[1][0] - t_kill
        ov = overlaps(iv, end_of_open=t_kill)
        ok = handover <= TTL + MARGIN and ov == 0 and iv[1][3] != first[3]
        print(f"kill -9 of the holder (ttl {TTL} s): next acquisition after {handover:.3f} s "
              f"(limit {TTL + MARGIN:.1f} s), overlaps {ov}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        # A keelctl running a command waits for it: end the commands too.
        time.sleep(0.2)
        for x in parse(log) if os.path.exists(log) else []:
            try:
                os.kill(x[2], signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keelctl")
    ap.add_argument("-n", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--name", default="contention-lock")
    ap.add_argument("--critical", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--log", help=argparse.SUPPRESS)
    ap.add_argument("--hold", type=float, default=0.01, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.critical:
        return critical(a)
    eps = os.environ.get("KEEL_TEST_ENDPOINTS")
    if not eps or not a.keelctl:
        print("contention: needs --keelctl and KEEL_TEST_ENDPOINTS (with_cluster.py)",
              file=sys.stderr)
        return 77
    print(f"contention: server {os.environ.get('KEEL_TEST_SERVER', '?')}, endpoints {eps}")
    base = [a.keelctl, "--endpoints", eps]
    with tempfile.TemporaryDirectory(prefix="contention-") as d:
        ok1 = phase_contend(a, base, os.path.join(d, "contend.log"))
        a.name += "-kill"
        ok2 = phase_kill(a, base, os.path.join(d, "kill.log"))
    return 0 if ok1 and ok2 else 1


if __name__ == "__main__":
    sys.exit(main())
