/* tests/unit/test_snapfile.c — snapshot files and their checksum: CRC-32C against known
 * vectors (hardware and table paths agree), a file round-trips, any flipped byte or cut
 * is refused naming the file, and leftovers of interrupted writes are cleaned up. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raft.h"
#include "tmpdir.h"
#include "wal_int.h"

typedef struct fx {
	char dir[64];   /* snprintf targets below are sized for it */
	char err[1024];
} fx_t;

static int fx_setup(void **state)
{
	fx_t *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	test_tmpdir(f->dir, sizeof(f->dir), "test-snap");
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	fx_t *f = *state;
	test_rmtree(f->dir);
	free(f);
	return 0;
}

static void test_crc32c_matches_known_vectors(void **state)
{
	(void)state;
	uint8_t zeros[32] = { 0 }, ones[32], inc[32];
	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++)
		inc[i] = (uint8_t)i;
	/* RFC 3720 B.4 and the usual check value */
	assert_int_equal(raft_crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(raft_crc32c(0, zeros, 32), 0x8A9136AAu);
	assert_int_equal(raft_crc32c(0, ones, 32), 0x62A8AB43u);
	assert_int_equal(raft_crc32c(0, inc, 32), 0x46DD794Eu);
	assert_int_equal(raft_crc32c(0, "", 0), 0);
	assert_int_equal(raft_crc32c_sw(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(raft_crc32c_sw(0, inc, 32), 0x46DD794Eu);
}

static void test_crc32c_hardware_and_table_agree_and_extend(void **state)
{
	(void)state;
	uint8_t buf[1100];
	uint64_t s = 88172645463325252ull;
	for (size_t i = 0; i < sizeof(buf); i++) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		buf[i] = (uint8_t)s;
	}
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len + off <= sizeof(buf); len += 1 + len / 4) {
			uint32_t a = raft_crc32c(0, buf + off, len), b = raft_crc32c_sw(0, buf + off, len);
			assert_int_equal(a, b);
			size_t half = len / 3;
			uint32_t first = raft_crc32c(0, buf + off, half);
			assert_int_equal(raft_crc32c(first, buf + off + half, len - half), a);
		}
	(void)raft_crc32c_has_hw(); /* either path is correct; this only says which one ran */
}

static raft_snapshot_t *make_snapshot(uint64_t term, uint64_t index, size_t data_len)
{
	raft_snapshot_t s = RAFTPB__SNAPSHOT__INIT;
	Raftpb__SnapshotMetadata md = RAFTPB__SNAPSHOT_METADATA__INIT;
	Raftpb__ConfState cs = RAFTPB__CONF_STATE__INIT;
	uint64_t voters[] = { 1, 2, 3 }, learners[] = { 9 };
	cs.voters = voters;
	cs.n_voters = 3;
	cs.learners = learners;
	cs.n_learners = 1;
	md.conf_state = &cs;
	md.term = term;
	md.index = index;
	s.metadata = &md;
	uint8_t *data = malloc(data_len + 1);
	for (size_t i = 0; i < data_len; i++)
		data[i] = (uint8_t)(i * 7);
	s.data.data = data;
	s.data.len = data_len;
	raft_snapshot_t *c = raft_snapshot_clone(&s);
	free(data);
	return c;
}

static void assert_same_snapshot(const raft_snapshot_t *a, const raft_snapshot_t *b)
{
	assert_int_equal(a->metadata->term, b->metadata->term);
	assert_int_equal(a->metadata->index, b->metadata->index);
	assert_int_equal(a->metadata->conf_state->n_voters, b->metadata->conf_state->n_voters);
	assert_memory_equal(a->metadata->conf_state->voters, b->metadata->conf_state->voters,
			    a->metadata->conf_state->n_voters * sizeof(uint64_t));
	assert_int_equal(a->metadata->conf_state->n_learners,
			 b->metadata->conf_state->n_learners);
	assert_int_equal(a->data.len, b->data.len);
	if (a->data.len)
		assert_memory_equal(a->data.data, b->data.data, a->data.len);
}

