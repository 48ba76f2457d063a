/* tests/unit/test_peer.c — the peer transport: ordered delivery between two and three
 * transports on one loop, batching, reconnect and backoff, the handshake's refusals,
 * snapshots beside heartbeats, and the frame decoder against damaged streams.
 * Everything runs on 127.0.0.1 with ports picked at run time; no test sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer.h"

#define MAXN 4
#define MAX_REC 8192
#define CLUSTER 0xC1u
#define SNAP_BYTES (20u << 20)

/* ---- a small world of transports on one loop ------------------------------------ */

struct rec {
	uint64_t from;
	int type;
	uint64_t index;
	uint64_t commit;
	char entry[32];
};

struct world;

struct node {
	struct world *w;
	uint64_t id;
	peer_net_t *net;
	int port;
	bool closed;
	struct rec recs[MAX_REC];
	size_t n_recs;
	size_t unreachable[MAXN + 2];
	uint64_t unreach_backoff[64]; /* peer_stats.backoff_ms at each on_unreachable */
	uint64_t unreach_at[64];      /* uv_hrtime at each on_unreachable, ns */
	size_t snap_ok[MAXN + 2], snap_failed[MAXN + 2];
	raft_msg_t *snap;             /* the MsgSnap received, if any */
	uint64_t snap_at;
	size_t hb_before_snap;
	uint64_t max_hb_latency_ns;
	size_t n_app;
	uint32_t app_kind;
	uint64_t app_from;
	char app_data[32];
};

struct world {
	uv_loop_t loop;
	uv_timer_t wake;  /* keeps the loop turning at least every millisecond */
	uv_check_t turn;  /* calls tick once per loop turn */
	void (*tick)(struct world *w);
	struct node nodes[MAXN];
	/* the snapshot test's state */
	uint64_t hb_sent_at[4096];
	size_t hb_sent;
	uint64_t snap_sent_at;
};

static uint64_t now_ns(void)
{
	return uv_hrtime();
}

static void cb_raft(void *ud, raft_msg_t *m)
{
	struct node *nd = ud;
	if (m->type == RAFT_MSG_SNAP && !nd->snap) {
		nd->snap = m;
		nd->snap_at = now_ns();
		return;
	}
	if (m->type == RAFT_MSG_HEARTBEAT && m->commit < 4096 && nd->w->hb_sent_at[m->commit]) {
		uint64_t lat = now_ns() - nd->w->hb_sent_at[m->commit];
		if (lat > nd->max_hb_latency_ns)
			nd->max_hb_latency_ns = lat;
		if (!nd->snap)
			nd->hb_before_snap++;
	}
	if (nd->n_recs < MAX_REC) {
		struct rec *r = &nd->recs[nd->n_recs++];
		r->from = m->from;
		r->type = (int)m->type;
		r->index = m->index;
		r->commit = m->commit;
		r->entry[0] = 0;
		if (m->n_entries && m->entries[0]->data.len < sizeof(r->entry)) {
			memcpy(r->entry, m->entries[0]->data.data, m->entries[0]->data.len);
			r->entry[m->entries[0]->data.len] = 0;
		}
	}
	raft_msg_free(m);
}

static void cb_app(void *ud, uint64_t from, uint32_t kind, const uint8_t *data, size_t len)
{
	struct node *nd = ud;
	nd->n_app++;
	nd->app_kind = kind;
	nd->app_from = from;
	size_t n = len < sizeof(nd->app_data) - 1 ? len : sizeof(nd->app_data) - 1;
	memcpy(nd->app_data, data, n);
	nd->app_data[n] = 0;
}

static void cb_unreachable(void *ud, uint64_t id)
{
	struct node *nd = ud;
	size_t k = 0;
	for (size_t i = 0; i < MAXN + 2; i++)
		k += nd->unreachable[i];
	if (k < 64) {
		peer_stats_t st;
		nd->unreach_backoff[k] = peer_net_stats(nd->net, id, &st) == 0 ? st.backoff_ms : 0;
		nd->unreach_at[k] = now_ns();
	}
	if (id < MAXN + 2)
		nd->unreachable[id]++;
}

static void cb_snap_status(void *ud, uint64_t id, bool failed)
{
	struct node *nd = ud;
	if (id < MAXN + 2)
		(failed ? nd->snap_failed : nd->snap_ok)[id]++;
}

static const peer_callbacks_t test_cb = {
	.on_raft = cb_raft,
	.on_app = cb_app,
	.on_unreachable = cb_unreachable,
	.on_snapshot_status = cb_snap_status,
};

static void on_turn(uv_check_t *h)
{
	struct world *w = h->data;
	if (w->tick)
		w->tick(w);
}

static void on_wake(uv_timer_t *t)
{
	(void)t;
}

static struct world *world_new(void)
{
	struct world *w = calloc(1, sizeof(*w));
	assert_non_null(w);
	assert_int_equal(uv_loop_init(&w->loop), 0);
	uv_timer_init(&w->loop, &w->wake);
	uv_timer_start(&w->wake, on_wake, 1, 1);
	uv_check_init(&w->loop, &w->turn);
	w->turn.data = w;
	uv_check_start(&w->turn, on_turn);
	return w;
}

/* Runs the loop until pred holds or timeout_ms passed; returns pred's last value. */
static bool run_until(struct world *w, bool (*pred)(struct world *), unsigned timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (!(pred && pred(w))) {
		if (now_ns() > deadline)
			return false;
		uv_run(&w->loop, UV_RUN_ONCE);
	}
	return true;
}

static bool never(struct world *w)
{
	(void)w;
	return false;
}

static void run_for(struct world *w, unsigned ms)
{
	run_until(w, never, ms);
}

static void node_start(struct world *w, int i, uint64_t id, const peer_options_t *opt,
		       int port)
{
	struct node *nd = &w->nodes[i];
	peer_options_t o;
	peer_options_default(&o);
	o.cluster_id = CLUSTER;
	if (opt)
		o = *opt;
	nd->w = w;
	nd->id = id;
	nd->closed = false;
	assert_int_equal(peer_net_new(&w->loop, id, &o, &test_cb, nd, &nd->net), 0);
	char err[256] = "";
	int rc = peer_net_listen(nd->net, "127.0.0.1", port, err, sizeof(err));
	if (rc)
		fail_msg("listen: %s", err);
	nd->port = peer_net_port(nd->net);
	assert_true(nd->port > 0);
}

