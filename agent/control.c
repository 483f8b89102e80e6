/*
 * The control socket: the agent's side runs on its event loop and answers one framed
 * ControlRequest per connection through the agent's handler; the CLI's side is a short
 * blocking exchange with a deadline.
 */
#include "switchyard/control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event_struct.h>
#include <event2/listener.h>

#include "switchyard/log.h"
#include "switchyard/monotonic.h"

#define CONTROL_SOCKET_NAME "control.sock"
/* A request is a command number; anything bigger is not a switchyard CLI. */
#define CONTROL_MAX_REQUEST (64 * 1024)
/* A response carries the status document, which grows with the table list. */
#define CONTROL_MAX_RESPONSE (16 * 1024 * 1024)
#define CONTROL_IDLE_SECONDS 5
#define CONTROL_BACKLOG 16

typedef struct ControlConnection
{
	ControlServer *server;
	struct bufferevent *bev;
	struct ControlConnection *next;
	bool answered;
	bool closing;              /* waiting for the reaper to free it */
} ControlConnection;

struct ControlServer
{
	struct event_base *base;
	struct evconnlistener *listener;
	ControlHandler handler;
	void *arg;
	char path[sizeof(((struct sockaddr_un *) 0)->sun_path)];
	ControlConnection *connections;
	/* frees closed connections outside their own callbacks */
	struct event reap_event;
};

static bool
socket_address(const char *state_dir, struct sockaddr_un *address)
{
	int length;

	memset(address, 0, sizeof(*address));
	address->sun_family = AF_UNIX;
	length = snprintf(address->sun_path, sizeof(address->sun_path), "%s/%s", state_dir,
					  CONTROL_SOCKET_NAME);
	if (length < 0 || (size_t) length >= sizeof(address->sun_path))
	{
		log_error("control socket path \"%s/%s\" is too long", state_dir, CONTROL_SOCKET_NAME);
		log_hint("Unix socket paths are limited to %zu bytes; use a shorter --state-dir.",
				 sizeof(address->sun_path) - 1);
		return false;
	}
	return true;
}

/* ---- server ---------------------------------------------------------------------------- */

static void
reap_connections(evutil_socket_t fd, short events, void *arg)
{
	ControlServer *server = arg;
	ControlConnection **link = &server->connections;

	while (*link != NULL)
	{
		ControlConnection *conn = *link;

		if (!conn->closing)
		{
			link = &conn->next;
			continue;
		}
		*link = conn->next;
		bufferevent_free(conn->bev);
		free(conn);
	}
}

/*
 * Called from the connection's own callbacks, where freeing the bufferevent would pull it
 * out from under libevent: silence it now, free it from the reaper.
 */
static void
connection_close(ControlConnection *conn)
{
	if (conn->closing)
		return;
	conn->closing = true;
	bufferevent_disable(conn->bev, EV_READ | EV_WRITE);
	bufferevent_setcb(conn->bev, NULL, NULL, NULL, NULL);
	event_active(&conn->server->reap_event, EV_TIMEOUT, 0);
}

static bool
connection_send(ControlConnection *conn, const ControlResponse *response)
{
	size_t length = control_response__get_packed_size(response);
	uint8_t header[4];
	uint8_t *body = NULL;
	bool ok = false;

	body = malloc(length > 0 ? length : 1);
	if (body == NULL)
	{
		log_error("out of memory");
		goto cleanup;
	}
	control_response__pack(response, body);
	header[0] = (uint8_t) (length >> 24);
	header[1] = (uint8_t) (length >> 16);
	header[2] = (uint8_t) (length >> 8);
	header[3] = (uint8_t) length;
	if (bufferevent_write(conn->bev, header, sizeof(header)) != 0 ||
		bufferevent_write(conn->bev, body, length) != 0)
	{
		log_error("could not queue control response");
		goto cleanup;
	}
	ok = true;

cleanup:
	free(body);
	return ok;
}

