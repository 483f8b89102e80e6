/*
 * `switchyard run` and `switchyard cleanup`: prepares source and target, then runs the event
 * loop that carries receiver, control socket and timers while the applier thread applies
 * the spool to the target. Owns shutdown: final feedback, spool synced, state saved.
 */
#include "switchyard/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <json-c/json.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>

#include "switchyard/apply.h"
#include "switchyard/conninfo.h"
#include "switchyard/control.h"
#include "switchyard/copy.h"
#include "switchyard/cutover.h"
#include "switchyard/exitcode.h"
#include "switchyard/guard.h"
#include "switchyard/http.h"
#include "switchyard/log.h"
#include "switchyard/monotonic.h"
#include "switchyard/receiver.h"
#include "switchyard/source.h"
#include "switchyard/spool.h"
#include "switchyard/state.h"
#include "switchyard/status.h"
#include "switchyard/verify.h"

#define AGENT_TICK_MS 100
#define AGENT_SOURCE_POLL_MS 1000
/*
 * The saved positions only inform `status` while no agent runs (a restart goes by the spool
 * and the target's replication origin), and a save (two fsyncs, 5-15 ms under load) stalls
 * the receiver, which shares this thread: seldom, then.
 */
#define AGENT_STATE_SAVE_MS 60000
#define AGENT_HOLD_MAX_US (INT64_C(30) * 60 * 1000000)

typedef struct Agent
{
	const CliOptions *options;
	struct event_base *base;
	AgentState *state;
	char *spool_dir;
	char *source_shown;
	char *target_shown;
	Spool *spool;
	Applier *applier;
	Receiver *receiver;
	ControlServer *control;
	HttpServer *http;             /* --http: metrics, status and the dashboard */
	Guard *guard;                 /* the target guard: CONNECT revoked, sessions watched */
	GuardStats guard_stats;       /* the last agent_fill_status read: its strings back the status */
	Copy *copy;
	Cutover *cutover;             /* the cutover in progress or finished, if any */
	CutoverStatus cutover_status; /* the last agent_fill_status read: its strings back the status */
	Lsn hold_lsn;                 /* parity barrier (APPLY_HOLD), 0 when none */
	int64_t hold_since_us;
	bool paused;                  /* switchyard pause: the applier holds, receiving goes on */
	pid_t verify_pid;             /* --verify-every: the verify running now, 0 when none */
	TouchedKeys *touched;         /* keys the applier wrote, for the cutover's final parity */
	struct timespec latest_seen;  /* parity/latest.json's mtime when it was last read */
	ApplyTableStats *table_stats; /* what /metrics last read of the applier's per-table counts */
	size_t table_stats_cap;
	int64_t verify_done_us;       /* when the last one ended */
	bool cutover_reported;
	PGconn *export_conn;          /* replication session holding the copy snapshot exported */
	char *snapshot_name;
	bool copy_wanted;
	bool copy_restart;
	bool names_used;              /* a publication or slot may exist under the state's names */
	bool restore_schema;
	int64_t last_progress_us;
	PGconn *monitor;              /* source, normal session: pg_current_wal_lsn() for lag */
	bool monitor_busy;
	Lsn source_current_lsn;
	struct event tick;
	struct event sigterm;
	struct event sigint;
	int64_t last_poll_us;
	int64_t last_save_us;
	int64_t started_at;
	const char *phase;
	bool stop_requested;
	int exit_code;
} Agent;

/* ---- names and state ---------------------------------------------------------------------- */

static bool
agent_new_state(AgentState **out)
{
	unsigned char random_bytes[4] = {0};
	char name[64];
	AgentState *state = malloc(sizeof(*state));
	int fd;

	*out = NULL;
	if (state == NULL)
		return false;
	agent_state__init(state);
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, random_bytes, sizeof(random_bytes)) != (ssize_t) sizeof(random_bytes))
	{
		log_error("could not read /dev/urandom: %m");
		if (fd >= 0)
			close(fd);
		free(state);
		return false;
	}
	close(fd);
	snprintf(name, sizeof(name), "switchyard_%02x%02x%02x%02x",
			 random_bytes[0], random_bytes[1], random_bytes[2], random_bytes[3]);
	/* the three names are one migration's: slot, publication and origin */
	state->slot_name = strdup(name);
	state->publication_name = strdup(name);
	state->origin_name = strdup(name);
	state->phase = strdup("setup");
	if (state->slot_name == NULL || state->publication_name == NULL || state->origin_name == NULL ||
		state->phase == NULL)
	{
		state_free(state);
		return false;
	}
	*out = state;
	return true;
}

static void
agent_set_phase(Agent *agent, const char *phase)
{
	char *copy = strdup(phase);

	agent->phase = phase;
	if (copy == NULL)
		return;
	if (agent->state->phase != NULL && agent->state->phase != protobuf_c_empty_string)
		free(agent->state->phase);
	agent->state->phase = copy;
}

/* Why the agent stops: kept in the state for `switchyard status` once it has exited. */
static void
agent_note_error(Agent *agent, const char *error)
{
	char *copy;

	if (agent->state == NULL || error == NULL || (copy = strdup(error)) == NULL)
		return;
	if (agent->state->last_error != NULL && agent->state->last_error != protobuf_c_empty_string)
		free(agent->state->last_error);
	agent->state->last_error = copy;
}

static bool
agent_save_state(Agent *agent)
{
	ReceiverStats rstats = {0};
	ApplyStats astats = {0};

	if (agent->receiver != NULL)
		receiver_get_stats(agent->receiver, &rstats);
	if (agent->applier != NULL)
		apply_get_stats(agent->applier, &astats);
	if (rstats.received_lsn > agent->state->received_lsn)
		agent->state->received_lsn = rstats.received_lsn;
	if (agent->spool != NULL && spool_durable_lsn(agent->spool) > agent->state->flushed_lsn)
		agent->state->flushed_lsn = spool_durable_lsn(agent->spool);
	if (astats.applied_lsn > agent->state->applied_lsn)
		agent->state->applied_lsn = astats.applied_lsn;
	agent->state->updated_at_unix_us = pg_timestamp_now() + PG_EPOCH_OFFSET_US;
	return state_save(agent->options->state_dir, agent->state);
}

/* ---- preparation ---------------------------------------------------------------------- */

static bool
agent_append_line(char **buf, size_t *used, size_t *cap, const char *a, const char *b, const char *c)
{
	size_t need = strlen(a) + strlen(b) + strlen(c) + 4;

	if (*used + need >= *cap)
	{
		size_t newcap = (*cap + need) * 2;
		char *bigger = realloc(*buf, newcap);

		if (bigger == NULL)
			return false;
		*buf = bigger;
		*cap = newcap;
	}
	*used += (size_t) sprintf(*buf + *used, "%s%s\t%s\t%s", *used > 0 ? "\n" : "", a, b, c);
	return true;
}

/*
 * The target must hold every published table with every column the stream carries: the
 * applier maps columns by name. Refuse at start, naming what is missing.
 */
