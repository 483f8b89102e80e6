/*
 * The parity engine's pure parts: which columns are cast before hashing, the SQL it sends
 * (quoted names, composite keys as row comparisons, the orders the merge relies on), the
 * merge of two key-ordered streams into missing / extra / changed, and leaf boundaries.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchyard/parity.h"

/* ---- a table built by hand -------------------------------------------------------------- */

typedef struct ColumnSpec
{
	const char *name;
	const char *type_name;
	ParityCast cast;
	const char *base_type_name;
	ParityKeyOrder order;
	const char *hash_function;
	const char *hash_argument_cast;
} ColumnSpec;

static ParityTable *
make_table(const char *schema, const char *name, const ColumnSpec *specs, int ncolumns, const int *key,
		   int nkeys)
{
	ParityTable *table = calloc(1, sizeof(*table));
	char *qs;
	char *qn;

	assert_non_null(table);
	table->schema = strdup(schema);
	table->name = strdup(name);
	qs = parity_quote_ident(schema);
	qn = parity_quote_ident(name);
	table->qualified = malloc(strlen(qs) + strlen(qn) + 2);
	sprintf(table->qualified, "%s.%s", qs, qn);
	table->display = strdup(table->qualified);
	free(qs);
	free(qn);
	table->only = true;
	table->comparable = true;
	table->columns = calloc((size_t) ncolumns, sizeof(ParityColumn));
	table->ncolumns = ncolumns;
	for (int i = 0; i < ncolumns; i++)
	{
		table->columns[i].name = strdup(specs[i].name);
		table->columns[i].quoted = parity_quote_ident(specs[i].name);
		table->columns[i].type_name = strdup(specs[i].type_name);
		table->columns[i].cast = specs[i].cast;
		table->columns[i].key_order = specs[i].order;
		table->columns[i].hash_function = specs[i].hash_function;
		table->columns[i].hash_argument_cast = specs[i].hash_argument_cast;
		if (specs[i].base_type_name != NULL)
			table->columns[i].base_type_name = strdup(specs[i].base_type_name);
	}
	table->nkeys = nkeys;
	table->keyless = nkeys == 0;
	if (nkeys > 0)
	{
		table->key = calloc((size_t) nkeys, sizeof(int));
		memcpy(table->key, key, (size_t) nkeys * sizeof(int));
	}
	return table;
}

static ParityTable *
hostile_table(void)
{
	static const ColumnSpec specs[] = {
		{"Room ID", "bigint", PARITY_CAST_NONE, NULL, PARITY_KEY_INT, "hashint8extended", ""},
		{"Display \"Name\"", "text", PARITY_CAST_NONE, NULL, PARITY_KEY_TEXT, "hashtextextended",
			" COLLATE \"C\""},
		{"payload", "json", PARITY_CAST_TEXT, NULL, PARITY_KEY_TEXT, "hashtextextended", " COLLATE \"C\""},
		{"status", "public.inquiry_status", PARITY_CAST_TEXT, NULL, PARITY_KEY_TEXT, "hashtextextended",
			" COLLATE \"C\""},
		{"cost", "money", PARITY_CAST_NUMERIC, NULL, PARITY_KEY_TEXT, "hash_numeric_extended", ""},
		{"csat", "public.csat_score", PARITY_CAST_BASE, "smallint", PARITY_KEY_INT, "hashint2extended", ""},
		{"seen", "timestamp with time zone", PARITY_CAST_NONE, NULL, PARITY_KEY_TEXT,
			"timestamp_hash_extended", " AT TIME ZONE INTERVAL '0'"},
		{"flag", "boolean", PARITY_CAST_NONE, NULL, PARITY_KEY_TEXT, NULL, NULL},
	};
	static const int key[] = {0};

	return make_table("Support \"Desk\" ø", "Chat \"Rooms\" ü", specs, 8, key, 1);
}

