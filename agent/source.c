/*
 * Source preparation: refuse early, naming the object and the fix, when logical replication
 * cannot carry the data; then create the publication and the slot (idempotently) that the
 * receiver streams from.
 */
#include "switchyard/source.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchyard/conninfo.h"
#include "switchyard/log.h"

/* Patterns as one newline-separated parameter; '*' and '?' are the user's wildcards. */
char *
source_patterns_param(char *const *tables)
{
	size_t cap = 1;
	char *out = NULL;
	size_t used = 0;

	if (tables == NULL || tables[0] == NULL)
		return NULL;
	for (char *const *t = tables; *t; t++)
		cap += 2 * strlen(*t) + 1;
	out = malloc(cap);
	if (out == NULL)
		return NULL;
	for (char *const *t = tables; *t; t++)
	{
		if (used > 0)
			out[used++] = '\n';
		for (const char *p = *t; *p; p++)
		{
			if (*p == '*')
				out[used++] = '%';
			else if (*p == '?')
				out[used++] = '_';
			else
			{
				if (*p == '%' || *p == '_' || *p == '\\')
					out[used++] = '\\';
				out[used++] = *p;
			}
		}
	}
	out[used] = '\0';
	return out;
}

#define SOURCE_TABLES_SQL \
	"SELECT n.nspname, c.relname, c.relkind::text, c.relreplident::text, c.relpersistence::text, " \
	"       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), " \
	"       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident), " \
	"       has_table_privilege(c.oid, 'SELECT') " \
	"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " \
	"WHERE " SOURCE_TABLE_FILTER_SQL " " \
	"ORDER BY 1, 2"

static PGresult *
source_query_tables(PGconn *conn, char *const *tables)
{
	char *patterns = source_patterns_param(tables);
	const char *params[1] = {patterns};
	PGresult *res = PQexecParams(conn, SOURCE_TABLES_SQL, 1, NULL, params, NULL, NULL, 0);

	free(patterns);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_error("could not list the source tables: %s", conninfo_result_error(res));
		PQclear(res);
		return NULL;
	}
	return res;
}

static bool
source_check_settings(PGconn *conn)
{
	PGresult *res = PQexec(conn,
						   "SELECT current_setting('wal_level'), r.rolreplication OR r.rolsuper, "
						   "       current_user, current_setting('max_replication_slots')::int, "
						   "       current_setting('max_wal_senders')::int "
						   "FROM pg_roles r WHERE r.rolname = current_user");
	bool ok = true;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		log_error("could not read the source settings: %s", conninfo_result_error(res));
		PQclear(res);
		return false;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "logical") != 0)
	{
		log_error("source has wal_level = %s, logical replication needs wal_level = logical",
				  PQgetvalue(res, 0, 0));
		log_hint("run ALTER SYSTEM SET wal_level = logical on the source and restart it");
		ok = false;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
	{
		log_error("role \"%s\" on the source lacks the REPLICATION attribute", PQgetvalue(res, 0, 2));
		log_hint("run ALTER ROLE \"%s\" REPLICATION on the source, or connect as a role that has it",
				 PQgetvalue(res, 0, 2));
		ok = false;
	}
	if (atoi(PQgetvalue(res, 0, 3)) < 1 || atoi(PQgetvalue(res, 0, 4)) < 1)
	{
		log_error("source allows no replication slots or WAL senders "
				  "(max_replication_slots = %s, max_wal_senders = %s)",
				  PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4));
		log_hint("raise both settings on the source and restart it");
		ok = false;
	}
	PQclear(res);
	return ok;
}

/* What logical replication cannot carry is said at the start, not discovered at cutover. */
static void
source_warn_not_migrated(PGconn *conn)
{
	PGresult *res = PQexec(conn,
						   "SELECT 'materialized view ' || format('%I.%I', n.nspname, c.relname) "
						   "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
						   "WHERE c.relkind = 'm' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
						   "UNION ALL "
						   "SELECT count(*) || ' large objects' FROM pg_largeobject_metadata HAVING count(*) > 0");

	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		for (int i = 0; i < PQntuples(res); i++)
			log_warning("not migrated: %s (logical replication cannot carry it)", PQgetvalue(res, i, 0));
	PQclear(res);
}

