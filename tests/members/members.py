#!/usr/bin/env python3
# tests/members/members.py — runtime membership on keeld against etcd 3.4: the same etcdctl
# member add/list/promote/update/remove steps on a real 3-member etcd and on 3 keeld, every
# step's output, error and exit code compared. Exits 77 when etcd or etcdctl is missing.
"""Steps (A = the first leader, B and C its followers by index, D = the member added):

  errors on the first three (bad peer URL, a peer URL taken, unknown ids, promoting a
  voter); add D as a learner; a second learner is one too many; D is listed unstarted;
  promoting it before it runs is refused; D starts with --initial-cluster-state existing
  (on keeld: the others' small --snapshot-count compacted their logs, so D catches up by a
  snapshot); D is listed started; the learner refuses writes and member list but serves a
  serializable read; D promoted; B's peer URLs updated (and a taken one
  refused); C removed (its process exits by itself); B killed, then removing D would break
  the quorum (etcd's strict reconfiguration check); B removed; the leader A removes itself
  (it exits by itself, D leads alone and takes writes); C restarted from its data refuses.

What is compared: etcdctl's stdout, stderr and exit code of each step, after mapping
ports and URLs to the member names above and member ids to those names. The ids of the
first members and the cluster's id depend on the (free, random) ports, and etcd generates
an added member's id from the time: those ids are the only thing masked (as A..D and
<cluster>). keeld-only checks: D installed a snapshot, removed members exit 0 with
"this member (<id>) was removed from the cluster"."""

import argparse
import json
import os
import re
import shutil
import tempfile
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from cluster import Cluster, ClusterError  # noqa: E402

ETCD_REMOVED = "the member has been permanently removed from the cluster"
KEELD_REMOVED = re.compile(r"this member \([0-9a-f]{16}\) was removed from the cluster")
KEYS = 60            # writes before D joins: with --snapshot-count 20 the log is compacted
SNAPSHOT_COUNT = 20


class Run:
    """One server's run of the steps: a list of (step, normalized output) and failures of
    the server-specific checks."""

    def __init__(self, binary, verbose):
        self.binary = binary
        self.is_etcd = os.path.basename(binary) == "etcd"
        self.verbose = verbose
        self.steps = []
        self.failures = []
        self.alias = {}      # text (id hex, URL, port) -> alias
        self.timings = {}

    def note(self, ok, what):
        if not ok:
            self.failures.append(what)

    # ---- normalization ----

    def learn(self, c, i, name):
        m = c.members[i]
        self.alias[m.peer_url] = "<%s-peer>" % name
        self.alias[m.client_url] = "<%s-client>" % name
        self.alias["http://localhost:%d" % m.peer_port] = "<%s-peer-localhost>" % name
        self.alias[m.name] = name.lower() + "-name"

    def learn_id(self, mid, name):
        self.alias["%x" % mid] = name
        self.alias["%016x" % mid] = name

    def norm(self, text):
        keys = sorted(self.alias, key=len, reverse=True)
        for k in keys:
            text = re.sub(r"(?<![0-9a-zA-Z])" + re.escape(k) + r"(?![0-9a-zA-Z])",
                          self.alias[k], text)
        text = re.sub(r"cluster +[0-9a-f]{1,16}\b", "cluster <cluster>", text)
        # etcdctl prints ids with %16x: a masked id's width padding goes with it
        text = re.sub(r"Member +", "Member ", text)
        return text

    def step(self, c, name, *args, endpoints, sort_lines=False, sort_csv=False):
        return self.record(name, c.etcdctl(*args, endpoints=endpoints), sort_lines, sort_csv)

    def record(self, name, r, sort_lines=False, sort_csv=False):
        out = self.norm(r.out)
        if sort_lines:
            out = "\n".join(sorted(out.splitlines())) + "\n"
        if sort_csv:  # ETCD_INITIAL_CLUSTER lists members in id order
            out = re.sub(r'(ETCD_INITIAL_CLUSTER=")([^"]*)"',
                         lambda m: m.group(1) + ",".join(sorted(m.group(2).split(","))) + '"',
                         out)
        rec = "rc=%d\n--- stdout\n%s--- stderr\n%s" % (r.rc, out, self.norm(norm_warn(r.err)))
        self.steps.append((name, rec))
        if self.verbose:
            print("[%s] %s\n%s" % ("etcd" if self.is_etcd else "keeld", name, rec))
        return r


def norm_warn(err):
    """etcdctl's retry warnings are JSON lines with a time and a client id: keep their
    message and error only."""
    out = []
    for ln in err.splitlines(True):
        if ln.startswith('{"level"'):
            try:
                j = json.loads(ln)
                ln = "%s: %s: %s\n" % (j.get("level"), j.get("msg"), j.get("error"))
            except ValueError:
                pass
        out.append(ln)
    return "".join(out)


