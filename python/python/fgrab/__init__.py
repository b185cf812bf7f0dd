"""fgrab: zero-copy numpy frames from fgrab frame grabbers."""

from ._fgrab import __version__, abi_version

__all__ = ["__version__", "abi_version"]
