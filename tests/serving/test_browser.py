"""The drawing page in a real browser: headless Debian Chromium driven by Selenium draws a stroke with the
mouse (pointer events); the page posts the canvas as PNG and shows the top-3 and a bar per class.

Needs ``apt-get install chromium chromium-driver`` and ``pip install selenium``; skipped without them.
Set GLYPHLAB_SCREENSHOT=path.png to keep the screenshot.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from serving_helpers import stop_server

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

pytestmark = [
    pytest.mark.skipif(not HAVE_SELENIUM, reason="selenium is not installed: pip install selenium"),
    pytest.mark.skipif(
        CHROMIUM is None or DRIVER is None,
        reason="no chromium/chromedriver: apt-get install -y chromium chromium-driver (Debian)",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path, port: int) -> subprocess.Popen:
    """``glyphlab serve`` in a subprocess on 127.0.0.1; returns once /health answers."""
    cmd = [
        sys.executable,
        "-c",
        "from glyphlab.cli import app; app()",
        "serve",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180  # a bound for a server that never starts; at load 14 one took over 60 s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the server did not answer /health within 180 s")


def make_driver(width: int = 740, height: int = 760):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
    ):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


def draw(driver, points: list[tuple[float, float]]) -> None:
    """Draw a polyline on the canvas with the mouse; points in canvas fractions (0..1)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.ID, "draw")
    w, h = canvas.size["width"], canvas.size["height"]

    def off(p):  # Selenium 4 offsets are from the element's centre
        return int(p[0] * w - w / 2), int(p[1] * h - h / 2)

    chain = ActionChains(driver, duration=10).move_to_element_with_offset(canvas, *off(points[0])).click_and_hold()
    prev = off(points[0])
    for p in points[1:]:
        cur = off(p)
        steps = 6
        for k in range(1, steps + 1):
            chain.move_by_offset(
                round((cur[0] - prev[0]) * k / steps) - round((cur[0] - prev[0]) * (k - 1) / steps),
                round((cur[1] - prev[1]) * k / steps) - round((cur[1] - prev[1]) * (k - 1) / steps),
            )
        prev = cur
    chain.release().perform()


@contextmanager
def drawing_page(model_dir: Path, model_name: str):
    """A served model's drawing page in a headless Chromium, once the page shows the model's id."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port()
    proc = start_server(model_dir, port)
    driver = None
    try:
        driver = make_driver()
        driver.get(f"http://127.0.0.1:{port}/")
        WebDriverWait(driver, 20).until(EC.text_to_be_present_in_element((By.ID, "model"), model_name + "-"))
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        stop_server(proc)


def test_draw_a_stroke_and_see_a_prediction(logreg_dir, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    with drawing_page(logreg_dir, "logreg") as driver:
        draw(driver, [(0.5, 0.12), (0.5, 0.88)])  # a '1'
        WebDriverWait(driver, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#top li .cls")))
        top = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#top li .cls")]
        assert len(top) == 3 and all(t in [str(i) for i in range(10)] for t in top)
        bars = driver.find_elements(By.CSS_SELECTOR, "#bars .bar")
        assert len(bars) == 10
        assert driver.find_element(By.ID, "status").text == ""
        logs = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not logs, logs
        shot = Path(os.environ.get("GLYPHLAB_SCREENSHOT") or tmp_path / "serve.png")
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 1000
        # Clear empties the predictions: back to the idle layout (a bar per class, none filled)
        driver.find_element(By.ID, "clear").click()
        assert driver.find_elements(By.CSS_SELECTOR, "#top li.empty")
        assert not driver.find_elements(By.CSS_SELECTOR, "#bars .bar:not(.idle)")
        assert len(driver.find_elements(By.CSS_SELECTOR, "#bars .bar.idle")) == 10


def test_idle_layout_and_the_heat_map_toggle(cnn_dir, tmp_path):
    """Before any drawing the prompt spans its panel and every class has an empty bar; with the toggle on, a
    stroke gets its heat map over the drawing and a caption naming both classes."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    with drawing_page(cnn_dir, "cnn-small") as driver:
        WebDriverWait(driver, 20).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#bars .bar.idle")) == 10)
        prompt = driver.find_element(By.CSS_SELECTOR, "#top li.empty")
        assert prompt.size["width"] > 250 and prompt.size["height"] < 120  # one block, not a word per line
        shot = Path(os.environ.get("GLYPHLAB_SCREENSHOT_DIR") or tmp_path)
        driver.save_screenshot(str(shot / "serve-idle.png"))
        assert not driver.find_element(By.ID, "heat").is_displayed()
        driver.find_element(By.ID, "heat-toggle").click()
        draw(driver, [(0.5, 0.12), (0.5, 0.88)])
        WebDriverWait(driver, 30).until(EC.visibility_of_element_located((By.ID, "heat")))
        WebDriverWait(driver, 30).until(EC.text_to_be_present_in_element((By.ID, "why"), "and not"))
        top = driver.find_element(By.CSS_SELECTOR, "#top li .cls").text
        assert driver.find_element(By.ID, "why").text.startswith(f"Why {top} and not ")
        # the heat canvas holds colour (red or blue pixels), not a blank
        coloured = driver.execute_script(
            "const d = document.getElementById('heat').getContext('2d').getImageData(0, 0, 280, 280).data;"
            "let n = 0; for (let i = 0; i < d.length; i += 4) { if (Math.abs(d[i] - d[i + 2]) > 40) n++; } return n;"
        )
        assert coloured > 100
        assert driver.find_element(By.ID, "status").text == ""
        logs = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not logs, logs
        driver.save_screenshot(str(shot / "serve-heat.png"))
        driver.find_element(By.ID, "heat-toggle").click()
        assert not driver.find_element(By.ID, "heat").is_displayed()


