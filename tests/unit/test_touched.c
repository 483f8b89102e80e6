/*
 * Unit tests for the touched-key tracker: stamps follow the transaction's end LSN, a delta
 * holds exactly the keys touched after a baseline, and whatever is not known (before the
 * start, a TRUNCATE, a key change, the memory bound, a pruned range) is said, never guessed;
 * and the last write of each table, keyed or not, follows every row written and every truncate.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchyard/touched.h"

static const char *const id_column[] = {"id"};

static void
add_id(TouchedKeys *t, const char *table, const char *id)
{
	const char *values[] = {id};
	uint32_t lengths[] = {(uint32_t) strlen(id)};

	touched_add(t, "public", table, 1, id_column, values, lengths);
}

static void
add_n(TouchedKeys *t, const char *table, int first, int n)
{
	char buf[32];

	for (int i = first; i < first + n; i++)
	{
		snprintf(buf, sizeof(buf), "%d", i);
		add_id(t, table, buf);
	}
}

static TouchedVerdict
delta_of(TouchedKeys *t, const char *table, Lsn baseline, TouchedDelta *d)
{
	return touched_delta(t, "public", table, baseline, d);
}

static void
keys_after_the_baseline_only(void **state)
{
	TouchedKeys *t = touched_create(0);
	TouchedDelta d;

	(void) state;
	touched_start(t, 100);
	add_id(t, "messages", "1");
	add_id(t, "messages", "2");
	touched_commit(t, 200);
	add_id(t, "messages", "3");
	add_id(t, "messages", "1");   /* touched again: its stamp moves on */
	touched_commit(t, 300);

	assert_int_equal(delta_of(t, "messages", 100, &d), TOUCHED_KNOWN);
	assert_int_equal(d.nkeys, 3);
	assert_int_equal(d.ncols, 1);
	assert_string_equal(d.columns[0], "id");
	touched_delta_free(&d);

	/* visible at 200: keys of the transaction ending at 200 are covered by the baseline */
	assert_int_equal(delta_of(t, "messages", 200, &d), TOUCHED_KNOWN);
	assert_int_equal(d.nkeys, 2);
	assert_string_equal(d.arrays[0], "{\"1\",\"3\"}");
	touched_delta_free(&d);

	assert_int_equal(delta_of(t, "messages", 300, &d), TOUCHED_KNOWN);
	assert_int_equal(d.nkeys, 0);
	assert_string_equal(d.arrays[0], "{}");
	touched_delta_free(&d);

	/* a table the stream never touched: known, nothing to compare */
	assert_int_equal(delta_of(t, "agents", 150, &d), TOUCHED_KNOWN);
	assert_int_equal(d.nkeys, 0);
	assert_int_equal(d.ncols, 0);
	touched_delta_free(&d);
	touched_free(t);
}

static void
open_transaction_is_newer_than_any_baseline(void **state)
{
	TouchedKeys *t = touched_create(0);
	TouchedDelta d;

	(void) state;
	touched_start(t, 0);
	add_id(t, "messages", "7");
	/* not committed yet: whatever the baseline, the row is compared */
	assert_int_equal(delta_of(t, "messages", UINT64_MAX - 1, &d), TOUCHED_KNOWN);
	assert_int_equal(d.nkeys, 1);
	touched_delta_free(&d);
	touched_free(t);
}

static void
before_the_start_nothing_is_known(void **state)
{
	TouchedKeys *t = touched_create(0);
	TouchedDelta d;

	(void) state;
	assert_int_equal(delta_of(t, "messages", 100, &d), TOUCHED_NO_START);
	touched_start(t, 500);
	touched_start(t, 900);   /* a reconnect: the first start counts */
	assert_int_equal(delta_of(t, "messages", 499, &d), TOUCHED_NO_START);
	assert_int_equal(delta_of(t, "messages", 500, &d), TOUCHED_KNOWN);
	touched_delta_free(&d);
	touched_free(t);
}

static void
a_truncate_loses_the_table_until_a_later_baseline(void **state)
{
	TouchedKeys *t = touched_create(0);
	TouchedDelta d;

	(void) state;
	touched_start(t, 0);
	add_id(t, "messages", "1");
	touched_commit(t, 100);
	touched_lose(t, "public", "messages");
	touched_commit(t, 200);
	add_id(t, "messages", "2");
	touched_commit(t, 300);
	assert_int_equal(delta_of(t, "messages", 150, &d), TOUCHED_LOST);
	assert_int_equal(delta_of(t, "messages", 200, &d), TOUCHED_KNOWN);
	assert_int_equal(d.nkeys, 1);
	assert_string_equal(d.arrays[0], "{\"2\"}");
	touched_delta_free(&d);
	/* other tables are not concerned */
	add_id(t, "agents", "5");
	touched_commit(t, 400);
	assert_int_equal(delta_of(t, "agents", 150, &d), TOUCHED_KNOWN);
	assert_int_equal(d.nkeys, 1);
	touched_delta_free(&d);
	touched_free(t);
}

