"""A scripted stand-in for an AI agent: no model, no network; it edits the textkit demo repo.

The quickstart must run on a machine with nothing but Python and git, so this program plays
the agents' part. It is honest about being scripted: it reads the ticket only to find the
function it asks for, e.g. "Add slugify(text): ...", then writes code or tests it already
knows from the catalogues below. A ticket it has no recipe for fails, as a real agent can.

    python tools/scripted_agent.py develop   # writes src/textkit/<module>.py, exports it
    python tools/scripted_agent.py qa        # writes tests/test_<function>.py

It runs with the task's git worktree as its working directory and the prompt on stdin, and
reads `$AGENTFLEET_CONTEXT_DIR/task.md` instead when there is one. Ticket text is matched
with a regular expression only: it is never evaluated and never reaches a shell.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

NAME = "a scripted stand-in for an AI agent: no model, no network"
PACKAGE = Path("src/textkit")
INIT = PACKAGE / "__init__.py"
TESTS = Path("tests")

# "Add slugify(text)" first; any "name(params)" if the ticket words it differently.
ASKED = re.compile(r"\badd\s+`?([A-Za-z_]\w*)\(([^()]*)\)", re.IGNORECASE)
CALL = re.compile(r"\b([A-Za-z_]\w*)\(([^()]*)\)")


@dataclass(frozen=True)
class Recipe:
    """What the agent knows about one function: where it goes, its code and its tests."""

    module: str
    params: tuple[str, ...]
    code: str
    tests: str


# Each task's branch starts from the base branch without the other tasks' commits, so every
# recipe is self-contained: a dependent inlines the conventions of the ticket it follows.
RECIPES: dict[str, Recipe] = {
    "slugify": Recipe(
        module="slug",
        params=("text",),
        code='''\
"""slugify: text as a URL-safe slug."""

import re
import unicodedata


def slugify(text: str) -> str:
    """Lowercase ASCII words joined by single dashes; accents are folded, the rest dropped."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
''',
        tests='''\
"""Tests for slugify, written by the scripted QA agent."""

from textkit import slugify


def test_spaces_become_dashes() -> None:
    assert slugify("Hello World") == "hello-world"


def test_punctuation_runs_become_one_dash() -> None:
    assert slugify("Hello, World!  Again?") == "hello-world-again"


def test_no_dash_at_either_end() -> None:
    assert slugify("  --Hi there--  ") == "hi-there"


def test_accents_are_folded() -> None:
    assert slugify("Crème Brûlée") == "creme-brulee"
''',
    ),
    "word_count": Recipe(
        module="words",
        params=("text",),
        code='''\
"""word_count: how many words a text has."""


def word_count(text: str) -> int:
    """Words are whitespace-separated runs of characters."""
    return len(text.split())
''',
        tests='''\
"""Tests for word_count, written by the scripted QA agent."""

from textkit import word_count


def test_counts_words() -> None:
    assert word_count("the quick brown fox") == 4


def test_any_whitespace_separates() -> None:
    assert word_count("  one\\ttwo\\n three  ") == 3


def test_empty_text_has_no_words() -> None:
    assert word_count("") == 0
    assert word_count("   ") == 0
''',
    ),
    "title_case": Recipe(
        module="case",
        params=("text",),
        code='''\
"""title_case: capitalise every word."""


def title_case(text: str) -> str:
    """Uppercase each word's first letter; the rest, and the spacing, stay as they are."""
    return " ".join(word[:1].upper() + word[1:] for word in text.split(" "))
''',
        tests='''\
"""Tests for title_case, written by the scripted QA agent."""

from textkit import title_case


def test_every_word_is_capitalised() -> None:
    assert title_case("hello big world") == "Hello Big World"


def test_the_rest_of_each_word_is_kept() -> None:
    assert title_case("iPhone and macOS") == "IPhone And MacOS"


def test_spacing_is_kept() -> None:
    assert title_case("a  b") == "A  B"
    assert title_case("") == ""
''',
    ),
    "truncate": Recipe(
        module="truncate",
        params=("text", "width"),
        code='''\
"""truncate: shorten a text to a width, at a word boundary."""

ELLIPSIS = "…"


