"""textkit: small text utilities, grown one ticket at a time by agentfleet's quickstart."""

from textkit.whitespace import normalize_space

__all__ = [
    "normalize_space",
]
