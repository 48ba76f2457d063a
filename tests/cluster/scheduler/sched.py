#!/usr/bin/env python3
# tests/cluster/scheduler/sched.py — `keel scheduler` against a live keeld (run under
# tests/lib/with_cluster.py): binding, nodeSelector, taints and tolerations, an unschedulable
# pod's condition and its binding once a big enough node appears, and leader election between
# two schedulers, retrying a failed campaign (store unreachable), dropping queued binds on stop,
# and not retrying the bind of a stored pod that fails validation. Writes Node/Pod JSON straight
# into the store; stops every process it starts.
#   usage: sched.py --keel PATH --keelctl PATH
import argparse
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

A = None
ENDPOINTS = os.environ.get("KEEL_TEST_ENDPOINTS", "")
PROCS = []


def ctl(*args, input=None):
	r = subprocess.run([A.keelctl, "--endpoints", ENDPOINTS] + list(args), input=input,
			   capture_output=True, text=True, timeout=20)
	if r.returncode != 0:
		raise RuntimeError("keelctl %s: %s" % (" ".join(args), r.stderr))
	return r.stdout


def now():
	return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def put_node(name, cpu="2", memory="4Gi", pods="110", labels=None, taints=None, ready="True"):
	lab = {"kubernetes.io/hostname": name}
	lab.update(labels or {})
	node = {"apiVersion": "v1", "kind": "Node",
		"metadata": {"name": name, "uid": str(uuid.uuid4()), "labels": lab,
			     "creationTimestamp": now()},
		"spec": {"taints": taints or []},
		"status": {"capacity": {"cpu": cpu, "memory": memory, "pods": pods},
			   "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
			   "conditions": [{"type": "Ready", "status": ready, "reason": "AgentReady",
					   "message": "test", "lastHeartbeatTime": now(),
					   "lastTransitionTime": now()}]}}
	ctl("put", "/registry/nodes/" + name, json.dumps(node))


def put_pod(name, cpu="100m", memory="64Mi", node_selector=None, tolerations=None,
	    scheduler=None, labels=None):
	spec = {"containers": [{"name": "main", "command": ["sleep"], "args": ["3600"],
				"resources": {"requests": {"cpu": cpu, "memory": memory}}}],
		"restartPolicy": "Always", "terminationGracePeriodSeconds": 30}
	if node_selector:
		spec["nodeSelector"] = node_selector
	if tolerations:
		spec["tolerations"] = tolerations
	if scheduler:
		spec["schedulerName"] = scheduler
	pod = {"apiVersion": "v1", "kind": "Pod",
	       "metadata": {"name": name, "namespace": "default", "uid": str(uuid.uuid4()),
			    "labels": labels or {"app": name}, "creationTimestamp": now()},
	       "spec": spec, "status": {"phase": "Pending"}}
	ctl("put", "/registry/pods/default/" + name, json.dumps(pod))


def get_pod(name):
	out = ctl("get", "/registry/pods/default/" + name, "--print-value-only")
	return json.loads(out) if out.strip() else None


def condition(pod, type_):
	for c in (pod.get("status") or {}).get("conditions") or []:
		if c.get("type") == type_:
			return c
	return None


def wait_for(what, fn, timeout=15.0):
	end = time.time() + timeout
	last = None
	while time.time() < end:
		last = fn()
		if last:
			return last
		time.sleep(0.1)
	raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def bound_node(name):
	pod = get_pod(name)
	return (pod or {}).get("spec", {}).get("nodeName")


def start_scheduler(log_path, *extra, env=None):
	log = open(log_path, "ab")
	p = subprocess.Popen([A.keel, "scheduler", "--endpoints", ENDPOINTS, "-v"] + list(extra),
			     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
			     env=dict(os.environ, **(env or {})))
	log.close()
	PROCS.append(p)
	return p


def stop(p):
	if p.poll() is None:
		p.send_signal(signal.SIGTERM)
		try:
			p.wait(timeout=10)
		except subprocess.TimeoutExpired:
			p.kill()
			p.wait()
	return p.returncode


