/*
 * The target guard. At the start of `run` it revokes CONNECT on the target database from
 * PUBLIC and the application roles, recording first, in <state-dir>/guard.json, exactly which
 * grants (grantee, grantor, grant option) it takes away, so the cutover (guard_lift) or
 * `switchyard cleanup` can give back just those. A watch thread with its own session polls
 * pg_stat_activity and reports every session that is not the agent's; in enforce mode it
 * terminates them.
 */
#include "switchyard/guard.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "switchyard/conninfo.h"
#include "switchyard/fileio.h"
#include "switchyard/log.h"
#include "switchyard/monotonic.h"
#include "switchyard/text_array.h"

#define GUARD_FILE "guard.json"
#define GUARD_MAX_FILE_SIZE (4 * 1024 * 1024)
#define GUARD_DEFAULT_POLL_MS 2000
#define GUARD_RECONNECT_MS 10000
#define GUARD_CONNECT_TIMEOUT_MS 10000
#define GUARD_AGENT_PREFIX "switchyard-"
/* Timestamps as text in UTC: ordered as strings, the way the guard compares them */
#define GUARD_TIME_FORMAT "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'"

/* A foreign session already reported: (pid, backend start) names a session uniquely. */
typedef struct GuardSeen
{
	int pid;
	char backend_start[32];
	bool terminated;
} GuardSeen;

struct Guard
{
	char *conninfo;
	char *state_dir;
	char **app_roles;
	GuardMode mode;
	int poll_ms;
	char *database;
	char *agent_role;            /* session_user of the agent's target sessions */
	char *agent_app_name;        /* application_name the user's conninfo imposes, or NULL */
	char started[40];            /* the server's clock when the guard started, as backend_start */

	/* lift, reinstate: the caller's thread, one at a time */
	pthread_mutex_t admin_lock;
	PGconn *admin;
	GuardRecord *record;

	/* the watch thread's own */
	PGconn *watch;
	GuardSeen *seen;
	size_t nseen;
	int64_t next_connect_ms;

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	/* under mutex */
	bool stop;
	bool lifted;
	bool connect_revoked;
	bool watching;
	uint64_t violations_total;
	uint64_t sessions_now;
	uint64_t terminated_total;
	uint64_t checks;
	int64_t last_check_unix;
	char last_violation[512];
};

/* ---- small pure helpers ---------------------------------------------------------------- */

bool
guard_parse_mode(const char *text, GuardMode *out)
{
	if (text != NULL && strcmp(text, "observe") == 0)
		*out = GUARD_OBSERVE;
	else if (text != NULL && strcmp(text, "enforce") == 0)
		*out = GUARD_ENFORCE;
	else
		return false;
	return true;
}

const char *
guard_mode_name(GuardMode mode)
{
	return mode == GUARD_ENFORCE ? "enforce" : "observe";
}

GuardSessionKind
guard_classify_session(const char *usename, const char *application_name, const char *agent_role,
					   const char *agent_app_name, char *const *app_roles)
{
	if (usename == NULL)
		usename = "";
	if (application_name == NULL)
		application_name = "";
	if (agent_role != NULL && strcmp(usename, agent_role) == 0 &&
		(strncmp(application_name, GUARD_AGENT_PREFIX, strlen(GUARD_AGENT_PREFIX)) == 0 ||
		 (agent_app_name != NULL && agent_app_name[0] != '\0' && strcmp(application_name, agent_app_name) == 0) ||
		 strcmp(application_name, "pg_restore") == 0))
		return GUARD_SESSION_AGENT;
	for (size_t i = 0; app_roles != NULL && app_roles[i] != NULL; i++)
		if (strcmp(usename, app_roles[i]) == 0)
			return GUARD_SESSION_APP;
	return GUARD_SESSION_OTHER;
}

static void
guard_strv_free(char **strv)
{
	for (size_t i = 0; strv != NULL && strv[i] != NULL; i++)
		free(strv[i]);
	free(strv);
}

static bool
guard_strv_contains(char *const *strv, const char *item)
{
	for (size_t i = 0; strv != NULL && strv[i] != NULL; i++)
		if (strcmp(strv[i], item) == 0)
			return true;
	return false;
}

/* Appends a copy of item to the NULL-terminated *strv. */
static bool
guard_strv_append(char ***strv, const char *item)
{
	size_t n = 0;
	char **grown;

	while (*strv != NULL && (*strv)[n] != NULL)
		n++;
	grown = realloc(*strv, (n + 2) * sizeof(char *));
	if (grown == NULL)
		return false;
	*strv = grown;
	grown[n] = strdup(item);
	grown[n + 1] = NULL;
	return grown[n] != NULL;
}

/* "PUBLIC" or the role quoted as an identifier, for messages. */
static void
guard_grantee_label(const GuardGrant *grant, char *buf, size_t size)
{
	if (grant->grantee == NULL)
		snprintf(buf, size, "PUBLIC");
	else
		snprintf(buf, size, "\"%s\"", grant->grantee);
}

/* ---- the record (guard.json) ------------------------------------------------------------ */

void
guard_record_free(GuardRecord *record)
{
	if (record == NULL)
		return;
	free(record->database);
	guard_strv_free(record->app_roles);
	for (size_t i = 0; i < record->ngrants; i++)
	{
		free(record->grants[i].grantee);
		free(record->grants[i].grantor);
	}
	free(record->grants);
	free(record);
}

static bool
guard_same_grantee(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

bool
guard_record_add(GuardRecord *record, const char *grantee, const char *grantor, bool grant_option,
				 bool *added)
{
	GuardGrant *grown;
	GuardGrant *grant;

	*added = false;
	for (size_t i = 0; i < record->ngrants; i++)
	{
		if (guard_same_grantee(record->grants[i].grantee, grantee) &&
			strcmp(record->grants[i].grantor, grantor) == 0)
		{
			/* granted again since, perhaps now with the grant option: restore the larger */
			record->grants[i].grant_option |= grant_option;
			return true;
		}
	}
	grown = realloc(record->grants, (record->ngrants + 1) * sizeof(GuardGrant));
	if (grown == NULL)
		return false;
	record->grants = grown;
	grant = &record->grants[record->ngrants];
	grant->grantee = grantee != NULL ? strdup(grantee) : NULL;
	grant->grantor = strdup(grantor);
	grant->grant_option = grant_option;
	if ((grantee != NULL && grant->grantee == NULL) || grant->grantor == NULL)
	{
		free(grant->grantee);
		free(grant->grantor);
		return false;
	}
	record->ngrants++;
	*added = true;
	return true;
}

bool
guard_record_add_roles(GuardRecord *record, char *const *roles)
{
	for (size_t i = 0; roles != NULL && roles[i] != NULL; i++)
		if (!guard_strv_contains(record->app_roles, roles[i]) && !guard_strv_append(&record->app_roles, roles[i]))
			return false;
	if (record->app_roles == NULL)
	{
		record->app_roles = calloc(1, sizeof(char *));
		if (record->app_roles == NULL)
			return false;
	}
	return true;
}

static bool
guard_join_path(const char *dir, const char *name, char *buf, size_t size)
{
	int length = snprintf(buf, size, "%s/%s", dir, name);

	if (length < 0 || (size_t) length >= size)
	{
		log_error("path \"%s/%s\" is too long", dir, name);
		return false;
	}
	return true;
}

static char *
guard_read_file(const char *path, bool *missing)
{
	FILE *file = NULL;
	char *text = NULL;
	long size;

	*missing = false;
	file = fopen(path, "r");
	if (file == NULL)
	{
		if (errno == ENOENT)
			*missing = true;
		else
			log_error("could not open file \"%s\": %m", path);
		return NULL;
	}
	if (fseek(file, 0, SEEK_END) != 0 || (size = ftell(file)) < 0 || size > GUARD_MAX_FILE_SIZE ||
		fseek(file, 0, SEEK_SET) != 0)
	{
		log_error("could not read file \"%s\": not a guard record", path);
		goto cleanup;
	}
	text = malloc((size_t) size + 1);
	if (text == NULL)
	{
		log_error("out of memory");
		goto cleanup;
	}
	if (fread(text, 1, (size_t) size, file) != (size_t) size)
	{
		log_error("could not read file \"%s\": %m", path);
		free(text);
		text = NULL;
		goto cleanup;
	}
	text[size] = '\0';
cleanup:
	fclose(file);
	return text;
}

static bool
guard_record_from_json(json_object *root, GuardRecord *record)
{
	json_object *value = NULL;
	json_object *grants = NULL;
	json_object *roles = NULL;

	if (!json_object_is_type(root, json_type_object) ||
		!json_object_object_get_ex(root, "database", &value) || !json_object_is_type(value, json_type_string))
		return false;
	record->database = strdup(json_object_get_string(value));
	if (record->database == NULL)
		return false;
	if (json_object_object_get_ex(root, "mode", &value) &&
		!guard_parse_mode(json_object_get_string(value), &record->mode))
		record->mode = GUARD_OBSERVE;
	if (json_object_object_get_ex(root, "lifted", &value))
		record->lifted = json_object_get_boolean(value);
	if (json_object_object_get_ex(root, "app_roles", &roles) && json_object_is_type(roles, json_type_array))
		for (size_t i = 0; i < json_object_array_length(roles); i++)
		{
			json_object *role = json_object_array_get_idx(roles, i);

			if (!json_object_is_type(role, json_type_string) ||
				!guard_strv_append(&record->app_roles, json_object_get_string(role)))
				return false;
		}
	if (!guard_record_add_roles(record, NULL))
		return false;
	if (!json_object_object_get_ex(root, "revoked", &grants) || !json_object_is_type(grants, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(grants); i++)
	{
		json_object *item = json_object_array_get_idx(grants, i);
		json_object *grantee = NULL;
		json_object *grantor = NULL;
		json_object *option = NULL;
		bool added;

		if (!json_object_is_type(item, json_type_object) ||
			!json_object_object_get_ex(item, "grantee", &grantee) ||
			!json_object_object_get_ex(item, "grantor", &grantor) ||
			!json_object_is_type(grantor, json_type_string) ||
			(grantee != NULL && !json_object_is_type(grantee, json_type_string)))
			return false;
		json_object_object_get_ex(item, "grant_option", &option);
		if (!guard_record_add(record, grantee != NULL ? json_object_get_string(grantee) : NULL,
							  json_object_get_string(grantor), json_object_get_boolean(option), &added))
			return false;
	}
	return true;
}

bool
guard_record_load(const char *state_dir, GuardRecord **out)
{
	char path[PATH_MAX];
	char *text = NULL;
	json_object *root = NULL;
	GuardRecord *record = NULL;
	bool missing = false;
	bool ok = false;

	*out = NULL;
	if (!guard_join_path(state_dir, GUARD_FILE, path, sizeof(path)))
		goto cleanup;
	text = guard_read_file(path, &missing);
	if (text == NULL)
	{
		ok = missing;
		goto cleanup;
	}
	root = json_tokener_parse(text);
	record = calloc(1, sizeof(*record));
	if (record == NULL)
	{
		log_error("out of memory");
		goto cleanup;
	}
	if (root == NULL || !guard_record_from_json(root, record))
	{
		log_error("guard record \"%s\" is damaged", path);
		log_detail("it lists the CONNECT privileges the agent revoked on the target and must give back");
		log_hint("restore them by hand (GRANT CONNECT ON DATABASE ... TO ...), then remove the file");
		goto cleanup;
	}
	*out = record;
	record = NULL;
	ok = true;
cleanup:
	guard_record_free(record);
	json_object_put(root);
	free(text);
	return ok;
}

static json_object *
guard_record_to_json(const GuardRecord *record)
{
	json_object *root = json_object_new_object();
	json_object *roles = json_object_new_array();
	json_object *grants = json_object_new_array();
	bool ok = root != NULL && roles != NULL && grants != NULL;

	for (size_t i = 0; ok && record->app_roles != NULL && record->app_roles[i] != NULL; i++)
		ok = json_object_array_add(roles, json_object_new_string(record->app_roles[i])) == 0;
	for (size_t i = 0; ok && i < record->ngrants; i++)
	{
		json_object *item = json_object_new_object();

		ok = item != NULL;
		if (ok)
		{
			const GuardGrant *grant = &record->grants[i];

			json_object_object_add(item, "grantee",
								   grant->grantee != NULL ? json_object_new_string(grant->grantee) : NULL);
			json_object_object_add(item, "grantor", json_object_new_string(grant->grantor));
			json_object_object_add(item, "grant_option", json_object_new_boolean(grant->grant_option));
			ok = json_object_array_add(grants, item) == 0;
		}
	}
	if (!ok)
	{
		json_object_put(root);
		json_object_put(roles);
		json_object_put(grants);
		return NULL;
	}
	json_object_object_add(root, "database", json_object_new_string(record->database));
	json_object_object_add(root, "mode", json_object_new_string(guard_mode_name(record->mode)));
	json_object_object_add(root, "app_roles", roles);
	/* grantee null: PUBLIC */
	json_object_object_add(root, "revoked", grants);
	json_object_object_add(root, "lifted", json_object_new_boolean(record->lifted));
	return root;
}

bool
guard_record_save(const char *state_dir, const GuardRecord *record)
{
	char path[PATH_MAX];
	json_object *root = NULL;
	bool ok;

	if (!guard_join_path(state_dir, GUARD_FILE, path, sizeof(path)))
		return false;
	root = guard_record_to_json(record);
	if (root == NULL)
	{
		log_error("out of memory");
		return false;
	}
	ok = fileio_write_text(path, json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
																JSON_C_TO_STRING_SPACED), 0600);
	json_object_put(root);
	return ok;
}

/* ---- privileges on the target ------------------------------------------------------------ */

/*
 * The CONNECT grants on the current database held by PUBLIC or the named roles, from the
 * effective ACL (a NULL datacl means the default, which grants CONNECT to PUBLIC). Grants made
 * by roles other than the owner come first: they may rest on a grant option the owner gave,
 * so they are revoked before it. Columns: grantee (NULL: PUBLIC), grantor, grant option.
 */
static PGresult *
guard_query_grants(PGconn *conn, const char *roles_array)
{
	const char *params[1] = {roles_array};

	return PQexecParams(conn,
						"SELECT g.rolname, r.rolname, a.is_grantable "
						"FROM pg_database d "
						"CROSS JOIN LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a "
						"LEFT JOIN pg_roles g ON g.oid = a.grantee "
						"JOIN pg_roles r ON r.oid = a.grantor "
						"WHERE d.datname = current_database() AND a.privilege_type = 'CONNECT' "
						"  AND (a.grantee = 0 OR g.rolname = ANY ($1::text[])) "
						"ORDER BY a.grantor = d.datdba, a.grantee <> 0, g.rolname, r.rolname",
						1, NULL, params, NULL, NULL, 0);
}

/* quiet: a session kept idle may have died meanwhile; the caller reconnects without alarm */
static char *
guard_owner(PGconn *conn, bool quiet)
{
	PGresult *res = PQexec(conn, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()");
	char *owner = NULL;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		if (!quiet || PQstatus(conn) == CONNECTION_OK)
			log_error("could not read the owner of the target database: %s", conninfo_result_error(res));
	}
	else if ((owner = strdup(PQgetvalue(res, 0, 0))) == NULL)
		log_error("out of memory");
	PQclear(res);
	return owner;
}

/* Appends to a growing SQL script. */
static bool
guard_append(char **buf, size_t *used, size_t *cap, const char *text)
{
	size_t len = strlen(text);

	if (*used + len + 1 > *cap)
	{
		size_t newcap = (*cap + len + 1) * 2;
		char *bigger = realloc(*buf, newcap);

		if (bigger == NULL)
			return false;
		*buf = bigger;
		*cap = newcap;
	}
	memcpy(*buf + *used, text, len + 1);
	*used += len;
	return true;
}

/*
 * One GRANT or REVOKE of CONNECT as the grant's grantor. A superuser's GRANT and REVOKE act as
 * the owner, so a grant by another role is changed after SET ROLE to that role.
 */
static bool
guard_append_change(PGconn *conn, char **sql, size_t *used, size_t *cap, bool grant_it,
					const char *database, const char *owner, const GuardGrant *grant)
{
	char *database_q = PQescapeIdentifier(conn, database, strlen(database));
	char *grantee_q = grant->grantee != NULL ? PQescapeIdentifier(conn, grant->grantee, strlen(grant->grantee)) : NULL;
	char *grantor_q = PQescapeIdentifier(conn, grant->grantor, strlen(grant->grantor));
	bool as_grantor = strcmp(grant->grantor, owner) != 0;
	char *statement = NULL;
	size_t length;
	bool ok = false;

	if (database_q == NULL || grantor_q == NULL || (grant->grantee != NULL && grantee_q == NULL))
	{
		log_error("could not quote an identifier: %s", conninfo_error(conn));
		goto cleanup;
	}
	length = strlen(database_q) + (grantee_q != NULL ? strlen(grantee_q) : 0) + strlen(grantor_q) + 128;
	statement = malloc(length);
	if (statement == NULL)
		goto cleanup;
	snprintf(statement, length, "%s%s%s%s CONNECT ON DATABASE %s %s %s%s;%s\n",
			 as_grantor ? "SET ROLE " : "", as_grantor ? grantor_q : "", as_grantor ? "; " : "",
			 grant_it ? "GRANT" : "REVOKE", database_q, grant_it ? "TO" : "FROM",
			 grantee_q != NULL ? grantee_q : "PUBLIC", grant_it && grant->grant_option ? " WITH GRANT OPTION" : "",
			 as_grantor ? " RESET ROLE;" : "");
	ok = guard_append(sql, used, cap, statement);
cleanup:
	free(statement);
	PQfreemem(database_q);
	PQfreemem(grantee_q);
	PQfreemem(grantor_q);
	return ok;
}

/* Runs a script of statements as one implicit transaction: all or nothing, one round trip. */
static bool
guard_run_script(PGconn *conn, const char *sql, const char *what, const char *database)
{
	PGresult *res = PQexec(conn, sql);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
	{
		log_error("could not %s on database \"%s\" of the target: %s", what, database, conninfo_result_error(res));
		if (PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) != NULL)
			log_detail("%s", PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL));
		log_hint("the agent's target role must be a superuser; a grant other roles rely on (WITH GRANT "
				 "OPTION) must be revoked from them first");
	}
	PQclear(res);
	return ok;
}