static ParityTable *
composite_table(void)
{
	static const ColumnSpec specs[] = {
		{"inquiry_id", "bigint", PARITY_CAST_NONE, NULL, PARITY_KEY_INT},
		{"agent name", "text", PARITY_CAST_NONE, NULL, PARITY_KEY_TEXT},
		{"role", "text", PARITY_CAST_NONE, NULL, PARITY_KEY_TEXT},
	};
	static const int key[] = {0, 1};

	return make_table("public", "assignments", specs, 3, key, 2);
}

static ParityTable *
keyless_table(void)
{
	static const ColumnSpec specs[] = {
		{"inquiry_id", "bigint", PARITY_CAST_NONE, NULL, PARITY_KEY_INT},
		{"payload", "json", PARITY_CAST_TEXT, NULL, PARITY_KEY_TEXT},
	};

	return make_table("public", "webhook_events", specs, 2, NULL, 0);
}

/* ---- names and casts -------------------------------------------------------------------- */

static void
test_quote_ident_doubles_inner_quotes(void **state)
{
	char *a = parity_quote_ident("Chat \"Rooms\" ü");
	char *b = parity_quote_ident("x\"; DROP TABLE t; --");
	char *c = parity_quote_ident("");

	assert_string_equal(a, "\"Chat \"\"Rooms\"\" ü\"");
	assert_string_equal(b, "\"x\"\"; DROP TABLE t; --\"");
	assert_string_equal(c, "\"\"");
	free(a);
	free(b);
	free(c);
}

static void
test_types_without_a_portable_hash_are_cast(void **state)
{
	ParityTypeInfo int4 = {.type_oid = 23, .typtype = 'b'};
	ParityTypeInfo jsonb = {.type_oid = 3802, .typtype = 'b'};
	ParityTypeInfo timestamptz = {.type_oid = 1184, .typtype = 'b'};
	ParityTypeInfo json = {.type_oid = 114, .typtype = 'b'};
	ParityTypeInfo xml = {.type_oid = 142, .typtype = 'b'};
	ParityTypeInfo point = {.type_oid = 600, .typtype = 'b'};
	ParityTypeInfo tsvector = {.type_oid = 3614, .typtype = 'b'};
	ParityTypeInfo money = {.type_oid = 790, .typtype = 'b'};
	ParityTypeInfo enumeration = {.type_oid = 16390, .typtype = 'e'};
	ParityTypeInfo composite = {.type_oid = 16400, .typtype = 'c'};
	ParityTypeInfo range = {.type_oid = 3904, .typtype = 'r'};
	ParityTypeInfo text_array = {.type_oid = 1009, .typtype = 'b', .element_oid = 25};
	ParityTypeInfo enum_array = {.type_oid = 16389, .typtype = 'b', .element_oid = 16390};
	ParityTypeInfo json_array = {.type_oid = 199, .typtype = 'b', .element_oid = 114};
	ParityTypeInfo domain_int2 = {.type_oid = 16395, .typtype = 'd', .base_oid = 21};
	ParityTypeInfo domain_json = {.type_oid = 16396, .typtype = 'd', .base_oid = 114};
	ParityTypeInfo domain_money = {.type_oid = 16397, .typtype = 'd', .base_oid = 790};
	ParityTypeInfo domain_int_array = {.type_oid = 16398, .typtype = 'd', .base_oid = 1007,
		.base_element_oid = 23};

	assert_int_equal(parity_column_cast(&int4), PARITY_CAST_NONE);
	assert_int_equal(parity_column_cast(&jsonb), PARITY_CAST_NONE);
	assert_int_equal(parity_column_cast(&timestamptz), PARITY_CAST_NONE);
	assert_int_equal(parity_column_cast(&json), PARITY_CAST_TEXT);
	assert_int_equal(parity_column_cast(&xml), PARITY_CAST_TEXT);
	assert_int_equal(parity_column_cast(&point), PARITY_CAST_TEXT);
	assert_int_equal(parity_column_cast(&tsvector), PARITY_CAST_TEXT);
	assert_int_equal(parity_column_cast(&money), PARITY_CAST_NUMERIC);
	/* enums hash by OID, which differs between clusters */
	assert_int_equal(parity_column_cast(&enumeration), PARITY_CAST_TEXT);
	assert_int_equal(parity_column_cast(&composite), PARITY_CAST_TEXT);
	assert_int_equal(parity_column_cast(&range), PARITY_CAST_TEXT);
	assert_int_equal(parity_column_cast(&text_array), PARITY_CAST_NONE);
	assert_int_equal(parity_column_cast(&enum_array), PARITY_CAST_TEXT);
	assert_int_equal(parity_column_cast(&json_array), PARITY_CAST_TEXT);
	assert_int_equal(parity_column_cast(&domain_int2), PARITY_CAST_BASE);
	assert_int_equal(parity_column_cast(&domain_json), PARITY_CAST_TEXT);
	assert_int_equal(parity_column_cast(&domain_money), PARITY_CAST_NUMERIC);
	assert_int_equal(parity_column_cast(&domain_int_array), PARITY_CAST_BASE);
}

