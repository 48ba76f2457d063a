# tests/ctlcompat/ops.py — the matrix's operational session (member, endpoint, alarm, compaction,
# defrag, snapshot, move-leader, check perf) and the only masks it adds, all listed in MASKS.
# The same steps run in every column; never masks a revision, a key count, an error or a name.
"""Operational commands for tests/ctlcompat/matrix.py.

The session runs on a fresh 3-member cluster started with SERVER_FLAGS (a 1 MiB backend quota,
so one large put raises a NOSPACE alarm). Every step is pinned to endpoints by index; the
harness's own reads and waits use the real etcdctl and are not recorded, except as "# " lines
stating facts both servers must share (a removed member exited, a learner caught up).
"""
import json
import re
import time

import compat

SERVER_FLAGS = ["--quota-backend-bytes", str(1 << 20)]
# A put this large can never fit under the quota above, whatever the server's db size.
BIG_VALUE = 1200 * 1000
# etcd 3.4 refuses member add/remove until every voter has been connected for 5 s
# (--strict-reconfig-check, on by default): the harness waits this long after start.
RECONFIG_READY_S = 5.5

# Every mask the ops session adds to compat's (which stay in force: ports, member/cluster/lease
# IDs, raft term and index, db sizes, server version, durations). name -> (where, becomes, why).
MASKS = {
	"hash": ("endpoint hashkv and snapshot status, every format",
		 "H<n> (hashkv) / S<n> (snapshot file), numbered by first appearance in the "
		 "column: equal hashes keep one symbol, a changed hash gets a new one",
		 "the hash covers the server's storage encoding"),
	"snapshot size": ("snapshot status: totalSize / Size / TOTAL SIZE / 4th field",
			  "<dbsize>", "the snapshot file's page layout"),
	"alarm member": ("alarm list/disarm, endpoint status errors: memberID:<n>",
			 "the member's name", "member IDs differ between clusters"),
	"member id in text": ("member add/promote/update/remove (%16x), move-leader (%x): IDs",
			      "the member's name or CLUSTER (a wrong width or padding stays "
			      "visible)",
			      "member IDs differ between clusters; an added member's is random"),
	"initial cluster order": ("member add: ETCD_INITIAL_CLUSTER's entries", "sorted",
				  "etcd lists members in ID order"),
	"--cluster line order": ("defrag --cluster, endpoint hashkv --cluster (simple): "
				 "their lines", "sorted", "one line per member in ID order"),
	"cluster dir": ("any output (snapshot save/status print paths): the temp dir",
			"<CLUSTER_DIR>", "each column's cluster lives in its own temp dir"),
	"table continuation rows": ("-w table: a row whose first cell is empty (a wrapped cell)",
				    "joined to the row above", "wrapping follows masked widths"),
	"check perf figures": ("check perf: its progress bar (dropped); throughput, slowest "
			       "request, stddev and each line's PASS/FAIL verdict, the final "
			       "PASS/FAIL and rc 0/1",
			       "<n>, <verdict>; rc checked against the verdict instead",
			       "machine load"),
}


def masks_text():
	"""The list printed at the start of the matrix's output."""
	out = ["matrix: masked fields, every section (compat.py's and matrix.py's rules):",
	       "  ports -> EPn/PEERn; member IDs -> M:<name>; cluster ID -> CLUSTER; lease IDs -> "
	       "Ln (first appearance); leader -> <a member>; IS LEADER -> <bool> (count checked)",
	       "  %s -> <term>/<index>/<dbsize>/<version>" % ", ".join(
		       sorted(compat.MASKED_NUMBERS)),
	       "  took/TOOK/durations -> <duration>; lease TTL remaining within 3 s; etcdctl's "
	       "zap log lines dropped; the client's release in `version`; usage descriptions; "
	       "keelctl's own name in usage -> etcdctl",
	       "  orders etcd leaves undefined (member ID order, Go map walks) -> sorted",
	       "matrix: masked fields, ops section only (tests/ctlcompat/ops.py MASKS):"]
	for name, (where, becomes, why) in MASKS.items():
		out.append("  %s: %s -> %s (why: %s)" % (name, where, becomes, why))
	return out


