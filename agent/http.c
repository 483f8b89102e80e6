/*
 * The agent's HTTP side: evhttp on the agent's event loop serving /metrics (Prometheus text
 * format), /api/status (the status document plus parity and readiness), /api/history (the
 * lag of the last minutes), /api/parity (verify's results and reports) and the dashboard.
 * It only reads: the agent's status through a callback, parity from <state-dir>/parity/.
 */
#include "switchyard/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event_struct.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>

#include "switchyard/log.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

/* A GET needs little; anything bigger is not a dashboard or a scraper. */
#define HTTP_MAX_HEADERS_SIZE (16 * 1024)
#define HTTP_MAX_BODY_SIZE 1024
/* Idle keep-alive connections and slow clients are dropped after this long. */
#define HTTP_TIMEOUT_SECONDS 30
/* latest.json holds a few hundred bytes per table. */
#define HTTP_MAX_PARITY_FILE (16 * 1024 * 1024)
/* The lag history behind the dashboard's chart: one sample a second for five minutes. */
#define HTTP_HISTORY_SAMPLES 300
#define HTTP_HISTORY_INTERVAL_MS 1000
#define HTTP_HOST_SIZE 256
/* the codes event2/http.h does not name */
#define HTTP_UNAUTHORIZED 401
#define HTTP_FORBIDDEN 403

#define HTTP_CONTENT_JSON "application/json; charset=utf-8"
#define HTTP_CONTENT_TEXT "text/plain; charset=utf-8"
#define HTTP_CONTENT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define HTTP_CONTENT_HTML "text/html; charset=utf-8"
/* The page is self-contained: it may run its own inline code and call back home, nothing else. */
#define HTTP_DASHBOARD_CSP \
	"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " \
	"img-src data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

typedef struct HttpSample
{
	int64_t unix_ms;
	double lag_seconds;
	uint64_t lag_bytes;
	uint64_t changes_applied;
} HttpSample;

struct HttpServer
{
	struct event_base *base;
	struct evhttp *http;
	HttpStatusFn status;
	void *status_arg;
	HttpTableCountsFn table_counts;
	void *table_counts_arg;
	char *token;
	char *parity_dir;
	char host[HTTP_HOST_SIZE];
	uint16_t port;
	/* latest.json as last read, and what identified the file then */
	HttpParity *parity;
	bool parity_seen;
	struct timespec parity_mtime;
	off_t parity_size;
	ino_t parity_inode;
	HttpTableCount *counts;
	size_t counts_cap;
	HttpSample history[HTTP_HISTORY_SAMPLES];
	size_t history_next;
	size_t history_count;
	struct event history_timer;
	bool history_timer_added;
};

typedef enum HttpRoute
{
	HTTP_ROUTE_NONE = 0,
	HTTP_ROUTE_DASHBOARD,
	HTTP_ROUTE_METRICS,
	HTTP_ROUTE_STATUS,
	HTTP_ROUTE_HISTORY,
	HTTP_ROUTE_PARITY,
	HTTP_ROUTE_PARITY_REPORT
} HttpRoute;

/* One request's rendering, carried through the agent's status callback. */
typedef struct HttpRender
{
	HttpServer *server;
	HttpRoute route;
	struct evbuffer *body;
	bool ok;
} HttpRender;

static int64_t
http_unix_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* ---- addresses and authorization --------------------------------------------------------- */

bool
http_parse_address(const char *text, char *host, size_t host_size, uint16_t *port)
{
	const char *colon = strrchr(text, ':');
	const char *start = text;
	size_t length;
	char *end = NULL;
	long number;

	if (colon == NULL || colon[1] == '\0')
		return false;
	errno = 0;
	number = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || number < 1 || number > 65535 || !isdigit((unsigned char) colon[1]))
		return false;
	length = (size_t) (colon - text);
	if (length > 0 && text[0] == '[')
	{
		if (length < 3 || colon[-1] != ']')
			return false;
		start = text + 1;
		length -= 2;
	}
	else if (memchr(text, ':', length) != NULL)
		return false;           /* an IPv6 address needs its brackets */
	if (length == 0)
	{
		start = "127.0.0.1";
		length = strlen(start);
	}
	if (length >= host_size)
		return false;
	memcpy(host, start, length);
	host[length] = '\0';
	*port = (uint16_t) number;
	return true;
}

static bool
http_host_is_loopback(const char *host)
{
	struct in_addr v4;
	struct in6_addr v6;

	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &v6) == 1)
	{
		if (IN6_IS_ADDR_LOOPBACK(&v6))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
	}
	return false;
}

bool
http_address_is_loopback(const char *text)
{
	char host[HTTP_HOST_SIZE];
	uint16_t port;

	return http_parse_address(text, host, sizeof(host), &port) && http_host_is_loopback(host);
}

static int
http_base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

bool
http_base64_decode(const char *text, char *out, size_t out_size)
{
	size_t length = strlen(text);
	size_t used = 0;

	if (length % 4 != 0)
		return false;
	for (size_t i = 0; i < length; i += 4)
	{
		int v[4];
		int pad = 0;

		for (int k = 0; k < 4; k++)
		{
			unsigned char c = (unsigned char) text[i + k];

			/* padding only at the very end, at most two */
			if (c == '=' && i + 4 == length && k >= 2)
			{
				pad++;
				v[k] = 0;
				continue;
			}
			if (pad > 0 || (v[k] = http_base64_value(c)) < 0)
				return false;
		}
		if (used + (size_t) (3 - pad) >= out_size)
			return false;
		out[used++] = (char) (v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[used++] = (char) ((v[1] & 0xf) << 4 | v[2] >> 2);
		if (pad < 1)
			out[used++] = (char) ((v[2] & 0x3) << 6 | v[3]);
	}
	if (used >= out_size)
		return false;
	out[used] = '\0';
	/* a NUL inside the credentials would cut the comparison short */
	return strlen(out) == used;
}

/* Compares in time that depends on the length of what was sent, never on the secret. */
static bool
http_secret_equal(const char *given, size_t given_length, const char *secret)
{
	size_t secret_length = strlen(secret);
	volatile unsigned char diff = given_length != secret_length;

	if (secret_length == 0)
		return false;
	for (size_t i = 0; i < given_length; i++)
		diff |= (unsigned char) given[i] ^ (unsigned char) secret[i % secret_length];
	return diff == 0;
}

bool
http_authorized(const char *header, const char *token)
{
	const char *p = header;
	const char *credentials;
	size_t length;
	bool basic;
	char encoded[4096];
	char plain[4096];
	char *colon;

	if (header == NULL || token == NULL)
		return false;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "Bearer ", 7) == 0)
	{
		basic = false;
		credentials = p + 7;
	}
	else if (strncasecmp(p, "Basic ", 6) == 0)
	{
		basic = true;
		credentials = p + 6;
	}
	else
		return false;
	while (*credentials == ' ' || *credentials == '\t')
		credentials++;
	length = strlen(credentials);
	while (length > 0 && (credentials[length - 1] == ' ' || credentials[length - 1] == '\t'))
		length--;
	if (!basic)
		return http_secret_equal(credentials, length, token);

	/* Basic: base64 of "user:password", the token being the password */
	if (length >= sizeof(encoded))
		return false;
	memcpy(encoded, credentials, length);
	encoded[length] = '\0';
	if (!http_base64_decode(encoded, plain, sizeof(plain)))
		return false;
	colon = strchr(plain, ':');
	if (colon == NULL)
		return false;
	return http_secret_equal(colon + 1, strlen(colon + 1), token);
}

