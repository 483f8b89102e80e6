/*
 * The HTTP server's pure parts: addresses and the loopback rule, the token check (bearer and
 * basic), label escaping for the exposition format, latest.json, the readiness checklist, and
 * the /metrics and /api/status documents rendered from a status with hostile table names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <json-c/json.h>

#include "switchyard/http.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static char *
buffer_text(struct evbuffer *buffer)
{
	size_t length = evbuffer_get_length(buffer);
	char *text = malloc(length + 1);

	assert_non_null(text);
	evbuffer_copyout(buffer, text, length);
	text[length] = '\0';
	return text;
}

static char *
escaped(const char *value)
{
	struct evbuffer *buffer = evbuffer_new();
	char *text;

	assert_non_null(buffer);
	http_append_label_value(buffer, value);
	text = buffer_text(buffer);
	evbuffer_free(buffer);
	return text;
}

static AgentStatus
sample_status(void)
{
	AgentStatus status;

	memset(&status, 0, sizeof(status));
	status.phase = "streaming";
	status.running = true;
	status.pid = 4242;
	status.source = "host=db1 dbname=app user=migrator";
	status.target = "host=db2 dbname=app";
	status.slot_name = "switchyard_0a1b2c3d";
	status.publication_name = "switchyard_0a1b2c3d";
	status.origin_name = "switchyard_0a1b2c3d";
	status.received_lsn = UINT64_C(0x16B3800);
	status.flushed_lsn = UINT64_C(0x16B3800);
	status.applied_lsn = UINT64_C(0x16B3748);
	status.source_current_lsn = UINT64_C(0x16B3900);
	status.lag_bytes = 0x1B8;
	status.lag_seconds = 0.25;
	status.transactions_applied = 1200;
	status.changes_applied = 5300;
	status.spool_bytes = 1 << 20;
	status.spool_segments = 2;
	status.source_connected = true;
	status.target_connected = true;
	status.started_at_unix = 1700000000;
	return status;
}

#define LATEST_JSON \
	"{ \"tables\": {" \
	"  \"public.zeta\": { \"verified_at\": \"2024-05-01T10:00:00.250Z\", \"lsn\": \"0/16B3000\"," \
	"    \"common_point\": true, \"equal\": true, \"rows_compared\": 1000, \"missing\": 0, \"extra\": 0," \
	"    \"changed\": 0, \"schema_issues\": 0, \"report\": \"/var/lib/sy/parity/20240501T100000.250Z.json\" }," \
	"  \"\\\"Support \\\"\\\"Desk\\\"\\\" ø\\\".\\\"a\\\\b\\nc\\\"\": { \"verified_at\": \"2024-05-01T10:00:00.250Z\"," \
	"    \"lsn\": \"0/16B3000\", \"common_point\": false, \"equal\": false, \"rows_compared\": 7," \
	"    \"missing\": 1, \"extra\": 2, \"changed\": 3, \"schema_issues\": 0, \"repaired\": 0," \
	"    \"report\": \"20240501T100000.250Z.json\" } }," \
	"  \"updated_at\": \"2024-05-01T10:00:00.250Z\" }"

/* The hostile name above, as verify writes it: "Support ""Desk"" ø"."a\b<newline>c" */
#define HOSTILE "\"Support \"\"Desk\"\" ø\".\"a\\b\nc\""

static HttpParity *
sample_parity(void)
{
	HttpParity *parity = NULL;

	assert_true(http_parity_parse(LATEST_JSON, &parity));
	assert_non_null(parity);
	return parity;
}

/* ---- addresses ----------------------------------------------------------------------------- */

