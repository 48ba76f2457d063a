#!/usr/bin/env python3
# tests/compat/compat.py — runs one scripted etcdctl session against a fresh 3-member cluster of
# the reference server (etcd 3.4) and of the candidate (keeld), masks only what legitimately
# differs between two clusters, and diffs the transcripts. Never masks revisions or errors.
#   usage: tests/compat/compat.py --keeld BUILD/server/keeld [--reference etcd] [--out DIR]
#   self-check: tests/compat/compat.py --keeld "$(command -v etcd)"   (must print 0 differences)
# Exit: 0 no difference, 1 differences or a cluster failed, 77 etcd/etcdctl missing (skip).
import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from cluster import Cluster, ClusterError, Result  # noqa: E402

HEARTBEAT_MS = 100
ELECTION_MS = 1000
WATCH_GRACE = 0.5	# seconds a connected watch without --rev gets to be created
LOCK_NAME = "lk"
ELECT_NAME = "el"
UNKNOWN_LEASE = "1234abcd"

# Keys whose value differs between any two clusters: (key in JSON or -w fields) -> mask.
MASKED_NUMBERS = {
	"raft_term": "<term>", "RaftTerm": "<term>", "raftTerm": "<term>",
	"raftIndex": "<index>", "raftAppliedIndex": "<index>",
	"dbSize": "<dbsize>", "dbSizeInUse": "<dbsize>",
	"version": "<version>",	# the server's version string only, never a key's version
}
# Keys holding a member, cluster or lease ID (decimal in JSON and -w fields).
ID_KEYS = {"cluster_id", "ClusterID", "member_id", "MemberID", "memberID", "leader", "ID",
	   "id", "lease", "Lease", "PrevLease"}


