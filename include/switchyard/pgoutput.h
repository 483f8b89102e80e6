/*
 * pgoutput decoder: a pure function from the bytes of one replication CopyData message to a
 * decoded struct. No I/O, no global state. Used by the receiver (envelope only, to find
 * transaction boundaries) and by the applier (full decode, to build statements).
 * Protocol facts: ../shared/pgoutput.md (PostgreSQL 15, proto_version 2, streaming on).
 */
#ifndef SWITCHYARD_PGOUTPUT_H
#define SWITCHYARD_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchyard/lsn.h"

/* ---- the CopyBoth wrapper ('w' XLogData, 'k' keepalive, 'r' status update) ------------- */

typedef struct ReplicationFrame
{
	char kind;               /* 'w' or 'k' */
	Lsn data_start;          /* 'w' only */
	Lsn wal_end;
	int64_t send_time;       /* PostgreSQL timestamp */
	bool reply_requested;    /* 'k' only */
	const uint8_t *payload;  /* 'w': the pgoutput message, pointing into the input buffer */
	size_t payload_len;
} ReplicationFrame;

bool pgoutput_parse_frame(const uint8_t *buf, size_t len, ReplicationFrame *out,
						  char *errbuf, size_t errlen) __attribute__((warn_unused_result));

#define STATUS_UPDATE_SIZE 34
/* Writes an 'r' standby status update into out (STATUS_UPDATE_SIZE bytes); returns its size. */
size_t pgoutput_build_status_update(uint8_t *out, Lsn write, Lsn flush, Lsn apply,
									int64_t now, bool reply_requested);

/* ---- pgoutput messages ----------------------------------------------------------------- */

typedef enum PgoutputKind
{
	PGOUTPUT_BEGIN = 'B',
	PGOUTPUT_COMMIT = 'C',
	PGOUTPUT_ORIGIN = 'O',
	PGOUTPUT_RELATION = 'R',
	PGOUTPUT_TYPE = 'Y',
	PGOUTPUT_INSERT = 'I',
	PGOUTPUT_UPDATE = 'U',
	PGOUTPUT_DELETE = 'D',
	PGOUTPUT_TRUNCATE = 'T',
	PGOUTPUT_MESSAGE = 'M',
	PGOUTPUT_STREAM_START = 'S',
	PGOUTPUT_STREAM_STOP = 'E',
	PGOUTPUT_STREAM_COMMIT = 'c',
	PGOUTPUT_STREAM_ABORT = 'A'
} PgoutputKind;

typedef enum TupleValueKind
{
	TUPLE_VALUE_NULL = 'n',
	TUPLE_VALUE_UNCHANGED_TOAST = 'u',
	TUPLE_VALUE_TEXT = 't',
	TUPLE_VALUE_BINARY = 'b'
} TupleValueKind;

typedef struct TupleValue
{
	TupleValueKind kind;
	uint32_t length;   /* bytes of data, not counting the added NUL */
	const char *data;  /* 't'/'b': a NUL-terminated copy in the scratch arena; NULL otherwise */
} TupleValue;

typedef struct TupleData
{
	uint16_t ncols;
	TupleValue *values;
} TupleData;

typedef struct RelationColumn
{
	bool is_key;       /* flags & 1: part of the replica identity */
	const char *name;
	uint32_t type_oid;
	int32_t typmod;
} RelationColumn;

#define PGOUTPUT_TRUNCATE_CASCADE 1
#define PGOUTPUT_TRUNCATE_RESTART_IDENTITY 2

typedef struct PgoutputMessage
{
	PgoutputKind kind;
	/*
	 * B: the transaction's xid. Inside a streamed block: the [xid] field of the message (the
	 * subtransaction's xid). S, c, A: the top-level xid. 0 otherwise.
	 */
	uint32_t xid;
	union
	{
		struct { Lsn final_lsn; int64_t commit_time; } begin;
		/* C and c */
		struct { uint8_t flags; Lsn commit_lsn; Lsn end_lsn; int64_t commit_time; } commit;
		struct { Lsn lsn; const char *name; } origin;
		struct
		{
			uint32_t relid;
			const char *nspname;   /* "" means pg_catalog on the wire; kept as sent */
			const char *relname;
			char replident;        /* 'd', 'n', 'f', 'i' */
			uint16_t ncols;
			RelationColumn *columns;
		} relation;
		struct { uint32_t oid; const char *nspname; const char *typname; } type;
		struct { uint32_t relid; TupleData new_tuple; } insert;
		struct
		{
			uint32_t relid;
			char old_kind;         /* 0 (no old tuple), 'K' (key) or 'O' (old row, FULL) */
			TupleData old_tuple;
			TupleData new_tuple;
		} update;
		struct { uint32_t relid; char old_kind; TupleData old_tuple; } delete;
		struct { uint8_t flags; uint32_t nrelids; uint32_t *relids; } truncate;
		struct
		{
			uint8_t flags;         /* 1 = transactional */
			Lsn lsn;
			const char *prefix;
			uint32_t length;
			const char *content;   /* NUL-terminated copy */
		} message;
		struct { bool first_segment; } stream_start;
		struct { uint32_t subxid; } stream_abort;
	};
} PgoutputMessage;

typedef enum PgoutputDecodeMode
{
	/* everything, tuple values copied (NUL-terminated) into the scratch arena */
	PGOUTPUT_DECODE_FULL,
	/*
	 * the envelope only: for I/U/D just kind, xid and relid (tuples left empty, but still
	 * validated for length); every other message in full. For the receiver's hot path.
	 */
	PGOUTPUT_DECODE_ENVELOPE
} PgoutputDecodeMode;

/*
 * Scratch memory for decoded messages: strings, column arrays and value copies. Everything a
 * decoded message points to stays valid until the next decode with the same scratch. Memory
 * kept between messages is bounded (a huge message's memory is returned afterwards).
 */
typedef struct PgoutputScratch PgoutputScratch;

PgoutputScratch *pgoutput_scratch_new(void);
void pgoutput_scratch_free(PgoutputScratch *scratch);

/*
 * Decodes one pgoutput message (type byte first). in_stream says whether it arrived between
 * a Stream Start and a Stream Stop (or is replayed from a stream file), where data messages
 * carry an [xid]. On malformed or truncated input returns false with a one-line reason in
 * errbuf (never reads past len).
 */
bool pgoutput_decode(const uint8_t *data, size_t len, bool in_stream, PgoutputDecodeMode mode,
					 PgoutputScratch *scratch, PgoutputMessage *out,
					 char *errbuf, size_t errlen) __attribute__((warn_unused_result));

/* "insert", "update", ... for messages and logs. */
const char *pgoutput_kind_name(PgoutputKind kind);

#endif
