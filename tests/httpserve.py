"""A throwaway local HTTP server for tests that need something to fetch (feeds,
images): serve a table of paths, everything else 404."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: path -> (status, headers, body), or a callable giving it (built per request)
Route = tuple[int, dict[str, str], bytes] | Callable[[], tuple[int, dict[str, str], bytes]]


@contextmanager
def serve_paths(
    routes: dict[str, Route],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    seen: list[tuple[str, str]] | None = None,
) -> Iterator[str]:
    """Serve ``routes`` on ``host`` (a free port); yields the base URL. ``seen`` gets
    (path, Host header) of every request."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if seen is not None:
                seen.append((self.path, self.headers.get("Host", "")))
            route = routes.get(self.path)
            status, headers, body = (
                (route() if callable(route) else route) if route else (404, {}, b"")
            )
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()


class Names:
    """Names the test resolves: host → the answers of its successive lookups (the last
    one repeats), and how many lookups each had."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.lookups: dict[str, int] = {}

    def __setitem__(self, host: str, answers: list[str]) -> None:
        self.answers[host] = answers

    def __call__(self, host: str, port: int) -> list[str]:
        seq = self.answers.get(host)
        if not seq:
            return []
        n = self.lookups[host] = self.lookups.get(host, 0) + 1
        return [seq[min(n, len(seq)) - 1]]
