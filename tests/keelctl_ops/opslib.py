# tests/keelctl_ops/opslib.py — what the keelctl_ops tests share: running keelctl and etcdctl
# side by side, normalising what legitimately differs (ids, timings), and collecting failures.
# It starts no server itself except through tests/lib/cluster.py and keeld_proc() below,
# and every process it starts is stopped on exit.
import atexit
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from cluster import Cluster  # noqa: E402,F401

_procs = []


def _kill_all():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_kill_all)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))


class Result:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err

    def __repr__(self):
        return f"rc={self.rc}\n--- stdout\n{self.out}--- stderr\n{self.err}"


def run(argv, env=None, timeout=60):
    e = dict(os.environ)
    e["ETCDCTL_API"] = "3"
    for k in list(e):
        if (k.startswith("ETCDCTL_") and k != "ETCDCTL_API" or k.startswith("KEELCTL_") or
                k.startswith("KEEL_CHECK_")):
            del e[k]
    if env:
        e.update(env)
    p = subprocess.run(argv, capture_output=True, env=e, timeout=timeout)
    dec = lambda b: b.decode("utf-8", "surrogateescape")  # noqa: E731
    return Result(p.returncode, dec(p.stdout), dec(p.stderr))


def strip_zap(text):
    """etcdctl's zap log lines (JSON with timestamps and client uuids) are compared out."""
    return "".join(l for l in text.splitlines(True) if not l.startswith('{"level"'))


DUR = re.compile(r"\b\d+(\.\d+)?(ns|µs|ms|s|m|h)(\d+(\.\d+)?(ms|s|m))*\b")


def norm_durations(text):
    """Go durations to DUR, then table padding collapsed (widths follow the durations)."""
    text = DUR.sub("DUR", text)
    text = re.sub(r" +", " ", text)
    return re.sub(r"-+", "-", text)


def sorted_lines(text):
    return "".join(sorted(text.splitlines(True)))


def norm_health(s):
    """Health rows: latencies out, and in endpoint order (etcdctl checks the endpoints
    concurrently and prints them as they finish)."""
    if s.startswith("["):
        try:
            rows = json.loads(s)
            for r in rows:
                r["took"] = "DUR"
            return json.dumps(sorted(rows, key=lambda r: r["endpoint"]))
        except ValueError:
            return s
    return sorted_lines(norm_durations(s))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Checker:
    def __init__(self, keelctl, etcdctl="etcdctl"):
        self.keelctl, self.etcdctl = keelctl, etcdctl
        self.failures = []
        self.passed = 0

    def fail(self, name, why):
        self.failures.append(name)
        print(f"FAIL {name}: {why}", flush=True)

    def ok(self, name):
        self.passed += 1
        print(f"ok   {name}", flush=True)

    def check(self, name, cond, why=""):
        if cond:
            self.ok(name)
        else:
            self.fail(name, why)
        return cond

    def both(self, eps, *args, env=None):
        e = run([self.etcdctl, "--endpoints=" + eps] + list(args), env=env)
        k = run([self.keelctl, "--endpoints=" + eps] + list(args), env=env)
        e.err = strip_zap(e.err)
        k.err = strip_zap(k.err)  # keelctl may imitate them; their timestamps differ
        return e, k

    def same(self, name, e, k, norm=None):
        """rc, stdout and stderr equal (after norm, applied to both)."""
        n = norm or (lambda s: s)
        if (e.rc, n(e.out), n(e.err)) == (k.rc, n(k.out), n(k.err)):
            self.ok(name)
            return True
        self.fail(name, f"\n=== etcdctl {e!r}\n=== keelctl {k!r}")
        return False

    def compare(self, name, eps, *args, norm=None, env=None):
        e, k = self.both(eps, *args, env=env)
        return self.same(name, e, k, norm)

    def finish(self):
        print(f"{self.passed} passed, {len(self.failures)} failed", flush=True)
        if self.failures:
            print("failed: " + ", ".join(self.failures), flush=True)
            return 1
        return 0


def keeld_proc(keeld, data_dir, name, initial_cluster, peer_port, client_port, log_path,
               extra=()):
    """A keeld member started by hand (restored data dirs); stopped at exit."""
    peer = f"http://127.0.0.1:{peer_port}"
    client = f"http://127.0.0.1:{client_port}"
    argv = [keeld, "--data-dir", data_dir, "--name", name,
            "--initial-cluster", initial_cluster,
            "--initial-advertise-peer-urls", peer, "--listen-peer-urls", peer,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--heartbeat-interval", "50", "--election-timeout", "500"] + list(extra)
    log = open(log_path, "w")
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    _procs.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def sanitizer_report(log_path):
    """The first line of an ASan/LSan/UBSan report in a log, or None."""
    try:
        text = open(log_path, errors="replace").read()
    except OSError:
        return None
    m = re.search(r"^.*(AddressSanitizer|LeakSanitizer|runtime error:).*$", text, re.M)
    return m.group(0) if m else None


def wait_for(fn, timeout=20.0, step=0.2):
    end = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > end:
            return v
        time.sleep(step)
