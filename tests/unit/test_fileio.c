/*
 * The atomic file writer: a file reads back as written, a second write replaces it whole,
 * it gets the mode asked for whatever the umask, no temporary file is left, and a failure
 * says which file and why.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "switchyard/fileio.h"

static char base_dir[64];
static char file_path[128];
static char temp_path[160];

static int
setup(void **state)
{
	strcpy(base_dir, "/tmp/switchyard-test-fileio-XXXXXX");
	if (mkdtemp(base_dir) == NULL)
		return -1;
	snprintf(file_path, sizeof(file_path), "%s/report.json", base_dir);
	snprintf(temp_path, sizeof(temp_path), "%s" FILEIO_TEMP_SUFFIX, file_path);
	return 0;
}

static int
teardown(void **state)
{
	char command[256];

	snprintf(command, sizeof(command), "rm -rf '%s'", base_dir);
	return system(command) == 0 ? 0 : -1;
}

/* The whole file, NUL-terminated; the test fails when it cannot be read. */
static char *
read_whole(const char *path)
{
	FILE *file = fopen(path, "rb");
	char *text = calloc(1, 4096);
	size_t got;

	assert_non_null(file);
	assert_non_null(text);
	got = fread(text, 1, 4095, file);
	text[got] = '\0';
	fclose(file);
	return text;
}

static void
assert_no_temp_file(void)
{
	struct stat st;

	assert_int_not_equal(stat(temp_path, &st), 0);
}

static void
test_write_creates_the_file(void **state)
{
	char *text;

	assert_true(fileio_write_atomic(file_path, "abc", 3, 0600));
	text = read_whole(file_path);
	assert_string_equal(text, "abc");
	free(text);
	assert_no_temp_file();
}

static void
test_write_keeps_binary_data(void **state)
{
	const char data[] = {'a', '\0', 'b', '\n'};
	char read_back[8];
	FILE *file;

	assert_true(fileio_write_atomic(file_path, data, sizeof(data), 0600));
	file = fopen(file_path, "rb");
	assert_non_null(file);
	assert_int_equal(fread(read_back, 1, sizeof(read_back), file), sizeof(data));
	fclose(file);
	assert_memory_equal(read_back, data, sizeof(data));
}

static void
test_overwrite_replaces_the_whole_file(void **state)
{
	char *text;

	assert_true(fileio_write_atomic(file_path, "a much longer first version", 27, 0600));
	assert_true(fileio_write_atomic(file_path, "short", 5, 0600));
	text = read_whole(file_path);
	assert_string_equal(text, "short");
	free(text);
	assert_no_temp_file();
}

static void
test_write_text_ends_with_a_newline(void **state)
{
	char *text;

	assert_true(fileio_write_text(file_path, "{ \"a\": 1 }", 0600));
	text = read_whole(file_path);
	assert_string_equal(text, "{ \"a\": 1 }\n");
	free(text);
}

static void
test_mode_is_the_one_asked_for(void **state)
{
	mode_t saved = umask(077);
	struct stat st;

	/* 0644 despite the umask: PgBouncer must still read its rewritten ini */
	assert_true(fileio_write_atomic(file_path, "x", 1, 0644));
	assert_int_equal(stat(file_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	/* an overwrite takes the new mode too */
	assert_true(fileio_write_atomic(file_path, "y", 1, 0600));
	assert_int_equal(stat(file_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	umask(saved);
}

static void
test_replace_keeps_mode_and_owner(void **state)
{
	struct stat st;
	char *text;

	/* a pgbouncer.ini with passwords in it, readable by its group only */
	assert_true(fileio_write_atomic(file_path, "[databases]\n", 12, 0640));
	if (geteuid() == 0)
		assert_int_equal(chown(file_path, 65534, 65534), 0);
	assert_true(fileio_replace_keeping_mode(file_path, "rewritten", 9));
	assert_int_equal(stat(file_path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	if (geteuid() == 0)
	{
		assert_int_equal(st.st_uid, 65534);
		assert_int_equal(st.st_gid, 65534);
	}
	text = read_whole(file_path);
	assert_string_equal(text, "rewritten");
	free(text);
	/* root may keep any owner (here a foreign one), anyone else their own file's */
	assert_true(fileio_can_keep_owner(file_path));
	/* nothing to keep the mode of: an error, not a file of some default mode */
	assert_int_equal(unlink(file_path), 0);
	assert_false(fileio_replace_keeping_mode(file_path, "x", 1));
	assert_int_not_equal(access(file_path, F_OK), 0);
}

static void
test_missing_directory_fails_naming_the_path(void **state)
{
	char path[192];
	char expected[256];
	char logged[2048];
	FILE *capture = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t got;
	bool ok;

	snprintf(path, sizeof(path), "%s/no-such-dir/state.pb", base_dir);
	assert_non_null(capture);
	fflush(stderr);
	dup2(fileno(capture), STDERR_FILENO);
	errno = 0;
	ok = fileio_write_atomic(path, "x", 1, 0600);
	assert_int_equal(errno, ENOENT);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(capture);
	got = fread(logged, 1, sizeof(logged) - 1, capture);
	logged[got] = '\0';
	fclose(capture);

	assert_false(ok);
	snprintf(expected, sizeof(expected), "ERROR:  could not write file \"%s\": %s", path, strerror(ENOENT));
	assert_non_null(strstr(logged, expected));
}

static void
test_failed_write_leaves_the_old_file(void **state)
{
	char *text;

	assert_true(fileio_write_atomic(file_path, "old", 3, 0600));
	/* a directory where the temporary file should go makes the write fail */
	assert_int_equal(mkdir(temp_path, 0700), 0);
	assert_false(fileio_write_atomic(file_path, "new", 3, 0600));
	text = read_whole(file_path);
	assert_string_equal(text, "old");
	free(text);
	assert_int_equal(rmdir(temp_path), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_creates_the_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_keeps_binary_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overwrite_replaces_the_whole_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_text_ends_with_a_newline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode_is_the_one_asked_for, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_keeps_mode_and_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_directory_fails_naming_the_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_write_leaves_the_old_file, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
