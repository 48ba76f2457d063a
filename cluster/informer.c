/* cluster/informer.c — a cache of one kind kept current by list + watch, changes to fn one at a
 * time in store order, a relist on its own thread after compaction. Cached objects are shared:
 * never mutated (a change replaces them); fn is never called with the lock held. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "informer_int.h"

#define INFORMER_RETRY_MS 500       /* between attempts to relist while the store is away */

typedef struct inf_entry {
	char *key;
	json_t *obj;                 /* one reference held by the cache */
} inf_entry_t;

typedef struct inf_cache {
	inf_entry_t *items;          /* sorted by key */
	size_t n, cap;
} inf_cache_t;

struct kc_informer {
	keel_t *k;
	kc_kind_t kind;
	char *prefix;
	kc_informer_fn fn;
	void *ud;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	inf_cache_t cache;
	int64_t rev;                 /* the revision the cache reflects */
	keel_watch_t *w;             /* touched by the starter, then only by the thread */
	bool relist;                 /* the watch ended: the thread must relist */
	bool rewatch;                /* test hook: the thread must watch from rev + 1 */
	bool stop;
	int relists;
	pthread_t thread;
	bool thread_started;
};

/* ---- the cache --------------------------------------------------------------------------- */

/* The index of key, or where it would go (*found false). */
static size_t cache_find(const inf_cache_t *c, const char *key, bool *found)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(c->items[mid].key, key);

		if (cmp == 0) {
			*found = true;
			return mid;
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

/* Stores obj (taking a new reference) under key; *old gets the replaced object's reference
 * (NULL when new). -1 on out of memory (nothing changed). */
static int cache_put(inf_cache_t *c, const char *key, json_t *obj, json_t **old)
{
	bool found;
	size_t i = cache_find(c, key, &found);
	char *copy;

	*old = NULL;
	if (found) {
		*old = c->items[i].obj;
		c->items[i].obj = json_incref(obj);
		return 0;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		inf_entry_t *items = realloc(c->items, cap * sizeof(*items));

		if (!items)
			return -1;
		c->items = items;
		c->cap = cap;
	}
	copy = strdup(key);
	if (!copy)
		return -1;
	memmove(&c->items[i + 1], &c->items[i], (c->n - i) * sizeof(*c->items));
	c->items[i].key = copy;
	c->items[i].obj = json_incref(obj);
	c->n++;
	return 0;
}

/* Removes key; returns the cache's reference to its object, or NULL. */
static json_t *cache_remove(inf_cache_t *c, const char *key)
{
	bool found;
	size_t i = cache_find(c, key, &found);
	json_t *old;

	if (!found)
		return NULL;
	old = c->items[i].obj;
	free(c->items[i].key);
	memmove(&c->items[i], &c->items[i + 1], (c->n - i - 1) * sizeof(*c->items));
	c->n--;
	return old;
}

static void cache_clear(inf_cache_t *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->items[i].key);
		json_decref(c->items[i].obj);
	}
	free(c->items);
	memset(c, 0, sizeof(*c));
}

/* ---- listing ------------------------------------------------------------------------------- */

/* The kind's objects now, as a sorted cache of its own, and the revision read at. */
static int informer_list(kc_informer_t *inf, inf_cache_t *out, int64_t *rev, keel_error_t *err)
{
	keel_range_req_t req = { 0 };
	keel_range_result_t *r = NULL;
	size_t plen = strlen(inf->prefix);
	uint8_t *end = malloc(plen + 1);
	int rc;

	memset(out, 0, sizeof(*out));
	if (!end)
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	req.key = inf->prefix;
	req.key_len = plen;
	req.range_end = end;
	req.range_end_len = keel_prefix_end(inf->prefix, plen, end);
	rc = keel_range(inf->k, &req, &r, err);
	free(end);
	if (rc)
		return rc;
	out->items = calloc(r->n_kvs ? r->n_kvs : 1, sizeof(*out->items));
	if (!out->items) {
		keel_range_result_free(r);
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	}
	out->cap = r->n_kvs ? r->n_kvs : 1;
	for (size_t i = 0; i < r->n_kvs; i++) {
		char msg[512];
		json_t *obj = kc_store_decode(&r->kvs[i], msg, sizeof(msg));
		char *key;

		if (!obj) {
			fprintf(stderr, "informer: skipping %s\n", msg);
			continue;
		}
		key = strndup((const char *)r->kvs[i].key, r->kvs[i].key_len);
		if (!key) {
			json_decref(obj);
			cache_clear(out);
			keel_range_result_free(r);
			return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
		}
		/* The range is in key order, so the array is sorted as it fills. */
		out->items[out->n].key = key;
		out->items[out->n].obj = obj;
		out->n++;
	}
	*rev = r->header.revision;
	keel_range_result_free(r);
	return 0;
}

