/*
 * The applier's row groups: values copied out and laid out per row, the shape and room
 * checks that decide whether a change may join, the identity hashes that keep a row
 * updated twice (or touched after a deferred insert) out of one statement, and the exact
 * match that lets a later update of a row replace its values instead.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "switchyard/apply_group.h"

#define NCOLS 3

typedef struct Change
{
	TupleValue values[NCOLS];
	const TupleValue *params[NCOLS];
	uint8_t roles[NCOLS];
	ApplySqlPlan plan;
} Change;

static void
text(TupleValue *v, const char *s)
{
	v->kind = TUPLE_VALUE_TEXT;
	v->data = s;
	v->length = (uint32_t) strlen(s);
}

/* An insert of (id, room, body); body NULL when NULL. */
static void
insert_change(Change *c, const char *id, const char *room, const char *body)
{
	memset(c, 0, sizeof(*c));
	text(&c->values[0], id);
	text(&c->values[1], room);
	if (body != NULL)
		text(&c->values[2], body);
	else
		c->values[2].kind = TUPLE_VALUE_NULL;
	for (int i = 0; i < NCOLS; i++)
	{
		c->params[i] = &c->values[i];
		c->roles[i] = APPLY_SQL_ROLE_SET;
	}
	c->plan.kind = APPLY_SQL_INSERT;
	c->plan.roles = c->roles;
	c->plan.params = c->params;
	c->plan.nparams = NCOLS;
}

/* An update SET room, body WHERE id: params room, body, id. */
static void
update_change(Change *c, const char *id, const char *room, const char *body)
{
	insert_change(c, id, room, body);
	c->plan.kind = APPLY_SQL_UPDATE;
	c->roles[0] = APPLY_SQL_ROLE_MATCH;
	c->params[0] = &c->values[1];
	c->params[1] = &c->values[2];
	c->params[2] = &c->values[0];
}

static uint64_t
key_of(const char *id)
{
	TupleValue v;
	const TupleValue *p = &v;

	text(&v, id);
	return apply_group_key_hash(&p, 1);
}

static void
test_rows_are_copied_in_order_with_nulls(void **state)
{
	ApplyGroup g = {0};
	Change c;
	char id[8];
	const char *const *values;
	int owner;

	(void) state;
	strcpy(id, "1");
	insert_change(&c, id, "10", "hello");
	assert_true(apply_group_append(&g, &owner, NCOLS, &c.plan, key_of("1"), 100));
	/* the decoder reuses its memory for the next message */
	strcpy(id, "2");
	insert_change(&c, id, "20", NULL);
	assert_true(apply_group_accepts(&g, &owner, &c.plan, key_of("2")));
	assert_true(apply_group_append(&g, &owner, NCOLS, &c.plan, key_of("2"), 200));
	assert_int_equal(g.rows, 2);
	assert_int_equal(g.first_lsn, 100);
	values = apply_group_values(&g);
	assert_string_equal(values[0], "1");
	assert_string_equal(values[1], "10");
	assert_string_equal(values[2], "hello");
	assert_string_equal(values[3], "2");
	assert_string_equal(values[4], "20");
	assert_null(values[5]);
	assert_int_equal(g.lengths[2], 5);
	assert_false(g.binary);
	apply_group_reset(&g);
	assert_null(g.owner);
	assert_int_equal(g.rows, 0);
	apply_group_free(&g);
}

static void
test_other_owner_kind_or_shape_is_refused(void **state)
{
	ApplyGroup g = {0};
	Change c;
	Change u;
	int owner;
	int other;

	(void) state;
	insert_change(&c, "1", "10", "a");
	assert_false(apply_group_accepts(&g, &owner, &c.plan, key_of("1")));   /* empty */
	assert_true(apply_group_append(&g, &owner, NCOLS, &c.plan, key_of("1"), 1));
	insert_change(&c, "2", "10", "b");
	assert_false(apply_group_accepts(&g, &other, &c.plan, key_of("2")));
	update_change(&u, "2", "10", "b");
	assert_false(apply_group_accepts(&g, &owner, &u.plan, key_of("2")));
	/* an unchanged TOAST column left out of the row: another statement shape */
	c.roles[2] = 0;
	c.plan.nparams = 2;
	assert_false(apply_group_accepts(&g, &owner, &c.plan, key_of("2")));
	apply_group_free(&g);
}

static void
test_update_of_a_row_already_in_the_group_is_refused(void **state)
{
	ApplyGroup g = {0};
	Change u;
	int owner;

	(void) state;
	update_change(&u, "7", "1", "x");
	assert_int_equal(apply_group_key_hash(u.plan.params + 2, 1), key_of("7"));
	assert_true(apply_group_append(&g, &owner, NCOLS, &u.plan, key_of("7"), 1));
	update_change(&u, "8", "1", "x");
	assert_true(apply_group_accepts(&g, &owner, &u.plan, key_of("8")));
	update_change(&u, "7", "2", "y");
	assert_false(apply_group_accepts(&g, &owner, &u.plan, key_of("7")));
	assert_true(apply_group_has_key(&g, key_of("7")));
	assert_false(apply_group_has_key(&g, key_of("8")));
	apply_group_free(&g);
}

