#!/usr/bin/env python3
# tests/cluster/controllers/controllers.py — `keel controllers` against a live keeld (run under
# tests/lib/with_cluster.py). The test plays the agents and the scheduler itself: it writes
# Node, Lease, Pod and ReplicaSet JSON with keelctl, keeps node leases alive with
# `keelctl lease keep-alive`, binds pods and reports them Running/Ready. Covers the ReplicaSet
# controller (create, ownerReferences, scale up/down, deletion order, adoption, release, status,
# replacement, no over-creation, ReplicaSets that fail validation left alone), the node
# lifecycle controller (lease expiry -> NotReady +
# taints -> eviction -> replacements; lease back -> taints removed), the pod GC, and leader
# election between two controller managers. Stops every process it starts.
#   usage: controllers.py --keel PATH --keelctl PATH
import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

A = None
ENDPOINTS = os.environ.get("KEEL_TEST_ENDPOINTS", "")
PROCS = []
TMP = None


def ctl(*args, input=None, check=True):
    r = subprocess.run([A.keelctl, "--endpoints", ENDPOINTS] + list(args), input=input,
               capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError("keelctl %s: %s" % (" ".join(args), r.stderr))
    return r.stdout


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def put(key, obj, lease=None):
    args = ["put"] + (["--lease=" + lease] if lease else []) + [key, "--", json.dumps(obj)]
    ctl(*args)


def get(key):
    out = ctl("get", key, "--print-value-only")
    return json.loads(out) if out.strip() else None


def list_prefix(prefix):
    out = json.loads(ctl("get", "--prefix", prefix, "-w", "json"))
    res = {}
    for kv in out.get("kvs") or []:
        k = base64.b64decode(kv["key"]).decode()
        res[k] = json.loads(base64.b64decode(kv["value"]))
    return res


def pods(owner=None, label=None):
    """Pods of default, by name; owner: only those whose controller ref names it."""
    res = {}
    for _k, p in list_prefix("/registry/pods/default/").items():
        refs = [r for r in p["metadata"].get("ownerReferences") or [] if r.get("controller")]
        if owner is not None and (not refs or refs[0]["name"] != owner):
            continue
        if label is not None and (p["metadata"].get("labels") or {}).get("app") != label:
            continue
        res[p["metadata"]["name"]] = p
    return res


def active(ps):
    return {n: p for n, p in ps.items() if "deletionTimestamp" not in p["metadata"]}


def wait_for(what, fn, timeout=15.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what, flush=True)


# ---- objects -------------------------------------------------------------------------------

def put_node(name, ready="True", taints=None):
    node = {"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": str(uuid.uuid4()),
                 "labels": {"kubernetes.io/hostname": name}, "creationTimestamp": now()},
        "spec": {"taints": taints or []},
        "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
               "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
               "conditions": [{"type": "Ready", "status": ready, "reason": "AgentReady",
                       "message": "keel agent is posting ready status",
                       "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}}
    put("/registry/nodes/" + name, node)


class Heartbeat:
    """A node's Lease key on a store lease kept alive by `keelctl lease keep-alive`."""

    def __init__(self, node, ttl):
        out = ctl("lease", "grant", str(ttl))
        self.id = out.split()[1]
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": node, "namespace": "kube-node-lease",
                      "uid": str(uuid.uuid4()), "creationTimestamp": now()},
             "spec": {"holderIdentity": node, "leaseDurationSeconds": ttl,
                  "acquireTime": now(), "renewTime": now()}}
        put("/registry/leases/kube-node-lease/" + node, lease, lease=self.id)
        self.proc = spawn([A.keelctl, "--endpoints", ENDPOINTS, "lease", "keep-alive",
                   self.id], "keepalive-" + node)

    def stop(self):
        stop_proc(self.proc, sig=signal.SIGKILL)


def rs_obj(name, replicas, app=None, generation=1, uid=None):
    app = app or name
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default", "uid": uid or str(uuid.uuid4()),
                 "labels": {"app": app}, "creationTimestamp": now(),
                 "generation": generation},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
             "template": {"metadata": {"labels": {"app": app}},
                      "spec": {"containers": [{"name": "main", "command": ["sleep"],
                                   "args": ["3600"]}],
                           "restartPolicy": "Always",
                           "terminationGracePeriodSeconds": 7}}}}


def put_rs(rs):
    put("/registry/replicasets/default/" + rs["metadata"]["name"], rs)