class Masker:
	"""Maps one cluster's own identities to symbols shared by both transcripts: ports to EPn /
	PEERn, member IDs to M:<name>, the cluster ID to CLUSTER, lease IDs to Ln in order of
	first appearance (so a lease seen twice keeps its symbol in both runs)."""

	def __init__(self, cluster, members_json):
		self.ports = {}
		for i, m in enumerate(cluster.members):
			self.ports[str(m.client_port)] = "EP%d" % (i + 1)
			self.ports[str(m.peer_port)] = "PEER%d" % (i + 1)
		self.members = {}
		for mem in members_json["members"]:
			self.members[int(mem["ID"])] = "M:" + mem["name"]
		self.cluster_id = int(members_json["header"]["cluster_id"])
		self.leases = {}
		self.hex_names = "|".join((LOCK_NAME, ELECT_NAME))

	def lease(self, value):
		v = int(value)
		if v == 0:
			return 0
		if v not in self.leases:
			self.leases[v] = "L%d" % (len(self.leases) + 1)
		return self.leases[v]

	def ident(self, key, value):
		if not isinstance(value, int) or isinstance(value, bool):
			return value
		if key in ("cluster_id", "ClusterID"):
			return "CLUSTER" if value == self.cluster_id else value
		if key == "leader":	# who leads is an election's outcome, not behaviour
			return "<a member>" if value in self.members else value
		if value in self.members:
			return self.members[value]
		if key in ("member_id", "MemberID"):
			return value
		return self.lease(value)

	def hex_ident(self, text):
		v = int(text, 16)
		if v in self.members:
			return self.members[v]
		return self.lease(v)

	def known_lease(self, value):
		"""For lists in an order etcd does not define: a lease not seen before cannot get a
		symbol here, since symbols follow the order of first appearance."""
		return self.leases.get(int(value), "L<not seen before>")

	# ---- text-level rules, applied to every line ----

	def ports_sub(self, text):
		def port(m):
			return self.ports.get(m.group(1), "127.0.0.1:?" + m.group(1))
		return re.sub(r"127\.0\.0\.1:(\d+)", port, text)

	def client_log(self, line):
		# etcdctl's own zap warnings: their time and the client's random UUID are not the
		# server's doing.
		try:
			obj = json.loads(line)
		except ValueError:
			return line
		if not isinstance(obj, dict) or "level" not in obj:
			return line
		if "ts" in obj:
			obj["ts"] = "<ts>"
		if "target" in obj:
			obj["target"] = re.sub(r"client-[0-9a-f-]+", "client-<uuid>", obj["target"])
		return json.dumps(obj, separators=(",", ":"))

	def text_line(self, line):
		line = re.sub(r"\blease ([0-9a-f]+)\b",
			      lambda m: "lease %s" % self.hex_ident(m.group(1)), line)
		line = re.sub(r"(^|[\s\[])(%s)/([0-9a-f]+)\b" % self.hex_names,
			      lambda m: "%s%s/%s" % (m.group(1), m.group(2),
						     self.hex_ident(m.group(3))), line)
		line = re.sub(r"took = \S+", "took = <duration>", line)
		m = re.search(r"granted with TTL\((\d+)s\), remaining\((-?\d+)s\)", line)
		if m:
			line = line.replace(m.group(0), "granted with TTL(%ss), remaining(%s)" % (
				m.group(1), remaining(int(m.group(1)), int(m.group(2)))))
		m = re.search(r"attached keys\(\[(.*)\]\)", line)
		if m:
			keys = " ".join(sorted(m.group(1).split()))
			line = line.replace(m.group(0), "attached keys([%s])" % keys)
		return line

	# ---- structured outputs ----

	def json_value(self, obj):
		if isinstance(obj, list):
			return [self.json_value(v) for v in obj]
		if not isinstance(obj, dict):
			return obj
		out = {}
		for k, v in obj.items():
			if k in MASKED_NUMBERS and not isinstance(v, (dict, list)) and \
			   (k != "version" or isinstance(v, str)):
				out[k] = MASKED_NUMBERS[k]
			elif k in ID_KEYS:
				out[k] = self.ident(k, v)
			elif k == "took":
				out[k] = "<duration>"
			else:
				out[k] = self.json_value(v)
		if "ttl" in out and "granted-ttl" in out and out["ttl"] != -1:
			out["ttl"] = remaining(out["granted-ttl"], out["ttl"])
		# Orders etcd does not define: a lease's keys and the lease list are Go map walks;
		# members sort by ID, which differs between clusters.
		if isinstance(out.get("keys"), list):
			out["keys"] = sorted(out["keys"])
		if isinstance(obj.get("leases"), list):
			out["leases"] = sorted(({"id": self.known_lease(e.get("id", 0))}
						for e in obj["leases"]), key=str)
		if isinstance(out.get("members"), list):
			# Unstarted members have no name: the rest of the (masked) entry decides.
			out["members"] = sorted(out["members"], key=lambda m: (
				str(m.get("name")), json.dumps(m, sort_keys=True)))
		return out

	def json_line(self, line):
		obj = json.loads(line)
		obj = self.json_value(obj)
		if isinstance(obj, list):
			obj.sort(key=lambda e: json.dumps(e, sort_keys=True))
		return json.dumps(obj, separators=(",", ":"))

	def fields(self, lines):
		granted = None
		for ln in lines:
			m = re.match(r'^"GrantedTTL" : (\d+)$', ln)
			if m:
				granted = int(m.group(1))
		out = []
		for ln in lines:
			m = re.match(r'^"(\w+)" : (-?\d+)$', ln)
			if m:
				k, v = m.group(1), int(m.group(2))
				if k in MASKED_NUMBERS:
					ln = '"%s" : %s' % (k, MASKED_NUMBERS[k])
				elif k in ID_KEYS:
					ln = '"%s" : %s' % (k, self.ident(k, v))
				elif k == "TTL" and granted is not None and v != -1:
					ln = '"TTL" : %s' % remaining(granted, v)
			out.append(ln)
		if granted is not None:
			keys = sorted(ln for ln in out if ln.startswith('"Key" : '))
			out = [ln for ln in out if not ln.startswith('"Key" : ')] + keys
		return out

	def table(self, lines):
		"""Re-renders a table cell by cell: widths follow masked contents, rows sort by the
		masked row (member order is by ID), and the leader column is checked, not copied."""
		rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines
			if ln.startswith("|")]
		if not rows:
			return lines
		head, body = rows[0], rows[1:]
		out_rows = []
		leaders = 0
		for r in body:
			cells = []
			for name, c in zip(head, r):
				cells.append(self.table_cell(name, c))
				if name == "IS LEADER" and c == "true":
					leaders += 1
			out_rows.append(cells)
		out = ["| " + " | ".join(head) + " |"]
		out += ["| " + " | ".join(r) + " |" for r in sorted(out_rows)]
		if "IS LEADER" in head:
			out.append("(rows with IS LEADER=true: %d)" % leaders)
		return out

	def table_cell(self, name, c):
		if name == "ID" and re.fullmatch(r"[0-9a-f]+", c):
			return self.hex_ident(c)
		if name in ("VERSION", "DB SIZE", "RAFT TERM", "RAFT INDEX", "RAFT APPLIED INDEX"):
			return "<masked>"
		if name == "IS LEADER":
			return "<bool>"
		return c


def remaining(granted, left):
	"""A lease's remaining TTL depends on when it is asked: accept up to 3 s of drift."""
	if 0 <= granted - left <= 3:
		return "<%d-3..%d>" % (granted, granted)
	return left


class Transcript:
	def __init__(self):
		self.lines = []
		self.commands = 0

	def add(self, text):
		self.lines.extend(text.splitlines())


