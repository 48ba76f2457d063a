#!/usr/bin/env python3
# tests/keelctl/test_flags.py — keelctl's command tree against etcdctl 3.4's, from both tools'
# --help: for every command, the same usage line, subcommands and flags (name, shorthand, type
# and default). Descriptions are Keel's own words: compared only to check none was copied.
# Needs no cluster; exits 77 when etcdctl is not installed.
import argparse
import os
import re
import shutil
import subprocess
import sys

HEADING = re.compile(r"^([A-Z][A-Z ]*):$")
# pflag's usage line: "  -w, --write-out=\"simple\"\t\tdescription" (shorthand optional);
# a bool shows its default as [=false], a string quoted, anything else bare.
FLAG = re.compile(r"^  (?:-(\w), |    )--([\w-]+)(\[=[^\]]*\]|=\S*)\t+(.*)$")


def help_text(tool, path):
	env = {k: v for k, v in os.environ.items()
	       if not k.startswith("ETCDCTL_") and not k.startswith("KEELCTL_")}
	env["ETCDCTL_API"] = "3"
	p = subprocess.run([tool] + path + ["--help"], env=env, capture_output=True, text=True,
			   timeout=30)
	if p.returncode != 0:
		raise ValueError("%s %s --help: exit %d: %s" % (tool, " ".join(path), p.returncode,
								 p.stderr.strip()))
	return p.stdout


def parse(text, prog):
	"""The interface in one --help text: {"name", "usage", "version", "api", "commands",
	"flags", "globals"} plus the descriptions (texts) in reading order."""
	sec, cur = {}, None
	for line in text.split("\n"):
		m = HEADING.match(line)
		if m:
			cur = m.group(1)
			sec[cur] = []
		elif cur is not None and line != "":
			sec[cur].append(line)
	for need in ("NAME", "USAGE"):
		if len(sec.get(need, [])) != 1:
			raise ValueError("no single %s line in:\n%s" % (need, text))
	name, _, short = sec["NAME"][0].strip("\t").partition(" - ")
	usage = sec["USAGE"][0].strip("\t")
	if not usage.startswith(prog + " "):
		raise ValueError("usage line %r does not start with %s" % (usage, prog))
	texts = [short] + [ln.strip("\t") for ln in sec.get("DESCRIPTION", [])]
	commands = set()
	for ln in sec.get("COMMANDS", []):
		cells = [c for c in ln.split("\t") if c]
		commands.add(cells[0])
		texts += cells[1:]
	out = {"name": name if name != prog else "<prog>", "usage": usage[len(prog) + 1:],
	       "version": sec.get("VERSION"), "api": sec.get("API VERSION"),
	       "commands": sorted(commands)}
	for key, heading in (("flags", "OPTIONS"), ("globals", "GLOBAL OPTIONS")):
		flags = {}
		for ln in sec.get(heading, []):
			m = FLAG.match(ln)
			if not m:
				raise ValueError("cannot parse %s line %r" % (heading, ln))
			short_, fname, default, desc = m.groups()
			flags[fname] = (short_, default)
			texts.append(desc)
		out[key] = flags
	return out, texts


def command_paths(etcdctl):
	"""Every command etcdctl lists, with the groups its two-word paths imply."""
	root, _ = parse(help_text(etcdctl, []), "etcdctl")
	paths = set()
	for c in root["commands"]:
		words = tuple(c.split(" "))
		paths.add(words)
		if len(words) > 1:
			paths.add(words[:1])
	return [[]] + [list(p) for p in sorted(paths)]


def compare(etcdctl, keelctl, path):
	"""Problems found for one command path, as strings."""
	label = " ".join(path) or "(root)"
	try:
		ref, ref_texts = parse(help_text(etcdctl, path), "etcdctl")
		got, got_texts = parse(help_text(keelctl, path), "keelctl")
	except (ValueError, OSError, subprocess.TimeoutExpired) as e:
		return ["%s: %s" % (label, e)]
	bad = []
	for key in ("name", "usage", "version", "api", "commands"):
		if ref[key] != got[key]:
			bad.append("%s: %s differs: etcdctl %r, keelctl %r" % (label, key, ref[key],
										 got[key]))
	for key in ("flags", "globals"):
		for fname in sorted(set(ref[key]) | set(got[key])):
			a, b = ref[key].get(fname), got[key].get(fname)
			if a != b:
				bad.append("%s: %s --%s: etcdctl (shorthand, default) %r, keelctl %r"
					   % (label, key, fname, a, b))
	# The words are ours: a description of three words or more equal to etcdctl's
	# was copied, not written.
	mine = {t for t in got_texts if len(t.split()) >= 3}
	for t in ref_texts:
		if t in mine:
			bad.append("%s: description copied from etcdctl: %r" % (label, t))
	return bad


def main():
	ap = argparse.ArgumentParser()
	ap.add_argument("--keelctl", required=True)
	opts = ap.parse_args()
	etcdctl = shutil.which("etcdctl")
	if not etcdctl:
		print("etcdctl not installed: skipping")
		return 77
	keelctl = os.path.abspath(opts.keelctl)
	paths = command_paths(etcdctl)
	# A parse that finds nothing would pass every comparison: pin what etcdctl 3.4 has.
	get, _ = parse(help_text(etcdctl, ["get"]), "etcdctl")
	if ["lease", "grant"] not in paths or get["flags"].get("prefix") != (None, "[=false]") \
	   or get["globals"].get("write-out") != ("w", '="simple"'):
		print("FAIL: etcdctl's --help did not parse as expected")
		return 1
	fails = 0
	for path in paths:
		bad = compare(etcdctl, keelctl, path)
		print("%s %s" % ("FAIL" if bad else "ok  ", " ".join(path) or "(root)"))
		for b in bad:
			print("   " + b)
		fails += len(bad)
	print("%d commands, %d problems" % (len(paths), fails))
	return 1 if fails else 0


if __name__ == "__main__":
	sys.exit(main())