static void
test_common_types_are_hashed_by_their_own_function(void **state)
{
	ParityTypeInfo int8 = {.type_oid = 20, .typtype = 'b'};
	ParityTypeInfo varchar = {.type_oid = 1043, .typtype = 'b'};
	ParityTypeInfo timestamptz = {.type_oid = 1184, .typtype = 'b'};
	ParityTypeInfo enumeration = {.type_oid = 16390, .typtype = 'e'};
	ParityTypeInfo money = {.type_oid = 790, .typtype = 'b'};
	ParityTypeInfo domain_int2 = {.type_oid = 16395, .typtype = 'd', .base_oid = 21};
	ParityTypeInfo boolean = {.type_oid = 16, .typtype = 'b'};
	ParityTypeInfo bytea = {.type_oid = 17, .typtype = 'b'};
	ParityTypeInfo int_array = {.type_oid = 1007, .typtype = 'b', .element_oid = 23};
	const char *cast = NULL;

	assert_string_equal(parity_column_hash_function(&int8, PARITY_CAST_NONE, &cast), "hashint8extended");
	assert_string_equal(cast, "");
	assert_string_equal(parity_column_hash_function(&varchar, PARITY_CAST_NONE, &cast), "hashtextextended");
	assert_string_equal(cast, " COLLATE \"C\"");
	assert_string_equal(parity_column_hash_function(&timestamptz, PARITY_CAST_NONE, &cast),
						"timestamp_hash_extended");
	assert_string_equal(cast, " AT TIME ZONE INTERVAL '0'");
	assert_string_equal(parity_column_hash_function(&enumeration, PARITY_CAST_TEXT, &cast), "hashtextextended");
	assert_string_equal(cast, " COLLATE \"C\"");
	assert_string_equal(parity_column_hash_function(&money, PARITY_CAST_NUMERIC, &cast), "hash_numeric_extended");
	assert_string_equal(parity_column_hash_function(&domain_int2, PARITY_CAST_BASE, &cast), "hashint2extended");
	/* no SQL-callable function of their own type: hashed together as one record */
	assert_null(parity_column_hash_function(&boolean, PARITY_CAST_NONE, &cast));
	assert_null(parity_column_hash_function(&bytea, PARITY_CAST_NONE, &cast));
	assert_null(parity_column_hash_function(&int_array, PARITY_CAST_NONE, &cast));
}

