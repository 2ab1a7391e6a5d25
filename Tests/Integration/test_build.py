"""The programs as the Makefile builds them (README, "Building a program for Apache")."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture(params=["fixture", "example"])
def program(request, artifacts) -> str:
    """The test fixture program and the example site's, both release builds."""
    return artifacts.fixture if request.param == "fixture" else request.getfixturevalue("example")


def test_the_program_carries_the_swift_runtime_inside(program):
    """--static-swift-stdlib: no libswift*.so for the dynamic linker to find, or for Apache's
    user to be allowed to read, and no call through its table on every retain and release."""
    linked = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    assert "libswift" not in linked, linked
    assert "libc.so" in linked, linked   # a dynamic executable that ldd did read
