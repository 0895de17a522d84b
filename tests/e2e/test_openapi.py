"""docs/openapi.json: a valid OpenAPI 3.1 document, served as built at
GET /openapi.json, covering every route the server has (and only those),
and strict enough that a response which drifts from it fails (the harness
checks every response of every e2e test against it; see harness.py)."""
import json
import re
import uuid

import jsonschema

import harness
from harness import Server, check, eq

srv = None


def setup_module():
    global srv
    srv = Server()


def teardown_module():
    eq(srv.stop(), 0)


def test_document_is_valid_openapi_31():
    doc = harness.openapi().doc
    eq(doc["openapi"], "3.1.0")
    for name, schema in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            check(op.get("responses"), "%s %s has no responses" % (method, path))
            for status in op["responses"]:
                check(status.isdigit() and 100 <= int(status) < 600, "%s %s: status %r" % (method, path, status))
            # every resolved schema is usable
            for status, resp in op["responses"].items():
                for media in harness.openapi().resolve(resp).get("content", {}).values():
                    jsonschema.Draft202012Validator.check_schema(harness.openapi().resolve(media["schema"]))
    # every documented operation names its tag, and every tag is declared
    tags = {t["name"] for t in doc["tags"]}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            check(set(op.get("tags", [])) <= tags and op.get("tags"), "%s %s: tags %r" % (method, path, op.get("tags")))


def test_resources_are_strict():
    """Resource schemas require every field and allow no other, so a field
    added to or dropped from an answer fails the tests."""
    with open(harness.OPENAPI_PATH, encoding="utf-8") as f:
        schemas = json.load(f)["components"]["schemas"]  # as written, before the harness's allow-list
    for name in ("User", "Tokens", "Notebook", "Source", "Chunk", "Job", "SearchHit", "SearchResult", "Error"):
        s = schemas[name]
        eq(s.get("additionalProperties"), False, name)
        if name != "Error":
            eq(sorted(s["required"]), sorted(s["properties"]), name)


def test_served_document_is_the_file():
    r = srv.get("/openapi.json")
    eq(r.status, 200)
    eq(r.header("Content-Type"), "application/json")
    with open(harness.OPENAPI_PATH, encoding="utf-8") as f:
        check(r.json == json.load(f), "GET /openapi.json is not docs/openapi.json (rebuild: make)")


def test_every_documented_operation_is_routed():
    """Routing comes before authentication: without a token a routed /v1
    operation answers 401 (or, if public, anything but 404/405); an unknown
    one 404 or 405."""
    doc = harness.openapi().doc
    missing = []
    for path, item in doc["paths"].items():
        for method in item:
            concrete = path.replace("{id}", str(uuid.uuid4()))
            if path == "/assets/{version}/{file}":  # the web app's files: a real one
                concrete = re.search(r'src="(/assets/[^"]+)"', srv._request("GET", "/").body).group(1)
            r = srv._request(method.upper(), concrete, raw=b"{}" if method != "get" else None,
                             headers={"Content-Type": "application/json"} if method != "get" else None)
            # no token: a routed operation that needs one answers 401 before it looks for the resource
            if r.status in (404, 405):
                missing.append("%s %s -> %d" % (method.upper(), path, r.status))
    eq(missing, [], "documented but not routed")


def test_undocumented_route_and_status_are_caught():
    """The check can fail: an extra field, a missing one, a wrong type, an
    undocumented status or route are each reported with route and JSON path."""
    o = harness.openapi()
    tok = srv.post("/v1/auth/register", {"email": "oa-%s@example.com" % uuid.uuid4().hex[:8],
                                         "password": "long enough pw"}).json["access_token"]
    me = srv.get("/v1/me", token=tok)
    eq(me.status, 200)
    h = [("Content-Type", "application/json")]
    eq(o.problems("GET", "/v1/me", 200, h, me.body), [])
    extra = dict(me.json, secret="x")
    p = o.problems("GET", "/v1/me", 200, h, json.dumps(extra))
    check(p and "GET /v1/me -> 200" in p[0] and "$" in p[0] and "secret" in p[0], p)
    wrong = dict(me.json, created_at="yesterday")
    p = o.problems("GET", "/v1/me", 200, h, json.dumps(wrong))
    check(p and "$.created_at" in p[0], p)
    dropped = dict(me.json)
    del dropped["email"]
    p = o.problems("GET", "/v1/me", 200, h, json.dumps(dropped))
    check(p and "'email' is a required property" in p[0], p)
    p = o.problems("GET", "/v1/me", 418, h, "{}")
    check(p and "status 418 is not documented" in p[0], p)
    p = o.problems("GET", "/v1/nothing-here", 200, h, "{}")
    check(p and "undocumented route" in p[0], p)
    nb = {"items": [{"id": "x"}], "next_cursor": None}
    p = o.problems("GET", "/v1/notebooks", 200, h, json.dumps(nb))
    check(p and p[0].startswith("openapi: GET /v1/notebooks -> 200: $.items[0]"), p)
