/* cluster/agent.c — `keel agent`: registers its Node, keeps its heartbeat lease alive, and
 * reconciles the pods bound to it (agent_proc.c runs them); hollow mode fakes many nodes.
 * Never touches a pod bound to another node; never rewrites a pod's spec. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent_int.h"

/* ---- flags --------------------------------------------------------------------------------- */

static const char agent_usage[] =
	"usage: keel agent --node NAME [--endpoints E] [--labels k=v,...]\n"
	"                  [--taints key=value:Effect,...] [--cpu Q] [--memory Q] [--max-pods N]\n"
	"                  [--root-dir DIR] [--address IP] [--port N] [--lease-duration S]\n"
	"                  [--backoff-initial MS] [--backoff-max MS] [-v]\n"
	"       keel agent --hollow [--nodes N] [--node-prefix P] [--cpu Q] [--memory Q] ...\n";

static int agent_parse_int(const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out,
			   char *msg, size_t n)
{
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || end == v || *end || x < lo || x > hi) {
		snprintf(msg, n, "invalid value \"%s\" for flag %s", v, flag);
		return -1;
	}
	*out = x;
	return 0;
}

static int agent_parse_quantity(const char *flag, const char *v, int64_t *milli, char *msg,
				size_t n)
{
	json_t *s = json_string(v);
	char why[200];
	int rc = s ? kc_quantity_parse(s, milli, why, sizeof(why)) : -1;
	json_decref(s);
	if (rc != 0 || *milli <= 0) {
		snprintf(msg, n, "invalid value \"%s\" for flag %s", v, flag);
		return -1;
	}
	return 0;
}

static int agent_config_check(const agent_config_t *cfg, char *msg, size_t n);

int agent_config_parse(int argc, char **argv, agent_config_t *cfg, char *msg, size_t n)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cpu_milli = -1;
	cfg->memory_bytes = -1;
	cfg->max_pods = 110;
	cfg->address = "127.0.0.1";
	cfg->lease_duration = 10;
	cfg->backoff_initial_ms = 10000;
	cfg->backoff_max_ms = 300000;
	cfg->nodes = 1;
	cfg->node_prefix = "hollow-";
	const char *root = NULL;
	/* argv[0] names the command ("agent"), as for getopt. */
	for (int i = argc > 0 && argv[0][0] != '-' ? 1 : 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(agent_usage, stdout);
			return 1;
		}
		if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			cfg->verbose++;
			continue;
		}
		if (!strcmp(a, "--hollow")) {
			cfg->hollow = true;
			continue;
		}
		if (strncmp(a, "--", 2) != 0) {
			snprintf(msg, n, "unexpected argument \"%s\"\n%s", a, agent_usage);
			return -1;
		}
		char flag[64];
		const char *v;
		const char *eq = strchr(a, '=');
		if (eq) {
			snprintf(flag, sizeof(flag), "%.*s", (int)(eq - a), a);
			v = eq + 1;
		} else {
			snprintf(flag, sizeof(flag), "%s", a);
			if (i + 1 >= argc) {
				snprintf(msg, n, "flag needs an argument: %s", flag);
				return -1;
			}
			v = argv[++i];
		}
		int64_t x;
		if (!strcmp(flag, "--node")) {
			cfg->node = v;
		} else if (!strcmp(flag, "--endpoints")) {
			cfg->endpoints = v;
		} else if (!strcmp(flag, "--labels")) {
			cfg->labels = v;
		} else if (!strcmp(flag, "--taints")) {
			cfg->taints = v;
		} else if (!strcmp(flag, "--cpu")) {
			if (agent_parse_quantity(flag, v, &cfg->cpu_milli, msg, n))
				return -1;
		} else if (!strcmp(flag, "--memory")) {
			if (agent_parse_quantity(flag, v, &x, msg, n))
				return -1;
			cfg->memory_bytes = x / 1000;
		} else if (!strcmp(flag, "--max-pods")) {
			if (agent_parse_int(flag, v, 0, 1000000, &x, msg, n))
				return -1;
			cfg->max_pods = (int)x;
		} else if (!strcmp(flag, "--root-dir")) {
			root = v;
		} else if (!strcmp(flag, "--address")) {
			cfg->address = v;
		} else if (!strcmp(flag, "--port")) {
			if (agent_parse_int(flag, v, 0, 65535, &x, msg, n))
				return -1;
			cfg->port = (int)x;
		} else if (!strcmp(flag, "--lease-duration")) {
			if (agent_parse_int(flag, v, 1, 3600, &x, msg, n))
				return -1;
			cfg->lease_duration = (int)x;
		} else if (!strcmp(flag, "--backoff-initial")) {
			if (agent_parse_int(flag, v, 1, 86400000, &x, msg, n))
				return -1;
			cfg->backoff_initial_ms = (int)x;
		} else if (!strcmp(flag, "--backoff-max")) {
			if (agent_parse_int(flag, v, 1, 86400000, &x, msg, n))
				return -1;
			cfg->backoff_max_ms = (int)x;
		} else if (!strcmp(flag, "--nodes")) {
			if (agent_parse_int(flag, v, 1, 100000, &x, msg, n))
				return -1;
			cfg->nodes = (int)x;
		} else if (!strcmp(flag, "--node-prefix")) {
			cfg->node_prefix = v;
		} else {
			snprintf(msg, n, "unknown flag: %s\n%s", flag, agent_usage);
			return -1;
		}
	}
	if (cfg->backoff_max_ms < cfg->backoff_initial_ms)
		cfg->backoff_max_ms = cfg->backoff_initial_ms;
	if (cfg->hollow) {
		if (cfg->cpu_milli < 0)
			cfg->cpu_milli = 4000;
		if (cfg->memory_bytes < 0)
			cfg->memory_bytes = (int64_t)16 << 30;
	} else if (!cfg->node || !*cfg->node) {
		snprintf(msg, n, "--node is required (or --hollow)\n%s", agent_usage);
		return -1;
	}
	if (agent_config_check(cfg, msg, n) != 0)
		return -1;
	if (root) {
		cfg->root_dir = strdup(root);
	} else {
		size_t len = strlen(cfg->hollow ? "hollow" : cfg->node) + 32;
		cfg->root_dir = malloc(len);
		if (cfg->root_dir)
			snprintf(cfg->root_dir, len, "./keel-agent/%s", cfg->hollow ? "hollow" : cfg->node);
	}
	if (!cfg->root_dir) {
		snprintf(msg, n, "out of memory");
		return -1;
	}
	return 0;
}

void agent_config_free(agent_config_t *cfg)
{
	free(cfg->root_dir);
	cfg->root_dir = NULL;
}

void agent_log(const char *fmt, ...)
{
	char ts[32], line[1024];
	kc_time_now(ts);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s agent: %s\n", ts, line);
}

/* ---- the agent ----------------------------------------------------------------------------- */

#define AGENT_RESYNC_MS 2000
#define AGENT_HOLLOW_RESYNC_MS 10000
#define AGENT_ADOPTED_POLL_MS 300
#define AGENT_BACKOFF_RESET_MS (10 * 60 * 1000)
#define AGENT_TERM_POLL_MS 100
#define AGENT_RETRY_MAX_MS 5000
#define AGENT_HOLLOW_WORKERS 8
#define AGENT_DEFAULT_GRACE 30

typedef struct agent agent_t;

/* One node this process stands for (one, or --nodes of them when hollow). */
typedef struct agent_node {
	agent_t *a;
	char *name;
	char *node_key;
	char *lease_key;
	int64_t lease_id;
	keel_keepalive_t *ka;
	atomic_bool lease_alive;
	atomic_bool registered;  /* read by the lease's worker too */
} agent_node_t;

struct agent {
	agent_config_t *cfg;
	keel_t *k;
	volatile sig_atomic_t *stop;
	agent_limits_t limits;
	int port;
	agent_http_t *http;
	kc_queue_t *q;
	kc_informer_t *pods_inf;
	kc_informer_t *nodes_inf;
	agent_node_t *nodes;
	size_t n_nodes;
	int name_width;          /* hollow: digits of the node number */
	json_t *labels;          /* from --labels */
	json_t *taints;          /* from --taints */
	json_t *node_info;
	char *pods_dir;          /* <root>/pods */
	/* Real mode: the pods this agent runs; only the main loop touches them. */
	agent_pod_t *pods;
	int64_t last_adopted_poll;
	atomic_bool pods_started;  /* pods_inf is set: pod keys may be queued */
	atomic_size_t n_registered;
	/* Real mode: pod key -> the invalid uid already reported (agent_pod_uid_accepted). */
	json_t *refused;
	/* Hollow mode: pod key -> uid whose Running status is written. */
	pthread_mutex_t done_mu;
	json_t *done;
};

static const char *agent_pod_node(const json_t *pod)
{
	return kc_path_str(pod, "spec.nodeName");
}

