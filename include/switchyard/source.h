/*
 * The source side of a migration, before streaming: checks that replication can work
 * (wal_level, privileges, replica identities), and creates the publication and the logical
 * slot idempotently. Every refusal names the object and the fix.
 */
#ifndef SWITCHYARD_SOURCE_H
#define SWITCHYARD_SOURCE_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "switchyard/lsn.h"

/*
 * The tables a migration covers, as a WHERE condition over pg_class c and pg_namespace n:
 * ordinary and partitioned user tables matching the patterns in parameter $1 (NULL = all;
 * see source_patterns_param). The same set as the publication, before it exists.
 */
#define SOURCE_TABLE_FILTER_SQL \
	"c.relkind IN ('r', 'p') " \
	"AND n.nspname NOT IN ('pg_catalog', 'information_schema') " \
	"AND n.nspname !~ '^pg_(toast|temp_)' " \
	"AND ($1::text IS NULL OR (n.nspname || '.' || c.relname) LIKE ANY (regexp_split_to_array($1, E'\\n')))"

/* --tables patterns as the $1 of SOURCE_TABLE_FILTER_SQL (NULL for all); caller frees. */
char *source_patterns_param(char *const *tables);

/*
 * Checks the source on a normal connection: wal_level = logical, the role may replicate,
 * can read every published table, and every published table has a replica identity (a
 * primary key, an index, or FULL). tables: NULL (all user tables) or NULL-terminated
 * patterns ("schema.table", '*' wildcards). Logs every problem found, then returns false.
 */
bool source_check(PGconn *conn, char *const *tables) __attribute__((warn_unused_result));

/* Creates the publication unless it exists (FOR ALL TABLES, or FOR TABLE the matches). */
bool source_ensure_publication(PGconn *conn, const char *name, char *const *tables)
	__attribute__((warn_unused_result));

/*
 * Creates the logical slot (pgoutput) on a replication connection unless it exists.
 * *created says whether it was made now; *consistent_point is its start.
 */
bool source_ensure_slot(PGconn *repl, PGconn *conn, const char *name, bool *created,
						Lsn *consistent_point) __attribute__((warn_unused_result));

/*
 * Creates the slot with an exported snapshot for the initial copy. The snapshot can be
 * imported only while repl stays open and idle: keep it until every copy session holds it.
 * *snapshot_name is malloc'd.
 */
bool source_create_slot_export(PGconn *repl, const char *name, Lsn *consistent_point,
							   char **snapshot_name) __attribute__((warn_unused_result));

/* Drops the slot if it exists (a copy started over). */
bool source_drop_slot(PGconn *conn, const char *slot) __attribute__((warn_unused_result));

/* The source's pg_control system identifier (IDENTIFY_SYSTEM on a replication connection). */
bool source_system_identifier(PGconn *repl, uint64_t *out) __attribute__((warn_unused_result));

/* Drops slot and publication if they exist (cleanup). */
bool source_drop(PGconn *conn, const char *slot, const char *publication)
	__attribute__((warn_unused_result));

#endif