/* Every started node knows every other. */
static void world_mesh(struct world *w)
{
	for (int i = 0; i < MAXN; i++)
		for (int j = 0; j < MAXN; j++)
			if (i != j && w->nodes[i].net && w->nodes[j].id)
				assert_int_equal(peer_net_add(w->nodes[i].net, w->nodes[j].id,
							      "127.0.0.1", w->nodes[j].port), 0);
}

static void on_closed(void *arg)
{
	struct node *nd = arg;
	nd->closed = true;
	nd->net = NULL;
}

static bool all_closed(struct world *w)
{
	for (int i = 0; i < MAXN; i++)
		if (w->nodes[i].net && !w->nodes[i].closed)
			return false;
	return true;
}

static int stopping;

static bool stopped(struct world *w)
{
	return w->nodes[stopping].closed;
}

static void node_stop(struct world *w, int i)
{
	struct node *nd = &w->nodes[i];
	peer_net_close(nd->net, on_closed, nd);
	stopping = i;
	assert_true(run_until(w, stopped, 5000));
	raft_msg_free(nd->snap);
	nd->snap = NULL;
}

static void world_free(struct world *w)
{
	for (int i = 0; i < MAXN; i++)
		if (w->nodes[i].net)
			peer_net_close(w->nodes[i].net, on_closed, &w->nodes[i]);
	assert_true(run_until(w, all_closed, 5000));
	for (int i = 0; i < MAXN; i++)
		raft_msg_free(w->nodes[i].snap);
	uv_close((uv_handle_t *)&w->wake, NULL);
	uv_close((uv_handle_t *)&w->turn, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	/* Every handle the transports opened is closed: the loop closes cleanly. */
	assert_int_equal(uv_loop_close(&w->loop), 0);
	free(w);
}

static raft_msg_t *msg_make(int type, uint64_t from, uint64_t to, uint64_t index)
{
	raft_msg_t *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	raftpb__message__init(m);
	m->type = type;
	m->from = from;
	m->to = to;
	m->term = 3;
	m->index = index;
	m->commit = index;
	if (type == RAFT_MSG_APP) {
		char data[32];
		int n = snprintf(data, sizeof(data), "e%llu-%llu", (unsigned long long)from,
				 (unsigned long long)index);
		m->entries = calloc(1, sizeof(*m->entries));
		m->entries[0] = raft_entry_new(3, index, RAFT_ENTRY_NORMAL, data, (size_t)n);
		m->n_entries = 1;
	}
	return m;
}

static uint8_t snap_byte(size_t i)
{
	return (uint8_t)((i * 2654435761u) >> 13);
}

static raft_msg_t *snap_make(uint64_t from, uint64_t to, size_t bytes)
{
	raft_msg_t *m = msg_make(RAFT_MSG_SNAP, from, to, 0);
	m->snapshot = calloc(1, sizeof(*m->snapshot));
	raftpb__snapshot__init(m->snapshot);
	m->snapshot->metadata = calloc(1, sizeof(*m->snapshot->metadata));
	raftpb__snapshot_metadata__init(m->snapshot->metadata);
	m->snapshot->metadata->index = 1000;
	m->snapshot->metadata->term = 5;
	Raftpb__ConfState *cs = calloc(1, sizeof(*cs));
	raftpb__conf_state__init(cs);
	cs->voters = calloc(3, sizeof(*cs->voters));
	cs->n_voters = 3;
	for (size_t i = 0; i < 3; i++)
		cs->voters[i] = i + 1;
	m->snapshot->metadata->conf_state = cs;
	m->context.data = malloc(3);
	memcpy(m->context.data, "ctx", 3);
	m->context.len = 3;
	m->commit = 999;
	m->snapshot->data.data = malloc(bytes);
	assert_non_null(m->snapshot->data.data);
	for (size_t i = 0; i < bytes; i++)
		m->snapshot->data.data[i] = snap_byte(i);
	m->snapshot->data.len = bytes;
	return m;
}

/* Nothing listens on the returned port while fd stays open: connects are refused. */
static int dead_port(int *fd)
{
	*fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(*fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

/* Checks that nd got exactly indexes 1..n from `from`, in order, with their entries. */
static void assert_in_order(const struct node *nd, uint64_t from, uint64_t n)
{
	uint64_t next = 1;
	for (size_t i = 0; i < nd->n_recs; i++) {
		const struct rec *r = &nd->recs[i];
		if (r->from != from || r->type != RAFT_MSG_APP)
			continue;
		assert_int_equal(r->index, next);
		char want[32];
		snprintf(want, sizeof(want), "e%llu-%llu", (unsigned long long)from,
			 (unsigned long long)next);
		assert_string_equal(r->entry, want);
		next++;
	}
	assert_int_equal(next - 1, n);
}

/* ---- delivery and batching -------------------------------------------------------- */

static size_t want_recs;

static bool nodes_have_want(struct world *w)
{
	for (int i = 0; i < MAXN; i++)
		if (w->nodes[i].net && w->nodes[i].n_recs < want_recs)
			return false;
	return true;
}

static bool node1_has_want(struct world *w)
{
	return w->nodes[1].n_recs >= want_recs;
}

static void test_two_transports_exchange_messages_in_order(void **state)
{
	(void)state;
	struct world *w = world_new();
	node_start(w, 0, 1, NULL, 0);
	node_start(w, 1, 2, NULL, 0);
	world_mesh(w);
	/* Half in one turn, half over later turns: order must hold across both. */
	for (uint64_t i = 1; i <= 100; i++) {
		peer_net_send(w->nodes[0].net, msg_make(RAFT_MSG_APP, 1, 2, i));
		peer_net_send(w->nodes[1].net, msg_make(RAFT_MSG_APP, 2, 1, i));
	}
	want_recs = 100;
	assert_true(run_until(w, nodes_have_want, 5000));
	for (uint64_t i = 101; i <= 200; i++) {
		peer_net_send(w->nodes[0].net, msg_make(RAFT_MSG_APP, 1, 2, i));
		peer_net_send(w->nodes[1].net, msg_make(RAFT_MSG_APP, 2, 1, i));
		uv_run(&w->loop, UV_RUN_NOWAIT);
	}
	want_recs = 200;
	assert_true(run_until(w, nodes_have_want, 5000));
	assert_in_order(&w->nodes[1], 1, 200);
	assert_in_order(&w->nodes[0], 2, 200);
	assert_int_equal(w->nodes[0].unreachable[2], 0);
	world_free(w);
}

static void test_three_transports_exchange_messages_in_order(void **state)
{
	(void)state;
	struct world *w = world_new();
	for (int i = 0; i < 3; i++)
		node_start(w, i, (uint64_t)i + 1, NULL, 0);
	world_mesh(w);
	for (uint64_t k = 1; k <= 50; k++)
		for (int i = 0; i < 3; i++)
			for (int j = 0; j < 3; j++)
				if (i != j)
					peer_net_send(w->nodes[i].net,
						      msg_make(RAFT_MSG_APP, (uint64_t)i + 1,
							       (uint64_t)j + 1, k));
	want_recs = 100;
	assert_true(run_until(w, nodes_have_want, 5000));
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++)
			if (i != j)
				assert_in_order(&w->nodes[j], (uint64_t)i + 1, 50);
	world_free(w);
}

static void test_messages_queued_in_one_turn_go_out_in_one_write(void **state)
{
	(void)state;
	struct world *w = world_new();
	node_start(w, 0, 1, NULL, 0);
	node_start(w, 1, 2, NULL, 0);
	world_mesh(w);
	peer_net_send(w->nodes[0].net, msg_make(RAFT_MSG_APP, 1, 2, 1));
	want_recs = 1;
	assert_true(run_until(w, node1_has_want, 5000));
	peer_stats_t before, after;
	assert_int_equal(peer_net_stats(w->nodes[0].net, 2, &before), 0);
	for (uint64_t i = 2; i <= 301; i++)
		peer_net_send(w->nodes[0].net, msg_make(RAFT_MSG_APP, 1, 2, i));
	want_recs = 301;
	assert_true(run_until(w, node1_has_want, 5000));
	assert_int_equal(peer_net_stats(w->nodes[0].net, 2, &after), 0);
	assert_int_equal(after.writes - before.writes, 1);
	assert_int_equal(after.frames - before.frames, 300);
	assert_true(after.max_frames_per_write >= 300);
	assert_in_order(&w->nodes[1], 1, 301);
	world_free(w);
}

static void test_app_frames_arrive_with_kind_and_sender(void **state)
{
	(void)state;
	struct world *w = world_new();
	node_start(w, 0, 1, NULL, 0);
	node_start(w, 1, 2, NULL, 0);
	world_mesh(w);
	assert_int_equal(peer_net_send_app(w->nodes[0].net, 2, 42, "forward", 7), 0);
	assert_int_equal(peer_net_send_app(w->nodes[0].net, 9, 42, "x", 1), -1);
	for (int i = 0; i < 5000 && w->nodes[1].n_app == 0; i++)
		uv_run(&w->loop, UV_RUN_ONCE);
	assert_int_equal(w->nodes[1].n_app, 1);
	assert_int_equal(w->nodes[1].app_kind, 42);
	assert_int_equal(w->nodes[1].app_from, 1);
	assert_string_equal(w->nodes[1].app_data, "forward");
	world_free(w);
}

static void test_listens_on_several_addresses(void **state)
{
	(void)state;
	struct world *w = world_new();
	node_start(w, 0, 1, NULL, 0);
	node_start(w, 1, 2, NULL, 0);
	/* A second listen URL for node 2: the same port on another loopback address. */
	char err[256] = "";
	int port = w->nodes[1].port;
	if (peer_net_listen(w->nodes[1].net, "127.0.0.2", port, err, sizeof(err)))
		fail_msg("second listen: %s", err);
	assert_int_equal(peer_net_port(w->nodes[1].net), port);
	assert_int_equal(peer_net_listen(w->nodes[1].net, "peer.example", 1, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "peer.example"));
	assert_int_equal(peer_net_add(w->nodes[0].net, 2, "127.0.0.2", port), 0);
	assert_int_equal(peer_net_add(w->nodes[1].net, 1, "127.0.0.1", w->nodes[0].port), 0);
	peer_net_send(w->nodes[0].net, msg_make(RAFT_MSG_APP, 1, 2, 1));
	want_recs = 1;
	assert_true(run_until(w, node1_has_want, 5000));
	assert_in_order(&w->nodes[1], 1, 1);
	world_free(w);
}

/* ---- reconnect and backoff --------------------------------------------------------- */

static uint64_t tick_index;

static void tick_send_1_to_2(struct world *w)
{
	if (w->nodes[0].net)
		peer_net_send(w->nodes[0].net, msg_make(RAFT_MSG_APP, 1, 2, ++tick_index));
}

static bool node1_got_one(struct world *w)
{
	return w->nodes[1].n_recs > 0;
}

static void test_restarted_peer_gets_messages_after_reconnect(void **state)
{
	(void)state;
	struct world *w = world_new();
	peer_options_t o;
	peer_options_default(&o);
	o.cluster_id = CLUSTER;
	o.backoff_min_ms = 5;
	o.backoff_max_ms = 20;
	node_start(w, 0, 1, &o, 0);
	node_start(w, 1, 2, &o, 0);
	world_mesh(w);
	tick_index = 0;
	w->tick = tick_send_1_to_2;
	assert_true(run_until(w, node1_got_one, 5000));
	int port = w->nodes[1].port;
	w->tick = NULL;
	node_stop(w, 1);
	/* Node 2 comes back on the same port as a new transport. */
	memset(&w->nodes[1], 0, sizeof(w->nodes[1]));
	node_start(w, 1, 2, &o, port);
	assert_int_equal(w->nodes[1].port, port);
	assert_int_equal(peer_net_add(w->nodes[1].net, 1, "127.0.0.1", w->nodes[0].port), 0);
	w->tick = tick_send_1_to_2;
	assert_true(run_until(w, node1_got_one, 5000));
	w->tick = NULL;
	peer_stats_t st;
	assert_int_equal(peer_net_stats(w->nodes[0].net, 2, &st), 0);
	assert_true(st.connects >= 2);
	assert_true(w->nodes[0].unreachable[2] >= 1); /* the lost connection was reported */
	/* What arrives after the restart is in order. */
	uint64_t prev = 0;
	for (size_t i = 0; i < w->nodes[1].n_recs; i++) {
		assert_true(w->nodes[1].recs[i].index > prev);
		prev = w->nodes[1].recs[i].index;
	}
	world_free(w);
}

static bool six_unreachable(struct world *w)
{
	return w->nodes[0].unreachable[2] >= 6;
}

static void test_backoff_doubles_and_caps(void **state)
{
	(void)state;
	int fd;
	int port = dead_port(&fd);
	struct world *w = world_new();
	peer_options_t o;
	peer_options_default(&o);
	o.cluster_id = CLUSTER;
	o.backoff_min_ms = 10;
	o.backoff_max_ms = 80;
	node_start(w, 0, 1, &o, 0);
	assert_int_equal(peer_net_add(w->nodes[0].net, 2, "127.0.0.1", port), 0);
	tick_index = 0;
	w->tick = tick_send_1_to_2; /* a message every turn: reconnect as soon as allowed */
	assert_true(run_until(w, six_unreachable, 10000));
	w->tick = NULL;
	const uint64_t want[6] = {10, 20, 40, 80, 80, 80};
	struct node *a = &w->nodes[0];
	for (int i = 0; i < 6; i++)
		assert_int_equal(a->unreach_backoff[i], want[i]);
	/* Each retry waited for the previous backoff. The reports are stamped when a connect
	 * fails, and how long a refused connect takes varies with the machine's load, so the
	 * gap between two reports is only bounded by half the backoff: still far above a retry
	 * that did not wait. */
	for (int i = 1; i < 6; i++)
		assert_true(a->unreach_at[i] - a->unreach_at[i - 1] >=
			    want[i - 1] / 2 * 1000000u);
	peer_stats_t st;
	assert_int_equal(peer_net_stats(a->net, 2, &st), 0);
	/* One report per failed attempt, not per message. */
	assert_int_equal(a->unreachable[2], st.connect_failures);
	assert_true(st.dropped > a->unreachable[2]);
	world_free(w);
	close(fd);
}

static void test_unreachable_reported_once_per_attempt_when_nothing_listens(void **state)
{
	(void)state;
	int fd;
	int port = dead_port(&fd);
	struct world *w = world_new();
	peer_options_t o;
	peer_options_default(&o);
	o.cluster_id = CLUSTER;
	o.backoff_min_ms = 60000; /* one attempt in this test's lifetime */
	o.backoff_max_ms = 60000;
	node_start(w, 0, 1, &o, 0);
	assert_int_equal(peer_net_add(w->nodes[0].net, 2, "127.0.0.1", port), 0);
	for (uint64_t i = 1; i <= 20; i++)
		peer_net_send(w->nodes[0].net, msg_make(RAFT_MSG_APP, 1, 2, i));
	/* Reported from the loop, never from inside peer_net_send. */
	assert_int_equal(w->nodes[0].unreachable[2], 0);
	tick_index = 100;
	w->tick = tick_send_1_to_2;
	run_for(w, 100);
	w->tick = NULL;
	assert_int_equal(w->nodes[0].unreachable[2], 1);
	peer_stats_t st;
	assert_int_equal(peer_net_stats(w->nodes[0].net, 2, &st), 0);
	assert_int_equal(st.connects, 1);
	assert_true(st.dropped >= 20);
	world_free(w);
	close(fd);
}

static bool node0_unreachable_2(struct world *w)
{
	return w->nodes[0].unreachable[2] > 0;
}

static void test_connect_that_hangs_times_out_and_reports_unreachable(void **state)
{
	(void)state;
	/* A listener whose accept queue is full drops SYNs: connects hang, as to a host
	 * that is down. */
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 0), 0);
	socklen_t alen = sizeof(a);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
	int fillers[4];
	for (int i = 0; i < 4; i++) {
		fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fillers[i], (struct sockaddr *)&a, sizeof(a)); /* EINPROGRESS or done */
	}
	struct world *w = world_new();
	node_start(w, 0, 1, NULL, 0);
	assert_int_equal(peer_net_add(w->nodes[0].net, 2, "127.0.0.1", ntohs(a.sin_port)), 0);
	uint64_t t0 = now_ns();
	peer_net_send(w->nodes[0].net, msg_make(RAFT_MSG_APP, 1, 2, 1));
	assert_true(run_until(w, node0_unreachable_2, 5000));
	double waited = (double)(now_ns() - t0) / 1e6;
	assert_true(waited >= 900); /* not refused: it hung until the timeout */
	assert_int_equal(w->nodes[0].unreachable[2], 1);
	peer_stats_t st;
	assert_int_equal(peer_net_stats(w->nodes[0].net, 2, &st), 0);
	assert_int_equal(st.connect_failures, 1);
	world_free(w);
	for (int i = 0; i < 4; i++)
		close(fillers[i]);
	close(lfd);
}

