/*
 * The command line: which command, which options, read from argv and the --config file into
 * one CliOptions that main.c hands to the agent or the control client. Everything a user can
 * get wrong here is a usage error (exit 2) with one line saying what.
 */
#include "switchyard/cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "switchyard/conninfo.h"
#include "switchyard/exitcode.h"
#include "switchyard/http.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif
#include "build_commit.h"   /* SWITCHYARD_COMMIT, written by the build */

#define CLI_DEFAULT_STATE_DIR "./switchyard-state"
#define CLI_DEFAULT_SPOOL_MAX (UINT64_C(8) << 30)
/* Below this the spool could not hold even one ordinary transaction. */
#define CLI_MIN_SPOOL_MAX (UINT64_C(1) << 20)
#define CLI_MAX_JOBS 256
#define CLI_ERROR_SIZE 512

/* Bit per command, so each option can say where it is valid. */
#define CMD_BIT(c) (1u << (c))
#define FOR_RUN CMD_BIT(CLI_COMMAND_RUN)
#define FOR_STATUS CMD_BIT(CLI_COMMAND_STATUS)
#define FOR_VERIFY CMD_BIT(CLI_COMMAND_VERIFY)
#define FOR_CUTOVER CMD_BIT(CLI_COMMAND_CUTOVER)
#define FOR_CLEANUP CMD_BIT(CLI_COMMAND_CLEANUP)
#define FOR_ALL 0xffffffffu

typedef enum CliOptionId
{
	OPT_STATE_DIR = 1,
	OPT_CONFIG,
	OPT_LOG_LEVEL,
	OPT_HELP,
	OPT_VERSION,
	OPT_SOURCE,
	OPT_TARGET,
	OPT_TABLES,
	OPT_NO_COPY,
	OPT_ENDPOS,
	OPT_HTTP,
	OPT_HTTP_TOKEN,
	OPT_APP_ROLES,
	OPT_GUARD,
	OPT_JOBS,
	OPT_SPOOL_MAX,
	OPT_TRUNCATE_TARGET,
	OPT_VERIFY_EVERY,
	OPT_JSON,
	OPT_TABLE,
	OPT_REPAIR,
	OPT_DRY_RUN,
	OPT_YES,
	OPT_PGBOUNCER,
	OPT_PGBOUNCER_DB,
	OPT_PGBOUNCER_INI,
	OPT_FENCE,
	OPT_MAX_PAUSE,
	OPT_MAX_LAG,
	OPT_COUNT
} CliOptionId;

typedef struct CliOptionSpec
{
	const char *name;
	CliOptionId id;
	bool takes_value;
	unsigned int commands;     /* CMD_BIT mask of the commands that accept it */
	bool in_config;            /* may appear in a --config file */
} CliOptionSpec;

static const CliOptionSpec option_specs[] = {
	{"state-dir", OPT_STATE_DIR, true, FOR_ALL, true},
	{"config", OPT_CONFIG, true, FOR_ALL, false},
	{"log-level", OPT_LOG_LEVEL, true, FOR_ALL, true},
	{"help", OPT_HELP, false, FOR_ALL, false},
	{"version", OPT_VERSION, false, FOR_ALL, false},
	{"source", OPT_SOURCE, true, FOR_RUN | FOR_VERIFY | FOR_CLEANUP, true},
	{"target", OPT_TARGET, true, FOR_RUN | FOR_VERIFY | FOR_CLEANUP, true},
	{"tables", OPT_TABLES, true, FOR_RUN, true},
	{"no-copy", OPT_NO_COPY, false, FOR_RUN, true},
	{"endpos", OPT_ENDPOS, true, FOR_RUN, true},
	{"http", OPT_HTTP, true, FOR_RUN, true},
	{"http-token", OPT_HTTP_TOKEN, true, FOR_RUN, true},
	{"app-roles", OPT_APP_ROLES, true, FOR_RUN | FOR_CUTOVER, true},
	{"guard", OPT_GUARD, true, FOR_RUN, true},
	{"jobs", OPT_JOBS, true, FOR_RUN | FOR_VERIFY, true},
	{"spool-max", OPT_SPOOL_MAX, true, FOR_RUN, true},
	{"truncate-target", OPT_TRUNCATE_TARGET, false, FOR_RUN, true},
	{"verify-every", OPT_VERIFY_EVERY, true, FOR_RUN, true},
	{"json", OPT_JSON, false, FOR_STATUS | FOR_VERIFY, true},
	{"table", OPT_TABLE, true, FOR_VERIFY, true},
	{"repair", OPT_REPAIR, false, FOR_VERIFY, true},
	{"dry-run", OPT_DRY_RUN, false, FOR_CUTOVER, true},
	{"yes", OPT_YES, false, FOR_CUTOVER, true},
	{"pgbouncer", OPT_PGBOUNCER, true, FOR_CUTOVER, true},
	{"pgbouncer-db", OPT_PGBOUNCER_DB, true, FOR_CUTOVER, true},
	{"pgbouncer-ini", OPT_PGBOUNCER_INI, true, FOR_CUTOVER, true},
	{"fence", OPT_FENCE, true, FOR_CUTOVER, true},
	{"max-pause", OPT_MAX_PAUSE, true, FOR_CUTOVER, true},
	{"max-lag", OPT_MAX_LAG, true, FOR_CUTOVER, true},
};
#define N_OPTION_SPECS (sizeof(option_specs) / sizeof(option_specs[0]))

