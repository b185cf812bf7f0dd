/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The legacy API from several threads, as a machine-vision application uses it: an
 * acquisition thread waits for frames and hands them to a pool of workers, which check every
 * byte and release them in any order while holding several at once; the main thread stops
 * the stream, aborts a blocked wait, and closes the handle while another thread waits.
 *
 * Usage: fgrab-legacy-threads [frames] (default 2000). Exit status 0 when every check passed.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fgrab_legacy.h"
#include "pattern.h"

#define FRAMES 16
#define FRAME_BYTES 262147u /* odd: no frame after the first is aligned */
#define WORKERS 4
#define KEEP 2 /* frames each worker keeps: 8 held at once */
#define GUARD 4096
#define GUARD_BYTE 0x5a

static fgrab_handle *h;
static unsigned char *buffer;
static atomic_uint failures;
static atomic_uint held_now, held_most;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			atomic_fetch_add(&failures, 1);                   \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
		}                                                          \
	} while (0)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Frames from the acquisition thread to the workers. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct fgrab_frame_info items[FRAMES];
	unsigned head, count;
	int closed;
} queue = { .lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER };

static void queue_push(const struct fgrab_frame_info *info)
{
	pthread_mutex_lock(&queue.lock);
	queue.items[(queue.head + queue.count++) % FRAMES] = *info;
	pthread_cond_broadcast(&queue.changed);
	pthread_mutex_unlock(&queue.lock);
}

static int queue_pop(struct fgrab_frame_info *info)
{
	int got = 0;

	pthread_mutex_lock(&queue.lock);
	while (!queue.count && !queue.closed)
		pthread_cond_wait(&queue.changed, &queue.lock);
	if (queue.count) {
		*info = queue.items[queue.head];
		queue.head = (queue.head + 1) % FRAMES;
		queue.count--;
		got = 1;
	}
	pthread_mutex_unlock(&queue.lock);
	return got;
}

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

static void release(uint32_t index)
{
	int rc = fgrab_release_frame(h, index);

	CHECK(rc == FGRAB_OK, "release of frame %u: %s (%s)", index, fgrab_strerror(rc),
	      fgrab_last_error(h));
	atomic_fetch_sub(&held_now, 1);
}

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
	struct fgrab_frame_info kept[KEEP + 1], info;
	unsigned count = 0;

	while (queue_pop(&info)) {
		unsigned now_held, most, victim;

		check_frame(&info);
		kept[count++] = info;
		now_held = atomic_fetch_add(&held_now, 1) + 1;
		most = atomic_load(&held_most);
		while (now_held <= WORKERS * KEEP && now_held > most &&
		       !atomic_compare_exchange_weak(&held_most, &most, now_held))
			;
		if (count > KEEP) {
			/* Keep two: give one of the three back, chosen at random. */
			victim = rand_r(&seed) % count;
			release(kept[victim].index);
			kept[victim] = kept[--count];
		}
	}
	while (count)
		release(kept[--count].index);
	return NULL;
}

static atomic_ulong acquired;

static void *acquisition(void *arg)
{
	struct fgrab_frame_info info;
	int *stop_code = arg;

	for (;;) {
		int rc = fgrab_wait_frame(h, 5000, &info);

		if (rc != FGRAB_OK) {
			*stop_code = rc;
			return NULL;
		}
		queue_push(&info);
		atomic_fetch_add(&acquired, 1);
	}
}

struct waiter {
	int rc;
	double returned;
};

