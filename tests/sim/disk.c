/* tests/sim/disk.c — a simulated node's disk. By default a memstorage that survives
 * crashes whole. With --disk, the real thing: the WAL in a directory per node, where a
 * crash loses a random part of what was written since the last fdatasync, and a kvstore
 * (LMDB) as the replicated state machine, whose HashKV must agree on every member. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"

bool sim_disk_on(const sim_cluster_t *c)
{
	return c->p.disk_dir != NULL;
}

raft_storage_t sim_disk_storage(const sim_node_t *n)
{
	if (n->wal)
		return raft_wal_storage(n->wal);
	return raft_memstorage_storage(n->ms);
}

bool sim_disk_present(const sim_node_t *n)
{
	return n->ms || n->wal;
}

static void sim_disk_path(const sim_cluster_t *c, const sim_node_t *n, const char *leaf,
			  char *buf, size_t len)
{
	snprintf(buf, len, "%s/n%llu%s%s", c->p.disk_dir, (unsigned long long)n->id,
		 leaf ? "/" : "", leaf ? leaf : "");
}

static bool sim_disk_open_wal(sim_cluster_t *c, sim_node_t *n)
{
	char dir[512], err[512];
	sim_disk_path(c, n, NULL, dir, sizeof(dir));
	raft_wal_options_t wo;
	raft_wal_options_default(&wo);
	wo.no_sync = true;
	/* 16 KiB to 1 MiB, chosen at every open: small ones make runs cut and release
	 * segments often, and a reopen may meet segments of another size. */
	wo.segment_size = (uint64_t)16384 << sim_rng_below(&c->rng, 7);
	int rc = raft_wal_open(dir, &wo, &n->wal, err, sizeof(err));
	if (rc == RAFT_OK)
		return true;
	n->wal = NULL;
	return sim_check_fail(&c->chk, "restart", "n%llu cannot open its WAL: %s",
			      (unsigned long long)n->id, err);
}

/* Opens the node's disk as it is now: new, or what the last crash left. */
bool sim_disk_open(sim_cluster_t *c, sim_node_t *n)
{
	if (!sim_disk_on(c)) {
		if (!n->ms && !(n->ms = raft_memstorage_new()))
			abort();
		return true;
	}
	char db[600], err[512];
	if (!n->wal && !sim_disk_open_wal(c, n))
		return false;
	kv_options_t ko;
	kv_options_default(&ko);
	ko.no_sync = true;
	ko.map_size = 64u << 20;
	ko.now_ms = sim_lease_now_ms;
	ko.clock_ctx = c;
	sim_disk_path(c, n, "db", db, sizeof(db));
	int rc = kv_open(db, &ko, &n->kv, err, sizeof(err));
	if (rc != KV_OK) {
		n->kv = NULL;
		return sim_check_fail(&c->chk, "restart", "n%llu cannot open its store: %s",
				      (unsigned long long)n->id, err);
	}
	return true;
}

/* A crash: the WAL keeps what was synced plus a random part of the rest (or what a torn
 * Ready chose), and is opened again at once, as the disk a restart will find: a down
 * node's log still counts for the commit checks. The store's commits were in the page
 * cache, which a process crash does not lose. */
void sim_disk_crash(sim_cluster_t *c, sim_node_t *n)
{
	if (!n->wal)
		return;
	uint64_t keep = n->torn ? n->torn_keep : sim_rng_below(&c->rng, 4096);
	n->torn = false;
	raft_wal_crash(n->wal, keep);
	n->wal = NULL;
	kv_close(n->kv);
	n->kv = NULL;
	if (sim_disk_open_wal(c, n))
		sim_confs_reload(c, n);
}

