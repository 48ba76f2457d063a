# tests/lib/cluster.py — start, break and stop a local N-member cluster of an etcd-compatible
# server (etcd 3.4 itself or keeld) for tests, and drive it with the real etcdctl.
# Never leaves a process behind and never touches anything outside its own temp dir.
"""Local test clusters of an etcd-3.4-compatible server binary.

Quick use::

    import sys; sys.path.insert(0, "tests/lib")   # or the absolute path of this folder
    from cluster import Cluster

    with Cluster("etcd", size=3, heartbeat_ms=50, election_ms=500) as c:
        c.start()                          # launches all members, waits until all healthy
        r = c.etcdctl("put", "k", "v")     # Result(rc, out, err); uses every endpoint
        assert r.rc == 0, r
        lead = c.leader()                  # index 0..size-1 of the current leader
        c.kill(lead)                       # SIGKILL
        c.wait_leader(exclude=[lead])      # a new leader among the others
        c.restart(lead)                    # same data dir, same ports, state "new" again
        c.wait_healthy()

API (member arguments are indexes 0..size-1):

Cluster(binary="etcd", size=3, heartbeat_ms=100, election_ms=1000, snapshot_count=None,
        extra_args=(), etcdctl="etcdctl", base_dir=None, token=None, name_prefix="m",
        start_timeout=30.0, keep=None)
    binary:    server path or name in PATH (etcd or keeld; it must take etcd 3.4's flags).
    extra_args: more flags for every member (list of str).
    base_dir:  parent of the cluster's temp dir (default: $TMPDIR).
    keep:      keep the temp dir after close(); default from env KEEL_KEEP_CLUSTER=1.

  c.start(timeout=None)      launch all members, wait until all answer `endpoint health`.
                             Ports are picked free (bind port 0) and re-picked if a member
                             loses a bind race; raises ClusterError on failure (logs printed).
  c.endpoints                ["127.0.0.1:P1", ...] client endpoints, index order.
  c.client_urls / c.peer_urls  the same as http:// URLs.
  c.members                  [Member]: .name .index .client_port .peer_port .data_dir
                             .log_path .proc (Popen or None) .running
  c.dir                      the cluster's temp dir (data dirs and logs live under it).
  c.kill(i)                  SIGKILL member i and reap it.
  c.stop(i, timeout=10)      SIGTERM member i, wait (SIGKILL after timeout).
  c.restart(i, wait=True)    start member i again from its data dir (stopping it first if
                             running); with wait, waits until it answers (quorum required).
  c.start_member(i, cluster_state=None, initial_cluster=None)
                             low level: spawn member i without waiting. cluster_state
                             ("new"/"existing") and initial_cluster (a string, see
                             initial_cluster_of) are remembered for the member's later
                             restarts; None keeps what it had (default "new", all members).
  c.wait_healthy(members=None, timeout=None)   `etcdctl endpoint health` succeeds on each
                             (needs a quorum: it does a linearizable get).
  c.wait_up(members=None, timeout=None)        `etcdctl endpoint status` succeeds on each
                             (no quorum needed).
  c.member_id(i)             member i's raft ID (int) from its status, or None.
  c.status(i, timeout=3)     dict from `endpoint status -w json` for member i, or None.
                             Keys: "Endpoint", "Status": {"header": {"member_id", ...},
                             "leader", "raftIndex", "raftTerm", "version", "dbSize", ...}.
  c.leader(members=None)     index of the member that is leader now, agreed by every running
                             member asked (Status.leader == Status.header.member_id), or None.
  c.wait_leader(timeout=None, exclude=())  wait for leader() not in exclude; returns index.
  c.etcdctl(*args, endpoints=None, input=None, timeout=20, env=None, check=False)
                             run `etcdctl --endpoints=<all or given> args` with
                             ETCDCTL_API=3; returns Result(rc, out, err, args) (str fields).
                             endpoints: None = all members, an int, or a list of ints/strings.
                             On timeout rc is -9 and err ends with "[timeout]".
                             check=True raises ClusterError when rc != 0.
  c.etcdctl_bg(*args, endpoints=None, stdout=None, stderr=None, env=None)
                             start etcdctl in the background (Popen, text mode, stdout and
                             stderr PIPEs unless given); it is killed on close() if alive.
  c.dump_logs(lines=40, file=sys.stderr)      print the tail of every member's log.

Membership changes (the member add itself is the caller's, e.g. etcdctl member add):
  c.add_member(name=None, extra_args=())  a new member slot (index = the old size, size
                             grows by one) on fresh free ports, not started; extra_args
                             are added after the cluster's for this member only. Start it
                             with start_member(i, "existing", c.initial_cluster_of([...])).
                             Calls whose members default to "all" (start, wait_healthy,
                             wait_up) then include it: pass members explicitly.
  c.initial_cluster_of(members)  "name=peer-url,..." of those member indexes.
  c.close()                  stop every process started by this cluster and remove its dir.
                             keeld members get SIGTERM (a sanitizer build reports leaks at
                             exit), etcd gets SIGKILL; any AddressSanitizer, LeakSanitizer
                             or UBSan report in a member's log raises ClusterError.
  c.sanitizer_reports()      those reports (first line per member), for tests to show.
  with Cluster(...) as c:    close() on exit; when the block raises, logs are printed first.

Every process started here is registered globally and killed at interpreter exit (atexit)
and on SIGTERM/SIGHUP (meson's test timeout sends SIGTERM to the process group), so a
failing or interrupted test never leaves a server running. Members run in the caller's
process group on purpose: a process-group kill also reaches them.
"""

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