typedef struct CliCommandSpec
{
	const char *name;
	CliCommand command;
	const char *summary;
} CliCommandSpec;

static const CliCommandSpec command_specs[] = {
	{"run", CLI_COMMAND_RUN, "replicate the source into the target and keep streaming changes"},
	{"status", CLI_COMMAND_STATUS, "show progress, from the running agent or the state directory"},
	{"verify", CLI_COMMAND_VERIFY, "compare source and target row by row at a common point"},
	{"cutover", CLI_COMMAND_CUTOVER, "switch the application to the target, with a checklist"},
	{"pause", CLI_COMMAND_PAUSE, "pause applying changes to the target"},
	{"resume", CLI_COMMAND_RESUME, "resume applying changes to the target"},
	{"stop", CLI_COMMAND_STOP, "stop the running agent and wait until it has exited"},
	{"cleanup", CLI_COMMAND_CLEANUP, "drop the slot, publication, origin and state of this migration"},
};
#define N_COMMAND_SPECS (sizeof(command_specs) / sizeof(command_specs[0]))

/*
 * What parsing is doing right now: which options the command line has set (the file must
 * not override them) and where a value came from, for error messages.
 */
typedef struct CliParse
{
	CliOptions *options;
	bool set_by_flag[OPT_COUNT];
	const char *config_path;   /* non-NULL while reading the config file */
	int config_line;
} CliParse;

static void
usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
usage_error(const char *fmt, ...)
{
	va_list args;

	fputs("switchyard: ", stderr);
	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fputs("\nTry \"switchyard --help\" for more information.\n", stderr);
}

/* " in "FILE" line N" while reading the config file, "" for the command line. */
static const char *
where(const CliParse *parse, char *buf, size_t size)
{
	if (parse->config_path == NULL)
		return "";
	snprintf(buf, size, " in \"%s\" line %d", parse->config_path, parse->config_line);
	return buf;
}

/* "--jobs" on the command line, "jobs" in a file. */
static const char *
option_label(const CliParse *parse, const CliOptionSpec *spec, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s", parse->config_path == NULL ? "--" : "", spec->name);
	return buf;
}

static void
value_error(const CliParse *parse, const CliOptionSpec *spec, const char *value, const char *why)
{
	char label[64];
	char place[CLI_ERROR_SIZE];

	usage_error("invalid value \"%s\" for \"%s\"%s: %s", value,
				option_label(parse, spec, label, sizeof(label)), where(parse, place, sizeof(place)),
				why);
}

/*
 * A connection string libpq cannot parse is the user's typo, not the server's refusal: a
 * usage error naming the option. Unlike value_error it does not echo the value, which may
 * hold a password.
 */
static bool
check_conninfo(const CliParse *parse, const CliOptionSpec *spec, const char *value)
{
	char label[64];
	char place[CLI_ERROR_SIZE];
	char why[CLI_ERROR_SIZE];

	if (conninfo_check(value, why, sizeof(why)))
		return true;
	usage_error("invalid connection string for \"%s\"%s: %s",
				option_label(parse, spec, label, sizeof(label)), where(parse, place, sizeof(place)), why);
	return false;
}

static const CliOptionSpec *
find_option(const char *name)
{
	for (size_t i = 0; i < N_OPTION_SPECS; i++)
	{
		if (strcmp(option_specs[i].name, name) == 0)
			return &option_specs[i];
	}
	return NULL;
}

static const CliOptionSpec *
find_option_by_id(int id)
{
	for (size_t i = 0; i < N_OPTION_SPECS; i++)
	{
		if ((int) option_specs[i].id == id)
			return &option_specs[i];
	}
	return NULL;
}

static bool
find_command(const char *name, CliCommand *out)
{
	for (size_t i = 0; i < N_COMMAND_SPECS; i++)
	{
		if (strcmp(command_specs[i].name, name) == 0)
		{
			*out = command_specs[i].command;
			return true;
		}
	}
	return false;
}

const char *
cli_command_name(CliCommand command)
{
	for (size_t i = 0; i < N_COMMAND_SPECS; i++)
	{
		if (command_specs[i].command == command)
			return command_specs[i].name;
	}
	return "none";
}

static bool
replace_string(char **field, const char *value)
{
	char *copy = strdup(value);

	if (copy == NULL)
	{
		usage_error("out of memory");
		return false;
	}
	free(*field);
	*field = copy;
	return true;
}

static void
free_list(char **list)
{
	if (list == NULL)
		return;
	for (char **item = list; *item != NULL; item++)
		free(*item);
	free(list);
}

