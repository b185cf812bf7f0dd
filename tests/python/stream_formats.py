"""1,000 frames in each of two pixel formats, every byte checked with numpy.

Each frame's array must equal the pattern of its sequence number in the format set
(docs/hardware.md §9), with the shape (Height, Width) and the format's dtype. Sequence
numbers must increase; gaps are frames the card dropped while Python was checking (the
card produces frames at its own rate, as a camera does), counted and printed, never
mistaken for data.
"""

import time

import numpy as np

import fgrab
import _pattern

FRAMES = 1000
CASES = [("Mono8", 320, 240), ("Mono16", 256, 200)]

with fgrab.open(0, buffer_frames=8) as cam:
    for pixel_format, width, height in CASES:
        cam.features["PixelFormat"] = pixel_format
        cam.features["Width"] = width
        cam.features["Height"] = height
        payload = cam.features["PayloadSize"]
        assert payload == width * height * np.dtype(_pattern.DTYPE[pixel_format]).itemsize, payload
        previous = None
        gaps = 0
        started = time.monotonic()
        for n, frame in enumerate(cam.stream(frames=FRAMES, timeout=10.0)):
            array = frame.array
            assert array.shape == (height, width), array.shape
            assert array.dtype == _pattern.DTYPE[pixel_format], array.dtype
            assert not array.flags.writeable
            assert frame.pixel_format == pixel_format
            assert not frame.incomplete, frame
            expected = _pattern.image(frame.sequence, width, height, pixel_format)
            if not np.array_equal(array, expected):
                raw = memoryview(frame)
                offset = _pattern.first_mismatch(raw, frame.sequence, pixel_format)
                raise AssertionError(f"frame {frame.sequence} ({pixel_format}) differs at byte {offset}")
            if previous is not None:
                assert frame.sequence > previous, (previous, frame.sequence)
                gaps += frame.sequence - previous - 1
            previous = frame.sequence
        elapsed = time.monotonic() - started
        assert n + 1 == FRAMES, n
        assert not cam.streaming
        print(
            f"{pixel_format} {width}x{height}: {FRAMES} frames verified byte by byte in "
            f"{elapsed:.1f} s ({FRAMES / elapsed:.0f} frames/s checked), "
            f"{gaps} dropped by the card meanwhile"
        )
print("ok")
