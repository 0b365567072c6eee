# SPDX-License-Identifier: LGPL-2.1-or-later
"""Headless Chromium through selenium for the browser tests; importing this
skips the test (exit 77) without python3-selenium, chromium or
chromedriver."""
import os
import shutil
import sys

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
except ImportError:
    print("SKIP: python3-selenium is not installed")
    sys.exit(77)

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
if not CHROMIUM or not DRIVER:
    print("SKIP: chromium or chromedriver not found")
    sys.exit(77)


def start_browser(tmp, *args):
    """Chromium with its profile and driver log in `tmp`, playing media
    without a gesture, muted; `args` more switches"""
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
              "--disable-dev-shm-usage", *args,
              f"--user-data-dir={os.path.join(tmp, 'profile')}",
              "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        opts.add_argument(a)
    service = Service(DRIVER, log_path=os.path.join(tmp, "chromedriver.log"))
    return webdriver.Chrome(service=service, options=opts)
