#!/usr/bin/env python3
# tests/cluster/cli/cli.py — the keel CLI against a live keeld (run under with_cluster.py, which
# exports KEEL_TEST_ENDPOINTS): apply create/configured/unchanged, validation, get tables and
# output formats, -l, -A, -w, describe, delete, scale, logs (from a fake agent HTTP server the
# test runs), KEEL_ENDPOINTS. Objects an agent or the scheduler would write (nodes, pod status)
# are put straight into the store with keelctl. Each test uses its own namespace.
#   usage: cli.py --keel PATH --keelctl PATH
import argparse
import calendar
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

A = None
ENDPOINTS = os.environ.get("KEEL_TEST_ENDPOINTS", "")
TMP = None
OLD = "2026-01-01T00:00:00Z"  # creationTimestamp of objects the test puts: AGE in days


def keel(*args, stdin=None, env=None, timeout=60):
    e = dict(os.environ)
    e["KEEL_ENDPOINTS"] = ENDPOINTS
    if env is not None:
        e.update(env)
    p = subprocess.run([A.keel, *args], input=stdin, capture_output=True, text=True, env=e,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def ok(*args, **kw):
    rc, out, err = keel(*args, **kw)
    if rc != 0:
        raise AssertionError(f"keel {' '.join(args)}: rc {rc}\nstdout: {out}\nstderr: {err}")
    return out


def put(key, obj):
    subprocess.run([A.keelctl, "--endpoints", ENDPOINTS, "put", key, json.dumps(obj)],
                   check=True, capture_output=True)


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def eq(got, want, what=""):
    if got != want:
        raise AssertionError(f"{what}\n--- got:\n{got!r}\n--- want:\n{want!r}")


def mask_age(text, col=None):
    """Replaces ages ("2s", "3m10s") by "X" padded to the same width, then drops trailing
    spaces: tables of young objects compare exactly whatever second they were printed in."""
    text = re.sub(r"\b\d+[smhdy](?:\d+[smh])?\b", lambda m: "X".ljust(len(m.group(0))), text)
    return "\n".join(ln.rstrip() for ln in text.split("\n"))


def table(rows):
    """kubectl's tabwriter: each column max width + 3 (at least 6), the last unpadded."""
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    out = ""
    for r in rows:
        cells = [cell.ljust(max(widths[c] + 3, 6)) for c, cell in enumerate(r[:-1])]
        out += "".join(cells) + r[-1] + "\n"
    return out


def age_of(ts):
    secs = int(time.time()) - calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))
    return f"{secs // 86400}d" if secs >= 8 * 86400 else None


def pod(name, ns, phase=None, node=None, labels=None, statuses=None, containers=("main",),
        deleting=False):
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "namespace": ns, "uid": "uid-" + name,
                      "labels": labels or {}, "creationTimestamp": OLD},
         "spec": {"containers": [{"name": c, "command": ["sleep", "3600"]} for c in containers],
                  "restartPolicy": "Always", "terminationGracePeriodSeconds": 30}}
    if node:
        p["spec"]["nodeName"] = node
    if deleting:
        p["metadata"]["deletionTimestamp"] = OLD
        p["metadata"]["deletionGracePeriodSeconds"] = 30
    if phase:
        p["status"] = {"phase": phase}
        if statuses is not None:
            p["status"]["containerStatuses"] = statuses
    return p


def node(name, port=10250, ready="True", unschedulable=False):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": "uid-" + name, "creationTimestamp": OLD,
                         "labels": {"kubernetes.io/hostname": name}},
            "spec": {"unschedulable": unschedulable},
            "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                       "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": ready, "reason": "AgentReady",
                                       "message": "keel agent is posting ready status",
                                       "lastHeartbeatTime": OLD, "lastTransitionTime": OLD}],
                       "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                     {"type": "Hostname", "address": name}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                       "nodeInfo": {"kubeletVersion": "keel-0.1.0", "kernelVersion": "6.1.0",
                                    "osImage": "Debian GNU/Linux 12", "operatingSystem": "linux",
                                    "architecture": "amd64"}}}


RS_YAML = """\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: main
        command: ["sleep", "3600"]
"""


# ---- apply ---------------------------------------------------------------------------------

def test_apply_yaml_creates_then_unchanged_then_configured():
    f = write("rs.yaml", RS_YAML.format(replicas=2))
    eq(ok("apply", "-n", "ap1", "-f", f), "replicaset.apps/web created\n")
    eq(ok("apply", "-n", "ap1", "-f", f), "replicaset.apps/web unchanged\n")
    f = write("rs.yaml", RS_YAML.format(replicas=5))
    eq(ok("apply", "-n", "ap1", "-f", f), "replicaset.apps/web configured\n")
    rs = json.loads(ok("get", "-n", "ap1", "rs", "web", "-o", "json"))
    eq(rs["spec"]["replicas"], 5)
    eq(rs["metadata"]["namespace"], "ap1")


def test_apply_keeps_status_and_server_metadata():
    f = write("rs2.yaml", RS_YAML.format(replicas=1))
    ok("apply", "-n", "ap2", "-f", f)
    before = json.loads(ok("get", "-n", "ap2", "rs/web", "-o", "json"))
    before["status"] = {"replicas": 1, "readyReplicas": 1}
    md = dict(before["metadata"])
    md.pop("resourceVersion", None)
    put("/registry/replicasets/ap2/web", dict(before, metadata=md))
    ok("apply", "-n", "ap2", "-f", write("rs2.yaml", RS_YAML.format(replicas=3)))
    after = json.loads(ok("get", "-n", "ap2", "rs/web", "-o", "json"))
    eq(after["status"], {"replicas": 1, "readyReplicas": 1}, "status kept")
    eq(after["metadata"]["uid"], before["metadata"]["uid"], "uid kept")
    eq(after["metadata"]["creationTimestamp"], before["metadata"]["creationTimestamp"])
    eq(after["spec"]["replicas"], 3)


