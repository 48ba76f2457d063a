/* cli/ctl_ops.c — keelctl's operational commands, printed as etcdctl 3.4 prints them: member,
 * endpoint, alarm, defrag, move-leader, check perf, snapshot save/status/restore, version.
 * It reaches a cluster only through libkeel; the only files it writes are the ones a user
 * names (a snapshot, a restored data directory, a stopped member's store), never a live one.
 *
 * Where Keel has to decide what etcd leaves to its own formats:
 * - `version` prints "keelctl version: <KEEL_VERSION>" and "API version: 3.4".
 * - A snapshot, from keeld as from etcd, is a bbolt database in etcd 3.4's layout then the
 *   SHA-256 of it (kvstore/bolt.c writes and reads it). `snapshot status` reports what
 *   etcdctl does: hash = CRC-32C over bucket names, keys and values, revision = the last
 *   of bucket "key", total keys = entries of all buckets, total size = bbolt's size. The
 *   files Keel's snapshots were before (LMDB copies) are refused as not bbolt.
 * - `snapshot restore` writes a keeld data dir (default "<name>.keel"): member/db imported
 *   from the snapshot (revisions, deletes, leases, compaction; consistent index 0), an empty
 *   log made by raft_wal_open as keeld's first start makes it, and member/identity with the
 *   ids keeld computes from the flags.
 * - `check perf` runs etcdctl's 60 s models; KEEL_CHECK_PERF_SECONDS (tests) shortens one. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <openssl/evp.h>

#include "config.h"
#include "ctl.h"
#include "kvstore.h"
#include "raft.h"
#include "rpc.pb-c.h"

/* What `keelctl version` prints as the API line: the etcd API level keelctl speaks. */
#define OPS_API_VERSION "3.4"
#define OPS_SHA_LEN 32

/* ---- small helpers ------------------------------------------------------------------ */

static int64_t ops_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Go's strconv.ParseUint(s, 16, 64), with its error text. */
static int ops_parse_hex_id(const char *s, uint64_t *out, char *err, size_t errlen)
{
	uint64_t v = 0;
	bool range = false;
	if (!*s)
		goto syntax;
	for (const char *p = s; *p; p++) {
		int d;
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (*p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			goto syntax;
		if (v >> 60)
			range = true;
		v = v << 4 | (uint64_t)d;
	}
	if (range) {
		snprintf(err, errlen, "strconv.ParseUint: parsing \"%s\": value out of range", s);
		return -1;
	}
	*out = v;
	return 0;
syntax:
	snprintf(err, errlen, "strconv.ParseUint: parsing \"%s\": invalid syntax", s);
	return -1;
}

static keel_t *ops_connect(ctl_t *c, const char *const *eps, size_t n)
{
	keel_init();
	keel_options_t o;
	keel_options_init(&o);
	o.endpoints = eps;
	o.n_endpoints = n;
	if (c->dial_timeout_ms > 0)
		o.dial_timeout_ms = c->dial_timeout_ms;
	o.call_timeout_ms = ctl_timeout_ms(c);
	if (c->keepalive_time_ms > 0)
		o.keepalive_time_ms = c->keepalive_time_ms;
	if (c->keepalive_timeout_ms > 0)
		o.keepalive_timeout_ms = c->keepalive_timeout_ms;
	keel_t *k = NULL;
	keel_error_t err;
	if (keel_connect(&o, &k, &err) != 0)
		ctl_fatal(c, CTL_EXIT_ERROR, "%s", err.message);
	return k;
}

/* Go's fmt %v of a []string: "[a b c]". */
static void ops_go_list(char *buf, size_t len, char *const *v, size_t n)
{
	size_t off = (size_t)snprintf(buf, len, "[");
	for (size_t i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? " " : "", v[i]);
	if (off < len)
		snprintf(buf + off, len - off, "]");
}

/* A failed call's text as etcdctl's %v of the error shows it. */
#define OPS_ERR(err) ctl_err_text(&(err), (char[700]){0}, 700)

static bool ops_header_zero(const keel_header_t *h)
{
	return !h->cluster_id && !h->member_id && !h->revision && !h->raft_term;
}

/* "header":{...}, as Go writes a non-nil header; nothing for one the server left out. */
static bool ops_json_header_field(const keel_header_t *h)
{
	if (ops_header_zero(h))
		return false;
	fputs("\"header\":", stdout);
	ctl_fput_json_header(stdout, h);
	return true;
}

/* ---- member ------------------------------------------------------------------------- */

/* ,"name":["a","b"] (or without the comma when first); nothing for an empty list. */
static void ops_json_str_list(const char *name, char *const *v, size_t n, bool *first)
{
	if (!n)
		return;
	printf("%s\"%s\":[", *first ? "" : ",", name);
	for (size_t i = 0; i < n; i++) {
		if (i)
			putchar(',');
		ctl_fput_json_string(stdout, v[i]);
	}
	putchar(']');
	*first = false;
}

/* A pb.Member as Go's encoding/json writes it: every field omitempty. */
static void ops_json_member(const keel_member_t *m)
{
	bool first = true;
	putchar('{');
	if (m->id) {
		printf("\"ID\":%" PRIu64, m->id);
		first = false;
	}
	if (m->name && *m->name) {
		printf("%s\"name\":", first ? "" : ",");
		ctl_fput_json_string(stdout, m->name);
		first = false;
	}
	ops_json_str_list("peerURLs", m->peer_urls, m->n_peer_urls, &first);
	ops_json_str_list("clientURLs", m->client_urls, m->n_client_urls, &first);
	if (m->is_learner)
		printf("%s\"isLearner\":true", first ? "" : ",");
	putchar('}');
}

static void ops_json_members(const keel_member_result_t *r, bool with_member)
{
	putchar('{');
	bool any = ops_json_header_field(&r->header);
	if (with_member && r->member) {
		printf("%s\"member\":", any ? "," : "");
		ops_json_member(r->member);
		any = true;
	}
	if (r->n_members) {
		printf("%s\"members\":[", any ? "," : "");
		for (size_t i = 0; i < r->n_members; i++) {
			if (i)
				putchar(',');
			ops_json_member(&r->members[i]);
		}
		putchar(']');
	}
	puts("}");
}

static void ops_pb_header(Etcdserverpb__ResponseHeader *ph, const keel_header_t *h)
{
	etcdserverpb__response_header__init(ph);
	ph->cluster_id = h->cluster_id;
	ph->member_id = h->member_id;
	ph->revision = h->revision;
	ph->raft_term = h->raft_term;
}

/* -w protobuf of a member response: the etcd message, rebuilt from the result. */
static void ops_pb_members(const keel_member_result_t *r, int kind)
{
	size_t n = r->n_members;
	Etcdserverpb__Member *ms = calloc(n + 1, sizeof(*ms));
	Etcdserverpb__Member **mp = calloc(n + 1, sizeof(*mp));
	if (!ms || !mp) {
		free(ms);
		free(mp);
		return;
	}
	for (size_t i = 0; i <= n; i++) {
		const keel_member_t *m = i < n ? &r->members[i] : r->member;
		if (!m)
			break;
		etcdserverpb__member__init(&ms[i]);
		ms[i].id = m->id;
		ms[i].name = m->name ? m->name : (char *)"";
		ms[i].n_peerurls = m->n_peer_urls;
		ms[i].peerurls = m->peer_urls;
		ms[i].n_clienturls = m->n_client_urls;
		ms[i].clienturls = m->client_urls;
		ms[i].islearner = m->is_learner;
		mp[i] = &ms[i];
	}
	Etcdserverpb__ResponseHeader h;
	ops_pb_header(&h, &r->header);
	Etcdserverpb__ResponseHeader *hp = ops_header_zero(&r->header) ? NULL : &h;
	switch (kind) {
	case 'a': {
		Etcdserverpb__MemberAddResponse m = ETCDSERVERPB__MEMBER_ADD_RESPONSE__INIT;
		m.header = hp;
		m.member = r->member ? &ms[n] : NULL;
		m.n_members = n;
		m.members = mp;
		ctl_print_pb(&m.base);
		break;
	}
	case 'r': {
		Etcdserverpb__MemberRemoveResponse m = ETCDSERVERPB__MEMBER_REMOVE_RESPONSE__INIT;
		m.header = hp;
		m.n_members = n;
		m.members = mp;
		ctl_print_pb(&m.base);
		break;
	}
	case 'u': {
		Etcdserverpb__MemberUpdateResponse m = ETCDSERVERPB__MEMBER_UPDATE_RESPONSE__INIT;
		m.header = hp;
		m.n_members = n;
		m.members = mp;
		ctl_print_pb(&m.base);
		break;
	}
	case 'p': {
		Etcdserverpb__MemberPromoteResponse m = ETCDSERVERPB__MEMBER_PROMOTE_RESPONSE__INIT;
		m.header = hp;
		m.n_members = n;
		m.members = mp;
		ctl_print_pb(&m.base);
		break;
	}
	default: {
		Etcdserverpb__MemberListResponse m = ETCDSERVERPB__MEMBER_LIST_RESPONSE__INIT;
		m.header = hp;
		m.n_members = n;
		m.members = mp;
		ctl_print_pb(&m.base);
		break;
	}
	}
	free(ms);
	free(mp);
}

static void ops_join(char *buf, size_t len, char *const *v, size_t n, const char *sep)
{
	size_t off = 0;
	buf[0] = 0;
	for (size_t i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? sep : "", v[i]);
}

/* The member list table's rows: ID, Status, Name, Peer Addrs, Client Addrs, Is Learner. */
static char **ops_member_rows(const keel_member_result_t *r)
{
	char **cells = calloc(r->n_members * 6 + 1, sizeof(*cells));
	if (!cells)
		return NULL;
	for (size_t i = 0; i < r->n_members; i++) {
		const keel_member_t *m = &r->members[i];
		char **row = cells + i * 6;
		char buf[8192];
		bool named = m->name && *m->name;
		snprintf(buf, sizeof(buf), "%" PRIx64, m->id);
		row[0] = strdup(buf);
		row[1] = strdup(named ? "started" : "unstarted");
		row[2] = strdup(named ? m->name : "");
		ops_join(buf, sizeof(buf), m->peer_urls, m->n_peer_urls, ",");
		row[3] = strdup(buf);
		ops_join(buf, sizeof(buf), m->client_urls, m->n_client_urls, ",");
		row[4] = strdup(buf);
		row[5] = strdup(m->is_learner ? "true" : "false");
	}
	return cells;
}

static void ops_free_cells(char **cells, size_t n)
{
	for (size_t i = 0; cells && i < n; i++)
		free(cells[i]);
	free(cells);
}

static void ops_print_rows_simple(char **cells, size_t nrows, size_t ncols)
{
	for (size_t i = 0; i < nrows; i++) {
		for (size_t j = 0; j < ncols; j++)
			printf("%s%s", j ? ", " : "", cells[i * ncols + j] ? cells[i * ncols + j] : "");
		putchar('\n');
	}
}

static void ops_member_list_print(ctl_t *c, const keel_member_result_t *r)
{
	static const char *const hdr[] = {"ID", "Status", "Name", "Peer Addrs", "Client Addrs",
					  "Is Learner"};
	switch (c->out) {
	case CTL_OUT_JSON:
		ops_json_members(r, false);
		return;
	case CTL_OUT_PROTOBUF:
		ops_pb_members(r, 'l');
		return;
	case CTL_OUT_FIELDS:
		ctl_print_fields_header(&r->header);
		for (size_t i = 0; i < r->n_members; i++) {
			const keel_member_t *m = &r->members[i];
			printf("\"ID\" : %" PRIu64 "\n\"Name\" : ", m->id);
			ctl_fput_quoted(stdout, m->name ? m->name : "", m->name ? strlen(m->name) : 0);
			putchar('\n');
			for (size_t j = 0; j < m->n_peer_urls; j++) {
				fputs("\"PeerURL\" : ", stdout);
				ctl_fput_quoted(stdout, m->peer_urls[j], strlen(m->peer_urls[j]));
				putchar('\n');
			}
			for (size_t j = 0; j < m->n_client_urls; j++) {
				fputs("\"ClientURL\" : ", stdout);
				ctl_fput_quoted(stdout, m->client_urls[j], strlen(m->client_urls[j]));
				putchar('\n');
			}
			printf("\"IsLearner\" : %s\n\n", m->is_learner ? "true" : "false");
		}
		return;
	default:
		break;
	}
	char **cells = ops_member_rows(r);
	if (!cells)
		ctl_fatal(c, CTL_EXIT_ERROR, "out of memory");
	if (c->out == CTL_OUT_TABLE)
		ctl_print_table(hdr, 6, (const char *const *)cells, r->n_members);
	else
		ops_print_rows_simple(cells, r->n_members, 6);
	ops_free_cells(cells, r->n_members * 6);
}

/* Prints the response of add/remove/update/promote; fields and table are not etcdctl's
 * formats for them (it fails after the change was made, and so do we). */
static void ops_member_change_print(ctl_t *c, const keel_member_result_t *r, int kind,
				    uint64_t id)
{
	static const char *const verbs[] = {"added to", "removed from", "updated in",
					    "promoted in"};
	const char *verb = kind == 'a' ? verbs[0] : kind == 'r' ? verbs[1]
		: kind == 'u' ? verbs[2] : verbs[3];
	switch (c->out) {
	case CTL_OUT_SIMPLE:
		printf("Member %16" PRIx64 " %s cluster %16" PRIx64 "\n", id, verb,
		       r->header.cluster_id);
		return;
	case CTL_OUT_JSON:
		ops_json_members(r, kind == 'a');
		return;
	case CTL_OUT_PROTOBUF:
		ops_pb_members(r, kind);
		return;
	default:
		ctl_fatal_format(c);
	}
}

static uint64_t ops_member_id_arg(ctl_t *c, int nargs, char **args)
{
	if (nargs != 1)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "member ID is not provided");
	char why[256];
	uint64_t id;
	if (ops_parse_hex_id(args[0], &id, why, sizeof(why)) != 0)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "bad member ID arg (%s), expecting ID in Hex", why);
	return id;
}

