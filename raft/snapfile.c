/* raft/snapfile.c — snapshot files in snap/: written whole under a temporary name, made
 * durable, then renamed, so a name that exists always holds a complete file; loading
 * verifies magic, length, checksum and that the contents match the name. Never trusts a
 * byte of a file it has not checksummed. Also the small file helpers wal.c shares. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wal_int.h"

#define SNAP_NAME_LEN 38 /* 16 hex, '-', 16 hex, ".snap" */
#define SNAP_TMP_SUFFIX ".tmp"

int wal_file_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return RAFT_ERR_IO;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc ? RAFT_ERR_IO : RAFT_OK;
}

int wal_file_write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return RAFT_ERR_IO;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return RAFT_OK;
}

int wal_file_read_all(const char *path, uint8_t **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return RAFT_ERR_IO;
	struct stat st;
	uint8_t *b = NULL;
	size_t got = 0;
	if (fstat(fd, &st))
		goto fail;
	size_t size = (size_t)st.st_size;
	if (!(b = malloc(size ? size : 1))) {
		errno = ENOMEM;
		goto fail;
	}
	while (got < size) {
		ssize_t n = pread(fd, b + got, size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break; /* shrank under us: what we have is the file */
		got += (size_t)n;
	}
	close(fd);
	*buf = b;
	*len = got;
	return RAFT_OK;
fail:;
	int e = errno;
	free(b);
	close(fd);
	errno = e;
	return RAFT_ERR_IO;
}

void snapfile_path(char *buf, size_t len, const char *snapdir, uint64_t term, uint64_t index)
{
	snprintf(buf, len, "%s/" SNAP_FILE_FMT, snapdir, (unsigned long long)term,
		 (unsigned long long)index);
}

static uint8_t *snapfile_encode(const raft_snapshot_t *snap, size_t *len)
{
	size_t body = raftpb__snapshot__get_packed_size(snap);
	uint8_t *buf = malloc(SNAP_HDR + body);
	if (!buf)
		return NULL;
	memcpy(buf, SNAP_MAGIC, 8);
	wal_put64(buf + 12, body);
	raftpb__snapshot__pack(snap, buf + SNAP_HDR);
	wal_put32(buf + 8, raft_crc32c(0, buf + 12, 8 + body));
	*len = SNAP_HDR + body;
	return buf;
}

int snapfile_write(const char *snapdir, const raft_snapshot_t *snap, bool sync, char *err,
		   size_t errlen)
{
	char path[4096], tmp[4096 + sizeof(SNAP_TMP_SUFFIX)];
	if (!snap->metadata)
		return wal_errf(err, errlen, RAFT_ERR_INVALID_MSG,
				"snap: snapshot has no metadata");
	snapfile_path(path, sizeof(path), snapdir, snap->metadata->term, snap->metadata->index);
	snprintf(tmp, sizeof(tmp), "%s" SNAP_TMP_SUFFIX, path);
	size_t len;
	uint8_t *buf = snapfile_encode(snap, &len);
	if (!buf)
		return wal_errf(err, errlen, RAFT_ERR_NOMEM, "snap: out of memory encoding %s",
				path);
	const char *what = "create";
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto fail;
	what = "write";
	if (wal_file_write_all(fd, buf, len, 0))
		goto fail;
	what = "fsync";
	if (sync && fsync(fd))
		goto fail;
	what = "close";
	int rc = close(fd);
	fd = -1;
	if (rc)
		goto fail;
	what = "rename";
	if (rename(tmp, path))
		goto fail;
	free(buf);
	if (sync && wal_file_sync_dir(snapdir))
		return wal_errf(err, errlen, RAFT_ERR_IO, "snap: fsync %s: %s", snapdir,
				strerror(errno));
	return RAFT_OK;
fail:;
	int e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(buf);
	return wal_errf(err, errlen, RAFT_ERR_IO, "snap: %s %s: %s", what, tmp, strerror(e));
}

static int snapfile_decode(const char *path, const uint8_t *buf, size_t len, uint64_t term,
			   uint64_t index, raft_snapshot_t **out, char *err, size_t errlen)
{
	const char *why = NULL;
	if (len < SNAP_HDR)
		why = "shorter than its header";
	else if (memcmp(buf, SNAP_MAGIC, 8))
		why = "bad magic";
	else if (wal_get64(buf + 12) != len - SNAP_HDR)
		why = "length does not match the file size";
	else if (wal_get32(buf + 8) != raft_crc32c(0, buf + 12, len - 12))
		why = "checksum mismatch";
	if (why)
		return wal_errf(err, errlen, RAFT_ERR_CORRUPT, "snap: corrupt snapshot file %s: %s",
				path, why);
	raft_snapshot_t *s = raftpb__snapshot__unpack(NULL, len - SNAP_HDR, buf + SNAP_HDR);
	if (!s || !s->metadata)
		why = "undecodable snapshot";
	else if (s->metadata->term != term || s->metadata->index != index)
		why = "term and index differ from the file name";
	if (why) {
		if (s)
			raftpb__snapshot__free_unpacked(s, NULL);
		return wal_errf(err, errlen, RAFT_ERR_CORRUPT, "snap: corrupt snapshot file %s: %s",
				path, why);
	}
	*out = s;
	return RAFT_OK;
}

int snapfile_read(const char *snapdir, uint64_t term, uint64_t index, raft_snapshot_t **out,
		  char *err, size_t errlen)
{
	char path[4096];
	uint8_t *buf;
	size_t len;
	*out = NULL;
	snapfile_path(path, sizeof(path), snapdir, term, index);
	if (wal_file_read_all(path, &buf, &len)) {
		int code = errno == ENOENT ? RAFT_ERR_CORRUPT : RAFT_ERR_IO;
		return wal_errf(err, errlen, code, "snap: read %s: %s", path, strerror(errno));
	}
	int rc = snapfile_decode(path, buf, len, term, index, out, err, errlen);
	free(buf);
	return rc;
}

static int snapfile_cmp(const void *a, const void *b)
{
	const snapfile_id_t *x = a, *y = b;
	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	if (x->term != y->term)
		return x->term < y->term ? -1 : 1;
	return 0;
}

static bool snapfile_parse_name(const char *name, snapfile_id_t *id)
{
	unsigned long long t, i;
	int n = 0;
	if (strlen(name) != SNAP_NAME_LEN || name[16] != '-')
		return false;
	if (sscanf(name, "%16llx-%16llx.snap%n", &t, &i, &n) != 2 || n != SNAP_NAME_LEN)
		return false;
	id->term = t;
	id->index = i;
	return true;
}

static bool snapfile_is_tmp(const char *name)
{
	size_t n = strlen(name), s = strlen(SNAP_TMP_SUFFIX);
	return n > s && !strcmp(name + n - s, SNAP_TMP_SUFFIX);
}

int snapfile_list(const char *snapdir, snapfile_id_t **out, size_t *n, char *err,
		  size_t errlen)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir(snapdir);
	if (!d)
		return wal_errf(err, errlen, RAFT_ERR_IO, "snap: open %s: %s", snapdir,
				strerror(errno));
	snapfile_id_t *ids = NULL;
	size_t cap = 0, cnt = 0;
	struct dirent *de;
	int rc = RAFT_OK;
	while ((de = readdir(d))) {
		snapfile_id_t id;
		if (snapfile_is_tmp(de->d_name)) {
			char path[4096];
			snprintf(path, sizeof(path), "%s/%s", snapdir, de->d_name);
			unlink(path); /* an interrupted write; its snapshot never counted */
			continue;
		}
		if (!snapfile_parse_name(de->d_name, &id))
			continue;
		if (cnt == cap) {
			size_t c = cap ? cap * 2 : 8;
			snapfile_id_t *p = realloc(ids, c * sizeof(*p));
			if (!p) {
				rc = wal_errf(err, errlen, RAFT_ERR_NOMEM, "snap: out of memory");
				break;
			}
			ids = p;
			cap = c;
		}
		ids[cnt++] = id;
	}
	closedir(d);
	if (rc) {
		free(ids);
		return rc;
	}
	if (cnt)
		qsort(ids, cnt, sizeof(*ids), snapfile_cmp);
	*out = ids;
	*n = cnt;
	return RAFT_OK;
}

int snapfile_remove(const char *snapdir, uint64_t term, uint64_t index, char *err,
		    size_t errlen)
{
	char path[4096];
	snapfile_path(path, sizeof(path), snapdir, term, index);
	if (unlink(path) && errno != ENOENT)
		return wal_errf(err, errlen, RAFT_ERR_IO, "snap: remove %s: %s", path,
				strerror(errno));
	return RAFT_OK;
}
