"""The test runners cannot lie: a skipped test is counted and printed as
skipped with its reason (run.py and tests/t.h), never as a pass, and the
closing line counts passed, failed and skipped."""
import os
import subprocess
import sys
import tempfile

from harness import ROOT, check, eq

HERE = os.path.dirname(os.path.abspath(__file__))


def test_python_runner_reports_skips():
    d = tempfile.mkdtemp(prefix="runner-", dir=os.environ.get("NB_TEST_TMP"))
    for f in ("run.py", "harness.py"):
        with open(os.path.join(HERE, f)) as src, open(os.path.join(d, f), "w") as dst:
            dst.write(src.read())
    with open(os.path.join(d, "test_demo.py"), "w") as f:
        f.write("from harness import skip\n"
                "def test_skipped():\n    skip('no widget here')\n"
                "def test_passes():\n    pass\n"
                "def test_fails():\n    raise AssertionError('boom')\n")
    with open(os.path.join(d, "test_whole.py"), "w") as f:
        f.write("from harness import skip\n"
                "def setup_module():\n    skip('module needs a widget')\n"
                "def test_never():\n    raise AssertionError('ran')\n")
    r = subprocess.run([sys.executable, "run.py"], cwd=d, capture_output=True, text=True, timeout=60)
    lines = r.stdout.splitlines()
    check("ok - test_demo.test_skipped # SKIP no widget here" in lines, r.stdout)
    check(any(l.startswith("ok - test_demo.test_passes") for l in lines), r.stdout)
    check("not ok - test_demo.test_fails" in lines, r.stdout)
    check("ok - test_whole # SKIP module needs a widget" in lines, r.stdout)
    eq(lines[-1], "# 1 passed, 1 failed, 2 skipped")
    eq(r.returncode, 1)


def test_c_harness_reports_skips():
    """tests/t.h: T_SKIP ends a test as skipped; a check that failed before
    it still fails the test; t_skip reports a whole file."""
    d = tempfile.mkdtemp(prefix="th-", dir=os.environ.get("NB_TEST_TMP"))
    src = os.path.join(d, "t.c")
    with open(src, "w") as f:
        f.write('#include "t.h"\n'
                'static void test_skips(void) { T_SKIP("no widget"); CHECK(0); }\n'
                'static void test_fails_then_skips(void) { CHECK(1 == 2); T_SKIP("too late"); }\n'
                'static void test_passes(void) { CHECK(1); }\n'
                'int main(void) { T_RUN(test_skips); T_RUN(test_fails_then_skips); T_RUN(test_passes);\n'
                '  t_skip("whole_file", "no database"); return t_done(); }\n')
    exe = os.path.join(d, "t")
    subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", "-I", os.path.join(ROOT, "tests"), "-o", exe, src], check=True)
    r = subprocess.run([exe], capture_output=True, text=True, timeout=30)
    lines = r.stdout.splitlines()
    check("ok - test_skips # SKIP no widget" in lines, r.stdout)
    check("not ok - test_fails_then_skips" in lines, r.stdout)
    check("ok - test_passes" in lines, r.stdout)
    check("ok - whole_file # SKIP no database" in lines, r.stdout)
    eq(lines[-1], "# 1 passed, 1 failed, 2 skipped")
    eq(r.returncode, 1)
