#!/usr/bin/env python3
# tests/members/unreachable.py — a member added with a peer URL keeld cannot dial (a host
# name) must not stop the cluster: every member restarts and serves, with a warning in its
# log. Before, a restart refused such a membership and a full restart left no member running.
#   usage: unreachable.py --keeld PATH
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from cluster import Cluster, ClusterError  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keeld", required=True)
    a = ap.parse_args()
    url = "http://node4.invalid:2380"
    with Cluster(a.keeld, size=3, heartbeat_ms=50, election_ms=500) as c:
        c.start()
        r = None
        for _ in range(100):  # keeld, as etcd, refuses changes just after a start
            r = c.etcdctl("member", "add", "m4", "--learner", "--peer-urls=" + url)
            if r.rc == 0 or "unhealthy cluster" not in r.err:
                break
            time.sleep(0.2)
        if r.rc != 0:
            print("unreachable: member add failed: %r" % (r,))
            return 1
        for i in range(3):
            c.stop(i)
        try:
            for i in range(3):
                c.start_member(i)
            c.wait_healthy()
        except ClusterError as e:
            print("unreachable: the cluster did not come back: %s" % e)
            return 1
        r = c.etcdctl("put", "after", "restart")
        if r.rc != 0:
            print("unreachable: put after the restart failed: %r" % (r,))
            return 1
        warned = all("cannot dial peer URL \"%s\"" % url in open(m.log_path).read()
                     for m in c.members)
        if not warned:
            print("unreachable: a member did not warn about %s" % url)
            return 1
        print("unreachable: ok (3 members restarted with %s in the membership)" % url)
        return 0


if __name__ == "__main__":
    sys.exit(main())
