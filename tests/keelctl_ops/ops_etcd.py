#!/usr/bin/env python3
# tests/keelctl_ops/ops_etcd.py — keelctl's operational commands against a 3-member etcd 3.4:
# for each command, keelctl's exit code, stdout and stderr must equal etcdctl's (etcdctl's zap
# log lines dropped; member ids of members added during the test, Go durations and the order
# of concurrently checked endpoints normalised). Exits 77 when etcd/etcdctl are missing.
import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opslib  # noqa: E402
from opslib import Checker, Cluster, norm_health, wait_for  # noqa: E402

FORMATS = ["simple", "json", "table", "fields", "protobuf"]


def member_id(ck, eps, peer_url):
    r = opslib.run([ck.etcdctl, "--endpoints=" + eps, "member", "list"])
    for line in r.out.splitlines():
        f = [x.strip() for x in line.split(",")]
        if peer_url in f[3].split(","):
            return f[0]
    return None


def test_reads(ck, c):
    ep0 = c.endpoints[0]
    for w in FORMATS:
        ck.compare(f"member list -w {w}", ep0, "member", "list", "-w", w)
    for w in FORMATS:
        ck.compare(f"endpoint status --cluster -w {w}", ep0, "endpoint", "status", "--cluster",
                   "-w", w)
        ck.compare(f"endpoint hashkv --cluster -w {w}", ep0, "endpoint", "hashkv", "--cluster",
                   "-w", w)
    ck.compare("endpoint hashkv --rev 1", ep0, "endpoint", "hashkv", "--rev", "1")
    # Health: the endpoints are checked concurrently (etcdctl prints them as they finish)
    # and each row carries its own latency.
    for w in FORMATS:
        ck.compare(f"endpoint health --cluster -w {w}", ep0, "endpoint", "health", "--cluster",
                   "-w", w, norm=norm_health)
    eps = ",".join(c.endpoints)
    ck.compare("endpoint status (3 endpoints) -w table", eps, "endpoint", "status", "-w",
               "table")
    ck.compare("endpoint status (one dead endpoint)", ep0 + ",127.0.0.1:1", "endpoint",
               "status", "--command-timeout=1s")


def test_alarm_defrag(ck, c):
    ep0 = c.endpoints[0]
    for w in ["simple", "json", "table", "protobuf"]:
        ck.compare(f"alarm list -w {w}", ep0, "alarm", "list", "-w", w)
    ck.compare("alarm disarm", ep0, "alarm", "disarm")
    ck.compare("alarm list extra arg", ep0, "alarm", "list", "x")
    ck.compare("defrag", ep0, "defrag")
    ck.compare("defrag --cluster", ep0, "defrag", "--cluster")
    ck.compare("defrag -w json", ep0, "defrag", "-w", "json")
    ck.compare("defrag (dead endpoint)", "127.0.0.1:1", "defrag", "--command-timeout=1s",
               "--dial-timeout=1s")


def norm_members(s):
    """Members come sorted by id, and an added member's id is random: sort by peer URL."""
    if s.startswith("{"):
        try:
            d = json.loads(s.replace("NEWID", "1"))
            d.get("members", []).sort(key=lambda m: m.get("peerURLs"))
            return json.dumps(d)
        except ValueError:
            return s
    s = re.sub(r"Member +NEWID", "Member NEWID", s)
    m = re.search(r'ETCD_INITIAL_CLUSTER="([^"]*)"', s)
    if m:
        s = s.replace(m.group(1), ",".join(sorted(m.group(1).split(","))))
    return s


def norm_pb(s):
    """-w protobuf: the new member's random id changes varints and length prefixes; what
    must match are the strings (names, URLs), as a set."""
    return "\n".join(sorted(re.findall(r"[ -~]{3,}", s)))


def test_alarm_nospace(ck):
    """A real alarm: a one-member etcd with a tiny quota fills up and raises NOSPACE."""
    with Cluster("etcd", size=1, heartbeat_ms=50, election_ms=500,
                 extra_args=["--quota-backend-bytes", "200000"]) as c:
        c.start()
        ep = c.endpoints[0]
        value = "x" * 60000

        def fill():
            for i in range(40):
                r = opslib.run([ck.etcdctl, "--endpoints=" + ep, "put", "k%d" % i, value])
                if "database space exceeded" in r.err:
                    return True
            return False
        if not ck.check("etcd raises NOSPACE", fill()):
            return
        for w in ["simple", "json", "protobuf", "table"]:
            ck.compare(f"alarm list -w {w} (NOSPACE)", ep, "alarm", "list", "-w", w)
        for w in ["simple", "json"]:
            outs = []
            for tool in (ck.etcdctl, ck.keelctl):
                fill()
                outs.append(opslib.run([tool, "--endpoints=" + ep, "alarm", "disarm", "-w", w]))
                outs[-1].err = opslib.strip_zap(outs[-1].err)
            ck.same(f"alarm disarm -w {w} (NOSPACE)", outs[0], outs[1])


