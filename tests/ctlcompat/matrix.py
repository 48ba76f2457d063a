#!/usr/bin/env python3
# tests/ctlcompat/matrix.py — keelctl's compatibility matrix: compat.py's session, global flags
# and the operational commands (ops.py), run by etcdctl and keelctl against etcd 3.4 and keeld;
# every cell must equal etcdctl->etcd. Never edits compat's rules; its masks are printed first.
"""keelctl / etcdctl x etcd / keeld compatibility matrix.

usage: tests/ctlcompat/matrix.py --keeld BUILD/server/keeld --keelctl BUILD/cli/keelctl
       [--out DIR] [--summary] [--budget S] [--tools etcdctl,keelctl] [--servers etcd,keeld]
       [--columns etcdctl->keeld,keelctl->keeld]
       [--sessions main,flags,ops] [--long]
self-check: --keeld "$(command -v etcd)" --keelctl "$(command -v etcdctl)" must report 0.

Every column runs the same sessions, each on a fresh 3-member cluster of its server: "main"
(compat.py's script), "flags" (the global flags and a few byte-level, interactive-txn and
version commands), "ops" (member add/promote/update/remove with a started learner, endpoint
status/health/hashkv, NOSPACE alarm under a small quota, compaction --physical, defrag,
snapshot save/status, move-leader, check perf's refusals; tests/ctlcompat/ops.py) and, with
--long or --sessions perf, "perf" (one 60 s check perf). The scripts compact and name absolute
revisions, so a second run on a used cluster could never match, and a failure in one session
cannot shift another's revisions. The harness's own reads (revisions, syncs, waits) always use
the real etcdctl; only the recorded commands run the tool under test. In keelctl's output its
own name reads as "etcdctl" (usage and unknown-command texts name the program), `version`'s
release number is masked, and so are the descriptions in usage blocks (keelctl's are its own
words; the rest of a block must match). The masked fields are printed before the table.
Cells: "ref" (the reference column), "same", or "DIFF k/n" (k of the row's n commands differ).
Exit: 0 every cell equal, 1 a difference or a cluster failure, 77 etcd/etcdctl missing.
"""
import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "compat"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import compat  # noqa: E402
import cluster as cluster_mod  # noqa: E402
import ops  # noqa: E402
from cluster import Cluster, ClusterError, Result  # noqa: E402

REFERENCE = ("etcdctl", "etcd")
COLUMNS = [("etcdctl", "etcd"), ("etcdctl", "keeld"), ("keelctl", "etcd"), ("keelctl", "keeld")]
LOG_TS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ ")


# ---------------------------------------------------------------- protobuf output

def pb_varint(buf, i):
	v = shift = 0
	while True:
		if i >= len(buf):
			raise ValueError("truncated varint")
		b = buf[i]
		i += 1
		v |= (b & 0x7f) << shift
		shift += 7
		if not b & 0x80:
			return v, i
		if shift > 63:
			raise ValueError("varint too long")


def pb_decode(buf):
	"""Wire-format fields of one message: [(field, wiretype, value)]; raises ValueError."""
	out = []
	i = 0
	while i < len(buf):
		key, i = pb_varint(buf, i)
		field, wt = key >> 3, key & 7
		if field == 0:
			raise ValueError("field 0")
		if wt == 0:
			v, i = pb_varint(buf, i)
		elif wt == 2:
			n, i = pb_varint(buf, i)
			if i + n > len(buf):
				raise ValueError("truncated bytes")
			v = buf[i:i + n]
			i += n
		elif wt == 1 or wt == 5:
			n = 8 if wt == 1 else 4
			if i + n > len(buf):
				raise ValueError("truncated fixed")
			v = int.from_bytes(buf[i:i + n], "little")
			i += n
		else:
			raise ValueError("wire type %d" % wt)
		out.append((field, wt, v))
	return out


def pb_printable(b):
	try:
		s = b.decode()
	except UnicodeDecodeError:
		return None
	return s if all(c.isprintable() for c in s) else None


