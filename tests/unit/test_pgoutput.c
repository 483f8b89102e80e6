/*
 * Unit tests for the pgoutput decoder: hand-built messages of every kind (in and out of a
 * streamed block), every truncation and malformation, the scratch arena, and every message
 * of real PostgreSQL 15 captures (tests/fixtures/pgoutput, from capture-pgoutput.sh).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchyard/pgoutput.h"

/* ---- building messages ------------------------------------------------------------------ */

typedef struct Bytes
{
	uint8_t *data;
	size_t len;
	size_t cap;
} Bytes;

static void
put(Bytes *b, const void *p, size_t n)
{
	if (b->len + n > b->cap)
	{
		b->cap = (b->len + n) * 2 + 64;
		b->data = realloc(b->data, b->cap);
		assert_non_null(b->data);
	}
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void
put8(Bytes *b, uint8_t v)
{
	put(b, &v, 1);
}

static void
put16(Bytes *b, uint16_t v)
{
	uint8_t be[2] = { (uint8_t) (v >> 8), (uint8_t) v };

	put(b, be, 2);
}

static void
put32(Bytes *b, uint32_t v)
{
	uint8_t be[4] = { (uint8_t) (v >> 24), (uint8_t) (v >> 16), (uint8_t) (v >> 8), (uint8_t) v };

	put(b, be, 4);
}

static void
put64(Bytes *b, uint64_t v)
{
	put32(b, (uint32_t) (v >> 32));
	put32(b, (uint32_t) v);
}

static void
put_string(Bytes *b, const char *s)
{
	put(b, s, strlen(s) + 1);
}

static void
put_text(Bytes *b, const char *s)
{
	put8(b, 't');
	put32(b, (uint32_t) strlen(s));
	put(b, s, strlen(s));
}

static void
put_binary(Bytes *b, const void *p, uint32_t len)
{
	put8(b, 'b');
	put32(b, len);
	put(b, p, len);
}

/* Starts a message; data messages get the [xid] when in a streamed block. */
static Bytes
message_start(char kind, bool in_stream, uint32_t xid)
{
	Bytes b = { 0 };

	put8(&b, (uint8_t) kind);
	if (in_stream)
		put32(&b, xid);
	return b;
}

#define XID 1234u
#define SUBXID 1240u
#define RELID 16384u
#define T_2024 INT64_C(762525296789012) /* 2024-02-29 12:34:56.789012 UTC, PG epoch */

static Bytes
build_begin(void)
{
	Bytes b = message_start('B', false, 0);

	put64(&b, UINT64_C(0x16B374D848));
	put64(&b, (uint64_t) T_2024);
	put32(&b, XID);
	return b;
}

static Bytes
build_commit(void)
{
	Bytes b = message_start('C', false, 0);

	put8(&b, 0);
	put64(&b, UINT64_C(0x16B374D848));
	put64(&b, UINT64_C(0x16B374D878));
	put64(&b, (uint64_t) T_2024);
	return b;
}

static Bytes
build_origin(void)
{
	Bytes b = message_start('O', false, 0);

	put64(&b, UINT64_C(0xAB12CD34));
	put_string(&b, "upstream");
	return b;
}

/* public."we""ird tãble" (id int key, "ü" text, payload bytea) */
static Bytes
build_relation(bool in_stream)
{
	Bytes b = message_start('R', in_stream, SUBXID);

	put32(&b, RELID);
	put_string(&b, "public");
	put_string(&b, "we\"ird t\xc3\xa3" "ble");
	put8(&b, 'd');
	put16(&b, 3);
	put8(&b, 1);
	put_string(&b, "id");
	put32(&b, 23);
	put32(&b, UINT32_MAX);  /* typmod -1 */
	put8(&b, 0);
	put_string(&b, "\xc3\xbc");
	put32(&b, 25);
	put32(&b, UINT32_MAX);
	put8(&b, 0);
	put_string(&b, "payload");
	put32(&b, 17);
	put32(&b, 786440);
	return b;
}

static Bytes
build_type(bool in_stream)
{
	Bytes b = message_start('Y', in_stream, SUBXID);

	put32(&b, 16521);
	put_string(&b, "");  /* pg_catalog, as sent for a domain over int4 */
	put_string(&b, "int4");
	return b;
}

static const uint8_t BINARY_VALUE[] = { 0x00, 0xff, 0x00, 0x10 };

/* n, t, b, u in one tuple: what binary mode with a text-only type and TOAST looks like */
static void
put_mixed_tuple(Bytes *b)
{
	put16(b, 4);
	put_text(b, "42");
	put8(b, 'n');
	put_binary(b, BINARY_VALUE, sizeof(BINARY_VALUE));
	put8(b, 'u');
}

static Bytes
build_insert(bool in_stream)
{
	Bytes b = message_start('I', in_stream, SUBXID);

	put32(&b, RELID);
	put8(&b, 'N');
	put16(&b, 4);
	put_text(&b, "42");
	put_text(&b, "");
	put_binary(&b, BINARY_VALUE, sizeof(BINARY_VALUE));
	put8(&b, 'n');
	return b;
}

/* old_kind 0, 'K' or 'O' */
static Bytes
build_update(bool in_stream, char old_kind)
{
	Bytes b = message_start('U', in_stream, SUBXID);

	put32(&b, RELID);
	if (old_kind == 'K')
	{
		put8(&b, 'K');
		put16(&b, 4);
		put_text(&b, "41");
		put8(&b, 'n');
		put8(&b, 'n');
		put8(&b, 'n');
	}
	else if (old_kind == 'O')
	{
		put8(&b, 'O');
		put16(&b, 4);
		put_text(&b, "41");
		put_text(&b, "old");
		put_binary(&b, BINARY_VALUE, 2);
		put_text(&b, "a full old TOAST value");
	}
	put8(&b, 'N');
	put_mixed_tuple(&b);
	return b;
}

static Bytes
build_delete(bool in_stream, char old_kind)
{
	Bytes b = message_start('D', in_stream, SUBXID);

	put32(&b, RELID);
	put8(&b, (uint8_t) old_kind);
	put16(&b, 2);
	put_text(&b, "42");
	if (old_kind == 'K')
		put8(&b, 'n');
	else
		put_text(&b, "{\"a\": 1}");
	return b;
}

static Bytes
build_truncate(bool in_stream)
{
	Bytes b = message_start('T', in_stream, SUBXID);

	put32(&b, 3);
	put8(&b, PGOUTPUT_TRUNCATE_CASCADE | PGOUTPUT_TRUNCATE_RESTART_IDENTITY);
	put32(&b, RELID);
	put32(&b, RELID + 7);
	put32(&b, RELID + 2);
	return b;
}

static const uint8_t MESSAGE_CONTENT[] = { 'h', 'i', 0x00, 0xff, '!' };

static Bytes
build_logical_message(bool in_stream)
{
	Bytes b = message_start('M', in_stream, XID);

	put8(&b, 1);
	put64(&b, UINT64_C(0x40000B0));
	put_string(&b, "switchyard");
	put32(&b, sizeof(MESSAGE_CONTENT));
	put(&b, MESSAGE_CONTENT, sizeof(MESSAGE_CONTENT));
	return b;
}

static Bytes
build_stream_start(bool first)
{
	Bytes b = message_start('S', false, 0);

	put32(&b, XID);
	put8(&b, first ? 1 : 0);
	return b;
}

static Bytes
build_stream_stop(void)
{
	return message_start('E', false, 0);
}

static Bytes
build_stream_commit(void)
{
	Bytes b = message_start('c', false, 0);

	put32(&b, XID);
	put8(&b, 0);
	put64(&b, UINT64_C(0x3000100));
	put64(&b, UINT64_C(0x3000130));
	put64(&b, (uint64_t) T_2024);
	return b;
}

static Bytes
build_stream_abort(void)
{
	Bytes b = message_start('A', false, 0);

	put32(&b, XID);
	put32(&b, SUBXID);
	return b;
}

/* ---- decoding helpers ------------------------------------------------------------------- */

static PgoutputScratch *scratch;

static int
group_setup(void **state)
{
	scratch = pgoutput_scratch_new();
	return scratch == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	pgoutput_scratch_free(scratch);
	return 0;
}

/*
 * Decodes from a heap copy of exactly len bytes, so that valgrind (or ASan) flags any read
 * past the end instead of it landing in the builder's spare capacity.
 */
static bool
decode_exact(const uint8_t *data, size_t len, bool in_stream, PgoutputDecodeMode mode,
			 PgoutputMessage *out, char *err, size_t errlen)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	bool ok;

	assert_non_null(copy);
	if (len > 0)
		memcpy(copy, data, len);
	ok = pgoutput_decode(copy, len, in_stream, mode, scratch, out, err, errlen);
	free(copy);
	return ok;
}

/*
 * Decodes a heap copy that stays alive, so the caller can compare decoded values; freed by
 * the next call.
 */
static void
decode_ok(const Bytes *b, bool in_stream, PgoutputDecodeMode mode, PgoutputMessage *out)
{
	static uint8_t *copy;
	char err[256] = "";

	free(copy);
	copy = malloc(b->len);
	assert_non_null(copy);
	memcpy(copy, b->data, b->len);
	if (!pgoutput_decode(copy, b->len, in_stream, mode, scratch, out, err, sizeof(err)))
		fail_msg("decode failed: %s", err);
}

static void
assert_one_line_lower_case(const char *err)
{
	assert_true(err[0] != '\0');
	assert_null(strchr(err, '\n'));
	assert_false(err[0] >= 'A' && err[0] <= 'Z');
	assert_true(err[strlen(err) - 1] != '.');
}

