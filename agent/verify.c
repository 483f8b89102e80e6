/*
 * `switchyard verify`: the common point and the report around parity.c's comparison. Per
 * batch of tables: a temporary logical slot exports the source's snapshot at LSN L, every
 * source worker imports it, the running agent holds its applier at L, one target session
 * exports the target's snapshot and the others import it, and the applier goes on (with
 * --repair only after the repair). Snapshots live for one batch, so vacuum on production is
 * held back for a batch's comparison at most, never for the whole run.
 */
#include "switchyard/verify.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "switchyard/conninfo.h"
#include "switchyard/control.h"
#include "switchyard/exitcode.h"
#include "switchyard/fileio.h"
#include "switchyard/log.h"
#include "switchyard/lsn.h"
#include "switchyard/monotonic.h"
#include "switchyard/parity.h"
#include "switchyard/state.h"
#include "switchyard/text_array.h"
#include "switchyard/touched.h"

#define VERIFY_CONTROL_TIMEOUT_MS 10000
/* how long the applier may take to reach L (it may have a backlog to apply first) */
#define VERIFY_HOLD_TIMEOUT_MS 120000
#define VERIFY_HOLD_POLL_MS 5
#define VERIFY_PREHOLD_MAX_MS 2000  /* the longest the pre-hold may stop the applier */
#define VERIFY_MAX_JOBS 16
#define VERIFY_FENCED_JOBS 8
/* a new common point after this many (estimated) rows, so no snapshot lives for long */
#define VERIFY_BATCH_ROWS 50000000.0
/* differences printed per table in the text output; the report file has them all */
#define VERIFY_PRINT_DIFFERENCES 20
#define VERIFY_VALUE_WIDTH 60

typedef struct VerifyContext
{
	const CliOptions *options;  /* state_dir, source, target, jobs */
	char *const *table_names;   /* --table NAME..., or NULL: the publication's tables */
	bool repair;
	bool json;
	bool quiet;                 /* inside the agent: files only, nothing on stdout */
	bool fenced;                /* cutover: writes are stopped, both sides hold still */
	bool barrier;               /* a running agent holds its applier at each cut */
	int njobs;
	PGconn *source;             /* catalog, sampling */
	PGconn *target;             /* catalog, and the repair's writes */
	ParityPair *pairs;
	ParityTable **tables;
	int ntables;
	bool hold_active;           /* APPLY_HOLD sent, APPLY_RELEASE not yet */
	bool sources_in_snapshot;
	bool targets_in_snapshot;
	int cuts;
	char *publication;
	double compare_seconds;
	uint64_t bytes_received;
	uint64_t bytes_sent;
	int64_t started_unix_us;
	char report_path[PATH_MAX];
	ParityError error;
	int exit_status;            /* for failures outside a server (EXIT_USAGE, EXIT_NO_AGENT...) */
} VerifyContext;

/* ---- small helpers ---------------------------------------------------------------------- */

static void
verify_sleep_ms(int ms)
{
	struct timespec pause = {ms / 1000, (long) (ms % 1000) * 1000000};

	nanosleep(&pause, NULL);
}

static double
verify_seconds_since(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double) (now.tv_sec - since->tv_sec) + (double) (now.tv_nsec - since->tv_nsec) / 1e9;
}

static void
verify_fail(VerifyContext *ctx, ParitySide side, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
verify_fail(VerifyContext *ctx, ParitySide side, const char *fmt, ...)
{
	va_list args;

	if (ctx->error.side != PARITY_SIDE_NONE)
		return;
	ctx->error.side = side;
	va_start(args, fmt);
	vsnprintf(ctx->error.message, sizeof(ctx->error.message), fmt, args);
	va_end(args);
}

static bool
verify_exec(PGconn *conn, ParitySide side, const char *sql, const char *what, VerifyContext *ctx)
{
	PGresult *res = PQexec(conn, sql);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
	{
		log_error("could not %s on the %s: %s", what, side == PARITY_SIDE_TARGET ? "target" : "source",
				  conninfo_result_error(res));
		verify_fail(ctx, side, "could not %s: %s", what, conninfo_result_error(res));
	}
	PQclear(res);
	return ok;
}

/* Sends sql to every session of one side at once, then checks every result. */
static bool
verify_exec_all(VerifyContext *ctx, ParitySide side, int first, const char *sql, const char *what)
{
	bool ok = true;

	for (int i = first; i < ctx->njobs; i++)
	{
		PGconn *conn = side == PARITY_SIDE_TARGET ? ctx->pairs[i].target : ctx->pairs[i].source;

		if (PQsendQuery(conn, sql) != 1)
		{
			log_error("could not %s on the %s: %s", what, side == PARITY_SIDE_TARGET ? "target" : "source",
					  conninfo_error(conn));
			verify_fail(ctx, side, "could not %s", what);
			return false;
		}
	}
	for (int i = first; i < ctx->njobs; i++)
	{
		PGconn *conn = side == PARITY_SIDE_TARGET ? ctx->pairs[i].target : ctx->pairs[i].source;
		PGresult *res;

		while ((res = PQgetResult(conn)) != NULL)
		{
			if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK && ok)
			{
				log_error("could not %s on the %s: %s", what,
						  side == PARITY_SIDE_TARGET ? "target" : "source", conninfo_result_error(res));
				verify_fail(ctx, side, "could not %s: %s", what, conninfo_result_error(res));
				ok = false;
			}
			PQclear(res);
		}
	}
	return ok;
}

/* ---- the agent's applier barrier -------------------------------------------------------- */

static Lsn
verify_json_lsn_member(json_object *root, const char *name)
{
	json_object *value = NULL;
	Lsn lsn = 0;

	if (json_object_object_get_ex(root, name, &value) && json_object_is_type(value, json_type_string) &&
		!lsn_parse(json_object_get_string(value), &lsn))
		lsn = 0;
	return lsn;
}

/* hold_lsn and held from the agent's status document */
static bool
verify_parse_hold(const char *status_json, Lsn *hold_lsn, bool *held, Lsn *applied_lsn)
{
	json_object *root = json_tokener_parse(status_json);
	json_object *value = NULL;

	*hold_lsn = 0;
	*held = false;
	*applied_lsn = 0;
	if (root == NULL)
		return false;
	if (json_object_object_get_ex(root, "hold_lsn", &value))
	{
		if (json_object_is_type(value, json_type_string))
		{
			if (!lsn_parse(json_object_get_string(value), hold_lsn))
				*hold_lsn = 0;
		}
		else if (json_object_is_type(value, json_type_int))
			*hold_lsn = (Lsn) json_object_get_int64(value);
	}
	if (json_object_object_get_ex(root, "held", &value))
		*held = json_object_get_boolean(value);
	if (json_object_object_get_ex(root, "applied_lsn", &value) &&
		json_object_is_type(value, json_type_string) &&
		!lsn_parse(json_object_get_string(value), applied_lsn))
		*applied_lsn = 0;
	json_object_put(root);
	return true;
}

/* The agent's hold_lsn, held, applied_lsn, and in *seen_lsn the furthest position it has received. */
static bool
verify_agent_positions(VerifyContext *ctx, Lsn *hold_lsn, bool *held, Lsn *applied_lsn, Lsn *seen_lsn)
{
	ControlResponse *response = NULL;
	json_object *root = NULL;
	bool no_agent = false;
	bool ok = false;

	*seen_lsn = 0;
	if (!control_request(ctx->options->state_dir, CONTROL_REQUEST__COMMAND__STATUS, VERIFY_CONTROL_TIMEOUT_MS,
						 &response, &no_agent))
		goto cleanup;
	if (!response->ok || response->status_json == NULL ||
		!verify_parse_hold(response->status_json, hold_lsn, held, applied_lsn))
		goto cleanup;
	root = json_tokener_parse(response->status_json);
	if (root != NULL)
	{
		Lsn received = verify_json_lsn_member(root, "received_lsn");

		/* the furthest the agent has seen: at or past what it applied */
		*seen_lsn = verify_json_lsn_member(root, "flushed_lsn");
		if (received > *seen_lsn)
			*seen_lsn = received;
		if (*applied_lsn > *seen_lsn)
			*seen_lsn = *applied_lsn;
	}
	ok = true;

cleanup:
	json_object_put(root);
	control_response_free(response);
	return ok;
}

/*
 * After a control request failed: whether the agent is gone (killed or stopped while it served
 * the request, so nothing listens now). Then verify exits EXIT_NO_AGENT, not as a target error.
 */
static bool
verify_agent_gone(VerifyContext *ctx, bool no_agent)
{
	ControlResponse *response = NULL;

	/* a second request tells a dead agent (nothing listens) from a slow or failing one */
	if (!no_agent && control_request(ctx->options->state_dir, CONTROL_REQUEST__COMMAND__STATUS, 1000,
									 &response, &no_agent))
		no_agent = false;       /* it answered: still there */
	control_response_free(response);
	if (no_agent)
	{
		log_error("the agent on state directory \"%s\" stopped during verify", ctx->options->state_dir);
		log_hint("start the agent again (the same switchyard run command), then run verify again");
		ctx->exit_status = EXIT_NO_AGENT;
	}
	return no_agent;
}

/*
 * Stops the applier before the slot exists, at the source's WAL insert position X now: the
 * slot's consistent point L comes later, so X <= L, and whatever the applier has read or may
 * still commit lies before X. The hold at L then never finds the target past L already.
 * Best effort (the source may move past X before the agent sees the request): the check after
 * the target's snapshot still catches a target that moved past L.
 */
static void
verify_prehold(VerifyContext *ctx)
{
	for (int attempt = 0; attempt < 2; attempt++)
	{
		ControlResponse *response = NULL;
		PGresult *res = PQexec(ctx->source, "SELECT pg_catalog.pg_current_wal_insert_lsn()");
		Lsn now = 0;
		bool no_agent = false;
		bool held = false;

		if (PQresultStatus(res) != PGRES_TUPLES_OK || !lsn_parse(PQgetvalue(res, 0, 0), &now))
			now = 0;
		PQclear(res);
		if (now == 0)
			return;
		if (control_request_lsn(ctx->options->state_dir, CONTROL_REQUEST__COMMAND__APPLY_HOLD, now,
								VERIFY_CONTROL_TIMEOUT_MS, &response, &no_agent) && response->ok)
		{
			ctx->hold_active = true;
			held = true;
		}
		else if (response != NULL)
			log_debug("the agent did not pre-hold its applier: %s", response->message);
		control_response_free(response);
		if (held || no_agent)
			return;
	}
}

