/*
 * The initial copy: schema (pg_dump/pg_restore, pre-data before and post-data after the
 * data) and data in parallel COPY streams straight from source to target, all inside the
 * main slot's exported snapshot, so the stream continues exactly where the copy ends.
 * Runs on its own threads while the receiver spools the stream.
 */
#ifndef SWITCHYARD_COPY_H
#define SWITCHYARD_COPY_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

typedef struct CopyOptions
{
	const char *source_conninfo;
	const char *target_conninfo;
	const char *snapshot_name;   /* exported by CREATE_REPLICATION_SLOT ... (SNAPSHOT 'export') */
	const char *publication_name;
	char *const *table_patterns; /* NULL-terminated --tables patterns, or NULL for all */
	const char *work_dir;        /* where the schema dump is kept (state directory) */
	int jobs;                    /* parallel COPY streams; 0 = 2 */
	bool restore_schema;         /* the target has none of the tables: restore pre/post-data */
	bool clean_schema;           /* a copy started over: drop what the last one restored first */
	uint64_t split_bytes;        /* tables larger than this are split into ctid ranges; 0 = 256 MiB */
} CopyOptions;

typedef struct CopyProgress
{
	const char *step;            /* "schema", "data", "indexes", "sequences", "done" */
	int tables_total;
	int tables_done;
	uint64_t rows_done;
	uint64_t rows_estimated;
	uint64_t bytes_done;
	uint64_t bytes_estimated;
	double elapsed_seconds;
	bool snapshot_imported;      /* every worker holds the snapshot: the slot's exporter may go */
	bool finished;
	bool failed;
	char error[512];
} CopyProgress;

typedef struct Copy Copy;

/* Starts the coordinator thread. */
bool copy_start(const CopyOptions *options, Copy **out) __attribute__((warn_unused_result));
/* Blocks until every worker has imported the snapshot (or the copy failed first). */
bool copy_wait_snapshot_imported(Copy *copy) __attribute__((warn_unused_result));
void copy_get_progress(Copy *copy, CopyProgress *out);
/* Asks the copy to stop early (shutdown); copy_free waits for its threads. */
void copy_request_stop(Copy *copy);
void copy_free(Copy *copy);

/* How much of the published tables the target already has. */
typedef enum CopyTargetSchema
{
	COPY_TARGET_EMPTY,       /* none of the tables: the copy restores the schema */
	COPY_TARGET_PARTIAL,     /* some: refused, the DBA must decide */
	COPY_TARGET_COMPLETE     /* all: the copy uses the target's schema as it is */
} CopyTargetSchema;

/*
 * Looks at the target for the tables to migrate (the --tables patterns, NULL for all). *nonempty gets the tables that already
 * hold rows ("schema"."table", NULL-terminated, caller frees with copy_strv_free), *missing
 * the ones absent when the schema is partial.
 */
bool copy_inspect_target(PGconn *source, PGconn *target, char *const *table_patterns,
						 CopyTargetSchema *schema, char ***nonempty, char ***missing)
	__attribute__((warn_unused_result));
/* Empties the given tables on the target (--truncate-target, or a copy started over). */
bool copy_truncate_target(PGconn *target, char *const *tables) __attribute__((warn_unused_result));
void copy_strv_free(char **strv);

#endif
