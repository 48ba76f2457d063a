#!/usr/bin/env python3
# tests/cluster/agent/agent.py — `keel agent` against a live keeld (KEEL_TEST_ENDPOINTS, from
# tests/lib/with_cluster.py). The test plays the scheduler: it writes bound Pods with keelctl.
# Every process it starts (agents, and through them pods) carries a marker in its environment;
# whatever happens, everything with the marker is SIGKILLed at the end.
"""Checks, in order (one store; agents on node n1, then hollow nodes):

node_registered_ready       Node n1: capacity from flags, labels, taints, Ready, addresses,
                            kubelet port, limits mode; heartbeat Lease key on a store lease
ready_restored              a Node set NotReady by someone else is Ready again (lease alive)
lease_regranted             a revoked heartbeat lease is granted again and the key re-put
pod_runs                    pid alive in its own process group, env and workingDir, log file,
                            HTTP logs (whole, tailLines, follow), healthz, 404s
two_containers              two processes, each its own group and log; logs without a
                            container name says which to choose
restart_backoff             Always + exit 3: restartCount grows, CrashLoopBackOff, lastState;
                            logs?previous=true gives the last finished instance's output
restart_never               Never: Succeeded with exitCode 0, Failed with exitCode 7; OnFailure:
                            a success is not restarted, a failure is; a command
                            that cannot run: exit 127 and the reason in its log
memory_limit                a 64Mi limit makes a 200 MB allocation fail (the same pod without
                            it succeeds)
graceful_delete             deletionTimestamp: SIGTERM, SIGKILL after the grace, object and
                            directory removed
path_uid_refused            a pod whose metadata.uid is a path ("../../victim") is refused with
                            one log line and left alone: no directory made or removed outside
                            the root, not run, not deleted (review H1)
vanished_pod_killed         a pod removed from the store while running is killed at once, and
                            a follow of its log ends
adoption                    kill -9 agent: pods keep running; restart: the same pid is adopted
                            (and watched: killing it restarts the container), a pod deleted
                            while the agent was down is killed, a corrupt state dir is reported
                            and removed
sigterm_stops_everything    SIGTERM agent: exit 0, no process left, heartbeat key revoked
hollow                      --hollow --nodes 50: 50 Nodes and Leases, 200 pods Running, a
                            deleted hollow pod is removed
bad_flags_refused           --node A/../B, a bad label or taint: exit 2 with the reason, nothing
                            written (review M7); runs first, needs no store
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

MARK = "KEEL_AGENT_TEST_MARK"


class Fail(Exception):
    pass


class T:
    def __init__(self, keel, keelctl, endpoints, root):
        self.keel = keel
        self.keelctl = keelctl
        self.endpoints = endpoints
        self.root = root
        self.mark = uuid.uuid4().hex
        self.agents = []

    # ---- store ----
    def ctl(self, *args, inp=None, check=True):
        r = subprocess.run([self.keelctl, "--endpoints", self.endpoints] + list(args),
                           capture_output=True, text=True, input=inp, timeout=20)
        if check and r.returncode != 0:
            raise Fail(f"keelctl {args}: {r.stderr}")
        return r

    def get(self, key):
        out = self.ctl("get", key, "--print-value-only").stdout.strip()
        return json.loads(out) if out else None

    def put(self, key, obj):
        self.ctl("put", key, json.dumps(obj))

    def delete_key(self, key):
        self.ctl("del", key)

    def lease_of(self, key):
        out = self.ctl("get", key, "-w", "json").stdout
        kvs = json.loads(out).get("kvs") or []
        return kvs[0].get("lease", 0) if kvs else None

    def pod(self, name):
        return self.get(f"/registry/pods/default/{name}")

    def put_pod(self, name, containers, node="n1", policy="Always", grace=30, meta=None):
        obj = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default", "uid": str(uuid.uuid4()),
                            "creationTimestamp": "2026-11-27T15:00:00Z"},
               "spec": {"nodeName": node, "restartPolicy": policy,
                        "terminationGracePeriodSeconds": grace, "containers": containers},
               "status": {"phase": "Pending", "conditions": [
                   {"type": "PodScheduled", "status": "True"}]}}
        if meta:
            obj["metadata"].update(meta)
        self.put(f"/registry/pods/default/{name}", obj)
        return obj

    def mark_deleted(self, name, grace):
        p = self.pod(name)
        p["metadata"]["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        p["metadata"]["deletionGracePeriodSeconds"] = grace
        p["metadata"].pop("resourceVersion", None)
        self.put(f"/registry/pods/default/{name}", p)

    # ---- agents ----
    def start_agent(self, *args, name="n1"):
        env = dict(os.environ, KEEL_ENDPOINTS=self.endpoints)
        env[MARK] = self.mark
        log = open(os.path.join(self.root, f"agent-{name}-{len(self.agents)}.log"), "w")
        p = subprocess.Popen([self.keel, "agent"] + list(args), env=env, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
        p.log_path = log.name
        log.close()
        self.agents.append(p)
        return p

    def agent_log(self, p):
        with open(p.log_path) as f:
            return f.read()

    def marked_pids(self):
        pids = []
        needle = f"{MARK}={self.mark}".encode()
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == os.getpid():
                continue
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    env = f.read().split(b"\0")
                with open(f"/proc/{d}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if needle in env and state != "Z":
                pids.append(int(d))
        return pids

    def cleanup(self):
        for p in self.agents:
            if p.poll() is None:
                p.kill()
                p.wait()
        for _ in range(3):
            for pid in self.marked_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.1)


def wait(what, fn, timeout=15.0, step=0.1):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = fn()
        except Fail:
            last = None
        if last:
            return last
        time.sleep(step)
    raise Fail(f"timed out waiting for {what} (last: {last!r})")


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cstatus(pod, i=0):
    css = (pod or {}).get("status", {}).get("containerStatuses") or []
    return css[i] if len(css) > i else {}


def cond(obj, typ):
    for c in (obj or {}).get("status", {}).get("conditions", []):
        if c.get("type") == typ:
            return c.get("status")
    return None


def http_get(port, path, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, body.decode(errors="replace")


def st_body_lines(t, name):
    """Every line of a pod's log as whole lines with their newline."""
    _, body = http_get(t.port, f"/logs/default/{name}")
    return [ln + "\n" for ln in body.splitlines()]


