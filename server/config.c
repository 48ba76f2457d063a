/* server/config.c — keeld's configuration: argv and ETCD_* variables parsed the way etcd 3.4
 * parses them (Go's flag package rules, then the environment, then etcd's checks). Pure
 * except for warnings on stderr and one stat of <data-dir>/member/wal; never exits, never
 * keeps a pointer into argv or envp after it returns. */
#include "config.h"

#include <arpa/inet.h>
#include <openssl/sha.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* keeld_config_parse's return values: like etcd's exit codes, 2 for a command line Go's
 * flag package would reject, 1 for everything etcd checks afterwards. */
#define CFG_ERR_SYNTAX 2
#define CFG_ERR_CHECK 1

#define MAX_ELECTION_MS 50000 /* etcd's maxElectionMs */
#define DEFAULT_CLUSTER "default=http://localhost:2380"

enum flag_id {
	F_NAME, F_DATA_DIR, F_LISTEN_CLIENT, F_ADVERTISE_CLIENT, F_LISTEN_PEER, F_ADVERTISE_PEER,
	F_CLUSTER, F_CLUSTER_STATE, F_CLUSTER_TOKEN, F_HEARTBEAT, F_ELECTION, F_SNAPSHOT_COUNT,
	F_QUOTA, F_MAX_REQUEST, F_COMPACT_MODE, F_COMPACT_RETENTION, F_LOG_LEVEL, F_VERSION,
	F_COUNT
};

enum flag_kind { FK_TEXT, FK_URLS, FK_UINT, FK_UINT64, FK_INT64, FK_BOOL, FK_STATE, FK_LEVEL };

struct flag_def {
	const char *name;
	enum flag_kind kind;
};

/* Indexed by enum flag_id. FK_TEXT values are kept raw and interpreted after all sources
 * are read, because their meaning depends on other flags (name, mode). */
static const struct flag_def flag_defs[F_COUNT] = {
	[F_NAME] = {"name", FK_TEXT},
	[F_DATA_DIR] = {"data-dir", FK_TEXT},
	[F_LISTEN_CLIENT] = {"listen-client-urls", FK_URLS},
	[F_ADVERTISE_CLIENT] = {"advertise-client-urls", FK_URLS},
	[F_LISTEN_PEER] = {"listen-peer-urls", FK_URLS},
	[F_ADVERTISE_PEER] = {"initial-advertise-peer-urls", FK_URLS},
	[F_CLUSTER] = {"initial-cluster", FK_TEXT},
	[F_CLUSTER_STATE] = {"initial-cluster-state", FK_STATE},
	[F_CLUSTER_TOKEN] = {"initial-cluster-token", FK_TEXT},
	[F_HEARTBEAT] = {"heartbeat-interval", FK_UINT},
	[F_ELECTION] = {"election-timeout", FK_UINT},
	[F_SNAPSHOT_COUNT] = {"snapshot-count", FK_UINT64},
	[F_QUOTA] = {"quota-backend-bytes", FK_INT64},
	[F_MAX_REQUEST] = {"max-request-bytes", FK_UINT64},
	[F_COMPACT_MODE] = {"auto-compaction-mode", FK_TEXT},
	[F_COMPACT_RETENTION] = {"auto-compaction-retention", FK_TEXT},
	[F_LOG_LEVEL] = {"log-level", FK_LEVEL},
	[F_VERSION] = {"version", FK_BOOL},
};

/* Every other flag etcd 3.4 defines: refused by name rather than silently ignored. */
static const char *const etcd_only_flags[] = {
	"config-file", "wal-dir", "max-snapshots", "max-wals", "initial-election-tick-advance",
	"backend-batch-interval", "backend-batch-limit", "max-txn-ops", "max-concurrent-streams",
	"grpc-keepalive-min-time", "grpc-keepalive-interval", "grpc-keepalive-timeout",
	"listen-metrics-urls", "discovery", "discovery-fallback", "discovery-proxy",
	"discovery-srv", "discovery-srv-name", "strict-reconfig-check", "enable-v2", "pre-vote",
	"proxy", "proxy-failure-wait", "proxy-refresh-interval", "proxy-dial-timeout",
	"proxy-write-timeout", "proxy-read-timeout", "cert-file", "key-file", "client-cert-auth",
	"client-crl-file", "client-cert-allowed-hostname", "trusted-ca-file", "auto-tls",
	"peer-cert-file", "peer-key-file", "peer-client-cert-auth", "peer-trusted-ca-file",
	"peer-auto-tls", "peer-crl-file", "peer-cert-allowed-cn", "peer-cert-allowed-hostname",
	"cipher-suites", "cors", "host-whitelist", "logger", "log-output", "log-outputs", "debug",
	"log-package-levels", "enable-pprof", "metrics", "auth-token", "bcrypt-cost",
	"auth-token-ttl", "enable-grpc-gateway", "unsafe-no-fsync", "force-new-cluster",
	"experimental-initial-corrupt-check", "experimental-corrupt-check-time",
	"experimental-enable-v2v3", "experimental-backend-bbolt-freelist-type",
	"experimental-enable-lease-checkpoint", "experimental-enable-lease-checkpoint-persist",
	"experimental-compaction-batch-limit", "experimental-watch-progress-notify-interval",
	"experimental-warning-apply-duration", "experimental-peer-skip-client-san-verification",
};

/* etcd 2 flags etcd 3.4 still accepts as booleans and ignores with a warning. */
static const char *const etcd_ignored_flags[] = {
	"cluster-active-size", "cluster-remove-delay", "cluster-sync-interval", "config", "force",
	"max-result-buffer", "max-retry-attempts", "peer-heartbeat-interval",
	"peer-election-timeout", "retry-interval", "snapshot", "v", "vv",
};

static const struct {
	const char *name;
	keeld_log_level_t level;
} log_levels[] = {
	{"debug", KEELD_LOG_DEBUG}, {"info", KEELD_LOG_INFO}, {"warn", KEELD_LOG_WARN},
	{"error", KEELD_LOG_ERROR},
	/* etcd maps these three to capnslog's CRITICAL; keeld's quietest level is error. */
	{"dpanic", KEELD_LOG_ERROR}, {"panic", KEELD_LOG_ERROR}, {"fatal", KEELD_LOG_ERROR},
};

