/* cluster/agent_proc.c — pods as process groups: a pod's directory, state file and cgroup,
 * starting a container (fork + exec with its log, env and limits), signalling and watching it.
 * Decides nothing: agent.c says what to start and stop. The child side of fork calls only
 * async-signal-safe functions (everything it needs is prepared before the fork). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "agent_int.h"

extern char **environ;

#define AGENT_CGROUP_ROOT "/sys/fs/cgroup"
#define AGENT_CGROUP2_MAGIC 0x63677270
#define AGENT_CPU_PERIOD_US 100000

/* ---- small file helpers -------------------------------------------------------------------- */

int agent_mkdirs(const char *path)
{
	char buf[4096];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int agent_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

int agent_rmtree(const char *path)
{
	return nftw(path, agent_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int agent_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = strlen(text);
	ssize_t w = write(fd, text, len);
	int saved = errno;
	close(fd);
	errno = saved;
	return w == (ssize_t)len ? 0 : -1;
}

/* The whole file (NUL-terminated, malloc'ed) or NULL. */
static char *agent_read_file(const char *path, size_t max)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	char *buf = malloc(max + 1);
	size_t n = buf ? fread(buf, 1, max, f) : 0;
	fclose(f);
	if (buf)
		buf[n] = 0;
	return buf;
}

static bool agent_word_in(const char *text, const char *word)
{
	size_t wl = strlen(word);
	for (const char *p = text; (p = strstr(p, word)) != NULL; p += wl) {
		bool start = p == text || p[-1] == ' ' || p[-1] == '\n';
		bool end = p[wl] == 0 || p[wl] == ' ' || p[wl] == '\n';
		if (start && end)
			return true;
	}
	return false;
}

/* ---- limits: cgroup2 when the machine allows it, else setrlimit ---------------------------- */

/* Makes <dir>/keel-agent-<node> with cpu and memory usable by its children. */
static char *agent_cgroup_try(const char *dir, const char *node)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/cgroup.controllers", dir);
	char *ctl = agent_read_file(path, 4096);
	bool ok = ctl && agent_word_in(ctl, "cpu") && agent_word_in(ctl, "memory");
	free(ctl);
	if (!ok)
		return NULL;
	char base[4096];
	snprintf(base, sizeof(base), "%s/keel-agent-%s", dir, node);
	bool made = mkdir(base, 0755) == 0;
	if (!made && errno != EEXIST)
		return NULL;
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
	char sub[4200];
	snprintf(sub, sizeof(sub), "%s/cgroup.subtree_control", base);
	if (agent_write_file(path, "+cpu +memory") != 0 || agent_write_file(sub, "+cpu +memory") != 0) {
		if (made)
			rmdir(base);
		return NULL;
	}
	return strdup(base);
}

void agent_limits_detect(agent_limits_t *l, const char *node)
{
	l->mode = AGENT_LIMITS_SETRLIMIT;
	l->cgroup_base = NULL;
	struct statfs sf;
	if (statfs(AGENT_CGROUP_ROOT, &sf) != 0 || (unsigned long)sf.f_type != AGENT_CGROUP2_MAGIC)
		return;
	char *self = agent_read_file("/proc/self/cgroup", 4096);
	if (!self)
		return;
	/* cgroup2 alone: one line "0::/path". The agent's own cgroup holds the agent, so only
	 * the root may get children with controllers there; otherwise try its parent. */
	char *p = strstr(self, "0::");
	char own[4096] = "";
	if (p) {
		p += 3;
		size_t len = strcspn(p, "\n");
		snprintf(own, sizeof(own), "%s%.*s", AGENT_CGROUP_ROOT, (int)len, p);
		while (strlen(own) > 1 && own[strlen(own) - 1] == '/')
			own[strlen(own) - 1] = 0;
	}
	free(self);
	if (!*own)
		return;
	char *base = NULL;
	if (!strcmp(own, AGENT_CGROUP_ROOT)) {
		base = agent_cgroup_try(own, node);
	} else {
		char *slash = strrchr(own, '/');
		if (slash && slash > own + strlen(AGENT_CGROUP_ROOT) - 1) {
			*slash = 0;
			base = agent_cgroup_try(own, node);
		}
	}
	if (base) {
		l->mode = AGENT_LIMITS_CGROUP2;
		l->cgroup_base = base;
	}
}

void agent_limits_free(agent_limits_t *l)
{
	if (l->cgroup_base)
		rmdir(l->cgroup_base);
	free(l->cgroup_base);
	l->cgroup_base = NULL;
}