/* The node of this process named name, or NULL. */
static agent_node_t *agent_node_find(agent_t *a, const char *name)
{
	if (!name)
		return NULL;
	if (!a->cfg->hollow)
		return !strcmp(name, a->nodes[0].name) ? &a->nodes[0] : NULL;
	size_t pl = strlen(a->cfg->node_prefix);
	if (strncmp(name, a->cfg->node_prefix, pl) != 0)
		return NULL;
	char *end;
	errno = 0;
	unsigned long i = strtoul(name + pl, &end, 10);
	if (errno || *end || end == name + pl || i >= a->n_nodes)
		return NULL;
	return !strcmp(a->nodes[i].name, name) ? &a->nodes[i] : NULL;
}

static bool agent_pod_mine(agent_t *a, const json_t *pod)
{
	return pod && agent_node_find(a, agent_pod_node(pod)) != NULL;
}

/* ---- flags turned into objects ------------------------------------------------------------- */

static int agent_labels_parse(const char *text, json_t *labels, char *msg, size_t n)
{
	if (!text || !*text)
		return 0;
	char *dup = strdup(text);
	int rc = 0;
	for (char *save = NULL, *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		if (!eq || eq == t) {
			snprintf(msg, n, "invalid label \"%s\": want key=value", t);
			rc = -1;
			break;
		}
		*eq = 0;
		if (json_object_set_new(labels, t, json_string(eq + 1)) != 0) {
			snprintf(msg, n, "invalid label \"%s\": not UTF-8 text", t);
			rc = -1;
			break;
		}
	}
	free(dup);
	return rc;
}

static int agent_taints_parse(const char *text, json_t *taints, char *msg, size_t n)
{
	static const char *const effects[] = { "NoSchedule", "PreferNoSchedule", "NoExecute" };
	if (!text || !*text)
		return 0;
	char *dup = strdup(text);
	int rc = 0;
	for (char *save = NULL, *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *colon = strrchr(t, ':');
		bool ok = false;
		for (size_t i = 0; colon && i < sizeof(effects) / sizeof(effects[0]); i++)
			ok |= !strcmp(colon + 1, effects[i]);
		if (!ok || colon == t) {
			snprintf(msg, n, "invalid taint \"%s\": want key=value:Effect with Effect one "
				 "of NoSchedule, PreferNoSchedule, NoExecute", t);
			rc = -1;
			break;
		}
		*colon = 0;
		char *eq = strchr(t, '=');
		if (eq)
			*eq = 0;
		json_t *taint = json_pack("{s:s, s:s}", "key", t, "effect", colon + 1);
		if (taint && eq && eq[1] &&
		    json_object_set_new(taint, "value", json_string(eq + 1)) != 0) {
			json_decref(taint);
			taint = NULL;
		}
		if (json_array_append_new(taints, taint) != 0) {
			snprintf(msg, n, "invalid taint \"%s\": not UTF-8 text", t);
			rc = -1;
			break;
		}
	}
	free(dup);
	return rc;
}

/* kc_object_validate on a Node made of name, labels and taints; -1 with msg naming the flag
 * (the field errors without the "The Node ... is invalid: " lead). */
static int agent_node_check(const char *name, json_t *labels, json_t *taints, const char *flag,
			    const char *value, char *msg, size_t n)
{
	json_t *node = json_pack("{s:s, s:s, s:{s:s, s:O?}, s:{s:O?}}", "apiVersion", "v1", "kind",
				 "Node", "metadata", "name", name, "labels", labels, "spec",
				 "taints", taints);
	char why[1024];
	int rc = node ? kc_object_validate(KC_NODE, node, why, sizeof(why)) : -1;
	json_decref(node);
	if (rc == 0)
		return 0;
	const char *lead = node ? strstr(why, " is invalid: ") : NULL;
	snprintf(msg, n, "invalid value \"%s\" for flag %s: %s", value, flag,
		 lead ? lead + 13 : node ? why : "not UTF-8 text");
	return -1;
}

/* The node name ends up in store keys, the root and cgroup paths; labels and taints in the
 * Node: all are checked as the Node's validation would, before anything is written. */
static int agent_config_check(const agent_config_t *cfg, char *msg, size_t n)
{
	const char *flag = cfg->hollow ? "--node-prefix" : "--node";
	const char *value = cfg->hollow ? cfg->node_prefix : cfg->node;
	char name[300];
	if (strlen(value) > 253) {
		snprintf(msg, n, "invalid value \"%.64s...\" for flag %s: must be no more than %d "
			 "characters", value, flag, 253);
		return -1;
	}
	/* Hollow names are the prefix and up to 6 digits. */
	snprintf(name, sizeof(name), "%s%s", value, cfg->hollow ? "000000" : "");
	if (agent_node_check(name, NULL, NULL, flag, value, msg, n) != 0)
		return -1;
	json_t *labels = json_object(), *taints = json_array();
	int rc = labels && taints ? 0 : -1;
	if (rc != 0)
		snprintf(msg, n, "out of memory");
	if (rc == 0 && cfg->labels)
		rc = agent_labels_parse(cfg->labels, labels, msg, n) ||
		     agent_node_check(name, labels, NULL, "--labels", cfg->labels, msg, n);
	if (rc == 0 && cfg->taints)
		rc = agent_taints_parse(cfg->taints, taints, msg, n) ||
		     agent_node_check(name, NULL, taints, "--taints", cfg->taints, msg, n);
	json_decref(labels);
	json_decref(taints);
	return rc ? -1 : 0;
}

static int64_t agent_mem_total(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	long long kb = 0;
	char line[256];
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %lld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return (int64_t)kb * 1024;
}

static json_t *agent_node_info_make(void)
{
	struct utsname u;
	char os[256] = "Linux";
	FILE *f = fopen("/etc/os-release", "re");
	char line[512];
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "PRETTY_NAME=", 12) != 0)
			continue;
		char *v = line + 12;
		v[strcspn(v, "\n")] = 0;
		if (*v == '"') {
			v++;
			char *q = strchr(v, '"');
			if (q)
				*q = 0;
		}
		snprintf(os, sizeof(os), "%.200s", v);
	}
	if (f)
		fclose(f);
	if (uname(&u) != 0)
		memset(&u, 0, sizeof(u));
	const char *arch = u.machine;
	if (!strcmp(arch, "x86_64"))
		arch = "amd64";
	else if (!strcmp(arch, "aarch64"))
		arch = "arm64";
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "kubeletVersion", "keel-" KEEL_VERSION,
			 "kernelVersion", u.release, "osImage", os, "operatingSystem", "linux",
			 "architecture", arch);
}

/* ---- the heartbeat lease ------------------------------------------------------------------- */

static void agent_keepalive_cb(void *ud, const keel_header_t *h, int64_t id, int64_t ttl)
{
	agent_node_t *an = ud;
	(void)h;
	(void)id;
	if (ttl > 0)
		return;
	atomic_store(&an->lease_alive, false);
	kc_queue_add(an->a->q, an->lease_key);
}

static void agent_uuid(char buf[37])
{
	unsigned char b[16];
	FILE *f = fopen("/dev/urandom", "re");
	if (!f || fread(b, 1, sizeof(b), f) != sizeof(b))
		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = (unsigned char)(rand() & 0xff);
	if (f)
		fclose(f);
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
}

/* Grants a store lease, puts the Lease object on it and keeps it alive. */
static int agent_lease_sync(agent_t *a, agent_node_t *an)
{
	if (atomic_load(&an->lease_alive))
		return 0;
	if (an->ka) {
		keel_keepalive_stop(an->ka);
		an->ka = NULL;
	}
	keel_error_t err = { 0 };
	keel_lease_grant_req_t greq = { .ttl = a->cfg->lease_duration };
	keel_lease_grant_result_t gres;
	int rc = keel_lease_grant(a->k, &greq, &gres, &err);
	if (rc == 0) {
		char now[32], uid[37];
		kc_time_now(now);
		agent_uuid(uid);
		json_t *lease = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:{s:s, s:i, s:s, s:s}}",
			"apiVersion", "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name",
			an->name, "namespace", KC_NODE_LEASE_NAMESPACE, "uid", uid,
			"creationTimestamp", now, "spec", "holderIdentity", an->name,
			"leaseDurationSeconds", a->cfg->lease_duration, "acquireTime", now,
			"renewTime", now);
		char *text = json_dumps(lease, JSON_COMPACT);
		json_decref(lease);
		keel_put_req_t put = { .key = an->lease_key, .key_len = strlen(an->lease_key),
				       .value = text, .value_len = text ? strlen(text) : 0,
				       .lease = gres.id };
		keel_put_result_t *pres = NULL;
		rc = text ? keel_put(a->k, &put, &pres, &err) : KEEL_CODE_LOCAL;
		free(text);
		keel_put_result_free(pres);
		if (rc == 0) {
			an->lease_id = gres.id;
			atomic_store(&an->lease_alive, true);
			rc = keel_lease_keepalive(a->k, gres.id, agent_keepalive_cb, an, &an->ka, &err);
			if (rc != 0)
				atomic_store(&an->lease_alive, false);
		}
	}
	if (rc != 0) {
		agent_log("node %s: heartbeat lease: %s", an->name, err.message);
		return -1;
	}
	if (a->cfg->verbose || !a->cfg->hollow)
		agent_log("node %s: heartbeat lease %" PRId64 " (ttl %d s) on %s", an->name,
			  an->lease_id, a->cfg->lease_duration, an->lease_key);
	/* The Node may have been marked NotReady while the lease was gone. */
	if (atomic_load(&an->registered))
		kc_queue_add(a->q, an->node_key);
	return 0;
}