def test_member_changes(ck, c):
    """The same add/update/promote/remove sequence by etcdctl, then by keelctl, on a
    learner that never starts (the cluster's quorum is never at risk)."""
    ep0 = c.endpoints[0]
    url, url2 = "http://127.0.0.1:9", "http://127.0.0.1:10"
    outs = {}
    for tool in (ck.etcdctl, ck.keelctl):
        base = [tool, "--endpoints=" + ep0, "member"]
        # etcd refuses membership changes for a few seconds after its start or the last
        # change ("unhealthy cluster", at once): each tool's first add is retried until etcd
        # takes it.
        add = None
        # etcd derives a new member's id from its peer URLs and the current second: an add
        # in the same second as the remove of the previous tool's member would get the
        # removed id back ("member not found").
        time.sleep(1.5)
        for _ in range(60):
            add = opslib.run(base + ["add", "newbie", "--peer-urls=" + url, "--learner"])
            if "unhealthy cluster" not in add.err:
                break
            time.sleep(0.5)
        mid = member_id(ck, ep0, url)
        if not mid:
            ck.fail(f"member add by {os.path.basename(tool)}", repr(add))
            return
        steps = [add,
                 opslib.run(base + ["update", mid, "--peer-urls=" + url2]),
                 opslib.run(base + ["list", "-w", "json"]),
                 opslib.run(base + ["promote", mid]),
                 opslib.run(base + ["remove", mid])]
        dec = str(int(mid, 16))
        for s in steps:
            s.err = opslib.strip_zap(s.err)
            s.out = s.out.replace(mid, "NEWID").replace(dec, "NEWID")
            s.err = s.err.replace(mid, "NEWID")
        outs[tool] = steps
    for i, what in enumerate(["add --learner", "update", "list -w json (with learner)",
                              "promote (not in sync)", "remove"]):
        ck.same(f"member {what}", outs[ck.etcdctl][i], outs[ck.keelctl][i], norm_members)
    # The same in json: the new member's id differs, nothing else.
    for w in ["json", "fields", "protobuf"]:
        outs = []
        for tool in (ck.etcdctl, ck.keelctl):
            time.sleep(6)
            add = opslib.run([tool, "--endpoints=" + ep0, "member", "add", "other",
                              "--peer-urls=" + url, "--learner", "-w", w])
            mid = member_id(ck, ep0, url)
            add.err = opslib.strip_zap(add.err)
            if mid:
                add.out = add.out.replace(str(int(mid, 16)), "NEWID")
                opslib.run([ck.etcdctl, "--endpoints=" + ep0, "member", "remove", mid])
            outs.append(add)
        ck.same(f"member add -w {w}", outs[0], outs[1], norm_pb if w == "protobuf"
                else norm_members)
    bad = [["add"], ["add", "a", "b", "http://x"], ["add", "a"], ["remove"], ["remove", "zz"],
           ["remove", "123456789abcdef01"], ["remove", "1234"], ["update", "1234"],
           ["update", "1234", "--peer-urls=" + url2], ["promote", "1234"], ["promote"]]
    for a in bad:
        ck.compare("member " + " ".join(a), ep0, "member", *a)


