/* tests/unit/test_wal.c — the durable log through its public API: what a reopen rebuilds
 * (hard state, entries, indices, terms), overwritten suffixes, replay across segments,
 * snapshots and segment release, the directory lock and errors that name their file.
 * Every test works in its own mkdtemp directory and removes it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "raft.h"
#include "tmpdir.h"
#include "wal_int.h"

typedef struct fx {
	char dir[64];   /* snprintf targets below are sized for it */
	raft_wal_t *w;
	char err[1024];
} fx_t;

static int fx_setup(void **state)
{
	fx_t *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	test_tmpdir(f->dir, sizeof(f->dir), "test-wal");
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	fx_t *f = *state;
	raft_wal_close(f->w);
	test_rmtree(f->dir);
	free(f);
	return 0;
}

static raft_wal_t *wal_open_ok(fx_t *f, uint64_t segment_size)
{
	raft_wal_options_t opt;
	raft_wal_options_default(&opt);
	opt.no_sync = true;
	if (segment_size)
		opt.segment_size = segment_size;
	raft_wal_t *w = NULL;
	int rc = raft_wal_open(f->dir, &opt, &w, f->err, sizeof(f->err));
	if (rc)
		fail_msg("open: %s (%s)", raft_strerror(rc), f->err);
	return w;
}

static int wal_open_rc(fx_t *f, raft_wal_t **w)
{
	raft_wal_options_t opt;
	raft_wal_options_default(&opt);
	opt.no_sync = true;
	opt.segment_size = 4096;
	f->err[0] = 0;
	return raft_wal_open(f->dir, &opt, w, f->err, sizeof(f->err));
}

static void reopen(fx_t *f, uint64_t segment_size)
{
	raft_wal_close(f->w);
	f->w = NULL; /* a failed open must not leave the teardown a closed handle */
	f->w = wal_open_ok(f, segment_size);
}

static void entry_data(char *buf, size_t len, uint64_t index, uint64_t term)
{
	snprintf(buf, len, "entry-%llu-term-%llu", (unsigned long long)index,
		 (unsigned long long)term);
}

/* Saves entries [lo, hi] at term, batch entries per call, each call synced. */
static void save_range(raft_wal_t *w, uint64_t lo, uint64_t hi, uint64_t term, size_t batch)
{
	raft_entry_t *ents[64];
	assert_true(batch <= 64);
	for (uint64_t i = lo; i <= hi;) {
		size_t n = 0;
		for (; n < batch && i <= hi; n++, i++) {
			char d[64];
			entry_data(d, sizeof(d), i, term);
			ents[n] = raft_entry_new(term, i, RAFT_ENTRY_NORMAL, d, strlen(d));
		}
		assert_int_equal(raft_wal_save(w, NULL, ents, n, true), RAFT_OK);
		for (size_t k = 0; k < n; k++)
			raft_entry_free(ents[k]);
	}
}

static uint64_t first_index(raft_wal_t *w)
{
	raft_storage_t s = raft_wal_storage(w);
	uint64_t i;
	assert_int_equal(s.ops->first_index(s.ctx, &i), RAFT_OK);
	return i;
}

static uint64_t last_index(raft_wal_t *w)
{
	raft_storage_t s = raft_wal_storage(w);
	uint64_t i;
	assert_int_equal(s.ops->last_index(s.ctx, &i), RAFT_OK);
	return i;
}

static uint64_t term_of(raft_wal_t *w, uint64_t index)
{
	raft_storage_t s = raft_wal_storage(w);
	uint64_t t;
	assert_int_equal(s.ops->term(s.ctx, index, &t), RAFT_OK);
	return t;
}

/* The entry at index has the term and data save_range gives it. */
static void assert_entry(raft_wal_t *w, uint64_t index, uint64_t term)
{
	raft_storage_t s = raft_wal_storage(w);
	raft_entry_t *e[1];
	size_t n;
	char d[64];
	assert_int_equal(s.ops->entries(s.ctx, index, index + 1, UINT64_MAX, e, &n), RAFT_OK);
	assert_int_equal(n, 1);
	entry_data(d, sizeof(d), index, term);
	assert_int_equal(e[0]->index, index);
	assert_int_equal(e[0]->term, term);
	assert_int_equal(e[0]->data.len, strlen(d));
	assert_memory_equal(e[0]->data.data, d, strlen(d));
}

