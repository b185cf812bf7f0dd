/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* The emulated card's test pattern (docs/hardware.md, "Frame content"), for C examples. */
#ifndef FGRAB_PATTERN_H
#define FGRAB_PATTERN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t fgrab_pattern_word(uint64_t sequence, uint64_t word)
{
	uint64_t x = (sequence * 0x9e3779b97f4a7c15ull) ^ (word + 0xd1b54a32d192ed03ull);

	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Offset of the first byte of @data (frame bytes 0..len) that differs, or -1. */
static inline long fgrab_pattern_check(const uint8_t *data, size_t len, uint64_t sequence)
{
	size_t offset = 0;

	for (; offset + 8 <= len; offset += 8) {
		uint64_t expected = fgrab_pattern_word(sequence, offset / 8), got;

		memcpy(&got, data + offset, sizeof(got)); /* any alignment; little endian */
		if (got != expected)
			break;
	}
	for (; offset < len; offset++) {
		uint64_t word = fgrab_pattern_word(sequence, offset / 8);

		if (data[offset] != (uint8_t)(word >> (8 * (offset % 8))))
			return (long)offset;
	}
	return -1;
}

#endif /* FGRAB_PATTERN_H */
