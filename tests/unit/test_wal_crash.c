/* tests/unit/test_wal_crash.c — the durable log after a crash: a last record cut or damaged
 * at every byte is dropped and the log goes on; damage followed by valid records, or in an
 * older segment, refuses to open with file and offset; power cuts (raft_wal_crash) keep
 * every synced entry; and a crash between any two steps of taking or receiving a snapshot
 * leaves a directory that opens to a consistent log. */
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
#include <sys/stat.h>
#include <unistd.h>

#include "raft.h"
#include "tmpdir.h"
#include "wal_int.h"

#define SEG_SIZE 65536

typedef struct fx {
	char dir[64];   /* snprintf targets below are sized for it */
	raft_wal_t *w;
	char err[1024];
	uint64_t seg_size;
} fx_t;

static int fx_setup(void **state)
{
	fx_t *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	test_tmpdir(f->dir, sizeof(f->dir), "test-walcrash");
	f->seg_size = SEG_SIZE;
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

static int wal_open_rc(fx_t *f, raft_wal_t **w)
{
	raft_wal_options_t opt;
	raft_wal_options_default(&opt);
	opt.no_sync = true;
	opt.segment_size = f->seg_size;
	f->err[0] = 0;
	return raft_wal_open(f->dir, &opt, w, f->err, sizeof(f->err));
}

static void wal_open_ok(fx_t *f)
{
	int rc = wal_open_rc(f, &f->w);
	if (rc)
		fail_msg("open: %s (%s)", raft_strerror(rc), f->err);
}

static void wal_close(fx_t *f)
{
	raft_wal_close(f->w);
	f->w = NULL;
}

/* Entry data varies in length with the index so records end at varied offsets. */
static size_t entry_data(char *buf, size_t len, uint64_t index, uint64_t term)
{
	int n = snprintf(buf, len, "e%llu-t%llu-", (unsigned long long)index,
			 (unsigned long long)term);
	size_t pad = index % 23;
	memset(buf + n, 'a' + (int)(term % 26), pad);
	buf[n + pad] = 0;
	return (size_t)n + pad;
}

static int save_batch(raft_wal_t *w, uint64_t lo, size_t n, uint64_t term,
		      const raft_hard_state_t *hs, bool sync)
{
	raft_entry_t *ents[16];
	assert_true(n <= 16);
	for (size_t i = 0; i < n; i++) {
		char d[64];
		size_t l = entry_data(d, sizeof(d), lo + i, term);
		ents[i] = raft_entry_new(term, lo + i, RAFT_ENTRY_NORMAL, d, l);
	}
	int rc = raft_wal_save(w, hs, ents, n, sync);
	for (size_t i = 0; i < n; i++)
		raft_entry_free(ents[i]);
	return rc;
}

static uint64_t last_index(raft_wal_t *w)
{
	raft_storage_t s = raft_wal_storage(w);
	uint64_t i;
	s.ops->last_index(s.ctx, &i);
	return i;
}

static uint64_t first_index(raft_wal_t *w)
{
	raft_storage_t s = raft_wal_storage(w);
	uint64_t i;
	s.ops->first_index(s.ctx, &i);
	return i;
}

static bool entry_is(raft_wal_t *w, uint64_t index, uint64_t term)
{
	raft_storage_t s = raft_wal_storage(w);
	raft_entry_t *e[1];
	size_t n;
	char d[64];
	size_t l = entry_data(d, sizeof(d), index, term);
	if (s.ops->entries(s.ctx, index, index + 1, UINT64_MAX, e, &n) || n != 1)
		return false;
	return e[0]->term == term && e[0]->data.len == l && !memcmp(e[0]->data.data, d, l);
}

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

typedef struct file_image {
	uint8_t *buf;
	size_t len;
	size_t starts[256];        /* record offsets, by walking the framing */
	size_t framed_end[256];    /* end of header + type + payload (padding excluded) */
	size_t n;
} file_image_t;

static void image_load(file_image_t *im, const char *path)
{
	assert_int_equal(wal_file_read_all(path, &im->buf, &im->len), RAFT_OK);
	im->n = 0;
	for (size_t off = 0; off + WAL_REC_HDR <= im->len;) {
		uint32_t l = wal_get32(im->buf + off);
		if (l == 0)
			break;
		assert_true(im->n < 256);
		im->starts[im->n] = off;
		im->framed_end[im->n++] = off + WAL_REC_HDR + l;
		off += (WAL_REC_HDR + l + WAL_ALIGN - 1) & ~(size_t)(WAL_ALIGN - 1);
	}
}

/* Writes the image's first len bytes as the whole file, zero-filled up to fill. */
static void image_restore(const file_image_t *im, const char *path, size_t len, size_t fill)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(wal_file_write_all(fd, im->buf, len, 0), RAFT_OK);
	if (fill > len)
		assert_int_equal(ftruncate(fd, (off_t)fill), 0);
	close(fd);
}

