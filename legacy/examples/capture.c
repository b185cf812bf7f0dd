/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * A legacy application, unchanged: it allocates its own buffer (deliberately not page
 * aligned), hands it to fgrab, and checks every byte of every frame against the emulated
 * camera's pattern, plus the bytes around the buffer.
 *
 * usage: fgrab-legacy-capture [frames] [card] [frames in the buffer, default 8]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "fgrab_legacy.h"
#include "pattern.h"

#define FRAME_BYTES 1000003u
#define FRAMES_IN_BUFFER 8u /* default */
#define GUARD 4096u
#define GUARD_BYTE 0x5a

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(fgrab_handle *h, const char *call, int code)
{
	fprintf(stderr, "%s: code %d: %s (%s)\n", call, code, fgrab_strerror(code),
		h ? fgrab_last_error(h) : "");
	return 1;
}

int main(int argc, char **argv)
{
	unsigned long frames = argc > 1 ? strtoul(argv[1], NULL, 0) : 200;
	int card = argc > 2 ? atoi(argv[2]) : 0;
	unsigned long in_buffer = argc > 3 ? strtoul(argv[3], NULL, 0) : FRAMES_IN_BUFFER;
	size_t total = (size_t)FRAME_BYTES * in_buffer;
	unsigned char *raw = malloc(total + 2 * GUARD + 13);
	unsigned char *buffer = raw + GUARD + 13; /* not aligned to anything */
	struct fgrab_frame_info info;
	struct fgrab_counters counters;
	struct rusage usage;
	unsigned long verified = 0;
	fgrab_handle *h = NULL;
	double started;
	int rc;

	if (!raw)
		return 1;
	memset(raw, GUARD_BYTE, total + 2 * GUARD + 13);
	rc = fgrab_open(card, &h);
	if (rc)
		return fail(NULL, "fgrab_open", rc);
	rc = fgrab_wait_frame(h, 10, &info);
	if (rc != FGRAB_E_STATE)
		return fail(h, "fgrab_wait_frame before set_buffer should be refused", rc);
	rc = fgrab_set_buffer(h, buffer, total, FRAME_BYTES);
	if (rc)
		return fail(h, "fgrab_set_buffer", rc);
	rc = fgrab_start(h);
	if (rc)
		return fail(h, "fgrab_start", rc);
	started = now();
	while (verified < frames) {
		long bad;

		rc = fgrab_wait_frame(h, 5000, &info);
		if (rc)
			return fail(h, "fgrab_wait_frame", rc);
		if (info.bytes != FRAME_BYTES ||
		    info.data != buffer + (size_t)info.index * FRAME_BYTES) {
			fprintf(stderr, "frame %u: %u bytes at %p\n", info.index, info.bytes, info.data);
			return 1;
		}
		bad = fgrab_pattern_check(info.data, info.bytes, info.sequence);
		if (bad >= 0) {
			fprintf(stderr, "frame %u (sequence %llu): byte %ld differs\n", info.index,
				(unsigned long long)info.sequence, bad);
			return 1;
		}
		verified++;
		rc = fgrab_release_frame(h, info.index);
		if (rc)
			return fail(h, "fgrab_release_frame", rc);
	}
	double elapsed = now() - started;
	rc = fgrab_get_counters(h, &counters);
	if (rc)
		return fail(h, "fgrab_get_counters", rc);
	rc = fgrab_release_frame(h, 12345);
	if (rc != FGRAB_E_INVAL)
		return fail(h, "releasing a frame index out of range should be refused", rc);
	rc = fgrab_stop(h);
	if (rc)
		return fail(h, "fgrab_stop", rc);
	rc = fgrab_close(h);
	if (rc)
		return fail(NULL, "fgrab_close", rc);
	for (size_t i = 0; i < GUARD + 13; i++)
		if (raw[i] != GUARD_BYTE) {
			fprintf(stderr, "guard byte %zu before the buffer overwritten\n", i);
			return 1;
		}
	for (size_t i = 0; i < GUARD; i++)
		if (buffer[total + i] != GUARD_BYTE) {
			fprintf(stderr, "guard byte %zu after the buffer overwritten\n", i);
			return 1;
		}
	getrusage(RUSAGE_SELF, &usage);
	printf("legacy C API: %lu frames of %u B verified byte by byte (%.1f MB) in %.2f s "
	       "(%.3f GB/s), %llu dropped by the card, %llu failed, guard bytes intact; "
	       "CPU %.2f s user + %.2f s system\n",
	       verified, FRAME_BYTES, verified * (double)FRAME_BYTES / 1e6, elapsed,
	       verified * (double)FRAME_BYTES / elapsed / 1e9,
	       (unsigned long long)counters.frames_dropped,
	       (unsigned long long)counters.frames_failed,
	       usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6,
	       usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6);
	free(raw);
	return 0;
}