# ---------------------------------------------------------------- masking

class OpsMasker(compat.Masker):
	"""compat's masker plus the ops masks: hash symbols, snapshot sizes, table rows wrapped
	over several lines."""

	def __init__(self, cluster, members_json):
		super().__init__(cluster, members_json)
		self.hashes = {}
		self.hex_hash = False

	def hash_sym(self, v, kind="H"):
		"""kind H: a KV hash (hashkv); S: a snapshot file's hash. Numbered apart, so a
		command that fails in one column does not renumber the other kind."""
		key = (kind, int(v))
		if key not in self.hashes:
			n = sum(1 for k in self.hashes if k[0] == kind) + 1
			self.hashes[key] = "%s%d" % (kind, n)
		return self.hashes[key]

	def add_member(self, m):
		self.ports[str(m.client_port)] = "EP%d" % (m.index + 1)
		self.ports[str(m.peer_port)] = "PEER%d" % (m.index + 1)

	def id_text(self, spaces, hexid, padded):
		"""A member or cluster ID in a sentence: etcdctl prints member commands' IDs as
		%16x (space-padded), move-leader's as %x."""
		v = int(hexid, 16)
		sym = self.members.get(v) or ("CLUSTER" if v == self.cluster_id else hexid)
		width = len(spaces) - 1 + len(hexid)
		if sym != hexid and padded and width != 16:
			sym += "<width %d, not 16>" % width
		elif sym != hexid and not padded and spaces != " ":
			sym += "<padded>"
		return " " + sym

	def json_value(self, obj):
		if isinstance(obj, dict):
			obj = dict(obj)
			snap = "totalKey" in obj or "totalSize" in obj
			if isinstance(obj.get("hash"), int):
				obj["hash"] = self.hash_sym(obj["hash"], "S" if snap else "H")
			if isinstance(obj.get("totalSize"), int):
				obj["totalSize"] = "<dbsize>"
		return super().json_value(obj)

	def fields(self, lines):
		out = []
		snap = any(ln.startswith('"Keys" : ') for ln in lines)
		for ln in lines:
			m = re.match(r'^"(Hash|Size)" : (\d+)$', ln)
			if m and m.group(1) == "Hash":
				ln = '"Hash" : %s' % self.hash_sym(m.group(2), "S" if snap else "H")
			elif m:
				ln = '"Size" : <dbsize>'
			out.append(ln)
		return super().fields(out)

	def table(self, lines):
		rows = [ln for ln in lines if ln.startswith("|")]
		merged = []
		for ln in rows:
			cells = [c.strip() for c in ln.strip("|").split("|")]
			if merged and not cells[0]:
				prev = merged[-1]
				merged[-1] = [" ".join(x for x in (a, b) if x)
					      for a, b in zip(prev, cells)]
				continue
			merged.append(cells)
		self.hex_hash = bool(merged) and "TOTAL KEYS" in merged[0]
		return super().table(["| " + " | ".join(r) + " |" for r in merged])

	def table_cell(self, name, c):
		if name == "HASH" and re.fullmatch(r"[0-9a-f]+", c):
			return self.hash_sym(int(c, 16), "S") if self.hex_hash else \
				self.hash_sym(int(c))
		if name == "TOTAL SIZE":
			return "<dbsize>"
		return super().table_cell(name, c)


CHECK_LINES = [
	(r"(PASS: Throughput is|FAIL: Throughput too low:) \d+ writes/s",
	 "throughput <n> writes/s"),
	(r"(PASS: Slowest request took|Slowest request took too long:) [\d.]+s",
	 "slowest request <n>s"),
	(r"(PASS: Stddev is|Stddev too high:) [\d.]+s", "stddev <n>s"),
	(r"(?<![:\w ])(PASS|FAIL)$", None),
]
# The progress bar (pb, format "Bom !") redraws itself with carriage returns, and a verdict
# line may follow its last redraw on the same line.
CHECK_BAR = re.compile(r"^\s*\d+ / \d+\b.*?\d+(\.\d+)?% *(\d+[hms][\dhms.]*)?")


