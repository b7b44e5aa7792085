"""Serving the app with uvicorn on a background thread, next to the operator's cycle loop."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn
from fastapi import FastAPI

from isoperp.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


class ApiServer:
    """``ApiServer(app, host, port).start()`` ... ``stop()``. ``port=0`` picks a free port
    (read it from ``port`` after ``start``)."""

    def __init__(
        self,
        app: FastAPI,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        log_level: str = "warning",
    ) -> None:
        self.host = host
        self._requested_port = port
        config = uvicorn.Config(
            app, host=host, port=port, log_level=log_level, lifespan="on", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> ApiServer:
        self.thread = threading.Thread(target=self.server.run, name="isoperp-api", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.server.should_exit = True
                raise ConfigError(
                    f"the API could not start on {self.host}:{self._requested_port}", code="api"
                )
            time.sleep(0.01)
        logger.info("API listening on http://%s:%d", self.host, self.port)
        return self

    @property
    def port(self) -> int:
        servers = getattr(self.server, "servers", [])
        if servers and servers[0].sockets:
            return int(servers[0].sockets[0].getsockname()[1])
        return self._requested_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)
            self.thread = None
