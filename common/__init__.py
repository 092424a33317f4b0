"""Helpers every layer may use: path types, expected failures and their exit statuses (``failures``), files that
never appear half-written (``safe_write``), the interpolator type, the tools' allocator setting."""
