/*
 * The applier's SQL builder: identifier quoting, statement shapes for every replica
 * identity, unchanged TOAST columns, TRUNCATE flags and parameter numbering.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "switchyard/apply_sql.h"

#define MAX_COLS 8

typedef struct Fixture
{
	ApplySqlColumn columns[MAX_COLS];
	ApplySqlTable table;
	uint8_t roles[MAX_COLS];
	const TupleValue *params[2 * MAX_COLS];
	ApplySqlPlan plan;
	char err[256];
} Fixture;

static void
fixture_init(Fixture *f, const char *nspname, const char *relname, char replident)
{
	memset(f, 0, sizeof(*f));
	f->table.nspname = nspname;
	f->table.relname = relname;
	f->table.replident = replident;
	f->table.columns = f->columns;
	f->plan.roles = f->roles;
	f->plan.params = f->params;
}

static void
add_column(Fixture *f, const char *name, bool is_key, bool text_compare)
{
	ApplySqlColumn *c = &f->columns[f->table.ncols++];

	c->name = name;
	c->is_key = is_key;
	c->text_compare = text_compare;
}

static TupleValue
text_value(const char *s)
{
	TupleValue v = {TUPLE_VALUE_TEXT, (uint32_t) strlen(s), s};
	return v;
}

static const TupleValue null_value = {TUPLE_VALUE_NULL, 0, NULL};
static const TupleValue toast_value = {TUPLE_VALUE_UNCHANGED_TOAST, 0, NULL};

static void
assert_sql(const ApplySqlTable *table, const ApplySqlPlan *plan, const char *expected)
{
	char *sql = apply_sql_build(table, plan);

	assert_non_null(sql);
	assert_string_equal(sql, expected);
	free(sql);
}

static void
assert_quoted(const char *name, const char *expected)
{
	char *quoted = apply_sql_quote_identifier(name);

	assert_non_null(quoted);
	assert_string_equal(quoted, expected);
	free(quoted);
}

static void
quote_identifier_doubles_quotes_and_keeps_everything_else(void **state)
{
	(void) state;
	assert_quoted("plain", "\"plain\"");
	assert_quoted("a\"b", "\"a\"\"b\"");
	assert_quoted("\"", "\"\"\"\"");
	assert_quoted("with space", "\"with space\"");
	assert_quoted("CamelCase", "\"CamelCase\"");
	assert_quoted("gr\xc3\xbc\xc3\x9f \xe2\x9c\x93", "\"gr\xc3\xbc\xc3\x9f \xe2\x9c\x93\"");
	assert_quoted("x; DROP TABLE y; --", "\"x; DROP TABLE y; --\"");
	assert_quoted("", "\"\"");
}

static void
qualified_name_maps_empty_namespace_to_pg_catalog(void **state)
{
	char *name;

	(void) state;
	name = apply_sql_qualified_name("My \"Schema\"", "t");
	assert_string_equal(name, "\"My \"\"Schema\"\"\".\"t\"");
	free(name);
	name = apply_sql_qualified_name("", "pg_x");
	assert_string_equal(name, "\"pg_catalog\".\"pg_x\"");
	free(name);
}

static void
insert_lists_every_column_in_order(void **state)
{
	Fixture f;
	TupleValue values[3] = {text_value("1"), null_value, text_value("x")};
	TupleData tuple = {3, values};

	(void) state;
	fixture_init(&f, "public", "Odd \"Name\"", 'd');
	add_column(&f, "id", true, false);
	add_column(&f, "Body", false, false);
	add_column(&f, "a\"b", false, false);
	assert_true(apply_sql_plan_insert(&f.table, &tuple, &f.plan, f.err, sizeof(f.err)));
	assert_int_equal(f.plan.nparams, 3);
	assert_ptr_equal(f.plan.params[0], &values[0]);
	assert_ptr_equal(f.plan.params[1], &values[1]);
	assert_ptr_equal(f.plan.params[2], &values[2]);
	assert_sql(&f.table, &f.plan,
			   "INSERT INTO \"public\".\"Odd \"\"Name\"\"\" (\"id\", \"Body\", \"a\"\"b\") "
			   "OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3)");
}

static void
insert_with_unchanged_toast_is_rejected(void **state)
{
	Fixture f;
	TupleValue values[2] = {text_value("1"), toast_value};
	TupleData tuple = {2, values};

	(void) state;
	fixture_init(&f, "public", "t", 'd');
	add_column(&f, "id", true, false);
	add_column(&f, "doc", false, false);
	assert_false(apply_sql_plan_insert(&f.table, &tuple, &f.plan, f.err, sizeof(f.err)));
	assert_non_null(strstr(f.err, "\"doc\""));
}

static void
tuple_with_wrong_column_count_is_rejected(void **state)
{
	Fixture f;
	TupleValue values[1] = {text_value("1")};
	TupleData tuple = {1, values};

	(void) state;
	fixture_init(&f, "public", "t", 'd');
	add_column(&f, "id", true, false);
	add_column(&f, "added", false, false);
	assert_false(apply_sql_plan_insert(&f.table, &tuple, &f.plan, f.err, sizeof(f.err)));
	assert_non_null(strstr(f.err, "columns"));
}

static void
update_default_identity_takes_key_from_new_tuple(void **state)
{
	Fixture f;
	TupleValue values[3] = {text_value("7"), text_value("hello"), text_value("2")};
	TupleData tuple = {3, values};

	(void) state;
	fixture_init(&f, "chat", "messages", 'd');
	add_column(&f, "id", true, false);
	add_column(&f, "body", false, false);
	add_column(&f, "room", true, false);
	assert_true(apply_sql_plan_update(&f.table, 0, NULL, &tuple, &f.plan, f.err, sizeof(f.err)));
	assert_false(f.plan.full);
	assert_false(f.plan.noop);
	assert_int_equal(f.plan.nparams, 3);
	/* the key did not change (no K tuple): SET leaves it out, WHERE takes it from the new tuple */
	assert_ptr_equal(f.plan.params[0], &values[1]);
	assert_ptr_equal(f.plan.params[1], &values[0]);
	assert_ptr_equal(f.plan.params[2], &values[2]);
	assert_sql(&f.table, &f.plan,
			   "UPDATE \"chat\".\"messages\" SET \"body\" = $1 WHERE \"id\" = $2 AND \"room\" = $3");
}

