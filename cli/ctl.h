/* cli/ctl.h — what keelctl's files share: the global flags, the lazily connected client,
 * output formats, etcdctl's exit codes and error reporting, and one entry point per
 * command group. keelctl.c owns the global flags and the dispatch; each ctl_*.c owns its
 * commands. */
#ifndef KEEL_CLI_CTL_H
#define KEEL_CLI_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "keel/keel.h"

/* etcdctl's exit codes (etcdctl/ctlv3/command/error.go). */
enum {
	CTL_EXIT_SUCCESS = 0,
	CTL_EXIT_ERROR = 1,
	CTL_EXIT_BAD_CONNECTION = 2,
	CTL_EXIT_INVALID_INPUT = 3,
	CTL_EXIT_BAD_FEATURE = 4,
	CTL_EXIT_INTERRUPTED = 5,
	CTL_EXIT_IO = 6,
	CTL_EXIT_BAD_ARGS = 128,
};

/* What keelctl reports as etcdctl's version (usage "VERSION:", `version`). */
#define CTL_ETCDCTL_VERSION "3.4.23"
#define CTL_API_VERSION "3.4"
#define CTL_MAX_FLAGS 16
#define CTL_MAX_GLOBALS 24

typedef enum { CTL_OUT_SIMPLE, CTL_OUT_JSON, CTL_OUT_FIELDS, CTL_OUT_TABLE,
	       CTL_OUT_PROTOBUF } ctl_out_t;

typedef struct ctl {
	char **endpoints;            /* from --endpoints / KEELCTL_ENDPOINTS / ETCDCTL_ENDPOINTS */
	size_t n_endpoints;
	int dial_timeout_ms;         /* --dial-timeout, default 2s as etcdctl */
	int command_timeout_ms;      /* --command-timeout, default 5s */
	int keepalive_time_ms;       /* --keepalive-time */
	int keepalive_timeout_ms;    /* --keepalive-timeout */
	ctl_out_t out;               /* -w / --write-out */
	bool hex;                    /* --hex */
	bool debug;                  /* --debug */
	bool value_only;             /* get --print-value-only: the simple printer omits keys */
	keel_t *k;                   /* NULL until ctl_client() */
	/* Set by keelctl.c before a command runs (see "flags and usage" below). */
	const struct ctl_cmd_spec *cmd;  /* the command being run */
	const char *flag_val[CTL_MAX_FLAGS]; /* its local flags' values, in cmd->flags order */
	bool flag_set[CTL_MAX_FLAGS];        /* given on the command line (pflag "Changed") */
	const char *inh_val[CTL_MAX_FLAGS];  /* a parent's flags (endpoint --cluster) */
	bool inh_set[CTL_MAX_FLAGS];
	const char *glob_val[CTL_MAX_GLOBALS]; /* the global flags, in ctl_global_flags order */
	bool glob_set[CTL_MAX_GLOBALS];
	bool prepared;               /* ctl_prepare ran */
	int args_at_dash;            /* cobra's ArgsLenAtDash: positional args before "--", or -1 */
	const char *argv0;           /* the program name, as invoked */
} ctl_t;

/* What etcdctl does before it makes a client: applies the ETCDCTL_ and KEELCTL_ variables to
 * unset global flags (a variable shadowed by a flag given on the command line is fatal,
 * as in etcdctl), checks the TLS/auth flags Keel cannot honour, and validates -w (exit 4
 * "unsupported output format"). Idempotent; ctl_client calls it. Commands that print
 * without a client (snapshot status) call it before printing. */
void ctl_prepare(ctl_t *c);
/* The client, connected on first use; on failure prints etcdctl's error and exits. */
keel_t *ctl_client(ctl_t *c);
/* Prints "Error: <message>" to stderr as etcdctl does and exits with code (closing the
 * client first). */
void ctl_fatal(ctl_t *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));
/* Reports a failed call as etcdctl does for a gRPC error ("Error: " + message; exit 1,
 * or ExitBadConnection where etcdctl uses it) and exits. */
void ctl_fatal_err(ctl_t *c, const keel_error_t *err) __attribute__((noreturn));
/* The text etcdctl's Go client shows for err: etcd's own messages as sent ("etcdserver:
 * ..."), "context deadline exceeded" for a deadline or no reachable endpoint, otherwise
 * "rpc error: code = <Name> desc = <message>". Returns buf. */
const char *ctl_err_text(const keel_error_t *err, char *buf, size_t len);

/* Closes the client (if connected) and exits with code. */
void ctl_exit(ctl_t *c, int code) __attribute__((noreturn));
/* The deadline for one short call: --command-timeout in ms. */
int ctl_timeout_ms(const ctl_t *c);

