"""The generator service: endpoints in-process, bad input, determinism, concurrency, a real uvicorn
process, and the page in headless Chromium (skipped without /usr/bin/chromium)."""
import base64
import concurrent.futures
import io
import socket
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from cgan_course import serve
from cgan_course.data import CLASSES
from cgan_course.models import ModelConfig
from cgan_course.widgets import stand_in_generator

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def client():
    G = stand_in_generator(ModelConfig(g_width=8, d_width=8))  # tiny: milliseconds per request
    return TestClient(serve.create_app(serve.GeneratorService(G)))


def png_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def test_classes_and_health(client):
    assert client.get("/classes").json() == {"classes": list(CLASSES)}
    assert client.get("/healthz").json() == {"status": "ok", "classes": 10}
    page = client.get("/")
    assert page.status_code == 200 and '<select id="cls">' in page.text


def test_generate_png_grid(client):
    r = client.post("/generate", json={"class": "cat", "n": 9, "seed": 3, "scale": 1})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert png_size(r.content) == (3 * 32 + 4 * 2, 3 * 32 + 4 * 2)  # 3x3 tiles, 2 px padding


def test_same_seed_same_image_other_seed_other(client):
    body = {"class": "dog", "n": 4, "seed": 11}
    first, again = client.post("/generate", json=body), client.post("/generate", json=body)
    other = client.post("/generate", json={**body, "seed": 12})
    assert first.content == again.content
    assert first.content != other.content


def test_json_format_matches_png_tiles(client):
    r = client.post("/generate", json={"class": 3, "n": 2, "seed": 0, "format": "json", "scale": 1})
    body = r.json()
    assert r.status_code == 200 and body["class"] == CLASSES[3] and len(body["images"]) == 2
    tile = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
    assert tile.size == (32, 32)  # one picture per sample, no grid padding


@pytest.mark.parametrize("body, pattern", [
    ({"class": "unicorn"}, r"unknown class 'unicorn'; choose one of"),
    ({"class": 10}, r"class index must be an integer in \[0, 9\], got 10"),
    ({"class": "cat", "n": 65}, r"^n: .*less than or equal to 64.*\(got 65\)"),
    ({"class": "cat", "n": 0}, r"^n: .*greater than or equal to 1"),
    ({"class": "cat", "seed": "abc"}, r"^seed: .*integer.*\(got 'abc'\)"),
    ({"class": "cat", "seed": -1}, r"^seed: .*greater than or equal to 0"),
    ({"class": "cat", "truncation": 0}, r"^truncation: .*greater than 0"),
    ({"class": "cat", "truncation": -1.5}, r"^truncation: .*greater than 0"),
    ({"n": 4}, r"^class: Field required"),
    ({"class": "cat", "colour": "red"}, r"^colour: Extra inputs are not permitted"),
])
def test_bad_input_is_a_4xx_that_says_what_to_fix(client, body, pattern):
    import re

    r = client.post("/generate", json=body)
    assert 400 <= r.status_code < 500, r.text
    message = r.json()["error"]
    assert re.search(pattern, message), message
    assert "Traceback" not in r.text


def test_malformed_and_oversized_bodies(client):
    r = client.post("/generate", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["error"]
    r = client.post("/generate", content=b'{"class": "cat", "pad": "' + b"x" * 10_000 + b'"}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over 4096 bytes" in r.json()["error"]


def test_concurrent_requests_match_serial_ones(client):
    bodies = [{"class": CLASSES[i % 10], "n": 4, "seed": i} for i in range(12)]
    serial = [client.post("/generate", json=b).content for b in bodies]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda b: client.post("/generate", json=b).content, bodies))
    assert parallel == serial