static void
test_parse_address(void **state)
{
	char host[64];
	uint16_t port = 0;

	assert_true(http_parse_address("127.0.0.1:9187", host, sizeof(host), &port));
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 9187);
	assert_true(http_parse_address(":8080", host, sizeof(host), &port));
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 8080);
	assert_true(http_parse_address("[::1]:80", host, sizeof(host), &port));
	assert_string_equal(host, "::1");
	assert_true(http_parse_address("db-dash.example.com:1", host, sizeof(host), &port));
	assert_string_equal(host, "db-dash.example.com");

	assert_false(http_parse_address("::1:80", host, sizeof(host), &port));
	assert_false(http_parse_address("[::1]", host, sizeof(host), &port));
	assert_false(http_parse_address("[::1:80", host, sizeof(host), &port));
	assert_false(http_parse_address("[]:80", host, sizeof(host), &port));
	assert_false(http_parse_address("host:", host, sizeof(host), &port));
	assert_false(http_parse_address("host:0", host, sizeof(host), &port));
	assert_false(http_parse_address("host:65536", host, sizeof(host), &port));
	assert_false(http_parse_address("host:+80", host, sizeof(host), &port));
	assert_false(http_parse_address("host:80x", host, sizeof(host), &port));
	assert_false(http_parse_address("9187", host, sizeof(host), &port));
	assert_false(http_parse_address("a-name-longer-than-the-buffer-given-to-the-parser-here.example:80",
									host, 16, &port));
}

static void
test_loopback(void **state)
{
	assert_true(http_address_is_loopback("127.0.0.1:9187"));
	assert_true(http_address_is_loopback("127.8.9.10:9187"));
	assert_true(http_address_is_loopback(":9187"));
	assert_true(http_address_is_loopback("localhost:9187"));
	assert_true(http_address_is_loopback("LocalHost:9187"));
	assert_true(http_address_is_loopback("[::1]:9187"));
	assert_true(http_address_is_loopback("[::ffff:127.0.0.1]:9187"));

	assert_false(http_address_is_loopback("0.0.0.0:9187"));
	assert_false(http_address_is_loopback("[::]:9187"));
	assert_false(http_address_is_loopback("10.1.2.3:9187"));
	assert_false(http_address_is_loopback("128.0.0.1:9187"));
	assert_false(http_address_is_loopback("[::ffff:10.0.0.1]:9187"));
	assert_false(http_address_is_loopback("dashboard.example.com:9187"));
	assert_false(http_address_is_loopback("localhost.example.com:9187"));
	assert_false(http_address_is_loopback("garbage"));
}

/* ---- authorization ------------------------------------------------------------------------- */

static void
test_base64(void **state)
{
	char out[64];

	assert_true(http_base64_decode("dXNlcjpwYXNz", out, sizeof(out)));
	assert_string_equal(out, "user:pass");
	assert_true(http_base64_decode("YQ==", out, sizeof(out)));
	assert_string_equal(out, "a");
	assert_true(http_base64_decode("YWI=", out, sizeof(out)));
	assert_string_equal(out, "ab");
	assert_true(http_base64_decode("", out, sizeof(out)));
	assert_string_equal(out, "");
	assert_true(http_base64_decode("Pz8+Pw==", out, sizeof(out)));
	assert_string_equal(out, "\x3f\x3f>\x3f");   /* + and / of the alphabet */

	assert_false(http_base64_decode("YQ=", out, sizeof(out)));         /* length */
	assert_false(http_base64_decode("Y===", out, sizeof(out)));        /* three pads */
	assert_false(http_base64_decode("YQ==YWI=", out, sizeof(out)));    /* padding inside */
	assert_false(http_base64_decode("YQ=a", out, sizeof(out)));        /* data after a pad */
	assert_false(http_base64_decode("dXNl*jpw", out, sizeof(out)));    /* not the alphabet */
	assert_false(http_base64_decode("YQBi", out, sizeof(out)));        /* "a\0b": a NUL inside */
	assert_false(http_base64_decode("dXNlcjpwYXNz", out, 9));          /* no room for the NUL */
}

