#!/usr/bin/env python3
# tests/keelctl_ops/ops_snapshot.py — snapshots in etcd 3.4's format (a bbolt database, then
# its SHA-256), both ways: keelctl snapshot save (stream, trailer, .part then rename, progress
# only on a terminal), etcdctl snapshot save against keeld; snapshot status by keelctl and by
# etcdctl alike, in every format, on keeld's and on etcd's snapshots; keelctl snapshot
# restore into a 1-member and a 3-member keeld cluster, and of an etcd snapshot into keeld;
# etcdctl snapshot restore of a keeld snapshot into an etcd 3.4 that serves the same keys.
# Exits 77 when etcd or etcdctl is missing.
import argparse
import json
import os
import pty
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opslib  # noqa: E402
from opslib import (Checker, Cluster, free_port, keeld_proc, run, stop,  # noqa: E402
                    wait_for)

NKEYS = 100


def revision(ck, ep):
    r = run([ck.etcdctl, "--endpoints=" + ep, "endpoint", "status", "-w", "json"])
    return json.loads(r.out)[0]["Status"]["header"]["revision"]


def fill(ck, ep):
    """A few hundred revisions, overwrites, a delete, a key on a lease and a compaction, so
    the snapshot has history, tombstones, leases and compaction revisions. Returns the
    revision just before k000 was overwritten (k000 is v000 there)."""
    e = [ck.etcdctl, "--endpoints=" + ep]
    for i in range(NKEYS):
        run(e + ["put", "k%03d" % i, "v%03d" % i])
    run(e + ["compact", "20"])
    mid = revision(ck, ep)
    run(e + ["put", "k000", "again"])
    run(e + ["put", "gone", "x"])
    run(e + ["del", "gone"])
    g = run(e + ["lease", "grant", "3600"])
    lease = g.out.split()[1] if g.rc == 0 else "0"
    run(e + ["put", "leased", "by-lease", "--lease=" + lease])
    return mid


def kvs(ck, ep, rev=0):
    """Every key (json: values, revisions, versions, leases) and the header's revision."""
    r = run([ck.etcdctl, "--endpoints=" + ep, "get", "", "--from-key", "-w", "json",
             "--rev=%d" % rev])
    if r.rc != 0:
        return r.err
    d = json.loads(r.out)
    return d.get("kvs", []), d["header"]["revision"]


def leases(ck, ep):
    return run([ck.etcdctl, "--endpoints=" + ep, "lease", "list"]).out


STATUS_FORMATS = ("simple", "json", "table", "fields")


def same_but_hash(a, b):
    """Two -w json statuses of one state. The hash may differ: keeld checkpoints a lease's
    remaining TTL (no new revision) every few seconds and a snapshot carries it, as etcd's do
    with lease checkpoints enabled."""
    try:
        x, y = json.loads(a), json.loads(b)
    except ValueError:
        return False
    x.pop("hash")
    y.pop("hash")
    return x == y


def status_agrees(ck, path, what):
    """keelctl and etcdctl print the same status of one file, in every format."""
    for w in STATUS_FORMATS:
        k = run([ck.keelctl, "snapshot", "status", path, "-w", w])
        e = run([ck.etcdctl, "snapshot", "status", path, "-w", w])
        ck.check(f"snapshot status -w {w} of {what}: keelctl prints what etcdctl prints",
                 k.rc == 0 and (k.rc, k.out) == (e.rc, e.out), f"\n=== etcdctl {e!r}\n"
                 f"=== keelctl {k!r}")


def status(ck, path, w="json"):
    return run([ck.keelctl, "snapshot", "status", path, "-w", w])


class State:
    """What a member served when its snapshot was taken."""

    def __init__(self, ck, ep, mid):
        self.kvs = kvs(ck, ep)
        self.rev = revision(ck, ep)
        self.leases = leases(ck, ep)
        self.mid = mid
        self.at_mid = kvs(ck, ep, mid)


def same_data(ck, ep, want, what):
    """ep serves what want recorded: every key with its revisions, versions and lease, the
    revision, the history (a read at an older revision) and the leases."""
    got = kvs(ck, ep)
    ck.check(f"{what}: the same keys, values, revisions and leases", got == want.kvs,
             f"\n=== want {want.kvs!r}\n=== got  {got!r}")
    got_mid = kvs(ck, ep, want.mid)
    ck.check(f"{what}: the same history (a read at revision {want.mid})",
             got_mid[0] == want.at_mid[0] if isinstance(got_mid, tuple) else False,
             f"\n=== want {want.at_mid!r}\n=== got  {got_mid!r}")
    got_l = leases(ck, ep)
    ck.check(f"{what}: the same leases", got_l == want.leases and "found 1 leases" in got_l,
             f"{want.leases!r} vs {got_l!r}")


