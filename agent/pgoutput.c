/*
 * pgoutput decoder: turns the bytes of one replication CopyData message into a decoded
 * struct, bounds-checking every field, with all strings and values copied into a reusable
 * chunked arena so the hot path does no malloc. No I/O and no global state.
 */
#include "switchyard/pgoutput.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- big-endian helpers ------------------------------------------------------------------ */

static inline uint16_t
get_u16(const uint8_t *p)
{
	return (uint16_t) ((uint16_t) p[0] << 8 | p[1]);
}

static inline uint32_t
get_u32(const uint8_t *p)
{
	return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static inline uint64_t
get_u64(const uint8_t *p)
{
	return (uint64_t) get_u32(p) << 32 | get_u32(p + 4);
}

static inline void
put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
	{
		p[i] = (uint8_t) v;
		v >>= 8;
	}
}

static void pgoutput_error(char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
pgoutput_error(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list args;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(args, fmt);
	vsnprintf(errbuf, errlen, fmt, args);
	va_end(args);
}

/* ---- the CopyBoth wrapper ---------------------------------------------------------------- */

#define XLOGDATA_HEADER_SIZE 25  /* 'w' + dataStart + walEnd + sendTime */
#define KEEPALIVE_SIZE 18        /* 'k' + walEnd + sendTime + replyRequested */

bool
pgoutput_parse_frame(const uint8_t *buf, size_t len, ReplicationFrame *out,
					 char *errbuf, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (len == 0)
	{
		pgoutput_error(errbuf, errlen, "empty replication frame");
		return false;
	}
	switch (buf[0])
	{
		case 'w':
			/* an XLogData always carries a message: an empty payload means a broken stream */
			if (len <= XLOGDATA_HEADER_SIZE)
			{
				pgoutput_error(errbuf, errlen,
							   "truncated xlogdata frame: %zu bytes, needs more than %d",
							   len, XLOGDATA_HEADER_SIZE);
				return false;
			}
			out->kind = 'w';
			out->data_start = get_u64(buf + 1);
			out->wal_end = get_u64(buf + 9);
			out->send_time = (int64_t) get_u64(buf + 17);
			out->payload = buf + XLOGDATA_HEADER_SIZE;
			out->payload_len = len - XLOGDATA_HEADER_SIZE;
			return true;
		case 'k':
			if (len != KEEPALIVE_SIZE)
			{
				pgoutput_error(errbuf, errlen, "%s keepalive frame: %zu bytes, expected %d",
							   len < KEEPALIVE_SIZE ? "truncated" : "oversized", len,
							   KEEPALIVE_SIZE);
				return false;
			}
			out->kind = 'k';
			out->wal_end = get_u64(buf + 1);
			out->send_time = (int64_t) get_u64(buf + 9);
			out->reply_requested = buf[17] != 0;
			return true;
		default:
			pgoutput_error(errbuf, errlen, "unknown replication frame type 0x%02x", buf[0]);
			return false;
	}
}

size_t
pgoutput_build_status_update(uint8_t *out, Lsn write, Lsn flush, Lsn apply, int64_t now,
							 bool reply_requested)
{
	out[0] = 'r';
	put_u64(out + 1, write);
	put_u64(out + 9, flush);
	put_u64(out + 17, apply);
	put_u64(out + 25, (uint64_t) now);
	out[33] = reply_requested ? 1 : 0;
	return STATUS_UPDATE_SIZE;
}

/* ---- scratch arena ----------------------------------------------------------------------- */

/*
 * A chain of blocks with a bump pointer. Blocks never move, so every pointer handed out stays
 * valid until the next reset. Blocks before and including `current` are in use; blocks after
 * it are empty leftovers from earlier messages, reused before anything new is malloc'ed.
 */
#define SCRATCH_BLOCK_SIZE ((size_t) 64 * 1024)
/* memory kept across a reset; anything a bigger message needed is returned */
#define SCRATCH_KEEP_BYTES ((size_t) 4 * 1024 * 1024)
#define SCRATCH_ALIGN ((size_t) 8)

typedef struct ScratchBlock
{
	struct ScratchBlock *next;
	size_t size;
	size_t used;
	_Alignas(SCRATCH_ALIGN) uint8_t data[];
} ScratchBlock;

struct PgoutputScratch
{
	ScratchBlock *head;
	ScratchBlock *current;
};

static ScratchBlock *
scratch_block_new(size_t size)
{
	ScratchBlock *block = malloc(sizeof(ScratchBlock) + size);

	if (block == NULL)
		return NULL;
	block->next = NULL;
	block->size = size;
	block->used = 0;
	return block;
}

PgoutputScratch *
pgoutput_scratch_new(void)
{
	PgoutputScratch *scratch = malloc(sizeof(PgoutputScratch));

	if (scratch == NULL)
		return NULL;
	scratch->head = scratch_block_new(SCRATCH_BLOCK_SIZE);
	if (scratch->head == NULL)
	{
		free(scratch);
		return NULL;
	}
	scratch->current = scratch->head;
	return scratch;
}

void
pgoutput_scratch_free(PgoutputScratch *scratch)
{
	ScratchBlock *block;

	if (scratch == NULL)
		return;
	block = scratch->head;
	while (block != NULL)
	{
		ScratchBlock *next = block->next;

		free(block);
		block = next;
	}
	free(scratch);
}

/* Empties the arena; blocks beyond the keep budget (the big ones) go back to malloc. */
static void
scratch_reset(PgoutputScratch *scratch)
{
	ScratchBlock *prev = scratch->head;
	ScratchBlock *block = prev->next;
	size_t kept = prev->size;

	prev->used = 0;
	while (block != NULL)
	{
		ScratchBlock *next = block->next;

		if (kept + block->size > SCRATCH_KEEP_BYTES)
		{
			prev->next = next;
			free(block);
		}
		else
		{
			block->used = 0;
			kept += block->size;
			prev = block;
		}
		block = next;
	}
	scratch->current = scratch->head;
}

/* Slow path: a fresh block after `current`, preferring an empty one we already own. */
static void *
scratch_alloc_slow(PgoutputScratch *scratch, size_t size)
{
	ScratchBlock *current = scratch->current;
	ScratchBlock *prev = current;
	ScratchBlock *block = current->next;

	while (block != NULL && block->size < size)
	{
		prev = block;
		block = block->next;
	}
	if (block != NULL)
		prev->next = block->next;
	else
	{
		block = scratch_block_new(size > SCRATCH_BLOCK_SIZE ? size : SCRATCH_BLOCK_SIZE);
		if (block == NULL)
			return NULL;
	}
	block->next = current->next;
	current->next = block;
	scratch->current = block;
	block->used = size;
	return block->data;
}

static inline void *
scratch_alloc(PgoutputScratch *scratch, size_t size)
{
	ScratchBlock *block = scratch->current;

	size = (size + SCRATCH_ALIGN - 1) & ~(SCRATCH_ALIGN - 1);
	if (block->size - block->used >= size)
	{
		void *p = block->data + block->used;

		block->used += size;
		return p;
	}
	return scratch_alloc_slow(scratch, size);
}

/* ---- bounds-checked reader --------------------------------------------------------------- */

typedef struct Reader
{
	const uint8_t *p;
	const uint8_t *end;
	const char *what;          /* message kind name, for errors */
	PgoutputScratch *scratch;  /* NULL: validate and skip without copying */
	char *errbuf;
	size_t errlen;
} Reader;

static inline size_t
reader_left(const Reader *r)
{
	return (size_t) (r->end - r->p);
}

/* field is a printf format with one %u (index) when it names an element of a list */
static bool reader_fail_need(Reader *r, size_t need, const char *field, unsigned index)
	__attribute__((noinline, cold));

static bool
reader_fail_need(Reader *r, size_t need, const char *field, unsigned index)
{
	char name[64];

	snprintf(name, sizeof(name), field, index);
	pgoutput_error(r->errbuf, r->errlen, "truncated %s message: %s needs %zu bytes, %zu left",
				   r->what, name, need, reader_left(r));
	return false;
}

static inline bool
reader_need(Reader *r, size_t need, const char *field, unsigned index)
{
	if (reader_left(r) < need)
		return reader_fail_need(r, need, field, index);
	return true;
}

static inline bool
read_u8(Reader *r, uint8_t *out, const char *field)
{
	if (!reader_need(r, 1, field, 0))
		return false;
	*out = *r->p++;
	return true;
}

static inline bool
read_u16(Reader *r, uint16_t *out, const char *field)
{
	if (!reader_need(r, 2, field, 0))
		return false;
	*out = get_u16(r->p);
	r->p += 2;
	return true;
}

static inline bool
read_u32(Reader *r, uint32_t *out, const char *field, unsigned index)
{
	if (!reader_need(r, 4, field, index))
		return false;
	*out = get_u32(r->p);
	r->p += 4;
	return true;
}

static inline bool
read_u64(Reader *r, uint64_t *out, const char *field)
{
	if (!reader_need(r, 8, field, 0))
		return false;
	*out = get_u64(r->p);
	r->p += 8;
	return true;
}

static bool
reader_fail_oom(Reader *r)
{
	pgoutput_error(r->errbuf, r->errlen, "out of memory decoding %s message", r->what);
	return false;
}

/* Copies len bytes plus a NUL into the arena. */
static bool
copy_bytes(Reader *r, const uint8_t *src, size_t len, const char **out)
{
	char *copy = scratch_alloc(r->scratch, len + 1);

	if (copy == NULL)
		return reader_fail_oom(r);
	memcpy(copy, src, len);
	copy[len] = '\0';
	*out = copy;
	return true;
}

/* A NUL-terminated string; the NUL must lie inside the message. */
static bool
read_string(Reader *r, const char **out, const char *field, unsigned index)
{
	const uint8_t *nul = memchr(r->p, '\0', reader_left(r));
	size_t len;
	char name[64];

	if (nul == NULL)
	{
		snprintf(name, sizeof(name), field, index);
		pgoutput_error(r->errbuf, r->errlen,
					   "truncated %s message: %s has no terminating nul in the %zu bytes left",
					   r->what, name, reader_left(r));
		return false;
	}
	len = (size_t) (nul - r->p);
	if (!copy_bytes(r, r->p, len, out))
		return false;
	r->p = nul + 1;
	return true;
}

/* PostgreSQL's MaxTupleAttributeNumber: no relation or tuple can have more columns */
#define PGOUTPUT_MAX_COLUMNS 1664

static bool
check_ncols(Reader *r, unsigned ncols, size_t min_bytes_each, const char *field)
{
	if (ncols > PGOUTPUT_MAX_COLUMNS)
	{
		pgoutput_error(r->errbuf, r->errlen, "malformed %s message: %s has %u columns, at most %d",
					   r->what, field, ncols, PGOUTPUT_MAX_COLUMNS);
		return false;
	}
	/* reject before allocating: every column takes at least min_bytes_each bytes */
	if (reader_left(r) < (size_t) ncols * min_bytes_each)
	{
		pgoutput_error(r->errbuf, r->errlen,
					   "truncated %s message: %s of %u columns needs at least %zu bytes, %zu left",
					   r->what, field, ncols, (size_t) ncols * min_bytes_each, reader_left(r));
		return false;
	}
	return true;
}

/*
 * TupleData. With r->scratch NULL (envelope mode) the values are only walked for length, and
 * the tuple is left empty.
 */
static bool
read_tuple(Reader *r, TupleData *out)
{
	uint16_t ncols;
	TupleValue *values = NULL;

	if (!read_u16(r, &ncols, "tuple column count") ||
		!check_ncols(r, ncols, 1, "tuple"))
		return false;
	if (r->scratch != NULL)
	{
		values = scratch_alloc(r->scratch, (size_t) ncols * sizeof(TupleValue));
		if (values == NULL && ncols > 0)
			return reader_fail_oom(r);
	}

	for (unsigned i = 0; i < ncols; i++)
	{
		uint8_t kind;
		uint32_t len = 0;
		const char *data = NULL;

		if (!reader_need(r, 1, "tuple value %u kind", i + 1))
			return false;
		kind = *r->p++;
		switch (kind)
		{
			case TUPLE_VALUE_NULL:
			case TUPLE_VALUE_UNCHANGED_TOAST:
				break;
			case TUPLE_VALUE_TEXT:
			case TUPLE_VALUE_BINARY:
				if (!read_u32(r, &len, "tuple value %u length", i + 1) ||
					!reader_need(r, len, "tuple value %u", i + 1))
					return false;
				if (r->scratch != NULL && !copy_bytes(r, r->p, len, &data))
					return false;
				r->p += len;
				break;
			default:
				pgoutput_error(r->errbuf, r->errlen,
							   "malformed %s message: tuple value %u has unknown kind 0x%02x",
							   r->what, i + 1, kind);
				return false;
		}
		if (values != NULL)
		{
			values[i].kind = (TupleValueKind) kind;
			values[i].length = len;
			values[i].data = data;
		}
	}
	if (values != NULL)
	{
		out->ncols = ncols;
		out->values = values;
	}
	return true;
}

/* 'K', 'O' or 'N' before a TupleData */
static bool
read_tuple_marker(Reader *r, uint8_t *marker, const char *expected)
{
	if (!read_u8(r, marker, "tuple marker"))
		return false;
	if (strchr(expected, *marker) == NULL || *marker == '\0')
	{
		pgoutput_error(r->errbuf, r->errlen,
					   "malformed %s message: tuple marker 0x%02x, expected one of %s",
					   r->what, *marker, expected);
		return false;
	}
	return true;
}

/* ---- messages ---------------------------------------------------------------------------- */

static bool
decode_relation(Reader *r, PgoutputMessage *out)
{
	uint8_t replident;
	uint16_t ncols;
	RelationColumn *columns;

	if (!read_u32(r, &out->relation.relid, "relid", 0) ||
		!read_string(r, &out->relation.nspname, "nspname", 0) ||
		!read_string(r, &out->relation.relname, "relname", 0) ||
		!read_u8(r, &replident, "replica identity") ||
		!read_u16(r, &ncols, "column count"))
		return false;
	if (replident != 'd' && replident != 'n' && replident != 'f' && replident != 'i')
	{
		pgoutput_error(r->errbuf, r->errlen,
					   "malformed relation message: replica identity 0x%02x", replident);
		return false;
	}
	/* flags, name's NUL, type oid, typmod */
	if (!check_ncols(r, ncols, 10, "relation"))
		return false;
	columns = scratch_alloc(r->scratch, (size_t) ncols * sizeof(RelationColumn));
	if (columns == NULL && ncols > 0)
		return reader_fail_oom(r);
	for (unsigned i = 0; i < ncols; i++)
	{
		uint8_t flags;
		uint32_t typmod;

		if (!read_u8(r, &flags, "column flags") ||
			!read_string(r, &columns[i].name, "column %u name", i + 1) ||
			!read_u32(r, &columns[i].type_oid, "column %u type", i + 1) ||
			!read_u32(r, &typmod, "column %u typmod", i + 1))
			return false;
		columns[i].is_key = (flags & 1) != 0;
		columns[i].typmod = (int32_t) typmod;
	}
	out->relation.replident = (char) replident;
	out->relation.ncols = ncols;
	out->relation.columns = columns;
	return true;
}

static bool
decode_insert(Reader *r, PgoutputMessage *out)
{
	uint8_t marker;

	return read_u32(r, &out->insert.relid, "relid", 0) &&
		read_tuple_marker(r, &marker, "N") &&
		read_tuple(r, &out->insert.new_tuple);
}

static bool
decode_update(Reader *r, PgoutputMessage *out)
{
	uint8_t marker;

	if (!read_u32(r, &out->update.relid, "relid", 0) ||
		!read_tuple_marker(r, &marker, "KON"))
		return false;
	if (marker != 'N')
	{
		out->update.old_kind = (char) marker;
		if (!read_tuple(r, &out->update.old_tuple) ||
			!read_tuple_marker(r, &marker, "N"))
			return false;
	}
	return read_tuple(r, &out->update.new_tuple);
}

static bool
decode_delete(Reader *r, PgoutputMessage *out)
{
	uint8_t marker;

	if (!read_u32(r, &out->delete.relid, "relid", 0) ||
		!read_tuple_marker(r, &marker, "KO"))
		return false;
	out->delete.old_kind = (char) marker;
	return read_tuple(r, &out->delete.old_tuple);
}

static bool
decode_truncate(Reader *r, PgoutputMessage *out)
{
	uint32_t nrelids;
	uint32_t *relids;

	if (!read_u32(r, &nrelids, "relation count", 0) ||
		!read_u8(r, &out->truncate.flags, "flags"))
		return false;
	/* the count is checked against what is left before it sizes an allocation */
	if (nrelids > reader_left(r) / 4)
		return reader_fail_need(r, (size_t) nrelids * 4, "relids", 0);
	relids = scratch_alloc(r->scratch, (size_t) nrelids * sizeof(uint32_t));
	if (relids == NULL && nrelids > 0)
		return reader_fail_oom(r);
	for (uint32_t i = 0; i < nrelids; i++)
	{
		relids[i] = get_u32(r->p);
		r->p += 4;
	}
	out->truncate.nrelids = nrelids;
	out->truncate.relids = relids;
	return true;
}

static bool
decode_message(Reader *r, PgoutputMessage *out)
{
	uint32_t len;

	if (!read_u8(r, &out->message.flags, "flags") ||
		!read_u64(r, &out->message.lsn, "lsn") ||
		!read_string(r, &out->message.prefix, "prefix", 0) ||
		!read_u32(r, &len, "content length", 0) ||
		!reader_need(r, len, "content", 0) ||
		!copy_bytes(r, r->p, len, &out->message.content))
		return false;
	r->p += len;
	out->message.length = len;
	return true;
}

static bool
decode_commit(Reader *r, PgoutputMessage *out)
{
	uint64_t time;

	if (!read_u8(r, &out->commit.flags, "flags") ||
		!read_u64(r, &out->commit.commit_lsn, "commit lsn") ||
		!read_u64(r, &out->commit.end_lsn, "end lsn") ||
		!read_u64(r, &time, "commit time"))
		return false;
	out->commit.commit_time = (int64_t) time;
	return true;
}

static bool
decode_body(Reader *r, uint8_t type, bool in_stream, PgoutputMessage *out)
{
	uint64_t u64;
	uint8_t u8;

	switch (type)
	{
		case 'B':
			if (!read_u64(r, &out->begin.final_lsn, "final lsn") ||
				!read_u64(r, &u64, "commit time") ||
				!read_u32(r, &out->xid, "xid", 0))
				return false;
			out->begin.commit_time = (int64_t) u64;
			return true;
		case 'C':
			return decode_commit(r, out);
		case 'O':
			return read_u64(r, &out->origin.lsn, "origin lsn") &&
				read_string(r, &out->origin.name, "origin name", 0);
		case 'S':
			if (!read_u32(r, &out->xid, "xid", 0) || !read_u8(r, &u8, "first segment"))
				return false;
			out->stream_start.first_segment = u8 != 0;
			return true;
		case 'E':
			return true;
		case 'c':
			return read_u32(r, &out->xid, "xid", 0) && decode_commit(r, out);
		case 'A':
			return read_u32(r, &out->xid, "xid", 0) &&
				read_u32(r, &out->stream_abort.subxid, "subxid", 0);
		default:
			break;
	}

	/* the data messages, which carry the (sub)transaction's xid inside a streamed block */
	if (in_stream && !read_u32(r, &out->xid, "xid", 0))
		return false;
	switch (type)
	{
		case 'R':
			return decode_relation(r, out);
		case 'Y':
			return read_u32(r, &out->type.oid, "type oid", 0) &&
				read_string(r, &out->type.nspname, "nspname", 0) &&
				read_string(r, &out->type.typname, "typname", 0);
		case 'I':
			return decode_insert(r, out);
		case 'U':
			return decode_update(r, out);
		case 'D':
			return decode_delete(r, out);
		case 'T':
			return decode_truncate(r, out);
		case 'M':
			return decode_message(r, out);
		default:
			return false;  /* unreachable: the type was checked by the caller */
	}
}

const char *
pgoutput_kind_name(PgoutputKind kind)
{
	switch (kind)
	{
		case PGOUTPUT_BEGIN: return "begin";
		case PGOUTPUT_COMMIT: return "commit";
		case PGOUTPUT_ORIGIN: return "origin";
		case PGOUTPUT_RELATION: return "relation";
		case PGOUTPUT_TYPE: return "type";
		case PGOUTPUT_INSERT: return "insert";
		case PGOUTPUT_UPDATE: return "update";
		case PGOUTPUT_DELETE: return "delete";
		case PGOUTPUT_TRUNCATE: return "truncate";
		case PGOUTPUT_MESSAGE: return "message";
		case PGOUTPUT_STREAM_START: return "stream start";
		case PGOUTPUT_STREAM_STOP: return "stream stop";
		case PGOUTPUT_STREAM_COMMIT: return "stream commit";
		case PGOUTPUT_STREAM_ABORT: return "stream abort";
	}
	return "unknown";
}

static bool
pgoutput_known_kind(uint8_t type)
{
	return type != 0 && strchr("BCORYIUDTMSEcA", type) != NULL;
}

bool
pgoutput_decode(const uint8_t *data, size_t len, bool in_stream, PgoutputDecodeMode mode,
				PgoutputScratch *scratch, PgoutputMessage *out, char *errbuf, size_t errlen)
{
	Reader r;
	uint8_t type;

	memset(out, 0, sizeof(*out));
	scratch_reset(scratch);
	if (len == 0)
	{
		pgoutput_error(errbuf, errlen, "empty pgoutput message");
		return false;
	}
	type = data[0];
	if (!pgoutput_known_kind(type))
	{
		if (type >= 0x21 && type < 0x7f)
			pgoutput_error(errbuf, errlen, "unknown pgoutput message type '%c'", type);
		else
			pgoutput_error(errbuf, errlen, "unknown pgoutput message type 0x%02x", type);
		return false;
	}
	out->kind = (PgoutputKind) type;

	r.p = data + 1;
	r.end = data + len;
	r.what = pgoutput_kind_name(out->kind);
	r.errbuf = errbuf;
	r.errlen = errlen;
	/* only tuples are skipped in envelope mode; names and the rest are cheap and needed */
	r.scratch = (mode == PGOUTPUT_DECODE_ENVELOPE &&
				 (type == 'I' || type == 'U' || type == 'D')) ? NULL : scratch;

	if (!decode_body(&r, type, in_stream, out))
		return false;
	if (r.p != r.end)
	{
		pgoutput_error(errbuf, errlen, "malformed %s message: %zu trailing bytes",
					   r.what, reader_left(&r));
		return false;
	}
	return true;
}
