/* raft/wal.c — the durable log: segments of checksummed records in <dir>/wal/, replayed on
 * open into a raft_memstorage_t that the core reads. Owns every write to wal/ and the
 * directory lock; never lets a record it cannot verify into memory, never aborts on disk
 * contents (bad bytes become RAFT_ERR_CORRUPT with the file and offset).
 *
 * Segments. wal/%016llx-%016llx.wal (sequence, first index it may hold) is preallocated
 * with zeros and starts with a SEGMENT record (magic, sequence, the index and term of the
 * log's last entry when it was cut) followed by the current hard state, so deleting older
 * segments never loses the hard state. A segment is cut when the next record would not fit:
 * the old one is fdatasynced first, the new one is written under a .tmp name, synced and
 * renamed, then wal/ is fsynced. Hence every segment but the last is complete and durable,
 * and the last one always has its header.
 *
 * Replay. Records apply in file order: an ENTRY at or below the snapshot base is ignored,
 * one at index <= last replaces the log from there (a new leader's suffix), one past
 * last+1 is corruption; the last HARD_STATE wins; a SNAPSHOT marker names a snap/ file and
 * moves the base (a received one empties the log, a created one drops entries <= its
 * index). The newest marker's file is loaded, then the entries after it. Live writes keep
 * the same bookkeeping (wal_track_t) so that what is in memory is what a replay rebuilds.
 *
 * Torn tail versus corruption. A record is bad when its length runs past the end of the
 * file or its CRC fails; an all-zero header means "nothing written past here". A record
 * that checksums but makes no sense (unknown type, undecodable, a gap in the log) was
 * written that way, so it is corruption wherever it is, never a torn tail. When a bad
 * record (or a zero header) is found at offset X, every 8-aligned offset after X is probed
 * for a record that frames and checksums: if one exists, the damage is in the middle of
 * data that was once written in order, which no crash of an append-only writer produces, so
 * it is RAFT_ERR_CORRUPT. If none exists, X is where the writing stopped: in the last
 * segment it is a torn write, cut off on open (the file is truncated at X and
 * re-preallocated); in any other segment (complete and synced by the rule above) a bad
 * record is corruption. The rule's blind spots: bit rot inside the very last record is
 * indistinguishable from a torn write and is cut; a record whose payload itself holds a
 * well-formed WAL record at an aligned offset would make its own torn write look like
 * corruption; and a power cut that persists later pages of one unsynced write but not
 * earlier ones reads as corruption (none of that data was acknowledged, but the rule cannot
 * know). Entries are written before the hard state of the same call, so a torn call never
 * leaves a commit index pointing past the durable entries.
 *
 * Snapshots. A snapshot's file is written (and synced) before its marker, the marker before
 * memory changes, memory before segments and old files are deleted. A crash after the file
 * but before the marker leaves an orphan that open deletes; after the marker, open loads it;
 * segments are released oldest first with wal/ fsynced after each, so what is left is
 * always a contiguous run whose first header gives the base. Releasing stops at the first
 * segment holding an entry above compact_index, so stale entries of a deposed leader hold
 * back release until the compact index passes them. Like etcd, a reopen starts the log
 * right after the newest snapshot: entries kept in memory between compact_index and the
 * snapshot's index are not rebuilt (first_index moves up to snapshot index + 1).
 *
 * Crash bookkeeping. Every fdatasync (a synced save, a marker, a segment cut) is a sync
 * point; with no_sync the same points count as synced, so raft_wal_crash models a disk
 * that honours exactly the syncs the real mode would issue. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raft_int.h"
#include "wal_int.h"

#define WAL_DEFAULT_SEGMENT_SIZE (64ull << 20)
#define WAL_SEGMENT_PAYLOAD 32 /* magic, sequence, previous index and term */
#define WAL_STATE_PAYLOAD 24   /* hard state: term, vote, commit; marker: term, index, kind */
#define WAL_SEGMENT_NAME_LEN 37
#define WAL_TMP_SUFFIX ".tmp"
#define WAL_ERRLEN 1024
#define WAL_PATHLEN 4096

/* The log as a replay of the records written so far sees it. */
typedef struct wal_track {
	uint64_t base, base_term;  /* entries <= base are covered by a snapshot */
	uint64_t last, last_term;  /* the log's last index (== base when empty) */
	uint64_t snap_term, snap_index; /* newest snapshot marker (0: none) */
} wal_track_t;

typedef struct wal_segment {
	uint64_t seq;
	uint64_t first;            /* from the name: previous index + 1 when cut */
	uint64_t max_index;        /* highest entry index written in it (0: none) */
} wal_segment_t;

struct raft_wal {
	char *dir, *waldir, *snapdir;
	raft_wal_options_t opt;
	int lock_fd;
	raft_memstorage_t *ms;
	wal_track_t tk;
	raft_hard_state_t hs;      /* the last hard state written, repeated in new segments */
	bool have_hs;
	wal_segment_t *segs;       /* ascending sequence; the last is the tail */
	size_t n_segs, cap_segs;
	int fd;                    /* the tail segment */
	uint64_t off;              /* end of the data in the tail */
	uint64_t seg_min;          /* end of the records the tail was created with */
	uint64_t synced;           /* tail bytes as of the last sync point */
	uint8_t *buf;              /* records of the current call not yet written */
	size_t buf_len, buf_cap;
	bool failed;               /* a write failed: disk and memory may differ, refuse more */
	enum wal_step stop_after;
	char err[WAL_ERRLEN];
};

void raft_wal_options_default(raft_wal_options_t *opt)
{
	opt->segment_size = WAL_DEFAULT_SEGMENT_SIZE;
	opt->no_sync = false;
}

raft_storage_t raft_wal_storage(raft_wal_t *w)
{
	return raft_memstorage_storage(w->ms);
}

const char *raft_wal_error(const raft_wal_t *w)
{
	return w->err;
}

void wal_test_stop_after(raft_wal_t *w, enum wal_step step)
{
	w->stop_after = step;
}

static bool wal_stop(const raft_wal_t *w, enum wal_step step)
{
	return w->stop_after == step;
}

