"""Helpers every layer may use: path types and files that never appear half-written."""
