/*
 * The initial copy. A coordinator thread dumps the schema inside the slot's exported
 * snapshot, opens one source session per job that imports the same snapshot, restores the
 * pre-data schema on the target, pumps binary COPY streams straight from source to target
 * (big tables split into ctid ranges so every job works on them), then builds indexes and
 * constraints in parallel (pg_restore -j) and sets the sequences.
 */
#include "switchyard/copy.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "switchyard/conninfo.h"
#include "switchyard/log.h"
#include "switchyard/source.h"

#define COPY_DEFAULT_SPLIT_BYTES (UINT64_C(256) * 1024 * 1024)
#define COPY_MIN_SPLIT_BYTES (UINT64_C(32) * 1024 * 1024)
#define COPY_MAX_CHUNKS 1024

typedef struct CopyTable
{
	char *qualified;             /* "schema"."table", quoted */
	char *columns;               /* quoted, comma-separated, generated columns left out */
	uint64_t bytes;
	uint64_t rows_estimated;
	atomic_int units_left;
} CopyTable;

/* One COPY stream: a table or a block range of it. */
typedef struct CopyUnit
{
	CopyTable *table;
	int64_t first_block;         /* -1: whole table */
	int64_t end_block;           /* -1: to the end */
	uint64_t bytes;              /* estimated, for largest-first ordering */
} CopyUnit;

typedef struct CopyWorker
{
	struct Copy *copy;
	int index;
	PGconn *source;
	PGconn *target;
	pthread_t thread;
	bool started;
} CopyWorker;

struct Copy
{
	CopyOptions options;
	char *source_conninfo;
	char *target_conninfo;
	char *snapshot_name;
	char *publication_name;
	char **table_patterns;
	char *dump_path;

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mutex;
	pthread_cond_t cond;

	CopyTable *tables;
	int ntables;
	CopyUnit *units;
	int nunits;
	int next_unit;               /* under mutex */
	CopyWorker *workers;
	int nworkers;

	atomic_bool stop;
	atomic_uint_fast64_t rows_done;
	atomic_uint_fast64_t bytes_done;
	atomic_int tables_done;
	uint64_t rows_estimated;
	uint64_t bytes_estimated;
	struct timespec started;
	/* under mutex */
	const char *step;
	bool snapshot_imported;
	bool finished;
	bool failed;
	char error[512];
};