/* ---- bookkeeping shared by replay and live writes ---- */

/* Whether an entry changes the log (false: at or below the base, ignored). */
static const char *track_entry(wal_track_t *t, uint64_t index, uint64_t term, bool *keep)
{
	*keep = false;
	if (index <= t->base)
		return NULL;
	if (index > t->last + 1)
		return "entry index leaves a gap in the log";
	t->last = index;
	t->last_term = term;
	*keep = true;
	return NULL;
}

/* term_at is the term of the log's entry at index when base < index <= last. */
static const char *track_snapshot(wal_track_t *t, uint64_t term, uint64_t index, int kind,
				  uint64_t term_at)
{
	if (index <= t->snap_index)
		return "snapshot marker is not newer than the previous one";
	if (kind == WAL_SNAP_RECEIVED) {
		t->base = t->last = index;
		t->base_term = t->last_term = term;
	} else if (kind == WAL_SNAP_CREATED) {
		if (index > t->last)
			return "created snapshot marker past the end of the log";
		if (index >= t->base) {
			if (term != (index == t->base ? t->base_term : term_at))
				return "snapshot marker term differs from the log's";
			t->base = index;
			t->base_term = term;
		}
		/* else (replay only): an older snapshot than where the surviving segments
		 * begin, superseded by a newer marker further on */
	} else {
		return "unknown snapshot marker kind";
	}
	t->snap_term = term;
	t->snap_index = index;
	return NULL;
}

/* ---- record encoding ---- */

static size_t rec_size(size_t payload)
{
	return (WAL_REC_HDR + 1 + payload + WAL_ALIGN - 1) & ~(size_t)(WAL_ALIGN - 1);
}

/* Frames the payload already at dst + WAL_REC_HDR + 1; returns the record's size. */
static size_t rec_seal(uint8_t *dst, uint8_t type, size_t payload)
{
	size_t total = rec_size(payload);
	dst[WAL_REC_HDR] = type;
	wal_put32(dst, (uint32_t)(payload + 1));
	wal_put32(dst + 4, raft_crc32c(0, dst + WAL_REC_HDR, payload + 1));
	memset(dst + WAL_REC_HDR + 1 + payload, 0, total - (WAL_REC_HDR + 1 + payload));
	return total;
}

static void put_triple(uint8_t *p, uint64_t a, uint64_t b, uint64_t c)
{
	wal_put64(p, a);
	wal_put64(p + 8, b);
	wal_put64(p + 16, c);
}

/* ---- errors ---- */

static int wal_io_fail(raft_wal_t *w, const char *what, const char *path)
{
	int e = errno;
	w->failed = true;
	return wal_errf(w->err, sizeof(w->err), RAFT_ERR_IO, "wal: %s %s: %s", what, path,
			strerror(e));
}

static int wal_corrupt(raft_wal_t *w, const char *path, uint64_t off, const char *why)
{
	return wal_errf(w->err, sizeof(w->err), RAFT_ERR_CORRUPT,
			"wal: corrupt record in %s at offset %llu: %s", path,
			(unsigned long long)off, why);
}

static void seg_path(const raft_wal_t *w, char *buf, size_t len, const wal_segment_t *s)
{
	snprintf(buf, len, "%s/" WAL_SEGMENT_FMT, w->waldir, (unsigned long long)s->seq,
		 (unsigned long long)s->first);
}

static int wal_push_segment(raft_wal_t *w, uint64_t seq, uint64_t first)
{
	void *arr = w->segs;
	if (array_grow(&arr, &w->cap_segs, w->n_segs, sizeof(*w->segs)))
		return RAFT_ERR_NOMEM;
	w->segs = arr;
	w->segs[w->n_segs++] = (wal_segment_t){ .seq = seq, .first = first, .max_index = 0 };
	return RAFT_OK;
}

/* ---- writing ---- */

static int wal_prealloc(int fd, uint64_t size)
{
	int e = posix_fallocate(fd, 0, (off_t)size);
	if (e == 0 || e == EINVAL || e == EOPNOTSUPP)
		return RAFT_OK; /* a filesystem that cannot preallocate still works, slower */
	errno = e;
	return RAFT_ERR_IO;
}

/* Creates segment seq, continuing from (prev, prev_term), durable before it is visible. */
static int wal_segment_create(raft_wal_t *w, uint64_t seq, uint64_t prev, uint64_t prev_term,
			      int *fd_out, uint64_t *len_out)
{
	char path[WAL_PATHLEN], tmp[WAL_PATHLEN + sizeof(WAL_TMP_SUFFIX)];
	wal_segment_t s = { .seq = seq, .first = prev + 1 };
	seg_path(w, path, sizeof(path), &s);
	snprintf(tmp, sizeof(tmp), "%s" WAL_TMP_SUFFIX, path);

	uint8_t hdr[96];
	uint8_t *p = hdr + WAL_REC_HDR + 1;
	memcpy(p, WAL_MAGIC, 8);
	put_triple(p + 8, seq, prev, prev_term);
	size_t len = rec_seal(hdr, WAL_REC_SEGMENT, WAL_SEGMENT_PAYLOAD);
	if (w->have_hs) {
		put_triple(hdr + len + WAL_REC_HDR + 1, w->hs.term, w->hs.vote, w->hs.commit);
		len += rec_seal(hdr + len, WAL_REC_HARD_STATE, WAL_STATE_PAYLOAD);
	}

	const char *what = "create";
	int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return wal_io_fail(w, what, tmp);
	if ((what = "preallocate", wal_prealloc(fd, w->opt.segment_size)) ||
	    (what = "write", wal_file_write_all(fd, hdr, len, 0)) ||
	    (what = "fdatasync", !w->opt.no_sync && fdatasync(fd)) ||
	    (what = "rename", rename(tmp, path))) {
		int rc = wal_io_fail(w, what, tmp);
		close(fd);
		unlink(tmp);
		return rc;
	}
	if (!w->opt.no_sync && wal_file_sync_dir(w->waldir)) {
		close(fd);
		return wal_io_fail(w, "fsync", w->waldir);
	}
	*fd_out = fd;
	*len_out = len;
	return RAFT_OK;
}

