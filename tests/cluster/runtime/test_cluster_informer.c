/* tests/cluster/runtime/test_cluster_informer.c — informers: the initial list as adds in key
 * order, changes delivered one by one in store order with the cache already current, deletes
 * carrying the last cached state, namespace scope, undecodable values, no call after stop,
 * and a relist after the watch's revision was compacted delivering exactly the differences. */
#include <pthread.h>

#include "fixture.h"
#include "informer_int.h"

#define MAX_EVENTS 64

typedef struct rec_event {
	char type;                   /* 'A'dded, 'U'pdated, 'D'eleted */
	char key[128];
	int64_t old_rv, new_rv;
	bool cache_matches;          /* kc_informer_get inside fn saw the new state */
} rec_event_t;

typedef struct rec {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	kc_informer_t *inf;          /* set after start: fn reads the cache through it */
	rec_event_t ev[MAX_EVENTS];
	int n;
} rec_t;

static void rec_fn(void *ud, kc_kind_t kind, const char *key, const json_t *old_obj,
		   const json_t *new_obj)
{
	rec_t *r = ud;
	rec_event_t e = { 0 };
	kc_informer_t *inf;

	assert_int_equal(kind, KC_POD);
	e.type = !old_obj ? 'A' : !new_obj ? 'D' : 'U';
	snprintf(e.key, sizeof(e.key), "%s", key);
	e.old_rv = old_obj ? kc_resource_version(old_obj) : 0;
	e.new_rv = new_obj ? kc_resource_version(new_obj) : 0;
	pthread_mutex_lock(&r->mu);
	inf = r->inf;
	pthread_mutex_unlock(&r->mu);
	if (inf) {
		json_t *c = kc_informer_get(inf, key);

		e.cache_matches = c == new_obj;
		json_decref(c);
	}
	pthread_mutex_lock(&r->mu);
	if (r->n < MAX_EVENTS)
		r->ev[r->n++] = e;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void rec_init(rec_t *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
}

static void rec_destroy(rec_t *r)
{
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
}

static void rec_set_informer(rec_t *r, kc_informer_t *inf)
{
	pthread_mutex_lock(&r->mu);
	r->inf = inf;
	pthread_mutex_unlock(&r->mu);
}

/* Waits (at most 10 s) until n events came; returns how many there are. */
static int rec_wait(rec_t *r, int n)
{
	struct timespec ts;
	int got;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&r->mu);
	while (r->n < n && pthread_cond_timedwait(&r->cv, &r->mu, &ts) == 0)
		;
	got = r->n;
	pthread_mutex_unlock(&r->mu);
	return got;
}

static void assert_event(rec_t *r, int i, char type, const char *name)
{
	char key[128];

	snprintf(key, sizeof(key), "/registry/pods/default/%s", name);
	if (r->ev[i].type != type || strcmp(r->ev[i].key, key) != 0)
		fail_msg("event %d: got %c %s, want %c %s", i, r->ev[i].type, r->ev[i].key, type,
			 key);
}

static json_t *create_pod(keel_t *k, const char *name)
{
	json_t *pod = fx_pod(name, NULL);

	fx_create(k, pod);
	return pod;
}

static kc_informer_t *start(keel_t *k, const char *ns, rec_t *r)
{
	kc_informer_t *inf = NULL;
	keel_error_t err;

	if (kc_informer_start(k, KC_POD, ns, rec_fn, r, &inf, &err) != 0)
		fail_msg("kc_informer_start: %s", err.message);
	rec_set_informer(r, inf);
	return inf;
}

static void test_start_delivers_the_list_as_adds_in_key_order(void **state)
{
	fx_t *fx = *state;
	json_t *b = create_pod(fx->k, "b"), *a = create_pod(fx->k, "a"), *list;
	kc_informer_t *inf;
	rec_t r;

	rec_init(&r);
	inf = start(fx->k, NULL, &r);
	/* Delivered before kc_informer_start returned. */
	assert_int_equal(r.n, 2);
	assert_event(&r, 0, 'A', "a");
	assert_event(&r, 1, 'A', "b");
	list = kc_informer_list(inf);
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(kc_name(json_array_get(list, 0)), "a");
	assert_int_equal(kc_informer_revision(inf), kc_resource_version(a));
	json_decref(list);
	kc_informer_stop(inf);
	rec_destroy(&r);
	json_decref(a);
	json_decref(b);
}

static void test_changes_arrive_in_order_with_the_cache_current(void **state)
{
	fx_t *fx = *state;
	kc_informer_t *inf;
	keel_error_t err;
	json_t *x, *y, *got;
	int64_t rv1;
	rec_t r;

	rec_init(&r);
	inf = start(fx->k, NULL, &r);
	x = create_pod(fx->k, "x");
	rv1 = kc_resource_version(x);
	kc_path_set(x, "spec.nodeName", json_string("n1"));
	assert_int_equal(kc_update(fx->k, x, &err), 0);
	assert_int_equal(kc_delete(fx->k, KC_POD, "default", "x", 0, &err), 0);
	y = create_pod(fx->k, "y");

	assert_int_equal(rec_wait(&r, 4), 4);
	assert_event(&r, 0, 'A', "x");
	assert_int_equal(r.ev[0].new_rv, rv1);
	assert_event(&r, 1, 'U', "x");
	assert_int_equal(r.ev[1].old_rv, rv1);
	assert_int_equal(r.ev[1].new_rv, kc_resource_version(x));
	assert_event(&r, 2, 'D', "x");
	assert_int_equal(r.ev[2].old_rv, kc_resource_version(x)); /* the last state seen */
	assert_event(&r, 3, 'A', "y");
	for (int i = 0; i < 4; i++)
		assert_true(r.ev[i].cache_matches);

	got = kc_informer_get(inf, "/registry/pods/default/x");
	assert_null(got);
	got = kc_informer_get(inf, "/registry/pods/default/y");
	assert_non_null(got);
	assert_int_equal(kc_resource_version(got), kc_resource_version(y));
	json_decref(got);
	assert_int_equal(kc_informer_revision(inf), kc_resource_version(y));
	kc_informer_stop(inf);
	rec_destroy(&r);
	json_decref(x);
	json_decref(y);
}

