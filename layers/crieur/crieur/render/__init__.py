"""Per-channel text shaping."""
