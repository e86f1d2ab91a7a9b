"""`<db>.console.json` is believed only when it is the operator's own, and names this console.

Whoever can write the workspace's folder could otherwise point `open_console` / `console --link` at a
listener of theirs, and be handed a fresh one-time login link.
"""

from __future__ import annotations

import contextlib
import json
import socket
import stat
import sys
import threading
from pathlib import Path

import anyio
import pytest

from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Store
from chief_of_staff.http import console
from chief_of_staff.http.console_opener import LocalConsoleOpener

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the listener is checked in /proc"),
]
MODEL = Actor("agency", "agency")


class _Sink:
    """Someone else's listener on 127.0.0.1: records every request line it is sent."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(1)
                with contextlib.suppress(OSError):
                    self.lines.append(conn.recv(4096).decode(errors="replace"))


def _write(path: Path, state: dict[str, object], mode: int = 0o600) -> None:
    path.unlink(missing_ok=True)
    path.write_text(json.dumps(state))
    path.chmod(mode)


async def test_a_forged_announcement_is_ignored_and_no_link_reaches_its_listener(store: Store) -> None:
    sink = _Sink()
    announced = console.state_path(store.path)
    links: list[str] = []

    async def browser(link: str) -> bool:
        links.append(link)
        return True

    opener = LocalConsoleOpener(browser)
    try:
        for state, mode in (
            ({"url": f"http://127.0.0.1:{sink.port}", "pid": 1}, 0o644),  # as anyone could leave it
            ({"url": f"http://127.0.0.1:{sink.port}", "pid": 1}, 0o600),  # pid 1 is alive, and not listening there
        ):
            await opener.close()
            _write(announced, state, mode)
            assert console.running_console_url(store.path) is None
            assert await opener.open(store, MODEL, "/")
            assert str(sink.port) not in links[-1]  # a console of its own was started, and the link is for it
        with anyio.move_on_after(0.2):
            while not sink.lines:
                await anyio.sleep(0.01)
        assert sink.lines == []
    finally:
        await opener.close()
        sink.sock.close()


async def test_only_a_private_file_naming_a_loopback_console_held_by_its_process_is_believed(store: Store) -> None:
    handle = await console.ensure_console(store)
    announced = console.state_path(store.path)
    try:
        state = json.loads(announced.read_text())
        port = int(handle.url.split(":")[2].split("/")[0])
        assert console.running_console_url(store.path) == handle.url  # the real one: believed

        _write(announced, state, 0o640)  # readable by the group
        assert console.running_console_url(store.path) is None
        _write(announced, state, 0o604)
        assert console.running_console_url(store.path) is None

        real = announced.with_name("elsewhere.json")
        _write(real, state)
        announced.unlink()
        announced.symlink_to(real)  # a symlink, even to a good file
        assert console.running_console_url(store.path) is None

        path = handle.url.split(str(port), 1)[1]
        for url in (
            f"https://127.0.0.1:{port}{path}",
            f"http://evil.example:{port}{path}",
            f"http://10.0.0.1:{port}{path}",
            f"http://127.0.0.1{path}",  # no explicit port
            f"http://user@127.0.0.1:{port}{path}",
        ):
            _write(announced, {**state, "url": url})
            assert console.running_console_url(store.path) is None, url
        for host in ("localhost", "[::1]"):  # the loopback names: fine, if the process holds the port
            _write(announced, {**state, "url": f"http://{host}:{port}{path}"})
            assert console.running_console_url(store.path) == f"http://{host}:{port}{path}"

        _write(announced, {**state, "pid": 1})  # alive, but not the process that listens there
        assert console.running_console_url(store.path) is None

        _write(announced, state)
        assert stat.S_IMODE(announced.stat().st_mode) == 0o600
        assert console.running_console_url(store.path) == handle.url
    finally:
        await handle.close()
    assert not announced.exists()


async def test_the_announcement_is_written_0600_whatever_was_there(store: Store) -> None:
    announced = console.state_path(store.path)
    announced.write_text("{}")
    announced.chmod(0o644)
    handle = await console.ensure_console(store)
    try:
        assert stat.S_IMODE(announced.stat().st_mode) == 0o600
        assert console.running_console_url(store.path) == handle.url
    finally:
        await handle.close()


async def test_a_mounted_consoles_public_url_is_believed_only_while_its_process_holds_the_listening_port(
    store: Store,
) -> None:
    """`serve --http --console` announces its public URL and the port it listens on; only that port is asked."""
    announced = console.state_path(store.path)
    sink = _Sink()  # a port some other process might hold: here, this one does
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    try:
        public = "https://cos.example.com/console/" + "a" * 32
        console.announce(store.path, public, listening_port=held.getsockname()[1])
        assert console.running_console_url(store.path) == public
        state = json.loads(announced.read_text())
        for forged in (
            {**state, "listening_port": 1},  # a port nobody here holds
            {**state, "listening_port": True},
            {**state, "listening_port": "8765"},
            {**state, "pid": 1},  # alive, but not the process that listens there
            {**state, "url": "ftp://cos.example.com/console"},
            {**state, "url": "https://user@cos.example.com/console"},
        ):
            _write(announced, forged)
            assert console.running_console_url(store.path) is None, forged
        _write(announced, state, 0o644)
        assert console.running_console_url(store.path) is None
    finally:
        held.close()
        sink.sock.close()
        announced.unlink(missing_ok=True)
    assert sink.lines == []  # nothing was sent to anyone while checking
