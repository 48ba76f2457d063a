/* test_kv_members.c — the membership as replicated state (kvstore/members.c): conf-change
 * entries applied in the store's transaction, first members from the bootstrap
 * configuration, learners and promotion, peer URL updates, removed ids kept forever, what
 * survives a reopen and a store snapshot, and bad entries refused without a trace. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_harness.h"
#include "tmpdir.h"

/* What one applied conf change gave back (the response is kept as a member list). */
typedef struct outcome {
	uint64_t id;
	int err;
	Etcdserverpb__MemberListResponse *list;
} outcome_t;

static void on_applied(void *ud, kv_result_t *r)
{
	outcome_t *o = ud;
	o->id = r->id;
	o->err = r->err;
	o->list = (Etcdserverpb__MemberListResponse *)r->resp;
	if (r->resp)
		assert_ptr_equal(r->resp->descriptor, &etcdserverpb__member_list_response__descriptor);
}

static void outcome_clear(outcome_t *o)
{
	if (o->list)
		protobuf_c_message_free_unpacked(&o->list->base, NULL);
	memset(o, 0, sizeof(*o));
}

/* Applies one conf-change entry with raw data at the next index. */
static outcome_t apply_raw(kvh_t *h, const void *data, size_t len)
{
	outcome_t o = {0};
	raft_entry_t *e = raft_entry_new(h->term, ++h->index, RAFT_ENTRY_CONF_CHANGE, data, len);
	assert_non_null(e);
	assert_int_equal(kv_apply(h->kv, &e, 1, on_applied, &o), KV_OK);
	raft_entry_free(e);
	assert_int_equal(kv_applied_index(h->kv), h->index);
	return o;
}

/* A conf change about node, with a context carrying req_id and the member (id node, the
 * given comma-separated peer URLs) when with_ctx. */
static outcome_t apply_cc(kvh_t *h, int type, uint64_t node, bool with_ctx, uint64_t req_id,
			  const char *urls)
{
	raft_conf_change_t cc = RAFTPB__CONF_CHANGE__INIT;
	cc.type = (Raftpb__ConfChangeType)type;
	cc.node_id = node;
	char buf[512], *v[8];
	Etcdserverpb__Member m = ETCDSERVERPB__MEMBER__INIT;
	m.id = node;
	if (urls) {
		snprintf(buf, sizeof(buf), "%s", urls);
		for (char *t = strtok(buf, ","); t; t = strtok(NULL, ","))
			v[m.n_peerurls++] = t;
		m.peerurls = v;
	}
	uint8_t *ctx = NULL;
	size_t clen = 0;
	if (with_ctx) {
		assert_int_equal(kv_members_pack_context(req_id, &m, &ctx, &clen), KV_OK);
		cc.context.data = ctx;
		cc.context.len = clen;
	}
	uint8_t data[1024];
	size_t len = raftpb__conf_change__pack(&cc, data);
	free(ctx);
	return apply_raw(h, data, len);
}

static Etcdserverpb__MemberListResponse *list_of(kvh_t *h)
{
	Etcdserverpb__MemberListResponse *r = NULL;
	assert_int_equal(kv_members_list(h->kv, &r), KV_OK);
	assert_non_null(r);
	return r;
}