static size_t count_files(const fx_t *f, const char *sub, const char *suffix)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", f->dir, sub);
	DIR *d = opendir(path);
	assert_non_null(d);
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name), s = strlen(suffix);
		if (l > s && !strcmp(de->d_name + l - s, suffix))
			n++;
	}
	closedir(d);
	return n;
}

/* Path of the wal/ segment with sequence seq. */
static void segment_path(const fx_t *f, uint64_t seq, char *out, size_t len)
{
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/wal", f->dir);
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	out[0] = 0;
	while ((de = readdir(d))) {
		unsigned long long s, first;
		if (strlen(de->d_name) == 37 &&
		    sscanf(de->d_name, "%16llx-%16llx.wal", &s, &first) == 2 && s == seq)
			snprintf(out, len, "%s/%s", dir, de->d_name);
	}
	closedir(d);
	assert_true(out[0]);
}

static raft_conf_t conf_of(uint64_t a, uint64_t b, uint64_t c)
{
	raft_conf_t conf = { .n_voters = 3, .voters = { a, b, c } };
	return conf;
}

static void test_reopen_restores_hard_state_entries_and_indices(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 0);
	assert_int_equal(first_index(f->w), 1);
	assert_int_equal(last_index(f->w), 0);
	save_range(f->w, 1, 5, 1, 2);
	save_range(f->w, 6, 20, 2, 7);
	raft_hard_state_t hs = { .term = 2, .vote = 3, .commit = 17 };
	assert_int_equal(raft_wal_save(f->w, &hs, NULL, 0, true), RAFT_OK);
	reopen(f, 0);

	raft_storage_t s = raft_wal_storage(f->w);
	raft_hard_state_t got;
	assert_int_equal(s.ops->initial_state(s.ctx, &got), RAFT_OK);
	assert_int_equal(got.term, 2);
	assert_int_equal(got.vote, 3);
	assert_int_equal(got.commit, 17);
	assert_int_equal(first_index(f->w), 1);
	assert_int_equal(last_index(f->w), 20);
	assert_int_equal(term_of(f->w, 0), 0);
	assert_int_equal(term_of(f->w, 5), 1);
	assert_int_equal(term_of(f->w, 6), 2);
	for (uint64_t i = 1; i <= 20; i++)
		assert_entry(f->w, i, i <= 5 ? 1 : 2);
	const raft_snapshot_t *snap;
	assert_int_equal(s.ops->snapshot(s.ctx, &snap), RAFT_OK);
	assert_int_equal(snap->metadata->index, 0);
}

static void test_hard_state_and_entries_in_one_save_survive(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 0);
	raft_entry_t *e = raft_entry_new(4, 1, RAFT_ENTRY_CONF_CHANGE, "cc", 2);
	raft_hard_state_t hs = { .term = 4, .vote = 1, .commit = 1 };
	assert_int_equal(raft_wal_save(f->w, &hs, &e, 1, false), RAFT_OK);
	raft_entry_free(e);
	reopen(f, 0);
	raft_storage_t s = raft_wal_storage(f->w);
	raft_entry_t *got[1];
	size_t n;
	assert_int_equal(s.ops->entries(s.ctx, 1, 2, 0, got, &n), RAFT_OK);
	assert_int_equal(got[0]->type, RAFT_ENTRY_CONF_CHANGE);
	assert_int_equal(got[0]->term, 4);
	raft_hard_state_t h;
	s.ops->initial_state(s.ctx, &h);
	assert_int_equal(h.commit, 1);
	assert_int_equal(h.vote, 1);
}

static void test_overlapping_entries_replace_the_suffix_on_disk_and_after_reopen(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 0);
	save_range(f->w, 1, 10, 1, 10);
	save_range(f->w, 6, 8, 2, 3); /* a new leader's suffix: 9 and 10 are gone */
	assert_int_equal(last_index(f->w), 8);
	assert_int_equal(term_of(f->w, 6), 2);
	reopen(f, 0);
	assert_int_equal(last_index(f->w), 8);
	for (uint64_t i = 1; i <= 8; i++)
		assert_entry(f->w, i, i <= 5 ? 1 : 2);
	/* and once more, after the reopen, overwriting a single entry */
	save_range(f->w, 8, 9, 3, 2);
	reopen(f, 0);
	assert_int_equal(last_index(f->w), 9);
	assert_entry(f->w, 7, 2);
	assert_entry(f->w, 8, 3);
	assert_entry(f->w, 9, 3);
}

