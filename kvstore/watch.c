/* watch.c — the watch hub: watchers by key range, live delivery of applied events to
 * caught-up watchers and bounded catch-up from the "rev" history for the ones behind.
 * Never writes to LMDB, never calls back into kv while a callback runs, never blocks.
 *
 * A watcher's position is (next_rev, skip): the next record it has not received is the
 * skip-th record (0-based, counting every record, matching or not) of revision next_rev.
 * skip is non-zero only after a refused fragment split one revision's events. */
#include <stdlib.h>
#include <string.h>

#include "kv_int.h"

typedef enum {
	KW_NEW,       /* in no group yet */
	KW_SYNCED,    /* caught up: kv_hub_notify delivers to it */
	KW_UNSYNCED,  /* behind: kv_watch_step reads history for it */
	KW_CANCELING, /* its history is gone: the cancel is still to be taken */
	KW_DONE,      /* cancel taken: nothing more is delivered */
} kw_state_t;

/* A doubly linked list head: the watchers of one group or one hash bucket. */
typedef struct kw_list {
	kv_watcher_t *head;
} kw_list_t;

/* How a synced watcher is found for an event key. */
typedef enum {
	KW_KEY,       /* range_end empty: the one key, by its hash */
	KW_PREFIX,    /* range_end is etcd's prefix end of key: by the hashes of the event
		       * key's prefixes (only the lengths some watcher uses) */
	KW_RANGE,     /* anything else: tried one by one */
} kw_kind_t;

/* Watchers by the hash of their key, chained. */
typedef struct kw_table {
	kw_list_t *b;
	size_t n_b, n;
} kw_table_t;

struct kv_watcher {
	struct kv_hub *hub;
	kw_list_t *list;                  /* the group or bucket it is in */
	kv_watcher_t *prev, *next;        /* inside list */
	kv_watcher_t *all_prev, *all_next; /* every watcher of the hub */
	ProtobufCBinaryData key, end;     /* own copies */
	uint64_t hash;                    /* of key */
	kw_kind_t kind;
	int64_t watch_id;
	kv_watch_fn cb;
	void *ud;
	bool prev_kv, fragment, progress_notify, noput, nodelete;
	kw_state_t state;
	int64_t next_rev;
	size_t skip;
	int64_t cancel_rev;               /* compact revision to report when canceling */
	const char *cancel_reason;        /* static text, or NULL */
	/* kv_hub_notify scratch: indexes of the batch events that match. */
	size_t *hits;
	size_t n_hits, cap_hits;
	bool touched;
};

struct kv_hub {
	kv_t *kv;
	int64_t rev;                      /* revision the synced watchers have seen */
	kv_watcher_t *all;
	kw_table_t keys;                  /* synced KW_KEY watchers */
	kw_table_t prefixes;              /* synced KW_PREFIX watchers */
	size_t prefix_lens[KV_MAX_KEY_SIZE + 1]; /* synced KW_PREFIX watchers by key length */
	kw_list_t ranges;                 /* synced KW_RANGE watchers */
	kw_list_t unsynced;               /* behind or canceling */
	kw_list_t done;
	size_t n_prev;                    /* live watchers that want prev_kv */
	/* kv_hub_notify scratch, kept between batches. */
	kv_watcher_t **touched;
	size_t cap_touched;
	size_t *ordinal;                  /* per batch event: its place inside its revision */
	Mvccpb__Event *copies;            /* events as one watcher sees them */
	Mvccpb__Event **ptrs;
	size_t cap_batch;
};

#define KW_MIN_BUCKETS 64

/* FNV-1a, byte by byte, so the hashes of all prefixes of a key come in one pass. */
#define KW_HASH_INIT 1469598103934665603ULL

static uint64_t kw_hash_byte(uint64_t h, uint8_t c)
{
	return (h ^ c) * 1099511628211ULL;
}

static uint64_t kw_hash_key(const uint8_t *p, size_t n)
{
	uint64_t h = KW_HASH_INIT;
	for (size_t i = 0; i < n; i++)
		h = kw_hash_byte(h, p[i]);
	return h;
}

static bool kw_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return true;
	size_t c = *cap ? *cap : 16;
	while (c < need)
		c *= 2;
	void *p = realloc(*arr, c * elem);
	if (!p)
		return false;
	*arr = p;
	*cap = c;
	return true;
}