class PbRender:
	"""Renders -w protobuf output as indented text, masking what differs between clusters:
	a header (a message whose field 1 is the cluster ID) has its member ID and raft term
	masked; any other varint that is a member ID or a large (lease-sized) number becomes
	its symbol. Repeated messages holding a member are sorted (members sort by ID)."""

	def __init__(self, masker):
		self.m = masker

	def render(self, data):
		try:
			return self.message(pb_decode(data), 0)
		except ValueError as e:
			return ["<not protobuf: %s: %s>" % (e, data[:64].hex())]

	def message(self, fields, depth):
		header = any(f == 1 and wt == 0 and v == self.m.cluster_id for f, wt, v in fields)
		lines = []
		groups = {}
		for f, wt, v in fields:
			ind = "  " * depth
			if wt == 2:
				text = pb_printable(v)
				sub = None
				if text is None:
					try:
						sub = pb_decode(v)
					except ValueError:
						sub = None
				if sub is not None:
					body = self.message(sub, depth + 1)
					groups.setdefault(f, []).append(len(lines))
					lines.append([ind + "%d {" % f] + body + [ind + "}"])
					continue
				shown = '"%s"' % text if text is not None else "0x" + v.hex()
				lines.append([ind + "%d: %s" % (f, shown)])
				continue
			lines.append([ind + "%d: %s" % (f, self.scalar(header, f, v))])
		# Member entries come in ID order, which differs between two clusters.
		for f, idx in groups.items():
			blocks = [lines[i] for i in idx]
			if len(blocks) > 1 and all(any("M:" in ln for ln in b) for b in blocks):
				for i, b in zip(idx, sorted(blocks)):
					lines[i] = b
		return [ln for b in lines for ln in b]

	def scalar(self, header, f, v):
		if header:
			if f == 1:
				return "CLUSTER"
			if f == 2:
				return self.m.members.get(v, v)
			if f == 4:
				return "<term>"
			return v
		if v in self.m.members:
			return self.m.members[v]
		if v == self.m.cluster_id:
			return "CLUSTER"
		if v >= 1 << 32:
			return self.m.lease(v)
		return v


# ---------------------------------------------------------------- session with any tool

