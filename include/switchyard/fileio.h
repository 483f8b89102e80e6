/*
 * Whole-file replacement that survives a crash: temporary file beside the target, fsync,
 * rename over it, fsync of the directory. A reader (or a restart) sees the old file or the
 * new one, never half of one. Used for the state, the guard record, the cutover's progress,
 * PgBouncer's ini and the parity reports.
 */
#ifndef SWITCHYARD_FILEIO_H
#define SWITCHYARD_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The temporary file is <path> with this suffix; a crash can leave one behind. */
#define FILEIO_TEMP_SUFFIX ".switchyard-tmp"

/*
 * Replaces path with len bytes of data, the file getting exactly mode (whatever the umask).
 * On failure logs one error naming path and the cause, removes the temporary file, leaves
 * path as it was and errno as the failing call set it.
 */
bool fileio_write_atomic(const char *path, const char *data, size_t len, mode_t mode)
	__attribute__((warn_unused_result));
/*
 * The same for a file that exists already (pgbouncer.ini): the new one keeps its mode, owner
 * and group, so that a file holding passwords stays as private as it was and its reader (the
 * PgBouncer user) can still read it.
 */
bool fileio_replace_keeping_mode(const char *path, const char *data, size_t len)
	__attribute__((warn_unused_result));
/* Whether fileio_replace_keeping_mode could give path's owner and group to a new file
 * (errno EPERM when not). */
bool fileio_can_keep_owner(const char *path);
/* The same for a text document (JSON): text and a final newline. */
bool fileio_write_text(const char *path, const char *text, mode_t mode)
	__attribute__((warn_unused_result));

#endif
