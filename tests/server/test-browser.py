#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""ovi-server's page in headless Chromium: load it, submit a prompt, watch
the progress bar, cancel a job, play the result.

  test-browser.py OVI_SERVER

Needs Debian's chromium, chromium-driver and python3-selenium (exit 77, a
skip, without them). Leaves a screenshot and names it in the log.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_util import Server, check, ffprobe, finish, tmpdir  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from browser import start_browser  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BINARY = sys.argv[1]
PROMPT = "A fox runs through snow. <S>Look at it go!<E> <AUDCAP>wind, crunching snow<ENDAUDCAP>"


def card_state(driver, job_id):
    return driver.execute_script(
        "const c = document.getElementById('job-' + arguments[0]);"
        "return c ? c.dataset.state : null;", job_id)


def newest_job_id(driver):
    return driver.execute_script(
        "const c = document.querySelector('#jobs .job');"
        "return c ? c.id.slice(4) : null;")


def submit(driver, prompt, steps):
    driver.find_element(By.ID, "prompt").clear()
    driver.find_element(By.ID, "prompt").send_keys(prompt)
    driver.find_element(By.ID, "steps").clear()
    driver.find_element(By.ID, "steps").send_keys(str(steps))
    before = newest_job_id(driver)
    driver.find_element(By.ID, "submit").click()
    WebDriverWait(driver, 30).until(lambda d: newest_job_id(d) not in (None, before))
    return newest_job_id(driver)


def main():
    tmp = tmpdir("ovi-server-browser-")
    shot = os.path.join(os.environ.get("OVI_SERVER_TEST_TMP", tmp), "server-browser.png")
    srv = Server(BINARY, os.path.join(tmp, "data")).start()
    driver = None
    try:
        driver = start_browser(tmp, "--window-size=1280,900")
        driver.get(f"http://127.0.0.1:{srv.port}/")
        WebDriverWait(driver, 30).until(
            lambda d: "model: tiny" in d.find_element(By.ID, "status").text)
        check(True, "the page loads and shows the server's model")
        check(driver.find_element(By.ID, "image").get_attribute("type") == "file",
              "the form has an image upload")

        # a long job: the progress bar moves, then the cancel button stops it
        long_id = submit(driver, "A long one. <AUDCAP>hum<ENDAUDCAP>", 1000)
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(
            "const p = document.querySelector('#job-' + arguments[0] + ' progress');"
            "return p && p.value > 0.05;", long_id))
        check(True, "the running job's progress bar moves (live events)")
        running_shot = shot.replace(".png", "-running.png")
        driver.save_screenshot(running_shot)
        print(f"screenshot of the running job: {running_shot}")
        driver.find_element(By.CSS_SELECTOR, f"#job-{long_id} button.cancel").click()
        WebDriverWait(driver, 60).until(lambda d: card_state(d, long_id) == "cancelled")
        check(srv.job(long_id)["state"] == "cancelled", "the cancel button cancels the job")

        # a short job to the end: the video element plays the clip
        job_id = submit(driver, PROMPT, 2)
        WebDriverWait(driver, 120).until(lambda d: card_state(d, job_id) == "done")
        duration = WebDriverWait(driver, 60).until(lambda d: d.execute_script(
            "const v = document.querySelector('#job-' + arguments[0] + ' video');"
            "return v && v.readyState >= 1 && v.duration > 0 ? v.duration : null;", job_id))
        out = os.path.join(tmp, "result.mp4")
        with open(out, "wb") as f:
            f.write(srv.request("GET", f"/v1/jobs/{job_id}/result")[2])
        real = float(ffprobe(out)["format"]["duration"])
        check(abs(duration - real) < 0.1,
              f"the video element plays the result ({duration:.3f} s, ffprobe {real:.3f} s)")
        text = driver.find_element(By.ID, f"job-{job_id}").text
        check("done" in text and "Fox" not in text and "fox" in text,
              "the card shows the prompt and its state")
    finally:
        if driver:
            driver.save_screenshot(shot)
            print(f"screenshot: {shot}")
            driver.quit()
        srv.stop()


main()
finish()
