/*
 * The agent's status as one document: `switchyard status --json`, /api/status, and the
 * dashboard all show this. Built by the agent from its parts, rendered here with json-c.
 */
#ifndef SWITCHYARD_STATUS_H
#define SWITCHYARD_STATUS_H

#include <stdbool.h>
#include <stdint.h>

#include "switchyard/lsn.h"

typedef struct AgentStatus
{
	const char *phase;          /* "starting", "copy", "streaming", "stopping", "stopped", ... */
	bool running;               /* from a live agent (false: read from the state directory) */
	int pid;
	const char *source;         /* conninfo with the password removed */
	const char *target;
	const char *slot_name;
	const char *publication_name;
	const char *origin_name;
	Lsn received_lsn;           /* last WAL position seen from the source */
	Lsn flushed_lsn;            /* durable in the spool = confirmed to the source */
	Lsn applied_lsn;            /* applied on the target */
	Lsn source_current_lsn;     /* pg_current_wal_lsn() at the last check (0 = unknown) */
	uint64_t lag_bytes;         /* source_current_lsn (or received) - applied */
	double lag_seconds;         /* now - commit time of the last applied transaction, 0 when caught up */
	uint64_t transactions_applied;
	uint64_t changes_applied;
	uint64_t touched_keys;      /* rows written since the last verify, kept for the cutover's parity */
	uint64_t spool_bytes;
	uint64_t spool_segments;
	bool spool_full;
	bool paused;
	bool source_connected;
	bool target_connected;
	const char *last_error;     /* "" or NULL: none */
	int64_t started_at_unix;
	Lsn hold_lsn;               /* parity barrier requested (0 = none) */
	bool held;                  /* the applier holds at hold_lsn */
	bool copy_active;           /* the initial copy runs: the "copy" object is filled */
	const char *copy_step;      /* "schema", "data", "indexes", "sequences" */
	int copy_tables_done;
	int copy_tables_total;
	uint64_t copy_rows_done;
	uint64_t copy_rows_estimated;
	uint64_t copy_bytes_done;
	uint64_t copy_bytes_estimated;
	double copy_elapsed_seconds;
	bool guard_active;          /* the target guard runs (or left a record): the "guard" object is filled */
	const char *guard_mode;     /* "observe", "enforce" */
	char *const *guard_app_roles; /* NULL-terminated, or NULL */
	bool guard_connect_revoked; /* CONNECT is revoked from PUBLIC and the application roles */
	uint64_t guard_violations_total;
	uint64_t guard_sessions_now;  /* foreign sessions on the target at the last check */
	const char *guard_last_violation; /* NULL or "": none */
	bool guard_lifted;          /* the cutover gave CONNECT back */
	bool cutover_active;        /* a cutover ran or runs: the "cutover" object is filled */
	const char *cutover_step;   /* "preflight", "fence", ..., "done", "aborted", "checked" */
	bool cutover_finished;
	bool cutover_succeeded;
	double cutover_pause_ms;
	const char *cutover_message;
} AgentStatus;

/* Renders the document (pretty when pretty is true); caller frees. NULL on out of memory. */
char *status_to_json(const AgentStatus *status, bool pretty);
/* Prints the human-readable form (switchyard status without --json) to stdout. */
void status_print_text(const AgentStatus *status);

/*
 * Reads a document made by status_to_json (the CLI gets it from the agent). The strings in
 * *out point into *document, which the caller releases with status_document_free.
 */
typedef struct StatusDocument StatusDocument;
bool status_from_json(const char *text, AgentStatus *out, StatusDocument **document)
	__attribute__((warn_unused_result));
void status_document_free(StatusDocument *document);

#endif