static void
update_of_key_columns_only_is_a_noop(void **state)
{
	Fixture f;
	TupleValue values[2] = {text_value("7"), toast_value};
	TupleData tuple = {2, values};

	(void) state;
	fixture_init(&f, "public", "t", 'd');
	add_column(&f, "id", true, false);
	add_column(&f, "doc", false, false);
	assert_true(apply_sql_plan_update(&f.table, 0, NULL, &tuple, &f.plan, f.err, sizeof(f.err)));
	assert_true(f.plan.noop);
}

static void
update_key_change_matches_on_old_key_tuple(void **state)
{
	Fixture f;
	TupleValue old_values[2] = {text_value("1"), null_value};
	TupleValue new_values[2] = {text_value("100"), text_value("b")};
	TupleData old_tuple = {2, old_values};
	TupleData new_tuple = {2, new_values};

	(void) state;
	fixture_init(&f, "public", "t", 'i');
	add_column(&f, "id", true, false);
	add_column(&f, "v", false, false);
	assert_true(apply_sql_plan_update(&f.table, 'K', &old_tuple, &new_tuple, &f.plan, f.err,
									  sizeof(f.err)));
	assert_int_equal(f.plan.nparams, 3);
	assert_ptr_equal(f.plan.params[0], &new_values[0]);
	assert_ptr_equal(f.plan.params[1], &new_values[1]);
	assert_ptr_equal(f.plan.params[2], &old_values[0]);
	assert_string_equal(f.plan.params[2]->data, "1");
	assert_sql(&f.table, &f.plan, "UPDATE \"public\".\"t\" SET \"id\" = $1, \"v\" = $2 WHERE \"id\" = $3");
}

