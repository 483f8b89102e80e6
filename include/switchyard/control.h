/*
 * The control socket (<state-dir>/control.sock, mode 0600): the CLI's way to talk to the
 * running agent. Framing: [u32 big-endian length][protobuf message]; one ControlRequest, one
 * ControlResponse per connection. The server runs on the agent's event loop.
 */
#ifndef SWITCHYARD_CONTROL_H
#define SWITCHYARD_CONTROL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "control.pb-c.h"

typedef struct ControlServer ControlServer;

/*
 * Handles one request on the loop thread; fills response (ok, and message and status_json
 * malloc'd by the handler, freed by the server after sending; leave a field untouched when it
 * has nothing to say). The handler must not free the server: for STOP it answers and then
 * starts the shutdown, e.g. with event_base_loopexit or a zero timer, and control_server_free
 * later still delivers the answer.
 */
typedef void (*ControlHandler)(const ControlRequest *request, ControlResponse *response, void *arg);

/* Binds the socket (replacing a stale one left by a dead agent). */
bool control_server_start(struct event_base *base, const char *state_dir, ControlHandler handler,
						  void *arg, ControlServer **out) __attribute__((warn_unused_result));
/* Closes the socket and removes its file. Accepts NULL. */
void control_server_free(ControlServer *server);

/*
 * Client side: connects, sends, waits up to timeout_ms for the answer. Returns false without
 * logging when no agent listens (*no_agent = true), or logs and returns false on other errors.
 */
bool control_request(const char *state_dir, ControlRequest__Command command, int timeout_ms,
					 ControlResponse **out, bool *no_agent) __attribute__((warn_unused_result));
/* The same with the request's lsn field set (APPLY_HOLD). */
bool control_request_lsn(const char *state_dir, ControlRequest__Command command, uint64_t lsn,
						 int timeout_ms, ControlResponse **out, bool *no_agent)
	__attribute__((warn_unused_result));
/* Any request, fully built by the caller (CUTOVER carries its options). */
bool control_send(const char *state_dir, const ControlRequest *request, int timeout_ms,
				  ControlResponse **out, bool *no_agent) __attribute__((warn_unused_result));
/* Frees a response from control_request. Accepts NULL. */
void control_response_free(ControlResponse *response);
/* True when something accepts connections on <state_dir>/control.sock. Logs nothing. */
bool control_probe(const char *state_dir);

#endif
