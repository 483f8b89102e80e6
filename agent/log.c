/*
 * Logging for every thread: PostgreSQL-style lines on stderr with a UTC timestamp and the
 * thread's name. One mutex keeps lines whole.
 */
#include "switchyard/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

static LogLevel current_level = LOG_LEVEL_INFO;
static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local char thread_name[16] = "main";
/* Level of this thread's last message: DETAIL/HINT lines follow it or stay quiet with it. */
static _Thread_local LogLevel last_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

void
log_set_level(LogLevel level)
{
	current_level = level;
}

LogLevel
log_get_level(void)
{
	return current_level;
}

bool
log_parse_level(const char *text, LogLevel *out)
{
	for (int i = 0; i <= LOG_LEVEL_ERROR; i++)
	{
		if (strcasecmp(text, level_names[i]) == 0)
		{
			*out = (LogLevel) i;
			return true;
		}
	}
	return false;
}

void
log_set_thread_name(const char *name)
{
	snprintf(thread_name, sizeof(thread_name), "%s", name);
}

static void
log_line(LogLevel level, const char *label, const char *fmt, va_list args)
{
	struct timeval now;
	struct tm tm;
	char stamp[32];

	gettimeofday(&now, NULL);
	gmtime_r(&now.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);

	pthread_mutex_lock(&log_mutex);
	fprintf(stderr, "%s.%03d UTC [%s] %s:  ", stamp, (int) (now.tv_usec / 1000), thread_name, label);
	vfprintf(stderr, fmt, args);
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&log_mutex);
	(void) level;
}

void
log_message(LogLevel level, const char *fmt, ...)
{
	va_list args;

	last_level = level;
	if (level < current_level)
		return;
	va_start(args, fmt);
	log_line(level, level_names[level], fmt, args);
	va_end(args);
}

void
log_detail(const char *fmt, ...)
{
	va_list args;

	if (last_level < current_level)
		return;
	va_start(args, fmt);
	log_line(last_level, "DETAIL", fmt, args);
	va_end(args);
}

void
log_hint(const char *fmt, ...)
{
	va_list args;

	if (last_level < current_level)
		return;
	va_start(args, fmt);
	log_line(last_level, "HINT", fmt, args);
	va_end(args);
}
