"""Helpers every layer may use: path types, files that never appear half-written, the tools' allocator setting."""