/* Splits --peer-urls on commas as Go's strings.Split does (empty parts kept). */
static char **ops_split(const char *s, size_t *n)
{
	size_t cnt = 1;
	for (const char *p = s; *p; p++)
		cnt += *p == ',';
	char **v = calloc(cnt, sizeof(*v));
	char *dup = strdup(s);
	if (!v || !dup) {
		free(v);
		free(dup);
		*n = 0;
		return NULL;
	}
	size_t i = 0;
	char *p = dup;
	for (;;) {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = 0;
		v[i++] = strdup(p);
		if (!comma)
			break;
		p = comma + 1;
	}
	free(dup);
	*n = i;
	return v;
}

static void ops_free_strs(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* The environment block etcdctl prints after a simple add: every member's name=peer URL,
 * the new member under the name given on the command line, each value as Go's %q. */
static void ops_member_add_env(const keel_member_result_t *r, const char *name, const char *urls)
{
	uint64_t new_id = r->member ? r->member->id : 0;
	char *conf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&conf, &len);
	if (!f)
		return;
	bool first = true;
	for (size_t i = 0; i < r->n_members; i++) {
		const keel_member_t *m = &r->members[i];
		const char *n = m->id == new_id ? name : (m->name ? m->name : "");
		for (size_t j = 0; j < m->n_peer_urls; j++) {
			fprintf(f, "%s%s=%s", first ? "" : ",", n, m->peer_urls[j]);
			first = false;
		}
	}
	fclose(f);
	printf("\nETCD_NAME=");
	ctl_fput_quoted(stdout, name, strlen(name));
	printf("\nETCD_INITIAL_CLUSTER=");
	ctl_fput_quoted(stdout, conf, len);
	printf("\nETCD_INITIAL_ADVERTISE_PEER_URLS=");
	ctl_fput_quoted(stdout, urls, strlen(urls));
	printf("\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n");
	free(conf);
}

static int ops_member_add(ctl_t *c, int nargs, char **args)
{
	if (nargs < 1)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "member name not provided");
	if (nargs > 1) {
		char ev[4096];
		size_t off = (size_t)snprintf(ev, sizeof(ev), "too many arguments");
		for (int i = 0; i < nargs && off < sizeof(ev); i++)
			if (strncasecmp(args[i], "http", 4) == 0)
				off += (size_t)snprintf(ev + off, sizeof(ev) - off,
							", did you mean --peer-urls=%s", args[i]);
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "%s", ev);
	}
	const char *urls = ctl_flag_str(c, "peer-urls");
	if (!urls || !*urls)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "member peer urls not provided");
	size_t n;
	char **v = ops_split(urls, &n);
	keel_member_req_t req = {.timeout_ms = ctl_timeout_ms(c),
				 .peer_urls = (const char *const *)v, .n_peer_urls = n,
				 .is_learner = ctl_flag_bool(c, "learner")};
	keel_member_result_t *r = NULL;
	keel_error_t err;
	int rc = keel_member_add(ctl_client(c), &req, &r, &err);
	ops_free_strs(v, n);
	if (rc != 0)
		ctl_fatal_err(c, &err);
	ops_member_change_print(c, r, 'a', r->member ? r->member->id : 0);
	if (c->out == CTL_OUT_SIMPLE)
		ops_member_add_env(r, args[0], urls);
	keel_member_result_free(r);
	return CTL_EXIT_SUCCESS;
}

static int ops_member_change(ctl_t *c, int kind, int nargs, char **args)
{
	uint64_t id = ops_member_id_arg(c, nargs, args);
	keel_member_req_t req = {.timeout_ms = ctl_timeout_ms(c), .id = id};
	char **v = NULL;
	size_t n = 0;
	if (kind == 'u') {
		const char *urls = ctl_flag_str(c, "peer-urls");
		if (!urls || !*urls)
			ctl_fatal(c, CTL_EXIT_BAD_ARGS, "member peer urls not provided");
		v = ops_split(urls, &n);
		req.peer_urls = (const char *const *)v;
		req.n_peer_urls = n;
	}
	keel_member_result_t *r = NULL;
	keel_error_t err;
	keel_t *k = ctl_client(c);
	int rc = kind == 'r' ? keel_member_remove(k, &req, &r, &err)
		: kind == 'u' ? keel_member_update(k, &req, &r, &err)
			      : keel_member_promote(k, &req, &r, &err);
	ops_free_strs(v, n);
	if (rc != 0)
		ctl_fatal_err(c, &err);
	ops_member_change_print(c, r, kind, id);
	keel_member_result_free(r);
	return CTL_EXIT_SUCCESS;
}

int ctl_cmd_member(ctl_t *c, int argc, char **argv)
{
	if (argc < 2) {
		ctl_print_usage(c->cmd);
		return CTL_EXIT_SUCCESS;
	}
	const char *sub = argv[1];
	int nargs = argc - 2;
	char **args = argv + 2;
	ctl_prepare(c); /* global flags, environment, -w */
	if (strcmp(sub, "add") == 0)
		return ops_member_add(c, nargs, args);
	if (strcmp(sub, "remove") == 0)
		return ops_member_change(c, 'r', nargs, args);
	if (strcmp(sub, "update") == 0)
		return ops_member_change(c, 'u', nargs, args);
	if (strcmp(sub, "promote") == 0)
		return ops_member_change(c, 'p', nargs, args);
	keel_member_req_t req = {.timeout_ms = ctl_timeout_ms(c)};
	keel_member_result_t *r = NULL;
	keel_error_t err;
	if (keel_member_list(ctl_client(c), &req, &r, &err) != 0)
		ctl_fatal_err(c, &err);
	ops_member_list_print(c, r);
	keel_member_result_free(r);
	return CTL_EXIT_SUCCESS;
}

/* ---- endpoint ----------------------------------------------------------------------- */

typedef struct ops_eps {
	char **v;
	size_t n;
} ops_eps_t;

