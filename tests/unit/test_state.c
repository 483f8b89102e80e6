/*
 * The persisted state and the agent lock: a saved state reads back field for field, only
 * the owner can read it, and a second agent cannot take a locked state directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "switchyard/fileio.h"
#include "switchyard/state.h"

static char base_dir[64];
static char state_dir[128];

static int
setup(void **state)
{
	strcpy(base_dir, "/tmp/switchyard-test-state-XXXXXX");
	if (mkdtemp(base_dir) == NULL)
		return -1;
	snprintf(state_dir, sizeof(state_dir), "%s/state", base_dir);
	return 0;
}

static int
teardown(void **state)
{
	char command[256];

	snprintf(command, sizeof(command), "rm -rf '%s'", base_dir);
	return system(command) == 0 ? 0 : -1;
}

static void
test_dir_ensure_creates_private_directory(void **state)
{
	struct stat st;
	bool created = false;

	assert_true(state_dir_ensure(state_dir, &created));
	assert_true(created);
	assert_int_equal(stat(state_dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	/* a second time is fine, and says it found the directory */
	assert_true(state_dir_ensure(state_dir, &created));
	assert_false(created);
}

static void
test_dir_ensure_refuses_a_file(void **state)
{
	int fd = open(state_dir, O_WRONLY | O_CREAT, 0600);

	assert_true(fd >= 0);
	close(fd);
	assert_false(state_dir_ensure(state_dir, NULL));
}

static void
test_load_without_state_gives_null(void **state)
{
	AgentState *loaded = (AgentState *) 1;

	assert_true(state_load(state_dir, &loaded));
	assert_null(loaded);
	assert_true(state_dir_ensure(state_dir, NULL));
	assert_true(state_load(state_dir, &loaded));
	assert_null(loaded);
}

static void
test_save_load_round_trip(void **state)
{
	AgentState saved = AGENT_STATE__INIT;
	AgentState *loaded = NULL;
	char *tables[] = {"\"public\".\"a\"", "\"chat\".\"odd\"\"name\""};
	char path[256];
	struct stat st;

	saved.slot_name = "switchyard_app";
	saved.publication_name = "switchyard_pub";
	saved.origin_name = "switchyard_origin";
	saved.source_system_id = UINT64_C(7312345678901234567);
	saved.source_database = "app";
	saved.phase = "streaming";
	saved.consistent_point = UINT64_C(0x100000028);
	saved.received_lsn = UINT64_C(0x16B374D848);
	saved.flushed_lsn = UINT64_C(0x16B374D800);
	saved.applied_lsn = UINT64_C(0x16B3740000);
	saved.updated_at_unix_us = INT64_C(1714564800123456);
	saved.n_tables = 2;
	saved.tables = tables;

	assert_true(state_dir_ensure(state_dir, NULL));
	assert_true(state_save(state_dir, &saved));
	/* a second save replaces the first */
	saved.applied_lsn = UINT64_C(0x16B374D848);
	assert_true(state_save(state_dir, &saved));

	snprintf(path, sizeof(path), "%s/state.pb", state_dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/state.pb" FILEIO_TEMP_SUFFIX, state_dir);
	assert_int_not_equal(stat(path, &st), 0);

	assert_true(state_load(state_dir, &loaded));
	assert_non_null(loaded);
	assert_string_equal(loaded->slot_name, saved.slot_name);
	assert_string_equal(loaded->publication_name, saved.publication_name);
	assert_string_equal(loaded->origin_name, saved.origin_name);
	assert_int_equal(loaded->source_system_id, saved.source_system_id);
	assert_string_equal(loaded->source_database, saved.source_database);
	assert_string_equal(loaded->phase, saved.phase);
	assert_int_equal(loaded->consistent_point, saved.consistent_point);
	assert_int_equal(loaded->received_lsn, saved.received_lsn);
	assert_int_equal(loaded->flushed_lsn, saved.flushed_lsn);
	assert_int_equal(loaded->applied_lsn, UINT64_C(0x16B374D848));
	assert_int_equal(loaded->updated_at_unix_us, saved.updated_at_unix_us);
	assert_int_equal(loaded->n_tables, 2);
	assert_string_equal(loaded->tables[0], tables[0]);
	assert_string_equal(loaded->tables[1], tables[1]);
	state_free(loaded);

	assert_true(state_remove(state_dir));
	assert_true(state_load(state_dir, &loaded));
	assert_null(loaded);
	assert_true(state_remove(state_dir));
}

static void
test_corrupt_state_is_an_error(void **state)
{
	AgentState *loaded = NULL;
	char path[256];
	FILE *file;

	assert_true(state_dir_ensure(state_dir, NULL));
	snprintf(path, sizeof(path), "%s/state.pb", state_dir);
	file = fopen(path, "w");
	assert_non_null(file);
	fputs("\xff\xff\xff\xff garbage", file);
	fclose(file);
	assert_false(state_load(state_dir, &loaded));
	assert_null(loaded);
}

static void
test_lock_is_exclusive(void **state)
{
	int first = -1;
	int second = -1;
	int pid = 0;

	assert_true(state_dir_ensure(state_dir, NULL));
	assert_false(state_lock_is_held(state_dir, &pid));
	assert_true(state_lock(state_dir, &first));
	assert_true(first >= 0);
	assert_true(state_lock_is_held(state_dir, &pid));
	assert_int_equal(pid, getpid());
	/* flock conflicts between open files even within one process */
	assert_false(state_lock(state_dir, &second));
	assert_int_equal(second, -1);
	state_unlock(first);
	assert_false(state_lock_is_held(state_dir, &pid));
	assert_true(state_lock(state_dir, &second));
	state_unlock(second);
}

/* A first run that created nothing on the servers leaves nothing behind. */
static void
test_discard_removes_what_the_run_created(void **state)
{
	AgentState saved = AGENT_STATE__INIT;
	struct stat st;
	bool created = false;
	int lock_fd = -1;

	saved.slot_name = "switchyard_0a0b0c0d";
	assert_true(state_dir_ensure(state_dir, &created));
	assert_true(state_lock(state_dir, &lock_fd));
	assert_true(state_save(state_dir, &saved));
	state_discard(state_dir, lock_fd, created);
	assert_int_not_equal(stat(state_dir, &st), 0);
}

static void
test_discard_keeps_a_directory_it_found(void **state)
{
	AgentState saved = AGENT_STATE__INIT;
	AgentState *loaded = NULL;
	struct stat st;
	bool created = true;
	int lock_fd = -1;
	int pid = 0;

	saved.slot_name = "switchyard_0a0b0c0d";
	assert_int_equal(mkdir(state_dir, 0700), 0);
	assert_true(state_dir_ensure(state_dir, &created));
	assert_false(created);
	assert_true(state_lock(state_dir, &lock_fd));
	assert_true(state_save(state_dir, &saved));
	state_discard(state_dir, lock_fd, created);
	assert_int_equal(stat(state_dir, &st), 0);
	assert_true(state_load(state_dir, &loaded));
	assert_null(loaded);
	assert_false(state_lock_is_held(state_dir, &pid));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dir_ensure_creates_private_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_ensure_refuses_a_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_without_state_gives_null, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_state_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_is_exclusive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_removes_what_the_run_created, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_keeps_a_directory_it_found, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
