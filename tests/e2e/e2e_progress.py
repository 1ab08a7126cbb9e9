"""pytest plugin of tests/e2e/run-suite (loaded with -p e2e_progress).

With E2E_PROGRESS set, each test's start and outcome go to that file as they
happen (one line each, flushed), so a test host that dies mid-suite still
tells which tests ran and how."""

import os

_progress = None


def _progress_line(kind, nodeid):
    global _progress
    path = os.environ.get("E2E_PROGRESS")
    if not path:
        return
    if _progress is None:
        _progress = open(path, "a", buffering=1)
    _progress.write("%s %s\n" % (kind, nodeid))
    _progress.flush()
    os.fsync(_progress.fileno())


_outcomes = {}


def pytest_runtest_logstart(nodeid, location):
    _outcomes[nodeid] = "passed"
    _progress_line("start", nodeid)


def pytest_runtest_logreport(report):
    # A failure in any phase fails the test; a skip in setup skips it.
    if report.failed:
        _outcomes[report.nodeid] = "failed"
        # The reason too, for a run whose test host dies before pytest's summary.
        lines = [l for l in report.longreprtext.splitlines() if l.startswith("E ")]
        for line in (lines or report.longreprtext.splitlines()[-3:])[:12]:
            _progress_line("note", "%s %s" % (report.nodeid, line))
    elif report.skipped and _outcomes.get(report.nodeid) == "passed":
        _outcomes[report.nodeid] = "skipped"


def pytest_runtest_logfinish(nodeid, location):
    _progress_line(_outcomes.get(nodeid, "passed"), nodeid)