static void
copy_fail(Copy *copy, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
copy_fail(Copy *copy, const char *fmt, ...)
{
	va_list args;

	pthread_mutex_lock(&copy->mutex);
	if (!copy->failed)
	{
		va_start(args, fmt);
		vsnprintf(copy->error, sizeof(copy->error), fmt, args);
		va_end(args);
		copy->failed = true;
	}
	atomic_store(&copy->stop, true);
	pthread_cond_broadcast(&copy->cond);
	pthread_mutex_unlock(&copy->mutex);
}

static void
copy_set_step(Copy *copy, const char *step)
{
	pthread_mutex_lock(&copy->mutex);
	copy->step = step;
	pthread_mutex_unlock(&copy->mutex);
	log_info("copy: %s", step);
}

/* ---- running pg_dump / pg_restore ------------------------------------------------------- */

/*
 * The password travels in the child's environment, never on its command line where any
 * local user could read it.
 */
static bool
copy_split_password(const char *conninfo, char **without, char **password)
{
	PQconninfoOption *options = NULL;
	char *errmsg = NULL;

	*password = NULL;
	*without = conninfo_redact(conninfo);
	options = PQconninfoParse(conninfo, &errmsg);
	if (options == NULL || *without == NULL)
	{
		PQfreemem(errmsg);
		PQconninfoFree(options);
		return false;
	}
	for (PQconninfoOption *opt = options; opt->keyword != NULL; opt++)
		if (strcmp(opt->keyword, "password") == 0 && opt->val != NULL && opt->val[0])
			*password = strdup(opt->val);
	PQconninfoFree(options);
	return true;
}

static const char *
copy_pg_bindir(void)
{
	const char *dir = getenv("SWITCHYARD_PG_BINDIR");

	if (dir != NULL && dir[0])
		return dir;
	if (access("/usr/lib/postgresql/15/bin/pg_dump", X_OK) == 0)
		return "/usr/lib/postgresql/15/bin";
	return NULL;
}

/* Runs a PostgreSQL client program; its stderr goes to a log file whose tail is logged on failure. */
static bool
copy_run_program(Copy *copy, const char *program, char **args, const char *conninfo, const char *what)
{
	char path[1024];
	char log_path[1024];
	char *dsn = NULL;
	char *password = NULL;
	const char *bindir = copy_pg_bindir();
	char *argv[64];
	int argc = 0;
	pid_t pid;
	int status = 0;
	bool ok = false;

	if (!copy_split_password(conninfo, &dsn, &password))
	{
		copy_fail(copy, "could not parse the %s connection string", what);
		return false;
	}
	if (bindir != NULL)
		snprintf(path, sizeof(path), "%s/%s", bindir, program);
	else
		snprintf(path, sizeof(path), "%s", program);
	snprintf(log_path, sizeof(log_path), "%s/%s.log", copy->options.work_dir, program);
	argv[argc++] = path;
	for (int i = 0; args[i] != NULL && argc < 60; i++)
		argv[argc++] = args[i];
	argv[argc++] = "-d";
	argv[argc++] = dsn;
	argv[argc] = NULL;

	pid = fork();
	if (pid < 0)
	{
		copy_fail(copy, "could not start %s: %s", program, strerror(errno));
		goto cleanup;
	}
	if (pid == 0)
	{
		int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd >= 0)
		{
			dup2(fd, STDERR_FILENO);
			dup2(fd, STDOUT_FILENO);
		}
		if (password != NULL)
			setenv("PGPASSWORD", password, 1);
		/* the target guard knows the agent's sessions by this name */
		setenv("PGAPPNAME", "switchyard-restore", 1);
		execvp(path, argv);
		fprintf(stderr, "could not run %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		ok = true;
	else
	{
		char line[512] = "";
		char last[512] = "";
		FILE *log = fopen(log_path, "r");

		/* the last error line of the program's output names the object */
		while (log != NULL && fgets(line, sizeof(line), log) != NULL)
			if (strstr(line, "error") != NULL || strstr(line, "ERROR") != NULL || last[0] == '\0')
				snprintf(last, sizeof(last), "%s", line);
		if (log != NULL)
			fclose(log);
		last[strcspn(last, "\n")] = '\0';
		copy_fail(copy, "%s failed on the %s: %s", program, what, last[0] ? last : "see its log");
		log_error("%s failed on the %s: %s", program, what, last[0] ? last : "no output");
		log_detail("full output in \"%s\"", log_path);
	}
cleanup:
	free(dsn);
	free(password);
	return ok;
}

static bool
copy_dump_schema(Copy *copy)
{
	char snapshot_arg[256];
	char file_arg[1100];
	char *args[] = {"--schema-only", "--format=custom", "--no-publications", "--no-subscriptions",
					snapshot_arg, file_arg, NULL};

	snprintf(snapshot_arg, sizeof(snapshot_arg), "--snapshot=%s", copy->snapshot_name);
	snprintf(file_arg, sizeof(file_arg), "--file=%s", copy->dump_path);
	return copy_run_program(copy, "pg_dump", args, copy->source_conninfo, "source");
}

static bool
copy_restore_section(Copy *copy, const char *section, int jobs)
{
	char section_arg[64];
	char jobs_arg[32];
	char *args[] = {section_arg, jobs_arg, "--exit-on-error", copy->dump_path, NULL, NULL, NULL};

	if (copy->options.clean_schema && strcmp(section, "pre-data") == 0)
	{
		/* what an interrupted copy created is dropped and made again, in dependency order */
		args[3] = "--clean";
		args[4] = "--if-exists";
		args[5] = copy->dump_path;
	}

	snprintf(section_arg, sizeof(section_arg), "--section=%s", section);
	snprintf(jobs_arg, sizeof(jobs_arg), "--jobs=%d", jobs > 0 ? jobs : 1);
	return copy_run_program(copy, "pg_restore", args, copy->target_conninfo, "target");
}

/* ---- planning ------------------------------------------------------------------------- */

#define COPY_TABLES_SQL \
	"SELECT format('%I.%I', n.nspname, c.relname), " \
	"       (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a " \
	"         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), " \
	"       pg_relation_size(c.oid), greatest(c.reltuples, 0)::bigint, " \
	"       current_setting('block_size')::bigint " \
	"FROM pg_publication_tables p " \
	"JOIN pg_namespace n ON n.nspname = p.schemaname " \
	"JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename " \
	"WHERE p.pubname = $1 AND c.relkind = 'r' " \
	"ORDER BY pg_relation_size(c.oid) DESC"

static int
copy_unit_compare(const void *a, const void *b)
{
	const CopyUnit *ua = a;
	const CopyUnit *ub = b;

	return ua->bytes < ub->bytes ? 1 : ua->bytes > ub->bytes ? -1 : 0;
}

static bool
copy_plan(Copy *copy, PGconn *source)
{
	const char *params[1] = {copy->publication_name};
	PGresult *res = PQexecParams(source, COPY_TABLES_SQL, 1, NULL, params, NULL, NULL, 0);
	uint64_t split = copy->options.split_bytes ? copy->options.split_bytes : COPY_DEFAULT_SPLIT_BYTES;
	int cap_units;
	bool ok = false;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		copy_fail(copy, "could not list the tables to copy: %s", conninfo_result_error(res));
		goto cleanup;
	}
	copy->ntables = PQntuples(res);
	copy->tables = calloc((size_t) copy->ntables + 1, sizeof(CopyTable));
	cap_units = copy->ntables * 2 + 16;
	copy->units = calloc((size_t) cap_units, sizeof(CopyUnit));
	if (copy->tables == NULL || copy->units == NULL)
		goto cleanup;
	for (int i = 0; i < copy->ntables; i++)
	{
		CopyTable *table = &copy->tables[i];
		uint64_t block_size = strtoull(PQgetvalue(res, i, 4), NULL, 10);
		int64_t blocks;
		int chunks = 1;

		table->qualified = strdup(PQgetvalue(res, i, 0));
		table->columns = strdup(PQgetvalue(res, i, 1));
		table->bytes = strtoull(PQgetvalue(res, i, 2), NULL, 10);
		table->rows_estimated = strtoull(PQgetvalue(res, i, 3), NULL, 10);
		if (table->qualified == NULL || table->columns == NULL)
			goto cleanup;
		copy->rows_estimated += table->rows_estimated;
		copy->bytes_estimated += table->bytes;
		blocks = block_size > 0 ? (int64_t) (table->bytes / block_size) : 0;
		/* big tables: enough ranges for every job, ranges no bigger than split */
		if (table->bytes >= COPY_MIN_SPLIT_BYTES * 2)
		{
			uint64_t by_size = (table->bytes + split - 1) / split;
			uint64_t by_jobs = (uint64_t) copy->nworkers * 2;

			chunks = (int) (by_size > by_jobs ? by_size : by_jobs);
			if (chunks > COPY_MAX_CHUNKS)
				chunks = COPY_MAX_CHUNKS;
			if (chunks > blocks)
				chunks = blocks > 0 ? (int) blocks : 1;
		}
		if (copy->nunits + chunks > cap_units)
		{
			CopyUnit *bigger;

			cap_units = (copy->nunits + chunks) * 2;
			bigger = realloc(copy->units, (size_t) cap_units * sizeof(CopyUnit));
			if (bigger == NULL)
				goto cleanup;
			copy->units = bigger;
		}
		atomic_store(&table->units_left, chunks);
		for (int c = 0; c < chunks; c++)
		{
			CopyUnit *unit = &copy->units[copy->nunits++];

			unit->table = table;
			unit->bytes = table->bytes / (uint64_t) chunks;
			if (chunks == 1)
			{
				unit->first_block = -1;
				unit->end_block = -1;
			}
			else
			{
				unit->first_block = blocks * c / chunks;
				/* the last range is open-ended: the table may hold more pages than measured */
				unit->end_block = c == chunks - 1 ? -1 : blocks * (c + 1) / chunks;
			}
		}
	}
	qsort(copy->units, (size_t) copy->nunits, sizeof(CopyUnit), copy_unit_compare);
	log_info("copy: %d tables, %.1f MB, about %llu rows, in %d streams on %d jobs", copy->ntables,
			 (double) copy->bytes_estimated / 1e6, (unsigned long long) copy->rows_estimated, copy->nunits,
			 copy->nworkers);
	ok = true;
cleanup:
	if (!ok && !copy->failed)
		copy_fail(copy, "out of memory while planning the copy");
	PQclear(res);
	return ok;
}

/* ---- workers -------------------------------------------------------------------------- */

static bool
copy_exec(PGconn *conn, const char *sql, const char *what, Copy *copy)
{
	PGresult *res = PQexec(conn, sql);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
	{
		log_error("could not %s: %s", what, conninfo_result_error(res));
		copy_fail(copy, "could not %s: %s", what, conninfo_result_error(res));
	}
	PQclear(res);
	return ok;
}

static bool
copy_worker_connect(CopyWorker *worker)
{
	Copy *copy = worker->copy;
	char sql[512];
	char role[32];
	char *literal = NULL;
	bool ok = false;

	snprintf(role, sizeof(role), "copy-%d", worker->index);
	worker->source = conninfo_connect(copy->source_conninfo, CONN_NORMAL, role, "source");
	worker->target = conninfo_connect(copy->target_conninfo, CONN_NORMAL, role, "target");
	if (worker->source == NULL || worker->target == NULL)
	{
		copy_fail(copy, "a copy worker could not connect");
		return false;
	}
	literal = PQescapeLiteral(worker->source, copy->snapshot_name, strlen(copy->snapshot_name));
	if (literal == NULL)
		goto cleanup;
	snprintf(sql, sizeof(sql), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT %s",
			 literal);
	if (!copy_exec(worker->source, sql, "import the copy snapshot on the source", copy))
		goto cleanup;
	/* target triggers and FK checks stay quiet; each range is re-copied whole after a crash */
	if (!copy_exec(worker->target, "SET session_replication_role = replica; SET synchronous_commit = off",
				   "prepare the target session", copy))
		goto cleanup;
	ok = true;
cleanup:
	PQfreemem(literal);
	return ok;
}

static bool
copy_unit(CopyWorker *worker, const CopyUnit *unit)
{
	Copy *copy = worker->copy;
	CopyTable *table = unit->table;
	size_t sqlcap = strlen(table->qualified) * 2 + strlen(table->columns) * 2 + 256;
	char *source_sql = malloc(sqlcap);
	char *target_sql = malloc(sqlcap);
	PGresult *res = NULL;
	char *buf = NULL;
	int n;
	bool ok = false;

	if (source_sql == NULL || target_sql == NULL)
		goto cleanup;
	if (unit->first_block < 0)
		snprintf(source_sql, sqlcap, "COPY (SELECT %s FROM ONLY %s) TO STDOUT (FORMAT binary)",
				 table->columns, table->qualified);
	else if (unit->end_block < 0)
		snprintf(source_sql, sqlcap,
				 "COPY (SELECT %s FROM ONLY %s WHERE ctid >= '(%lld,0)'::tid) TO STDOUT (FORMAT binary)",
				 table->columns, table->qualified, (long long) unit->first_block);
	else
		snprintf(source_sql, sqlcap,
				 "COPY (SELECT %s FROM ONLY %s WHERE ctid >= '(%lld,0)'::tid AND ctid < '(%lld,0)'::tid) "
				 "TO STDOUT (FORMAT binary)",
				 table->columns, table->qualified, (long long) unit->first_block, (long long) unit->end_block);
	snprintf(target_sql, sqlcap, "COPY %s (%s) FROM STDIN (FORMAT binary)", table->qualified, table->columns);

	res = PQexec(worker->target, target_sql);
	if (PQresultStatus(res) != PGRES_COPY_IN)
	{
		log_error("could not start copying into %s on the target: %s", table->qualified, conninfo_result_error(res));
		copy_fail(copy, "could not copy into %s: %s", table->qualified, conninfo_result_error(res));
		goto cleanup;
	}
	PQclear(res);
	res = PQexec(worker->source, source_sql);
	if (PQresultStatus(res) != PGRES_COPY_OUT)
	{
		log_error("could not read table %s on the source: %s", table->qualified, conninfo_result_error(res));
		copy_fail(copy, "could not read %s: %s", table->qualified, conninfo_result_error(res));
		PQputCopyEnd(worker->target, "source failed");
		goto cleanup;
	}
	PQclear(res);
	res = NULL;
	while ((n = PQgetCopyData(worker->source, &buf, 0)) > 0)
	{
		if (PQputCopyData(worker->target, buf, n) != 1)
		{
			PQfreemem(buf);
			copy_fail(copy, "could not send data of %s to the target: %s", table->qualified,
					  conninfo_error(worker->target));
			goto cleanup;
		}
		PQfreemem(buf);
		atomic_fetch_add(&copy->bytes_done, (uint64_t) n);
		if (atomic_load(&copy->stop))
		{
			PQputCopyEnd(worker->target, "copy stopped");
			goto cleanup;
		}
	}
	res = PQgetResult(worker->source);
	if (n != -1 || PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		log_error("could not read table %s on the source: %s", table->qualified,
				  res != NULL ? conninfo_result_error(res) : conninfo_error(worker->source));
		copy_fail(copy, "could not read %s", table->qualified);
		PQputCopyEnd(worker->target, "source failed");
		goto cleanup;
	}
	PQclear(res);
	while ((res = PQgetResult(worker->source)) != NULL)
		PQclear(res);
	if (PQputCopyEnd(worker->target, NULL) != 1)
	{
		copy_fail(copy, "could not finish copying %s: %s", table->qualified, conninfo_error(worker->target));
		goto cleanup;
	}
	res = PQgetResult(worker->target);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		log_error("could not copy table %s into the target: %s", table->qualified, conninfo_result_error(res));
		copy_fail(copy, "could not copy %s: %s", table->qualified, conninfo_result_error(res));
		goto cleanup;
	}
	atomic_fetch_add(&copy->rows_done, strtoull(PQcmdTuples(res), NULL, 10));
	if (atomic_fetch_sub(&table->units_left, 1) == 1)
	{
		atomic_fetch_add(&copy->tables_done, 1);
		log_debug("copy: table %s done", table->qualified);
	}
	ok = true;
cleanup:
	PQclear(res);
	if (worker->target != NULL)
		while ((res = PQgetResult(worker->target)) != NULL)
			PQclear(res);
	free(source_sql);
	free(target_sql);
	return ok;
}

