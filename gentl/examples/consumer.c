/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * A GenTL consumer written against GenTL.h alone: dlopen()s a producer, walks
 * System -> Interface -> Device and prints what it finds; with --frames N it streams N
 * frames from the first device into 8 buffers it announces (at odd addresses), checks
 * the FRAMEID sequence, IS_INCOMPLETE and SIZE_FILLED, and, with --pattern, the emulated
 * card's test pattern of each frame in its pixel format (docs/hardware.md, "Frame
 * content": the pattern of FRAMEID XOR salt(PIXELFORMAT)).
 *
 * The producer fills buffers without copying (the card writes each frame into the announced
 * buffer itself): the consumer checks that the producer copied nothing (STREAM_INFO_CUSTOM_ID,
 * the producer's copy count) and, with --sysfs DIR (the card's /sys/class/misc/fgrabN), that
 * the card holds one region of one PayloadSize frame per announced buffer while streaming.
 * With --revoke it revokes one delivered buffer halfway while the others stream, checks that
 * the card then holds one region fewer, announces a new buffer at another odd address while
 * acquisition runs and queues it. After the stream it checks that a buffer one byte short of
 * PayloadSize makes DSStartAcquisition fail with GC_ERR_BUFFER_TOO_SMALL. With
 * --close-streaming it closes the data stream while the card streams instead (no stop, no
 * revoke), checks that no region is left and frees the buffers at once.
 *
 * --width, --height and --pixel-format set the camera's image format first, by writing its
 * feature registers through the remote device port (GCWritePort at the addresses of the
 * card's XML, docs/hardware.md §3.8: no GenApi here); after DSStartAcquisition it executes
 * AcquisitionStart the same way, as GenICam consumers do (the producer routes that write
 * through the stream's file, which owns the card while it streams).
 *
 *   consumer PRODUCER.cti [--frames N] [--pattern] [--width W] [--height H]
 *            [--pixel-format Mono8|Mono16|BayerRG8] [--sysfs DIR] [--revoke]
 *            [--close-streaming]
 * Exit status 0 when every check passed.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "GenTL.h"
#ifdef FGRAB_CONSUMER_PATTERN
#include "pattern.h"
#endif

#define BUFFERS 8

/* Feature registers of the card's XML (docs/hardware.md §3.8). */
#define REG_WIDTH 0x100
#define REG_HEIGHT 0x104
#define REG_PIXEL_FORMAT 0x110
#define REG_PAYLOAD_SIZE 0x114
#define REG_ACQUISITION_START 0x120
#define REG_ACQUISITION_STOP 0x124

static const struct {
	const char *name;
	uint32_t pfnc;
} formats[] = {
	{ "Mono8", 0x01080001 },
	{ "Mono16", 0x01100007 },
	{ "BayerRG8", 0x01080009 },
};

/* The pattern's salt of a PFNC pixel format: 0 for Mono8, else the code << 32. */
static inline uint64_t pattern_salt(uint64_t pfnc)
{
	return pfnc == 0x01080001 ? 0 : pfnc << 32;
}

static void *library;

static void *symbol(const char *name)
{
	void *address = dlsym(library, name);

	if (!address) {
		fprintf(stderr, "missing %s in the producer\n", name);
		exit(1);
	}
	return address;
}

#define BIND(name) P##name name##_ = (P##name)symbol(#name)

static PGCGetLastError last_error;

static int check(GC_ERROR status, const char *what)
{
	char text[512];
	size_t size = sizeof(text);
	GC_ERROR code;

	if (status == GC_ERR_SUCCESS)
		return 0;
	if (last_error(&code, text, &size) != GC_ERR_SUCCESS)
		strcpy(text, "(no message)");
	fprintf(stderr, "%s: %d: %s\n", what, status, text);
	return 1;
}

/* An unsigned attribute of the card's sysfs directory @dir; -1 if unreadable. */
static long long sysfs_value(const char *dir, const char *name)
{
	char path[512];
	long long value = -1;
	FILE *file;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	file = fopen(path, "r");
	if (!file)
		return -1;
	if (fscanf(file, "%lld", &value) != 1)
		value = -1;
	fclose(file);
	return value;
}

/* The card's state (sysfs) is idle: no region attached. */
static int sysfs_idle(const char *dir)
{
	char path[512], state[32] = "";
	FILE *file;

	snprintf(path, sizeof(path), "%s/state", dir);
	file = fopen(path, "r");
	if (!file)
		return 0;
	if (!fgets(state, sizeof(state), file))
		state[0] = 0;
	fclose(file);
	return !strcmp(state, "idle\n") || !strcmp(state, "idle");
}

/* The card holds @regions regions of one @payload-byte frame each (sums over regions). */
static int check_regions(const char *dir, long long regions, size_t payload)
{
	long long count, bytes;

	if (!dir)
		return 0;
	count = sysfs_value(dir, "frame_count");
	bytes = sysfs_value(dir, "frame_bytes");
	if (count != regions || bytes != (long long)payload) {
		fprintf(stderr,
			"the card holds %lld frames of %lld bytes, expected one region of %zu "
			"bytes per announced buffer (%lld)\n",
			count, bytes, payload, regions);
		return 1;
	}
	printf("card: %lld regions of one %lld-byte frame, one per announced buffer\n", count,
	       bytes);
	return 0;
}

#define CHECK(call) \
	do { \
		if (check((call), #call)) \
			return 1; \
	} while (0)

static GC_ERROR write_register(PGCWritePort write, PORT_HANDLE port, uint64_t address,
			       uint32_t value)
{
	size_t size = sizeof(value);

	return write(port, address, &value, &size); /* little endian, like the card */
}

static GC_ERROR read_register(PGCReadPort read, PORT_HANDLE port, uint64_t address,
			      uint32_t *value)
{
	size_t size = sizeof(*value);

	return read(port, address, value, &size);
}

/* Writes @value (0: leave it) and checks the camera took it. */
static int set_register(PGCWritePort write, PGCReadPort read, PORT_HANDLE port,
			uint64_t address, uint32_t value)
{
	uint32_t back;

	if (!value)
		return 0;
	if (check(write_register(write, port, address, value), "GCWritePort") ||
	    check(read_register(read, port, address, &back), "GCReadPort"))
		return 1;
	if (back != value) {
		fprintf(stderr, "register 0x%llx: wrote %u, the camera took %u\n",
			(unsigned long long)address, value, back);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long frames = 0;
	int verify_pattern = 0;
	uint32_t width = 0, height = 0, pixel_format = 0;
	const char *sysfs = NULL;
	int revoke = 0, close_streaming = 0;

	if (argc < 2) {
		fprintf(stderr,
			"usage: %s PRODUCER.cti [--frames N] [--pattern] [--width W] "
			"[--height H] [--pixel-format Mono8|Mono16|BayerRG8] [--sysfs DIR] "
			"[--revoke] [--close-streaming]\n",
			argv[0]);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--frames") && i + 1 < argc)
			frames = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--pattern"))
			verify_pattern = 1;
		else if (!strcmp(argv[i], "--sysfs") && i + 1 < argc)
			sysfs = argv[++i];
		else if (!strcmp(argv[i], "--revoke"))
			revoke = 1;
		else if (!strcmp(argv[i], "--close-streaming"))
			close_streaming = 1;
		else if (!strcmp(argv[i], "--width") && i + 1 < argc)
			width = (uint32_t)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--height") && i + 1 < argc)
			height = (uint32_t)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--pixel-format") && i + 1 < argc) {
			const char *name = argv[++i];

			for (size_t f = 0; f < sizeof(formats) / sizeof(formats[0]); f++)
				if (!strcmp(name, formats[f].name))
					pixel_format = formats[f].pfnc;
			if (!pixel_format) {
				fprintf(stderr, "unknown pixel format %s\n", name);
				return 2;
			}
		} else {
			fprintf(stderr, "unknown argument %s\n", argv[i]);
			return 2;
		}
	}
	library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!library) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 1;
	}
	last_error = (PGCGetLastError)symbol("GCGetLastError");
	BIND(GCInitLib);
	BIND(GCCloseLib);
	BIND(TLOpen);
	BIND(TLClose);
	BIND(TLGetInfo);
	BIND(TLUpdateInterfaceList);
	BIND(TLGetNumInterfaces);
	BIND(TLGetInterfaceID);
	BIND(TLOpenInterface);
	BIND(IFUpdateDeviceList);
	BIND(IFGetNumDevices);
	BIND(IFGetDeviceID);
	BIND(IFGetDeviceInfo);
	BIND(IFOpenDevice);
	BIND(IFClose);
	BIND(DevOpenDataStream);
	BIND(DevGetDataStreamID);
	BIND(DevClose);
	BIND(DSGetInfo);
	BIND(DSAnnounceBuffer);
	BIND(DSQueueBuffer);
	BIND(DSStartAcquisition);
	BIND(DSStopAcquisition);
	BIND(DSFlushQueue);
	BIND(DSRevokeBuffer);
	BIND(DSGetBufferInfo);
	BIND(DSClose);
	BIND(GCRegisterEvent);
	BIND(GCUnregisterEvent);
	BIND(EventGetData);
	BIND(EventKill);
	BIND(DevGetPort);
	BIND(GCReadPort);
	BIND(GCWritePort);

	TL_HANDLE system;
	IF_HANDLE interface;
	char text[256];
	size_t size = sizeof(text);
	INFO_DATATYPE type;
	uint32_t count;
	bool8_t changed;

	/* Before GCInitLib every call is refused. */
	if (TLOpen_(&system) != GC_ERR_NOT_INITIALIZED) {
		fprintf(stderr, "TLOpen before GCInitLib was not refused\n");
		return 1;
	}
	CHECK(GCInitLib_());
	CHECK(TLOpen_(&system));
	CHECK(TLGetInfo_(system, TL_INFO_VENDOR, &type, text, &size));
	printf("producer: %s (type %d)\n", text, type);
	/* Too small a buffer says how much is needed. */
	size = 2;
	if (TLGetInfo_(system, TL_INFO_MODEL, &type, text, &size) != GC_ERR_BUFFER_TOO_SMALL ||
	    size <= 2) {
		fprintf(stderr, "TL_INFO_MODEL into 2 bytes was not BUFFER_TOO_SMALL\n");
		return 1;
	}
	/* A foreign handle is refused, not followed. */
	if (TLGetNumInterfaces_((TL_HANDLE)&count, &count) != GC_ERR_INVALID_HANDLE) {
		fprintf(stderr, "a foreign TL handle was accepted\n");
		return 1;
	}
	CHECK(TLUpdateInterfaceList_(system, &changed, 1000));
	CHECK(TLGetNumInterfaces_(system, &count));
	printf("interfaces: %u\n", count);
	if (count < 1)
		return 1;
	size = sizeof(text);
	CHECK(TLGetInterfaceID_(system, 0, text, &size));
	CHECK(TLOpenInterface_(system, text, &interface));
	CHECK(IFUpdateDeviceList_(interface, &changed, 1000));
	CHECK(IFGetNumDevices_(interface, &count));
	printf("devices on %s: %u\n", text, count);
	for (uint32_t i = 0; i < count; i++) {
		char id[128], name[256];
		size_t id_size = sizeof(id), name_size = sizeof(name);

		CHECK(IFGetDeviceID_(interface, i, id, &id_size));
		CHECK(IFGetDeviceInfo_(interface, id, DEVICE_INFO_DISPLAYNAME, &type, name,
				       &name_size));
		printf("  %s: %s\n", id, name);
	}

	if (frames > 0) {
		DEV_HANDLE device;
		PORT_HANDLE remote;
		uint32_t camera_payload;
		DS_HANDLE stream;
		EVENT_HANDLE event;
		BUFFER_HANDLE buffers[BUFFERS];
		unsigned char *memory[BUFFERS];
		char id[128];
		size_t payload, id_size = sizeof(id);
		uint64_t last_id = 0, copies;
		unsigned long gaps = 0, incomplete = 0;
		int revoked = -1; /* the buffer revoked while streaming, replaced by a new one */
		long long regions = BUFFERS;

		if (count == 0) {
			fprintf(stderr, "no device to stream from\n");
			return 1;
		}
		CHECK(IFGetDeviceID_(interface, 0, id, &id_size));
		CHECK(IFOpenDevice_(interface, id, DEVICE_ACCESS_EXCLUSIVE, &device));
		CHECK(DevGetPort_(device, &remote));
		/* The image format, while nothing streams (the device's file writes). */
		if (set_register(GCWritePort_, GCReadPort_, remote, REG_WIDTH, width) ||
		    set_register(GCWritePort_, GCReadPort_, remote, REG_HEIGHT, height) ||
		    set_register(GCWritePort_, GCReadPort_, remote, REG_PIXEL_FORMAT,
				 pixel_format))
			return 1;
		CHECK(read_register(GCReadPort_, remote, REG_WIDTH, &width));
		CHECK(read_register(GCReadPort_, remote, REG_HEIGHT, &height));
		CHECK(read_register(GCReadPort_, remote, REG_PIXEL_FORMAT, &pixel_format));
		CHECK(read_register(GCReadPort_, remote, REG_PAYLOAD_SIZE, &camera_payload));
		printf("image: %ux%u, pixel format 0x%08x, PayloadSize %u\n", width, height,
		       pixel_format, camera_payload);
		id_size = sizeof(id);
		CHECK(DevGetDataStreamID_(device, 0, id, &id_size));
		CHECK(DevOpenDataStream_(device, id, &stream));
		size = sizeof(payload);
		CHECK(DSGetInfo_(stream, STREAM_INFO_PAYLOAD_SIZE, &type, &payload, &size));
		printf("payload: %zu bytes\n", payload);
		if (payload != camera_payload) {
			fprintf(stderr, "the stream's PAYLOAD_SIZE %zu is not the camera's %u\n",
				payload, camera_payload);
			return 1;
		}
		for (int i = 0; i < BUFFERS; i++) {
			memory[i] = malloc(payload + 16);
			if (!memory[i])
				return 1;
			/* Odd addresses: the producer needs no alignment. */
			CHECK(DSAnnounceBuffer_(stream, memory[i] + 1 + i, payload, memory[i],
						&buffers[i]));
			CHECK(DSQueueBuffer_(stream, buffers[i]));
		}
		CHECK(GCRegisterEvent_(stream, EVENT_NEW_BUFFER, &event));
		CHECK(DSStartAcquisition_(stream, ACQ_START_FLAGS_DEFAULT, GENTL_INFINITE));
		/* While the stream owns the card: the producer writes through the stream's file. */
		CHECK(write_register(GCWritePort_, remote, REG_ACQUISITION_START, 1));
		if (check_regions(sysfs, regions, payload))
			return 1;
		/* The image format is fixed while streaming: refused, and saying so. */
		if (GCWritePort_(remote, REG_WIDTH, &width, &(size_t){ sizeof(width) }) ==
		    GC_ERR_SUCCESS) {
			fprintf(stderr, "a Width write while streaming was accepted\n");
			return 1;
		}
		for (unsigned long n = 0; n < frames; n++) {
			EVENT_NEW_BUFFER_DATA data;
			size_t data_size = sizeof(data), filled, value_size;
			uint64_t frame_id, format;
			bool8_t partial;
			void *base;

			CHECK(EventGetData_(event, &data, &data_size, 5000));
			value_size = sizeof(frame_id);
			CHECK(DSGetBufferInfo_(stream, data.BufferHandle, BUFFER_INFO_FRAMEID, &type,
					       &frame_id, &value_size));
			value_size = sizeof(filled);
			CHECK(DSGetBufferInfo_(stream, data.BufferHandle, BUFFER_INFO_SIZE_FILLED,
					       &type, &filled, &value_size));
			value_size = sizeof(partial);
			CHECK(DSGetBufferInfo_(stream, data.BufferHandle, BUFFER_INFO_IS_INCOMPLETE,
					       &type, &partial, &value_size));
			value_size = sizeof(base);
			CHECK(DSGetBufferInfo_(stream, data.BufferHandle, BUFFER_INFO_BASE, &type,
					       &base, &value_size));
			value_size = sizeof(format);
			CHECK(DSGetBufferInfo_(stream, data.BufferHandle, BUFFER_INFO_PIXELFORMAT,
					       &type, &format, &value_size));
			if (format != pixel_format) {
				fprintf(stderr, "buffer PIXELFORMAT 0x%llx, the camera's 0x%x\n",
					(unsigned long long)format, pixel_format);
				return 1;
			}
			if (n > 0 && frame_id <= last_id) {
				fprintf(stderr, "FRAMEID went from %llu to %llu\n",
					(unsigned long long)last_id, (unsigned long long)frame_id);
				return 1;
			}
			if (n > 0 && frame_id != last_id + 1)
				gaps += frame_id - last_id - 1;
			last_id = frame_id;
			if (partial)
				incomplete++;
			else if (filled != payload) {
				fprintf(stderr, "complete frame of %zu bytes, payload %zu\n", filled,
					payload);
				return 1;
			}
#ifdef FGRAB_CONSUMER_PATTERN
			if (verify_pattern && !partial) {
				long bad = fgrab_pattern_check(base, filled,
							       frame_id ^ pattern_salt(format));

				if (bad >= 0) {
					fprintf(stderr, "frame %llu differs at byte %ld\n",
						(unsigned long long)frame_id, bad);
					return 1;
				}
			}
#else
			(void)verify_pattern;
#endif
			if (revoke && revoked < 0 && n == frames / 2) {
				/* Revoke this delivered buffer while the others stream. */
				void *revoked_base, *private;

				for (revoked = 0; buffers[revoked] != data.BufferHandle; revoked++)
					;
				CHECK(DSRevokeBuffer_(stream, data.BufferHandle, &revoked_base,
						      &private));
				if (private != memory[revoked] ||
				    revoked_base != memory[revoked] + 1 + revoked) {
					fprintf(stderr, "revoke gave back the wrong memory\n");
					return 1;
				}
				/* The card let go of it: its memory may go now. */
				free(private);
				if (check_regions(sysfs, --regions, payload))
					return 1;
				/* A new buffer joins while acquisition runs, at another odd address. */
				memory[revoked] = malloc(payload + 16);
				if (!memory[revoked])
					return 1;
				CHECK(DSAnnounceBuffer_(stream, memory[revoked] + 3, payload,
							memory[revoked], &buffers[revoked]));
				CHECK(DSQueueBuffer_(stream, buffers[revoked]));
				if (check_regions(sysfs, ++regions, payload))
					return 1;
				printf("revoked buffer %d while streaming, announced a new one\n",
				       revoked);
				continue;
			}
			CHECK(DSQueueBuffer_(stream, data.BufferHandle));
		}
		size = sizeof(copies);
		CHECK(DSGetInfo_(stream, STREAM_INFO_CUSTOM_ID, &type, &copies, &size));
		printf("frames: %lu, FRAMEID gaps (drops): %lu, incomplete: %lu, copied: %llu\n",
		       frames, gaps, incomplete, (unsigned long long)copies);
		if (copies != 0) {
			fprintf(stderr, "the producer copied %llu frames\n",
				(unsigned long long)copies);
			return 1;
		}
		if (close_streaming) {
			/* DSClose while the card streams into the queued buffers: the producer
			 * stops the card and detaches every buffer before DSClose returns. */
			CHECK(DSClose_(stream));
			if (sysfs && !sysfs_idle(sysfs)) {
				fprintf(stderr, "regions left attached after DSClose\n");
				return 1;
			}
			for (int i = 0; i < BUFFERS; i++)
				free(memory[i]);
			printf("closed the stream while streaming\n");
			goto closed;
		}
		/* Harvesters' order: AcquisitionStop, kill, stop, flush, revoke, unregister,
		 * close. */
		CHECK(write_register(GCWritePort_, remote, REG_ACQUISITION_STOP, 1));
		CHECK(EventKill_(event));
		CHECK(DSStopAcquisition_(stream, ACQ_STOP_FLAGS_KILL));
		CHECK(DSFlushQueue_(stream, ACQ_QUEUE_ALL_DISCARD));
		{
			/* A buffer one byte short of PayloadSize cannot take the card's frames. */
			BUFFER_HANDLE small;
			unsigned char *short_memory = malloc(payload);
			GC_ERROR status;

			if (!short_memory)
				return 1;
			CHECK(DSAnnounceBuffer_(stream, short_memory + 1, payload - 1, short_memory,
						&small));
			CHECK(DSQueueBuffer_(stream, small));
			status = DSStartAcquisition_(stream, ACQ_START_FLAGS_DEFAULT, GENTL_INFINITE);
			if (status != GC_ERR_BUFFER_TOO_SMALL) {
				fprintf(stderr, "a buffer below PayloadSize: DSStartAcquisition gave %d, "
					"not GC_ERR_BUFFER_TOO_SMALL\n", status);
				return 1;
			}
			CHECK(DSFlushQueue_(stream, ACQ_QUEUE_ALL_DISCARD));
			CHECK(DSRevokeBuffer_(stream, small, NULL, NULL));
			free(short_memory);
			printf("a buffer below PayloadSize: GC_ERR_BUFFER_TOO_SMALL\n");
		}
		for (int i = 0; i < BUFFERS; i++) {
			void *base, *private;

			CHECK(DSRevokeBuffer_(stream, buffers[i], &base, &private));
			if (private != memory[i]) {
				fprintf(stderr, "revoke gave back the wrong pPrivate\n");
				return 1;
			}
			free(private);
		}
		CHECK(GCUnregisterEvent_(stream, EVENT_NEW_BUFFER));
		CHECK(DSClose_(stream));
closed:
		/* The stream gave the card back: the device's file writes the format again. */
		if (set_register(GCWritePort_, GCReadPort_, remote, REG_WIDTH, width))
			return 1;
		CHECK(DevClose_(device));
	}
	CHECK(IFClose_(interface));
	CHECK(TLClose_(system));
	CHECK(GCCloseLib_());
	printf("ok\n");
	return 0;
}
