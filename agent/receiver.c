/*
 * The receiver: reads the source's pgoutput stream on the event loop and writes every message
 * to the spool, transactions whole and in commit order, streamed ones into their stream
 * files. It confirms to the source only what the spool has fsync'd (the invariant that makes
 * a crash lose nothing), answers keepalives at once, and reconnects by itself.
 */
#include "switchyard/receiver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event_struct.h>
#include <libpq-fe.h>

#include "switchyard/conninfo.h"
#include "switchyard/exitcode.h"
#include "switchyard/log.h"
#include "switchyard/monotonic.h"
#include "switchyard/pgoutput.h"

/* A connection that lasted this long starts the next retries over at 1 s. */
#define RECEIVER_STABLE_US INT64_C(30000000)
/* How often a receiver waiting for room in a full spool looks again. */
#define RECEIVER_ROOM_CHECK_US 250000

/* A Relation message seen inside a streamed transaction (raw, with its [xid]). */
typedef struct StreamRelation
{
	uint32_t top_xid;
	uint32_t relid;
	uint8_t *message;
	size_t len;
} StreamRelation;

struct Receiver
{
	struct event_base *base;
	char *conninfo;
	char *slot_name;
	char *publication_name;
	Spool *spool;
	int feedback_interval_ms;
	int max_retry_seconds;

	PGconn *conn;
	struct event read_event;
	struct event write_event;
	struct event feedback_timer;
	struct event retry_timer;
	struct event full_timer;
	struct event synced_event;  /* the spool's syncer made more durable */
	bool read_armed;
	int retry_seconds;
	int64_t connected_at_us;
	bool suspended;           /* disconnected while the spool is full (spool_full timer armed) */
	bool over_bound_logged;   /* said once that a full spool takes a transaction larger than it */

	PgoutputScratch *scratch;
	bool in_stream;           /* between Stream Start and Stream Stop */
	uint32_t stream_xid;      /* the top-level xid of the open stream block */
	bool txn_open;            /* inside Begin ... Commit of a non-streamed transaction */
	bool skipping;            /* that transaction is already in the spool (source resent it) */

	StreamRelation *stream_relations;
	size_t n_stream_relations;
	size_t cap_stream_relations;

	Lsn applied_lsn;
	Lsn reported_flush;
	ReceiverStats stats;
};

static void receiver_on_readable(evutil_socket_t fd, short what, void *arg);
static void receiver_on_retry_timer(evutil_socket_t fd, short what, void *arg);
static void receiver_connection_lost(Receiver *receiver, const char *why);
static void receiver_disconnect(Receiver *receiver);

#define RECEIVER_FINAL_HINT \
	"this migration cannot resume from its replication slot: the slot was dropped or " \
	"invalidated (e.g. by max_slot_wal_keep_size), its WAL was removed, or its publication was " \
	"dropped (a slot decodes with the publications of its own past, so a new one does not " \
	"help). Run \"switchyard cleanup\", then start the migration again with its initial copy " \
	"(--truncate-target empties the target's tables first)"

/*
 * Errors of the source that no retry mends: the slot or the publication does not exist
 * (42704), the slot cannot be read any more (55000: invalidated), its WAL is gone (58P01).
 * "Slot in use by another process" (55006) and lost connections are retried.
 */
static bool
receiver_error_is_final(const PGresult *res)
{
	const char *sqlstate = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return sqlstate != NULL && (strcmp(sqlstate, "42704") == 0 || strcmp(sqlstate, "55000") == 0 ||
								strcmp(sqlstate, "58P01") == 0);
}

/* Streaming cannot go on: the agent stops with exit_code (see agent_on_tick). */
static void
receiver_fail(Receiver *receiver, int exit_code, const char *why, const char *hint)
{
	log_error("%s", why);
	log_hint("%s", hint);
	snprintf(receiver->stats.last_error, sizeof(receiver->stats.last_error), "%s", why);
	receiver->stats.fatal = true;
	receiver->stats.exit_code = exit_code;
	if (receiver->conn != NULL)
		receiver_disconnect(receiver);
}

static void
receiver_arm_retry(Receiver *receiver)
{
	struct timeval delay = {receiver->retry_seconds, 0};

	evtimer_add(&receiver->retry_timer, &delay);
}