static void *
copy_worker_main(void *arg)
{
	CopyWorker *worker = arg;
	Copy *copy = worker->copy;
	char name[16];

	snprintf(name, sizeof(name), "copy-%d", worker->index);
	log_set_thread_name(name);
	while (!atomic_load(&copy->stop))
	{
		const CopyUnit *unit = NULL;

		pthread_mutex_lock(&copy->mutex);
		if (copy->next_unit < copy->nunits)
			unit = &copy->units[copy->next_unit++];
		pthread_mutex_unlock(&copy->mutex);
		if (unit == NULL || !copy_unit(worker, unit))
			break;
	}
	return NULL;
}

/* ---- sequences ------------------------------------------------------------------------ */

static bool
copy_sequences(Copy *copy, PGconn *source, PGconn *target)
{
	PGresult *res = PQexec(source,
						   "SELECT format('%I.%I', schemaname, sequencename), last_value::text "
						   "FROM pg_sequences WHERE last_value IS NOT NULL");
	int count = 0;
	bool ok = false;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		copy_fail(copy, "could not read the source sequences: %s", conninfo_result_error(res));
		goto cleanup;
	}
	for (int i = 0; i < PQntuples(res); i++)
	{
		const char *params[2] = {PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)};
		PGresult *set = PQexecParams(target,
									 "SELECT setval(to_regclass($1), $2::bigint, true) WHERE to_regclass($1) IS NOT NULL",
									 2, NULL, params, NULL, NULL, 0);

		if (PQresultStatus(set) != PGRES_TUPLES_OK)
		{
			log_error("could not set sequence %s on the target: %s", params[0], conninfo_result_error(set));
			copy_fail(copy, "could not set sequence %s", params[0]);
			PQclear(set);
			goto cleanup;
		}
		count += PQntuples(set);
		PQclear(set);
	}
	log_info("copy: set %d sequences on the target", count);
	ok = true;