def pre_mask(s, words, out, err):
	"""The command-specific masks of MASKS on raw output, before compat's rules."""
	m = s.m
	verb = " ".join(words[:2])
	out = re.sub(r"memberID:(\d+)", lambda x: "memberID:%s" % m.members.get(
		int(x.group(1)), x.group(1)), out)
	out = out.replace(s.c.dir, "<CLUSTER_DIR>")
	err = err.replace(s.c.dir, "<CLUSTER_DIR>")
	lines = out.split("\n")
	if words[:1] in (["member"], ["move-leader"]):
		lines = [re.sub(r"\b(Member|cluster|from|to)( +)([0-9a-f]+)\b",
				lambda x: x.group(1) + m.id_text(x.group(2), x.group(3),
								 words[0] == "member"), ln)
			 for ln in lines]
		lines = [re.sub(r'^(ETCD_INITIAL_CLUSTER=")([^"]*)"$', lambda x: x.group(1) +
				",".join(sorted(m.ports_sub(x.group(2)).split(","))) + '"', ln)
			 for ln in lines]
	elif verb == "endpoint hashkv":
		lines = [re.sub(r"^(\S+), (\d+)$", lambda x: "%s, %s" % (
			x.group(1), m.hash_sym(x.group(2))), ln) for ln in lines]
		if "--cluster" in words and all(re.match(r"^\S+, H\d+$", ln)
						for ln in lines if ln):
			lines = sorted(m.ports_sub(ln) for ln in lines if ln) + [""]
	elif verb == "snapshot status":
		def snap_line(x):
			return "%s, %s, %s, <dbsize>" % (m.hash_sym(int(x.group(1), 16), "S"),
							 x.group(2), x.group(3))
		lines = [re.sub(r"^([0-9a-f]+), (\d+), (\d+), .*$", snap_line, ln) for ln in lines]
	elif words[:1] == ["defrag"] and "--cluster" in words:
		body = sorted(m.ports_sub(ln) for ln in lines if ln)
		lines = body + [""]
	elif verb == "check perf":
		lines = check_perf_lines(lines)
	return "\n".join(lines), err


def check_perf_lines(lines):
	out = []
	for ln in lines:
		for seg in ln.split("\r"):
			rest = CHECK_BAR.sub("", seg)
			if not rest.strip() and rest != seg:
				continue	# a redraw of the bar alone
			for pat, text in CHECK_LINES:
				if re.search(pat, rest):
					rest = "<verdict>" + (": " + text if text else "")
					break
			out.append(rest)
	# Only the text after the bar's last redraw of a line counts: drop emptied lines.
	return [ln for ln in out if ln] + [""]


def check_perf_verdict(out, rc):
	"""The fact the masked figures leave: the exit code agrees with the final verdict."""
	m = re.search(r"(PASS|FAIL)\s*\Z", out)
	want = {"PASS": 0, "FAIL": 1}.get(m.group(1)) if m else None
	return "# check perf: final verdict line present and rc agrees: %s" % (
		want is not None and rc == want)


# ---------------------------------------------------------------- harness helpers

def live(s):
	return [m.index for m in s.c.members if m.running and m.index not in s.removed]


def learn_members(s, via=None, want=None, timeout=3):
	"""Names the cluster's members' IDs by their peer ports: an added member's ID is random,
	and unstarted members have no name yet. via: the member to ask (default: the first
	live one); want: a member index to wait for (another member may apply an add later)."""
	by_port = {m.peer_port: m for m in s.c.members}
	deadline = time.monotonic() + timeout
	while True:
		seen = set()
		for ep in ([via] if via is not None else live(s)):
			r = s.c.etcdctl("member", "list", "-w", "json", endpoints=ep, timeout=10)
			try:
				mem = json.loads(r.out).get("members") or [] if r.rc == 0 else None
			except ValueError:
				mem = None
			if mem is None:
				continue
			for x in mem:
				for u in x.get("peerURLs") or []:
					mm = re.search(r":(\d+)$", u)
					if mm and int(mm.group(1)) in by_port:
						mb = by_port[int(mm.group(1))]
						s.m.members[int(x["ID"])] = "M:" + mb.name
						hexid = "%x" % int(x["ID"])
						s.vars["id%d" % (mb.index + 1)] = hexid
						seen.add(mb.index)
			break
		if want is None or want in seen or time.monotonic() > deadline:
			return
		time.sleep(0.05)