static bool node0_unreachable_3_or_2(struct world *w)
{
	return w->nodes[0].unreachable[2] + w->nodes[0].unreachable[3] > 0;
}

static void test_queue_cap_drops_and_reports_unreachable_once(void **state)
{
	(void)state;
	struct world *w = world_new();
	peer_options_t o;
	peer_options_default(&o);
	o.cluster_id = CLUSTER;
	o.max_queue_bytes = 4096;
	node_start(w, 0, 1, &o, 0);
	node_start(w, 1, 2, &o, 0);
	world_mesh(w);
	/* All in one turn, while the connection is still being made: ~64 bytes each. */
	for (uint64_t i = 1; i <= 200; i++)
		peer_net_send(w->nodes[0].net, msg_make(RAFT_MSG_APP, 1, 2, i));
	run_until(w, node0_unreachable_3_or_2, 2000);
	run_for(w, 50);
	peer_stats_t st;
	assert_int_equal(peer_net_stats(w->nodes[0].net, 2, &st), 0);
	assert_true(st.dropped > 0);
	assert_int_equal(w->nodes[0].unreachable[2], 1);
	size_t got = w->nodes[1].n_recs;
	assert_true(got > 0 && got < 200);
	assert_int_equal(got + st.dropped, 200);
	assert_in_order(&w->nodes[1], 1, got); /* the head of the queue, not a random subset */
	world_free(w);
}