static char *
trim(char *text)
{
	char *end;

	while (*text == ' ' || *text == '\t')
		text++;
	end = text + strlen(text);
	while (end > text && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		end--;
	*end = '\0';
	return text;
}

/* Appends the comma-separated items of value to the NULL-terminated *list. */
static bool
append_list(const CliParse *parse, const CliOptionSpec *spec, char ***list, const char *value)
{
	char *copy = NULL;
	char *cursor;
	char *item;
	size_t count = 0;
	bool ok = false;

	copy = strdup(value);
	if (copy == NULL)
	{
		usage_error("out of memory");
		goto cleanup;
	}
	if (*list != NULL)
		while ((*list)[count] != NULL)
			count++;

	cursor = copy;
	do
	{
		char **grown;
		char *comma = strchr(cursor, ',');

		if (comma != NULL)
			*comma = '\0';
		item = trim(cursor);
		cursor = comma != NULL ? comma + 1 : NULL;
		if (*item == '\0')
		{
			value_error(parse, spec, value, "empty item in the list");
			goto cleanup;
		}
		grown = realloc(*list, (count + 2) * sizeof(char *));
		if (grown == NULL)
		{
			usage_error("out of memory");
			goto cleanup;
		}
		*list = grown;
		(*list)[count] = strdup(item);
		(*list)[count + 1] = NULL;
		if ((*list)[count] == NULL)
		{
			usage_error("out of memory");
			goto cleanup;
		}
		count++;
	} while (cursor != NULL);
	ok = true;

cleanup:
	free(copy);
	return ok;
}

/* Whole decimal number, no sign, no blanks, no trailing text. */
static bool
parse_int(const char *text, long min, long max, long *out)
{
	char *end = NULL;
	long value;

	if (text[0] < '0' || text[0] > '9')
		return false;
	errno = 0;
	value = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || value < min || value > max)
		return false;
	*out = value;
	return true;
}

/*
 * "8GB", "512MB", "1048576": units are powers of 1024 as in PostgreSQL's settings, so
 * "8GB" is the documented default of 8 GiB.
 */
static bool
parse_size(const char *text, uint64_t *out)
{
	static const struct
	{
		const char *unit;
		int shift;
	} units[] = {
		{"", 0}, {"B", 0}, {"kB", 10}, {"KB", 10}, {"K", 10}, {"KiB", 10},
		{"MB", 20}, {"M", 20}, {"MiB", 20}, {"GB", 30}, {"G", 30}, {"GiB", 30},
		{"TB", 40}, {"T", 40}, {"TiB", 40},
	};
	char *end = NULL;
	unsigned long long number;

	if (text[0] < '0' || text[0] > '9')
		return false;
	errno = 0;
	number = strtoull(text, &end, 10);
	if (errno != 0 || end == text)
		return false;
	while (*end == ' ')
		end++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
	{
		if (strcmp(end, units[i].unit) != 0)
			continue;
		if (units[i].shift > 0 && number > (UINT64_MAX >> units[i].shift))
			return false;
		*out = (uint64_t) number << units[i].shift;
		return true;
	}
	return false;
}

/* "90", "90s", "10m", "1h": at least 10 seconds, at most a week. */
static bool
parse_duration(const char *text, int *seconds)
{
	char *end = NULL;
	long value;
	long unit = 1;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno != 0 || end == text || value <= 0)
		return false;
	if (strcmp(end, "h") == 0)
		unit = 3600;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		unit = 60;
	else if (strcmp(end, "s") != 0 && *end != '\0')
		return false;
	if (value > 7L * 86400 / unit || value * unit < 10)
		return false;
	*seconds = (int) (value * unit);
	return true;
}

static bool
parse_bool(const char *text, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < 4; i++)
	{
		if (strcasecmp(text, yes[i]) == 0)
		{
			*out = true;
			return true;
		}
		if (strcasecmp(text, no[i]) == 0)
		{
			*out = false;
			return true;
		}
	}
	return false;
}

/* ADDR:PORT with a port in 1..65535; ADDR may be empty (127.0.0.1) or [IPv6]. */
static bool
valid_http_address(const char *text)
{
	const char *colon = strrchr(text, ':');
	long port;

	if (colon == NULL || !parse_int(colon + 1, 1, 65535, &port))
		return false;
	if (text[0] == '[' && (colon == text || colon[-1] != ']'))
		return false;
	return true;
}

/*
 * Stores one option's value. value is NULL for a flag given on the command line; in the
 * config file every key has a value, which for flags is a boolean.
 */
