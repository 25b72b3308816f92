"""Your generator as a web service: FastAPI in front of ``G(z, y)``.

    python -m cgan_course.serve                                   # the committed pretrained generator
    python -m cgan_course.serve --generator runs/mine/checkpoint.pt --port 8000

Endpoints:

- ``GET /classes``: the class names, in label order;
- ``POST /generate`` with ``{"class": "cat", "n": 16, "seed": 0, "truncation": null}``: a PNG grid,
  or ``{"format": "json"}`` for JSON with one base64 PNG per sample;
- ``GET /healthz``: liveness;
- ``GET /``: a one-page UI (a class picker, seed, truncation and the picture; no build step).

Bad input gets a 4xx whose JSON ``{"error": ...}`` says what to fix; nothing a client sends can
crash the process or return a traceback. The weights are loaded once (``weights_only``). A
request's pictures depend only on (class, n, seed, truncation): the latents come from a seeded
generator of their own, so the same request gives the same bytes. Generation runs in a worker
thread, off the event loop, one request at a time: on a CPU one forward pass already uses every
core, and two at once would only fight over them.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import ipaddress
import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from .checkpoints import load_checkpoint
from .errors import CourseError, run_cli
from .pretrained import load_generator
from .sampling import (
    MAX_SAMPLES,
    class_index,
    class_names,
    grid_side,
    png_bytes,
    sample_images,
    to_image_grid,
)
from .training import load_generator_from_checkpoint
from .validate import MAX_SEED, check_float, check_int

MAX_BODY_BYTES = 4096  # a valid request is under 200 bytes
# a client's time to send its request (--client-timeout): a connection whose headers have not all
# arrived by then is closed, a request whose body has not is answered 408
CLIENT_TIMEOUT_S = 10.0
MAX_TRUNCATION = 10.0  # beyond ~4 a truncated normal is a plain normal
SERVE_PRECISIONS = ("fp32", "bf16")  # inference only; training has runtime.PRECISIONS
QUANTIZE = ("none", "dynamic-int8")


@dataclasses.dataclass
class ServeOptions:
    """How the generator runs; ``benchmarks/serve_latency.py`` measures each choice."""
    precision: str = "fp32"  # fp32 | bf16 (autocast; only worth it on CPUs with native bf16)
    channels_last: bool = True  # measured faster on the CPU; pixels identical or one level apart (benchmarks/results)
    quantize: str = "none"  # none | dynamic-int8 (torch.ao dynamic quantization of the Linear layers)
    threads: int | None = None  # torch intra-op threads (default: torch's choice)
    inference_mode: bool = True  # torch.inference_mode (no autograd bookkeeping); False: torch.no_grad


class GenerateRequest(BaseModel):
    """The body of ``POST /generate``."""
    # strict: no coercion ("16" is not 16, true is not 1, 1.0 is not a class index)
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    class_: str | int = Field(alias="class", description="a class name from GET /classes, or its index")
    n: int = Field(16, ge=1, le=MAX_SAMPLES, strict=True)
    seed: int = Field(0, ge=0, le=MAX_SEED, strict=True)
    truncation: float | None = Field(None, gt=0, le=MAX_TRUNCATION, allow_inf_nan=False)
    format: Literal["png", "json"] = "png"
    scale: int = Field(2, ge=1, le=8, strict=True)


class GeneratorService:
    """The loaded generator plus the options it runs with; thread-safe ``render``."""

    def __init__(self, G: nn.Module, options: ServeOptions = ServeOptions()):
        if options.precision not in SERVE_PRECISIONS:
            raise CourseError(f"precision must be one of {SERVE_PRECISIONS}, got {options.precision!r}")
        if options.quantize not in QUANTIZE:
            raise CourseError(f"quantize must be one of {QUANTIZE}, got {options.quantize!r}")
        if options.threads is not None:
            torch.set_num_threads(check_int("threads", options.threads, 1, 1024))
        self.classes = class_names(G)  # also rejects an unconditional G
        G = G.eval()
        if options.channels_last:
            G = G.to(memory_format=torch.channels_last)
        if options.quantize == "dynamic-int8":
            G = torch.ao.quantization.quantize_dynamic(G, {nn.Linear}, dtype=torch.qint8)
            G.classes = self.classes
        self.G, self.options = G, options
        self._lock = threading.Lock()

    def images(self, req: GenerateRequest) -> torch.Tensor:
        """Images [n, 3, S, S] in [-1, 1] for a validated request."""
        index = class_index(self.G, req.class_)
        bf16 = self.options.precision == "bf16"
        no_grad = torch.inference_mode() if self.options.inference_mode else torch.no_grad()
        with self._lock, no_grad, torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            return sample_images(self.G, index, req.seed, req.n, req.truncation).float()

    def render(self, req: GenerateRequest) -> Response:
        images = self.images(req)
        if req.format == "png":
            return Response(png_bytes(to_image_grid(images, nrow=grid_side(req.n)), req.scale), media_type="image/png")
        pngs = [base64.b64encode(png_bytes(to_image_grid(im[None], nrow=1), req.scale)).decode() for im in images]
        return JSONResponse({"class": self.classes[class_index(self.G, req.class_)], "seed": req.seed,
                             "truncation": req.truncation, "images": pngs})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _validation_message(err: ValidationError) -> str:
    """pydantic's errors as one line: 'n: Input should be less than or equal to 64 (got 65)'."""
    parts = []
    for e in err.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "body"
        got = f" (got {e['input']!r})" if e.get("type") != "missing" and "input" in e and where != "body" else ""
        parts.append(f"{where}: {e['msg']}{got}")
    return "; ".join(parts)


