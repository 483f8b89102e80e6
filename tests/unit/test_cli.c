/*
 * The command line: every command's options, what each command refuses, strict values,
 * the config file under the flags, and the environment under both.
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

#include "switchyard/cli.h"

#define ARGC(a) ((int) (sizeof(a) / sizeof((a)[0])))

/* What the last parse printed to stderr. */
static char last_error[2048];

/* Parses with stderr captured into last_error. */
static bool
parse(int argc, char **argv, CliOptions *options)
{
	FILE *capture = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t got;
	bool ok;

	assert_non_null(capture);
	fflush(stderr);
	dup2(fileno(capture), STDERR_FILENO);
	ok = cli_parse(argc, argv, options);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(capture);
	got = fread(last_error, 1, sizeof(last_error) - 1, capture);
	last_error[got] = '\0';
	fclose(capture);
	return ok;
}

static int
count_lines(const char *text)
{
	int lines = 0;

	for (; *text != '\0'; text++)
		lines += *text == '\n';
	return lines;
}

static void
assert_usage_error(int argc, char **argv, const char *expected)
{
	CliOptions options;

	assert_false(parse(argc, argv, &options));
	if (strstr(last_error, expected) == NULL)
		fail_msg("expected \"%s\" in: %s", expected, last_error);
	assert_non_null(strstr(last_error, "Try \"switchyard --help\" for more information."));
	/* exactly two lines: what is wrong, and the hint */
	assert_int_equal(strncmp(last_error, "switchyard: ", 12), 0);
	assert_int_equal(count_lines(last_error), 2);
	/* a failed parse leaves nothing to free */
	assert_null(options.state_dir);
	assert_null(options.tables);
}

static char config_path[64];

