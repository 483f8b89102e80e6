/*
 * The cutover state machine, on its own thread in the running agent. Everything slow (lag,
 * parity, sequences read, PgBouncer checked) happens before the fence; inside it only the
 * drain, the sequences, the final parity and the switch, so the write pause stays short.
 * Until the switch every failure rolls back: PgBouncer resumed on the source, the guard
 * reinstated. The step reached is persisted in <state-dir>/cutover.json.
 */
#include "switchyard/cutover.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "switchyard/conninfo.h"
#include "switchyard/fence.h"
#include "switchyard/fileio.h"
#include "switchyard/log.h"
#include "switchyard/monotonic.h"
#include "switchyard/text_array.h"

#define CUTOVER_DEFAULT_MAX_PAUSE_MS 5000
#define CUTOVER_DEFAULT_MAX_LAG (UINT64_C(16) * 1024 * 1024)
#define CUTOVER_FILE "cutover.json"
#define CUTOVER_REPORT_FILE "cutover-report.json"
#define CUTOVER_STEP_FILE "cutover-step"

typedef struct CutoverTiming
{
	CutoverStep step;
	double ms;
	bool concurrent;            /* ran alongside the other steps: not part of the pause's sum */
} CutoverTiming;

/*
 * The sequences step on its own thread and connections: it needs only the fence, so it runs
 * alongside the drain and the final parity instead of adding its round trips to the pause.
 */
typedef struct CutoverSequences
{
	pthread_t thread;
	bool started;
	PGconn *source;             /* its own: the drain uses the cutover's source session meanwhile */
	PGconn *target;
	bool ok;
	int set;
	double ms;
	char error[512];
} CutoverSequences;

/* How long the preflight waits for the guard to see foreign sessions end (it looks every 2 s). */
#define CUTOVER_GUARD_SETTLE_MS 5000
/* After RESUME: how long to watch PgBouncer serve the held clients, and how often to look. */
#define CUTOVER_CLIENTS_WAIT_MS 3000
#define CUTOVER_CLIENTS_POLL_US 10000
/* How long one of those looks may take before the watch gives up. */
#define CUTOVER_CONSOLE_WAIT_MS 1000

struct Cutover
{
	CutoverOptions options;
	char *state_dir;
	char *source_conninfo;
	char *target_conninfo;
	char *pgbouncer;
	char *pgbouncer_db;
	char *pgbouncer_ini;
	char *fail_at;
	char *stall_at;
	char parity_plan[400];    /* what the final parity will compare, from the preflight */
	char dry_run_message[512];
	FenceRole *roles;         /* --fence read-only: the roles and their settings before it */
	int nroles;

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mutex;
	CutoverStatus status;       /* under mutex */

	/* the thread's own */
	PGconn *source;
	PGconn *target;
	PGconn *bouncer;
	char target_host[256];
	char target_port[32];
	char target_dbname[256];
	bool paused;
	bool ini_rewritten;
	bool guard_lifted;
	bool claims;                /* the record claims every change the steps inside the fence may make */
	bool roles_read_only;       /* the roles' settings are (maybe) changed: restore them */
	bool foreign_record;        /* cutover.json is an earlier cutover's: leave it alone */
	char read_only_since[64];   /* the source's clock just before they were changed */
	char ini_backup[1024];
	double fence_started_ms;
	double pause_ms;
	double resumed_ms;            /* when PgBouncer took RESUME (cutover_now_ms), 0 before */
	double clients_served_ms;     /* from RESUME until no client waited for the target, if seen */
	int clients_waiting;          /* still waiting when the watch gave up, if it did */
	Lsn fence_lsn;
	uint64_t rows_verified;
	int sequences_set;
	void *parity;               /* prepared final parity */
	CutoverSequences sequences;
	CutoverTiming timings[16];
	int ntimings;
	char failure[512];
	char undone[512];           /* the first thing the rollback left undone, and what to do */
};

static const char *const cutover_step_names[] = {
	"idle", "preflight", "fence", "drain", "sequences", "parity", "lift-guard", "switch",
	"report", "done", "aborted", "checked"
};

const char *
cutover_step_name(CutoverStep step)
{
	return (size_t) step < sizeof(cutover_step_names) / sizeof(cutover_step_names[0])
		? cutover_step_names[step] : "unknown";
}

static double
cutover_now_ms(void)
{
	return (double) monotonic_us() / 1000.0;
}

static void
cutover_fail(Cutover *cutover, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The first failure is the reason; it is logged where it happens. */
static void
cutover_fail(Cutover *cutover, const char *fmt, ...)
{
	va_list args;

	if (cutover->failure[0] != '\0')
		return;
	va_start(args, fmt);
	vsnprintf(cutover->failure, sizeof(cutover->failure), fmt, args);
	va_end(args);
	log_error("cutover: %s", cutover->failure);
}

/* ---- persisted progress ----------------------------------------------------------------- */

static bool
cutover_write_json(const char *dir, const char *name, json_object *root)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return fileio_write_text(path, json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
																  JSON_C_TO_STRING_NOSLASHESCAPE), 0600);
}

static const char *
cutover_fence_name(const Cutover *cutover)
{
	if (cutover->options.read_only_fence)
		return "read-only";
	return cutover->pgbouncer != NULL ? "pgbouncer" : "manual";
}

/*
 * What a restart needs to roll back or complete: where PgBouncer stands and which file to
 * restore, whether the guard was lifted, the roles' settings before the read-only fence.
 * Written before each change it describes, so a crash can only make it claim a change that
 * was not made (undoing that is a no-op), never miss one. So the record written as the fence
 * begins claims all of them at once (PAUSE, guard lifted, ini rewritten): inside the write
 * pause only the point of no return is written, each fsync'd write costs milliseconds there.
 */
static void
cutover_persist(Cutover *cutover, CutoverStep step)
{
	json_object *root = json_object_new_object();
	char *bouncer = cutover->pgbouncer != NULL ? conninfo_redact(cutover->pgbouncer) : NULL;
	bool bouncer_claimed = cutover->claims && cutover->pgbouncer != NULL;
	bool guard_claimed = cutover->claims && cutover->options.guard != NULL;
	char step_path[1024];

	json_object_object_add(root, "step", json_object_new_string(cutover_step_name(step)));
	json_object_object_add(root, "pgbouncer", bouncer != NULL ? json_object_new_string(bouncer) : NULL);
	json_object_object_add(root, "pgbouncer_db",
						   cutover->pgbouncer_db != NULL ? json_object_new_string(cutover->pgbouncer_db) : NULL);
	json_object_object_add(root, "pgbouncer_ini",
						   cutover->pgbouncer_ini != NULL ? json_object_new_string(cutover->pgbouncer_ini) : NULL);
	json_object_object_add(root, "ini_backup",
						   cutover->ini_backup[0] ? json_object_new_string(cutover->ini_backup) : NULL);
	json_object_object_add(root, "fence", json_object_new_string(cutover_fence_name(cutover)));
	json_object_object_add(root, "paused", json_object_new_boolean(cutover->paused || bouncer_claimed));
	json_object_object_add(root, "ini_rewritten", json_object_new_boolean(cutover->ini_rewritten || bouncer_claimed));
	json_object_object_add(root, "guard_lifted", json_object_new_boolean(cutover->guard_lifted || guard_claimed));
	if (cutover->roles_read_only)
	{
		json_object *roles = json_object_new_array();

		for (int i = 0; i < cutover->nroles; i++)
		{
			json_object *role = json_object_new_object();

			json_object_object_add(role, "role", json_object_new_string(cutover->roles[i].role));
			json_object_object_add(role, "previous", cutover->roles[i].previous != NULL
								   ? json_object_new_string(cutover->roles[i].previous) : NULL);
			json_object_array_add(roles, role);
		}
		json_object_object_add(root, "read_only_roles", roles);
		json_object_object_add(root, "read_only_since", json_object_new_string(cutover->read_only_since));
	}
	json_object_object_add(root, "switched", json_object_new_boolean(step == CUTOVER_REPORT || step == CUTOVER_DONE));
	if (!cutover_write_json(cutover->state_dir, CUTOVER_FILE, root))
		log_warning("cutover: could not persist the step reached");
	/* the record is newer now */
	snprintf(step_path, sizeof(step_path), "%s/%s", cutover->state_dir, CUTOVER_STEP_FILE);
	unlink(step_path);
	json_object_put(root);
	free(bouncer);
}

/*
 * The step reached inside the fence, for the log of a restart only: the record already
 * claims what the step may change, so this is neither fsync'd nor read for anything else.
 */
static void
cutover_note_step(Cutover *cutover, CutoverStep step)
{
	char path[1024];
	char temp[1100];
	FILE *file;

	snprintf(path, sizeof(path), "%s/%s", cutover->state_dir, CUTOVER_STEP_FILE);
	snprintf(temp, sizeof(temp), "%s.tmp", path);
	file = fopen(temp, "w");
	if (file == NULL)
		return;
	fprintf(file, "%s\n", cutover_step_name(step));
	if (fclose(file) != 0 || rename(temp, path) != 0)
		unlink(temp);
}

static void
cutover_enter(Cutover *cutover, CutoverStep step)
{
	pthread_mutex_lock(&cutover->mutex);
	cutover->status.step = step;
	pthread_mutex_unlock(&cutover->mutex);
	if (cutover->options.dry_run)
		;
	else if (cutover->claims && step != CUTOVER_FENCE)
		cutover_note_step(cutover, step);
	else
		cutover_persist(cutover, step);
	log_info("cutover: %s", cutover_step_name(step));
}

/*
 * A test hook (SWITCHYARD_CUTOVER_STALL_AT=POINT[:SECONDS], default 120 s): stops the cutover
 * at a point for a while, so a test can look at the fence, or kill the agent there and check
 * what the restart makes of it. Points are the step names and three inside the switch:
 * ini-rewritten (file written, no RELOAD yet), reloaded (PgBouncer seen pointing at the
 * target, not persisted yet) and switched (persisted, no RESUME yet).
 */
