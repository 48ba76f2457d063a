/* tests/unit/test_peer_members.c — the membership side of the peer transport: the ASK a
 * joining member opens a connection with and its MEMBERS answer, the REMOVED notice a
 * removed member gets (when removed, and on every later HELLO), and the decoder's and
 * parser's refusals of bad ASK and answer frames. 127.0.0.1, ports picked at run time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "peer.h"
#include "rpc.pb-c.h"

#define CLUSTER 0xC1u

/* ---- the decoder and the parser ---------------------------------------------------- */

typedef struct seen {
	int asks, rafts;
} seen_t;

static void dec_ask(void *ud)
{
	((seen_t *)ud)->asks++;
}

static void dec_raft(void *ud, raft_msg_t *m)
{
	((seen_t *)ud)->rafts++;
	raft_msg_free(m);
}

static peer_decoder_t *decoder(seen_t *seen, bool answers)
{
	peer_options_t opt;
	peer_options_default(&opt);
	opt.cluster_id = CLUSTER;
	peer_decoder_callbacks_t cb = {.on_raft = dec_raft, .on_ask = answers ? dec_ask : NULL};
	peer_decoder_t *d = peer_decoder_new(1, &opt, &cb, seen);
	assert_non_null(d);
	return d;
}

static void test_ask_opens_a_connection_and_nothing_follows_it(void **state)
{
	(void)state;
	seen_t seen = {0};
	peer_decoder_t *d = decoder(&seen, true);
	uint8_t ask[PEER_FRAME_ASK_SIZE], hello[PEER_FRAME_HELLO_SIZE];
	peer_frame_ask(ask);
	char err[256];
	assert_int_equal(peer_decoder_feed(d, ask, sizeof(ask), err, sizeof(err)), 0);
	assert_int_equal(seen.asks, 1);
	peer_frame_hello(hello, 2, 1, CLUSTER);
	assert_true(peer_decoder_feed(d, hello, sizeof(hello), err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "after ASK"));
	peer_decoder_free(d);
}

static void test_ask_refused_where_nobody_answers_or_after_hello(void **state)
{
	(void)state;
	seen_t seen = {0};
	uint8_t ask[PEER_FRAME_ASK_SIZE], hello[PEER_FRAME_HELLO_SIZE];
	char err[256];
	peer_frame_ask(ask);
	peer_decoder_t *d = decoder(&seen, false);
	assert_true(peer_decoder_feed(d, ask, sizeof(ask), err, sizeof(err)) < 0);
	peer_decoder_free(d);
	d = decoder(&seen, true);
	peer_frame_hello(hello, 2, 1, CLUSTER);
	assert_int_equal(peer_decoder_feed(d, hello, sizeof(hello), err, sizeof(err)), 0);
	assert_true(peer_decoder_feed(d, ask, sizeof(ask), err, sizeof(err)) < 0);
	peer_decoder_free(d);
	assert_int_equal(seen.asks, 0);
}

static void test_ask_of_another_version_is_refused(void **state)
{
	(void)state;
	seen_t seen = {0};
	peer_decoder_t *d = decoder(&seen, true);
	/* a well-formed ASK frame (type 5) but of frame version 2 */
	uint8_t ask[PEER_FRAME_ASK_SIZE] = {0, 0, 0, 9, 5, 0, 0, 0, 0, 0, 0, 0, 2};
	uint32_t crc = raft_crc32c(raft_crc32c(0, ask + 4, 1), ask + PEER_FRAME_HEADER_SIZE, 4);
	for (int i = 0; i < 4; i++)
		ask[5 + i] = (uint8_t)(crc >> (24 - 8 * i));
	char err[256];
	assert_true(peer_decoder_feed(d, ask, sizeof(ask), err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "ASK"));
	peer_decoder_free(d);
	assert_int_equal(seen.asks, 0);
}

static void test_parse_takes_whole_frames_only(void **state)
{
	(void)state;
	uint8_t f[PEER_FRAME_REMOVED_SIZE];
	peer_frame_removed(f, 0x1234);
	uint8_t type;
	const uint8_t *pl;
	size_t plen;
	for (size_t n = 0; n < sizeof(f); n++)
		assert_int_equal(peer_frame_parse(f, n, 1024, &type, &pl, &plen), 0);
	assert_int_equal(peer_frame_parse(f, sizeof(f), 1024, &type, &pl, &plen),
			 PEER_FRAME_REMOVED_SIZE);
	assert_int_equal(type, PEER_FRAME_REMOVED);
	assert_int_equal(plen, 8);
	f[sizeof(f) - 1] ^= 1; /* damaged: the checksum says so */
	assert_int_equal(peer_frame_parse(f, sizeof(f), 1024, &type, &pl, &plen), -1);
	uint8_t big[PEER_FRAME_HEADER_SIZE] = {0xff, 0xff, 0xff, 0xff};
	assert_int_equal(peer_frame_parse(big, sizeof(big), 1024, &type, &pl, &plen), -1);
	uint8_t tiny[PEER_FRAME_HEADER_SIZE] = {0, 0, 0, 2};
	assert_int_equal(peer_frame_parse(tiny, sizeof(tiny), 1024, &type, &pl, &plen), -1);
}