def check(c, msg):
    if not c:
        raise Fail(msg)


# ---- the checks ------------------------------------------------------------------------------

def node_registered_ready(t):
    node = wait("node n1 Ready", lambda: (lambda n: n if cond(n, "Ready") == "True" else None)(
        t.get("/registry/nodes/n1")))
    st = node["status"]
    check(st["capacity"] == {"cpu": "3", "memory": "5Gi", "pods": "110"}, st["capacity"])
    check(st["allocatable"] == st["capacity"], st)
    check(node["metadata"]["labels"].get("zone") == "a", node["metadata"])
    check(node["metadata"]["labels"].get("kubernetes.io/hostname") == "n1", node["metadata"])
    check({"key": "dedicated", "value": "x", "effect": "NoSchedule"} in node["spec"]["taints"],
          node["spec"])
    check({"type": "InternalIP", "address": "127.0.0.1"} in st["addresses"], st)
    port = st["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    check(isinstance(port, int) and port > 0, st["daemonEndpoints"])
    check(st.get("limits") in ("setrlimit", "cgroup2"), st.get("limits"))
    lease = t.get("/registry/leases/kube-node-lease/n1")
    check(lease and lease["spec"]["holderIdentity"] == "n1", lease)
    check(lease["spec"]["leaseDurationSeconds"] == 5, lease)
    check(t.lease_of("/registry/leases/kube-node-lease/n1") not in (None, 0),
          "the heartbeat key is not attached to a store lease")
    return port


def ready_restored(t):
    node = t.get("/registry/nodes/n1")
    for c in node["status"]["conditions"]:
        if c["type"] == "Ready":
            c["status"] = "Unknown"
            c["reason"] = "NodeStatusUnknown"
    t.put("/registry/nodes/n1", node)
    wait("Ready back to True", lambda: cond(t.get("/registry/nodes/n1"), "Ready") == "True")
    check(t.get("/registry/nodes/n1")["spec"].get("unschedulable") in (None, False), "spec")


def lease_regranted(t):
    key = "/registry/leases/kube-node-lease/n1"
    old = t.lease_of(key)
    t.ctl("lease", "revoke", format(old, "x"))
    wait("heartbeat key back on a new lease",
         lambda: t.lease_of(key) not in (None, 0, old), timeout=10)


def pod_runs(t, port):
    script = ('echo "hello $A $KEEL_POD_NAME $KEEL_POD_NAMESPACE $KEEL_NODE_NAME"; pwd; '
              'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done')
    obj = t.put_pod("run", [{"name": "main", "command": ["sh", "-c"], "args": [script],
                             "env": [{"name": "A", "value": "b"}], "workingDir": "/tmp"}])
    uid = obj["metadata"]["uid"]
    p = wait("pod run Running", lambda: (lambda p: p if p.get("status", {}).get("phase") ==
                                         "Running" and cstatus(p).get("pid") else None)(t.pod("run")))
    cs = cstatus(p)
    pid = cs["pid"]
    check(cs["containerID"] == f"pid://{pid}", cs)
    check("running" in cs["state"] and cs["ready"] is True and cs["restartCount"] == 0, cs)
    check(cond(p, "Ready") == "True" and cond(p, "ContainersReady") == "True", p["status"])
    check(cond(p, "PodScheduled") == "True", p["status"])
    check(p["status"].get("hostIP") == "127.0.0.1" and p["status"].get("startTime"), p["status"])
    check(p["spec"]["containers"][0]["args"] == [script], "spec rewritten")
    check(alive(pid), "pid not alive")
    check(os.getpgid(pid) == pid, "not in its own process group")

    def env_of():
        # right after fork the child still shows the agent's environment: wait for exec
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
        return env if b"A=b" in env else None
    env = wait("the pod's environment", env_of, timeout=5)
    check(b"KEEL_POD_NAME=run" in env and b"KEEL_POD_NAMESPACE=default" in env and
          b"KEEL_NODE_NAME=n1" in env and f"{MARK}={t.mark}".encode() in env, env)
    check(os.readlink(f"/proc/{pid}/cwd") == "/tmp", "workingDir")
    logf = os.path.join(t.root, "n1", "pods", uid, "main.log")
    wait("log file", lambda: os.path.exists(logf) and "tick 2" in open(logf).read())
    text = open(logf).read()
    check("hello b run default n1\n/tmp\n" in text, text)
    st, body = http_get(port, "/healthz")
    check(st == 200 and body == "ok", (st, body))
    st, body = http_get(port, "/logs/default/run/main")
    check(st == 200 and body.startswith("hello b run default n1\n"), (st, body[:200]))
    st, body = http_get(port, "/logs/default/run?tailLines=1")
    check(st == 200 and body.count("\n") == 1 and body.startswith("tick"), (st, body))
    st, body = http_get(port, "/logs/default/nope")
    check(st == 404 and 'pods "nope" not found' in body, (st, body))
    st, body = http_get(port, "/logs/default/run/other")
    check(st == 404, (st, body))
    # follow: the stream keeps delivering new lines
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /logs/default/run?follow=true&tailLines=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    end = time.time() + 5
    while data.count(b"tick") < 4 and time.time() < end:
        data += s.recv(4096)
    s.close()
    check(data.startswith(b"HTTP/1.1 200") and data.count(b"tick") >= 4, data[:300])
    return pid


def two_containers(t, port):
    t.put_pod("two", [{"name": "a", "command": ["sh", "-c", "echo A-out; exec sleep 300"]},
                      {"name": "b", "command": ["sh", "-c", "echo B-out; exec sleep 300"]}])

    def both():
        p = t.pod("two")
        return p if cstatus(p, 0).get("pid") and cstatus(p, 1).get("pid") and \
            cond(p, "Ready") == "True" else None
    p = wait("both containers running", both)
    pa, pb = cstatus(p, 0)["pid"], cstatus(p, 1)["pid"]
    check(pa != pb and os.getpgid(pa) == pa and os.getpgid(pb) == pb, (pa, pb))
    st, body = http_get(port, "/logs/default/two")
    check(st == 400 and "choose one of: [a b]" in body, (st, body))
    wait("b's log", lambda: http_get(port, "/logs/default/two/b") == (200, "B-out\n"))
    check(http_get(port, "/logs/default/two/a") == (200, "A-out\n"), "a's log")
    t.delete_key("/registry/pods/default/two")
    wait("both killed with their pod", lambda: not alive(pa) and not alive(pb), timeout=5)


def restart_backoff(t, port):
    t.put_pod("crash", [{"name": "main", "command": ["sh", "-c", "echo crash $$; exit 3"]}])
    seen = {"backoff": False}

    def grown():
        p = t.pod("crash")
        cs = cstatus(p)
        if cs.get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff":
            seen["backoff"] = True
        return p if cs.get("restartCount", 0) >= 3 else None
    p = wait("restartCount >= 3", grown, timeout=20, step=0.05)
    cs = cstatus(p)
    check(cs["lastState"]["terminated"]["exitCode"] == 3, cs)
    check(cs["lastState"]["terminated"]["reason"] == "Error", cs)
    check(p["status"]["phase"] == "Running", p["status"])
    # one file holds every instance's output; previous=true gives the last finished one
    st, body = http_get(port, "/logs/default/crash")
    check(st == 200 and body.count("crash") >= 3, (st, body))
    st, body = http_get(port, "/logs/default/crash?previous=true")
    check(st == 200 and body.count("crash") == 1 and body in st_body_lines(t, "crash"),
          (st, body))
    st, body = http_get(port, "/logs/default/run?previous=true")
    check(st == 400 and "previous terminated container" in body, (st, body))
    wait("CrashLoopBackOff shown", lambda: seen["backoff"] or grown() and seen["backoff"],
         timeout=10, step=0.05)
    t.delete_key("/registry/pods/default/crash")


def restart_never(t):
    t.put_pod("ok", [{"name": "main", "command": ["true"]}], policy="Never")
    t.put_pod("bad", [{"name": "main", "command": ["sh", "-c", "exit 7"]}], policy="Never")
    t.put_pod("of-ok", [{"name": "main", "command": ["true"]}], policy="OnFailure")
    t.put_pod("of-bad", [{"name": "main", "command": ["false"]}], policy="OnFailure")
    noexec = t.put_pod("noexec", [{"name": "main", "command": ["/nonexistent/keel-test-cmd"]}],
                       policy="Never")
    ok = wait("ok Succeeded", lambda: (lambda p: p if p.get("status", {}).get("phase") ==
                                       "Succeeded" else None)(t.pod("ok")))
    bad = wait("bad Failed", lambda: (lambda p: p if p.get("status", {}).get("phase") ==
                                      "Failed" else None)(t.pod("bad")))
    check(cstatus(ok)["state"]["terminated"]["exitCode"] == 0, cstatus(ok))
    check(cstatus(ok)["state"]["terminated"]["reason"] == "Completed", cstatus(ok))
    check(cstatus(bad)["state"]["terminated"]["exitCode"] == 7, cstatus(bad))
    check(cstatus(bad)["restartCount"] == 0, cstatus(bad))
    check(cond(bad, "Ready") == "False", bad["status"])
    ne = wait("noexec Failed", lambda: (lambda p: p if p.get("status", {}).get("phase") ==
                                        "Failed" else None)(t.pod("noexec")))
    check(cstatus(ne)["state"]["terminated"]["exitCode"] == 127, cstatus(ne))
    logf = os.path.join(t.root, "n1", "pods", noexec["metadata"]["uid"], "main.log")
    text = open(logf).read()
    check("/nonexistent/keel-test-cmd" in text and "no such file" in text, text)
    wait("OnFailure + exit 0: Succeeded",
         lambda: t.pod("of-ok").get("status", {}).get("phase") == "Succeeded")
    wait("OnFailure + exit 1: restarted",
         lambda: cstatus(t.pod("of-bad")).get("restartCount", 0) >= 1)
    check(cstatus(t.pod("bad"))["restartCount"] == 0, "a Never pod restarted")
    check(cstatus(t.pod("of-ok"))["restartCount"] == 0, "OnFailure restarted a success")
    t.delete_key("/registry/pods/default/ok")
    t.delete_key("/registry/pods/default/bad")
    t.delete_key("/registry/pods/default/noexec")
    t.delete_key("/registry/pods/default/of-ok")
    t.delete_key("/registry/pods/default/of-bad")


def memory_limit(t):
    code = "x = bytearray(200 * 1024 * 1024); print('allocated', len(x))"
    lim = {"limits": {"memory": "64Mi"}}
    t.put_pod("mem", [{"name": "main", "command": ["python3", "-c", code], "resources": lim}],
              policy="Never")
    t.put_pod("nomem", [{"name": "main", "command": ["python3", "-c", code]}], policy="Never")
    mem = wait("mem Failed", lambda: (lambda p: p if p.get("status", {}).get("phase") ==
                                      "Failed" else None)(t.pod("mem")), timeout=20)
    wait("nomem Succeeded", lambda: t.pod("nomem").get("status", {}).get("phase") == "Succeeded",
         timeout=20)
    logf = os.path.join(t.root, "n1", "pods", mem["metadata"]["uid"], "main.log")
    text = open(logf).read()
    check("MemoryError" in text and "allocated" not in text, text)
    t.delete_key("/registry/pods/default/mem")
    t.delete_key("/registry/pods/default/nomem")


def graceful_delete(t):
    script = 'trap "echo got TERM" TERM; echo ready; while true; do sleep 0.1; done'
    obj = t.put_pod("trap", [{"name": "main", "command": ["sh", "-c", script]}], grace=30)
    uid = obj["metadata"]["uid"]
    p = wait("trap Running", lambda: cstatus(t.pod("trap")).get("pid"))
    logf = os.path.join(t.root, "n1", "pods", uid, "main.log")
    wait("trap ready", lambda: "ready" in open(logf).read())
    t0 = time.time()
    t.mark_deleted("trap", 2)
    wait("SIGTERM delivered", lambda: "got TERM" in open(logf).read(), timeout=5)
    check(alive(p), "the process did not survive SIGTERM as its trap says")
    wait("trap pod object removed", lambda: t.pod("trap") is None, timeout=10)
    took = time.time() - t0
    check(not alive(p), "the process outlived its deletion")
    check(took >= 1.5, f"SIGKILL came before the grace period ({took:.2f}s)")
    check(not os.path.exists(os.path.join(t.root, "n1", "pods", uid)), "pod dir left")


def path_uid_refused(t, agent):
    victim = os.path.join(t.root, "victim")       # <root>/n1/pods/../../victim
    fresh = os.path.join(t.root, "fresh")
    os.makedirs(victim)
    with open(os.path.join(victim, "precious"), "w") as f:
        f.write("precious\n")
    ctr = [{"name": "main", "command": ["sleep", "300"]}]
    t.put_pod("evil", ctr, meta={"uid": "../../victim"})
    t.put_pod("evil2", ctr, meta={"uid": "../../fresh"})
    def handled():
        log = t.agent_log(agent)
        return os.path.exists(fresh) or all(
            f"/registry/pods/default/{k}: refused: metadata.uid" in log for k in ("evil", "evil2"))
    wait("evil and evil2 refused (or run)", handled, timeout=10)
    time.sleep(2.5)  # one resync more: still nothing done, and no second log line
    check(not os.path.exists(fresh), "a directory was made outside the root")
    log = t.agent_log(agent)
    check(log.count("/registry/pods/default/evil: refused") == 1, "refusal not logged once")
    check(os.path.exists(os.path.join(victim, "precious")), "the victim was touched")
    check(not t.pod("evil").get("status", {}).get("containerStatuses"), "the pod was run")
    t.mark_deleted("evil", 0)
    time.sleep(2.5)
    check(os.path.exists(os.path.join(victim, "precious")), "the victim was removed")
    check(t.pod("evil") is not None, "a refused pod was deleted")
    t.delete_key("/registry/pods/default/evil")
    t.delete_key("/registry/pods/default/evil2")
    shutil.rmtree(victim)


def bad_flags_refused(t):
    work = os.path.join(t.root, "flags")
    os.makedirs(work)
    env = dict(os.environ, KEEL_ENDPOINTS=t.endpoints)
    env[MARK] = t.mark
    for args, want in ((["--node", "A/../B"], 'invalid value "A/../B" for flag --node: '
                        'metadata.name: Invalid value: "A/../B": a lowercase RFC 1123 subdomain'),
                       (["--node", "n9", "--labels", "zone=a b"],
                        'invalid value "zone=a b" for flag --labels: metadata.labels: '),
                       (["--node", "n9", "--taints", "a/b/c=v:NoSchedule"],
                        'invalid value "a/b/c=v:NoSchedule" for flag --taints: '
                        'spec.taints[0].key')):
        r = subprocess.run([os.path.abspath(t.keel), "agent"] + args, cwd=work, env=env,
                           capture_output=True, text=True, timeout=10)
        # kc_agent_main returns 2 for bad flags, and keel passes it on.
        check(r.returncode == 2, f"{args}: exit {r.returncode}: {r.stderr}")
        check(want in r.stderr, f"{args}: {r.stderr}")
        check(not os.listdir(work), f"{args}: wrote {os.listdir(work)}")
    check(t.get("/registry/nodes/n9") is None, "a Node was written")
    check(not t.ctl("get", "--prefix", "/registry/leases/kube-node-lease/A",
                    "--keys-only").stdout.strip(), "a lease was written")


def vanished_pod_killed(t, port):
    t.put_pod("gone", [{"name": "main", "command": ["sleep", "300"]}])
    pid = wait("gone Running", lambda: cstatus(t.pod("gone")).get("pid"))
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /logs/default/gone?follow=true HTTP/1.1\r\nHost: x\r\n\r\n")
    head = s.recv(4096)
    check(head.startswith(b"HTTP/1.1 200"), head)
    t.delete_key("/registry/pods/default/gone")
    wait("a vanished pod's process killed", lambda: not alive(pid), timeout=5)
    # the follow stream ends with its pod
    end = time.time() + 5
    while time.time() < end and s.recv(4096):
        pass
    check(time.time() < end, "a follow stream outlived its pod")
    s.close()


def adoption(t, agent, args):
    t.put_pod("keep", [{"name": "main", "command": ["sleep", "300"]}])
    t.put_pod("doomed", [{"name": "main", "command": ["sleep", "300"]}])
    keep = wait("keep Running", lambda: cstatus(t.pod("keep")).get("pid"))
    doomed = wait("doomed Running", lambda: cstatus(t.pod("doomed")).get("pid"))
    agent.kill()
    agent.wait()
    time.sleep(0.3)
    check(alive(keep) and alive(doomed), "kill -9 of the agent took its pods along")
    t.delete_key("/registry/pods/default/doomed")
    junk = os.path.join(t.root, "n1", "pods", "junk")
    os.makedirs(junk)
    with open(os.path.join(junk, "state.json"), "w") as f:
        f.write('{"key": 7, "containers": ')
    agent2 = t.start_agent(*args)
    wait("doomed killed after the agent restarts", lambda: not alive(doomed), timeout=10)
    wait("keep adopted", lambda: "adopted container main: pid %d" % keep in t.agent_log(agent2),
         timeout=10)
    check(alive(keep), "the adopted process was killed")
    wait("a corrupt state dir removed", lambda: not os.path.exists(junk), timeout=5)
    check("junk/state.json" in t.agent_log(agent2), "the corrupt state file was not reported")
    p = t.pod("keep")
    check(cstatus(p).get("pid") == keep and p["status"]["phase"] == "Running", p["status"])
    # An adopted process is watched: its end is noticed and the container restarts.
    os.kill(keep, signal.SIGKILL)
    p = wait("keep restarted", lambda: (lambda p: p if cstatus(p).get("restartCount") == 1 and
                                        cstatus(p).get("pid") not in (None, keep) else None)(
        t.pod("keep")), timeout=15)
    check(cstatus(p)["lastState"]["terminated"]["reason"] == "Unknown", cstatus(p))
    return agent2, cstatus(p)["pid"]


def sigterm_stops_everything(t, agent, pids):
    script = 'trap "" TERM; while true; do sleep 0.1; done'
    t.put_pod("stubborn", [{"name": "main", "command": ["sh", "-c", script]}], grace=1)
    pid = wait("stubborn Running", lambda: cstatus(t.pod("stubborn")).get("pid"))
    agent.send_signal(signal.SIGTERM)
    rc = agent.wait(timeout=15)
    check(rc == 0, f"agent exited {rc}")
    for p in pids + [pid]:
        check(not alive(p), f"pid {p} outlived the agent")
    left = t.marked_pids()
    check(not left, f"processes left: {left}")
    check(t.get("/registry/leases/kube-node-lease/n1") is None, "heartbeat key not revoked")
    for name in ("stubborn", "keep", "run"):
        t.delete_key(f"/registry/pods/default/{name}")


def hollow(t):
    agent = t.start_agent("--hollow", "--nodes", "50", "--node-prefix", "hollow-",
                          "--root-dir", os.path.join(t.root, "hollow"), name="hollow")
    wait("50 hollow leases", lambda: len(t.ctl("get", "--prefix", "/registry/leases/kube-node-lease/hollow-",
                                               "--keys-only").stdout.split()) == 50, timeout=20)
    wait("50 hollow nodes Ready", lambda: len([
        ln for ln in t.ctl("get", "--prefix", "/registry/nodes/hollow-", "--print-value-only")
        .stdout.splitlines() if ln.strip() and cond(json.loads(ln), "Ready") == "True"]) == 50,
        timeout=20)
    n0 = t.get("/registry/nodes/hollow-0000")
    check(n0["status"]["capacity"] == {"cpu": "4", "memory": "16Gi", "pods": "110"},
          n0["status"])
    # 200 pods, written by 8 keelctl processes at a time
    objs = []
    for i in range(200):
        objs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"h{i}", "namespace": "default",
                                  "uid": str(uuid.uuid4())},
                     "spec": {"nodeName": f"hollow-{i % 50:04d}", "restartPolicy": "Always",
                              "containers": [{"name": "main", "command": ["sleep", "1"]}]}})
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda o: t.put(f"/registry/pods/default/{o['metadata']['name']}", o), objs))

    def running():
        out = t.ctl("get", "--prefix", "/registry/pods/default/h", "--print-value-only").stdout
        objs = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
        return len(objs) == 200 and all(o.get("status", {}).get("phase") == "Running" and
                                        cstatus(o).get("ready") for o in objs)
    wait("200 hollow pods Running", running, timeout=30, step=0.3)
    print(f"hollow: 200 pods Running {time.time() - t0:.2f}s after the writes")
    t.mark_deleted("h7", 30)
    wait("hollow pod deleted at once", lambda: t.pod("h7") is None, timeout=10)
    agent.send_signal(signal.SIGTERM)
    check(agent.wait(timeout=15) == 0, "hollow agent exit")
    check(not t.ctl("get", "--prefix", "/registry/leases/kube-node-lease/hollow-",
                    "--keys-only").stdout.strip(), "hollow leases not revoked")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keel", required=True)
    ap.add_argument("--keelctl", required=True)
    a = ap.parse_args()
    endpoints = os.environ.get("KEEL_TEST_ENDPOINTS")
    if not endpoints:
        print("KEEL_TEST_ENDPOINTS is not set (run through with_cluster.py)", file=sys.stderr)
        return 2
    root = tempfile.mkdtemp(prefix="keel-agent-test-")
    t = T(a.keel, a.keelctl, endpoints, root)
    args = ["--node", "n1", "--root-dir", os.path.join(root, "n1"), "--labels", "zone=a",
            "--taints", "dedicated=x:NoSchedule", "--cpu", "3", "--memory", "5Gi",
            "--lease-duration", "5", "--backoff-initial", "200", "--backoff-max", "800"]
    ok = False
    step = "start"
    try:
        step = "bad_flags_refused"
        t0 = time.time()
        bad_flags_refused(t)
        print(f"ok bad_flags_refused ({time.time() - t0:.1f}s)", flush=True)
        step = "start"
        agent = t.start_agent(*args)
        step = "node_registered_ready"
        port = t.port = node_registered_ready(t)
        for step, fn in (("ready_restored", lambda: ready_restored(t)),
                         ("lease_regranted", lambda: lease_regranted(t)),
                         ("pod_runs", lambda: pod_runs(t, port)),
                         ("two_containers", lambda: two_containers(t, port)),
                         ("restart_backoff", lambda: restart_backoff(t, port)),
                         ("restart_never", lambda: restart_never(t)),
                         ("memory_limit", lambda: memory_limit(t)),
                         ("graceful_delete", lambda: graceful_delete(t)),
                         ("path_uid_refused", lambda: path_uid_refused(t, agent)),
                         ("vanished_pod_killed", lambda: vanished_pod_killed(t, port))):
            t0 = time.time()
            r = fn()
            if step == "pod_runs":
                run_pid = r
            print(f"ok {step} ({time.time() - t0:.1f}s)", flush=True)
        step = "adoption"
        t0 = time.time()
        agent, keep_pid = adoption(t, agent, args)
        print(f"ok adoption ({time.time() - t0:.1f}s)", flush=True)
        step = "sigterm_stops_everything"
        t0 = time.time()
        sigterm_stops_everything(t, agent, [run_pid, keep_pid])
        print(f"ok sigterm_stops_everything ({time.time() - t0:.1f}s)", flush=True)
        step = "hollow"
        t0 = time.time()
        hollow(t)
        print(f"ok hollow ({time.time() - t0:.1f}s)", flush=True)
        ok = True
    except (Fail, subprocess.TimeoutExpired, OSError, KeyError, TypeError) as e:
        print(f"FAIL {step}: {e!r}", file=sys.stderr)
    finally:
        t.cleanup()
        if not ok or os.environ.get("KEEL_TEST_VERBOSE"):
            for p in t.agents:
                print(f"---- {p.log_path}", file=sys.stderr)
                print(t.agent_log(p)[-6000:], file=sys.stderr)
        left = t.marked_pids()
        if left:
            print(f"FAIL: processes left after cleanup: {left}", file=sys.stderr)
            ok = False
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
