/* cli/keelctl.c — keelctl's frame: etcdctl's command tree and usage texts, pflag-style flag
 * parsing, the ETCDCTL_/KEELCTL_ environment, the lazily connected client, errors and the
 * dispatch to each command group. It never prints a command's results (print.c, ctl_*.c). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

/* ---- etcdctl's command tree -------------------------------------------------------- */
/* Hand-maintained: names, usage lines, shorthands, types and defaults are etcdctl's
 * interface (tests/keelctl/test_flags.py checks them); the descriptions are Keel's. */
static const ctl_flag_spec_t ctl_global_flags[] = {
	{"cacert", 0, CTL_FLAG_STRING, "",
	 "CA bundle that server certificates must chain to"},
	{"cert", 0, CTL_FLAG_STRING, "",
	 "TLS client certificate file"},
	{"command-timeout", 0, CTL_FLAG_DURATION, "5s",
	 "time limit of a short command, not counting the dial"},
	{"debug", 0, CTL_FLAG_BOOL, "false",
	 "turn on the client's debug logging"},
	{"dial-timeout", 0, CTL_FLAG_DURATION, "2s",
	 "time limit for opening a connection"},
	{"discovery-srv", 'd', CTL_FLAG_STRING, "",
	 "domain whose DNS SRV records list the cluster's endpoints"},
	{"discovery-srv-name", 0, CTL_FLAG_STRING, "",
	 "service name to look up in DNS SRV discovery"},
	{"endpoints", 0, CTL_FLAG_STRINGS, "[127.0.0.1:2379]",
	 "servers to talk to, host:port, comma separated"},
	{"hex", 0, CTL_FLAG_BOOL, "false",
	 "show keys and values in hexadecimal"},
	{"insecure-discovery", 0, CTL_FLAG_BOOL, "true",
	 "accept SRV records that point at plain-HTTP endpoints"},
	{"insecure-skip-tls-verify", 0, CTL_FLAG_BOOL, "false",
	 "do not verify the server's certificate (for testing only)"},
	{"insecure-transport", 0, CTL_FLAG_BOOL, "true",
	 "talk to the servers without TLS"},
	{"keepalive-time", 0, CTL_FLAG_DURATION, "2s",
	 "idle time before the connection is pinged"},
	{"keepalive-timeout", 0, CTL_FLAG_DURATION, "6s",
	 "time to wait for a ping's answer before dropping the connection"},
	{"key", 0, CTL_FLAG_STRING, "",
	 "private key of the TLS client certificate"},
	{"password", 0, CTL_FLAG_STRING, "",
	 "password to log in with (--user then holds the name only)"},
	{"user", 0, CTL_FLAG_STRING, "",
	 "log in as name, or name:password (asks for the password when it is missing)"},
	{"write-out", 'w', CTL_FLAG_STRING, "simple",
	 "output format: simple, json, fields, protobuf or table"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_alarm[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_alarm_disarm[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_alarm_list[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_auth[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_auth_disable[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_auth_enable[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_check[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_check_datascale[] = {
	{"auto-compact", 0, CTL_FLAG_BOOL, "false",
	 "compact to the latest revision when the check is done"},
	{"auto-defrag", 0, CTL_FLAG_BOOL, "false",
	 "defragment the storage when the check is done"},
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"load", 0, CTL_FLAG_STRING, "s",
	 "workload size: s, m, l or xl (small to extra large)"},
	{"prefix", 0, CTL_FLAG_STRING, "/etcdctl-check-datascale/",
	 "key prefix that the check writes under"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_check_perf[] = {
	{"auto-compact", 0, CTL_FLAG_BOOL, "false",
	 "compact to the latest revision when the check is done"},
	{"auto-defrag", 0, CTL_FLAG_BOOL, "false",
	 "defragment the storage when the check is done"},
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"load", 0, CTL_FLAG_STRING, "s",
	 "workload size: s, m, l or xl (small to extra large)"},
	{"prefix", 0, CTL_FLAG_STRING, "/etcdctl-check-perf/",
	 "key prefix that the check writes under"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_compaction[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"physical", 0, CTL_FLAG_BOOL, "false",
	 "wait until the old revisions are gone from the backend"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_completion[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_completion_bash[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"no-descriptions", 0, CTL_FLAG_BOOL, "false",
	 "leave command descriptions out of the completions"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_completion_fish[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"no-descriptions", 0, CTL_FLAG_BOOL, "false",
	 "leave command descriptions out of the completions"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_completion_powershell[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"no-descriptions", 0, CTL_FLAG_BOOL, "false",
	 "leave command descriptions out of the completions"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_completion_zsh[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"no-descriptions", 0, CTL_FLAG_BOOL, "false",
	 "leave command descriptions out of the completions"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_defrag[] = {
	{"cluster", 0, CTL_FLAG_BOOL, "false",
	 "use every member in the cluster's member list as an endpoint"},
	{"data-dir", 0, CTL_FLAG_STRING, "",
	 "defragment this data directory directly (its server must be stopped)"},
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_del[] = {
	{"from-key", 0, CTL_FLAG_BOOL, "false",
	 "delete every key from the given one upward, in byte order"},
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"prefix", 0, CTL_FLAG_BOOL, "false",
	 "delete every key that starts with the given key"},
	{"prev-kv", 0, CTL_FLAG_BOOL, "false",
	 "print the deleted key-value pairs"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_elect[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"listen", 'l', CTL_FLAG_BOOL, "false",
	 "only watch the election: print each new leader's proposal"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_endpoint[] = {
	{"cluster", 0, CTL_FLAG_BOOL, "false",
	 "use every member in the cluster's member list as an endpoint"},
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_endpoint_hashkv[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"rev", 0, CTL_FLAG_INT, "0",
	 "hash the history up to this revision only (0: all of it)"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_endpoint_hashkv_inh[] = {
	{"cluster", 0, CTL_FLAG_BOOL, "false",
	 "use every member in the cluster's member list as an endpoint"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_endpoint_health[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_endpoint_health_inh[] = {
	{"cluster", 0, CTL_FLAG_BOOL, "false",
	 "use every member in the cluster's member list as an endpoint"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_endpoint_status[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_endpoint_status_inh[] = {
	{"cluster", 0, CTL_FLAG_BOOL, "false",
	 "use every member in the cluster's member list as an endpoint"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_get[] = {
	{"consistency", 0, CTL_FLAG_STRING, "l",
	 "l for a linearizable read, s for a serializable one"},
	{"from-key", 0, CTL_FLAG_BOOL, "false",
	 "read every key from the given one upward, in byte order"},
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"keys-only", 0, CTL_FLAG_BOOL, "false",
	 "print keys without their values"},
	{"limit", 0, CTL_FLAG_INT, "0",
	 "return at most this many keys (0: no limit)"},
	{"order", 0, CTL_FLAG_STRING, "",
	 "ASCEND or DESCEND (ascending when unset)"},
	{"prefix", 0, CTL_FLAG_BOOL, "false",
	 "read every key that starts with the given key"},
	{"print-value-only", 0, CTL_FLAG_BOOL, "false",
	 "print only the values (simple format)"},
	{"rev", 0, CTL_FLAG_INT, "0",
	 "read the store as it was at this revision (0: latest)"},
	{"sort-by", 0, CTL_FLAG_STRING, "",
	 "sort by CREATE, KEY, MODIFY, VALUE or VERSION"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_help[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_lease[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_lease_grant[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_lease_keep_alive[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"once", 0, CTL_FLAG_BOOL, "false",
	 "renew a single time and exit"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_lease_list[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_lease_revoke[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_lease_timetolive[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"keys", 0, CTL_FLAG_BOOL, "false",
	 "also list the keys attached to the lease"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_lock[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"ttl", 0, CTL_FLAG_INT, "10",
	 "session TTL in seconds: the lock is lost if keelctl stops renewing it that long"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_make_mirror[] = {
	{"dest-cacert", 0, CTL_FLAG_STRING, "",
	 "CA bundle that the destination's certificates must chain to"},
	{"dest-cert", 0, CTL_FLAG_STRING, "",
	 "TLS client certificate for the destination"},
	{"dest-insecure-transport", 0, CTL_FLAG_BOOL, "true",
	 "talk to the destination without TLS"},
	{"dest-key", 0, CTL_FLAG_STRING, "",
	 "private key of the destination's client certificate"},
	{"dest-prefix", 0, CTL_FLAG_STRING, "",
	 "write the mirrored keys under this prefix instead of the source one"},
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"no-dest-prefix", 0, CTL_FLAG_BOOL, "false",
	 "write the mirrored keys with the source prefix stripped"},
	{"prefix", 0, CTL_FLAG_STRING, "",
	 "mirror only the keys under this prefix"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_member[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_member_add[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"learner", 0, CTL_FLAG_BOOL, "false",
	 "add the member as a non-voting learner"},
	{"peer-urls", 0, CTL_FLAG_STRING, "",
	 "the new member's peer URLs, comma separated"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_member_list[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_member_promote[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_member_remove[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_member_update[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"peer-urls", 0, CTL_FLAG_STRING, "",
	 "the member's new peer URLs, comma separated"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_migrate[] = {
	{"data-dir", 0, CTL_FLAG_STRING, "",
	 "data directory of the stopped server"},
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"no-ttl", 0, CTL_FLAG_BOOL, "false",
	 "drop TTLs instead of turning them into leases"},
	{"transformer", 0, CTL_FLAG_STRING, "",
	 "program that converts each v2 key instead of the built-in conversion"},
	{"wal-dir", 0, CTL_FLAG_STRING, "",
	 "WAL directory, when it is not inside the data directory"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_move_leader[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_put[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"ignore-lease", 0, CTL_FLAG_BOOL, "false",
	 "keep the key's current lease"},
	{"ignore-value", 0, CTL_FLAG_BOOL, "false",
	 "keep the key's current value"},
	{"lease", 0, CTL_FLAG_STRING, "0",
	 "attach the key to this lease (hexadecimal ID)"},
	{"prev-kv", 0, CTL_FLAG_BOOL, "false",
	 "print the key-value pair as it was before the write"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_role[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_role_add[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_role_delete[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_role_get[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_role_grant_permission[] = {
	{"from-key", 0, CTL_FLAG_BOOL, "false",
	 "cover every key from the given one upward"},
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"prefix", 0, CTL_FLAG_BOOL, "false",
	 "cover every key under the given prefix"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_role_list[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_role_revoke_permission[] = {
	{"from-key", 0, CTL_FLAG_BOOL, "false",
	 "the permission covers every key from the given one upward"},
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"prefix", 0, CTL_FLAG_BOOL, "false",
	 "the permission covers a prefix"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_snapshot[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_snapshot_restore[] = {
	{"data-dir", 0, CTL_FLAG_STRING, "",
	 "data directory to create (<name>.etcd when unset)"},
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"initial-advertise-peer-urls", 0, CTL_FLAG_STRING, "http://localhost:2380",
	 "this member's peer URLs as the new cluster will know them"},
	{"initial-cluster", 0, CTL_FLAG_STRING, "default=http://localhost:2380",
	 "the new cluster's members, as name=peer-URL pairs"},
	{"initial-cluster-token", 0, CTL_FLAG_STRING, "etcd-cluster",
	 "token that keeps the new cluster's IDs apart from other clusters'"},
	{"name", 0, CTL_FLAG_STRING, "default",
	 "this member's name"},
	{"skip-hash-check", 0, CTL_FLAG_BOOL, "false",
	 "do not check the snapshot's hash (needed for a db file copied out of a data directory)"},
	{"wal-dir", 0, CTL_FLAG_STRING, "",
	 "WAL directory to create (inside --data-dir when unset)"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_snapshot_save[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_snapshot_status[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_txn[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"interactive", 'i', CTL_FLAG_BOOL, "false",
	 "prompt for each part of the transaction"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_user[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_user_add[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"interactive", 0, CTL_FLAG_BOOL, "true",
	 "ask for the password on the terminal (false: read it from stdin)"},
	{"new-user-password", 0, CTL_FLAG_STRING, "",
	 "the new user's password, given on the command line"},
	{"no-password", 0, CTL_FLAG_BOOL, "false",
	 "create the user without a password (for certificate CN login only)"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_user_delete[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_user_get[] = {
	{"detail", 0, CTL_FLAG_BOOL, "false",
	 "also show each role's permissions"},
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_user_grant_role[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_user_list[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_user_passwd[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"interactive", 0, CTL_FLAG_BOOL, "true",
	 "ask for the password on the terminal (false: read it from stdin)"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_user_revoke_role[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_version[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_flag_spec_t f_watch[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false",
	 "show this help"},
	{"interactive", 'i', CTL_FLAG_BOOL, "false",
	 "read watch and progress commands from stdin"},
	{"prefix", 0, CTL_FLAG_BOOL, "false",
	 "watch every key that starts with the given key"},
	{"prev-kv", 0, CTL_FLAG_BOOL, "false",
	 "include each key's value before the event"},
	{"rev", 0, CTL_FLAG_INT, "0",
	 "start at this revision, replaying the history since (0: now)"},
	{NULL, 0, 0, NULL, NULL},
};
static const ctl_cmd_spec_t ctl_cmds[] = {
	{"alarm",
	 "alarm <subcommand> [flags]",
	 "Inspect and clear the cluster's alarms",
	 NULL,
	 f_alarm, NULL, true},
	{"alarm disarm",
	 "alarm disarm [flags]",
	 "Clear every raised alarm",
	 NULL,
	 f_alarm_disarm, NULL, false},
	{"alarm list",
	 "alarm list [flags]",
	 "Show the raised alarms",
	 NULL,
	 f_alarm_list, NULL, false},
	{"auth",
	 "auth <enable or disable> [flags]",
	 "Turn authentication on or off",
	 NULL,
	 f_auth, NULL, true},
	{"auth disable",
	 "auth disable [flags]",
	 "Turn authentication off",
	 NULL,
	 f_auth_disable, NULL, false},
	{"auth enable",
	 "auth enable [flags]",
	 "Turn authentication on",
	 NULL,
	 f_auth_enable, NULL, false},
	{"check",
	 "check <subcommand> [flags]",
	 "Measure the cluster's performance and memory use",
	 NULL,
	 f_check, NULL, true},
	{"check datascale",
	 "check datascale [options] [flags]",
	 "Measure a server's memory use while it holds a given data set",
	 "The check runs against the first endpoint (localhost when none is given).",
	 f_check_datascale, NULL, false},
	{"check perf",
	 "check perf [options] [flags]",
	 "Measure the cluster's throughput and latency under a write load",
	 NULL,
	 f_check_perf, NULL, false},
	{"compaction",
	 "compaction [options] <revision> [flags]",
	 "Discard the key history older than a revision",
	 NULL,
	 f_compaction, NULL, false},
	{"completion",
	 "completion [flags]",
	 "Print a shell completion script",
	 NULL,
	 f_completion, NULL, true},
	{"completion bash",
	 "completion bash",
	 "Print the completion script for bash",
	 NULL,
	 f_completion_bash, NULL, false},
	{"completion fish",
	 "completion fish [flags]",
	 "Print the completion script for fish",
	 NULL,
	 f_completion_fish, NULL, false},
	{"completion powershell",
	 "completion powershell [flags]",
	 "Print the completion script for PowerShell",
	 NULL,
	 f_completion_powershell, NULL, false},
	{"completion zsh",
	 "completion zsh [flags]",
	 "Print the completion script for zsh",
	 NULL,
	 f_completion_zsh, NULL, false},
	{"defrag",
	 "defrag [flags]",
	 "Give the free space in members' storage back to the file system",
	 NULL,
	 f_defrag, NULL, false},
	{"del",
	 "del [options] <key> [range_end] [flags]",
	 "Delete a key, or the keys in [key, range_end)",
	 NULL,
	 f_del, NULL, false},
	{"elect",
	 "elect <election-name> [proposal] [flags]",
	 "Campaign in a leader election, or watch one",
	 "With a proposal, keelctl campaigns in the named election, prints the proposal\nonce it "
	 "is the leader and keeps the leadership until it is interrupted.\nWith --listen it "
	 "campaigns for nothing and prints each leader's proposal.",
	 f_elect, NULL, false},
	{"endpoint",
	 "endpoint <subcommand> [flags]",
	 "Check the endpoints' health, status and history hash",
	 NULL,
	 f_endpoint, NULL, true},
	{"endpoint hashkv",
	 "endpoint hashkv [flags]",
	 "Print each endpoint's hash of its key-value history",
	 NULL,
	 f_endpoint_hashkv, f_endpoint_hashkv_inh, false},
	{"endpoint health",
	 "endpoint health [flags]",
	 "Report whether each endpoint serves requests",
	 NULL,
	 f_endpoint_health, f_endpoint_health_inh, false},
	{"endpoint status",
	 "endpoint status [flags]",
	 "Print each endpoint's server status",
	 "The simple format prints one comma-separated line per endpoint with:\nendpoint, ID, "
	 "version, db size, is leader, is learner, raft term,\nraft index, raft applied index, "
	 "errors.",
	 f_endpoint_status, f_endpoint_status_inh, false},
	{"get",
	 "get [options] <key> [range_end] [flags]",
	 "Read a key, or the keys in [key, range_end)",
	 NULL,
	 f_get, NULL, false},
	{"help",
	 "help [command] [flags]",
	 "Show the help of a command",
	 "keelctl help <command> [subcommand] prints that command's usage and flags.",
	 f_help, NULL, false},
	{"lease",
	 "lease <subcommand> [flags]",
	 "Grant, renew, inspect and revoke leases",
	 NULL,
	 f_lease, NULL, true},
	{"lease grant",
	 "lease grant <ttl> [flags]",
	 "Create a lease with a TTL in seconds",
	 NULL,
	 f_lease_grant, NULL, false},
	{"lease keep-alive",
	 "lease keep-alive [options] <leaseID> [flags]",
	 "Renew a lease until interrupted",
	 NULL,
	 f_lease_keep_alive, NULL, false},
	{"lease list",
	 "lease list [flags]",
	 "Show the IDs of all live leases",
	 NULL,
	 f_lease_list, NULL, false},
	{"lease revoke",
	 "lease revoke <leaseID> [flags]",
	 "Revoke a lease, deleting its keys",
	 NULL,
	 f_lease_revoke, NULL, false},
	{"lease timetolive",
	 "lease timetolive <leaseID> [options] [flags]",
	 "Show a lease's granted and remaining TTL",
	 NULL,
	 f_lease_timetolive, NULL, false},
	{"lock",
	 "lock <lockname> [exec-command arg1 arg2 ...] [flags]",
	 "Hold a distributed lock",
	 "Waits until the named lock is free, takes it and prints the key that holds it,\nthen "
	 "keeps it until interrupted. Given a command, runs it while holding the lock,\nwith "
	 "ETCD_LOCK_KEY and ETCD_LOCK_REV in its environment, and releases the lock\nwhen the "
	 "command exits.",
	 f_lock, NULL, false},
	{"make-mirror",
	 "make-mirror [options] <destination> [flags]",
	 "Copy keys to another cluster and keep them in sync",
	 NULL,
	 f_make_mirror, NULL, false},
	{"member",
	 "member <subcommand> [flags]",
	 "Add, remove, update and list cluster members",
	 NULL,
	 f_member, NULL, true},
	{"member add",
	 "member add <memberName> [options] [flags]",
	 "Add a member to the cluster",
	 NULL,
	 f_member_add, NULL, false},
	{"member list",
	 "member list [flags]",
	 "Show the cluster's members",
	 "The simple format prints one comma-separated line per member with:\nID, Status, Name, "
	 "Peer Addrs, Client Addrs, Is Learner.",
	 f_member_list, NULL, false},
	{"member promote",
	 "member promote <memberID> [flags]",
	 "Make a learner a voting member",
	 NULL,
	 f_member_promote, NULL, false},
	{"member remove",
	 "member remove <memberID> [flags]",
	 "Remove a member from the cluster",
	 NULL,
	 f_member_remove, NULL, false},
	{"member update",
	 "member update <memberID> [options] [flags]",
	 "Change a member's peer URLs",
	 NULL,
	 f_member_update, NULL, false},
	{"migrate",
	 "migrate [flags]",
	 "Convert a v2 store's keys into the v3 store",
	 NULL,
	 f_migrate, NULL, false},
	{"move-leader",
	 "move-leader <transferee-member-id> [flags]",
	 "Hand the leadership to another member",
	 NULL,
	 f_move_leader, NULL, false},
	{"put",
	 "put [options] <key> <value> (<value> can also be given from stdin) [flags]",
	 "Write a value to a key",
	 "The value comes from the command line or, when it is left out and --ignore-value\nis "
	 "not set, from stdin: `cat file | keelctl put key` stores the file.\nA value that "
	 "starts with '-' would be read as a flag; put \"--\" before it:\n`keelctl put key -- "
	 "-value`.",
	 f_put, NULL, false},
	{"role",
	 "role <subcommand> [flags]",
	 "Manage roles and their permissions",
	 NULL,
	 f_role, NULL, true},
	{"role add",
	 "role add <role name> [flags]",
	 "Create a role",
	 NULL,
	 f_role_add, NULL, false},
	{"role delete",
	 "role delete <role name> [flags]",
	 "Delete a role",
	 NULL,
	 f_role_delete, NULL, false},
	{"role get",
	 "role get <role name> [flags]",
	 "Show a role's permissions",
	 NULL,
	 f_role_get, NULL, false},
	{"role grant-permission",
	 "role grant-permission [options] <role name> <permission type> <key> [endkey] [flags]",
	 "Let a role read and/or write a key or range",
	 NULL,
	 f_role_grant_permission, NULL, false},
	{"role list",
	 "role list [flags]",
	 "List the roles",
	 NULL,
	 f_role_list, NULL, false},
	{"role revoke-permission",
	 "role revoke-permission <role name> <key> [endkey] [flags]",
	 "Take a key or range out of a role's permissions",
	 NULL,
	 f_role_revoke_permission, NULL, false},
	{"snapshot",
	 "snapshot <subcommand> [flags]",
	 "Save, restore and inspect backend snapshots",
	 NULL,
	 f_snapshot, NULL, true},
	{"snapshot restore",
	 "snapshot restore <filename> [options] [flags]",
	 "Build a new member's data directory from a snapshot file",
	 "Writes a fresh data directory and WAL holding the snapshot's keys, for a\nnew cluster "
	 "described by --initial-cluster, --initial-cluster-token and\nthis member's --name and "
	 "--initial-advertise-peer-urls. Restore the same\nfile once per member with the same "
	 "cluster flags: the members then start\nas a new cluster, with new IDs, that cannot "
	 "join the old one.",
	 f_snapshot_restore, NULL, false},
	{"snapshot save",
	 "snapshot save <filename> [flags]",
	 "Download a member's backend snapshot to a file",
	 NULL,
	 f_snapshot_save, NULL, false},
	{"snapshot status",
	 "snapshot status <filename> [flags]",
	 "Show a snapshot file's hash, revision, key count and size",
	 "The simple format prints one comma-separated line with:\nhash, revision, total keys, "
	 "total size.",
	 f_snapshot_status, NULL, false},
	{"txn",
	 "txn [options] [flags]",
	 "Run compares and requests as one atomic transaction",
	 "Reads the transaction from stdin in three parts, each ended by an empty line:\n  1. "
	 "compares, one a line: <target>(\"<key>\") <op> \"<value>\", where target is\n     "
	 "value, version, create, mod or lease, and op is =, !=, < or >;\n  2. requests run when "
	 "every compare holds: put, get or del lines, with\n     those commands' arguments and "
	 "flags;\n  3. requests run otherwise, in the same form.\nWith --interactive each part "
	 "is prompted for.",
	 f_txn, NULL, false},
	{"user",
	 "user <subcommand> [flags]",
	 "Manage users and the roles they hold",
	 NULL,
	 f_user, NULL, true},
	{"user add",
	 "user add <user name or user:password> [options] [flags]",
	 "Create a user",
	 NULL,
	 f_user_add, NULL, false},
	{"user delete",
	 "user delete <user name> [flags]",
	 "Delete a user",
	 NULL,
	 f_user_delete, NULL, false},
	{"user get",
	 "user get <user name> [options] [flags]",
	 "Show a user's roles",
	 NULL,
	 f_user_get, NULL, false},
	{"user grant-role",
	 "user grant-role <user name> <role name> [flags]",
	 "Give a role to a user",
	 NULL,
	 f_user_grant_role, NULL, false},
	{"user list",
	 "user list [flags]",
	 "List the users",
	 NULL,
	 f_user_list, NULL, false},
	{"user passwd",
	 "user passwd <user name> [options] [flags]",
	 "Change a user's password",
	 NULL,
	 f_user_passwd, NULL, false},
	{"user revoke-role",
	 "user revoke-role <user name> <role name> [flags]",
	 "Take a role away from a user",
	 NULL,
	 f_user_revoke_role, NULL, false},
	{"version",
	 "version [flags]",
	 "Print the client's version and API version",
	 NULL,
	 f_version, NULL, false},
	{"watch",
	 "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...] [flags]",
	 "Print the changes to a key, range or prefix as they happen",
	 "After \"--\", a command runs once per event, with ETCD_WATCH_REVISION,\n"
	 "ETCD_WATCH_EVENT_TYPE, ETCD_WATCH_KEY and ETCD_WATCH_VALUE in its environment.\n"
	 "ETCDCTL_WATCH_KEY and ETCDCTL_WATCH_RANGE_END may give the key and range end.",
	 f_watch, NULL, false},
};

#define PROG "keelctl"

/* ---- the tree ------------------------------------------------------------------------ */

static const ctl_cmd_spec_t ctl_root = {
	"", "[flags]", "command line client for etcd v3 and keeld clusters", NULL, NULL, NULL,
	true,
};
#define N_CMDS (sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))

/* Whether cmd is a direct child of parent (root: path without a space). */
static bool cmd_is_child(const ctl_cmd_spec_t *parent, const ctl_cmd_spec_t *cmd)
{
	size_t pl = strlen(parent->path);
	if (pl == 0)
		return strchr(cmd->path, ' ') == NULL;
	return strncmp(cmd->path, parent->path, pl) == 0 && cmd->path[pl] == ' ' &&
	       strchr(cmd->path + pl + 1, ' ') == NULL;
}

static const char *cmd_name(const ctl_cmd_spec_t *cmd)
{
	const char *sp = strrchr(cmd->path, ' ');
	return sp ? sp + 1 : cmd->path;
}

/* cobra with EnablePrefixMatching: an exact name, else a unique prefix. */
static const ctl_cmd_spec_t *cmd_child(const ctl_cmd_spec_t *parent, const char *word)
{
	const ctl_cmd_spec_t *found = NULL;
	int n = 0;
	for (size_t i = 0; i < N_CMDS; i++) {
		if (!cmd_is_child(parent, &ctl_cmds[i]))
			continue;
		if (strcmp(cmd_name(&ctl_cmds[i]), word) == 0)
			return &ctl_cmds[i];
		if (word[0] && strncmp(cmd_name(&ctl_cmds[i]), word, strlen(word)) == 0) {
			found = &ctl_cmds[i];
			n++;
		}
	}
	return n == 1 ? found : NULL;
}

/* ---- Go's text/tabwriter (minwidth 0, tabwidth 8, padding 1, padchar '\t') ------------- */

typedef struct tw_line {
	const char *cell[8];
	size_t len[8];
	int n;                       /* cells; the last one is not tab-terminated */
} tw_line_t;

static void tw_write_lines(FILE *f, tw_line_t *lines, int l0, int l1, const size_t *widths,
			   int nw)
{
	for (int i = l0; i < l1; i++) {
		tw_line_t *l = &lines[i];
		for (int j = 0; j < l->n; j++) {
			fwrite(l->cell[j], 1, l->len[j], f);
			if (j < nw && j < l->n - 1) {
				size_t cw = (widths[j] + 7) / 8 * 8;
				size_t pad = cw - l->len[j];
				for (size_t t = 0; t < (pad + 7) / 8; t++)
					fputc('\t', f);
			}
		}
		fputc('\n', f);
	}
}

static int tw_format(FILE *f, tw_line_t *lines, int pos, int l0, int l1, size_t *widths, int nw)
{
	int column = nw;
	for (int t = l0; t < l1; t++) {
		if (column >= lines[t].n - 1)
			continue;
		tw_write_lines(f, lines, pos, t, widths, nw);
		pos = t;
		l0 = t;
		size_t width = 0;
		for (; t < l1; t++) {
			if (column >= lines[t].n - 1)
				break;
			if (lines[t].len[column] + 1 > width)
				width = lines[t].len[column] + 1;
		}
		widths[nw] = width;
		pos = tw_format(f, lines, pos, l0, t, widths, nw + 1);
		l0 = t;
		t--;
	}
	tw_write_lines(f, lines, pos, l1, widths, nw);
	return l1;
}

/* Writes text (lines of tab-separated cells, each line ending in '\n') aligned. */
static void tw_print(FILE *f, const char *text)
{
	int cap = 16, n = 0;
	tw_line_t *lines = calloc((size_t)cap, sizeof(*lines));
	const char *p = text;
	while (*p && lines) {
		if (n == cap) {
			tw_line_t *nl = realloc(lines, (size_t)cap * 2 * sizeof(*lines));
			if (!nl)
				break;
			lines = nl;
			cap *= 2;
		}
		tw_line_t *l = &lines[n++];
		memset(l, 0, sizeof(*l));
		const char *s = p;
		for (;; p++) {
			if (*p == '\t' && l->n < 7) {
				l->cell[l->n] = s;
				l->len[l->n++] = (size_t)(p - s);
				s = p + 1;
			} else if (*p == '\n' || *p == '\0') {
				l->cell[l->n] = s;
				l->len[l->n++] = (size_t)(p - s);
				if (*p)
					p++;
				break;
			}
		}
	}
	if (lines) {
		size_t widths[8];
		tw_format(f, lines, 0, 0, n, widths, 0);
	}
	free(lines);
}

/* ---- usage ----------------------------------------------------------------------------- */

typedef struct sbuf {
	char *s;
	size_t len, cap;
} sbuf_t;

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (b->len + (size_t)n + 1 > b->cap) {
		size_t nc = (b->len + (size_t)n + 1) * 2;
		char *ns = realloc(b->s, nc);
		if (!ns)
			return;
		b->s = ns;
		b->cap = nc;
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void sb_quoted(sbuf_t *b, const char *s)
{
	sb_printf(b, "\"");
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			sb_printf(b, "\\%c", *s);
		else
			sb_printf(b, "%c", *s);
	}
	sb_printf(b, "\"");
}

static void usage_flag(sbuf_t *b, const ctl_flag_spec_t *f)
{
	if (f->shorthand)
		sb_printf(b, "  -%c, --%s", f->shorthand, f->name);
	else
		sb_printf(b, "      --%s", f->name);
	if (f->type == CTL_FLAG_BOOL) {
		sb_printf(b, "[=%s]", f->def);
	} else if (f->type == CTL_FLAG_STRING) {
		sb_printf(b, "=");
		sb_quoted(b, f->def);
	} else {
		sb_printf(b, "=%s", f->def);
	}
	sb_printf(b, "\t%s\n", f->usage);
}

/* pflag lists flags sorted by name; each table is kept sorted, but a merged list
 * (root: globals + help) needs merging. */
static void usage_flags_merged(sbuf_t *b, const ctl_flag_spec_t *a, const ctl_flag_spec_t *x)
{
	while ((a && a->name) || (x && x->name)) {
		if (!x || !x->name || (a && a->name && strcmp(a->name, x->name) < 0))
			usage_flag(b, a++);
		else
			usage_flag(b, x++);
	}
}

static const ctl_flag_spec_t root_help_flag[] = {
	{"help", 'h', CTL_FLAG_BOOL, "false", "show this help"},
	{NULL, 0, 0, NULL, NULL},
};

/* with_root_help: list the root's -h/--help, which cobra adds only once the root itself
 * runs (so not for the root usage that `help <unknown topic>` prints). */
static void usage_print(const ctl_cmd_spec_t *cmd, bool with_root_help)
{
	sbuf_t b = {0};
	bool root = cmd->path[0] == '\0';
	sb_printf(&b, "NAME:\n\t%s - %s\n\n", root ? PROG : cmd->path, cmd->short_desc);
	sb_printf(&b, "USAGE:\n\t%s %s\n", PROG, cmd->use);
	if (root)
		sb_printf(&b, "\nVERSION:\n\t%s\n", CTL_ETCDCTL_VERSION);
	if (cmd->group) {
		sb_printf(&b, "\nAPI VERSION:\n\t%s\n", CTL_API_VERSION);
		sb_printf(&b, "\n\nCOMMANDS:\n");
		size_t pl = strlen(cmd->path);
		for (size_t i = 0; i < N_CMDS; i++) {
			const ctl_cmd_spec_t *s = &ctl_cmds[i];
			if (s->group)
				continue;
			if (!root && !(strncmp(s->path, cmd->path, pl) == 0 && s->path[pl] == ' '))
				continue;
			sb_printf(&b, "\t%s\t%s\n", root ? s->path : s->path + pl + 1,
				  s->short_desc);
		}
	}
	if (cmd->long_desc) {
		sb_printf(&b, "\nDESCRIPTION:\n");
		const char *p = cmd->long_desc;
		while (*p) {
			const char *e = strchr(p, '\n');
			size_t n = e ? (size_t)(e - p) : strlen(p);
			sb_printf(&b, "\t%.*s\n", (int)n, p);
			p += n + (e ? 1 : 0);
		}
	}
	if (root) {
		sb_printf(&b, "\nOPTIONS:\n");
		usage_flags_merged(&b, ctl_global_flags, with_root_help ? root_help_flag : NULL);
	} else {
		if (cmd->flags && cmd->flags[0].name) {
			sb_printf(&b, "\nOPTIONS:\n");
			usage_flags_merged(&b, cmd->flags, NULL);
		}
		sb_printf(&b, "\nGLOBAL OPTIONS:\n");
		usage_flags_merged(&b, ctl_global_flags, cmd->inherited);
	}
	sb_printf(&b, "\n");
	if (b.s)
		tw_print(stdout, b.s);
	free(b.s);
	fflush(stdout);
}

void ctl_print_usage(const ctl_cmd_spec_t *cmd)
{
	usage_print(cmd, true);
}

/* ---- flags ------------------------------------------------------------------------------ */

enum { SLOT_LOCAL, SLOT_INH, SLOT_GLOBAL };
typedef struct flag_ref {
	const ctl_flag_spec_t *spec;
	const char **val;
	bool *set;
} flag_ref_t;

static int spec_index(const ctl_flag_spec_t *t, const char *name, char shorthand)
{
	for (int i = 0; t && t[i].name; i++)
		if (name ? strcmp(t[i].name, name) == 0 : t[i].shorthand == shorthand)
			return i;
	return -1;
}

static bool flag_find(ctl_t *c, const ctl_cmd_spec_t *cmd, bool globals, const char *name,
		      char sh, flag_ref_t *r)
{
	int i;
	if (cmd && cmd != &ctl_root && (i = spec_index(cmd->flags, name, sh)) >= 0 &&
	    i < CTL_MAX_FLAGS) {
		*r = (flag_ref_t){&cmd->flags[i], &c->flag_val[i], &c->flag_set[i]};
		return true;
	}
	if (cmd && (i = spec_index(cmd->inherited, name, sh)) >= 0 && i < CTL_MAX_FLAGS) {
		*r = (flag_ref_t){&cmd->inherited[i], &c->inh_val[i], &c->inh_set[i]};
		return true;
	}
	if (globals && (i = spec_index(ctl_global_flags, name, sh)) >= 0 && i < CTL_MAX_GLOBALS) {
		*r = (flag_ref_t){&ctl_global_flags[i], &c->glob_val[i], &c->glob_set[i]};
		return true;
	}
	if (cmd == &ctl_root && (i = spec_index(root_help_flag, name, sh)) >= 0) {
		*r = (flag_ref_t){&root_help_flag[0], &c->flag_val[0], &c->flag_set[0]};
		return true;
	}
	return false;
}

static const char *bool_canon(const char *s)
{
	static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
	static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
	for (size_t i = 0; i < 6; i++) {
		if (strcmp(s, t[i]) == 0)
			return "true";
		if (strcmp(s, f[i]) == 0)
			return "false";
	}
	return NULL;
}

static int parse_int(const char *s, int64_t *v, char *why, size_t wlen)
{
	char *end;
	errno = 0;
	long long x = strtoll(s, &end, 0);
	if (*s == '\0' || *end != '\0' || isspace((unsigned char)*s)) {
		snprintf(why, wlen, "strconv.ParseInt: parsing \"%s\": invalid syntax", s);
		return -1;
	}
	if (errno == ERANGE) {
		snprintf(why, wlen, "strconv.ParseInt: parsing \"%s\": value out of range", s);
		return -1;
	}
	*v = x;
	return 0;
}

/* Go's time.ParseDuration, to whole milliseconds (sub-ms parts are rounded down). */
int ctl_parse_duration_ms(const char *s, int64_t *ms)
{
	static const struct {
		const char *u;
		double ms;
	} units[] = {{"ns", 1e-6}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3}, {"ms", 1}, {"s", 1e3},
		     {"m", 6e4}, {"h", 3.6e6}};
	const char *p = s;
	bool neg = false;
	double total = 0;
	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (strcmp(p, "0") == 0) {
		*ms = 0;
		return 0;
	}
	if (*p == '\0')
		return -1;
	while (*p) {
		char *end;
		if (!isdigit((unsigned char)*p) && *p != '.')
			return -1;
		double v = strtod(p, &end);
		/* Go takes only digits and a point: no exponent, hex, inf or nan. */
		if (end == p || strspn(p, "0123456789.") < (size_t)(end - p))
			return -1;
		p = end;
		size_t best = 0;
		int bi = -1;
		for (int i = 0; i < (int)(sizeof(units) / sizeof(units[0])); i++) {
			size_t ul = strlen(units[i].u);
			if (strncmp(p, units[i].u, ul) == 0 && ul > best) {
				best = ul;
				bi = i;
			}
		}
		if (bi < 0)
			return -2;
		total += v * units[bi].ms;
		p += best;
	}
	/* Go's limit, about 292 years in ns; beyond it the cast would be undefined. */
	if (total * 1e6 >= 9223372036854775807.0)
		return -1;
	*ms = (int64_t)(neg ? -total : total);
	return 0;
}

/* Checks and stores one value; on error fills why with pflag's reason. */
static int flag_set_value(flag_ref_t *r, const char *v, char *why, size_t wlen)
{
	int64_t x;
	switch (r->spec->type) {
	case CTL_FLAG_BOOL: {
		const char *b = bool_canon(v);
		if (!b) {
			snprintf(why, wlen, "strconv.ParseBool: parsing \"%s\": invalid syntax", v);
			return -1;
		}
		v = b;
		break;
	}
	case CTL_FLAG_INT:
		if (parse_int(v, &x, why, wlen) < 0)
			return -1;
		break;
	case CTL_FLAG_DURATION: {
		int rc = ctl_parse_duration_ms(v, &x);
		if (rc == -2) {
			snprintf(why, wlen, "time: missing unit in duration \"%s\"", v);
			return -1;
		}
		if (rc < 0) {
			snprintf(why, wlen, "time: invalid duration \"%s\"", v);
			return -1;
		}
		break;
	}
	case CTL_FLAG_STRINGS:
		if (*r->set && *r->val) {
			/* pflag's string slice appends after the first set. */
			size_t n = strlen(*r->val) + strlen(v) + 2;
			char *j = malloc(n);
			if (!j)
				return -1;
			snprintf(j, n, "%s,%s", *r->val, v);
			*r->val = j;    /* short-lived process: the old value stays reachable */
			*r->set = true;
			return 0;
		}
		break;
	default:
		break;
	}
	*r->val = v;
	*r->set = true;
	return 0;
}

static void flag_error(ctl_t *c, const ctl_cmd_spec_t *cmd, const char *msg)
	__attribute__((noreturn));
static void flag_error(ctl_t *c, const ctl_cmd_spec_t *cmd, const char *msg)
{
	fprintf(stderr, "Error: %s\n", msg);
	fflush(stderr);
	ctl_print_usage(cmd);
	fprintf(stderr, "\n");
	fprintf(stderr, "Error: %s\n", msg);
	ctl_exit(c, CTL_EXIT_ERROR);
}

/* Whether word (an argv element) is a flag that takes the next element as its value. */
static bool takes_next(ctl_t *c, const ctl_cmd_spec_t *cmd, const char *a)
{
	flag_ref_t r;
	if (strncmp(a, "--", 2) == 0) {
		if (strchr(a, '='))
			return false;
		return flag_find(c, cmd, true, a + 2, 0, &r) && r.spec->type != CTL_FLAG_BOOL;
	}
	if (a[0] == '-' && a[1] && !a[2])
		return flag_find(c, cmd, true, NULL, a[1], &r) && r.spec->type != CTL_FLAG_BOOL;
	return false;
}

static void bad_value_msg(const flag_ref_t *r, const char *v, const char *why, char *msg,
			  size_t mlen)
{
	char name[128];
	if (r->spec->shorthand)
		snprintf(name, sizeof(name), "-%c, --%s", r->spec->shorthand, r->spec->name);
	else
		snprintf(name, sizeof(name), "--%s", r->spec->name);
	snprintf(msg, mlen, "invalid argument \"%s\" for \"%s\" flag: %s", v, name, why);
}

/* Parses every flag of argv (argv[skip[i]] are the command words, left out) against
 * cmd (and the global flags when globals); positional arguments go to pos. Returns their
 * number, or -1 with pflag's message in msg. */
static int parse_flags(ctl_t *c, const ctl_cmd_spec_t *cmd, bool globals, int argc,
		       char **argv, const bool *skip, char **pos, char *msg, size_t mlen)
{
	int np = 0;
	char why[512];
	c->args_at_dash = -1;
	for (int i = 0; i < argc; i++) {
		char *a = argv[i];
		flag_ref_t r;
		if (skip && skip[i])
			continue;
		if (strcmp(a, "--") == 0) {
			c->args_at_dash = np;
			for (i++; i < argc; i++)
				pos[np++] = argv[i];
			break;
		}
		if (strncmp(a, "--", 2) == 0) {
			char name[256];
			const char *eq = strchr(a + 2, '=');
			size_t nl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			snprintf(name, sizeof(name), "%.*s", (int)nl, a + 2);
			if (!flag_find(c, cmd, globals, name, 0, &r)) {
				snprintf(msg, mlen, "unknown flag: --%s", name);
				return -1;
			}
			const char *v;
			if (eq) {
				v = eq + 1;
			} else if (r.spec->type == CTL_FLAG_BOOL) {
				v = "true";
			} else if (i + 1 < argc) {
				v = argv[++i];
			} else {
				snprintf(msg, mlen, "flag needs an argument: %s", a);
				return -1;
			}
			if (flag_set_value(&r, v, why, sizeof(why)) < 0) {
				bad_value_msg(&r, v, why, msg, mlen);
				return -1;
			}
			continue;
		}
		if (a[0] == '-' && a[1]) {
			/* shorthands: -i, -ih, -w json, -wjson, -w=json */
			for (const char *s = a + 1; *s; s++) {
				if (!flag_find(c, cmd, globals, NULL, *s, &r)) {
					snprintf(msg, mlen,
						 "unknown shorthand flag: '%c' in %s", *s, a);
					return -1;
				}
				const char *v;
				if (s[1] == '=') {
					v = s + 2;
				} else if (r.spec->type == CTL_FLAG_BOOL) {
					v = "true";
				} else if (s[1]) {
					v = s + 1;
				} else if (i + 1 < argc) {
					v = argv[++i];
				} else {
					snprintf(msg, mlen,
						 "flag needs an argument: '%c' in -%c", *s, *s);
					return -1;
				}
				bool more = r.spec->type == CTL_FLAG_BOOL && s[1] != '=';
				if (flag_set_value(&r, v, why, sizeof(why)) < 0) {
					bad_value_msg(&r, v, why, msg, mlen);
					return -1;
				}
				if (!more)
					break;
			}
			continue;
		}
		pos[np++] = a;
	}
	return np;
}

int ctl_parse_sub(const ctl_t *c, ctl_t *sub, const char *path, int argc, char **argv,
		  char **pos, char *why, size_t wlen)
{
	const ctl_cmd_spec_t *cmd = cmd_child(&ctl_root, path);
	memset(sub, 0, sizeof(*sub));
	if (!cmd) {
		snprintf(why, wlen, "unknown command \"%s\"", path);
		return -1;
	}
	sub->cmd = cmd;
	sub->out = c->out;
	sub->hex = c->hex;
	sub->command_timeout_ms = c->command_timeout_ms;
	return parse_flags(sub, cmd, false, argc, argv, NULL, pos, why, wlen);
}

static int flag_lookup(const ctl_t *c, const char *name, const char **val, bool *set,
		       ctl_flag_type_t *type)
{
	int i;
	const ctl_cmd_spec_t *cmd = c->cmd;
	const ctl_flag_spec_t *s = NULL;
	if (cmd && (i = spec_index(cmd->flags, name, 0)) >= 0 && i < CTL_MAX_FLAGS) {
		s = &cmd->flags[i];
		*set = c->flag_set[i];
		*val = *set ? c->flag_val[i] : s->def;
	} else if (cmd && (i = spec_index(cmd->inherited, name, 0)) >= 0 && i < CTL_MAX_FLAGS) {
		s = &cmd->inherited[i];
		*set = c->inh_set[i];
		*val = *set ? c->inh_val[i] : s->def;
	} else if ((i = spec_index(ctl_global_flags, name, 0)) >= 0 && i < CTL_MAX_GLOBALS) {
		s = &ctl_global_flags[i];
		*set = c->glob_set[i];
		*val = c->glob_val[i] ? c->glob_val[i] : s->def;
	} else {
		*set = false;
		*val = NULL;
		return -1;
	}
	*type = s->type;
	return 0;
}

bool ctl_flag_changed(const ctl_t *c, const char *name)
{
	const char *v;
	bool set;
	ctl_flag_type_t t;
	return flag_lookup(c, name, &v, &set, &t) == 0 && set;
}

const char *ctl_flag_str(const ctl_t *c, const char *name)
{
	const char *v;
	bool set;
	ctl_flag_type_t t;
	if (flag_lookup(c, name, &v, &set, &t) < 0)
		return "";
	return v;
}

bool ctl_flag_bool(const ctl_t *c, const char *name)
{
	return strcmp(ctl_flag_str(c, name), "true") == 0;
}

int64_t ctl_flag_int(const ctl_t *c, const char *name)
{
	char why[256];
	int64_t v = 0;
	if (parse_int(ctl_flag_str(c, name), &v, why, sizeof(why)) < 0)
		return 0;
	return v;
}

int64_t ctl_flag_duration_ms(const ctl_t *c, const char *name)
{
	int64_t v = 0;
	if (ctl_parse_duration_ms(ctl_flag_str(c, name), &v) < 0)
		return 0;
	return v;
}

/* ---- environment (etcd's pkg/flags SetPflagsFromEnv) -------------------------------- */

static void env_name(char *buf, size_t len, const char *prefix, const char *flag)
{
	size_t n = (size_t)snprintf(buf, len, "%s_", prefix);
	for (const char *p = flag; *p && n + 1 < len; p++)
		buf[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
	buf[n] = '\0';
}

/* capnslog's line: "2006-01-02 15:04:05.000000 C | pkg/flags: ..." */
static void capnslog(char level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void capnslog(char level, const char *fmt, ...)
{
	struct timeval tv;
	struct tm tm;
	char ts[64];
	va_list ap;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(stderr, "%s.%06ld %c | pkg/flags: ", ts, (long)tv.tv_usec, level);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

extern char **environ;

static bool env_in(char names[][80], size_t n, const char *name, size_t nl)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(names[i]) == nl && strncmp(names[i], name, nl) == 0)
			return true;
	return false;
}

static void env_apply(ctl_t *c)
{
	static const char *const prefixes[] = {"KEELCTL", "ETCDCTL"};
	char used[2 * CTL_MAX_GLOBALS + 4][80], shadowed[2 * CTL_MAX_GLOBALS + 4][80];
	size_t nu = 0, ns = 0;
	bool is_watch = c->cmd && strcmp(c->cmd->path, "watch") == 0;
	for (int i = 0; ctl_global_flags[i].name && i < CTL_MAX_GLOBALS; i++) {
		const ctl_flag_spec_t *f = &ctl_global_flags[i];
		if (c->glob_set[i]) {
			for (int p = 0; p < 2; p++)
				env_name(shadowed[ns++], 80, prefixes[p], f->name);
			continue;
		}
		for (int p = 0; p < 2; p++) {
			char key[80];
			env_name(key, sizeof(key), prefixes[p], f->name);
			const char *v = getenv(key);
			if (!v || !*v)
				continue;
			snprintf(used[nu++], 80, "%s", key);
			flag_ref_t r = {f, &c->glob_val[i], &c->glob_set[i]};
			char why[256];
			bool was = c->glob_set[i];
			if (c->glob_val[i] == NULL) /* KEELCTL_ wins: only the first one applies */
				if (flag_set_value(&r, v, why, sizeof(why)) == 0)
					c->glob_set[i] = was; /* from the environment: unchanged */
		}
	}
	if (is_watch) {
		snprintf(used[nu++], 80, "ETCDCTL_WATCH_KEY");
		snprintf(used[nu++], 80, "ETCDCTL_WATCH_RANGE_END");
	}
	for (char **e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		size_t nl = eq ? (size_t)(eq - *e) : strlen(*e);
		if (env_in(used, nu, *e, nl))
			continue;
		if (env_in(shadowed, ns, *e, nl)) {
			capnslog('C', "conflicting environment variable \"%.*s\" is shadowed by "
				 "corresponding command-line flag (either unset environment "
				 "variable or disable flag)", (int)nl, *e);
			ctl_exit(c, CTL_EXIT_ERROR);
		}
		if (strncmp(*e, "ETCDCTL_", 8) == 0 || strncmp(*e, "KEELCTL_", 8) == 0)
			capnslog('W', "unrecognized environment variable %s", *e);
	}
}

/* ---- the client ---------------------------------------------------------------------- */

static const char *glob(const ctl_t *c, const char *name)
{
	return ctl_flag_str(c, name);
}

static void split_endpoints(ctl_t *c, const char *v)
{
	char *dup = strdup(v[0] == '[' ? v + 1 : v);
	if (!dup)
		ctl_fatal(c, CTL_EXIT_ERROR, "out of memory");
	size_t l = strlen(dup);
	if (v[0] == '[' && l && dup[l - 1] == ']')
		dup[l - 1] = '\0';
	size_t n = 1;
	for (char *p = dup; *p; p++)
		n += *p == ',';
	c->endpoints = calloc(n + 1, sizeof(char *));
	if (!c->endpoints)
		ctl_fatal(c, CTL_EXIT_ERROR, "out of memory");
	c->n_endpoints = 0;
	char *save = NULL;
	for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char)*t))
			t++;
		char *e = t + strlen(t);
		while (e > t && isspace((unsigned char)e[-1]))
			*--e = '\0';
		c->endpoints[c->n_endpoints++] = t;
	}
	c->endpoints[c->n_endpoints] = dup; /* keeps the storage reachable for freeing */
}

const char *ctl_out_name(ctl_out_t out)
{
	static const char *const names[] = {"simple", "json", "fields", "table", "protobuf"};
	return names[out];
}

static void debug_dump(const ctl_t *c)
{
	for (int i = 0; ctl_global_flags[i].name; i++) {
		const ctl_flag_spec_t *f = &ctl_global_flags[i];
		char key[80], dur[64];
		const char *v = glob(c, f->name);
		env_name(key, sizeof(key), "ETCDCTL", f->name);
		if (f->type == CTL_FLAG_DURATION) {
			int64_t ms = 0;
			ctl_parse_duration_ms(v, &ms);
			ctl_format_duration(ms * 1000000, dur, sizeof(dur));
			v = dur;
		}
		if (f->type == CTL_FLAG_STRINGS && v[0] != '[')
			fprintf(stderr, "%s=[%s]\n", key, v);
		else
			fprintf(stderr, "%s=%s\n", key, v);
	}
}

/* A duration flag as the int the client takes: 600h must not wrap into a negative (which
 * reads as "the default"), so longer ones become the longest an int holds (24 days). */
static int duration_int_ms(const ctl_t *c, const char *name)
{
	int64_t ms = ctl_flag_duration_ms(c, name);
	return ms > INT_MAX ? INT_MAX : ms < INT_MIN ? INT_MIN : (int)ms;
}

void ctl_prepare(ctl_t *c)
{
	static const char *const tls[] = {"cert", "key", "cacert"};
	static const char *const unsupported[] = {"cert", "key", "cacert", "user", "password",
						  "discovery-srv", "discovery-srv-name"};
	if (c->prepared)
		return;
	c->prepared = true;
	env_apply(c);
	c->debug = ctl_flag_bool(c, "debug");
	if (c->debug)
		debug_dump(c);
	split_endpoints(c, glob(c, "endpoints"));
	c->dial_timeout_ms = duration_int_ms(c, "dial-timeout");
	c->command_timeout_ms = duration_int_ms(c, "command-timeout");
	c->keepalive_time_ms = duration_int_ms(c, "keepalive-time");
	c->keepalive_timeout_ms = duration_int_ms(c, "keepalive-timeout");
	for (size_t i = 0; i < 3; i++)
		if (ctl_flag_changed(c, tls[i]) && !*glob(c, tls[i]))
			ctl_fatal(c, CTL_EXIT_BAD_ARGS, "empty string is passed to --%s option",
				  tls[i]);
	for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
		if (*glob(c, unsupported[i]))
			ctl_fatal(c, CTL_EXIT_BAD_ARGS, "--%s is not supported by keelctl (Keel "
				  "speaks plaintext gRPC without authentication)", unsupported[i]);
	if (!ctl_flag_bool(c, "insecure-transport"))
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "--insecure-transport=false is not supported by "
			  "keelctl (Keel speaks plaintext gRPC only)");
	c->hex = ctl_flag_bool(c, "hex");
	const char *w = glob(c, "write-out");
	int o;
	for (o = CTL_OUT_SIMPLE; o <= CTL_OUT_PROTOBUF; o++)
		if (strcmp(w, ctl_out_name((ctl_out_t)o)) == 0)
			break;
	if (o > CTL_OUT_PROTOBUF)
		ctl_fatal(c, CTL_EXIT_BAD_FEATURE, "unsupported output format");
	c->out = (ctl_out_t)o;
}

keel_t *ctl_client(ctl_t *c)
{
	keel_options_t opt;
	keel_error_t err;
	if (c->k)
		return c->k;
	ctl_prepare(c);
	keel_init();
	keel_options_init(&opt);
	opt.endpoints = (const char *const *)c->endpoints;
	opt.n_endpoints = c->n_endpoints;
	opt.dial_timeout_ms = c->dial_timeout_ms > 0 ? c->dial_timeout_ms : 2000;
	opt.call_timeout_ms = c->command_timeout_ms > 0 ? c->command_timeout_ms : 5000;
	if (c->keepalive_time_ms > 0)
		opt.keepalive_time_ms = c->keepalive_time_ms;
	if (c->keepalive_timeout_ms > 0)
		opt.keepalive_timeout_ms = c->keepalive_timeout_ms;
	if (keel_connect(&opt, &c->k, &err) != 0) {
		c->k = NULL;
		ctl_fatal(c, CTL_EXIT_BAD_CONNECTION, "%s", err.message);
	}
	return c->k;
}

int ctl_timeout_ms(const ctl_t *c)
{
	return c->command_timeout_ms > 0 ? c->command_timeout_ms : 5000;
}

void ctl_exit(ctl_t *c, int code)
{
	fflush(stdout);
	if (c && c->k) {
		keel_close(c->k);
		c->k = NULL;
	}
	if (c && c->endpoints) {
		free(c->endpoints[c->n_endpoints]);
		free(c->endpoints);
		c->endpoints = NULL;
	}
	exit(code);
}

void ctl_fatal(ctl_t *c, int code, const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("Error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	ctl_exit(c, code);
}

static const char *const grpc_code_names[] = {
	"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
	"OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
};

const char *ctl_err_text(const keel_error_t *err, char *buf, size_t len)
{
	if (err->kind == KEEL_E_DEADLINE || err->kind == KEEL_E_UNAVAILABLE ||
	    (err->code == KEEL_CODE_DEADLINE_EXCEEDED &&
	     strncmp(err->message, "etcdserver: ", 12) != 0))
		snprintf(buf, len, "context deadline exceeded");
	else if (err->code == KEEL_CODE_LOCAL || strncmp(err->message, "etcdserver: ", 12) == 0 ||
		 err->code <= 0 || err->code > KEEL_CODE_UNAUTHENTICATED)
		snprintf(buf, len, "%s", err->message);
	else
		snprintf(buf, len, "rpc error: code = %s desc = %s", grpc_code_names[err->code],
			 err->message);
	return buf;
}

void ctl_fatal_err(ctl_t *c, const keel_error_t *err)
{
	char buf[700];
	ctl_fatal(c, CTL_EXIT_ERROR, "%s", ctl_err_text(err, buf, sizeof(buf)));
}


/* ---- dispatch ---------------------------------------------------------------------------- */

typedef int (*ctl_run_fn)(ctl_t *c, int argc, char **argv);
static const struct {
	const char *group;
	ctl_run_fn run;
} ctl_runs[] = {
	{"get", ctl_cmd_get}, {"put", ctl_cmd_put}, {"del", ctl_cmd_del}, {"txn", ctl_cmd_txn},
	{"compaction", ctl_cmd_compaction}, {"watch", ctl_cmd_watch}, {"lease", ctl_cmd_lease},
	{"version", ctl_cmd_version}, {"lock", ctl_cmd_lock}, {"elect", ctl_cmd_elect},
	{"member", ctl_cmd_member}, {"endpoint", ctl_cmd_endpoint}, {"alarm", ctl_cmd_alarm},
	{"defrag", ctl_cmd_defrag}, {"snapshot", ctl_cmd_snapshot},
	{"move-leader", ctl_cmd_move_leader}, {"check", ctl_cmd_check},
};

static ctl_run_fn run_of(const ctl_cmd_spec_t *cmd)
{
	char top[64];
	snprintf(top, sizeof(top), "%.*s", (int)strcspn(cmd->path, " "), cmd->path);
	for (size_t i = 0; i < sizeof(ctl_runs) / sizeof(ctl_runs[0]); i++)
		if (strcmp(ctl_runs[i].group, top) == 0)
			return ctl_runs[i].run;
	return NULL;
}

static size_t levenshtein(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), d[64];
	if (lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		d[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t prev = d[0];
		d[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cur = d[j];
			int ca = tolower((unsigned char)a[i - 1]);
			int cb = tolower((unsigned char)b[j - 1]);
			size_t cost = ca == cb ? 0 : 1;
			size_t m = d[j] + 1;
			if (d[j - 1] + 1 < m)
				m = d[j - 1] + 1;
			if (prev + cost < m)
				m = prev + cost;
			d[j] = m;
			prev = cur;
		}
	}
	return d[lb];
}

static void unknown_command(ctl_t *c, const char *word) __attribute__((noreturn));
static void unknown_command(ctl_t *c, const char *word)
{
	sbuf_t b = {0};
	sb_printf(&b, "unknown command \"%s\" for \"%s\"", word, PROG);
	bool any = false;
	for (size_t i = 0; i < N_CMDS; i++) {
		const ctl_cmd_spec_t *s = &ctl_cmds[i];
		if (!cmd_is_child(&ctl_root, s))
			continue;
		if (levenshtein(word, s->path) <= 2 ||
		    strncasecmp(s->path, word, strlen(word)) == 0) {
			if (!any)
				sb_printf(&b, "\n\nDid you mean this?\n");
			sb_printf(&b, "\t%s\n", s->path);
			any = true;
		}
	}
	fprintf(stderr, "Error: %s\nRun '%s --help' for usage.\n", b.s ? b.s : "", PROG);
	fprintf(stderr, "Error: %s\n", b.s ? b.s : "");
	free(b.s);
	ctl_exit(c, CTL_EXIT_ERROR);
}

int main(int argc, char **argv)
{
	ctl_t ctl;
	ctl_t *c = &ctl;
	memset(c, 0, sizeof(*c));
	c->argv0 = argv[0];

	const char *api = getenv("ETCDCTL_API");
	if (api && *api && strcmp(api, "3") != 0) {
		if (strcmp(api, "2") == 0)
			fprintf(stderr, "Error: ETCDCTL_API=2 is not supported: keelctl speaks "
				"only etcd's v3 API (unset ETCDCTL_API or set it to 3)\n");
		else
			fprintf(stderr, "unsupported API version %s\n", api);
		return CTL_EXIT_ERROR;
	}
	unsetenv("ETCDCTL_API");

	/* Find the command: words that are not flags nor flag values, as cobra's Find. */
	int n = argc - 1;
	char **args = argv + 1;
	bool *skip = calloc((size_t)n + 1, sizeof(bool));
	char **pos = calloc((size_t)n + 4, sizeof(char *));
	if (!skip || !pos)
		return CTL_EXIT_ERROR;
	const ctl_cmd_spec_t *cmd = &ctl_root;
	const char *words[4];
	int nwords = 0;
	for (int i = 0; i < n; i++) {
		const char *a = args[i];
		if (strcmp(a, "--") == 0)
			break;
		if (a[0] == '-' && a[1]) {
			if (takes_next(c, cmd, a))
				i++;
			continue;
		}
		if (!cmd->group)
			break;
		const ctl_cmd_spec_t *ch = cmd_child(cmd, a);
		if (!ch) {
			if (cmd == &ctl_root) {
				free(skip);
				free(pos);
				unknown_command(c, a);
			}
			break;   /* a group given an unknown subcommand shows its help */
		}
		cmd = ch;
		skip[i] = true;
		words[nwords++] = cmd_name(ch);
	}
	c->cmd = cmd;
	char msg[1024];
	int np = parse_flags(c, cmd, true, n, args, skip, pos, msg, sizeof(msg));
	if (np < 0)
		flag_error(c, cmd, msg);
	bool help = cmd == &ctl_root ? c->flag_set[0] : ctl_flag_bool(c, "help");
	if (help || cmd->group) {
		ctl_print_usage(cmd);
		free(skip);
		free(pos);
		return CTL_EXIT_SUCCESS;
	}
	if (strcmp(cmd->path, "help") == 0) {
		const ctl_cmd_spec_t *t = &ctl_root;
		for (int i = 0; i < np; i++) {
			const ctl_cmd_spec_t *ch = t->group ? cmd_child(t, pos[i]) : NULL;
			if (!ch && i > 0)
				break; /* cobra: the deepest command found, the rest are its args */
			if (!ch) {
				/* cobra: every topic word Go-quoted (%#q), then the root's usage */
				fputs("Unknown help topic [", stderr);
				for (int j = 0; j < np; j++)
					fprintf(stderr, "%s`%s`", j ? " " : "", pos[j]);
				fputs("]\n", stderr);
				usage_print(&ctl_root, false);
				t = NULL;
				break;
			}
			t = ch;
		}
		if (t)
			ctl_print_usage(t);
		free(skip);
		free(pos);
		return CTL_EXIT_SUCCESS;
	}
	ctl_run_fn run = run_of(cmd);
	if (!run)
		ctl_fatal(c, CTL_EXIT_BAD_FEATURE, "\"%s\" is not supported by keelctl", cmd->path);
	char **cargv = calloc((size_t)(nwords + np + 1), sizeof(char *));
	if (!cargv)
		return CTL_EXIT_ERROR;
	for (int i = 0; i < nwords; i++)
		cargv[i] = (char *)words[i];
	for (int i = 0; i < np; i++)
		cargv[nwords + i] = pos[i];
	int rc = run(c, nwords + np, cargv);
	free(cargv);
	free(skip);
	free(pos);
	ctl_exit(c, rc);
}