/* ---- flags and usage ----------------------------------------------------------------
 * keelctl.c holds etcdctl's whole command tree (ctl_cmds[], maintained by hand): names,
 * usage lines and every flag as etcdctl has them, with descriptions in Keel's own words
 * (tests/keelctl/test_flags.py checks the interface against etcdctl's --help).
 * It finds the command, parses its flags and the global ones (pflag syntax: --f=v, --f v,
 * -f v, -fv, bool --f / --f=false, "--" ends flags; global flags anywhere), applies the
 * environment, prints usage for -h/--help and etcdctl's errors for bad flags, and only
 * then calls the group's ctl_cmd_*() with the parsed values in c. A command reads them by
 * flag name with the accessors below; a flag name not in its table is a programming error
 * (the accessors then return the zero value). Integer and duration flags were validated at
 * parse time with pflag's messages, so the accessors cannot fail. */
typedef enum { CTL_FLAG_BOOL, CTL_FLAG_STRING, CTL_FLAG_INT, CTL_FLAG_DURATION,
	       CTL_FLAG_STRINGS, CTL_FLAG_OTHER } ctl_flag_type_t;
typedef struct ctl_flag_spec {
	const char *name;
	char shorthand;              /* 0 when none */
	ctl_flag_type_t type;
	const char *def;             /* the default as etcdctl's usage shows it */
	const char *usage;
} ctl_flag_spec_t;
typedef struct ctl_cmd_spec {
	const char *path;            /* "get", "lease grant" */
	const char *use;             /* usage line after "etcdctl " */
	const char *short_desc;
	const char *long_desc;       /* NULL when none */
	const ctl_flag_spec_t *flags;     /* local flags, NULL-name terminated */
	const ctl_flag_spec_t *inherited; /* a parent's persistent flags, or NULL */
	bool group;                  /* has subcommands (lease, member, ...) */
} ctl_cmd_spec_t;

bool ctl_flag_changed(const ctl_t *c, const char *name); /* set on the command line */
const char *ctl_flag_str(const ctl_t *c, const char *name); /* value or default */
bool ctl_flag_bool(const ctl_t *c, const char *name);
int64_t ctl_flag_int(const ctl_t *c, const char *name);
int64_t ctl_flag_duration_ms(const ctl_t *c, const char *name);
/* Parses a Go duration ("1m30s", "500ms", "2s"); returns 0 and *ms, or -1. */
int ctl_parse_duration_ms(const char *s, int64_t *ms);
/* The usage text of cmd in etcdctl's layout (NAME:, USAGE:, OPTIONS: ...), on
 * stdout. For a command's own "wrong arguments" paths that print usage. */
void ctl_print_usage(const ctl_cmd_spec_t *cmd);

/* ---- printing helpers (print.c) ------------------------------------------------------
 * Byte-for-byte etcdctl output pieces, for every command file. */
/* Go's %q of a byte string (strconv.Quote, invalid UTF-8 as \x..). */
void ctl_fput_quoted(FILE *f, const void *s, size_t n);
/* The same as a malloc'ed string; NULL when out of memory. */
char *ctl_quote_dup(const void *s, size_t n);
/* A JSON string as Go's encoding/json writes a []byte (base64) or a string (escaped,
 * with <, >, & as \u003c etc.). */
void ctl_fput_json_base64(FILE *f, const void *s, size_t n);
void ctl_fput_json_string(FILE *f, const char *s);
/* The fields printer's header: "ClusterID" : ..., "MemberID", "Revision", "RaftTerm". */
void ctl_print_fields_header(const keel_header_t *h);
/* {"cluster_id":..,"member_id":..,"revision":..,"raft_term":..} omitting zeros as Go's
 * omitempty does (no trailing newline). */
void ctl_fput_json_header(FILE *f, const keel_header_t *h);
/* A key or value as the simple printer shows it: raw, or \x.. per byte with --hex. */
void ctl_print_bytes_line(const ctl_t *c, const void *s, size_t n);
/* tablewriter's table as etcdctl -w table draws it (headers upper-cased and centred,
 * cells right-aligned); cells is nrows*ncols strings, row by row. */
void ctl_print_table(const char *const *hdr, size_t ncols, const char *const *cells,
		     size_t nrows);
/* go-humanize's Bytes ("20 kB", "1.2 MB"), as endpoint status shows db size. */
void ctl_humanize_bytes(uint64_t n, char *buf, size_t len);
/* Go's time.Duration.String() of ns ("1.234567ms", "2.5s", "1m0s"). */
void ctl_format_duration(int64_t ns, char *buf, size_t len);
/* Packs a protobuf-c message and writes its bytes to stdout (-w protobuf). */
struct ProtobufCMessage;
void ctl_print_pb(const struct ProtobufCMessage *msg);
/* Progress for long operations: a "\r"-rewritten line on stderr when stderr is a
 * terminal, nothing otherwise (piped output stays quiet). After the last ctl_progress,
 * ctl_progress_done ends the line (only call it when ctl_progress was called). */
