"""The `agentfleet` console script: `runner` starts without loading the CLI framework.

A runner starts for every run, in every Pod; typer, rich and the CLI's imports cost it
about half a second, which it does not need.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["runner"]:
        from .runner.main import main as runner_main

        sys.exit(runner_main(sys.argv[2:]))
    from .cli import main as cli_main

    cli_main()
