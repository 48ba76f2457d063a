#!/usr/bin/env python3
# tests/cluster/e2e/e2e.py — the whole cluster layer on loopback: three keeld members, two
# schedulers, two controller managers and three agents, driven by the keel CLI. Checks what a
# Kubernetes user expects of a ReplicaSet through node loss, scaling, a store leader's death and
# a component leader's death, and that nothing is left running at the end.
"""usage: e2e.py --keeld PATH --keel PATH [--lease SECONDS] [--eviction SECONDS] [--keep]

Steps (each printed with the time since the start):
  1. 3 keeld, 2 `keel scheduler`, 2 `keel controllers`, agents n1 n2 n3
  2. apply a ReplicaSet of 6 sleep pods: all Running, spread 2/2/2
  3. kill -9 agent n3: n3 NotReady, its pods replaced on n1/n2 (6 Running, none on n3)
     within lease TTL + eviction timeout + a few seconds
  4. restart agent n3: it stops the pods it left behind and removes them; n3 Ready again
  5. scale to 10; the store's leader is killed midway; 10 Running
  6. kill -9 the leading scheduler and controller manager; scale to 3: 3 Running
  7. delete the ReplicaSet: every pod gone; stop the components: no pod process remains
"""
import argparse
import base64
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from cluster import Cluster  # noqa: E402

T0 = time.monotonic()


def log(msg):
    print(f"{time.monotonic() - T0:7.2f}s  {msg}", flush=True)


class Failure(Exception):
    pass


