"""Test-only support code: a Kubernetes API emulator filled in for the operator tests."""
