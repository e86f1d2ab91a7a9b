"""The conformance runner's proxy adds the token and changes nothing else, Host and Origin included."""

from __future__ import annotations

from pathlib import Path

import pytest

from chief_of_staff.core.clock import FixedClock
from tests.http_support import make_token, make_workspace, serving
from tools.conformance import TokenProxy, with_authorization

pytestmark = pytest.mark.anyio


def test_the_token_replaces_any_authorization_the_client_sent() -> None:
    head = (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:9\r\nauthorization: Bearer theirs\r\n"
        b"Origin: http://evil.example\r\nContent-Length: 2\r\n\r\n"
    )
    rewritten = with_authorization(head, b"Bearer ours")
    assert rewritten.count(b"uthorization") == 1 and b"Bearer ours" in rewritten
    assert b"Host: 127.0.0.1:9\r\n" in rewritten and b"Origin: http://evil.example\r\n" in rewritten
    assert rewritten.startswith(b"POST /mcp HTTP/1.1\r\n") and rewritten.endswith(b"\r\n\r\n")


async def test_requests_through_the_proxy_reach_the_server_authenticated(tmp_path: Path, clock: FixedClock) -> None:
    import httpx2

    path = tmp_path / "w.db"
    await make_workspace(path, clock, blueprint=False)
    token = await make_token(path, clock)
    async with serving([path], clock) as url:
        port = int(url.rsplit(":", 1)[1])
        proxy = TokenProxy("127.0.0.1", port, token)
        proxy_port = await proxy.start()
        try:
            async with httpx2.AsyncClient(timeout=10) as http:
                direct = await http.get(f"{url}/mcp", headers={"accept": "text/event-stream"})
                proxied = await http.post(
                    f"http://127.0.0.1:{proxy_port}/mcp",
                    json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                    headers={"accept": "application/json, text/event-stream", "origin": "http://evil.example"},
                )
                authorized = await http.post(
                    f"http://127.0.0.1:{proxy_port}/mcp",
                    json={
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "initialize",
                        "params": {
                            "protocolVersion": "2025-11-25",
                            "capabilities": {},
                            "clientInfo": {"name": "t", "version": "1"},
                        },
                    },
                    headers={"accept": "application/json, text/event-stream"},
                )
        finally:
            await proxy.aclose()
    assert direct.status_code == 401
    assert proxied.status_code == 403, "the bad Origin reached the server's own check unchanged"
    assert authorized.status_code == 200