/* ---- two transports on a loop ------------------------------------------------------- */

typedef struct side {
	peer_net_t *net;
	uint64_t id;
	int removed_by;              /* on_removed calls */
	uint64_t removed_from;
	bool knows_removed;          /* is_removed answers yes for every unknown id */
	int asked;
	int heartbeats;              /* raft messages received */
} side_t;

static void cb_raft(void *ud, raft_msg_t *m)
{
	((side_t *)ud)->heartbeats++;
	raft_msg_free(m);
}

static bool cb_is_removed(void *ud, uint64_t id)
{
	(void)id;
	return ((side_t *)ud)->knows_removed;
}

static void cb_removed(void *ud, uint64_t by)
{
	side_t *s = ud;
	s->removed_by++;
	s->removed_from = by;
}

static int cb_members(void *ud, uint8_t **data, size_t *len)
{
	side_t *s = ud;
	s->asked++;
	Etcdserverpb__MemberListResponse r = ETCDSERVERPB__MEMBER_LIST_RESPONSE__INIT;
	Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	h.cluster_id = CLUSTER;
	h.member_id = s->id;
	r.header = &h;
	*len = etcdserverpb__member_list_response__get_packed_size(&r);
	*data = malloc(*len ? *len : 1);
	etcdserverpb__member_list_response__pack(&r, *data);
	return 0;
}

static void cb_log(void *ud, const char *level, const char *line)
{
	(void)ud;
	if (getenv("PEER_DEBUG"))
		fprintf(stderr, "%s %s\n", level, line);
}

static const peer_callbacks_t side_cb = {
	.on_raft = cb_raft, .on_log = cb_log, .is_removed = cb_is_removed, .on_removed = cb_removed,
	.members = cb_members,
};

static void side_open(uv_loop_t *loop, side_t *s, uint64_t id)
{
	peer_options_t opt;
	peer_options_default(&opt);
	opt.cluster_id = CLUSTER;
	s->id = id;
	assert_int_equal(peer_net_new(loop, id, &opt, &side_cb, s, &s->net), 0);
	char err[256];
	assert_int_equal(peer_net_listen(s->net, "127.0.0.1", 0, err, sizeof(err)), 0);
}

static void run_until(uv_loop_t *loop, bool (*done)(void *), void *arg)
{
	uint64_t deadline = uv_hrtime() + 5000000000ull;
	while (!done(arg) && uv_hrtime() < deadline)
		uv_run(loop, UV_RUN_NOWAIT);
	assert_true(done(arg));
}

static bool removed_seen(void *arg)
{
	return ((side_t *)arg)->removed_by > 0;
}

/* Each side heard the other: both HELLOs were accepted. */
static bool link_open(void *arg)
{
	side_t *s = arg;
	return s[0].heartbeats && s[1].heartbeats && peer_net_active_since(s[1].net, s[0].id) &&
	       peer_net_active_since(s[0].net, s[1].id);
}

static void heartbeat(side_t *from, side_t *to)
{
	raft_msg_t *m = calloc(1, sizeof(*m));
	raftpb__message__init(m);
	m->type = RAFT_MSG_HEARTBEAT;
	m->from = from->id;
	m->to = to->id;
	peer_net_send(from->net, m);
}

static void close_all(uv_loop_t *loop, side_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		peer_net_close(s[i].net, NULL, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(loop), 0);
}

/* A member removed while connected hears it at once on its own connection. */
static void test_removed_peer_is_told_on_its_connection(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	side_t s[2] = {{0}};
	side_open(&loop, &s[0], 1);
	side_open(&loop, &s[1], 2);
	assert_int_equal(peer_net_add(s[0].net, 2, "127.0.0.1", peer_net_port(s[1].net)), 0);
	assert_int_equal(peer_net_add(s[1].net, 1, "127.0.0.1", peer_net_port(s[0].net)), 0);
	heartbeat(&s[0], &s[1]);
	heartbeat(&s[1], &s[0]);
	run_until(&loop, link_open, s);
	peer_net_remove(s[1].net, 1);
	assert_int_equal(peer_net_active_since(s[1].net, 1), 0);
	run_until(&loop, removed_seen, &s[0]);
	assert_int_equal(s[0].removed_from, 2);
	assert_int_equal(s[1].removed_by, 0);
	close_all(&loop, s, 2);
}

