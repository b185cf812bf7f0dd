/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * fgrab legacy API: the frame grabber interface applications have used for years, kept
 * unchanged on top of the zero-copy io_uring driver (library: libfgrab_legacy.so / .a).
 *
 * The application allocates one buffer (any alignment) and gives it to fgrab_set_buffer;
 * frames of frame_bytes are packed back to back in it and filled cyclically. A frame
 * returned by fgrab_wait_frame belongs to the application until fgrab_release_frame.
 *
 * Every function returns FGRAB_OK (0) or a negative FGRAB_E_* code; fgrab_last_error()
 * then describes what went wrong. No function unwinds or aborts on bad input.
 *
 * The buffer must stay allocated, and must not be used for anything else, until
 * fgrab_close() returns FGRAB_OK; if fgrab_close() fails with FGRAB_E_IO the card may still
 * write into it, and it must never be freed.
 *
 * A handle may be used from any thread, but by one call at a time: a call made while
 * another call runs on the same handle returns FGRAB_E_STATE and changes nothing.
 * fgrab_close() must not overlap any other call on its handle, and the handle must not be
 * used after it.
 */
#ifndef FGRAB_LEGACY_H
#define FGRAB_LEGACY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FGRAB_OK 0
#define FGRAB_E_INVAL (-1)    /* a null pointer, a zero or too large size, a bad index */
#define FGRAB_E_NODEV (-2)    /* no such card, or it went away */
#define FGRAB_E_BUSY (-3)     /* another process streams from the card */
#define FGRAB_E_TIMEOUT (-4)  /* no frame within the timeout */
#define FGRAB_E_STATE (-5)    /* call not allowed now (no buffer, already started, ...) */
#define FGRAB_E_IO (-6)       /* the driver or io_uring failed; see fgrab_last_error() */
#define FGRAB_E_NOMEM (-7)    /* out of memory */
#define FGRAB_E_INTERNAL (-8) /* a bug in the library, caught; afterwards only fgrab_close works */
/*
 * fgrab_set_buffer: the buffer would take the user's locked memory past RLIMIT_MEMLOCK
 * (io_uring charges the pinned buffer, in whole pages, to one account shared by all of the
 * user's processes). fgrab_last_error() names the bytes needed, the limit, the shortfall
 * and how to raise the limit (ulimit -l, limits.d, systemd LimitMEMLOCK=). Added after the
 * codes above: callers that test for FGRAB_OK or a negative code are unaffected.
 */
#define FGRAB_E_MEMLOCK (-9)

/* timeout of fgrab_wait_frame: wait as long as it takes */
#define FGRAB_WAIT_FOREVER UINT32_MAX

/* flags of struct fgrab_frame_info */
#define FGRAB_FRAME_INCOMPLETE (1u << 1) /* bytes < frame_bytes */

typedef struct fgrab_handle fgrab_handle;

struct fgrab_frame_info {
	uint32_t index;        /* frame index in the buffer (offset index * frame_bytes) */
	uint32_t flags;        /* FGRAB_FRAME_* */
	uint64_t sequence;     /* frame number since fgrab_start; gaps are dropped frames */
	uint64_t timestamp_ns; /* end of frame, CLOCK_MONOTONIC */
	uint32_t bytes;        /* bytes written */
	uint32_t reserved;
	const void *data;      /* the frame's first byte in the application's buffer */
};

struct fgrab_counters {
	uint64_t frames_delivered; /* handed to the application */
	uint64_t frames_dropped;   /* dropped by the card (sequence gaps) */
	uint64_t frames_failed;    /* card errors, re-queued automatically */
	uint64_t bytes_delivered;
};

/* Opens card N (/dev/fgrabN). On failure *out is NULL; fgrab_last_error(NULL) says why. */
int fgrab_open(int card, fgrab_handle **out);
/* Stops, gives the buffer back (the card no longer writes it afterwards), frees @h. */
int fgrab_close(fgrab_handle *h);
/*
 * Uses @buffer (not necessarily aligned) for total_bytes / frame_bytes frames packed back to
 * back, at most as many as the card supports (4095 for current cards); bytes after the last
 * frame are never written. Once per handle. FGRAB_E_MEMLOCK if the buffer does not fit the
 * locked-memory limit (an unprivileged caller's RLIMIT_MEMLOCK, 8 MiB by default).
 */
int fgrab_set_buffer(fgrab_handle *h, void *buffer, size_t total_bytes, uint32_t frame_bytes);
int fgrab_start(fgrab_handle *h);
int fgrab_stop(fgrab_handle *h);
/*
 * Waits up to timeout_ms (0: only look; FGRAB_WAIT_FOREVER: no limit) for the next frame;
 * FGRAB_E_TIMEOUT if none came. The frame is the application's until fgrab_release_frame.
 * After fgrab_stop, frames filled before the stop are still returned, then FGRAB_E_STATE;
 * FGRAB_E_NODEV once the card went away.
 */
int fgrab_wait_frame(fgrab_handle *h, uint32_t timeout_ms, struct fgrab_frame_info *out);
/* Gives frame @index back to the card, at once; FGRAB_E_INVAL if it is not held. */
int fgrab_release_frame(fgrab_handle *h, uint32_t index);
/* Library counters since fgrab_set_buffer (zeros before it). */
int fgrab_get_counters(fgrab_handle *h, struct fgrab_counters *out);
/* A fixed description of an FGRAB_* code. */
const char *fgrab_strerror(int code);
/*
 * What went wrong in the last failed call on @h (valid until the next call on @h), or in the
 * last failed fgrab_open on this thread when @h is NULL.
 */
const char *fgrab_last_error(const fgrab_handle *h);

#ifdef __cplusplus
}
#endif

#endif /* FGRAB_LEGACY_H */