cleanup:
	PQclear(res);
	return ok;
}

/* ---- coordinator ---------------------------------------------------------------------- */

static void
copy_mark_imported(Copy *copy)
{
	pthread_mutex_lock(&copy->mutex);
	copy->snapshot_imported = true;
	pthread_cond_broadcast(&copy->cond);
	pthread_mutex_unlock(&copy->mutex);
}

static void *
copy_main(void *arg)
{
	Copy *copy = arg;
	PGconn *source = NULL;
	PGconn *target = NULL;
	bool ok = false;

	log_set_thread_name("copy");
	if (copy->options.restore_schema)
	{
		copy_set_step(copy, "schema");
		if (!copy_dump_schema(copy))
			goto done;
	}
	copy_set_step(copy, "data");
	for (int i = 0; i < copy->nworkers; i++)
		if (!copy_worker_connect(&copy->workers[i]))
			goto done;
	/* planning inside the snapshot too: worker 0's session */
	if (!copy_plan(copy, copy->workers[0].source))
		goto done;
	copy_mark_imported(copy);
	if (copy->options.restore_schema && !copy_restore_section(copy, "pre-data", 1))
		goto done;
	for (int i = 0; i < copy->nworkers; i++)
	{
		if (pthread_create(&copy->workers[i].thread, NULL, copy_worker_main, &copy->workers[i]) != 0)
		{
			copy_fail(copy, "could not start a copy worker thread");
			goto done;
		}
		copy->workers[i].started = true;
	}
	for (int i = 0; i < copy->nworkers; i++)
		if (copy->workers[i].started)
		{
			pthread_join(copy->workers[i].thread, NULL);
			copy->workers[i].started = false;
		}
	if (atomic_load(&copy->stop))
		goto done;
	/* the snapshot is no longer needed: let the source's vacuum go on */
	for (int i = 0; i < copy->nworkers; i++)
	{
		PQfinish(copy->workers[i].source);
		copy->workers[i].source = NULL;
		PQfinish(copy->workers[i].target);
		copy->workers[i].target = NULL;
	}
	if (copy->options.restore_schema)
	{
		copy_set_step(copy, "indexes");
		if (!copy_restore_section(copy, "post-data", copy->nworkers))
			goto done;
	}
	copy_set_step(copy, "sequences");
	source = conninfo_connect(copy->source_conninfo, CONN_NORMAL, "copy", "source");
	target = conninfo_connect(copy->target_conninfo, CONN_NORMAL, "copy", "target");
	if (source == NULL || target == NULL)
	{
		copy_fail(copy, "could not connect to set the sequences");
		goto done;
	}
	if (!copy_sequences(copy, source, target))
		goto done;
	ok = true;
done:
	if (source != NULL)
		PQfinish(source);
	if (target != NULL)
		PQfinish(target);
	pthread_mutex_lock(&copy->mutex);
	if (!ok && !copy->failed)
	{
		copy->failed = true;
		snprintf(copy->error, sizeof(copy->error), "%s", atomic_load(&copy->stop) ? "copy stopped" : "copy failed");
	}
	copy->step = ok ? "done" : copy->step;
	copy->finished = true;
	pthread_cond_broadcast(&copy->cond);
	pthread_mutex_unlock(&copy->mutex);
	if (ok)
	{
		CopyProgress progress;

		copy_get_progress(copy, &progress);
		log_info("copy: done, %llu rows, %.1f MB in %.1f s", (unsigned long long) progress.rows_done,
				 (double) progress.bytes_done / 1e6, progress.elapsed_seconds);
	}
	return NULL;
}

