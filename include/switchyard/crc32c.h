/*
 * CRC-32C (Castagnoli), the checksum of every spool record.
 */
#ifndef SWITCHYARD_CRC32C_H
#define SWITCHYARD_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC over more bytes; start with crc = 0. crc32c(0, "123456789", 9) = 0xE3069283. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);
/* The table-driven version crc32c() falls back to without the CPU's instruction. */
uint32_t crc32c_portable(uint32_t crc, const void *data, size_t len);

#endif
