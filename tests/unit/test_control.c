/*
 * The control socket end to end: a server on a real event loop, the blocking client on a
 * thread, stale and live sockets, permissions, and a hostile oversized request.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "switchyard/control.h"

static char state_dir[64];
static char socket_path[128];

typedef struct Client
{
	ControlRequest__Command commands[4];
	int n_commands;
	/* results of the last command */
	bool ok;
	bool no_agent;
	ControlResponse *responses[4];
} Client;

/* What a tiny agent answers. */
static void
handler(const ControlRequest *request, ControlResponse *response, void *arg)
{
	struct event_base *base = arg;

	switch (request->command)
	{
		case CONTROL_REQUEST__COMMAND__STATUS:
			response->ok = true;
			response->status_json = strdup("{\"phase\": \"streaming\"}");
			break;
		case CONTROL_REQUEST__COMMAND__PAUSE:
			response->ok = true;
			response->message = strdup("apply paused");
			break;
		case CONTROL_REQUEST__COMMAND__STOP:
			response->ok = true;
			response->message = strdup("stopping");
			/* like the agent: leave the loop, free the server afterwards */
			event_base_loopexit(base, NULL);
			break;
		default:
			response->ok = false;
			response->message = strdup("unsupported command");
			break;
	}
}

static void *
client_main(void *arg)
{
	Client *client = arg;

	for (int i = 0; i < client->n_commands; i++)
		client->ok = control_request(state_dir, client->commands[i], 3000, &client->responses[i],
									 &client->no_agent);
	return NULL;
}

static int
setup(void **state)
{
	strcpy(state_dir, "/tmp/sy-test-control-XXXXXX");
	if (mkdtemp(state_dir) == NULL)
		return -1;
	snprintf(socket_path, sizeof(socket_path), "%s/control.sock", state_dir);
	return 0;
}

static int
teardown(void **state)
{
	unlink(socket_path);
	return rmdir(state_dir);
}

/* Runs the loop until the handler's STOP, with a safety timeout. */
static void
run_loop(struct event_base *base)
{
	struct timeval limit = {10, 0};

	event_base_loopexit(base, &limit);
	assert_int_equal(event_base_dispatch(base), 0);
}

static void
test_request_and_answer(void **state)
{
	struct event_base *base = event_base_new();
	ControlServer *server = NULL;
	Client client = {.commands = {CONTROL_REQUEST__COMMAND__STATUS, CONTROL_REQUEST__COMMAND__PAUSE,
		CONTROL_REQUEST__COMMAND__RESUME, CONTROL_REQUEST__COMMAND__STOP}, .n_commands = 4};
	pthread_t thread;
	struct stat st;

	assert_true(control_server_start(base, state_dir, handler, base, &server));
	assert_int_equal(stat(socket_path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);

	assert_int_equal(pthread_create(&thread, NULL, client_main, &client), 0);
	run_loop(base);
	/* the answer to STOP must still arrive although the loop has left */
	control_server_free(server);
	pthread_join(thread, NULL);

	assert_true(client.responses[0]->ok);
	assert_string_equal(client.responses[0]->status_json, "{\"phase\": \"streaming\"}");
	assert_string_equal(client.responses[1]->message, "apply paused");
	assert_false(client.responses[2]->ok);
	assert_string_equal(client.responses[2]->message, "unsupported command");
	assert_true(client.ok);
	assert_non_null(client.responses[3]);
	assert_true(client.responses[3]->ok);
	assert_string_equal(client.responses[3]->message, "stopping");
	for (int i = 0; i < 4; i++)
		control_response_free(client.responses[i]);

	/* the socket file goes with the server */
	assert_int_not_equal(stat(socket_path, &st), 0);
	event_base_free(base);
}

static void
test_no_agent(void **state)
{
	ControlResponse *response = NULL;
	bool no_agent = false;
	int fd;
	struct sockaddr_un address = {.sun_family = AF_UNIX};

	assert_false(control_request(state_dir, CONTROL_REQUEST__COMMAND__STATUS, 1000, &response,
								 &no_agent));
	assert_true(no_agent);
	assert_null(response);
	assert_false(control_probe(state_dir));

	/* a socket file nobody listens on: a dead agent's */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(address.sun_path, socket_path);
	assert_int_equal(bind(fd, (struct sockaddr *) &address, sizeof(address)), 0);
	close(fd);
	no_agent = false;
	assert_false(control_request(state_dir, CONTROL_REQUEST__COMMAND__STATUS, 1000, &response,
								 &no_agent));
	assert_true(no_agent);

	no_agent = false;
	assert_false(control_request("/nonexistent/switchyard-state", CONTROL_REQUEST__COMMAND__STOP,
								 1000, &response, &no_agent));
	assert_true(no_agent);
}

static void
test_stale_socket_is_replaced(void **state)
{
	struct event_base *base = event_base_new();
	ControlServer *server = NULL;
	struct sockaddr_un address = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(address.sun_path, socket_path);
	assert_int_equal(bind(fd, (struct sockaddr *) &address, sizeof(address)), 0);
	close(fd);

	assert_true(control_server_start(base, state_dir, handler, base, &server));
	assert_true(control_probe(state_dir));
	control_server_free(server);
	assert_false(control_probe(state_dir));
	event_base_free(base);
}

static void
test_live_agent_is_not_replaced(void **state)
{
	struct event_base *base = event_base_new();
	ControlServer *first = NULL;
	ControlServer *second = NULL;

	assert_true(control_server_start(base, state_dir, handler, base, &first));
	assert_false(control_server_start(base, state_dir, handler, base, &second));
	assert_null(second);
	/* the first one still owns its socket */
	assert_true(control_probe(state_dir));
	control_server_free(first);
	event_base_free(base);
}

static void *
oversized_client(void *arg)
{
	Client *client = arg;
	struct sockaddr_un address = {.sun_family = AF_UNIX};
	uint8_t header[4] = {0x00, 0x10, 0x00, 0x00};     /* 1 MiB */
	char byte;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(address.sun_path, socket_path);
	if (connect(fd, (struct sockaddr *) &address, sizeof(address)) == 0 &&
		send(fd, header, sizeof(header), MSG_NOSIGNAL) == sizeof(header))
		/* the server hangs up instead of buffering a megabyte */
		client->ok = recv(fd, &byte, 1, 0) == 0;
	close(fd);

	/* the loop must still serve a proper client afterwards */
	client->commands[0] = CONTROL_REQUEST__COMMAND__STOP;
	client->n_commands = 1;
	if (client->ok)
		client_main(client);
	return NULL;
}

static void
test_oversized_request_is_refused(void **state)
{
	struct event_base *base = event_base_new();
	ControlServer *server = NULL;
	Client client = {0};
	pthread_t thread;

	assert_true(control_server_start(base, state_dir, handler, base, &server));
	assert_int_equal(pthread_create(&thread, NULL, oversized_client, &client), 0);
	run_loop(base);
	control_server_free(server);
	pthread_join(thread, NULL);
	assert_true(client.ok);
	assert_non_null(client.responses[0]);
	assert_string_equal(client.responses[0]->message, "stopping");
	control_response_free(client.responses[0]);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_request_and_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_agent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_socket_is_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_agent_is_not_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_request_is_refused, setup, teardown),
	};

	evthread_use_pthreads();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
