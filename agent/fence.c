/*
 * The read-only fence (cutover --fence read-only): without PgBouncer to hold the clients,
 * the application roles are made read-only on the source and their sessions ended, so what
 * reconnects can only read. The cutover records each role's setting before, and a rollback
 * (in the agent, or at its restart) gives exactly that back.
 */
#include "switchyard/fence.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchyard/apply_sql.h"
#include "switchyard/conninfo.h"
#include "switchyard/text_array.h"

static void
fence_why(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
fence_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(why, whylen, fmt, args);
	va_end(args);
}

/* The role names as one text[] parameter. */
static char *
fence_roles_array(const FenceRole *roles, int nroles)
{
	char **names = calloc((size_t) nroles + 1, sizeof(char *));
	char *array;

	if (names == NULL)
		return NULL;
	for (int i = 0; i < nroles; i++)
		names[i] = roles[i].role;
	array = text_array_from_list(names);
	free(names);
	return array;
}

char *
fence_role_statement(const char *role, bool read_only, const char *previous)
{
	char *ident = apply_sql_quote_identifier(role);
	char *literal = NULL;
	char *sql = NULL;
	size_t len;

	if (ident == NULL)
		return NULL;
	if (read_only)
		previous = "on";
	if (previous != NULL)
	{
		/* standard_conforming_strings is on since 9.1: only the quotes are doubled */
		literal = malloc(2 * strlen(previous) + 3);
		if (literal != NULL)
		{
			char *p = literal;

			*p++ = '\'';
			for (const char *q = previous; *q; q++)
			{
				if (*q == '\'')
					*p++ = '\'';
				*p++ = *q;
			}
			*p++ = '\'';
			*p = '\0';
		}
		else
			goto cleanup;
	}
	len = strlen(ident) + (literal != NULL ? strlen(literal) : 0) + 64;
	sql = malloc(len);
	if (sql == NULL)
		goto cleanup;
	if (literal != NULL)
		snprintf(sql, len, "ALTER ROLE %s SET " FENCE_READ_ONLY_SETTING " = %s", ident, literal);
	else
		snprintf(sql, len, "ALTER ROLE %s RESET " FENCE_READ_ONLY_SETTING, ident);
cleanup:
	free(ident);
	free(literal);
	return sql;
}

bool
fence_read_only_check(PGconn *source, FenceRole *roles, int nroles, char *why, size_t whylen)
{
	char *array = fence_roles_array(roles, nroles);
	const char *params[1];
	PGresult *res = NULL;
	bool ok = false;

	if (array == NULL)
	{
		fence_why(why, whylen, "out of memory");
		return false;
	}
	params[0] = array;
	/* the role's own setting (all databases), and one for this database that would win over it */
	res = PQexecParams(source,
					   "SELECT w.name, r.oid IS NOT NULL, w.name = current_user, "
					   "  (SELECT substr(c, strpos(c, '=') + 1) FROM pg_db_role_setting s, unnest(s.setconfig) c "
					   "    WHERE s.setrole = r.oid AND s.setdatabase = 0 "
					   "      AND split_part(c, '=', 1) = '" FENCE_READ_ONLY_SETTING "'), "
					   "  EXISTS (SELECT FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase, "
					   "           unnest(s.setconfig) c "
					   "    WHERE s.setrole = r.oid AND d.datname = current_database() "
					   "      AND split_part(c, '=', 1) = '" FENCE_READ_ONLY_SETTING "') "
					   "FROM unnest($1::text[]) WITH ORDINALITY AS w(name, n) "
					   "LEFT JOIN pg_roles r ON r.rolname = w.name ORDER BY w.n",
					   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != nroles)
	{
		fence_why(why, whylen, "could not read the application roles' settings on the source: %s",
				  conninfo_result_error(res));
		goto cleanup;
	}
	for (int i = 0; i < nroles; i++)
	{
		if (PQgetvalue(res, i, 1)[0] != 't')
		{
			fence_why(why, whylen, "application role \"%s\" does not exist on the source: check --app-roles",
					  roles[i].role);
			goto cleanup;
		}
		if (PQgetvalue(res, i, 2)[0] == 't')
		{
			fence_why(why, whylen, "role \"%s\" is the one the agent connects to the source as: the read-only "
					  "fence would stop the agent too; give the application a role of its own", roles[i].role);
			goto cleanup;
		}
		if (PQgetvalue(res, i, 4)[0] == 't')
		{
			fence_why(why, whylen, "role \"%s\" sets " FENCE_READ_ONLY_SETTING " for the source's database, which "
					  "overrides the fence: ALTER ROLE ... IN DATABASE ... RESET " FENCE_READ_ONLY_SETTING " first",
					  roles[i].role);
			goto cleanup;
		}
		free(roles[i].previous);
		roles[i].previous = PQgetisnull(res, i, 3) ? NULL : strdup(PQgetvalue(res, i, 3));
		if (!PQgetisnull(res, i, 3) && roles[i].previous == NULL)
		{
			fence_why(why, whylen, "out of memory");
			goto cleanup;
		}
	}
	ok = true;
cleanup:
	PQclear(res);
	free(array);
	return ok;
}