static int wal_flush(raft_wal_t *w)
{
	if (!w->buf_len)
		return RAFT_OK;
	if (wal_file_write_all(w->fd, w->buf, w->buf_len, w->off)) {
		char path[WAL_PATHLEN];
		seg_path(w, path, sizeof(path), &w->segs[w->n_segs - 1]);
		w->buf_len = 0;
		return wal_io_fail(w, "write", path);
	}
	w->off += w->buf_len;
	w->buf_len = 0;
	return RAFT_OK;
}

/* Everything written so far becomes durable; with no_sync it only counts as durable for
 * raft_wal_crash. */
static int wal_sync_point(raft_wal_t *w)
{
	if (!w->opt.no_sync && fdatasync(w->fd)) {
		char path[WAL_PATHLEN];
		seg_path(w, path, sizeof(path), &w->segs[w->n_segs - 1]);
		return wal_io_fail(w, "fdatasync", path);
	}
	w->synced = w->off;
	return RAFT_OK;
}

static int wal_rotate(raft_wal_t *w)
{
	int rc, fd;
	uint64_t len;
	if ((rc = wal_flush(w)) || (rc = wal_sync_point(w)))
		return rc;
	uint64_t seq = w->segs[w->n_segs - 1].seq + 1;
	if ((rc = wal_segment_create(w, seq, w->tk.last, w->tk.last_term, &fd, &len)))
		return rc;
	if (wal_push_segment(w, seq, w->tk.last + 1)) {
		close(fd);
		w->failed = true;
		return wal_errf(w->err, sizeof(w->err), RAFT_ERR_NOMEM, "wal: out of memory");
	}
	close(w->fd);
	w->fd = fd;
	w->off = w->seg_min = w->synced = len;
	return RAFT_OK;
}

/* Room for one record with payload bytes at the end of the pending buffer, cutting a new
 * segment first when it would not fit (a segment always takes at least one record).
 * Returns where its payload goes. */
static int wal_reserve(raft_wal_t *w, size_t payload, uint8_t **out)
{
	size_t total = rec_size(payload);
	uint64_t end = w->off + w->buf_len;
	int rc;
	if (end > w->seg_min && end + total > w->opt.segment_size && (rc = wal_rotate(w)))
		return rc;
	if (w->buf_len + total > w->buf_cap) {
		size_t cap = w->buf_cap ? w->buf_cap : 4096;
		while (cap < w->buf_len + total)
			cap *= 2;
		uint8_t *b = realloc(w->buf, cap);
		if (!b) {
			w->failed = true;
			return wal_errf(w->err, sizeof(w->err), RAFT_ERR_NOMEM,
					"wal: out of memory");
		}
		w->buf = b;
		w->buf_cap = cap;
	}
	*out = w->buf + w->buf_len + WAL_REC_HDR + 1;
	return RAFT_OK;
}

static void wal_commit_record(raft_wal_t *w, uint8_t type, size_t payload)
{
	w->buf_len += rec_seal(w->buf + w->buf_len, type, payload);
}

static int wal_add_entry(raft_wal_t *w, const raft_entry_t *e)
{
	size_t sz = raftpb__entry__get_packed_size(e);
	uint8_t *p;
	int rc = wal_reserve(w, sz, &p);
	if (rc)
		return rc;
	raftpb__entry__pack(e, p);
	wal_commit_record(w, WAL_REC_ENTRY, sz);
	bool keep;
	track_entry(&w->tk, e->index, e->term, &keep); /* checked by wal_check_entries */
	wal_segment_t *s = &w->segs[w->n_segs - 1];
	if (e->index > s->max_index)
		s->max_index = e->index;
	return RAFT_OK;
}

static int wal_add_hard_state(raft_wal_t *w, const raft_hard_state_t *hs)
{
	uint8_t *p;
	int rc = wal_reserve(w, WAL_STATE_PAYLOAD, &p);
	if (rc)
		return rc;
	put_triple(p, hs->term, hs->vote, hs->commit);
	wal_commit_record(w, WAL_REC_HARD_STATE, WAL_STATE_PAYLOAD);
	w->hs = *hs;
	w->have_hs = true;
	return RAFT_OK;
}

/* Writes a snapshot marker and makes it durable. */
static int wal_add_marker(raft_wal_t *w, uint64_t term, uint64_t index, int kind)
{
	uint8_t *p;
	int rc = wal_reserve(w, WAL_STATE_PAYLOAD, &p);
	if (rc)
		return rc;
	put_triple(p, term, index, (uint64_t)kind);
	wal_commit_record(w, WAL_REC_SNAPSHOT, WAL_STATE_PAYLOAD);
	uint64_t term_at = 0;
	raft_storage_t st = raft_memstorage_storage(w->ms);
	if (kind == WAL_SNAP_CREATED)
		st.ops->term(st.ctx, index, &term_at);
	track_snapshot(&w->tk, term, index, kind, term_at);
	if ((rc = wal_flush(w)) || (rc = wal_sync_point(w)))
		return rc;
	return RAFT_OK;
}

/* Checks a batch before anything is written; *skip counts the leading entries at or below
 * the snapshot base, which replay would ignore and so are not written either. */
static int wal_check_entries(raft_wal_t *w, raft_entry_t *const *ents, size_t n, size_t *skip)
{
	*skip = 0;
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && ents[i]->index != ents[i - 1]->index + 1)
			return wal_errf(w->err, sizeof(w->err), RAFT_ERR_INVALID_MSG,
					"wal: entries %llu and %llu are not consecutive",
					(unsigned long long)ents[i - 1]->index,
					(unsigned long long)ents[i]->index);
		if (ents[i]->data.len > UINT32_MAX - 64)
			return wal_errf(w->err, sizeof(w->err), RAFT_ERR_INVALID_MSG,
					"wal: entry %llu is too large",
					(unsigned long long)ents[i]->index);
		if (ents[i]->index <= w->tk.base)
			*skip = i + 1;
	}
	if (*skip < n && ents[*skip]->index > w->tk.last + 1)
		return wal_errf(w->err, sizeof(w->err), RAFT_ERR_UNAVAILABLE,
				"wal: entry %llu would leave a gap after the last index %llu",
				(unsigned long long)ents[*skip]->index,
				(unsigned long long)w->tk.last);
	return RAFT_OK;
}

