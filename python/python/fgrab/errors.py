"""The exceptions of fgrab: one class per meaning of the Rust library's `fgrab::Error`.

Every class derives from :class:`fgrab.Error`, and also from the built-in exception whose
meaning it shares, so ``except TimeoutError`` or ``except OSError`` work as expected. The
message is the Rust error's message; ``errno`` is set where the kernel gave one.
"""

import builtins


class Error(Exception):
    """Base class of every fgrab error."""

    errno = None


class OpenError(Error, OSError):
    """The device node cannot be opened (absent, or no permission: see README, non-root)."""


class RingError(Error, OSError):
    """io_uring failed (unavailable, or disabled by ``kernel.io_uring_disabled``)."""


class CommandError(Error, OSError):
    """The driver rejected a command; ``errno`` says why."""


class BusyError(CommandError):
    """``EBUSY``: another program streams from the card, or a feature that changes the
    frame size was written while streaming."""


class GeometryError(Error, ValueError):
    """A frame layout that does not fit the buffer or the card."""


class AllocationError(Error, MemoryError):
    """Frame memory could not be allocated."""


class MemlockLimit(Error, MemoryError):
    """The buffer is larger than ``RLIMIT_MEMLOCK`` allows (see README, non-root)."""


class Timeout(Error, builtins.TimeoutError):
    """No frame came in time."""


class Canceled(Error):
    """The wait was canceled."""


class Stopped(Error):
    """The stream is stopped, and every frame filled before the stop was handed out."""


class StreamEnded(Error):
    """The driver ended the region (the stream cannot deliver more frames)."""


class CardGone(StreamEnded):
    """The card went away (unplugged, or its driver unbound)."""


class InUse(Error):
    """The stream cannot end or change while frames of it are held (views included)."""


class AbiMismatch(Error):
    """The driver speaks another ABI version than this package."""


class FeatureError(Error, KeyError):
    """No feature of that name."""

    def __str__(self):
        # KeyError quotes its argument; a message reads better.
        return Exception.__str__(self)


class FeatureValueError(Error, ValueError):
    """A value the feature does not accept (type, range or enumeration entry)."""


class FrameReleased(Error):
    """The frame went back to the card: views taken before stay valid, new ones cannot be
    made."""


class NoCamera(Error):
    """The card has no camera features (an older card or driver): frames are raw lines."""