const char *agent_limits_name(const agent_limits_t *l)
{
	return l->mode == AGENT_LIMITS_CGROUP2 ? "cgroup2" : "setrlimit";
}

/* A container's limit in thousandths (cpu) or thousandths of bytes; -1 when none. */
static int64_t agent_ctr_limit(const json_t *ctr, const char *res)
{
	char path[64], msg[128];
	snprintf(path, sizeof(path), "resources.limits.%s", res);
	const json_t *q = kc_path(ctr, path);
	int64_t milli;
	if (!q || kc_quantity_parse(q, &milli, msg, sizeof(msg)) != 0 || milli <= 0)
		return -1;
	return milli;
}

/* The pod's limit: the sum over containers, or none when one container has none. */
static int64_t agent_pod_limit(const json_t *pod, const char *res)
{
	const json_t *ctrs = kc_path(pod, "spec.containers");
	int64_t sum = 0;
	size_t i;
	const json_t *c;
	json_array_foreach(ctrs, i, c) {
		int64_t v = agent_ctr_limit(c, res);
		if (v < 0 || sum > INT64_MAX - v)
			return -1;
		sum += v;
	}
	return sum > 0 ? sum : -1;
}

static int agent_cgroup_make(const agent_limits_t *l, agent_pod_t *p, const json_t *pod, char *msg,
			     size_t n)
{
	char dir[4096], file[4200], val[64];
	snprintf(dir, sizeof(dir), "%s/%s", l->cgroup_base, p->uid);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		snprintf(msg, n, "cgroup %s: %s", dir, strerror(errno));
		return -1;
	}
	p->cgroup = true;
	int64_t mem = agent_pod_limit(pod, "memory");
	if (mem > 0)
		snprintf(val, sizeof(val), "%" PRId64, mem / 1000);
	else
		snprintf(val, sizeof(val), "max");
	snprintf(file, sizeof(file), "%s/memory.max", dir);
	if (agent_write_file(file, val) != 0) {
		snprintf(msg, n, "%s: %s", file, strerror(errno));
		return -1;
	}
	int64_t cpu = agent_pod_limit(pod, "cpu");
	if (cpu > 0) {
		/* cpu milli -> microseconds per period: 1000m is one full period. */
		int64_t quota = cpu * AGENT_CPU_PERIOD_US / 1000;
		if (quota < 1000)
			quota = 1000;
		snprintf(val, sizeof(val), "%" PRId64 " %d", quota, AGENT_CPU_PERIOD_US);
	} else {
		snprintf(val, sizeof(val), "max %d", AGENT_CPU_PERIOD_US);
	}
	snprintf(file, sizeof(file), "%s/cpu.max", dir);
	if (agent_write_file(file, val) != 0) {
		snprintf(msg, n, "%s: %s", file, strerror(errno));
		return -1;
	}
	return 0;
}

bool agent_uid_ok(const char *uid)
{
	size_t len = uid ? strlen(uid) : 0;
	if (len == 0 || len > AGENT_UID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((uid[i] >= '0' && uid[i] <= '9') || (uid[i] >= 'a' && uid[i] <= 'z') ||
		      (uid[i] >= 'A' && uid[i] <= 'Z') || uid[i] == '-'))
			return false;
	return true;
}

int agent_proc_pod_setup(const agent_limits_t *l, agent_pod_t *p, const json_t *pod, char *msg,
			 size_t n)
{
	if (!agent_uid_ok(p->uid)) {
		snprintf(msg, n, "metadata.uid is not a valid uid: no directory made");
		return -1;
	}
	if (agent_mkdirs(p->dir) != 0) {
		snprintf(msg, n, "%s: %s", p->dir, strerror(errno));
		return -1;
	}
	if (l->mode == AGENT_LIMITS_CGROUP2 && !p->cgroup)
		return agent_cgroup_make(l, p, pod, msg, n);
	return 0;
}

int64_t agent_proc_oom_kills(const agent_limits_t *l, const agent_pod_t *p)
{
	if (!p->cgroup || !l->cgroup_base)
		return -1;
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s/memory.events", l->cgroup_base, p->uid);
	char *text = agent_read_file(path, 4096);
	const char *at = text ? strstr(text, "oom_kill ") : NULL;
	long long n = -1;
	if (!at || sscanf(at, "oom_kill %lld", &n) != 1)
		n = -1;
	free(text);
	return n;
}

void agent_proc_pod_remove(const agent_limits_t *l, agent_pod_t *p)
{
	/* With such a uid its dir and cgroup paths point anywhere: never made, never removed. */
	if (!agent_uid_ok(p->uid))
		return;
	if (p->cgroup && l->cgroup_base) {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/%s", l->cgroup_base, p->uid);
		rmdir(dir);
		p->cgroup = false;
	}
	agent_rmtree(p->dir);
}

