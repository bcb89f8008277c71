"""One HTTP client per endpoint: urllib3 keep-alive connections, the environment read once.

Every OTLP/HTTP export and MLflow REST call goes through :class:`HttpClient`. It is built on urllib3
(installed with ``requests``, which the OTLP/HTTP exporter package requires) rather than on
``requests`` itself, because the export threads share the GIL with the application: per 512-span
OTLP request on loopback, ``requests.Session.post`` holds it for about 0.65 ms of CPU and urllib3
for about 0.25 ms. Most of the difference is ``requests`` reading the environment again on every
request (proxies, ``~/.netrc``, the CA bundle) and filling a cookie jar nobody reads. Here what
``requests`` would read from the environment is read once, when the client is built
(``_settings.http_environment``): ``HTTP(S)_PROXY``/``ALL_PROXY`` with ``NO_PROXY``, and
``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, else certifi's bundle as ``requests`` uses.

Connections: a client keeps at most ``max_connections`` idle connections per host (the export
workers of a destination send at once; more are opened when needed and not kept), and
``close_idle`` closes the idle ones when the export pool finds the destination idle, so sockets do
not grow with the number of destinations a process ever sent to. Connections opened before a
``fork()`` are never used in the child (their sockets belong to the parent): the fork module
forgets them there (``_fork.in_child``; after a fork from C, at the next request, ``_fork.check``).
"""

from __future__ import annotations

import http.client
import re
import threading
import urllib.parse
import urllib.request
from typing import Any, NamedTuple, Optional, Union

from mlflow_otel import _fork
from mlflow_otel._settings import HttpEnvironment, http_environment


class HttpFailure(Exception):
    """A request got no HTTP answer. ``unreachable``: no connection could be made or kept (refused,
    reset, name resolution, connect timeout, TLS handshake); ``tls``: a certificate or handshake
    error; ``not_http``: something answered, but not in HTTP/1.1 (an HTTP/2-only server such as an
    OTLP/gRPC port). The message names the cause; it quotes no URL."""

    def __init__(self, message: str, unreachable: bool, tls: bool = False, not_http: bool = False):
        super().__init__(message)
        self.unreachable = unreachable
        self.tls = tls
        self.not_http = not_http


class Answer(NamedTuple):
    """An HTTP answer: its status, headers (case-insensitive ``get``) and whole body."""

    status: int
    headers: Any
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


Verify = Union[bool, str]  # False, True (the default bundle) or a CA bundle file or directory
Cert = Union[None, str, tuple[str, str]]  # a client certificate file, or (certificate, key)