class ToolSession(compat.Session):
	"""compat's session with the recorded commands run by `tool` (etcdctl or keelctl).
	env_style says how the tool spells its own environment prefix: "ETCDCTL" or "KEELCTL"."""

	def __init__(self, c, tag, budget, tool, env_style):
		super().__init__(c, tag, budget)
		self.tool = tool
		self.env_style = env_style
		self.rename = os.path.basename(tool) != "etcdctl"
		self.words = []		# the recorded command, for ops' command-specific masks
		self.removed = set()	# members removed by `member remove` (ops session)
		self.started = time.monotonic()

	def setup(self):
		r = self.c.etcdctl("member", "list", "-w", "json", endpoints=0, check=True)
		self.m = ops.OpsMasker(self.c, json.loads(r.out))

	def label(self, args, ep, stdin_desc=None):
		"""compat's label; ep may also be a list of member indexes (several endpoints)."""
		if isinstance(ep, (list, tuple)):
			text = super().label(args, 0, stdin_desc)
			eps = ",".join("EP%d" % (i + 1) for i in ep)
			return text.replace("  @EP1", "  @" + eps, 1)
		return super().label(args, ep, stdin_desc)

	def sync_all(self):
		for i in range(self.c.size):
			if self.c.members[i].running and i not in self.removed:
				self.sync(i)

	def call(self, real, ep, stdin=None, timeout=20, env=None, binary=False, bg=False):
		"""Runs the tool under test; ep None: no --endpoints flag (the environment's)."""
		argv = [self.tool] + ([] if ep is None else [self.c._endpoint_arg(ep)]) + real
		# A developer's own KEELCTL_* settings must not reach a column's commands.
		full_env = {k: v for k, v in self.c._env(env).items()
			    if not k.startswith("KEELCTL_") or k in (env or {})}
		if bg:
			p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
					     stderr=subprocess.PIPE, env=full_env, close_fds=True,
					     text=True)
			cluster_mod._track(p)
			self.c._bg.append(p)
			return p
		p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None
				     else subprocess.DEVNULL, stdout=subprocess.PIPE,
				     stderr=subprocess.PIPE, env=full_env, close_fds=True)
		cluster_mod._track(p)
		data = stdin.encode() if isinstance(stdin, str) else stdin
		try:
			out, err = p.communicate(data, timeout=timeout)
			rc = p.returncode
		except subprocess.TimeoutExpired:
			p.kill()
			out, err = p.communicate()
			rc = -9
			err += b"[harness timeout %ds: killed]" % timeout
		finally:
			cluster_mod._untrack(p)
		if not binary:
			out = out.decode(errors="replace")
		return Result(rc, out, err.decode(errors="replace"), argv[1:])

	def env_for(self, env, keel_env):
		"""The environment of one command: keel_env (KEELCTL_* spellings) replaces env for a
		keelctl column; etcdctl, which knows no KEELCTL_*, gets env, its own equivalent."""
		if keel_env is not None and self.env_style == "KEELCTL":
			return keel_env
		return env

	def env_label(self, env, keel_env):
		env = keel_env if keel_env is not None else env
		if not env:
			return ""
		return " ".join("%s=%s" % (k, self.m.ports_sub(v)) for k, v in sorted(env.items()))

	def run(self, ep, *args, stdin=None, stdin_desc=None, sync=False, timeout=20, env=None,
		keel_env=None, protobuf=False, after=None, rc_mask=None):
		"""One recorded command. ep: a member index, a list of them, or None (the
		environment's endpoints). after(result) runs before the output is masked (to learn
		new IDs); rc_mask(rc) replaces the recorded exit code (ops.MASKS says where)."""
		real = self.expand(args)
		label = self.label(args, 0 if ep is None else ep,
				   stdin_desc or (stdin and "<%d bytes>" % len(stdin)))
		if ep is None:
			label = label.rsplit("  @EP", 1)[0] + "  @env"
		if env or keel_env:
			label = self.env_label(env, keel_env) + " " + label
		if time.monotonic() > self.deadline:
			self.record(label, "skipped", "", "", "session time budget spent")
			return Result(-1, "", "", real)
		sync_ep = 0 if ep is None else ep[0] if isinstance(ep, (list, tuple)) else ep
		if sync or real[0] in ("lease", "endpoint", "member"):
			if sync_ep != self.last_ep:
				self.sync(sync_ep)
		r = self.call(real, ep, stdin, timeout, self.env_for(env, keel_env),
			      binary=protobuf)
		self.last_ep = sync_ep
		if after:
			after(r)
		out = r.out
		if protobuf:
			out = "\n".join(PbRender(self.m).render(r.out)) if r.out else ""
		self.words = [w for w in real if not w.startswith("-")]
		self.words += [w for w in real if w.startswith("-")]
		self.record(label, rc_mask(r.rc) if rc_mask else r.rc, out, r.err)
		self.words = []
		return r

	def start_bg(self, ep, *args):
		real = self.expand(args)
		p = self.call(real, ep, bg=True)
		bg = compat.Background(p, self.label(args, ep), self.deadline)
		self.bg.append(bg)
		return bg

	def normalize(self, out, err):
		# Go's standard logger (pkg/flags warnings) stamps each line with the local time.
		# clientv3's zap JSON lines ("retrying of unary invoker failed") are dropped in
		# every column: keelctl does not imitate them (the lead's decision); tests/compat
		# still compares them for etcdctl against keeld.
		err = "\n".join(LOG_TS.sub("<ts> ", ln) for ln in err.splitlines()
				if not ln.startswith('{"level":'))
		if self.rename:
			# Usage and "unknown command" texts name the program itself.
			out, err = (re.sub(r"(?<![/\w])keelctl(?![\w.])", "etcdctl", x)
				    for x in (out, err))
		out, err = mask_usage(out), mask_usage(err)
		if self.words:
			out, err = ops.pre_mask(self, self.words, out, err)
		return [self.fields_line(ln) for ln in super().normalize(self.pre_mask(out), err)]

	def pre_mask(self, out):
		"""What compat's rules leave alone because its script never prints it: a health
		check's duration in tables and fields, member list -w fields' member order, and
		the client's release in `version`."""
		lines = []
		for ln in out.splitlines():
			if ln.startswith("|"):
				ln = re.sub(r"\|\s*\d+(\.\d+)?(ns|\u00b5s|us|ms|s)\s*(?=\|)",
					    "| <duration> ", ln)
			ln = re.sub(r'^"Took" : \S+$', '"Took" : <duration>', ln)
			# The client's own release, as compat masks the server's version string.
			ln = re.sub(r"^etcdctl version: \S+$", "etcdctl version: <version>", ln)
			lines.append(ln)
		starts = [i for i, ln in enumerate(lines) if ln.startswith('"ID" : ')]
		if len(starts) > 1 and any(ln.startswith('"PeerURL" : ') for ln in lines):
			head = lines[:starts[0]]
			members = [lines[a:b] for a, b in zip(starts, starts[1:] + [len(lines)])]
			# Unstarted members have no name yet: their peer URL orders them.
			keys = ('"Name" : ', '"PeerURL" : ')
			members.sort(key=lambda b: [self.m.ports_sub(ln) for ln in b
						    if ln.startswith(keys)])
			lines = head + [ln for b in members for ln in b]
		return "\n".join(lines)

	def fields_line(self, ln):
		"""endpoint status -w fields: the same masks compat applies to its JSON form."""
		m = re.match(r'^\| "(\w+)" : (.*)$', ln)
		if not m:
			return ln
		k, v = m.groups()
		if k == "Version" and v.startswith('"'):
			return '| "Version" : <version>'
		if k in ("DBSize", "DBSizeInUse"):
			return '| "%s" : <dbsize>' % k
		if k in ("RaftIndex", "RaftAppliedIndex"):
			return '| "%s" : <index>' % k
		if k == "Leader" and v.isdigit():
			return '| "Leader" : %s' % self.m.ident("leader", int(v))
		return ln


