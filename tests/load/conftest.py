"""Load tests: a real ``l0sweep serve`` on loopback, on both databases."""

from __future__ import annotations

from tests.service.fixtures import db_url, postgres_url  # noqa: F401