/* ---- processes ----------------------------------------------------------------------------- */

/* Field 22 (starttime) and field 3 (state) of /proc/<pid>/stat; 0 when there is no such pid. */
static uint64_t agent_proc_stat(pid_t pid, char *state_out)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	char *s = agent_read_file(path, 2048);
	if (!s)
		return 0;
	/* The name (field 2) may hold spaces and parentheses: count from the last ')'. */
	char *p = strrchr(s, ')');
	uint64_t start = 0;
	char state = 0;
	if (p) {
		unsigned long long v = 0;
		/* fields 3..22: state, 18 numbers, then starttime */
		int got = sscanf(p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u "
				 "%*u %*d %*d %*d %*d %*d %*d %llu", &state, &v);
		if (got == 2)
			start = v;
	}
	free(s);
	*state_out = state;
	return start;
}

uint64_t agent_proc_start_time(pid_t pid)
{
	char state;
	return agent_proc_stat(pid, &state);
}

bool agent_proc_same(pid_t pid, uint64_t start)
{
	if (pid <= 0 || start == 0)
		return false;
	char state = 0;
	/* A zombie that is not our child is as good as gone: its parent reaps it. */
	return agent_proc_stat(pid, &state) == start && state != 'Z' && state != 'X';
}

void agent_proc_signal(pid_t pgid, int sig)
{
	/* Never the bare pid: once its leader is reaped the number may be another process's. */
	if (pgid > 1)
		kill(-pgid, sig);
}

/* A malloc'ed "name=value". */
static char *agent_env_pair(const char *name, const char *value)
{
	size_t len = strlen(name) + strlen(value) + 2;
	char *s = malloc(len);
	if (s)
		snprintf(s, len, "%s=%s", name, value);
	return s;
}

static bool agent_env_overridden(const char *entry, char **over, size_t n_over)
{
	const char *eq = strchr(entry, '=');
	size_t len = eq ? (size_t)(eq - entry) : strlen(entry);
	for (size_t i = 0; i < n_over; i++)
		if (!strncmp(over[i], entry, len) && over[i][len] == '=')
			return true;
	return false;
}

static void agent_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* environ + the container's env + KEEL_POD_*: a NULL-terminated malloc'ed vector. */
static char **agent_env_build(const agent_spawn_t *s)
{
	const json_t *env = kc_path(s->container, "env");
	size_t n_env = json_is_array(env) ? json_array_size(env) : 0;
	size_t n_over = 0;
	char **over = calloc(n_env + 4, sizeof(char *));
	if (!over)
		return NULL;
	for (size_t i = 0; i < n_env; i++) {
		const json_t *e = json_array_get(env, i);
		const char *name = kc_path_str(e, "name");
		const char *value = kc_path_str(e, "value");
		if (name && *name)
			over[n_over++] = agent_env_pair(name, value ? value : "");
	}
	over[n_over++] = agent_env_pair("KEEL_POD_NAME", s->pod->name);
	over[n_over++] = agent_env_pair("KEEL_POD_NAMESPACE", s->pod->ns);
	over[n_over++] = agent_env_pair("KEEL_NODE_NAME", s->node);
	size_t n_base = 0;
	while (environ && environ[n_base])
		n_base++;
	char **out = calloc(n_base + n_over + 1, sizeof(char *));
	bool ok = out != NULL;
	size_t k = 0;
	for (size_t i = 0; ok && i < n_base; i++)
		if (!agent_env_overridden(environ[i], over, n_over) &&
		    !(out[k++] = strdup(environ[i])))
			ok = false;
	for (size_t i = 0; i < n_over; i++) {
		if (!over[i])
			ok = false;
		if (ok)
			out[k++] = over[i];
		else
			free(over[i]);
	}
	free(over);
	if (!ok) {
		agent_strv_free(out);
		return NULL;
	}
	return out;
}

/* command ++ args: a NULL-terminated malloc'ed vector, or NULL. */
static char **agent_argv_build(const json_t *ctr)
{
	const json_t *cmd = kc_path(ctr, "command");
	const json_t *args = kc_path(ctr, "args");
	size_t nc = json_is_array(cmd) ? json_array_size(cmd) : 0;
	size_t na = json_is_array(args) ? json_array_size(args) : 0;
	if (nc == 0)
		return NULL;
	char **v = calloc(nc + na + 1, sizeof(char *));
	if (!v)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < nc + na; i++) {
		const json_t *e = i < nc ? json_array_get(cmd, i) : json_array_get(args, i - nc);
		const char *s = json_string_value(e);
		if (!s || !(v[k++] = strdup(s))) {
			agent_strv_free(v);
			return NULL;
		}
	}
	return v;
}

