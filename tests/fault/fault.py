#!/usr/bin/env python3
# tests/fault/fault.py — crash-fault test: kill -9 the leader of a 3-member cluster under a write
# stream, then every member at once, and check that every write etcdctl acknowledged survives on
# every member. Drives the server only from outside (etcdctl, signals); never edits data dirs.
"""Leader crash and whole-cluster crash under load, checked with the real etcdctl.

    fault.py --keeld <server binary> [--duration S] [--rounds N] [--writers W]

Steps (one round by default; --rounds repeats 1-4 for a soak):
 1. W writer threads run `etcdctl put key-<writer>-<seq> val-<writer>-<seq>` through all three
    endpoints, one key per call, never retrying a key; a write counts as acknowledged only when
    etcdctl exits 0 and prints "OK".
 2. After --warmup seconds the leader is killed with SIGKILL. A probe (short command timeout,
    surviving endpoints only) measures the time to the first successful write, a poller the
    time until both survivors report the same new leader. Both must stay under
    5 x election timeout + client slack. ("stream writers" is the first ack of a stream put
    issued after the kill; it mostly shows the 2 s command timeout of the stuck puts.)
 3. Writers go on for --duration seconds and stop. Once the survivors report equal revisions,
    every acknowledged write is read back from each with serializable (local) reads, and the
    two members' key sets must be identical.
 4. The killed member restarts from its data dir; the time until its revision matches is the
    catch-up time; then the same check runs on it.
 5. With the writers running again, all three get SIGKILL in the same instant (so acked
    writes must have been durable, not just applied) and restart; once a leader exists and the
    revisions agree, every acknowledged write is checked on every member and a new write must
    succeed and reach all three.
Exit status: 0 PASS, 1 FAIL, 77 when etcdctl (or the server binary) is missing.
"""

import argparse
import base64
import collections
import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from cluster import Cluster, ClusterError  # noqa: E402

HEARTBEAT_MS = 50
ELECTION_MS = 500
# A write or status call that can not finish inside a few election timeouts is a failed one;
# short client timeouts keep the recovery measurement fine-grained.
WRITE_TIMEOUT_MS = 2000
PROBE_TIMEOUT_MS = 300
# Spawning etcdctl, dialing and one probe timeout: what a client adds on top of the election.
CLIENT_SLACK_MS = 1000
RECOVERY_LIMIT_MS = 5 * ELECTION_MS + CLIENT_SLACK_MS
CONVERGE_TIMEOUT_S = 30.0


class Fail(Exception):
	pass


def now_ms():
	return time.monotonic() * 1000.0


def err_text(r):
	"""The one line of etcdctl's stderr that says why a call failed."""
	lines = [ln.strip() for ln in r.err.splitlines() if ln.strip()]
	for ln in reversed(lines):
		if ln.startswith("Error:"):
			return ln[len("Error:"):].strip()
	if r.rc == -9:
		return "etcdctl hung (killed)"
	return lines[-1][:80] if lines else "rc %d, no stderr" % r.rc


class Writer(threading.Thread):
	"""One stream of single-key puts; owns its records until joined."""

	def __init__(self, cluster, wid, stop):
		super().__init__(name="writer-%s" % wid, daemon=True)
		self.cluster, self.wid, self.stop = cluster, wid, stop
		self.records = []  # (key, value, t_start_ms, t_end_ms, ok, error text)

	def run(self):
		seq = 0
		while not self.stop.is_set():
			seq += 1
			key = "key-%s-%d" % (self.wid, seq)
			val = "val-%s-%d" % (self.wid, seq)
			t0 = now_ms()
			r = self.cluster.etcdctl("--dial-timeout=1s",
						 "--command-timeout=%dms" % WRITE_TIMEOUT_MS,
						 "put", key, val,
						 timeout=WRITE_TIMEOUT_MS / 1000 + 5)
			ok = r.rc == 0 and r.out.strip() == "OK"
			why = None if ok else err_text(r)
			self.records.append((key, val, t0, now_ms(), ok, why))


class FirstSuccess(threading.Thread):
	"""Repeats attempt() until it returns True or the deadline passes; records when."""

	def __init__(self, name, attempt, deadline_ms):
		super().__init__(name=name, daemon=True)
		self.attempt, self.deadline_ms = attempt, deadline_ms
		self.at_ms = None
		self.tries = 0

	def run(self):
		while now_ms() < self.deadline_ms:
			self.tries += 1
			if self.attempt():
				self.at_ms = now_ms()
				return
			time.sleep(0.01)


def status_field(st, *path):
	"""A field of an `endpoint status -w json` entry, or None when the server left it out."""
	v = st
	for k in path:
		v = v.get(k) if isinstance(v, dict) else None
	return v


