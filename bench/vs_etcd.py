#!/usr/bin/env python3
# bench/vs_etcd.py — etcd's own benchmark tool against a three-member keeld cluster and a
# three-member etcd 3.4 cluster on this machine, in the same run, alternating, so every
# keeld figure has its etcd figure beside it. Prints one Markdown table.
#   usage: bench/vs_etcd.py --keeld build/server/keeld [--benchmark .bench-tools/benchmark]
#                           [--total N] [--rounds R]
# The benchmark tool is built from Debian's etcd sources by
# ../shared/tools/build-etcd-benchmark (path given with --benchmark).
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from cluster import Cluster  # noqa: E402

# name, benchmark arguments (after --endpoints/--conns/--clients), conns, clients
WORKLOADS = [
    ("put, 1 client", ["put", "--key-size=8", "--sequential-keys", "--val-size=256"], 1, 1),
    ("put, 100 clients", ["put", "--key-size=8", "--sequential-keys", "--val-size=256"], 10, 100),
    ("range linearizable, 100 clients", ["range", "bench-key", "--consistency=l"], 10, 100),
    ("range serializable, 100 clients", ["range", "bench-key", "--consistency=s"], 10, 100),
]


def run_benchmark(tool, endpoints, args, conns, clients, total):
    cmd = [tool, "--endpoints=" + ",".join(endpoints), "--conns=%d" % conns,
           "--clients=%d" % clients] + args + ["--total=%d" % total]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    avg = re.search(r"Average:\s+([\d.]+) secs", out)
    p99 = re.search(r"99% in ([\d.]+) secs", out)
    if not (rps and avg and p99):
        raise RuntimeError("benchmark printed no summary:\n" + out)
    return float(rps.group(1)), float(avg.group(1)) * 1000, float(p99.group(1)) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keeld", required=True)
    ap.add_argument("--etcd", default="etcd")
    ap.add_argument("--benchmark", default=".bench-tools/benchmark")
    ap.add_argument("--total", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    results = {}
    for rnd in range(a.rounds):
        for name, binary in (("etcd", a.etcd), ("keeld", a.keeld)):
            with Cluster(binary, size=3) as c:
                c.start()
                c.etcdctl("put", "bench-key", "v" * 256, check=True)
                for wl, args, conns, clients in WORKLOADS:
                    r = run_benchmark(a.benchmark, c.endpoints, args, conns, clients, a.total)
                    results.setdefault((wl, name), []).append(r)
                    print("round %d %-6s %-34s %9.0f req/s  avg %7.2f ms  p99 %7.2f ms" %
                          ((rnd + 1, name, wl) + r), file=sys.stderr)
    print("| workload | keeld req/s | etcd req/s | keeld/etcd | keeld avg / p99 ms | "
          "etcd avg / p99 ms |")
    print("|---|---|---|---|---|---|")
    for wl, _, _, _ in WORKLOADS:
        k = results[(wl, "keeld")]
        e = results[(wl, "etcd")]
        kr = sum(x[0] for x in k) / len(k)
        er = sum(x[0] for x in e) / len(e)
        print("| %s | %.0f | %.0f | %.2fx | %.2f / %.2f | %.2f / %.2f |" % (
            wl, kr, er, kr / er, sum(x[1] for x in k) / len(k), max(x[2] for x in k),
            sum(x[1] for x in e) / len(e), max(x[2] for x in e)))


if __name__ == "__main__":
    main()