def test_options_are_checked_and_quantized_generator_serves():
    G = stand_in_generator(ModelConfig(g_width=8, d_width=8))
    with pytest.raises(ValueError, match="quantize must be one of"):
        serve.GeneratorService(G, serve.ServeOptions(quantize="int4"))
    with pytest.raises(ValueError, match=r"threads must be an integer in \[1, 1024\], got 0"):
        serve.GeneratorService(G, serve.ServeOptions(threads=0))
    fast = TestClient(serve.create_app(serve.GeneratorService(G, serve.ServeOptions(quantize="dynamic-int8"))))
    r = fast.post("/generate", json={"class": "cat", "n": 4})
    assert r.status_code == 200 and png_size(r.content) == (2 * 32 * 2 + 3 * 4, 2 * 32 * 2 + 3 * 4)


# Issue 27: a simple cross-site POST (text/plain, a form, no content type) is refused unparsed


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/json-patch+json"])
def test_only_json_bodies_are_parsed(client, content_type):
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/generate", content=b'{"class": "cat", "n": 1}', headers=headers)
    assert r.status_code == 415 and "Content-Type: application/json" in r.json()["error"]
    ok = client.post("/generate", content=b'{"class": "cat", "n": 1}',
                     headers={"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200


@pytest.mark.parametrize("body", [{"class": True}, {"class": 1.0}, {"class": "cat", "n": "4"},
                                  {"class": "cat", "n": True}, {"class": "cat", "seed": 1.0},
                                  {"class": "cat", "truncation": "0.5"}, {"class": "cat", "scale": False},
                                  {"class": ["cat"]}, {"class": None}])
def test_the_request_model_does_not_coerce(client, body):
    r = client.post("/generate", json=body)
    assert r.status_code == 422 and "error" in r.json()


@pytest.mark.parametrize("host", ["", " ", "0.0.0.0 ", "http://localhost", "local host", "a..b", "-x", "256.1.1.1x"])
def test_cli_refuses_an_empty_or_unparseable_host(cli_error, host, monkeypatch):
    def no_such_name(name, *args):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(serve.socket, "getaddrinfo", no_such_name)  # the test must not depend on this machine's DNS
    cli_error(serve.main, [f"--host={host}"], r"error: --host (must be an IP address or a host name|.* is not a name "
                                              r"this machine can resolve)")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "0.0.0.0", "localhost"])
def test_check_host_accepts_addresses_and_names(host):
    assert serve.check_host(host) == host


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "inf", "7200"])
def test_cli_refuses_a_client_timeout_out_of_range(cli_error, seconds):
    cli_error(serve.main, [f"--client-timeout={seconds}"], r"error: --client-timeout must be a finite number")


def test_cli_bad_generator_path(cli_error, tmp_path):
    cli_error(serve.main, ["--generator", str(tmp_path / "nope.pt")], r"error: --generator .*nope.pt is not a file")


# ----------------------------------------------------------------------------------------------
# A real server process


@pytest.fixture
def server():
    """`python -m cgan_course.serve` (the committed generator) on a free port; stopped afterwards."""
    with serve.ServerProcess(flags=["--threads", "1"], cwd=REPO_ROOT) as process:
        yield process.url
    assert process.proc.returncode is not None  # stopped, not left running


@pytest.mark.slow
def test_real_server_process(server):
    reply = serve.call(server + "/generate", {"class": "ship", "n": 4, "seed": 1})
    assert reply.status == 200 and reply.content_type == "image/png"
    assert png_size(reply.body) == (2 * 32 * 2 + 3 * 4,) * 2
    assert serve.call(server + "/generate", {"class": "ship", "n": 4, "seed": 1}).body == reply.body
    assert "ship" in serve.call(server + "/classes").json()["classes"]
    bad = serve.call(server + "/generate", {"class": "dragon"})  # a 4xx is a reply, not an exception
    assert bad.status == 400 and "dragon" in bad.json()["error"]