def mask_usage(text):
	"""A usage block (from a "NAME:" line to the end) with its descriptions masked, in every
	column: keelctl describes commands and flags in its own words. The NAME line's text after
	" - ", each command's and flag's text after its last tab run and the DESCRIPTION section
	go; headings, usage line, names, flags and defaults must still match (tests/keelctl's
	test_keelctl.py masks the same way)."""
	m = re.search(r"(?:^|\n)NAME:\n", text)
	if not m:
		return text
	start = m.start() + (1 if text[m.start():m.start() + 1] == "\n" else 0)
	out, section = [], None
	for line in text[start:].split("\n"):
		if re.match(r"^[A-Z][A-Z ]*:$", line):
			section = line
			if section != "DESCRIPTION:":
				out.append(line)
			continue
		if section == "DESCRIPTION:":
			continue
		if section == "NAME:":
			line = re.sub(r" - .*", " - <description>", line)
		elif section in ("COMMANDS:", "OPTIONS:", "GLOBAL OPTIONS:") and line:
			line = re.sub(r"(\t+)[^\t]*$", r"\1<description>", line)
		out.append(line)
	return text[:start] + "\n".join(out)


# ---------------------------------------------------------------- global flags script

def script_flags(s):
	run = s.run
	run(0, "put", "x/hex", "hello w\u00f6rld")
	run(0, "put", "x/two", "2")
	first = s.revision()
	s.vars["xfirst"] = str(first - 1)
	# --hex
	run(0, "get", "x/hex", "--hex")
	run(1, "get", "x/", "--prefix", "--hex", "--keys-only")
	run(2, "get", "x/hex", "--hex", "-w", "json")
	run(0, "get", "x/hex", "--hex", "-w", "fields")
	run(0, "put", "x/h2", "v", "--hex")
	run(0, "del", "x/h2", "--prev-kv", "--hex")
	s.grant("hexlease", 0, "100", "--hex")
	run(0, "lease", "timetolive", "{hexlease}", "--hex", "-w", "fields")
	s.watch_history(1, ["x/", "--prefix", "--rev", "{xfirst}", "--hex"], 4,
			compat.simple_events)
	# -w protobuf
	run(0, "get", "x/", "--prefix", "-w", "protobuf", protobuf=True)
	run(1, "put", "x/p", "pv", "--prev-kv", "-w", "protobuf", protobuf=True)
	run(0, "put", "x/p", "pv2", "--prev-kv", "-w", "protobuf", protobuf=True)
	run(0, "del", "x/p", "--prev-kv", "-w", "protobuf", protobuf=True)
	run(0, "txn", "-w", "protobuf", stdin=compat.TXN_OK, stdin_desc="txn: success branch",
	    protobuf=True)
	run(0, "lease", "grant", "60", "-w", "protobuf", protobuf=True)
	run(0, "lease", "timetolive", "{hexlease}", "-w", "protobuf", protobuf=True)
	run(0, "lease", "keep-alive", "--once", "{hexlease}", "-w", "protobuf", protobuf=True)
	run(0, "member", "list", "-w", "protobuf", protobuf=True)
	run(0, "endpoint", "status", "-w", "protobuf", protobuf=True)
	run(0, "compaction", "1", "-w", "protobuf", protobuf=True)
	# -w table / fields / json beyond the main script, and an unknown format
	run(0, "get", "x/hex", "-w", "table")
	run(0, "put", "x/t", "v", "-w", "table")
	run(0, "lease", "grant", "60", "-w", "table")
	run(0, "lease", "timetolive", "{hexlease}", "-w", "table")
	run(0, "endpoint", "health", "-w", "table")
	run(1, "endpoint", "health", "-w", "json")
	run(0, "endpoint", "health", "-w", "fields")
	run(0, "member", "list", "-w", "fields")
	s.sync_all()
	run(2, "endpoint", "status", "-w", "fields")
	run(0, "lease", "keep-alive", "--once", "{hexlease}", "-w", "fields")
	run(0, "lease", "revoke", "{hexlease}", "-w", "json")
	run(0, "del", "x/t", "-w", "fields")
	run(0, "get", "x/hex", "-w", "yaml")
	run(0, "get", "x/hex", "--write-out=json")
	# global flags
	run(0, "get", "x/hex", "--command-timeout=5s", "--dial-timeout=3s",
	    "--keepalive-time=10s", "--keepalive-timeout=4s")
	run(0, "get", "x/hex", "--command-timeout=bogus")
	run(0, "get", "--hex=false", "x/hex", "-w", "json")
	run(0, "get", "x/hex", "--no-such-flag")
	run(0, "no-such-command")
	# ETCDCTL_* environment: etcdctl's own names, understood by both tools
	run(0, "get", "x/hex", env={"ETCDCTL_WRITE_OUT": "json"})
	run(0, "get", "x/hex", env={"ETCDCTL_HEX": "true"})
	run(None, "get", "x/hex", "-w", "json", env={"ETCDCTL_ENDPOINTS": s.c.endpoints[1]})
	run(0, "get", "x/hex", env={"ETCDCTL_COMMAND_TIMEOUT": "5s",
				     "ETCDCTL_DIAL_TIMEOUT": "3s"})
	run(0, "get", "x/hex", "-w", "fields", env={"ETCDCTL_WRITE_OUT": "json"})
	run(0, "get", "x/hex", env={"ETCDCTL_BOGUS": "1"})
	run(0, "get", "x/hex", env={"ETCDCTL_WRITE_OUT": "nope"})
	# KEELCTL_*: keelctl's own names; the etcdctl columns run the ETCDCTL_* equivalent
	run(0, "get", "x/hex", env={"ETCDCTL_WRITE_OUT": "json"},
	    keel_env={"KEELCTL_WRITE_OUT": "json"})
	run(0, "get", "x/hex", env={"ETCDCTL_HEX": "true"}, keel_env={"KEELCTL_HEX": "true"})
	run(None, "get", "x/hex", "-w", "json", env={"ETCDCTL_ENDPOINTS": s.c.endpoints[2]},
	    keel_env={"KEELCTL_ENDPOINTS": s.c.endpoints[2]})
	# Both set: the KEELCTL_* spelling wins (cli/ctl.h's order of sources).
	run(None, "get", "x/hex", "-w", "json", env={"ETCDCTL_ENDPOINTS": s.c.endpoints[1]},
	    keel_env={"KEELCTL_ENDPOINTS": s.c.endpoints[1],
		      "ETCDCTL_ENDPOINTS": s.c.endpoints[2]})
	run(0, "get", "x/hex", env={"ETCDCTL_WRITE_OUT": "fields"},
	    keel_env={"KEELCTL_WRITE_OUT": "fields", "ETCDCTL_WRITE_OUT": "json"})
	# unreachable endpoint
	run(0, "get", "x/hex", "--endpoints=127.0.0.1:1", "--dial-timeout=1s",
	    "--command-timeout=2s")