bool ctl_progress_enabled(void);
void ctl_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ctl_progress_done(void);
/* The error etcdctl prints for an unsupported -w (and exits with ExitBadFeature):
 * "Error: <format> not supported as output format". */
void ctl_fatal_format(ctl_t *c) __attribute__((noreturn));
/* The same from a libkeel callback (watch, keep-alive), where closing the client is not
 * allowed: flushes and _exit()s. */
void ctl_fatal_format_async(const ctl_t *c) __attribute__((noreturn));
const char *ctl_out_name(ctl_out_t out);

/* KV results exactly as etcdctl's get/put/del/txn print them in c->out (table: exits with
 * "table not supported as output format"), honouring --hex and c->value_only. lock and
 * elect print their key with ctl_print_get, as etcdctl does. */
void ctl_print_get(ctl_t *c, const keel_range_result_t *r);
void ctl_print_put(ctl_t *c, const keel_put_result_t *r);
void ctl_print_del(ctl_t *c, const keel_delete_result_t *r);
void ctl_print_txn(ctl_t *c, const keel_txn_result_t *r);
/* One key-value: simple ("key\nvalue\n", --hex aware), fields ("<pfx>Key" : ... six lines),
 * JSON ({"key":base64,...} omitempty, no newline). */
void ctl_print_kv_simple(const ctl_t *c, const keel_kv_t *kv);
void ctl_print_kv_fields(const char *pfx, const keel_kv_t *kv);
void ctl_fput_json_kv(FILE *f, const keel_kv_t *kv);
/* For -w protobuf of other responses: an arena owning protobuf-c messages built from keel
 * results (pointers into the results are borrowed, so print before freeing those), with
 * a header and a key-value builder. Free the arena after ctl_print_pb. */
struct Mvccpb__KeyValue;
struct Etcdserverpb__ResponseHeader;
void *ctl_pb_arena_new(void);
void *ctl_pb_alloc(void *arena, size_t size);      /* zeroed; NULL when out of memory */
struct Etcdserverpb__ResponseHeader *ctl_pb_header(void *arena, const keel_header_t *h);
struct Mvccpb__KeyValue *ctl_pb_kv(void *arena, const keel_kv_t *kv);
void ctl_pb_arena_free(void *arena);

/* etcdctl's argify: splits line into words ("double quoted" Go strings, 'single quoted',
 * bare words) into args (room for max) using store (room for 2*strlen(line)+2) as text.
 * Returns the count, or -2 for a malformed quoted word. line is left unchanged. */
int ctl_argify(char *line, char **args, int max, char *store);
/* Parses the arguments of one of etcdctl's commands (path "get", "put", "del") with that
 * command's own flags only, as txn does for each request line: sub (zeroed by the call,
 * apart from what it copies from c) gets the flag values; the positional arguments go to
 * pos (room for argc). Returns their number, or -1 with why set to pflag's message. */
int ctl_parse_sub(const ctl_t *c, ctl_t *sub, const char *path, int argc, char **argv,
		  char **pos, char *why, size_t wlen);

/* Each command group: argv[0] is the command's name (e.g. "get"), for a group argv[1] is
 * the subcommand ("member", "add"); the rest are the positional arguments (flags removed;
 * read them with ctl_flag_*). Returns the exit code. */
int ctl_cmd_get(ctl_t *c, int argc, char **argv);
int ctl_cmd_put(ctl_t *c, int argc, char **argv);
int ctl_cmd_del(ctl_t *c, int argc, char **argv);
int ctl_cmd_txn(ctl_t *c, int argc, char **argv);
int ctl_cmd_compaction(ctl_t *c, int argc, char **argv);
int ctl_cmd_watch(ctl_t *c, int argc, char **argv);
int ctl_cmd_lease(ctl_t *c, int argc, char **argv);
int ctl_cmd_version(ctl_t *c, int argc, char **argv);
/* ctl_lock.c */
int ctl_cmd_lock(ctl_t *c, int argc, char **argv);
int ctl_cmd_elect(ctl_t *c, int argc, char **argv);
/* ctl_ops.c */
int ctl_cmd_member(ctl_t *c, int argc, char **argv);
int ctl_cmd_endpoint(ctl_t *c, int argc, char **argv);
int ctl_cmd_alarm(ctl_t *c, int argc, char **argv);
int ctl_cmd_defrag(ctl_t *c, int argc, char **argv);
int ctl_cmd_snapshot(ctl_t *c, int argc, char **argv);
int ctl_cmd_move_leader(ctl_t *c, int argc, char **argv);
int ctl_cmd_check(ctl_t *c, int argc, char **argv);

#endif
