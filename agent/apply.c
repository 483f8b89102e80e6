/*
 * The applier thread: reads the spool in commit order and applies it to the target in libpq
 * pipeline mode (prepared statements, consecutive rows grouped), several source transactions
 * per target transaction, committing the replication origin's progress in that same transaction.
 */
#include "switchyard/apply.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "switchyard/apply_group.h"
#include "switchyard/apply_sql.h"
#include "switchyard/catalog_sql.h"
#include "switchyard/conninfo.h"
#include "switchyard/log.h"
#include "switchyard/monotonic.h"
#include "switchyard/pgoutput.h"

#define APPLY_IDLE_WAIT_MS 100         /* spool wait when nothing is in flight: sees stop requests */
#define APPLY_RESULT_WAIT_MS 2         /* socket wait when results are due and the spool is dry */
#define APPLY_RING_SIZE 4096           /* statements in flight at most */
#define APPLY_INFLIGHT_BYTES (4 * 1024 * 1024)  /* and parameter bytes: bounds libpq's buffers */
#define APPLY_PUMP_EVERY 64            /* read results every so many statements */
#define APPLY_UNSENT_BYTES (32 * 1024) /* parameter bytes left in libpq's output buffer at most */
#define APPLY_DURABLE_INTERVAL_US INT64_C(1000000)
#define APPLY_DURABLE_QUEUE_SIZE 1024
#define APPLY_MAX_STATEMENTS 2000      /* prepared statements per session before DEALLOCATE ALL */
#define APPLY_CONNECT_TIMEOUT_US INT64_C(30000000)
#define APPLY_MISSING_ROW_LOG_US INT64_C(10000000)
#define APPLY_OPEN_GROUPS 16           /* row groups open at once, each of one relation and kind */
#define APPLY_UPDATE_SHAPES 3          /* update groups open per relation, one per column set */

typedef enum ApplyOutcome
{
	APPLY_OUTCOME_OK,      /* carry on */
	APPLY_OUTCOME_DONE,    /* stopped or reached endpos: the thread ends */
	APPLY_OUTCOME_RETRY,   /* target error: reconnect after a backoff */
	APPLY_OUTCOME_FATAL    /* spool or stream broken: retrying cannot help */
} ApplyOutcome;

/* A source relation from its latest Relation message, and what the target has for it. */
enum
{
	APPLY_TABLE_INSERTED,
	APPLY_TABLE_UPDATED,
	APPLY_TABLE_DELETED,
	APPLY_TABLE_TRUNCATED,
	APPLY_TABLE_KINDS
};

typedef struct ApplyRelation
{
	uint32_t relid;
	uint64_t generation;       /* distinguishes the statements of each version */
	char *nspname;
	char *relname;
	char *display;             /* "schema"."table" for logs */
	char replident;
	uint16_t ncols;
	ApplySqlColumn *columns;   /* names owned here */
	uint32_t *type_oids;
	int32_t *typmods;
	char **type_names;         /* the target's column types, for multi-row UPDATE casts */
	bool resolved;             /* looked up on the target during this session */
	bool prefetch_tried;       /* this session's catalog_all was asked (only once: it ages) */
	bool ordered;              /* the target fires triggers or rules on replicated rows: no reordering */
	bool updates_commute;      /* every unique index and exclusion constraint holds the whole key */
	int group_column;          /* a keyless table's NOT NULL column that leads an index, or -1 */
	int insert_group;          /* its open groups in Applier.groups, or -1 */
	int delete_group;
	int update_groups[APPLY_UPDATE_SHAPES];  /* one per set of columns (unchanged TOAST left out) */
	size_t counter;            /* its entry in Applier.counters */
	ApplySqlTable table;
} ApplyRelation;

/* Rows applied per table: counted as results arrive, made final by the batch's COMMIT. */
typedef struct ApplyTableCounter
{
	char *name;
	uint64_t applied[APPLY_TABLE_KINDS];   /* committed; read by other threads under the mutex */
	uint64_t pending[APPLY_TABLE_KINDS];   /* in the open target transaction */
} ApplyTableCounter;

typedef struct ApplyStatement
{
	uint64_t hash;
	uint8_t *key;              /* NULL: empty slot */
	size_t keylen;
	uint32_t id;               /* server-side name "sy_<id>" */
	int nparams;
} ApplyStatement;

typedef enum ApplyOp
{
	APPLY_OP_BEGIN,
	APPLY_OP_PREPARE,
	APPLY_OP_CHANGE,
	APPLY_OP_TRUNCATE,
	APPLY_OP_ORIGIN,
	APPLY_OP_COMMIT,
	APPLY_OP_ROLLBACK,
	APPLY_OP_SYNC,
	APPLY_OP_DURABLE,
	APPLY_OP_CATALOG,
	APPLY_OP_UTILITY,
	APPLY_OP_MARK              /* no server result: a PROGRESS position reached in order */
} ApplyOp;

/* One statement in flight; enough to name it when it fails. */
typedef struct ApplyPending
{
	ApplyOp op;
	char change;               /* 'I', 'U', 'D', 'T' */
	const ApplyRelation *rel;  /* stays valid: relations are replaced only with nothing in flight */
	Lsn lsn;                   /* the change's source LSN; COMMIT and MARK: position reached */
	Lsn origin_lsn;            /* COMMIT: end_lsn of the last source transaction */
	int64_t commit_time;
	uint32_t transactions;
	uint64_t changes;
	uint32_t rows;             /* CHANGE: rows in the statement */
	uint32_t statement_id;     /* CHANGE: the prepared statement sent, to name a bad value's column */
	size_t bytes;              /* parameter bytes sent with it */
} ApplyPending;

typedef struct ApplyDurableItem
{
	Lsn need;                  /* releasable once the origin is durable up to here */
	SpoolPosition position;
} ApplyDurableItem;

struct Applier
{
	ApplyOptions options;
	char *conninfo;
	char *origin_name;
	pthread_t thread;
	bool thread_started;
	atomic_bool stop_requested;

	pthread_mutex_t mutex;     /* guards stats and the counters' applied[] */
	ApplyStats stats;
	ApplyTableCounter *counters;
	size_t ncounters;
	size_t counters_cap;

	/* ---- everything below belongs to the apply thread ---- */
	PGconn *conn;
	SpoolReader *reader;
	PgoutputScratch *scratch;
	char error[512];           /* one-line summary of the last failure */

	ApplyRelation **relations; /* open addressing by relid */
	size_t relation_cap;
	size_t relation_count;
	uint64_t next_generation;

	ApplyStatement *statements;
	size_t statement_cap;
	size_t statement_count;
	uint32_t next_statement_id;
	uint8_t *keybuf;
	size_t keybuf_cap;

	ApplyPending ring[APPLY_RING_SIZE];
	size_t ring_head;
	size_t ring_count;
	bool head_done;            /* the head's result arrived; its NULL terminator is next */
	size_t inflight_bytes;
	size_t unsent_bytes;       /* parameter bytes given to libpq since its output was last all sent */
	int unflushed;             /* statements sent since the last Sync or Flush request */
	int since_pump;
	PGresult *catalog_result;
	PGresult *catalog_all;     /* every target table's columns, read when the session began */

	/* per-change scratch: plan and parameter arrays, grown to the widest relation */
	size_t param_cap;
	uint8_t *roles;
	const TupleValue **plan_params;
	const char **values;
	int *lengths;
	int *formats;

	/* the target transaction being built */
	bool batch_open;
	uint32_t batch_txns;
	uint64_t batch_changes;
	Lsn batch_origin_lsn;
	Lsn batch_reach;           /* applied position once it commits */
	int64_t batch_commit_time;
	SpoolPosition batch_position;

	/* the source transaction being read */
	bool in_txn;
	bool skipping;
	bool orphan;               /* read from its middle: the spool released its start */
	Lsn txn_final_lsn;
	uint64_t txn_changes;

	Lsn position;              /* applied or sent: commits before it are skipped */
	Lsn applied;               /* committed on the target */
	Lsn last_commit_end;
	bool endpos_hit;           /* read no further: everything up to endpos is sent */
	Lsn stop_before;           /* after an endpos straddler: the first transaction not to apply */
	bool interrupted;          /* a stop request cut a streamed transaction short */
	bool committed_this_session;

	ApplyDurableItem durable_queue[APPLY_DURABLE_QUEUE_SIZE];
	size_t durable_head;
	size_t durable_count;
	int64_t durable_due;
	bool durable_in_flight;

	int64_t missing_rows_logged_at;
	uint64_t missing_rows_suppressed;

	/*
	 * Rows waiting to be sent as multi-row statements, per relation: its updates, and its
	 * inserts deferred after them (apply_before_change says why that order is safe).
	 */
	ApplyGroup groups[APPLY_OPEN_GROUPS];
	int ordered_group;         /* an open group of an ordered relation, or -1 */
};

/* Sent often and identical every time: prepared once per session. */
static const struct
{
	const char *name;
	const char *sql;
	int nparams;
} apply_control[] = {
	{"sy_begin", "BEGIN", 0},
	{"sy_commit", "COMMIT", 0},
	{"sy_origin", "SELECT pg_catalog.pg_replication_origin_xact_setup($1::pg_catalog.pg_lsn, "
	 "$2::pg_catalog.timestamptz)", 2},
	{"sy_progress", "SELECT pg_catalog.pg_replication_origin_progress($1, true)", 1},
};

static bool
apply_should_stop(Applier *a)
{
	return atomic_load(&a->stop_requested);
}

/* Records a one-line failure summary for stats.last_error (the log has the details). */
static void
apply_set_error(Applier *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
apply_set_error(Applier *a, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(a->error, sizeof(a->error), fmt, args);
	va_end(args);
	/* keep it one line: libpq messages end in newlines */
	for (char *p = a->error; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	for (size_t n = strlen(a->error); n > 0 && a->error[n - 1] == ' '; n--)
		a->error[n - 1] = '\0';
}

static const char *
apply_first_line(const char *message, char *buf, size_t len)
{
	size_t n = strcspn(message ? message : "", "\n");

	if (n >= len)
		n = len - 1;
	memcpy(buf, message ? message : "", n);
	buf[n] = '\0';
	return buf;
}

/* ---- relation cache ------------------------------------------------------------------- */

static void
apply_relation_free(ApplyRelation *rel)
{
	if (rel == NULL)
		return;
	for (uint16_t i = 0; rel->columns && i < rel->ncols; i++)
		free((char *) rel->columns[i].name);
	for (uint16_t i = 0; rel->type_names && i < rel->ncols; i++)
		free(rel->type_names[i]);
	free(rel->type_names);
	free(rel->columns);
	free(rel->type_oids);
	free(rel->typmods);
	free(rel->nspname);
	free(rel->relname);
	free(rel->display);
	free(rel);
}

static size_t
apply_relation_slot(const Applier *a, uint32_t relid)
{
	size_t mask = a->relation_cap - 1;
	size_t i = (relid * UINT32_C(2654435761)) & mask;

	while (a->relations[i] != NULL && a->relations[i]->relid != relid)
		i = (i + 1) & mask;
	return i;
}

static ApplyRelation *
apply_relation_find(const Applier *a, uint32_t relid)
{
	if (a->relation_cap == 0)
		return NULL;
	return a->relations[apply_relation_slot(a, relid)];
}

static bool
apply_relation_grow(Applier *a)
{
	size_t old_cap = a->relation_cap;
	ApplyRelation **old = a->relations;
	size_t cap = old_cap ? old_cap * 2 : 64;

	a->relations = calloc(cap, sizeof(*a->relations));
	if (a->relations == NULL)
	{
		a->relations = old;
		return false;
	}
	a->relation_cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i] != NULL)
			a->relations[apply_relation_slot(a, old[i]->relid)] = old[i];
	free(old);
	return true;
}

static bool
apply_relation_same(const ApplyRelation *rel, const PgoutputMessage *m)
{
	if (strcmp(rel->nspname, m->relation.nspname) != 0 ||
		strcmp(rel->relname, m->relation.relname) != 0 ||
		rel->replident != m->relation.replident || rel->ncols != m->relation.ncols)
		return false;
	for (uint16_t i = 0; i < rel->ncols; i++)
	{
		const RelationColumn *c = &m->relation.columns[i];

		if (strcmp(rel->columns[i].name, c->name) != 0 || rel->columns[i].is_key != c->is_key ||
			rel->type_oids[i] != c->type_oid || rel->typmods[i] != c->typmod)
			return false;
	}
	return true;
}

/* The counter of a table by name: a table keeps its counts across new Relation messages. */
static bool
apply_counter_for(Applier *a, const char *name, size_t *index)
{
	char *copy;

	for (size_t i = 0; i < a->ncounters; i++)
		if (strcmp(a->counters[i].name, name) == 0)
		{
			*index = i;
			return true;
		}
	copy = strdup(name);
	if (copy == NULL)
		return false;
	pthread_mutex_lock(&a->mutex);
	if (a->ncounters == a->counters_cap)
	{
		size_t cap = a->counters_cap ? a->counters_cap * 2 : 32;
		ApplyTableCounter *bigger = realloc(a->counters, cap * sizeof(*bigger));

		if (bigger == NULL)
		{
			pthread_mutex_unlock(&a->mutex);
			free(copy);
			return false;
		}
		a->counters = bigger;
		a->counters_cap = cap;
	}
	memset(&a->counters[a->ncounters], 0, sizeof(a->counters[0]));
	a->counters[a->ncounters].name = copy;
	*index = a->ncounters++;
	pthread_mutex_unlock(&a->mutex);
	return true;
}

