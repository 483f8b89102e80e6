/*
 * The spool: the agent's own durable change log, between the receiver (writer, main thread)
 * and the applier (reader, its own thread). Segment files of framed protobuf records
 * ([u32 length][u32 crc32c][SpoolRecord], little-endian) under <state-dir>/spool/. The
 * receiver confirms to the source only what spool_sync() has made durable; segments are
 * removed once the target holds their changes durably. Streamed (large, in-progress)
 * transactions go to one stream file per top-level xid until their stream commit.
 */
#ifndef SWITCHYARD_SPOOL_H
#define SWITCHYARD_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchyard/lsn.h"

typedef enum SpoolRecordKind
{
	SPOOL_CHANGE = 1,        /* raw pgoutput message of a non-streamed transaction (or an R) */
	SPOOL_PROGRESS = 2,      /* no transaction open: everything before lsn is in the spool */
	SPOOL_STREAM_COMMIT = 3, /* raw 'c' message; replay stream file (stream_xid, lsn) first */
	SPOOL_STREAM_CHANGE = 4  /* raw pgoutput message inside a stream file */
} SpoolRecordKind;

typedef struct SpoolOptions
{
	const char *dir;          /* created if missing, e.g. <state-dir>/spool */
	uint64_t max_bytes;       /* bound on segments + stream files; 0 = default 8 GiB */
	uint64_t segment_bytes;   /* roll to a new segment past this; 0 = 64 MiB, at most max_bytes / 4 */
} SpoolOptions;

typedef struct SpoolPosition
{
	uint64_t segment;         /* segment number (file name) */
	uint64_t offset;          /* byte offset of a record's frame in that segment */
} SpoolPosition;

typedef struct Spool Spool;

/*
 * Opens the spool directory and recovers it: every segment is checked record by record; a
 * torn tail (crash while writing, never confirmed) is truncated back to the last boundary
 * record; a bad record followed by valid data is corruption, named with file and offset, and
 * opening fails. Open (uncommitted) stream files are removed: the source streams those
 * transactions again from the start.
 */
bool spool_open(const SpoolOptions *options, Spool **out) __attribute__((warn_unused_result));
void spool_close(Spool *spool);

/* ---- writer side (one thread) ---------------------------------------------------------- */

/*
 * Appends a record to the current segment (buffered; durable only after spool_sync).
 * boundary: 0, or the LSN up to which the spool holds everything once this record is in
 * (a Commit's end_lsn, a PROGRESS lsn). Only boundaries move the durable LSN.
 */
bool spool_append(Spool *spool, SpoolRecordKind kind, Lsn lsn, const void *pgoutput,
				  size_t len, Lsn boundary) __attribute__((warn_unused_result));

/*
 * The latest Relation message per relid of the main stream (without [xid]); written again
 * at the start of every new segment so each segment can be read on its own.
 */
bool spool_remember_relation(Spool *spool, uint32_t relid, const void *pgoutput, size_t len)
	__attribute__((warn_unused_result));

/* Streamed transactions: changes of top-level xid (from subtransaction subxid). */
bool spool_stream_append(Spool *spool, uint32_t xid, uint32_t subxid, Lsn lsn,
						 const void *pgoutput, size_t len) __attribute__((warn_unused_result));
/* subxid == xid: drop the whole stream; else cut it back to before subxid's first change. */
bool spool_stream_abort(Spool *spool, uint32_t xid, uint32_t subxid)
	__attribute__((warn_unused_result));
/* Makes the stream file durable and final, then appends a STREAM_COMMIT record (boundary
 * end_lsn) holding the raw 'c' message. */
bool spool_stream_commit(Spool *spool, uint32_t xid, Lsn end_lsn, const void *pgoutput,
						 size_t len) __attribute__((warn_unused_result));
/* After a reconnect: the source resends open streams from their first segment. */
void spool_stream_discard_open(Spool *spool);

/*
 * Drops what was appended after the last boundary (a transaction cut off by a lost
 * connection: the source sends it again whole). Durable records past the boundary are
 * truncated away too; the reader never sees records past the last published boundary.
 */
bool spool_rewind(Spool *spool) __attribute__((warn_unused_result));

/*
 * Writes everything appended (no fsync) and shows the reader the whole transactions in it:
 * applying may run ahead of durability; confirming to the source may not.
 */