def scale(name, replicas):
    rs = get("/registry/replicasets/default/" + name)
    rs["spec"]["replicas"] = replicas
    rs["metadata"]["generation"] = rs["metadata"].get("generation", 1) + 1
    put_rs(rs)
    return rs["metadata"]["generation"]


def run_pod(name, node, ready=True):
    """The scheduler's and the agent's part: bind the pod and report it Running."""
    key = "/registry/pods/default/" + name
    p = get(key)
    p["spec"]["nodeName"] = node
    p["status"] = {"phase": "Running", "hostIP": "127.0.0.1", "startTime": now(),
               "conditions": [{"type": "PodScheduled", "status": "True"},
                      {"type": "Ready", "status": "True" if ready else "False",
                       "lastTransitionTime": now()}]}
    put(key, p)


# ---- processes -----------------------------------------------------------------------------

def spawn(cmd, name, env=None):
    log = open(os.path.join(TMP, name + ".log"), "w")
    e = dict(os.environ, **(env or {}))
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                 env=e)
    p.logname = log.name
    log.close()
    PROCS.append(p)
    return p


def stop_proc(p, sig=signal.SIGTERM, timeout=10):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def controllers(name, *extra, env=None):
    return spawn([A.keel, "controllers", "--endpoints", ENDPOINTS, "--pod-eviction-timeout",
              "2", "--node-monitor-grace-period", "1", "-v"] + list(extra), name, env=env)


def log_of(p):
    with open(p.logname) as f:
        return f.read()


# ---- scenarios -----------------------------------------------------------------------------

def test_replicaset(cm):
    rs = rs_obj("web", 5)
    put_rs(rs)
    uid = rs["metadata"]["uid"]
    ps = wait_for("5 web pods", lambda: len(pods("web")) == 5 and pods("web"))
    for n, p in ps.items():
        check(n.startswith("web-") and len(n) == 9, "pod name %s is web- + 5 characters" % n)
        refs = p["metadata"]["ownerReferences"]
        check(refs == [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                "uid": uid, "controller": True, "blockOwnerDeletion": True}],
              "%s has the ReplicaSet as controller owner" % n)
        check(p["metadata"]["labels"] == {"app": "web"}, "%s has the template's labels" % n)
        check(p["spec"]["containers"][0]["command"] == ["sleep"], "%s has the template's spec" % n)
        check(p["metadata"].get("generateName") == "web-", "%s has generateName web-" % n)
    st = wait_for("status of 5", lambda: (get("/registry/replicasets/default/web").get("status")
                          or {}).get("replicas") == 5 and
              get("/registry/replicasets/default/web")["status"])
    check(st["fullyLabeledReplicas"] == 5 and st["readyReplicas"] == 0 and
          st["observedGeneration"] == 1, "status counts 5 replicas, 0 ready, generation 1")

    names = sorted(ps)
    bound = names[:3]
    for n in bound:
        run_pod(n, "n1")
    wait_for("readyReplicas 3", lambda: get("/registry/replicasets/default/web")["status"]
         .get("readyReplicas") == 3 and get("/registry/replicasets/default/web")["status"]
         .get("availableReplicas") == 3)
    check(True, "status counts 3 ready and available pods")

    gen = scale("web", 3)
    left = wait_for("scale down to 3", lambda: len(pods("web")) == 3 and pods("web"))
    check(sorted(left) == bound, "scale down deleted the unscheduled pods first")
    wait_for("observedGeneration %d" % gen, lambda: get("/registry/replicasets/default/web")
         ["status"].get("observedGeneration") == gen and
         get("/registry/replicasets/default/web")["status"].get("replicas") == 3)
    check(True, "status follows the new generation and replica count")

    scale("web", 4)
    ps = wait_for("scale up to 4", lambda: len(pods("web")) == 4 and pods("web"))
    new = [n for n in ps if n not in bound]
    check(len(new) == 1, "scale up created one pod (%s)" % new)

    # A deleted pod is replaced.
    ctl("del", "/registry/pods/default/" + bound[0])
    ps = wait_for("replacement", lambda: len(pods("web")) == 4 and bound[0] not in pods("web")
              and pods("web"))
    check(bound[0] not in ps, "a deleted pod is replaced")
    time.sleep(0.5)
    check(len(pods("web")) == 4, "no more than the replicas after the replacement")