/* --endpoints, or with --cluster every client URL of the member list. */
static void ops_endpoints(ctl_t *c, ops_eps_t *e)
{
	e->v = NULL;
	e->n = 0;
	ctl_prepare(c); /* global flags, environment, -w */
	if (!ctl_flag_bool(c, "cluster")) {
		e->v = calloc(c->n_endpoints + 1, sizeof(*e->v));
		for (size_t i = 0; e->v && i < c->n_endpoints; i++)
			e->v[e->n++] = strdup(c->endpoints[i]);
		return;
	}
	keel_member_req_t req = {.timeout_ms = ctl_timeout_ms(c)};
	keel_member_result_t *r = NULL;
	keel_error_t err;
	if (keel_member_list(ctl_client(c), &req, &r, &err) != 0)
		ctl_fatal(c, CTL_EXIT_ERROR,
			  "failed to fetch endpoints from etcd cluster member list: %s", OPS_ERR(err));
	size_t total = 0;
	for (size_t i = 0; i < r->n_members; i++)
		total += r->members[i].n_client_urls;
	e->v = calloc(total + 1, sizeof(*e->v));
	for (size_t i = 0; e->v && i < r->n_members; i++)
		for (size_t j = 0; j < r->members[i].n_client_urls; j++)
			e->v[e->n++] = strdup(r->members[i].client_urls[j]);
	keel_member_result_free(r);
}

typedef struct ops_health {
	ctl_t *c;
	const char *ep;
	bool health;
	char took[64];
	char error[512];
} ops_health_t;

/* One endpoint's health, on its own thread and client as etcdctl checks them: a get of
 * "health" succeeds (or is refused for permission, which still went through consensus). */
static void *ops_health_one(void *arg)
{
	ops_health_t *h = arg;
	const char *eps[1] = {h->ep};
	keel_options_t o;
	keel_options_init(&o);
	o.endpoints = eps;
	o.n_endpoints = 1;
	if (h->c->dial_timeout_ms > 0)
		o.dial_timeout_ms = h->c->dial_timeout_ms;
	o.call_timeout_ms = ctl_timeout_ms(h->c);
	keel_t *k = NULL;
	keel_error_t err;
	if (keel_connect(&o, &k, &err) != 0) {
		snprintf(h->error, sizeof(h->error), "%s", OPS_ERR(err));
		return NULL;
	}
	int64_t st = ops_now_ns();
	keel_range_result_t *r = NULL;
	keel_range_req_t req = {.timeout_ms = ctl_timeout_ms(h->c), .key = "health",
				.key_len = 6};
	int rc = keel_range(k, &req, &r, &err);
	ctl_format_duration(ops_now_ns() - st, h->took, sizeof(h->took));
	if (rc == 0 || rc == KEEL_CODE_PERMISSION_DENIED)
		h->health = true;
	else
		snprintf(h->error, sizeof(h->error), "%s", OPS_ERR(err));
	keel_range_result_free(r);
	keel_close(k);
	return NULL;
}

static void ops_health_print(ctl_t *c, const ops_health_t *hs, size_t n)
{
	static const char *const hdr[] = {"endpoint", "health", "took", "error"};
	switch (c->out) {
	case CTL_OUT_SIMPLE:
		for (size_t i = 0; i < n; i++)
			if (!hs[i].error[0])
				fprintf(stderr, "%s is healthy: successfully committed proposal: "
					"took = %s\n", hs[i].ep, hs[i].took);
			else
				fprintf(stderr, "%s is unhealthy: failed to commit proposal: %s\n",
					hs[i].ep, hs[i].error);
		return;
	case CTL_OUT_JSON:
		putchar('[');
		for (size_t i = 0; i < n; i++) {
			fputs(i ? ",{\"endpoint\":" : "{\"endpoint\":", stdout);
			ctl_fput_json_string(stdout, hs[i].ep);
			printf(",\"health\":%s,\"took\":", hs[i].health ? "true" : "false");
			ctl_fput_json_string(stdout, hs[i].took);
			if (hs[i].error[0]) {
				fputs(",\"error\":", stdout);
				ctl_fput_json_string(stdout, hs[i].error);
			}
			putchar('}');
		}
		puts("]");
		return;
	case CTL_OUT_FIELDS:
		for (size_t i = 0; i < n; i++) {
			fputs("\"Endpoint\" : ", stdout);
			ctl_fput_quoted(stdout, hs[i].ep, strlen(hs[i].ep));
			printf("\n\"Health\" : %s\n\"Took\" : %s\n\"Error\" : %s\n\n",
			       hs[i].health ? "true" : "false", hs[i].took, hs[i].error);
		}
		return;
	case CTL_OUT_TABLE: {
		const char **cells = calloc(n * 4 + 1, sizeof(*cells));
		if (!cells)
			return;
		for (size_t i = 0; i < n; i++) {
			cells[i * 4] = hs[i].ep;
			cells[i * 4 + 1] = hs[i].health ? "true" : "false";
			cells[i * 4 + 2] = hs[i].took;
			cells[i * 4 + 3] = hs[i].error;
		}
		ctl_print_table(hdr, 4, cells, n);
		free(cells);
		return;
	}
	default:
		ctl_fatal_format(c);
	}
}

static int ops_endpoint_health(ctl_t *c, const ops_eps_t *e)
{
	ops_health_t *hs = calloc(e->n + 1, sizeof(*hs));
	pthread_t *th = calloc(e->n + 1, sizeof(*th));
	bool *started = calloc(e->n + 1, sizeof(*started));
	if (!hs || !th || !started)
		ctl_fatal(c, CTL_EXIT_ERROR, "out of memory");
	keel_init(); /* before the threads: a dropped connection must not raise SIGPIPE */
	for (size_t i = 0; i < e->n; i++) {
		hs[i].c = c;
		hs[i].ep = e->v[i];
		started[i] = pthread_create(&th[i], NULL, ops_health_one, &hs[i]) == 0;
		if (!started[i])
			ops_health_one(&hs[i]);
	}
	bool errs = false;
	for (size_t i = 0; i < e->n; i++) {
		if (started[i])
			pthread_join(th[i], NULL);
		errs |= hs[i].error[0] != 0;
	}
	ops_health_print(c, hs, e->n);
	free(hs);
	free(th);
	free(started);
	if (errs)
		ctl_fatal(c, CTL_EXIT_ERROR, "unhealthy cluster");
	return CTL_EXIT_SUCCESS;
}

typedef struct ops_status {
	const char *ep;
	keel_status_result_t *r;
} ops_status_t;

static void ops_status_row(const ops_status_t *s, char cells[10][512])
{
	const keel_status_result_t *r = s->r;
	snprintf(cells[0], 512, "%s", s->ep);
	snprintf(cells[1], 512, "%" PRIx64, r->header.member_id);
	snprintf(cells[2], 512, "%s", r->version ? r->version : "");
	ctl_humanize_bytes((uint64_t)r->db_size, cells[3], 512);
	snprintf(cells[4], 512, "%s", r->leader == r->header.member_id ? "true" : "false");
	snprintf(cells[5], 512, "%s", r->is_learner ? "true" : "false");
	snprintf(cells[6], 512, "%" PRIu64, r->raft_term);
	snprintf(cells[7], 512, "%" PRIu64, r->raft_index);
	snprintf(cells[8], 512, "%" PRIu64, r->raft_applied_index);
	ops_join(cells[9], 512, r->errors, r->n_errors, ", ");
}

static void ops_json_status(const keel_status_result_t *r)
{
	putchar('{');
	bool any = ops_json_header_field(&r->header);
	const char *sep = any ? "," : "";
	if (r->version && *r->version) {
		printf("%s\"version\":", sep);
		ctl_fput_json_string(stdout, r->version);
		sep = ",";
	}
#define OPS_JSON_NUM(name, v, fmt)                            \
	do {                                                  \
		if (v) {                                      \
			printf("%s\"" name "\":%" fmt, sep, v); \
			sep = ",";                            \
		}                                             \
	} while (0)
	OPS_JSON_NUM("dbSize", r->db_size, PRId64);
	OPS_JSON_NUM("leader", r->leader, PRIu64);
	OPS_JSON_NUM("raftIndex", r->raft_index, PRIu64);
	OPS_JSON_NUM("raftTerm", r->raft_term, PRIu64);
	OPS_JSON_NUM("raftAppliedIndex", r->raft_applied_index, PRIu64);
	if (r->n_errors) {
		printf("%s\"errors\":[", sep);
		for (size_t i = 0; i < r->n_errors; i++) {
			if (i)
				putchar(',');
			ctl_fput_json_string(stdout, r->errors[i]);
		}
		putchar(']');
		sep = ",";
	}
	OPS_JSON_NUM("dbSizeInUse", r->db_size_in_use, PRId64);
#undef OPS_JSON_NUM
	if (r->is_learner)
		printf("%s\"isLearner\":true", sep);
	putchar('}');
}

static void ops_status_print(ctl_t *c, const ops_status_t *st, size_t n)
{
	static const char *const hdr[] = {"endpoint", "ID", "version", "db size", "is leader",
					  "is learner", "raft term", "raft index",
					  "raft applied index", "errors"};
	switch (c->out) {
	case CTL_OUT_JSON:
		putchar('[');
		for (size_t i = 0; i < n; i++) {
			fputs(i ? ",{\"Endpoint\":" : "{\"Endpoint\":", stdout);
			ctl_fput_json_string(stdout, st[i].ep);
			fputs(",\"Status\":", stdout);
			ops_json_status(st[i].r);
			putchar('}');
		}
		puts("]");
		return;
	case CTL_OUT_FIELDS:
		for (size_t i = 0; i < n; i++) {
			const keel_status_result_t *r = st[i].r;
			ctl_print_fields_header(&r->header);
			fputs("\"Version\" : ", stdout);
			ctl_fput_quoted(stdout, r->version ? r->version : "",
					r->version ? strlen(r->version) : 0);
			printf("\n\"DBSize\" : %" PRId64 "\n\"Leader\" : %" PRIu64
			       "\n\"IsLearner\" : %s\n\"RaftIndex\" : %" PRIu64
			       "\n\"RaftTerm\" : %" PRIu64 "\n\"RaftAppliedIndex\" : %" PRIu64
			       "\n\"Errors\" : ", r->db_size, r->leader,
			       r->is_learner ? "true" : "false", r->raft_index, r->raft_term,
			       r->raft_applied_index);
			char buf[4096];
			ops_go_list(buf, sizeof(buf), r->errors, r->n_errors);
			printf("%s\n\"Endpoint\" : ", buf);
			ctl_fput_quoted(stdout, st[i].ep, strlen(st[i].ep));
			printf("\n\n");
		}
		return;
	case CTL_OUT_SIMPLE:
	case CTL_OUT_TABLE: {
		char (*rows)[10][512] = calloc(n + 1, sizeof(*rows));
		const char **cells = calloc(n * 10 + 1, sizeof(*cells));
		if (!rows || !cells) {
			free(rows);
			free(cells);
			return;
		}
		for (size_t i = 0; i < n; i++) {
			ops_status_row(&st[i], rows[i]);
			for (size_t j = 0; j < 10; j++)
				cells[i * 10 + j] = rows[i][j];
		}
		if (c->out == CTL_OUT_TABLE) {
			ctl_print_table(hdr, 10, cells, n);
		} else {
			for (size_t i = 0; i < n; i++) {
				for (size_t j = 0; j < 10; j++)
					printf("%s%s", j ? ", " : "", cells[i * 10 + j]);
				putchar('\n');
			}
		}
		free(rows);
		free(cells);
		return;
	}
	default:
		ctl_fatal_format(c);
	}
}

