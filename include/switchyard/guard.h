/*
 * The target guard: from the start of `run` until the cutover lifts it, the application's
 * roles cannot connect to the target (CONNECT revoked from PUBLIC and from them, exactly what
 * was granted remembered in <state-dir>/guard.json), and a watch thread with its own target
 * session reports, and with --guard enforce terminates, every session that is not the agent's.
 */
#ifndef SWITCHYARD_GUARD_H
#define SWITCHYARD_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum GuardMode
{
	GUARD_OBSERVE = 0,          /* report foreign sessions */
	GUARD_ENFORCE               /* report and terminate them */
} GuardMode;

typedef struct GuardOptions
{
	const char *target_conninfo;
	const char *state_dir;      /* holds guard.json */
	char *const *app_roles;     /* NULL-terminated application roles, or NULL */
	GuardMode mode;
	int poll_ms;                /* 0: every 2 s (or $SWITCHYARD_GUARD_POLL_MS) */
} GuardOptions;

typedef struct GuardStats
{
	GuardMode mode;
	char *const *app_roles;     /* the guard's copy, NULL-terminated; valid until guard_free */
	bool connect_revoked;       /* the fence is in place (not lifted) */
	bool lifted;                /* guard_lift ran: application roles may connect */
	bool watching;              /* the watch session is connected */
	uint64_t violations_total;  /* foreign sessions seen, each counted once */
	uint64_t sessions_now;      /* foreign sessions at the last check */
	uint64_t terminated_total;  /* enforce: sessions terminated */
	uint64_t checks;
	int64_t last_check_unix;    /* 0: no check yet */
	char last_violation[512];   /* "" when none */
} GuardStats;

typedef struct Guard Guard;

/*
 * Connects to the target, revokes CONNECT on its database from PUBLIC and the application
 * roles (only what is granted, recorded before it is revoked; an existing record is kept and
 * extended, so restarts never forget an earlier revoke; a record marked lifted is left
 * lifted), warns about application roles the revoke cannot stop, and starts the watch thread,
 * whose first check runs at once. Logs and returns false on failure.
 */
bool guard_start(const GuardOptions *options, Guard **out) __attribute__((warn_unused_result));
void guard_get_stats(Guard *guard, GuardStats *out);
/*
 * Grants back exactly what the record says was revoked and marks it lifted; from then on
 * sessions of the application roles are no longer violations (nor terminated). Idempotent.
 * Uses a session opened at guard_start, so it costs one round trip per grant plus the
 * transaction. Call from one thread at a time (with guard_reinstate).
 */
bool guard_lift(Guard *guard) __attribute__((warn_unused_result));
/* Revokes again after a lift (a cutover rolling back); application sessions are violations again. */
bool guard_reinstate(Guard *guard) __attribute__((warn_unused_result));
/* Stops the watch thread and closes the sessions; the record stays. Accepts NULL. */
void guard_free(Guard *guard);

/*
 * `switchyard cleanup`: restores what the record in state_dir says is still revoked (nothing
 * to do without a record or when it is lifted). With target_conninfo NULL and privileges
 * still revoked, logs the GRANT statements to run by hand and returns false.
 */
bool guard_cleanup(const char *state_dir, const char *target_conninfo) __attribute__((warn_unused_result));

bool guard_parse_mode(const char *text, GuardMode *out) __attribute__((warn_unused_result));
const char *guard_mode_name(GuardMode mode);

/* ---- the record and the session rule, exposed for the unit tests ------------------------ */

typedef struct GuardGrant
{
	char *grantee;              /* NULL: PUBLIC */
	char *grantor;
	bool grant_option;
} GuardGrant;

typedef struct GuardRecord
{
	char *database;
	GuardMode mode;
	char **app_roles;           /* NULL-terminated */
	GuardGrant *grants;         /* what was revoked, in the order it was first revoked */
	size_t ngrants;
	bool lifted;
} GuardRecord;

/* *out = NULL when there is no record (returns true). */
bool guard_record_load(const char *state_dir, GuardRecord **out) __attribute__((warn_unused_result));
/* Written atomically: temp file, fsync, rename, fsync of the directory. */
bool guard_record_save(const char *state_dir, const GuardRecord *record) __attribute__((warn_unused_result));
/* Adds a grant unless the record has it already (same grantee and grantor); *added says which. */
bool guard_record_add(GuardRecord *record, const char *grantee, const char *grantor, bool grant_option,
					  bool *added) __attribute__((warn_unused_result));
/* Replaces the record's application roles with the union of both lists. */
bool guard_record_add_roles(GuardRecord *record, char *const *roles) __attribute__((warn_unused_result));
void guard_record_free(GuardRecord *record);

typedef enum GuardSessionKind
{
	GUARD_SESSION_AGENT,        /* the migration's own: its role and a switchyard- name */
	GUARD_SESSION_APP,          /* an application role's */
	GUARD_SESSION_OTHER         /* anybody else's */
} GuardSessionKind;

/*
 * Whose is a target session? The agent's sessions run as agent_role with application_name
 * "switchyard-...", the name the target conninfo sets (agent_app_name, may be NULL) when the
 * user overrode it, or "pg_restore" (the initial copy's schema restore).
 */
GuardSessionKind guard_classify_session(const char *usename, const char *application_name,
										const char *agent_role, const char *agent_app_name,
										char *const *app_roles);


#endif