/* ---- the watch ----------------------------------------------------------------------------- */

static void informer_deliver(kc_informer_t *inf, const char *key, const json_t *old_obj,
			     const json_t *new_obj)
{
	if (old_obj || new_obj)
		inf->fn(inf->ud, inf->kind, key, old_obj, new_obj);
}

static void informer_on_event(kc_informer_t *inf, const keel_event_t *ev)
{
	char *key = strndup((const char *)ev->kv.key, ev->kv.key_len);
	json_t *obj = NULL, *old = NULL;
	char msg[512];

	if (!key) {
		fprintf(stderr, "informer: out of memory: an event of %s is lost\n", inf->prefix);
		return;
	}
	if (ev->type == KEEL_EVENT_PUT) {
		obj = kc_store_decode(&ev->kv, msg, sizeof(msg));
		if (!obj)
			fprintf(stderr, "informer: skipping %s\n", msg);
	}
	pthread_mutex_lock(&inf->mu);
	/* A value that cannot be decoded is treated as gone, as a relist would see it. */
	if (obj) {
		if (cache_put(&inf->cache, key, obj, &old) != 0)
			fprintf(stderr, "informer: out of memory: %s not cached\n", key);
	} else {
		old = cache_remove(&inf->cache, key);
	}
	if (ev->kv.mod_revision > inf->rev)
		inf->rev = ev->kv.mod_revision;
	pthread_mutex_unlock(&inf->mu);
	informer_deliver(inf, key, old, obj);
	json_decref(old);
	json_decref(obj);
	free(key);
}

/* On the handle's callback thread: events in order; a cancel hands over to the thread. */
static void informer_on_watch(void *ud, const keel_watch_resp_t *resp)
{
	kc_informer_t *inf = ud;

	for (size_t i = 0; i < resp->n_events; i++)
		informer_on_event(inf, &resp->events[i]);
	pthread_mutex_lock(&inf->mu);
	/* A progress notification: nothing of ours changed up to its revision. */
	if (resp->n_events == 0 && !resp->created && !resp->canceled &&
	    resp->header.revision > inf->rev)
		inf->rev = resp->header.revision;
	if (resp->canceled) {
		inf->relist = true;
		pthread_cond_broadcast(&inf->cv);
	}
	pthread_mutex_unlock(&inf->mu);
}

static int informer_watch(kc_informer_t *inf, int64_t from, keel_error_t *err)
{
	keel_watch_req_t req = { 0 };
	size_t plen = strlen(inf->prefix);
	uint8_t *end = malloc(plen + 1);
	int rc;

	if (!end)
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	req.key = inf->prefix;
	req.key_len = plen;
	req.range_end = end;
	req.range_end_len = keel_prefix_end(inf->prefix, plen, end);
	req.start_revision = from;
	rc = keel_watch(inf->k, &req, informer_on_watch, inf, &inf->w, err);
	free(end);
	return rc;
}

/* ---- relisting ------------------------------------------------------------------------------ */

typedef struct inf_change {
	const char *key;
	json_t *old_obj, *new_obj;   /* references */
} inf_change_t;

static bool informer_same(const json_t *a, const json_t *b)
{
	const char *ra = kc_path_str(a, "metadata.resourceVersion");
	const char *rb = kc_path_str(b, "metadata.resourceVersion");

	return ra && rb && strcmp(ra, rb) == 0;
}

/* The changes from cur to next, by a merge of the two sorted arrays. Keys point into the
 * caches: valid while both live. NULL on out of memory. */
