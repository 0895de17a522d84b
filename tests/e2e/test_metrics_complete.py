"""End-to-end test of the metrics the operator's dashboard and alert rules
rely on (issue 13, point 10).

Every metric name in every PromQL expression of ops/grafana/notebookd.json
and ops/prometheus/alerts.yml must exist on /metrics of a running
`notebookd serve` or `notebookd worker` (the worker serves /metrics on
NOTEBOOKD_METRICS_LISTEN). The rules file is checked for structure (every
rule has an expr, a `for:`, a severity and a summary pointing to a playbook
of docs/operations.md that exists). The page must parse under a strict
parser of the Prometheus text format 0.0.4 (HELP/TYPE once and before the
samples, families contiguous, no duplicate series, histograms cumulative
with +Inf == _count). Labels stay bounded: an unknown path is counted under
route="unmatched", never under its raw path, and every route label is a
template of docs/openapi.json. Counters move for the traffic made (requests
of several routes, a source ingested by the worker, a chat answer and a quiz
with the extractive generator). The queue query at scrape time fails safe:
with the jobs table locked it gives up at its statement timeout and the page
still answers, with notebookd_jobs_queue_scrape_error 1; a server whose
database is unreachable answers /metrics too."""
import json
import math
import os
import re
import subprocess
import time
import uuid

import yaml

import harness
from harness import ROOT, Server, check, eq, free_port, psql, wait_until

DASHBOARD = os.path.join(ROOT, "ops", "grafana", "notebookd.json")
ALERTS = os.path.join(ROOT, "ops", "prometheus", "alerts.yml")
OPERATIONS = os.path.join(ROOT, "docs", "operations.md")

srv = None
worker = None


class Worker(harness.Worker):
    """`notebookd worker` with its /metrics listener, on the server's database."""

    def __init__(self, db_url):
        self.port = free_port()
        harness.Worker.__init__(self, db_url, name="worker-metrics",
                                env={"NOTEBOOKD_METRICS_LISTEN": "127.0.0.1:%d" % self.port,
                                     "NOTEBOOKD_JOB_POLL_MS": "200", "NOTEBOOKD_ALLOW_PRIVATE_URLS": "1"})
        wait_until(self._up, 30, "the worker's metrics listener")

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError("notebookd worker exited: " + self.read_log()[-3000:])
        try:
            return self.scrape_raw()[0] == 200
        except OSError:
            return False

    def scrape_raw(self, path="/metrics"):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type"), r.read().decode("utf-8")
        finally:
            conn.close()


def setup_module():
    global srv, worker
    # jobs run only in the worker process, so that its page must carry the job metrics
    srv = Server(isolated=True, env={"NOTEBOOKD_WORKERS": "0", "NOTEBOOKD_GENERATOR": "extractive"})
    worker = Worker(srv.db_url)


def teardown_module():
    if worker:
        eq(worker.stop(), 0)
    if srv:
        eq(srv.stop(), 0)


# ---------------------------------------------------------------- the text format

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*$")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_value(s, line):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    check(re.match(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$", s), "bad value in %r" % line)
    return float(s)


def parse_labels(s, line):
    """s: the text after '{'. Returns (labels, rest after '}')."""
    labels, i = {}, 0
    while True:
        if s[i:i + 1] == "}":
            return labels, s[i + 1:]
        m = re.match(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"", s[i:])
        check(m, "bad label in %r" % line)
        name = m.group(1)
        i += m.end()
        val = []
        while True:
            check(i < len(s), "unterminated label value in %r" % line)
            c = s[i]
            if c == "\\":
                nxt = s[i + 1:i + 2]
                check(nxt in ("\\", "\"", "n"), "bad escape in %r" % line)
                val.append({"\\": "\\", "\"": "\"", "n": "\n"}[nxt])
                i += 2
            elif c == "\"":
                i += 1
                break
            else:
                val.append(c)
                i += 1
        check(name not in labels, "label %s twice in %r" % (name, line))
        labels[name] = "".join(val)
        if s[i:i + 1] == ",":
            i += 1
            continue
        check(s[i:i + 1] == "}", "expected , or } in %r" % line)


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[:-len(suffix)]) in ("histogram", "summary"):
            return name[:-len(suffix)]
    return name