class Session:
	"""One run of the script against one cluster. Commands are pinned to one endpoint each so
	the answering member (and so every header's member_id) is the same in both runs."""

	def __init__(self, cluster, tag, budget):
		self.c = cluster
		self.deadline = time.monotonic() + budget
		self.tag = tag
		self.t = Transcript()
		self.vars = {}
		self.last_ep = None
		self.ident_masker = None
		self.bg = []

	# ---- plumbing ----

	def setup(self):
		r = self.c.etcdctl("member", "list", "-w", "json", endpoints=0, check=True)
		self.m = Masker(self.c, json.loads(r.out))

	def expand(self, args):
		return [a.format(**self.vars) if isinstance(a, str) else str(a) for a in args]

	def sync(self, ep):
		"""A linearizable read makes member ep apply every write acknowledged so far, so the
		revision in its next non-linearizable answer (lease, status) is not stale."""
		self.c.etcdctl("get", "--limit=1", "sync", endpoints=ep, timeout=10)

	def normalize(self, out, err):
		res = []
		lines = [self.m.ports_sub(ln) for ln in out.splitlines()]
		if any(ln.startswith("+-") for ln in lines):
			lines = self.m.table(lines)
		elif any(re.match(r'^"\w+" : ', ln) for ln in lines):
			lines = self.m.fields(lines)
		else:
			conv = []
			for ln in lines:
				if ln[:1] in ("{", "["):
					try:
						conv.append(self.m.json_line(ln))
						continue
					except ValueError:
						pass
				conv.append(self.m.text_line(ln))
			lines = conv
			lines = self.sort_unordered(lines)
		res += ["| " + ln for ln in lines]
		errs = []
		for ln in err.splitlines():
			ln = self.m.ports_sub(ln)
			ln = self.m.client_log(ln)
			errs.append(self.m.text_line(ln))
		res += ["! " + ln for ln in self.sort_unordered(errs)]
		return res

	def sort_unordered(self, lines):
		# "found N leases" lists a Go map; member list and endpoint health --cluster rows
		# follow member IDs or goroutine completion.
		if lines and re.match(r"^found \d+ leases$", lines[0]):
			return lines[:1] + sorted(self.m.known_lease(int(ln, 16))
						  for ln in lines[1:])
		if lines and all(re.match(r"^[0-9a-f]+, \w+, ", ln) for ln in lines):
			def member(m):
				return self.m.hex_ident(m.group(0))
			return sorted(re.sub(r"^[0-9a-f]+", member, ln) for ln in lines)
		if len(lines) > 1 and all(" is healthy: " in ln for ln in lines):
			return sorted(lines)
		return lines

	def record(self, label, rc, out, err, note=None):
		self.t.commands += 1
		self.t.lines.append("$ " + label)
		if note:
			self.t.lines.append("# " + note)
		self.t.lines.append("rc=%s" % rc)
		self.t.lines.extend(self.normalize(out, err))

	def label(self, args, ep, stdin_desc=None):
		s = "etcdctl " + " ".join(quote(a) for a in args) + "  @EP%d" % (ep + 1)
		if stdin_desc:
			s += "  < " + stdin_desc
		return s

	# ---- steps ----

	def run(self, ep, *args, stdin=None, stdin_desc=None, sync=False, timeout=20):
		real = self.expand(args)
		if time.monotonic() > self.deadline:
			# A server that answers every command by timing out would outlast meson.
			self.record(self.label(args, ep), "skipped", "", "",
				    "session time budget spent")
			return Result(-1, "", "", real)
		if sync or real[0] in ("lease", "endpoint", "member"):
			if ep != self.last_ep:
				self.sync(ep)
		r = self.c.etcdctl(*real, endpoints=ep, input=stdin, timeout=timeout)
		self.last_ep = ep
		self.record(self.label(args, ep, stdin_desc or (stdin and "<%d bytes>" %
								 len(stdin))), r.rc, r.out, r.err)
		return r

	def raw(self, ep, *args):
		"""An unrecorded command, for values the script needs (revisions, lease IDs)."""
		return self.c.etcdctl(*self.expand(args), endpoints=ep, timeout=20)

	def revision(self, ep=0):
		r = self.raw(ep, "get", "sync", "-w", "json")
		return int(json.loads(r.out)["header"]["revision"])

	def sync_all(self):
		for i in range(self.c.size):
			self.sync(i)

	def grant(self, var, ep, *args):
		"""lease grant args..., keeping the new lease's hex ID as {var} for later."""
		r = self.run(ep, "lease", "grant", *args)
		m = re.search(r"lease ([0-9a-f]+) granted", r.out)
		if m:
			self.vars[var] = m.group(1)
		else:
			m = re.search(r'"ID"\s*:\s*(\d+)', r.out)
			self.vars[var] = "%x" % int(m.group(1)) if m else "0"

	def wait_keys(self, prefix, n, timeout=15):
		"""Waits (unrecorded) until prefix holds at least n keys."""
		deadline = clip(time.monotonic() + timeout, self.deadline)
		while time.monotonic() < deadline:
			r = self.raw(2, "get", prefix, "--prefix", "--keys-only")
			if len([ln for ln in r.out.splitlines() if ln]) >= n:
				return True
			time.sleep(0.05)
		return False

	def wait_gone(self, ep, key, timeout=15):
		deadline = clip(time.monotonic() + timeout, self.deadline)
		while time.monotonic() < deadline:
			r = self.raw(ep, "get", key, "--keys-only")
			if r.rc == 0 and r.out.strip() == "":
				return True
			time.sleep(0.2)
		return False

	# ---- background etcdctl: watch, lock, elect ----

	def start_bg(self, ep, *args):
		real = self.expand(args)
		p = self.c.etcdctl_bg(*real, endpoints=ep)
		bg = Background(p, self.label(args, ep), self.deadline)
		self.bg.append(bg)
		return bg

	def finish_bg(self, bg, killed_note=None, timeout=10):
		"""Stops bg (SIGTERM) unless it already exited, and records its whole output."""
		note = None
		if bg.p.poll() is None and killed_note:
			bg.p.terminate()
			note = killed_note
		try:
			bg.p.wait(timeout=clip(time.monotonic() + timeout, self.deadline) -
				  time.monotonic())
		except subprocess.TimeoutExpired:
			bg.p.kill()
			bg.p.wait()
			note = (note or "") + " [harness timeout: killed]"
		bg.join()
		rc = bg.p.returncode
		if note and rc is not None and rc < 0:
			rc = "signal"
		err = bg.err_text()
		if note:
			# Our SIGTERM may cancel a call etcdctl has in flight: timing, not server.
			err = "".join(ln for ln in err.splitlines(True)
				      if "code = Canceled desc = context canceled" not in ln)
		self.record(bg.label, rc, bg.out_text(), err, note)

	def watch_live(self, watch_ep, watch_args, writes, events_of):
		"""Starts a watch, performs writes (each through its own endpoint), waiting after
		each for its events so every write is delivered in its own response, then stops
		the watch."""
		w = self.start_bg(watch_ep, "watch", *watch_args)
		if not any(a.startswith("--rev") for a in watch_args):
			# No way to see the watch created without a write it would report: wait for
			# etcdctl's connection (slow under load), then for one round trip more.
			port = self.c.members[watch_ep].client_port
			wait_connected(w.p.pid, port, 10)
			time.sleep(WATCH_GRACE)
		expected = 0
		for ep, args, n in writes:
			self.run(ep, *args)
			expected += n
			w.wait_for(lambda: events_of(w.out_text()) >= expected, 10)
		w.settle()
		self.finish_bg(w, "stopped by harness after %d events" % expected)

	def watch_history(self, ep, watch_args, expected, events_of):
		w = self.start_bg(ep, "watch", *watch_args)
		w.wait_for(lambda: events_of(w.out_text()) >= expected, 10)
		w.settle()
		self.finish_bg(w, "stopped by harness after %d events" % expected)

	def close(self):
		for bg in self.bg:
			if bg.p.poll() is None:
				bg.p.kill()
				bg.p.wait()