static int ops_endpoint_status(ctl_t *c, const ops_eps_t *e)
{
	ops_status_t *st = calloc(e->n + 1, sizeof(*st));
	if (!st)
		ctl_fatal(c, CTL_EXIT_ERROR, "out of memory");
	size_t n = 0;
	bool failed = false;
	keel_t *k = ctl_client(c);
	for (size_t i = 0; i < e->n; i++) {
		keel_endpoint_req_t req = {.timeout_ms = ctl_timeout_ms(c), .endpoint = e->v[i]};
		keel_error_t err;
		keel_status_result_t *r = NULL;
		if (keel_status(k, &req, &r, &err) != 0) {
			failed = true;
			fprintf(stderr, "Failed to get the status of endpoint %s (%s)\n", e->v[i],
				OPS_ERR(err));
			continue;
		}
		st[n].ep = e->v[i];
		st[n++].r = r;
	}
	/* An unsupported format fails before any row, as in etcdctl (even with none). */
	ops_status_print(c, st, n);
	for (size_t i = 0; i < n; i++)
		keel_status_result_free(st[i].r);
	free(st);
	return failed ? CTL_EXIT_ERROR : CTL_EXIT_SUCCESS;
}

static int ops_endpoint_hashkv(ctl_t *c, const ops_eps_t *e)
{
	static const char *const hdr[] = {"endpoint", "hash"};
	keel_hashkv_result_t *hs = calloc(e->n + 1, sizeof(*hs));
	const char **eps = calloc(e->n + 1, sizeof(*eps));
	if (!hs || !eps)
		ctl_fatal(c, CTL_EXIT_ERROR, "out of memory");
	size_t n = 0;
	keel_error_t last;
	bool failed = false;
	keel_t *k = ctl_client(c);
	for (size_t i = 0; i < e->n; i++) {
		keel_endpoint_req_t req = {.timeout_ms = ctl_timeout_ms(c), .endpoint = e->v[i],
					   .revision = ctl_flag_int(c, "rev")};
		keel_error_t err;
		if (keel_hashkv(k, &req, &hs[n], &err) != 0) {
			failed = true;
			last = err;
			fprintf(stderr, "Failed to get the hash of endpoint %s (%s)\n", e->v[i],
				OPS_ERR(err));
			continue;
		}
		eps[n++] = e->v[i];
	}
	char (*bufs)[32] = calloc(n + 1, sizeof(*bufs));
	const char **cells = calloc(2 * n + 1, sizeof(*cells));
	if (!bufs || !cells)
		ctl_fatal(c, CTL_EXIT_ERROR, "out of memory");
	for (size_t i = 0; i < n; i++) {
		snprintf(bufs[i], sizeof(bufs[i]), "%" PRIu32, hs[i].hash);
		cells[2 * i] = eps[i];
		cells[2 * i + 1] = bufs[i];
	}
	switch (c->out) {
	case CTL_OUT_SIMPLE:
		for (size_t i = 0; i < n; i++)
			printf("%s, %s\n", cells[2 * i], cells[2 * i + 1]);
		break;
	case CTL_OUT_TABLE:
		ctl_print_table(hdr, 2, cells, n);
		break;
	case CTL_OUT_JSON:
		putchar('[');
		for (size_t i = 0; i < n; i++) {
			fputs(i ? ",{\"Endpoint\":" : "{\"Endpoint\":", stdout);
			ctl_fput_json_string(stdout, eps[i]);
			fputs(",\"HashKV\":{", stdout);
			bool any = ops_json_header_field(&hs[i].header);
			if (hs[i].hash) {
				printf("%s\"hash\":%" PRIu32, any ? "," : "", hs[i].hash);
				any = true;
			}
			if (hs[i].compact_revision)
				printf("%s\"compact_revision\":%" PRId64, any ? "," : "",
				       hs[i].compact_revision);
			fputs("}}", stdout);
		}
		puts("]");
		break;
	case CTL_OUT_FIELDS:
		for (size_t i = 0; i < n; i++) {
			ctl_print_fields_header(&hs[i].header);
			fputs("\"Endpoint\" : ", stdout);
			ctl_fput_quoted(stdout, eps[i], strlen(eps[i]));
			printf("\n\"Hash\" : %" PRIu32 "\n\n", hs[i].hash);
		}
		break;
	default:
		ctl_fatal_format(c);
	}
	free(bufs);
	free(cells);
	free(hs);
	free(eps);
	if (failed)
		ctl_fatal_err(c, &last);
	return CTL_EXIT_SUCCESS;
}

int ctl_cmd_endpoint(ctl_t *c, int argc, char **argv)
{
	if (argc < 2) {
		ctl_print_usage(c->cmd);
		return CTL_EXIT_SUCCESS;
	}
	ops_eps_t e;
	ops_endpoints(c, &e);
	int rc;
	if (strcmp(argv[1], "health") == 0)
		rc = ops_endpoint_health(c, &e);
	else if (strcmp(argv[1], "status") == 0)
		rc = ops_endpoint_status(c, &e);
	else
		rc = ops_endpoint_hashkv(c, &e);
	ops_free_strs(e.v, e.n);
	return rc;
}

/* ---- alarm -------------------------------------------------------------------------- */

static const char *ops_alarm_name(keel_alarm_type_t a)
{
	switch (a) {
	case KEEL_ALARM_NOSPACE:
		return "NOSPACE";
	case KEEL_ALARM_CORRUPT:
		return "CORRUPT";
	default:
		return "NONE";
	}
}

static void ops_alarm_print(ctl_t *c, const keel_alarm_result_t *r)
{
	switch (c->out) {
	case CTL_OUT_SIMPLE:
		/* %+v of *pb.AlarmMember: gogo's compact text form. */
		for (size_t i = 0; i < r->n_alarms; i++) {
			if (r->alarms[i].member_id)
				printf("memberID:%" PRIu64 " ", r->alarms[i].member_id);
			if (r->alarms[i].alarm)
				printf("alarm:%s ", ops_alarm_name(r->alarms[i].alarm));
			putchar('\n');
		}
		return;
	case CTL_OUT_JSON: {
		putchar('{');
		bool any = ops_json_header_field(&r->header);
		if (r->n_alarms) {
			printf("%s\"alarms\":[", any ? "," : "");
			for (size_t i = 0; i < r->n_alarms; i++) {
				const char *sep = "";
				printf("%s{", i ? "," : "");
				if (r->alarms[i].member_id) {
					printf("\"memberID\":%" PRIu64, r->alarms[i].member_id);
					sep = ",";
				}
				if (r->alarms[i].alarm)
					printf("%s\"alarm\":%d", sep, (int)r->alarms[i].alarm);
				putchar('}');
			}
			putchar(']');
		}
		puts("}");
		return;
	}
	case CTL_OUT_FIELDS:
		ctl_print_fields_header(&r->header);
		for (size_t i = 0; i < r->n_alarms; i++)
			printf("\"MemberID\" : %" PRIu64 "\n\"AlarmType\" : %s\n\n",
			       r->alarms[i].member_id, ops_alarm_name(r->alarms[i].alarm));
		return;
	case CTL_OUT_PROTOBUF: {
		Etcdserverpb__AlarmMember *am = calloc(r->n_alarms + 1, sizeof(*am));
		Etcdserverpb__AlarmMember **ap = calloc(r->n_alarms + 1, sizeof(*ap));
		if (!am || !ap) {
			free(am);
			free(ap);
			return;
		}
		for (size_t i = 0; i < r->n_alarms; i++) {
			etcdserverpb__alarm_member__init(&am[i]);
			am[i].memberid = r->alarms[i].member_id;
			am[i].alarm = (Etcdserverpb__AlarmType)r->alarms[i].alarm;
			ap[i] = &am[i];
		}
		Etcdserverpb__ResponseHeader h;
		ops_pb_header(&h, &r->header);
		Etcdserverpb__AlarmResponse m = ETCDSERVERPB__ALARM_RESPONSE__INIT;
		m.header = ops_header_zero(&r->header) ? NULL : &h;
		m.n_alarms = r->n_alarms;
		m.alarms = ap;
		ctl_print_pb(&m.base);
		free(am);
		free(ap);
		return;
	}
	default:
		ctl_fatal_format(c);
	}
}

/* Disarming "everything" is clientv3's loop: list, then disarm each alarm; the answer has
 * no header and the alarms each disarm returned. */
static int ops_alarm_disarm_all(ctl_t *c, keel_alarm_result_t **out, keel_error_t *err)
{
	keel_t *k = ctl_client(c);
	keel_endpoint_req_t req = {.timeout_ms = ctl_timeout_ms(c)};
	keel_alarm_result_t *list = NULL;
	if (keel_alarm_list(k, &req, &list, err) != 0)
		return -1;
	keel_alarm_result_t *all = calloc(1, sizeof(*all));
	if (!all) {
		keel_alarm_result_free(list);
		return keel_error_set(err, KEEL_CODE_LOCAL, "out of memory");
	}
	for (size_t i = 0; i < list->n_alarms; i++) {
		keel_alarm_result_t *d = NULL;
		if (keel_alarm_disarm(k, &req, &list->alarms[i], &d, err) != 0) {
			keel_alarm_result_free(list);
			keel_alarm_result_free(all);
			return -1;
		}
		keel_alarm_t *grown = realloc(all->alarms, (all->n_alarms + d->n_alarms + 1) *
						     sizeof(*grown));
		if (grown) {
			all->alarms = grown;
			memcpy(all->alarms + all->n_alarms, d->alarms, d->n_alarms * sizeof(*grown));
			all->n_alarms += d->n_alarms;
		}
		keel_alarm_result_free(d);
	}
	keel_alarm_result_free(list);
	*out = all;
	return 0;
}

