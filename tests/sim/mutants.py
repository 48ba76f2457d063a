#!/usr/bin/env python3
# tests/sim/mutants.py — how strong is the simulator? Breaks one Raft rule at a time in a
# temporary copy of raft/ (never the tree), builds keel-sim against it, reports the first
# failing seed per cluster size. A mutant whose text is gone from the core is skipped.
#   usage: tests/sim/mutants.py [--seeds 1-1000] [--nodes 3,5,7] [--list] [NAME ...]
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

# name: (file in raft/, exact text, replacement, the rule it breaks)
MUTANTS = {
    "vote-ignores-log": ("raft.c",
        "if (can_vote && log_is_up_to_date(&r->log, m->index, m->log_term)) {",
        "if (can_vote) {", "votes only for candidates with an up-to-date log"),
    "vote-twice": ("raft.c", "bool can_vote = r->vote == m->from ||",
        "bool can_vote = true ||", "one vote per term"),
    "quorum-even": ("raft.c", "return conf(r)->n_voters / 2 + 1;",
        "return (conf(r)->n_voters + 1) / 2;", "a quorum is a strict majority"),
    "commit-prev-term": ("log.c",
        "log_term_or_zero(l, max_index) == term) {", "log_term_or_zero(l, max_index) <= term) {",
        "commit only through an entry of the current term (Figure 8)"),
    "heartbeat-commit-uncapped": ("raft.c", "m->commit = min_u64(pr->match, r->log.committed);",
        "m->commit = r->log.committed;", "never tell a follower to commit past its match"),
    "read-no-heartbeat": ("raft.c",
        "if (read_req_add(r, m, from) == RAFT_OK)\n\t\tbcast_heartbeat(r, &m->context);",
        "respond_read(r, from, r->log.committed, &m->context);",
        "ReadIndex confirms leadership with a heartbeat round"),
    "read-before-term-commit": ("raft.c", "\tif (!committed_in_term(r)) {\n\t\t/* a new leader",
        "\tif (0) {\n\t\t/* a new leader", "no reads before the leader commits in its term"),
    "read-index-minus-one": ("raft.c", "q->index = r->log.committed;",
        "q->index = r->log.committed - (r->log.committed > 0);", "read index is the commit index"),
    "lease-always": ("raft.c",
        "return stamp > 0 && r->ticks + 1 < stamp + (uint64_t)r->election_timeout;",
        "return stamp > 0;", "a lease expires"),
    "lease-no-vote-guard": ("raft.c",
        "\tif (r->lead != RAFT_NONE && r->election_elapsed < r->election_timeout)\n\t\treturn true;\n",
        "", "followers that hear a leader ignore votes (lease safety)"),
    "conf-no-pending-check": ("raft.c",
        "if (r->pending_conf_index > r->log.committed)\n\t\t\treturn RAFT_ERR_CONF_CHANGE_PENDING;",
        "", "one membership change at a time"),
    "conf-truncate-no-revert": ("raft.c",
        "\tconf_history_truncate(&r->confs, r->log.u_ents[r->log.u_n - n]->index);\n", "",
        "a truncated conf change no longer applies"),
    "applied-conf-is-tail": ("node.c", "*c = *conf_history_at(&n->confs, n->log.applied);",
        "*c = *conf_history_current(&n->confs);", "snapshots record the applied membership"),
    "snapshot-conf-not-reset": ("raft.c", "\tconf_history_reset(&r->confs, idx, &c);\n\treturn 1;",
        "\treturn 1;", "a snapshot brings its membership"),
    "hs-drops-vote": ("node.c", ".vote = n->vote,", ".vote = 0,", "the vote is persisted"),
    "no-step-down": ("raft.c",
        "become_follower(r, m->term, from_leader ? m->from : RAFT_NONE);\n\t\treturn 0;",
        "if (r->state != RAFT_LEADER) become_follower(r, m->term, from_leader ? m->from : RAFT_NONE);\n\t\treturn 0;",
        "a leader steps down on a higher term"),
    "stale-append-accepted": ("raft.c", "\tif (m->term < r->term) {\n\t\tif (m->type == RAFT_MSG_HEARTBEAT",
        "\tif (m->term < r->term && m->type != RAFT_MSG_APP) {\n\t\tif (m->type == RAFT_MSG_HEARTBEAT",
        "messages from older terms are ignored"),
    # Hard or impossible to reach with this core (see README).
    "follower-commit-unchecked": ("raft.c", "log_commit_to(&r->log, min_u64(m->commit, last_new));",
        "log_commit_to(&r->log, min_u64(m->commit, log_last_index(&r->log)));",
        "a follower commits only what it matched (unreachable with exact backtracking)"),
    "snapshot-stale-accepted": ("raft.c", "if (idx <= r->log.committed)\n\t\treturn 0;",
        "if (idx < r->log.applied)\n\t\treturn 0;", "snapshots at or below commit are ignored"),
    "append-past-committed": ("raft.c", "if (ci != 0 && ci <= r->log.committed)\n\t\t\treturn;",
        "if (0)\n\t\t\treturn;", "defensive guard (equivalent)"),
}