/* Stops the keep-alive and, when revoke, revokes the lease (its key goes at once). Returns
 * false when the store did not answer: the remaining leases are left to expire. */
static bool agent_lease_revoke(agent_t *a, agent_node_t *an, bool revoke)
{
	if (an->ka) {
		keel_keepalive_stop(an->ka);
		an->ka = NULL;
	}
	bool ok = true;
	if (revoke && atomic_load(&an->lease_alive)) {
		keel_lease_id_req_t req = { .timeout_ms = 2000, .id = an->lease_id };
		keel_error_t err = { 0 };
		int rc = keel_lease_revoke(a->k, &req, NULL, &err);
		if (rc != 0 && rc != KEEL_CODE_NOT_FOUND && err.kind != KEEL_E_LEASE_NOT_FOUND) {
			agent_log("node %s: revoking the heartbeat lease: %s", an->name, err.message);
			ok = false;
		}
	}
	atomic_store(&an->lease_alive, false);
	return ok;
}

/* Whether the heartbeat key is in the store (the keep-alive may not have noticed a loss yet). */
static bool agent_lease_key_exists(agent_t *a, agent_node_t *an)
{
	keel_range_result_t *r = NULL;
	keel_error_t err = { 0 };
	bool exists = keel_get(a->k, an->lease_key, &r, &err) != 0 || r->n_kvs > 0;
	keel_range_result_free(r);
	return exists;
}

/* ---- the Node ------------------------------------------------------------------------------ */

static void agent_ready_set(json_t *node)
{
	char now[32];
	kc_time_now(now);
	kc_condition_set(node, "Ready", "True", "AgentReady", "keel agent is posting ready status");
	json_t *conds = kc_path(node, "status.conditions");
	size_t i;
	json_t *c;
	json_array_foreach(conds, i, c)
		if (!strcmp(kc_path_str(c, "type") ? kc_path_str(c, "type") : "", "Ready"))
			json_object_set_new(c, "lastHeartbeatTime", json_string(now));
}

/* Everything the agent owns in a Node: labels, taints, status (spec.unschedulable and the
 * node lifecycle controller's taints stay). */
static int agent_node_fill(void *ud, json_t *node, keel_error_t *err)
{
	agent_node_t *an = ud;
	agent_t *a = an->a;
	(void)err;
	json_t *labels = kc_path(node, "metadata.labels");
	if (!json_is_object(labels)) {
		labels = json_object();
		kc_path_set(node, "metadata.labels", labels);
	}
	json_object_update(labels, a->labels);
	json_object_set_new(labels, "kubernetes.io/hostname", json_string(an->name));
	json_object_set_new(labels, "kubernetes.io/os", json_string("linux"));
	json_t *taints = json_deep_copy(a->taints);
	const json_t *old = kc_path(node, "spec.taints");
	size_t i;
	json_t *t;
	json_array_foreach(old, i, t) {
		const char *key = kc_path_str(t, "key");
		if (key && !strncmp(key, "node.kubernetes.io/", 19))
			json_array_append(taints, t);
	}
	kc_path_set(node, "spec.taints", taints);
	char cpu[32], mem[32], pods[32];
	kc_format_cpu(a->cfg->cpu_milli, cpu, sizeof(cpu));
	kc_format_memory(a->cfg->memory_bytes, mem, sizeof(mem));
	snprintf(pods, sizeof(pods), "%d", a->cfg->max_pods);
	json_t *cap = json_pack("{s:s, s:s, s:s}", "cpu", cpu, "memory", mem, "pods", pods);
	kc_path_set(node, "status.capacity", json_deep_copy(cap));
	kc_path_set(node, "status.allocatable", cap);
	kc_path_set(node, "status.addresses", json_pack("[{s:s, s:s}, {s:s, s:s}]", "type",
		    "InternalIP", "address", a->cfg->address, "type", "Hostname", "address",
		    an->name));
	kc_path_set(node, "status.daemonEndpoints", json_pack("{s:{s:i}}", "kubeletEndpoint",
		    "Port", a->port));
	kc_path_set(node, "status.nodeInfo", json_deep_copy(a->node_info));
	kc_path_set(node, "status.limits", json_string(agent_limits_name(&a->limits)));
	agent_ready_set(node);
	return 0;
}

static int agent_node_register(agent_node_t *an, keel_error_t *err)
{
	agent_t *a = an->a;
	json_t *node = json_pack("{s:s, s:s, s:{s:s}, s:{s:b}}", "apiVersion", "v1", "kind", "Node",
				 "metadata", "name", an->name, "spec", "unschedulable", 0);
	agent_node_fill(an, node, err);
	int rc = kc_create(a->k, node, err);
	json_decref(node);
	if (rc == KEEL_CODE_ALREADY_EXISTS)
		rc = kc_modify(a->k, KC_NODE, NULL, an->name, agent_node_fill, an, NULL, err);
	if (rc == 0 && (a->cfg->verbose || !a->cfg->hollow))
		agent_log("registered node %s", an->name);
	return rc;
}

static int agent_ready_fix(void *ud, json_t *node, keel_error_t *err)
{
	(void)ud;
	(void)err;
	if (kc_node_ready(node))
		return 1;
	agent_ready_set(node);
	return 0;
}

/* The Node exists, carries what this agent says, and is Ready while the lease lives. */
static int agent_node_sync(agent_t *a, agent_node_t *an)
{
	keel_error_t err = { 0 };
	json_t *node = a->nodes_inf ? kc_informer_get(a->nodes_inf, an->node_key) : NULL;
	int rc = 0;
	if (!atomic_load(&an->registered) || !node) {
		rc = agent_node_register(an, &err);
		if (rc == 0 && !atomic_exchange(&an->registered, true))
			atomic_fetch_add(&a->n_registered, 1);
	} else if (!kc_node_ready(node) && atomic_load(&an->lease_alive) &&
		   !agent_lease_key_exists(a, an)) {
		/* The controller saw the key expire first: a new lease, then Ready. */
		atomic_store(&an->lease_alive, false);
		kc_queue_add(a->q, an->lease_key);
	} else if (!kc_node_ready(node) && atomic_load(&an->lease_alive)) {
		rc = kc_modify(a->k, KC_NODE, NULL, an->name, agent_ready_fix, NULL, NULL, &err);
		if (rc == 0)
			agent_log("node %s: Ready set back to True (its heartbeat lease is alive)",
				  an->name);
	}
	json_decref(node);
	if (rc != 0 && rc != KEEL_CODE_NOT_FOUND) {
		agent_log("node %s: %s", an->name, err.message);
		return -1;
	}
	return 0;
}

/* ---- pods: the process table (real mode; main loop only) ------------------------------------ */

static agent_pod_t *agent_pod_find(agent_t *a, const char *key)
{
	for (agent_pod_t *p = a->pods; p; p = p->next)
		if (!strcmp(p->key, key))
			return p;
	return NULL;
}

static void agent_pod_unlink(agent_t *a, agent_pod_t *p)
{
	for (agent_pod_t **pp = &a->pods; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			return;
		}
}

static const json_t *agent_ctr_status(const json_t *pod, const char *name)
{
	const json_t *css = kc_path(pod, "status.containerStatuses");
	size_t i;
	const json_t *cs;
	json_array_foreach(css, i, cs)
		if (kc_path_str(cs, "name") && !strcmp(kc_path_str(cs, "name"), name))
			return cs;
	return NULL;
}

/* Takes a container's last termination from the pod's status (after an agent restart). */
static void agent_ctr_exit_from_status(agent_ctr_t *c, const json_t *pod)
{
	const json_t *cs = agent_ctr_status(pod, c->name);
	const json_t *t = kc_path(cs, "state.terminated");
	if (!t)
		t = kc_path(cs, "lastState.terminated");
	c->exited = true;
	if (!t) {
		c->exit_unknown = true;
		c->exit_code = -1;
		c->finished_at = time(NULL);
		return;
	}
	c->exit_code = (int)kc_path_int(t, "exitCode", -1);
	c->exit_signal = (int)kc_path_int(t, "signal", 0);
	c->exit_unknown = c->exit_code == -1;
	int64_t fin = kc_path_str(t, "finishedAt") ? kc_time_parse(kc_path_str(t, "finishedAt")) : -1;
	c->finished_at = fin > 0 ? fin : time(NULL);
}

