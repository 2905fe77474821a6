"""The playground server under hostile clients, against a real ``convnp serve`` process on 127.0.0.1:
chunked uploads past the limit, slowloris sockets, DNS-rebinding Host headers, busy and bad ports."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[2]


def _dir_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, f))
            except OSError:
                pass
    return total


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``convnp serve --port 0`` with short timeouts and its own TMPDIR; yields (port, tmpdir, process)."""
    tmp = tmp_path_factory.mktemp("spool")
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "convnp", "serve", "--port", "0", "--header-timeout", "2",
                             "--body-timeout", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=str(ROOT))
    line = proc.stdout.readline()  # the banner comes after the socket is bound
    assert "convnp playground on http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() else "")
    port = int(line.split("127.0.0.1:")[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=5):  # bound: connecting works at once
        pass
    yield port, tmp, proc
    proc.terminate()
    proc.wait(timeout=10)


def _request(port, raw: bytes, timeout=10.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        return _read_all(s)


def _read_all(s):
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        out += chunk
    return out


def _peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def test_chunked_60mb_upload_is_refused_with_little_spooled(server):
    port, tmp, proc = server
    before = _peak_rss_mib(proc.pid)
    head = (b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=xx\r\n\r\n")
    chunk = b"x" * 65536
    piece = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent, largest_spool, reply = 0, 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        try:
            while sent < 60 * 2 ** 20:
                s.sendall(piece)
                sent += len(chunk)
                if sent % (4 * 2 ** 20) == 0:
                    largest_spool = max(largest_spool, _dir_bytes(tmp))
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.settimeout(5)
        reply = _read_all(s)
    largest_spool = max(largest_spool, _dir_bytes(tmp))
    grown = _peak_rss_mib(proc.pid) - before
    print(f"chunked upload: {sent / 2 ** 20:.1f} MiB sent before refusal, {largest_spool} bytes spooled, "
          f"server peak RSS grew {grown:.1f} MiB")
    assert reply.startswith(b"HTTP/1.1 413"), reply[:300]
    assert b"request too large (more than 5,308,416 bytes received" in reply
    assert largest_spool < 20 * 2 ** 20
    assert grown < 20


def test_slowloris_sockets_are_closed_after_the_header_timeout(server):
    port, _, _ = server
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
    try:
        for s in socks:
            s.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finishes its headers
        start = time.monotonic()
        closed = 0
        for s in socks:
            s.settimeout(max(0.1, 8 - (time.monotonic() - start)))
            try:
                closed += s.recv(1) == b""
            except (ConnectionResetError, socket.timeout):
                closed += 0
        elapsed = time.monotonic() - start
    finally:
        for s in socks:
            s.close()
    assert closed == len(socks) and elapsed < 8, (closed, elapsed)
    # the server still answers
    assert _request(port, b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                    ).startswith(b"HTTP/1.1 200")


def test_slow_body_gets_408(server):
    port, _, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\nabc")
        reply = _read_all(s)
    assert reply.startswith(b"HTTP/1.1 408") and b"did not arrive in time" in reply, reply[:200]


@pytest.mark.parametrize("host,ok", [("127.0.0.1:8000", True), ("localhost", True), ("[::1]:8000", True),
                                     ("evil.example.com", False), ("127.0.0.1.evil.com:80", False)])
def test_host_header_is_checked_on_localhost(server, host, ok):
    port, _, _ = server
    reply = _request(port, f"GET /api/info HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    if ok:
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    else:
        assert reply.startswith(b"HTTP/1.1 400") and b"is not allowed" in reply, reply[:200]


def _serve(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "convnp", "serve", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_busy_port_is_one_error_line_exit_1():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _serve("--port", str(port))
    assert r.returncode == 1
    assert r.stderr.strip() == f"convnp: error: cannot listen on 127.0.0.1:{port}: the port is already in use"
    assert "playground on" not in r.stdout  # no banner for a server that never ran


@pytest.mark.parametrize("args,message", [(["--port", "99999"], "argument --port: must be a port number 0..65535"),
                                          (["--port", "http"], "argument --port: must be an integer, got 'http'"),
                                          (["--header-timeout", "nan"], "must be a finite number > 0")])
def test_bad_port_and_timeouts_are_refused_by_the_parser(args, message):
    r = _serve(*args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_unknown_host_is_one_error_line():
    r = _serve("--host", "no-such-host.invalid", "--port", "0")
    assert r.returncode == 1 and r.stderr.startswith("convnp: error: cannot listen on no-such-host.invalid:0")
