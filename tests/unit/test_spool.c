/*
 * Spool unit tests: round trips, durability before visibility, segment rollover, crash
 * recovery (torn tails vs corruption), stream files, release, size bound and the reader
 * thread's wake-ups. Each test works in its own mkdtemp directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "switchyard/spool.h"

typedef struct TestDir
{
	char root[64];
	char dir[128];            /* root/spool: created by spool_open */
} TestDir;

/* A copy of one entry read back. */
typedef struct Got
{
	SpoolRecordKind kind;
	Lsn lsn;
	Lsn boundary;
	uint32_t stream_xid;
	SpoolPosition position;
	size_t len;
	char data[256];
} Got;

#define MAX_GOT 2048

/* ---- helpers ------------------------------------------------------------------------- */

static int
setup_dir(void **state)
{
	TestDir *t = calloc(1, sizeof(TestDir));

	if (t == NULL)
		return -1;
	snprintf(t->root, sizeof(t->root), "/tmp/test_spool.XXXXXX");
	if (mkdtemp(t->root) == NULL)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "%s/spool", t->root);
	*state = t;
	return 0;
}

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
teardown_dir(void **state)
{
	TestDir *t = *state;

	nftw(t->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(t);
	return 0;
}

static Spool *
open_spool(TestDir *t, uint64_t segment_bytes, uint64_t max_bytes)
{
	SpoolOptions options = {.dir = t->dir, .segment_bytes = segment_bytes, .max_bytes = max_bytes};
	Spool *spool = NULL;

	assert_true(spool_open(&options, &spool));
	assert_non_null(spool);
	return spool;
}

static void
append_text(Spool *spool, SpoolRecordKind kind, Lsn lsn, const char *text, Lsn boundary)
{
	assert_true(spool_append(spool, kind, lsn, text, strlen(text), boundary));
}

/* One small transaction: B, I, C; its commit carries the boundary end_lsn. */
static void
append_transaction(Spool *spool, int n, Lsn end_lsn)
{
	char text[64];

	snprintf(text, sizeof(text), "B%d", n);
	append_text(spool, SPOOL_CHANGE, end_lsn - 30, text, 0);
	snprintf(text, sizeof(text), "I%d:some row data for transaction %d", n, n);
	append_text(spool, SPOOL_CHANGE, end_lsn - 20, text, 0);
	snprintf(text, sizeof(text), "C%d", n);
	append_text(spool, SPOOL_CHANGE, end_lsn - 10, text, end_lsn);
}

static void
copy_entry(const SpoolEntry *entry, Got *got)
{
	got->kind = entry->kind;
	got->lsn = entry->lsn;
	got->boundary = entry->boundary;
	got->stream_xid = entry->stream_xid;
	got->position = entry->position;
	got->len = entry->len;
	assert_true(entry->len < sizeof(got->data));
	memcpy(got->data, entry->pgoutput, entry->len);
	got->data[entry->len] = '\0';
}

/* Reads until nothing more is durable; returns how many entries. */
static size_t
read_all(SpoolReader *reader, Got *got, size_t max)
{
	SpoolEntry entry;
	size_t n = 0;
	int r;

	while ((r = spool_reader_next(reader, &entry, 0)) == 1)
	{
		assert_true(n < max);
		copy_entry(&entry, &got[n++]);
	}
	assert_int_equal(r, 0);
	return n;
}

static size_t
read_main(Spool *spool, Got *got, size_t max)
{
	SpoolReader *reader = NULL;
	size_t n;

	assert_true(spool_reader_open(spool, &reader));
	n = read_all(reader, got, max);
	spool_reader_free(reader);
	return n;
}

static size_t
read_stream(Spool *spool, uint32_t xid, Lsn end_lsn, Got *got, size_t max)
{
	SpoolReader *reader = NULL;
	size_t n;

	assert_true(spool_stream_reader_open(spool, xid, end_lsn, &reader));
	n = read_all(reader, got, max);
	spool_reader_free(reader);
	return n;
}

static void
path_in(TestDir *t, const char *name, char *path, size_t size)
{
	snprintf(path, size, "%s/%s", t->dir, name);
}

static bool
file_exists(TestDir *t, const char *name)
{
	char path[256];
	struct stat st;

	path_in(t, name, path, sizeof(path));
	return stat(path, &st) == 0;
}

static uint64_t
file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t) st.st_size;
}

/* Counts the directory's files whose names end in suffix, and sums all sizes. */
static int
count_files(TestDir *t, const char *suffix, uint64_t *total_bytes)
{
	DIR *dir = opendir(t->dir);
	struct dirent *entry;
	int count = 0;

	assert_non_null(dir);
	if (total_bytes != NULL)
		*total_bytes = 0;
	while ((entry = readdir(dir)) != NULL)
	{
		size_t len = strlen(entry->d_name);
		char path[512];

		if (entry->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", t->dir, entry->d_name);
		if (total_bytes != NULL)
			*total_bytes += file_size(path);
		if (len >= strlen(suffix) && strcmp(entry->d_name + len - strlen(suffix), suffix) == 0)
			count++;
	}
	closedir(dir);
	return count;
}

static void
segment_path(TestDir *t, uint64_t number, char *path, size_t size)
{
	snprintf(path, size, "%s/%016llX.seg", t->dir, (unsigned long long) number);
}

static void
flip_byte(const char *path, uint64_t offset)
{
	int fd = open(path, O_RDWR);
	uint8_t byte;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &byte, 1, (off_t) offset), 1);
	byte ^= 0x40;
	assert_int_equal(pwrite(fd, &byte, 1, (off_t) offset), 1);
	close(fd);
}

/* Sends stderr (the log) to a file until capture_end, so tests can check what was logged. */
static int
capture_begin(TestDir *t)
{
	char path[128];
	int saved;
	int fd;

	snprintf(path, sizeof(path), "%s/stderr.txt", t->root);
	fflush(stderr);
	saved = dup(2);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
	return saved;
}

