/*
 * switchyard's entry point: parses the command line and hands each command to the agent
 * (run, cleanup) or to the running agent through its control socket (status, pause, resume,
 * stop). The only place that decides the exit status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "switchyard/agent.h"
#include "switchyard/cli.h"
#include "switchyard/control.h"
#include "switchyard/cutover.h"
#include "switchyard/exitcode.h"
#include "switchyard/guard.h"
#include "switchyard/log.h"
#include "switchyard/state.h"
#include "switchyard/status.h"
#include "switchyard/verify.h"

#define CONTROL_TIMEOUT_MS 10000
/* How long `stop` waits for the agent to flush, confirm its position and exit. */
#define STOP_WAIT_MS 60000
#define STOP_POLL_MS 100

static void
print_no_agent(const CliOptions *options)
{
	fprintf(stderr, "switchyard: no agent is running on state directory \"%s\"\n",
			options->state_dir);
	fprintf(stderr, "Start one with \"switchyard run\", or name its directory with --state-dir.\n");
}

/* status while no agent runs: the last positions the agent saved */
static int
status_from_state(const CliOptions *options)
{
	AgentState *state = NULL;
	GuardRecord *guard = NULL;
	AgentStatus status;
	char *json = NULL;
	int rc = EXIT_INTERNAL;

	if (!state_load(options->state_dir, &state))
		goto cleanup;
	if (state == NULL)
	{
		fprintf(stderr, "switchyard: no agent is running and no state in \"%s\"\n",
				options->state_dir);
		fprintf(stderr, "Start one with \"switchyard run\", or name its directory with --state-dir.\n");
		rc = EXIT_NO_AGENT;
		goto cleanup;
	}

	memset(&status, 0, sizeof(status));
	/* a migration that was cut over says so; any other stopped agent is "stopped" */
	status.phase = state->phase != NULL && strcmp(state->phase, "done") == 0 ? "done" : "stopped";
	status.running = false;
	status.slot_name = state->slot_name;
	status.publication_name = state->publication_name;
	status.origin_name = state->origin_name;
	status.received_lsn = state->received_lsn;
	status.flushed_lsn = state->flushed_lsn;
	status.applied_lsn = state->applied_lsn;
	status.last_error = state->last_error;
	status.lag_bytes = state->received_lsn > state->applied_lsn
		? state->received_lsn - state->applied_lsn : 0;
	/* CONNECT stays revoked while the agent is stopped: say so (a damaged record is logged) */
	if (guard_record_load(options->state_dir, &guard) && guard != NULL)
	{
		status.guard_active = true;
		status.guard_mode = guard_mode_name(guard->mode);
		status.guard_app_roles = guard->app_roles;
		status.guard_connect_revoked = !guard->lifted;
		status.guard_lifted = guard->lifted;
	}

	if (options->json)
	{
		json = status_to_json(&status, true);
		if (json == NULL)
		{
			log_error("out of memory");
			goto cleanup;
		}
		printf("%s\n", json);
	}
	else
		status_print_text(&status);
	rc = EXIT_OK;

cleanup:
	free(json);
	guard_record_free(guard);
	state_free(state);
	return rc;
}

static int
command_status(const CliOptions *options)
{
	ControlResponse *response = NULL;
	StatusDocument *document = NULL;
	AgentStatus status;
	bool no_agent = false;
	int rc = EXIT_INTERNAL;

	if (!control_request(options->state_dir, CONTROL_REQUEST__COMMAND__STATUS, CONTROL_TIMEOUT_MS,
						 &response, &no_agent))
	{
		if (no_agent)
			rc = status_from_state(options);
		goto cleanup;
	}
	if (!response->ok)
	{
		fprintf(stderr, "switchyard: %s\n", response->message);
		goto cleanup;
	}
	if (options->json)
	{
		size_t length = strlen(response->status_json);

		fputs(response->status_json, stdout);
		if (length == 0 || response->status_json[length - 1] != '\n')
			fputc('\n', stdout);
	}
	else
	{
		if (!status_from_json(response->status_json, &status, &document))
		{
			log_error("could not parse the status document from the agent");
			goto cleanup;
		}
		status_print_text(&status);
	}
	rc = EXIT_OK;

cleanup:
	status_document_free(document);
	control_response_free(response);
	return rc;
}

