"""Toxiproxy for the harness: a server it owns, and the few calls faults need.

Built on the PyPI library `toxiproxy-python` 0.1.1, whose shortcomings this module makes up for:

- its `APIConsumer` keeps the server's host and port in class attributes, so there is **one Toxiproxy
  server per harness process**: `ToxiproxyServer.start` points `APIConsumer` at itself and refuses to
  start while another one runs;
- its requests have no timeout and only 400/404/409 raise: on import this module wraps `APIConsumer`'s
  get/post/delete (and adds patch) so that every request times out after `REQUEST_TIMEOUT` seconds,
  ignores HTTP proxy settings (the API is on loopback) and raises `ToxiproxyError` on anything but 2xx;
- `add_toxic` returns None and nothing updates a toxic: `add_toxic` here returns the server's toxic, and
  `update_toxic`, `enable` and `disable` use PATCH rather than the deprecated POST.

The server runs in its own session (a Ctrl-C in the terminal does not reach it) and is killed by the
kernel when the harness dies (PR_SET_PDEATHSIG). That signal fires when the *thread* that started it
exits, so start it from the main thread or from one that outlives it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import requests
import toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from plugin.needs import toxiproxy_binary

REQUEST_TIMEOUT = 5.0  # seconds, for every API request
_NO_PROXIES = {"http": None, "https": None}  # requests drops None entries: environment proxies are ignored
_LIBRARY_ERRORS = {ProxyExists: 409, NotFound: 404, InvalidToxic: 400}
PR_SET_PDEATHSIG = 1


class ToxiproxyError(RuntimeError):
    """A Toxiproxy API request failed: no answer in time, or a status other than 2xx."""


def _wrap(method: str, request):
    def call(cls, url, *args, **kwargs):
        kwargs.setdefault("timeout", REQUEST_TIMEOUT)
        kwargs.setdefault("proxies", _NO_PROXIES)
        try:
            response = request(cls, url, *args, **kwargs)
        except tuple(_LIBRARY_ERRORS) as e:
            body = e.args[0] if e.args else b""
            body = (body.decode(errors="replace") if isinstance(body, bytes) else str(body)).strip()
            raise ToxiproxyError(f"{method} {url}: HTTP {_LIBRARY_ERRORS[type(e)]}: {body}") from e
        except requests.RequestException as e:
            raise ToxiproxyError(f"{method} {url}: {e}") from e
        if not 200 <= response.status_code < 300:
            raise ToxiproxyError(f"{method} {url}: HTTP {response.status_code}: {response.text.strip()}")
        return response

    call.__wrapped__ = request
    return classmethod(call)


def _patch(cls, url, json=None, **kwargs):
    return requests.patch(url=f"http://{cls.host}:{cls.port}{url}", json=json, **kwargs)


if not getattr(APIConsumer, "_onceproof_wrapped", False):
    for _method in ("get", "post", "delete"):
        setattr(APIConsumer, _method, _wrap(_method.upper(), vars(APIConsumer)[_method].__func__))
    APIConsumer.patch = _wrap("PATCH", _patch)
    APIConsumer._onceproof_wrapped = True


class Proxy(toxiproxy.Proxy):
    """A proxy: `.name`, `.upstream`, `.enabled`, `.listen` ("127.0.0.1:41234") and `.port`."""

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def __repr__(self) -> str:
        return (f"Proxy({self.name!r}, listen={self.listen!r}, upstream={self.upstream!r}, "
                f"enabled={self.enabled})")


def _path(proxy: Proxy | str, toxic: str | None = None) -> str:
    path = "/proxies/" + quote(proxy.name if isinstance(proxy, toxiproxy.Proxy) else proxy, safe="")
    return f"{path}/toxics/{quote(toxic, safe='')}" if toxic else path


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent():
    """A preexec_fn: the child gets SIGKILL when the thread that started it exits."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before the fork, not in the child
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


