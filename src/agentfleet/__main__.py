"""`python -m agentfleet` is the `agentfleet` command."""

from .entry import main

main()
