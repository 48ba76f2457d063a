/* cli/keel.c — keel's frame: the global flags (--endpoints, -n, -A, --request-timeout), the
 * usage text and the dispatch to each command or component. It never reads or writes an
 * object itself (keel_get.c, keel_cmd.c) and never parses a component's own flags. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"

static const char keel_main_usage[] =
	"keel controls a Keel cluster, as kubectl does a Kubernetes one.\n"
	"\n"
	"Commands:\n"
	"  apply        Create or update objects from YAML or JSON manifests (-f FILE)\n"
	"  get          Display one or many objects\n"
	"  describe     Show details of an object or group of objects\n"
	"  delete       Delete objects by name, file or label selector\n"
	"  scale        Set a ReplicaSet's number of replicas\n"
	"  logs         Print the logs of a pod's container\n"
	"\n"
	"Components (run until SIGINT/SIGTERM; see keel COMPONENT --help):\n"
	"  agent        The node agent: registers the node and runs its pods\n"
	"  scheduler    Binds pending pods to nodes\n"
	"  controllers  The ReplicaSet, node lifecycle and pod GC controllers\n"
	"\n"
	"Global options:\n"
	"      --endpoints=ADDRS       store endpoints, host:port comma separated (else\n"
	"                              KEEL_ENDPOINTS, else 127.0.0.1:2379)\n"
	"  -n, --namespace=NS          the namespace (default \"default\")\n"
	"  -A, --all-namespaces        get/describe across every namespace\n"
	"      --request-timeout=DUR   time limit of each store request (\"0\": the default)\n"
	"  -h, --help                  help (keel COMMAND --help for a command's)\n"
	"\n"
	"Usage:\n"
	"  keel [flags] COMMAND [options]\n";

typedef int (*keel_cmd_fn)(keel_ctx_t *c, int argc, char **argv);
static const struct {
	const char *name;
	keel_cmd_fn fn;
} keel_cmds[] = {
	{"get", keel_get_main},
	{"describe", keel_describe_main},
	{"apply", keel_apply_main},
	{"delete", keel_delete_main},
	{"scale", keel_scale_main},
	{"logs", keel_logs_main},
};

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} keel_components[] = {
	{"agent", kc_agent_main},
	{"scheduler", kc_scheduler_main},
	{"controllers", kc_controllers_main},
};

/* A global flag's value: "--name=v", "--name v", "-x v", "-xv"; NULL when arg is not it.
 * *used is how many argv entries it took. */
static const char *keel_global_value(int argc, char **argv, int a, const char *name, char shorthand,
				     int *used)
{
	const char *arg = argv[a];
	size_t len = strlen(name);
	*used = 0;
	if (arg[0] == '-' && arg[1] == '-' && strncmp(arg + 2, name, len) == 0) {
		if (arg[2 + len] == '=') {
			*used = 1;
			return arg + 3 + len;
		}
		if (arg[2 + len] == '\0' && a + 1 < argc) {
			*used = 2;
			return argv[a + 1];
		}
		return NULL;
	}
	if (shorthand && arg[0] == '-' && arg[1] == shorthand) {
		if (arg[2]) {
			*used = 1;
			return arg[2] == '=' ? arg + 3 : arg + 2;
		}
		if (a + 1 < argc) {
			*used = 2;
			return argv[a + 1];
		}
	}
	return NULL;
}

/* Takes the global flags out of argv wherever they are (kubectl accepts them after the
 * command too); the rest stays in order. Returns the new argc, or -1 after an error. */