def test_apply_json_and_multi_document_files():
    y = write("multi.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: one\nspec:\n"
              "  containers:\n  - name: c\n    command: [sleep, '1']\n---\n"
              "# a comment\napiVersion: v1\nkind: Pod\nmetadata:\n  name: two\nspec:\n"
              "  containers:\n  - name: c\n    command: [sleep, '2']\n")
    j = write("n.json", json.dumps({"apiVersion": "v1", "kind": "Node",
                                    "metadata": {"name": "jsonnode"}}))
    out = ok("apply", "-n", "ap3", "-f", y, "-f", j)
    eq(out, "pod/one created\npod/two created\nnode/jsonnode created\n")
    eq(ok("apply", "-n", "ap3", "-f", y), "pod/one unchanged\npod/two unchanged\n")
    out = ok("apply", "-n", "ap3", "-f", "-",
             stdin=json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "three"},
                               "spec": {"containers": [{"name": "c", "command": ["true"]}]}}))
    eq(out, "pod/three created\n")
    ok("delete", "node", "jsonnode")
    d = os.path.join(TMP, "manifests")
    os.mkdir(d)
    for name, pname in [("b.json", "dir-b"), ("a.yaml", "dir-a")]:
        with open(os.path.join(d, name), "w") as f:
            f.write(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pname},
                                "spec": {"containers": [{"name": "c", "command": ["x"]}]}}))
    with open(os.path.join(d, "notes.txt"), "w") as f:
        f.write("not a manifest")
    eq(ok("apply", "-n", "ap3", "-f", d), "pod/dir-a created\npod/dir-b created\n")


def test_apply_invalid_document_writes_nothing():
    f = write("bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: good\nspec:\n"
              "  containers:\n  - name: c\n    command: [sleep, '1']\n---\n"
              "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n"
              "  containers:\n  - name: c\n")
    rc, out, err = keel("apply", "-n", "ap4", "-f", f)
    eq(rc, 1, "exit status")
    eq(out, "")
    if not err.startswith('The Pod "bad" is invalid: ') or "command" not in err:
        raise AssertionError(f"validation message: {err!r}")
    rc, out, err = keel("get", "-n", "ap4", "pod", "good")
    eq((rc, err), (1, 'Error from server (NotFound): pods "good" not found\n'))


def test_apply_errors_name_the_file():
    f = write("broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata: [unclosed\n")
    rc, out, err = keel("apply", "-f", f)
    eq(rc, 1)
    if not err.startswith("error: ") or "broken.yaml" not in err:
        raise AssertionError(f"parse error: {err!r}")
    rc, out, err = keel("apply", "-f", os.path.join(TMP, "absent.yaml"))
    eq((rc, err), (1, f'error: the path "{os.path.join(TMP, "absent.yaml")}" does not exist\n'))
    f = write("kind.yaml", "apiVersion: v1\nkind: Foo\nmetadata:\n  name: x\n")
    rc, out, err = keel("apply", "-f", f)
    eq(rc, 1)
    if not err.startswith('error: unable to recognize "') or "kind.yaml" not in err:
        raise AssertionError(f"unknown kind: {err!r}")
    f = write("ns.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n  namespace: a\n"
              "spec:\n  containers:\n  - name: c\n    command: [x]\n")
    rc, out, err = keel("apply", "-n", "b", "-f", f)
    eq(rc, 1)
    if "does not match the namespace" not in err:
        raise AssertionError(err)


# ---- get -----------------------------------------------------------------------------------

