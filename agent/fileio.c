/*
 * The one atomic file writer: every file the agent replaces (state, guard record, cutover
 * progress and report, PgBouncer's ini, parity reports) goes through here, so each gets the
 * same crash safety and the same error lines.
 */
#include "switchyard/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "switchyard/log.h"

typedef struct FilePart
{
	const char *data;
	size_t len;
} FilePart;

static void
fileio_report(const char *path, const char *step, const char *object)
{
	/* the cutover puts strerror(errno) into its own failure message after this */
	int saved_errno = errno;

	log_error("could not write file \"%s\": %s", path, strerror(saved_errno));
	log_detail("%s \"%s\" failed.", step, object);
	errno = saved_errno;
}

static bool
fileio_write_all(int fd, const char *data, size_t len)
{
	while (len > 0)
	{
		ssize_t written = write(fd, data, len);

		if (written < 0)
		{
			if (errno == EINTR)
				continue;
			return false;
		}
		data += written;
		len -= (size_t) written;
	}
	return true;
}

/* The rename is durable only once the directory entry itself is on disk. */
static bool
fileio_fsync_dir(const char *path, char *dir, size_t size)
{
	const char *slash = strrchr(path, '/');
	int fd;
	int saved_errno;
	bool ok;

	if (slash == NULL)
		snprintf(dir, size, ".");
	else if (slash == path)
		snprintf(dir, size, "/");
	else
		snprintf(dir, size, "%.*s", (int) (slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ok = fsync(fd) == 0;
	saved_errno = errno;
	close(fd);
	errno = saved_errno;
	return ok;
}

/* owner and group (uid_t) -1 leave the temporary file's own */
static bool
fileio_write_parts(const char *path, const FilePart *parts, int nparts, mode_t mode, uid_t owner, gid_t group)
{
	char temp[PATH_MAX];
	char dir[PATH_MAX];
	int length = snprintf(temp, sizeof(temp), "%s%s", path, FILEIO_TEMP_SUFFIX);
	int fd = -1;
	int saved_errno;
	bool created = false;
	bool ok = false;

	if (length < 0 || (size_t) length >= sizeof(temp))
	{
		errno = ENAMETOOLONG;
		log_error("could not write file \"%s\": path is too long", path);
		return false;
	}
	fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
	{
		fileio_report(path, "Creating the temporary file", temp);
		goto cleanup;
	}
	created = true;
	/* open applies the umask; a rewritten pgbouncer.ini must keep the mode asked for */
	if (fchmod(fd, mode) != 0)
	{
		fileio_report(path, "Setting the mode of", temp);
		goto cleanup;
	}
	if ((owner != (uid_t) -1 || group != (gid_t) -1) && fchown(fd, owner, group) != 0)
	{
		fileio_report(path, "Setting the owner of", temp);
		goto cleanup;
	}
	for (int i = 0; i < nparts; i++)
	{
		if (!fileio_write_all(fd, parts[i].data, parts[i].len))
		{
			fileio_report(path, "Writing", temp);
			goto cleanup;
		}
	}
	if (fsync(fd) != 0)
	{
		fileio_report(path, "fsync of", temp);
		goto cleanup;
	}
	if (close(fd) != 0)
	{
		fd = -1;
		fileio_report(path, "Closing", temp);
		goto cleanup;
	}
	fd = -1;
	if (rename(temp, path) != 0)
	{
		fileio_report(path, "Renaming", temp);
		goto cleanup;
	}
	created = false;
	if (!fileio_fsync_dir(path, dir, sizeof(dir)))
	{
		fileio_report(path, "fsync of the directory", dir);
		goto cleanup;
	}
	ok = true;

cleanup:
	saved_errno = errno;
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(temp);
	errno = saved_errno;
	return ok;
}

bool
fileio_write_atomic(const char *path, const char *data, size_t len, mode_t mode)
{
	FilePart part = {data, len};

	return fileio_write_parts(path, &part, 1, mode, (uid_t) -1, (gid_t) -1);
}

bool
fileio_replace_keeping_mode(const char *path, const char *data, size_t len)
{
	FilePart part = {data, len};
	struct stat st;

	if (stat(path, &st) != 0)
	{
		log_error("could not read the mode of \"%s\": %m", path);
		return false;
	}
	/* chown only when it changes something: an unprivileged agent may then still write */
	return fileio_write_parts(path, &part, 1, st.st_mode & 07777,
							  st.st_uid != geteuid() ? st.st_uid : (uid_t) -1,
							  st.st_gid != getegid() ? st.st_gid : (gid_t) -1);
}

bool
fileio_can_keep_owner(const char *path)
{
	struct stat st;
	gid_t *groups;
	bool member = false;
	int n;

	if (stat(path, &st) != 0)
		return false;
	if (geteuid() == 0)
		return true;
	if (st.st_uid != geteuid())
	{
		errno = EPERM;
		return false;
	}
	if (st.st_gid == getegid())
		return true;
	n = getgroups(0, NULL);
	groups = n > 0 ? calloc((size_t) n, sizeof(*groups)) : NULL;
	if (groups != NULL)
	{
		n = getgroups(n, groups);
		for (int i = 0; i < n && !member; i++)
			member = groups[i] == st.st_gid;
		free(groups);
	}
	if (!member)
		errno = EPERM;
	return member;
}

bool
fileio_write_text(const char *path, const char *text, mode_t mode)
{
	FilePart parts[2] = {{text, strlen(text)}, {"\n", 1}};

	return fileio_write_parts(path, parts, 2, mode, (uid_t) -1, (gid_t) -1);
}