def test_adoption():
    orphan = {"apiVersion": "v1", "kind": "Pod",
          "metadata": {"name": "db-orphan", "namespace": "default", "uid": str(uuid.uuid4()),
                   "labels": {"app": "db"}, "creationTimestamp": now()},
          "spec": {"containers": [{"name": "main", "command": ["sleep"], "args": ["1"]}]},
          "status": {"phase": "Pending"}}
    put("/registry/pods/default/db-orphan", orphan)
    rs = rs_obj("db", 1)
    put_rs(rs)
    p = wait_for("adoption", lambda: (get("/registry/pods/default/db-orphan")["metadata"]
                      .get("ownerReferences")) and
             get("/registry/pods/default/db-orphan"))
    ref = p["metadata"]["ownerReferences"][0]
    check(ref["uid"] == rs["metadata"]["uid"] and ref["controller"] is True,
          "an orphan matching the selector is adopted")
    time.sleep(1.0)
    check(list(pods(label="db")) == ["db-orphan"], "adoption made creating a pod unnecessary")

    # Labels changed: the pod is released and replaced.
    p["metadata"]["labels"] = {"app": "other"}
    put("/registry/pods/default/db-orphan", p)
    wait_for("release", lambda: not get("/registry/pods/default/db-orphan")["metadata"]
         .get("ownerReferences"))
    check(True, "a pod whose labels stopped matching is released")
    wait_for("replacement of the released pod", lambda: len(pods("db")) == 1)
    check(True, "the released pod is replaced")
    ctl("del", "/registry/pods/default/db-orphan")


def test_burst():
    """A watch lagging 30 ms per pod event: without expectations the controller would see its
    own creations late and create again."""
    cm = controllers("cm-lag", "--leader-elect=false", env={"KEEL_TEST_EVENT_DELAY_MS": "30"})
    put_rs(rs_obj("burst", 30))
    wait_for("30 burst pods", lambda: len(pods("burst")) >= 30, timeout=30)
    time.sleep(2.0)
    n = len(pods("burst"))
    created = log_of(cm).count("replicaset default/burst: created pod")
    check(n == 30 and created == 30, "a burst of 30 on a lagging watch creates exactly 30 "
          "(%d pods, %d creates)" % (n, created))
    check(stop_proc(cm) == 0, "the lagging controller manager stops on SIGTERM")


def test_node_lifecycle(cm, n1_hb):
    hb = Heartbeat("n2", 3)  # the lease first: the controller's grace in this test is 1 s
    put_node("n2")
    put_rs(rs_obj("app", 2))
    ps = wait_for("2 app pods", lambda: len(pods("app")) == 2 and pods("app"))
    for n in ps:
        run_pod(n, "n2")
    time.sleep(1.5)  # past the controller's grace; the node stays Ready while its lease lives
    node = get("/registry/nodes/n2")
    check(not node["spec"].get("taints"), "a node with a live lease is not tainted")

    t0 = time.time()
    hb.stop()  # the agent dies: the store deletes the lease key at expiry

    def tainted():
        nd = get("/registry/nodes/n2")
        keys = [(t["key"], t["effect"]) for t in nd["spec"].get("taints") or []]
        return ("node.kubernetes.io/unreachable", "NoExecute") in keys and \
            ("node.kubernetes.io/unreachable", "NoSchedule") in keys and nd
    nd = wait_for("n2 NotReady", tainted, timeout=10)
    ready = [c for c in nd["status"]["conditions"] if c["type"] == "Ready"][0]
    check(ready["status"] == "Unknown" and ready["reason"] == "NodeStatusUnknown" and
          ready["message"] == "Kubelet stopped posting node status.",
          "lease expiry made n2 NotReady after %.1fs" % (time.time() - t0))
    check(all("timeAdded" in t for t in nd["spec"]["taints"]), "the taints carry timeAdded")
    check("node n2: NotReady (heartbeat lease expired)" in log_of(cm), "NotReady is logged")
    n1 = get("/registry/nodes/n1")
    check(not n1["spec"].get("taints"), "n1 (lease alive) is untouched")

    t1 = time.time()
    wait_for("eviction", lambda: all("deletionTimestamp" in p["metadata"]
                     for p in [pods()[n] for n in ps]), timeout=10)
    check(time.time() - t1 >= 1.0, "pods were evicted after the timeout (%.1fs after NotReady)"
          % (time.time() - t1))
    p = pods()[sorted(ps)[0]]
    check(p["metadata"].get("deletionGracePeriodSeconds") == 7,
          "eviction is graceful with the pod's own grace period")
    check("node n2: evicting 2 pods" in log_of(cm), "eviction is logged")
    repl = wait_for("replacements", lambda: len(active(pods("app"))) == 2 and
            active(pods("app")))
    check(not set(repl) & set(ps), "the ReplicaSet replaced the evicted pods")

    # The agent comes back: lease first, then it reports Ready True.
    hb = Heartbeat("n2", 30)
    time.sleep(0.5)
    nd = get("/registry/nodes/n2")
    check(len(nd["spec"]["taints"]) == 2, "taints stay until the agent reports Ready")
    for c in nd["status"]["conditions"]:
        if c["type"] == "Ready":
            c.update(status="True", reason="AgentReady", lastTransitionTime=now())
    put("/registry/nodes/n2", nd)
    wait_for("taints removed", lambda: not get("/registry/nodes/n2")["spec"].get("taints"))
    check(True, "lease back + Ready True: unreachable taints removed")
    # The agent finishes the evicted pods.
    for n in ps:
        ctl("del", "/registry/pods/default/" + n)
    return hb