def script_misc(s):
	"""Byte values that are not UTF-8 (Go's %q and base64 in every format), interactive txn,
	a value that looks like a flag, version."""
	run = s.run
	run(0, "put", "m/bin", stdin=b"\x00\xff\x80abc\"\t\n",
	    stdin_desc="bytes 00 ff 80 abc\"\\t\\n")
	run(1, "get", "m/bin")
	run(0, "get", "m/bin", "--hex")
	run(0, "get", "m/bin", "-w", "fields")
	run(2, "get", "m/bin", "-w", "json")
	run(0, "get", "m/bin", "--print-value-only")
	run(0, "get", "m/bin", "-w", "protobuf", protobuf=True)
	run(0, "put", "m/dash", "--", "-v")
	run(0, "get", "m/dash", "--print-value-only", "--hex")
	run(0, "del", "m/", "--prefix", "--prev-kv", "-w", "fields")
	run(0, "txn", "-i", stdin='mod("m/none") = "0"\n\nput m/x 1\nget m/x\n\nput m/y 2\n\n',
	    stdin_desc="txn -i: success branch")
	run(1, "txn", "--interactive", "-w", "json", stdin='value("m/x") = "2"\n\n\nget m/x\n\n',
	    stdin_desc="txn -i: failure branch")
	s.grant("mlease", 0, "100")
	run(0, "put", "m/l", "v", "--lease", "{mlease}")
	run(0, "lease", "timetolive", "{mlease}", "--keys", "--hex")
	run(0, "lease", "timetolive", "{mlease}", "--keys", "-w", "fields")
	# m/bin, m/dash, their two deletes, m/x (txn), m/l
	s.watch_history(1, ["m/", "--prefix", "--rev", "2", "-w", "fields"], 6, fields_events)
	run(0, "version")