bool spool_publish(Spool *spool) __attribute__((warn_unused_result));
/* Writes and fsyncs everything appended; then publishes it to the reader. */
bool spool_sync(Spool *spool) __attribute__((warn_unused_result));
/*
 * Writes everything appended and hands the fsync to the spool's syncer thread, which raises
 * the durable LSN when done and then makes spool_sync_event_fd() readable (an eventfd: read
 * it to clear it). The writer goes on receiving meanwhile. False when the spool is broken,
 * e.g. after an earlier background fsync failed.
 */
bool spool_sync_request(Spool *spool) __attribute__((warn_unused_result));
int spool_sync_event_fd(const Spool *spool);
/* A background fsync failed, or the writer is broken: nothing more becomes durable. */
bool spool_sync_failed(Spool *spool);
/* Appended since the last spool_sync. */
bool spool_has_unsynced(const Spool *spool);

/* The LSN safe to confirm as flushed: the last boundary made durable. */
Lsn spool_durable_lsn(Spool *spool);
/* The last boundary appended (durable or not): the writer skips transactions before it. */
Lsn spool_appended_lsn(Spool *spool);
/* Bytes on disk (segments and stream files); full when above max_bytes. */
uint64_t spool_size_bytes(Spool *spool);
bool spool_is_full(Spool *spool);
/* At most three quarters of max_bytes: a receiver that let go of a full spool comes back. */
bool spool_has_room(Spool *spool);
/*
 * The reader has read everything published so far. Then the applier can free no space until
 * more arrives (the segment being written is never released, nor a transaction the receiver
 * has not finished): a full spool must take more, or nothing would ever move.
 */
bool spool_reader_drained(Spool *spool);

/* ---- reader side (one thread) ---------------------------------------------------------- */

typedef struct SpoolReader SpoolReader;

typedef struct SpoolEntry
{
	SpoolRecordKind kind;
	Lsn lsn;
	Lsn boundary;
	const uint8_t *pgoutput;  /* valid until the next spool_reader_next on this reader */
	size_t len;
	uint32_t stream_xid;      /* SPOOL_STREAM_COMMIT */
	SpoolPosition position;   /* where this record starts */
} SpoolEntry;

/* Reads the main spool from the oldest retained segment. */
bool spool_reader_open(Spool *spool, SpoolReader **out) __attribute__((warn_unused_result));
/* Reads the stream file that a STREAM_COMMIT record refers to (its stream_xid, and its lsn,
 * which is the end_lsn given to spool_stream_commit), from the start. */
bool spool_stream_reader_open(Spool *spool, uint32_t xid, Lsn end_lsn,
							  SpoolReader **out) __attribute__((warn_unused_result));
void spool_reader_free(SpoolReader *reader);

/*
 * 1: a durable record is in *out; 0: none became durable within timeout_ms (or
 * spool_wakeup_reader was called); -1: error (corruption or I/O, logged naming file and offset).
 * A stream reader returns 0 at its end.
 */
int spool_reader_next(SpoolReader *reader, SpoolEntry *out, int timeout_ms);
/* Makes a blocked spool_reader_next return 0 at once (shutdown, barrier changes). */
void spool_wakeup_reader(Spool *spool);

/*
 * The target holds everything before position durably: remove the segments that lie wholly
 * before it, and the stream files whose STREAM_COMMIT records lie before it.
 */
void spool_release(Spool *spool, SpoolPosition position);

/*
 * The parity barrier. With lsn != 0 the reader is shown nothing past the last boundary at
 * or before lsn, so the applier applies exactly the transactions with end_lsn <= lsn and
 * then waits; lsn = 0 lifts it. Writer thread only. False when lsn lies before what the
 * spool can still stop at (the hold is then not set).
 */
bool spool_set_hold(Spool *spool, Lsn lsn) __attribute__((warn_unused_result));
/*
 * A pause: the reader is shown nothing past the last boundary appended so far (before the
 * first one, nothing at all), whatever of it is durable yet. spool_set_hold(spool, 0) lifts
 * it. Writer thread only.
 */
void spool_hold_now(Spool *spool);
/* Whether a hold is set; *visible is the last boundary the reader may reach under it. */
bool spool_hold_visible(Spool *spool, Lsn *visible);

/* For status and metrics. */
typedef struct SpoolStats
{
	uint64_t size_bytes;
	uint64_t segments;
	uint64_t open_streams;
	Lsn durable_lsn;
	bool full;
	bool broken;              /* a write or fsync failed: only a restart recovers */
} SpoolStats;
void spool_get_stats(Spool *spool, SpoolStats *out);

#endif
