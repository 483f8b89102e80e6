/*
 * Touched keys: which rows the applier wrote since the last clean verify, per table, so the
 * cutover's final parity inside the fence compares only those rows. A clean verify at the
 * common point L proved every table equal at L; afterwards only the stream changes the
 * target (the guard keeps everyone else out) and every change of the source is in the
 * stream, so the rows that can differ at the fence are the ones whose keys the stream
 * touched in transactions after L.
 *
 * Each key carries a stamp: the end LSN of the last source transaction that touched it
 * (a transaction is visible at L when its end LSN <= L, as the parity hold counts it).
 * What is not known is said, never guessed: changes applied before this process started,
 * a TRUNCATE, a change whose key could not be read, or a table past the memory bound make
 * the table "lost" up to that transaction; a verify after it makes the table usable again.
 *
 * The apply thread writes; the agent (pruning) and the cutover (reading) run on other
 * threads; one mutex guards it all. Keys are the text forms of the replica identity columns.
 */
#ifndef SWITCHYARD_TOUCHED_H
#define SWITCHYARD_TOUCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchyard/lsn.h"

typedef struct TouchedKeys TouchedKeys;

/*
 * A table without a key (REPLICA IDENTITY FULL) is tracked by its group column instead: the
 * rows sharing a value of it are compared together. The column is NOT NULL, not generated,
 * and the first column of a valid btree or hash index without a predicate; the applier and
 * the parity both pick the first such column by this condition over pg_attribute "a", REL
 * being the table's oid, so that they name the same column.
 */
#define TOUCHED_GROUP_COLUMN_SQL(REL) \
	"a.attnotnull AND a.attgenerated = '' AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i" \
	" JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid JOIN pg_catalog.pg_am im ON im.oid = ic.relam" \
	" WHERE i.indrelid = " REL " AND i.indkey[0] = a.attnum AND i.indisvalid AND i.indpred IS NULL" \
	" AND im.amname IN ('btree', 'hash'))"

/* Keys kept in all tables together before the largest table is given up: ~50 bytes each. */
#define TOUCHED_DEFAULT_MAX_KEYS 250000

/* max_keys 0: TOUCHED_DEFAULT_MAX_KEYS. NULL on out of memory. */
TouchedKeys *touched_create(size_t max_keys);
/* Accepts NULL. */
void touched_free(TouchedKeys *touched);

/* ---- the apply thread --------------------------------------------------------------------- */

/*
 * The applier starts at floor: what came before was applied by an earlier process, so no
 * delta is known for a baseline before it. Only the first call counts.
 */
void touched_start(TouchedKeys *touched, Lsn floor);
/*
 * A row of schema.name was written: its key columns (names and text values, ncols of them,
 * in the relation's column order). The stamp is set when the transaction commits.
 */
void touched_add(TouchedKeys *touched, const char *schema, const char *name, int ncols,
				 const char *const *columns, const char *const *values, const uint32_t *lengths);
/* schema.name changed in a way no key describes (TRUNCATE, an unreadable key). */
void touched_lose(TouchedKeys *touched, const char *schema, const char *name);
/* The source transaction of every add and lose since the last call ended at end_lsn. */
void touched_commit(TouchedKeys *touched, Lsn end_lsn);

/* ---- readers ------------------------------------------------------------------------------ */

/* schema.name was verified equal at baseline: keys stamped at or before it can go. */
void touched_prune(TouchedKeys *touched, const char *schema, const char *name, Lsn baseline);

typedef struct TouchedDelta
{
	int ncols;
	char **columns;            /* key column names */
	/* per column, a PostgreSQL text[] literal of the keys' values: "{"1","2"}" */
	char **arrays;
	size_t nkeys;
} TouchedDelta;

typedef enum TouchedVerdict
{
	TOUCHED_KNOWN = 0,         /* out holds every key touched after the baseline (maybe none) */
	TOUCHED_NO_START,          /* the baseline lies before this process began applying */
	TOUCHED_LOST,              /* the table was lost after the baseline */
	TOUCHED_NO_MEMORY
} TouchedVerdict;

/*
 * The keys of schema.name touched after baseline (stamp > baseline). A table never touched
 * is TOUCHED_KNOWN with no keys and no columns.
 */
TouchedVerdict touched_delta(TouchedKeys *touched, const char *schema, const char *name, Lsn baseline,
							 TouchedDelta *out);
void touched_delta_free(TouchedDelta *delta);
/*
 * When the applier last wrote a row of schema.name or truncated it, keyed or not: *last is
 * the end LSN of that transaction (UINT64_MAX while it is still open; 0: not since this
 * process started). With TOUCHED_KNOWN and *last <= baseline the table is as it was at
 * baseline, whatever its key: that is how a keyless table equal at baseline stays proven.
 * TOUCHED_NO_START when the baseline lies before this process began applying.
 */
TouchedVerdict touched_written_since(TouchedKeys *touched, const char *schema, const char *name, Lsn baseline,
									 Lsn *last);
/* Why a verdict is not TOUCHED_KNOWN, for logs. */
const char *touched_verdict_text(TouchedVerdict verdict);

/* Keys held now in all tables (for status and tests). */
size_t touched_count(TouchedKeys *touched);

#endif