static void
decode_fails(const Bytes *b, bool in_stream, PgoutputDecodeMode mode, const char *expected)
{
	PgoutputMessage m;
	char err[256] = "";

	if (decode_exact(b->data, b->len, in_stream, mode, &m, err, sizeof(err)))
		fail_msg("decode succeeded, expected failure \"%s\"", expected);
	assert_one_line_lower_case(err);
	if (strstr(err, expected) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", err, expected);
}

static void
assert_text(const TupleValue *v, const char *text)
{
	assert_int_equal(v->kind, TUPLE_VALUE_TEXT);
	assert_int_equal(v->length, strlen(text));
	assert_non_null(v->data);
	assert_string_equal(v->data, text);
}

static void
assert_binary(const TupleValue *v, const void *data, uint32_t len)
{
	assert_int_equal(v->kind, TUPLE_VALUE_BINARY);
	assert_int_equal(v->length, len);
	assert_memory_equal(v->data, data, len);
	assert_int_equal(v->data[len], '\0');  /* NUL-terminated even when binary */
}

static void
assert_no_data(const TupleValue *v, TupleValueKind kind)
{
	assert_int_equal(v->kind, kind);
	assert_int_equal(v->length, 0);
	assert_null(v->data);
}

static void
assert_mixed_tuple(const TupleData *t)
{
	assert_int_equal(t->ncols, 4);
	assert_text(&t->values[0], "42");
	assert_no_data(&t->values[1], TUPLE_VALUE_NULL);
	assert_binary(&t->values[2], BINARY_VALUE, sizeof(BINARY_VALUE));
	assert_no_data(&t->values[3], TUPLE_VALUE_UNCHANGED_TOAST);
}

/* ---- the CopyBoth wrapper --------------------------------------------------------------- */

static void
frame_xlogdata_parsed(void **state)
{
	Bytes b = { 0 };
	ReplicationFrame f;
	char err[128] = "";

	put8(&b, 'w');
	put64(&b, UINT64_C(0x16B374D848));
	put64(&b, UINT64_C(0x16B374D900));
	put64(&b, (uint64_t) T_2024);
	put8(&b, 'E');
	assert_true(pgoutput_parse_frame(b.data, b.len, &f, err, sizeof(err)));
	assert_int_equal(f.kind, 'w');
	assert_int_equal(f.data_start, UINT64_C(0x16B374D848));
	assert_int_equal(f.wal_end, UINT64_C(0x16B374D900));
	assert_int_equal(f.send_time, T_2024);
	assert_false(f.reply_requested);
	assert_ptr_equal(f.payload, b.data + 25);
	assert_int_equal(f.payload_len, 1);
	free(b.data);
}

static void
frame_keepalive_parsed(void **state)
{
	ReplicationFrame f;
	char err[128] = "";

	for (int reply = 0; reply <= 1; reply++)
	{
		Bytes b = { 0 };

		put8(&b, 'k');
		put64(&b, UINT64_C(0xFFFFFFFF00000001));
		put64(&b, (uint64_t) -T_2024);  /* before 2000: negative timestamps survive */
		put8(&b, (uint8_t) reply);
		assert_true(pgoutput_parse_frame(b.data, b.len, &f, err, sizeof(err)));
		assert_int_equal(f.kind, 'k');
		assert_int_equal(f.wal_end, UINT64_C(0xFFFFFFFF00000001));
		assert_int_equal(f.send_time, -T_2024);
		assert_int_equal(f.reply_requested, reply == 1);
		assert_null(f.payload);
		assert_int_equal(f.payload_len, 0);
		free(b.data);
	}
}

static void
frame_rejects_malformed(void **state)
{
	uint8_t buf[40] = { 0 };
	ReplicationFrame f;
	char err[128];

	assert_false(pgoutput_parse_frame(buf, 0, &f, err, sizeof(err)));
	assert_one_line_lower_case(err);
	buf[0] = 'w';
	for (size_t len = 1; len <= 25; len++)  /* 25: a header without a message */
	{
		err[0] = '\0';
		assert_false(pgoutput_parse_frame(buf, len, &f, err, sizeof(err)));
		assert_one_line_lower_case(err);
	}
	buf[0] = 'k';
	for (size_t len = 1; len < sizeof(buf); len++)
	{
		err[0] = '\0';
		if (len == 18)
			continue;
		assert_false(pgoutput_parse_frame(buf, len, &f, err, sizeof(err)));
		assert_one_line_lower_case(err);
	}
	buf[0] = 'r';  /* only the client sends those */
	assert_false(pgoutput_parse_frame(buf, 34, &f, err, sizeof(err)));
	assert_non_null(strstr(err, "unknown replication frame type 0x72"));
}

static void
status_update_layout(void **state)
{
	uint8_t out[STATUS_UPDATE_SIZE + 1];
	const uint8_t expected[STATUS_UPDATE_SIZE] = {
		'r',
		0x00, 0x00, 0x00, 0x16, 0xB3, 0x74, 0xD8, 0x48,
		0x00, 0x00, 0x00, 0x16, 0xB3, 0x74, 0xD8, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x02, 0xB5, 0x83, 0x41, 0x72, 0x86, 0x14,
		0x01,
	};

	memset(out, 0xAA, sizeof(out));
	assert_int_equal(pgoutput_build_status_update(out, UINT64_C(0x16B374D848),
												  UINT64_C(0x16B374D800), 0, T_2024, true),
					 STATUS_UPDATE_SIZE);
	assert_memory_equal(out, expected, STATUS_UPDATE_SIZE);
	assert_int_equal(out[STATUS_UPDATE_SIZE], 0xAA);  /* writes exactly 34 bytes */

	pgoutput_build_status_update(out, 1, 2, 3, 4, false);
	assert_int_equal(out[33], 0);
	assert_int_equal(out[8], 1);
	assert_int_equal(out[16], 2);
	assert_int_equal(out[24], 3);
	assert_int_equal(out[32], 4);
}

/* ---- every message kind ------------------------------------------------------------------ */

static void
begin_decoded(void **state)
{
	Bytes b = build_begin();
	PgoutputMessage m;

	assert_int_equal(b.len, 21);
	decode_ok(&b, false, PGOUTPUT_DECODE_FULL, &m);
	assert_int_equal(m.kind, PGOUTPUT_BEGIN);
	assert_int_equal(m.xid, XID);
	assert_int_equal(m.begin.final_lsn, UINT64_C(0x16B374D848));
	assert_int_equal(m.begin.commit_time, T_2024);
	free(b.data);
}

static void
commit_decoded(void **state)
{
	Bytes b = build_commit();
	PgoutputMessage m;

	assert_int_equal(b.len, 26);
	decode_ok(&b, false, PGOUTPUT_DECODE_ENVELOPE, &m);
	assert_int_equal(m.kind, PGOUTPUT_COMMIT);
	assert_int_equal(m.xid, 0);
	assert_int_equal(m.commit.flags, 0);
	assert_int_equal(m.commit.commit_lsn, UINT64_C(0x16B374D848));
	assert_int_equal(m.commit.end_lsn, UINT64_C(0x16B374D878));
	assert_int_equal(m.commit.commit_time, T_2024);
	free(b.data);
}

static void
origin_decoded(void **state)
{
	Bytes b = build_origin();
	PgoutputMessage m;

	decode_ok(&b, false, PGOUTPUT_DECODE_FULL, &m);
	assert_int_equal(m.kind, PGOUTPUT_ORIGIN);
	assert_int_equal(m.origin.lsn, UINT64_C(0xAB12CD34));
	assert_string_equal(m.origin.name, "upstream");
	free(b.data);
}

static void
check_relation(const PgoutputMessage *m)
{
	assert_int_equal(m->kind, PGOUTPUT_RELATION);
	assert_int_equal(m->relation.relid, RELID);
	assert_string_equal(m->relation.nspname, "public");
	assert_string_equal(m->relation.relname, "we\"ird t\xc3\xa3" "ble");
	assert_int_equal(m->relation.replident, 'd');
	assert_int_equal(m->relation.ncols, 3);
	assert_true(m->relation.columns[0].is_key);
	assert_string_equal(m->relation.columns[0].name, "id");
	assert_int_equal(m->relation.columns[0].type_oid, 23);
	assert_int_equal(m->relation.columns[0].typmod, -1);
	assert_false(m->relation.columns[1].is_key);
	assert_string_equal(m->relation.columns[1].name, "\xc3\xbc");
	assert_int_equal(m->relation.columns[1].type_oid, 25);
	assert_string_equal(m->relation.columns[2].name, "payload");
	assert_int_equal(m->relation.columns[2].type_oid, 17);
	assert_int_equal(m->relation.columns[2].typmod, 786440);
}

static void
relation_decoded(void **state)
{
	Bytes b = build_relation(false);
	PgoutputMessage m;

	decode_ok(&b, false, PGOUTPUT_DECODE_FULL, &m);
	check_relation(&m);
	assert_int_equal(m.xid, 0);
	/* the receiver needs relations too: the envelope decodes them fully */
	decode_ok(&b, false, PGOUTPUT_DECODE_ENVELOPE, &m);
	check_relation(&m);
	free(b.data);
}

static void
relation_in_stream_has_xid(void **state)
{
	Bytes b = build_relation(true);
	PgoutputMessage m;

	decode_ok(&b, true, PGOUTPUT_DECODE_FULL, &m);
	check_relation(&m);
	assert_int_equal(m.xid, SUBXID);
	/* read as if outside a stream, the xid shifts everything: it must not decode */
	decode_fails(&b, false, PGOUTPUT_DECODE_FULL, "");
	free(b.data);
}

static void
type_decoded(void **state)
{
	for (int in_stream = 0; in_stream <= 1; in_stream++)
	{
		Bytes b = build_type(in_stream);
		PgoutputMessage m;

		decode_ok(&b, in_stream, PGOUTPUT_DECODE_FULL, &m);
		assert_int_equal(m.kind, PGOUTPUT_TYPE);
		assert_int_equal(m.xid, in_stream ? SUBXID : 0);
		assert_int_equal(m.type.oid, 16521);
		assert_string_equal(m.type.nspname, "");
		assert_string_equal(m.type.typname, "int4");
		free(b.data);
	}
}

static void
insert_mixed_text_binary_null(void **state)
{
	for (int in_stream = 0; in_stream <= 1; in_stream++)
	{
		Bytes b = build_insert(in_stream);
		PgoutputMessage m;
		const TupleData *t;

		decode_ok(&b, in_stream, PGOUTPUT_DECODE_FULL, &m);
		assert_int_equal(m.kind, PGOUTPUT_INSERT);
		assert_int_equal(m.xid, in_stream ? SUBXID : 0);
		assert_int_equal(m.insert.relid, RELID);
		t = &m.insert.new_tuple;
		assert_int_equal(t->ncols, 4);
		assert_text(&t->values[0], "42");
		assert_text(&t->values[1], "");
		assert_binary(&t->values[2], BINARY_VALUE, sizeof(BINARY_VALUE));
		assert_no_data(&t->values[3], TUPLE_VALUE_NULL);
		/* values are copies: libpq gets NUL-terminated text, the input can go */
		assert_true((const uint8_t *) t->values[0].data < b.data ||
					(const uint8_t *) t->values[0].data >= b.data + b.len);
		free(b.data);
	}
}

static void
update_without_old_tuple(void **state)
{
	for (int in_stream = 0; in_stream <= 1; in_stream++)
	{
		Bytes b = build_update(in_stream, 0);
		PgoutputMessage m;

		decode_ok(&b, in_stream, PGOUTPUT_DECODE_FULL, &m);
		assert_int_equal(m.kind, PGOUTPUT_UPDATE);
		assert_int_equal(m.xid, in_stream ? SUBXID : 0);
		assert_int_equal(m.update.relid, RELID);
		assert_int_equal(m.update.old_kind, 0);
		assert_int_equal(m.update.old_tuple.ncols, 0);
		assert_null(m.update.old_tuple.values);
		assert_mixed_tuple(&m.update.new_tuple);
		free(b.data);
	}
}

static void
update_with_key_tuple(void **state)
{
	for (int in_stream = 0; in_stream <= 1; in_stream++)
	{
		Bytes b = build_update(in_stream, 'K');
		PgoutputMessage m;

		decode_ok(&b, in_stream, PGOUTPUT_DECODE_FULL, &m);
		assert_int_equal(m.update.old_kind, 'K');
		assert_int_equal(m.update.old_tuple.ncols, 4);
		assert_text(&m.update.old_tuple.values[0], "41");
		for (int i = 1; i < 4; i++)
			assert_no_data(&m.update.old_tuple.values[i], TUPLE_VALUE_NULL);
		assert_mixed_tuple(&m.update.new_tuple);
		free(b.data);
	}
}

static void
update_with_old_row_and_unchanged_toast(void **state)
{
	for (int in_stream = 0; in_stream <= 1; in_stream++)
	{
		Bytes b = build_update(in_stream, 'O');
		PgoutputMessage m;

		decode_ok(&b, in_stream, PGOUTPUT_DECODE_FULL, &m);
		assert_int_equal(m.update.old_kind, 'O');
		assert_int_equal(m.update.old_tuple.ncols, 4);
		assert_text(&m.update.old_tuple.values[0], "41");
		assert_text(&m.update.old_tuple.values[1], "old");
		assert_binary(&m.update.old_tuple.values[2], BINARY_VALUE, 2);
		assert_text(&m.update.old_tuple.values[3], "a full old TOAST value");
		/* the new row's TOASTed column the statement did not touch */
		assert_mixed_tuple(&m.update.new_tuple);
		assert_int_equal(m.update.new_tuple.values[3].kind, TUPLE_VALUE_UNCHANGED_TOAST);
		free(b.data);
	}
}

static void
delete_with_key_or_old_row(void **state)
{
	for (int in_stream = 0; in_stream <= 1; in_stream++)
	{
		Bytes k = build_delete(in_stream, 'K');
		Bytes o = build_delete(in_stream, 'O');
		PgoutputMessage m;

		decode_ok(&k, in_stream, PGOUTPUT_DECODE_FULL, &m);
		assert_int_equal(m.kind, PGOUTPUT_DELETE);
		assert_int_equal(m.xid, in_stream ? SUBXID : 0);
		assert_int_equal(m.delete.relid, RELID);
		assert_int_equal(m.delete.old_kind, 'K');
		assert_int_equal(m.delete.old_tuple.ncols, 2);
		assert_text(&m.delete.old_tuple.values[0], "42");
		assert_no_data(&m.delete.old_tuple.values[1], TUPLE_VALUE_NULL);

		decode_ok(&o, in_stream, PGOUTPUT_DECODE_FULL, &m);
		assert_int_equal(m.delete.old_kind, 'O');
		assert_text(&m.delete.old_tuple.values[1], "{\"a\": 1}");
		free(k.data);
		free(o.data);
	}
}

static void
truncate_with_cascade_and_restart_identity(void **state)
{
	for (int in_stream = 0; in_stream <= 1; in_stream++)
	{
		Bytes b = build_truncate(in_stream);
		PgoutputMessage m;

		decode_ok(&b, in_stream, PGOUTPUT_DECODE_ENVELOPE, &m);
		assert_int_equal(m.kind, PGOUTPUT_TRUNCATE);
		assert_int_equal(m.xid, in_stream ? SUBXID : 0);
		assert_int_equal(m.truncate.flags,
						 PGOUTPUT_TRUNCATE_CASCADE | PGOUTPUT_TRUNCATE_RESTART_IDENTITY);
		assert_int_equal(m.truncate.nrelids, 3);
		assert_int_equal(m.truncate.relids[0], RELID);
		assert_int_equal(m.truncate.relids[1], RELID + 7);
		assert_int_equal(m.truncate.relids[2], RELID + 2);
		free(b.data);
	}
}

static void
logical_message_decoded(void **state)
{
	for (int in_stream = 0; in_stream <= 1; in_stream++)
	{
		Bytes b = build_logical_message(in_stream);
		PgoutputMessage m;

		decode_ok(&b, in_stream, PGOUTPUT_DECODE_FULL, &m);
		assert_int_equal(m.kind, PGOUTPUT_MESSAGE);
		assert_int_equal(m.xid, in_stream ? XID : 0);
		assert_int_equal(m.message.flags, 1);
		assert_int_equal(m.message.lsn, UINT64_C(0x40000B0));
		assert_string_equal(m.message.prefix, "switchyard");
		assert_int_equal(m.message.length, sizeof(MESSAGE_CONTENT));
		assert_memory_equal(m.message.content, MESSAGE_CONTENT, sizeof(MESSAGE_CONTENT));
		assert_int_equal(m.message.content[sizeof(MESSAGE_CONTENT)], '\0');
		free(b.data);
	}
}

static void
empty_logical_message_decoded(void **state)
{
	Bytes b = message_start('M', false, 0);
	PgoutputMessage m;

	put8(&b, 0);
	put64(&b, 1);
	put_string(&b, "");
	put32(&b, 0);
	decode_ok(&b, false, PGOUTPUT_DECODE_FULL, &m);
	assert_int_equal(m.message.length, 0);
	assert_string_equal(m.message.prefix, "");
	assert_string_equal(m.message.content, "");
	free(b.data);
}

static void
stream_control_messages_decoded(void **state)
{
	Bytes start = build_stream_start(true);
	Bytes again = build_stream_start(false);
	Bytes stop = build_stream_stop();
	Bytes commit = build_stream_commit();
	Bytes abort = build_stream_abort();
	PgoutputMessage m;

	/* S, E, c, A never carry the [xid] prefix, whatever the caller's stream state */
	for (int in_stream = 0; in_stream <= 1; in_stream++)
	{
		decode_ok(&start, in_stream, PGOUTPUT_DECODE_ENVELOPE, &m);
		assert_int_equal(m.kind, PGOUTPUT_STREAM_START);
		assert_int_equal(m.xid, XID);
		assert_true(m.stream_start.first_segment);
		decode_ok(&again, in_stream, PGOUTPUT_DECODE_ENVELOPE, &m);
		assert_false(m.stream_start.first_segment);

		decode_ok(&stop, in_stream, PGOUTPUT_DECODE_ENVELOPE, &m);
		assert_int_equal(m.kind, PGOUTPUT_STREAM_STOP);
		assert_int_equal(m.xid, 0);

		decode_ok(&commit, in_stream, PGOUTPUT_DECODE_ENVELOPE, &m);
		assert_int_equal(m.kind, PGOUTPUT_STREAM_COMMIT);
		assert_int_equal(m.xid, XID);
		assert_int_equal(m.commit.flags, 0);
		assert_int_equal(m.commit.commit_lsn, UINT64_C(0x3000100));
		assert_int_equal(m.commit.end_lsn, UINT64_C(0x3000130));
		assert_int_equal(m.commit.commit_time, T_2024);

		decode_ok(&abort, in_stream, PGOUTPUT_DECODE_ENVELOPE, &m);
		assert_int_equal(m.kind, PGOUTPUT_STREAM_ABORT);
		assert_int_equal(m.xid, XID);
		assert_int_equal(m.stream_abort.subxid, SUBXID);
	}
	free(start.data);
	free(again.data);
	free(stop.data);
	free(commit.data);
	free(abort.data);
}

static void
envelope_skips_tuples(void **state)
{
	for (int in_stream = 0; in_stream <= 1; in_stream++)
	{
		Bytes msgs[] = {
			build_insert(in_stream), build_update(in_stream, 0), build_update(in_stream, 'K'),
			build_update(in_stream, 'O'), build_delete(in_stream, 'K'),
			build_delete(in_stream, 'O'),
		};

		for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++)
		{
			PgoutputMessage full;
			PgoutputMessage env;

			decode_ok(&msgs[i], in_stream, PGOUTPUT_DECODE_FULL, &full);
			decode_ok(&msgs[i], in_stream, PGOUTPUT_DECODE_ENVELOPE, &env);
			assert_int_equal(env.kind, full.kind);
			assert_int_equal(env.xid, full.xid);
			switch (env.kind)
			{
				case PGOUTPUT_INSERT:
					assert_int_equal(env.insert.relid, RELID);
					assert_int_equal(env.insert.new_tuple.ncols, 0);
					assert_null(env.insert.new_tuple.values);
					break;
				case PGOUTPUT_UPDATE:
					assert_int_equal(env.update.relid, RELID);
					assert_int_equal(env.update.old_kind, full.update.old_kind);
					assert_null(env.update.old_tuple.values);
					assert_null(env.update.new_tuple.values);
					assert_int_equal(env.update.new_tuple.ncols, 0);
					break;
				case PGOUTPUT_DELETE:
					assert_int_equal(env.delete.relid, RELID);
					assert_int_equal(env.delete.old_kind, full.delete.old_kind);
					assert_null(env.delete.old_tuple.values);
					break;
				default:
					fail();
			}
			free(msgs[i].data);
		}
	}
}