static int wal_refuse_failed(raft_wal_t *w)
{
	return w->failed ? RAFT_ERR_IO : RAFT_OK;
}

int raft_wal_save(raft_wal_t *w, const raft_hard_state_t *hs, raft_entry_t *const *ents,
		  size_t n, bool sync)
{
	size_t skip;
	int rc;
	if ((rc = wal_refuse_failed(w)) || (rc = wal_check_entries(w, ents, n, &skip)))
		return rc;
	for (size_t i = skip; i < n; i++)
		if ((rc = wal_add_entry(w, ents[i])))
			return rc;
	if (hs && (rc = wal_add_hard_state(w, hs)))
		return rc;
	if ((rc = wal_flush(w)) || (sync && (rc = wal_sync_point(w))))
		return rc;
	if ((n > skip && (rc = raft_memstorage_append(w->ms, ents + skip, n - skip))) ||
	    (hs && (rc = raft_memstorage_set_hard_state(w->ms, hs)))) {
		w->failed = true; /* memory no longer matches the disk */
		return wal_errf(w->err, sizeof(w->err), rc, "wal: in-memory log: %s",
				raft_strerror(rc));
	}
	return RAFT_OK;
}

/* ---- snapshots ---- */

static int wal_prune_snapfiles(raft_wal_t *w)
{
	snapfile_id_t *ids;
	size_t n, kept = 0;
	int rc = snapfile_list(w->snapdir, &ids, &n, w->err, sizeof(w->err));
	if (rc)
		return rc;
	for (size_t i = n; i-- > 0;) {
		if (ids[i].index > w->tk.snap_index)
			continue; /* not ours to judge here; open deletes orphans */
		if (kept++ < 2)
			continue;
		if ((rc = snapfile_remove(w->snapdir, ids[i].term, ids[i].index, w->err,
					  sizeof(w->err))))
			break;
	}
	free(ids);
	return rc;
}

int raft_wal_save_snapshot(raft_wal_t *w, const raft_snapshot_t *snap)
{
	int rc;
	if ((rc = wal_refuse_failed(w)))
		return rc;
	if (!snap->metadata || snap->metadata->index == 0)
		return wal_errf(w->err, sizeof(w->err), RAFT_ERR_INVALID_MSG,
				"wal: snapshot without metadata");
	uint64_t term = snap->metadata->term, index = snap->metadata->index;
	if (index <= w->tk.snap_index)
		return wal_errf(w->err, sizeof(w->err), RAFT_ERR_SNAP_OUT_OF_DATE,
				"wal: snapshot at %llu is not newer than %llu",
				(unsigned long long)index, (unsigned long long)w->tk.snap_index);
	if ((rc = snapfile_write(w->snapdir, snap, !w->opt.no_sync, w->err, sizeof(w->err))))
		return rc;
	if (wal_stop(w, WAL_STEP_SNAP_FILE))
		return RAFT_OK;
	if ((rc = wal_add_marker(w, term, index, WAL_SNAP_RECEIVED)))
		return rc;
	if (wal_stop(w, WAL_STEP_MARKER))
		return RAFT_OK;
	if ((rc = raft_memstorage_apply_snapshot(w->ms, snap))) {
		w->failed = true;
		return wal_errf(w->err, sizeof(w->err), rc, "wal: in-memory log: %s",
				raft_strerror(rc));
	}
	return wal_prune_snapfiles(w);
}

/* Deletes the oldest segments while all their entries are <= index, never the tail. */
static int wal_release_segments(raft_wal_t *w, uint64_t index)
{
	size_t k = 0;
	int rc = RAFT_OK;
	while (k + 1 < w->n_segs && w->segs[k].max_index <= index) {
		char path[WAL_PATHLEN];
		seg_path(w, path, sizeof(path), &w->segs[k]);
		if (unlink(path) && errno != ENOENT) {
			rc = wal_io_fail(w, "remove", path);
			break;
		}
		k++;
		/* one at a time: a crash must leave a contiguous run of segments */
		if (!w->opt.no_sync && wal_file_sync_dir(w->waldir)) {
			rc = wal_io_fail(w, "fsync", w->waldir);
			break;
		}
		if (wal_stop(w, WAL_STEP_RELEASE_ONE))
			break;
	}
	memmove(w->segs, w->segs + k, (w->n_segs - k) * sizeof(*w->segs));
	w->n_segs -= k;
	return rc;
}

static int wal_build_snapshot(raft_wal_t *w, uint64_t index, const raft_conf_t *conf,
			      const void *data, size_t len, raft_snapshot_t *s,
			      Raftpb__SnapshotMetadata *md, Raftpb__ConfState *cs)
{
	raft_storage_t st = raft_memstorage_storage(w->ms);
	raftpb__snapshot__init(s);
	raftpb__snapshot_metadata__init(md);
	raftpb__conf_state__init(cs);
	md->index = index;
	st.ops->term(st.ctx, index, &md->term);
	if (raft_conf_to_state(conf, cs))
		return wal_errf(w->err, sizeof(w->err), RAFT_ERR_NOMEM, "wal: out of memory");
	md->conf_state = cs;
	s->metadata = md;
	s->data.data = (uint8_t *)data;
	s->data.len = len;
	return RAFT_OK;
}

