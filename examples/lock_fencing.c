/* examples/lock_fencing.c — a lock with a fencing token: writes made under the lock are
 * guarded by the lock key's create revision, so a holder that lost the lock (paused, lease
 * expired) cannot overwrite the work of the next one.
 *   usage: lock_fencing [host:port ...]   (default 127.0.0.1:2379) */
#include <stdio.h>
#include <string.h>

#include "keel/concurrency.h"

/* Puts key=value only while the lock key still has the create revision token. */
static int fenced_put(keel_t *k, const char *lock_key, int64_t token, const char *key,
		      const char *value, bool *done, keel_error_t *err)
{
	keel_put_req_t put = { .key = key, .key_len = strlen(key), .value = value,
			       .value_len = strlen(value) };
	keel_txn_result_t *r = NULL;
	keel_txn_t *t = keel_txn_new();
	int rc;

	if (!t)
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	keel_txn_cmp_int(t, KEEL_CMP_CREATE, KEEL_CMP_EQUAL, lock_key, strlen(lock_key), NULL, 0,
			 token);
	keel_txn_put(t, KEEL_THEN, &put);
	rc = keel_txn_commit(k, t, &r, err);
	keel_txn_free(t);
	if (rc == 0)
		*done = r->succeeded;
	keel_txn_result_free(r);
	return rc;
}

int main(int argc, char **argv)
{
	const char *def = "127.0.0.1:2379";
	keel_options_t opt;
	keel_session_t *s1 = NULL, *s2 = NULL;
	keel_mutex_t *m1 = NULL, *m2 = NULL;
	keel_error_t err = { 0 };
	keel_t *k = NULL;
	char old_key[256];
	int64_t old_token;
	bool done = false;
	int rc = 1;

	keel_init();
	keel_options_init(&opt);
	opt.endpoints = argc > 1 ? (const char *const *)argv + 1 : &def;
	opt.n_endpoints = argc > 1 ? (size_t)(argc - 1) : 1;
	if (keel_connect(&opt, &k, &err) != 0)
		goto fail;
	/* Two sessions: two would-be holders of the same lock. */
	if (keel_session_new(k, 10, 0, &s1, &err) || keel_session_new(k, 10, 0, &s2, &err) ||
	    keel_mutex_new(s1, "example/fencing", &m1, &err) ||
	    keel_mutex_new(s2, "example/fencing", &m2, &err))
		goto fail;

	if (keel_mutex_lock(m1, 0, &err))
		goto fail;
	snprintf(old_key, sizeof(old_key), "%s", keel_mutex_key(m1));
	old_token = keel_mutex_revision(m1);
	printf("holder 1: lock %s, fencing token %lld\n", old_key, (long long)old_token);
	if (fenced_put(k, old_key, old_token, "example/fenced", "from holder 1", &done, &err))
		goto fail;
	printf("holder 1: write with token %lld: %s\n", (long long)old_token,
	       done ? "committed" : "refused");

	/* Holder 1 loses the lock (here it unlocks; a paused process would lose its lease). */
	if (keel_mutex_unlock(m1, 0, &err) || keel_mutex_lock(m2, 0, &err))
		goto fail;
	printf("holder 2: lock %s, fencing token %lld\n", keel_mutex_key(m2),
	       (long long)keel_mutex_revision(m2));
	if (fenced_put(k, keel_mutex_key(m2), keel_mutex_revision(m2), "example/fenced",
		       "from holder 2", &done, &err))
		goto fail;
	printf("holder 2: write with token %lld: %s\n", (long long)keel_mutex_revision(m2),
	       done ? "committed" : "refused");

	/* Holder 1 wakes up and tries to write with its stale token: refused. */
	if (fenced_put(k, old_key, old_token, "example/fenced", "stale write", &done, &err))
		goto fail;
	printf("holder 1: write with stale token %lld: %s\n", (long long)old_token,
	       done ? "committed (BUG)" : "refused");
	rc = done ? 1 : 0;
	keel_mutex_unlock(m2, 0, NULL);
	goto out;
fail:
	fprintf(stderr, "lock_fencing: %s\n", err.message);
out:
	keel_mutex_free(m1);
	keel_mutex_free(m2);
	if (s1)
		keel_session_close(s1);
	if (s2)
		keel_session_close(s2);
	if (k)
		keel_close(k);
	return rc;
}
