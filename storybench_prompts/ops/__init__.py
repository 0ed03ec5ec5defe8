"""Operator tasks over sources and mirrors: sync, watch, checks, locks, diffs."""