class Background:
	"""A background etcdctl whose stdout/stderr are read by threads as they arrive."""

	def __init__(self, p, label, budget_end):
		self.p = p
		self.budget_end = budget_end
		self.label = label
		self.out = []
		self.err = []
		self.lock = threading.Lock()
		self.threads = [threading.Thread(target=self.pump, args=(p.stdout, self.out),
						 daemon=True),
				threading.Thread(target=self.pump, args=(p.stderr, self.err),
						 daemon=True)]
		for t in self.threads:
			t.start()

	def pump(self, f, acc):
		for line in iter(f.readline, ""):
			with self.lock:
				acc.append(line)

	def out_text(self):
		with self.lock:
			return "".join(self.out)

	def err_text(self):
		with self.lock:
			return "".join(self.err)

	def wait_for(self, pred, timeout):
		deadline = clip(time.monotonic() + timeout, self.budget_end)
		while time.monotonic() < deadline:
			if pred():
				return True
			if self.p.poll() is not None:
				time.sleep(0.05)
				return pred()
			time.sleep(0.02)
		return False

	def settle(self, quiet=0.3, timeout=3.0):
		"""Waits until the output has not grown for `quiet` seconds: etcdctl writes one
		event in several writes (type, prev kv, kv), and stopping it on the first line
		would cut the event short."""
		deadline = clip(time.monotonic() + timeout, self.budget_end)
		last, since = self.out_text(), time.monotonic()
		while time.monotonic() < deadline and self.p.poll() is None:
			time.sleep(0.05)
			now = self.out_text()
			if now != last:
				last, since = now, time.monotonic()
			elif time.monotonic() - since >= quiet:
				return

	def join(self):
		for t in self.threads:
			t.join(timeout=5)