static char **
copy_strv_dup(char *const *strv)
{
	size_t n = 0;
	char **out;

	if (strv == NULL)
		return NULL;
	while (strv[n] != NULL)
		n++;
	out = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; out != NULL && i < n; i++)
		out[i] = strdup(strv[i]);
	return out;
}

bool
copy_start(const CopyOptions *options, Copy **out)
{
	Copy *copy = calloc(1, sizeof(*copy));
	size_t len;

	*out = NULL;
	if (copy == NULL)
		return false;
	copy->options = *options;
	copy->options.work_dir = strdup(options->work_dir);
	copy->options.table_patterns = NULL;
	copy->source_conninfo = strdup(options->source_conninfo);
	copy->target_conninfo = strdup(options->target_conninfo);
	copy->snapshot_name = strdup(options->snapshot_name);
	copy->publication_name = strdup(options->publication_name);
	copy->table_patterns = copy_strv_dup(options->table_patterns);
	len = strlen(options->work_dir) + 32;
	copy->dump_path = malloc(len);
	copy->nworkers = options->jobs > 0 ? options->jobs : 2;
	copy->workers = calloc((size_t) copy->nworkers, sizeof(CopyWorker));
	if (copy->options.work_dir == NULL || copy->source_conninfo == NULL || copy->target_conninfo == NULL ||
		copy->snapshot_name == NULL ||
		copy->publication_name == NULL || copy->dump_path == NULL || copy->workers == NULL)
	{
		copy_free(copy);
		return false;
	}
	snprintf(copy->dump_path, len, "%s/schema.dump", options->work_dir);
	for (int i = 0; i < copy->nworkers; i++)
	{
		copy->workers[i].copy = copy;
		copy->workers[i].index = i + 1;
	}
	copy->step = "starting";
	pthread_mutex_init(&copy->mutex, NULL);
	pthread_cond_init(&copy->cond, NULL);
	clock_gettime(CLOCK_MONOTONIC, &copy->started);
	if (pthread_create(&copy->thread, NULL, copy_main, copy) != 0)
	{
		log_error("could not start the copy thread");
		copy_free(copy);
		return false;
	}
	copy->thread_started = true;
	*out = copy;
	return true;
}

