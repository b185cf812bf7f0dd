"""Features by name: reads, writes, errors, and changes between streams.

Width and PixelFormat changed between two streams show in the frames (shape, dtype,
content); a write that would change the frame size while streaming is refused with
BusyError and changes nothing; unknown names and bad values raise typed errors.
"""

import numpy as np

import fgrab
import _pattern

with fgrab.open(0) as cam:
    names = list(cam.features)
    for name in ["Width", "Height", "PixelFormat", "PayloadSize", "AcquisitionMode",
                 "AcquisitionFrameRate", "TriggerMode", "TriggerSoftware", "DeviceModelName"]:
        assert name in cam.features, name
    print(f"{len(names)} features: {', '.join(names)}")
    print(f"model {cam.features['DeviceModelName']!r}, max {cam.features['WidthMax']}x{cam.features['HeightMax']}")
    xml = cam.xml
    assert xml.startswith(b"<?xml") and b"RegisterDescription" in xml, xml[:80]

    def check(width, height, pixel_format, frames=20):
        for frame in cam.stream(frames=frames, timeout=10.0):
            array = frame.array
            assert array.shape == (height, width) and array.dtype == _pattern.DTYPE[pixel_format]
            assert np.array_equal(array, _pattern.image(frame.sequence, width, height, pixel_format))
        print(f"{frames} frames {width}x{height} {pixel_format}: verified")

    cam.features["Width"] = 320
    cam.features["Height"] = 100
    cam.features["PixelFormat"] = "Mono8"
    check(320, 100, "Mono8")
    cam.features["Width"] = 160
    cam.features["PixelFormat"] = "Mono16"
    assert cam.features["PayloadSize"] == 160 * 100 * 2
    check(160, 100, "Mono16")
    cam.features["PixelFormat"] = "BayerRG8"
    check(160, 100, "BayerRG8")

    # While streaming: size-changing writes are refused, others are not.
    cam.start()
    for name, value in [("Width", 64), ("PixelFormat", "Mono8")]:
        try:
            cam.features[name] = value
        except fgrab.BusyError as error:
            print(f"{name} while streaming: {error}")
        else:
            raise AssertionError(f"{name} changed while streaming")
    assert cam.features["Width"] == 160 and cam.features["PixelFormat"] == "BayerRG8"
    cam.features["AcquisitionFrameRate"] = 50.0
    cam.stop()

    for name, value, error in [
        ("NoSuchFeature", 1, fgrab.FeatureError),
        ("Width", 3, fgrab.FeatureValueError),
        ("Width", "wide", fgrab.FeatureValueError),
        ("PixelFormat", "RGB8", fgrab.FeatureValueError),
        ("PayloadSize", 100, fgrab.FeatureValueError),
    ]:
        try:
            cam.features[name] = value
        except error as caught:
            print(f"{name} = {value!r}: {type(caught).__name__}: {caught}")
        else:
            raise AssertionError(f"{name} = {value!r} accepted")
    try:
        cam.features["NoSuchFeature"]
    except KeyError:
        pass
    else:
        raise AssertionError("an unknown feature was read")
    check(160, 100, "BayerRG8", frames=5)
print("ok")