int raft_wal_create_snapshot(raft_wal_t *w, uint64_t index, const raft_conf_t *conf,
			     const void *data, size_t len, uint64_t compact_index)
{
	int rc;
	if ((rc = wal_refuse_failed(w)))
		return rc;
	if (index <= w->tk.snap_index)
		return wal_errf(w->err, sizeof(w->err), RAFT_ERR_SNAP_OUT_OF_DATE,
				"wal: snapshot at %llu is not newer than %llu",
				(unsigned long long)index, (unsigned long long)w->tk.snap_index);
	if (index > w->tk.last || compact_index > index)
		return wal_errf(w->err, sizeof(w->err), RAFT_ERR_UNAVAILABLE,
				"wal: snapshot at %llu compacting to %llu past the last index %llu",
				(unsigned long long)index, (unsigned long long)compact_index,
				(unsigned long long)w->tk.last);
	raft_snapshot_t s;
	Raftpb__SnapshotMetadata md;
	Raftpb__ConfState cs;
	if ((rc = wal_build_snapshot(w, index, conf, data, len, &s, &md, &cs)))
		return rc;
	rc = snapfile_write(w->snapdir, &s, !w->opt.no_sync, w->err, sizeof(w->err));
	raft_conf_state_clear(&cs);
	if (rc || wal_stop(w, WAL_STEP_SNAP_FILE))
		return rc;
	if ((rc = wal_add_marker(w, md.term, index, WAL_SNAP_CREATED)) ||
	    wal_stop(w, WAL_STEP_MARKER))
		return rc;
	uint64_t first;
	raft_storage_t st = raft_memstorage_storage(w->ms);
	st.ops->first_index(st.ctx, &first);
	if ((rc = raft_memstorage_create_snapshot(w->ms, index, conf, data, len)) ||
	    (compact_index >= first && (rc = raft_memstorage_compact(w->ms, compact_index)))) {
		w->failed = true;
		return wal_errf(w->err, sizeof(w->err), rc, "wal: in-memory log: %s",
				raft_strerror(rc));
	}
	if ((rc = wal_release_segments(w, compact_index)) || wal_stop(w, WAL_STEP_RELEASE_ONE) ||
	    wal_stop(w, WAL_STEP_RELEASE))
		return rc;
	return wal_prune_snapfiles(w);
}

/* ---- replay ---- */

typedef struct wal_replay {
	wal_track_t tk;
	raft_entry_t **ents;       /* ents[i]->index == tk.base + 1 + i */
	size_t n, cap;
	raft_hard_state_t hs;
	bool have_hs;
	bool started;              /* the first segment's header has set the base */
	/* The base came from the first surviving segment's header, not from a snapshot
	 * marker: it is where the log stood when that segment began, and a new leader may
	 * since have overwritten entries at or below it (in this segment, after the header).
	 * Until a marker is replayed, such an entry rewinds the base; the newest marker,
	 * which is always in a surviving segment, then says where the log really starts. */
	bool provisional;
	char why[256];
} wal_replay_t;

static void replay_truncate(wal_replay_t *r, size_t n)
{
	for (size_t i = n; i < r->n; i++)
		raft_entry_free(r->ents[i]);
	if (n < r->n)
		r->n = n;
}

/* Drops the entries at or below the (new) base. */
static void replay_rebase(wal_replay_t *r, uint64_t old_base)
{
	size_t k = (size_t)(r->tk.base - old_base);
	if (k > r->n)
		k = r->n;
	for (size_t i = 0; i < k; i++)
		raft_entry_free(r->ents[i]);
	if (k)
		memmove(r->ents, r->ents + k, (r->n - k) * sizeof(*r->ents));
	r->n -= k;
}

static const char *replay_segment_header(wal_replay_t *r, const wal_segment_t *seg,
					 const uint8_t *p, size_t n)
{
	if (n != WAL_SEGMENT_PAYLOAD || memcmp(p, WAL_MAGIC, 8))
		return "bad segment header";
	uint64_t seq = wal_get64(p + 8), prev = wal_get64(p + 16), prev_term = wal_get64(p + 24);
	if (seq != seg->seq || prev + 1 != seg->first)
		return "segment header does not match the file name";
	if (!r->started) {
		r->tk.base = r->tk.last = prev;
		r->tk.base_term = r->tk.last_term = prev_term;
		r->started = true;
		r->provisional = prev > 0;
	} else if (prev != r->tk.last || prev_term != r->tk.last_term) {
		snprintf(r->why, sizeof(r->why),
			 "segment continues from index %llu term %llu but the log before it "
			 "ends at index %llu term %llu",
			 (unsigned long long)prev, (unsigned long long)prev_term,
			 (unsigned long long)r->tk.last, (unsigned long long)r->tk.last_term);
		return r->why;
	}
	return NULL;
}

static const char *replay_entry(wal_replay_t *r, wal_segment_t *seg, const uint8_t *p,
				size_t n, int *rc)
{
	raft_entry_t *e = raftpb__entry__unpack(NULL, n, p);
	if (!e)
		return "undecodable entry";
	if (r->provisional && e->index <= r->tk.base && e->index > 0) {
		replay_truncate(r, 0);
		r->tk.base = r->tk.last = e->index - 1;
		r->tk.base_term = r->tk.last_term = 0; /* unknown: released with its segment */
	}
	bool keep;
	const char *why = track_entry(&r->tk, e->index, e->term, &keep);
	if (e->index > seg->max_index)
		seg->max_index = e->index;
	if (!keep) {
		raft_entry_free(e);
		return why;
	}
	replay_truncate(r, (size_t)(e->index - r->tk.base - 1));
	void *arr = r->ents;
	if (array_grow(&arr, &r->cap, r->n, sizeof(*r->ents))) {
		raft_entry_free(e);
		*rc = RAFT_ERR_NOMEM;
		return "out of memory";
	}
	r->ents = arr;
	r->ents[r->n++] = e;
	return NULL;
}

static const char *replay_marker(wal_replay_t *r, const uint8_t *p)
{
	uint64_t term = wal_get64(p), index = wal_get64(p + 8), kind = wal_get64(p + 16);
	uint64_t old_base = r->tk.base, term_at = 0;
	if (index > r->tk.base && index <= r->tk.last)
		term_at = r->ents[index - r->tk.base - 1]->term;
	if (r->provisional && index == r->tk.base && r->tk.base_term == 0)
		r->tk.base_term = term; /* a rewound base: the marker knows its term */
	r->provisional = false;
	const char *why = track_snapshot(&r->tk, term, index, (int)kind, term_at);
	if (why)
		return why;
	if (kind == WAL_SNAP_RECEIVED)
		replay_truncate(r, 0);
	else
		replay_rebase(r, old_base);
	return NULL;
}

