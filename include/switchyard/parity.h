/*
 * Row-level parity, the comparison engine behind `switchyard verify`: per table, leaves of
 * primary-key ranges fingerprinted in both servers (count plus XOR of a 64-bit row hash),
 * differing leaves narrowed to the row by merging two key-ordered (key, hash) streams, and
 * the source row image written back to the target on request. It works on sessions that
 * already hold the common snapshot; taking that snapshot is verify.c's job.
 */
#ifndef SWITCHYARD_PARITY_H
#define SWITCHYARD_PARITY_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <libpq-fe.h>

/* How a column enters the row hash. */
typedef enum ParityCast
{
	PARITY_CAST_NONE = 0,      /* the type's own extended hash, the same in every cluster */
	PARITY_CAST_TEXT,          /* no extended hash, or one that differs between clusters (enums) */
	PARITY_CAST_NUMERIC,       /* money: its text form depends on lc_monetary */
	PARITY_CAST_BASE           /* a domain over a hashable type: hashed as its base type */
} ParityCast;

/* How a key column is ordered in the drill-down streams, so the merge can compare in C. */
typedef enum ParityKeyOrder
{
	PARITY_KEY_INT = 0,        /* smallint, integer, bigint: numeric order */
	PARITY_KEY_TEXT,           /* everything else: its text form in byte order (COLLATE "C") */
	/*
	 * As TEXT, of a canonical text form: values equal under the type must be one key on both
	 * sides, but numeric 2.5 and 2.50 print differently, and so do float 0 and -0.
	 */
	PARITY_KEY_NUMERIC,
	PARITY_KEY_FLOAT
} ParityKeyOrder;

/* What the engine needs to know about a column's type (from the source's catalog). */
typedef struct ParityTypeInfo
{
	uint32_t type_oid;
	char typtype;              /* 'b', 'c', 'd', 'e', 'p', 'r', 'm' */
	uint32_t element_oid;      /* arrays: the element type, else 0 */
	uint32_t base_oid;         /* domains: the base type, else 0 */
	uint32_t base_element_oid; /* domains over arrays: the base's element type, else 0 */
} ParityTypeInfo;

typedef struct ParityColumn
{
	char *name;                /* as in the catalog */
	char *quoted;              /* "name", quotes doubled */
	char *type_name;           /* for casts of parameters: qualified, no typmod (catalog_sql.h) */
	char *base_type_name;      /* PARITY_CAST_BASE: the base type's name */
	ParityCast cast;
	/*
	 * The type's own extended hash function, called per column (faster than building a
	 * record for hash_record_extended), and a cast its argument needs; NULL: the column goes
	 * into one hash_record_extended(ROW(...)) with the other such columns.
	 */
	const char *hash_function;
	const char *hash_argument_cast;
	ParityKeyOrder key_order;
	bool generated;            /* computed by the target itself: never written by repair */
} ParityColumn;

typedef enum ParityDiffKind
{
	PARITY_MISSING = 0,        /* on the source, not on the target */
	PARITY_EXTRA,              /* on the target, not on the source */
	PARITY_CHANGED             /* on both, with different values */
} ParityDiffKind;

typedef struct ParityColumnDiff
{
	int column;                /* index into ParityTable.columns */
	char *source_value;        /* NULL = SQL NULL */
	char *target_value;
} ParityColumnDiff;

typedef struct ParityDifference
{
	ParityDiffKind kind;
	char **key;                /* nkeys values (text form); keyless tables: the row hash */
	int64_t copies;            /* keyless tables: how many copies are missing or extra; else 1 */
	/* changed rows: the columns that differ (ncolumns 0 with detailed false: not fetched) */
	ParityColumnDiff *columns;
	int ncolumns;
	bool detailed;
	/* keyless tables: one image of the row (source for missing, target for extra), or NULL */
	char **row;
} ParityDifference;

/* One range of the key, [lower, upper); NULL bound = open. Values in text form. */
typedef struct ParityLeaf
{
	struct ParityTable *table;
	char **lower;
	char **upper;
} ParityLeaf;

typedef struct ParityTableResult
{
	int64_t rows_source;
	int64_t rows_target;
	int leaves_done;
	int leaves_differing;
	int64_t missing;           /* rows (keyless tables: copies) */
	int64_t extra;
	int64_t changed;
	ParityDifference *differences;
	int ndifferences;
	int differences_cap;
	bool truncated;            /* more differences than kept in memory */
	int64_t repaired;          /* rows written by --repair */
	char *repair_skipped;      /* why the table was not repaired, or NULL */
	double seconds;
	struct timespec started;
	bool started_set;
	uint64_t lsn;              /* the common point it was compared at */
	/* compared by the keys the stream touched since a clean verify at baseline_lsn */
	bool by_keys;
	int64_t touched_keys;
	uint64_t baseline_lsn;
	/* a keyless table the stream did not write since a clean verify at baseline_lsn: not compared */
	bool unwritten;
} ParityTableResult;