/* ---- the handshake ------------------------------------------------------------------ */

static void test_hello_with_wrong_cluster_is_refused(void **state)
{
	(void)state;
	struct world *w = world_new();
	peer_options_t o;
	peer_options_default(&o);
	o.cluster_id = CLUSTER + 1;
	node_start(w, 0, 1, &o, 0);
	node_start(w, 1, 2, NULL, 0);
	world_mesh(w);
	for (uint64_t i = 1; i <= 10; i++)
		peer_net_send(w->nodes[0].net, msg_make(RAFT_MSG_APP, 1, 2, i));
	peer_net_send_app(w->nodes[0].net, 2, 1, "x", 1);
	assert_true(run_until(w, node0_unreachable_3_or_2, 5000));
	run_for(w, 20);
	assert_int_equal(w->nodes[1].n_recs, 0);
	assert_int_equal(w->nodes[1].n_app, 0);
	world_free(w);
}

static void test_hello_for_wrong_receiver_is_refused(void **state)
{
	(void)state;
	struct world *w = world_new();
	node_start(w, 0, 1, NULL, 0);
	node_start(w, 1, 2, NULL, 0);
	/* Node 1 believes member 3 lives at node 2's address. */
	assert_int_equal(peer_net_add(w->nodes[0].net, 3, "127.0.0.1", w->nodes[1].port), 0);
	assert_int_equal(peer_net_add(w->nodes[1].net, 1, "127.0.0.1", w->nodes[0].port), 0);
	for (uint64_t i = 1; i <= 10; i++)
		peer_net_send(w->nodes[0].net, msg_make(RAFT_MSG_APP, 1, 3, i));
	assert_true(run_until(w, node0_unreachable_3_or_2, 5000));
	assert_int_equal(w->nodes[0].unreachable[3], 1);
	run_for(w, 20);
	assert_int_equal(w->nodes[1].n_recs, 0);
	world_free(w);
}

