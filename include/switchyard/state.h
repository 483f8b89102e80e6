/*
 * The persisted agent state (<state-dir>/state.pb, protobuf AgentState): which slot,
 * publication and origin belong to this migration, and the last known positions, so
 * `status` works while the agent is stopped and a restart continues the same migration.
 * Written atomically (temp file, fsync, rename, fsync dir). No passwords are stored.
 */
#ifndef SWITCHYARD_STATE_H
#define SWITCHYARD_STATE_H

#include <stdbool.h>

#include "state.pb-c.h"

/* Creates the directory (mode 0700) if missing; *created (may be NULL) says whether it did. */
bool state_dir_ensure(const char *dir, bool *created) __attribute__((warn_unused_result));
/* *out = NULL when there is no state file yet (returns true); free it with state_free. */
bool state_load(const char *dir, AgentState **out) __attribute__((warn_unused_result));
bool state_save(const char *dir, const AgentState *state) __attribute__((warn_unused_result));
/* Frees a state from state_load. Accepts NULL. */
void state_free(AgentState *state);
/* Removes the state file (cleanup). */
bool state_remove(const char *dir) __attribute__((warn_unused_result));

/*
 * An exclusive lock (flock on <dir>/agent.lock) so two agents never run on one state dir.
 * The agent keeps *lock_fd open while it runs; the file holds its pid. When another process
 * holds the lock, logs who and returns false.
 */
bool state_lock(const char *dir, int *lock_fd) __attribute__((warn_unused_result));
/* Releases the lock (closes the descriptor). Accepts -1. */
void state_unlock(int lock_fd);
/*
 * Undoes a first run that failed before creating anything on the servers, so a corrected
 * rerun is a first run again: removes the state file, releases the lock and, when remove_dir
 * (this run created the directory), the lock file and the directory.
 */
void state_discard(const char *dir, int lock_fd, bool remove_dir);
/*
 * For the CLI: true when a process holds the agent lock on dir, with its pid in *pid (0 when
 * unknown). Never creates the lock file.
 */
bool state_lock_is_held(const char *dir, int *pid);

#endif