def read(path):
	with open(path, errors="replace") as f:
		return f.read()


def check(cond, msg):
	if not cond:
		raise AssertionError(msg)


def test_placement(tmp):
	put_node("n1", labels={"disk": "ssd"})
	put_node("n2", labels={"disk": "hdd"})
	put_node("n3", labels={"accel": "gpu"},
		 taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])
	put_pod("plain")
	put_pod("on-ssd", node_selector={"disk": "ssd"})
	put_pod("on-gpu", node_selector={"accel": "gpu"},
		tolerations=[{"key": "gpu", "operator": "Equal", "value": "yes",
			      "effect": "NoSchedule"}])
	put_pod("gpu-untolerated", node_selector={"accel": "gpu"})
	put_pod("other-scheduler", scheduler="my-scheduler")
	log = os.path.join(tmp, "sched.log")
	p = start_scheduler(log, "--leader-elect=false")
	try:
		plain = wait_for("plain bound", lambda: bound_node("plain"))
		check(plain in ("n1", "n2"), "plain went to %s, a tainted node" % plain)
		pod = get_pod("plain")
		c = condition(pod, "PodScheduled")
		check(c and c["status"] == "True", "PodScheduled not True: %r" % c)
		check(wait_for("on-ssd bound", lambda: bound_node("on-ssd")) == "n1",
		      "nodeSelector disk=ssd not honoured")
		check(wait_for("on-gpu bound", lambda: bound_node("on-gpu")) == "n3",
		      "toleration + selector did not reach n3")
		want = ("0/3 nodes are available: 1 node(s) had untolerated taint {gpu: yes}, "
			"2 node(s) didn't match Pod's node affinity/selector.")

		def unsched_msg(name):
			pod = get_pod(name)
			c = condition(pod, "PodScheduled") if pod else None
			if c and c.get("status") == "False" and c.get("reason") == "Unschedulable":
				return c.get("message")
			return None
		msg = wait_for("gpu-untolerated unschedulable", lambda: unsched_msg("gpu-untolerated"))
		check(msg == want, "message %r, want %r" % (msg, want))
		check(bound_node("gpu-untolerated") is None, "untolerated pod was bound")
		check(f"bound default/plain to {plain}" in read(log), "no bind log line")

		# Too big for every node now; bound once a big enough node is added.
		put_pod("big", cpu="8")
		want = ("0/3 nodes are available: 1 node(s) had untolerated taint {gpu: yes}, "
			"2 Insufficient cpu.")
		msg = wait_for("big unschedulable", lambda: unsched_msg("big"))
		check(msg == want, "message %r, want %r" % (msg, want))
		rv = get_pod("big")
		time.sleep(2.5)  # retries with backoff must not rewrite an unchanged condition
		out = ctl("get", "/registry/pods/default/big", "-w", "json")
		mod1 = json.loads(out)["kvs"][0]["mod_revision"]
		time.sleep(2.5)
		out = ctl("get", "/registry/pods/default/big", "-w", "json")
		mod2 = json.loads(out)["kvs"][0]["mod_revision"]
		check(mod1 == mod2, "unchanged condition rewritten (%s -> %s)" % (mod1, mod2))
		check(rv is not None, "big vanished")
		put_node("n4", cpu="16", memory="32Gi")
		check(wait_for("big bound", lambda: bound_node("big"), timeout=5) == "n4",
		      "big not bound to n4")

		# n4 has 8 cpu left: big2 waits, backing off (1 s, 2 s, 4 s...); deleting the bound
		# big frees n4 and must send big2 back to the active queue at once.
		put_pod("big2", cpu="10")
		wait_for("big2 unschedulable", lambda: unsched_msg("big2"))
		time.sleep(3.5)  # attempts at 0, 1 and 3 s: the next is not due before 7 s
		check(bound_node("big2") is None, "big2 bound while n4 was full")
		ctl("del", "/registry/pods/default/big")
		deleted = time.time()
		check(wait_for("big2 bound", lambda: bound_node("big2"), timeout=3) == "n4",
		      "big2 not bound to n4")
		took = time.time() - deleted
		check(took < 1.5, "big2 waited %.1fs for its backoff after big was deleted" % took)

		# gpu-untolerated has been backing off for seconds; a spec change (a toleration
		# added) must be tried at once.
		pod = get_pod("gpu-untolerated")
		pod["spec"]["tolerations"] = [{"key": "gpu", "operator": "Exists"}]
		ctl("put", "/registry/pods/default/gpu-untolerated", json.dumps(pod))
		changed = time.time()
		check(wait_for("gpu-untolerated bound", lambda: bound_node("gpu-untolerated"),
			       timeout=3) == "n3", "gpu-untolerated not bound to n3")
		took = time.time() - changed
		check(took < 1.5, "a changed pod waited %.1fs for its backoff" % took)
		check(bound_node("other-scheduler") is None, "took a pod of another scheduler")

		# Stored past the API with a label value that fails validation: every bind fails
		# the same way, so it is tried once and then waits for the pod to change.
		put_pod("badlabel", labels={"app": "not valid!"})
		wait_for("badlabel's bind fails", lambda: "cannot bind default/badlabel" in read(log))
		time.sleep(3.5)  # a retried bind would come back after 1 s and 2 s of backoff
		n = read(log).count("cannot bind default/badlabel")
		check(n == 1, "the invalid pod's bind was tried %d times, want once" % n)
		check(bound_node("badlabel") is None, "an invalid pod was bound")
		ctl("del", "/registry/pods/default/badlabel")
	finally:
		rc = stop(p)
	check(rc == 0, "scheduler exited %s on SIGTERM" % rc)


