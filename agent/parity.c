/*
 * Row-level parity: tables described on both servers, split into primary-key leaves,
 * fingerprinted in the servers (count(*) plus bit_xor of a per-row hash of every column) -
 * large tables first in one pass in page order per side, their leaves only if that differs -
 * and every leaf that differs narrowed to the row by merging the two key-ordered (key, hash)
 * streams. verify.c gives it sessions that hold the common snapshot; repair writes the
 * source's rows.
 */
#include "switchyard/parity.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchyard/catalog_sql.h"
#include "switchyard/conninfo.h"
#include "switchyard/log.h"
#include "switchyard/touched.h"

#define PARITY_MAX_LEAVES 4096
/* key samples per leaf: enough that leaves come out roughly even */
#define PARITY_SAMPLE_PER_LEAF 64
/* sample at least this many pages, so a tiny percentage still finds rows */
#define PARITY_SAMPLE_MIN_PAGES 64
/* keys per IN-list when fetching row images of a keyless table */
#define PARITY_FETCH_BATCH 500

/* ---- a growing string ------------------------------------------------------------------- */

typedef struct ParityBuf
{
	char *data;
	size_t length;
	size_t cap;
	bool failed;
} ParityBuf;

static void
parity_buf_append(ParityBuf *buf, const char *text)
{
	size_t add = strlen(text);

	if (buf->failed)
		return;
	if (buf->length + add + 1 > buf->cap)
	{
		size_t cap = buf->cap ? buf->cap : 256;
		char *bigger;

		while (buf->length + add + 1 > cap)
			cap *= 2;
		bigger = realloc(buf->data, cap);
		if (bigger == NULL)
		{
			buf->failed = true;
			return;
		}
		buf->data = bigger;
		buf->cap = cap;
	}
	memcpy(buf->data + buf->length, text, add + 1);
	buf->length += add;
}

