/*
 * The read-only fence of the cutover, for sources without PgBouncer: the application roles
 * get default_transaction_read_only = on and their sessions on the source's database are
 * ended, so clients reconnect read-only. What each role had set before is kept by the caller
 * (in cutover.json) and given back exactly on a rollback.
 */
#ifndef SWITCHYARD_FENCE_H
#define SWITCHYARD_FENCE_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#define FENCE_READ_ONLY_SETTING "default_transaction_read_only"

typedef struct FenceRole
{
	char *role;
	char *previous;             /* the role's own setting before the fence; NULL: none */
} FenceRole;

/*
 * Checks each role exists, is not the role the session runs as, and has no setting for the
 * session's database that would override its own; fills in roles[i].previous. On failure
 * why says which role and what to do.
 */
bool fence_read_only_check(PGconn *source, FenceRole *roles, int nroles, char *why,
						   size_t whylen) __attribute__((warn_unused_result));

/* The source's clock now, as text: sessions begun after it started read-only. */
bool fence_source_clock(PGconn *source, char *out, size_t outlen, char *why,
						size_t whylen) __attribute__((warn_unused_result));

/*
 * Makes every role read-only (one transaction), then ends their sessions on the source's
 * database, waiting up to a second for each; *ended counts them.
 */
bool fence_read_only_apply(PGconn *source, const FenceRole *roles, int nroles, int *ended, char *why,
						   size_t whylen) __attribute__((warn_unused_result));

/*
 * Gives each role its previous setting back (RESET where it had none), in one transaction,
 * then ends their sessions begun since `since` (fence_source_clock before the fence): they
 * started read-only and would stay so. *ended counts them.
 */
bool fence_read_only_restore(PGconn *source, const FenceRole *roles, int nroles, const char *since, int *ended,
							 char *why, size_t whylen) __attribute__((warn_unused_result));

void fence_roles_free(FenceRole *roles, int nroles);

/* ---- pure, for the unit tests -------------------------------------------------------- */

/*
 * The statement that sets a role's default_transaction_read_only: to "on" when read_only,
 * else back to previous (RESET when previous is NULL). Identifier and value quoted. Caller
 * frees; NULL on out of memory.
 */
char *fence_role_statement(const char *role, bool read_only, const char *previous);

#endif