static void
capture_end(TestDir *t, int saved, char *log, size_t log_size)
{
	char path[128];
	ssize_t n;
	int fd;

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	snprintf(path, sizeof(path), "%s/stderr.txt", t->root);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, log, log_size - 1);
	close(fd);
	log[n > 0 ? n : 0] = '\0';
}

static bool
open_capturing(TestDir *t, uint64_t segment_bytes, Spool **spool, char *log, size_t log_size)
{
	SpoolOptions options = {.dir = t->dir, .segment_bytes = segment_bytes};
	int saved = capture_begin(t);
	bool ok = spool_open(&options, spool);

	capture_end(t, saved, log, log_size);
	return ok;
}

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* ---- round trips --------------------------------------------------------------------- */

static void
test_spool_append_sync_read_round_trip(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	Got *got = calloc(MAX_GOT, sizeof(Got));
	uint8_t binary[5] = {'I', 0, 1, 0, 255};
	size_t n;

	assert_int_equal(spool_durable_lsn(spool), 0);
	append_transaction(spool, 1, 1000);
	assert_true(spool_append(spool, SPOOL_CHANGE, 1100, binary, sizeof(binary), 0));
	append_text(spool, SPOOL_PROGRESS, 2000, "", 2000);
	assert_true(spool_has_unsynced(spool));
	assert_true(spool_sync(spool));
	assert_false(spool_has_unsynced(spool));
	assert_int_equal(spool_durable_lsn(spool), 2000);
	assert_int_equal(spool_appended_lsn(spool), 2000);

	n = read_main(spool, got, MAX_GOT);
	assert_int_equal(n, 5);
	assert_int_equal(got[0].kind, SPOOL_CHANGE);
	assert_string_equal(got[0].data, "B1");
	assert_int_equal(got[0].lsn, 970);
	assert_int_equal(got[0].boundary, 0);
	assert_string_equal(got[1].data, "I1:some row data for transaction 1");
	assert_string_equal(got[2].data, "C1");
	assert_int_equal(got[2].boundary, 1000);
	assert_int_equal(got[3].len, sizeof(binary));
	assert_memory_equal(got[3].data, binary, sizeof(binary));
	assert_int_equal(got[4].kind, SPOOL_PROGRESS);
	assert_int_equal(got[4].lsn, 2000);
	assert_int_equal(got[4].len, 0);
	assert_int_equal(got[4].boundary, 2000);
	/* Positions ascend within the one segment. */
	for (size_t i = 1; i < n; i++)
	{
		assert_int_equal(got[i].position.segment, got[0].position.segment);
		assert_true(got[i].position.offset > got[i - 1].position.offset);
	}
	free(got);
	spool_close(spool);
}

static void
test_spool_reader_sees_nothing_before_sync(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	SpoolReader *reader = NULL;
	SpoolEntry entry;

	assert_true(spool_reader_open(spool, &reader));
	append_transaction(spool, 1, 500);
	assert_int_equal(spool_appended_lsn(spool), 500);
	assert_int_equal(spool_durable_lsn(spool), 0);
	assert_int_equal(spool_reader_next(reader, &entry, 0), 0);
	assert_int_equal(spool_reader_next(reader, &entry, 20), 0);

	assert_true(spool_sync(spool));
	assert_int_equal(spool_durable_lsn(spool), 500);
	assert_int_equal(spool_reader_next(reader, &entry, 0), 1);
	assert_memory_equal(entry.pgoutput, "B1", 2);
	assert_int_equal(spool_reader_next(reader, &entry, 0), 1);
	assert_int_equal(spool_reader_next(reader, &entry, 0), 1);
	assert_int_equal(entry.boundary, 500);
	/* Appended again but not synced: still invisible. */
	append_transaction(spool, 2, 600);
	assert_int_equal(spool_reader_next(reader, &entry, 0), 0);
	spool_reader_free(reader);
	spool_close(spool);
}

static void
test_spool_publish_shows_whole_transactions_before_they_are_durable(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	SpoolReader *reader = NULL;
	SpoolEntry entry;
	int seen = 0;

	assert_true(spool_reader_open(spool, &reader));
	append_transaction(spool, 1, 500);
	/* half a transaction after it: published is only up to the last boundary */
	assert_true(spool_append(spool, SPOOL_CHANGE, 510, (const uint8_t *) "B2", 2, 0));
	assert_true(spool_publish(spool));
	/* the applier may go ahead; the source may not be told */
	assert_int_equal(spool_durable_lsn(spool), 0);
	assert_true(spool_has_unsynced(spool));
	while (spool_reader_next(reader, &entry, 0) == 1)
		seen++;
	assert_int_equal(seen, 3);
	assert_int_equal(entry.boundary, 500);
	assert_true(spool_sync(spool));
	assert_int_equal(spool_durable_lsn(spool), 500);
	assert_int_equal(spool_reader_next(reader, &entry, 0), 0);
	spool_reader_free(reader);
	spool_close(spool);
}

static void
test_spool_timeout_returns_zero(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	SpoolReader *reader = NULL;
	SpoolEntry entry;
	double start;

	assert_true(spool_reader_open(spool, &reader));
	start = now_seconds();
	assert_int_equal(spool_reader_next(reader, &entry, 80), 0);
	assert_true(now_seconds() - start >= 0.07);
	spool_reader_free(reader);
	spool_close(spool);
}

static void
test_spool_large_record_round_trip(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	SpoolReader *reader = NULL;
	size_t big = 3 * 1024 * 1024 + 17;   /* beyond the write and the read buffer */
	uint8_t *data = malloc(big);
	SpoolEntry entry;

	for (size_t i = 0; i < big; i++)
		data[i] = (uint8_t) (i * 7 + 3);
	append_text(spool, SPOOL_CHANGE, 10, "B", 0);
	assert_true(spool_append(spool, SPOOL_CHANGE, 20, data, big, 0));
	append_text(spool, SPOOL_CHANGE, 30, "C", 40);
	assert_true(spool_sync(spool));

	assert_true(spool_reader_open(spool, &reader));
	assert_int_equal(spool_reader_next(reader, &entry, 0), 1);
	assert_int_equal(spool_reader_next(reader, &entry, 0), 1);
	assert_int_equal(entry.len, big);
	assert_memory_equal(entry.pgoutput, data, big);
	assert_int_equal(spool_reader_next(reader, &entry, 0), 1);
	assert_memory_equal(entry.pgoutput, "C", 1);
	assert_int_equal(entry.boundary, 40);
	assert_int_equal(spool_reader_next(reader, &entry, 0), 0);
	spool_reader_free(reader);
	free(data);
	spool_close(spool);
}

