/* tests/unit/test_memstorage.c — the in-memory storage the core reads its log through:
 * indices, terms, bounded reads, truncating appends, snapshots, compaction and errors. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ms_fixture {
	raft_memstorage_t *ms;
	raft_storage_t s;
} ms_fixture_t;

static int ms_setup(void **state)
{
	ms_fixture_t *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->ms = raft_memstorage_new();
	assert_non_null(f->ms);
	f->s = raft_memstorage_storage(f->ms);
	*state = f;
	return 0;
}

static int ms_teardown(void **state)
{
	ms_fixture_t *f = *state;
	raft_memstorage_free(f->ms);
	free(f);
	return 0;
}

/* Appends entries lo, lo+1, ... with the given terms and data "d<index>" (10 bytes). */
static int ms_append(ms_fixture_t *f, uint64_t lo, const uint64_t *terms, size_t n)
{
	raft_entry_t *ents[64];
	assert_true(n <= 64);
	for (size_t i = 0; i < n; i++) {
		char data[16];
		snprintf(data, sizeof(data), "d%09llu", (unsigned long long)(lo + i));
		ents[i] = raft_entry_new(terms[i], lo + i, RAFT_ENTRY_NORMAL, data, 10);
		assert_non_null(ents[i]);
	}
	int rc = raft_memstorage_append(f->ms, ents, n);
	for (size_t i = 0; i < n; i++)
		raft_entry_free(ents[i]);
	return rc;
}

static uint64_t ms_first(ms_fixture_t *f)
{
	uint64_t i = 0;
	assert_int_equal(f->s.ops->first_index(f->s.ctx, &i), RAFT_OK);
	return i;
}

static uint64_t ms_last(ms_fixture_t *f)
{
	uint64_t i = 0;
	assert_int_equal(f->s.ops->last_index(f->s.ctx, &i), RAFT_OK);
	return i;
}

static int ms_term(ms_fixture_t *f, uint64_t index, uint64_t *term)
{
	*term = 0;
	return f->s.ops->term(f->s.ctx, index, term);
}

static int ms_entries(ms_fixture_t *f, uint64_t lo, uint64_t hi, uint64_t max, size_t *n)
{
	raft_entry_t *out[64];
	*n = 0;
	assert_true(hi - lo <= 64);
	return f->s.ops->entries(f->s.ctx, lo, hi, max, out, n);
}

static const uint64_t five_terms[] = {1, 1, 2, 2, 3};

static void test_memstorage_starts_empty(void **state)
{
	ms_fixture_t *f = *state;
	raft_hard_state_t hs = {9, 9, 9};
	uint64_t term = 7;
	const raft_snapshot_t *snap = NULL;

	assert_int_equal(ms_first(f), 1);
	assert_int_equal(ms_last(f), 0);
	assert_int_equal(ms_term(f, 0, &term), RAFT_OK);
	assert_int_equal(term, 0);
	assert_int_equal(f->s.ops->initial_state(f->s.ctx, &hs), RAFT_OK);
	assert_int_equal(hs.term, 0);
	assert_int_equal(hs.vote, 0);
	assert_int_equal(hs.commit, 0);
	assert_int_equal(f->s.ops->snapshot(f->s.ctx, &snap), RAFT_OK);
	assert_non_null(snap);
	uint64_t snap_index = snap->metadata ? snap->metadata->index : 0;
	assert_int_equal(snap_index, 0);
}

static void test_memstorage_hard_state_round_trip(void **state)
{
	ms_fixture_t *f = *state;
	raft_hard_state_t in = {.term = 5, .vote = 3, .commit = 2}, out = {0};
	assert_int_equal(raft_memstorage_set_hard_state(f->ms, &in), RAFT_OK);
	assert_int_equal(f->s.ops->initial_state(f->s.ctx, &out), RAFT_OK);
	assert_int_equal(out.term, 5);
	assert_int_equal(out.vote, 3);
	assert_int_equal(out.commit, 2);
}