static void
cutover_stall(Cutover *cutover, const char *point)
{
	size_t len = strlen(point);
	int seconds = 120;

	if (cutover->stall_at == NULL || strncmp(cutover->stall_at, point, len) != 0 ||
		(cutover->stall_at[len] != '\0' && cutover->stall_at[len] != ':'))
		return;
	if (cutover->stall_at[len] == ':')
		seconds = atoi(cutover->stall_at + len + 1);
	log_warning("cutover: stalled at %s for %d s (SWITCHYARD_CUTOVER_STALL_AT, a test hook)", point, seconds);
	for (int i = 0; i < seconds * 10; i++)
	{
		struct timespec nap = {0, 100000000L};

		nanosleep(&nap, NULL);
	}
}

/*
 * Another (SWITCHYARD_CUTOVER_FAIL_AT=POINT[,POINT...]): a failure is forced at each point
 * listed. Points are the step names, reloaded (see above), rollback-reload: the rollback's
 * RELOAD of the restored ini counts as failed, PgBouncer is not asked, and
 * rollback-session-lost: the session to PgBouncer's console breaks just before that RELOAD.
 */
static bool
cutover_fail_listed(const Cutover *cutover, const char *point)
{
	size_t len = strlen(point);
	const char *item = cutover->fail_at;

	while (item != NULL)
	{
		if (strncmp(item, point, len) == 0 && (item[len] == '\0' || item[len] == ','))
			return true;
		item = strchr(item, ',');
		if (item != NULL)
			item++;
	}
	return false;
}

static bool
cutover_forced_at(Cutover *cutover, const char *point)
{
	cutover_stall(cutover, point);
	if (!cutover_fail_listed(cutover, point))
		return false;
	cutover_fail(cutover, "failure forced at %s (SWITCHYARD_CUTOVER_FAIL_AT)", point);
	return true;
}

static bool
cutover_forced(Cutover *cutover, CutoverStep step)
{
	return cutover_forced_at(cutover, cutover_step_name(step));
}

static bool
cutover_within_pause(Cutover *cutover)
{
	double elapsed;

	if (cutover->fence_started_ms == 0)
		return true;
	elapsed = cutover_now_ms() - cutover->fence_started_ms;
	if (elapsed <= cutover->options.max_pause_ms)
		return true;
	cutover_fail(cutover, "the write pause reached %.0f ms, over --max-pause %d ms", elapsed,
				 cutover->options.max_pause_ms);
	return false;
}

/* ---- PgBouncer's admin console ---------------------------------------------------------- */

/* PgBouncer rejects the startup options the agent's other sessions carry: a plain connection. */
static PGconn *
cutover_bouncer_connect(const char *conninfo)
{
	PGconn *conn = PQconnectdb(conninfo);

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
	{
		log_error("could not connect to the PgBouncer admin console: %s",
				  conn != NULL ? conninfo_error(conn) : "out of memory");
		log_hint("--pgbouncer takes a connection string to PgBouncer's \"pgbouncer\" database, "
				 "as a user listed in admin_users");
		if (conn != NULL)
			PQfinish(conn);
		return NULL;
	}
	return conn;
}

static bool
cutover_bouncer_command(Cutover *cutover, const char *verb, const char *db)
{
	char sql[512];
	PGresult *res;
	bool ok;

	if (db != NULL)
		snprintf(sql, sizeof(sql), "%s %s", verb, db);
	else
		snprintf(sql, sizeof(sql), "%s", verb);
	res = PQexec(cutover->bouncer, sql);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
		cutover_fail(cutover, "PgBouncer refused %s: %s", sql, conninfo_result_error(res));
	PQclear(res);
	return ok;
}

/*
 * Where PgBouncer sends database db now: host, port, dbname from SHOW DATABASES. 1 found,
 * 0 no such database, -1 the command failed (*res_error then holds why).
 */
static int
cutover_bouncer_location(PGconn *bouncer, const char *db, char *host, size_t hostlen, char *port, size_t portlen,
						 char *dbname, size_t dblen, char *res_error, size_t errlen)
{
	PGresult *res = PQexec(bouncer, "SHOW DATABASES");
	int found = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		snprintf(res_error, errlen, "%s", conninfo_result_error(res));
		PQclear(res);
		return -1;
	}
	for (int i = 0; i < PQntuples(res) && !found; i++)
	{
		if (strcmp(PQgetvalue(res, i, PQfnumber(res, "name")), db) != 0)
			continue;
		snprintf(host, hostlen, "%s", PQgetvalue(res, i, PQfnumber(res, "host")));
		snprintf(port, portlen, "%s", PQgetvalue(res, i, PQfnumber(res, "port")));
		snprintf(dbname, dblen, "%s", PQgetvalue(res, i, PQfnumber(res, "database")));
		found = 1;
	}
	PQclear(res);
	return found;
}

static bool
cutover_bouncer_target(Cutover *cutover, char *host, size_t hostlen, char *port, size_t portlen,
					   char *dbname, size_t dblen)
{
	char why[512] = "";
	int found = cutover_bouncer_location(cutover->bouncer, cutover->pgbouncer_db, host, hostlen, port, portlen,
										 dbname, dblen, why, sizeof(why));

	if (found < 0)
		cutover_fail(cutover, "PgBouncer SHOW DATABASES failed: %s", why);
	else if (found == 0)
		cutover_fail(cutover, "PgBouncer has no database \"%s\"", cutover->pgbouncer_db);
	return found > 0;
}

/* PgBouncer's host, port, dbname are the connection string's (where it names them). */
static bool
cutover_same_place(const char *host, const char *port, const char *db, const char *pb_host, const char *pb_port,
				   const char *pb_db)
{
	return (!db[0] || strcmp(db, pb_db) == 0) && (!port[0] || strcmp(port, pb_port) == 0) &&
		(!host[0] || strcmp(host, pb_host) == 0);
}

/* host, port and dbname of a libpq connection string ("" when it leaves them out). */
static bool
cutover_conninfo_parts(const char *conninfo, char *host, size_t hostlen, char *port, size_t portlen,
					   char *dbname, size_t dblen)
{
	char *errmsg = NULL;
	PQconninfoOption *options = PQconninfoParse(conninfo, &errmsg);

	host[0] = port[0] = dbname[0] = '\0';
	if (options == NULL)
	{
		PQfreemem(errmsg);
		return false;
	}
	for (PQconninfoOption *opt = options; opt->keyword != NULL; opt++)
	{
		if (opt->val == NULL)
			continue;
		if (strcmp(opt->keyword, "host") == 0)
			snprintf(host, hostlen, "%s", opt->val);
		else if (strcmp(opt->keyword, "port") == 0)
			snprintf(port, portlen, "%s", opt->val);
		else if (strcmp(opt->keyword, "dbname") == 0)
			snprintf(dbname, dblen, "%s", opt->val);
	}
	PQconninfoFree(options);
	return true;
}

/* ---- pgbouncer.ini ----------------------------------------------------------------------- */

static bool
cutover_is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* The connection settings a database line points with; everything else on it is kept. */
static bool
cutover_is_location_key(const char *key, size_t len)
{
	static const char *const keys[] = {"host", "port", "dbname"};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strlen(keys[i]) == len && strncmp(keys[i], key, len) == 0)
			return true;
	return false;
}

char *
cutover_rewrite_ini(const char *text, const char *db, const char *host, const char *port,
					const char *dbname)
{
	size_t cap = strlen(text) + strlen(host) + strlen(port) + strlen(dbname) + 64;
	char *out = malloc(cap);
	const char *line = text;
	size_t used = 0;
	bool in_databases = false;
	bool replaced = false;

	if (out == NULL)
		return NULL;
	while (*line)
	{
		const char *end = strchr(line, '\n');
		size_t len = end != NULL ? (size_t) (end - line) + 1 : strlen(line);
		const char *p = line;
		bool handled = false;

		while (p < line + len && cutover_is_space(*p))
			p++;
		if (*p == '[')
			in_databases = strncmp(p, "[databases]", 11) == 0;
		else if (in_databases && !replaced && strncmp(p, db, strlen(db)) == 0)
		{
			const char *q = p + strlen(db);

			while (cutover_is_space(*q))
				q++;
			if (*q == '=')
			{
				/* keep the other settings of the line (pool_size, user, ...) */
				const char *rest = q + 1;
				const char *stop = line + len;

				used += (size_t) snprintf(out + used, cap - used, "%.*s= host=%s port=%s dbname=%s",
										  (int) (p - line + strlen(db) + (q - (p + strlen(db)))), line,
										  host, port, dbname);
				while (rest < stop)
				{
					const char *key;
					const char *eq;
					const char *value_end;

					while (rest < stop && (cutover_is_space(*rest) || *rest == '\n' || *rest == '\r'))
						rest++;
					if (rest >= stop)
						break;
					key = rest;
					eq = key;
					while (eq < stop && *eq != '=' && !cutover_is_space(*eq) && *eq != '\n')
						eq++;
					value_end = eq;
					if (eq < stop && *eq == '=')
					{
						value_end = eq + 1;
						if (value_end < stop && *value_end == '\'')
						{
							value_end++;
							while (value_end < stop && *value_end != '\'')
								value_end++;
							if (value_end < stop)
								value_end++;
						}
						else
							while (value_end < stop && !cutover_is_space(*value_end) && *value_end != '\n' &&
								   *value_end != '\r')
								value_end++;
					}
					if (!cutover_is_location_key(key, (size_t) (eq - key)))
					{
						size_t need = (size_t) (value_end - key) + 2;

						if (used + need + 2 >= cap)
						{
							char *bigger = realloc(out, cap * 2 + need);

							if (bigger == NULL)
							{
								free(out);
								return NULL;
							}
							out = bigger;
							cap = cap * 2 + need;
						}
						used += (size_t) snprintf(out + used, cap - used, " %.*s", (int) (value_end - key), key);
					}
					rest = value_end;
				}
				out[used++] = '\n';
				out[used] = '\0';
				replaced = true;
				handled = true;
			}
		}
		if (!handled)
		{
			if (used + len + 1 >= cap)
			{
				char *bigger = realloc(out, cap * 2 + len);

				if (bigger == NULL)
				{
					free(out);
					return NULL;
				}
				out = bigger;
				cap = cap * 2 + len;
			}
			memcpy(out + used, line, len);
			used += len;
			out[used] = '\0';
		}
		line += len;
	}
	if (!replaced)
	{
		free(out);
		return NULL;
	}
	return out;
}

