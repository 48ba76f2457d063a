/* cluster/process.c — process-wide setup shared by every component: the stop flag set by
 * SIGINT/SIGTERM and a default identity. Never does more in a signal handler than store to a
 * sig_atomic_t. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"

/* The one piece of process state: a signal handler can reach nothing else. */
static volatile sig_atomic_t process_stop;

static void process_on_signal(int sig)
{
	(void)sig;
	process_stop = 1;
}

volatile sig_atomic_t *kc_signals_install(void)
{
	struct sigaction sa;

	keel_init();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = process_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	return &process_stop;
}

void kc_identity(char *buf, size_t n)
{
	char host[256];

	if (!buf || n == 0)
		return;
	if (gethostname(host, sizeof(host)) != 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(buf, n, "%s_%ld", host, (long)getpid());
}
