#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""examples/pipelines/live-to-webrtc.sh played by headless Chromium: the
page the signalling server serves answers the offer and plays; passes when
the <video> shows 96x64 pictures (the tiny model), has played >= 2 s and
decoded >= 48 frames, and the stream carries a live audio track. Skips (77)
without python3-selenium, chromium or chromedriver.

Usage: test-webrtc-browser.py SOURCE_ROOT  (the GStreamer env from meson)
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from browser import start_browser  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

EXAMPLE = os.path.join(sys.argv[1], "examples", "pipelines", "live-to-webrtc.sh")
PLAYED = """
const v = document.getElementById('player');
const s = v.srcObject;
return {w: v.videoWidth, h: v.videoHeight, t: v.currentTime,
        frames: v.getVideoPlaybackQuality().totalVideoFrames,
        audio: s ? s.getAudioTracks().filter(t => t.readyState === 'live').length : 0,
        state: document.getElementById('state').textContent};
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    tmp = tempfile.mkdtemp(prefix="ovi-webrtc-browser-")
    port = free_port()
    env = dict(os.environ, OVI_DENOISE="steps=1")
    # 60 clips: 22.5 s of stream, more than the page needs to show 2 s
    sender = subprocess.Popen([EXAMPLE, str(port), "A lighthouse at night. "
                               "<AUDCAP>waves<ENDAUDCAP>", "60"], env=env)
    driver = None
    last = {}
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        driver = start_browser(tmp)
        driver.get(f"http://127.0.0.1:{port}/")

        def played(d):
            last.update(d.execute_script(PLAYED))
            return (last["t"] >= 2.0 and last["frames"] >= 48 and
                    last["audio"] >= 1)
        try:
            WebDriverWait(driver, 120, poll_frequency=0.5).until(played)
        except Exception as e:  # selenium's TimeoutException
            print(f"the page did not play: {type(e).__name__}")
    finally:
        if driver:
            driver.quit()
        sender.terminate()
        sender.wait(15)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"page: {last}")
    ok = (last.get("w"), last.get("h")) == (96, 64) and \
        last.get("t", 0) >= 2.0 and last.get("frames", 0) >= 48 and \
        last.get("audio", 0) >= 1
    print(("ok: " if ok else "FAIL: ") + "Chromium plays the live stream "
          "(96x64 video >= 2 s, >= 48 frames, a live audio track)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
