#!/usr/bin/env python3
# tests/keelctl/test_keelctl.py — keelctl against etcdctl 3.4, byte for byte: one scripted
# session of data commands (get/put/del/txn/compaction/watch/lease, every output format,
# usage and error paths) runs once with etcdctl and once with keelctl, each on a fresh,
# identical cluster (same ports, names and token, so same IDs and revisions); every step's
# stdout, stderr and exit code must match. First on a 1-member etcd, then on 3-member keeld.
# Usage blocks are the one exception: their descriptions are Keel's own words, so those are
# masked (mask_usage) and the structure around them must still match byte for byte.
# Exits 77 when etcd or etcdctl is missing. Never leaves a process behind (cluster.py).
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from cluster import Cluster, ClusterError, free_ports  # noqa: E402

FORMATS = ["simple", "json", "fields", "protobuf", "table"]
TXN = 'value("foo") = "bar"\n\nput x y --prev-kv\nget foo\ndel nothing\n\nput z 1\n\n'
TXN_FAIL = 'mod("foo") > "1000"\nversion("foo") = "1"\n\nput no 1\n\nget foo --keys-only\n' \
	   'put f2 "two words"\n\n'


class Step:
	"""One command of the session. kind: run | bg (killed after `wait` seconds) |
	interactive (stdin lines fed, then held open for `wait` seconds and closed)."""

	def __init__(self, args, stdin=None, kind="run", wait=1.5, capture=None, lease=False,
		     fuzzy_ttl=False, env=None, eps=True, progress_anywhere=False):
		self.args, self.stdin, self.kind, self.wait = args, stdin, kind, wait
		self.capture, self.lease, self.fuzzy_ttl = capture, lease, fuzzy_ttl
		self.progress_anywhere = progress_anywhere
		self.env, self.eps = env or {}, eps


