/* cli/ctl_lock.c — keelctl's lock and elect commands, with etcdctl 3.4's arguments, output,
 * messages and exit codes. Uses only libkeel's public recipes (keel/concurrency.h) and never
 * leaves a lock or a campaign key behind on an ordinary exit (signal, command end, error). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "keel/concurrency.h"

extern char **environ;

#define HOLD_POLL_MS 50

static void print_get(ctl_t *c, const keel_range_result_t *r)
{
	ctl_print_get(c, r);
	fflush(stdout);
}

static int fail(const char *msg, int code)
{
	fprintf(stderr, "Error: %s\n", msg);
	return code;
}

/* A failed call, in the words etcdctl's Go client uses; always ExitError for lock/elect. */
static int fail_err(const keel_error_t *err)
{
	char buf[700];

	return fail(ctl_err_text(err, buf, sizeof(buf)), CTL_EXIT_ERROR);
}

/* ---- signals ------------------------------------------------------------------------ */

/* SIGINT/SIGTERM are blocked in every thread (so the client's threads never take them) and
 * taken by one thread with sigwait. While a lock or campaign waits, an interrupt revokes
 * the session's lease: the waiter's own key goes, and the wait ends with an error, which
 * is how etcdctl's cancelled context behaves (its key is removed too). */
typedef struct sig_watch {
	pthread_t thread;
	bool started;
	keel_t *k;
	atomic_llong lease;          /* revoked on interrupt while waiting is set */
	atomic_bool waiting;
	atomic_bool interrupted;
	atomic_bool quit;
} sig_watch_t;

static void sig_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGUSR1);
}

static void *sig_main(void *arg)
{
	sig_watch_t *sw = arg;
	sigset_t set;

	sig_set(&set);
	for (;;) {
		int sig = 0;

		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGUSR1) {
			if (atomic_load(&sw->quit))
				return NULL;
			continue;
		}
		atomic_store(&sw->interrupted, true);
		if (atomic_load(&sw->waiting) && atomic_load(&sw->lease)) {
			keel_lease_id_req_t r = { .id = (int64_t)atomic_load(&sw->lease) };

			keel_lease_revoke(sw->k, &r, NULL, NULL);
		}
	}
}

/* Blocks the signals in this thread, hence in every thread created after. */
static void sig_block(void)
{
	sigset_t set;

	sig_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static int sig_start(sig_watch_t *sw, keel_t *k)
{
	memset(sw, 0, sizeof(*sw));
	sw->k = k;
	if (pthread_create(&sw->thread, NULL, sig_main, sw) != 0)
		return -1;
	sw->started = true;
	return 0;
}

static void sig_stop(sig_watch_t *sw)
{
	if (!sw->started)
		return;
	atomic_store(&sw->quit, true);
	pthread_kill(sw->thread, SIGUSR1);
	pthread_join(sw->thread, NULL);
	sw->started = false;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Waits until interrupted (true) or the session is lost (false). */
static bool hold_until_signal(sig_watch_t *sw, keel_session_t *s)
{
	while (!atomic_load(&sw->interrupted)) {
		if (keel_session_lost(s))
			return false;
		sleep_ms(HOLD_POLL_MS);
	}
	return true;
}

/* ---- the command run under the lock ------------------------------------------------- */

/* Go's exec.LookPath: a name without '/' is searched in $PATH. NULL with *msg set when not
 * found. */
static char *look_path(const char *name, char *msg, size_t msg_len)
{
	const char *path = getenv("PATH");
	char *dirs, *d, *save = NULL;

	if (strchr(name, '/'))
		return strdup(name);
	dirs = strdup(path ? path : "");
	for (d = dirs ? strtok_r(dirs, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
		char *full = NULL;
		struct stat st;

		if (asprintf(&full, "%s/%s", *d ? d : ".", name) < 0)
			break;
		if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0) {
			free(dirs);
			return full;
		}
		free(full);
	}
	free(dirs);
	snprintf(msg, msg_len, "exec: \"%s\": executable file not found in $PATH", name);
	return NULL;
}

/* The environment of the command: the lock's variables, then ours without them. */
static char **lock_environ(const char *key, int64_t rev)
{
	size_t n = 0, j = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 3, sizeof(char *));
	if (!env)
		return NULL;
	if (asprintf(&env[j++], "ETCD_LOCK_KEY=%s", key) < 0 ||
	    asprintf(&env[j++], "ETCD_LOCK_REV=%" PRId64, rev) < 0) {
		free(env[0]);
		free(env);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "ETCD_LOCK_KEY=", 14) &&
		    strncmp(environ[i], "ETCD_LOCK_REV=", 14))
			env[j++] = environ[i];
	return env;
}

