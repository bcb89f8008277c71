"""One HTTP client per endpoint: urllib3 keep-alive connections, the environment read once.

Every OTLP/HTTP export and MLflow REST call goes through :class:`HttpClient`. It is built on urllib3
(installed with ``requests``, which the OTLP/HTTP exporter package requires) rather than on
``requests`` itself, because the export threads share the GIL with the application: per 512-span
OTLP request on loopback, ``requests.Session.post`` holds it for about 0.65 ms of CPU and urllib3
for about 0.25 ms. Most of the difference is ``requests`` reading the environment again on every
request (proxies, ``~/.netrc``, the CA bundle) and filling a cookie jar nobody reads. Here what
``requests`` would read from the environment is read once, when the client is built
(``_settings.http_environment``): ``HTTP(S)_PROXY``/``ALL_PROXY`` with ``NO_PROXY``, and
``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, else certifi's bundle as ``requests`` uses. Unlike
``requests``, ``~/.netrc`` is not read: MLflow's credentials come from ``MLFLOW_TRACKING_*``, an OTLP
endpoint's from ``OTEL_EXPORTER_OTLP_HEADERS``.

Connections: a client keeps at most ``max_connections`` idle connections per host (10, as
``requests``; the export workers of a destination and the MLflow record senders send at once), and
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
from typing import Any, NamedTuple, Optional, Union

from mlflow_otel import _fork
from mlflow_otel._log import masked_url
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


#: Redirects followed, as ``requests`` does (it allows 30).
_MAX_REDIRECTS = 5


class HttpClient:
    """Requests to one endpoint's host with the TLS settings of that endpoint; thread-safe."""

    def __init__(self, verify: Verify = True, cert: Cert = None, max_connections: int = 10) -> None:
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
        """Send one request, following redirects as ``requests`` does (up to 5; the
        ``Authorization`` header is not sent to another host) but never retrying: the callers retry
        by the OTLP spec's and MLflow's rules. :class:`HttpFailure` when no answer came."""
        import urllib3

        _fork.check()  # a fork from C runs no at-fork hook
        parts = urllib.parse.urlsplit(url)
        retries = _no_retry(urllib3)
        timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
        for attempt in (1, 2):
            try:
                manager = self._manager(parts.scheme, parts.netloc)
                response = manager.urlopen(
                    method, url, body=body, headers=headers, timeout=timeout, retries=retries
                )
                return Answer(response.status, response.headers, response.data or b"")
            except urllib3.exceptions.ClosedPoolError:
                # ``close_idle`` closed the pool this request had just taken: a new one, at once.
                if attempt == 2:
                    raise HttpFailure("the connection pool was closed", unreachable=False) from None
            except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
                raise _failure(exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

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
        if parts.scheme.startswith("socks"):
            try:
                from urllib3.contrib.socks import SOCKSProxyManager
            except ImportError:  # PySocks is not installed
                raise HttpFailure(
                    f"a SOCKS proxy ({masked_url(proxy)}) needs PySocks: pip install 'requests[socks]'",
                    unreachable=False,
                ) from None
            return SOCKSProxyManager(parts.geturl(), **options)
        if parts.username is not None:  # credentials in the proxy URL, as requests sends them
            options["proxy_headers"] = urllib3.util.make_headers(
                proxy_basic_auth=urllib.parse.unquote(parts.username)
                + ":"
                + urllib.parse.unquote(parts.password or "")
            )
        return urllib3.ProxyManager(
            parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl(), **options
        )


def _no_retry(urllib3: Any) -> Any:
    """urllib3's retry settings for one attempt that follows redirects: every error ends it (a
    connection, read, TLS or other error; a status never retries). ``other`` is urllib3 1.26's."""
    return urllib3.Retry(
        total=_MAX_REDIRECTS, connect=0, read=0, status=0, other=0,
        redirect=_MAX_REDIRECTS, raise_on_redirect=False,
    )  # fmt: skip


def _failure(exc: BaseException) -> HttpFailure:
    """What a failed request means to its caller (``HttpFailure``'s flags)."""
    import urllib3

    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason  # no retry is allowed: the error that ended the one attempt
    if isinstance(exc, urllib3.exceptions.SSLError):
        return HttpFailure(_describe(exc), unreachable=True, tls=True)
    unreachable = (
        urllib3.exceptions.ProtocolError,  # reset, closed, or not HTTP/1.1
        urllib3.exceptions.NewConnectionError,  # refused, name resolution
        urllib3.exceptions.ConnectTimeoutError,
        urllib3.exceptions.ProxyError,
    )
    if isinstance(exc, unreachable):
        return HttpFailure(_describe(exc), unreachable=True, not_http=_not_http(exc))
    return HttpFailure(_describe(exc), unreachable=False)  # a read timeout and the like


def _proxy_for(env: HttpEnvironment, scheme: str, netloc: str) -> str:
    """The proxy URL for this host ("" for none), by ``requests``' rules: the scheme's proxy, else
    ``ALL_PROXY``, unless ``NO_PROXY`` names the host (a name, a domain suffix, an address, a CIDR
    range, ``*``: ``requests.utils.should_bypass_proxies``, installed with the OTLP/HTTP exporter)."""
    proxy = env.proxies.get(scheme) or env.proxies.get("all") or ""
    if not proxy or not env.no_proxy:
        return proxy
    from requests.utils import should_bypass_proxies

    return "" if should_bypass_proxies(f"{scheme}://{netloc}/", env.no_proxy) else proxy


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
