"""A batched stream from Python: ``fgrab.open(buffer_frames=16, batch_frames=4)``.

Frames go back to the card four at a time (one ``QUEUE_BATCH``), so the driver counts
about one command and one completion per four frames; every frame's pixels are checked,
frames are held across fetches and released out of order, a stop and a restart keep the
groups whole, and batches the driver cannot take are refused before anything is attached.
"""

import numpy as np

import fgrab
import _pattern

WIDTH, HEIGHT = 320, 48

for bad in (0, 9, 65):
    try:
        fgrab.open(0, buffer_frames=16, batch_frames=bad)
    except fgrab.GeometryError as error:
        print(f"batch_frames={bad} refused: {error}")
    else:
        raise AssertionError(f"batch_frames={bad} of 16 frames was accepted")

with fgrab.open(0, buffer_frames=16, batch_frames=4) as cam:
    assert (cam.buffer_frames, cam.batch_frames) == (16, 4)
    cam.features["PixelFormat"] = "Mono8"
    cam.features["Width"] = WIDTH
    cam.features["Height"] = HEIGHT

    def check(frame):
        expected = _pattern.image(frame.sequence, WIDTH, HEIGHT, "Mono8")
        assert np.array_equal(frame.array, expected), f"frame {frame.sequence} differs"

    checked = 0
    for cycle in range(2):
        # Three frames held at once, released newest first, then frames one at a time.
        for _ in range(20):
            held = [cam.fetch(timeout=10.0) for _ in range(3)]
            for frame in held:
                check(frame)
                checked += 1
            for frame in reversed(held):
                frame.release()
            for _ in range(5):
                with cam.fetch(timeout=10.0) as frame:
                    check(frame)
                    checked += 1
        cam.stop()

    stats = cam.stats()
    completed = stats["frames_completed"]
    assert stats["frames_failed"] == 0, stats
    # The counters cover the second cycle (START resets them): four frames per command,
    # plus START, STATS and the groups queued at the start, far below the one per frame
    # of an unbatched stream.
    assert completed >= 160, stats
    assert stats["commands"] * 3 <= completed + 40, stats
    print(
        f"batched stream: {checked} frames checked pixel by pixel, {completed} completed "
        f"with {stats['commands']} commands and {stats['cqes']} completions, "
        f"{stats['frame_irqs']} frame interrupts"
    )