static void
test_authorized(void **state)
{
	const char *token = "s3cret-token-0123456789";

	assert_true(http_authorized("Bearer s3cret-token-0123456789", token));
	assert_true(http_authorized("bearer   s3cret-token-0123456789  ", token));
	/* "anyone:s3cret-token-0123456789" and ":s3cret-token-0123456789" */
	assert_true(http_authorized("Basic YW55b25lOnMzY3JldC10b2tlbi0wMTIzNDU2Nzg5", token));
	assert_true(http_authorized("Basic OnMzY3JldC10b2tlbi0wMTIzNDU2Nzg5", token));

	assert_false(http_authorized(NULL, token));
	assert_false(http_authorized("", token));
	assert_false(http_authorized("Bearer", token));
	assert_false(http_authorized("Bearer ", token));
	assert_false(http_authorized("Bearer s3cret-token-012345678", token));     /* prefix */
	assert_false(http_authorized("Bearer s3cret-token-01234567890", token));   /* longer */
	assert_false(http_authorized("Bearer S3CRET-TOKEN-0123456789", token));
	assert_false(http_authorized("Token s3cret-token-0123456789", token));
	assert_false(http_authorized("s3cret-token-0123456789", token));
	/* "anyone:wrong" and no colon at all ("s3cret-token-0123456789") */
	assert_false(http_authorized("Basic YW55b25lOndyb25n", token));
	assert_false(http_authorized("Basic czNjcmV0LXRva2VuLTAxMjM0NTY3ODk=", token));
	assert_false(http_authorized("Basic !!!!", token));
	assert_false(http_authorized("Bearer ", ""));
	assert_false(http_authorized("Bearer x", NULL));
}

/* ---- exposition format --------------------------------------------------------------------- */

