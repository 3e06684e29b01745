"""Serve a promoted model over HTTP with MLflow's scoring protocol, whatever the tracker.

``make serve [MODEL=champion] [PORT=8080]`` loads the inference pipeline as
``make predict`` does (:func:`.predict.load_model`) and answers on loopback:

- ``GET /ping`` and ``GET /health``: 200 once the model is loaded;
- ``POST /invocations``: rows as JSON, ``{"dataframe_split": {"columns":
  [...], "data": [[...], ...]}}`` or ``{"dataframe_records": [{...}, ...]}``,
  or as CSV (``Content-Type: text/csv``); the answer is
  ``{"predictions": [...]}``, one decision per row in the target's labels
  (the predicted value for a regression), as MLflow's scoring server
  answers, and ``"scores"``, each row's score, beside it.

Every answer carries the model it came from in the headers
``X-Model-Version`` (the promoted version, or the commit) and ``X-Model-Run``
(the run id). A request the model cannot score (bad JSON, a missing column,
text in a numeric column) gets a 400 whose ``message`` names the column: the
server never stops on one. ``--pipeline FILE`` serves a pipeline file
instead, as in the runtime image, where there is no git history to resolve.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from ..shared import inference, registry
from .arguments import REF_HELP, failed
from .predict import Loaded, PredictError, load_model, validate

DEFAULT_PORT = 8080
# The largest request body read, in bytes.
MAX_BODY = 64 * 1024 * 1024


class RequestError(ValueError):
    """A request that cannot be scored: its message goes back to the client."""


def read_rows(body: bytes, content_type: str, columns: dict[str, str]) -> pd.DataFrame:
    """The rows of a request body, in MLflow's formats.

    A CSV body's categorical ``columns`` are read as text, as ``make
    predict`` reads a file: a category ``"01"`` stays ``"01"``.
    """
    if content_type.startswith("text/csv"):
        text: dict[Any, Any] = {
            name: "string" for name, kind in columns.items() if kind == "categorical"
        }
        try:
            return pd.read_csv(io.BytesIO(body), dtype=text)
        except (ValueError, UnicodeDecodeError) as error:
            raise RequestError(f"the CSV body cannot be read: {error}") from None
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise RequestError(f"the body is not JSON: {error}") from None
    if isinstance(document, dict) and isinstance(document.get("dataframe_split"), dict):
        split = document["dataframe_split"]
        try:
            return pd.DataFrame(split.get("data") or [], columns=split.get("columns"))
        except (ValueError, TypeError) as error:
            raise RequestError(f"dataframe_split cannot be read as a table: {error}") from None
    if isinstance(document, dict) and isinstance(document.get("dataframe_records"), list):
        records = document["dataframe_records"]
        if not all(isinstance(record, dict) for record in records):
            raise RequestError("dataframe_records must be a list of objects, one per row")
        return pd.DataFrame.from_records(records)
    raise RequestError(
        'send {"dataframe_split": {"columns": [...], "data": [[...]]}} or '
        '{"dataframe_records": [{...}]} (or a CSV body with Content-Type: text/csv)'
    )


def answer(loaded: Loaded, rows: pd.DataFrame) -> dict[str, Any]:
    """The scoring protocol's answer for ``rows``: the decisions, and the scores beside them."""
    columns = inference.columns(loaded.model)
    try:
        features = validate(rows, columns, "the request", 0, unit="row")
    except PredictError as error:
        raise RequestError(str(error)) from None
    scored = inference.predict(loaded.model, features)
    first, *rest = scored.columns
    if not rest:  # a regression: the predicted values
        return {"predictions": scored[first].tolist()}
    return {"predictions": scored["decision"].tolist(), "scores": scored["score"].tolist()}


def handler(loaded: Loaded) -> type[BaseHTTPRequestHandler]:
    """The request handler serving ``loaded``."""
    version = str(loaded.about.get("version") or loaded.about.get("commit") or "")
    run = str(loaded.about.get("run_id") or "")

    class Handler(BaseHTTPRequestHandler):
        server_version = "scoring"
        protocol_version = "HTTP/1.1"
        # Headers and body leave at once: with Nagle's algorithm on, the body
        # would wait for the client's delayed acknowledgement (some 40 ms).
        disable_nagle_algorithm = True

        def send(self, status: HTTPStatus, content: dict[str, Any] | str) -> None:
            text = content if isinstance(content, str) else json.dumps(content)
            body = text.encode("utf-8")
            self.send_response(status)
            kind = "text/plain" if isinstance(content, str) else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Model-Version", version)
            self.send_header("X-Model-Run", run)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path in ("/ping", "/health"):
                self.send(HTTPStatus.OK, "\n")
            elif self.path == "/model":
                self.send(HTTPStatus.OK, loaded.about)
            else:
                self.send(HTTPStatus.NOT_FOUND, {"error_code": "NOT_FOUND", "message": self.path})

        def do_POST(self) -> None:
            if self.path != "/invocations":
                self.send(HTTPStatus.NOT_FOUND, {"error_code": "NOT_FOUND", "message": self.path})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    raise RequestError(f"the body is over {MAX_BODY} bytes: send fewer rows")
                body = self.rfile.read(length)
                rows = read_rows(
                    body,
                    self.headers.get("Content-Type") or "application/json",
                    inference.columns(loaded.model),
                )
                self.send(HTTPStatus.OK, answer(loaded, rows))
            except RequestError as error:
                self.send(
                    HTTPStatus.BAD_REQUEST, {"error_code": "BAD_REQUEST", "message": str(error)}
                )
            except Exception as error:  # one bad request never stops the service
                message = f"{type(error).__name__}: {error}"
                self.send(
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    {"error_code": "INTERNAL_ERROR", "message": message},
                )

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return Handler


def from_file(path: Path) -> Loaded:
    """A pipeline file served as it is (``--pipeline``): its MD5 names it."""
    if not path.is_file():
        raise PredictError(f"{path}: there is no such file")
    data = path.read_bytes()
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    about = {"version": f"file:{path.name}", "pipeline_md5": md5}
    return Loaded(joblib.load(io.BytesIO(data)), about, (), data)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a model (``make serve [MODEL=...] [PORT=...]``) until interrupted."""
    parser = argparse.ArgumentParser(
        prog="serve", description="Serve a model with MLflow's scoring protocol."
    )
    parser.add_argument(
        "--model", default=registry.STAGE, help=f"champion, a version, or a {REF_HELP}"
    )
    parser.add_argument("--pipeline", type=Path, help="serve this pipeline file instead")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--export", type=Path, help="write the model's pipeline file here and stop (for an image)"
    )
    arguments = parser.parse_args(argv)
    try:
        loaded = (
            from_file(arguments.pipeline) if arguments.pipeline else load_model(arguments.model)
        )
    except (PredictError, registry.RegistryError) as error:
        return failed(error, 2)
    if arguments.export:
        arguments.export.write_bytes(loaded.data)
        name = loaded.about.get("version") or loaded.about.get("commit")
        print(f"Wrote {name} to {arguments.export} (MD5 {loaded.about['pipeline_md5']})")
        return 0
    try:
        server = ThreadingHTTPServer((arguments.host, arguments.port), handler(loaded))
    except OSError as error:
        return failed(
            OSError(f"cannot listen on {arguments.host}:{arguments.port}: {error.strerror}"), 2
        )
    name = loaded.about.get("version") or loaded.about.get("commit")
    print(
        f"Serving {name} on http://{arguments.host}:{arguments.port} (POST /invocations)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