/* The batch's COMMIT arrived: what its statements did is applied now. */
static void
apply_counters_commit(Applier *a)
{
	pthread_mutex_lock(&a->mutex);
	for (size_t i = 0; i < a->ncounters; i++)
		for (int k = 0; k < APPLY_TABLE_KINDS; k++)
		{
			a->counters[i].applied[k] += a->counters[i].pending[k];
			a->counters[i].pending[k] = 0;
		}
	pthread_mutex_unlock(&a->mutex);
}

/* A new target transaction began: whatever an earlier one left pending was rolled back. */
static void
apply_counters_forget(Applier *a)
{
	for (size_t i = 0; i < a->ncounters; i++)
		memset(a->counters[i].pending, 0, sizeof(a->counters[i].pending));
}

static ApplyRelation *
apply_relation_new(Applier *a, const PgoutputMessage *m)
{
	ApplyRelation *rel = calloc(1, sizeof(*rel));
	uint16_t ncols = m->relation.ncols;

	if (rel == NULL)
		return NULL;
	rel->relid = m->relation.relid;
	rel->insert_group = -1;
	rel->delete_group = -1;
	for (int i = 0; i < APPLY_UPDATE_SHAPES; i++)
		rel->update_groups[i] = -1;
	rel->group_column = -1;
	rel->generation = ++a->next_generation;
	rel->replident = m->relation.replident;
	rel->ncols = ncols;
	rel->nspname = strdup(m->relation.nspname);
	rel->relname = strdup(m->relation.relname);
	rel->display = apply_sql_qualified_name(m->relation.nspname, m->relation.relname);
	rel->columns = calloc(ncols ? ncols : 1, sizeof(*rel->columns));
	rel->type_oids = calloc(ncols ? ncols : 1, sizeof(*rel->type_oids));
	rel->typmods = calloc(ncols ? ncols : 1, sizeof(*rel->typmods));
	rel->type_names = calloc(ncols ? ncols : 1, sizeof(*rel->type_names));
	if (!rel->nspname || !rel->relname || !rel->display || !rel->columns || !rel->type_oids ||
		!rel->typmods || !rel->type_names)
		goto fail;
	for (uint16_t i = 0; i < ncols; i++)
	{
		rel->columns[i].name = strdup(m->relation.columns[i].name);
		if (rel->columns[i].name == NULL)
			goto fail;
		rel->columns[i].is_key = m->relation.columns[i].is_key;
		rel->type_oids[i] = m->relation.columns[i].type_oid;
		rel->typmods[i] = m->relation.columns[i].typmod;
	}
	if (!apply_counter_for(a, rel->display, &rel->counter))
		goto fail;
	rel->table.nspname = rel->nspname;
	rel->table.relname = rel->relname;
	rel->table.replident = rel->replident;
	rel->table.ncols = ncols;
	rel->table.columns = rel->columns;
	return rel;

fail:
	apply_relation_free(rel);
	return NULL;
}

/* Makes the per-change arrays wide enough for ncols columns. */
static bool
apply_reserve_params(Applier *a, size_t ncols)
{
	size_t cap = ncols < 16 ? 16 : ncols;
	void *p;

	if (cap <= a->param_cap)
		return true;
	if ((p = realloc(a->roles, cap)) == NULL)
		return false;
	a->roles = p;
	if ((p = realloc(a->plan_params, 2 * cap * sizeof(*a->plan_params))) == NULL)
		return false;
	a->plan_params = p;
	if ((p = realloc(a->values, 2 * cap * sizeof(*a->values))) == NULL)
		return false;
	a->values = p;
	if ((p = realloc(a->lengths, 2 * cap * sizeof(*a->lengths))) == NULL)
		return false;
	a->lengths = p;
	if ((p = realloc(a->formats, 2 * cap * sizeof(*a->formats))) == NULL)
		return false;
	a->formats = p;
	a->param_cap = cap;
	return true;
}

/* ---- prepared statement cache ----------------------------------------------------------- */

static void
apply_statements_clear(Applier *a)
{
	for (size_t i = 0; i < a->statement_cap; i++)
		free(a->statements[i].key);
	free(a->statements);
	a->statements = NULL;
	a->statement_cap = 0;
	a->statement_count = 0;
}

static uint64_t
apply_hash(const uint8_t *data, size_t len)
{
	uint64_t h = UINT64_C(1469598103934665603);

	for (size_t i = 0; i < len; i++)
		h = (h ^ data[i]) * UINT64_C(1099511628211);
	return h;
}

static ApplyStatement *
apply_statement_slot(ApplyStatement *table, size_t cap, uint64_t hash, const uint8_t *key,
					 size_t keylen)
{
	size_t mask = cap - 1;
	size_t i = (size_t) hash & mask;

	while (table[i].key != NULL &&
		   !(table[i].hash == hash && table[i].keylen == keylen &&
			 memcmp(table[i].key, key, keylen) == 0))
		i = (i + 1) & mask;
	return &table[i];
}

static bool
apply_statement_grow(Applier *a)
{
	size_t cap = a->statement_cap ? a->statement_cap * 2 : 256;
	ApplyStatement *table = calloc(cap, sizeof(*table));

	if (table == NULL)
		return false;
	for (size_t i = 0; i < a->statement_cap; i++)
	{
		ApplyStatement *old = &a->statements[i];

		if (old->key != NULL)
			*apply_statement_slot(table, cap, old->hash, old->key, old->keylen) = *old;
	}
	free(a->statements);
	a->statements = table;
	a->statement_cap = cap;
	return true;
}

/* ---- the pipeline: ring of statements in flight ----------------------------------------- */

static ApplyPending *
apply_push(Applier *a, ApplyOp op)
{
	ApplyPending *p = &a->ring[(a->ring_head + a->ring_count) % APPLY_RING_SIZE];

	memset(p, 0, sizeof(*p));
	p->op = op;
	a->ring_count++;
	if (op != APPLY_OP_MARK && op != APPLY_OP_SYNC)
		a->unflushed++;
	if (op == APPLY_OP_SYNC)
		a->unflushed = 0;
	return p;
}

static void
apply_pop(Applier *a)
{
	a->inflight_bytes -= a->ring[a->ring_head].bytes;
	a->ring_head = (a->ring_head + 1) % APPLY_RING_SIZE;
	a->ring_count--;
	a->head_done = false;
}

static void
apply_publish_connected(Applier *a, bool connected)
{
	pthread_mutex_lock(&a->mutex);
	a->stats.connected = connected;
	pthread_mutex_unlock(&a->mutex);
}

/* The applied position moved (a commit confirmed, or a PROGRESS position reached in order). */
static void
apply_reach(Applier *a, Lsn lsn, const ApplyPending *commit)
{
	if (lsn > a->applied)
		a->applied = lsn;
	pthread_mutex_lock(&a->mutex);
	a->stats.applied_lsn = a->applied;
	if (commit != NULL)
	{
		if (commit->origin_lsn > a->stats.last_commit_lsn)
			a->stats.last_commit_lsn = commit->origin_lsn;
		a->stats.transactions += commit->transactions;
		a->stats.changes += commit->changes;
		a->stats.last_commit_time = commit->commit_time;
		a->stats.last_apply_time = pg_timestamp_now();
		a->stats.last_error[0] = '\0';
	}
	if (a->options.endpos != 0 && a->applied >= a->options.endpos)
		a->stats.reached_endpos = true;
	pthread_mutex_unlock(&a->mutex);
}

static void
apply_durable_push(Applier *a, Lsn need, SpoolPosition position)
{
	ApplyDurableItem *last = NULL;

	if (a->durable_count > 0)
		last = &a->durable_queue[(a->durable_head + a->durable_count - 1) % APPLY_DURABLE_QUEUE_SIZE];
	/* coalesce: the same need, or a full queue, just moves the last position forward */
	if (last != NULL && (last->need == need || a->durable_count == APPLY_DURABLE_QUEUE_SIZE))
	{
		if (need > last->need)
			last->need = need;
		last->position = position;
		return;
	}
	a->durable_queue[(a->durable_head + a->durable_count) % APPLY_DURABLE_QUEUE_SIZE] =
		(ApplyDurableItem) {need, position};
	a->durable_count++;
}

/* The origin is durable up to lsn on the target: hand the spool space back. */
static void
apply_durable_reached(Applier *a, Lsn durable)
{
	bool release = false;
	SpoolPosition position = {0, 0};

	while (a->durable_count > 0 && a->durable_queue[a->durable_head].need <= durable)
	{
		position = a->durable_queue[a->durable_head].position;
		release = true;
		a->durable_head = (a->durable_head + 1) % APPLY_DURABLE_QUEUE_SIZE;
		a->durable_count--;
	}
	pthread_mutex_lock(&a->mutex);
	if (durable > a->stats.durable_lsn)
		a->stats.durable_lsn = durable;
	pthread_mutex_unlock(&a->mutex);
	if (release)
		spool_release(a->options.spool, position);
}

static void
apply_describe(const ApplyPending *p, char *buf, size_t len)
{
	char lsn[LSN_FORMAT_SIZE];

	switch (p->op)
	{
		case APPLY_OP_PREPARE:
		case APPLY_OP_CHANGE:
		case APPLY_OP_TRUNCATE:
			if (p->rel == NULL)
			{
				snprintf(buf, len, "preparing transaction control statements");
				break;
			}
			if (p->rows > 1)
				snprintf(buf, len, "%s%s of %u rows on %s at source LSN %s and after",
						 p->op == APPLY_OP_PREPARE ? "preparing " : "",
						 pgoutput_kind_name((PgoutputKind) p->change), p->rows, p->rel->display,
						 lsn_format(p->lsn, lsn));
			else
				snprintf(buf, len, "%s%s on %s at source LSN %s",
						 p->op == APPLY_OP_PREPARE ? "preparing " : "",
						 pgoutput_kind_name((PgoutputKind) p->change), p->rel->display,
						 lsn_format(p->lsn, lsn));
			break;
		case APPLY_OP_ORIGIN:
		case APPLY_OP_COMMIT:
			snprintf(buf, len, "commit of source transactions up to %s",
					 lsn_format(p->origin_lsn ? p->origin_lsn : p->lsn, lsn));
			break;
		case APPLY_OP_CATALOG:
			snprintf(buf, len, "target catalog lookup of %s", p->rel ? p->rel->display : "?");
			break;
		case APPLY_OP_DURABLE:
			snprintf(buf, len, "replication origin progress query");
			break;
		default:
			snprintf(buf, len, "target transaction control");
			break;
	}
}

/* The column roles of prepared statement id, if it is still cached for rel's version. */
static const uint8_t *
apply_statement_roles(const Applier *a, uint32_t id, const ApplyRelation *rel)
{
	size_t keylen = sizeof(rel->generation) + 4 + rel->ncols;

	for (size_t i = 0; i < a->statement_cap; i++)
	{
		const ApplyStatement *s = &a->statements[i];

		if (s->key != NULL && s->id == id && s->keylen == keylen &&
			memcmp(s->key, &rel->generation, sizeof(rel->generation)) == 0)
			return s->key + sizeof(rel->generation) + 4;
	}
	return NULL;
}

/*
 * A value the target could not take (an input error at Bind, whose CONTEXT numbers the
 * parameter): names its column and target type, which usually differs from the source's.
 */
static void
apply_report_bad_parameter(const Applier *a, const ApplyPending *p, const char *context)
{
	int param = apply_sql_context_param(context);
	const uint8_t *roles;
	char which_row[64] = "";
	char *quoted;
	int row;
	int column;

	if (param == 0 || p->rel == NULL || (roles = apply_statement_roles(a, p->statement_id, p->rel)) == NULL)
		return;
	column = apply_sql_param_column(roles, p->rel->ncols, param, &row);
	if (column < 0)
		return;
	quoted = apply_sql_quote_identifier(p->rel->columns[column].name);
	if (p->rows > 1)
		snprintf(which_row, sizeof(which_row), " (row %d of the %u in the statement)", row + 1, p->rows);
	log_detail("the value is column %s of %s%s, of type %s on the target",
			   quoted ? quoted : p->rel->columns[column].name, p->rel->display, which_row,
			   p->rel->type_names[column] ? p->rel->type_names[column] : "?");
	log_hint("give the column the source's type on the target (ALTER TABLE %s ALTER COLUMN %s TYPE ...); "
			 "the applier retries", p->rel->display, quoted ? quoted : p->rel->columns[column].name);
	free(quoted);
}

/* Logs a failed statement once: the server's message, what it was, never its values. */
static void
apply_report_result_error(Applier *a, const ApplyPending *p, const PGresult *res)
{
	char what[256];
	char line[320];
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	apply_describe(p, what, sizeof(what));
	if (primary == NULL)
		primary = apply_first_line(PQresultErrorMessage(res), line, sizeof(line));
	if (PQresultStatus(res) == PGRES_PIPELINE_ABORTED)
		primary = "pipeline aborted by an earlier error";
	log_error("could not apply %s: %s", what, primary[0] ? primary : "unexpected result");
	/* the server's DETAIL can quote row values: leave it out */
	if (sqlstate != NULL)
		log_detail("SQLSTATE %s on the target", sqlstate);
	if (p->op == APPLY_OP_CHANGE)
		apply_report_bad_parameter(a, p, PQresultErrorField(res, PG_DIAG_CONTEXT));
	if (hint != NULL)
		log_hint("%s", hint);
	apply_set_error(a, "target error in %s: %s", what, primary);
}

