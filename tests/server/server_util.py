# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers of the ovi-server tests: start/stop a server, HTTP calls, checks."""
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from safetensors_f32 import write_safetensors  # noqa: E402

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def finish():
    if failures:
        print(f"{len(failures)} check(s) failed:", *failures, sep="\n  ")
        sys.exit(1)
    print("all checks passed")


class Server:
    """One ovi-server process on a free loopback port."""

    def __init__(self, binary, data_dir, *args):
        self.binary, self.data_dir, self.args = binary, data_dir, list(args)
        self.proc = None
        self.log = os.path.join(data_dir + ".log")

    def start(self):
        logf = open(self.log, "a")
        self.proc = subprocess.Popen(
            [self.binary, "--port", "0", "--data-dir", self.data_dir, *self.args],
            stdout=subprocess.PIPE, stderr=logf, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"ovi-server exited (rc {self.proc.wait()}), see {self.log}")
            logf.write(line)
            if "listening on http://127.0.0.1:" in line:
                url = urllib.parse.urlparse(line.split("listening on ")[1].strip())
                self.port = url.port
                break
        else:
            raise RuntimeError("ovi-server did not start listening")
        # keep draining stdout into the log
        threading.Thread(target=self._drain, args=(logf,), daemon=True).start()
        return self

    def _drain(self, logf):
        for line in self.proc.stdout:
            logf.write(line)
            logf.flush()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    # ---- HTTP ----
    def request(self, method, path, body=None, headers=None, timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=hdrs)
        res = conn.getresponse()
        data = res.read()
        conn.close()
        return res.status, dict(res.getheaders()), data

    def json(self, method, path, body=None, headers=None):
        status, hdrs, data = self.request(method, path, body, headers)
        try:
            doc = json.loads(data) if data else None
        except ValueError:
            doc = None
        return status, doc

    def submit(self, params, headers=None):
        return self.json("POST", "/v1/jobs", params, headers)

    def job(self, job_id):
        return self.json("GET", "/v1/jobs/" + job_id)[1]

    def wait(self, job_id, cond, timeout=300):
        """Polls the job until cond(job) holds; returns the job."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if cond(job):
                return job
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id} never got there: {job}")

    def wait_final(self, job_id, timeout=300):
        return self.wait(job_id, lambda j: j["state"] in ("done", "failed", "cancelled"),
                         timeout)


def ffprobe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json",
                          "-show_streams", "-show_format", path],
                         capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else None


def write_png(path, width, height):
    subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=1",
                    "pattern=smpte", "!", f"video/x-raw,width={width},height={height}",
                    "!", "videoconvert", "!", "pngenc", "!", "filesink",
                    f"location={path}"], check=True)


def tmpdir(prefix):
    return tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("OVI_SERVER_TEST_TMP"))


def write_tiny_lora(path, width, rank=2, seed=5):
    """A kohya-style LoRA on block 0's self-attention q of a model `width` wide."""
    rng = random.Random(seed)
    stem = "lora_unet_blocks_0_self_attn_q"
    write_safetensors(path, {
        f"{stem}.lora_down.weight": ([rank, width], [rng.uniform(-0.5, 0.5)
                                                     for _ in range(rank * width)]),
        f"{stem}.lora_up.weight": ([width, rank], [rng.uniform(-0.5, 0.5)
                                                   for _ in range(width * rank)]),
        f"{stem}.alpha": ([], [1.0]),
    })