/*
 * Without a token, a loopback-only server trusts whoever reaches it; a web page elsewhere can
 * still reach it through DNS rebinding (its own name resolving to 127.0.0.1), and then the
 * browser sends that name as Host. Refuse names other than localhost and the one we bound.
 */
static bool
http_host_allowed(const HttpServer *server, const char *host)
{
	struct in_addr v4;
	char bare[HTTP_HOST_SIZE];
	size_t length;

	if (host == NULL || server->token != NULL)
		return true;            /* no Host: not a browser; a token protects on its own */
	length = strlen(host);
	if (length >= 2 && host[0] == '[' && host[length - 1] == ']' && length - 2 < sizeof(bare))
		return true;            /* an IPv6 literal cannot be rebound */
	if (length >= sizeof(bare))
		return false;
	memcpy(bare, host, length + 1);
	if (length > 0 && bare[length - 1] == '.')
		bare[length - 1] = '\0';
	if (inet_pton(AF_INET, bare, &v4) == 1)
		return true;
	if (strcasecmp(bare, "localhost") == 0 || strcasecmp(bare, server->host) == 0)
		return true;
	length = strlen(bare);
	return length > 10 && strcasecmp(bare + length - 10, ".localhost") == 0;
}

/* ---- parity results ---------------------------------------------------------------------- */

static int64_t
http_parse_time(const char *text)
{
	struct tm tm;
	const char *end;

	if (text == NULL)
		return 0;
	memset(&tm, 0, sizeof(tm));
	end = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL)
		return 0;
	if (*end == '.')
	{
		end++;
		while (isdigit((unsigned char) *end))
			end++;
	}
	if (strcmp(end, "Z") != 0)
		return 0;
	return (int64_t) timegm(&tm);
}

static json_object *
http_member(json_object *object, const char *key)
{
	json_object *value = NULL;

	if (!json_object_object_get_ex(object, key, &value))
		return NULL;
	return value;
}

static int64_t
http_member_int(json_object *object, const char *key, int64_t absent)
{
	json_object *value = http_member(object, key);

	if (value == NULL || !(json_object_is_type(value, json_type_int) || json_object_is_type(value, json_type_double)))
		return absent;
	return json_object_get_int64(value);
}

static char *
http_member_strdup(json_object *object, const char *key)
{
	json_object *value = http_member(object, key);

	if (!json_object_is_type(value, json_type_string))
		return NULL;
	return strdup(json_object_get_string(value));
}

static int
http_parity_compare(const void *a, const void *b)
{
	return strcmp(((const HttpParityTable *) a)->table, ((const HttpParityTable *) b)->table);
}

bool
http_parity_parse(const char *text, HttpParity **out)
{
	json_object *root = NULL;
	json_object *tables;
	HttpParity *parity = NULL;
	size_t n = 0;
	bool ok = false;

	*out = NULL;
	root = json_tokener_parse(text);
	if (root == NULL || !json_object_is_type(root, json_type_object))
		goto cleanup;
	tables = http_member(root, "tables");
	if (tables != NULL && !json_object_is_type(tables, json_type_object))
		goto cleanup;
	parity = calloc(1, sizeof(*parity));
	if (parity == NULL)
		goto cleanup;
	parity->updated_at = http_member_strdup(root, "updated_at");
	if (tables != NULL && json_object_object_length(tables) > 0)
	{
		parity->tables = calloc((size_t) json_object_object_length(tables), sizeof(HttpParityTable));
		if (parity->tables == NULL)
			goto cleanup;
	}
	if (tables != NULL)
	{
		json_object_object_foreach(tables, name, entry)
		{
			HttpParityTable *t = &parity->tables[n];
			json_object *equal = http_member(entry, "equal");
			const char *lsn_text;
			char *report;
			char *slash;

			if (!json_object_is_type(entry, json_type_object) || !json_object_is_type(equal, json_type_boolean))
				goto cleanup;
			n++;
			parity->ntables = n;
			t->table = strdup(name);
			t->verified_at = http_member_strdup(entry, "verified_at");
			if (t->table == NULL)
				goto cleanup;
			t->verified_unix = http_parse_time(t->verified_at);
			lsn_text = json_object_get_string(http_member(entry, "lsn"));
			if (lsn_text == NULL || !lsn_parse(lsn_text, &t->lsn))
				t->lsn = LSN_INVALID;
			t->common_point = json_object_get_boolean(http_member(entry, "common_point"));
			t->equal = json_object_get_boolean(equal);
			t->rows_compared = http_member_int(entry, "rows_compared", 0);
			t->missing = http_member_int(entry, "missing", 0);
			t->extra = http_member_int(entry, "extra", 0);
			t->changed = http_member_int(entry, "changed", 0);
			t->schema_issues = http_member_int(entry, "schema_issues", 0);
			t->repaired = http_member_int(entry, "repaired", -1);
			/* verify names the report by its path; only its name in the parity directory is ours to serve */
			report = http_member_strdup(entry, "report");
			if (report != NULL && (slash = strrchr(report, '/')) != NULL)
				memmove(report, slash + 1, strlen(slash + 1) + 1);
			t->report = report;
		}
	}
	if (parity->ntables > 1)
		qsort(parity->tables, parity->ntables, sizeof(HttpParityTable), http_parity_compare);
	*out = parity;
	parity = NULL;
	ok = true;

cleanup:
	http_parity_free(parity);
	json_object_put(root);
	return ok;
}

void
http_parity_free(HttpParity *parity)
{
	if (parity == NULL)
		return;
	for (size_t i = 0; i < parity->ntables; i++)
	{
		free(parity->tables[i].table);
		free(parity->tables[i].verified_at);
		free(parity->tables[i].report);
	}
	free(parity->tables);
	free(parity->updated_at);
	free(parity);
}