static void
apply_report_connection_error(Applier *a, const char *doing)
{
	char line[320];
	char what[256] = "";

	if (a->ring_count > 0)
		apply_describe(&a->ring[a->ring_head], what, sizeof(what));
	apply_first_line(PQerrorMessage(a->conn), line, sizeof(line));
	if (what[0])
		log_error("lost the target connection while %s (in flight: %s): %s", doing, what, line);
	else
		log_error("lost the target connection while %s: %s", doing, line);
	apply_set_error(a, "target connection lost: %s", line);
}

static void
apply_missing_row(Applier *a, const ApplyPending *p, uint64_t missing)
{
	int64_t now = monotonic_us();
	char lsn[LSN_FORMAT_SIZE];

	/* the native worker skips such rows too; parity reports the difference */
	if (a->missing_rows_logged_at != 0 && now - a->missing_rows_logged_at < APPLY_MISSING_ROW_LOG_US)
	{
		a->missing_rows_suppressed += missing;
		return;
	}
	log_warning("%" PRIu64 " row%s to %s not found on the target in %s at source LSN %s%s", missing,
				missing == 1 ? "" : "s", p->change == 'U' ? "update" : "delete",
				p->rel ? p->rel->display : "?", lsn_format(p->lsn, lsn),
				p->rows > 1 ? " and after" : "");
	if (a->missing_rows_suppressed > 0)
		log_detail("%" PRIu64 " more missing rows since the last such message",
				   a->missing_rows_suppressed);
	a->missing_rows_logged_at = now;
	a->missing_rows_suppressed = 0;
}

static bool
apply_handle_result(Applier *a, const ApplyPending *p, PGresult *res)
{
	ExecStatusType status = PQresultStatus(res);
	bool ok = false;

	switch (p->op)
	{
		case APPLY_OP_SYNC:
			ok = (status == PGRES_PIPELINE_SYNC);
			break;
		case APPLY_OP_CATALOG:
			if (status == PGRES_TUPLES_OK)
			{
				PQclear(a->catalog_result);
				a->catalog_result = res;
				return true;
			}
			break;
		case APPLY_OP_DURABLE:
			if (status == PGRES_TUPLES_OK && PQntuples(res) == 1)
			{
				Lsn durable = 0;

				ok = PQgetisnull(res, 0, 0) || lsn_parse(PQgetvalue(res, 0, 0), &durable);
				a->durable_in_flight = false;
				if (ok)
					apply_durable_reached(a, durable);
			}
			break;
		case APPLY_OP_CHANGE:
			ok = (status == PGRES_COMMAND_OK);
			if (ok && p->change != 'I')
			{
				uint64_t expected = p->rows > 1 ? p->rows : 1;
				uint64_t done = strtoull(PQcmdTuples(res), NULL, 10);

				if (done < expected)
					apply_missing_row(a, p, expected - done);
			}
			if (ok && p->rel != NULL)
				a->counters[p->rel->counter].pending[p->change == 'I' ? APPLY_TABLE_INSERTED
													 : p->change == 'U' ? APPLY_TABLE_UPDATED
													 : APPLY_TABLE_DELETED] += p->changes > 1 ? p->changes : 1;
			break;
		case APPLY_OP_TRUNCATE:
			ok = (status == PGRES_COMMAND_OK);
			if (ok && p->rel != NULL)
				a->counters[p->rel->counter].pending[APPLY_TABLE_TRUNCATED]++;
			break;
		case APPLY_OP_BEGIN:
			ok = (status == PGRES_COMMAND_OK);
			if (ok)
				apply_counters_forget(a);
			break;
		case APPLY_OP_COMMIT:
			/* COMMIT of a failed transaction reports ROLLBACK */
			ok = (status == PGRES_COMMAND_OK && strcmp(PQcmdStatus(res), "COMMIT") == 0);
			if (ok)
			{
				a->committed_this_session = true;
				apply_counters_commit(a);
				apply_reach(a, p->lsn, p);
			}
			break;
		default:
			ok = (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK);
			break;
	}
	if (!ok)
		apply_report_result_error(a, p, res);
	PQclear(res);
	return ok;
}

/* Takes every result that has arrived, without blocking. */
static bool
apply_collect(Applier *a)
{
	while (a->ring_count > 0)
	{
		ApplyPending *p = &a->ring[a->ring_head];
		PGresult *res;

		if (p->op == APPLY_OP_MARK)
		{
			apply_reach(a, p->lsn, NULL);
			apply_pop(a);
			continue;
		}
		if (PQisBusy(a->conn))
			break;
		res = PQgetResult(a->conn);
		if (res == NULL)
		{
			/* the end of the head statement's results */
			if (!a->head_done)
			{
				if (PQstatus(a->conn) == CONNECTION_BAD)
				{
					apply_report_connection_error(a, "reading results");
					return false;
				}
				break;
			}
			apply_pop(a);
			continue;
		}
		if (a->head_done)
		{
			PQclear(res);
			log_error("unexpected second result from the target in pipeline mode");
			apply_set_error(a, "unexpected result from the target");
			return false;
		}
		if (!apply_handle_result(a, p, res))
			return false;
		/* a sync result has no NULL after it */
		if (p->op == APPLY_OP_SYNC)
			apply_pop(a);
		else
			a->head_done = true;
	}
	return true;
}

/* Sends buffered output, waits up to timeout_ms for the socket, and collects results. */
static bool
apply_pump(Applier *a, int timeout_ms)
{
	int pending = PQflush(a->conn);

	a->since_pump = 0;
	if (pending < 0)
	{
		apply_report_connection_error(a, "sending");
		return false;
	}
	if (timeout_ms != 0)
	{
		struct pollfd pfd = {.fd = PQsocket(a->conn), .events = POLLIN};

		if (pending)
			pfd.events |= POLLOUT;
		if (poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR)
		{
			apply_set_error(a, "poll on the target connection failed: %s", strerror(errno));
			log_error("%s", a->error);
			return false;
		}
	}
	if (!PQconsumeInput(a->conn))
	{
		apply_report_connection_error(a, "receiving");
		return false;
	}
	return apply_collect(a);
}

/* Without a Sync or Flush the server keeps results buffered: ask for them. */
static bool
apply_request_flush(Applier *a)
{
	if (a->unflushed == 0)
		return true;
	if (!PQsendFlushRequest(a->conn))
	{
		apply_report_connection_error(a, "sending");
		return false;
	}
	a->unflushed = 0;
	return true;
}

/* Waits until at most `limit` statements are in flight. */
static bool
apply_wait_in_flight(Applier *a, size_t limit)
{
	if (a->ring_count <= limit)
		return true;
	if (!apply_request_flush(a))
		return false;
	while (a->ring_count > limit)
		if (!apply_pump(a, 1000))
			return false;
	return true;
}

/* Room for n more statements in the ring, and in the byte budget. */
static bool
apply_reserve(Applier *a, size_t n)
{
	if (a->inflight_bytes > APPLY_INFLIGHT_BYTES)
	{
		if (!apply_request_flush(a))
			return false;
		while (a->inflight_bytes > APPLY_INFLIGHT_BYTES / 2)
			if (!apply_pump(a, 1000))
				return false;
	}
	if (a->ring_count + n <= APPLY_RING_SIZE)
		return true;
	return apply_wait_in_flight(a, APPLY_RING_SIZE / 2);
}

/*
 * Sends everything libpq holds, reading results while the socket is full so that the target
 * can go on writing them. libpq keeps unsent output in one buffer and moves what is left of it
 * to the front on every send attempt: left to grow while the target is busy, that buffer was
 * copied whole once per statement (a third of the applier's CPU in a catch-up).
 */
static bool
apply_drain_output(Applier *a)
{
	for (;;)
	{
		int pending = PQflush(a->conn);

		if (pending < 0)
		{
			apply_report_connection_error(a, "sending");
			return false;
		}
		if (pending == 0)
			break;
		if (!apply_pump(a, 1000))
			return false;
	}
	a->unsent_bytes = 0;
	return true;
}

static bool
apply_after_send(Applier *a)
{
	if (a->unsent_bytes >= APPLY_UNSENT_BYTES && !apply_drain_output(a))
		return false;
	if (++a->since_pump >= APPLY_PUMP_EVERY)
		return apply_pump(a, 0);
	return true;
}

/* Sends one statement without parameters (transaction control, TRUNCATE, DEALLOCATE). */
static bool
apply_send_simple(Applier *a, ApplyOp op, const char *sql, ApplyPending **out)
{
	ApplyPending *p;

	if (!apply_reserve(a, 1))
		return false;
	if (!PQsendQueryParams(a->conn, sql, 0, NULL, NULL, NULL, NULL, 0))
	{
		apply_report_connection_error(a, "sending");
		return false;
	}
	p = apply_push(a, op);
	if (out != NULL)
		*out = p;
	return apply_after_send(a);
}

static bool
apply_send_sync(Applier *a)
{
	if (!apply_reserve(a, 1))
		return false;
	if (!PQpipelineSync(a->conn))
	{
		apply_report_connection_error(a, "sending");
		return false;
	}
	apply_push(a, APPLY_OP_SYNC);
	return true;
}

/* Sends one of apply_control[] by its prepared name. */
static bool
apply_send_control(Applier *a, ApplyOp op, int which, const char *const *values, ApplyPending **out)
{
	ApplyPending *p;

	if (!apply_reserve(a, 1))
		return false;
	if (!PQsendQueryPrepared(a->conn, apply_control[which].name, apply_control[which].nparams,
							 values, NULL, NULL, 0))
	{
		apply_report_connection_error(a, "sending");
		return false;
	}
	p = apply_push(a, op);
	if (out != NULL)
		*out = p;
	return apply_after_send(a);
}

enum { APPLY_CONTROL_BEGIN, APPLY_CONTROL_COMMIT, APPLY_CONTROL_ORIGIN, APPLY_CONTROL_PROGRESS };

static bool
apply_prepare_control(Applier *a)
{
	for (size_t i = 0; i < sizeof(apply_control) / sizeof(apply_control[0]); i++)
	{
		if (!apply_reserve(a, 1))
			return false;
		if (!PQsendPrepare(a->conn, apply_control[i].name, apply_control[i].sql,
						   apply_control[i].nparams, NULL))
		{
			apply_report_connection_error(a, "sending");
			return false;
		}
		apply_push(a, APPLY_OP_PREPARE);
	}
	return true;
}

/* ---- target transactions ---------------------------------------------------------------- */

static bool apply_flush_group(Applier *a) __attribute__((warn_unused_result));
static bool apply_send_updates(Applier *a, ApplyRelation *rel) __attribute__((warn_unused_result));
static void apply_discard_groups(Applier *a);

static bool
apply_open_batch(Applier *a)
{
	if (a->batch_open)
		return true;
	if (!apply_send_control(a, APPLY_OP_BEGIN, APPLY_CONTROL_BEGIN, NULL, NULL))
		return false;
	a->batch_open = true;
	a->batch_txns = 0;
	a->batch_changes = 0;
	a->batch_origin_lsn = 0;
	a->batch_reach = 0;
	return true;
}

static bool
apply_send_durable_query(Applier *a)
{
	const char *values[1] = {a->origin_name};

	if (!apply_send_control(a, APPLY_OP_DURABLE, APPLY_CONTROL_PROGRESS, values, NULL))
		return false;
	a->durable_in_flight = true;
	a->durable_due = monotonic_us() + APPLY_DURABLE_INTERVAL_US;
	/* outside a batch it runs in its own implicit transaction */
	if (!a->batch_open)
		return apply_send_sync(a);
	return true;
}

static bool
apply_durable_tick(Applier *a)
{
	if (a->durable_in_flight || monotonic_us() < a->durable_due)
		return true;
	if (a->durable_count == 0)
	{
		a->durable_due = monotonic_us() + APPLY_DURABLE_INTERVAL_US;
		return true;
	}
	return apply_send_durable_query(a);
}

/* Records the origin's progress and commits: data and position become durable together. */
static bool
apply_commit_batch(Applier *a)
{
	ApplyPending *p;

	if (!a->batch_open)
		return true;
	if (!apply_flush_group(a))
		return false;
	if (a->batch_txns > 0)
	{
		char lsn[LSN_FORMAT_SIZE];
		char ts[APPLY_SQL_TIMESTAMP_SIZE];
		const char *values[2] = {lsn_format(a->batch_origin_lsn, lsn),
								 apply_sql_format_timestamp(a->batch_commit_time, ts)};

		if (!apply_send_control(a, APPLY_OP_ORIGIN, APPLY_CONTROL_ORIGIN, values, &p))
			return false;
		p->origin_lsn = a->batch_origin_lsn;
	}
	if (!apply_send_control(a, APPLY_OP_COMMIT, APPLY_CONTROL_COMMIT, NULL, &p))
		return false;
	p->lsn = a->batch_reach;
	p->origin_lsn = a->batch_origin_lsn;
	p->commit_time = a->batch_commit_time;
	p->transactions = a->batch_txns;
	p->changes = a->batch_changes;
	if (!apply_send_sync(a))
		return false;
	if (a->batch_txns > 0)
		apply_durable_push(a, a->batch_origin_lsn, a->batch_position);
	a->batch_open = false;
	a->batch_txns = 0;
	a->batch_changes = 0;
	if (PQflush(a->conn) < 0)
	{
		apply_report_connection_error(a, "sending");
		return false;
	}
	return true;
}

