"""The C GenTL consumer (gentl/examples/consumer.c, written against GenTL.h alone) streams
1,000 frames through fgrab.cti in two pixel formats, checking FRAMEID, IS_INCOMPLETE,
SIZE_FILLED, PIXELFORMAT and every byte of the per-format pattern (--pattern). It also
executes AcquisitionStart/Stop through the remote port while streaming, checks that Width
is refused then, and writes Width again after closing the stream.

Zero copy: the consumer checks that the producer copied no frame (STREAM_INFO_CUSTOM_ID)
and, through the card's sysfs directory, that the card holds one region of one PayloadSize
frame per announced buffer while streaming. The second case revokes a buffer halfway while
the others stream (one region fewer, then a new buffer announced and queued while
acquisition runs) and checks that a buffer one byte below PayloadSize is refused with
GC_ERR_BUFFER_TOO_SMALL; the first closes the data stream while the card streams (DSClose
without a stop: no region may be left, the buffers are freed at once).

Environment: FGRAB_GENTL_CONSUMER (the consumer binary), FGRAB_CTI (the producer);
defaults below.
"""

import os
import subprocess
import time

CTI = os.environ.get("FGRAB_CTI", "/opt/fgrab/lib/gentl/fgrab.cti")
CONSUMER = os.environ.get("FGRAB_GENTL_CONSUMER", "/opt/fgrab/bin/fgrab-gentl-consumer")
FRAMES = 1000
SYSFS = "/sys/class/misc/fgrab0"  # the consumer streams from the first device, card 0
# (PixelFormat, Width, Height, revoke a buffer while streaming; else close while streaming)
CASES = [("Mono8", 640, 480, False), ("Mono16", 320, 240, True)]

for pixel_format, width, height, revoke in CASES:
    command = [
        CONSUMER, CTI, "--frames", str(FRAMES), "--pattern",
        "--pixel-format", pixel_format, "--width", str(width), "--height", str(height),
        "--sysfs", SYSFS,
    ] + (["--revoke"] if revoke else ["--close-streaming"])
    started = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - started
    output = run.stdout + run.stderr
    assert run.returncode == 0, f"{' '.join(command)} exited {run.returncode}:\n{output}"
    assert f"frames: {FRAMES}," in run.stdout, output
    assert "payload: %d bytes" % (width * height * (2 if pixel_format == "Mono16" else 1)) in run.stdout, output
    assert run.stdout.endswith("ok\n"), output
    assert ", copied: 0" in run.stdout, output
    assert "card: 8 regions of one" in run.stdout, output
    if revoke:
        assert "GC_ERR_BUFFER_TOO_SMALL" in run.stdout, output
        assert "card: 7 regions of one" in run.stdout, output
        assert "while streaming, announced a new one" in run.stdout, output
    else:
        assert "closed the stream while streaming" in run.stdout, output
    summary = next(line for line in run.stdout.splitlines() if line.startswith("frames:"))
    print(f"{pixel_format} {width}x{height}: {summary} ({FRAMES / elapsed:.0f} frames/s, "
          f"whole run {elapsed:.1f} s)")
print("ok")