__all__ = ["Cluster", "ClusterError", "Member", "Result", "free_ports"]


class ClusterError(Exception):
	pass


class Result:
	"""Outcome of one etcdctl run: rc, out, err (text) and the args that were run."""

	def __init__(self, rc, out, err, args):
		self.rc, self.out, self.err, self.args = rc, out, err, args

	def __repr__(self):
		return "Result(rc=%r, args=%r, out=%r, err=%r)" % (self.rc, self.args, self.out,
								  self.err)


# Every live child of this interpreter, so exit paths can kill them all.
_live = set()
_live_lock = threading.Lock()
# Temp dirs of clusters not closed yet, removed on the same exit paths unless kept.
_dirs = set()
_handlers_installed = False


def _track(proc):
	with _live_lock:
		_live.add(proc)


def _untrack(proc):
	with _live_lock:
		_live.discard(proc)


def _kill_all():
	with _live_lock:
		procs = list(_live)
		_live.clear()
	for p in procs:
		if p.poll() is None:
			try:
				p.kill()
			except OSError:
				pass
	for p in procs:
		try:
			p.wait(timeout=5)
		except (subprocess.TimeoutExpired, OSError):
			pass
	with _live_lock:
		dirs = list(_dirs)
		_dirs.clear()
	for d in dirs:
		shutil.rmtree(d, ignore_errors=True)


def _on_signal(signum, frame):
	_kill_all()
	signal.signal(signum, signal.SIG_DFL)
	os.kill(os.getpid(), signum)


def _install_handlers():
	global _handlers_installed
	if _handlers_installed:
		return
	_handlers_installed = True
	atexit.register(_kill_all)
	if threading.current_thread() is not threading.main_thread():
		return
	for sig in (signal.SIGTERM, signal.SIGHUP):
		# Leave a handler the program installed itself alone.
		if signal.getsignal(sig) in (signal.SIG_DFL, None):
			signal.signal(sig, _on_signal)


def free_ports(n):
	"""n distinct TCP ports on 127.0.0.1 that were free a moment ago (held together so they
	differ; another process may still take one before we use it: callers retry)."""
	socks = []
	try:
		for _ in range(n):
			s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
			s.bind(("127.0.0.1", 0))
			socks.append(s)
		return [s.getsockname()[1] for s in socks]
	finally:
		for s in socks:
			s.close()


class Member:
	def __init__(self, index, name, base):
		self.index = index
		self.name = name
		self.data_dir = os.path.join(base, name + ".data")
		self.log_path = os.path.join(base, name + ".log")
		self.client_port = 0
		self.peer_port = 0
		self.proc = None
		self.cluster_state = None    # None: "new"; set by start_member
		self.initial_cluster = None  # None: every member of the cluster
		self.extra_args = []

	@property
	def running(self):
		return self.proc is not None and self.proc.poll() is None

	@property
	def endpoint(self):
		return "127.0.0.1:%d" % self.client_port

	@property
	def client_url(self):
		return "http://127.0.0.1:%d" % self.client_port

	@property
	def peer_url(self):
		return "http://127.0.0.1:%d" % self.peer_port


_BIND_ERRORS = ("address already in use", "bind: address", "eaddrinuse")


