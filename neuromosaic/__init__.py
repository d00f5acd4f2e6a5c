"""neuromosaic: hardware-aware meta-learning for digital neuromorphic cores."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("neuromosaic")
except PackageNotFoundError:        # run from a source tree that was never installed
    __version__ = "0+unknown"