/* ---- lists and groups ------------------------------------------------------------ */

static void kw_list_add(kw_list_t *l, kv_watcher_t *w)
{
	w->list = l;
	w->prev = NULL;
	w->next = l->head;
	if (l->head)
		l->head->prev = w;
	l->head = w;
}

static void kw_list_del(kv_watcher_t *w)
{
	if (!w->list)
		return;
	if (w->prev)
		w->prev->next = w->next;
	else
		w->list->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->list = NULL;
	w->prev = w->next = NULL;
}

static kw_list_t *kw_bucket(kw_table_t *t, uint64_t hash)
{
	return &t->b[hash & (t->n_b - 1)];
}

static bool kw_table_init(kw_table_t *t)
{
	t->b = calloc(KW_MIN_BUCKETS, sizeof(*t->b));
	t->n_b = KW_MIN_BUCKETS;
	t->n = 0;
	return t->b != NULL;
}

/* Doubles the bucket array when chains grow long; on failure chains just get longer. */
static void kw_table_grow(kw_table_t *t)
{
	if (t->n < 2 * t->n_b)
		return;
	kw_table_t nt = { calloc(t->n_b * 2, sizeof(*nt.b)), t->n_b * 2, t->n };
	if (!nt.b)
		return;
	for (size_t i = 0; i < t->n_b; i++) {
		while (t->b[i].head) {
			kv_watcher_t *w = t->b[i].head;
			kw_list_del(w);
			kw_list_add(kw_bucket(&nt, w->hash), w);
		}
	}
	free(t->b);
	*t = nt;
}

/* Leaves whatever group w is in. */
static void kw_detach(kv_watcher_t *w)
{
	struct kv_hub *hub = w->hub;
	if (w->state == KW_SYNCED && w->kind == KW_KEY)
		hub->keys.n--;
	if (w->state == KW_SYNCED && w->kind == KW_PREFIX) {
		hub->prefixes.n--;
		hub->prefix_lens[w->key.len]--;
	}
	kw_list_del(w);
}

static void kw_set_synced(kv_watcher_t *w)
{
	struct kv_hub *hub = w->hub;
	kw_detach(w);
	w->state = KW_SYNCED;
	if (w->next_rev <= hub->kv->rev) {
		w->next_rev = hub->kv->rev + 1;
		w->skip = 0;
	}
	if (hub->rev < hub->kv->rev)
		hub->rev = hub->kv->rev;
	if (w->kind == KW_KEY) {
		hub->keys.n++;
		kw_list_add(kw_bucket(&hub->keys, w->hash), w);
		kw_table_grow(&hub->keys);
	} else if (w->kind == KW_PREFIX) {
		hub->prefixes.n++;
		hub->prefix_lens[w->key.len]++;
		kw_list_add(kw_bucket(&hub->prefixes, w->hash), w);
		kw_table_grow(&hub->prefixes);
	} else {
		kw_list_add(&hub->ranges, w);
	}
}

static void kw_set_unsynced(kv_watcher_t *w, int64_t rev, size_t skip)
{
	kw_detach(w);
	w->state = KW_UNSYNCED;
	w->next_rev = rev;
	w->skip = skip;
	kw_list_add(&w->hub->unsynced, w);
}

static void kw_set_done(kv_watcher_t *w)
{
	kw_detach(w);
	if (w->prev_kv && w->state != KW_DONE)
		w->hub->n_prev--;
	w->state = KW_DONE;
	kw_list_add(&w->hub->done, w);
}

/* ---- delivery -------------------------------------------------------------------- */

