/*
 * Test driver for the target guard's API, which the cutover calls: starts a guard, then reads
 * one command per line on stdin ("stats", "lift", "reinstate", "quit") and answers one line on
 * stdout, so a test script can drive it as a coprocess (tests/integration/t_guard_lift.sh).
 *
 *   guard_driver --state-dir DIR --target CONNINFO [--app-roles A,B] [--mode enforce] [--poll-ms N]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchyard/guard.h"
#include "switchyard/log.h"

static const char *
arg_value(int argc, char **argv, const char *name, const char *fallback)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return fallback;
}

/* "a,b" -> {"a", "b", NULL}; the string is cut in place. */
static char **
split_roles(char *text)
{
	size_t n = 1;
	char **roles;
	size_t i = 0;

	for (const char *p = text; *p != '\0'; p++)
		n += *p == ',';
	roles = calloc(n + 1, sizeof(char *));
	if (roles == NULL || text[0] == '\0')
		return roles;
	for (char *item = strtok(text, ","); item != NULL; item = strtok(NULL, ","))
		roles[i++] = item;
	return roles;
}

int
main(int argc, char **argv)
{
	GuardOptions options = {0};
	Guard *guard = NULL;
	char *roles_text = strdup(arg_value(argc, argv, "--app-roles", ""));
	char **roles = split_roles(roles_text);
	char line[256];

	setvbuf(stdout, NULL, _IOLBF, 0);
	log_set_level(LOG_LEVEL_DEBUG);
	options.state_dir = arg_value(argc, argv, "--state-dir", NULL);
	options.target_conninfo = arg_value(argc, argv, "--target", NULL);
	options.app_roles = roles;
	options.poll_ms = atoi(arg_value(argc, argv, "--poll-ms", "0"));
	if (!guard_parse_mode(arg_value(argc, argv, "--mode", "observe"), &options.mode) ||
		options.state_dir == NULL || options.target_conninfo == NULL)
	{
		fprintf(stderr, "usage: guard_driver --state-dir DIR --target CONNINFO [--app-roles A,B] "
				"[--mode observe|enforce] [--poll-ms N]\n");
		return 2;
	}
	if (!guard_start(&options, &guard))
	{
		printf("failed\n");
		return 1;
	}
	printf("started\n");
	while (fgets(line, sizeof(line), stdin) != NULL)
	{
		line[strcspn(line, "\n")] = '\0';
		if (strcmp(line, "stats") == 0)
		{
			GuardStats stats;

			guard_get_stats(guard, &stats);
			printf("revoked=%d lifted=%d watching=%d checks=%" PRIu64 " violations=%" PRIu64
				   " now=%" PRIu64 " last=%s\n", stats.connect_revoked, stats.lifted, stats.watching,
				   stats.checks, stats.violations_total, stats.sessions_now, stats.last_violation);
		}
		else if (strcmp(line, "lift") == 0)
			printf("%s\n", guard_lift(guard) ? "ok" : "failed");
		else if (strcmp(line, "reinstate") == 0)
			printf("%s\n", guard_reinstate(guard) ? "ok" : "failed");
		else if (strcmp(line, "quit") == 0)
			break;
		else
			printf("unknown command\n");
	}
	guard_free(guard);
	free(roles);
	free(roles_text);
	printf("bye\n");
	return 0;
}