static char *
cutover_read_file(const char *path)
{
	FILE *file = fopen(path, "r");
	char *text = NULL;
	long size;

	if (file == NULL)
		return NULL;
	if (fseek(file, 0, SEEK_END) == 0 && (size = ftell(file)) >= 0 && fseek(file, 0, SEEK_SET) == 0)
	{
		text = malloc((size_t) size + 1);
		if (text != NULL && fread(text, 1, (size_t) size, file) == (size_t) size)
			text[size] = '\0';
		else
		{
			free(text);
			text = NULL;
		}
	}
	fclose(file);
	return text;
}

/* ---- the steps --------------------------------------------------------------------------- */

/* concurrent: the step ran alongside the others, so it is not part of the pause's sum */
static void
cutover_add_timing(Cutover *cutover, CutoverStep step, double ms, bool concurrent)
{
	if (cutover->ntimings < (int) (sizeof(cutover->timings) / sizeof(cutover->timings[0])))
	{
		cutover->timings[cutover->ntimings].step = step;
		cutover->timings[cutover->ntimings].ms = ms;
		cutover->timings[cutover->ntimings].concurrent = concurrent;
		cutover->ntimings++;
	}
}

static void
cutover_time(Cutover *cutover, CutoverStep step, double started)
{
	cutover_add_timing(cutover, step, cutover_now_ms() - started, false);
}

static bool
cutover_query_lsn(Cutover *cutover, PGconn *conn, const char *sql, Lsn *out)
{
	PGresult *res = PQexec(conn, sql);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
		lsn_parse(PQgetvalue(res, 0, 0), out);

	if (!ok)
		cutover_fail(cutover, "could not read the source's WAL position: %s", conninfo_result_error(res));
	PQclear(res);
	return ok;
}

/* The latest verify must be clean: its report says so table by table. */
static bool
cutover_check_parity_report(Cutover *cutover)
{
	char path[1024];
	json_object *root;
	json_object *tables = NULL;
	int dirty = 0;

	snprintf(path, sizeof(path), "%s/parity/latest.json", cutover->state_dir);
	root = json_object_from_file(path);
	if (root == NULL)
	{
		cutover_fail(cutover, "no parity result yet: run switchyard verify first");
		return false;
	}
	if (!json_object_object_get_ex(root, "tables", &tables))
		tables = NULL;
	if (tables != NULL && json_object_is_type(tables, json_type_object))
	{
		json_object_object_foreach(tables, name, table)
		{
			json_object *value = NULL;
			int64_t differences = 0;

			if (json_object_object_get_ex(table, "differences", &value))
				differences = json_object_get_int64(value);
			if (differences != 0 || (json_object_object_get_ex(table, "schema_issues", &value) &&
									 json_object_get_int(value) > 0))
			{
				log_error("cutover: the latest verify of table %s found differences", name);
				dirty++;
			}
		}
	}
	else if (tables != NULL && json_object_is_type(tables, json_type_array))
	{
		for (size_t i = 0; i < json_object_array_length(tables); i++)
		{
			json_object *table = json_object_array_get_idx(tables, i);
			json_object *value = NULL;

			if (json_object_object_get_ex(table, "differences", &value) && json_object_get_int64(value) != 0)
				dirty++;
			else if (json_object_object_get_ex(table, "clean", &value) && !json_object_get_boolean(value))
				dirty++;
		}
	}
	json_object_put(root);
	if (dirty > 0)
	{
		cutover_fail(cutover, "the latest verify found differences in %d tables: repair them first "
					 "(switchyard verify --repair)", dirty);
		return false;
	}
	return true;
}

static bool
cutover_preflight(Cutover *cutover)
{
	ApplyStats stats;
	GuardStats guard;
	Lsn current = LSN_INVALID;
	PGresult *res = NULL;
	char src_host[256], src_port[32], src_db[256];
	char pb_host[256], pb_port[32], pb_db[256];
	double started = cutover_now_ms();

	{
		char path[1024];

		/* an earlier rollback left something undone: a new record would forget it */
		snprintf(path, sizeof(path), "%s/%s", cutover->state_dir, CUTOVER_FILE);
		if (!cutover->options.dry_run && access(path, F_OK) == 0)
		{
			cutover->foreign_record = true;
			cutover_fail(cutover, "an earlier cutover was not fully rolled back (\"%s\"): restart the agent to "
						 "finish that first", path);
			return false;
		}
	}
	cutover_enter(cutover, CUTOVER_PREFLIGHT);
	if (cutover_forced(cutover, CUTOVER_PREFLIGHT))
		return false;
	cutover->source = conninfo_connect(cutover->source_conninfo, CONN_NORMAL, "cutover", "source");
	cutover->target = conninfo_connect(cutover->target_conninfo, CONN_NORMAL, "cutover", "target");
	if (cutover->source == NULL || cutover->target == NULL)
	{
		cutover_fail(cutover, "could not connect to the %s", cutover->source == NULL ? "source" : "target");
		return false;
	}
	/* lag */
	if (!cutover_query_lsn(cutover, cutover->source, "SELECT pg_current_wal_lsn()", &current))
		return false;
	apply_get_stats(cutover->options.applier, &stats);
	if (stats.stopped || !stats.connected)
	{
		cutover_fail(cutover, "the applier is not running: %s", stats.last_error[0] ? stats.last_error : "stopped");
		return false;
	}
	if (current > stats.applied_lsn && current - stats.applied_lsn > cutover->options.max_lag_bytes)
	{
		cutover_fail(cutover, "replication lag is %llu bytes, above the %llu allowed: wait for the target to "
					 "catch up", (unsigned long long) (current - stats.applied_lsn),
					 (unsigned long long) cutover->options.max_lag_bytes);
		return false;
	}
	{
		Lsn visible;

		if (cutover->options.spool != NULL && spool_hold_visible(cutover->options.spool, &visible))
		{
			cutover_fail(cutover, "applying is paused or held by a verify: switchyard resume, or let the verify end");
			return false;
		}
	}
	/* parity */
	if (!cutover_check_parity_report(cutover))
		return false;
	/* guard */
	if (cutover->options.guard != NULL)
	{
		double until = cutover_now_ms() + CUTOVER_GUARD_SETTLE_MS;

		guard_get_stats(cutover->options.guard, &guard);
		/* its count is from its last look: a session that just ended shows until the next one */
		while ((!guard.watching || guard.sessions_now > 0) && cutover_now_ms() < until)
		{
			struct timespec nap = {0, 200 * 1000 * 1000};

			nanosleep(&nap, NULL);
			guard_get_stats(cutover->options.guard, &guard);
		}
		if (!guard.watching || guard.sessions_now > 0)
		{
			cutover_fail(cutover, "the target guard %s (last: %s): end foreign sessions on the target first",
						 guard.watching ? "sees foreign sessions on the target" : "is not watching the target",
						 guard.last_violation[0] ? guard.last_violation : "none");
			return false;
		}
		if (guard.violations_total > 0)
			log_warning("cutover: the target guard saw %llu foreign sessions since the start (last: %s)",
						(unsigned long long) guard.violations_total, guard.last_violation);
	}
	/* sequences readable */
	res = PQexec(cutover->source, "SELECT count(*) FROM pg_sequences WHERE last_value IS NOT NULL OR last_value IS NULL");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		cutover_fail(cutover, "cannot read the source's sequences: %s", conninfo_result_error(res));
		PQclear(res);
		return false;
	}
	PQclear(res);
	/* the sequences step's own sessions: it runs alongside the drain and the final parity */
	cutover->sequences.source = conninfo_connect(cutover->source_conninfo, CONN_NORMAL, "cutover", "source");
	cutover->sequences.target = conninfo_connect(cutover->target_conninfo, CONN_NORMAL, "cutover", "target");
	if (cutover->sequences.source == NULL || cutover->sequences.target == NULL)
	{
		cutover_fail(cutover, "could not connect to the %s", cutover->sequences.source == NULL ? "source" : "target");
		return false;
	}
	/* PgBouncer */
	if (cutover->pgbouncer != NULL)
	{
		char *ini;
		char *rewritten;

		if (!cutover_conninfo_parts(cutover->target_conninfo, cutover->target_host, sizeof(cutover->target_host),
									cutover->target_port, sizeof(cutover->target_port),
									cutover->target_dbname, sizeof(cutover->target_dbname)) ||
			cutover->target_host[0] == '\0' || cutover->target_dbname[0] == '\0')
		{
			cutover_fail(cutover, "the target connection string must name host and dbname for PgBouncer");
			return false;
		}
		if (cutover->target_port[0] == '\0')
			snprintf(cutover->target_port, sizeof(cutover->target_port), "5432");
		cutover->bouncer = cutover_bouncer_connect(cutover->pgbouncer);
		if (cutover->bouncer == NULL)
		{
			cutover_fail(cutover, "PgBouncer is not reachable");
			return false;
		}
		if (!cutover_bouncer_target(cutover, pb_host, sizeof(pb_host), pb_port, sizeof(pb_port), pb_db, sizeof(pb_db)))
			return false;
		if (!cutover_conninfo_parts(cutover->source_conninfo, src_host, sizeof(src_host), src_port,
									sizeof(src_port), src_db, sizeof(src_db)))
			return false;
		if (!cutover_same_place(src_host, src_port, src_db, pb_host, pb_port, pb_db))
		{
			cutover_fail(cutover, "PgBouncer database \"%s\" points at host=%s port=%s dbname=%s, not at the source",
						 cutover->pgbouncer_db, pb_host, pb_port, pb_db);
			return false;
		}
		ini = cutover_read_file(cutover->pgbouncer_ini);
		if (ini == NULL)
		{
			cutover_fail(cutover, "cannot read PgBouncer's configuration \"%s\": %s", cutover->pgbouncer_ini,
						 strerror(errno));
			return false;
		}
		rewritten = cutover_rewrite_ini(ini, cutover->pgbouncer_db, cutover->target_host,
										cutover->target_port, cutover->target_dbname);
		free(ini);
		if (rewritten == NULL)
		{
			cutover_fail(cutover, "\"%s\" has no line for database \"%s\" in its [databases] section",
						 cutover->pgbouncer_ini, cutover->pgbouncer_db);
			return false;
		}
		free(rewritten);
		if (access(cutover->pgbouncer_ini, W_OK) != 0)
		{
			cutover_fail(cutover, "cannot write PgBouncer's configuration \"%s\": %s", cutover->pgbouncer_ini,
						 strerror(errno));
			return false;
		}
		/* the rewritten file keeps the owner: found out now, not inside the fence */
		if (!fileio_can_keep_owner(cutover->pgbouncer_ini))
		{
			cutover_fail(cutover, "cannot write PgBouncer's configuration \"%s\" under its owner and group: %s; "
						 "run the agent as the file's owner (in its group) or as root", cutover->pgbouncer_ini,
						 strerror(errno));
			return false;
		}
		/* the backup is written now, outside the fence */
		ini = cutover_read_file(cutover->pgbouncer_ini);
		snprintf(cutover->ini_backup, sizeof(cutover->ini_backup), "%s.switchyard-backup", cutover->pgbouncer_ini);
		if (ini == NULL ||
			(!cutover->options.dry_run && !fileio_write_atomic(cutover->ini_backup, ini, strlen(ini), 0600)))
		{
			free(ini);
			cutover_fail(cutover, "could not keep a backup of \"%s\"", cutover->pgbouncer_ini);
			return false;
		}
		free(ini);
	}
	/* the read-only fence: the roles are there and what they have set now is known */
	if (cutover->options.read_only_fence)
	{
		char why[512] = "";

		if (!fence_read_only_check(cutover->source, cutover->roles, cutover->nroles, why, sizeof(why)))
		{
			cutover_fail(cutover, "%s", why);
			return false;
		}
	}
	/* the slow part of the final parity happens here, outside the fence */
	if (cutover->options.final_parity.prepare != NULL)
	{
		char why[256] = "";

		if (!cutover->options.final_parity.prepare(cutover->options.final_parity.arg, &cutover->parity, why,
												   sizeof(why)))
		{
			cutover_fail(cutover, "could not prepare the final parity: %s", why);
			return false;
		}
		if (!cutover->options.dry_run && cutover->options.final_parity.before_fence != NULL)
		{
			bool clean = false;
			uint64_t rows = 0;
			double at = cutover_now_ms();

			/* what the stream touched so far, compared now: the fence keeps only the rest */
			if (!cutover->options.final_parity.before_fence(cutover->parity, &clean, &rows, why, sizeof(why)))
			{
				cutover_fail(cutover, "the parity before the fence failed: %s", why);
				return false;
			}
			if (!clean)
			{
				cutover_fail(cutover, "the parity before the fence found differences: %s", why);
				return false;
			}
			log_info("cutover: parity before the fence: equal, %" PRIu64 " rows in %.1f ms", rows,
					 cutover_now_ms() - at);
		}
		if (cutover->options.final_parity.describe != NULL)
		{
			cutover->options.final_parity.describe(cutover->parity, cutover->parity_plan,
												   sizeof(cutover->parity_plan));
			log_info("cutover: %s", cutover->parity_plan);
		}
	}
	cutover_time(cutover, CUTOVER_PREFLIGHT, started);
	return true;
}

