#!/usr/bin/env python3
"""soak_check.py — the soak's window lines and its trend verdict (bench/soak.sh).

    soak_check.py line  DIR W WINDOW_S    print window W's line (a header before window 0)
    soak_check.py check DIR N WINDOW_S    fit every series over windows 0..N-1; exit 1 on a trend

DIR holds lat.w<W>.t<T> (bench/loadtest.lua: "endpoint ms status" per
answer) and sample.<W> (bench/soak.sh: /proc and PostgreSQL figures).

The rule (bench/README.md, docs/architecture.md): for each series v_0..v_{N-1}
fit a least-squares line; its rise over the run is slope × (N − 1). A series
fails when that rise exceeds REL × v_0 + FLOOR:
  p99 of list, open, messages, ask, search   50 % of window 0 + 5 ms
  RSS                                        SOAK_RSS_MIB (16) MiB, also last − first (window 0 is the warm-up)
  open fds, PostgreSQL client connections    0 % + 8 (flat: pools and sockets do not leak)
  job queue depth (pending, running, failed)  0 % + 20 jobs
  dead-tuple ratio n_dead / (n_live + n_dead) 0 % + 0.10, per hot table
  bytes per live row (table + indexes + TOAST) 20 % + 64 B, per hot table with ≥ 1,000 rows
Table sizes and row counts grow by design (asks add messages, sources add
chunks and jobs); that is why dead tuples are a ratio and sizes are per row.
"""
import glob
import json
import os
import sys

EPS = ["list", "open", "messages", "ask", "search"]
RSS_MIB = float(os.environ.get("SOAK_RSS_MIB", 16))


def pct(vals, p):
    if not vals:
        return 0.0
    vals = sorted(vals)
    return vals[max(0, min(len(vals) - 1, int(round(p / 100.0 * len(vals) + 0.5)) - 1))]


def window(d, w, win_s):
    lat, bad, n = {}, 0, 0
    ok = {"login": "200", "ask": "201", "add_source": "202"}
    for fn in glob.glob(os.path.join(d, "lat.w%d.t*" % w)):
        for line in open(fn):
            ep, ms, st = line.split()
            lat.setdefault(ep, []).append(float(ms))
            n += 1
            bad += st != ok.get(ep, "200")
    s = {"w": w, "rps": n / float(win_s), "errors": bad}
    for ep in EPS + ["add_source"]:
        s["p99_" + ep] = pct(lat.get(ep, []), 99)
    tables = {}
    for line in open(os.path.join(d, "sample.%d" % w)):
        p = line.split()
        if not p:
            continue
        if p[0] == "proc":
            s["rss_mib"] = int(p[2]) / 1024.0
            s["fds"] = int(p[3])
        elif p[0] == "pg":
            s["pg_conns"] = int(p[1])
        elif p[0] == "queue":
            s["queue"] = int(p[1])
        elif p[0] == "table":
            live, dead, size = int(p[2]), int(p[3]), int(p[4])
            tables[p[1]] = {"live": live, "dead_ratio": dead / float(max(live + dead, 1)),
                            "bytes_per_row": size / float(max(live, 1))}
    s["tables"] = tables
    return s


def line(d, w, win_s):
    s = window(d, w, win_s)
    json.dump(s, open(os.path.join(d, "series.%d.json" % w), "w"))
    if w == 0:
        print("| window | req/s | errors | p99 ms list / open / messages / ask / search | RSS MiB | fds | PG conns |"
              " queue | dead ratio max (table) | bytes/row messages / chunks / jobs |")
        print("|---|---|---|---|---|---|---|---|---|---|")
    t = s["tables"]
    worst = max(t.items(), key=lambda kv: kv[1]["dead_ratio"]) if t else ("-", {"dead_ratio": 0})
    bpr = lambda name: "%.0f" % t[name]["bytes_per_row"] if name in t else "-"
    print("| %d | %.1f | %d | %s | %.1f | %d | %d | %d | %.3f (%s) | %s / %s / %s |" % (
        w, s["rps"], s["errors"], " / ".join("%.1f" % s["p99_" + ep] for ep in EPS), s["rss_mib"], s["fds"],
        s["pg_conns"], s["queue"], worst[1]["dead_ratio"], worst[0], bpr("messages"), bpr("chunks"), bpr("jobs")),
        flush=True)


def rise(vals):
    n = len(vals)
    xm = (n - 1) / 2.0
    ym = sum(vals) / n
    den = sum((i - xm) ** 2 for i in range(n))
    slope = sum((i - xm) * (v - ym) for i, v in enumerate(vals)) / den if den else 0.0
    return slope * (n - 1)


def check(d, n):
    ss = [json.load(open(os.path.join(d, "series.%d.json" % w))) for w in range(n)]
    series = []  # (name, values, rel, floor)
    for ep in EPS:
        series.append(("p99 " + ep + " ms", [s["p99_" + ep] for s in ss], 0.5, 5.0))
    series.append(("RSS MiB", [s["rss_mib"] for s in ss], 0.0, RSS_MIB))
    series.append(("open fds", [s["fds"] for s in ss], 0.0, 8))
    series.append(("PostgreSQL connections", [s["pg_conns"] for s in ss], 0.0, 8))
    series.append(("job queue depth", [s["queue"] for s in ss], 0.0, 20))
    for name in sorted(ss[0]["tables"]):
        if all(name in s["tables"] for s in ss):
            series.append(("dead ratio " + name, [s["tables"][name]["dead_ratio"] for s in ss], 0.0, 0.10))
            if ss[0]["tables"][name]["live"] >= 1000:
                series.append(("bytes/row " + name, [s["tables"][name]["bytes_per_row"] for s in ss], 0.2, 64))
    failed = []
    print("trend over %d windows (least-squares rise over the run, limit = rel × window 0 + floor):" % n)
    for name, vals, rel, floor in series:
        r = rise(vals)
        lim = rel * vals[0] + floor
        bad = r > lim
        if name == "RSS MiB" and vals[-1] - vals[0] > RSS_MIB:
            bad = True
        print("  %-32s first %10.3f last %10.3f rise %10.3f limit %10.3f %s" % (
            name, vals[0], vals[-1], r, lim, "FAIL" if bad else "ok"))
        if bad:
            failed.append(name)
    if failed:
        print("soak FAILED: upward trend in " + ", ".join(failed))
        return 1
    print("soak passed: no series trends upward beyond its tolerance")
    return 0


if __name__ == "__main__":
    cmd, d, k, win = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if cmd == "line":
        line(d, k, win)
    else:
        sys.exit(check(d, k))