/* ---- status feedback ------------------------------------------------------------------ */

static void
receiver_flush_output(Receiver *receiver)
{
	int rc = PQflush(receiver->conn);

	if (rc == 1)
		event_add(&receiver->write_event, NULL);
	else if (rc < 0)
		receiver_connection_lost(receiver, conninfo_error(receiver->conn));
}

static void
receiver_on_writable(evutil_socket_t fd, short what, void *arg)
{
	Receiver *receiver = arg;

	if (receiver->conn != NULL)
		receiver_flush_output(receiver);
}

static void
receiver_send_feedback(Receiver *receiver, bool reply_requested)
{
	uint8_t message[STATUS_UPDATE_SIZE];
	Lsn flushed = spool_durable_lsn(receiver->spool);
	Lsn written = receiver->stats.received_lsn > flushed ? receiver->stats.received_lsn : flushed;
	Lsn applied = receiver->applied_lsn < flushed ? receiver->applied_lsn : flushed;
	size_t len;

	if (receiver->conn == NULL)
		return;
	len = pgoutput_build_status_update(message, written, flushed, applied, pg_timestamp_now(),
									   reply_requested);
	if (PQputCopyData(receiver->conn, (const char *) message, (int) len) != 1)
	{
		receiver_connection_lost(receiver, conninfo_error(receiver->conn));
		return;
	}
	receiver->reported_flush = flushed;
	receiver->stats.flushed_lsn = flushed;
	receiver_flush_output(receiver);
}

static void
receiver_on_feedback_timer(evutil_socket_t fd, short what, void *arg)
{
	receiver_send_feedback(arg, false);
}

/* ---- streamed transactions' Relation messages ------------------------------------------ */

/*
 * A Relation message inside a stream counts for the main stream only once that stream
 * commits (and a subtransaction abort cuts it out of the stream file), so the receiver keeps
 * its own copy until the stream ends.
 */
static bool
receiver_keep_stream_relation(Receiver *receiver, uint32_t relid, const uint8_t *message, size_t len)
{
	StreamRelation *entry;

	for (size_t i = 0; i < receiver->n_stream_relations; i++)
	{
		entry = &receiver->stream_relations[i];
		if (entry->top_xid == receiver->stream_xid && entry->relid == relid)
		{
			uint8_t *copy = malloc(len);

			if (copy == NULL)
				return false;
			memcpy(copy, message, len);
			free(entry->message);
			entry->message = copy;
			entry->len = len;
			return true;
		}
	}
	if (receiver->n_stream_relations == receiver->cap_stream_relations)
	{
		size_t cap = receiver->cap_stream_relations ? receiver->cap_stream_relations * 2 : 16;
		StreamRelation *bigger = realloc(receiver->stream_relations, cap * sizeof(*bigger));

		if (bigger == NULL)
			return false;
		receiver->stream_relations = bigger;
		receiver->cap_stream_relations = cap;
	}
	entry = &receiver->stream_relations[receiver->n_stream_relations];
	entry->message = malloc(len);
	if (entry->message == NULL)
		return false;
	memcpy(entry->message, message, len);
	entry->len = len;
	entry->top_xid = receiver->stream_xid;
	entry->relid = relid;
	receiver->n_stream_relations++;
	return true;
}

static void
receiver_forget_stream_relations(Receiver *receiver, uint32_t top_xid)
{
	size_t kept = 0;

	for (size_t i = 0; i < receiver->n_stream_relations; i++)
	{
		if (top_xid == 0 || receiver->stream_relations[i].top_xid == top_xid)
			free(receiver->stream_relations[i].message);
		else
			receiver->stream_relations[kept++] = receiver->stream_relations[i];
	}
	receiver->n_stream_relations = kept;
}

/* After a subtransaction abort cut the stream file back: put its Relation messages back. */
static bool
receiver_restore_stream_relations(Receiver *receiver, uint32_t top_xid, Lsn lsn)
{
	for (size_t i = 0; i < receiver->n_stream_relations; i++)
	{
		StreamRelation *entry = &receiver->stream_relations[i];

		if (entry->top_xid == top_xid &&
			!spool_stream_append(receiver->spool, top_xid, top_xid, lsn, entry->message, entry->len))
			return false;
	}
	return true;
}