static void
parity_buf_printf(ParityBuf *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
parity_buf_printf(ParityBuf *buf, const char *fmt, ...)
{
	char small[256];
	char *big = NULL;
	va_list args;
	int length;

	va_start(args, fmt);
	length = vsnprintf(small, sizeof(small), fmt, args);
	va_end(args);
	if (length < 0)
	{
		buf->failed = true;
		return;
	}
	if ((size_t) length < sizeof(small))
	{
		parity_buf_append(buf, small);
		return;
	}
	big = malloc((size_t) length + 1);
	if (big == NULL)
	{
		buf->failed = true;
		return;
	}
	va_start(args, fmt);
	vsnprintf(big, (size_t) length + 1, fmt, args);
	va_end(args);
	parity_buf_append(buf, big);
	free(big);
}

/* The string, or NULL (and nothing to free) when an allocation failed. */
static char *
parity_buf_finish(ParityBuf *buf)
{
	if (buf->failed)
	{
		free(buf->data);
		return NULL;
	}
	if (buf->data == NULL)
		return strdup("");
	return buf->data;
}

/* ---- traffic ---------------------------------------------------------------------------- */

/*
 * Bytes on the wire, counted at the protocol level: what the comparison costs the network.
 * Received: DataRow messages (7 bytes plus 4 per field plus the values), row descriptions
 * and the completion messages; sent: query texts and parameters plus their framing.
 */
static atomic_uint_fast64_t parity_bytes_received;
static atomic_uint_fast64_t parity_bytes_sent;

void
parity_traffic(uint64_t *received, uint64_t *sent)
{
	*received = atomic_load(&parity_bytes_received);
	*sent = atomic_load(&parity_bytes_sent);
}

static void
parity_count_sent(const char *sql, int nparams, const char *const *params)
{
	uint64_t bytes = strlen(sql) + 40;

	for (int i = 0; i < nparams; i++)
		bytes += 4 + (params[i] != NULL ? strlen(params[i]) : 0);
	atomic_fetch_add(&parity_bytes_sent, bytes);
}

static void
parity_count_result(const PGresult *res, bool with_description)
{
	uint64_t bytes = 0;
	int nfields;

	if (res == NULL)
		return;
	nfields = PQnfields(res);
	for (int r = 0; r < PQntuples(res); r++)
	{
		bytes += 7;
		for (int f = 0; f < nfields; f++)
			bytes += 4 + (PQgetisnull(res, r, f) ? 0 : (uint64_t) PQgetlength(res, r, f));
	}
	if (with_description)
	{
		bytes += 30;            /* parse, bind, command and ready messages */
		for (int f = 0; f < nfields; f++)
			bytes += 19 + strlen(PQfname(res, f)) + 1;
	}
	atomic_fetch_add(&parity_bytes_received, bytes);
}

/* ---- errors ----------------------------------------------------------------------------- */

static void
parity_set_error(ParityError *error, ParitySide side, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
parity_set_error(ParityError *error, ParitySide side, const char *fmt, ...)
{
	va_list args;

	if (error == NULL || error->side != PARITY_SIDE_NONE)
		return;
	error->side = side;
	va_start(args, fmt);
	vsnprintf(error->message, sizeof(error->message), fmt, args);
	va_end(args);
}

static const char *
parity_side_name(ParitySide side)
{
	return side == PARITY_SIDE_TARGET ? "target" : "source";
}

/* Logs and records a failed query on one side. */
static void
parity_query_failed(ParityError *error, ParitySide side, const PGresult *res, PGconn *conn,
					const char *what, const char *table)
{
	const char *message = res != NULL ? conninfo_result_error(res) : conninfo_error(conn);

	if (table != NULL)
	{
		log_error("could not %s of table %s on the %s: %s", what, table, parity_side_name(side),
				  message);
		parity_set_error(error, side, "could not %s of table %s on the %s: %s", what, table,
						 parity_side_name(side), message);
	}
	else
	{
		log_error("could not %s on the %s: %s", what, parity_side_name(side), message);
		parity_set_error(error, side, "could not %s on the %s: %s", what, parity_side_name(side),
						 message);
	}
}

static void
parity_out_of_memory(ParityError *error)
{
	log_error("out of memory");
	parity_set_error(error, PARITY_SIDE_NONE, "out of memory");
	if (error != NULL && error->side == PARITY_SIDE_NONE)
		error->side = PARITY_SIDE_SOURCE;
}

/* A failure that recorded no reason can only have been an allocation. */
static void
parity_explain_failure(ParityError *error)
{
	if (error != NULL && error->side == PARITY_SIDE_NONE)
		parity_out_of_memory(error);
}

/* Drains what is left of a query, so the connection can take the next one. */
static void
parity_drain(PGconn *conn)
{
	PGresult *res;

	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
}

/* The one result of a query sent with PQsendQueryParams; the rest is drained. */
static PGresult *
parity_get_result(PGconn *conn)
{
	PGresult *first = PQgetResult(conn);

	parity_count_result(first, true);
	parity_drain(conn);
	return first;
}

/* ---- building blocks -------------------------------------------------------------------- */

char *
parity_quote_ident(const char *name)
{
	size_t length = 3;
	char *out;
	char *p;

	for (const char *s = name; *s; s++)
		length += *s == '"' ? 2 : 1;
	out = malloc(length);
	if (out == NULL)
		return NULL;
	p = out;
	*p++ = '"';
	for (const char *s = name; *s; s++)
	{
		if (*s == '"')
			*p++ = '"';
		*p++ = *s;
	}
	*p++ = '"';
	*p = '\0';
	return out;
}

/*
 * Built-in types whose extended hash depends only on the value, so both clusters agree:
 * the OIDs of built-in types are fixed. Enums are not here (they hash by OID), nor types
 * without an extended hash (json, xml, geometric, money, tsvector, bit, ...).
 */
static bool
parity_hashable_oid(uint32_t oid)
{
	switch (oid)
	{
		case 16:                /* bool */
		case 17:                /* bytea */
		case 18:                /* "char" */
		case 19:                /* name */
		case 20:                /* int8 */
		case 21:                /* int2 */
		case 23:                /* int4 */
		case 25:                /* text */
		case 26:                /* oid */
		case 650:               /* cidr */
		case 700:               /* float4 */
		case 701:               /* float8 */
		case 774:               /* macaddr8 */
		case 829:               /* macaddr */
		case 869:               /* inet */
		case 1042:              /* bpchar */
		case 1043:              /* varchar */
		case 1082:              /* date */
		case 1083:              /* time */
		case 1114:              /* timestamp */
		case 1184:              /* timestamptz */
		case 1186:              /* interval */
		case 1266:              /* timetz */
		case 1700:              /* numeric */
		case 2950:              /* uuid */
		case 3220:              /* pg_lsn */
		case 3802:              /* jsonb */
			return true;
		default:
			return false;
	}
}

#define PARITY_MONEY_OID 790

ParityCast
parity_column_cast(const ParityTypeInfo *type)
{
	if (type->typtype == 'd')
	{
		if (type->base_oid == PARITY_MONEY_OID)
			return PARITY_CAST_NUMERIC;
		if (parity_hashable_oid(type->base_oid) ||
			(type->base_element_oid != 0 && parity_hashable_oid(type->base_element_oid)))
			return PARITY_CAST_BASE;
		return PARITY_CAST_TEXT;
	}
	if (type->type_oid == PARITY_MONEY_OID)
		return PARITY_CAST_NUMERIC;
	if (parity_hashable_oid(type->type_oid))
		return PARITY_CAST_NONE;
	/* arrays hash element by element */
	if (type->element_oid != 0 && parity_hashable_oid(type->element_oid))
		return PARITY_CAST_NONE;
	return PARITY_CAST_TEXT;
}

/*
 * Text hashes ask their collation whether it is deterministic, a lookup per row unless the
 * collation is "C"; bytes are then hashed as they are, the same for every deterministic
 * collation, and values that a nondeterministic one calls equal still differ.
 */
#define PARITY_COLLATE_C " COLLATE \"C\""

const char *
parity_column_hash_function(const ParityTypeInfo *type, ParityCast cast, const char **argument_cast)
{
	uint32_t oid = type->type_oid;

	*argument_cast = "";
	switch (cast)
	{
		case PARITY_CAST_TEXT:
			*argument_cast = PARITY_COLLATE_C;
			return "hashtextextended";
		case PARITY_CAST_NUMERIC:
			return "hash_numeric_extended";
		case PARITY_CAST_BASE:
			if (type->base_element_oid != 0)
				return NULL;
			oid = type->base_oid;
			break;
		case PARITY_CAST_NONE:
			if (type->element_oid != 0)
				return NULL;
			break;
	}
	switch (oid)
	{
		case 20:
			return "hashint8extended";
		case 21:
			return "hashint2extended";
		case 23:
			return "hashint4extended";
		case 25:
		case 1043:              /* varchar is binary-coercible to text */
			*argument_cast = PARITY_COLLATE_C;
			return "hashtextextended";
		case 1042:
			*argument_cast = PARITY_COLLATE_C;
			return "hashbpcharextended";
		case 1700:
			return "hash_numeric_extended";
		case 2950:
			return "uuid_hash_extended";
		case 3802:
			return "jsonb_hash_extended";
		case 700:
			return "hashfloat4extended";
		case 701:
			return "hashfloat8extended";
		case 1114:
			return "timestamp_hash_extended";
		case 1184:
			/*
			 * timestamptz's own hash is timestamp's. AT TIME ZONE with a zero interval hands
			 * the same microseconds over as a timestamp (infinity included) without the cast's
			 * calendar round trip, which cost a tenth of the whole row hash.
			 */
			*argument_cast = " AT TIME ZONE INTERVAL '0'";
			return "timestamp_hash_extended";
		case 1186:
			return "interval_hash_extended";
		case 1083:
			return "time_hash_extended";
		case 1266:
			return "timetz_hash_extended";
		case 19:
			return "hashnameextended";
		case 26:
			return "hashoidextended";
		case 3220:
			return "pg_lsn_hash_extended";
		default:
			/* bool, bytea, date, "char", arrays, ...: no SQL-callable function of their type */
			return NULL;
	}
}

ParityKeyOrder
parity_key_order(const ParityTypeInfo *type)
{
	uint32_t oid = type->typtype == 'd' ? type->base_oid : type->type_oid;

	switch (oid)
	{
		case 20:                /* int8 */
		case 21:                /* int2 */
		case 23:                /* int4 */
			return PARITY_KEY_INT;
		case 1700:              /* numeric */
			return PARITY_KEY_NUMERIC;
		case 700:               /* float4 */
		case 701:               /* float8 */
			return PARITY_KEY_FLOAT;
		default:
			return PARITY_KEY_TEXT;
	}
}

/* A column as it enters the row hash. */
static void
parity_append_hashed_column(ParityBuf *buf, const ParityColumn *column)
{
	switch (column->cast)
	{
		case PARITY_CAST_NONE:
			parity_buf_append(buf, column->quoted);
			break;
		case PARITY_CAST_TEXT:
			parity_buf_printf(buf, "%s::text", column->quoted);
			break;
		case PARITY_CAST_NUMERIC:
			parity_buf_printf(buf, "%s::numeric", column->quoted);
			break;
		case PARITY_CAST_BASE:
			parity_buf_printf(buf, "%s::%s", column->quoted, column->base_type_name);
			break;
	}
}

/*
 * Per-column hashes with distinct seeds, XORed and mixed once more: equal rows give equal
 * hashes on both servers, a value moved to another column or row does not, and no record
 * is built per row for the common types (hash_record_extended does, which costs about a
 * third of the time). Columns of other types share one hash_record_extended(ROW(...)).
 */
static void
parity_append_row_hash(ParityBuf *buf, const ParityTable *table)
{
	int with_function = 0;
	bool first = true;

	if (table->ncolumns == 0)
	{
		parity_buf_append(buf, "0::bigint");
		return;
	}
	for (int i = 0; i < table->ncolumns; i++)
		with_function += table->columns[i].hash_function != NULL;
	if (with_function == 0)
	{
		parity_buf_append(buf, "hash_record_extended(ROW(");
		for (int i = 0; i < table->ncolumns; i++)
		{
			if (i > 0)
				parity_buf_append(buf, ", ");
			parity_append_hashed_column(buf, &table->columns[i]);
		}
		parity_buf_append(buf, "), 0)");
		return;
	}
	parity_buf_append(buf, "hashint8extended(");
	for (int i = 0; i < table->ncolumns; i++)
	{
		const ParityColumn *column = &table->columns[i];

		if (column->hash_function == NULL)
			continue;
		parity_buf_printf(buf, "%scoalesce(%s(", first ? "" : " # ", column->hash_function);
		parity_append_hashed_column(buf, column);
		parity_buf_printf(buf, "%s, %d), %d)", column->hash_argument_cast != NULL ? column->hash_argument_cast : "",
						  i + 1, i + 1);
		first = false;
	}
	if (with_function < table->ncolumns)
	{
		parity_buf_append(buf, " # hash_record_extended(ROW(");
		first = true;
		for (int i = 0; i < table->ncolumns; i++)
		{
			if (table->columns[i].hash_function != NULL)
				continue;
			if (!first)
				parity_buf_append(buf, ", ");
			parity_append_hashed_column(buf, &table->columns[i]);
			first = false;
		}
		parity_buf_append(buf, "), 0)");
	}
	parity_buf_append(buf, ", 0)");
}

char *
parity_row_hash_sql(const ParityTable *table)
{
	ParityBuf buf = {0};

	parity_append_row_hash(&buf, table);
	return parity_buf_finish(&buf);
}

/* "k" or "(k1, k2)" */
static void
parity_append_key_list(ParityBuf *buf, const ParityTable *table)
{
	if (table->nkeys > 1)
		parity_buf_append(buf, "(");
	for (int i = 0; i < table->nkeys; i++)
	{
		if (i > 0)
			parity_buf_append(buf, ", ");
		parity_buf_append(buf, table->columns[table->key[i]].quoted);
	}
	if (table->nkeys > 1)
		parity_buf_append(buf, ")");
}

/* "$1::t" or "($1::t1, $2::t2)" */
static void
parity_append_key_params(ParityBuf *buf, const ParityTable *table, int first_param)
{
	if (table->nkeys > 1)
		parity_buf_append(buf, "(");
	for (int i = 0; i < table->nkeys; i++)
	{
		if (i > 0)
			parity_buf_append(buf, ", ");
		parity_buf_printf(buf, "$%d::%s", first_param + i, table->columns[table->key[i]].type_name);
	}
	if (table->nkeys > 1)
		parity_buf_append(buf, ")");
}

static void
parity_append_range(ParityBuf *buf, const ParityTable *table, bool lower, bool upper, int first_param)
{
	if (lower)
	{
		parity_append_key_list(buf, table);
		parity_buf_append(buf, " >= ");
		parity_append_key_params(buf, table, first_param);
		first_param += table->nkeys;
	}
	if (lower && upper)
		parity_buf_append(buf, " AND ");
	if (upper)
	{
		parity_append_key_list(buf, table);
		parity_buf_append(buf, " < ");
		parity_append_key_params(buf, table, first_param);
	}
}

char *
parity_range_sql(const ParityTable *table, bool lower, bool upper, int first_param)
{
	ParityBuf buf = {0};

	parity_append_range(&buf, table, lower, upper, first_param);
	return parity_buf_finish(&buf);
}

static void
parity_append_from(ParityBuf *buf, const ParityTable *table)
{
	parity_buf_printf(buf, " FROM %s%s", table->only ? "ONLY " : "", table->qualified);
}

static void
parity_append_where_range(ParityBuf *buf, const ParityTable *table, bool lower, bool upper)
{
	if (!lower && !upper)
		return;
	parity_buf_append(buf, " WHERE ");
	parity_append_range(buf, table, lower, upper, 1);
}

int
parity_touched_ncols(const ParityTable *table)
{
	return table->keyless ? (table->grouped ? 1 : 0) : table->nkeys;
}

const ParityColumn *
parity_touched_column(const ParityTable *table, int k)
{
	return &table->columns[table->keyless ? table->group : table->key[k]];
}

/* " WHERE (k1, k2) IN (SELECT k.c1::t1, k.c2::t2 FROM unnest($1::text[], $2::text[]) AS k(c1, c2))" */
static void
parity_append_touched_filter(ParityBuf *buf, const ParityTable *table)
{
	int ncols = parity_touched_ncols(table);

	/* values arrive in text form: the input function of each column's type reads them */
	parity_buf_append(buf, " WHERE (");
	for (int k = 0; k < ncols; k++)
		parity_buf_printf(buf, "%s%s", k > 0 ? ", " : "", parity_touched_column(table, k)->quoted);
	parity_buf_append(buf, ") IN (SELECT ");
	for (int k = 0; k < ncols; k++)
		parity_buf_printf(buf, "%sk.c%d::%s", k > 0 ? ", " : "", k + 1, parity_touched_column(table, k)->type_name);
	parity_buf_append(buf, " FROM unnest(");
	for (int k = 0; k < ncols; k++)
		parity_buf_printf(buf, "%s$%d::text[]", k > 0 ? ", " : "", k + 1);
	parity_buf_append(buf, ") AS k(");
	for (int k = 0; k < ncols; k++)
		parity_buf_printf(buf, "%sc%d", k > 0 ? ", " : "", k + 1);
	parity_buf_append(buf, "))");
}

/*
 * A keyless table's fingerprint, of all rows or of the touched groups'. XOR cancels rows that
 * appear twice, so a multiset also gets a sum of the hashes' low bits; OFFSET 0 keeps the
 * planner from computing the hash twice per row.
 */
static char *
parity_multiset_fingerprint_sql(const ParityTable *table, bool touched)
{
	ParityBuf buf = {0};

	parity_buf_append(&buf, "SELECT count(*), coalesce(bit_xor(h), 0), "
					  "coalesce(sum(h & 2147483647), 0) FROM (SELECT ");
	parity_append_row_hash(&buf, table);
	parity_buf_append(&buf, " AS h");
	parity_append_from(&buf, table);
	if (touched)
		parity_append_touched_filter(&buf, table);
	parity_buf_append(&buf, " OFFSET 0) s");
	return parity_buf_finish(&buf);
}

char *
parity_fingerprint_sql(const ParityTable *table, bool lower, bool upper)
{
	ParityBuf buf = {0};

	if (table->keyless)
		return parity_multiset_fingerprint_sql(table, false);
	parity_buf_append(&buf, "SELECT count(*), coalesce(bit_xor(");
	parity_append_row_hash(&buf, table);
	parity_buf_append(&buf, "), 0)");
	parity_append_from(&buf, table);
	parity_append_where_range(&buf, table, lower, upper);
	return parity_buf_finish(&buf);
}

char *
parity_pages_fingerprint_sql(const ParityTable *table, bool lower, bool upper)
{
	ParityBuf buf = {0};

	parity_buf_append(&buf, "SELECT count(*), coalesce(bit_xor(");
	parity_append_row_hash(&buf, table);
	parity_buf_append(&buf, "), 0)");
	parity_append_from(&buf, table);
	/* a TID range scan: pages in their order, no index to walk */
	if (lower || upper)
		parity_buf_printf(&buf, " WHERE %s%s%s", lower ? "ctid >= $1::tid" : "", lower && upper ? " AND " : "",
						  upper ? (lower ? "ctid < $2::tid" : "ctid < $1::tid") : "");
	return parity_buf_finish(&buf);
}

char *
parity_keys_fingerprint_sql(const ParityTable *table)
{
	ParityBuf buf = {0};

	if (parity_touched_ncols(table) == 0)
		return NULL;
	if (table->keyless)
		return parity_multiset_fingerprint_sql(table, true);
	parity_buf_append(&buf, "SELECT count(*), coalesce(bit_xor(");
	parity_append_row_hash(&buf, table);
	parity_buf_append(&buf, "), 0)");
	parity_append_from(&buf, table);
	parity_append_touched_filter(&buf, table);
	return parity_buf_finish(&buf);
}

/* A key column as the streams carry it: integers as they are, the rest as text. */
static void
parity_append_stream_key(ParityBuf *buf, const ParityColumn *column, bool order)
{
	const char *collate = order ? " COLLATE \"C\"" : "";

	switch (column->key_order)
	{
		case PARITY_KEY_INT:
			parity_buf_append(buf, column->quoted);
			break;
		case PARITY_KEY_NUMERIC:
			parity_buf_printf(buf, "pg_catalog.trim_scale(%s)::text%s", column->quoted, collate);
			break;
		case PARITY_KEY_FLOAT:
			parity_buf_printf(buf, "(CASE WHEN %s = 0 THEN '0' ELSE %s::text END)%s", column->quoted,
							  column->quoted, collate);
			break;
		case PARITY_KEY_TEXT:
			parity_buf_printf(buf, "%s::text%s", column->quoted, collate);
			break;
	}
}

char *
parity_stream_sql(const ParityTable *table, bool lower, bool upper)
{
	ParityBuf buf = {0};

	if (table->keyless)
	{
		parity_buf_append(&buf, "SELECT h, count(*) FROM (SELECT ");
		parity_append_row_hash(&buf, table);
		parity_buf_append(&buf, " AS h");
		parity_append_from(&buf, table);
		parity_buf_append(&buf, " OFFSET 0) s GROUP BY h ORDER BY h");
		return parity_buf_finish(&buf);
	}
	parity_buf_append(&buf, "SELECT ");
	for (int i = 0; i < table->nkeys; i++)
	{
		parity_append_stream_key(&buf, &table->columns[table->key[i]], false);
		parity_buf_append(&buf, ", ");
	}
	parity_append_row_hash(&buf, table);
	parity_append_from(&buf, table);
	parity_append_where_range(&buf, table, lower, upper);
	parity_buf_append(&buf, " ORDER BY ");
	for (int i = 0; i < table->nkeys; i++)
	{
		if (i > 0)
			parity_buf_append(&buf, ", ");
		parity_append_stream_key(&buf, &table->columns[table->key[i]], true);
	}
	return parity_buf_finish(&buf);
}

static void
parity_append_column_list(ParityBuf *buf, const ParityTable *table, bool writable_only)
{
	bool first = true;

	for (int i = 0; i < table->ncolumns; i++)
	{
		if (writable_only && table->columns[i].generated)
			continue;
		if (!first)
			parity_buf_append(buf, ", ");
		parity_buf_append(buf, table->columns[i].quoted);
		first = false;
	}
}

/* " WHERE (k1, k2) = ($n::t1, $n+1::t2)" */
static void
parity_append_key_equals(ParityBuf *buf, const ParityTable *table, int first_param)
{
	parity_buf_append(buf, " WHERE ");
	parity_append_key_list(buf, table);
	parity_buf_append(buf, " = ");
	parity_append_key_params(buf, table, first_param);
}

char *
parity_row_sql(const ParityTable *table)
{
	ParityBuf buf = {0};

	parity_buf_append(&buf, "SELECT ");
	parity_append_column_list(&buf, table, false);
	parity_append_from(&buf, table);
	parity_append_key_equals(&buf, table, 1);
	return parity_buf_finish(&buf);
}

/*
 * What the row hash takes of one column: values equal under their type (numeric 1.5 and
 * 1.50, float 0 and -0, jsonb numbers alike) give the same token, so a changed row names
 * only the columns that differ as the comparison sees them.
 */
static void
parity_append_column_token(ParityBuf *buf, const ParityColumn *column, int i)
{
	if (column->hash_function != NULL)
	{
		parity_buf_printf(buf, "%s(", column->hash_function);
		parity_append_hashed_column(buf, column);
		parity_buf_printf(buf, "%s, %d)", column->hash_argument_cast != NULL ? column->hash_argument_cast : "",
						  i + 1);
		return;
	}
	parity_buf_append(buf, "hash_record_extended(ROW(");
	parity_append_hashed_column(buf, column);
	parity_buf_append(buf, "), 0)");
}

/* parity_row_sql, followed by each column's token (parity_append_column_token). */
char *
parity_detail_row_sql(const ParityTable *table)
{
	ParityBuf buf = {0};

	parity_buf_append(&buf, "SELECT ");
	parity_append_column_list(&buf, table, false);
	for (int i = 0; i < table->ncolumns; i++)
	{
		parity_buf_append(&buf, ", ");
		parity_append_column_token(&buf, &table->columns[i], i);
	}
	parity_append_from(&buf, table);
	parity_append_key_equals(&buf, table, 1);
	return parity_buf_finish(&buf);
}

static bool
parity_keys_equal(char *const *a, char *const *b, int nkeys)
{
	for (int i = 0; i < nkeys; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

bool
parity_leaf_bounds(char ***sample, int nsample, int nkeys, int nleaves, char ****bounds, int *nbounds)
{
	char ***out = NULL;
	int n = 0;

	*bounds = NULL;
	*nbounds = 0;
	if (nleaves <= 1 || nsample <= 0)
		return true;
	out = calloc((size_t) nleaves, sizeof(char **));
	if (out == NULL)
		return false;
	for (int i = 1; i < nleaves; i++)
	{
		int64_t index = (int64_t) i * nsample / nleaves;
		char **candidate;

		if (index >= nsample)
			break;
		candidate = sample[index];
		/* a boundary equal to the last one would make an empty leaf */
		if (n > 0 && parity_keys_equal(out[n - 1], candidate, nkeys))
			continue;
		out[n++] = candidate;
	}
	if (n == 0)
	{
		free(out);
		return true;
	}
	*bounds = out;
	*nbounds = n;
	return true;
}

/* ---- the merge -------------------------------------------------------------------------- */

static int
parity_compare_int_text(const char *a, const char *b)
{
	long long x = strtoll(a, NULL, 10);
	long long y = strtoll(b, NULL, 10);

	return x < y ? -1 : x > y ? 1 : 0;
}

int
parity_key_compare(const ParityKeyOrder *orders, int nkeys, char *const *a, char *const *b)
{
	for (int i = 0; i < nkeys; i++)
	{
		int cmp = orders[i] == PARITY_KEY_INT ? parity_compare_int_text(a[i], b[i])
			: strcmp(a[i], b[i]);

		if (cmp != 0)
			return cmp < 0 ? -1 : 1;
	}
	return 0;
}

bool
parity_merge(const ParityKeyOrder *orders, int nkeys, ParityNextFn next_source, void *source_arg,
			 ParityNextFn next_target, void *target_arg, ParityEmitFn emit, void *emit_arg)
{
	ParityRow source;
	ParityRow target;
	int has_source;
	int has_target;

	memset(&source, 0, sizeof(source));
	memset(&target, 0, sizeof(target));
	has_source = next_source(source_arg, &source);
	has_target = next_target(target_arg, &target);
	for (;;)
	{
		int cmp;

		if (has_source < 0 || has_target < 0)
			return false;
		if (has_source == 0 && has_target == 0)
			return true;
		if (has_source == 0)
			cmp = 1;
		else if (has_target == 0)
			cmp = -1;
		else
			cmp = parity_key_compare(orders, nkeys, source.key, target.key);

		if (cmp < 0)
		{
			if (!emit(emit_arg, PARITY_MISSING, &source, NULL, source.count))
				return false;
			has_source = next_source(source_arg, &source);
		}
		else if (cmp > 0)
		{
			if (!emit(emit_arg, PARITY_EXTRA, NULL, &target, target.count))
				return false;
			has_target = next_target(target_arg, &target);
		}
		else
		{
			bool ok = true;

			if (source.count > target.count)
				ok = emit(emit_arg, PARITY_MISSING, &source, &target, source.count - target.count);
			else if (source.count < target.count)
				ok = emit(emit_arg, PARITY_EXTRA, &source, &target, target.count - source.count);
			else if (source.hash != target.hash)
				ok = emit(emit_arg, PARITY_CHANGED, &source, &target, 1);
			if (!ok)
				return false;
			has_source = next_source(source_arg, &source);
			has_target = next_target(target_arg, &target);
		}
	}
}

const char *
parity_diff_kind_name(ParityDiffKind kind)
{
	switch (kind)
	{
		case PARITY_MISSING:
			return "missing";
		case PARITY_EXTRA:
			return "extra";
		case PARITY_CHANGED:
			return "changed";
	}
	return "?";
}

/* ---- tables: description ---------------------------------------------------------------- */

#define PARITY_TABLE_SQL \
	"SELECT c.oid, c.relkind::text, format('%I.%I', n.nspname, c.relname) " \
	"FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace " \
	"WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')"

#define PARITY_COLUMNS_SQL \
	"SELECT a.attname, " \
	"       pg_catalog.format_type(a.atttypid, a.atttypmod) || " \
	"         CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation " \
	"              THEN ' COLLATE ' || pg_catalog.quote_ident(co.collname) ELSE '' END, " \
	"       " CATALOG_CAST_TYPE_NAME_SQL("a.atttypid") ", a.atttypid, t.typtype::text, " \
	"       CASE WHEN t.typlen = -1 AND t.typelem <> 0 " \
	"             AND t.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc " \
	"            THEN t.typelem ELSE 0 END, " \
	"       t.typbasetype, " CATALOG_CAST_TYPE_NAME_SQL("NULLIF(t.typbasetype, 0)") ", " \
	"       CASE WHEN bt.typlen = -1 AND bt.typelem <> 0 " \
	"             AND bt.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc " \
	"            THEN bt.typelem ELSE 0 END, " \
	"       a.attgenerated <> '' " \
	"FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid " \
	"LEFT JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype " \
	"LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation " \
	"WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"

/* the primary key, else the replica identity index: the key replication itself relies on */
#define PARITY_KEY_SQL \
	"SELECT a.attname FROM (SELECT i.indkey FROM pg_catalog.pg_index i " \
	"                        WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisreplident) " \
	"                          AND i.indexprs IS NULL AND i.indpred IS NULL " \
	"                        ORDER BY i.indisprimary DESC LIMIT 1) i, " \
	"     unnest(i.indkey) WITH ORDINALITY k(attnum, ord) " \
	"JOIN pg_catalog.pg_attribute a ON a.attrelid = $1 AND a.attnum = k.attnum ORDER BY k.ord"

/* some unique index of the target covers only key columns: the key is unique there too */
#define PARITY_UNIQUE_SQL \
	"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i " \
	"               WHERE i.indrelid = $1 AND i.indisunique AND i.indexprs IS NULL " \
	"                 AND i.indpred IS NULL " \
	"                 AND (SELECT array_agg(a.attname::text) FROM unnest(i.indkey) k(attnum) " \
	"                      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid " \
	"                       AND a.attnum = k.attnum) <@ $2::text[])"

/* a keyless table's candidate group columns on one side (TOUCHED_GROUP_COLUMN_SQL) */
#define PARITY_GROUP_SQL \
	"SELECT a.attname FROM pg_catalog.pg_attribute a " \
	"WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND " TOUCHED_GROUP_COLUMN_SQL("a.attrelid")

typedef struct ParitySideColumn
{
	const char *name;
	const char *full_type;      /* with typmod and collation: what must match */
	const char *type_name;
	const char *base_type_name;
	ParityTypeInfo info;
	bool generated;
	bool matched;
} ParitySideColumn;

static bool
parity_add_issue(ParityTable *table, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool
parity_add_issue(ParityTable *table, const char *fmt, ...)
{
	char text[1024];
	char **bigger;
	va_list args;

	va_start(args, fmt);
	vsnprintf(text, sizeof(text), fmt, args);
	va_end(args);
	bigger = realloc(table->schema_issues, (size_t) (table->nschema_issues + 1) * sizeof(char *));
	if (bigger == NULL)
		return false;
	table->schema_issues = bigger;
	bigger[table->nschema_issues] = strdup(text);
	if (bigger[table->nschema_issues] == NULL)
		return false;
	table->nschema_issues++;
	return true;
}

/* Looks schema.name up: *oid = 0 when it does not exist. */
static bool
parity_lookup_table(PGconn *conn, ParitySide side, const char *schema, const char *name,
					uint32_t *oid, char *relkind, char **display, ParityError *error)
{
	const char *params[2] = {schema, name};
	PGresult *res = PQexecParams(conn, PARITY_TABLE_SQL, 2, NULL, params, NULL, NULL, 0);
	bool ok = false;

	*oid = 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		parity_query_failed(error, side, res, conn, "look up the table", name);
		goto cleanup;
	}
	if (PQntuples(res) == 1)
	{
		*oid = (uint32_t) strtoul(PQgetvalue(res, 0, 0), NULL, 10);
		*relkind = PQgetvalue(res, 0, 1)[0];
		if (display != NULL)
		{
			*display = strdup(PQgetvalue(res, 0, 2));
			if (*display == NULL)
			{
				parity_out_of_memory(error);
				goto cleanup;
			}
		}
	}
	ok = true;

cleanup:
	PQclear(res);
	return ok;
}

static PGresult *
parity_query_oid(PGconn *conn, const char *sql, uint32_t oid)
{
	char text[16];
	const char *params[1] = {text};

	snprintf(text, sizeof(text), "%u", oid);
	return PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
}

/* One catalog query by table oid on each side; false (error set) when either fails. */
static bool
parity_query_both(PGconn *source, uint32_t source_oid, PGconn *target, uint32_t target_oid, const char *sql,
				  const char *what, const char *display, PGresult **source_res, PGresult **target_res,
				  ParityError *error)
{
	*source_res = parity_query_oid(source, sql, source_oid);
	if (PQresultStatus(*source_res) != PGRES_TUPLES_OK)
	{
		parity_query_failed(error, PARITY_SIDE_SOURCE, *source_res, source, what, display);
		return false;
	}
	*target_res = parity_query_oid(target, sql, target_oid);
	if (PQresultStatus(*target_res) != PGRES_TUPLES_OK)
	{
		parity_query_failed(error, PARITY_SIDE_TARGET, *target_res, target, what, display);
		return false;
	}
	return true;
}

/* Some row of res has value in its first column. */
static bool
parity_result_has(const PGresult *res, const char *value)
{
	for (int r = 0; r < PQntuples(res); r++)
		if (strcmp(PQgetvalue(res, r, 0), value) == 0)
			return true;
	return false;
}

/* Columns of one side, pointing into res. */
static bool
parity_side_columns(PGresult *res, ParitySideColumn **out, int *count)
{
	int n = PQntuples(res);
	ParitySideColumn *columns = calloc((size_t) (n > 0 ? n : 1), sizeof(ParitySideColumn));

	if (columns == NULL)
		return false;
	for (int i = 0; i < n; i++)
	{
		ParitySideColumn *c = &columns[i];

		c->name = PQgetvalue(res, i, 0);
		c->full_type = PQgetvalue(res, i, 1);
		c->type_name = PQgetvalue(res, i, 2);
		c->info.type_oid = (uint32_t) strtoul(PQgetvalue(res, i, 3), NULL, 10);
		c->info.typtype = PQgetvalue(res, i, 4)[0];
		c->info.element_oid = (uint32_t) strtoul(PQgetvalue(res, i, 5), NULL, 10);
		c->info.base_oid = (uint32_t) strtoul(PQgetvalue(res, i, 6), NULL, 10);
		c->base_type_name = PQgetisnull(res, i, 7) ? NULL : PQgetvalue(res, i, 7);
		c->info.base_element_oid = (uint32_t) strtoul(PQgetvalue(res, i, 8), NULL, 10);
		c->generated = PQgetvalue(res, i, 9)[0] == 't';
	}
	*out = columns;
	*count = n;
	return true;
}

/* A PostgreSQL array literal of the names: {"a","b"} */
static char *
parity_text_array(char **names, int n)
{
	ParityBuf buf = {0};

	parity_buf_append(&buf, "{");
	for (int i = 0; i < n; i++)
	{
		parity_buf_append(&buf, i > 0 ? ",\"" : "\"");
		for (const char *p = names[i]; *p; p++)
		{
			char ch[3] = {'\\', *p, '\0'};

			parity_buf_append(&buf, *p == '"' || *p == '\\' ? ch : ch + 1);
		}
		parity_buf_append(&buf, "\"");
	}
	parity_buf_append(&buf, "}");
	return parity_buf_finish(&buf);
}

static bool
parity_new_table(const char *schema, const char *name, const char *display, ParityTable **out)
{
	ParityTable *table = calloc(1, sizeof(*table));
	char *quoted_schema = NULL;
	char *quoted_name = NULL;
	bool ok = false;

	*out = NULL;
	if (table == NULL)
		goto cleanup;
	table->schema = strdup(schema);
	table->name = strdup(name);
	table->display = strdup(display);
	quoted_schema = parity_quote_ident(schema);
	quoted_name = parity_quote_ident(name);
	if (table->schema == NULL || table->name == NULL || table->display == NULL ||
		quoted_schema == NULL || quoted_name == NULL)
		goto cleanup;
	table->qualified = malloc(strlen(quoted_schema) + strlen(quoted_name) + 2);
	if (table->qualified == NULL)
		goto cleanup;
	sprintf(table->qualified, "%s.%s", quoted_schema, quoted_name);
	table->only = true;
	*out = table;
	table = NULL;
	ok = true;

cleanup:
	free(quoted_schema);
	free(quoted_name);
	parity_table_free(table);
	return ok;
}

bool
parity_table_missing(const char *display, ParityTable **out)
{
	if (!parity_new_table("", display, display, out))
		return false;
	if (!parity_add_issue(*out, "table is missing on the source"))
	{
		parity_table_free(*out);
		*out = NULL;
		return false;
	}
	return true;
}

static bool
parity_fill_column(ParityColumn *column, const ParitySideColumn *source, const ParitySideColumn *target)
{
	column->name = strdup(source->name);
	column->quoted = parity_quote_ident(source->name);
	column->type_name = strdup(source->type_name);
	column->cast = parity_column_cast(&source->info);
	column->hash_function = parity_column_hash_function(&source->info, column->cast,
														 &column->hash_argument_cast);
	column->key_order = parity_key_order(&source->info);
	column->generated = target->generated;
	if (column->cast == PARITY_CAST_BASE)
	{
		column->base_type_name = strdup(source->base_type_name != NULL ? source->base_type_name : "text");
		if (column->base_type_name == NULL)
			return false;
	}
	return column->name != NULL && column->quoted != NULL && column->type_name != NULL;
}

bool
parity_table_describe(PGconn *source, PGconn *target, const char *schema, const char *name,
					  ParityTable **out, ParityError *error)
{
	ParityTable *table = NULL;
	PGresult *source_columns = NULL;
	PGresult *target_columns = NULL;
	PGresult *key = NULL;
	PGresult *unique = NULL;
	PGresult *group = NULL;
	PGresult *source_group = NULL;
	ParitySideColumn *scols = NULL;
	ParitySideColumn *tcols = NULL;
	char **key_names = NULL;
	char *display = NULL;
	char *key_array = NULL;
	uint32_t source_oid = 0;
	uint32_t target_oid = 0;
	char source_kind = 'r';
	char target_kind = 'r';
	int nscols = 0;
	int ntcols = 0;
	bool key_broken = false;
	bool ok = false;

	*out = NULL;
	if (!parity_lookup_table(source, PARITY_SIDE_SOURCE, schema, name, &source_oid, &source_kind,
							 &display, error))
		goto cleanup;
	if (source_oid == 0)
	{
		char *quoted_schema = parity_quote_ident(schema);
		char *quoted_name = parity_quote_ident(name);
		char shown[1024];

		snprintf(shown, sizeof(shown), "%s.%s", quoted_schema ? quoted_schema : schema,
				 quoted_name ? quoted_name : name);
		free(quoted_schema);
		free(quoted_name);
		if (!parity_table_missing(shown, &table))
			goto cleanup;
		*out = table;
		table = NULL;
		ok = true;
		goto cleanup;
	}
	if (!parity_new_table(schema, name, display, &table))
		goto cleanup;
	table->only = source_kind == 'r';
	if (!parity_lookup_table(target, PARITY_SIDE_TARGET, schema, name, &target_oid, &target_kind,
							 NULL, error))
		goto cleanup;
	if (target_oid == 0)
	{
		if (!parity_add_issue(table, "table is missing on the target"))
			goto cleanup;
		*out = table;
		table = NULL;
		ok = true;
		goto cleanup;
	}

	if (!parity_query_both(source, source_oid, target, target_oid, PARITY_COLUMNS_SQL, "read the columns", display,
						   &source_columns, &target_columns, error))
		goto cleanup;
	if (!parity_side_columns(source_columns, &scols, &nscols) ||
		!parity_side_columns(target_columns, &tcols, &ntcols))
		goto cleanup;

	table->columns = calloc((size_t) (nscols > 0 ? nscols : 1), sizeof(ParityColumn));
	if (table->columns == NULL)
		goto cleanup;
	for (int i = 0; i < nscols; i++)
	{
		ParitySideColumn *match = NULL;
		char *quoted = parity_quote_ident(scols[i].name);

		if (quoted == NULL)
			goto cleanup;
		for (int j = 0; j < ntcols; j++)
			if (strcmp(tcols[j].name, scols[i].name) == 0)
				match = &tcols[j];
		if (match == NULL)
		{
			bool added = parity_add_issue(table, "column %s is missing on the target", quoted);

			free(quoted);
			if (!added)
				goto cleanup;
			continue;
		}
		match->matched = true;
		if (strcmp(match->full_type, scols[i].full_type) != 0)
		{
			bool added = parity_add_issue(table, "column %s is of type %s on the source but %s on the target",
										  quoted, scols[i].full_type, match->full_type);

			free(quoted);
			if (!added)
				goto cleanup;
			continue;
		}
		free(quoted);
		if (!parity_fill_column(&table->columns[table->ncolumns++], &scols[i], match))
			goto cleanup;
	}
	for (int j = 0; j < ntcols; j++)
	{
		char *quoted;
		bool added;

		if (tcols[j].matched)
			continue;
		quoted = parity_quote_ident(tcols[j].name);
		if (quoted == NULL)
			goto cleanup;
		added = parity_add_issue(table, "column %s is missing on the source", quoted);
		free(quoted);
		if (!added)
			goto cleanup;
	}

	key = parity_query_oid(source, PARITY_KEY_SQL, source_oid);
	if (PQresultStatus(key) != PGRES_TUPLES_OK)
	{
		parity_query_failed(error, PARITY_SIDE_SOURCE, key, source, "read the primary key", display);
		goto cleanup;
	}
	table->nkeys = PQntuples(key);
	table->keyless = table->nkeys == 0;
	if (table->nkeys > 0)
	{
		table->key = calloc((size_t) table->nkeys, sizeof(int));
		key_names = calloc((size_t) table->nkeys, sizeof(char *));
		if (table->key == NULL || key_names == NULL)
			goto cleanup;
	}
	for (int k = 0; k < table->nkeys; k++)
	{
		const char *key_name = PQgetvalue(key, k, 0);
		int found = -1;

		key_names[k] = PQgetvalue(key, k, 0);
		for (int i = 0; i < table->ncolumns; i++)
			if (strcmp(table->columns[i].name, key_name) == 0)
				found = i;
		if (found < 0)
			key_broken = true;
		table->key[k] = found;
	}
	if (key_broken)
	{
		if (!parity_add_issue(table, "the key cannot be compared: a key column is missing or differs"))
			goto cleanup;
		table->comparable = false;
		*out = table;
		table = NULL;
		ok = true;
		goto cleanup;
	}
	if (table->nkeys > 0)
	{
		char oid_text[16];
		const char *params[2] = {oid_text, NULL};

		key_array = parity_text_array(key_names, table->nkeys);
		if (key_array == NULL)
			goto cleanup;
		snprintf(oid_text, sizeof(oid_text), "%u", target_oid);
		params[1] = key_array;
		unique = PQexecParams(target, PARITY_UNIQUE_SQL, 2, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(unique) != PGRES_TUPLES_OK)
		{
			parity_query_failed(error, PARITY_SIDE_TARGET, unique, target, "read the unique indexes", display);
			goto cleanup;
		}
		if (PQgetvalue(unique, 0, 0)[0] != 't' &&
			!parity_add_issue(table, "the key is not unique on the target (no unique index on its columns)"))
			goto cleanup;
	}
	if (table->keyless)
	{
		if (!parity_query_both(source, source_oid, target, target_oid, PARITY_GROUP_SQL, "read the indexes", display,
							   &source_group, &group, error))
			goto cleanup;
		/* the first in column order, as the applier picks it; indexed on both sides, no scan */
		for (int i = 0; i < table->ncolumns && !table->grouped; i++)
			if (parity_result_has(group, table->columns[i].name) &&
				parity_result_has(source_group, table->columns[i].name))
			{
				table->grouped = true;
				table->group = i;
			}
	}
	table->comparable = true;
	*out = table;
	table = NULL;
	ok = true;

cleanup:
	if (!ok)
		parity_explain_failure(error);
	PQclear(source_columns);
	PQclear(target_columns);
	PQclear(key);
	PQclear(unique);
	PQclear(group);
	PQclear(source_group);
	free(scols);
	free(tcols);
	free(key_names);
	free(key_array);
	free(display);
	parity_table_free(table);
	return ok;
}

/* ---- tables: leaves --------------------------------------------------------------------- */

static char **
parity_copy_key(char *const *values, int nkeys)
{
	char **copy = calloc((size_t) nkeys, sizeof(char *));

	if (copy == NULL)
		return NULL;
	for (int i = 0; i < nkeys; i++)
	{
		copy[i] = strdup(values[i]);
		if (copy[i] == NULL)
		{
			for (int j = 0; j < i; j++)
				free(copy[j]);
			free(copy);
			return NULL;
		}
	}
	return copy;
}

static void
parity_free_key(char **key, int nkeys)
{
	if (key == NULL)
		return;
	for (int i = 0; i < nkeys; i++)
		free(key[i]);
	free(key);
}

static void
parity_free_leaves(ParityTable *table)
{
	for (int i = 0; i < table->nleaves; i++)
	{
		parity_free_key(table->leaves[i].lower, table->nkeys);
		parity_free_key(table->leaves[i].upper, table->nkeys);
	}
	free(table->leaves);
	table->leaves = NULL;
	table->nleaves = 0;
}

static bool
parity_single_leaf(ParityTable *table)
{
	table->leaves = calloc(1, sizeof(ParityLeaf));
	if (table->leaves == NULL)
		return false;
	table->leaves[0].table = table;
	table->nleaves = 1;
	return true;
}

bool
parity_table_plan(PGconn *source, ParityTable *table, int64_t leaf_rows, ParityError *error)
{
	const char *params[1] = {table->qualified};
	PGresult *estimate = NULL;
	PGresult *sample = NULL;
	ParityBuf sql = {0};
	char *query = NULL;
	char ***rows = NULL;
	char ***bounds = NULL;
	int nbounds = 0;
	double pages;
	double percent;
	int nleaves;
	bool ok = false;

	parity_free_leaves(table);
	if (!table->comparable)
		return true;
	if (leaf_rows <= 0)
		leaf_rows = PARITY_DEFAULT_LEAF_ROWS;
	estimate = PQexecParams(source,
							"SELECT CASE WHEN c.reltuples >= 0 AND c.relpages > 0 "
							"            THEN c.reltuples / c.relpages * (pg_relation_size(c.oid) / "
							"                 current_setting('block_size')::float8) "
							"            ELSE pg_relation_size(c.oid) / 100.0 END, "
							"       pg_relation_size(c.oid) / current_setting('block_size')::float8 "
							"FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)",
							1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(estimate) != PGRES_TUPLES_OK)
	{
		parity_query_failed(error, PARITY_SIDE_SOURCE, estimate, source, "estimate the size", table->display);
		goto cleanup;
	}
	table->estimated_rows = PQntuples(estimate) == 1 ? strtod(PQgetvalue(estimate, 0, 0), NULL) : 0;
	pages = PQntuples(estimate) == 1 ? strtod(PQgetvalue(estimate, 0, 1), NULL) : 0;

	/* keyless tables are one multiset; small tables are one leaf */
	if (table->keyless || table->estimated_rows < (double) leaf_rows * 1.5)
	{
		if (!parity_single_leaf(table))
			goto cleanup;
		ok = true;
		goto cleanup;
	}
	nleaves = (int) (table->estimated_rows / (double) leaf_rows + 0.999);
	if (nleaves > PARITY_MAX_LEAVES)
		nleaves = PARITY_MAX_LEAVES;
	percent = (double) nleaves * PARITY_SAMPLE_PER_LEAF * 100.0 / table->estimated_rows;
	if (pages > 0 && percent < PARITY_SAMPLE_MIN_PAGES * 100.0 / pages)
		percent = PARITY_SAMPLE_MIN_PAGES * 100.0 / pages;
	if (percent > 100.0)
		percent = 100.0;

	/* sorted in the key's own order, the order the leaf predicates use */
	parity_buf_append(&sql, "SELECT ");
	for (int i = 0; i < table->nkeys; i++)
		parity_buf_printf(&sql, "%s%s", i > 0 ? ", " : "", table->columns[table->key[i]].quoted);
	parity_append_from(&sql, table);
	parity_buf_printf(&sql, " TABLESAMPLE SYSTEM (%.6f) ORDER BY ", percent);
	for (int i = 0; i < table->nkeys; i++)
		parity_buf_printf(&sql, "%s%s", i > 0 ? ", " : "", table->columns[table->key[i]].quoted);
	query = parity_buf_finish(&sql);
	if (query == NULL)
		goto cleanup;
	sample = PQexec(source, query);
	if (PQresultStatus(sample) != PGRES_TUPLES_OK)
	{
		parity_query_failed(error, PARITY_SIDE_SOURCE, sample, source, "sample the keys", table->display);
		goto cleanup;
	}
	if (PQntuples(sample) > 0)
	{
		int n = PQntuples(sample);

		rows = calloc((size_t) n, sizeof(char **));
		if (rows == NULL)
			goto cleanup;
		for (int r = 0; r < n; r++)
		{
			rows[r] = calloc((size_t) table->nkeys, sizeof(char *));
			if (rows[r] == NULL)
				goto cleanup;
			for (int k = 0; k < table->nkeys; k++)
				rows[r][k] = PQgetvalue(sample, r, k);
		}
		if (!parity_leaf_bounds(rows, n, table->nkeys, nleaves, &bounds, &nbounds))
			goto cleanup;
	}
	table->leaves = calloc((size_t) nbounds + 1, sizeof(ParityLeaf));
	if (table->leaves == NULL)
		goto cleanup;
	table->nleaves = nbounds + 1;
	for (int i = 0; i <= nbounds; i++)
	{
		ParityLeaf *leaf = &table->leaves[i];

		leaf->table = table;
		if (i > 0 && (leaf->lower = parity_copy_key(bounds[i - 1], table->nkeys)) == NULL)
			goto cleanup;
		if (i < nbounds && (leaf->upper = parity_copy_key(bounds[i], table->nkeys)) == NULL)
			goto cleanup;
	}
	log_debug("table %s: about %.0f rows in %d leaves", table->display, table->estimated_rows,
			  table->nleaves);
	ok = true;

cleanup:
	if (!ok)
		parity_explain_failure(error);
	if (rows != NULL)
	{
		for (int r = 0; r < PQntuples(sample); r++)
			free(rows[r]);
		free(rows);
	}
	free(bounds);
	free(query);
	PQclear(estimate);
	PQclear(sample);
	if (!ok)
		parity_free_leaves(table);
	return ok;
}

/* ---- tables: results -------------------------------------------------------------------- */

static void
parity_difference_clear(ParityDifference *diff, const ParityTable *table)
{
	int nkeys = table->keyless ? 1 : table->nkeys;

	parity_free_key(diff->key, nkeys);
	for (int i = 0; i < diff->ncolumns; i++)
	{
		free(diff->columns[i].source_value);
		free(diff->columns[i].target_value);
	}
	free(diff->columns);
	if (diff->row != NULL)
	{
		for (int i = 0; i < table->ncolumns; i++)
			free(diff->row[i]);
		free(diff->row);
	}
	memset(diff, 0, sizeof(*diff));
}

void
parity_table_reset_result(ParityTable *table)
{
	ParityTableResult *result;

	if (table == NULL)
		return;
	result = &table->result;
	for (int i = 0; i < result->ndifferences; i++)
		parity_difference_clear(&result->differences[i], table);
	free(result->differences);
	free(result->repair_skipped);
	memset(result, 0, sizeof(*result));
}

void
parity_table_free(ParityTable *table)
{
	if (table == NULL)
		return;
	parity_table_reset_result(table);
	parity_free_leaves(table);
	for (int i = 0; i < table->ncolumns; i++)
	{
		free(table->columns[i].name);
		free(table->columns[i].quoted);
		free(table->columns[i].type_name);
		free(table->columns[i].base_type_name);
	}
	free(table->columns);
	free(table->key);
	for (int i = 0; i < table->nschema_issues; i++)
		free(table->schema_issues[i]);
	free(table->schema_issues);
	free(table->schema);
	free(table->name);
	free(table->display);
	free(table->qualified);
	free(table);
}

/* ---- sessions --------------------------------------------------------------------------- */

bool
parity_session_setup(PGconn *conn, const char *what, ParityError *error)
{
	/*
	 * The text forms both sides produce must agree (casts in the hash, keys in the streams,
	 * values in the report and in repair); pg_catalog first so format_type() names qualify
	 * every other type; no timeouts cutting a long leaf short.
	 */
	PGresult *res = PQexec(conn,
						   "SET search_path = pg_catalog, pg_temp; SET TimeZone = 'UTC'; "
						   "SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; "
						   "SET extra_float_digits = 3; SET bytea_output = 'hex'; "
						   "SET lc_monetary = 'C'; SET statement_timeout = 0; SET lock_timeout = 0; "
						   "SET idle_in_transaction_session_timeout = 0; SET work_mem = '64MB'");
	ParitySide side = strcmp(what, "target") == 0 ? PARITY_SIDE_TARGET : PARITY_SIDE_SOURCE;
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
		parity_query_failed(error, side, res, conn, "set up the session", NULL);
	PQclear(res);
	return ok;
}

/* ---- comparing -------------------------------------------------------------------------- */

/*
 * A table's physical pass: each side reads its pages in order (a TID range scan, no index to
 * walk), split into as many chunks as the table has leaves, chunk i covering the i-th share
 * of that side's own pages; the rows' count and XOR add up to the whole table's. Only a table
 * whose totals differ is compared again by key leaves, which find the rows.
 */
typedef struct ParityScan
{
	ParityTable *table;
	int nchunks;
	int64_t pages[2];           /* source, target */
	int64_t rows[2];            /* under the run's mutex */
	uint64_t hash[2];
} ParityScan;

/* A unit of work: a key leaf, or one chunk of a physical pass. */
typedef struct ParityTask
{
	ParityTable *table;
	ParityLeaf *leaf;
	ParityScan *scan;
	int chunk;
} ParityTask;

typedef struct ParityRun
{
	ParityTable **tables;
	int ntables;
	ParityTask *queue;
	int nqueue;
	uint64_t lsn;
	pthread_mutex_t mutex;
	int next;                   /* under mutex */
	int *detailed_left;         /* per table, under mutex */
	ParityError error;          /* under mutex */
	atomic_bool stop;
} ParityRun;

typedef struct ParityWorker
{
	ParityRun *run;
	ParityPair *pair;
	int index;
	pthread_t thread;
	bool started;
} ParityWorker;

/* Differences of one leaf, collected by the merge before they join the table's. */
typedef struct ParityDiffList
{
	const ParityTable *table;
	ParityDifference *items;
	int n;
	int cap;
	int64_t missing;
	int64_t extra;
	int64_t changed;
	bool truncated;
	bool failed;
} ParityDiffList;

static void
parity_fail(ParityRun *run, const ParityError *error)
{
	pthread_mutex_lock(&run->mutex);
	if (run->error.side == PARITY_SIDE_NONE)
		run->error = *error;
	pthread_mutex_unlock(&run->mutex);
	atomic_store(&run->stop, true);
}

static double
parity_elapsed(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double) (now.tv_sec - since->tv_sec) + (double) (now.tv_nsec - since->tv_nsec) / 1e9;
}

static const char **
parity_leaf_params(const ParityLeaf *leaf, int *nparams)
{
	int nkeys = leaf->table->nkeys;
	const char **params = calloc((size_t) (2 * nkeys + 1), sizeof(char *));
	int n = 0;

	if (params == NULL)
		return NULL;
	for (int i = 0; leaf->lower != NULL && i < nkeys; i++)
		params[n++] = leaf->lower[i];
	for (int i = 0; leaf->upper != NULL && i < nkeys; i++)
		params[n++] = leaf->upper[i];
	*nparams = n;
	return params;
}

static bool
parity_diff_emit(void *arg, ParityDiffKind kind, const ParityRow *source, const ParityRow *target,
				 int64_t copies)
{
	ParityDiffList *list = arg;
	const ParityTable *table = list->table;
	int nkeys = table->keyless ? 1 : table->nkeys;
	const ParityRow *row = source != NULL ? source : target;
	ParityDifference *diff;

	if (kind == PARITY_MISSING)
		list->missing += copies;
	else if (kind == PARITY_EXTRA)
		list->extra += copies;
	else
		list->changed++;
	if (list->n >= PARITY_MAX_DIFFERENCES)
	{
		list->truncated = true;
		return true;
	}
	if (list->n == list->cap)
	{
		int cap = list->cap ? list->cap * 2 : 16;
		ParityDifference *bigger = realloc(list->items, (size_t) cap * sizeof(ParityDifference));

		if (bigger == NULL)
		{
			list->failed = true;
			return false;
		}
		list->items = bigger;
		list->cap = cap;
	}
	diff = &list->items[list->n];
	memset(diff, 0, sizeof(*diff));
	diff->kind = kind;
	diff->copies = copies;
	diff->key = parity_copy_key(row->key, nkeys);
	if (diff->key == NULL)
	{
		list->failed = true;
		return false;
	}
	list->n++;
	return true;
}

/* A drill-down stream read in single-row mode: bounded memory whatever the leaf's size. */
typedef struct ParityStream
{
	PGconn *conn;
	PGresult *current;
	ParitySide side;
	const ParityTable *table;
	char *key[64];
	bool ended;
	ParityError *error;
} ParityStream;

static int
parity_stream_next(void *arg, ParityRow *row)
{
	ParityStream *stream = arg;
	int nkeys = stream->table->keyless ? 1 : stream->table->nkeys;

	PQclear(stream->current);
	stream->current = NULL;
	if (stream->ended)
		return 0;
	stream->current = PQgetResult(stream->conn);
	if (stream->current == NULL)
	{
		stream->ended = true;
		return 0;
	}
	parity_count_result(stream->current, PQresultStatus(stream->current) == PGRES_TUPLES_OK);
	if (PQresultStatus(stream->current) == PGRES_TUPLES_OK)
	{
		PQclear(stream->current);
		stream->current = NULL;
		parity_drain(stream->conn);
		stream->ended = true;
		return 0;
	}
	if (PQresultStatus(stream->current) != PGRES_SINGLE_TUPLE)
	{
		parity_query_failed(stream->error, stream->side, stream->current, stream->conn,
							"read the rows", stream->table->display);
		PQclear(stream->current);
		stream->current = NULL;
		parity_drain(stream->conn);
		stream->ended = true;
		return -1;
	}
	for (int i = 0; i < nkeys; i++)
		stream->key[i] = PQgetvalue(stream->current, 0, i);
	row->key = stream->key;
	row->hash = strtoll(PQgetvalue(stream->current, 0, nkeys), NULL, 10);
	row->count = 1;
	if (stream->table->keyless)
	{
		row->hash = 0;
		row->count = strtoll(PQgetvalue(stream->current, 0, 1), NULL, 10);
	}
	return 1;
}

static bool
parity_send(PGconn *conn, ParitySide side, const char *sql, int nparams, const char *const *params,
			const ParityTable *table, ParityError *error)
{
	if (PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0) != 1)
	{
		parity_query_failed(error, side, NULL, conn, "send a query", table->display);
		return false;
	}
	parity_count_sent(sql, nparams, params);
	return true;
}

/* Column values of one row by key, on one side; *found false when the row is not there. */
static bool
parity_fetch_row(PGconn *conn, ParitySide side, const ParityTable *table, char *const *key,
				 bool tokens, PGresult **out, ParityError *error)
{
	char *sql = tokens ? parity_detail_row_sql(table) : parity_row_sql(table);
	PGresult *res = NULL;
	bool ok = false;

	*out = NULL;
	if (sql == NULL)
	{
		parity_out_of_memory(error);
		return false;
	}
	res = PQexecParams(conn, sql, table->nkeys, NULL, (const char *const *) key, NULL, NULL, 0);
	parity_count_sent(sql, table->nkeys, (const char *const *) key);
	parity_count_result(res, true);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		parity_query_failed(error, side, res, conn, "read a row", table->display);
		goto cleanup;
	}
	*out = res;
	res = NULL;
	ok = true;
cleanup:
	PQclear(res);
	free(sql);
	return ok;
}

static char *
parity_value_dup(const PGresult *res, int column, bool *oom)
{
	char *copy;

	if (PQgetisnull(res, 0, column))
		return NULL;
	copy = strdup(PQgetvalue(res, 0, column));
	if (copy == NULL)
		*oom = true;
	return copy;
}

/* Names the columns that differ in a changed row, with both values. */
static bool
parity_detail_changed(ParityPair *pair, const ParityTable *table, ParityDifference *diff,
					  ParityError *error)
{
	PGresult *source = NULL;
	PGresult *target = NULL;
	bool oom = false;
	bool ok = false;

	if (!parity_fetch_row(pair->source, PARITY_SIDE_SOURCE, table, diff->key, true, &source, error) ||
		!parity_fetch_row(pair->target, PARITY_SIDE_TARGET, table, diff->key, true, &target, error))
		goto cleanup;
	diff->detailed = true;
	if (PQntuples(source) != 1 || PQntuples(target) != 1)
	{
		ok = true;
		goto cleanup;
	}
	diff->columns = calloc((size_t) (table->ncolumns > 0 ? table->ncolumns : 1), sizeof(ParityColumnDiff));
	if (diff->columns == NULL)
		goto cleanup;
	for (int i = 0; i < table->ncolumns; i++)
	{
		bool source_null = PQgetisnull(source, 0, i);
		bool target_null = PQgetisnull(target, 0, i);
		ParityColumnDiff *column;

		if (source_null && target_null)
			continue;
		/* compared as the row hash compares them, by their tokens */
		if (!source_null && !target_null &&
			strcmp(PQgetvalue(source, 0, table->ncolumns + i), PQgetvalue(target, 0, table->ncolumns + i)) == 0)
			continue;
		column = &diff->columns[diff->ncolumns++];
		column->column = i;
		column->source_value = parity_value_dup(source, i, &oom);
		column->target_value = parity_value_dup(target, i, &oom);
		if (oom)
			goto cleanup;
	}
	ok = true;

cleanup:
	if (!ok)
		parity_explain_failure(error);
	PQclear(source);
	PQclear(target);
	return ok;
}

/*
 * Keyless tables: one image of each differing row, read where it has more copies (source for
 * missing, target for extra), by its hash in batches.
 */
static bool
parity_detail_keyless(ParityPair *pair, const ParityTable *table, ParityDiffList *list, int budget,
					  ParityError *error)
{
	bool ok = false;
	char *hash_sql = parity_row_hash_sql(table);
	ParityBuf sql = {0};
	char *query = NULL;

	if (hash_sql == NULL)
		goto cleanup;
	parity_buf_append(&sql, "SELECT h");
	for (int i = 0; i < table->ncolumns; i++)
		parity_buf_printf(&sql, ", %s", table->columns[i].quoted);
	parity_buf_printf(&sql, " FROM (SELECT %s AS h, ", hash_sql);
	parity_append_column_list(&sql, table, false);
	parity_append_from(&sql, table);
	parity_buf_append(&sql, " OFFSET 0) s WHERE h = ANY ($1::bigint[])");
	query = parity_buf_finish(&sql);
	if (query == NULL)
		goto cleanup;

	for (int side = 0; side < 2; side++)
	{
		ParityDiffKind kind = side == 0 ? PARITY_MISSING : PARITY_EXTRA;
		PGconn *conn = side == 0 ? pair->source : pair->target;
		ParitySide which = side == 0 ? PARITY_SIDE_SOURCE : PARITY_SIDE_TARGET;
		int start = 0;

		while (start < list->n && budget > 0)
		{
			ParityBuf array = {0};
			char *literal;
			const char *params[1];
			PGresult *res;
			int taken = 0;
			int end = start;

			parity_buf_append(&array, "{");
			for (; end < list->n && taken < PARITY_FETCH_BATCH && taken < budget; end++)
			{
				if (list->items[end].kind != kind)
					continue;
				parity_buf_printf(&array, "%s%s", taken > 0 ? "," : "", list->items[end].key[0]);
				taken++;
			}
			parity_buf_append(&array, "}");
			literal = parity_buf_finish(&array);
			if (literal == NULL)
				goto cleanup;
			if (taken == 0)
			{
				free(literal);
				break;
			}
			params[0] = literal;
			res = PQexecParams(conn, query, 1, NULL, params, NULL, NULL, 0);
			parity_count_sent(query, 1, params);
			parity_count_result(res, true);
			free(literal);
			if (PQresultStatus(res) != PGRES_TUPLES_OK)
			{
				parity_query_failed(error, which, res, conn, "read rows by hash", table->display);
				PQclear(res);
				goto cleanup;
			}
			for (int r = 0; r < PQntuples(res); r++)
			{
				const char *hash = PQgetvalue(res, r, 0);

				for (int i = start; i < end; i++)
				{
					ParityDifference *diff = &list->items[i];

					if (diff->kind != kind || diff->row != NULL || strcmp(diff->key[0], hash) != 0)
						continue;
					diff->row = calloc((size_t) (table->ncolumns > 0 ? table->ncolumns : 1), sizeof(char *));
					if (diff->row == NULL)
					{
						PQclear(res);
						goto cleanup;
					}
					for (int c = 0; c < table->ncolumns; c++)
						if (!PQgetisnull(res, r, c + 1) &&
							(diff->row[c] = strdup(PQgetvalue(res, r, c + 1))) == NULL)
						{
							PQclear(res);
							goto cleanup;
						}
					diff->detailed = true;
					break;
				}
			}
			PQclear(res);
			budget -= taken;
			start = end;
		}
	}
	ok = true;

cleanup:
	if (!ok)
		parity_explain_failure(error);
	free(hash_sql);
	free(query);
	return ok;
}

/* Takes up to want detail fetches from the table's budget. */
static int
parity_take_budget(ParityRun *run, const ParityTable *table, int want)
{
	int index = 0;
	int granted;

	for (int i = 0; i < run->ntables; i++)
		if (run->tables[i] == table)
			index = i;
	pthread_mutex_lock(&run->mutex);
	granted = want < run->detailed_left[index] ? want : run->detailed_left[index];
	run->detailed_left[index] -= granted;
	pthread_mutex_unlock(&run->mutex);
	return granted;
}

/* Moves the leaf's differences into the table's result. */
static bool
parity_add_differences(ParityRun *run, ParityTable *table, ParityDiffList *list)
{
	ParityTableResult *result = &table->result;
	bool ok = true;

	pthread_mutex_lock(&run->mutex);
	result->missing += list->missing;
	result->extra += list->extra;
	result->changed += list->changed;
	if (list->truncated)
		result->truncated = true;
	for (int i = 0; i < list->n; i++)
	{
		if (result->ndifferences >= PARITY_MAX_DIFFERENCES)
		{
			result->truncated = true;
			parity_difference_clear(&list->items[i], table);
			continue;
		}
		if (result->ndifferences == result->differences_cap)
		{
			int cap = result->differences_cap ? result->differences_cap * 2 : 16;
			ParityDifference *bigger = realloc(result->differences, (size_t) cap * sizeof(ParityDifference));

			if (bigger == NULL)
			{
				ok = false;
				parity_difference_clear(&list->items[i], table);
				continue;
			}
			result->differences = bigger;
			result->differences_cap = cap;
		}
		result->differences[result->ndifferences++] = list->items[i];
	}
	pthread_mutex_unlock(&run->mutex);
	free(list->items);
	list->items = NULL;
	list->n = 0;
	return ok;
}

static bool
parity_drill(ParityWorker *worker, ParityLeaf *leaf, ParityError *error)
{
	ParityTable *table = leaf->table;
	ParityStream source = {.conn = worker->pair->source, .side = PARITY_SIDE_SOURCE, .table = table,
		.error = error};
	ParityStream target = {.conn = worker->pair->target, .side = PARITY_SIDE_TARGET, .table = table,
		.error = error};
	ParityDiffList list = {.table = table};
	ParityKeyOrder orders[64];
	ParityKeyOrder hash_order[1] = {PARITY_KEY_INT};
	const char **params = NULL;
	char *sql = NULL;
	int nparams = 0;
	bool merged;
	bool ok = false;

	if (table->nkeys > 64)
	{
		parity_set_error(error, PARITY_SIDE_SOURCE, "table %s has a key of more than 64 columns",
						 table->display);
		return false;
	}
	for (int i = 0; i < table->nkeys; i++)
		orders[i] = table->columns[table->key[i]].key_order;
	sql = parity_stream_sql(table, leaf->lower != NULL, leaf->upper != NULL);
	params = parity_leaf_params(leaf, &nparams);
	if (sql == NULL || params == NULL)
	{
		parity_out_of_memory(error);
		goto cleanup;
	}
	if (!parity_send(source.conn, PARITY_SIDE_SOURCE, sql, nparams, params, table, error))
		goto cleanup;
	PQsetSingleRowMode(source.conn);
	if (!parity_send(target.conn, PARITY_SIDE_TARGET, sql, nparams, params, table, error))
	{
		parity_drain(source.conn);
		goto cleanup;
	}
	PQsetSingleRowMode(target.conn);
	merged = parity_merge(table->keyless ? hash_order : orders, table->keyless ? 1 : table->nkeys,
						  parity_stream_next, &source, parity_stream_next, &target,
						  parity_diff_emit, &list);
	/* whatever stopped the merge, both connections must be idle again */
	PQclear(source.current);
	PQclear(target.current);
	if (!source.ended)
		parity_drain(source.conn);
	if (!target.ended)
		parity_drain(target.conn);
	if (list.failed)
	{
		parity_out_of_memory(error);
		goto cleanup;
	}
	if (!merged)
		goto cleanup;

	if (table->keyless)
	{
		int budget = parity_take_budget(worker->run, table, list.n);

		if (budget > 0 && !parity_detail_keyless(worker->pair, table, &list, budget, error))
			goto cleanup;
	}
	else
	{
		int want = 0;
		int budget;
		int used = 0;

		for (int i = 0; i < list.n; i++)
			want += list.items[i].kind == PARITY_CHANGED;
		budget = parity_take_budget(worker->run, table, want);
		for (int i = 0; i < list.n && used < budget; i++)
		{
			if (list.items[i].kind != PARITY_CHANGED)
				continue;
			if (!parity_detail_changed(worker->pair, table, &list.items[i], error))
				goto cleanup;
			used++;
		}
	}
	if (!parity_add_differences(worker->run, table, &list))
	{
		parity_out_of_memory(error);
		goto cleanup;
	}
	ok = true;

cleanup:
	for (int i = 0; i < list.n; i++)
		parity_difference_clear(&list.items[i], table);
	free(list.items);
	free(params);
	free(sql);
	return ok;
}

static bool
parity_compare_leaf(ParityWorker *worker, ParityLeaf *leaf, ParityError *error)
{
	ParityTable *table = leaf->table;
	PGconn *source = worker->pair->source;
	PGconn *target = worker->pair->target;
	PGresult *source_res = NULL;
	PGresult *target_res = NULL;
	const char **params = NULL;
	char *sql = NULL;
	int nparams = 0;
	int64_t source_rows;
	int64_t target_rows;
	bool equal;
	bool ok = false;

	sql = parity_fingerprint_sql(table, leaf->lower != NULL, leaf->upper != NULL);
	params = parity_leaf_params(leaf, &nparams);
	if (sql == NULL || params == NULL)
	{
		parity_out_of_memory(error);
		goto cleanup;
	}
	/* both servers work on the leaf at once */
	if (!parity_send(source, PARITY_SIDE_SOURCE, sql, nparams, params, table, error))
		goto cleanup;
	if (!parity_send(target, PARITY_SIDE_TARGET, sql, nparams, params, table, error))
	{
		parity_drain(source);
		goto cleanup;
	}
	source_res = parity_get_result(source);
	target_res = parity_get_result(target);
	if (PQresultStatus(source_res) != PGRES_TUPLES_OK)
	{
		parity_query_failed(error, PARITY_SIDE_SOURCE, source_res, source, "fingerprint rows", table->display);
		goto cleanup;
	}
	if (PQresultStatus(target_res) != PGRES_TUPLES_OK)
	{
		parity_query_failed(error, PARITY_SIDE_TARGET, target_res, target, "fingerprint rows", table->display);
		goto cleanup;
	}
	source_rows = strtoll(PQgetvalue(source_res, 0, 0), NULL, 10);
	target_rows = strtoll(PQgetvalue(target_res, 0, 0), NULL, 10);
	equal = true;
	for (int i = 0; i < PQnfields(source_res); i++)
		if (strcmp(PQgetvalue(source_res, 0, i), PQgetvalue(target_res, 0, i)) != 0)
			equal = false;

	pthread_mutex_lock(&worker->run->mutex);
	table->result.rows_source += source_rows;
	table->result.rows_target += target_rows;
	if (!equal)
		table->result.leaves_differing++;
	pthread_mutex_unlock(&worker->run->mutex);

	if (!equal && !parity_drill(worker, leaf, error))
		goto cleanup;
	ok = true;

cleanup:
	PQclear(source_res);
	PQclear(target_res);
	free(params);
	free(sql);
	return ok;
}

/* One chunk of a table's physical pass, on both sides at once. */
static bool
parity_compare_chunk(ParityWorker *worker, ParityScan *scan, int chunk, ParityError *error)
{
	ParityTable *table = scan->table;
	PGconn *conns[2] = {worker->pair->source, worker->pair->target};
	ParitySide sides[2] = {PARITY_SIDE_SOURCE, PARITY_SIDE_TARGET};
	PGresult *res[2] = {NULL, NULL};
	bool lower = chunk > 0;
	bool upper = chunk < scan->nchunks - 1;
	char *sql = parity_pages_fingerprint_sql(table, lower, upper);
	bool sent[2] = {false, false};
	bool ok = false;

	if (sql == NULL)
	{
		parity_out_of_memory(error);
		return false;
	}
	for (int side = 0; side < 2; side++)
	{
		char bounds[2][32];
		const char *params[2];
		int nparams = 0;

		/* block numbers: the chunk's share of this side's pages, offset 0 before the first row */
		if (lower)
		{
			snprintf(bounds[0], sizeof(bounds[0]), "(%" PRId64 ",0)", scan->pages[side] * chunk / scan->nchunks);
			params[nparams++] = bounds[0];
		}
		if (upper)
		{
			snprintf(bounds[1], sizeof(bounds[1]), "(%" PRId64 ",0)",
					 scan->pages[side] * (chunk + 1) / scan->nchunks);
			params[nparams++] = bounds[1];
		}
		if (!parity_send(conns[side], sides[side], sql, nparams, params, table, error))
			goto cleanup;
		sent[side] = true;
	}
	for (int side = 0; side < 2; side++)
	{
		res[side] = parity_get_result(conns[side]);
		sent[side] = false;
		if (PQresultStatus(res[side]) != PGRES_TUPLES_OK)
		{
			parity_query_failed(error, sides[side], res[side], conns[side], "fingerprint rows", table->display);
			goto cleanup;
		}
	}
	pthread_mutex_lock(&worker->run->mutex);
	for (int side = 0; side < 2; side++)
	{
		int64_t rows = strtoll(PQgetvalue(res[side], 0, 0), NULL, 10);

		scan->rows[side] += rows;
		scan->hash[side] ^= (uint64_t) strtoll(PQgetvalue(res[side], 0, 1), NULL, 10);
		if (side == 0)
			table->result.rows_source += rows;
		else
			table->result.rows_target += rows;
	}
	pthread_mutex_unlock(&worker->run->mutex);
	ok = true;

cleanup:
	for (int side = 0; side < 2; side++)
	{
		if (sent[side])
			parity_drain(conns[side]);
		PQclear(res[side]);
	}
	free(sql);
	return ok;
}

static void *
parity_worker_main(void *arg)
{
	ParityWorker *worker = arg;
	ParityRun *run = worker->run;
	char name[16];

	snprintf(name, sizeof(name), "parity-%d", worker->index);
	log_set_thread_name(name);
	while (!atomic_load(&run->stop))
	{
		ParityTask task = {0};
		ParityError error;
		ParityTable *table;
		bool done;

		pthread_mutex_lock(&run->mutex);
		if (run->next < run->nqueue)
		{
			task = run->queue[run->next++];
			if (!task.table->result.started_set)
			{
				clock_gettime(CLOCK_MONOTONIC, &task.table->result.started);
				task.table->result.started_set = true;
			}
		}
		pthread_mutex_unlock(&run->mutex);
		if (task.table == NULL)
			break;
		table = task.table;
		memset(&error, 0, sizeof(error));
		done = task.scan != NULL ? parity_compare_chunk(worker, task.scan, task.chunk, &error)
			: parity_compare_leaf(worker, task.leaf, &error);
		if (!done)
		{
			if (error.side == PARITY_SIDE_NONE)
				parity_set_error(&error, PARITY_SIDE_SOURCE, "comparison of table %s failed", table->display);
			parity_fail(run, &error);
			break;
		}
		pthread_mutex_lock(&run->mutex);
		table->result.leaves_done++;
		table->result.seconds = parity_elapsed(&table->result.started);
		pthread_mutex_unlock(&run->mutex);
	}
	return NULL;
}

/* Big tables first, so the last leaves to finish are small ones. */
static int
parity_table_size_compare(const void *a, const void *b)
{
	const ParityTable *ta = *(ParityTable *const *) a;
	const ParityTable *tb = *(ParityTable *const *) b;

	return ta->estimated_rows < tb->estimated_rows ? 1 : ta->estimated_rows > tb->estimated_rows ? -1 : 0;
}

/*
 * Whether a table gets a physical pass first: a plain keyed table of more than one leaf, on
 * servers with TID range scans (PostgreSQL 14). Partitioned parents and keyless tables
 * (one multiset, scanned whole already) keep their leaves.
 */
static bool
parity_scans_physically(const ParityTable *table, const ParityPair *pair)
{
	return table->comparable && !table->keyless && table->only && table->nleaves > 1 &&
		PQserverVersion(pair->source) >= 140000 && PQserverVersion(pair->target) >= 140000;
}

/* The table's size in pages on one side, read in the snapshot's session. */
static bool
parity_table_pages(PGconn *conn, ParitySide side, const ParityTable *table, int64_t *pages,
				   ParityError *error)
{
	const char *sql = "SELECT pg_catalog.pg_relation_size(pg_catalog.to_regclass($1)) / "
		"pg_catalog.current_setting('block_size')::bigint";
	const char *params[1] = {table->qualified};
	PGresult *res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

	parity_count_sent(sql, 1, params);
	parity_count_result(res, true);
	if (!ok)
		parity_query_failed(error, side, res, conn, "read the size", table->display);
	else
		*pages = PQgetisnull(res, 0, 0) ? 0 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return ok;
}

/* Runs the queue on npairs threads; false when one of them failed (run.error says why). */
static bool
parity_run_queue(ParityRun *run, ParityPair *pairs, int npairs)
{
	ParityWorker *workers = calloc((size_t) npairs, sizeof(ParityWorker));

	if (workers == NULL)
		return false;
	run->next = 0;
	for (int i = 0; i < npairs; i++)
	{
		workers[i].run = run;
		workers[i].pair = &pairs[i];
		workers[i].index = i + 1;
		if (pthread_create(&workers[i].thread, NULL, parity_worker_main, &workers[i]) != 0)
		{
			ParityError failure = {.side = PARITY_SIDE_SOURCE};

			snprintf(failure.message, sizeof(failure.message), "could not start a parity worker thread");
			log_error("%s", failure.message);
			parity_fail(run, &failure);
			break;
		}
		workers[i].started = true;
	}
	for (int i = 0; i < npairs; i++)
		if (workers[i].started)
			pthread_join(workers[i].thread, NULL);
	free(workers);
	return run->error.side == PARITY_SIDE_NONE;
}

bool
parity_compare(ParityTable **tables, int ntables, ParityPair *pairs, int npairs, uint64_t lsn,
			   ParityError *error)
{
	ParityRun run;
	ParityTable **order = NULL;
	ParityScan *scans = NULL;
	int nscans = 0;
	int ntasks = 0;
	bool ok = false;

	memset(&run, 0, sizeof(run));
	pthread_mutex_init(&run.mutex, NULL);
	run.tables = tables;
	run.ntables = ntables;
	run.lsn = lsn;
	order = calloc((size_t) (ntables > 0 ? ntables : 1), sizeof(ParityTable *));
	scans = calloc((size_t) (ntables > 0 ? ntables : 1), sizeof(ParityScan));
	run.detailed_left = calloc((size_t) (ntables > 0 ? ntables : 1), sizeof(int));
	if (order == NULL || scans == NULL || run.detailed_left == NULL)
		goto cleanup;
	for (int i = 0; i < ntables; i++)
	{
		order[i] = tables[i];
		tables[i]->result.lsn = lsn;
		run.detailed_left[i] = PARITY_MAX_DETAILED;
		if (tables[i]->comparable)
			ntasks += tables[i]->nleaves;
	}
	qsort(order, (size_t) ntables, sizeof(ParityTable *), parity_table_size_compare);
	run.queue = calloc((size_t) (ntasks > 0 ? ntasks : 1), sizeof(ParityTask));
	if (run.queue == NULL)
		goto cleanup;

	/* first pass: chunks of pages where a table allows it, key leaves elsewhere */
	for (int i = 0; i < ntables; i++)
	{
		ParityTable *table = order[i];

		if (parity_scans_physically(table, &pairs[0]))
		{
			ParityScan *scan = &scans[nscans++];

			scan->table = table;
			scan->nchunks = table->nleaves;
			if (!parity_table_pages(pairs[0].source, PARITY_SIDE_SOURCE, table, &scan->pages[0], error) ||
				!parity_table_pages(pairs[0].target, PARITY_SIDE_TARGET, table, &scan->pages[1], error))
				goto cleanup;
			log_debug("table %s: a physical pass in %d chunks (%" PRId64 " pages on the source, %" PRId64
					  " on the target)", table->display, scan->nchunks, scan->pages[0], scan->pages[1]);
			for (int c = 0; c < scan->nchunks; c++)
				run.queue[run.nqueue++] = (ParityTask) {.table = table, .scan = scan, .chunk = c};
			continue;
		}
		for (int l = 0; table->comparable && l < table->nleaves; l++)
			run.queue[run.nqueue++] = (ParityTask) {.table = table, .leaf = &table->leaves[l]};
	}
	if (!parity_run_queue(&run, pairs, npairs))
		goto failed;

	/* second pass: the leaves of every table whose physical totals differ */
	run.nqueue = 0;
	for (int i = 0; i < nscans; i++)
	{
		ParityScan *scan = &scans[i];
		ParityTableResult *result = &scan->table->result;

		if (scan->rows[0] == scan->rows[1] && scan->hash[0] == scan->hash[1])
			continue;
		log_info("table %s differs: narrowing it down by key ranges", scan->table->display);
		result->rows_source = 0;
		result->rows_target = 0;
		result->leaves_done = 0;
		for (int l = 0; l < scan->table->nleaves; l++)
			run.queue[run.nqueue++] = (ParityTask) {.table = scan->table, .leaf = &scan->table->leaves[l]};
	}
	if (run.nqueue > 0 && !parity_run_queue(&run, pairs, npairs))
		goto failed;
	ok = true;
	goto cleanup;

failed:
	if (run.error.side != PARITY_SIDE_NONE && error != NULL)
		*error = run.error;

cleanup:
	if (!ok)
		parity_explain_failure(error);
	free(run.queue);
	free(run.detailed_left);
	free(scans);
	free(order);
	pthread_mutex_destroy(&run.mutex);
	return ok;
}

/* ---- repair ----------------------------------------------------------------------------- */

static bool
parity_exec(PGconn *conn, ParitySide side, const char *sql, int nparams, const char *const *params,
			const char *what, const ParityTable *table, ParityError *error)
{
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	parity_count_sent(sql, nparams, params);
	parity_count_result(res, true);
	if (!ok)
		parity_query_failed(error, side, res, conn, what, table != NULL ? table->display : NULL);
	PQclear(res);
	return ok;
}

/* INSERT INTO t (writable columns) [SELECT ... FROM generate_series | VALUES] */
static char *
parity_insert_sql(const ParityTable *table, bool repeated)
{
	ParityBuf buf = {0};
	int param = 1;
	bool first = true;

	parity_buf_printf(&buf, "INSERT INTO %s (", table->qualified);
	parity_append_column_list(&buf, table, true);
	parity_buf_append(&buf, ") OVERRIDING SYSTEM VALUE ");
	parity_buf_append(&buf, repeated ? "SELECT " : "VALUES (");
	for (int i = 0; i < table->ncolumns; i++)
	{
		if (table->columns[i].generated)
			continue;
		parity_buf_printf(&buf, "%s$%d::%s", first ? "" : ", ", param++, table->columns[i].type_name);
		first = false;
	}
	if (repeated)
		parity_buf_printf(&buf, " FROM generate_series(1, $%d::bigint)", param);
	else
		parity_buf_append(&buf, ")");
	return parity_buf_finish(&buf);
}

static char *
parity_delete_sql(const ParityTable *table)
{
	ParityBuf buf = {0};

	parity_buf_printf(&buf, "DELETE FROM %s%s", table->only ? "ONLY " : "", table->qualified);
	parity_append_key_equals(&buf, table, 1);
	return parity_buf_finish(&buf);
}

/* The source row's writable values (then extra parameters) as text parameters. */
static const char **
parity_row_params(const PGresult *row, int r, int column_offset, const ParityTable *table, int extra)
{
	const char **params = calloc((size_t) (table->ncolumns + extra + 1), sizeof(char *));
	int n = 0;

	if (params == NULL)
		return NULL;
	for (int i = 0; i < table->ncolumns; i++)
	{
		if (table->columns[i].generated)
			continue;
		params[n++] = PQgetisnull(row, r, i + column_offset) ? NULL : PQgetvalue(row, r, i + column_offset);
	}
	return params;
}

static int
parity_count_writable(const ParityTable *table)
{
	int n = 0;

	for (int i = 0; i < table->ncolumns; i++)
		n += !table->columns[i].generated;
	return n;
}

/* Whether some writable column lies outside the key: else a row cannot change but by its key. */
static bool
parity_has_non_key_values(const ParityTable *table)
{
	for (int i = 0; i < table->ncolumns; i++)
	{
		bool is_key = false;

		for (int k = 0; k < table->nkeys; k++)
			is_key |= table->key[k] == i;
		if (!table->columns[i].generated && !is_key)
			return true;
	}
	return false;
}

static bool
parity_repair_keyed(ParityTable *table, PGconn *source, PGconn *target, ParityError *error)
{
	ParityTableResult *result = &table->result;
	char *insert = parity_insert_sql(table, false);
	char *delete = parity_delete_sql(table);
	bool changeable = parity_has_non_key_values(table);
	int nwritable = parity_count_writable(table);
	bool ok = false;

	if (insert == NULL || delete == NULL)
	{
		parity_out_of_memory(error);
		goto cleanup;
	}
	/*
	 * Extra and changed rows go first, then the source's images of the missing and changed
	 * ones are inserted: rows that hold each other's unique values on the target (positions
	 * swapped, a value moved to another key) would collide if rewritten one by one in key
	 * order. A row of key columns only cannot change without changing its key.
	 */
	for (int i = 0; i < result->ndifferences; i++)
	{
		ParityDifference *diff = &result->differences[i];

		if (diff->kind == PARITY_MISSING || (diff->kind == PARITY_CHANGED && !changeable))
			continue;
		if (!parity_exec(target, PARITY_SIDE_TARGET, delete, table->nkeys,
						 (const char *const *) diff->key,
						 diff->kind == PARITY_EXTRA ? "delete an extra row" : "delete a changed row",
						 table, error))
			goto cleanup;
		if (diff->kind == PARITY_EXTRA)
			result->repaired++;
	}
	for (int i = 0; i < result->ndifferences; i++)
	{
		ParityDifference *diff = &result->differences[i];
		PGresult *row = NULL;
		const char **params = NULL;
		bool step;

		if (diff->kind == PARITY_EXTRA || (diff->kind == PARITY_CHANGED && !changeable))
			continue;
		if (!parity_fetch_row(source, PARITY_SIDE_SOURCE, table, diff->key, false, &row, error))
			goto cleanup;
		if (PQntuples(row) != 1)
		{
			PQclear(row);
			continue;
		}
		params = parity_row_params(row, 0, 0, table, 0);
		if (params == NULL)
		{
			PQclear(row);
			parity_out_of_memory(error);
			goto cleanup;
		}
		step = parity_exec(target, PARITY_SIDE_TARGET, insert, nwritable, params,
						   diff->kind == PARITY_MISSING ? "insert a missing row" : "write a changed row",
						   table, error);
		free(params);
		PQclear(row);
		if (!step)
			goto cleanup;
		result->repaired++;
	}
	ok = true;

cleanup:
	free(insert);
	free(delete);
	return ok;
}

static bool
parity_repair_keyless(ParityTable *table, PGconn *source, PGconn *target, ParityError *error)
{
	ParityTableResult *result = &table->result;
	char *hash_sql = parity_row_hash_sql(table);
	char *insert = parity_insert_sql(table, true);
	ParityBuf buf = {0};
	char *fetch = NULL;
	char *delete = NULL;
	int nwritable = parity_count_writable(table);
	bool ok = false;

	if (hash_sql == NULL || insert == NULL)
		goto cleanup;
	parity_buf_append(&buf, "SELECT ");
	parity_append_column_list(&buf, table, false);
	parity_append_from(&buf, table);
	parity_buf_printf(&buf, " WHERE %s = $1::bigint LIMIT 1", hash_sql);
	fetch = parity_buf_finish(&buf);
	memset(&buf, 0, sizeof(buf));
	/* one of several equal rows: any copy will do, by its ctid */
	parity_buf_printf(&buf, "DELETE FROM %s%s WHERE ctid = ANY (ARRAY(SELECT ctid", table->only ? "ONLY " : "",
					  table->qualified);
	parity_append_from(&buf, table);
	parity_buf_printf(&buf, " WHERE %s = $1::bigint LIMIT $2::bigint))", hash_sql);
	delete = parity_buf_finish(&buf);
	if (fetch == NULL || delete == NULL)
		goto cleanup;

	for (int i = 0; i < result->ndifferences; i++)
	{
		ParityDifference *diff = &result->differences[i];
		char copies[32];

		snprintf(copies, sizeof(copies), "%" PRId64, diff->copies);
		if (diff->kind == PARITY_EXTRA)
		{
			const char *params[2] = {diff->key[0], copies};

			if (!parity_exec(target, PARITY_SIDE_TARGET, delete, 2, params, "delete extra copies of a row",
							 table, error))
				goto cleanup;
		}
		else
		{
			const char *params[1] = {diff->key[0]};
			PGresult *row = PQexecParams(source, fetch, 1, NULL, params, NULL, NULL, 0);
			const char **values;
			bool step;

			if (PQresultStatus(row) != PGRES_TUPLES_OK)
			{
				parity_query_failed(error, PARITY_SIDE_SOURCE, row, source, "read a row by hash", table->display);
				PQclear(row);
				goto cleanup;
			}
			if (PQntuples(row) != 1)
			{
				PQclear(row);
				continue;
			}
			values = parity_row_params(row, 0, 0, table, 1);
			if (values == NULL)
			{
				PQclear(row);
				goto cleanup;
			}
			values[nwritable] = copies;
			step = parity_exec(target, PARITY_SIDE_TARGET, insert, nwritable + 1, values,
							   "insert missing copies of a row", table, error);
			free(values);
			PQclear(row);
			if (!step)
				goto cleanup;
		}
		result->repaired += diff->copies;
	}
	ok = true;

cleanup:
	if (!ok)
		parity_explain_failure(error);
	free(hash_sql);
	free(insert);
	free(fetch);
	free(delete);
	return ok;
}

bool
parity_repair(ParityTable **tables, int ntables, PGconn *source, PGconn *target, ParityError *error)
{
	bool began = false;
	bool ok = false;

	for (int i = 0; i < ntables; i++)
		tables[i]->result.repaired = 0;
	if (!parity_exec(target, PARITY_SIDE_TARGET, "BEGIN", 0, NULL, "start the repair transaction", NULL, error))
		goto cleanup;
	began = true;
	/* nothing on the target reacts to the rows written: triggers, rules and FK actions stay quiet */
	if (!parity_exec(target, PARITY_SIDE_TARGET, "SET LOCAL session_replication_role = replica", 0, NULL,
					 "start the repair transaction", NULL, error) ||
		!parity_exec(target, PARITY_SIDE_TARGET, "SET LOCAL synchronous_commit = on", 0, NULL,
					 "start the repair transaction", NULL, error))
		goto cleanup;
	for (int i = 0; i < ntables; i++)
	{
		ParityTable *table = tables[i];
		ParityTableResult *result = &table->result;

		if (result->ndifferences == 0)
			continue;
		if (!table->comparable || table->nschema_issues > 0)
		{
			free(result->repair_skipped);
			result->repair_skipped = strdup("the schema differs: fix it first");
			continue;
		}
		if (table->keyless ? !parity_repair_keyless(table, source, target, error)
			: !parity_repair_keyed(table, source, target, error))
			goto cleanup;
		if (result->truncated)
		{
			free(result->repair_skipped);
			result->repair_skipped = strdup("only the differences listed were repaired: run verify --repair again");
		}
		log_info("repaired %" PRId64 " rows of table %s", result->repaired, table->display);
	}
	if (!parity_exec(target, PARITY_SIDE_TARGET, "COMMIT", 0, NULL, "commit the repair", NULL, error))
	{
		began = false;
		goto cleanup;
	}
	began = false;
	ok = true;

cleanup:
	if (began)
	{
		PGresult *res = PQexec(target, "ROLLBACK");

		PQclear(res);
		for (int i = 0; i < ntables; i++)
			tables[i]->result.repaired = 0;
	}
	return ok;
}

/* ---- the rows the stream touched ---------------------------------------------------------- */

/*
 * Reads the fingerprint result of one side into count and hash (text: the xor, and for a
 * multiset the sum too); false on an error.
 */
static bool
parity_keys_result(PGconn *conn, ParitySide side, const ParityTable *table, int64_t *count, char *hash,
				   size_t hashlen, ParityError *error)
{
	PGresult *res = parity_get_result(conn);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

	if (!ok)
		parity_query_failed(error, side, res, conn, "fingerprint the touched rows", table->display);
	else
	{
		*count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		snprintf(hash, hashlen, "%s %s", PQgetvalue(res, 0, 1), PQnfields(res) > 2 ? PQgetvalue(res, 0, 2) : "");
	}
	PQclear(res);
	return ok;
}

bool
parity_compare_by_keys(ParityTable **tables, char ***keys, int ntables, ParityPair *pairs, int npairs,
					   uint64_t lsn, ParityError *error)
{
	char **sql = calloc((size_t) (ntables > 0 ? ntables : 1), sizeof(char *));
	bool ok = sql != NULL;

	for (int i = 0; ok && i < ntables; i++)
		ok = (sql[i] = parity_keys_fingerprint_sql(tables[i])) != NULL;
	if (!ok)
		parity_out_of_memory(error);
	/* a table per pair at a time, source and target at once: round trips are the fence's pause */
	for (int first = 0; ok && first < ntables; first += npairs)
	{
		int n = ntables - first < npairs ? ntables - first : npairs;
		int sent = 0;

		for (; sent < n; sent++)
		{
			ParityTable *table = tables[first + sent];
			const char *const *params = (const char *const *) keys[first + sent];

			if (!parity_send(pairs[sent].source, PARITY_SIDE_SOURCE, sql[first + sent], parity_touched_ncols(table),
							 params, table, error))
			{
				ok = false;
				break;
			}
			if (!parity_send(pairs[sent].target, PARITY_SIDE_TARGET, sql[first + sent], parity_touched_ncols(table),
							 params, table, error))
			{
				ok = false;
				parity_drain(pairs[sent].source);
				break;
			}
		}
		for (int j = 0; j < sent; j++)
		{
			ParityTable *table = tables[first + j];
			ParityTableResult *r = &table->result;
			char hash_source[64] = "";
			char hash_target[64] = "";
			bool read;

			read = parity_keys_result(pairs[j].source, PARITY_SIDE_SOURCE, table, &r->rows_source, hash_source,
									  sizeof(hash_source), error);
			read = parity_keys_result(pairs[j].target, PARITY_SIDE_TARGET, table, &r->rows_target, hash_target,
									  sizeof(hash_target), error) && read;
			ok = ok && read;
			r->by_keys = true;
			r->lsn = lsn;
			r->leaves_done = 1;
			r->leaves_differing = read && (r->rows_source != r->rows_target || strcmp(hash_source, hash_target) != 0);
		}
	}
	for (int i = 0; sql != NULL && i < ntables; i++)
		free(sql[i]);
	free(sql);
	parity_explain_failure(ok ? NULL : error);
	return ok;
}