static int sim_disk_unlink(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* Shut down for good: the disk goes away. */
void sim_disk_destroy(sim_cluster_t *c, sim_node_t *n)
{
	raft_memstorage_free(n->ms);
	n->ms = NULL;
	if (n->wal)
		raft_wal_close(n->wal);
	n->wal = NULL;
	kv_close(n->kv);
	n->kv = NULL;
	if (sim_disk_on(c)) {
		char dir[512];
		sim_disk_path(c, n, NULL, dir, sizeof(dir));
		if (access(dir, F_OK) == 0 &&
		    nftw(dir, sim_disk_unlink, 16, FTW_DEPTH | FTW_PHYS) != 0)
			fprintf(stderr, "keel-sim: could not remove %s\n", dir);
	}
}

int sim_disk_save(sim_cluster_t *c, sim_node_t *n, const raft_hard_state_t *hs,
		  raft_entry_t *const *ents, size_t count, bool sync)
{
	(void)c;
	if (n->wal)
		return raft_wal_save(n->wal, hs, ents, count, sync);
	int rc = count ? raft_memstorage_append(n->ms, ents, count) : RAFT_OK;
	if (rc == RAFT_OK && hs)
		rc = raft_memstorage_set_hard_state(n->ms, hs);
	return rc;
}

/* A crash in the middle of persisting a Ready: the WAL is written without a sync, and
 * the crash that follows cuts it at a random byte, possibly inside a record. Returns
 * false in memory mode, where ready.c tears the Ready itself. */
bool sim_disk_torn(sim_cluster_t *c, sim_node_t *n, const raft_ready_t *rd)
{
	if (!n->wal)
		return false;
	(void)raft_wal_save(n->wal, rd->hard_state_changed ? &rd->hard_state : NULL,
			    rd->entries, rd->n_entries, false);
	n->torn = true;
	n->torn_keep = sim_rng_below(&c->rng, 64 + 300 * rd->n_entries);
	SIM_TRACE_C(c, SIM_EV_WAL_TORN, n->id, n->torn_keep, rd->n_entries);
	return true;
}

const char *sim_disk_error(const sim_node_t *n, int rc)
{
	return n->wal ? raft_wal_error(n->wal) : raft_strerror(rc);
}

/* ---- snapshots: the volatile state machine's bytes, then the store's file ---------- */

static bool sim_disk_read_file(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, 0, SEEK_SET);
	*buf = malloc(size > 0 ? (size_t)size : 1);
	bool ok = *buf && size >= 0 && fread(*buf, 1, (size_t)size, f) == (size_t)size;
	fclose(f);
	*len = (size_t)size;
	return ok;
}

/* data = [8: length of the sm part][sm part][the store's compacted copy]. */
bool sim_disk_snapshot_data(sim_cluster_t *c, sim_node_t *n, uint8_t **data, size_t *len)
{
	uint8_t *sm = NULL, *db = NULL;
	size_t sm_len = 0, db_len = 0;
	if (!sim_sm_encode(&n->sm, &sm, &sm_len))
		abort();
	if (!n->kv) {
		*data = sm;
		*len = sm_len;
		return true;
	}
	char path[600];
	sim_disk_path(c, n, "db.copy", path, sizeof(path));
	unlink(path);
	int rc = kv_snapshot_save(n->kv, path);
	if (rc != KV_OK || !sim_disk_read_file(path, &db, &db_len)) {
		free(sm);
		free(db);
		return sim_check_fail(&c->chk, "snapshot", "n%llu cannot copy its store: %s",
				      (unsigned long long)n->id, kv_last_error(n->kv));
	}
	unlink(path);
	*len = 8 + sm_len + db_len;
	*data = malloc(*len);
	if (!*data)
		abort();
	sim_put64(*data, sm_len);
	memcpy(*data + 8, sm, sm_len);
	memcpy(*data + 8 + sm_len, db, db_len);
	free(sm);
	free(db);
	return true;
}

/* The state machine's part of snapshot data, in either mode. */
bool sim_disk_snapshot_sm(const sim_cluster_t *c, const uint8_t *data, size_t len,
			  const uint8_t **sm, size_t *sm_len)
{
	if (!sim_disk_on(c)) {
		*sm = data;
		*sm_len = len;
		return true;
	}
	if (len < 8 || sim_get64(data) > len - 8)
		return false;
	*sm = data + 8;
	*sm_len = (size_t)sim_get64(data);
	return true;
}

