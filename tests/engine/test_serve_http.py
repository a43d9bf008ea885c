"""The HTTP layer without a model: CORS only when asked, chunked bodies counted, health open."""

from __future__ import annotations

import httpx

from engine.serve.app import ServeConfig, create_app
from engine.serve.auth import (
    Limits,
    check_bind,
    is_loopback,
    key_from_headers,
    key_matches,
)


def client(**config) -> httpx.AsyncClient:
    app = create_app(None, ServeConfig(model_id="m", **config))  # type: ignore[arg-type] - no model needed here
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_no_cors_unless_asked():
    async with client() as c:
        resp = await c.options("/v1/chat/completions", headers={"Origin": "http://evil.example",
                                                                "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in resp.headers
    async with client(cors_origins=("http://localhost:3000",), api_key="k") as c:
        ok = await c.options("/v1/chat/completions", headers={"Origin": "http://localhost:3000",
                                                              "Access-Control-Request-Method": "POST"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "http://localhost:3000"
        other = await c.options("/v1/chat/completions", headers={"Origin": "http://evil.example",
                                                                 "Access-Control-Request-Method": "POST"})
        assert other.headers.get("access-control-allow-origin") != "http://evil.example"


async def test_chunked_body_over_the_limit_is_413_and_bad_json_is_400():
    async def chunks():
        for _ in range(10):
            yield b"x" * 500

    async with client(limits=Limits(max_body_bytes=2000)) as c:
        json_type = {"Content-Type": "application/json"}
        resp = await c.post("/v1/completions", content=chunks(), headers=json_type)
        assert resp.status_code == 413 and resp.json()["error"]["code"] == "body_too_large"
        bad = await c.post("/v1/completions", content=b"{not json", headers=json_type)
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
        missing = await c.post("/v1/completions", json={"max_tokens": 3})
        assert missing.status_code == 400 and missing.json()["error"]["param"] == "prompt"
        assert (await c.get("/health")).json()["status"] == "ok"


def test_key_helpers():
    assert key_from_headers("Bearer abc") == "abc" and key_from_headers(None, "xyz") == "xyz"
    assert key_from_headers("Basic abc") is None
    assert key_matches("abc", "abc") and not key_matches("abd", "abc") and not key_matches(None, "abc")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "k")
    try:
        check_bind("0.0.0.0", None)
    except ValueError as exc:
        assert "--api-key" in str(exc)
    else:
        raise AssertionError("0.0.0.0 without a key was allowed")


def test_is_loopback_checks_the_resolved_addresses():
    # a prefix is not an address: 127.example.com names whatever its owner likes (here: nothing)
    for host in ("127.example.com", "127.0.0.1.nip.io.invalid", "0.0.0.0", "::", "10.0.0.1", "", "nope.invalid"):
        assert not is_loopback(host), host
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    try:
        check_bind("127.example.com", None)
    except ValueError as exc:
        assert "--api-key" in str(exc)
    else:
        raise AssertionError("127.example.com without a key was allowed")
