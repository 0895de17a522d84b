#!/usr/bin/env python3
"""loadtest_seed.py — the load test's dataset, loaded with COPY.

    loadtest_seed.py DATABASE_URL PSQL PASSWORD_HASH OUT_DIR

Sizes come from the environment (defaults: the issue's "realistic" set):
LOADTEST_USERS 10000, LOADTEST_NOTEBOOKS 50000, LOADTEST_SOURCES 200000,
LOADTEST_CHUNKS 1000000, LOADTEST_MESSAGES 1000000 (in one conversation per
notebook), LOADTEST_VUS 1000 (the users the scenario logs in as).

Design: every id is made here (seeded random, so a run is repeatable), so the
scenario's users, notebooks and conversations are known without asking the
database; each table is one COPY (psql reading our stdout) with
session_replication_role = replica, which skips the foreign-key and
search-vector triggers — the rows are consistent by construction, and each
chunk's tsvector is computed by PostgreSQL once per distinct text (chunks
reuse a pool of texts made of the chat fixtures' sentences) and copied in as
text. Every user has the same password hash (one Argon2id hash made by the
server with the project's parameters, passed in), so any user can log in
with LOADTEST_PASSWORD. The search index (GIN) is built after the COPY.
Writes OUT_DIR/users.lua: the virtual users' emails, notebooks and
conversations for bench/loadtest.lua.
"""
import json
import os
import random
import re
import subprocess
import sys
import time
import uuid

url, psql, pw_hash, out = sys.argv[1:5]
env = lambda k, d: int(os.environ.get(k, d))
N_USERS = env("LOADTEST_USERS", 10000)
N_NB = max(env("LOADTEST_NOTEBOOKS", 50000), N_USERS)
N_SRC = max(env("LOADTEST_SOURCES", 200000), N_NB)
N_CHUNKS = env("LOADTEST_CHUNKS", 1000000)
N_MSG = env("LOADTEST_MESSAGES", 1000000)
N_VUS = min(env("LOADTEST_VUS", 1000), N_USERS)
rnd = random.Random(14)
uid = lambda: str(uuid.UUID(int=rnd.getrandbits(128), version=4))


def copy(table, cols, lines, pre=""):
    t0 = time.monotonic()
    p = subprocess.Popen([psql, url, "-q", "-v", "ON_ERROR_STOP=1", "-c",
                          "SET session_replication_role = replica; %s COPY %s (%s) FROM STDIN" % (pre, table, cols)],
                         stdin=subprocess.PIPE)
    n = 0
    buf = []
    for line in lines:
        buf.append(line)
        n += 1
        if len(buf) >= 10000:
            p.stdin.write("".join(buf).encode())
            buf = []
    p.stdin.write("".join(buf).encode())
    p.stdin.close()
    if p.wait() != 0:
        sys.exit("COPY %s failed" % table)
    print("  %-13s %9d rows  %5.1f s" % (table, n, time.monotonic() - t0), flush=True)


def ts(sec):  # a timestamptz literal, sec seconds before the epoch used here
    return time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(T0 - sec))


T0 = int(time.time())
users = [uid() for _ in range(N_USERS)]
copy("users", "id, email, password_hash, display_name, email_verified_at, created_at",
     ("%s\tu%d@load.test\t%s\tuser %d\t%s\t%s\n" % (u, i, pw_hash, i, ts(86400 * 30), ts(86400 * 30))
      for i, u in enumerate(users)))

# notebooks: round-robin over users (user i owns notebooks i, i + N_USERS, ...)
nbs = [uid() for _ in range(N_NB)]
nb_owner = [users[k % N_USERS] for k in range(N_NB)]
copy("notebooks", "id, owner_id, title, description, language, created_at, updated_at",
     ("%s\t%s\tnotebook %d\tnotes for the load test\ten\t%s\t%s\n" % (n, nb_owner[k], k, ts(N_NB - k), ts(N_NB - k))
      for k, n in enumerate(nbs)))

