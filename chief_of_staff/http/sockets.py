"""The listening socket both servers (MCP over HTTP, the console) are served on."""

from __future__ import annotations

import socket

from chief_of_staff.core.errors import InvalidInput


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound before the app is built so port 0 can pick a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(
            f"Cannot listen on {host}:{port} ({exc.strerror}); pick another --port or stop what holds it."
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock
