"""What the web tests share: a free port, JSON calls, and `mailbridge-local serve --simulator`
started on its own data directory and stopped at the end."""

import contextlib
import json
import socket
import subprocess
import tempfile
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(method, url, body=None, content_type="application/json", headers=None):
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
        return json.loads(text) if text.strip().startswith(("{", "[")) else text


@contextlib.contextmanager
def serve(binary):
    """Runs the local runner against its simulator; yields mailbridge's URL, the simulator's and
    the admin API's token (the simulator's deployment prints it)."""
    port, sim_port = free_port(), free_port()
    data = tempfile.mkdtemp()
    proc = subprocess.Popen(
        [binary, "serve", "--simulator", "--listen", f"127.0.0.1:{port}",
         "--sim-listen", f"127.0.0.1:{sim_port}", "--data", data],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        for line in proc.stdout:
            if "Authorization: Bearer " in line:
                token = line.split("Authorization: Bearer ")[1].split("'")[0]
                break
        else:
            raise AssertionError("mailbridge did not start")
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sim_port}", token
    finally:
        proc.terminate()
        proc.wait(timeout=40)
