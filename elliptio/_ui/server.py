"""Running the UI: in the foreground for the CLI, or on a thread for notebooks.

uvicorn serves the application on a socket bound here (so the address is known,
and a busy port fails at once). Its logging configuration is left alone
(``log_config=None``): the process's logging is the program's, not ours.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any

import uvicorn

from elliptio._errors import ArgumentTypeError, ConfigError, UsageError
from elliptio._handler import AsyncHandler

from .app import create_app

__all__ = ["UiServer", "exposure_warning", "is_loopback", "serve", "start"]

_LOOPBACK_NAMES = ["127.0.0.1", "localhost", "[::1]", "::1"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only.

    An address literal says so itself; a name (``localhost``, ``127.1``, a
    hosts-file name for 127.0.0.1, the machine's own name on many Linux systems)
    when every address it resolves to is a loopback one. A name that does not
    resolve is not.
    """
    name = host.strip("[]")
    try:
        return _loopback_address(name)
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(_loopback_address(str(a[4][0])) for a in found)


def _loopback_address(text: str) -> bool:
    """Whether an address literal is a loopback one, IPv4-mapped too
    (``::ffff:127.0.0.1``, which Python 3.11 does not count)."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def _check_host(host: str) -> None:
    """Refuse a host that is no address or name to listen on, before anything
    listens: an empty one would listen on every interface, unasked."""
    if not isinstance(host, str):
        raise ArgumentTypeError(f"the UI's host is a str, not {type(host).__name__}")
    if not host.strip():
        raise ConfigError(
            "the UI's host is empty, which would listen on every interface; give "
            "127.0.0.1 (the default), or 0.0.0.0 if everyone who can reach this "
            "machine may read the catalog and store"
        )
    try:
        host.strip("[]").encode("idna")
    except UnicodeError:
        raise ConfigError(
            f"the UI's host {host!r} is no host name or address; give one such as 127.0.0.1"
        ) from None


def exposure_warning(host: str) -> str | None:
    """The loud warning for a non-loopback address, ``None`` for loopback.

    Raises:
        ConfigError: ``host`` is empty or no host name (nothing listens).
    """
    _check_host(host)
    if is_loopback(host):
        return None
    return (
        f"WARNING: the elliptio UI listens on {host}: anyone who can reach this address "
        "can read every record and every file of this catalog and store, without a "
        "login, and so can a web page opened in a browser that can reach it (DNS "
        "rebinding: off loopback the UI cannot tell its own names by the Host header). "
        "Use --host 127.0.0.1 (the default) unless that is what you want."
    )


def _bind(host: str, port: int) -> socket.socket:
    _check_host(host)
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as err:
        sock.close()
        raise ConfigError(
            f"the UI cannot listen on {host}:{port} ({err.strerror}); choose another "
            "--port (0 picks a free one)"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _spellings(host: str) -> list[str]:
    """The Host headers a client may send for ``host``: an IPv6 literal in
    brackets, also in its compressed form (``[::ffff:7f00:1]``)."""
    name = host.strip("[]")
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return [host]
    if address.version == 4:
        return [name]
    forms = dict.fromkeys([name, address.compressed])
    return [*forms, *(f"[{f}]" for f in forms)]


def _server(handler: AsyncHandler, host: str) -> uvicorn.Server:
    # A loopback host answers under the name it was given too (127.0.0.2, 127.1,
    # a hosts-file name): any other Host header is refused (DNS rebinding).
    hosts = [*dict.fromkeys([*_LOOPBACK_NAMES, *_spellings(host)])] if is_loopback(host) else ["*"]
    app = create_app(handler, allowed_hosts=hosts)
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", log_level="warning"
    )
    return uvicorn.Server(config)


def _url(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class UiServer:
    """A UI running on a background thread; `stop` ends it.

    Attributes:
        url: the address to open, e.g. ``http://127.0.0.1:8765/``.
    """

    def __init__(self, server: uvicorn.Server, sock: socket.socket, url: str) -> None:
        self._server = server
        self._sock = sock
        self.url = url
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="elliptio-ui", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the UI did not start at {url} within 30 s")
            time.sleep(0.01)

    @property
    def running(self) -> bool:
        """Whether the server still answers."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 10) -> None:
        """Stop serving and wait for the thread; idempotent."""
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"UiServer(url={self.url!r}, {state})"

    def _repr_html_(self) -> str:
        from .html import esc

        return f'<a href="{esc(self.url)}" target="_blank">elliptio UI at {esc(self.url)}</a>'


def _searchable(handler: AsyncHandler) -> None:
    """Refuse a handler without a catalog to browse (``catalog="none"``) up front."""
    from elliptio._catalog.none import StorageOnlyCatalog

    if isinstance(handler.catalog, StorageOnlyCatalog):
        raise UsageError(
            "the UI browses a catalog, and this handler writes to storage only "
            "(catalog='none'); start it with the catalog the indexer fills"
        )


def start(handler: AsyncHandler, host: str = "127.0.0.1", port: int = 0) -> UiServer:
    """Serve the UI on a background thread and return at once (for notebooks)."""
    _searchable(handler)
    sock = _bind(host, port)
    return UiServer(_server(handler, host), sock, _url(sock, host))


def serve(
    handler: AsyncHandler,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    on_ready: Any = None,
) -> None:
    """Serve the UI in this thread until Ctrl-C (or SIGTERM).

    ``on_ready(url)`` is called once the socket is bound, before serving.
    """
    _searchable(handler)
    sock = _bind(host, port)
    try:
        server = _server(handler, host)
        if on_ready is not None:
            on_ready(_url(sock, host))
        server.run(sockets=[sock])
    finally:
        sock.close()