typedef struct ParityTable
{
	char *schema;
	char *name;
	char *display;             /* schema.name, quoted where needed (format('%I.%I')) */
	char *qualified;           /* "schema"."name", always quoted */
	bool only;                 /* plain table: FROM ONLY (partitioned parents: their partitions) */
	ParityColumn *columns;     /* compared columns: present on both sides with one type */
	int ncolumns;
	int *key;                  /* indexes into columns, in key order; nkeys 0 = keyless */
	int nkeys;
	bool keyless;              /* compared as a multiset of rows */
	/*
	 * A keyless table's group column (index into columns): NOT NULL and leading an index on
	 * both sides, so the rows of some of its values can be compared without a full scan.
	 */
	bool grouped;
	int group;
	bool comparable;           /* false: missing on one side, or the key cannot be compared */
	char **schema_issues;
	int nschema_issues;
	double estimated_rows;
	ParityLeaf *leaves;
	int nleaves;
	ParityTableResult result;
} ParityTable;

/* A worker's two sessions, both inside the common snapshot. */
typedef struct ParityPair
{
	PGconn *source;
	PGconn *target;
} ParityPair;

typedef enum ParitySide
{
	PARITY_SIDE_NONE = 0,
	PARITY_SIDE_SOURCE,
	PARITY_SIDE_TARGET
} ParitySide;

/* A failure that ended a comparison: which server, and the message (already logged). */
typedef struct ParityError
{
	ParitySide side;
	char message[512];
} ParityError;

#define PARITY_DEFAULT_LEAF_ROWS 250000
/* Differences kept in memory (and in the report) per table; the counts stay exact. */
#define PARITY_MAX_DIFFERENCES 100000
/* Changed rows whose columns are fetched and named, per table. */
#define PARITY_MAX_DETAILED 10000

/* ---- building blocks (pure, unit-tested) ------------------------------------------------ */

/* "name" with inner quotes doubled; caller frees. NULL on out of memory. */
char *parity_quote_ident(const char *name);
/* How a column of this type is hashed. */
ParityCast parity_column_cast(const ParityTypeInfo *type);
/*
 * The extended hash function for a column of this type once cast as parity_column_cast
 * says (NULL: none callable from SQL with this type); *argument_cast is "" or a cast such
 * as "::timestamp" the function's argument needs.
 */
const char *parity_column_hash_function(const ParityTypeInfo *type, ParityCast cast,
										const char **argument_cast);
/* How a key column of this type is ordered in the streams. */
ParityKeyOrder parity_key_order(const ParityTypeInfo *type);
/*
 * The row hash: hashint8extended(f1(c1, 1) # f2(c2, 2) # ... # hash_record_extended(ROW(the
 * columns without a function), 0), 0), NULLs as their column's seed; or just
 * hash_record_extended(ROW(...), 0) when no column has a function. Caller frees.
 */
char *parity_row_hash_sql(const ParityTable *table);
/*
 * The leaf predicate with parameters from $first_param: "" (no bounds), or
 * "(k1, k2) >= ($1::t1, $2::t2) AND (k1, k2) < ($3::t1, $4::t2)". Caller frees.
 */
char *parity_range_sql(const ParityTable *table, bool lower, bool upper, int first_param);
/* The leaf fingerprint: count(*), bit_xor of the row hash (keyless: plus a sum). Caller frees. */
char *parity_fingerprint_sql(const ParityTable *table, bool lower, bool upper);
/*
 * The same fingerprint of the rows in a range of pages, ctid >= $1::tid AND ctid < $2::tid
 * (either bound may be left out; the parameters are numbered from $1): a physical pass,
 * which each side splits by its own size. Caller frees.
 */
char *parity_pages_fingerprint_sql(const ParityTable *table, bool lower, bool upper);
/*
 * The fingerprint of just the rows whose keys are given: $1..$nkeys are text[] arrays of
 * the key columns' values (in key order, text form), one element per row. Of a grouped
 * keyless table: the multiset fingerprint of the rows whose group column is in $1. Caller
 * frees.
 */
