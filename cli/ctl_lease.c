/* cli/ctl_lease.c — etcdctl lease grant, revoke, timetolive, list and keep-alive on
 * libkeel, printed as etcdctl prints clientv3's lease responses (whose JSON flattens the
 * header and whose protobuf form is the header alone). Never retries a failed call. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.pb-c.h"

#include "ctl.h"

/* strconv.ParseInt(s, 16, 64) for lease IDs (etcdctl's leaseFromArgs). */
static int64_t lease_from_arg(ctl_t *c, const char *s)
{
	const char *p = s;
	bool neg = false;
	uint64_t v = 0;
	const char *why = "invalid syntax";
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	if (*p == '\0')
		goto bad;
	for (; *p; p++) {
		int d;
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (*p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			goto bad;
		if (v > (UINT64_MAX >> 4)) {
			why = "value out of range";
			goto bad;
		}
		v = v << 4 | (uint64_t)d;
	}
	if ((!neg && v > (uint64_t)INT64_MAX) || (neg && v > (uint64_t)INT64_MAX + 1)) {
		why = "value out of range";
		goto bad;
	}
	return neg ? (int64_t)(0 - v) : (int64_t)v;
bad:
	ctl_fatal(c, CTL_EXIT_BAD_ARGS, "bad lease ID arg (strconv.ParseInt: parsing \"%s\": %s), "
		  "expecting ID in Hex", s, why);
}

/* clientv3's lease responses embed *ResponseHeader: JSON flattens its fields. Opens the
 * object and writes them; returns whether anything was written (for the next comma). */
static bool json_open_flat_header(const keel_header_t *h)
{
	bool any = false;
	putchar('{');
	if (h->cluster_id) {
		printf("\"cluster_id\":%llu", (unsigned long long)h->cluster_id);
		any = true;
	}
	if (h->member_id) {
		printf("%s\"member_id\":%llu", any ? "," : "", (unsigned long long)h->member_id);
		any = true;
	}
	if (h->revision) {
		printf("%s\"revision\":%lld", any ? "," : "", (long long)h->revision);
		any = true;
	}
	if (h->raft_term) {
		printf("%s\"raft_term\":%llu", any ? "," : "", (unsigned long long)h->raft_term);
		any = true;
	}
	return any;
}

/* -w protobuf of a lease response: the embedded header's Marshal is all Go finds. */
static void pb_header_only(const keel_header_t *h)
{
	Etcdserverpb__ResponseHeader m = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	m.cluster_id = h->cluster_id;
	m.member_id = h->member_id;
	m.revision = h->revision;
	m.raft_term = h->raft_term;
	ctl_print_pb(&m.base);
}

/* Grant and keep-alive responses share a shape. */
static void print_id_ttl(ctl_t *c, const keel_header_t *h, int64_t id, int64_t ttl, bool grant)
{
	switch (c->out) {
	case CTL_OUT_SIMPLE:
		if (grant)
			printf("lease %016llx granted with TTL(%llds)\n", (unsigned long long)id,
			       (long long)ttl);
		else
			printf("lease %016llx keepalived with TTL(%lld)\n", (unsigned long long)id,
			       (long long)ttl);
		break;
	case CTL_OUT_JSON:
		printf("%s\"ID\":%lld,\"TTL\":%lld%s}\n", json_open_flat_header(h) ? "," : "",
		       (long long)id, (long long)ttl, grant ? ",\"Error\":\"\"" : "");
		break;
	case CTL_OUT_FIELDS:
		ctl_print_fields_header(h);
		printf("\"ID\" : %lld\n\"TTL\" : %lld\n", (long long)id, (long long)ttl);
		break;
	case CTL_OUT_PROTOBUF:
		pb_header_only(h);
		break;
	case CTL_OUT_TABLE:
		ctl_fatal_format(c);
	}
	fflush(stdout);
}

static int lease_grant(ctl_t *c, int n, char **a)
{
	keel_lease_grant_req_t req = {0};
	keel_lease_grant_result_t res;
	keel_error_t err;
	char *end, buf[700];
	if (n != 1)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "lease grant command needs TTL argument");
	errno = 0;
	long long ttl = strtoll(a[0], &end, 10);
	if (!*a[0] || *end || isspace((unsigned char)a[0][0]))
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "bad TTL (strconv.ParseInt: parsing \"%s\": "
			  "invalid syntax)", a[0]);
	if (errno == ERANGE)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "bad TTL (strconv.ParseInt: parsing \"%s\": "
			  "value out of range)", a[0]);
	req.ttl = ttl;
	req.timeout_ms = ctl_timeout_ms(c);
	if (keel_lease_grant(ctl_client(c), &req, &res, &err) != 0)
		ctl_fatal(c, CTL_EXIT_ERROR, "failed to grant lease (%s)",
			  ctl_err_text(&err, buf, sizeof(buf)));
	print_id_ttl(c, &res.header, res.id, res.ttl, true);
	return CTL_EXIT_SUCCESS;
}