/* Async-signal-safe: writes s to fd. */
static void agent_child_write(int fd, const char *s)
{
	size_t len = 0;
	while (s[len])
		len++;
	while (len > 0) {
		ssize_t w = write(fd, s, len);
		if (w <= 0)
			return;
		s += w;
		len -= (size_t)w;
	}
}

static const char *agent_child_errtext(int e)
{
	switch (e) {
	case ENOENT: return "no such file or directory";
	case EACCES: return "permission denied";
	case ENOEXEC: return "exec format error";
	case ENOTDIR: return "not a directory";
	case ENOMEM: return "cannot allocate memory";
	case E2BIG: return "argument list too long";
	case ELOOP: return "too many levels of symbolic links";
	default: return "cannot execute";
	}
}

typedef struct agent_child {
	char **argv, **envp;
	const char *log_path;
	const char *cwd;
	const char *procs_path;  /* cgroup.procs to join, or NULL */
	int64_t rlimit_as;       /* bytes, -1 none */
	char fail_prefix[512];
} agent_child_t;

/* After fork: nothing that allocates or locks. */
static void agent_child_run(const agent_child_t *c)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	setpgid(0, 0);
	int null = open("/dev/null", O_RDONLY);
	int log = open(c->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (null < 0 || log < 0)
		_exit(127);
	dup2(null, 0);
	dup2(log, 1);
	dup2(log, 2);
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3, ~0U, 0) != 0)
#endif
		for (int fd = 3; fd < 65536; fd++)
			close(fd);
	if (c->procs_path) {
		int fd = open(c->procs_path, O_WRONLY);
		if (fd < 0 || write(fd, "0", 1) != 1) {
			agent_child_write(2, c->fail_prefix);
			agent_child_write(2, "cannot join its cgroup\n");
			_exit(127);
		}
		close(fd);
	}
	if (c->rlimit_as > 0) {
		struct rlimit rl = { (rlim_t)c->rlimit_as, (rlim_t)c->rlimit_as };
		setrlimit(RLIMIT_AS, &rl);
	}
	if (c->cwd && chdir(c->cwd) != 0) {
		agent_child_write(2, c->fail_prefix);
		agent_child_write(2, "chdir to its workingDir: ");
		agent_child_write(2, agent_child_errtext(errno));
		agent_child_write(2, "\n");
		_exit(127);
	}
	execvpe(c->argv[0], c->argv, c->envp);
	int e = errno;
	agent_child_write(2, c->fail_prefix);
	agent_child_write(2, agent_child_errtext(e));
	agent_child_write(2, "\n");
	_exit(127);
}

/* Appends where this instance's output starts in the log to <log>.starts, so that the log
 * server can tell one instance's output from the next (logs?previous=true). */
static void agent_proc_note_start(const char *log_path)
{
	struct stat st;
	long long size = stat(log_path, &st) == 0 ? (long long)st.st_size : 0;
	char path[4200];
	snprintf(path, sizeof(path), "%s.starts", log_path);
	FILE *f = fopen(path, "ae");
	if (f) {
		fprintf(f, "%lld\n", size);
		fclose(f);
	}
}

pid_t agent_proc_spawn(const agent_spawn_t *s, char *msg, size_t n)
{
	const char *cname = kc_path_str(s->container, "name");
	agent_child_t c = { 0 };
	char log_path[4096], procs[4096];
	snprintf(log_path, sizeof(log_path), "%s/%s.log", s->pod->dir, cname ? cname : "main");
	c.log_path = log_path;
	c.cwd = kc_path_str(s->container, "workingDir");
	if (c.cwd && !*c.cwd)
		c.cwd = NULL;
	c.rlimit_as = -1;
	if (s->limits->mode == AGENT_LIMITS_CGROUP2 && s->pod->cgroup) {
		snprintf(procs, sizeof(procs), "%s/%s/cgroup.procs", s->limits->cgroup_base,
			 s->pod->uid);
		c.procs_path = procs;
	} else {
		int64_t mem = agent_ctr_limit(s->container, "memory");
		if (mem > 0)
			c.rlimit_as = mem / 1000;
	}
	c.argv = agent_argv_build(s->container);
	c.envp = c.argv ? agent_env_build(s) : NULL;
	if (!c.argv || !c.envp) {
		snprintf(msg, n, c.argv ? "out of memory" : "container %s has no command",
			 cname ? cname : "?");
		agent_strv_free(c.argv);
		agent_strv_free(c.envp);
		return -1;
	}
	agent_proc_note_start(log_path);
	snprintf(c.fail_prefix, sizeof(c.fail_prefix), "keel agent: cannot start container %s "
		 "(%s): ", cname ? cname : "?", c.argv[0]);
	pid_t pid = fork();
	if (pid == 0)
		agent_child_run(&c);
	int e = errno;
	agent_strv_free(c.argv);
	agent_strv_free(c.envp);
	if (pid < 0) {
		snprintf(msg, n, "fork: %s", strerror(e));
		return -1;
	}
	/* Also from here: no window in which the child is outside its group when signalled. */
	setpgid(pid, pid);
	return pid;
}