static void
guard_grant_from_row(const PGresult *res, int row, GuardGrant *out)
{
	out->grantee = PQgetisnull(res, row, 0) ? NULL : PQgetvalue(res, row, 0);
	out->grantor = PQgetvalue(res, row, 1);
	out->grant_option = PQgetvalue(res, row, 2)[0] == 't';
}

/* DETAIL: "from PUBLIC (granted by "owner"), "app" (granted by "dba")" */
static void
guard_log_grants(const PGresult *res)
{
	char text[1024] = "";
	size_t used = 0;

	for (int i = 0; i < PQntuples(res) && used < sizeof(text); i++)
	{
		int n = snprintf(text + used, sizeof(text) - used, "%s%s%s%s (granted by \"%s\"%s)", i > 0 ? ", " : "",
						 PQgetisnull(res, i, 0) ? "" : "\"", PQgetisnull(res, i, 0) ? "PUBLIC" : PQgetvalue(res, i, 0),
						 PQgetisnull(res, i, 0) ? "" : "\"", PQgetvalue(res, i, 1),
						 PQgetvalue(res, i, 2)[0] == 't' ? ", with grant option" : "");

		if (n < 0)
			break;
		used += (size_t) n;
	}
	log_detail("from %s", text);
}

/*
 * Revokes CONNECT from PUBLIC and the roles; what it takes away is added to the record, and
 * the record saved, before the revoke is sent, so a crash in between can only make the record
 * list a grant that is still there (giving it back is then a no-op), never forget one.
 */