static int lease_revoke(ctl_t *c, int n, char **a)
{
	keel_lease_id_req_t req = {0};
	keel_header_t h;
	keel_error_t err;
	char buf[700];
	if (n != 1)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "lease revoke command needs 1 argument");
	req.id = lease_from_arg(c, a[0]);
	req.timeout_ms = ctl_timeout_ms(c);
	if (keel_lease_revoke(ctl_client(c), &req, &h, &err) != 0)
		ctl_fatal(c, CTL_EXIT_ERROR, "failed to revoke lease (%s)",
			  ctl_err_text(&err, buf, sizeof(buf)));
	switch (c->out) {
	case CTL_OUT_SIMPLE:
		printf("lease %016llx revoked\n", (unsigned long long)req.id);
		break;
	case CTL_OUT_JSON:
		fputs("{\"header\":", stdout);
		ctl_fput_json_header(stdout, &h);
		puts("}");
		break;
	case CTL_OUT_FIELDS:
		ctl_print_fields_header(&h);
		break;
	case CTL_OUT_PROTOBUF: {
		/* Go cannot marshal the value type etcdctl passes: it says so, in text form */
		char t[256];
		int l = snprintf(t, sizeof(t), "{");
		if (h.cluster_id)
			l += snprintf(t + l, sizeof(t) - (size_t)l, "cluster_id:%llu ",
				      (unsigned long long)h.cluster_id);
		if (h.member_id)
			l += snprintf(t + l, sizeof(t) - (size_t)l, "member_id:%llu ",
				      (unsigned long long)h.member_id);
		if (h.revision)
			l += snprintf(t + l, sizeof(t) - (size_t)l, "revision:%lld ",
				      (long long)h.revision);
		if (h.raft_term)
			l += snprintf(t + l, sizeof(t) - (size_t)l, "raft_term:%llu ",
				      (unsigned long long)h.raft_term);
		ctl_fatal(c, CTL_EXIT_BAD_FEATURE, "marshal unsupported for type "
			  "clientv3.LeaseRevokeResponse (%s})", t);
	}
	case CTL_OUT_TABLE:
		ctl_fatal_format(c);
	}
	return CTL_EXIT_SUCCESS;
}

