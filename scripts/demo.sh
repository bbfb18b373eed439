#!/usr/bin/env bash
# demo.sh — watch PostgreSQL changes flow through pgjet, on one machine, with nothing to set up.
# Starts a throwaway PostgreSQL cluster and pgjet, the one-process relay (collector, embedded
# JetStream server and routes), printing events as text and publishing them to stream
# postgres_replication, then changes rows every ~0.5 s. Ctrl-C stops and removes everything.
# Needs Go; installs Debian's postgresql package when missing (as root).
# PGJET_DEMO_SECONDS=N stops it after N seconds (for a scripted smoke run).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/bin
PG_OS_USER=postgres
DURATION=${PGJET_DEMO_SECONDS:-0}

say() { echo "demo: $*" >&2; }
# as_pg: initdb and postgres refuse to run as root, so as root the cluster belongs to postgres.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi; }
# port_free: nobody accepts connections on 127.0.0.1:$1 (a refused connect means free).
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 40000))
		if port_free "$p"; then echo "$p"; return 0; fi
	done
	say "no free TCP port found"; return 1
}

DIR="" PG_STARTED="" PIDS=()
cleanup() {
	trap - EXIT INT TERM
	local pid
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	# Give the binaries time for a graceful stop (final slot confirm, flushes), then insist.
	for _ in $(seq 50); do
		local alive=""
		for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ -z "$alive" ] && break
		sleep 0.2
	done
	for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	if [ -n "$PG_STARTED" ]; then
		as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	if [ -n "$DIR" ]; then rm -rf "$DIR"; say "stopped; removed $DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# alive NAME PID LOG: stop the demo with the log's tail if a process has died.
alive() {
	if ! kill -0 "$2" 2>/dev/null; then
		say "$1 exited; last lines of $3:"
		tail -n 30 "$3" >&2 || true
		exit 1
	fi
}

PG_BIN=$("$ROOT/scripts/ensure-postgres.sh" --print-bindir)
say "building binaries (make build)"
make -s -C "$ROOT" build >&2

DIR=$(mktemp -d "${TMPDIR:-/tmp}/pgjet-demo.XXXXXX")
[ "$(id -u)" = 0 ] && chown "$PG_OS_USER" "$DIR"

PGPORT=$(free_port)
say "starting PostgreSQL on 127.0.0.1:$PGPORT (data in $DIR/data)"
as_pg "$PG_BIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --no-sync >/dev/null
cat >>"$DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$DIR'
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
CONF
as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w start >/dev/null
PG_STARTED=1
DSN="postgres://postgres@127.0.0.1:$PGPORT/postgres?sslmode=disable"
PSQL=$PG_BIN/psql
[ -x "$PSQL" ] || PSQL=psql
sql() { "$PSQL" "$DSN" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

say "creating tables public.users and public.orders"
sql "
CREATE TABLE users (
	id serial PRIMARY KEY,
	name text NOT NULL,
	email text UNIQUE,
	prefs jsonb NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
	id serial PRIMARY KEY,
	user_id int NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	amount numeric(10,2) NOT NULL,
	status text NOT NULL DEFAULT 'new',
	created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO users (name, email, prefs) VALUES
	('Ada', 'ada@example.com', '{\"theme\": \"dark\"}'),
	('Grace', 'grace@example.com', '{\"theme\": \"light\", \"lang\": \"en\"}');
"

NATSPORT=$(free_port)
PGJET_LOG=$DIR/pgjet.log
say "starting pgjet (collector, JetStream server on 127.0.0.1:$NATSPORT, routes); its events follow (log: $PGJET_LOG)"
"$BIN/pgjet" --connection "$DSN" --slot pgjet_demo --publication pgjet_demo \
	--tables public.users,public.orders --source demo --format text \
	--data "$DIR/nats" --listen "127.0.0.1:$NATSPORT" 2>"$PGJET_LOG" &
PGJET_PID=$!
PIDS+=("$PGJET_PID")
for _ in $(seq 150); do
	alive pgjet "$PGJET_PID" "$PGJET_LOG"
	grep -q "msg=relaying" "$PGJET_LOG" && break
	sleep 0.1
done
if ! grep -q "msg=relaying" "$PGJET_LOG"; then
	say "pgjet did not start relaying within 15 s; see $PGJET_LOG"
	exit 1
fi
say "the events are in stream postgres_replication too: nats sub 'postgres.>' --server nats://127.0.0.1:$NATSPORT"

say "changing rows every 0.5 s; try your own: psql '$DSN'   (Ctrl-C to stop)"
# Each step is one transaction of a different kind, so every op and a multi-table
# transaction show up within a few seconds.
i=0 start=$SECONDS
while :; do
	alive pgjet "$PGJET_PID" "$PGJET_LOG"
	if [ "$DURATION" -gt 0 ] && [ $((SECONDS - start)) -ge "$DURATION" ]; then
		say "ran for ${DURATION}s"
		break
	fi
	i=$((i + 1))
	case $((i % 6)) in
	1) sql "INSERT INTO users (name, email, prefs)
		VALUES ('user$i', 'user$i@example.com', jsonb_build_object('theme', 'dark', 'n', $i))" ;;
	2) sql "UPDATE users SET email = 'renamed$i@example.com',
		prefs = jsonb_set(prefs, '{theme}', '\"light\"')
		WHERE id = (SELECT max(id) FROM users)" ;;
	3) sql "BEGIN;
		INSERT INTO users (name, email) VALUES ('buyer$i', 'buyer$i@example.com');
		INSERT INTO orders (user_id, amount) VALUES (currval('users_id_seq'), 19.99), (currval('users_id_seq'), 5.00);
		COMMIT;" ;;
	4) sql "UPDATE orders SET status = 'paid' WHERE id = (SELECT min(id) FROM orders WHERE status = 'new')" ;;
	5) sql "DELETE FROM orders WHERE id = (SELECT min(id) FROM orders WHERE status = 'paid')" ;;
	0) # Deleting a user cascades to their orders: several deletes in one transaction.
		sql "DELETE FROM users WHERE id = (SELECT min(id) FROM users WHERE name LIKE 'buyer%')" ;;
	esac
	sleep 0.5
done
