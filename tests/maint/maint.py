#!/usr/bin/env python3
# tests/maint/maint.py — etcd's Maintenance service on keeld, diffed against etcd 3.4 with
# the real etcdctl: the space quota and the NOSPACE alarm, endpoint status errors, compact +
# defrag + disarm, move-leader there and back, Hash/HashKV; then defragmentation of a
# ~100 MB store under a steady writer, measured on both. Starts and stops its own clusters
# on free loopback ports; never touches anything outside their temp dirs.
"""Maintenance on keeld vs etcd 3.4.

    maint.py --keeld build/server/keeld --load build/tests/maint/maint_load
             [--etcd etcd] [--only compat|load] [--load-mb 100]

Part 1 runs the same etcdctl steps on a 3-member etcd and a 3-member keeld, both with
--quota-backend-bytes 16 MiB, and diffs the transcripts. What legitimately differs is
masked before the diff, and only that:
  - member IDs and cluster IDs (every cluster draws its own) become <id>;
  - client endpoints become e0, e1, e2 (the member's index);
  - numbers that depend on how many bytes the store takes (how many keys fit before the
    quota, hence the revision compacted to and the count deleted) become <n>;
  - which member raised the NOSPACE alarm: etcd raises it on the member whose apply
    found the store over quota (often the leader), keeld on the member whose write was
    refused before proposing; so alarm lists are compared as sets of masked lines;
  - db sizes and hashes are not printed at all (checked for sense on each side instead).
Part 2 fills a ~100 MB store (half of it then deleted and compacted), starts a writer
that puts 256-byte values one after another on the leader, defragments the leader while
it writes, and reports the longest write latency during the defrag and the leader's file
size before/after, for both servers. keeld must keep writes under 200 ms (or twice its
slowest write outside the defrag, on a slow disk); etcd's figure is only reported (its
defrag holds every write until it ends). Both must keep every key and equal HashKV on all
members.
Exit: 0 pass, 1 fail, 77 skipped (etcd or etcdctl not installed).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from cluster import Cluster  # noqa: E402

QUOTA = 16 * 1024 * 1024
# A write on keeld may wait for the member's loop while the copy is swapped in (a few ms)
# and for a WAL fsync slowed by the copy's own fsync on the same disk: 200 ms, or twice the
# slowest write outside the defrag when the disk is having a slow day.
KEELD_MAX_DEFRAG_WRITE_MS = 200.0


class Transcript:
    """etcdctl steps with their masked results, for one cluster."""

    def __init__(self, c):
        self.c = c
        self.lines = []
        self.ids = {}
        for i in range(len(c.members)):
            mid = c.member_id(i)
            if mid:
                self.ids[mid] = i
        st = c.status(0) or {}
        self.cluster_id = (st.get("Status", {}).get("header", {}) or {}).get("cluster_id")

    def mask(self, text):
        for i, ep in enumerate(self.c.endpoints):
            text = text.replace("http://" + ep, "e%d" % i).replace(ep, "e%d" % i)
        for mid in self.ids:
            text = text.replace(str(mid), "<id>").replace("%x" % mid, "<id>")
            text = text.replace("%016x" % mid, "<id>")
        if self.cluster_id:
            text = text.replace(str(self.cluster_id), "<id>").replace(
                "%x" % self.cluster_id, "<id>")
        return text

    def add(self, step, text):
        self.lines.append("%s: %s" % (step, text))

    def ctl(self, step, *args, endpoints=None, sort_lines=False, numbers=False, input=None,
            lease_ids=False):
        r = self.c.etcdctl(*args, endpoints=endpoints, timeout=60, input=input)
        out = self.mask(r.out.strip())
        if lease_ids:  # chosen at random by each server
            out = re.sub(r"lease [0-9a-f]+ ", "lease <lease> ", out)
        if numbers:
            out = re.sub(r"\d+", "<n>", out)
        if sort_lines:
            out = "\n".join(sorted(set(ln.strip() for ln in out.splitlines())))
        errs = [ln for ln in r.err.splitlines() if ln.startswith("Error:")]
        self.add(step, "rc=%d out=%r err=%r" % (r.rc, out, self.mask(" ".join(errs))))
        return r


def status_errors(t):
    """Each endpoint's Status.errors, masked, as a set per endpoint."""
    r = t.c.etcdctl("endpoint", "status", "-w", "json", timeout=30)
    if r.rc != 0:
        return "rc=%d %s" % (r.rc, r.err.strip()[-200:])
    out = []
    for e in sorted(json.loads(r.out), key=lambda x: x["Endpoint"]):
        errs = sorted(set(t.mask(x) for x in e["Status"].get("errors", [])))
        out.append("%s %s" % (t.mask(e["Endpoint"]), errs))
    return "; ".join(sorted(out))


def db_sizes(c):
    sizes = []
    for i in range(len(c.members)):
        st = c.status(i) or {}
        sizes.append(st.get("Status", {}).get("dbSize"))
    return sizes


