"""The HTTP API's local front: POSTs become payload 2.0 events for the route's function."""

from __future__ import annotations

import base64
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from loradrop_local.aws.events import http_api_event
from loradrop_local.aws.lambda_runtime import FunctionError

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024

Invoke = Callable[[str, dict[str, Any]], Any]


def api_gateway_handler(invoke: Invoke, routes: dict[tuple[str, str], str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {"content-type": "application/json"}).items():
                if name.lower() not in ("content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _route(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > API_GATEWAY_MAX_BODY:
                self.close_connection = True
                return self._answer(413, b'{"message":"Request Entity Too Large"}')
            body = self.rfile.read(length) if length else b""
            function = routes.get((self.command, urlsplit(self.path).path))
            if function is None:
                return self._answer(404, b'{"message":"Not Found"}')
            headers: dict[str, str] = {}
            for name, value in self.headers.items():  # HTTP API lower-cases names and joins repeats
                key = name.lower()
                headers[key] = f"{headers[key]},{value}" if key in headers else value
            event = http_api_event(self.command, self.path, headers, body, self.client_address[0])
            try:
                result = invoke(function, event)
            except FunctionError:
                return self._answer(500, b'{"message":"Internal Server Error"}')
            raw = result.get("body") or ""
            payload = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
            self._answer(int(result.get("statusCode", 200)), payload, result.get("headers"))

        do_POST = _route
        do_GET = _route
        do_PUT = _route

    return Handler
