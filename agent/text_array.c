/* PostgreSQL text[] literals: see text_array.h. */
#include "switchyard/text_array.h"

#include <stdlib.h>
#include <string.h>

static bool
text_array_reserve(char **buf, size_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 64;
	char *grown;

	if (need <= *cap)
		return true;
	while (n < need)
		n *= 2;
	grown = realloc(*buf, n);
	if (grown == NULL)
		return false;
	*buf = grown;
	*cap = n;
	return true;
}

bool
text_array_append(char **buf, size_t *used, size_t *cap, const char *value, size_t len)
{
	char separator = *used == 0 ? '{' : ',';

	/* worst case: "{" or ",", every byte escaped, two quotes, NUL */
	if (!text_array_reserve(buf, cap, *used + 2 * len + 5))
		return false;
	(*buf)[(*used)++] = separator;
	if (value == NULL)
	{
		memcpy(*buf + *used, "NULL", 4);
		*used += 4;
	}
	else
	{
		(*buf)[(*used)++] = '"';
		for (size_t i = 0; i < len; i++)
		{
			if (value[i] == '"' || value[i] == '\\')
				(*buf)[(*used)++] = '\\';
			(*buf)[(*used)++] = value[i];
		}
		(*buf)[(*used)++] = '"';
	}
	(*buf)[*used] = '\0';
	return true;
}

bool
text_array_finish(char **buf, size_t *used, size_t *cap)
{
	if (!text_array_reserve(buf, cap, *used + 3))
		return false;
	if (*used == 0)
		(*buf)[(*used)++] = '{';
	(*buf)[(*used)++] = '}';
	(*buf)[*used] = '\0';
	return true;
}

char *
text_array_from_list(char *const *items)
{
	char *buf = NULL;
	size_t used = 0;
	size_t cap = 0;
	bool ok = true;

	for (size_t i = 0; ok && items != NULL && items[i] != NULL; i++)
		ok = text_array_append(&buf, &used, &cap, items[i], strlen(items[i]));
	if (!ok || !text_array_finish(&buf, &used, &cap))
	{
		free(buf);
		return NULL;
	}
	return buf;
}