def test_podgc():
    burst = pods("burst")
    check(len(burst) == 30, "30 burst pods before the ReplicaSet is deleted")
    ctl("del", "/registry/replicasets/default/burst")
    wait_for("GC of burst pods", lambda: not pods("burst"), timeout=15)
    check(True, "deleting a ReplicaSet garbage-collects its pods")
    # A bound pod of a deleted RS is deleted gracefully (it stays Terminating).
    put_rs(rs_obj("gone", 1))
    p = wait_for("gone pod", lambda: pods("gone"))
    name = list(p)[0]
    run_pod(name, "n1")
    ctl("del", "/registry/replicasets/default/gone")
    p = wait_for("graceful GC", lambda: "deletionTimestamp" in
             get("/registry/pods/default/" + name)["metadata"] and
             get("/registry/pods/default/" + name))
    check(p["metadata"].get("deletionGracePeriodSeconds") == 7,
          "a bound orphan of a deleted ReplicaSet is deleted gracefully")
    ctl("del", "/registry/pods/default/" + name)
    # A terminated pod of a live owner, and a bare terminated pod, are kept.
    done = {"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "done", "namespace": "default", "uid": str(uuid.uuid4()),
                 "labels": {"job": "x"}, "creationTimestamp": now()},
        "spec": {"nodeName": "n1", "restartPolicy": "Never",
             "containers": [{"name": "main", "command": ["true"]}]},
        "status": {"phase": "Succeeded"}}
    put("/registry/pods/default/done", done)
    lost = dict(done, metadata=dict(done["metadata"], name="lost", uid=str(uuid.uuid4())),
            spec=dict(done["spec"], nodeName="ghost"), status={"phase": "Running"})
    put("/registry/pods/default/lost", lost)
    wait_for("GC of the pod on a missing node", lambda: get("/registry/pods/default/lost") is None)
    check(True, "a pod bound to a nonexistent node is removed")
    check(get("/registry/pods/default/done") is not None, "a terminated pod is kept")
    ctl("del", "/registry/pods/default/done")


def test_invalid_replicaset(cm):
    """ReplicaSets written past the API's validation are logged once and left alone: an empty
    selector would adopt (and delete) every orphan, a selector missing the template's labels
    would release each pod it creates and create without end."""
    orphan = {"apiVersion": "v1", "kind": "Pod",
          "metadata": {"name": "loner", "namespace": "default", "uid": str(uuid.uuid4()),
                   "labels": {"x": "y"}, "creationTimestamp": now()},
          "spec": {"containers": [{"name": "main", "command": ["sleep"], "args": ["1"]}]},
          "status": {"phase": "Pending"}}
    put("/registry/pods/default/loner", orphan)
    greedy = rs_obj("greedy", 0)
    greedy["spec"]["selector"] = {}
    greedy["spec"]["template"]["metadata"]["labels"] = {"q": "r"}
    put_rs(greedy)
    runaway = rs_obj("runaway", 1)
    runaway["spec"]["selector"] = {"matchLabels": {"a": "1"}}
    runaway["spec"]["template"]["metadata"]["labels"] = {"a": "2"}
    put_rs(runaway)
    time.sleep(3.0)  # an acting controller adopts in ms and makes ~200 pods a second
    p = get("/registry/pods/default/loner")
    check(p is not None and not p["metadata"].get("ownerReferences") and
          "deletionTimestamp" not in p["metadata"],
          "an RS with selector {} neither adopts nor deletes an orphan")
    made = [n for n, q in list_prefix("/registry/pods/default/").items()
        if (q["metadata"].get("labels") or {}).get("a") in ("1", "2")]
    check(not made, "an RS whose selector misses its template's labels creates no pods (%d)"
          % len(made))
    wait_for("both logged", lambda: "replicaset default/greedy: ignored" in log_of(cm) and
         "replicaset default/runaway: ignored" in log_of(cm))
    lg = log_of(cm)
    check(lg.count("replicaset default/greedy: ignored") == 1 and
          lg.count("replicaset default/runaway: ignored") == 1,
          "each invalid ReplicaSet is logged once")
    check("does not match template" in lg and "empty selector" in lg,
          "the log says why")
    # Fixed (a new resourceVersion), the same ReplicaSet is acted on.
    runaway["spec"]["template"]["metadata"]["labels"] = {"a": "1"}
    put_rs(runaway)
    wait_for("runaway's pod once fixed", lambda: len(pods("runaway")) == 1)
    time.sleep(0.5)
    check(len(pods("runaway")) == 1, "the fixed ReplicaSet creates its one pod")
    ctl("del", "/registry/replicasets/default/greedy")
    ctl("del", "/registry/replicasets/default/runaway")
    ctl("del", "/registry/pods/default/loner")
    wait_for("GC of runaway's pod", lambda: not pods("runaway"))