static void
free_handler_string(char *text)
{
	if (text != NULL && text != protobuf_c_empty_string)
		free(text);
}

static void
connection_read(struct bufferevent *bev, void *arg)
{
	ControlConnection *conn = arg;
	struct evbuffer *input = bufferevent_get_input(bev);
	ControlRequest *request = NULL;
	ControlResponse response = CONTROL_RESPONSE__INIT;
	uint8_t header[4];
	uint8_t *frame;
	uint32_t length;
	bool handled = false;

	if (conn->answered)
	{
		/* one request per connection: ignore anything after it */
		evbuffer_drain(input, evbuffer_get_length(input));
		return;
	}
	if (evbuffer_copyout(input, header, sizeof(header)) < (ev_ssize_t) sizeof(header))
		return;
	length = (uint32_t) header[0] << 24 | (uint32_t) header[1] << 16 | (uint32_t) header[2] << 8 |
		header[3];
	if (length > CONTROL_MAX_REQUEST)
	{
		log_warning("closing control connection: request of %u bytes exceeds the limit of %d",
					length, CONTROL_MAX_REQUEST);
		connection_close(conn);
		return;
	}
	if (evbuffer_get_length(input) < sizeof(header) + length)
		return;

	frame = evbuffer_pullup(input, (ev_ssize_t) (sizeof(header) + length));
	if (frame != NULL)
		request = control_request__unpack(NULL, length, frame + sizeof(header));
	evbuffer_drain(input, sizeof(header) + length);

	if (request == NULL)
	{
		log_warning("could not parse control request of %u bytes", length);
		response.ok = false;
		response.message = "malformed control request";
	}
	else
	{
		conn->server->handler(request, &response, conn->server->arg);
		handled = true;
	}

	conn->answered = true;
	bufferevent_disable(bev, EV_READ);
	if (!connection_send(conn, &response))
		connection_close(conn);

	if (handled)
	{
		free_handler_string(response.message);
		free_handler_string(response.status_json);
	}
	if (request != NULL)
		control_request__free_unpacked(request, NULL);
}

/* Called once the output buffer has drained: the answer is out, so the exchange is over. */
static void
connection_written(struct bufferevent *bev, void *arg)
{
	ControlConnection *conn = arg;

	if (conn->answered)
		connection_close(conn);
}