static bool
agent_check_target_schema(PGconn *source, PGconn *target, char *const *tables)
{
	char *patterns = source_patterns_param(tables);
	const char *params[1] = {patterns};
	PGresult *res = NULL;
	PGresult *missing = NULL;
	char *wanted = NULL;
	size_t used = 0;
	size_t cap = 0;
	bool ok = false;

	res = PQexecParams(source,
					   "SELECT n.nspname::text, c.relname::text, a.attname::text "
					   "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
					   "JOIN pg_attribute a ON a.attrelid = c.oid "
					   " AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' "
					   "WHERE " SOURCE_TABLE_FILTER_SQL " ORDER BY 1, 2, a.attnum",
					   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_error("could not list the published columns on the source: %s", conninfo_result_error(res));
		goto cleanup;
	}
	for (int i = 0; i < PQntuples(res); i++)
		if (!agent_append_line(&wanted, &used, &cap, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
							   PQgetvalue(res, i, 2)))
			goto cleanup;
	if (used == 0)
	{
		ok = true;
		goto cleanup;
	}
	params[0] = wanted;
	missing = PQexecParams(target,
						   "WITH wanted AS ("
						   "  SELECT split_part(l, E'\\t', 1) AS nsp, split_part(l, E'\\t', 2) AS rel, "
						   "         split_part(l, E'\\t', 3) AS col "
						   "  FROM unnest(string_to_array($1, E'\\n')) AS l) "
						   "SELECT w.nsp, w.rel, w.col, c.oid IS NOT NULL "
						   "FROM wanted w "
						   "LEFT JOIN pg_namespace n ON n.nspname = w.nsp "
						   "LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.rel "
						   "  AND c.relkind IN ('r', 'p') "
						   "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = w.col "
						   "  AND a.attnum > 0 AND NOT a.attisdropped "
						   "WHERE a.attname IS NULL",
						   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(missing) != PGRES_TUPLES_OK)
	{
		log_error("could not check the target schema: %s", conninfo_result_error(missing));
		goto cleanup;
	}
	ok = PQntuples(missing) == 0;
	for (int i = 0; i < PQntuples(missing); i++)
	{
		const char *nsp = PQgetvalue(missing, i, 0);
		const char *rel = PQgetvalue(missing, i, 1);

		if (PQgetvalue(missing, i, 3)[0] == 't')
		{
			log_error("target table \"%s\".\"%s\" lacks column \"%s\"", nsp, rel, PQgetvalue(missing, i, 2));
			log_hint("add the column on the target with the source's type, then run again");
		}
		else if (i == 0 || strcmp(nsp, PQgetvalue(missing, i - 1, 0)) != 0 ||
				 strcmp(rel, PQgetvalue(missing, i - 1, 1)) != 0)
		{
			log_error("target lacks table \"%s\".\"%s\"", nsp, rel);
			log_hint("create the schema on the target first (pg_dump --schema-only), or leave the table "
					 "out with --tables");
		}
	}
cleanup:
	PQclear(res);
	PQclear(missing);
	free(wanted);
	free(patterns);
	return ok;
}

static bool
agent_check_target_role(PGconn *target)
{
	PGresult *res = PQexec(target, "SELECT rolsuper, current_user FROM pg_roles WHERE rolname = current_user");
	bool ok = false;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		log_error("could not read the target role: %s", conninfo_result_error(res));
	else if (PQgetvalue(res, 0, 0)[0] != 't')
	{
		log_error("role \"%s\" on the target is not a superuser", PQgetvalue(res, 0, 1));
		log_detail("applying with session_replication_role = replica and a replication origin needs "
				   "superuser in PostgreSQL 15");
		log_hint("connect to the target as a superuser");
	}
	else
		ok = true;
	PQclear(res);
	return ok;
}

static bool
agent_drop_origin_on(PGconn *target, const char *origin)
{
	const char *params[1] = {origin};
	PGresult *res = PQexecParams(target,
								 "SELECT pg_replication_origin_drop($1) WHERE pg_replication_origin_oid($1) IS NOT NULL",
								 1, NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		log_error("could not drop replication origin \"%s\" on the target: %s", origin, conninfo_result_error(res));
	PQclear(res);
	return ok;
}

static int
agent_remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	if (remove(path) != 0 && errno != ENOENT)
		log_warning("could not remove \"%s\": %m", path);
	return 0;
}

static void
agent_log_tables(const char *intro, char **tables)
{
	for (size_t i = 0; tables != NULL && tables[i] != NULL; i++)
		log_error("%s %s", intro, tables[i]);
}

/*
 * A copy that did not finish is started over: a fresh slot and snapshot, an empty spool and
 * origin, and on the target what the last attempt restored is dropped and made again (or,
 * on a schema the DBA provided, emptied).
 */
