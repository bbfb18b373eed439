#!/usr/bin/env bash
# ensure-postgres.sh — make sure the PostgreSQL server binaries (initdb, pg_ctl, postgres)
# and the psql client are available, so tests and the demo can start throwaway clusters.
# Usage: ensure-postgres.sh [--print-bindir]
#   Silent and idempotent when everything is there. Looks in $PG_BIN, `pg_config --bindir`,
#   then the newest /usr/lib/postgresql/*/bin (Debian layout). When missing: as root it installs
#   Debian's postgresql package; otherwise it prints the command to run and exits 1.
#   --print-bindir: print the server bin dir on stdout (all other output goes to stderr).
set -euo pipefail

say() { echo "ensure-postgres: $*" >&2; }

find_bindir() {
	if [ -n "${PG_BIN:-}" ]; then
		[ -x "$PG_BIN/initdb" ] && echo "$PG_BIN"
		return 0
	fi
	local d
	# Debian's pg_config may come from libpq-dev alone and name a dir without a server.
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null || true)
		if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
	fi
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
	done
	return 0
}

have_psql() { command -v psql >/dev/null 2>&1 || [ -x "${1:-}/psql" ]; }

# The package starts a system cluster on 5432; tests and the demo never use it, and a
# running one only competes for memory and ports, so stop whatever is online.
stop_system_clusters() {
	command -v pg_lsclusters >/dev/null 2>&1 || return 0
	local ver name _port status _rest
	while read -r ver name _port status _rest; do
		case $status in
		online*) say "stopping the system cluster $ver/$name started by the package"
			pg_ctlcluster "$ver" "$name" stop >&2 || true ;;
		esac
	done < <(pg_lsclusters -h 2>/dev/null)
}

bindir=$(find_bindir)
if [ -z "$bindir" ] && [ -n "${PG_BIN:-}" ]; then
	say "PG_BIN=$PG_BIN has no initdb; unset PG_BIN or point it at a PostgreSQL bin dir"
	exit 1
fi

if [ -z "$bindir" ] || ! have_psql "$bindir"; then
	if [ "$(id -u)" != 0 ]; then
		say "PostgreSQL server binaries or psql not found. Install them with:"
		echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql" >&2
		say "(or set PG_BIN to a directory holding initdb, pg_ctl and postgres)"
		exit 1
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		say "PostgreSQL not found and apt-get is not available: install PostgreSQL (server and psql) and set PG_BIN"
		exit 1
	fi
	say "installing Debian's postgresql package (server and psql)"
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
	stop_system_clusters
	bindir=$(find_bindir)
	if [ -z "$bindir" ] || ! have_psql "$bindir"; then
		say "installed postgresql but still cannot find initdb and psql"
		exit 1
	fi
fi

# As root, clusters run as the "postgres" OS user (initdb and postgres refuse root).
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
	say "creating the postgres OS user to own throwaway clusters"
	useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postgres
fi

if [ "${1:-}" = --print-bindir ]; then
	echo "$bindir"
fi