def parse_metrics(text):
    """A strict parser of the Prometheus text format 0.0.4. Returns
    (types, samples): types {family: type}; samples [(name, labels, value)]."""
    check(text.endswith("\n"), "the page must end with a newline")
    helps, types, samples, order, seen_series = {}, {}, [], [], set()
    for line in text.split("\n")[:-1]:
        check(line.strip() != "" or line == "", "whitespace-only line")
        if line == "":
            continue
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) (\S+) (.*)$", line)
            if not m:
                continue  # a plain comment
            kind, name, rest = m.groups()
            check(NAME.match(name), "bad metric name %r" % name)
            if kind == "HELP":
                check(name not in helps, "HELP twice for %s" % name)
                helps[name] = rest
            else:
                check(name not in types, "TYPE twice for %s" % name)
                check(rest in TYPES, "bad type %r" % line)
                check(name not in order, "TYPE of %s after its samples" % name)
                types[name] = rest
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{|\s)", line)
        check(m, "bad sample line %r" % line)
        name = m.group(1)
        rest = line[m.end(1):]
        labels = {}
        if rest.startswith("{"):
            labels, rest = parse_labels(rest[1:], line)
        parts = rest.strip().split(" ")
        check(rest.startswith(" ") and 1 <= len(parts) <= 2, "bad sample line %r" % line)
        value = parse_value(parts[0], line)
        if len(parts) == 2:
            check(re.match(r"^-?\d+$", parts[1]), "bad timestamp in %r" % line)
        fam = family_of(name, types)
        check(fam in types, "%s has no # TYPE before its samples" % name)
        check(fam in helps, "%s has no # HELP" % fam)
        if not order or order[-1] != fam:
            check(fam not in order, "the samples of %s are not together" % fam)
            order.append(fam)
        key = (name, tuple(sorted(labels.items())))
        check(key not in seen_series, "series twice: %r" % line)
        seen_series.add(key)
        if types[fam] == "counter" or name.endswith(("_bucket", "_count")):
            check(value >= 0 and not math.isnan(value), "negative counter %r" % line)
        samples.append((name, labels, value))
    check_histograms(types, samples)
    return types, samples


def check_histograms(types, samples):
    for fam, t in types.items():
        if t != "histogram":
            continue
        groups = {}
        for name, labels, value in samples:
            if family_of(name, types) != fam:
                continue
            base = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            g = groups.setdefault(base, {"buckets": [], "sum": None, "count": None})
            if name == fam + "_bucket":
                check("le" in labels, "%s bucket without le" % fam)
                g["buckets"].append((parse_value(labels["le"], labels["le"]), value))
            elif name == fam + "_sum":
                g["sum"] = value
            elif name == fam + "_count":
                g["count"] = value
            else:
                raise AssertionError("stray sample %s in histogram %s" % (name, fam))
        for base, g in groups.items():
            b = g["buckets"]
            check(b and b[-1][0] == float("inf"), "%s%r: no +Inf bucket" % (fam, base))
            check(all(b[i][0] < b[i + 1][0] for i in range(len(b) - 1)), "%s: le not increasing" % fam)
            check(all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1)), "%s: buckets not cumulative" % fam)
            check(g["sum"] is not None and g["count"] is not None, "%s%r: _sum or _count missing" % (fam, base))
            eq(g["count"], b[-1][1], "%s%r: _count != +Inf bucket" % (fam, base))


def scrape(which):
    if which == "server":
        r = srv.get("/metrics")
        status, ctype, body = r.status, r.header("Content-Type"), r.body
    else:
        status, ctype, body = worker.scrape_raw()
    eq(status, 200, body[:500])
    check(ctype.startswith("text/plain; version=0.0.4"), ctype)
    return parse_metrics(body)


def value(samples, name, **labels):
    """The sum of the samples of name whose labels include `labels` (0 if none)."""
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in labels.items()))


def has(samples, name, **labels):
    return any(n == name and all(l.get(k) == x for k, x in labels.items()) for n, l, v in samples)


# ---------------------------------------------------------------- names in PromQL

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
            "offset", "inf", "nan"}