static bool
verify_release(VerifyContext *ctx)
{
	ControlResponse *response = NULL;
	bool no_agent = false;
	bool ok = false;

	if (!ctx->hold_active)
		return true;
	if (!control_request(ctx->options->state_dir, CONTROL_REQUEST__COMMAND__APPLY_RELEASE,
						 VERIFY_CONTROL_TIMEOUT_MS, &response, &no_agent))
	{
		if (no_agent)
		{
			/* an agent that is gone holds nothing; a new one starts unheld */
			ctx->hold_active = false;
			return true;
		}
		log_hint("The agent's applier may still be held: run \"switchyard verify\" again or restart the agent.");
		verify_fail(ctx, PARITY_SIDE_TARGET, "could not ask the agent to release its applier");
		goto cleanup;
	}
	if (!response->ok)
	{
		log_error("the agent did not release its applier: %s", response->message);
		verify_fail(ctx, PARITY_SIDE_TARGET, "the agent did not release its applier: %s", response->message);
		goto cleanup;
	}
	ctx->hold_active = false;
	ok = true;

cleanup:
	control_response_free(response);
	return ok;
}

/*
 * Asks the agent to hold at lsn and waits until it holds there. *torn: the applier was past
 * lsn already (it moved on while the slot was created), so another common point is needed.
 */
static bool
verify_hold(VerifyContext *ctx, Lsn lsn, bool *torn)
{
	ControlResponse *response = NULL;
	char lsn_text[LSN_FORMAT_SIZE];
	char applied_text[LSN_FORMAT_SIZE];
	Lsn hold_lsn = 0;
	Lsn applied_lsn = 0;
	bool held = false;
	bool no_agent = false;
	int64_t deadline;
	bool ok = false;

	lsn_format(lsn, lsn_text);
	if (!control_request_lsn(ctx->options->state_dir, CONTROL_REQUEST__COMMAND__APPLY_HOLD, lsn,
							 VERIFY_CONTROL_TIMEOUT_MS, &response, &no_agent))
	{
		(void) verify_agent_gone(ctx, no_agent);
		verify_fail(ctx, PARITY_SIDE_TARGET, "could not ask the agent to hold its applier at %s", lsn_text);
		goto cleanup;
	}
	if (!response->ok)
	{
		Lsn hold_lsn;
		Lsn applied;
		Lsn seen;
		bool is_held;

		if (verify_agent_positions(ctx, &hold_lsn, &is_held, &applied, &seen) && applied > lsn)
		{
			log_debug("the applier is past %s already: taking another common point", lsn_text);
			*torn = true;
			goto cleanup;
		}
		log_error("the agent refused to hold its applier at %s: %s", lsn_text, response->message);
		verify_fail(ctx, PARITY_SIDE_TARGET, "the agent refused to hold its applier at %s: %s", lsn_text,
					response->message);
		goto cleanup;
	}
	ctx->hold_active = true;
	held = response->held;
	control_response_free(response);
	response = NULL;

	deadline = monotonic_ms() + VERIFY_HOLD_TIMEOUT_MS;
	while (!held)
	{
		if (monotonic_ms() > deadline)
		{
			log_error("the agent's applier did not reach %s within %d s", lsn_text, VERIFY_HOLD_TIMEOUT_MS / 1000);
			log_detail("it had applied up to %s", lsn_format(applied_lsn, applied_text));
			log_hint("Check \"switchyard status\" for a target error or a large backlog, then run verify again.");
			verify_fail(ctx, PARITY_SIDE_TARGET, "the applier did not reach %s within %d s", lsn_text,
						VERIFY_HOLD_TIMEOUT_MS / 1000);
			goto cleanup;
		}
		verify_sleep_ms(VERIFY_HOLD_POLL_MS);
		if (!control_request(ctx->options->state_dir, CONTROL_REQUEST__COMMAND__STATUS,
							 VERIFY_CONTROL_TIMEOUT_MS, &response, &no_agent))
		{
			(void) verify_agent_gone(ctx, no_agent);
			verify_fail(ctx, PARITY_SIDE_TARGET, "lost the agent while waiting for its applier to hold");
			goto cleanup;
		}
		if (response->ok && response->status_json != NULL &&
			verify_parse_hold(response->status_json, &hold_lsn, &held, &applied_lsn))
			held = held && hold_lsn == lsn;
		else
			held = false;
		control_response_free(response);
		response = NULL;
		if (!held && applied_lsn > lsn)
		{
			/* a transaction past lsn was on its way when the hold came: it will never hold at lsn */
			log_debug("the applier went past %s: taking another common point", lsn_text);
			*torn = true;
			goto cleanup;
		}
	}
	log_debug("the applier holds at %s", lsn_text);
	ok = true;

cleanup:
	control_response_free(response);
	return ok;
}

/* ---- the common point ------------------------------------------------------------------- */

/* Ends the snapshot transactions of every worker session (and the applier hold, if any). */
static bool
verify_cut_close(VerifyContext *ctx)
{
	bool ok = true;

	/* after a failure a session may be in an aborted transaction: ROLLBACK ends either */
	if (ctx->sources_in_snapshot)
	{
		ok &= verify_exec_all(ctx, PARITY_SIDE_SOURCE, 0, "ROLLBACK", "end the source snapshot");
		ctx->sources_in_snapshot = false;
	}
	if (ctx->targets_in_snapshot)
	{
		ok &= verify_exec_all(ctx, PARITY_SIDE_TARGET, 0, "ROLLBACK", "end the target snapshot");
		ctx->targets_in_snapshot = false;
	}
	ok &= verify_release(ctx);
	return ok;
}

/*
 * Inside the cutover fence nothing moves: the sessions compare what is there, without
 * snapshots (round trips are the pause). A write from outside the fence shows up as a
 * difference and aborts the cutover: the safe direction.
 */
static bool
verify_cut_open_fenced(VerifyContext *ctx, Lsn *lsn)
{
	PGresult *res = PQexec(ctx->pairs[0].source, "SELECT pg_catalog.pg_current_wal_lsn()");
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

	if (!ok)
	{
		log_error("could not read the source's WAL position: %s", conninfo_result_error(res));
		verify_fail(ctx, PARITY_SIDE_SOURCE, "could not read the source's WAL position");
	}
	else if (!lsn_parse(PQgetvalue(res, 0, 0), lsn))
		*lsn = 0;
	PQclear(res);
	return ok;
}

/* Blocks the signals that end verify, saving the mask to restore (see verify_cut_try). */
static void
verify_block_signals(sigset_t *saved_mask)
{
	sigset_t block;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	pthread_sigmask(SIG_BLOCK, &block, saved_mask);
}

/*
 * Runs CREATE_REPLICATION_SLOT, which waits until every source transaction older than it has
 * ended. A long one (a batch job, a report) must not stop replication: the pre-hold lasts at
 * most VERIFY_PREHOLD_MAX_MS of that wait, then the applier goes on and verify can be
 * interrupted while the slot waits. The hold at the slot's point may then find the applier
 * past it: a torn cut, which the caller takes again. Returns the command's result (NULL when
 * the connection broke).
 */
static PGresult *
verify_create_slot(VerifyContext *ctx, PGconn *repl, const char *sql, const sigset_t *saved_mask,
				   bool *signals_blocked)
{
	int64_t deadline = monotonic_ms() + VERIFY_PREHOLD_MAX_MS;

	if (!PQsendQuery(repl, sql))
		return NULL;
	while (PQisBusy(repl))
	{
		struct pollfd pfd = {.fd = PQsocket(repl), .events = POLLIN};
		int64_t left = deadline - monotonic_ms();

		bool waiting_longer = left <= 0 && (ctx->hold_active || *signals_blocked);

		if (waiting_longer && ctx->hold_active)
		{
			log_info("source transactions older than this verify are still open: the applier goes on "
					 "while verify waits for them to end");
			if (!verify_release(ctx))
				return NULL;
		}
		if (waiting_longer && *signals_blocked)
		{
			pthread_sigmask(SIG_SETMASK, saved_mask, NULL);
			*signals_blocked = false;
		}
		if (poll(&pfd, 1, ctx->hold_active || *signals_blocked ? (int) (left > 0 ? left : 1) : 1000) < 0 &&
			errno != EINTR)
			return NULL;
		if (!PQconsumeInput(repl))
			return NULL;
	}
	return conninfo_first_result(repl);
}

/*
 * The common point: source snapshot at L in every source session, the applier held at L,
 * the target's snapshot in every target session; then (without --repair) the applier goes on.
 */
