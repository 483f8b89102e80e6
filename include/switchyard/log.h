/*
 * Logging: one line per event on stderr, PostgreSQL style ("ERROR:  could not ..."), with
 * optional DETAIL and HINT lines. Thread-safe. Levels never change control flow.
 */
#ifndef SWITCHYARD_LOG_H
#define SWITCHYARD_LOG_H

#include <stdbool.h>

typedef enum LogLevel
{
	LOG_LEVEL_DEBUG = 0,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_ERROR
} LogLevel;

void log_set_level(LogLevel level);
LogLevel log_get_level(void);
bool log_parse_level(const char *text, LogLevel *out) __attribute__((warn_unused_result));
/* Name of the calling thread in log lines ("main", "apply", "copy-3", ...). */
void log_set_thread_name(const char *name);

void log_message(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* DETAIL and HINT lines belong to the message just logged by this thread. */
void log_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define log_debug(...) log_message(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_message(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warning(...) log_message(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...) log_message(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
