/* cluster/agent_http.c — the agent's small HTTP/1.1 server: /healthz and the pods' logs
 * (/logs/<ns>/<pod>[/<container>]?follow=true&tailLines=N), one thread per connection.
 * Reads log files only; never touches a pod or the store (the agent answers lookups). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "agent_int.h"

#define AGENT_HTTP_REQ_MAX 8192
#define AGENT_HTTP_POLL_MS 100
#define AGENT_HTTP_READ_TIMEOUT_MS 5000

struct agent_http {
	int lfd;
	pthread_t thread;
	bool started;
	atomic_int stop;
	char *root_dir;
	agent_http_lookup_fn lookup;
	void *ud;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int active;              /* connection threads still running */
};

typedef struct agent_conn {
	agent_http_t *h;
	int fd;
} agent_conn_t;

int agent_http_bind(const char *address, int *port, agent_http_t **out, char *msg, size_t n)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)*port) };
	if (inet_pton(AF_INET, address, &sa.sin_addr) != 1) {
		snprintf(msg, n, "--address %s: not an IPv4 address", address);
		return -1;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0) {
		snprintf(msg, n, "listen on %s:%d: %s", address, *port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	socklen_t len = sizeof(sa);
	getsockname(fd, (struct sockaddr *)&sa, &len);
	*port = ntohs(sa.sin_port);
	agent_http_t *h = calloc(1, sizeof(*h));
	if (!h) {
		close(fd);
		snprintf(msg, n, "out of memory");
		return -1;
	}
	h->lfd = fd;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	*out = h;
	return 0;
}

static bool agent_send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		len -= (size_t)w;
	}
	return true;
}

static void agent_reply(int fd, int status, const char *reason, const char *body)
{
	char head[256];
	int len = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: text/plain; "
			   "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			   status, reason, strlen(body));
	if (agent_send_all(fd, head, (size_t)len))
		agent_send_all(fd, body, strlen(body));
}

/* Reads the request head; 0 with the request line's path in path. */
static int agent_read_request(agent_http_t *h, int fd, char *method, size_t mn, char *path,
			      size_t pn)
{
	char buf[AGENT_HTTP_REQ_MAX + 1];
	size_t got = 0;
	int waited = 0;
	while (got < AGENT_HTTP_REQ_MAX) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int r = poll(&pfd, 1, AGENT_HTTP_POLL_MS);
		if (atomic_load(&h->stop))
			return -1;
		if (r == 0) {
			waited += AGENT_HTTP_POLL_MS;
			if (waited >= AGENT_HTTP_READ_TIMEOUT_MS)
				return -1;
			continue;
		}
		ssize_t rd = recv(fd, buf + got, AGENT_HTTP_REQ_MAX - got, 0);
		if (rd <= 0)
			return -1;
		got += (size_t)rd;
		buf[got] = 0;
		if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
			break;
	}
	buf[got] = 0;
	char m[16], p[2048];
	if (sscanf(buf, "%15s %2047s", m, p) != 2)
		return -2;
	snprintf(method, mn, "%s", m);
	snprintf(path, pn, "%s", p);
	return 0;
}

/* The value of name in a query string (k=v&...), or NULL; copies into buf. */
static const char *agent_query_get(const char *query, const char *name, char *buf, size_t n)
{
	size_t nl = strlen(name);
	for (const char *p = query; p && *p;) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		if (len > nl && !strncmp(p, name, nl) && p[nl] == '=') {
			snprintf(buf, n, "%.*s", (int)(len - nl - 1), p + nl + 1);
			return buf;
		}
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}

/* Where the last lines of the file start. */
static off_t agent_tail_offset(int fd, off_t size, long lines)
{
	if (lines < 0)
		return 0;
	if (lines == 0)
		return size;
	char buf[4096];
	off_t pos = size;
	long seen = 0;
	bool skip_last = true; /* a final newline ends the last line, it does not start one */
	while (pos > 0) {
		size_t chunk = pos > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)pos;
		pos -= (off_t)chunk;
		if (pread(fd, buf, chunk, pos) != (ssize_t)chunk)
			return 0;
		for (size_t i = chunk; i-- > 0;) {
			if (buf[i] != '\n')
				continue;
			if (skip_last && pos + (off_t)i == size - 1) {
				skip_last = false;
				continue;
			}
			if (++seen == lines)
				return pos + (off_t)i + 1;
		}
	}
	return 0;
}

/* Where the previous instance's output lies in the log: from the last two offsets of
 * <log>.starts. False when there was no previous instance. */
