#!/usr/bin/env bash
# Installs the system packages the test suite needs, when they are missing and we can:
# headless Chromium (Debian package) for the report's real-browser test, a Java runtime for
# the optional Spark engine's test, and the PostgreSQL server binaries for the `--data URL`
# tests (they start their own throwaway server with initdb/pg_ctl; no service is used), and
# PostgreSQL's JDBC driver (Debian's libpostgresql-jdbc-java, /usr/share/java/postgresql.jar),
# through which `forecast score --engine spark` has Spark read a PostgreSQL database.
set -u
need_browser=1
for b in chromium chromium-browser google-chrome; do
  command -v "$b" >/dev/null 2>&1 && need_browser=0
done
if [ "$need_browser" = 1 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium for the report's browser test..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "could not install chromium; the browser test will say why it skipped"
  else
    echo "chromium not found and cannot install it here (needs root and apt-get)"
  fi
fi
if ! command -v java >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing a Java runtime for the Spark engine's test..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null) \
      || echo "could not install Java; the Spark test will say why it cannot run"
  else
    echo "java not found and cannot install it here (needs root and apt-get)"
  fi
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing the PostgreSQL server for the database tests..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
      || echo "could not install postgresql; the PostgreSQL tests will say why they skipped"
  else
    echo "PostgreSQL server binaries not found and cannot install them here (needs root and apt-get)"
  fi
fi
if [ ! -f /usr/share/java/postgresql.jar ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing the PostgreSQL JDBC driver for the Spark engine's database test..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpostgresql-jdbc-java >/dev/null) \
      || echo "could not install libpostgresql-jdbc-java; the Spark JDBC test will say why it failed"
  else
    echo "PostgreSQL JDBC driver not found and cannot install it here (needs root and apt-get)"
  fi
fi
exit 0