def setup_tables():
    ns = "tbl"
    running = [{"name": "main", "ready": True, "restartCount": 0, "state": {"running": {}}}]
    crash = [{"name": "main", "ready": False, "restartCount": 7,
              "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
    web = pod("web-x7k2p", ns, "Running", "n1", {"app": "web"}, running)
    web["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"},
                                   {"type": "Ready", "status": "True"}]
    put(f"/registry/pods/{ns}/web-x7k2p", web)
    put(f"/registry/pods/{ns}/crashy", pod("crashy", ns, "Running", "n1", {"app": "db"}, crash))
    put(f"/registry/pods/{ns}/pend", pod("pend", ns, "Pending", None, {"app": "web"}))
    put("/registry/nodes/n1", node("n1"))


def test_get_pods_table_exact_columns():
    setup_tables()
    age = age_of(OLD)
    out = ok("get", "pods", "-n", "tbl")
    eq(out, table([["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
                   ["crashy", "0/1", "CrashLoopBackOff", "7", age],
                   ["pend", "0/1", "Pending", "0", age],
                   ["web-x7k2p", "1/1", "Running", "0", age]]))
    if not out.startswith("NAME        READY   STATUS             RESTARTS   AGE\n"):
        raise AssertionError(out)
    out = ok("get", "pods", "-n", "tbl", "-o", "wide", "--no-headers", "web-x7k2p", "pend")
    eq(out, table([["web-x7k2p", "1/1", "Running", "0", age, "<none>", "n1", "<none>", "<none>"],
                   ["pend", "0/1", "Pending", "0", age, "<none>", "<none>", "<none>",
                    "<none>"]]))
    out = ok("get", "po", "-n", "tbl", "-o", "wide", "pend")
    eq(re.split(r" {2,}", out.splitlines()[0]),
       ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
        "READINESS GATES"])


def test_get_nodes_and_replicasets_tables():
    put("/registry/nodes/n1", node("n1"))
    put("/registry/nodes/n2", node("n2", ready="Unknown", unschedulable=True))
    age = age_of(OLD)
    out = ok("get", "nodes", "n1", "n2")
    eq(out, table([["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
                   ["n1", "Ready", "<none>", age, "keel-0.1.0"],
                   ["n2", "NotReady,SchedulingDisabled", "<none>", age, "keel-0.1.0"]]))
    out = ok("get", "no", "n1", "-o", "wide")
    eq(out.splitlines()[0].split(), ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP",
                                     "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION",
                                     "CONTAINER-RUNTIME"])
    if "127.0.0.1" not in out or "Debian GNU/Linux 12" not in out:
        raise AssertionError(out)
    ok("delete", "node", "n2")
    ok("apply", "-n", "rst", "-f", write("rst.yaml", RS_YAML.format(replicas=6)))
    out = mask_age(ok("get", "rs", "-n", "rst"))
    eq(out, "NAME   DESIRED   CURRENT   READY   AGE\nweb    6         0         0       X\n")
    out = mask_age(ok("get", "replicasets", "-n", "rst", "-o", "wide"))
    eq(out, "NAME   DESIRED   CURRENT   READY   AGE   CONTAINERS   IMAGES       SELECTOR\n"
            "web    6         0         0       X     main         sleep 3600   app=web\n")


def test_get_missing_object_is_not_found():
    rc, out, err = keel("get", "pod", "nope")
    eq((rc, out, err), (1, "", 'Error from server (NotFound): pods "nope" not found\n'))
    rc, out, err = keel("get", "rs/nope", "-n", "x")
    eq((rc, err), (1, 'Error from server (NotFound): replicasets.apps "nope" not found\n'))
    rc, out, err = keel("get", "widgets")
    eq((rc, err), (1, 'error: the server doesn\'t have a resource type "widgets"\n'))


def test_get_empty_namespace_says_no_resources():
    rc, out, err = keel("get", "pods", "-n", "empty")
    eq((rc, out, err), (0, "", "No resources found in empty namespace.\n"))


def test_get_output_name_and_selectors():
    setup_tables()
    eq(ok("get", "pods", "-n", "tbl", "-o", "name"),
       "pod/crashy\npod/pend\npod/web-x7k2p\n")
    eq(ok("get", "pods", "-n", "tbl", "-o", "name", "-l", "app=web"), "pod/pend\npod/web-x7k2p\n")
    eq(ok("get", "pods", "-n", "tbl", "-o", "name", "-l", "app!=web"), "pod/crashy\n")
    eq(ok("get", "pods", "-n", "tbl", "-o", "name", "-l", "app in (db,x)"), "pod/crashy\n")
    rc, out, err = keel("get", "pods", "-n", "tbl", "-l", "app=none")
    eq((rc, out, err), (0, "", "No resources found in tbl namespace.\n"))


def test_get_all_namespaces_adds_namespace_column():
    setup_tables()
    put("/registry/pods/other/solo", pod("solo", "other", "Pending"))
    out = ok("get", "pods", "-A", "-l", "app")
    lines = out.splitlines()
    eq(lines[0].split(), ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"])
    if not lines[0].startswith("NAMESPACE   NAME "):
        raise AssertionError(lines[0])
    names = [(ln.split()[0], ln.split()[1]) for ln in lines[1:]]
    for want in [("tbl", "crashy"), ("tbl", "web-x7k2p")]:
        if want not in names:
            raise AssertionError(f"{want} missing in {out}")
    if ("other", "solo") in names:
        raise AssertionError("the selector was not applied with -A")
    if "other" not in ok("get", "pods", "--all-namespaces", "-o", "wide"):
        raise AssertionError("-A missed a namespace")


def test_get_json_and_yaml_round_trip_through_apply():
    ok("apply", "-n", "rt", "-f", write("rt.yaml", RS_YAML.format(replicas=2)))
    j = ok("get", "rs", "web", "-n", "rt", "-o", "json")
    if not j.startswith('{\n    "apiVersion": "apps/v1",\n'):
        raise AssertionError(f"4-space indent: {j[:60]!r}")
    obj = json.loads(j)
    eq(obj["kind"], "ReplicaSet")
    if not obj["metadata"].get("resourceVersion"):
        raise AssertionError("no resourceVersion")
    eq(ok("apply", "-n", "rt", "-f", "-", stdin=j), "replicaset.apps/web unchanged\n")
    y = ok("get", "rs", "web", "-n", "rt", "-o", "yaml")
    if "kind: ReplicaSet" not in y:
        raise AssertionError(y)
    eq(ok("apply", "-n", "rt", "-f", "-", stdin=y), "replicaset.apps/web unchanged\n")
    lst = json.loads(ok("get", "rs", "-n", "rt", "-o", "json"))
    eq((lst["apiVersion"], lst["kind"], lst["metadata"]), ("v1", "List", {"resourceVersion": ""}))
    eq([i["metadata"]["name"] for i in lst["items"]], ["web"])
    y2 = y.replace("replicas: 2", "replicas: 4", 1)
    eq(ok("apply", "-n", "rt", "-f", "-", stdin=y2), "replicaset.apps/web configured\n")


def test_get_watch_prints_a_row_per_change():
    ns = "wt"
    put(f"/registry/pods/{ns}/w1", pod("w1", ns, "Pending"))
    e = dict(os.environ, KEEL_ENDPOINTS=ENDPOINTS)
    p = subprocess.Popen([A.keel, "get", "pods", "-n", ns, "-w"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=e)
    try:
        lines = []
        t = threading.Thread(target=lambda: [lines.append(ln) for ln in p.stdout], daemon=True)
        t.start()
        deadline = time.time() + 20
        while len(lines) < 2 and time.time() < deadline:
            time.sleep(0.05)
        eq(len(lines), 2, f"table before changes: {lines}")
        if not lines[0].startswith("NAME   READY"):
            raise AssertionError(lines)
        running = [{"name": "main", "ready": True, "restartCount": 0, "state": {"running": {}}}]
        put(f"/registry/pods/{ns}/w1", pod("w1", ns, "Running", "n1", None, running))
        put(f"/registry/pods/other-ns/w9", pod("w9", "other-ns", "Pending"))
        while len(lines) < 3 and time.time() < deadline:
            time.sleep(0.05)
        eq(len(lines), 3, f"row for the change: {lines}")
        if lines[2].split()[:3] != ["w1", "1/1", "Running"]:
            raise AssertionError(lines[2])
        time.sleep(0.5)
        eq(len(lines), 3, "a pod of another namespace was printed")
        subprocess.run([A.keelctl, "--endpoints", ENDPOINTS, "del", f"/registry/pods/{ns}/w1"],
                       check=True, capture_output=True)
        while len(lines) < 4 and time.time() < deadline:
            time.sleep(0.05)
        eq(len(lines), 4, f"row for the deletion: {lines}")
        if lines[3].split()[:3] != ["w1", "1/1", "Running"]:
            raise AssertionError(f"the deleted pod's last state: {lines[3]}")
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_get_leases_and_several_kinds():
    put("/registry/leases/kube-node-lease/ln1",
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": "ln1", "namespace": "kube-node-lease", "creationTimestamp": OLD},
         "spec": {"holderIdentity": "ln1", "leaseDurationSeconds": 10}})
    age = age_of(OLD)
    eq(ok("get", "leases", "-n", "kube-node-lease", "ln1"),
       table([["NAME", "HOLDER", "AGE"], ["ln1", "ln1", age]]))
    out = ok("get", "leases", "-A")
    if not re.search(r"^NAMESPACE\s+NAME\s+HOLDER\s+AGE\n(.*\n)*kube-node-lease\s+ln1\s+ln1\s",
                     out, re.M):
        raise AssertionError(out)
    eq(ok("get", "lease/ln1", "-n", "kube-node-lease", "-o", "name"),
       "lease.coordination.k8s.io/ln1\n")
    setup_tables()
    ok("apply", "-n", "tbl", "-f", write("mk.yaml", RS_YAML.format(replicas=1)))
    out = mask_age(ok("get", "pods,rs", "-n", "tbl", "-l", "app=web"))
    eq(out, "NAME            READY   STATUS    RESTARTS   AGE\n"
            "pod/pend        0/1     Pending   0          X\n"
            "pod/web-x7k2p   1/1     Running   0          X\n"
            "\n"
            "NAME                  DESIRED   CURRENT   READY   AGE\n"
            "replicaset.apps/web   1         0         0       X\n")
    ok("delete", "rs", "web", "-n", "tbl")


def test_get_watch_json_prints_each_changed_object():
    ns = "wj"
    put(f"/registry/pods/{ns}/j1", pod("j1", ns, "Pending"))
    e = dict(os.environ, KEEL_ENDPOINTS=ENDPOINTS)
    p = subprocess.Popen([A.keel, "get", "pod", "j1", "-n", ns, "-w", "-o", "json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
    try:
        time.sleep(1.0)
        put(f"/registry/pods/{ns}/j1", pod("j1", ns, "Running", "n1"))
        put(f"/registry/pods/{ns}/j2", pod("j2", ns, "Running", "n1"))
        time.sleep(1.0)
    finally:
        p.send_signal(signal.SIGINT)
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
    eq(p.returncode, 0, f"stderr: {err}")
    dec = json.JSONDecoder()
    objs, i = [], 0
    while i < len(out):
        if out[i].isspace():
            i += 1
            continue
        o, i = dec.raw_decode(out, i)
        objs.append(o)
    eq([(o["metadata"]["name"], o.get("status", {}).get("phase")) for o in objs],
       [("j1", "Pending"), ("j1", "Running")], "the object, then its change; not j2")


def test_components_are_dispatched():
    # Their argv is what follows `keel <component>` (cluster.h); -h is each one's usage.
    for comp in ["agent", "scheduler", "controllers"]:
        for args in [(comp, "-h"), ("--endpoints", ENDPOINTS, comp, "-h")]:
            rc, out, err = keel(*args)
            if rc != 0 or "unknown command" in err or comp not in out + err:
                raise AssertionError(f"{args}: {rc} {out} {err}")


def test_apply_with_a_stale_resource_version_still_configures():
    f = write("gen.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: dup\n  labels:\n"
              "    v: one\nspec:\n  containers:\n  - name: c\n    command: [x]\n")
    ok("apply", "-n", "ae", "-f", f)
    # A stale resourceVersion is not the manifest's business: apply still configures.
    y = ok("get", "pod", "dup", "-n", "ae", "-o", "yaml")
    if "v: one" not in y:
        raise AssertionError(y)
    ok("apply", "-n", "ae", "-f", "-", stdin=y.replace("v: one", "v: two"))
    eq(ok("apply", "-n", "ae", "-f", "-", stdin=y), "pod/dup configured\n")


def pod_manifest(name, containers, labels=None, **spec):
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "labels": labels or {}},
                       "spec": dict({"containers": [{"name": c, "command": ["sleep", "3601"]}
                                                    for c in containers]}, **spec)})


def test_apply_refuses_pod_spec_changes_kubernetes_forbids():
    ns = "imm"
    tol = {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}
    eq(ok("apply", "-n", ns, "-f", "-",
          stdin=pod_manifest("p1", ["a"], {"v": "one"}, tolerations=[tol],
                             activeDeadlineSeconds=100)), "pod/p1 created\n")
    # bound and running, as the scheduler and the agent leave it
    cur = json.loads(ok("get", "pod", "p1", "-n", ns, "-o", "json"))
    cur["metadata"].pop("resourceVersion")
    cur["spec"]["nodeName"] = "n1"
    cur["status"] = {"phase": "Running", "containerStatuses": [
        {"name": "a", "ready": True, "restartCount": 0, "state": {"running": {}}}]}
    put(f"/registry/pods/{ns}/p1", cur)
    before = json.loads(ok("get", "pod", "p1", "-n", ns, "-o", "json"))
    same = pod_manifest("p1", ["a"], {"v": "one"}, tolerations=[tol], activeDeadlineSeconds=100)
    eq(ok("apply", "-n", ns, "-f", "-", stdin=same), "pod/p1 unchanged\n", "nodeName is kept")
    forbidden = 'The Pod "p1" is invalid: spec: Forbidden: pod updates may not change fields ' \
        'other than `spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to ' \
        'existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 ' \
        'if it was previously negative)\n'
    refused = [
        (pod_manifest("p1", ["b", "c"], {"v": "two"}, tolerations=[tol],
                      activeDeadlineSeconds=100),
         'The Pod "p1" is invalid: spec.containers: Forbidden: pod updates may not add or '
         'remove containers\n'),
        (pod_manifest("p1", ["b"], {"v": "two"}, tolerations=[tol], activeDeadlineSeconds=100),
         forbidden + "  changed: spec.containers\n"),
        (pod_manifest("p1", ["a"], {"v": "two"}, tolerations=[tol], activeDeadlineSeconds=100,
                      nodeSelector={"disk": "ssd"}, terminationGracePeriodSeconds=5),
         forbidden + "  changed: spec.terminationGracePeriodSeconds, spec.nodeSelector\n"),
        (pod_manifest("p1", ["a"], {"v": "two"}, tolerations=[tol], activeDeadlineSeconds=100,
                      nodeName="n2"),
         forbidden + "  changed: spec.nodeName\n"),
        (pod_manifest("p1", ["a"], {"v": "two"}, tolerations=[tol], activeDeadlineSeconds=200),
         'The Pod "p1" is invalid: spec.activeDeadlineSeconds: Invalid value: 200: must be less '
         'than or equal to previous value\n'),
        (pod_manifest("p1", ["a"], {"v": "two"}, tolerations=[tol]),
         'The Pod "p1" is invalid: spec.activeDeadlineSeconds: Invalid value: "null": must not '
         'update from a positive integer to nil value\n'),
        (pod_manifest("p1", ["a"], {"v": "two"}, tolerations=[dict(tol, value="w")],
                      activeDeadlineSeconds=100),
         'The Pod "p1" is invalid: spec.tolerations: Forbidden: existing toleration can not be '
         'modified except its tolerationSeconds\n'),
    ]
    for manifest, want in refused:
        rc, out, err = keel("apply", "-n", ns, "-f", "-", stdin=manifest)
        eq((rc, out, err), (1, "", want), manifest)
    after = json.loads(ok("get", "pod", "p1", "-n", ns, "-o", "json"))
    eq(after, before, "a refused apply writes nothing, labels included")
    # What Kubernetes allows: labels, an added toleration, a lower deadline.
    tol2 = {"key": "x", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 9}
    eq(ok("apply", "-n", ns, "-f", "-",
          stdin=pod_manifest("p1", ["a"], {"v": "two"}, tolerations=[tol, tol2],
                             activeDeadlineSeconds=50)), "pod/p1 configured\n")
    after = json.loads(ok("get", "pod", "p1", "-n", ns, "-o", "json"))
    eq(after["metadata"]["labels"], {"v": "two"})
    eq((after["spec"]["tolerations"], after["spec"]["activeDeadlineSeconds"],
        after["spec"]["nodeName"], [c["name"] for c in after["spec"]["containers"]]),
       ([tol, tol2], 50, "n1", ["a"]))
    eq(after["status"], before["status"])
    # tolerationSeconds of an existing toleration may change
    eq(ok("apply", "-n", ns, "-f", "-",
          stdin=pod_manifest("p1", ["a"], {"v": "two"},
                             tolerations=[tol, dict(tol2, tolerationSeconds=3)],
                             activeDeadlineSeconds=50)), "pod/p1 configured\n")


# ---- describe ------------------------------------------------------------------------------

def has_fields(out, fields, what):
    """Each (key, value) appears as "key:" then spaces then value, and the values of one
    block of "Key: value" lines start in one column (kubectl's tabwriter)."""
    cols = {}
    for key, value in fields:
        m = re.search(r"^(" + re.escape(key) + r":\s+)" + re.escape(value) + r"$", out, re.M)
        if not m:
            raise AssertionError(f"{key}: {value} missing in:\n{out}")
        cols[key] = len(m.group(1))
    return cols


def test_describe_pod_node_and_replicaset():
    setup_tables()
    out = ok("describe", "pod", "web-x7k2p", "-n", "tbl")
    cols = has_fields(out, [("Name", "web-x7k2p"), ("Namespace", "tbl"), ("Node", "n1/"),
                            ("Labels", "app=web"), ("Status", "Running"),
                            ("    State", "Running"), ("    Ready", "True"),
                            ("    Restart Count", "0"), ("Events", "<none>")], "pod")
    eq(cols["Name"], cols["Namespace"], "top block aligned")
    eq(cols["Name"], len("Annotations:  "), "value column = longest key of the block + 2")
    eq(cols["    Ready"], len("    Restart Count:  "), "container block aligned")
    for want in ["Containers:\n  main:\n", "    Command:\n      sleep\n      3600\n"]:
        if want not in out:
            raise AssertionError(f"{want!r} missing in:\n{out}")
    if not re.search(r"\nConditions:\n  Type +Status\n  PodScheduled +True \n  Ready +True \n",
                     out):
        raise AssertionError(out)
    out = ok("describe", "pod", "pend", "-n", "tbl")
    if "Conditions:" in out or "    State:          Waiting\n" not in out:
        raise AssertionError(f"a pod without conditions:\n{out}")
    out = ok("describe", "node", "n1")
    has_fields(out, [("Name", "n1"), ("Taints", "<none>"), ("Unschedulable", "false"),
                     ("  InternalIP", "127.0.0.1"), ("  cpu", "2")], "node")
    for want in ["Conditions:\n  Type ", "Addresses:\n", "Capacity:\n", "Allocatable:\n",
                 "Non-terminated Pods:", "web-x7k2p", "Events:"]:
        if want not in out:
            raise AssertionError(f"{want!r} missing in:\n{out}")
    ok("apply", "-n", "dsc", "-f", write("dsc.yaml", RS_YAML.format(replicas=6)))
    out = ok("describe", "rs/web", "-n", "dsc")
    has_fields(out, [("Name", "web"), ("Selector", "app=web"),
                     ("Replicas", "0 current / 6 desired"),
                     ("Pods Status", "0 Running / 0 Waiting / 0 Succeeded / 0 Failed")], "rs")
    if not re.search(r"Pod Template:\n  Labels:\s+app=web\n  Containers:\n   main:\n"
                     r"    Command:\n      sleep\n      3600\n", out):
        raise AssertionError(out)
    if not re.search(r"\nEvents:\s+<none>\n$", out):
        raise AssertionError(out)
    out = ok("describe", "pods", "-n", "tbl", "-l", "app=db")
    if not out.startswith("Name:") or "crashy" not in out or "web-x7k2p" in out:
        raise AssertionError(out)
    rc, out, err = keel("describe", "pod", "nope")
    eq((rc, err), (1, 'Error from server (NotFound): pods "nope" not found\n'))


# ---- delete, scale -------------------------------------------------------------------------

def test_delete_unbound_pod_goes_at_once():
    put("/registry/pods/del/free", pod("free", "del", "Pending"))
    eq(ok("delete", "pod", "free", "-n", "del"), 'pod "free" deleted\n')
    rc, out, err = keel("get", "pod", "free", "-n", "del")
    eq(rc, 1)
    rc, out, err = keel("delete", "pod", "free", "-n", "del")
    eq((rc, err), (1, 'Error from server (NotFound): pods "free" not found\n'))
    eq(keel("delete", "pod", "free", "-n", "del", "--ignore-not-found")[0], 0)


def test_delete_bound_pod_is_graceful_then_forced():
    put("/registry/pods/del/bound", pod("bound", "del", "Running", "n1"))
    eq(ok("delete", "pod", "bound", "-n", "del", "--wait=false"), 'pod "bound" deleted\n')
    obj = json.loads(ok("get", "pod", "bound", "-n", "del", "-o", "json"))
    if "deletionTimestamp" not in obj["metadata"]:
        raise AssertionError(obj["metadata"])
    eq(ok("get", "pod", "bound", "-n", "del", "--no-headers").split()[2], "Terminating")
    # The default waits until the agent removes it: simulate that removal meanwhile.
    e = dict(os.environ, KEEL_ENDPOINTS=ENDPOINTS)
    p = subprocess.Popen([A.keel, "delete", "pod", "bound", "-n", "del"], env=e, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        eq(p.poll(), None, "delete returned before the pod was gone")
        subprocess.run([A.keelctl, "--endpoints", ENDPOINTS, "del", "/registry/pods/del/bound"],
                       check=True, capture_output=True)
        out, err = p.communicate(timeout=20)
        eq((p.returncode, out), (0, 'pod "bound" deleted\n'))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    put("/registry/pods/del/stuck", pod("stuck", "del", "Running", "n1"))
    t0 = time.time()
    rc, out, err = keel("delete", "pod", "stuck", "-n", "del", "--timeout", "1s")
    eq((rc, out, err), (1, 'pod "stuck" deleted\n',
                        "error: timed out waiting for the condition on pods/stuck\n"))
    if time.time() - t0 > 10:
        raise AssertionError("--timeout not honoured")
    put("/registry/pods/del/bound2", pod("bound2", "del", "Running", "n1"))
    rc, out, err = keel("delete", "pod/bound2", "-n", "del", "--force")
    eq((rc, out), (0, 'pod "bound2" force deleted\n'))
    if not err.startswith("Warning: Immediate deletion"):
        raise AssertionError(err)
    eq(keel("get", "pod", "bound2", "-n", "del")[0], 1)


def test_delete_by_selector_file_and_kind():
    for n, app in [("s1", "x"), ("s2", "x"), ("s3", "y")]:
        put(f"/registry/pods/dsel/{n}", pod(n, "dsel", "Pending", labels={"app": app}))
    eq(ok("delete", "pods", "-l", "app=x", "-n", "dsel"), 'pod "s1" deleted\npod "s2" deleted\n')
    eq(ok("get", "pods", "-n", "dsel", "-o", "name"), "pod/s3\n")
    f = write("drs.yaml", RS_YAML.format(replicas=1))
    ok("apply", "-n", "dsel", "-f", f)
    eq(ok("delete", "-n", "dsel", "-f", f), 'replicaset.apps "web" deleted\n')
    rc, out, err = keel("delete", "pods", "-n", "dsel")
    eq((rc, err), (1, "error: resource(s) were provided, but no name was specified\n"))
    eq(ok("delete", "pods", "--all", "-n", "dsel"), 'pod "s3" deleted\n')


def test_delete_all_skips_a_stored_object_without_a_name():
    put("/registry/pods/zz/noname", {"apiVersion": "v1", "kind": "Pod", "metadata": {}})
    put("/registry/pods/zz/named", pod("named", "zz", "Pending", labels={"app": "x"}))
    rc, out, err = keel("delete", "pods", "-l", "app", "-n", "zz")
    eq((rc, out, err), (0, 'pod "named" deleted\n', ""), "the selector never matches it")
    rc, out, err = keel("delete", "pods", "--all", "-n", "zz")
    eq((rc, out, err), (0, "", "Warning: skipping a stored pod without a name\n"
                                "No resources found\n"))
    # An object without metadata.namespace is deleted from the namespace it was listed in,
    # not from "default".
    put("/registry/pods/default/nons", pod("nons", "default", "Pending"))
    put("/registry/pods/zz2/nons", {"apiVersion": "v1", "kind": "Pod",
                                    "metadata": {"name": "nons"}})
    rc, out, err = keel("delete", "pods", "--all", "-n", "zz2")
    eq((rc, out, err), (0, 'pod "nons" deleted\n', ""))
    eq(ok("get", "pod", "nons", "-n", "default", "-o", "name"), "pod/nons\n")
    eq(ok("get", "pods", "-n", "zz2", "-o", "name"), "")
    ok("delete", "pod", "nons", "-n", "default")


def test_scale_replicaset():
    ok("apply", "-n", "sc", "-f", write("sc.yaml", RS_YAML.format(replicas=2)))
    eq(ok("scale", "rs/web", "--replicas", "7", "-n", "sc"), "replicaset.apps/web scaled\n")
    eq(json.loads(ok("get", "rs", "web", "-n", "sc", "-o", "json"))["spec"]["replicas"], 7)
    eq(ok("scale", "replicaset", "web", "--replicas=3", "-n", "sc"),
       "replicaset.apps/web scaled\n")
    eq(json.loads(ok("get", "rs", "web", "-n", "sc", "-o", "json"))["spec"]["replicas"], 3)
    rc, out, err = keel("scale", "rs/web", "-n", "sc")
    eq((rc, err), (1, 'error: required flag(s) "replicas" not set\n'))
    rc, out, err = keel("scale", "rs/nope", "--replicas=1", "-n", "sc")
    eq((rc, err), (1, 'Error from server (NotFound): replicasets.apps "nope" not found\n'))


# ---- logs ----------------------------------------------------------------------------------

class FakeAgent(http.server.BaseHTTPRequestHandler):
    seen = []

    def do_GET(self):
        FakeAgent.seen.append(self.path)
        # The agent reads at most 2047 bytes of path: a longer name is a pod it cannot find.
        if not self.path.startswith("/logs/lg/") or len(self.path) > 2047:
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"no such pod\n")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"line one\nline two\n")

    def log_message(self, *a):
        pass