/* Abandons the open target transaction and waits until nothing is in flight. */
static bool
apply_rollback_batch(Applier *a)
{
	apply_discard_groups(a);
	if (a->batch_open)
	{
		if (!apply_send_simple(a, APPLY_OP_ROLLBACK, "ROLLBACK", NULL) || !apply_send_sync(a))
			return false;
		a->batch_open = false;
		a->batch_txns = 0;
		a->batch_changes = 0;
	}
	a->in_txn = false;
	a->skipping = false;
	a->orphan = false;
	return apply_wait_in_flight(a, 0);
}

/* A position with no target write: reached once everything sent before it commits. */
static void
apply_progress(Applier *a, Lsn lsn)
{
	if (lsn <= a->position)
		return;
	a->position = lsn;
	if (a->batch_open)
		a->batch_reach = lsn;
	else if (a->ring_count == 0)
		apply_reach(a, lsn, NULL);
	else
		apply_push(a, APPLY_OP_MARK)->lsn = lsn;
}

/* ---- resolving a relation against the target catalog ----------------------------------- */

/*
 * The target's columns of one table, with whether each type has a default btree or hash
 * equality (following domains to their base and arrays to their element; enums, ranges
 * and multiranges always have one). Composite types and json, point, xml... have none.
 */
/*
 * Per table, once: how many unique indexes and exclusion constraints its rows are under (its
 * own, or its leaf partitions'), and the key column names of each unique index, repeated
 * across them. Found through pg_index's index on indrelid: with 2,000 tables of 10 columns
 * the whole query took 2.0 s here, against 1.7 s without these columns and 4.6 s when the
 * same was looked up per column.
 */
#define APPLY_CATALOG_UNIQUE \
	" LEFT JOIN LATERAL (WITH idx AS (SELECT i.indrelid, i.indkey, i.indnkeyatts, i.indisunique" \
	"   FROM pg_catalog.pg_index i WHERE i.indrelid = ANY (ARRAY(SELECT c.oid WHERE c.relkind = 'r'" \
	"     UNION SELECT relid FROM pg_catalog.pg_partition_tree(c.oid) WHERE isleaf AND c.relkind = 'p'))" \
	"   AND (i.indisunique OR i.indisexclusion))" \
	"  SELECT (SELECT count(*) FROM idx) AS total," \
	"   ARRAY(SELECT x.attname::text FROM idx JOIN pg_catalog.pg_attribute x ON x.attrelid = idx.indrelid" \
	"     AND x.attnum = ANY (idx.indkey[0:idx.indnkeyatts - 1]) WHERE idx.indisunique) AS names) u ON true"
/*
 * Per column: relkind, name, type, has_equality, fires (triggers or rules in replica mode),
 * leads_index (it may be a keyless table's group column: TOUCHED_GROUP_COLUMN_SQL),
 * unique_total (unique indexes and exclusion constraints of the table or of its leaf
 * partitions) and unique_with (how many of those unique indexes have this column as a key).
 */
#define APPLY_CATALOG_SELECT \
	"SELECT c.relkind, a.attname, " CATALOG_CAST_TYPE_NAME_SQL("a.atttypid") ", " \
	" (WITH RECURSIVE chain(typ, depth) AS (" \
	"    SELECT a.atttypid, 0" \
	"   UNION ALL" \
	"    SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END, chain.depth + 1" \
	"    FROM chain JOIN pg_catalog.pg_type t ON t.oid = chain.typ" \
	"    WHERE (t.typtype = 'd' OR (t.typcategory = 'A' AND t.typelem <> 0)) AND chain.depth < 8)" \
	"  SELECT bool_and(t.typtype IN ('e', 'r', 'm') OR EXISTS (" \
	"    SELECT 1 FROM pg_catalog.pg_opclass oc JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod" \
	"    WHERE oc.opcdefault AND am.amname IN ('btree', 'hash')" \
	"      AND (oc.opcintype = t.oid OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast k" \
	"        WHERE k.castsource = t.oid AND k.casttarget = oc.opcintype AND k.castmethod = 'b'" \
	"        AND k.castcontext = 'i'))))" \
	"  FROM chain JOIN pg_catalog.pg_type t ON t.oid = chain.typ" \
	"  WHERE NOT (t.typtype = 'd' OR (t.typcategory = 'A' AND t.typelem <> 0))) AS has_equality, " \
	" EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgenabled IN ('A', 'R')" \
	"   AND (g.tgrelid = c.oid OR g.tgrelid IN (SELECT relid FROM pg_catalog.pg_partition_tree(c.oid))))" \
	" OR EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite w WHERE w.ev_class = c.oid" \
	"   AND w.ev_enabled IN ('A', 'R')) AS fires, " \
	TOUCHED_GROUP_COLUMN_SQL("c.oid") " AS leads_index, " \
	" u.total AS unique_total, cardinality(array_positions(u.names, a.attname::text)) AS unique_with"
#define APPLY_CATALOG_FROM \
	" FROM pg_catalog.pg_class c" \
	" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace" \
	APPLY_CATALOG_UNIQUE \
	" LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"

static const char apply_catalog_sql[] =
	APPLY_CATALOG_SELECT APPLY_CATALOG_FROM
	" WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'f')"
	" ORDER BY a.attnum";

/*
 * The same for every table of the target at once, when the applier connects: the first
 * change of each table then needs no round trip (columns 8 and 9: schema and name).
 */
static const char apply_catalog_all_sql[] =
	APPLY_CATALOG_SELECT ", n.nspname, c.relname" APPLY_CATALOG_FROM
	" WHERE c.relkind IN ('r', 'p', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
	" AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
	" ORDER BY n.nspname, c.relname, a.attnum";

/* Runs one catalog query inside the pipeline and waits for its rows (rel: for messages). */
static bool
apply_catalog_exec(Applier *a, const char *sql, int nparams, const char *const *values, ApplyRelation *rel,
				   PGresult **out)
{
	ApplyPending *p;

	*out = NULL;
	if (!apply_flush_group(a) || !apply_wait_in_flight(a, 0))
		return false;
	if (!PQsendQueryParams(a->conn, sql, nparams, NULL, values, NULL, NULL, 0))
	{
		apply_report_connection_error(a, "sending");
		return false;
	}
	p = apply_push(a, APPLY_OP_CATALOG);
	p->rel = rel;
	if (!apply_wait_in_flight(a, 0))
		return false;
	*out = a->catalog_result;
	a->catalog_result = NULL;
	return *out != NULL;
}

static bool
apply_catalog_query(Applier *a, ApplyRelation *rel, PGresult **out)
{
	const char *values[2] = {rel->nspname[0] ? rel->nspname : "pg_catalog", rel->relname};

	return apply_catalog_exec(a, apply_catalog_sql, 2, values, rel, out);
}

/* Every target table's catalog rows in one round trip, before the first change needs them. */
static bool
apply_prefetch_catalog(Applier *a)
{
	PQclear(a->catalog_all);
	a->catalog_all = NULL;
	return apply_catalog_exec(a, apply_catalog_all_sql, 0, NULL, NULL, &a->catalog_all);
}

/* Compares row's schema and name (columns 6, 7) with the relation's: as strcmp does. */
static int
apply_prefetch_compare(const PGresult *res, int row, const char *nspname, const char *relname)
{
	int c = strcmp(PQgetvalue(res, row, 8), nspname);

	return c != 0 ? c : strcmp(PQgetvalue(res, row, 9), relname);
}

/* The prefetched rows of rel: *first and *rows; false when it holds none. */
static bool
apply_prefetched(const Applier *a, const ApplyRelation *rel, int *first, int *rows)
{
	const PGresult *res = a->catalog_all;
	const char *nspname = rel->nspname[0] ? rel->nspname : "pg_catalog";
	int low = 0;
	int high = res != NULL ? PQntuples(res) : 0;
	int end;

	/* sorted by schema and name, which compare as bytes (type name has collation "C") */
	while (low < high)
	{
		int mid = low + (high - low) / 2;

		if (apply_prefetch_compare(res, mid, nspname, rel->relname) < 0)
			low = mid + 1;
		else
			high = mid;
	}
	if (res == NULL || low >= PQntuples(res) || apply_prefetch_compare(res, low, nspname, rel->relname) != 0)
		return false;
	for (end = low; end < PQntuples(res) && apply_prefetch_compare(res, end, nspname, rel->relname) == 0; end++)
		;
	*first = low;
	*rows = end - low;
	return true;
}

/* Maps the stream's columns to the target's by name; the target must have each one. */
/*
 * Maps the stream's columns to the target's from the catalog rows [first, first + rows) of
 * res. report: a missing table or column is an error (else the caller asks the server again).
 */
static bool
apply_resolve_from(Applier *a, ApplyRelation *rel, Lsn lsn, const PGresult *res, int first, int rows, bool report)
{
	char lsnbuf[LSN_FORMAT_SIZE];

	if (rows == 0)
	{
		if (!report)
			return false;
		log_error("relation %s does not exist on the target", rel->display);
		log_detail("the source sends changes for it (source LSN %s)", lsn_format(lsn, lsnbuf));
		log_hint("create the table on the target with the source's definition; the applier retries");
		apply_set_error(a, "relation %s does not exist on the target", rel->display);
		return false;
	}
	rel->group_column = -1;
	rel->updates_commute = true;
	for (uint16_t i = 0; i < rel->ncols; i++)
	{
		ApplySqlColumn *column = &rel->columns[i];
		int row = -1;

		for (int r = first; r < first + rows && row < 0; r++)
			if (!PQgetisnull(res, r, 1) && strcmp(PQgetvalue(res, r, 1), column->name) == 0)
				row = r;
		if (row < 0)
		{
			char *quoted;

			if (!report)
				return false;
			quoted = apply_sql_quote_identifier(column->name);
			log_error("column %s of relation %s does not exist on the target",
					  quoted ? quoted : column->name, rel->display);
			log_detail("the source sends it since its latest relation message (source LSN %s)",
					   lsn_format(lsn, lsnbuf));
			log_hint("add the column on the target (ALTER TABLE %s ADD COLUMN %s ...); the applier retries",
					 rel->display, quoted ? quoted : column->name);
			apply_set_error(a, "column %s of relation %s does not exist on the target",
							quoted ? quoted : column->name, rel->display);
			free(quoted);
			return false;
		}
		column->text_compare = PQgetisnull(res, row, 3) || PQgetvalue(res, row, 3)[0] != 't';
		free(rel->type_names[i]);
		rel->type_names[i] = strdup(PQgetvalue(res, row, 2));
		column->type_name = rel->type_names[i];
		if (rel->group_column < 0 && !column->text_compare && !PQgetisnull(res, row, 5) &&
			PQgetvalue(res, row, 5)[0] == 't')
			rel->group_column = i;
		/* a unique index without this key column could see two rows hold one value mid-statement */
		if (column->is_key && strcmp(PQgetvalue(res, row, 6), PQgetvalue(res, row, 7)) != 0)
			rel->updates_commute = false;
	}
	rel->table.partitioned = (PQgetvalue(res, first, 0)[0] == 'p');
	/* triggers or rules enabled for replicas would see rows out of order if we regrouped */
	rel->ordered = (PQgetvalue(res, first, 4)[0] == 't');
	if (rel->ordered)
		log_info("the target fires triggers or rules on %s in replica mode: its changes keep their order",
				 rel->display);
	rel->resolved = true;
	return true;
}

/* Maps the stream's columns to the target's by name; the target must have each one. */
static bool
apply_resolve(Applier *a, ApplyRelation *rel, Lsn lsn)
{
	PGresult *res = NULL;
	bool ok;
	int first;
	int rows;

	/* the session's first look at a table uses what was read when it began, if it fits */
	if (!rel->prefetch_tried)
	{
		rel->prefetch_tried = true;
		if (apply_prefetched(a, rel, &first, &rows) &&
			apply_resolve_from(a, rel, lsn, a->catalog_all, first, rows, false))
			return true;
	}
	if (!apply_catalog_query(a, rel, &res))
	{
		PQclear(res);
		return false;
	}
	ok = apply_resolve_from(a, rel, lsn, res, 0, PQntuples(res), true);
	PQclear(res);
	return ok;
}

/* A Relation message: always replace the cached entry (unless nothing changed). */
static bool
apply_relation_message(Applier *a, const PgoutputMessage *m)
{
	ApplyRelation *old = apply_relation_find(a, m->relation.relid);
	ApplyRelation *rel;

	/* repeated in every segment preamble and after every reconnect of the receiver */
	if (old != NULL && apply_relation_same(old, m))
		return true;
	/* statements in flight, and inserts waiting to be sent, point at the old entry */
	if (old != NULL && (!apply_flush_group(a) || !apply_wait_in_flight(a, 0)))
		return false;
	if (old == NULL && (a->relation_count + 1) * 2 > a->relation_cap && !apply_relation_grow(a))
		goto oom;
	rel = apply_relation_new(a, m);
	if (rel == NULL || !apply_reserve_params(a, rel->ncols))
	{
		apply_relation_free(rel);
		goto oom;
	}
	a->relations[apply_relation_slot(a, rel->relid)] = rel;
	if (old == NULL)
		a->relation_count++;
	apply_relation_free(old);
	return true;

oom:
	log_error("out of memory caching relation \"%s\".\"%s\"", m->relation.nspname, m->relation.relname);
	apply_set_error(a, "out of memory");
	return false;
}