static char *
http_read_file(const char *path, size_t max, size_t *length)
{
	FILE *file = NULL;
	char *text = NULL;
	size_t used = 0;
	size_t cap = 4096;
	char *result = NULL;

	file = fopen(path, "re");
	if (file == NULL)
		goto cleanup;
	text = malloc(cap);
	if (text == NULL)
		goto cleanup;
	for (;;)
	{
		size_t n;

		if (used + 1 >= cap)
		{
			char *bigger;

			if (cap > max)
			{
				errno = EFBIG;
				goto cleanup;
			}
			bigger = realloc(text, cap * 2);
			if (bigger == NULL)
				goto cleanup;
			text = bigger;
			cap *= 2;
		}
		n = fread(text + used, 1, cap - used - 1, file);
		used += n;
		if (n == 0)
			break;
	}
	if (ferror(file))
		goto cleanup;
	text[used] = '\0';
	*length = used;
	result = text;
	text = NULL;

cleanup:
	if (file != NULL)
		fclose(file);
	free(text);
	return result;
}

/*
 * Rereads latest.json when it changed (verify replaces it by rename, so the inode changes);
 * a missing file means "not verified yet". An unreadable one is logged once per version.
 */
static void
http_parity_refresh(HttpServer *server)
{
	char path[PATH_MAX];
	struct stat st;
	char *text = NULL;
	size_t length = 0;
	HttpParity *parity = NULL;

	if ((size_t) snprintf(path, sizeof(path), "%s/latest.json", server->parity_dir) >= sizeof(path))
		return;
	if (stat(path, &st) != 0)
	{
		if (errno != ENOENT)
			log_warning("could not stat parity results \"%s\": %m", path);
		http_parity_free(server->parity);
		server->parity = NULL;
		server->parity_seen = false;
		return;
	}
	if (server->parity_seen && st.st_ino == server->parity_inode && st.st_size == server->parity_size &&
		st.st_mtim.tv_sec == server->parity_mtime.tv_sec && st.st_mtim.tv_nsec == server->parity_mtime.tv_nsec)
		return;
	server->parity_seen = true;
	server->parity_inode = st.st_ino;
	server->parity_size = st.st_size;
	server->parity_mtime = st.st_mtim;
	http_parity_free(server->parity);
	server->parity = NULL;
	text = http_read_file(path, HTTP_MAX_PARITY_FILE, &length);
	if (text == NULL)
	{
		log_warning("could not read parity results \"%s\": %m", path);
		return;
	}
	if (!http_parity_parse(text, &parity))
	{
		log_warning("could not parse parity results \"%s\"", path);
		log_detail("the dashboard and /metrics show no parity results until the next verify");
	}
	server->parity = parity;
	free(text);
}

/* ---- readiness --------------------------------------------------------------------------- */

void
http_readiness(const AgentStatus *status, const HttpParity *parity, HttpReadiness *out)
{
	bool copying = status->copy_active || (status->phase != NULL && strcmp(status->phase, "copy") == 0);

	memset(out, 0, sizeof(*out));
	out->copy_done = copying ? HTTP_CHECK_FAILED : HTTP_CHECK_OK;
	if (!status->running)
		out->lag = HTTP_CHECK_UNKNOWN;
	else if (copying || !status->source_connected || !status->target_connected || status->spool_full ||
			 status->lag_seconds > HTTP_READY_LAG_SECONDS)
		out->lag = HTTP_CHECK_FAILED;
	else
		out->lag = HTTP_CHECK_OK;
	out->parity = HTTP_CHECK_UNKNOWN;
	if (parity != NULL && parity->ntables > 0)
	{
		out->parity = HTTP_CHECK_OK;
		for (size_t i = 0; i < parity->ntables; i++)
			if (!parity->tables[i].equal || parity->tables[i].schema_issues > 0)
				out->parity = HTTP_CHECK_FAILED;
	}
	/* no guard running: unknown, which keeps "ready" false rather than claiming what nobody checked */
	out->guard = HTTP_CHECK_UNKNOWN;
	if (status->guard_active)
	{
		/* one foreign session ever seen is one too many: it may have read or written the target */
		if (status->guard_violations_total > 0 || status->guard_sessions_now > 0 ||
			!(status->guard_connect_revoked || status->guard_lifted))
			out->guard = HTTP_CHECK_FAILED;
		else
			out->guard = HTTP_CHECK_OK;
	}
	out->ready = out->copy_done == HTTP_CHECK_OK && out->lag == HTTP_CHECK_OK &&
		out->parity == HTTP_CHECK_OK && out->guard == HTTP_CHECK_OK;
}

static const char *
http_check_name(HttpCheck check)
{
	switch (check)
	{
		case HTTP_CHECK_OK:
			return "ok";
		case HTTP_CHECK_FAILED:
			return "failed";
		case HTTP_CHECK_UNKNOWN:
			break;
	}
	return "unknown";
}

/* ---- /metrics ---------------------------------------------------------------------------- */

void
http_append_label_value(struct evbuffer *out, const char *value)
{
	const unsigned char *p = (const unsigned char *) value;

	while (*p != '\0')
	{
		size_t n = 1;

		if (*p == '\\')
			evbuffer_add(out, "\\\\", 2);
		else if (*p == '"')
			evbuffer_add(out, "\\\"", 2);
		else if (*p == '\n')
			evbuffer_add(out, "\\n", 2);
		else if (*p < 0x80)
			evbuffer_add(out, p, 1);
		else
		{
			/* a whole, shortest-form UTF-8 sequence passes; anything else becomes U+FFFD */
			size_t need = 0;
			uint32_t code = 0;
			bool valid = true;

			if (*p >= 0xc2 && *p <= 0xdf)
			{
				need = 2;
				code = *p & 0x1f;
			}
			else if (*p >= 0xe0 && *p <= 0xef)
			{
				need = 3;
				code = *p & 0x0f;
			}
			else if (*p >= 0xf0 && *p <= 0xf4)
			{
				need = 4;
				code = *p & 0x07;
			}
			else
				valid = false;
			for (size_t k = 1; valid && k < need; k++)
			{
				if ((p[k] & 0xc0) != 0x80)
					valid = false;
				else
					code = code << 6 | (p[k] & 0x3f);
			}
			if (valid && ((need == 3 && (code < 0x800 || (code >= 0xd800 && code <= 0xdfff))) ||
						  (need == 4 && (code < 0x10000 || code > 0x10ffff))))
				valid = false;
			if (valid)
			{
				evbuffer_add(out, p, need);
				n = need;
			}
			else
				evbuffer_add(out, "\xef\xbf\xbd", 3);
		}
		p += n;
	}
}

static void
http_family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
http_sample_u64(struct evbuffer *out, const char *name, uint64_t value)
{
	evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, value);
}

