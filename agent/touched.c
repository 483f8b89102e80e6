/*
 * Touched keys per table, stamped with the end LSN of the transaction that last wrote them:
 * see touched.h for why the cutover can trust them.
 */
#include "switchyard/touched.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "switchyard/text_array.h"

/* The stamp of a key whose transaction has not committed yet: newer than any baseline. */
#define TOUCHED_PENDING UINT64_MAX
#define TOUCHED_NULL_LENGTH UINT32_MAX

typedef struct TouchedEntry
{
	uint64_t hash;
	Lsn stamp;
	uint32_t offset;           /* into the table's arena: [u32 length or NULL][bytes] per column */
	uint32_t length;
} TouchedEntry;

typedef struct TouchedTable
{
	char *schema;
	char *name;
	int ncols;
	char **columns;
	TouchedEntry *entries;
	size_t nentries;
	size_t entries_cap;
	uint32_t *index;           /* open addressing: entry number + 1, 0 = empty */
	size_t index_cap;
	char *arena;
	size_t arena_used;
	size_t arena_cap;
	Lsn lost;                  /* the last transaction that lost it (PENDING: open); 0: never */
	Lsn pruned;                /* stamps at or before it are gone */
	Lsn prune_request;         /* asked by a reader, done by the apply thread at a commit */
	bool in_txn;               /* on the dirty list: keys added by the open transaction */
	bool written_in_txn;       /* on the written list: the open transaction wrote a row of it */
	Lsn written;               /* the last transaction that wrote a row of it or truncated it; 0: never */
	size_t txn_first;          /* the first entry the open transaction added (all after it are new) */
} TouchedTable;

typedef struct TouchedPending
{
	TouchedTable *table;
	size_t entry;
} TouchedPending;

struct TouchedKeys
{
	pthread_mutex_t mutex;
	size_t max_keys;
	bool started;
	Lsn floor;
	TouchedTable **tables;     /* open addressing by name */
	size_t tables_cap;
	size_t ntables;
	size_t total;
	bool lost_pending;         /* some table's lost stamp waits for the commit */
	bool prune_pending;        /* some table has a prune request */
	TouchedPending *pending;   /* older entries the open transaction touched again */
	size_t npending;
	size_t pending_cap;
	TouchedTable **dirty;      /* tables the open transaction added entries to */
	size_t ndirty;
	size_t dirty_cap;
	TouchedTable **written;    /* tables the open transaction wrote, keyed or not */
	size_t nwritten;
	size_t written_cap;
	char *keybuf;
	size_t keybuf_cap;
};

static uint64_t
touched_hash_bytes(uint64_t hash, const void *data, size_t len)
{
	const unsigned char *p = data;

	/* FNV-1a: keys are short, and the hash only spreads them over the index */
	for (size_t i = 0; i < len; i++)
	{
		hash ^= p[i];
		hash *= UINT64_C(1099511628211);
	}
	return hash;
}

#define TOUCHED_HASH_SEED UINT64_C(14695981039346656037)

static uint64_t
touched_table_hash(const char *schema, const char *name)
{
	uint64_t hash = touched_hash_bytes(TOUCHED_HASH_SEED, schema, strlen(schema) + 1);

	return touched_hash_bytes(hash, name, strlen(name));
}

static bool
touched_grow(void **array, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 16;
	void *grown;

	if (need <= *cap)
		return true;
	while (n < need)
		n *= 2;
	grown = realloc(*array, n * size);
	if (grown == NULL)
		return false;
	*array = grown;
	*cap = n;
	return true;
}

TouchedKeys *
touched_create(size_t max_keys)
{
	TouchedKeys *touched = calloc(1, sizeof(*touched));

	if (touched == NULL)
		return NULL;
	pthread_mutex_init(&touched->mutex, NULL);
	touched->max_keys = max_keys ? max_keys : TOUCHED_DEFAULT_MAX_KEYS;
	return touched;
}