/* ---- changes ------------------------------------------------------------------------------ */

/* The cache key of a statement shape, built in a->keybuf; 0 when out of memory. */
static size_t
apply_statement_key(Applier *a, const ApplyRelation *rel, const ApplySqlPlan *plan, int rows)
{
	size_t keylen = sizeof(rel->generation) + 4 + rel->ncols;
	uint8_t *key;

	if (keylen > a->keybuf_cap)
	{
		uint8_t *grown = realloc(a->keybuf, keylen);

		if (grown == NULL)
			return 0;
		a->keybuf = grown;
		a->keybuf_cap = keylen;
	}
	key = a->keybuf;
	memcpy(key, &rel->generation, sizeof(rel->generation));
	key += sizeof(rel->generation);
	key[0] = (uint8_t) plan->kind;
	key[1] = plan->full;
	key[2] = (uint8_t) (rows & 0xff);
	key[3] = (uint8_t) (rows >> 8);
	memcpy(key + 4, plan->roles, rel->ncols);
	return keylen;
}

/*
 * The prepared statement for this relation version, kind, column roles and row count
 * (0 or 1: one row); prepares it on first use.
 */
static bool
apply_statement_for(Applier *a, ApplyRelation *rel, const ApplySqlPlan *plan, int rows, Lsn lsn,
					const ApplyStatement **out)
{
	size_t keylen = apply_statement_key(a, rel, plan, rows);
	ApplyStatement *slot;
	uint64_t hash;
	char name[24];
	char *sql = NULL;
	ApplyPending *p;
	bool ok = false;
	bool oom = false;

	if (keylen == 0)
	{
		oom = true;
		goto cleanup;
	}
	hash = apply_hash(a->keybuf, keylen);
	if (a->statement_cap > 0)
	{
		slot = apply_statement_slot(a->statements, a->statement_cap, hash, a->keybuf, keylen);
		if (slot->key != NULL)
		{
			*out = slot;
			ok = true;
			goto cleanup;
		}
	}

	/* a new shape; bound what the server keeps for this session */
	if (a->statement_count >= APPLY_MAX_STATEMENTS)
	{
		if (!apply_send_simple(a, APPLY_OP_UTILITY, "DEALLOCATE ALL", NULL) ||
			!apply_prepare_control(a))
			goto cleanup;
		apply_statements_clear(a);
	}
	if (plan->kind == APPLY_SQL_INSERT)
		sql = apply_sql_build_insert(&rel->table, plan, rows);
	else if (rows > 1)
		sql = apply_sql_build_rows(&rel->table, plan, rows);
	else
		sql = apply_sql_build(&rel->table, plan);
	if (sql == NULL || ((a->statement_count + 1) * 2 > a->statement_cap && !apply_statement_grow(a)))
	{
		oom = true;
		goto cleanup;
	}
	slot = apply_statement_slot(a->statements, a->statement_cap, hash, a->keybuf, keylen);
	slot->key = malloc(keylen);
	if (slot->key == NULL)
	{
		oom = true;
		goto cleanup;
	}
	memcpy(slot->key, a->keybuf, keylen);
	slot->keylen = keylen;
	slot->hash = hash;
	slot->id = ++a->next_statement_id;
	slot->nparams = plan->nparams;
	a->statement_count++;
	snprintf(name, sizeof(name), "sy_%u", slot->id);
	if (!apply_reserve(a, 1))
		goto cleanup;
	log_debug("preparing %s: %s", name, sql);
	/* no parameter types: the target infers each from its column */
	if (!PQsendPrepare(a->conn, name, sql, plan->nparams * (rows > 1 ? rows : 1), NULL))
	{
		apply_report_connection_error(a, "sending");
		goto cleanup;
	}
	p = apply_push(a, APPLY_OP_PREPARE);
	p->change = (char) plan->kind;
	p->rel = rel;
	p->lsn = lsn;
	p->rows = (uint32_t) rows;
	*out = slot;
	ok = true;

cleanup:
	if (oom)
	{
		log_error("out of memory preparing a statement for %s", rel->display);
		apply_set_error(a, "out of memory");
	}
	free(sql);
	return ok;
}

static ApplyRelation *
apply_relation_for(Applier *a, uint32_t relid, Lsn lsn, bool *fatal)
{
	ApplyRelation *rel = apply_relation_find(a, relid);
	char lsnbuf[LSN_FORMAT_SIZE];

	*fatal = false;
	if (rel == NULL)
	{
		log_error("change for relation %u without a relation message at source LSN %s", relid,
				  lsn_format(lsn, lsnbuf));
		apply_set_error(a, "change for unknown relation %u at source LSN %s", relid, lsnbuf);
		*fatal = true;
		return NULL;
	}
	if (!rel->resolved && !apply_resolve(a, rel, lsn))
		return NULL;
	return rel;
}

/* Sends one open group as one INSERT ... VALUES (...), (...) or UPDATE ... FROM (VALUES ...). */
static bool
apply_send_group(Applier *a, int slot)
{
	ApplyGroup *g = &a->groups[slot];
	ApplyRelation *rel = g->owner;
	int rows = g->rows;
	int nparams = rows * g->width;
	ApplySqlPlan plan = {.kind = (ApplySqlKind) g->kind, .roles = g->roles, .nparams = g->width};
	const ApplyStatement *stmt = NULL;
	ApplyPending *p;
	char name[24];

	if (rel == NULL)
		return true;
	/* the relation's inserts were deferred after its updates and deletes: those go first */
	if (g->kind == APPLY_SQL_INSERT && !apply_send_updates(a, rel))
		return false;
	if (g->kind == APPLY_SQL_INSERT)
		rel->insert_group = -1;
	if (g->kind == APPLY_SQL_DELETE)
		rel->delete_group = -1;
	for (int i = 0; i < APPLY_UPDATE_SHAPES; i++)
		if (rel->update_groups[i] == slot)
			rel->update_groups[i] = -1;
	if (a->ordered_group == slot)
		a->ordered_group = -1;
	/* one update or delete is the ordinary single-row statement */
	if (!apply_statement_for(a, rel, &plan, plan.kind != APPLY_SQL_INSERT && rows == 1 ? 0 : rows,
							 g->first_lsn, &stmt))
		return false;
	if (!apply_reserve(a, 1))
		return false;
	snprintf(name, sizeof(name), "sy_%u", stmt->id);
	if (!PQsendQueryPrepared(a->conn, name, nparams, apply_group_values(g), g->lengths,
							 g->binary ? g->formats : NULL, 0))
	{
		apply_report_connection_error(a, "sending");
		return false;
	}
	p = apply_push(a, APPLY_OP_CHANGE);
	p->change = g->kind;
	p->rel = rel;
	p->lsn = g->first_lsn;
	p->rows = (uint32_t) rows;
	p->statement_id = stmt->id;
	p->changes = (uint64_t) g->changes;
	p->bytes = g->len;
	a->inflight_bytes += p->bytes;
	a->unsent_bytes += p->bytes;
	apply_group_reset(g);
	return apply_after_send(a);
}

/*
 * Sends rel's open update and delete groups, which hold distinct rows and so go in any order
 * (deletes free unique values, and updates are grouped only where no unique value moves).
 */
static bool
apply_send_updates(Applier *a, ApplyRelation *rel)
{
	for (int i = 0; i < APPLY_UPDATE_SHAPES; i++)
		if (rel->update_groups[i] >= 0 && !apply_send_group(a, rel->update_groups[i]))
			return false;
	return rel->delete_group < 0 || apply_send_group(a, rel->delete_group);
}

/* Sends every open group: a barrier before anything that must come after all of them. */
static bool
apply_flush_group(Applier *a)
{
	for (int i = 0; i < APPLY_OPEN_GROUPS; i++)
		if (a->groups[i].owner != NULL && !apply_send_group(a, i))
			return false;
	return true;
}

/* Forgets the open groups unsent: their target transaction is being abandoned. */
static void
apply_discard_groups(Applier *a)
{
	for (int i = 0; i < APPLY_OPEN_GROUPS; i++)
	{
		ApplyRelation *rel = a->groups[i].owner;

		if (rel != NULL)
		{
			rel->insert_group = -1;
			rel->delete_group = -1;
			for (int j = 0; j < APPLY_UPDATE_SHAPES; j++)
				rel->update_groups[j] = -1;
		}
		apply_group_reset(&a->groups[i]);
	}
	a->ordered_group = -1;
}

/* A free group slot; when every one is taken, the fullest is sent to make room. */
static int
apply_free_group(Applier *a)
{
	int victim = 0;

	for (int i = 0; i < APPLY_OPEN_GROUPS; i++)
	{
		if (a->groups[i].owner == NULL)
			return i;
		if (a->groups[i].rows > a->groups[victim].rows)
			victim = i;
	}
	return apply_send_group(a, victim) ? victim : -1;
}

/* How many identity values an update or delete has: its MATCH values follow its SET values. */
static int
apply_match_count(const ApplyRelation *rel, const ApplySqlPlan *plan)
{
	int nset = 0;

	for (uint16_t i = 0; i < rel->ncols; i++)
		nset += (plan->roles[i] & APPLY_SQL_ROLE_SET) != 0;
	return plan->nparams - nset;
}

/* The hash of an update's or delete's identity values. */
static uint64_t
apply_match_key(const ApplyRelation *rel, const ApplySqlPlan *plan)
{
	int nmatch = apply_match_count(rel, plan);

	return apply_group_key_hash(plan->params + plan->nparams - nmatch, nmatch);
}

/*
 * Whether this change may join (or start) a group: it must not depend on earlier rows of it.
 * One UPDATE of many rows visits them in the plan's order, not the stream's, and checks each
 * unique index row by row: rows that trade a unique value (positions swapped through a spare
 * one) would collide there though the source never held both. So updates are grouped only
 * where every unique index holds the whole key, which no update here changes.
 */
static bool
apply_groupable(const ApplyRelation *rel, const ApplySqlPlan *plan, char old_kind)
{
	if (plan->kind == APPLY_SQL_INSERT)
		return true;
	/* deletes by key: a delete can break no constraint, and each row is found by its key */
	if (plan->kind == APPLY_SQL_DELETE)
		return !plan->full && rel->resolved;
	/* key-matched updates without a key change: each row found by its own key */
	return plan->kind == APPLY_SQL_UPDATE && !plan->full && old_kind == 0 && rel->resolved &&
		rel->updates_commute;
}

/* rel's open update group of the plan's column set, or -1. */
static int
apply_update_group_for(const Applier *a, const ApplyRelation *rel, const ApplySqlPlan *plan)
{
	for (int i = 0; i < APPLY_UPDATE_SHAPES; i++)
	{
		int slot = rel->update_groups[i];

		if (slot >= 0 && a->groups[slot].width == plan->nparams &&
			memcmp(a->groups[slot].roles, plan->roles, rel->ncols) == 0)
			return slot;
	}
	return -1;
}

/* Sends rel's update groups (but except) that may hold the row of key: its change goes first. */
static bool
apply_send_updates_of(Applier *a, ApplyRelation *rel, uint64_t key, int except)
{
	for (int i = 0; i < APPLY_UPDATE_SHAPES; i++)
	{
		int waiting = rel->update_groups[i];

		if (waiting >= 0 && waiting != except && apply_group_has_key(&a->groups[waiting], key) &&
			!apply_send_group(a, waiting))
			return false;
	}
	return true;
}

/*
 * Where an update of rel goes: the open group of its column set, after its row's earlier
 * update under another column set was sent; NULL when the update merged into the earlier
 * one of its row (*merged) or on a failure to send (the applier's error is set).
 */
static int *
apply_update_slot(Applier *a, ApplyRelation *rel, const ApplySqlPlan *plan, uint64_t key, bool *merged)
{
	int slot = apply_update_group_for(a, rel, plan);
	int fullest = 0;

	*merged = false;
	if (!apply_send_updates_of(a, rel, key, slot))
		return NULL;
	/* the same row updated again (a counter, a room's last activity): one row, the later values */
	if (slot >= 0 && !rel->ordered && apply_group_has_key(&a->groups[slot], key))
	{
		int row = apply_group_find_row(&a->groups[slot], plan, apply_match_count(rel, plan), key);

		if (row >= 0 && apply_group_replace(&a->groups[slot], row, plan))
		{
			*merged = true;
			return NULL;
		}
	}
	for (int i = 0; i < APPLY_UPDATE_SHAPES; i++)
		if (rel->update_groups[i] == slot && slot >= 0)
			return &rel->update_groups[i];
	for (int i = 0; i < APPLY_UPDATE_SHAPES; i++)
	{
		if (rel->update_groups[i] < 0)
			return &rel->update_groups[i];
		if (a->groups[rel->update_groups[i]].rows > a->groups[rel->update_groups[fullest]].rows)
			fullest = i;
	}
	/* a fourth column set: the fullest of the three makes room */
	if (!apply_send_group(a, rel->update_groups[fullest]))
		return NULL;
	return &rel->update_groups[fullest];
}

