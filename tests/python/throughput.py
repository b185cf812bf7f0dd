"""Frames per second through Harvesters (over fgrab.cti), the Python package and the Rust
library, in the same run.

All three consume the same card with the same frame size and eight frames: Harvesters with
eight announced buffers (each a region the card writes into, no copy), fetching each buffer
and making its numpy view; Python with `cam.stream()` (each frame released as the next
arrives; one `frame.array` view made per frame); Rust with `fgrab capture` (the command line
tool on the `fgrab` crate, writing to /dev/null). The card produces frames at its own rate, so both figures are bounded by
it; drops say which consumer kept up. A figure, not a pass/fail threshold: timings under
TCG emulation are noisy.
"""

import re
import subprocess
import time

import fgrab
from harvesters.core import Harvester

WIDTH, HEIGHT = 1024, 1024  # Mono8: 1 MiB frames
FRAMES = 500
CLI = "/opt/fgrab/bin/fgrab"
CTI = "/opt/fgrab/lib/gentl/fgrab.cti"

h = Harvester()
h.add_file(CTI, check_existence=True)
h.update()
ia = h.create(0)
ia.num_buffers = 8
nodes = ia.remote_device.node_map
nodes.PixelFormat.value = "Mono8"
nodes.Width.value = WIDTH
nodes.Height.value = HEIGHT
hv_payload = nodes.PayloadSize.value
ia.start()
with ia.fetch(timeout=10.0) as buffer:
    first_id = buffer.module.frame_id
started = time.monotonic()
for _ in range(FRAMES - 1):
    with ia.fetch(timeout=10.0) as buffer:
        buffer.payload.components[0].data  # the numpy view of the card-filled buffer
        last_id = buffer.module.frame_id
elapsed = time.monotonic() - started
ia.stop()
ia.destroy()
h.reset()
hv_fps = (FRAMES - 1) / elapsed
hv_dropped = last_id - first_id - (FRAMES - 1)

with fgrab.open(0, buffer_frames=8) as cam:
    cam.features["PixelFormat"] = "Mono8"
    cam.features["Width"] = WIDTH
    cam.features["Height"] = HEIGHT
    payload = cam.features["PayloadSize"]
    assert payload == hv_payload, (payload, hv_payload)
    frames = cam.stream(frames=FRAMES, timeout=10.0)
    first = next(frames)
    started = time.monotonic()
    first_sequence = last_sequence = first.sequence
    del first
    count = 0
    for frame in frames:
        frame.array  # one zero-copy view per frame, as an application makes
        last_sequence = frame.sequence
        count += 1
    elapsed = time.monotonic() - started
    py_fps = count / elapsed
    py_dropped = last_sequence - first_sequence - count

cli = subprocess.run(
    [CLI, "capture", "--card", "0", "--frames", str(FRAMES), "--frame-bytes", str(payload),
     "--queue-depth", "8", "--output", "/dev/null"],
    capture_output=True, text=True, timeout=300,
)
assert cli.returncode == 0, cli.stderr
match = re.search(r"(\d+) frames \(([\d.]+) MB\) in ([\d.]+) s: ([\d.]+) GB/s, (\d+) dropped", cli.stderr)
assert match, cli.stderr
rust_frames, rust_seconds, rust_dropped = int(match[1]), float(match[3]), int(match[5])
rust_fps = rust_frames / rust_seconds

print(f"frames of {payload} bytes, 8 in the buffer, same card, same run:")
print(f"  Harvesters (fgrab.cti): {hv_fps:8.1f} frames/s, {hv_fps * payload / 1e9:.3f} GB/s, {hv_dropped} dropped by the card")
print(f"  Python (fgrab package): {py_fps:8.1f} frames/s, {py_fps * payload / 1e9:.3f} GB/s, {py_dropped} dropped by the card")
print(f"  Rust   (fgrab crate)  : {rust_fps:8.1f} frames/s, {rust_fps * payload / 1e9:.3f} GB/s, {rust_dropped} dropped by the card")
print(f"  Python / Rust: {py_fps / rust_fps:.2f}, Harvesters / Rust: {hv_fps / rust_fps:.2f}")
print("ok")
