"""An example third-party tunekit plugin package: one strategy, registered by entry point."""
