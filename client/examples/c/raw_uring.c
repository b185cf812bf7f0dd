/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Using the driver from C with liburing and the uapi header alone: register a buffer,
 * ATTACH a non-aligned region of it, QUEUE every frame, START, reap frames (checking every
 * byte against the emulated camera's pattern) and queue them again, STOP, DETACH.
 *
 * usage: fgrab-raw-uring [frames] [/dev/fgrabN]
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fgrab.h"
#include "../../../legacy/examples/pattern.h"

#define FRAME_BYTES 65543u
#define FRAMES 16u
#define OFFSET 0x321u
#define CONTROL_TAG 0xc0c0c0c0ull
#define ATTACH_TAG 0xa77aull

static struct fgrab_frame_meta metas[FRAMES];

/* Prepares a URING_CMD with an 80-byte payload (the ring has 128-byte SQEs). */
static struct io_uring_sqe *command(struct io_uring *ring, int fd, uint32_t op,
				    const void *payload, size_t len, uint64_t tag)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
	sqe->cmd_op = op;
	memset(sqe->cmd, 0, FGRAB_CMD_PAYLOAD_BYTES);
	memcpy(sqe->cmd, payload, len);
	io_uring_sqe_set_data64(sqe, tag);
	return sqe;
}

static void queue(struct io_uring *ring, int fd, uint32_t frame)
{
	struct fgrab_queue_cmd cmd = { .frame = frame, .meta_addr = (uintptr_t)&metas[frame] };

	command(ring, fd, FGRAB_OP_QUEUE, &cmd, sizeof(cmd), frame);
}

/* Sends a control command and returns its result; frame completions are left alone. */
static int control(struct io_uring *ring, int fd, uint32_t op)
{
	struct fgrab_control_cmd cmd = { 0 };
	struct io_uring_cqe *cqe;

	command(ring, fd, op, &cmd, sizeof(cmd), CONTROL_TAG);
	io_uring_submit(ring);
	for (;;) {
		int ret = io_uring_wait_cqe(ring, &cqe);
		uint64_t tag;
		int res;

		if (ret)
			return ret;
		tag = io_uring_cqe_get_data64(cqe);
		res = cqe->res;
		io_uring_cqe_seen(ring, cqe);
		if (tag == CONTROL_TAG)
			return res;
	}
}

int main(int argc, char **argv)
{
	unsigned long want = argc > 1 ? strtoul(argv[1], NULL, 0) : 500;
	const char *path = argc > 2 ? argv[2] : "/dev/fgrab0";
	size_t len = 4u << 20;
	struct io_uring ring;
	struct iovec iov;
	unsigned long verified = 0;
	int fd, ret;
	uint8_t *buffer = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (buffer == MAP_FAILED)
		return 1;
	fd = open(path, O_RDWR);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	ret = io_uring_queue_init(64, &ring, IORING_SETUP_SQE128 | IORING_SETUP_CQE32);
	if (ret) {
		fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-ret));
		return 1;
	}
	iov.iov_base = buffer;
	iov.iov_len = len;
	ret = io_uring_register_buffers(&ring, &iov, 1);
	if (ret) {
		fprintf(stderr, "io_uring_register_buffers: %s\n", strerror(-ret));
		return 1;
	}

	struct fgrab_attach_cmd attach = {
		.addr = (uintptr_t)buffer + OFFSET,
		.len = (uint64_t)FRAME_BYTES * FRAMES,
		.frame_stride = FRAME_BYTES,
		.frame_bytes = FRAME_BYTES,
		.frame_count = FRAMES,
	};
	struct io_uring_sqe *sqe = command(&ring, fd, FGRAB_OP_ATTACH, &attach, sizeof(attach), ATTACH_TAG);
	sqe->uring_cmd_flags = IORING_URING_CMD_FIXED;
	sqe->buf_index = 0;
	for (uint32_t frame = 0; frame < FRAMES; frame++)
		queue(&ring, fd, frame);
	ret = control(&ring, fd, FGRAB_OP_START);
	if (ret) {
		fprintf(stderr, "START: %s\n", strerror(-ret));
		return 1;
	}
	while (verified < want) {
		struct io_uring_cqe *cqe;
		uint64_t tag;

		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret < 0) {
			fprintf(stderr, "io_uring_submit_and_wait: %s\n", strerror(-ret));
			return 1;
		}
		while (io_uring_peek_cqe(&ring, &cqe) == 0) {
			tag = io_uring_cqe_get_data64(cqe);
			int res = cqe->res;
			uint64_t sequence = cqe->big_cqe[0];

			io_uring_cqe_seen(&ring, cqe);
			if (tag == ATTACH_TAG) {
				fprintf(stderr, "ATTACH ended early: %s\n", strerror(-res));
				return 1;
			}
			if (tag >= FRAMES)
				continue;
			if (res != (int)FRAME_BYTES || metas[tag].sequence != sequence) {
				fprintf(stderr, "frame %llu: res %d\n", (unsigned long long)tag, res);
				return 1;
			}
			long bad = fgrab_pattern_check(buffer + OFFSET + tag * FRAME_BYTES, FRAME_BYTES, sequence);
			if (bad >= 0) {
				fprintf(stderr, "frame %llu (sequence %llu): byte %ld differs\n",
					(unsigned long long)tag, (unsigned long long)sequence, bad);
				return 1;
			}
			verified++;
			queue(&ring, fd, (uint32_t)tag);
		}
	}
	ret = control(&ring, fd, FGRAB_OP_STOP);
	if (!ret)
		ret = control(&ring, fd, FGRAB_OP_DETACH);
	if (ret) {
		fprintf(stderr, "STOP/DETACH: %s\n", strerror(-ret));
		return 1;
	}
	/* The attach command completes once the region has ended. */
	for (;;) {
		struct io_uring_cqe *cqe;

		if (io_uring_wait_cqe(&ring, &cqe))
			return 1;
		uint64_t tag = io_uring_cqe_get_data64(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&ring, cqe);
		if (tag == ATTACH_TAG) {
			if (res) {
				fprintf(stderr, "ATTACH ended with %s\n", strerror(-res));
				return 1;
			}
			break;
		}
	}
	io_uring_queue_exit(&ring);
	printf("C with liburing: %lu frames of %u B verified byte by byte through %s\n", verified,
	       FRAME_BYTES, path);
	return 0;
}
