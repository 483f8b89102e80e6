/*
 * The monotonic clock, for timeouts, pacing and durations: immune to wall-clock steps.
 */
#ifndef SWITCHYARD_MONOTONIC_H
#define SWITCHYARD_MONOTONIC_H

#include <stdint.h>

int64_t monotonic_us(void);

static inline int64_t
monotonic_ms(void)
{
	return monotonic_us() / 1000;
}

#endif