bool
source_check(PGconn *conn, char *const *tables)
{
	PGresult *res = NULL;
	bool ok = source_check_settings(conn);
	int ntables;

	source_warn_not_migrated(conn);
	res = source_query_tables(conn, tables);
	if (res == NULL)
		return false;
	ntables = PQntuples(res);
	if (ntables == 0)
	{
		log_error("no table on the source matches the tables to migrate");
		log_hint("check --tables; patterns look like \"public.*\" or \"chat.messages\"");
		ok = false;
	}
	for (int i = 0; i < ntables; i++)
	{
		const char *nsp = PQgetvalue(res, i, 0);
		const char *rel = PQgetvalue(res, i, 1);
		char kind = PQgetvalue(res, i, 2)[0];
		char ident = PQgetvalue(res, i, 3)[0];
		bool has_pk = PQgetvalue(res, i, 5)[0] == 't';
		bool has_ri_index = PQgetvalue(res, i, 6)[0] == 't';

		if (PQgetvalue(res, i, 7)[0] != 't')
		{
			log_error("permission denied for table \"%s\".\"%s\" on the source", nsp, rel);
			log_hint("GRANT SELECT ON \"%s\".\"%s\" to the role switchyard connects as", nsp, rel);
			ok = false;
		}
		if (PQgetvalue(res, i, 4)[0] == 'u')
			log_warning("table \"%s\".\"%s\" is unlogged: logical replication cannot carry its changes, "
						"it is not migrated", nsp, rel);
		if (kind != 'r')
			continue;  /* a partitioned parent: its leaf partitions carry the changes */
		if (ident == 'n' || (ident == 'd' && !has_pk) || (ident == 'i' && !has_ri_index))
		{
			log_error("table \"%s\".\"%s\" has no replica identity: the source would reject its "
					  "UPDATE and DELETE once it is published", nsp, rel);
			log_hint("add a primary key, or run ALTER TABLE \"%s\".\"%s\" REPLICA IDENTITY FULL on the source",
					 nsp, rel);
			ok = false;
		}
	}
	PQclear(res);
	return ok;
}

static char *
source_quote(PGconn *conn, const char *name)
{
	char *quoted = PQescapeIdentifier(conn, name, strlen(name));

	if (quoted == NULL)
		log_error("could not quote identifier \"%s\": %s", name, conninfo_error(conn));
	return quoted;
}

static bool
source_publication_exists(PGconn *conn, const char *name, bool *exists)
{
	const char *params[1] = {name};
	PGresult *res = PQexecParams(conn, "SELECT 1 FROM pg_publication WHERE pubname = $1",
								 1, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_error("could not look up publication \"%s\" on the source: %s", name, conninfo_result_error(res));
		PQclear(res);
		return false;
	}
	*exists = PQntuples(res) > 0;
	PQclear(res);
	return true;
}

bool
source_ensure_publication(PGconn *conn, const char *name, char *const *tables)
{
	PGresult *res = NULL;
	PGresult *list = NULL;
	char *sql = NULL;
	char *quoted = NULL;
	size_t cap;
	size_t used;
	bool exists = false;
	bool ok = false;

	if (!source_publication_exists(conn, name, &exists))
		return false;
	if (exists)
		return true;
	quoted = source_quote(conn, name);
	if (quoted == NULL)
		return false;
	if (tables == NULL || tables[0] == NULL)
	{
		cap = strlen(quoted) + 64;
		sql = malloc(cap);
		if (sql == NULL)
			goto cleanup;
		snprintf(sql, cap, "CREATE PUBLICATION %s FOR ALL TABLES", quoted);
	}
	else
	{
		list = source_query_tables(conn, tables);
		if (list == NULL)
			goto cleanup;
		cap = strlen(quoted) + 64;
		for (int i = 0; i < PQntuples(list); i++)
			cap += 2 * (strlen(PQgetvalue(list, i, 0)) + strlen(PQgetvalue(list, i, 1))) + 8;
		sql = malloc(cap);
		if (sql == NULL)
			goto cleanup;
		used = (size_t) snprintf(sql, cap, "CREATE PUBLICATION %s FOR TABLE ", quoted);
		for (int i = 0; i < PQntuples(list); i++)
		{
			char *nsp = source_quote(conn, PQgetvalue(list, i, 0));
			char *rel = source_quote(conn, PQgetvalue(list, i, 1));

			if (nsp == NULL || rel == NULL)
			{
				PQfreemem(nsp);
				PQfreemem(rel);
				goto cleanup;
			}
			used += (size_t) snprintf(sql + used, cap - used, "%s%s.%s", i > 0 ? ", " : "", nsp, rel);
			PQfreemem(nsp);
			PQfreemem(rel);
		}
	}
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		log_error("could not create publication \"%s\" on the source: %s", name, conninfo_result_error(res));
		if (tables == NULL || tables[0] == NULL)
			log_hint("a publication FOR ALL TABLES needs a superuser; name the tables with --tables instead");
		goto cleanup;
	}
	log_info("created publication \"%s\" on the source", name);
	ok = true;
cleanup:
	PQclear(res);
	PQclear(list);
	PQfreemem(quoted);
	free(sql);
	return ok;
}