def promql_names(expr):
    """The metric names an expression reads: identifiers left after removing
    strings, label matchers, ranges, grouping clauses, function calls and
    Grafana variables."""
    e = re.sub(r'"(\\.|[^"\\])*"', '""', expr)          # string literals (label values, regexes)
    e = re.sub(r"\{[^}]*\}", "", e)                      # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                     # range selectors [5m], [$__rate_interval]
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)                   # Grafana variables
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word = m.group(0)
        after = e[m.end():].lstrip()
        if after.startswith("("):      # a function or aggregation
            continue
        if word.lower() in KEYWORDS or re.match(r"^\d", word):
            continue
        # a number's exponent or a duration is not a name (0.5e3, 5m): skip what follows a digit
        if m.start() > 0 and (e[m.start() - 1].isdigit() or e[m.start() - 1] == "."):
            continue
        names.add(word)
    return names


def dashboard_exprs():
    with open(DASHBOARD, encoding="utf-8") as f:
        d = json.load(f)
    exprs = []

    def walk(p):
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
        for sub in p.get("panels", []):
            walk(sub)
    for p in d["panels"]:
        walk(p)
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.match(r"label_values\((\w+)", q or "")
        if m:
            exprs.append(("variable " + v["name"], m.group(1)))
    return d, exprs


