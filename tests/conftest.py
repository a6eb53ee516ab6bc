import sys
from pathlib import Path

# Test helpers (golden.py) live next to the tests.
sys.path.insert(0, str(Path(__file__).parent))

import signal

from golden_guard import pytest_configure, pytest_runtest_makereport, pytest_terminal_summary  # noqa: F401,E402

# Tests that send SIGINT rely on Python's Ctrl-C handler; a shell's background job (or nohup, some CI runners)
# starts with SIGINT ignored, and then Python installs none. Install it for the test session.
signal.signal(signal.SIGINT, signal.default_int_handler)
