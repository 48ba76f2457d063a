#!/usr/bin/env python3
# bench/sched/sched_bench.py — the scheduling benchmark: starts 1 or 3 keeld on free ports, one
# `keel agent --hollow` simulating many nodes, and `keel scheduler`; waits for every node to be
# Ready, runs sched_load, prints a table and the exact commands. Stops everything it started,
# whatever happens; its data lives in a temp dir removed at the end.
#   usage: sched_bench.py --keel PATH --keeld PATH --load PATH [--nodes N] [--pods N]
#                         [--members 1|3] [--threads T] [--workers W] [--timeout S]
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
				"tests", "lib"))
from cluster import Cluster  # noqa: E402


def start(argv, log_path, procs):
	log = open(log_path, "ab")
	p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
			     close_fds=True)
	log.close()
	procs.append(p)
	return p


def stop_all(procs):
	for p in procs:
		if p.poll() is None:
			p.send_signal(signal.SIGTERM)
	for p in procs:
		try:
			p.wait(timeout=15)
		except subprocess.TimeoutExpired:
			p.kill()
			p.wait()
	return [p.returncode for p in procs]


def sanitizer_report(path):
	text = tail(path, 100000)
	return any(w in text for w in ("AddressSanitizer", "LeakSanitizer", "runtime error:"))


def tail(path, n=30):
	try:
		with open(path, errors="replace") as f:
			return "".join(f.readlines()[-n:])
	except OSError:
		return ""


class Interrupted(Exception):
	pass


def on_signal(signum, frame):
	raise Interrupted("signal %d" % signum)


def main():
	# Before Cluster installs its own: a signal must unwind through the finally blocks so the
	# agent and the scheduler are stopped too.
	signal.signal(signal.SIGTERM, on_signal)
	signal.signal(signal.SIGHUP, on_signal)
	ap = argparse.ArgumentParser()
	ap.add_argument("--keel", required=True)
	ap.add_argument("--keeld", required=True)
	ap.add_argument("--load", required=True, help="the sched_load binary")
	ap.add_argument("--nodes", type=int, default=1000)
	ap.add_argument("--pods", type=int, default=10000)
	ap.add_argument("--members", type=int, default=1, choices=(1, 3))
	ap.add_argument("--threads", type=int, default=16, help="sched_load's creating threads")
	ap.add_argument("--workers", type=int, default=None, help="keel scheduler --workers")
	ap.add_argument("--timeout", type=int, default=600)
	ap.add_argument("--no-agent", action="store_true",
			help="no hollow agent: sched_load writes Ready stand-in nodes and does not "
			     "wait for Running (measures the scheduler alone)")
	a = ap.parse_args()

	tmp = tempfile.mkdtemp(prefix="keel-sched-bench-")
	procs = []
	rc = 1
	try:
		with Cluster(a.keeld, size=a.members, heartbeat_ms=100, election_ms=1000,
			     base_dir=tmp) as c:
			c.start()
			ep = ",".join(c.endpoints)
			agent = [a.keel, "agent", "--endpoints", ep, "--hollow", "--nodes", str(a.nodes),
				 "--node-prefix", "hollow-"]
			sched = [a.keel, "scheduler", "--endpoints", ep, "--leader-elect=false"]
			if a.workers:
				sched += ["--workers", str(a.workers)]
			load = [a.load, "--endpoints", ep, "--pods", str(a.pods), "--threads",
				str(a.threads), "--wait-nodes", str(a.nodes), "--timeout", str(a.timeout)]
			if a.no_agent:
				load += ["--make-nodes", str(a.nodes), "--no-running"]
			names = ("scheduler",) if a.no_agent else ("scheduler", "agent")
			logs = {n: os.path.join(tmp, n + ".log") for n in names}
			t0 = time.time()
			start(sched, logs["scheduler"], procs)
			if not a.no_agent:
				start(agent, logs["agent"], procs)
			r = subprocess.run(load, stdout=subprocess.PIPE, text=True,
					   timeout=a.timeout + 60)
			elapsed = time.time() - t0
			sys.stdout.write(r.stdout)
			res = None
			for line in r.stdout.splitlines():
				if line.startswith("RESULT "):
					res = json.loads(line[7:])
			for p, name in zip(procs, names):
				if p.poll() is not None:
					print("%s exited early (%s):\n%s" % (name, p.returncode,
									     tail(logs[name])))
			if r.returncode != 0 or not res:
				for name, path in logs.items():
					print("==== %s log tail\n%s" % (name, tail(path)))
			if res:
				print()
				running = "-" if a.no_agent else "%.1f s" % res["running_s"]
				print("| keeld members | nodes | pods | pods scheduled/s | first create -> all "
				      "Running | create->bind p50 | p99 |")
				print("|---|---|---|---|---|---|---|")
				print("| %d | %d%s | %d | %.0f | %s | %.1f ms | %.1f ms |" % (
					a.members, a.nodes, " (stand-in)" if a.no_agent else " (hollow)",
					res["pods"], res["sched_per_s"], running, res["p50_ms"], res["p99_ms"]))
				print()
				print("command: " + " ".join([sys.executable] + sys.argv))
				print("which ran (endpoints picked at run time):")
				if not a.no_agent:
					print("  " + " ".join(agent))
				print("  " + " ".join(sched))
				print("  " + " ".join(load))
				print("whole run %.1f s (cluster start, %d nodes registering, load)" % (
					elapsed, a.nodes))
			rc = r.returncode
			# The scheduler must stop cleanly on SIGTERM (and, in a sanitizer build,
			# without a report); the agent's state is shown, not judged here.
			codes = stop_all(procs)
			for name, code in zip(names, codes):
				bad = code != 0 or sanitizer_report(logs[name])
				if bad:
					print("%s exited %s:\n%s" % (name, code, tail(logs[name])))
				if bad and name == "scheduler":
					rc = rc or 1
	finally:
		stop_all(procs)
		shutil.rmtree(tmp, ignore_errors=True)
	return rc


if __name__ == "__main__":
	try:
		sys.exit(main())
	except (Interrupted, KeyboardInterrupt) as e:
		print("sched_bench: interrupted (%s)" % e, file=sys.stderr)
		sys.exit(1)