static bool
apply_option(CliParse *parse, const CliOptionSpec *spec, const char *value)
{
	CliOptions *options = parse->options;
	bool flag = true;
	long number;

	if (!spec->takes_value && value != NULL && !parse_bool(value, &flag))
	{
		value_error(parse, spec, value, "expected true or false");
		return false;
	}

	switch (spec->id)
	{
		case OPT_STATE_DIR:
			if (value[0] == '\0')
			{
				value_error(parse, spec, value, "the directory name is empty");
				return false;
			}
			return replace_string(&options->state_dir, value);
		case OPT_CONFIG:
			return replace_string(&options->config_file, value);
		case OPT_LOG_LEVEL:
			if (!log_parse_level(value, &options->log_level))
			{
				value_error(parse, spec, value, "expected debug, info, warning or error");
				return false;
			}
			return true;
		case OPT_HELP:
			options->help = flag;
			return true;
		case OPT_VERSION:
			options->version = flag;
			return true;
		case OPT_SOURCE:
			return check_conninfo(parse, spec, value) && replace_string(&options->source, value);
		case OPT_TARGET:
			return check_conninfo(parse, spec, value) && replace_string(&options->target, value);
		case OPT_TABLES:
			return append_list(parse, spec, &options->tables, value);
		case OPT_TABLE:
			return append_list(parse, spec, &options->tables, value);
		case OPT_APP_ROLES:
			return append_list(parse, spec, &options->app_roles, value);
		case OPT_GUARD:
			if (strcmp(value, "observe") != 0 && strcmp(value, "enforce") != 0)
			{
				value_error(parse, spec, value, "expected observe or enforce");
				return false;
			}
			options->guard_enforce = strcmp(value, "enforce") == 0;
			return true;
		case OPT_NO_COPY:
			options->no_copy = flag;
			return true;
		case OPT_VERIFY_EVERY:
			if (!parse_duration(value, &options->verify_every_seconds))
			{
				value_error(parse, spec, value, "expected a duration such as 90s, 10m or 1h");
				return false;
			}
			return true;
		case OPT_TRUNCATE_TARGET:
			options->truncate_target = flag;
			return true;
		case OPT_ENDPOS:
			if (!lsn_parse(value, &options->endpos))
			{
				value_error(parse, spec, value, "expected a WAL position like 0/16B3748");
				return false;
			}
			if (options->endpos == LSN_INVALID)
			{
				value_error(parse, spec, value, "the end position must be after 0/0");
				return false;
			}
			return true;
		case OPT_HTTP:
			if (!valid_http_address(value))
			{
				value_error(parse, spec, value, "expected ADDR:PORT, e.g. 127.0.0.1:9187");
				return false;
			}
			return replace_string(&options->http, value);
		case OPT_HTTP_TOKEN:
			if (strlen(value) < 16)
			{
				char label[64];
				char place[CLI_ERROR_SIZE];

				/* the value is a secret: not repeated in the message */
				usage_error("invalid value for \"%s\"%s: a token needs at least 16 characters",
							option_label(parse, spec, label, sizeof(label)), where(parse, place, sizeof(place)));
				return false;
			}
			return replace_string(&options->http_token, value);
		case OPT_JOBS:
			if (!parse_int(value, 1, CLI_MAX_JOBS, &number))
			{
				char why[64];

				snprintf(why, sizeof(why), "expected a whole number from 1 to %d", CLI_MAX_JOBS);
				value_error(parse, spec, value, why);
				return false;
			}
			options->jobs = (int) number;
			return true;
		case OPT_SPOOL_MAX:
			if (!parse_size(value, &options->spool_max_bytes))
			{
				value_error(parse, spec, value, "expected a size like 512MB, 8GB or a number of bytes");
				return false;
			}
			if (options->spool_max_bytes < CLI_MIN_SPOOL_MAX)
			{
				value_error(parse, spec, value, "the spool needs at least 1MB");
				return false;
			}
			return true;
		case OPT_JSON:
			options->json = flag;
			return true;
		case OPT_REPAIR:
			options->repair = flag;
			return true;
		case OPT_DRY_RUN:
			options->dry_run = flag;
			return true;
		case OPT_YES:
			options->yes = flag;
			return true;
		case OPT_PGBOUNCER:
			return check_conninfo(parse, spec, value) && replace_string(&options->pgbouncer, value);
		case OPT_PGBOUNCER_DB:
			return replace_string(&options->pgbouncer_db, value);
		case OPT_PGBOUNCER_INI:
			return replace_string(&options->pgbouncer_ini, value);
		case OPT_FENCE:
			if (strcmp(value, "pgbouncer") == 0)
				options->fence = CLI_FENCE_PGBOUNCER;
			else if (strcmp(value, "manual") == 0)
				options->fence = CLI_FENCE_MANUAL;
			else if (strcmp(value, "read-only") == 0)
				options->fence = CLI_FENCE_READ_ONLY;
			else
			{
				value_error(parse, spec, value, "expected pgbouncer, read-only or manual");
				return false;
			}
			return true;
		case OPT_MAX_PAUSE:
			if (!parse_int(value, 1, 600000, &number))
			{
				value_error(parse, spec, value, "expected milliseconds from 1 to 600000");
				return false;
			}
			options->max_pause_ms = (int) number;
			return true;
		case OPT_MAX_LAG:
			if (!parse_size(value, &options->max_lag_bytes))
			{
				value_error(parse, spec, value, "expected a size such as 16MB");
				return false;
			}
			return true;
		case OPT_COUNT:
			break;
	}
	usage_error("internal error: unhandled option \"%s\"", spec->name);
	return false;
}

/*
 * Reads "key = value" lines. Only whole lines starting with '#' are comments: a '#' later in
 * the line belongs to the value, because conninfo passwords may contain one. Keys given on
 * the command line are skipped (flags override the file); keys meant for other commands are
 * ignored, so one file can serve every command of a migration.
 */