static agent_pod_t *agent_pod_new(agent_t *a, const char *key, const json_t *pod)
{
	agent_pod_t *p = calloc(1, sizeof(*p));
	const json_t *ctrs = kc_path(pod, "spec.containers");
	size_t nc = json_array_size(ctrs);
	const char *uid = kc_uid(pod);
	size_t dl = strlen(a->pods_dir) + (uid ? strlen(uid) : 0) + 2;
	if (!p || !agent_uid_ok(uid) || !(p->ctrs = calloc(nc ? nc : 1, sizeof(agent_ctr_t))) ||
	    !(p->key = strdup(key)) || !(p->ns = strdup(kc_namespace(pod) ? kc_namespace(pod) : "")) ||
	    !(p->name = strdup(kc_name(pod) ? kc_name(pod) : "")) || !(p->uid = strdup(uid)) ||
	    !(p->dir = malloc(dl))) {
		agent_pod_free(p);
		return NULL;
	}
	snprintf(p->dir, dl, "%s/%s", a->pods_dir, uid);
	const char *st = kc_path_str(pod, "status.startTime");
	p->start_time = st ? kc_time_parse(st) : -1;
	if (p->start_time <= 0)
		p->start_time = time(NULL);
	for (size_t i = 0; i < nc; i++) {
		const char *name = kc_path_str(json_array_get(ctrs, i), "name");
		agent_ctr_t *c = &p->ctrs[p->n_ctrs++];
		if (!(c->name = strdup(name ? name : ""))) {
			agent_pod_free(p);
			return NULL;
		}
		c->restart_count = (int)kc_path_int(agent_ctr_status(pod, c->name), "restartCount", 0);
	}
	return p;
}

static const char *agent_restart_policy(const json_t *pod)
{
	const char *rp = kc_path_str(pod, "spec.restartPolicy");
	return rp ? rp : "Always";
}

/* Whether an exited container starts again under the pod's policy. */
static bool agent_ctr_restarts(const json_t *pod, const agent_ctr_t *c)
{
	const char *rp = agent_restart_policy(pod);
	if (!strcmp(rp, "Never"))
		return false;
	if (!strcmp(rp, "OnFailure"))
		return c->exit_unknown || c->exit_code != 0;
	return true;
}

static void agent_ctr_exited(agent_t *a, agent_pod_t *p, agent_ctr_t *c, int status, bool unknown)
{
	int64_t now = kc_mono_ms();
	c->last_pid = c->pid;
	c->pid = 0;
	c->adopted = false;
	c->exited = true;
	c->exit_unknown = unknown;
	c->exit_signal = 0;
	if (unknown) {
		c->exit_code = -1;
	} else if (WIFSIGNALED(status)) {
		c->exit_signal = WTERMSIG(status);
		c->exit_code = 128 + c->exit_signal;
	} else {
		c->exit_code = WEXITSTATUS(status);
	}
	c->finished_at = time(NULL);
	c->oom = false;
	if (c->exit_signal == SIGKILL && !p->terminating) {
		int64_t kills = agent_proc_oom_kills(&a->limits, p);
		c->oom = kills > p->oom_kills;
		if (kills > p->oom_kills)
			p->oom_kills = kills;
	}
	bool ran_long = c->started_mono > 0 && now - c->started_mono >= AGENT_BACKOFF_RESET_MS;
	if (c->backoff_ms == 0 || ran_long)
		c->backoff_ms = a->cfg->backoff_initial_ms;
	else if (c->backoff_ms < a->cfg->backoff_max_ms)
		c->backoff_ms = c->backoff_ms * 2 > a->cfg->backoff_max_ms ? a->cfg->backoff_max_ms :
			c->backoff_ms * 2;
	c->next_start_mono = now + c->backoff_ms;
	if (!p->terminating) {
		if (unknown)
			agent_log("%s/%s: container %s (pid %d) is gone; its exit status is unknown",
				  p->ns, p->name, c->name, (int)c->last_pid);
		else if (c->exit_signal)
			agent_log("%s/%s: container %s (pid %d) killed by signal %d", p->ns, p->name,
				  c->name, (int)c->last_pid, c->exit_signal);
		else
			agent_log("%s/%s: container %s (pid %d) exited with code %d", p->ns, p->name,
				  c->name, (int)c->last_pid, c->exit_code);
	}
	/* What the container left running in its group goes with it. */
	agent_proc_signal(c->last_pid, SIGKILL);
	agent_proc_state_write(p);
}

/* Reaps our children and notices adopted processes that are gone. */
static void agent_reap(agent_t *a)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (agent_pod_t *p = a->pods; p; p = p->next)
			for (size_t i = 0; i < p->n_ctrs; i++)
				if (p->ctrs[i].pid == pid && !p->ctrs[i].adopted) {
					agent_ctr_exited(a, p, &p->ctrs[i], status, false);
					kc_queue_add(a->q, p->key);
				}
	}
	int64_t now = kc_mono_ms();
	if (now - a->last_adopted_poll < AGENT_ADOPTED_POLL_MS)
		return;
	a->last_adopted_poll = now;
	for (agent_pod_t *p = a->pods; p; p = p->next)
		for (size_t i = 0; i < p->n_ctrs; i++) {
			agent_ctr_t *c = &p->ctrs[i];
			if (c->adopted && c->pid > 0 && !agent_proc_same(c->pid, c->proc_start)) {
				agent_ctr_exited(a, p, c, 0, true);
				kc_queue_add(a->q, p->key);
			}
		}
}

/* Whether a container's process still runs. After a container's leader ends, its group is
 * SIGKILLed (agent_ctr_exited), so the leader stands for the group. */
static bool agent_pod_alive(const agent_pod_t *p)
{
	for (size_t i = 0; i < p->n_ctrs; i++)
		if (p->ctrs[i].pid > 0)
			return true;
	return false;
}

static void agent_pod_signal(agent_pod_t *p, int sig)
{
	for (size_t i = 0; i < p->n_ctrs; i++)
		if (p->ctrs[i].pid > 0)
			agent_proc_signal(p->ctrs[i].pid, sig);
}

/* The pod left the store (or this node) while running: kill it at once and forget it. */
static void agent_pod_kill_now(agent_t *a, agent_pod_t *p, const char *why)
{
	agent_log("%s/%s: %s: killing its processes", p->ns, p->name, why);
	agent_pod_signal(p, SIGKILL);
	for (int i = 0; i < 50 && agent_pod_alive(p); i++) {
		usleep(10000);
		agent_reap(a);
	}
	agent_proc_pod_remove(&a->limits, p);
	agent_pod_unlink(a, p);
	agent_pod_free(p);
}

static void agent_backoff_text(int64_t ms, char *buf, size_t n)
{
	if (ms < 1000)
		snprintf(buf, n, "%" PRId64 "ms", ms);
	else if (ms < 60000)
		snprintf(buf, n, "%" PRId64 "s", ms / 1000);
	else
		snprintf(buf, n, "%" PRId64 "m%" PRId64 "s", ms / 60000, ms % 60000 / 1000);
}

/* Starts what should run; returns the delay until the next restart is due (0: none). */
static int64_t agent_pod_run(agent_t *a, agent_pod_t *p, const json_t *pod)
{
	const json_t *specs = kc_path(pod, "spec.containers");
	int64_t now = kc_mono_ms(), wake = 0;
	for (size_t i = 0; i < p->n_ctrs; i++) {
		agent_ctr_t *c = &p->ctrs[i];
		const json_t *spec = json_array_get(specs, i);
		if (c->pid > 0 || !spec)
			continue;
		if (c->started_once) {
			if (!agent_ctr_restarts(pod, c))
				continue;
			if (now < c->next_start_mono) {
				int64_t d = c->next_start_mono - now;
				wake = wake == 0 || d < wake ? d : wake;
				continue;
			}
		}
		agent_spawn_t s = { .limits = &a->limits, .node = a->nodes[0].name, .pod = p,
				    .container = spec };
		char msg[512];
		pid_t pid = agent_proc_spawn(&s, msg, sizeof(msg));
		if (pid < 0) {
			agent_log("%s/%s: container %s: %s", p->ns, p->name, c->name, msg);
			c->pid = 0;
			c->started_once = true;
			c->started_at = time(NULL);
			c->started_mono = now;
			agent_ctr_exited(a, p, c, 127 << 8, false);
			int64_t d = c->next_start_mono - now;
			wake = wake == 0 || d < wake ? d : wake;
			continue;
		}
		if (c->started_once)
			c->restart_count++;
		c->pid = pid;
		c->last_pid = pid;
		c->adopted = false;
		c->proc_start = agent_proc_start_time(pid);
		c->started_once = true;
		c->started_at = time(NULL);
		c->started_mono = now;
		agent_log("%s/%s: started container %s: pid %d%s", p->ns, p->name, c->name, (int)pid,
			  c->restart_count ? " (restart)" : "");
		agent_proc_state_write(p);
	}
	return wake;
}