static void flip_byte(const char *path, size_t off)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x5a;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

#define N_RECORDS 24

/* Entries 1..N_RECORDS at term 1, one record per save, closed; returns segment 0's image. */
static void write_records(fx_t *f, file_image_t *im, char *path, size_t len)
{
	wal_open_ok(f);
	for (uint64_t i = 1; i <= N_RECORDS; i++)
		assert_int_equal(save_batch(f->w, i, 1, 1, NULL, true), RAFT_OK);
	wal_close(f);
	segment_path(f, 0, path, len);
	image_load(im, path);
	assert_int_equal(im->n, N_RECORDS + 1); /* and the segment header */
}

/* After damage to the last record: it is gone, the log before it intact, appending works
 * and survives a reopen. survives: the damage did not touch it after all (padding). */
static void assert_last_record_dropped(fx_t *f, bool survives, size_t where)
{
	int rc = wal_open_rc(f, &f->w);
	if (rc)
		fail_msg("damage at %zu: %s (%s)", where, raft_strerror(rc), f->err);
	uint64_t want = survives ? N_RECORDS : N_RECORDS - 1;
	if (last_index(f->w) != want)
		fail_msg("damage at %zu: last index %llu, want %llu", where,
			 (unsigned long long)last_index(f->w), (unsigned long long)want);
	for (uint64_t i = 1; i <= want; i++)
		assert_true(entry_is(f->w, i, 1));
	assert_int_equal(save_batch(f->w, want + 1, 2, 2, NULL, true), RAFT_OK);
	wal_close(f);
	wal_open_ok(f);
	assert_int_equal(last_index(f->w), want + 2);
	assert_true(entry_is(f->w, want, 1));
	assert_true(entry_is(f->w, want + 1, 2));
	assert_true(entry_is(f->w, want + 2, 2));
	wal_close(f);
}

static void test_cut_at_every_byte_of_last_record_drops_only_it(void **state)
{
	fx_t *f = *state;
	file_image_t im;
	char path[256];
	write_records(f, &im, path, sizeof(path));
	size_t s = im.starts[im.n - 1], fe = im.framed_end[im.n - 1];
	size_t padded = (fe + WAL_ALIGN - 1) & ~(size_t)(WAL_ALIGN - 1);
	for (size_t t = s; t <= padded; t++) {
		image_restore(&im, path, t, 0); /* the file simply ends there */
		assert_last_record_dropped(f, t >= fe, t);
		image_restore(&im, path, t, im.len); /* preallocated: zeros follow */
		assert_last_record_dropped(f, t >= fe, t);
	}
	free(im.buf);
}

static void test_flip_of_any_byte_of_last_record_is_a_torn_tail(void **state)
{
	fx_t *f = *state;
	file_image_t im;
	char path[256];
	write_records(f, &im, path, sizeof(path));
	size_t s = im.starts[im.n - 1], fe = im.framed_end[im.n - 1];
	size_t padded = (fe + WAL_ALIGN - 1) & ~(size_t)(WAL_ALIGN - 1);
	for (size_t b = s; b < padded; b++) {
		image_restore(&im, path, im.len, 0);
		flip_byte(path, b);
		assert_last_record_dropped(f, b >= fe, b); /* padding is outside the CRC */
	}
	free(im.buf);
}