static void
http_sample_double(struct evbuffer *out, const char *name, double value)
{
	evbuffer_add_printf(out, "%s %.6f\n", name, value);
}

static void
http_gauge_u64(struct evbuffer *out, const char *name, const char *help, uint64_t value)
{
	http_family(out, name, "gauge", help);
	http_sample_u64(out, name, value);
}

static void
http_counter_u64(struct evbuffer *out, const char *name, const char *help, uint64_t value)
{
	http_family(out, name, "counter", help);
	http_sample_u64(out, name, value);
}

/* name{label="value"} number, the number already formatted */
static void
http_labeled(struct evbuffer *out, const char *name, const char *label, const char *value,
			 const char *label2, const char *value2, const char *number)
{
	evbuffer_add_printf(out, "%s{%s=\"", name, label);
	http_append_label_value(out, value);
	if (label2 != NULL)
	{
		evbuffer_add_printf(out, "\",%s=\"", label2);
		http_append_label_value(out, value2);
	}
	evbuffer_add_printf(out, "\"} %s\n", number);
}

static void
http_labeled_i64(struct evbuffer *out, const char *name, const char *label, const char *value, int64_t number)
{
	char text[32];

	snprintf(text, sizeof(text), "%" PRId64, number);
	http_labeled(out, name, label, value, NULL, NULL, text);
}

/* One family of per-table parity series: value(table) for every table of the last results. */
typedef int64_t (*HttpParityValue)(const HttpParityTable *table, int64_t now_unix);

static int64_t
http_parity_rows(const HttpParityTable *t, int64_t now)
{
	return t->rows_compared;
}

static int64_t
http_parity_equal(const HttpParityTable *t, int64_t now)
{
	return t->equal;
}

static int64_t
http_parity_schema_issues(const HttpParityTable *t, int64_t now)
{
	return t->schema_issues;
}

static int64_t
http_parity_lsn(const HttpParityTable *t, int64_t now)
{
	return (int64_t) t->lsn;
}

static int64_t
http_parity_common_point(const HttpParityTable *t, int64_t now)
{
	return t->common_point;
}

static int64_t
http_parity_verified(const HttpParityTable *t, int64_t now)
{
	return t->verified_unix;
}

static int64_t
http_parity_age(const HttpParityTable *t, int64_t now)
{
	return now > t->verified_unix ? now - t->verified_unix : 0;
}

static void
http_parity_family(struct evbuffer *out, const HttpParity *parity, const char *name, const char *help,
				   HttpParityValue value, int64_t now_unix, bool needs_time)
{
	http_family(out, name, "gauge", help);
	for (size_t i = 0; i < parity->ntables; i++)
	{
		if (needs_time && parity->tables[i].verified_unix == 0)
			continue;
		http_labeled_i64(out, name, "table", parity->tables[i].table, value(&parity->tables[i], now_unix));
	}
}

static void
http_metrics_parity(struct evbuffer *out, const HttpParity *parity, int64_t now_unix)
{
	static const char *const kinds[] = {"missing", "extra", "changed"};

	http_gauge_u64(out, "switchyard_parity_verified",
				   "1 when switchyard verify has left results, 0 when no table was verified yet",
				   parity != NULL && parity->ntables > 0);
	if (parity == NULL || parity->ntables == 0)
		return;
	http_parity_family(out, parity, "switchyard_parity_equal",
					   "1 when the last verify found the table equal on source and target",
					   http_parity_equal, now_unix, false);
	http_parity_family(out, parity, "switchyard_parity_compared_rows",
					   "Rows of the table compared by the last verify (source side)",
					   http_parity_rows, now_unix, false);
	http_family(out, "switchyard_parity_differing_rows", "gauge",
				"Rows the last verify found missing on the target, extra on it, or changed");
	for (size_t i = 0; i < parity->ntables; i++)
	{
		const HttpParityTable *t = &parity->tables[i];
		const int64_t counts[] = {t->missing, t->extra, t->changed};

		for (size_t k = 0; k < 3; k++)
		{
			char number[32];

			snprintf(number, sizeof(number), "%" PRId64, counts[k]);
			http_labeled(out, "switchyard_parity_differing_rows", "table", t->table, "kind", kinds[k], number);
		}
	}
	http_parity_family(out, parity, "switchyard_parity_schema_issues",
					   "Schema differences that kept columns or the table out of the comparison",
					   http_parity_schema_issues, now_unix, false);
	http_parity_family(out, parity, "switchyard_parity_lsn",
					   "Source WAL position the table was compared at, as a number",
					   http_parity_lsn, now_unix, false);
	http_parity_family(out, parity, "switchyard_parity_common_point",
					   "1 when source and target were compared at one point of the stream",
					   http_parity_common_point, now_unix, false);
	http_parity_family(out, parity, "switchyard_parity_last_result_timestamp_seconds",
					   "When the table's last result was taken (Unix time)",
					   http_parity_verified, now_unix, true);
	http_parity_family(out, parity, "switchyard_parity_last_result_age_seconds",
					   "Age of the table's last result",
					   http_parity_age, now_unix, true);
}

static void
http_metrics_table_counts(struct evbuffer *out, const HttpTableCount *counts, size_t ncounts)
{
	static const char *const operations[] = {"insert", "update", "delete", "truncate"};

	if (ncounts == 0)
		return;
	http_family(out, "switchyard_table_changes_applied_total", "counter",
				"Changes applied to the target per table and operation since the agent started");
	for (size_t i = 0; i < ncounts; i++)
	{
		const uint64_t values[] = {counts[i].inserted, counts[i].updated, counts[i].deleted, counts[i].truncated};

		for (size_t k = 0; k < 4; k++)
		{
			char number[32];

			snprintf(number, sizeof(number), "%" PRIu64, values[k]);
			http_labeled(out, "switchyard_table_changes_applied_total", "table", counts[i].table,
						 "operation", operations[k], number);
		}
	}
}

