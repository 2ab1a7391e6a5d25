"""The example program as the Makefile builds it (README, "Building a program for Apache")."""

from __future__ import annotations

import subprocess


def test_the_example_program_carries_the_swift_runtime_inside(artifacts):
    """--static-swift-stdlib: no libswift*.so for the dynamic linker to find, or for Apache's
    user to be allowed to read, and no call through its table on every retain and release."""
    linked = subprocess.run(["ldd", artifacts.example], capture_output=True, text=True, check=True).stdout
    assert "libswift" not in linked, linked
    assert "libc.so" in linked, linked   # a dynamic executable that ldd did read
