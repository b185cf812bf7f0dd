"""The emulated card's frame content (docs/hardware.md §9, "Frame content") in numpy.

Byte ``o`` of the frame with sequence number ``s`` in pixel format ``F`` is byte ``o % 8``
(little endian) of ``word(s ^ salt(F), o // 8)``, where ``word`` is the splitmix64
finalizer over the sequence number spread by the golden ratio and the word index, and
``salt(F)`` is the PFNC code shifted left by 32 (0 for Mono8). numpy's uint64 arithmetic
wraps like the Rust ``wrapping_*`` operations the emulator uses.
"""

import numpy as np

_SPREAD = 0x9E3779B97F4A7C15
_OFFSET = 0xD1B54A32D192ED03
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK = (1 << 64) - 1


def words(sequence, count):
    """Pattern words 0..count of frame ``sequence``, as uint64."""
    x = np.arange(count, dtype=np.uint64)
    x += np.uint64(_OFFSET)
    x ^= np.uint64((sequence * _SPREAD) & _MASK)
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


PFNC = {"Mono8": 0x01080001, "Mono16": 0x01100007, "BayerRG8": 0x01080009}
DTYPE = {"Mono8": np.uint8, "Mono16": np.dtype("<u2"), "BayerRG8": np.uint8}


def salt(pixel_format):
    """The sequence salt of a pixel format."""
    return 0 if pixel_format == "Mono8" else PFNC[pixel_format] << 32


def frame_bytes(sequence, nbytes, pixel_format="Mono8"):
    """The first ``nbytes`` bytes of frame ``sequence`` in ``pixel_format``."""
    salted = sequence ^ salt(pixel_format)
    return words(salted, (nbytes + 7) // 8).astype("<u8").view(np.uint8)[:nbytes]


def image(sequence, width, height, pixel_format):
    """The expected image of frame ``sequence``: shape (height, width), the format's dtype."""
    dtype = np.dtype(DTYPE[pixel_format])
    raw = frame_bytes(sequence, width * height * dtype.itemsize, pixel_format)
    return raw.view(dtype).reshape(height, width)


def first_mismatch(data, sequence, pixel_format="Mono8"):
    """Byte offset of the first byte of ``data`` (any buffer) that differs, or None."""
    got = np.frombuffer(data, dtype=np.uint8)
    diff = np.flatnonzero(got != frame_bytes(sequence, got.size, pixel_format))
    return int(diff[0]) if diff.size else None