def test_leader_election():
    le = ["--leader-elect-lease-duration", "2"]
    a = controllers("cm-a", *le)
    wait_for("a leads", lambda: "became leader" in log_of(a))
    b = controllers("cm-b", *le)
    time.sleep(1.0)
    check("became leader" not in log_of(b), "a second controller manager waits")
    put_rs(rs_obj("le", 2))
    wait_for("le pods", lambda: len(pods("le")) == 2)
    time.sleep(0.5)
    check("replicaset default/le: created pod" in log_of(a) and
          "replicaset default/le: created" not in log_of(b), "only the leader acts")
    t0 = time.time()
    stop_proc(a, sig=signal.SIGKILL)
    wait_for("b leads", lambda: "became leader" in log_of(b), timeout=15)
    took = time.time() - t0
    check(took < 8, "the other took over %.1fs after kill -9 of the leader" % took)
    scale("le", 3)
    wait_for("le scaled by b", lambda: "replicaset default/le: created pod" in log_of(b),
         timeout=10)
    check(len(pods("le")) == 3, "the new leader acts")

    # Its session lease revoked (as when the store lost it): it stops and campaigns again.
    out = json.loads(ctl("get", "--prefix", "/registry/leader-election/keel-controllers",
                 "-w", "json"))
    kvs = sorted(out.get("kvs") or [], key=lambda kv: int(kv["create_revision"]))
    check(len(kvs) == 1, "one campaign key: the leader's")
    ctl("lease", "revoke", "%x" % int(kvs[0]["lease"]))
    wait_for("b loses and regains leadership",
         lambda: "leadership lost" in log_of(b) and log_of(b).count("became leader") == 2)
    check(True, "a controller manager whose session is lost stops and campaigns again")
    scale("le", 1)
    wait_for("le scaled to 1 by b again", lambda: len(active(pods("le"))) == 1, timeout=10)
    check(True, "and acts again once it leads")
    rc = stop_proc(b)
    check(rc == 0, "SIGTERM stops a controller manager with status 0")


def main():
    global A, TMP
    ap = argparse.ArgumentParser()
    ap.add_argument("--keel", required=True)
    ap.add_argument("--keelctl", required=True)
    A = ap.parse_args()
    if not ENDPOINTS:
        print("KEEL_TEST_ENDPOINTS is not set: run under with_cluster.py", file=sys.stderr)
        return 2
    TMP = tempfile.mkdtemp(prefix="keel-controllers-")
    ok = False
    try:
        n1_hb = Heartbeat("n1", 30)
        put_node("n1")
        test_burst()
        cm = controllers("cm", "--leader-elect=false")
        wait_for("controllers start", lambda: "starting" in log_of(cm))
        test_replicaset(cm)
        test_adoption()
        test_node_lifecycle(cm, n1_hb)
        test_podgc()
        test_invalid_replicaset(cm)
        rc = stop_proc(cm)
        check(rc == 0, "SIGTERM stops `keel controllers` with status 0")
        test_leader_election()
        ok = True
    finally:
        for p in PROCS:
            stop_proc(p, sig=signal.SIGKILL)
        if not ok:
            for name in sorted(os.listdir(TMP)):
                if name.startswith("cm"):
                    print("---- %s" % name, file=sys.stderr)
                    with open(os.path.join(TMP, name)) as f:
                        sys.stderr.write(f.read()[-20000:])
        for name in os.listdir(TMP):
            os.unlink(os.path.join(TMP, name))
        os.rmdir(TMP)
    print("all controller tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
