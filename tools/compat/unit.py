"""Run one numba test module (or every k-th of its tests) and write each test's outcome as JSON.

Used by ``run.py`` in a fresh process per module and mode, so a crash or a hang costs one
module, and numba's and jitbridge's runs never share a process.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import unittest


def _flatten(suite: unittest.TestSuite) -> list[unittest.TestCase]:
    out: list[unittest.TestCase] = []
    for item in suite:
        out.extend(_flatten(item) if isinstance(item, unittest.TestSuite) else [item])
    return out


def first_line(err: tuple) -> str:
    """The exception's type and the first line of its message: what a reader needs to triage."""
    exc_type, exc, _tb = err
    lines = traceback.format_exception_only(exc_type, exc)
    text = "".join(lines).strip()
    return text.splitlines()[0] if text else exc_type.__name__


class _Recorder(unittest.TestResult):
    def __init__(self, after_each) -> None:
        super().__init__()
        self.outcomes: dict[str, dict] = {}
        self._started = time.perf_counter()
        self._after_each = after_each

    def startTest(self, test):
        super().startTest(test)
        self._started = time.perf_counter()

    def stopTest(self, test):
        super().stopTest(test)
        self._after_each(self.outcomes)

    def _set(self, test: unittest.TestCase, outcome: str, detail: str = "") -> None:
        # a test with subtests reports once per failing subtest; the first failure stands
        previous = self.outcomes.get(test.id())
        if previous is None or previous["outcome"] == "pass":
            self.outcomes[test.id()] = {"outcome": outcome, "detail": detail,
                                        "seconds": round(time.perf_counter() - self._started, 2)}

    def addSuccess(self, test):
        self._set(test, "pass")

    def addFailure(self, test, err):
        self._set(test, "fail", first_line(err))

    def addError(self, test, err):
        # errors in setUpClass arrive with a placeholder test; count them against every test of the class
        self._set(test, "error", first_line(err))

    def addSkip(self, test, reason):
        self._set(test, "skip", reason)

    def addExpectedFailure(self, test, err):
        self._set(test, "pass")

    def addUnexpectedSuccess(self, test):
        self._set(test, "fail", "unexpected success")

    def addSubTest(self, test, subtest, err):
        if err is not None:
            outcome = "fail" if issubclass(err[0], test.failureException) else "error"
            self._set(test, outcome, f"[{subtest._subDescription()}] {first_line(err)}")


def _write(path: str, module: str, started: float, outcomes: dict, complete: bool) -> None:
    """Written after every test, so a run stopped by its time limit still reports what ran."""
    with open(path + ".tmp", "w") as f:
        json.dump({"module": module, "seconds": time.perf_counter() - started, "complete": complete,
                   "tests": outcomes}, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("module", help="e.g. numba.tests.test_tuples")
    parser.add_argument("--every", type=int, default=1, help="run every k-th test (sorted by id)")
    parser.add_argument("--json", required=True, help="where to write {test id: outcome}")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    suite = unittest.defaultTestLoader.loadTestsFromName(args.module)
    tests = sorted(_flatten(suite), key=lambda t: t.id())[:: args.every]
    result = _Recorder(lambda outcomes: _write(args.json, args.module, started, outcomes, complete=False))
    unittest.TestSuite(tests).run(result)
    for test in tests:  # tests that never reported (their class's setUpClass failed)
        result.outcomes.setdefault(test.id(), {"outcome": "error", "detail": "did not run (class set-up failed)"})
    _write(args.json, args.module, started, result.outcomes, complete=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