def test_leader_election(tmp):
	logs = [os.path.join(tmp, "a.log"), os.path.join(tmp, "b.log")]
	procs = [start_scheduler(logs[0], "--leader-elect-lease-duration", "2")]
	try:
		wait_for("a leads", lambda: "leading as" in read(logs[0]))
		procs.append(start_scheduler(logs[1], "--leader-elect-lease-duration", "2"))
		time.sleep(1.0)
		check("leading as" not in read(logs[1]), "two schedulers lead at once")
		put_pod("le-1")
		wait_for("le-1 bound", lambda: bound_node("le-1"))
		check("bound default/le-1" in read(logs[0]), "the leader did not bind le-1")
		check("bound default/le-1" not in read(logs[1]), "the standby bound le-1")
		procs[0].kill()
		procs[0].wait()
		killed = time.time()
		put_pod("le-2")
		wait_for("le-2 bound by b", lambda: "bound default/le-2" in read(logs[1]), timeout=10)
		took = time.time() - killed
		print("takeover after kill -9 of the leader: %.1fs (lease 2s)" % took)
		check(took < 2 + 1.5, "takeover took %.1fs, lease is 2s" % took)
		# A leader whose session lease is lost stops, then campaigns again and leads anew.
		kvs = json.loads(ctl("get", "--prefix", "/registry/leader-election/keel-scheduler/",
				     "-w", "json")).get("kvs", [])
		check(len(kvs) == 1, "expected one candidate key, got %d" % len(kvs))
		ctl("lease", "revoke", "%x" % kvs[0]["lease"])
		wait_for("b notices the lost leadership",
			 lambda: "leader election lost" in read(logs[1]), timeout=10)
		wait_for("b leads again", lambda: read(logs[1]).count("leading as") == 2, timeout=10)
		put_pod("le-3")
		wait_for("le-3 bound by b", lambda: "bound default/le-3" in read(logs[1]), timeout=10)
		check(procs[1].poll() is None, "the scheduler exited after losing its leadership")
	finally:
		rcs = [stop(p) for p in procs]
	check(rcs[1] == 0, "the new leader exited %s on SIGTERM" % rcs[1])


