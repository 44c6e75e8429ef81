"""A stand-in for PyPI on this machine: a simple-API page and one file, with HTTP ranges.

Used by ``make package-test`` and the download tests, which must not use the internet: the
frozen app's downloader (:mod:`jndguard.core.models.download`) is pointed at it with
``JNDGUARD_PYPI_SIMPLE``. ``python -m http.server`` cannot serve ranges (resume) or the PEP 691
JSON page, hence this.

    with LocalIndex(file, project) as index:
        env["JNDGUARD_PYPI_SIMPLE"] = index.url
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class LocalIndex:
    """Serve ``/simple/<project>/`` (JSON) and ``/files/<name>`` on 127.0.0.1.

    Args:
        file: the file to offer.
        project: the project name of the simple-API page.
        cut_after: stop every transfer after this many bytes (an interrupted download).
        ranges: honour ``Range`` requests (False: always send the whole file).
    """

    def __init__(self, file: Path, project: str, cut_after: int | None = None,
                 ranges: bool = True) -> None:
        self.file = Path(file)
        self.project = project
        self.cut_after = cut_after
        self.ranges = ranges
        self.requests: list[dict] = []
        self.sha256 = hashlib.sha256(self.file.read_bytes()).hexdigest()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/simple/"

    def __enter__(self) -> LocalIndex:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        index = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                index.requests.append({"path": self.path, "range": self.headers.get("Range"),
                                       "accept": self.headers.get("Accept")})
                if self.path == f"/simple/{index.project}/":
                    body = json.dumps({"meta": {"api-version": "1.0"}, "name": index.project, "files": [
                        {"filename": index.file.name, "url": f"../../files/{index.file.name}",
                         "hashes": {"sha256": index.sha256}}]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif self.path == f"/files/{index.file.name}":
                    self._send_file()
                else:
                    self.send_error(404)

            def _send_file(self) -> None:
                data = index.file.read_bytes()
                m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                start = int(m.group(1)) if (m and index.ranges) else 0
                if start >= len(data) and m and index.ranges:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                chunk = data[start:]
                if index.cut_after is not None:
                    chunk = chunk[: index.cut_after]
                self.wfile.write(chunk)

        return Handler


__all__ = ["LocalIndex"]