static size_t kw_varint_size(size_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Bytes one event adds to a packed WatchResponse: tag of field 11 (one byte), length,
 * message. */
static size_t kw_event_cost(const Mvccpb__Event *ev)
{
	size_t n = protobuf_c_message_get_packed_size(&ev->base);
	return 1 + kw_varint_size(n) + n;
}

/* Sends evs[0..n) to w as of revision rev, in fragments when w asked for them and the
 * response would reach watch_max_response_bytes (cut at event boundaries, at least one
 * event each, as etcd does). Returns how many events the receiver took. */
static size_t kw_send_events(kv_watcher_t *w, Mvccpb__Event **evs, size_t n, int64_t rev)
{
	Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
	hdr.revision = rev;
	r.header = &hdr;
	r.watch_id = w->watch_id;
	r.events = evs;
	r.n_events = n;
	size_t max = w->hub->kv->opt.watch_max_response_bytes;
	bool whole = !w->fragment || n < 2;
	if (!whole) {
		r.n_events = 0;
		size_t total = protobuf_c_message_get_packed_size(&r.base);
		for (size_t i = 0; i < n && total < max; i++)
			total += kw_event_cost(evs[i]);
		r.n_events = n;
		whole = total < max;
	}
	if (whole)
		return w->cb(w->ud, w, &r) == 0 ? n : 0;

	r.fragment = true;
	r.n_events = 0;
	size_t base = protobuf_c_message_get_packed_size(&r.base);
	size_t i = 0;
	while (i < n) {
		size_t start = i, size = base;
		while (i < n) {
			size_t c = kw_event_cost(evs[i]);
			if (i > start && size + c >= max)
				break;
			size += c;
			i++;
		}
		r.events = evs + start;
		r.n_events = i - start;
		r.fragment = i < n;
		if (w->cb(w->ud, w, &r) != 0)
			return start;
	}
	return n;
}

/* Offers w its cancel; on refusal kv_watch_step offers it again. The header revision
 * stays 0, as etcd 3.4 sends it (checked with etcdctl watch --rev below a compaction). */
static void kw_send_cancel(kv_watcher_t *w)
{
	Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
	r.header = &hdr;
	r.watch_id = w->watch_id;
	r.canceled = true;
	r.compact_revision = w->cancel_rev;
	if (w->cancel_reason)
		r.cancel_reason = (char *)w->cancel_reason;
	if (w->cb(w->ud, w, &r) == 0)
		kw_set_done(w);
}

static void kw_cancel_compacted(kv_watcher_t *w, int64_t compact_rev)
{
	kw_detach(w);
	w->state = KW_CANCELING;
	w->cancel_rev = compact_rev;
	kw_list_add(&w->hub->unsynced, w);
	kw_send_cancel(w);
}

static bool kw_wants(const kv_watcher_t *w, const Mvccpb__Event *ev)
{
	if (ev->type == MVCCPB__EVENT__EVENT_TYPE__PUT)
		return !w->noput;
	return !w->nodelete;
}

/* ---- hub lifecycle --------------------------------------------------------------- */

int kv_hub_new(kv_t *kv)
{
	struct kv_hub *hub = calloc(1, sizeof(*hub));
	if (!hub)
		return KV_ERR_NOMEM;
	if (!kw_table_init(&hub->keys) || !kw_table_init(&hub->prefixes)) {
		free(hub->keys.b);
		free(hub);
		return KV_ERR_NOMEM;
	}
	hub->kv = kv;
	kv->hub = hub;
	return KV_OK;
}

static void kw_free(kv_watcher_t *w)
{
	free(w->key.data);
	free(w->end.data);
	free(w->hits);
	free(w);
}

void kv_hub_free(kv_t *kv)
{
	struct kv_hub *hub = kv->hub;
	if (!hub)
		return;
	while (hub->all) {
		kv_watcher_t *w = hub->all;
		hub->all = w->all_next;
		kw_free(w);
	}
	free(hub->keys.b);
	free(hub->prefixes.b);
	free(hub->touched);
	free(hub->ordinal);
	free(hub->copies);
	free(hub->ptrs);
	free(hub);
	kv->hub = NULL;
}

bool kv_hub_wants_events(const kv_t *kv)
{
	const struct kv_hub *hub = kv->hub;
	return hub && (hub->keys.n || hub->prefixes.n || hub->ranges.head);
}

bool kv_hub_wants_prev(const kv_t *kv)
{
	return kv->hub && kv->hub->n_prev > 0;
}

/* ---- live delivery --------------------------------------------------------------- */

static bool kw_touch(struct kv_hub *hub, kv_watcher_t *w, size_t i, size_t *n_touched)
{
	if (!w->touched) {
		if (!kw_grow((void **)&hub->touched, &hub->cap_touched, *n_touched + 1,
			     sizeof(*hub->touched)))
			return false;
		hub->touched[(*n_touched)++] = w;
		w->touched = true;
		w->n_hits = 0;
	}
	if (!kw_grow((void **)&w->hits, &w->cap_hits, w->n_hits + 1, sizeof(*w->hits)))
		return false;
	w->hits[w->n_hits++] = i;
	return true;
}

/* Is batch event i at or past w's position, and of a type w wants? */
static bool kw_event_due(const struct kv_hub *hub, const kv_watcher_t *w,
			 const Mvccpb__Event *ev, size_t i)
{
	int64_t r = ev->kv->mod_revision;
	if (r < w->next_rev || (r == w->next_rev && hub->ordinal[i] < w->skip))
		return false;
	return kw_wants(w, ev);
}

static bool kw_same_key(const kv_watcher_t *w, uint64_t h, const uint8_t *key, size_t len)
{
	return w->hash == h && w->key.len == len && (!len || memcmp(w->key.data, key, len) == 0);
}

/* Touches the watchers of chain whose key is key[0..len). */
static bool kw_match_chain(struct kv_hub *hub, kw_table_t *t, uint64_t h, const uint8_t *key,
			   size_t len, const Mvccpb__Event *ev, size_t i, size_t *n_touched)
{
	for (kv_watcher_t *w = kw_bucket(t, h)->head; w; w = w->next) {
		if (!kw_same_key(w, h, key, len))
			continue;
		if (kw_event_due(hub, w, ev, i) && !kw_touch(hub, w, i, n_touched))
			return false;
	}
	return true;
}

/* Finds the synced watchers of each event. False when out of memory. */
static bool kw_match_batch(struct kv_hub *hub, const kv_events_t *events, size_t *n_touched)
{
	for (size_t i = 0; i < events->n; i++) {
		const Mvccpb__Event *ev = events->ev[i];
		const ProtobufCBinaryData *key = &ev->kv->key;
		uint64_t h = KW_HASH_INIT;
		for (size_t l = 0; l < key->len; l++) {
			h = kw_hash_byte(h, key->data[l]);
			if (l + 1 <= KV_MAX_KEY_SIZE && hub->prefix_lens[l + 1] &&
			    !kw_match_chain(hub, &hub->prefixes, h, key->data, l + 1, ev, i,
					    n_touched))
				return false;
		}
		/* h is now the hash of the whole key. */
		if (!kw_match_chain(hub, &hub->keys, h, key->data, key->len, ev, i, n_touched))
			return false;
		for (kv_watcher_t *w = hub->ranges.head; w; w = w->next) {
			if (!kv_in_range(key, &w->key, &w->end))
				continue;
			if (kw_event_due(hub, w, ev, i) && !kw_touch(hub, w, i, n_touched))
				return false;
		}
	}
	return true;
}

/* Delivers w's matching events of the batch; a refusal leaves it behind at the first
 * event not taken. */
static void kw_deliver_batch(struct kv_hub *hub, kv_watcher_t *w, const kv_events_t *events,
			     int64_t rev)
{
	for (size_t j = 0; j < w->n_hits; j++) {
		Mvccpb__Event *src = events->ev[w->hits[j]];
		if (w->prev_kv || !src->prev_kv) {
			hub->ptrs[j] = src;
		} else {
			hub->copies[j] = *src;
			hub->copies[j].prev_kv = NULL;
			hub->ptrs[j] = &hub->copies[j];
		}
	}
	size_t took = kw_send_events(w, hub->ptrs, w->n_hits, rev);
	if (took == w->n_hits) {
		w->next_rev = rev + 1;
		w->skip = 0;
		return;
	}
	size_t i = w->hits[took];
	kw_set_unsynced(w, events->ev[i]->kv->mod_revision, hub->ordinal[i]);
}

/* Per-batch scratch sized for n events; all or nothing. */
static bool kw_batch_scratch(struct kv_hub *hub, size_t n)
{
	if (n <= hub->cap_batch)
		return true;
	size_t c = hub->cap_batch ? hub->cap_batch : 16;
	while (c < n)
		c *= 2;
	size_t *o = realloc(hub->ordinal, c * sizeof(*o));
	if (!o)
		return false;
	hub->ordinal = o;
	Mvccpb__Event *cp = realloc(hub->copies, c * sizeof(*cp));
	if (!cp)
		return false;
	hub->copies = cp;
	Mvccpb__Event **p = realloc(hub->ptrs, c * sizeof(*p));
	if (!p)
		return false;
	hub->ptrs = p;
	hub->cap_batch = c;
	return true;
}

/* Out of memory in the middle of a batch: nobody is served from it; every synced watcher
 * falls behind at the batch's first event (or later, if it starts later) and catches up
 * from LMDB. Nothing is lost and nothing repeats. */
static void kw_batch_fail(struct kv_hub *hub, const kv_events_t *events, size_t n_touched)
{
	for (size_t i = 0; i < n_touched; i++)
		hub->touched[i]->touched = false;
	int64_t first = events->ev[0]->kv->mod_revision;
	kv_watcher_t *next;
	for (kv_watcher_t *w = hub->all; w; w = next) {
		next = w->all_next;
		if (w->state != KW_SYNCED)
			continue;
		if (w->next_rev > first)
			kw_set_unsynced(w, w->next_rev, w->skip);
		else
			kw_set_unsynced(w, first, 0);
	}
}

void kv_hub_notify(kv_t *kv, const kv_events_t *events, int64_t rev)
{
	struct kv_hub *hub = kv->hub;
	if (!hub)
		return;
	if (hub->rev < rev)
		hub->rev = rev;
	if (!events || events->n == 0)
		return;
	size_t n_touched = 0;
	if (!kw_batch_scratch(hub, events->n)) {
		kw_batch_fail(hub, events, 0);
		return;
	}
	for (size_t i = 0; i < events->n; i++) {
		bool same = i > 0 &&
			    events->ev[i]->kv->mod_revision == events->ev[i - 1]->kv->mod_revision;
		hub->ordinal[i] = same ? hub->ordinal[i - 1] + 1 : 0;
	}
	if (!kw_match_batch(hub, events, &n_touched)) {
		kw_batch_fail(hub, events, n_touched);
		return;
	}
	for (size_t i = 0; i < n_touched; i++) {
		kv_watcher_t *w = hub->touched[i];
		w->touched = false;
		kw_deliver_batch(hub, w, events, rev);
	}
}

/* ---- catching up from history ---------------------------------------------------- */

typedef struct kw_found {
	Mvccpb__Event **ev;
	int64_t *rev;
	size_t *ord;
	size_t n, cap;
} kw_found_t;

static void kw_found_clear(kw_found_t *f)
{
	for (size_t i = 0; i < f->n; i++)
		protobuf_c_message_free_unpacked(&f->ev[i]->base, NULL);
	free(f->ev);
	free(f->rev);
	free(f->ord);
	memset(f, 0, sizeof(*f));
}

static int kw_found_push(kw_found_t *f, Mvccpb__Event *ev, int64_t rev, size_t ord)
{
	if (f->n == f->cap) {
		size_t c = f->cap ? f->cap * 2 : 16;
		Mvccpb__Event **e = realloc(f->ev, c * sizeof(*e));
		if (!e)
			return KV_ERR_NOMEM;
		f->ev = e;
		int64_t *r = realloc(f->rev, c * sizeof(*r));
		if (!r)
			return KV_ERR_NOMEM;
		f->rev = r;
		size_t *o = realloc(f->ord, c * sizeof(*o));
		if (!o)
			return KV_ERR_NOMEM;
		f->ord = o;
		f->cap = c;
	}
	f->ev[f->n] = ev;
	f->rev[f->n] = rev;
	f->ord[f->n] = ord;
	f->n++;
	return KV_OK;
}

/* Builds the event of one history record for w (prev_kv read at rev - 1 like etcd,
 * left out when that is compacted). */
static int kw_history_event(kv_t *kv, MDB_txn *txn, const kv_watcher_t *w, const MDB_val *k,
			    const MDB_val *v, int64_t main, Mvccpb__Event **out)
{
	Mvccpb__KeyValue *kvp = NULL;
	int type = 0;
	int rc = mvcc_decode(kv, k, v, false, &kvp, &type);
	if (rc != KV_OK)
		return rc;
	Mvccpb__Event *ev = malloc(sizeof(*ev));
	if (!ev) {
		protobuf_c_message_free_unpacked(&kvp->base, NULL);
		return KV_ERR_NOMEM;
	}
	mvccpb__event__init(ev);
	ev->kv = kvp;
	if (type == KV_REC_DEL) {
		ev->type = MVCCPB__EVENT__EVENT_TYPE__DELETE;
		kvp->mod_revision = main;  /* a tombstone carries no metadata */
	}
	/* mvcc_get reads revision <= 0 as "latest": never ask for one. */
	bool create = type == KV_REC_PUT && kvp->version == 1;
	if (w->prev_kv && !create && main > 1) {
		Mvccpb__KeyValue *prev = NULL;
		if (mvcc_get(kv, txn, kvp->key.data, kvp->key.len, main - 1, false, &prev) == KV_OK)
			ev->prev_kv = prev;
	}
	*out = ev;
	return KV_OK;
}

/* Reads w's next records into f, at least watch_batch_events of them (whole revisions:
 * a revision's events are never split between responses unless fragmented). *end says
 * whether the history ran out; *stop_rev is the first revision not read. */
static int kw_read_history(kv_t *kv, MDB_txn *txn, kv_watcher_t *w, kw_found_t *f, bool *end,
			   int64_t *stop_rev)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, kv->dbi_rev, &cur);
	if (rc != MDB_SUCCESS)
		return kv_from_mdb(kv, rc, "watch: open cursor on rev");
	uint8_t start[16];
	kv_put_be64(start, (uint64_t)w->next_rev);
	kv_put_be64(start + 8, 0);
	MDB_val k = { sizeof(start), start }, v;
	size_t batch = kv->opt.watch_batch_events ? kv->opt.watch_batch_events : 1000;
	size_t records = 0, ord = 0;
	int64_t cur_main = -1;
	*end = false;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	for (;; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (rc == MDB_NOTFOUND) {
			*end = true;
			rc = KV_OK;
			break;
		}
		if (rc != MDB_SUCCESS) {
			rc = kv_from_mdb(kv, rc, "watch: read rev");
			break;
		}
		if (k.mv_size != 16) {
			rc = kv_set_error(kv, KV_ERR_CORRUPT, "%s: rev key of %zu bytes", kv->path,
					  k.mv_size);
			break;
		}
		int64_t main = (int64_t)kv_get_be64(k.mv_data);
		if (main > kv->rev) {
			*end = true;
			rc = KV_OK;
			break;
		}
		if (main != cur_main) {
			if (records >= batch) {
				*stop_rev = main;
				rc = KV_OK;
				break;
			}
			cur_main = main;
			ord = 0;
		} else {
			ord++;
		}
		records++;
		if (main == w->next_rev && ord < w->skip)
			continue;
		kv_rec_hdr_t hdr;
		if (v.mv_size < sizeof(hdr)) {
			rc = kv_set_error(kv, KV_ERR_CORRUPT, "%s: rev record %lld of %zu bytes",
					  kv->path, (long long)main, v.mv_size);
			break;
		}
		memcpy(&hdr, v.mv_data, sizeof(hdr));
		if (hdr.key_len > v.mv_size - sizeof(hdr) ||
		    (hdr.type != KV_REC_PUT && hdr.type != KV_REC_DEL)) {
			rc = kv_set_error(kv, KV_ERR_CORRUPT, "%s: bad rev record at %lld",
					  kv->path, (long long)main);
			break;
		}
		ProtobufCBinaryData key = { hdr.key_len, (uint8_t *)v.mv_data + sizeof(hdr) };
		bool in = w->kind == KW_KEY ? kw_same_key(w, w->hash, key.data, key.len)
					    : kv_in_range(&key, &w->key, &w->end);
		if (!in || (hdr.type == KV_REC_PUT ? w->noput : w->nodelete))
			continue;
		Mvccpb__Event *ev = NULL;
		rc = kw_history_event(kv, txn, w, &k, &v, main, &ev);
		if (rc != KV_OK)
			break;
		rc = kw_found_push(f, ev, main, ord);
		if (rc != KV_OK) {
			protobuf_c_message_free_unpacked(&ev->base, NULL);
			break;
		}
	}
	mdb_cursor_close(cur);
	return rc;
}