static void
touched_table_clear(TouchedTable *table)
{
	free(table->entries);
	free(table->index);
	free(table->arena);
	table->entries = NULL;
	table->index = NULL;
	table->arena = NULL;
	table->nentries = table->entries_cap = table->index_cap = 0;
	table->arena_used = table->arena_cap = 0;
}

static void
touched_table_free_columns(TouchedTable *table)
{
	for (int i = 0; i < table->ncols; i++)
		free(table->columns[i]);
	free(table->columns);
	table->columns = NULL;
	table->ncols = 0;
}

static void
touched_table_free(TouchedTable *table)
{
	if (table == NULL)
		return;
	touched_table_clear(table);
	touched_table_free_columns(table);
	free(table->schema);
	free(table->name);
	free(table);
}

void
touched_free(TouchedKeys *touched)
{
	if (touched == NULL)
		return;
	for (size_t i = 0; i < touched->tables_cap; i++)
		touched_table_free(touched->tables[i]);
	free(touched->tables);
	free(touched->pending);
	free(touched->dirty);
	free(touched->written);
	free(touched->keybuf);
	pthread_mutex_destroy(&touched->mutex);
	free(touched);
}

static TouchedTable *
touched_find(TouchedKeys *touched, const char *schema, const char *name)
{
	size_t mask = touched->tables_cap - 1;

	if (touched->tables_cap == 0)
		return NULL;
	for (size_t i = touched_table_hash(schema, name) & mask;; i = (i + 1) & mask)
	{
		TouchedTable *table = touched->tables[i];

		if (table == NULL)
			return NULL;
		if (strcmp(table->schema, schema) == 0 && strcmp(table->name, name) == 0)
			return table;
	}
}

static bool
touched_insert_table(TouchedTable **tables, size_t cap, TouchedTable *table)
{
	size_t mask = cap - 1;

	for (size_t i = touched_table_hash(table->schema, table->name) & mask;; i = (i + 1) & mask)
	{
		if (tables[i] == NULL)
		{
			tables[i] = table;
			return true;
		}
	}
}

static TouchedTable *
touched_find_or_add(TouchedKeys *touched, const char *schema, const char *name)
{
	TouchedTable *table = touched_find(touched, schema, name);

	if (table != NULL)
		return table;
	if ((touched->ntables + 1) * 2 > touched->tables_cap)
	{
		size_t cap = touched->tables_cap ? touched->tables_cap * 2 : 16;
		TouchedTable **grown = calloc(cap, sizeof(*grown));

		if (grown == NULL)
			return NULL;
		for (size_t i = 0; i < touched->tables_cap; i++)
			if (touched->tables[i] != NULL)
				touched_insert_table(grown, cap, touched->tables[i]);
		free(touched->tables);
		touched->tables = grown;
		touched->tables_cap = cap;
	}
	table = calloc(1, sizeof(*table));
	if (table == NULL || (table->schema = strdup(schema)) == NULL || (table->name = strdup(name)) == NULL)
	{
		touched_table_free(table);
		return NULL;
	}
	touched_insert_table(touched->tables, touched->tables_cap, table);
	touched->ntables++;
	return table;
}

/* Keys gone, and nothing known up to the open transaction's end. */
static void
touched_table_lose(TouchedKeys *touched, TouchedTable *table)
{
	touched->total -= table->nentries;
	touched_table_clear(table);
	table->txn_first = 0;
	table->lost = TOUCHED_PENDING;
	touched->lost_pending = true;
}

static bool
touched_same_columns(const TouchedTable *table, int ncols, const char *const *columns)
{
	if (table->ncols != ncols)
		return false;
	for (int i = 0; i < ncols; i++)
		if (strcmp(table->columns[i], columns[i]) != 0)
			return false;
	return true;
}

static bool
touched_set_columns(TouchedTable *table, int ncols, const char *const *columns)
{
	touched_table_free_columns(table);
	table->columns = calloc((size_t) ncols, sizeof(char *));
	if (table->columns == NULL)
		return false;
	table->ncols = ncols;
	for (int i = 0; i < ncols; i++)
		if ((table->columns[i] = strdup(columns[i])) == NULL)
			return false;
	return true;
}