def clip(deadline, budget_end):
	"""Once the session's time budget is spent, every wait gets one second at most."""
	return min(deadline, max(budget_end, time.monotonic() + 1))


def socket_inodes(pid):
	inodes = set()
	try:
		for fd in os.listdir("/proc/%d/fd" % pid):
			try:
				t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
			except OSError:
				continue
			if t.startswith("socket:["):
				inodes.add(t[8:-1])
	except OSError:
		pass
	return inodes


def wait_connected(pid, port, timeout):
	"""Waits until process pid has an established TCP connection to 127.0.0.1:port."""
	deadline = time.monotonic() + timeout
	want = "0100007F:%04X" % port
	while time.monotonic() < deadline:
		inodes = socket_inodes(pid)
		try:
			with open("/proc/net/tcp") as f:
				for ln in f.readlines()[1:]:
					c = ln.split()
					if c[2] == want and c[3] == "01" and c[9] in inodes:
						return True
		except OSError:
			return False
		time.sleep(0.02)
	return False


def quote(a):
	if a == "" or re.search(r"[\s\"'$()<>|&;*]", a):
		return "'" + a.replace("'", "'\\''") + "'"
	return a


def simple_events(text):
	return sum(1 for ln in text.splitlines() if ln in ("PUT", "DELETE"))


def json_events(text):
	n = 0
	for ln in text.splitlines():
		try:
			n += len(json.loads(ln).get("Events") or [])
		except (ValueError, AttributeError):
			pass
	return n


# ---------------------------------------------------------------- the script

TXN_OK = 'mod("t/a") > "0"\nver("t/a") = "1"\nvalue("t/a") = "x"\n\n' \
	 'put t/b yes\nget t/a\ndel t/none\n\nput t/b no\n\n'
TXN_FAIL = 'create("t/a") = "0"\n\nput t/c yes\n\nput t/c no\nget t/ --prefix\n\n'
TXN_JSON = 'value("t/b") = "yes"\n\nput t/d 1\nget t/b\ndel t/c\n\nput t/e 1\n\n'
TXN_JSON_FAIL = 'value("t/b") < "a"\n\nput t/f 1\n\nget t/ --prefix --keys-only\n\n'
TXN_BAD = 'bad("t/a") = "1"\n\nput t/x 1\n\n\n'
TXN_EMPTY = '\n\nput t/g 1\n\n\n'


