"""Registers the `fuzz` marker; HJ212_FUZZ_EXAMPLES sets how hard the fuzz tests try."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: hypothesis fuzzing; example count from HJ212_FUZZ_EXAMPLES")