/* Applies one well-framed record; returns why it is wrong, or NULL. */
static const char *replay_record(wal_replay_t *r, wal_segment_t *seg, uint64_t off,
				 const uint8_t *rec, size_t len, int *rc)
{
	uint8_t type = rec[0];
	const uint8_t *p = rec + 1;
	size_t n = len - 1;
	if ((off == 0) != (type == WAL_REC_SEGMENT))
		return off == 0 ? "segment does not start with its header"
				: "segment header in the middle of a segment";
	switch (type) {
	case WAL_REC_SEGMENT:
		return replay_segment_header(r, seg, p, n);
	case WAL_REC_ENTRY:
		return replay_entry(r, seg, p, n, rc);
	case WAL_REC_HARD_STATE:
		if (n != WAL_STATE_PAYLOAD)
			return "bad hard state record";
		r->hs = (raft_hard_state_t){ wal_get64(p), wal_get64(p + 8), wal_get64(p + 16) };
		r->have_hs = true;
		return NULL;
	case WAL_REC_SNAPSHOT:
		if (n != WAL_STATE_PAYLOAD)
			return "bad snapshot marker";
		return replay_marker(r, p);
	}
	return "unknown record type";
}

/* Why the record at off does not frame and checksum, or NULL if it does. */
static const char *rec_check(const uint8_t *buf, size_t len, size_t off)
{
	if (len - off < WAL_REC_HDR)
		return "record header cut short";
	uint32_t l = wal_get32(buf + off);
	if (l == 0)
		return "zero length";
	if (l > len - off - WAL_REC_HDR)
		return "record runs past the end of the file";
	if (raft_crc32c(0, buf + off + WAL_REC_HDR, l) != wal_get32(buf + off + 4))
		return "checksum mismatch";
	return NULL;
}

static bool rec_is_end(const uint8_t *buf, size_t len, size_t off)
{
	for (size_t i = off; i < len && i < off + WAL_REC_HDR; i++)
		if (buf[i])
			return false;
	return true;
}

/* Opening scans the preallocated zero tail of the last segment (64 MiB by default) twice;
 * comparing whole blocks against zeros keeps that a few milliseconds. */
static const uint8_t wal_zero_block[4096];

static bool zero_block_at(const uint8_t *buf, size_t len, size_t off)
{
	return off + sizeof(wal_zero_block) <= len &&
	       memcmp(buf + off, wal_zero_block, sizeof(wal_zero_block)) == 0;
}

/* The first 8-aligned offset after off holding a valid record, or len if none. */
static size_t rec_find_valid(const uint8_t *buf, size_t len, size_t off)
{
	for (size_t y = (off | (WAL_ALIGN - 1)) + 1; y + WAL_REC_HDR < len;) {
		if (zero_block_at(buf, len, y)) {
			y += sizeof(wal_zero_block); /* a multiple of WAL_ALIGN */
			continue;
		}
		uint64_t word;
		memcpy(&word, buf + y, sizeof(word));
		if (word != 0 && !rec_check(buf, len, y))
			return y;
		y += WAL_ALIGN;
	}
	return len;
}

static bool all_zero(const uint8_t *buf, size_t len, size_t off)
{
	while (zero_block_at(buf, len, off))
		off += sizeof(wal_zero_block);
	for (size_t i = off; i < len; i++)
		if (buf[i])
			return false;
	return true;
}

/* Replays one segment's records; *end is where its data ends (for the tail: where appending
 * continues). A torn tail is accepted only when is_last. */
static int replay_segment(raft_wal_t *w, wal_replay_t *r, wal_segment_t *seg, bool is_last,
			  const char *path, const uint8_t *buf, size_t len, uint64_t *end)
{
	size_t off = 0;
	const char *why = NULL;
	int rc = RAFT_OK;
	while (off < len) {
		if (rec_is_end(buf, len, off))
			break;
		if ((why = rec_check(buf, len, off)))
			break;
		size_t l = wal_get32(buf + off);
		if ((why = replay_record(r, seg, off, buf + off + WAL_REC_HDR, l, &rc))) {
			if (rc)
				return wal_errf(w->err, sizeof(w->err), rc, "wal: replaying %s: %s",
						path, why);
			return wal_corrupt(w, path, off, why);
		}
		off += rec_size(l - 1);
	}
	if (off == 0)
		return wal_corrupt(w, path, 0, "segment has no header");
	if (off < len) {
		size_t next = rec_find_valid(buf, len, off);
		if (next < len) {
			snprintf(r->why, sizeof(r->why),
				 "%s, yet a valid record follows at offset %zu",
				 why ? why : "zero header", next);
			return wal_corrupt(w, path, off, r->why);
		}
		if (why && !is_last)
			return wal_corrupt(w, path, off, why);
	}
	*end = off; /* past len when the file ends inside the last record's padding */
	return RAFT_OK;
}

/* ---- open ---- */

static int wal_mkdir(raft_wal_t *w, const char *path, bool *created)
{
	if (mkdir(path, 0755) == 0) {
		*created = true;
		return RAFT_OK;
	}
	if (errno == EEXIST)
		return RAFT_OK;
	return wal_errf(w->err, sizeof(w->err), RAFT_ERR_IO, "wal: mkdir %s: %s", path,
			strerror(errno));
}

static int wal_mkdirs(raft_wal_t *w, bool *created)
{
	char path[WAL_PATHLEN];
	snprintf(path, sizeof(path), "%s", w->dir);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		int rc = wal_mkdir(w, path, created);
		*p = '/';
		if (rc)
			return rc;
	}
	int rc;
	if ((rc = wal_mkdir(w, w->dir, created)) || (rc = wal_mkdir(w, w->waldir, created)) ||
	    (rc = wal_mkdir(w, w->snapdir, created)))
		return rc;
	if (*created && !w->opt.no_sync && wal_file_sync_dir(w->dir))
		return wal_errf(w->err, sizeof(w->err), RAFT_ERR_IO, "wal: fsync %s: %s", w->dir,
				strerror(errno));
	return RAFT_OK;
}

