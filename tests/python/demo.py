"""A short Python consumer, as `cargo xtask demo` shows it (and the test run checks it).

Opens the first card, prints what it is, streams a second of Mono16 frames as numpy arrays
without a copy, and prints the frame rate, the drops, and a frame's statistics.
"""

import time

import numpy as np

import fgrab

print(f"fgrab {fgrab.__version__} for Python; cards: {', '.join(fgrab.cards())}")
with fgrab.open(0) as cam:
    f = cam.features
    print(f"{cam.path}: {f['DeviceVendorName']} {f['DeviceModelName']}, up to "
          f"{f['WidthMax']}x{f['HeightMax']}, formats {', '.join(f.entries('PixelFormat'))}")
    f["PixelFormat"], f["Width"], f["Height"] = "Mono16", 640, 480
    print(f"streaming {f['Width']}x{f['Height']} {f['PixelFormat']}, {f['PayloadSize']} bytes a frame")
    started = time.monotonic()
    frames, first, last = 0, None, None
    for frame in cam.stream(timeout=5.0):
        image = frame.array  # numpy (480, 640) uint16, a view of the card's bytes
        first = frame.sequence if first is None else first
        last, frames = frame.sequence, frames + 1
        if time.monotonic() - started >= 1.0:
            break
    elapsed = time.monotonic() - started
    print(f"frame {frame.sequence}: shape {image.shape} {image.dtype}, min {image.min()}, "
          f"max {image.max()}, mean {image.mean():.0f}")
    del frame, image
    print(f"{frames} frames in {elapsed:.2f} s ({frames / elapsed:.0f} frames/s, "
          f"{frames * cam.features['PayloadSize'] / elapsed / 1e6:.0f} MB/s), "
          f"{last - first + 1 - frames} dropped by the card")
    assert frames > 0
print("ok")