static void
http_metrics_copy(struct evbuffer *out, const AgentStatus *status)
{
	http_gauge_u64(out, "switchyard_copy_active", "1 while the initial copy runs", status->copy_active);
	if (!status->copy_active)
		return;
	http_family(out, "switchyard_copy_step", "gauge", "The step the initial copy is at (label step)");
	http_labeled(out, "switchyard_copy_step", "step", status->copy_step != NULL ? status->copy_step : "",
				 NULL, NULL, "1");
	http_gauge_u64(out, "switchyard_copy_tables_done", "Tables the initial copy has finished",
				   (uint64_t) (status->copy_tables_done > 0 ? status->copy_tables_done : 0));
	http_gauge_u64(out, "switchyard_copy_tables_planned", "Tables the initial copy copies",
				   (uint64_t) (status->copy_tables_total > 0 ? status->copy_tables_total : 0));
	http_counter_u64(out, "switchyard_copy_rows_total", "Rows copied by the initial copy so far",
					 status->copy_rows_done);
	http_gauge_u64(out, "switchyard_copy_estimated_rows", "Rows the initial copy expects (planner estimate)",
				   status->copy_rows_estimated);
	http_counter_u64(out, "switchyard_copy_bytes_total", "Bytes copied by the initial copy so far",
					 status->copy_bytes_done);
	http_gauge_u64(out, "switchyard_copy_estimated_bytes", "Bytes the initial copy expects (table sizes)",
				   status->copy_bytes_estimated);
	http_family(out, "switchyard_copy_elapsed_seconds", "gauge", "Time the initial copy has run");
	http_sample_double(out, "switchyard_copy_elapsed_seconds", status->copy_elapsed_seconds);
}

static void
http_metrics_guard(struct evbuffer *out, const AgentStatus *status)
{
	http_gauge_u64(out, "switchyard_guard_active", "1 while the target guard runs", status->guard_active);
	if (!status->guard_active)
		return;
	http_family(out, "switchyard_guard_mode", "gauge", "The guard's mode (label mode: observe or enforce)");
	http_labeled(out, "switchyard_guard_mode", "mode", status->guard_mode != NULL ? status->guard_mode : "",
				 NULL, NULL, "1");
	http_gauge_u64(out, "switchyard_guard_connect_revoked",
				   "1 while CONNECT on the target is revoked from PUBLIC and the application roles",
				   status->guard_connect_revoked);
	http_gauge_u64(out, "switchyard_guard_lifted", "1 once the cutover has given the application its access back",
				   status->guard_lifted);
	http_counter_u64(out, "switchyard_guard_violations_total",
					 "Foreign sessions seen on the target, each counted once", status->guard_violations_total);
	http_gauge_u64(out, "switchyard_guard_foreign_sessions", "Foreign sessions on the target at the last check",
				   status->guard_sessions_now);
}

static void
http_metrics_cutover(struct evbuffer *out, const AgentStatus *status)
{
	http_gauge_u64(out, "switchyard_cutover_active", "1 once a cutover has started in this agent",
				   status->cutover_active);
	if (!status->cutover_active)
		return;
	http_family(out, "switchyard_cutover_step", "gauge", "The step the cutover is at or ended in (label step)");
	http_labeled(out, "switchyard_cutover_step", "step", status->cutover_step != NULL ? status->cutover_step : "",
				 NULL, NULL, "1");
	http_gauge_u64(out, "switchyard_cutover_finished", "1 once the cutover has ended (switched, aborted or checked)",
				   status->cutover_finished);
	http_gauge_u64(out, "switchyard_cutover_succeeded", "1 when the cutover ended as it should",
				   status->cutover_succeeded);
	if (status->cutover_pause_ms > 0)
	{
		http_family(out, "switchyard_cutover_pause_seconds", "gauge",
					"How long writes were fenced, from the pause to the resume");
		http_sample_double(out, "switchyard_cutover_pause_seconds", status->cutover_pause_ms / 1000.0);
	}
}

static void
http_metrics_readiness(struct evbuffer *out, const HttpReadiness *ready)
{
	const struct
	{
		const char *name;
		HttpCheck check;
	} checks[] = {
		{"copy_done", ready->copy_done},
		{"lag", ready->lag},
		{"parity", ready->parity},
		{"guard", ready->guard},
	};

	http_gauge_u64(out, "switchyard_cutover_ready",
				   "1 when every check of the dashboard's cutover checklist passes", ready->ready);
	/* one series per check whatever its state, so that a check turning bad is a value changing */
	http_family(out, "switchyard_cutover_check", "gauge",
				"Cutover checklist: 1 passes, 0 fails or cannot be judged yet (see /api/status readiness)");
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		http_labeled(out, "switchyard_cutover_check", "check", checks[i].name, NULL, NULL,
					 checks[i].check == HTTP_CHECK_OK ? "1" : "0");
}

bool
http_render_metrics(struct evbuffer *out, const AgentStatus *status, const HttpParity *parity,
					const HttpTableCount *counts, size_t ncounts, int64_t now_unix)
{
	static const char *const phases[] = {"setup", "copy", "streaming", "stopping"};
	HttpReadiness ready;
	bool known_phase = false;

	http_gauge_u64(out, "switchyard_up", "1 while the agent runs and answers", status->running);
	http_family(out, "switchyard_info", "gauge", "The migration's replication objects (value always 1)");
	evbuffer_add_printf(out, "switchyard_info{version=\"");
	http_append_label_value(out, PACKAGE_VERSION);
	evbuffer_add_printf(out, "\",slot=\"");
	http_append_label_value(out, status->slot_name != NULL ? status->slot_name : "");
	evbuffer_add_printf(out, "\",publication=\"");
	http_append_label_value(out, status->publication_name != NULL ? status->publication_name : "");
	evbuffer_add_printf(out, "\",origin=\"");
	http_append_label_value(out, status->origin_name != NULL ? status->origin_name : "");
	evbuffer_add_printf(out, "\"} 1\n");

	http_family(out, "switchyard_phase", "gauge", "1 for the phase the agent is in");
	for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++)
	{
		bool current = status->phase != NULL && strcmp(status->phase, phases[i]) == 0;

		known_phase |= current;
		http_labeled(out, "switchyard_phase", "phase", phases[i], NULL, NULL, current ? "1" : "0");
	}
	if (!known_phase && status->phase != NULL)
		http_labeled(out, "switchyard_phase", "phase", status->phase, NULL, NULL, "1");
	if (status->started_at_unix > 0)
		http_gauge_u64(out, "switchyard_start_time_seconds", "When the agent started (Unix time)",
					   (uint64_t) status->started_at_unix);

	http_gauge_u64(out, "switchyard_received_lsn", "Furthest source WAL position received, as a number",
				   status->received_lsn);
	http_gauge_u64(out, "switchyard_flushed_lsn",
				   "Source WAL position durable in the spool and confirmed to the source, as a number",
				   status->flushed_lsn);
	http_gauge_u64(out, "switchyard_applied_lsn", "Source WAL position applied on the target, as a number",
				   status->applied_lsn);
	if (status->source_current_lsn != LSN_INVALID)
		http_gauge_u64(out, "switchyard_source_current_lsn",
					   "The source's current WAL position at the last check, as a number",
					   status->source_current_lsn);
	http_gauge_u64(out, "switchyard_lag_bytes", "WAL between the source's head and what the target has applied",
				   status->lag_bytes);
	http_family(out, "switchyard_lag_seconds", "gauge",
				"Age of the last applied transaction while changes wait to be applied, 0 when caught up");
	http_sample_double(out, "switchyard_lag_seconds", status->lag_seconds);
	http_counter_u64(out, "switchyard_transactions_applied_total",
					 "Source transactions applied to the target since the agent started",
					 status->transactions_applied);
	http_counter_u64(out, "switchyard_changes_applied_total",
					 "Rows inserted, updated, deleted and tables truncated on the target since the agent started",
					 status->changes_applied);
	http_gauge_u64(out, "switchyard_touched_keys",
				   "Keys of rows written since the last clean verify, which the cutover's parity compares",
				   status->touched_keys);
	http_metrics_table_counts(out, counts, ncounts);

	http_gauge_u64(out, "switchyard_spool_bytes", "Size of the spool on disk", status->spool_bytes);
	http_gauge_u64(out, "switchyard_spool_segments", "Segment files in the spool", status->spool_segments);
	http_gauge_u64(out, "switchyard_spool_full", "1 when the spool is full and receiving waits for the applier",
				   status->spool_full);
	http_gauge_u64(out, "switchyard_apply_paused", "1 while applying is paused", status->paused);
	http_gauge_u64(out, "switchyard_apply_held", "1 while the applier holds at a parity barrier", status->held);
	http_gauge_u64(out, "switchyard_apply_hold_lsn", "The barrier the applier is asked to hold at (0: none)",
				   status->hold_lsn);
	http_gauge_u64(out, "switchyard_source_connected", "1 while the replication connection to the source is up",
				   status->source_connected);
	http_gauge_u64(out, "switchyard_target_connected", "1 while the applier's connection to the target is up",
				   status->target_connected);
	http_metrics_copy(out, status);
	http_metrics_parity(out, parity, now_unix);
	http_metrics_guard(out, status);
	http_metrics_cutover(out, status);
	http_readiness(status, parity, &ready);
	http_metrics_readiness(out, &ready);
	return true;
}

