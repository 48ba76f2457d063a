/* server/svc_cluster.c — etcd's Cluster service on keeld: MemberList, MemberAdd,
 * MemberRemove, MemberUpdate and MemberPromote. Each change is checked the way etcd 3.4
 * checks it (its strict reconfiguration checks included), then goes through raft as a conf
 * change, and the call returns once the change is applied here, with the members after it.
 * Errors carry etcd's gRPC codes and texts to the letter. Never changes membership itself:
 * only applying a conf change does (kvstore/members.c, node.c). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keeld.h"
#include "svc.h"

/* etcd's HealthInterval: a peer counts as connected once its connection is this old. */
#define HEALTH_INTERVAL_MS 5000
#define MAX_LEARNERS 1            /* etcd 3.4's maxLearners */
#define LEARNER_READY_PERCENT 0.9 /* etcd's readyPercent */

/* etcd's answers, by name. */
enum cluster_err {
	CE_BAD_URLS,
	CE_PEER_URL_EXISTS,
	CE_NOT_FOUND,
	CE_NOT_LEARNER,
	CE_LEARNER_NOT_READY,
	CE_TOO_MANY_LEARNERS,
	CE_NOT_ENOUGH_STARTED,
	CE_UNHEALTHY,
	CE_NOT_LEADER,
};

static const struct {
	int code;
	const char *text;
} cluster_errs[] = {
	[CE_BAD_URLS] = {GRPC_INVALID_ARGUMENT, "etcdserver: given member URLs are invalid"},
	[CE_PEER_URL_EXISTS] = {GRPC_FAILED_PRECONDITION, "etcdserver: Peer URLs already exists"},
	[CE_NOT_FOUND] = {GRPC_NOT_FOUND, "etcdserver: member not found"},
	[CE_NOT_LEARNER] = {GRPC_FAILED_PRECONDITION, "etcdserver: can only promote a learner member"},
	[CE_LEARNER_NOT_READY] = {GRPC_FAILED_PRECONDITION, "etcdserver: can only promote a learner "
				  "member which is in sync with leader"},
	[CE_TOO_MANY_LEARNERS] = {GRPC_FAILED_PRECONDITION,
				  "etcdserver: too many learner members in cluster"},
	[CE_NOT_ENOUGH_STARTED] = {GRPC_FAILED_PRECONDITION, "etcdserver: re-configuration failed "
				   "due to not enough started members"},
	[CE_UNHEALTHY] = {GRPC_UNAVAILABLE, "etcdserver: unhealthy cluster"},
	[CE_NOT_LEADER] = {GRPC_UNAVAILABLE, "etcdserver: not leader"},
};

enum change_kind { CHANGE_ADD, CHANGE_REMOVE, CHANGE_UPDATE, CHANGE_PROMOTE };

/* One membership call in flight (its grpc call user). */
typedef struct member_call {
	keeld_t *s;
	grpc_call_t *call;
	enum change_kind kind;
	uint64_t id;                 /* the member the change is about */
	bool learner;                /* add: as a learner */
	size_t n_urls;               /* add: the new member's peer URLs */
	char *urls[KEELD_MAX_URLS];
} member_call_t;

/* A promotion forwarded to this member as leader: whom to answer. */
typedef struct promote_fwd {
	uint64_t from, req_id;
	keeld_reply_fn reply;
} promote_fwd_t;

/* ---- members as etcd lists them ---------------------------------------------------- */

static size_t split_urls(char *s, char **out, size_t max)
{
	size_t n = 0;
	for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
		out[n++] = tok;
	return n;
}

static int member_ptr_cmp(const void *a, const void *b)
{
	uint64_t x = (*(Etcdserverpb__Member *const *)a)->id;
	uint64_t y = (*(Etcdserverpb__Member *const *)b)->id;
	return x < y ? -1 : x > y;
}