def test_logs_reads_from_the_pods_agent():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeAgent)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        put("/registry/nodes/lnode", node("lnode", port=srv.server_address[1]))
        running = [{"name": "main", "ready": True, "restartCount": 0, "state": {"running": {}}},
                   {"name": "side", "ready": True, "restartCount": 0, "state": {"running": {}}}]
        put("/registry/pods/lg/lp", pod("lp", "lg", "Running", "lnode", None, running,
                                        containers=("main", "side")))
        rc, out, err = keel("logs", "lp", "-n", "lg")
        eq((rc, out), (0, "line one\nline two\n"))
        eq(err, 'Defaulted container "main" out of: main, side\n')
        eq(FakeAgent.seen[-1], "/logs/lg/lp/main")
        eq(ok("logs", "pod/lp", "-n", "lg", "-c", "side", "--tail", "5", "-f"),
           "line one\nline two\n")
        eq(FakeAgent.seen[-1], "/logs/lg/lp/side?follow=true&tailLines=5")
        rc, out, err = keel("logs", "lp", "-n", "lg", "-c", "nope")
        eq((rc, err), (1, "Error from server (BadRequest): container nope is not valid for pod "
                          "lp\n"))
        put("/registry/pods/lg/unsched", pod("unsched", "lg", "Pending"))
        rc, out, err = keel("logs", "unsched", "-n", "lg")
        eq((rc, err), (1, "Error from server (BadRequest): pod unsched does not have a host "
                          "assigned\n"))
        waiting = [{"name": "main", "ready": False, "restartCount": 0,
                    "state": {"waiting": {"reason": "ContainerCreating"}}}]
        put("/registry/pods/lg/wt", pod("wt", "lg", "Pending", "lnode", None, waiting))
        rc, out, err = keel("logs", "wt", "-n", "lg")
        eq((rc, err), (1, 'Error from server (BadRequest): container "main" in pod "wt" is '
                          'waiting to start: ContainerCreating\n'))
        put("/registry/pods/other/op", pod("op", "other", "Running", "lnode", None, running[:1]))
        rc, out, err = keel("logs", "op", "-n", "other")
        eq((rc, err), (1, "Error from server (NotFound): no such pod\n"))
    finally:
        srv.shutdown()
        srv.server_close()


