/*
 * The status document: exactly the agreed keys, LSNs in PostgreSQL's text form, null for
 * what is unknown, and a lossless trip through JSON for the CLI.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "switchyard/status.h"

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
	status.slot_name = "switchyard_app";
	status.publication_name = "switchyard_app";
	status.origin_name = "switchyard_app";
	status.received_lsn = UINT64_C(0x16B374D848);
	status.flushed_lsn = UINT64_C(0x16B374D800);
	status.applied_lsn = UINT64_C(0x16B3740000);
	status.source_current_lsn = UINT64_C(0x16B374D900);
	status.lag_bytes = 0xD900;
	status.lag_seconds = 0.25;
	status.transactions_applied = 123456;
	status.changes_applied = 9876543210ULL;
	status.spool_bytes = 3u << 20;
	status.spool_segments = 3;
	status.spool_full = false;
	status.paused = true;
	status.source_connected = true;
	status.target_connected = false;
	status.last_error = "could not connect to target";
	status.started_at_unix = 1714564800;    /* 2024-05-01 12:00:00 UTC */
	return status;
}

static json_object *
parse_json(const char *text)
{
	json_object *root = json_tokener_parse(text);

	assert_non_null(root);
	assert_true(json_object_is_type(root, json_type_object));
	return root;
}

static const char *
string_member(json_object *root, const char *key)
{
	json_object *value = NULL;

	assert_true(json_object_object_get_ex(root, key, &value));
	assert_true(json_object_is_type(value, json_type_string));
	return json_object_get_string(value);
}

static void
test_json_has_exactly_the_documented_keys(void **state)
{
	static const char *const keys[] = {
		"phase", "running", "pid", "source", "target", "slot_name", "publication_name",
		"origin_name", "received_lsn", "flushed_lsn", "applied_lsn", "source_current_lsn",
		"lag_bytes", "lag_seconds", "transactions_applied", "changes_applied", "touched_keys", "spool", "paused",
		"source_connected", "target_connected", "last_error", "started_at", "hold_lsn", "held", "copy", "cutover",
		"guard",
	};
	AgentStatus status = sample_status();
	char *text = status_to_json(&status, false);
	json_object *root;
	json_object *spool = NULL;
	size_t n_keys = sizeof(keys) / sizeof(keys[0]);

	assert_non_null(text);
	root = parse_json(text);
	assert_int_equal(json_object_object_length(root), n_keys);
	for (size_t i = 0; i < n_keys; i++)
		if (!json_object_object_get_ex(root, keys[i], NULL))
			fail_msg("key \"%s\" missing", keys[i]);
	assert_true(json_object_object_get_ex(root, "spool", &spool));
	assert_int_equal(json_object_object_length(spool), 3);
	assert_int_equal(json_object_get_int64(json_object_object_get(spool, "bytes")), 3 << 20);
	assert_int_equal(json_object_get_int64(json_object_object_get(spool, "segments")), 3);
	assert_false(json_object_get_boolean(json_object_object_get(spool, "full")));

	assert_string_equal(string_member(root, "phase"), "streaming");
	assert_int_equal(json_object_get_int(json_object_object_get(root, "pid")), 4242);
	assert_string_equal(string_member(root, "received_lsn"), "16/B374D848");
	assert_string_equal(string_member(root, "applied_lsn"), "16/B3740000");
	assert_string_equal(string_member(root, "started_at"), "2024-05-01T12:00:00Z");
	assert_string_equal(string_member(root, "last_error"), "could not connect to target");
	assert_int_equal(json_object_get_int64(json_object_object_get(root, "changes_applied")),
					 9876543210LL);
	assert_true(json_object_get_boolean(json_object_object_get(root, "paused")));
	assert_false(json_object_get_boolean(json_object_object_get(root, "target_connected")));
	assert_true(json_object_get_double(json_object_object_get(root, "lag_seconds")) == 0.25);

	json_object_put(root);
	free(text);
}

static void
test_json_unknown_values(void **state)
{
	AgentStatus status;
	char *text;
	json_object *root;
	json_object *value = NULL;

	memset(&status, 0, sizeof(status));
	status.phase = "stopped";
	status.last_error = "";
	text = status_to_json(&status, true);
	assert_non_null(text);
	root = parse_json(text);
	assert_string_equal(string_member(root, "received_lsn"), "0/0");
	assert_string_equal(string_member(root, "source_current_lsn"), "0/0");
	assert_true(json_object_object_get_ex(root, "last_error", &value));
	assert_null(value);
	assert_true(json_object_object_get_ex(root, "started_at", &value));
	assert_null(value);
	assert_true(json_object_object_get_ex(root, "source", &value));
	assert_null(value);
	assert_false(json_object_get_boolean(json_object_object_get(root, "running")));
	json_object_put(root);
	free(text);
}

static void
test_json_pretty_and_compact(void **state)
{
	AgentStatus status = sample_status();
	char *pretty = status_to_json(&status, true);
	char *compact = status_to_json(&status, false);

	assert_non_null(strchr(pretty, '\n'));
	assert_null(strchr(compact, '\n'));
	/* LSNs stay greppable: no "\/" escapes */
	assert_non_null(strstr(pretty, "\"16/B374D848\""));
	assert_non_null(strstr(compact, "\"16/B374D848\""));
	free(pretty);
	free(compact);
}