/* malloc'd (a view is too big for the loop thread's stack); NULL when out of memory. */
keeld_member_view_t *keeld_members_view(keeld_t *s)
{
	keeld_member_view_t *v = malloc(sizeof(*v));
	if (!v)
		return NULL;
	v->n = s->n_members;
	for (size_t i = 0; i < s->n_members; i++) {
		const keeld_member_t *m = &s->members[i];
		Etcdserverpb__Member *pm = &v->ms[i];
		etcdserverpb__member__init(pm);
		v->mp[i] = pm;
		pm->id = m->id;
		pm->name = (char *)m->name;
		pm->islearner = m->is_learner;
		snprintf(v->peer[i], sizeof(v->peer[i]), "%s", m->peer_urls);
		snprintf(v->client[i], sizeof(v->client[i]), "%s", m->client_urls);
		pm->n_peerurls = split_urls(v->peer[i], v->peer_v[i], KEELD_MAX_URLS);
		pm->peerurls = v->peer_v[i];
		pm->n_clienturls = split_urls(v->client[i], v->client_v[i], KEELD_MAX_URLS);
		pm->clienturls = v->client_v[i];
	}
	qsort(v->mp, v->n, sizeof(v->mp[0]), member_ptr_cmp);
	return v;
}

static const keeld_member_t *member_find(const keeld_t *s, uint64_t id)
{
	for (size_t i = 0; i < s->n_members; i++)
		if (s->members[i].id == id)
			return &s->members[i];
	return NULL;
}

static bool member_removed(keeld_t *s, uint64_t id)
{
	bool removed = false;
	return kv_member_removed(s->kv, id, &removed) == KV_OK && removed;
}

/* Whether url is among the peer URLs of a member other than except. */
static bool peer_url_taken(const keeld_t *s, const char *url, uint64_t except)
{
	for (size_t i = 0; i < s->n_members; i++) {
		if (s->members[i].id == except)
			continue;
		const char *p = s->members[i].peer_urls;
		size_t ul = strlen(url);
		while (*p) {
			size_t l = strcspn(p, ",");
			if (l == ul && !strncmp(p, url, l))
				return true;
			p += l + (p[l] == ',');
		}
	}
	return false;
}

/* ---- etcd's strict reconfiguration checks ------------------------------------------- */

/* etcd counts a member as started once it published its name. */
static void voters_count(const keeld_t *s, uint64_t except, size_t *voters, size_t *started)
{
	*voters = *started = 0;
	for (size_t i = 0; i < s->n_members; i++) {
		const keeld_member_t *m = &s->members[i];
		if (m->is_learner || m->id == except)
			continue;
		(*voters)++;
		*started += m->name[0] != 0;
	}
}

/* Voting members connected to this one for at least etcd's health interval (itself
 * included), as etcd's numConnectedSince counts them. */
static size_t voters_connected(keeld_t *s)
{
	uint64_t now = uv_now(s->loop);
	size_t n = 0;
	for (size_t i = 0; i < s->n_members; i++) {
		const keeld_member_t *m = &s->members[i];
		if (m->is_learner)
			continue;
		uint64_t since = m->id == s->id ? 0 : peer_net_active_since(s->peers, m->id);
		n += m->id == s->id || (since && since + HEALTH_INTERVAL_MS < now);
	}
	return n;
}

static int check_add(keeld_t *s, bool learner, char *const *urls, size_t n_urls)
{
	size_t voters, started;
	voters_count(s, 0, &voters, &started);
	size_t n = voters + 1;
	if (!learner && !(started == 1 && n == 2) && started < n / 2 + 1)
		return CE_NOT_ENOUGH_STARTED;
	if (voters_connected(s) != voters) /* learners too: etcd checks this for every add */
		return CE_UNHEALTHY;
	for (size_t i = 0; i < n_urls; i++)
		if (peer_url_taken(s, urls[i], 0))
			return CE_PEER_URL_EXISTS;
	size_t learners = 0;
	for (size_t i = 0; i < s->n_members; i++)
		learners += s->members[i].is_learner;
	if (learner && learners + 1 > MAX_LEARNERS)
		return CE_TOO_MANY_LEARNERS;
	return -1;
}

static int check_remove(keeld_t *s, uint64_t id)
{
	const keeld_member_t *m = member_find(s, id);
	if (!m || !m->is_learner) {
		size_t voters, started;
		voters_count(s, id, &voters, &started);
		if (started < voters / 2 + 1)
			return CE_NOT_ENOUGH_STARTED;
		/* a member that is down is not part of the active quorum: safe to remove */
		if (id == s->id || peer_net_active_since(s->peers, id) != 0) {
			size_t all;
			voters_count(s, 0, &all, &started);
			size_t active = voters_connected(s);
			if (active < 1 || active - 1 < 1 + (all - 1) / 2)
				return CE_UNHEALTHY;
		}
	}
	if (member_removed(s, id) || !m)
		return CE_NOT_FOUND;
	return -1;
}