static void
test_integer_keys_merge_numerically_others_by_text(void **state)
{
	ParityTypeInfo int8 = {.type_oid = 20, .typtype = 'b'};
	ParityTypeInfo int2 = {.type_oid = 21, .typtype = 'b'};
	ParityTypeInfo domain_int4 = {.type_oid = 16395, .typtype = 'd', .base_oid = 23};
	ParityTypeInfo text = {.type_oid = 25, .typtype = 'b'};
	ParityTypeInfo uuid = {.type_oid = 2950, .typtype = 'b'};
	ParityTypeInfo numeric = {.type_oid = 1700, .typtype = 'b'};
	ParityTypeInfo float8 = {.type_oid = 701, .typtype = 'b'};
	ParityTypeInfo domain_float4 = {.type_oid = 16400, .typtype = 'd', .base_oid = 700};

	assert_int_equal(parity_key_order(&int8), PARITY_KEY_INT);
	assert_int_equal(parity_key_order(&int2), PARITY_KEY_INT);
	assert_int_equal(parity_key_order(&domain_int4), PARITY_KEY_INT);
	assert_int_equal(parity_key_order(&text), PARITY_KEY_TEXT);
	assert_int_equal(parity_key_order(&uuid), PARITY_KEY_TEXT);
	/* by a canonical text: 2.5 and 2.50, 0 and -0 are one key each */
	assert_int_equal(parity_key_order(&numeric), PARITY_KEY_NUMERIC);
	assert_int_equal(parity_key_order(&float8), PARITY_KEY_FLOAT);
	assert_int_equal(parity_key_order(&domain_float4), PARITY_KEY_FLOAT);
}

/* ---- SQL -------------------------------------------------------------------------------- */

static void
test_fingerprint_sql_casts_columns_and_quotes_names(void **state)
{
	ParityTable *table = hostile_table();
	char *whole = parity_fingerprint_sql(table, false, false);
	char *leaf = parity_fingerprint_sql(table, true, true);

#define HOSTILE_HASH \
	"hashint8extended(coalesce(hashint8extended(\"Room ID\", 1), 1) # " \
	"coalesce(hashtextextended(\"Display \"\"Name\"\"\" COLLATE \"C\", 2), 2) # " \
	"coalesce(hashtextextended(\"payload\"::text COLLATE \"C\", 3), 3) # " \
	"coalesce(hashtextextended(\"status\"::text COLLATE \"C\", 4), 4) # " \
	"coalesce(hash_numeric_extended(\"cost\"::numeric, 5), 5) # " \
	"coalesce(hashint2extended(\"csat\"::smallint, 6), 6) # " \
	"coalesce(timestamp_hash_extended(\"seen\" AT TIME ZONE INTERVAL '0', 7), 7) # " \
	"hash_record_extended(ROW(\"flag\"), 0), 0)"

	assert_string_equal(whole, "SELECT count(*), coalesce(bit_xor(" HOSTILE_HASH "), 0) "
						"FROM ONLY \"Support \"\"Desk\"\" ø\".\"Chat \"\"Rooms\"\" ü\"");
	assert_string_equal(leaf, "SELECT count(*), coalesce(bit_xor(" HOSTILE_HASH "), 0) "
						"FROM ONLY \"Support \"\"Desk\"\" ø\".\"Chat \"\"Rooms\"\" ü\" "
						"WHERE \"Room ID\" >= $1::bigint AND \"Room ID\" < $2::bigint");
	free(whole);
	free(leaf);
	parity_table_free(table);
}

static void
test_pages_fingerprint_sql_is_a_tid_range_with_the_leaf_hash(void **state)
{
	ParityTable *table = hostile_table();
	char *leaf = parity_fingerprint_sql(table, false, false);
	char *first = parity_pages_fingerprint_sql(table, false, true);
	char *middle = parity_pages_fingerprint_sql(table, true, true);
	char *last = parity_pages_fingerprint_sql(table, true, false);

	/* the same count and row hash as a leaf's, so the chunks add up to the leaves' totals */
	assert_string_equal(first, "SELECT count(*), coalesce(bit_xor(" HOSTILE_HASH "), 0) "
						"FROM ONLY \"Support \"\"Desk\"\" ø\".\"Chat \"\"Rooms\"\" ü\" WHERE ctid < $1::tid");
	assert_string_equal(middle, "SELECT count(*), coalesce(bit_xor(" HOSTILE_HASH "), 0) "
						"FROM ONLY \"Support \"\"Desk\"\" ø\".\"Chat \"\"Rooms\"\" ü\" "
						"WHERE ctid >= $1::tid AND ctid < $2::tid");
	assert_string_equal(last, "SELECT count(*), coalesce(bit_xor(" HOSTILE_HASH "), 0) "
						"FROM ONLY \"Support \"\"Desk\"\" ø\".\"Chat \"\"Rooms\"\" ü\" WHERE ctid >= $1::tid");
	assert_int_equal(strncmp(leaf, first, strlen(leaf)), 0);
	free(leaf);
	free(first);
	free(middle);
	free(last);
	parity_table_free(table);
}