/* ---- segments ------------------------------------------------------------------------ */

static void
test_spool_rollover_writes_relation_preamble(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 600, 0);
	Got *got = calloc(MAX_GOT, sizeof(Got));
	/* Relation messages hold NULs: lengths are sizeof - 1. */
	static const char rel_a[] = "R\x00\x00\x40\x00public.a";
	static const char rel_b[] = "R\x00\x00\x40\x01public.b";
	static const char rel_a2[] = "R\x00\x00\x40\x00public.a v2";
	size_t n;
	int segments_seen = 0;
	int preambles_checked = 0;
	uint64_t segment = 0;
	uint64_t begin_segment = 0;

	assert_true(spool_remember_relation(spool, 16384, rel_a, sizeof(rel_a) - 1));
	assert_true(spool_remember_relation(spool, 16385, rel_b, sizeof(rel_b) - 1));
	for (int i = 1; i <= 40; i++)
	{
		if (i == 20)
			assert_true(spool_remember_relation(spool, 16384, rel_a2, sizeof(rel_a2) - 1));
		append_transaction(spool, i, (Lsn) i * 100);
	}
	assert_true(spool_sync(spool));
	assert_true(count_files(t, ".seg", NULL) >= 4);

	n = read_main(spool, got, MAX_GOT);
	for (size_t i = 0; i < n; i++)
	{
		if (got[i].position.segment != segment)
		{
			segment = got[i].position.segment;
			segments_seen++;
			if (segments_seen > 1)
			{
				/* Each new segment opens with the latest message of every relation. */
				bool second_version = got[i + 2].data[0] == 'B' && atoi(got[i + 2].data + 1) > 20;

				assert_true(i + 2 < n);
				assert_int_equal(got[i].kind, SPOOL_CHANGE);
				if (second_version)
				{
					assert_int_equal(got[i].len, sizeof(rel_a2) - 1);
					assert_memory_equal(got[i].data, rel_a2, sizeof(rel_a2) - 1);
				}
				else if (atoi(got[i + 2].data + 1) < 20)
				{
					assert_int_equal(got[i].len, sizeof(rel_a) - 1);
					assert_memory_equal(got[i].data, rel_a, sizeof(rel_a) - 1);
				}
				assert_int_equal(got[i + 1].len, sizeof(rel_b) - 1);
				assert_memory_equal(got[i + 1].data, rel_b, sizeof(rel_b) - 1);
				preambles_checked++;
			}
		}
		/* A transaction never spans two segments. */
		if (got[i].data[0] == 'B')
			begin_segment = got[i].position.segment;
		if (got[i].data[0] == 'C')
			assert_int_equal(got[i].position.segment, begin_segment);
	}
	assert_true(segments_seen >= 4);
	assert_int_equal(preambles_checked, segments_seen - 1);
	/* All 40 transactions, in order, plus two preamble records per rolled segment. */
	assert_int_equal(n, 40 * 3 + 2 * (size_t) preambles_checked);
	free(got);
	spool_close(spool);
}

static void
test_spool_reopen_continues_after_last_boundary(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 500, 0);
	Got *got = calloc(MAX_GOT, sizeof(Got));
	size_t n;
	int commits = 0;

	for (int i = 1; i <= 10; i++)
		append_transaction(spool, i, (Lsn) i * 100);
	assert_true(spool_sync(spool));
	spool_close(spool);

	spool = open_spool(t, 500, 0);
	assert_int_equal(spool_durable_lsn(spool), 1000);
	assert_int_equal(spool_appended_lsn(spool), 1000);
	for (int i = 11; i <= 15; i++)
		append_transaction(spool, i, (Lsn) i * 100);
	assert_true(spool_sync(spool));
	n = read_main(spool, got, MAX_GOT);
	for (size_t i = 0; i < n; i++)
	{
		if (got[i].data[0] == 'C')
		{
			commits++;
			assert_int_equal(got[i].boundary, (Lsn) commits * 100);
		}
	}
	assert_int_equal(commits, 15);
	free(got);
	spool_close(spool);
}

static void
test_spool_second_open_of_same_dir_fails(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	Spool *other = NULL;
	char log[4096];

	assert_false(open_capturing(t, 0, &other, log, sizeof(log)));
	assert_null(other);
	assert_non_null(strstr(log, "is in use by another process"));
	spool_close(spool);
}

/* ---- recovery ------------------------------------------------------------------------ */

/* Two committed transactions, then the start of a third that never commits. Returns the
 * segment's size at the end of the second commit. */
static uint64_t
write_two_and_a_half(TestDir *t, char *path, size_t path_size)
{
	Spool *spool = open_spool(t, 0, 0);
	uint64_t committed_end;

	append_transaction(spool, 1, 100);
	append_transaction(spool, 2, 200);
	assert_true(spool_sync(spool));
	segment_path(t, 1, path, path_size);
	committed_end = file_size(path);
	append_text(spool, SPOOL_CHANGE, 270, "B3", 0);
	append_text(spool, SPOOL_CHANGE, 280, "I3:never committed", 0);
	assert_true(spool_sync(spool));
	spool_close(spool);
	assert_true(file_size(path) > committed_end);
	return committed_end;
}

static void
check_two_transactions(Spool *spool)
{
	Got got[16];
	size_t n = read_main(spool, got, 16);

	assert_int_equal(n, 6);
	assert_string_equal(got[0].data, "B1");
	assert_string_equal(got[5].data, "C2");
	assert_int_equal(got[5].boundary, 200);
}