static int check_update(keeld_t *s, uint64_t id, char *const *urls, size_t n_urls)
{
	if (member_removed(s, id) || !member_find(s, id))
		return CE_NOT_FOUND;
	for (size_t i = 0; i < n_urls; i++)
		if (peer_url_taken(s, urls[i], id))
			return CE_PEER_URL_EXISTS;
	return -1;
}

/* On the leader only: the learner's log must be within 90% of the leader's. */
static int check_promote(keeld_t *s, uint64_t id)
{
	raft_progress_state_t st;
	uint64_t lmatch, match, next;
	if (s->state != RAFT_LEADER ||
	    raft_progress(s->raft, s->id, &st, &lmatch, &next) != RAFT_OK)
		return CE_NOT_LEADER;
	if (raft_progress(s->raft, id, &st, &match, &next) == RAFT_OK &&
	    (double)match < (double)lmatch * LEARNER_READY_PERCENT)
		return CE_LEARNER_NOT_READY;
	size_t voters, started;
	voters_count(s, 0, &voters, &started);
	if (started + 1 < (voters + 1) / 2 + 1)
		return CE_NOT_ENOUGH_STARTED;
	const keeld_member_t *m = member_find(s, id);
	if (member_removed(s, id) || !m)
		return CE_NOT_FOUND;
	if (!m->is_learner)
		return CE_NOT_LEARNER;
	return -1;
}

/* ---- peer URLs as etcd's types.NewURLs takes them ------------------------------------ */

static bool url_valid(const char *u)
{
	const char *sep = strstr(u, "://");
	if (!sep)
		return false;
	char scheme[8];
	size_t sl = (size_t)(sep - u);
	if (sl == 0 || sl >= sizeof(scheme))
		return false;
	for (size_t i = 0; i < sl; i++)
		scheme[i] = (char)tolower((unsigned char)u[i]);
	scheme[sl] = 0;
	if (strcmp(scheme, "http") && strcmp(scheme, "https") && strcmp(scheme, "unix") &&
	    strcmp(scheme, "unixs"))
		return false;
	const char *host = sep + 3;
	size_t hl = strcspn(host, "/?#");
	if (host[hl] == '/')
		return false; /* a path */
	/* host:port, the host possibly a bracketed IPv6 address; the port may be empty */
	const char *colon = NULL;
	if (host[0] == '[') {
		const char *close = memchr(host, ']', hl);
		if (!close || close + 1 >= host + hl || close[1] != ':')
			return false;
		colon = close + 1;
	} else {
		for (const char *p = host; p < host + hl; p++)
			if (*p == ':') {
				if (colon)
					return false; /* too many colons */
				colon = p;
			}
	}
	return colon != NULL;
}

static int url_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Trimmed copies of the request's URLs, sorted as etcd keeps them; -1 if one is bad. */
static int urls_take(member_call_t *c, char *const *in, size_t n)
{
	if (n == 0 || n > KEELD_MAX_URLS)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *u = in[i] ? in[i] : "";
		while (isspace((unsigned char)*u))
			u++;
		size_t l = strlen(u);
		while (l && isspace((unsigned char)u[l - 1]))
			l--;
		char *copy = strndup(u, l);
		if (!copy)
			return -1;
		c->urls[c->n_urls++] = copy;
		if (!url_valid(copy))
			return -1;
	}
	qsort(c->urls, c->n_urls, sizeof(c->urls[0]), url_cmp);
	return 0;
}

/* A new member's id as etcd makes one: SHA-1 of its sorted peer URLs and the time in
 * seconds; never 0, a member's or a removed member's. */
static uint64_t member_new_id(keeld_t *s, char *const *urls, size_t n)
{
	keeld_url_list_t l;
	memset(&l, 0, sizeof(l));
	for (size_t i = 0; i < n && i < KEELD_MAX_URLS; i++)
		snprintf(l.v[l.n++].text, sizeof(l.v[0].text), "%s", urls[i]);
	char now[32];
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	uint64_t id = keeld_member_id(&l, now);
	while (id == 0 || member_find(s, id) || member_removed(s, id))
		id++;
	return id;
}

/* ---- calls ------------------------------------------------------------------------- */