def script_kv(s):
	run = s.run
	# Data with no ties in version, create/mod revision or value, so every --sort-by order
	# is fully defined by etcd and must match exactly.
	for k, n in (("k/a", 1), ("k/b", 2), ("k/c", 3), ("k/d", 4)):
		for i in range(1, n + 1):
			run(0 if i % 2 else 1, "put", k, "v%s%d" % (k[-1], i))
	run(2, "put", "z", "last")
	run(0, "get", "k/a")
	run(1, "get", "k/", "--prefix")
	run(2, "get", "k/", "--prefix", "-w", "json")
	run(0, "get", "k/", "--prefix", "-w", "fields")
	run(0, "get", "k/c", "--from-key")
	run(1, "get", "k/c", "--from-key", "--keys-only", "-w", "json")
	run(0, "get", "k/", "--prefix", "--limit", "2")
	run(0, "get", "k/", "--prefix", "--limit", "2", "-w", "json")
	run(0, "get", "k/b", "k/d")
	run(0, "get", "k/", "--prefix", "--rev", "4")
	run(2, "get", "k/", "--prefix", "--rev", "6", "-w", "json")
	run(0, "get", "k/a", "--rev", "1")
	for target in ("KEY", "VERSION", "CREATE", "MODIFY", "VALUE"):
		run(0, "get", "k/", "--prefix", "--sort-by", target, "--order", "ASCEND",
		    "--keys-only")
		run(1, "get", "k/", "--prefix", "--sort-by", target, "--order", "DESCEND",
		    "--keys-only")
	run(0, "get", "k/", "--prefix", "--sort-by", "VERSION", "--order", "DESCEND",
	    "--limit", "2", "-w", "json")
	run(0, "get", "k/", "--prefix", "--sort-by", "MODIFY", "-w", "fields", "--limit", "1")
	run(0, "get", "k/", "--prefix", "--order", "DESCEND", "--limit", "3")
	run(0, "get", "k/", "--prefix", "--keys-only")
	run(0, "get", "k/", "--prefix", "--print-value-only")
	run(0, "get", "k/", "--prefix", "--count-only")  # not an etcdctl 3.4 flag: client error
	run(0, "get", "nothing")
	run(0, "get", "nothing", "-w", "json")
	run(0, "get", "", "--from-key", "--keys-only")
	run(0, "get", "k/", "--prefix", "--rev", "1000")
	run(0, "get", "k/a", "--consistency", "s", "-w", "json", sync=True)
	run(0, "get")
	# put
	run(0, "put", "k/a", "va2", "--prev-kv")
	run(1, "put", "k/a", "va3", "--prev-kv", "-w", "json")
	run(0, "put", "k/new", "n", "--prev-kv", "-w", "fields")
	run(0, "put", "k/a", "--ignore-value")
	run(0, "put", "k/a", "--ignore-value", "--prev-kv", "-w", "json")
	run(0, "put", "k/missing", "--ignore-value")
	run(0, "put", "k/a", "vv", "--ignore-value")
	run(0, "put", "k/a", "va4", "--ignore-lease")
	run(0, "put", "k/missing", "x", "--ignore-lease")
	run(0, "put", "k/a", "--ignore-lease")
	run(0, "put", "", "v")
	run(0, "put", "k/stdin", stdin="from stdin\n", stdin_desc="'from stdin'")
	run(0, "put", "k/onlykey")
	run(0, "get", "k/stdin", "-w", "json")
	run(0, "put", "big", stdin="x" * (2 * 1024 * 1024), stdin_desc="2 MiB of x")
	run(0, "put", "big", stdin="x" * (1600 * 1000), stdin_desc="1.6 MB of x")
	# del
	run(0, "del", "k/new", "--prev-kv")
	run(1, "del", "k/b", "--prev-kv", "-w", "json")
	run(0, "del", "k/none")
	run(0, "del", "k/c", "--from-key", "-w", "fields")
	run(0, "get", "", "--from-key")
	run(0, "put", "k/e", "ve")
	run(0, "del", "k/", "--prefix", "--prev-kv", "-w", "json")
	run(0, "del", "")
	# txn
	run(0, "put", "t/a", "x")
	run(0, "txn", stdin=TXN_OK, stdin_desc="txn: success branch")
	run(1, "txn", stdin=TXN_FAIL, stdin_desc="txn: failure branch")
	run(2, "txn", "-w", "json", stdin=TXN_JSON, stdin_desc="txn: success branch")
	run(0, "txn", "-w", "json", stdin=TXN_JSON_FAIL, stdin_desc="txn: failure branch")
	run(0, "txn", "-w", "fields", stdin=TXN_OK, stdin_desc="txn: fields")
	run(0, "txn", stdin=TXN_BAD, stdin_desc="txn: bad compare")
	run(0, "txn", stdin=TXN_EMPTY, stdin_desc="txn: no compares")
	run(0, "get", "t/", "--prefix", "-w", "json")


def script_watch(s):
	run = s.run
	first = s.revision() + 1
	s.watch_live(2, ["w/", "--prefix", "--prev-kv"], [
		(0, ["put", "w/1", "a"], 1),
		(1, ["put", "w/1", "b"], 1),
		(0, ["put", "w/2", "c"], 1),
		(1, ["del", "w/1"], 1),
		(0, ["del", "w/", "--prefix"], 1),
	], simple_events)
	s.watch_live(1, ["w/", "--prefix", "-w", "json"], [
		(0, ["put", "w/3", "d"], 1),
		(2, ["put", "w/3", "e"], 1),
		(0, ["put", "w/4", "f"], 1),
		(2, ["del", "w/", "--prefix"], 2),
	], json_events)
	now = s.revision() + 1
	s.vars["wrev"] = str(now)
	s.watch_live(0, ["w/5", "--rev", "{wrev}", "--prev-kv", "-w", "json"], [
		(1, ["put", "w/5", "g"], 1),
		(2, ["put", "w/5", "h"], 1),
	], json_events)
	s.vars["first"] = str(first)
	s.watch_history(1, ["w/", "--prefix", "--rev", "{first}"], 14, simple_events)
	s.watch_history(2, ["w/", "--prefix", "--rev", "{first}", "--prev-kv", "-w", "json"], 14,
			json_events)
	run(0, "get", "w/", "--prefix", "-w", "json")


def script_compact(s):
	run = s.run
	rev = s.revision()
	s.vars["crev"] = str(rev - 5)
	s.vars["below"] = str(rev - 6)
	s.vars["future"] = str(rev + 100)
	run(0, "compact", "{crev}")
	run(1, "get", "w/5", "--rev", "{below}")
	run(2, "get", "w/5", "--rev", "{crev}", "-w", "json")
	run(0, "compact", "{below}")
	run(0, "compact", "{crev}")
	run(0, "compact", "{future}")
	w = s.start_bg(1, "watch", "w/", "--prefix", "--rev", "{below}")
	w.wait_for(lambda: w.p.poll() is not None, 10)
	s.finish_bg(w, "still running after 10 s: stopped by harness")
	w = s.start_bg(2, "watch", "w/", "--prefix", "--rev", "{below}", "-w", "json")
	w.wait_for(lambda: w.p.poll() is not None, 10)
	s.finish_bg(w, "still running after 10 s: stopped by harness")
	run(0, "put", "c/1", "after-compact")
	run(0, "compact", "{future}", "--physical")


