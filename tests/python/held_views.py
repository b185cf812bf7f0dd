"""Views held across re-queues keep their bytes; released frames fail loudly.

A numpy view of a frame keeps that frame away from the card until the view is gone: the
card goes on filling the other frames of the buffer, and the held views still show the
frames they were made from (the bug class of Harvesters #450/#452 cannot happen).
"""

import gc

import numpy as np

import fgrab
import _pattern

WIDTH, HEIGHT = 256, 64

with fgrab.open(0, buffer_frames=4) as cam:
    cam.features["PixelFormat"] = "Mono8"
    cam.features["Width"] = WIDTH
    cam.features["Height"] = HEIGHT

    # Two views outlive their frames' objects and the `with` blocks that released them.
    held = []
    for _ in range(2):
        with cam.fetch(timeout=10.0) as frame:
            held.append((frame.sequence, frame.array))
        assert frame.released
        try:
            frame.array
        except fgrab.FrameReleased as error:
            print(f"new view of a released frame refused: {error}")
        else:
            raise AssertionError("a released frame gave a new view")
    del frame
    gc.collect()

    # The card goes on with the two other frames of the buffer, many times over.
    seen = 0
    for frame in cam.stream(frames=200, timeout=10.0):
        assert np.array_equal(frame.array, _pattern.image(frame.sequence, WIDTH, HEIGHT, "Mono8"))
        seen += 1
    for sequence, view in held:
        expected = _pattern.image(sequence, WIDTH, HEIGHT, "Mono8")
        assert np.array_equal(view, expected), f"held view of frame {sequence} was overwritten"
    print(f"2 views held across {seen} frames re-queued around them: intact")

    # The views are the only thing keeping the frames: dropping them returns the frames,
    # and the stream has its four frames again.
    del held, view
    gc.collect()
    frames = [cam.fetch(timeout=10.0) for _ in range(3)]
    assert len({f.index for f in frames}) == 3
    del frames

    # Frames are read-only; a writable view is refused.
    with cam.fetch(timeout=10.0) as frame:
        try:
            memoryview(frame).cast("B")[0] = 0
        except TypeError:
            pass
        else:
            raise AssertionError("a frame's memory was writable")
    cam.stop()

    # A view held across a format change and past close(): the old region ends under it
    # (the card is free at once), and its bytes stay those of its frame.
    with cam.fetch(timeout=10.0) as frame:
        kept_sequence, kept = frame.sequence, frame.array
    cam.stop()
    cam.features["Width"] = WIDTH // 2
    with cam.fetch(timeout=10.0) as frame:
        assert frame.array.shape == (HEIGHT, WIDTH // 2)
    del frame
assert cam.streaming is False
other = fgrab.open(0, buffer_frames=2)  # the card is free: another stream attaches
with other.fetch(timeout=10.0) as frame:
    assert frame.array.shape == (HEIGHT, WIDTH // 2)
del frame
other.close()
assert np.array_equal(kept, _pattern.image(kept_sequence, WIDTH, HEIGHT, "Mono8"))
print("a view kept across a format change and close() still holds its frame")
print("ok")