def pin_leader(s, idx, timeout=10):
	"""Makes member idx the leader (real etcdctl move-leader), so sentences that name the
	leader read the same in every column. Returns an error text, or None."""
	deadline = time.monotonic() + timeout
	err = "no leader"
	while time.monotonic() < deadline:
		lead = s.c.leader(live(s))
		if lead == idx:
			return None
		if lead is not None:
			target = s.vars["id%d" % (idx + 1)]
			r = s.c.etcdctl("move-leader", target, endpoints=live(s), timeout=10)
			if r.rc != 0:
				return (r.err.strip().splitlines() or ["rc %d" % r.rc])[-1]
		time.sleep(0.2)
	return err


def wait_leader_in(s, members, timeout):
	"""Waits (quietly: no log dump) for a leader among members; its index, or None."""
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		lead = s.c.leader(live(s))
		if lead in members:
			return lead
		time.sleep(0.1)
	return None


def wait_exit(m, timeout):
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		if not m.running:
			return True
		time.sleep(0.05)
	return False


def start_joiner(s, i, timeout=15):
	"""Starts added member i with --initial-cluster-state existing and waits until it has
	applied everything the leader had when it came up. Returns an error text, or None."""
	c = s.c
	members = live(s) + [i]
	try:
		c.start_member(i, "existing", c.initial_cluster_of(members))
		c.wait_up([i], timeout=timeout)
	except Exception as e:  # a ClusterError or a failed spawn: recorded, not fatal
		return "did not come up: %s" % str(e).splitlines()[0][:200]
	lead = c.leader(live(s)[:3])
	st = c.status(lead) if lead is not None else None
	want = st["Status"]["raftIndex"] if st else 0
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		mine = c.status(i)
		if mine and mine["Status"].get("raftAppliedIndex", mine["Status"].get(
				"raftIndex", 0)) >= want:
			# The leader learns the match index on the next heartbeat.
			time.sleep(3 * c.heartbeat_ms / 1000.0)
			return None
		time.sleep(0.05)
	return "did not catch up with the leader's index within %d s" % timeout


# ---------------------------------------------------------------- the session

def script_endpoints(s):
	run = s.run
	for m in s.c.members:
		s.vars["url%d" % (m.index + 1)] = m.peer_url
	learn_members(s)
	for k, v in (("e/1", "a"), ("e/2", "b"), ("e/1", "c")):
		run(0, "put", k, v)
	s.sync_all()
	run(0, "endpoint", "status", "--cluster", "-w", "table")
	run(1, "endpoint", "status", "--cluster", "-w", "json")
	run(0, "endpoint", "health", "--cluster", "-w", "table")
	run(1, "endpoint", "health", "--cluster", "-w", "json")
	s.sync_all()
	run(0, "endpoint", "hashkv", "--cluster")
	run(1, "endpoint", "hashkv", "--cluster", "-w", "table")
	run(2, "endpoint", "hashkv", "--cluster", "-w", "json")
	run(0, "endpoint", "hashkv", "-w", "fields")
	run(1, "endpoint", "hashkv", "--rev", "2")
	run(2, "endpoint", "hashkv", "--rev", "2", "-w", "json")
	run(0, "endpoint", "hashkv", "--rev", "999")


def script_snapshot(s):
	run = s.run
	s.vars["snap"] = s.c.dir + "/snap.db"
	run(0, "snapshot", "save", "{snap}")
	for w in ("simple", "table", "json", "fields"):
		run(0, "snapshot", "status", "{snap}", "-w", w)
	run([0, 1], "snapshot", "save", "{snap}.two")
	run(0, "snapshot", "status", "{snap}.missing")


