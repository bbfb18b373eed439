#!/usr/bin/env bash
# pg-rootfs.sh — build a Debian root filesystem holding PostgreSQL MAJOR's server, for tests
# of majors that the host's Debian release does not package (shared/pgtest runs it under
# chroot when PGJET_PG_VERSION=MAJOR). About 5 minutes and 500-700 MB; idempotent.
# Usage: pg-rootfs.sh MAJOR [DIR]    (DIR default: ${XDG_CACHE_HOME:-$HOME/.cache}/pgjet/postgres-MAJOR)
# Needs root (debootstrap, chroot) and Debian's package mirror.
set -euo pipefail

say() { echo "pg-rootfs: $*" >&2; }

major=${1:?usage: pg-rootfs.sh MAJOR [DIR]}
dir=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/pgjet/postgres-$major}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ -x "$dir/usr/lib/postgresql/$major/bin/initdb" ]; then
	exit 0
fi
# The Debian release that packages each major (forky is testing: debootstrap knows it
# by sid's script).
case $major in
17) suite=trixie script= ;;
18) suite=forky script=/usr/share/debootstrap/scripts/sid ;;
*) say "no Debian release known for PostgreSQL $major here (17: trixie, 18: forky); the host's own is used without a root filesystem"; exit 1 ;;
esac
if [ "$(id -u)" != 0 ]; then
	say "building a root filesystem needs root (debootstrap); run: sudo $0 $major"
	exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
	say "installing Debian's debootstrap package"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
say "building $dir: Debian $suite with postgresql-$major (about 5 minutes)"
rm -rf "$dir.partial"
mkdir -p "$(dirname "$dir")"
# shellcheck disable=SC2086
debootstrap --variant=minbase --include="postgresql-$major" "$suite" "$dir.partial" "$mirror" $script >"$dir.log" 2>&1 || {
	say "debootstrap failed; its log: $dir.log"
	tail -5 "$dir.log" >&2
	exit 1
}
mv "$dir.partial" "$dir"
say "ready: $("$dir/usr/lib/postgresql/$major/bin/postgres" --version 2>/dev/null || chroot "$dir" /usr/lib/postgresql/$major/bin/postgres --version)"