static void
a_key_change_loses_the_table(void **state)
{
	TouchedKeys *t = touched_create(0);
	TouchedDelta d;
	const char *const columns[] = {"tenant", "id"};
	const char *values[] = {"a", "1"};
	uint32_t lengths[] = {1, 1};

	(void) state;
	touched_start(t, 0);
	add_id(t, "messages", "1");
	touched_commit(t, 100);
	touched_add(t, "public", "messages", 2, columns, values, lengths);
	touched_commit(t, 200);
	assert_int_equal(delta_of(t, "messages", 150, &d), TOUCHED_LOST);
	assert_int_equal(delta_of(t, "messages", 200, &d), TOUCHED_KNOWN);
	assert_int_equal(d.ncols, 2);
	assert_int_equal(d.nkeys, 0);
	touched_delta_free(&d);
	touched_free(t);
}

static void
over_the_bound_the_largest_table_is_lost(void **state)
{
	TouchedKeys *t = touched_create(100);
	TouchedDelta d;

	(void) state;
	touched_start(t, 0);
	add_n(t, "small", 0, 10);
	add_n(t, "big", 0, 90);
	touched_commit(t, 100);
	assert_int_equal(touched_count(t), 100);
	add_n(t, "big", 1000, 5);
	touched_commit(t, 200);
	assert_true(touched_count(t) <= 100);
	assert_int_equal(delta_of(t, "big", 150, &d), TOUCHED_LOST);
	assert_int_equal(delta_of(t, "small", 50, &d), TOUCHED_KNOWN);
	assert_int_equal(d.nkeys, 10);
	touched_delta_free(&d);
	touched_free(t);
}

static void
pruning_drops_covered_keys_and_refuses_older_baselines(void **state)
{
	TouchedKeys *t = touched_create(0);
	TouchedDelta d;

	(void) state;
	touched_start(t, 0);
	add_n(t, "messages", 0, 1000);
	touched_commit(t, 100);
	add_n(t, "messages", 500, 10);
	touched_commit(t, 200);
	touched_prune(t, "public", "messages", 150);
	/* the prune happens on the apply thread, at its next commit */
	touched_commit(t, 210);
	assert_int_equal(touched_count(t), 10);
	assert_int_equal(delta_of(t, "messages", 150, &d), TOUCHED_KNOWN);
	assert_int_equal(d.nkeys, 10);
	touched_delta_free(&d);
	/* keys stamped at or before 150 are gone: an older baseline cannot be answered */
	assert_int_equal(delta_of(t, "messages", 120, &d), TOUCHED_LOST);
	/* the kept keys are still found (touched again, not added twice) */
	add_n(t, "messages", 500, 10);
	touched_commit(t, 300);
	assert_int_equal(touched_count(t), 10);
	touched_free(t);
}

static void
array_literals_quote_and_escape(void **state)
{
	TouchedKeys *t = touched_create(0);
	TouchedDelta d;
	const char *const columns[] = {"k", "n"};
	const char *values[] = {"a\"b\\c,{}", NULL};
	uint32_t lengths[] = {8, 0};

	(void) state;
	touched_start(t, 0);
	touched_add(t, "s", "odd", 2, columns, values, lengths);
	touched_commit(t, 10);
	assert_int_equal(touched_delta(t, "s", "odd", 0, &d), TOUCHED_KNOWN);
	assert_string_equal(d.arrays[0], "{\"a\\\"b\\\\c,{}\"}");
	assert_string_equal(d.arrays[1], "{NULL}");
	touched_delta_free(&d);
	/* the same key bytes in another schema is another table */
	assert_int_equal(touched_delta(t, "public", "odd", 0, &d), TOUCHED_KNOWN);
	assert_int_equal(d.nkeys, 0);
	touched_delta_free(&d);
	touched_free(t);
}

static void
many_keys_survive_growth(void **state)
{
	TouchedKeys *t = touched_create(0);
	TouchedDelta d;

	(void) state;
	touched_start(t, 0);
	add_n(t, "messages", 0, 50000);
	add_n(t, "messages", 0, 50000);
	touched_commit(t, 100);
	assert_int_equal(touched_count(t), 50000);
	assert_int_equal(delta_of(t, "messages", 99, &d), TOUCHED_KNOWN);
	assert_int_equal(d.nkeys, 50000);
	assert_int_equal(strncmp(d.arrays[0], "{\"0\",\"1\",", 9), 0);
	touched_delta_free(&d);
	/* no tracker (verify outside the agent): nothing is known */
	assert_int_equal(touched_delta(NULL, "public", "x", 0, &d), TOUCHED_NO_START);
	touched_free(t);
}

