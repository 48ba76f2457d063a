#!/usr/bin/env python3
# tests/recipes/interop.py — keelctl lock/elect and etcdctl 3.4 lock/elect on the same names
# against one cluster (KEEL_TEST_ENDPOINTS): they exclude each other both ways, observers see
# each other's leaders, and both print the same messages and exit codes.
# Run through tests/lib/with_cluster.py; exits 77 when etcdctl is not installed.
import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, file=sys.stderr)
    return cond


class Bg:
    """A background process whose stdout lines are read by a thread."""

    def __init__(self, argv, env):
        self.argv = argv
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env)
        self.lines = queue.Queue()
        self.err = []
        threading.Thread(target=self._read, args=(self.p.stdout, self.lines.put),
                         daemon=True).start()
        threading.Thread(target=self._read, args=(self.p.stderr, self.err.append),
                         daemon=True).start()

    @staticmethod
    def _read(f, put):
        for line in f:
            put(line.rstrip("\n"))

    def line(self, timeout):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def interrupt(self, timeout=10):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return None

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


class Tools:
    def __init__(self, keelctl, endpoints):
        self.eps = endpoints
        self.env = dict(os.environ, ETCDCTL_API="3")
        self.cmd = {"keelctl": [keelctl, "--endpoints", endpoints],
                    "etcdctl": ["etcdctl", "--endpoints", endpoints]}
        self.bgs = []

    def bg(self, tool, *args):
        b = Bg(self.cmd[tool] + list(args), self.env)
        self.bgs.append(b)
        return b

    def run(self, tool, *args, timeout=20):
        r = subprocess.run(self.cmd[tool] + list(args), capture_output=True, text=True,
                           env=self.env, timeout=timeout)
        return r.returncode, r.stdout, r.stderr

    def keys(self, prefix):
        rc, out, _ = self.run("etcdctl", "get", "--prefix", "--keys-only", prefix)
        return [k for k in out.split("\n") if k]

    def close(self):
        for b in self.bgs:
            b.stop()


def lock_excludes(t, first, second, name):
    """first holds name; second must wait until first is interrupted."""
    a = t.bg(first, "lock", name)
    ka = a.line(10)
    check(ka is not None and ka.startswith(name + "/"), f"{first} lock printed {ka!r}")
    check(a.line(2) == "", f"{first} lock prints an empty value line")
    b = t.bg(second, "lock", name)
    check(b.line(1.5) is None, f"{second} lock acquired while {first} holds {name}")
    check(len(t.keys(name + "/")) == 2, f"{second} queued its key behind {first}")
    rc = a.interrupt()
    check(rc == 0, f"{first} lock exits 0 on SIGINT (rc {rc}, err {a.err})")
    kb = b.line(10)
    check(kb is not None and kb.startswith(name + "/") and kb != ka,
          f"{second} lock acquired after {first} released ({kb!r})")
    b.line(2)
    rc = b.interrupt()
    check(rc == 0, f"{second} lock exits 0 on SIGINT (rc {rc}, err {b.err})")
    check(t.keys(name + "/") == [], f"no lock key left after {first}/{second}")


def lock_interrupted_while_waiting(t, name):
    holder = t.bg("etcdctl", "lock", name)
    check(holder.line(10) is not None, "etcdctl lock holds")
    w = t.bg("keelctl", "lock", name)
    time.sleep(1)
    check(len(t.keys(name + "/")) == 2, "keelctl queued")
    rc = w.interrupt()
    time.sleep(0.3)
    check(rc == 1, f"keelctl interrupted while waiting exits 1 (rc {rc})")
    check(w.err == ["Error: context canceled"], f"keelctl says context canceled ({w.err})")
    check(len(t.keys(name + "/")) == 1, "keelctl's queued key is removed on interrupt")
    holder.interrupt()


def lock_exec(t, name):
    for tool in ("keelctl", "etcdctl"):
        rc, out, err = t.run(tool, "lock", name, "--", "sh", "-c",
                             'echo "$ETCD_LOCK_KEY"; echo "$ETCD_LOCK_REV"')
        lines = out.split("\n")
        check(rc == 0 and lines[0].startswith(name + "/") and lines[1].isdigit(),
              f"{tool} lock with a command sees ETCD_LOCK_KEY/REV ({rc} {out!r} {err!r})")
    for args in (["sh", "-c", "exit 3"], ["/nonexistent-x"], ["no-such-command-x"],
                 ["sh", "-c", "kill -9 $$"]):
        got = {tool: t.run(tool, "lock", name, "--", *args) for tool in ("keelctl", "etcdctl")}
        check(got["keelctl"][0] == got["etcdctl"][0] and got["keelctl"][2] == got["etcdctl"][2],
              f"lock -- {args}: keelctl {got['keelctl']} etcdctl {got['etcdctl']}")
    check(t.keys(name + "/") == [], "no lock key left after commands")


