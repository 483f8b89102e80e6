/*
 * The status document: rendered as JSON for `status --json`, the control socket and
 * /api/status, read back by the CLI, and printed in a short human form.
 */
#include "switchyard/status.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

struct StatusDocument
{
	json_object *root;
	char **guard_app_roles;     /* pointers into root */
};

/* json-c before 0.14 has no unsigned integers; no counter here comes near 2^63. */
static json_object *
new_count(uint64_t value)
{
	return json_object_new_int64(value > INT64_MAX ? INT64_MAX : (int64_t) value);
}

static json_object *
new_lsn(Lsn lsn)
{
	char buf[LSN_FORMAT_SIZE];

	return json_object_new_string(lsn_format(lsn, buf));
}

/* NULL stays JSON null: "unknown" differs from an empty string. */
static json_object *
new_string_or_null(const char *text)
{
	return text != NULL ? json_object_new_string(text) : NULL;
}

static void
format_time(int64_t unix_seconds, char *buf, size_t size)
{
	time_t seconds = (time_t) unix_seconds;
	struct tm tm;

	gmtime_r(&seconds, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Adds the member; a NULL value from a failed allocation makes the whole build fail. */
static bool
add(json_object *object, const char *key, json_object *value, bool may_be_null)
{
	if (value == NULL && !may_be_null)
		return false;
	return json_object_object_add(object, key, value) == 0;
}

static json_object *
new_guard(const AgentStatus *status)
{
	json_object *guard = json_object_new_object();
	json_object *roles = json_object_new_array();
	const char *last = status->guard_last_violation;
	bool ok = guard != NULL && roles != NULL;

	if (last != NULL && last[0] == '\0')
		last = NULL;
	for (size_t i = 0; ok && status->guard_app_roles != NULL && status->guard_app_roles[i] != NULL; i++)
		ok &= json_object_array_add(roles, json_object_new_string(status->guard_app_roles[i])) == 0;
	if (!ok)
	{
		json_object_put(roles);
		json_object_put(guard);
		return NULL;
	}
	ok &= add(guard, "mode", new_string_or_null(status->guard_mode), true);
	ok &= add(guard, "app_roles", roles, false);
	ok &= add(guard, "connect_revoked", json_object_new_boolean(status->guard_connect_revoked), false);
	ok &= add(guard, "violations_total", new_count(status->guard_violations_total), false);
	ok &= add(guard, "sessions_now", new_count(status->guard_sessions_now), false);
	ok &= add(guard, "last_violation", new_string_or_null(last), true);
	ok &= add(guard, "lifted", json_object_new_boolean(status->guard_lifted), false);
	if (!ok)
	{
		json_object_put(guard);
		return NULL;
	}
	return guard;
}

char *
status_to_json(const AgentStatus *status, bool pretty)
{
	json_object *root = NULL;
	json_object *spool = NULL;
	const char *last_error = status->last_error;
	char started[32];
	char *result = NULL;
	bool ok = true;

	if (last_error != NULL && last_error[0] == '\0')
		last_error = NULL;

	root = json_object_new_object();
	spool = json_object_new_object();
	if (root == NULL || spool == NULL)
		goto cleanup;

	ok &= add(spool, "bytes", new_count(status->spool_bytes), false);
	ok &= add(spool, "segments", new_count(status->spool_segments), false);
	ok &= add(spool, "full", json_object_new_boolean(status->spool_full), false);

	ok &= add(root, "phase", new_string_or_null(status->phase), true);
	ok &= add(root, "running", json_object_new_boolean(status->running), false);
	ok &= add(root, "pid", json_object_new_int(status->pid), false);
	ok &= add(root, "source", new_string_or_null(status->source), true);
	ok &= add(root, "target", new_string_or_null(status->target), true);
	ok &= add(root, "slot_name", new_string_or_null(status->slot_name), true);
	ok &= add(root, "publication_name", new_string_or_null(status->publication_name), true);
	ok &= add(root, "origin_name", new_string_or_null(status->origin_name), true);
	ok &= add(root, "received_lsn", new_lsn(status->received_lsn), false);
	ok &= add(root, "flushed_lsn", new_lsn(status->flushed_lsn), false);
	ok &= add(root, "applied_lsn", new_lsn(status->applied_lsn), false);
	ok &= add(root, "source_current_lsn", new_lsn(status->source_current_lsn), false);
	ok &= add(root, "lag_bytes", new_count(status->lag_bytes), false);
	ok &= add(root, "lag_seconds", json_object_new_double(status->lag_seconds), false);
	ok &= add(root, "transactions_applied", new_count(status->transactions_applied), false);
	ok &= add(root, "changes_applied", new_count(status->changes_applied), false);
	ok &= add(root, "touched_keys", new_count(status->touched_keys), false);
	ok &= add(root, "spool", spool, false);
	spool = NULL;               /* owned by root now */
	ok &= add(root, "paused", json_object_new_boolean(status->paused), false);
	ok &= add(root, "source_connected", json_object_new_boolean(status->source_connected), false);
	ok &= add(root, "target_connected", json_object_new_boolean(status->target_connected), false);
	ok &= add(root, "last_error", new_string_or_null(last_error), true);
	if (status->started_at_unix > 0)
	{
		format_time(status->started_at_unix, started, sizeof(started));
		ok &= add(root, "started_at", json_object_new_string(started), false);
	}
	else
		ok &= add(root, "started_at", NULL, true);
	ok &= add(root, "hold_lsn", new_lsn(status->hold_lsn), false);
	ok &= add(root, "held", json_object_new_boolean(status->held), false);
	if (status->copy_active)
	{
		json_object *copy = json_object_new_object();

		ok &= copy != NULL;
		if (copy != NULL)
		{
			ok &= add(copy, "step", new_string_or_null(status->copy_step), true);
			ok &= add(copy, "tables_done", json_object_new_int(status->copy_tables_done), false);
			ok &= add(copy, "tables_total", json_object_new_int(status->copy_tables_total), false);
			ok &= add(copy, "rows_done", new_count(status->copy_rows_done), false);
			ok &= add(copy, "rows_estimated", new_count(status->copy_rows_estimated), false);
			ok &= add(copy, "bytes_done", new_count(status->copy_bytes_done), false);
			ok &= add(copy, "bytes_estimated", new_count(status->copy_bytes_estimated), false);
			ok &= add(copy, "elapsed_seconds", json_object_new_double(status->copy_elapsed_seconds), false);
			ok &= add(root, "copy", copy, false);
		}
	}
	else
		ok &= add(root, "copy", NULL, true);
	if (status->guard_active)
		ok &= add(root, "guard", new_guard(status), false);
	else
		ok &= add(root, "guard", NULL, true);
	if (status->cutover_active)
	{
		json_object *cutover = json_object_new_object();

		ok &= cutover != NULL;
		if (cutover != NULL)
		{
			ok &= add(cutover, "step", new_string_or_null(status->cutover_step), true);
			ok &= add(cutover, "finished", json_object_new_boolean(status->cutover_finished), false);
			ok &= add(cutover, "succeeded", json_object_new_boolean(status->cutover_succeeded), false);
			ok &= add(cutover, "pause_ms", json_object_new_double(status->cutover_pause_ms), false);
			ok &= add(cutover, "message", new_string_or_null(status->cutover_message), true);
			ok &= add(root, "cutover", cutover, false);
		}
	}
	else
		ok &= add(root, "cutover", NULL, true);
	if (!ok)
		goto cleanup;

	/* LSNs read "0/16B3748", not "0\/16B3748", for people and for grep */
	result = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_NOSLASHESCAPE |
												   (pretty ? JSON_C_TO_STRING_PRETTY |
													JSON_C_TO_STRING_SPACED
													: JSON_C_TO_STRING_PLAIN)));

cleanup:
	json_object_put(spool);
	json_object_put(root);
	return result;
}

