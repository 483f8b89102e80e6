/*
 * The applier's SQL builder: pure functions from a relation description and one decoded
 * change to the statement text and its parameter list. No I/O and no libpq, so every
 * statement shape is unit-tested (tests/unit/test_apply_sql.c).
 */
#ifndef SWITCHYARD_APPLY_SQL_H
#define SWITCHYARD_APPLY_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchyard/pgoutput.h"

typedef enum ApplySqlKind
{
	APPLY_SQL_INSERT = 'I',
	APPLY_SQL_UPDATE = 'U',
	APPLY_SQL_DELETE = 'D'
} ApplySqlKind;

typedef struct ApplySqlColumn
{
	const char *name;
	bool is_key;         /* flag 1 in the source's Relation message */
	bool text_compare;   /* the target type has no default equality: compare as ::text */
	const char *type_name;  /* the target column's type named for a cast (catalog_sql.h), or NULL */
} ApplySqlColumn;

/* A source relation (from its latest Relation message) joined with what the target says. */
typedef struct ApplySqlTable
{
	const char *nspname;   /* as pgoutput sends it: "" means pg_catalog */
	const char *relname;
	char replident;        /* 'd', 'i', 'f', 'n' */
	bool partitioned;      /* the target table is partitioned (no ONLY, match on tableoid too) */
	uint16_t ncols;
	const ApplySqlColumn *columns;
} ApplySqlTable;

/* What a column does in a statement; roles[] of a plan holds one of these per column. */
#define APPLY_SQL_ROLE_SET 1    /* an INSERT column, or an UPDATE SET column */
#define APPLY_SQL_ROLE_MATCH 2  /* a WHERE column */

/*
 * One change, planned: which columns appear where, and the tuple values to send as $1..$n:
 * first the SET (or INSERT) columns in column order, then the MATCH columns in column order.
 * Two changes with equal kind, table and roles share one statement text, so the caller can
 * prepare it once. roles has ncols entries and params 2 * ncols, both owned by the caller.
 */
typedef struct ApplySqlPlan
{
	ApplySqlKind kind;
	bool full;                   /* REPLICA IDENTITY FULL: match every sent old column */
	bool noop;                   /* an UPDATE that changes nothing on the target: skip it */
	uint8_t *roles;
	int nparams;
	const TupleValue **params;
} ApplySqlPlan;

bool apply_sql_plan_insert(const ApplySqlTable *table, const TupleData *new_tuple,
						   ApplySqlPlan *plan, char *errbuf, size_t errlen)
	__attribute__((warn_unused_result));
/* old_kind: 0, 'K' or 'O' as decoded; old_tuple is read only when old_kind is set. */
bool apply_sql_plan_update(const ApplySqlTable *table, char old_kind, const TupleData *old_tuple,
						   const TupleData *new_tuple, ApplySqlPlan *plan,
						   char *errbuf, size_t errlen) __attribute__((warn_unused_result));
bool apply_sql_plan_delete(const ApplySqlTable *table, char old_kind, const TupleData *old_tuple,
						   ApplySqlPlan *plan, char *errbuf, size_t errlen)
	__attribute__((warn_unused_result));

/* The statement text for a plan (malloc'd; NULL when out of memory or a no-op). */
char *apply_sql_build(const ApplySqlTable *table, const ApplySqlPlan *plan);
/*
 * One INSERT of `rows` rows that share an insert plan: VALUES ($1..$n), ($n+1..$2n), ...
 * in row order, the parameters of each row as the plan orders them.
 */
char *apply_sql_build_insert(const ApplySqlTable *table, const ApplySqlPlan *plan, int rows);
/*
 * One UPDATE or DELETE of `rows` rows that share a plan with a key match (not FULL): joins a
 * VALUES list, each row's parameters as the plan orders them, cast to the column types
 * (type_name must be set for every SET and MATCH column). The keys of the rows must differ.
 */
char *apply_sql_build_rows(const ApplySqlTable *table, const ApplySqlPlan *plan, int rows);

/*
 * The column (index into the table's columns) that parameter $param (1-based) carries in a
 * statement built from these roles, and *row, its row (0-based) in a multi-row statement:
 * every shape orders each row's parameters as the plan does, SET columns then MATCH columns.
 * -1 when param is out of range.
 */
int apply_sql_param_column(const uint8_t *roles, uint16_t ncols, int param, int *row);
/*
 * The parameter a server error's CONTEXT names ("unnamed portal parameter $4 = '...'", the
 * context PostgreSQL gives an input error of a bound value), or 0 when it names none.
 */
int apply_sql_context_param(const char *context);

/* TRUNCATE of every table of one message, flags as in PGOUTPUT_TRUNCATE_* (malloc'd). */
char *apply_sql_truncate(const ApplySqlTable *const *tables, uint32_t ntables, uint8_t flags);

/* "name" with inner double quotes doubled, like PQescapeIdentifier (malloc'd). */
char *apply_sql_quote_identifier(const char *name);
/* "schema"."table" for statements and log lines (malloc'd). */
char *apply_sql_qualified_name(const char *nspname, const char *relname);

/* A PostgreSQL timestamp as timestamptz text in UTC, "2024-05-01 12:00:00.000123+00". */
#define APPLY_SQL_TIMESTAMP_SIZE 48
const char *apply_sql_format_timestamp(int64_t pg_timestamp, char *buf);

#endif