def member_id(st):
	return status_field(st, "Status", "header", "member_id")


def revision_of(st):
	return status_field(st, "Status", "header", "revision")


def statuses(c, members):
	return {i: c.status(i, timeout=1) for i in members}


def wait_converged(c, members, timeout_s=CONVERGE_TIMEOUT_S, want=None):
	"""Wait until every member answers with the same revision twice in a row (writers are
	stopped, so equal and stable means applied everywhere); returns it. With want, the
	revision must also be exactly that value."""
	deadline = time.monotonic() + timeout_s
	prev, last = None, {}
	while time.monotonic() < deadline:
		dead = [c.members[i] for i in members if not c.members[i].running]
		if dead:
			raise Fail("%s exited (rc %s) while waiting for revisions to converge" %
				   (dead[0].name, dead[0].proc and dead[0].proc.returncode))
		sts = statuses(c, members)
		last = {i: (revision_of(s) if s else None) for i, s in sts.items()}
		revs = set(last.values())
		if len(revs) == 1 and None not in revs:
			rev = revs.pop()
			if rev == prev and (want is None or rev == want):
				return rev
			prev = rev
		else:
			prev = None
		time.sleep(0.05)
	raise Fail("revisions did not converge in %.0f s%s: %s" %
		   (timeout_s, " to %d" % want if want is not None else "",
		    ", ".join("%s=%s" % (c.members[i].name, r) for i, r in last.items())))


def read_local(c, i):
	"""Every key-* of member i from its own state (serializable read): (revision, {k: v})."""
	r = c.etcdctl("get", "--prefix", "key-", "--consistency=s", "-w", "json",
		      "--command-timeout=10s", endpoints=i, timeout=30)
	if r.rc != 0:
		raise Fail("serializable get on %s failed: %s" % (c.members[i].name, err_text(r)))
	try:
		data = json.loads(r.out)
		kvs = {}
		for kv in data.get("kvs", []):
			k = base64.b64decode(kv["key"]).decode()
			kvs[k] = base64.b64decode(kv.get("value", "")).decode()
		return data["header"]["revision"], kvs
	except (ValueError, KeyError, TypeError) as e:
		raise Fail("bad get -w json from %s: %s" % (c.members[i].name, e))


def verify(c, members, acked):
	"""Every acknowledged write on every member with its value, and identical contents across
	members (they are at one revision). Returns the number of keys each member holds."""
	ref = None
	for i in members:
		rev, kvs = read_local(c, i)
		missing = [k for k in acked if k not in kvs]
		wrong = [k for k in acked if k in kvs and kvs[k] != acked[k]]
		if missing or wrong:
			raise Fail("%s (revision %d): %d of %d acknowledged writes missing, %d "
				   "wrong value; first: %s" %
				   (c.members[i].name, rev, len(missing), len(acked), len(wrong),
				    (missing + wrong)[:3]))
		if ref is None:
			ref = (i, kvs)
		elif kvs != ref[1]:
			diff = sorted(set(kvs.items()) ^ set(ref[1].items()))
			raise Fail("%s and %s differ at one revision in %d entries; first: %s" %
				   (c.members[ref[0]].name, c.members[i].name, len(diff), diff[:3]))
	return len(ref[1]) if ref else 0


def find_leader(c, members):
	"""(index, member_id) of the leader all of members agree on."""
	lead = c.wait_leader(timeout=10)
	if lead not in members:
		raise Fail("leader %s is not a running member" % c.members[lead].name)
	st = c.status(lead)
	if st is None:
		raise Fail("leader %s does not answer endpoint status" % c.members[lead].name)
	return lead, member_id(st)


def snapshot_installs(c, i):
	"""How many snapshots member i has installed, by its log ("installed the store of the
	snapshot" is keeld's line; etcd 3.4 logs "applying snapshot at index")."""
	try:
		with open(c.members[i].log_path, errors="replace") as f:
			return sum(1 for line in f if "installed the store of the snapshot" in line
				   or "applying snapshot at index" in line)
	except OSError:
		return 0