static void member_call_free(member_call_t *c)
{
	for (size_t i = 0; i < c->n_urls; i++)
		free(c->urls[i]);
	free(c);
}

static void cluster_on_close(void *ud, grpc_call_t *call)
{
	keeld_t *s = ud;
	member_call_t *c = grpc_call_user(call);
	if (!c)
		return;
	grpc_call_set_user(call, NULL);
	keeld_forget(s, c);
	member_call_free(c);
}

static member_call_t *member_call_new(keeld_t *s, grpc_call_t *call, enum change_kind kind)
{
	member_call_t *c = calloc(1, sizeof(*c));
	if (!c) {
		grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
		return NULL;
	}
	c->s = s;
	c->call = call;
	c->kind = kind;
	grpc_call_set_user(call, c);
	return c;
}

static void cluster_fail(grpc_call_t *call, int ce)
{
	grpc_call_finish(call, cluster_errs[ce].code, cluster_errs[ce].text);
}

/* The change applied here (or failed): the answer with the members after it. */
static void change_done(keeld_t *s, void *ud, kv_result_t *res, int status, const char *message)
{
	member_call_t *c = ud;
	if (res && res->resp)
		protobuf_c_message_free_unpacked(res->resp, NULL);
	if (!res) {
		svc_fail(c->call, status, message);
		return;
	}
	if (res->err) { /* refused at apply: the membership moved under the check */
		cluster_fail(c->call, c->kind == CHANGE_ADD ? CE_PEER_URL_EXISTS : CE_NOT_FOUND);
		return;
	}
	keeld_member_view_t *v = keeld_members_view(s);
	if (!v) {
		svc_fail(c->call, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
		return;
	}
	Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	hdr.revision = -1; /* etcd's Cluster answers carry no revision */
	Etcdserverpb__Member added = ETCDSERVERPB__MEMBER__INIT;
	Etcdserverpb__MemberAddResponse add = ETCDSERVERPB__MEMBER_ADD_RESPONSE__INIT;
	Etcdserverpb__MemberRemoveResponse rm = ETCDSERVERPB__MEMBER_REMOVE_RESPONSE__INIT;
	Etcdserverpb__MemberUpdateResponse up = ETCDSERVERPB__MEMBER_UPDATE_RESPONSE__INIT;
	Etcdserverpb__MemberPromoteResponse pr = ETCDSERVERPB__MEMBER_PROMOTE_RESPONSE__INIT;
	ProtobufCMessage *resp;
	switch (c->kind) {
	case CHANGE_ADD:
		added.id = c->id;
		added.n_peerurls = c->n_urls;
		added.peerurls = c->urls;
		added.islearner = c->learner;
		add.header = &hdr, add.member = &added, add.n_members = v->n, add.members = v->mp;
		resp = &add.base;
		break;
	case CHANGE_REMOVE:
		rm.header = &hdr, rm.n_members = v->n, rm.members = v->mp;
		resp = &rm.base;
		break;
	case CHANGE_UPDATE:
		up.header = &hdr, up.n_members = v->n, up.members = v->mp;
		resp = &up.base;
		break;
	default:
		pr.header = &hdr, pr.n_members = v->n, pr.members = v->mp;
		resp = &pr.base;
		break;
	}
	svc_reply(s, c->call, resp, &hdr, true);
	free(v);
}

static const int change_types[] = {
	[CHANGE_ADD] = RAFT_CONF_ADD_NODE,
	[CHANGE_REMOVE] = RAFT_CONF_REMOVE_NODE,
	[CHANGE_UPDATE] = RAFT_CONF_UPDATE_NODE,
	[CHANGE_PROMOTE] = RAFT_CONF_ADD_NODE,
};

static void change_propose(keeld_t *s, member_call_t *c, bool with_urls, keeld_done_fn done,
			   void *ud)
{
	Etcdserverpb__Member m = ETCDSERVERPB__MEMBER__INIT;
	m.id = c->id;
	m.islearner = c->learner;
	if (with_urls) {
		m.n_peerurls = c->n_urls;
		m.peerurls = c->urls;
	}
	int type = c->kind == CHANGE_ADD && c->learner ? RAFT_CONF_ADD_LEARNER
						       : change_types[c->kind];
	keeld_propose_conf_change(s, type, &m, done, ud);
}

static void member_add_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	keeld_t *s = ud;
	if (!svc_leader_ok(s, call))
		return;
	Etcdserverpb__MemberAddRequest *req = (Etcdserverpb__MemberAddRequest *)svc_decode(
		call, &etcdserverpb__member_add_request__descriptor, msg, len);
	if (!req)
		return;
	member_call_t *c = member_call_new(s, call, CHANGE_ADD);
	if (!c) {
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return;
	}
	int bad = urls_take(c, req->peerurls, req->n_peerurls);
	c->learner = req->islearner;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	int ce = bad ? CE_BAD_URLS : check_add(s, c->learner, c->urls, c->n_urls);
	if (ce >= 0) {
		cluster_fail(call, ce);
		return;
	}
	c->id = member_new_id(s, c->urls, c->n_urls);
	change_propose(s, c, true, change_done, c);
}

