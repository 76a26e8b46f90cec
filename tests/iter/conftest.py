"""Fixtures for the iterator tests: every backend, and pools of several sizes."""

from __future__ import annotations

import sys

import cloudpickle
import pytest

BACKENDS = ["serial", "threads", "processes"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each backend in turn."""
    return request.param


def pytest_collection_modifyitems(config, items):
    # Functions defined in test modules travel to worker processes by value: the workers cannot import the
    # test modules by name.
    for item in items:
        module = sys.modules.get(item.module.__name__) if item.module else None
        if module is not None:
            try:
                cloudpickle.register_pickle_by_value(module)
            except ValueError:
                pass
