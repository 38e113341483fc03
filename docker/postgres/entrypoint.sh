#!/bin/sh
# First start: initdb with the cluster's user and password (POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB), password authentication from the network. Later starts reuse the data.
set -eu
: "${POSTGRES_USER:=execbox}" "${POSTGRES_DB:=execbox}"
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
  echo "execbox-postgres: set POSTGRES_PASSWORD" >&2
  exit 2
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    postgres --single -D "$PGDATA" postgres >/dev/null <<SQL
CREATE DATABASE "$POSTGRES_DB" OWNER "$POSTGRES_USER";
SQL
  fi
  echo "execbox-postgres: initialised $PGDATA"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c max_connections="${POSTGRES_MAX_CONNECTIONS:-200}" "$@"
