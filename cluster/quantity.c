/* cluster/quantity.c — Kubernetes resource quantities ("500m", "1.5Gi", "1e3") to exact
 * thousandths and back to canonical text, and a pod's summed requests. Pure arithmetic:
 * never rounds down a value that is not a whole milli-unit (Kubernetes rounds up). */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"

#define QTY_REGEX_MSG                                   \
	"quantities must match the regular expression " \
	"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"

typedef __int128 wide_t;

/* A suffix: value = number * 10^exp10 * 1024^exp1024. */
typedef struct qty_suffix {
	const char *text;
	int exp10;
	int exp1024;
} qty_suffix_t;

static const qty_suffix_t suffixes[] = {
	{"", 0, 0},   {"n", -9, 0}, {"u", -6, 0}, {"m", -3, 0}, {"k", 3, 0},  {"M", 6, 0},
	{"G", 9, 0},  {"T", 12, 0}, {"P", 15, 0}, {"E", 18, 0}, {"Ki", 0, 1}, {"Mi", 0, 2},
	{"Gi", 0, 3}, {"Ti", 0, 4}, {"Pi", 0, 5}, {"Ei", 0, 6},
};

/* Beyond this the milli value cannot fit an int64 anyway. */
#define QTY_LIMIT ((wide_t)INT64_MAX)

static int qty_fail(char *msg, size_t n, const char *text)
{
	if (msg && n)
		snprintf(msg, n, "%s", text);
	return -1;
}

/* The suffix at s: a table entry, or a decimal exponent e/E[+-]digits. */
static int parse_suffix(const char *s, int *exp10, int *exp1024)
{
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (strcmp(s, suffixes[i].text) == 0) {
			*exp10 = suffixes[i].exp10;
			*exp1024 = suffixes[i].exp1024;
			return 0;
		}
	}
	if (*s != 'e' && *s != 'E')
		return -1;
	s++;
	int sign = 1;
	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	if (!isdigit((unsigned char)*s))
		return -1;
	int e = 0;
	for (; isdigit((unsigned char)*s); s++) {
		e = e * 10 + (*s - '0');
		if (e > 1000)
			return -1;
	}
	if (*s)
		return -1;
	*exp10 = sign * e;
	*exp1024 = 0;
	return 0;
}

/* Multiplies *v by m unless that passes QTY_LIMIT (then -1). */
static int mul_checked(wide_t *v, wide_t m)
{
	if (*v != 0 && m > QTY_LIMIT / *v)
		return -1;
	*v *= m;
	return 0;
}

static int parse_text(const char *s, int64_t *milli, char *msg, size_t n)
{
	const char *p = s;
	int sign = 1;
	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	wide_t mant = 0;
	int digits = 0, frac = 0, dropped = 0;
	bool seen_dot = false, nonzero_dropped = false;
	for (; isdigit((unsigned char)*p) || *p == '.'; p++) {
		if (*p == '.') {
			if (seen_dot)
				return qty_fail(msg, n, QTY_REGEX_MSG);
			seen_dot = true;
			continue;
		}
		digits++;
		/* Keep 30 significant digits; what is beyond only decides rounding up. */
		if (mant < (wide_t)1e30) {
			mant = mant * 10 + (*p - '0');
			frac += seen_dot;
		} else {
			nonzero_dropped |= *p != '0';
			dropped += !seen_dot;
		}
	}
	if (digits == 0)
		return qty_fail(msg, n, QTY_REGEX_MSG);
	int exp10, exp1024;
	if (parse_suffix(p, &exp10, &exp1024) != 0)
		return qty_fail(msg, n, QTY_REGEX_MSG);
	int scale = exp10 + 3 - frac + dropped;
	wide_t v = mant;
	for (int i = 0; i < exp1024; i++)
		if (mul_checked(&v, 1024) != 0)
			return qty_fail(msg, n, "quantity is too large");
	if (scale >= 0) {
		for (int i = 0; i < scale && v != 0; i++)
			if (mul_checked(&v, 10) != 0)
				return qty_fail(msg, n, "quantity is too large");
		if (nonzero_dropped)
			v += 1;
	} else {
		bool rem = nonzero_dropped;
		for (int i = 0; i < -scale && v != 0; i++) {
			rem |= v % 10 != 0;
			v /= 10;
		}
		if (rem)
			v += 1; /* not a whole milli-unit: Kubernetes rounds up */
	}
	if (v > QTY_LIMIT)
		return qty_fail(msg, n, "quantity is too large");
	*milli = (int64_t)v * sign;
	return 0;
}

int kc_quantity_parse(const json_t *q, int64_t *milli, char *msg, size_t n)
{
	int64_t dummy;
	if (!milli)
		milli = &dummy;
	if (json_is_integer(q)) {
		json_int_t v = json_integer_value(q);
		if (v > INT64_MAX / 1000 || v < -INT64_MAX / 1000)
			return qty_fail(msg, n, "quantity is too large");
		*milli = (int64_t)v * 1000;
		return 0;
	}
	if (json_is_real(q)) {
		double d = ceil(json_real_value(q) * 1000.0);
		if (!isfinite(d) || d > 9.2e18 || d < -9.2e18)
			return qty_fail(msg, n, "quantity is too large");
		*milli = (int64_t)d;
		return 0;
	}
	const char *s = json_string_value(q);
	if (!s)
		return qty_fail(msg, n, QTY_REGEX_MSG);
	return parse_text(s, milli, msg, n);
}

void kc_format_cpu(int64_t milli, char *buf, size_t n)
{
	if (milli % 1000 == 0)
		snprintf(buf, n, "%" PRId64, milli / 1000);
	else
		snprintf(buf, n, "%" PRId64 "m", milli);
}

void kc_format_memory(int64_t bytes, char *buf, size_t n)
{
	static const char *const units[] = {"Ei", "Pi", "Ti", "Gi", "Mi", "Ki"};
	if (bytes != 0) {
		for (int i = 0; i < 6; i++) {
			int64_t unit = (int64_t)1 << (10 * (6 - i));
			if (bytes % unit == 0) {
				snprintf(buf, n, "%" PRId64 "%s", bytes / unit, units[i]);
				return;
			}
		}
	}
	snprintf(buf, n, "%" PRId64, bytes);
}

/* A container's request for one resource: requests, else limits (Kubernetes' default). */
static int64_t container_request(const json_t *c, const char *resource)
{
	int64_t v = 0;
	json_t *q = kc_path(c, "resources.requests");
	q = json_object_get(q, resource);
	if (!q)
		q = json_object_get(kc_path(c, "resources.limits"), resource);
	if (!q || kc_quantity_parse(q, &v, NULL, 0) != 0 || v < 0)
		return 0;
	return v;
}

/* Both terms are >= 0: a sum past INT64_MAX stays INT64_MAX, so a huge pod fits nowhere
 * instead of wrapping to a negative request that fits everywhere. */
static int64_t add_saturated(int64_t sum, int64_t v)
{
	return v > INT64_MAX - sum ? INT64_MAX : sum + v;
}

void kc_pod_requests(const json_t *pod, int64_t *cpu_milli, int64_t *memory_bytes)
{
	int64_t cpu = 0, mem = 0;
	size_t i;
	json_t *c;
	json_array_foreach(kc_path(pod, "spec.containers"), i, c) {
		cpu = add_saturated(cpu, container_request(c, "cpu"));
		int64_t m = container_request(c, "memory");
		mem = add_saturated(mem, m / 1000 + (m % 1000 != 0));
	}
	if (cpu_milli)
		*cpu_milli = cpu;
	if (memory_bytes)
		*memory_bytes = mem;
}