static Lsn
written_of(TouchedKeys *t, const char *table, Lsn baseline, TouchedVerdict *verdict)
{
	Lsn last = 42;

	*verdict = touched_written_since(t, "public", table, baseline, &last);
	return last;
}

static void
a_keyless_table_is_written_at_its_last_transaction(void **state)
{
	TouchedKeys *t = touched_create(0);
	TouchedVerdict v;

	(void) state;
	touched_start(t, 100);
	/* keyless (REPLICA IDENTITY FULL or no key): the applier can only say the table changed */
	touched_lose(t, "public", "webhook_events");
	touched_commit(t, 200);
	add_id(t, "messages", "1");
	touched_commit(t, 300);

	assert_int_equal(written_of(t, "webhook_events", 150, &v), 200);
	assert_int_equal(v, TOUCHED_KNOWN);
	/* equal at 200 or later: not written since, nothing to compare */
	assert_int_equal(written_of(t, "webhook_events", 200, &v), 200);
	assert_int_equal(v, TOUCHED_KNOWN);
	assert_int_equal(written_of(t, "messages", 250, &v), 300);
	/* a table the applier never wrote in this process */
	assert_int_equal(written_of(t, "agents", 150, &v), 0);
	assert_int_equal(v, TOUCHED_KNOWN);

	/* written again: the last write moves on, truncates count as writes */
	touched_lose(t, "public", "webhook_events");
	assert_true(written_of(t, "webhook_events", 300, &v) > 300);   /* open: newer than any baseline */
	touched_commit(t, 400);
	assert_int_equal(written_of(t, "webhook_events", 300, &v), 400);
	touched_free(t);
}

static void
a_write_is_a_write_whatever_happens_to_its_keys(void **state)
{
	TouchedKeys *t = touched_create(4);
	TouchedDelta d;
	TouchedVerdict v;

	(void) state;
	touched_start(t, 0);
	add_n(t, "messages", 0, 3);
	touched_commit(t, 100);
	/* pruning drops the keys, never the last write */
	touched_prune(t, "public", "messages", 100);
	add_id(t, "agents", "1");
	touched_commit(t, 150);
	assert_int_equal(delta_of(t, "messages", 100, &d), TOUCHED_KNOWN);
	assert_int_equal(d.nkeys, 0);
	touched_delta_free(&d);
	assert_int_equal(written_of(t, "messages", 100, &v), 100);
	/* past the bound the largest table is lost; its last write is still its own */
	add_n(t, "agents", 10, 5);
	touched_commit(t, 200);
	assert_int_equal(written_of(t, "messages", 150, &v), 100);
	assert_int_equal(v, TOUCHED_KNOWN);
	assert_int_equal(written_of(t, "agents", 150, &v), 200);
	touched_free(t);
}

static void
before_the_start_no_write_is_known(void **state)
{
	TouchedKeys *t = touched_create(0);
	TouchedVerdict v;

	(void) state;
	/* not started: the applier has not said where it began */
	written_of(t, "webhook_events", 500, &v);
	assert_int_equal(v, TOUCHED_NO_START);
	touched_start(t, 1000);
	/* the baseline lies before this process began applying: unknown, even with no write */
	written_of(t, "webhook_events", 999, &v);
	assert_int_equal(v, TOUCHED_NO_START);
	assert_int_equal(written_of(t, "webhook_events", 1000, &v), 0);
	assert_int_equal(v, TOUCHED_KNOWN);
	written_of(NULL, "webhook_events", 1000, &v);
	assert_int_equal(v, TOUCHED_NO_START);
	touched_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keys_after_the_baseline_only),
		cmocka_unit_test(open_transaction_is_newer_than_any_baseline),
		cmocka_unit_test(before_the_start_nothing_is_known),
		cmocka_unit_test(a_truncate_loses_the_table_until_a_later_baseline),
		cmocka_unit_test(a_key_change_loses_the_table),
		cmocka_unit_test(over_the_bound_the_largest_table_is_lost),
		cmocka_unit_test(pruning_drops_covered_keys_and_refuses_older_baselines),
		cmocka_unit_test(array_literals_quote_and_escape),
		cmocka_unit_test(many_keys_survive_growth),
		cmocka_unit_test(a_keyless_table_is_written_at_its_last_transaction),
		cmocka_unit_test(a_write_is_a_write_whatever_happens_to_its_keys),
		cmocka_unit_test(before_the_start_no_write_is_known),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