static void test_flip_in_a_record_followed_by_valid_ones_is_corruption(void **state)
{
	fx_t *f = *state;
	file_image_t im;
	char path[256];
	write_records(f, &im, path, sizeof(path));
	size_t r = im.n - 4;
	size_t s = im.starts[r], fe = im.framed_end[r];
	char want[320];
	snprintf(want, sizeof(want), "wal: corrupt record in %s at offset %zu: ", path, s);
	for (size_t b = s; b < fe; b++) {
		image_restore(&im, path, im.len, 0);
		flip_byte(path, b);
		raft_wal_t *w = NULL;
		int rc = wal_open_rc(f, &w);
		if (rc != RAFT_ERR_CORRUPT || strncmp(f->err, want, strlen(want)))
			fail_msg("flip at %zu: %s (%s)", b, raft_strerror(rc), f->err);
		assert_null(w);
	}
	/* a zeroed header in the middle is no end of data either */
	image_restore(&im, path, im.len, 0);
	int fd = open(path, O_RDWR);
	uint8_t zero[WAL_REC_HDR] = { 0 };
	assert_int_equal(pwrite(fd, zero, sizeof(zero), (off_t)s), (ssize_t)sizeof(zero));
	close(fd);
	raft_wal_t *w = NULL;
	assert_int_equal(wal_open_rc(f, &w), RAFT_ERR_CORRUPT);
	assert_non_null(strstr(f->err, "zero header, yet a valid record follows"));
	/* and the undamaged file still opens */
	image_restore(&im, path, im.len, 0);
	wal_open_ok(f);
	assert_int_equal(last_index(f->w), N_RECORDS);
	free(im.buf);
}

static void test_damage_at_the_end_of_an_older_segment_is_corruption(void **state)
{
	fx_t *f = *state;
	f->seg_size = 512;
	wal_open_ok(f);
	for (uint64_t i = 1; i <= 40; i++)
		assert_int_equal(save_batch(f->w, i, 1, 1, NULL, true), RAFT_OK);
	wal_close(f);
	assert_true(count_files(f, "wal", ".wal") >= 3);
	char path[256];
	file_image_t im;
	segment_path(f, 1, path, sizeof(path));
	image_load(&im, path);
	size_t s = im.starts[im.n - 1];
	flip_byte(path, s + WAL_REC_HDR + 2);
	raft_wal_t *w = NULL;
	assert_int_equal(wal_open_rc(f, &w), RAFT_ERR_CORRUPT);
	assert_non_null(strstr(f->err, path));
	char at[64];
	snprintf(at, sizeof(at), "at offset %zu: checksum mismatch", s);
	assert_non_null(strstr(f->err, at));
	/* cut short instead of flipped: the same */
	image_restore(&im, path, s + 5, 0);
	assert_int_equal(wal_open_rc(f, &w), RAFT_ERR_CORRUPT);
	assert_non_null(strstr(f->err, path));
	free(im.buf);
}

static void test_bad_header_of_newest_segment_is_corruption(void **state)
{
	fx_t *f = *state;
	f->seg_size = 512;
	wal_open_ok(f);
	for (uint64_t i = 1; i <= 20; i++)
		assert_int_equal(save_batch(f->w, i, 1, 1, NULL, true), RAFT_OK);
	wal_close(f);
	size_t n = count_files(f, "wal", ".wal");
	char path[256];
	segment_path(f, n - 1, path, sizeof(path));
	flip_byte(path, 12);
	raft_wal_t *w = NULL;
	assert_int_equal(wal_open_rc(f, &w), RAFT_ERR_CORRUPT);
	assert_non_null(strstr(f->err, path));
	assert_non_null(strstr(f->err, "at offset 0"));
}

