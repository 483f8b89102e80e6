/*
 * The target guard's pure parts: whose a target session is, the record of revoked grants
 * (merging across restarts, a lossless trip through guard.json) and the text[] literal that
 * carries role names as one query parameter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "switchyard/guard.h"

static char *app_roles[] = {"chat_app", "chat_worker", NULL};

static void
test_agent_sessions_are_its_role_and_name(void **state)
{
	assert_int_equal(guard_classify_session("migrator", "switchyard-apply", "migrator", NULL, app_roles),
					 GUARD_SESSION_AGENT);
	assert_int_equal(guard_classify_session("migrator", "switchyard-copy-2", "migrator", NULL, app_roles),
					 GUARD_SESSION_AGENT);
	assert_int_equal(guard_classify_session("migrator", "pg_restore", "migrator", NULL, app_roles),
					 GUARD_SESSION_AGENT);
	/* the application_name the user's --target sets wins over the agent's fallback names */
	assert_int_equal(guard_classify_session("migrator", "ops-target", "migrator", "ops-target", app_roles),
					 GUARD_SESSION_AGENT);
}

static void
test_a_switchyard_name_alone_is_not_enough(void **state)
{
	/* another role cannot pass for the agent by naming itself */
	assert_int_equal(guard_classify_session("chat_app", "switchyard-apply", "migrator", NULL, app_roles),
					 GUARD_SESSION_APP);
	assert_int_equal(guard_classify_session("dba", "switchyard-apply", "migrator", NULL, app_roles),
					 GUARD_SESSION_OTHER);
	/* nor the agent's role without the name */
	assert_int_equal(guard_classify_session("migrator", "psql", "migrator", NULL, app_roles),
					 GUARD_SESSION_OTHER);
	assert_int_equal(guard_classify_session("migrator", "", "migrator", "", app_roles), GUARD_SESSION_OTHER);
	assert_int_equal(guard_classify_session("migrator", "switchyard", "migrator", NULL, app_roles),
					 GUARD_SESSION_OTHER);
}

static void
test_application_roles_and_others(void **state)
{
	assert_int_equal(guard_classify_session("chat_worker", "worker", "migrator", NULL, app_roles),
					 GUARD_SESSION_APP);
	assert_int_equal(guard_classify_session("chat_app2", "x", "migrator", NULL, app_roles), GUARD_SESSION_OTHER);
	assert_int_equal(guard_classify_session("chat_app", "x", "migrator", NULL, NULL), GUARD_SESSION_OTHER);
	assert_int_equal(guard_classify_session(NULL, NULL, "migrator", NULL, app_roles), GUARD_SESSION_OTHER);
}

static void
test_parse_mode(void **state)
{
	GuardMode mode = GUARD_OBSERVE;

	assert_true(guard_parse_mode("enforce", &mode));
	assert_int_equal(mode, GUARD_ENFORCE);
	assert_true(guard_parse_mode("observe", &mode));
	assert_int_equal(mode, GUARD_OBSERVE);
	assert_false(guard_parse_mode("Enforce", &mode));
	assert_false(guard_parse_mode("", &mode));
	assert_false(guard_parse_mode(NULL, &mode));
	assert_string_equal(guard_mode_name(GUARD_ENFORCE), "enforce");
	assert_string_equal(guard_mode_name(GUARD_OBSERVE), "observe");
}

static GuardRecord *
new_record(const char *database)
{
	GuardRecord *record = calloc(1, sizeof(*record));

	assert_non_null(record);
	record->database = strdup(database);
	assert_true(guard_record_add_roles(record, NULL));
	return record;
}

static void
test_record_add_keeps_one_entry_per_grantee_and_grantor(void **state)
{
	GuardRecord *record = new_record("chat");
	bool added = false;

	assert_true(guard_record_add(record, NULL, "owner", false, &added));
	assert_true(added);
	assert_true(guard_record_add(record, "chat_app", "owner", false, &added));
	assert_true(added);
	assert_true(guard_record_add(record, "chat_app", "dba", false, &added));
	assert_true(added);
	/* a restart finds nothing granted: what the first run revoked stays recorded */
	assert_true(guard_record_add(record, NULL, "owner", false, &added));
	assert_false(added);
	/* granted again meanwhile, now with the grant option: the larger grant is given back */
	assert_true(guard_record_add(record, "chat_app", "owner", true, &added));
	assert_false(added);
	assert_int_equal(record->ngrants, 3);
	assert_null(record->grants[0].grantee);
	assert_string_equal(record->grants[1].grantee, "chat_app");
	assert_true(record->grants[1].grant_option);
	assert_string_equal(record->grants[2].grantor, "dba");
	assert_false(record->grants[2].grant_option);
	guard_record_free(record);
}