class ToxiproxyServer:
    """A Toxiproxy server on 127.0.0.1 and a free port, for the life of a harness run.

    >>> with ToxiproxyServer("run/toxiproxy.log") as tp:
    ...     p = tp.create_proxy("node-1", "127.0.0.1:6379")   # clients connect to p.port
    ...     tp.add_toxic(p, "ack-loss", "timeout", attributes={"timeout": 0})
    """

    _active: ClassVar[ToxiproxyServer | None] = None

    def __init__(self, log_path: str | os.PathLike, binary: str | os.PathLike | None = None,
                 host: str = "127.0.0.1", start_timeout: float = 10.0, log_level: str = "info") -> None:
        self.log_path = Path(log_path)
        self.log_level = log_level  # Toxiproxy's LOG_LEVEL; its default, trace, logs every lock it takes
        self.binary = Path(binary) if binary else None
        self.host = host
        self.start_timeout = start_timeout
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._api = toxiproxy.Toxiproxy()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def client_host(self) -> str:
        """The address clients use to reach the proxies."""
        return self.host

    proxy_listen = "127.0.0.1:0"  # where new proxies listen (port 0: the server picks one)

    def start(self) -> ToxiproxyServer:
        active = ToxiproxyServer._active
        if active is not None and active.process is not None and active.process.poll() is None:
            raise ToxiproxyError(f"a Toxiproxy server already runs in this process (pid {active.pid}); "
                                 "APIConsumer is class-global, so stop it first")
        binary = self.binary or toxiproxy_binary()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):  # the free port may be taken again before the server binds it
            self.port = _free_port(self.host)
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [str(binary), "-host", self.host, "-port", str(self.port)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env={**os.environ, "LOG_LEVEL": self.log_level},
                    start_new_session=True, preexec_fn=_die_with_parent())
            ToxiproxyServer._active = self
            APIConsumer.host, APIConsumer.port = self.host, self.port
            if self._wait_ready(offset):
                return self
            self.stop()
        raise ToxiproxyError(f"Toxiproxy could not listen on {self.host}: {self._log_tail(offset)}")

    def _wait_ready(self, log_offset: int) -> bool:
        """True once /version answers; False if the port was taken; ToxiproxyError if it died or hung."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self._log_tail(log_offset)
                self.stop()
                raise ToxiproxyError(f"Toxiproxy exited with {self.process.returncode}: {tail}")
            try:
                requests.get(f"{self.url}/version", timeout=0.5, proxies=_NO_PROXIES).raise_for_status()
                return True
            except requests.RequestException:
                pass
            if "address already in use" in self._log_tail(log_offset):
                return False
            time.sleep(0.02)
        tail = self._log_tail(log_offset)
        self.stop()
        raise ToxiproxyError(f"Toxiproxy did not answer on {self.url} within {self.start_timeout}s: {tail}")

    def _log_tail(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")[-2000:].strip()
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds; returns once the process is gone (reaped)."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                proc.wait()
        if ToxiproxyServer._active is self:
            ToxiproxyServer._active = None

    def __enter__(self) -> ToxiproxyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def version(self) -> str:
        return APIConsumer.get("/version").json()["version"]

    def create_proxy(self, name: str, upstream: str, listen: str | None = None) -> Proxy:
        """A proxy to `upstream` ("host:port"); with listen port 0 the server picks a free port."""
        listen = listen or self.proxy_listen
        try:
            p = self._api.create(upstream=upstream, name=name, listen=listen)
        except ProxyExists as e:  # the library checks this itself, before asking the server
            raise ToxiproxyError(f"proxy {name!r} already exists") from e
        return Proxy(name=p.name, upstream=p.upstream, enabled=p.enabled, listen=p.listen)

    def add_toxic(self, proxy: Proxy | str, name: str, type: str, stream: str = "downstream",
                  toxicity: float = 1.0, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
        """Add a toxic ("upstream" is client to server, "downstream" server to client); the server's toxic."""
        body = {"name": name, "type": type, "stream": stream, "toxicity": toxicity,
                "attributes": attributes or {}}
        return APIConsumer.post(_path(proxy) + "/toxics", json=body).json()

    def update_toxic(self, proxy: Proxy | str, name: str, *, toxicity: float | None = None,
                     attributes: dict[str, Any] | None = None) -> dict[str, Any]:
        """Change a toxic's toxicity and/or some of its attributes (the rest are kept); the server's toxic."""
        body: dict[str, Any] = {}
        if toxicity is not None:
            body["toxicity"] = toxicity
        if attributes is not None:
            body["attributes"] = attributes
        return APIConsumer.patch(_path(proxy, name), json=body).json()

    def remove_toxic(self, proxy: Proxy | str, name: str) -> None:
        APIConsumer.delete(_path(proxy, name))

    def toxics(self, proxy: Proxy | str) -> list[dict[str, Any]]:
        return APIConsumer.get(_path(proxy) + "/toxics").json()

    def disable(self, proxy: Proxy | str) -> None:
        """Close the proxy's connections and stop listening (connects are refused)."""
        self._set_enabled(proxy, False)

    def enable(self, proxy: Proxy | str) -> None:
        """Listen again, on the same address."""
        self._set_enabled(proxy, True)

    def _set_enabled(self, proxy: Proxy | str, enabled: bool) -> None:
        APIConsumer.patch(_path(proxy), json={"enabled": enabled})
        if isinstance(proxy, toxiproxy.Proxy):
            proxy.enabled = enabled

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._api.reset()

    def destroy_all(self) -> None:
        """Delete every proxy."""
        self._api.destroy_all()
