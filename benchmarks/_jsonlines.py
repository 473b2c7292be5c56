"""One JSON object per line each way between a benchmark driver and its neural-tangents worker.

``Worker`` is the driver's end (it starts the worker script under another Python); ``serve``
is the worker's main loop. Standard library only: the worker side runs in the pinned
neural-tangents venv.
"""

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path


class Worker:
    """A worker script under ``python``, its stderr in ``log_path``; ``request`` sends one
    message and returns the reply (lines that are not JSON objects are skipped)."""

    def __init__(self, python, script, log_path):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_ENABLE_X64="0")
        self.log_path = log_path
        self.log = open(log_path, "w")  # closed in close()
        self.proc = subprocess.Popen([python, str(script)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        self.info = self.read()

    def read(self):
        while True:
            line = self.proc.stdout.readline()
            if not line:
                try:
                    code = self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    code = "still running"
                self.log.flush()
                tail = Path(self.log_path).read_text()[-3000:]
                raise RuntimeError(f"the neural-tangents worker stopped answering (exit code "
                                   f"{code}); its stderr ends with:\n{tail}")
            if line.startswith("{"):
                return json.loads(line)

    def request(self, allow_error=False, **msg):
        """Send ``msg``; an ``{"error"}`` reply raises unless ``allow_error``."""
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        reply = self.read()
        if "error" in reply and not allow_error:
            raise RuntimeError(f"neural-tangents worker: {reply['error']}\n"
                               f"{reply.get('traceback', '')}")
        return reply

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def serve(handlers, ready):
    """Worker main loop: reply ``ready``, then answer each stdin line ``{"cmd": c, ...}`` with
    ``handlers[c](msg)`` (an exception becomes ``{"error", "traceback"}``). Replies use the real
    stdout; anything else printed goes to stderr."""
    out = sys.stdout
    sys.stdout = sys.stderr  # keep the reply channel clean of library prints

    def reply(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    reply(ready)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
            reply(handlers[msg["cmd"]](msg))
        except Exception as e:  # report to the driver instead of dying mid-protocol
            reply({"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