/*
 * Adds one change to its relation's group of that kind, sending the group first when the
 * change cannot join it; a full group is sent at once.
 */
static bool
apply_group_add(Applier *a, ApplyRelation *rel, const ApplySqlPlan *plan, uint64_t key, Lsn lsn)
{
	int *slot = plan->kind == APPLY_SQL_DELETE ? &rel->delete_group : &rel->insert_group;

	if (plan->kind == APPLY_SQL_DELETE && !apply_send_updates_of(a, rel, key, -1))
		return false;
	if (plan->kind == APPLY_SQL_UPDATE)
	{
		bool merged;

		slot = apply_update_slot(a, rel, plan, key, &merged);
		if (slot == NULL)
			return merged;
	}
	if (*slot >= 0 && !apply_group_accepts(&a->groups[*slot], rel, plan, key) &&
		!apply_send_group(a, *slot))
		return false;
	if (*slot < 0)
	{
		int got = apply_free_group(a);

		/* making room may send one of rel's groups, which only frees more of its entries */
		if (got < 0)
			return false;
		*slot = got;
	}
	if (!apply_group_append(&a->groups[*slot], rel, rel->ncols, plan, key, lsn))
	{
		if (a->groups[*slot].owner == NULL)
			*slot = -1;
		log_error("out of memory buffering changes for %s", rel->display);
		apply_set_error(a, "out of memory");
		return false;
	}
	if (rel->ordered)
		a->ordered_group = *slot;
	/* DEFAULT VALUES takes one row per statement */
	if (plan->nparams == 0 || a->groups[*slot].rows >= APPLY_GROUP_ROWS)
		return apply_send_group(a, *slot);
	return true;
}

/*
 * Sends what must precede this change of rel. Changes of different relations commute inside
 * the target transaction: replica mode fires no triggers, rules or foreign-key checks, and
 * constraints span one table. So groups of other relations stay open, except around a
 * relation whose target fires something on replicated rows (ordered), where every change
 * keeps its place. Within rel, its inserts may be deferred after its later updates and
 * deletes of other rows: each state passed through is then a subset of a state the source
 * passed through, so no unique or exclusion constraint can fail that did not fail there.
 * An update or delete that may touch a deferred row (same identity hash, a key change,
 * REPLICA IDENTITY FULL) sends the inserts first.
 */
static bool
apply_before_change(Applier *a, ApplyRelation *rel, const ApplySqlPlan *plan, char old_kind,
					uint64_t key, bool groupable)
{
	if (rel->ordered || (a->ordered_group >= 0 && a->groups[a->ordered_group].owner != rel))
	{
		int keep = !groupable ? -1 : plan->kind == APPLY_SQL_INSERT ? rel->insert_group
			: plan->kind == APPLY_SQL_DELETE ? rel->delete_group : apply_update_group_for(a, rel, plan);

		if (!rel->ordered)
			return apply_flush_group(a);
		for (int i = 0; i < APPLY_OPEN_GROUPS; i++)
			if (i != keep && a->groups[i].owner != NULL && !apply_send_group(a, i))
				return false;
		return true;
	}
	if (plan->kind == APPLY_SQL_INSERT)
		return true;
	if (rel->insert_group >= 0 &&
		(plan->full || (plan->kind == APPLY_SQL_UPDATE && old_kind != 0) ||
		 apply_group_has_key(&a->groups[rel->insert_group], key)) &&
		!apply_send_group(a, rel->insert_group))
		return false;
	/* a single statement goes after the relation's earlier updates and deletes */
	if (!groupable && !apply_send_updates(a, rel))
		return false;
	return true;
}

/* PostgreSQL's INDEX_MAX_KEYS: no replica identity has more columns. */
#define APPLY_MAX_KEY_COLUMNS 32

/*
 * The key of one tuple into the tracker; a key it cannot read loses the table instead. A
 * keyless table's key is its group column: the rows sharing a value are compared together.
 */
static void
apply_note_key(Applier *a, const ApplyRelation *rel, const TupleData *tuple)
{
	const char *columns[APPLY_MAX_KEY_COLUMNS];
	const char *values[APPLY_MAX_KEY_COLUMNS];
	uint32_t lengths[APPLY_MAX_KEY_COLUMNS];
	int n = 0;
	bool grouped = rel->replident == 'f';

	for (uint16_t i = 0; i < rel->ncols && i < tuple->ncols; i++)
	{
		const TupleValue *v = &tuple->values[i];

		if (grouped ? i != rel->group_column : !rel->columns[i].is_key)
			continue;
		/* a NULL group would match no row in the parity's IN list: the group is not known */
		if (n == APPLY_MAX_KEY_COLUMNS || v->kind == TUPLE_VALUE_UNCHANGED_TOAST || v->kind == TUPLE_VALUE_BINARY ||
			(grouped && v->kind == TUPLE_VALUE_NULL))
		{
			touched_lose(a->options.touched, rel->nspname, rel->relname);
			return;
		}
		columns[n] = rel->columns[i].name;
		values[n] = v->kind == TUPLE_VALUE_NULL ? NULL : v->data;
		lengths[n] = v->length;
		n++;
	}
	if (n == 0)
		touched_lose(a->options.touched, rel->nspname, rel->relname);
	else
		touched_add(a->options.touched, rel->nspname, rel->relname, n, columns, values, lengths);
}

/*
 * Which rows the change wrote, for the cutover's final parity (touched.h): the new key and,
 * when the key changed, the old one. A replica identity that is a key names rows; a full
 * one names the groups of rows (old and new) by a column that leads an index.
 */
static void
apply_note_touched(Applier *a, const ApplyRelation *rel, const PgoutputMessage *m)
{
	if (a->options.touched == NULL)
		return;
	if (rel->replident != 'd' && rel->replident != 'i' && (rel->replident != 'f' || rel->group_column < 0))
	{
		touched_lose(a->options.touched, rel->nspname, rel->relname);
		return;
	}
	switch (m->kind)
	{
		case PGOUTPUT_INSERT:
			apply_note_key(a, rel, &m->insert.new_tuple);
			break;
		case PGOUTPUT_UPDATE:
			if (m->update.old_kind != 0)
				apply_note_key(a, rel, &m->update.old_tuple);
			else if (rel->replident == 'f')
			{
				/* the group the row left is not known */
				touched_lose(a->options.touched, rel->nspname, rel->relname);
				return;
			}
			apply_note_key(a, rel, &m->update.new_tuple);
			break;
		default:
			apply_note_key(a, rel, &m->delete.old_tuple);
			break;
	}
}

/* Sends one INSERT, UPDATE or DELETE as a prepared statement with text parameters. */
static ApplyOutcome
apply_change(Applier *a, const PgoutputMessage *m, Lsn lsn)
{
	uint32_t relid = m->kind == PGOUTPUT_INSERT ? m->insert.relid
		: m->kind == PGOUTPUT_UPDATE ? m->update.relid : m->delete.relid;
	ApplySqlPlan plan = {0};
	const ApplyStatement *stmt = NULL;
	ApplyRelation *rel;
	ApplyPending *p;
	bool fatal;
	bool planned;
	bool groupable;
	bool binary = false;
	char old_kind;
	uint64_t key;
	size_t bytes = 0;
	char err[256];
	char name[24];
	char lsnbuf[LSN_FORMAT_SIZE];

	rel = apply_relation_for(a, relid, lsn, &fatal);
	if (rel == NULL)
		return fatal ? APPLY_OUTCOME_FATAL : APPLY_OUTCOME_RETRY;
	plan.roles = a->roles;
	plan.params = a->plan_params;
	if (m->kind == PGOUTPUT_INSERT)
		planned = apply_sql_plan_insert(&rel->table, &m->insert.new_tuple, &plan, err, sizeof(err));
	else if (m->kind == PGOUTPUT_UPDATE)
		planned = apply_sql_plan_update(&rel->table, m->update.old_kind, &m->update.old_tuple,
										&m->update.new_tuple, &plan, err, sizeof(err));
	else
		planned = apply_sql_plan_delete(&rel->table, m->delete.old_kind, &m->delete.old_tuple,
										&plan, err, sizeof(err));
	if (!planned)
	{
		/* the stream itself cannot be applied: retrying reads the same bytes */
		log_error("cannot apply %s on %s at source LSN %s: %s", pgoutput_kind_name(m->kind),
				  rel->display, lsn_format(lsn, lsnbuf), err);
		apply_set_error(a, "cannot apply %s on %s at source LSN %s: %s",
						pgoutput_kind_name(m->kind), rel->display, lsnbuf, err);
		return APPLY_OUTCOME_FATAL;
	}
	a->txn_changes++;
	apply_note_touched(a, rel, m);
	if (plan.noop)
		return APPLY_OUTCOME_OK;
	old_kind = m->kind == PGOUTPUT_UPDATE ? m->update.old_kind
		: m->kind == PGOUTPUT_DELETE ? m->delete.old_kind : 0;
	groupable = apply_groupable(rel, &plan, old_kind);
	key = plan.kind == APPLY_SQL_INSERT ? apply_group_tuple_key(&rel->table, &m->insert.new_tuple)
		: plan.full ? 0 : apply_match_key(rel, &plan);
	if (!apply_before_change(a, rel, &plan, old_kind, key, groupable))
		return APPLY_OUTCOME_RETRY;
	if (groupable)
		return apply_group_add(a, rel, &plan, key, lsn) ? APPLY_OUTCOME_OK : APPLY_OUTCOME_RETRY;
	if (!apply_statement_for(a, rel, &plan, 0, lsn, &stmt))
		return APPLY_OUTCOME_RETRY;
	for (int i = 0; i < plan.nparams; i++)
	{
		const TupleValue *v = plan.params[i];

		bytes += v->length;
		a->values[i] = v->kind == TUPLE_VALUE_NULL ? NULL : v->data;
		a->lengths[i] = (int) v->length;
		a->formats[i] = v->kind == TUPLE_VALUE_BINARY;
		binary |= (v->kind == TUPLE_VALUE_BINARY);
	}
	if (!apply_reserve(a, 1))
		return APPLY_OUTCOME_RETRY;
	snprintf(name, sizeof(name), "sy_%u", stmt->id);
	if (!PQsendQueryPrepared(a->conn, name, plan.nparams, a->values, a->lengths,
							 binary ? a->formats : NULL, 0))
	{
		apply_report_connection_error(a, "sending");
		return APPLY_OUTCOME_RETRY;
	}
	p = apply_push(a, APPLY_OP_CHANGE);
	p->change = (char) m->kind;
	p->rel = rel;
	p->lsn = lsn;
	p->statement_id = stmt->id;
	p->bytes = bytes;
	a->inflight_bytes += bytes;
	a->unsent_bytes += bytes;
	return apply_after_send(a) ? APPLY_OUTCOME_OK : APPLY_OUTCOME_RETRY;
}

static ApplyOutcome
apply_truncate(Applier *a, const PgoutputMessage *m, Lsn lsn)
{
	uint32_t n = m->truncate.nrelids;
	const ApplySqlTable **tables = calloc(n ? n : 1, sizeof(*tables));
	ApplyRelation *first = NULL;
	ApplyOutcome outcome = APPLY_OUTCOME_RETRY;
	ApplyPending *p;
	char *sql = NULL;
	bool fatal;

	if (tables == NULL || !apply_flush_group(a))
		goto cleanup;
	for (uint32_t i = 0; i < n; i++)
	{
		ApplyRelation *rel = apply_relation_for(a, m->truncate.relids[i], lsn, &fatal);

		if (rel == NULL)
		{
			outcome = fatal ? APPLY_OUTCOME_FATAL : APPLY_OUTCOME_RETRY;
			goto cleanup;
		}
		tables[i] = &rel->table;
		if (first == NULL)
			first = rel;
		touched_lose(a->options.touched, rel->nspname, rel->relname);
	}
	a->txn_changes += n;
	if (n == 0)
	{
		outcome = APPLY_OUTCOME_OK;
		goto cleanup;
	}
	sql = apply_sql_truncate(tables, n, m->truncate.flags);
	if (sql == NULL)
	{
		apply_set_error(a, "out of memory");
		goto cleanup;
	}
	if (!apply_send_simple(a, APPLY_OP_TRUNCATE, sql, &p))
		goto cleanup;
	p->change = 'T';
	p->rel = first;
	p->lsn = lsn;
	outcome = APPLY_OUTCOME_OK;

cleanup:
	free(sql);
	free(tables);
	return outcome;
}

/* ---- reading the spool -------------------------------------------------------------------- */

static bool
apply_endpos_passed(const Applier *a, Lsn end_lsn)
{
	return a->options.endpos != 0 && end_lsn > a->options.endpos;
}

/* A source transaction is complete: it joins the batch (or was skipped as applied). */
static void
apply_source_commit(Applier *a, Lsn end_lsn, int64_t commit_time, SpoolPosition position)
{
	a->in_txn = false;
	a->orphan = false;
	touched_commit(a->options.touched, end_lsn);
	if (a->skipping)
	{
		a->skipping = false;
		if (end_lsn > a->last_commit_end)
			a->last_commit_end = end_lsn;
		/* applied before: as soon as the origin is durable there, its space can go */
		apply_durable_push(a, end_lsn, position);
		return;
	}
	a->batch_txns++;
	a->batch_changes += a->txn_changes;
	a->batch_origin_lsn = end_lsn;
	a->batch_reach = end_lsn;
	a->batch_commit_time = commit_time;
	a->batch_position = position;
	a->last_commit_end = end_lsn;
	if (end_lsn > a->position)
		a->position = end_lsn;
	if (a->options.endpos != 0 && a->position >= a->options.endpos)
		a->endpos_hit = true;
}

