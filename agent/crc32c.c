/*
 * CRC-32C (Castagnoli), the checksum in front of every spool record. Software slicing-by-8:
 * eight 256-entry tables let the loop fold eight input bytes per step with independent loads.
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
crc32c(uint32_t crc, const void *data, size_t len)
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