static void
connection_event(struct bufferevent *bev, short events, void *arg)
{
	ControlConnection *conn = arg;

	if ((events & BEV_EVENT_EOF) && conn->answered &&
		evbuffer_get_length(bufferevent_get_output(bev)) > 0)
	{
		/* the client stopped writing but may still read its answer */
		bufferevent_disable(bev, EV_READ);
		return;
	}
	if (events & BEV_EVENT_TIMEOUT)
		log_debug("closing control connection: client idle for %d s", CONTROL_IDLE_SECONDS);
	else if (events & BEV_EVENT_ERROR)
		log_debug("closing control connection: %s",
				  evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		connection_close(conn);
}

static void
accept_connection(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *address,
				  int socklen, void *arg)
{
	ControlServer *server = arg;
	ControlConnection *conn = NULL;
	struct timeval idle = {CONTROL_IDLE_SECONDS, 0};

	conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
	{
		log_error("out of memory");
		evutil_closesocket(fd);
		return;
	}
	conn->server = server;
	conn->bev = bufferevent_socket_new(server->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (conn->bev == NULL)
	{
		log_error("could not set up control connection");
		evutil_closesocket(fd);
		free(conn);
		return;
	}
	bufferevent_setcb(conn->bev, connection_read, connection_written, connection_event, conn);
	bufferevent_set_timeouts(conn->bev, &idle, &idle);
	if (bufferevent_enable(conn->bev, EV_READ) != 0)
	{
		log_error("could not set up control connection");
		bufferevent_free(conn->bev);
		free(conn);
		return;
	}
	conn->next = server->connections;
	server->connections = conn;
}

static void
accept_error(struct evconnlistener *listener, void *arg)
{
	ControlServer *server = arg;

	/* e.g. EMFILE: the listener stays up and the next accept may well succeed */
	log_warning("could not accept control connection on \"%s\": %s", server->path,
				evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/*
 * Binds with a umask that leaves only the owner's bits, so the socket never exists with
 * wider permissions, not even between bind and chmod. umask is per process: a file another
 * thread creates in this instant gets 0600 at most, which errs on the safe side.
 */
static int
bind_socket(int fd, const struct sockaddr_un *address)
{
	mode_t old_mask = umask(0177);
	int result = bind(fd, (const struct sockaddr *) address, sizeof(*address));
	int saved_errno = errno;

	umask(old_mask);
	errno = saved_errno;
	return result;
}

/* The socket file exists: take it over if its agent is gone, refuse if one answers. */
static bool
replace_stale_socket(const struct sockaddr_un *address)
{
	struct stat st;
	int probe = -1;
	bool ok = false;

	if (lstat(address->sun_path, &st) != 0)
	{
		if (errno == ENOENT)
			return true;        /* gone meanwhile: just bind again */
		log_error("could not stat control socket \"%s\": %m", address->sun_path);
		return false;
	}
	if (!S_ISSOCK(st.st_mode))
	{
		log_error("\"%s\" exists and is not a socket", address->sun_path);
		log_hint("Remove it; switchyard creates its control socket there.");
		return false;
	}
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0)
	{
		log_error("could not create socket: %m");
		goto cleanup;
	}
	if (connect(probe, (const struct sockaddr *) address, sizeof(*address)) == 0)
	{
		log_error("another agent is listening on control socket \"%s\"", address->sun_path);
		log_hint("Stop it with \"switchyard stop\", or use another --state-dir.");
		goto cleanup;
	}
	if (errno != ECONNREFUSED && errno != ENOENT)
	{
		log_error("could not check control socket \"%s\": %m", address->sun_path);
		goto cleanup;
	}
	log_info("removing stale control socket \"%s\"", address->sun_path);
	if (unlink(address->sun_path) != 0 && errno != ENOENT)
	{
		log_error("could not remove stale control socket \"%s\": %m", address->sun_path);
		goto cleanup;
	}
	ok = true;

cleanup:
	if (probe >= 0)
		close(probe);
	return ok;
}

bool
control_server_start(struct event_base *base, const char *state_dir, ControlHandler handler,
					 void *arg, ControlServer **out)
{
	ControlServer *server = NULL;
	struct sockaddr_un address;
	int fd = -1;
	bool bound = false;
	bool ok = false;

	*out = NULL;
	if (!socket_address(state_dir, &address))
		goto cleanup;
	server = calloc(1, sizeof(*server));
	if (server == NULL)
	{
		log_error("out of memory");
		goto cleanup;
	}
	server->base = base;
	server->handler = handler;
	server->arg = arg;
	memcpy(server->path, address.sun_path, sizeof(server->path));
	event_assign(&server->reap_event, base, -1, 0, reap_connections, server);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
	{
		log_error("could not create control socket: %m");
		goto cleanup;
	}
	if (bind_socket(fd, &address) != 0)
	{
		if (errno != EADDRINUSE)
		{
			log_error("could not bind control socket \"%s\": %m", address.sun_path);
			goto cleanup;
		}
		if (!replace_stale_socket(&address))
			goto cleanup;
		if (bind_socket(fd, &address) != 0)
		{
			log_error("could not bind control socket \"%s\": %m", address.sun_path);
			goto cleanup;
		}
	}
	bound = true;
	/* belt and braces: the umask already gave 0600 */
	if (chmod(address.sun_path, 0600) != 0)
	{
		log_error("could not set permissions of control socket \"%s\": %m", address.sun_path);
		goto cleanup;
	}
	server->listener = evconnlistener_new(base, accept_connection, server,
										  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
										  CONTROL_BACKLOG, fd);
	if (server->listener == NULL)
	{
		log_error("could not listen on control socket \"%s\": %m", address.sun_path);
		goto cleanup;
	}
	fd = -1;                    /* the listener owns it */
	evconnlistener_set_error_cb(server->listener, accept_error);
	log_debug("control socket listening on \"%s\"", address.sun_path);
	*out = server;
	server = NULL;
	ok = true;

cleanup:
	if (fd >= 0)
		close(fd);
	if (server != NULL)
	{
		if (bound)
			unlink(server->path);
		free(server);
	}
	return ok;
}

/*
 * The agent usually frees the server right after answering STOP, before the loop has
 * written the answer: push it out now. It is small and the socket is local, so one
 * non-blocking send takes it. (Not evbuffer_write: the bufferevent keeps the front of its
 * output frozen, and send can say MSG_NOSIGNAL.)
 */
static void
flush_answer(ControlConnection *conn)
{
	struct evbuffer *output = bufferevent_get_output(conn->bev);
	size_t length = evbuffer_get_length(output);
	unsigned char *data;

	if (length == 0)
		return;
	data = evbuffer_pullup(output, -1);
	if (data != NULL &&
		send(bufferevent_getfd(conn->bev), data, length, MSG_NOSIGNAL | MSG_DONTWAIT) !=
		(ssize_t) length)
		log_warning("could not deliver the last control answer");
}

void
control_server_free(ControlServer *server)
{
	if (server == NULL)
		return;
	event_del(&server->reap_event);
	while (server->connections != NULL)
	{
		ControlConnection *conn = server->connections;
		evutil_socket_t fd = bufferevent_getfd(conn->bev);

		if (conn->answered && !conn->closing)
			flush_answer(conn);
		/*
		 * Once the loop has stopped, libevent closes the descriptor only when the base is
		 * freed: hang up now so the client is not left waiting.
		 */
		if (fd >= 0)
			shutdown(fd, SHUT_RDWR);
		server->connections = conn->next;
		bufferevent_free(conn->bev);
		free(conn);
	}
	if (server->listener != NULL)
	{
		evconnlistener_free(server->listener);
		if (unlink(server->path) != 0 && errno != ENOENT)
			log_warning("could not remove control socket \"%s\": %m", server->path);
	}
	free(server);
}

/* ---- client ---------------------------------------------------------------------------- */

static bool
send_all(int fd, const uint8_t *data, size_t length, const char *path)
{
	while (length > 0)
	{
		ssize_t sent = send(fd, data, length, MSG_NOSIGNAL);

		if (sent < 0)
		{
			if (errno == EINTR)
				continue;
			log_error("could not send to control socket \"%s\": %m", path);
			return false;
		}
		data += sent;
		length -= (size_t) sent;
	}
	return true;
}

/* Reads exactly length bytes before the deadline; logs what went wrong. */
static bool
receive_all(int fd, uint8_t *data, size_t length, int64_t deadline, int timeout_ms,
			const char *path)
{
	while (length > 0)
	{
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - monotonic_ms();
		ssize_t got;
		int ready;

		if (left <= 0)
		{
			log_error("the agent did not answer on \"%s\" within %d ms", path, timeout_ms);
			return false;
		}
		ready = poll(&pfd, 1, (int) left);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready < 0)
		{
			log_error("could not wait for control socket \"%s\": %m", path);
			return false;
		}
		if (ready == 0)
			continue;           /* the deadline check above reports it */
		got = recv(fd, data, length, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
		{
			log_error("could not receive from control socket \"%s\": %m", path);
			return false;
		}
		if (got == 0)
		{
			log_error("the agent closed the control connection on \"%s\" without answering", path);
			return false;
		}
		data += got;
		length -= (size_t) got;
	}
	return true;
}

static bool
is_no_agent_error(int error)
{
	return error == ENOENT || error == ENOTDIR || error == ECONNREFUSED;
}

bool
control_request(const char *state_dir, ControlRequest__Command command, int timeout_ms,
				ControlResponse **out, bool *no_agent)
{
	return control_request_lsn(state_dir, command, 0, timeout_ms, out, no_agent);
}

bool
control_request_lsn(const char *state_dir, ControlRequest__Command command, uint64_t lsn,
					int timeout_ms, ControlResponse **out, bool *no_agent)
{
	ControlRequest request = CONTROL_REQUEST__INIT;

	request.command = command;
	request.lsn = lsn;
	return control_send(state_dir, &request, timeout_ms, out, no_agent);
}

bool
control_send(const char *state_dir, const ControlRequest *request, int timeout_ms,
			 ControlResponse **out, bool *no_agent)
{
	struct sockaddr_un address;
	struct timeval send_timeout = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	int64_t deadline = monotonic_ms() + timeout_ms;
	uint8_t *frame = NULL;
	uint8_t header[4];
	uint8_t *body = NULL;
	size_t length;
	uint32_t response_length;
	int fd = -1;
	bool ok = false;

	*out = NULL;
	*no_agent = false;
	if (!socket_address(state_dir, &address))
		goto cleanup;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
	{
		log_error("could not create socket: %m");
		goto cleanup;
	}
	/* bounds the connect and the send, which block when the agent is stuck */
	(void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
	if (connect(fd, (const struct sockaddr *) &address, sizeof(address)) != 0)
	{
		if (is_no_agent_error(errno))
			*no_agent = true;
		else if (errno == EACCES)
		{
			log_error("permission denied for control socket \"%s\"", address.sun_path);
			log_hint("Run switchyard as the user that runs the agent.");
		}
		else
			log_error("could not connect to control socket \"%s\": %m", address.sun_path);
		goto cleanup;
	}

	length = control_request__get_packed_size(request);
	frame = malloc(sizeof(header) + length);
	if (frame == NULL)
	{
		log_error("out of memory");
		goto cleanup;
	}
	frame[0] = (uint8_t) (length >> 24);
	frame[1] = (uint8_t) (length >> 16);
	frame[2] = (uint8_t) (length >> 8);
	frame[3] = (uint8_t) length;
	control_request__pack(request, frame + sizeof(header));
	if (!send_all(fd, frame, sizeof(header) + length, address.sun_path))
		goto cleanup;

	if (!receive_all(fd, header, sizeof(header), deadline, timeout_ms, address.sun_path))
		goto cleanup;
	response_length = (uint32_t) header[0] << 24 | (uint32_t) header[1] << 16 |
		(uint32_t) header[2] << 8 | header[3];
	if (response_length > CONTROL_MAX_RESPONSE)
	{
		log_error("control response of %u bytes on \"%s\" exceeds the limit of %d", response_length,
				  address.sun_path, CONTROL_MAX_RESPONSE);
		goto cleanup;
	}
	body = malloc(response_length > 0 ? response_length : 1);
	if (body == NULL)
	{
		log_error("out of memory");
		goto cleanup;
	}
	if (!receive_all(fd, body, response_length, deadline, timeout_ms, address.sun_path))
		goto cleanup;
	*out = control_response__unpack(NULL, response_length, body);
	if (*out == NULL)
	{
		log_error("could not parse the agent's answer on \"%s\"", address.sun_path);
		goto cleanup;
	}
	ok = true;

cleanup:
	if (fd >= 0)
		close(fd);
	free(frame);
	free(body);
	return ok;
}

void
control_response_free(ControlResponse *response)
{
	if (response != NULL)
		control_response__free_unpacked(response, NULL);
}

bool
control_probe(const char *state_dir)
{
	struct sockaddr_un address;
	int fd;
	bool listening;

	memset(&address, 0, sizeof(address));
	address.sun_family = AF_UNIX;
	if (snprintf(address.sun_path, sizeof(address.sun_path), "%s/%s", state_dir,
				 CONTROL_SOCKET_NAME) >= (int) sizeof(address.sun_path))
		return false;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	listening = connect(fd, (const struct sockaddr *) &address, sizeof(address)) == 0;
	close(fd);
	return listening;
}
