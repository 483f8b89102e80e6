/*
 * Rows waiting to be sent as one multi-row statement: the applier keeps a few of these open
 * at once, one per relation and kind, so changes of a catch-up batch group well even when
 * transactions touch several tables in turn. Pure buffers and rules; no libpq.
 */
#ifndef SWITCHYARD_APPLY_GROUP_H
#define SWITCHYARD_APPLY_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchyard/apply_sql.h"
#include "switchyard/pgoutput.h"

#define APPLY_GROUP_ROWS 64            /* rows in one statement */
#define APPLY_GROUP_BYTES (256 * 1024)  /* and parameter bytes */
#define APPLY_GROUP_MAX_PARAMS 65535   /* the protocol's limit per statement */

/*
 * Inserts (or key-matched updates or deletes of distinct rows) of one relation and column
 * set, copied out of the decoder's scratch memory, which lives only until the next message.
 */
typedef struct ApplyGroup
{
	void *owner;               /* the relation the rows belong to; NULL: the group is free */
	char kind;                 /* 'I', 'U' or 'D' */
	uint16_t ncols;
	uint8_t *roles;            /* the shared plan's roles (ncols) */
	size_t roles_cap;
	int rows;
	int changes;               /* the rows and the later changes merged into them */
	int width;                 /* parameters per row */
	bool binary;               /* some parameter is in binary format */
	uint64_t first_lsn;        /* of the first row, to name the statement when it fails */
	uint64_t keys[APPLY_GROUP_ROWS];  /* identity hashes of the rows */
	char *data;                /* the values, each NUL-terminated */
	size_t len;
	size_t cap;
	size_t *offsets;           /* per parameter into data; SIZE_MAX for NULL */
	int *lengths;
	int *formats;
	const char **values;       /* filled by apply_group_values */
	size_t param_cap;
} ApplyGroup;

/*
 * A hash of identity values, equal for equal text: an insert's key columns and a later
 * update's or delete's match values of the same row hash alike.
 */
uint64_t apply_group_key_hash(const TupleValue *const *values, int n);
/* The same over the key columns of a tuple (is_key in column order), as an insert's key. */
uint64_t apply_group_tuple_key(const ApplySqlTable *table, const TupleData *tuple);

/* Whether the change may join this open group: same owner, kind and shape, room, new key. */
bool apply_group_accepts(const ApplyGroup *g, const void *owner, const ApplySqlPlan *plan,
						 uint64_t key);
/* Whether some row of the group has this identity hash (collisions answer yes). */
bool apply_group_has_key(const ApplyGroup *g, uint64_t key);
/* Copies the change's values in; starts the group when empty. False: out of memory. */
bool apply_group_append(ApplyGroup *g, void *owner, uint16_t ncols, const ApplySqlPlan *plan,
						uint64_t key, uint64_t lsn) __attribute__((warn_unused_result));
/*
 * The row of the group that the update plan's match values (its last nmatch parameters) name
 * exactly, or -1. key is their hash, to skip other rows quickly.
 */
int apply_group_find_row(const ApplyGroup *g, const ApplySqlPlan *plan, int nmatch, uint64_t key);
/*
 * Replaces that row's values with the later update's, which sets the same columns: the one
 * row then leaves the target as the two changes in turn would. False when the group's bytes
 * would pass APPLY_GROUP_BYTES (the caller sends the group) or on out of memory.
 */
bool apply_group_replace(ApplyGroup *g, int row, const ApplySqlPlan *plan) __attribute__((warn_unused_result));
/* Points values[] into the buffer: the parameter array for rows * width parameters. */
const char *const *apply_group_values(ApplyGroup *g);
/* Empties the group (buffers are kept for the next one). */
void apply_group_reset(ApplyGroup *g);
void apply_group_free(ApplyGroup *g);

#endif