static bool
agent_reset_interrupted_copy(Agent *agent, PGconn *source, PGconn *target)
{
	log_warning("the previous initial copy did not finish: starting it over with a new snapshot");
	if (!source_drop_slot(source, agent->state->slot_name))
		return false;
	if (!agent_drop_origin_on(target, agent->state->origin_name))
		return false;
	nftw(agent->spool_dir, agent_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	agent->state->received_lsn = 0;
	agent->state->flushed_lsn = 0;
	agent->state->applied_lsn = 0;
	if (agent->state->schema_restored)
	{
		const char *params[1] = {agent->state->publication_name};
		PGresult *tables = PQexecParams(source,
										"SELECT format('%I.%I', schemaname, tablename) FROM pg_publication_tables "
										"WHERE pubname = $1",
										1, NULL, params, NULL, NULL, 0);

		if (PQresultStatus(tables) != PGRES_TUPLES_OK)
		{
			log_error("could not list the published tables: %s", conninfo_result_error(tables));
			PQclear(tables);
			return false;
		}
		for (int i = 0; i < PQntuples(tables); i++)
		{
			char sql[1024];
			PGresult *res;

			snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s CASCADE", PQgetvalue(tables, i, 0));
			res = PQexec(target, sql);
			if (PQresultStatus(res) != PGRES_COMMAND_OK)
			{
				log_error("could not drop table %s on the target: %s", PQgetvalue(tables, i, 0),
						  conninfo_result_error(res));
				PQclear(res);
				PQclear(tables);
				return false;
			}
			PQclear(res);
		}
		PQclear(tables);
	}
	return true;
}

/* Decides how the copy treats the target; refuses a target that holds data. */
static int
agent_prepare_copy(Agent *agent, PGconn *source, PGconn *target)
{
	CopyTargetSchema schema;
	char **nonempty = NULL;
	char **missing = NULL;
	int code = EXIT_TARGET;

	if (agent->copy_restart && !agent_reset_interrupted_copy(agent, source, target))
		goto cleanup;
	if (agent->copy_restart && agent->state->schema_restored)
	{
		agent->restore_schema = true;
	}
	else
	{
		if (!copy_inspect_target(source, target, agent->options->tables, &schema, &nonempty, &missing))
			goto cleanup;
		if (schema == COPY_TARGET_PARTIAL)
		{
			log_error("the target has some of the tables to migrate but not all");
			agent_log_tables("missing on the target:", missing);
			log_hint("create the missing tables, or drop the present ones to let switchyard copy the schema");
			goto cleanup;
		}
		if (nonempty != NULL && nonempty[0] != NULL && !agent->options->truncate_target && !agent->copy_restart)
		{
			log_error("the target is not empty: tables to be copied already hold rows");
			agent_log_tables("table with rows on the target:", nonempty);
			log_hint("empty them, or run with --truncate-target to have switchyard empty them");
			goto cleanup;
		}
		if (nonempty != NULL && nonempty[0] != NULL && !copy_truncate_target(target, nonempty))
			goto cleanup;
		agent->restore_schema = schema == COPY_TARGET_EMPTY;
	}
	code = EXIT_OK;
cleanup:
	copy_strv_free(nonempty);
	copy_strv_free(missing);
	return code;
}

/*
 * Source and target checks first, so that a refusal leaves nothing behind; then the
 * publication and the slot. Returns an exit status.
 */
static int
agent_prepare(Agent *agent)
{
	const CliOptions *options = agent->options;
	PGconn *source = NULL;
	PGconn *repl = NULL;
	PGconn *target = NULL;
	uint64_t system_id = 0;
	bool created = false;
	bool fresh = agent->state->source_system_id == 0;
	Lsn consistent_point = LSN_INVALID;
	int code = EXIT_SOURCE;

	/* copy when a migration starts, or when its copy was interrupted */
	agent->copy_wanted = !options->no_copy && (fresh || !agent->state->copy_done);
	agent->copy_restart = agent->copy_wanted && !fresh;

	source = conninfo_connect(options->source, CONN_NORMAL, "setup", "source");
	if (source == NULL)
		goto cleanup;
	if (!source_check(source, options->tables))
		goto cleanup;
	repl = conninfo_connect(options->source, CONN_REPLICATION, "setup", "source");
	if (repl == NULL || !source_system_identifier(repl, &system_id))
		goto cleanup;
	if (!fresh && agent->state->source_system_id != system_id)
	{
		log_error("the source is not the server this migration started from (system identifier %llu, "
				  "expected %llu)", (unsigned long long) system_id,
				  (unsigned long long) agent->state->source_system_id);
		log_hint("use another --state-dir for another source");
		goto cleanup;
	}

	code = EXIT_TARGET;
	target = conninfo_connect(options->target, CONN_NORMAL, "setup", "target");
	if (target == NULL && !fresh)
		log_hint("start the target (or correct --target) and run the same command again: the migration "
				 "resumes where it stopped, the source keeps its changes meanwhile");
	if (target == NULL || !agent_check_target_role(target))
		goto cleanup;

	if (agent->copy_wanted)
	{
		code = agent_prepare_copy(agent, source, target);
		if (code != EXIT_OK)
			goto cleanup;
		code = EXIT_SOURCE;
		agent->names_used = true;
		if (!source_ensure_publication(source, agent->state->publication_name, options->tables) ||
			!source_drop_slot(source, agent->state->slot_name) ||
			!source_create_slot_export(repl, agent->state->slot_name, &consistent_point,
									   &agent->snapshot_name))
			goto cleanup;
		agent->state->source_system_id = system_id;
		agent->state->consistent_point = consistent_point;
		agent->state->schema_restored = agent->restore_schema;
		agent->state->copy_done = false;
		agent->export_conn = repl;  /* stays open until the copy sessions hold the snapshot */
		repl = NULL;
		code = EXIT_OK;
		goto cleanup;
	}

	if (!agent_check_target_schema(source, target, options->tables))
		goto cleanup;
	code = EXIT_SOURCE;
	agent->names_used = true;
	if (!source_ensure_publication(source, agent->state->publication_name, options->tables))
		goto cleanup;
	if (!source_ensure_slot(repl, source, agent->state->slot_name, &created, &consistent_point))
		goto cleanup;
	if (created && !fresh)
	{
		/* the slot of a running migration is gone: the changes it held back are lost */
		log_error("replication slot \"%s\" of this migration no longer exists on the source",
				  agent->state->slot_name);
		log_detail("changes made on the source while it was missing cannot be recovered");
		log_hint("run switchyard cleanup and start the migration again");
		goto cleanup;
	}
	agent->state->source_system_id = system_id;
	if (created)
		agent->state->consistent_point = consistent_point;
	/* with --no-copy the DBA has put the data on the target */
	agent->state->copy_done = true;
	code = EXIT_OK;
cleanup:
	if (source != NULL)
		PQfinish(source);
	if (repl != NULL)
		PQfinish(repl);
	if (target != NULL)
		PQfinish(target);
	return code;
}

/* ---- the running agent -------------------------------------------------------------------- */

/*
 * Held at L: everything with end_lsn <= L is applied and committed on the target, nothing
 * later is (the spool shows the applier nothing past L), and the spool holds all up to L.
 */
static bool
agent_is_held(Agent *agent, const ApplyStats *astats)
{
	Lsn visible = LSN_INVALID;

	if (agent->hold_lsn == LSN_INVALID || agent->spool == NULL ||
		!spool_hold_visible(agent->spool, &visible))
		return false;
	/* applied_lsn may pass L through a progress record; only commits change the target */
	return spool_durable_lsn(agent->spool) >= agent->hold_lsn && astats->applied_lsn >= visible &&
		astats->last_commit_lsn <= agent->hold_lsn;
}

static void
agent_fill_status(Agent *agent, AgentStatus *status, ReceiverStats *rstats, ApplyStats *astats,
				  SpoolStats *sstats)
{
	Lsn head;

	memset(status, 0, sizeof(*status));
	memset(rstats, 0, sizeof(*rstats));
	memset(astats, 0, sizeof(*astats));
	memset(sstats, 0, sizeof(*sstats));
	if (agent->receiver != NULL)
		receiver_get_stats(agent->receiver, rstats);
	if (agent->applier != NULL)
		apply_get_stats(agent->applier, astats);
	if (agent->spool != NULL)
		spool_get_stats(agent->spool, sstats);
	status->phase = agent->phase;
	status->running = true;
	status->pid = (int) getpid();
	status->source = agent->source_shown;
	status->target = agent->target_shown;
	status->slot_name = agent->state->slot_name;
	status->publication_name = agent->state->publication_name;
	status->origin_name = agent->state->origin_name;
	status->received_lsn = rstats->received_lsn;
	status->flushed_lsn = sstats->durable_lsn;
	status->applied_lsn = astats->applied_lsn;
	status->source_current_lsn = agent->source_current_lsn;
	head = agent->source_current_lsn > rstats->received_lsn ? agent->source_current_lsn : rstats->received_lsn;
	status->lag_bytes = head > astats->applied_lsn ? head - astats->applied_lsn : 0;
	/* caught up: no lag, whatever the age of the last transaction */
	if (astats->applied_lsn >= sstats->durable_lsn || astats->last_commit_time == 0)
		status->lag_seconds = 0;
	else
		status->lag_seconds = (double) (pg_timestamp_now() - astats->last_commit_time) / 1e6;
	status->transactions_applied = astats->transactions;
	status->changes_applied = astats->changes;
	status->touched_keys = touched_count(agent->touched);
	status->spool_bytes = sstats->size_bytes;
	status->spool_segments = sstats->segments;
	status->spool_full = sstats->full;
	status->source_connected = rstats->connected;
	status->target_connected = astats->connected;
	status->last_error = astats->last_error[0] ? astats->last_error : rstats->last_error;
	status->started_at_unix = agent->started_at;
	status->hold_lsn = agent->hold_lsn;
	status->paused = agent->paused;
	status->held = agent_is_held(agent, astats);
	if (agent->cutover != NULL)
	{
		cutover_get_status(agent->cutover, &agent->cutover_status);
		status->cutover_active = true;
		status->cutover_step = cutover_step_name(agent->cutover_status.step);
		status->cutover_finished = agent->cutover_status.finished;
		status->cutover_succeeded = agent->cutover_status.succeeded;
		status->cutover_pause_ms = agent->cutover_status.pause_ms;
		status->cutover_message = agent->cutover_status.message;
	}
	if (agent->copy != NULL)
	{
		CopyProgress progress;

		copy_get_progress(agent->copy, &progress);
		status->copy_active = true;
		status->copy_step = progress.step;
		status->copy_tables_done = progress.tables_done;
		status->copy_tables_total = progress.tables_total;
		status->copy_rows_done = progress.rows_done;
		status->copy_rows_estimated = progress.rows_estimated;
		status->copy_bytes_done = progress.bytes_done;
		status->copy_bytes_estimated = progress.bytes_estimated;
		status->copy_elapsed_seconds = progress.elapsed_seconds;
	}
	if (agent->guard != NULL)
	{
		guard_get_stats(agent->guard, &agent->guard_stats);
		status->guard_active = true;
		status->guard_mode = guard_mode_name(agent->guard_stats.mode);
		status->guard_app_roles = agent->guard_stats.app_roles;
		status->guard_connect_revoked = agent->guard_stats.connect_revoked;
		status->guard_violations_total = agent->guard_stats.violations_total;
		status->guard_sessions_now = agent->guard_stats.sessions_now;
		status->guard_last_violation = agent->guard_stats.last_violation;
		status->guard_lifted = agent->guard_stats.lifted;
	}
}

/*
 * Final parity inside the fence: writes are stopped and the stream drained, so both sides
 * hold still and are compared as they are.
 */
/* The cutover's handle: the prepared comparison, and the keys the stream touched. */
typedef struct AgentParity
{
	VerifyPrepared *prepared;
	TouchedKeys *touched;
} AgentParity;

static bool
agent_parity_prepare(void *arg, void **handle, char *why, size_t whylen)
{
	Agent *agent = arg;
	AgentParity *parity = calloc(1, sizeof(*parity));

	*handle = NULL;
	if (parity == NULL)
	{
		snprintf(why, whylen, "out of memory");
		return false;
	}
	parity->touched = agent->touched;
	if (!verify_prepare_now(agent->options, agent->state->publication_name, &parity->prepared, why, whylen))
	{
		free(parity);
		return false;
	}
	*handle = parity;
	return true;
}

static bool
agent_parity_run(void *handle, bool *clean, uint64_t *rows, char *why, size_t whylen)
{
	AgentParity *parity = handle;

	return verify_run_prepared(parity->prepared, parity->touched, clean, rows, why, whylen);
}

static bool
agent_parity_before_fence(void *handle, bool *clean, uint64_t *rows, char *why, size_t whylen)
{
	AgentParity *parity = handle;

	return verify_run_before_fence(parity->prepared, parity->touched, clean, rows, why, whylen);
}

static void
agent_parity_report(void *handle)
{
	AgentParity *parity = handle;

	verify_write_report(parity->prepared);
}

static void
agent_parity_describe(void *handle, char *buf, size_t len)
{
	AgentParity *parity = handle;

	verify_describe_touched(parity->prepared, parity->touched, buf, len);
}

static void
agent_parity_free(void *handle)
{
	AgentParity *parity = handle;

	if (parity == NULL)
		return;
	verify_prepared_free(parity->prepared);
	free(parity);
}

/*
 * A verify (periodic, by hand, or the cutover's) wrote new results: keys stamped at or before
 * a table's clean baseline are no longer needed.
 */
static void
agent_prune_touched(Agent *agent)
{
	char path[PATH_MAX];
	struct stat st;
	VerifyBaseline *baselines;
	int n;

	if (agent->touched == NULL)
		return;
	snprintf(path, sizeof(path), "%s/parity/latest.json", agent->options->state_dir);
	if (stat(path, &st) != 0 || (st.st_mtim.tv_sec == agent->latest_seen.tv_sec &&
								  st.st_mtim.tv_nsec == agent->latest_seen.tv_nsec))
		return;
	agent->latest_seen = st.st_mtim;
	if (!verify_read_baselines(agent->options->state_dir, &baselines, &n))
		return;
	for (int i = 0; i < n; i++)
		touched_prune(agent->touched, baselines[i].schema, baselines[i].name, baselines[i].lsn);
	verify_baselines_free(baselines, n);
}

static void
agent_release_hold(Agent *agent)
{
	if (agent->spool != NULL && !agent->paused && !spool_set_hold(agent->spool, LSN_INVALID))
		log_warning("could not release the parity hold");
	agent->hold_lsn = LSN_INVALID;
	agent->hold_since_us = 0;
}

/*
 * Pause is a hold at what the spool holds now: the applier applies that much and waits;
 * receiving goes on into the spool. Resume lifts it.
 */
static void
agent_pause(Agent *agent, bool pause, ControlResponse *response)
{
	if (agent->spool == NULL || agent->applier == NULL)
	{
		response->message = strdup("the applier is not running yet");
		return;
	}
	if (pause == agent->paused)
	{
		response->ok = true;
		response->message = strdup(pause ? "already paused" : "not paused");
		return;
	}
	if (pause && agent->hold_lsn != LSN_INVALID)
	{
		response->message = strdup("a verify holds the applier: pause after it");
		return;
	}
	if (pause)
		spool_hold_now(agent->spool);
	else if (!spool_set_hold(agent->spool, LSN_INVALID))
	{
		response->message = strdup("could not resume the applier");
		return;
	}
	agent->paused = pause;
	log_info("applying to the target %s through the control socket", pause ? "paused" : "resumed");
	response->ok = true;
	response->message = strdup(pause ? "applying paused; receiving goes on" : "applying resumed");
}

static void
agent_hold(Agent *agent, Lsn lsn, ControlResponse *response)
{
	ApplyStats astats;
	char lsnbuf[LSN_FORMAT_SIZE];
	char applied[LSN_FORMAT_SIZE];

	if (agent->applier == NULL || agent->spool == NULL || lsn == LSN_INVALID)
	{
		response->message = strdup(lsn == LSN_INVALID ? "no LSN to hold at" : "the applier is not running yet");
		return;
	}
	if (agent->paused)
	{
		response->message = strdup("applying is paused: switchyard resume first");
		return;
	}
	apply_get_stats(agent->applier, &astats);
	if (astats.last_commit_lsn > lsn)
	{
		char message[160];

		snprintf(message, sizeof(message), "the target is past %s already (applied %s)",
				 lsn_format(lsn, lsnbuf), lsn_format(astats.last_commit_lsn, applied));
		response->message = strdup(message);
		return;
	}
	if (!spool_set_hold(agent->spool, lsn))
	{
		response->message = strdup("the spool can no longer stop at that LSN");
		return;
	}
	agent->hold_lsn = lsn;
	agent->hold_since_us = monotonic_us();
	log_debug("parity hold at %s", lsn_format(lsn, lsnbuf));
	response->ok = true;
	response->applied_lsn = astats.applied_lsn;
	response->held = agent_is_held(agent, &astats);
}

static void
agent_begin_cutover(Agent *agent, const CutoverRequest *request, ControlResponse *response)
{
	CutoverOptions options = {0};
	CutoverStatus status;
	char **app_roles = NULL;
	bool started;

	if (agent->cutover != NULL)
	{
		cutover_get_status(agent->cutover, &status);
		if (!status.finished || status.step == CUTOVER_DONE)
		{
			response->message = strdup(status.finished ? "the cutover is done already" : "a cutover is running");
			return;
		}
		cutover_free(agent->cutover);
		agent->cutover = NULL;
	}
	if (agent->copy != NULL || agent->applier == NULL)
	{
		response->message = strdup("the initial copy has not finished: cutover refused");
		return;
	}
	if (agent->verify_pid > 0 && request != NULL && !request->dry_run)
	{
		/* it holds the applier at its own points and writes the results the cutover reads */
		response->message = strdup("a periodic verify (--verify-every) is running: run the cutover again when "
								   "it has ended (the agent's log says \"periodic verify: ...\")");
		return;
	}

	if (request == NULL)
	{
		response->message = strdup("malformed cutover request");
		return;
	}
	options.state_dir = agent->options->state_dir;
	options.source_conninfo = agent->options->source;
	options.target_conninfo = agent->options->target;
	options.pgbouncer = request->pgbouncer;
	options.pgbouncer_db = request->pgbouncer_db;
	options.pgbouncer_ini = request->pgbouncer_ini;
	options.dry_run = request->dry_run;
	options.manual_fence = request->manual_fence;
	options.read_only_fence = request->read_only_fence;
	options.stall_at = request->stall_at;
	if (request->read_only_fence && request->n_app_roles == 0)
	{
		response->message = strdup("the read-only fence needs the application roles (--app-roles)");
		return;
	}
	/* NULL-terminated, as the cutover takes lists; it keeps its own copy */
	app_roles = calloc(request->n_app_roles + 1, sizeof(char *));
	if (app_roles == NULL)
	{
		response->message = strdup("out of memory");
		return;
	}
	for (size_t i = 0; i < request->n_app_roles; i++)
		app_roles[i] = request->app_roles[i];
	options.app_roles = app_roles;
	options.max_pause_ms = (int) request->max_pause_ms;
	options.max_lag_bytes = request->max_lag_bytes;
	options.fail_at = request->fail_at;
	options.applier = agent->applier;
	options.spool = agent->spool;
	options.guard = agent->guard;
	options.final_parity.prepare = agent_parity_prepare;
	options.final_parity.run = agent_parity_run;
	options.final_parity.free = agent_parity_free;
	options.final_parity.describe = agent_parity_describe;
	options.final_parity.report = agent_parity_report;
	options.final_parity.before_fence = agent_parity_before_fence;
	options.final_parity.arg = agent;
	started = cutover_start(&options, &agent->cutover);
	free(app_roles);
	if (!started)
	{
		response->message = strdup("could not start the cutover");
		return;
	}
	agent->cutover_reported = false;
	response->ok = true;
	response->message = strdup(request->dry_run ? "cutover preflight started" : "cutover started");
}

/*
 * `status --json` shows what /api/status shows: the status plus the latest parity result per
 * table (from verify's latest.json) and the cutover readiness.
 */
static char *
agent_status_document(Agent *agent, const AgentStatus *status)
{
	char path[4200];
	json_object *latest;
	HttpParity *parity = NULL;
	char *document;

	snprintf(path, sizeof(path), "%s/parity/latest.json", agent->options->state_dir);
	latest = access(path, R_OK) == 0 ? json_object_from_file(path) : NULL;
	if (latest != NULL && !http_parity_parse(json_object_to_json_string(latest), &parity))
		parity = NULL;
	json_object_put(latest);
	document = http_render_status(status, parity, (int64_t) time(NULL));
	http_parity_free(parity);
	return document;
}

static void
agent_on_control(const ControlRequest *request, ControlResponse *response, void *arg)
{
	Agent *agent = arg;

	switch (request->command)
	{
		case CONTROL_REQUEST__COMMAND__STATUS:
		{
			AgentStatus status;
			ReceiverStats rstats;
			ApplyStats astats;
			SpoolStats sstats;

			agent_fill_status(agent, &status, &rstats, &astats, &sstats);
			response->status_json = agent_status_document(agent, &status);
			response->ok = response->status_json != NULL;
			break;
		}
		case CONTROL_REQUEST__COMMAND__STOP:
			log_info("stop requested through the control socket");
			agent->stop_requested = true;
			response->ok = true;
			response->message = strdup("stopping");
			break;
		case CONTROL_REQUEST__COMMAND__CUTOVER:
			agent_begin_cutover(agent, request->cutover, response);
			break;
		case CONTROL_REQUEST__COMMAND__APPLY_HOLD:
			agent_hold(agent, request->lsn, response);
			break;
		case CONTROL_REQUEST__COMMAND__APPLY_RELEASE:
			agent_release_hold(agent);
			response->ok = true;
			response->message = strdup("released");
			break;
		case CONTROL_REQUEST__COMMAND__PAUSE:
		case CONTROL_REQUEST__COMMAND__RESUME:
			agent_pause(agent, request->command == CONTROL_REQUEST__COMMAND__PAUSE, response);
			break;
		default:
			response->ok = false;
			response->message = strdup("this command is not available in this version");
			break;
	}
}

/* /metrics, /api/status and the dashboard show what the control socket's STATUS shows. */
static void
agent_http_status(void *arg, HttpStatusSink sink, void *sink_arg)
{
	Agent *agent = arg;
	AgentStatus status;
	ReceiverStats rstats;
	ApplyStats astats;
	SpoolStats sstats;

	agent_fill_status(agent, &status, &rstats, &astats, &sstats);
	sink(&status, sink_arg);
}

/* Per-table rows applied for /metrics; the strings live in agent->table_stats until the next call. */
static size_t
agent_http_table_counts(void *arg, HttpTableCount *out, size_t max)
{
	Agent *agent = arg;
	size_t n;

	if (agent->applier == NULL)
		return 0;
	if (agent->table_stats_cap < max)
	{
		ApplyTableStats *bigger = realloc(agent->table_stats, max * sizeof(*bigger));

		if (bigger == NULL)
			return 0;
		agent->table_stats = bigger;
		agent->table_stats_cap = max;
	}
	n = apply_get_table_stats(agent->applier, agent->table_stats, max);
	for (size_t i = 0; i < n && i < max; i++)
	{
		out[i].table = agent->table_stats[i].table;
		out[i].inserted = agent->table_stats[i].inserted;
		out[i].updated = agent->table_stats[i].updated;
		out[i].deleted = agent->table_stats[i].deleted;
		out[i].truncated = agent->table_stats[i].truncated;
	}
	return n;
}

static bool
agent_start_http(Agent *agent)
{
	HttpOptions http_options = {0};

	if (agent->options->http == NULL)
		return true;
	http_options.base = agent->base;
	http_options.address = agent->options->http;
	http_options.token = agent->options->http_token;
	http_options.state_dir = agent->options->state_dir;
	http_options.status = agent_http_status;
	http_options.status_arg = agent;
	http_options.table_counts = agent_http_table_counts;
	http_options.table_counts_arg = agent;
	return http_server_start(&http_options, &agent->http);
}

/* Lag needs the source's WAL head; asked without blocking the loop. */
static void
agent_poll_source(Agent *agent)
{
	PGresult *res;

	if (agent->monitor == NULL)
		return;
	if (agent->monitor_busy)
	{
		if (!PQconsumeInput(agent->monitor))
			goto lost;
		if (PQisBusy(agent->monitor))
			return;
		while ((res = PQgetResult(agent->monitor)) != NULL)
		{
			Lsn lsn;

			if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
				lsn_parse(PQgetvalue(res, 0, 0), &lsn))
				agent->source_current_lsn = lsn;
			PQclear(res);
		}
		agent->monitor_busy = false;
		return;
	}
	if (PQstatus(agent->monitor) != CONNECTION_OK)
	{
		PQreset(agent->monitor);  /* blocking, but only once the source was lost */
		if (PQstatus(agent->monitor) != CONNECTION_OK)
			return;
	}
	if (!PQsendQuery(agent->monitor, "SELECT pg_current_wal_lsn()"))
		goto lost;
	agent->monitor_busy = true;
	return;
lost:
	agent->monitor_busy = false;
	PQfinish(agent->monitor);
	agent->monitor = NULL;
}