static bool
touched_index_rebuild(TouchedTable *table, size_t cap)
{
	uint32_t *index = calloc(cap, sizeof(*index));
	size_t mask = cap - 1;

	if (index == NULL)
		return false;
	for (size_t e = 0; e < table->nentries; e++)
	{
		size_t i = table->entries[e].hash & mask;

		while (index[i] != 0)
			i = (i + 1) & mask;
		index[i] = (uint32_t) (e + 1);
	}
	free(table->index);
	table->index = index;
	table->index_cap = cap;
	return true;
}

/* The entry holding this key, or SIZE_MAX. */
static size_t
touched_lookup(const TouchedTable *table, uint64_t hash, const char *key, size_t len)
{
	size_t mask = table->index_cap - 1;

	if (table->index_cap == 0)
		return SIZE_MAX;
	for (size_t i = hash & mask; table->index[i] != 0; i = (i + 1) & mask)
	{
		const TouchedEntry *entry = &table->entries[table->index[i] - 1];

		if (entry->hash == hash && entry->length == len && memcmp(table->arena + entry->offset, key, len) == 0)
			return table->index[i] - 1;
	}
	return SIZE_MAX;
}

static TouchedTable *
touched_largest(TouchedKeys *touched)
{
	TouchedTable *largest = NULL;

	for (size_t i = 0; i < touched->tables_cap; i++)
	{
		TouchedTable *table = touched->tables[i];

		if (table != NULL && (largest == NULL || table->nentries > largest->nentries))
			largest = table;
	}
	return largest;
}

static bool
touched_push_pending(TouchedKeys *touched, TouchedTable *table, size_t entry)
{
	if (!touched_grow((void **) &touched->pending, &touched->pending_cap, touched->npending + 1,
					  sizeof(*touched->pending)))
		return false;
	touched->pending[touched->npending].table = table;
	touched->pending[touched->npending].entry = entry;
	touched->npending++;
	return true;
}

/* The key in the form the arena keeps; false on out of memory. */
static bool
touched_encode(TouchedKeys *touched, int ncols, const char *const *values, const uint32_t *lengths,
			   size_t *len)
{
	size_t need = 0;
	size_t used = 0;

	for (int i = 0; i < ncols; i++)
		need += sizeof(uint32_t) + (values[i] != NULL ? lengths[i] : 0);
	if (!touched_grow((void **) &touched->keybuf, &touched->keybuf_cap, need, 1))
		return false;
	for (int i = 0; i < ncols; i++)
	{
		uint32_t n = values[i] != NULL ? lengths[i] : TOUCHED_NULL_LENGTH;

		memcpy(touched->keybuf + used, &n, sizeof(n));
		used += sizeof(n);
		if (values[i] != NULL)
		{
			memcpy(touched->keybuf + used, values[i], lengths[i]);
			used += lengths[i];
		}
	}
	*len = used;
	return true;
}