static void
envelope_still_validates_tuples(void **state)
{
	Bytes b = build_insert(false);

	b.data[b.len - 1] = 'x';  /* the last column's kind */
	decode_fails(&b, false, PGOUTPUT_DECODE_ENVELOPE, "unknown kind 0x78");
	b.len -= 3;
	decode_fails(&b, false, PGOUTPUT_DECODE_ENVELOPE, "truncated insert message");
	free(b.data);
}

/* ---- malformed input --------------------------------------------------------------------- */

static void
rejects_empty_and_unknown_type(void **state)
{
	const char *two_phase = "bPKrp";  /* proto_version 3 only; never requested */
	Bytes b = { 0 };

	decode_fails(&b, false, PGOUTPUT_DECODE_FULL, "empty pgoutput message");
	put8(&b, 'Z');
	put32(&b, 1);
	decode_fails(&b, false, PGOUTPUT_DECODE_FULL, "unknown pgoutput message type 'Z'");
	b.data[0] = 0;
	decode_fails(&b, false, PGOUTPUT_DECODE_FULL, "unknown pgoutput message type 0x00");
	for (const char *p = two_phase; *p; p++)
	{
		b.data[0] = (uint8_t) *p;
		decode_fails(&b, false, PGOUTPUT_DECODE_FULL, "unknown pgoutput message type");
	}
	free(b.data);
}