def _closed(sock) -> bytes | None:
    """What the server sent before closing the connection (b"" for a silent close, or an error
    response, which the server may send when it cuts a half-open request off); None if it is open."""
    received = b""
    try:
        while chunk := sock.recv(4096):  # until EOF; the socket's timeout fails a connection held open
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return None
    return received


def _one_response(sock) -> bytes:
    """One whole HTTP response (headers, then Content-Length bytes of body), so nothing of it is
    left unread to be mistaken for what the server sends later on the same connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096) or b"\r\n\r\n"  # EOF ends the headers too
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length and (chunk := sock.recv(4096)):
        body += chunk
    return head + b"\r\n\r\n" + body


def _cut_off(received: bytes | None) -> bool:
    """Closed, silently or after a 4xx (408 for a request that timed out), never held open."""
    return received is not None and (received == b"" or received.split(b" ", 2)[1:2] in ([b"400"], [b"408"]))


@pytest.mark.slow
def test_slow_and_vanishing_clients_are_cut_off_quietly():
    """Issue 27: half-open connections used to be held forever, a slow body held a worker, and a
    client that left mid-body put a 60-line ClientDisconnect traceback in the server log."""
    wait = 1.5  # --client-timeout: the service's default of 10 s would only make this test wait longer
    with serve.ServerProcess(flags=["--threads", "1", "--client-timeout", str(wait)], cwd=REPO_ROOT) as process:
        address = ("127.0.0.1", process.port)
        half_open = [socket.create_connection(address) for _ in range(3)]
        for sock in half_open:
            sock.sendall(b"POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the headers never finish
        head = (b"POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{\"class\": ")
        slow = socket.create_connection(address)
        slow.sendall(head)  # 90 bytes of body never come
        gone = socket.create_connection(address)
        gone.sendall(head)
        gone.close()  # leaves mid-body
        second = socket.create_connection(address)  # a first request answered, the next one never finished
        second.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert b" 200 " in _one_response(second).split(b"\r\n")[0]  # whole: its body may come in a later segment
        second.sendall(b"GET /classes HTTP/1.1\r\nHost: 127")
        half_open.append(second)
        t0 = time.monotonic()
        for sock in [*half_open, slow]:
            sock.settimeout(wait + 15)
        assert b" 408 " in slow.recv(4096).split(b"\r\n")[0]
        received = [_closed(sock) for sock in half_open]
        assert all(_cut_off(r) for r in received), received
        assert time.monotonic() - t0 < wait + 10
        assert serve.call(process.url + "/healthz").status == 200  # still answering
        rebound = socket.create_connection(address)  # a page whose DNS name was rebound to 127.0.0.1
        rebound.sendall(b"GET /classes HTTP/1.1\r\nHost: attacker.example\r\n\r\n")
        assert b" 400 " in rebound.recv(4096).split(b"\r\n")[0]
        rebound.close()
        process.log.seek(0)
        log = process.log.read()
    assert "Traceback" not in log and "ClientDisconnect" not in log, log[-2000:]


@pytest.mark.slow
def test_server_process_that_cannot_start_says_why(tmp_path):
    server = serve.ServerProcess(generator=tmp_path / "nope.pt", cwd=REPO_ROOT)
    with pytest.raises(serve.CourseError, match=r"the service exited with code 2: .*--generator .*nope\.pt is not a file"):
        with server:
            pass
    assert server.proc.poll() is not None and server.log.closed  # nothing left running or open


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not found; install it with `apt-get install -y chromium`")
def test_page_in_browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(server + "/", timeout=30_000)
            page.wait_for_function("() => document.getElementById('out').src.startsWith('blob:')", timeout=30_000)
            first = page.get_attribute("#out", "src")
            page.select_option("#cls", "frog")
            page.wait_for_function(f"() => document.getElementById('out').src !== {first!r}", timeout=30_000)
            shown = page.evaluate("() => document.getElementById('out').naturalWidth")
            assert shown > 0 and page.text_content("#msg") == ""
        finally:
            browser.close()
