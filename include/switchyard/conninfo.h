/*
 * Connections to the source and target: libpq conninfo strings as the user gave them (keyword/
 * value or URI, PG* variables and .pgpass apply), with the session settings the agent needs,
 * and a form safe to show (no password).
 */
#ifndef SWITCHYARD_CONNINFO_H
#define SWITCHYARD_CONNINFO_H

#include <stdbool.h>

#include <libpq-fe.h>

typedef enum ConnKind
{
	CONN_NORMAL,       /* queries */
	CONN_REPLICATION   /* replication=database: the walsender protocol */
} ConnKind;

/*
 * Connects (blocking) with application_name "switchyard-<role>" and settings that make text
 * values round-trip exactly (DateStyle ISO, IntervalStyle postgres, extra_float_digits 3,
 * TimeZone UTC, bytea_output hex). On failure logs one error naming `what` ("source",
 * "target") and the server's message, and returns NULL.
 */
PGconn *conninfo_connect(const char *conninfo, ConnKind kind, const char *role, const char *what);
/*
 * The server's notices (a WARNING at its shutdown, a NOTICE of some DDL) go to the agent's
 * log with a time and thread, not raw to stderr; what ("source", "target") must be static.
 * conninfo_connect does it for its connections.
 */
void conninfo_route_notices(PGconn *conn, const char *what);

/*
 * Whether conninfo parses as libpq reads it when connecting (a bare word is a database name);
 * when not, *why holds libpq's parse error as one line. Never echoes the string itself: it may
 * hold a password.
 */
bool conninfo_check(const char *conninfo, char *why, size_t whylen) __attribute__((warn_unused_result));

/* The conninfo with any password removed, for logs and status; caller frees. */
char *conninfo_redact(const char *conninfo);

/* The current query's first result; later ones (after an error, say) are freed. NULL if none. */
PGresult *conninfo_first_result(PGconn *conn);

/* The server's last error as one line (no trailing newline), valid until the next call on conn. */
const char *conninfo_error(PGconn *conn);
/* The same for a result. */
const char *conninfo_result_error(const PGresult *result);

#endif