/* Keeps the application off the target until the cutover lifts the guard. */
static bool
agent_start_guard(Agent *agent)
{
	GuardOptions guard_options = {0};

	guard_options.target_conninfo = agent->options->target;
	guard_options.state_dir = agent->options->state_dir;
	guard_options.app_roles = agent->options->app_roles;
	guard_options.mode = agent->options->guard_enforce ? GUARD_ENFORCE : GUARD_OBSERVE;
	return guard_start(&guard_options, &agent->guard);
}

static bool
agent_start_applier(Agent *agent)
{
	ApplyOptions apply_options = {0};

	apply_options.target_conninfo = agent->options->target;
	apply_options.origin_name = agent->state->origin_name;
	apply_options.spool = agent->spool;
	apply_options.endpos = agent->options->endpos;
	if (agent->touched == NULL && (agent->touched = touched_create(0)) == NULL)
	{
		log_error("out of memory");
		return false;
	}
	apply_options.touched = agent->touched;
	return apply_start(&apply_options, &agent->applier);
}

static void
agent_print_copy_progress(Agent *agent, const CopyProgress *progress, bool final)
{
	double rate = progress->elapsed_seconds > 0 ? (double) progress->bytes_done / progress->elapsed_seconds : 0;
	double left = progress->bytes_estimated > progress->bytes_done
		? (double) (progress->bytes_estimated - progress->bytes_done) : 0;
	int eta = rate > 0 ? (int) (left / rate) : -1;
	char line[256];

	snprintf(line, sizeof(line),
			 "copy %-9s tables %d/%d  rows %llu/~%llu  %.1f/%.1f MB  %.1f MB/s  ETA %s%d s",
			 progress->step, progress->tables_done, progress->tables_total,
			 (unsigned long long) progress->rows_done, (unsigned long long) progress->rows_estimated,
			 (double) progress->bytes_done / 1e6, (double) progress->bytes_estimated / 1e6, rate / 1e6,
			 eta < 0 ? "?" : "", eta < 0 ? 0 : eta);
	/* a live line on a terminal; periodic log lines otherwise */
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "\r%s\033[K%s", line, final ? "\n" : "");
	else
		log_info("%s", line);
}