def alert_rules():
    with open(ALERTS, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return [r for g in doc["groups"] for r in g["rules"]]


def test_promql_name_extraction():
    # the extraction itself, on the shapes the files use
    eq(promql_names('histogram_quantile(0.99, sum by (le, route) (rate(a_b_bucket{route!~"x|y",s="5.."}[5m]))) > 1'),
       {"a_b_bucket"})
    eq(promql_names("max by (instance) (x_lag) > 30 and on (instance) max by (instance) (y_conf) == 1"),
       {"x_lag", "y_conf"})
    eq(promql_names("time() - max(z_ts) > 7200"), {"z_ts"})
    eq(promql_names('sum(rate(a_total{i=~"$instance"}[$__rate_interval])) / sum(rate(b_count[$__range]))'),
       {"a_total", "b_count"})
    eq(promql_names("max(process_open_fds / process_max_fds) > 0.8"), {"process_open_fds", "process_max_fds"})


def test_alert_rules_are_well_formed():
    with open(OPERATIONS, encoding="utf-8") as f:
        ops = f.read()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", ops, re.M)}
    rules = alert_rules()
    check(len(rules) >= 8, rules)
    names = set()
    for r in rules:
        check(set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r)
        check(r.get("alert") and re.match(r"^[A-Za-z][A-Za-z0-9_]*$", r["alert"]), r)
        check(r["alert"] not in names, "alert %s twice" % r["alert"])
        names.add(r["alert"])
        check(isinstance(r.get("expr"), str) and r["expr"].strip(), r)
        check(re.match(r"^\d+[smhd]$", str(r.get("for", ""))), "%s: for: missing or malformed" % r["alert"])
        check(r.get("labels", {}).get("severity") in ("page", "warning"), "%s: severity" % r["alert"])
        ann = r.get("annotations", {})
        check(ann.get("summary"), "%s: no summary" % r["alert"])
        m = re.search(r"docs/operations\.md#([a-z0-9-]+)", ann["summary"])
        check(m, "%s: the summary names no playbook" % r["alert"])
        check(m.group(1) in anchors, "%s: docs/operations.md has no section #%s" % (r["alert"], m.group(1)))
        check(r["expr"].count("(") == r["expr"].count(")"), "%s: unbalanced parentheses" % r["alert"])
    # what issue 13 asks the rules to cover
    text = " ".join(r["expr"] for r in rules)
    for needed in ["notebookd_http_route_requests_total{status=~\"5..\"}", "histogram_quantile(0.99",
                   "notebookd_db_waiting", "notebookd_jobs_queue_depth", "notebookd_jobs_oldest_ready_age_seconds",
                   "notebookd_db_breaker_state", "notebookd_db_replica_lag_seconds",
                   "notebookd_db_replica_configured) == 1"]:
        check(needed in text, "no alert rule uses %s" % needed)


# ---------------------------------------------------------------- traffic

traffic = {}


def make_traffic():
    """Requests of several routes, a source the worker ingests, a chat answer
    and a quiz with the extractive generator, and unknown paths. Once."""
    if traffic:
        return traffic
    traffic["before_srv"] = scrape("server")[1]
    traffic["before_wrk"] = scrape("worker")[1]
    r = srv.post("/v1/auth/register", {"email": "metrics-%s@example.com" % uuid.uuid4().hex[:10],
                                       "password": "long enough pw"})
    eq(r.status, 201, r.body)
    tok = r.json["access_token"]
    r = srv.post("/v1/notebooks", {"title": "metrics"}, token=tok)
    eq(r.status, 201, r.body)
    nb = r.json["id"]
    for _ in range(3):
        eq(srv.get("/v1/notebooks/" + nb, token=tok).status, 200)
    eq(srv.get("/v1/notebooks", token=tok).status, 200)
    eq(srv.get("/v1/notebooks/" + str(uuid.uuid4()), token=tok).status, 404)  # a known route, 404
    r = srv.post("/v1/notebooks/%s/sources" % nb,
                 {"kind": "text", "title": "Cells", "content": "Mitochondria make ATP for the cell. "
                  "Ribosomes build proteins from amino acids. The nucleus holds the DNA."}, token=tok)
    eq(r.status, 202, r.body)
    sid = r.json["source"]["id"]

    def ready():
        s = srv.get("/v1/sources/" + sid, token=tok)
        eq(s.status, 200)
        check(s.json["status"] != "failed", s.json)
        return s.json["status"] == "ready"
    wait_until(ready, 60, "the source to be ingested by the worker")
    eq(srv.get("/v1/notebooks/%s/search?q=mitochondria" % nb, token=tok).status, 200)
    r = srv.post("/v1/notebooks/%s/conversations" % nb, {}, token=tok)
    eq(r.status, 201, r.body)
    r = srv.post("/v1/conversations/%s/messages" % r.json["id"], {"content": "What makes ATP?"}, token=tok)
    eq(r.status, 201, r.body)
    r = srv.post("/v1/notebooks/%s/quizzes" % nb, {"num_questions": 2}, token=tok)
    eq(r.status, 202, r.body)
    qid = r.json["id"]

    def quiz_done():
        q = srv.get("/v1/quizzes/" + qid, token=tok)
        eq(q.status, 200)
        return q.json["status"] != "pending"
    wait_until(quiz_done, 60, "the quiz to be generated by the worker")
    # unknown paths: counted, never as a label of their own
    for path in ("/v1/xyz/123", "/v1/xyz/456", "/nope-%s" % uuid.uuid4().hex[:6]):
        eq(srv.get(path).status, 404)
    eq(srv.request("PUT", "/v1/notebooks").status, 405)
    traffic["after_srv"] = scrape("server")[1]
    traffic["after_wrk"] = scrape("worker")[1]
    return traffic


def test_the_pages_parse_strictly():
    for which in ("server", "worker"):
        types, samples = scrape(which)
        check(len(types) >= 20, (which, sorted(types)))
        check("notebookd_http_request_duration_seconds" in types or which == "worker", which)
        eq(types.get("notebookd_db_acquire_wait_duration_seconds"), "histogram", which)
        if which == "worker":  # the server runs no jobs here (NOTEBOOKD_WORKERS=0): no job families
            eq(types.get("notebookd_job_duration_seconds"), "histogram", which)
        else:
            check("notebookd_jobs_total" not in types, "a job family without samples")
        eq(types.get("notebookd_generation_duration_seconds"), "histogram", which)
    # the worker's listener serves only /metrics and /healthz
    eq(worker.scrape_raw("/healthz")[0], 200)
    eq(worker.scrape_raw("/v1/notebooks")[0], 404)


def test_every_metric_in_the_dashboard_and_the_rules_exists():
    t = make_traffic()
    present = {n for n, l, v in t["after_srv"]} | {n for n, l, v in t["after_wrk"]}
    d, exprs = dashboard_exprs()
    check(len(d["panels"]) >= 15, len(d["panels"]))
    exprs += [("alert " + r["alert"], r["expr"]) for r in alert_rules()]
    wanted = {}
    for where, expr in exprs:
        names = promql_names(expr)
        check(names, "%s: no metric in %r" % (where, expr))
        for n in names:
            wanted.setdefault(n, []).append(where)
    check(len(wanted) >= 25, sorted(wanted))
    missing = sorted(n for n in wanted if n not in present)
    # the replica metrics come with the read-replica branch (h13-replica); after the merge none is missing
    eq(missing, [], "metrics named in ops/ but absent from /metrics: " +
       "; ".join("%s (%s)" % (n, ", ".join(sorted(set(wanted[n])))) for n in missing))


def test_route_labels_are_bounded():
    t = make_traffic()
    with open(os.path.join(ROOT, "docs", "openapi.json"), encoding="utf-8") as f:
        templates = set(json.load(f)["paths"])
    samples = t["after_srv"]
    routes = {l["route"] for n, l, v in samples if "route" in l}
    check("/v1/notebooks/{id}" in routes, routes)
    check(routes <= templates | {"unmatched"}, "route labels that are not templates: %s" %
          sorted(routes - templates - {"unmatched"}))
    for n, l, v in samples:
        for k, x in l.items():
            check("xyz" not in x and "nope-" not in x and "123" not in x, "a raw path leaked into %s %r" % (n, l))
    # the three unknown paths and the 405 are counted as unmatched
    moved = (value(samples, "notebookd_http_route_requests_total", route="unmatched") -
             value(t["before_srv"], "notebookd_http_route_requests_total", route="unmatched"))
    check(moved >= 4, moved)
    check(value(samples, "notebookd_http_route_requests_total", route="unmatched", status="404") >= 3)
    check(value(samples, "notebookd_http_route_requests_total", route="unmatched", status="405") >= 1)
    statuses = {l["status"] for n, l, v in samples if n == "notebookd_http_route_requests_total"}
    check(all(re.match(r"^([1-5]\d\d|[1-5]xx)$", s) for s in statuses), statuses)


def test_counters_move_for_the_traffic():
    t = make_traffic()
    b, a = t["before_srv"], t["after_srv"]
    bw, aw = t["before_wrk"], t["after_wrk"]

    def moved(before, after, name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)
    nb = "/v1/notebooks/{id}"
    eq(moved(b, a, "notebookd_http_route_requests_total", method="GET", route=nb, status="200"), 3)
    eq(moved(b, a, "notebookd_http_route_requests_total", method="GET", route=nb, status="404"), 1)
    eq(moved(b, a, "notebookd_http_route_requests_total", method="POST", route="/v1/notebooks", status="201"), 1)
    eq(moved(b, a, "notebookd_http_route_requests_total", method="POST", route="/v1/auth/register",
             status="201"), 1)
    eq(moved(b, a, "notebookd_http_request_duration_seconds_count", method="GET", route=nb), 4)
    check(moved(b, a, "notebookd_http_request_duration_seconds_sum", method="GET", route=nb) > 0)
    check(moved(b, a, "notebookd_http_request_duration_seconds_bucket", method="GET", route=nb, le="+Inf") == 4)
    # the database pools: the server's loops, the worker's jobs pool
    check(moved(b, a, "notebookd_db_acquire_wait_duration_seconds_count", pool="loops") > 0)
    check(moved(bw, aw, "notebookd_db_acquire_wait_duration_seconds_count", pool="jobs") > 0)
    # jobs ran in the worker, by kind and outcome
    check(moved(bw, aw, "notebookd_jobs_total", kind="ingest_source", status="succeeded") >= 1,
          [x for x in aw if x[0] == "notebookd_jobs_total"])
    check(moved(bw, aw, "notebookd_jobs_total", kind="generate_quiz", status="succeeded") >= 1)
    check(moved(bw, aw, "notebookd_job_duration_seconds_count", kind="ingest_source") >= 1)
    # generation: the chat answer in the server, the quiz in the worker
    eq(moved(b, a, "notebookd_generation_duration_seconds_count", provider="extractive", use="chat"), 1)
    check(moved(bw, aw, "notebookd_generation_duration_seconds_count", provider="extractive", use="study") >= 1)
    eq(value(a, "notebookd_generation_errors_total", provider="extractive"), 0)
    # the queue, as the database sees it: nothing waits now; the query answered
    for s in (a, aw):
        eq(value(s, "notebookd_jobs_queue_scrape_error"), 0, srv.read_log()[-3000:] + worker.read_log()[-2000:])
        check(has(s, "notebookd_jobs_queue_depth", status="pending"), "no queue depth")
        check(has(s, "notebookd_jobs_oldest_ready_age_seconds"))
    # the process
    for s in (a, aw):
        check(value(s, "process_resident_memory_bytes") > 1 << 20)
        check(0 < value(s, "process_open_fds") <= value(s, "process_max_fds"))
        check(time.time() - 3600 < value(s, "process_start_time_seconds") <= time.time() + 1)
    check(value(a, "notebookd_http_connections_open") >= 1)


def test_queue_depth_and_oldest_ready_age_follow_the_queue():
    make_traffic()  # a user exists
    # a job due ten minutes ago that no worker takes ('noop' is registered only with
    # NOTEBOOKD_DEBUG_ROUTES): depth and age show it
    uid = psql("SELECT id FROM users LIMIT 1", srv.db_url)
    jid = str(uuid.uuid4())
    psql("INSERT INTO jobs (id, user_id, kind, run_at) VALUES ('%s', '%s', 'noop', "
         "now() - interval '10 minutes')" % (jid, uid), srv.db_url)
    try:
        types, s = scrape("server")
        check(value(s, "notebookd_jobs_queue_depth", status="pending") >= 1)
        age = value(s, "notebookd_jobs_oldest_ready_age_seconds")
        check(590 <= age <= 3600, age)
        types, s = scrape("worker")
        check(590 <= value(s, "notebookd_jobs_oldest_ready_age_seconds") <= 3600)
    finally:
        psql("DELETE FROM jobs WHERE id = '%s'" % jid, srv.db_url)


def test_a_locked_queue_makes_a_scrape_error_not_a_hung_scrape():
    # hold an exclusive lock on jobs: the scrape-time query waits, then its statement_timeout ends it
    holder = subprocess.Popen(["psql", srv.db_url, "-v", "ON_ERROR_STOP=1", "-c",
                               "BEGIN; LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                                "WHERE c.relname = 'jobs' AND l.mode = 'AccessExclusiveLock' AND l.granted",
                                srv.db_url) == "1", 10, "the lock on jobs")
        for which in ("server", "worker"):
            types, s = scrape(which)
            eq(value(s, "notebookd_jobs_queue_scrape_error"), 1, which)
            check(not has(s, "notebookd_jobs_queue_depth"), which)
            check(has(s, "notebookd_http_connections_open") or which == "worker", which)
            check(has(s, "process_resident_memory_bytes"), which)
    finally:
        holder.wait(30)
    wait_until(lambda: value(scrape("server")[1], "notebookd_jobs_queue_scrape_error") == 0, 10,
               "the queue query to answer again")
    eq(value(scrape("worker")[1], "notebookd_jobs_queue_scrape_error"), 0)


def test_metrics_answer_without_a_database():
    dead = "postgresql://nobody@127.0.0.1:%d/none?connect_timeout=2" % free_port()
    s2 = Server(database_url=dead, env={"NOTEBOOKD_WORKERS": "0"})
    try:
        r = s2.get("/metrics")
        eq(r.status, 200)
        types, s = parse_metrics(r.body)
        eq(value(s, "notebookd_jobs_queue_scrape_error"), 1)
        check(not has(s, "notebookd_jobs_queue_depth"))
        check(has(s, "notebookd_db_breaker_state"))
    finally:
        eq(s2.stop(), 0)


def test_a_request_past_its_deadline_is_counted_once():
    # the deadline answers 503 on the loop; the handler's late answer must not count a second time
    s2 = Server(env={"NOTEBOOKD_DEBUG_ROUTES": "1", "NOTEBOOKD_REQUEST_TIMEOUT_MS": "400", "NOTEBOOKD_WORKERS": "0"})
    try:
        eq(s2.get("/debug/sleep?ms=1500").status, 503)

        def settled():
            types, s = parse_metrics(s2.get("/metrics").body)
            return value(s, "notebookd_http_requests_in_flight") <= 1 and s  # only the scrape itself
        s = wait_until(settled, 10, "the late handler to finish")
        eq(value(s, "notebookd_http_route_requests_total", route="/debug/sleep"), 1)
        eq(value(s, "notebookd_http_route_requests_total", route="/debug/sleep", status="503"), 1)
        eq(value(s, "notebookd_http_request_duration_seconds_count", route="/debug/sleep"), 1)
        eq(value(s, "notebookd_http_request_timeouts_total"), 1)
    finally:
        eq(s2.stop(), 0)