static void
write_config(const char *text)
{
	int fd;

	strcpy(config_path, "/tmp/switchyard-test-cli-XXXXXX");
	fd = mkstemp(config_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
	close(fd);
}

static int
teardown(void **state)
{
	if (config_path[0] != '\0')
		unlink(config_path);
	config_path[0] = '\0';
	unsetenv("SWITCHYARD_SOURCE");
	unsetenv("SWITCHYARD_TARGET");
	return 0;
}

static void
test_run_parses_every_option(void **state)
{
	char *argv[] = {"switchyard", "run", "--source", "host=a dbname=app", "--target=host=b",
		"--tables", "public.a", "--no-copy", "--endpos", "1/A0", "--http", "127.0.0.1:9187",
		"--app-roles", "app", "--jobs", "3", "--spool-max", "512MB", "--truncate-target",
		"--state-dir", "/tmp/sy", "--log-level", "debug"};
	CliOptions options;

	assert_true(parse(ARGC(argv), argv, &options));
	assert_int_equal(options.command, CLI_COMMAND_RUN);
	assert_string_equal(options.source, "host=a dbname=app");
	assert_string_equal(options.target, "host=b");
	assert_string_equal(options.tables[0], "public.a");
	assert_null(options.tables[1]);
	assert_true(options.no_copy);
	assert_int_equal(options.endpos, (UINT64_C(1) << 32) | 0xA0);
	assert_string_equal(options.http, "127.0.0.1:9187");
	assert_string_equal(options.app_roles[0], "app");
	assert_null(options.app_roles[1]);
	assert_int_equal(options.jobs, 3);
	assert_int_equal(options.spool_max_bytes, UINT64_C(512) << 20);
	assert_true(options.truncate_target);
	assert_string_equal(options.state_dir, "/tmp/sy");
	assert_int_equal(options.log_level, LOG_LEVEL_DEBUG);
	assert_false(options.help);
	cli_options_free(&options);
}

static void
test_run_defaults(void **state)
{
	char *argv[] = {"switchyard", "run", "--source", "s", "--target", "t"};
	CliOptions options;

	assert_true(parse(ARGC(argv), argv, &options));
	assert_string_equal(options.state_dir, "./switchyard-state");
	assert_int_equal(options.log_level, LOG_LEVEL_INFO);
	assert_int_equal(options.jobs, (int) sysconf(_SC_NPROCESSORS_ONLN));
	assert_int_equal(options.spool_max_bytes, UINT64_C(8) << 30);
	assert_null(options.tables);
	assert_null(options.app_roles);
	assert_int_equal(options.endpos, 0);
	assert_false(options.no_copy);
	assert_null(options.config_file);
	cli_options_free(&options);
}

static void
test_guard_mode(void **state)
{
	char *enforce[] = {"switchyard", "run", "--source", "s", "--target", "t", "--guard", "enforce"};
	char *observe[] = {"switchyard", "run", "--source", "s", "--target", "t", "--guard=observe"};
	char *from_file[] = {"switchyard", "run", "--config", config_path};
	char *bad[] = {"switchyard", "run", "--source", "s", "--target", "t", "--guard", "kill"};
	char *not_here[] = {"switchyard", "status", "--guard", "enforce"};
	CliOptions options;

	assert_true(parse(ARGC(enforce), enforce, &options));
	assert_true(options.guard_enforce);
	cli_options_free(&options);
	assert_true(parse(ARGC(observe), observe, &options));
	assert_false(options.guard_enforce);
	cli_options_free(&options);
	write_config("source = s\ntarget = t\nguard = enforce\napp-roles = chat_app, chat_worker\n");
	assert_true(parse(ARGC(from_file), from_file, &options));
	assert_true(options.guard_enforce);
	assert_string_equal(options.app_roles[1], "chat_worker");
	cli_options_free(&options);
	assert_usage_error(ARGC(bad), bad, "expected observe or enforce");
	assert_usage_error(ARGC(not_here), not_here, "not valid for command");
}

static void
test_run_needs_source_and_target(void **state)
{
	char *no_source[] = {"switchyard", "run", "--target", "t"};
	char *no_target[] = {"switchyard", "run", "--source", "s"};

	assert_usage_error(ARGC(no_source), no_source, "needs --source");
	assert_usage_error(ARGC(no_target), no_target, "needs --target");
}

static void
test_malformed_conninfo_is_a_usage_error(void **state)
{
	char *source[] = {"switchyard", "run", "--source", "host=x password=Hidden-1 port", "--target", "t"};
	char *target[] = {"switchyard", "run", "--source", "s", "--target", "host='y"};
	char *uri[] = {"switchyard", "run", "--source", "postgresql://u:Hidden-2@[::1/db", "--target", "t"};
	char *pgbouncer[] = {"switchyard", "cutover", "--pgbouncer", "host=a x", "--pgbouncer-db", "d",
		"--pgbouncer-ini", "f"};
	char *from_env[] = {"switchyard", "run", "--target", "t"};

	assert_usage_error(ARGC(source), source,
					   "invalid connection string for \"--source\": missing \"=\" after \"port\"");
	/* the string may hold a password: it is not echoed */
	assert_null(strstr(last_error, "Hidden-1"));
	assert_usage_error(ARGC(target), target, "invalid connection string for \"--target\": unterminated");
	/* libpq quotes a malformed URI whole: its password is hidden */
	assert_usage_error(ARGC(uri), uri, "invalid connection string for \"--source\": end of string");
	assert_null(strstr(last_error, "Hidden-2"));
	assert_non_null(strstr(last_error, "postgresql://u:***@[::1/db"));
	assert_usage_error(ARGC(pgbouncer), pgbouncer, "invalid connection string for \"--pgbouncer\"");
	setenv("SWITCHYARD_SOURCE", "host=x port", 1);
	assert_usage_error(ARGC(from_env), from_env, "invalid connection string in SWITCHYARD_SOURCE");
}

static void
test_conninfo_forms_libpq_accepts(void **state)
{
	char *bare[] = {"switchyard", "run", "--source", "appdb", "--target", "postgresql://u@h/db?sslmode=require"};
	CliOptions options;

	/* a bare word is a database name; a URI is a connection string */
	assert_true(parse(ARGC(bare), bare, &options));
	assert_string_equal(options.source, "appdb");
	cli_options_free(&options);
}

static void
test_status_parses_json(void **state)
{
	char *argv[] = {"switchyard", "status", "--json", "--state-dir", "d"};
	CliOptions options;

	assert_true(parse(ARGC(argv), argv, &options));
	assert_int_equal(options.command, CLI_COMMAND_STATUS);
	assert_true(options.json);
	assert_string_equal(options.state_dir, "d");
	cli_options_free(&options);
}

static void
test_verify_parses_its_options(void **state)
{
	char *argv[] = {"switchyard", "verify", "--table", "public.a", "--table", "public.b,public.c",
		"--repair", "--json", "--source", "s", "--target", "t"};
	CliOptions options;

	assert_true(parse(ARGC(argv), argv, &options));
	assert_int_equal(options.command, CLI_COMMAND_VERIFY);
	assert_string_equal(options.tables[0], "public.a");
	assert_string_equal(options.tables[1], "public.b");
	assert_string_equal(options.tables[2], "public.c");
	assert_null(options.tables[3]);
	assert_true(options.repair);
	assert_true(options.json);
	assert_string_equal(options.source, "s");
	assert_string_equal(options.target, "t");
	cli_options_free(&options);
}

static void
test_cutover_parses_its_options(void **state)
{
	char *argv[] = {"switchyard", "cutover", "--pgbouncer", "port=6432 dbname=pgbouncer",
		"--pgbouncer-db", "app", "--pgbouncer-ini", "/etc/pgbouncer.ini", "--dry-run", "--yes"};
	CliOptions options;

	assert_true(parse(ARGC(argv), argv, &options));
	assert_int_equal(options.command, CLI_COMMAND_CUTOVER);
	assert_string_equal(options.pgbouncer, "port=6432 dbname=pgbouncer");
	assert_string_equal(options.pgbouncer_db, "app");
	assert_string_equal(options.pgbouncer_ini, "/etc/pgbouncer.ini");
	assert_true(options.dry_run);
	assert_true(options.yes);
	cli_options_free(&options);
}

static void
test_cutover_pgbouncer_options_go_together(void **state)
{
	char *argv[] = {"switchyard", "cutover", "--pgbouncer", "port=6432"};

	assert_usage_error(ARGC(argv), argv, "must be given together");
}

static void
test_cutover_fence_values(void **state)
{
	char *manual[] = {"switchyard", "cutover", "--fence", "manual"};
	char *pgbouncer[] = {"switchyard", "cutover", "--fence", "pgbouncer", "--dry-run"};
	char *bad[] = {"switchyard", "cutover", "--fence", "readonly"};
	CliOptions options;

	assert_true(parse(ARGC(manual), manual, &options));
	assert_int_equal(options.fence, CLI_FENCE_MANUAL);
	cli_options_free(&options);
	assert_true(parse(ARGC(pgbouncer), pgbouncer, &options));
	assert_int_equal(options.fence, CLI_FENCE_PGBOUNCER);
	cli_options_free(&options);
	assert_usage_error(ARGC(bad), bad, "expected pgbouncer, read-only or manual");
}

static void
test_cutover_read_only_fence_takes_app_roles(void **state)
{
	char *argv[] = {"switchyard", "cutover", "--fence", "read-only", "--app-roles", "chat_app,chat_worker",
		"--app-roles", "reports", "--yes"};
	CliOptions options;

	assert_true(parse(ARGC(argv), argv, &options));
	assert_int_equal(options.fence, CLI_FENCE_READ_ONLY);
	assert_string_equal(options.app_roles[0], "chat_app");
	assert_string_equal(options.app_roles[1], "chat_worker");
	assert_string_equal(options.app_roles[2], "reports");
	assert_null(options.app_roles[3]);
	assert_true(options.yes);
	cli_options_free(&options);
}

static void
test_cutover_read_only_fence_needs_app_roles(void **state)
{
	char *argv[] = {"switchyard", "cutover", "--fence", "read-only", "--yes"};

	assert_usage_error(ARGC(argv), argv, "--fence read-only needs --app-roles ROLE");
}

static void
test_cutover_read_only_fence_excludes_pgbouncer(void **state)
{
	char *argv[] = {"switchyard", "cutover", "--fence", "read-only", "--app-roles", "app",
		"--pgbouncer", "port=6432", "--pgbouncer-db", "app", "--pgbouncer-ini", "/etc/pgbouncer.ini"};

	assert_usage_error(ARGC(argv), argv, "--fence read-only and --pgbouncer exclude each other");
}

static void
test_simple_commands_parse(void **state)
{
	static const struct
	{
		const char *name;
		CliCommand command;
	} commands[] = {
		{"pause", CLI_COMMAND_PAUSE},
		{"resume", CLI_COMMAND_RESUME},
		{"stop", CLI_COMMAND_STOP},
		{"cleanup", CLI_COMMAND_CLEANUP},
	};

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
	{
		char *argv[] = {"switchyard", (char *) commands[i].name, "--state-dir", "x"};
		CliOptions options;

		assert_true(parse(ARGC(argv), argv, &options));
		assert_int_equal(options.command, commands[i].command);
		assert_string_equal(cli_command_name(options.command), commands[i].name);
		assert_string_equal(options.state_dir, "x");
		cli_options_free(&options);
	}
}

static void
test_cleanup_takes_source_and_target(void **state)
{
	char *argv[] = {"switchyard", "cleanup", "--source", "s", "--target", "t"};
	CliOptions options;

	assert_true(parse(ARGC(argv), argv, &options));
	assert_string_equal(options.source, "s");
	assert_string_equal(options.target, "t");
	cli_options_free(&options);
}

static void
test_option_not_valid_for_command(void **state)
{
	char *status_no_copy[] = {"switchyard", "status", "--no-copy"};
	char *run_json[] = {"switchyard", "run", "--source", "s", "--target", "t", "--json"};
	char *stop_source[] = {"switchyard", "stop", "--source", "s"};
	char *run_yes[] = {"switchyard", "run", "--yes"};

	assert_usage_error(ARGC(status_no_copy), status_no_copy,
					   "option \"--no-copy\" is not valid for command \"status\"");
	assert_usage_error(ARGC(run_json), run_json, "option \"--json\" is not valid for command \"run\"");
	assert_usage_error(ARGC(stop_source), stop_source,
					   "option \"--source\" is not valid for command \"stop\"");
	assert_usage_error(ARGC(run_yes), run_yes, "option \"--yes\" is not valid for command \"run\"");
}

static void
test_missing_value(void **state)
{
	char *argv[] = {"switchyard", "run", "--target", "t", "--source"};

	assert_usage_error(ARGC(argv), argv, "option \"--source\" needs a value");
}

static void
test_unknown_option(void **state)
{
	char *argv[] = {"switchyard", "status", "--frobnicate=3"};
	char *short_option[] = {"switchyard", "status", "-x"};

	assert_usage_error(ARGC(argv), argv, "unknown option \"--frobnicate\"");
	assert_usage_error(ARGC(short_option), short_option, "unknown option \"-x\"");
}

static void
test_unknown_or_missing_command(void **state)
{
	char *unknown[] = {"switchyard", "migrate"};
	char *none[] = {"switchyard"};
	char *option_first[] = {"switchyard", "--state-dir", "x", "status"};

	assert_usage_error(ARGC(unknown), unknown, "unknown command \"migrate\"");
	assert_usage_error(ARGC(none), none, "no command given");
	assert_usage_error(ARGC(option_first), option_first, "the command must come first");
}

static void
test_unexpected_argument(void **state)
{
	char *argv[] = {"switchyard", "status", "extra"};

	assert_usage_error(ARGC(argv), argv, "unexpected argument \"extra\"");
}

static void
test_jobs_is_parsed_strictly(void **state)
{
	const char *bad[] = {"4x", "-1", "0", "", " 4", "+4", "257", "99999999999999999999", "4.0"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		char *argv[] = {"switchyard", "run", "--source", "s", "--target", "t", "--jobs",
			(char *) bad[i]};

		assert_usage_error(ARGC(argv), argv, "for \"--jobs\"");
	}
}

static void
test_spool_max_sizes(void **state)
{
	static const struct
	{
		const char *text;
		uint64_t bytes;
	} good[] = {
		{"512MB", UINT64_C(512) << 20},
		{"8GB", UINT64_C(8) << 30},
		{"8G", UINT64_C(8) << 30},
		{"2048kB", UINT64_C(2048) << 10},
		{"1TB", UINT64_C(1) << 40},
		{"16777216", UINT64_C(16777216)},
		{"64 MB", UINT64_C(64) << 20},
	};
	const char *bad[] = {"8XB", "-1GB", "GB", "", "1.5GB", "100", "99999999999TB"};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
	{
		char *argv[] = {"switchyard", "run", "--source", "s", "--target", "t", "--spool-max",
			(char *) good[i].text};
		CliOptions options;

		assert_true(parse(ARGC(argv), argv, &options));
		assert_int_equal(options.spool_max_bytes, good[i].bytes);
		cli_options_free(&options);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		char *argv[] = {"switchyard", "run", "--source", "s", "--target", "t", "--spool-max",
			(char *) bad[i]};

		assert_usage_error(ARGC(argv), argv, "for \"--spool-max\"");
	}
}

static void
test_endpos_parse(void **state)
{
	char *good[] = {"switchyard", "run", "--source", "s", "--target", "t", "--endpos", "16/B374D848"};
	char *bad[] = {"switchyard", "run", "--source", "s", "--target", "t", "--endpos", "16B374D848"};
	char *zero[] = {"switchyard", "run", "--source", "s", "--target", "t", "--endpos", "0/0"};
	CliOptions options;

	assert_true(parse(ARGC(good), good, &options));
	assert_int_equal(options.endpos, UINT64_C(0x16B374D848));
	cli_options_free(&options);
	assert_usage_error(ARGC(bad), bad, "for \"--endpos\"");
	assert_usage_error(ARGC(zero), zero, "for \"--endpos\"");
}

static void
test_http_address(void **state)
{
	char *bad[] = {"switchyard", "run", "--source", "s", "--target", "t", "--http", "localhost"};
	char *port[] = {"switchyard", "run", "--source", "s", "--target", "t", "--http", "h:70000"};
	char *v6[] = {"switchyard", "run", "--source", "s", "--target", "t", "--http", "[::1]:8080"};
	CliOptions options;

	assert_usage_error(ARGC(bad), bad, "for \"--http\"");
	assert_usage_error(ARGC(port), port, "for \"--http\"");
	assert_true(parse(ARGC(v6), v6, &options));
	assert_string_equal(options.http, "[::1]:8080");
	cli_options_free(&options);
}

/* Off loopback the status would be open to anyone: a token is required, and never echoed. */
static void
test_http_token(void **state)
{
	char *open_no_token[] = {"switchyard", "run", "--source", "s", "--target", "t", "--http", "0.0.0.0:9187"};
	char *open_token[] = {"switchyard", "run", "--source", "s", "--target", "t", "--http", "0.0.0.0:9187",
		"--http-token", "a-long-enough-token-1234"};
	char *short_token[] = {"switchyard", "run", "--source", "s", "--target", "t", "--http-token", "tiny-secret"};
	char *loopback[] = {"switchyard", "run", "--source", "s", "--target", "t", "--http", ":9187"};
	char *from_file[] = {"switchyard", "run", "--config", config_path};
	char *not_here[] = {"switchyard", "status", "--http-token", "a-long-enough-token-1234"};
	CliOptions options;

	assert_usage_error(ARGC(open_no_token), open_no_token, "it needs --http-token");
	assert_true(parse(ARGC(open_token), open_token, &options));
	assert_string_equal(options.http_token, "a-long-enough-token-1234");
	cli_options_free(&options);
	assert_true(parse(ARGC(loopback), loopback, &options));
	assert_null(options.http_token);
	cli_options_free(&options);
	assert_usage_error(ARGC(short_token), short_token, "at least 16 characters");
	assert_null(strstr(last_error, "tiny-secret"));
	write_config("source = s\ntarget = t\nhttp = [::]:9187\nhttp-token = token-from-the-config-file\n");
	assert_true(parse(ARGC(from_file), from_file, &options));
	assert_string_equal(options.http_token, "token-from-the-config-file");
	cli_options_free(&options);
	assert_usage_error(ARGC(not_here), not_here, "not valid for command");
}

static void
test_log_level(void **state)
{
	char *good[] = {"switchyard", "status", "--log-level", "warning"};
	char *bad[] = {"switchyard", "status", "--log-level", "loud"};
	CliOptions options;

	assert_true(parse(ARGC(good), good, &options));
	assert_int_equal(options.log_level, LOG_LEVEL_WARNING);
	cli_options_free(&options);
	assert_usage_error(ARGC(bad), bad, "for \"--log-level\"");
}

static void
test_tables_repeatable_and_comma_separated(void **state)
{
	char *argv[] = {"switchyard", "run", "--source", "s", "--target", "t", "--tables",
		"public.a, public.b", "--tables", "chat.*", "--app-roles", "app,reporting", "--app-roles",
		"batch"};
	char *empty[] = {"switchyard", "run", "--source", "s", "--target", "t", "--tables", "a,,b"};
	CliOptions options;

	assert_true(parse(ARGC(argv), argv, &options));
	assert_string_equal(options.tables[0], "public.a");
	assert_string_equal(options.tables[1], "public.b");
	assert_string_equal(options.tables[2], "chat.*");
	assert_null(options.tables[3]);
	assert_string_equal(options.app_roles[0], "app");
	assert_string_equal(options.app_roles[1], "reporting");
	assert_string_equal(options.app_roles[2], "batch");
	assert_null(options.app_roles[3]);
	cli_options_free(&options);
	assert_usage_error(ARGC(empty), empty, "empty item");
}

static void
test_config_file_values(void **state)
{
	char *argv[] = {"switchyard", "run", "--config", config_path};
	CliOptions options;

	write_config("# a migration\n"
				 "\n"
				 "source = host=db1 dbname=app password=a#b\n"
				 "  target=host=db2 dbname=app  \n"
				 "tables = public.a, public.b\n"
				 "tables = chat.messages\n"
				 "no-copy = true\n"
				 "spool-max = 1GB\n"
				 "jobs = 2\n"
				 "endpos = 0/1000\n"
				 "state_dir = /var/lib/sy\n"
				 "json = true\n"    /* for status: ignored by run */
				 "log-level = error\n");
	assert_true(parse(ARGC(argv), argv, &options));
	assert_string_equal(options.source, "host=db1 dbname=app password=a#b");
	assert_string_equal(options.target, "host=db2 dbname=app");
	assert_string_equal(options.tables[0], "public.a");
	assert_string_equal(options.tables[1], "public.b");
	assert_string_equal(options.tables[2], "chat.messages");
	assert_null(options.tables[3]);
	assert_true(options.no_copy);
	assert_int_equal(options.spool_max_bytes, UINT64_C(1) << 30);
	assert_int_equal(options.jobs, 2);
	assert_int_equal(options.endpos, 0x1000);
	assert_string_equal(options.state_dir, "/var/lib/sy");
	assert_false(options.json);
	assert_int_equal(options.log_level, LOG_LEVEL_ERROR);
	assert_string_equal(options.config_file, config_path);
	cli_options_free(&options);
}

static void
test_flags_override_config_file(void **state)
{
	char *argv[] = {"switchyard", "run", "--source", "host=flag", "--config", config_path,
		"--tables", "public.only", "--jobs", "5"};
	CliOptions options;

	write_config("source = host=file\n"
				 "target = host=file-target\n"
				 "tables = public.a, public.b\n"
				 "jobs = 2\n"
				 "no-copy = yes\n");
	assert_true(parse(ARGC(argv), argv, &options));
	assert_string_equal(options.source, "host=flag");
	assert_string_equal(options.target, "host=file-target");
	assert_string_equal(options.tables[0], "public.only");
	assert_null(options.tables[1]);
	assert_int_equal(options.jobs, 5);
	assert_true(options.no_copy);
	cli_options_free(&options);
}

static void
test_config_unknown_key(void **state)
{
	char *argv[] = {"switchyard", "status", "--config", config_path};
	char expected[128];

	write_config("# fine\nstate-dir = x\nsauce = host=db1\n");
	snprintf(expected, sizeof(expected), "unknown setting \"sauce\" in \"%s\" line 3", config_path);
	assert_usage_error(ARGC(argv), argv, expected);
}

static void
test_config_errors(void **state)
{
	char *argv[] = {"switchyard", "run", "--source", "s", "--target", "t", "--config", config_path};
	char *missing[] = {"switchyard", "status", "--config", "/nonexistent/switchyard.conf"};
	char expected[128];

	write_config("no-copy = maybe\n");
	snprintf(expected, sizeof(expected), "invalid value \"maybe\" for \"no-copy\" in \"%s\" line 1",
			 config_path);
	assert_usage_error(ARGC(argv), argv, expected);
	unlink(config_path);

	write_config("jobs 4\n");
	assert_usage_error(ARGC(argv), argv, "expected \"key = value\"");
	unlink(config_path);

	write_config("config = other.conf\n");
	assert_usage_error(ARGC(argv), argv, "unknown setting \"config\"");

	assert_usage_error(ARGC(missing), missing, "could not open configuration file");
}

static void
test_environment_fills_source_and_target(void **state)
{
	char *argv[] = {"switchyard", "run", "--target", "host=flag"};
	char *with_file[] = {"switchyard", "run", "--config", config_path};
	CliOptions options;

	setenv("SWITCHYARD_SOURCE", "host=env-source", 1);
	setenv("SWITCHYARD_TARGET", "host=env-target", 1);
	assert_true(parse(ARGC(argv), argv, &options));
	assert_string_equal(options.source, "host=env-source");
	assert_string_equal(options.target, "host=flag");
	cli_options_free(&options);

	/* the file comes before the environment */
	write_config("source = host=file\n");
	assert_true(parse(ARGC(with_file), with_file, &options));
	assert_string_equal(options.source, "host=file");
	assert_string_equal(options.target, "host=env-target");
	cli_options_free(&options);
}

static void
test_help_forms(void **state)
{
	char *general[] = {"switchyard", "--help"};
	char *version[] = {"switchyard", "--version"};
	char *help_command[] = {"switchyard", "help", "status"};
	char *command_help[] = {"switchyard", "run", "--help"};
	char *help_unknown[] = {"switchyard", "help", "frob"};
	CliOptions options;

	assert_true(parse(ARGC(general), general, &options));
	assert_true(options.help);
	assert_int_equal(options.command, CLI_COMMAND_NONE);
	cli_options_free(&options);

	assert_true(parse(ARGC(version), version, &options));
	assert_true(options.version);
	cli_options_free(&options);

	assert_true(parse(ARGC(help_command), help_command, &options));
	assert_true(options.help);
	assert_int_equal(options.command, CLI_COMMAND_STATUS);
	cli_options_free(&options);

	/* --help needs none of the command's required options */
	assert_true(parse(ARGC(command_help), command_help, &options));
	assert_true(options.help);
	assert_int_equal(options.command, CLI_COMMAND_RUN);
	cli_options_free(&options);

	assert_usage_error(ARGC(help_unknown), help_unknown, "unknown command \"frob\"");
}

static void
test_help_lists_commands_and_exit_statuses(void **state)
{
	FILE *capture = tmpfile();
	int saved = dup(STDOUT_FILENO);
	char text[8192];
	size_t got;

	fflush(stdout);
	dup2(fileno(capture), STDOUT_FILENO);
	cli_print_help(CLI_COMMAND_NONE);
	cli_print_help(CLI_COMMAND_RUN);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	rewind(capture);
	got = fread(text, 1, sizeof(text) - 1, capture);
	text[got] = '\0';
	fclose(capture);

	for (CliCommand c = CLI_COMMAND_RUN; c <= CLI_COMMAND_CLEANUP; c++)
		assert_non_null(strstr(text, cli_command_name(c)));
	assert_non_null(strstr(text, "Exit status:"));
	assert_non_null(strstr(text, "  7  no agent is running"));
	assert_non_null(strstr(text, "--spool-max SIZE"));
	assert_non_null(strstr(text, "--state-dir DIR"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_run_parses_every_option, teardown),
		cmocka_unit_test_teardown(test_run_defaults, teardown),
		cmocka_unit_test_teardown(test_guard_mode, teardown),
		cmocka_unit_test_teardown(test_run_needs_source_and_target, teardown),
		cmocka_unit_test_teardown(test_malformed_conninfo_is_a_usage_error, teardown),
		cmocka_unit_test_teardown(test_conninfo_forms_libpq_accepts, teardown),
		cmocka_unit_test_teardown(test_status_parses_json, teardown),
		cmocka_unit_test_teardown(test_verify_parses_its_options, teardown),
		cmocka_unit_test_teardown(test_cutover_parses_its_options, teardown),
		cmocka_unit_test_teardown(test_cutover_pgbouncer_options_go_together, teardown),
		cmocka_unit_test_teardown(test_cutover_fence_values, teardown),
		cmocka_unit_test_teardown(test_cutover_read_only_fence_takes_app_roles, teardown),
		cmocka_unit_test_teardown(test_cutover_read_only_fence_needs_app_roles, teardown),
		cmocka_unit_test_teardown(test_cutover_read_only_fence_excludes_pgbouncer, teardown),
		cmocka_unit_test_teardown(test_simple_commands_parse, teardown),
		cmocka_unit_test_teardown(test_cleanup_takes_source_and_target, teardown),
		cmocka_unit_test_teardown(test_option_not_valid_for_command, teardown),
		cmocka_unit_test_teardown(test_missing_value, teardown),
		cmocka_unit_test_teardown(test_unknown_option, teardown),
		cmocka_unit_test_teardown(test_unknown_or_missing_command, teardown),
		cmocka_unit_test_teardown(test_unexpected_argument, teardown),
		cmocka_unit_test_teardown(test_jobs_is_parsed_strictly, teardown),
		cmocka_unit_test_teardown(test_spool_max_sizes, teardown),
		cmocka_unit_test_teardown(test_endpos_parse, teardown),
		cmocka_unit_test_teardown(test_http_address, teardown),
		cmocka_unit_test_teardown(test_http_token, teardown),
		cmocka_unit_test_teardown(test_log_level, teardown),
		cmocka_unit_test_teardown(test_tables_repeatable_and_comma_separated, teardown),
		cmocka_unit_test_teardown(test_config_file_values, teardown),
		cmocka_unit_test_teardown(test_flags_override_config_file, teardown),
		cmocka_unit_test_teardown(test_config_unknown_key, teardown),
		cmocka_unit_test_teardown(test_config_errors, teardown),
		cmocka_unit_test_teardown(test_environment_fills_source_and_target, teardown),
		cmocka_unit_test_teardown(test_help_forms, teardown),
		cmocka_unit_test_teardown(test_help_lists_commands_and_exit_statuses, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
