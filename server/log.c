/* server/log.c — keeld's log: one line per event on stderr, with a UTC timestamp and the
 * level, filtered by --log-level. The only global state of keeld is the level set here. */
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include "keeld.h"

static keeld_log_level_t log_level = KEELD_LOG_INFO;

void keeld_log_set_level(keeld_log_level_t lvl)
{
	log_level = lvl;
}

void keeld_log(keeld_log_level_t lvl, const char *fmt, ...)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	if (lvl < log_level)
		return;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	char line[2048];
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %-5s ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, (long)tv.tv_usec, names[lvl]);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}
