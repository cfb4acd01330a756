"""Batch refinement: the prompt, the published schema of an answer, and reading the answer.

The scheduling of refinement runs (groups, waves, retries) is pure and lives in
`core/refinement.py`; this package is what a refinement run itself needs.
"""