def test_read_a_number_with_boxes_and_a_heat_map_per_character(cnn_dir, tmp_path):
    """In "A number" mode two separate strokes are read through /reading as two characters: one card each (label,
    probability, runner-up), a box over each on the drawing; "show why" adds each character's heat map
    (/reading?explain=true), naming the character read."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with drawing_page(cnn_dir, "cnn-small") as driver:
        driver.find_element(By.CSS_SELECTOR, "label:has(#mode-number)").click()
        assert driver.find_element(By.ID, "draw").size["width"] == 600
        assert not driver.find_element(By.ID, "top").is_displayed()
        draw(driver, [(0.22, 0.15), (0.22, 0.85)])  # a '1'
        draw(driver, [(0.45, 0.18), (0.62, 0.18), (0.5, 0.85)])  # a '7', well apart from it
        idle = "#result[aria-busy=false]"  # no reading in flight or pending: the page has the last drawing's
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, idle + " #chars .char"))
        text = driver.find_element(By.ID, "text").text
        cards = driver.find_elements(By.CSS_SELECTOR, "#chars .char")
        assert len(text) == 2 and [c.find_element(By.CLASS_NAME, "label").text for c in cards] == list(text)
        assert all(c.find_element(By.CLASS_NAME, "p").text.endswith("%") for c in cards)
        assert driver.find_element(By.ID, "confidence").text.startswith("confidence of the whole string")
        # a box per character on the overlay: its left edges left to right, and coloured pixels on the canvas
        lefts = [float(c.get_attribute("data-rect").split(",")[0]) for c in cards]
        assert lefts == sorted(lefts) and lefts[0] < 0.35 * 600 < lefts[1]
        boxed = driver.execute_script(
            "const d = document.getElementById('heat').getContext('2d').getImageData(0, 0, 600, 200).data;"
            "let n = 0; for (let i = 0; i < d.length; i += 4) { if (d[i + 3] > 0 && Math.abs(d[i + 2] - d[i]) > 60) n++; }"
            "return n;"
        )
        assert boxed > 100
        driver.find_element(By.ID, "heat-toggle").click()
        WebDriverWait(driver, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, idle + " .char .whyone")) == 2)
        notes = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#chars .char .whyone")]
        text = driver.find_element(By.ID, "text").text
        assert [n.split(" not ")[0] for n in notes] == list(text), (notes, text)
        assert len(driver.find_elements(By.CSS_SELECTOR, "#chars .char canvas")) == 2
        assert driver.find_element(By.ID, "status").text == ""
        logs = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not logs, logs
        shot = Path(os.environ.get("GLYPHLAB_SCREENSHOT_DIR") or tmp_path)
        driver.save_screenshot(str(shot / "serve-reading.png"))
        # back to one character: the glyph panel again, the reading gone
        driver.find_element(By.CSS_SELECTOR, "label:has(input[value=glyph])").click()
        assert driver.find_element(By.ID, "draw").size["width"] == 280
        assert (
            driver.find_element(By.ID, "top").is_displayed() and not driver.find_element(By.ID, "text").is_displayed()
        )