static bool agent_previous_range(const char *log_path, off_t *from, off_t *to)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s.starts", log_path);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	long long prev = -1, last = -1, v;
	while (fscanf(f, "%lld", &v) == 1) {
		prev = last;
		last = v;
	}
	fclose(f);
	if (prev < 0 || last < prev)
		return false;
	*from = (off_t)prev;
	*to = (off_t)last;
	return true;
}

/* Sends [*off, end) of the file; false when the client is gone. */
static bool agent_send_range(int cfd, int lfd, off_t *off, off_t end)
{
	char buf[16384];
	while (*off < end) {
		size_t want = end - *off > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)(end - *off);
		ssize_t rd = pread(lfd, buf, want, *off);
		if (rd <= 0)
			return true;
		if (!agent_send_all(cfd, buf, (size_t)rd))
			return false;
		*off += rd;
	}
	return true;
}

static bool agent_client_gone(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	if (poll(&pfd, 1, 0) <= 0)
		return false;
	char buf[512];
	ssize_t rd = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	return rd == 0 || (rd < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* The pod's uid when it is still the same pod here. */
static bool agent_pod_still(agent_http_t *h, const char *ns, const char *name, const char *uid)
{
	char *u = NULL;
	json_t *ctrs = NULL;
	bool same = h->lookup(h->ud, ns, name, &u, &ctrs) == 0 && u && !strcmp(u, uid);
	free(u);
	json_decref(ctrs);
	return same;
}

static void agent_serve_logs(agent_http_t *h, int fd, char *rest, const char *query)
{
	char *parts[4] = { 0 };
	int np = 0;
	for (char *save = NULL, *t = strtok_r(rest, "/", &save); t; t = strtok_r(NULL, "/", &save))
		if (np < 4)
			parts[np++] = t;
		else
			np++;
	if (np < 2 || np > 3) {
		agent_reply(fd, 404, "Not Found", "use /logs/<namespace>/<pod>[/<container>]\n");
		return;
	}
	char body[1024], val[32];
	bool follow = agent_query_get(query, "follow", val, sizeof(val)) &&
		      (!strcmp(val, "true") || !strcmp(val, "1"));
	bool previous = agent_query_get(query, "previous", val, sizeof(val)) &&
			(!strcmp(val, "true") || !strcmp(val, "1"));
	long tail = -1;
	if (agent_query_get(query, "tailLines", val, sizeof(val))) {
		char *end;
		tail = strtol(val, &end, 10);
		if (*end || tail < 0) {
			snprintf(body, sizeof(body), "invalid tailLines \"%s\"\n", val);
			agent_reply(fd, 400, "Bad Request", body);
			return;
		}
	}
	char *uid = NULL;
	json_t *ctrs = NULL;
	if (h->lookup(h->ud, parts[0], parts[1], &uid, &ctrs) != 0) {
		snprintf(body, sizeof(body), "pods \"%s\" not found\n", parts[1]);
		agent_reply(fd, 404, "Not Found", body);
		return;
	}
	const char *ctr = parts[2];
	size_t i;
	json_t *c;
	bool known = false;
	json_array_foreach(ctrs, i, c)
		if (ctr && !strcmp(json_string_value(c), ctr))
			known = true;
	if (!ctr && json_array_size(ctrs) == 1) {
		ctr = json_string_value(json_array_get(ctrs, 0));
		known = true;
	}
	if (!ctr) {
		char *text = NULL;
		size_t tl = 0;
		FILE *f = open_memstream(&text, &tl);
		if (f) {
			fprintf(f, "a container name must be specified for pod %s, choose one of: [",
				parts[1]);
			json_array_foreach(ctrs, i, c)
				fprintf(f, "%s%s", i ? " " : "", json_string_value(c));
			fprintf(f, "]\n");
			fclose(f);
		}
		agent_reply(fd, 400, "Bad Request", text ? text : "a container name must be specified\n");
		free(text);
		goto out;
	}
	if (!known) {
		snprintf(body, sizeof(body), "container %s is not valid for pod %s\n", ctr, parts[1]);
		agent_reply(fd, 404, "Not Found", body);
		goto out;
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/pods/%s/%s.log", h->root_dir, uid, ctr);
	off_t prev_from = 0, prev_to = 0;
	if (previous && !agent_previous_range(path, &prev_from, &prev_to)) {
		snprintf(body, sizeof(body), "previous terminated container \"%s\" in pod \"%s\" "
			 "not found\n", ctr, parts[1]);
		agent_reply(fd, 400, "Bad Request", body);
		goto out;
	}
	int lfd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	off_t size = lfd >= 0 && fstat(lfd, &st) == 0 ? st.st_size : 0;
	if (previous) {
		follow = false; /* a finished instance does not grow */
		size = prev_to < size ? prev_to : size;
	}
	off_t off = lfd >= 0 ? agent_tail_offset(lfd, size, tail) : 0;
	if (previous && off < prev_from)
		off = prev_from < size ? prev_from : size;
	char head[256];
	int hl;
	if (!follow)
		hl = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: text/plain; "
			      "charset=utf-8\r\nContent-Length: %lld\r\nConnection: close\r\n\r\n",
			      (long long)(size - off));
	else
		hl = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: text/plain; "
			      "charset=utf-8\r\nConnection: close\r\n\r\n");
	bool ok = agent_send_all(fd, head, (size_t)hl);
	if (ok && lfd >= 0)
		ok = agent_send_range(fd, lfd, &off, size);
	/* Follow: the body ends when the connection closes (the client goes, the pod is
	 * deleted, or the agent stops). */
	int64_t last_check = kc_mono_ms();
	while (ok && follow && !atomic_load(&h->stop)) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		poll(&pfd, 1, AGENT_HTTP_POLL_MS);
		if (agent_client_gone(fd))
			break;
		if (lfd < 0)
			lfd = open(path, O_RDONLY | O_CLOEXEC);
		if (lfd >= 0 && fstat(lfd, &st) == 0 && st.st_size > off)
			ok = agent_send_range(fd, lfd, &off, st.st_size);
		if (kc_mono_ms() - last_check >= 500) {
			last_check = kc_mono_ms();
			if (!agent_pod_still(h, parts[0], parts[1], uid))
				break;
		}
	}
	if (lfd >= 0)
		close(lfd);
out:
	free(uid);
	json_decref(ctrs);
}

