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

/* Creates the directory (mode 0700) if missing. */
bool state_dir_ensure(const char *dir) __attribute__((warn_unused_result));
/* *out = NULL when there is no state file yet (returns true). */
bool state_load(const char *dir, AgentState **out) __attribute__((warn_unused_result));
bool state_save(const char *dir, const AgentState *state) __attribute__((warn_unused_result));
void state_free(AgentState *state);
/* Removes the state file (cleanup). */
bool state_remove(const char *dir) __attribute__((warn_unused_result));

/* An exclusive lock (flock on <dir>/agent.lock) so two agents never run on one state dir. */
bool state_lock(const char *dir, int *lock_fd) __attribute__((warn_unused_result));

#endif
