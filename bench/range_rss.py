#!/usr/bin/env python3
# bench/range_rss.py — the memory a server spends answering one range over every key of a
# large store: keeld (one or more builds) and etcd 3.4, one member each, side by side.
# Starts and stops its own servers on free ports; never touches anything outside a temp dir.
"""Peak RSS of one whole-store range, keeld vs etcd 3.4.

For each server: a fresh one-member cluster (tests/lib/cluster.py), N keys loaded (etcd's
`benchmark put --sequential-keys`, or etcdctl txns of 128 puts when the tool is absent),
then one `etcdctl get "" --prefix -w protobuf` whose output goes to a file. Reported per
server: VmHWM (peak RSS) before and after the range (VmHWM is reset to the current RSS
first through /proc/PID/clear_refs, so loading's own peak is not in it; the peak of the
load is shown apart) and the difference, the peak RssAnon
seen while it ran (sampled every 10 ms: the answer's heap, without LMDB's or bbolt's file
pages), RSS right after, the range's wall time and the answer's size. The answer is
decoded and checked: every key once, in order, with its value; count = N, more = false.

    bench/range_rss.py --keeld new=build/server/keeld --keeld old=/tmp/base/keeld
    bench/range_rss.py --smoke --keeld build/server/keeld --etcd none     (the 'bench' test)

--smoke: 20,000 keys, keeld only unless --etcd is given, plus limit / count-only /
keys-only ranges checked against what was loaded; exits non-zero on any wrong answer.
"""

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
from cluster import Cluster  # noqa: E402

TXN_OPS = 128       # etcd's default --max-txn-ops


class Wrong(Exception):
    pass


# ---- protobuf, just enough of RangeResponse --------------------------------------------

def varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7f) << s
        s += 7
        if c < 0x80:
            return v, i


def fields(b, i=0, end=None):
    """(field number, wire type, value) of a message; bytes fields as (start, end)."""
    end = len(b) if end is None else end
    while i < end:
        tag, i = varint(b, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 2:
            n, i = varint(b, i)
            v = (i, i + n)
            i += n
        else:
            raise Wrong("wire type %d in a RangeResponse" % wt)
        yield num, wt, v
    if i != end:
        raise Wrong("message overruns its end")


def decode_range(b, want_kvs=True):
    """{'revision', 'count', 'more', 'kvs': [(key, value, create, mod, version, lease)]}."""
    out = {"revision": 0, "count": 0, "more": False, "kvs": [], "n_kvs": 0}
    for num, _, v in fields(b):
        if num == 1:
            for hn, _, hv in fields(b, *v):
                if hn == 3:
                    out["revision"] = hv
        elif num == 2:
            out["n_kvs"] += 1
            if want_kvs:
                kv = {1: b"", 2: 0, 3: 0, 4: 0, 5: b"", 6: 0}
                for kn, kwt, kval in fields(b, *v):
                    kv[kn] = bytes(b[kval[0]:kval[1]]) if kwt == 2 else kval
                out["kvs"].append((kv[1], kv[5], kv[2], kv[3], kv[4], kv[6]))
        elif num == 3:
            out["more"] = bool(v)
        elif num == 4:
            out["count"] = v
    return out


# ---- the keys ---------------------------------------------------------------------------

def bench_key(i, size):
    """The key etcd's benchmark put --sequential-keys writes for i: Go's PutVarint
    (zig-zag) in a zeroed buffer of size bytes."""
    u = i << 1
    k = bytearray(size)
    j = 0
    while u >= 0x80:
        k[j] = (u & 0x7f) | 0x80
        u >>= 7
        j += 1
    k[j] = u
    return bytes(k)


def txn_key(i, size):
    return ("k%0*d" % (size - 1, i)).encode()


def txn_value(i, size):
    return ("v%d-" % i).encode().ljust(size, b"x")


def load_benchmark(tool, ep, n, ksize, vsize):
    cmd = [tool, "--endpoints=" + ep, "--conns=10", "--clients=100", "put",
           "--sequential-keys", "--key-space-size=%d" % n, "--total=%d" % n,
           "--key-size=%d" % ksize, "--val-size=%d" % vsize]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError("%s exited %d:\n%s" % (shlex.join(cmd), p.returncode,
                                                   p.stderr[-2000:]))
    return shlex.join(cmd).replace("=" + ep, "=EP")


def load_txns(c, n, ksize, vsize):
    for first in range(0, n, TXN_OPS):
        ops = "".join("put %s %s\n" % (txn_key(i, ksize).decode(),
                                       txn_value(i, vsize).decode())
                      for i in range(first, min(n, first + TXN_OPS)))
        c.etcdctl("txn", input="\n" + ops + "\n\n", check=True, timeout=60)
    return "etcdctl txn (%d puts each)" % TXN_OPS


# ---- measuring ------------------------------------------------------------------------

def reset_hwm(pid):
    """Sets VmHWM back to the current RSS (Linux >= 4.0, our own child); False if refused."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    return out


class Sampler(threading.Thread):
    """Peak RssAnon and VmRSS of pid, every 10 ms until stopped."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.anon, self.rss, self.halt = pid, 0, 0, threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                st = proc_status(self.pid)
            except OSError:
                return
            self.anon = max(self.anon, st.get("RssAnon", 0))
            self.rss = max(self.rss, st.get("VmRSS", 0))
            self.halt.wait(0.01)


def etcdctl_get(c, ep, outpath, *extra):
    args = ["etcdctl", "--endpoints=" + ep, "--command-timeout=600s", "get", "", "--prefix",
            "-w", "protobuf"] + list(extra)
    env = dict(os.environ, ETCDCTL_API="3")
    with open(outpath, "wb") as out:
        t0 = time.monotonic()
        p = subprocess.run(args, stdout=out, stderr=subprocess.PIPE, env=env, timeout=900)
        dt = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (shlex.join(args), p.returncode,
                                                  p.stderr.decode(errors="replace")[-2000:]))
    with open(outpath, "rb") as f:
        return f.read(), dt, shlex.join(args).replace("=" + ep, "=EP") + " > FILE"


