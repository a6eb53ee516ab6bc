"""golden_guard.py: a golden test skipped for a reason other than the allowed ones fails while the fixtures are
present (the three tests of test_official.py were skipped for months by a skip check that looked for a moved name)."""

from __future__ import annotations

from pathlib import Path

import golden  # noqa: F401  (imported before the in-process run: pytester restores sys.modules after it)

pytest_plugins = "pytester"

TESTS = Path(__file__).resolve().parent


def test_a_skipped_golden_test_fails_while_its_fixtures_are_present(pytester):
    pytester.syspathinsert(TESTS)
    pytester.makeconftest("from golden_guard import pytest_configure, pytest_runtest_makereport  # noqa: F401\n")
    pytester.makepyfile(test_skips='''
import pytest

pytestmark = pytest.mark.golden

@pytest.mark.skipif(True, reason="needs the official fixture")
def test_moved_fixture_name():
    pass

def test_not_implemented_baseline():
    pytest.skip("baseline fixture needs use_lradapter: not implemented")

@pytest.mark.skipif(True, reason="this torch build has no oneDNN (mkldnn)")
def test_platform():
    pass

@pytest.mark.skip(reason="anything")
def test_plain_skip_elsewhere():
    pass
''')
    pytester.makepyfile(test_other='''
import pytest

@pytest.mark.skip(reason="not a golden test")
def test_free_to_skip():
    pass
''')
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    # the moved-name skip and the unlisted reason fail (at setup: "errors"), the two allowed reasons and the
    # unmarked module's skip stay skips
    assert outcomes.get("errors", 0) + outcomes.get("failed", 0) == 2 and outcomes.get("skipped") == 3, outcomes
    result.stdout.fnmatch_lines(["*test_moved_fixture_name*although * fixtures are present*"])