bool
copy_wait_snapshot_imported(Copy *copy)
{
	bool ok;

	pthread_mutex_lock(&copy->mutex);
	while (!copy->snapshot_imported && !copy->finished)
		pthread_cond_wait(&copy->cond, &copy->mutex);
	ok = copy->snapshot_imported;
	pthread_mutex_unlock(&copy->mutex);
	return ok;
}

void
copy_get_progress(Copy *copy, CopyProgress *out)
{
	struct timespec now;

	memset(out, 0, sizeof(*out));
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&copy->mutex);
	out->step = copy->step;
	out->snapshot_imported = copy->snapshot_imported;
	out->finished = copy->finished;
	out->failed = copy->failed;
	snprintf(out->error, sizeof(out->error), "%s", copy->error);
	out->tables_total = copy->ntables;
	out->rows_estimated = copy->rows_estimated;
	out->bytes_estimated = copy->bytes_estimated;
	pthread_mutex_unlock(&copy->mutex);
	out->tables_done = atomic_load(&copy->tables_done);
	out->rows_done = atomic_load(&copy->rows_done);
	out->bytes_done = atomic_load(&copy->bytes_done);
	out->elapsed_seconds = (double) (now.tv_sec - copy->started.tv_sec) +
		(double) (now.tv_nsec - copy->started.tv_nsec) / 1e9;
}