def test_logs_request_uses_the_flag_namespace_and_fits_any_name():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeAgent)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        put("/registry/nodes/lnode", node("lnode", port=srv.server_address[1]))
        st = [{"name": "main", "ready": True, "restartCount": 1, "state": {"running": {}},
               "lastState": {"terminated": {"exitCode": 1}}}]
        # The stored namespace says something else, 1,100 bytes long: the request names the
        # namespace the pod was read from (-n).
        p = pod("lpns", "lg", "Running", "lnode", None, st)
        p["metadata"]["namespace"] = "a" * 1100
        put("/registry/pods/lg/lpns", p)
        eq(ok("logs", "lpns", "-n", "lg", "-f", "--tail", "5", "-p"), "line one\nline two\n")
        eq(FakeAgent.seen[-1], "/logs/lg/lpns/main?follow=true&tailLines=5&previous=true")
        # combined short bool flags, as kubectl (pflag) takes them
        eq(ok("logs", "lpns", "-n", "lg", "-fp"), "line one\nline two\n")
        eq(FakeAgent.seen[-1], "/logs/lg/lpns/main?follow=true&previous=true")
        # A 400-byte pod name (keys stop at 511 bytes) and a 3,000-byte stored container name:
        # the whole path is sent, and the agent's refusal is a clean error.
        long, ctr = "b" * 400, "c" * 3000
        p = pod(long, "lg", "Running", "lnode", None, [dict(st[0], name=ctr)],
                containers=(ctr,))
        p["metadata"]["namespace"] = "a" * 1100
        put(f"/registry/pods/lg/{long}", p)
        rc, out, err = keel("logs", long, "-n", "lg", "-f", "--tail", "5", "-p")
        eq((rc, out, err), (1, "", "Error from server (NotFound): no such pod\n"))
        eq(FakeAgent.seen[-1],
           f"/logs/lg/{long}/{ctr}?follow=true&tailLines=5&previous=true")
        # A stored container name cannot add path segments or a query: it is percent-encoded.
        odd = "a b/../c?d%&e"
        put("/registry/pods/lg/odd", pod("odd", "lg", "Running", "lnode", None,
                                         [dict(st[0], name=odd)], containers=(odd,)))
        eq(ok("logs", "odd", "-n", "lg", "-c", odd), "line one\nline two\n")
        eq(FakeAgent.seen[-1], "/logs/lg/odd/a%20b%2F..%2Fc%3Fd%25%26e")
    finally:
        srv.shutdown()
        srv.server_close()