static void
update_leaves_unchanged_toast_columns_out_of_set(void **state)
{
	Fixture f;
	TupleValue values[4] = {text_value("5"), toast_value, text_value("new"), toast_value};
	TupleData tuple = {4, values};

	(void) state;
	fixture_init(&f, "public", "docs", 'd');
	add_column(&f, "id", true, false);
	add_column(&f, "big1", false, false);
	add_column(&f, "title", false, false);
	add_column(&f, "big2", false, false);
	assert_true(apply_sql_plan_update(&f.table, 0, NULL, &tuple, &f.plan, f.err, sizeof(f.err)));
	assert_int_equal(f.plan.nparams, 2);
	assert_int_equal(f.roles[1], 0);
	assert_int_equal(f.roles[3], 0);
	assert_ptr_equal(f.plan.params[0], &values[2]);
	assert_ptr_equal(f.plan.params[1], &values[0]);
	assert_sql(&f.table, &f.plan,
			   "UPDATE \"public\".\"docs\" SET \"title\" = $1 WHERE \"id\" = $2");
}

static void
update_with_only_unchanged_toast_is_a_noop(void **state)
{
	Fixture f;
	TupleValue old_values[1] = {text_value("long")};
	TupleValue new_values[1] = {toast_value};
	TupleData old_tuple = {1, old_values};
	TupleData new_tuple = {1, new_values};

	(void) state;
	fixture_init(&f, "public", "blobs", 'f');
	add_column(&f, "doc", false, false);
	assert_true(apply_sql_plan_update(&f.table, 'O', &old_tuple, &new_tuple, &f.plan, f.err,
									  sizeof(f.err)));
	assert_true(f.plan.noop);
	assert_null(apply_sql_build(&f.table, &f.plan));
}

static void
update_full_identity_matches_one_row_with_text_casts(void **state)
{
	Fixture f;
	TupleValue old_values[3] = {text_value("1"), text_value("{\"a\": 1}"), null_value};
	TupleValue new_values[3] = {text_value("1"), text_value("{\"a\": 2}"), text_value("(1,2)")};
	TupleData old_tuple = {3, old_values};
	TupleData new_tuple = {3, new_values};

	(void) state;
	fixture_init(&f, "public", "events", 'f');
	add_column(&f, "n", false, false);
	add_column(&f, "payload", false, true);  /* json */
	add_column(&f, "at", false, true);       /* point */
	assert_true(apply_sql_plan_update(&f.table, 'O', &old_tuple, &new_tuple, &f.plan, f.err,
									  sizeof(f.err)));
	assert_true(f.plan.full);
	assert_int_equal(f.plan.nparams, 6);
	assert_ptr_equal(f.plan.params[3], &old_values[0]);
	assert_ptr_equal(f.plan.params[5], &old_values[2]);
	assert_sql(&f.table, &f.plan,
			   "UPDATE \"public\".\"events\" SET \"n\" = $1, \"payload\" = $2, \"at\" = $3 "
			   "WHERE ctid = (SELECT ctid FROM \"public\".\"events\" "
			   "WHERE \"n\" IS NOT DISTINCT FROM $4 "
			   "AND \"payload\"::text IS NOT DISTINCT FROM $5::text "
			   "AND \"at\"::text IS NOT DISTINCT FROM $6::text LIMIT 1)");
}

static void
update_full_identity_on_partitioned_target_matches_tableoid_too(void **state)
{
	Fixture f;
	TupleValue old_values[1] = {text_value("1")};
	TupleValue new_values[1] = {text_value("2")};
	TupleData old_tuple = {1, old_values};
	TupleData new_tuple = {1, new_values};

	(void) state;
	fixture_init(&f, "public", "parted", 'f');
	f.table.partitioned = true;
	add_column(&f, "n", false, false);
	assert_true(apply_sql_plan_update(&f.table, 'O', &old_tuple, &new_tuple, &f.plan, f.err,
									  sizeof(f.err)));
	assert_sql(&f.table, &f.plan,
			   "UPDATE \"public\".\"parted\" SET \"n\" = $1 WHERE (tableoid, ctid) = "
			   "(SELECT tableoid, ctid FROM \"public\".\"parted\" WHERE \"n\" IS NOT DISTINCT FROM $2 LIMIT 1)");
}