static void
test_record_roles_are_a_union(void **state)
{
	char *first[] = {"chat_app", NULL};
	char *second[] = {"chat_worker", "chat_app", NULL};
	GuardRecord *record = new_record("chat");

	assert_true(guard_record_add_roles(record, first));
	assert_true(guard_record_add_roles(record, second));
	assert_string_equal(record->app_roles[0], "chat_app");
	assert_string_equal(record->app_roles[1], "chat_worker");
	assert_null(record->app_roles[2]);
	guard_record_free(record);
}

static char *
make_temp_dir(void)
{
	char template[] = "/tmp/test_guard.XXXXXX";
	char *dir = mkdtemp(template);

	assert_non_null(dir);
	return strdup(dir);
}

static void
remove_temp_dir(char *dir)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/guard.json", dir);
	unlink(path);
	rmdir(dir);
	free(dir);
}

static void
test_record_round_trip(void **state)
{
	char *dir = make_temp_dir();
	char *roles[] = {"chat \"app\"", NULL};
	GuardRecord *record = new_record("chat db");
	GuardRecord *back = NULL;
	bool added;

	assert_true(guard_record_load(dir, &back));
	assert_null(back);              /* no record yet */
	record->mode = GUARD_ENFORCE;
	assert_true(guard_record_add_roles(record, roles));
	assert_true(guard_record_add(record, NULL, "owner", false, &added));
	assert_true(guard_record_add(record, "chat \"app\"", "dba", true, &added));
	assert_true(guard_record_save(dir, record));
	assert_true(guard_record_load(dir, &back));
	assert_non_null(back);
	assert_string_equal(back->database, "chat db");
	assert_int_equal(back->mode, GUARD_ENFORCE);
	assert_false(back->lifted);
	assert_string_equal(back->app_roles[0], "chat \"app\"");
	assert_null(back->app_roles[1]);
	assert_int_equal(back->ngrants, 2);
	assert_null(back->grants[0].grantee);
	assert_string_equal(back->grants[0].grantor, "owner");
	assert_false(back->grants[0].grant_option);
	assert_string_equal(back->grants[1].grantee, "chat \"app\"");
	assert_string_equal(back->grants[1].grantor, "dba");
	assert_true(back->grants[1].grant_option);
	guard_record_free(back);

	record->lifted = true;
	assert_true(guard_record_save(dir, record));
	assert_true(guard_record_load(dir, &back));
	assert_true(back->lifted);
	guard_record_free(back);
	guard_record_free(record);
	remove_temp_dir(dir);
}

static void
test_damaged_record_is_refused(void **state)
{
	char *dir = make_temp_dir();
	char path[512];
	GuardRecord *back = NULL;
	FILE *file;

	snprintf(path, sizeof(path), "%s/guard.json", dir);
	file = fopen(path, "w");
	assert_non_null(file);
	fputs("{\"database\": \"chat\", \"revoked\": [{\"grantee\": 7}]}", file);
	fclose(file);
	assert_false(guard_record_load(dir, &back));
	assert_null(back);
	remove_temp_dir(dir);
}

static void
test_cleanup_without_record_or_after_lift_does_nothing(void **state)
{
	char *dir = make_temp_dir();
	GuardRecord *record = new_record("chat");
	bool added;

	/* no record, no target needed */
	assert_true(guard_cleanup(dir, NULL));
	assert_true(guard_record_add(record, NULL, "owner", false, &added));
	record->lifted = true;
	assert_true(guard_record_save(dir, record));
	assert_true(guard_cleanup(dir, NULL));
	/* still revoked: without --target cleanup must refuse, or the record would be lost */
	record->lifted = false;
	assert_true(guard_record_save(dir, record));
	assert_false(guard_cleanup(dir, NULL));
	guard_record_free(record);
	remove_temp_dir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agent_sessions_are_its_role_and_name),
		cmocka_unit_test(test_a_switchyard_name_alone_is_not_enough),
		cmocka_unit_test(test_application_roles_and_others),
		cmocka_unit_test(test_parse_mode),
		cmocka_unit_test(test_record_add_keeps_one_entry_per_grantee_and_grantor),
		cmocka_unit_test(test_record_roles_are_a_union),
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test(test_damaged_record_is_refused),
		cmocka_unit_test(test_cleanup_without_record_or_after_lift_does_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
