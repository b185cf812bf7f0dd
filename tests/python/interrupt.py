"""Ctrl-C during a wait, and waits that let other threads run.

With TriggerMode On no frame comes until TriggerSoftware. A wait without a timeout is
interrupted by SIGINT (KeyboardInterrupt, as Ctrl-C gives), and the card stays usable:
a trigger afterwards delivers a correct frame. A trigger from another thread reaches a
blocked wait, which shows the wait does not hold the GIL.
"""

import os
import signal
import threading
import time

import numpy as np

import fgrab
import _pattern

WIDTH, HEIGHT = 128, 32

with fgrab.open(0, buffer_frames=4) as cam:
    cam.features["PixelFormat"] = "Mono8"
    cam.features["Width"] = WIDTH
    cam.features["Height"] = HEIGHT
    cam.features["TriggerMode"] = "On"
    cam.start()

    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    try:
        cam.fetch(timeout=None)
    except KeyboardInterrupt:
        waited = time.monotonic() - started
        print(f"KeyboardInterrupt ended a wait after {waited:.2f} s")
    else:
        raise AssertionError("a frame came without a trigger")
    assert cam.streaming

    trigger = threading.Timer(0.3, cam.execute, ("TriggerSoftware",))
    started = time.monotonic()
    trigger.start()
    with cam.fetch(timeout=10.0) as frame:
        waited = time.monotonic() - started
        assert np.array_equal(frame.array, _pattern.image(frame.sequence, WIDTH, HEIGHT, "Mono8"))
    trigger.join()
    print(f"a trigger from another thread ended a wait after {waited:.2f} s: frame verified")

    for _ in range(3):
        cam.execute("TriggerSoftware")
        with cam.fetch(timeout=10.0) as frame:
            assert np.array_equal(frame.array, _pattern.image(frame.sequence, WIDTH, HEIGHT, "Mono8"))
    cam.stop()
    cam.features["TriggerMode"] = "Off"

    # A stop from another thread ends an endless iteration, which does not restart it.
    stopper = threading.Timer(0.5, cam.stop)
    stopper.start()
    count = 0
    for frame in cam.stream(timeout=10.0):
        count += 1
    stopper.join()
    del frame
    assert count > 0 and not cam.streaming, (count, cam.streaming)
    print(f"a stop from another thread ended the iteration after {count} frames")
print("ok")