static void list_free(Etcdserverpb__MemberListResponse *r)
{
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* The list as one line: "id:name:url|url:L" per member (L for a learner), in order. */
static void describe(const Etcdserverpb__MemberListResponse *r, char *out, size_t len)
{
	size_t off = 0;
	out[0] = 0;
	for (size_t i = 0; i < r->n_members && off < len; i++) {
		const Etcdserverpb__Member *m = r->members[i];
		off += (size_t)snprintf(out + off, len - off, "%s%llx:%s:", i ? " " : "",
					(unsigned long long)m->id, m->name ? m->name : "");
		for (size_t u = 0; u < m->n_peerurls && off < len; u++)
			off += (size_t)snprintf(out + off, len - off, "%s%s", u ? "|" : "",
						m->peerurls[u]);
		if (off < len)
			off += (size_t)snprintf(out + off, len - off, "%s", m->islearner ? ":L" : "");
		assert_int_equal(m->n_clienturls, 0);
	}
}

static void assert_members(kvh_t *h, const char *want)
{
	Etcdserverpb__MemberListResponse *r = list_of(h);
	char got[2048];
	describe(r, got, sizeof(got));
	assert_string_equal(got, want);
	list_free(r);
}

/* Three first members as a new cluster has them: bootstrap records, then the raft core's
 * context-less conf changes at indexes 1..3. */
static void bootstrap3(kvh_t *h)
{
	static char *u1[] = {"http://10.0.0.1:2380"}, *u2[] = {"http://10.0.0.2:2380"},
		    *u3[] = {"http://10.0.0.3:2380"};
	Etcdserverpb__Member m[3];
	Etcdserverpb__Member *mp[3];
	const char *names[] = {"one", "two", "three"};
	char **urls[] = {u1, u2, u3};
	const uint64_t ids[] = {0x30, 0x10, 0x20};
	for (int i = 0; i < 3; i++) {
		etcdserverpb__member__init(&m[i]);
		m[i].id = ids[i];
		m[i].name = (char *)names[i];
		m[i].n_peerurls = 1;
		m[i].peerurls = urls[i];
		mp[i] = &m[i];
	}
	assert_int_equal(kv_members_bootstrap(h->kv, mp, 3), KV_OK);
	for (int i = 0; i < 3; i++) {
		outcome_t o = apply_cc(h, RAFT_CONF_ADD_NODE, ids[i], false, 0, NULL);
		assert_int_equal(o.err, 0);
		assert_non_null(o.list);
		assert_int_equal(o.list->n_members, (size_t)i + 1);
		outcome_clear(&o);
	}
}

#define THREE "10:two:http://10.0.0.2:2380 20:three:http://10.0.0.3:2380 " \
	      "30:one:http://10.0.0.1:2380"

static void test_bootstrap_conf_changes_take_members_from_configuration(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	bootstrap3(h);
	assert_members(h, THREE);
	/* a first member the configuration did not name is known by its id alone */
	outcome_t o = apply_cc(h, RAFT_CONF_ADD_NODE, 0x40, false, 0, NULL);
	assert_int_equal(o.err, 0);
	outcome_clear(&o);
	assert_members(h, THREE " 40::");
	kvh_free(h);
}

static void test_added_learner_is_unnamed_until_promoted_keeping_its_urls(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	bootstrap3(h);
	outcome_t o = apply_cc(h, RAFT_CONF_ADD_LEARNER, 0x15, true, 777,
			       "http://10.0.0.5:2380,http://10.0.0.6:2380");
	assert_int_equal(o.err, 0);
	assert_int_equal(o.id, 777);
	assert_non_null(o.list);
	assert_int_equal(o.list->n_members, 4);
	assert_int_equal(o.list->members[1]->id, 0x15);
	assert_true(o.list->members[1]->islearner);
	outcome_clear(&o);
	assert_members(h, "10:two:http://10.0.0.2:2380 "
		       "15::http://10.0.0.5:2380|http://10.0.0.6:2380:L "
		       "20:three:http://10.0.0.3:2380 30:one:http://10.0.0.1:2380");
	/* promotion: the context names the member only */
	o = apply_cc(h, RAFT_CONF_ADD_NODE, 0x15, true, 778, NULL);
	assert_int_equal(o.err, 0);
	assert_int_equal(o.id, 778);
	outcome_clear(&o);
	assert_members(h, "10:two:http://10.0.0.2:2380 "
		       "15::http://10.0.0.5:2380|http://10.0.0.6:2380 "
		       "20:three:http://10.0.0.3:2380 30:one:http://10.0.0.1:2380");
	kvh_free(h);
}

static void test_update_replaces_peer_urls_and_nothing_else(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	bootstrap3(h);
	outcome_t o = apply_cc(h, RAFT_CONF_UPDATE_NODE, 0x20, true, 9, "http://10.0.0.9:2390");
	assert_int_equal(o.err, 0);
	assert_int_equal(o.id, 9);
	outcome_clear(&o);
	assert_members(h, "10:two:http://10.0.0.2:2380 20:three:http://10.0.0.9:2390 "
		       "30:one:http://10.0.0.1:2380");
	kvh_free(h);
}

static void test_removed_member_stays_removed_and_cannot_return(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	bootstrap3(h);
	bool removed = true;
	assert_int_equal(kv_member_removed(h->kv, 0x20, &removed), KV_OK);
	assert_false(removed);
	outcome_t o = apply_cc(h, RAFT_CONF_REMOVE_NODE, 0x20, true, 5, NULL);
	assert_int_equal(o.err, 0);
	assert_int_equal(o.list->n_members, 2);
	outcome_clear(&o);
	assert_int_equal(kv_member_removed(h->kv, 0x20, &removed), KV_OK);
	assert_true(removed);
	assert_int_equal(kv_member_removed(h->kv, 0x10, &removed), KV_OK);
	assert_false(removed);
	/* neither as a voter, nor as a learner, nor by an update */
	static const int types[] = {RAFT_CONF_ADD_NODE, RAFT_CONF_ADD_LEARNER,
				    RAFT_CONF_UPDATE_NODE, RAFT_CONF_REMOVE_NODE};
	for (size_t i = 0; i < 4; i++) {
		o = apply_cc(h, types[i], 0x20, true, 6, "http://10.0.0.3:2380");
		assert_int_equal(o.err, KV_ERR_BAD_REQUEST);
		assert_int_equal(o.id, 6);
		assert_null(o.list);
		outcome_clear(&o);
	}
	assert_members(h, "10:two:http://10.0.0.2:2380 30:one:http://10.0.0.1:2380");
	kvh_free(h);
}

static void test_membership_survives_reopen(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	bootstrap3(h);
	outcome_t o = apply_cc(h, RAFT_CONF_ADD_LEARNER, 0x50, true, 1, "http://10.0.0.5:2380");
	outcome_clear(&o);
	o = apply_cc(h, RAFT_CONF_REMOVE_NODE, 0x30, true, 2, NULL);
	outcome_clear(&o);
	kvh_reopen(h); /* also checks the consistent index came back */
	assert_members(h, "10:two:http://10.0.0.2:2380 20:three:http://10.0.0.3:2380 "
		       "50::http://10.0.0.5:2380:L");
	bool removed = false;
	assert_int_equal(kv_member_removed(h->kv, 0x30, &removed), KV_OK);
	assert_true(removed);
	/* entries at or below the consistent index are not applied again */
	raft_conf_change_t cc = RAFTPB__CONF_CHANGE__INIT;
	cc.type = RAFT_CONF_REMOVE_NODE;
	cc.node_id = 0x10;
	uint8_t data[64];
	size_t len = raftpb__conf_change__pack(&cc, data);
	raft_entry_t *e = raft_entry_new(h->term, h->index, RAFT_ENTRY_CONF_CHANGE, data, len);
	assert_int_equal(kv_apply(h->kv, &e, 1, NULL, NULL), KV_OK);
	raft_entry_free(e);
	assert_members(h, "10:two:http://10.0.0.2:2380 20:three:http://10.0.0.3:2380 "
		       "50::http://10.0.0.5:2380:L");
	kvh_free(h);
}

static void test_membership_travels_in_a_store_snapshot(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	bootstrap3(h);
	outcome_t o = apply_cc(h, RAFT_CONF_REMOVE_NODE, 0x10, true, 3, NULL);
	outcome_clear(&o);
	char copy[400];
	snprintf(copy, sizeof(copy), "%s/copy.db", h->dir);
	assert_int_equal(kv_snapshot_save(h->kv, copy), KV_OK);
	kvh_t *other = kvh_new(NULL);
	assert_int_equal(kv_snapshot_install(other->kv, copy), KV_OK);
	other->index = h->index;
	assert_members(other, "20:three:http://10.0.0.3:2380 30:one:http://10.0.0.1:2380");
	bool removed = false;
	assert_int_equal(kv_member_removed(other->kv, 0x10, &removed), KV_OK);
	assert_true(removed);
	kvh_free(other);
	kvh_free(h);
}

/* Each bad entry is applied as a no-op: the consistent index moves, nothing else. */
static void test_bad_conf_changes_are_refused_without_changing_anything(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	bootstrap3(h);
	outcome_t o;
	/* not a ConfChange at all */
	o = apply_raw(h, "\xff\xff\xff", 3);
	assert_int_equal(o.err, KV_ERR_BAD_REQUEST);
	outcome_clear(&o);
	/* a context that does not decode */
	raft_conf_change_t cc = RAFTPB__CONF_CHANGE__INIT;
	cc.type = RAFT_CONF_ADD_LEARNER;
	cc.node_id = 0x60;
	cc.context.data = (uint8_t *)"\x0a\xff\x01";
	cc.context.len = 3;
	uint8_t data[512];
	o = apply_raw(h, data, raftpb__conf_change__pack(&cc, data));
	assert_int_equal(o.err, KV_ERR_BAD_REQUEST);
	assert_null(o.list);
	outcome_clear(&o);
	/* a context about another member */
	Etcdserverpb__Member m = ETCDSERVERPB__MEMBER__INIT;
	m.id = 0x61;
	uint8_t *ctx;
	size_t clen;
	assert_int_equal(kv_members_pack_context(42, &m, &ctx, &clen), KV_OK);
	cc.context.data = ctx;
	cc.context.len = clen;
	o = apply_raw(h, data, raftpb__conf_change__pack(&cc, data));
	assert_int_equal(o.err, KV_ERR_BAD_REQUEST);
	assert_int_equal(o.id, 42); /* the proposer still hears about it */
	outcome_clear(&o);
	/* a context without a member */
	free(ctx);
	assert_int_equal(kv_members_pack_context(43, NULL, &ctx, &clen), KV_OK);
	cc.context.data = ctx;
	cc.context.len = clen;
	o = apply_raw(h, data, raftpb__conf_change__pack(&cc, data));
	assert_int_equal(o.err, KV_ERR_BAD_REQUEST);
	free(ctx);
	outcome_clear(&o);
	/* an unknown change type, node 0 */
	o = apply_cc(h, 7, 0x10, true, 44, NULL);
	assert_int_equal(o.err, KV_ERR_BAD_REQUEST);
	outcome_clear(&o);
	o = apply_cc(h, RAFT_CONF_ADD_LEARNER, 0, false, 0, NULL);
	assert_int_equal(o.err, KV_ERR_BAD_REQUEST);
	outcome_clear(&o);
	/* changes that make no sense for the members as they are */
	o = apply_cc(h, RAFT_CONF_ADD_NODE, 0x10, true, 45, NULL);       /* a voter again */
	assert_int_equal(o.err, KV_ERR_BAD_REQUEST);
	outcome_clear(&o);
	o = apply_cc(h, RAFT_CONF_ADD_LEARNER, 0x10, true, 46, NULL);    /* demotion */
	assert_int_equal(o.err, KV_ERR_BAD_REQUEST);
	outcome_clear(&o);
	o = apply_cc(h, RAFT_CONF_REMOVE_NODE, 0x99, true, 47, NULL);    /* unknown */
	assert_int_equal(o.err, KV_ERR_BAD_REQUEST);
	outcome_clear(&o);
	o = apply_cc(h, RAFT_CONF_UPDATE_NODE, 0x99, true, 48, "http://x:1");
	assert_int_equal(o.err, KV_ERR_BAD_REQUEST);
	outcome_clear(&o);
	o = apply_cc(h, RAFT_CONF_UPDATE_NODE, 0x10, false, 0, NULL);    /* no new URLs */
	assert_int_equal(o.err, KV_ERR_BAD_REQUEST);
	outcome_clear(&o);
	assert_members(h, THREE);
	bool removed = true;
	assert_int_equal(kv_member_removed(h->kv, 0x99, &removed), KV_OK);
	assert_false(removed);
	assert_int_equal(kv_revision(h->kv), 1);
	kvh_free(h);
}

/* A store that never saw a conf change (an old one, or a member still joining) lists no
 * members rather than failing; a bootstrap record alone is not a member. */
static void test_empty_store_lists_no_members(void **state)
{
	(void)state;
	kvh_t *h = kvh_new(NULL);
	assert_members(h, "");
	Etcdserverpb__Member m = ETCDSERVERPB__MEMBER__INIT, *mp = &m;
	m.id = 0x70;
	assert_int_equal(kv_members_bootstrap(h->kv, &mp, 1), KV_OK);
	assert_members(h, "");
	m.id = 0;
	assert_int_equal(kv_members_bootstrap(h->kv, &mp, 1), KV_ERR_BAD_REQUEST);
	kvh_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bootstrap_conf_changes_take_members_from_configuration),
		cmocka_unit_test(test_added_learner_is_unnamed_until_promoted_keeping_its_urls),
		cmocka_unit_test(test_update_replaces_peer_urls_and_nothing_else),
		cmocka_unit_test(test_removed_member_stays_removed_and_cannot_return),
		cmocka_unit_test(test_membership_survives_reopen),
		cmocka_unit_test(test_membership_travels_in_a_store_snapshot),
		cmocka_unit_test(test_bad_conf_changes_are_refused_without_changing_anything),
		cmocka_unit_test(test_empty_store_lists_no_members),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