def session():
	s = []
	add = s.append
	# usage and argument errors (no server needed, but run on one anyway)
	for a in (["--help"], ["get", "--help"], ["lease"], ["lease", "bogus"],
		  ["lease", "grant", "-h"], ["txn", "-h"], ["watch", "--help"], ["help", "put"],
		  ["help", "bogus"], ["help", "get", "bogus"],
		  ["get", "--bogus"], ["get", "-x"], ["get", "--limit=x"], ["get", "--limit"],
		  ["--dial-timeout=x", "get", "a"], ["bogus"], ["gett"],
		  ["-w", "bogus", "get", "a"],
		  ["--cert=", "get", "a"], ["get"], ["put"], ["del"], ["txn", "x"], ["compaction"],
		  ["compaction", "x"], ["get", "a", "--prefix", "--from-key"],
		  ["get", "a", "b", "--prefix"], ["get", "a", "--order=bogus"],
		  ["get", "a", "--sort-by=bogus"], ["get", "a", "--consistency=x"],
		  ["put", "a", "b", "c"], ["put", "a", "b", "--lease=zz"],
		  ["put", "a", "--ignore-value", "b"], ["del", "a", "b", "c"], ["watch"],
		  ["watch", "a", "--"], ["watch", "a", "b", "--prefix"], ["lease", "grant", "x"],
		  ["lease", "revoke", "zz"], ["lease", "grant"], ["lease", "timetolive"],
		  ["get", "a", "-w", "table"], ["get", "a", "--prefix=x"],
		  # past Go's ~292-year limit; exponents are not Go syntax; int64 overflow
		  ["--command-timeout=1h99999999h", "get", "a"],
		  ["--dial-timeout=2562048h", "get", "a"], ["--dial-timeout=nan", "get", "a"],
		  ["lease", "grant", "99999999999999999999"]):
		add(Step(a))
	add(Step(["watch", "b"], env={"ETCDCTL_WATCH_KEY": "a"}))
	add(Step(["watch", "b"], env={"ETCDCTL_WATCH_RANGE_END": "a"}))
	add(Step(["get", "a"], env={"ETCDCTL_ENDPOINTS": "127.0.0.1:1"}))  # shadowed: fatal
	add(Step(["get", "foo"], env={"ETCDCTL_FOO": "1"}))                  # warning
	add(Step(["get", "foo"], env={"ETCDCTL_WRITE_OUT": "json"}))
	add(Step(["put", "a"], stdin=""))
	# data
	add(Step(["put", "foo", "bar"]))
	add(Step(["put", "foo2", "bar 2"]))
	add(Step(["put", "fromstdin"], stdin="line one\nline two\n"))
	add(Step(["put", "--", "-dash", "-v"]))
	add(Step(["put", "bin", "\x01\x7f\u00e9\"q\""]))
	for w in FORMATS:
		add(Step(["get", "foo", "-w", w]))
		add(Step(["get", "foo", "--prefix", "-w", w]))
		add(Step(["get", "", "--prefix", "--keys-only", "-w", w]))
		add(Step(["get", "", "--from-key", "--limit", "2", "-w", w]))
		add(Step(["get", "bin", "--hex", "-w", w]))
		add(Step(["get", "f", "--prefix", "--sort-by=VALUE", "--order=DESCEND", "-w", w]))
		add(Step(["put", "k", "v" + w, "--prev-kv", "-w", w]))
		add(Step(["del", "k", "--prev-kv", "-w", w]))
		add(Step(["del", "nothing", "-w", w]))
		add(Step(["txn", "-w", w], stdin=TXN))
		add(Step(["txn", "-w", w], stdin=TXN_FAIL))
	add(Step(["get", "foo", "--rev", "2"]))
	add(Step(["get", "foo", "fop"]))
	add(Step(["get", "foo", "--print-value-only"]))
	add(Step(["get", "foo", "--print-value-only", "-w", "json"]))
	add(Step(["get", "foo", "--consistency=s", "-w", "fields"]))
	add(Step(["get", "f", "--prefix", "--sort-by=create", "--order=ascend", "--limit=1"]))
	add(Step(["put", "foo", "--ignore-value", "--prev-kv"]))
	add(Step(["txn", "-i"], stdin=TXN))
	add(Step(["txn"], stdin='value("foo") = "bar"\n'))            # EOF in compares
	add(Step(["txn"], stdin='foo bar\n\n\n\n'))                    # malformed compare
	for cmp in ('bad("t/a") = "1"', 'value("t/a" = "1"', 'value("t/a") "1"',
		    'value("t/a") = 1', 'mod("t/a") = "x"', 'value(t/a) = "1"'):
		add(Step(["txn"], stdin=cmp + "\n\n\n\n"))
	add(Step(["txn"], stdin='\nbogus x\n\n\n'))                    # bad request
	# Go's %q: \x takes exactly two hex digits, octal stops at \377
	for bad in ('put "\\x-1" v', 'put "\\x 1" v', 'put "\\477" v'):
		add(Step(["txn"], stdin="\n" + bad + "\n\n"))
	add(Step(["txn"], stdin='\nput a\n\n\n'))
	add(Step(["del", "fo", "--prefix", "--prev-kv"]))
	add(Step(["put", "foo", "again"]))
	# watch: history replay from revision 1 is deterministic
	for w in FORMATS:
		add(Step(["watch", "foo", "--rev", "1", "--prev-kv", "-w", w], kind="bg"))
	add(Step(["watch", "", "--prefix", "--rev", "1"], kind="bg"))
	add(Step(["watch", "foo", "fop", "--rev", "2"], kind="bg"))
	add(Step(["watch", "foo", "--rev", "1", "--", "sh", "-c",
		  'echo "$ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY '
		  '$ETCD_WATCH_VALUE"'], kind="bg"))
	add(Step(["watch", "foo", "--rev", "1", "--", "sh", "-c", "exit 3"], kind="bg"))
	# A progress request may be answered before or after the replay of a watcher still
	# catching up (etcd does either, depending on timing): its line may move.
	add(Step(["watch", "-i"], stdin="watch foo --rev 1\nbogus\nwatch\nprogress\n",
		 kind="interactive", progress_anywhere=True))
	add(Step(["watch", "-i", "-w", "json"], stdin="watch foo --rev 2 --prev-kv\n",
		 kind="interactive"))
	# compaction
	add(Step(["compaction", "3"]))
	add(Step(["compaction", "--physical", "4"]))
	add(Step(["compaction", "2"]))
	add(Step(["compaction", "99999"]))
	add(Step(["get", "foo", "--rev", "2"]))
	add(Step(["watch", "foo", "--rev", "2"], kind="bg"))
	# leases (IDs differ between runs: captured and normalised)
	add(Step(["lease", "grant", "1000"], capture="L1"))
	add(Step(["put", "lk", "v", "--lease={L1}"], lease=True))
	add(Step(["put", "lk2", "v", "-w", "json"]))  # one key per lease: etcd lists them unordered
	for w in FORMATS:
		add(Step(["lease", "timetolive", "{L1}", "-w", w], lease=True, fuzzy_ttl=True))
		add(Step(["lease", "timetolive", "{L1}", "--keys", "-w", w], lease=True,
			 fuzzy_ttl=True))
		add(Step(["lease", "list", "-w", w], lease=True))
		add(Step(["lease", "keep-alive", "--once", "{L1}", "-w", w], lease=True,
			 fuzzy_ttl=True))
		add(Step(["lease", "timetolive", "1234", "-w", w]))
		add(Step(["lease", "grant", "100", "-w", w], capture="LG"))
		add(Step(["lease", "revoke", "{LG}", "-w", w], lease=True))
	add(Step(["lease", "revoke", "1234"]))
	add(Step(["lease", "keep-alive", "--once", "1234"]))
	add(Step(["put", "x", "y", "--lease=1234"]))
	add(Step(["get", "lk", "-w", "fields"], lease=True))
	add(Step(["lease", "revoke", "{L1}"], lease=True))
	add(Step(["get", "lk"]))
	add(Step(["lease", "grant", "100"], capture="L2"))
	add(Step(["lease", "keep-alive", "{L2}"], kind="bg", wait=1.0, lease=True,
		  fuzzy_ttl=True))
	# an endpoint nobody listens on
	add(Step(["--endpoints=127.0.0.1:1", "--dial-timeout=1s", "--command-timeout=2s", "get",
		  "foo"], eps=False))
	# etcdctl refuses to send more than grpc-go's 2 MiB
	add(Step(["put", "big"], stdin="x" * (2 * 1024 * 1024)))
	add(Step(["put", "", "v"]))
	return s


