/*
 * LSN text form and PostgreSQL timestamps.
 */
#include "switchyard/lsn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* One half of "X/X": 1 to 8 hex digits, nothing else (PostgreSQL's pg_lsn_in rules). */
static bool
lsn_parse_half(const char *text, size_t len, uint32_t *out)
{
	uint32_t value = 0;

	if (len < 1 || len > 8)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		char c = text[i];
		int digit;

		if (c >= '0' && c <= '9')
			digit = c - '0';
		else if (c >= 'a' && c <= 'f')
			digit = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			digit = c - 'A' + 10;
		else
			return false;
		value = (value << 4) | (uint32_t) digit;
	}
	*out = value;
	return true;
}

bool
lsn_parse(const char *text, Lsn *out)
{
	const char *slash;
	uint32_t high;
	uint32_t low;

	if (text == NULL || (slash = strchr(text, '/')) == NULL)
		return false;
	if (!lsn_parse_half(text, (size_t) (slash - text), &high) ||
		!lsn_parse_half(slash + 1, strlen(slash + 1), &low))
		return false;
	*out = ((Lsn) high << 32) | low;
	return true;
}

const char *
lsn_format(Lsn lsn, char *buf)
{
	snprintf(buf, LSN_FORMAT_SIZE, "%X/%X", (unsigned int) (lsn >> 32), (unsigned int) lsn);
	return buf;
}

int64_t
pg_timestamp_now(void)
{
	struct timeval now;

	gettimeofday(&now, NULL);
	return (int64_t) now.tv_sec * 1000000 + now.tv_usec - PG_EPOCH_OFFSET_US;
}