static inf_change_t *informer_diff(const inf_cache_t *cur, const inf_cache_t *next, size_t *n)
{
	inf_change_t *ch = calloc(cur->n + next->n + 1, sizeof(*ch));
	size_t i = 0, j = 0;

	*n = 0;
	if (!ch)
		return NULL;
	while (i < cur->n || j < next->n) {
		int cmp = i == cur->n ? 1 : j == next->n ? -1
							  : strcmp(cur->items[i].key, next->items[j].key);
		inf_change_t c = { 0 };

		if (cmp < 0) {
			c.key = cur->items[i].key;
			c.old_obj = json_incref(cur->items[i++].obj);
		} else if (cmp > 0) {
			c.key = next->items[j].key;
			c.new_obj = json_incref(next->items[j++].obj);
		} else {
			if (!informer_same(cur->items[i].obj, next->items[j].obj)) {
				c.key = next->items[j].key;
				c.old_obj = json_incref(cur->items[i].obj);
				c.new_obj = json_incref(next->items[j].obj);
			}
			i++;
			j++;
		}
		if (c.key)
			ch[(*n)++] = c;
	}
	return ch;
}

/* On the informer's thread: the watch is over (compacted, or ended by the server). Lists
 * again, swaps the cache, delivers the differences, and watches from the list's revision. */
static int informer_resync(kc_informer_t *inf, keel_error_t *err)
{
	inf_cache_t next, old;
	inf_change_t *ch;
	int64_t rev = 0;
	size_t n = 0;
	int rc;

	keel_watch_cancel(inf->w);
	inf->w = NULL;
	pthread_mutex_lock(&inf->mu);
	inf->relist = false;
	pthread_mutex_unlock(&inf->mu);
	rc = informer_list(inf, &next, &rev, err);
	if (rc)
		return rc;
	pthread_mutex_lock(&inf->mu);
	ch = informer_diff(&inf->cache, &next, &n);
	if (!ch) {
		pthread_mutex_unlock(&inf->mu);
		cache_clear(&next);
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	}
	old = inf->cache;
	inf->cache = next;
	inf->rev = rev;
	inf->relists++;
	pthread_mutex_unlock(&inf->mu);
	for (size_t i = 0; i < n; i++) {
		informer_deliver(inf, ch[i].key, ch[i].old_obj, ch[i].new_obj);
		json_decref(ch[i].old_obj);
		json_decref(ch[i].new_obj);
	}
	free(ch);
	cache_clear(&old);
	return informer_watch(inf, rev + 1, err);
}

/* Waits (lock held) for ms or a wake-up. */
static void informer_wait_locked(kc_informer_t *inf, int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&inf->cv, &inf->mu, &ts);
}

static void *informer_main(void *arg)
{
	kc_informer_t *inf = arg;
	int64_t last_ms = 0;

	pthread_mutex_lock(&inf->mu);
	while (!inf->stop) {
		keel_error_t err;

		if (inf->rewatch) {
			int64_t from = inf->rev + 1;

			inf->rewatch = false;
			pthread_mutex_unlock(&inf->mu);
			if (informer_watch(inf, from, &err) != 0)
				fprintf(stderr, "informer: watching %s: %s\n", inf->prefix, err.message);
			pthread_mutex_lock(&inf->mu);
			continue;
		}
		if (!inf->relist) {
			pthread_cond_wait(&inf->cv, &inf->mu);
			continue;
		}
		/* A server that keeps ending the watch (or is away) must not get a busy loop of
		 * relists. */
		if (last_ms && kc_mono_ms() - last_ms < INFORMER_RETRY_MS) {
			informer_wait_locked(inf, INFORMER_RETRY_MS - (kc_mono_ms() - last_ms));
			continue;
		}
		last_ms = kc_mono_ms();
		pthread_mutex_unlock(&inf->mu);
		if (informer_resync(inf, &err) != 0) {
			fprintf(stderr, "informer: relisting %s: %s (retrying)\n", inf->prefix,
				err.message);
			pthread_mutex_lock(&inf->mu);
			inf->relist = true;
			pthread_mutex_unlock(&inf->mu);
		}
		pthread_mutex_lock(&inf->mu);
	}
	pthread_mutex_unlock(&inf->mu);
	return NULL;
}