static void agent_serve(agent_http_t *h, int fd)
{
	char method[16], path[2048];
	int rc = agent_read_request(h, fd, method, sizeof(method), path, sizeof(path));
	if (rc == -2)
		agent_reply(fd, 400, "Bad Request", "bad request\n");
	if (rc != 0)
		return;
	if (strcmp(method, "GET") != 0) {
		agent_reply(fd, 405, "Method Not Allowed", "only GET is served\n");
		return;
	}
	char *q = strchr(path, '?');
	const char *query = "";
	if (q) {
		*q = 0;
		query = q + 1;
	}
	if (!strcmp(path, "/healthz"))
		agent_reply(fd, 200, "OK", "ok");
	else if (!strncmp(path, "/logs/", 6))
		agent_serve_logs(h, fd, path + 6, query);
	else
		agent_reply(fd, 404, "Not Found", "404 page not found\n");
}

static void *agent_conn_main(void *arg)
{
	agent_conn_t *c = arg;
	agent_http_t *h = c->h;
	agent_serve(h, c->fd);
	shutdown(c->fd, SHUT_WR);
	close(c->fd);
	free(c);
	pthread_mutex_lock(&h->mu);
	h->active--;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

static void *agent_accept_main(void *arg)
{
	agent_http_t *h = arg;
	while (!atomic_load(&h->stop)) {
		struct pollfd pfd = { .fd = h->lfd, .events = POLLIN };
		if (poll(&pfd, 1, AGENT_HTTP_POLL_MS) <= 0)
			continue;
		int fd = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		agent_conn_t *c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->h = h;
		c->fd = fd;
		pthread_mutex_lock(&h->mu);
		h->active++;
		pthread_mutex_unlock(&h->mu);
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_t t;
		if (pthread_create(&t, &attr, agent_conn_main, c) != 0) {
			close(fd);
			free(c);
			pthread_mutex_lock(&h->mu);
			h->active--;
			pthread_mutex_unlock(&h->mu);
		}
		pthread_attr_destroy(&attr);
	}
	return NULL;
}

int agent_http_start(agent_http_t *h, const char *root_dir, agent_http_lookup_fn fn, void *ud)
{
	h->root_dir = strdup(root_dir);
	h->lookup = fn;
	h->ud = ud;
	if (!h->root_dir || pthread_create(&h->thread, NULL, agent_accept_main, h) != 0)
		return -1;
	h->started = true;
	return 0;
}

void agent_http_stop(agent_http_t *h)
{
	if (!h)
		return;
	atomic_store(&h->stop, 1);
	if (h->started)
		pthread_join(h->thread, NULL);
	pthread_mutex_lock(&h->mu);
	while (h->active > 0)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
	close(h->lfd);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	free(h->root_dir);
	free(h);
}
