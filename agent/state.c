/*
 * The persisted agent state in the state directory: saved atomically so a crash leaves
 * either the old or the new file, never half of one, and the lock that keeps a second agent
 * off a state directory that one is already using.
 */
#include "switchyard/state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "switchyard/fileio.h"
#include "switchyard/log.h"

#define STATE_FILE "state.pb"
#define STATE_TEMP_FILE "state.pb" FILEIO_TEMP_SUFFIX
#define LOCK_FILE "agent.lock"
/* A state file is a few hundred bytes plus the table list; anything huge is not ours. */
#define STATE_MAX_SIZE (64 * 1024 * 1024)

static bool
join_path(const char *dir, const char *name, char *buf, size_t size)
{
	int length = snprintf(buf, size, "%s/%s", dir, name);

	if (length < 0 || (size_t) length >= size)
	{
		buf[0] = '\0';
		log_error("path \"%s/%s\" is too long", dir, name);
		return false;
	}
	return true;
}

bool
state_dir_ensure(const char *dir, bool *created)
{
	struct stat st;

	if (created != NULL)
		*created = false;
	if (mkdir(dir, 0700) == 0)
	{
		if (created != NULL)
			*created = true;
		return true;
	}
	if (errno != EEXIST)
	{
		log_error("could not create state directory \"%s\": %m", dir);
		return false;
	}
	if (stat(dir, &st) != 0)
	{
		log_error("could not stat state directory \"%s\": %m", dir);
		return false;
	}
	if (!S_ISDIR(st.st_mode))
	{
		log_error("state directory \"%s\" exists but is not a directory", dir);
		return false;
	}
	return true;
}

bool
state_save(const char *dir, const AgentState *state)
{
	char path[PATH_MAX];
	uint8_t *buffer = NULL;
	size_t length;
	bool ok = false;

	if (!join_path(dir, STATE_FILE, path, sizeof(path)))
		return false;
	length = agent_state__get_packed_size(state);
	buffer = malloc(length > 0 ? length : 1);
	if (buffer == NULL)
	{
		log_error("out of memory");
		return false;
	}
	agent_state__pack(state, buffer);
	ok = fileio_write_atomic(path, (const char *) buffer, length, 0600);
	free(buffer);
	return ok;
}

bool
state_load(const char *dir, AgentState **out)
{
	char path[PATH_MAX];
	uint8_t *buffer = NULL;
	struct stat st;
	size_t done = 0;
	int fd = -1;
	bool ok = false;

	*out = NULL;
	if (!join_path(dir, STATE_FILE, path, sizeof(path)))
		goto cleanup;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		/* no state yet (or no directory): a fresh migration, not an error */
		if (errno == ENOENT)
			ok = true;
		else
			log_error("could not open state file \"%s\": %m", path);
		goto cleanup;
	}
	if (fstat(fd, &st) != 0)
	{
		log_error("could not stat state file \"%s\": %m", path);
		goto cleanup;
	}
	if (st.st_size > STATE_MAX_SIZE)
	{
		log_error("state file \"%s\" is too large (%lld bytes)", path, (long long) st.st_size);
		goto cleanup;
	}
	buffer = malloc(st.st_size > 0 ? (size_t) st.st_size : 1);
	if (buffer == NULL)
	{
		log_error("out of memory");
		goto cleanup;
	}
	while (done < (size_t) st.st_size)
	{
		ssize_t got = read(fd, buffer + done, (size_t) st.st_size - done);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
		{
			log_error("could not read state file \"%s\": %m", path);
			goto cleanup;
		}
		if (got == 0)
			break;
		done += (size_t) got;
	}
	*out = agent_state__unpack(NULL, done, buffer);
	if (*out == NULL)
	{
		log_error("could not parse state file \"%s\"", path);
		log_detail("The file is corrupt or was not written by switchyard.");
		goto cleanup;
	}
	ok = true;

cleanup:
	if (fd >= 0)
		close(fd);
	free(buffer);
	return ok;
}