static bool
cutover_fence(Cutover *cutover)
{
	double started;

	/* the record is written (and fsync'd) before the pause begins: see cutover_persist */
	cutover->claims = true;
	cutover_enter(cutover, CUTOVER_FENCE);
	started = cutover_now_ms();
	cutover->fence_started_ms = started;
	if (cutover_forced(cutover, CUTOVER_FENCE))
		return false;
	if (cutover->bouncer != NULL)
	{
		/* in-flight transactions finish; new ones wait inside PgBouncer */
		cutover->paused = true;
		if (!cutover_bouncer_command(cutover, "PAUSE", cutover->pgbouncer_db))
			return false;
	}
	else if (cutover->options.read_only_fence)
	{
		char why[512] = "";
		int ended = 0;

		if (!fence_source_clock(cutover->source, cutover->read_only_since, sizeof(cutover->read_only_since), why,
								sizeof(why)))
		{
			cutover_fail(cutover, "%s", why);
			return false;
		}
		/* recorded before the change: a crash in between restores what was not changed yet */
		cutover->roles_read_only = true;
		cutover_persist(cutover, CUTOVER_FENCE);
		if (!fence_read_only_apply(cutover->source, cutover->roles, cutover->nroles, &ended, why, sizeof(why)))
		{
			cutover_fail(cutover, "%s", why);
			log_hint("the source connection needs a superuser, or CREATEROLE and pg_signal_backend");
			return false;
		}
		log_info("cutover: the application roles are read-only on the source; %d of their sessions ended", ended);
	}
	cutover_time(cutover, CUTOVER_FENCE, started);
	return cutover_within_pause(cutover);
}

static bool
cutover_drain(Cutover *cutover)
{
	double started = cutover_now_ms();
	ApplyStats stats;
	Lsn marker = LSN_INVALID;
	char lsnbuf[LSN_FORMAT_SIZE];

	cutover_enter(cutover, CUTOVER_DRAIN);
	if (cutover_forced(cutover, CUTOVER_DRAIN))
		return false;
	/* a marker in the stream: once the target is past it, it holds every fenced write */
	if (!cutover_query_lsn(cutover, cutover->source,
						   "SELECT pg_logical_emit_message(true, 'switchyard', 'cutover fence')", &marker))
		return false;
	cutover->fence_lsn = marker;
	for (;;)
	{
		struct timespec nap = {0, 200000};

		apply_get_stats(cutover->options.applier, &stats);
		if (stats.applied_lsn >= marker)
			break;
		if (stats.stopped)
		{
			cutover_fail(cutover, "the applier stopped while draining: %s", stats.last_error);
			return false;
		}
		if (!cutover_within_pause(cutover))
			return false;
		nanosleep(&nap, NULL);
	}
	log_info("cutover: target holds everything up to %s", lsn_format(marker, lsnbuf));
	cutover_time(cutover, CUTOVER_DRAIN, started);
	return cutover_within_pause(cutover);
}

/*
 * Sets the target's sequences to the source's values, read after the fence: nothing moves
 * them on the source any more, and the applier never touches them on the target.
 */
static bool
cutover_set_sequences(CutoverSequences *seq)
{
	PGresult *res = NULL;
	PGresult *set = NULL;
	char *names = NULL;
	char *values = NULL;
	size_t nused = 0, ncap = 0, vused = 0, vcap = 0;
	const char *params[2];
	bool ok = false;

	res = PQexec(seq->source,
				 "SELECT format('%I.%I', schemaname, sequencename), last_value::text "
				 "FROM pg_sequences WHERE last_value IS NOT NULL");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		snprintf(seq->error, sizeof(seq->error), "could not read the source's sequences: %s",
				 conninfo_result_error(res));
		goto cleanup;
	}
	if (PQntuples(res) == 0)
	{
		ok = true;
		goto cleanup;
	}
	for (int i = 0; i < PQntuples(res); i++)
		if (!text_array_append(&names, &nused, &ncap, PQgetvalue(res, i, 0), strlen(PQgetvalue(res, i, 0))) ||
			!text_array_append(&values, &vused, &vcap, PQgetvalue(res, i, 1), strlen(PQgetvalue(res, i, 1))))
		{
			snprintf(seq->error, sizeof(seq->error), "out of memory");
			goto cleanup;
		}
	if (!text_array_finish(&names, &nused, &ncap) || !text_array_finish(&values, &vused, &vcap))
	{
		snprintf(seq->error, sizeof(seq->error), "out of memory");
		goto cleanup;
	}
	params[0] = names;
	params[1] = values;
	/* one round trip for all of them */
	set = PQexecParams(seq->target,
					   "SELECT count(setval(to_regclass(s), v, true)) "
					   "FROM unnest($1::text[], $2::bigint[]) AS x(s, v) WHERE to_regclass(s) IS NOT NULL",
					   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(set) != PGRES_TUPLES_OK)
	{
		snprintf(seq->error, sizeof(seq->error), "could not set the target's sequences: %s",
				 conninfo_result_error(set));
		goto cleanup;
	}
	seq->set = atoi(PQgetvalue(set, 0, 0));
	ok = true;
cleanup:
	PQclear(res);
	PQclear(set);
	free(names);
	free(values);
	return ok;
}

static void *
cutover_sequences_main(void *arg)
{
	CutoverSequences *seq = arg;
	double started = cutover_now_ms();

	log_set_thread_name("cutover-seq");
	seq->ok = cutover_set_sequences(seq);
	seq->ms = cutover_now_ms() - started;
	return NULL;
}