static void
test_spool_recovery_truncates_torn_tail(void **state)
{
	TestDir *t = *state;
	char path[256];
	char log[8192];
	char expect[512];
	uint8_t garbage[37];
	uint64_t committed_end = write_two_and_a_half(t, path, sizeof(path));
	uint64_t torn_at = file_size(path);
	Spool *spool = NULL;
	int fd;

	/* A crash in the middle of a write: bytes that never formed a record. */
	memset(garbage, 0xAB, sizeof(garbage));
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, garbage, sizeof(garbage)), (ssize_t) sizeof(garbage));
	close(fd);

	assert_true(open_capturing(t, 0, &spool, log, sizeof(log)));
	snprintf(expect, sizeof(expect),
			 "WARNING:  spool segment \"%s\" ends in a torn write at offset %llu: truncated to "
			 "offset %llu",
			 path, (unsigned long long) torn_at, (unsigned long long) committed_end);
	assert_non_null(strstr(log, expect));
	assert_null(strstr(log, "ERROR"));
	assert_int_equal(file_size(path), committed_end);
	assert_int_equal(spool_durable_lsn(spool), 200);
	assert_int_equal(spool_appended_lsn(spool), 200);
	check_two_transactions(spool);
	spool_close(spool);
}

static void
test_spool_recovery_truncates_frame_cut_short(void **state)
{
	TestDir *t = *state;
	char path[256];
	char log[8192];
	uint64_t committed_end = write_two_and_a_half(t, path, sizeof(path));
	Spool *spool = NULL;

	/* The last frame lost its final bytes. */
	assert_int_equal(truncate(path, (off_t) file_size(path) - 3), 0);
	assert_true(open_capturing(t, 0, &spool, log, sizeof(log)));
	assert_non_null(strstr(log, "WARNING"));
	assert_non_null(strstr(log, path));
	assert_int_equal(file_size(path), committed_end);
	assert_int_equal(spool_durable_lsn(spool), 200);
	check_two_transactions(spool);
	spool_close(spool);
}

static void
test_spool_recovery_drops_unfinished_transaction(void **state)
{
	TestDir *t = *state;
	char path[256];
	char log[4096];
	uint64_t committed_end = write_two_and_a_half(t, path, sizeof(path));
	Spool *spool = NULL;

	/* No damage at all, but the third transaction has no commit: it goes, quietly. */
	assert_true(open_capturing(t, 0, &spool, log, sizeof(log)));
	assert_null(strstr(log, "WARNING"));
	assert_null(strstr(log, "ERROR"));
	assert_int_equal(file_size(path), committed_end);
	assert_int_equal(spool_durable_lsn(spool), 200);
	check_two_transactions(spool);
	spool_close(spool);
}

static void
test_spool_flipped_byte_in_earlier_segment_fails_open(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 400, 0);
	Got *got = calloc(MAX_GOT, sizeof(Got));
	char path[256];
	char log[8192];
	char expect[512];
	size_t n;
	size_t victim = 0;

	for (int i = 1; i <= 20; i++)
		append_transaction(spool, i, (Lsn) i * 100);
	assert_true(spool_sync(spool));
	n = read_main(spool, got, MAX_GOT);
	spool_close(spool);
	spool = NULL;
	assert_true(count_files(t, ".seg", NULL) >= 3);

	/* The second record of segment 2: inside a segment that is not the last. */
	for (size_t i = 0; i < n && victim == 0; i++)
		if (got[i].position.segment == 2 && i + 1 < n && got[i + 1].position.segment == 2)
			victim = i + 1;
	assert_true(victim > 0);
	segment_path(t, 2, path, sizeof(path));
	flip_byte(path, got[victim].position.offset + 8 + 3);

	assert_false(open_capturing(t, 400, &spool, log, sizeof(log)));
	assert_null(spool);
	snprintf(expect, sizeof(expect), "ERROR:  spool segment \"%s\" is corrupt at offset %llu",
			 path, (unsigned long long) got[victim].position.offset);
	assert_non_null(strstr(log, expect));
	assert_non_null(strstr(log, "HINT:"));
	free(got);
}

static void
test_spool_flipped_byte_before_valid_records_fails_open(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	Got got[64];
	char path[256];
	char log[8192];
	char expect[512];

	for (int i = 1; i <= 5; i++)
		append_transaction(spool, i, (Lsn) i * 100);
	assert_true(spool_sync(spool));
	assert_int_equal(read_main(spool, got, 64), 15);
	spool_close(spool);
	spool = NULL;

	/* In the last segment, but valid records follow: damage, not a torn write. Flip the
	 * length field so the frame boundaries are lost too. */
	segment_path(t, 1, path, sizeof(path));
	flip_byte(path, got[4].position.offset + 1);
	assert_false(open_capturing(t, 0, &spool, log, sizeof(log)));
	snprintf(expect, sizeof(expect), "spool segment \"%s\" is corrupt at offset %llu", path,
			 (unsigned long long) got[4].position.offset);
	assert_non_null(strstr(log, expect));
}

/* ---- streams ------------------------------------------------------------------------- */

static void
stream_text(Spool *spool, uint32_t xid, uint32_t subxid, Lsn lsn, const char *text)
{
	assert_true(spool_stream_append(spool, xid, subxid, lsn, text, strlen(text)));
}

