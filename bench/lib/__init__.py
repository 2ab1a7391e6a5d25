"""The parts of `make bench` that its scripts share (README.md, "Files")."""

import os
import sys

# Tests/Integration/sg_harness.py runs every Apache of the bench, as it does the tests'.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Integration"))
