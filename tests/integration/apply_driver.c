/*
 * Test driver for the applier. "capture" reads a source slot through
 * pg_logical_slot_get_binary_changes (pgoutput, streaming on) into a spool the way the
 * receiver does; "apply" runs the real applier on that spool until it reaches endpos.
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "switchyard/apply.h"
#include "switchyard/log.h"
#include "switchyard/lsn.h"
#include "switchyard/pgoutput.h"
#include "switchyard/spool.h"

static const char *
arg_value(int argc, char **argv, const char *name, const char *fallback)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return i + 1 < argc ? argv[i + 1] : "";
	return fallback;
}

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t
get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Relation messages seen inside open streams, main-stream form, until their stream ends. */
typedef struct CapturedRelation
{
	uint32_t top_xid;
	uint8_t *plain;
	size_t len;
} CapturedRelation;

static CapturedRelation *captured_relations;
static size_t n_captured_relations;

static bool
capture_stream_relation(uint32_t top_xid, const uint8_t *plain, size_t len)
{
	CapturedRelation *grown = realloc(captured_relations,
									  (n_captured_relations + 1) * sizeof(*captured_relations));
	uint8_t *copy = malloc(len);

	if (grown == NULL || copy == NULL)
	{
		free(copy);
		if (grown != NULL)
			captured_relations = grown;
		return false;
	}
	captured_relations = grown;
	memcpy(copy, plain, len);
	captured_relations[n_captured_relations++] = (CapturedRelation) {top_xid, copy, len};
	return true;
}

/* The stream ended: at a commit its Relation messages go into the main spool, as the receiver's do. */
static bool
capture_stream_end(Spool *spool, uint32_t top_xid, Lsn lsn, bool committed)
{
	size_t kept = 0;
	bool ok = true;

	for (size_t i = 0; i < n_captured_relations; i++)
	{
		CapturedRelation *r = &captured_relations[i];

		if (r->top_xid != top_xid)
		{
			captured_relations[kept++] = *r;
			continue;
		}
		if (committed && ok)
			ok = spool_append(spool, SPOOL_CHANGE, lsn, r->plain, r->len, 0);
		free(r->plain);
	}
	n_captured_relations = kept;
	return ok;
}

/* Routes one pgoutput message to the spool like the receiver does. */
static int
capture_message(Spool *spool, PgoutputScratch *scratch, Lsn lsn, const uint8_t *data, size_t len,
				bool *in_stream, uint32_t *stream_xid, Lsn *last_end)
{
	PgoutputMessage m;
	char err[256];
	bool streamed_data = *in_stream && strchr("RYIUDTM", data[0]) != NULL;

	if (!pgoutput_decode(data, len, streamed_data, PGOUTPUT_DECODE_ENVELOPE, scratch, &m, err,
						 sizeof(err)))
	{
		fprintf(stderr, "decode failed: %s\n", err);
		return -1;
	}
	switch (m.kind)
	{
		case PGOUTPUT_STREAM_START:
			*in_stream = true;
			*stream_xid = m.xid;
			return 0;
		case PGOUTPUT_STREAM_STOP:
			*in_stream = false;
			return 0;
		case PGOUTPUT_STREAM_ABORT:
			if (m.stream_abort.subxid == m.xid)
				capture_stream_end(spool, m.xid, lsn, false);
			return spool_stream_abort(spool, m.xid, m.stream_abort.subxid) ? 0 : -1;
		case PGOUTPUT_STREAM_COMMIT:
			*last_end = m.commit.end_lsn;
			if (!capture_stream_end(spool, m.xid, lsn, true))
				return -1;
			return spool_stream_commit(spool, m.xid, m.commit.end_lsn, data, len) ? 0 : -1;
		default:
			break;
	}
	if (streamed_data)
	{
		if (m.kind == PGOUTPUT_RELATION)
		{
			/* the segment preamble holds main-stream form: the message without its [xid] */
			uint8_t *plain = malloc(len - 4);

			if (plain == NULL)
				return -1;
			plain[0] = data[0];
			memcpy(plain + 1, data + 5, len - 5);
			if (!spool_remember_relation(spool, m.relation.relid, plain, len - 4) ||
				!capture_stream_relation(*stream_xid, plain, len - 4))
			{
				free(plain);
				return -1;
			}
			free(plain);
		}
		return spool_stream_append(spool, *stream_xid, m.xid, lsn, data, len) ? 0 : -1;
	}
	if (m.kind == PGOUTPUT_RELATION &&
		!spool_remember_relation(spool, m.relation.relid, data, len))
		return -1;
	if (m.kind == PGOUTPUT_COMMIT)
	{
		*last_end = m.commit.end_lsn;
		return spool_append(spool, SPOOL_CHANGE, lsn, data, len, m.commit.end_lsn) ? 0 : -1;
	}
	return spool_append(spool, SPOOL_CHANGE, lsn, data, len, 0) ? 0 : -1;
}