async def _read_body(request: Request, timeout: float) -> bytes:
    """The request body, refusing more than MAX_BODY_BYTES without reading it all, and a body that
    takes longer than ``timeout`` seconds to arrive (a slow client must not hold a worker)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise _TooLarge()

    async def read() -> bytes:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise _TooLarge()
        return body

    return await asyncio.wait_for(read(), timeout)


class _TooLarge(Exception):
    pass


def _is_json(request: Request) -> bool:
    """Only ``application/json`` bodies are parsed: a web page can POST ``text/plain`` (or a form)
    to a local service without the browser asking first (a CORS "simple request"), so accepting
    those would let any page a user visits drive this service."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


def create_app(service: GeneratorService, allowed_hosts: list[str] | None = None,
               client_timeout: float = CLIENT_TIMEOUT_S) -> FastAPI:
    """The FastAPI app around one loaded generator. ``allowed_hosts``: the Host headers it answers
    (the CLI passes ``LOOPBACK_HOSTS`` when bound to this machine only, so a page on another site
    cannot reach it through a DNS name rebound to 127.0.0.1); None answers any. A request body
    slower than ``client_timeout`` seconds gets 408."""
    app = FastAPI(title="cgan_course generator", docs_url="/docs", redoc_url=None)
    if allowed_hosts is not None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "classes": len(service.classes)}

    @app.get("/classes")
    def classes() -> dict:
        return {"classes": service.classes}

    @app.post("/generate", responses={200: {"content": {"image/png": {}}}})
    async def generate(request: Request) -> Response:
        if not _is_json(request):
            return _error(415, "send the request as JSON with the header Content-Type: application/json")
        try:
            body = await _read_body(request, client_timeout)
        except _TooLarge:
            return _error(413, f"request body over {MAX_BODY_BYTES} bytes: send only class, n, seed, truncation")
        except (TimeoutError, asyncio.TimeoutError):  # the same class from Python 3.11 on
            return _error(408, f"the request body did not arrive within {client_timeout:g} s")
        except ClientDisconnect:  # the client went away mid-body: nobody to answer, nothing to log
            return Response(status_code=400)
        try:
            req = GenerateRequest.model_validate_json(body or b"{}")
        except ValidationError as err:
            return _error(422, _validation_message(err) + f'. Example: {{"class": "{service.classes[0]}", "n": 16, '
                               '"seed": 0, "truncation": null}')
        try:
            return await run_in_threadpool(service.render, req)  # off the event loop
        except CourseError as err:  # e.g. an unknown class name
            return _error(400, str(err))

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return _PAGE

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> JSONResponse:  # never a traceback
        return _error(500, f"internal error ({type(err).__name__}); the server log has the details")

    return app