static void test_leftover_temporary_segment_is_removed(void **state)
{
	fx_t *f = *state;
	wal_open_ok(f);
	assert_int_equal(save_batch(f->w, 1, 3, 1, NULL, true), RAFT_OK);
	wal_close(f);
	char tmp[256];
	snprintf(tmp, sizeof(tmp), "%s/wal/" WAL_SEGMENT_FMT ".tmp", f->dir, 1ull, 4ull);
	FILE *fp = fopen(tmp, "w");
	assert_non_null(fp);
	fputs("half a segment", fp);
	fclose(fp);
	wal_open_ok(f);
	assert_int_equal(last_index(f->w), 3);
	assert_int_equal(access(tmp, F_OK), -1);
}

/* ---- records that checksum but make no sense ---- */

/* Writes one framed record at off, as the WAL would have. Returns its padded size. */
static size_t put_record(const char *path, size_t off, uint8_t type, const uint8_t *payload,
			 size_t n)
{
	uint8_t rec[256] = { 0 };
	size_t total = (WAL_REC_HDR + 1 + n + WAL_ALIGN - 1) & ~(size_t)(WAL_ALIGN - 1);
	assert_true(total <= sizeof(rec));
	rec[WAL_REC_HDR] = type;
	memcpy(rec + WAL_REC_HDR + 1, payload, n);
	wal_put32(rec, (uint32_t)(n + 1));
	wal_put32(rec + 4, raft_crc32c(0, rec + WAL_REC_HDR, n + 1));
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, rec, total, (off_t)off), (ssize_t)total);
	close(fd);
	return total;
}

static size_t pack_entry(uint8_t *buf, uint64_t term, uint64_t index)
{
	raft_entry_t *e = raft_entry_new(term, index, RAFT_ENTRY_NORMAL, "zz", 2);
	size_t n = raftpb__entry__pack(e, buf);
	raft_entry_free(e);
	return n;
}

typedef struct bad_record {
	const char *why;           /* expected in the error */
	uint8_t type;
	uint64_t a, b, c;          /* payload: an entry's term and index, or three words */
	size_t len;                /* payload length for word payloads (0: 24) */
} bad_record_t;

static const bad_record_t bad_records[] = {
	{ "entry index leaves a gap", WAL_REC_ENTRY, 1, 9, 0, 0 },
	{ "undecodable entry", WAL_REC_ENTRY, 0, 0, 0, 1 },
	{ "unknown record type", 9, 1, 2, 3, 0 },
	{ "bad hard state record", WAL_REC_HARD_STATE, 1, 2, 3, 16 },
	{ "bad snapshot marker", WAL_REC_SNAPSHOT, 1, 2, 3, 8 },
	{ "unknown snapshot marker kind", WAL_REC_SNAPSHOT, 1, 3, 7, 0 },
	{ "created snapshot marker past the end", WAL_REC_SNAPSHOT, 1, 6, WAL_SNAP_CREATED, 0 },
	{ "snapshot marker term differs", WAL_REC_SNAPSHOT, 5, 3, WAL_SNAP_CREATED, 0 },
	{ "snapshot marker is not newer", WAL_REC_SNAPSHOT, 1, 0, WAL_SNAP_RECEIVED, 0 },
	{ "segment header in the middle", WAL_REC_SEGMENT, 0, 0, 0, 32 },
};