static void test_memstorage_append_then_read_entries_and_terms(void **state)
{
	ms_fixture_t *f = *state;
	raft_entry_t *out[8];
	size_t n = 0;
	uint64_t term;

	assert_int_equal(ms_append(f, 1, five_terms, 5), RAFT_OK);
	assert_int_equal(ms_first(f), 1);
	assert_int_equal(ms_last(f), 5);
	for (uint64_t i = 1; i <= 5; i++) {
		assert_int_equal(ms_term(f, i, &term), RAFT_OK);
		assert_int_equal(term, five_terms[i - 1]);
	}
	assert_int_equal(f->s.ops->entries(f->s.ctx, 2, 5, UINT64_MAX, out, &n), RAFT_OK);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(out[i]->index, 2 + i);
		assert_int_equal(out[i]->term, five_terms[1 + i]);
		assert_int_equal(out[i]->data.len, 10);
	}
	assert_memory_equal(out[0]->data.data, "d000000002", 10);
}

/* Sums the data bytes of entries [lo, hi) read with max_bytes; returns the count. */
static size_t ms_read_bytes(ms_fixture_t *f, uint64_t lo, uint64_t hi, uint64_t max,
			    uint64_t *bytes)
{
	raft_entry_t *out[64];
	size_t n = 0;
	assert_int_equal(f->s.ops->entries(f->s.ctx, lo, hi, max, out, &n), RAFT_OK);
	*bytes = 0;
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(out[i]->index, lo + i);
		*bytes += out[i]->data.len;
	}
	return n;
}

static void test_memstorage_entries_stop_at_max_bytes(void **state)
{
	ms_fixture_t *f = *state;
	uint64_t bytes;
	assert_int_equal(ms_append(f, 1, five_terms, 5), RAFT_OK);

	assert_int_equal(ms_read_bytes(f, 1, 6, UINT64_MAX, &bytes), 5);
	/* a limit that holds some but not all entries stops early, never above it */
	size_t prev = 0;
	for (uint64_t max = 25; max <= 400; max += 25) {
		size_t n = ms_read_bytes(f, 1, 6, max, &bytes);
		assert_true(n >= 1);
		assert_true(n >= prev);
		if (n > 1)
			assert_true(bytes <= max);
		prev = n;
	}
	assert_int_equal(prev, 5);
	assert_true(ms_read_bytes(f, 1, 6, 60, &bytes) < 5);
}

static void test_memstorage_entries_return_at_least_one(void **state)
{
	ms_fixture_t *f = *state;
	size_t n;
	assert_int_equal(ms_append(f, 1, five_terms, 5), RAFT_OK);
	assert_int_equal(ms_entries(f, 3, 6, 0, &n), RAFT_OK);
	assert_int_equal(n, 1);
	assert_int_equal(ms_entries(f, 3, 6, 5, &n), RAFT_OK);
	assert_int_equal(n, 1);
}

static void test_memstorage_entries_past_last_are_unavailable(void **state)
{
	ms_fixture_t *f = *state;
	size_t n;
	uint64_t term;
	assert_int_equal(ms_append(f, 1, five_terms, 5), RAFT_OK);
	assert_int_equal(ms_entries(f, 4, 8, UINT64_MAX, &n), RAFT_ERR_UNAVAILABLE);
	assert_int_equal(ms_term(f, 6, &term), RAFT_ERR_UNAVAILABLE);
}

static void test_memstorage_compacted_reads_fail(void **state)
{
	ms_fixture_t *f = *state;
	raft_conf_t conf = {.n_voters = 1, .voters = {1}};
	size_t n;
	uint64_t term;

	assert_int_equal(ms_append(f, 1, five_terms, 5), RAFT_OK);
	assert_int_equal(raft_memstorage_create_snapshot(f->ms, 3, &conf, "s", 1), RAFT_OK);
	assert_int_equal(raft_memstorage_compact(f->ms, 3), RAFT_OK);

	assert_int_equal(ms_first(f), 4);
	assert_int_equal(ms_last(f), 5);
	assert_int_equal(ms_entries(f, 2, 5, UINT64_MAX, &n), RAFT_ERR_COMPACTED);
	assert_int_equal(ms_entries(f, 3, 5, UINT64_MAX, &n), RAFT_ERR_COMPACTED);
	assert_int_equal(ms_term(f, 2, &term), RAFT_ERR_COMPACTED);
	/* the entry at first_index-1 still answers its term */
	assert_int_equal(ms_term(f, 3, &term), RAFT_OK);
	assert_int_equal(term, 2);
	assert_int_equal(ms_entries(f, 4, 6, UINT64_MAX, &n), RAFT_OK);
	assert_int_equal(n, 2);
}

