"""The one version number: the package, its metadata and ``--version`` read it."""

__version__ = "0.3.0"
