/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The legacy API used wrongly, the way applications do by accident: every call must answer
 * with its documented code and leave the stream working. Frames that do come are checked
 * against the emulated camera's pattern, and the buffer's unused tail and the bytes around
 * it must stay untouched.
 *
 * usage: fgrab-legacy-misuse [card]
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fgrab_legacy.h"
#include "pattern.h"

#define FRAME_BYTES 65543u
#define FRAMES 5u
#define TAIL 777u /* total_bytes is not a multiple of the frame size */
#define GUARD 4096u
#define GUARD_BYTE 0xa5

static unsigned checks, failures;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		checks++;                                                  \
		if (!(cond)) {                                             \
			failures++;                                        \
			fprintf(stderr, "line %d: ", __LINE__);            \
			fprintf(stderr, __VA_ARGS__);                      \
			fprintf(stderr, "\n");                             \
		}                                                          \
	} while (0)

#define EXPECT(call, code)                                                          \
	do {                                                                        \
		int rc_ = (call);                                                   \
		CHECK(rc_ == (code), "%s returned %d (%s), expected %s", #call, rc_, \
		      fgrab_strerror(rc_), #code);                                  \
	} while (0)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const unsigned char *buffer;

/* A frame handed out must be in the buffer, complete and carry the pattern. */
static void check_frame(const struct fgrab_frame_info *info)
{
	CHECK(info->index < FRAMES, "frame index %u", info->index);
	CHECK(info->data == buffer + (size_t)info->index * FRAME_BYTES, "frame %u at %p",
	      info->index, info->data);
	CHECK(info->bytes == FRAME_BYTES, "frame %u has %u bytes", info->index, info->bytes);
	if (info->index < FRAMES && info->bytes == FRAME_BYTES)
		CHECK(fgrab_pattern_check(info->data, info->bytes, info->sequence) < 0,
		      "frame %u (sequence %llu) differs from the pattern", info->index,
		      (unsigned long long)info->sequence);
}

struct waiter {
	fgrab_handle *h;
	int rc;
	struct fgrab_frame_info info;
};

static void *wait_in_thread(void *arg)
{
	struct waiter *waiter = arg;

	waiter->rc = fgrab_wait_frame(waiter->h, 3000, &waiter->info);
	return NULL;
}

int main(int argc, char **argv)
{
	int card = argc > 1 ? atoi(argv[1]) : 0;
	size_t total = (size_t)FRAME_BYTES * FRAMES + TAIL;
	unsigned char *raw = malloc(total + 2 * GUARD + 7);
	struct fgrab_frame_info info, held[FRAMES];
	struct fgrab_counters counters;
	struct waiter waiter;
	fgrab_handle *h = (fgrab_handle *)&raw; /* garbage fgrab_open must overwrite */
	pthread_t thread;
	double started;
	unsigned i;
	int rc;

	if (!raw)
		return 1;
	memset(raw, GUARD_BYTE, total + 2 * GUARD + 7);
	buffer = raw + GUARD + 7; /* not aligned to anything */

	/* Opening. */
	EXPECT(fgrab_open(0, NULL), FGRAB_E_INVAL);
	EXPECT(fgrab_open(-1, &h), FGRAB_E_INVAL);
	CHECK(h == NULL, "a failed fgrab_open left *out set");
	EXPECT(fgrab_open(97, &h), FGRAB_E_NODEV);
	CHECK(h == NULL, "a failed fgrab_open left *out set");
	CHECK(strstr(fgrab_last_error(NULL), "fgrab97") != NULL,
	      "fgrab_last_error(NULL) after a failed open: \"%s\"", fgrab_last_error(NULL));

	/* A null handle, everywhere. */
	EXPECT(fgrab_close(NULL), FGRAB_E_INVAL);
	EXPECT(fgrab_set_buffer(NULL, raw, total, FRAME_BYTES), FGRAB_E_INVAL);
	EXPECT(fgrab_start(NULL), FGRAB_E_INVAL);
	EXPECT(fgrab_stop(NULL), FGRAB_E_INVAL);
	EXPECT(fgrab_wait_frame(NULL, 0, &info), FGRAB_E_INVAL);
	EXPECT(fgrab_release_frame(NULL, 0), FGRAB_E_INVAL);
	EXPECT(fgrab_get_counters(NULL, &counters), FGRAB_E_INVAL);
	CHECK(fgrab_last_error(NULL) != NULL, "fgrab_last_error(NULL) is NULL");
	CHECK(strcmp(fgrab_strerror(-1000), "unknown error code") == 0, "strerror(-1000)");
	CHECK(strstr(fgrab_strerror(FGRAB_E_MEMLOCK), "RLIMIT_MEMLOCK") != NULL,
	      "strerror(FGRAB_E_MEMLOCK): \"%s\"", fgrab_strerror(FGRAB_E_MEMLOCK));

	EXPECT(fgrab_open(card, &h), FGRAB_OK);
	if (!h || failures) {
		fprintf(stderr, "cannot go on without a handle\n");
		return 1;
	}

	/* Before a buffer is set. */
	memset(&counters, 0xff, sizeof(counters));
	EXPECT(fgrab_get_counters(h, &counters), FGRAB_OK);
	CHECK(counters.frames_delivered == 0 && counters.bytes_delivered == 0,
	      "counters before set_buffer are not zero");
	EXPECT(fgrab_get_counters(h, NULL), FGRAB_E_INVAL);
	EXPECT(fgrab_start(h), FGRAB_E_STATE);
	EXPECT(fgrab_stop(h), FGRAB_E_STATE);
	EXPECT(fgrab_wait_frame(h, 10, &info), FGRAB_E_STATE);
	EXPECT(fgrab_release_frame(h, 0), FGRAB_E_STATE);

	/* Bad buffers. */
	EXPECT(fgrab_set_buffer(h, NULL, total, FRAME_BYTES), FGRAB_E_INVAL);
	EXPECT(fgrab_set_buffer(h, (void *)buffer, total, 0), FGRAB_E_INVAL);
	EXPECT(fgrab_set_buffer(h, (void *)buffer, FRAME_BYTES - 1, FRAME_BYTES), FGRAB_E_INVAL);
	EXPECT(fgrab_set_buffer(h, (void *)(UINTPTR_MAX - 4095), 8192, 4096), FGRAB_E_INVAL);
	CHECK(strlen(fgrab_last_error(h)) > 0, "no message after a refused call");

	/* The real buffer: 5 frames and a 777-byte tail that is never written. */
	EXPECT(fgrab_set_buffer(h, (void *)buffer, total, FRAME_BYTES), FGRAB_OK);
	EXPECT(fgrab_set_buffer(h, (void *)buffer, total, FRAME_BYTES), FGRAB_E_STATE);
	EXPECT(fgrab_wait_frame(h, 0, &info), FGRAB_E_STATE); /* not started */
	EXPECT(fgrab_start(h), FGRAB_OK);
	EXPECT(fgrab_start(h), FGRAB_E_STATE);
	EXPECT(fgrab_wait_frame(h, 1000, NULL), FGRAB_E_INVAL);

	/* A zero timeout polls: while the card streams, polling finds frames. */
	started = now();
	do {
		rc = fgrab_wait_frame(h, 0, &info);
	} while (rc == FGRAB_E_TIMEOUT && now() - started < 5);
	CHECK(rc == FGRAB_OK, "polling with a zero timeout found no frame in 5 s: %d", rc);
	if (rc == FGRAB_OK) {
		check_frame(&info);
		EXPECT(fgrab_release_frame(h, info.index), FGRAB_OK);
	}

	/* Holding every frame: nothing more can come, the wait times out. */
	for (i = 0; i < FRAMES; i++) {
		EXPECT(fgrab_wait_frame(h, 5000, &held[i]), FGRAB_OK);
		check_frame(&held[i]);
		for (unsigned j = 0; j < i; j++)
			CHECK(held[j].index != held[i].index, "frame %u handed out twice",
			      held[i].index);
	}
	started = now();
	EXPECT(fgrab_wait_frame(h, 300, &info), FGRAB_E_TIMEOUT);
	CHECK(now() - started >= 0.29, "timed out after %.3f s instead of 0.3 s",
	      now() - started);

	/* Another thread's call while one waits is served: the release refills the waiter. */
	waiter.h = h;
	waiter.rc = 1;
	if (pthread_create(&thread, NULL, wait_in_thread, &waiter) == 0) {
		usleep(300 * 1000);
		EXPECT(fgrab_release_frame(h, held[0].index), FGRAB_OK);
		pthread_join(thread, NULL);
		CHECK(waiter.rc == FGRAB_OK, "the waiting thread got %d", waiter.rc);
		if (waiter.rc == FGRAB_OK) {
			check_frame(&waiter.info);
			held[0] = waiter.info;
		}
	}

	/* Releasing: each held frame once, nothing else. */
	EXPECT(fgrab_release_frame(h, FRAMES), FGRAB_E_INVAL);
	for (i = 0; i < FRAMES; i++)
		EXPECT(fgrab_release_frame(h, held[i].index), FGRAB_OK);
	EXPECT(fgrab_release_frame(h, held[0].index), FGRAB_E_INVAL);

	/* The stream still works. */
	for (i = 0; i < 50; i++) {
		EXPECT(fgrab_wait_frame(h, 5000, &info), FGRAB_OK);
		check_frame(&info);
		EXPECT(fgrab_release_frame(h, info.index), FGRAB_OK);
	}
	EXPECT(fgrab_get_counters(h, &counters), FGRAB_OK);
	CHECK(counters.frames_delivered == FRAMES + 52, "%llu frames delivered",
	      (unsigned long long)counters.frames_delivered);

	/* After a stop, frames already filled drain, then the wait is refused. */
	EXPECT(fgrab_stop(h), FGRAB_OK);
	EXPECT(fgrab_stop(h), FGRAB_E_STATE);
	for (i = 0; i <= FRAMES; i++) {
		rc = fgrab_wait_frame(h, 0, &info);
		if (rc != FGRAB_OK) {
			CHECK(rc == FGRAB_E_STATE, "wait after stop returned %d", rc);
			break;
		}
		check_frame(&info);
		EXPECT(fgrab_release_frame(h, info.index), FGRAB_OK);
	}
	CHECK(i <= FRAMES, "more frames after the stop than the buffer has");

	/* A restart after misuse streams again. */
	EXPECT(fgrab_start(h), FGRAB_OK);
	EXPECT(fgrab_wait_frame(h, 5000, &info), FGRAB_OK);
	check_frame(&info);
	EXPECT(fgrab_close(h), FGRAB_OK);

	for (i = 0; i < GUARD + 7; i++)
		if (raw[i] != GUARD_BYTE) {
			CHECK(0, "guard byte %u before the buffer overwritten", i);
			break;
		}
	for (i = 0; i < TAIL + GUARD; i++)
		if (buffer[(size_t)FRAME_BYTES * FRAMES + i] != GUARD_BYTE) {
			CHECK(0, "byte %u after the last frame overwritten", i);
			break;
		}
	free(raw);
	printf("legacy C API misuse: %u checks, %u failed\n", checks, failures);
	return failures ? 1 : 0;
}
