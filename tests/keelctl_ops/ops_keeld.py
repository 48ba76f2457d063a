#!/usr/bin/env python3
# tests/keelctl_ops/ops_keeld.py — keelctl's operational commands against a 3-member keeld: each
# must print what etcdctl prints against the same cluster. Membership changes, alarms, defrag and
# move-leader are pinned against etcd's own answers by tests/ctlcompat (ops.py, normal build);
# here only their repeatable forms run, so an ASan build of keeld serves them too.
# Exits 77 when etcdctl is missing.
import argparse
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opslib  # noqa: E402
from opslib import Checker, Cluster, norm_health, run, sorted_lines  # noqa: E402

FORMATS = ["simple", "json", "table", "fields", "protobuf"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keelctl", required=True)
    ap.add_argument("--keeld", required=True)
    a = ap.parse_args()
    if not shutil.which("etcdctl"):
        print("etcdctl not installed: skipped")
        return 77
    ck = Checker(os.path.abspath(a.keelctl))
    with Cluster(os.path.abspath(a.keeld), size=3, heartbeat_ms=50, election_ms=500) as c:
        c.start()
        ep0, eps = c.endpoints[0], ",".join(c.endpoints)
        for w in FORMATS:
            ck.compare(f"member list -w {w}", ep0, "member", "list", "-w", w)
        for w in FORMATS:
            ck.compare(f"endpoint status --cluster -w {w}", ep0, "endpoint", "status",
                       "--cluster", "-w", w)
            ck.compare(f"endpoint hashkv --cluster -w {w}", ep0, "endpoint", "hashkv",
                       "--cluster", "-w", w)
            ck.compare(f"endpoint health --cluster -w {w}", ep0, "endpoint", "health",
                       "--cluster", "-w", w, norm=norm_health)
        ck.compare("endpoint status (3 endpoints)", eps, "endpoint", "status")
        # A NUL byte once cut a txn line into an empty one: the compares ended there and the
        # next line ran as a request.
        t = subprocess.run([ck.keelctl, "--endpoints=" + ep0, "txn"],
                           input=b"\0\nput nul 1\n\n\n", capture_output=True, timeout=60)
        g = run([ck.keelctl, "--endpoints=" + ep0, "get", "nul"])
        ck.check("txn refuses a line with a NUL byte and commits nothing",
                 t.returncode == 3 and t.stderr.startswith(b"Error: malformed comparison: ")
                 and g.rc == 0 and g.out == "", f"{t!r} {g!r}")
        # A \x with one hex digit at the end of a line once wrote past the parse buffer.
        t = subprocess.run([ck.keelctl, "--endpoints=" + ep0, "txn"],
                           input=b'\n\nput "\\x5\n\n', capture_output=True, timeout=60)
        ck.check("txn refuses a cut-short \\x escape", t.returncode == 3 and
                 t.stderr.startswith(b"Error: ") and b"Sanitizer" not in t.stderr, repr(t))
        # Commands that change the cluster run twice here (etcdctl, then keelctl), so only
        # forms whose second run answers like the first: no alarm to disarm, defragmenting,
        # moving leadership to the leader, re-setting a member's own peer URL, and refusals;
        # etcdctl's answer must be etcd 3.4's, keelctl's must equal etcdctl's. The real flows
        # (member add/promote/remove, NOSPACE, move-leader) are tests/ctlcompat's.
        lead = c.wait_leader()
        lead_id = "%x" % c.member_id(lead)
        mid = "%x" % c.member_id(1)
        follower = c.endpoints[(lead + 1) % 3]
        # (name, endpoints, args, what etcd 3.4 answers: rc and a pattern of stdout+stderr)
        repeatable = [
            ("alarm list", ep0, ["alarm", "list"], 0, r"\A\Z"),
            ("alarm list -w json", ep0, ["alarm", "list", "-w", "json"], 0, r"\A\{\}\n\Z"),
            ("alarm disarm (nothing raised)", ep0, ["alarm", "disarm"], 0, r"\A\Z"),
            ("defrag", ep0, ["defrag"], 0,
             r"\AFinished defragmenting etcd member\[127\.0\.0\.1:\d+\]\n\Z"),
            ("defrag (3 endpoints)", eps, ["defrag"], 0,
             r"\A(Finished defragmenting etcd member\[127\.0\.0\.1:\d+\]\n){3}\Z"),
            ("move-leader <the leader>", eps, ["move-leader", lead_id], 0,
             r"\ALeadership transferred from %s to %s\n\Z" % (lead_id, lead_id)),
            ("move-leader <unknown id>", eps, ["move-leader", "1234"], 1,
             r"Error: etcdserver: bad leader transferee\n\Z"),
            ("move-leader via a follower only", follower, ["move-leader", lead_id], 128,
             r"\AError: no leader endpoint given at \["),
            ("member update m2 <its own peer URL>", ep0,
             ["member", "update", mid, "--peer-urls=" + c.peer_urls[1]], 0,
             r"\AMember +%s updated in cluster +[0-9a-f]+\n\Z" % mid),
            ("member update m2 <m3's peer URL>", ep0,
             ["member", "update", mid, "--peer-urls=" + c.peer_urls[2]], 1,
             r"Error: etcdserver: Peer URLs already exists\n\Z"),
            ("member promote <a voter>", ep0, ["member", "promote", mid], 1,
             r"Error: etcdserver: can only promote a learner member\n\Z"),
            ("member remove <unknown id>", ep0, ["member", "remove", "1234"], 1,
             r"Error: etcdserver: member not found\n\Z")]
        for name, ep, args, rc, pattern in repeatable:
            e, k = ck.both(ep, *args)
            ck.check(name + ": keeld answers as etcd", e.rc == rc and
                     re.search(pattern, e.out + e.err), repr(e))
            ck.same(name + ": keelctl prints as etcdctl", e, k)
        ck.compare("defrag --cluster", ep0, "defrag", "--cluster", norm=sorted_lines)
        if c.sanitizer_reports():
            ck.fail("keeld sanitizer reports", "\n".join(c.sanitizer_reports()))
    return ck.finish()


if __name__ == "__main__":
    sys.exit(main())