static int wal_lock(raft_wal_t *w)
{
	char path[WAL_PATHLEN];
	snprintf(path, sizeof(path), "%s/LOCK", w->dir);
	w->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (w->lock_fd < 0)
		return wal_errf(w->err, sizeof(w->err), RAFT_ERR_IO, "wal: open %s: %s", path,
				strerror(errno));
	if (flock(w->lock_fd, LOCK_EX | LOCK_NB) == 0)
		return RAFT_OK;
	if (errno == EWOULDBLOCK)
		return wal_errf(w->err, sizeof(w->err), RAFT_ERR_LOCKED,
				"data directory %s is locked by another process", w->dir);
	return wal_errf(w->err, sizeof(w->err), RAFT_ERR_IO, "wal: lock %s: %s", path,
			strerror(errno));
}

static bool seg_parse_name(const char *name, wal_segment_t *s)
{
	unsigned long long seq, first;
	int n = 0;
	if (strlen(name) != WAL_SEGMENT_NAME_LEN || name[16] != '-')
		return false;
	if (sscanf(name, "%16llx-%16llx.wal%n", &seq, &first, &n) != 2 ||
	    n != WAL_SEGMENT_NAME_LEN || first == 0)
		return false;
	*s = (wal_segment_t){ .seq = seq, .first = first };
	return true;
}

static int seg_cmp(const void *a, const void *b)
{
	const wal_segment_t *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool name_is_tmp(const char *name)
{
	size_t n = strlen(name), s = strlen(WAL_TMP_SUFFIX);
	return n > s && !strcmp(name + n - s, WAL_TMP_SUFFIX);
}

/* Lists the segments by sequence; a gap in the sequence is corruption. Leftover .tmp
 * files of an interrupted segment creation are deleted. */
static int wal_list_segments(raft_wal_t *w)
{
	DIR *d = opendir(w->waldir);
	if (!d)
		return wal_errf(w->err, sizeof(w->err), RAFT_ERR_IO, "wal: open %s: %s", w->waldir,
				strerror(errno));
	struct dirent *de;
	int rc = RAFT_OK;
	while ((de = readdir(d)) && !rc) {
		wal_segment_t s;
		if (name_is_tmp(de->d_name)) {
			char path[WAL_PATHLEN];
			snprintf(path, sizeof(path), "%s/%s", w->waldir, de->d_name);
			unlink(path);
		} else if (seg_parse_name(de->d_name, &s) && wal_push_segment(w, s.seq, s.first)) {
			rc = wal_errf(w->err, sizeof(w->err), RAFT_ERR_NOMEM, "wal: out of memory");
		}
	}
	closedir(d);
	if (rc)
		return rc;
	if (w->n_segs)
		qsort(w->segs, w->n_segs, sizeof(*w->segs), seg_cmp);
	for (size_t i = 1; i < w->n_segs; i++) {
		if (w->segs[i].seq != w->segs[i - 1].seq + 1) {
			char path[WAL_PATHLEN];
			seg_path(w, path, sizeof(path), &w->segs[i]);
			return wal_errf(w->err, sizeof(w->err), RAFT_ERR_CORRUPT,
					"wal: segment %llu is missing before %s",
					(unsigned long long)w->segs[i - 1].seq + 1, path);
		}
	}
	return RAFT_OK;
}

/* Makes the tail segment appendable at end: anything written past it (a torn record, or
 * bytes of an interrupted write) is cut and the preallocation restored. */
static int wal_open_tail(raft_wal_t *w, const uint8_t *buf, size_t len, uint64_t end)
{
	char path[WAL_PATHLEN];
	seg_path(w, path, sizeof(path), &w->segs[w->n_segs - 1]);
	w->fd = open(path, O_RDWR | O_CLOEXEC);
	if (w->fd < 0)
		return wal_io_fail(w, "open", path);
	bool dirty = !all_zero(buf, len, end);
	if (dirty && ftruncate(w->fd, (off_t)end))
		return wal_io_fail(w, "truncate", path);
	if ((dirty || len < w->opt.segment_size) && wal_prealloc(w->fd, w->opt.segment_size))
		return wal_io_fail(w, "preallocate", path);
	if (dirty && !w->opt.no_sync && fdatasync(w->fd))
		return wal_io_fail(w, "fdatasync", path);
	w->off = w->synced = end;
	w->seg_min = rec_size(WAL_SEGMENT_PAYLOAD);
	w->failed = false;
	return RAFT_OK;
}

/* A segment mapped read-only for replay: no copy of its (mostly zero, preallocated) tail
 * into memory. Nothing truncates a segment while it is mapped but wal_open_tail, which
 * reads the mapping only before it truncates. */
static int wal_map_segment(const char *path, uint8_t **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return RAFT_ERR_IO;
	struct stat st;
	if (fstat(fd, &st)) {
		int e = errno;
		close(fd);
		errno = e;
		return RAFT_ERR_IO;
	}
	if (st.st_size > 0) {
		void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			int e = errno;
			close(fd);
			errno = e;
			return RAFT_ERR_IO;
		}
		*buf = p;
		*len = (size_t)st.st_size;
	}
	close(fd);
	return RAFT_OK;
}

static int wal_replay_segments(raft_wal_t *w, wal_replay_t *r)
{
	for (size_t i = 0; i < w->n_segs; i++) {
		char path[WAL_PATHLEN];
		uint8_t *buf;
		size_t len;
		uint64_t end = 0;
		bool is_last = i + 1 == w->n_segs;
		seg_path(w, path, sizeof(path), &w->segs[i]);
		if (wal_map_segment(path, &buf, &len))
			return wal_errf(w->err, sizeof(w->err), RAFT_ERR_IO, "wal: read %s: %s",
					path, strerror(errno));
		int rc = replay_segment(w, r, &w->segs[i], is_last, path, buf, len, &end);
		if (!rc && is_last)
			rc = wal_open_tail(w, buf, len, end);
		if (buf)
			munmap(buf, len);
		if (rc)
			return rc;
	}
	return RAFT_OK;
}

/* Deletes snapshot files no marker names: written by a save or create that died before
 * its marker was durable. */