static void
rejects_bad_tuple_kind(void **state)
{
	Bytes b = message_start('I', false, 0);

	put32(&b, RELID);
	put8(&b, 'N');
	put16(&b, 2);
	put_text(&b, "1");
	put8(&b, 'T');
	decode_fails(&b, false, PGOUTPUT_DECODE_FULL,
				 "malformed insert message: tuple value 2 has unknown kind 0x54");
	free(b.data);
}

static void
rejects_bad_tuple_marker(void **state)
{
	Bytes insert_k = build_insert(false);
	Bytes delete_n = build_delete(false, 'K');
	Bytes update_x = build_update(false, 'K');
	Bytes update_nn = build_update(false, 'O');

	insert_k.data[5] = 'K';
	decode_fails(&insert_k, false, PGOUTPUT_DECODE_FULL, "tuple marker 0x4b, expected one of N");
	delete_n.data[5] = 'N';
	decode_fails(&delete_n, false, PGOUTPUT_DECODE_ENVELOPE, "expected one of KO");
	update_x.data[5] = 'X';
	decode_fails(&update_x, false, PGOUTPUT_DECODE_FULL, "expected one of KON");
	update_nn.data[5] = 0;
	decode_fails(&update_nn, false, PGOUTPUT_DECODE_FULL, "tuple marker 0x00");
	free(insert_k.data);
	free(delete_n.data);
	free(update_x.data);
	free(update_nn.data);
}

static void
rejects_bad_replica_identity(void **state)
{
	Bytes b = build_relation(false);

	/* 'R', relid, "public\0", name with its NUL, then replident */
	b.data[1 + 4 + 7 + strlen("we\"ird t\xc3\xa3" "ble") + 1] = 'x';
	decode_fails(&b, false, PGOUTPUT_DECODE_FULL, "malformed relation message: replica identity");
	free(b.data);
}

typedef Bytes (*Builder)(bool in_stream);

static Bytes build_begin_any(bool s) { (void) s; return build_begin(); }
static Bytes build_commit_any(bool s) { (void) s; return build_commit(); }
static Bytes build_origin_any(bool s) { (void) s; return build_origin(); }
static Bytes build_update_k(bool s) { return build_update(s, 'K'); }
static Bytes build_update_o(bool s) { return build_update(s, 'O'); }
static Bytes build_update_plain(bool s) { return build_update(s, 0); }
static Bytes build_delete_k(bool s) { return build_delete(s, 'K'); }
static Bytes build_delete_o(bool s) { return build_delete(s, 'O'); }
static Bytes build_start_any(bool s) { (void) s; return build_stream_start(true); }
static Bytes build_stop_any(bool s) { (void) s; return build_stream_stop(); }
static Bytes build_stream_commit_any(bool s) { (void) s; return build_stream_commit(); }
static Bytes build_stream_abort_any(bool s) { (void) s; return build_stream_abort(); }

static const Builder every_kind[] = {
	build_begin_any, build_commit_any, build_origin_any, build_relation, build_type,
	build_insert, build_update_plain, build_update_k, build_update_o, build_delete_k,
	build_delete_o, build_truncate, build_logical_message, build_start_any, build_stop_any,
	build_stream_commit_any, build_stream_abort_any,
};

static void
rejects_trailing_bytes(void **state)
{
	for (int in_stream = 0; in_stream <= 1; in_stream++)
	{
		for (size_t i = 0; i < sizeof(every_kind) / sizeof(every_kind[0]); i++)
		{
			Bytes b = every_kind[i](in_stream);

			put8(&b, 0);
			decode_fails(&b, in_stream, PGOUTPUT_DECODE_FULL, "1 trailing bytes");
			decode_fails(&b, in_stream, PGOUTPUT_DECODE_ENVELOPE, "1 trailing bytes");
			free(b.data);
		}
	}
}

static void
truncation_at_every_offset_fails(void **state)
{
	size_t checked = 0;

	for (int in_stream = 0; in_stream <= 1; in_stream++)
	{
		for (size_t i = 0; i < sizeof(every_kind) / sizeof(every_kind[0]); i++)
		{
			Bytes b = every_kind[i](in_stream);

			for (size_t len = 0; len < b.len; len++)
			{
				for (int mode = PGOUTPUT_DECODE_FULL; mode <= PGOUTPUT_DECODE_ENVELOPE; mode++)
				{
					PgoutputMessage m;
					char err[256] = "";

					if (decode_exact(b.data, len, in_stream, mode, &m, err, sizeof(err)))
						fail_msg("'%c' truncated to %zu of %zu bytes decoded", b.data[0], len,
								 b.len);
					assert_one_line_lower_case(err);
					checked++;
				}
			}
			free(b.data);
		}
	}
	assert_true(checked > 1000);
}

static void
reports_what_was_truncated(void **state)
{
	Bytes b = message_start('U', false, 0);
	PgoutputMessage m;
	char err[256];

	put32(&b, RELID);
	put8(&b, 'N');
	put16(&b, 3);
	put_text(&b, "1");
	put8(&b, 'n');
	put8(&b, 't');
	put32(&b, 120);
	put(&b, "1234567", 7);
	assert_false(decode_exact(b.data, b.len, false, PGOUTPUT_DECODE_FULL, &m, err, sizeof(err)));
	assert_string_equal(err, "truncated update message: tuple value 3 needs 120 bytes, 7 left");
	free(b.data);
}

static void
rejects_value_length_past_end(void **state)
{
	Bytes b = message_start('I', false, 0);

	put32(&b, RELID);
	put8(&b, 'N');
	put16(&b, 1);
	put8(&b, 'b');
	put32(&b, UINT32_MAX);  /* -1 as Int32: a length no message can hold */
	put(&b, "abc", 3);
	decode_fails(&b, false, PGOUTPUT_DECODE_FULL, "tuple value 1 needs 4294967295 bytes, 3 left");
	decode_fails(&b, false, PGOUTPUT_DECODE_ENVELOPE, "needs 4294967295 bytes");
	free(b.data);
}

static void
rejects_absurd_column_counts(void **state)
{
	Bytes tuple = message_start('I', false, 0);
	Bytes wide = message_start('I', false, 0);
	Bytes rel = message_start('R', false, 0);

	/* claims 65535 columns with 3 bytes left: refused before any allocation */
	put32(&tuple, RELID);
	put8(&tuple, 'N');
	put16(&tuple, 65535);
	put(&tuple, "nnn", 3);
	decode_fails(&tuple, false, PGOUTPUT_DECODE_FULL, "65535 columns");

	/* every column present, but more than PostgreSQL allows in any tuple */
	put32(&wide, RELID);
	put8(&wide, 'N');
	put16(&wide, 2000);
	for (int i = 0; i < 2000; i++)
		put8(&wide, 'n');
	decode_fails(&wide, false, PGOUTPUT_DECODE_ENVELOPE, "has 2000 columns, at most 1664");

	put32(&rel, RELID);
	put_string(&rel, "public");
	put_string(&rel, "t");
	put8(&rel, 'd');
	put16(&rel, 60000);
	put8(&rel, 1);
	put_string(&rel, "id");
	put32(&rel, 23);
	put32(&rel, UINT32_MAX);
	decode_fails(&rel, false, PGOUTPUT_DECODE_FULL, "malformed relation message");
	free(tuple.data);
	free(wide.data);
	free(rel.data);
}

static void
rejects_truncate_count_past_end(void **state)
{
	Bytes b = message_start('T', false, 0);

	put32(&b, 0x40000000);
	put8(&b, 0);
	put32(&b, RELID);
	decode_fails(&b, false, PGOUTPUT_DECODE_FULL, "truncated truncate message: relids");
	free(b.data);
}