static int
run_capture(int argc, char **argv)
{
	const char *source = arg_value(argc, argv, "--source", NULL);
	const char *slot = arg_value(argc, argv, "--slot", "sy_test");
	const char *publication = arg_value(argc, argv, "--publication", "pub");
	SpoolOptions options = {.dir = arg_value(argc, argv, "--spool", NULL)};
	const char *segment = arg_value(argc, argv, "--segment-bytes", NULL);
	const char *params[2] = {slot, publication};
	int formats[2] = {0, 0};
	PGconn *conn = NULL;
	PGresult *res;
	Spool *spool = NULL;
	PgoutputScratch *scratch = pgoutput_scratch_new();
	bool in_stream = false;
	uint32_t stream_xid = 0;
	Lsn last_end = 0;
	Lsn progress = 0;
	uint64_t messages = 0;
	char lsnbuf[LSN_FORMAT_SIZE];
	int status = 1;

	if (source == NULL || options.dir == NULL)
	{
		fprintf(stderr, "usage: apply_driver capture --source CONNINFO --spool DIR [--slot S] [--publication P] [--peek]\n");
		return 2;
	}
	if (segment != NULL)
		options.segment_bytes = strtoull(segment, NULL, 10);
	if (!spool_open(&options, &spool))
		goto cleanup;
	conn = PQconnectdb(source);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "source: %s", PQerrorMessage(conn));
		goto cleanup;
	}
	/* decoding reads only flushed WAL: flush what asynchronous commits left behind */
	res = PQexec(conn, "SET synchronous_commit = on; "
				 "SELECT pg_catalog.pg_logical_emit_message(true, 'switchyard-test', 'flush')");
	PQclear(res);
	/* binary results: lsn as Int64, data as raw bytes */
	/* --peek leaves the changes in the slot: the next capture spools them again, like a
	 * source that resends after its crash */
	if (!PQsendQueryParams(conn,
						   arg_value(argc, argv, "--peek", NULL) != NULL
						   ? "SELECT lsn, data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, "
						   "'proto_version', '2', 'publication_names', $2, 'streaming', 'on')"
						   : "SELECT lsn, data FROM pg_logical_slot_get_binary_changes($1, NULL, NULL, "
						   "'proto_version', '2', 'publication_names', $2, 'streaming', 'on')",
						   2, NULL, params, NULL, formats, 1) ||
		!PQsetSingleRowMode(conn))
	{
		fprintf(stderr, "source: %s", PQerrorMessage(conn));
		goto cleanup;
	}
	while ((res = PQgetResult(conn)) != NULL)
	{
		if (PQresultStatus(res) == PGRES_SINGLE_TUPLE)
		{
			Lsn lsn = get_be64((const uint8_t *) PQgetvalue(res, 0, 0));

			if (capture_message(spool, scratch, lsn, (const uint8_t *) PQgetvalue(res, 0, 1),
								(size_t) PQgetlength(res, 0, 1), &in_stream, &stream_xid,
								&last_end) != 0)
			{
				PQclear(res);
				goto cleanup;
			}
			messages++;
			/* the receiver syncs often; so does this, so the reader sees it in pieces */
			if (messages % 5000 == 0 && !spool_sync(spool))
			{
				PQclear(res);
				goto cleanup;
			}
		}
		else if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "source: %s", PQresultErrorMessage(res));
			PQclear(res);
			goto cleanup;
		}
		PQclear(res);
	}
	/* a keepalive-style position past the last commit: the slot's confirmed point */
	res = PQexecParams(conn, "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1",
					   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
		lsn_parse(PQgetvalue(res, 0, 0), &progress) && progress > last_end)
	{
		if (!spool_append(spool, SPOOL_PROGRESS, progress, NULL, 0, progress))
		{
			PQclear(res);
			goto cleanup;
		}
	}
	PQclear(res);
	if (!spool_sync(spool))
		goto cleanup;
	printf("messages %" PRIu64 "\n", messages);
	printf("last_commit %s\n", lsn_format(last_end, lsnbuf));
	printf("endpos %s\n", lsn_format(progress > last_end ? progress : last_end, lsnbuf));
	status = 0;

cleanup:
	if (conn != NULL)
		PQfinish(conn);
	spool_close(spool);
	pgoutput_scratch_free(scratch);
	return status;
}