/* During the copy the stream is spooled; the applier starts once the data is in. */
static void
agent_watch_copy(Agent *agent, int64_t now)
{
	CopyProgress progress;
	int64_t every = isatty(STDERR_FILENO) ? 1000000 : 10000000;

	copy_get_progress(agent->copy, &progress);
	if (!progress.finished)
	{
		if (now - agent->last_progress_us >= every)
		{
			agent->last_progress_us = now;
			agent_print_copy_progress(agent, &progress, false);
		}
		return;
	}
	agent_print_copy_progress(agent, &progress, true);
	copy_free(agent->copy);
	agent->copy = NULL;
	if (progress.failed)
	{
		log_error("the initial copy failed: %s", progress.error);
		agent_note_error(agent, progress.error);
		log_hint("fix the cause and run the same command again: the copy starts over");
		agent->exit_code = EXIT_TARGET;
		event_base_loopbreak(agent->base);
		return;
	}
	agent->state->copy_done = true;
	agent_set_phase(agent, "streaming");
	if (!agent_save_state(agent) || !agent_start_applier(agent))
	{
		agent->exit_code = EXIT_INTERNAL;
		event_base_loopbreak(agent->base);
		return;
	}
	log_info("initial copy done in %.1f s: applying the changes spooled meanwhile", progress.elapsed_seconds);
}