def fields_events(text):
	return sum(1 for ln in text.splitlines() if ln.startswith('"Type" : '))


# The flags part runs on a cluster of its own: it needs none of the main script's state, and
# so a command failing there (shifting every later revision) cannot make it differ. So does the
# ops part, whose cluster has a small backend quota and changes its membership.
# name -> (parts, extra server flags); --sessions picks some, --long adds "perf".
SESSIONS = {
	"main": (compat.SCRIPT, []),
	"flags": ([script_flags, script_misc], []),
	"ops": (ops.OPS, ops.SERVER_FLAGS),
	"perf": (ops.PERF, []),
}
DEFAULT_SESSIONS = ["main", "flags", "ops"]


# ---------------------------------------------------------------- running the columns

def run_column(tool_path, env_style, server, args, tag):
	"""Runs every session of SESSIONS on a fresh cluster of server; one joined Transcript."""
	t0 = time.monotonic()
	whole = compat.Transcript()
	deadline = time.monotonic() + args.budget
	for name in args.sessions:
		script, flags = SESSIONS[name]
		t = run_session(tool_path, env_style, server, args, tag, script, flags,
				max(1.0, deadline - time.monotonic()))
		whole.lines.extend(t.lines)
		whole.commands += t.commands
	return whole, time.monotonic() - t0


def run_session(tool_path, env_style, server, args, tag, script, flags, budget):
	c = Cluster(server, size=3, heartbeat_ms=compat.HEARTBEAT_MS,
		    election_ms=compat.ELECTION_MS, etcdctl=args.etcdctl, name_prefix="m",
		    extra_args=flags)
	s = None
	try:
		c.start(timeout=30)
		s = ToolSession(c, tag, budget, tool_path, env_style)
		s.setup()
		for part in script:
			s.t.lines.append("")
			s.t.lines.append("### " + part.__name__)
			if time.monotonic() > s.deadline:
				s.t.lines.append("# skipped: session time budget spent")
				continue
			part(s)
			# Members added but not started yet, or removed, are not lost.
			dead = [m.name for m in c.members if not m.running and m.proc is not None
				and m.index not in s.removed]
			if dead:
				s.t.lines.append("# members no longer running: %s" % dead)
				c.dump_logs()
				if not any(m.running for m in c.members):
					break
	except BaseException:
		if s:
			s.close()
		c.close(failed=True)
		raise
	s.close()
	# A sanitizer build of keeld reports at exit: its reports become a cell of the table
	# (a row of their own) instead of ending the whole matrix.
	s.t.lines.append("$ (server logs at shutdown)")
	try:
		c.close()
		s.t.lines.append("| no sanitizer reports")
	except ClusterError as e:
		s.t.lines.append("| %s" % e)
	return s.t