def test_save(ck, c, tmp):
    ep0 = c.endpoints[0]
    ks, es = os.path.join(tmp, "k.snap"), os.path.join(tmp, "e.snap")
    k = run([ck.keelctl, "--endpoints=" + ep0, "snapshot", "save", ks])
    ck.check("snapshot save, piped: the one line, no progress, no .part left",
             k.rc == 0 and k.out == f"Snapshot saved at {ks}\n" and k.err == "" and
             not os.path.exists(ks + ".part"), repr(k))
    ck.check("snapshot file ends with a SHA-256 trailer (size % 512 == 32)",
             os.path.getsize(ks) % 512 == 32, str(os.path.getsize(ks)))
    e = run([ck.etcdctl, "--endpoints=" + ep0, "snapshot", "save", es])
    ck.check("etcdctl snapshot save against keeld", e.rc == 0 and
             e.out == f"Snapshot saved at {es}\n", repr(e))
    rev = revision(ck, ep0)
    sk, se = status(ck, ks), status(ck, es)
    ok = sk.rc == 0 and se.rc == 0
    dk = json.loads(sk.out) if ok else {}
    ck.check("snapshot status -w json", ok and dk["revision"] == rev and
             dk["totalKey"] > NKEYS and dk["totalSize"] > 0 and
             dk["totalSize"] + 32 <= os.path.getsize(ks), f"{sk!r} rev {rev}")
    ck.check("keelctl's and etcdctl's snapshots of the same state have the same status",
             ok and same_but_hash(sk.out, se.out), f"{sk!r}\n{se!r}")
    status_agrees(ck, ks, "keeld's snapshot")
    if not ok:
        return ks
    h = "%x" % dk["hash"]
    simple = status(ck, ks, "simple")
    ck.check("snapshot status -w simple", simple.rc == 0 and re.fullmatch(
        rf"{h}, {rev}, {dk['totalKey']}, \d+(\.\d)? kB\n", simple.out) is not None, repr(simple))
    fields = status(ck, ks, "fields")
    ck.check("snapshot status -w fields", fields.out == (
        f'"Hash" : {dk["hash"]}\n"Revision" : {rev}\n"Keys" : {dk["totalKey"]}\n'
        f'"Size" : {dk["totalSize"]}\n'), repr(fields))
    table = status(ck, ks, "table")
    lines = table.out.splitlines()
    ck.check("snapshot status -w table", table.rc == 0 and len(lines) == 5 and
             lines[1].split() == ["|", "HASH", "|", "REVISION", "|", "TOTAL", "KEYS", "|",
                                  "TOTAL", "SIZE", "|"] and h in lines[3] and
             len(set(len(x) for x in lines)) == 1, repr(table))
    pb = status(ck, ks, "protobuf")
    ck.check("snapshot status -w protobuf is etcdctl's error", pb.rc == 4 and
             pb.err == "Error: protobuf not supported as output format\n", repr(pb))
    return ks


def test_big_and_cancelled(ck, c, tmp):
    """A store of ~20 MB streams in many batches under backpressure; a client that gives up
    mid-stream leaves the member serving and the next snapshot whole."""
    ep0 = c.endpoints[0]
    blob = os.path.join(tmp, "blob")
    with open(blob, "wb") as f:
        f.write(os.urandom(75000).hex().encode())  # 150 kB of text
    for i in range(130):
        with open(blob, "rb") as f:
            subprocess.run([ck.etcdctl, "--endpoints=" + ep0, "put", "big%03d" % i], stdin=f,
                           stdout=subprocess.DEVNULL, env=dict(os.environ, ETCDCTL_API="3"))
    cut = run([ck.etcdctl, "--endpoints=" + ep0, "snapshot", "save", os.path.join(tmp, "cut"),
               "--command-timeout=20ms"])
    ck.check("a snapshot the client cancels mid-stream fails on the client", cut.rc != 0,
             repr(cut))
    ks, es = os.path.join(tmp, "big-k.snap"), os.path.join(tmp, "big-e.snap")
    k = run([ck.keelctl, "--endpoints=" + ep0, "snapshot", "save", ks])
    e = run([ck.etcdctl, "--endpoints=" + ep0, "snapshot", "save", es])
    ok = k.rc == 0 and e.rc == 0
    ck.check("a 20 MB snapshot by keelctl and by etcdctl", ok and
             os.path.getsize(ks) > 19_000_000 and os.path.getsize(ks) % 512 == 32,
             f"{k!r}\n{e!r}")
    if ok:
        sk, se = status(ck, ks), status(ck, es)
        ck.check("both 20 MB snapshots have the same status", sk.rc == 0 and
                 same_but_hash(sk.out, se.out), f"{sk!r}\n{se!r}")
        status_agrees(ck, ks, "keeld's 20 MB snapshot (overflow pages, branch pages)")