/*
 * Continuous parity: `switchyard verify` as a child, talking to this agent through the
 * control socket like any verify; its results land in <state-dir>/parity/latest.json, which
 * status and the dashboard show. Connection strings travel in its environment, not argv.
 */
static void
agent_spawn_verify(Agent *agent)
{
	char exe[4096];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	pid_t pid;

	if (len <= 0)
		return;
	exe[len] = '\0';
	pid = fork();
	if (pid < 0)
	{
		log_warning("could not start the periodic verify: %m");
		return;
	}
	if (pid == 0)
	{
		char log_path[4200];
		int fd;

		snprintf(log_path, sizeof(log_path), "%s/verify.log", agent->options->state_dir);
		fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0)
		{
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		setenv("SWITCHYARD_SOURCE", agent->options->source, 1);
		setenv("SWITCHYARD_TARGET", agent->options->target, 1);
		execl(exe, exe, "verify", "--state-dir", agent->options->state_dir, (char *) NULL);
		_exit(127);
	}
	agent->verify_pid = pid;
	log_info("periodic verify started (pid %d)", (int) pid);
}

static void
agent_watch_verify(Agent *agent, int64_t now)
{
	int status = 0;

	if (agent->verify_pid > 0)
	{
		if (waitpid(agent->verify_pid, &status, WNOHANG) != agent->verify_pid)
			return;
		agent->verify_pid = 0;
		agent->verify_done_us = now;
		if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_OK)
			log_info("periodic verify: source and target are equal");
		else if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_PARITY)
			log_warning("periodic verify found differences: see switchyard status and %s/parity",
						agent->options->state_dir);
		else
			log_warning("periodic verify failed (see %s/verify.log)", agent->options->state_dir);
		return;
	}
	if (agent->options->verify_every_seconds <= 0 || agent->cutover != NULL || agent->paused ||
		now - agent->verify_done_us < (int64_t) agent->options->verify_every_seconds * 1000000)
		return;
	agent_spawn_verify(agent);
}