def truncate(text: str, width: int) -> str:
    """At most `width` characters, ellipsis included; whole words (as word_count counts them)."""
    if width < 1:
        raise ValueError("width must be at least 1")
    if len(text) <= width:
        return text
    kept = ""
    for word in text.split():
        candidate = f"{kept} {word}" if kept else word
        if len(candidate) + len(ELLIPSIS) > width:
            break
        kept = candidate
    # A first word longer than the width is cut: better than an empty result.
    return (kept or text[: width - len(ELLIPSIS)]) + ELLIPSIS
''',
        tests='''\
"""Tests for truncate, written by the scripted QA agent."""

import pytest

from textkit import truncate


def test_short_text_is_unchanged() -> None:
    assert truncate("short", 10) == "short"


def test_cuts_at_a_word_boundary_with_an_ellipsis() -> None:
    assert truncate("the quick brown fox", 12) == "the quick…"


def test_result_fits_the_width() -> None:
    text = "lorem ipsum dolor sit amet consectetur"
    for width in range(1, len(text) + 1):
        assert len(truncate(text, width)) <= width


def test_a_long_first_word_is_cut() -> None:
    assert truncate("incomprehensibilities", 6) == "incom…"


def test_width_must_be_positive() -> None:
    with pytest.raises(ValueError, match="width"):
        truncate("text", 0)
''',
    ),
    "unique_slug": Recipe(
        module="unique",
        params=("text", "taken"),
        code='''\
"""unique_slug: a slug that is not taken yet."""

import re
import unicodedata
from collections.abc import Container


def unique_slug(text: str, taken: Container[str]) -> str:
    """slugify's slug, then -2, -3, ... until unused (inlined: each branch stands alone)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug
''',
        tests='''\
"""Tests for unique_slug, written by the scripted QA agent."""

from textkit import unique_slug


def test_a_free_slug_is_kept() -> None:
    assert unique_slug("Hello World", set()) == "hello-world"


def test_taken_slugs_get_a_number() -> None:
    assert unique_slug("Hello World", {"hello-world"}) == "hello-world-2"
    assert unique_slug("Hello World", {"hello-world", "hello-world-2"}) == "hello-world-3"


def test_follows_slugify_conventions() -> None:
    assert unique_slug("  Crème, Brûlée! ", ["other"]) == "creme-brulee"
''',
    ),
    "summary": Recipe(
        module="summary",
        params=("text",),
        code='''\
"""summary: a one-line headline for a text."""

import re

WIDTH = 60
ELLIPSIS = "…"


def summary(text: str) -> str:
    """The first sentence, title-cased, at most 60 characters (helpers inlined)."""
    sentence = re.split(r"(?<=[.!?])\\s", text.strip(), maxsplit=1)[0]
    titled = " ".join(word[:1].upper() + word[1:] for word in sentence.split())
    if len(titled) <= WIDTH:
        return titled
    kept = ""
    for word in titled.split():
        candidate = f"{kept} {word}" if kept else word
        if len(candidate) + len(ELLIPSIS) > WIDTH:
            break
        kept = candidate
    return (kept or titled[: WIDTH - len(ELLIPSIS)]) + ELLIPSIS
''',
        tests='''\
"""Tests for summary, written by the scripted QA agent."""

from textkit import summary


def test_first_sentence_title_cased() -> None:
    assert summary("agents work in parallel. Each has a branch.") == "Agents Work In Parallel."


def test_long_sentences_are_truncated() -> None:
    text = "one two three four five six seven eight nine ten eleven twelve thirteen"
    result = summary(text)
    assert len(result) <= 60
    assert result.endswith("…")
    assert result.startswith("One Two Three")


def test_empty_text() -> None:
    assert summary("") == ""
''',
    ),
}


class RefusalError(Exception):
    """The ticket cannot be done by this script: the message says why."""


def say(message: str) -> None:
    """One log line; flushed, so the run's log shows it as it happens."""
    print(message, flush=True)


def read_ticket() -> str:
    """The task's text: task.md from the context folder if present, else the prompt on stdin."""
    context = os.environ.get("AGENTFLEET_CONTEXT_DIR")
    if context and (Path(context) / "task.md").is_file():
        say("reading ticket from $AGENTFLEET_CONTEXT_DIR/task.md")
        return (Path(context) / "task.md").read_text(encoding="utf-8")
    say("reading ticket from the prompt on stdin")
    return sys.stdin.read()