static void test_replay_crosses_many_segments(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 512);
	save_range(f->w, 1, 300, 1, 7);
	raft_hard_state_t hs = { .term = 1, .vote = 1, .commit = 250 };
	assert_int_equal(raft_wal_save(f->w, &hs, NULL, 0, true), RAFT_OK);
	/* a suffix replaced from an index that lives several segments back */
	save_range(f->w, 200, 260, 2, 9);
	size_t segs = count_files(f, "wal", ".wal");
	assert_true(segs > 20);
	reopen(f, 512);
	assert_int_equal(count_files(f, "wal", ".wal"), segs);
	assert_int_equal(last_index(f->w), 260);
	for (uint64_t i = 1; i <= 260; i++)
		assert_entry(f->w, i, i < 200 ? 1 : 2);
	raft_storage_t s = raft_wal_storage(f->w);
	raft_hard_state_t h;
	s.ops->initial_state(s.ctx, &h);
	assert_int_equal(h.commit, 250);
	/* appending continues in the tail and survives another reopen */
	save_range(f->w, 261, 280, 2, 3);
	reopen(f, 4096); /* a different size for new segments changes nothing old */
	assert_int_equal(last_index(f->w), 280);
	assert_entry(f->w, 280, 2);
}

static void test_oversized_entry_gets_a_segment_of_its_own(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 256);
	char big[2000];
	memset(big, 'x', sizeof(big));
	save_range(f->w, 1, 2, 1, 1);
	raft_entry_t *e = raft_entry_new(1, 3, RAFT_ENTRY_NORMAL, big, sizeof(big));
	assert_int_equal(raft_wal_save(f->w, NULL, &e, 1, true), RAFT_OK);
	raft_entry_free(e);
	save_range(f->w, 4, 5, 1, 2);
	reopen(f, 256);
	assert_int_equal(last_index(f->w), 5);
	raft_storage_t s = raft_wal_storage(f->w);
	raft_entry_t *got[1];
	size_t n;
	assert_int_equal(s.ops->entries(s.ctx, 3, 4, 0, got, &n), RAFT_OK);
	assert_int_equal(got[0]->data.len, sizeof(big));
	assert_entry(f->w, 5, 1);
}

static void test_saved_snapshot_restarts_the_log_after_reopen(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 0);
	save_range(f->w, 1, 10, 1, 5);
	raft_snapshot_t snap = RAFTPB__SNAPSHOT__INIT;
	Raftpb__SnapshotMetadata md = RAFTPB__SNAPSHOT_METADATA__INIT;
	Raftpb__ConfState cs = RAFTPB__CONF_STATE__INIT;
	uint64_t voters[] = { 1, 2, 3 };
	cs.voters = voters;
	cs.n_voters = 3;
	md.conf_state = &cs;
	md.index = 20;
	md.term = 3;
	snap.metadata = &md;
	snap.data.data = (uint8_t *)"state";
	snap.data.len = 5;
	assert_int_equal(raft_wal_save_snapshot(f->w, &snap), RAFT_OK);
	assert_int_equal(first_index(f->w), 21);
	save_range(f->w, 21, 25, 3, 5);
	assert_int_equal(raft_wal_save_snapshot(f->w, &snap), RAFT_ERR_SNAP_OUT_OF_DATE);
	reopen(f, 0);
	assert_int_equal(first_index(f->w), 21);
	assert_int_equal(last_index(f->w), 25);
	assert_int_equal(term_of(f->w, 20), 3);
	assert_entry(f->w, 21, 3);
	raft_storage_t s = raft_wal_storage(f->w);
	const raft_snapshot_t *got;
	s.ops->snapshot(s.ctx, &got);
	assert_int_equal(got->metadata->index, 20);
	assert_int_equal(got->metadata->term, 3);
	assert_int_equal(got->metadata->conf_state->n_voters, 3);
	assert_int_equal(got->data.len, 5);
	assert_memory_equal(got->data.data, "state", 5);
	/* entries at or below the snapshot are covered: writing them changes nothing */
	save_range(f->w, 19, 22, 3, 4);
	assert_int_equal(first_index(f->w), 21);
	assert_int_equal(last_index(f->w), 22);
}