int ctl_cmd_alarm(ctl_t *c, int argc, char **argv)
{
	if (argc < 2) {
		ctl_print_usage(c->cmd);
		return CTL_EXIT_SUCCESS;
	}
	bool disarm = strcmp(argv[1], "disarm") == 0;
	ctl_prepare(c); /* global flags, environment, -w */
	if (argc > 2)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "alarm %s command accepts no arguments",
			  disarm ? "disarm" : "list");
	keel_alarm_result_t *r = NULL;
	keel_error_t err;
	int rc;
	if (disarm) {
		rc = ops_alarm_disarm_all(c, &r, &err);
	} else {
		keel_endpoint_req_t req = {.timeout_ms = ctl_timeout_ms(c)};
		rc = keel_alarm_list(ctl_client(c), &req, &r, &err);
	}
	if (rc != 0)
		ctl_fatal_err(c, &err);
	ops_alarm_print(c, r);
	keel_alarm_result_free(r);
	return CTL_EXIT_SUCCESS;
}

/* ---- defrag ------------------------------------------------------------------------- */

/* --data-dir: compacts the store of a data directory no keeld is using (an LMDB compacting
 * copy replaces the file), as etcdctl defragments a stopped member's bbolt file. */
static int ops_defrag_dir(const char *dir, char *err, size_t errlen)
{
	char db[4200], tmp[4300];
	snprintf(db, sizeof(db), "%s/member/db", dir);
	snprintf(tmp, sizeof(tmp), "%s.defrag", db);
	/* keeld holds this lock on its store for as long as it runs (kvstore's kv_lock). */
	int lock = open(db, O_RDONLY | O_CLOEXEC);
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) != 0) {
		snprintf(err, errlen, "%s: %s", db, lock < 0 ? strerror(errno)
			 : "in use by a running keeld");
		if (lock >= 0)
			close(lock);
		return -1;
	}
	MDB_env *env = NULL;
	int rc = mdb_env_create(&env);
	if (rc == 0)
		mdb_env_set_maxdbs(env, 8);
	if (rc == 0)
		rc = mdb_env_open(env, db, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0600);
	unlink(tmp);
	if (rc == 0)
		rc = mdb_env_copy2(env, tmp, MDB_CP_COMPACT);
	if (env)
		mdb_env_close(env);
	if (rc != 0) {
		unlink(tmp);
		close(lock);
		snprintf(err, errlen, "%s: %s", db, mdb_strerror(rc));
		return -1;
	}
	int fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fchmod(fd, 0600) != 0 || fsync(fd) != 0 || rename(tmp, db) != 0) {
		snprintf(err, errlen, "%s: %s", db, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		close(lock);
		return -1;
	}
	close(fd);
	close(lock);
	return 0;
}

int ctl_cmd_defrag(ctl_t *c, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	const char *dir = ctl_flag_str(c, "data-dir");
	if (dir && *dir) {
		char err[16384];
		if (ops_defrag_dir(dir, err, sizeof(err)) != 0) {
			fprintf(stderr, "Failed to defragment etcd data[%s] (%s)\n", dir, err);
			ctl_exit(c, CTL_EXIT_ERROR);
		}
		return CTL_EXIT_SUCCESS;
	}
	ops_eps_t e;
	ops_endpoints(c, &e);
	int failures = 0;
	keel_t *k = ctl_client(c);
	for (size_t i = 0; i < e.n; i++) {
		keel_endpoint_req_t req = {.timeout_ms = ctl_timeout_ms(c), .endpoint = e.v[i]};
		keel_error_t err;
		keel_header_t h;
		if (keel_defragment(k, &req, &h, &err) != 0) {
			fprintf(stderr, "Failed to defragment etcd member[%s] (%s)\n", e.v[i],
				OPS_ERR(err));
			failures++;
		} else {
			printf("Finished defragmenting etcd member[%s]\n", e.v[i]);
		}
	}
	ops_free_strs(e.v, e.n);
	return failures ? CTL_EXIT_ERROR : CTL_EXIT_SUCCESS;
}

/* ---- move-leader -------------------------------------------------------------------- */

int ctl_cmd_move_leader(ctl_t *c, int argc, char **argv)
{
	if (argc != 2)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "move-leader command needs 1 argument");
	uint64_t target;
	char why[256];
	if (ops_parse_hex_id(argv[1], &target, why, sizeof(why)) != 0)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "%s", why);
	ctl_prepare(c); /* global flags, environment, -w */
	/* Find the leader among --endpoints, asking each on a client of its own. */
	keel_t *leader = NULL;
	uint64_t leader_id = 0;
	for (size_t i = 0; i < c->n_endpoints && !leader; i++) {
		const char *ep = c->endpoints[i];
		keel_t *k = ops_connect(c, &ep, 1);
		keel_endpoint_req_t req = {.timeout_ms = ctl_timeout_ms(c), .endpoint = ep};
		keel_status_result_t *st = NULL;
		keel_error_t err;
		if (keel_status(k, &req, &st, &err) != 0) {
			keel_close(k);
			ctl_fatal_err(c, &err);
		}
		if (st->header.member_id == st->leader) {
			leader = k;
			leader_id = st->leader;
		} else {
			keel_close(k);
		}
		keel_status_result_free(st);
	}
	if (!leader) {
		char list[8192];
		ops_go_list(list, sizeof(list), c->endpoints, c->n_endpoints);
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "no leader endpoint given at %s", list);
	}
	keel_endpoint_req_t req = {.timeout_ms = ctl_timeout_ms(c), .target_id = target};
	keel_header_t h;
	keel_error_t err;
	int rc = keel_move_leader(leader, &req, &h, &err);
	keel_close(leader);
	if (rc != 0)
		ctl_fatal_err(c, &err);
	switch (c->out) {
	case CTL_OUT_SIMPLE:
		printf("Leadership transferred from %" PRIx64 " to %" PRIx64 "\n", leader_id,
		       target);
		break;
	case CTL_OUT_JSON:
		putchar('{');
		ops_json_header_field(&h);
		puts("}");
		break;
	case CTL_OUT_PROTOBUF: {
		Etcdserverpb__ResponseHeader ph;
		ops_pb_header(&ph, &h);
		Etcdserverpb__MoveLeaderResponse m = ETCDSERVERPB__MOVE_LEADER_RESPONSE__INIT;
		m.header = ops_header_zero(&h) ? NULL : &ph;
		ctl_print_pb(&m.base);
		break;
	}
	default:
		ctl_fatal_format(c);
	}
	return CTL_EXIT_SUCCESS;
}

/* ---- check perf --------------------------------------------------------------------- */

typedef struct ops_perf_model {
	const char *name, *alias;
	int limit;                   /* puts per second, all clients together */
	int clients;
	int duration_s;
} ops_perf_model_t;

static const ops_perf_model_t ops_perf_models[] = {
	{"s", "small", 150, 50, 60},
	{"m", "medium", 1000, 200, 60},
	{"l", "large", 8000, 500, 60},
	{"xl", "xLarge", 15000, 1000, 60},
};

typedef struct ops_perf {
	pthread_mutex_t mu;
	int64_t next_ns;             /* the rate limiter: when the next put may start */
	int64_t interval_ns;
	int64_t end_ns;
	const char *prefix;
	size_t prefix_len;
	uint64_t rng;
	/* Results, under mu. */
	double *lats;
	size_t n_lats, cap_lats;
	char **err_msgs;
	size_t *err_counts;
	size_t n_errs;
} ops_perf_t;

typedef struct ops_perf_worker {
	ops_perf_t *p;
	keel_t *k;
	pthread_t th;
	bool started;
} ops_perf_worker_t;

/* splitmix64: the keys only need to be spread, not secret. */
static uint64_t ops_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Takes the next slot of the limiter (burst 1, as rate.NewLimiter(limit, 1)); false once
 * the run's time is up. */
static bool ops_perf_slot(ops_perf_t *p, uint8_t *key)
{
	pthread_mutex_lock(&p->mu);
	int64_t now = ops_now_ns();
	int64_t at = p->next_ns > now ? p->next_ns : now;
	bool ok = at + p->interval_ns <= p->end_ns; /* limit x seconds puts in a full run */
	if (ok) {
		p->next_ns = at + p->interval_ns;
		/* binary.PutVarint of a random non-negative int63 at the key's start. */
		uint64_t v = ops_rand(&p->rng) >> 1;
		uint64_t zz = v << 1;
		size_t i = p->prefix_len;
		memset(key + i, 0, 256);
		while (zz >= 0x80) {
			key[i++] = (uint8_t)(zz | 0x80);
			zz >>= 7;
		}
		key[i] = (uint8_t)zz;
	}
	pthread_mutex_unlock(&p->mu);
	if (!ok)
		return false;
	int64_t wait = at - ops_now_ns();
	if (wait > 0) {
		struct timespec ts = {wait / 1000000000, wait % 1000000000};
		nanosleep(&ts, NULL);
	}
	return true;
}

static void ops_perf_record(ops_perf_t *p, int rc, const keel_error_t *err, double secs)
{
	pthread_mutex_lock(&p->mu);
	if (rc == 0) {
		if (p->n_lats == p->cap_lats) {
			size_t cap = p->cap_lats ? 2 * p->cap_lats : 4096;
			double *g = realloc(p->lats, cap * sizeof(*g));
			if (g) {
				p->lats = g;
				p->cap_lats = cap;
			}
		}
		if (p->n_lats < p->cap_lats)
			p->lats[p->n_lats++] = secs;
	} else {
		size_t i = 0;
		const char *text = OPS_ERR(*err);
		while (i < p->n_errs && strcmp(p->err_msgs[i], text) != 0)
			i++;
		if (i == p->n_errs) {
			char **m = realloc(p->err_msgs, (i + 1) * sizeof(*m));
			if (m)
				p->err_msgs = m;
			size_t *cn = realloc(p->err_counts, (i + 1) * sizeof(*cn));
			if (cn)
				p->err_counts = cn;
			if (m && cn && (m[i] = strdup(text))) {
				cn[i] = 0;
				p->n_errs++;
			}
		}
		if (i < p->n_errs)
			p->err_counts[i]++;
	}
	pthread_mutex_unlock(&p->mu);
}