static void
test_json_round_trip(void **state)
{
	AgentStatus status = sample_status();
	AgentStatus back;
	StatusDocument *document = NULL;
	char *text = status_to_json(&status, true);

	assert_true(status_from_json(text, &back, &document));
	assert_string_equal(back.phase, status.phase);
	assert_int_equal(back.running, status.running);
	assert_int_equal(back.pid, status.pid);
	assert_string_equal(back.source, status.source);
	assert_string_equal(back.target, status.target);
	assert_string_equal(back.slot_name, status.slot_name);
	assert_string_equal(back.publication_name, status.publication_name);
	assert_string_equal(back.origin_name, status.origin_name);
	assert_int_equal(back.received_lsn, status.received_lsn);
	assert_int_equal(back.flushed_lsn, status.flushed_lsn);
	assert_int_equal(back.applied_lsn, status.applied_lsn);
	assert_int_equal(back.source_current_lsn, status.source_current_lsn);
	assert_int_equal(back.lag_bytes, status.lag_bytes);
	assert_true(back.lag_seconds == status.lag_seconds);
	assert_int_equal(back.transactions_applied, status.transactions_applied);
	assert_int_equal(back.changes_applied, status.changes_applied);
	assert_int_equal(back.spool_bytes, status.spool_bytes);
	assert_int_equal(back.spool_segments, status.spool_segments);
	assert_int_equal(back.spool_full, status.spool_full);
	assert_int_equal(back.paused, status.paused);
	assert_int_equal(back.source_connected, status.source_connected);
	assert_int_equal(back.target_connected, status.target_connected);
	assert_string_equal(back.last_error, status.last_error);
	assert_int_equal(back.started_at_unix, status.started_at_unix);
	status_document_free(document);
	free(text);
}

static void
test_json_guard_object(void **state)
{
	static char *roles[] = {"chat_app", "chat_worker", NULL};
	static const char *const keys[] = {
		"mode", "app_roles", "connect_revoked", "violations_total", "sessions_now", "last_violation", "lifted",
	};
	AgentStatus status = sample_status();
	AgentStatus back;
	StatusDocument *document = NULL;
	json_object *root;
	json_object *guard = NULL;
	json_object *value = NULL;
	char *text;

	/* no guard: null */
	text = status_to_json(&status, false);
	root = parse_json(text);
	assert_true(json_object_object_get_ex(root, "guard", &value));
	assert_null(value);
	json_object_put(root);
	free(text);

	status.guard_active = true;
	status.guard_mode = "enforce";
	status.guard_app_roles = roles;
	status.guard_connect_revoked = true;
	status.guard_violations_total = 3;
	status.guard_sessions_now = 1;
	status.guard_last_violation = "2024-05-01T12:00:00Z: role \"chat_app\", application \"psql\"";
	text = status_to_json(&status, false);
	root = parse_json(text);
	assert_true(json_object_object_get_ex(root, "guard", &guard));
	assert_int_equal(json_object_object_length(guard), sizeof(keys) / sizeof(keys[0]));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!json_object_object_get_ex(guard, keys[i], NULL))
			fail_msg("guard key \"%s\" missing", keys[i]);
	assert_string_equal(string_member(guard, "mode"), "enforce");
	assert_int_equal(json_object_array_length(json_object_object_get(guard, "app_roles")), 2);
	assert_int_equal(json_object_get_int64(json_object_object_get(guard, "violations_total")), 3);
	assert_false(json_object_get_boolean(json_object_object_get(guard, "lifted")));
	json_object_put(root);

	assert_true(status_from_json(text, &back, &document));
	assert_true(back.guard_active);
	assert_string_equal(back.guard_mode, "enforce");
	assert_string_equal(back.guard_app_roles[0], "chat_app");
	assert_string_equal(back.guard_app_roles[1], "chat_worker");
	assert_null(back.guard_app_roles[2]);
	assert_true(back.guard_connect_revoked);
	assert_int_equal(back.guard_violations_total, 3);
	assert_int_equal(back.guard_sessions_now, 1);
	assert_string_equal(back.guard_last_violation, status.guard_last_violation);
	assert_false(back.guard_lifted);
	status_document_free(document);
	free(text);

	/* no violation yet: null, not "" */
	status.guard_last_violation = "";
	text = status_to_json(&status, false);
	root = parse_json(text);
	guard = json_object_object_get(root, "guard");
	assert_true(json_object_object_get_ex(guard, "last_violation", &value));
	assert_null(value);
	json_object_put(root);
	free(text);
}

static void
test_from_json_rejects_garbage(void **state)
{
	AgentStatus back;
	StatusDocument *document = NULL;

	assert_false(status_from_json("not json", &back, &document));
	assert_null(document);
	assert_false(status_from_json("[1, 2]", &back, &document));
	assert_null(document);
}

static void
test_text_form(void **state)
{
	AgentStatus status = sample_status();
	FILE *capture = tmpfile();
	int saved = dup(STDOUT_FILENO);
	char text[4096];
	size_t got;

	fflush(stdout);
	dup2(fileno(capture), STDOUT_FILENO);
	status_print_text(&status);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	rewind(capture);
	got = fread(text, 1, sizeof(text) - 1, capture);
	text[got] = '\0';
	fclose(capture);

	assert_non_null(strstr(text, "streaming (agent running, pid 4242)"));
	assert_non_null(strstr(text, "16/B3740000"));
	assert_non_null(strstr(text, "123456 transactions, 9876543210 changes"));
	assert_non_null(strstr(text, "3.0 MB in 3 segments"));
	assert_non_null(strstr(text, "paused"));
	assert_non_null(strstr(text, "2024-05-01T12:00:00Z"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_has_exactly_the_documented_keys),
		cmocka_unit_test(test_json_unknown_values),
		cmocka_unit_test(test_json_pretty_and_compact),
		cmocka_unit_test(test_json_round_trip),
		cmocka_unit_test(test_json_guard_object),
		cmocka_unit_test(test_from_json_rejects_garbage),
		cmocka_unit_test(test_text_form),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
