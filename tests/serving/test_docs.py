"""/docs works offline: the Swagger UI page and its assets come from glyphlab itself (fastapi-offline), and a
headless Chromium whose every non-loopback request goes to a dead proxy renders the API's operations."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from glyphlab.serving.app import create_app


@pytest.mark.parametrize("page_url,script", [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_docs_pages_and_assets_are_local(logreg_dir, page_url, script):
    with TestClient(create_app(logreg_dir)) as c:
        page = c.get(page_url)
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)""", page.text)
        assert urls and not [u for u in urls if "//" in u], urls  # nothing from another host
        js = [u for u in urls if u.endswith(script)]
        assert js, urls
        for url in urls:
            r = c.get(url)
            assert r.status_code == 200 and len(r.content) > 500, url
        assert c.get(js[0]).headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
        assert c.get("/openapi.json").json()["paths"]["/prediction"]


def test_docs_render_offline_in_chromium(logreg_dir, tmp_path):
    from test_browser import CHROMIUM, DRIVER, HAVE_SELENIUM, free_port, start_server, stop_server

    if not HAVE_SELENIUM or CHROMIUM is None or DRIVER is None:
        pytest.skip("needs selenium, chromium and chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port()
    proc = start_server(logreg_dir, port)
    driver = None
    try:
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        # every request except to loopback goes to a proxy that does not exist: a CDN asset could not load
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1100,1000",
            "--proxy-server=http://127.0.0.1:9",
            "--disable-background-networking",
        ):
            opts.add_argument(arg)
        driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
        driver.get(f"http://127.0.0.1:{port}/docs")
        WebDriverWait(driver, 30).until(
            EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".swagger-ui .info .title"), "glyphlab")
        )
        paths = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
        assert "/prediction" in paths and "/health" in paths, paths
        shot = Path(os.environ.get("GLYPHLAB_SCREENSHOT_DOCS") or tmp_path / "docs.png")
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 5000
    finally:
        if driver is not None:
            driver.quit()
        stop_server(proc)
