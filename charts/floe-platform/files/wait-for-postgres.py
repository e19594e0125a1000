"""Wait until PostgreSQL accepts a login, so Dagster does not crash-loop while the database starts.

The init container of the webserver, the daemon and the code server. It logs in as Dagster will (host,
port, user, database, password and libpq parameters from env: PGHOST, PGPORT, PGUSER, PGDATABASE,
DAGSTER_PG_PASSWORD, PG_PARAMS as a JSON object) and retries every RETRY_SECONDS; Kubernetes' own
startup budget applies, so it waits as long as the pod does.
"""

import json
import os
import sys
import time

import psycopg2

RETRY_SECONDS = float(os.environ.get("RETRY_SECONDS", "2"))


def connect_once() -> None:
    connection = psycopg2.connect(
        host=os.environ["PGHOST"],
        port=int(os.environ["PGPORT"]),
        user=os.environ["PGUSER"],
        dbname=os.environ["PGDATABASE"],
        password=os.environ["DAGSTER_PG_PASSWORD"],
        connect_timeout=5,
        **json.loads(os.environ.get("PG_PARAMS") or "{}"),
    )
    connection.close()


def main() -> None:
    target = (
        f"{os.environ['PGUSER']}@{os.environ['PGHOST']}:{os.environ['PGPORT']}/{os.environ['PGDATABASE']}"
    )
    started = time.monotonic()
    while True:
        try:
            connect_once()
        except psycopg2.OperationalError as error:
            reason = " ".join(str(error).split())
            print(f"waiting for PostgreSQL at {target}: {reason}", file=sys.stderr, flush=True)
            time.sleep(RETRY_SECONDS)
            continue
        print(
            f"PostgreSQL at {target} accepts logins (waited {time.monotonic() - started:.0f} s)", flush=True
        )
        return


if __name__ == "__main__":
    main()