static bool
verify_cut_try(VerifyContext *ctx, Lsn *lsn, bool *torn)
{
	PGconn *repl = NULL;
	PGresult *res = NULL;
	char slot[64];
	char sql[256];
	char *literal = NULL;
	char *import = NULL;
	sigset_t saved_mask;
	bool signals_blocked = false;
	bool ok = false;

	*lsn = 0;
	snprintf(slot, sizeof(slot), "switchyard_verify_%d_%d", (int) getpid(), ++ctx->cuts);
	repl = conninfo_connect(ctx->options->source, CONN_REPLICATION, "verify", "source");
	if (repl == NULL)
	{
		verify_fail(ctx, PARITY_SIDE_SOURCE, "could not open a replication connection to the source");
		goto cleanup;
	}
	/*
	 * Without --repair the hold lasts a few milliseconds: a Ctrl-C in that window waits until
	 * the applier is released, rather than leaving it held. (With --repair the hold spans the
	 * comparison; the agent must then not wait forever for a release that never comes.)
	 */
	if (!ctx->repair)
	{
		verify_block_signals(&saved_mask);
		signals_blocked = true;
	}
	if (ctx->barrier)
		verify_prehold(ctx);
	snprintf(sql, sizeof(sql), "CREATE_REPLICATION_SLOT \"%s\" TEMPORARY LOGICAL pgoutput (SNAPSHOT 'export')",
			 slot);
	res = verify_create_slot(ctx, repl, sql, &saved_mask, &signals_blocked);
	if (!ctx->repair && !signals_blocked)
	{
		verify_block_signals(&saved_mask);
		signals_blocked = true;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 3)
	{
		const char *why = res != NULL ? conninfo_result_error(res) : conninfo_error(repl);

		log_error("could not create temporary replication slot \"%s\" on the source: %s", slot, why);
		log_hint("verify needs one free replication slot (max_replication_slots) and a replication "
				 "connection (max_wal_senders) on the source.");
		verify_fail(ctx, PARITY_SIDE_SOURCE, "could not create temporary replication slot \"%s\": %s", slot, why);
		goto cleanup;
	}
	if (!lsn_parse(PQgetvalue(res, 0, 1), lsn))
	{
		log_error("could not parse the consistent point \"%s\" of slot \"%s\"", PQgetvalue(res, 0, 1), slot);
		verify_fail(ctx, PARITY_SIDE_SOURCE, "could not parse the consistent point of slot \"%s\"", slot);
		goto cleanup;
	}
	literal = PQescapeLiteral(repl, PQgetvalue(res, 0, 2), strlen(PQgetvalue(res, 0, 2)));
	if (literal == NULL)
	{
		verify_fail(ctx, PARITY_SIDE_SOURCE, "out of memory");
		goto cleanup;
	}
	import = malloc(strlen(literal) + 128);
	if (import == NULL)
	{
		verify_fail(ctx, PARITY_SIDE_SOURCE, "out of memory");
		goto cleanup;
	}
	/* importable only until the next command on the replication connection: before anything */
	sprintf(import, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT %s", literal);
	ctx->sources_in_snapshot = true;
	if (!verify_exec_all(ctx, PARITY_SIDE_SOURCE, 0, import, "import the source snapshot"))
		goto cleanup;
	PQclear(res);
	res = NULL;
	PQfinish(repl);             /* the temporary slot goes with it */
	repl = NULL;

	if (ctx->barrier && !verify_hold(ctx, *lsn, torn))
		goto cleanup;

	ctx->targets_in_snapshot = true;
	if (!verify_exec_all(ctx, PARITY_SIDE_TARGET, 0, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
						 "start the target snapshot"))
		goto cleanup;
	if (ctx->njobs > 1)
	{
		res = PQexec(ctx->pairs[0].target, "SELECT pg_catalog.pg_export_snapshot()");
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			log_error("could not export the target's snapshot: %s", conninfo_result_error(res));
			verify_fail(ctx, PARITY_SIDE_TARGET, "could not export the target's snapshot: %s",
						conninfo_result_error(res));
			goto cleanup;
		}
		PQfreemem(literal);
		literal = PQescapeLiteral(ctx->pairs[0].target, PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)));
		free(import);
		import = literal != NULL ? malloc(strlen(literal) + 64) : NULL;
		if (import == NULL)
		{
			verify_fail(ctx, PARITY_SIDE_TARGET, "out of memory");
			goto cleanup;
		}
		sprintf(import, "SET TRANSACTION SNAPSHOT %s", literal);
		if (!verify_exec_all(ctx, PARITY_SIDE_TARGET, 1, import, "import the target's snapshot"))
			goto cleanup;
	}
	else
	{
		/* a lone session takes its snapshot with its first query: take it now, while held */
		if (!verify_exec(ctx->pairs[0].target, PARITY_SIDE_TARGET, "SELECT 1", "start the target snapshot", ctx))
			goto cleanup;
	}
	/*
	 * Still held at L with nothing applied past it, now that the target's snapshot exists: the
	 * snapshot shows exactly L. Otherwise the applier moved on before the hold took effect
	 * and this cut is torn; the caller takes another.
	 */
	if (ctx->barrier)
	{
		Lsn hold_lsn;
		Lsn applied;
		Lsn flushed;
		bool held;

		if (!verify_agent_positions(ctx, &hold_lsn, &held, &applied, &flushed))
		{
			(void) verify_agent_gone(ctx, false);
			verify_fail(ctx, PARITY_SIDE_TARGET, "lost the agent while taking the target's snapshot");
			goto cleanup;
		}
		if (!held || hold_lsn != *lsn || applied > *lsn)
		{
			char a[LSN_FORMAT_SIZE];
			char b[LSN_FORMAT_SIZE];

			log_warning("the target moved past %s (applied %s) before its snapshot: taking another common point",
						lsn_format(*lsn, a), lsn_format(applied, b));
			*torn = true;
			goto cleanup;
		}
	}
	/* both snapshots show L: production writes on, the applier catches up meanwhile */
	if (!ctx->repair && !verify_release(ctx))
		goto cleanup;
	ok = true;

cleanup:
	if (signals_blocked)
	{
		if (!ok)
			(void) verify_release(ctx);
		pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
	}
	PQclear(res);
	if (repl != NULL)
		PQfinish(repl);
	PQfreemem(literal);
	free(import);
	return ok;
}

#define VERIFY_CUT_ATTEMPTS 3

static bool
verify_cut_open(VerifyContext *ctx, Lsn *lsn)
{
	for (int attempt = 1; attempt <= VERIFY_CUT_ATTEMPTS; attempt++)
	{
		bool torn = false;

		if (verify_cut_try(ctx, lsn, &torn))
			return true;
		if (!torn)
			return false;
		if (!verify_cut_close(ctx))
			return false;
	}
	log_error("could not take a common point of source and target in %d attempts", VERIFY_CUT_ATTEMPTS);
	log_hint("The agent's applier kept moving past the held position; check the agent's log.");
	verify_fail(ctx, PARITY_SIDE_TARGET, "could not take a common point in %d attempts", VERIFY_CUT_ATTEMPTS);
	return false;
}

/* ---- tables ----------------------------------------------------------------------------- */

static bool
verify_add_table(VerifyContext *ctx, ParityTable *table)
{
	ParityTable **bigger = realloc(ctx->tables, (size_t) (ctx->ntables + 1) * sizeof(ParityTable *));

	if (bigger == NULL)
	{
		parity_table_free(table);
		verify_fail(ctx, PARITY_SIDE_SOURCE, "out of memory");
		return false;
	}
	ctx->tables = bigger;
	ctx->tables[ctx->ntables++] = table;
	return true;
}

/* "schema"/"name" pairs of the tables to compare: --table names, else the publication's. */
static bool
verify_list_tables(VerifyContext *ctx, PGresult **out)
{
	PGresult *res = NULL;
	const char *params[1];
	char *names = NULL;
	bool ok = false;

	*out = NULL;
	if (ctx->table_names == NULL)
	{
		params[0] = ctx->publication;
		res = PQexecParams(ctx->source,
						   "SELECT schemaname::text, tablename::text, NULL FROM pg_catalog.pg_publication_tables "
						   "WHERE pubname = $1 ORDER BY 1, 2",
						   1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			log_error("could not list the tables of publication \"%s\" on the source: %s", ctx->publication,
					  conninfo_result_error(res));
			verify_fail(ctx, PARITY_SIDE_SOURCE, "could not list the published tables");
			goto cleanup;
		}
		if (PQntuples(res) == 0)
		{
			log_error("publication \"%s\" on the source has no tables", ctx->publication);
			log_hint("Is this the source of the migration in \"%s\"? Name tables with --table.",
					 ctx->options->state_dir);
			verify_fail(ctx, PARITY_SIDE_SOURCE, "publication \"%s\" has no tables", ctx->publication);
			goto cleanup;
		}
		*out = res;
		res = NULL;
		ok = true;
		goto cleanup;
	}
	/* --table NAME as the user would write it in SQL, resolved with the default search_path */
	names = text_array_from_list(ctx->table_names);
	if (names == NULL)
	{
		verify_fail(ctx, PARITY_SIDE_SOURCE, "out of memory");
		goto cleanup;
	}
	params[0] = names;
	res = PQexecParams(ctx->source,
					   "SELECT n.nspname::text, c.relname::text, u.name "
					   "FROM unnest($1::text[]) WITH ORDINALITY u(name, ord) "
					   "LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(u.name) "
					   "LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ORDER BY u.ord",
					   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_error("could not look up the tables named with --table on the source: %s",
				  conninfo_result_error(res));
		verify_fail(ctx, PARITY_SIDE_SOURCE, "could not look up the tables named with --table");
		ctx->exit_status = EXIT_USAGE;
		goto cleanup;
	}
	*out = res;
	res = NULL;
	ok = true;

cleanup:
	PQclear(res);
	free(names);
	return ok;
}

/*
 * Rows per leaf; SWITCHYARD_PARITY_LEAF_ROWS lets the tests split their small tables into
 * many leaves (the physical pass and its fallback to key ranges need more than one).
 */
static int64_t
verify_leaf_rows(void)
{
	const char *env = getenv("SWITCHYARD_PARITY_LEAF_ROWS");
	long long value;
	char *end = NULL;

	if (env != NULL && env[0] != '\0')
	{
		value = strtoll(env, &end, 10);
		if (*end == '\0' && value >= 1 && value <= 1000000000)
			return (int64_t) value;
		log_warning("ignoring SWITCHYARD_PARITY_LEAF_ROWS=\"%s\": expected rows from 1 to 1000000000", env);
	}
	return PARITY_DEFAULT_LEAF_ROWS;
}

static bool
verify_prepare_tables(VerifyContext *ctx)
{
	PGresult *list = NULL;
	int64_t leaf_rows = verify_leaf_rows();
	bool ok = false;

	if (!verify_list_tables(ctx, &list))
		goto cleanup;
	if (!parity_session_setup(ctx->source, "source", &ctx->error) ||
		!parity_session_setup(ctx->target, "target", &ctx->error))
		goto cleanup;
	for (int i = 0; list != NULL && i < PQntuples(list); i++)
	{
		ParityTable *table = NULL;

		if (PQgetisnull(list, i, 0))
		{
			if (!parity_table_missing(PQgetvalue(list, i, 2), &table) || !verify_add_table(ctx, table))
				goto cleanup;
			continue;
		}
		if (!parity_table_describe(ctx->source, ctx->target, PQgetvalue(list, i, 0), PQgetvalue(list, i, 1),
								   &table, &ctx->error))
			goto cleanup;
		if (!verify_add_table(ctx, table))
			goto cleanup;
		if (!parity_table_plan(ctx->source, table, leaf_rows, &ctx->error))
			goto cleanup;
	}
	ok = true;

cleanup:
	PQclear(list);
	return ok;
}

static bool
verify_connect_workers(VerifyContext *ctx)
{
	ctx->pairs = calloc((size_t) ctx->njobs, sizeof(ParityPair));
	if (ctx->pairs == NULL)
	{
		verify_fail(ctx, PARITY_SIDE_SOURCE, "out of memory");
		return false;
	}
	for (int i = 0; i < ctx->njobs; i++)
	{
		char role[32];

		snprintf(role, sizeof(role), "verify-%d", i + 1);
		ctx->pairs[i].source = conninfo_connect(ctx->options->source, CONN_NORMAL, role, "source");
		if (ctx->pairs[i].source == NULL)
		{
			verify_fail(ctx, PARITY_SIDE_SOURCE, "could not connect to the source");
			return false;
		}
		ctx->pairs[i].target = conninfo_connect(ctx->options->target, CONN_NORMAL, role, "target");
		if (ctx->pairs[i].target == NULL)
		{
			verify_fail(ctx, PARITY_SIDE_TARGET, "could not connect to the target");
			return false;
		}
		if (!parity_session_setup(ctx->pairs[i].source, "source", &ctx->error) ||
			!parity_session_setup(ctx->pairs[i].target, "target", &ctx->error))
			return false;
	}
	return true;
}

