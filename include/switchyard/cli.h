/*
 * Command line and configuration file: one CliOptions for every command. The config file
 * (--config FILE) holds "key = value" lines whose keys equal the long options; flags given
 * on the command line override it. SWITCHYARD_SOURCE / SWITCHYARD_TARGET fill
 * --source / --target when absent.
 */
#ifndef SWITCHYARD_CLI_H
#define SWITCHYARD_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "switchyard/log.h"
#include "switchyard/lsn.h"

typedef enum CliCommand
{
	CLI_COMMAND_NONE = 0,
	CLI_COMMAND_RUN,
	CLI_COMMAND_STATUS,
	CLI_COMMAND_VERIFY,
	CLI_COMMAND_CUTOVER,
	CLI_COMMAND_PAUSE,
	CLI_COMMAND_RESUME,
	CLI_COMMAND_STOP,
	CLI_COMMAND_CLEANUP
} CliCommand;

/* How the cutover stops the application's writes on the source. */
typedef enum CliFence
{
	CLI_FENCE_PGBOUNCER = 0,   /* PAUSE in PgBouncer, then repoint it */
	CLI_FENCE_MANUAL,          /* the operator has stopped the writes */
	CLI_FENCE_READ_ONLY        /* the application roles are made read-only on the source */
} CliFence;

typedef struct CliOptions
{
	CliCommand command;
	bool help;                 /* --help: print the command's help and exit 0 */
	bool version;

	/* every command */
	char *state_dir;           /* default "./switchyard-state" */
	char *config_file;
	LogLevel log_level;        /* default info */

	/* run, cleanup, verify */
	char *source;              /* libpq conninfo */
	char *target;
	char **tables;             /* --tables PATTERN (repeatable), NULL-terminated; NULL = all */
	bool no_copy;
	Lsn endpos;                /* 0 = none */
	char *http;                /* ADDR:PORT; an empty ADDR is 127.0.0.1 */
	char *http_token;          /* --http-token: required to serve off loopback */
	char **app_roles;          /* run, cutover: --app-roles ROLE (repeatable), NULL-terminated */
	bool guard_enforce;        /* --guard enforce: terminate foreign target sessions (default observe) */
	int jobs;                  /* --jobs N, default number of cores */
	uint64_t spool_max_bytes;  /* --spool-max SIZE (e.g. 8GB), default 8 GiB */
	bool truncate_target;
	int verify_every_seconds;  /* run --verify-every: 0 = no continuous parity */

	/* status, verify */
	bool json;
	/* verify */
	bool repair;
	/* cutover */
	bool dry_run;
	bool yes;
	char *pgbouncer;
	char *pgbouncer_db;
	char *pgbouncer_ini;
	CliFence fence;            /* --fence, default pgbouncer */
	int max_pause_ms;          /* --max-pause, 0 = the cutover's default */
	uint64_t max_lag_bytes;    /* --max-lag, 0 = the cutover's default */
} CliOptions;

/*
 * Parses argv (argv[1] is the command) and the config file it names. On a usage error prints
 * one line "switchyard: ..." plus "Try \"switchyard --help\"" to stderr and returns false.
 */
bool cli_parse(int argc, char **argv, CliOptions *out) __attribute__((warn_unused_result));
void cli_options_free(CliOptions *options);
/* Prints the general help, or the command's own help, to stdout. */
void cli_print_help(CliCommand command);
const char *cli_command_name(CliCommand command);
/* Prints "switchyard VERSION" to stdout. */
void cli_print_version(void);

#endif