/* One catch-up step of w. */
static void kw_step_one(kv_t *kv, MDB_txn *txn, kv_watcher_t *w)
{
	if (w->next_rev > kv->rev) {
		kw_set_synced(w);
		return;
	}
	kw_found_t f = { 0 };
	bool end = false;
	int64_t stop_rev = 0;
	int rc = kw_read_history(kv, txn, w, &f, &end, &stop_rev);
	if (rc == KV_ERR_CORRUPT) {
		kw_found_clear(&f);
		w->cancel_reason = "kvstore: corrupt history record";
		kw_cancel_compacted(w, 0);
		return;
	}
	if (rc != KV_OK) {
		kw_found_clear(&f);  /* stays behind; a later step retries */
		return;
	}
	size_t took = f.n ? kw_send_events(w, f.ev, f.n, kv->rev) : 0;
	if (took < f.n) {
		w->next_rev = f.rev[took];
		w->skip = f.ord[took];
	} else if (end) {
		kw_set_synced(w);
	} else {
		w->next_rev = stop_rev;
		w->skip = 0;
	}
	kw_found_clear(&f);
}

size_t kv_watch_step(kv_t *kv)
{
	struct kv_hub *hub = kv->hub;
	if (!hub || !hub->unsynced.head)
		return 0;
	MDB_txn *txn = NULL;
	size_t behind = 0;
	kv_watcher_t *next;
	for (kv_watcher_t *w = hub->unsynced.head; w; w = next) {
		next = w->next;
		if (w->state == KW_UNSYNCED && w->next_rev < kv->compact_rev)
			kw_cancel_compacted(w, kv->compact_rev);
		else if (w->state == KW_CANCELING)
			kw_send_cancel(w);
		else if (w->next_rev > kv->rev)
			kw_set_synced(w);
		if (w->state != KW_UNSYNCED)
			continue;
		if (!txn) {
			int rc = mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &txn);
			if (rc != MDB_SUCCESS) {
				kv_from_mdb(kv, rc, "watch: begin read");
				txn = NULL;
				break;
			}
		}
		kw_step_one(kv, txn, w);
	}
	if (txn)
		mdb_txn_abort(txn);
	for (kv_watcher_t *w = hub->unsynced.head; w; w = w->next)
		behind++;
	return behind;
}