static bool
touched_add_locked(TouchedKeys *touched, TouchedTable *table, int ncols, const char *const *columns,
				   const char *const *values, const uint32_t *lengths)
{
	size_t len;
	uint64_t hash;
	size_t found;
	TouchedEntry *entry;

	/* lost in this very transaction: a baseline that can use the table lies after it */
	if (table->lost == TOUCHED_PENDING)
		return true;
	if (table->ncols != 0 && !touched_same_columns(table, ncols, columns))
	{
		/* the key changed: old keys mean nothing now */
		touched_table_lose(touched, table);
		touched_table_free_columns(table);
	}
	if (table->ncols == 0 && !touched_set_columns(table, ncols, columns))
		return false;
	if (!touched_encode(touched, ncols, values, lengths, &len))
		return false;
	hash = touched_hash_bytes(TOUCHED_HASH_SEED, touched->keybuf, len);
	found = touched_lookup(table, hash, touched->keybuf, len);
	if (found != SIZE_MAX)
	{
		entry = &table->entries[found];
		if (entry->stamp != TOUCHED_PENDING)
		{
			entry->stamp = TOUCHED_PENDING;
			return touched_push_pending(touched, table, found);
		}
		return true;
	}
	if (touched->total >= touched->max_keys)
	{
		/* over the bound: the table with the most keys is compared in full */
		TouchedTable *largest = touched_largest(touched);

		if (largest != NULL)
			touched_table_lose(touched, largest);
		if (largest == table)
			return true;
	}
	if (!table->in_txn)
	{
		if (!touched_grow((void **) &touched->dirty, &touched->dirty_cap, touched->ndirty + 1, sizeof(TouchedTable *)))
			return false;
		touched->dirty[touched->ndirty++] = table;
		table->in_txn = true;
		table->txn_first = table->nentries;
	}
	if (len > UINT32_MAX - table->arena_used ||
		!touched_grow((void **) &table->arena, &table->arena_cap, table->arena_used + len, 1) ||
		!touched_grow((void **) &table->entries, &table->entries_cap, table->nentries + 1, sizeof(TouchedEntry)))
		return false;
	if ((table->nentries + 1) * 2 > table->index_cap &&
		!touched_index_rebuild(table, table->index_cap ? table->index_cap * 2 : 64))
		return false;
	memcpy(table->arena + table->arena_used, touched->keybuf, len);
	entry = &table->entries[table->nentries];
	entry->hash = hash;
	entry->stamp = TOUCHED_PENDING;
	entry->offset = (uint32_t) table->arena_used;
	entry->length = (uint32_t) len;
	table->arena_used += len;
	{
		size_t mask = table->index_cap - 1;
		size_t i = hash & mask;

		while (table->index[i] != 0)
			i = (i + 1) & mask;
		table->index[i] = (uint32_t) (table->nentries + 1);
	}
	table->nentries++;
	touched->total++;
	return true;
}

/*
 * The open transaction wrote a row of the table (or truncated it). Whatever becomes of its
 * keys, the table's last write moves to the transaction's end.
 */
static void
touched_mark_written(TouchedKeys *touched, TouchedTable *table)
{
	if (table->written_in_txn)
		return;
	if (!touched_grow((void **) &touched->written, &touched->written_cap, touched->nwritten + 1,
					  sizeof(TouchedTable *)))
	{
		touched->started = false;   /* a write that cannot be recorded: nothing is known any more */
		return;
	}
	touched->written[touched->nwritten++] = table;
	table->written_in_txn = true;
}

void
touched_start(TouchedKeys *touched, Lsn floor)
{
	if (touched == NULL)
		return;
	pthread_mutex_lock(&touched->mutex);
	if (!touched->started)
	{
		touched->started = true;
		touched->floor = floor;
	}
	pthread_mutex_unlock(&touched->mutex);
}

void
touched_add(TouchedKeys *touched, const char *schema, const char *name, int ncols,
			const char *const *columns, const char *const *values, const uint32_t *lengths)
{
	TouchedTable *table;

	if (touched == NULL)
		return;
	pthread_mutex_lock(&touched->mutex);
	table = touched_find_or_add(touched, schema, name);
	if (table != NULL)
		touched_mark_written(touched, table);
	/* out of memory: the table is given up, never a key silently dropped */
	if (table != NULL && !touched_add_locked(touched, table, ncols, columns, values, lengths))
		touched_table_lose(touched, table);
	if (table == NULL)
		touched->started = false;   /* cannot even name the table: nothing is known any more */
	pthread_mutex_unlock(&touched->mutex);
}

void
touched_lose(TouchedKeys *touched, const char *schema, const char *name)
{
	TouchedTable *table;

	if (touched == NULL)
		return;
	pthread_mutex_lock(&touched->mutex);
	table = touched_find_or_add(touched, schema, name);
	if (table != NULL)
	{
		touched_mark_written(touched, table);
		touched_table_lose(touched, table);
	}
	else
		touched->started = false;
	pthread_mutex_unlock(&touched->mutex);
}

