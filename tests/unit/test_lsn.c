/*
 * Unit tests for LSN text parsing/formatting and PostgreSQL timestamps: the positions the
 * agent stores, confirms and logs must round-trip exactly and reject anything else.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/time.h>

#include "switchyard/lsn.h"

static void
lsn_parse_reads_postgres_text_form(void **state)
{
	Lsn lsn = 42;

	assert_true(lsn_parse("0/0", &lsn));
	assert_int_equal(lsn, 0);
	assert_true(lsn_parse("16/B374D848", &lsn));
	assert_int_equal(lsn, UINT64_C(0x16B374D848));
	/* PostgreSQL prints upper case; accept lower case as typed by people */
	assert_true(lsn_parse("ab/cd", &lsn));
	assert_int_equal(lsn, UINT64_C(0xAB000000CD));
	assert_true(lsn_parse("FFFFFFFF/FFFFFFFF", &lsn));
	assert_int_equal(lsn, UINT64_MAX);
}

static void
lsn_format_matches_postgres(void **state)
{
	char buf[LSN_FORMAT_SIZE];

	assert_string_equal(lsn_format(0, buf), "0/0");
	assert_string_equal(lsn_format(UINT64_C(0x16B374D848), buf), "16/B374D848");
	assert_string_equal(lsn_format(UINT64_C(0x100000000), buf), "1/0");
	assert_string_equal(lsn_format(UINT64_MAX, buf), "FFFFFFFF/FFFFFFFF");
	assert_int_equal(strlen(buf) + 1, LSN_FORMAT_SIZE);
}

static void
lsn_round_trips(void **state)
{
	const Lsn samples[] = {
		0, 1, UINT64_C(0xFFFFFFFF), UINT64_C(0x100000000), UINT64_C(0x16B374D848),
		UINT64_C(0x0123456789ABCDEF), UINT64_MAX - 1, UINT64_MAX,
	};
	char buf[LSN_FORMAT_SIZE];

	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
	{
		Lsn back = 0;

		assert_true(lsn_parse(lsn_format(samples[i], buf), &back));
		assert_int_equal(back, samples[i]);
	}
	/* and every bit position on its own */
	for (int bit = 0; bit < 64; bit++)
	{
		Lsn back = 0;

		assert_true(lsn_parse(lsn_format(UINT64_C(1) << bit, buf), &back));
		assert_int_equal(back, UINT64_C(1) << bit);
	}
}

static void
lsn_parse_rejects_malformed(void **state)
{
	const char *bad[] = { "", "1/", "/1", "x/1", "1/x", "1/2 ", " 1/2", "-1/0", "+1/0",
		"1//2", "1/2/3", "12", "1-2", "1/-2", "1/ 2", "1/+2", "0x1/2", "100000000/0" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		Lsn lsn = 7;

		if (lsn_parse(bad[i], &lsn))
			fail_msg("lsn_parse accepted \"%s\"", bad[i]);
		assert_int_equal(lsn, 7);  /* untouched on failure */
	}
	assert_false(lsn_parse(NULL, &(Lsn) { 0 }));
}

static void
pg_timestamp_now_is_unix_time_shifted_to_2000(void **state)
{
	struct timeval before;
	struct timeval after;
	int64_t now;

	gettimeofday(&before, NULL);
	now = pg_timestamp_now();
	gettimeofday(&after, NULL);

	assert_true(now + PG_EPOCH_OFFSET_US >= (int64_t) before.tv_sec * 1000000 + before.tv_usec);
	assert_true(now + PG_EPOCH_OFFSET_US <= (int64_t) after.tv_sec * 1000000 + after.tv_usec);
	/* 2000-01-01 + 20 years < now: catches a missing or doubled epoch shift */
	assert_true(now > INT64_C(20) * 365 * 86400 * 1000000);
	assert_true(now < INT64_C(200) * 365 * 86400 * 1000000);
	assert_int_equal(PG_EPOCH_OFFSET_US, INT64_C(946684800) * 1000000);
}

static void
pg_timestamp_now_does_not_go_backwards_quickly(void **state)
{
	int64_t prev = pg_timestamp_now();

	for (int i = 0; i < 1000; i++)
	{
		int64_t now = pg_timestamp_now();

		/* wall clock: allow a small step back, never a jump */
		assert_true(now >= prev - 1000000);
		prev = now;
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lsn_parse_reads_postgres_text_form),
		cmocka_unit_test(lsn_format_matches_postgres),
		cmocka_unit_test(lsn_round_trips),
		cmocka_unit_test(lsn_parse_rejects_malformed),
		cmocka_unit_test(pg_timestamp_now_is_unix_time_shifted_to_2000),
		cmocka_unit_test(pg_timestamp_now_does_not_go_backwards_quickly),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