def wait_for(what, fn, timeout):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise ClusterError("timeout (%ds) waiting for %s" % (timeout, what))
        time.sleep(0.2)


def member_exit(c, i, timeout):
    """Waits for member i's process to exit by itself; its exit code or None."""
    p = c.members[i].proc
    try:
        return p.wait(timeout=timeout)
    except Exception:
        return None


def log_text(c, i):
    with open(c.members[i].log_path, errors="replace") as f:
        return f.read()


def scenario(run, tmp):
    c = Cluster(run.binary, size=3, heartbeat_ms=50, election_ms=500,
                snapshot_count=SNAPSHOT_COUNT, base_dir=tmp, token="keel-members")
    with c:
        t0 = time.monotonic()
        c.start()
        lead = c.wait_leader()
        fol = [i for i in range(3) if i != lead]
        A, B, C = lead, fol[0], fol[1]
        for i, n in ((A, "A"), (B, "B"), (C, "C")):
            run.learn(c, i, n)
            run.learn_id(c.member_id(i), n)
        D = c.add_member()
        run.learn(c, D, "D")
        ep = lambda *ix: [c.members[i].endpoint for i in ix]  # noqa: E731
        for k in range(KEYS):
            c.etcdctl("put", "k%03d" % k, "v" * 100, endpoints=ep(A), check=True)
        # etcd refuses changes until its peers are connected for its health interval (5 s):
        # an add that would be refused anyway (a taken URL) tells when that time is over
        taken = ["member", "add", "x", "--learner", "--peer-urls=" + c.members[B].peer_url]
        for i in (A, B, C):
            wait_for("etcd's health interval", lambda: "unhealthy" not in
                     c.etcdctl(*taken, endpoints=ep(i)).err, 15)
        run.timings["healthy"] = time.monotonic() - t0
        run.step(c, "list", "member", "list", endpoints=ep(A), sort_lines=True)
        run.step(c, "add bad url", "member", "add", "x", "--peer-urls=not-a-url",
                 endpoints=ep(B))
        run.step(c, "add taken url", *taken, endpoints=ep(B))
        run.step(c, "remove unknown", "member", "remove", "1234abcd", endpoints=ep(B))
        run.step(c, "update unknown", "member", "update", "1234abcd",
                 "--peer-urls=http://127.0.0.1:9", endpoints=ep(A))
        run.step(c, "promote a voter", "member", "promote", "%x" % c.member_id(C),
                 endpoints=ep(B))
        r = c.etcdctl("member", "add", c.members[D].name, "--learner",
                      "--peer-urls=" + c.members[D].peer_url, endpoints=ep(B))
        m = re.search(r"Member +([0-9a-f]+) added", r.out)
        run.note(r.rc == 0 and m, "member add failed: %r" % r)
        if not m:
            return
        did = int(m.group(1), 16)
        run.learn_id(did, "D")  # the one id generated at random: masked as D
        run.record("add learner D", r, sort_csv=True)
        run.step(c, "add second learner", "member", "add", "x", "--learner",
                 "--peer-urls=http://127.0.0.1:9", endpoints=ep(A))
        run.step(c, "list with D unstarted", "member", "list", endpoints=ep(A),
                 sort_lines=True)
        run.step(c, "promote unstarted D", "member", "promote", "%x" % did, endpoints=ep(C))

        t_join = time.monotonic()
        c.start_member(D, "existing", c.initial_cluster_of([A, B, C, D]))
        c.wait_up([D])

        def caught_up():
            st, sd = c.status(A), c.status(D)
            return (st and sd and sd["Status"].get("raftIndex", 0) >=
                    st["Status"].get("raftIndex", 0) - 2)

        wait_for("D to catch up", caught_up, 20)
        run.timings["join"] = time.monotonic() - t_join

        def started():
            r = c.etcdctl("member", "list", endpoints=ep(A))
            return r.rc == 0 and all(", started, " in ln for ln in r.out.splitlines())

        wait_for("D listed as started", started, 15)
        run.step(c, "list with D started", "member", "list", endpoints=ep(A), sort_lines=True)
        # a learner serves only Status and serializable reads
        run.step(c, "put on learner D", "put", "on-learner", "1", endpoints=ep(D))
        run.step(c, "serializable get on learner D", "get", "k000", "--consistency=s",
                 endpoints=ep(D))
        run.step(c, "member list on learner D", "member", "list", endpoints=ep(D))
        if not run.is_etcd:
            run.note("installed the store of the snapshot" in log_text(c, D),
                     "D did not catch up by a snapshot")

        def promote():
            r = c.etcdctl("member", "promote", "%x" % did, endpoints=ep(B))
            return r if r.rc == 0 or "in sync" not in r.err else None

        # retried while D is not in sync yet: the first other answer is compared
        run.record("promote D", wait_for("D in sync", promote, 15))
        run.step(c, "promote promoted D", "member", "promote", "%x" % did, endpoints=ep(B))
        run.step(c, "list 4 voters", "member", "list", endpoints=ep(C), sort_lines=True)

        bport = c.members[B].peer_port
        run.step(c, "update B", "member", "update", "%x" % c.member_id(B),
                 "--peer-urls=http://127.0.0.1:%d,http://localhost:%d" % (bport, bport),
                 endpoints=ep(A))
        run.step(c, "update C to A's url", "member", "update", "%x" % c.member_id(C),
                 "--peer-urls=" + c.members[A].peer_url, endpoints=ep(D))
        run.step(c, "list after update", "member", "list", endpoints=ep(D), sort_lines=True)
        c.etcdctl("put", "after-update", "1", endpoints=ep(A), check=True)

        cid = c.member_id(C)
        run.step(c, "remove follower C", "member", "remove", "%x" % cid, endpoints=ep(A))
        rc = member_exit(c, C, 10)
        run.note(rc == 0, "removed follower C: exit code %r, want 0" % rc)
        log = log_text(c, C)
        run.note(ETCD_REMOVED in log if run.is_etcd else KEELD_REMOVED.search(log),
                 "removed follower C: no removal message in its log")
        run.step(c, "list after removing C", "member", "list", endpoints=ep(A),
                 sort_lines=True)

        bid = c.member_id(B)
        c.kill(B)
        time.sleep(1.0)
        wait_for("D connected for etcd's health interval",
                 lambda: time.monotonic() - t_join > 6.5, 10)
        run.step(c, "remove D breaks quorum", "member", "remove", "%x" % did, endpoints=ep(A))
        run.step(c, "remove dead B", "member", "remove", "%x" % bid, endpoints=ep(A))
        run.step(c, "list A and D", "member", "list", endpoints=ep(D), sort_lines=True)

        aid = c.member_id(A)
        run.step(c, "remove leader A", "member", "remove", "%x" % aid, endpoints=ep(A))
        rc = member_exit(c, A, 10)
        run.note(rc == 0, "removed leader A: exit code %r, want 0" % rc)
        log = log_text(c, A)
        run.note(ETCD_REMOVED in log if run.is_etcd else KEELD_REMOVED.search(log),
                 "removed leader A: no removal message in its log")
        wait_for("D to lead", lambda: c.leader([D]) == D, 10)
        run.step(c, "put on D alone", "put", "after-leader-removal", "1", endpoints=ep(D))
        run.step(c, "list D alone", "member", "list", endpoints=ep(D), sort_lines=True)

        c.start_member(C)
        rc = member_exit(c, C, 15)
        run.note(rc == 0, "restarted removed C: exit code %r, want 0" % rc)
        log = log_text(c, C).split("==== ")[-1]
        run.note(ETCD_REMOVED in log if run.is_etcd else KEELD_REMOVED.search(log),
                 "restarted removed C: no removal message in its log")
        run.timings["total"] = time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keeld", required=True)
    ap.add_argument("--etcd", default="etcd")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--only", choices=["etcd", "keeld"], help="run one side (debugging)")
    a = ap.parse_args()
    if not shutil.which(a.etcd) or not shutil.which("etcdctl"):
        print("etcd or etcdctl not installed: skipped")
        return 77
    tmp = tempfile.mkdtemp(prefix="keel-members-")
    try:
        runs = []
        for binary in (shutil.which(a.etcd), os.path.abspath(a.keeld)):
            run = Run(binary, a.verbose)
            if a.only and a.only != ("etcd" if run.is_etcd else "keeld"):
                runs.append(run)
                continue
            try:
                scenario(run, tmp)
            except ClusterError as e:
                run.failures.append("%s: %s" % (os.path.basename(binary), e))
            runs.append(run)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    etcd, keeld = runs
    bad = 0
    for r in runs:
        for f in r.failures:
            print("FAIL (%s): %s" % ("etcd" if r.is_etcd else "keeld", f))
            bad += 1
    want = dict(etcd.steps)
    got = dict(keeld.steps)
    for name, rec in etcd.steps:
        if got.get(name) != rec:
            bad += 1
            print("FAIL step %r\n--- etcd\n%s--- keeld\n%s" % (name, rec, got.get(name)))
    for name in got:
        if name not in want:
            bad += 1
            print("FAIL step %r only on keeld" % name)
    for r in runs:
        print("%s: %d steps, join %.1fs, total %.1fs" % (
            "etcd" if r.is_etcd else "keeld", len(r.steps), r.timings.get("join", -1),
            r.timings.get("total", -1)))
    print("%s: %d problem(s)" % ("FAIL" if bad else "OK", bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