/* Installs the store's part of a snapshot when the store is behind it. */
bool sim_disk_install(sim_cluster_t *c, sim_node_t *n, const raft_snapshot_t *snap)
{
	if (!n->kv || kv_applied_index(n->kv) >= snap->metadata->index)
		return true;
	const uint8_t *data = snap->data.data;
	size_t len = snap->data.len;
	if (len < 8 || sim_get64(data) > len - 8)
		return sim_check_fail(&c->chk, "snapshot", "n%llu: snapshot data too short",
				      (unsigned long long)n->id);
	size_t off = 8 + (size_t)sim_get64(data);
	char path[600];
	sim_disk_path(c, n, "db.install", path, sizeof(path));
	FILE *f = fopen(path, "wb");
	bool ok = f && fwrite(data + off, 1, len - off, f) == len - off;
	if (f && fclose(f) != 0)
		ok = false;
	int rc = ok ? kv_snapshot_install(n->kv, path) : KV_ERR_IO;
	if (rc != KV_OK)
		return sim_check_fail(&c->chk, "snapshot", "n%llu cannot install the store of the "
				      "snapshot at %llu: %s %s", (unsigned long long)n->id,
				      (unsigned long long)snap->metadata->index, kv_strerror(rc),
				      kv_last_error(n->kv));
	if (kv_applied_index(n->kv) != snap->metadata->index)
		return sim_check_fail(&c->chk, "snapshot", "n%llu: the store in the snapshot at %llu "
				      "has applied %llu", (unsigned long long)n->id,
				      (unsigned long long)snap->metadata->index,
				      (unsigned long long)kv_applied_index(n->kv));
	return true;
}

int sim_disk_save_snapshot(sim_cluster_t *c, sim_node_t *n, const raft_snapshot_t *snap)
{
	(void)c;
	if (n->wal)
		return raft_wal_save_snapshot(n->wal, snap);
	return raft_memstorage_apply_snapshot(n->ms, snap);
}

int sim_disk_create_snapshot(sim_cluster_t *c, sim_node_t *n, uint64_t index,
			     const raft_conf_t *conf, const void *data, size_t len, uint64_t upto)
{
	(void)c;
	if (n->wal)
		return raft_wal_create_snapshot(n->wal, index, conf, data, len, upto);
	int rc = raft_memstorage_create_snapshot(n->ms, index, conf, data, len);
	if (rc == RAFT_OK && upto > n->snap_index)
		rc = raft_memstorage_compact(n->ms, upto);
	return rc;
}

/* ---- the store as the state machine ------------------------------------------------ */

/* A client write becomes a put (every fifth a delete) of one of 50 keys, so revisions,
 * versions and tombstones all move; anything else is applied as what it is. */
static bool sim_disk_translate(const raft_entry_t *e, uint8_t *buf, size_t cap, size_t *len)
{
	uint64_t wid, proposer;
	if (!sim_write_decode(e, &wid, &proposer))
		return false; /* the lease requests of lease.c are requests already */
	char key[32], value[64];
	snprintf(key, sizeof(key), "k%02llu", (unsigned long long)(wid % 50));
	snprintf(value, sizeof(value), "w%llu-n%llu", (unsigned long long)wid,
		 (unsigned long long)proposer);
	Etcdserverpb__InternalRaftRequest req = ETCDSERVERPB__INTERNAL_RAFT_REQUEST__INIT;
	Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
	Etcdserverpb__DeleteRangeRequest del = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
	req.id = wid;
	if (wid % 5 == 4) {
		del.key.data = (uint8_t *)key;
		del.key.len = strlen(key);
		req.delete_range = &del;
	} else {
		put.key.data = (uint8_t *)key;
		put.key.len = strlen(key);
		put.value.data = (uint8_t *)value;
		put.value.len = strlen(value);
		req.put = &put;
	}
	size_t need = etcdserverpb__internal_raft_request__get_packed_size(&req);
	if (need > cap)
		abort();
	*len = etcdserverpb__internal_raft_request__pack(&req, buf);
	return true;
}