static void test_checksummed_nonsense_at_the_tail_is_corruption(void **state)
{
	fx_t *f = *state;
	for (size_t k = 0; k < sizeof(bad_records) / sizeof(bad_records[0]); k++) {
		const bad_record_t *b = &bad_records[k];
		wal_open_ok(f);
		if (last_index(f->w) == 0)
			assert_int_equal(save_batch(f->w, 1, 5, 1, NULL, true), RAFT_OK);
		wal_close(f);
		char path[256];
		file_image_t im;
		segment_path(f, 0, path, sizeof(path));
		image_load(&im, path);
		size_t end = im.framed_end[im.n - 1];
		end = (end + WAL_ALIGN - 1) & ~(size_t)(WAL_ALIGN - 1);
		uint8_t payload[64] = { 0xff, 0xff, 0xff };
		size_t n = b->len ? b->len : 24;
		if (b->type == WAL_REC_ENTRY && !b->len)
			n = pack_entry(payload, b->a, b->b);
		else if (b->type != WAL_REC_ENTRY) {
			wal_put64(payload, b->a);
			wal_put64(payload + 8, b->b);
			wal_put64(payload + 16, b->c);
		}
		put_record(path, end, b->type, payload, n);
		raft_wal_t *w = NULL;
		int rc = wal_open_rc(f, &w);
		char at[64];
		snprintf(at, sizeof(at), "at offset %zu: %s", end, b->why);
		if (rc != RAFT_ERR_CORRUPT || !strstr(f->err, at) || !strstr(f->err, path))
			fail_msg("case %zu: %s (%s)", k, raft_strerror(rc), f->err);
		image_restore(&im, path, im.len, 0); /* undo for the next case */
		free(im.buf);
	}
}

static void test_segment_that_does_not_continue_the_log_is_corruption(void **state)
{
	fx_t *f = *state;
	f->seg_size = 512;
	wal_open_ok(f);
	for (uint64_t i = 1; i <= 40; i += 2)
		assert_int_equal(save_batch(f->w, i, 2, 1, NULL, true), RAFT_OK);
	wal_close(f);
	char path[256], renamed[256];
	segment_path(f, 1, path, sizeof(path));
	unsigned long long seq, first;
	assert_int_equal(sscanf(strrchr(path, '/') + 1, "%16llx-%16llx", &seq, &first), 2);
	/* a header (and name) claiming one entry more before it than there is */
	uint8_t payload[32];
	memcpy(payload, WAL_MAGIC, 8);
	wal_put64(payload + 8, 1);
	wal_put64(payload + 16, first);
	wal_put64(payload + 24, 1);
	put_record(path, 0, WAL_REC_SEGMENT, payload, sizeof(payload));
	snprintf(renamed, sizeof(renamed), "%s/wal/" WAL_SEGMENT_FMT, f->dir, 1ull, first + 1);
	assert_int_equal(rename(path, renamed), 0);
	raft_wal_t *w = NULL;
	assert_int_equal(wal_open_rc(f, &w), RAFT_ERR_CORRUPT);
	assert_non_null(strstr(f->err, renamed));
	assert_non_null(strstr(f->err, "at offset 0: segment continues from index"));
	/* a name that does not match the header */
	assert_int_equal(rename(renamed, path), 0);
	assert_int_equal(wal_open_rc(f, &w), RAFT_ERR_CORRUPT);
	assert_non_null(strstr(f->err, "does not match the file name"));
}

/* ---- power cuts at random points ---- */

#define MODEL_MAX 4096

typedef struct model {
	uint64_t terms[MODEL_MAX];   /* terms[i]: term of entry i, 1..last */
	uint64_t last;
	raft_hard_state_t hs;
} model_t;

typedef struct save_op {
	uint64_t lo;
	size_t n;
	uint64_t term;
	bool has_hs;
	raft_hard_state_t hs;
} save_op_t;

static void model_entries(model_t *m, uint64_t lo, size_t n, uint64_t term)
{
	for (size_t i = 0; i < n; i++)
		m->terms[lo + i] = term;
	m->last = lo + n - 1;
}