static void
agent_on_tick(evutil_socket_t fd, short what, void *arg)
{
	Agent *agent = arg;
	ApplyStats astats;
	int64_t now = monotonic_us();

	if (agent->stop_requested)
	{
		event_base_loopbreak(agent->base);
		return;
	}
	if (agent->receiver != NULL)
	{
		ReceiverStats rstats;

		receiver_get_stats(agent->receiver, &rstats);
		if (rstats.fatal)
		{
			/* the receiver logged the error and its hint */
			agent_note_error(agent, rstats.last_error);
			agent->exit_code = rstats.exit_code;
			event_base_loopbreak(agent->base);
			return;
		}
	}
	if (agent->copy != NULL)
	{
		agent_watch_copy(agent, now);
		return;
	}
	if (agent->cutover != NULL && !agent->cutover_reported)
	{
		CutoverStatus cstatus;

		cutover_get_status(agent->cutover, &cstatus);
		if (cstatus.finished)
		{
			agent->cutover_reported = true;
			if (cstatus.succeeded && cstatus.step == CUTOVER_DONE)
			{
				/* the application writes to the target now: streaming ends, the slot stays */
				agent_set_phase(agent, "done");
				agent->stop_requested = true;
				agent->exit_code = EXIT_OK;
				return;
			}
		}
	}
	apply_get_stats(agent->applier, &astats);
	receiver_set_applied(agent->receiver, astats.applied_lsn);
	if (astats.stopped)
	{
		if (astats.reached_endpos)
		{
			char lsnbuf[LSN_FORMAT_SIZE];

			log_info("reached end position %s: everything up to it is applied",
					 lsn_format(agent->options->endpos, lsnbuf));
			agent->exit_code = EXIT_OK;
		}
		else
		{
			log_error("the applier stopped: %s", astats.last_error[0] ? astats.last_error : "unknown error");
			agent_note_error(agent, astats.last_error[0] ? astats.last_error : "the applier stopped");
			agent->exit_code = astats.fatal ? EXIT_INTERNAL : EXIT_TARGET;
		}
		event_base_loopbreak(agent->base);
		return;
	}
	/* a verify that died without releasing must not stop the migration for good */
	if (agent->hold_lsn != LSN_INVALID && now - agent->hold_since_us > AGENT_HOLD_MAX_US)
	{
		log_warning("releasing a parity hold held for %d minutes without release",
					(int) (AGENT_HOLD_MAX_US / 60000000));
		agent_release_hold(agent);
	}
	agent_watch_verify(agent, now);
	if (now - agent->last_poll_us >= AGENT_SOURCE_POLL_MS * 1000)
	{
		agent->last_poll_us = now;
		agent_poll_source(agent);
		agent_prune_touched(agent);
	}
	if (now - agent->last_save_us >= AGENT_STATE_SAVE_MS * 1000)
	{
		agent->last_save_us = now;
		if (!agent_save_state(agent))
			log_warning("could not save the agent state");
	}
}