/* ---- reading the document back --------------------------------------------------------- */

static json_object *
member(json_object *object, const char *key)
{
	json_object *value = NULL;

	if (object == NULL || !json_object_object_get_ex(object, key, &value))
		return NULL;
	return value;
}

static const char *
get_string(json_object *object, const char *key)
{
	json_object *value = member(object, key);

	return json_object_is_type(value, json_type_string) ? json_object_get_string(value) : NULL;
}

static uint64_t
get_count(json_object *object, const char *key)
{
	int64_t value = json_object_get_int64(member(object, key));

	return value > 0 ? (uint64_t) value : 0;
}

static bool
get_bool(json_object *object, const char *key)
{
	return json_object_get_boolean(member(object, key));
}

static Lsn
get_lsn(json_object *object, const char *key)
{
	const char *text = get_string(object, key);
	Lsn lsn = LSN_INVALID;

	if (text == NULL || !lsn_parse(text, &lsn))
		return LSN_INVALID;
	return lsn;
}

static int64_t
get_time(json_object *object, const char *key)
{
	const char *text = get_string(object, key);
	struct tm tm;
	const char *end;

	if (text == NULL)
		return 0;
	memset(&tm, 0, sizeof(tm));
	end = strptime(text, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0')
		return 0;
	return (int64_t) timegm(&tm);
}

static bool
read_guard(StatusDocument *doc, json_object *guard, AgentStatus *out)
{
	json_object *roles = member(guard, "app_roles");
	size_t n = json_object_is_type(roles, json_type_array) ? json_object_array_length(roles) : 0;
	size_t used = 0;

	if (!json_object_is_type(guard, json_type_object))
		return true;
	doc->guard_app_roles = calloc(n + 1, sizeof(char *));
	if (doc->guard_app_roles == NULL)
		return false;
	for (size_t i = 0; i < n; i++)
	{
		json_object *role = json_object_array_get_idx(roles, i);

		if (json_object_is_type(role, json_type_string))
			doc->guard_app_roles[used++] = (char *) json_object_get_string(role);
	}
	out->guard_active = true;
	out->guard_mode = get_string(guard, "mode");
	out->guard_app_roles = doc->guard_app_roles;
	out->guard_connect_revoked = get_bool(guard, "connect_revoked");
	out->guard_violations_total = get_count(guard, "violations_total");
	out->guard_sessions_now = get_count(guard, "sessions_now");
	out->guard_last_violation = get_string(guard, "last_violation");
	out->guard_lifted = get_bool(guard, "lifted");
	return true;
}

bool
status_from_json(const char *text, AgentStatus *out, StatusDocument **document)
{
	StatusDocument *doc = NULL;
	json_object *root = NULL;
	json_object *spool;
	bool ok = false;

	*document = NULL;
	memset(out, 0, sizeof(*out));
	root = json_tokener_parse(text);
	if (root == NULL || !json_object_is_type(root, json_type_object))
		goto cleanup;
	doc = calloc(1, sizeof(*doc));
	if (doc == NULL)
		goto cleanup;
	doc->root = root;
	root = NULL;

	spool = member(doc->root, "spool");
	out->phase = get_string(doc->root, "phase");
	out->running = get_bool(doc->root, "running");
	out->pid = json_object_get_int(member(doc->root, "pid"));
	out->source = get_string(doc->root, "source");
	out->target = get_string(doc->root, "target");
	out->slot_name = get_string(doc->root, "slot_name");
	out->publication_name = get_string(doc->root, "publication_name");
	out->origin_name = get_string(doc->root, "origin_name");
	out->received_lsn = get_lsn(doc->root, "received_lsn");
	out->flushed_lsn = get_lsn(doc->root, "flushed_lsn");
	out->applied_lsn = get_lsn(doc->root, "applied_lsn");
	out->source_current_lsn = get_lsn(doc->root, "source_current_lsn");
	out->lag_bytes = get_count(doc->root, "lag_bytes");
	out->lag_seconds = json_object_get_double(member(doc->root, "lag_seconds"));
	out->transactions_applied = get_count(doc->root, "transactions_applied");
	out->changes_applied = get_count(doc->root, "changes_applied");
	out->touched_keys = get_count(doc->root, "touched_keys");
	out->spool_bytes = get_count(spool, "bytes");
	out->spool_segments = get_count(spool, "segments");
	out->spool_full = get_bool(spool, "full");
	out->paused = get_bool(doc->root, "paused");
	out->source_connected = get_bool(doc->root, "source_connected");
	out->target_connected = get_bool(doc->root, "target_connected");
	out->last_error = get_string(doc->root, "last_error");
	out->started_at_unix = get_time(doc->root, "started_at");
	if (!read_guard(doc, member(doc->root, "guard"), out))
		goto cleanup;

	*document = doc;
	doc = NULL;
	ok = true;

cleanup:
	json_object_put(root);
	status_document_free(doc);
	return ok;
}

void
status_document_free(StatusDocument *document)
{
	if (document == NULL)
		return;
	json_object_put(document->root);
	free(document->guard_app_roles);
	free(document);
}

/* ---- human form ------------------------------------------------------------------------ */

static void
format_bytes(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = {"bytes", "kB", "MB", "GB", "TB"};
	double value = (double) bytes;
	int unit = 0;

	if (bytes < 1024)
	{
		snprintf(buf, size, "%" PRIu64 " bytes", bytes);
		return;
	}
	while (value >= 1024.0 && unit < 4)
	{
		value /= 1024.0;
		unit++;
	}
	snprintf(buf, size, "%.1f %s", value, units[unit]);
}

static const char *
or_dash(const char *text)
{
	return text != NULL && text[0] != '\0' ? text : "-";
}

static void
print_guard(const AgentStatus *status)
{
	const char *state;

	if (status->guard_lifted)
		state = "lifted: application roles may connect to the target";
	else if (status->guard_connect_revoked)
		state = "CONNECT on the target revoked from PUBLIC and the application roles";
	else
		state = "not in place";
	printf("%-20s %s (%s)\n", "target guard:", state, or_dash(status->guard_mode));
	printf("%-20s ", "application roles:");
	if (status->guard_app_roles == NULL || status->guard_app_roles[0] == NULL)
		printf("-");
	for (size_t i = 0; status->guard_app_roles != NULL && status->guard_app_roles[i] != NULL; i++)
		printf("%s%s", i > 0 ? ", " : "", status->guard_app_roles[i]);
	printf("\n");
	if (status->running)
		printf("%-20s %" PRIu64 " total, %" PRIu64 " foreign session%s on the target now\n", "guard violations:",
			   status->guard_violations_total, status->guard_sessions_now,
			   status->guard_sessions_now == 1 ? "" : "s");
	if (status->guard_last_violation != NULL && status->guard_last_violation[0] != '\0')
		printf("%-20s %s\n", "last violation:", status->guard_last_violation);
}

void
status_print_text(const AgentStatus *status)
{
	char a[LSN_FORMAT_SIZE];
	char b[32];
	char c[32];

	if (status->running)
		printf("%-20s %s (agent running, pid %d)\n", "phase:", or_dash(status->phase), status->pid);
	else
		printf("%-20s %s (no agent running)\n", "phase:", or_dash(status->phase));
	printf("%-20s %s\n", "source:", or_dash(status->source));
	printf("%-20s %s\n", "target:", or_dash(status->target));
	printf("%-20s %s\n", "slot:", or_dash(status->slot_name));
	printf("%-20s %s\n", "publication:", or_dash(status->publication_name));
	printf("%-20s %s\n", "origin:", or_dash(status->origin_name));
	printf("%-20s %s\n", "received:", lsn_format(status->received_lsn, a));
	printf("%-20s %s\n", "flushed:", lsn_format(status->flushed_lsn, a));
	printf("%-20s %s\n", "applied:", lsn_format(status->applied_lsn, a));
	if (status->source_current_lsn != LSN_INVALID)
		printf("%-20s %s\n", "source current:", lsn_format(status->source_current_lsn, a));
	else
		printf("%-20s %s\n", "source current:", "unknown");
	format_bytes(status->lag_bytes, b, sizeof(b));
	printf("%-20s %s, %.1f s\n", "lag:", b, status->lag_seconds);
	printf("%-20s %" PRIu64 " transactions, %" PRIu64 " changes\n", "applied so far:",
		   status->transactions_applied, status->changes_applied);
	if (status->running)
		printf("%-20s %" PRIu64 " rows written since the last verify (the cutover compares these)\n",
			   "touched keys:", status->touched_keys);
	format_bytes(status->spool_bytes, b, sizeof(b));
	printf("%-20s %s in %" PRIu64 " segment%s%s\n", "spool:", b, status->spool_segments,
		   status->spool_segments == 1 ? "" : "s", status->spool_full ? " (FULL: receiving paused)" : "");
	if (status->running)
	{
		printf("%-20s %s\n", "apply:", status->paused ? "paused" : "running");
		printf("%-20s source %s, target %s\n", "connections:",
			   status->source_connected ? "connected" : "disconnected",
			   status->target_connected ? "connected" : "disconnected");
	}
	printf("%-20s %s\n", "last error:", or_dash(status->last_error));
	if (status->started_at_unix > 0)
	{
		format_time(status->started_at_unix, c, sizeof(c));
		printf("%-20s %s\n", "started at:", c);
	}
	if (status->guard_active)
		print_guard(status);
}
