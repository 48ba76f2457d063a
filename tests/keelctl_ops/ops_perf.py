#!/usr/bin/env python3
# tests/keelctl_ops/ops_perf.py — keelctl check perf: against a 3-member etcd 3.4, etcdctl's and
# keelctl's full 60-second "--load s" runs (side by side, each on its own prefix) must print
# the same lines once numbers are normalised (etcdctl's progress bar goes to stdout even when
# piped; keelctl's stays off a pipe, which is checked too); its argument errors match
# etcdctl's; and a short run against keeld passes. --quick (the default test run) leaves
# out the 60-second runs; the suite 'long' has the full test. Exits 77 when etcd/etcdctl are missing.
import argparse
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opslib  # noqa: E402
from opslib import Checker, Cluster, run  # noqa: E402

BAR = re.compile(r"\r *\d+ / \d+ +[\d.]+%( +\d+m\d+s| +\d+m[\d.]+s| +[\d.]+s)?")
# etcdctl's result lines (check.go); a run passes or fails each rule by the load of the
# machine, so the comparison is on which rule each line reports, and keelctl's lines must
# each be one of these texts exactly.
VERDICTS = [(r"PASS: Throughput is \d+ writes/s", "THROUGHPUT"),
            (r"FAIL: Throughput too low: \d+ writes/s", "THROUGHPUT"),
            (r"PASS: Slowest request took \d+\.\d{6}s", "SLOWEST"),
            (r"Slowest request took too long: \d+\.\d{6}s", "SLOWEST"),
            (r"PASS: Stddev is \d+\.\d{6}s", "STDDEV"),
            (r"Stddev too high: \d+\.\d{6}s", "STDDEV"),
            (r"PASS", "VERDICT"), (r"FAIL", "VERDICT"),
            (r"FAIL: too many errors", "ERRORS"), (r"FAIL: ERROR\(.*\) -> \d+", "ERROR")]


def norm_perf(s):
    s = BAR.sub("", s)
    out = []
    for line in s.splitlines():
        if not line.strip():
            continue
        for rx, token in VERDICTS:
            if re.fullmatch(rx, line):
                line = token
                break
        line = re.sub(r'"[^"]*"', "EP", line)  # Defragmenting "127.0.0.1:port"
        out.append(re.sub(r"\d+(\.\d+)?", "N", line))
    return "".join(x + "\n" for x in out)


def consistent(out):
    """keelctl's verdict follows its rule lines, and every result line is etcdctl's text."""
    lines = out.splitlines()
    rules = [x for x in lines if any(re.fullmatch(rx, x) for rx, t in VERDICTS[:6])]
    if len(rules) != 3 or lines[-1] not in ("PASS", "FAIL"):
        return False
    return (lines[-1] == "PASS") == all(x.startswith("PASS:") for x in rules)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keelctl", required=True)
    ap.add_argument("--keeld", required=True)
    ap.add_argument("--quick", action="store_true",
                    help="skip the side-by-side 60 s runs (the default test run)")
    a = ap.parse_args()
    if not shutil.which("etcd") or not shutil.which("etcdctl"):
        print("etcd/etcdctl not installed: skipped")
        return 77
    ck = Checker(os.path.abspath(a.keelctl))
    with Cluster("etcd", size=3, heartbeat_ms=50, election_ms=500) as c:
        c.start()
        eps = ",".join(c.endpoints)
        ck.compare("check perf --load bad", eps, "check", "perf", "--load", "bad")
        run([ck.etcdctl, "--endpoints=" + eps, "put", "/busy/k", "v"])
        ck.compare("check perf on a prefix with keys", eps, "check", "perf", "--prefix",
                   "/busy/")
        env = dict(os.environ, ETCDCTL_API="3")
        common = ["check", "perf", "--load", "s", "--auto-compact", "--auto-defrag"]
        if not a.quick:
            pe = subprocess.Popen([ck.etcdctl, "--endpoints=" + eps] + common + ["--prefix", "/e/"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            pk = subprocess.Popen([ck.keelctl, "--endpoints=" + eps] + common + ["--prefix", "/k/"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            eo, ee = pe.communicate(timeout=200)
            ko, ke = pk.communicate(timeout=200)
            e = opslib.Result(pe.returncode, eo.decode(), opslib.strip_zap(ee.decode()))
            k = opslib.Result(pk.returncode, ko.decode(), opslib.strip_zap(ke.decode()))
            ck.check("keelctl check perf, piped: no progress line", "\r" not in k.out + k.err and
                     "/ 60" not in k.out, repr(k))
            ck.check("check perf --load s: verdict and exit code follow its rule lines",
                     consistent(k.out) and (k.rc == 0) == k.out.endswith("PASS\n"), repr(k))
            ck.same("check perf --load s --auto-compact --auto-defrag", e, k, norm_perf)
            left = run([ck.etcdctl, "--endpoints=" + eps, "get", "/k/", "--prefix", "--keys-only"])
            ck.check("check perf deletes its keys", left.rc == 0 and left.out == "", repr(left))
    with Cluster(os.path.abspath(a.keeld), size=3, heartbeat_ms=50, election_ms=500) as c:
        c.start()
        k = run([ck.keelctl, "--endpoints=" + ",".join(c.endpoints), "check", "perf",
                 "--auto-compact"], env={"KEEL_CHECK_PERF_SECONDS": "5"}, timeout=120)
        lines = [re.sub(r"\d+(\.\d+)?", "N", x) for x in k.out.splitlines()]
        ck.check("check perf against keeld (5 s run)", k.rc == 0 and k.err == "" and lines == [
            "Compacting with revision N", "Compacted with revision N",
            "PASS: Throughput is N writes/s", "PASS: Slowest request took Ns",
            "PASS: Stddev is Ns", "PASS"], repr(k))
    return ck.finish()


if __name__ == "__main__":
    sys.exit(main())