static void exit_message(int status, char *msg, size_t msg_len)
{
	if (WIFEXITED(status)) {
		snprintf(msg, msg_len, "exit status %d", WEXITSTATUS(status));
	} else if (WIFSIGNALED(status)) {
		const char *name = strsignal(WTERMSIG(status));

		snprintf(msg, msg_len, "signal: %s", name ? name : "unknown");
		/* Go spells signal names in lower case ("signal: killed"). */
		if (msg[8] >= 'A' && msg[8] <= 'Z')
			msg[8] = (char)(msg[8] - 'A' + 'a');
	} else {
		snprintf(msg, msg_len, "exit status %d", status);
	}
}

/* Runs argv with the lock's environment and waits for it, as etcdctl's cmd.Run(): returns
 * 0 when it exits with 0, else an error message in msg (and non-zero). */
static int run_command(char **argv, const char *key, int64_t rev, char *msg, size_t msg_len)
{
	char *path = look_path(argv[0], msg, msg_len);
	char **env;
	int pfd[2], child_errno = 0, status = 0;
	sigset_t none;
	pid_t pid;
	ssize_t n;

	if (!path)
		return -1;
	env = lock_environ(key, rev);
	if (!env || pipe2(pfd, O_CLOEXEC) != 0) {
		snprintf(msg, msg_len, "%s", env ? strerror(errno) : "out of memory");
		if (env) {
			free(env[0]);
			free(env[1]);
		}
		free(env);
		free(path);
		return -1;
	}
	sigemptyset(&none);
	pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls from here: the parent has threads. */
		struct sigaction dfl;

		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		sigaction(SIGPIPE, &dfl, NULL);
		pthread_sigmask(SIG_SETMASK, &none, NULL);
		close(pfd[0]);
		execve(path, argv, env);
		child_errno = errno;
		(void)!write(pfd[1], &child_errno, sizeof(child_errno));
		_exit(127);
	}
	close(pfd[1]);
	if (pid < 0) {
		snprintf(msg, msg_len, "fork/exec %s: %s", path, strerror(errno));
		close(pfd[0]);
	} else {
		do
			n = read(pfd[0], &child_errno, sizeof(child_errno));
		while (n < 0 && errno == EINTR);
		close(pfd[0]);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (n == (ssize_t)sizeof(child_errno)) {
			snprintf(msg, msg_len, "fork/exec %s: %s", path, strerror(child_errno));
			/* Go's syscall messages are lower case. */
			char *p = strchr(msg, ':');

			if (p && p[1] == ' ' && p[2] >= 'A' && p[2] <= 'Z')
				p[2] = (char)(p[2] - 'A' + 'a');
			status = -1;
		} else if (status != 0) {
			exit_message(status, msg, msg_len);
		}
	}
	free(env[0]);
	free(env[1]);
	free(env);
	free(path);
	return pid < 0 ? -1 : status;
}

/* ---- lock --------------------------------------------------------------------------- */

static const char *CANCELED = "context canceled";

/* The lock held: print its key (no command), or run the command; then release it. */
static int lock_held(ctl_t *c, keel_t *k, sig_watch_t *sw, keel_session_t *s, keel_mutex_t *m,
		     char **cmd, int n_cmd)
{
	keel_range_result_t *r = NULL;
	keel_error_t err;
	char msg[600];
	int64_t rev = keel_mutex_revision(m);
	int rc;

	memset(&err, 0, sizeof(err));
	if (atomic_load(&sw->interrupted) && n_cmd == 0) {
		keel_mutex_unlock(m, 0, NULL);
		return fail(CANCELED, CTL_EXIT_ERROR);
	}
	/* The revision the lock is known held at, as etcdctl's ETCD_LOCK_REV. */
	rc = keel_get(k, keel_mutex_key(m), &r, &err);
	if (rc && n_cmd == 0) {
		keel_mutex_unlock(m, 0, NULL);
		return fail_err(&err);
	}
	if (!rc) {
		if (r->n_kvs == 0 && n_cmd == 0) {
			keel_range_result_free(r);
			return fail("lock lost on init", CTL_EXIT_ERROR);
		}
		rev = r->header.revision;
	}
	if (n_cmd > 0) {
		keel_range_result_free(r);
		rc = run_command(cmd, keel_mutex_key(m), rev, msg, sizeof(msg));
		if (keel_mutex_unlock(m, 0, &err) != 0 && rc == 0)
			return fail_err(&err);
		return rc ? fail(msg, CTL_EXIT_ERROR) : CTL_EXIT_SUCCESS;
	}
	print_get(c, r);
	keel_range_result_free(r);
	if (!hold_until_signal(sw, s))
		return fail("session expired", CTL_EXIT_ERROR);
	if (keel_mutex_unlock(m, 0, &err) != 0)
		return fail_err(&err);
	return CTL_EXIT_SUCCESS;
}