static void test_hello_from_unknown_sender_is_refused(void **state)
{
	(void)state;
	struct world *w = world_new();
	node_start(w, 0, 1, NULL, 0);
	node_start(w, 1, 2, NULL, 0);
	/* Only node 1 knows the other: node 2 has never heard of member 1. */
	assert_int_equal(peer_net_add(w->nodes[0].net, 2, "127.0.0.1", w->nodes[1].port), 0);
	for (uint64_t i = 1; i <= 10; i++)
		peer_net_send(w->nodes[0].net, msg_make(RAFT_MSG_APP, 1, 2, i));
	assert_true(run_until(w, node0_unreachable_3_or_2, 5000));
	run_for(w, 20);
	assert_int_equal(w->nodes[1].n_recs, 0);
	world_free(w);
}

/* ---- snapshots ------------------------------------------------------------------------ */

static bool snapshot_done(struct world *w)
{
	return w->nodes[1].snap && w->nodes[0].snap_ok[2] + w->nodes[0].snap_failed[2] > 0;
}

static void tick_heartbeats_during_snapshot(struct world *w)
{
	if (w->nodes[1].snap || w->hb_sent + 1 >= 4096)
		return;
	/* The snapshot has been handed over: every turn sends one more heartbeat. */
	uint64_t seq = ++w->hb_sent;
	w->hb_sent_at[seq] = now_ns();
	raft_msg_t *m = msg_make(RAFT_MSG_HEARTBEAT, 1, 2, 0);
	m->commit = seq;
	peer_net_send(w->nodes[0].net, m);
}

static bool node1_got_warmup(struct world *w)
{
	return w->nodes[1].n_recs >= 1 && w->nodes[1].snap && w->nodes[0].snap_ok[2] == 1;
}

static void test_big_snapshot_arrives_intact_and_heartbeats_overtake_it(void **state)
{
	(void)state;
	struct world *w = world_new();
	node_start(w, 0, 1, NULL, 0); /* defaults: 1 MiB chunks, 16 MiB frames */
	node_start(w, 1, 2, NULL, 0);
	world_mesh(w);
	/* Both links up first, so the big snapshot starts leaving in the turn it is sent. */
	peer_net_send(w->nodes[0].net, msg_make(RAFT_MSG_APP, 1, 2, 1));
	peer_net_send(w->nodes[0].net, snap_make(1, 2, 1024));
	assert_true(run_until(w, node1_got_warmup, 5000));
	raft_msg_free(w->nodes[1].snap);
	w->nodes[1].snap = NULL;
	w->nodes[0].snap_ok[2] = 0;
	raft_msg_t *big = snap_make(1, 2, SNAP_BYTES);
	w->snap_sent_at = now_ns();
	peer_net_send(w->nodes[0].net, big);
	w->tick = tick_heartbeats_during_snapshot;
	assert_true(run_until(w, snapshot_done, 30000));
	w->tick = NULL;
	struct node *b = &w->nodes[1];
	raft_msg_t *s = b->snap;
	assert_int_equal(s->type, RAFT_MSG_SNAP);
	assert_int_equal(s->from, 1);
	assert_int_equal(s->to, 2);
	assert_non_null(s->snapshot);
	assert_non_null(s->snapshot->metadata);
	/* Every field survives the sender's zero-copy layout of the packed message. */
	assert_int_equal(s->term, 3);
	assert_int_equal(s->commit, 999);
	assert_int_equal(s->context.len, 3);
	assert_memory_equal(s->context.data, "ctx", 3);
	assert_int_equal(s->snapshot->metadata->index, 1000);
	assert_int_equal(s->snapshot->metadata->term, 5);
	assert_non_null(s->snapshot->metadata->conf_state);
	assert_int_equal(s->snapshot->metadata->conf_state->n_voters, 3);
	assert_int_equal(s->snapshot->metadata->conf_state->voters[2], 3);
	assert_int_equal(s->snapshot->data.len, SNAP_BYTES);
	for (size_t i = 0; i < SNAP_BYTES; i++)
		if (s->snapshot->data.data[i] != snap_byte(i))
			fail_msg("snapshot byte %zu differs", i);
	assert_int_equal(w->nodes[0].snap_ok[2], 1);
	assert_int_equal(w->nodes[0].snap_failed[2], 0);
	/* Heartbeats sent after the snapshot arrived while it was still in transit. */
	assert_true(w->hb_sent >= 1);
	assert_true(b->hb_before_snap >= 1);
	double xfer = (double)(b->snap_at - w->snap_sent_at) / 1e6;
	print_message("20 MiB snapshot: %.1f ms; %zu of %zu heartbeats sent during it arrived "
		      "before it, max heartbeat latency %.2f ms\n", xfer, b->hb_before_snap,
		      w->hb_sent, (double)b->max_hb_latency_ns / 1e6);
	/* A heartbeat never waited for the snapshot: each took less than the whole transfer. */
	assert_true(b->max_hb_latency_ns < b->snap_at - w->snap_sent_at);
	world_free(w);
}

static bool snap_failed_reported(struct world *w)
{
	return w->nodes[0].snap_failed[2] > 0;
}

static void test_snapshot_status_failed_when_nothing_listens(void **state)
{
	(void)state;
	int fd;
	int port = dead_port(&fd);
	struct world *w = world_new();
	node_start(w, 0, 1, NULL, 0);
	assert_int_equal(peer_net_add(w->nodes[0].net, 2, "127.0.0.1", port), 0);
	peer_net_send(w->nodes[0].net, snap_make(1, 2, 4096));
	assert_true(run_until(w, snap_failed_reported, 5000));
	/* While backing off, a second snapshot fails at once rather than waiting. */
	peer_net_send(w->nodes[0].net, snap_make(1, 2, 4096));
	run_for(w, 20);
	assert_int_equal(w->nodes[0].snap_failed[2], 2);
	assert_int_equal(w->nodes[0].snap_ok[2], 0);
	world_free(w);
	close(fd);
}

