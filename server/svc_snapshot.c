/* server/svc_snapshot.c — Maintenance.Snapshot: streams the member's store as etcd does: as
 * a bbolt database in etcd 3.4's layout (kv_bolt_save), so etcdctl's snapshot status and
 * restore take it, in 32 KiB blobs with remaining_bytes, then the SHA-256 of every byte
 * sent as one last 32-byte blob. The file is written from one read transaction and every
 * read of it runs on libuv workers; the loop only sends, and only while the call's unsent
 * bytes stay under a bound. (Raft snapshots between members are LMDB copies: node.c.) */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "svc.h"

#define SNAP_CHUNK (32 * 1024)          /* etcd's snapshotSendBufferSize */
#define SNAP_BATCH (32 * SNAP_CHUNK)    /* bytes one worker job reads */
#define SNAP_MAX_PENDING (1024 * 1024)  /* unsent bytes on the call before we wait */
#define SNAP_POLL_MS 2                  /* grpc.h has no writable callback: look again */
#define SNAP_SHA_LEN 32

typedef struct snap_stream {
	keeld_t *s;
	grpc_call_t *call;           /* NULL once the call is gone */
	uv_work_t work;
	uv_timer_t timer;
	bool working;                /* a worker job holds the stream */
	bool timer_open;
	bool copied;                 /* the copy exists: jobs from now on only read */
	int fd;
	uint64_t size;               /* of the copy */
	uint64_t read_off, sent;
	uint8_t *buf;                /* the batch the last job read */
	size_t buf_len, buf_off;
	EVP_MD_CTX *sha;
	int rc;
	char err[256];
	char path[4200];
} snap_stream_t;

static void snap_free(snap_stream_t *ss)
{
	if (ss->fd >= 0)
		close(ss->fd);
	EVP_MD_CTX_free(ss->sha);
	free(ss->buf);
	free(ss);
}

static void snap_timer_closed(uv_handle_t *h)
{
	snap_free(h->data);
}

/* Frees the stream once nothing (worker, timer) refers to it any more. */
static void snap_release(snap_stream_t *ss)
{
	if (ss->working)
		return;
	if (ss->timer_open) {
		ss->timer_open = false;
		uv_close((uv_handle_t *)&ss->timer, snap_timer_closed);
		return;
	}
	snap_free(ss);
}

/* Worker: the copy (first job) and the next batch of it, hashed as it is read. */
static int snap_copy(snap_stream_t *ss)
{
	keeld_t *s = ss->s;
	unlink(ss->path);
	/* A raft snapshot installed meanwhile would reopen the store under the copy. */
	uv_rwlock_rdlock(&s->store_lock);
	char why[200];
	int rc = kv_bolt_save(s->kv, ss->path, why, sizeof(why));
	uv_rwlock_rdunlock(&s->store_lock);
	if (rc != KV_OK) {
		snprintf(ss->err, sizeof(ss->err), "writing the snapshot: %s", why);
		unlink(ss->path);
		return -1;
	}
	ss->fd = open(ss->path, O_RDONLY | O_CLOEXEC);
	int e = errno;
	/* The open descriptor keeps the copy alive; a crash leaves no file behind. */
	unlink(ss->path);
	struct stat st;
	if (ss->fd < 0 || fstat(ss->fd, &st) != 0) {
		snprintf(ss->err, sizeof(ss->err), "opening the store copy: %s",
			 strerror(ss->fd < 0 ? e : errno));
		return -1;
	}
	ss->size = (uint64_t)st.st_size;
	ss->copied = true;
	return 0;
}

