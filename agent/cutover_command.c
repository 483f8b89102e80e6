/*
 * `switchyard cutover` on the command line: asks for confirmation, hands the cutover to the
 * running agent over the control socket, follows its steps through STATUS and prints the
 * report the agent wrote. The work itself happens inside the agent (cutover.c).
 */
#include "switchyard/cutover.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "switchyard/cli.h"
#include "switchyard/control.h"
#include "switchyard/exitcode.h"
#include "switchyard/log.h"

#define CUTOVER_CONTROL_TIMEOUT_MS 10000
#define CUTOVER_POLL_MS 50
/* the preflight may wait for the target to catch up; the fence is bounded by --max-pause */
#define CUTOVER_WAIT_SECONDS 600

static bool
cutover_confirm(const CliOptions *options)
{
	char answer[16] = "";
	const char *question = options->fence == CLI_FENCE_MANUAL
		? "Have the application's writes to the source stopped, and may switchyard switch it to the target?"
		: options->fence == CLI_FENCE_READ_ONLY
		? "Make the application roles read-only on the source, end their sessions there, and switch to the target?"
		: "Switch the application to the target now?";

	if (options->yes || options->dry_run)
		return true;
	if (!isatty(STDIN_FILENO))
	{
		fprintf(stderr, "switchyard: cutover asks for confirmation: run it on a terminal or pass --yes\n");
		return false;
	}
	printf("%s [y/N] ", question);
	fflush(stdout);
	if (fgets(answer, sizeof(answer), stdin) == NULL)
		return false;
	return answer[0] == 'y' || answer[0] == 'Y';
}

/* The "cutover" object of the agent's status, or NULL. */
static json_object *
cutover_poll(const CliOptions *options, json_object **root)
{
	ControlResponse *response = NULL;
	bool no_agent = false;
	json_object *cutover = NULL;

	*root = NULL;
	if (!control_request(options->state_dir, CONTROL_REQUEST__COMMAND__STATUS, CUTOVER_CONTROL_TIMEOUT_MS,
						 &response, &no_agent) || response == NULL || !response->ok)
	{
		control_response_free(response);
		return NULL;
	}
	*root = json_tokener_parse(response->status_json);
	control_response_free(response);
	if (*root == NULL || !json_object_object_get_ex(*root, "cutover", &cutover) ||
		!json_object_is_type(cutover, json_type_object))
		return NULL;
	return cutover;
}

static const char *
cutover_member_string(json_object *object, const char *key)
{
	json_object *value = NULL;

	return json_object_object_get_ex(object, key, &value) && json_object_is_type(value, json_type_string)
		? json_object_get_string(value) : "";
}

static void
cutover_print_report(const CliOptions *options)
{
	char path[1024];
	json_object *report;
	json_object *steps = NULL;
	json_object *value = NULL;

	snprintf(path, sizeof(path), "%s/cutover-report.json", options->state_dir);
	report = json_object_from_file(path);
	if (report == NULL)
		return;
	printf("\ncutover %s", cutover_member_string(report, "outcome"));
	if (json_object_object_get_ex(report, "pause_ms", &value) && json_object_get_double(value) > 0)
		printf(": write pause %.1f ms", json_object_get_double(value));
	printf("\n");
	if (json_object_object_get_ex(report, "fence_lsn", &value) && strcmp(json_object_get_string(value), "0/0") != 0)
		printf("  fence LSN      %s\n", json_object_get_string(value));
	if (json_object_object_get_ex(report, "rows_verified", &value))
		printf("  rows verified  %lld\n", (long long) json_object_get_int64(value));
	if (json_object_object_get_ex(report, "sequences_set", &value))
		printf("  sequences set  %d\n", json_object_get_int(value));
	/* PgBouncer's logins to the target for the clients it held: part of their outage */
	if (json_object_object_get_ex(report, "clients_served_ms", &value))
	{
		if (value != NULL)
			printf("  clients served %.1f ms after RESUME\n", json_object_get_double(value));
		else
		{
			json_object *waiting = NULL;

			json_object_object_get_ex(report, "clients_waiting", &waiting);
			printf("  clients served not within 3 s of RESUME: %d still waited (see the agent's log)\n",
				   waiting != NULL ? json_object_get_int(waiting) : 0);
		}
	}
	if (json_object_object_get_ex(report, "steps", &steps) && json_object_is_type(steps, json_type_array))
		for (size_t i = 0; i < json_object_array_length(steps); i++)
		{
			json_object *step = json_object_array_get_idx(steps, i);

			if (json_object_object_get_ex(step, "ms", &value))
				printf("  %-14s %8.1f ms\n", cutover_member_string(step, "step"), json_object_get_double(value));
		}
	/* the rest only matters once switched: an abort gave everything back, or its message said what not */
	if (strcmp(cutover_member_string(report, "outcome"), "switched") != 0)
	{
		printf("  report         %s\n", path);
		json_object_put(report);
		return;
	}
	if (json_object_object_get_ex(report, "reason", &value) && json_object_is_type(value, json_type_string))
		printf("  note           %s\n", json_object_get_string(value));
	if (json_object_object_get_ex(report, "read_only_roles", &steps) && json_object_is_type(steps, json_type_array))
	{
		printf("  read-only      ");
		for (size_t i = 0; i < json_object_array_length(steps); i++)
			printf("%s%s", i > 0 ? ", " : "", json_object_get_string(json_object_array_get_idx(steps, i)));
		printf(" (roles, on the source)\n");
	}
	if (json_object_object_get_ex(report, "next", &value))
		printf("  next           %s\n", json_object_get_string(value));
	printf("  report         %s\n", path);
	json_object_put(report);
}