char *parity_keys_fingerprint_sql(const ParityTable *table);
/* How many text[] arrays parity_keys_fingerprint_sql takes: 0 when it cannot be used. */
int parity_touched_ncols(const ParityTable *table);
/* The column of the k-th of them: the k-th key column, or a keyless table's group column. */
const ParityColumn *parity_touched_column(const ParityTable *table, int k);
/* The drill-down stream: key columns (text), row hash, ordered for the merge. Caller frees. */
char *parity_stream_sql(const ParityTable *table, bool lower, bool upper);
/* One row by key: every column as text. Caller frees. */
char *parity_row_sql(const ParityTable *table);
/* The same, then per column what the row hash takes of it, to name the changed columns. */
char *parity_detail_row_sql(const ParityTable *table);
/*
 * Leaf boundaries from a key sample sorted in the key's own order (nsample rows of nkeys
 * values): up to nleaves - 1 boundaries, strictly increasing (equal sample keys are skipped).
 * *bounds is an array of *nbounds pointers into sample; caller frees the array only.
 */
bool parity_leaf_bounds(char ***sample, int nsample, int nkeys, int nleaves,
						char ****bounds, int *nbounds) __attribute__((warn_unused_result));

/* ---- the merge of two key-ordered streams ----------------------------------------------- */

typedef struct ParityRow
{
	char **key;                /* nkeys values in text form */
	int64_t hash;
	int64_t count;             /* keyless streams: multiplicity; else 1 */
} ParityRow;

/* Fills row with the next one; returns 1, 0 at the end, -1 on error. */
typedef int (*ParityNextFn)(void *arg, ParityRow *row);
/*
 * Called for each difference: missing (source row only), extra (target row only), changed
 * (both); copies is the multiplicity difference (1 for keyed rows). Returns false to stop.
 */
typedef bool (*ParityEmitFn)(void *arg, ParityDiffKind kind, const ParityRow *source,
							 const ParityRow *target, int64_t copies);

/* Negative, 0 or positive as key a sorts before, with or after key b. */
int parity_key_compare(const ParityKeyOrder *orders, int nkeys, char *const *a, char *const *b);

/* Merges the two streams; false when a stream failed or emit said stop. */
bool parity_merge(const ParityKeyOrder *orders, int nkeys, ParityNextFn next_source,
				  void *source_arg, ParityNextFn next_target, void *target_arg, ParityEmitFn emit,
				  void *emit_arg) __attribute__((warn_unused_result));

/* ---- tables ------------------------------------------------------------------------------ */

/*
 * Describes schema.name on both servers: the columns present on both with one type, the key
 * (primary key, else the replica identity index; none: keyless), and every schema difference
 * (table or column missing, type differs, key not unique on the target). The table is still
 * returned when it cannot be compared (comparable = false). Fails only on a server error.
 */
bool parity_table_describe(PGconn *source, PGconn *target, const char *schema, const char *name,
						   ParityTable **out, ParityError *error) __attribute__((warn_unused_result));
/* A table that does not exist on the source at all (named by --table). */
bool parity_table_missing(const char *display, ParityTable **out) __attribute__((warn_unused_result));
/* Splits the table into leaves of about leaf_rows rows from a sample of the source's keys. */
bool parity_table_plan(PGconn *source, ParityTable *table, int64_t leaf_rows, ParityError *error)
	__attribute__((warn_unused_result));
/* Accepts NULL. */
void parity_table_free(ParityTable *table);
/* Forgets the result (to compare the table again at another point). */
void parity_table_reset_result(ParityTable *table);

/* Session settings that make both servers agree on text forms; run once per session. */
bool parity_session_setup(PGconn *conn, const char *what, ParityError *error)
	__attribute__((warn_unused_result));

/*
 * Compares the tables on npairs worker threads (one pair of sessions each, both holding the
 * common snapshot). Results go into each table's result. Stops at the first server error.
 */
bool parity_compare(ParityTable **tables, int ntables, ParityPair *pairs, int npairs, uint64_t lsn,
					ParityError *error) __attribute__((warn_unused_result));

/*
 * Makes the target equal to the source for the differences found: source row images read in
 * source (a session in the common snapshot), written on target (a read-write session, outside
 * any snapshot) in one transaction with session_replication_role = replica.
 */
bool parity_repair(ParityTable **tables, int ntables, PGconn *source, PGconn *target,
				   ParityError *error) __attribute__((warn_unused_result));

const char *parity_diff_kind_name(ParityDiffKind kind);

/* Protocol bytes received and sent by the comparison so far (all threads, whole process). */
void parity_traffic(uint64_t *received, uint64_t *sent);

/*
 * Compares just the rows of the given keys (keys[i]: table i's nkeys text[] literals, in key
 * order), one table per pair at a time, source and target at once. Each table's result gets
 * the row counts, by_keys and lsn; leaves_differing 1 when the fingerprints differ (then the
 * caller compares that table in full to name the rows). Stops at the first server error.
 */
bool parity_compare_by_keys(ParityTable **tables, char ***keys, int ntables, ParityPair *pairs, int npairs,
							uint64_t lsn, ParityError *error) __attribute__((warn_unused_result));

#endif