static void test_created_snapshot_compacts_and_releases_segments(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 512);
	save_range(f->w, 1, 300, 1, 5);
	raft_hard_state_t hs = { .term = 1, .vote = 2, .commit = 300 };
	assert_int_equal(raft_wal_save(f->w, &hs, NULL, 0, true), RAFT_OK);
	size_t before = count_files(f, "wal", ".wal");
	raft_conf_t conf = conf_of(1, 2, 3);
	assert_int_equal(raft_wal_create_snapshot(f->w, 250, &conf, "abc", 3, 200), RAFT_OK);
	size_t after = count_files(f, "wal", ".wal");
	assert_true(after < before - 10);
	assert_int_equal(count_files(f, "snap", ".snap"), 1);
	assert_int_equal(first_index(f->w), 201); /* kept for slow followers until reopen */
	assert_int_equal(term_of(f->w, 250), 1);
	reopen(f, 512);
	assert_int_equal(first_index(f->w), 251);
	assert_int_equal(last_index(f->w), 300);
	assert_entry(f->w, 251, 1);
	raft_storage_t s = raft_wal_storage(f->w);
	raft_hard_state_t h;
	s.ops->initial_state(s.ctx, &h);
	assert_int_equal(h.vote, 2); /* the hard state lived in a released segment too */
	assert_int_equal(h.commit, 300);
	const raft_snapshot_t *got;
	s.ops->snapshot(s.ctx, &got);
	assert_int_equal(got->metadata->index, 250);
	assert_int_equal(got->data.len, 3);
	raft_conf_t back;
	assert_int_equal(raft_conf_from_state(&back, got->metadata->conf_state), RAFT_OK);
	assert_int_equal(back.n_voters, 3);

	/* more snapshots: only the newest two files stay */
	save_range(f->w, 301, 400, 1, 10);
	assert_int_equal(raft_wal_create_snapshot(f->w, 320, &conf, "d", 1, 320), RAFT_OK);
	assert_int_equal(raft_wal_create_snapshot(f->w, 350, &conf, "e", 1, 340), RAFT_OK);
	assert_int_equal(raft_wal_create_snapshot(f->w, 390, &conf, "f", 1, 390), RAFT_OK);
	assert_int_equal(count_files(f, "snap", ".snap"), 2);
	assert_int_equal(first_index(f->w), 391);
	reopen(f, 512);
	assert_int_equal(first_index(f->w), 391);
	assert_int_equal(last_index(f->w), 400);
	assert_entry(f->w, 400, 1);
	assert_int_equal(raft_wal_create_snapshot(f->w, 390, &conf, NULL, 0, 390),
			 RAFT_ERR_SNAP_OUT_OF_DATE);
	assert_int_equal(raft_wal_create_snapshot(f->w, 401, &conf, NULL, 0, 390),
			 RAFT_ERR_UNAVAILABLE);
	assert_int_equal(raft_wal_create_snapshot(f->w, 395, &conf, NULL, 0, 396),
			 RAFT_ERR_UNAVAILABLE);
}

static void test_snapshot_after_received_snapshot_and_entries(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 512);
	save_range(f->w, 1, 50, 1, 5);
	raft_snapshot_t snap = RAFTPB__SNAPSHOT__INIT;
	Raftpb__SnapshotMetadata md = RAFTPB__SNAPSHOT_METADATA__INIT;
	md.index = 30; /* below our last: a leader's snapshot replaces our whole log */
	md.term = 2;
	snap.metadata = &md;
	assert_int_equal(raft_wal_save_snapshot(f->w, &snap), RAFT_OK);
	assert_int_equal(last_index(f->w), 30);
	save_range(f->w, 31, 80, 2, 5);
	raft_conf_t conf = conf_of(1, 2, 3);
	assert_int_equal(raft_wal_create_snapshot(f->w, 70, &conf, NULL, 0, 60), RAFT_OK);
	reopen(f, 512);
	assert_int_equal(first_index(f->w), 71);
	assert_int_equal(last_index(f->w), 80);
	assert_entry(f->w, 75, 2);
	assert_int_equal(term_of(f->w, 70), 2);
}