static void
test_composite_keys_are_row_comparisons(void **state)
{
	ParityTable *table = composite_table();
	char *both = parity_range_sql(table, true, true, 1);
	char *lower = parity_range_sql(table, true, false, 1);
	char *upper = parity_range_sql(table, false, true, 3);
	char *none = parity_range_sql(table, false, false, 1);

	assert_string_equal(both, "(\"inquiry_id\", \"agent name\") >= ($1::bigint, $2::text) AND "
						"(\"inquiry_id\", \"agent name\") < ($3::bigint, $4::text)");
	assert_string_equal(lower, "(\"inquiry_id\", \"agent name\") >= ($1::bigint, $2::text)");
	assert_string_equal(upper, "(\"inquiry_id\", \"agent name\") < ($3::bigint, $4::text)");
	assert_string_equal(none, "");
	free(both);
	free(lower);
	free(upper);
	free(none);
	parity_table_free(table);
}

static void
test_keys_fingerprint_sql_reads_text_arrays_in_key_order(void **state)
{
	ParityTable *table = composite_table();
	char *sql = parity_keys_fingerprint_sql(table);

	/* the touched rows only: one text[] per key column, cast back by each column's type */
	assert_string_equal(sql,
						"SELECT count(*), coalesce(bit_xor(hash_record_extended(ROW(\"inquiry_id\", "
						"\"agent name\", \"role\"), 0)), 0) FROM ONLY \"public\".\"assignments\" "
						"WHERE (\"inquiry_id\", \"agent name\") IN (SELECT k.c1::bigint, k.c2::text "
						"FROM unnest($1::text[], $2::text[]) AS k(c1, c2))");
	free(sql);
	parity_table_free(table);
}

static void
test_stream_sql_orders_keys_the_way_the_merge_compares(void **state)
{
	ParityTable *table = composite_table();
	char *sql = parity_stream_sql(table, true, false);

	/* integers in numeric order, text in byte order whatever the column's collation */
	assert_string_equal(sql,
						"SELECT \"inquiry_id\", \"agent name\"::text, hash_record_extended(ROW(\"inquiry_id\", "
						"\"agent name\", \"role\"), 0) FROM ONLY \"public\".\"assignments\" "
						"WHERE (\"inquiry_id\", \"agent name\") >= ($1::bigint, $2::text) "
						"ORDER BY \"inquiry_id\", \"agent name\"::text COLLATE \"C\"");
	free(sql);
	parity_table_free(table);
}

static void
test_keyless_tables_are_multisets(void **state)
{
	ParityTable *table = keyless_table();
	char *fingerprint = parity_fingerprint_sql(table, false, false);
	char *stream = parity_stream_sql(table, false, false);

	assert_string_equal(fingerprint,
						"SELECT count(*), coalesce(bit_xor(h), 0), coalesce(sum(h & 2147483647), 0) FROM "
						"(SELECT hash_record_extended(ROW(\"inquiry_id\", \"payload\"::text), 0) AS h "
						"FROM ONLY \"public\".\"webhook_events\" OFFSET 0) s");
	assert_string_equal(stream,
						"SELECT h, count(*) FROM (SELECT hash_record_extended(ROW(\"inquiry_id\", "
						"\"payload\"::text), 0) AS h FROM ONLY \"public\".\"webhook_events\" OFFSET 0) s "
						"GROUP BY h ORDER BY h");
	free(fingerprint);
	free(stream);
	parity_table_free(table);
}