static bool model_matches(const model_t *m, raft_wal_t *w)
{
	if (last_index(w) != m->last)
		return false;
	raft_storage_t s = raft_wal_storage(w);
	raft_hard_state_t hs;
	s.ops->initial_state(s.ctx, &hs);
	if (hs.term != m->hs.term || hs.vote != m->hs.vote || hs.commit != m->hs.commit)
		return false;
	for (uint64_t i = 1; i <= m->last; i++)
		if (!entry_is(w, i, m->terms[i]))
			return false;
	return true;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The recovered log must be the synced state with a prefix of the later saves applied,
 * record by record (a save's entries, then its hard state). */
static bool recovered_is_a_prefix(raft_wal_t *w, const model_t *synced, const save_op_t *ops,
				  size_t n_ops, model_t *out)
{
	model_t *m = malloc(sizeof(*m));
	assert_non_null(m);
	*m = *synced;
	bool ok = model_matches(m, w);
	for (size_t j = 0; j < n_ops && !ok; j++) {
		for (size_t p = 1; p <= ops[j].n && !ok; p++) {
			model_entries(m, ops[j].lo, p, ops[j].term);
			ok = model_matches(m, w);
		}
		if (ops[j].has_hs && !ok) {
			m->hs = ops[j].hs;
			ok = model_matches(m, w);
		}
	}
	if (ok)
		*out = *m;
	free(m);
	return ok;
}

static void test_power_cuts_keep_every_synced_entry(void **state)
{
	fx_t *f = *state;
	f->seg_size = 2048;
	model_t *synced = calloc(1, sizeof(*synced)), *cur = calloc(1, sizeof(*cur));
	assert_non_null(synced);
	assert_non_null(cur);
	uint64_t seed = 0x9e3779b97f4a7c15ull, term = 1;
	wal_open_ok(f);
	for (int round = 0; round < 150; round++) {
		save_op_t ops[12];
		size_t n_ops = 0;
		size_t saves = 1 + rnd(&seed) % 10;
		for (size_t k = 0; k < saves && cur->last < MODEL_MAX - 40; k++) {
			save_op_t op = { .lo = cur->last + 1, .n = 1 + rnd(&seed) % 8,
					 .term = term };
			if (cur->last > 3 && rnd(&seed) % 5 == 0) {
				op.lo = cur->last - rnd(&seed) % 4; /* a new leader's suffix */
				op.term = ++term;
			}
			op.has_hs = rnd(&seed) % 2;
			op.hs = (raft_hard_state_t){ term, 1 + rnd(&seed) % 3, op.lo - 1 };
			bool sync = rnd(&seed) % 3 == 0;
			assert_int_equal(save_batch(f->w, op.lo, op.n, op.term,
						    op.has_hs ? &op.hs : NULL, sync),
					 RAFT_OK);
			model_entries(cur, op.lo, op.n, op.term);
			if (op.has_hs)
				cur->hs = op.hs;
			if (sync) {
				*synced = *cur;
				n_ops = 0;
			} else {
				ops[n_ops++] = op;
			}
		}
		uint64_t r = rnd(&seed) % 8;
		uint64_t keep = r == 0 ? 0 : r == 1 ? UINT64_MAX : rnd(&seed) % 400;
		raft_wal_crash(f->w, keep);
		f->w = NULL;
		wal_open_ok(f);
		if (!recovered_is_a_prefix(f->w, synced, ops, n_ops, cur))
			fail_msg("round %d (keep %llu): recovered log (last %llu) is not the "
				 "synced log (last %llu) plus a prefix of what followed", round,
				 (unsigned long long)keep, (unsigned long long)last_index(f->w),
				 (unsigned long long)synced->last);
		*synced = *cur; /* what a reopen found is on disk now */
	}
	assert_true(count_files(f, "wal", ".wal") > 3);
	free(synced);
	free(cur);
}

static void test_crash_keeping_everything_loses_nothing(void **state)
{
	fx_t *f = *state;
	wal_open_ok(f);
	assert_int_equal(save_batch(f->w, 1, 5, 1, NULL, true), RAFT_OK);
	assert_int_equal(save_batch(f->w, 6, 5, 1, NULL, false), RAFT_OK);
	raft_wal_crash(f->w, UINT64_MAX);
	f->w = NULL;
	wal_open_ok(f);
	assert_int_equal(last_index(f->w), 10);
	assert_int_equal(save_batch(f->w, 11, 5, 1, NULL, false), RAFT_OK);
	raft_wal_crash(f->w, 0);
	f->w = NULL;
	wal_open_ok(f);
	assert_int_equal(last_index(f->w), 10);
}

/* ---- crashes inside snapshot steps ---- */

static void fill_log(fx_t *f, uint64_t n)
{
	f->seg_size = 512;
	wal_open_ok(f);
	for (uint64_t i = 1; i <= n; i += 4)
		assert_int_equal(save_batch(f->w, i, 4, 1, NULL, true), RAFT_OK);
	raft_hard_state_t hs = { 1, 1, n };
	assert_int_equal(raft_wal_save(f->w, &hs, NULL, 0, true), RAFT_OK);
	raft_conf_t conf = { .n_voters = 1, .voters = { 1 } };
	/* two older snapshots so that pruning has something to do */
	assert_int_equal(raft_wal_create_snapshot(f->w, 40, &conf, "a", 1, 20), RAFT_OK);
	assert_int_equal(raft_wal_create_snapshot(f->w, 60, &conf, "b", 1, 40), RAFT_OK);
}

static uint64_t snap_index(raft_wal_t *w)
{
	raft_storage_t s = raft_wal_storage(w);
	const raft_snapshot_t *snap;
	s.ops->snapshot(s.ctx, &snap);
	return snap->metadata->index;
}

static void crash_in_create_snapshot(fx_t *f, enum wal_step step, size_t *segs_before,
				     size_t *segs_after)
{
	fill_log(f, 200);
	raft_conf_t conf = { .n_voters = 1, .voters = { 1 } };
	*segs_before = count_files(f, "wal", ".wal");
	wal_test_stop_after(f->w, step);
	assert_int_equal(raft_wal_create_snapshot(f->w, 180, &conf, "c", 1, 170), RAFT_OK);
	raft_wal_crash(f->w, 0);
	f->w = NULL;
	*segs_after = count_files(f, "wal", ".wal");
	wal_open_ok(f);
	assert_int_equal(last_index(f->w), 200);
	for (uint64_t i = first_index(f->w); i <= 200; i++)
		assert_true(entry_is(f->w, i, 1));
	raft_storage_t s = raft_wal_storage(f->w);
	raft_hard_state_t hs;
	s.ops->initial_state(s.ctx, &hs);
	assert_int_equal(hs.commit, 200);
}

/* Then the next snapshot cleans up whatever the crash left. */
static void assert_next_snapshot_tidies(fx_t *f)
{
	raft_conf_t conf = { .n_voters = 1, .voters = { 1 } };
	assert_int_equal(raft_wal_create_snapshot(f->w, 195, &conf, "d", 1, 190), RAFT_OK);
	assert_int_equal(count_files(f, "snap", ".snap"), 2);
	assert_true(count_files(f, "wal", ".wal") <= 3);
	wal_close(f);
	wal_open_ok(f);
	assert_int_equal(snap_index(f->w), 195);
	assert_int_equal(first_index(f->w), 196);
	assert_true(entry_is(f->w, 200, 1));
}

static void test_crash_after_snapshot_file_before_marker(void **state)
{
	fx_t *f = *state;
	size_t before, after;
	crash_in_create_snapshot(f, WAL_STEP_SNAP_FILE, &before, &after);
	assert_int_equal(snap_index(f->w), 60); /* the new file is an orphan */
	assert_int_equal(first_index(f->w), 61);
	assert_int_equal(count_files(f, "snap", ".snap"), 2); /* and was deleted */
	assert_int_equal(after, before);
	assert_next_snapshot_tidies(f);
}

static void test_crash_after_marker_before_release(void **state)
{
	fx_t *f = *state;
	size_t before, after;
	crash_in_create_snapshot(f, WAL_STEP_MARKER, &before, &after);
	assert_int_equal(snap_index(f->w), 180);
	assert_int_equal(first_index(f->w), 181);
	assert_int_equal(after, before);
	assert_int_equal(count_files(f, "snap", ".snap"), 3);
	assert_next_snapshot_tidies(f);
}

static void test_crash_in_the_middle_of_releasing_segments(void **state)
{
	fx_t *f = *state;
	size_t before, after;
	crash_in_create_snapshot(f, WAL_STEP_RELEASE_ONE, &before, &after);
	assert_int_equal(after, before - 1);
	assert_int_equal(snap_index(f->w), 180);
	assert_next_snapshot_tidies(f);
}

static void test_crash_after_release_before_pruning_snapshots(void **state)
{
	fx_t *f = *state;
	size_t before, after;
	crash_in_create_snapshot(f, WAL_STEP_RELEASE, &before, &after);
	assert_true(after < before - 5);
	assert_int_equal(count_files(f, "snap", ".snap"), 3);
	assert_int_equal(snap_index(f->w), 180);
	assert_next_snapshot_tidies(f);
}

static void crash_in_save_snapshot(fx_t *f, enum wal_step step)
{
	fill_log(f, 100);
	raft_snapshot_t snap = RAFTPB__SNAPSHOT__INIT;
	Raftpb__SnapshotMetadata md = RAFTPB__SNAPSHOT_METADATA__INIT;
	md.index = 150;
	md.term = 4;
	snap.metadata = &md;
	snap.data.data = (uint8_t *)"leader";
	snap.data.len = 6;
	wal_test_stop_after(f->w, step);
	assert_int_equal(raft_wal_save_snapshot(f->w, &snap), RAFT_OK);
	raft_wal_crash(f->w, 0);
	f->w = NULL;
	wal_open_ok(f);
}

static void test_crash_in_save_snapshot_before_marker_keeps_old_log(void **state)
{
	fx_t *f = *state;
	crash_in_save_snapshot(f, WAL_STEP_SNAP_FILE);
	assert_int_equal(snap_index(f->w), 60);
	assert_int_equal(last_index(f->w), 100);
	assert_true(entry_is(f->w, 100, 1));
	assert_int_equal(count_files(f, "snap", ".snap"), 2);
}

static void test_crash_in_save_snapshot_after_marker_restarts_log(void **state)
{
	fx_t *f = *state;
	crash_in_save_snapshot(f, WAL_STEP_MARKER);
	assert_int_equal(snap_index(f->w), 150);
	assert_int_equal(first_index(f->w), 151);
	assert_int_equal(last_index(f->w), 150);
	raft_storage_t s = raft_wal_storage(f->w);
	const raft_snapshot_t *snap;
	s.ops->snapshot(s.ctx, &snap);
	assert_int_equal(snap->data.len, 6);
	assert_int_equal(save_batch(f->w, 151, 3, 4, NULL, true), RAFT_OK);
	wal_close(f);
	wal_open_ok(f);
	assert_int_equal(last_index(f->w), 153);
	assert_true(entry_is(f->w, 151, 4));
}

#define CRASH_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		CRASH_TEST(test_cut_at_every_byte_of_last_record_drops_only_it),
		CRASH_TEST(test_flip_of_any_byte_of_last_record_is_a_torn_tail),
		CRASH_TEST(test_flip_in_a_record_followed_by_valid_ones_is_corruption),
		CRASH_TEST(test_damage_at_the_end_of_an_older_segment_is_corruption),
		CRASH_TEST(test_bad_header_of_newest_segment_is_corruption),
		CRASH_TEST(test_leftover_temporary_segment_is_removed),
		CRASH_TEST(test_checksummed_nonsense_at_the_tail_is_corruption),
		CRASH_TEST(test_segment_that_does_not_continue_the_log_is_corruption),
		CRASH_TEST(test_power_cuts_keep_every_synced_entry),
		CRASH_TEST(test_crash_keeping_everything_loses_nothing),
		CRASH_TEST(test_crash_after_snapshot_file_before_marker),
		CRASH_TEST(test_crash_after_marker_before_release),
		CRASH_TEST(test_crash_in_the_middle_of_releasing_segments),
		CRASH_TEST(test_crash_after_release_before_pruning_snapshots),
		CRASH_TEST(test_crash_in_save_snapshot_before_marker_keeps_old_log),
		CRASH_TEST(test_crash_in_save_snapshot_after_marker_restarts_log),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