class Cluster:
	def __init__(self, binary="etcd", size=3, heartbeat_ms=100, election_ms=1000,
		     snapshot_count=None, extra_args=(), etcdctl="etcdctl", base_dir=None,
		     token=None, name_prefix="m", start_timeout=30.0, keep=None):
		resolved = shutil.which(binary) if os.sep not in binary else binary
		if not resolved or not os.access(resolved, os.X_OK):
			raise ClusterError("server binary not found: %s" % binary)
		ctl = shutil.which(etcdctl) if os.sep not in etcdctl else etcdctl
		if not ctl:
			raise ClusterError("etcdctl not found: %s" % etcdctl)
		self.binary = os.path.abspath(resolved)
		self.etcdctl_path = ctl
		self.size = size
		self.heartbeat_ms = heartbeat_ms
		self.election_ms = election_ms
		self.snapshot_count = snapshot_count
		self.extra_args = list(extra_args)
		self.start_timeout = start_timeout
		self.name_prefix = name_prefix
		self.keep = keep if keep is not None else os.environ.get("KEEL_KEEP_CLUSTER") == "1"
		self.dir = tempfile.mkdtemp(prefix="keel-cluster-", dir=base_dir)
		self.token = token or os.path.basename(self.dir)
		self.members = [Member(i, "%s%d" % (name_prefix, i + 1), self.dir)
				for i in range(size)]
		self._bg = []
		self._closed = False
		_install_handlers()
		if not self.keep:
			with _live_lock:
				_dirs.add(self.dir)

	# ---- addresses ----

	@property
	def endpoints(self):
		return [m.endpoint for m in self.members]

	@property
	def client_urls(self):
		return [m.client_url for m in self.members]

	@property
	def peer_urls(self):
		return [m.peer_url for m in self.members]

	def _initial_cluster(self):
		return ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members)

	def initial_cluster_of(self, members):
		return ",".join("%s=%s" % (self.members[i].name, self.members[i].peer_url)
				for i in self._select(members))

	def _pick_ports(self):
		ports = free_ports(2 * self.size)
		for i, m in enumerate(self.members):
			m.client_port, m.peer_port = ports[2 * i], ports[2 * i + 1]

	# ---- processes ----

	def _member_args(self, m):
		args = [self.binary,
			"--name", m.name,
			"--data-dir", m.data_dir,
			"--listen-client-urls", m.client_url,
			"--advertise-client-urls", m.client_url,
			"--listen-peer-urls", m.peer_url,
			"--initial-advertise-peer-urls", m.peer_url,
			"--initial-cluster", m.initial_cluster or self._initial_cluster(),
			"--initial-cluster-state", m.cluster_state or "new",
			"--initial-cluster-token", self.token,
			"--heartbeat-interval", str(self.heartbeat_ms),
			"--election-timeout", str(self.election_ms)]
		if self.snapshot_count is not None:
			args += ["--snapshot-count", str(self.snapshot_count)]
		return args + self.extra_args + m.extra_args

	def add_member(self, name=None, extra_args=()):
		"""A new, not yet started member slot on free ports; returns its index."""
		i = self.size
		m = Member(i, name or "%s%d" % (self.name_prefix, i + 1), self.dir)
		taken = {p for o in self.members for p in (o.client_port, o.peer_port)}
		for _ in range(20):
			ports = free_ports(2)
			if not taken.intersection(ports):
				break
		else:
			raise ClusterError("no free ports for a new member")
		m.client_port, m.peer_port = ports
		m.extra_args = list(extra_args)
		self.members.append(m)
		self.size += 1
		return i

	def start_member(self, i, cluster_state=None, initial_cluster=None):
		m = self.members[i]
		if m.running:
			raise ClusterError("%s is already running" % m.name)
		if cluster_state is not None:
			m.cluster_state = cluster_state
		if initial_cluster is not None:
			m.initial_cluster = initial_cluster
		args = self._member_args(m)
		with open(m.log_path, "ab") as log:
			log.write(("\n==== %s start: %s\n" % (time.strftime("%H:%M:%S"),
							  " ".join(args))).encode())
			log.flush()
			m.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
						  stderr=subprocess.STDOUT, close_fds=True)
		_track(m.proc)
		return m.proc

	def _reap(self, m, timeout):
		try:
			m.proc.wait(timeout=timeout)
		except subprocess.TimeoutExpired:
			m.proc.kill()
			m.proc.wait()
		_untrack(m.proc)

	def kill(self, i):
		m = self.members[i]
		if m.proc is None:
			return
		if m.proc.poll() is None:
			m.proc.send_signal(signal.SIGKILL)
		self._reap(m, 10)

	def stop(self, i, timeout=10):
		m = self.members[i]
		if m.proc is None:
			return
		if m.proc.poll() is None:
			m.proc.send_signal(signal.SIGTERM)
		self._reap(m, timeout)

	def restart(self, i, wait=True, timeout=None):
		self.stop(i)
		self.start_member(i)
		if wait:
			self.wait_healthy([i], timeout)

	def _lost_bind_race(self):
		for m in self.members:
			if m.proc is not None and m.proc.poll() is not None:
				if any(e in self._log_tail(m, 30).lower() for e in _BIND_ERRORS):
					return True
		return False

	def start(self, timeout=None):
		"""Launch every member on fresh free ports and wait until all are healthy."""
		timeout = timeout or self.start_timeout
		for attempt in range(4):
			self._pick_ports()
			for i in range(self.size):
				self.start_member(i)
			try:
				self.wait_healthy(timeout=timeout, _race_check=True)
				return self
			except _BindRace:
				for i in range(self.size):
					self.kill(i)
				for m in self.members:
					shutil.rmtree(m.data_dir, ignore_errors=True)
		self.dump_logs()
		raise ClusterError("could not bind free ports after 4 attempts")

	# ---- waiting and status ----

	def _select(self, members):
		if members is None:
			return list(range(self.size))
		if isinstance(members, int):
			return [members]
		return list(members)

	def _wait(self, what, probe, members, timeout, race_check=False):
		timeout = timeout or self.start_timeout
		deadline = time.monotonic() + timeout
		pending = self._select(members)
		last = {}
		while pending:
			for i in list(pending):
				m = self.members[i]
				if m.proc is None or m.proc.poll() is not None:
					if race_check and self._lost_bind_race():
						raise _BindRace()
					self.dump_logs()
					rc = m.proc and m.proc.returncode
					raise ClusterError("%s exited (rc %s) while waiting for %s"
							   % (m.name, rc, what))
				r = probe(i)
				if r.rc == 0:
					pending.remove(i)
				else:
					last[i] = r
			if not pending:
				break
			if time.monotonic() > deadline:
				self.dump_logs()
				raise ClusterError("timeout (%.0fs) waiting for %s of %s; last: %s"
						   % (timeout, what,
						    [self.members[i].name for i in pending],
						    [last.get(i) for i in pending]))
			time.sleep(0.1)

	def wait_healthy(self, members=None, timeout=None, _race_check=False):
		self._wait("health", lambda i: self.etcdctl("endpoint", "health",
							    "--command-timeout=1s",
							    endpoints=i, timeout=5),
			   members, timeout, _race_check)

	def wait_up(self, members=None, timeout=None):
		self._wait("status", lambda i: self.etcdctl("endpoint", "status",
							    "--command-timeout=1s",
							    endpoints=i, timeout=5),
			   members, timeout)

	def status(self, i, timeout=3):
		if not self.members[i].running:
			return None
		r = self.etcdctl("endpoint", "status", "-w", "json",
				 "--command-timeout=%ds" % max(1, int(timeout)), endpoints=i,
				 timeout=timeout + 2)
		if r.rc != 0:
			return None
		try:
			data = json.loads(r.out)
		except ValueError:
			return None
		return data[0] if isinstance(data, list) and data else None

	def member_id(self, i):
		"""Member i's raft ID (int) as it reports it, or None when it does not answer."""
		st = self.status(i)
		return st["Status"]["header"].get("member_id") if st else None

	def leader(self, members=None):
		"""Index of the leader all running members asked agree on, else None."""
		ids = {}
		leads = set()
		for i in self._select(members):
			st = self.status(i)
			if st is None:
				continue
			ids[st["Status"]["header"].get("member_id")] = i
			leads.add(st["Status"].get("leader"))
		if len(leads) != 1:
			return None
		lead = leads.pop()
		if not lead:
			return None
		if lead in ids:
			return ids[lead]
		# The leader was not asked: find its index among the other members.
		for i in range(self.size):
			if i not in ids.values() and self.member_id(i) == lead:
				return i
		return None

	def wait_leader(self, timeout=None, exclude=()):
		timeout = timeout or self.start_timeout
		deadline = time.monotonic() + timeout
		while True:
			live = [i for i in range(self.size) if self.members[i].running]
			lead = self.leader(live)
			if lead is not None and lead not in exclude:
				return lead
			if time.monotonic() > deadline:
				self.dump_logs()
				raise ClusterError("no leader (excluding %s) after %.0fs" %
						   (list(exclude), timeout))
			time.sleep(0.1)

	# ---- etcdctl ----

	def _endpoint_arg(self, endpoints):
		if endpoints is None:
			eps = self.endpoints
		elif isinstance(endpoints, (int, str)):
			eps = [endpoints]
		else:
			eps = list(endpoints)
		eps = [self.members[e].endpoint if isinstance(e, int) else e for e in eps]
		return "--endpoints=" + ",".join(eps)

	def _env(self, env):
		e = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
		e["ETCDCTL_API"] = "3"
		if env:
			e.update(env)
		return e

	def etcdctl(self, *args, endpoints=None, input=None, timeout=20, env=None, check=False):
		argv = [self.etcdctl_path, self._endpoint_arg(endpoints)] + [str(a) for a in args]
		p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None
				     else subprocess.DEVNULL, stdout=subprocess.PIPE,
				     stderr=subprocess.PIPE, env=self._env(env), close_fds=True)
		_track(p)
		data = input.encode() if isinstance(input, str) else input
		try:
			out, err = p.communicate(data, timeout=timeout)
			rc = p.returncode
		except subprocess.TimeoutExpired:
			p.kill()
			out, err = p.communicate()
			rc = -9
			err = err + b"[timeout]"
		finally:
			_untrack(p)
		r = Result(rc, out.decode(errors="replace"), err.decode(errors="replace"), argv[1:])
		if check and rc != 0:
			raise ClusterError("etcdctl failed: %r" % r)
		return r

	def etcdctl_bg(self, *args, endpoints=None, stdout=None, stderr=None, env=None):
		argv = [self.etcdctl_path, self._endpoint_arg(endpoints)] + [str(a) for a in args]
		p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
				     stdout=stdout if stdout is not None else subprocess.PIPE,
				     stderr=stderr if stderr is not None else subprocess.PIPE,
				     env=self._env(env), close_fds=True, text=True)
		_track(p)
		self._bg.append(p)
		return p

	# ---- logs and teardown ----

	def _log_tail(self, m, lines):
		try:
			with open(m.log_path, "rb") as f:
				f.seek(0, os.SEEK_END)
				f.seek(max(0, f.tell() - 200 * lines))
				text = f.read().decode(errors="replace")
		except OSError:
			return ""
		return "\n".join(text.splitlines()[-lines:])

	def dump_logs(self, lines=40, file=None):
		file = file or sys.stderr
		for m in self.members:
			state = "running" if m.running else (
				"exited rc %s" % m.proc.returncode if m.proc else "never started")
			print("---- %s (%s, %s) last %d lines of %s ----" %
			      (m.name, m.endpoint, state, lines, m.log_path), file=file)
			print(self._log_tail(m, lines), file=file)
		file.flush()

	def close(self, failed=False):
		if self._closed:
			return
		self._closed = True
		for p in self._bg:
			if p.poll() is None:
				p.kill()
			try:
				p.communicate(timeout=5)
			except (subprocess.TimeoutExpired, ValueError, OSError):
				pass
			_untrack(p)
		# keeld members stop gracefully, so a sanitizer build gets to report leaks at exit;
		# etcd is killed (its graceful stop waits for a leader handover, seconds each).
		graceful = os.path.basename(self.binary) != "etcd"
		for i in range(self.size):
			if self.members[i].running and not graceful:
				self.members[i].proc.send_signal(signal.SIGKILL)
		for i in range(self.size):
			if graceful:
				self.stop(i, timeout=10)
			self.kill(i)
		reports = self.sanitizer_reports()
		if failed or reports:
			self.dump_logs()
		if self.keep:
			print("cluster dir kept: %s" % self.dir, file=sys.stderr)
		else:
			shutil.rmtree(self.dir, ignore_errors=True)
			with _live_lock:
				_dirs.discard(self.dir)

		if reports:
			raise ClusterError("sanitizer reports in member logs: " + "; ".join(reports))

	def sanitizer_reports(self):
		"""The first AddressSanitizer/LeakSanitizer/UBSan line of each member log, if any:
		a test on a sanitizer build fails on them even when its own checks passed."""
		found = []
		for m in self.members:
			try:
				with open(m.log_path, errors="replace") as f:
					for line in f:
						if ("ERROR: AddressSanitizer" in line or
						    "ERROR: LeakSanitizer" in line or "runtime error:" in line):
							found.append("%s: %s" % (m.name, line.strip()))
							break
			except OSError:
				pass
		return found

	def __enter__(self):
		return self

	def __exit__(self, exc_type, exc, tb):
		self.close(failed=exc_type is not None and
			   not issubclass(exc_type, (KeyboardInterrupt, ClusterError)))
		return False

	def __del__(self):
		try:
			self.close()
		except Exception:
			pass


class _BindRace(Exception):
	pass