static void
test_spool_stream_commit_replays_in_order(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	Got got[32];
	SpoolStats stats;
	size_t n;

	/* Two transactions streamed in interleaved chunks; 900 commits first. */
	stream_text(spool, 800, 800, 10, "I800-a");
	stream_text(spool, 900, 900, 11, "I900-a");
	stream_text(spool, 800, 800, 12, "I800-b");
	stream_text(spool, 900, 901, 13, "I901-a");
	spool_get_stats(spool, &stats);
	assert_int_equal(stats.open_streams, 2);
	assert_true(file_exists(t, "stream-00000384.open"));
	assert_true(spool_stream_commit(spool, 900, 5000, "c900", 4));
	assert_false(file_exists(t, "stream-00000384.open"));
	assert_true(file_exists(t, "stream-00000384-0000000000001388.commit"));
	assert_int_equal(spool_appended_lsn(spool), 5000);
	stream_text(spool, 800, 800, 14, "I800-c");
	assert_true(spool_stream_commit(spool, 800, 6000, "c800", 4));
	assert_true(spool_sync(spool));
	assert_int_equal(spool_durable_lsn(spool), 6000);
	spool_get_stats(spool, &stats);
	assert_int_equal(stats.open_streams, 0);

	n = read_main(spool, got, 32);
	assert_int_equal(n, 2);
	assert_int_equal(got[0].kind, SPOOL_STREAM_COMMIT);
	assert_int_equal(got[0].stream_xid, 900);
	assert_int_equal(got[0].lsn, 5000);
	assert_int_equal(got[0].boundary, 5000);
	assert_string_equal(got[0].data, "c900");
	assert_int_equal(got[1].stream_xid, 800);

	n = read_stream(spool, 900, 5000, got, 32);
	assert_int_equal(n, 2);
	assert_int_equal(got[0].kind, SPOOL_STREAM_CHANGE);
	assert_string_equal(got[0].data, "I900-a");
	assert_int_equal(got[0].lsn, 11);
	assert_string_equal(got[1].data, "I901-a");
	n = read_stream(spool, 800, 6000, got, 32);
	assert_int_equal(n, 3);
	assert_string_equal(got[0].data, "I800-a");
	assert_string_equal(got[1].data, "I800-b");
	assert_string_equal(got[2].data, "I800-c");
	spool_close(spool);
}

static void
test_spool_stream_abort_subxact_cuts_back(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	Got got[32];
	size_t n;

	stream_text(spool, 100, 100, 1, "top-1");
	stream_text(spool, 100, 101, 2, "sub101-1");
	stream_text(spool, 100, 100, 3, "top-2");
	stream_text(spool, 100, 102, 4, "sub102-1");
	stream_text(spool, 100, 103, 5, "sub103-nested");
	stream_text(spool, 100, 102, 6, "sub102-2");
	/* Rolling back to 102's savepoint takes 103 (started inside it) too. */
	assert_true(spool_stream_abort(spool, 100, 102));
	/* 103 is forgotten: its abort is a no-op now, and so is one for an unknown subxid. */
	assert_true(spool_stream_abort(spool, 100, 103));
	assert_true(spool_stream_abort(spool, 100, 999));
	stream_text(spool, 100, 104, 7, "sub104-1");
	stream_text(spool, 100, 100, 8, "top-3");
	assert_true(spool_stream_commit(spool, 100, 700, "c", 1));
	assert_true(spool_sync(spool));

	n = read_stream(spool, 100, 700, got, 32);
	assert_int_equal(n, 5);
	assert_string_equal(got[0].data, "top-1");
	assert_string_equal(got[1].data, "sub101-1");
	assert_string_equal(got[2].data, "top-2");
	assert_string_equal(got[3].data, "sub104-1");
	assert_string_equal(got[4].data, "top-3");
	spool_close(spool);
}

static void
test_spool_stream_abort_cuts_back_into_written_data(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	SpoolReader *reader = NULL;
	size_t big = 100 * 1024;
	char *data = malloc(big);
	char path[256];
	SpoolEntry entry;
	int count = 0;
	int r;

	/* Enough data that the stream buffer has gone to the file before the abort. */
	memset(data, 'x', big);
	for (int i = 0; i < 4; i++)
	{
		data[0] = (char) ('a' + i);
		assert_true(spool_stream_append(spool, 42, 42, (Lsn) i, data, big));
	}
	for (int i = 0; i < 6; i++)
	{
		data[0] = 'S';
		assert_true(spool_stream_append(spool, 42, 43, (Lsn) (10 + i), data, big));
	}
	path_in(t, "stream-0000002A.open", path, sizeof(path));
	assert_true(file_size(path) > 4 * big);
	assert_true(spool_stream_abort(spool, 42, 43));
	assert_true(file_size(path) < 4 * big + 4096);
	data[0] = 'z';
	assert_true(spool_stream_append(spool, 42, 42, 20, data, big));
	assert_true(spool_stream_commit(spool, 42, 900, "c", 1));

	assert_true(spool_stream_reader_open(spool, 42, 900, &reader));
	while ((r = spool_reader_next(reader, &entry, 0)) == 1)
	{
		assert_int_equal(entry.len, big);
		assert_int_equal(entry.pgoutput[0], count < 4 ? 'a' + count : 'z');
		count++;
	}
	assert_int_equal(r, 0);
	assert_int_equal(count, 5);
	spool_reader_free(reader);
	free(data);
	spool_close(spool);
}

static void
test_spool_stream_abort_whole_removes_file(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	uint64_t size_before = spool_size_bytes(spool);
	SpoolStats stats;

	stream_text(spool, 7, 7, 1, "a");
	stream_text(spool, 7, 8, 2, "b");
	assert_true(spool_size_bytes(spool) > size_before);
	assert_true(file_exists(t, "stream-00000007.open"));
	assert_true(spool_stream_abort(spool, 7, 7));
	assert_false(file_exists(t, "stream-00000007.open"));
	assert_int_equal(spool_size_bytes(spool), size_before);
	spool_get_stats(spool, &stats);
	assert_int_equal(stats.open_streams, 0);
	/* An abort for a stream never seen is fine. */
	assert_true(spool_stream_abort(spool, 12345, 12345));
	spool_close(spool);
}

static void
test_spool_stream_commit_of_empty_stream(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	Got got[4];

	/* Every change was rolled back, or none was streamed: replay finds an empty file. */
	assert_true(spool_stream_commit(spool, 55, 300, "c", 1));
	assert_true(spool_sync(spool));
	assert_int_equal(read_stream(spool, 55, 300, got, 4), 0);
	spool_close(spool);
}

