"""offbench: offline reinforcement learning benchmarking toolkit."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("offbench")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