# sources: round-robin over notebooks; chunks round-robin over sources
srcs = [uid() for _ in range(N_SRC)]
per_src = [N_CHUNKS // N_SRC + (1 if k < N_CHUNKS % N_SRC else 0) for k in range(N_SRC)]
copy("sources", "id, notebook_id, title, kind, status, byte_size, chunk_count, created_at, updated_at",
     ("%s\t%s\tsource %d\ttext\tready\t%d\t%d\t%s\t%s\n" % (s, nbs[k % N_NB], k, 1200 * per_src[k], per_src[k],
                                                            ts(N_SRC - k), ts(N_SRC - k))
      for k, s in enumerate(srcs)))

# a pool of chunk texts (3 fixture sentences each) and their vectors, computed once each
sents = []
for f in ("candle.txt", "water_cycle.txt", "printing.txt"):
    t = open(os.path.join("tests/fixtures/chat", f), encoding="utf-8").read()
    sents += [re.sub(r"[\s\\]+", " ", s).strip() for s in re.split(r"(?<=[.!?])\s+", t) if len(s.strip()) > 20]
texts = [" ".join(rnd.choice(sents) for _ in range(3)) for _ in range(min(4000, max(N_CHUNKS, 1)))]
q = subprocess.run([psql, url, "-qAt", "-v", "ON_ERROR_STOP=1", "-f", "-"], capture_output=True, text=True, check=True,
                   input="SELECT to_tsvector('english', t) FROM json_array_elements_text($j$%s$j$::json)"
                         " WITH ORDINALITY AS a(t, o) ORDER BY o;\n" % json.dumps(texts))
tsvs = q.stdout.split("\n")[:len(texts)]
assert len(tsvs) == len(texts), "tsvector pool"


def chunk_lines():
    for k, s in enumerate(srcs):
        nb = nbs[k % N_NB]
        for i in range(per_src[k]):
            j = rnd.randrange(len(texts))
            t = texts[j]
            yield "%s\t%s\t%s\t%d\t%s\t%d\t%d\t%d\t%s\n" % (uid(), s, nb, i, t, i * 1200, i * 1200 + len(t), len(t) // 4,
                                                          tsvs[j])


copy("chunks", "id, source_id, notebook_id, chunk_index, text, char_start, char_end, token_count, tsv", chunk_lines(),
     pre="DROP INDEX IF EXISTS chunks_notebook_tsv_idx;")

# one conversation per notebook, messages round-robin over them (user, assistant, ...)
convs = [uid() for _ in range(N_NB)]
per_conv = [N_MSG // N_NB + (1 if k < N_MSG % N_NB else 0) for k in range(N_NB)]
copy("conversations", "id, user_id, notebook_id, title, last_message_at, created_at, updated_at",
     ("%s\t%s\t%s\tconversation %d\t%s\t%s\t%s\n" % (c, nb_owner[k], nbs[k], k, ts(k), ts(86400 + k), ts(k))
      for k, c in enumerate(convs)))
qs = [x["question"] for x in json.load(open("tests/fixtures/chat/questions.json"))]


def message_lines():
    for k, c in enumerate(convs):
        n = per_conv[k]
        for i in range(n):
            if i % 2 == 0:
                yield "%s\t%s\tuser\t%s\t[]\t%s\t%s\n" % (uid(), c, qs[(k + i) % len(qs)], ts(86400 + k - i), ts(86400 + k - i))
            else:
                yield "%s\t%s\tassistant\t%s\t[]\t%s\t%s\n" % (uid(), c, rnd.choice(sents), ts(86400 + k - i), ts(86400 + k - i))


copy("messages", "id, conversation_id, role, content, citations, created_at, updated_at", message_lines())
t0 = time.monotonic()
subprocess.run([psql, url, "-q", "-v", "ON_ERROR_STOP=1", "-c",
                "CREATE INDEX chunks_notebook_tsv_idx ON chunks USING gin (notebook_id, tsv) WHERE deleted_at IS NULL",
                "-c", "VACUUM ANALYZE"], check=True)
print("  search index + VACUUM ANALYZE  %5.1f s" % (time.monotonic() - t0), flush=True)

# the virtual users: user i owns notebooks i, i + N_USERS, ... and their conversations
with open(os.path.join(out, "users.lua"), "w") as f:
    f.write("return {\n")
    for i in range(N_VUS):
        ks = list(range(i, N_NB, N_USERS))
        f.write('{"u%d@load.test", {%s}, {%s}},\n' % (i, ",".join('"%s"' % nbs[k] for k in ks),
                                                      ",".join('"%s"' % convs[k] for k in ks)))
    f.write("}\n")
