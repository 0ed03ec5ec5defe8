"""Compatibility shells over the library: storybench's own client surface."""
