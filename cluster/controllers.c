/* cluster/controllers.c — `keel controllers`: flags, leader election, the shared informers whose
 * events feed the three controllers' queues, worker pools and the periodic resync. Acts only
 * while leading: on lost leadership everything started for the term is torn down first. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "controllers_int.h"

#define KCTL_ELECTION_NAME "keel-controllers"

/* ---- logging and shared helpers ------------------------------------------------------------ */

void kctl_log(const char *fmt, ...)
{
	char ts[32], line[1024];
	kc_time_now(ts);
	int off = snprintf(line, sizeof(line), "%s controllers: ", ts);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + off, sizeof(line) - (size_t)off - 1, fmt, ap);
	va_end(ap);
	/* One write per line keeps lines of concurrent workers whole. */
	size_t len = strlen(line);
	line[len++] = '\n';
	fwrite(line, 1, len, stderr);
}

/* Workers never read the signal flag (only the main thread may: it is not an atomic); the main
 * loop turns it into halt within its 100 ms tick. */
bool kctl_halted(const kctl_t *c)
{
	return atomic_load(&((kctl_t *)c)->halt);
}

kc_informer_t *kctl_informer(const kctl_t *c, kc_kind_t kind)
{
	return atomic_load(&((kctl_t *)c)->inf[kind]);
}

json_t *kctl_cached(const kctl_t *c, kc_kind_t kind, const char *ns, const char *name)
{
	kc_informer_t *inf = kctl_informer(c, kind);
	if (!inf || !name)
		return NULL;
	char *key = kc_key(kind, ns, name);
	if (!key)
		return NULL;
	json_t *obj = kc_informer_get(inf, key);
	free(key);
	return obj;
}

/* A short list: only invalid objects are recorded, one entry per key. */
typedef struct kctl_once_rec {
	struct kctl_once_rec *next;
	char *key;
	int64_t rv;
} kctl_once_rec_t;

struct kctl_once {
	pthread_mutex_t mu;
	kctl_once_rec_t *head;
};

kctl_once_t *kctl_once_new(void)
{
	kctl_once_t *o = calloc(1, sizeof(*o));
	if (o)
		pthread_mutex_init(&o->mu, NULL);
	return o;
}

void kctl_once_free(kctl_once_t *o)
{
	if (!o)
		return;
	while (o->head) {
		kctl_once_rec_t *r = o->head;
		o->head = r->next;
		free(r->key);
		free(r);
	}
	pthread_mutex_destroy(&o->mu);
	free(o);
}

bool kctl_once(kctl_once_t *o, const char *key, int64_t rv)
{
	if (!o || !key)
		return true;
	bool first = true;
	pthread_mutex_lock(&o->mu);
	kctl_once_rec_t *r = o->head;
	while (r && strcmp(r->key, key) != 0)
		r = r->next;
	if (r) {
		first = r->rv != rv;
		r->rv = rv;
	} else if ((r = calloc(1, sizeof(*r))) && (r->key = strdup(key))) {
		r->rv = rv;
		r->next = o->head;
		o->head = r;
	} else {
		free(r);
	}
	pthread_mutex_unlock(&o->mu);
	return first;
}

/* ---- flags --------------------------------------------------------------------------------- */

static const char kctl_usage[] =
	"Usage: keel controllers [flags]\n"
	"Runs the ReplicaSet, node lifecycle and pod garbage collection controllers.\n"
	"  --endpoints HOST:PORT,...           the store (default $KEEL_ENDPOINTS, else "
	"127.0.0.1:2379)\n"
	"  --leader-elect=true|false           elect one active replica (default true)\n"
	"  --leader-elect-lease-duration SECS  leader session TTL (default 15)\n"
	"  --pod-eviction-timeout SECS         NotReady this long: delete the node's pods "
	"(default 30)\n"
	"  --node-monitor-grace-period SECS    a node's lease may be absent this long after start "
	"(default 10)\n"
	"  --workers N                         workers per controller (default 4)\n"
	"  -v, --verbose                       log more\n";

static int kctl_parse_int(const char *flag, const char *v, int min, int *out, char *msg,
			  size_t n)
{
	char *end;
	errno = 0;
	long x = v ? strtol(v, &end, 10) : 0;
	if (!v || errno || end == v || *end || x < min || x > 1000000) {
		snprintf(msg, n, "invalid value \"%s\" for flag %s: want an integer >= %d",
			 v ? v : "", flag, min);
		return -1;
	}
	*out = (int)x;
	return 0;
}