/*
 * At stream commit the stream's Relation messages become the main stream's: strip the [xid].
 * The source will not send them again to this walsender, so besides the preamble of later
 * segments they go into the main spool itself, before the commit record: a reader that starts
 * this segment after the stream's file was applied and released still meets them.
 */
static bool
receiver_promote_stream_relations(Receiver *receiver, uint32_t top_xid, Lsn lsn)
{
	for (size_t i = 0; i < receiver->n_stream_relations; i++)
	{
		StreamRelation *entry = &receiver->stream_relations[i];

		if (entry->top_xid != top_xid || entry->len < 5)
			continue;
		/* 'R' + Int32 xid + body  ->  'R' + body */
		memmove(entry->message + 1, entry->message + 5, entry->len - 5);
		if (!spool_remember_relation(receiver->spool, entry->relid, entry->message, entry->len - 4) ||
			!spool_append(receiver->spool, SPOOL_CHANGE, lsn, entry->message, entry->len - 4, LSN_INVALID))
			return false;
	}
	receiver_forget_stream_relations(receiver, top_xid);
	return true;
}

/* ---- one message ------------------------------------------------------------------------ */

static bool
receiver_handle_streamed(Receiver *receiver, const PgoutputMessage *msg, Lsn lsn,
						 const uint8_t *data, size_t len)
{
	if (msg->kind == PGOUTPUT_RELATION &&
		!receiver_keep_stream_relation(receiver, msg->relation.relid, data, len))
	{
		log_error("out of memory");
		return false;
	}
	return spool_stream_append(receiver->spool, receiver->stream_xid, msg->xid, lsn, data, len);
}

static bool
receiver_handle_message(Receiver *receiver, Lsn lsn, const uint8_t *data, size_t len)
{
	PgoutputMessage msg;
	char errbuf[256];
	Spool *spool = receiver->spool;

	if (!pgoutput_decode(data, len, receiver->in_stream, PGOUTPUT_DECODE_ENVELOPE,
						 receiver->scratch, &msg, errbuf, sizeof(errbuf)))
	{
		char lsnbuf[LSN_FORMAT_SIZE];

		log_error("could not decode the message at %s from the source: %s", lsn_format(lsn, lsnbuf), errbuf);
		return false;
	}

	switch (msg.kind)
	{
		case PGOUTPUT_STREAM_START:
			receiver->in_stream = true;
			receiver->stream_xid = msg.xid;
			return true;
		case PGOUTPUT_STREAM_STOP:
			receiver->in_stream = false;
			return true;
		case PGOUTPUT_STREAM_COMMIT:
			if (msg.commit.commit_lsn < spool_appended_lsn(spool))
			{
				/* resent after a source crash: the spool has it already */
				receiver_forget_stream_relations(receiver, msg.xid);
				return spool_stream_abort(spool, msg.xid, msg.xid);
			}
			if (!receiver_promote_stream_relations(receiver, msg.xid, lsn))
				return false;
			return spool_stream_commit(spool, msg.xid, msg.commit.end_lsn, data, len);
		case PGOUTPUT_STREAM_ABORT:
			if (!spool_stream_abort(spool, msg.xid, msg.stream_abort.subxid))
				return false;
			if (msg.stream_abort.subxid == msg.xid)
			{
				receiver_forget_stream_relations(receiver, msg.xid);
				return true;
			}
			return receiver_restore_stream_relations(receiver, msg.xid, lsn);
		default:
			break;
	}

	if (receiver->in_stream)
		return receiver_handle_streamed(receiver, &msg, lsn, data, len);

	switch (msg.kind)
	{
		case PGOUTPUT_BEGIN:
			receiver->txn_open = true;
			receiver->skipping = msg.begin.final_lsn < spool_appended_lsn(spool);
			if (receiver->skipping)
				return true;
			return spool_append(spool, SPOOL_CHANGE, lsn, data, len, LSN_INVALID);
		case PGOUTPUT_COMMIT:
			receiver->txn_open = false;
			if (receiver->skipping)
			{
				receiver->skipping = false;
				return true;
			}
			return spool_append(spool, SPOOL_CHANGE, lsn, data, len, msg.commit.end_lsn);
		case PGOUTPUT_RELATION:
			/* kept even in a skipped transaction: later ones rely on it */
			if (!spool_remember_relation(spool, msg.relation.relid, data, len))
				return false;
			return spool_append(spool, SPOOL_CHANGE, lsn, data, len, LSN_INVALID);
		case PGOUTPUT_TYPE:
			return spool_append(spool, SPOOL_CHANGE, lsn, data, len, LSN_INVALID);
		default:
			if (receiver->skipping)
				return true;
			return spool_append(spool, SPOOL_CHANGE, lsn, data, len, LSN_INVALID);
	}
}

