"""The README's examples run as written, top to bottom: every ```sh block
right after a `<!-- readme: run -->` line, in order, as one POSIX shell
script (sh -eu) against a live server with a database of its own, with API
set to it and NOTEBOOKD_MAIL_DIR to its mail folder, in a scratch directory
(the examples write under var/). curl is wrapped with --fail-with-body, so
an example that gets a 4xx or 5xx answer fails the test and shows it. Add an
example to the README by marking its block; keep each block runnable after
the ones above it."""
import json
import os
import re
import subprocess
import tempfile

from harness import ROOT, Server, check, eq, free_port

MARK = "<!-- readme: run -->"


def readme_blocks(path=os.path.join(ROOT, "README.md")):
    """The runnable blocks, in order: (line number, text)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks = []
    for i, line in enumerate(lines):
        if line.strip() != MARK:
            continue
        check(i + 1 < len(lines) and lines[i + 1].strip() == "```sh",
              "README.md:%d: %s must be followed by a ```sh block" % (i + 1, MARK))
        end = lines.index("```", i + 2)
        blocks.append((i + 3, "\n".join(lines[i + 2:end])))
    return blocks


def test_blocks_are_marked():
    blocks = readme_blocks()
    check(len(blocks) >= 5, blocks)
    text = "\n".join(b for _, b in blocks)
    # nothing that needs the internet, no jq
    check(not re.search(r"https://(?!127\.0\.0\.1)", text), "an example reaches the internet")
    check(not re.search(r"\bjq\b", text), "jq is not a dependency")
    # one registration of the example account
    eq(text.count("/v1/auth/register"), 1)


def test_readme_examples_run_top_to_bottom():
    srv = Server(isolated=True, env={"NOTEBOOKD_AUTH_RATE_PER_MIN": "10"})
    try:
        work = tempfile.mkdtemp(prefix="readme-", dir=os.environ.get("NB_TEST_TMP"))
        script = ["curl() { command curl --fail-with-body --show-error \"$@\"; }"]
        for line, block in readme_blocks():
            script.append("echo '## README.md:%d' >&2" % line)
            script.append(block)
        script.append("echo README-DONE")
        env = dict(os.environ, API="http://127.0.0.1:%d" % srv.port, NOTEBOOKD_MAIL_DIR=srv.mail_dir,
                   WWW_PORT=str(free_port()))
        r = subprocess.run(["sh", "-eu", "-c", "\n".join(script)], cwd=work, env=env, capture_output=True,
                           text=True, timeout=180)
        where = (re.findall(r"## README.md:\d+", r.stderr) or ["before the first block"])[-1]
        check(r.returncode == 0 and r.stdout.rstrip().endswith("README-DONE"),
              "the README's examples stopped in the block at %s (exit %d):\n--- stdout\n%s\n--- stderr\n%s"
              % (where, r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
        # the sources became ready, the URL one from the local page included
        eq(len(re.findall(r"source [0-9a-f-]{36}: ready$", r.stdout, re.M)), 3, r.stdout[-2000:])
        with open(os.path.join(work, "var", "export.json"), encoding="utf-8") as f:
            export = json.load(f)
        texts = [s["text"] for s in export["notebooks"][0]["sources"]]
        eq(len(texts), 3)
        check(any("mitochondrion is an organelle" in (t or "") for t in texts), texts)
        # the last example erased the account
        eq(srv.psql("SELECT count(*) FROM users"), "0")
    finally:
        eq(srv.stop(), 0)
