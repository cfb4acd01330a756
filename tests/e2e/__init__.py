"""End-to-end: the chart and the quickstart batch on a real kind cluster (needs Docker)."""
