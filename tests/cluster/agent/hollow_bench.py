#!/usr/bin/env python3
# tests/cluster/agent/hollow_bench.py — how fast `keel agent --hollow` takes pods to Running:
# starts one keeld (free ports), a hollow agent of --nodes nodes, waits until they are
# registered, then runs hollow_load (--pods pods created already bound, on --threads threads).
# Not a test (not registered with meson test): it prints figures. Stops everything it started.
#   usage: hollow_bench.py --keel PATH --keeld PATH --load PATH [--nodes 1000] [--pods 10000]
#                          [--threads 16]
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from cluster import Cluster  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keel", required=True)
    ap.add_argument("--keeld", required=True)
    ap.add_argument("--load", required=True)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=16)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="keel-hollow-bench-")
    agent = None
    rc = 1
    try:
        with Cluster(a.keeld, size=1, heartbeat_ms=50, election_ms=500, base_dir=work) as c:
            c.start()
            env = dict(os.environ, KEEL_ENDPOINTS=c.endpoints[0])
            log_path = os.path.join(work, "agent.log")
            with open(log_path, "w") as log:
                t0 = time.monotonic()
                agent = subprocess.Popen([a.keel, "agent", "--hollow", "--nodes", str(a.nodes),
                                          "--root-dir", os.path.join(work, "agent")],
                                         env=env, stdout=log, stderr=subprocess.STDOUT)
            while "nodes registered in" not in open(log_path).read():
                if agent.poll() is not None or time.monotonic() - t0 > 120:
                    print(open(log_path).read(), file=sys.stderr)
                    return 1
                time.sleep(0.1)
            print("agent: " + [ln for ln in open(log_path).read().splitlines()
                               if "nodes registered in" in ln][0].split("agent: ", 1)[1])
            rc = subprocess.call([a.load, str(a.pods), str(a.nodes), str(a.threads)], env=env)
            t1 = time.monotonic()
            agent.send_signal(signal.SIGTERM)
            print(f"agent: exit {agent.wait(timeout=60)} {time.monotonic() - t1:.2f}s after "
                  f"SIGTERM (revoking {a.nodes} leases)")
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait()
        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
