/* server/config.h — keeld's configuration: etcd 3.4's command-line flags and ETCD_*
 * environment variables, with etcd's names, defaults and meanings, for everything keeld
 * implements. A flag or ETCD_ variable keeld does not implement is refused by name; an
 * etcd flag keeld does not support says so rather than being ignored. */
#ifndef KEEL_SERVER_CONFIG_H
#define KEEL_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEELD_MAX_URLS 8
#define KEELD_MAX_MEMBERS 64

typedef struct keeld_url {
	char host[256];              /* as written, without brackets */
	int port;
	char text[300];              /* normalized "http://host:port" */
} keeld_url_t;

typedef struct keeld_url_list {
	size_t n;
	keeld_url_t v[KEELD_MAX_URLS];
} keeld_url_list_t;

typedef struct keeld_member_conf {
	char name[128];
	keeld_url_list_t peer_urls;
	uint64_t id;                 /* keeld_member_id(peer_urls, token) */
} keeld_member_conf_t;

typedef enum { KEELD_LOG_DEBUG, KEELD_LOG_INFO, KEELD_LOG_WARN, KEELD_LOG_ERROR } keeld_log_level_t;
typedef enum { KEELD_COMPACT_PERIODIC, KEELD_COMPACT_REVISION } keeld_compact_mode_t;

typedef struct keeld_config {
	char name[128];              /* --name (default "default") */
	char data_dir[4096];         /* --data-dir (default "<name>.keel") */
	keeld_url_list_t listen_client_urls;      /* default http://localhost:2379 */
	keeld_url_list_t advertise_client_urls;   /* default http://localhost:2379 */
	keeld_url_list_t listen_peer_urls;        /* default http://localhost:2380 */
	keeld_url_list_t initial_advertise_peer_urls; /* default http://localhost:2380 */
	size_t n_members;            /* --initial-cluster (default "<name>=<adv peer urls>") */
	keeld_member_conf_t members[KEELD_MAX_MEMBERS];
	bool cluster_state_existing; /* --initial-cluster-state new|existing */
	char cluster_token[256];     /* --initial-cluster-token (default "etcd-cluster") */
	uint64_t cluster_id;         /* keeld_cluster_id over the members */
	uint64_t self_id;            /* this member's id */
	unsigned heartbeat_ms;       /* --heartbeat-interval (100) */
	unsigned election_ms;        /* --election-timeout (1000) */
	uint64_t snapshot_count;     /* --snapshot-count (100000) */
	int64_t quota_backend_bytes; /* --quota-backend-bytes (0: 2 GiB, etcd's default) */
	uint64_t max_request_bytes;  /* --max-request-bytes (1572864) */
	keeld_compact_mode_t compaction_mode;     /* --auto-compaction-mode (periodic) */
	/* --auto-compaction-retention: periodic, a duration ("1h", "30m", or a bare number of
	 * hours) in milliseconds; revision, a number of revisions. 0: off. */
	uint64_t compaction_retention;
	keeld_log_level_t log_level; /* --log-level (info) */
	bool show_version;           /* --version */
	bool show_help;              /* --help / -h */
} keeld_config_t;

/* Parses argv and envp (NULL-terminated "K=V"), applying etcd 3.4's defaults and checks
 * (e.g. the election timeout must be at least 5 heartbeats; this member's advertised peer
 * URLs must match its --initial-cluster entry). An ETCD_ variable naming a flag that is
 * also given is refused, as etcd refuses it. 0 on success; otherwise 2 (the command
 * line's syntax) or 1 (a failed check), etcd's exit codes, and err (without a "keeld: "
 * prefix) says what is wrong, naming the flag. Warnings go to stderr. When
 * <data-dir>/member/wal exists the bootstrap checks are skipped, as etcd skips them, and
 * self_id may be 0: the member's identity then comes from its data directory. */
int keeld_config_parse(keeld_config_t *cfg, int argc, char **argv, char **envp, char *err,
		       size_t errlen);
/* The configuration of a member embedded in a program (libkeel's keel_open): argv as for
 * keeld_config_parse (argv[0] is skipped), no environment (etcd's embed package reads
 * none), and data_dir from the owner (--data-dir, --help and --version are refused). A
 * listener exists only when its flag is given: without --listen-client-urls the member
 * serves only the connections its owner hands it (grpc_server_adopt_fd) and advertises
 * no client URL unless --advertise-client-urls says one; without --listen-peer-urls it
 * has no peer listener and must be alone in --initial-cluster. A restart from an
 * existing data directory takes its membership from there, as keeld does: a member of a
 * larger cluster reopened without its peer flags cannot reach its peers. keeld's own
 * command line is unaffected: there, as in etcd, an empty URL flag keeps the default. */
int keeld_config_parse_embedded(keeld_config_t *cfg, int argc, char **argv,
				const char *data_dir, char *err, size_t errlen);
/* keeld's --help text. */
const char *keeld_config_usage(void);

/* A member's id from its sorted peer URLs and the cluster token, and the cluster's id
 * from its members' ids: stable across restarts and the same on every member. */
uint64_t keeld_member_id(const keeld_url_list_t *peer_urls, const char *token);
uint64_t keeld_cluster_id(const keeld_member_conf_t *members, size_t n);

/* Parses one comma-separated URL list ("http://127.0.0.1:2379,http://..."). */
int keeld_parse_urls(const char *s, keeld_url_list_t *out, char *err, size_t errlen);

#endif