static void
test_label_escaping(void **state)
{
	char *text;

	text = escaped("plain.table_1");
	assert_string_equal(text, "plain.table_1");
	free(text);
	text = escaped("a\"b\\c\nd");
	assert_string_equal(text, "a\\\"b\\\\c\\nd");
	free(text);
	text = escaped(HOSTILE);
	assert_string_equal(text, "\\\"Support \\\"\\\"Desk\\\"\\\" ø\\\".\\\"a\\\\b\\nc\\\"");
	free(text);
	/* valid UTF-8 passes: 2, 3 and 4 bytes */
	text = escaped("ø€😀");
	assert_string_equal(text, "ø€😀");
	free(text);
	/* invalid: a stray continuation, an overlong '/', a surrogate, a cut sequence, a bad lead */
	text = escaped("a\x80z");
	assert_string_equal(text, "a\xef\xbf\xbdz");
	free(text);
	text = escaped("\xc0\xaf");
	assert_string_equal(text, "\xef\xbf\xbd\xef\xbf\xbd");
	free(text);
	text = escaped("\xed\xa0\x80!");
	assert_string_equal(text, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!");
	free(text);
	text = escaped("x\xe2\x82");
	assert_string_equal(text, "x\xef\xbf\xbd\xef\xbf\xbd");
	free(text);
	text = escaped("\xf5\x80\x80\x80");
	assert_string_equal(text, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	free(text);
}

/* ---- latest.json --------------------------------------------------------------------------- */

static void
test_parity_parse(void **state)
{
	HttpParity *parity = sample_parity();
	const HttpParityTable *hostile;
	const HttpParityTable *zeta;

	assert_int_equal(parity->ntables, 2);
	/* sorted by name: '"' sorts before 'p' */
	hostile = &parity->tables[0];
	zeta = &parity->tables[1];
	assert_string_equal(hostile->table, HOSTILE);
	assert_string_equal(zeta->table, "public.zeta");
	assert_string_equal(parity->updated_at, "2024-05-01T10:00:00.250Z");
	assert_int_equal(zeta->verified_unix, 1714557600);
	assert_int_equal(zeta->lsn, 0x16B3000);
	assert_true(zeta->equal);
	assert_true(zeta->common_point);
	assert_int_equal(zeta->rows_compared, 1000);
	assert_int_equal(zeta->repaired, -1);
	/* only the report's name: the server serves it from its own parity directory */
	assert_string_equal(zeta->report, "20240501T100000.250Z.json");
	assert_false(hostile->equal);
	assert_false(hostile->common_point);
	assert_int_equal(hostile->missing, 1);
	assert_int_equal(hostile->extra, 2);
	assert_int_equal(hostile->changed, 3);
	assert_int_equal(hostile->repaired, 0);
	assert_string_equal(hostile->report, "20240501T100000.250Z.json");
	http_parity_free(parity);

	assert_true(http_parity_parse("{}", &parity));
	assert_int_equal(parity->ntables, 0);
	http_parity_free(parity);
	assert_true(http_parity_parse("{\"tables\": {}}", &parity));
	assert_int_equal(parity->ntables, 0);
	http_parity_free(parity);

	assert_false(http_parity_parse("", &parity));
	assert_null(parity);
	assert_false(http_parity_parse("not json", &parity));
	assert_false(http_parity_parse("[1, 2]", &parity));
	assert_false(http_parity_parse("{\"tables\": []}", &parity));
	assert_false(http_parity_parse("{\"tables\": {\"t\": 1}}", &parity));
	assert_false(http_parity_parse("{\"tables\": {\"t\": {\"rows_compared\": 1}}}", &parity));
	assert_null(parity);
	http_parity_free(NULL);
}

/* ---- readiness ------------------------------------------------------------------------------ */

static void
test_readiness(void **state)
{
	AgentStatus status = sample_status();
	HttpParity *parity = sample_parity();
	HttpParity *clean = NULL;
	HttpReadiness ready;

	assert_true(http_parity_parse("{\"tables\": {\"public.a\": {\"equal\": true, \"schema_issues\": 0}}}", &clean));

	/* never verified, no guard: nothing fails but nothing is confirmed */
	http_readiness(&status, NULL, &ready);
	assert_int_equal(ready.copy_done, HTTP_CHECK_OK);
	assert_int_equal(ready.lag, HTTP_CHECK_OK);
	assert_int_equal(ready.parity, HTTP_CHECK_UNKNOWN);
	assert_int_equal(ready.guard, HTTP_CHECK_UNKNOWN);
	assert_false(ready.ready);

	http_readiness(&status, parity, &ready);
	assert_int_equal(ready.parity, HTTP_CHECK_FAILED);

	status.guard_active = true;
	status.guard_connect_revoked = true;
	http_readiness(&status, clean, &ready);
	assert_int_equal(ready.parity, HTTP_CHECK_OK);
	assert_int_equal(ready.guard, HTTP_CHECK_OK);
	assert_true(ready.ready);

	status.guard_violations_total = 1;
	http_readiness(&status, clean, &ready);
	assert_int_equal(ready.guard, HTTP_CHECK_FAILED);
	assert_false(ready.ready);
	status.guard_violations_total = 0;

	status.lag_seconds = HTTP_READY_LAG_SECONDS + 1;
	http_readiness(&status, clean, &ready);
	assert_int_equal(ready.lag, HTTP_CHECK_FAILED);
	assert_false(ready.ready);
	status.lag_seconds = 0;

	status.target_connected = false;
	http_readiness(&status, clean, &ready);
	assert_int_equal(ready.lag, HTTP_CHECK_FAILED);
	status.target_connected = true;

	status.phase = "copy";
	status.copy_active = true;
	http_readiness(&status, clean, &ready);
	assert_int_equal(ready.copy_done, HTTP_CHECK_FAILED);
	assert_int_equal(ready.lag, HTTP_CHECK_FAILED);
	assert_false(ready.ready);

	http_parity_free(parity);
	http_parity_free(clean);
}

/* ---- /metrics ------------------------------------------------------------------------------- */

/*
 * The text format's grammar, line by line: comments are HELP or TYPE of a family, each family
 * declared once and its samples together, names and label names valid, label values closed.
 */
static void
assert_exposition_format(const char *text)
{
	regex_t sample;
	regex_t help;
	regex_t type;
	char families[128][96];
	int nfamilies = 0;
	char current[96] = "";
	const char *line = text;

	assert_int_equal(regcomp(&sample,
							 "^([a-zA-Z_:][a-zA-Z0-9_:]*)"
							 "(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\""
							 "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\")*\\})?"
							 " -?[0-9]+(\\.[0-9]+)?$", REG_EXTENDED), 0);
	assert_int_equal(regcomp(&help, "^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) [^\n]+$", REG_EXTENDED), 0);
	assert_int_equal(regcomp(&type, "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|counter)$", REG_EXTENDED), 0);
	assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
	while (*line != '\0')
	{
		const char *end = strchr(line, '\n');
		char buf[2048];
		regmatch_t m[2];
		size_t length = (size_t) (end - line);

		assert_non_null(end);
		assert_true(length < sizeof(buf));
		memcpy(buf, line, length);
		buf[length] = '\0';
		if (regexec(&help, buf, 2, m, 0) == 0)
		{
			char name[96];

			snprintf(name, sizeof(name), "%.*s", (int) (m[1].rm_eo - m[1].rm_so), buf + m[1].rm_so);
			for (int i = 0; i < nfamilies; i++)
				if (strcmp(families[i], name) == 0)
					fail_msg("family %s declared twice", name);
			assert_true(nfamilies < 128);
			strcpy(families[nfamilies++], name);
			strcpy(current, name);
		}
		else if (regexec(&type, buf, 2, m, 0) == 0)
		{
			assert_int_equal(strncmp(buf + m[1].rm_so, current, strlen(current)), 0);
			/* counters end in _total, nothing else does */
			assert_int_equal(strstr(buf, "_total counter") != NULL, strstr(buf, " counter") != NULL);
		}
		else if (regexec(&sample, buf, 2, m, 0) == 0)
		{
			if (strlen(current) != (size_t) (m[1].rm_eo - m[1].rm_so) ||
				strncmp(buf, current, strlen(current)) != 0)
				fail_msg("sample outside its family (%s): %s", current, buf);
		}
		else
			fail_msg("not a valid exposition line: %s", buf);
		line = end + 1;
	}
	regfree(&sample);
	regfree(&help);
	regfree(&type);
}

static void
test_metrics(void **state)
{
	AgentStatus status = sample_status();
	HttpParity *parity = sample_parity();
	HttpTableCount counts[] = {{"public.messages", 10, 20, 3, 0}, {HOSTILE, 1, 0, 0, 1}};
	struct evbuffer *out = evbuffer_new();
	char *text;

	assert_non_null(out);
	assert_true(http_render_metrics(out, &status, parity, counts, 2, 1714557600 + 90));
	text = buffer_text(out);
	assert_exposition_format(text);

	assert_non_null(strstr(text, "\nswitchyard_up 1\n"));
	assert_non_null(strstr(text, "\nswitchyard_phase{phase=\"streaming\"} 1\n"));
	assert_non_null(strstr(text, "\nswitchyard_applied_lsn 23803720\n"));       /* 0/16B3748 */
	assert_non_null(strstr(text, "\nswitchyard_received_lsn 23803904\n"));
	assert_non_null(strstr(text, "\nswitchyard_lag_bytes 440\n"));
	assert_non_null(strstr(text, "\nswitchyard_lag_seconds 0.250000\n"));
	assert_non_null(strstr(text, "\nswitchyard_changes_applied_total 5300\n"));
	assert_non_null(strstr(text, "\nswitchyard_transactions_applied_total 1200\n"));
	assert_non_null(strstr(text, "\nswitchyard_spool_bytes 1048576\n"));
	assert_non_null(strstr(text, "\nswitchyard_table_changes_applied_total{table=\"public.messages\",operation=\"update\"} 20\n"));
	assert_non_null(strstr(text, "\nswitchyard_parity_verified 1\n"));
	assert_non_null(strstr(text, "\nswitchyard_parity_equal{table=\"public.zeta\"} 1\n"));
	assert_non_null(strstr(text, "\nswitchyard_parity_equal{table=\"\\\"Support \\\"\\\"Desk\\\"\\\" ø\\\".\\\"a\\\\b\\nc\\\"\"} 0\n"));
	assert_non_null(strstr(text, "\nswitchyard_parity_differing_rows{table=\"public.zeta\",kind=\"missing\"} 0\n"));
	assert_non_null(strstr(text, "kind=\"changed\"} 3\n"));
	assert_non_null(strstr(text, "\nswitchyard_parity_compared_rows{table=\"public.zeta\"} 1000\n"));
	assert_non_null(strstr(text, "\nswitchyard_parity_last_result_age_seconds{table=\"public.zeta\"} 90\n"));
	assert_non_null(strstr(text, "\nswitchyard_parity_last_result_timestamp_seconds{table=\"public.zeta\"} 1714557600\n"));
	assert_non_null(strstr(text, "\nswitchyard_parity_lsn{table=\"public.zeta\"} 23801856\n"));
	assert_non_null(strstr(text, "\nswitchyard_copy_active 0\n"));
	assert_null(strstr(text, "switchyard_copy_rows_total"));
	assert_non_null(strstr(text, "\nswitchyard_guard_active 0\n"));
	assert_non_null(strstr(text, "\nswitchyard_cutover_active 0\n"));
	assert_null(strstr(text, "switchyard_cutover_step"));
	assert_non_null(strstr(text, "\nswitchyard_cutover_ready 0\n"));
	assert_non_null(strstr(text, "\nswitchyard_cutover_check{check=\"parity\"} 0\n"));
	/* what may hold a password is not part of the metrics at all */
	assert_null(strstr(text, "host=db1"));
	free(text);
	http_parity_free(parity);

	/* no parity, a copy running, the guard up, an unknown phase */
	evbuffer_drain(out, evbuffer_get_length(out));
	status.phase = "resyncing";
	status.copy_active = true;
	status.copy_step = "data";
	status.copy_tables_done = 3;
	status.copy_tables_total = 9;
	status.copy_rows_done = 1000;
	status.copy_bytes_done = 65536;
	status.copy_elapsed_seconds = 12.5;
	status.guard_active = true;
	status.guard_mode = "enforce";
	status.guard_connect_revoked = true;
	status.guard_violations_total = 2;
	status.source_current_lsn = LSN_INVALID;
	status.cutover_active = true;
	status.cutover_step = "done";
	status.cutover_finished = true;
	status.cutover_succeeded = true;
	status.cutover_pause_ms = 42.5;
	assert_true(http_render_metrics(out, &status, NULL, NULL, 0, 0));
	text = buffer_text(out);
	assert_exposition_format(text);
	assert_non_null(strstr(text, "\nswitchyard_phase{phase=\"resyncing\"} 1\n"));
	assert_non_null(strstr(text, "\nswitchyard_copy_step{step=\"data\"} 1\n"));
	assert_non_null(strstr(text, "\nswitchyard_copy_tables_done 3\n"));
	assert_non_null(strstr(text, "\nswitchyard_copy_tables_planned 9\n"));
	assert_non_null(strstr(text, "\nswitchyard_copy_rows_total 1000\n"));
	assert_non_null(strstr(text, "\nswitchyard_copy_elapsed_seconds 12.500000\n"));
	assert_non_null(strstr(text, "\nswitchyard_parity_verified 0\n"));
	assert_null(strstr(text, "switchyard_parity_equal"));
	assert_null(strstr(text, "switchyard_source_current_lsn"));
	assert_null(strstr(text, "switchyard_table_changes_applied_total"));
	assert_non_null(strstr(text, "\nswitchyard_guard_mode{mode=\"enforce\"} 1\n"));
	assert_non_null(strstr(text, "\nswitchyard_guard_violations_total 2\n"));
	assert_non_null(strstr(text, "\nswitchyard_cutover_check{check=\"guard\"} 0\n"));
	assert_non_null(strstr(text, "\nswitchyard_cutover_check{check=\"copy_done\"} 0\n"));
	assert_non_null(strstr(text, "\nswitchyard_cutover_step{step=\"done\"} 1\n"));
	assert_non_null(strstr(text, "\nswitchyard_cutover_succeeded 1\n"));
	assert_non_null(strstr(text, "\nswitchyard_cutover_pause_seconds 0.042500\n"));
	free(text);
	evbuffer_free(out);
}

/* ---- /api/status ---------------------------------------------------------------------------- */

static json_object *
get(json_object *object, const char *key)
{
	json_object *value = NULL;

	assert_true(json_object_object_get_ex(object, key, &value));
	return value;
}

static void
test_status_document(void **state)
{
	AgentStatus status = sample_status();
	HttpParity *parity = sample_parity();
	char *text = http_render_status(&status, parity, 1714557600 + 30);
	char *plain = status_to_json(&status, false);
	json_object *root;
	json_object *base;
	json_object *tables;
	json_object *first;
	json_object *ready;

	assert_non_null(text);
	assert_non_null(plain);
	root = json_tokener_parse(text);
	base = json_tokener_parse(plain);
	assert_non_null(root);
	assert_non_null(base);
	/* every member of switchyard status --json, with the same value */
	json_object_object_foreach(base, key, value)
	{
		json_object *mine = get(root, key);

		assert_string_equal(json_object_to_json_string(mine), json_object_to_json_string(value));
	}
	tables = get(get(root, "parity"), "tables");
	assert_int_equal(json_object_array_length(tables), 2);
	first = json_object_array_get_idx(tables, 0);
	assert_string_equal(json_object_get_string(get(first, "table")), HOSTILE);
	assert_false(json_object_get_boolean(get(first, "equal")));
	assert_int_equal(json_object_get_int64(get(first, "age_seconds")), 30);
	assert_string_equal(json_object_get_string(get(first, "lsn")), "0/16B3000");
	assert_string_equal(json_object_get_string(get(first, "report_url")), "/api/parity/20240501T100000.250Z.json");
	ready = get(root, "readiness");
	assert_false(json_object_get_boolean(get(ready, "ready")));
	assert_string_equal(json_object_get_string(get(ready, "parity")), "failed");
	assert_string_equal(json_object_get_string(get(ready, "guard")), "unknown");
	assert_string_equal(json_object_get_string(get(ready, "lag")), "ok");
	json_object_put(root);
	json_object_put(base);
	free(text);
	free(plain);
	http_parity_free(parity);

	/* never verified: parity is null, not an empty list */
	text = http_render_status(&status, NULL, 0);
	root = json_tokener_parse(text);
	assert_non_null(root);
	assert_null(get(root, "parity"));
	json_object_put(root);
	free(text);
}

/* ---- the server refuses what it must -------------------------------------------------------- */

static void
dummy_status(void *arg, HttpStatusSink sink, void *sink_arg)
{
	AgentStatus status = sample_status();

	sink(&status, sink_arg);
}

static void
test_server_refuses_open_address_without_token(void **state)
{
	struct event_base *base = event_base_new();
	HttpOptions options = {0};
	HttpServer *server = (HttpServer *) 1;

	assert_non_null(base);
	options.base = base;
	options.address = "0.0.0.0:1";
	options.state_dir = "/nonexistent";
	options.status = dummy_status;
	assert_false(http_server_start(&options, &server));
	assert_null(server);
	options.address = "no port";
	assert_false(http_server_start(&options, &server));
	assert_null(server);
	http_server_free(NULL);
	event_base_free(base);
}

static void
test_dashboard_embedded(void **state)
{
	assert_true(http_dashboard_html_size > 1000);
	assert_int_equal(strlen(http_dashboard_html), http_dashboard_html_size);
	assert_int_equal(strncmp(http_dashboard_html, "<!DOCTYPE html>", 15), 0);
	assert_non_null(strstr(http_dashboard_html, "/api/status"));
	/* self-contained: no address elsewhere but the SVG namespace, which is a name, not a fetch */
	for (const char *p = strstr(http_dashboard_html, "http"); p != NULL; p = strstr(p + 1, "http"))
		if (strncmp(p, "http://", 7) == 0 || strncmp(p, "https://", 8) == 0)
			assert_int_equal(strncmp(p, "http://www.w3.org/2000/svg'", 27), 0);
	assert_null(strstr(http_dashboard_html, "src=\"//"));
	assert_null(strstr(http_dashboard_html, "@import"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_address),
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_authorized),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_parity_parse),
		cmocka_unit_test(test_readiness),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_status_document),
		cmocka_unit_test(test_server_refuses_open_address_without_token),
		cmocka_unit_test(test_dashboard_embedded),
	};

	return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