static bool
read_config_file(CliParse *parse, const char *path)
{
	FILE *file = NULL;
	char *line = NULL;
	size_t line_size = 0;
	bool ok = false;

	file = fopen(path, "r");
	if (file == NULL)
	{
		usage_error("could not open configuration file \"%s\": %s", path, strerror(errno));
		goto cleanup;
	}
	parse->config_path = path;
	parse->config_line = 0;

	while (getline(&line, &line_size, file) != -1)
	{
		const CliOptionSpec *spec;
		char *text;
		char *key;
		char *value;
		char *equals;

		parse->config_line++;
		text = trim(line);
		if (*text == '\0' || *text == '#')
			continue;
		equals = strchr(text, '=');
		if (equals == NULL)
		{
			usage_error("syntax error in \"%s\" line %d: expected \"key = value\"", path,
						parse->config_line);
			goto cleanup;
		}
		*equals = '\0';
		key = trim(text);
		value = trim(equals + 1);
		/* state_dir reads as well as state-dir */
		for (char *c = key; *c != '\0'; c++)
			if (*c == '_')
				*c = '-';

		spec = find_option(key);
		if (spec == NULL || !spec->in_config)
		{
			usage_error("unknown setting \"%s\" in \"%s\" line %d", key, path, parse->config_line);
			goto cleanup;
		}
		if (parse->set_by_flag[spec->id] || (spec->commands & CMD_BIT(parse->options->command)) == 0)
			continue;
		if (*value == '\0')
		{
			usage_error("setting \"%s\" in \"%s\" line %d has no value", key, path, parse->config_line);
			goto cleanup;
		}
		if (!apply_option(parse, spec, value))
			goto cleanup;
	}
	if (ferror(file))
	{
		usage_error("could not read configuration file \"%s\": %s", path, strerror(errno));
		goto cleanup;
	}
	ok = true;

cleanup:
	parse->config_path = NULL;
	free(line);
	if (file != NULL)
		fclose(file);
	return ok;
}

/* *field from the environment variable name when flags and file left it unset; checked like --source. */
static bool
apply_environment_conninfo(const char *name, char **field)
{
	const char *value = getenv(name);
	char why[CLI_ERROR_SIZE];

	if (*field != NULL || value == NULL || value[0] == '\0')
		return true;
	if (!conninfo_check(value, why, sizeof(why)))
	{
		usage_error("invalid connection string in %s: %s", name, why);
		return false;
	}
	return replace_string(field, value);
}

static bool
apply_environment(CliOptions *options)
{
	/* only where --source itself is valid: status must not pick up a conninfo it ignores */
	if ((find_option_by_id(OPT_SOURCE)->commands & CMD_BIT(options->command)) == 0)
		return true;
	return apply_environment_conninfo("SWITCHYARD_SOURCE", &options->source) &&
		apply_environment_conninfo("SWITCHYARD_TARGET", &options->target);
}

/* What each command needs once flags, file and environment are all in. */
static bool
check_required(const CliOptions *options)
{
	const char *name = cli_command_name(options->command);
	int pgbouncer_given;

	if (options->command == CLI_COMMAND_RUN)
	{
		if (options->source == NULL)
		{
			usage_error("command \"%s\" needs --source (or SWITCHYARD_SOURCE)", name);
			return false;
		}
		if (options->target == NULL)
		{
			usage_error("command \"%s\" needs --target (or SWITCHYARD_TARGET)", name);
			return false;
		}
		/* status and parity results are not for anyone who can reach the port */
		if (options->http != NULL && options->http_token == NULL && !http_address_is_loopback(options->http))
		{
			usage_error("--http \"%s\" is not a loopback address: it needs --http-token", options->http);
			return false;
		}
	}
	if (options->command == CLI_COMMAND_CUTOVER)
	{
		pgbouncer_given = (options->pgbouncer != NULL) + (options->pgbouncer_db != NULL) +
			(options->pgbouncer_ini != NULL);
		if (pgbouncer_given != 0 && pgbouncer_given != 3)
		{
			usage_error("--pgbouncer, --pgbouncer-db and --pgbouncer-ini must be given together");
			return false;
		}
		if (pgbouncer_given == 0 && options->fence == CLI_FENCE_PGBOUNCER && !options->dry_run)
		{
			usage_error("cutover needs a way to stop the writes: --pgbouncer, --pgbouncer-db and "
						"--pgbouncer-ini, or --fence read-only, or --fence manual");
			return false;
		}
		if (pgbouncer_given != 0 && options->fence != CLI_FENCE_PGBOUNCER)
		{
			usage_error("--fence %s and --pgbouncer exclude each other",
						options->fence == CLI_FENCE_MANUAL ? "manual" : "read-only");
			return false;
		}
		/* the roles whose sessions the fence makes read-only: nothing to guess */
		if (options->fence == CLI_FENCE_READ_ONLY && (options->app_roles == NULL || options->app_roles[0] == NULL))
		{
			usage_error("--fence read-only needs --app-roles ROLE: the application roles to make read-only "
						"on the source");
			return false;
		}
	}
	return true;
}

static void
set_defaults(CliOptions *options)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);

	options->log_level = LOG_LEVEL_INFO;
	options->jobs = cores >= 1 ? (cores > CLI_MAX_JOBS ? CLI_MAX_JOBS : (int) cores) : 1;
	options->spool_max_bytes = CLI_DEFAULT_SPOOL_MAX;
}