static void *ops_perf_run(void *arg)
{
	ops_perf_worker_t *w = arg;
	ops_perf_t *p = w->p;
	uint8_t *key = malloc(p->prefix_len + 256);
	uint8_t *value = calloc(1, 1024);
	if (!key || !value) {
		free(key);
		free(value);
		return NULL;
	}
	memcpy(key, p->prefix, p->prefix_len);
	while (ops_perf_slot(p, key)) {
		keel_put_req_t req = {.timeout_ms = -1, .key = key, .key_len = p->prefix_len + 256,
				      .value = value, .value_len = 1024};
		keel_put_result_t *r = NULL;
		keel_error_t err;
		int64_t st = ops_now_ns();
		int rc = keel_put(w->k, &req, &r, &err);
		ops_perf_record(p, rc, &err, (double)(ops_now_ns() - st) / 1e9);
		keel_put_result_free(r);
	}
	free(key);
	free(value);
	return NULL;
}

/* Newton's square root: keelctl does not link libm for one call. */
static double ops_sqrt(double x)
{
	if (x <= 0)
		return 0;
	double r = x > 1 ? x : 1;
	for (int i = 0; i < 100; i++) {
		double n = 0.5 * (r + x / r);
		if (n == r)
			break;
		r = n;
	}
	return r;
}

static void ops_perf_report(const ops_perf_t *p, double total_s, const ops_perf_model_t *m,
			    bool *ok)
{
	double sum = 0, slowest = 0, sq = 0;
	for (size_t i = 0; i < p->n_lats; i++) {
		sum += p->lats[i];
		if (p->lats[i] > slowest)
			slowest = p->lats[i];
	}
	double mean = p->n_lats ? sum / (double)p->n_lats : 0;
	for (size_t i = 0; i < p->n_lats; i++)
		sq += (p->lats[i] - mean) * (p->lats[i] - mean);
	double stddev = p->n_lats ? ops_sqrt(sq / (double)p->n_lats) : 0;
	double rps = total_s > 0 ? (double)p->n_lats / total_s : 0;
	if (p->n_errs) {
		puts("FAIL: too many errors");
		for (size_t i = 0; i < p->n_errs; i++)
			printf("FAIL: ERROR(%s) -> %zu\n", p->err_msgs[i], p->err_counts[i]);
		*ok = false;
	}
	if (rps / m->limit <= 0.9) {
		printf("FAIL: Throughput too low: %d writes/s\n", (int)rps + 1);
		*ok = false;
	} else {
		printf("PASS: Throughput is %d writes/s\n", (int)rps + 1);
	}
	if (slowest > 0.5) {
		printf("Slowest request took too long: %fs\n", slowest);
		*ok = false;
	} else {
		printf("PASS: Slowest request took %fs\n", slowest);
	}
	if (stddev > 0.1) {
		printf("Stddev too high: %fs\n", stddev);
		*ok = false;
	} else {
		printf("PASS: Stddev is %fs\n", stddev);
	}
}

static void ops_perf_cleanup(ctl_t *c, keel_t *k, const ops_perf_t *p)
{
	uint8_t end[1024];
	size_t end_len = keel_prefix_end(p->prefix, p->prefix_len, end);
	keel_delete_req_t dr = {.timeout_ms = 30000, .key = p->prefix, .key_len = p->prefix_len,
				.range_end = end, .range_end_len = end_len};
	keel_delete_result_t *d = NULL;
	keel_error_t err;
	if (keel_delete(k, &dr, &d, &err) != 0)
		ctl_fatal_err(c, &err);
	int64_t rev = d->header.revision;
	keel_delete_result_free(d);
	if (ctl_flag_bool(c, "auto-compact")) {
		printf("Compacting with revision %" PRId64 "\n", rev);
		keel_compact_req_t cr = {.timeout_ms = 30000, .revision = rev, .physical = true};
		if (keel_compact(k, &cr, NULL, &err) != 0)
			ctl_fatal_err(c, &err);
		printf("Compacted with revision %" PRId64 "\n", rev);
	}
	if (ctl_flag_bool(c, "auto-defrag")) {
		for (size_t i = 0; i < c->n_endpoints; i++) {
			const char *ep = c->endpoints[i];
			printf("Defragmenting ");
			ctl_fput_quoted(stdout, ep, strlen(ep));
			putchar('\n');
			keel_endpoint_req_t req = {.timeout_ms = 30000, .endpoint = ep};
			keel_header_t h;
			if (keel_defragment(k, &req, &h, &err) != 0)
				ctl_fatal_err(c, &err);
			printf("Defragmented ");
			ctl_fput_quoted(stdout, ep, strlen(ep));
			putchar('\n');
		}
	}
}

/* The run's length: etcdctl's model says 60 s; KEEL_CHECK_PERF_SECONDS shortens it
 * (tests), never lengthens it. */
static int ops_perf_duration(const ops_perf_model_t *m)
{
	const char *s = getenv("KEEL_CHECK_PERF_SECONDS");
	int d = s ? atoi(s) : 0;
	return d > 0 && d < m->duration_s ? d : m->duration_s;
}

static int ops_check_perf(ctl_t *c)
{
	const char *load = ctl_flag_str(c, "load");
	const ops_perf_model_t *m = NULL;
	for (size_t i = 0; i < sizeof(ops_perf_models) / sizeof(ops_perf_models[0]); i++)
		if (load && (strcmp(load, ops_perf_models[i].name) == 0 ||
			     strcmp(load, ops_perf_models[i].alias) == 0))
			m = &ops_perf_models[i];
	if (!m)
		ctl_fatal(c, CTL_EXIT_BAD_FEATURE, "unknown load option %s", load ? load : "");
	ops_perf_t p;
	memset(&p, 0, sizeof(p));
	p.prefix = ctl_flag_str(c, "prefix");
	if (!p.prefix)
		p.prefix = "/etcdctl-check-perf/";
	p.prefix_len = strlen(p.prefix);
	if (p.prefix_len > 512)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "prefix too long");
	ctl_prepare(c); /* global flags, environment, -w */
	ops_perf_worker_t *ws = calloc((size_t)m->clients, sizeof(*ws));
	if (!ws)
		ctl_fatal(c, CTL_EXIT_ERROR, "out of memory");
	for (int i = 0; i < m->clients; i++) {
		ws[i].p = &p;
		ws[i].k = ops_connect(c, (const char *const *)c->endpoints, c->n_endpoints);
	}
	uint8_t end[1024];
	size_t end_len = keel_prefix_end(p.prefix, p.prefix_len, end);
	keel_range_req_t rq = {.timeout_ms = m->duration_s * 1000, .key = p.prefix,
			       .key_len = p.prefix_len, .range_end = end,
			       .range_end_len = end_len, .limit = 1};
	keel_range_result_t *rr = NULL;
	keel_error_t err;
	if (keel_range(ws[0].k, &rq, &rr, &err) != 0)
		ctl_fatal_err(c, &err);
	size_t found = rr->n_kvs;
	keel_range_result_free(rr);
	if (found) {
		char q[1200];
		FILE *f = fmemopen(q, sizeof(q), "w");
		if (f) {
			ctl_fput_quoted(f, p.prefix, p.prefix_len);
			fclose(f);
		} else {
			snprintf(q, sizeof(q), "\"%s\"", p.prefix);
		}
		ctl_fatal(c, CTL_EXIT_INVALID_INPUT,
			  "prefix %s has keys. Delete with etcdctl del --prefix %s first", q, p.prefix);
	}
	pthread_mutex_init(&p.mu, NULL);
	int dur = ops_perf_duration(m);
	int64_t start = ops_now_ns();
	p.interval_ns = 1000000000LL / m->limit;
	p.next_ns = start;
	p.end_ns = start + (int64_t)dur * 1000000000LL;
	p.rng = (uint64_t)start ^ ((uint64_t)getpid() << 32);
	for (int i = 0; i < m->clients; i++)
		ws[i].started = pthread_create(&ws[i].th, NULL, ops_perf_run, &ws[i]) == 0;
	bool progress = ctl_progress_enabled();
	for (int s = 0; progress && s < dur; s++) {
		sleep(1);
		ctl_progress("%d / %d [%.0f%%] %ds", s + 1, dur, 100.0 * (s + 1) / dur, s + 1);
	}
	for (int i = 0; i < m->clients; i++)
		if (ws[i].started)
			pthread_join(ws[i].th, NULL);
	if (progress)
		ctl_progress_done();
	/* As etcdctl's report: the run lasts until its deadline at least (the limiter stops
	 * issuing there), so a full run at the limit reports the limit, not one above it. */
	double total = (double)(ops_now_ns() - start) / 1e9;
	if (total < dur)
		total = dur;
	ops_perf_cleanup(c, ws[0].k, &p);
	bool ok = true;
	ops_perf_report(&p, total, m, &ok);
	for (int i = 0; i < m->clients; i++)
		keel_close(ws[i].k);
	free(ws);
	for (size_t i = 0; i < p.n_errs; i++)
		free(p.err_msgs[i]);
	free(p.err_msgs);
	free(p.err_counts);
	free(p.lats);
	pthread_mutex_destroy(&p.mu);
	if (ok) {
		puts("PASS");
		return CTL_EXIT_SUCCESS;
	}
	puts("FAIL");
	return CTL_EXIT_ERROR;
}

int ctl_cmd_check(ctl_t *c, int argc, char **argv)
{
	if (argc < 2) {
		ctl_print_usage(c->cmd);
		return CTL_EXIT_SUCCESS;
	}
	if (strcmp(argv[1], "perf") == 0)
		return ops_check_perf(c);
	ctl_fatal(c, CTL_EXIT_BAD_FEATURE, "check %s is not implemented by keelctl", argv[1]);
}

/* ---- version ------------------------------------------------------------------------ */

/* etcdctl prints "etcdctl version: 3.4.23" and "API version: 3.4"; keelctl prints its own
 * version in the same two lines, and the etcd API level it speaks. */
int ctl_cmd_version(ctl_t *c, int argc, char **argv)
{
	(void)c;
	(void)argc;
	(void)argv;
	printf("keelctl version: %s\nAPI version: %s\n", KEEL_VERSION, OPS_API_VERSION);
	return CTL_EXIT_SUCCESS;
}

