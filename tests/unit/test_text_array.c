/*
 * Unit tests for text[] literals: every list the agent sends as one parameter (role names,
 * table names, sequence values, touched keys) must reach the server element for element.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "switchyard/text_array.h"

static void
test_text_array_quotes_every_item(void **state)
{
	char *hostile[] = {"app", "we\"ird", "back\\slash", "com,ma", "", "{brace}", NULL};
	char *none[] = {NULL};
	char *text;

	(void) state;
	text = text_array_from_list(hostile);
	assert_string_equal(text, "{\"app\",\"we\\\"ird\",\"back\\\\slash\",\"com,ma\",\"\",\"{brace}\"}");
	free(text);
	text = text_array_from_list(none);
	assert_string_equal(text, "{}");
	free(text);
	text = text_array_from_list(NULL);
	assert_string_equal(text, "{}");
	free(text);
}

static void
test_text_array_appends_nulls_and_lengths(void **state)
{
	char *buf = NULL;
	size_t used = 0;
	size_t cap = 0;

	(void) state;
	/* a length, not a terminator: the value's bytes after it are not taken */
	assert_true(text_array_append(&buf, &used, &cap, "12345", 2));
	assert_string_equal(buf, "{\"12\"");
	assert_true(text_array_append(&buf, &used, &cap, NULL, 0));
	assert_true(text_array_finish(&buf, &used, &cap));
	assert_string_equal(buf, "{\"12\",NULL}");
	assert_int_equal(used, strlen(buf));
	free(buf);
	/* many elements: the buffer grows */
	buf = NULL;
	used = cap = 0;
	for (int i = 0; i < 10000; i++)
		assert_true(text_array_append(&buf, &used, &cap, "x\"", 2));
	assert_true(text_array_finish(&buf, &used, &cap));
	assert_int_equal(used, 1 + 10000 * 6 - 1 + 1);
	assert_int_equal(strncmp(buf, "{\"x\\\"\",\"x", 9), 0);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_array_quotes_every_item),
		cmocka_unit_test(test_text_array_appends_nulls_and_lengths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