void
state_free(AgentState *state)
{
	if (state != NULL)
		agent_state__free_unpacked(state, NULL);
}

bool
state_remove(const char *dir)
{
	char path[PATH_MAX];
	char temp_path[PATH_MAX];

	if (!join_path(dir, STATE_FILE, path, sizeof(path)) ||
		!join_path(dir, STATE_TEMP_FILE, temp_path, sizeof(temp_path)))
		return false;
	if (unlink(path) != 0 && errno != ENOENT)
	{
		log_error("could not remove state file \"%s\": %m", path);
		return false;
	}
	if (unlink(temp_path) != 0 && errno != ENOENT)
	{
		log_error("could not remove file \"%s\": %m", temp_path);
		return false;
	}
	return true;
}

/* The pid the holder wrote into the lock file, 0 when unreadable. */
static int
read_lock_pid(int fd)
{
	char text[32];
	ssize_t got = pread(fd, text, sizeof(text) - 1, 0);
	long pid;
	char *end = NULL;

	if (got <= 0)
		return 0;
	text[got] = '\0';
	errno = 0;
	pid = strtol(text, &end, 10);
	if (errno != 0 || end == text || (*end != '\n' && *end != '\0') || pid <= 0 || pid > INT_MAX)
		return 0;
	return (int) pid;
}

bool
state_lock(const char *dir, int *lock_fd)
{
	char path[PATH_MAX];
	char text[32];
	int fd = -1;
	int length;
	bool ok = false;

	*lock_fd = -1;
	if (!join_path(dir, LOCK_FILE, path, sizeof(path)))
		goto cleanup;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
	{
		log_error("could not open lock file \"%s\": %m", path);
		goto cleanup;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0)
	{
		if (errno == EWOULDBLOCK)
		{
			int pid = read_lock_pid(fd);

			log_error("another agent is running on state directory \"%s\"", dir);
			if (pid > 0)
				log_detail("Process %d holds the lock file \"%s\".", pid, path);
			log_hint("Stop it with \"switchyard stop --state-dir %s\", or use another --state-dir.",
					 dir);
		}
		else
			log_error("could not lock file \"%s\": %m", path);
		goto cleanup;
	}
	/* the pid is for people and `stop`; the lock itself is the flock */
	length = snprintf(text, sizeof(text), "%d\n", (int) getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t) length, 0) != length)
	{
		log_error("could not write lock file \"%s\": %m", path);
		goto cleanup;
	}
	*lock_fd = fd;
	fd = -1;
	ok = true;

cleanup:
	if (fd >= 0)
		close(fd);
	return ok;
}

void
state_unlock(int lock_fd)
{
	/*
	 * The file stays: removing it would let a new agent lock a fresh inode while a
	 * late-starting one still locks the old, unlinked one.
	 */
	if (lock_fd >= 0)
		close(lock_fd);
}

void
state_discard(const char *dir, int lock_fd, bool remove_dir)
{
	char path[PATH_MAX];
	bool removed = state_remove(dir);

	/* the lock goes last, after what it protects */
	if (removed && remove_dir && join_path(dir, LOCK_FILE, path, sizeof(path)) &&
		unlink(path) != 0 && errno != ENOENT)
		log_warning("could not remove lock file \"%s\": %m", path);
	state_unlock(lock_fd);
	/* not empty: someone else's files are in it, and they stay */
	if (removed && remove_dir && rmdir(dir) != 0 && errno != ENOTEMPTY && errno != EEXIST)
		log_warning("could not remove state directory \"%s\": %m", dir);
}

bool
state_lock_is_held(const char *dir, int *pid)
{
	char path[PATH_MAX];
	int fd;
	bool held = false;

	*pid = 0;
	if (snprintf(path, sizeof(path), "%s/%s", dir, LOCK_FILE) >= (int) sizeof(path))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (flock(fd, LOCK_SH | LOCK_NB) != 0)
	{
		held = errno == EWOULDBLOCK;
		if (held)
			*pid = read_lock_pid(fd);
	}
	close(fd);              /* also drops our shared lock when we got it */
	return held;
}