static bool
receiver_handle_keepalive(Receiver *receiver, const ReplicationFrame *frame)
{
	Spool *spool = receiver->spool;

	if (frame->wal_end > receiver->stats.received_lsn)
		receiver->stats.received_lsn = frame->wal_end;
	/*
	 * With no transaction half-received, everything before wal_end is in the spool (or
	 * was empty): record it so progress and --endpos move while the source is idle.
	 */
	if (!receiver->txn_open && frame->wal_end > spool_appended_lsn(spool))
	{
		if (!spool_append(spool, SPOOL_PROGRESS, frame->wal_end, NULL, 0, frame->wal_end))
			return false;
	}
	if (frame->reply_requested)
	{
		if (spool_has_unsynced(spool) && !spool_sync(spool))
			return false;
		receiver_send_feedback(receiver, false);
	}
	return true;
}

static bool
receiver_handle_frame(Receiver *receiver, const uint8_t *buf, size_t len)
{
	ReplicationFrame frame;
	char errbuf[256];

	if (!pgoutput_parse_frame(buf, len, &frame, errbuf, sizeof(errbuf)))
	{
		log_error("could not parse a replication message from the source: %s", errbuf);
		return false;
	}
	receiver->stats.messages++;
	if (frame.kind == 'k')
		return receiver_handle_keepalive(receiver, &frame);
	if (frame.data_start > receiver->stats.received_lsn)
		receiver->stats.received_lsn = frame.data_start;
	return receiver_handle_message(receiver, frame.data_start, frame.payload, frame.payload_len);
}

/* ---- the connection --------------------------------------------------------------------- */

static void
receiver_pause_reading(Receiver *receiver)
{
	if (receiver->read_armed)
	{
		event_del(&receiver->read_event);
		receiver->read_armed = false;
	}
}

/*
 * A full spool waits for the applier only while the applier has something to apply: once it
 * has read everything published, nothing can be freed before more arrives (a transaction
 * larger than --spool-max, or than what the bound leaves of the segment being written).
 */
static bool
receiver_must_wait_for_room(Receiver *receiver)
{
	if (!spool_reader_drained(receiver->spool))
		return true;
	if (!receiver->over_bound_logged)
	{
		log_info("the spool is over --spool-max, but the applier has read all of it: receiving goes "
				 "on (a transaction may be larger than the bound)");
		receiver->over_bound_logged = true;
	}
	return false;
}

/*
 * The spool is full and the applier is behind: the receiver lets go of the source until there
 * is room. It does not merely stop reading: a walsender left blocked on a full socket (and kept
 * alive by status updates) cannot be stopped, so the source's shutdown and the checkpoint
 * that invalidates a slot would wait for it.
 */
static void
receiver_suspend_for_room(Receiver *receiver)
{
	struct timeval soon = {0, RECEIVER_ROOM_CHECK_US};

	log_warning("spool is full (%llu bytes, --spool-max exceeded): disconnected from the source "
				"until the applier frees space", (unsigned long long) spool_size_bytes(receiver->spool));
	log_hint("check the target and the applier's errors, or raise --spool-max");
	receiver->stats.spool_full = true;
	receiver_send_feedback(receiver, false);
	if (receiver->conn == NULL)
		return;   /* the update failed: connection_lost has taken over */
	receiver_disconnect(receiver);
	receiver->suspended = true;
	evtimer_add(&receiver->full_timer, &soon);
}