static void
rejects_string_without_nul(void **state)
{
	Bytes b = message_start('Y', false, 0);

	put32(&b, 16521);
	put_string(&b, "public");
	put(&b, "mood", 4);
	decode_fails(&b, false, PGOUTPUT_DECODE_FULL,
				 "truncated type message: typname has no terminating nul in the 4 bytes left");
	free(b.data);
}

static void
rejects_message_content_past_end(void **state)
{
	Bytes b = message_start('M', false, 0);

	put8(&b, 1);
	put64(&b, 1);
	put_string(&b, "p");
	put32(&b, 10);
	put(&b, "short", 5);
	decode_fails(&b, false, PGOUTPUT_DECODE_ENVELOPE, "content needs 10 bytes, 5 left");
	free(b.data);
}

static void
errbuf_is_optional(void **state)
{
	Bytes b = build_insert(false);
	PgoutputMessage m;
	ReplicationFrame f;
	char err[1] = { 'x' };

	assert_false(pgoutput_decode(b.data, 3, false, PGOUTPUT_DECODE_FULL, scratch, &m, NULL, 0));
	assert_false(pgoutput_decode(b.data, 3, false, PGOUTPUT_DECODE_FULL, scratch, &m, err, 0));
	assert_int_equal(err[0], 'x');
	assert_false(pgoutput_decode(b.data, 3, false, PGOUTPUT_DECODE_FULL, scratch, &m, err, 1));
	assert_int_equal(err[0], '\0');
	assert_false(pgoutput_parse_frame(b.data, 0, &f, NULL, 0));
	free(b.data);
}