static json_t *agent_terminated_json(const agent_ctr_t *c)
{
	char started[32], finished[32];
	kc_time_format(c->started_at, started);
	kc_time_format(c->finished_at, finished);
	const char *reason = c->exit_unknown ? "Unknown" : c->oom ? "OOMKilled" :
			     c->exit_code == 0 ? "Completed" : "Error";
	json_t *t = json_pack("{s:i, s:s, s:s, s:s}", "exitCode", c->exit_code, "reason", reason,
			      "startedAt", started, "finishedAt", finished);
	if (c->exit_signal)
		json_object_set_new(t, "signal", json_integer(c->exit_signal));
	if (c->exit_unknown)
		json_object_set_new(t, "message", json_string("the process ended while the agent "
				    "was not watching it; its exit status is unknown"));
	if (c->last_pid > 0) {
		char id[32];
		snprintf(id, sizeof(id), "pid://%d", (int)c->last_pid);
		json_object_set_new(t, "containerID", json_string(id));
	}
	return t;
}

typedef struct agent_status_ctx {
	agent_t *a;
	agent_pod_t *p;
} agent_status_ctx_t;

/* Writes the pod's status as its processes are into obj; returns whether it changed. */
static bool agent_status_apply(agent_t *a, const agent_pod_t *p, json_t *obj)
{
	json_t *before = json_deep_copy(kc_path(obj, "status"));
	json_t *css = json_array();
	int64_t now = kc_mono_ms();
	size_t running = 0, done = 0, ok = 0, never = 0;
	char notready[512] = "";
	size_t nl = 0;
	for (size_t i = 0; i < p->n_ctrs; i++) {
		const agent_ctr_t *c = &p->ctrs[i];
		json_t *cs = json_pack("{s:s, s:b, s:i, s:b}", "name", c->name, "ready", c->pid > 0,
				       "restartCount", c->restart_count, "started", c->pid > 0);
		char id[32], ts[32];
		if (c->pid > 0) {
			running++;
			kc_time_format(c->started_at, ts);
			snprintf(id, sizeof(id), "pid://%d", (int)c->pid);
			json_object_set_new(cs, "pid", json_integer(c->pid));
			json_object_set_new(cs, "containerID", json_string(id));
			json_object_set_new(cs, "state", json_pack("{s:{s:s}}", "running", "startedAt",
					    ts));
			if (c->exited)
				json_object_set_new(cs, "lastState", json_pack("{s:o}", "terminated",
						    agent_terminated_json(c)));
		} else if (c->exited) {
			if (c->last_pid > 0) {
				snprintf(id, sizeof(id), "pid://%d", (int)c->last_pid);
				json_object_set_new(cs, "containerID", json_string(id));
			}
			if (agent_ctr_restarts(obj, c) && !p->terminating) {
				char back[32], msg[512];
				int64_t left = c->next_start_mono - now;
				agent_backoff_text(c->backoff_ms, back, sizeof(back));
				snprintf(msg, sizeof(msg), "back-off %s restarting failed container=%s "
					 "pod=%s_%s(%s)", back, c->name, p->name, p->ns, p->uid);
				json_object_set_new(cs, "state", json_pack("{s:{s:s, s:s}}", "waiting",
					"reason", left > 0 ? "CrashLoopBackOff" : "ContainerCreating",
					"message", msg));
				json_object_set_new(cs, "lastState", json_pack("{s:o}", "terminated",
						    agent_terminated_json(c)));
			} else {
				done++;
				ok += c->exit_code == 0 && !c->exit_unknown;
				json_object_set_new(cs, "state", json_pack("{s:o}", "terminated",
						    agent_terminated_json(c)));
			}
		} else {
			never++;
			json_object_set_new(cs, "state", json_pack("{s:{s:s}}", "waiting", "reason",
					    "ContainerCreating"));
		}
		if (c->pid <= 0 && nl < sizeof(notready)) {
			int w = snprintf(notready + nl, sizeof(notready) - nl, "%s%s", nl ? " " : "",
					 c->name);
			nl = w < 0 ? sizeof(notready) : nl + (size_t)w;
		}
		json_array_append_new(css, cs);
	}
	const char *phase;
	if (p->n_ctrs > 0 && done == p->n_ctrs)
		phase = ok == done ? "Succeeded" : "Failed";
	else if (never == p->n_ctrs)
		phase = "Pending";
	else
		phase = "Running";
	bool terminal = !strcmp(phase, "Succeeded") || !strcmp(phase, "Failed");
	bool all_ready = p->n_ctrs > 0 && running == p->n_ctrs;
	char msg[600];
	snprintf(msg, sizeof(msg), "containers with unready status: [%s]", notready);
	kc_path_set(obj, "status.phase", json_string(phase));
	kc_condition_set(obj, "Initialized", "True", NULL, NULL);
	const char *reason = terminal ? "PodCompleted" : all_ready ? NULL : "ContainersNotReady";
	kc_condition_set(obj, "ContainersReady", all_ready ? "True" : "False", reason,
			 all_ready || terminal ? NULL : msg);
	kc_condition_set(obj, "Ready", all_ready ? "True" : "False", reason,
			 all_ready || terminal ? NULL : msg);
	kc_path_set(obj, "status.hostIP", json_string(a->cfg->address));
	char st[32];
	kc_time_format(p->start_time, st);
	kc_path_set(obj, "status.startTime", json_string(st));
	kc_path_set(obj, "status.containerStatuses", css);
	bool changed = !json_equal(before, kc_path(obj, "status"));
	json_decref(before);
	return changed;
}

static int agent_status_mutate(void *ud, json_t *obj, keel_error_t *err)
{
	agent_status_ctx_t *ctx = ud;
	(void)err;
	const char *uid = kc_uid(obj);
	if (!uid || strcmp(uid, ctx->p->uid) != 0 || kc_deleting(obj))
		return 1;
	return agent_status_apply(ctx->a, ctx->p, obj) ? 0 : 1;
}

/* Writes the status when it differs from what the informer shows. */
static int agent_status_write(agent_t *a, agent_pod_t *p, const json_t *pod)
{
	json_t *copy = json_deep_copy(pod);
	bool changed = copy && agent_status_apply(a, p, copy);
	json_decref(copy);
	if (!changed)
		return 0;
	agent_status_ctx_t ctx = { a, p };
	keel_error_t err = { 0 };
	int rc = kc_modify(a->k, KC_POD, p->ns, p->name, agent_status_mutate, &ctx, NULL, &err);
	if (rc != 0 && rc != KEEL_CODE_NOT_FOUND) {
		agent_log("%s/%s: writing status: %s", p->ns, p->name, err.message);
		return -1;
	}
	if (a->cfg->verbose)
		agent_log("%s/%s: status written", p->ns, p->name);
	return 0;
}

int64_t agent_kill_deadline(int64_t now_ms, int64_t grace_s)
{
	if (grace_s <= 0)
		return now_ms;
	if (grace_s > (INT64_MAX - now_ms) / 1000)
		return INT64_MAX;
	return now_ms + grace_s * 1000;
}

static int64_t agent_grace_seconds(const json_t *pod)
{
	int64_t g = kc_path_int(pod, "metadata.deletionGracePeriodSeconds", -1);
	if (g < 0)
		g = kc_path_int(pod, "spec.terminationGracePeriodSeconds", AGENT_DEFAULT_GRACE);
	return g < 0 ? AGENT_DEFAULT_GRACE : g;
}

/* A pod marked for deletion: SIGTERM, SIGKILL after its grace, then remove the object. */
static int agent_pod_terminate(agent_t *a, agent_pod_t *p, const json_t *pod)
{
	int64_t now = kc_mono_ms();
	if (p && !p->terminating) {
		int64_t grace = agent_grace_seconds(pod);
		p->terminating = true;
		p->kill_deadline = agent_kill_deadline(now, grace);
		if (agent_pod_alive(p)) {
			agent_log("%s/%s: deleting: SIGTERM, SIGKILL after %" PRId64 " s", p->ns,
				  p->name, grace);
			agent_pod_signal(p, grace > 0 ? SIGTERM : SIGKILL);
			p->killed = grace == 0;
		}
	}
	if (p && agent_pod_alive(p)) {
		if (now >= p->kill_deadline && !p->killed) {
			agent_log("%s/%s: grace period over: SIGKILL", p->ns, p->name);
			agent_pod_signal(p, SIGKILL);
			p->killed = true;
		}
		int64_t d = p->kill_deadline - now;
		return d > 0 && d < AGENT_TERM_POLL_MS ? (int)d : AGENT_TERM_POLL_MS;
	}
	keel_error_t err = { 0 };
	const char *ns = kc_namespace(pod), *name = kc_name(pod);
	int rc = kc_delete(a->k, KC_POD, ns, name, kc_resource_version(pod), &err);
	if (rc != 0 && rc != KEEL_CODE_NOT_FOUND) {
		/* ABORTED: the object changed since the informer saw it; its next event (or the
		 * resync) brings the new revision. */
		if (rc != KEEL_CODE_ABORTED)
			agent_log("%s/%s: deleting: %s", ns, name, err.message);
		return rc == KEEL_CODE_ABORTED ? AGENT_TERM_POLL_MS : -1;
	}
	agent_log("%s/%s: stopped and deleted", ns, name);
	if (p) {
		agent_proc_pod_remove(&a->limits, p);
		agent_pod_unlink(a, p);
		agent_pod_free(p);
	} else if (agent_uid_ok(kc_uid(pod))) {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/%s", a->pods_dir, kc_uid(pod));
		agent_rmtree(dir);
	}
	return 0;
}