/* A removed member that dials again (a restart) is refused with the same notice. */
static void test_hello_from_removed_member_gets_removed_notice(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	side_t s[2] = {{0}};
	side_open(&loop, &s[0], 1);
	side_open(&loop, &s[1], 2);
	s[1].knows_removed = true; /* 2 does not know 1 any more: removed */
	assert_int_equal(peer_net_add(s[0].net, 2, "127.0.0.1", peer_net_port(s[1].net)), 0);
	heartbeat(&s[0], &s[1]);
	run_until(&loop, removed_seen, &s[0]);
	assert_int_equal(s[0].removed_from, 2);
	close_all(&loop, s, 2);
}

/* An unknown member that is not a removed one is only refused: no notice. */
static void test_hello_from_unknown_member_is_not_told_removed(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	side_t s[2] = {{0}};
	side_open(&loop, &s[0], 1);
	side_open(&loop, &s[1], 2);
	assert_int_equal(peer_net_add(s[0].net, 2, "127.0.0.1", peer_net_port(s[1].net)), 0);
	heartbeat(&s[0], &s[1]);
	uint64_t until = uv_hrtime() + 300000000ull;
	while (uv_hrtime() < until)
		uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(s[0].removed_by, 0);
	peer_stats_t st;
	assert_int_equal(peer_net_stats(s[0].net, 2, &st), 0);
	assert_true(st.connect_failures > 0);
	close_all(&loop, s, 2);
}

/* The blocking ask runs on its own thread while the answering loop turns. */
typedef struct ask_job {
	int port, rc;
	uint8_t *out;
	size_t len;
	char err[256];
	volatile int done;
} ask_job_t;

static void ask_thread(void *arg)
{
	ask_job_t *j = arg;
	j->rc = peer_ask_members("127.0.0.1", j->port, 3000, &j->out, &j->len, j->err,
				 sizeof(j->err));
	__atomic_store_n(&j->done, 1, __ATOMIC_SEQ_CST);
}

static bool ask_done(void *arg)
{
	return __atomic_load_n(&((ask_job_t *)arg)->done, __ATOMIC_SEQ_CST);
}

static void test_ask_gets_the_membership_from_a_member(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	side_t s = {0};
	side_open(&loop, &s, 7);
	ask_job_t j = {.port = peer_net_port(s.net)};
	uv_thread_t t;
	assert_int_equal(uv_thread_create(&t, ask_thread, &j), 0);
	run_until(&loop, ask_done, &j);
	uv_thread_join(&t);
	assert_int_equal(j.rc, 0);
	assert_int_equal(s.asked, 1);
	Etcdserverpb__MemberListResponse *r =
		etcdserverpb__member_list_response__unpack(NULL, j.len, j.out);
	assert_non_null(r);
	assert_non_null(r->header);
	assert_int_equal(r->header->cluster_id, CLUSTER);
	assert_int_equal(r->header->member_id, 7);
	etcdserverpb__member_list_response__free_unpacked(r, NULL);
	free(j.out);
	side_t none[1] = {s};
	close_all(&loop, none, 1);
}

static void test_ask_without_anyone_listening_fails_with_a_message(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	side_t s = {0};
	side_open(&loop, &s, 7);
	int port = peer_net_port(s.net);
	side_t none[1] = {s};
	close_all(&loop, none, 1); /* the port is free again */
	uint8_t *out = (uint8_t *)"x";
	size_t len = 1;
	char err[256] = "";
	assert_int_equal(peer_ask_members("127.0.0.1", port, 1000, &out, &len, err, sizeof(err)),
			 -1);
	assert_null(out);
	assert_non_null(strstr(err, "asking 127.0.0.1:"));
	assert_int_equal(peer_ask_members("not-an-ip", 1, 100, &out, &len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a numeric address"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ask_opens_a_connection_and_nothing_follows_it),
		cmocka_unit_test(test_ask_refused_where_nobody_answers_or_after_hello),
		cmocka_unit_test(test_ask_of_another_version_is_refused),
		cmocka_unit_test(test_parse_takes_whole_frames_only),
		cmocka_unit_test(test_removed_peer_is_told_on_its_connection),
		cmocka_unit_test(test_hello_from_removed_member_gets_removed_notice),
		cmocka_unit_test(test_hello_from_unknown_member_is_not_told_removed),
		cmocka_unit_test(test_ask_gets_the_membership_from_a_member),
		cmocka_unit_test(test_ask_without_anyone_listening_fails_with_a_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