static void
receiver_on_full_timer(evutil_socket_t fd, short what, void *arg)
{
	Receiver *receiver = arg;
	struct timeval soon = {0, RECEIVER_ROOM_CHECK_US};

	if (!receiver->suspended)
		return;
	if (!spool_has_room(receiver->spool) && !spool_reader_drained(receiver->spool))
	{
		evtimer_add(&receiver->full_timer, &soon);
		return;
	}
	log_info("spool has room again: reconnecting to the source");
	receiver->suspended = false;
	receiver->stats.spool_full = false;
	receiver->over_bound_logged = false;
	receiver->retry_seconds = 1;
	receiver_on_retry_timer(-1, 0, receiver);
}

static void
receiver_on_readable(evutil_socket_t fd, short what, void *arg)
{
	Receiver *receiver = arg;
	bool failed = false;

	if (receiver->conn == NULL)
		return;
	if (!PQconsumeInput(receiver->conn))
	{
		receiver_connection_lost(receiver, conninfo_error(receiver->conn));
		return;
	}
	for (;;)
	{
		char *buf = NULL;
		int n;

		if (spool_is_full(receiver->spool) && receiver_must_wait_for_room(receiver))
		{
			receiver_suspend_for_room(receiver);
			return;
		}
		n = PQgetCopyData(receiver->conn, &buf, 1);
		if (n == 0)
			break;
		if (n == -1)
		{
			PGresult *res = PQgetResult(receiver->conn);
			char why[512];

			/* a walsender that shuts down ends the stream cleanly: no error to quote */
			if (res == NULL || PQresultStatus(res) != PGRES_FATAL_ERROR)
				snprintf(why, sizeof(why), "the source ended the stream (shutting down or restarting?)");
			else
				snprintf(why, sizeof(why), "the source ended replication: %s", conninfo_result_error(res));
			if (receiver_error_is_final(res))
				receiver_fail(receiver, EXIT_SOURCE, why, RECEIVER_FINAL_HINT);
			else
				receiver_connection_lost(receiver, why);
			PQclear(res);
			return;
		}
		if (n < 0)
		{
			receiver_connection_lost(receiver, conninfo_error(receiver->conn));
			return;
		}
		failed = !receiver_handle_frame(receiver, (const uint8_t *) buf, (size_t) n);
		PQfreemem(buf);
		if (failed)
		{
			receiver_connection_lost(receiver, "the message could not be spooled");
			return;
		}
	}
	/*
	 * Group commit: everything this wakeup brought goes to the applier at once and to the
	 * syncer thread for one fsync, which the receiver does not wait for: a transaction that
	 * arrives meanwhile is read at once. Feedback follows when the syncer is done.
	 */
	if (spool_has_unsynced(receiver->spool))
	{
		if (!spool_publish(receiver->spool) || !spool_sync_request(receiver->spool))
		{
			receiver_connection_lost(receiver, "the spool could not be synced");
			return;
		}
	}
}

/* The syncer made more of the spool durable: confirm it to the source. */
static void
receiver_on_synced(evutil_socket_t fd, short what, void *arg)
{
	Receiver *receiver = arg;
	uint64_t count;

	while (read(fd, &count, sizeof(count)) > 0)
		;
	if (receiver->conn == NULL)
		return;
	if (spool_sync_failed(receiver->spool))
	{
		receiver_connection_lost(receiver, "the spool could not be synced");
		return;
	}
	if (spool_durable_lsn(receiver->spool) > receiver->reported_flush)
		receiver_send_feedback(receiver, false);
}

