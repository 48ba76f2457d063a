/* cluster/agent_int.h — what the agent's three files share: its flags, the per-pod process
 * table (agent_proc.c runs processes, agent.c decides), and the log server's entry points.
 * Private to cluster/agent*.c; nothing here is part of the cluster contract. */
#ifndef KEEL_AGENT_INT_H
#define KEEL_AGENT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cluster.h"

/* ---- flags --------------------------------------------------------------------------------- */

typedef struct agent_config {
	const char *node;
	const char *endpoints;
	const char *labels;      /* k=v,... as given */
	const char *taints;      /* key=value:Effect,... as given */
	int64_t cpu_milli;       /* -1: online CPUs */
	int64_t memory_bytes;    /* -1: MemTotal */
	int max_pods;
	char *root_dir;          /* malloc'ed */
	const char *address;
	int port;
	int lease_duration;      /* seconds */
	int backoff_initial_ms;
	int backoff_max_ms;
	bool hollow;
	int nodes;
	const char *node_prefix;
	int verbose;
} agent_config_t;

/* 0, or -1 with the reason in msg; 1 when --help was asked for. */
int agent_config_parse(int argc, char **argv, agent_config_t *cfg, char *msg, size_t n);
void agent_config_free(agent_config_t *cfg);

/* One line on stderr: "<time> agent: <text>". */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- processes (agent_proc.c) -------------------------------------------------------------- */

/* How limits are enforced on this machine. */
typedef enum agent_limits_mode { AGENT_LIMITS_SETRLIMIT = 0, AGENT_LIMITS_CGROUP2 } agent_limits_mode_t;

typedef struct agent_limits {
	agent_limits_mode_t mode;
	char *cgroup_base;       /* cgroup2: the agent's own subtree (malloc'ed), else NULL */
} agent_limits_t;

/* Finds cgroup2 with cpu and memory in a writable subtree named after node; else setrlimit. */
void agent_limits_detect(agent_limits_t *l, const char *node);
void agent_limits_free(agent_limits_t *l);
const char *agent_limits_name(const agent_limits_t *l);

/* One container's process and its history. */
typedef struct agent_ctr {
	char *name;
	pid_t pid;               /* > 0 while running */
	uint64_t proc_start;     /* /proc/<pid>/stat field 22 of pid */
	bool adopted;            /* not our child: watched by polling */
	bool started_once;
	int64_t started_at;      /* unix seconds of the current/last start */
	int64_t started_mono;    /* kc_mono_ms of the current/last start (0 when adopted) */
	int restart_count;
	/* The last exit (valid when exited). */
	bool exited;
	int exit_code;
	int exit_signal;
	int64_t finished_at;
	bool exit_unknown;       /* adopted, or lost while the agent was down */
	bool oom;                /* killed by its cgroup's OOM killer */
	pid_t last_pid;
	int64_t backoff_ms;      /* the delay the next restart waits */
	int64_t next_start_mono; /* restart not before this */
} agent_ctr_t;

typedef struct agent_pod {
	struct agent_pod *next;
	char *key;               /* /registry/pods/<ns>/<name> */
	char *ns, *name, *uid;
	char *dir;               /* <root>/pods/<uid> */
	agent_ctr_t *ctrs;
	size_t n_ctrs;
	bool cgroup;             /* a cgroup was made for it */
	int64_t oom_kills;       /* its cgroup's oom_kill count last seen */
	bool terminating;        /* SIGTERM sent */
	int64_t kill_deadline;   /* mono ms: SIGKILL after */
	bool killed;             /* SIGKILL sent */
	int64_t start_time;      /* unix seconds: status.startTime */
} agent_pod_t;

/* What a start needs besides the container spec. */
typedef struct agent_spawn {
	const agent_limits_t *limits;
	const char *node;
	const agent_pod_t *pod;
	const json_t *container; /* the container spec */
} agent_spawn_t;

/* Starts one container: returns its pid, or -1 with msg. */
pid_t agent_proc_spawn(const agent_spawn_t *s, char *msg, size_t n);
/* /proc/<pid>/stat field 22, or 0 when the process is gone (or a zombie, when alive_only). */
uint64_t agent_proc_start_time(pid_t pid);
/* Whether pid still is the process that started at start. */
bool agent_proc_same(pid_t pid, uint64_t start);
/* Signals a container's process group. */
void agent_proc_signal(pid_t pgid, int sig);
/* A pod's directory and cgroup are named after its uid, taken from the store: only a
 * non-empty token of at most AGENT_UID_MAX letters, digits and '-' may become a path. */
#define AGENT_UID_MAX 64
bool agent_uid_ok(const char *uid);
/* (agent.c) now_ms plus grace_s seconds; INT64_MAX when that does not fit; a grace <= 0: now. */
int64_t agent_kill_deadline(int64_t now_ms, int64_t grace_s);
/* Prepares a pod's directory (and cgroup with its limits): -1 with msg. */
int agent_proc_pod_setup(const agent_limits_t *l, agent_pod_t *p, const json_t *pod, char *msg,
			 size_t n);
/* The pod cgroup's memory.events oom_kill count, or -1 (no cgroup). */
int64_t agent_proc_oom_kills(const agent_limits_t *l, const agent_pod_t *p);
/* Removes the pod's directory and cgroup. */
void agent_proc_pod_remove(const agent_limits_t *l, agent_pod_t *p);
/* Writes <dir>/state.json (atomic rename). */
int agent_proc_state_write(const agent_pod_t *p);
/* Reads <dir>/state.json into a new agent_pod_t (ctrs with pid/proc_start/restart_count);
 * NULL with msg when missing or malformed. */
agent_pod_t *agent_proc_state_read(const char *dir, char *msg, size_t n);
void agent_pod_free(agent_pod_t *p);
/* mkdir -p */
int agent_mkdirs(const char *path);
/* rm -r */
int agent_rmtree(const char *path);

/* ---- the log server (agent_http.c) --------------------------------------------------------- */

typedef struct agent_http agent_http_t;
/* What the server asks the agent: the pod's uid and container names (a new array of
 * strings), or -1 when there is no such pod here. Thread-safe. */
typedef int (*agent_http_lookup_fn)(void *ud, const char *ns, const char *name, char **uid,
				    json_t **containers);
/* Binds address:port (port 0: any); the bound port is in *port. Serving starts with
 * agent_http_start. */
int agent_http_bind(const char *address, int *port, agent_http_t **out, char *msg, size_t n);
int agent_http_start(agent_http_t *h, const char *root_dir, agent_http_lookup_fn fn, void *ud);
/* Stops serving, ends every follow, joins every thread, frees. */
void agent_http_stop(agent_http_t *h);

#endif