static int
run_apply(int argc, char **argv)
{
	ApplyOptions options = {0};
	SpoolOptions spool_options = {.dir = arg_value(argc, argv, "--spool", NULL)};
	const char *endpos = arg_value(argc, argv, "--endpos", NULL);
	const char *stop_after = arg_value(argc, argv, "--stop-after-ms", NULL);
	Spool *spool = NULL;
	Applier *applier = NULL;
	ApplyStats stats;
	struct rusage usage;
	double started;
	double elapsed;
	char a[LSN_FORMAT_SIZE];
	char d[LSN_FORMAT_SIZE];
	int status = 1;

	options.target_conninfo = arg_value(argc, argv, "--target", NULL);
	options.origin_name = arg_value(argc, argv, "--origin", "switchyard_test");
	options.batch_transactions = atoi(arg_value(argc, argv, "--batch", "0"));
	options.max_retry_seconds = atoi(arg_value(argc, argv, "--max-retry", "2"));
	if (options.target_conninfo == NULL || spool_options.dir == NULL ||
		(endpos != NULL && !lsn_parse(endpos, &options.endpos)))
	{
		fprintf(stderr, "usage: apply_driver apply --target CONNINFO --spool DIR [--endpos LSN] "
				"[--origin NAME] [--batch N] [--stop-after-ms MS]\n");
		return 2;
	}
	if (!spool_open(&spool_options, &spool))
		return 1;
	options.spool = spool;
	started = now_seconds();
	if (!apply_start(&options, &applier))
		goto cleanup;
	for (;;)
	{
		struct timespec step = {0, 5 * 1000 * 1000};

		apply_get_stats(applier, &stats);
		if (stats.stopped)
			break;
		if (stop_after != NULL && (now_seconds() - started) * 1000 >= atof(stop_after))
		{
			apply_request_stop(applier);
			stop_after = NULL;
		}
		nanosleep(&step, NULL);
	}
	elapsed = now_seconds() - started;
	apply_get_stats(applier, &stats);
	getrusage(RUSAGE_SELF, &usage);
	printf("applied_lsn %s\ndurable_lsn %s\ntransactions %" PRIu64 "\nchanges %" PRIu64
		   "\nreached_endpos %d\nfatal %d\nseconds %.3f\nchanges_per_second %.0f\nmax_rss_kb %ld\n"
		   "last_error %s\n",
		   lsn_format(stats.applied_lsn, a), lsn_format(stats.durable_lsn, d), stats.transactions,
		   stats.changes, stats.reached_endpos, stats.fatal, elapsed,
		   elapsed > 0 ? stats.changes / elapsed : 0.0, usage.ru_maxrss, stats.last_error);
	status = stats.fatal ? 1 : 0;
	if (endpos != NULL && !stats.reached_endpos && stop_after == NULL &&
		arg_value(argc, argv, "--stop-after-ms", NULL) == NULL)
		status = 1;

cleanup:
	apply_free(applier);
	spool_close(spool);
	return status;
}

/* Lists the main spool's records: for debugging a failed run. */
static int
run_dump(int argc, char **argv)
{
	SpoolOptions options = {.dir = arg_value(argc, argv, "--spool", NULL)};
	Spool *spool = NULL;
	SpoolReader *reader = NULL;
	SpoolEntry e;
	char a[LSN_FORMAT_SIZE];
	char b[LSN_FORMAT_SIZE];
	int r;

	if (options.dir == NULL || !spool_open(&options, &spool) || !spool_reader_open(spool, &reader))
		return 1;
	while ((r = spool_reader_next(reader, &e, 0)) == 1)
		printf("%" PRIu64 ":%" PRIu64 " kind %d lsn %s boundary %s type %c len %zu xid %u\n",
			   e.position.segment, e.position.offset, (int) e.kind, lsn_format(e.lsn, a),
			   lsn_format(e.boundary, b), e.len ? e.pgoutput[0] : '-', e.len, e.stream_xid);
	spool_reader_free(reader);
	spool_close(spool);
	return r < 0;
}

int
main(int argc, char **argv)
{
	const char *level = getenv("APPLY_DRIVER_LOG_LEVEL");
	LogLevel parsed;

	if (level != NULL && log_parse_level(level, &parsed))
		log_set_level(parsed);
	if (argc >= 2 && strcmp(argv[1], "capture") == 0)
		return run_capture(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "apply") == 0)
		return run_apply(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "dump") == 0)
		return run_dump(argc - 1, argv + 1);
	fprintf(stderr, "usage: apply_driver capture|apply|dump ...\n");
	return 2;
}