bool
fence_source_clock(PGconn *source, char *out, size_t outlen, char *why, size_t whylen)
{
	PGresult *res = PQexec(source, "SELECT clock_timestamp()::text");
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

	if (ok)
		snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
	else
		fence_why(why, whylen, "could not read the source's clock: %s", conninfo_result_error(res));
	PQclear(res);
	return ok;
}

static bool
fence_exec(PGconn *conn, const char *sql, char *why, size_t whylen)
{
	PGresult *res = PQexec(conn, sql);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
		fence_why(why, whylen, "%s on the source failed: %s", sql, conninfo_result_error(res));
	PQclear(res);
	return ok;
}

/* Every role's setting in one transaction: all read-only, or all back, never half. */
static bool
fence_set_roles(PGconn *source, const FenceRole *roles, int nroles, bool read_only, char *why, size_t whylen)
{
	bool ok = fence_exec(source, "BEGIN", why, whylen);

	for (int i = 0; ok && i < nroles; i++)
	{
		char *sql = fence_role_statement(roles[i].role, read_only, roles[i].previous);

		if (sql == NULL)
		{
			fence_why(why, whylen, "out of memory");
			ok = false;
		}
		else
			ok = fence_exec(source, sql, why, whylen);
		free(sql);
	}
	if (ok)
		return fence_exec(source, "COMMIT", why, whylen);
	PQclear(PQexec(source, "ROLLBACK"));
	return false;
}

/*
 * Ends the roles' sessions on this database (begun since `since`, when given), waiting up
 * to a second for each to go.
 */
static bool
fence_end_sessions(PGconn *source, const FenceRole *roles, int nroles, const char *since, int *ended, char *why,
				   size_t whylen)
{
	char *array = fence_roles_array(roles, nroles);
	const char *params[2];
	PGresult *res;
	bool ok = true;

	*ended = 0;
	if (array == NULL)
	{
		fence_why(why, whylen, "out of memory");
		return false;
	}
	params[0] = array;
	params[1] = since;
	res = PQexecParams(source,
					   "SELECT pid, usename, pg_terminate_backend(pid, 1000) FROM pg_stat_activity "
					   "WHERE usename = ANY($1::text[]) AND datname = current_database() "
					   "  AND pid <> pg_backend_pid() AND ($2::timestamptz IS NULL OR backend_start >= $2::timestamptz)",
					   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fence_why(why, whylen, "could not end the application roles' sessions on the source: %s",
				  conninfo_result_error(res));
		ok = false;
	}
	for (int i = 0; ok && i < PQntuples(res); i++)
	{
		if (PQgetvalue(res, i, 2)[0] != 't')
		{
			fence_why(why, whylen, "session %s of role \"%s\" on the source did not end within 1 s",
					  PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
			ok = false;
		}
		else
			(*ended)++;
	}
	PQclear(res);
	free(array);
	return ok;
}

bool
fence_read_only_apply(PGconn *source, const FenceRole *roles, int nroles, int *ended, char *why, size_t whylen)
{
	*ended = 0;
	return fence_set_roles(source, roles, nroles, true, why, whylen) &&
		fence_end_sessions(source, roles, nroles, NULL, ended, why, whylen);
}

bool
fence_read_only_restore(PGconn *source, const FenceRole *roles, int nroles, const char *since, int *ended,
						char *why, size_t whylen)
{
	*ended = 0;
	return fence_set_roles(source, roles, nroles, false, why, whylen) &&
		fence_end_sessions(source, roles, nroles, since != NULL && since[0] ? since : "-infinity", ended, why,
						   whylen);
}

void
fence_roles_free(FenceRole *roles, int nroles)
{
	if (roles == NULL)
		return;
	for (int i = 0; i < nroles; i++)
	{
		free(roles[i].role);
		free(roles[i].previous);
	}
	free(roles);
}