def script_compaction(s):
	run = s.run
	for k, v in (("c/1", "a"), ("c/1", "b"), ("c/2", "c")):
		run(0, "put", k, v)
	rev = s.revision()
	s.vars["crev"] = str(rev - 1)
	run(0, "compaction", "--physical", "{crev}")
	run(1, "compaction", "--physical", "{crev}")
	s.sync_all()
	run(2, "endpoint", "hashkv", "--cluster")
	run(0, "defrag")
	run([0, 1, 2], "defrag")
	run(1, "defrag", "--cluster")
	s.sync_all()
	# Defragmenting must not change what the hash covers.
	run(2, "endpoint", "hashkv", "--cluster", "-w", "table")


def script_alarm(s):
	run = s.run
	run(0, "alarm", "list")
	run(1, "put", "big", stdin="x" * BIG_VALUE, stdin_desc="%.1f MB of x" % (BIG_VALUE / 1e6))
	s.sync_all()
	run(0, "alarm", "list")
	run(2, "alarm", "list", "-w", "json")
	run(0, "alarm", "list", "-w", "table")
	run(0, "put", "small", "1")
	run(2, "txn", stdin='\n\nput t 1\n\n\n', stdin_desc="txn: a put")
	run(1, "lease", "grant", "60")
	run(0, "del", "e/2")
	run(0, "get", "e/", "--prefix")
	s.sync_all()
	run(1, "endpoint", "status", "--cluster", "-w", "table")
	run(2, "endpoint", "status", "-w", "json")
	rev = s.revision()
	s.vars["arev"] = str(rev)
	run(0, "compaction", "--physical", "{arev}")
	run(1, "defrag", "--cluster")
	run(0, "alarm", "disarm")
	s.sync_all()
	run(2, "alarm", "disarm")
	run(1, "alarm", "list", "-w", "json")
	run(0, "put", "small", "1")
	s.sync_all()
	run(2, "endpoint", "status", "-w", "json")


def script_move_leader(s):
	run = s.run
	err = pin_leader(s, 0)
	if err:
		s.t.lines.append("# harness could not make m1 the leader: %s" % err)
	all3 = [0, 1, 2]
	r = run(all3, "move-leader", "{id2}")
	if r.rc == 0 and wait_leader_in(s, [1], 5) is None:
		s.t.lines.append("# harness: m2 did not become the leader")
	run(all3, "move-leader", "{id2}")
	run(2, "move-leader", "{id1}")
	run(all3, "move-leader", "1234")
	run(all3, "move-leader", "zz")
	run(all3, "move-leader")
	r = run(all3, "move-leader", "{id1}")
	if r.rc == 0 and wait_leader_in(s, [0], 5) is None:
		s.t.lines.append("# harness: m1 did not become the leader")
	run(all3, "move-leader", "{id1}", "-w", "json")
	s.sync_all()
	run(0, "endpoint", "status", "--cluster", "-w", "table")


def add_slot(s):
	i = s.c.add_member()
	m = s.c.members[i]
	s.m.add_member(m)
	s.vars["url%d" % (i + 1)] = m.peer_url
	# Until a member list names it (the add may fail): an ID no member has.
	s.vars["id%d" % (i + 1)] = "0"
	return i


def run_at(s, i, *args, **kw):
	"""run() through member i alone; recorded as skipped when i is not running (a failed
	member add), instead of waiting for etcdctl's timeouts."""
	if s.c.members[i].running:
		return s.run(i, *args, **kw)
	s.record(s.label(args, i), "skipped", "", "", "m%d is not running" % (i + 1))
	return None


def remove_member(s, via, i):
	"""Recorded member remove of member i; a removed member must stop by itself."""
	r = s.run(via, "member", "remove", "{id%d}" % (i + 1))
	if r.rc != 0:
		return
	s.removed.add(i)
	m = s.c.members[i]
	if m.proc is not None:
		s.t.lines.append("# m%d exited by itself after its removal: %s" % (
			i + 1, wait_exit(m, 10)))
		s.c.stop(i)