/* Starts setting the sequences, right after the fence; cutover_sequences_wait collects it. */
static bool
cutover_sequences_start(Cutover *cutover)
{
	CutoverSequences *seq = &cutover->sequences;
	int rc;

	cutover_enter(cutover, CUTOVER_SEQUENCES);
	if (cutover_forced(cutover, CUTOVER_SEQUENCES))
		return false;
	rc = pthread_create(&seq->thread, NULL, cutover_sequences_main, seq);
	if (rc != 0)
	{
		cutover_fail(cutover, "could not start setting the sequences: %s", strerror(rc));
		return false;
	}
	seq->started = true;
	return true;
}

/* The sequences are set (or not); the thread is gone either way. */
static bool
cutover_sequences_wait(Cutover *cutover)
{
	CutoverSequences *seq = &cutover->sequences;

	if (!seq->started)
		return false;
	pthread_join(seq->thread, NULL);
	seq->started = false;
	cutover_add_timing(cutover, CUTOVER_SEQUENCES, seq->ms, true);
	if (!seq->ok)
	{
		cutover_fail(cutover, "%s", seq->error);
		return false;
	}
	cutover->sequences_set = seq->set;
	log_info("cutover: %d sequences set on the target in %.1f ms, alongside the drain and the final parity",
			 seq->set, seq->ms);
	return cutover_within_pause(cutover);
}

static bool
cutover_parity(Cutover *cutover)
{
	double started = cutover_now_ms();
	bool clean = false;
	char why[256] = "";

	cutover_enter(cutover, CUTOVER_PARITY);
	if (cutover_forced(cutover, CUTOVER_PARITY))
		return false;
	if (cutover->parity != NULL)
	{
		if (!cutover->options.final_parity.run(cutover->parity, &clean, &cutover->rows_verified, why, sizeof(why)))
		{
			cutover_fail(cutover, "the final parity could not run: %s", why);
			return false;
		}
		if (!clean)
		{
			cutover_fail(cutover, "the final parity found differences: %s", why);
			return false;
		}
	}
	cutover_time(cutover, CUTOVER_PARITY, started);
	return cutover_within_pause(cutover);
}

static bool
cutover_lift_guard(Cutover *cutover)
{
	double started = cutover_now_ms();

	cutover_enter(cutover, CUTOVER_LIFT_GUARD);
	if (cutover_forced(cutover, CUTOVER_LIFT_GUARD))
		return false;
	if (cutover->options.guard != NULL)
	{
		/* the fence's record claims it already */
		cutover->guard_lifted = true;
		if (!guard_lift(cutover->options.guard))
		{
			cutover_fail(cutover, "could not lift the target guard");
			return false;
		}
	}
	cutover_time(cutover, CUTOVER_LIFT_GUARD, started);
	return cutover_within_pause(cutover);
}

static bool
cutover_switch(Cutover *cutover)
{
	double started = cutover_now_ms();
	char host[256], port[32], dbname[256];
	char *ini = NULL;
	char *rewritten = NULL;
	bool ok = false;

	cutover_enter(cutover, CUTOVER_SWITCH);
	if (cutover_forced(cutover, CUTOVER_SWITCH) || !cutover_within_pause(cutover))
		return false;
	if (cutover->bouncer == NULL)
	{
		cutover_time(cutover, CUTOVER_SWITCH, started);
		return true;
	}
	ini = cutover_read_file(cutover->pgbouncer_ini);
	if (ini == NULL)
	{
		cutover_fail(cutover, "cannot read \"%s\": %s", cutover->pgbouncer_ini, strerror(errno));
		goto cleanup;
	}
	rewritten = cutover_rewrite_ini(ini, cutover->pgbouncer_db, cutover->target_host, cutover->target_port,
									cutover->target_dbname);
	if (rewritten == NULL)
	{
		cutover_fail(cutover, "\"%s\" has no line for database \"%s\" any more", cutover->pgbouncer_ini,
					 cutover->pgbouncer_db);
		goto cleanup;
	}
	/* the fence's record claims it already */
	cutover->ini_rewritten = true;
	if (!fileio_replace_keeping_mode(cutover->pgbouncer_ini, rewritten, strlen(rewritten)))
	{
		cutover_fail(cutover, "could not write \"%s\": %s", cutover->pgbouncer_ini, strerror(errno));
		goto cleanup;
	}
	cutover_stall(cutover, "ini-rewritten");
	if (!cutover_bouncer_command(cutover, "RELOAD", NULL))
		goto cleanup;
	if (!cutover_bouncer_target(cutover, host, sizeof(host), port, sizeof(port), dbname, sizeof(dbname)))
		goto cleanup;
	if (strcmp(host, cutover->target_host) != 0 || strcmp(port, cutover->target_port) != 0 ||
		strcmp(dbname, cutover->target_dbname) != 0)
	{
		cutover_fail(cutover, "after RELOAD PgBouncer still points database \"%s\" at host=%s port=%s dbname=%s",
					 cutover->pgbouncer_db, host, port, dbname);
		goto cleanup;
	}
	if (cutover_forced_at(cutover, "reloaded"))
		goto cleanup;
	/*
	 * The point of no return: the application is held in PgBouncer, which points at the
	 * target now. A restart from here completes the switch rather than undo it.
	 */
	cutover_persist(cutover, CUTOVER_REPORT);
	cutover_stall(cutover, "switched");
	if (!cutover_bouncer_command(cutover, "RESUME", cutover->pgbouncer_db))
	{
		log_warning("cutover: PgBouncer now points at the target but did not RESUME: run RESUME %s on its console",
					cutover->pgbouncer_db);
		cutover->failure[0] = '\0';
	}
	else
		cutover->resumed_ms = cutover_now_ms();
	cutover->paused = false;
	ok = true;
cleanup:
	cutover->pause_ms = cutover_now_ms() - cutover->fence_started_ms;
	free(ini);
	free(rewritten);
	cutover_time(cutover, CUTOVER_SWITCH, started);
	return ok;
}

/* One query on PgBouncer's console, answered before deadline (cutover_now_ms); NULL if not. */
static PGresult *
cutover_bouncer_query_by(PGconn *conn, const char *sql, double deadline)
{
	if (!PQsendQuery(conn, sql))
		return NULL;
	while (PQconsumeInput(conn) && PQisBusy(conn))
	{
		struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
		double left = deadline - cutover_now_ms();

		if (left <= 0)
			return NULL;    /* the session keeps the query: it is only closed after this */
		(void) poll(&pfd, 1, (int) left + 1);
	}
	return conninfo_first_result(conn);
}

/* Sums a SHOW POOLS column over the rows of the switched database (a missing column: 0). */
static int
cutover_pools_sum(const PGresult *res, const char *db, const char *column)
{
	int dbcol = PQfnumber(res, "database");
	int col = PQfnumber(res, column);
	int sum = 0;

	for (int i = 0; dbcol >= 0 && col >= 0 && i < PQntuples(res); i++)
		if (strcmp(PQgetvalue(res, i, dbcol), db) == 0)
			sum += atoi(PQgetvalue(res, i, col));
	return sum;
}

/*
 * After RESUME, PgBouncer logs in to the target for the held clients one connection at a
 * time (it never opens two at once for a pool): the clients' outage is the pause plus those
 * logins. Waits until no client waits any more, so that the agent's own teardown (reports,
 * fsyncs, closing its sessions) does not compete with them, and says how long it took. A
 * client may wait longer when the pool is smaller than the clients' concurrency; with no
 * server connection at all after a few seconds, the role likely cannot log in there.
 */
static void
cutover_watch_clients(Cutover *cutover)
{
	double deadline = cutover->resumed_ms + CUTOVER_CLIENTS_WAIT_MS;
	int waiting = -1;
	int servers = 0;

	if (cutover->bouncer == NULL || cutover->resumed_ms == 0)
		return;
	for (;;)
	{
		PGresult *res = cutover_bouncer_query_by(cutover->bouncer, "SHOW POOLS",
												  cutover_now_ms() + CUTOVER_CONSOLE_WAIT_MS);

		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQfnumber(res, "cl_waiting") < 0)
		{
			PQclear(res);
			log_info("cutover: could not watch PgBouncer serve the held clients (SHOW POOLS)");
			return;    /* unknown: the report leaves it out */
		}
		waiting = cutover_pools_sum(res, cutover->pgbouncer_db, "cl_waiting");
		servers = cutover_pools_sum(res, cutover->pgbouncer_db, "sv_active") +
			cutover_pools_sum(res, cutover->pgbouncer_db, "sv_idle") +
			cutover_pools_sum(res, cutover->pgbouncer_db, "sv_used");
		PQclear(res);
		if (waiting == 0 || cutover_now_ms() >= deadline)
			break;
		usleep(CUTOVER_CLIENTS_POLL_US);
	}
	if (waiting == 0)
	{
		cutover->clients_served_ms = cutover_now_ms() - cutover->resumed_ms;
		log_info("cutover: PgBouncer served every held client from the target %.1f ms after RESUME",
				 cutover->clients_served_ms);
		return;
	}
	cutover->clients_waiting = waiting;
	if (servers > 0)
		log_info("cutover: %d client%s of database \"%s\" still queue%s for one of its %d connections to the target "
				 "%d ms after RESUME (a pool smaller than the clients' concurrency)", waiting, waiting == 1 ? "" : "s",
				 cutover->pgbouncer_db, waiting == 1 ? "s" : "", servers, CUTOVER_CLIENTS_WAIT_MS);
	else
	{
		log_warning("cutover: %d client%s of database \"%s\" still wait%s %d ms after RESUME, and PgBouncer has no "
					"connection to the target", waiting, waiting == 1 ? "" : "s", cutover->pgbouncer_db,
					waiting == 1 ? "s" : "", CUTOVER_CLIENTS_WAIT_MS);
		log_hint("see PgBouncer's log: can the application's role log in to the target database?");
	}
}