void
copy_request_stop(Copy *copy)
{
	if (copy != NULL)
		atomic_store(&copy->stop, true);
}

void
copy_free(Copy *copy)
{
	if (copy == NULL)
		return;
	if (copy->thread_started)
		pthread_join(copy->thread, NULL);
	for (int i = 0; copy->workers != NULL && i < copy->nworkers; i++)
	{
		if (copy->workers[i].source != NULL)
			PQfinish(copy->workers[i].source);
		if (copy->workers[i].target != NULL)
			PQfinish(copy->workers[i].target);
	}
	for (int i = 0; copy->tables != NULL && i < copy->ntables; i++)
	{
		free(copy->tables[i].qualified);
		free(copy->tables[i].columns);
	}
	for (int i = 0; copy->table_patterns != NULL && copy->table_patterns[i] != NULL; i++)
		free(copy->table_patterns[i]);
	free(copy->table_patterns);
	free(copy->tables);
	free(copy->units);
	free(copy->workers);
	free(copy->source_conninfo);
	free(copy->target_conninfo);
	free(copy->snapshot_name);
	free(copy->publication_name);
	free(copy->dump_path);
	free((char *) copy->options.work_dir);
	if (copy->thread_started)
	{
		pthread_mutex_destroy(&copy->mutex);
		pthread_cond_destroy(&copy->cond);
	}
	free(copy);
}

