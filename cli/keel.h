/* cli/keel.h — private to the `keel` CLI: the command context, flag parsing, errors, and the
 * pure helpers the tables are made of (human durations, a pod's STATUS, column widths), which
 * tests/cluster/cli/test_keel_helpers.c checks. Nothing here talks to a component directly. */
#ifndef KEEL_CLI_KEEL_H
#define KEEL_CLI_KEEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cluster.h"

/* ---- the command context (keel.c fills the global flags) ----------------------------------- */

typedef struct keel_ctx {
	const char *endpoints;  /* --endpoints; NULL: KEEL_ENDPOINTS, else 127.0.0.1:2379 */
	const char *ns;         /* -n; "default" when not given */
	bool ns_set;            /* -n was given (apply checks documents against it) */
	bool all_ns;            /* -A */
	int timeout_ms;         /* --request-timeout; 0: the client's default */
	keel_t *k;              /* connected lazily by keel_ctx_store */
} keel_ctx_t;

/* The connected handle, or NULL after printing the error. */
keel_t *keel_ctx_store(keel_ctx_t *c);
void keel_ctx_close(keel_ctx_t *c);

/* ---- errors, kubectl's way ------------------------------------------------------------------ */

/* "Error from server (NotFound): pods \"x\" not found" for the store layer's codes, the bare
 * message for validation errors, "error: ..." for the rest; on stderr. */
void keel_print_error(const keel_error_t *err);
/* The same, the message prefixed "error when <what> \"<source>\": " (apply names its file). */
void keel_print_error_in(const keel_error_t *err, const char *what, const char *source);
/* "error: <fmt>" on stderr. Returns 1 (the exit status). */
int keel_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- flags ---------------------------------------------------------------------------------- */

enum { KEEL_FLAG_BOOL = 0, KEEL_FLAG_VALUE, KEEL_FLAG_MULTI };
typedef struct keel_flag {
	const char *name;     /* long name, without -- */
	char shorthand;       /* 0 when none */
	int type;             /* KEEL_FLAG_* */
	const char *usage;    /* one line for --help */
} keel_flag_t;

#define KEEL_MAX_FLAGS 24
#define KEEL_MAX_MULTI 32
typedef struct keel_flags {
	const char *val[KEEL_MAX_FLAGS];     /* per spec entry: NULL when absent; bools "true" */
	const char *multi[KEEL_MAX_MULTI];   /* values of the MULTI flag (-f), in order */
	int n_multi;
	char **pos;                          /* positional arguments (malloc'ed array) */
	int n_pos;
	bool help;
} keel_flags_t;

/* Parses argv (after the command name) against spec (terminated by a NULL name); -h/--help
 * sets help. Returns 0, or prints kubectl's unknown-flag error naming cmd and returns 1. */
int keel_flags_parse(const char *cmd, int argc, char **argv, const keel_flag_t *spec,
		     keel_flags_t *out);
void keel_flags_free(keel_flags_t *f);
/* A bool flag's value: absent -> dflt; "true"/"false" as given. */
bool keel_flag_bool(const keel_flags_t *f, int i, bool dflt);
void keel_usage(FILE *out, const char *usage, const keel_flag_t *spec);

/* A duration as kubectl's flags take it ("30s", "2m", "1h", "500ms", or plain seconds) in
 * milliseconds; -1 when malformed. */
int64_t keel_duration_ms(const char *s);

/* ---- pure helpers (unit-tested) ------------------------------------------------------------- */

/* kubectl's human duration: 45s, 2m30s, 10m, 3h4m, 5d, 2y3d; "<invalid>" below -1 s. */
void keel_human_duration(int64_t seconds, char *buf, size_t n);
/* AGE of an object at now (unix seconds): "<unknown>" without creationTimestamp. */
void keel_age(const json_t *obj, int64_t now, char *buf, size_t n);

typedef struct keel_pod_summary {
	char status[64];      /* kubectl's STATUS column */
	int ready, total;     /* READY "ready/total" */
	int restarts;
	int64_t last_restart; /* unix seconds of the newest lastState.terminated.finishedAt, 0 */
} keel_pod_summary_t;
/* kubectl's reading of a pod: phase, status.reason, each container's state, deletion. */
void keel_pod_summarize(const json_t *pod, keel_pod_summary_t *s);
/* RESTARTS as kubectl prints it: "0", or "3 (2m ago)" when the last restart time is known. */
void keel_restarts_text(const keel_pod_summary_t *s, int64_t now, char *buf, size_t n);
/* A node's STATUS: "Ready", "NotReady", "Unknown" when no Ready condition,
 * ",SchedulingDisabled" appended when spec.unschedulable. */
void keel_node_status(const json_t *node, char *buf, size_t n);

/* A table printed as kubectl's tabwriter does: left-aligned, each column as wide as its widest
 * cell plus 3 spaces (at least 6), the last column unpadded. Row 0 is the header. */
typedef struct keel_table {
	size_t cols;
	size_t rows;
	size_t cap;
	char **cells;         /* rows * cols strings, owned */
} keel_table_t;
keel_table_t *keel_table_new(size_t cols);
/* Copies the cells (NULL prints as ""); -1 on out of memory. */
int keel_table_add(keel_table_t *t, const char *const *cells);
/* widths[c] = max cell length of column c. */
void keel_table_widths(const keel_table_t *t, size_t *widths);
/* Prints rows [from, rows) padded to widths (NULL: the table's own). */
void keel_table_print(const keel_table_t *t, const size_t *widths, size_t from, FILE *out);
void keel_table_free(keel_table_t *t);

/* Prints text (lines of tab-separated cells) aligned as Go's text/tabwriter does with these
 * settings; kubectl's describe uses minwidth 0, padding 2. */
#define KEEL_TW_MAX_CELLS 16
void keel_tabwrite(const char *text, size_t minwidth, size_t padding, FILE *out);

/* ---- kinds ---------------------------------------------------------------------------------- */

/* "replicaset.apps", "pod", "lease.coordination.k8s.io": kubectl's name of one object's type. */
void keel_kind_qualified(const kc_kind_info_t *ki, char *buf, size_t n);

/* ---- commands (argv after the command name) ------------------------------------------------- */

int keel_get_main(keel_ctx_t *c, int argc, char **argv);
int keel_describe_main(keel_ctx_t *c, int argc, char **argv);
int keel_apply_main(keel_ctx_t *c, int argc, char **argv);
int keel_delete_main(keel_ctx_t *c, int argc, char **argv);
int keel_scale_main(keel_ctx_t *c, int argc, char **argv);
int keel_logs_main(keel_ctx_t *c, int argc, char **argv);

/* Reads a manifest file ("-" = stdin) and parses it; -1 after printing the error. */
int keel_read_manifest(const char *path, json_t **docs);

#endif
