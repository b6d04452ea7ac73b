"""The package version, in a leaf module: ``tunekit/__init__`` re-exports it and ``result.py``
records it in ``result.json``, without a module inside the package importing the package itself.
Keep it equal to ``version`` in setup.cfg."""

__version__ = "0.1.0"