/* `switchyard help [COMMAND]` */
static bool
parse_help_command(int argc, char **argv, CliOptions *options)
{
	options->help = true;
	if (argc == 2)
		return true;
	if (argc > 3)
	{
		usage_error("too many arguments for \"help\"");
		return false;
	}
	if (!find_command(argv[2], &options->command))
	{
		usage_error("unknown command \"%s\"", argv[2]);
		return false;
	}
	return true;
}

/* The text of the option getopt stopped at, without any "=value". */
static void
offending_option(char *arg, char *buf, size_t size)
{
	size_t length = strcspn(arg, "=");

	if (length >= size)
		length = size - 1;
	memcpy(buf, arg, length);
	buf[length] = '\0';
}

static bool
parse_flags(CliParse *parse, int argc, char **argv)
{
	struct option long_options[N_OPTION_SPECS + 1];
	CliOptions *options = parse->options;
	const char *command_name = cli_command_name(options->command);
	int c;

	for (size_t i = 0; i < N_OPTION_SPECS; i++)
	{
		long_options[i].name = option_specs[i].name;
		long_options[i].has_arg = option_specs[i].takes_value ? required_argument : no_argument;
		long_options[i].flag = NULL;
		long_options[i].val = option_specs[i].id;
	}
	memset(&long_options[N_OPTION_SPECS], 0, sizeof(struct option));

	/* argv[1] is the command; getopt sees it as its program name. */
	argc--;
	argv++;
	/* 0, not 1: GNU getopt then starts afresh, which repeated calls (tests) need. */
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", long_options, NULL)) != -1)
	{
		const CliOptionSpec *spec;
		char text[64];

		if (c == '?' || c == ':')
		{
			offending_option(argv[optind - 1], text, sizeof(text));
			if (c == ':')
				usage_error("option \"%s\" needs a value", text);
			else if (optopt != 0)
				usage_error("unknown option \"-%c\"", optopt);
			else
				usage_error("unknown option \"%s\"", text);
			return false;
		}
		spec = find_option_by_id(c);
		if (spec == NULL)
		{
			usage_error("internal error: unknown option id %d", c);
			return false;
		}
		if ((spec->commands & CMD_BIT(options->command)) == 0)
		{
			usage_error("option \"--%s\" is not valid for command \"%s\"", spec->name, command_name);
			return false;
		}
		if (!apply_option(parse, spec, optarg))
			return false;
		parse->set_by_flag[spec->id] = true;
	}
	if (optind < argc)
	{
		usage_error("unexpected argument \"%s\" for command \"%s\"", argv[optind], command_name);
		return false;
	}
	return true;
}

bool
cli_parse(int argc, char **argv, CliOptions *out)
{
	CliParse parse;
	bool ok = false;

	memset(out, 0, sizeof(*out));
	memset(&parse, 0, sizeof(parse));
	parse.options = out;
	set_defaults(out);

	if (argc < 2)
	{
		usage_error("no command given");
		goto cleanup;
	}
	if (strcmp(argv[1], "--help") == 0)
	{
		out->help = true;
		ok = argc == 2;
		if (!ok)
			usage_error("\"%s\" takes no arguments", argv[1]);
		goto cleanup;
	}
	if (strcmp(argv[1], "--version") == 0)
	{
		out->version = true;
		ok = argc == 2;
		if (!ok)
			usage_error("\"%s\" takes no arguments", argv[1]);
		goto cleanup;
	}
	if (strcmp(argv[1], "help") == 0)
	{
		ok = parse_help_command(argc, argv, out);
		goto cleanup;
	}
	if (argv[1][0] == '-')
	{
		usage_error("the command must come first, before \"%s\"", argv[1]);
		goto cleanup;
	}
	if (!find_command(argv[1], &out->command))
	{
		usage_error("unknown command \"%s\"", argv[1]);
		goto cleanup;
	}

	if (!parse_flags(&parse, argc, argv))
		goto cleanup;
	if (out->help || out->version)
	{
		ok = true;
		goto cleanup;
	}
	if (out->config_file != NULL && !read_config_file(&parse, out->config_file))
		goto cleanup;
	if (!apply_environment(out))
		goto cleanup;
	if (out->state_dir == NULL && !replace_string(&out->state_dir, CLI_DEFAULT_STATE_DIR))
		goto cleanup;
	if (!check_required(out))
		goto cleanup;
	ok = true;

cleanup:
	if (!ok)
		cli_options_free(out);
	return ok;
}

void
cli_options_free(CliOptions *options)
{
	if (options == NULL)
		return;
	free(options->state_dir);
	free(options->config_file);
	free(options->source);
	free(options->target);
	free_list(options->tables);
	free(options->http);
	free(options->http_token);
	free_list(options->app_roles);
	free(options->pgbouncer);
	free(options->pgbouncer_db);
	free(options->pgbouncer_ini);
	memset(options, 0, sizeof(*options));
}

/* ---- help ------------------------------------------------------------------------------- */

