/*
 * CRC-32C unit tests: published check values (RFC 3720 appendix B.4 and the usual check
 * string) and chained calls matching a single call over any split of the input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "switchyard/crc32c.h"

static void
test_crc32c_check_string(void **state)
{
	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c(0, "a", 1), 0xC1D04330u);
	assert_int_equal(crc32c(0, "The quick brown fox jumps over the lazy dog", 43), 0x22620404u);
}

static void
test_crc32c_empty_input_is_zero(void **state)
{
	assert_int_equal(crc32c(0, "", 0), 0u);
	/* An empty continuation leaves a running CRC unchanged. */
	assert_int_equal(crc32c(0xE3069283u, "", 0), 0xE3069283u);
}

static void
test_crc32c_rfc3720_vectors(void **state)
{
	uint8_t buf[32];

	memset(buf, 0, sizeof(buf));
	assert_int_equal(crc32c(0, buf, sizeof(buf)), 0x8A9136AAu);
	memset(buf, 0xFF, sizeof(buf));
	assert_int_equal(crc32c(0, buf, sizeof(buf)), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t) i;
	assert_int_equal(crc32c(0, buf, sizeof(buf)), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t) (31 - i);
	assert_int_equal(crc32c(0, buf, sizeof(buf)), 0x113FDB5Cu);
}

static void
test_crc32c_incremental_equals_one_shot(void **state)
{
	uint8_t buf[1000];
	uint32_t whole;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t) (i * 131 + 7);
	whole = crc32c(0, buf, sizeof(buf));
	/* Every split point, so both the 8-byte loop and the byte tail see odd offsets. */
	for (size_t split = 0; split <= sizeof(buf); split++)
	{
		uint32_t crc = crc32c(0, buf, split);

		assert_int_equal(crc32c(crc, buf + split, sizeof(buf) - split), whole);
	}
	/* Byte by byte, too. */
	{
		uint32_t crc = 0;

		for (size_t i = 0; i < sizeof(buf); i++)
			crc = crc32c(crc, buf + i, 1);
		assert_int_equal(crc, whole);
	}
}

static void
test_crc32c_unaligned_input(void **state)
{
	uint8_t buf[64 + 9];

	memset(buf, 0, sizeof(buf));
	memcpy(buf + 3, "123456789", 9);
	assert_int_equal(crc32c(0, buf + 3, 9), 0xE3069283u);
	memset(buf, 0xFF, sizeof(buf));
	assert_int_equal(crc32c(0, buf + 5, 32), 0x62A8AB43u);
}

/* The CPU instruction path and the tables agree on every length and alignment. */
static void
test_crc32c_matches_portable_version(void **state)
{
	uint8_t buf[1100];
	uint32_t seed = 12345;

	for (size_t i = 0; i < sizeof(buf); i++)
	{
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t) (seed >> 16);
	}
	for (size_t offset = 0; offset < 9; offset++)
		for (size_t len = 0; len + offset <= sizeof(buf); len += 37)
			assert_int_equal(crc32c(7, buf + offset, len), crc32c_portable(7, buf + offset, len));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_check_string),
		cmocka_unit_test(test_crc32c_matches_portable_version),
		cmocka_unit_test(test_crc32c_empty_input_is_zero),
		cmocka_unit_test(test_crc32c_rfc3720_vectors),
		cmocka_unit_test(test_crc32c_incremental_equals_one_shot),
		cmocka_unit_test(test_crc32c_unaligned_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