static void test_snapshot_file_round_trips(void **state)
{
	fx_t *f = *state;
	raft_snapshot_t *s = make_snapshot(7, 1234, 5000);
	assert_int_equal(snapfile_write(f->dir, s, true, f->err, sizeof(f->err)), RAFT_OK);
	raft_snapshot_t *got = NULL;
	assert_int_equal(snapfile_read(f->dir, 7, 1234, &got, f->err, sizeof(f->err)), RAFT_OK);
	assert_same_snapshot(s, got);
	raft_snapshot_free(got);
	/* an empty snapshot too, and overwriting an existing name */
	raft_snapshot_t *e = make_snapshot(7, 1234, 0);
	assert_int_equal(snapfile_write(f->dir, e, false, f->err, sizeof(f->err)), RAFT_OK);
	assert_int_equal(snapfile_read(f->dir, 7, 1234, &got, f->err, sizeof(f->err)), RAFT_OK);
	assert_same_snapshot(e, got);
	raft_snapshot_free(got);
	raft_snapshot_free(e);
	raft_snapshot_free(s);
}

static void read_file(const char *path, uint8_t **buf, size_t *len)
{
	assert_int_equal(wal_file_read_all(path, buf, len), RAFT_OK);
}

static void write_file(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(wal_file_write_all(fd, buf, len, 0), RAFT_OK);
	close(fd);
}

static void test_every_flipped_byte_and_every_cut_is_refused(void **state)
{
	fx_t *f = *state;
	raft_snapshot_t *s = make_snapshot(3, 99, 200);
	assert_int_equal(snapfile_write(f->dir, s, false, f->err, sizeof(f->err)), RAFT_OK);
	raft_snapshot_free(s);
	char path[256];
	snapfile_path(path, sizeof(path), f->dir, 3, 99);
	uint8_t *good, *bad;
	size_t len;
	read_file(path, &good, &len);
	bad = malloc(len);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			memcpy(bad, good, len);
			bad[i] ^= (uint8_t)(1u << bit);
			write_file(path, bad, len);
			raft_snapshot_t *got = NULL;
			f->err[0] = 0;
			int rc = snapfile_read(f->dir, 3, 99, &got, f->err, sizeof(f->err));
			if (rc != RAFT_ERR_CORRUPT || !strstr(f->err, path))
				fail_msg("flip at %zu bit %d: %d (%s)", i, bit, rc, f->err);
			assert_null(got);
		}
	}
	for (size_t cut = 0; cut < len; cut++) {
		write_file(path, good, cut);
		raft_snapshot_t *got = NULL;
		assert_int_equal(snapfile_read(f->dir, 3, 99, &got, f->err, sizeof(f->err)),
				 RAFT_ERR_CORRUPT);
		assert_non_null(strstr(f->err, path));
	}
	/* a file that is whole but under another snapshot's name */
	write_file(path, good, len);
	char other[256];
	snapfile_path(other, sizeof(other), f->dir, 3, 100);
	assert_int_equal(rename(path, other), 0);
	raft_snapshot_t *got = NULL;
	assert_int_equal(snapfile_read(f->dir, 3, 100, &got, f->err, sizeof(f->err)),
			 RAFT_ERR_CORRUPT);
	assert_non_null(strstr(f->err, "differ from the file name"));
	/* and a missing one */
	assert_int_equal(snapfile_read(f->dir, 3, 99, &got, f->err, sizeof(f->err)),
			 RAFT_ERR_CORRUPT);
	assert_non_null(strstr(f->err, path));
	free(good);
	free(bad);
}