/* ---- snapshot ----------------------------------------------------------------------- */

/* A SHA-256 context ready for data, or NULL (out of memory). */
static EVP_MD_CTX *ops_sha_new(void)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

/* "expected sha256 [1 2 ...], got [...]": Go's %v of the two byte slices. */
static void ops_go_bytes(char *buf, size_t len, const uint8_t *b, size_t n)
{
	size_t off = (size_t)snprintf(buf, len, "[");
	for (size_t i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%u", i ? " " : "", b[i]);
	if (off < len)
		snprintf(buf + off, len - off, "]");
}

typedef struct ops_save {
	int fd;
	EVP_MD_CTX *sha;
	uint8_t tail[OPS_SHA_LEN];   /* the last bytes seen: the trailer, once the stream ends */
	size_t tail_len;
	uint64_t got, total;
	int write_errno;
} ops_save_t;

/* Hashes all but the last 32 bytes seen so far (those may be the trailer). */
static void ops_save_hash(ops_save_t *s, const uint8_t *p, size_t n)
{
	if (n >= OPS_SHA_LEN) {
		EVP_DigestUpdate(s->sha, s->tail, s->tail_len);
		EVP_DigestUpdate(s->sha, p, n - OPS_SHA_LEN);
		memcpy(s->tail, p + n - OPS_SHA_LEN, OPS_SHA_LEN);
		s->tail_len = OPS_SHA_LEN;
		return;
	}
	size_t keep = s->tail_len + n > OPS_SHA_LEN ? OPS_SHA_LEN - n : s->tail_len;
	size_t drop = s->tail_len - keep;
	EVP_DigestUpdate(s->sha, s->tail, drop);
	memmove(s->tail, s->tail + drop, keep);
	memcpy(s->tail + keep, p, n);
	s->tail_len = keep + n;
}

static int ops_save_chunk(void *ud, const uint8_t *chunk, size_t len, uint64_t remaining)
{
	ops_save_t *s = ud;
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(s->fd, chunk + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			s->write_errno = errno;
			return -1;
		}
		off += (size_t)w;
	}
	ops_save_hash(s, chunk, len);
	s->got += len;
	if (!s->total && remaining)
		s->total = remaining + len;
	if (ctl_progress_enabled()) {
		char a[32], b[32];
		ctl_humanize_bytes(s->got, a, sizeof(a));
		if (s->total) {
			ctl_humanize_bytes(s->total, b, sizeof(b));
			ctl_progress("receiving snapshot: %s / %s (%.0f%%)", a, b,
				     s->got > s->total ? 100.0 : 100.0 * (double)s->got /
								 (double)s->total);
		} else {
			ctl_progress("receiving snapshot: %s", a);
		}
	}
	return 0;
}

/* Go's error text for an errno: strerror with its first letter in lower case. */
static const char *ops_go_errno(int e, char *buf, size_t len)
{
	snprintf(buf, len, "%s", strerror(e));
	if (buf[0] >= 'A' && buf[0] <= 'Z')
		buf[0] = (char)(buf[0] - 'A' + 'a');
	return buf;
}

static int ops_snapshot_save(ctl_t *c, int nargs, char **args)
{
	if (nargs != 1)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "snapshot save expects one argument");
	ctl_prepare(c); /* global flags, environment, -w */
	if (c->n_endpoints != 1) {
		char list[8192];
		ops_go_list(list, sizeof(list), c->endpoints, c->n_endpoints);
		ctl_fatal(c, CTL_EXIT_INTERRUPTED,
			  "snapshot must be requested to one selected node, not multiple %s", list);
	}
	const char *path = args[0];
	char part[4200], eb[128];
	snprintf(part, sizeof(part), "%s.part", path);
	ops_save_t s;
	memset(&s, 0, sizeof(s));
	s.fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (s.fd < 0)
		ctl_fatal(c, CTL_EXIT_INTERRUPTED, "could not open %s (open %s: %s)", part, part,
			  ops_go_errno(errno, eb, sizeof(eb)));
	s.sha = ops_sha_new();
	if (!s.sha) {
		close(s.fd);
		unlink(part);
		ctl_fatal(c, CTL_EXIT_INTERRUPTED, "out of memory");
	}
	/* No deadline unless --command-timeout was given, as etcdctl. */
	keel_endpoint_req_t req = {
		.timeout_ms = ctl_flag_changed(c, "command-timeout") ? ctl_timeout_ms(c) : 0};
	keel_error_t err;
	int rc = keel_snapshot(ctl_client(c), &req, ops_save_chunk, &s, &err);
	if (ctl_progress_enabled())
		ctl_progress_done();
	char msg[16384] = "";
	if (rc != 0 && s.write_errno)
		snprintf(msg, sizeof(msg), "write %s: %s", part,
			 ops_go_errno(s.write_errno, eb, sizeof(eb)));
	else if (rc != 0)
		snprintf(msg, sizeof(msg), "%s", OPS_ERR(err));
	uint8_t sum[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	if (!msg[0]) {
		EVP_DigestFinal_ex(s.sha, sum, &n);
		if (s.tail_len != OPS_SHA_LEN || n != OPS_SHA_LEN ||
		    memcmp(sum, s.tail, OPS_SHA_LEN) != 0) {
			char want[200], got[200];
			ops_go_bytes(want, sizeof(want), s.tail, s.tail_len);
			ops_go_bytes(got, sizeof(got), sum, n);
			snprintf(msg, sizeof(msg), "snapshot stream is corrupt: expected sha256 %s, "
				 "got %s", want, got);
		}
	}
	EVP_MD_CTX_free(s.sha);
	if (!msg[0] && fsync(s.fd) != 0)
		snprintf(msg, sizeof(msg), "sync %s: %s", part, ops_go_errno(errno, eb, sizeof(eb)));
	if (close(s.fd) != 0 && !msg[0])
		snprintf(msg, sizeof(msg), "close %s: %s", part, ops_go_errno(errno, eb, sizeof(eb)));
	if (!msg[0] && rename(part, path) != 0)
		snprintf(msg, sizeof(msg), "could not rename %s to %s (rename %s %s: %s)", part, path,
			 part, path, ops_go_errno(errno, eb, sizeof(eb)));
	if (msg[0]) {
		unlink(part);
		ctl_fatal(c, CTL_EXIT_INTERRUPTED, "%s", msg);
	}
	printf("Snapshot saved at %s\n", path);
	return CTL_EXIT_SUCCESS;
}

/* ---- snapshot status: a snapshot is a bbolt file in etcd 3.4's layout (+ the SHA-256) --- */

/* kvstore's reader checks every page against the file, but a user's file is still read in
 * a child process, so that nothing it holds can take keelctl down with it: a crash there
 * is the file's error. fn's return value, its out bytes and err come back through a pipe. */
typedef int (*ops_file_fn)(const char *path, const char *arg, void *out, char *err,
			   size_t errlen);

