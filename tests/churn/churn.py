#!/usr/bin/env python3
# tests/churn/churn.py — membership changes under write load lose no acknowledged write:
# 3 members grow to 5 (member add, then the new member starts with --initial-cluster-state
# existing) and shrink back to 3 (the leader removed, then another original member) while
# churn_writer writes from many threads; small --snapshot-count values make the new members
# catch up by snapshot. Passes when every acknowledged write is on each remaining member
# (serializable reads, after each reached a marker write), HashKV agrees at one revision,
# and the new members installed a snapshot. Never leaves a process behind.
#   usage: churn.py --server etcd|PATH --writer PATH [--threads N] [--snapshot-count N]
#                   [--no-require-snapshot] [--keep]
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from cluster import Cluster, ClusterError  # noqa: E402

# What a member logs once it replaced its store with a snapshot from the leader.
SNAPSHOT_LOG = re.compile(r"installed the store of the snapshot|"
			  r"finished applying incoming snapshot|applied incoming Raft snapshot")
# etcd keeps 5000 entries behind a snapshot for slow followers (keeld: min(5000, count)),
# so a new member needs a snapshot only once the log is compacted past its start.
ETCD_CATCHUP_ENTRIES = 5000


class Failed(Exception):
	pass


def last_line(text):
	lines = [x for x in text.strip().splitlines() if x.strip()]
	return lines[-1] if lines else ""


class Writer:
	"""churn_writer write in the background; its progress lines are read as they come."""

	def __init__(self, path, endpoints, log_path, err_path, threads, deadline_ms):
		self.err_path = err_path
		self.err = open(err_path, "w")
		self.p = subprocess.Popen([path, "write", "--endpoints", ",".join(endpoints),
					   "--log", log_path, "--threads", str(threads),
					   "--deadline-ms", str(deadline_ms)],
					  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
					  stderr=self.err, text=True)
		self.acked = 0
		self.errors = 0
		self.summary = []
		self.reader = threading.Thread(target=self._read, daemon=True)
		self.reader.start()

	def _read(self):
		for line in self.p.stdout:
			m = re.match(r"(progress|summary) acked=(\d+) errors=(\d+)", line)
			if m:
				self.acked, self.errors = int(m.group(2)), int(m.group(3))
			if not line.startswith("progress"):
				self.summary.append(line.rstrip("\n"))

	def wait_acked(self, n, timeout):
		deadline = time.monotonic() + timeout
		while self.acked < n:
			if self.p.poll() is not None:
				raise Failed("the writer exited (rc %s): %s" % (self.p.returncode,
									       self.stderr_tail()))
			if time.monotonic() > deadline:
				raise Failed("only %d writes acknowledged after %.0fs (wanted %d)" %
					     (self.acked, timeout, n))
			time.sleep(0.05)

	def stop(self):
		if self.p.poll() is None:
			self.p.send_signal(signal.SIGTERM)
		try:
			rc = self.p.wait(timeout=30)
		except subprocess.TimeoutExpired:
			self.p.kill()
			rc = self.p.wait()
		self.reader.join(timeout=5)
		self.err.close()
		return rc

	def stderr_tail(self):
		try:
			with open(self.err_path, errors="replace") as f:
				return "".join(f.readlines()[-20:])
		except OSError:
			return ""