/* Reads the spool again from its oldest segment, e.g. after an endpos straddler. */
static bool
apply_reopen_reader(Applier *a)
{
	spool_reader_free(a->reader);
	a->reader = NULL;
	a->position = a->applied;
	a->last_commit_end = a->applied;
	a->durable_count = 0;
	a->durable_head = 0;
	if (!spool_reader_open(a->options.spool, &a->reader))
	{
		apply_set_error(a, "could not open the spool for reading");
		return false;
	}
	return true;
}

/*
 * Changes with no Begin before them: the tail of a transaction whose first segment was
 * released, so one already durable on the target. Skip it; its Commit double-checks.
 */
static void
apply_begin_orphan(Applier *a)
{
	a->in_txn = true;
	a->skipping = true;
	a->orphan = true;
	a->txn_final_lsn = 0;
	a->txn_changes = 0;
}

static ApplyOutcome
apply_message(Applier *a, const PgoutputMessage *m, Lsn lsn, SpoolPosition position)
{
	char lsnbuf[LSN_FORMAT_SIZE];
	char lsnbuf2[LSN_FORMAT_SIZE];

	switch (m->kind)
	{
		case PGOUTPUT_BEGIN:
			if (a->in_txn)
				break;
			/* its end_lsn lies past final_lsn, so past endpos too */
			if ((a->options.endpos != 0 && m->begin.final_lsn >= a->options.endpos) ||
				(a->stop_before != 0 && m->begin.final_lsn >= a->stop_before))
			{
				a->endpos_hit = true;
				return APPLY_OUTCOME_OK;
			}
			a->in_txn = true;
			a->txn_final_lsn = m->begin.final_lsn;
			a->txn_changes = 0;
			/* applied before (origin progress) or resent by the source after its crash */
			a->skipping = m->begin.final_lsn < a->position;
			if (!a->skipping && !apply_open_batch(a))
				return APPLY_OUTCOME_RETRY;
			return APPLY_OUTCOME_OK;
		case PGOUTPUT_COMMIT:
			if (!a->in_txn)
				apply_begin_orphan(a);
			/* a transaction we read only the tail of must be one applied before */
			if (a->orphan && m->commit.commit_lsn >= a->position)
			{
				log_error("transaction committed at source LSN %s lacks its start in the spool",
						  lsn_format(m->commit.commit_lsn, lsnbuf));
				apply_set_error(a, "transaction at source LSN %s lacks its start in the spool", lsnbuf);
				return APPLY_OUTCOME_FATAL;
			}
			if (!a->skipping && apply_endpos_passed(a, m->commit.end_lsn))
			{
				/* endpos falls inside this commit record: undo the batch, redo it without */
				log_info("end position %s lies inside the commit record at %s: applying the transactions before it",
						 lsn_format(a->options.endpos, lsnbuf), lsn_format(a->txn_final_lsn, lsnbuf2));
				a->stop_before = a->txn_final_lsn;
				if (!apply_rollback_batch(a))
					return APPLY_OUTCOME_RETRY;
				return apply_reopen_reader(a) ? APPLY_OUTCOME_OK : APPLY_OUTCOME_FATAL;
			}
			apply_source_commit(a, m->commit.end_lsn, m->commit.commit_time, position);
			return APPLY_OUTCOME_OK;
		case PGOUTPUT_RELATION:
			return apply_relation_message(a, m) ? APPLY_OUTCOME_OK : APPLY_OUTCOME_RETRY;
		case PGOUTPUT_INSERT:
		case PGOUTPUT_UPDATE:
		case PGOUTPUT_DELETE:
			if (!a->in_txn)
				apply_begin_orphan(a);
			return a->skipping ? APPLY_OUTCOME_OK : apply_change(a, m, lsn);
		case PGOUTPUT_TRUNCATE:
			if (!a->in_txn)
				apply_begin_orphan(a);
			return a->skipping ? APPLY_OUTCOME_OK : apply_truncate(a, m, lsn);
		case PGOUTPUT_TYPE:
		case PGOUTPUT_ORIGIN:
		case PGOUTPUT_MESSAGE:
		case PGOUTPUT_STREAM_START:
		case PGOUTPUT_STREAM_STOP:
			/* types are applied by name; logical messages are not for the target */
			return APPLY_OUTCOME_OK;
		default:
			break;
	}
	log_error("unexpected %s message in the spool at source LSN %s", pgoutput_kind_name(m->kind),
			  lsn_format(lsn, lsnbuf));
	apply_set_error(a, "unexpected %s message in the spool at source LSN %s",
					pgoutput_kind_name(m->kind), lsnbuf);
	return APPLY_OUTCOME_FATAL;
}

static bool
apply_decode(Applier *a, const SpoolEntry *e, bool in_stream, PgoutputMessage *m)
{
	char err[256];
	char lsnbuf[LSN_FORMAT_SIZE];

	if (pgoutput_decode(e->pgoutput, e->len, in_stream, PGOUTPUT_DECODE_FULL, a->scratch, m, err,
						sizeof(err)))
		return true;
	log_error("could not decode a spooled pgoutput message at source LSN %s: %s",
			  lsn_format(e->lsn, lsnbuf), err);
	log_detail("spool segment %" PRIu64 ", offset %" PRIu64, e->position.segment, e->position.offset);
	apply_set_error(a, "could not decode spooled message at source LSN %s: %s", lsnbuf, err);
	return false;
}

/* A streamed transaction became final: replay its stream file, then commit it like any other. */
static ApplyOutcome
apply_stream_commit(Applier *a, const SpoolEntry *e)
{
	PgoutputMessage m;
	SpoolReader *stream = NULL;
	ApplyOutcome outcome = APPLY_OUTCOME_FATAL;
	uint32_t xid;
	Lsn commit_lsn;
	Lsn end_lsn;
	int64_t commit_time;
	char lsnbuf[LSN_FORMAT_SIZE];

	if (!apply_decode(a, e, false, &m))
		return APPLY_OUTCOME_FATAL;
	if (m.kind != PGOUTPUT_STREAM_COMMIT || a->in_txn)
	{
		log_error("malformed stream commit record in the spool at source LSN %s",
				  lsn_format(e->lsn, lsnbuf));
		apply_set_error(a, "malformed stream commit record at source LSN %s", lsnbuf);
		return APPLY_OUTCOME_FATAL;
	}
	/* the decoded message lives in the scratch arena, which the replay reuses */
	xid = e->stream_xid ? e->stream_xid : m.xid;
	commit_lsn = m.commit.commit_lsn;
	end_lsn = m.commit.end_lsn;
	commit_time = m.commit.commit_time;

	if (commit_lsn < a->position)
	{
		a->skipping = true;
		apply_source_commit(a, end_lsn, commit_time, e->position);
		return APPLY_OUTCOME_OK;
	}
	if (apply_endpos_passed(a, end_lsn) || (a->stop_before != 0 && commit_lsn >= a->stop_before))
	{
		a->endpos_hit = true;
		return APPLY_OUTCOME_OK;
	}
	if (!apply_open_batch(a))
		return APPLY_OUTCOME_RETRY;
	if (!spool_stream_reader_open(a->options.spool, xid, e->lsn, &stream))
	{
		log_error("could not open the stream file of transaction %u (commit at source LSN %s)", xid,
				  lsn_format(end_lsn, lsnbuf));
		apply_set_error(a, "could not open the stream file of transaction %u", xid);
		return APPLY_OUTCOME_FATAL;
	}
	a->in_txn = true;
	a->skipping = false;
	a->txn_final_lsn = commit_lsn;
	a->txn_changes = 0;
	for (uint64_t count = 0;; count++)
	{
		SpoolEntry s;
		int n = spool_reader_next(stream, &s, 0);

		if (n < 0)
		{
			apply_set_error(a, "could not read the stream file of transaction %u", xid);
			goto cleanup;
		}
		if (n == 0)
			break;
		/* a big transaction can take a while: honour stop requests inside it */
		if ((count & 1023) == 1023 && apply_should_stop(a))
		{
			a->interrupted = true;
			outcome = APPLY_OUTCOME_OK;
			goto cleanup;
		}
		if (!apply_decode(a, &s, true, &m))
			goto cleanup;
		switch (m.kind)
		{
			case PGOUTPUT_RELATION:
			case PGOUTPUT_INSERT:
			case PGOUTPUT_UPDATE:
			case PGOUTPUT_DELETE:
			case PGOUTPUT_TRUNCATE:
			case PGOUTPUT_TYPE:
			case PGOUTPUT_MESSAGE:
			case PGOUTPUT_ORIGIN:
			case PGOUTPUT_STREAM_START:
			case PGOUTPUT_STREAM_STOP:
				outcome = apply_message(a, &m, s.lsn, s.position);
				if (outcome != APPLY_OUTCOME_OK)
					goto cleanup;
				break;
			default:
				log_error("unexpected %s message in the stream file of transaction %u",
						  pgoutput_kind_name(m.kind), xid);
				apply_set_error(a, "unexpected %s message in the stream file of transaction %u",
								pgoutput_kind_name(m.kind), xid);
				outcome = APPLY_OUTCOME_FATAL;
				goto cleanup;
		}
	}
	apply_source_commit(a, end_lsn, commit_time, e->position);
	outcome = APPLY_OUTCOME_OK;

cleanup:
	spool_reader_free(stream);
	return outcome;
}

static ApplyOutcome
apply_entry(Applier *a, const SpoolEntry *e)
{
	PgoutputMessage m;

	switch (e->kind)
	{
		case SPOOL_PROGRESS:
			if (a->in_txn)
				return APPLY_OUTCOME_OK;
			apply_progress(a, e->lsn);
			if (!a->batch_open)
				apply_durable_push(a, a->last_commit_end, e->position);
			if (a->options.endpos != 0 && a->position >= a->options.endpos)
				a->endpos_hit = true;
			return APPLY_OUTCOME_OK;
		case SPOOL_CHANGE:
			if (!apply_decode(a, e, false, &m))
				return APPLY_OUTCOME_FATAL;
			return apply_message(a, &m, e->lsn, e->position);
		case SPOOL_STREAM_COMMIT:
			return apply_stream_commit(a, e);
		default:
			break;
	}
	log_error("unexpected spool record kind %d in the main spool", (int) e->kind);
	apply_set_error(a, "unexpected spool record kind %d", (int) e->kind);
	return APPLY_OUTCOME_FATAL;
}

/* ---- connection and session --------------------------------------------------------------- */

static void
apply_disconnect(Applier *a)
{
	PQclear(a->catalog_result);
	a->catalog_result = NULL;
	PQclear(a->catalog_all);
	a->catalog_all = NULL;
	if (a->conn != NULL)
		PQfinish(a->conn);
	a->conn = NULL;
	spool_reader_free(a->reader);
	a->reader = NULL;
	apply_statements_clear(a);
	a->ring_count = 0;
	a->ring_head = 0;
	a->head_done = false;
	a->inflight_bytes = 0;
	a->unsent_bytes = 0;
	a->unflushed = 0;
	a->batch_open = false;
	a->in_txn = false;
	a->skipping = false;
	a->orphan = false;
	apply_discard_groups(a);
	a->durable_in_flight = false;
	a->durable_count = 0;
	a->durable_head = 0;
	for (size_t i = 0; i < a->relation_cap; i++)
		if (a->relations[i] != NULL)
		{
			a->relations[i]->resolved = false;
			a->relations[i]->prefetch_tried = false;
		}
	apply_publish_connected(a, false);
}

static bool
apply_exec_ok(Applier *a, PGresult *res, ExecStatusType expected, const char *what)
{
	char line[320];

	if (PQresultStatus(res) == expected)
		return true;
	apply_first_line(PQresultErrorMessage(res), line, sizeof(line));
	if (line[0] == '\0')
		apply_first_line(PQerrorMessage(a->conn), line, sizeof(line));
	log_error("could not %s on the target: %s", what, line);
	if (PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) != NULL)
		log_hint("%s", PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
	apply_set_error(a, "could not %s on the target: %s", what, line);
	return false;
}

/* Connects without blocking past a stop request; conninfo never reaches a log line. */
static bool
apply_open_connection(Applier *a)
{
	/* settings before dbname are defaults: the user's conninfo overrides them */
	const char *keys[] = {"keepalives_idle", "keepalives_interval", "keepalives_count", "dbname",
						  "fallback_application_name", NULL};
	const char *values[] = {"30", "10", "3", a->conninfo, "switchyard-apply", NULL};
	int64_t deadline = monotonic_us() + APPLY_CONNECT_TIMEOUT_US;
	PostgresPollingStatusType state = PGRES_POLLING_WRITING;
	char line[320];

	a->conn = PQconnectStartParams(keys, values, 1);
	if (a->conn == NULL)
	{
		apply_set_error(a, "out of memory connecting to the target");
		log_error("%s", a->error);
		return false;
	}
	conninfo_route_notices(a->conn, "target");
	while (PQstatus(a->conn) != CONNECTION_BAD && state != PGRES_POLLING_OK &&
		   state != PGRES_POLLING_FAILED)
	{
		struct pollfd pfd = {.fd = PQsocket(a->conn),
							 .events = state == PGRES_POLLING_READING ? POLLIN : POLLOUT};

		if (apply_should_stop(a))
			return false;
		if (monotonic_us() > deadline)
		{
			apply_set_error(a, "timed out connecting to the target");
			log_error("%s", a->error);
			return false;
		}
		if (pfd.fd >= 0 && poll(&pfd, 1, 100) == 0)
			continue;
		state = PQconnectPoll(a->conn);
	}
	if (PQstatus(a->conn) != CONNECTION_OK)
	{
		apply_first_line(PQerrorMessage(a->conn), line, sizeof(line));
		log_error("could not connect to the target: %s", line);
		apply_set_error(a, "could not connect to the target: %s", line);
		return false;
	}
	return true;
}