static bool agent_phase_terminal(const json_t *pod)
{
	const char *ph = kc_path_str(pod, "status.phase");
	return ph && (!strcmp(ph, "Succeeded") || !strcmp(ph, "Failed"));
}

/* A pod's uid names its directory and cgroup, and the store can hold anything: a pod with a
 * uid that is not a plain token is refused (logged once per uid) and left alone entirely, not
 * run, not stopped, not deleted. */
static bool agent_pod_uid_accepted(agent_t *a, const char *key, const json_t *pod)
{
	const char *uid = kc_uid(pod);
	if (agent_uid_ok(uid)) {
		json_object_del(a->refused, key);
		return true;
	}
	const char *seen = json_string_value(json_object_get(a->refused, key));
	if (!seen || strcmp(seen, uid ? uid : "") != 0) {
		json_t *js = json_string(uid ? uid : "");
		char *shown = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
		json_decref(js);
		agent_log("%s: refused: metadata.uid %s is not 1-%d letters, digits or '-': "
			  "not run and not touched", key, shown ? shown : "?", AGENT_UID_MAX);
		free(shown);
		json_object_set_new(a->refused, key, json_string(uid ? uid : ""));
	}
	return false;
}

/* Level-triggered: makes the processes of one pod key match its object. Returns the delay
 * before it wants to look again (0: only on the next change), -1 to retry with backoff. */
static int agent_pod_sync(agent_t *a, const char *key)
{
	json_t *pod = kc_informer_get(a->pods_inf, key);
	agent_pod_t *p = agent_pod_find(a, key);
	bool mine = pod && agent_pod_mine(a, pod);
	if (!mine)
		json_object_del(a->refused, key);
	if (p && (!mine || !kc_uid(pod) || strcmp(kc_uid(pod), p->uid) != 0)) {
		agent_pod_kill_now(a, p, !pod ? "gone from the store" : !mine ?
				   "no longer bound to this node" : "replaced by a new pod");
		p = NULL;
	}
	int rc = 0;
	if (!mine || !agent_pod_uid_accepted(a, key, pod))
		goto out;
	if (kc_deleting(pod)) {
		rc = agent_pod_terminate(a, p, pod);
		goto out;
	}
	if (!p) {
		if (agent_phase_terminal(pod))
			goto out; /* finished before this agent (re)started: nothing to run */
		if (!(p = agent_pod_new(a, key, pod))) {
			agent_log("%s: out of memory", key);
			rc = -1;
			goto out;
		}
		char msg[512];
		if (agent_proc_pod_setup(&a->limits, p, pod, msg, sizeof(msg)) != 0) {
			agent_log("%s/%s: %s", p->ns, p->name, msg);
			agent_pod_free(p);
			rc = -1;
			goto out;
		}
		p->next = a->pods;
		a->pods = p;
	}
	int64_t wake = agent_pod_run(a, p, pod);
	if (agent_status_write(a, p, pod) != 0)
		rc = -1;
	else if (wake > 0)
		rc = wake > INT32_MAX ? INT32_MAX : (int)wake;
out:
	json_decref(pod);
	return rc;
}

/* ---- adoption after a restart --------------------------------------------------------------- */

static void agent_state_kill(const agent_pod_t *st)
{
	for (size_t i = 0; i < st->n_ctrs; i++) {
		const agent_ctr_t *c = &st->ctrs[i];
		if (c->pid > 0 && agent_proc_same(c->pid, c->proc_start))
			agent_proc_signal(c->pid, SIGKILL);
	}
}

/* For each pod directory: adopt the processes of a pod still bound here; kill and remove
 * what belongs to pods deleted or moved while the agent was down. */
static void agent_adopt(agent_t *a)
{
	DIR *d = opendir(a->pods_dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char dir[4096], msg[512];
		snprintf(dir, sizeof(dir), "%s/%s", a->pods_dir, e->d_name);
		agent_pod_t *st = agent_proc_state_read(dir, msg, sizeof(msg));
		json_t *pod = st ? kc_informer_get(a->pods_inf, st->key) : NULL;
		bool keep = pod && agent_pod_mine(a, pod) && kc_uid(pod) &&
			    !strcmp(kc_uid(pod), st->uid) && !strcmp(st->uid, e->d_name);
		if (!st)
			agent_log("%s: %s: removing it", dir, msg);
		if (!keep) {
			if (st) {
				agent_log("%s: %s while the agent was down: killing what is left",
					  st->key, pod ? "moved or replaced" : "deleted");
				agent_state_kill(st);
			}
			agent_rmtree(dir);
			if (a->limits.cgroup_base) {
				char cg[4096];
				snprintf(cg, sizeof(cg), "%s/%s", a->limits.cgroup_base, e->d_name);
				rmdir(cg);
			}
			agent_pod_free(st);
			json_decref(pod);
			continue;
		}
		if (agent_phase_terminal(pod)) {
			agent_pod_free(st); /* logs stay; nothing to run */
			json_decref(pod);
			continue;
		}
		agent_pod_t *p = agent_pod_new(a, st->key, pod);
		for (size_t i = 0; p && i < p->n_ctrs; i++) {
			agent_ctr_t *c = &p->ctrs[i];
			const agent_ctr_t *old = NULL;
			for (size_t j = 0; j < st->n_ctrs; j++)
				if (!strcmp(st->ctrs[j].name, c->name))
					old = &st->ctrs[j];
			if (!old)
				continue;
			c->restart_count = old->restart_count;
			c->started_at = old->started_at;
			c->started_once = true;
			c->last_pid = old->last_pid;
			c->backoff_ms = 0;
			c->next_start_mono = 0;
			if (old->pid > 0 && agent_proc_same(old->pid, old->proc_start)) {
				c->pid = old->pid;
				c->proc_start = old->proc_start;
				c->adopted = true;
				agent_log("%s/%s: adopted container %s: pid %d", p->ns, p->name, c->name,
					  (int)c->pid);
			} else if (old->pid > 0) {
				c->exited = true;
				c->exit_unknown = true;
				c->exit_code = -1;
				c->finished_at = time(NULL);
			} else {
				agent_ctr_exit_from_status(c, pod);
			}
		}
		if (p) {
			p->start_time = st->start_time > 0 ? st->start_time : p->start_time;
			p->cgroup = a->limits.mode == AGENT_LIMITS_CGROUP2;
			p->oom_kills = agent_proc_oom_kills(&a->limits, p);
			p->next = a->pods;
			a->pods = p;
			agent_proc_state_write(p);
			kc_queue_add(a->q, p->key);
		}
		agent_pod_free(st);
		json_decref(pod);
	}
	closedir(d);
}

/* ---- hollow pods --------------------------------------------------------------------------- */

static void agent_hollow_status(agent_t *a, json_t *obj)
{
	char now[32];
	kc_time_now(now);
	json_t *css = json_array();
	const json_t *ctrs = kc_path(obj, "spec.containers");
	size_t i;
	const json_t *c;
	json_array_foreach(ctrs, i, c)
		json_array_append_new(css, json_pack("{s:s, s:b, s:i, s:b, s:{s:{s:s}}}", "name",
			kc_path_str(c, "name") ? kc_path_str(c, "name") : "", "ready", 1,
			"restartCount", 0, "started", 1, "state", "running", "startedAt", now));
	kc_path_set(obj, "status.phase", json_string("Running"));
	kc_condition_set(obj, "Initialized", "True", NULL, NULL);
	kc_condition_set(obj, "ContainersReady", "True", NULL, NULL);
	kc_condition_set(obj, "Ready", "True", NULL, NULL);
	kc_path_set(obj, "status.hostIP", json_string(a->cfg->address));
	kc_path_set(obj, "status.startTime", json_string(now));
	kc_path_set(obj, "status.containerStatuses", css);
}

static bool agent_hollow_running(const json_t *pod)
{
	const char *ph = kc_path_str(pod, "status.phase");
	return ph && !strcmp(ph, "Running") && kc_path(pod, "status.containerStatuses");
}

static int agent_hollow_mutate(void *ud, json_t *obj, keel_error_t *err)
{
	agent_t *a = ud;
	(void)err;
	if (kc_deleting(obj) || agent_hollow_running(obj) || !agent_pod_mine(a, obj))
		return 1;
	agent_hollow_status(a, obj);
	return 0;
}