static void test_save_refuses_gaps_and_disorder_without_writing(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 0);
	save_range(f->w, 1, 3, 1, 3);
	raft_entry_t *e[2] = { raft_entry_new(1, 5, 0, NULL, 0), raft_entry_new(1, 7, 0, NULL, 0) };
	assert_int_equal(raft_wal_save(f->w, NULL, e, 1, true), RAFT_ERR_UNAVAILABLE);
	assert_non_null(strstr(raft_wal_error(f->w), "gap"));
	e[0]->index = 4;
	assert_int_equal(raft_wal_save(f->w, NULL, e, 2, true), RAFT_ERR_INVALID_MSG);
	raft_entry_free(e[0]);
	raft_entry_free(e[1]);
	assert_int_equal(last_index(f->w), 3);
	reopen(f, 0);
	assert_int_equal(last_index(f->w), 3);
	save_range(f->w, 4, 4, 1, 1); /* the handle still works */
	assert_int_equal(last_index(f->w), 4);
}

static void test_second_open_in_process_is_locked(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 0);
	raft_wal_t *w2 = NULL;
	assert_int_equal(wal_open_rc(f, &w2), RAFT_ERR_LOCKED);
	assert_null(w2);
	assert_non_null(strstr(f->err, f->dir));
	assert_non_null(strstr(f->err, "is locked by another process"));
	raft_wal_close(f->w);
	f->w = NULL;
	assert_int_equal(wal_open_rc(f, &f->w), RAFT_OK);
}

static void test_open_from_forked_child_is_locked(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		raft_wal_t *w2 = NULL;
		int rc = wal_open_rc(f, &w2);
		_exit(rc == RAFT_ERR_LOCKED && strstr(f->err, "is locked") ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_corruption_in_an_older_segment_names_file_and_offset(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 1024);
	save_range(f->w, 1, 100, 1, 4);
	raft_wal_close(f->w);
	f->w = NULL;
	char path[256];
	segment_path(f, 1, path, sizeof(path));
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, 60), 1); /* inside the record after the header */
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, 60), 1);
	close(fd);
	raft_wal_t *w = NULL;
	assert_int_equal(wal_open_rc(f, &w), RAFT_ERR_CORRUPT);
	assert_null(w);
	assert_non_null(strstr(f->err, path));
	assert_non_null(strstr(f->err, "at offset 48"));
}

static void test_missing_middle_segment_is_corruption(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 1024);
	save_range(f->w, 1, 100, 1, 4);
	raft_wal_close(f->w);
	f->w = NULL;
	char path[256];
	segment_path(f, 2, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	raft_wal_t *w = NULL;
	assert_int_equal(wal_open_rc(f, &w), RAFT_ERR_CORRUPT);
	assert_non_null(strstr(f->err, "segment 2 is missing"));
}

static void test_first_segment_lost_without_snapshot_is_corruption(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 1024);
	save_range(f->w, 1, 100, 1, 4);
	raft_wal_close(f->w);
	f->w = NULL;
	char path[256];
	segment_path(f, 0, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	raft_wal_t *w = NULL;
	assert_int_equal(wal_open_rc(f, &w), RAFT_ERR_CORRUPT);
	assert_non_null(strstr(f->err, "no snapshot marker covers it"));
}

static void test_missing_or_bad_snapshot_file_is_corruption_naming_it(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 0);
	save_range(f->w, 1, 10, 1, 5);
	raft_conf_t conf = conf_of(1, 2, 3);
	assert_int_equal(raft_wal_create_snapshot(f->w, 8, &conf, "x", 1, 8), RAFT_OK);
	raft_wal_close(f->w);
	f->w = NULL;
	char path[256];
	snprintf(path, sizeof(path), "%s/snap/" SNAP_FILE_FMT, f->dir, 1ull, 8ull);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "Z", 1, 25), 1);
	close(fd);
	raft_wal_t *w = NULL;
	assert_int_equal(wal_open_rc(f, &w), RAFT_ERR_CORRUPT);
	assert_non_null(strstr(f->err, path));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(wal_open_rc(f, &w), RAFT_ERR_CORRUPT);
	assert_non_null(strstr(f->err, path));
}