static bool
receiver_connect(Receiver *receiver)
{
	char sql[512];
	char lsnbuf[LSN_FORMAT_SIZE];
	char *slot = NULL;
	PGresult *res = NULL;
	PGconn *conn = NULL;
	Lsn start = spool_durable_lsn(receiver->spool);
	bool ok = false;

	conn = conninfo_connect(receiver->conninfo, CONN_REPLICATION, "receiver", "source");
	if (conn == NULL)
	{
		snprintf(receiver->stats.last_error, sizeof(receiver->stats.last_error),
				 "could not connect to the source");
		return false;
	}
	slot = PQescapeIdentifier(conn, receiver->slot_name, strlen(receiver->slot_name));
	if (slot == NULL)
		goto cleanup;
	/* publication_names is an identifier list inside a string literal */
	snprintf(sql, sizeof(sql),
			 "START_REPLICATION SLOT %s LOGICAL %s (proto_version '2', streaming 'on', "
			 "publication_names '\"%s\"')",
			 slot, lsn_format(start, lsnbuf), receiver->publication_name);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_BOTH)
	{
		log_error("could not start replication from slot \"%s\": %s", receiver->slot_name,
				  conninfo_result_error(res));
		snprintf(receiver->stats.last_error, sizeof(receiver->stats.last_error),
				 "could not start replication: %s", conninfo_result_error(res));
		if (receiver_error_is_final(res))
		{
			log_hint("%s", RECEIVER_FINAL_HINT);
			receiver->stats.fatal = true;
			receiver->stats.exit_code = EXIT_SOURCE;
		}
		goto cleanup;
	}
	if (PQsetnonblocking(conn, 1) != 0)
	{
		log_error("could not make the replication connection non-blocking: %s", conninfo_error(conn));
		goto cleanup;
	}
	receiver->conn = conn;
	conn = NULL;
	event_assign(&receiver->read_event, receiver->base, PQsocket(receiver->conn), EV_READ | EV_PERSIST,
				 receiver_on_readable, receiver);
	event_assign(&receiver->write_event, receiver->base, PQsocket(receiver->conn), EV_WRITE,
				 receiver_on_writable, receiver);
	event_add(&receiver->read_event, NULL);
	receiver->read_armed = true;
	receiver->stats.connected = true;
	receiver->stats.last_error[0] = '\0';
	receiver->connected_at_us = monotonic_us();
	log_info("streaming from slot \"%s\" at %s", receiver->slot_name, lsnbuf);
	ok = true;
cleanup:
	PQclear(res);
	PQfreemem(slot);
	if (conn != NULL)
		PQfinish(conn);
	return ok;
}

static void
receiver_on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
	Receiver *receiver = arg;

	if (receiver_connect(receiver))
	{
		receiver->stats.reconnects++;
		receiver_send_feedback(receiver, false);
		/* the first messages may already sit in libpq's buffer */
		receiver_on_readable(PQsocket(receiver->conn), EV_READ, receiver);
		return;
	}
	if (receiver->stats.fatal)
		return;
	receiver->retry_seconds = receiver->retry_seconds * 2 > receiver->max_retry_seconds
		? receiver->max_retry_seconds : receiver->retry_seconds * 2;
	receiver_arm_retry(receiver);
}

static void
receiver_close(Receiver *receiver)
{
	event_del(&receiver->full_timer);
	/* the socket's events exist only with a connection */
	if (receiver->conn != NULL)
	{
		receiver_pause_reading(receiver);
		event_del(&receiver->write_event);
		PQfinish(receiver->conn);
		receiver->conn = NULL;
	}
	receiver->stats.connected = false;
}

/*
 * Closes the connection. What the spool holds durably stays; the half-received tail goes,
 * because the source sends it again from the confirmed position.
 */
static void
receiver_disconnect(Receiver *receiver)
{
	receiver_close(receiver);
	if (!spool_rewind(receiver->spool))
		log_warning("could not rewind the spool to its last complete transaction");
	spool_stream_discard_open(receiver->spool);
	receiver_forget_stream_relations(receiver, 0);
	receiver->in_stream = false;
	receiver->txn_open = false;
	receiver->skipping = false;
}

/* Reconnects after a growing delay, back at 1 s once a connection has lasted. */
static void
receiver_connection_lost(Receiver *receiver, const char *why)
{
	if (receiver->conn == NULL)
		return;
	/* a failed write or fsync leaves the spool refusing everything: only a restart recovers it */
	if (spool_sync_failed(receiver->spool))
	{
		receiver_fail(receiver, EXIT_INTERNAL,
					  "the spool cannot take more changes after a failed write or fsync (see the error above)",
					  "free space on the spool's disk (or mend the I/O error), then start the agent again: "
					  "it recovers the spool, and nothing it confirmed to the source is lost");
		return;
	}
	if (monotonic_us() - receiver->connected_at_us >= RECEIVER_STABLE_US)
		receiver->retry_seconds = 1;
	else
		receiver->retry_seconds = receiver->retry_seconds * 2 > receiver->max_retry_seconds
			? receiver->max_retry_seconds : receiver->retry_seconds * 2;
	log_warning("lost the replication connection to the source: %s", why);
	log_detail("reconnecting in %d s; nothing after the last durable position was confirmed",
			   receiver->retry_seconds);
	snprintf(receiver->stats.last_error, sizeof(receiver->stats.last_error), "%s", why);
	receiver_disconnect(receiver);
	receiver_arm_retry(receiver);
}