static int snap_read_batch(snap_stream_t *ss)
{
	uint64_t left = ss->size - ss->read_off;
	size_t want = left < SNAP_BATCH ? (size_t)left : SNAP_BATCH;
	size_t got = 0;
	while (got < want) {
		ssize_t r = pread(ss->fd, ss->buf + got, want - got, (off_t)(ss->read_off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(ss->err, sizeof(ss->err), "reading the store copy: %s",
				 r < 0 ? strerror(errno) : "unexpected end of file");
			return -1;
		}
		got += (size_t)r;
	}
	if (EVP_DigestUpdate(ss->sha, ss->buf, got) != 1) {
		snprintf(ss->err, sizeof(ss->err), "sha256 failed");
		return -1;
	}
	ss->read_off += got;
	ss->buf_len = got;
	ss->buf_off = 0;
	return 0;
}

static void snap_work(uv_work_t *w)
{
	snap_stream_t *ss = w->data;
	ss->rc = 0;
	if (!ss->copied && snap_copy(ss) != 0) {
		ss->rc = -1;
		return;
	}
	if (snap_read_batch(ss) != 0)
		ss->rc = -1;
}

static void snap_pump(snap_stream_t *ss);
static void snap_after_work(uv_work_t *w, int status);

static void snap_queue(snap_stream_t *ss)
{
	ss->working = true;
	int rc = uv_queue_work(ss->s->loop, &ss->work, snap_work, snap_after_work);
	if (rc != 0) {
		ss->working = false;
		grpc_call_finish(ss->call, GRPC_UNKNOWN, uv_strerror(rc));
	}
}

static void snap_on_timer(uv_timer_t *t)
{
	snap_stream_t *ss = t->data;
	if (ss->call)
		snap_pump(ss);
}

static int snap_send(snap_stream_t *ss, const uint8_t *blob, size_t len, uint64_t remaining)
{
	Etcdserverpb__SnapshotResponse r = ETCDSERVERPB__SNAPSHOT_RESPONSE__INIT;
	r.remaining_bytes = remaining;
	r.blob.data = (uint8_t *)blob;
	r.blob.len = len;
	size_t n = protobuf_c_message_get_packed_size(&r.base);
	uint8_t *out = malloc(n ? n : 1);
	if (!out)
		return -1;
	protobuf_c_message_pack(&r.base, out);
	int rc = grpc_call_send(ss->call, out, n);
	free(out);
	return rc;
}

static void snap_finish(snap_stream_t *ss)
{
	uint8_t sum[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	if (EVP_DigestFinal_ex(ss->sha, sum, &n) != 1 || n != SNAP_SHA_LEN) {
		grpc_call_finish(ss->call, GRPC_UNKNOWN, "sha256 failed");
		return;
	}
	if (snap_send(ss, sum, n, 0) != 0) {
		grpc_call_finish(ss->call, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
		return;
	}
	LOG_INFO("sent a store snapshot to a client (%llu bytes)", (unsigned long long)ss->sent);
	grpc_call_finish(ss->call, GRPC_OK, NULL);
}

/* Sends what the last batch read while the call has room; then reads on, or ends. */
static void snap_pump(snap_stream_t *ss)
{
	while (ss->buf_off < ss->buf_len) {
		if (grpc_call_pending_bytes(ss->call) >= SNAP_MAX_PENDING) {
			uv_timer_start(&ss->timer, snap_on_timer, SNAP_POLL_MS, 0);
			return;
		}
		size_t n = ss->buf_len - ss->buf_off;
		if (n > SNAP_CHUNK)
			n = SNAP_CHUNK;
		ss->sent += n;
		if (snap_send(ss, ss->buf + ss->buf_off, n, ss->size - ss->sent) != 0) {
			grpc_call_finish(ss->call, GRPC_UNKNOWN, "etcdserver: snapshot stream closed");
			return;
		}
		ss->buf_off += n;
	}
	if (ss->read_off < ss->size)
		snap_queue(ss);
	else
		snap_finish(ss);
}

static void snap_after_work(uv_work_t *w, int status)
{
	snap_stream_t *ss = w->data;
	ss->working = false;
	if (!ss->call) {
		snap_release(ss);
		return;
	}
	if (status != 0 || ss->rc != 0) {
		const char *why = status ? uv_strerror(status) : ss->err;
		LOG_WARN("snapshot for a client failed: %s", why);
		grpc_call_finish(ss->call, GRPC_UNKNOWN, why);
		return;
	}
	snap_pump(ss);
}

void svc_snapshot_msg(void *ud, grpc_call_t *call, const uint8_t *msg, size_t len)
{
	keeld_t *s = ud;
	if (grpc_call_user(call))
		return; /* a server stream takes one request; etcd ignores more */
	ProtobufCMessage *req = svc_decode(call, &etcdserverpb__snapshot_request__descriptor,
					   msg, len);
	if (!req)
		return;
	protobuf_c_message_free_unpacked(req, NULL);
	snap_stream_t *ss = calloc(1, sizeof(*ss));
	uint8_t *buf = malloc(SNAP_BATCH);
	EVP_MD_CTX *sha = EVP_MD_CTX_new();
	if (!ss || !buf || !sha || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
		free(ss);
		free(buf);
		EVP_MD_CTX_free(sha);
		grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
		return;
	}
	ss->s = s;
	ss->call = call;
	ss->fd = -1;
	ss->buf = buf;
	ss->sha = sha;
	ss->work.data = ss;
	/* Unique per stream and never reused while it exists: the stream's address. */
	snprintf(ss->path, sizeof(ss->path), "%s/snapshot-send-%p.db", s->member_dir,
		 (void *)ss);
	uv_timer_init(s->loop, &ss->timer);
	ss->timer.data = ss;
	ss->timer_open = true;
	grpc_call_set_user(call, ss);
	LOG_INFO("sending a store snapshot to a client");
	snap_queue(ss);
}

void svc_snapshot_close(void *ud, grpc_call_t *call)
{
	(void)ud;
	snap_stream_t *ss = grpc_call_user(call);
	if (!ss)
		return;
	grpc_call_set_user(call, NULL);
	ss->call = NULL;
	if (ss->timer_open)
		uv_timer_stop(&ss->timer);
	snap_release(ss);
}
