"""A Flask + SQLAlchemy application behind the shardline router.

Each request takes a connection from a small pool (2 connections, no
overflow, handed out in turn, so tenants follow each other on them),
binds its tenant from the X-Tenant header with
SET shardline.tenant, then inserts or lists notes. The list reads the
table without a WHERE clause: only row-level security keeps the other
tenant's rows out. Requests run through Flask's test client; no HTTP
server. Prints one JSON object: what every request saw.

usage: flask_app.py DSN TENANT_A TENANT_B ROUNDS
"""

import json
import sys

from flask import Flask, g, jsonify, request
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

dsn, tenant_a, tenant_b, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
engine = create_engine(
    dsn.replace("postgres://", "postgresql+psycopg2://", 1),
    pool_size=2, max_overflow=0, pool_timeout=10, future=True,
)
# Open both connections up front: the pool then hands them out in turn
# (its queue is first in, first out), so consecutive requests alternate
# connections and every checkout of one changes its tenant.
warm = [engine.connect() for _ in range(2)]
for c in warm:
    c.close()
used = []  # the DBAPI connection of every request, in order
app = Flask(__name__)
app.config["PROPAGATE_EXCEPTIONS"] = True  # a failed request ends the script with its error


@app.before_request
def bind_tenant():
    g.conn = engine.connect()
    used.append(id(g.conn.connection.dbapi_connection))
    g.conn.execute(text("SET shardline.tenant = :t"), {"t": request.headers["X-Tenant"]})
    g.conn.commit()


@app.teardown_request
def release(_exc):
    conn = g.pop("conn", None)
    if conn is not None:
        conn.close()


@app.post("/notes")
def add_note():
    body = request.get_json()
    g.conn.execute(
        text("INSERT INTO notes (tenant_id, id, body) VALUES (current_setting('shardline.tenant'), :id, :body)"),
        {"id": body["id"], "body": body["body"]},
    )
    g.conn.commit()
    return jsonify(ok=True)


@app.get("/notes")
def list_notes():
    rows = g.conn.execute(text("SELECT tenant_id, id, body FROM notes ORDER BY id")).all()
    g.conn.commit()
    return jsonify(notes=[{"tenant": r.tenant_id, "id": r.id, "body": r.body} for r in rows])


@app.post("/forge")
def forge():
    """Writes a row naming the other tenant: row-level security refuses it."""
    try:
        g.conn.execute(
            text("INSERT INTO notes (tenant_id, id, body) VALUES (:t, -1, 'forged')"),
            {"t": request.get_json()["tenant"]},
        )
        g.conn.commit()
        return jsonify(code=None)
    except DBAPIError as e:
        g.conn.rollback()
        return jsonify(code=getattr(e.orig, "pgcode", None), error=str(e.orig).splitlines()[0])


def main():
    client = app.test_client()
    seen = []
    for i in range(rounds):
        for tenant in (tenant_a, tenant_b):
            r = client.post("/notes", json={"id": i, "body": f"{tenant} {i}"}, headers={"X-Tenant": tenant})
            if r.status_code != 200:
                raise SystemExit(f"POST /notes for {tenant}: {r.status_code} {r.get_data(as_text=True)}")
            r = client.get("/notes", headers={"X-Tenant": tenant})
            if r.status_code != 200:
                raise SystemExit(f"GET /notes for {tenant}: {r.status_code} {r.get_data(as_text=True)}")
            seen.append({"tenant": tenant, "round": i, "notes": r.get_json()["notes"]})
    r = client.post("/forge", json={"tenant": tenant_b}, headers={"X-Tenant": tenant_a})
    print(json.dumps({"requests": seen, "forge": r.get_json(), "pool_size": engine.pool.size(),
                      "connections": len(set(used)),
                      "alternated": all(x != y for x, y in zip(used, used[1:]))}))


if __name__ == "__main__":
    try:
        main()
    except DBAPIError as e:
        # One line with the SQLSTATE for the Go test's failure message.
        raise SystemExit(f"database error {getattr(e.orig, 'pgcode', None)}: {e.orig}")