/* ---- state.json ---------------------------------------------------------------------------- */

int agent_proc_state_write(const agent_pod_t *p)
{
	json_t *ctrs = json_array();
	for (size_t i = 0; i < p->n_ctrs; i++) {
		const agent_ctr_t *c = &p->ctrs[i];
		json_array_append_new(ctrs, json_pack("{s:s, s:I, s:I, s:i, s:I, s:b}", "name", c->name,
			"pid", (json_int_t)c->pid, "procStart", (json_int_t)c->proc_start,
			"restartCount", c->restart_count, "startedAt", (json_int_t)c->started_at,
			"running", c->pid > 0));
	}
	json_t *st = json_pack("{s:s, s:s, s:I, s:o}", "key", p->key, "uid", p->uid, "startTime",
			       (json_int_t)p->start_time, "containers", ctrs);
	if (!st)
		return -1;
	char path[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/state.json", p->dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int rc = json_dump_file(st, tmp, JSON_COMPACT);
	json_decref(st);
	if (rc == 0)
		rc = rename(tmp, path);
	return rc;
}

void agent_pod_free(agent_pod_t *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_ctrs; i++)
		free(p->ctrs[i].name);
	free(p->ctrs);
	free(p->key);
	free(p->ns);
	free(p->name);
	free(p->uid);
	free(p->dir);
	free(p);
}

agent_pod_t *agent_proc_state_read(const char *dir, char *msg, size_t n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/state.json", dir);
	json_error_t je;
	json_t *st = json_load_file(path, 0, &je);
	if (!st) {
		snprintf(msg, n, "%s: %s", path, je.text);
		return NULL;
	}
	const char *key = kc_path_str(st, "key");
	const char *uid = kc_path_str(st, "uid");
	const json_t *ctrs = kc_path(st, "containers");
	kc_kind_t kind;
	char *ns = NULL, *name = NULL;
	agent_pod_t *p = NULL;
	if (!key || !uid || !json_is_array(ctrs) ||
	    kc_key_parse(key, strlen(key), &kind, &ns, &name) != 0 || kind != KC_POD) {
		snprintf(msg, n, "%s: not an agent state file", path);
		goto out;
	}
	p = calloc(1, sizeof(*p));
	size_t nc = json_array_size(ctrs);
	if (!p || !(p->ctrs = calloc(nc ? nc : 1, sizeof(agent_ctr_t))))
		goto oom;
	p->ns = ns;
	p->name = name;
	ns = name = NULL;
	if (!(p->key = strdup(key)) || !(p->uid = strdup(uid)) || !(p->dir = strdup(dir)))
		goto oom;
	p->start_time = kc_path_int(st, "startTime", 0);
	for (size_t i = 0; i < nc; i++) {
		const json_t *c = json_array_get(ctrs, i);
		const char *cname = kc_path_str(c, "name");
		int64_t pid = kc_path_int(c, "pid", 0);
		if (!cname || pid < 0 || pid > INT32_MAX) {
			snprintf(msg, n, "%s: container %zu is malformed", path, i);
			agent_pod_free(p);
			p = NULL;
			goto out;
		}
		agent_ctr_t *a = &p->ctrs[p->n_ctrs++];
		if (!(a->name = strdup(cname)))
			goto oom;
		a->pid = json_is_true(kc_path(c, "running")) ? (pid_t)pid : 0;
		a->last_pid = (pid_t)pid;
		a->proc_start = (uint64_t)kc_path_int(c, "procStart", 0);
		a->restart_count = (int)kc_path_int(c, "restartCount", 0);
		a->started_at = kc_path_int(c, "startedAt", 0);
		a->started_once = true;
	}
	goto out;
oom:
	snprintf(msg, n, "out of memory");
	agent_pod_free(p);
	p = NULL;
out:
	free(ns);
	free(name);
	json_decref(st);
	return p;
}
