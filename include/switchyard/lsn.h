/*
 * Log sequence numbers: the position in the source's WAL that orders everything the agent
 * does (spool records, confirmed flush, applied progress, barriers).
 */
#ifndef SWITCHYARD_LSN_H
#define SWITCHYARD_LSN_H

#include <stdbool.h>
#include <stdint.h>

typedef uint64_t Lsn;

#define LSN_INVALID ((Lsn) 0)
/* "FFFFFFFF/FFFFFFFF" plus NUL */
#define LSN_FORMAT_SIZE 18

/* Parses PostgreSQL's "X/X" text form. */
bool lsn_parse(const char *text, Lsn *out) __attribute__((warn_unused_result));
/* Formats into buf (LSN_FORMAT_SIZE bytes) and returns buf. */
const char *lsn_format(Lsn lsn, char *buf);

/* PostgreSQL timestamps: microseconds since 2000-01-01 00:00 UTC. */
#define PG_EPOCH_OFFSET_US INT64_C(946684800000000)
int64_t pg_timestamp_now(void);

#endif