def test_stale_copy_removed(ck, c):
    """A copy left by a member that crashed while sending a snapshot goes at its restart."""
    m = c.members[2]
    c.kill(2)
    stale = os.path.join(m.data_dir, "member", "snapshot-send-0x1.db")
    with open(stale, "wb") as f:
        f.write(b"x" * 4096)
    c.restart(2)
    ck.check("a stale snapshot copy is removed when the member restarts",
             not os.path.exists(stale), stale)


def test_progress_on_terminal(ck, c, tmp):
    """On a terminal the save shows progress on stderr; stdout (piped) keeps its one line."""
    path = os.path.join(tmp, "tty.snap")
    master, slave = pty.openpty()
    p = subprocess.Popen([ck.keelctl, "--endpoints=" + c.endpoints[0], "snapshot", "save",
                          path], stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            b = os.read(master, 4096)
        except OSError:
            break
        if not b:
            break
        seen += b
    out = p.communicate(timeout=30)[0]
    os.close(master)
    ck.check("snapshot save on a terminal shows progress on stderr",
             p.returncode == 0 and b"\r" in seen and b"receiving snapshot" in seen and
             out == f"Snapshot saved at {path}\n".encode(), f"{seen!r} {out!r}")


def restore(ck, snap, d, name, cluster, peer_port, token="keel-restore", extra=()):
    return run([ck.keelctl, "snapshot", "restore", snap, "--data-dir", d, "--name", name,
                "--initial-cluster", cluster, "--initial-cluster-token", token,
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}"] + list(extra))


def healthy(ck, ep):
    return run([ck.etcdctl, "--endpoints=" + ep, "endpoint", "health"]).rc == 0


def test_restore_one(ck, keeld, snap, tmp, want):
    rev = want.rev
    d = os.path.join(tmp, "r1")
    pp, cp = free_port(), free_port()
    cl = f"r1=http://127.0.0.1:{pp}"
    r = restore(ck, snap, d, "r1", cl, pp)
    ck.check("snapshot restore (1 member): silent when piped", r.rc == 0 and r.out == "" and
             r.err == "" and os.path.exists(os.path.join(d, "member", "db")) and
             os.path.exists(os.path.join(d, "member", "identity")) and
             os.path.isdir(os.path.join(d, "member", "wal")), repr(r))
    if r.rc != 0:
        return
    p = keeld_proc(keeld, d, "r1", cl, pp, cp, os.path.join(tmp, "r1.log"))
    ep = f"127.0.0.1:{cp}"
    try:
        up = wait_for(lambda: healthy(ck, ep), 20)
        ck.check("keeld starts from the restored dir", up, open(os.path.join(tmp, "r1.log")).read())
        if not up:
            return
        g = run([ck.etcdctl, "--endpoints=" + ep, "get", "k", "--prefix", "--keys-only"])
        keys = [x for x in g.out.splitlines() if x]
        v = run([ck.etcdctl, "--endpoints=" + ep, "get", "k000", "--print-value-only"])
        ck.check("restored member serves the data", len(keys) == NKEYS and
                 v.out == "again\n", f"{len(keys)} keys, {v!r}")
        ck.check("restored member keeps the revision", revision(ck, ep) == rev,
                 str(revision(ck, ep)))
        same_data(ck, ep, want, "keeld restored from keeld's snapshot")
        ck.check("restored member takes writes", run(
            [ck.etcdctl, "--endpoints=" + ep, "put", "after", "1"]).rc == 0 and
            revision(ck, ep) == rev + 1)
        busy = run([ck.keelctl, "defrag", "--data-dir", d])
        ck.check("defrag --data-dir of a running member refuses", busy.rc == 1 and
                 busy.err.startswith(f"Failed to defragment etcd data[{d}] (") and
                 "in use by a running keeld" in busy.err, repr(busy))
        ml = run([ck.etcdctl, "--endpoints=" + ep, "member", "list"])
        ck.check("restored member's membership", ml.out.count("\n") == 1 and
                 f", started, r1, http://127.0.0.1:{pp}, http://127.0.0.1:{cp}, false" in ml.out,
                 repr(ml))
    finally:
        stop(p)
        rep = opslib.sanitizer_report(os.path.join(tmp, "r1.log"))
        ck.check("restored keeld exits clean (sanitizers)", rep is None, str(rep))
    old = run([ck.keelctl, "snapshot", "status", os.path.join(d, "member", "db")])
    ck.check("a Keel store file (LMDB, what Keel's snapshots once were) is not a snapshot",
             old.rc == 1 and "not a bbolt database" in old.err, repr(old))
    off = run([ck.keelctl, "defrag", "--data-dir", d])
    ck.check("defrag --data-dir of a stopped member", off.rc == 0 and off.out == "" and
             off.err == "", repr(off))


def test_restore_three(ck, keeld, snap, tmp, rev):
    ports = [(free_port(), free_port()) for _ in range(3)]
    cl = ",".join(f"r{i + 1}=http://127.0.0.1:{pp}" for i, (pp, _) in enumerate(ports))
    procs = []
    try:
        for i, (pp, cp) in enumerate(ports):
            d = os.path.join(tmp, f"t{i + 1}")
            r = restore(ck, snap, d, f"r{i + 1}", cl, pp)
            if not ck.check(f"snapshot restore (3 members): r{i + 1}", r.rc == 0, repr(r)):
                return
        for i, (pp, cp) in enumerate(ports):
            procs.append(keeld_proc(keeld, os.path.join(tmp, f"t{i + 1}"), f"r{i + 1}", cl,
                                    pp, cp, os.path.join(tmp, f"t{i + 1}.log")))
        eps = [f"127.0.0.1:{cp}" for _, cp in ports]
        up = wait_for(lambda: all(healthy(ck, e) for e in eps), 30)
        ck.check("a 3-member cluster starts from the restored dirs", up,
                 "".join(open(os.path.join(tmp, f"t{i + 1}.log")).read()[-2000:]
                         for i in range(3)))
        if not up:
            return
        # Members publish their client URLs once they are up: wait for all three.
        published = wait_for(lambda: run([ck.etcdctl, "--endpoints=" + eps[0], "member",
                                          "list"]).out.count(", started, ") == 3, 20)
        ck.check("every restored member publishes its client URLs", published, run(
            [ck.etcdctl, "--endpoints=" + eps[0], "member", "list"]).out)
        vals = [run([ck.etcdctl, "--endpoints=" + e, "get", "k050", "--print-value-only",
                     "--consistency=s"]).out for e in eps]
        ck.check("every restored member serves the data", vals == ["v050\n"] * 3, repr(vals))
        ck.check("restored members keep the revision",
                 all(revision(ck, e) == rev for e in eps))
        hk = run([ck.keelctl, "--endpoints=" + eps[0], "endpoint", "hashkv", "--cluster"])
        hashes = {line.split(", ")[1] for line in hk.out.splitlines()}
        ck.check("restored members hash alike", hk.rc == 0 and len(hashes) == 1 and
                 hk.out.count("\n") == 3, repr(hk))
        ml = run([ck.etcdctl, "--endpoints=" + eps[0], "member", "list"])
        ck.check("restored cluster's membership", all(
            f"r{i + 1}, http://127.0.0.1:{pp}" in ml.out for i, (pp, _) in enumerate(ports)),
            repr(ml))
    finally:
        for p in procs:
            stop(p)
        for i in range(len(procs)):
            rep = opslib.sanitizer_report(os.path.join(tmp, f"t{i + 1}.log"))
            ck.check(f"restored keeld r{i + 1} exits clean (sanitizers)", rep is None, str(rep))


def test_restore_errors(ck, snap, tmp):
    pp = free_port()
    cl = f"x=http://127.0.0.1:{pp}"
    d = os.path.join(tmp, "exists")
    os.mkdir(d)
    r = restore(ck, snap, d, "x", cl, pp)
    ck.check("restore into an existing dir", r.rc == 1 and
             r.err == f'Error: data-dir "{d}" exists\n', repr(r))
    raw = os.path.join(tmp, "nohash.snap")
    with open(snap, "rb") as f:
        data = f.read()
    with open(raw, "wb") as f:
        f.write(data[:-32])
    d = os.path.join(tmp, "nohash")
    r = restore(ck, raw, d, "x", cl, pp)
    ck.check("restore of a file without the SHA-256", r.rc == 1 and
             r.err == "Error: snapshot missing hash but --skip-hash-check=false\n" and
             not os.path.exists(d), repr(r))
    r = restore(ck, raw, d, "x", cl, pp, extra=["--skip-hash-check"])
    ck.check("restore --skip-hash-check", r.rc == 0 and
             os.path.exists(os.path.join(d, "member", "db")), repr(r))
    bad = os.path.join(tmp, "bad.snap")
    with open(bad, "wb") as f:
        f.write(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    d = os.path.join(tmp, "bad")
    r = restore(ck, bad, d, "x", cl, pp)
    ck.check("restore of a corrupted snapshot", r.rc == 1 and
             r.err.startswith("Error: expected sha256 [") and not os.path.exists(d), repr(r))
    r = restore(ck, snap, os.path.join(tmp, "mism"), "x", f"y=http://127.0.0.1:{pp}", pp)
    ck.check("restore whose name is not in --initial-cluster", r.rc == 1 and
             r.err.startswith("Error: ") and not os.path.exists(os.path.join(tmp, "mism")),
             repr(r))
    # A truncated snapshot (its last page and the SHA-256 gone) makes etcdctl panic; keelctl
    # says what is wrong with the file. Damaged page headers must not crash it either.
    cut = os.path.join(tmp, "cut.snap")
    with open(cut, "wb") as f:
        f.write(data[:len(data) - 32 - 4096])
    st = run([ck.keelctl, "snapshot", "status", cut])
    d = os.path.join(tmp, "cut")
    r = restore(ck, cut, d, "x", cl, pp, extra=["--skip-hash-check"])
    ck.check("status and restore --skip-hash-check of a truncated snapshot fail cleanly",
             st.rc == 1 and st.err.startswith(f"Error: {cut}: damaged bbolt file: truncated")
             and r.rc == 1 and r.err.startswith("Error: ") and "truncated" in r.err and
             not os.path.exists(d), f"{st!r}\n{r!r}")
    bad_runs = []
    for page in range(2, (len(data) - 32) // 4096):
        dmg = bytearray(data)
        dmg[page * 4096 + 13] = 39  # the page's overflow count: far past the last page
        with open(bad, "wb") as f:
            f.write(dmg)
        st = run([ck.keelctl, "snapshot", "status", bad])
        d = os.path.join(tmp, "dmg%d" % page)
        r = restore(ck, bad, d, "x", cl, pp, extra=["--skip-hash-check"])
        if st.rc not in (0, 1) or (st.rc == 1 and not st.err.startswith("Error: ")) or \
                r.rc not in (0, 1) or (r.rc == 1 and os.path.exists(d)):
            bad_runs.append((page, st, r))
    ck.check("status and restore of snapshots with a damaged page never crash",
             not bad_runs, repr(bad_runs))
    r = run([ck.keelctl, "snapshot", "restore"])
    ck.check("restore without a file", r.rc == 128 and
             r.err == "Error: snapshot restore requires exactly one argument\n", repr(r))


def test_etcd_restores_keeld_snapshot(ck, etcd, snap, tmp, want):
    """etcdctl snapshot restore of keeld's snapshot: etcd 3.4 starts from it and serves the
    same keys, revisions and leases."""
    d = os.path.join(tmp, "etcd-from-keeld")
    pp, cp = free_port(), free_port()
    cl = f"e1=http://127.0.0.1:{pp}"
    r = run([ck.etcdctl, "snapshot", "restore", snap, "--data-dir", d, "--name", "e1",
             "--initial-cluster", cl, "--initial-advertise-peer-urls",
             f"http://127.0.0.1:{pp}"])
    if not ck.check("etcdctl snapshot restore of keeld's snapshot", r.rc == 0, repr(r)):
        return
    log = os.path.join(tmp, "etcd-from-keeld.log")
    p = keeld_proc(etcd, d, "e1", cl, pp, cp, log)
    ep = f"127.0.0.1:{cp}"
    try:
        up = wait_for(lambda: healthy(ck, ep), 20)
        if not ck.check("etcd 3.4 starts from keeld's snapshot", up, open(log).read()[-3000:]):
            return
        same_data(ck, ep, want, "etcd restored from keeld's snapshot")
        ck.check("etcd restored from keeld's snapshot keeps the revision",
                 revision(ck, ep) == want.rev, str(revision(ck, ep)))
    finally:
        stop(p)


def test_keeld_restores_etcd_snapshot(ck, keeld, etcd, tmp):
    """An etcd 3.4 snapshot: keelctl's status agrees with etcdctl's, and keelctl snapshot
    restore makes a keeld data dir that serves the same keys at the same revisions."""
    es = os.path.join(tmp, "etcd.snap")
    with Cluster(etcd, size=1, heartbeat_ms=50, election_ms=500) as c:
        c.start()
        ep0 = c.endpoints[0]
        mid = fill(ck, ep0)
        want = State(ck, ep0, mid)
        r = run([ck.etcdctl, "--endpoints=" + ep0, "snapshot", "save", es])
        if not ck.check("etcdctl snapshot save against etcd", r.rc == 0, repr(r)):
            return
    status_agrees(ck, es, "etcd's snapshot")
    d = os.path.join(tmp, "keeld-from-etcd")
    pp, cp = free_port(), free_port()
    cl = f"k1=http://127.0.0.1:{pp}"
    r = restore(ck, es, d, "k1", cl, pp)
    if not ck.check("keelctl snapshot restore of etcd's snapshot", r.rc == 0 and r.out == "" and
                    r.err == "", repr(r)):
        return
    log = os.path.join(tmp, "keeld-from-etcd.log")
    p = keeld_proc(keeld, d, "k1", cl, pp, cp, log)
    ep = f"127.0.0.1:{cp}"
    try:
        up = wait_for(lambda: healthy(ck, ep), 20)
        if not ck.check("keeld starts from etcd's snapshot", up, open(log).read()[-3000:]):
            return
        same_data(ck, ep, want, "keeld restored from etcd's snapshot")
        ck.check("keeld restored from etcd's snapshot keeps the revision",
                 revision(ck, ep) == want.rev, str(revision(ck, ep)))
        ck.check("keeld restored from etcd's snapshot takes writes", run(
            [ck.etcdctl, "--endpoints=" + ep, "put", "after", "1"]).rc == 0 and
            revision(ck, ep) == want.rev + 1)
    finally:
        stop(p)
        rep = opslib.sanitizer_report(log)
        ck.check("keeld restored from etcd's snapshot exits clean (sanitizers)", rep is None,
                 str(rep))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keelctl", required=True)
    ap.add_argument("--keeld", required=True)
    a = ap.parse_args()
    etcd = shutil.which("etcd")
    if not shutil.which("etcdctl") or not etcd:
        print("etcd or etcdctl not installed: skipped")
        return 77
    keeld = os.path.abspath(a.keeld)
    ck = Checker(os.path.abspath(a.keelctl))
    tmp = tempfile.mkdtemp(prefix="keelctl-snap-")
    try:
        with Cluster(keeld, size=3, heartbeat_ms=50, election_ms=500) as c:
            c.start()
            mid = fill(ck, c.endpoints[0])
            want = State(ck, c.endpoints[0], mid)
            rev = want.rev
            snap = test_save(ck, c, tmp)
            test_progress_on_terminal(ck, c, tmp)
            test_big_and_cancelled(ck, c, tmp)
            test_stale_copy_removed(ck, c)
            if c.sanitizer_reports():
                ck.fail("keeld sanitizer reports", "\n".join(c.sanitizer_reports()))
        test_restore_one(ck, keeld, snap, tmp, want)
        test_restore_three(ck, keeld, snap, tmp, rev)
        test_etcd_restores_keeld_snapshot(ck, etcd, snap, tmp, want)
        test_keeld_restores_etcd_snapshot(ck, keeld, etcd, tmp)
        test_restore_errors(ck, snap, tmp)
    finally:
        opslib._kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return ck.finish()


if __name__ == "__main__":
    sys.exit(main())