static void
test_spool_many_interleaved_streams(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	Got got[8];
	char text[32];

	/* More streams than descriptors kept open. */
	for (int round = 0; round < 3; round++)
		for (uint32_t xid = 1000; xid < 1050; xid++)
		{
			snprintf(text, sizeof(text), "x%u-r%d", xid, round);
			stream_text(spool, xid, xid, (Lsn) round, text);
		}
	for (uint32_t xid = 1000; xid < 1050; xid++)
		assert_true(spool_stream_commit(spool, xid, (Lsn) xid * 10, "c", 1));
	assert_true(spool_sync(spool));
	for (uint32_t xid = 1000; xid < 1050; xid++)
	{
		assert_int_equal(read_stream(spool, xid, (Lsn) xid * 10, got, 8), 3);
		for (int round = 0; round < 3; round++)
		{
			snprintf(text, sizeof(text), "x%u-r%d", xid, round);
			assert_string_equal(got[round].data, text);
		}
	}
	spool_close(spool);
}

static void
test_spool_discard_open_removes_stream_files(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	uint64_t size_before = spool_size_bytes(spool);
	SpoolStats stats;

	stream_text(spool, 1, 1, 1, "a");
	stream_text(spool, 2, 2, 2, "b");
	stream_text(spool, 3, 4, 3, "c");
	assert_int_equal(count_files(t, ".open", NULL), 3);
	spool_stream_discard_open(spool);
	assert_int_equal(count_files(t, ".open", NULL), 0);
	assert_int_equal(spool_size_bytes(spool), size_before);
	spool_get_stats(spool, &stats);
	assert_int_equal(stats.open_streams, 0);
	/* The source resends from the start: the same xid starts a fresh file. */
	stream_text(spool, 1, 1, 1, "a again");
	assert_true(spool_stream_commit(spool, 1, 100, "c", 1));
	assert_true(spool_sync(spool));
	{
		Got got[4];

		assert_int_equal(read_stream(spool, 1, 100, got, 4), 1);
		assert_string_equal(got[0].data, "a again");
	}
	spool_close(spool);
}

static void
test_spool_recovery_keeps_committed_streams_only(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	Got got[4];
	SpoolReader *reader = NULL;
	SpoolStats stats;
	uint64_t on_disk;
	char log[4096];
	int saved;

	stream_text(spool, 10, 10, 1, "ten");
	assert_true(spool_stream_commit(spool, 10, 1000, "c10", 3));
	assert_true(spool_sync(spool));
	/* Renamed, but its STREAM_COMMIT record never became durable. */
	stream_text(spool, 11, 11, 2, "eleven");
	assert_true(spool_stream_commit(spool, 11, 2000, "c11", 3));
	/* Still open at the crash. */
	stream_text(spool, 12, 12, 3, "twelve");
	spool_close(spool);
	assert_true(file_exists(t, "stream-0000000B-00000000000007D0.commit"));
	assert_true(file_exists(t, "stream-0000000C.open"));

	assert_true(open_capturing(t, 0, &spool, log, sizeof(log)));
	assert_non_null(strstr(log, "removing spool stream file"));
	assert_int_equal(spool_durable_lsn(spool), 1000);
	assert_true(file_exists(t, "stream-0000000A-00000000000003E8.commit"));
	assert_false(file_exists(t, "stream-0000000B-00000000000007D0.commit"));
	assert_false(file_exists(t, "stream-0000000C.open"));
	assert_int_equal(read_stream(spool, 10, 1000, got, 4), 1);
	assert_string_equal(got[0].data, "ten");
	saved = capture_begin(t);
	assert_false(spool_stream_reader_open(spool, 11, 2000, &reader));
	capture_end(t, saved, log, sizeof(log));
	assert_non_null(strstr(log, "ERROR:  could not open spool stream file"));
	assert_non_null(strstr(log, "stream-0000000B-00000000000007D0.commit"));
	spool_get_stats(spool, &stats);
	count_files(t, "", &on_disk);
	assert_int_equal(stats.size_bytes, on_disk);

	/* The source resends 11 and it commits over the same name. */
	stream_text(spool, 11, 11, 2, "eleven again");
	assert_true(spool_stream_commit(spool, 11, 2000, "c11", 3));
	assert_true(spool_sync(spool));
	assert_int_equal(read_stream(spool, 11, 2000, got, 4), 1);
	assert_string_equal(got[0].data, "eleven again");
	spool_close(spool);
}

/* ---- release and size ---------------------------------------------------------------- */

static void
test_spool_release_removes_old_segments_and_stream_files(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 150, 0);
	Got *got = calloc(MAX_GOT, sizeof(Got));
	SpoolStats before;
	SpoolStats after;
	SpoolPosition cut = {0, 0};
	uint64_t on_disk;
	uint64_t expected_freed = 0;
	char path[256];
	size_t n;

	for (int i = 1; i <= 12; i++)
	{
		append_transaction(spool, i, (Lsn) i * 100);
		if (i == 3 || i == 10)
		{
			stream_text(spool, (uint32_t) i, (uint32_t) i, 1, "streamed change");
			assert_true(spool_stream_commit(spool, (uint32_t) i, (Lsn) i * 100 + 50, "c", 1));
		}
	}
	assert_true(spool_sync(spool));
	spool_get_stats(spool, &before);
	count_files(t, "", &on_disk);
	assert_int_equal(before.size_bytes, on_disk);
	assert_true(before.segments >= 5);

	/* The applier is done with everything before the first record of transaction 7. */
	n = read_main(spool, got, MAX_GOT);
	for (size_t i = 0; i < n; i++)
		if (strcmp(got[i].data, "B7") == 0)
			cut = got[i].position;
	assert_true(cut.segment > 2);
	for (uint64_t s = 1; s < cut.segment; s++)
	{
		segment_path(t, s, path, sizeof(path));
		expected_freed += file_size(path);
	}
	path_in(t, "stream-00000003-000000000000015E.commit", path, sizeof(path));
	expected_freed += file_size(path);

	spool_release(spool, cut);
	spool_get_stats(spool, &after);
	assert_int_equal(after.size_bytes, before.size_bytes - expected_freed);
	assert_int_equal(after.segments, before.segments - (cut.segment - 1));
	for (uint64_t s = 1; s < cut.segment; s++)
	{
		segment_path(t, s, path, sizeof(path));
		assert_int_equal(access(path, F_OK), -1);
	}
	segment_path(t, cut.segment, path, sizeof(path));
	assert_int_equal(access(path, F_OK), 0);
	assert_false(file_exists(t, "stream-00000003-000000000000015E.commit"));
	assert_true(file_exists(t, "stream-0000000A-000000000000041A.commit"));
	count_files(t, "", &on_disk);
	assert_int_equal(after.size_bytes, on_disk);

	/* A reader opened now starts at the oldest retained segment. */
	n = read_main(spool, got, MAX_GOT);
	assert_true(n > 0);
	assert_int_equal(got[0].position.segment, cut.segment);

	/* Releasing everything keeps the segment being written. */
	spool_release(spool, (SpoolPosition) {UINT64_MAX, UINT64_MAX});
	spool_get_stats(spool, &after);
	assert_int_equal(after.segments, 1);
	assert_int_equal(count_files(t, ".seg", NULL), 1);
	assert_int_equal(count_files(t, ".commit", NULL), 0);
	count_files(t, "", &on_disk);
	assert_int_equal(after.size_bytes, on_disk);
	append_transaction(spool, 13, 1300);
	assert_true(spool_sync(spool));
	assert_int_equal(spool_durable_lsn(spool), 1300);
	free(got);
	spool_close(spool);
}