static int kctl_parse_bool(const char *flag, const char *v, bool *out, char *msg, size_t n)
{
	static const char *const yes[] = {"true", "1", "t", "T", "TRUE", "True"};
	static const char *const no[] = {"false", "0", "f", "F", "FALSE", "False"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	snprintf(msg, n, "invalid boolean value \"%s\" for flag %s", v, flag);
	return -1;
}

typedef struct kctl_int_flag {
	const char *name;
	size_t offset;
	int min;
} kctl_int_flag_t;

static const kctl_int_flag_t kctl_int_flags[] = {
	{"leader-elect-lease-duration", offsetof(kctl_config_t, lease_duration_s), 1},
	{"pod-eviction-timeout", offsetof(kctl_config_t, pod_eviction_timeout_s), 0},
	{"node-monitor-grace-period", offsetof(kctl_config_t, node_grace_s), 0},
	{"workers", offsetof(kctl_config_t, workers), 1},
	{"resync-period", offsetof(kctl_config_t, resync_s), 1},
};

int kctl_config_parse(int argc, char **argv, kctl_config_t *cfg, char *msg, size_t n)
{
	*cfg = (kctl_config_t){
		.endpoints = NULL,
		.leader_elect = true,
		.lease_duration_s = 15,
		.pod_eviction_timeout_s = 30,
		.node_grace_s = 10,
		.workers = 4,
		.resync_s = 30,
	};
	const char *delay = getenv("KEEL_TEST_EVENT_DELAY_MS");
	if (delay && atoi(delay) > 0 && atoi(delay) < 10000)
		cfg->event_delay_ms = atoi(delay);
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(kctl_usage, stdout);
			return 1;
		}
		if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			cfg->verbose = 1;
			continue;
		}
		if (!strncmp(a, "-v=", 3) || !strncmp(a, "--v=", 4)) {
			cfg->verbose = atoi(strchr(a, '=') + 1);
			continue;
		}
		if (strncmp(a, "--", 2) != 0) {
			snprintf(msg, n, "unexpected argument \"%s\"\n%s", a, kctl_usage);
			return -1;
		}
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		const char *val = eq ? eq + 1 : NULL;
		if (nlen == strlen("leader-elect") && !strncmp(name, "leader-elect", nlen)) {
			if (val && kctl_parse_bool(a, val, &cfg->leader_elect, msg, n))
				return -1;
			if (!val)
				cfg->leader_elect = true;
			continue;
		}
		/* Every other flag takes a value, inline or as the next argument. */
		if (!val) {
			if (i + 1 >= argc) {
				snprintf(msg, n, "flag needs an argument: --%.*s", (int)nlen, name);
				return -1;
			}
			val = argv[++i];
		}
		if (nlen == strlen("endpoints") && !strncmp(name, "endpoints", nlen)) {
			cfg->endpoints = val;
			continue;
		}
		size_t f = 0, nf = sizeof(kctl_int_flags) / sizeof(kctl_int_flags[0]);
		while (f < nf && !(strlen(kctl_int_flags[f].name) == nlen &&
				   !strncmp(kctl_int_flags[f].name, name, nlen)))
			f++;
		if (f == nf) {
			snprintf(msg, n, "unknown flag: --%.*s\n%s", (int)nlen, name, kctl_usage);
			return -1;
		}
		int *dst = (int *)((char *)cfg + kctl_int_flags[f].offset);
		if (kctl_parse_int(a, val, kctl_int_flags[f].min, dst, msg, n))
			return -1;
	}
	return 0;
}

/* ---- worker pools -------------------------------------------------------------------------- */

struct kctl_pool {
	kc_queue_t *q;
	kctl_sync_fn fn;
	void *ud;
	int n;
	pthread_t *threads;
};

static void *kctl_pool_run(void *arg)
{
	kctl_pool_t *p = arg;
	char *key;
	while ((key = kc_queue_get(p->q, -1)) != NULL) {
		int rc = p->fn(p->ud, key);
		if (rc == KCTL_DONE)
			kc_queue_forget(p->q, key);
		else
			kc_queue_add_rate_limited(p->q, key, 5000);
		kc_queue_done(p->q, key);
	}
	return NULL;
}

kctl_pool_t *kctl_pool_start(kc_queue_t *q, int n, kctl_sync_fn fn, void *ud)
{
	kctl_pool_t *p = calloc(1, sizeof(*p));
	if (p)
		p->threads = calloc((size_t)n, sizeof(pthread_t));
	if (!p || !p->threads) {
		kctl_log("out of memory: no worker threads");
		free(p);
		return NULL;
	}
	p->q = q;
	p->fn = fn;
	p->ud = ud;
	for (int i = 0; i < n; i++) {
		if (pthread_create(&p->threads[p->n], NULL, kctl_pool_run, p) == 0)
			p->n++;
	}
	if (p->n < n)
		kctl_log("could start only %d of %d worker threads", p->n, n);
	return p;
}