enum source { SRC_DEFAULT, SRC_ENV, SRC_FLAG };

struct parse {
	keeld_config_t *cfg;
	enum source src[F_COUNT];
	const char *text[F_COUNT]; /* FK_TEXT values, pointing into argv/envp while parsing */
	char *err;
	size_t errlen;
	const char *embedded_dir; /* keeld_config_parse_embedded: the owner's data directory */
};

static int parse_fail(struct parse *p, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int parse_fail(struct parse *p, int rc, const char *fmt, ...)
{
	if (p->err && p->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->err, p->errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* etcd's wrapping of what its flag checks return. */
static int verify_fail(struct parse *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int verify_fail(struct parse *p, const char *fmt, ...)
{
	char why[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return parse_fail(p, CFG_ERR_CHECK, "error verifying flags, %s. See 'keeld --help'.", why);
}

static void config_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void config_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("keeld: warning: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- numbers, as Go's strconv with base 0 ---- */

/* Digits of s in Go's base-0 syntax (0x, 0o, 0b, leading-0 octal, '_' between digits).
 * 0, or -1 "parse error", or -2 "value out of range" (checked against max). */
static int num_parse_unsigned(const char *s, uint64_t max, uint64_t *out)
{
	unsigned base = 10;
	const char *d = s;
	if (d[0] == '0' && d[1]) {
		char c = (char)tolower((unsigned char)d[1]);
		if (c == 'x')
			base = 16, d += 2;
		else if (c == 'o')
			base = 8, d += 2;
		else if (c == 'b')
			base = 2, d += 2;
		else
			base = 8, d += 1;
	}
	if (!*d)
		return -1;
	uint64_t v = 0;
	bool range = false;
	bool after_digit = d != s; /* '_' only between digits or right after the prefix */
	for (; *d; d++) {
		if (*d == '_') {
			if (!after_digit)
				return -1;
			after_digit = false;
			continue;
		}
		after_digit = true;
		int c = tolower((unsigned char)*d), dv;
		if (c >= '0' && c <= '9')
			dv = c - '0';
		else if (c >= 'a' && c <= 'z')
			dv = c - 'a' + 10;
		else
			return -1;
		if ((unsigned)dv >= base)
			return -1;
		if (v > (UINT64_MAX - (unsigned)dv) / base)
			range = true;
		else
			v = v * base + (unsigned)dv;
	}
	if (!after_digit)
		return -1;
	if (range || v > max)
		return -2;
	*out = v;
	return 0;
}

static int num_parse_signed(const char *s, int64_t *out)
{
	bool neg = s[0] == '-';
	uint64_t v;
	int rc = num_parse_unsigned(s + (s[0] == '-' || s[0] == '+'),
				    neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &v);
	if (rc)
		return rc;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

static const char *num_error(int rc)
{
	return rc == -2 ? "value out of range" : "parse error";
}

static int bool_parse(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
	static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcmp(s, yes[i]))
			return *out = true, 0;
		if (!strcmp(s, no[i]))
			return *out = false, 0;
	}
	return -1;
}

/* ---- Go durations (time.ParseDuration), in nanoseconds, non-negative only ---- */

static const struct {
	const char *unit;
	uint64_t ns;
} duration_units[] = {
	{"ns", 1}, {"us", 1000}, {"\xc2\xb5s", 1000}, {"\xce\xbcs", 1000}, {"ms", 1000000},
	{"s", 1000000000ULL}, {"m", 60000000000ULL}, {"h", 3600000000000ULL},
};

static int duration_parse(const char *orig, uint64_t *out, char *err, size_t errlen)
{
	const char *s = orig;
	bool neg = false;
	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	if (!strcmp(s, "0"))
		return *out = 0, 0;
	if (!*s)
		goto invalid;
	uint64_t total = 0;
	while (*s) {
		uint64_t whole = 0, frac = 0, scale = 1;
		bool digits = false, overflow = false;
		if (!(*s == '.' || isdigit((unsigned char)*s)))
			goto invalid;
		for (; isdigit((unsigned char)*s); s++, digits = true) {
			if (whole > (UINT64_MAX - 9) / 10)
				overflow = true;
			else
				whole = whole * 10 + (uint64_t)(*s - '0');
		}
		if (*s == '.') {
			for (s++; isdigit((unsigned char)*s); s++, digits = true) {
				if (scale < 1000000000) /* more digits: below 4us even in hours */
					frac = frac * 10 + (uint64_t)(*s - '0'), scale *= 10;
			}
		}
		if (!digits || overflow)
			goto invalid;
		const char *u = s;
		while (*s && *s != '.' && !isdigit((unsigned char)*s))
			s++;
		size_t ulen = (size_t)(s - u);
		if (!ulen) {
			set_err(err, errlen, "time: missing unit in duration \"%s\"", orig);
			return -1;
		}
		uint64_t unit = 0;
		for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
			if (strlen(duration_units[i].unit) == ulen &&
			    !memcmp(duration_units[i].unit, u, ulen))
				unit = duration_units[i].ns;
		}
		if (!unit) {
			set_err(err, errlen, "time: unknown unit \"%.*s\" in duration \"%s\"",
				(int)ulen, u, orig);
			return -1;
		}
		if (whole > (uint64_t)INT64_MAX / unit)
			goto invalid;
		uint64_t v = whole * unit;
		/* frac < scale <= 1e18 and unit <= 3.6e12: split to stay within 64 bits */
		v += (frac * (unit / 1000) / scale) * 1000 + frac * (unit % 1000) / scale;
		if (v > (uint64_t)INT64_MAX - total)
			goto invalid;
		total += v;
	}
	if (neg && total) {
		set_err(err, errlen, "negative duration \"%s\"", orig);
		return -1;
	}
	*out = total;
	return 0;
invalid:
	set_err(err, errlen, "time: invalid duration \"%s\"", orig);
	return -1;
}

/* ---- URLs ---- */

static bool url_host_is_ip(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* One URL of a list, after etcd's types.NewURLs, narrowed to what keeld serves:
 * http://host:port with nothing after the port. */
static int url_parse_one(const char *in, size_t len, keeld_url_t *u, char *err, size_t errlen)
{
	while (len && isspace((unsigned char)*in))
		in++, len--;
	while (len && isspace((unsigned char)in[len - 1]))
		len--;
	char s[512];
	if (len >= sizeof(s)) {
		set_err(err, errlen, "URL is too long (%zu bytes): %.64s...", len, in);
		return -1;
	}
	memcpy(s, in, len);
	s[len] = '\0';

	const char *sep = strstr(s, "://");
	size_t slen = sep ? (size_t)(sep - s) : 0;
	char scheme[8] = "";
	if (sep && slen < sizeof(scheme)) {
		for (size_t i = 0; i < slen; i++)
			scheme[i] = (char)tolower((unsigned char)s[i]);
		scheme[slen] = '\0';
	}
	if (!strcmp(scheme, "https") || !strcmp(scheme, "unix") || !strcmp(scheme, "unixs")) {
		set_err(err, errlen, "URL scheme %s is not supported by keeld yet "
			"(plain http only, no TLS or unix sockets): %s", scheme, s);
		return -1;
	}
	if (strcmp(scheme, "http")) {
		set_err(err, errlen, "URL scheme must be http, https, unix, or unixs: %s", s);
		return -1;
	}
	const char *auth = sep + 3;
	size_t alen = strcspn(auth, "/?#");
	if (auth[alen] == '/') {
		set_err(err, errlen, "URL must not contain a path: %s", s);
		return -1;
	}
	if (auth[alen]) {
		set_err(err, errlen, "URL must not contain a query or fragment: %s", s);
		return -1;
	}
	if (memchr(auth, '@', alen)) {
		set_err(err, errlen, "URL must not contain user information: %s", s);
		return -1;
	}
	const char *host = auth, *colon;
	size_t hlen;
	bool bracketed = *auth == '[';
	if (bracketed) {
		const char *close = strchr(auth, ']');
		if (!close) {
			set_err(err, errlen, "parse \"%s\": missing ']' in host", s);
			return -1;
		}
		host = auth + 1;
		hlen = (size_t)(close - host);
		colon = close[1] == ':' ? close + 1 : NULL;
		if (!colon) {
			set_err(err, errlen, "URL address does not have the form \"host:port\": %s",
				s);
			return -1;
		}
	} else {
		colon = strchr(auth, ':');
		if (!colon || strchr(colon + 1, ':')) {
			set_err(err, errlen, "URL address does not have the form \"host:port\": %s",
				s);
			return -1;
		}
		hlen = (size_t)(colon - auth);
	}
	const char *port = colon + 1;
	size_t plen = strlen(port);
	if (!plen || plen > 5 || strspn(port, "0123456789") != plen) {
		set_err(err, errlen, "parse \"%s\": invalid port \":%s\" after host", s, port);
		return -1;
	}
	long pv = strtol(port, NULL, 10);
	if (pv > 65535) {
		set_err(err, errlen, "URL port out of range (0-65535): %s", s);
		return -1;
	}
	if (hlen >= sizeof(u->host)) {
		set_err(err, errlen, "URL host is too long: %s", s);
		return -1;
	}
	memcpy(u->host, host, hlen);
	u->host[hlen] = '\0';
	u->port = (int)pv;
	snprintf(u->text, sizeof(u->text), bracketed ? "http://[%s]:%d" : "http://%s:%d",
		 u->host, u->port);
	return 0;
}

static int url_cmp(const void *a, const void *b)
{
	return strcmp(((const keeld_url_t *)a)->text, ((const keeld_url_t *)b)->text);
}

int keeld_parse_urls(const char *s, keeld_url_list_t *out, char *err, size_t errlen)
{
	keeld_url_list_t l;
	l.n = 0;
	for (const char *p = s;;) {
		size_t len = strcspn(p, ",");
		keeld_url_t u;
		if (url_parse_one(p, len, &u, err, errlen))
			return -1;
		bool dup = false;
		for (size_t i = 0; i < l.n; i++)
			dup = dup || !strcmp(l.v[i].text, u.text);
		if (!dup) {
			if (l.n == KEELD_MAX_URLS) {
				set_err(err, errlen, "too many URLs (keeld takes at most %d): %s",
					KEELD_MAX_URLS, s);
				return -1;
			}
			l.v[l.n++] = u;
		}
		if (!p[len])
			break;
		p += len + 1;
	}
	/* etcd keeps URL lists sorted, so the order they were written in does not matter */
	qsort(l.v, l.n, sizeof(l.v[0]), url_cmp);
	*out = l;
	return 0;
}

static void urls_join(const keeld_url_list_t *l, const char *prefix, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < l->n && off < len; i++) {
		int n = snprintf(buf + off, len - off, "%s%s%s", i ? "," : "", prefix,
				 l->v[i].text);
		if (n < 0)
			break;
		off += (size_t)n;
	}
}

/* ---- ids ---- */

/* etcd's ids, so the same flags give a Keel member and an etcd member the same member and
 * cluster ids: the first 8 bytes (big-endian) of a SHA-1. */
static uint64_t id_of_sha1(const void *data, size_t len)
{
	unsigned char md[SHA_DIGEST_LENGTH];
	SHA1(data, len, md);
	uint64_t id = 0;
	for (int i = 0; i < 8; i++)
		id = id << 8 | md[i];
	return id;
}

static int id_cmp_text(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* SHA-1 of the sorted peer URLs joined with nothing between them, then the token. */
uint64_t keeld_member_id(const keeld_url_list_t *peer_urls, const char *token)
{
	const char *sorted[KEELD_MAX_URLS];
	size_t n = peer_urls->n < KEELD_MAX_URLS ? peer_urls->n : KEELD_MAX_URLS;
	char buf[KEELD_MAX_URLS * sizeof(peer_urls->v[0].text) + 1024];
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		sorted[i] = peer_urls->v[i].text;
	qsort(sorted, n, sizeof(sorted[0]), id_cmp_text);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(sorted[i]);
		memcpy(buf + len, sorted[i], l);
		len += l;
	}
	size_t tl = strnlen(token, sizeof(buf) - len);
	memcpy(buf + len, token, tl);
	return id_of_sha1(buf, len + tl);
}

static int id_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* SHA-1 of the sorted member ids, each 8 bytes big-endian. */
uint64_t keeld_cluster_id(const keeld_member_conf_t *members, size_t n)
{
	uint64_t ids[KEELD_MAX_MEMBERS];
	unsigned char be[8 * KEELD_MAX_MEMBERS];
	if (n > KEELD_MAX_MEMBERS)
		n = KEELD_MAX_MEMBERS;
	for (size_t i = 0; i < n; i++)
		ids[i] = members[i].id;
	qsort(ids, n, sizeof(ids[0]), id_cmp);
	for (size_t i = 0; i < n; i++)
		for (int b = 0; b < 8; b++)
			be[8 * i + (size_t)b] = (unsigned char)(ids[i] >> (56 - 8 * b));
	return id_of_sha1(be, 8 * n);
}

/* ---- setting one flag ---- */

static keeld_url_list_t *flag_url_list(keeld_config_t *cfg, enum flag_id id)
{
	switch (id) {
	case F_LISTEN_CLIENT:
		return &cfg->listen_client_urls;
	case F_ADVERTISE_CLIENT:
		return &cfg->advertise_client_urls;
	case F_LISTEN_PEER:
		return &cfg->listen_peer_urls;
	default:
		return &cfg->initial_advertise_peer_urls;
	}
}

/* Stores value into the flag's field, as the flag's Go Value.Set would. On error, why
 * (without the flag's name) goes to why. */
static int flag_set(struct parse *p, enum flag_id id, const char *value, char *why,
		    size_t whylen)
{
	keeld_config_t *cfg = p->cfg;
	uint64_t u;
	int64_t i64;
	int rc;
	switch (flag_defs[id].kind) {
	case FK_TEXT:
		p->text[id] = value;
		return 0;
	case FK_URLS:
		/* etcd lets "" through its URL flags and keeps what it had */
		if (!*value)
			return 0;
		return keeld_parse_urls(value, flag_url_list(cfg, id), why, whylen);
	case FK_UINT:
		rc = num_parse_unsigned(value, UINT_MAX, &u);
		if (rc)
			return set_err(why, whylen, "%s", num_error(rc)), -1;
		*(id == F_HEARTBEAT ? &cfg->heartbeat_ms : &cfg->election_ms) = (unsigned)u;
		return 0;
	case FK_UINT64:
		rc = num_parse_unsigned(value, UINT64_MAX, &u);
		if (rc)
			return set_err(why, whylen, "%s", num_error(rc)), -1;
		*(id == F_SNAPSHOT_COUNT ? &cfg->snapshot_count : &cfg->max_request_bytes) = u;
		return 0;
	case FK_INT64:
		rc = num_parse_signed(value, &i64);
		if (rc)
			return set_err(why, whylen, "%s", num_error(rc)), -1;
		cfg->quota_backend_bytes = i64;
		return 0;
	case FK_BOOL:
		if (bool_parse(value, &cfg->show_version))
			return set_err(why, whylen, "parse error"), -1;
		return 0;
	case FK_STATE:
		if (strcmp(value, "new") && strcmp(value, "existing"))
			return set_err(why, whylen, "invalid value"), -1;
		cfg->cluster_state_existing = !strcmp(value, "existing");
		return 0;
	case FK_LEVEL:
		for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++) {
			if (!strcmp(value, log_levels[i].name))
				return cfg->log_level = log_levels[i].level, 0;
		}
		set_err(why, whylen, "unknown level \"%s\" (debug, info, warn, error, dpanic, "
			"panic or fatal)", value);
		return -1;
	}
	return -1;
}

/* ---- the command line, by Go's flag package rules ---- */

static bool name_in(const char *name, size_t len, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (strlen(list[i]) == len && !memcmp(list[i], name, len))
			return true;
	}
	return false;
}

static int flag_lookup(const char *name, size_t len)
{
	for (int i = 0; i < F_COUNT; i++) {
		if (strlen(flag_defs[i].name) == len && !memcmp(flag_defs[i].name, name, len))
			return i;
	}
	return -1;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* One argument at *i. 0: consumed, 1: flags ended (at *i), 3: --help; else an error. */
static int args_parse_one(struct parse *p, int argc, char **argv, int *i)
{
	const char *s = argv[*i];
	if (strlen(s) < 2 || s[0] != '-')
		return 1;
	const char *name = s + 1;
	if (*name == '-') {
		name++;
		if (!*name) {
			++*i;
			return 1;
		}
	}
	if (!*name || *name == '-' || *name == '=')
		return parse_fail(p, CFG_ERR_SYNTAX, "bad flag syntax: %s", s);
	++*i;
	const char *eq = strchr(name, '=');
	size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
	int id = flag_lookup(name, nlen);
	if (id < 0) {
		if (name_in(name, nlen, etcd_only_flags, COUNT(etcd_only_flags)))
			return parse_fail(p, CFG_ERR_SYNTAX, "flag --%.*s is an etcd flag keeld "
					  "does not support", (int)nlen, name);
		if (name_in(name, nlen, etcd_ignored_flags, COUNT(etcd_ignored_flags))) {
			config_warn("flag \"-%.*s\" is no longer supported - ignoring.", (int)nlen,
				    name);
			return 0;
		}
		if ((nlen == 4 && !memcmp(name, "help", 4)) || (nlen == 1 && *name == 'h'))
			return 3;
		return parse_fail(p, CFG_ERR_SYNTAX, "flag provided but not defined: -%.*s "
				  "(see 'keeld --help')", (int)nlen, name);
	}
	char why[512];
	if (flag_defs[id].kind == FK_BOOL) {
		if (flag_set(p, id, eq ? eq + 1 : "true", why, sizeof(why)))
			return parse_fail(p, CFG_ERR_SYNTAX,
					  "invalid boolean value \"%s\" for -%s: %s",
					  eq ? eq + 1 : "", flag_defs[id].name, why);
		p->src[id] = SRC_FLAG;
		return 0;
	}
	const char *value = eq ? eq + 1 : NULL;
	if (!value && *i < argc)
		value = argv[(*i)++];
	if (!value)
		return parse_fail(p, CFG_ERR_SYNTAX, "flag needs an argument: -%s",
				  flag_defs[id].name);
	if (flag_set(p, id, value, why, sizeof(why)))
		return parse_fail(p, CFG_ERR_SYNTAX, "invalid value \"%s\" for flag -%s: %s", value,
				  flag_defs[id].name, why);
	p->src[id] = SRC_FLAG;
	return 0;
}

static int args_parse(struct parse *p, int argc, char **argv)
{
	int i = 1;
	while (i < argc) {
		int rc = args_parse_one(p, argc, argv, &i);
		if (rc == 3) {
			p->cfg->show_help = true;
			return 0;
		}
		if (rc == 1)
			break;
		if (rc)
			return rc;
	}
	if (i < argc)
		return parse_fail(p, CFG_ERR_CHECK, "error verifying flags, '%s' is not a valid "
				  "flag. See 'keeld --help'.", argv[i]);
	return 0;
}

/* ---- the environment ---- */

/* Whether key (len bytes) is ETCD_<flag name, upper case, '-' as '_'>. */
static bool env_names_flag(const char *key, size_t len, const char *flag)
{
	if (len != 5 + strlen(flag) || memcmp(key, "ETCD_", 5))
		return false;
	for (size_t i = 0; flag[i]; i++) {
		char want = flag[i] == '-' ? '_' : (char)toupper((unsigned char)flag[i]);
		if (key[5 + i] != want)
			return false;
	}
	return true;
}

static int env_apply_one(struct parse *p, const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t klen = eq ? (size_t)(eq - kv) : strlen(kv);
	const char *value = eq ? eq + 1 : "";
	if (klen < 5 || memcmp(kv, "ETCD_", 5))
		return 0;
	for (int id = 0; id < F_COUNT; id++) {
		if (!env_names_flag(kv, klen, flag_defs[id].name))
			continue;
		if (p->src[id] == SRC_FLAG) {
			/* etcd 3.4 refuses to guess which of the two was meant */
			return parse_fail(p, CFG_ERR_CHECK,
					  "conflicting environment variable \"%.*s\" is shadowed by "
					  "corresponding command-line flag (either unset environment "
					  "variable or disable flag)", (int)klen, kv);
		}
		if (!*value || p->src[id] == SRC_ENV) /* etcd skips empty ones; getenv: 1st */
			return 0;
		char why[512];
		if (flag_set(p, id, value, why, sizeof(why)))
			return verify_fail(p, "invalid value \"%s\" for %.*s: %s", value,
					   (int)klen, kv, why);
		if (id == F_VERSION) /* etcd reads it but only honours --version itself */
			p->cfg->show_version = false;
		p->src[id] = SRC_ENV;
		return 0;
	}
	for (size_t i = 0; i < COUNT(etcd_only_flags); i++) {
		if (!env_names_flag(kv, klen, etcd_only_flags[i]))
			continue;
		if (!*value)
			return 0;
		return parse_fail(p, CFG_ERR_CHECK,
				  "environment variable %.*s sets etcd flag --%s, which keeld "
				  "does not support (unset it)", (int)klen, kv, etcd_only_flags[i]);
	}
	for (size_t i = 0; i < COUNT(etcd_ignored_flags); i++) {
		if (env_names_flag(kv, klen, etcd_ignored_flags[i])) {
			if (*value)
				config_warn("flag \"-%s\" is no longer supported - ignoring.",
					    etcd_ignored_flags[i]);
			return 0;
		}
	}
	config_warn("unrecognized environment variable %s", kv);
	return 0;
}

static int env_apply(struct parse *p, char **envp)
{
	for (size_t i = 0; envp && envp[i]; i++) {
		int rc = env_apply_one(p, envp[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- defaults and etcd's checks ---- */

static void config_defaults(keeld_config_t *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	/* the defaults are constants this file's own parser accepts */
	keeld_parse_urls("http://localhost:2379", &cfg->listen_client_urls, NULL, 0);
	keeld_parse_urls("http://localhost:2379", &cfg->advertise_client_urls, NULL, 0);
	keeld_parse_urls("http://localhost:2380", &cfg->listen_peer_urls, NULL, 0);
	keeld_parse_urls("http://localhost:2380", &cfg->initial_advertise_peer_urls, NULL, 0);
	cfg->heartbeat_ms = 100;
	cfg->election_ms = 1000;
	cfg->snapshot_count = 100000;
	cfg->max_request_bytes = 1572864;
	cfg->compaction_mode = KEELD_COMPACT_PERIODIC;
	cfg->log_level = KEELD_LOG_INFO;
}

static int text_copy(struct parse *p, enum flag_id id, char *dst, size_t len, const char *def)
{
	const char *v = p->src[id] == SRC_DEFAULT ? def : p->text[id];
	if (strlen(v) >= len)
		return parse_fail(p, CFG_ERR_CHECK,
				  "invalid value \"%.64s...\" for flag -%s: too long "
				  "(keeld takes at most %zu bytes)", v, flag_defs[id].name,
				  len - 1);
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

static int check_bind_urls(struct parse *p, const keeld_url_list_t *l)
{
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->v[i].host, "localhost") && !url_host_is_ip(l->v[i].host))
			return verify_fail(p, "expected IP in URL for binding (%s)",
					   l->v[i].text);
	}
	return 0;
}

static int check_host_urls(struct parse *p, const keeld_url_list_t *l, const char *flag)
{
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].host[0])
			continue;
		char all[KEELD_MAX_URLS * 300];
		urls_join(l, "", all, sizeof(all));
		return verify_fail(p, "--%s \"%s\" must be \"host:port\" "
				   "(unexpected empty host (%s))", flag, all, l->v[i].text);
	}
	return 0;
}

/* etcd's embed.Config.Validate, in its order. */
static int config_validate(struct parse *p)
{
	keeld_config_t *cfg = p->cfg;
	int rc;
	if ((rc = check_bind_urls(p, &cfg->listen_peer_urls)) ||
	    (rc = check_bind_urls(p, &cfg->listen_client_urls)) ||
	    (rc = check_host_urls(p, &cfg->initial_advertise_peer_urls,
				  "initial-advertise-peer-urls")) ||
	    (rc = check_host_urls(p, &cfg->advertise_client_urls, "advertise-client-urls")))
		return rc;
	if (cfg->heartbeat_ms == 0)
		return verify_fail(p, "--heartbeat-interval must be >0 (set to 0ms)");
	if (cfg->election_ms == 0)
		return verify_fail(p, "--election-timeout must be >0 (set to 0ms)");
	if (cfg->heartbeat_ms > cfg->election_ms / 5)
		return verify_fail(p, "--election-timeout[%ums] should be at least as 5 times "
				   "as --heartbeat-interval[%ums]", cfg->election_ms,
				   cfg->heartbeat_ms);
	if (cfg->election_ms > MAX_ELECTION_MS)
		return verify_fail(p, "--election-timeout[%ums] is too long, and should be set "
				   "less than %ums", cfg->election_ms, MAX_ELECTION_MS);
	/* etcd drops the default advertised client URL once listening is set explicitly */
	if (p->src[F_LISTEN_CLIENT] != SRC_DEFAULT && p->src[F_ADVERTISE_CLIENT] == SRC_DEFAULT)
		return parse_fail(p, CFG_ERR_CHECK,
				  "error verifying flags, --advertise-client-urls is required "
				  "when --listen-client-urls is set explicitly. See 'keeld "
				  "--help'. When listening on specific address(es), this keeld "
				  "process must advertise accessible url(s) to each connected "
				  "client.");
	const char *mode = p->src[F_COMPACT_MODE] ? p->text[F_COMPACT_MODE] : "periodic";
	if (!strcmp(mode, "revision"))
		cfg->compaction_mode = KEELD_COMPACT_REVISION;
	else if (strcmp(mode, "periodic") && *mode)
		return verify_fail(p, "unknown auto-compaction-mode \"%s\"", mode);
	return 0;
}

/* etcd's parseCompactionRetention: a bare integer is hours (periodic) or revisions;
 * anything else a Go duration. keeld takes only counts in revision mode. */
static int config_retention(struct parse *p)
{
	keeld_config_t *cfg = p->cfg;
	const char *r = p->src[F_COMPACT_RETENTION] ? p->text[F_COMPACT_RETENTION] : "0";
	/* Go's Atoi: optional sign and decimal digits only ("010" is ten, "0x10" a duration) */
	const char *digits = r + (*r == '+' || *r == '-');
	if (*digits && strspn(digits, "0123456789") == strlen(digits)) {
		errno = 0;
		long long n = strtoll(r, NULL, 10);
		if (errno == ERANGE)
			return parse_fail(p, CFG_ERR_CHECK, "invalid value \"%s\" for flag "
					  "-auto-compaction-retention: value out of range", r);
		if (n >= 0 && cfg->compaction_mode == KEELD_COMPACT_REVISION) {
			cfg->compaction_retention = (uint64_t)n;
			return 0;
		}
		if (n >= 0 && (uint64_t)n > UINT64_MAX / 3600000)
			return parse_fail(p, CFG_ERR_CHECK, "invalid value \"%s\" for flag "
					  "-auto-compaction-retention: value out of range", r);
		if (n >= 0) {
			cfg->compaction_retention = (uint64_t)n * 3600000;
			return 0;
		}
	}
	char why[256];
	uint64_t ns;
	if (duration_parse(r, &ns, why, sizeof(why)))
		return parse_fail(p, CFG_ERR_CHECK, "invalid value \"%s\" for flag "
				  "-auto-compaction-retention: error parsing "
				  "CompactionRetention: %s", r, why);
	if (cfg->compaction_mode == KEELD_COMPACT_REVISION)
		return parse_fail(p, CFG_ERR_CHECK, "invalid value \"%s\" for flag "
				  "-auto-compaction-retention: in revision mode it is a number of "
				  "revisions, not a duration", r);
	/* a retention shorter than a millisecond still means "on" */
	cfg->compaction_retention = ns / 1000000 + (ns && ns < 1000000);
	return 0;
}

static keeld_member_conf_t *cluster_member(keeld_config_t *cfg, const char *name, size_t len)
{
	for (size_t i = 0; i < cfg->n_members; i++) {
		if (strlen(cfg->members[i].name) == len && !memcmp(cfg->members[i].name, name, len))
			return &cfg->members[i];
	}
	if (cfg->n_members == KEELD_MAX_MEMBERS || len >= sizeof(cfg->members[0].name))
		return NULL;
	keeld_member_conf_t *m = &cfg->members[cfg->n_members++];
	memset(m, 0, sizeof(*m));
	memcpy(m->name, name, len);
	return m;
}

static int cluster_fail(struct parse *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int cluster_fail(struct parse *p, const char *fmt, ...)
{
	char why[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return parse_fail(p, CFG_ERR_CHECK, "error setting up initial cluster: %s", why);
}

/* "name=url,name=url,...", as etcd's types.NewURLsMap reads it: empty entries are
 * skipped and a name given twice collects both URLs. */
static int cluster_parse(struct parse *p, const char *s)
{
	keeld_config_t *cfg = p->cfg;
	char why[512];
	cfg->n_members = 0;
	while (*s) {
		size_t len = strcspn(s, ",");
		const char *eq = memchr(s, '=', len);
		size_t nlen = eq ? (size_t)(eq - s) : len;
		if (len) {
			keeld_member_conf_t *m = cluster_member(cfg, s, nlen);
			keeld_url_t u;
			if (!m)
				return cluster_fail(p, "--initial-cluster has more than %d "
						    "members or a name of %zu bytes or more "
						    "(%.*s)", KEELD_MAX_MEMBERS,
						    sizeof(m->name), (int)nlen, s);
			const char *v = eq ? eq + 1 : s + len;
			if (url_parse_one(v, (size_t)(s + len - v), &u, why, sizeof(why)))
				return cluster_fail(p, "--initial-cluster: %s", why);
			if (m->peer_urls.n == KEELD_MAX_URLS)
				return cluster_fail(p, "--initial-cluster gives %s more than "
						    "%d URLs", m->name, KEELD_MAX_URLS);
			m->peer_urls.v[m->peer_urls.n++] = u;
		}
		s += len + (s[len] == ',');
	}
	for (size_t i = 0; i < cfg->n_members; i++)
		qsort(cfg->members[i].peer_urls.v, cfg->members[i].peer_urls.n,
		      sizeof(keeld_url_t), url_cmp);
	return 0;
}

/* etcd's URLsMap.String(): every name=url pair, sorted. */
static void cluster_string(const keeld_config_t *cfg, char *buf, size_t len)
{
	enum { PAIR = 440 };
	size_t total = 0, n = 0, off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < cfg->n_members; i++)
		total += cfg->members[i].peer_urls.n;
	char *pairs = malloc(total * PAIR + 1);
	const char **sorted = malloc((total + 1) * sizeof(*sorted));
	if (!pairs || !sorted)
		goto out; /* only the message loses its detail */
	for (size_t i = 0; i < cfg->n_members; i++) {
		for (size_t j = 0; j < cfg->members[i].peer_urls.n; j++, n++) {
			snprintf(pairs + n * PAIR, PAIR, "%s=%s", cfg->members[i].name,
				 cfg->members[i].peer_urls.v[j].text);
			sorted[n] = pairs + n * PAIR;
		}
	}
	qsort(sorted, n, sizeof(sorted[0]), id_cmp_text);
	for (size_t i = 0; i < n && off < len; i++) {
		int w = snprintf(buf + off, len - off, "%s%s", i ? "," : "", sorted[i]);
		if (w < 0)
			break;
		off += (size_t)w;
	}
out:
	free(pairs);
	free(sorted);
}

static bool urls_contain(const keeld_url_list_t *l, const char *text)
{
	for (size_t i = 0; i < l->n; i++) {
		if (!strcmp(l->v[i].text, text))
			return true;
	}
	return false;
}

/* etcd's advertiseMatchesCluster, comparing the normalized text (keeld resolves no names:
 * "localhost" and "127.0.0.1" differ here, as they do in etcd's own error). */
static int cluster_check_advertised(struct parse *p, const keeld_member_conf_t *self)
{
	const keeld_url_list_t *ap = &p->cfg->initial_advertise_peer_urls;
	const keeld_url_list_t *ic = &self->peer_urls;
	char missing[KEELD_MAX_URLS * 440] = "";
	char aps[KEELD_MAX_URLS * 300], ics[KEELD_MAX_URLS * 300];
	size_t off = 0;
	urls_join(ap, "", aps, sizeof(aps));
	urls_join(ic, "", ics, sizeof(ics));
	for (size_t i = 0; i < ic->n; i++) {
		if (!urls_contain(ap, ic->v[i].text))
			off += (size_t)snprintf(missing + off, sizeof(missing) - off, "%s%s=%s",
						off ? "," : "", self->name, ic->v[i].text);
	}
	if (off)
		return parse_fail(p, CFG_ERR_CHECK,
				  "--initial-cluster has %s but missing from "
				  "--initial-advertise-peer-urls=%s (\"%s\" != \"%s\")",
				  missing, aps, aps, ics);
	for (size_t i = 0; i < ap->n; i++) {
		if (!urls_contain(ic, ap->v[i].text))
			off += (size_t)snprintf(missing + off, sizeof(missing) - off, "%s%s",
						off ? "," : "", ap->v[i].text);
	}
	if (off) {
		char want[KEELD_MAX_URLS * 440];
		char prefix[sizeof(self->name) + 1];
		snprintf(prefix, sizeof(prefix), "%s=", self->name);
		urls_join(ap, prefix, want, sizeof(want));
		return parse_fail(p, CFG_ERR_CHECK,
				  "--initial-advertise-peer-urls has %s but missing from "
				  "--initial-cluster=%s", missing, want);
	}
	return 0;
}

static bool cluster_has_duplicate_url(const keeld_config_t *cfg)
{
	for (size_t i = 0; i < cfg->n_members; i++) {
		for (size_t j = 0; j < cfg->members[i].peer_urls.n; j++) {
			const char *t = cfg->members[i].peer_urls.v[j].text;
			for (size_t k = i; k < cfg->n_members; k++) {
				const keeld_url_list_t *o = &cfg->members[k].peer_urls;
				for (size_t l = k == i ? j + 1 : 0; l < o->n; l++) {
					if (!strcmp(t, o->v[l].text))
						return true;
				}
			}
		}
	}
	return false;
}

/* etcd skips the bootstrap checks once the member has a WAL: it restarts from its log. */
static bool data_dir_has_wal(const char *data_dir)
{
	char path[sizeof(((keeld_config_t *)0)->data_dir) + 16];
	struct stat st;
	snprintf(path, sizeof(path), "%s/member/wal", data_dir);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int config_cluster(struct parse *p)
{
	keeld_config_t *cfg = p->cfg;
	char text[KEELD_MAX_MEMBERS * 440];
	const char *ic = p->text[F_CLUSTER];
	/* etcd: an unchanged default cluster follows --name (and, in keeld, the advertised
	 * peer URLs even for "default", where etcd would fail the match below) */
	if (p->src[F_CLUSTER] == SRC_DEFAULT ||
	    (!strcmp(ic, DEFAULT_CLUSTER) && strcmp(cfg->name, "default"))) {
		char prefix[sizeof(cfg->name) + 1];
		snprintf(prefix, sizeof(prefix), "%s=", cfg->name);
		urls_join(&cfg->initial_advertise_peer_urls, prefix, text, sizeof(text));
		ic = text;
	}
	int rc = cluster_parse(p, ic);
	if (rc)
		return rc;
	for (size_t i = 0; i < cfg->n_members; i++)
		cfg->members[i].id =
			keeld_member_id(&cfg->members[i].peer_urls, cfg->cluster_token);
	cfg->cluster_id = keeld_cluster_id(cfg->members, cfg->n_members);
	const keeld_member_conf_t *self = NULL;
	for (size_t i = 0; i < cfg->n_members; i++) {
		if (!strcmp(cfg->members[i].name, cfg->name))
			self = &cfg->members[i];
	}
	cfg->self_id = self ? self->id : 0;
	if (data_dir_has_wal(cfg->data_dir))
		return 0;
	if (!self)
		return parse_fail(p, CFG_ERR_CHECK,
				  "couldn't find local name \"%s\" in the initial cluster "
				  "configuration (--name %s, --initial-cluster %s)",
				  cfg->name, cfg->name, ic);
	if (!cfg->cluster_state_existing && (rc = cluster_check_advertised(p, self)))
		return rc;
	if (cluster_has_duplicate_url(cfg)) {
		cluster_string(cfg, text, sizeof(text));
		return parse_fail(p, CFG_ERR_CHECK, "initial cluster %s has duplicate url "
				  "(--initial-cluster)", text);
	}
	return 0;
}

/* An embedded member takes its directory from its owner, prints nothing for --help or
 * --version, and keeps etcd's defaults for everything else. */
static int embedded_args(struct parse *p)
{
	if (p->cfg->show_help || p->cfg->show_version)
		return parse_fail(p, CFG_ERR_SYNTAX, "--help and --version have no meaning for an "
				  "embedded member");
	if (p->src[F_DATA_DIR] != SRC_DEFAULT)
		return parse_fail(p, CFG_ERR_SYNTAX, "flag --data-dir is not for an embedded "
				  "member: its data directory is the one it was opened with");
	if (!*p->embedded_dir)
		return parse_fail(p, CFG_ERR_CHECK, "the data directory must not be empty");
	p->src[F_DATA_DIR] = SRC_FLAG;
	p->text[F_DATA_DIR] = p->embedded_dir;
	return 0;
}

/* An embedded member listens only where its flags say: the defaults (localhost:2379 and
 * :2380) would make every program that links libkeel a server. With no peer listener
 * nobody can reach it, so it must be a cluster of one. */
static int embedded_listeners(struct parse *p)
{
	keeld_config_t *cfg = p->cfg;
	if (p->src[F_LISTEN_CLIENT] == SRC_DEFAULT)
		cfg->listen_client_urls.n = 0;
	if (p->src[F_ADVERTISE_CLIENT] == SRC_DEFAULT)
		cfg->advertise_client_urls.n = 0;
	if (p->src[F_LISTEN_PEER] != SRC_DEFAULT)
		return 0;
	cfg->listen_peer_urls.n = 0;
	if (cfg->n_members > 1)
		return parse_fail(p, CFG_ERR_CHECK, "an embedded member without "
				  "--listen-peer-urls must be alone in --initial-cluster (it "
				  "names %zu members)", cfg->n_members);
	return 0;
}

static int config_parse(struct parse *p, int argc, char **argv, char **envp)
{
	keeld_config_t *cfg = p->cfg;
	if (p->err && p->errlen)
		p->err[0] = '\0';
	config_defaults(cfg);
	int rc = args_parse(p, argc, argv);
	if (!rc && p->embedded_dir)
		rc = embedded_args(p);
	if (rc || cfg->show_help || cfg->show_version)
		return rc;
	if ((rc = env_apply(p, envp)))
		return rc;
	if ((rc = text_copy(p, F_NAME, cfg->name, sizeof(cfg->name), "default")) ||
	    (rc = text_copy(p, F_CLUSTER_TOKEN, cfg->cluster_token, sizeof(cfg->cluster_token),
			    "etcd-cluster")))
		return rc;
	char def_dir[sizeof(cfg->name) + 8];
	snprintf(def_dir, sizeof(def_dir), "%s.keel", cfg->name);
	if (p->src[F_DATA_DIR] && !*p->text[F_DATA_DIR])
		p->src[F_DATA_DIR] = SRC_DEFAULT; /* etcd: an empty --data-dir means the default */
	if ((rc = text_copy(p, F_DATA_DIR, cfg->data_dir, sizeof(cfg->data_dir), def_dir)) ||
	    (rc = config_validate(p)) || (rc = config_retention(p)) ||
	    (rc = config_cluster(p)))
		return rc;
	if (p->embedded_dir)
		return embedded_listeners(p);
	return 0;
}

int keeld_config_parse(keeld_config_t *cfg, int argc, char **argv, char **envp, char *err,
		       size_t errlen)
{
	struct parse p = {.cfg = cfg, .err = err, .errlen = errlen};
	return config_parse(&p, argc, argv, envp);
}

int keeld_config_parse_embedded(keeld_config_t *cfg, int argc, char **argv,
				const char *data_dir, char *err, size_t errlen)
{
	struct parse p = {.cfg = cfg, .err = err, .errlen = errlen,
			  .embedded_dir = data_dir ? data_dir : ""};
	return config_parse(&p, argc, argv, NULL);
}

const char *keeld_config_usage(void)
{
	return "Usage:\n"
	       "\n"
	       "  keeld [flags]\n"
	       "    Start a keeld server (etcd 3.4's flags and ETCD_* variables; a flag wins).\n"
	       "  keeld --version\n"
	       "    Show the version of keeld.\n"
	       "  keeld -h | --help\n"
	       "    Show this help.\n"
	       "\n"
	       "Member:\n"
	       "  --name 'default'                                       "
	       "Human-readable name for this member.\n"
	       "  --data-dir '${name}.keel'                              "
	       "Path to the data directory.\n"
	       "  --snapshot-count '100000'                              "
	       "Committed transactions that trigger a snapshot to disk.\n"
	       "  --heartbeat-interval '100'                             "
	       "Time (in milliseconds) of a heartbeat interval.\n"
	       "  --election-timeout '1000'                              "
	       "Time (in milliseconds) for an election to timeout (>= 5 heartbeats).\n"
	       "  --listen-peer-urls 'http://localhost:2380'             "
	       "List of URLs to listen on for peer traffic.\n"
	       "  --listen-client-urls 'http://localhost:2379'           "
	       "List of URLs to listen on for client traffic.\n"
	       "  --quota-backend-bytes '0'                              "
	       "Raise alarms when the backend exceeds this size (0: 2 GiB).\n"
	       "  --max-request-bytes '1572864'                          "
	       "Maximum client request size in bytes the server will accept.\n"
	       "\n"
	       "Clustering:\n"
	       "  --initial-advertise-peer-urls 'http://localhost:2380'  "
	       "This member's peer URLs to advertise to the cluster.\n"
	       "  --initial-cluster 'default=http://localhost:2380'      "
	       "Initial cluster configuration for bootstrapping.\n"
	       "  --initial-cluster-state 'new'                          "
	       "Initial cluster state ('new' or 'existing').\n"
	       "  --initial-cluster-token 'etcd-cluster'                 "
	       "Initial cluster token for the cluster during bootstrap.\n"
	       "  --advertise-client-urls 'http://localhost:2379'        "
	       "This member's client URLs to advertise to the public.\n"
	       "  --auto-compaction-retention '0'                        "
	       "Retention (0: off): hours or a duration ('30m'), or revisions.\n"
	       "  --auto-compaction-mode 'periodic'                      "
	       "How to read the retention: 'periodic' or 'revision'.\n"
	       "\n"
	       "Logging:\n"
	       "  --log-level 'info'                                     "
	       "debug, info, warn or error (dpanic, panic, fatal: as error).\n"
	       "\n"
	       "Every other etcd flag (TLS, auth, proxy, discovery, experimental, ...) is refused\n"
	       "by name, as is an ETCD_* variable setting one; plain http:// URLs only.\n";
}
