"""normalize_space: tidy the spacing of a text."""


def normalize_space(text: str) -> str:
    """Runs of whitespace become one space; none is left at either end."""
    return " ".join(text.split())