def lease_of(t, prefix):
    rc, out, _ = t.run("etcdctl", "get", "--prefix", prefix, "-w", "json")
    kvs = json.loads(out).get("kvs", []) if rc == 0 else []
    return kvs[0]["lease"] if kvs else None


def session_expiry(t, name):
    """Revoking the holder's lease ends lock (and elect) as etcdctl does."""
    got = {}
    for tool in ("keelctl", "etcdctl"):
        for cmd in (["lock", "--ttl", "3", name], ["elect", name, "v"]):
            p = t.bg(tool, *cmd)
            p.line(10)
            lease = lease_of(t, name + "/")
            check(lease is not None, f"{tool} {cmd[0]}: its key has a lease")
            if lease is not None:
                t.run("etcdctl", "lease", "revoke", "%x" % lease)
            try:
                rc = p.p.wait(30)
            except subprocess.TimeoutExpired:
                rc = None
            time.sleep(0.2)
            got[(tool, cmd[0])] = (rc, p.err)
    for cmd in ("lock", "elect"):
        k, e = got[("keelctl", cmd)], got[("etcdctl", cmd)]
        check(k == e and k[0] == 1, f"{cmd} after its lease is revoked: keelctl {k} etcdctl {e}")


def bad_args(t):
    for args in (["lock"], ["elect"], ["elect", "x"], ["elect", "-l", "x", "y"],
                 ["elect", "a", "b", "c"]):
        k = t.run("keelctl", *args)
        e = t.run("etcdctl", *args)
        check(k[0] == e[0] and k[2] == e[2], f"{args}: keelctl {k} etcdctl {e}")


def elect(t, name):
    kobs = t.bg("keelctl", "elect", "-l", name)
    eobs = t.bg("etcdctl", "elect", "-l", name)
    time.sleep(1)
    ec = t.bg("etcdctl", "elect", name, "p1")
    key1 = ec.line(10)
    check(key1 is not None and key1.startswith(name + "/"), f"etcdctl elected ({key1!r})")
    check(ec.line(2) == "p1", "etcdctl campaign prints its value")
    for who, o in (("keelctl", kobs), ("etcdctl", eobs)):
        got = (o.line(10), o.line(2))
        check(got == (key1, "p1"), f"{who} -l sees etcdctl's leader: {got}")
    kc = t.bg("keelctl", "elect", name, "p2")
    check(kc.line(1.5) is None, "keelctl campaign waits behind etcdctl's leader")
    check(ec.interrupt() == 0, "etcdctl campaign resigns on SIGINT")
    key2 = kc.line(10)
    check(key2 is not None and key2.startswith(name + "/") and key2 != key1,
          f"keelctl elected after etcdctl resigned ({key2!r})")
    check(kc.line(2) == "p2", "keelctl campaign prints its value")
    for who, o in (("keelctl", kobs), ("etcdctl", eobs)):
        got = (o.line(10), o.line(2))
        check(got == (key2, "p2"), f"{who} -l sees keelctl's leader: {got}")
    rc = kc.interrupt()
    check(rc == 0, f"keelctl campaign exits 0 on SIGINT (rc {rc}, {kc.err})")
    check(t.keys(name + "/") == [], "no election key left")
    check(kobs.interrupt() == 0, "keelctl -l exits 0 on SIGINT")
    eobs.interrupt()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keelctl", required=True)
    a = ap.parse_args()
    eps = os.environ.get("KEEL_TEST_ENDPOINTS")
    if not eps:
        print("interop: KEEL_TEST_ENDPOINTS not set (run through with_cluster.py)",
              file=sys.stderr)
        return 77
    if shutil.which("etcdctl") is None:
        print("interop: etcdctl is not installed: skipped", file=sys.stderr)
        return 77
    t = Tools(a.keelctl, eps)
    try:
        lock_excludes(t, "keelctl", "etcdctl", "il1")
        lock_excludes(t, "etcdctl", "keelctl", "il2")
        lock_interrupted_while_waiting(t, "il3")
        lock_exec(t, "il4")
        bad_args(t)
        session_expiry(t, "il5")
        elect(t, "ie1")
    finally:
        t.close()
    if FAILS:
        print(f"interop: {len(FAILS)} failure(s)", file=sys.stderr)
        return 1
    print("interop: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