/* The agent wrote a report saying "switched" since `since`. */
static bool
cutover_report_switched(const CliOptions *options, time_t since)
{
	char path[1024];
	struct stat st;
	json_object *report;
	bool switched;

	snprintf(path, sizeof(path), "%s/cutover-report.json", options->state_dir);
	if (stat(path, &st) != 0 || st.st_mtime < since)
		return false;
	report = json_object_from_file(path);
	switched = report != NULL && strcmp(cutover_member_string(report, "outcome"), "switched") == 0;
	json_object_put(report);
	return switched;
}

int
cutover_command(const CliOptions *options)
{
	ControlRequest request = CONTROL_REQUEST__INIT;
	CutoverRequest cutover = CUTOVER_REQUEST__INIT;
	ControlResponse *response = NULL;
	bool no_agent = false;
	char last_step[32] = "";
	time_t started;
	time_t deadline;
	int code = EXIT_CUTOVER;

	if (!cutover_confirm(options))
	{
		fprintf(stderr, "switchyard: cutover not confirmed: nothing changed\n");
		return EXIT_CUTOVER;
	}
	cutover.pgbouncer = options->pgbouncer != NULL ? options->pgbouncer : "";
	cutover.pgbouncer_db = options->pgbouncer_db != NULL ? options->pgbouncer_db : "";
	cutover.pgbouncer_ini = options->pgbouncer_ini != NULL ? options->pgbouncer_ini : "";
	cutover.dry_run = options->dry_run;
	cutover.manual_fence = options->fence == CLI_FENCE_MANUAL;
	cutover.read_only_fence = options->fence == CLI_FENCE_READ_ONLY;
	if (cutover.read_only_fence)
	{
		while (options->app_roles[cutover.n_app_roles] != NULL)
			cutover.n_app_roles++;
		cutover.app_roles = options->app_roles;
	}
	cutover.max_pause_ms = (uint32_t) options->max_pause_ms;
	cutover.max_lag_bytes = options->max_lag_bytes;
	/* a test hook: the abort path of every step (and of the rollback's RELOAD) can be exercised on real servers */
	cutover.fail_at = getenv("SWITCHYARD_CUTOVER_FAIL_AT") != NULL ? getenv("SWITCHYARD_CUTOVER_FAIL_AT") : "";
	/* another: the cutover stalls at a point, for a test to kill the agent there */
	cutover.stall_at = getenv("SWITCHYARD_CUTOVER_STALL_AT") != NULL ? getenv("SWITCHYARD_CUTOVER_STALL_AT") : "";
	request.command = CONTROL_REQUEST__COMMAND__CUTOVER;
	request.cutover = &cutover;
	if (!control_send(options->state_dir, &request, CUTOVER_CONTROL_TIMEOUT_MS, &response, &no_agent))
	{
		if (no_agent)
		{
			fprintf(stderr, "switchyard: no agent is running on \"%s\": the cutover runs inside it\n",
					options->state_dir);
			return EXIT_NO_AGENT;
		}
		return EXIT_INTERNAL;
	}
	if (!response->ok)
	{
		fprintf(stderr, "switchyard: %s\n", response->message);
		control_response_free(response);
		return EXIT_CUTOVER;
	}
	control_response_free(response);

	started = time(NULL);
	deadline = started + CUTOVER_WAIT_SECONDS;
	for (;;)
	{
		json_object *root = NULL;
		json_object *state = cutover_poll(options, &root);
		json_object *value = NULL;
		struct timespec nap = {0, CUTOVER_POLL_MS * 1000000L};

		if (state == NULL)
		{
			json_object_put(root);
			/* the agent ends its streaming after a switch: its last word is the report */
			if (!control_probe(options->state_dir))
			{
				if (cutover_report_switched(options, started))
				{
					cutover_print_report(options);
					return EXIT_OK;
				}
				fprintf(stderr, "switchyard: the agent ended during the cutover (last step: %s)\n",
						last_step[0] ? last_step : "none");
				fprintf(stderr, "hint: start it again (switchyard run, same state directory): it rolls an "
						"interrupted cutover back, or completes it if PgBouncer already points at the target\n");
				return EXIT_CUTOVER;
			}
		}
		else
		{
			const char *step = cutover_member_string(state, "step");

			if (strcmp(step, last_step) != 0 && strcmp(step, "idle") != 0)
			{
				printf("cutover: %s\n", step);
				fflush(stdout);
				snprintf(last_step, sizeof(last_step), "%s", step);
			}
			if (json_object_object_get_ex(state, "finished", &value) && json_object_get_boolean(value))
			{
				bool succeeded = json_object_object_get_ex(state, "succeeded", &value) &&
					json_object_get_boolean(value);

				if (!succeeded)
					fprintf(stderr, "switchyard: cutover aborted: %s\n", cutover_member_string(state, "message"));
				else if (options->dry_run)
					printf("cutover: %s\n", cutover_member_string(state, "message"));
				code = succeeded ? EXIT_OK : EXIT_CUTOVER;
				json_object_put(root);
				break;
			}
		}
		json_object_put(root);
		if (time(NULL) > deadline)
		{
			fprintf(stderr, "switchyard: the cutover did not finish within %d s; see switchyard status\n",
					CUTOVER_WAIT_SECONDS);
			return EXIT_CUTOVER;
		}
		nanosleep(&nap, NULL);
	}
	cutover_print_report(options);
	return code;
}