LOG_LINE = re.compile(rb"^\{\"level\":.*\n?", re.M)
TS = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} ", re.M)


HEADING = re.compile(rb"^[A-Z][A-Z ]*:$")


def mask_usage(b):
	"""A usage block (from a "NAME:" line to the end) with its descriptions masked: the NAME
	line's text after " - ", each command's and flag's text after its last tab run, and
	the DESCRIPTION section. Headings, usage line, names, flags, defaults and the tabwriter
	padding (which descriptions never widen) stay as printed."""
	m = re.search(rb"(?:^|\n)NAME:\n", b)
	if not m:
		return b
	start = m.start() + (1 if b[m.start():m.start() + 1] == b"\n" else 0)
	out, section = [], None
	for line in b[start:].split(b"\n"):
		if HEADING.match(line):
			section = line
			if section != b"DESCRIPTION:":
				out.append(line)
			continue
		if section == b"DESCRIPTION:":
			continue
		if section == b"NAME:":
			line = re.sub(rb" - .*", b" - <description>", line)
		elif section in (b"COMMANDS:", b"OPTIONS:", b"GLOBAL OPTIONS:") and line:
			line = re.sub(rb"(\t+)[^\t]*$", rb"\1<description>", line)
		out.append(line)
	return b[:start] + b"\n".join(out)


def normalise(b, vars_, step):
	b = b.replace(b"keelctl", b"etcdctl")
	b = mask_usage(b)
	# etcdctl's client library logs a zap JSON line for a failed call; keelctl has no such
	# log, and the "Error: ..." line that follows is what must match.
	b = LOG_LINE.sub(b"", b)
	b = TS.sub(b"<TS> ", b)
	for name, hexid in vars_.items():
		if step.lease or step.capture:
			b = b.replace(hexid.encode(), b"<%s>" % name.encode())
			b = b.replace(str(int(hexid, 16)).encode(), b"<%s>" % name.encode())
	if step.capture:
		b = re.sub(rb"lease [0-9a-f]{16} ", b"lease <NEW> ", b)
		b = re.sub(rb"\"ID\"( : |:)\d+", b"\"ID\"\\1<NEW>", b)
		if step.args[-1] == "protobuf":
			b = b"<protobuf: header of a new lease>"
	if step.progress_anywhere:
		lines = b.split(b"\n")
		prog = [ln for ln in lines if ln.startswith(b"progress notify:")]
		rest = [ln for ln in lines if not ln.startswith(b"progress notify:")]
		tail = [rest.pop()] if rest and rest[-1] == b"" else []
		b = b"\n".join(rest + prog + tail)
	if step.fuzzy_ttl:
		b = re.sub(rb"remaining\(\d+s\)", b"remaining(Ns)", b)
		b = re.sub(rb"(\"ttl\":|\"TTL\":|\"TTL\" : |TTL\()\d+", b"\\1N", b)
	return b