bool
source_ensure_slot(PGconn *repl, PGconn *conn, const char *name, bool *created, Lsn *consistent_point)
{
	const char *params[1] = {name};
	PGresult *res = NULL;
	char *quoted = NULL;
	char sql[256];
	bool ok = false;

	*created = false;
	res = PQexecParams(conn,
					   "SELECT coalesce(confirmed_flush_lsn, '0/0')::text, plugin, database = current_database() "
					   "FROM pg_replication_slots WHERE slot_name = $1",
					   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_error("could not look up replication slot \"%s\" on the source: %s", name, conninfo_result_error(res));
		goto cleanup;
	}
	if (PQntuples(res) == 1)
	{
		if (strcmp(PQgetvalue(res, 0, 1), "pgoutput") != 0 || PQgetvalue(res, 0, 2)[0] != 't')
		{
			log_error("replication slot \"%s\" on the source belongs to something else", name);
			log_hint("drop it, or use another --state-dir");
			goto cleanup;
		}
		if (!lsn_parse(PQgetvalue(res, 0, 0), consistent_point))
			*consistent_point = LSN_INVALID;
		ok = true;
		goto cleanup;
	}
	PQclear(res);
	quoted = source_quote(conn, name);
	if (quoted == NULL)
		goto cleanup;
	snprintf(sql, sizeof(sql), "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput (SNAPSHOT 'nothing')", quoted);
	res = PQexec(repl, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		log_error("could not create replication slot \"%s\" on the source: %s", name, conninfo_result_error(res));
		log_hint("the source needs a free slot (max_replication_slots) and a role with REPLICATION");
		goto cleanup;
	}
	if (!lsn_parse(PQgetvalue(res, 0, 1), consistent_point))
	{
		log_error("unexpected consistent point \"%s\" for replication slot \"%s\"", PQgetvalue(res, 0, 1), name);
		goto cleanup;
	}
	*created = true;
	log_info("created replication slot \"%s\" on the source at %s", name, PQgetvalue(res, 0, 1));
	ok = true;
cleanup:
	PQclear(res);
	PQfreemem(quoted);
	return ok;
}

bool
source_create_slot_export(PGconn *repl, const char *name, Lsn *consistent_point, char **snapshot_name)
{
	char *quoted = PQescapeIdentifier(repl, name, strlen(name));
	PGresult *res = NULL;
	char sql[256];
	bool ok = false;

	*snapshot_name = NULL;
	if (quoted == NULL)
	{
		log_error("could not quote identifier \"%s\": %s", name, conninfo_error(repl));
		return false;
	}
	snprintf(sql, sizeof(sql), "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput (SNAPSHOT 'export')", quoted);
	log_info("creating replication slot \"%s\" on the source (waits for running transactions to end)", name);
	res = PQexec(repl, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		log_error("could not create replication slot \"%s\" on the source: %s", name, conninfo_result_error(res));
		log_hint("the source needs a free slot (max_replication_slots) and a role with REPLICATION");
		goto cleanup;
	}
	if (!lsn_parse(PQgetvalue(res, 0, 1), consistent_point) || PQgetisnull(res, 0, 2))
	{
		log_error("unexpected answer creating replication slot \"%s\"", name);
		goto cleanup;
	}
	*snapshot_name = strdup(PQgetvalue(res, 0, 2));
	if (*snapshot_name == NULL)
		goto cleanup;
	log_info("created replication slot \"%s\" at %s with snapshot %s", name, PQgetvalue(res, 0, 1),
			 *snapshot_name);
	ok = true;
cleanup:
	PQclear(res);
	PQfreemem(quoted);
	return ok;
}

bool
source_drop_slot(PGconn *conn, const char *slot)
{
	const char *params[1] = {slot};
	PGresult *res = PQexecParams(conn,
								 "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
								 "WHERE slot_name = $1",
								 1, NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
	{
		log_error("could not drop replication slot \"%s\" on the source: %s", slot, conninfo_result_error(res));
		log_hint("stop the agent first (switchyard stop): an active slot cannot be dropped");
	}
	else if (PQntuples(res) > 0)
		log_info("dropped replication slot \"%s\" on the source", slot);
	PQclear(res);
	return ok;
}

bool
source_system_identifier(PGconn *repl, uint64_t *out)
{
	PGresult *res = PQexec(repl, "IDENTIFY_SYSTEM");
	bool ok = false;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		log_error("could not identify the source system: %s", conninfo_result_error(res));
	else
	{
		*out = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		ok = true;
	}
	PQclear(res);
	return ok;
}

bool
source_drop(PGconn *conn, const char *slot, const char *publication)
{
	PGresult *res = NULL;
	char *quoted = NULL;
	char sql[256];
	bool ok = source_drop_slot(conn, slot);

	quoted = source_quote(conn, publication);
	if (quoted == NULL)
		return false;
	snprintf(sql, sizeof(sql), "DROP PUBLICATION IF EXISTS %s", quoted);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		log_error("could not drop publication \"%s\" on the source: %s", publication, conninfo_result_error(res));
		ok = false;
	}
	PQclear(res);
	PQfreemem(quoted);
	return ok;
}
