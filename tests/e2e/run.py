"""run.py — the end-to-end test runner (no dependencies beyond Python 3).

Finds tests/e2e/test_*.py, runs every function named test_* in file order,
and prints one TAP-like line per test ("ok - module.test" / "not ok - …")
and a final "# N passed, N failed, N skipped". A test that cannot run here
calls harness.skip(reason) (it raises unittest.SkipTest): it is counted as
skipped and printed "ok - module.test # SKIP reason"; a setup_module that
raises SkipTest skips the whole module. A module may define setup_module() and
teardown_module() (e.g. to start a shared notebookd). Optional arguments
filter modules by substring.
"""
import importlib.util
import inspect
import os
import sys
import time
import traceback
import unittest

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)


def main():
    filters = sys.argv[1:]
    files = sorted(f for f in os.listdir(here) if f.startswith("test_") and f.endswith(".py"))
    passed = failed = skipped = 0
    for f in files:
        name = f[:-3]
        if filters and not any(x in name for x in filters) and not any(x in "e2e" for x in filters):
            continue
        spec = importlib.util.spec_from_file_location(name, os.path.join(here, f))
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
            if hasattr(mod, "setup_module"):
                mod.setup_module()
        except unittest.SkipTest as e:
            print("ok - %s # SKIP %s" % (name, e))
            skipped += 1
            continue
        except Exception:
            print("not ok - %s.setup" % name)
            traceback.print_exc(file=sys.stderr)
            failed += 1
            continue
        tests = [(n, fn) for n, fn in vars(mod).items() if n.startswith("test_") and inspect.isfunction(fn)]
        tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
        for tname, fn in tests:
            t0 = time.time()
            try:
                fn()
                print("ok - %s.%s (%.2fs)" % (name, tname, time.time() - t0))
                passed += 1
            except unittest.SkipTest as e:
                print("ok - %s.%s # SKIP %s" % (name, tname, e))
                skipped += 1
            except Exception:
                print("not ok - %s.%s" % (name, tname))
                sys.stderr.write("---- %s.%s\n" % (name, tname))
                traceback.print_exc(file=sys.stderr)
                failed += 1
            sys.stdout.flush()
        if hasattr(mod, "teardown_module"):
            try:
                mod.teardown_module()
            except Exception:
                print("not ok - %s.teardown" % name)
                traceback.print_exc(file=sys.stderr)
                failed += 1
    print("# %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