static int keel_globals_take(keel_ctx_t *c, int argc, char **argv)
{
	int out = 0;
	for (int a = 0; a < argc; a++) {
		int used = 0;
		const char *v;
		if (strcmp(argv[a], "--") == 0) {
			while (a < argc)
				argv[out++] = argv[a++];
			break;
		}
		if ((v = keel_global_value(argc, argv, a, "endpoints", 0, &used))) {
			c->endpoints = v;
		} else if ((v = keel_global_value(argc, argv, a, "namespace", 'n', &used))) {
			if (!*v) {
				keel_fail("a namespace must not be empty");
				return -1;
			}
			c->ns = v;
			c->ns_set = true;
		} else if ((v = keel_global_value(argc, argv, a, "request-timeout", 0, &used))) {
			int64_t ms = keel_duration_ms(v);
			if (ms < 0 || ms > 24 * 3600 * 1000) {
				keel_fail("invalid request timeout \"%s\": use a duration such as "
					  "5s, 1m or 500ms", v);
				return -1;
			}
			c->timeout_ms = (int)ms;
		} else if (strcmp(argv[a], "-A") == 0 || strcmp(argv[a], "--all-namespaces") == 0 ||
			   strcmp(argv[a], "--all-namespaces=true") == 0) {
			c->all_ns = true;
			used = 1;
		}
		if (used) {
			a += used - 1;
			continue;
		}
		if (a + 1 == argc && (strcmp(argv[a], "-n") == 0 ||
				      strcmp(argv[a], "--namespace") == 0 ||
				      strcmp(argv[a], "--endpoints") == 0 ||
				      strcmp(argv[a], "--request-timeout") == 0)) {
			keel_fail("flag needs an argument: %s", argv[a]);
			return -1;
		}
		argv[out++] = argv[a];
	}
	return out;
}

/* `keel [--endpoints E] <component> ARGS`: the component gets ARGS (cluster.h: argv as after
 * `keel <component>`), with --endpoints E first when it was given before the name. -1 when
 * argv names no component. */
static int keel_component_run(int argc, char **argv)
{
	const char *endpoints = NULL;
	int a = 1;
	while (a < argc && argv[a][0] == '-') {
		if (strcmp(argv[a], "--endpoints") == 0 && a + 1 < argc)
			endpoints = argv[++a];
		else if (strncmp(argv[a], "--endpoints=", 12) == 0)
			endpoints = argv[a] + 12;
		else
			return -1; /* other flags belong to the CLI's commands */
		a++;
	}
	if (a >= argc)
		return -1;
	for (size_t i = 0; i < sizeof(keel_components) / sizeof(keel_components[0]); i++) {
		if (strcmp(argv[a], keel_components[i].name) != 0)
			continue;
		if (!endpoints)
			return keel_components[i].fn(argc - a - 1, argv + a + 1);
		char **args = calloc((size_t)(argc - a + 2), sizeof(char *));
		if (!args)
			return keel_fail("out of memory");
		int n = 0;
		args[n++] = "--endpoints";
		args[n++] = (char *)endpoints;
		for (int j = a + 1; j < argc; j++)
			args[n++] = argv[j];
		int rc = keel_components[i].fn(n, args);
		free(args);
		return rc;
	}
	return -1;
}

int main(int argc, char **argv)
{
	/* Components parse their own flags, --endpoints included. */
	int crc = keel_component_run(argc, argv);
	if (crc >= 0)
		return crc;
	keel_ctx_t c = {.ns = KC_DEFAULT_NAMESPACE};
	int n = keel_globals_take(&c, argc - 1, argv + 1);
	if (n < 0)
		return 1;
	char **args = argv + 1;
	if (n == 0 || strcmp(args[0], "-h") == 0 || strcmp(args[0], "--help") == 0 ||
	    strcmp(args[0], "help") == 0) {
		fputs(keel_main_usage, n == 0 ? stderr : stdout);
		return n == 0 ? 1 : 0;
	}
	for (size_t i = 0; i < sizeof(keel_cmds) / sizeof(keel_cmds[0]); i++) {
		if (strcmp(args[0], keel_cmds[i].name) != 0)
			continue;
		int rc = keel_cmds[i].fn(&c, n - 1, args + 1);
		keel_ctx_close(&c);
		return rc ? 1 : 0;
	}
	for (size_t i = 0; i < sizeof(keel_components) / sizeof(keel_components[0]); i++)
		if (strcmp(args[0], keel_components[i].name) == 0)
			return keel_fail("keel %s takes its flags after its name (only --endpoints "
					 "may come before it)", args[0]);
	fprintf(stderr, "error: unknown command \"%s\" for \"keel\"\nRun 'keel --help' for "
		"usage.\n", args[0]);
	return 1;
}