static void *wait_forever(void *arg)
{
	struct waiter *waiter = arg;
	struct fgrab_frame_info info;

	waiter->rc = fgrab_wait_frame(h, FGRAB_WAIT_FOREVER, &info);
	waiter->returned = now();
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned long target = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000;
	size_t total = (size_t)FRAME_BYTES * FRAMES;
	unsigned char *raw = malloc(total + 2 * GUARD + 3);
	struct fgrab_frame_info all[FRAMES];
	struct fgrab_counters counters;
	pthread_t workers[WORKERS], acquirer, waiter_thread;
	struct waiter waiter;
	double started, seconds, aborted_at, abort_ms;
	int stop_code = 0, rc;
	unsigned i;

	if (!raw)
		return 1;
	memset(raw, GUARD_BYTE, total + 2 * GUARD + 3);
	buffer = raw + GUARD + 3; /* not aligned to anything */
	if (fgrab_card_count() < 1) {
		fprintf(stderr, "no card\n");
		return 1;
	}
	rc = fgrab_open(0, &h);
	if (rc) {
		fprintf(stderr, "fgrab_open: %s\n", fgrab_last_error(NULL));
		return 1;
	}
	rc = fgrab_set_buffer(h, buffer, total, FRAME_BYTES);
	if (!rc)
		rc = fgrab_start(h);
	if (rc) {
		fprintf(stderr, "setup: %s\n", fgrab_last_error(h));
		return 1;
	}

	/* One thread acquires, four check and release, the main thread stops. */
	for (i = 0; i < WORKERS; i++)
		pthread_create(&workers[i], NULL, worker, (void *)(uintptr_t)i);
	started = now();
	pthread_create(&acquirer, NULL, acquisition, &stop_code);
	while (atomic_load(&acquired) < target && now() - started < 60)
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	CHECK(fgrab_stop(h) == FGRAB_OK, "stop from the main thread: %s", fgrab_last_error(h));
	pthread_join(acquirer, NULL);
	seconds = now() - started;
	CHECK(stop_code == FGRAB_E_STATE, "the acquisition thread ended with %d (%s)", stop_code,
	      fgrab_strerror(stop_code));
	pthread_mutex_lock(&queue.lock);
	queue.closed = 1;
	pthread_cond_broadcast(&queue.changed);
	pthread_mutex_unlock(&queue.lock);
	for (i = 0; i < WORKERS; i++)
		pthread_join(workers[i], NULL);
	CHECK(atomic_load(&acquired) >= target, "only %lu frames in 60 s",
	      atomic_load(&acquired));
	CHECK(atomic_load(&held_most) == WORKERS * KEEP, "at most %u frames held at once",
	      atomic_load(&held_most));
	CHECK(fgrab_get_counters(h, &counters) == FGRAB_OK, "counters");
	CHECK(counters.frames_failed == 0, "%llu frames failed",
	      (unsigned long long)counters.frames_failed);

	/* An abort from the main thread ends a wait blocked in another thread. */
	CHECK(fgrab_start(h) == FGRAB_OK, "restart: %s", fgrab_last_error(h));
	for (i = 0; i < FRAMES; i++) {
		rc = fgrab_wait_frame(h, 5000, &all[i]);
		CHECK(rc == FGRAB_OK, "holding frame %u: %s", i, fgrab_strerror(rc));
		if (rc == FGRAB_OK)
			check_frame(&all[i]);
	}
	waiter.rc = 1;
	pthread_create(&waiter_thread, NULL, wait_forever, &waiter);
	nanosleep(&(struct timespec){ .tv_nsec = 200000000 }, NULL);
	aborted_at = now();
	CHECK(fgrab_abort_wait(h) == FGRAB_OK, "abort: %s", fgrab_last_error(h));
	pthread_join(waiter_thread, NULL);
	CHECK(waiter.rc == FGRAB_E_ABORTED, "the aborted wait returned %d", waiter.rc);
	abort_ms = (waiter.returned - aborted_at) * 1e3;

	/* Closing from the main thread wakes a thread that waits, then frees the handle. */
	waiter.rc = 1;
	pthread_create(&waiter_thread, NULL, wait_forever, &waiter);
	nanosleep(&(struct timespec){ .tv_nsec = 200000000 }, NULL);
	rc = fgrab_close(h);
	CHECK(rc == FGRAB_OK, "close while a thread waits: %d (%s)", rc, fgrab_last_error(NULL));
	pthread_join(waiter_thread, NULL);
	CHECK(waiter.rc == FGRAB_E_STATE, "the wait interrupted by close returned %d",
	      waiter.rc);

	for (i = 0; i < GUARD + 3; i++)
		if (raw[i] != GUARD_BYTE) {
			CHECK(0, "guard byte %u before the buffer overwritten", i);
			break;
		}
	for (i = 0; i < GUARD; i++)
		if (buffer[total + i] != GUARD_BYTE) {
			CHECK(0, "guard byte %u after the last frame overwritten", i);
			break;
		}
	printf("legacy C threads: %lu frames of %u B verified by %d workers holding %u at once, "
	       "released in any order, in %.1f s; stop from the main thread ended the acquisition "
	       "thread; abort woke a blocked wait in %.2f ms; close woke a waiting thread; "
	       "guard bytes intact; %u failed checks\n",
	       atomic_load(&acquired), FRAME_BYTES, WORKERS, atomic_load(&held_most), seconds,
	       abort_ms, atomic_load(&failures));
	free(raw);
	return atomic_load(&failures) ? 1 : 0;
}
