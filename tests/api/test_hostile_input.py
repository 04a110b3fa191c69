"""Hostile input (issue 10): every 4xx is JSON, and nothing unrunnable is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.errors import InvalidDataError
from tests.api.conftest import AUTH
from tests.api.helpers import SPEC, spec

URL = "/api/v1/sweeps"


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _post_raw(client: TestClient, body: str) -> Any:
    return client.post(
        URL,
        content=body.encode("utf-8", "surrogatepass"),
        headers={**AUTH, "content-type": "application/json"},
    )


# Python's JSON parser takes NaN, Infinity and 1e309 (= inf), and "\ud800" as a lone
# surrogate; the default 422 echoed them back and could not encode itself (a 500).
@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("lambdas", '"lambdas": [NaN]'),
        ("lambdas", '"lambdas": [Infinity]'),
        ("lambdas", '"lambdas": [-Infinity]'),
        ("lambdas", '"lambdas": [1e309]'),
        ("training", '"training": {"lr": NaN}'),
        ("training", '"training": {"weight_decay": 1e309}'),
        ("name", '"name": "\\ud800"'),
        ("name", '"name": "a\\udfffb"'),
    ],
)
def test_unencodable_input_gets_a_json_422(client: TestClient, field: str, raw: str) -> None:
    key = raw.split(":", 1)[0]
    rest = {k: v for k, v in SPEC.items() if f'"{k}"' != key}
    body = json.dumps(rest)[:-1] + ", " + raw + "}"
    r = _post_raw(client, body)
    assert r.status_code == 422, r.text
    detail = _strict_json(r.text)["detail"]
    assert field in {e["loc"][1] for e in detail}
    assert client.get(URL).json()["total"] == 0


def test_unencodable_input_in_an_unknown_key_and_a_query(client: TestClient) -> None:
    r = _post_raw(client, json.dumps(SPEC)[:-1] + ', "\\ud800": NaN}')
    assert r.status_code == 422
    assert _strict_json(r.text)["detail"][0]["loc"][0] == "body"
    r = client.get(f"{URL}/1/pareto", params={"min_accuracy": "1e309"})
    assert r.status_code == 422 and _strict_json(r.text)["detail"][0]["loc"][1] == "min_accuracy"


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"model": {"arch": "wrn", "depth": 10, "width": 1}, "dataset": "synthetic"}, "dataset"),
        ({"lambdas": ["0.1"]}, "lambdas"),
        ({"lambdas": [True]}, "lambdas"),
        ({"training": {"epochs": 1, "lr": "0.001"}}, "training"),
        ({"training": {"epochs": 1, "lr": 1e308}}, "training"),
        ({"training": {"epochs": 1, "weight_decay": 1e308}}, "training"),
        ({"lambdas": [1e308]}, "lambdas"),
        ({"name": "a\x00b"}, "name"),
        ({"name": "\x1b]0;owned\x07"}, "name"),
        ({"model": {"arch": "mlp", "hidden": [100_000] * 16}}, "model"),
    ],
)
def test_unrunnable_specs_are_422_naming_the_field(
    client: TestClient, overrides: dict[str, Any], loc: str
) -> None:
    r = client.post(URL, json=spec(**overrides), headers=AUTH)
    assert r.status_code == 422, r.text
    assert loc in {e["loc"][1] for e in r.json()["detail"]}
    assert client.get(URL).json()["total"] == 0


def test_a_value_the_database_refuses_is_422_not_an_outage(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.routes import sweeps

    def refuse(*_: Any, **__: Any) -> Any:
        raise InvalidDataError("DataError: PostgreSQL text fields cannot contain NUL bytes")

    monkeypatch.setattr(sweeps.repo, "create_sweep", refuse)
    r = client.post(URL, json=spec(), headers=AUTH)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body"]
    assert "Retry-After" not in r.headers