static void test_snapshot_status_failed_when_receiver_closes_mid_transfer(void **state)
{
	(void)state;
	struct world *w = world_new();
	peer_options_t o;
	peer_options_default(&o);
	o.cluster_id = CLUSTER + 7; /* the receiver closes on our HELLO */
	node_start(w, 0, 1, &o, 0);
	node_start(w, 1, 2, NULL, 0);
	world_mesh(w);
	peer_net_send(w->nodes[0].net, snap_make(1, 2, SNAP_BYTES));
	assert_true(run_until(w, snap_failed_reported, 10000));
	run_for(w, 20);
	assert_int_equal(w->nodes[0].snap_failed[2], 1);
	assert_int_equal(w->nodes[0].snap_ok[2], 0);
	assert_null(w->nodes[1].snap);
	world_free(w);
}

static bool small_snapshot_ok(struct world *w)
{
	return w->nodes[0].snap_ok[2] > 0 && w->nodes[1].snap;
}

static void test_snapshot_status_ok_for_a_small_snapshot(void **state)
{
	(void)state;
	struct world *w = world_new();
	peer_options_t o;
	peer_options_default(&o);
	o.cluster_id = CLUSTER;
	o.snap_chunk_size = 1000; /* several chunks even for a small one */
	node_start(w, 0, 1, &o, 0);
	node_start(w, 1, 2, &o, 0);
	world_mesh(w);
	peer_net_send(w->nodes[0].net, snap_make(1, 2, 10000));
	assert_true(run_until(w, small_snapshot_ok, 5000));
	run_for(w, 10);
	assert_int_equal(w->nodes[0].snap_ok[2], 1);
	assert_int_equal(w->nodes[0].snap_failed[2], 0);
	assert_int_equal(w->nodes[1].snap->snapshot->data.len, 10000);
	assert_int_equal(w->nodes[1].snap->snapshot->data.data[9999], snap_byte(9999));
	world_free(w);
}

/* ---- the decoder ---------------------------------------------------------------------- */

struct dev {
	int kind; /* 1 raft, 2 app */
	int type;
	uint64_t from, to, index;
	size_t n_entries;
	uint32_t crc; /* of entry data, snapshot data or app data */
	size_t len;
};

struct devlog {
	struct dev ev[64];
	size_t n;
	bool know_sender;
};

static void dec_raft(void *ud, raft_msg_t *m)
{
	struct devlog *l = ud;
	if (l->n < 64) {
		struct dev *e = &l->ev[l->n++];
		memset(e, 0, sizeof(*e));
		e->kind = 1;
		e->type = (int)m->type;
		e->from = m->from;
		e->to = m->to;
		e->index = m->index;
		e->n_entries = m->n_entries;
		for (size_t i = 0; i < m->n_entries; i++)
			e->crc = raft_crc32c(e->crc, m->entries[i]->data.data,
					     m->entries[i]->data.len);
		if (m->snapshot) {
			e->crc = raft_crc32c(e->crc, m->snapshot->data.data,
					     m->snapshot->data.len);
			e->len = m->snapshot->data.len;
		}
	}
	raft_msg_free(m);
}

static void dec_app(void *ud, uint64_t from, uint32_t kind, const uint8_t *data, size_t len)
{
	struct devlog *l = ud;
	if (l->n < 64) {
		struct dev *e = &l->ev[l->n++];
		memset(e, 0, sizeof(*e));
		e->kind = 2;
		e->type = (int)kind;
		e->from = from;
		e->crc = raft_crc32c(0, data, len);
		e->len = len;
	}
}

static bool dec_known(void *ud, uint64_t id)
{
	struct devlog *l = ud;
	return l->know_sender && id == 1;
}

static const peer_decoder_callbacks_t dec_cb = {
	.on_raft = dec_raft, .on_app = dec_app, .known_sender = dec_known};