static void
test_later_update_of_a_row_replaces_its_values(void **state)
{
	ApplyGroup g = {0};
	Change u;
	const char *const *values;
	int owner;
	char *big = malloc(APPLY_GROUP_BYTES);

	(void) state;
	assert_non_null(big);
	update_change(&u, "7", "1", "x");
	assert_true(apply_group_append(&g, &owner, NCOLS, &u.plan, key_of("7"), 1));
	update_change(&u, "8", "1", NULL);
	assert_true(apply_group_append(&g, &owner, NCOLS, &u.plan, key_of("8"), 2));
	/* row 1 is found by its exact match value, not only by the hash */
	update_change(&u, "8", "2", "later");
	assert_int_equal(apply_group_find_row(&g, &u.plan, 1, key_of("8")), 1);
	assert_int_equal(apply_group_find_row(&g, &u.plan, 1, key_of("7")), -1);
	update_change(&u, "9", "2", "later");
	assert_int_equal(apply_group_find_row(&g, &u.plan, 1, key_of("8")), -1);
	update_change(&u, "8", "2", "later");
	assert_true(apply_group_replace(&g, 1, &u.plan));
	assert_int_equal(g.rows, 2);
	assert_int_equal(g.changes, 3);
	values = apply_group_values(&g);
	assert_string_equal(values[0], "1");
	assert_string_equal(values[1], "x");
	assert_string_equal(values[2], "7");
	assert_string_equal(values[3], "2");
	assert_string_equal(values[4], "later");
	assert_string_equal(values[5], "8");
	/* back to NULL */
	update_change(&u, "8", "3", NULL);
	assert_true(apply_group_replace(&g, 1, &u.plan));
	values = apply_group_values(&g);
	assert_null(values[4]);
	assert_string_equal(values[3], "3");
	/* a replacement that would pass the group's byte bound is refused */
	memset(big, 'x', APPLY_GROUP_BYTES - 1);
	big[APPLY_GROUP_BYTES - 1] = '\0';
	update_change(&u, "8", "4", big);
	assert_false(apply_group_replace(&g, 1, &u.plan));
	apply_group_free(&g);
	free(big);
}

static void
test_insert_key_hashes_like_the_later_match_values(void **state)
{
	ApplySqlColumn columns[NCOLS] = {{.name = "room"}, {.name = "id", .is_key = true},
									 {.name = "seq", .is_key = true}};
	ApplySqlTable table = {.nspname = "public", .relname = "t", .replident = 'd', .ncols = NCOLS,
						   .columns = columns};
	TupleValue values[NCOLS];
	TupleData tuple = {.ncols = NCOLS, .values = values};
	const TupleValue *match[2] = {&values[1], &values[2]};
	uint64_t key;

	(void) state;
	text(&values[0], "5");
	text(&values[1], "ab");
	text(&values[2], "c");
	key = apply_group_tuple_key(&table, &tuple);
	assert_int_equal(key, apply_group_key_hash(match, 2));
	/* the same bytes split differently are another key */
	text(&values[1], "a");
	text(&values[2], "bc");
	assert_int_not_equal(key, apply_group_tuple_key(&table, &tuple));
	/* a non-key column does not count */
	text(&values[1], "ab");
	text(&values[2], "c");
	text(&values[0], "6");
	assert_int_equal(key, apply_group_tuple_key(&table, &tuple));
}

static void
test_group_is_bounded_in_rows_and_bytes(void **state)
{
	ApplyGroup g = {0};
	Change c;
	int owner;
	char *big = malloc(APPLY_GROUP_BYTES / 2);

	(void) state;
	assert_non_null(big);
	memset(big, 'x', APPLY_GROUP_BYTES / 2 - 1);
	big[APPLY_GROUP_BYTES / 2 - 1] = '\0';
	for (int i = 0; i < APPLY_GROUP_ROWS; i++)
	{
		insert_change(&c, "1", "1", "b");
		if (i > 0)
			assert_true(apply_group_accepts(&g, &owner, &c.plan, 0));
		assert_true(apply_group_append(&g, &owner, NCOLS, &c.plan, 0, (uint64_t) i));
	}
	assert_false(apply_group_accepts(&g, &owner, &c.plan, 0));
	apply_group_reset(&g);
	insert_change(&c, "1", "1", big);
	assert_true(apply_group_append(&g, &owner, NCOLS, &c.plan, 0, 1));
	assert_false(apply_group_accepts(&g, &owner, &c.plan, 0));
	apply_group_free(&g);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows_are_copied_in_order_with_nulls),
		cmocka_unit_test(test_other_owner_kind_or_shape_is_refused),
		cmocka_unit_test(test_update_of_a_row_already_in_the_group_is_refused),
		cmocka_unit_test(test_later_update_of_a_row_replaces_its_values),
		cmocka_unit_test(test_insert_key_hashes_like_the_later_match_values),
		cmocka_unit_test(test_group_is_bounded_in_rows_and_bytes),
	};

	return cmocka_run_group_tests_name("apply_group", tests, NULL, NULL);
}