typedef struct sim_disk_applying {
	sim_cluster_t *c;
	sim_node_t *n;
} sim_disk_applying_t;

static void sim_disk_on_result(void *ud, kv_result_t *r)
{
	sim_disk_applying_t *a = ud;
	if (r->resp)
		protobuf_c_message_free_unpacked(r->resp, NULL);
	const raft_entry_t *e = r->entry;
	if (!e || e->type != RAFT_ENTRY_NORMAL || !e->data.len || e->data.data[0] == 'W')
		return;
	Etcdserverpb__InternalRaftRequest *req =
		etcdserverpb__internal_raft_request__unpack(NULL, e->data.len, e->data.data);
	if (!req)
		return;
	sim_lease_on_result(a->c, a->n, r, req);
	etcdserverpb__internal_raft_request__free_unpacked(req, NULL);
}

bool sim_disk_apply(sim_cluster_t *c, sim_node_t *n, raft_entry_t *const *ents, size_t count)
{
	if (!n->kv || !count)
		return true;
	raft_entry_t *copies = calloc(count, sizeof(*copies));
	raft_entry_t **ptrs = calloc(count, sizeof(*ptrs));
	uint8_t (*bufs)[128] = calloc(count, sizeof(*bufs));
	if (!copies || !ptrs || !bufs)
		abort();
	for (size_t i = 0; i < count; i++) {
		copies[i] = *ents[i];
		size_t len;
		if (ents[i]->type == RAFT_ENTRY_NORMAL &&
		    sim_disk_translate(ents[i], bufs[i], sizeof(bufs[i]), &len)) {
			copies[i].data.data = bufs[i];
			copies[i].data.len = len;
		}
		ptrs[i] = &copies[i];
	}
	sim_disk_applying_t a = { c, n };
	int rc = kv_apply(n->kv, ptrs, count, sim_disk_on_result, &a);
	free(copies);
	free(ptrs);
	free(bufs);
	if (rc != KV_OK)
		return sim_check_fail(&c->chk, "apply", "n%llu: kv_apply: %s: %s",
				      (unsigned long long)n->id, kv_strerror(rc),
				      kv_last_error(n->kv));
	/* The store may be ahead: a crash can lose the record of the commit index while the
	 * store kept what it applied; those entries are committed again and skipped. */
	if (kv_applied_index(n->kv) < ents[count - 1]->index)
		return sim_check_fail(&c->chk, "apply", "n%llu: the store applied up to %llu, not "
				      "%llu", (unsigned long long)n->id,
				      (unsigned long long)kv_applied_index(n->kv),
				      (unsigned long long)ents[count - 1]->index);
	sim_lease_on_role(c, n, ents[count - 1]->term);
	return true;
}

/* Every member holds the same store: same revision and HashKV. */
bool sim_disk_check_converged(sim_cluster_t *c, const raft_conf_t *conf)
{
	if (!sim_disk_on(c))
		return true;
	uint32_t want = 0;
	int64_t want_rev = -1;
	uint64_t want_id = 0;
	for (uint64_t id = 1; id <= SIM_MAX_IDS; id++) {
		sim_node_t *n = &c->nodes[id];
		if (!raft_conf_is_voter(conf, id) && !raft_conf_is_learner(conf, id))
			continue;
		if (!n->kv)
			continue;
		uint32_t h;
		int64_t compact, hrev;
		int rc = kv_hash_kv(n->kv, 0, &h, &compact, &hrev);
		if (rc != KV_OK)
			return sim_check_fail(&c->chk, "hashkv", "n%llu: %s", (unsigned long long)id,
					      kv_strerror(rc));
		if (want_rev < 0) {
			want = h, want_rev = hrev, want_id = id;
			continue;
		}
		if (hrev != want_rev || h != want)
			return sim_check_fail(&c->chk, "hashkv", "n%llu has revision %lld hash %08x "
					      "but n%llu has revision %lld hash %08x",
					      (unsigned long long)id, (long long)hrev, h,
					      (unsigned long long)want_id, (long long)want_rev, want);
	}
	return true;
}
