#!/usr/bin/env python3
"""COPY data for the benchmarks (bench_endpoints.sh, bench_growth.sh).

    seed.py TABLE FIRST LAST NB SNB S CH CV M  > rows   (COPY TABLE (...) FROM STDIN)
    seed.py columns TABLE                                (the column list for COPY)
    seed.py id KIND N                                    (one id, for scripts)

Users FIRST..LAST each own NB notebooks; the first SNB of them hold S sources
of CH chunks each and CV conversations of M messages each. Ids are a pure
function of (kind, number), so that scripts, wrk's Lua and pgbench's SQL
(bench_id() in bench/sql/setup.sql) name the same rows without asking the
database: kind 1 user, 2 notebook, 3 source, 4 conversation, 5 message,
6 chunk; notebook k of user u is u*100+k, source j of notebook n is n*100+j,
chunk i of source s is s*1000+i, conversation c of notebook n is n*10+c,
message i of conversation c is c*1000+i (fixed strides: users seeded with
different counts never collide; NB, S <= 100, CV <= 10, CH, M <= 1000).
"""
import sys

KIND = {"users": 1, "notebooks": 2, "sources": 3, "conversations": 4, "messages": 5, "chunks": 6}
COLS = {
    "users": "id, email, password_hash",
    "notebooks": "id, owner_id, title, created_at",
    "sources": "id, notebook_id, title, kind, status, chunk_count, created_at",
    "conversations": "id, user_id, notebook_id, title, last_message_at, created_at",
    "messages": "id, conversation_id, role, content, created_at",
    "chunks": "id, source_id, notebook_id, chunk_index, text, char_start, char_end, token_count",
}
WORDS = ("cell energy membrane protein mitochondria nucleus enzyme glucose oxygen carbon water light plant "
         "animal tissue organ blood heart lung brain nerve signal gene code copy error repair growth division "
         "river mountain ocean climate weather storm season forest desert island history empire war peace trade "
         "market price money bank credit law court judge vote power state nation city village road bridge").split()


def uid(kind, n):
    return "%08x-0000-4000-8000-%012x" % (kind, n)


def ts(sec):  # seconds after 2020-01-01 00:00:00 UTC (months of 28 days: a valid date, in order)
    d, r = divmod(int(sec), 86400)
    h, r = divmod(r, 3600)
    m, s = divmod(r, 60)
    y, d = divmod(d, 12 * 28)
    mo, day = divmod(d, 28)
    return "%04d-%02d-%02d %02d:%02d:%02d+00" % (2020 + y, mo + 1, day + 1, h, m, s)


def text(n, words=24):
    return " ".join(WORDS[(n * 7 + i * 13 + (n >> 3) * i) % len(WORDS)] for i in range(words))


def main():
    if sys.argv[1] == "columns":
        print(COLS[sys.argv[2]])
        return
    if sys.argv[1] == "id":
        print(uid(int(sys.argv[2]), int(sys.argv[3])))
        return
    table = sys.argv[1]
    first, last, nb, snb, s, ch, cv, m = (int(a) for a in sys.argv[2:10])
    out = sys.stdout
    w = out.write
    for u in range(first, last + 1):
        if table == "users":
            w("%s\tu%d@bench.test\t$argon2id$v=19$m=19456,t=2,p=1$x$y\n" % (uid(1, u), u))
            continue
        for k in range(nb):
            n = u * 100 + k
            if table == "notebooks":
                w("%s\t%s\tnotebook %d\t%s\n" % (uid(2, n), uid(1, u), k, ts(30000000 - k * 60)))
                continue
            if k >= snb:
                continue
            if table in ("sources", "chunks"):
                for j in range(s):
                    sid = n * 100 + j
                    if table == "sources":
                        w("%s\t%s\tsource %d\ttext\tready\t%d\t%s\n" % (uid(3, sid), uid(2, n), j, ch, ts(j)))
                        continue
                    for i in range(ch):
                        t = text(sid * 1000 + i)
                        w("%s\t%s\t%s\t%d\t%s\t0\t%d\t%d\n" % (uid(6, sid * 1000 + i), uid(3, sid), uid(2, n), i, t,
                                                               len(t), len(t) // 5))
            else:
                for c in range(cv):
                    cid = n * 10 + c
                    if table == "conversations":
                        w("%s\t%s\t%s\tconversation %d\t%s\t%s\n" % (uid(4, cid), uid(1, u), uid(2, n), c,
                                                                     ts(1000 + m * 10 + c), ts(1000 + c)))
                        continue
                    for i in range(m):
                        role = "user" if i % 2 == 0 else "assistant"
                        w("%s\t%s\t%s\t%s about %s\t%s\n" % (uid(5, cid * 1000 + i), uid(4, cid), role,
                                                             "question" if i % 2 == 0 else "answer",
                                                             text(cid * 1000 + i, 12), ts(1000 + i * 10)))


if __name__ == "__main__":
    main()
