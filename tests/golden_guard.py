"""Pytest hooks for the golden tests (imported by conftest.py): the ``golden`` marker, a check that fails a golden or
official test skipped although its fixtures are present, and a summary of each fixture's max deviation.

A test marked ``golden`` may be skipped only for a reason listed in ``ALLOWED_SKIPS`` (a baseline whose method is
not implemented, named in vlpet.flags.published.UNSUPPORTED; a torch build without oneDNN for the --onednn copy;
no CUDA device for the GPU run of the fixtures).
Any other skip (e.g. a skip condition that looks for a fixture name that moved) is turned into a failure while the
fixture folders hold fixtures: a silently dead test is a defect.
"""

from __future__ import annotations

import sys

import pytest

ALLOWED_SKIPS = ("baseline fixture needs", "this torch build", "needs CUDA")


def pytest_configure(config):
    config.addinivalue_line("markers", "golden: a comparison with the official code's fixtures (tests/fixtures/); "
                                       "skipping it while the fixtures are present fails")


def _reason(report) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or item.get_closest_marker("golden") is None or hasattr(report, "wasxfail"):
        return
    from golden import fixture_names, golden_dirs

    names = fixture_names()
    reason = _reason(report)
    if names and not any(allowed in reason for allowed in ALLOWED_SKIPS):
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} was skipped ({reason}) although {len(names)} fixtures are present in "
                           f"{', '.join(map(str, golden_dirs()))}: fix its skip condition (tests/golden_guard.py "
                           f"lists the allowed reasons)")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """With -v or -rA: one line per fixture, its largest deviation (of max|ref|) and how much of the bound it used."""
    golden = sys.modules.get("golden")  # not imported: no golden comparison ran
    DEVIATIONS = getattr(golden, "DEVIATIONS", None)
    if not DEVIATIONS or not (config.option.verbose > 0 or "A" in (config.option.reportchars or "")):
        return
    terminalreporter.section("golden fixtures: max deviation from the official outputs")
    for fixture, tensors in sorted(DEVIATIONS.items()):
        key, (relative, used) = max(tensors.items(), key=lambda kv: kv[1][1])
        terminalreporter.write_line(f"{fixture:42s} {relative:.1e} of max|ref| ({key}), {used:.2f} of the tolerance")
