/*
 * The cutover: one command that switches the application from the source to the target.
 * A state machine on its own thread inside the running agent: preflight, fence writes
 * (PgBouncer PAUSE), drain the stream, set sequences, final parity, lift the target guard,
 * repoint PgBouncer and RESUME, report. Any failure before the switch rolls back; the
 * progress is persisted so a crash mid-cutover is rolled back on the next start.
 */
#ifndef SWITCHYARD_CUTOVER_H
#define SWITCHYARD_CUTOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchyard/apply.h"
#include "switchyard/guard.h"
#include "switchyard/lsn.h"

typedef enum CutoverStep
{
	CUTOVER_IDLE = 0,
	CUTOVER_PREFLIGHT,
	CUTOVER_FENCE,
	CUTOVER_DRAIN,
	CUTOVER_SEQUENCES,
	CUTOVER_PARITY,
	CUTOVER_LIFT_GUARD,
	CUTOVER_SWITCH,
	CUTOVER_REPORT,
	CUTOVER_DONE,           /* switched: the application now writes to the target */
	CUTOVER_ABORTED,        /* rolled back: the source serves, streaming goes on */
	CUTOVER_CHECKED         /* --dry-run: the preflight passed, nothing changed */
} CutoverStep;

/*
 * The final parity, provided by the agent: prepared before the fence (sessions, catalogs,
 * key ranges), run inside it on source and target as they are then (writes fenced, stream
 * drained). Run returns false when it could not compare; *clean says whether they are
 * equal, *rows how many rows were compared.
 */
typedef struct CutoverParity
{
	bool (*prepare)(void *arg, void **handle, char *why, size_t whylen);
	bool (*run)(void *handle, bool *clean, uint64_t *rows, char *why, size_t whylen);
	void (*free)(void *handle);
	/* optional, in the preflight of a real cutover: the same comparison before the fence */
	bool (*before_fence)(void *handle, bool *clean, uint64_t *rows, char *why, size_t whylen);
	/* optional: one line on what run would compare, for the preflight's output */
	void (*describe)(void *handle, char *buf, size_t len);
	/* optional: writes what run left to write, once the write pause is over */
	void (*report)(void *handle);
	void *arg;
} CutoverParity;

typedef struct CutoverOptions
{
	const char *state_dir;
	const char *source_conninfo;
	const char *target_conninfo;
	const char *pgbouncer;          /* admin console conninfo (dbname=pgbouncer), or NULL */
	const char *pgbouncer_db;
	const char *pgbouncer_ini;
	bool manual_fence;              /* no PgBouncer: the operator has stopped the writes */
	bool read_only_fence;           /* no PgBouncer: app_roles made read-only on the source */
	char *const *app_roles;         /* read_only_fence: NULL-terminated */
	bool dry_run;
	int max_pause_ms;               /* 0 = 5000: the fence is lifted (rolled back) past this */
	uint64_t max_lag_bytes;         /* 0 = 16 MiB: preflight refuses above this */
	const char *fail_at;            /* tests: points to fail at, split by commas (see cutover.c) */
	const char *stall_at;           /* tests: a step name (or ini-rewritten, reloaded, switched) to stall at */
	Applier *applier;
	Spool *spool;                   /* a hold on it (pause, verify) blocks the drain */
	Guard *guard;                   /* NULL: no application roles guarded */
	CutoverParity final_parity;     /* prepare NULL: no final parity */
} CutoverOptions;

typedef struct CutoverStatus
{
	CutoverStep step;
	bool finished;
	bool succeeded;
	double pause_ms;                /* fence to resume, once known */
	char message[1100];             /* the outcome, or the abort's reason and what its rollback left undone */
	char report_path[512];
} CutoverStatus;

typedef struct Cutover Cutover;

/* Starts the cutover thread. */
bool cutover_start(const CutoverOptions *options, Cutover **out) __attribute__((warn_unused_result));
void cutover_get_status(Cutover *cutover, CutoverStatus *out);
/* Waits for the thread. Accepts NULL. */
void cutover_free(Cutover *cutover);
const char *cutover_step_name(CutoverStep step);

typedef enum CutoverRecovery
{
	CUTOVER_RECOVERY_NONE = 0,      /* no cutover was interrupted: stream on */
	CUTOVER_RECOVERY_ROLLED_BACK,   /* interrupted before its switch: undone, stream on */
	CUTOVER_RECOVERY_COMPLETED,     /* interrupted after its switch: finished now */
	CUTOVER_RECOVERY_SWITCHED       /* an earlier cutover completed: nothing more to stream */
} CutoverRecovery;

/*
 * At agent start, before the guard starts. The switch is the point of no return: the moment
 * PgBouncer is seen pointing at the target (with --fence read-only: the guard lifted) is
 * persisted. A cutover interrupted before it is rolled back: PgBouncer's file restored,
 * RELOAD, RESUME; the guard record marked for revoking again; the application roles'
 * settings on the source restored exactly. One interrupted after it is completed: RESUME
 * and the report. When something cannot be done, the record stays, so the next start tries
 * again; returns false.
 */
bool cutover_recover(const char *state_dir, const char *source_conninfo,
					 CutoverRecovery *out) __attribute__((warn_unused_result));

/* `switchyard cutover`: the command-line side; returns an exit status. */
struct CliOptions;
int cutover_command(const struct CliOptions *options);

/* ---- pure parts, for the unit tests ---------------------------------------------------- */

/*
 * Rewrites the line for database `db` in the [databases] section of a pgbouncer.ini text so
 * that it points at host/port/dbname (other settings on the line, like pool_size, kept).
 * Returns the new text (caller frees) or NULL when the section has no such line.
 */
char *cutover_rewrite_ini(const char *text, const char *db, const char *host, const char *port,
						  const char *dbname);

#endif