static void
test_spool_is_full_above_max_bytes(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 512, 4096);
	SpoolStats stats;
	int i;

	assert_false(spool_is_full(spool));
	for (i = 1; i <= 200 && !spool_is_full(spool); i++)
		append_transaction(spool, i, (Lsn) i * 100);
	assert_true(spool_is_full(spool));
	assert_true(spool_size_bytes(spool) > 4096);
	assert_true(i < 200);
	assert_true(spool_sync(spool));
	spool_get_stats(spool, &stats);
	assert_true(stats.full);

	/* Once applied and released, receiving may go on. */
	spool_release(spool, (SpoolPosition) {UINT64_MAX, 0});
	assert_false(spool_is_full(spool));
	spool_get_stats(spool, &stats);
	assert_false(stats.full);
	spool_close(spool);
}

/* ---- the reader thread --------------------------------------------------------------- */

typedef struct ReaderThread
{
	SpoolReader *reader;
	int timeout_ms;
	int result;
	Got got;
	atomic_bool done;
} ReaderThread;

static void *
reader_thread_main(void *arg)
{
	ReaderThread *rt = arg;
	SpoolEntry entry;

	rt->result = spool_reader_next(rt->reader, &entry, rt->timeout_ms);
	if (rt->result == 1)
		copy_entry(&entry, &rt->got);
	atomic_store(&rt->done, true);
	return NULL;
}

static void
test_spool_sync_wakes_blocked_reader(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	ReaderThread rt = {.timeout_ms = 10000};
	pthread_t thread;
	double start;

	assert_true(spool_reader_open(spool, &rt.reader));
	atomic_init(&rt.done, false);
	start = now_seconds();
	assert_int_equal(pthread_create(&thread, NULL, reader_thread_main, &rt), 0);
	usleep(50 * 1000);
	append_text(spool, SPOOL_PROGRESS, 4242, "", 4242);
	usleep(50 * 1000);
	assert_false(atomic_load(&rt.done));  /* appended is not enough */
	assert_true(spool_sync(spool));
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_true(now_seconds() - start < 5.0);
	assert_int_equal(rt.result, 1);
	assert_int_equal(rt.got.kind, SPOOL_PROGRESS);
	assert_int_equal(rt.got.boundary, 4242);
	spool_reader_free(rt.reader);
	spool_close(spool);
}

static void
test_spool_wakeup_returns_blocked_reader(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	ReaderThread rt = {.timeout_ms = -1};
	pthread_t thread;

	assert_true(spool_reader_open(spool, &rt.reader));
	atomic_init(&rt.done, false);
	assert_int_equal(pthread_create(&thread, NULL, reader_thread_main, &rt), 0);
	usleep(50 * 1000);
	assert_false(atomic_load(&rt.done));
	spool_wakeup_reader(spool);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(rt.result, 0);
	spool_reader_free(rt.reader);
	spool_close(spool);
}

static void
test_spool_reader_follows_rollover_while_writing(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 300, 0);
	SpoolReader *reader = NULL;
	SpoolEntry entry;
	int commits = 0;
	uint64_t last_segment = 0;

	assert_true(spool_reader_open(spool, &reader));
	for (int i = 1; i <= 30; i++)
	{
		append_transaction(spool, i, (Lsn) i * 100);
		if (i % 4 == 0)
			assert_true(spool_sync(spool));
		while (spool_reader_next(reader, &entry, 0) == 1)
		{
			assert_true(entry.position.segment >= last_segment);
			last_segment = entry.position.segment;
			if (entry.boundary != 0)
				assert_int_equal(entry.boundary, (Lsn) ++commits * 100);
		}
		assert_int_equal((Lsn) commits * 100, spool_durable_lsn(spool));
	}
	assert_true(spool_sync(spool));
	while (spool_reader_next(reader, &entry, 0) == 1)
		if (entry.boundary != 0)
			assert_int_equal(entry.boundary, (Lsn) ++commits * 100);
	assert_int_equal(commits, 30);
	assert_true(last_segment >= 5);
	spool_reader_free(reader);
	spool_close(spool);
}


static void
test_spool_reader_never_sees_unfinished_transaction(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	Got *got = calloc(MAX_GOT, sizeof(Got));

	append_transaction(spool, 1, 1000);
	append_text(spool, SPOOL_CHANGE, 1970, "B2", 0);
	append_text(spool, SPOOL_CHANGE, 1980, "I2:half received", 0);
	assert_true(spool_sync(spool));
	/* durable on disk, but the transaction may still be cut off: not published */
	assert_int_equal(read_main(spool, got, MAX_GOT), 3);
	assert_string_equal(got[2].data, "C1");
	free(got);
	spool_close(spool);
}

