/*
 * The read-only fence's statements: the role made read-only, and its setting given back
 * exactly (RESET when it had none), with hostile names and values quoted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>

#include "switchyard/fence.h"

static void
test_fence_makes_the_role_read_only(void **state)
{
	char *sql = fence_role_statement("app", true, NULL);

	assert_string_equal(sql, "ALTER ROLE \"app\" SET default_transaction_read_only = 'on'");
	free(sql);
	/* read-only wins over the previous value: that one is for the rollback */
	sql = fence_role_statement("app", true, "off");
	assert_string_equal(sql, "ALTER ROLE \"app\" SET default_transaction_read_only = 'on'");
	free(sql);
}

static void
test_fence_restores_a_role_without_setting_by_reset(void **state)
{
	char *sql = fence_role_statement("app", false, NULL);

	assert_string_equal(sql, "ALTER ROLE \"app\" RESET default_transaction_read_only");
	free(sql);
}

static void
test_fence_restores_the_previous_value(void **state)
{
	char *sql = fence_role_statement("app", false, "off");

	assert_string_equal(sql, "ALTER ROLE \"app\" SET default_transaction_read_only = 'off'");
	free(sql);
}

static void
test_fence_quotes_hostile_names_and_values(void **state)
{
	char *sql = fence_role_statement("a\"b; DROP", false, "o'ff");

	assert_string_equal(sql, "ALTER ROLE \"a\"\"b; DROP\" SET default_transaction_read_only = 'o''ff'");
	free(sql);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fence_makes_the_role_read_only),
		cmocka_unit_test(test_fence_restores_a_role_without_setting_by_reset),
		cmocka_unit_test(test_fence_restores_the_previous_value),
		cmocka_unit_test(test_fence_quotes_hostile_names_and_values),
	};

	return cmocka_run_group_tests_name("fence", tests, NULL, NULL);
}