def script_lease(s):
	run = s.run
	s.grant("lease60", 0, "60")
	s.grant("lease120", 1, "120", "-w", "json")
	s.grant("lease30", 0, "30", "-w", "fields")
	run(0, "put", "l/1", "a", "--lease", "{lease60}")
	run(1, "put", "l/2", "b", "--lease", "{lease60}", "-w", "json")
	run(0, "put", "l/3", "c", "--lease", "{lease120}")
	run(0, "get", "l/", "--prefix", "-w", "json")
	run(1, "get", "l/", "--prefix", "-w", "fields")
	run(0, "lease", "timetolive", "{lease60}")
	run(0, "lease", "timetolive", "{lease60}", "--keys")
	run(1, "lease", "timetolive", "{lease60}", "--keys", "-w", "json")
	run(2, "lease", "timetolive", "{lease120}", "--keys", "-w", "fields")
	run(0, "lease", "list")
	run(2, "lease", "list", "-w", "json")
	run(0, "lease", "keep-alive", "--once", "{lease60}")
	run(1, "lease", "keep-alive", "--once", "{lease120}", "-w", "json")
	run(0, "put", "l/1", "a2", "--ignore-lease", "-w", "json")
	run(0, "get", "l/1", "-w", "json")
	run(0, "put", "l/1", "a3", "--lease", "{lease120}", "--prev-kv", "-w", "json")
	run(0, "put", "l/9", "z", "--lease", UNKNOWN_LEASE)
	run(0, "lease", "revoke", "{lease60}")
	run(1, "get", "l/", "--prefix", "-w", "json")
	run(0, "lease", "revoke", "{lease60}")
	run(0, "lease", "timetolive", "{lease60}")
	run(0, "lease", "timetolive", UNKNOWN_LEASE)
	run(1, "lease", "timetolive", UNKNOWN_LEASE, "-w", "json")
	run(0, "lease", "revoke", UNKNOWN_LEASE)
	run(0, "lease", "keep-alive", "--once", UNKNOWN_LEASE)
	s.grant("lease0", 0, "0")
	run(0, "lease", "revoke", "{lease0}")
	s.grant("negative", 0, "--", "-5")
	run(0, "lease", "revoke", "{negative}")
	run(0, "lease", "grant", "99999999999")
	run(0, "lease", "grant", "ten")
	run(0, "lease", "revoke", "{lease30}")
	# Expiry: a 1 s grant is raised to the minimum TTL (1.5 x election timeout, rounded up).
	s.grant("short", 0, "1", "-w", "json")
	run(1, "put", "e/1", "x", "--lease", "{short}")
	run(1, "put", "e/2", "y", "--lease", "{short}")
	gone = s.wait_gone(2, "e/", 15) and s.wait_gone(2, "e/2", 5)
	s.t.lines.append("# e/ keys gone within 15 s: %s" % gone)
	run(2, "get", "e/", "--prefix", "-w", "json", sync=True)
	run(0, "lease", "timetolive", "{short}", "-w", "json")
	run(0, "lease", "list")


def script_lock(s):
	run = s.run
	order = os.path.join(s.c.dir, "lock-order.txt")
	s.vars["order"] = order
	s.vars["go"] = order + ".go"
	# The holder waits (20 s at most) for the harness's go file: B must be queued (its key
	# written) before A lets go, or B's revisions would depend on timing.
	body = 'echo "%s start $ETCD_LOCK_KEY $ETCD_LOCK_REV" >> "{order}"; echo %s-in; ' \
	       'i=0; while [ ! -e "{go}" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; ' \
	       'echo "%s end" >> "{order}"; echo %s-out'
	a = s.start_bg(0, "lock", LOCK_NAME, "--", "sh", "-c", body % ("A", "A", "A", "A"))
	a.wait_for(lambda: "A-in" in a.out_text(), 15)
	b = s.start_bg(1, "lock", LOCK_NAME, "--", "sh", "-c", body % ("B", "B", "B", "B"))
	s.wait_keys(LOCK_NAME + "/", 2)
	run(2, "get", LOCK_NAME + "/", "--prefix", "--sort-by", "CREATE", "--keys-only")
	with open(s.vars["go"], "w"):
		pass
	s.finish_bg(a, None, 20)
	s.finish_bg(b, None, 20)
	try:
		with open(order) as f:
			text = f.read()
	except OSError:
		text = "(no lock-order file)\n"
	s.t.lines.append("$ cat lock-order.txt")
	s.t.lines.extend("| " + s.m.text_line(ln) for ln in text.splitlines())
	run(2, "get", LOCK_NAME + "/", "--prefix", "--sort-by", "CREATE")


