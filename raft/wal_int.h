/* raft/wal_int.h — what wal.c, snapfile.c and crc32c.c share, and what the WAL's own tests
 * reach into (the on-disk format and the crash-point hook). Never included outside raft/
 * and tests/unit/test_wal*.c, test_snapfile.c. */
#ifndef KEEL_WAL_INT_H
#define KEEL_WAL_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "raft.h"

/* ---- crc32c.c ---- */
/* CRC-32C of buf continuing from crc (0 to start): raft_crc32c(0, "123456789", 9) == 0xE3069283,
 * and raft_crc32c(raft_crc32c(0, a, n), b, m) is the CRC of a followed by b. */
uint32_t raft_crc32c_sw(uint32_t crc, const void *buf, size_t len); /* the table path, always */
bool raft_crc32c_has_hw(void);

/* ---- the segment format (wal.c) ----
 * A record is [u32 len][u32 crc32c][u8 type][payload], little-endian, len counting type and
 * payload (so never 0), crc covering type and payload, zero-padded to a multiple of 8. */
#define WAL_REC_HDR 8
#define WAL_ALIGN 8
#define WAL_MAGIC "KEELWAL1"
enum wal_rec_type {
	WAL_REC_SEGMENT = 1,   /* magic, sequence, index and term the segment continues from */
	WAL_REC_ENTRY = 2,     /* packed raftpb Entry */
	WAL_REC_HARD_STATE = 3, /* term, vote, commit */
	WAL_REC_SNAPSHOT = 4,  /* term, index, kind (enum wal_snap_kind) of a snap/ file */
};
enum wal_snap_kind {
	WAL_SNAP_CREATED = 1,  /* taken locally: entries after its index stay in the log */
	WAL_SNAP_RECEIVED = 2, /* from the leader: the log restarts after it */
};
#define WAL_SEGMENT_FMT "%016llx-%016llx.wal" /* sequence, first index it may hold */

/* Crash points of raft_wal_save_snapshot / raft_wal_create_snapshot, for tests: after
 * wal_test_stop_after(w, step) the call returns RAFT_OK right after that step, as if the
 * process died there (the test then calls raft_wal_crash). */
enum wal_step {
	WAL_STEP_NONE = 0,
	WAL_STEP_SNAP_FILE,    /* snapshot file durable, no marker yet */
	WAL_STEP_MARKER,       /* marker durable, memory and segments untouched */
	WAL_STEP_RELEASE_ONE,  /* first released segment deleted, the others not */
	WAL_STEP_RELEASE,      /* segments released, old snapshot files still there */
};
void wal_test_stop_after(raft_wal_t *w, enum wal_step step);

/* ---- snapfile.c: snapshot files ----
 * A file is [8-byte magic][u32 crc32c of the rest][u64 len][len bytes: packed Snapshot],
 * named by term and index, written to a .tmp name, fsynced, renamed, directory fsynced. */
#define SNAP_MAGIC "KEELSNP1"
#define SNAP_HDR 20
#define SNAP_FILE_FMT "%016llx-%016llx.snap" /* term, index */

typedef struct snapfile_id {
	uint64_t term;
	uint64_t index;
} snapfile_id_t;

void snapfile_path(char *buf, size_t len, const char *snapdir, uint64_t term, uint64_t index);
int snapfile_write(const char *snapdir, const raft_snapshot_t *snap, bool sync, char *err,
		   size_t errlen);
/* Loads and verifies one file; a missing, short or bad file, or one whose metadata does not
 * match its name, is RAFT_ERR_CORRUPT naming the file. */
int snapfile_read(const char *snapdir, uint64_t term, uint64_t index, raft_snapshot_t **out,
		  char *err, size_t errlen);
/* The snapshot files of snapdir by ascending index (then term); leftover .tmp files of an
 * interrupted write are deleted on the way. Other names are ignored. */
int snapfile_list(const char *snapdir, snapfile_id_t **out, size_t *n, char *err,
		  size_t errlen);
int snapfile_remove(const char *snapdir, uint64_t term, uint64_t index, char *err,
		    size_t errlen);

/* File helpers both files use (snapfile.c). They return RAFT_OK or RAFT_ERR_IO with errno
 * kept. */
int wal_file_sync_dir(const char *dir);
int wal_file_write_all(int fd, const void *buf, size_t len, uint64_t off);
int wal_file_read_all(const char *path, uint8_t **buf, size_t *len);

static inline int wal_errf(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static inline int wal_errf(char *err, size_t errlen, int code, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

static inline void wal_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void wal_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t wal_get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline uint64_t wal_get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#endif