/* ---- compaction and snapshots ---------------------------------------------------- */

void kv_hub_compacted(kv_t *kv, int64_t compact_rev)
{
	struct kv_hub *hub = kv->hub;
	if (!hub)
		return;
	kv_watcher_t *next;
	for (kv_watcher_t *w = hub->unsynced.head; w; w = next) {
		next = w->next;
		if (w->state == KW_UNSYNCED && w->next_rev < compact_rev)
			kw_cancel_compacted(w, compact_rev);
	}
}

void kv_hub_reset(kv_t *kv)
{
	struct kv_hub *hub = kv->hub;
	if (!hub)
		return;
	/* The store jumped: every caught-up watcher resumes from where it was and either
	 * catches up from the new history or is canceled if that history is gone. */
	kv_watcher_t *next;
	for (kv_watcher_t *w = hub->all; w; w = next) {
		next = w->all_next;
		if (w->state != KW_SYNCED)
			continue;
		int64_t pos = w->next_rev > hub->rev + 1 ? w->next_rev : hub->rev + 1;
		kw_set_unsynced(w, pos, pos == w->next_rev ? w->skip : 0);
	}
	hub->rev = kv->rev;
	kv_hub_compacted(kv, kv->compact_rev);
}

/* ---- public calls ---------------------------------------------------------------- */