static bool
guard_revoke(PGconn *conn, const char *state_dir, GuardRecord *record, char *const *roles, const char *owner)
{
	char *roles_array = text_array_from_list(roles);
	PGresult *res = NULL;
	PGresult *left = NULL;
	char *sql = NULL;
	size_t used = 0;
	size_t cap = 0;
	int nrevoked = 0;
	bool ok = false;

	if (roles_array == NULL)
	{
		log_error("out of memory");
		goto cleanup;
	}
	res = guard_query_grants(conn, roles_array);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_error("could not read the privileges of database \"%s\" on the target: %s", record->database,
				  conninfo_result_error(res));
		goto cleanup;
	}
	if (!guard_record_add_roles(record, roles))
		goto cleanup;
	for (int i = 0; i < PQntuples(res); i++)
	{
		GuardGrant grant;
		bool added;

		guard_grant_from_row(res, i, &grant);
		if (!guard_record_add(record, grant.grantee, grant.grantor, grant.grant_option, &added) ||
			!guard_append_change(conn, &sql, &used, &cap, false, record->database, owner, &grant))
		{
			log_error("out of memory");
			goto cleanup;
		}
		nrevoked++;
	}
	record->lifted = false;
	if (!guard_record_save(state_dir, record))
		goto cleanup;
	if (nrevoked > 0 && !guard_run_script(conn, sql, "revoke CONNECT", record->database))
		goto cleanup;

	/* a grant made by a role that is itself a superuser resists REVOKE as the owner */
	left = guard_query_grants(conn, roles_array);
	if (PQresultStatus(left) != PGRES_TUPLES_OK)
	{
		log_error("could not read the privileges of database \"%s\" on the target: %s", record->database,
				  conninfo_result_error(left));
		goto cleanup;
	}
	for (int i = 0; i < PQntuples(left); i++)
	{
		log_warning("CONNECT on database \"%s\" granted to %s%s%s by \"%s\" could not be revoked",
					record->database, PQgetisnull(left, i, 0) ? "" : "\"",
					PQgetisnull(left, i, 0) ? "PUBLIC" : PQgetvalue(left, i, 0),
					PQgetisnull(left, i, 0) ? "" : "\"", PQgetvalue(left, i, 1));
		log_hint("revoke it by hand as role \"%s\"", PQgetvalue(left, i, 1));
	}
	if (nrevoked > 0)
	{
		log_info("target guard: revoked %d CONNECT grant%s on database \"%s\" (recorded in \"%s/%s\")",
				 nrevoked, nrevoked == 1 ? "" : "s", record->database, state_dir, GUARD_FILE);
		guard_log_grants(res);
	}
	else
		log_info("target guard: CONNECT on database \"%s\" is granted neither to PUBLIC nor to the "
				 "application roles", record->database);
	ok = true;
cleanup:
	PQclear(res);
	PQclear(left);
	free(sql);
	free(roles_array);
	return ok;
}

/*
 * Gives back every grant of the record, the owner's first (another grantor's may rest on a
 * grant option from it), in one transaction, then marks the record lifted.
 */
static bool
guard_restore(PGconn *conn, const char *state_dir, GuardRecord *record, const char *owner)
{
	char *sql = NULL;
	size_t used = 0;
	size_t cap = 0;
	char **grantees = NULL;
	char *grantees_array = NULL;
	PGresult *res = NULL;
	bool ok = false;

	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < record->ngrants; i++)
		{
			const GuardGrant *grant = &record->grants[i];

			if ((strcmp(grant->grantor, owner) == 0) != (pass == 0))
				continue;
			if (!guard_append_change(conn, &sql, &used, &cap, true, record->database, owner, grant) ||
				(grant->grantee != NULL && !guard_strv_contains(grantees, grant->grantee) &&
				 !guard_strv_append(&grantees, grant->grantee)))
			{
				log_error("out of memory");
				goto cleanup;
			}
		}
	if (sql != NULL && !guard_run_script(conn, sql, "grant CONNECT back", record->database))
		goto cleanup;

	/* GRANT by a role that has lost its grant option only warns: check each grant is back */
	grantees_array = text_array_from_list(grantees);
	if (grantees_array == NULL)
		goto cleanup;
	res = guard_query_grants(conn, grantees_array);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_error("could not read the privileges of database \"%s\" on the target: %s", record->database,
				  conninfo_result_error(res));
		goto cleanup;
	}
	for (size_t i = 0; i < record->ngrants; i++)
	{
		const GuardGrant *grant = &record->grants[i];
		bool found = false;

		for (int row = 0; row < PQntuples(res) && !found; row++)
			found = guard_same_grantee(grant->grantee, PQgetisnull(res, row, 0) ? NULL : PQgetvalue(res, row, 0)) &&
				strcmp(grant->grantor, PQgetvalue(res, row, 1)) == 0;
		if (!found)
		{
			char label[256];

			guard_grantee_label(grant, label, sizeof(label));
			log_warning("CONNECT on database \"%s\" could not be granted back to %s as \"%s\"",
						record->database, label, grant->grantor);
			log_hint("grant it by hand: GRANT CONNECT ON DATABASE ... TO ...");
		}
	}
	record->lifted = true;
	if (!guard_record_save(state_dir, record))
		goto cleanup;
	ok = true;
