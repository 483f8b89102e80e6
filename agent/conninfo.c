/*
 * Connections to the source and target, with the session settings that keep text values
 * exact, and a password-free form of the connection string for logs and status.
 */
#include "switchyard/conninfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchyard/log.h"

#define SESSION_OPTIONS \
	"-c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3 " \
	"-c timezone=UTC -c bytea_output=hex"

/* A server's NOTICE or WARNING, into the agent's log with its time and thread. */
static void
conninfo_on_notice(void *arg, const PGresult *res)
{
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	if (message == NULL)
		return;
	if (severity != NULL && strcmp(severity, "WARNING") == 0)
		log_warning("the %s server says: %s", (const char *) arg, message);
	else
		log_info("the %s server says: %s", (const char *) arg, message);
}

void
conninfo_route_notices(PGconn *conn, const char *what)
{
	if (conn != NULL)
		PQsetNoticeReceiver(conn, conninfo_on_notice, (void *) what);
}

PGconn *
conninfo_connect(const char *conninfo, ConnKind kind, const char *role, const char *what)
{
	char application_name[64];
	const char *keywords[6];
	const char *values[6];
	int n = 0;
	PGconn *conn = NULL;

	snprintf(application_name, sizeof(application_name), "switchyard-%s", role);
	/* expand_dbname: the first "dbname" value is the user's whole conninfo; later keys win. */
	keywords[n] = "dbname";
	values[n++] = conninfo != NULL ? conninfo : "";
	keywords[n] = "application_name";
	values[n++] = application_name;
	keywords[n] = "options";
	values[n++] = SESSION_OPTIONS;
	if (kind == CONN_REPLICATION)
	{
		keywords[n] = "replication";
		values[n++] = "database";
	}
	keywords[n] = NULL;
	values[n] = NULL;

	conn = PQconnectdbParams(keywords, values, 1);
	if (conn == NULL)
	{
		log_error("could not connect to the %s: out of memory", what);
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK)
	{
		char *shown = conninfo_redact(conninfo);

		log_error("could not connect to the %s: %s", what, conninfo_error(conn));
		log_detail("connection string: %s", shown != NULL ? shown : "(invalid)");
		free(shown);
		PQfinish(conn);
		return NULL;
	}
	conninfo_route_notices(conn, what);
	return conn;
}

char *
conninfo_redact(const char *conninfo)
{
	PQconninfoOption *options = NULL;
	char *errmsg = NULL;
	char *out = NULL;
	size_t cap = 256;
	size_t used = 0;

	options = PQconninfoParse(conninfo != NULL ? conninfo : "", &errmsg);
	if (options == NULL)
	{
		PQfreemem(errmsg);
		return strdup("(unparsable connection string)");
	}
	out = malloc(cap);
	if (out == NULL)
		goto cleanup;
	out[0] = '\0';
	for (PQconninfoOption *opt = options; opt->keyword != NULL; opt++)
	{
		size_t need;

		if (opt->val == NULL || opt->val[0] == '\0' || strcmp(opt->keyword, "password") == 0)
			continue;
		need = strlen(opt->keyword) + 2 * strlen(opt->val) + 6;
		while (used + need >= cap)
		{
			char *bigger = realloc(out, cap * 2);

			if (bigger == NULL)
			{
				free(out);
				out = NULL;
				goto cleanup;
			}
			out = bigger;
			cap *= 2;
		}
		used += (size_t) sprintf(out + used, "%s%s='", used > 0 ? " " : "", opt->keyword);
		for (const char *p = opt->val; *p; p++)
		{
			if (*p == '\'' || *p == '\\')
				out[used++] = '\\';
			out[used++] = *p;
		}
		out[used++] = '\'';
		out[used] = '\0';
	}
cleanup:
	PQconninfoFree(options);
	return out;
}

static const char *
conninfo_one_line(const char *message)
{
	static _Thread_local char line[1024];
	size_t len;

	snprintf(line, sizeof(line), "%s", message != NULL && message[0] ? message : "unknown error");
	len = strlen(line);
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == ' '))
		line[--len] = '\0';
	/* libpq joins multi-line messages with newlines; a log line must stay one line */
	for (char *p = line; *p; p++)
		if (*p == '\n')
			*p = ' ';
	return line;
}

const char *
conninfo_error(PGconn *conn)
{
	return conninfo_one_line(PQerrorMessage(conn));
}

PGresult *
conninfo_first_result(PGconn *conn)
{
	PGresult *first = NULL;
	PGresult *next;

	while ((next = PQgetResult(conn)) != NULL)
	{
		if (first == NULL)
			first = next;
		else
			PQclear(next);
	}
	return first;
}

const char *
conninfo_result_error(const PGresult *result)
{
	return conninfo_one_line(PQresultErrorMessage(result));
}

/*
 * libpq quotes a malformed URI whole in its message, password included: every copy of the
 * URI's password (postgresql://user:PASSWORD@host) in message becomes "***".
 */
static void
conninfo_hide_uri_password(const char *conninfo, char *message)
{
	const char *start = strstr(conninfo, "://");
	const char *at;
	const char *colon;
	const char *end;
	size_t len;

	if (start == NULL)
		return;
	start += 3;
	end = start + strcspn(start, "/?");
	at = NULL;
	for (const char *p = start; p < end; p++)
		if (*p == '@')
			at = p;
	if (at == NULL)
		return;
	colon = memchr(start, ':', (size_t) (at - start));
	if (colon == NULL || colon + 1 == at)
		return;
	len = (size_t) (at - colon - 1);
	for (char *p = message; *p != '\0';)
	{
		if (strncmp(p, colon + 1, len) != 0)
			p++;
		else if (len >= 3)
		{
			/* shorter than what it hides: the message only shrinks */
			memcpy(p, "***", 3);
			memmove(p + 3, p + len, strlen(p + len) + 1);
			p += 3;
		}
		else
		{
			memset(p, '*', len);
			p += len;
		}
	}
}

bool
conninfo_check(const char *conninfo, char *why, size_t whylen)
{
	PQconninfoOption *options = NULL;
	char *errmsg = NULL;

	/* libpq's own rule for expand_dbname: anything else is a database name */
	if (strchr(conninfo, '=') == NULL && strncmp(conninfo, "postgresql://", 13) != 0 &&
		strncmp(conninfo, "postgres://", 11) != 0)
		return true;
	options = PQconninfoParse(conninfo, &errmsg);
	if (options != NULL)
	{
		PQconninfoFree(options);
		return true;
	}
	snprintf(why, whylen, "%s", conninfo_one_line(errmsg != NULL ? errmsg : "out of memory"));
	PQfreemem(errmsg);
	conninfo_hide_uri_password(conninfo, why);
	return false;
}