static int lease_timetolive(ctl_t *c, int n, char **a)
{
	keel_lease_id_req_t req = {0};
	keel_lease_ttl_result_t *r = NULL;
	keel_error_t err;
	bool keys = ctl_flag_bool(c, "keys");
	if (n != 1)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "lease timetolive command needs lease ID as "
			  "argument");
	req.id = lease_from_arg(c, a[0]);
	req.keys = keys;
	req.timeout_ms = -1;   /* etcdctl asks with context.TODO() */
	if (keel_lease_ttl(ctl_client(c), &req, &r, &err) != 0) {
		char buf[700];
		ctl_fatal(c, CTL_EXIT_BAD_CONNECTION, "%s", ctl_err_text(&err, buf, sizeof(buf)));
	}
	switch (c->out) {
	case CTL_OUT_SIMPLE:
		if (r->granted_ttl == 0 && r->ttl == -1) {
			printf("lease %016llx already expired\n", (unsigned long long)r->id);
			break;
		}
		printf("lease %016llx granted with TTL(%llds), remaining(%llds)",
		       (unsigned long long)r->id, (long long)r->granted_ttl, (long long)r->ttl);
		if (keys) {
			fputs(", attached keys([", stdout);
			for (size_t i = 0; i < r->n_keys; i++) {
				if (i)
					putchar(' ');
				fwrite(r->keys[i].key, 1, r->keys[i].key_len, stdout);
			}
			fputs("])", stdout);
		}
		putchar('\n');
		break;
	case CTL_OUT_JSON:
		printf("%s\"id\":%lld,\"ttl\":%lld,\"granted-ttl\":%lld,\"keys\":",
		       json_open_flat_header(&r->header) ? "," : "", (long long)r->id,
		       (long long)r->ttl, (long long)r->granted_ttl);
		if (r->n_keys == 0) {
			fputs("null", stdout);
		} else {
			putchar('[');
			for (size_t i = 0; i < r->n_keys; i++) {
				if (i)
					putchar(',');
				ctl_fput_json_base64(stdout, r->keys[i].key, r->keys[i].key_len);
			}
			putchar(']');
		}
		puts("}");
		break;
	case CTL_OUT_FIELDS:
		ctl_print_fields_header(&r->header);
		printf("\"ID\" : %lld\n\"TTL\" : %lld\n\"GrantedTTL\" : %lld\n", (long long)r->id,
		       (long long)r->ttl, (long long)r->granted_ttl);
		for (size_t i = 0; i < r->n_keys; i++) {
			fputs("\"Key\" : ", stdout);
			ctl_fput_quoted(stdout, r->keys[i].key, r->keys[i].key_len);
			putchar('\n');
		}
		break;
	case CTL_OUT_PROTOBUF:
		pb_header_only(&r->header);
		break;
	case CTL_OUT_TABLE:
		keel_lease_ttl_result_free(r);
		ctl_fatal_format(c);
	}
	keel_lease_ttl_result_free(r);
	return CTL_EXIT_SUCCESS;
}

static int lease_list(ctl_t *c)
{
	keel_lease_list_req_t req = {.timeout_ms = -1};
	keel_lease_list_result_t *r = NULL;
	keel_error_t err;
	if (keel_lease_list(ctl_client(c), &req, &r, &err) != 0) {
		char buf[700];
		ctl_fatal(c, CTL_EXIT_BAD_CONNECTION, "%s", ctl_err_text(&err, buf, sizeof(buf)));
	}
	switch (c->out) {
	case CTL_OUT_SIMPLE:
		printf("found %zu leases\n", r->n_ids);
		for (size_t i = 0; i < r->n_ids; i++)
			printf("%016llx\n", (unsigned long long)r->ids[i]);
		break;
	case CTL_OUT_JSON:
		printf("%s\"leases\":", json_open_flat_header(&r->header) ? "," : "");
		if (r->n_ids == 0) {
			fputs("null", stdout);
		} else {
			putchar('[');
			for (size_t i = 0; i < r->n_ids; i++)
				printf("%s{\"id\":%lld}", i ? "," : "", (long long)r->ids[i]);
			putchar(']');
		}
		puts("}");
		break;
	case CTL_OUT_FIELDS:
		ctl_print_fields_header(&r->header);
		for (size_t i = 0; i < r->n_ids; i++)
			printf("\"ID\" : %lld\n", (long long)r->ids[i]);
		break;
	case CTL_OUT_PROTOBUF:
		pb_header_only(&r->header);
		break;
	case CTL_OUT_TABLE:
		keel_lease_list_result_free(r);
		ctl_fatal_format(c);
	}
	keel_lease_list_result_free(r);
	return CTL_EXIT_SUCCESS;
}