static int ops_guarded(ops_file_fn fn, const char *path, const char *arg, void *out,
		       size_t outlen, char *err, size_t errlen)
{
	int p[2];
	if (pipe(p) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null >= 0)
			dup2(null, STDERR_FILENO);
		err[0] = 0;
		int rc = fn(path, arg, out, err, errlen);
		bool ok = write(p[1], &rc, sizeof(rc)) == (ssize_t)sizeof(rc);
		for (size_t off = 0; ok && off < outlen;) {
			ssize_t w = write(p[1], (char *)out + off, outlen - off);
			ok = w > 0;
			off += ok ? (size_t)w : 0;
		}
		for (size_t off = 0, n = strlen(err) + 1; ok && off < n;) {
			ssize_t w = write(p[1], err + off, n - off);
			ok = w > 0;
			off += ok ? (size_t)w : 0;
		}
		_exit(ok ? 0 : 1);
	}
	close(p[1]);
	int rc = 0;
	size_t want = sizeof(rc) + outlen + errlen, got = 0;
	char *buf = malloc(want);
	while (buf && got < want) {
		ssize_t r = read(p[0], buf + got, want - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(p[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!buf || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || got <= sizeof(rc) + outlen ||
	    buf[got - 1] != 0) {
		free(buf);
		snprintf(err, errlen, "%s: reading it failed (a damaged snapshot file)", path);
		return -1;
	}
	memcpy(&rc, buf, sizeof(rc));
	if (outlen)
		memcpy(out, buf + sizeof(rc), outlen);
	snprintf(err, errlen, "%s", buf + sizeof(rc) + outlen);
	free(buf);
	return rc;
}

static int ops_bolt_status(const char *path, const char *arg, void *out, char *err,
			   size_t errlen)
{
	(void)arg;
	return kv_bolt_status(path, out, err, errlen) == KV_OK ? 0 : -1;
}

static int ops_snapshot_status(ctl_t *c, int nargs, char **args)
{
	static const char *const hdr[] = {"hash", "revision", "total keys", "total size"};
	if (nargs != 1)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "snapshot status requires exactly one argument");
	const char *path = args[0];
	struct stat sb;
	char eb[128], err[1024];
	if (stat(path, &sb) != 0)
		ctl_fatal(c, CTL_EXIT_ERROR, "stat %s: %s", path, ops_go_errno(errno, eb, sizeof(eb)));
	kv_bolt_status_t ds;
	if (ops_guarded(ops_bolt_status, path, NULL, &ds, sizeof(ds), err, sizeof(err)) != 0)
		ctl_fatal(c, CTL_EXIT_ERROR, "%s", err);
	char cells[4][64];
	snprintf(cells[0], 64, "%" PRIx32, ds.hash);
	snprintf(cells[1], 64, "%" PRId64, ds.revision);
	snprintf(cells[2], 64, "%" PRId64, ds.total_keys);
	ctl_humanize_bytes((uint64_t)ds.total_size, cells[3], 64);
	const char *row[4] = {cells[0], cells[1], cells[2], cells[3]};
	switch (c->out) {
	case CTL_OUT_SIMPLE:
		printf("%s, %s, %s, %s\n", row[0], row[1], row[2], row[3]);
		break;
	case CTL_OUT_TABLE:
		ctl_print_table(hdr, 4, row, 1);
		break;
	case CTL_OUT_JSON:
		printf("{\"hash\":%" PRIu32 ",\"revision\":%" PRId64 ",\"totalKey\":%" PRId64
		       ",\"totalSize\":%" PRId64 "}\n", ds.hash, ds.revision, ds.total_keys,
		       ds.total_size);
		break;
	case CTL_OUT_FIELDS:
		printf("\"Hash\" : %" PRIu32 "\n\"Revision\" : %" PRId64 "\n\"Keys\" : %" PRId64
		       "\n\"Size\" : %" PRId64 "\n", ds.hash, ds.revision, ds.total_keys,
		       ds.total_size);
		break;
	default:
		ctl_fatal_format(c);
	}
	return CTL_EXIT_SUCCESS;
}

/* ---- snapshot restore --------------------------------------------------------------- */

static int ops_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Copies the store part of the snapshot to db, checking its SHA-256 trailer. */
static int ops_restore_db(const char *snap, const char *db, bool skip_hash, char *err,
			  size_t errlen)
{
	int in = open(snap, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	char eb[128];
	if (in < 0 || fstat(in, &sb) != 0) {
		snprintf(err, errlen, "open %s: %s", snap, ops_go_errno(errno, eb, sizeof(eb)));
		if (in >= 0)
			close(in);
		return -1;
	}
	uint64_t size = (uint64_t)sb.st_size;
	bool has_hash = size % 512 == OPS_SHA_LEN;
	if (!has_hash && !skip_hash) {
		close(in);
		snprintf(err, errlen, "snapshot missing hash but --skip-hash-check=false");
		return -1;
	}
	uint64_t data_len = has_hash ? size - OPS_SHA_LEN : size;
	int out = open(db, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	EVP_MD_CTX *sha = ops_sha_new();
	uint8_t *buf = malloc(1 << 20);
	int rc = -1;
	if (out < 0 || !sha || !buf) {
		snprintf(err, errlen, "%s: %s", db, out < 0 ? strerror(errno)
			 : "out of memory");
		goto done;
	}
	for (uint64_t off = 0; off < size;) {
		size_t want = size - off < (1 << 20) ? (size_t)(size - off) : (1 << 20);
		ssize_t r = pread(in, buf, want, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "read %s: %s", snap,
				 r < 0 ? ops_go_errno(errno, eb, sizeof(eb)) : "unexpected EOF");
			goto done;
		}
		size_t data = off >= data_len ? 0 : (size_t)(data_len - off < (uint64_t)r
								     ? data_len - off : (uint64_t)r);
		if (data && write(out, buf, data) != (ssize_t)data) {
			snprintf(err, errlen, "write %s: %s", db, strerror(errno));
			goto done;
		}
		EVP_DigestUpdate(sha, buf, data);
		off += (uint64_t)r;
		if (ctl_progress_enabled())
			ctl_progress("restoring: %.0f%%", 100.0 * (double)off / (double)size);
	}
	if (has_hash && !skip_hash) {
		uint8_t sum[EVP_MAX_MD_SIZE], want[OPS_SHA_LEN];
		unsigned n = 0;
		EVP_DigestFinal_ex(sha, sum, &n);
		if (pread(in, want, OPS_SHA_LEN, (off_t)data_len) != OPS_SHA_LEN ||
		    n != OPS_SHA_LEN || memcmp(want, sum, OPS_SHA_LEN) != 0) {
			char a[200], b[200];
			ops_go_bytes(a, sizeof(a), want, OPS_SHA_LEN);
			ops_go_bytes(b, sizeof(b), sum, n);
			snprintf(err, errlen, "expected sha256 %s, got %s", a, b);
			goto done;
		}
	}
	if (fsync(out) != 0) {
		snprintf(err, errlen, "sync %s: %s", db, strerror(errno));
		goto done;
	}
	rc = 0;
done:
	if (ctl_progress_enabled())
		ctl_progress_done();
	free(buf);
	if (sha)
		EVP_MD_CTX_free(sha);
	if (out >= 0)
		close(out);
	close(in);
	return rc;
}

/* The snapshot's bbolt file (copied, its SHA-256 checked) into a new Keel store. */
static int ops_bolt_import(const char *bolt, const char *db, void *out, char *err, size_t errlen)
{
	(void)out;
	return kv_bolt_restore(bolt, db, err, errlen) == KV_OK ? 0 : -1;
}

/* member/identity exactly as keeld writes it on a first start (node.c). */
static int ops_restore_identity(const keeld_config_t *cfg, const char *member_dir, char *err,
				size_t errlen)
{
	char path[4300], tmp[4400];
	snprintf(path, sizeof(path), "%s/identity", member_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	fprintf(f, "self %016" PRIx64 "\ncluster %016" PRIx64 "\n", cfg->self_id,
		cfg->cluster_id);
	for (size_t i = 0; i < cfg->n_members; i++) {
		const keeld_member_conf_t *m = &cfg->members[i];
		fprintf(f, "member %016" PRIx64 "\t%s\t", m->id,
			m->id == cfg->self_id ? cfg->name : m->name);
		for (size_t j = 0; j < m->peer_urls.n; j++)
			fprintf(f, "%s%s", j ? "," : "", m->peer_urls.v[j].text);
		fputc('\n', f);
	}
	bool bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
	bad |= fclose(f) != 0;
	if (bad || rename(tmp, path) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int ops_restore(const char *snap, const keeld_config_t *cfg, bool skip_hash,
		       bool *created, char *err, size_t errlen)
{
	char member[4200], db[4300], bolt[4400], lock[4400];
	snprintf(member, sizeof(member), "%s/member", cfg->data_dir);
	snprintf(db, sizeof(db), "%s/db", member);
	snprintf(bolt, sizeof(bolt), "%s/snapshot.bolt", member);
	snprintf(lock, sizeof(lock), "%s-lock", db);
	*created = mkdir(cfg->data_dir, 0700) == 0;
	if (!*created || mkdir(member, 0700) != 0) {
		snprintf(err, errlen, "mkdir %s: %s", cfg->data_dir, strerror(errno));
		return -1;
	}
	int rc = ops_restore_db(snap, bolt, skip_hash, err, errlen);
	if (rc == 0)
		rc = ops_guarded(ops_bolt_import, bolt, db, NULL, 0, err, errlen);
	unlink(bolt);
	unlink(lock); /* LMDB's, made by the import; keeld makes its own */
	if (rc != 0)
		return -1;
	/* An empty log, created by the same code keeld runs on a first start. */
	raft_wal_options_t wo;
	raft_wal_options_default(&wo);
	raft_wal_t *wal = NULL;
	if (raft_wal_open(member, &wo, &wal, err, errlen) != 0)
		return -1;
	raft_wal_close(wal);
	return ops_restore_identity(cfg, member, err, errlen);
}

static int ops_snapshot_restore(ctl_t *c, int nargs, char **args)
{
	if (nargs != 1)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "snapshot restore requires exactly one argument");
	const char *wal_dir = ctl_flag_str(c, "wal-dir");
	if (wal_dir && *wal_dir)
		ctl_fatal(c, CTL_EXIT_ERROR, "--wal-dir is not supported: keeld keeps its log in "
			  "<data-dir>/member/wal");
	const char *name = ctl_flag_str(c, "name");
	if (!name || !*name)
		name = "default";
	const char *dir = ctl_flag_str(c, "data-dir");
	char defdir[300];
	if (!dir || !*dir) {
		snprintf(defdir, sizeof(defdir), "%s.keel", name);
		dir = defdir;
	}
	const char *ic = ctl_flag_str(c, "initial-cluster");
	const char *tok = ctl_flag_str(c, "initial-cluster-token");
	const char *adv = ctl_flag_str(c, "initial-advertise-peer-urls");
	struct stat sb;
	if (stat(dir, &sb) == 0) {
		char q[4400];
		FILE *f = fmemopen(q, sizeof(q), "w");
		if (f) {
			ctl_fput_quoted(f, dir, strlen(dir));
			fclose(f);
		} else {
			snprintf(q, sizeof(q), "\"%s\"", dir);
		}
		ctl_fatal(c, CTL_EXIT_ERROR, "data-dir %s exists", q);
	}
	/* keeld's own parser gives the ids and the checks etcd's restore makes. */
	char *argv[16];
	int argc = 0;
	argv[argc++] = (char *)"keeld";
	argv[argc++] = (char *)"--name";
	argv[argc++] = (char *)name;
	argv[argc++] = (char *)"--data-dir";
	argv[argc++] = (char *)dir;
	if (ic && *ic) {
		argv[argc++] = (char *)"--initial-cluster";
		argv[argc++] = (char *)ic;
	}
	if (tok && *tok) {
		argv[argc++] = (char *)"--initial-cluster-token";
		argv[argc++] = (char *)tok;
	}
	if (adv && *adv) {
		argv[argc++] = (char *)"--initial-advertise-peer-urls";
		argv[argc++] = (char *)adv;
	}
	argv[argc] = NULL;
	char *envp[1] = {NULL};
	keeld_config_t *cfg = calloc(1, sizeof(*cfg));
	char err[16384];
	if (!cfg)
		ctl_fatal(c, CTL_EXIT_ERROR, "out of memory");
	if (keeld_config_parse(cfg, argc, argv, envp, err, sizeof(err)) != 0) {
		free(cfg);
		ctl_fatal(c, CTL_EXIT_ERROR, "%s", err);
	}
	bool created = false;
	int rc = ops_restore(args[0], cfg, ctl_flag_bool(c, "skip-hash-check"), &created, err,
			     sizeof(err));
	if (rc != 0) {
		/* Only what this restore created goes: the directory did not exist before. */
		if (created)
			nftw(cfg->data_dir, ops_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		free(cfg);
		ctl_fatal(c, CTL_EXIT_ERROR, "%s", err);
	}
	free(cfg);
	return CTL_EXIT_SUCCESS;
}

int ctl_cmd_snapshot(ctl_t *c, int argc, char **argv)
{
	if (argc < 2) {
		ctl_print_usage(c->cmd);
		return CTL_EXIT_SUCCESS;
	}
	ctl_prepare(c); /* global flags, environment, -w */
	if (strcmp(argv[1], "save") == 0)
		return ops_snapshot_save(c, argc - 2, argv + 2);
	if (strcmp(argv[1], "status") == 0)
		return ops_snapshot_status(c, argc - 2, argv + 2);
	return ops_snapshot_restore(c, argc - 2, argv + 2);
}