def fill_until_refused(load, ep, prefix, value_bytes):
    r = subprocess.run([load, "fill", ep, prefix, "1000000", str(value_bytes)],
                       capture_output=True, text=True, timeout=600)
    return r.returncode, r.stderr.strip().splitlines()[-1:] if r.stderr else []


def wait_applied_equal(c, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        idx = set()
        for i in range(len(c.members)):
            st = c.status(i) or {}
            idx.add(st.get("Status", {}).get("raftAppliedIndex"))
        if len(idx) == 1 and None not in idx:
            return True
        time.sleep(0.1)
    return False


def compat(server, load, problems):
    """The etcdctl steps on one 3-member cluster; returns the masked transcript."""
    with Cluster(server, size=3, extra_args=["--quota-backend-bytes", str(QUOTA)]) as c:
        c.start()
        t = Transcript(c)
        # Big values first, then smaller ones (disarming in between), until a put costs
        # more than what is left: then every later write is over the quota on both.
        for stage, size in (("a", 64 * 1024), ("b", 1024), ("c", 0)):
            rc, last = fill_until_refused(load, c.endpoints[0], "fill/%s/" % stage, size)
            t.add("fill %s until refused" % stage,
                  "rc=%d %s" % (rc, re.sub(r"fill/\w/\d+", "fill/<n>", " ".join(last))))
            if stage != "c":
                c.etcdctl("alarm", "disarm", timeout=60)
        t.ctl("put over quota", "put", "foo", "barbarbarbarbar", endpoints=0)
        t.ctl("lease grant over quota", "lease", "grant", "100", endpoints=0)
        t.ctl("txn with a put over quota", "txn", endpoints=0, input="\nput t v\n\n\n")
        t.ctl("txn that only deletes", "txn", endpoints=0, input="\ndel t\n\n\n")
        t.ctl("alarm list", "alarm", "list", sort_lines=True)
        t.add("status errors", status_errors(t))
        t.ctl("get still works", "get", "fill/a/000000", "--keys-only")
        t.ctl("disarm while over quota", "alarm", "disarm", sort_lines=True)
        t.ctl("put after disarm, still over", "put", "foo", "barbarbarbarbar", endpoints=0)
        t.ctl("alarm is back", "alarm", "list", sort_lines=True)
        t.ctl("delete still works", "del", "fill/", "--prefix", numbers=True)
        st = c.status(0)
        rev = st["Status"]["header"]["revision"]
        t.ctl("compact", "compact", str(rev), "--physical", numbers=True)
        sizes_before = db_sizes(c)
        t.ctl("defrag", "defrag")
        sizes_after = db_sizes(c)
        t.add("defrag shrank every member", str(all(
            a is not None and b is not None and a < b
            for a, b in zip(sizes_after, sizes_before))))
        t.add("db under quota after defrag", str(all(
            a is not None and a < QUOTA for a in sizes_after)))
        t.ctl("alarm still on after defrag", "alarm", "list", sort_lines=True)
        t.ctl("put still refused before disarm", "put", "foo", "bar", endpoints=0)
        t.ctl("disarm", "alarm", "disarm", sort_lines=True)
        t.ctl("alarm list empty", "alarm", "list")
        t.ctl("put again", "put", "foo", "bar", endpoints=0)
        t.ctl("lease grant again", "lease", "grant", "100", endpoints=0, numbers=True,
              lease_ids=True)
        t.add("status errors after", status_errors(t))

        # move-leader there and back
        lead = c.wait_leader()
        target = (lead + 1) % 3
        tid = c.member_id(target)
        t.ctl("move-leader", "move-leader", "%x" % tid)
        ok = c.wait_leader() == target
        t.add("leader moved", str(ok))
        t.ctl("move-leader back", "move-leader", "%x" % c.member_id(lead))
        t.add("leader back", str(c.wait_leader() == lead))
        t.ctl("move-leader to an unknown member", "move-leader", "abcdef12345")
        follower = (lead + 1) % 3
        r = subprocess.run([load, "move-leader", c.endpoints[follower], "%x" % tid],
                           capture_output=True, text=True, timeout=60)
        t.add("MoveLeader sent to a follower", t.mask(r.stdout.strip()))

        # hashes: equal on every member at the same applied index
        t.ctl("put before hashing", "put", "h", "1")
        wait_applied_equal(c)
        r = c.etcdctl("endpoint", "hashkv", "-w", "json", timeout=30)
        hk = set(e["HashKV"]["hash"] for e in json.loads(r.out)) if r.rc == 0 else None
        t.add("hashkv equal on all members", str(hk is not None and len(hk) == 1))
        hashes = []
        for ep in c.endpoints:
            r = subprocess.run([load, "hash", ep], capture_output=True, text=True, timeout=60)
            hashes.append(r.stdout.strip())
        t.add("Hash answers", str(all(h.startswith("hash ") for h in hashes)))
        print("%s Hash answers: %s" % (server, hashes))
        if "keeld" in server and len(set(hashes)) != 1:
            problems.append("keeld: Hash differs between members: %s" % hashes)
        return t.lines


# ---- defragmentation under load -----------------------------------------------------------

def defrag_under_load(server, load, total_mb, workdir):
    value = 100 * 1024
    count = total_mb * 1024 * 1024 // value
    with Cluster(server, size=3) as c:
        c.start()
        lead = c.wait_leader()
        print("defrag under load: %s cluster in %s" % (os.path.basename(server), c.dir))
        ep = c.endpoints[lead]
        r = subprocess.run([load, "fill", ep, "big/", str(count), str(value)],
                           capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            raise RuntimeError("fill failed: %s" % r.stderr[-500:])
        c.etcdctl("del", "big/000000", "big/%06d" % (count // 2), endpoints=lead,
                  check=True, timeout=120)
        st = c.status(lead)
        c.etcdctl("compact", str(st["Status"]["header"]["revision"]), "--physical",
                  endpoints=lead, check=True, timeout=300)
        time.sleep(1)
        before = c.status(lead)["Status"]["dbSize"]
        out = os.path.join(workdir, "%s-writes.txt" % os.path.basename(server))
        w = subprocess.Popen([load, "write", ep, "w/", "14", "256", out],
                             stderr=subprocess.PIPE, text=True)
        time.sleep(4)
        t0 = time.time()
        d = c.etcdctl("defrag", endpoints=lead, timeout=300)
        t1 = time.time()
        _, werr = w.communicate(timeout=120)
        after = c.status(lead)["Status"]["dbSize"]
        # nothing lost: the keys left, and every member's history the same
        r = c.etcdctl("get", "big/", "--prefix", "--keys-only", "-w", "json", endpoints=lead,
                      timeout=60)
        left = json.loads(r.out).get("count") if r.rc == 0 else None
        wait_applied_equal(c)
        r = c.etcdctl("endpoint", "hashkv", "-w", "json", timeout=60)
        same = r.rc == 0 and len(set(e["HashKV"]["hash"] for e in json.loads(r.out))) == 1
        during, outside, failed, n = 0.0, 0.0, 0, 0
        with open(out) as f:
            for line in f:
                start, lat_us, bad = line.split()
                start, lat = float(start), int(lat_us) / 1000.0
                n += 1
                failed += int(bad)
                if start < t1 and start + lat / 1000.0 > t0:
                    during = max(during, lat)
                else:
                    outside = max(outside, lat)
        return {
            "server": os.path.basename(server), "defrag_rc": d.rc,
            "defrag_s": round(t1 - t0, 3), "writes": n, "failed_writes": failed,
            "longest_write_ms_during_defrag": round(during, 2),
            "longest_write_ms_outside": round(outside, 2),
            "db_bytes_before": before, "db_bytes_after": after,
            "keys_left_ok": left == count - count // 2, "hashkv_equal": same,
            "writer": werr.strip().splitlines()[-1:] if werr else [],
        }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keeld", required=True)
    ap.add_argument("--load", required=True)
    ap.add_argument("--etcd", default="etcd")
    ap.add_argument("--only", choices=["compat", "load"])
    ap.add_argument("--load-mb", type=int, default=100)
    ap.add_argument("--keeld-only", action="store_true",
                    help="defrag under load on keeld alone (no etcd figure)")
    a = ap.parse_args()
    if not shutil.which(a.etcd) or not shutil.which("etcdctl"):
        print("etcd or etcdctl not installed: skipped")
        return 77
    keeld = os.path.abspath(a.keeld)
    load = os.path.abspath(a.load)
    problems = []
    if a.only != "load":
        want = compat(a.etcd, load, problems)
        got = compat(keeld, load, problems)
        for i in range(max(len(want), len(got))):
            w = want[i] if i < len(want) else "<missing>"
            g = got[i] if i < len(got) else "<missing>"
            if w != g:
                problems.append("step %d differs:\n  etcd:  %s\n  keeld: %s" % (i, w, g))
        print("compat transcript (etcd):")
        for ln in want:
            print("  " + ln)
    if a.only != "compat":
        workdir = tempfile.mkdtemp(prefix="keel-maint-")
        try:
            servers = (keeld,) if a.keeld_only else (a.etcd, keeld)
            results = [defrag_under_load(s, load, a.load_mb, workdir) for s in servers]
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        for res in results:
            print("defrag under load: " + json.dumps(res))
        k = results[-1]
        if k["defrag_rc"] != 0 or k["failed_writes"]:
            problems.append("keeld: defrag under load failed: %s" % k)
        limit = max(KEELD_MAX_DEFRAG_WRITE_MS, 2 * k["longest_write_ms_outside"])
        if k["longest_write_ms_during_defrag"] > limit:
            problems.append("keeld: a write took %.1f ms during the defrag (limit %.0f)"
                            % (k["longest_write_ms_during_defrag"], limit))
        for res in results:
            if not res["keys_left_ok"] or not res["hashkv_equal"]:
                problems.append("%s: data differs after the defrag: %s" % (res["server"], res))
        if not k["db_bytes_after"] < k["db_bytes_before"]:
            problems.append("keeld: the defrag did not shrink the file: %s" % k)
    for p in problems:
        print("FAIL: " + p)
    print("%d passed, %d failed" % (0 if problems else 1, 1 if problems else 0))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