/* One batch: its own common point, the comparison, the repair, and the point given up. */
static bool
verify_batch(VerifyContext *ctx, ParityTable **tables, int ntables)
{
	struct timespec started;
	Lsn lsn = 0;
	bool ok = false;

	clock_gettime(CLOCK_MONOTONIC, &started);
	if (ctx->fenced ? !verify_cut_open_fenced(ctx, &lsn) : !verify_cut_open(ctx, &lsn))
		goto cleanup;
	log_debug("comparing %d tables at %" PRIX32 "/%" PRIX32, ntables, (uint32_t) (lsn >> 32), (uint32_t) lsn);
	if (!parity_compare(tables, ntables, ctx->pairs, ctx->njobs, lsn, &ctx->error))
		goto cleanup;
	if (ctx->repair)
	{
		bool any = false;

		for (int i = 0; i < ntables; i++)
			any |= tables[i]->result.ndifferences > 0;
		/* the target still shows L: the source's image at L is what it must hold */
		if (any && !parity_repair(tables, ntables, ctx->pairs[0].source, ctx->target, &ctx->error))
			goto cleanup;
	}
	ok = true;

cleanup:
	if (!verify_cut_close(ctx))
		ok = false;
	ctx->compare_seconds += verify_seconds_since(&started);
	return ok;
}

static bool
verify_compare_all(VerifyContext *ctx)
{
	uint64_t read0;
	uint64_t written0;
	uint64_t read1;
	uint64_t written1;
	int first = 0;
	bool ok = true;

	parity_traffic(&read0, &written0);
	while (ok && first < ctx->ntables)
	{
		double rows = 0;
		int end = first;

		while (end < ctx->ntables && (end == first || rows + ctx->tables[end]->estimated_rows <= VERIFY_BATCH_ROWS))
			rows += ctx->tables[end++]->estimated_rows;
		ok = verify_batch(ctx, ctx->tables + first, end - first);
		first = end;
	}
	parity_traffic(&read1, &written1);
	ctx->bytes_received = read1 - read0;
	ctx->bytes_sent = written1 - written0;
	return ok;
}

/* ---- the report ------------------------------------------------------------------------- */

static json_object *
verify_json_lsn(Lsn lsn)
{
	char buf[LSN_FORMAT_SIZE];

	return json_object_new_string(lsn_format(lsn, buf));
}

static void
verify_format_time(int64_t unix_us, char *buf, size_t size, bool compact)
{
	time_t seconds = (time_t) (unix_us / 1000000);
	struct tm tm;
	char base[32];

	gmtime_r(&seconds, &tm);
	strftime(base, sizeof(base), compact ? "%Y%m%dT%H%M%S" : "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%03dZ", base, (int) (unix_us % 1000000 / 1000));
}