static bool agent_hollow_done(agent_t *a, const char *key, const char *uid, int set)
{
	pthread_mutex_lock(&a->done_mu);
	const char *have = json_string_value(json_object_get(a->done, key));
	bool done = have && uid && !strcmp(have, uid);
	if (set > 0)
		json_object_set_new(a->done, key, json_string(uid));
	else if (set < 0)
		json_object_del(a->done, key);
	pthread_mutex_unlock(&a->done_mu);
	return done;
}

/* Hollow: a bound pod gets status Running once; a deleted one is removed at once. */
static int agent_hollow_pod_sync(agent_t *a, const char *key)
{
	json_t *pod = kc_informer_get(a->pods_inf, key);
	int rc = 0;
	keel_error_t err = { 0 };
	if (!pod) {
		agent_hollow_done(a, key, NULL, -1);
		return 0;
	}
	const char *uid = kc_uid(pod);
	if (!agent_pod_mine(a, pod) || !uid)
		goto out;
	if (kc_deleting(pod)) {
		rc = kc_delete(a->k, KC_POD, kc_namespace(pod), kc_name(pod), kc_resource_version(pod),
			       &err);
		if (rc == 0 || rc == KEEL_CODE_NOT_FOUND) {
			agent_hollow_done(a, key, NULL, -1);
			if (a->cfg->verbose)
				agent_log("%s: deleted (hollow)", key);
			rc = 0;
		} else {
			rc = rc == KEEL_CODE_ABORTED ? AGENT_TERM_POLL_MS : -1;
		}
		goto out;
	}
	if (agent_hollow_done(a, key, uid, 0))
		goto out;
	if (agent_hollow_running(pod)) {
		agent_hollow_done(a, key, uid, 1);
		goto out;
	}
	json_t *copy = json_deep_copy(pod);
	agent_hollow_status(a, copy);
	rc = kc_update(a->k, copy, &err);
	json_decref(copy);
	if (rc == KEEL_CODE_ABORTED)
		rc = kc_modify(a->k, KC_POD, kc_namespace(pod), kc_name(pod), agent_hollow_mutate, a,
			       NULL, &err);
	if (rc == 0 || rc == KEEL_CODE_NOT_FOUND) {
		if (rc == 0)
			agent_hollow_done(a, key, uid, 1);
		if (a->cfg->verbose)
			agent_log("%s: Running (hollow)", key);
		rc = 0;
	} else {
		agent_log("%s: writing status: %s", key, err.message);
		rc = -1;
	}
out:
	json_decref(pod);
	return rc;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static int agent_handle(agent_t *a, const char *key)
{
	kc_kind_t kind;
	char *ns = NULL, *name = NULL;
	int rc = 0;
	if (kc_key_parse(key, strlen(key), &kind, &ns, &name) != 0)
		return 0;
	if (kind == KC_POD) {
		rc = a->cfg->hollow ? agent_hollow_pod_sync(a, key) : agent_pod_sync(a, key);
	} else if (kind == KC_NODE || kind == KC_LEASE) {
		agent_node_t *an = agent_node_find(a, name);
		if (an)
			rc = kind == KC_NODE ? agent_node_sync(a, an) : agent_lease_sync(a, an);
	}
	free(ns);
	free(name);
	return rc;
}

static void agent_handle_key(agent_t *a, char *key)
{
	int rc = agent_handle(a, key);
	if (rc < 0) {
		kc_queue_add_rate_limited(a->q, key, AGENT_RETRY_MAX_MS);
	} else {
		kc_queue_forget(a->q, key);
		if (rc > 0)
			kc_queue_add_after(a->q, key, rc);
	}
	kc_queue_done(a->q, key);
}

static void agent_pods_cb(void *ud, kc_kind_t kind, const char *key, const json_t *old_obj,
			  const json_t *new_obj)
{
	agent_t *a = ud;
	(void)kind;
	/* Before pods_inf is set, the resync that follows covers the initial list. */
	if (!atomic_load(&a->pods_started))
		return;
	if (agent_pod_mine(a, new_obj) || agent_pod_mine(a, old_obj))
		kc_queue_add(a->q, key);
}

static void agent_nodes_cb(void *ud, kc_kind_t kind, const char *key, const json_t *old_obj,
			   const json_t *new_obj)
{
	agent_t *a = ud;
	(void)kind;
	const json_t *obj = new_obj ? new_obj : old_obj;
	if (!agent_node_find(a, kc_name(obj)))
		return;
	if (!new_obj || !kc_node_ready(new_obj))
		kc_queue_add(a->q, key);
}

/* Every pod key this agent should look at again: those bound here and those it runs. */
static void agent_resync(agent_t *a)
{
	json_t *all = kc_informer_list(a->pods_inf);
	size_t i;
	json_t *pod;
	json_array_foreach(all, i, pod) {
		if (!agent_pod_mine(a, pod))
			continue;
		if (a->cfg->hollow && !kc_deleting(pod) && agent_hollow_running(pod))
			continue;
		char *key = kc_object_key(pod);
		if (key)
			kc_queue_add(a->q, key);
		free(key);
	}
	json_decref(all);
	for (agent_pod_t *p = a->pods; p; p = p->next)
		kc_queue_add(a->q, p->key);
}

/* The log server's question: the uid and container names of a pod bound here. */
static int agent_http_lookup(void *ud, const char *ns, const char *name, char **uid,
			     json_t **containers)
{
	agent_t *a = ud;
	char *key = kc_key(KC_POD, ns, name);
	json_t *pod = key ? kc_informer_get(a->pods_inf, key) : NULL;
	free(key);
	int rc = -1;
	if (pod && agent_pod_mine(a, pod) && agent_uid_ok(kc_uid(pod))) {
		*uid = strdup(kc_uid(pod));
		*containers = json_array();
		size_t i;
		const json_t *c;
		json_array_foreach(kc_path(pod, "spec.containers"), i, c)
			if (kc_path_str(c, "name"))
				json_array_append_new(*containers, json_string(kc_path_str(c, "name")));
		rc = *uid ? 0 : -1;
	}
	json_decref(pod);
	return rc;
}

/* ---- stopping ------------------------------------------------------------------------------ */

/* SIGTERM every pod, SIGKILL after each one's grace period, reap them all. */
static void agent_stop_pods(agent_t *a)
{
	int64_t now = kc_mono_ms();
	for (agent_pod_t *p = a->pods; p; p = p->next) {
		json_t *pod = kc_informer_get(a->pods_inf, p->key);
		int64_t grace = pod ? kc_path_int(pod, "spec.terminationGracePeriodSeconds",
						  AGENT_DEFAULT_GRACE) : 0;
		json_decref(pod);
		p->terminating = true;
		p->kill_deadline = agent_kill_deadline(now, grace);
		if (agent_pod_alive(p)) {
			agent_log("%s/%s: agent stopping: SIGTERM", p->ns, p->name);
			agent_pod_signal(p, SIGTERM);
		}
	}
	for (;;) {
		agent_reap(a);
		bool any = false;
		now = kc_mono_ms();
		for (agent_pod_t *p = a->pods; p; p = p->next) {
			if (!agent_pod_alive(p))
				continue;
			any = true;
			if (now >= p->kill_deadline && !p->killed) {
				agent_log("%s/%s: grace period over: SIGKILL", p->ns, p->name);
				agent_pod_signal(p, SIGKILL);
				p->killed = true;
			}
		}
		if (!any)
			break;
		usleep(20000);
	}
	while (a->pods) {
		agent_pod_t *p = a->pods;
		a->pods = p->next;
		agent_pod_free(p);
	}
}

/* ---- setup and main loops ------------------------------------------------------------------ */

static int agent_nodes_make(agent_t *a)
{
	size_t n = a->cfg->hollow ? (size_t)a->cfg->nodes : 1;
	a->nodes = calloc(n, sizeof(agent_node_t));
	if (!a->nodes)
		return -1;
	a->n_nodes = n;
	int width = 4;
	for (size_t x = n - 1; x >= 10000; x /= 10)
		width++;
	a->name_width = width;
	for (size_t i = 0; i < n; i++) {
		agent_node_t *an = &a->nodes[i];
		an->a = a;
		char name[256];
		if (a->cfg->hollow)
			snprintf(name, sizeof(name), "%.200s%0*zu", a->cfg->node_prefix, width % 16, i);
		else
			snprintf(name, sizeof(name), "%s", a->cfg->node);
		an->name = strdup(name);
		an->node_key = kc_key(KC_NODE, NULL, name);
		an->lease_key = kc_key(KC_LEASE, KC_NODE_LEASE_NAMESPACE, name);
		atomic_init(&an->lease_alive, false);
		atomic_init(&an->registered, false);
		if (!an->name || !an->node_key || !an->lease_key)
			return -1;
	}
	return 0;
}

static void agent_nodes_free(agent_t *a)
{
	for (size_t i = 0; a->nodes && i < a->n_nodes; i++) {
		free(a->nodes[i].name);
		free(a->nodes[i].node_key);
		free(a->nodes[i].lease_key);
	}
	free(a->nodes);
}

static void *agent_worker_main(void *arg)
{
	agent_t *a = arg;
	char *key;
	while ((key = kc_queue_get(a->q, -1)) != NULL)
		agent_handle_key(a, key);
	return NULL;
}

/* Starts an informer, retrying while the store is unreachable. */
static int agent_informer_start(agent_t *a, kc_kind_t kind, kc_informer_fn fn, kc_informer_t **out)
{
	keel_error_t err = { 0 };
	while (!*a->stop) {
		if (kc_informer_start(a->k, kind, NULL, fn, a, out, &err) == 0)
			return 0;
		*out = NULL;
		agent_log("watching %s: %s (retrying)", kc_kind_info(kind)->plural, err.message);
		sleep(1);
	}
	return -1;
}

#define AGENT_HOLLOW_REGISTER_WAIT_MS 120000

/* Hollow: workers register the nodes (leases first), then handle the pods. */
static void agent_run_hollow(agent_t *a)
{
	pthread_t workers[AGENT_HOLLOW_WORKERS];
	size_t started = 0;
	for (size_t i = 0; i < AGENT_HOLLOW_WORKERS; i++)
		if (pthread_create(&workers[i], NULL, agent_worker_main, a) == 0)
			started++;
	for (size_t i = 0; i < a->n_nodes; i++)
		kc_queue_add(a->q, a->nodes[i].lease_key);
	for (size_t i = 0; i < a->n_nodes; i++)
		kc_queue_add(a->q, a->nodes[i].node_key);
	int64_t t0 = kc_mono_ms();
	while (!*a->stop && atomic_load(&a->n_registered) < a->n_nodes &&
	       kc_mono_ms() - t0 < AGENT_HOLLOW_REGISTER_WAIT_MS)
		usleep(20000);
	agent_log("hollow mode: %zu of %zu nodes registered in %.2f s", atomic_load(&a->n_registered),
		  a->n_nodes, (double)(kc_mono_ms() - t0) / 1000.0);
	if (agent_informer_start(a, KC_POD, agent_pods_cb, &a->pods_inf) == 0) {
		atomic_store(&a->pods_started, true);
		agent_http_start(a->http, a->cfg->root_dir, agent_http_lookup, a);
		agent_resync(a);
	}
	int64_t last_resync = kc_mono_ms();
	while (!*a->stop) {
		usleep(100000);
		if (a->pods_inf && kc_mono_ms() - last_resync >= AGENT_HOLLOW_RESYNC_MS) {
			last_resync = kc_mono_ms();
			agent_resync(a);
		}
	}
	kc_queue_shutdown(a->q);
	for (size_t i = 0; i < started; i++)
		pthread_join(workers[i], NULL);
}

static void agent_run_real(agent_t *a)
{
	int64_t last_resync = kc_mono_ms();
	while (!*a->stop) {
		char *key = kc_queue_get(a->q, 100);
		if (key)
			agent_handle_key(a, key);
		agent_reap(a);
		if (kc_mono_ms() - last_resync >= AGENT_RESYNC_MS) {
			last_resync = kc_mono_ms();
			agent_resync(a);
		}
	}
}

static int agent_setup(agent_t *a, char *msg, size_t n)
{
	agent_config_t *cfg = a->cfg;
	a->labels = json_object();
	a->taints = json_array();
	a->done = json_object();
	a->refused = json_object();
	a->node_info = agent_node_info_make();
	if (agent_labels_parse(cfg->labels, a->labels, msg, n) != 0 ||
	    agent_taints_parse(cfg->taints, a->taints, msg, n) != 0)
		return 2;
	if (cfg->cpu_milli < 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->cpu_milli = (cpus > 0 ? cpus : 1) * 1000;
	}
	if (cfg->memory_bytes < 0)
		cfg->memory_bytes = agent_mem_total();
	if (agent_mkdirs(cfg->root_dir) != 0) {
		snprintf(msg, n, "--root-dir %s: %s", cfg->root_dir, strerror(errno));
		return 1;
	}
	char *abs = realpath(cfg->root_dir, NULL);
	if (abs) {
		free(cfg->root_dir);
		cfg->root_dir = abs;
	}
	size_t len = strlen(cfg->root_dir) + 6;
	a->pods_dir = malloc(len);
	if (!a->pods_dir || agent_nodes_make(a) != 0) {
		snprintf(msg, n, "out of memory");
		return 1;
	}
	snprintf(a->pods_dir, len, "%s/pods", cfg->root_dir);
	if (agent_mkdirs(a->pods_dir) != 0) {
		snprintf(msg, n, "%s: %s", a->pods_dir, strerror(errno));
		return 1;
	}
	if (cfg->hollow)
		a->limits.mode = AGENT_LIMITS_SETRLIMIT;
	else
		agent_limits_detect(&a->limits, cfg->node);
	a->port = cfg->port;
	if (agent_http_bind(cfg->address, &a->port, &a->http, msg, n) != 0)
		return 1;
	a->q = kc_queue_new();
	if (!a->q) {
		snprintf(msg, n, "out of memory");
		return 1;
	}
	keel_error_t err = { 0 };
	if (kc_connect(cfg->endpoints, &a->k, &err) != 0) {
		snprintf(msg, n, "connecting to the store: %s", err.message);
		return 1;
	}
	return 0;
}

static void agent_teardown(agent_t *a)
{
	if (a->q)
		kc_queue_shutdown(a->q);
	agent_http_stop(a->http);
	a->http = NULL;
	if (a->pods_inf)
		kc_informer_stop(a->pods_inf);
	if (a->nodes_inf)
		kc_informer_stop(a->nodes_inf);
	if (a->k)
		keel_close(a->k);
	if (a->q)
		kc_queue_free(a->q);
	agent_limits_free(&a->limits);
	agent_nodes_free(a);
	free(a->pods_dir);
	json_decref(a->labels);
	json_decref(a->taints);
	json_decref(a->done);
	json_decref(a->refused);
	json_decref(a->node_info);
	pthread_mutex_destroy(&a->done_mu);
}

int kc_agent_main(int argc, char **argv)
{
	agent_config_t cfg;
	char msg[1024];
	int rc = agent_config_parse(argc, argv, &cfg, msg, sizeof(msg));
	if (rc != 0) {
		if (rc < 0)
			fprintf(stderr, "error: %s\n", msg);
		agent_config_free(&cfg);
		return rc < 0 ? 2 : 0;
	}
	keel_init();
	agent_t a = { .cfg = &cfg, .stop = kc_signals_install() };
	pthread_mutex_init(&a.done_mu, NULL);
	rc = agent_setup(&a, msg, sizeof(msg));
	if (rc != 0) {
		fprintf(stderr, "error: %s\n", msg);
		agent_teardown(&a);
		agent_config_free(&cfg);
		return rc;
	}
	if (cfg.hollow)
		agent_log("hollow mode: %zu nodes %s%0*d..%s%0*zu, logs on %s:%d", a.n_nodes,
			  cfg.node_prefix, a.name_width, 0, cfg.node_prefix, a.name_width,
			  a.n_nodes - 1, cfg.address, a.port);
	else
		agent_log("node %s: root %s, logs on %s:%d, limits by %s%s", cfg.node, cfg.root_dir,
			  cfg.address, a.port, agent_limits_name(&a.limits),
			  a.limits.mode == AGENT_LIMITS_SETRLIMIT ?
			  " (memory as RLIMIT_AS; cpu limits are not enforced without cgroup2)" : "");
	if (agent_informer_start(&a, KC_NODE, agent_nodes_cb, &a.nodes_inf) == 0) {
		if (cfg.hollow) {
			agent_run_hollow(&a);
		} else {
			/* Heartbeat and Node first, so the pods' status follows a Ready node. */
			while (!*a.stop && agent_lease_sync(&a, &a.nodes[0]) != 0)
				sleep(1);
			while (!*a.stop && agent_node_sync(&a, &a.nodes[0]) != 0)
				sleep(1);
			if (agent_informer_start(&a, KC_POD, agent_pods_cb, &a.pods_inf) == 0) {
				atomic_store(&a.pods_started, true);
				agent_adopt(&a);
				agent_http_start(a.http, cfg.root_dir, agent_http_lookup, &a);
				agent_resync(&a);
				agent_run_real(&a);
			}
		}
		agent_log("stopping");
		kc_queue_shutdown(a.q);
		agent_http_stop(a.http);
		a.http = NULL;
		if (!cfg.hollow && a.pods_inf)
			agent_stop_pods(&a);
		bool revoke = true;
		for (size_t i = 0; i < a.n_nodes; i++)
			revoke = agent_lease_revoke(&a, &a.nodes[i], revoke) && revoke;
	}
	agent_teardown(&a);
	agent_config_free(&cfg);
	agent_log("stopped");
	return 0;
}
