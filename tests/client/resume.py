#!/usr/bin/env python3
# tests/client/resume.py — a libkeel watch survives its member being killed: watch_tool
# watches a prefix while this script writes a numbered sequence of keys and SIGKILLs (then
# restarts) the member the tool talks to, several times. Passes when every write that
# succeeded shows up exactly once, in revision order, and nothing shows up twice; and the
# tool's lease (kept alive over its one LeaseKeepAlive stream) survived every kill.
#   usage: resume.py --server PATH|etcd --tool PATH [--rounds N]
import argparse
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from cluster import Cluster  # noqa: E402

PREFIX = "/resume/"


class Tool:
	"""watch_tool in the background; its stdout lines land in a queue."""

	def __init__(self, path, endpoints):
		self.p = subprocess.Popen([path, PREFIX] + endpoints, stdin=subprocess.PIPE,
					  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
		self.lines = queue.Queue()
		self.events = []             # (revision, key) in the order printed
		self.other = []
		threading.Thread(target=self._read, daemon=True).start()
		self.err = []
		threading.Thread(target=self._read_err, daemon=True).start()

	def _read(self):
		for line in self.p.stdout:
			line = line.rstrip("\n")
			if line.startswith("ev "):
				_, rev, key = line.split(" ", 2)
				self.events.append((int(rev), key))
			else:
				self.other.append(line)
				self.lines.put(line)

	def _read_err(self):
		for line in self.p.stderr:
			self.err.append(line)

	def expect(self, word, timeout=20):
		deadline = time.time() + timeout
		while time.time() < deadline:
			try:
				line = self.lines.get(timeout=0.2)
			except queue.Empty:
				if self.p.poll() is not None:
					break
				continue
			if line.startswith("canceled") or line.startswith("lease-lost"):
				raise SystemExit("resume: the watch was canceled: " + line)
			if line.startswith(word):
				return line
		raise SystemExit("resume: no '%s' from watch_tool; stderr:\n%s" % (word,
										 "".join(self.err)))

	def send(self, cmd):
		self.p.stdin.write(cmd + "\n")
		self.p.stdin.flush()

	def close(self):
		try:
			self.send("quit")
			self.p.stdin.close()
		except OSError:
			pass
		try:
			return self.p.wait(timeout=20)
		except subprocess.TimeoutExpired:
			self.p.kill()
			self.p.wait()
			return -9


def write(c, n, down, written):
	"""Writes key number n through the running members; records its revision if it
	succeeded (a failed write may still have applied: the check allows that)."""
	key = "%sk%05d" % (PREFIX, n)
	up = [i for i in range(len(c.members)) if i not in down]
	for attempt in range(10):
		r = c.etcdctl("put", key, str(n), "-w", "json", endpoints=up, timeout=10)
		if r.rc == 0:
			written.append((json.loads(r.out)["header"]["revision"], key))
			return
		time.sleep(0.2)
	print("resume: write %s failed 10 times: %s" % (key, r.err.strip()), file=sys.stderr)


def main():
	ap = argparse.ArgumentParser()
	ap.add_argument("--server", default="keeld")
	ap.add_argument("--tool", required=True)
	ap.add_argument("--rounds", type=int, default=4)
	a = ap.parse_args()
	if shutil.which(a.server) is None and not os.path.exists(a.server):
		print("resume: %s is not installed: skipped" % a.server, file=sys.stderr)
		return 77
	written = []
	kills = 0
	with Cluster(a.server, size=3, heartbeat_ms=50, election_ms=500) as c:
		c.start()
		ids = {c.member_id(i): i for i in range(3)}
		tool = Tool(a.tool, c.endpoints)
		try:
			tool.expect("ready")
			n = 0
			for rnd in range(a.rounds):
				for _ in range(15):
					write(c, n, (), written)
					n += 1
				tool.send("who")
				line = tool.expect("member")
				victim = ids.get(int(line.split()[1]))
				if victim is None:
					raise SystemExit("resume: unknown member in " + repr(line))
				c.kill(victim)
				kills += 1
				for _ in range(15):
					write(c, n, (victim,), written)
					n += 1
				c.restart(victim)
				for _ in range(10):
					write(c, n, (), written)
					n += 1
			last = max(r for r, _ in written)
			deadline = time.time() + 30
			while time.time() < deadline:
				if tool.events and tool.events[-1][0] >= last:
					break
				time.sleep(0.1)
			r = c.etcdctl("get", PREFIX + "lease", "--print-value-only")
			if r.rc != 0 or r.out.strip() != "alive":
				raise SystemExit("resume: the tool's lease key is gone: %r" % (r,))
		finally:
			rc = tool.close()
		errs = "".join(tool.err)
		if rc != 0 or "Sanitizer" in errs or "runtime error" in errs:
			raise SystemExit("resume: watch_tool exited %d:\n%s" % (rc, errs))
	revs = [r for r, _ in tool.events]
	if "lease-lost" in tool.other:
		raise SystemExit("resume: the keep-alive reported the lease lost")
	bad = [(revs[i - 1], revs[i]) for i in range(1, len(revs)) if revs[i] <= revs[i - 1]]
	if bad:
		raise SystemExit("resume: events out of order or repeated: %r" % bad[:10])
	seen = set(tool.events)
	missing = [w for w in written if w not in seen]
	if missing:
		raise SystemExit("resume: %d acknowledged writes never seen, first %r" %
				 (len(missing), missing[:5]))
	print("resume: %d writes acknowledged, %d events seen, %d kills, all in order, none "
	      "lost or repeated" % (len(written), len(revs), kills))
	return 0


if __name__ == "__main__":
	sys.exit(main())
