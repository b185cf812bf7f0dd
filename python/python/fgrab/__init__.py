"""fgrab: frames from fgrab frame grabbers as numpy arrays, without a copy.

    import fgrab

    with fgrab.open(0) as cam:
        cam.features["PixelFormat"] = "Mono16"
        for frame in cam.stream(frames=16):
            print(frame.sequence, frame.array.mean())

A frame's bytes stay where the card wrote them; ``frame.array`` is a read-only numpy view
of them. The frame goes back to the card when the frame object and every view of it are
gone (or at the end of ``with frame:`` if no view is left), so a view never sees the card
overwrite its bytes. Waits release the GIL, and Ctrl-C interrupts them.
"""

import glob as _glob
import os as _os
import re as _re

from . import errors
from ._fgrab import Camera, Features, Frame, Frames, __version__, abi_version, open_path as _open_path
from .errors import *  # noqa: F401,F403 (the exceptions are part of the top-level API)

__all__ = ["open", "cards", "abi_version", "Camera", "Features", "Frame", "Frames", "errors"]
__all__ += [name for name in dir(errors) if isinstance(getattr(errors, name), type)]


def cards():
    """The device nodes of the cards present, ``/dev/fgrab0`` first."""

    def index(path):
        return int(_re.sub(r"\D", "", _os.path.basename(path)) or 0)

    return sorted(_glob.glob("/dev/fgrab[0-9]*"), key=index)


def open(card=0, *, buffer_frames=8, batch_frames=1):  # noqa: A001 (as in io.open)
    """Opens a card: its index ``N`` of ``/dev/fgrabN``, or a device node path.

    ``buffer_frames`` frames of ``PayloadSize`` bytes make the stream's buffer, allocated
    when streaming starts. Frames you hold (and their views) are out of the card's rotation
    until released, so hold fewer than that to keep the card supplied.

    ``batch_frames`` above 1 (at most 64 and half of ``buffer_frames``; 1, the default,
    gives each frame back on its own) gives frames back to the card that many at a time:
    one submission, one completion and one interrupt per group instead of per frame, for
    high frame rates. A group goes back once all of its frames were released (holding one
    frame of every group starves the card), and its first frame arrives when its last is
    filled, so hold frames briefly and use several groups (say ``buffer_frames=32,
    batch_frames=8``).
    """
    if isinstance(card, int):
        if card < 0:
            raise ValueError(f"card index must be >= 0, not {card}")
        path = f"/dev/fgrab{card}"
    else:
        path = _os.fspath(card)
    return _open_path(path, buffer_frames, batch_frames)