static void member_remove_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	keeld_t *s = ud;
	if (!svc_leader_ok(s, call))
		return;
	Etcdserverpb__MemberRemoveRequest *req = (Etcdserverpb__MemberRemoveRequest *)svc_decode(
		call, &etcdserverpb__member_remove_request__descriptor, msg, len);
	if (!req)
		return;
	uint64_t id = req->id;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	int ce = check_remove(s, id);
	if (ce >= 0) {
		cluster_fail(call, ce);
		return;
	}
	member_call_t *c = member_call_new(s, call, CHANGE_REMOVE);
	if (!c)
		return;
	c->id = id;
	change_propose(s, c, false, change_done, c);
}

static void member_update_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	keeld_t *s = ud;
	if (!svc_leader_ok(s, call))
		return;
	Etcdserverpb__MemberUpdateRequest *req = (Etcdserverpb__MemberUpdateRequest *)svc_decode(
		call, &etcdserverpb__member_update_request__descriptor, msg, len);
	if (!req)
		return;
	member_call_t *c = member_call_new(s, call, CHANGE_UPDATE);
	if (!c) {
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return;
	}
	c->id = req->id;
	/* etcd takes an update's URLs as they come (no URL check on this path) */
	for (size_t i = 0; i < req->n_peerurls && c->n_urls < KEELD_MAX_URLS; i++)
		if ((c->urls[c->n_urls] = strdup(req->peerurls[i] ? req->peerurls[i] : "")))
			c->n_urls++;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	int ce = check_update(s, c->id, c->urls, c->n_urls);
	if (ce >= 0) {
		cluster_fail(call, ce);
		return;
	}
	change_propose(s, c, true, change_done, c);
}

/* ---- promotion: decided by the leader ------------------------------------------------- */

static void promote_fwd_reply(keeld_t *s, promote_fwd_t *f, int status, const char *message)
{
	if (status != GRPC_OK) {
		f->reply(s, f->from, f->req_id, status, message, NULL, 0);
		return;
	}
	keeld_member_view_t *v = keeld_members_view(s);
	Etcdserverpb__MemberPromoteResponse pr = ETCDSERVERPB__MEMBER_PROMOTE_RESPONSE__INIT;
	pr.n_members = v ? v->n : 0;
	pr.members = v ? v->mp : NULL;
	size_t n = etcdserverpb__member_promote_response__get_packed_size(&pr);
	uint8_t *buf = v ? malloc(n ? n : 1) : NULL;
	if (!buf) {
		free(v);
		f->reply(s, f->from, f->req_id, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory",
			 NULL, 0);
		return;
	}
	etcdserverpb__member_promote_response__pack(&pr, buf);
	f->reply(s, f->from, f->req_id, GRPC_OK, NULL, buf, n);
	free(buf);
	free(v);
}

static void promote_applied(keeld_t *s, void *ud, kv_result_t *res, int status,
			    const char *message)
{
	promote_fwd_t *f = ud;
	if (res && res->resp)
		protobuf_c_message_free_unpacked(res->resp, NULL);
	if (res && res->err)
		promote_fwd_reply(s, f, cluster_errs[CE_NOT_LEARNER].code,
				  cluster_errs[CE_NOT_LEARNER].text);
	else
		promote_fwd_reply(s, f, res ? GRPC_OK : status, message);
	free(f);
}