static void
update_full_identity_without_old_row_is_rejected(void **state)
{
	Fixture f;
	TupleValue new_values[1] = {text_value("2")};
	TupleData new_tuple = {1, new_values};

	(void) state;
	fixture_init(&f, "public", "t", 'f');
	add_column(&f, "n", false, false);
	assert_false(apply_sql_plan_update(&f.table, 0, NULL, &new_tuple, &f.plan, f.err, sizeof(f.err)));
}

static void
update_without_identity_is_rejected(void **state)
{
	Fixture f;
	TupleValue new_values[1] = {text_value("2")};
	TupleData new_tuple = {1, new_values};

	(void) state;
	fixture_init(&f, "public", "nokey", 'd');
	add_column(&f, "n", false, false);
	assert_false(apply_sql_plan_update(&f.table, 0, NULL, &new_tuple, &f.plan, f.err, sizeof(f.err)));
	assert_non_null(strstr(f.err, "replica identity"));
}

static void
delete_default_identity_uses_key_tuple(void **state)
{
	Fixture f;
	TupleValue old_values[3] = {text_value("9"), null_value, text_value("a b")};
	TupleData old_tuple = {3, old_values};

	(void) state;
	fixture_init(&f, "S p", "T", 'd');
	add_column(&f, "id", true, false);
	add_column(&f, "body", false, false);
	add_column(&f, "K 2", true, false);
	assert_true(apply_sql_plan_delete(&f.table, 'K', &old_tuple, &f.plan, f.err, sizeof(f.err)));
	assert_int_equal(f.plan.nparams, 2);
	assert_ptr_equal(f.plan.params[0], &old_values[0]);
	assert_ptr_equal(f.plan.params[1], &old_values[2]);
	assert_sql(&f.table, &f.plan, "DELETE FROM \"S p\".\"T\" WHERE \"id\" = $1 AND \"K 2\" = $2");
}

static void
delete_full_identity_removes_one_duplicate(void **state)
{
	Fixture f;
	TupleValue old_values[2] = {text_value("{}"), text_value("x")};
	TupleData old_tuple = {2, old_values};

	(void) state;
	fixture_init(&f, "public", "dups", 'f');
	add_column(&f, "j", false, true);
	add_column(&f, "s", false, false);
	assert_true(apply_sql_plan_delete(&f.table, 'O', &old_tuple, &f.plan, f.err, sizeof(f.err)));
	assert_int_equal(f.plan.nparams, 2);
	assert_sql(&f.table, &f.plan,
			   "DELETE FROM \"public\".\"dups\" WHERE ctid = (SELECT ctid FROM \"public\".\"dups\" "
			   "WHERE \"j\"::text IS NOT DISTINCT FROM $1::text AND \"s\" IS NOT DISTINCT FROM $2 LIMIT 1)");
}

static void
delete_without_old_tuple_is_rejected(void **state)
{
	Fixture f;

	(void) state;
	fixture_init(&f, "public", "t", 'd');
	add_column(&f, "id", true, false);
	assert_false(apply_sql_plan_delete(&f.table, 0, NULL, &f.plan, f.err, sizeof(f.err)));
}

static void
same_shape_gives_same_roles_for_statement_reuse(void **state)
{
	Fixture a;
	Fixture b;
	TupleValue v1[2] = {text_value("1"), text_value("x")};
	TupleValue v2[2] = {text_value("2"), null_value};
	TupleData t1 = {2, v1};
	TupleData t2 = {2, v2};

	(void) state;
	fixture_init(&a, "public", "t", 'd');
	add_column(&a, "id", true, false);
	add_column(&a, "v", false, false);
	b = a;
	b.table.columns = b.columns;
	b.plan.roles = b.roles;
	b.plan.params = b.params;
	assert_true(apply_sql_plan_update(&a.table, 0, NULL, &t1, &a.plan, a.err, sizeof(a.err)));
	assert_true(apply_sql_plan_update(&b.table, 0, NULL, &t2, &b.plan, b.err, sizeof(b.err)));
	assert_memory_equal(a.roles, b.roles, 2);
}