static bool kw_copy(ProtobufCBinaryData *dst, const ProtobufCBinaryData *src)
{
	dst->len = src->len;
	dst->data = malloc(src->len ? src->len : 1);
	if (!dst->data)
		return false;
	if (src->len)
		memcpy(dst->data, src->data, src->len);
	return true;
}

static bool kw_is_from_key(const ProtobufCBinaryData *end)
{
	return end->len == 1 && end->data[0] == 0;
}

/* Is [key, end) exactly the keys that start with key? True when end is etcd's prefix end
 * of key (clientv3.GetPrefixRangeEnd): the last byte below 0xff plus one, 0xff bytes after
 * it dropped. Keys longer than LMDB takes never exist: those ranges stay KW_RANGE. */
static bool kw_is_prefix(const ProtobufCBinaryData *key, const ProtobufCBinaryData *end)
{
	if (!key->len || key->len > KV_MAX_KEY_SIZE || !end->len || end->len > key->len)
		return false;
	size_t i = end->len - 1;
	if (key->data[i] == 0xff || end->data[i] != key->data[i] + 1 ||
	    memcmp(key->data, end->data, i) != 0)
		return false;
	for (size_t j = end->len; j < key->len; j++)
		if (key->data[j] != 0xff)
			return false;
	return true;
}