static void
print_common_options(void)
{
	printf("Options for every command:\n"
		   "  --state-dir DIR     the migration's state directory: spool, state, control socket\n"
		   "                      (default \"%s\")\n"
		   "  --config FILE       read settings from FILE: \"key = value\" lines, keys named as the\n"
		   "                      long options (\"source = host=db1 dbname=app\", \"no-copy = true\");\n"
		   "                      lines starting with # are comments; flags override the file\n"
		   "  --log-level LEVEL   debug, info, warning or error (default info)\n"
		   "  --help              show this help\n",
		   CLI_DEFAULT_STATE_DIR);
}

static void
print_general_help(void)
{
	printf("switchyard moves a live PostgreSQL database into another one and proves that\n"
		   "nothing was lost on the way.\n"
		   "\n"
		   "Usage:\n"
		   "  switchyard COMMAND [OPTION]...\n"
		   "  switchyard help COMMAND        (or switchyard COMMAND --help)\n"
		   "  switchyard --version\n"
		   "\n"
		   "Commands:\n");
	for (size_t i = 0; i < N_COMMAND_SPECS; i++)
		printf("  %-9s %s\n", command_specs[i].name, command_specs[i].summary);
	printf("\n");
	print_common_options();
	printf("\n"
		   "Environment:\n"
		   "  SWITCHYARD_SOURCE, SWITCHYARD_TARGET   connection strings used when --source or\n"
		   "                                         --target is given neither as a flag nor in\n"
		   "                                         the configuration file\n"
		   "  PGHOST, PGPORT, PGUSER, PGPASSWORD, ... and ~/.pgpass work as in psql\n"
		   "\n"
		   "Exit status:\n"
		   "  %d  success\n"
		   "  %d  internal error (I/O, out of memory)\n"
		   "  %d  bad command line or configuration file\n"
		   "  %d  source server error: unreachable, refused, misconfigured\n"
		   "  %d  target server error: unreachable, refused, missing objects\n"
		   "  %d  verify found differences\n"
		   "  %d  cutover aborted (rolled back)\n"
		   "  %d  no agent is running (for status: and no state in the state directory)\n"
		   "  %d  the agent declined the command now (pause while a verify holds it): try again\n",
		   EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_SOURCE, EXIT_TARGET, EXIT_PARITY,
		   EXIT_CUTOVER, EXIT_NO_AGENT, EXIT_REFUSED);
}

