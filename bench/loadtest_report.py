#!/usr/bin/env python3
"""loadtest_report.py — the load test's table and its verdict.

    loadtest_report.py OUT TITLE [check]

OUT is what bench/loadtest.lua's done() wrote (every latency per request
class, the status counts, wrk's own summary). Prints per class: requests,
requests/s, p50/p95/p99/max in ms and the error rate (any status but the
class's success status — 200, 201 for ask, 202 for add_source — or a socket
error/timeout that wrk counted). With "check" it exits 1 when a threshold is
missed; the thresholds, from the environment:
  LOADTEST_P95_MS (300), LOADTEST_P99_MS (500), LOADTEST_MAX_ERROR_PCT (1) —
  the original system's own k6 thresholds, for every class;
  LOADTEST_STRICT=1 adds this project's: p99 < LOADTEST_STRICT_P99_MS (50)
  for every class but login (an Argon2id hash each, queued on the hash pool).
"""
import os
import sys

SUCCESS = {"login": 200, "list": 200, "open": 200, "messages": 200, "ask": 201, "search": 200, "add_source": 202}
ORDER = list(SUCCESS)


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def main():
    out, title = sys.argv[1], sys.argv[2]
    check = len(sys.argv) > 3 and sys.argv[3] == "check"
    lat, cnt, wrk = {}, {}, None
    with open(out) as f:
        for line in f:
            p = line.split()
            if p[0] == "lat":
                lat.setdefault(p[1], []).extend(float(x) for x in p[2:])
            elif p[0] == "cnt":
                ep, st = p[1].rsplit(":", 1)
                cnt.setdefault(ep, {})[int(st)] = cnt.setdefault(ep, {}).get(int(st), 0) + int(p[2])
            elif p[0] == "wrk":
                wrk = [int(x) for x in p[1:]]
    unpaired = cnt.pop("unpaired", {}).get(0, 0)
    dur_s = wrk[0] / 1e6 if wrk else 1.0
    sock_errs = sum(wrk[2:6]) if wrk else 0
    p95_max = float(os.environ.get("LOADTEST_P95_MS", 300))
    p99_max = float(os.environ.get("LOADTEST_P99_MS", 500))
    err_max = float(os.environ.get("LOADTEST_MAX_ERROR_PCT", 1))
    strict = os.environ.get("LOADTEST_STRICT", "0") == "1"
    strict_p99 = float(os.environ.get("LOADTEST_STRICT_P99_MS", 50))
    print(title)
    print("%-11s %8s %8s %8s %8s %8s %9s %7s  %s" % ("endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms",
                                                   "max ms", "errors", "statuses"))
    failed = []
    total, total_bad, alll = 0, 0, []
    for ep in ORDER:
        vals = sorted(lat.get(ep, []))
        if not vals:
            continue
        codes = cnt.get(ep, {})
        bad = sum(n for st, n in codes.items() if st != SUCCESS[ep])
        n = len(vals)
        total += n
        total_bad += bad
        alll.extend(vals)
        errp = 100.0 * bad / n
        p50, p95, p99 = pct(vals, 50), pct(vals, 95), pct(vals, 99)
        print("%-11s %8d %8.1f %8.2f %8.2f %8.2f %9.2f %6.2f%%  %s" % (
            ep, n, n / dur_s, p50, p95, p99, vals[-1], errp,
            " ".join("%d:%d" % (st, codes[st]) for st in sorted(codes))))
        if p95 >= p95_max:
            failed.append("%s p95 %.1f ms >= %g" % (ep, p95, p95_max))
        if p99 >= p99_max:
            failed.append("%s p99 %.1f ms >= %g" % (ep, p99, p99_max))
        if errp >= err_max:
            failed.append("%s errors %.2f %% >= %g" % (ep, errp, err_max))
        if strict and ep != "login" and p99 >= strict_p99:
            failed.append("%s p99 %.1f ms >= %g (strict)" % (ep, p99, strict_p99))
    alll.sort()
    if total:
        errp = 100.0 * (total_bad + sock_errs) / total
        print("%-11s %8d %8.1f %8.2f %8.2f %8.2f %9.2f %6.2f%%  socket errors/timeouts: %d" % (
            "all", total, total / dur_s, pct(alll, 50), pct(alll, 95), pct(alll, 99), alll[-1], errp, sock_errs))
        if errp >= err_max:
            failed.append("all: errors %.2f %% >= %g" % (errp, err_max))
    else:
        failed.append("no request was answered")
    if unpaired:
        print("(%d requests of connections wrk re-opened were sent to /healthz, not recorded)" % unpaired)
    if check:
        print("thresholds: p95 < %g ms, p99 < %g ms, errors < %g %%%s" % (
            p95_max, p99_max, err_max, ", strict: p99 < %g ms but login" % strict_p99 if strict else ""))
        if failed:
            print("FAILED: " + "; ".join(failed))
            return 1
        print("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
