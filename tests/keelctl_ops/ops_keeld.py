#!/usr/bin/env python3
# tests/keelctl_ops/ops_keeld.py — keelctl's operational commands against a 3-member keeld:
# what keeld serves (member list, endpoint status/health/hashkv) must print as etcdctl prints
# it against the same cluster, and for what keeld does not serve yet (member add/remove/
# update/promote, alarm, defragment, move-leader) keelctl must fail exactly as etcdctl does.
# Exits 77 when etcdctl is missing.
import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opslib  # noqa: E402
from opslib import Checker, Cluster, norm_health, run  # noqa: E402

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
        # Not served by keeld yet: the same error, exit code and output as etcdctl.
        mid = "%x" % c.member_id(1)
        unserved = [["member", "add", "x", "--peer-urls=http://127.0.0.1:9"],
                    ["member", "add", "x", "--peer-urls=http://127.0.0.1:9", "--learner"],
                    ["member", "remove", mid],
                    ["member", "update", mid, "--peer-urls=http://127.0.0.1:9"],
                    ["member", "promote", mid],
                    ["alarm", "list"], ["alarm", "disarm"],
                    ["defrag"], ["defrag", "--cluster"],
                    ["move-leader", mid]]
        for args in unserved:
            ck.compare(" ".join(args) + " (unserved)", eps if args[0] == "move-leader"
                       else ep0, *args)
        if c.sanitizer_reports():
            ck.fail("keeld sanitizer reports", "\n".join(c.sanitizer_reports()))
    return ck.finish()


if __name__ == "__main__":
    sys.exit(main())