# ---- checking the answers ------------------------------------------------------------

def expect(cond, what):
    if not cond:
        raise Wrong(what)


def check_full(r, n, keys, vsize, values, full=True):
    expect(r["count"] == n, "count %d, loaded %d" % (r["count"], n))
    expect(not r["more"], "more set on an unlimited range")
    expect(r["n_kvs"] == n, "%d kvs, loaded %d" % (r["n_kvs"], n))
    if not full:
        return
    got = [kv[0] for kv in r["kvs"]]
    expect(got == keys, "keys are not the loaded keys in order")
    seen = set()
    for k, v, create, mod, ver, lease in r["kvs"]:
        want = values.get(k) if values else None
        expect(len(v) == vsize and (want is None or v == want), "wrong value for %r" % k)
        expect(0 < create <= mod <= r["revision"] and ver >= 1 and lease == 0,
               "wrong metadata for %r" % k)
        seen.add(v)
    if values is None:   # the benchmark writes one random value to every key
        expect(len(seen) == 1, "%d distinct values, the loader wrote one" % len(seen))


def smoke_checks(c, ep, tmp, n, keys, full):
    """Small answers take the same packed path: a limit, keys-only descending, a sort by
    mod revision (etcdctl 3.4 has no --count-only; the unit test covers it)."""
    b, _, _ = etcdctl_get(c, ep, os.path.join(tmp, "lim"), "--limit=10")
    r = decode_range(b)
    expect(r["count"] == n and r["more"] and [kv[0] for kv in r["kvs"]] == keys[:10],
           "limit 10: count %d more %s" % (r["count"], r["more"]))
    b, _, _ = etcdctl_get(c, ep, os.path.join(tmp, "ko"), "--keys-only", "--limit=100",
                          "--order=DESCEND")
    r = decode_range(b)
    expect([kv[0] for kv in r["kvs"]] == keys[::-1][:100] and
           all(kv[1] == b"" for kv in r["kvs"]), "keys-only descending")
    b, _, _ = etcdctl_get(c, ep, os.path.join(tmp, "mod"), "--sort-by=MODIFY",
                          "--order=DESCEND", "--limit=5")
    r = decode_range(b)
    # A txn's puts share one mod revision, and etcd orders ties as it likes.
    newest = sorted((kv[3] for kv in full["kvs"]), reverse=True)[:5]
    expect([kv[3] for kv in r["kvs"]] == newest and set(r["kvs"]) <= set(full["kvs"]) and
           r["count"] == n and r["more"], "sort by mod, descending")


# ---- one server -------------------------------------------------------------------------

