"""fgrab.cti in Harvesters: image format through the node map, 1,000 frames per case
fetched with ``with ia.fetch() as buffer:`` and checked byte by byte with numpy.

Cases: two pixel formats and a resize between acquisitions (Harvesters re-announces
buffers of the new PayloadSize at each start; the producer re-reads the geometry at
DSStartAcquisition), stop/start of the same acquirer, a Width write refused while
streaming, and an acquirer destroyed while it streams (the card must then serve a new one).
Each buffer's image must equal the pattern of its FRAMEID (the card's sequence number) in
the format set (docs/hardware.md §9). Gaps in FRAMEID are frames the card dropped while
Python was checking (counted and printed), never data errors.

Zero copy: while each acquisition streams, the card (its sysfs directory) holds one region
of one PayloadSize frame per buffer Harvesters announced: the card writes each frame into
the buffer Harvesters reads, and the producer has no buffer of its own to copy from.

Environment: FGRAB_CTI (the producer; default below), FGRAB_FRAMES (default 1000).
"""

import os
import time

import numpy as np
from harvesters.core import Harvester

import _pattern

CTI = os.environ.get("FGRAB_CTI", "/opt/fgrab/lib/gentl/fgrab.cti")
FRAMES = int(os.environ.get("FGRAB_FRAMES", "1000"))
# (PixelFormat, Width, Height): a format change with a resize, then a resize alone.
CASES = [("Mono8", 320, 240), ("Mono16", 256, 200), ("Mono16", 640, 480)]
TIMEOUT = 10.0
SYSFS = "/sys/class/misc/fgrab0"  # device 0 is card 0


def sysfs(name):
    with open(f"{SYSFS}/{name}") as attribute:
        return int(attribute.read())


def check_zero_copy(ia, payload):
    """The card holds one region of one ``payload``-byte frame per announced buffer."""
    regions, frame_bytes = sysfs("frame_count"), sysfs("frame_bytes")
    assert (regions, frame_bytes) == (ia.num_buffers, payload), (
        f"the card holds {regions} frames of {frame_bytes} bytes: expected one region of "
        f"{payload} bytes per announced buffer ({ia.num_buffers})"
    )


def configure(nodes, pixel_format, width, height):
    """Sets the image format through the node map (the card is idle) and checks it took."""
    nodes.PixelFormat.value = pixel_format
    nodes.Width.value = width
    nodes.Height.value = height
    assert nodes.PixelFormat.value == pixel_format, nodes.PixelFormat.value
    assert (nodes.Width.value, nodes.Height.value) == (width, height)
    itemsize = np.dtype(_pattern.DTYPE[pixel_format]).itemsize
    payload = nodes.PayloadSize.value
    assert payload == width * height * itemsize, payload


def check_buffer(buffer, pixel_format, width, height):
    """Checks one fetched buffer; returns its FRAMEID."""
    frame_id = buffer.module.frame_id
    component = buffer.payload.components[0]
    assert (component.width, component.height) == (width, height), component
    assert component.data_format == pixel_format, component.data_format
    data = component.data.reshape(height, width)
    expected = _pattern.image(frame_id, width, height, pixel_format)
    if not np.array_equal(data, expected):
        offset = _pattern.first_mismatch(data.tobytes(), frame_id, pixel_format)
        raise AssertionError(f"frame {frame_id} ({pixel_format}) differs at byte {offset}")
    return frame_id


def acquire(ia, pixel_format, width, height, frames, refuse_width=False):
    """Starts, fetches and checks ``frames`` buffers, stops; returns frames per second."""
    ia.start()
    assert ia.is_acquiring()
    if refuse_width:
        # The image format is fixed while streaming: the write fails (the producer says
        # GC_ERR_BUSY, or GenApi refuses first) and changes nothing.
        try:
            ia.remote_device.node_map.Width.value = width + 8
        except Exception as error:  # genicam's exception types vary with the refusal
            print(f"Width while streaming refused: {type(error).__name__}")
        else:
            raise AssertionError("a Width write while streaming was accepted")
        assert ia.remote_device.node_map.Width.value == width
    check_zero_copy(ia, ia.remote_device.node_map.PayloadSize.value)
    previous = None
    gaps = 0
    started = time.monotonic()
    for _ in range(frames):
        with ia.fetch(timeout=TIMEOUT) as buffer:
            frame_id = check_buffer(buffer, pixel_format, width, height)
        if previous is not None:
            assert frame_id > previous, (previous, frame_id)
            gaps += frame_id - previous - 1
        previous = frame_id
    elapsed = time.monotonic() - started
    ia.stop()
    assert not ia.is_acquiring()
    rate = frames / elapsed
    print(
        f"{pixel_format} {width}x{height}: {frames} frames verified byte by byte in "
        f"{elapsed:.1f} s ({rate:.0f} frames/s fetched and checked), {gaps} dropped by "
        f"the card meanwhile"
    )
    return rate


h = Harvester()
h.add_file(CTI, check_existence=True, check_validity=True)
h.update()
assert h.device_info_list, "no device: is the card there and fgrab.ko loaded?"
print(f"devices: {[info.id_ for info in h.device_info_list]}")

ia = h.create(0)
ia.num_buffers = 8
nodes = ia.remote_device.node_map
print(f"camera: {nodes.DeviceVendorName.value} {nodes.DeviceModelName.value}")
nodes.AcquisitionMode.value = "Continuous"
nodes.TriggerMode.value = "Off"
for index, (pixel_format, width, height) in enumerate(CASES):
    configure(nodes, pixel_format, width, height)
    acquire(ia, pixel_format, width, height, FRAMES, refuse_width=index == 0)

# Stop/start of the same acquirer, format unchanged.
pixel_format, width, height = CASES[-1]
for _ in range(3):
    acquire(ia, pixel_format, width, height, 50)

# Destroyed while streaming: the producer stops the card and lets the region go...
configure(nodes, "Mono8", 320, 240)
ia.start()
for _ in range(10):
    with ia.fetch(timeout=TIMEOUT) as buffer:
        check_buffer(buffer, "Mono8", 320, 240)
ia.destroy()
with open(f"{SYSFS}/state") as state:
    assert state.read().strip() == "idle", "the destroyed acquirer's regions are still attached"

# ... so a new acquirer can configure the card and stream again.
ia = h.create(0)
nodes = ia.remote_device.node_map
configure(nodes, "Mono16", 320, 240)
acquire(ia, "Mono16", 320, 240, 100)
ia.destroy()
h.reset()
print("ok")