static int64_t
verify_unix_us(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (int64_t) now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

static json_object *
verify_json_string_or_null(const char *text)
{
	return text != NULL ? json_object_new_string(text) : NULL;
}

static json_object *
verify_json_key(const ParityTable *table, char *const *key)
{
	json_object *object = json_object_new_object();

	for (int k = 0; object != NULL && k < table->nkeys; k++)
		json_object_object_add(object, table->columns[table->key[k]].name, json_object_new_string(key[k]));
	return object;
}

static json_object *
verify_json_difference(const ParityTable *table, const ParityDifference *diff)
{
	json_object *object = json_object_new_object();

	if (object == NULL)
		return NULL;
	json_object_object_add(object, "kind", json_object_new_string(parity_diff_kind_name(diff->kind)));
	if (table->keyless)
	{
		json_object_object_add(object, "row_hash", json_object_new_string(diff->key[0]));
		json_object_object_add(object, "copies", json_object_new_int64(diff->copies));
		if (diff->row != NULL)
		{
			json_object *row = json_object_new_object();

			for (int i = 0; row != NULL && i < table->ncolumns; i++)
				json_object_object_add(row, table->columns[i].name, verify_json_string_or_null(diff->row[i]));
			json_object_object_add(object, "row", row);
		}
		return object;
	}
	json_object_object_add(object, "key", verify_json_key(table, diff->key));
	if (diff->kind == PARITY_CHANGED && diff->detailed)
	{
		json_object *columns = json_object_new_array();

		for (int i = 0; columns != NULL && i < diff->ncolumns; i++)
		{
			const ParityColumnDiff *column = &diff->columns[i];
			json_object *entry = json_object_new_object();

			if (entry == NULL)
				continue;
			json_object_object_add(entry, "column", json_object_new_string(table->columns[column->column].name));
			json_object_object_add(entry, "source", verify_json_string_or_null(column->source_value));
			json_object_object_add(entry, "target", verify_json_string_or_null(column->target_value));
			json_object_array_add(columns, entry);
		}
		json_object_object_add(object, "columns", columns);
	}
	return object;
}

static bool
verify_table_differs(const ParityTable *table)
{
	const ParityTableResult *r = &table->result;

	return r->missing + r->extra + r->changed > 0 || table->nschema_issues > 0 || !table->comparable;
}

/* Everything differing was written back: nothing left to report as a failure. */
static bool
verify_table_repaired(const ParityTable *table)
{
	const ParityTableResult *r = &table->result;

	return table->nschema_issues == 0 && table->comparable && !r->truncated && r->repair_skipped == NULL &&
		r->repaired >= (r->missing + r->extra + r->changed) && r->repaired > 0;
}

static json_object *
verify_json_table(const VerifyContext *ctx, const ParityTable *table, bool with_differences)
{
	const ParityTableResult *r = &table->result;
	json_object *object = json_object_new_object();
	json_object *issues = json_object_new_array();
	json_object *key = json_object_new_array();

	if (object == NULL || issues == NULL || key == NULL)
	{
		json_object_put(object);
		json_object_put(issues);
		json_object_put(key);
		return NULL;
	}
	for (int i = 0; i < table->nschema_issues; i++)
		json_object_array_add(issues, json_object_new_string(table->schema_issues[i]));
	for (int k = 0; k < table->nkeys && table->comparable; k++)
		if (table->key[k] >= 0)
			json_object_array_add(key, json_object_new_string(table->columns[table->key[k]].name));
	json_object_object_add(object, "table", json_object_new_string(table->display));
	json_object_object_add(object, "equal", json_object_new_boolean(!verify_table_differs(table)));
	json_object_object_add(object, "compared", json_object_new_boolean(table->comparable));
	json_object_object_add(object, "compared_as", json_object_new_string(table->keyless ? "multiset" : "key"));
	json_object_object_add(object, "key", key);
	json_object_object_add(object, "lsn", verify_json_lsn(r->lsn));
	json_object_object_add(object, "rows_by", json_object_new_string(r->by_keys ? "touched keys"
																	   : r->unwritten ? "none: not written since the baseline"
																	   : "all rows"));
	if (r->by_keys || r->unwritten)
	{
		json_object_object_add(object, "touched_keys", json_object_new_int64(r->touched_keys));
		json_object_object_add(object, "baseline_lsn", verify_json_lsn(r->baseline_lsn));
	}
	json_object_object_add(object, "rows_source", json_object_new_int64(r->rows_source));
	json_object_object_add(object, "rows_target", json_object_new_int64(r->rows_target));
	json_object_object_add(object, "leaves", json_object_new_int(table->comparable ? table->nleaves : 0));
	json_object_object_add(object, "leaves_differing", json_object_new_int(r->leaves_differing));
	json_object_object_add(object, "missing", json_object_new_int64(r->missing));
	json_object_object_add(object, "extra", json_object_new_int64(r->extra));
	json_object_object_add(object, "changed", json_object_new_int64(r->changed));
	json_object_object_add(object, "schema_issues", issues);
	json_object_object_add(object, "seconds", json_object_new_double(r->seconds));
	json_object_object_add(object, "truncated", json_object_new_boolean(r->truncated));
	if (ctx->repair)
	{
		json_object_object_add(object, "repaired", json_object_new_int64(r->repaired));
		json_object_object_add(object, "repair_skipped", verify_json_string_or_null(r->repair_skipped));
	}
	if (with_differences)
	{
		json_object *list = json_object_new_array();

		for (int i = 0; list != NULL && i < r->ndifferences; i++)
			json_object_array_add(list, verify_json_difference(table, &r->differences[i]));
		json_object_object_add(object, "differences", list);
	}
	return object;
}

typedef struct VerifyTotals
{
	int64_t rows;
	int leaves;
	int64_t missing;
	int64_t extra;
	int64_t changed;
	int schema_issues;
	int tables_differing;
	int64_t repaired;
	bool all_repaired;
} VerifyTotals;

static void
verify_totals(const VerifyContext *ctx, VerifyTotals *totals)
{
	memset(totals, 0, sizeof(*totals));
	totals->all_repaired = ctx->repair;
	for (int i = 0; i < ctx->ntables; i++)
	{
		const ParityTable *table = ctx->tables[i];
		const ParityTableResult *r = &table->result;

		totals->rows += r->rows_source;
		totals->leaves += table->comparable ? table->nleaves : 0;
		totals->missing += r->missing;
		totals->extra += r->extra;
		totals->changed += r->changed;
		totals->schema_issues += table->nschema_issues;
		totals->repaired += r->repaired;
		if (verify_table_differs(table))
		{
			totals->tables_differing++;
			if (!verify_table_repaired(table))
				totals->all_repaired = false;
		}
	}
}

static json_object *
verify_json_document(const VerifyContext *ctx, const VerifyTotals *totals)
{
	json_object *root = json_object_new_object();
	json_object *tables = json_object_new_array();
	json_object *sums = json_object_new_object();
	char when[40];
	const char *result;

	if (root == NULL || tables == NULL || sums == NULL)
	{
		json_object_put(root);
		json_object_put(tables);
		json_object_put(sums);
		return NULL;
	}
	if (totals->tables_differing == 0)
		result = "equal";
	else if (totals->all_repaired)
		result = "repaired";
	else
		result = "different";
	verify_format_time(ctx->started_unix_us, when, sizeof(when), false);
	json_object_object_add(root, "result", json_object_new_string(result));
	json_object_object_add(root, "verified_at", json_object_new_string(when));
	json_object_object_add(root, "common_point", json_object_new_boolean(ctx->barrier || ctx->fenced));
	if (ctx->fenced)
		json_object_object_add(root, "fenced", json_object_new_boolean(true));
	if (!ctx->barrier && !ctx->fenced)
		json_object_object_add(root, "warning",
							   json_object_new_string("no agent was running: source and target were compared "
													  "without a common point, differences may be changes in flight"));
	json_object_object_add(root, "publication", verify_json_string_or_null(ctx->publication));
	json_object_object_add(root, "jobs", json_object_new_int(ctx->njobs));
	json_object_object_add(root, "repair", json_object_new_boolean(ctx->repair));
	json_object_object_add(root, "seconds", json_object_new_double(ctx->compare_seconds));
	json_object_object_add(root, "rows_per_second_per_side",
						   json_object_new_double(ctx->compare_seconds > 0 ? (double) totals->rows / ctx->compare_seconds : 0));
	json_object_object_add(root, "bytes_received", json_object_new_int64((int64_t) ctx->bytes_received));
	json_object_object_add(root, "bytes_sent", json_object_new_int64((int64_t) ctx->bytes_sent));
	json_object_object_add(root, "report", ctx->report_path[0] ? json_object_new_string(ctx->report_path) : NULL);
	json_object_object_add(sums, "tables", json_object_new_int(ctx->ntables));
	json_object_object_add(sums, "tables_differing", json_object_new_int(totals->tables_differing));
	json_object_object_add(sums, "rows", json_object_new_int64(totals->rows));
	json_object_object_add(sums, "leaves", json_object_new_int(totals->leaves));
	json_object_object_add(sums, "missing", json_object_new_int64(totals->missing));
	json_object_object_add(sums, "extra", json_object_new_int64(totals->extra));
	json_object_object_add(sums, "changed", json_object_new_int64(totals->changed));
	json_object_object_add(sums, "schema_issues", json_object_new_int(totals->schema_issues));
	if (ctx->repair)
		json_object_object_add(sums, "repaired", json_object_new_int64(totals->repaired));
	json_object_object_add(root, "totals", sums);
	for (int i = 0; i < ctx->ntables; i++)
		json_object_array_add(tables, verify_json_table(ctx, ctx->tables[i], true));
	json_object_object_add(root, "tables", tables);
	return root;
}

static bool
verify_parity_dir(const VerifyContext *ctx, char *dir, size_t size)
{
	if (!state_dir_ensure(ctx->options->state_dir, NULL))
		return false;
	if ((size_t) snprintf(dir, size, "%s/parity", ctx->options->state_dir) >= size)
	{
		log_error("state directory path \"%s\" is too long", ctx->options->state_dir);
		return false;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
	{
		log_error("could not create directory \"%s\": %m", dir);
		return false;
	}
	return true;
}

/* latest.json: the last result of every table ever verified, for status and the dashboard. */
static bool
verify_update_latest(const VerifyContext *ctx, const char *dir)
{
	char path[PATH_MAX];
	char when[40];
	json_object *root = NULL;
	json_object *tables = NULL;
	const char *text;
	bool ok = false;

	if ((size_t) snprintf(path, sizeof(path), "%s/latest.json", dir) >= sizeof(path))
	{
		log_error("parity directory path \"%s\" is too long", dir);
		return false;
	}
	if (access(path, F_OK) == 0)
		root = json_object_from_file(path);
	if (root == NULL || !json_object_is_type(root, json_type_object))
	{
		json_object_put(root);
		root = json_object_new_object();
	}
	if (root == NULL)
		goto cleanup;
	if (!json_object_object_get_ex(root, "tables", &tables) || !json_object_is_type(tables, json_type_object))
	{
		tables = json_object_new_object();
		if (tables == NULL)
			goto cleanup;
		json_object_object_add(root, "tables", tables);
	}
	verify_format_time(ctx->started_unix_us, when, sizeof(when), false);
	json_object_object_add(root, "updated_at", json_object_new_string(when));
	for (int i = 0; i < ctx->ntables; i++)
	{
		const ParityTable *table = ctx->tables[i];
		const ParityTableResult *r = &table->result;
		json_object *entry = json_object_new_object();

		if (entry == NULL)
			goto cleanup;
		json_object_object_add(entry, "schema", json_object_new_string(table->schema));
		json_object_object_add(entry, "name", json_object_new_string(table->name));
		json_object_object_add(entry, "verified_at", json_object_new_string(when));
		json_object_object_add(entry, "lsn", verify_json_lsn(r->lsn));
		json_object_object_add(entry, "common_point", json_object_new_boolean(ctx->barrier || ctx->fenced));
		/* after a full repair the table is equal now: what latest.json is read for */
		json_object_object_add(entry, "equal", json_object_new_boolean(!verify_table_differs(table) ||
																	   verify_table_repaired(table)));
		json_object_object_add(entry, "differences",
							   json_object_new_int64(verify_table_repaired(table) ? 0
													 : r->missing + r->extra + r->changed));
		json_object_object_add(entry, "rows_compared", json_object_new_int64(r->rows_source));
		json_object_object_add(entry, "missing", json_object_new_int64(r->missing));
		json_object_object_add(entry, "extra", json_object_new_int64(r->extra));
		json_object_object_add(entry, "changed", json_object_new_int64(r->changed));
		json_object_object_add(entry, "schema_issues", json_object_new_int(table->nschema_issues));
		if (ctx->repair)
			json_object_object_add(entry, "repaired", json_object_new_int64(r->repaired));
		json_object_object_add(entry, "report", json_object_new_string(ctx->report_path));
		json_object_object_add(tables, table->display, entry);
	}
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
										  JSON_C_TO_STRING_NOSLASHESCAPE);
	ok = text != NULL && fileio_write_text(path, text, 0600);

cleanup:
	if (!ok)
		log_error("could not update \"%s\"", path);
	json_object_put(root);
	return ok;
}

/* A value as it fits on one line: NULL, quoted, shortened. */
static void
verify_show_value(const char *value, char *buf, size_t size)
{
	size_t used = 0;

	if (value == NULL)
	{
		snprintf(buf, size, "NULL");
		return;
	}
	buf[used++] = '\'';
	for (const char *p = value; *p && used + 6 < size; p++)
	{
		if (used >= VERIFY_VALUE_WIDTH)
		{
			memcpy(buf + used, "...", 3);
			used += 3;
			break;
		}
		buf[used++] = (*p == '\n' || *p == '\t' || *p == '\r') ? ' ' : *p;
	}
	buf[used++] = '\'';
	buf[used] = '\0';
}

static void
verify_print_key(const ParityTable *table, char *const *key)
{
	printf("(");
	for (int k = 0; k < table->nkeys; k++)
		printf("%s%s", k > 0 ? ", " : "", table->columns[table->key[k]].quoted);
	printf(")=(");
	for (int k = 0; k < table->nkeys; k++)
		printf("%s%s", k > 0 ? ", " : "", key[k]);
	printf(")");
}

static void
verify_print_differences(const ParityTable *table)
{
	const ParityTableResult *r = &table->result;
	char a[VERIFY_VALUE_WIDTH + 8];
	char b[VERIFY_VALUE_WIDTH + 8];
	int shown = r->ndifferences < VERIFY_PRINT_DIFFERENCES ? r->ndifferences : VERIFY_PRINT_DIFFERENCES;

	for (int i = 0; i < shown; i++)
	{
		const ParityDifference *diff = &r->differences[i];

		printf("  %s: %s ", table->display, parity_diff_kind_name(diff->kind));
		if (table->keyless)
		{
			printf("%" PRId64 " cop%s of a row (hash %s)", diff->copies, diff->copies == 1 ? "y" : "ies",
				   diff->key[0]);
			if (diff->row != NULL)
			{
				printf(": ");
				for (int c = 0; c < table->ncolumns; c++)
				{
					verify_show_value(diff->row[c], a, sizeof(a));
					printf("%s%s=%s", c > 0 ? ", " : "", table->columns[c].quoted, a);
				}
			}
			printf("\n");
			continue;
		}
		verify_print_key(table, diff->key);
		for (int c = 0; c < diff->ncolumns; c++)
		{
			verify_show_value(diff->columns[c].source_value, a, sizeof(a));
			verify_show_value(diff->columns[c].target_value, b, sizeof(b));
			printf("%s %s: source %s, target %s", c > 0 ? ";" : ":",
				   table->columns[diff->columns[c].column].quoted, a, b);
		}
		printf("\n");
	}
	if (r->missing + r->extra + r->changed > shown)
		printf("  %s: ... and %" PRId64 " more in the report\n", table->display,
			   r->missing + r->extra + r->changed - shown);
}

static void
verify_print_text(const VerifyContext *ctx, const VerifyTotals *totals)
{
	Lsn first = 0;
	Lsn last = 0;
	char a[LSN_FORMAT_SIZE];
	char b[LSN_FORMAT_SIZE];

	for (int i = 0; i < ctx->ntables; i++)
	{
		Lsn lsn = ctx->tables[i]->result.lsn;

		if (lsn != 0 && (first == 0 || lsn < first))
			first = lsn;
		if (lsn > last)
			last = lsn;
	}
	if (!ctx->barrier)
		printf("compared WITHOUT a common point (no agent is running): differences may be changes in flight\n");
	else if (first == last)
		printf("compared at %s, the agent's applier held at the same point (%d jobs)\n", lsn_format(first, a),
			   ctx->njobs);
	else
		printf("compared at %s to %s (a common point per batch of tables, the agent's applier held at each; "
			   "%d jobs)\n", lsn_format(first, a), lsn_format(last, b), ctx->njobs);
	printf("%-40s %12s %7s %8s %8s %8s %7s %9s\n", "TABLE", "ROWS", "LEAVES", "MISSING", "EXTRA", "CHANGED",
		   "SCHEMA", "TIME");
	for (int i = 0; i < ctx->ntables; i++)
	{
		const ParityTable *t = ctx->tables[i];
		const ParityTableResult *r = &t->result;

		if (strlen(t->display) > 40)
			printf("%s\n%-40s", t->display, "");
		else
			printf("%-40s", t->display);
		printf(" %12" PRId64 " %7d %8" PRId64 " %8" PRId64 " %8" PRId64 " %7d %7.2f s\n", r->rows_source,
			   t->comparable ? t->nleaves : 0, r->missing, r->extra, r->changed, t->nschema_issues, r->seconds);
	}
	printf("%-40s %12" PRId64 " %7d %8" PRId64 " %8" PRId64 " %8" PRId64 " %7d %7.2f s\n", "total", totals->rows,
		   totals->leaves, totals->missing, totals->extra, totals->changed, totals->schema_issues,
		   ctx->compare_seconds);
	printf("%.2f M rows/s per side, %.1f MB received, %.1f MB sent\n",
		   ctx->compare_seconds > 0 ? (double) totals->rows / ctx->compare_seconds / 1e6 : 0.0,
		   (double) ctx->bytes_received / 1e6, (double) ctx->bytes_sent / 1e6);

	for (int i = 0; i < ctx->ntables; i++)
	{
		const ParityTable *t = ctx->tables[i];

		if (t->keyless && t->comparable)
			printf("  %s: compared as multiset (no primary key)\n", t->display);
		for (int s = 0; s < t->nschema_issues; s++)
			printf("  %s: schema: %s\n", t->display, t->schema_issues[s]);
		verify_print_differences(t);
		if (t->result.truncated)
			printf("  %s: more than %d differences: the report lists the first %d\n", t->display,
				   PARITY_MAX_DIFFERENCES, PARITY_MAX_DIFFERENCES);
		if (ctx->repair && t->result.repaired > 0)
			printf("  %s: repaired %" PRId64 " rows\n", t->display, t->result.repaired);
		if (ctx->repair && t->result.repair_skipped != NULL)
			printf("  %s: not repaired: %s\n", t->display, t->result.repair_skipped);
	}
	if (totals->tables_differing == 0)
		printf("result: equal, %" PRId64 " rows in %d tables\n", totals->rows, ctx->ntables);
	else if (totals->all_repaired)
		printf("result: %d table%s differed and %s repaired (%" PRId64 " rows written)\n",
			   totals->tables_differing, totals->tables_differing == 1 ? "" : "s",
			   totals->tables_differing == 1 ? "was" : "were", totals->repaired);
	else
		printf("result: %d of %d tables differ%s (%" PRId64 " missing, %" PRId64 " extra, %" PRId64
			   " changed, %d schema issues)\n", totals->tables_differing, ctx->ntables,
			   totals->tables_differing == 1 ? "s" : "", totals->missing,
			   totals->extra, totals->changed, totals->schema_issues);
	if (ctx->report_path[0])
		printf("report: %s\n", ctx->report_path);
}

static bool
verify_report(VerifyContext *ctx)
{
	VerifyTotals totals;
	json_object *document = NULL;
	char dir[PATH_MAX];
	char stamp[40];
	const char *text;
	bool files_ok = false;
	bool ok = false;

	verify_totals(ctx, &totals);
	if (verify_parity_dir(ctx, dir, sizeof(dir)))
	{
		verify_format_time(ctx->started_unix_us, stamp, sizeof(stamp), true);
		if ((size_t) snprintf(ctx->report_path, sizeof(ctx->report_path), "%s/%s.json", dir, stamp) >=
			sizeof(ctx->report_path))
			ctx->report_path[0] = '\0';
	}
	document = verify_json_document(ctx, &totals);
	if (document == NULL)
	{
		log_error("out of memory");
		goto cleanup;
	}
	text = json_object_to_json_string_ext(document, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
										  JSON_C_TO_STRING_NOSLASHESCAPE);
	if (text == NULL)
	{
		log_error("out of memory");
		goto cleanup;
	}
	if (ctx->report_path[0] && !fileio_write_text(ctx->report_path, text, 0600))
		ctx->report_path[0] = '\0';
	files_ok = ctx->report_path[0] != '\0' && verify_update_latest(ctx, dir);
	if (ctx->quiet)
		;
	else if (ctx->json)
		printf("%s\n", text);
	else
		verify_print_text(ctx, &totals);
	fflush(stdout);
	/* the result is out either way; a report that could not be written is still a failure */
	ok = files_ok;

cleanup:
	json_object_put(document);
	return ok;
}

/* ---- the command ------------------------------------------------------------------------ */

/* Is an agent running on the state directory? Sets ctx->barrier. Returns false on an error. */
static bool
verify_probe_agent(VerifyContext *ctx)
{
	ControlResponse *response = NULL;
	bool no_agent = false;
	bool ok = false;

	if (!control_request(ctx->options->state_dir, CONTROL_REQUEST__COMMAND__STATUS, VERIFY_CONTROL_TIMEOUT_MS,
						 &response, &no_agent))
	{
		if (no_agent)
		{
			ctx->barrier = false;
			ok = true;
		}
		goto cleanup;
	}
	if (!response->ok)
	{
		log_error("the agent on state directory \"%s\" refused a status request: %s", ctx->options->state_dir,
				  response->message);
		goto cleanup;
	}
	ctx->barrier = true;
	/* before the copy has finished there is no stream position to hold the applier at */
	if (response->status_json != NULL)
	{
		json_object *root = json_tokener_parse(response->status_json);
		json_object *phase = NULL;

		if (root != NULL && json_object_object_get_ex(root, "phase", &phase) &&
			json_object_is_type(phase, json_type_string) &&
			(strcmp(json_object_get_string(phase), "copy") == 0 ||
			 strcmp(json_object_get_string(phase), "starting") == 0))
		{
			log_error("the agent on state directory \"%s\" is in phase \"%s\": there is nothing to verify yet",
					  ctx->options->state_dir, json_object_get_string(phase));
			log_hint("Run verify once \"switchyard status\" shows phase \"streaming\".");
			json_object_put(root);
			ctx->exit_status = EXIT_NO_AGENT;
			goto cleanup;
		}
		json_object_put(root);
	}
	ok = true;

cleanup:
	control_response_free(response);
	return ok;
}

static bool
verify_load_publication(VerifyContext *ctx)
{
	AgentState *state = NULL;
	bool ok = false;

	if (ctx->table_names != NULL)
		return true;
	if (!state_load(ctx->options->state_dir, &state))
		goto cleanup;
	if (state == NULL || state->publication_name == NULL || state->publication_name[0] == '\0')
	{
		log_error("no migration state in \"%s\": cannot tell which tables to verify", ctx->options->state_dir);
		log_hint("Name the state directory of the migration with --state-dir, or the tables with --table.");
		goto cleanup;
	}
	ctx->publication = strdup(state->publication_name);
	ok = ctx->publication != NULL;
	if (!ok)
		log_error("out of memory");

cleanup:
	state_free(state);
	return ok;
}

static int
verify_exit_for(const ParityError *error)
{
	return error->side == PARITY_SIDE_TARGET ? EXIT_TARGET : EXIT_SOURCE;
}

static void
verify_context_finish(VerifyContext *ctx)
{
	if (ctx->hold_active)
		(void) verify_release(ctx);
	for (int i = 0; ctx->pairs != NULL && i < ctx->njobs; i++)
	{
		if (ctx->pairs[i].source != NULL)
			PQfinish(ctx->pairs[i].source);
		if (ctx->pairs[i].target != NULL)
			PQfinish(ctx->pairs[i].target);
	}
	free(ctx->pairs);
	if (ctx->source != NULL)
		PQfinish(ctx->source);
	if (ctx->target != NULL)
		PQfinish(ctx->target);
	for (int i = 0; i < ctx->ntables; i++)
		parity_table_free(ctx->tables[i]);
	free(ctx->tables);
	free(ctx->publication);
}

int
verify_run(const CliOptions *options)
{
	VerifyContext ctx;
	bool compared = false;
	int rc = EXIT_INTERNAL;

	memset(&ctx, 0, sizeof(ctx));
	ctx.options = options;
	ctx.table_names = options->tables;
	ctx.repair = options->repair;
	ctx.json = options->json;
	ctx.njobs = options->jobs >= 1 ? options->jobs : 2;
	if (ctx.njobs > VERIFY_MAX_JOBS)
		ctx.njobs = VERIFY_MAX_JOBS;
	ctx.started_unix_us = verify_unix_us();
	log_set_thread_name("verify");

	if (options->source == NULL || options->target == NULL)
	{
		fprintf(stderr, "switchyard: command \"verify\" needs --source and --target "
				"(or SWITCHYARD_SOURCE and SWITCHYARD_TARGET)\n"
				"Try \"switchyard --help\" for more information.\n");
		return EXIT_USAGE;
	}
	if (!verify_probe_agent(&ctx))
	{
		rc = ctx.exit_status != 0 ? ctx.exit_status : EXIT_INTERNAL;
		goto cleanup;
	}
	if (!ctx.barrier)
	{
		if (options->repair)
		{
			log_error("--repair needs the running agent: no agent is running on state directory \"%s\"",
					  options->state_dir);
			log_hint("The repair writes the source's rows while the agent's applier is held at the same "
					 "point; start the agent (switchyard run) first.");
			rc = EXIT_NO_AGENT;
			goto cleanup;
		}
	}
	/* which tables comes first: without a migration there is nothing to warn about */
	if (!verify_load_publication(&ctx))
	{
		rc = EXIT_NO_AGENT;
		goto cleanup;
	}
	if (!ctx.barrier)
	{
		log_warning("no agent is running on state directory \"%s\": comparing without a common point",
					options->state_dir);
		log_detail("Rows changed on the source while verify runs may show as differences.");
	}
	ctx.source = conninfo_connect(options->source, CONN_NORMAL, "verify", "source");
	if (ctx.source == NULL)
	{
		rc = EXIT_SOURCE;
		goto cleanup;
	}
	ctx.target = conninfo_connect(options->target, CONN_NORMAL, "verify", "target");
	if (ctx.target == NULL)
	{
		rc = EXIT_TARGET;
		goto cleanup;
	}
	if (!verify_prepare_tables(&ctx) || !verify_connect_workers(&ctx))
	{
		rc = verify_exit_for(&ctx.error);
		goto cleanup;
	}
	compared = verify_compare_all(&ctx);
	if (!compared)
	{
		log_error("verify failed: %s", ctx.error.message[0] ? ctx.error.message : "see the messages above");
		rc = ctx.exit_status != 0 ? ctx.exit_status : verify_exit_for(&ctx.error);
		goto cleanup;
	}
	if (!verify_report(&ctx))
	{
		rc = EXIT_INTERNAL;
		goto cleanup;
	}
	{
		VerifyTotals totals;

		verify_totals(&ctx, &totals);
		rc = totals.tables_differing == 0 || totals.all_repaired ? EXIT_OK : EXIT_PARITY;
	}

cleanup:
	verify_context_finish(&ctx);
	return rc;
}

/* ---- the cutover's final parity by touched keys ----------------------------------------- */

void
verify_baselines_free(VerifyBaseline *baselines, int n)
{
	for (int i = 0; i < n; i++)
	{
		free(baselines[i].display);
		free(baselines[i].schema);
		free(baselines[i].name);
	}
	free(baselines);
}

static bool
verify_json_bool(json_object *entry, const char *key)
{
	json_object *value;

	return json_object_object_get_ex(entry, key, &value) && json_object_get_boolean(value);
}

static const char *
verify_json_text(json_object *entry, const char *key)
{
	json_object *value;

	return json_object_object_get_ex(entry, key, &value) && json_object_is_type(value, json_type_string)
		? json_object_get_string(value) : NULL;
}

bool
verify_read_baselines(const char *state_dir, VerifyBaseline **out, int *n)
{
	char path[PATH_MAX];
	json_object *root = NULL;
	json_object *tables;
	VerifyBaseline *list = NULL;
	int count = 0;
	bool ok = false;

	*out = NULL;
	*n = 0;
	if ((size_t) snprintf(path, sizeof(path), "%s/parity/latest.json", state_dir) >= sizeof(path))
		return false;
	if (access(path, F_OK) != 0)
		return true;
	root = json_object_from_file(path);
	if (root == NULL || !json_object_object_get_ex(root, "tables", &tables) ||
		!json_object_is_type(tables, json_type_object))
		goto cleanup;
	list = calloc(json_object_object_length(tables) + 1, sizeof(*list));
	if (list == NULL)
		goto cleanup;
	json_object_object_foreach(tables, display, entry)
	{
		const char *schema = verify_json_text(entry, "schema");
		const char *name = verify_json_text(entry, "name");
		const char *lsn_text = verify_json_text(entry, "lsn");
		json_object *issues;
		Lsn lsn;

		/* equal at a common point, with nothing about its schema to say: all else is no baseline */
		if (schema == NULL || name == NULL || lsn_text == NULL || !lsn_parse(lsn_text, &lsn) || lsn == 0 ||
			!verify_json_bool(entry, "common_point") || !verify_json_bool(entry, "equal") ||
			!json_object_object_get_ex(entry, "schema_issues", &issues) || json_object_get_int(issues) != 0)
			continue;
		list[count].display = strdup(display);
		list[count].schema = strdup(schema);
		list[count].name = strdup(name);
		list[count].lsn = lsn;
		count++;
		if (list[count - 1].display == NULL || list[count - 1].schema == NULL || list[count - 1].name == NULL)
			goto cleanup;
	}
	ok = true;

cleanup:
	json_object_put(root);
	if (!ok)
	{
		verify_baselines_free(list, count);
		return false;
	}
	*out = list;
	*n = count;
	return true;
}

static const VerifyBaseline *
verify_find_baseline(const VerifyBaseline *baselines, int n, const char *display)
{
	for (int i = 0; i < n; i++)
		if (strcmp(baselines[i].display, display) == 0)
			return &baselines[i];
	return NULL;
}

/*
 * A keyless table has no rows to name, only a last write: equal at its baseline and not
 * written by the applier since (nothing else writes to the target: the guard), it is equal
 * still, with nothing to compare (NULL, result.unwritten set); else the reason it is
 * compared in full.
 */
static const char *
verify_unwritten_plan(ParityTable *table, TouchedKeys *touched, const VerifyBaseline *baseline)
{
	Lsn last = 0;
	TouchedVerdict verdict = touched_written_since(touched, table->schema, table->name, baseline->lsn, &last);

	if (verdict != TOUCHED_KNOWN)
		return verdict == TOUCHED_NO_START ? "it has no key, and the last clean verify is older than this run of "
			"the agent" : touched_verdict_text(verdict);
	if (last > baseline->lsn)
		return "it has no key, and the stream wrote it since its last clean verify";
	table->result.unwritten = true;
	table->result.baseline_lsn = baseline->lsn;
	return NULL;
}

/*
 * How one table is compared inside the fence. NULL: by the touched keys (of a grouped
 * keyless table, the touched values of its group column), *keys the text[] literals in key
 * order (NULL when no key was touched, or a keyless table was not written since its
 * baseline: nothing to compare); else the reason it is compared in full.
 */
static const char *
verify_touched_plan(ParityTable *table, TouchedKeys *touched, const VerifyBaseline *baselines, int nbaselines,
					char ***keys)
{
	const VerifyBaseline *baseline;
	TouchedDelta delta;
	TouchedVerdict verdict;
	const char *why = NULL;
	const char *mismatch = table->keyless
		? "it has no key, and the stream's group column is not the one verify compares by"
		: "the stream's key is not the key verify compares by";
	int ncols;

	*keys = NULL;
	if (!table->comparable)
		return "it cannot be compared by key";
	baseline = verify_find_baseline(baselines, nbaselines, table->display);
	if (baseline == NULL)
		return table->keyless ? "it has no key, and no clean verify at a common point is on record for it"
			: "no clean verify at a common point is on record for it";
	if (table->keyless && !table->grouped)
		return verify_unwritten_plan(table, touched, baseline);
	verdict = touched_delta(touched, table->schema, table->name, baseline->lsn, &delta);
	/* a keyless table whose groups are not known: compared in full if written since */
	if (table->keyless && (verdict != TOUCHED_KNOWN || delta.nkeys == 0))
	{
		touched_delta_free(&delta);
		return verify_unwritten_plan(table, touched, baseline);
	}
	if (verdict != TOUCHED_KNOWN)
		return touched_verdict_text(verdict);
	ncols = parity_touched_ncols(table);
	table->result.by_keys = true;
	table->result.baseline_lsn = baseline->lsn;
	table->result.touched_keys = (int64_t) delta.nkeys;
	if (delta.nkeys == 0)
		goto done;
	if (delta.ncols != ncols)
		why = mismatch;
	else if ((*keys = calloc((size_t) ncols, sizeof(char *))) == NULL)
		why = "out of memory";
	for (int k = 0; why == NULL && k < ncols; k++)
	{
		const char *column = parity_touched_column(table, k)->name;

		for (int c = 0; c < delta.ncols && (*keys)[k] == NULL; c++)
			if (strcmp(delta.columns[c], column) == 0)
			{
				(*keys)[k] = delta.arrays[c];
				delta.arrays[c] = NULL;
			}
		if ((*keys)[k] == NULL)
			why = mismatch;
	}

done:
	touched_delta_free(&delta);
	if (why != NULL)
	{
		for (int k = 0; *keys != NULL && k < ncols; k++)
			free((*keys)[k]);
		free(*keys);
		*keys = NULL;
		parity_table_reset_result(table);
	}
	return why;
}

struct VerifyPrepared
{
	VerifyContext ctx;
	bool report_pending;       /* a clean comparison whose report is not written yet */
};

void
verify_describe_touched(VerifyPrepared *prepared, TouchedKeys *touched, char *buf, size_t len)
{
	VerifyContext *ctx = &prepared->ctx;
	VerifyBaseline *baselines = NULL;
	int nbaselines = 0;
	int nkeyed = 0;
	int nunwritten = 0;
	int64_t keys_total = 0;
	size_t used;
	char full[768] = "";
	size_t full_used = 0;
	char unwritten[512] = "";
	size_t unwritten_used = 0;

	if (!verify_read_baselines(ctx->options->state_dir, &baselines, &nbaselines))
		nbaselines = 0;
	for (int i = 0; i < ctx->ntables; i++)
	{
		ParityTable *table = ctx->tables[i];
		char **keys = NULL;
		const char *why = verify_touched_plan(table, touched, baselines, nbaselines, &keys);

		if (why == NULL && table->result.unwritten)
		{
			char lsnbuf[LSN_FORMAT_SIZE];

			nunwritten++;
			if (unwritten_used < sizeof(unwritten))
				unwritten_used += (size_t) snprintf(unwritten + unwritten_used, sizeof(unwritten) - unwritten_used,
													"%s%s (not written since the baseline at LSN %s)",
													unwritten_used > 0 ? "; " : "", table->display,
													lsn_format(table->result.baseline_lsn, lsnbuf));
		}
		else if (why == NULL)
		{
			nkeyed++;
			keys_total += table->result.touched_keys;
		}
		else if (full_used < sizeof(full))
			full_used += (size_t) snprintf(full + full_used, sizeof(full) - full_used, "%s%s (%s)",
										   full_used > 0 ? "; " : "", table->display, why);
		for (int k = 0; keys != NULL && k < parity_touched_ncols(table); k++)
			free(keys[k]);
		free(keys);
		parity_table_reset_result(table);
	}
	verify_baselines_free(baselines, nbaselines);
	used = (size_t) snprintf(buf, len, "the final parity compares %d of %d tables by the %" PRId64
							 " keys the stream touched since their last clean verify", nkeyed, ctx->ntables,
							 keys_total);
	if (nunwritten > 0 && used < len)
		used += (size_t) snprintf(buf + used, len - used, ", skips %d that %s nothing to compare: %s", nunwritten,
								  nunwritten == 1 ? "has" : "have", unwritten);
	if (nkeyed + nunwritten < ctx->ntables && used < len)
		snprintf(buf + used, len - used, ", and in full: %s", full);
}

/* The tables compared in full on some of the sessions, while the others compare by keys. */
typedef struct VerifyFullRun
{
	ParityTable **tables;
	int ntables;
	ParityPair *pairs;
	int npairs;
	Lsn lsn;
	ParityError error;
	bool ok;
} VerifyFullRun;

static void *
verify_full_main(void *arg)
{
	VerifyFullRun *run = arg;

	log_set_thread_name("parity-full");
	run->ok = parity_compare(run->tables, run->ntables, run->pairs, run->npairs, run->lsn, &run->error);
	return NULL;
}

/*
 * The tables by their touched keys and the tables in full, at once on disjoint sessions:
 * a keyless table's scan no longer waits for the keyed round trips, nor they for it. The
 * full compare gets a pair per leaf, at most half of them; the keys the rest.
 */
static bool
verify_compare_both(VerifyContext *ctx, ParityTable **by_keys, char ***keys, int nkeyed, ParityTable **full,
					int nfull, Lsn lsn)
{
	VerifyFullRun run = {.tables = full, .ntables = nfull, .lsn = lsn, .ok = false};
	pthread_t thread;
	int leaves = 0;
	int key_pairs;
	bool keyed_ok;

	for (int i = 0; i < nfull; i++)
		leaves += full[i]->comparable ? full[i]->nleaves : 0;
	run.npairs = leaves < ctx->njobs / 2 ? (leaves > 0 ? leaves : 1) : ctx->njobs / 2;
	key_pairs = ctx->njobs - run.npairs;
	run.pairs = ctx->pairs + key_pairs;
	if (nfull == 0 || nkeyed == 0 || key_pairs < 1 || pthread_create(&thread, NULL, verify_full_main, &run) != 0)
	{
		/* one after the other on every session */
		if (nkeyed > 0 && !parity_compare_by_keys(by_keys, keys, nkeyed, ctx->pairs, ctx->njobs, lsn, &ctx->error))
			return false;
		return nfull == 0 || parity_compare(full, nfull, ctx->pairs, ctx->njobs, lsn, &ctx->error);
	}
	keyed_ok = parity_compare_by_keys(by_keys, keys, nkeyed, ctx->pairs, key_pairs, lsn, &ctx->error);
	pthread_join(thread, NULL);
	if (!run.ok && ctx->error.side == PARITY_SIDE_NONE)
		ctx->error = run.error;
	return keyed_ok && run.ok;
}

/*
 * The cutover's final parity: each table whose last clean verify is on record and whose
 * touched keys since are known is compared on those rows only; the others, and any whose
 * touched rows differ (to name the rows), are compared in full.
 */
static bool
verify_compare_touched(VerifyContext *ctx, TouchedKeys *touched)
{
	struct timespec started;
	VerifyBaseline *baselines = NULL;
	int nbaselines = 0;
	ParityTable **by_keys = calloc((size_t) ctx->ntables + 1, sizeof(ParityTable *));
	ParityTable **full = calloc((size_t) ctx->ntables + 1, sizeof(ParityTable *));
	char ***keys = calloc((size_t) ctx->ntables + 1, sizeof(char **));
	int nkeyed = 0;
	int nfull = 0;
	Lsn lsn = 0;
	uint64_t read0, written0, read1, written1;
	bool ok = false;

	clock_gettime(CLOCK_MONOTONIC, &started);
	parity_traffic(&read0, &written0);
	if (by_keys == NULL || full == NULL || keys == NULL)
	{
		verify_fail(ctx, PARITY_SIDE_SOURCE, "out of memory");
		goto cleanup;
	}
	if (ctx->fenced ? !verify_cut_open_fenced(ctx, &lsn) : !verify_cut_open(ctx, &lsn))
		goto cleanup;
	if (!verify_read_baselines(ctx->options->state_dir, &baselines, &nbaselines))
		log_warning("could not read the last verify results (%s/parity/latest.json): every table is "
					"compared in full", ctx->options->state_dir);
	for (int i = 0; i < ctx->ntables; i++)
	{
		ParityTable *table = ctx->tables[i];
		const char *why = verify_touched_plan(table, touched, baselines, nbaselines, &keys[nkeyed]);

		if (why != NULL)
		{
			log_info("%s compares %s in full: %s", ctx->fenced ? "final parity" : "parity before the fence",
					 table->display, why);
			full[nfull++] = table;
		}
		else if (keys[nkeyed] != NULL)
			by_keys[nkeyed++] = table;
		else
		{
			char lsnbuf[LSN_FORMAT_SIZE];

			/* nothing touched since it was proven equal */
			if (table->result.unwritten)
				log_info("%s skips %s: not written since the baseline at LSN %s",
						 ctx->fenced ? "final parity" : "parity before the fence", table->display,
						 lsn_format(table->result.baseline_lsn, lsnbuf));
			table->result.lsn = lsn;
			table->result.leaves_done = 1;
		}
	}
	if (!verify_compare_both(ctx, by_keys, keys, nkeyed, full, nfull, lsn))
		goto cleanup;
	/* those whose touched rows differ, in full after all: the report names the rows */
	nfull = 0;
	for (int i = 0; i < nkeyed; i++)
		if (by_keys[i]->result.leaves_differing > 0)
		{
			log_warning("the rows of %s touched since its last verify differ: comparing it in full to name them",
						by_keys[i]->display);
			parity_table_reset_result(by_keys[i]);
			full[nfull++] = by_keys[i];
		}
	if (nfull > 0 && !parity_compare(full, nfull, ctx->pairs, ctx->njobs, lsn, &ctx->error))
		goto cleanup;
	ok = true;

cleanup:
	if (!verify_cut_close(ctx))
		ok = false;
	parity_traffic(&read1, &written1);
	ctx->bytes_received = read1 - read0;
	ctx->bytes_sent = written1 - written0;
	ctx->compare_seconds += verify_seconds_since(&started);
	for (int i = 0; keys != NULL && i < nkeyed; i++)
	{
		for (int k = 0; k < parity_touched_ncols(by_keys[i]); k++)
			free(keys[i][k]);
		free(keys[i]);
	}
	free(keys);
	free(by_keys);
	free(full);
	verify_baselines_free(baselines, nbaselines);
	return ok;
}

void
verify_prepared_free(VerifyPrepared *prepared)
{
	if (prepared == NULL)
		return;
	verify_context_finish(&prepared->ctx);
	free(prepared);
}

bool
verify_prepare_now(const CliOptions *options, const char *publication_name, VerifyPrepared **out,
				   char *why, size_t whylen)
{
	VerifyPrepared *prepared = calloc(1, sizeof(*prepared));
	VerifyContext *ctx;

	*out = NULL;
	if (whylen > 0)
		why[0] = '\0';
	if (prepared == NULL)
	{
		snprintf(why, whylen, "out of memory");
		return false;
	}
	ctx = &prepared->ctx;
	ctx->options = options;
	ctx->fenced = true;
	ctx->quiet = true;
	ctx->njobs = options->jobs >= 1 ? options->jobs : 2;
	if (ctx->njobs > VERIFY_MAX_JOBS)
		ctx->njobs = VERIFY_MAX_JOBS;
	ctx->started_unix_us = verify_unix_us();
	ctx->publication = strdup(publication_name != NULL ? publication_name : "");
	if (ctx->publication == NULL)
	{
		snprintf(why, whylen, "out of memory");
		goto failed;
	}
	ctx->source = conninfo_connect(options->source, CONN_NORMAL, "verify", "source");
	ctx->target = ctx->source != NULL ? conninfo_connect(options->target, CONN_NORMAL, "verify", "target") : NULL;
	if (ctx->source == NULL || ctx->target == NULL)
	{
		snprintf(why, whylen, "could not connect to the %s", ctx->source == NULL ? "source" : "target");
		goto failed;
	}
	/* catalogs, key ranges and sessions now: only the fingerprints run inside the fence */
	if (!verify_prepare_tables(ctx))
	{
		snprintf(why, whylen, "%s", ctx->error.message[0] ? ctx->error.message : "the preparation failed");
		goto failed;
	}
	/* inside the fence the queries are short and round trips are the pause: a pair per table */
	ctx->njobs = ctx->ntables < VERIFY_FENCED_JOBS ? (ctx->ntables > 0 ? ctx->ntables : 1) : VERIFY_FENCED_JOBS;
	if (!verify_connect_workers(ctx))
	{
		snprintf(why, whylen, "%s", ctx->error.message[0] ? ctx->error.message : "the preparation failed");
		goto failed;
	}
	*out = prepared;
	return true;

failed:
	verify_prepared_free(prepared);
	return false;
}

/*
 * One comparison with the prepared sessions: inside the fence, or (live) at a common point.
 * defer_report: a clean result's report is left to verify_write_report.
 */
static bool
verify_run_pass(VerifyPrepared *prepared, TouchedKeys *touched, bool live, bool defer_report, bool *clean,
				uint64_t *rows, char *why, size_t whylen)
{
	VerifyContext *ctx = &prepared->ctx;
	const char *what = live ? "parity before the fence" : "final parity";
	VerifyTotals totals;
	int nkeyed = 0;
	int nunwritten = 0;
	bool compared;

	*clean = false;
	*rows = 0;
	if (whylen > 0)
		why[0] = '\0';
	prepared->report_pending = false;
	for (int i = 0; i < ctx->ntables; i++)
		parity_table_reset_result(ctx->tables[i]);
	ctx->compare_seconds = 0;
	ctx->started_unix_us = verify_unix_us();
	/* live: the agent's applier is held at a common point, as for verify; else nothing moves */
	ctx->fenced = !live;
	ctx->barrier = live;
	compared = touched != NULL ? verify_compare_touched(ctx, touched) : verify_compare_all(ctx);
	ctx->fenced = true;
	ctx->barrier = false;
	if (!compared)
	{
		snprintf(why, whylen, "%s", ctx->error.message[0] ? ctx->error.message : "the comparison failed");
		return false;
	}
	verify_totals(ctx, &totals);
	*clean = totals.tables_differing == 0;
	if (defer_report && *clean)
		prepared->report_pending = true;
	else if (!verify_report(ctx))
		log_warning("the %s report could not be written", what);
	*rows = (uint64_t) totals.rows;
	if (!*clean)
		snprintf(why, whylen, "%d of %d tables differ (%" PRId64 " missing, %" PRId64 " extra, %" PRId64
				 " changed, %d schema issues)%s%s", totals.tables_differing, ctx->ntables, totals.missing,
				 totals.extra, totals.changed, totals.schema_issues, ctx->report_path[0] ? "; report " : "",
				 ctx->report_path);
	for (int i = 0; i < ctx->ntables; i++)
	{
		nkeyed += ctx->tables[i]->result.by_keys;
		nunwritten += ctx->tables[i]->result.unwritten;
	}
	log_info("%s: %s, %" PRId64 " rows in %d tables (%d by the keys touched since their last "
			 "verify, %d not written since, %d in full) in %.3f s", what, *clean ? "equal" : "DIFFERENT", totals.rows,
			 ctx->ntables, nkeyed, nunwritten, ctx->ntables - nkeyed - nunwritten, ctx->compare_seconds);
	return true;
}

bool
verify_run_prepared(VerifyPrepared *prepared, TouchedKeys *touched, bool *clean, uint64_t *rows, char *why,
					size_t whylen)
{
	return verify_run_pass(prepared, touched, false, true, clean, rows, why, whylen);
}

bool
verify_write_report(VerifyPrepared *prepared)
{
	if (prepared == NULL || !prepared->report_pending)
		return true;
	prepared->report_pending = false;
	if (verify_report(&prepared->ctx))
		return true;
	log_warning("the final parity report could not be written");
	return false;
}

bool
verify_run_before_fence(VerifyPrepared *prepared, TouchedKeys *touched, bool *clean, uint64_t *rows, char *why,
						size_t whylen)
{
	/* its latest.json is the fence's baseline: written now */
	return verify_run_pass(prepared, touched, true, false, clean, rows, why, whylen);
}

bool
verify_compare_now(const CliOptions *options, const char *publication_name, bool *clean, uint64_t *rows,
				   char *why, size_t whylen)
{
	VerifyPrepared *prepared = NULL;
	bool ok;

	*clean = false;
	*rows = 0;
	if (!verify_prepare_now(options, publication_name, &prepared, why, whylen))
		return false;
	ok = verify_run_prepared(prepared, NULL, clean, rows, why, whylen);
	if (ok)
		verify_write_report(prepared);   /* a report that could not be written is logged, as before */
	verify_prepared_free(prepared);
	return ok;
}
