#!/usr/bin/env python3
# tests/lib/with_cluster.py — runs a test program against a fresh local cluster of keeld or
# etcd 3.4 and stops the cluster after, whatever happens. The program finds the cluster in
# KEEL_TEST_ENDPOINTS (comma-separated host:port) and KEEL_TEST_SERVER (keeld or etcd).
#   usage: with_cluster.py [--server PATH|etcd] [--size N] [--skip-without-etcd] -- PROGRAM ARGS...
# Exits with the program's exit code; 77 (meson's skip) when --server etcd is asked and
# etcd is not installed.
import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="keeld")
    ap.add_argument("--size", type=int, default=1)
    ap.add_argument("--heartbeat-ms", type=int, default=50)
    ap.add_argument("--election-ms", type=int, default=500)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("no program to run")
    if shutil.which(a.server) is None and not os.path.exists(a.server):
        print(f"with_cluster: {a.server} is not installed: skipped", file=sys.stderr)
        return 77
    with Cluster(a.server, size=a.size, heartbeat_ms=a.heartbeat_ms,
                 election_ms=a.election_ms) as c:
        c.start()
        env = dict(os.environ)
        env["KEEL_TEST_ENDPOINTS"] = ",".join(c.endpoints)
        env["KEEL_TEST_SERVER"] = "etcd" if os.path.basename(a.server) == "etcd" else "keeld"
        env["KEEL_TEST_CLUSTER_DIR"] = c.dir
        rc = subprocess.call(cmd, env=env)
        if rc != 0:
            c.dump_logs()
        return rc


if __name__ == "__main__":
    sys.exit(main())