/* ---- the target before the copy ------------------------------------------------------- */

void
copy_strv_free(char **strv)
{
	for (size_t i = 0; strv != NULL && strv[i] != NULL; i++)
		free(strv[i]);
	free(strv);
}

static bool
copy_strv_push(char ***strv, size_t *n, const char *value)
{
	char **bigger = realloc(*strv, (*n + 2) * sizeof(char *));

	if (bigger == NULL)
		return false;
	*strv = bigger;
	bigger[*n] = strdup(value);
	if (bigger[*n] == NULL)
		return false;
	bigger[++(*n)] = NULL;
	return true;
}

bool
copy_inspect_target(PGconn *source, PGconn *target, char *const *table_patterns,
					CopyTargetSchema *schema, char ***nonempty, char ***missing)
{
	char *patterns = source_patterns_param(table_patterns);
	const char *params[1] = {patterns};
	PGresult *tables = NULL;
	size_t nnonempty = 0;
	size_t nmissing = 0;
	int present = 0;
	bool ok = false;

	*nonempty = NULL;
	*missing = NULL;
	tables = PQexecParams(source,
						  "SELECT format('%I.%I', n.nspname, c.relname) "
						  "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
						  "WHERE " SOURCE_TABLE_FILTER_SQL " ORDER BY 1",
						  1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(tables) != PGRES_TUPLES_OK)
	{
		log_error("could not list the published tables: %s", conninfo_result_error(tables));
		goto cleanup;
	}
	for (int i = 0; i < PQntuples(tables); i++)
	{
		const char *name = PQgetvalue(tables, i, 0);
		const char *p[1] = {name};
		PGresult *res = PQexecParams(target, "SELECT to_regclass($1) IS NOT NULL", 1, NULL, p, NULL, NULL, 0);
		bool exists;

		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			log_error("could not look up table %s on the target: %s", name, conninfo_result_error(res));
			PQclear(res);
			goto cleanup;
		}
		exists = PQgetvalue(res, 0, 0)[0] == 't';
		PQclear(res);
		if (!exists)
		{
			if (!copy_strv_push(missing, &nmissing, name))
				goto cleanup;
			continue;
		}
		present++;
		{
			/* the name comes from format('%I.%I'): already quoted */
			size_t len = strlen(name) + 64;
			char *sql = malloc(len);

			if (sql == NULL)
				goto cleanup;
			snprintf(sql, len, "SELECT EXISTS (SELECT 1 FROM ONLY %s)", name);
			res = PQexec(target, sql);
			free(sql);
		}
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			log_error("could not read table %s on the target: %s", name, conninfo_result_error(res));
			PQclear(res);
			goto cleanup;
		}
		if (PQgetvalue(res, 0, 0)[0] == 't' && !copy_strv_push(nonempty, &nnonempty, name))
		{
			PQclear(res);
			goto cleanup;
		}
		PQclear(res);
	}
	*schema = present == 0 ? COPY_TARGET_EMPTY
		: present == PQntuples(tables) ? COPY_TARGET_COMPLETE : COPY_TARGET_PARTIAL;
	ok = true;
cleanup:
	PQclear(tables);
	free(patterns);
	if (!ok)
	{
		copy_strv_free(*nonempty);
		copy_strv_free(*missing);
		*nonempty = NULL;
		*missing = NULL;
	}
	return ok;
}

bool
copy_truncate_target(PGconn *target, char *const *tables)
{
	size_t len = 64;
	char *sql;
	PGresult *res;
	bool ok;

	if (tables == NULL || tables[0] == NULL)
		return true;
	for (size_t i = 0; tables[i] != NULL; i++)
		len += strlen(tables[i]) + 2;
	sql = malloc(len);
	if (sql == NULL)
		return false;
	strcpy(sql, "TRUNCATE ");
	for (size_t i = 0; tables[i] != NULL; i++)
	{
		if (i > 0)
			strcat(sql, ", ");
		strcat(sql, tables[i]);
	}
	res = PQexec(target, sql);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		log_error("could not truncate the target tables: %s", conninfo_result_error(res));
	PQclear(res);
	free(sql);
	return ok;
}