class Churn:
	def __init__(self, a):
		self.a = a
		self.etcd = os.path.basename(a.server) == "etcd"
		self.t0 = time.monotonic()
		self.timeline = []
		self.c = None
		self.w = None
		self.active = []

	# ---- cluster state ----

	def ctl(self, *args, timeout=10):
		return self.c.etcdctl(*args, endpoints=self.active, timeout=timeout)

	def member_list(self):
		"""{name: id} from the first active member that answers, or None."""
		for i in self.active:
			r = self.c.etcdctl("member", "list", "-w", "json", endpoints=i, timeout=5)
			if r.rc != 0:
				continue
			try:
				ms = json.loads(r.out).get("members", [])
			except ValueError:
				continue
			return {m.get("name") or self.unstarted_name(m): m["ID"] for m in ms}
		return None

	def unstarted_name(self, m):
		"""An added member that has not started has no name yet: "m4(new)" by its URL."""
		urls = m.get("peerURLs") or []
		for x in self.c.members:
			if x.peer_url in urls:
				return x.name + "(new)"
		return "%x(new)" % m["ID"]

	def name(self, i):
		return self.c.members[i].name if i is not None else "-"

	def note(self, step):
		lead = self.leader()
		ms = self.member_list()
		members = ",".join(sorted(ms)) if ms is not None else "?"
		row = (step, time.monotonic() - self.t0, self.name(lead), members,
		       self.w.acked if self.w else 0)
		self.timeline.append(row)
		print("  %-32s %6.2fs  leader %-3s members %-24s acked %d" % row, flush=True)

	def wait(self, what, cond, timeout):
		deadline = time.monotonic() + timeout
		while True:
			v = cond()
			if v is not None and v is not False:  # index 0 is an answer
				return v
			if time.monotonic() > deadline:
				raise Failed("timeout (%.0fs) waiting for %s" % (timeout, what))
			if self.w and self.w.p.poll() is not None:
				raise Failed("the writer exited (rc %s) while waiting for %s: %s" %
					     (self.w.p.returncode, what, self.w.stderr_tail()))
			time.sleep(0.05)

	def leader(self):
		"""The active member every active member names as leader (index), else None;
		remembers what each said, for the message of a timeout."""
		said, ids = {}, {}
		for i in self.active:
			st = self.c.status(i, timeout=2)
			if st:
				ids[st["Status"]["header"]["member_id"]] = i
			# etcd leaves "leader" out of the JSON when it knows none (0)
			lead = st["Status"].get("leader", 0) if st else None
			said[self.name(i)] = "%x" % lead if st else "no answer"
		self.last_leaders = said
		leads = set(said.values())
		if len(leads) != 1:
			return None
		lead = leads.pop()
		return next((i for mid, i in ids.items() if "%x" % mid == lead), None)

	def wait_leader(self):
		try:
			return self.wait("a leader among %s" % [self.name(j) for j in self.active],
					 self.leader, 20)
		except Failed as e:
			raise Failed("%s; members said: %s" % (e, self.last_leaders))

	def ctl_until(self, what, ok, *args):
		"""etcdctl args on the active members until ok(result), for at most 20 s: a
		reconfiguration may be refused for a while (etcd: a member started < 5 s ago).
		Prints the first refusal, so a slow step says why."""
		last = []

		def attempt():
			r = self.ctl(*args)
			if "unknown method" in r.err or "Unimplemented" in r.err:
				raise Failed("%s: %s" % (what, last_line(r.err)))
			if not ok(r) and not last:
				print("    %s refused: %s (retrying)" % (what, last_line(r.err)),
				      flush=True)
			last[:] = [r]
			return ok(r)
		try:
			self.wait(what, attempt, 20)
		except Failed as e:
			if not last or "Unimplemented" in str(e):
				raise
			raise Failed("%s; last: rc %s %s" % (e, last[0].rc, last_line(last[0].err)))

	def verify(self, endpoints, log):
		return subprocess.run([self.a.writer, "verify", "--endpoints", endpoints,
				       "--log", log, "--timeout-ms", "30000"],
				      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
				      timeout=120)

	def applied(self, i):
		st = self.c.status(i, timeout=2)
		if not st:
			return None
		s = st["Status"]
		return s.get("raftAppliedIndex") or s.get("raftIndex")

	# ---- steps ----

	def add(self, i):
		m = self.c.members[i]
		self.ctl_until("member add %s" % m.name, lambda r: r.rc == 0,
			       "member", "add", m.name, "--peer-urls=" + m.peer_url)
		self.note("member add %s" % m.name)
		self.active.append(i)
		self.c.start_member(i, "existing", self.c.initial_cluster_of(self.active))
		self.wait("%s in the member list with its name" % m.name,
			  lambda: (self.member_list() or {}).get(m.name), 20)
		lead = self.wait_leader()
		target = self.applied(lead) or 0
		self.wait("%s to apply index %d" % (m.name, target),
			  lambda: (self.applied(i) or 0) >= target, 30)
		self.note("%s started, caught up to %d" % (m.name, target))

	def remove(self, i):
		m = self.c.members[i]
		mid = self.c.member_id(i)
		if mid is None:
			raise Failed("%s does not report its member id" % m.name)
		self.ctl_until("member remove %s" % m.name,
			       lambda r: r.rc == 0 or "member not found" in r.err,
			       "member", "remove", "%x" % mid)
		self.active.remove(i)
		self.note("member remove %s" % m.name)
		self.wait("%s gone from the member list" % m.name,
			  lambda: m.name not in (self.member_list() or {m.name: 0}), 20)
		try:
			m.proc.wait(timeout=5)
			how = "exited by itself, rc %s" % m.proc.returncode
		except subprocess.TimeoutExpired:
			how = "still running 5 s after: stopped"
		self.c.stop(i)
		self.removed_exit.append("%s %s" % (m.name, how))
		self.wait_leader()
		self.note("%s %s" % (m.name, how))

	# ---- the scenario ----

	def run(self):
		a = self.a
		snap = a.snapshot_count or (500 if self.etcd else 100)
		# Enough writes that every member has snapshotted and compacted its log past
		# index 1 before the first add, so the new members cannot catch up from the log.
		keep = ETCD_CATCHUP_ENTRIES if self.etcd else min(ETCD_CATCHUP_ENTRIES, snap)
		before_add = keep + 2 * snap + 200
		self.removed_exit = []
		try:
			with Cluster(a.server, size=3, heartbeat_ms=50, election_ms=500,
				     snapshot_count=snap, keep=a.keep or None) as c:
				self.c = c
				rc = self.guarded(before_add, snap)
		except ClusterError as e:
			# close() found sanitizer reports in a member's log (written at exit).
			print("churn: FAIL: %s" % e, flush=True)
			return 1
		if rc == 0:
			print("churn: ok (%.1fs)" % (time.monotonic() - self.t0))
		return rc

	def guarded(self, before_add, snap):
		try:
			self.scenario(before_add, snap)
			return 0
		except (Failed, ClusterError) as e:
			print("churn: FAIL: %s" % e, flush=True)
			if self.w:
				self.w.stop()
				print("writer stderr:\n" + self.w.stderr_tail())
			self.c.dump_logs(lines=30, file=sys.stdout)
			return 1
		finally:
			if self.w and self.w.p.poll() is None:
				self.w.p.kill()

	def scenario(self, before_add, snap):
		a, c = self.a, self.c
		c.start()
		self.active = [0, 1, 2]
		m4, m5 = c.add_member(), c.add_member()
		log = os.path.join(c.dir, "acked.log")
		self.w = Writer(a.writer, c.endpoints, log, os.path.join(c.dir, "writer.err"),
				a.threads, a.deadline_ms)
		print("churn: %s, snapshot-count %d, %d writer threads, %d writes before the "
		      "first add" % (os.path.basename(a.server), snap, a.threads, before_add))
		self.note("3 members up, writer started")
		self.w.wait_acked(before_add, 60)
		self.note("%d writes acknowledged" % before_add)
		self.add(m4)
		self.add(m5)
		lead = self.wait_leader()
		self.note("leader is %s" % self.name(lead))
		self.remove(lead)
		other = next(i for i in (0, 1, 2) if i in self.active)
		self.remove(other)
		mark = self.w.acked
		self.w.wait_acked(mark + 200, 30)
		self.note("writes go on with 3 members")
		rc = self.w.stop()
		self.note("writer stopped (rc %d)" % rc)
		print("writer: " + "\n        ".join(self.w.summary))
		if rc != 0:
			raise Failed("the writer failed: %s" % self.w.stderr_tail())
		ms = self.member_list() or {}
		want = sorted(c.members[i].name for i in self.active)
		if sorted(ms) != want:
			raise Failed("final member list %s, want %s" % (sorted(ms), want))
		eps = ",".join(c.members[i].endpoint for i in self.active)
		v = self.verify(eps, log)
		print("verify:\n  " + "\n  ".join(v.stdout.rstrip("\n").splitlines()))
		# The check must be able to fail: one acknowledged key that was never written
		# and one whose value differs must each make the verifier say FAIL.
		r = self.ctl("put", "churn/t98/00000000", "not-the-value")
		if r.rc != 0:
			raise Failed("put after the verification: %s" % last_line(r.err))
		for fake, want in (("churn/t99/00000000 0\n", "missing=1 "),
				   ("churn/t98/00000000 0\n", "mismatched=1 ")):
			bad = os.path.join(c.dir, "acked-doctored.log")
			shutil.copyfile(log, bad)
			with open(bad, "a") as f:
				f.write(fake)
			n = self.verify(eps, bad)
			if n.returncode != 1 or (want and want not in n.stdout):
				raise Failed("the verifier missed a doctored log (%s): rc %d\n%s" %
					     (fake.split()[0], n.returncode, n.stdout))
		self.note("verified")
		snaps = {}
		for i in (m4, m5):
			with open(c.members[i].log_path, errors="replace") as f:
				snaps[c.members[i].name] = any(SNAPSHOT_LOG.search(x) for x in f)
		print("removed members: " + "; ".join(self.removed_exit))
		print("caught up by snapshot: " + ", ".join("%s %s" % (n, "yes" if s else "NO")
							     for n, s in sorted(snaps.items())))
		if v.returncode != 0:
			raise Failed("verification failed (rc %d)" % v.returncode)
		if a.require_snapshot and not all(snaps.values()):
			raise Failed("a new member caught up without a snapshot: %s" % snaps)


def main():
	ap = argparse.ArgumentParser()
	ap.add_argument("--server", default="etcd")
	ap.add_argument("--writer", required=True)
	ap.add_argument("--threads", type=int, default=8)
	ap.add_argument("--deadline-ms", type=int, default=2000)
	ap.add_argument("--snapshot-count", type=int, default=0)
	ap.add_argument("--no-require-snapshot", dest="require_snapshot", action="store_false")
	ap.add_argument("--keep", action="store_true", help="keep the cluster dir")
	a = ap.parse_args()
	if shutil.which(a.server) is None and not os.path.exists(a.server):
		print("churn: %s is not installed: skipped" % a.server)
		return 77
	if shutil.which("etcdctl") is None:
		print("churn: etcdctl is not installed: skipped")
		return 77
	return Churn(a).run()


if __name__ == "__main__":
	sys.exit(main())