static int wal_remove_orphan_snapfiles(raft_wal_t *w)
{
	snapfile_id_t *ids;
	size_t n;
	int rc = snapfile_list(w->snapdir, &ids, &n, w->err, sizeof(w->err));
	for (size_t i = 0; i < n && !rc; i++) {
		bool ours = ids[i].index == w->tk.snap_index && ids[i].term == w->tk.snap_term;
		if (ids[i].index >= w->tk.snap_index && !ours)
			rc = snapfile_remove(w->snapdir, ids[i].term, ids[i].index, w->err,
					     sizeof(w->err));
	}
	free(ids);
	return rc;
}

/* Fills the memstorage from the replay: the newest marker's snapshot, then the entries. */
static int wal_load_replay(raft_wal_t *w, wal_replay_t *r)
{
	int rc;
	if (r->tk.base != r->tk.snap_index) {
		char path[WAL_PATHLEN];
		seg_path(w, path, sizeof(path), &w->segs[0]);
		return wal_errf(w->err, sizeof(w->err), RAFT_ERR_CORRUPT,
				"wal: the log in %s starts after index %llu but no snapshot marker "
				"covers it", path, (unsigned long long)r->tk.base);
	}
	if (r->tk.snap_index) {
		raft_snapshot_t *s;
		if ((rc = snapfile_read(w->snapdir, r->tk.snap_term, r->tk.snap_index, &s, w->err,
					sizeof(w->err))))
			return rc;
		rc = raft_memstorage_apply_snapshot(w->ms, s);
		raft_snapshot_free(s);
		if (rc)
			return wal_errf(w->err, sizeof(w->err), rc, "wal: loading snapshot: %s",
					raft_strerror(rc));
	}
	if ((rc = raft_memstorage_append(w->ms, r->ents, r->n)) ||
	    (r->have_hs && (rc = raft_memstorage_set_hard_state(w->ms, &r->hs))))
		return wal_errf(w->err, sizeof(w->err), rc, "wal: building the log: %s",
				raft_strerror(rc));
	w->tk = r->tk;
	w->hs = r->hs;
	w->have_hs = r->have_hs;
	return RAFT_OK;
}

/* A new log: segment 0, continuing from index 0. Snapshot files without any segment mean
 * wal/ was lost, which must not pass for an empty log. */
static int wal_create_first(raft_wal_t *w)
{
	snapfile_id_t *ids;
	size_t n;
	int rc = snapfile_list(w->snapdir, &ids, &n, w->err, sizeof(w->err));
	if (rc)
		return rc;
	free(ids);
	if (n)
		return wal_errf(w->err, sizeof(w->err), RAFT_ERR_CORRUPT,
				"wal: %s has no segments but %s holds snapshot files", w->waldir,
				w->snapdir);
	uint64_t len;
	if ((rc = wal_segment_create(w, 0, 0, 0, &w->fd, &len)))
		return rc;
	if (wal_push_segment(w, 0, 1))
		return wal_errf(w->err, sizeof(w->err), RAFT_ERR_NOMEM, "wal: out of memory");
	w->off = w->seg_min = w->synced = len;
	w->failed = false;
	return RAFT_OK;
}

static int wal_open_dir(raft_wal_t *w)
{
	bool created = false;
	int rc;
	if ((rc = wal_mkdirs(w, &created)) || (rc = wal_lock(w)) || (rc = wal_list_segments(w)))
		return rc;
	if (!w->n_segs)
		return wal_create_first(w);
	wal_replay_t r = { 0 };
	rc = wal_replay_segments(w, &r);
	if (!rc)
		rc = wal_load_replay(w, &r);
	replay_truncate(&r, 0);
	free(r.ents);
	if (!rc)
		rc = wal_remove_orphan_snapfiles(w);
	return rc;
}

static char *wal_join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s%s%s", a, *b ? "/" : "", b);
	return p;
}

static void wal_free(raft_wal_t *w)
{
	if (w->fd >= 0)
		close(w->fd);
	if (w->lock_fd >= 0)
		close(w->lock_fd); /* releases the flock */
	raft_memstorage_free(w->ms);
	free(w->segs);
	free(w->buf);
	free(w->dir);
	free(w->waldir);
	free(w->snapdir);
	free(w);
}

int raft_wal_open(const char *dir, const raft_wal_options_t *opt, raft_wal_t **out,
		  char *err, size_t errlen)
{
	*out = NULL;
	raft_wal_t *w = calloc(1, sizeof(*w));
	if (!w)
		return wal_errf(err, errlen, RAFT_ERR_NOMEM, "wal: out of memory");
	w->fd = w->lock_fd = -1;
	w->failed = true; /* until a tail is open */
	if (opt)
		w->opt = *opt;
	else
		raft_wal_options_default(&w->opt);
	if (!w->opt.segment_size)
		w->opt.segment_size = WAL_DEFAULT_SEGMENT_SIZE;
	w->dir = wal_join(dir, "");
	w->waldir = wal_join(dir, "wal");
	w->snapdir = wal_join(dir, "snap");
	w->ms = raft_memstorage_new();
	int rc;
	if (!w->dir || !w->waldir || !w->snapdir || !w->ms)
		rc = wal_errf(w->err, sizeof(w->err), RAFT_ERR_NOMEM, "wal: out of memory");
	else
		rc = wal_open_dir(w);
	if (rc) {
		wal_errf(err, errlen, rc, "%s", w->err);
		wal_free(w);
		return rc;
	}
	*out = w;
	return RAFT_OK;
}

void raft_wal_close(raft_wal_t *w)
{
	if (!w)
		return;
	if (!w->failed && !w->opt.no_sync && w->fd >= 0)
		fdatasync(w->fd); /* nothing to report to; save already made its promises */
	wal_free(w);
}

void raft_wal_crash(raft_wal_t *w, uint64_t keep_unsynced)
{
	if (!w)
		return;
	if (w->fd >= 0 && w->off > w->synced) {
		uint64_t keep = w->off - w->synced;
		if (keep_unsynced < keep)
			keep = keep_unsynced;
		/* best effort: a test that cannot shrink the file sees more survive */
		if (ftruncate(w->fd, (off_t)(w->synced + keep)) == 0)
			wal_prealloc(w->fd, w->opt.segment_size);
	}
	wal_free(w);
}