void svc_cluster_serve_forwarded(keeld_t *s, uint64_t from, uint64_t req_id,
				 const uint8_t *req, size_t len, keeld_reply_fn reply)
{
	Etcdserverpb__MemberPromoteRequest *r =
		etcdserverpb__member_promote_request__unpack(NULL, len, req);
	if (!r) {
		reply(s, from, req_id, GRPC_INTERNAL, "keeld: bad forwarded promotion", NULL, 0);
		return;
	}
	uint64_t id = r->id;
	etcdserverpb__member_promote_request__free_unpacked(r, NULL);
	int ce = check_promote(s, id);
	if (ce >= 0) {
		reply(s, from, req_id, cluster_errs[ce].code, cluster_errs[ce].text, NULL, 0);
		return;
	}
	promote_fwd_t *f = malloc(sizeof(*f));
	if (!f) {
		reply(s, from, req_id, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory", NULL, 0);
		return;
	}
	*f = (promote_fwd_t){from, req_id, reply};
	Etcdserverpb__Member m = ETCDSERVERPB__MEMBER__INIT;
	m.id = id;
	keeld_propose_conf_change(s, RAFT_CONF_ADD_NODE, &m, promote_applied, f);
}

/* The leader's answer, answered here with this member's header as etcd does. */
static void promote_answered(keeld_t *s, void *ud, int status, const char *message,
			     const uint8_t *resp, size_t len)
{
	member_call_t *c = ud;
	if (status != GRPC_OK) {
		svc_fail(c->call, status, message);
		return;
	}
	Etcdserverpb__MemberPromoteResponse *pr =
		etcdserverpb__member_promote_response__unpack(NULL, len, resp);
	if (!pr) {
		svc_fail(c->call, GRPC_INTERNAL, "keeld: bad answer from the leader");
		return;
	}
	Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	hdr.revision = -1;
	Etcdserverpb__ResponseHeader *theirs = pr->header;
	pr->header = &hdr;
	svc_reply(s, c->call, &pr->base, &hdr, true);
	pr->header = theirs;
	etcdserverpb__member_promote_response__free_unpacked(pr, NULL);
}

static void member_promote_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	keeld_t *s = ud;
	if (!svc_leader_ok(s, call))
		return;
	Etcdserverpb__MemberPromoteRequest *req = (Etcdserverpb__MemberPromoteRequest *)svc_decode(
		call, &etcdserverpb__member_promote_request__descriptor, msg, len);
	if (!req)
		return;
	Etcdserverpb__MemberPromoteRequest fwd = ETCDSERVERPB__MEMBER_PROMOTE_REQUEST__INIT;
	fwd.id = req->id;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	member_call_t *c = member_call_new(s, call, CHANGE_PROMOTE);
	if (!c)
		return;
	c->id = fwd.id;
	uint8_t buf[32];
	size_t n = etcdserverpb__member_promote_request__pack(&fwd, buf);
	keeld_forward(s, KEELD_FWD_MEMBER_PROMOTE, buf, n, promote_answered, c);
}

/* ---- MemberList ------------------------------------------------------------------------ */

void svc_member_list_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	if (!svc_leader_ok(ud, call))
		return;
	keeld_t *s = ud;
	ProtobufCMessage *req = svc_decode(call, &etcdserverpb__member_list_request__descriptor,
					   msg, len);
	if (!req)
		return;
	protobuf_c_message_free_unpacked(req, NULL);
	keeld_member_view_t *v = keeld_members_view(s);
	if (!v) {
		svc_fail(call, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
		return;
	}
	Etcdserverpb__MemberListResponse resp = ETCDSERVERPB__MEMBER_LIST_RESPONSE__INIT;
	Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	resp.header = &hdr;
	resp.n_members = v->n;
	resp.members = v->mp;
	hdr.revision = -1; /* etcd's MemberList header carries no revision */
	svc_reply(s, call, &resp.base, &hdr, true);
	free(v);
}

const grpc_method_t svc_cluster_methods[] = {
	{"/etcdserverpb.Cluster/MemberAdd", false, member_add_msg, NULL, cluster_on_close},
	{"/etcdserverpb.Cluster/MemberRemove", false, member_remove_msg, NULL, cluster_on_close},
	{"/etcdserverpb.Cluster/MemberUpdate", false, member_update_msg, NULL, cluster_on_close},
	{"/etcdserverpb.Cluster/MemberPromote", false, member_promote_msg, NULL,
	 cluster_on_close},
};
const size_t svc_cluster_n_methods = sizeof(svc_cluster_methods) / sizeof(svc_cluster_methods[0]);