def blocks_of(lines):
	"""Splits a transcript into commands: [(part, label, [lines])], in order."""
	out = []
	part = ""
	for ln in lines:
		if ln.startswith("### "):
			part = ln[4:].replace("script_", "")
			continue
		if ln.startswith("$ "):
			out.append((part, ln[2:], [ln]))
		elif out:
			out[-1][2].append(ln)
		elif ln:
			out.append((part, "(before the first command)", [ln]))
	for b in out:
		while b[2] and b[2][-1] == "":
			b[2].pop()
	return out


def group_of(part, label):
	"""The table row of one command: its part and verb (and sub-command); in the flags part,
	the global flag or environment it exercises."""
	words = label.split()
	if label.startswith("(server logs"):
		return part + ": server shutdown"
	if part == "flags":
		env = [w.split("=")[0] for w in words if re.match(r"^[A-Z_]+=", w)]
		if any(e.startswith("KEELCTL_") for e in env):
			return "flags: env KEELCTL_*"
		if env:
			return "flags: env ETCDCTL_*"
		if "--hex" in words:
			return "flags: --hex"
		for i, w in enumerate(words):
			if w == "-w" and i + 1 < len(words):
				return "flags: -w " + words[i + 1]
			if w.startswith("--write-out="):
				return "flags: -w " + w.split("=", 1)[1]
		if words[1:2] in (["put"], ["del"]) and "-w" not in words:
			return "flags: (setup writes)"
		return "flags: global flags"
	if words[0] == "cat":
		return part + ": lock order"
	verb = words[1] if len(words) > 1 else "?"
	if verb in ("lease", "member", "endpoint", "alarm", "snapshot", "check") and \
	   len(words) > 2:
		verb += " " + words[2]
	return "%s: %s" % (part, verb)


def compare(ref, cand):
	"""Per command of ref: None when cand's block equals it, else the unified diff."""
	rb, cb = blocks_of(ref.lines), blocks_of(cand.lines)
	res = []
	for i, (part, label, lines) in enumerate(rb):
		other = cb[i][2] if i < len(cb) else ["(command missing from this transcript)"]
		if i < len(cb) and cb[i][1] != label:
			other = ["(transcript out of step: %s)" % cb[i][1]] + other
		if other == lines:
			res.append(None)
		else:
			res.append(list(difflib.unified_diff(lines, other, "etcdctl->etcd", "",
							     n=3, lineterm=""))[2:])
	extra = cb[len(rb):]
	return rb, res, extra


def table(rb, results, names):
	"""rows = command groups in script order; cells = ref / same / DIFF k/n."""
	groups = []
	index = {}
	for i, (part, label, _) in enumerate(rb):
		g = group_of(part, label)
		if g not in index:
			index[g] = len(groups)
			groups.append((g, []))
		groups[index[g]][1].append(i)
	width = max(len(g) for g, _ in groups) + 2
	colw = max(15, max(len(n) for n in names) + 2)
	head = "%-*s%-6s" % (width, "command group", "cmds") + "".join(
		"%-*s" % (colw, n) for n in names)
	out = [head, "-" * len(head)]
	for g, idx in groups:
		cells = []
		for res in results:
			if res is None:
				cells.append("ref")
				continue
			bad = sum(1 for i in idx if res[i] is not None)
			cells.append("same" if not bad else "DIFF %d/%d" % (bad, len(idx)))
		out.append("%-*s%-6d" % (width, g, len(idx)) + "".join("%-*s" % (colw, c)
									 for c in cells))
	return out


