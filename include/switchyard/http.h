/*
 * The agent's HTTP server (evhttp on the agent's event loop, `run --http ADDR:PORT`):
 * /metrics in the Prometheus text format, /api/status (the status document plus the latest
 * parity results), /api/parity (those results and the reports behind them) and / (the parity
 * dashboard). It only reads: the agent's status through a callback, parity results from
 * <state-dir>/parity/latest.json, which `switchyard verify` writes.
 */
#ifndef SWITCHYARD_HTTP_H
#define SWITCHYARD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "switchyard/lsn.h"
#include "switchyard/status.h"

typedef struct HttpServer HttpServer;

/*
 * The agent builds its status on its own stack (the strings point into stats that live only
 * there) and hands it to sink before returning; the server renders it inside sink.
 */
typedef void (*HttpStatusSink)(const AgentStatus *status, void *sink_arg);
typedef void (*HttpStatusFn)(void *arg, HttpStatusSink sink, void *sink_arg);

/* Rows applied to one table since the agent started (the applier's per-table counters). */
typedef struct HttpTableCount
{
	const char *table;          /* schema.name as format('%I.%I') shows it */
	uint64_t inserted;
	uint64_t updated;
	uint64_t deleted;
	uint64_t truncated;         /* TRUNCATEs of the table */
} HttpTableCount;

/*
 * Optional: fills up to max entries of out, returns how many there are (may be more than
 * max: the server asks again with room for all). Strings must stay valid until the next call.
 */
typedef size_t (*HttpTableCountsFn)(void *arg, HttpTableCount *out, size_t max);

typedef struct HttpOptions
{
	struct event_base *base;
	const char *address;        /* ADDR:PORT; an empty ADDR means 127.0.0.1 */
	const char *token;          /* NULL: no authorization; required off loopback */
	const char *state_dir;      /* parity results in <state_dir>/parity/ */
	HttpStatusFn status;
	void *status_arg;
	HttpTableCountsFn table_counts;  /* NULL: no per-table series */
	void *table_counts_arg;
} HttpOptions;

/* Binds and serves on options->base. Logs and returns false when it cannot. */
bool http_server_start(const HttpOptions *options, HttpServer **out) __attribute__((warn_unused_result));
/* Stops listening, drops open connections. Accepts NULL. */
void http_server_free(HttpServer *server);

/* ---- building blocks (pure, unit-tested) ------------------------------------------------ */

/*
 * Splits "ADDR:PORT" (ADDR may be a name, an IPv4 address, [IPv6] or empty for 127.0.0.1)
 * into host (without brackets) and port.
 */
bool http_parse_address(const char *text, char *host, size_t host_size, uint16_t *port)
	__attribute__((warn_unused_result));
/*
 * True when ADDR:PORT binds to loopback only: 127.0.0.0/8, ::1, "localhost" or an empty
 * ADDR. Anything else (0.0.0.0, [::], a host name, a LAN address) is reachable from outside.
 */
bool http_address_is_loopback(const char *text);
/*
 * Checks an Authorization header against the token, in time independent of the token's
 * content: "Bearer TOKEN", or "Basic" with TOKEN as the password (any user name) so that a
 * browser can open the dashboard through its login prompt.
 */
bool http_authorized(const char *header, const char *token);
/* Standard base64 into out (NUL-terminated); false on malformed input or no room. */
bool http_base64_decode(const char *text, char *out, size_t out_size) __attribute__((warn_unused_result));

/* Appends a label value escaped for the exposition format (\\, \", \n; bad UTF-8 as U+FFFD). */
void http_append_label_value(struct evbuffer *out, const char *value);

/* The latest parity result of one table, from <state-dir>/parity/latest.json. */
typedef struct HttpParityTable
{
	char *table;                /* schema.name as verify names it */
	char *verified_at;          /* ISO 8601 UTC, as written */
	int64_t verified_unix;      /* 0: unreadable time */
	Lsn lsn;
	bool common_point;          /* compared at one point of the stream (agent held) */
	bool equal;
	int64_t rows_compared;
	int64_t missing;
	int64_t extra;
	int64_t changed;
	int64_t schema_issues;
	int64_t repaired;           /* -1: not a repair run */
	char *report;               /* file name of the full report in the parity directory, or NULL */
} HttpParityTable;

typedef struct HttpParity
{
	char *updated_at;
	HttpParityTable *tables;    /* sorted by table name */
	size_t ntables;
} HttpParity;

/* Parses latest.json. A document of another shape is an error; no tables is not. */
bool http_parity_parse(const char *text, HttpParity **out) __attribute__((warn_unused_result));
void http_parity_free(HttpParity *parity);

/* What the dashboard's checklist and switchyard_cutover_* show. */
#define HTTP_READY_LAG_SECONDS 10.0

typedef enum HttpCheck
{
	HTTP_CHECK_UNKNOWN = 0,     /* nothing to judge by (e.g. never verified) */
	HTTP_CHECK_OK,
	HTTP_CHECK_FAILED
} HttpCheck;

typedef struct HttpReadiness
{
	HttpCheck copy_done;        /* the initial copy has finished */
	HttpCheck lag;              /* applying, connected, lag under HTTP_READY_LAG_SECONDS */
	HttpCheck parity;           /* every table of the latest verify was equal */
	HttpCheck guard;            /* no foreign session on the target (unknown: not reported) */
	bool ready;                 /* every check OK */
} HttpReadiness;

void http_readiness(const AgentStatus *status, const HttpParity *parity, HttpReadiness *out);

/*
 * The /metrics document. parity and counts may be NULL/0; now_unix dates the parity results.
 * Returns false on out of memory.
 */
bool http_render_metrics(struct evbuffer *out, const AgentStatus *status, const HttpParity *parity,
						 const HttpTableCount *counts, size_t ncounts, int64_t now_unix)
	__attribute__((warn_unused_result));
/* The /api/status document: status_to_json's members plus "parity" and "readiness". */
char *http_render_status(const AgentStatus *status, const HttpParity *parity, int64_t now_unix);

/* The dashboard page (agent/dashboard.html, made into a C array at build time). */
extern const char http_dashboard_html[];
extern const size_t http_dashboard_html_size;

#endif