/*
 * The read-only fence has no switch: the target holds everything and the application roles
 * may log in to it; pointing the application at it is the operator's. This is the point of
 * no return: a restart from here does not make the roles writable on the source again.
 */
static bool
cutover_read_only_done(Cutover *cutover)
{
	cutover_persist(cutover, CUTOVER_REPORT);
	cutover_stall(cutover, "switched");
	cutover->pause_ms = cutover_now_ms() - cutover->fence_started_ms;
	return true;
}

static void
cutover_undone(Cutover *cutover, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Something the rollback leaves undone: logged; the first one goes to the cutover command. */
static void
cutover_undone(Cutover *cutover, const char *fmt, ...)
{
	char text[512];
	va_list args;

	va_start(args, fmt);
	vsnprintf(text, sizeof(text), fmt, args);
	va_end(args);
	log_error("cutover: %s", text);
	if (cutover->undone[0] == '\0')
		snprintf(cutover->undone, sizeof(cutover->undone), "%s", text);
}

/*
 * Runs one admin command for the rollback. The failure may have been PgBouncer's session
 * itself (or a PAUSE still waiting on it): then on a fresh one. False with why filled in.
 */
static bool
cutover_rollback_bouncer(Cutover *cutover, const char *sql, bool idempotent, char *why, size_t whylen)
{
	PGconn *bouncer = cutover->bouncer;
	PGconn *fresh = NULL;
	PGresult *res;
	bool ok;

	if (bouncer == NULL || PQstatus(bouncer) != CONNECTION_OK || PQisBusy(bouncer))
		bouncer = fresh = cutover_bouncer_connect(cutover->pgbouncer);
	res = bouncer != NULL ? PQexec(bouncer, sql) : NULL;
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok && idempotent && fresh == NULL && bouncer != NULL && PQstatus(bouncer) != CONNECTION_OK)
	{
		/* the session broke under the command (PgBouncer restarted, a network cut): a new one */
		log_warning("cutover: the session to PgBouncer's console broke during %s: trying again on a new one", sql);
		PQclear(res);
		bouncer = fresh = cutover_bouncer_connect(cutover->pgbouncer);
		res = bouncer != NULL ? PQexec(bouncer, sql) : NULL;
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	}
	if (!ok)
		snprintf(why, whylen, "%s", res != NULL ? conninfo_result_error(res) : "no connection");
	PQclear(res);
	PQfinish(fresh);
	return ok;
}

/* Undoes what the fence and the steps after it changed; false when something stays undone. */
static bool
cutover_rollback(Cutover *cutover)
{
	bool rolled_back = true;
	bool keep_paused = false;

	if (cutover->fence_started_ms == 0)
		return true;  /* refused in the preflight: nothing was changed */
	/* from here the record lists what is left to undo, no more */
	cutover->claims = false;
	log_warning("cutover: rolling back: %s", cutover->failure);
	if (cutover->ini_rewritten && cutover->ini_backup[0])
	{
		char *backup = cutover_read_file(cutover->ini_backup);

		if (backup == NULL || !fileio_replace_keeping_mode(cutover->pgbouncer_ini, backup, strlen(backup)))
		{
			/* as below: PgBouncer may have reloaded the target's file already */
			cutover_undone(cutover, "could not restore \"%s\" from \"%s\", so PgBouncer database \"%s\" stays "
						   "paused: restore the file by hand, then run RELOAD and RESUME %s on PgBouncer's console",
						   cutover->pgbouncer_ini, cutover->ini_backup, cutover->pgbouncer_db, cutover->pgbouncer_db);
			rolled_back = false;
			keep_paused = true;
		}
		else if (cutover->pgbouncer != NULL)
		{
			char why[512] = "failure forced at rollback-reload (SWITCHYARD_CUTOVER_FAIL_AT)";

			/* a test's stand-in for a session that dies unseen: its socket shut under libpq */
			if (cutover->bouncer != NULL && cutover_fail_listed(cutover, "rollback-session-lost"))
				shutdown(PQsocket(cutover->bouncer), SHUT_RDWR);
			if (!cutover_fail_listed(cutover, "rollback-reload") &&
				cutover_rollback_bouncer(cutover, "RELOAD", true, why, sizeof(why)))
				cutover->ini_rewritten = false;
			else
			{
				/* it may still route to the target: resuming now would send clients there */
				cutover_undone(cutover, "could not RELOAD PgBouncer after restoring \"%s\" (%s); it may still point "
							   "at the target, so database \"%s\" stays paused: run RELOAD, then RESUME %s on "
							   "PgBouncer's console", cutover->pgbouncer_ini, why, cutover->pgbouncer_db,
							   cutover->pgbouncer_db);
				rolled_back = false;
				keep_paused = true;
			}
		}
		free(backup);
	}
	if (cutover->guard_lifted && cutover->options.guard != NULL)
	{
		if (guard_reinstate(cutover->options.guard))
			cutover->guard_lifted = false;
		else
		{
			cutover_undone(cutover, "could not put the target guard back in place");
			rolled_back = false;
		}
	}
	if (cutover->roles_read_only)
	{
		char why[512] = "";
		int ended = 0;

		/* the session may be the reason for the failure: a fresh one */
		if (cutover->source == NULL || PQstatus(cutover->source) != CONNECTION_OK ||
			PQtransactionStatus(cutover->source) != PQTRANS_IDLE)
		{
			if (cutover->source != NULL)
				PQfinish(cutover->source);
			cutover->source = conninfo_connect(cutover->source_conninfo, CONN_NORMAL, "cutover", "source");
		}
		if (cutover->source == NULL ||
			!fence_read_only_restore(cutover->source, cutover->roles, cutover->nroles, cutover->read_only_since,
									 &ended, why, sizeof(why)))
		{
			cutover_undone(cutover, "could not give the application roles their settings back on the source: %s",
						   cutover->source == NULL ? "no connection" : why);
			log_hint("cutover.json in the state directory lists the previous settings; restarting the agent "
					 "tries again");
			rolled_back = false;
		}
		else
		{
			log_info("cutover: the application roles' settings on the source are restored; %d read-only "
					 "sessions ended", ended);
			cutover->roles_read_only = false;
		}
	}
	if (cutover->paused && !keep_paused)
	{
		char sql[512];
		char why[512];

		snprintf(sql, sizeof(sql), "RESUME %s", cutover->pgbouncer_db);
		if (cutover_rollback_bouncer(cutover, sql, false, why, sizeof(why)))
			cutover->paused = false;
		else
		{
			cutover_undone(cutover, "could not RESUME PgBouncer: %s; run RESUME %s on its console now", why,
						   cutover->pgbouncer_db);
			rolled_back = false;
		}
	}
	if (cutover->fence_started_ms > 0)
		cutover->pause_ms = cutover_now_ms() - cutover->fence_started_ms;
	return rolled_back;
}

static void
cutover_write_report(Cutover *cutover, bool succeeded)
{
	json_object *root = json_object_new_object();
	json_object *steps = json_object_new_array();
	char lsnbuf[LSN_FORMAT_SIZE];
	time_t now = time(NULL);
	struct tm utc;
	char when[32];

	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &utc));
	json_object_object_add(root, "outcome", json_object_new_string(
		cutover->options.dry_run ? "checked" : succeeded ? "switched" : "aborted"));
	json_object_object_add(root, "finished_at", json_object_new_string(when));
	json_object_object_add(root, "reason", cutover->failure[0] ? json_object_new_string(cutover->failure) : NULL);
	if (cutover->undone[0])
		json_object_object_add(root, "undone", json_object_new_string(cutover->undone));
	json_object_object_add(root, "pause_ms", json_object_new_double(cutover->pause_ms));
	/* null: still waiting when the watch ended (clients_waiting says how many); absent: not seen */
	if (cutover->clients_served_ms > 0 || cutover->clients_waiting > 0)
		json_object_object_add(root, "clients_served_ms", cutover->clients_waiting > 0 ? NULL
							   : json_object_new_double(cutover->clients_served_ms));
	if (cutover->clients_waiting > 0)
		json_object_object_add(root, "clients_waiting", json_object_new_int(cutover->clients_waiting));
	json_object_object_add(root, "fence_lsn", json_object_new_string(lsn_format(cutover->fence_lsn, lsnbuf)));
	json_object_object_add(root, "rows_verified", json_object_new_int64((int64_t) cutover->rows_verified));
	json_object_object_add(root, "sequences_set", json_object_new_int(cutover->sequences_set));
	json_object_object_add(root, "fence", json_object_new_string(cutover_fence_name(cutover)));
	if (cutover->options.read_only_fence)
	{
		json_object *roles = json_object_new_array();

		for (int i = 0; i < cutover->nroles; i++)
			json_object_array_add(roles, json_object_new_string(cutover->roles[i].role));
		json_object_object_add(root, "read_only_roles", roles);
		if (succeeded && !cutover->options.dry_run)
			json_object_object_add(root, "next", json_object_new_string(
				"point the application at the target; its roles stay read-only on the source"));
	}
	for (int i = 0; i < cutover->ntimings; i++)
	{
		json_object *step = json_object_new_object();

		json_object_object_add(step, "step", json_object_new_string(cutover_step_name(cutover->timings[i].step)));
		json_object_object_add(step, "ms", json_object_new_double(cutover->timings[i].ms));
		if (cutover->timings[i].concurrent)
			json_object_object_add(step, "concurrent", json_object_new_boolean(true));
		json_object_array_add(steps, step);
	}
	json_object_object_add(root, "steps", steps);
	if (!cutover_write_json(cutover->state_dir, CUTOVER_REPORT_FILE, root))
		log_warning("cutover: could not write the report");
	json_object_put(root);
}