def script_elect(s):
	run = s.run
	a = s.start_bg(0, "elect", ELECT_NAME, "proposal-A")
	a.wait_for(lambda: "proposal-A" in a.out_text(), 15)
	b = s.start_bg(1, "elect", ELECT_NAME, "proposal-B")
	s.wait_keys(ELECT_NAME + "/", 2)
	o = s.start_bg(2, "elect", "-l", ELECT_NAME)
	o.wait_for(lambda: "proposal-A" in o.out_text(), 10)
	run(2, "get", ELECT_NAME + "/", "--prefix", "--sort-by", "CREATE")
	s.finish_bg(a, "campaigner A stopped (SIGTERM) by harness")
	b.wait_for(lambda: "proposal-B" in b.out_text(), 15)
	o.wait_for(lambda: "proposal-B" in o.out_text(), 10)
	s.finish_bg(b, "campaigner B stopped (SIGTERM) by harness after winning")
	s.finish_bg(o, "observer stopped (SIGTERM) by harness")
	run(2, "get", ELECT_NAME + "/", "--prefix", "--sort-by", "CREATE")


def script_cluster(s):
	run = s.run
	run(0, "member", "list")
	run(1, "member", "list", "-w", "table")
	run(2, "member", "list", "-w", "json")
	s.sync_all()
	run(0, "endpoint", "status", "--cluster", "-w", "table")
	s.sync_all()
	run(1, "endpoint", "status", "-w", "json")
	run(0, "endpoint", "health")
	run(0, "endpoint", "health", "--cluster")


SCRIPT = [script_kv, script_watch, script_compact, script_lease, script_lock, script_elect,
	  script_cluster]


# ---------------------------------------------------------------- driver

def run_session(binary, tag, args):
	"""Starts a fresh cluster of binary, runs the whole script, returns the Transcript."""
	t0 = time.monotonic()
	with Cluster(binary, size=3, heartbeat_ms=HEARTBEAT_MS, election_ms=ELECTION_MS,
		     etcdctl=args.etcdctl, name_prefix="m") as c:
		c.start(timeout=30)
		s = Session(c, tag, args.budget)
		try:
			s.setup()
			for part in SCRIPT:
				s.t.lines.append("")
				s.t.lines.append("### " + part.__name__)
				if time.monotonic() > s.deadline:
					s.t.lines.append("# skipped: session time budget spent")
					continue
				part(s)
				dead = [m.name for m in c.members if not m.running]
				if dead:
					s.t.lines.append("# members no longer running: %s" % dead)
					c.dump_logs()
					if len(dead) == c.size:
						break
		finally:
			s.close()
	if args.verbose:
		print("compat: %s session took %.1f s" % (tag, time.monotonic() - t0),
		      file=sys.stderr)
	return s.t


def main():
	ap = argparse.ArgumentParser(description=__doc__)
	ap.add_argument("--keeld", required=True, help="candidate server binary")
	ap.add_argument("--reference", default="etcd", help="reference server (etcd 3.4)")
	ap.add_argument("--etcdctl", default="etcdctl")
	ap.add_argument("--out", help="write reference.txt and candidate.txt here")
	ap.add_argument("--budget", type=float, default=180,
			help="seconds a session may take before its remaining commands are skipped")
	ap.add_argument("--verbose", action="store_true")
	args = ap.parse_args()

	for prog in (args.reference, args.etcdctl):
		if not shutil.which(prog):
			print("compat: SKIP: %s not found" % prog)
			return 77
	if not (os.access(args.keeld, os.X_OK) or shutil.which(args.keeld)):
		print("compat: candidate %s is not an executable" % args.keeld)
		return 1
	t0 = time.monotonic()
	try:
		ref = run_session(args.reference, "reference", args)
		cand = run_session(args.keeld, "candidate", args)
	except ClusterError as e:
		print("compat: cluster failure: %s" % e)
		return 1
	if args.out:
		os.makedirs(args.out, exist_ok=True)
		for name, t in (("reference.txt", ref), ("candidate.txt", cand)):
			with open(os.path.join(args.out, name), "w") as f:
				f.write("\n".join(t.lines) + "\n")
	diff = list(difflib.unified_diff(ref.lines, cand.lines, "reference (%s)" % args.reference,
					 "candidate (%s)" % args.keeld, n=4, lineterm=""))
	for ln in diff:
		print(ln)
	ndiff = sum(1 for ln in diff if ln.startswith("@@"))
	if ref.commands != cand.commands:
		print("compat: command counts differ: %d vs %d" % (ref.commands, cand.commands))
	print("compat: %d commands, %d differences (%.0f s)" % (ref.commands, ndiff,
								  time.monotonic() - t0))
	return 1 if diff else 0


if __name__ == "__main__":
	sys.exit(main())