static void
truncate_lists_all_tables_with_flags(void **state)
{
	ApplySqlTable t1 = {.nspname = "public", .relname = "a\"b"};
	ApplySqlTable t2 = {.nspname = "other", .relname = "Parted", .partitioned = true};
	const ApplySqlTable *both[] = {&t1, &t2};
	char *sql;

	(void) state;
	sql = apply_sql_truncate(both, 2, PGOUTPUT_TRUNCATE_CASCADE | PGOUTPUT_TRUNCATE_RESTART_IDENTITY);
	assert_string_equal(sql, "TRUNCATE ONLY \"public\".\"a\"\"b\", \"other\".\"Parted\" "
					    "RESTART IDENTITY CASCADE");
	free(sql);
	sql = apply_sql_truncate(both, 1, 0);
	assert_string_equal(sql, "TRUNCATE ONLY \"public\".\"a\"\"b\"");
	free(sql);
	sql = apply_sql_truncate(both, 1, PGOUTPUT_TRUNCATE_CASCADE);
	assert_string_equal(sql, "TRUNCATE ONLY \"public\".\"a\"\"b\" CASCADE");
	free(sql);
}

static void
parameters_are_numbered_past_nine(void **state)
{
	Fixture f;
	static const char *names[MAX_COLS] = {"c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"};
	TupleValue old_values[MAX_COLS];
	TupleValue values[MAX_COLS];
	TupleData old_tuple = {MAX_COLS, old_values};
	TupleData tuple = {MAX_COLS, values};
	char *sql;

	(void) state;
	fixture_init(&f, "public", "wide", 'd');
	for (int i = 0; i < MAX_COLS; i++)
	{
		add_column(&f, names[i], i < 2, false);
		values[i] = text_value("v");
		old_values[i] = i < 2 ? text_value("old") : null_value;
	}
	/* a key change: every column is SET, then the old key matched */
	assert_true(apply_sql_plan_update(&f.table, 'K', &old_tuple, &tuple, &f.plan, f.err, sizeof(f.err)));
	assert_int_equal(f.plan.nparams, 10);
	assert_ptr_equal(f.plan.params[9], &old_values[1]);
	sql = apply_sql_build(&f.table, &f.plan);
	assert_non_null(strstr(sql, "\"c8\" = $8 WHERE \"c1\" = $9 AND \"c2\" = $10"));
	free(sql);
}

static void
insert_of_many_rows_numbers_each_row(void **state)
{
	Fixture f;
	TupleValue values[2] = {text_value("1"), text_value("x")};
	TupleData tuple = {2, values};
	char *sql;

	(void) state;
	fixture_init(&f, "public", "t", 'd');
	add_column(&f, "id", true, false);
	add_column(&f, "v", false, false);
	assert_true(apply_sql_plan_insert(&f.table, &tuple, &f.plan, f.err, sizeof(f.err)));
	sql = apply_sql_build_insert(&f.table, &f.plan, 3);
	assert_string_equal(sql, "INSERT INTO \"public\".\"t\" (\"id\", \"v\") OVERRIDING SYSTEM VALUE "
					    "VALUES ($1, $2), ($3, $4), ($5, $6)");
	free(sql);
}