int kv_watch(kv_t *kv, const Etcdserverpb__WatchCreateRequest *req, kv_watch_fn cb, void *ud,
	     kv_watcher_t **out)
{
	*out = NULL;
	struct kv_hub *hub = kv->hub;
	if (!hub || !req || !cb)
		return KV_ERR_BAD_REQUEST;
	if (req->range_end.len && !kw_is_from_key(&req->range_end)) {
		size_t n = req->key.len < req->range_end.len ? req->key.len : req->range_end.len;
		int c = n ? memcmp(req->key.data, req->range_end.data, n) : 0;
		if (c > 0 || (c == 0 && req->key.len >= req->range_end.len))
			return KV_ERR_WATCH_RANGE_EMPTY;
	}
	kv_watcher_t *w = calloc(1, sizeof(*w));
	if (!w)
		return KV_ERR_NOMEM;
	if (!kw_copy(&w->key, &req->key) || !kw_copy(&w->end, &req->range_end)) {
		kw_free(w);
		return KV_ERR_NOMEM;
	}
	w->hub = hub;
	if (req->range_end.len == 0)
		w->kind = KW_KEY;
	else if (kw_is_prefix(&req->key, &req->range_end))
		w->kind = KW_PREFIX;
	else
		w->kind = KW_RANGE;
	w->hash = kw_hash_key(w->key.data, w->key.len);
	w->watch_id = req->watch_id;
	w->cb = cb;
	w->ud = ud;
	w->prev_kv = req->prev_kv;
	w->fragment = req->fragment;
	w->progress_notify = req->progress_notify;
	for (size_t i = 0; i < req->n_filters; i++) {
		Etcdserverpb__WatchCreateRequest__FilterType f = req->filters[i];
		w->noput |= f == ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT;
		w->nodelete |= f == ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE;
	}
	w->all_next = hub->all;
	if (hub->all)
		hub->all->all_prev = w;
	hub->all = w;
	if (w->prev_kv)
		hub->n_prev++;
	*out = w;

	int64_t start = req->start_revision;
	if (start <= 0 || start > kv->rev) {
		/* etcd: a future start waits for that revision. */
		w->next_rev = start > kv->rev + 1 ? start : kv->rev + 1;
		kw_set_synced(w);
	} else if (start < kv->compact_rev) {
		w->next_rev = start;
		kw_cancel_compacted(w, kv->compact_rev);
	} else {
		kw_set_unsynced(w, start, 0);
	}
	return KV_OK;
}

void kv_watch_cancel(kv_t *kv, kv_watcher_t *w)
{
	struct kv_hub *hub = kv->hub;
	if (!w || !hub)
		return;
	kw_detach(w);
	if (w->prev_kv && w->state != KW_DONE)
		hub->n_prev--;
	if (w->all_prev)
		w->all_prev->all_next = w->all_next;
	else
		hub->all = w->all_next;
	if (w->all_next)
		w->all_next->all_prev = w->all_prev;
	kw_free(w);
}

static void kw_send_progress(kv_t *kv, kv_watcher_t *w)
{
	Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
	hdr.revision = kv->rev;
	r.header = &hdr;
	r.watch_id = w->watch_id;
	(void)w->cb(w->ud, w, &r);  /* a refused notification is simply not sent */
}

void kv_watch_progress(kv_t *kv, kv_watcher_t *w)
{
	struct kv_hub *hub = kv->hub;
	if (!hub)
		return;
	if (w) {
		if (w->state == KW_SYNCED)
			kw_send_progress(kv, w);
		return;
	}
	for (kv_watcher_t *x = hub->all; x; x = x->all_next)
		if (x->state == KW_SYNCED && x->progress_notify)
			kw_send_progress(kv, x);
}