# ---- global flags --------------------------------------------------------------------------

def test_endpoints_from_flag_and_environment():
    put("/registry/pods/ep/e1", pod("e1", "ep", "Pending"))
    eq(ok("get", "pods", "-n", "ep", "-o", "name"), "pod/e1\n")  # KEEL_ENDPOINTS
    eq(ok("--endpoints", ENDPOINTS, "get", "pods", "-n", "ep", "-o", "name",
          env={"KEEL_ENDPOINTS": "127.0.0.1:1"}), "pod/e1\n")
    rc, out, err = keel("get", "pods", "-n", "ep", "--request-timeout", "2s",
                        env={"KEEL_ENDPOINTS": "127.0.0.1:1"}, timeout=30)
    eq(rc, 1)
    if not err.startswith("Unable to connect to the server: "):
        raise AssertionError(err)


def test_help_and_unknown_flags():
    rc, out, err = keel("get", "--help")
    if rc != 0 or "keel get TYPE" not in out:
        raise AssertionError((rc, out))
    rc, out, err = keel("get", "pods", "--bogus")
    eq((rc, err), (1, "error: unknown flag: --bogus\nSee 'keel get --help' for usage.\n"))
    rc, out, err = keel("frobnicate")
    eq(rc, 1)


def main():
    global A, TMP
    ap = argparse.ArgumentParser()
    ap.add_argument("--keel", required=True)
    ap.add_argument("--keelctl", required=True)
    ap.add_argument("-k", help="run only tests whose name contains this")
    A = ap.parse_args()
    if not ENDPOINTS:
        print("cli.py: KEEL_TEST_ENDPOINTS is not set (run under with_cluster.py)",
              file=sys.stderr)
        return 2
    TMP = tempfile.mkdtemp(prefix="keel-cli-")
    failed = []
    try:
        tests = [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]
        for name, fn in tests:
            if A.k and A.k not in name:
                continue
            t0 = time.time()
            try:
                fn()
                print(f"ok   {name} ({time.time() - t0:.1f}s)")
            except Exception:
                failed.append(name)
                print(f"FAIL {name}\n{traceback.format_exc()}")
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    if failed:
        print(f"{len(failed)} failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