def script_members(s):
	run = s.run
	# etcd's strict reconfiguration check: every voter connected for 5 s.
	time.sleep(max(0.0, s.started + RECONFIG_READY_S - time.monotonic()))
	i4 = add_slot(s)
	added = run(0, "member", "add", "m4", "--learner", "--peer-urls={url4}",
		    after=lambda r: r.rc == 0 and learn_members(s, 0, i4)).rc == 0
	run(0, "member", "add", "again", "--peer-urls={url2}")
	run(0, "member", "add", "nourl")
	# A voter that never starts: once it is in, etcd refuses further adds (not every voter
	# is connected) until it is removed again.
	i5 = add_slot(s)
	run(1, "member", "add", "m5", "--peer-urls={url5}",
	    after=lambda r: r.rc == 0 and learn_members(s, 1, i5))
	run(2, "member", "list")
	run(0, "member", "list", "-w", "table")
	run(1, "member", "list", "-w", "json")
	# m5 never started: removing it is safe (it is no part of any quorum).
	remove_member(s, 0, i5)
	run(0, "member", "remove", "{id5}")
	run(0, "member", "promote", "{id4}")	# not started yet: not in sync with the leader
	if added:
		err = start_joiner(s, i4)
		s.t.lines.append("# m4 (learner) joined and caught up: %s" % (err or "yes"))
	run(0, "member", "list", "-w", "table")
	run_at(s, i4, "put", "on-learner", "1")
	run_at(s, i4, "get", "e/1", "--consistency=s")
	s.sync_all()
	run(0, "endpoint", "status", "--cluster", "-w", "table")
	run(1, "member", "promote", "{id4}")
	run(1, "member", "promote", "{id4}")
	run(2, "member", "promote", "{id2}")
	run(0, "member", "list")
	run(0, "member", "update", "{id4}", "--peer-urls={url4}")
	run(0, "member", "update", "{id4}", "--peer-urls={url2}")
	run(0, "member", "update", "1234", "--peer-urls=http://127.0.0.1:1")
	run(0, "member", "update", "{id4}")
	run(2, "member", "list", "-w", "json")
	s.sync_all()
	run_at(s, i4, "endpoint", "health", "--cluster", "-w", "table")
	# A running follower, then the leader (through a follower).
	if s.c.leader(live(s)) != 0:
		err = pin_leader(s, 0)
		s.t.lines.append("# harness: leadership had moved; back on m1: %s" % (err or "yes"))
	remove_member(s, 1, i4)
	run(0, "member", "list")
	remove_member(s, 1, 0)
	if 0 in s.removed:
		s.t.lines.append("# a new leader among m2, m3: %s" % (
			wait_leader_in(s, [1, 2], 15) is not None))
	run(1, "member", "list", "-w", "table")
	run(2, "put", "after-removal", "1")
	s.sync_all()
	run(1, "endpoint", "status", "--cluster", "-w", "table")
	run(2, "endpoint", "health", "--cluster")
	run(1, "member", "remove", "{id1}")


def script_check(s):
	run = s.run
	run(1, "put", "cp/x", "1")
	run(1, "check", "perf", "--prefix", "cp/")
	run(1, "check", "perf", "--load", "bogus")


def script_perf(s):
	"""etcdctl 3.4's check perf always runs 60 s: the long suite only."""
	r = s.run([0, 1, 2], "check", "perf", "--load", "s", timeout=150,
		  rc_mask=lambda rc: "<0 or 1>" if rc in (0, 1) else rc)
	s.t.lines.append(check_perf_verdict(r.out, r.rc))
	# check perf removes what it wrote.
	s.run(0, "get", "--prefix", "/etcdctl-check-perf/", "--keys-only", "--limit", "1")


OPS = [script_endpoints, script_snapshot, script_compaction, script_alarm, script_move_leader,
       script_members, script_check]
PERF = [script_perf]