def load_service_generator(path: str | Path | None) -> nn.Module:
    """The committed pretrained generator (``None``), an exported generator file, or the EMA
    generator of a training checkpoint with its BatchNorm statistics recomputed (the run's
    ``G_ema``); always loaded with ``weights_only``."""
    if path is None:
        return load_generator()
    path = Path(path)
    if not path.is_file():
        raise CourseError(f"--generator {path} is not a file: pass an exported generator.pt or a training "
                          "checkpoint.pt (or omit --generator for the committed one)")
    if "state_dict" in load_checkpoint(path):  # an exported generator (weights + card)
        return load_generator(path=path)
    return load_generator_from_checkpoint(path, calibrate=True)


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def check_host(host: str) -> str:
    """An address to bind: an IP address or a host name. Refuses "" (uvicorn would bind every
    interface, e.g. for ``--host "$HOST"`` with HOST unset) and anything that is neither."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    fix = "use 127.0.0.1 (this machine only) or, to serve the network, 0.0.0.0 explicitly"
    if not _HOSTNAME.match(host):
        raise CourseError(f"--host must be an IP address or a host name, got {host!r}: {fix}")
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        raise CourseError(f"--host {host!r} is not a name this machine can resolve: {fix}") from None
    return host


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _http_protocol(timeout: float = CLIENT_TIMEOUT_S):
    """uvicorn's h11 protocol with a deadline of ``timeout`` seconds for the request headers:
    uvicorn has none, so a client that opens connections and never finishes its headers would hold
    them forever."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self.loop.call_later(timeout, self._close_if_no_request)

        def on_response_complete(self) -> None:
            super().on_response_complete()  # the next request's headers get the same deadline
            self.loop.call_later(timeout, self._close_if_no_request)

        def _close_if_no_request(self) -> None:
            # IDLE: no complete request line and headers since the connection opened or the last response
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return TimedH11Protocol


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cgan_course.serve",
                                     description="Serve a conditional generator over HTTP (FastAPI + uvicorn).")
    parser.add_argument("--generator", default=None,
                        help="generator.pt (exported) or a training checkpoint.pt; default: the committed one")
    parser.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (this machine only) or 0.0.0.0 (everyone)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--precision", choices=SERVE_PRECISIONS, default="fp32")
    parser.add_argument("--no-channels-last", action="store_true", help="plain NCHW tensors (for benchmarks)")
    parser.add_argument("--quantize", choices=QUANTIZE, default="none")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-inference-mode", action="store_true", help="use torch.no_grad (for benchmarks)")
    parser.add_argument("--client-timeout", type=float, default=CLIENT_TIMEOUT_S,
                        help=f"seconds a client has to send its request headers, and its body (default: {CLIENT_TIMEOUT_S:g})")
    args = parser.parse_args(argv)

    def body() -> None:
        import uvicorn

        check_int("--port", args.port, 1, 65535)
        check_host(args.host)
        client_timeout = check_float("--client-timeout", args.client_timeout, 0.1, 3600, fix="seconds, e.g. 10")
        options = ServeOptions(args.precision, not args.no_channels_last, args.quantize, args.threads,
                               not args.no_inference_mode)
        service = GeneratorService(load_service_generator(args.generator), options)
        print(f"serving {len(service.classes)} classes on http://{args.host}:{args.port}/", flush=True)
        loopback = args.host == "localhost" or _is_loopback(args.host)
        app = create_app(service, LOOPBACK_HOSTS if loopback else None, client_timeout)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                    http=_http_protocol(client_timeout), timeout_keep_alive=5)

    run_cli(body, parser.prog)


# ----------------------------------------------------------------------------------------------
# The service in a child process, and a client: for notebook 08, the tests and the benchmark


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Reply:
    """One HTTP answer: status, content type and body; 4xx/5xx answers are replies too, not exceptions."""
    status: int
    content_type: str
    body: bytes

    def json(self):
        return json.loads(self.body)