/* ---- the API ---------------------------------------------------------------------------------- */

static void informer_free(kc_informer_t *inf)
{
	keel_watch_cancel(inf->w);
	cache_clear(&inf->cache);
	pthread_mutex_destroy(&inf->mu);
	pthread_cond_destroy(&inf->cv);
	free(inf->prefix);
	free(inf);
}

int kc_informer_start(keel_t *k, kc_kind_t kind, const char *ns, kc_informer_fn fn, void *ud,
		      kc_informer_t **out, keel_error_t *err)
{
	kc_informer_t *inf;
	int rc;

	if (!k || !fn || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "kc_informer_start: missing argument");
	*out = NULL;
	inf = calloc(1, sizeof(*inf));
	if (!inf)
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	inf->k = k;
	inf->kind = kind;
	inf->fn = fn;
	inf->ud = ud;
	pthread_mutex_init(&inf->mu, NULL);
	pthread_cond_init(&inf->cv, NULL);
	inf->prefix = kc_prefix(kind, ns);
	if (!inf->prefix) {
		informer_free(inf);
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	}
	rc = informer_list(inf, &inf->cache, &inf->rev, err);
	if (rc) {
		informer_free(inf);
		return rc;
	}
	for (size_t i = 0; i < inf->cache.n; i++)
		informer_deliver(inf, inf->cache.items[i].key, NULL, inf->cache.items[i].obj);
	rc = informer_watch(inf, inf->rev + 1, err);
	if (rc) {
		informer_free(inf);
		return rc;
	}
	if (pthread_create(&inf->thread, NULL, informer_main, inf) != 0) {
		informer_free(inf);
		return keel_error_set(err, KEEL_CODE_LOCAL, "pthread_create failed");
	}
	inf->thread_started = true;
	*out = inf;
	return 0;
}

json_t *kc_informer_get(kc_informer_t *inf, const char *key)
{
	json_t *obj = NULL;
	bool found;
	size_t i;

	if (!inf || !key)
		return NULL;
	pthread_mutex_lock(&inf->mu);
	i = cache_find(&inf->cache, key, &found);
	if (found)
		obj = json_incref(inf->cache.items[i].obj);
	pthread_mutex_unlock(&inf->mu);
	return obj;
}

json_t *kc_informer_list(kc_informer_t *inf)
{
	json_t *arr = json_array();

	if (!inf || !arr)
		return arr;
	pthread_mutex_lock(&inf->mu);
	for (size_t i = 0; i < inf->cache.n; i++)
		json_array_append(arr, inf->cache.items[i].obj);
	pthread_mutex_unlock(&inf->mu);
	return arr;
}

int64_t kc_informer_revision(kc_informer_t *inf)
{
	int64_t rev;

	if (!inf)
		return 0;
	pthread_mutex_lock(&inf->mu);
	rev = inf->rev;
	pthread_mutex_unlock(&inf->mu);
	return rev;
}

void kc_informer_stop(kc_informer_t *inf)
{
	if (!inf)
		return;
	pthread_mutex_lock(&inf->mu);
	inf->stop = true;
	pthread_cond_broadcast(&inf->cv);
	pthread_mutex_unlock(&inf->mu);
	if (inf->thread_started)
		pthread_join(inf->thread, NULL);
	informer_free(inf);
}

/* ---- test hooks ------------------------------------------------------------------------------ */

void kc_informer_test_pause(kc_informer_t *inf)
{
	keel_watch_cancel(inf->w);
	inf->w = NULL;
}

int kc_informer_test_resume(kc_informer_t *inf, keel_error_t *err)
{
	/* On the informer's thread, as every watch after the first: a cancel answered at once
	 * makes that thread relist, and it alone may replace inf->w. */
	(void)err;
	pthread_mutex_lock(&inf->mu);
	inf->rewatch = true;
	pthread_cond_broadcast(&inf->cv);
	pthread_mutex_unlock(&inf->mu);
	return 0;
}

int kc_informer_test_relists(kc_informer_t *inf)
{
	int n;

	pthread_mutex_lock(&inf->mu);
	n = inf->relists;
	pthread_mutex_unlock(&inf->mu);
	return n;
}