cleanup:
	PQclear(res);
	free(sql);
	free(grantees_array);
	guard_strv_free(grantees);
	return ok;
}

/* What the revoke cannot stop: superusers, the owner, roles with CONNECT through another role. */
static void
guard_warn_roles(PGconn *conn, const char *database, const char *agent_role, char *const *roles)
{
	char *roles_array = text_array_from_list(roles);
	const char *params[1] = {roles_array};
	PGresult *res = NULL;

	if (roles_array == NULL || roles == NULL || roles[0] == NULL)
		goto cleanup;
	res = PQexecParams(conn,
					   "SELECT u.name, r.oid IS NOT NULL, coalesce(r.rolsuper, false), "
					   "       coalesce(r.oid = d.datdba, false), "
					   "       r.oid IS NOT NULL AND has_database_privilege(r.oid, d.oid, 'CONNECT') "
					   "FROM unnest($1::text[]) WITH ORDINALITY AS u(name, n) "
					   "CROSS JOIN pg_database d "
					   "LEFT JOIN pg_roles r ON r.rolname = u.name "
					   "WHERE d.datname = current_database() ORDER BY u.n",
					   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_warning("could not check the application roles on the target: %s", conninfo_result_error(res));
		goto cleanup;
	}
	for (int i = 0; i < PQntuples(res); i++)
	{
		const char *role = PQgetvalue(res, i, 0);

		if (agent_role != NULL && strcmp(role, agent_role) == 0)
		{
			log_warning("application role \"%s\" is the role the agent connects to the target with", role);
			log_detail("its sessions named \"%s...\" count as the agent's own; the revoke does not stop it",
					   GUARD_AGENT_PREFIX);
			log_hint("give the agent a role of its own in --target");
		}
		else if (PQgetvalue(res, i, 1)[0] != 't')
		{
			log_warning("application role \"%s\" does not exist on the target", role);
			log_hint("check the spelling in --app-roles; a role created later gets no CONNECT from PUBLIC");
		}
		else if (PQgetvalue(res, i, 2)[0] == 't')
		{
			log_warning("application role \"%s\" is a superuser: revoking CONNECT does not keep it off "
						"database \"%s\"", role, database);
			log_detail("the guard still reports its sessions on the target");
			log_hint("give the application a role without SUPERUSER (ALTER ROLE ... NOSUPERUSER)");
		}
		else if (PQgetvalue(res, i, 3)[0] == 't')
		{
			log_warning("application role \"%s\" owns database \"%s\": it can grant CONNECT back to itself",
						role, database);
			log_detail("the guard still reports its sessions on the target");
			log_hint("make another role the owner (ALTER DATABASE ... OWNER TO ...) before the migration");
		}
		else if (PQgetvalue(res, i, 4)[0] == 't')
		{
			log_warning("application role \"%s\" can still connect to database \"%s\" through a role it "
						"is a member of", role, database);
			log_hint("revoke CONNECT from that role as well, or name it in --app-roles");
		}
	}
cleanup:
	PQclear(res);
	free(roles_array);
}

/* ---- the watch thread --------------------------------------------------------------------- */

/* The application_name a connection without its own would get: the user's conninfo, PGAPPNAME. */
static char *
guard_conninfo_app_name(const char *conninfo)
{
	PQconninfoOption *options = PQconninfoParse(conninfo != NULL ? conninfo : "", NULL);
	const char *env = getenv("PGAPPNAME");
	char *name = NULL;

	for (PQconninfoOption *opt = options; opt != NULL && opt->keyword != NULL; opt++)
		if (strcmp(opt->keyword, "application_name") == 0 && opt->val != NULL && opt->val[0] != '\0')
			name = strdup(opt->val);
	PQconninfoFree(options);
	if (name == NULL && env != NULL && env[0] != '\0')
		name = strdup(env);
	return name;
}

static bool
guard_should_stop(Guard *guard)
{
	bool stop;

	pthread_mutex_lock(&guard->mutex);
	stop = guard->stop;
	pthread_mutex_unlock(&guard->mutex);
	return stop;
}