/* ---- /api/status ------------------------------------------------------------------------- */

static json_object *
http_json_lsn(Lsn lsn)
{
	char buf[LSN_FORMAT_SIZE];

	return json_object_new_string(lsn_format(lsn, buf));
}

static json_object *
http_json_string_or_null(const char *text)
{
	return text != NULL ? json_object_new_string(text) : NULL;
}

static json_object *
http_json_parity(const HttpParity *parity, int64_t now_unix)
{
	json_object *root;
	json_object *tables;

	if (parity == NULL)
		return NULL;
	root = json_object_new_object();
	tables = json_object_new_array();
	if (root == NULL || tables == NULL)
	{
		json_object_put(root);
		json_object_put(tables);
		return NULL;
	}
	json_object_object_add(root, "updated_at", http_json_string_or_null(parity->updated_at));
	for (size_t i = 0; i < parity->ntables; i++)
	{
		const HttpParityTable *t = &parity->tables[i];
		json_object *entry = json_object_new_object();
		char url[PATH_MAX];

		if (entry == NULL)
			continue;
		json_object_object_add(entry, "table", json_object_new_string(t->table));
		json_object_object_add(entry, "verified_at", http_json_string_or_null(t->verified_at));
		json_object_object_add(entry, "age_seconds", t->verified_unix > 0
							   ? json_object_new_int64(now_unix > t->verified_unix ? now_unix - t->verified_unix : 0)
							   : NULL);
		json_object_object_add(entry, "lsn", http_json_lsn(t->lsn));
		json_object_object_add(entry, "common_point", json_object_new_boolean(t->common_point));
		json_object_object_add(entry, "equal", json_object_new_boolean(t->equal));
		json_object_object_add(entry, "rows_compared", json_object_new_int64(t->rows_compared));
		json_object_object_add(entry, "missing", json_object_new_int64(t->missing));
		json_object_object_add(entry, "extra", json_object_new_int64(t->extra));
		json_object_object_add(entry, "changed", json_object_new_int64(t->changed));
		json_object_object_add(entry, "schema_issues", json_object_new_int64(t->schema_issues));
		json_object_object_add(entry, "repaired", t->repaired >= 0 ? json_object_new_int64(t->repaired) : NULL);
		if (t->report != NULL)
			snprintf(url, sizeof(url), "/api/parity/%s", t->report);
		json_object_object_add(entry, "report_url", t->report != NULL ? json_object_new_string(url) : NULL);
		json_object_array_add(tables, entry);
	}
	json_object_object_add(root, "tables", tables);
	return root;
}

char *
http_render_status(const AgentStatus *status, const HttpParity *parity, int64_t now_unix)
{
	char *base = NULL;
	json_object *root = NULL;
	json_object *ready_json = NULL;
	HttpReadiness ready;
	const char *text;
	char *result = NULL;

	base = status_to_json(status, false);
	if (base == NULL)
		goto cleanup;
	root = json_tokener_parse(base);
	if (root == NULL || !json_object_is_type(root, json_type_object))
		goto cleanup;
	json_object_object_add(root, "parity", http_json_parity(parity, now_unix));
	http_readiness(status, parity, &ready);
	ready_json = json_object_new_object();
	if (ready_json == NULL)
		goto cleanup;
	json_object_object_add(ready_json, "ready", json_object_new_boolean(ready.ready));
	json_object_object_add(ready_json, "copy_done", json_object_new_string(http_check_name(ready.copy_done)));
	json_object_object_add(ready_json, "lag", json_object_new_string(http_check_name(ready.lag)));
	json_object_object_add(ready_json, "lag_threshold_seconds", json_object_new_double(HTTP_READY_LAG_SECONDS));
	json_object_object_add(ready_json, "parity", json_object_new_string(http_check_name(ready.parity)));
	json_object_object_add(ready_json, "guard", json_object_new_string(http_check_name(ready.guard)));
	json_object_object_add(root, "readiness", ready_json);
	json_object_object_add(root, "version", json_object_new_string(PACKAGE_VERSION));
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (text != NULL)
		result = strdup(text);

cleanup:
	json_object_put(root);
	free(base);
	return result;
}

/* ---- the lag history --------------------------------------------------------------------- */

static void
http_history_sink(const AgentStatus *status, void *arg)
{
	HttpServer *server = arg;
	HttpSample *sample = &server->history[server->history_next];

	sample->unix_ms = http_unix_ms();
	sample->lag_seconds = status->lag_seconds;
	sample->lag_bytes = status->lag_bytes;
	sample->changes_applied = status->changes_applied;
	server->history_next = (server->history_next + 1) % HTTP_HISTORY_SAMPLES;
	if (server->history_count < HTTP_HISTORY_SAMPLES)
		server->history_count++;
}