static void
print_command_help(CliCommand command)
{
	switch (command)
	{
		case CLI_COMMAND_RUN:
			printf("switchyard run: replicate the source into the target. Sets up the publication,\n"
				   "slot and replication origin, copies the tables (unless --no-copy), then streams\n"
				   "changes until \"switchyard stop\", SIGTERM/SIGINT, or --endpos.\n"
				   "\n"
				   "Usage:\n"
				   "  switchyard run --source CONNINFO --target CONNINFO [OPTION]...\n"
				   "\n"
				   "Options:\n"
				   "  --source CONNINFO     source server (libpq keyword/value string or URI)\n"
				   "  --target CONNINFO     target server\n"
				   "  --tables PATTERN      tables to migrate; repeatable or comma-separated\n"
				   "                        (default: all tables)\n"
				   "  --no-copy             skip the initial copy: the target already has the schema\n"
				   "                        and the data\n"
				   "  --endpos LSN          exit once everything up to LSN (e.g. 0/16B3748) is applied\n"
				   "  --http ADDR:PORT      serve /metrics, /api/status and the dashboard (an empty\n"
				   "                        ADDR means 127.0.0.1; other than loopback needs a token)\n"
				   "  --http-token TOKEN    require \"Authorization: Bearer TOKEN\" (or TOKEN as the\n"
				   "                        basic-auth password) on every HTTP request; keep it in\n"
				   "                        the --config file rather than on the command line\n"
				   "  --app-roles ROLE      application roles kept off the target until cutover;\n"
				   "                        repeatable or comma-separated\n"
				   "  --guard MODE          observe (default): report every session on the target\n"
				   "                        that is not the agent's; enforce: also terminate it\n"
				   "  --jobs N              parallel copy workers (default: number of cores)\n"
				   "  --spool-max SIZE      bound on the spool, e.g. 512MB or 8GB (default 8GB);\n"
				   "                        when full, receiving pauses until the target catches up\n"
				   "  --truncate-target     empty the target's tables before copying into them\n"
				   "  --verify-every TIME   continuous parity: run switchyard verify every TIME (e.g.\n"
				   "                        10m) while streaming; results in status and dashboard\n");
			break;
		case CLI_COMMAND_STATUS:
			printf("switchyard status: show the migration's progress, from the running agent, or from\n"
				   "the state directory when no agent is running.\n"
				   "\n"
				   "Usage:\n"
				   "  switchyard status [--json] [OPTION]...\n"
				   "\n"
				   "Options:\n"
				   "  --json                print the status document as JSON\n");
			break;
		case CLI_COMMAND_VERIFY:
			printf("switchyard verify: compare source and target row by row, at one point of the\n"
				   "change stream, while the source keeps writing. The running agent holds its\n"
				   "applier at that point while the target takes its snapshot; without an agent the\n"
				   "comparison has no common point and says so. The full list of differences goes\n"
				   "to <state-dir>/parity/<time>.json, the latest result per table to\n"
				   "<state-dir>/parity/latest.json.\n"
				   "\n"
				   "Usage:\n"
				   "  switchyard verify [--table NAME]... [--repair] [--json] [OPTION]...\n"
				   "\n"
				   "Options:\n"
				   "  --table NAME          compare only this table (default: the migration's\n"
				   "                        published tables); repeatable or comma-separated\n"
				   "  --repair              write the source's rows where the target differs, while\n"
				   "                        the applier is held (needs the running agent)\n"
				   "  --json                print the report as JSON\n"
				   "  --jobs N              parallel sessions per server (default: number of cores)\n"
				   "  --source CONNINFO     source server\n"
				   "  --target CONNINFO     target server\n"
				   "\n"
				   "Exit status 0 when the tables are equal (or all differences were repaired),\n"
				   "5 when anything differs, 3 or 4 on a source or target error.\n");
			break;
		case CLI_COMMAND_CUTOVER:
			printf("switchyard cutover: switch the application to the target, through the running\n"
				   "agent: preflight (lag, latest verify clean, no foreign session on the target,\n"
				   "sequences readable, PgBouncer pointing at the source), then PAUSE writes,\n"
				   "drain the stream and final parity (the sequences are set meanwhile), give\n"
				   "the application roles CONNECT on the target, repoint PgBouncer (file and\n"
				   "RELOAD) and RESUME.\n"
				   "Any failure before the switch rolls back: the source keeps serving. If the\n"
				   "agent dies mid-cutover, its next start rolls back (before the switch) or\n"
				   "completes it (PgBouncer already repointed): see <state-dir>/cutover.json.\n"
				   "\n"
				   "Usage:\n"
				   "  switchyard cutover --pgbouncer CONNINFO --pgbouncer-db NAME --pgbouncer-ini FILE\n"
				   "                     [--dry-run] [--yes] [OPTION]...\n"
				   "  switchyard cutover --fence read-only --app-roles ROLE... [--yes] [OPTION]...\n"
				   "  switchyard cutover --fence manual [--yes] [OPTION]...\n"
				   "\n"
				   "Options:\n"
				   "  --pgbouncer CONNINFO  PgBouncer's admin console (dbname=pgbouncer, an admin user)\n"
				   "  --pgbouncer-db NAME   the PgBouncer database entry to repoint\n"
				   "  --pgbouncer-ini FILE  the PgBouncer configuration file holding that entry\n"
				   "  --fence read-only     no PgBouncer: the --app-roles get\n"
				   "                        default_transaction_read_only = on on the source and their\n"
				   "                        sessions there are ended; a rollback restores the roles'\n"
				   "                        settings exactly. After success they stay read-only and\n"
				   "                        you point the application at the target yourself\n"
				   "  --app-roles ROLE      with --fence read-only: the application roles (repeatable\n"
				   "                        or comma-separated; not the role the agent connects as)\n"
				   "  --fence manual        no PgBouncer: you stop the application's writes yourself\n"
				   "                        and confirm at the prompt\n"
				   "  --max-pause MS        roll back if the write pause grows past MS (default 5000)\n"
				   "  --max-lag SIZE        refuse when the target is further behind (default 16MB)\n"
				   "  --dry-run             run the preflight only, change nothing; say which tables the\n"
				   "                        final parity compares by touched keys, which it skips (no\n"
				   "                        key, not written since their baseline), which in full\n"
				   "  --yes                 do not ask for confirmation\n"
				   "\n"
				   "Exit status 0 when switched (or the dry run passed), 6 when aborted.\n");
			break;
		case CLI_COMMAND_PAUSE:
			printf("switchyard pause: pause applying changes to the target. The agent keeps\n"
				   "receiving into the spool.\n"
				   "\n"
				   "Usage:\n"
				   "  switchyard pause [OPTION]...\n");
			break;
		case CLI_COMMAND_RESUME:
			printf("switchyard resume: resume applying changes after \"switchyard pause\".\n"
				   "\n"
				   "Usage:\n"
				   "  switchyard resume [OPTION]...\n");
			break;
		case CLI_COMMAND_STOP:
			printf("switchyard stop: stop the running agent cleanly and wait until it has exited.\n"
				   "\n"
				   "Usage:\n"
				   "  switchyard stop [OPTION]...\n");
			break;
		case CLI_COMMAND_CLEANUP:
			printf("switchyard cleanup: drop this migration's replication slot and publication on\n"
				   "the source, its replication origin on the target, and its persisted state, and\n"
				   "grant back the CONNECT privileges the target guard revoked (needs --target while\n"
				   "they are revoked).\n"
				   "\n"
				   "Usage:\n"
				   "  switchyard cleanup [--source CONNINFO] [--target CONNINFO] [OPTION]...\n"
				   "\n"
				   "Options:\n"
				   "  --source CONNINFO     source server\n"
				   "  --target CONNINFO     target server\n");
			break;
		case CLI_COMMAND_NONE:
			break;
	}
	printf("\n");
	print_common_options();
}

void
cli_print_help(CliCommand command)
{
	if (command == CLI_COMMAND_NONE)
		print_general_help();
	else
		print_command_help(command);
}

void
cli_print_version(void)
{
	printf("switchyard %s (commit %s)\n", PACKAGE_VERSION, SWITCHYARD_COMMIT);
}