/* Drops the entries stamped at or before the requested point; pending ones stay. */
static void
touched_table_prune(TouchedKeys *touched, TouchedTable *table)
{
	size_t kept = 0;
	size_t arena_used = 0;

	for (size_t e = 0; e < table->nentries; e++)
	{
		TouchedEntry entry = table->entries[e];

		if (entry.stamp <= table->prune_request)
			continue;
		/* the arena compacts in place: kept keys only move towards its start */
		memmove(table->arena + arena_used, table->arena + entry.offset, entry.length);
		entry.offset = (uint32_t) arena_used;
		arena_used += entry.length;
		table->entries[kept++] = entry;
	}
	touched->total -= table->nentries - kept;
	table->nentries = kept;
	table->arena_used = arena_used;
	if (table->prune_request > table->pruned)
		table->pruned = table->prune_request;
	if (!touched_index_rebuild(table, table->index_cap ? table->index_cap : 64))
		touched_table_lose(touched, table);
}

void
touched_commit(TouchedKeys *touched, Lsn end_lsn)
{
	if (touched == NULL)
		return;
	pthread_mutex_lock(&touched->mutex);
	for (size_t i = 0; i < touched->npending; i++)
	{
		TouchedPending *p = &touched->pending[i];

		/* a table lost in this transaction has fewer entries now: those are gone */
		if (p->entry < p->table->nentries && p->table->entries[p->entry].stamp == TOUCHED_PENDING)
			p->table->entries[p->entry].stamp = end_lsn;
	}
	touched->npending = 0;
	for (size_t i = 0; i < touched->ndirty; i++)
	{
		TouchedTable *table = touched->dirty[i];

		for (size_t e = table->txn_first; e < table->nentries; e++)
			if (table->entries[e].stamp == TOUCHED_PENDING)
				table->entries[e].stamp = end_lsn;
		table->in_txn = false;
	}
	touched->ndirty = 0;
	for (size_t i = 0; i < touched->nwritten; i++)
	{
		touched->written[i]->written = end_lsn;
		touched->written[i]->written_in_txn = false;
	}
	touched->nwritten = 0;
	for (size_t i = 0; (touched->lost_pending || touched->prune_pending) && i < touched->tables_cap; i++)
	{
		TouchedTable *table = touched->tables[i];

		if (table == NULL)
			continue;
		if (touched->lost_pending && table->lost == TOUCHED_PENDING)
			table->lost = end_lsn;
		/* nothing pending now, so entries can move */
		if (table->prune_request > table->pruned)
			touched_table_prune(touched, table);
	}
	touched->lost_pending = false;
	touched->prune_pending = false;
	pthread_mutex_unlock(&touched->mutex);
}

void
touched_prune(TouchedKeys *touched, const char *schema, const char *name, Lsn baseline)
{
	TouchedTable *table;

	if (touched == NULL)
		return;
	pthread_mutex_lock(&touched->mutex);
	table = touched_find(touched, schema, name);
	if (table != NULL && baseline > table->prune_request)
	{
		table->prune_request = baseline;
		touched->prune_pending = true;
	}
	pthread_mutex_unlock(&touched->mutex);
}

void
touched_delta_free(TouchedDelta *delta)
{
	for (int i = 0; i < delta->ncols; i++)
	{
		free(delta->columns[i]);
		free(delta->arrays[i]);
	}
	free(delta->columns);
	free(delta->arrays);
	memset(delta, 0, sizeof(*delta));
}