static void
update_of_many_rows_joins_typed_values(void **state)
{
	Fixture f;
	TupleValue values[3] = {text_value("7"), text_value("hello"), text_value("{}")};
	TupleData tuple = {3, values};
	char *sql;

	(void) state;
	fixture_init(&f, "chat", "Messages", 'd');
	add_column(&f, "id", true, false);
	add_column(&f, "body", false, false);
	add_column(&f, "meta", false, true);
	f.columns[0].type_name = "bigint";
	f.columns[1].type_name = "character varying";
	f.columns[2].type_name = "json";
	assert_true(apply_sql_plan_update(&f.table, 0, NULL, &tuple, &f.plan, f.err, sizeof(f.err)));
	sql = apply_sql_build_rows(&f.table, &f.plan, 2);
	assert_string_equal(sql,
						"UPDATE \"chat\".\"Messages\" AS sy_t SET \"body\" = sy_v.c1, \"meta\" = sy_v.c2 "
						"FROM (VALUES ($1::character varying, $2::json, $3::bigint), "
						"($4::character varying, $5::json, $6::bigint)) AS sy_v (c1, c2, c3) "
						"WHERE sy_t.\"id\" = sy_v.c3");
	free(sql);
	/* without the target types there is no safe multi-row form */
	f.columns[2].type_name = NULL;
	assert_null(apply_sql_build_rows(&f.table, &f.plan, 2));
}

static void
delete_of_many_rows_joins_typed_keys(void **state)
{
	Fixture f;
	TupleValue values[3] = {text_value("7"), text_value("x"), text_value("(1,2)")};
	TupleData tuple = {3, values};
	char *sql;

	(void) state;
	fixture_init(&f, "chat", "Room \"Members\"", 'd');
	add_column(&f, "room", true, false);
	add_column(&f, "body", false, false);
	add_column(&f, "spot", true, true);
	f.columns[0].type_name = "integer";
	f.columns[1].type_name = "text";
	f.columns[2].type_name = "point";
	assert_true(apply_sql_plan_delete(&f.table, 'K', &tuple, &f.plan, f.err, sizeof(f.err)));
	sql = apply_sql_build_rows(&f.table, &f.plan, 2);
	assert_string_equal(sql,
						"DELETE FROM \"chat\".\"Room \"\"Members\"\"\" AS sy_t USING (VALUES "
						"($1::integer, $2::point), ($3::integer, $4::point)) AS sy_v (c1, c2) "
						"WHERE sy_t.\"room\" = sy_v.c1 AND sy_t.\"spot\"::text = sy_v.c2::text");
	free(sql);
	/* REPLICA IDENTITY FULL may match duplicates: one row at a time */
	f.plan.full = true;
	assert_null(apply_sql_build_rows(&f.table, &f.plan, 2));
}

static void
insert_without_columns_uses_default_values(void **state)
{
	Fixture f;
	TupleData tuple = {0, NULL};

	(void) state;
	fixture_init(&f, "public", "empty", 'd');
	assert_true(apply_sql_plan_insert(&f.table, &tuple, &f.plan, f.err, sizeof(f.err)));
	assert_sql(&f.table, &f.plan, "INSERT INTO \"public\".\"empty\" DEFAULT VALUES");
}