def run_round(c, rnd, args, acked, totals, out):
	"""Steps 1-4 once; adds this round's acknowledged writes to acked."""
	live = list(range(c.size))
	stop = threading.Event()
	writers = [Writer(c, "%d.%d" % (rnd, w) if args.rounds > 1 else str(w), stop)
		   for w in range(args.writers)]
	for w in writers:
		w.start()
	try:
		time.sleep(args.warmup)
		lead, lead_id = find_leader(c, live)
		survivors = [i for i in live if i != lead]
		t_kill = now_ms()
		c.kill(lead)
		deadline = t_kill + max(RECOVERY_LIMIT_MS * 4, 10000)

		def probe_write():
			r = c.etcdctl("--dial-timeout=%dms" % PROBE_TIMEOUT_MS,
				      "--command-timeout=%dms" % PROBE_TIMEOUT_MS,
				      "put", "probe-%d" % rnd, "%.0f" % now_ms(),
				      endpoints=survivors, timeout=5)
			return r.rc == 0 and r.out.strip() == "OK"

		def probe_leader():
			ids = set()
			for i in survivors:
				st = c.status(i, timeout=1)
				if st is None:
					return False
				ids.add(status_field(st, "Status", "leader"))
			return len(ids) == 1 and not ids & {0, None, lead_id}

		pw = FirstSuccess("probe-write", probe_write, deadline)
		pl = FirstSuccess("probe-leader", probe_leader, deadline)
		pw.start()
		pl.start()
		pw.join()
		pl.join()
		time.sleep(args.duration)
	finally:
		stop.set()
		for w in writers:
			w.join()

	recs = [rec for w in writers for rec in w.records]
	ok = [rec for rec in recs if rec[4]]
	failed = [rec for rec in recs if not rec[4]]
	for key, val, *_ in ok:
		acked[key] = val
	totals["acked"] += len(ok)
	totals["failed"] += len(failed)
	reasons = collections.Counter(rec[5] for rec in failed)
	before = sum(1 for rec in ok if rec[3] < t_kill)
	after_ok = [rec[3] for rec in ok if rec[2] > t_kill]
	stream_ms = min(after_ok) - t_kill if after_ok else None
	name = c.members[lead].name
	out("round %d: %d writers, %d writes acked (%d before the kill), %d failed%s" %
	    (rnd, len(writers), len(ok), before, len(failed),
	     "" if not failed else " (" + ", ".join("%s x%d" % (k, n)
						     for k, n in reasons.most_common(4)) + ")"))
	write_ms = pw.at_ms - t_kill if pw.at_ms else None
	lead_ms = pl.at_ms - t_kill if pl.at_ms else None
	fmt = lambda v: "never" if v is None else "%.0f ms" % v  # noqa: E731
	out("round %d: killed leader %s; new leader after %s, first write after %s "
	    "(stream writers: %s); limit %d ms" % (rnd, name, fmt(lead_ms), fmt(write_ms),
						 fmt(stream_ms), RECOVERY_LIMIT_MS))
	totals["recovery"].append(write_ms)
	if write_ms is None or write_ms > RECOVERY_LIMIT_MS:
		raise Fail("writes did not resume within %d ms of the leader kill (%s)" %
			   (RECOVERY_LIMIT_MS, fmt(write_ms)))
	if lead_ms is None or lead_ms > RECOVERY_LIMIT_MS:
		raise Fail("no new leader within %d ms of the leader kill (%s)" %
			   (RECOVERY_LIMIT_MS, fmt(lead_ms)))
	if not after_ok:
		raise Fail("the write stream never resumed after the leader kill")
	if before == 0:
		raise Fail("no write was acknowledged before the leader kill")

	rev = wait_converged(c, survivors)
	held = verify(c, survivors, acked)
	nfail_present = held - len(acked)
	out("round %d: survivors %s at revision %d: %d/%d acked writes present on each "
	    "(%d keys held; %d failed writes were applied anyway)" %
	    (rnd, ",".join(c.members[i].name for i in survivors), rev, len(acked), len(acked),
	     held, nfail_present))

	t0 = now_ms()
	installs = snapshot_installs(c, lead)
	c.restart(lead, wait=False)
	rev = wait_converged(c, live, want=rev)
	catch_ms = now_ms() - t0
	totals["catchup"].append(catch_ms)
	verify(c, live, acked)
	by_snapshot = snapshot_installs(c, lead) > installs
	out("round %d: %s restarted, caught up to revision %d in %.0f ms %s; %d/%d acked present"
	    % (rnd, name, rev, catch_ms, "by installing a snapshot" if by_snapshot
	       else "from the log", len(acked), len(acked)))
	if args.expect_snapshot and not by_snapshot:
		raise Fail("%s caught up from the log, not from a snapshot (--snapshot-count %d)"
			   % (name, args.snapshot_count))