def call(url: str, body: dict | None = None, timeout: float = 60.0) -> Reply:
    """``GET url``, or ``POST`` ``body`` as JSON when it is given (standard library only)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Reply(r.status, r.headers.get("content-type", ""), r.read())
    except urllib.error.HTTPError as err:  # the service's 4xx/5xx: its JSON says what to fix
        return Reply(err.code, err.headers.get("content-type", ""), err.read())


class ServerProcess:
    """``python -m cgan_course.serve`` in a child process on a free local port.

    ``with ServerProcess(generator="runs/x/checkpoint.pt") as server:`` starts it, waits until
    ``/healthz`` answers (or raises with the server's own error line), and stops it on exit
    (Ctrl-C, then a kill after ``stop_timeout`` s), whatever happens inside the block.
    ``flags`` are more command-line options, e.g. ``["--threads", "1"]``.
    """

    def __init__(self, generator: str | Path | None = None, flags: list[str] | tuple[str, ...] = (),
                 start_timeout: float = 120.0, stop_timeout: float = 20.0, cwd: str | Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-m", "cgan_course.serve", "--port", str(self.port), *flags]
        if generator is not None:  # absolute: the child may run in another folder (cwd)
            self.cmd += ["--generator", str(Path(generator).resolve())]
        self.start_timeout, self.stop_timeout, self.cwd = start_timeout, stop_timeout, cwd
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "ServerProcess":
        self.log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty server never blocks on it
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        try:
            self._wait_until_healthy()
        except BaseException:  # a failed start, a timeout or Ctrl-C: never leave the child running
            self.stop()
            raise
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:  # checked first: another server on the port must not pass for ours
                self.log.seek(0)
                lines = self.log.read().strip().splitlines()
                errors = [line for line in lines if "error" in line.lower()]  # not uvicorn's shutdown chatter
                raise CourseError(f"the service exited with code {self.proc.returncode}: "
                                  f"{(errors or lines or ['no message'])[-1]}")
            try:
                if call(self.url + "/healthz", timeout=2).status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise CourseError(f"the service did not answer {self.url}/healthz within {self.start_timeout:.0f} s; "
                                  f"run `python {' '.join(self.cmd[1:])}` in a terminal to see why")
            time.sleep(0.3)

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn shuts down cleanly on Ctrl-C
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.log.close()


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cgan_course generator</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 2rem; font-size: 1.2rem; }
 label { margin-right: 1rem; } input, select, button { font-size: 1.1rem; }
 #out { margin-top: 1rem; image-rendering: pixelated; min-height: 256px; }
 #msg { color: #b00020; min-height: 1.5em; }
</style></head>
<body>
<h1>Conditional generator</h1>
<label>class <select id="cls"></select></label>
<label>seed <input id="seed" type="number" min="0" value="0" style="width: 7em"></label>
<label>truncation <input id="trunc" type="number" min="0" step="0.1" placeholder="none" style="width: 5em"></label>
<label>samples <input id="n" type="number" min="1" max="64" value="16" style="width: 4em"></label>
<button id="go">Generate</button>
<div id="msg"></div>
<img id="out" alt="generated samples">
<script>
const $ = id => document.getElementById(id);
async function generate() {
  $("msg").textContent = "";
  const t = $("trunc").value;
  const body = {"class": $("cls").value, "n": Number($("n").value), "seed": Number($("seed").value),
                "truncation": t === "" ? null : Number(t), "scale": 4};
  const r = await fetch("generate", {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify(body)});
  if (!r.ok) { $("msg").textContent = (await r.json()).error; return; }
  const old = $("out").src;
  $("out").src = URL.createObjectURL(await r.blob());
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
}
fetch("classes").then(r => r.json()).then(d => {
  for (const c of d.classes) { const o = document.createElement("option"); o.textContent = c; $("cls").append(o); }
  generate();
});
for (const id of ["cls", "seed", "trunc", "n"]) $(id).addEventListener("change", generate);
$("go").addEventListener("click", generate);
</script>
</body></html>
"""


if __name__ == "__main__":
    main()