class Components:
    """The cluster layer's processes: each in its own process group, all stopped at the end."""

    def __init__(self, keel, endpoints, workdir):
        self.keel = keel
        self.env = dict(os.environ, KEEL_ENDPOINTS=",".join(endpoints))
        self.dir = workdir
        self.procs = {}

    def start(self, name, *args):
        logf = open(os.path.join(self.dir, name + ".log"), "ab")
        p = subprocess.Popen([self.keel, *args], stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=self.env, start_new_session=True)
        logf.close()
        self.procs[name] = p
        return p

    def kill9(self, name):
        p = self.procs.pop(name)
        p.kill()
        p.wait()

    def stop(self, name, timeout=20):
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return p.returncode if p else None
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Failure(f"{name} did not stop within {timeout}s of SIGTERM")

    def stop_all(self):
        """Stops every component; returns what went wrong (bad exits, sanitizer reports)."""
        problems = []
        for name in list(self.procs):
            try:
                rc = self.stop(name)
                if rc != 0:
                    problems.append(f"{name} exited {rc} on SIGTERM")
            except Failure as e:
                problems.append(str(e))
        for f in sorted(os.listdir(self.dir)):
            if f.endswith(".log"):
                text = self.tail(f[:-4], lines=100000)
                if any(m in text for m in ("AddressSanitizer", "LeakSanitizer", "runtime error:")):
                    problems.append(f"sanitizer report in {f}")
        return problems

    def tail(self, name, lines=30):
        try:
            with open(os.path.join(self.dir, name + ".log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def keelcmd(self, *args, check=True, timeout=30):
        r = subprocess.run([self.keel, *args], capture_output=True, text=True, env=self.env,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise Failure(f"keel {' '.join(args)}: rc {r.returncode}\n{r.stdout}{r.stderr}")
        return r


def pods(c):
    r = c.keelcmd("get", "pods", "-o", "json", check=False)
    if r.returncode != 0:
        return None  # the store may be electing a leader: the caller polls again
    return json.loads(r.stdout).get("items", [])


def running(p):
    return (p.get("status", {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp"))


def placement(items):
    by_node = {}
    for p in items:
        if running(p):
            n = p["spec"].get("nodeName", "")
            by_node[n] = by_node.get(n, 0) + 1
    return dict(sorted(by_node.items()))


def wait_for(what, pred, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return time.monotonic() - start, last
        time.sleep(interval)
    raise Failure(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def wait_pods(c, what, check, timeout):
    def probe():
        items = pods(c)
        return (items,) if items is not None and check(items) else None
    took, (items,) = wait_for(what, probe, timeout)
    return took, items


def node_ready(c, name):
    r = c.keelcmd("get", "node", name, "-o", "json", check=False)
    if r.returncode != 0:
        return None
    for cond in json.loads(r.stdout).get("status", {}).get("conditions", []):
        if cond.get("type") == "Ready":
            return cond.get("status")
    return None


def pod_pids(items):
    pids = set()
    for p in items:
        for cs in p.get("status", {}).get("containerStatuses", []):
            if cs.get("pid"):
                pids.add(int(cs["pid"]))
    return pids


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def marked_processes(marker):
    """pids of processes whose command line carries this run's marker argument."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if marker.encode() in argv and alive(int(d)):
            found.append(int(d))
    return found


def manifest(path, replicas, marker):
    with open(path, "w") as f:
        f.write(f"""# a ReplicaSet of sleep processes
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: sleepers
  labels:
    app: sleepers
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: sleepers
  template:
    metadata:
      labels:
        app: sleepers
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: sleep
        command: ["sleep"]
        args: ["{marker}"]
        resources:
          requests:
            cpu: 100m
            memory: 16Mi
""")


def run(a, work):
    marker = str(random.randint(10_000_000, 99_999_999))  # sleep's argument: finds strays
    seen_pids = set()
    with Cluster(a.keeld, size=3, heartbeat_ms=100, election_ms=1000,
                 base_dir=work) as store:
        store.start()
        log(f"store: 3 keeld up, leader m{store.leader() + 1}")
        c = Components(a.keel, store.endpoints, work)
        try:
            election = ["--leader-elect-lease-duration", str(a.lease)]
            for i in (1, 2):
                c.start(f"scheduler{i}", "scheduler", *election)
                c.start(f"controllers{i}", "controllers", *election,
                        "--pod-eviction-timeout", str(a.eviction),
                        "--node-monitor-grace-period", str(a.lease))
            for n in ("n1", "n2", "n3"):
                c.start(f"agent-{n}", "agent", "--node", n, "--cpu", "2", "--memory", "4Gi",
                        "--lease-duration", str(a.lease),
                        "--root-dir", os.path.join(work, "agent-" + n))
            took, _ = wait_for("3 Ready nodes",
                               lambda: all(node_ready(c, n) == "True" for n in ("n1", "n2", "n3")),
                               30)
            log(f"components: 2 schedulers, 2 controller managers, agents n1 n2 n3 Ready "
                f"({took:.2f}s)")

            rs = os.path.join(work, "rs.yaml")
            manifest(rs, 6, marker)
            out = c.keelcmd("apply", "-f", rs).stdout.strip()
            took, items = wait_pods(c, "6 Running pods",
                                    lambda it: sum(map(running, it)) == 6, 30)
            spread = placement(items)
            seen_pids |= pod_pids(items)
            log(f"{out}: 6 Running in {took:.2f}s, spread {spread}")
            if sorted(spread.values()) != [2, 2, 2]:
                raise Failure(f"6 pods on 3 equal nodes should spread 2/2/2, got {spread}")
            print(c.keelcmd("get", "pods", "-o", "wide").stdout, end="", flush=True)

            c.kill9("agent-n3")
            t_kill = time.monotonic()
            took, _ = wait_for("n3 NotReady", lambda: node_ready(c, "n3") not in ("True", None),
                               a.lease + 10)
            log(f"agent n3 killed (-9): n3 NotReady after {took:.2f}s")
            budget = a.lease + a.eviction + 10
            took, items = wait_pods(
                c, "6 Running pods, none on n3",
                lambda it: sum(map(running, it)) == 6 and "n3" not in placement(it), budget)
            seen_pids |= pod_pids(items)
            took = time.monotonic() - t_kill
            log(f"n3's pods running again on n1/n2 {took:.2f}s after the kill "
                f"(lease {a.lease}s + eviction {a.eviction}s), spread {placement(items)}")

            c.start("agent-n3", "agent", "--node", "n3", "--cpu", "2", "--memory", "4Gi",
                    "--lease-duration", str(a.lease), "--root-dir", os.path.join(work, "agent-n3"))
            took, _ = wait_pods(c, "n3's old pods removed",
                                lambda it: not any(p["spec"].get("nodeName") == "n3" for p in it),
                                30)
            wait_for("n3 Ready", lambda: node_ready(c, "n3") == "True", 30)
            log(f"agent n3 restarted: its evicted pods stopped and removed in {took:.2f}s, n3 Ready")

            out = c.keelcmd("scale", "rs/sleepers", "--replicas", "10").stdout.strip()
            t_scale = time.monotonic()
            time.sleep(0.3)
            lead = store.leader()
            store.kill(lead)
            log(f"{out}; store leader m{lead + 1} killed (-9) 0.3s later")
            took, items = wait_pods(c, "10 Running pods",
                                    lambda it: sum(map(running, it)) == 10, 60)
            seen_pids |= pod_pids(items)
            log(f"10 Running {time.monotonic() - t_scale:.2f}s after the scale, "
                f"new store leader m{store.wait_leader(exclude=[lead]) + 1}, "
                f"spread {placement(items)}")
            store.restart(lead)

            for comp in ("scheduler", "controllers"):
                name = component_leader(store, c, comp)
                c.kill9(name)
                log(f"leading {comp} ({name}) killed (-9)")
            out = c.keelcmd("scale", "rs/sleepers", "--replicas", "3").stdout.strip()
            t_scale = time.monotonic()
            took, items = wait_pods(c, "3 Running pods and nothing else",
                                    lambda it: sum(map(running, it)) == 3 and len(it) == 3,
                                    a.lease + 40)
            log(f"{out}: 3 Running {time.monotonic() - t_scale:.2f}s later (the other replicas "
                f"took over), spread {placement(items)}")
            seen_pids |= pod_pids(items)
            print(c.keelcmd("get", "rs", "-o", "wide", check=False).stdout, end="")
            print(c.keelcmd("get", "pods", "-o", "wide", check=False).stdout, end="")

            out = c.keelcmd("delete", "rs", "sleepers").stdout.strip()
            t_del = time.monotonic()
            wait_pods(c, "no pods", lambda it: len(it) == 0, 40)
            log(f"{out}: every pod gone {time.monotonic() - t_del:.2f}s later")
        except Exception:
            for name in sorted(c.procs):
                print(f"---- {name} log tail\n{c.tail(name)}", file=sys.stderr)
            store.dump_logs(lines=15)
            raise
        finally:
            problems = c.stop_all()
            strays = [pid for pid in seen_pids if alive(pid)] + marked_processes(marker)
            for pid in set(strays):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
        if strays:
            raise Failure(f"pod processes left running: {sorted(set(strays))}")
        if problems:
            raise Failure("; ".join(problems))
        log(f"components stopped: none of the {len(seen_pids)} pod processes seen is running")


def component_leader(store, c, comp):
    """Which replica leads: the election's first key holds its identity, <host>_<pid>."""
    r = store.etcdctl("get", "--prefix", f"/registry/leader-election/keel-{comp}/",
                      "--sort-by=CREATE", "--order=ASCEND", "-w", "json", check=True)
    kvs = json.loads(r.out).get("kvs", [])
    if not kvs:
        raise Failure(f"no leader recorded for keel-{comp}")
    ident = base64.b64decode(kvs[0]["value"]).decode()
    pid = int(ident.rsplit("_", 1)[1])
    for name, p in c.procs.items():
        if p.pid == pid:
            return name
    raise Failure(f"keel-{comp}'s leader {ident} is none of the processes started")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keeld", required=True)
    ap.add_argument("--keel", required=True)
    ap.add_argument("--lease", type=int, default=3, help="heartbeat and election TTL (s)")
    ap.add_argument("--eviction", type=int, default=3, help="pod eviction timeout (s)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="keel-e2e-")
    ok = False
    try:
        run(a, work)
        ok = True
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
    finally:
        if a.keep or not ok:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", work])
    if ok:
        log("e2e: ok")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