static int lock_run(ctl_t *c, const char *name, long ttl, char **cmd, int n_cmd)
{
	keel_session_t *s = NULL;
	keel_mutex_t *m = NULL;
	keel_error_t err;
	sig_watch_t sw;
	keel_t *k;
	int rc;

	memset(&err, 0, sizeof(err));
	sig_block();
	k = ctl_client(c);
	if (sig_start(&sw, k) != 0)
		return fail("cannot start a thread", CTL_EXIT_ERROR);
	if (keel_session_new(k, ttl, 0, &s, &err) != 0) {
		rc = fail_err(&err);
		goto out;
	}
	if (keel_mutex_new(s, name, &m, &err) != 0) {
		rc = fail_err(&err);
		goto out;
	}
	atomic_store(&sw.lease, keel_session_lease(s));
	atomic_store(&sw.waiting, true);
	rc = keel_mutex_lock(m, -1, &err);
	atomic_store(&sw.waiting, false);
	if (rc) {
		rc = atomic_load(&sw.interrupted) ? fail(CANCELED, CTL_EXIT_ERROR) : fail_err(&err);
		goto out;
	}
	rc = lock_held(c, k, &sw, s, m, cmd, n_cmd);
out:
	keel_mutex_free(m);
	if (s)
		keel_session_close(s);
	sig_stop(&sw);
	return rc;
}

int ctl_cmd_lock(ctl_t *c, int argc, char **argv)
{
	if (argc < 2)
		return fail("lock takes a lock name argument and an optional command to execute",
			    CTL_EXIT_BAD_ARGS);
	return lock_run(c, argv[1], (long)ctl_flag_int(c, "ttl"), argv + 2, argc - 2);
}

/* ---- elect -------------------------------------------------------------------------- */

static void elect_on_leader(void *ud, const keel_kv_t *leader)
{
	keel_range_result_t r;

	memset(&r, 0, sizeof(r));
	r.kvs = (keel_kv_t *)leader;
	r.n_kvs = 1;
	r.count = 1;
	print_get(ud, &r);
}

static int elect_observe(ctl_t *c, const char *name)
{
	keel_observe_t *o = NULL;
	keel_error_t err;
	sigset_t set;
	int sig = 0;
	keel_t *k;

	memset(&err, 0, sizeof(err));
	sig_block();
	k = ctl_client(c);
	if (keel_election_observe(k, name, elect_on_leader, c, &o, &err) != 0)
		return fail_err(&err);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	while (sigwait(&set, &sig) != 0)
		;
	keel_observe_stop(o);
	return CTL_EXIT_SUCCESS;
}

static int elect_campaign(ctl_t *c, const char *name, const char *prop)
{
	keel_session_t *s = NULL;
	keel_election_t *e = NULL;
	keel_range_result_t *r = NULL;
	keel_error_t err;
	sig_watch_t sw;
	keel_t *k;
	int rc;

	memset(&err, 0, sizeof(err));
	sig_block();
	k = ctl_client(c);
	if (sig_start(&sw, k) != 0)
		return fail("cannot start a thread", CTL_EXIT_ERROR);
	if (keel_session_new(k, 0, 0, &s, &err) != 0 ||
	    keel_election_new(s, name, &e, &err) != 0) {
		rc = fail_err(&err);
		goto out;
	}
	atomic_store(&sw.lease, keel_session_lease(s));
	atomic_store(&sw.waiting, true);
	rc = keel_election_campaign(e, prop, strlen(prop), -1, &err);
	atomic_store(&sw.waiting, false);
	if (rc || atomic_load(&sw.interrupted)) {
		if (!rc)
			keel_election_resign(e, 0, NULL);
		rc = atomic_load(&sw.interrupted) ? fail(CANCELED, CTL_EXIT_ERROR) : fail_err(&err);
		goto out;
	}
	if (keel_get(k, keel_election_key(e), &r, &err) != 0) {
		keel_election_resign(e, 0, NULL);
		rc = fail_err(&err);
		goto out;
	}
	print_get(c, r);
	keel_range_result_free(r);
	if (!hold_until_signal(&sw, s)) {
		rc = fail("elect: session expired", CTL_EXIT_ERROR);
		goto out;
	}
	rc = keel_election_resign(e, 0, &err) ? fail_err(&err) : 0;
out:
	keel_election_free(e);
	if (s)
		keel_session_close(s);
	sig_stop(&sw);
	return rc;
}

int ctl_cmd_elect(ctl_t *c, int argc, char **argv)
{
	bool listen = ctl_flag_bool(c, "listen");

	if (argc != 2 && argc != 3)
		return fail("elect takes one election name argument and an optional proposal "
			    "argument", CTL_EXIT_BAD_ARGS);
	if (argc == 2 && !listen)
		return fail("no proposal argument but -l not set", CTL_EXIT_BAD_ARGS);
	if (argc == 3 && listen)
		return fail("proposal given but -l is set", CTL_EXIT_BAD_ARGS);
	return argc == 2 ? elect_observe(c, argv[1]) : elect_campaign(c, argv[1], argv[2]);
}