static void test_memstorage_compact_twice_is_compacted(void **state)
{
	ms_fixture_t *f = *state;
	raft_conf_t conf = {.n_voters = 1, .voters = {1}};
	assert_int_equal(ms_append(f, 1, five_terms, 5), RAFT_OK);
	assert_int_equal(raft_memstorage_create_snapshot(f->ms, 4, &conf, NULL, 0), RAFT_OK);
	assert_int_equal(raft_memstorage_compact(f->ms, 3), RAFT_OK);
	assert_int_equal(raft_memstorage_compact(f->ms, 2), RAFT_ERR_COMPACTED);
	assert_int_equal(raft_memstorage_compact(f->ms, 3), RAFT_ERR_COMPACTED);
	assert_int_equal(ms_first(f), 4);
	assert_int_equal(raft_memstorage_compact(f->ms, 4), RAFT_OK);
	assert_int_equal(ms_first(f), 5);
}

static void test_memstorage_compact_past_snapshot_refused(void **state)
{
	ms_fixture_t *f = *state;
	raft_conf_t conf = {.n_voters = 1, .voters = {1}};
	assert_int_equal(ms_append(f, 1, five_terms, 5), RAFT_OK);
	assert_int_equal(raft_memstorage_create_snapshot(f->ms, 2, &conf, NULL, 0), RAFT_OK);
	assert_int_not_equal(raft_memstorage_compact(f->ms, 4), RAFT_OK);
	assert_int_not_equal(raft_memstorage_compact(f->ms, 9), RAFT_OK);
	assert_int_equal(ms_first(f), 1);
	assert_int_equal(ms_last(f), 5);
}

static void test_memstorage_append_truncates_conflicting_suffix(void **state)
{
	ms_fixture_t *f = *state;
	const uint64_t t2[] = {2, 2};
	uint64_t term;
	assert_int_equal(ms_append(f, 1, five_terms, 5), RAFT_OK);
	assert_int_equal(ms_append(f, 3, t2, 2), RAFT_OK);
	assert_int_equal(ms_last(f), 4);
	assert_int_equal(ms_term(f, 3, &term), RAFT_OK);
	assert_int_equal(term, 2);
	assert_int_equal(ms_term(f, 5, &term), RAFT_ERR_UNAVAILABLE);
	/* overwrite from the very first entry */
	const uint64_t t7[] = {7};
	assert_int_equal(ms_append(f, 1, t7, 1), RAFT_OK);
	assert_int_equal(ms_last(f), 1);
	assert_int_equal(ms_term(f, 1, &term), RAFT_OK);
	assert_int_equal(term, 7);
}

static void test_memstorage_append_extends_and_accepts_empty(void **state)
{
	ms_fixture_t *f = *state;
	const uint64_t t3[] = {3, 3};
	assert_int_equal(ms_append(f, 1, five_terms, 5), RAFT_OK);
	assert_int_equal(ms_append(f, 6, t3, 2), RAFT_OK);
	assert_int_equal(ms_last(f), 7);
	assert_int_equal(raft_memstorage_append(f->ms, NULL, 0), RAFT_OK);
	assert_int_equal(ms_last(f), 7);
}

static void test_memstorage_append_with_gap_refused(void **state)
{
	ms_fixture_t *f = *state;
	const uint64_t t3[] = {3};
	assert_int_equal(ms_append(f, 1, five_terms, 5), RAFT_OK);
	assert_int_not_equal(ms_append(f, 8, t3, 1), RAFT_OK);
	assert_int_equal(ms_last(f), 5);
}