static void
sleep_ms(int ms)
{
	struct timespec pause = {ms / 1000, (long) (ms % 1000) * 1000000};

	nanosleep(&pause, NULL);
}

/* Gone means both: nobody holds the state lock and nobody answers on the socket. */
static bool
wait_for_agent_exit(const char *state_dir, int *pid)
{
	for (int waited = 0; waited < STOP_WAIT_MS; waited += STOP_POLL_MS)
	{
		if (!state_lock_is_held(state_dir, pid) && !control_probe(state_dir))
			return true;
		sleep_ms(STOP_POLL_MS);
	}
	return false;
}

/* pause, resume, stop */
static int
command_control(const CliOptions *options, ControlRequest__Command command)
{
	ControlResponse *response = NULL;
	bool no_agent = false;
	int pid = 0;
	int rc = EXIT_INTERNAL;

	if (!control_request(options->state_dir, command, CONTROL_TIMEOUT_MS, &response, &no_agent))
	{
		if (no_agent)
		{
			print_no_agent(options);
			rc = EXIT_NO_AGENT;
		}
		goto cleanup;
	}
	if (!response->ok)
	{
		fprintf(stderr, "switchyard: %s\n", response->message[0] != '\0'
				? response->message : "the agent refused the request");
		rc = EXIT_REFUSED;
		goto cleanup;
	}
	if (command == CONTROL_REQUEST__COMMAND__STOP)
	{
		(void) state_lock_is_held(options->state_dir, &pid);
		if (!wait_for_agent_exit(options->state_dir, &pid))
		{
			fprintf(stderr, "switchyard: the agent did not exit within %d s\n", STOP_WAIT_MS / 1000);
			if (pid > 0)
				fprintf(stderr, "It is still running as process %d.\n", pid);
			goto cleanup;
		}
		printf("agent stopped\n");
	}
	else if (response->message[0] != '\0')
		printf("%s\n", response->message);
	rc = EXIT_OK;

cleanup:
	control_response_free(response);
	return rc;
}

int
main(int argc, char **argv)
{
	CliOptions options;
	int rc = EXIT_INTERNAL;

	if (!cli_parse(argc, argv, &options))
		return EXIT_USAGE;
	if (options.version)
	{
		cli_print_version();
		rc = EXIT_OK;
		goto cleanup;
	}
	if (options.help)
	{
		cli_print_help(options.command);
		rc = EXIT_OK;
		goto cleanup;
	}
	log_set_level(options.log_level);

	switch (options.command)
	{
		case CLI_COMMAND_RUN:
			rc = agent_run(&options);
			break;
		case CLI_COMMAND_CLEANUP:
			rc = agent_cleanup(&options);
			break;
		case CLI_COMMAND_STATUS:
			rc = command_status(&options);
			break;
		case CLI_COMMAND_PAUSE:
			rc = command_control(&options, CONTROL_REQUEST__COMMAND__PAUSE);
			break;
		case CLI_COMMAND_RESUME:
			rc = command_control(&options, CONTROL_REQUEST__COMMAND__RESUME);
			break;
		case CLI_COMMAND_STOP:
			rc = command_control(&options, CONTROL_REQUEST__COMMAND__STOP);
			break;
		case CLI_COMMAND_VERIFY:
			rc = verify_run(&options);
			break;
		case CLI_COMMAND_CUTOVER:
			rc = cutover_command(&options);
			break;
		case CLI_COMMAND_NONE:
			cli_print_help(CLI_COMMAND_NONE);
			rc = EXIT_USAGE;
			break;
	}

cleanup:
	cli_options_free(&options);
	return rc;
}