static void
kind_names(void **state)
{
	const struct { PgoutputKind kind; const char *name; } names[] = {
		{ PGOUTPUT_BEGIN, "begin" }, { PGOUTPUT_COMMIT, "commit" },
		{ PGOUTPUT_ORIGIN, "origin" }, { PGOUTPUT_RELATION, "relation" },
		{ PGOUTPUT_TYPE, "type" }, { PGOUTPUT_INSERT, "insert" },
		{ PGOUTPUT_UPDATE, "update" }, { PGOUTPUT_DELETE, "delete" },
		{ PGOUTPUT_TRUNCATE, "truncate" }, { PGOUTPUT_MESSAGE, "message" },
		{ PGOUTPUT_STREAM_START, "stream start" }, { PGOUTPUT_STREAM_STOP, "stream stop" },
		{ PGOUTPUT_STREAM_COMMIT, "stream commit" }, { PGOUTPUT_STREAM_ABORT, "stream abort" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_string_equal(pgoutput_kind_name(names[i].kind), names[i].name);
	assert_string_equal(pgoutput_kind_name((PgoutputKind) 'Z'), "unknown");
}

/* ---- the scratch arena ------------------------------------------------------------------ */

/* An insert of ncols text values of value_len bytes, value i filled with 'a' + i % 26. */
static Bytes
build_wide_insert(unsigned ncols, size_t value_len)
{
	Bytes b = message_start('I', false, 0);
	char *value = malloc(value_len);

	assert_non_null(value);
	put32(&b, RELID);
	put8(&b, 'N');
	put16(&b, (uint16_t) ncols);
	for (unsigned i = 0; i < ncols; i++)
	{
		memset(value, 'a' + (int) (i % 26), value_len);
		put8(&b, 't');
		put32(&b, (uint32_t) value_len);
		put(&b, value, value_len);
	}
	free(value);
	return b;
}

static void
check_wide_insert(const PgoutputMessage *m, unsigned ncols, size_t value_len)
{
	assert_int_equal(m->insert.new_tuple.ncols, ncols);
	for (unsigned i = 0; i < ncols; i++)
	{
		const TupleValue *v = &m->insert.new_tuple.values[i];

		assert_int_equal(v->length, value_len);
		assert_int_equal(v->data[0], 'a' + (int) (i % 26));
		assert_int_equal(v->data[value_len - 1], 'a' + (int) (i % 26));
		assert_int_equal(v->data[value_len], '\0');
	}
}

static void
values_stay_valid_across_arena_blocks(void **state)
{
	/* 300 x 20 kB: many blocks, values bigger than what is left in a block, and reuse */
	Bytes big = build_wide_insert(300, 20000);
	Bytes odd = build_wide_insert(7, 70000);
	PgoutputMessage m;

	for (int round = 0; round < 3; round++)
	{
		decode_ok(&big, false, PGOUTPUT_DECODE_FULL, &m);
		check_wide_insert(&m, 300, 20000);
		decode_ok(&odd, false, PGOUTPUT_DECODE_FULL, &m);
		check_wide_insert(&m, 7, 70000);
	}
	free(big.data);
	free(odd.data);
}

static size_t
heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

static void
big_message_memory_is_returned(void **state)
{
	PgoutputScratch *own = pgoutput_scratch_new();
	Bytes huge = build_wide_insert(40, 512 * 1024);  /* 20 MiB of values */
	Bytes small = build_insert(false);
	PgoutputMessage m;
	char err[256];
	size_t before;
	size_t during;
	size_t after;

	assert_true(pgoutput_decode(small.data, small.len, false, PGOUTPUT_DECODE_FULL, own, &m,
								err, sizeof(err)));
	before = heap_in_use();
	assert_true(pgoutput_decode(huge.data, huge.len, false, PGOUTPUT_DECODE_FULL, own, &m,
								err, sizeof(err)));
	check_wide_insert(&m, 40, 512 * 1024);
	during = heap_in_use();
	assert_true(pgoutput_decode(small.data, small.len, false, PGOUTPUT_DECODE_FULL, own, &m,
								err, sizeof(err)));
	after = heap_in_use();
	pgoutput_scratch_free(own);
	free(huge.data);
	free(small.data);

	if (during < before + 16 * 1024 * 1024)
	{
		/* mallinfo2 does not see this allocator (valgrind replaces malloc): nothing to check */
		print_message("# mallinfo2 does not track the heap here; not checked\n");
		return;
	}
	/* at most the 4 MiB the arena may keep */
	assert_true(after <= before + 4 * 1024 * 1024 + 64 * 1024);
}

static void
steady_state_does_not_allocate(void **state)
{
	Bytes msgs[] = { build_insert(false), build_update(false, 'O'), build_relation(false),
		build_wide_insert(50, 3000), build_truncate(true), build_logical_message(true) };
	const size_t n = sizeof(msgs) / sizeof(msgs[0]);
	PgoutputMessage m;
	char err[256];
	size_t before;

	/* warm up: the arena grows to what these messages need, once */
	for (size_t i = 0; i < n; i++)
		assert_true(pgoutput_decode(msgs[i].data, msgs[i].len, i >= 4, PGOUTPUT_DECODE_FULL,
									scratch, &m, err, sizeof(err)));
	before = heap_in_use();
	for (int round = 0; round < 2000; round++)
		for (size_t i = 0; i < n; i++)
			assert_true(pgoutput_decode(msgs[i].data, msgs[i].len, i >= 4,
										round % 2 ? PGOUTPUT_DECODE_ENVELOPE : PGOUTPUT_DECODE_FULL,
										scratch, &m, err, sizeof(err)));
	assert_int_equal(heap_in_use(), before);
	for (size_t i = 0; i < n; i++)
		free(msgs[i].data);
}

/* ---- real PostgreSQL 15 captures --------------------------------------------------------- */

typedef struct FixtureMessage
{
	Lsn lsn;
	uint8_t *data;
	size_t len;
	bool in_stream;  /* between an S and an E, as a receiver tracks it */
} FixtureMessage;

typedef struct Fixture
{
	const char *name;
	FixtureMessage *messages;
	size_t count;
} Fixture;

static int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Loads tests/fixtures/pgoutput/<name>.hex: "LSN HEX" lines, '#' comments. */
static Fixture *
fixture_load(const char *name)
{
	const char *dir = getenv("FIXTURES");
	char path[4096];
	FILE *file;
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	Fixture *f = calloc(1, sizeof(Fixture));
	size_t alloc = 0;
	bool in_stream = false;

	if (dir == NULL)
		fail_msg("FIXTURES is not set (make check sets it to tests/fixtures)");
	snprintf(path, sizeof(path), "%s/pgoutput/%s.hex", dir, name);
	file = fopen(path, "r");
	if (file == NULL)
		fail_msg("cannot open %s", path);
	f->name = name;
	while ((got = getline(&line, &cap, file)) > 0)
	{
		char *space;
		size_t hexlen;
		FixtureMessage *fm;

		if (line[0] == '#' || line[0] == '\n')
			continue;
		space = strchr(line, ' ');
		assert_non_null(space);
		*space = '\0';
		hexlen = strcspn(space + 1, "\r\n");
		assert_int_equal(hexlen % 2, 0);
		if (f->count == alloc)
		{
			alloc = alloc ? alloc * 2 : 256;
			f->messages = realloc(f->messages, alloc * sizeof(FixtureMessage));
			assert_non_null(f->messages);
		}
		fm = &f->messages[f->count++];
		if (!lsn_parse(line, &fm->lsn))
			fail_msg("%s: bad lsn \"%s\"", path, line);
		fm->len = hexlen / 2;
		fm->data = malloc(fm->len);
		assert_non_null(fm->data);
		for (size_t i = 0; i < fm->len; i++)
		{
			int hi = hex_digit(space[1 + 2 * i]);
			int lo = hex_digit(space[2 + 2 * i]);

			assert_true(hi >= 0 && lo >= 0);
			fm->data[i] = (uint8_t) (hi << 4 | lo);
		}
		/* the state a receiver is in when this message arrives */
		fm->in_stream = in_stream;
		if (fm->data[0] == 'S')
			in_stream = true;
		else if (fm->data[0] == 'E')
			in_stream = false;
	}
	free(line);
	fclose(file);
	assert_true(f->count > 0);
	return f;
}

static void
fixture_free(Fixture *f)
{
	for (size_t i = 0; i < f->count; i++)
		free(f->messages[i].data);
	free(f->messages);
	free(f);
}

static void
fixture_decode(const Fixture *f, size_t i, PgoutputMessage *m)
{
	const FixtureMessage *fm = &f->messages[i];
	char err[256] = "";

	if (!pgoutput_decode(fm->data, fm->len, fm->in_stream, PGOUTPUT_DECODE_FULL, scratch, m,
						 err, sizeof(err)))
		fail_msg("%s message %zu: %s", f->name, i + 1, err);
}

/* Index of the next message of this kind at or after from; fails if there is none. */
static size_t
fixture_find(const Fixture *f, size_t from, char kind)
{
	for (size_t i = from; i < f->count; i++)
		if (f->messages[i].data[0] == (uint8_t) kind)
			return i;
	fail_msg("%s: no '%c' message after %zu", f->name, kind, from);
	return 0;
}

/* Index of the R for this relation name at or after from. */
static size_t
fixture_find_relation(const Fixture *f, size_t from, const char *relname, uint32_t *relid)
{
	PgoutputMessage m;

	for (size_t i = from; i < f->count; i++)
	{
		if (f->messages[i].data[0] != 'R')
			continue;
		fixture_decode(f, i, &m);
		if (strcmp(m.relation.relname, relname) == 0)
		{
			*relid = m.relation.relid;
			return i;
		}
	}
	fail_msg("%s: no relation \"%s\" after %zu", f->name, relname, from);
	return 0;
}

static const char *const fixture_names[] = {
	"dml", "toast", "truncate", "message", "stream", "binary",
};

/*
 * Every captured message decodes in both modes, a receiver's S/E tracking never nests, each
 * B..C and S..E is closed, and each message wrapped in a 'w' frame round-trips. Every
 * truncation of every message fails cleanly.
 */
static void
fixture_every_message_decodes(void **state)
{
	size_t total = 0;

	for (size_t n = 0; n < sizeof(fixture_names) / sizeof(fixture_names[0]); n++)
	{
		Fixture *f = fixture_load(fixture_names[n]);
		bool in_txn = false;
		bool in_stream = false;
		Lsn final_lsn = 0;

		for (size_t i = 0; i < f->count; i++)
		{
			const FixtureMessage *fm = &f->messages[i];
			PgoutputMessage full;
			PgoutputMessage env;
			Bytes frame = { 0 };
			ReplicationFrame rf;
			char err[256] = "";

			fixture_decode(f, i, &full);
			assert_int_equal(fm->in_stream, in_stream);
			switch (full.kind)
			{
				case PGOUTPUT_BEGIN:
					assert_false(in_txn || in_stream);
					in_txn = true;
					final_lsn = full.begin.final_lsn;
					assert_true(full.xid != 0);
					break;
				case PGOUTPUT_COMMIT:
					assert_true(in_txn);
					in_txn = false;
					/* B's final_lsn is the commit record; the row's LSN is its end */
					assert_int_equal(full.commit.commit_lsn, final_lsn);
					assert_int_equal(fm->lsn, full.commit.end_lsn);
					assert_true(full.commit.end_lsn > full.commit.commit_lsn);
					break;
				case PGOUTPUT_STREAM_START:
					assert_false(in_txn || in_stream);
					in_stream = true;
					break;
				case PGOUTPUT_STREAM_STOP:
					assert_true(in_stream);
					in_stream = false;
					break;
				case PGOUTPUT_STREAM_COMMIT:
				case PGOUTPUT_STREAM_ABORT:
					assert_false(in_txn || in_stream);
					assert_true(full.xid != 0);
					break;
				default:
					/* inside a stream every data message names its (sub)transaction */
					assert_int_equal(full.xid != 0, in_stream);
					break;
			}

			if (!pgoutput_decode(fm->data, fm->len, fm->in_stream, PGOUTPUT_DECODE_ENVELOPE,
								 scratch, &env, err, sizeof(err)))
				fail_msg("%s message %zu (envelope): %s", f->name, i + 1, err);
			assert_int_equal(env.kind, full.kind);
			assert_int_equal(env.xid, full.xid);

			put8(&frame, 'w');
			put64(&frame, fm->lsn);
			put64(&frame, fm->lsn);
			put64(&frame, 0);
			put(&frame, fm->data, fm->len);
			assert_true(pgoutput_parse_frame(frame.data, frame.len, &rf, err, sizeof(err)));
			assert_int_equal(rf.payload_len, fm->len);
			assert_memory_equal(rf.payload, fm->data, fm->len);
			free(frame.data);
			total++;
		}
		assert_false(in_txn);
		assert_false(in_stream);
		fixture_free(f);
	}
	assert_true(total > 1000);
}

static void
fixture_truncations_fail(void **state)
{
	for (size_t n = 0; n < sizeof(fixture_names) / sizeof(fixture_names[0]); n++)
	{
		Fixture *f = fixture_load(fixture_names[n]);

		for (size_t i = 0; i < f->count; i++)
		{
			const FixtureMessage *fm = &f->messages[i];

			/* the long stream repeats one shape: every 50th is enough there */
			if (strcmp(f->name, "stream") == 0 && i % 50 != 0)
				continue;
			for (size_t len = 0; len < fm->len; len++)
			{
				PgoutputMessage m;
				char err[256] = "";

				if (decode_exact(fm->data, len, fm->in_stream, len % 2, &m, err, sizeof(err)))
					fail_msg("%s message %zu decoded truncated to %zu of %zu bytes", f->name,
							 i + 1, len, fm->len);
				assert_one_line_lower_case(err);
			}
		}
		fixture_free(f);
	}
}

static void
fixture_dml(void **state)
{
	Fixture *f = fixture_load("dml");
	PgoutputMessage m;
	uint32_t types_relid;
	uint32_t keyed_relid;
	uint32_t full_relid;
	uint32_t index_relid;
	uint32_t hostile_relid;
	uint32_t mood_oid = 0;
	uint32_t posint_oid = 0;
	uint32_t pair_oid = 0;
	size_t i;
	size_t r;

	/* Y for each user type of the relation comes before its R, after the B */
	r = fixture_find_relation(f, 0, "types", &types_relid);
	assert_int_equal(f->messages[0].data[0], 'B');
	for (i = 1; i < r; i++)
	{
		fixture_decode(f, i, &m);
		assert_int_equal(m.kind, PGOUTPUT_TYPE);
		if (strcmp(m.type.typname, "mood") == 0)
			mood_oid = m.type.oid;
		else if (strcmp(m.type.typname, "pair") == 0)
			pair_oid = m.type.oid;
		else
		{
			/* a domain is sent under its base type's name, pg_catalog as "" */
			assert_string_equal(m.type.typname, "int4");
			assert_string_equal(m.type.nspname, "");
			posint_oid = m.type.oid;
		}
	}
	assert_true(mood_oid && posint_oid && pair_oid);

	fixture_decode(f, r, &m);
	{
		const char *names[] = { "id", "n", "f", "ts", "b", "ia", "ta", "m", "d", "j", "p",
			"nothing" };
		const uint32_t oids[] = { 23, 1700, 701, 1184, 17, 1007, 1009, mood_oid, posint_oid,
			3802, pair_oid, 25 };

		assert_string_equal(m.relation.nspname, "public");
		assert_int_equal(m.relation.replident, 'd');
		assert_int_equal(m.relation.ncols, 12);
		for (int c = 0; c < 12; c++)
		{
			assert_string_equal(m.relation.columns[c].name, names[c]);
			assert_int_equal(m.relation.columns[c].type_oid, oids[c]);
			assert_int_equal(m.relation.columns[c].is_key, c == 0);
		}
		assert_int_equal(m.relation.columns[1].typmod, ((12 << 16) | 4) + 4);  /* (12,4) */
		assert_int_equal(m.relation.columns[2].typmod, -1);
	}

	i = fixture_find(f, r, 'I');
	fixture_decode(f, i, &m);
	{
		const TupleData *t = &m.insert.new_tuple;

		assert_int_equal(m.insert.relid, types_relid);
		assert_int_equal(t->ncols, 12);
		assert_text(&t->values[0], "1");
		assert_text(&t->values[1], "12345678.1234");
		assert_text(&t->values[2], "3.141592653589793");
		assert_text(&t->values[3], "2024-02-29 12:34:56.789012+00");
		assert_text(&t->values[4], "\\x00ff10");
		assert_text(&t->values[5], "{1,NULL,3}");
		assert_text(&t->values[6], "{\"a b\",\"c\\\"d\",NULL}");
		assert_text(&t->values[7], "happy");
		assert_text(&t->values[8], "7");
		assert_text(&t->values[9], "{\"k\": [1, 2, {\"x\": null}], \"\xc3\xa9\": \"\xc3\xbc\"}");
		assert_text(&t->values[10], "(1,\"x y\")");
		assert_no_data(&t->values[11], TUPLE_VALUE_NULL);
	}
	i = fixture_find(f, i + 1, 'I');
	fixture_decode(f, i, &m);
	assert_text(&m.insert.new_tuple.values[2], "-Infinity");
	assert_text(&m.insert.new_tuple.values[3], "infinity");

	/* DEFAULT identity, key unchanged: no old tuple */
	i = fixture_find(f, i, 'U');
	fixture_decode(f, i, &m);
	assert_int_equal(m.update.old_kind, 0);
	assert_text(&m.update.new_tuple.values[2], "2.5");
	assert_text(&m.update.new_tuple.values[7], "sad");
	/* a K tuple carries every column, the non-key ones as n */
	i = fixture_find(f, i, 'D');
	fixture_decode(f, i, &m);
	assert_int_equal(m.delete.old_kind, 'K');
	assert_int_equal(m.delete.old_tuple.ncols, 12);
	assert_text(&m.delete.old_tuple.values[0], "2");
	for (int c = 1; c < 12; c++)
		assert_no_data(&m.delete.old_tuple.values[c], TUPLE_VALUE_NULL);

	/* key change: K with the old key, then the new row */
	r = fixture_find_relation(f, i, "keyed", &keyed_relid);
	fixture_decode(f, r, &m);
	assert_int_equal(m.relation.ncols, 2);
	i = fixture_find(f, r, 'U');
	fixture_decode(f, i, &m);
	assert_int_equal(m.update.relid, keyed_relid);
	assert_int_equal(m.update.old_kind, 'K');
	assert_text(&m.update.old_tuple.values[0], "1");
	assert_no_data(&m.update.old_tuple.values[1], TUPLE_VALUE_NULL);
	assert_text(&m.update.new_tuple.values[0], "10");
	assert_text(&m.update.new_tuple.values[1], "one");
	i = fixture_find(f, i + 1, 'U');
	fixture_decode(f, i, &m);
	assert_int_equal(m.update.old_kind, 0);
	assert_text(&m.update.new_tuple.values[1], "deux");
	i = fixture_find(f, i, 'D');
	fixture_decode(f, i, &m);
	assert_int_equal(m.delete.old_kind, 'K');
	assert_text(&m.delete.old_tuple.values[0], "10");

	/* REPLICA IDENTITY FULL: every column flagged as key, O tuples with the whole row */
	r = fixture_find_relation(f, i, "full_ident", &full_relid);
	fixture_decode(f, r, &m);
	assert_int_equal(m.relation.replident, 'f');
	assert_true(m.relation.columns[0].is_key && m.relation.columns[1].is_key);
	assert_int_equal(m.relation.columns[1].type_oid, 114);  /* json: no equality operator */
	i = fixture_find(f, r, 'U');
	fixture_decode(f, i, &m);
	assert_int_equal(m.update.relid, full_relid);
	assert_int_equal(m.update.old_kind, 'O');
	assert_text(&m.update.old_tuple.values[1], "{\"a\": 1}");
	assert_text(&m.update.new_tuple.values[1], "{\"a\": 2}");
	i = fixture_find(f, i, 'D');
	fixture_decode(f, i, &m);
	assert_int_equal(m.delete.old_kind, 'O');
	assert_text(&m.delete.old_tuple.values[0], "1");

	/* USING INDEX: key flags on the index columns only */
	r = fixture_find_relation(f, i, "by_index", &index_relid);
	fixture_decode(f, r, &m);
	assert_int_equal(m.relation.replident, 'i');
	assert_true(m.relation.columns[0].is_key);
	assert_true(m.relation.columns[1].is_key);
	assert_false(m.relation.columns[2].is_key);
	i = fixture_find(f, fixture_find(f, r, 'U') + 1, 'U');
	fixture_decode(f, i, &m);
	assert_int_equal(m.update.old_kind, 'K');
	assert_text(&m.update.old_tuple.values[1], "2");
	assert_no_data(&m.update.old_tuple.values[2], TUPLE_VALUE_NULL);
	assert_text(&m.update.new_tuple.values[1], "3");

	/* "we""ird tãble": quote, space and UTF-8 arrive verbatim, unquoted */
	r = fixture_find_relation(f, i, "we\"ird t\xc3\xa3" "ble", &hostile_relid);
	fixture_decode(f, r, &m);
	assert_string_equal(m.relation.columns[0].name, "col \"q\"");
	assert_string_equal(m.relation.columns[1].name, "\xc3\xbc");
	i = fixture_find(f, r, 'I');
	fixture_decode(f, i, &m);
	assert_int_equal(m.insert.relid, hostile_relid);
	assert_text(&m.insert.new_tuple.values[1], "\xc3\x9f");

	/* ALTER TABLE ADD COLUMN: the next change brings a new R with one more column */
	i = fixture_find(f, i, 'D');
	i = fixture_find(f, i + 1, 'I');
	fixture_decode(f, i, &m);
	assert_int_equal(m.insert.relid, keyed_relid);
	assert_int_equal(m.insert.new_tuple.ncols, 2);
	assert_text(&m.insert.new_tuple.values[1], "before alter");
	r = fixture_find(f, i, 'R');
	fixture_decode(f, r, &m);
	assert_int_equal(m.relation.relid, keyed_relid);
	assert_int_equal(m.relation.ncols, 3);
	assert_string_equal(m.relation.columns[0].name, "id");
	assert_string_equal(m.relation.columns[1].name, "v");
	assert_string_equal(m.relation.columns[2].name, "extra");
	assert_int_equal(m.relation.columns[2].type_oid, 23);
	fixture_decode(f, r + 1, &m);
	assert_int_equal(m.kind, PGOUTPUT_INSERT);
	assert_int_equal(m.insert.new_tuple.ncols, 3);
	assert_text(&m.insert.new_tuple.values[2], "6");
	fixture_free(f);
}

static void
fixture_toast(void **state)
{
	Fixture *f = fixture_load("toast");
	PgoutputMessage m;
	uint32_t relid;
	size_t i;

	i = fixture_find_relation(f, 0, "docs", &relid);
	i = fixture_find(f, i, 'I');
	fixture_decode(f, i, &m);
	assert_int_equal(m.insert.new_tuple.values[2].length, 3000);

	/* title changed, body TOASTed and untouched: 'u', so the applier leaves it out */
	i = fixture_find(f, i, 'U');
	fixture_decode(f, i, &m);
	assert_int_equal(m.update.relid, relid);
	assert_int_equal(m.update.old_kind, 0);
	assert_text(&m.update.new_tuple.values[1], "renamed");
	assert_no_data(&m.update.new_tuple.values[2], TUPLE_VALUE_UNCHANGED_TOAST);
	assert_true(f->messages[i].len < 40);

	i = fixture_find(f, i + 1, 'U');
	fixture_decode(f, i, &m);
	assert_int_equal(m.update.new_tuple.values[2].length, 3001);
	assert_int_equal(m.update.new_tuple.values[2].data[3000], '!');

	i = fixture_find(f, i, 'D');
	fixture_decode(f, i, &m);
	assert_int_equal(m.delete.old_kind, 'K');
	assert_no_data(&m.delete.old_tuple.values[2], TUPLE_VALUE_NULL);

	/* FULL: the O tuple has the whole old TOAST value, the new one still says 'u' */
	i = fixture_find_relation(f, i, "docs_full", &relid);
	i = fixture_find(f, i, 'U');
	fixture_decode(f, i, &m);
	assert_int_equal(m.update.old_kind, 'O');
	assert_text(&m.update.old_tuple.values[1], "full");
	assert_int_equal(m.update.old_tuple.values[2].kind, TUPLE_VALUE_TEXT);
	assert_int_equal(m.update.old_tuple.values[2].length, 3000);
	assert_memory_equal(m.update.old_tuple.values[2].data, "abcdefghijabcdefghij", 20);
	assert_text(&m.update.new_tuple.values[1], "full renamed");
	assert_no_data(&m.update.new_tuple.values[2], TUPLE_VALUE_UNCHANGED_TOAST);
	fixture_free(f);
}

static void
fixture_truncate(void **state)
{
	Fixture *f = fixture_load("truncate");
	PgoutputMessage m;
	uint32_t parent;
	uint32_t child;
	uint32_t other;
	size_t t;
	size_t b;

	t = fixture_find(f, 0, 'T');
	/* the transaction re-sends R for every truncated relation, then one T for all */
	for (b = t; f->messages[b].data[0] != 'B'; b--)
		;
	fixture_find_relation(f, b, "parent", &parent);
	fixture_find_relation(f, b, "other", &other);
	fixture_find_relation(f, b, "child", &child);
	fixture_decode(f, t, &m);
	assert_int_equal(m.truncate.flags,
					 PGOUTPUT_TRUNCATE_CASCADE | PGOUTPUT_TRUNCATE_RESTART_IDENTITY);
	assert_int_equal(m.truncate.nrelids, 3);
	/* the named tables first, the one reached by CASCADE last */
	assert_int_equal(m.truncate.relids[0], parent);
	assert_int_equal(m.truncate.relids[1], other);
	assert_int_equal(m.truncate.relids[2], child);
	fixture_decode(f, t + 1, &m);
	assert_int_equal(m.kind, PGOUTPUT_COMMIT);

	t = fixture_find(f, t + 1, 'T');
	fixture_decode(f, t, &m);
	assert_int_equal(m.truncate.flags, 0);
	assert_int_equal(m.truncate.nrelids, 1);
	assert_int_equal(m.truncate.relids[0], other);
	fixture_free(f);
}

static void
fixture_message(void **state)
{
	Fixture *f = fixture_load("message");
	PgoutputMessage m;
	size_t i;
	static const uint8_t bin[] = { 0x00, 0xff, 0x00, 0x01 };

	/* non-transactional: on its own, outside any B..C */
	fixture_decode(f, 0, &m);
	assert_int_equal(m.kind, PGOUTPUT_MESSAGE);
	assert_int_equal(m.message.flags, 0);
	assert_string_equal(m.message.prefix, "switchyard");
	assert_string_equal(m.message.content, "not transactional");
	assert_int_equal(m.message.lsn, f->messages[0].lsn);

	/* transactional, alone in its transaction: B M C */
	assert_int_equal(f->messages[1].data[0], 'B');
	fixture_decode(f, 2, &m);
	assert_int_equal(m.message.flags, 1);
	assert_string_equal(m.message.content, "transactional, alone");
	assert_int_equal(f->messages[3].data[0], 'C');

	i = fixture_find(f, 4, 'M');
	fixture_decode(f, i, &m);
	assert_string_equal(m.message.prefix, "switchyard.bin");
	assert_int_equal(m.message.length, sizeof(bin));
	assert_memory_equal(m.message.content, bin, sizeof(bin));

	/* a change replayed under a replication origin: O right after B */
	i = fixture_find(f, i, 'O');
	assert_int_equal(f->messages[i - 1].data[0], 'B');
	fixture_decode(f, i, &m);
	assert_string_equal(m.origin.name, "upstream");
	assert_int_equal(m.origin.lsn, UINT64_C(0xAB12CD34));
	fixture_decode(f, i + 1, &m);
	assert_int_equal(m.kind, PGOUTPUT_INSERT);
	assert_text(&m.insert.new_tuple.values[1], "from an origin");
	fixture_free(f);
}

/* Row ids of big inserted per (sub)transaction, as a spooling applier would keep them. */
typedef struct XidRows
{
	uint32_t xid;
	int count;
	int ids[1024];
} XidRows;

static XidRows *
xid_rows(XidRows *rows, int *n, uint32_t xid)
{
	for (int i = 0; i < *n; i++)
		if (rows[i].xid == xid)
			return &rows[i];
	assert_true(*n < 8);
	rows[*n].xid = xid;
	rows[*n].count = 0;
	return &rows[(*n)++];
}

static int
compare_int(const void *a, const void *b)
{
	return *(const int *) a - *(const int *) b;
}

/*
 * The streamed capture, replayed like the applier must: S...E blocks spooled per xid, an
 * interleaved plain transaction between them, A discarding a subtransaction or a whole
 * transaction, c applying what is left.
 */
static void
fixture_stream(void **state)
{
	Fixture *f = fixture_load("stream");
	PgoutputMessage m;
	XidRows *rows = calloc(8, sizeof(XidRows));
	int nrows = 0;
	uint32_t big_relid = 0;
	uint32_t top = 0;          /* the committed streamed transaction */
	uint32_t open_xid = 0;     /* xid of the current S..E block */
	int blocks = 0;
	int empty_blocks = 0;
	int block_messages = 0;
	int interleaved = 0;
	int sub_aborts = 0;
	int whole_aborts = 0;
	int commits = 0;
	int big_relations[2] = { 0, 0 };  /* R for big with 2 and 3 columns */
	bool in_txn = false;

	for (size_t i = 0; i < f->count; i++)
	{
		fixture_decode(f, i, &m);
		switch (m.kind)
		{
			case PGOUTPUT_STREAM_START:
				if (top == 0)
				{
					top = m.xid;
					assert_true(m.stream_start.first_segment);
				}
				/* a later block of the same transaction is not a first segment */
				if (m.xid == top && blocks > 0)
					assert_false(m.stream_start.first_segment);
				open_xid = m.xid;
				block_messages = 0;
				blocks++;
				break;
			case PGOUTPUT_STREAM_STOP:
				if (block_messages == 0)
					empty_blocks++;
				open_xid = 0;
				break;
			case PGOUTPUT_RELATION:
				if (strcmp(m.relation.relname, "big") == 0)
				{
					assert_true(m.relation.ncols == 2 || m.relation.ncols == 3);
					big_relations[m.relation.ncols - 2]++;
					big_relid = m.relation.relid;
					if (m.relation.ncols == 3)
					{
						/* the ALTERed relation, re-sent mid-stream, new column last */
						assert_true(open_xid == top);
						assert_string_equal(m.relation.columns[2].name, "extra");
						assert_true(big_relations[0] > 0);
					}
				}
				block_messages++;
				break;
			case PGOUTPUT_INSERT:
				if (open_xid != 0)
				{
					block_messages++;
					if (m.insert.relid == big_relid)
					{
						XidRows *x = xid_rows(rows, &nrows, m.xid);

						assert_true(x->count < 1024);
						x->ids[x->count++] = atoi(m.insert.new_tuple.values[0].data);
					}
				}
				else
				{
					/* another session's transaction, committed between two blocks */
					assert_true(in_txn);
					assert_text(&m.insert.new_tuple.values[1], "interleaved");
					assert_true(blocks == 1);
					interleaved++;
				}
				break;
			case PGOUTPUT_BEGIN:
				assert_true(m.xid != top);
				in_txn = true;
				break;
			case PGOUTPUT_COMMIT:
				in_txn = false;
				break;
			case PGOUTPUT_STREAM_ABORT:
				if (m.stream_abort.subxid != m.xid)
				{
					/* ROLLBACK TO SAVEPOINT: only the subtransaction's rows go */
					XidRows *x = xid_rows(rows, &nrows, m.stream_abort.subxid);

					assert_int_equal(m.xid, top);
					assert_true(x->count > 0);
					x->count = 0;
					sub_aborts++;
				}
				else
				{
					assert_true(m.xid != top);
					whole_aborts++;
				}
				break;
			case PGOUTPUT_STREAM_COMMIT:
			{
				int ids[2048];
				int n = 0;

				assert_int_equal(m.xid, top);
				assert_true(m.commit.end_lsn > m.commit.commit_lsn);
				assert_int_equal(f->messages[i].lsn, m.commit.end_lsn);
				/* every xid left is the top transaction or one of its live subxacts */
				for (int r = 0; r < nrows; r++)
					for (int k = 0; k < rows[r].count; k++)
						ids[n++] = rows[r].ids[k];
				qsort(ids, (size_t) n, sizeof(int), compare_int);
				assert_int_equal(n, 500);
				for (int k = 0; k < 400; k++)
					assert_int_equal(ids[k], k + 1);
				for (int k = 0; k < 100; k++)
					assert_int_equal(ids[400 + k], 801 + k);
				commits++;
				break;
			}
			default:
				block_messages++;
				break;
		}
	}
	assert_int_equal(commits, 1);
	assert_int_equal(sub_aborts, 1);
	assert_int_equal(whole_aborts, 2);
	assert_int_equal(interleaved, 1);
	assert_int_equal(big_relations[0], 1);
	assert_int_equal(big_relations[1], 1);
	/* the already-aborted transaction: S, nothing, E, then A */
	assert_int_equal(empty_blocks, 1);
	assert_true(blocks >= 5);
	free(rows);
	fixture_free(f);
}

static void
fixture_binary(void **state)
{
	Fixture *f = fixture_load("binary");
	PgoutputMessage m;
	uint32_t relid;
	size_t i;
	static const uint8_t one[] = { 0, 0, 0, 1 };

	i = fixture_find_relation(f, 0, "bin", &relid);
	fixture_decode(f, i - 1, &m);
	assert_int_equal(m.kind, PGOUTPUT_TYPE);
	assert_string_equal(m.type.typname, "cube");
	i = fixture_find(f, i, 'I');
	fixture_decode(f, i, &m);
	{
		const TupleData *t = &m.insert.new_tuple;

		assert_int_equal(t->ncols, 7);
		assert_binary(&t->values[0], one, 4);
		assert_binary(&t->values[1], "text", 4);
		for (int c = 2; c <= 4; c++)
			assert_int_equal(t->values[c].kind, TUPLE_VALUE_BINARY);
		/* aclitem has no send function: text in the middle of binary values */
		assert_text(&t->values[5], "postgres=r/postgres");
		assert_int_equal(t->values[6].kind, TUPLE_VALUE_BINARY);
		assert_int_equal(t->values[6].length, 3000);
	}
	i = fixture_find(f, i, 'U');
	fixture_decode(f, i, &m);
	assert_binary(&m.update.new_tuple.values[1], "changed", 7);
	assert_no_data(&m.update.new_tuple.values[6], TUPLE_VALUE_UNCHANGED_TOAST);
	fixture_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(frame_xlogdata_parsed),
		cmocka_unit_test(frame_keepalive_parsed),
		cmocka_unit_test(frame_rejects_malformed),
		cmocka_unit_test(status_update_layout),
		cmocka_unit_test(begin_decoded),
		cmocka_unit_test(commit_decoded),
		cmocka_unit_test(origin_decoded),
		cmocka_unit_test(relation_decoded),
		cmocka_unit_test(relation_in_stream_has_xid),
		cmocka_unit_test(type_decoded),
		cmocka_unit_test(insert_mixed_text_binary_null),
		cmocka_unit_test(update_without_old_tuple),
		cmocka_unit_test(update_with_key_tuple),
		cmocka_unit_test(update_with_old_row_and_unchanged_toast),
		cmocka_unit_test(delete_with_key_or_old_row),
		cmocka_unit_test(truncate_with_cascade_and_restart_identity),
		cmocka_unit_test(logical_message_decoded),
		cmocka_unit_test(empty_logical_message_decoded),
		cmocka_unit_test(stream_control_messages_decoded),
		cmocka_unit_test(envelope_skips_tuples),
		cmocka_unit_test(envelope_still_validates_tuples),
		cmocka_unit_test(rejects_empty_and_unknown_type),
		cmocka_unit_test(rejects_bad_tuple_kind),
		cmocka_unit_test(rejects_bad_tuple_marker),
		cmocka_unit_test(rejects_bad_replica_identity),
		cmocka_unit_test(rejects_trailing_bytes),
		cmocka_unit_test(truncation_at_every_offset_fails),
		cmocka_unit_test(reports_what_was_truncated),
		cmocka_unit_test(rejects_value_length_past_end),
		cmocka_unit_test(rejects_absurd_column_counts),
		cmocka_unit_test(rejects_truncate_count_past_end),
		cmocka_unit_test(rejects_string_without_nul),
		cmocka_unit_test(rejects_message_content_past_end),
		cmocka_unit_test(errbuf_is_optional),
		cmocka_unit_test(kind_names),
		cmocka_unit_test(values_stay_valid_across_arena_blocks),
		cmocka_unit_test(big_message_memory_is_returned),
		cmocka_unit_test(steady_state_does_not_allocate),
		cmocka_unit_test(fixture_every_message_decodes),
		cmocka_unit_test(fixture_truncations_fail),
		cmocka_unit_test(fixture_dml),
		cmocka_unit_test(fixture_toast),
		cmocka_unit_test(fixture_truncate),
		cmocka_unit_test(fixture_message),
		cmocka_unit_test(fixture_stream),
		cmocka_unit_test(fixture_binary),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
