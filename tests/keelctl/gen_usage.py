#!/usr/bin/env python3
# tests/keelctl/gen_usage.py — prints keelctl's command table (for cli/keelctl.c, between the
# "generated" markers) from the installed etcdctl 3.4's --help output, so usage texts match.
# Run by hand when the reference etcdctl changes; never run by the test suite.
import os
import re
import subprocess
import sys

ENV = dict(os.environ, ETCDCTL_API="3")
GLOBALS = None


def help_of(path):
	out = subprocess.run(["etcdctl"] + path + ["--help"], env=ENV, capture_output=True,
			     text=True).stdout
	sec, cur = {}, None
	for line in out.split("\n"):
		if re.match(r"^[A-Z ]+:$", line):
			cur = line[:-1]
			sec[cur] = []
		elif cur is not None and line != "":
			sec[cur].append(line)
	return sec


FLAG_RE = re.compile(r'^  (?:-(\w), |    )--([\w-]+)(\[=([^\]]*)\]|=(.*?))\t+(.*)$')


def parse_flags(lines):
	flags = []
	for l in lines:
		m = FLAG_RE.match(l)
		if not m:
			sys.exit("cannot parse flag line %r" % l)
		short, name, _whole, bdef, vdef, usage = m.groups()
		if bdef is not None:
			typ, d = "CTL_FLAG_BOOL", bdef
		elif vdef.startswith('"'):
			typ, d = "CTL_FLAG_STRING", vdef[1:-1]
		elif vdef.startswith("["):
			typ, d = "CTL_FLAG_STRINGS", vdef
		elif re.match(r"^-?[0-9.]+(ns|us|ms|s|m|h)+$", vdef) or vdef == "0s":
			typ, d = "CTL_FLAG_DURATION", vdef
		elif re.match(r"^-?[0-9]+$", vdef):
			typ, d = "CTL_FLAG_INT", vdef
		else:
			typ, d = "CTL_FLAG_STRING", vdef   # printed unquoted: a custom type
			typ = "CTL_FLAG_OTHER"
		flags.append((name, short, typ, d, usage))
	return flags


def cstr(s):
	return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t") \
		.replace("\n", "\\n") + '"'


def cwrap(s, indent, first=0):
	"""s as C string literal(s), split so every line fits in 100 columns (tabs = 8)."""
	width = 100 - 8 * indent - 2 - first
	out, cur = [], ""
	for ch in s:
		if len(cstr(cur + ch)) > width:
			out.append(cstr(cur))
			cur = ""
			width = 100 - 8 * indent - 2 - first
		cur += ch
	out.append(cstr(cur))
	return ("\n" + "\t" * indent + " " * first).join(out)


def main():
	root = help_of([])
	paths = []
	for l in root["COMMANDS"]:
		name = l.strip("\t").split("\t")[0]
		paths.append(name.split(" "))
	groups = []
	for p in paths:
		if len(p) == 2 and [p[0]] not in groups:
			groups.append([p[0]])
	allp = sorted(paths + groups, key=lambda p: " ".join(p))
	std = parse_flags(help_of(["get"])["GLOBAL OPTIONS"])
	stdnames = {f[0] for f in std}
	out = []
	entries = []

	def flagtab(ident, flags):
		out.append("static const ctl_flag_spec_t %s[] = {" % ident)
		for name, short, typ, d, usage in flags:
			out.append("\t{%s, %s, %s, %s,\n\t %s}," % (cstr(name),
				"'%s'" % short if short else "0", typ, cstr(d), cwrap(usage, 1, 1)))
		out.append("\t{NULL, 0, 0, NULL, NULL},\n};")

	flagtab("ctl_global_flags", std)
	for p in allp:
		h = help_of(p)
		ident = "f_" + "_".join(p).replace("-", "_")
		nm = h["NAME"][0].strip("\t")
		path, short = nm.split(" - ", 1)
		use = h["USAGE"][0].strip("\t")
		assert use.startswith("etcdctl ")
		use = use[len("etcdctl "):]
		desc = "\n".join(l[1:] for l in h.get("DESCRIPTION", []))
		flagtab(ident, parse_flags(h.get("OPTIONS", [])))
		inherited = parse_flags(h.get("GLOBAL OPTIONS", []))
		extra = [f for f in inherited if f[0] not in stdnames]
		xident = "NULL"
		if extra:
			xident = ident + "_inh"
			flagtab(xident, extra)
		entries.append("\t{%s,\n\t %s,\n\t %s,\n\t %s,\n\t %s, %s, %s}," % (cstr(path),
			cwrap(use, 1, 1), cwrap(short, 1, 1), cwrap(desc, 1, 1) if desc else "NULL",
			ident, xident, "true" if "COMMANDS" in h else "false"))
	out.append("static const ctl_cmd_spec_t ctl_cmds[] = {")
	out += entries
	out.append("};")
	print("\n".join(out))


main()