static void test_memstorage_append_ignores_compacted_prefix(void **state)
{
	ms_fixture_t *f = *state;
	raft_conf_t conf = {.n_voters = 1, .voters = {1}};
	const uint64_t terms[] = {1, 2, 2, 3, 4};
	uint64_t term;
	assert_int_equal(ms_append(f, 1, five_terms, 5), RAFT_OK);
	assert_int_equal(raft_memstorage_create_snapshot(f->ms, 3, &conf, NULL, 0), RAFT_OK);
	assert_int_equal(raft_memstorage_compact(f->ms, 3), RAFT_OK);
	/* entries 2..6: 2 and 3 are below the first index and must be skipped */
	assert_int_equal(ms_append(f, 2, terms, 5), RAFT_OK);
	assert_int_equal(ms_first(f), 4);
	assert_int_equal(ms_last(f), 6);
	assert_int_equal(ms_term(f, 5, &term), RAFT_OK);
	assert_int_equal(term, 3);
	assert_int_equal(ms_term(f, 6, &term), RAFT_OK);
	assert_int_equal(term, 4);
}

static void test_memstorage_create_snapshot_records_state(void **state)
{
	ms_fixture_t *f = *state;
	raft_conf_t conf = {.n_voters = 3, .voters = {1, 2, 3}, .n_learners = 1,
			    .learners = {4}};
	const raft_snapshot_t *snap = NULL;
	assert_int_equal(ms_append(f, 1, five_terms, 5), RAFT_OK);
	assert_int_equal(raft_memstorage_create_snapshot(f->ms, 4, &conf, "state", 5), RAFT_OK);
	assert_int_equal(f->s.ops->snapshot(f->s.ctx, &snap), RAFT_OK);
	assert_non_null(snap);
	assert_non_null(snap->metadata);
	assert_int_equal(snap->metadata->index, 4);
	assert_int_equal(snap->metadata->term, 2);
	assert_int_equal(snap->data.len, 5);
	assert_memory_equal(snap->data.data, "state", 5);
	assert_non_null(snap->metadata->conf_state);
	raft_conf_t back;
	assert_int_equal(raft_conf_from_state(&back, snap->metadata->conf_state), RAFT_OK);
	assert_int_equal(back.n_voters, 3);
	assert_true(raft_conf_is_voter(&back, 2));
	assert_true(raft_conf_is_learner(&back, 4));
	/* creating a snapshot does not drop entries by itself */
	assert_int_equal(ms_first(f), 1);
}

static void test_memstorage_create_snapshot_out_of_date(void **state)
{
	ms_fixture_t *f = *state;
	raft_conf_t conf = {.n_voters = 1, .voters = {1}};
	assert_int_equal(ms_append(f, 1, five_terms, 5), RAFT_OK);
	assert_int_equal(raft_memstorage_create_snapshot(f->ms, 4, &conf, NULL, 0), RAFT_OK);
	assert_int_equal(raft_memstorage_create_snapshot(f->ms, 3, &conf, NULL, 0),
			 RAFT_ERR_SNAP_OUT_OF_DATE);
	assert_int_equal(raft_memstorage_create_snapshot(f->ms, 4, &conf, NULL, 0),
			 RAFT_ERR_SNAP_OUT_OF_DATE);
	assert_int_not_equal(raft_memstorage_create_snapshot(f->ms, 6, &conf, NULL, 0), RAFT_OK);
}

static raft_snapshot_t *ms_make_snapshot(uint64_t index, uint64_t term)
{
	static uint64_t voters[] = {1, 2, 3};
	Raftpb__ConfState cs = RAFTPB__CONF_STATE__INIT;
	Raftpb__SnapshotMetadata md = RAFTPB__SNAPSHOT_METADATA__INIT;
	raft_snapshot_t snap = RAFTPB__SNAPSHOT__INIT;
	cs.voters = voters;
	cs.n_voters = 3;
	md.conf_state = &cs;
	md.index = index;
	md.term = term;
	snap.metadata = &md;
	snap.data.data = (uint8_t *)"snapdata";
	snap.data.len = 8;
	raft_snapshot_t *copy = raft_snapshot_clone(&snap);
	assert_non_null(copy);
	return copy;
}