def main():
	ap = argparse.ArgumentParser(description=__doc__,
				     formatter_class=argparse.RawDescriptionHelpFormatter)
	ap.add_argument("--keeld", required=True)
	ap.add_argument("--keelctl", required=True)
	ap.add_argument("--reference", default="etcd", help="reference server (etcd 3.4)")
	ap.add_argument("--etcdctl", default="etcdctl")
	ap.add_argument("--budget", type=float, default=120,
			help="seconds one column's session may take before the rest is skipped")
	ap.add_argument("--out", help="write each column's transcript here")
	ap.add_argument("--summary", action="store_true",
			help="print the table and the summary line only, not the diffs")
	ap.add_argument("--tools", default="etcdctl,keelctl")
	ap.add_argument("--servers", default="etcd,keeld")
	ap.add_argument("--columns",
			help="the columns besides the reference, as TOOL->SERVER,... "
			     "(instead of --tools x --servers)")
	ap.add_argument("--sessions", default=",".join(DEFAULT_SESSIONS),
			help="which sessions, of %s" % ",".join(SESSIONS))
	ap.add_argument("--long", action="store_true",
			help="add the perf session (check perf: 60 s per column)")
	args = ap.parse_args()
	args.sessions = args.sessions.split(",") + (["perf"] if args.long else [])
	if args.long:
		args.budget += 90
	bad = [n for n in args.sessions if n not in SESSIONS]
	if bad:
		ap.error("unknown session(s) %s" % bad)

	for prog in (args.reference, args.etcdctl):
		if not shutil.which(prog):
			print("matrix: SKIP: %s not found" % prog)
			return 77
	for what, path in (("keeld", args.keeld), ("keelctl", args.keelctl)):
		if not (os.access(path, os.X_OK) or shutil.which(path)):
			print("matrix: %s %s is not an executable" % (what, path))
			return 1
	keelctl = os.path.abspath(args.keelctl) if os.sep in args.keelctl else \
		shutil.which(args.keelctl)
	# The self-check passes etcdctl as keelctl: it knows only the ETCDCTL_* spellings.
	keel_style = "ETCDCTL" if os.path.basename(keelctl) == "etcdctl" else "KEELCTL"
	tools = {"etcdctl": (shutil.which(args.etcdctl), "ETCDCTL"),
		 "keelctl": (keelctl, keel_style)}
	servers = {"etcd": args.reference, "keeld": args.keeld}
	want_t, want_s = args.tools.split(","), args.servers.split(",")
	cols = [c for c in COLUMNS if c == REFERENCE or (c[0] in want_t and c[1] in want_s)]
	if args.columns:
		want_c = [tuple(c.split("->")) for c in args.columns.split(",")]
		bad = [c for c in want_c if c not in COLUMNS]
		if bad:
			ap.error("unknown column(s) %s" % ["->".join(c) for c in bad])
		cols = [c for c in COLUMNS if c == REFERENCE or c in want_c]
	for ln in ops.masks_text():
		print(ln)
	t0 = time.monotonic()
	runs = {}
	for col in cols:
		name = "%s->%s" % col
		try:
			runs[col], secs = run_column(tools[col[0]][0], tools[col[0]][1],
						    servers[col[1]], args, name)
		except ClusterError as e:
			print("matrix: %s: cluster failure: %s" % (name, e))
			return 1
		print("matrix: %s session %.1f s" % (name, secs), file=sys.stderr)
	if args.out:
		os.makedirs(args.out, exist_ok=True)
		for col, t in runs.items():
			with open(os.path.join(args.out, "%s-%s.txt" % col), "w") as f:
				f.write("\n".join(t.lines) + "\n")
	ref = runs[REFERENCE]
	names, results = [], []
	for col in cols:
		names.append("%s->%s" % col)
		if col == REFERENCE:
			results.append(None)
			rb = blocks_of(ref.lines)
			continue
		rb, res, extra = compare(ref, runs[col])
		if extra:
			res.append(["+" + ln for b in extra for ln in b[2]])
		results.append(res)
	for ln in table(rb, results, names):
		print(ln)
	ndiff = sum(1 for res in results if res for r in res if r is not None)
	if not args.summary:
		for name, res in zip(names, results):
			if not res:
				continue
			for i, d in enumerate(res):
				if d is None:
					continue
				label = rb[i][1] if i < len(rb) else "(extra commands)"
				print("\n==== %s: %s" % (name, label))
				for ln in d:
					print(ln)
	print("matrix: %d commands x %d columns, %d differences (%.0f s)" %
	      (len(rb), len(cols), ndiff, time.monotonic() - t0))
	return 1 if ndiff else 0


if __name__ == "__main__":
	sys.exit(main())
