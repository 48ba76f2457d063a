/* client/client.c — libkeel's handle: process setup, options, connect/close, and the small
 * shorthands (prefix end, get, put). Owns the order of teardown: hubs, then the transport,
 * then an embedded member; never talks HTTP/2 itself (transport.c does). */
#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "conv.h"

const char *keel_version(void)
{
	return KEEL_VERSION;
}

static void client_ignore_sigpipe(void)
{
	signal(SIGPIPE, SIG_IGN);
}

int keel_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, client_ignore_sigpipe);
	return 0;
}

void keel_options_init(keel_options_t *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->dial_timeout_ms = 5000;
	opt->call_timeout_ms = 5000;
	opt->keepalive_time_ms = 10000;
	opt->keepalive_timeout_ms = 3000;
}

/* "host:port", "[v6]:port" or "http://" + either; https is refused by name because a user
 * who asks for TLS must not silently get cleartext. */
static int client_check_endpoint(const char *ep, keel_error_t *err)
{
	if (!ep || !*ep)
		return keel_error_set(err, KEEL_CODE_LOCAL, "empty endpoint");
	const char *p = ep;
	if (strncmp(p, "https://", 8) == 0)
		return keel_error_set(err, KEEL_CODE_LOCAL,
				      "endpoint %s: TLS is not supported (use http://)", ep);
	if (strncmp(p, "http://", 7) == 0)
		p += 7;
	else if (strstr(p, "://"))
		return keel_error_set(err, KEEL_CODE_LOCAL,
				      "endpoint %s: unsupported scheme (want host:port or "
				      "http://host:port)", ep);
	const char *colon;
	if (*p == '[') {
		const char *close = strchr(p, ']');
		if (!close || close == p + 1 || close[1] != ':')
			return keel_error_set(err, KEEL_CODE_LOCAL,
					      "endpoint %s: want [address]:port", ep);
		colon = close + 1;
	} else {
		colon = strrchr(p, ':');
		if (!colon || colon == p || memchr(p, ':', (size_t)(colon - p)))
			return keel_error_set(err, KEEL_CODE_LOCAL,
					      "endpoint %s: want host:port", ep);
	}
	const char *port = colon + 1;
	size_t n = strlen(port);
	if (n > 0 && port[n - 1] == '/')
		n--;
	long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)port[i]) || v > 65535)
			return keel_error_set(err, KEEL_CODE_LOCAL,
					      "endpoint %s: bad port", ep);
		v = v * 10 + (port[i] - '0');
	}
	if (n == 0 || v < 1 || v > 65535)
		return keel_error_set(err, KEEL_CODE_LOCAL, "endpoint %s: bad port", ep);
	return 0;
}

int keel_client_new(const kt_options_t *opt, keel_t **out, keel_error_t *err)
{
	keel_init();
	keel_t *k = calloc(1, sizeof(*k));
	if (!k)
		return conv_oom(err);
	int rc = kt_new(opt, &k->t, err);
	if (rc != 0) {
		free(k);
		return rc;
	}
	*out = k;
	if (err)
		memset(err, 0, sizeof(*err));
	return 0;
}

int keel_connect(const keel_options_t *opt, keel_t **out, keel_error_t *err)
{
	if (!opt || !out)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_connect: no options");
	*out = NULL;
	if (opt->n_endpoints == 0 || !opt->endpoints)
		return keel_error_set(err, KEEL_CODE_LOCAL, "no endpoint given");
	for (size_t i = 0; i < opt->n_endpoints; i++) {
		int rc = client_check_endpoint(opt->endpoints[i], err);
		if (rc != 0)
			return rc;
	}
	kt_options_t ko = {
		.endpoints = opt->endpoints,
		.n_endpoints = opt->n_endpoints,
		.dial_timeout_ms = opt->dial_timeout_ms ? opt->dial_timeout_ms : 5000,
		.call_timeout_ms = opt->call_timeout_ms ? opt->call_timeout_ms : 5000,
		.keepalive_time_ms = opt->keepalive_time_ms ? opt->keepalive_time_ms : 10000,
		.keepalive_timeout_ms = opt->keepalive_timeout_ms ? opt->keepalive_timeout_ms
								  : 3000,
		.user_loop = opt->loop,
	};
	return keel_client_new(&ko, out, err);
}

void keel_close(keel_t *k)
{
	if (!k)
		return;
	if (k->watches)
		keel_watch_hub_free(k->watches);
	if (k->leases)
		keel_lease_hub_free(k->leases);
	kt_free(k->t);
	if (k->embedded_stop)
		k->embedded_stop(k->embedded);
	free(k);
}

size_t keel_prefix_end(const void *prefix, size_t len, uint8_t *buf)
{
	const uint8_t *p = prefix;
	for (size_t i = len; i-- > 0;) {
		if (p[i] < 0xff) {
			memmove(buf, p, i);
			buf[i] = (uint8_t)(p[i] + 1);
			return i + 1;
		}
	}
	buf[0] = 0;
	return 1;
}

int keel_get(keel_t *k, const char *key, keel_range_result_t **out, keel_error_t *err)
{
	if (!key)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_get: no key");
	keel_range_req_t req = { .key = key, .key_len = strlen(key) };
	return keel_range(k, &req, out, err);
}

int keel_put_str(keel_t *k, const char *key, const char *value, int64_t lease,
		 keel_error_t *err)
{
	if (!key || !value)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_put_str: no key or value");
	keel_put_req_t req = {
		.key = key, .key_len = strlen(key),
		.value = value, .value_len = strlen(value),
		.lease = lease,
	};
	return keel_put(k, &req, NULL, err);
}

int keel_call_raw(keel_t *k, const char *path, const char *endpoint, const uint8_t *req,
		  size_t req_len, int timeout_ms, bool idempotent, uint8_t **resp,
		  size_t *resp_len, keel_error_t *err)
{
	if (!k || !path || !resp || !resp_len)
		return keel_error_set(err, KEEL_CODE_LOCAL, "keel_call_raw: missing argument");
	return kt_unary(k->t, path, endpoint, req, req_len, timeout_ms, idempotent, resp,
			resp_len, err);
}