static bool
touched_delta_build(const TouchedTable *table, Lsn baseline, TouchedDelta *out)
{
	size_t *used = calloc((size_t) table->ncols, sizeof(size_t));
	size_t *cap = calloc((size_t) table->ncols, sizeof(size_t));
	bool ok = used != NULL && cap != NULL;

	out->ncols = table->ncols;
	out->columns = calloc((size_t) table->ncols, sizeof(char *));
	out->arrays = calloc((size_t) table->ncols, sizeof(char *));
	ok = ok && out->columns != NULL && out->arrays != NULL;
	for (int c = 0; ok && c < table->ncols; c++)
		ok = (out->columns[c] = strdup(table->columns[c])) != NULL;
	for (size_t e = 0; ok && e < table->nentries; e++)
	{
		const TouchedEntry *entry = &table->entries[e];
		const char *p = table->arena + entry->offset;

		if (entry->stamp <= baseline)
			continue;
		for (int c = 0; ok && c < table->ncols; c++)
		{
			uint32_t n;

			memcpy(&n, p, sizeof(n));
			p += sizeof(n);
			ok = text_array_append(&out->arrays[c], &used[c], &cap[c], n == TOUCHED_NULL_LENGTH ? NULL : p,
								   n == TOUCHED_NULL_LENGTH ? 0 : n);
			if (n != TOUCHED_NULL_LENGTH)
				p += n;
		}
		out->nkeys++;
	}
	for (int c = 0; ok && c < table->ncols; c++)
		ok = text_array_finish(&out->arrays[c], &used[c], &cap[c]);
	free(used);
	free(cap);
	return ok;
}

/* Whether everything the applier wrote since baseline is on record (mutex held). */
static bool
touched_covers(const TouchedKeys *touched, Lsn baseline)
{
	return touched->started && baseline >= touched->floor;
}

TouchedVerdict
touched_delta(TouchedKeys *touched, const char *schema, const char *name, Lsn baseline, TouchedDelta *out)
{
	TouchedVerdict verdict = TOUCHED_KNOWN;
	TouchedTable *table;

	memset(out, 0, sizeof(*out));
	if (touched == NULL)
		return TOUCHED_NO_START;
	pthread_mutex_lock(&touched->mutex);
	table = touched_find(touched, schema, name);
	if (!touched_covers(touched, baseline))
		verdict = TOUCHED_NO_START;
	else if (table == NULL)
		verdict = TOUCHED_KNOWN;
	else if (table->lost > baseline || table->pruned > baseline)
		verdict = TOUCHED_LOST;
	else if (!touched_delta_build(table, baseline, out))
		verdict = TOUCHED_NO_MEMORY;
	pthread_mutex_unlock(&touched->mutex);
	if (verdict != TOUCHED_KNOWN)
		touched_delta_free(out);
	return verdict;
}

TouchedVerdict
touched_written_since(TouchedKeys *touched, const char *schema, const char *name, Lsn baseline, Lsn *last)
{
	TouchedVerdict verdict = TOUCHED_KNOWN;
	TouchedTable *table;

	*last = 0;
	if (touched == NULL)
		return TOUCHED_NO_START;
	pthread_mutex_lock(&touched->mutex);
	table = touched_find(touched, schema, name);
	if (!touched_covers(touched, baseline))
		verdict = TOUCHED_NO_START;
	else if (table != NULL)
		*last = table->written_in_txn ? TOUCHED_PENDING : table->written;
	pthread_mutex_unlock(&touched->mutex);
	return verdict;
}

const char *
touched_verdict_text(TouchedVerdict verdict)
{
	switch (verdict)
	{
		case TOUCHED_KNOWN:
			return "touched keys known";
		case TOUCHED_NO_START:
			return "the last clean verify is older than this run of the agent";
		case TOUCHED_LOST:
			return "changed since the last clean verify in a way no key describes (TRUNCATE, "
				"a key column change or more touched keys than kept)";
		case TOUCHED_NO_MEMORY:
			return "out of memory";
	}
	return "unknown";
}

size_t
touched_count(TouchedKeys *touched)
{
	size_t n;

	if (touched == NULL)
		return 0;
	pthread_mutex_lock(&touched->mutex);
	n = touched->total;
	pthread_mutex_unlock(&touched->mutex);
	return n;
}
