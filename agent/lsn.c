/*
 * LSN text form and PostgreSQL timestamps.
 */
#include "switchyard/lsn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

bool
lsn_parse(const char *text, Lsn *out)
{
	unsigned int high = 0;
	unsigned int low = 0;
	int consumed = 0;

	if (text == NULL || sscanf(text, "%X/%X%n", &high, &low, &consumed) != 2 ||
		text[consumed] != '\0' || text[0] == '-' || text[0] == '+' || text[0] == ' ')
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