def run_step(tool, step, endpoint, vars_):
	args = [a.format(**vars_) if "{" in a else a for a in step.args]
	argv = [tool] + (["--endpoints=" + endpoint] if step.eps else []) + args
	env = {k: v for k, v in os.environ.items()
	       if not k.startswith("ETCDCTL_") and not k.startswith("KEELCTL_")}
	env["ETCDCTL_API"] = "3"
	env.update(step.env)
	stdin = step.stdin.encode() if step.stdin is not None else None
	if step.kind == "run":
		try:
			p = subprocess.run(argv, input=stdin if stdin is not None else b"",
					   capture_output=True, env=env, timeout=30)
			return p.returncode, p.stdout, p.stderr
		except subprocess.TimeoutExpired as e:
			return -9, e.stdout or b"", (e.stderr or b"") + b"[timeout]"
	p = subprocess.Popen(argv, stdin=subprocess.PIPE if step.kind == "interactive"
			     else subprocess.DEVNULL, stdout=subprocess.PIPE,
			     stderr=subprocess.PIPE, env=env)
	if step.kind == "interactive":
		p.stdin.write(stdin)
		p.stdin.flush()
	time.sleep(step.wait)
	if step.kind == "interactive":
		p.stdin.close()
		p.stdin = None
	else:
		if p.poll() is None:
			p.send_signal(signal.SIGKILL)
	try:
		out, err = p.communicate(timeout=15)
	except subprocess.TimeoutExpired:
		p.kill()
		out, err = p.communicate()
	rc = p.returncode
	if step.kind == "bg" and rc == -signal.SIGKILL:
		rc = "killed"
	return rc, out, err


def run_session(tool, endpoint, steps):
	vars_ = {}
	results = []
	for st in steps:
		rc, out, err = run_step(tool, st, endpoint, vars_)
		if st.capture:
			m = re.search(rb"lease ([0-9a-f]{16}) granted", out)
			d = re.search(rb"\"ID\"(?: : |:)(\d+)", out)
			if m:
				vars_[st.capture] = m.group(1).decode()
			elif d:
				vars_[st.capture] = "%016x" % int(d.group(1))
		results.append((rc, normalise(out, vars_, st), normalise(err, vars_, st)))
	return results


def raft_term(c):
	r = c.etcdctl("get", "x", "-w", "json", endpoints=0)
	m = re.search(r'"raft_term":(\d+)', r.out)
	return m.group(1) if m else None


def fresh(binary, size, ports, token):
	c = Cluster(binary, size=size, token=token, heartbeat_ms=50, election_ms=500)
	if ports is None:
		c.start()
	else:
		for m, (cp, pp) in zip(c.members, ports):
			m.client_port, m.peer_port = cp, pp
		for i in range(size):
			c.start_member(i)
		c.wait_healthy()
	c.wait_leader()
	return c


def compare(server_name, binary, size, keelctl, steps):
	token = "keelctl-test"
	failures = 0
	ref = None
	for attempt in range(3):
		c = fresh(binary, size, None, token)
		ports = [(m.client_port, m.peer_port) for m in c.members]
		try:
			term = raft_term(c)
			ref = run_session("etcdctl", c.endpoints[0], steps)
		finally:
			c.close()
		c = fresh(binary, size, ports, token)
		try:
			if raft_term(c) != term:
				print("# %s: raft terms differ between the twin clusters, retrying"
				      % server_name)
				continue
			got = run_session(keelctl, c.endpoints[0], steps)
		finally:
			c.close()
		break
	else:
		print("FAIL %s: could not get twin clusters with equal raft terms" % server_name)
		return 1
	for st, a, b in zip(steps, ref, got):
		name = "%s: %s%s" % (server_name, " ".join(st.args),
				     " <<< %r" % st.stdin if st.stdin is not None else "")
		if a == b:
			print("ok   %s" % name)
			continue
		failures += 1
		print("FAIL %s" % name)
		for what, x, y in (("rc", a[0], b[0]), ("stdout", a[1], b[1]),
				   ("stderr", a[2], b[2])):
			if x != y:
				for tool, v in (("etcdctl", x), ("keelctl", y)):
					v = v[:600] if isinstance(v, bytes) else v
					print("   %s %s: %r" % (what, tool, v))
	return failures