static void test_memstorage_apply_snapshot_replaces_log(void **state)
{
	ms_fixture_t *f = *state;
	raft_snapshot_t *snap = ms_make_snapshot(10, 4);
	const raft_snapshot_t *got = NULL;
	uint64_t term;
	size_t n;

	assert_int_equal(ms_append(f, 1, five_terms, 5), RAFT_OK);
	assert_int_equal(raft_memstorage_apply_snapshot(f->ms, snap), RAFT_OK);
	raft_snapshot_free(snap);

	assert_int_equal(ms_first(f), 11);
	assert_int_equal(ms_last(f), 10);
	assert_int_equal(ms_term(f, 10, &term), RAFT_OK);
	assert_int_equal(term, 4);
	assert_int_equal(ms_term(f, 5, &term), RAFT_ERR_COMPACTED);
	assert_int_equal(ms_entries(f, 5, 6, UINT64_MAX, &n), RAFT_ERR_COMPACTED);
	assert_int_equal(f->s.ops->snapshot(f->s.ctx, &got), RAFT_OK);
	assert_int_equal(got->metadata->index, 10);
	assert_int_equal(got->data.len, 8);
	assert_memory_equal(got->data.data, "snapdata", 8);

	const uint64_t t4[] = {4, 5};
	assert_int_equal(ms_append(f, 11, t4, 2), RAFT_OK);
	assert_int_equal(ms_entries(f, 11, 13, UINT64_MAX, &n), RAFT_OK);
	assert_int_equal(n, 2);
}

static void test_memstorage_apply_older_snapshot_out_of_date(void **state)
{
	ms_fixture_t *f = *state;
	raft_snapshot_t *s10 = ms_make_snapshot(10, 4);
	raft_snapshot_t *s8 = ms_make_snapshot(8, 4);
	assert_int_equal(raft_memstorage_apply_snapshot(f->ms, s10), RAFT_OK);
	assert_int_equal(raft_memstorage_apply_snapshot(f->ms, s8), RAFT_ERR_SNAP_OUT_OF_DATE);
	assert_int_equal(raft_memstorage_apply_snapshot(f->ms, s10), RAFT_ERR_SNAP_OUT_OF_DATE);
	assert_int_equal(ms_first(f), 11);
	raft_snapshot_free(s10);
	raft_snapshot_free(s8);
}

#define MS_TEST(fn) cmocka_unit_test_setup_teardown(fn, ms_setup, ms_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		MS_TEST(test_memstorage_starts_empty),
		MS_TEST(test_memstorage_hard_state_round_trip),
		MS_TEST(test_memstorage_append_then_read_entries_and_terms),
		MS_TEST(test_memstorage_entries_stop_at_max_bytes),
		MS_TEST(test_memstorage_entries_return_at_least_one),
		MS_TEST(test_memstorage_entries_past_last_are_unavailable),
		MS_TEST(test_memstorage_compacted_reads_fail),
		MS_TEST(test_memstorage_compact_twice_is_compacted),
		MS_TEST(test_memstorage_compact_past_snapshot_refused),
		MS_TEST(test_memstorage_append_truncates_conflicting_suffix),
		MS_TEST(test_memstorage_append_extends_and_accepts_empty),
		MS_TEST(test_memstorage_append_with_gap_refused),
		MS_TEST(test_memstorage_append_ignores_compacted_prefix),
		MS_TEST(test_memstorage_create_snapshot_records_state),
		MS_TEST(test_memstorage_create_snapshot_out_of_date),
		MS_TEST(test_memstorage_apply_snapshot_replaces_log),
		MS_TEST(test_memstorage_apply_older_snapshot_out_of_date),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