def run_server(a, label, binary, tmp):
    with Cluster(binary, size=1, base_dir=tmp) as c:
        c.start()
        ep = c.endpoints[0]
        pid = c.members[0].proc.pid
        t0 = time.monotonic()
        if a.loader == "benchmark":
            how = load_benchmark(a.benchmark, ep, a.keys, a.key_size, a.val_size)
            keys = sorted(bench_key(i, a.key_size) for i in range(a.keys))
            values = None
        else:
            how = load_txns(c, a.keys, a.key_size, a.val_size)
            keys = sorted(txn_key(i, a.key_size) for i in range(a.keys))
            values = {txn_key(i, a.key_size): txn_value(i, a.val_size)
                      for i in range(a.keys)} if a.smoke or a.verify else None
        load_s = time.monotonic() - t0
        if a.restart:
            c.restart(0)
            pid = c.members[0].proc.pid
        time.sleep(1.0)
        hwm_load = proc_status(pid)["VmHWM"]
        reset = reset_hwm(pid)
        before = proc_status(pid)
        s = Sampler(pid)
        s.start()
        body, get_s, cmd = etcdctl_get(c, ep, os.path.join(tmp, label + ".pb"))
        s.halt.set()
        s.join()
        after = proc_status(pid)
        r = decode_range(body, want_kvs=a.smoke or a.verify)
        check_full(r, a.keys, keys, a.val_size, values, full=a.smoke or a.verify)
        if a.smoke:
            smoke_checks(c, ep, tmp, a.keys, keys, r)
        os.unlink(os.path.join(tmp, label + ".pb"))
        return {"label": label, "binary": binary, "load": how, "load_s": load_s,
                "hwm_load": hwm_load, "reset": reset, "hwm0": before["VmHWM"],
                "hwm1": after["VmHWM"], "anon0": before["RssAnon"],
                "anon_peak": s.anon, "rss_after": after["VmRSS"], "get_s": get_s,
                "bytes": len(body), "cmd": cmd}


def mib(kib):
    return "%.0f" % (kib / 1024.0)


def render(a, results):
    lines = [
        "Range over %d keys (%d-byte keys, %d-byte values), one member each; command:" %
        (a.keys, a.key_size, a.val_size),
        "  " + " ".join(shlex.quote(x) for x in sys.argv),
        "Range: `%s`" % results[0]["cmd"],
        "Load: `%s`" % results[0]["load"],
        "",
        "| server | VmHWM before MiB | VmHWM after MiB | delta MiB | peak RssAnon MiB "
        "(before) | VmRSS after MiB | range s | answer MiB | load s (its VmHWM MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append("| %s | %s%s | %s | %s | %s (%s) | %s | %.2f | %.1f | %.0f (%s) |" % (
            r["label"], mib(r["hwm0"]), "" if r["reset"] else " (not reset)", mib(r["hwm1"]),
            mib(r["hwm1"] - r["hwm0"]), mib(r["anon_peak"]), mib(r["anon0"]),
            mib(r["rss_after"]), r["get_s"], r["bytes"] / 1048576.0, r["load_s"],
            mib(r["hwm_load"])))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keeld", action="append", default=[],
                    help="[label=]path of a keeld build (repeatable)")
    ap.add_argument("--etcd", default=None, help="etcd binary ('none' to skip; default etcd, "
                    "or none with --smoke)")
    ap.add_argument("--keys", type=int, default=None, help="1,000,000 (20,000 with --smoke)")
    ap.add_argument("--key-size", type=int, default=16)
    ap.add_argument("--val-size", type=int, default=100)
    ap.add_argument("--benchmark", default=os.path.join(HERE, "..", ".bench-tools", "benchmark"))
    ap.add_argument("--loader", choices=["benchmark", "txn"], default=None,
                    help="default: benchmark if the tool exists, else txn")
    ap.add_argument("--verify", action="store_true", help="decode every kv of a full run")
    ap.add_argument("--restart", action="store_true",
                    help="restart the server between loading and the range")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--dir", default=None, help="parent of the temp dir")
    a = ap.parse_args()
    if a.keys is None:
        a.keys = 20000 if a.smoke else 1000000
    if a.loader is None:
        a.loader = "benchmark" if os.access(a.benchmark, os.X_OK) else "txn"
    if a.loader == "txn" and a.key_size < len(str(a.keys)) + 1:
        ap.error("--key-size too small for %d keys" % a.keys)
    if a.loader == "benchmark" and a.keys > 128 ** (a.key_size) // 2:
        ap.error("--key-size too small for %d keys" % a.keys)
    if not shutil.which("etcdctl"):
        print("etcdctl not in PATH: skipped", file=sys.stderr)
        return 77
    etcd = a.etcd if a.etcd is not None else ("none" if a.smoke else "etcd")
    servers = []
    for spec in a.keeld:
        label, _, path = spec.rpartition("=")
        servers.append((label or "keeld", os.path.abspath(path)))
    if etcd != "none":
        servers.append(("etcd 3.4", etcd))
    if not servers:
        ap.error("no server: give --keeld and/or --etcd")
    results = []
    with tempfile.TemporaryDirectory(prefix="range_rss.", dir=a.dir) as tmp:
        for label, binary in servers:
            try:
                results.append(run_server(a, label.replace(" ", "_"), binary, tmp))
            except Wrong as e:
                print("%s: WRONG ANSWER: %s" % (label, e), file=sys.stderr)
                return 1
            results[-1]["label"] = label
            print("%s: done" % label, file=sys.stderr, flush=True)
    print(render(a, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