/* Connects without blocking past a stop request, and without waiting forever on a dead host. */
static PGconn *
guard_connect_watch(Guard *guard)
{
	const char *keys[] = {"dbname", "application_name", "options", NULL};
	const char *values[] = {guard->conninfo, GUARD_AGENT_PREFIX "guard-watch", "-c statement_timeout=10000", NULL};
	int64_t deadline = monotonic_ms() + GUARD_CONNECT_TIMEOUT_MS;
	PostgresPollingStatusType state = PGRES_POLLING_WRITING;
	PGconn *conn = PQconnectStartParams(keys, values, 1);

	if (conn == NULL)
		return NULL;
	conninfo_route_notices(conn, "target");
	while (PQstatus(conn) != CONNECTION_BAD && state != PGRES_POLLING_OK && state != PGRES_POLLING_FAILED)
	{
		struct pollfd pfd = {.fd = PQsocket(conn), .events = state == PGRES_POLLING_READING ? POLLIN : POLLOUT};

		if (guard_should_stop(guard) || monotonic_ms() > deadline)
			break;
		if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
			break;
		if (pfd.revents != 0 || state == PGRES_POLLING_ACTIVE)
			state = PQconnectPoll(conn);
	}
	if (state != PGRES_POLLING_OK || PQstatus(conn) != CONNECTION_OK)
	{
		log_warning("target guard: could not connect to the target: %s", conninfo_error(conn));
		log_detail("foreign sessions are not watched until the guard reconnects");
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

static void
guard_set_watching(Guard *guard, bool watching)
{
	pthread_mutex_lock(&guard->mutex);
	guard->watching = watching;
	pthread_mutex_unlock(&guard->mutex);
}

static const GuardSeen *
guard_find_seen(const Guard *guard, int pid, const char *backend_start)
{
	for (size_t i = 0; i < guard->nseen; i++)
		if (guard->seen[i].pid == pid && strcmp(guard->seen[i].backend_start, backend_start) == 0)
			return &guard->seen[i];
	return NULL;
}

static bool
guard_terminate(Guard *guard, int pid)
{
	char pid_text[16];
	const char *params[1] = {pid_text};
	PGresult *res;
	bool done;

	snprintf(pid_text, sizeof(pid_text), "%d", pid);
	res = PQexecParams(guard->watch, "SELECT pg_terminate_backend($1::int)", 1, NULL, params, NULL, NULL, 0);
	done = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		log_warning("target guard: could not terminate session %d: %s", pid, conninfo_result_error(res));
	PQclear(res);
	return done;
}

static void
guard_report(Guard *guard, const PGresult *res, int row, GuardSessionKind kind)
{
	const char *usename = PQgetvalue(res, row, 1);
	const char *application = PQgetvalue(res, row, 2);
	const char *client = PQgetvalue(res, row, 3);
	const char *backend_start = PQgetvalue(res, row, 4);
	const char *query_start = PQgetvalue(res, row, 5);
	int pid = atoi(PQgetvalue(res, row, 0));
	char now_text[32];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(now_text, sizeof(now_text), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (kind == GUARD_SESSION_APP)
		log_warning("target guard violation: application role \"%s\" is connected to database \"%s\" "
					"(client %s, application \"%s\", backend start %s, query start %s, pid %d)",
					usename, guard->database, client, application, backend_start, query_start, pid);
	else
		log_warning("target guard violation: foreign session of role \"%s\" on database \"%s\" "
					"(client %s, application \"%s\", backend start %s, query start %s, pid %d)",
					usename, guard->database, client, application, backend_start, query_start, pid);
	if (strcmp(backend_start, guard->started) < 0)
		log_detail("the session was open before the guard revoked CONNECT, which does not end it");
	if (guard->mode == GUARD_OBSERVE)
		log_hint("find out who opened it; run with --guard enforce to have the agent terminate such sessions");

	pthread_mutex_lock(&guard->mutex);
	guard->violations_total++;
	snprintf(guard->last_violation, sizeof(guard->last_violation),
			 "%s: role \"%s\", client %s, application \"%s\", backend start %s, query start %s, pid %d",
			 now_text, usename, client, application, backend_start, query_start, pid);
	pthread_mutex_unlock(&guard->mutex);
}

/* One look at the target's sessions. False when the session to the target is gone. */
static bool
guard_check(Guard *guard)
{
	PGresult *res = PQexec(guard->watch,
						   "SELECT pid, coalesce(usename::text, ''), coalesce(application_name, ''), "
						   "       coalesce(host(client_addr), CASE WHEN client_port = -1 THEN 'local socket' "
						   "                                   ELSE 'unknown' END), "
						   "       coalesce(to_char(backend_start AT TIME ZONE 'UTC', " GUARD_TIME_FORMAT "), ''), "
						   "       coalesce(to_char(query_start AT TIME ZONE 'UTC', " GUARD_TIME_FORMAT "), 'none') "
						   "FROM pg_stat_activity "
						   "WHERE datname = current_database() AND backend_type = 'client backend' "
						   "  AND pid <> pg_backend_pid()");
	GuardSeen *now_seen = NULL;
	size_t nnow = 0;
	uint64_t terminated = 0;
	bool lifted;
	bool ok = false;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		if (PQstatus(guard->watch) == CONNECTION_OK)
		{
			log_warning("target guard: could not list the sessions on the target: %s", conninfo_result_error(res));
			ok = true;
		}
		goto cleanup;
	}
	/*
	 * Read after the answer: guard_lift sets it before it grants CONNECT, so an answer that
	 * still sees it unset cannot hold an application session opened thanks to the lift.
	 */
	pthread_mutex_lock(&guard->mutex);
	lifted = guard->lifted;
	pthread_mutex_unlock(&guard->mutex);

	now_seen = calloc((size_t) PQntuples(res) + 1, sizeof(GuardSeen));
	if (now_seen == NULL)
		goto cleanup;
	for (int i = 0; i < PQntuples(res); i++)
	{
		GuardSessionKind kind = guard_classify_session(PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
													   guard->agent_role, guard->agent_app_name,
													   guard->app_roles);
		const GuardSeen *before;
		GuardSeen *entry;

		if (kind == GUARD_SESSION_AGENT || (kind == GUARD_SESSION_APP && lifted))
			continue;
		entry = &now_seen[nnow++];
		entry->pid = atoi(PQgetvalue(res, i, 0));
		snprintf(entry->backend_start, sizeof(entry->backend_start), "%s", PQgetvalue(res, i, 4));
		before = guard_find_seen(guard, entry->pid, entry->backend_start);
		if (before == NULL)
			guard_report(guard, res, i, kind);
		else
			entry->terminated = before->terminated;
		/* after the lift the target serves the application: no session is ended any more */
		if (guard->mode == GUARD_ENFORCE && !lifted && !entry->terminated && guard_terminate(guard, entry->pid))
		{
			entry->terminated = true;
			terminated++;
			log_warning("target guard: terminated session %d of role \"%s\" (application \"%s\")",
						entry->pid, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
		}
	}
	free(guard->seen);
	guard->seen = now_seen;
	guard->nseen = nnow;
	now_seen = NULL;
	pthread_mutex_lock(&guard->mutex);
	guard->sessions_now = nnow;
	guard->terminated_total += terminated;
	guard->checks++;
	guard->last_check_unix = (int64_t) time(NULL);
	pthread_mutex_unlock(&guard->mutex);
	ok = true;
cleanup:
	free(now_seen);
	PQclear(res);
	return ok;
}

static void *
guard_main(void *arg)
{
	Guard *guard = arg;

	log_set_thread_name("guard");
	pthread_mutex_lock(&guard->mutex);
	while (!guard->stop)
	{
		struct timespec until;
		int64_t wait_ms = guard->poll_ms;

		pthread_mutex_unlock(&guard->mutex);
		if (guard->watch == NULL && monotonic_ms() >= guard->next_connect_ms)
		{
			guard->watch = guard_connect_watch(guard);
			guard->next_connect_ms = monotonic_ms() + GUARD_RECONNECT_MS;
			if (guard->watch != NULL)
				guard_set_watching(guard, true);
		}
		if (guard->watch != NULL && !guard_check(guard))
		{
			log_warning("target guard: lost the session to the target: %s", conninfo_error(guard->watch));
			log_detail("foreign sessions are not watched until the guard reconnects");
			PQfinish(guard->watch);
			guard->watch = NULL;
			guard->next_connect_ms = monotonic_ms();
			guard_set_watching(guard, false);
		}
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += wait_ms / 1000;
		until.tv_nsec += (wait_ms % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000)
		{
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_mutex_lock(&guard->mutex);
		while (!guard->stop && pthread_cond_timedwait(&guard->cond, &guard->mutex, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&guard->mutex);
	if (guard->watch != NULL)
		PQfinish(guard->watch);
	guard->watch = NULL;
	return NULL;
}

/* ---- the API ------------------------------------------------------------------------------- */

static int
guard_poll_ms(int requested)
{
	const char *env = getenv("SWITCHYARD_GUARD_POLL_MS");
	long value;
	char *end = NULL;

	if (requested > 0)
		return requested;
	if (env != NULL && env[0] != '\0')
	{
		value = strtol(env, &end, 10);
		if (*end == '\0' && value >= 10 && value <= 600000)
			return (int) value;
		log_warning("ignoring SWITCHYARD_GUARD_POLL_MS=\"%s\": expected milliseconds from 10 to 600000", env);
	}
	return GUARD_DEFAULT_POLL_MS;
}

/* The session for lift and reinstate, checked (one round trip) and reopened when lost. */
static bool
guard_admin_ready(Guard *guard, char **owner)
{
	*owner = NULL;
	if (guard->admin != NULL && PQstatus(guard->admin) == CONNECTION_OK)
	{
		*owner = guard_owner(guard->admin, true);
		if (*owner != NULL)
			return true;
		if (PQstatus(guard->admin) == CONNECTION_OK)
			return false;
		log_info("target guard: reconnecting to the target");
	}
	if (guard->admin != NULL)
		PQfinish(guard->admin);
	guard->admin = conninfo_connect(guard->conninfo, CONN_NORMAL, "guard", "target");
	if (guard->admin == NULL)
		return false;
	*owner = guard_owner(guard->admin, false);
	return *owner != NULL;
}

static bool
guard_identify(Guard *guard)
{
	PGresult *res = PQexec(guard->admin, "SELECT current_database(), session_user, "
						   "to_char(now() AT TIME ZONE 'UTC', " GUARD_TIME_FORMAT ")");
	bool ok = false;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		log_error("could not identify the target database: %s", conninfo_result_error(res));
	else
	{
		guard->database = strdup(PQgetvalue(res, 0, 0));
		guard->agent_role = strdup(PQgetvalue(res, 0, 1));
		snprintf(guard->started, sizeof(guard->started), "%s", PQgetvalue(res, 0, 2));
		ok = guard->database != NULL && guard->agent_role != NULL;
	}
	PQclear(res);
	return ok;
}

static bool
guard_new_record(Guard *guard)
{
	guard->record = calloc(1, sizeof(GuardRecord));
	if (guard->record == NULL)
		return false;
	guard->record->database = strdup(guard->database);
	return guard->record->database != NULL && guard_record_add_roles(guard->record, NULL);
}

bool
guard_start(const GuardOptions *options, Guard **out)
{
	Guard *guard = calloc(1, sizeof(*guard));
	pthread_condattr_t attr;
	char *owner = NULL;
	bool ok = false;

	*out = NULL;
	if (guard == NULL)
		return false;
	pthread_mutex_init(&guard->mutex, NULL);
	pthread_mutex_init(&guard->admin_lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&guard->cond, &attr);
	pthread_condattr_destroy(&attr);
	guard->mode = options->mode;
	guard->poll_ms = guard_poll_ms(options->poll_ms);
	guard->conninfo = strdup(options->target_conninfo);
	guard->state_dir = strdup(options->state_dir);
	guard->agent_app_name = guard_conninfo_app_name(options->target_conninfo);
	if (guard->conninfo == NULL || guard->state_dir == NULL)
		goto cleanup;
	for (size_t i = 0; options->app_roles != NULL && options->app_roles[i] != NULL; i++)
		if (!guard_strv_contains(guard->app_roles, options->app_roles[i]) &&
			!guard_strv_append(&guard->app_roles, options->app_roles[i]))
			goto cleanup;
	if (guard->app_roles == NULL && (guard->app_roles = calloc(1, sizeof(char *))) == NULL)
		goto cleanup;

	guard->admin = conninfo_connect(guard->conninfo, CONN_NORMAL, "guard", "target");
	if (guard->admin == NULL || !guard_identify(guard) || (owner = guard_owner(guard->admin, false)) == NULL)
		goto cleanup;
	if (!guard_record_load(guard->state_dir, &guard->record))
		goto cleanup;
	if (guard->record != NULL && strcmp(guard->record->database, guard->database) != 0)
	{
		log_error("the guard record in \"%s/%s\" is for database \"%s\", but the target is database \"%s\"",
				  guard->state_dir, GUARD_FILE, guard->record->database, guard->database);
		log_hint("use the target this migration started with, or run \"switchyard cleanup\" for it first");
		goto cleanup;
	}
	if (guard->record == NULL && !guard_new_record(guard))
		goto cleanup;
	guard->record->mode = guard->mode;
	if (guard->record->lifted)
	{
		/* the cutover lifted it; only the cutover (guard_reinstate) puts it back */
		guard->lifted = true;
		log_info("target guard: lifted by the cutover, CONNECT on database \"%s\" stays granted",
				 guard->database);
		if (!guard_record_add_roles(guard->record, guard->app_roles) ||
			!guard_record_save(guard->state_dir, guard->record))
			goto cleanup;
	}
	else
	{
		if (!guard_revoke(guard->admin, guard->state_dir, guard->record, guard->app_roles, owner))
			goto cleanup;
		guard->connect_revoked = true;
	}
	if (!guard->lifted)
		guard_warn_roles(guard->admin, guard->database, guard->agent_role, guard->app_roles);

	if (pthread_create(&guard->thread, NULL, guard_main, guard) != 0)
	{
		log_error("could not start the guard thread");
		goto cleanup;
	}
	guard->thread_started = true;
	log_info("target guard: watching the sessions on database \"%s\" every %d ms (%s)", guard->database,
			 guard->poll_ms, guard_mode_name(guard->mode));
	*out = guard;
	guard = NULL;
	ok = true;
cleanup:
	free(owner);
	guard_free(guard);
	return ok;
}

void
guard_get_stats(Guard *guard, GuardStats *out)
{
	memset(out, 0, sizeof(*out));
	if (guard == NULL)
		return;
	out->mode = guard->mode;
	out->app_roles = guard->app_roles;
	pthread_mutex_lock(&guard->mutex);
	out->connect_revoked = guard->connect_revoked;
	out->lifted = guard->lifted;
	out->watching = guard->watching;
	out->violations_total = guard->violations_total;
	out->sessions_now = guard->sessions_now;
	out->terminated_total = guard->terminated_total;
	out->checks = guard->checks;
	out->last_check_unix = guard->last_check_unix;
	memcpy(out->last_violation, guard->last_violation, sizeof(out->last_violation));
	pthread_mutex_unlock(&guard->mutex);
}

bool
guard_lift(Guard *guard)
{
	char *owner = NULL;
	bool ok = false;

	pthread_mutex_lock(&guard->admin_lock);
	/* before the grants: an application session the next check sees is then no violation */
	pthread_mutex_lock(&guard->mutex);
	guard->lifted = true;
	pthread_mutex_unlock(&guard->mutex);
	if (!guard_admin_ready(guard, &owner))
		goto cleanup;
	if (!guard_restore(guard->admin, guard->state_dir, guard->record, owner))
		goto cleanup;
	log_info("target guard lifted: CONNECT on database \"%s\" granted back (%zu grant%s)", guard->database,
			 guard->record->ngrants, guard->record->ngrants == 1 ? "" : "s");
	ok = true;
cleanup:
	pthread_mutex_lock(&guard->mutex);
	guard->lifted = ok || guard->record->lifted;
	guard->connect_revoked = !guard->lifted;
	pthread_mutex_unlock(&guard->mutex);
	pthread_mutex_unlock(&guard->admin_lock);
	free(owner);
	return ok;
}

bool
guard_reinstate(Guard *guard)
{
	char *owner = NULL;
	bool ok = false;

	pthread_mutex_lock(&guard->admin_lock);
	if (!guard_admin_ready(guard, &owner))
		goto cleanup;
	if (!guard_revoke(guard->admin, guard->state_dir, guard->record, guard->app_roles, owner))
		goto cleanup;
	pthread_mutex_lock(&guard->mutex);
	guard->lifted = false;
	guard->connect_revoked = true;
	pthread_mutex_unlock(&guard->mutex);
	log_info("target guard reinstated on database \"%s\"", guard->database);
	ok = true;
cleanup:
	pthread_mutex_unlock(&guard->admin_lock);
	free(owner);
	return ok;
}

void
guard_free(Guard *guard)
{
	if (guard == NULL)
		return;
	if (guard->thread_started)
	{
		pthread_mutex_lock(&guard->mutex);
		guard->stop = true;
		pthread_cond_broadcast(&guard->cond);
		pthread_mutex_unlock(&guard->mutex);
		pthread_join(guard->thread, NULL);
	}
	if (guard->watch != NULL)
		PQfinish(guard->watch);
	if (guard->admin != NULL)
		PQfinish(guard->admin);
	guard_record_free(guard->record);
	free(guard->seen);
	free(guard->conninfo);
	free(guard->state_dir);
	guard_strv_free(guard->app_roles);
	free(guard->database);
	free(guard->agent_role);
	free(guard->agent_app_name);
	pthread_cond_destroy(&guard->cond);
	pthread_mutex_destroy(&guard->mutex);
	pthread_mutex_destroy(&guard->admin_lock);
	free(guard);
}

/* ---- cleanup -------------------------------------------------------------------------------- */

static void
guard_log_manual_grants(const GuardRecord *record)
{
	for (size_t i = 0; i < record->ngrants; i++)
	{
		char label[256];

		guard_grantee_label(&record->grants[i], label, sizeof(label));
		log_hint("as role \"%s\": GRANT CONNECT ON DATABASE \"%s\" TO %s%s;", record->grants[i].grantor,
				 record->database, label, record->grants[i].grant_option ? " WITH GRANT OPTION" : "");
	}
}

bool
guard_cleanup(const char *state_dir, const char *target_conninfo)
{
	GuardRecord *record = NULL;
	PGconn *conn = NULL;
	PGresult *res = NULL;
	char *owner = NULL;
	bool ok = false;

	if (!guard_record_load(state_dir, &record))
		goto cleanup;
	if (record == NULL || record->lifted || record->ngrants == 0)
	{
		ok = true;
		goto cleanup;
	}
	if (target_conninfo == NULL)
	{
		log_error("CONNECT on database \"%s\" of the target is still revoked by the target guard",
				  record->database);
		log_detail("cleanup removes the record of what to give back");
		log_hint("run cleanup with --target to restore it, or restore it by hand and remove \"%s/%s\"",
				 state_dir, GUARD_FILE);
		guard_log_manual_grants(record);
		goto cleanup;
	}
	conn = conninfo_connect(target_conninfo, CONN_NORMAL, "cleanup", "target");
	if (conn == NULL)
		goto cleanup;
	res = PQexec(conn, "SELECT current_database()");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		log_error("could not identify the target database: %s", conninfo_result_error(res));
		goto cleanup;
	}
	if (strcmp(PQgetvalue(res, 0, 0), record->database) != 0)
	{
		log_error("the target guard revoked CONNECT on database \"%s\", but --target names database \"%s\"",
				  record->database, PQgetvalue(res, 0, 0));
		log_hint("run cleanup with a --target for database \"%s\"", record->database);
		goto cleanup;
	}
	owner = guard_owner(conn, false);
	if (owner == NULL || !guard_restore(conn, state_dir, record, owner))
		goto cleanup;
	log_info("target guard: CONNECT on database \"%s\" granted back (%zu grant%s)", record->database,
			 record->ngrants, record->ngrants == 1 ? "" : "s");
	ok = true;
cleanup:
	PQclear(res);
	if (conn != NULL)
		PQfinish(conn);
	free(owner);
	guard_record_free(record);
	return ok;
}