static void *
cutover_main(void *arg)
{
	Cutover *cutover = arg;
	bool ok;
	bool rolled_back = true;
	CutoverStep final;

	log_set_thread_name("cutover");
	ok = cutover_preflight(cutover);
	if (ok && cutover->options.dry_run)
		final = CUTOVER_CHECKED;
	else
	{
		/* the guard is lifted only once the parity passed and the sequences are set */
		ok = ok && cutover_fence(cutover) && cutover_sequences_start(cutover) && cutover_drain(cutover) &&
			cutover_parity(cutover);
		ok = cutover_sequences_wait(cutover) && ok;
		ok = ok && cutover_lift_guard(cutover) &&
			(cutover->options.read_only_fence ? cutover_read_only_done(cutover) : cutover_switch(cutover));
		if (!ok)
			rolled_back = cutover_rollback(cutover);
		else
			cutover_watch_clients(cutover);
		/* the final parity's report, once the pause is over (switched or rolled back) */
		if (cutover->parity != NULL && cutover->options.final_parity.report != NULL)
			cutover->options.final_parity.report(cutover->parity);
		final = ok ? CUTOVER_DONE : CUTOVER_ABORTED;
	}
	if (!ok && cutover->options.dry_run)
		final = CUTOVER_ABORTED;
	cutover_write_report(cutover, ok);
	if (!cutover->options.dry_run && !cutover->foreign_record)
	{
		cutover_persist(cutover, final);
		if (!ok && rolled_back)
		{
			char path[1024];

			/* rolled back: nothing to recover on the next start */
			snprintf(path, sizeof(path), "%s/%s", cutover->state_dir, CUTOVER_FILE);
			unlink(path);
		}
		else if (!ok)
			log_warning("cutover: the rollback is incomplete (see above); \"%s/%s\" keeps what is left to undo, "
						"and the next start of the agent tries again", cutover->state_dir, CUTOVER_FILE);
	}
	if (ok && !cutover->options.dry_run && cutover->options.read_only_fence)
	{
		log_info("cutover: done (write pause %.1f ms): point the application at the target now", cutover->pause_ms);
		log_info("cutover: the application roles stay read-only on the source (default_transaction_read_only)");
	}
	else if (ok && !cutover->options.dry_run)
		log_info("cutover: done: the application now uses the target (write pause %.1f ms)", cutover->pause_ms);
	snprintf(cutover->dry_run_message, sizeof(cutover->dry_run_message), "preflight passed%s%s",
			 cutover->parity_plan[0] ? "; " : "", cutover->parity_plan);
	pthread_mutex_lock(&cutover->mutex);
	cutover->status.step = final;
	cutover->status.finished = true;
	cutover->status.succeeded = ok;
	cutover->status.pause_ms = cutover->pause_ms;
	snprintf(cutover->status.message, sizeof(cutover->status.message), "%s%s%s",
			 ok ? (cutover->options.dry_run ? cutover->dry_run_message
				   : cutover->options.read_only_fence
				   ? "switched to the target: point the application at it now; its roles stay read-only on the source"
				   : "switched to the target") : cutover->failure,
			 cutover->undone[0] ? "; the rollback is incomplete: " : "", cutover->undone);
	pthread_mutex_unlock(&cutover->mutex);
	if (cutover->parity != NULL)
		cutover->options.final_parity.free(cutover->parity);
	cutover->parity = NULL;
	if (cutover->source != NULL)
		PQfinish(cutover->source);
	if (cutover->target != NULL)
		PQfinish(cutover->target);
	if (cutover->bouncer != NULL)
		PQfinish(cutover->bouncer);
	if (cutover->sequences.source != NULL)
		PQfinish(cutover->sequences.source);
	if (cutover->sequences.target != NULL)
		PQfinish(cutover->sequences.target);
	cutover->source = cutover->target = cutover->bouncer = NULL;
	cutover->sequences.source = cutover->sequences.target = NULL;
	return NULL;
}

static char *
cutover_strdup_or_null(const char *text)
{
	return text != NULL && text[0] ? strdup(text) : NULL;
}

static bool
cutover_copy_roles(Cutover *cutover, char *const *roles)
{
	int n = 0;

	while (roles != NULL && roles[n] != NULL)
		n++;
	cutover->roles = calloc((size_t) n + 1, sizeof(FenceRole));
	if (cutover->roles == NULL)
		return false;
	for (int i = 0; i < n; i++)
	{
		bool seen = false;

		for (int j = 0; j < cutover->nroles && !seen; j++)
			seen = strcmp(cutover->roles[j].role, roles[i]) == 0;
		if (seen)
			continue;
		cutover->roles[cutover->nroles].role = strdup(roles[i]);
		if (cutover->roles[cutover->nroles].role == NULL)
			return false;
		cutover->nroles++;
	}
	return true;
}

bool
cutover_start(const CutoverOptions *options, Cutover **out)
{
	Cutover *cutover = calloc(1, sizeof(*cutover));

	*out = NULL;
	if (cutover == NULL)
		return false;
	cutover->options = *options;
	if (cutover->options.max_pause_ms <= 0)
		cutover->options.max_pause_ms = CUTOVER_DEFAULT_MAX_PAUSE_MS;
	if (cutover->options.max_lag_bytes == 0)
		cutover->options.max_lag_bytes = CUTOVER_DEFAULT_MAX_LAG;
	cutover->state_dir = strdup(options->state_dir);
	cutover->source_conninfo = strdup(options->source_conninfo);
	cutover->target_conninfo = strdup(options->target_conninfo);
	cutover->pgbouncer = cutover_strdup_or_null(options->pgbouncer);
	cutover->pgbouncer_db = cutover_strdup_or_null(options->pgbouncer_db);
	cutover->pgbouncer_ini = cutover_strdup_or_null(options->pgbouncer_ini);
	cutover->fail_at = cutover_strdup_or_null(options->fail_at);
	cutover->stall_at = cutover_strdup_or_null(options->stall_at);
	pthread_mutex_init(&cutover->mutex, NULL);
	/* the request's strings go with the request: the thread keeps its own */
	cutover->options.app_roles = NULL;
	if (options->read_only_fence && !cutover_copy_roles(cutover, options->app_roles))
	{
		log_error("out of memory");
		cutover_free(cutover);
		return false;
	}
	snprintf(cutover->status.report_path, sizeof(cutover->status.report_path), "%s/%s", options->state_dir,
			 CUTOVER_REPORT_FILE);
	if (pthread_create(&cutover->thread, NULL, cutover_main, cutover) != 0)
	{
		log_error("could not start the cutover thread");
		cutover_free(cutover);
		return false;
	}
	cutover->thread_started = true;
	*out = cutover;
	return true;
}

void
cutover_get_status(Cutover *cutover, CutoverStatus *out)
{
	pthread_mutex_lock(&cutover->mutex);
	*out = cutover->status;
	pthread_mutex_unlock(&cutover->mutex);
}

void
cutover_free(Cutover *cutover)
{
	if (cutover == NULL)
		return;
	if (cutover->thread_started)
		pthread_join(cutover->thread, NULL);
	pthread_mutex_destroy(&cutover->mutex);
	free(cutover->state_dir);
	free(cutover->source_conninfo);
	free(cutover->target_conninfo);
	free(cutover->pgbouncer);
	free(cutover->pgbouncer_db);
	free(cutover->pgbouncer_ini);
	free(cutover->fail_at);
	free(cutover->stall_at);
	fence_roles_free(cutover->roles, cutover->nroles);
	free(cutover);
}

/* ---- recovery at agent start --------------------------------------------------------------- */

static const char *
cutover_json_string(json_object *root, const char *key)
{
	json_object *value = NULL;

	return json_object_object_get_ex(root, key, &value) && json_object_is_type(value, json_type_string)
		? json_object_get_string(value) : NULL;
}

static bool
cutover_json_bool(json_object *root, const char *key)
{
	json_object *value = NULL;

	return json_object_object_get_ex(root, key, &value) && json_object_get_boolean(value);
}

/* RELOAD (when asked) and RESUME db on PgBouncer; a database that is not paused is fine. */
static bool
cutover_recover_bouncer(json_object *root, bool reload)
{
	const char *conninfo = cutover_json_string(root, "pgbouncer");
	const char *db = cutover_json_string(root, "pgbouncer_db");
	PGconn *bouncer = conninfo != NULL && db != NULL ? cutover_bouncer_connect(conninfo) : NULL;
	PGresult *res = NULL;
	char sql[512];
	bool ok = false;

	if (bouncer == NULL)
	{
		log_error("could not reach PgBouncer to resume database \"%s\"", db != NULL ? db : "?");
		log_hint("run%s RESUME %s on its console", reload ? " RELOAD and" : "", db != NULL ? db : "<db>");
		return false;
	}
	if (reload)
	{
		res = PQexec(bouncer, "RELOAD");
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			log_error("PgBouncer refused RELOAD: %s", conninfo_result_error(res));
			goto cleanup;
		}
		PQclear(res);
	}
	snprintf(sql, sizeof(sql), "RESUME %s", db);
	res = PQexec(bouncer, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && strstr(PQresultErrorMessage(res), "not paused") == NULL)
	{
		log_error("could not RESUME PgBouncer database \"%s\": %s", db, conninfo_result_error(res));
		log_hint("run RESUME %s on its console", db);
		goto cleanup;
	}
	ok = true;
cleanup:
	PQclear(res);
	PQfinish(bouncer);
	return ok;
}