class HttpClient:
    """Requests to one endpoint's host with the TLS settings of that endpoint; thread-safe."""

    def __init__(self, verify: Verify = True, cert: Cert = None, max_connections: int = 4) -> None:
        self._verify = verify
        self._cert = cert
        self._max_connections = max_connections
        self._forget()
        _fork.in_child(self._forget)

    def _forget(self) -> None:
        """Start without connections (in a forked child: the parent's sockets are not its own)."""
        self._lock = threading.Lock()
        self._managers: dict[tuple[str, str], Any] = {}  # (scheme, host:port) -> PoolManager
        self._by_proxy: dict[str, Any] = {}  # proxy URL ("" for none) -> PoolManager
        self._env: Optional[HttpEnvironment] = None

    def request(
        self,
        method: str,
        url: str,
        *,
        body: Optional[bytes] = None,
        headers: Optional[dict[str, str]] = None,
        timeout_s: float = 10.0,
    ) -> Answer:
        """Send one request (no retry, no redirect: the callers retry by the OTLP spec's rules and
        treat a redirect as an answer); :class:`HttpFailure` when no answer came."""
        import urllib3

        _fork.check()  # a fork from C runs no at-fork hook
        parts = urllib.parse.urlsplit(url)
        try:
            manager = self._manager(parts.scheme, parts.netloc)
            response = manager.urlopen(
                method,
                url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
                retries=False,
                redirect=False,
                preload_content=True,
            )
        except urllib3.exceptions.SSLError as exc:
            raise HttpFailure(_describe(exc), unreachable=True, tls=True) from None
        except (
            urllib3.exceptions.ProtocolError,  # reset, closed, or not HTTP/1.1
            urllib3.exceptions.NewConnectionError,  # refused, name resolution
            urllib3.exceptions.ConnectTimeoutError,
            urllib3.exceptions.ProxyError,
        ) as exc:
            raise HttpFailure(_describe(exc), unreachable=True, not_http=_not_http(exc)) from None
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            raise HttpFailure(_describe(exc), unreachable=False) from None  # a read timeout and the like
        return Answer(response.status, response.headers, response.data or b"")

    def close_idle(self) -> None:
        """Close the kept connections no request is using; the next request opens a new one."""
        with self._lock:
            managers = list(self._by_proxy.values())
        for manager in managers:
            manager.clear()  # closes idle connections; one in use is closed when it comes back

    def _manager(self, scheme: str, netloc: str) -> Any:
        """The pool manager for this host: direct, or through the proxy the environment names."""
        manager = self._managers.get((scheme, netloc))
        if manager is not None:
            return manager
        with self._lock:
            if self._env is None:
                self._env = http_environment()
            proxy = _proxy_for(self._env, scheme, netloc)
            manager = self._by_proxy.get(proxy)
            if manager is None:
                manager = self._by_proxy[proxy] = self._build(proxy, self._env)
            self._managers[(scheme, netloc)] = manager
        return manager

    def _build(self, proxy: str, env: HttpEnvironment) -> Any:
        import urllib3

        options: dict[str, Any] = {"maxsize": self._max_connections, "block": False}
        if self._verify is False:
            options["cert_reqs"] = "CERT_NONE"
        else:
            options["cert_reqs"] = "CERT_REQUIRED"
            bundle = self._verify if isinstance(self._verify, str) else env.ca_bundle or _certifi()
            if bundle:
                import os.path

                options["ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"] = bundle
        if isinstance(self._cert, tuple):
            options["cert_file"], options["key_file"] = self._cert
        elif self._cert:
            options["cert_file"] = self._cert
        if not proxy:
            return urllib3.PoolManager(**options)
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if parts.username is not None:  # credentials in the proxy URL, as requests sends them
            options["proxy_headers"] = urllib3.util.make_headers(
                proxy_basic_auth=urllib.parse.unquote(parts.username)
                + ":"
                + urllib.parse.unquote(parts.password or "")
            )
        return urllib3.ProxyManager(
            parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl(), **options
        )


def _proxy_for(env: HttpEnvironment, scheme: str, netloc: str) -> str:
    """The proxy URL for this host ("" for none), by ``requests``' rules: the scheme's proxy, else
    ``ALL_PROXY``, unless ``NO_PROXY`` names the host."""
    proxy = env.proxies.get(scheme) or env.proxies.get("all") or ""
    if proxy and env.no_proxy and urllib.request.proxy_bypass_environment(netloc, {"no": env.no_proxy}):
        return ""
    return proxy


def _certifi() -> Optional[str]:
    """certifi's CA bundle (installed with ``requests``, whose default it is), if present."""
    try:
        import certifi
    except ImportError:
        return None
    return str(certifi.where())


def _not_http(exc: BaseException) -> bool:
    """True when the peer's answer was not an HTTP/1.1 status line (urllib3 wraps
    ``http.client.BadStatusLine`` in its ``ProtocolError``; a peer that closed without answering
    raises its subclass ``RemoteDisconnected``, which is not this)."""
    return any(
        isinstance(arg, http.client.BadStatusLine) and not isinstance(arg, http.client.RemoteDisconnected)
        for arg in exc.args
    )


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>: ")


def _describe(exc: BaseException) -> str:
    """``Type: message`` of a failure, without the object reprs urllib3 puts in its messages."""
    return f"{type(exc).__name__}: {_OBJECT_REPR.sub('', str(exc))}"
