"""An example plugin package: tunekit finds its metric, objective and strategy by entry point."""