static void
test_grouped_keyless_table_fingerprints_the_touched_groups(void **state)
{
	ParityTable *table = keyless_table();
	char *sql;

	/* without a group column the touched rows cannot be picked out */
	assert_int_equal(parity_touched_ncols(table), 0);
	assert_null(parity_keys_fingerprint_sql(table));
	table->grouped = true;
	table->group = 0;
	assert_int_equal(parity_touched_ncols(table), 1);
	sql = parity_keys_fingerprint_sql(table);
	/* the same multiset fingerprint as the whole table's, of the rows in the touched groups */
	assert_string_equal(sql,
						"SELECT count(*), coalesce(bit_xor(h), 0), coalesce(sum(h & 2147483647), 0) FROM "
						"(SELECT hash_record_extended(ROW(\"inquiry_id\", \"payload\"::text), 0) AS h "
						"FROM ONLY \"public\".\"webhook_events\" WHERE (\"inquiry_id\") IN "
						"(SELECT k.c1::bigint FROM unnest($1::text[]) AS k(c1)) OFFSET 0) s");
	free(sql);
	parity_table_free(table);
}

static void
test_detail_row_sql_adds_each_columns_hash(void **state)
{
	ParityTable *table = composite_table();
	char *sql = parity_detail_row_sql(table);

	/* after the values, what the row hash takes of each column, in the same order */
	assert_non_null(strstr(sql, "SELECT \"inquiry_id\", \"agent name\", \"role\", "));
	assert_non_null(strstr(sql, " FROM ONLY \"public\".\"assignments\" WHERE (\"inquiry_id\", \"agent name\") = "));
	free(sql);
	parity_table_free(table);
}

static void
test_row_sql_reads_one_row_by_key(void **state)
{
	ParityTable *table = composite_table();
	char *sql = parity_row_sql(table);

	assert_string_equal(sql, "SELECT \"inquiry_id\", \"agent name\", \"role\" FROM ONLY \"public\".\"assignments\" "
						"WHERE (\"inquiry_id\", \"agent name\") = ($1::bigint, $2::text)");
	free(sql);
	table->only = false;        /* a partitioned parent: its partitions hold the rows */
	sql = parity_row_sql(table);
	assert_non_null(strstr(sql, " FROM \"public\".\"assignments\" WHERE"));
	free(sql);
	parity_table_free(table);
}

/* ---- the merge -------------------------------------------------------------------------- */

typedef struct ArrayRow
{
	const char *key[2];
	int64_t hash;
	int64_t count;
} ArrayRow;

typedef struct ArrayStream
{
	const ArrayRow *rows;
	int n;
	int next;
	int fail_at;                /* -1: never */
	char *current[2];
} ArrayStream;

static int
array_next(void *arg, ParityRow *row)
{
	ArrayStream *stream = arg;
	const ArrayRow *r;

	if (stream->next == stream->fail_at)
		return -1;
	if (stream->next >= stream->n)
		return 0;
	r = &stream->rows[stream->next++];
	stream->current[0] = (char *) r->key[0];
	stream->current[1] = (char *) r->key[1];
	row->key = stream->current;
	row->hash = r->hash;
	row->count = r->count ? r->count : 1;
	return 1;
}

typedef struct Emitted
{
	char text[1024];
	int n;
} Emitted;

static bool
record_emit(void *arg, ParityDiffKind kind, const ParityRow *source, const ParityRow *target, int64_t copies)
{
	Emitted *out = arg;
	const ParityRow *row = source != NULL ? source : target;
	size_t used = strlen(out->text);

	snprintf(out->text + used, sizeof(out->text) - used, "%s%s %s%s%s x%lld", out->n > 0 ? "; " : "",
			 parity_diff_kind_name(kind), row->key[0], row->key[1] != NULL ? "," : "",
			 row->key[1] != NULL ? row->key[1] : "", (long long) copies);
	out->n++;
	return true;
}

static bool
merge_arrays(const ParityKeyOrder *orders, int nkeys, const ArrayRow *source, int nsource,
			 const ArrayRow *target, int ntarget, Emitted *out)
{
	ArrayStream s = {source, nsource, 0, -1, {NULL, NULL}};
	ArrayStream t = {target, ntarget, 0, -1, {NULL, NULL}};

	memset(out, 0, sizeof(*out));
	return parity_merge(orders, nkeys, array_next, &s, array_next, &t, record_emit, out);
}