SIM_SOURCES = ["check.c", "client.c", "cluster.c", "confs.c", "demo.c", "faults.c",
               "main.c", "member.c", "net.c", "node.c", "params.c", "ready.c", "sm.c", "trace.c"]


def build(root, work, name):
    """Copies raft/, applies the mutant, compiles keel-sim; returns its path or None."""
    src = os.path.join(work, name)
    shutil.copytree(os.path.join(root, "raft"), os.path.join(src, "raft"))
    if name != "none":
        fname, old, new, _ = MUTANTS[name]
        path = os.path.join(src, "raft", fname)
        text = open(path).read()
        if text.count(old) != 1:
            return None
        open(path, "w").write(text.replace(old, new))
    proto = os.path.join(work, "proto")
    exe = os.path.join(src, "keel-sim")
    sim = os.path.join(root, "tests", "sim")
    cmd = ["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-fno-strict-aliasing", "-w",
           "-I" + os.path.join(src, "raft"), "-I" + proto]
    cmd += [os.path.join(src, "raft", f) for f in sorted(os.listdir(os.path.join(src, "raft")))
            if f.endswith(".c")]
    cmd += [os.path.join(proto, "raft.pb-c.c")] + [os.path.join(sim, f) for f in SIM_SOURCES]
    cmd += ["-lprotobuf-c", "-o", exe]
    subprocess.run(cmd, check=True)
    return exe


def first_failure(exe, nodes, seeds):
    out = subprocess.run([exe, "--nodes", str(nodes), "--seeds", seeds],
                         capture_output=True, text=True).stdout
    m = re.search(r"FAILED: seed (\d+).*?invariant: ([^\n]+)", out, re.S)
    return (int(m.group(1)), m.group(2).strip()) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="1-1000")
    ap.add_argument("--nodes", default="3,5,7")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    if a.list:
        for k, v in MUTANTS.items():
            print(f"{k:28} breaks: {v[3]}")
        return 0
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    names = a.names or ["none"] + list(MUTANTS)
    with tempfile.TemporaryDirectory(prefix="keel-mutants-") as work:
        os.mkdir(os.path.join(work, "proto"))
        subprocess.run(["protoc-c", "--proto_path=" + os.path.join(root, "proto"),
                        "--c_out=" + os.path.join(work, "proto"), "raft.proto"], check=True)
        for name in names:
            exe = build(root, work, name)
            if not exe:
                print(f"{name:28} skipped: its text is no longer in raft/")
                continue
            results = []
            for n in a.nodes.split(","):
                f = first_failure(exe, int(n), a.seeds)
                results.append(f"n={n}: " + (f"seed {f[0]} ({f[1]})" if f else "survived"))
            print(f"{name:28} " + "; ".join(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
