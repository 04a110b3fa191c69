"""Shared fixtures. Database fixtures live in tests/service/conftest.py."""