static void
http_on_history_timer(evutil_socket_t fd, short what, void *arg)
{
	HttpServer *server = arg;

	server->status(server->status_arg, http_history_sink, server);
}

static void
http_render_history(HttpServer *server, struct evbuffer *out)
{
	size_t first = (server->history_next + HTTP_HISTORY_SAMPLES - server->history_count) % HTTP_HISTORY_SAMPLES;

	evbuffer_add_printf(out, "{\"interval_seconds\":%d,\"samples\":[", HTTP_HISTORY_INTERVAL_MS / 1000);
	for (size_t i = 0; i < server->history_count; i++)
	{
		const HttpSample *s = &server->history[(first + i) % HTTP_HISTORY_SAMPLES];

		evbuffer_add_printf(out, "%s[%" PRId64 ",%.6f,%" PRIu64 ",%" PRIu64 "]", i > 0 ? "," : "",
							s->unix_ms, s->lag_seconds, s->lag_bytes, s->changes_applied);
	}
	evbuffer_add_printf(out, "]}\n");
}

/* ---- requests ---------------------------------------------------------------------------- */

/* evbuffer_free does not accept NULL */
static void
http_buffer_free(struct evbuffer *buffer)
{
	if (buffer != NULL)
		evbuffer_free(buffer);
}

static void
http_common_headers(struct evhttp_request *req, const char *content_type)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);

	evhttp_add_header(headers, "Content-Type", content_type);
	evhttp_add_header(headers, "Cache-Control", "no-store");
	evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(headers, "Referrer-Policy", "no-referrer");
}

static void
http_send_text(struct evhttp_request *req, int code, const char *reason, const char *message)
{
	struct evbuffer *body = evbuffer_new();

	http_common_headers(req, HTTP_CONTENT_TEXT);
	if (body != NULL)
		evbuffer_add_printf(body, "%s\n", message);
	evhttp_send_reply(req, code, reason, body);
	http_buffer_free(body);
}

static void
http_status_sink(const AgentStatus *status, void *arg)
{
	HttpRender *render = arg;
	HttpServer *server = render->server;
	int64_t now = (int64_t) time(NULL);

	if (render->route == HTTP_ROUTE_METRICS)
	{
		size_t ncounts = 0;

		if (server->table_counts != NULL)
		{
			ncounts = server->table_counts(server->table_counts_arg, server->counts, server->counts_cap);
			if (ncounts > server->counts_cap)
			{
				HttpTableCount *bigger = realloc(server->counts, ncounts * sizeof(*bigger));

				if (bigger == NULL)
					return;
				server->counts = bigger;
				server->counts_cap = ncounts;
				ncounts = server->table_counts(server->table_counts_arg, server->counts, server->counts_cap);
				if (ncounts > server->counts_cap)
					ncounts = server->counts_cap;
			}
		}
		render->ok = http_render_metrics(render->body, status, server->parity, server->counts, ncounts, now);
	}
	else
	{
		char *json = http_render_status(status, server->parity, now);

		if (json == NULL)
			return;
		render->ok = evbuffer_add(render->body, json, strlen(json)) == 0 && evbuffer_add(render->body, "\n", 1) == 0;
		free(json);
	}
}

/* A file of the parity directory: names of verify's own making only, no paths, no dot files. */
static bool
http_valid_report_name(const char *name)
{
	size_t length = strlen(name);

	if (length < 6 || length > 128 || name[0] == '.' || strcmp(name + length - 5, ".json") != 0)
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char) *p) && *p != '.' && *p != '-' && *p != '_')
			return false;
	return true;
}

static void
http_send_parity_file(HttpServer *server, struct evhttp_request *req, const char *name)
{
	char path[PATH_MAX];
	struct stat st;
	struct evbuffer *body = NULL;
	int fd = -1;

	if ((size_t) snprintf(path, sizeof(path), "%s/%s", server->parity_dir, name) >= sizeof(path))
	{
		http_send_text(req, HTTP_NOTFOUND, "Not Found", "no such parity report");
		goto cleanup;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		if (strcmp(name, "latest.json") == 0)
			http_send_text(req, HTTP_NOTFOUND, "Not Found",
						   "no parity results yet: run \"switchyard verify\" to compare the tables");
		else
			http_send_text(req, HTTP_NOTFOUND, "Not Found", "no such parity report");
		goto cleanup;
	}
	body = evbuffer_new();
	if (body == NULL)
	{
		http_send_text(req, HTTP_INTERNAL, "Internal Server Error", "out of memory");
		goto cleanup;
	}
	/* the buffer owns the descriptor from here; the file is sent from the page cache */
	if (evbuffer_add_file(body, fd, 0, st.st_size) != 0)
	{
		http_send_text(req, HTTP_INTERNAL, "Internal Server Error", "could not read the report");
		goto cleanup;
	}
	fd = -1;
	http_common_headers(req, HTTP_CONTENT_JSON);
	evhttp_send_reply(req, HTTP_OK, "OK", body);

cleanup:
	if (fd >= 0)
		close(fd);
	http_buffer_free(body);
}

static HttpRoute
http_route(const char *path, const char **rest)
{
	*rest = NULL;
	if (strcmp(path, "/") == 0)
		return HTTP_ROUTE_DASHBOARD;
	if (strcmp(path, "/metrics") == 0)
		return HTTP_ROUTE_METRICS;
	if (strcmp(path, "/api/status") == 0)
		return HTTP_ROUTE_STATUS;
	if (strcmp(path, "/api/history") == 0)
		return HTTP_ROUTE_HISTORY;
	if (strcmp(path, "/api/parity") == 0)
		return HTTP_ROUTE_PARITY;
	if (strncmp(path, "/api/parity/", 12) == 0 && http_valid_report_name(path + 12))
	{
		*rest = path + 12;
		return HTTP_ROUTE_PARITY_REPORT;
	}
	return HTTP_ROUTE_NONE;
}

