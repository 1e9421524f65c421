"""Helpers the test modules share (test modules never import one another; fixtures live in
tests/conftest.py). pytest rewrites the asserts in these modules, as in the tests themselves."""

import pkgutil

import pytest

pytest.register_assert_rewrite(*(f"{__name__}.{module.name}" for module in pkgutil.iter_modules(__path__)))