def kill_all_and_restart(c, args, acked, totals, out):
	"""Step 5: SIGKILL every member in one instant while writes are in flight, restart all."""
	stop = threading.Event()
	writers = [Writer(c, "x%d" % w, stop) for w in range(args.writers)]
	for w in writers:
		w.start()
	try:
		time.sleep(min(args.warmup, 1.0))
		procs = [m.proc for m in c.members if m.running]
		for p in procs:
			p.send_signal(signal.SIGKILL)
	finally:
		stop.set()
		for w in writers:
			w.join()
	for i in range(c.size):
		c.kill(i)  # only reaps: every signal above went out before the first wait
	recs = [rec for w in writers for rec in w.records]
	ok = [rec for rec in recs if rec[4]]
	for key, val, *_ in ok:
		acked[key] = val
	totals["acked"] += len(ok)
	totals["failed"] += len(recs) - len(ok)
	out("kill -9 all: %d members killed together with %d writers running: %d writes acked "
	    "before, %d failed" % (len(procs), len(writers), len(ok), len(recs) - len(ok)))

	t0 = now_ms()
	for i in range(c.size):
		c.start_member(i)
	try:
		lead = c.wait_leader(timeout=30)
	except ClusterError as e:
		raise Fail("no leader after restarting all members: %s" % e)
	lead_ms = now_ms() - t0
	live = list(range(c.size))
	rev = wait_converged(c, live)
	t_conv = now_ms() - t0
	held = verify(c, live, acked)
	out("kill -9 all: restarted, leader %s after %.0f ms, all at revision %d after %.0f ms; "
	    "%d/%d acked present on each of %s (%d keys held)" %
	    (c.members[lead].name, lead_ms, rev, t_conv, len(acked), len(acked),
	     ",".join(m.name for m in c.members), held))
	r = c.etcdctl("--command-timeout=5s", "put", "key-final", "after-crash", timeout=15)
	if r.rc != 0 or r.out.strip() != "OK":
		raise Fail("write after restarting all members failed: %s" % err_text(r))
	acked["key-final"] = "after-crash"
	rev = wait_converged(c, live)
	verify(c, live, acked)
	out("kill -9 all: new write acknowledged and present on all members (revision %d)" % rev)


def parse_args(argv):
	p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	p.add_argument("--keeld", required=True, help="server binary (keeld or etcd)")
	p.add_argument("--etcdctl", default="etcdctl")
	p.add_argument("--writers", type=int, default=6, help="concurrent writer threads")
	p.add_argument("--snapshot-count", type=int, default=50,
		       help="--snapshot-count of every member: small, so the log is compacted "
		       "past a member that was down and it must catch up from a snapshot")
	p.add_argument("--expect-snapshot", action="store_true",
		       help="fail unless the restarted member caught up by installing a snapshot "
		       "(keeld logs it; etcd keeps 5000 entries for followers and uses its log)")
	p.add_argument("--warmup", type=float, default=2.0, help="seconds of writes before a kill")
	p.add_argument("--duration", type=float, default=3.0,
		       help="seconds of writes after each leader kill (raise for a soak)")
	p.add_argument("--rounds", type=int, default=1,
		       help="leader kill/restart rounds before the whole-cluster crash")
	return p.parse_args(argv)


def main(argv):
	args = parse_args(argv)
	if not shutil.which(args.etcdctl) and not os.access(args.etcdctl, os.X_OK):
		print("fault: SKIP etcdctl not found (%s)" % args.etcdctl)
		return 77
	if not (shutil.which(args.keeld) or os.access(args.keeld, os.X_OK)):
		print("fault: SKIP server binary not found (%s)" % args.keeld)
		return 77

	def out(line):
		print("fault: " + line, flush=True)

	t_start = time.monotonic()
	acked = {}
	totals = {"acked": 0, "failed": 0, "recovery": [], "catchup": []}
	c = Cluster(args.keeld, size=3, heartbeat_ms=HEARTBEAT_MS, election_ms=ELECTION_MS,
		    etcdctl=args.etcdctl, snapshot_count=args.snapshot_count)
	failed = True
	try:
		c.start()
		out("3 members of %s, heartbeat %d ms, election %d ms" %
		    (os.path.basename(c.binary), HEARTBEAT_MS, ELECTION_MS))
		for rnd in range(1, args.rounds + 1):
			run_round(c, rnd, args, acked, totals, out)
		kill_all_and_restart(c, args, acked, totals, out)
		failed = False
	except Exception as e:  # any surprise must still end in one FAIL line
		if not isinstance(e, (Fail, ClusterError)):
			traceback.print_exc(file=sys.stdout)
		reason = str(e).splitlines()[0] if str(e) else type(e).__name__
		c.dump_logs(lines=15, file=sys.stdout)
		out("FAIL %s" % reason)
		return 1
	finally:
		c.close(failed=False)
		if not failed:
			rec = [v for v in totals["recovery"] if v is not None]
			out("totals: %d writes acked, %d failed, leader-kill recovery %s ms, "
			    "catch-up %s ms, %d keys verified per member, %.1f s" %
			    (totals["acked"], totals["failed"],
			     "/".join("%.0f" % v for v in rec),
			     "/".join("%.0f" % v for v in totals["catchup"]), len(acked),
			     time.monotonic() - t_start))
	out("PASS")
	return 0


if __name__ == "__main__":
	sys.exit(main(sys.argv[1:]))
