#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""ovi-server over loopback with the tiny model.

  test-server.py OVI_SERVER SOURCE_ROOT api|errors|persistence|routes

api:          submit, poll to done, the mp4 read back with ffprobe, events,
              an image job (multipart and base64), cancel (running and
              queued), remove, 20 concurrent submissions, weights loaded once
errors:       every refused request and its status, the token, the queue
              limit; the server stays up
persistence:  kill -9 during a job, restart: the job runs again, the queued
              one runs, the earlier result is still served
routes:       the server's routes and job fields against openapi.json and
              docs/server.md
"""
import base64
import concurrent.futures
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_util import (Server, check, ffprobe, finish, tmpdir, write_png,  # noqa: E402
                         write_tiny_lora)

BINARY, SRC, MODE = sys.argv[1], sys.argv[2], sys.argv[3]
PROMPT = "A chef flips a pancake. <S>Breakfast is served!<E> <AUDCAP>sizzling pan<ENDAUDCAP>"
FINAL = ("done", "failed", "cancelled")


def fetch_result(srv, job_id, path):
    status, hdrs, data = srv.request("GET", f"/v1/jobs/{job_id}/result")
    with open(path, "wb") as f:
        f.write(data)
    return status, hdrs, data


def check_mp4(path, what):
    info = ffprobe(path)
    if not check(info is not None, f"{what}: ffprobe reads the mp4"):
        return None
    codecs = sorted(s["codec_name"] for s in info["streams"])
    check(codecs == ["aac", "h264"], f"{what}: one H.264 and one AAC stream ({codecs})")
    check(float(info["format"]["duration"]) > 0.2, f"{what}: has a duration "
          f"({info['format']['duration']} s)")
    return info


class EventReader(threading.Thread):
    """Reads /v1/events and keeps the job events."""

    def __init__(self, srv, query=""):
        super().__init__(daemon=True)
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
        self.conn.request("GET", "/v1/events" + query)
        self.res = self.conn.getresponse()
        self.events = []

    def run(self):
        event = None
        try:
            for raw in self.res:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event:
                    self.events.append((event, json.loads(line[6:])))
                    event = None
        except (OSError, ValueError):
            pass


def test_submit_and_result(srv, tmp):
    events = EventReader(srv)
    check(events.res.status == 200
          and events.res.getheader("Content-Type") == "text/event-stream",
          "GET /v1/events is an event stream")
    events.start()
    status, job = srv.submit({"prompt": PROMPT, "steps": 3, "seed": 7, "solver": "euler",
                              "shift": 3.0, "video_guidance_scale": 2,
                              "audio_guidance_scale": 2.5, "slg_layer": -1,
                              "video_negative_prompt": "blur",
                              "audio_negative_prompt": "noise"})
    check(status == 201 and len(job["id"]) == 32, f"POST /v1/jobs -> 201 with an id ({status})")
    check(job["state"] in ("queued", "running"), "a new job is queued or running")
    seen_running = False
    progress = []
    while True:
        j = srv.job(job["id"])
        if j["state"] == "running":
            seen_running = True
            progress.append(j["progress"])
        if j["state"] in FINAL:
            break
        time.sleep(0.01)
    check(j["state"] == "done", f"the job is done ({j['state']}, {j['error']})")
    check(j["progress"] == 1.0 and j["error"] is None, "done: progress 1, no error")
    check(j["step"] == 3 and j["steps"] == 3, f"done: 3 of 3 steps ({j['step']}/{j['steps']})")
    check(j["params"]["seed"] == 7 and j["params"]["solver"] == "euler",
          "the job keeps its parameters")
    check(progress == sorted(progress) and all(0 <= p <= 1 for p in progress),
          f"progress goes up within 0..1 ({len(progress)} polls while running)")
    out = os.path.join(tmp, "first.mp4")
    status, hdrs, data = fetch_result(srv, job["id"], out)
    check(status == 200 and hdrs.get("Content-Type") == "video/mp4",
          f"GET result -> 200 video/mp4 ({status})")
    check_mp4(out, "result")
    status, hdrs, part = srv.request("GET", f"/v1/jobs/{job['id']}/result",
                                     headers={"Range": "bytes=0-99"})
    check(status == 206 and part == data[:100], "a Range request gets 206 and those bytes")
    # the events told the same story, with progress per step
    time.sleep(0.3)
    mine = [e for kind, e in events.events if kind == "job" and e["id"] == job["id"]]
    states = [e["state"] for e in mine]
    check(states[:1] == ["queued"] and states[-1] == "done" and "running" in states,
          f"events: queued, running..., done ({states[:2]}...{states[-1:]})")
    steps = [e["step"] for e in mine if e["state"] == "running" and e["step"] > 0]
    check(steps == [1, 2, 3], f"events: one progress event per step ({steps})")
    check(any(e["eta"] is not None for e in mine if e["state"] == "running" and e["step"]),
          "events: running jobs carry an eta")
    status, listing = srv.json("GET", "/v1/jobs")
    check(status == 200 and any(x["id"] == job["id"] for x in listing["jobs"]),
          "GET /v1/jobs lists the job")
    status, listing = srv.json("GET", "/v1/jobs?state=done")
    check(all(x["state"] == "done" for x in listing["jobs"]), "?state=done filters")
    return job["id"], data


def test_image(srv, tmp):
    png = os.path.join(tmp, "tall.png")
    write_png(png, 48, 80)
    # multipart, as the page sends it
    boundary = "----ovitest"
    parts = []
    for name, value in (("prompt", PROMPT), ("steps", "2"), ("seed", "3")):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
                     f'\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
                 f'filename="tall.png"\r\nContent-Type: image/png\r\n\r\n'.encode()
                 + open(png, "rb").read() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    status, job = srv.json("POST", "/v1/jobs", b"".join(parts),
                           {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    check(status == 201 and job["has_image"] and job["params"]["steps"] == 2,
          f"multipart POST with an image -> 201 ({status} {job})")
    j = srv.wait_final(job["id"])
    check(j["state"] == "done", f"image job done ({j['state']} {j['error']})")
    out = os.path.join(tmp, "image.mp4")
    fetch_result(srv, job["id"], out)
    info = check_mp4(out, "image result")
    if info:
        v = [s for s in info["streams"] if s["codec_type"] == "video"][0]
        check(v["height"] > v["width"], f"image result: the size comes from the tall image "
              f"({v['width']}x{v['height']})")
    b64 = base64.b64encode(open(png, "rb").read()).decode()
    status, job = srv.submit({"prompt": PROMPT, "steps": 1,
                              "image": "data:image/png;base64," + b64})
    check(status == 201 and job["has_image"], f"JSON POST with a base64 image -> 201 ({status})")
    check(srv.wait_final(job["id"])["state"] == "done", "base64 image job done")


def test_cancel(srv):
    status, long_job = srv.submit({"prompt": PROMPT, "steps": 1000})
    status, queued = srv.submit({"prompt": PROMPT, "steps": 1})
    srv.wait(long_job["id"], lambda j: j["state"] == "running" and j["step"] >= 3)
    status, q = srv.json("DELETE", "/v1/jobs/" + queued["id"])
    check(status == 200 and q["state"] == "cancelled", f"DELETE a queued job -> cancelled ({status})")
    status, j = srv.json("DELETE", "/v1/jobs/" + long_job["id"])
    check(status == 200 and j["state"] == "cancelled",
          f"DELETE a running job -> 200, cancelled ({status} {j and j['state']})")
    check(j["cancel_step"] >= 3 and j["step"] - j["cancel_step"] <= 1,
          f"the running job stopped within one step of the cancel "
          f"(cancelled after step {j['cancel_step']}, last step {j['step']})")
    check(j["step"] < 1000, "the cancelled job did not run to the end")
    status, _, _ = srv.request("GET", f"/v1/jobs/{long_job['id']}/result")
    check(status == 409, f"no result for a cancelled job (409, got {status})")
    status, _ = srv.json("DELETE", "/v1/jobs/" + long_job["id"])
    check(status == 204, f"DELETE a finished job removes it (204, got {status})")
    status, _ = srv.json("GET", "/v1/jobs/" + long_job["id"])
    check(status == 404, f"a removed job is gone (404, got {status})")
    status, job = srv.submit({"prompt": PROMPT, "steps": 1})
    check(srv.wait_final(job["id"])["state"] == "done", "the next job runs after a cancel")


def test_concurrent(srv, tmp):
    def submit(i):
        return srv.submit({"prompt": f"{PROMPT} #{i}", "steps": 1, "seed": i})

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(submit, range(20)))
    check(all(s == 201 for s, _ in answers), f"20 concurrent submissions -> 201 "
          f"({[s for s, _ in answers]})")
    ids = [j["id"] for _, j in answers]
    check(len(set(ids)) == 20, "20 distinct ids")
    finals = [srv.wait_final(i) for i in ids]
    check(all(j["state"] == "done" for j in finals), "all 20 jobs done")
    check(all(j["attempts"] == 1 for j in finals), "each ran once")
    sizes = []
    for j in finals:
        status, _, data = srv.request("GET", j["result"])
        sizes.append(status == 200 and data[4:8] == b"ftyp")
    check(all(sizes), "all 20 results are mp4 files")
    out = os.path.join(tmp, "concurrent-last.mp4")
    fetch_result(srv, ids[-1], out)
    check_mp4(out, "the 20th result")


def test_sigmas_and_lora(srv, tmp):
    """sigmas and LoRAs: the elements' properties, LoRAs only from --lora-dir"""
    status, job = srv.submit({"prompt": PROMPT, "sigmas": [1, 0.75, 0.5, 0]})
    check(status == 201 and job["params"]["sigmas"] == "1,0.75,0.5,0",
          f"sigmas as a list -> 201, kept as the element's text ({status} {job})")
    j = srv.wait_final(job["id"])
    check(j["state"] == "done" and j["steps"] == 3,
          f"a job on explicit sigmas runs their 3 steps ({j['state']}, {j['steps']})")
    status, doc = srv.submit({"prompt": PROMPT, "lora": "style.safetensors"})
    check(status == 400 and doc["field"] == "lora" and "--lora-dir" in doc["error"],
          f"a LoRA on a server without --lora-dir -> 400 naming lora ({status} {doc})")
    loras = os.path.join(tmp, "loras")
    os.makedirs(loras)
    model = os.path.join(tmp, "tiny")
    subprocess.run([os.environ["OVI_TOOL"], "make-tiny", model], check=True,
                   capture_output=True)
    with open(os.path.join(model, "Ovi", "model.safetensors"), "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        width = json.loads(f.read(n))["video_model.blocks.0.self_attn.q.weight"]["shape"][1]
    write_tiny_lora(os.path.join(loras, "style.safetensors"), width)
    with_loras = Server(BINARY, os.path.join(tmp, "lora-data"), "--lora-dir", loras).start()
    try:
        for value in ("../style.safetensors", "/etc/passwd", "missing.safetensors",
                      "style.safetensors:-1", "style.safetensors:1:sideways", ".hidden"):
            status, doc = with_loras.submit({"prompt": PROMPT, "lora": value})
            check(status == 400 and doc["field"] == "lora",
                  f"lora={value!r} -> 400 naming lora ({status} {doc and doc['error']})")
        plain = with_loras.submit({"prompt": PROMPT, "steps": 2})[1]
        with_loras.wait_final(plain["id"])
        loads = with_loras.json("GET", "/health")[1]["weight_loads"]
        status, job = with_loras.submit({"prompt": PROMPT, "steps": 2,
                                         "lora": "style.safetensors:0.5:both"})
        check(status == 201 and job["params"]["lora"] == "style.safetensors:0.5:both",
              f"a LoRA from --lora-dir -> 201 ({status})")
        j = with_loras.wait_final(job["id"])
        check(j["state"] == "done", f"the LoRA job is done ({j['state']}: {j['error']})")
        after = with_loras.json("GET", "/health")[1]["weight_loads"]
        check(after == loads, f"a LoRA job reloads nothing (run-time LoRAs; "
              f"{loads} -> {after} loads)")
    finally:
        with_loras.stop()


def run_api():
    tmp = tmpdir("ovi-server-api-")
    srv = Server(BINARY, os.path.join(tmp, "data")).start()
    try:
        test_submit_and_result(srv, tmp)
        loads = srv.json("GET", "/health")[1]["weight_loads"]
        check(loads >= 4, f"the first job loaded the stages ({loads} loads)")
        test_image(srv, tmp)
        loads_image = srv.json("GET", "/health")[1]["weight_loads"]
        test_cancel(srv)
        test_concurrent(srv, tmp)
        test_sigmas_and_lora(srv, tmp)
        health = srv.json("GET", "/health")[1]
        check(health["weight_loads"] == loads_image,
              f"weights load once: no loads over 25 more jobs "
              f"({loads_image} -> {health['weight_loads']})")
        check(health["active_jobs"] == 0, "nothing left active")
    finally:
        check(srv.stop() == 0, "the server stops cleanly on SIGTERM")


# ---- errors ----

def raw(srv, data):
    """Sends raw bytes, returns what comes back (or b'' on a closed socket)."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        chunks = []
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            while True:
                c = s.recv(65536)
                if not c:
                    break
                chunks.append(c)
        except OSError:
            pass
        return b"".join(chunks)


def expect(srv, method, path, body, headers, status, what, field=None):
    got, doc = srv.json(method, path, body, headers)
    ok = got == status and (doc is None or "error" in doc)
    if field is not None:
        ok = ok and doc.get("field") == field and field in doc["error"]
    check(ok, f"{what} -> {status}" + (f" naming '{field}'" if field else "")
          + f" (got {got} {doc})")


def test_bad_requests(srv, tmp):
    j = {"Content-Type": "application/json"}
    expect(srv, "POST", "/v1/jobs", b'{"prompt": "x",', j, 400, "truncated JSON")
    expect(srv, "POST", "/v1/jobs", b"[1, 2]", j, 400, "JSON that is not an object")
    expect(srv, "POST", "/v1/jobs", b"\xff\xfe", j, 400, "not UTF-8")
    expect(srv, "POST", "/v1/jobs", {}, None, 400, "no prompt", "prompt")
    expect(srv, "POST", "/v1/jobs", {"prompt": "   "}, None, 400, "blank prompt", "prompt")
    expect(srv, "POST", "/v1/jobs", {"prompt": 5}, None, 400, "prompt not a string", "prompt")
    expect(srv, "POST", "/v1/jobs", {"prompt": "x" * 9000}, None, 400, "prompt too long",
           "prompt")
    cases = [("steps", -1), ("steps", 1001), ("steps", 2.5), ("steps", "4"),
             ("seed", -3), ("solver", "ddim"), ("solver", 1), ("shift", -1.0),
             ("shift", 101), ("video_guidance_scale", "high"), ("audio_guidance_scale", 1e9),
             ("slg_layer", -2), ("width", 9000), ("height", -1), ("width", None),
             ("video_negative_prompt", 3), ("audio_negative_prompt", ["a"]),
             ("image", 12), ("image", "not base64!"), ("image", "aGVsbG8="),
             ("image", "data:image/png,xyz"), ("sed", 1)]
    for field, value in cases:
        expect(srv, "POST", "/v1/jobs", {"prompt": PROMPT, field: value}, None, 400,
               f"{field}={value!r}"[:60], field)
    expect(srv, "POST", "/v1/jobs", b"prompt=x", {"Content-Type": "text/plain"}, 415,
           "an unknown content type")
    boundary = "b0"
    bad_form = (f'--{boundary}\r\nContent-Disposition: form-data; name="steps"\r\n\r\n'
                f'many\r\n--{boundary}--\r\n').encode()
    expect(srv, "POST", "/v1/jobs", bad_form,
           {"Content-Type": f"multipart/form-data; boundary={boundary}"}, 400,
           "a form with steps=many", "steps")
    expect(srv, "POST", "/v1/jobs", b"garbage",
           {"Content-Type": "multipart/form-data; boundary=zz"}, 400, "a broken form")
    big = b'{"prompt": "' + b"x" * (2 << 20) + b'"}'
    expect(srv, "POST", "/v1/jobs", big, j, 413, "a body over --max-body-bytes")
    reply = raw(srv, b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    check(reply.startswith(b"HTTP/1.1 411"), f"a chunked body -> 411 ({reply[:20]!r})")
    for path in ("/v1/jobs/0123456789abcdef0123456789abcdef", "/v1/jobs/nope",
                 "/v1/jobs/0123456789abcdef0123456789abcdef/result", "/nothing/here",
                 "/v1/jobs/..%2F..%2Fjobs.sqlite/result", "/v1/jobs/../jobs.sqlite",
                 "/v1/jobs/%2e%2e/%2e%2e/etc/passwd", "/v1/jobs/ABCDEF/result"):
        status, _, data = srv.request("GET", path)
        check(status in (400, 404) and b"SQLite" not in data and b"root:" not in data,
              f"GET {path} -> 404/400 and no file ({status})")
    expect(srv, "DELETE", "/v1/jobs/0123456789abcdef0123456789abcdef", None, None, 404,
           "DELETE an unknown id")
    status, hdrs, _ = srv.request("PUT", "/v1/jobs")
    check(status == 405 and "POST" in hdrs.get("Allow", ""), f"PUT /v1/jobs -> 405 with Allow "
          f"({status})")
    status, _, _ = srv.request("GET", "/v1/jobs?state=sleeping")
    check(status == 400, "an unknown state filter -> 400")
    for junk in (b"\x00\x01\x02garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                 b"GET " + b"/a" * 40000 + b" HTTP/1.1\r\n\r\n",
                 b"POST /v1/jobs HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"pro"):
        raw(srv, junk)
    check(srv.alive() and srv.json("GET", "/health")[0] == 200,
          "the server is still up after every bad request")


def test_token(tmp):
    srv = Server(BINARY, os.path.join(tmp, "token-data"), "--token", "s3cret").start()
    try:
        status, hdrs, _ = srv.request("GET", "/v1/jobs")
        check(status == 401 and hdrs.get("WWW-Authenticate", "").startswith("Bearer"),
              f"no token -> 401 with WWW-Authenticate ({status})")
        for path, method in (("/v1/jobs", "POST"), ("/v1/events", "GET"),
                             ("/v1/jobs/0123456789abcdef0123456789abcdef", "DELETE")):
            status, _, _ = srv.request(method, path, {"prompt": "x"} if method == "POST" else None)
            check(status == 401, f"{method} {path} without a token -> 401 ({status})")
        status, _, _ = srv.request("GET", "/v1/jobs", headers={"Authorization": "Bearer nope"})
        check(status == 401, "a wrong token -> 401")
        status, _, _ = srv.request("GET", "/v1/jobs", headers={"Authorization": "Bearer s3cret"})
        check(status == 200, "the token in Authorization -> 200")
        status, _, _ = srv.request("GET", "/v1/jobs?access_token=s3cret")
        check(status == 200, "the token as access_token -> 200 (for <video> and EventSource)")
        status, health = srv.json("GET", "/health")
        check(status == 200 and health["token_required"], "/health needs no token and says one is")
        status, _, page = srv.request("GET", "/")
        check(status == 200 and b"<form" in page, "the page needs no token")
    finally:
        srv.stop()


def test_queue_limit(tmp):
    srv = Server(BINARY, os.path.join(tmp, "limit-data"), "--max-queue", "2").start()
    try:
        a = srv.submit({"prompt": PROMPT, "steps": 1000})[1]
        b = srv.submit({"prompt": PROMPT, "steps": 1000})[1]
        status, hdrs, data = srv.request("POST", "/v1/jobs", {"prompt": PROMPT})
        check(status == 429 and "Retry-After" in hdrs and b"full" in data,
              f"a third job over --max-queue 2 -> 429 with Retry-After ({status})")
        srv.json("DELETE", "/v1/jobs/" + b["id"])
        status, c = srv.submit({"prompt": PROMPT, "steps": 1})
        check(status == 201, f"after a cancel there is room again ({status})")
        srv.json("DELETE", "/v1/jobs/" + a["id"])
        check(srv.wait_final(c["id"])["state"] == "done", "the admitted job runs")
    finally:
        srv.stop()


def test_model_dir(tmp):
    empty = os.path.join(tmp, "no-weights")
    os.makedirs(empty, exist_ok=True)
    bad = subprocess.run([BINARY, "--port", "0", "--model-dir", empty, "--data-dir",
                          os.path.join(tmp, "x")], capture_output=True, text=True, timeout=60)
    check(bad.returncode != 0 and empty in bad.stderr and "Ovi/model.safetensors" in bad.stderr,
          f"a --model-dir without weights is refused at start, naming it ({bad.stderr.strip()})")
    # a model folder that looks right but whose fusion weights are cut short
    broken = os.path.join(tmp, "broken-model")
    subprocess.run([os.environ["OVI_TOOL"], "make-tiny", broken], check=True,
                   capture_output=True)
    fusion = os.path.join(broken, "Ovi", "model.safetensors")
    os.truncate(fusion, 64)
    srv = Server(BINARY, os.path.join(tmp, "failing-data"), "--model-dir", broken).start()
    try:
        status, job = srv.submit({"prompt": PROMPT, "steps": 1})
        j = srv.wait_final(job["id"])
        check(j["state"] == "failed" and "model.safetensors" in (j["error"] or ""),
              f"a job whose weights are broken fails, naming the file ({j['state']}: "
              f"{j['error']})")
        status, _, _ = srv.request("GET", f"/v1/jobs/{job['id']}/result")
        check(status == 409, f"no result for a failed job (409, got {status})")
        status, job = srv.submit({"prompt": PROMPT, "steps": 1})
        check(status == 201 and srv.wait_final(job["id"])["state"] == "failed",
              "the server takes and runs the next job after a failure")
    finally:
        srv.stop()


def run_errors():
    tmp = tmpdir("ovi-server-errors-")
    srv = Server(BINARY, os.path.join(tmp, "data"), "--max-body-bytes", str(1 << 20)).start()
    try:
        test_bad_requests(srv, tmp)
    finally:
        srv.stop()
    test_token(tmp)
    test_queue_limit(tmp)
    test_model_dir(tmp)
    bad = subprocess.run([BINARY, "--port", "0", "--bind", "not-an-address",
                          "--data-dir", os.path.join(tmp, "x")], capture_output=True, text=True)
    check(bad.returncode != 0 and "not-an-address" in bad.stderr,
          "a bad --bind is refused with its value")


# ---- persistence ----

def run_persistence():
    tmp = tmpdir("ovi-server-persist-")
    data = os.path.join(tmp, "data")
    srv = Server(BINARY, data).start()
    first = srv.submit({"prompt": PROMPT, "steps": 2})[1]
    check(srv.wait_final(first["id"])["state"] == "done", "a first job is done")
    first_mp4 = srv.request("GET", f"/v1/jobs/{first['id']}/result")[2]
    long_job = srv.submit({"prompt": PROMPT, "steps": 300, "seed": 11})[1]
    queued = srv.submit({"prompt": PROMPT, "steps": 2, "seed": 12})[1]
    srv.wait(long_job["id"], lambda j: j["state"] == "running" and j["step"] >= 3)
    srv.kill9()
    results = os.path.join(data, "results")
    check(not os.path.exists(os.path.join(results, long_job["id"] + ".mp4")),
          "no result file from the killed job")
    check(os.path.exists(os.path.join(results, long_job["id"] + ".mp4.part")),
          "the killed job left its partial file")
    stale = os.path.join(results, "0" * 32 + ".mp4.part")
    open(stale, "wb").close()

    srv = Server(BINARY, data).start()
    try:
        check(not os.path.exists(stale), "partial files are cleared at start")
        j = srv.job(long_job["id"])
        check(j["state"] in ("queued", "running"), f"after kill -9 the interrupted job is "
              f"queued again ({j['state']})")
        q = srv.job(queued["id"])
        check(q["state"] in ("queued", "running"), f"the queued job is still there ({q['state']})")
        status, _, mp4 = srv.request("GET", f"/v1/jobs/{first['id']}/result")
        check(status == 200 and mp4 == first_mp4, f"the earlier result is still served, "
              f"unchanged ({status}, {len(mp4)} bytes, was {len(first_mp4)})")
        j = srv.wait_final(long_job["id"])
        check(j["state"] == "done" and j["attempts"] == 2 and j["step"] == 300,
              f"the interrupted job ran again to the end ({j['state']}, attempt {j['attempts']})")
        q = srv.wait_final(queued["id"])
        check(q["state"] == "done" and q["attempts"] == 1, "the queued job ran once")
        out = os.path.join(tmp, "rerun.mp4")
        with open(out, "wb") as f:
            f.write(srv.request("GET", j["result"])[2])
        check_mp4(out, "the re-run job's result")
        ids = [x["id"] for x in srv.json("GET", "/v1/jobs")[1]["jobs"]]
        check(ids == [first["id"], long_job["id"], queued["id"]],
              "no job lost, the order kept")
    finally:
        check(srv.stop() == 0, "the server stops cleanly")
    mode = subprocess.run([sys.executable, "-c", "import sqlite3,sys;"
                           "print(sqlite3.connect(sys.argv[1]).execute("
                           "'PRAGMA journal_mode').fetchone()[0])",
                           os.path.join(data, "jobs.sqlite")], capture_output=True, text=True)
    check(mode.stdout.strip() == "wal", f"the store is in WAL mode ({mode.stdout.strip()})")


# ---- routes against the docs ----

def run_routes():
    listed = json.loads(subprocess.run([BINARY, "--list-routes"], capture_output=True,
                                       text=True, check=True).stdout)
    routes = {(m, p) for m, p in listed["routes"]}
    spec = json.load(open(os.path.join(SRC, "tools", "ovi-server", "openapi.json")))
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops
                  if m in ("get", "post", "put", "delete", "patch")}
    check(routes == documented, f"openapi.json has exactly the server's routes "
          f"(missing {routes - documented}, extra {documented - routes})")
    fields = set(listed["job_fields"])
    schema = set(spec["components"]["schemas"]["JobRequest"]["properties"])
    check(fields == schema, f"openapi.json's JobRequest has exactly the job fields "
          f"(missing {fields - schema}, extra {schema - fields})")
    doc = open(os.path.join(SRC, "docs", "server.md")).read()
    for m, p in sorted(routes):
        check(re.search(rf"`{m} {re.escape(p)}`", doc) is not None,
              f"docs/server.md documents `{m} {p}`")
    for f in sorted(fields):
        check(f"`{f}`" in doc, f"docs/server.md documents the field `{f}`")


{"api": run_api, "errors": run_errors, "persistence": run_persistence,
 "routes": run_routes}[MODE]()
finish()