static void
test_spool_rewind_drops_cut_off_transaction(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	Got *got = calloc(MAX_GOT, sizeof(Got));
	size_t big = 2 * 1024 * 1024;   /* beyond the write buffer: reaches the file before sync */
	uint8_t *data = calloc(1, big);
	uint64_t size_before;
	size_t n;

	append_transaction(spool, 1, 1000);
	assert_true(spool_sync(spool));
	size_before = spool_size_bytes(spool);
	append_text(spool, SPOOL_CHANGE, 1970, "B2", 0);
	assert_true(spool_append(spool, SPOOL_CHANGE, 1980, data, big, 0));
	assert_true(spool_sync(spool));
	assert_true(spool_rewind(spool));
	assert_int_equal(spool_size_bytes(spool), size_before);
	/* the source sends the transaction again, whole */
	append_transaction(spool, 2, 2000);
	assert_true(spool_sync(spool));
	n = read_main(spool, got, MAX_GOT);
	assert_int_equal(n, 6);
	assert_string_equal(got[3].data, "B2");
	assert_string_equal(got[4].data, "I2:some row data for transaction 2");
	assert_string_equal(got[5].data, "C2");
	assert_int_equal(spool_durable_lsn(spool), 2000);
	spool_close(spool);

	/* and the cut is durable: a reopened spool reads the same */
	spool = open_spool(t, 0, 0);
	assert_int_equal(read_main(spool, got, MAX_GOT), 6);
	free(data);
	free(got);
	spool_close(spool);
}

/* Waits up to 5 s for the syncer to make lsn durable. */
static void
wait_durable(Spool *spool, Lsn lsn)
{
	for (int i = 0; i < 5000 && spool_durable_lsn(spool) < lsn; i++)
		usleep(1000);
	assert_true(spool_durable_lsn(spool) >= lsn);
}

/* The syncer thread raises the durable LSN and wakes the event fd; the writer never waits. */
static void
test_spool_sync_request_makes_durable_in_background(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 0, 0);
	Lsn start = spool_durable_lsn(spool);
	uint64_t count = 0;
	Got got[8];

	append_transaction(spool, 1, 1000);
	assert_true(spool_publish(spool));
	assert_true(spool_sync_request(spool));
	assert_false(spool_has_unsynced(spool));
	wait_durable(spool, 1000);
	assert_true(spool_durable_lsn(spool) > start);
	assert_int_equal(read(spool_sync_event_fd(spool), &count, sizeof(count)), sizeof(count));
	assert_true(count >= 1);
	assert_false(spool_sync_failed(spool));
	/* nothing new: a request is a no-op, and the blocking sync still works after it */
	assert_true(spool_sync_request(spool));
	assert_true(spool_sync(spool));
	assert_int_equal(read_main(spool, got, 8), 3);
	spool_close(spool);

	/* what the syncer made durable survives: reopen and read it back */
	spool = open_spool(t, 0, 0);
	assert_int_equal(spool_durable_lsn(spool), 1000);
	assert_int_equal(read_main(spool, got, 8), 3);
	spool_close(spool);
}

/* Requests racing segment rolls and a blocking sync: every transaction is kept, in order. */
static void
test_spool_sync_requests_across_rollovers(void **state)
{
	TestDir *t = *state;
	Spool *spool = open_spool(t, 4096, 0);
	static Got got[MAX_GOT];
	size_t n;

	for (int i = 1; i <= 400; i++)
	{
		append_transaction(spool, i, (Lsn) i * 100);
		assert_true(spool_publish(spool));
		if (i % 97 == 0)
			assert_true(spool_sync(spool));
		else
			assert_true(spool_sync_request(spool));
	}
	wait_durable(spool, 40000);
	spool_close(spool);

	spool = open_spool(t, 4096, 0);
	assert_int_equal(spool_durable_lsn(spool), 40000);
	n = read_main(spool, got, MAX_GOT);
	{
		int next = 1;

		for (size_t i = 0; i < n; i++)
			if (got[i].data[0] == 'C')
			{
				assert_int_equal(atoi(got[i].data + 1), next);
				assert_int_equal(got[i].boundary, (Lsn) next * 100);
				next++;
			}
		assert_int_equal(next, 401);
	}
	spool_close(spool);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup_dir, teardown_dir)
	const struct CMUnitTest tests[] = {
		T(test_spool_append_sync_read_round_trip),
		T(test_spool_reader_sees_nothing_before_sync),
		T(test_spool_publish_shows_whole_transactions_before_they_are_durable),
		T(test_spool_timeout_returns_zero),
		T(test_spool_large_record_round_trip),
		T(test_spool_rollover_writes_relation_preamble),
		T(test_spool_reopen_continues_after_last_boundary),
		T(test_spool_second_open_of_same_dir_fails),
		T(test_spool_recovery_truncates_torn_tail),
		T(test_spool_recovery_truncates_frame_cut_short),
		T(test_spool_recovery_drops_unfinished_transaction),
		T(test_spool_flipped_byte_in_earlier_segment_fails_open),
		T(test_spool_flipped_byte_before_valid_records_fails_open),
		T(test_spool_stream_commit_replays_in_order),
		T(test_spool_stream_abort_subxact_cuts_back),
		T(test_spool_stream_abort_cuts_back_into_written_data),
		T(test_spool_stream_abort_whole_removes_file),
		T(test_spool_stream_commit_of_empty_stream),
		T(test_spool_many_interleaved_streams),
		T(test_spool_discard_open_removes_stream_files),
		T(test_spool_recovery_keeps_committed_streams_only),
		T(test_spool_release_removes_old_segments_and_stream_files),
		T(test_spool_is_full_above_max_bytes),
		T(test_spool_sync_wakes_blocked_reader),
		T(test_spool_wakeup_returns_blocked_reader),
		T(test_spool_reader_follows_rollover_while_writing),
		T(test_spool_reader_never_sees_unfinished_transaction),
		T(test_spool_rewind_drops_cut_off_transaction),
		T(test_spool_sync_request_makes_durable_in_background),
		T(test_spool_sync_requests_across_rollovers),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
