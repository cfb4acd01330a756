"""Re-recording a CLI's real output against a scripted server, for the parser tests.

    .venv/bin/python -m tests.support.model_servers.<server> record [SCENARIO ...]

Each scenario's stdout lands in `tests/unit/executors/recordings/<cli>/<scenario>.jsonl`
and its exit code in `exit_codes.json` beside them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

RecordOne = Callable[[str, Any, Path], int]


def record_scenarios(
    executor: str,
    names: Sequence[str],
    scenarios: Mapping[str, Any],
    record_one: RecordOne,
    recordings: Path,
) -> None:
    from ..agent_clis import cli_path

    cli = cli_path(executor)
    if cli is None:
        sys.exit(f"the {executor} CLI is not installed: run `python3 dev.py test` first")
    codes_file = recordings / "exit_codes.json"
    codes = json.loads(codes_file.read_text()) if codes_file.exists() else {}
    for name in names or list(scenarios):
        codes[name] = record_one(name, scenarios[name], cli)
        print(f"{name}: exit {codes[name]}")
    codes_file.write_text(json.dumps(codes, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main(module: str, scenarios: Mapping[str, Any], record: Callable[[list[str]], None]) -> None:
    if sys.argv[1:2] != ["record"] or not set(sys.argv[2:]) <= set(scenarios):
        sys.exit(f"usage: python -m {module} record [{' | '.join(scenarios)} ...]")
    record(sys.argv[2:])