static void
agent_on_signal(evutil_socket_t sig, short what, void *arg)
{
	Agent *agent = arg;

	log_info("received %s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
	agent->stop_requested = true;
	event_base_loopbreak(agent->base);
}

static int
agent_stream(Agent *agent)
{
	const CliOptions *options = agent->options;
	SpoolOptions spool_options = {0};
	ReceiverOptions receiver_options = {0};
	char receiver_error[512] = "";
	struct timeval tick = {0, AGENT_TICK_MS * 1000};

	spool_options.dir = agent->spool_dir;
	spool_options.max_bytes = options->spool_max_bytes;
	if (!spool_open(&spool_options, &agent->spool))
		return EXIT_INTERNAL;

	if (agent->copy_wanted)
	{
		CopyOptions copy_options = {0};

		copy_options.source_conninfo = options->source;
		copy_options.target_conninfo = options->target;
		copy_options.snapshot_name = agent->snapshot_name;
		copy_options.publication_name = agent->state->publication_name;
		copy_options.table_patterns = options->tables;
		copy_options.work_dir = options->state_dir;
		copy_options.jobs = options->jobs;
		copy_options.restore_schema = agent->restore_schema;
		copy_options.clean_schema = agent->copy_restart && agent->restore_schema;
		agent_set_phase(agent, "copy");
		if (!agent_save_state(agent) || !copy_start(&copy_options, &agent->copy))
			return EXIT_INTERNAL;
		/* the exported snapshot lives while its session is idle: until the copy holds it */
		if (!copy_wait_snapshot_imported(agent->copy))
		{
			CopyProgress progress;

			copy_get_progress(agent->copy, &progress);
			log_error("the initial copy failed: %s", progress.error);
			agent_note_error(agent, progress.error);
			return EXIT_TARGET;
		}
		PQfinish(agent->export_conn);
		agent->export_conn = NULL;
	}
	else if (!agent_start_applier(agent))
		return EXIT_INTERNAL;

	receiver_options.base = agent->base;
	receiver_options.source_conninfo = options->source;
	receiver_options.slot_name = agent->state->slot_name;
	receiver_options.publication_name = agent->state->publication_name;
	receiver_options.spool = agent->spool;
	receiver_options.error = receiver_error;
	receiver_options.error_len = sizeof(receiver_error);
	if (!receiver_start(&receiver_options, &agent->receiver))
	{
		agent_note_error(agent, receiver_error);
		return EXIT_SOURCE;
	}
	agent_note_error(agent, "");   /* streaming again: an old error no longer holds */

	if (!control_server_start(agent->base, options->state_dir, agent_on_control, agent, &agent->control))
		return EXIT_INTERNAL;
	if (!agent_start_http(agent))
		return EXIT_INTERNAL;

	if (!agent_start_guard(agent))
		return EXIT_TARGET;

	agent->monitor = conninfo_connect(options->source, CONN_NORMAL, "monitor", "source");
	if (agent->monitor != NULL && PQsetnonblocking(agent->monitor, 1) != 0)
		log_warning("could not make the monitoring connection non-blocking");

	event_assign(&agent->tick, agent->base, -1, EV_PERSIST, agent_on_tick, agent);
	event_add(&agent->tick, &tick);
	evsignal_assign(&agent->sigterm, agent->base, SIGTERM, agent_on_signal, agent);
	evsignal_assign(&agent->sigint, agent->base, SIGINT, agent_on_signal, agent);
	evsignal_add(&agent->sigterm, NULL);
	evsignal_add(&agent->sigint, NULL);

	if (agent->copy == NULL)
		agent_set_phase(agent, "streaming");
	agent->verify_done_us = monotonic_us();
	if (!agent_save_state(agent))
		return EXIT_INTERNAL;
	log_info("agent running: slot \"%s\", state directory \"%s\"", agent->state->slot_name, options->state_dir);
	agent->exit_code = EXIT_OK;
	event_base_dispatch(agent->base);
	return agent->exit_code;
}

static void
agent_shutdown(Agent *agent)
{
	agent_set_phase(agent, "stopping");
	/* first: its requests read the parts freed below */
	http_server_free(agent->http);
	agent->http = NULL;
	/* a cutover in progress uses the applier, spool and guard: it ends (or rolls back) first */
	cutover_free(agent->cutover);
	agent->cutover = NULL;
	if (agent->copy != NULL)
	{
		copy_request_stop(agent->copy);
		copy_free(agent->copy);
		agent->copy = NULL;
	}
	if (agent->export_conn != NULL)
		PQfinish(agent->export_conn);
	agent->export_conn = NULL;
	/* the receiver first: its last feedback confirms all that is durable */
	receiver_free(agent->receiver);
	agent->receiver = NULL;
	if (agent->applier != NULL)
	{
		ApplyStats astats;

		apply_request_stop(agent->applier);
		apply_get_stats(agent->applier, &astats);
		if (astats.applied_lsn > agent->state->applied_lsn)
			agent->state->applied_lsn = astats.applied_lsn;
		apply_free(agent->applier);
		agent->applier = NULL;
	}
	guard_free(agent->guard);
	agent->guard = NULL;
	control_server_free(agent->control);
	agent->control = NULL;
	if (agent->spool != NULL)
	{
		if (spool_durable_lsn(agent->spool) > agent->state->flushed_lsn)
			agent->state->flushed_lsn = spool_durable_lsn(agent->spool);
		spool_close(agent->spool);
		agent->spool = NULL;
	}
	if (agent->monitor != NULL)
		PQfinish(agent->monitor);
	agent->monitor = NULL;
	if (agent->base != NULL)
	{
		/* an agent that stopped early (the source refused it) never assigned them */
		if (event_initialized(&agent->tick))
			event_del(&agent->tick);
		if (event_initialized(&agent->sigterm))
			event_del(&agent->sigterm);
		if (event_initialized(&agent->sigint))
			event_del(&agent->sigint);
	}
	if (strcmp(agent->phase, "done") != 0)
		agent_set_phase(agent, "stopped");
	if (agent->state != NULL && !agent_save_state(agent))
		log_warning("could not save the agent state");
}

static char *
agent_path(const char *dir, const char *name)
{
	size_t len = strlen(dir) + strlen(name) + 2;
	char *path = malloc(len);

	if (path != NULL)
		snprintf(path, len, "%s/%s", dir, name);
	return path;
}

int
agent_run(const CliOptions *options)
{
	Agent agent = {0};
	int lock_fd = -1;
	bool dir_created = false;
	bool first_run = false;
	int code = EXIT_INTERNAL;

	agent.options = options;
	agent.phase = "starting";
	agent.started_at = (int64_t) time(NULL);
	signal(SIGPIPE, SIG_IGN);
	if (options->source == NULL || options->target == NULL)
	{
		fprintf(stderr, "switchyard: run needs --source and --target (or SWITCHYARD_SOURCE/SWITCHYARD_TARGET)\n");
		return EXIT_USAGE;
	}
	if (!state_dir_ensure(options->state_dir, &dir_created))
		return EXIT_INTERNAL;
	if (!state_lock(options->state_dir, &lock_fd))
		return EXIT_USAGE;  /* another agent runs on this state directory */
	if (!state_load(options->state_dir, &agent.state))
		goto cleanup;
	{
		CutoverRecovery recovery;

		/*
		 * An interrupted cutover is resolved before anything else happens, the guard included:
		 * rolled back before its switch, completed after it.
		 */
		if (!cutover_recover(options->state_dir, options->source, &recovery))
		{
			code = EXIT_CUTOVER;
			goto cleanup;
		}
		if (recovery == CUTOVER_RECOVERY_COMPLETED)
		{
			/* the application writes to the target now: nothing more to stream */
			if (agent.state != NULL)
			{
				agent_set_phase(&agent, "done");
				if (!agent_save_state(&agent))
					log_warning("could not save the agent state");
			}
			log_hint("run switchyard cleanup to drop the slot, publication and origin");
			code = EXIT_OK;
			goto cleanup;
		}
		if (recovery == CUTOVER_RECOVERY_SWITCHED)
		{
			log_error("this migration was cut over: the application uses the target now");
			log_hint("run switchyard cleanup to drop the slot, publication and origin");
			code = EXIT_USAGE;
			goto cleanup;
		}
	}
	if (agent.state == NULL)
	{
		/* the names are kept from the start, so a failed first run is continued, not forgotten */
		first_run = true;
		if (!agent_new_state(&agent.state) || !state_save(options->state_dir, agent.state))
			goto cleanup;
	}
	agent.spool_dir = agent_path(options->state_dir, "spool");
	agent.source_shown = conninfo_redact(options->source);
	agent.target_shown = conninfo_redact(options->target);
	if (agent.spool_dir == NULL || agent.source_shown == NULL || agent.target_shown == NULL)
		goto cleanup;

	code = agent_prepare(&agent);
	if (code != EXIT_OK)
	{
		/*
		 * ... unless there is nothing to continue: refused (a server down, a check failed)
		 * before any object got the names, a leftover state would only mislead the rerun.
		 */
		if (first_run && !agent.names_used)
		{
			state_discard(options->state_dir, lock_fd, dir_created);
			lock_fd = -1;
		}
		goto cleanup;
	}
	if (!agent_save_state(&agent))
	{
		code = EXIT_INTERNAL;
		goto cleanup;
	}
	agent.base = event_base_new();
	if (agent.base == NULL)
	{
		log_error("could not create the event loop");
		code = EXIT_INTERNAL;
		goto cleanup;
	}
	code = agent_stream(&agent);
	agent_shutdown(&agent);
	log_info("agent stopped");
cleanup:
	if (agent.base != NULL)
		event_base_free(agent.base);
	state_free(agent.state);
	if (agent.export_conn != NULL)
		PQfinish(agent.export_conn);
	free(agent.table_stats);
	touched_free(agent.touched);
	free(agent.snapshot_name);
	free(agent.spool_dir);
	free(agent.source_shown);
	free(agent.target_shown);
	if (lock_fd >= 0)
		close(lock_fd);
	return code;
}

/* ---- cleanup ------------------------------------------------------------------------------ */

static bool
agent_drop_origin(const CliOptions *options, const char *origin)
{
	PGconn *target = conninfo_connect(options->target, CONN_NORMAL, "cleanup", "target");
	bool ok;

	if (target == NULL)
		return false;
	ok = agent_drop_origin_on(target, origin);
	PQfinish(target);
	return ok;
}

int
agent_cleanup(const CliOptions *options)
{
	AgentState *state = NULL;
	PGconn *source = NULL;
	int lock_fd = -1;
	int code = EXIT_INTERNAL;

	if (!state_load(options->state_dir, &state))
		return EXIT_INTERNAL;
	/* the names of what to drop are in the state only: no state, no connection either */
	if (state == NULL)
	{
		fprintf(stderr, "switchyard: no migration state in \"%s\": nothing to clean up\n", options->state_dir);
		fprintf(stderr, "Name the migration's directory with --state-dir; a slot left without one is dropped "
				"with pg_drop_replication_slot() on the source.\n");
		return EXIT_NO_AGENT;
	}
	if (!state_lock(options->state_dir, &lock_fd))
		goto cleanup;
	/* first: the application's access to the target, and the record of it, go nowhere else */
	code = EXIT_TARGET;
	if (!guard_cleanup(options->state_dir, options->target))
		goto cleanup;
	if (options->source != NULL)
	{
		code = EXIT_SOURCE;
		source = conninfo_connect(options->source, CONN_NORMAL, "cleanup", "source");
		if (source == NULL || !source_drop(source, state->slot_name, state->publication_name))
			goto cleanup;
	}
	else
		log_warning("no --source given: slot \"%s\" and publication \"%s\" stay on the source",
					state->slot_name, state->publication_name);
	if (options->target != NULL)
	{
		code = EXIT_TARGET;
		if (!agent_drop_origin(options, state->origin_name))
			goto cleanup;
	}
	else
		log_warning("no --target given: replication origin \"%s\" stays on the target", state->origin_name);
	code = EXIT_INTERNAL;
	if (!state_remove(options->state_dir))
		goto cleanup;
	/* spool, schema dump, reports, lock: the whole directory goes */
	nftw(options->state_dir, agent_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	log_info("cleaned up migration \"%s\"", state->slot_name);
	code = EXIT_OK;
cleanup:
	if (source != NULL)
		PQfinish(source);
	state_free(state);
	if (lock_fd >= 0)
		close(lock_fd);
	return code;
}