def keelctl_only(keelctl, endpoint):
	"""What etcdctl cannot show: KEELCTL_* variables and the refused ETCDCTL_API=2."""
	base = {k: v for k, v in os.environ.items()
		if not k.startswith("ETCDCTL_") and not k.startswith("KEELCTL_")}
	cases = [
		# (env, args, rc, stdout regex, stderr regex)
		({"KEELCTL_ENDPOINTS": endpoint, "ETCDCTL_ENDPOINTS": "127.0.0.1:1"},
		 ["put", "kc", "1"], 0, rb"^OK\n$", rb"^$"),
		({"KEELCTL_WRITE_OUT": "fields", "ETCDCTL_WRITE_OUT": "json",
		  "ETCDCTL_ENDPOINTS": endpoint}, ["get", "kc"], 0, rb'^"ClusterID" : ', rb"^$"),
		({"KEELCTL_ENDPOINTS": endpoint}, ["--endpoints", endpoint, "get", "kc"], 1, rb"^$",
		 rb'^\d{4}-\d\d-\d\d [\d:.]+ C \| pkg/flags: conflicting environment variable '
		 rb'"KEELCTL_ENDPOINTS" is shadowed by corresponding command-line flag'),
		({"KEELCTL_BOGUS": "1"},
		 ["--endpoints", endpoint, "get", "kc", "--print-value-only"], 0, rb"^1\n$",
		 rb"W \| pkg/flags: unrecognized environment variable KEELCTL_BOGUS=1\n$"),
		({"ETCDCTL_API": "2"}, ["get", "kc"], 1, rb"^$",
		 rb"ETCDCTL_API=2 is not supported"),
		({}, ["--endpoints", endpoint, "--user", "root:x", "get", "kc"], 128, rb"^$",
		 rb"^Error: --user is not supported by keelctl"),
		({}, ["--endpoints", endpoint, "--insecure-transport=false", "get", "kc"], 128,
		 rb"^$",
		 rb"^Error: --insecure-transport=false is not supported"),
	]
	fails = 0
	for env, args, rc, out_re, err_re in cases:
		e = dict(base)
		e.update(env)
		p = subprocess.run([keelctl] + args, env=e, capture_output=True, timeout=30)
		ok = (p.returncode == rc and re.search(out_re, p.stdout)
		      and re.search(err_re, p.stderr))
		print("%s keelctl-only: %r %s" % ("ok  " if ok else "FAIL", env, " ".join(args)))
		if not ok:
			fails += 1
			print("   rc=%r out=%r err=%r"
			      % (p.returncode, p.stdout[:300], p.stderr[:300]))
	return fails


def main():
	ap = argparse.ArgumentParser()
	ap.add_argument("--keelctl", required=True)
	ap.add_argument("--keeld", required=True)
	ap.add_argument("--only", choices=["etcd", "keeld"])
	opts = ap.parse_args()
	if not shutil.which("etcd") or not shutil.which("etcdctl"):
		print("etcd or etcdctl not installed: skipping")
		return 77
	steps = session()
	fails = 0
	try:
		if opts.only in (None, "etcd"):
			fails += compare("etcd x1", "etcd", 1, os.path.abspath(opts.keelctl), steps)
		if opts.only in (None, "etcd"):
			c = fresh("etcd", 1, None, "keelctl-only")
			try:
				fails += keelctl_only(os.path.abspath(opts.keelctl), c.endpoints[0])
			finally:
				c.close()
		if opts.only in (None, "keeld"):
			fails += compare("keeld x3", os.path.abspath(opts.keeld), 3,
					 os.path.abspath(opts.keelctl), steps)
	except ClusterError as e:
		print("cluster error: %s" % e)
		return 1
	print("%d mismatches" % fails)
	return 1 if fails else 0


if __name__ == "__main__":
	sys.exit(main())