static void test_list_sorts_by_index_and_removes_temporary_files(void **state)
{
	fx_t *f = *state;
	uint64_t ids[][2] = { { 5, 300 }, { 2, 10 }, { 4, 200 }, { 3, 200 } };
	for (size_t i = 0; i < 4; i++) {
		raft_snapshot_t *s = make_snapshot(ids[i][0], ids[i][1], 3);
		assert_int_equal(snapfile_write(f->dir, s, false, f->err, sizeof(f->err)), RAFT_OK);
		raft_snapshot_free(s);
	}
	char tmp[256], junk[256];
	snprintf(tmp, sizeof(tmp), "%s/" SNAP_FILE_FMT ".tmp", f->dir, 9ull, 900ull);
	snprintf(junk, sizeof(junk), "%s/notes.txt", f->dir);
	write_file(tmp, (const uint8_t *)"half", 4);
	write_file(junk, (const uint8_t *)"keep me", 7);
	snapfile_id_t *list;
	size_t n;
	assert_int_equal(snapfile_list(f->dir, &list, &n, f->err, sizeof(f->err)), RAFT_OK);
	assert_int_equal(n, 4);
	assert_int_equal(list[0].index, 10);
	assert_int_equal(list[1].index, 200);
	assert_int_equal(list[1].term, 3);
	assert_int_equal(list[2].term, 4);
	assert_int_equal(list[3].index, 300);
	free(list);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(access(junk, F_OK), 0);
	assert_int_equal(snapfile_remove(f->dir, 5, 300, f->err, sizeof(f->err)), RAFT_OK);
	assert_int_equal(snapfile_remove(f->dir, 5, 300, f->err, sizeof(f->err)), RAFT_OK);
	char missing[128];
	snprintf(missing, sizeof(missing), "%s/none", f->dir);
	assert_int_equal(snapfile_list(missing, &list, &n, f->err, sizeof(f->err)), RAFT_ERR_IO);
	assert_non_null(strstr(f->err, missing));
}

static void test_wal_open_cleans_temporary_and_orphan_snapshot_files(void **state)
{
	fx_t *f = *state;
	raft_wal_options_t opt;
	raft_wal_options_default(&opt);
	opt.no_sync = true;
	raft_wal_t *w;
	assert_int_equal(raft_wal_open(f->dir, &opt, &w, f->err, sizeof(f->err)), RAFT_OK);
	raft_entry_t *e = raft_entry_new(1, 1, 0, "x", 1);
	assert_int_equal(raft_wal_save(w, NULL, &e, 1, true), RAFT_OK);
	raft_entry_free(e);
	raft_wal_close(w);
	char snapdir[128], tmp[256];
	snprintf(snapdir, sizeof(snapdir), "%s/snap", f->dir);
	snprintf(tmp, sizeof(tmp), "%s/" SNAP_FILE_FMT ".tmp", snapdir, 1ull, 1ull);
	write_file(tmp, (const uint8_t *)"torn", 4);
	raft_snapshot_t *s = make_snapshot(1, 1, 3); /* complete, but no marker names it */
	assert_int_equal(snapfile_write(snapdir, s, false, f->err, sizeof(f->err)), RAFT_OK);
	raft_snapshot_free(s);
	assert_int_equal(raft_wal_open(f->dir, &opt, &w, f->err, sizeof(f->err)), RAFT_OK);
	raft_storage_t st = raft_wal_storage(w);
	const raft_snapshot_t *got;
	st.ops->snapshot(st.ctx, &got);
	assert_int_equal(got->metadata->index, 0);
	raft_wal_close(w);
	snapfile_id_t *list;
	size_t n;
	assert_int_equal(snapfile_list(snapdir, &list, &n, f->err, sizeof(f->err)), RAFT_OK);
	assert_int_equal(n, 0);
	free(list);
	assert_int_equal(access(tmp, F_OK), -1);
}

static void test_write_into_missing_directory_fails_naming_it(void **state)
{
	fx_t *f = *state;
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/absent", f->dir);
	raft_snapshot_t *s = make_snapshot(1, 1, 3);
	assert_int_equal(snapfile_write(dir, s, true, f->err, sizeof(f->err)), RAFT_ERR_IO);
	assert_non_null(strstr(f->err, dir));
	raft_snapshot_t bare = RAFTPB__SNAPSHOT__INIT;
	assert_int_equal(snapfile_write(f->dir, &bare, true, f->err, sizeof(f->err)),
			 RAFT_ERR_INVALID_MSG);
	raft_snapshot_free(s);
}

#define SNAP_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		SNAP_TEST(test_crc32c_matches_known_vectors),
		SNAP_TEST(test_crc32c_hardware_and_table_agree_and_extend),
		SNAP_TEST(test_snapshot_file_round_trips),
		SNAP_TEST(test_every_flipped_byte_and_every_cut_is_refused),
		SNAP_TEST(test_list_sorts_by_index_and_removes_temporary_files),
		SNAP_TEST(test_wal_open_cleans_temporary_and_orphan_snapshot_files),
		SNAP_TEST(test_write_into_missing_directory_fails_naming_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