def test_move_leader(ck, c):
    eps = ",".join(c.endpoints)
    ids = [c.member_id(i) for i in range(3)]
    lead = c.wait_leader()
    follower = (lead + 1) % 3
    e = opslib.run([ck.etcdctl, "--endpoints=" + eps, "move-leader", "%x" % ids[follower]])
    if not wait_for(lambda: c.leader() == follower):
        ck.fail("move-leader", "etcdctl did not move the leader: " + repr(e))
        return
    k = opslib.run([ck.keelctl, "--endpoints=" + eps, "move-leader", "%x" % ids[lead]])
    moved = wait_for(lambda: c.leader() == lead)
    ck.check("move-leader moves the leader back", moved, repr(k))
    e.err, k.err = opslib.strip_zap(e.err), opslib.strip_zap(k.err)
    e.out = e.out.replace("%x" % ids[lead], "OLD").replace("%x" % ids[follower], "NEW")
    k.out = k.out.replace("%x" % ids[follower], "OLD").replace("%x" % ids[lead], "NEW")
    ck.same("move-leader", e, k)
    for a in [["1234"], ["zz"], [], ["1", "2"]]:
        ck.compare("move-leader " + " ".join(a), eps, "move-leader", *a)
    ck.compare("move-leader (no leader among endpoints)",
               c.endpoints[follower], "move-leader", "%x" % ids[lead])
    for w in ["json", "table"]:
        ck.compare(f"move-leader -w {w} to itself", eps, "move-leader", "%x" % ids[lead],
                   "-w", w, norm=lambda s: re.sub(r'"member_id":\d+', "", s))


def test_snapshot_against_etcd(ck, c, tmp):
    ep0 = c.endpoints[0]
    ks, es = os.path.join(tmp, "k.db"), os.path.join(tmp, "e.db")
    e = opslib.run([ck.etcdctl, "--endpoints=" + ep0, "snapshot", "save", es])
    k = opslib.run([ck.keelctl, "--endpoints=" + ep0, "snapshot", "save", ks])
    ck.check("keelctl snapshot save against etcd (sha-256 trailer checked)",
             k.rc == 0 and k.out == f"Snapshot saved at {ks}\n" and k.err == "" and
             os.path.getsize(ks) % 512 == 32 and not os.path.exists(ks + ".part"), repr(k))
    ck.check("etcdctl snapshot save against etcd", e.rc == 0, repr(e))
    ck.compare("snapshot save (several endpoints)", ",".join(c.endpoints), "snapshot", "save",
               ks + "2")
    ck.compare("snapshot save (no argument)", ep0, "snapshot", "save")
    r = opslib.run([ck.keelctl, "snapshot", "status", es, "-w", "json"])
    s = opslib.run([ck.etcdctl, "snapshot", "status", es, "-w", "json"])
    ck.check("snapshot status of an etcd snapshot is etcdctl's",
             r.rc == 0 and (r.rc, r.out) == (s.rc, s.out), f"{r!r}\n{s!r}")
    ck.compare("snapshot status (missing file)", ep0, "snapshot", "status",
               os.path.join(tmp, "nope"))
    ck.compare("snapshot status (no argument)", ep0, "snapshot", "status")
    d = os.path.join(tmp, "from-etcd")
    r = opslib.run([ck.keelctl, "snapshot", "restore", es, "--data-dir", d])
    ck.check("snapshot restore of an etcd snapshot makes a keeld data dir",
             r.rc == 0 and r.out == "" and os.path.exists(os.path.join(d, "member", "db")),
             repr(r))
    d = os.path.join(tmp, "exists")
    os.mkdir(d)
    ck.compare("snapshot restore into an existing data dir", ep0, "snapshot", "restore", es,
               "--data-dir", d)


def test_version(ck):
    e = opslib.run([ck.etcdctl, "version"])
    k = opslib.run([ck.keelctl, "version"])
    shape = lambda s: re.sub(r"^(etcdctl|keelctl) version: \d+\.\d+\.\d+\n", "V\n", s)  # noqa
    ck.check("version", e.rc == k.rc == 0 and k.out.startswith("keelctl version: ") and
             shape(e.out) == shape(k.out) == "V\nAPI version: 3.4\n", repr(k))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keelctl", required=True)
    a = ap.parse_args()
    if not shutil.which("etcd") or not shutil.which("etcdctl"):
        print("etcd/etcdctl not installed: skipped")
        return 77
    ck = Checker(os.path.abspath(a.keelctl))
    tmp = tempfile.mkdtemp(prefix="keelctl-ops-")
    try:
        with Cluster("etcd", size=3, heartbeat_ms=50, election_ms=500) as c:
            c.start()
            test_version(ck)
            test_reads(ck, c)
            test_alarm_defrag(ck, c)
            test_snapshot_against_etcd(ck, c, tmp)
            test_move_leader(ck, c)
            test_member_changes(ck, c)
        test_alarm_nospace(ck)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ck.finish()


if __name__ == "__main__":
    sys.exit(main())
