/*
 * SQL text for the applier: INSERT/UPDATE/DELETE/TRUNCATE statements with every identifier
 * quoted and every value a $n parameter. Pure; the applier prepares each distinct text once.
 */
#include "switchyard/apply_sql.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "switchyard/lsn.h"

typedef struct SqlBuf
{
	char *data;
	size_t len;
	size_t cap;
	bool failed;   /* an allocation failed: the text is dropped at the end */
} SqlBuf;

static void
sqlbuf_reserve(SqlBuf *buf, size_t more)
{
	size_t need = buf->len + more + 1;
	size_t cap = buf->cap ? buf->cap : 128;
	char *grown;

	if (buf->failed || need <= buf->cap)
		return;
	while (cap < need)
		cap *= 2;
	grown = realloc(buf->data, cap);
	if (grown == NULL)
	{
		buf->failed = true;
		return;
	}
	buf->data = grown;
	buf->cap = cap;
}

static void
sqlbuf_append(SqlBuf *buf, const char *text)
{
	size_t n = strlen(text);

	sqlbuf_reserve(buf, n);
	if (buf->failed)
		return;
	memcpy(buf->data + buf->len, text, n + 1);
	buf->len += n;
}

static void
sqlbuf_appendf(SqlBuf *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
sqlbuf_appendf(SqlBuf *buf, const char *fmt, ...)
{
	char small[64];
	va_list args;
	int n;

	va_start(args, fmt);
	n = vsnprintf(small, sizeof(small), fmt, args);
	va_end(args);
	/* only short fragments ($n, numbers) go through here */
	if (n < 0 || (size_t) n >= sizeof(small))
	{
		buf->failed = true;
		return;
	}
	sqlbuf_append(buf, small);
}

/* Doubles inner quotes: safe for any byte string, as PQescapeIdentifier produces. */
static void
sqlbuf_append_identifier(SqlBuf *buf, const char *name)
{
	size_t quotes = 0;
	char *out;

	for (const char *p = name; *p; p++)
		quotes += (*p == '"');
	sqlbuf_reserve(buf, strlen(name) + quotes + 2);
	if (buf->failed)
		return;
	out = buf->data + buf->len;
	*out++ = '"';
	for (const char *p = name; *p; p++)
	{
		if (*p == '"')
			*out++ = '"';
		*out++ = *p;
	}
	*out++ = '"';
	*out = '\0';
	buf->len = (size_t) (out - buf->data);
}

static void
sqlbuf_append_table(SqlBuf *buf, const char *nspname, const char *relname)
{
	/* pgoutput sends "" for pg_catalog */
	sqlbuf_append_identifier(buf, nspname[0] ? nspname : "pg_catalog");
	sqlbuf_append(buf, ".");
	sqlbuf_append_identifier(buf, relname);
}

static char *
sqlbuf_finish(SqlBuf *buf)
{
	if (buf->failed || buf->data == NULL)
	{
		free(buf->data);
		return NULL;
	}
	return buf->data;
}

char *
apply_sql_quote_identifier(const char *name)
{
	SqlBuf buf = {0};

	sqlbuf_append_identifier(&buf, name);
	return sqlbuf_finish(&buf);
}

char *
apply_sql_qualified_name(const char *nspname, const char *relname)
{
	SqlBuf buf = {0};

	sqlbuf_append_table(&buf, nspname, relname);
	return sqlbuf_finish(&buf);
}

/* ---- planning: which columns go where, and their values in $n order ------------------ */

static bool
plan_error(char *errbuf, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool
plan_error(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(errbuf, errlen, fmt, args);
	va_end(args);
	return false;
}

static bool
plan_check_tuple(const ApplySqlTable *table, const TupleData *tuple, const char *which,
				 char *errbuf, size_t errlen)
{
	if (tuple->ncols != table->ncols)
		return plan_error(errbuf, errlen,
						  "%s tuple has %u columns but the relation message has %u",
						  which, (unsigned) tuple->ncols, (unsigned) table->ncols);
	return true;
}

static bool
has_value(const TupleValue *value)
{
	return value->kind != TUPLE_VALUE_UNCHANGED_TOAST;
}

/* Orders params: SET columns first, then MATCH columns, each in column order. */
static void
plan_collect(const ApplySqlTable *table, ApplySqlPlan *plan, const TupleData *set_tuple,
			 const TupleData *match_tuple)
{
	plan->nparams = 0;
	for (uint16_t i = 0; set_tuple != NULL && i < table->ncols; i++)
		if (plan->roles[i] & APPLY_SQL_ROLE_SET)
			plan->params[plan->nparams++] = &set_tuple->values[i];
	for (uint16_t i = 0; match_tuple != NULL && i < table->ncols; i++)
		if (plan->roles[i] & APPLY_SQL_ROLE_MATCH)
			plan->params[plan->nparams++] = &match_tuple->values[i];
}

bool
apply_sql_plan_insert(const ApplySqlTable *table, const TupleData *new_tuple,
					  ApplySqlPlan *plan, char *errbuf, size_t errlen)
{
	plan->kind = APPLY_SQL_INSERT;
	plan->full = false;
	plan->noop = false;
	if (!plan_check_tuple(table, new_tuple, "new", errbuf, errlen))
		return false;
	for (uint16_t i = 0; i < table->ncols; i++)
	{
		if (!has_value(&new_tuple->values[i]))
			return plan_error(errbuf, errlen, "insert carries an unchanged TOAST value for column \"%s\"",
							  table->columns[i].name);
		plan->roles[i] = APPLY_SQL_ROLE_SET;
	}
	plan_collect(table, plan, new_tuple, NULL);
	return true;
}

/*
 * The WHERE side of an UPDATE or DELETE. FULL: every column the old row carries. Otherwise
 * the key columns, from the K tuple when sent (the key changed), else from the new tuple.
 */
static bool
plan_match(const ApplySqlTable *table, char old_kind, const TupleData *old_tuple,
		   const TupleData *new_tuple, ApplySqlPlan *plan, const TupleData **match_tuple,
		   char *errbuf, size_t errlen)
{
	int nmatch = 0;

	plan->full = (old_kind == 'O' || table->replident == 'f');
	if (plan->full)
	{
		if (old_kind != 'O')
			return plan_error(errbuf, errlen, "REPLICA IDENTITY FULL change without its old row");
		if (!plan_check_tuple(table, old_tuple, "old", errbuf, errlen))
			return false;
		for (uint16_t i = 0; i < table->ncols; i++)
		{
			if (has_value(&old_tuple->values[i]))
			{
				plan->roles[i] |= APPLY_SQL_ROLE_MATCH;
				nmatch++;
			}
		}
		*match_tuple = old_tuple;
	}
	else
	{
		const TupleData *source = new_tuple;

		if (old_kind == 'K')
		{
			if (!plan_check_tuple(table, old_tuple, "key", errbuf, errlen))
				return false;
			source = old_tuple;
		}
		if (source == NULL)
			return plan_error(errbuf, errlen, "change without key values");
		for (uint16_t i = 0; i < table->ncols; i++)
		{
			const TupleValue *value = &source->values[i];

			if (!table->columns[i].is_key)
				continue;
			if (value->kind == TUPLE_VALUE_NULL || !has_value(value))
				return plan_error(errbuf, errlen, "key column \"%s\" has no value",
								  table->columns[i].name);
			plan->roles[i] |= APPLY_SQL_ROLE_MATCH;
			nmatch++;
		}
		*match_tuple = source;
	}
	if (nmatch == 0)
		return plan_error(errbuf, errlen,
						  "no replica identity columns to find the row by (replica identity '%c')",
						  table->replident ? table->replident : '?');
	return true;
}

bool
apply_sql_plan_update(const ApplySqlTable *table, char old_kind, const TupleData *old_tuple,
					  const TupleData *new_tuple, ApplySqlPlan *plan, char *errbuf, size_t errlen)
{
	const TupleData *match_tuple = NULL;
	int nset = 0;

	plan->kind = APPLY_SQL_UPDATE;
	plan->noop = false;
	if (!plan_check_tuple(table, new_tuple, "new", errbuf, errlen))
		return false;
	/*
	 * Unchanged TOAST columns stay out of SET: the target keeps its value. So do key columns
	 * when no K tuple came (the key did not change): SET "id" = <same> is wasted work and
	 * fails on a GENERATED ALWAYS identity column.
	 */
	for (uint16_t i = 0; i < table->ncols; i++)
	{
		bool same_key = table->columns[i].is_key && old_kind == 0 && table->replident != 'f';

		plan->roles[i] = has_value(&new_tuple->values[i]) && !same_key ? APPLY_SQL_ROLE_SET : 0;
		nset += (plan->roles[i] != 0);
	}
	if (!plan_match(table, old_kind, old_tuple, new_tuple, plan, &match_tuple, errbuf, errlen))
		return false;
	plan->noop = (nset == 0);
	plan_collect(table, plan, new_tuple, match_tuple);
	return true;
}

bool
apply_sql_plan_delete(const ApplySqlTable *table, char old_kind, const TupleData *old_tuple,
					  ApplySqlPlan *plan, char *errbuf, size_t errlen)
{
	const TupleData *match_tuple = NULL;

	plan->kind = APPLY_SQL_DELETE;
	plan->noop = false;
	memset(plan->roles, 0, table->ncols);
	if (old_kind == 0)
		return plan_error(errbuf, errlen, "delete without key or old row");
	if (!plan_match(table, old_kind, old_tuple, NULL, plan, &match_tuple, errbuf, errlen))
		return false;
	plan_collect(table, plan, NULL, match_tuple);
	return true;
}

/* ---- statement text ------------------------------------------------------------------- */

static void
build_where(SqlBuf *buf, const ApplySqlTable *table, const ApplySqlPlan *plan, int *param)
{
	bool first = true;

	for (uint16_t i = 0; i < table->ncols; i++)
	{
		const ApplySqlColumn *column = &table->columns[i];

		if (!(plan->roles[i] & APPLY_SQL_ROLE_MATCH))
			continue;
		sqlbuf_append(buf, first ? " WHERE " : " AND ");
		first = false;
		sqlbuf_append_identifier(buf, column->name);
		/* json, point, xml...: no equality operator, so compare the text forms */
		if (column->text_compare)
			sqlbuf_append(buf, "::text");
		sqlbuf_append(buf, plan->full ? " IS NOT DISTINCT FROM " : " = ");
		sqlbuf_appendf(buf, "$%d", ++*param);
		if (column->text_compare)
			sqlbuf_append(buf, "::text");
	}
}

/* FULL: duplicates are possible, so change exactly one of the matching rows. */
static void
build_where_one_row(SqlBuf *buf, const ApplySqlTable *table, const ApplySqlPlan *plan, int *param)
{
	/* ctid alone is not unique across the partitions of a partitioned table */
	const char *row = table->partitioned ? "(tableoid, ctid)" : "ctid";
	const char *select = table->partitioned ? "tableoid, ctid" : "ctid";

	sqlbuf_append(buf, " WHERE ");
	sqlbuf_append(buf, row);
	sqlbuf_append(buf, " = (SELECT ");
	sqlbuf_append(buf, select);
	sqlbuf_append(buf, " FROM ");
	sqlbuf_append_table(buf, table->nspname, table->relname);
	build_where(buf, table, plan, param);
	sqlbuf_append(buf, " LIMIT 1)");
}

char *
apply_sql_build_insert(const ApplySqlTable *table, const ApplySqlPlan *plan, int rows)
{
	SqlBuf buf = {0};
	int param = 0;
	bool first = true;

	sqlbuf_append(&buf, "INSERT INTO ");
	sqlbuf_append_table(&buf, table->nspname, table->relname);
	for (uint16_t i = 0; i < table->ncols; i++)
	{
		if (!(plan->roles[i] & APPLY_SQL_ROLE_SET))
			continue;
		sqlbuf_append(&buf, first ? " (" : ", ");
		first = false;
		sqlbuf_append_identifier(&buf, table->columns[i].name);
	}
	if (first)
	{
		/* no columns: only one row per statement can be written this way */
		if (rows != 1)
		{
			free(buf.data);
			return NULL;
		}
		sqlbuf_append(&buf, " DEFAULT VALUES");
		return sqlbuf_finish(&buf);
	}
	/* the source's values win over GENERATED ALWAYS identity columns, as in native apply */
	sqlbuf_append(&buf, ") OVERRIDING SYSTEM VALUE VALUES ");
	for (int row = 0; row < rows; row++)
	{
		sqlbuf_append(&buf, row ? ", (" : "(");
		for (int i = 0; i < plan->nparams; i++)
			sqlbuf_appendf(&buf, i ? ", $%d" : "$%d", ++param);
		sqlbuf_append(&buf, ")");
	}
	return sqlbuf_finish(&buf);
}

/*
 * Appends the VALUES list of a multi-row UPDATE or DELETE, its alias sy_v (c1..cN in $n
 * order) and the WHERE that joins it to sy_t by the MATCH columns, whose values follow the
 * SET values in each row (aliases that no column name can shadow).
 */
static void
build_values_join(SqlBuf *buf, const ApplySqlTable *table, const ApplySqlPlan *plan, int rows, int nset)
{
	int param = 0;
	int alias = nset;
	bool first = true;

	sqlbuf_append(buf, " (VALUES ");
	for (int row = 0; row < rows; row++)
	{
		bool first_value = true;

		sqlbuf_append(buf, row ? ", (" : "(");
		for (int pass = 0; pass < 2; pass++)
		{
			int role = pass == 0 ? APPLY_SQL_ROLE_SET : APPLY_SQL_ROLE_MATCH;

			for (uint16_t i = 0; i < table->ncols; i++)
			{
				if (!(plan->roles[i] & role))
					continue;
				sqlbuf_appendf(buf, first_value ? "$%d::" : ", $%d::", ++param);
				sqlbuf_append(buf, table->columns[i].type_name);
				first_value = false;
			}
		}
		sqlbuf_append(buf, ")");
	}
	sqlbuf_append(buf, ") AS sy_v (");
	for (int i = 1; i <= plan->nparams; i++)
		sqlbuf_appendf(buf, i > 1 ? ", c%d" : "c%d", i);
	sqlbuf_append(buf, ")");
	for (uint16_t i = 0; i < table->ncols; i++)
	{
		const ApplySqlColumn *column = &table->columns[i];

		if (!(plan->roles[i] & APPLY_SQL_ROLE_MATCH))
			continue;
		sqlbuf_append(buf, first ? " WHERE sy_t." : " AND sy_t.");
		first = false;
		sqlbuf_append_identifier(buf, column->name);
		sqlbuf_append(buf, column->text_compare ? "::text = sy_v." : " = sy_v.");
		sqlbuf_appendf(buf, "c%d", ++alias);
		if (column->text_compare)
			sqlbuf_append(buf, "::text");
	}
}

char *
apply_sql_build_rows(const ApplySqlTable *table, const ApplySqlPlan *plan, int rows)
{
	SqlBuf buf = {0};
	int nset = 0;
	bool has_match = false;

	if ((plan->kind != APPLY_SQL_UPDATE && plan->kind != APPLY_SQL_DELETE) || plan->full || rows < 1)
		return NULL;
	for (uint16_t i = 0; i < table->ncols; i++)
	{
		if (plan->roles[i] && table->columns[i].type_name == NULL)
			return NULL;
		has_match |= (plan->roles[i] & APPLY_SQL_ROLE_MATCH) != 0;
	}
	if (!has_match)
		return NULL;
	if (plan->kind == APPLY_SQL_DELETE)
	{
		sqlbuf_append(&buf, "DELETE FROM ");
		sqlbuf_append_table(&buf, table->nspname, table->relname);
		sqlbuf_append(&buf, " AS sy_t USING");
		build_values_join(&buf, table, plan, rows, 0);
		return sqlbuf_finish(&buf);
	}
	sqlbuf_append(&buf, "UPDATE ");
	sqlbuf_append_table(&buf, table->nspname, table->relname);
	sqlbuf_append(&buf, " AS sy_t");
	for (uint16_t i = 0; i < table->ncols; i++)
	{
		if (!(plan->roles[i] & APPLY_SQL_ROLE_SET))
			continue;
		sqlbuf_append(&buf, nset == 0 ? " SET " : ", ");
		sqlbuf_append_identifier(&buf, table->columns[i].name);
		sqlbuf_appendf(&buf, " = sy_v.c%d", ++nset);
	}
	if (nset == 0)
	{
		free(buf.data);
		return NULL;
	}
	sqlbuf_append(&buf, " FROM");
	build_values_join(&buf, table, plan, rows, nset);
	return sqlbuf_finish(&buf);
}

char *
apply_sql_build(const ApplySqlTable *table, const ApplySqlPlan *plan)
{
	SqlBuf buf = {0};
	int param = 0;
	bool first = true;

	switch (plan->kind)
	{
		case APPLY_SQL_INSERT:
			return apply_sql_build_insert(table, plan, 1);
		case APPLY_SQL_UPDATE:
			sqlbuf_append(&buf, "UPDATE ");
			sqlbuf_append_table(&buf, table->nspname, table->relname);
			for (uint16_t i = 0; i < table->ncols; i++)
			{
				if (!(plan->roles[i] & APPLY_SQL_ROLE_SET))
					continue;
				sqlbuf_append(&buf, first ? " SET " : ", ");
				first = false;
				sqlbuf_append_identifier(&buf, table->columns[i].name);
				sqlbuf_appendf(&buf, " = $%d", ++param);
			}
			if (first)
			{
				/* a no-op plan: the caller skips it; never build "SET WHERE" */
				free(buf.data);
				return NULL;
			}
			if (plan->full)
				build_where_one_row(&buf, table, plan, &param);
			else
				build_where(&buf, table, plan, &param);
			break;
		case APPLY_SQL_DELETE:
			sqlbuf_append(&buf, "DELETE FROM ");
			sqlbuf_append_table(&buf, table->nspname, table->relname);
			if (plan->full)
				build_where_one_row(&buf, table, plan, &param);
			else
				build_where(&buf, table, plan, &param);
			break;
	}
	return sqlbuf_finish(&buf);
}

int
apply_sql_param_column(const uint8_t *roles, uint16_t ncols, int param, int *row)
{
	int width = 0;
	int offset;

	for (uint16_t i = 0; i < ncols; i++)
		width += ((roles[i] & APPLY_SQL_ROLE_SET) != 0) + ((roles[i] & APPLY_SQL_ROLE_MATCH) != 0);
	*row = -1;
	if (width == 0 || param < 1)
		return -1;
	*row = (param - 1) / width;
	offset = (param - 1) % width;
	for (int pass = 0; pass < 2; pass++)
	{
		int role = pass == 0 ? APPLY_SQL_ROLE_SET : APPLY_SQL_ROLE_MATCH;

		for (uint16_t i = 0; i < ncols; i++)
			if ((roles[i] & role) && offset-- == 0)
				return i;
	}
	return -1;
}

int
apply_sql_context_param(const char *context)
{
	static const char marker[] = "parameter $";
	const char *at;
	long n;

	if (context == NULL || (at = strstr(context, marker)) == NULL)
		return 0;
	at += sizeof(marker) - 1;
	if (*at < '1' || *at > '9')
		return 0;
	n = strtol(at, NULL, 10);
	return n > 0 && n <= 65535 ? (int) n : 0;
}

char *
apply_sql_truncate(const ApplySqlTable *const *tables, uint32_t ntables, uint8_t flags)
{
	SqlBuf buf = {0};

	if (ntables == 0)
		return NULL;
	sqlbuf_append(&buf, "TRUNCATE ");
	for (uint32_t i = 0; i < ntables; i++)
	{
		if (i > 0)
			sqlbuf_append(&buf, ", ");
		/* inheritance children are listed on their own when the source truncated them;
		 * a partitioned table rejects ONLY and takes its partitions along */
		if (!tables[i]->partitioned)
			sqlbuf_append(&buf, "ONLY ");
		sqlbuf_append_table(&buf, tables[i]->nspname, tables[i]->relname);
	}
	if (flags & PGOUTPUT_TRUNCATE_RESTART_IDENTITY)
		sqlbuf_append(&buf, " RESTART IDENTITY");
	if (flags & PGOUTPUT_TRUNCATE_CASCADE)
		sqlbuf_append(&buf, " CASCADE");
	return sqlbuf_finish(&buf);
}

const char *
apply_sql_format_timestamp(int64_t pg_timestamp, char *buf)
{
	int64_t unix_us = pg_timestamp + PG_EPOCH_OFFSET_US;
	int64_t seconds = unix_us / 1000000;
	int64_t micros = unix_us % 1000000;
	time_t t;
	struct tm tm;
	char date[24];

	if (micros < 0)
	{
		micros += 1000000;
		seconds -= 1;
	}
	t = (time_t) seconds;
	if (gmtime_r(&t, &tm) == NULL || strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(date, sizeof(date), "2000-01-01 00:00:00");
	snprintf(buf, APPLY_SQL_TIMESTAMP_SIZE, "%s.%06d+00", date, (int) micros);
	return buf;
}