static void
test_merge_finds_missing_extra_and_changed_rows(void **state)
{
	const ParityKeyOrder orders[] = {PARITY_KEY_INT};
	const ArrayRow source[] = {{{"1"}, 11}, {{"2"}, 22}, {{"4"}, 44}, {{"5"}, 55}};
	const ArrayRow target[] = {{{"2"}, 22}, {{"3"}, 33}, {{"4"}, 40}, {{"6"}, 66}};
	Emitted out;

	assert_true(merge_arrays(orders, 1, source, 4, target, 4, &out));
	assert_string_equal(out.text, "missing 1 x1; extra 3 x1; changed 4 x1; missing 5 x1; extra 6 x1");
}

static void
test_merge_of_equal_streams_finds_nothing(void **state)
{
	const ParityKeyOrder orders[] = {PARITY_KEY_INT};
	const ArrayRow rows[] = {{{"1"}, 11}, {{"2"}, 22}, {{"3"}, 33}};
	Emitted out;

	assert_true(merge_arrays(orders, 1, rows, 3, rows, 3, &out));
	assert_int_equal(out.n, 0);
	assert_true(merge_arrays(orders, 1, rows, 0, rows, 0, &out));
	assert_int_equal(out.n, 0);
}

static void
test_merge_compares_integer_keys_as_numbers(void **state)
{
	const ParityKeyOrder orders[] = {PARITY_KEY_INT};
	/* as text "10" < "9"; the streams come ordered numerically */
	const ArrayRow source[] = {{{"-5"}, 1}, {{"9"}, 9}, {{"10"}, 10}};
	const ArrayRow target[] = {{{"-5"}, 1}, {{"10"}, 10}};
	Emitted out;

	assert_true(merge_arrays(orders, 1, source, 3, target, 2, &out));
	assert_string_equal(out.text, "missing 9 x1");
}

static void
test_merge_orders_composite_keys_column_by_column(void **state)
{
	const ParityKeyOrder orders[] = {PARITY_KEY_INT, PARITY_KEY_TEXT};
	const ArrayRow source[] = {{{"1", "B"}, 1}, {{"1", "a"}, 2}, {{"2", "A"}, 3}};
	const ArrayRow target[] = {{{"1", "B"}, 1}, {{"1", "b"}, 5}, {{"2", "A"}, 4}};
	Emitted out;

	/* byte order: "B" < "a" < "b" */
	assert_true(merge_arrays(orders, 2, source, 3, target, 3, &out));
	assert_string_equal(out.text, "missing 1,a x1; extra 1,b x1; changed 2,A x1");
}

static void
test_merge_of_multisets_counts_copies(void **state)
{
	const ParityKeyOrder orders[] = {PARITY_KEY_INT};
	const ArrayRow source[] = {{{"-7"}, 0, 1}, {{"5"}, 0, 3}, {{"8"}, 0, 2}};
	const ArrayRow target[] = {{{"-7"}, 0, 2}, {{"5"}, 0, 1}, {{"8"}, 0, 2}, {{"9"}, 0, 1}};
	Emitted out;

	assert_true(merge_arrays(orders, 1, source, 3, target, 4, &out));
	assert_string_equal(out.text, "extra -7 x1; missing 5 x2; extra 9 x1");
}

static void
test_merge_fails_when_a_stream_fails(void **state)
{
	const ParityKeyOrder orders[] = {PARITY_KEY_INT};
	const ArrayRow rows[] = {{{"1"}, 11}, {{"2"}, 22}};
	ArrayStream s = {rows, 2, 0, -1, {NULL, NULL}};
	ArrayStream t = {rows, 2, 0, 1, {NULL, NULL}};
	Emitted out;

	memset(&out, 0, sizeof(out));
	assert_false(parity_merge(orders, 1, array_next, &s, array_next, &t, record_emit, &out));
}

/* ---- leaves ----------------------------------------------------------------------------- */