typedef struct ka_run {
	ctl_t *c;
	bool once;                   /* --once: stop after the first answer, print nothing more */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool ended;
	bool gone;                   /* the server answered TTL <= 0 */
	keel_header_t header;
	int64_t id, ttl;
} ka_run_t;

static void ka_cb(void *ud, const keel_header_t *h, int64_t id, int64_t ttl)
{
	ka_run_t *run = ud;
	pthread_mutex_lock(&run->mu);
	if (run->ended) {
		pthread_mutex_unlock(&run->mu);
		return;
	}
	if (ttl > 0 && !run->once) {
		pthread_mutex_unlock(&run->mu);
		if (run->c->out == CTL_OUT_TABLE)
			ctl_fatal_format_async(run->c);
		print_id_ttl(run->c, h, id, ttl, false);
		return;
	}
	run->header = *h;
	run->id = id;
	run->ttl = ttl;
	run->gone = ttl <= 0;
	run->ended = true;
	pthread_cond_signal(&run->cv);
	pthread_mutex_unlock(&run->mu);
}

/* Both forms run over the LeaseKeepAlive stream, kept open until the answer comes, as
 * clientv3's KeepAlive and KeepAliveOnce do (a half-closed stream may end before a
 * follower's forwarded renewal returns). */
static int lease_keepalive(ctl_t *c, int n, char **a)
{
	keel_error_t err;
	char buf[700];
	if (n != 1)
		ctl_fatal(c, CTL_EXIT_BAD_ARGS, "lease keep-alive command needs lease ID as "
			  "argument");
	int64_t id = lease_from_arg(c, a[0]);
	ka_run_t run = {.c = c, .once = ctl_flag_bool(c, "once")};
	keel_keepalive_t *ka = NULL;
	pthread_mutex_init(&run.mu, NULL);
	pthread_cond_init(&run.cv, NULL);
	if (keel_lease_keepalive(ctl_client(c), id, ka_cb, &run, &ka, &err) != 0)
		ctl_fatal(c, CTL_EXIT_BAD_CONNECTION, "%s", ctl_err_text(&err, buf, sizeof(buf)));
	pthread_mutex_lock(&run.mu);
	while (!run.ended)
		pthread_cond_wait(&run.cv, &run.mu);
	pthread_mutex_unlock(&run.mu);
	keel_keepalive_stop(ka);
	pthread_mutex_destroy(&run.mu);
	pthread_cond_destroy(&run.cv);
	if (run.once) {
		if (run.gone)
			ctl_fatal(c, CTL_EXIT_BAD_CONNECTION,
				  "etcdserver: requested lease not found");
		print_id_ttl(c, &run.header, run.id, run.ttl, false);
		return CTL_EXIT_SUCCESS;
	}
	if (c->out == CTL_OUT_SIMPLE)
		printf("lease %016llx expired or revoked.\n", (unsigned long long)id);
	return CTL_EXIT_SUCCESS;
}

int ctl_cmd_lease(ctl_t *c, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	int n = argc - 2;
	char **a = argv + 2;
	if (strcmp(sub, "grant") == 0)
		return lease_grant(c, n, a);
	if (strcmp(sub, "revoke") == 0)
		return lease_revoke(c, n, a);
	if (strcmp(sub, "timetolive") == 0)
		return lease_timetolive(c, n, a);
	if (strcmp(sub, "list") == 0)
		return lease_list(c);
	if (strcmp(sub, "keep-alive") == 0)
		return lease_keepalive(c, n, a);
	ctl_print_usage(c->cmd);
	return CTL_EXIT_SUCCESS;
}