/* The roles of the record, with their previous settings. */
static bool
cutover_recover_roles(json_object *root, FenceRole **roles, int *nroles)
{
	json_object *list = NULL;
	size_t n;

	*roles = NULL;
	*nroles = 0;
	if (!json_object_object_get_ex(root, "read_only_roles", &list) || !json_object_is_type(list, json_type_array))
		return true;
	n = json_object_array_length(list);
	*roles = calloc(n + 1, sizeof(FenceRole));
	if (*roles == NULL)
		return false;
	for (size_t i = 0; i < n; i++)
	{
		json_object *entry = json_object_array_get_idx(list, i);
		const char *role = cutover_json_string(entry, "role");
		const char *previous = cutover_json_string(entry, "previous");

		if (role == NULL)
			continue;
		(*roles)[*nroles].role = strdup(role);
		(*roles)[*nroles].previous = previous != NULL ? strdup(previous) : NULL;
		(*nroles)++;
	}
	return true;
}

/* The target guard: its record marked not lifted, so the guard revokes CONNECT again as it starts. */
static bool
cutover_recover_guard(const char *state_dir)
{
	GuardRecord *record = NULL;
	bool ok = true;

	if (!guard_record_load(state_dir, &record))
		return false;
	if (record != NULL && record->lifted)
	{
		record->lifted = false;
		ok = guard_record_save(state_dir, record);
		if (ok)
			log_info("the target guard is put back in place: the application roles lose CONNECT on the target "
					 "again");
	}
	guard_record_free(record);
	return ok;
}

/* The DBA put PgBouncer back by hand: it sends the record's database to the source again. */
static bool
cutover_recover_restored_by_hand(json_object *root, const char *source_conninfo)
{
	const char *conninfo = cutover_json_string(root, "pgbouncer");
	const char *db = cutover_json_string(root, "pgbouncer_db");
	char host[256], port[32], dbname[256], why[512];
	char src_host[256], src_port[32], src_db[256];
	PGconn *bouncer;
	bool at_source;

	if (conninfo == NULL || db == NULL || source_conninfo == NULL ||
		!cutover_conninfo_parts(source_conninfo, src_host, sizeof(src_host), src_port, sizeof(src_port), src_db,
								sizeof(src_db)) ||
		(bouncer = cutover_bouncer_connect(conninfo)) == NULL)
		return false;
	at_source = cutover_bouncer_location(bouncer, db, host, sizeof(host), port, sizeof(port), dbname, sizeof(dbname),
										 why, sizeof(why)) > 0 &&
		cutover_same_place(src_host, src_port, src_db, host, port, dbname);
	PQfinish(bouncer);
	return at_source;
}

static bool
cutover_recover_rollback(const char *state_dir, const char *source_conninfo, json_object *root)
{
	bool paused = cutover_json_bool(root, "paused");
	bool rewritten = cutover_json_bool(root, "ini_rewritten");
	bool ini_ok = true;
	bool ok = true;

	if (rewritten)
	{
		const char *ini = cutover_json_string(root, "pgbouncer_ini");
		const char *backup = cutover_json_string(root, "ini_backup");
		char *text = backup != NULL ? cutover_read_file(backup) : NULL;

		if (text == NULL && cutover_recover_restored_by_hand(root, source_conninfo))
		{
			/* no RELOAD: PgBouncer's file is as the DBA left it */
			log_info("PgBouncer's configuration \"%s\" has no backup any more, but PgBouncer sends database \"%s\" "
					 "to the source again: taken as restored by hand", ini != NULL ? ini : "?",
					 cutover_json_string(root, "pgbouncer_db"));
			rewritten = false;
		}
		else if (ini == NULL || text == NULL || !fileio_replace_keeping_mode(ini, text, strlen(text)))
		{
			log_error("could not restore PgBouncer's configuration \"%s\" from \"%s\"", ini != NULL ? ini : "?",
					  backup != NULL ? backup : "(no backup)");
			log_hint("restore it by hand, RELOAD and RESUME PgBouncer");
			ini_ok = ok = false;
		}
		else
			log_info("restored PgBouncer's configuration \"%s\" from \"%s\"", ini, backup);
		free(text);
	}
	if (!cutover_recover_guard(state_dir))
		ok = false;
	/* only once the file is back: RESUME must not send the clients to the target */
	if (ini_ok && (paused || rewritten))
	{
		if (cutover_recover_bouncer(root, rewritten))
			log_info("PgBouncer database \"%s\" resumed on the source", cutover_json_string(root, "pgbouncer_db"));
		else
			ok = false;
	}
	if (json_object_object_get_ex(root, "read_only_roles", NULL))
	{
		FenceRole *roles = NULL;
		int nroles = 0;
		PGconn *source = NULL;
		char why[512] = "";
		int ended = 0;

		if (!cutover_recover_roles(root, &roles, &nroles))
			ok = false;
		else if ((source = conninfo_connect(source_conninfo, CONN_NORMAL, "cutover", "source")) == NULL ||
				 !fence_read_only_restore(source, roles, nroles, cutover_json_string(root, "read_only_since"),
										  &ended, why, sizeof(why)))
		{
			log_error("could not give the application roles their settings back on the source: %s",
					  source == NULL ? "no connection" : why);
			ok = false;
		}
		else
			log_info("the application roles' settings on the source are restored; %d read-only sessions ended",
					 ended);
		if (source != NULL)
			PQfinish(source);
		fence_roles_free(roles, nroles);
	}
	return ok;
}

/* After the point of no return: PgBouncer resumed on the target, the outcome reported. */
static bool
cutover_recover_complete(const char *state_dir, json_object *root)
{
	const char *fence = cutover_json_string(root, "fence");
	bool read_only = fence != NULL && strcmp(fence, "read-only") == 0;
	json_object *report;
	json_object *roles = NULL;
	time_t now = time(NULL);
	struct tm utc;
	char when[32];

	if (cutover_json_string(root, "pgbouncer") != NULL && !cutover_recover_bouncer(root, false))
		return false;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &utc));
	report = json_object_new_object();
	json_object_object_add(report, "outcome", json_object_new_string("switched"));
	json_object_object_add(report, "finished_at", json_object_new_string(when));
	json_object_object_add(report, "reason", json_object_new_string(
		"the agent stopped after the switch; its restart completed the cutover"));
	json_object_object_add(report, "fence", json_object_new_string(fence != NULL ? fence : "pgbouncer"));
	if (read_only && json_object_object_get_ex(root, "read_only_roles", &roles))
	{
		json_object *names = json_object_new_array();

		for (size_t i = 0; i < json_object_array_length(roles); i++)
		{
			const char *role = cutover_json_string(json_object_array_get_idx(roles, i), "role");

			if (role != NULL)
				json_object_array_add(names, json_object_new_string(role));
		}
		json_object_object_add(report, "read_only_roles", names);
		json_object_object_add(report, "next", json_object_new_string(
			"point the application at the target; its roles stay read-only on the source"));
	}
	if (!cutover_write_json(state_dir, CUTOVER_REPORT_FILE, report))
		log_warning("cutover: could not write the report");
	json_object_put(report);
	json_object_object_add(root, "step", json_object_new_string(cutover_step_name(CUTOVER_DONE)));
	if (!cutover_write_json(state_dir, CUTOVER_FILE, root))
		return false;
	if (read_only)
		log_info("the interrupted cutover is complete: point the application at the target now; its roles stay "
				 "read-only on the source");
	else
		log_info("the interrupted cutover is complete: PgBouncer database \"%s\" points at the target and is "
				 "resumed", cutover_json_string(root, "pgbouncer_db"));
	return true;
}

/* The step noted inside the fence (cutover_note_step), when it is there and names one. */
static bool
cutover_read_step(const char *state_dir, char *buf, size_t len)
{
	char path[1024];
	FILE *file;
	bool ok = false;

	snprintf(path, sizeof(path), "%s/%s", state_dir, CUTOVER_STEP_FILE);
	file = fopen(path, "r");
	if (file == NULL)
		return false;
	if (fgets(buf, (int) len, file) != NULL)
	{
		buf[strcspn(buf, "\n")] = '\0';
		for (size_t i = 0; i < sizeof(cutover_step_names) / sizeof(cutover_step_names[0]) && !ok; i++)
			ok = strcmp(buf, cutover_step_names[i]) == 0;
	}
	fclose(file);
	return ok;
}

bool
cutover_recover(const char *state_dir, const char *source_conninfo, CutoverRecovery *out)
{
	char reached_buf[32];
	const char *reached;
	char path[1024];
	json_object *root;
	const char *step;
	bool ok;

	*out = CUTOVER_RECOVERY_NONE;
	snprintf(path, sizeof(path), "%s/%s", state_dir, CUTOVER_FILE);
	if (access(path, F_OK) != 0)
		return true;
	root = json_object_from_file(path);
	if (root == NULL)
	{
		log_error("could not read the cutover progress \"%s\"", path);
		log_hint("check PgBouncer, the guard and the application roles by hand, then remove the file");
		return false;
	}
	step = cutover_json_string(root, "step");
	if (step == NULL)
		step = "?";
	reached = cutover_read_step(state_dir, reached_buf, sizeof(reached_buf)) ? reached_buf : step;
	if (cutover_json_bool(root, "switched"))
	{
		if (strcmp(step, cutover_step_name(CUTOVER_DONE)) == 0)
		{
			*out = CUTOVER_RECOVERY_SWITCHED;
			json_object_put(root);
			return true;
		}
		log_warning("a cutover was interrupted after its switch: completing it");
		ok = cutover_recover_complete(state_dir, root);
		if (ok)
			*out = CUTOVER_RECOVERY_COMPLETED;
	}
	else
	{
		log_warning("an interrupted cutover (at step %s) is rolled back", reached);
		ok = cutover_recover_rollback(state_dir, source_conninfo, root);
		if (ok)
		{
			unlink(path);
			snprintf(path, sizeof(path), "%s/%s", state_dir, CUTOVER_STEP_FILE);
			unlink(path);
			*out = CUTOVER_RECOVERY_ROLLED_BACK;
		}
	}
	if (!ok)
		log_hint("\"%s\" keeps what is left to do: fix the cause above and start the agent again", path);
	json_object_put(root);
	return ok;
}