static void
http_handle(struct evhttp_request *req, void *arg)
{
	HttpServer *server = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	HttpRender render = {0};
	const char *rest = NULL;
	HttpRoute route;

	if (path == NULL || path[0] == '\0')
		path = "/";
	if (!http_host_allowed(server, evhttp_request_get_host(req)))
	{
		log_debug("http: refused request for host \"%s\"", evhttp_request_get_host(req));
		http_send_text(req, HTTP_FORBIDDEN, "Forbidden",
					   "this agent answers to localhost and its own address only; "
					   "set --http-token to serve other host names");
		return;
	}
	/* before routing, so that without the token nothing tells which paths exist */
	if (server->token != NULL &&
		!http_authorized(evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization"),
						 server->token))
	{
		struct evkeyvalq *headers = evhttp_request_get_output_headers(req);

		evhttp_add_header(headers, "WWW-Authenticate", "Basic realm=\"switchyard\", charset=\"UTF-8\"");
		evhttp_add_header(headers, "WWW-Authenticate", "Bearer realm=\"switchyard\"");
		http_send_text(req, HTTP_UNAUTHORIZED, "Unauthorized",
					   "this agent needs its token: \"Authorization: Bearer TOKEN\", or the token as the "
					   "password of HTTP basic authentication");
		return;
	}
	route = http_route(path, &rest);
	if (route == HTTP_ROUTE_NONE)
	{
		http_send_text(req, HTTP_NOTFOUND, "Not Found",
					   "not found: this agent serves /, /metrics, /api/status, /api/history and /api/parity");
		return;
	}
	if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD)
	{
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		http_send_text(req, HTTP_BADMETHOD, "Method Not Allowed", "method not allowed: use GET");
		return;
	}

	switch (route)
	{
		case HTTP_ROUTE_DASHBOARD:
		{
			struct evbuffer *body = evbuffer_new();

			if (body == NULL || evbuffer_add_reference(body, http_dashboard_html, http_dashboard_html_size,
													   NULL, NULL) != 0)
			{
				http_buffer_free(body);
				http_send_text(req, HTTP_INTERNAL, "Internal Server Error", "out of memory");
				return;
			}
			http_common_headers(req, HTTP_CONTENT_HTML);
			evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Security-Policy", HTTP_DASHBOARD_CSP);
			evhttp_add_header(evhttp_request_get_output_headers(req), "X-Frame-Options", "DENY");
			evhttp_send_reply(req, HTTP_OK, "OK", body);
			http_buffer_free(body);
			return;
		}
		case HTTP_ROUTE_PARITY:
			http_send_parity_file(server, req, "latest.json");
			return;
		case HTTP_ROUTE_PARITY_REPORT:
			http_send_parity_file(server, req, rest);
			return;
		case HTTP_ROUTE_HISTORY:
		case HTTP_ROUTE_METRICS:
		case HTTP_ROUTE_STATUS:
		case HTTP_ROUTE_NONE:
			break;
	}

	render.server = server;
	render.route = route;
	render.body = evbuffer_new();
	if (render.body == NULL)
	{
		http_send_text(req, HTTP_INTERNAL, "Internal Server Error", "out of memory");
		return;
	}
	if (route == HTTP_ROUTE_HISTORY)
	{
		http_render_history(server, render.body);
		render.ok = true;
	}
	else
	{
		http_parity_refresh(server);
		server->status(server->status_arg, http_status_sink, &render);
	}
	if (!render.ok)
		http_send_text(req, HTTP_INTERNAL, "Internal Server Error", "could not render the response");
	else
	{
		http_common_headers(req, route == HTTP_ROUTE_METRICS ? HTTP_CONTENT_METRICS : HTTP_CONTENT_JSON);
		evhttp_send_reply(req, HTTP_OK, "OK", render.body);
	}
	http_buffer_free(render.body);
}

/* ---- the server -------------------------------------------------------------------------- */

bool
http_server_start(const HttpOptions *options, HttpServer **out)
{
	HttpServer *server = NULL;
	struct evhttp_bound_socket *bound;
	struct timeval every = {HTTP_HISTORY_INTERVAL_MS / 1000, (HTTP_HISTORY_INTERVAL_MS % 1000) * 1000};
	size_t dir_length;
	bool ok = false;

	*out = NULL;
	server = calloc(1, sizeof(*server));
	if (server == NULL)
	{
		log_error("out of memory");
		goto cleanup;
	}
	server->base = options->base;
	server->status = options->status;
	server->status_arg = options->status_arg;
	server->table_counts = options->table_counts;
	server->table_counts_arg = options->table_counts_arg;
	if (!http_parse_address(options->address, server->host, sizeof(server->host), &server->port))
	{
		log_error("invalid HTTP address \"%s\"", options->address);
		log_hint("give ADDR:PORT, e.g. 127.0.0.1:9187 or [::1]:9187");
		goto cleanup;
	}
	if (options->token != NULL && options->token[0] != '\0')
	{
		server->token = strdup(options->token);
		if (server->token == NULL)
			goto cleanup;
	}
	else if (!http_host_is_loopback(server->host))
	{
		log_error("refusing to serve HTTP on \"%s\" without a token", options->address);
		log_detail("status, metrics and parity results would be open to anyone who can reach that address");
		log_hint("set --http-token, or serve on a loopback address such as 127.0.0.1:%u", server->port);
		goto cleanup;
	}
	dir_length = strlen(options->state_dir) + sizeof("/parity");
	server->parity_dir = malloc(dir_length);
	if (server->parity_dir == NULL)
		goto cleanup;
	snprintf(server->parity_dir, dir_length, "%s/parity", options->state_dir);

	server->http = evhttp_new(options->base);
	if (server->http == NULL)
	{
		log_error("could not set up the HTTP server");
		goto cleanup;
	}
	/* every method reaches the handler, which answers 405 with Allow on a known path */
	evhttp_set_allowed_methods(server->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
							   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
							   EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_max_headers_size(server->http, HTTP_MAX_HEADERS_SIZE);
	evhttp_set_max_body_size(server->http, HTTP_MAX_BODY_SIZE);
	evhttp_set_timeout(server->http, HTTP_TIMEOUT_SECONDS);
	evhttp_set_gencb(server->http, http_handle, server);
	bound = evhttp_bind_socket_with_handle(server->http, server->host, server->port);
	if (bound == NULL)
	{
		log_error("could not listen for HTTP on \"%s\": %s", options->address,
				  evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		log_hint("choose another --http address or port, or stop what listens there");
		goto cleanup;
	}
	event_assign(&server->history_timer, options->base, -1, EV_PERSIST, http_on_history_timer, server);
	event_add(&server->history_timer, &every);
	server->history_timer_added = true;
	log_info("serving the dashboard and metrics on http://%s%s%s:%u/%s",
			 strchr(server->host, ':') != NULL ? "[" : "", server->host,
			 strchr(server->host, ':') != NULL ? "]" : "", server->port,
			 server->token != NULL ? " (token required)" : "");
	*out = server;
	server = NULL;
	ok = true;

cleanup:
	http_server_free(server);
	return ok;
}

void
http_server_free(HttpServer *server)
{
	if (server == NULL)
		return;
	if (server->history_timer_added)
		event_del(&server->history_timer);
	if (server->http != NULL)
		evhttp_free(server->http);
	http_parity_free(server->parity);
	free(server->counts);
	free(server->parity_dir);
	if (server->token != NULL)
	{
		/* not left lying around in freed memory */
		explicit_bzero(server->token, strlen(server->token));
		free(server->token);
	}
	free(server);
}