void kctl_pool_stop(kctl_pool_t *p)
{
	if (!p)
		return;
	kc_queue_shutdown(p->q);
	for (int i = 0; i < p->n; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	free(p);
}

typedef struct kctl_par {
	pthread_mutex_t mu;
	size_t next, n, ok;
	bool failed;
	kctl_each_fn fn;
	void *ud;
} kctl_par_t;

static void *kctl_par_run(void *arg)
{
	kctl_par_t *p = arg;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		if (p->failed || p->next >= p->n) {
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		size_t i = p->next++;
		pthread_mutex_unlock(&p->mu);
		int rc = p->fn(p->ud, i);
		pthread_mutex_lock(&p->mu);
		if (rc == 0)
			p->ok++;
		else
			p->failed = true;
		pthread_mutex_unlock(&p->mu);
	}
}

size_t kctl_parallel(size_t n, int max_threads, kctl_each_fn fn, void *ud, size_t *attempted)
{
	kctl_par_t p = {.n = n, .fn = fn, .ud = ud};
	pthread_mutex_init(&p.mu, NULL);
	size_t nt = n < (size_t)max_threads ? n : (size_t)max_threads;
	pthread_t th[64];
	if (nt > 64)
		nt = 64;
	size_t started = 0;
	for (size_t i = 1; i < nt; i++) {
		if (pthread_create(&th[started], NULL, kctl_par_run, &p) == 0)
			started++;
	}
	kctl_par_run(&p); /* the caller works too, so n == 1 starts no thread */
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&p.mu);
	if (attempted)
		*attempted = p.next;
	return p.ok;
}

/* ---- one term as leader -------------------------------------------------------------------- */

static void kctl_on_event(void *ud, kc_kind_t kind, const char *key, const json_t *old_obj,
			  const json_t *new_obj)
{
	kctl_t *c = ud;
	/* The cache already holds this change: sleeping here makes later ones lag behind. */
	if (c->cfg->event_delay_ms > 0 && kind == KC_POD)
		usleep((useconds_t)c->cfg->event_delay_ms * 1000);
	/* Held for reading while the handlers look at other kinds' informers: see
	 * kctl_term_stop. */
	pthread_rwlock_rdlock(&c->inf_lock);
	kctl_rs_event(c->rs, kind, key, old_obj, new_obj);
	kctl_nlc_event(c->nlc, kind, key, old_obj, new_obj);
	kctl_gc_event(c->gc, kind, key, old_obj, new_obj);
	pthread_rwlock_unlock(&c->inf_lock);
}

/* Informers are started in this order so that a callback of a later one finds the caches it
 * maps through (a pod event looks up replica sets) already filled. */
static const struct {
	kc_kind_t kind;
	const char *ns;
} kctl_informed[] = {
	{KC_NODE, NULL},
	{KC_LEASE, KC_NODE_LEASE_NAMESPACE},
	{KC_REPLICASET, NULL},
	{KC_POD, NULL},
};
#define KCTL_N_INFORMED (sizeof(kctl_informed) / sizeof(kctl_informed[0]))

/* Teardown in three steps, so nothing reads a freed informer:
 * 1. the workers are joined: they read informers without inf_lock;
 * 2. every pointer is set to NULL under inf_lock held for writing: an informer's callback
 *    (kctl_on_event, which may read the other kinds' informers: a ReplicaSet or Node delete
 *    lists the pods) holds it for reading for its whole run, so once the write lock is taken
 *    no callback still holds a pointer it loaded, and every later one loads NULL (all readers
 *    handle NULL: "not started");
 * 3. only then are the informers stopped (and freed). The write lock is released before: a
 *    stop waits for its running callback, which may be waiting for the read lock. */
static void kctl_term_stop(kctl_t *c)
{
	kc_informer_t *infs[KCTL_N_INFORMED];
	atomic_store(&c->halt, true);
	kctl_rs_stop(c->rs);
	kctl_nlc_stop(c->nlc);
	kctl_gc_stop(c->gc);
	pthread_rwlock_wrlock(&c->inf_lock);
	for (size_t i = 0; i < KCTL_N_INFORMED; i++)
		infs[i] = atomic_exchange(&c->inf[kctl_informed[i].kind], NULL);
	pthread_rwlock_unlock(&c->inf_lock);
	for (size_t i = KCTL_N_INFORMED; i-- > 0;) {
		if (infs[i])
			kc_informer_stop(infs[i]);
	}
	kctl_rs_free(c->rs);
	kctl_nlc_free(c->nlc);
	kctl_gc_free(c->gc);
	c->rs = NULL;
	c->nlc = NULL;
	c->gc = NULL;
}