static void test_snapshot_files_without_segments_are_refused(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 0);
	save_range(f->w, 1, 10, 1, 5);
	raft_conf_t conf = conf_of(1, 2, 3);
	assert_int_equal(raft_wal_create_snapshot(f->w, 8, &conf, "x", 1, 8), RAFT_OK);
	raft_wal_close(f->w);
	f->w = NULL;
	char path[256];
	segment_path(f, 0, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	raft_wal_t *w = NULL;
	assert_int_equal(wal_open_rc(f, &w), RAFT_ERR_CORRUPT);
	assert_non_null(strstr(f->err, "has no segments"));
}

static void test_unusable_directory_is_an_io_error_naming_it(void **state)
{
	fx_t *f = *state;
	char file[128];
	snprintf(file, sizeof(file), "%s/plain", f->dir);
	FILE *fp = fopen(file, "w");
	assert_non_null(fp);
	fclose(fp);
	char sub[160];
	snprintf(sub, sizeof(sub), "%s/member", file);
	raft_wal_t *w = NULL;
	char err[512];
	assert_int_equal(raft_wal_open(sub, NULL, &w, err, sizeof(err)), RAFT_ERR_IO);
	assert_non_null(strstr(err, file));
	assert_string_equal(raft_strerror(RAFT_ERR_IO), "wal: input/output error");
	assert_string_equal(raft_strerror(RAFT_ERR_CORRUPT), "wal: corrupt data");
	assert_string_equal(raft_strerror(-17), "unknown raft error");
}

static void test_nested_directory_is_created_with_wal_and_snap(void **state)
{
	fx_t *f = *state;
	char saved[sizeof(f->dir)];
	memcpy(saved, f->dir, sizeof(saved));
	strcat(f->dir, "/a/b"); /* mkdtemp names are 25 characters */
	f->w = wal_open_ok(f, 0);
	assert_int_equal(count_files(f, "wal", ".wal"), 1);
	assert_int_equal(count_files(f, "snap", ".snap"), 0);
	raft_wal_close(f->w);
	f->w = NULL;
	memcpy(f->dir, saved, sizeof(saved));
}

static void test_synced_mode_round_trip(void **state)
{
	fx_t *f = *state;
	raft_wal_options_t opt;
	raft_wal_options_default(&opt);
	assert_int_equal(opt.segment_size, 64ull << 20);
	assert_false(opt.no_sync);
	opt.segment_size = 4096; /* real fdatasync, fsync of directories, segment cuts */
	assert_int_equal(raft_wal_open(f->dir, &opt, &f->w, f->err, sizeof(f->err)), RAFT_OK);
	save_range(f->w, 1, 100, 1, 10);
	raft_conf_t conf = conf_of(1, 2, 3);
	assert_int_equal(raft_wal_create_snapshot(f->w, 90, &conf, "s", 1, 80), RAFT_OK);
	raft_wal_close(f->w);
	assert_int_equal(raft_wal_open(f->dir, &opt, &f->w, f->err, sizeof(f->err)), RAFT_OK);
	assert_int_equal(first_index(f->w), 91);
	assert_int_equal(last_index(f->w), 100);
}

/* A write that fails (here: the file size limit) is RAFT_ERR_IO naming the segment, and
 * the handle refuses everything after it, since disk and memory may now differ. */