def asked_function(ticket: str) -> tuple[str, Recipe]:
    """The function the ticket asks for and the recipe for it; RefusalError if there is none."""
    match = ASKED.search(ticket) or CALL.search(ticket)
    if match is None:
        raise RefusalError("the ticket names no function like `Add name(params)`")
    name = match.group(1)
    params = tuple(p.strip() for p in match.group(2).split(",") if p.strip())
    say(f"ticket asks for {name}({', '.join(params)})")
    recipe = RECIPES.get(name)
    if recipe is None:
        known = ", ".join(sorted(RECIPES))
        raise RefusalError(f"no recipe for {name!r}: this scripted agent only knows {known}")
    if params != recipe.params:
        raise RefusalError(
            f"the recipe for {name} takes ({', '.join(recipe.params)}), not ({', '.join(params)})"
        )
    return name, recipe


def write_if_changed(path: Path, content: str) -> bool:
    """Write `content` unless the file already holds it: running twice changes nothing."""
    if path.is_file() and path.read_text(encoding="utf-8") == content:
        say(f"{path.as_posix()} is already up to date")
        return False
    say(f"writing {path.as_posix()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return True


def exported(init: str, name: str, module: str) -> str:
    """`init` with `from textkit.<module> import <name>` and `name` in `__all__`."""
    line = f"from textkit.{module} import {name}"
    lines = init.splitlines()
    ours = [i for i, text in enumerate(lines) if text.startswith("from textkit.")]
    imports = sorted({lines[i] for i in ours} | {line})
    at = ours[0] if ours else len(lines)
    lines = [text for i, text in enumerate(lines) if i not in ours]
    lines[at:at] = imports  # the package's imports, kept sorted
    text = "\n".join(lines) + "\n"
    listed = re.search(r"^__all__ = \[(.*?)\]\n", text, re.MULTILINE | re.DOTALL)
    names = set(re.findall(r'"(\w+)"', listed.group(1))) if listed else set()
    block = "__all__ = [\n" + "".join(f'    "{n}",\n' for n in sorted(names | {name})) + "]\n"
    if listed:
        return text[: listed.start()] + block + text[listed.end() :]
    return text + "\n" + block


def develop(name: str, recipe: Recipe) -> None:
    """Add the function's module and export it from the package."""
    module = PACKAGE / f"{recipe.module}.py"
    if module.is_file() and f"def {name}(" not in module.read_text(encoding="utf-8"):
        raise RefusalError(f"{module.as_posix()} exists and is not mine to rewrite")
    write_if_changed(module, recipe.code)
    init = INIT.read_text(encoding="utf-8") if INIT.is_file() else ""
    if write_if_changed(INIT, exported(init, name, recipe.module)):
        say(f"exported {name} from textkit")


def qa(name: str, recipe: Recipe) -> None:
    """Add the function's tests; the stage's tests_pass criterion then runs them."""
    module = PACKAGE / f"{recipe.module}.py"
    if not module.is_file():
        say(f"note: {module.as_posix()} is missing, so these tests will fail")
    write_if_changed(TESTS / f"test_{name}.py", recipe.tests)


def main(argv: list[str]) -> int:
    """Exit 0 when the worktree holds the work, 1 when the ticket is beyond the script."""
    roles = {"develop": develop, "qa": qa}
    if len(argv) != 1 or argv[0] not in roles:
        print("usage: scripted_agent.py develop|qa", file=sys.stderr)
        return 2
    role = argv[0]
    task = os.environ.get("AGENTFLEET_TASK", "-")
    attempt = os.environ.get("AGENTFLEET_ATTEMPT", "-")
    say(f"scripted agent ({NAME}): role {role}, task {task}, attempt {attempt}")
    try:
        name, recipe = asked_function(read_ticket())
        say(f"recipe found: {name} goes in {PACKAGE.as_posix()}/{recipe.module}.py")
        roles[role](name, recipe)
    except RefusalError as refusal:
        say(f"cannot do this ticket: {refusal}")
        return 1
    finally:
        # No model was called: the honest usage is zero tokens at zero cost.
        usage = {"type": "usage", "tokens": {"input": 0, "output": 0}, "costUsd": 0.0}
        say(json.dumps(usage))
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