/* Runs the controllers until stop or lost leadership. 0 on a normal end, -1 when the caches
 * could not be filled (the caller campaigns again after a pause). */
static int kctl_term_run(kctl_t *c, kc_leader_t *leader)
{
	atomic_store(&c->halt, false);
	c->started_ms = kc_mono_ms();
	c->rs = kctl_rs_new(c);
	c->nlc = kctl_nlc_new(c);
	c->gc = kctl_gc_new(c);
	if (!c->rs || !c->nlc || !c->gc) {
		kctl_log("out of memory");
		kctl_term_stop(c);
		return -1;
	}
	for (size_t i = 0; i < KCTL_N_INFORMED; i++) {
		kc_informer_t *inf = NULL;
		keel_error_t err = {0};
		kc_kind_t kind = kctl_informed[i].kind;
		if (kc_informer_start(c->k, kind, kctl_informed[i].ns, kctl_on_event, c, &inf,
				      &err) != 0) {
			kctl_log("cannot watch %s: %s", kc_kind_info(kind)->plural, err.message);
			kctl_term_stop(c);
			return -1;
		}
		atomic_store(&c->inf[kind], inf);
		if (*c->stop || (leader && kc_leader_lost(leader))) {
			kctl_term_stop(c);
			return 0;
		}
	}
	kctl_rs_start(c->rs);
	kctl_nlc_start(c->nlc);
	kctl_gc_start(c->gc);
	int64_t next_resync = kc_mono_ms() + (int64_t)c->cfg->resync_s * 1000;
	while (!*c->stop) {
		if (leader && kc_leader_lost(leader)) {
			kctl_log("leadership lost: stopping controllers");
			break;
		}
		if (kc_mono_ms() >= next_resync) {
			kctl_rs_resync(c->rs);
			kctl_nlc_resync(c->nlc);
			kctl_gc_resync(c->gc);
			next_resync = kc_mono_ms() + (int64_t)c->cfg->resync_s * 1000;
		}
		usleep(100 * 1000);
	}
	kctl_term_stop(c);
	return 0;
}

static void kctl_sleep_interruptible(volatile sig_atomic_t *stop, int ms)
{
	for (int t = 0; t < ms && !*stop; t += 100)
		usleep(100 * 1000);
}

int kc_controllers_main(int argc, char **argv)
{
	kctl_config_t cfg;
	char msg[2048];
	/* Tolerates a caller that passes the subcommand's name as argv[0], getopt's way. */
	if (argc > 0 && argv[0] && !strcmp(argv[0], "controllers")) {
		argc--;
		argv++;
	}
	int prc = kctl_config_parse(argc, argv, &cfg, msg, sizeof(msg));
	if (prc == 1)
		return 0;
	if (prc < 0) {
		fprintf(stderr, "error: %s\n", msg);
		return 2;
	}
	volatile sig_atomic_t *stop = kc_signals_install();
	keel_error_t err = {0};
	keel_t *k = NULL;
	if (kc_connect(cfg.endpoints, &k, &err) != 0) {
		fprintf(stderr, "error: cannot connect to the store: %s\n", err.message);
		return 1;
	}
	kctl_t c = {.k = k, .cfg = &cfg, .stop = stop, .invalid = kctl_once_new()};
	pthread_rwlock_init(&c.inf_lock, NULL);
	char identity[256];
	kc_identity(identity, sizeof(identity));
	kctl_log("starting (identity %s, leader election %s, pod eviction timeout %ds)", identity,
		 cfg.leader_elect ? "on" : "off", cfg.pod_eviction_timeout_s);
	while (!*stop) {
		kc_leader_t *leader = NULL;
		if (cfg.leader_elect) {
			memset(&err, 0, sizeof(err));
			int rc = kc_leader_acquire(k, KCTL_ELECTION_NAME, identity,
						   cfg.lease_duration_s, stop, &leader, &err);
			if (rc == KEEL_CODE_CANCELLED || *stop)
				break;
			if (rc != 0) {
				kctl_log("leader election failed: %s; retrying", err.message);
				kctl_sleep_interruptible(stop, 1000);
				continue;
			}
			kctl_log("became leader (%s)", identity);
		}
		int rc = kctl_term_run(&c, leader);
		if (leader)
			kc_leader_release(leader);
		if (rc != 0)
			kctl_sleep_interruptible(stop, 1000);
	}
	kctl_log("stopped");
	pthread_rwlock_destroy(&c.inf_lock);
	kctl_once_free(c.invalid);
	keel_close(k);
	return 0;
}