static void
test_leaf_bounds_split_the_sample_evenly(void **state)
{
	char *values[10] = {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"};
	char **sample[10];
	char ***bounds = NULL;
	int nbounds = -1;

	for (int i = 0; i < 10; i++)
		sample[i] = &values[i];
	assert_true(parity_leaf_bounds(sample, 10, 1, 4, &bounds, &nbounds));
	assert_int_equal(nbounds, 3);
	assert_string_equal(bounds[0][0], "3");
	assert_string_equal(bounds[1][0], "6");
	assert_string_equal(bounds[2][0], "8");
	free(bounds);
}

static void
test_leaf_bounds_skip_repeated_keys(void **state)
{
	char *values[8][2] = {{"1", "a"}, {"1", "a"}, {"1", "a"}, {"1", "a"}, {"1", "a"}, {"1", "b"},
		{"2", "a"}, {"3", "a"}};
	char **sample[8];
	char ***bounds = NULL;
	int nbounds = -1;

	for (int i = 0; i < 8; i++)
		sample[i] = values[i];
	/* candidates at 2 (1,a), 4 (1,a again: skipped), 6 (2,a) */
	assert_true(parity_leaf_bounds(sample, 8, 2, 4, &bounds, &nbounds));
	assert_int_equal(nbounds, 2);
	assert_string_equal(bounds[0][0], "1");
	assert_string_equal(bounds[0][1], "a");
	assert_string_equal(bounds[1][0], "2");
	free(bounds);
}

static void
test_leaf_bounds_of_one_leaf_or_no_sample_are_none(void **state)
{
	char *values[2] = {"1", "2"};
	char **sample[2] = {&values[0], &values[1]};
	char ***bounds = NULL;
	int nbounds = -1;

	assert_true(parity_leaf_bounds(sample, 2, 1, 1, &bounds, &nbounds));
	assert_int_equal(nbounds, 0);
	assert_null(bounds);
	assert_true(parity_leaf_bounds(sample, 0, 1, 8, &bounds, &nbounds));
	assert_int_equal(nbounds, 0);
	/* more leaves than sample rows: each row at most once */
	assert_true(parity_leaf_bounds(sample, 2, 1, 8, &bounds, &nbounds));
	assert_int_equal(nbounds, 2);
	assert_string_equal(bounds[0][0], "1");
	assert_string_equal(bounds[1][0], "2");
	free(bounds);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quote_ident_doubles_inner_quotes),
		cmocka_unit_test(test_types_without_a_portable_hash_are_cast),
		cmocka_unit_test(test_common_types_are_hashed_by_their_own_function),
		cmocka_unit_test(test_integer_keys_merge_numerically_others_by_text),
		cmocka_unit_test(test_fingerprint_sql_casts_columns_and_quotes_names),
		cmocka_unit_test(test_pages_fingerprint_sql_is_a_tid_range_with_the_leaf_hash),
		cmocka_unit_test(test_composite_keys_are_row_comparisons),
		cmocka_unit_test(test_keys_fingerprint_sql_reads_text_arrays_in_key_order),
		cmocka_unit_test(test_stream_sql_orders_keys_the_way_the_merge_compares),
		cmocka_unit_test(test_keyless_tables_are_multisets),
		cmocka_unit_test(test_grouped_keyless_table_fingerprints_the_touched_groups),
		cmocka_unit_test(test_row_sql_reads_one_row_by_key),
		cmocka_unit_test(test_detail_row_sql_adds_each_columns_hash),
		cmocka_unit_test(test_merge_finds_missing_extra_and_changed_rows),
		cmocka_unit_test(test_merge_of_equal_streams_finds_nothing),
		cmocka_unit_test(test_merge_compares_integer_keys_as_numbers),
		cmocka_unit_test(test_merge_orders_composite_keys_column_by_column),
		cmocka_unit_test(test_merge_of_multisets_counts_copies),
		cmocka_unit_test(test_merge_fails_when_a_stream_fails),
		cmocka_unit_test(test_leaf_bounds_split_the_sample_evenly),
		cmocka_unit_test(test_leaf_bounds_skip_repeated_keys),
		cmocka_unit_test(test_leaf_bounds_of_one_leaf_or_no_sample_are_none),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