static void test_failed_write_is_io_error_and_sticks(void **state)
{
	fx_t *f = *state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit rl = { 16384, 16384 };
		setrlimit(RLIMIT_FSIZE, &rl);
		raft_wal_options_t opt;
		raft_wal_options_default(&opt);
		opt.no_sync = true;
		opt.segment_size = 4096;
		raft_wal_t *w;
		if (raft_wal_open(f->dir, &opt, &w, f->err, sizeof(f->err)))
			_exit(10);
		static char big[20000];
		raft_entry_t *e = raft_entry_new(1, 1, 0, big, sizeof(big));
		int rc = raft_wal_save(w, NULL, &e, 1, true);
		raft_entry_free(e);
		if (rc != RAFT_ERR_IO || !strstr(raft_wal_error(w), "/wal/"))
			_exit(11);
		raft_hard_state_t hs = { 1, 1, 0 };
		if (raft_wal_save(w, &hs, NULL, 0, true) != RAFT_ERR_IO)
			_exit(12);
		raft_conf_t conf = { .n_voters = 1, .voters = { 1 } };
		if (raft_wal_create_snapshot(w, 1, &conf, NULL, 0, 1) != RAFT_ERR_IO)
			_exit(13);
		raft_wal_close(w);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_zero_options_mean_defaults_and_bare_snapshot_is_refused(void **state)
{
	fx_t *f = *state;
	raft_wal_options_t opt = { .segment_size = 0, .no_sync = true };
	assert_int_equal(raft_wal_open(f->dir, &opt, &f->w, f->err, sizeof(f->err)), RAFT_OK);
	raft_snapshot_t bare = RAFTPB__SNAPSHOT__INIT;
	assert_int_equal(raft_wal_save_snapshot(f->w, &bare), RAFT_ERR_INVALID_MSG);
	assert_non_null(strstr(raft_wal_error(f->w), "without metadata"));
	save_range(f->w, 1, 3, 1, 3);
	assert_int_equal(last_index(f->w), 3);
}

#define WAL_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

/* The first index the newest segment may hold, from its name (<seq>-<first>.wal). */
static uint64_t newest_segment_first(const fx_t *f)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/wal", f->dir);
	DIR *d = opendir(path);
	assert_non_null(d);
	unsigned long long best_seq = 0, first = 0, seq, fi;
	struct dirent *de;
	while ((de = readdir(d)))
		if (sscanf(de->d_name, "%llx-%llx.wal", &seq, &fi) == 2 && seq >= best_seq)
			best_seq = seq, first = fi;
	closedir(d);
	return first;
}

/* A new leader overwrites the entry the newest segment's header names as the log's last
 * (the header's claim is now stale), and a snapshot at that index releases the segment
 * before: the log must reopen with the new entry's term, which the snapshot carries. */
static void test_overwrite_at_segment_start_then_release_reopens(void **state)
{
	fx_t *f = *state;
	f->w = wal_open_ok(f, 512);
	save_range(f->w, 1, 60, 1, 5);
	uint64_t p = newest_segment_first(f) - 1; /* the header's "last entry" */
	assert_true(p >= 10 && p <= 60);
	save_range(f->w, p, p + 10, 2, 1);
	raft_conf_t conf = conf_of(1, 2, 3);
	assert_int_equal(raft_wal_create_snapshot(f->w, p, &conf, "s", 1, p), RAFT_OK);
	reopen(f, 512);
	assert_int_equal(term_of(f->w, p), 2);
	assert_int_equal(first_index(f->w), p + 1);
	assert_int_equal(last_index(f->w), p + 10);
	for (uint64_t i = p + 1; i <= p + 10; i++)
		assert_entry(f->w, i, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		WAL_TEST(test_reopen_restores_hard_state_entries_and_indices),
		WAL_TEST(test_hard_state_and_entries_in_one_save_survive),
		WAL_TEST(test_overlapping_entries_replace_the_suffix_on_disk_and_after_reopen),
		WAL_TEST(test_replay_crosses_many_segments),
		WAL_TEST(test_oversized_entry_gets_a_segment_of_its_own),
		WAL_TEST(test_saved_snapshot_restarts_the_log_after_reopen),
		WAL_TEST(test_created_snapshot_compacts_and_releases_segments),
		WAL_TEST(test_overwrite_at_segment_start_then_release_reopens),
		WAL_TEST(test_snapshot_after_received_snapshot_and_entries),
		WAL_TEST(test_save_refuses_gaps_and_disorder_without_writing),
		WAL_TEST(test_second_open_in_process_is_locked),
		WAL_TEST(test_open_from_forked_child_is_locked),
		WAL_TEST(test_corruption_in_an_older_segment_names_file_and_offset),
		WAL_TEST(test_missing_middle_segment_is_corruption),
		WAL_TEST(test_first_segment_lost_without_snapshot_is_corruption),
		WAL_TEST(test_missing_or_bad_snapshot_file_is_corruption_naming_it),
		WAL_TEST(test_snapshot_files_without_segments_are_refused),
		WAL_TEST(test_unusable_directory_is_an_io_error_naming_it),
		WAL_TEST(test_nested_directory_is_created_with_wal_and_snap),
		WAL_TEST(test_synced_mode_round_trip),
		WAL_TEST(test_failed_write_is_io_error_and_sticks),
		WAL_TEST(test_zero_options_mean_defaults_and_bare_snapshot_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
