#!/usr/bin/env bash
# Make sure the local PostgreSQL used by the tests is up (CI machines start it, but a stopped
# server is restarted rather than silently skipped).
set -euo pipefail
if command -v pg_isready >/dev/null && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi
# docker-compose validates docker/compose.yaml offline in the tests (Debian package).
if ! command -v docker-compose >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq docker-compose) >/dev/null 2>&1 || \
    echo "warning: could not install docker-compose; compose validation test will fail in CI"
fi
# The dashboard's browser tests drive Debian's Chromium through Playwright (Playwright's own
# browser download is not used): install it the same way.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || \
    echo "warning: could not install chromium; the browser tests will fail in CI"
fi
