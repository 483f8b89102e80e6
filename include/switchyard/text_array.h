/*
 * PostgreSQL text[] literals ({"a","b\"c",NULL}) for sending lists as one parameter: every
 * element double-quoted, quotes and backslashes escaped, so any name or value survives.
 */
#ifndef SWITCHYARD_TEXT_ARRAY_H
#define SWITCHYARD_TEXT_ARRAY_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Appends one element (value NULL: SQL NULL; len bytes of value otherwise) to the literal
 * being built in *buf (grown as needed; *used 0 opens it). The buffer stays NUL-terminated.
 */
bool text_array_append(char **buf, size_t *used, size_t *cap, const char *value, size_t len)
	__attribute__((warn_unused_result));
/* Closes the literal ("{}" when nothing was appended). */
bool text_array_finish(char **buf, size_t *used, size_t *cap) __attribute__((warn_unused_result));
/* The literal of a NULL-terminated list (NULL: empty); caller frees. NULL on out of memory. */
char *text_array_from_list(char *const *items);

#endif
