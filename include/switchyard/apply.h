/*
 * The applier: its own thread and target connection. Reads the spool in commit order,
 * applies whole source transactions (several per target transaction) through prepared
 * statements in libpq pipeline mode, with session_replication_role = replica, and records
 * progress with a replication origin inside the same target transaction: exactly once
 * across any crash. On a target error it rolls back, logs the table and LSN, backs off and
 * retries from the origin's position while the receiver keeps spooling.
 */
#ifndef SWITCHYARD_APPLY_H
#define SWITCHYARD_APPLY_H

#include <stdbool.h>
#include <stdint.h>

#include "switchyard/lsn.h"
#include "switchyard/spool.h"
#include "switchyard/touched.h"

typedef struct ApplyOptions
{
	const char *target_conninfo;   /* libpq conninfo of the target database */
	const char *origin_name;       /* replication origin on the target, created if missing */
	Spool *spool;
	Lsn endpos;                    /* 0: none; else apply every transaction with end_lsn <= endpos, then stop */
	int batch_transactions;        /* source transactions per target transaction; 0 = 100 */
	int max_retry_seconds;         /* backoff cap after a target error; 0 = 30 */
	TouchedKeys *touched;          /* keys written, for the cutover's final parity; NULL: none */
} ApplyOptions;

typedef struct ApplyStats
{
	Lsn applied_lsn;       /* everything before it is applied (commit end_lsn or PROGRESS lsn) */
	Lsn durable_lsn;       /* pg_replication_origin_progress(origin, true): durable on the target */
	Lsn last_commit_lsn;   /* end_lsn of the last source transaction committed on the target */
	int64_t last_commit_time;  /* source commit time of the last applied transaction (PG timestamp) */
	int64_t last_apply_time;   /* when it was applied (PG timestamp) */
	uint64_t transactions;     /* applied since start */
	uint64_t changes;          /* rows inserted, updated, deleted, and tables truncated */
	bool connected;
	bool reached_endpos;       /* endpos given and everything up to it is applied */
	bool stopped;              /* the thread has ended (stop, endpos, or fatal error) */
	bool fatal;                /* stopped on an error that retrying cannot fix */
	char last_error[512];      /* "" when the last attempt succeeded */
} ApplyStats;

typedef struct Applier Applier;

/* Starts the thread. The applier connects, sets up the origin and applies until stopped. */
bool apply_start(const ApplyOptions *options, Applier **out) __attribute__((warn_unused_result));
/* Asks the thread to stop after the current target transaction (committed or rolled back). */
void apply_request_stop(Applier *applier);
/* Waits for the thread and frees everything. Accepts NULL. */
void apply_free(Applier *applier);
/* Rows applied (committed on the target) per table since the agent started. */
typedef struct ApplyTableStats
{
	char table[300];            /* "schema"."table" */
	uint64_t inserted;
	uint64_t updated;
	uint64_t deleted;
	uint64_t truncated;         /* TRUNCATEs of it */
} ApplyTableStats;

/* Fills up to max entries; returns how many tables there are (may exceed max). */
size_t apply_get_table_stats(Applier *applier, ApplyTableStats *out, size_t max);

/* Thread-safe snapshot of the counters. */
void apply_get_stats(Applier *applier, ApplyStats *out);

#endif