def free_port():
	with socket.socket() as so:
		so.bind(("127.0.0.1", 0))
		return so.getsockname()[1]


def test_campaign_retry(tmp):
	"""The store unreachable: a failed campaign is retried, the scheduler does not exit."""
	log = os.path.join(tmp, "unreachable.log")
	p = start_scheduler(log, "--endpoints", "127.0.0.1:%d" % free_port(),
			    "--leader-elect-lease-duration", "2")
	try:
		wait_for("a failed campaign", lambda: "leader election failed" in read(log) or
			 p.poll() is not None, timeout=20)
		time.sleep(1.5)
		check(p.poll() is None, "the scheduler exited (%s) when its campaign failed: %s" %
		      (p.poll(), read(log)[-500:]))
		check("retrying" in read(log), "the failed campaign is not logged as retried")
	finally:
		t0 = time.time()
		rc = stop(p)
	check(rc == 0, "the retrying scheduler exited %s on SIGTERM" % rc)
	check(time.time() - t0 < 8, "SIGTERM took %.1fs while campaigning" % (time.time() - t0))


def test_stop_drops_binds(tmp):
	"""Binds still queued when the scheduler stops are dropped, not written: another leader
	may be scheduling from a cache that does not know them."""
	names = ["drop-%02d" % i for i in range(40)]
	for n in names:
		put_pod(n, cpu="10m", memory="1Mi")
	log = os.path.join(tmp, "drop.log")
	# Each bind waits 500 ms first: 8 binders would take 2.5 s for the 40 pods; SIGTERM comes
	# while the first 8 wait.
	p = start_scheduler(log, "--leader-elect=false", env={"KEEL_TEST_BIND_DELAY_MS": "500"})
	try:
		wait_for("scheduling", lambda: "scheduling (" in read(log))
		time.sleep(0.1)
	finally:
		rc = stop(p)
	check(rc == 0, "scheduler exited %s on SIGTERM" % rc)
	bound = [n for n in names if bound_node(n)]
	print("bound before the stop took effect: %d of %d" % (len(bound), len(names)))
	check(len(bound) <= 16, "%d of %d queued binds were written after SIGTERM" %
	      (len(bound), len(names)))
	check("stopped: %d pods bound" % len(bound) in read(log),
	      "the store's bound pods do not match the log: %s" % read(log)[-300:])
	for n in names:
		ctl("del", "/registry/pods/default/" + n)


def main():
	global A
	ap = argparse.ArgumentParser()
	ap.add_argument("--keel", required=True)
	ap.add_argument("--keelctl", required=True)
	A = ap.parse_args()
	if not ENDPOINTS:
		print("sched.py: KEEL_TEST_ENDPOINTS is not set (run under with_cluster.py)")
		return 2
	tmp = tempfile.mkdtemp(prefix="keel-sched-")
	ok = False
	try:
		test_placement(tmp)
		print("ok: placement, selectors, taints, unschedulable and retry")
		test_leader_election(tmp)
		print("ok: leader election and takeover")
		test_campaign_retry(tmp)
		print("ok: a failed campaign is retried")
		test_stop_drops_binds(tmp)
		print("ok: queued binds are dropped on stop")
		for name in os.listdir(tmp):
			text = read(os.path.join(tmp, name))
			check("AddressSanitizer" not in text and "runtime error:" not in text and
			      "LeakSanitizer" not in text, "sanitizer report in %s" % name)
		ok = True
	finally:
		for p in PROCS:
			if p.poll() is None:
				p.kill()
				p.wait()
		if not ok:
			for name in sorted(os.listdir(tmp)):
				print("==== %s" % name)
				print(read(os.path.join(tmp, name))[-4000:])
		shutil.rmtree(tmp, ignore_errors=True)
	return 0


if __name__ == "__main__":
	try:
		sys.exit(main())
	except AssertionError as e:
		print("FAIL: %s" % e)
		sys.exit(1)