/* The column and row of a parameter an error names: the layout of every statement shape. */
static void
parameter_maps_back_to_its_column_and_row(void **state)
{
	Fixture f;
	TupleValue values[3] = {text_value("7"), text_value("hello"), text_value("{}")};
	TupleData tuple = {3, values};
	int row;

	(void) state;
	fixture_init(&f, "chat", "Messages", 'd');
	add_column(&f, "id", true, false);
	add_column(&f, "body", false, false);
	add_column(&f, "meta", false, true);
	/* UPDATE ... FROM (VALUES ($1 body, $2 meta, $3 id), ($4 body, $5 meta, $6 id)) */
	assert_true(apply_sql_plan_update(&f.table, 0, NULL, &tuple, &f.plan, f.err, sizeof(f.err)));
	assert_int_equal(apply_sql_param_column(f.roles, f.table.ncols, 1, &row), 1);
	assert_int_equal(row, 0);
	assert_int_equal(apply_sql_param_column(f.roles, f.table.ncols, 3, &row), 0);
	assert_int_equal(row, 0);
	assert_int_equal(apply_sql_param_column(f.roles, f.table.ncols, 5, &row), 2);
	assert_int_equal(row, 1);
	assert_int_equal(apply_sql_param_column(f.roles, f.table.ncols, 0, &row), -1);
	/* the single-row form: UPDATE ... SET body = $1, meta = $2 WHERE id = $3 */
	assert_sql(&f.table, &f.plan,
			   "UPDATE \"chat\".\"Messages\" SET \"body\" = $1, \"meta\" = $2 WHERE \"id\" = $3");
	assert_int_equal(apply_sql_param_column(f.roles, f.table.ncols, 3, &row), 0);
	/* an INSERT carries every column, in column order */
	assert_true(apply_sql_plan_insert(&f.table, &tuple, &f.plan, f.err, sizeof(f.err)));
	assert_int_equal(apply_sql_param_column(f.roles, f.table.ncols, 6, &row), 2);
	assert_int_equal(row, 1);
	/* a DELETE carries only the key */
	assert_true(apply_sql_plan_delete(&f.table, 'K', &tuple, &f.plan, f.err, sizeof(f.err)));
	assert_int_equal(apply_sql_param_column(f.roles, f.table.ncols, 2, &row), 0);
	assert_int_equal(row, 1);
	/* what the server says of a bad bound value */
	assert_int_equal(apply_sql_context_param("unnamed portal parameter $4 = '...'"), 4);
	assert_int_equal(apply_sql_context_param("portal \"p\" parameter $12"), 12);
	assert_int_equal(apply_sql_context_param("SQL function \"f\""), 0);
	assert_int_equal(apply_sql_context_param("parameter $0"), 0);
	assert_int_equal(apply_sql_context_param(NULL), 0);
}

static void
timestamp_formats_as_utc_text(void **state)
{
	char buf[APPLY_SQL_TIMESTAMP_SIZE];

	(void) state;
	assert_string_equal(apply_sql_format_timestamp(0, buf), "2000-01-01 00:00:00.000000+00");
	assert_string_equal(apply_sql_format_timestamp(INT64_C(767966400123456), buf),
						"2024-05-02 12:00:00.123456+00");
	assert_string_equal(apply_sql_format_timestamp(-1, buf), "1999-12-31 23:59:59.999999+00");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(quote_identifier_doubles_quotes_and_keeps_everything_else),
		cmocka_unit_test(qualified_name_maps_empty_namespace_to_pg_catalog),
		cmocka_unit_test(insert_lists_every_column_in_order),
		cmocka_unit_test(insert_with_unchanged_toast_is_rejected),
		cmocka_unit_test(tuple_with_wrong_column_count_is_rejected),
		cmocka_unit_test(update_default_identity_takes_key_from_new_tuple),
		cmocka_unit_test(update_of_key_columns_only_is_a_noop),
		cmocka_unit_test(update_key_change_matches_on_old_key_tuple),
		cmocka_unit_test(update_leaves_unchanged_toast_columns_out_of_set),
		cmocka_unit_test(update_with_only_unchanged_toast_is_a_noop),
		cmocka_unit_test(update_full_identity_matches_one_row_with_text_casts),
		cmocka_unit_test(update_full_identity_on_partitioned_target_matches_tableoid_too),
		cmocka_unit_test(update_full_identity_without_old_row_is_rejected),
		cmocka_unit_test(update_without_identity_is_rejected),
		cmocka_unit_test(delete_default_identity_uses_key_tuple),
		cmocka_unit_test(delete_full_identity_removes_one_duplicate),
		cmocka_unit_test(delete_without_old_tuple_is_rejected),
		cmocka_unit_test(same_shape_gives_same_roles_for_statement_reuse),
		cmocka_unit_test(truncate_lists_all_tables_with_flags),
		cmocka_unit_test(parameters_are_numbered_past_nine),
		cmocka_unit_test(insert_of_many_rows_numbers_each_row),
		cmocka_unit_test(update_of_many_rows_joins_typed_values),
		cmocka_unit_test(delete_of_many_rows_joins_typed_keys),
		cmocka_unit_test(insert_without_columns_uses_default_values),
		cmocka_unit_test(parameter_maps_back_to_its_column_and_row),
		cmocka_unit_test(timestamp_formats_as_utc_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