/* Session settings and the replication origin; returns the origin's durable position. */
static bool
apply_setup_session(Applier *a, Lsn *start)
{
	const char *values[1] = {a->origin_name};
	PGresult *res = NULL;
	bool ok = false;

	/* replica: target triggers, rules and FK actions stay quiet; text values round-trip;
	 * synchronous_commit off is safe as the spool is released only at durable positions */
	res = PQexec(a->conn,
				 "SET session_replication_role = replica; SET synchronous_commit = off; "
				 "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; "
				 "SET TimeZone = 'UTC'; SET bytea_output = hex; SET statement_timeout = 0; "
				 "SET idle_in_transaction_session_timeout = 0; "
				 "SET plan_cache_mode = force_generic_plan");
	if (!apply_exec_ok(a, res, PGRES_COMMAND_OK, "set up the apply session"))
		goto cleanup;
	PQclear(res);
	res = PQexecParams(a->conn,
					   "SELECT pg_catalog.pg_replication_origin_create($1) "
					   "WHERE pg_catalog.pg_replication_origin_oid($1) IS NULL",
					   1, NULL, values, NULL, NULL, 0);
	if (!apply_exec_ok(a, res, PGRES_TUPLES_OK, "create the replication origin"))
		goto cleanup;
	PQclear(res);
	res = PQexecParams(a->conn, "SELECT pg_catalog.pg_replication_origin_session_setup($1)", 1, NULL,
					   values, NULL, NULL, 0);
	if (!apply_exec_ok(a, res, PGRES_TUPLES_OK, "set up the replication origin session"))
		goto cleanup;
	PQclear(res);
	res = PQexecParams(a->conn, "SELECT pg_catalog.pg_replication_origin_progress($1, true)", 1,
					   NULL, values, NULL, NULL, 0);
	if (!apply_exec_ok(a, res, PGRES_TUPLES_OK, "read the replication origin's progress"))
		goto cleanup;
	*start = 0;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) && !lsn_parse(PQgetvalue(res, 0, 0), start))
	{
		apply_set_error(a, "unexpected replication origin progress \"%s\"", PQgetvalue(res, 0, 0));
		log_error("%s", a->error);
		goto cleanup;
	}
	if (PQsetnonblocking(a->conn, 1) != 0 || !PQenterPipelineMode(a->conn))
	{
		apply_report_connection_error(a, "entering pipeline mode");
		goto cleanup;
	}
	ok = true;

cleanup:
	PQclear(res);
	return ok;
}

/* Finishes cleanly: the last batch committed, results read, spool released as far as durable. */
static bool
apply_finish(Applier *a)
{
	if (a->in_txn || a->interrupted)
	{
		if (!apply_rollback_batch(a))
			return false;
	}
	else if (!apply_commit_batch(a))
		return false;
	if (!apply_wait_in_flight(a, 0))
		return false;
	if (!apply_send_durable_query(a) || !apply_wait_in_flight(a, 0))
		return false;
	return true;
}

static ApplyOutcome
apply_session(Applier *a)
{
	Lsn start = 0;
	char lsnbuf[LSN_FORMAT_SIZE];
	ApplyOutcome outcome = APPLY_OUTCOME_RETRY;

	a->committed_this_session = false;
	a->interrupted = false;
	a->endpos_hit = false;
	if (!apply_open_connection(a) || !apply_setup_session(a, &start))
		return APPLY_OUTCOME_RETRY;
	if (!apply_prepare_control(a) || !apply_send_sync(a))
		return APPLY_OUTCOME_RETRY;
	if (!apply_prefetch_catalog(a))
		return APPLY_OUTCOME_RETRY;
	apply_publish_connected(a, true);
	/* the keys of what an earlier process applied are not known: a baseline must be later */
	touched_start(a->options.touched, start);
	a->applied = start;
	a->position = start;
	a->last_commit_end = start;
	a->durable_due = monotonic_us() + APPLY_DURABLE_INTERVAL_US;
	pthread_mutex_lock(&a->mutex);
	if (start > a->stats.applied_lsn)
		a->stats.applied_lsn = start;
	if (start > a->stats.durable_lsn)
		a->stats.durable_lsn = start;
	if (start > a->stats.last_commit_lsn)
		a->stats.last_commit_lsn = start;
	if (a->options.endpos != 0 && start >= a->options.endpos)
		a->stats.reached_endpos = true;
	pthread_mutex_unlock(&a->mutex);
	log_info("applying to the target from source LSN %s (replication origin \"%s\")",
			 lsn_format(start, lsnbuf), a->origin_name);
	if (a->options.endpos != 0 && start >= a->options.endpos)
	{
		a->endpos_hit = true;
		return APPLY_OUTCOME_DONE;
	}
	if (!spool_reader_open(a->options.spool, &a->reader))
	{
		apply_set_error(a, "could not open the spool for reading");
		return APPLY_OUTCOME_FATAL;
	}

	for (;;)
	{
		SpoolEntry entry;
		int n;
		/* never spin: wait on the spool unless results are due or a batch can commit */
		bool busy = a->ring_count > 0 || (a->batch_open && !a->in_txn);

		if (a->endpos_hit || a->interrupted || apply_should_stop(a))
			break;
		n = spool_reader_next(a->reader, &entry, busy ? 0 : APPLY_IDLE_WAIT_MS);
		if (n < 0)
		{
			apply_set_error(a, "the spool is corrupt or unreadable");
			return APPLY_OUTCOME_FATAL;
		}
		if (n == 0)
		{
			/* nothing more durable right now: commit, never wait to fill a batch */
			if (a->batch_open && !a->in_txn && !apply_commit_batch(a))
				return APPLY_OUTCOME_RETRY;
			if (!apply_durable_tick(a) || !apply_request_flush(a))
				return APPLY_OUTCOME_RETRY;
			if (a->ring_count > 0 && !apply_pump(a, APPLY_RESULT_WAIT_MS))
				return APPLY_OUTCOME_RETRY;
			continue;
		}
		outcome = apply_entry(a, &entry);
		if (outcome != APPLY_OUTCOME_OK)
			return outcome;
		if (a->batch_open && !a->in_txn &&
			a->batch_txns >= (uint32_t) a->options.batch_transactions && !apply_commit_batch(a))
			return APPLY_OUTCOME_RETRY;
		if (!apply_durable_tick(a))
			return APPLY_OUTCOME_RETRY;
	}
	if (!apply_finish(a))
		return APPLY_OUTCOME_RETRY;
	if (a->endpos_hit)
	{
		pthread_mutex_lock(&a->mutex);
		a->stats.reached_endpos = true;
		pthread_mutex_unlock(&a->mutex);
		log_info("reached the end position %s", lsn_format(a->options.endpos, lsnbuf));
	}
	return APPLY_OUTCOME_DONE;
}

/* Sleeps seconds in 100 ms steps; false when a stop request came in. */
static bool
apply_backoff(Applier *a, int seconds)
{
	for (int i = 0; i < seconds * 10; i++)
	{
		struct timespec step = {0, 100 * 1000 * 1000};

		if (apply_should_stop(a))
			return false;
		nanosleep(&step, NULL);
	}
	return !apply_should_stop(a);
}

static void *
apply_main(void *arg)
{
	Applier *a = arg;
	int delay = 1;

	log_set_thread_name("apply");
	a->scratch = pgoutput_scratch_new();
	if (a->scratch == NULL)
	{
		pthread_mutex_lock(&a->mutex);
		snprintf(a->stats.last_error, sizeof(a->stats.last_error), "out of memory");
		a->stats.fatal = true;
		a->stats.stopped = true;
		pthread_mutex_unlock(&a->mutex);
		return NULL;
	}
	for (;;)
	{
		ApplyOutcome outcome;

		a->error[0] = '\0';
		outcome = apply_session(a);
		apply_disconnect(a);
		/* a stop request cuts a retry short; what failed was logged already */
		if (outcome == APPLY_OUTCOME_DONE || (outcome == APPLY_OUTCOME_RETRY && apply_should_stop(a)))
			break;
		pthread_mutex_lock(&a->mutex);
		snprintf(a->stats.last_error, sizeof(a->stats.last_error), "%s",
				 a->error[0] ? a->error : "target error");
		if (outcome == APPLY_OUTCOME_FATAL)
			a->stats.fatal = true;
		pthread_mutex_unlock(&a->mutex);
		if (outcome == APPLY_OUTCOME_FATAL || apply_should_stop(a))
			break;
		if (a->committed_this_session)
			delay = 1;
		log_info("retrying the target in %d s", delay);
		if (!apply_backoff(a, delay))
			break;
		delay = delay * 2 > a->options.max_retry_seconds ? a->options.max_retry_seconds : delay * 2;
	}
	pthread_mutex_lock(&a->mutex);
	a->stats.stopped = true;
	a->stats.connected = false;
	pthread_mutex_unlock(&a->mutex);
	return NULL;
}

/* ---- public interface ------------------------------------------------------------------------ */

bool
apply_start(const ApplyOptions *options, Applier **out)
{
	Applier *a = NULL;

	*out = NULL;
	if (options == NULL || options->target_conninfo == NULL || options->origin_name == NULL ||
		options->spool == NULL)
	{
		log_error("applier options are incomplete");
		return false;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		goto fail;
	a->options = *options;
	a->ordered_group = -1;
	/*
	 * Only a backlog fills a batch (one commits whenever the spool runs dry), and there more
	 * transactions per batch make longer row groups: 100 sends ~40% fewer statements than 25.
	 */
	if (a->options.batch_transactions <= 0)
		a->options.batch_transactions = 100;
	if (a->options.max_retry_seconds <= 0)
		a->options.max_retry_seconds = 30;
	a->conninfo = strdup(options->target_conninfo);
	a->origin_name = strdup(options->origin_name);
	if (a->conninfo == NULL || a->origin_name == NULL)
		goto fail;
	a->options.target_conninfo = a->conninfo;
	a->options.origin_name = a->origin_name;
	atomic_init(&a->stop_requested, false);
	pthread_mutex_init(&a->mutex, NULL);
	if (pthread_create(&a->thread, NULL, apply_main, a) != 0)
	{
		log_error("could not start the apply thread");
		pthread_mutex_destroy(&a->mutex);
		goto fail;
	}
	a->thread_started = true;
	*out = a;
	return true;

fail:
	if (a != NULL)
	{
		free(a->conninfo);
		free(a->origin_name);
		free(a);
	}
	return false;
}

void
apply_request_stop(Applier *applier)
{
	if (applier == NULL)
		return;
	atomic_store(&applier->stop_requested, true);
	spool_wakeup_reader(applier->options.spool);
}

size_t
apply_get_table_stats(Applier *applier, ApplyTableStats *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&applier->mutex);
	n = applier->ncounters;
	for (size_t i = 0; i < n && i < max; i++)
	{
		snprintf(out[i].table, sizeof(out[i].table), "%s", applier->counters[i].name);
		out[i].inserted = applier->counters[i].applied[APPLY_TABLE_INSERTED];
		out[i].updated = applier->counters[i].applied[APPLY_TABLE_UPDATED];
		out[i].deleted = applier->counters[i].applied[APPLY_TABLE_DELETED];
		out[i].truncated = applier->counters[i].applied[APPLY_TABLE_TRUNCATED];
	}
	pthread_mutex_unlock(&applier->mutex);
	return n;
}

void
apply_free(Applier *applier)
{
	if (applier == NULL)
		return;
	if (applier->thread_started)
	{
		apply_request_stop(applier);
		pthread_join(applier->thread, NULL);
	}
	apply_disconnect(applier);
	for (size_t i = 0; i < applier->relation_cap; i++)
		apply_relation_free(applier->relations[i]);
	free(applier->relations);
	free(applier->keybuf);
	free(applier->roles);
	free(applier->plan_params);
	free(applier->values);
	free(applier->lengths);
	free(applier->formats);
	for (int i = 0; i < APPLY_OPEN_GROUPS; i++)
		apply_group_free(&applier->groups[i]);
	pgoutput_scratch_free(applier->scratch);
	for (size_t i = 0; i < applier->ncounters; i++)
		free(applier->counters[i].name);
	free(applier->counters);
	pthread_mutex_destroy(&applier->mutex);
	free(applier->conninfo);
	free(applier->origin_name);
	free(applier);
}

void
apply_get_stats(Applier *applier, ApplyStats *out)
{
	if (applier == NULL)
	{
		memset(out, 0, sizeof(*out));
		return;
	}
	pthread_mutex_lock(&applier->mutex);
	*out = applier->stats;
	pthread_mutex_unlock(&applier->mutex);
}