struct bytes {
	uint8_t *p;
	size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void bytes_add_msg(struct bytes *b, raft_msg_t *m)
{
	size_t n;
	uint8_t *f = peer_frame_raft(m, &n);
	assert_non_null(f);
	bytes_add(b, f, n);
	free(f);
	raft_msg_free(m);
}

/* A valid stream from member 1 to member 2 of CLUSTER: HELLO, MsgApp, heartbeat, APP,
 * a MsgSnap in chunks of `chunk` bytes, MsgAppResp. Used by the tests and the fuzz seeds. */
static struct bytes stream_make(size_t snap_bytes, size_t chunk)
{
	struct bytes b = {0};
	uint8_t hello[PEER_FRAME_HELLO_SIZE];
	peer_frame_hello(hello, 1, 2, CLUSTER);
	bytes_add(&b, hello, sizeof(hello));
	bytes_add_msg(&b, msg_make(RAFT_MSG_APP, 1, 2, 7));
	bytes_add_msg(&b, msg_make(RAFT_MSG_HEARTBEAT, 1, 2, 0));
	size_t n;
	uint8_t *f = peer_frame_app(9, "app-data", 8, &n);
	bytes_add(&b, f, n);
	free(f);
	raft_msg_t *s = snap_make(1, 2, snap_bytes);
	size_t total = raftpb__message__get_packed_size(s);
	uint8_t *packed = malloc(total);
	raftpb__message__pack(s, packed);
	raft_msg_free(s);
	for (size_t off = 0; off < total; off += chunk) {
		size_t len = total - off < chunk ? total - off : chunk;
		uint8_t h[PEER_FRAME_SNAP_HEADER_SIZE];
		uv_buf_t piece = uv_buf_init((char *)packed + off, (unsigned)len);
		peer_frame_snap_header(h, total, off, &piece, 1);
		bytes_add(&b, h, sizeof(h));
		bytes_add(&b, packed + off, len);
	}
	free(packed);
	bytes_add_msg(&b, msg_make(RAFT_MSG_APP_RESP, 1, 2, 8));
	return b;
}

static peer_options_t dec_opt(void)
{
	peer_options_t o;
	peer_options_default(&o);
	o.cluster_id = CLUSTER;
	return o;
}

/* Feeds data in pieces of `step` bytes (0: all at once); returns the first error. */
static int dec_run(const uint8_t *data, size_t len, size_t step, struct devlog *l, char *err,
		   size_t errlen)
{
	peer_options_t o = dec_opt();
	memset(l, 0, sizeof(*l));
	l->know_sender = true;
	peer_decoder_t *d = peer_decoder_new(2, &o, &dec_cb, l);
	assert_non_null(d);
	int rc = 0;
	if (!step)
		step = len ? len : 1;
	for (size_t off = 0; off < len && rc == 0; off += step)
		rc = peer_decoder_feed(d, data + off, len - off < step ? len - off : step, err,
				       errlen);
	peer_decoder_free(d);
	return rc;
}

static bool devlog_is_prefix(const struct devlog *a, const struct devlog *full)
{
	if (a->n > full->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (memcmp(&a->ev[i], &full->ev[i], sizeof(a->ev[i])))
			return false;
	return true;
}

static void test_decoder_reads_a_valid_stream_in_any_split(void **state)
{
	(void)state;
	struct bytes s = stream_make(1000, 300);
	struct devlog full, l;
	char err[256] = "";
	assert_int_equal(dec_run(s.p, s.len, 0, &full, err, sizeof(err)), 0);
	assert_int_equal(full.n, 5); /* app, heartbeat, APP, snap, app resp */
	assert_int_equal(full.ev[0].index, 7);
	assert_int_equal(full.ev[2].kind, 2);
	assert_int_equal(full.ev[2].type, 9);
	assert_int_equal(full.ev[3].type, RAFT_MSG_SNAP);
	assert_int_equal(full.ev[3].len, 1000);
	assert_int_equal(full.ev[4].type, RAFT_MSG_APP_RESP);
	for (size_t step = 1; step <= 64; step++) {
		assert_int_equal(dec_run(s.p, s.len, step, &l, err, sizeof(err)), 0);
		assert_int_equal(l.n, full.n);
		assert_true(devlog_is_prefix(&l, &full));
	}
	free(s.p);
}

static void test_decoder_truncations_and_byte_flips_decode_same_or_fail(void **state)
{
	(void)state;
	struct bytes s = stream_make(600, 200);
	struct devlog full, l;
	char err[256];
	assert_int_equal(dec_run(s.p, s.len, 0, &full, err, sizeof(err)), 0);
	/* A truncated valid stream is never an error: it is a prefix waiting for more. */
	for (size_t n = 0; n <= s.len; n++) {
		assert_int_equal(dec_run(s.p, n, 0, &l, err, sizeof(err)), 0);
		assert_true(devlog_is_prefix(&l, &full));
	}
	uint8_t *c = malloc(s.len);
	size_t failures = 0;
	static const uint8_t masks[] = {0x01, 0x10, 0x80, 0xff};
	for (size_t i = 0; i < s.len; i++) {
		for (size_t k = 0; k < sizeof(masks); k++) {
			memcpy(c, s.p, s.len);
			c[i] ^= masks[k];
			err[0] = 0;
			int rc = dec_run(c, s.len, k % 2 ? 7 : 0, &l, err, sizeof(err));
			/* What was delivered is exactly what the intact stream delivers. */
			if (!devlog_is_prefix(&l, &full))
				fail_msg("flip %02x at %zu delivered something else", masks[k], i);
			if (rc < 0) {
				assert_true(err[0] != 0);
				failures++;
			} else {
				/* No error means the damage left the stream unfinished. */
				assert_true(l.n < full.n);
			}
		}
	}
	assert_true(failures > 0);
	free(c);
	free(s.p);
}

static int dec_one(const uint8_t *data, size_t len, bool known, char *err, size_t errlen,
		   struct devlog *l)
{
	peer_options_t o = dec_opt();
	o.max_frame_size = 1024;
	memset(l, 0, sizeof(*l));
	l->know_sender = known;
	peer_decoder_t *d = peer_decoder_new(2, &o, &dec_cb, l);
	int rc = peer_decoder_feed(d, data, len, err, errlen);
	peer_decoder_free(d);
	return rc;
}

static void test_decoder_refuses_oversize_length(void **state)
{
	(void)state;
	uint8_t buf[PEER_FRAME_HELLO_SIZE + 9] = {0};
	peer_frame_hello(buf, 1, 2, CLUSTER);
	/* A header claiming 1025 bytes against a limit of 1024. */
	uint8_t *h = buf + PEER_FRAME_HELLO_SIZE;
	h[0] = 0, h[1] = 0, h[2] = 0x04, h[3] = 0x01, h[4] = 2;
	char err[256] = "";
	struct devlog l;
	assert_true(dec_one(buf, sizeof(buf), true, err, sizeof(err), &l) < 0);
	assert_non_null(strstr(err, "exceeds"));
	/* Exactly at the limit the header is fine: the decoder waits for the payload. */
	h[3] = 0x00;
	assert_int_equal(dec_one(buf, sizeof(buf), true, err, sizeof(err), &l), 0);
	/* And the stream stays failed once it failed. */
	peer_options_t o = dec_opt();
	o.max_frame_size = 1024;
	peer_decoder_t *d = peer_decoder_new(2, &o, &dec_cb, &l);
	h[3] = 0x01;
	assert_true(peer_decoder_feed(d, buf, sizeof(buf), err, sizeof(err)) < 0);
	assert_true(peer_decoder_feed(d, buf, PEER_FRAME_HELLO_SIZE, err, sizeof(err)) < 0);
	peer_decoder_free(d);
}

static void test_decoder_refuses_bad_handshakes_and_strangers(void **state)
{
	(void)state;
	char err[256];
	struct devlog l;
	struct bytes s = {0};
	uint8_t hello[PEER_FRAME_HELLO_SIZE];
	static const struct {
		uint64_t from, to, cluster;
		bool known;
		const char *why;
	} cases[] = {
		{1, 2, CLUSTER + 1, true, "cluster"},
		{1, 3, CLUSTER, true, "for member"},
		{1, 2, CLUSTER, false, "unknown member"},
		{2, 2, CLUSTER, true, "invalid sender"},
		{0, 2, CLUSTER, true, "invalid sender"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s.len = 0;
		peer_frame_hello(hello, cases[i].from, cases[i].to, cases[i].cluster);
		bytes_add(&s, hello, sizeof(hello));
		bytes_add_msg(&s, msg_make(RAFT_MSG_APP, cases[i].from, 2, 1));
		err[0] = 0;
		assert_true(dec_one(s.p, s.len, cases[i].known, err, sizeof(err), &l) < 0);
		assert_non_null(strstr(err, cases[i].why));
		assert_int_equal(l.n, 0);
	}
	/* A frame before HELLO, a second HELLO, a message for someone else or from someone
	 * other than the HELLO's sender: all close the connection. */
	s.len = 0;
	bytes_add_msg(&s, msg_make(RAFT_MSG_APP, 1, 2, 1));
	assert_true(dec_one(s.p, s.len, true, err, sizeof(err), &l) < 0);
	assert_non_null(strstr(err, "before HELLO"));
	peer_frame_hello(hello, 1, 2, CLUSTER);
	const struct {
		uint64_t from, to;
		const char *why;
	} bad[] = {{1, 3, "another member"}, {4, 2, "not from"}};
	for (size_t i = 0; i < 2; i++) {
		s.len = 0;
		bytes_add(&s, hello, sizeof(hello));
		bytes_add_msg(&s, msg_make(RAFT_MSG_APP, bad[i].from, bad[i].to, 1));
		assert_true(dec_one(s.p, s.len, true, err, sizeof(err), &l) < 0);
		assert_non_null(strstr(err, bad[i].why));
		assert_int_equal(l.n, 0);
	}
	s.len = 0;
	bytes_add(&s, hello, sizeof(hello));
	bytes_add(&s, hello, sizeof(hello));
	assert_true(dec_one(s.p, s.len, true, err, sizeof(err), &l) < 0);
	assert_non_null(strstr(err, "second HELLO"));
	free(s.p);
}

static void test_decoder_refuses_snapshot_chunks_out_of_order(void **state)
{
	(void)state;
	char err[256];
	struct devlog l;
	uint8_t hello[PEER_FRAME_HELLO_SIZE], h[PEER_FRAME_SNAP_HEADER_SIZE];
	uint8_t data[100];
	memset(data, 7, sizeof(data));
	peer_frame_hello(hello, 1, 2, CLUSTER);
	const struct {
		uint64_t total1, off1, total2, off2;
	} cases[] = {
		{200, 0, 200, 150}, /* a gap */
		{200, 0, 300, 100}, /* the total changes */
		{200, 0, 200, 0},   /* restarted midway */
		{150, 0, 150, 100}, /* runs past the total */
		{200, 100, 200, 0}, /* starts in the middle */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bytes s = {0};
		bytes_add(&s, hello, sizeof(hello));
		uv_buf_t piece = uv_buf_init((char *)data, sizeof(data));
		peer_frame_snap_header(h, cases[i].total1, cases[i].off1, &piece, 1);
		bytes_add(&s, h, sizeof(h));
		bytes_add(&s, data, sizeof(data));
		peer_frame_snap_header(h, cases[i].total2, cases[i].off2, &piece, 1);
		bytes_add(&s, h, sizeof(h));
		bytes_add(&s, data, sizeof(data));
		assert_true(dec_one(s.p, s.len, true, err, sizeof(err), &l) < 0);
		assert_int_equal(l.n, 0);
		free(s.p);
	}
	/* Complete, but not a MsgSnap: refused too. */
	raft_msg_t *m = msg_make(RAFT_MSG_APP, 1, 2, 1);
	size_t total = raftpb__message__get_packed_size(m);
	uint8_t *packed = malloc(total);
	raftpb__message__pack(m, packed);
	raft_msg_free(m);
	struct bytes s = {0};
	bytes_add(&s, hello, sizeof(hello));
	uv_buf_t whole = uv_buf_init((char *)packed, (unsigned)total);
	peer_frame_snap_header(h, total, 0, &whole, 1);
	bytes_add(&s, h, sizeof(h));
	bytes_add(&s, packed, total);
	assert_true(dec_one(s.p, s.len, true, err, sizeof(err), &l) < 0);
	assert_non_null(strstr(err, "not a MsgSnap"));
	free(packed);
	free(s.p);
}

/* ---- fuzz seeds ------------------------------------------------------------------------- */

/* `unit_peer --write-seeds DIR` writes the fuzz target's seed inputs: a mode byte
 * (f << 7 | n), n piece sizes (each + 1), then a valid stream (see tests/fuzz/fuzz_peer.c). */
static int write_seeds(const char *dir)
{
	const struct {
		const char *name;
		size_t snap, chunk;
		uint8_t n_sizes, sizes[3];
	} seeds[] = {
		{"stream-whole", 300, 100, 0, {0}},
		{"stream-pieces-fixcrc", 300, 100, 0x80 | 3, {0, 6, 200}},
		{"stream-bytewise-one-chunk-snap", 64, 4096, 1, {0}},
	};
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		struct bytes s = stream_make(seeds[i].snap, seeds[i].chunk);
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", dir, seeds[i].name);
		FILE *f = fopen(path, "wb");
		if (!f) {
			perror(path);
			free(s.p);
			return 1;
		}
		fputc(seeds[i].n_sizes, f);
		fwrite(seeds[i].sizes, 1, seeds[i].n_sizes & 0x7f, f);
		fwrite(s.p, 1, s.len, f);
		fclose(f);
		free(s.p);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--write-seeds"))
		return write_seeds(argv[2]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_transports_exchange_messages_in_order),
		cmocka_unit_test(test_three_transports_exchange_messages_in_order),
		cmocka_unit_test(test_messages_queued_in_one_turn_go_out_in_one_write),
		cmocka_unit_test(test_app_frames_arrive_with_kind_and_sender),
		cmocka_unit_test(test_listens_on_several_addresses),
		cmocka_unit_test(test_restarted_peer_gets_messages_after_reconnect),
		cmocka_unit_test(test_backoff_doubles_and_caps),
		cmocka_unit_test(test_unreachable_reported_once_per_attempt_when_nothing_listens),
		cmocka_unit_test(test_queue_cap_drops_and_reports_unreachable_once),
		cmocka_unit_test(test_connect_that_hangs_times_out_and_reports_unreachable),
		cmocka_unit_test(test_hello_with_wrong_cluster_is_refused),
		cmocka_unit_test(test_hello_for_wrong_receiver_is_refused),
		cmocka_unit_test(test_hello_from_unknown_sender_is_refused),
		cmocka_unit_test(test_big_snapshot_arrives_intact_and_heartbeats_overtake_it),
		cmocka_unit_test(test_snapshot_status_failed_when_nothing_listens),
		cmocka_unit_test(test_snapshot_status_failed_when_receiver_closes_mid_transfer),
		cmocka_unit_test(test_snapshot_status_ok_for_a_small_snapshot),
		cmocka_unit_test(test_decoder_reads_a_valid_stream_in_any_split),
		cmocka_unit_test(test_decoder_truncations_and_byte_flips_decode_same_or_fail),
		cmocka_unit_test(test_decoder_refuses_oversize_length),
		cmocka_unit_test(test_decoder_refuses_bad_handshakes_and_strangers),
		cmocka_unit_test(test_decoder_refuses_snapshot_chunks_out_of_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