bool
receiver_start(const ReceiverOptions *options, Receiver **out)
{
	Receiver *receiver = calloc(1, sizeof(*receiver));
	struct timeval interval;

	*out = NULL;
	if (receiver == NULL)
		return false;
	receiver->base = options->base;
	receiver->conninfo = strdup(options->source_conninfo);
	receiver->slot_name = strdup(options->slot_name);
	receiver->publication_name = strdup(options->publication_name);
	receiver->spool = options->spool;
	receiver->feedback_interval_ms = options->feedback_interval_ms > 0 ? options->feedback_interval_ms : 1000;
	receiver->max_retry_seconds = options->max_retry_seconds > 0 ? options->max_retry_seconds : 30;
	receiver->retry_seconds = 1;
	receiver->scratch = pgoutput_scratch_new();
	if (receiver->conninfo == NULL || receiver->slot_name == NULL || receiver->publication_name == NULL ||
		receiver->scratch == NULL)
	{
		receiver_free(receiver);
		return false;
	}
	evtimer_assign(&receiver->retry_timer, receiver->base, receiver_on_retry_timer, receiver);
	evtimer_assign(&receiver->full_timer, receiver->base, receiver_on_full_timer, receiver);
	event_assign(&receiver->feedback_timer, receiver->base, -1, EV_PERSIST, receiver_on_feedback_timer, receiver);
	event_assign(&receiver->synced_event, receiver->base, spool_sync_event_fd(receiver->spool),
				 EV_READ | EV_PERSIST, receiver_on_synced, receiver);
	event_add(&receiver->synced_event, NULL);
	if (!receiver_connect(receiver))
	{
		if (options->error != NULL && options->error_len > 0)
			snprintf(options->error, options->error_len, "%s", receiver->stats.last_error);
		receiver_free(receiver);
		return false;
	}
	interval.tv_sec = receiver->feedback_interval_ms / 1000;
	interval.tv_usec = (receiver->feedback_interval_ms % 1000) * 1000;
	event_add(&receiver->feedback_timer, &interval);
	*out = receiver;
	return true;
}

void
receiver_set_applied(Receiver *receiver, Lsn applied)
{
	receiver->applied_lsn = applied;
}

void
receiver_get_stats(Receiver *receiver, ReceiverStats *out)
{
	*out = receiver->stats;
	out->flushed_lsn = receiver->reported_flush;
}

void
receiver_free(Receiver *receiver)
{
	if (receiver == NULL)
		return;
	event_del(&receiver->feedback_timer);
	event_del(&receiver->synced_event);
	event_del(&receiver->retry_timer);
	if (receiver->conn != NULL)
	{
		/* also waits for the syncer thread, so the last update below carries its work */
		if (!spool_sync(receiver->spool))
			log_warning("could not sync the spool at shutdown");
		/* a last, blocking status update so the slot moves up to what is durable */
		PQsetnonblocking(receiver->conn, 0);
		receiver_send_feedback(receiver, false);
		if (receiver->conn != NULL)
		{
			PQflush(receiver->conn);
			PQputCopyEnd(receiver->conn, NULL);
			PQflush(receiver->conn);
		}
	}
	receiver_close(receiver);
	if (!spool_rewind(receiver->spool))
		log_warning("could not rewind the spool to its last complete transaction");
	receiver_forget_stream_relations(receiver, 0);
	free(receiver->stream_relations);
	pgoutput_scratch_free(receiver->scratch);
	free(receiver->conninfo);
	free(receiver->slot_name);
	free(receiver->publication_name);
	free(receiver);
}