static void test_namespace_informer_sees_only_its_namespace(void **state)
{
	fx_t *fx = *state;
	json_t *p = fx_pod("p", NULL), *d;
	kc_informer_t *inf;
	rec_t r;

	rec_init(&r);
	inf = start(fx->k, "prod", &r);
	d = create_pod(fx->k, "d");
	kc_path_set(p, "metadata.namespace", json_string("prod"));
	fx_create(fx->k, p);
	assert_int_equal(rec_wait(&r, 1), 1);
	assert_string_equal(r.ev[0].key, "/registry/pods/prod/p");
	fx_sleep_ms(100);
	assert_int_equal(r.n, 1);
	kc_informer_stop(inf);
	rec_destroy(&r);
	json_decref(p);
	json_decref(d);
}

static void test_undecodable_value_counts_as_gone(void **state)
{
	fx_t *fx = *state;
	kc_informer_t *inf;
	keel_error_t err;
	json_t *a;
	rec_t r;

	rec_init(&r);
	assert_int_equal(keel_put_str(fx->k, "/registry/pods/default/junk", "]", 0, &err), 0);
	inf = start(fx->k, NULL, &r);
	assert_int_equal(r.n, 0);
	a = create_pod(fx->k, "a");
	assert_int_equal(keel_put_str(fx->k, "/registry/pods/default/a", "nope", 0, &err), 0);
	assert_int_equal(rec_wait(&r, 2), 2);
	assert_event(&r, 0, 'A', "a");
	assert_event(&r, 1, 'D', "a");
	assert_null(kc_informer_get(inf, "/registry/pods/default/a"));
	kc_informer_stop(inf);
	rec_destroy(&r);
	json_decref(a);
}

static void test_no_call_after_stop(void **state)
{
	fx_t *fx = *state;
	kc_informer_t *inf;
	json_t *a;
	rec_t r;

	rec_init(&r);
	inf = start(fx->k, NULL, &r);
	kc_informer_stop(inf);
	a = create_pod(fx->k, "a");
	fx_sleep_ms(200);
	assert_int_equal(r.n, 0);
	rec_destroy(&r);
	json_decref(a);
}

static int64_t store_revision(keel_t *k)
{
	keel_range_result_t *r = NULL;
	keel_error_t err;
	int64_t rev;

	assert_int_equal(keel_get(k, "/", &r, &err), 0);
	rev = r->header.revision;
	keel_range_result_free(r);
	return rev;
}

static void test_relist_after_compaction_delivers_the_differences(void **state)
{
	fx_t *fx = *state;
	json_t *a = create_pod(fx->k, "a"), *b = create_pod(fx->k, "b"), *c = create_pod(fx->k, "c");
	keel_compact_req_t cr = { 0 };
	kc_informer_t *inf;
	keel_error_t err;
	json_t *d, *e, *list;
	rec_t r;

	rec_init(&r);
	inf = start(fx->k, NULL, &r);
	assert_int_equal(rec_wait(&r, 3), 3);

	/* While the informer is not watching: update a, delete b, add d, leave c alone... */
	kc_informer_test_pause(inf);
	kc_path_set(a, "spec.nodeName", json_string("n1"));
	assert_int_equal(kc_update(fx->k, a, &err), 0);
	assert_int_equal(kc_delete(fx->k, KC_POD, "default", "b", 0, &err), 0);
	d = create_pod(fx->k, "d");
	/* ...and compact that history away, so the watch cannot resume. */
	cr.revision = store_revision(fx->k);
	assert_int_equal(keel_compact(fx->k, &cr, NULL, &err), 0);
	assert_int_equal(kc_informer_test_resume(inf, &err), 0);

	assert_int_equal(rec_wait(&r, 6), 6);
	assert_event(&r, 3, 'U', "a");
	assert_int_equal(r.ev[3].new_rv, kc_resource_version(a));
	assert_event(&r, 4, 'D', "b");
	assert_event(&r, 5, 'A', "d");
	assert_int_equal(kc_informer_test_relists(inf), 1);
	list = kc_informer_list(inf);
	assert_int_equal(json_array_size(list), 3);
	json_decref(list);
	assert_int_equal(kc_informer_revision(inf), kc_resource_version(d));

	/* The new watch carries on from the relist. */
	e = create_pod(fx->k, "e");
	assert_int_equal(rec_wait(&r, 7), 7);
	assert_event(&r, 6, 'A', "e");
	fx_sleep_ms(100);
	assert_int_equal(r.n, 7);
	kc_informer_stop(inf);
	rec_destroy(&r);
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(d);
	json_decref(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
		T(test_start_delivers_the_list_as_adds_in_key_order),
		T(test_changes_arrive_in_order_with_the_cache_current),
		T(test_namespace_informer_sees_only_its_namespace),
		T(test_undecodable_value_counts_as_gone),
		T(test_no_call_after_stop),
		T(test_relist_after_compaction_delivers_the_differences),
#undef T
	};

	keel_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
