"""examples/claude-code end to end: raw tickets refined, then built, by the real Claude Code
CLI (pinned, from npm) against a scripted Anthropic API on localhost.

Only the model is scripted: `agentfleet run`, the runner, the `claude` binary, its tools
(Write, Bash), the criteria, git and the store are the real ones. The model's turns answer
from the request: a refinement through Claude Code's StructuredOutput tool (`--json-schema`),
a task by writing its module and test, running pytest, and finishing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent_clis import require_cli
from tests.support.model_servers.anthropic import Reply, serve, text, tool_use

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "claude-code"
MAKE_SAMPLE = ROOT / "examples" / "quickstart" / "make_sample_repo.py"

REFINED = {
    "slugify": {
        "title": "Add slugify for URL slugs",
        "description": "slugify(text) lowercases and joins runs of letters and digits with dashes.",
        "acceptanceCriteria": ["slugify('Hello, World!') == 'hello-world'"],
        "complexity": 2,
        "dependencies": [],
        "tags": ["slugs"],
        "agentType": "Development",
        "likelyFiles": ["src/textkit/slug.py", "tests/test_slug.py"],
    },
    "unique-slug": {
        "title": "Add unique_slug that never repeats a taken slug",
        "description": "unique_slug(text, taken) is slugify(text), or with -2, -3... appended.",
        "acceptanceCriteria": ["unique_slug('A', {'a'}) == 'a-2'"],
        "complexity": 3,
        "dependencies": ["slugify"],
        "tags": ["slugs"],
        "agentType": "Development",
        "likelyFiles": ["src/textkit/unique.py", "tests/test_unique.py"],
    },
    "word-count": {
        "title": "Add word_count for drafts",
        "description": "word_count(text) is the number of whitespace-separated words.",
        "acceptanceCriteria": ["word_count('a b  c') == 3"],
        "complexity": 1,
        "dependencies": [],
        "tags": ["editor"],
        "agentType": "Development",
        "likelyFiles": ["src/textkit/words.py", "tests/test_words.py"],
    },
}
SLUG = (
    "import re\n\n\ndef slugify(text):\n"
    "    return re.sub(r'[^a-z0-9]+', '-', text.lower()).strip('-')\n"
)
CODE: dict[str, list[tuple[str, str]]] = {
    "slugify": [
        ("src/textkit/slug.py", SLUG),
        (
            "tests/test_slug.py",
            "from textkit.slug import slugify\n\n\ndef test_slugify():\n"
            "    assert slugify('Hello, World!') == 'hello-world'\n",
        ),
    ],
    "unique-slug": [
        (
            "src/textkit/unique.py",
            SLUG + "\n\ndef unique_slug(text, taken):\n    base = slugify(text)\n"
            "    slug, n = base, 1\n    while slug in taken:\n        n += 1\n"
            "        slug = f'{base}-{n}'\n    return slug\n",
        ),
        (
            "tests/test_unique.py",
            "from textkit.unique import unique_slug\n\n\ndef test_unique_slug():\n"
            "    assert unique_slug('A', {'a'}) == 'a-2'\n",
        ),
    ],
    "word-count": [
        ("src/textkit/words.py", "def word_count(text):\n    return len(text.split())\n"),
        (
            "tests/test_words.py",
            "from textkit.words import word_count\n\n\ndef test_word_count():\n"
            "    assert word_count('a b  c') == 3\n",
        ),
    ],
}


def model(body: dict[str, Any]) -> Reply:
    """The scripted model: what a capable model would answer to this conversation so far."""
    every = json.dumps(body)
    tools = {t.get("name") for t in body.get("tools", [])}
    if "StructuredOutput" in tools:
        wanted = re.search(r"ONLY these \d+ tickets: ([^\\]+?)\.?\\n", every)
        ids = wanted.group(1).split(", ") if wanted else list(REFINED)
        return tool_use("StructuredOutput", {"tickets": [{"id": i, **REFINED[i]} for i in ids]})
    match = re.search(r"Ticket: ([a-z-]+)", every)
    assert match, "a stage prompt names its ticket"
    steps = [
        *(tool_use("Write", {"file_path": path, "content": code}) for path, code in CODE[match[1]]),
        tool_use("Bash", {"command": "python -m pytest -q", "description": "Run the tests"}),
        text("Done: the tests pass."),
    ]
    done = sum(1 for m in body["messages"] if m.get("role") == "assistant")
    return steps[min(done, len(steps) - 1)]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    repo = tmp_path / "textkit"
    subprocess.run([sys.executable, str(MAKE_SAMPLE), str(repo)], check=True, capture_output=True)
    return repo


def agentfleet(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentfleet", *args, "--repo", str(repo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_raw_tickets_are_refined_and_built_by_the_real_claude_code(sample: Path) -> None:
    claude = require_cli("claude-code")
    with serve([model] * 40) as server:
        env = {
            **os.environ,
            **server.env(),
            # `claude` and `python` as a user would have them on PATH.
            "PATH": os.pathsep.join(
                [str(claude.parent), str(Path(sys.executable).parent), os.environ["PATH"]]
            ),
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.pop("AGENTFLEET_STATE_DIR", None)
        ran = agentfleet(sample, env, "run", "-f", str(EXAMPLE))
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert not server.exhausted

        batch = json.loads(
            agentfleet(sample, env, "get", "batch", "textkit-raw", "-o", "json").stdout
        )
        tasks = {
            t["spec"]["ticketId"]: t
            for t in json.loads(agentfleet(sample, env, "get", "tasks", "-o", "json").stdout)[
                "items"
            ]
        }
        described = agentfleet(sample, env, "describe", "batch", "textkit-raw")

    assert batch["status"]["phase"] == "Succeeded"
    [refinement] = batch["status"]["refinementAttempts"]
    assert refinement["phase"] == "Succeeded"
    assert refinement["costUsd"] > 0
    assert {t: tasks[t]["status"]["phase"] for t in tasks} == dict.fromkeys(REFINED, "Succeeded")

    unique = tasks["unique-slug"]["spec"]
    assert unique["title"] == REFINED["unique-slug"]["title"]
    assert unique["dependencies"] == ["textkit-raw-slugify"], "inferred by the refinement"
    assert unique["likelyFiles"] == ["src/textkit/unique.py", "tests/test_unique.py"]
    slug_done = tasks["slugify"]["status"]["completionTime"]
    unique_started = tasks["unique-slug"]["status"]["startTime"]
    assert unique_started >= slug_done, "the inferred dependency ordered the work"

    for ticket, files in CODE.items():
        branch = f"agentfleet/textkit-raw/textkit-raw-{ticket}"
        listed = subprocess.run(
            ["git", "-C", str(sample), "show", "--name-only", "--format=%B", branch],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert f"Ticket: {ticket}" in listed
        for path, _ in files:
            assert path in listed

    usage = batch["status"]["usage"]
    task_cost = sum(t["status"]["costUsd"] for t in tasks.values())
    assert usage["costUsd"] == pytest.approx(task_cost + refinement["costUsd"])
    assert batch["status"]["costUsd"] == usage["costUsd"]
    assert batch["status"]["tokens"] == usage["tokens"] > 0
    assert usage["attempts"] == 4, "one refinement and three develop attempts"
    assert usage["inputTokens"] > 0
    assert "over 4 attempt(s)" in described.stdout
