"""Prometheus text for long-running processes (``storybench-prompts watch --metrics-port``).

:func:`serve_metrics` starts prometheus_client's HTTP server in a daemon thread and, when the
application has not set up OpenTelemetry metrics itself, makes the global meter provider an SDK
one read by OpenTelemetry's ``PrometheusMetricReader``, so the :class:`~.otel.OTelHook`
instruments (on the global provider) appear on that page.
"""

from __future__ import annotations

import errno
import threading
from types import TracebackType
from typing import TYPE_CHECKING

from .._exceptions import ConfigurationError
from .._logs import get_logger

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "MetricsServer", "serve_metrics"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9464
"""OpenTelemetry's default Prometheus exporter port."""

INSTALL = "pip install 'storybench-prompts[otel]'"

logger = get_logger(__name__)


class MetricsServer:
    """A running metrics page: ``url`` to scrape, ``close()`` (or ``with``) to stop it.

    ``installed_provider`` says whether :func:`serve_metrics` made the global meter provider
    (False when the application had set its own).
    """

    __slots__ = ("_closed", "_lock", "_server", "_thread", "host", "installed_provider", "port")

    def __init__(
        self,
        server: WSGIServer,
        thread: threading.Thread,
        host: str,
        installed_provider: bool,
    ) -> None:
        self._server = server
        self._thread = thread
        self._lock = threading.Lock()
        self._closed = False
        self.host = host
        self.port: int = server.server_port
        self.installed_provider = installed_provider

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port (the meter provider stays: OpenTelemetry sets the
        global one once per process). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "serving"
        return f"MetricsServer({self.url!r}, {state})"


def serve_metrics(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> MetricsServer:
    """Serve Prometheus text on ``http://host:port/metrics`` until ``close()``.

    Binds ``host`` only: 127.0.0.1 by default, so the page is not reachable from other
    machines unless a host such as ``0.0.0.0`` is asked for. ``port`` 0 picks a free port
    (read it from ``.port`` or ``.url``). A port in use, or a host that cannot be bound, raises
    :class:`ConfigurationError` naming them, before anything else is changed.

    Which metrics are served:

    - The global meter provider is still OpenTelemetry's default proxy (the application set
      none): an SDK ``MeterProvider`` with a ``PrometheusMetricReader`` becomes the global
      provider. Every instrument made on the global provider (:class:`~.otel.OTelHook`'s by
      default, also those made before this call) is served, with prometheus_client's own
      process and Python metrics.
    - The application set its own global provider (an SDK ``MeterProvider``, or a no-op one):
      nothing is installed and the page serves prometheus_client's default registry. The
      storybench_prompts metrics are on it exactly when the application's provider has a
      ``PrometheusMetricReader`` (which registers itself in that registry); otherwise the page
      holds only prometheus_client's process and Python metrics, and the application's own
      exporters carry ours.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigurationError(
            f"the metrics port must be an integer from 0 to 65535, not {port!r}"
        )
    try:
        from prometheus_client import start_http_server
    except ImportError as exc:
        raise ConfigurationError(f"serving metrics needs prometheus_client: {INSTALL}") from exc
    try:
        server, thread = start_http_server(port, addr=host)
    except UnicodeError:  # a host name whose labels cannot be encoded (too long, empty)
        raise ConfigurationError(f"cannot serve metrics on {host!r}: not a valid host") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"metrics port {port} is already in use on {host}: choose another port"
            ) from exc
        raise ConfigurationError(
            f"cannot serve metrics on {host} port {port}: {exc.strerror or exc}"
        ) from exc
    try:
        installed = _install_meter_provider()
    except BaseException:
        server.shutdown()
        server.server_close()
        raise
    return MetricsServer(server, thread, host, installed)


def _install_meter_provider() -> bool:
    """Make an SDK provider read by Prometheus the global one, unless one is set already."""
    try:
        from opentelemetry import metrics
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
    except ImportError as exc:
        raise ConfigurationError(
            f"serving metrics needs OpenTelemetry's SDK and Prometheus exporter: {INSTALL}"
        ) from exc
    current = metrics.get_meter_provider()
    if isinstance(current, MeterProvider | metrics.NoOpMeterProvider):
        return False
    provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    metrics.set_meter_provider(provider)
    if metrics.get_meter_provider() is provider:
        return True
    # Another provider was set meanwhile (OpenTelemetry logged it): drop ours and its collector.
    provider.shutdown()
    return False
