/*
 * CRC-32C (Castagnoli), the checksum in front of every spool record. On x86-64 with SSE 4.2
 * the CPU's crc32 instruction does it (eight bytes per instruction); elsewhere software
 * slicing-by-8: eight 256-entry tables fold eight input bytes per step with independent loads.
 */
#include "switchyard/crc32c.h"

#include <pthread.h>

/* The reflected Castagnoli polynomial 0x1EDC6F41. */
#define CRC32C_POLY_REFLECTED 0x82F63B78u

static uint32_t crc32c_table[8][256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void
crc32c_init_tables(void)
{
	for (uint32_t i = 0; i < 256; i++)
	{
		uint32_t crc = i;

		for (int bit = 0; bit < 8; bit++)
			crc = (crc >> 1) ^ ((crc & 1u) ? CRC32C_POLY_REFLECTED : 0u);
		crc32c_table[0][i] = crc;
	}
	/* Table k advances a byte's contribution by k further zero bytes. */
	for (uint32_t i = 0; i < 256; i++)
	{
		uint32_t crc = crc32c_table[0][i];

		for (int k = 1; k < 8; k++)
		{
			crc = (crc >> 8) ^ crc32c_table[0][crc & 0xFFu];
			crc32c_table[k][i] = crc;
		}
	}
}

/* Byte-wise loads keep this independent of host endianness and alignment; compilers turn
 * them into a single load on little-endian machines. */
static inline uint32_t
crc32c_load_le32(const uint8_t *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) |
		((uint32_t) p[3] << 24);
}

uint32_t
crc32c_portable(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	pthread_once(&crc32c_once, crc32c_init_tables);

	/* The register is kept inverted between calls so that calls can be chained. */
	crc = ~crc;
	while (len >= 8)
	{
		uint32_t low = crc32c_load_le32(p) ^ crc;
		uint32_t high = crc32c_load_le32(p + 4);

		crc = crc32c_table[7][low & 0xFFu] ^ crc32c_table[6][(low >> 8) & 0xFFu] ^
			crc32c_table[5][(low >> 16) & 0xFFu] ^ crc32c_table[4][low >> 24] ^
			crc32c_table[3][high & 0xFFu] ^ crc32c_table[2][(high >> 8) & 0xFFu] ^
			crc32c_table[1][(high >> 16) & 0xFFu] ^ crc32c_table[0][high >> 24];
		p += 8;
		len -= 8;
	}
	while (len-- > 0)
		crc = (crc >> 8) ^ crc32c_table[0][(crc ^ *p++) & 0xFFu];
	return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <string.h>

__attribute__((target("sse4.2"))) static uint32_t
crc32c_sse42(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t crc64 = ~crc;

	while (len >= 8)
	{
		uint64_t word;

		memcpy(&word, p, sizeof(word));
		crc64 = __builtin_ia32_crc32di(crc64, word);
		p += 8;
		len -= 8;
	}
	crc = (uint32_t) crc64;
	while (len-- > 0)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return ~crc;
}

uint32_t
crc32c(uint32_t crc, const void *data, size_t len)
{
	/* reads what libgcc found at start-up: no cost worth caching */
	if (__builtin_cpu_supports("sse4.2"))
		return crc32c_sse42(crc, data, len);
	return crc32c_portable(crc, data, len);
}
#else
uint32_t
crc32c(uint32_t crc, const void *data, size_t len)
{
	return crc32c_portable(crc, data, len);
}
#endif
