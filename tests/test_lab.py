"""`make lab` opens the notebook in JupyterLab from the project's environment.

The test runs the very command `make lab` runs (asked from make with -n), headless: on
127.0.0.1, a free port, a random token, and Jupyter's folders in a scratch directory so
nothing of the user's is read or written. Through the server it reads the notebook, runs one
of its cells in a kernel the server starts, then stops it all and checks no process is left.
"""

import asyncio
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "neural_style_transfer.ipynb"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_lab_command(extra: list[str]) -> list[str]:
    """The command `make lab` would run (with this Python and extra server options)."""
    dry_run = subprocess.run(["make", "-n", "-s", "-o", ".venv/.installed", "lab",
                              f"PY={sys.executable}", f"LAB_ARGS={shlex.join(extra)}"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return shlex.split(dry_run.replace("\\\n", " "))


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


class Server:
    def __init__(self, port: int, token: str):
        self.base, self.token = f"http://127.0.0.1:{port}", token

    def request(self, method: str, path: str, body=None, token: bool = True):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            request.add_header("Authorization", f"token {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def ready(self) -> bool:
        try:
            return self.request("GET", "/api/status")[0] == 200
        except OSError:
            return False


async def execute(url: str, token: str, code: str) -> str:
    """Run `code` in the kernel behind the websocket `url`; return what it printed."""
    connection = await websocket_connect(HTTPRequest(url, headers={
        "Authorization": f"token {token}"}))
    message_id = uuid.uuid4().hex
    await connection.write_message(json.dumps({
        "header": {"msg_id": message_id, "msg_type": "execute_request", "username": "test",
                   "session": uuid.uuid4().hex, "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
    printed, reply, idle = [], None, False
    while reply is None or not idle:
        raw = await asyncio.wait_for(connection.read_message(), timeout=300)
        assert raw is not None, "the kernel's websocket closed"
        message = json.loads(raw)
        if message["parent_header"].get("msg_id") != message_id:
            continue
        kind = message["msg_type"]
        if kind == "stream":
            printed.append(message["content"]["text"])
        elif kind == "error":
            printed.append("\n".join(message["content"]["traceback"]))
        elif kind == "execute_reply":
            reply = message["content"]
        elif kind == "status":
            idle = message["content"]["execution_state"] == "idle"
    connection.close()
    assert reply["status"] == "ok", "".join(printed)
    return "".join(printed)


@pytest.fixture
def jupyter_environment(tmp_path):
    """Jupyter's config, data and runtime folders (and IPython's) in a scratch folder."""
    env = dict(os.environ)
    for variable, name in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                           ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython"),
                           ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"),
                           ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces")]:
        env[variable] = str(tmp_path / name)
    env.pop("JUPYTER_TOKEN", None)
    return env


def test_make_lab_serves_the_notebook_and_runs_its_cells(jupyter_environment, tmp_path):
    port, token = free_port(), secrets.token_hex(16)
    command = make_lab_command(["--no-browser", f"--ServerApp.port={port}",
                                "--ServerApp.port_retries=0",
                                f"--IdentityProvider.token={token}"])
    assert command[:4] == [sys.executable, "-m", "jupyter", "lab"] and command[-1] == NOTEBOOK
    assert "--ServerApp.ip=127.0.0.1" in command
    log = tmp_path / "server.log"
    server, kernel_pid = None, None
    with open(log, "w") as log_file:
        process = subprocess.Popen(command, cwd=ROOT, env=jupyter_environment,
                                   stdin=subprocess.DEVNULL, stdout=log_file,
                                   stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        server = Server(port, token)
        # generous deadlines: on a loaded 2-core machine starting the server can take a minute
        assert wait_until(lambda: server.ready() or process.poll() is not None, 300)
        assert process.poll() is None, log.read_text()

        # The page a browser is sent to opens the notebook itself, and needs the token.
        runtime = Path(jupyter_environment["JUPYTER_RUNTIME_DIR"])
        opened = (runtime / f"jpserver-file-to-run-{process.pid}-open.html").read_text()
        assert f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}" in opened
        assert server.request("GET", f"/api/contents/{NOTEBOOK}", token=False)[0] == 403
        status, page = server.request("GET", f"/lab/tree/{NOTEBOOK}")
        assert status == 200 and b"JupyterLab" in page

        # The contents API serves this notebook.
        status, body = server.request("GET", f"/api/contents/{NOTEBOOK}?content=1")
        assert status == 200
        served = nbformat.from_dict(json.loads(body)["content"])
        on_disk = nbformat.read(ROOT / NOTEBOOK, as_version=4)
        assert [(c.cell_type, c.source) for c in served.cells] == \
               [(c.cell_type, c.source) for c in on_disk.cells]

        # A kernel started by the server, as opening the notebook does, runs its set-up cell.
        status, body = server.request("POST", "/api/sessions", {
            "path": NOTEBOOK, "type": "notebook", "name": NOTEBOOK,
            "kernel": {"name": "python3"}})
        assert status == 201, body
        kernel_id = json.loads(body)["kernel"]["id"]
        channels = (f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels"
                    f"?session_id={uuid.uuid4().hex}")
        # the set-up cell (the first code cell) moves into the project folder
        set_up = next(cell.source for cell in served.cells if cell.cell_type == "code")
        printed = asyncio.run(execute(channels, token, set_up
                                      + "\nprint('project folder:', project_folder)"))
        assert printed == f"project folder: {ROOT}\n"
        printed = asyncio.run(execute(channels, token, "import os, sys\n"
                                      "print(os.getpid(), sys.executable, os.getcwd())"))
        pid, executable, cwd = printed.split()
        kernel_pid = int(pid)
        assert Path(executable).resolve() == Path(sys.executable).resolve()   # .venv's Python
        assert Path(cwd) == ROOT
        assert alive(kernel_pid)

        # Stopping the server stops the kernel too.
        assert server.request("POST", "/api/shutdown")[0] == 200
        assert process.wait(timeout=120) == 0
        assert wait_until(lambda: not alive(kernel_pid), 60), "the kernel outlived the server"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if kernel_pid is not None and alive(kernel_pid):
            os.kill(kernel_pid, signal.SIGKILL)
    # Nothing left in the server's process group either.
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)
