"""The page: its helpers, `cinetune ui` serving, and a real headless Chromium (Debian's) driven by Selenium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cinetune.errors import CinetuneError

ARTIFACTS = Path(os.environ.get("CINETUNE_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_condition_uploads_are_named_by_kind(tmp_path):
    from cinetune.ui.app import condition_uploads

    assert condition_uploads([str(tmp_path / "depth.mp4"), str(tmp_path / "pose-clip.mp4")]) == {
        "depth": str(tmp_path / "depth.mp4"), "pose": str(tmp_path / "pose-clip.mp4")}
    with pytest.raises(CinetuneError, match="name condition videos by their kind"):
        condition_uploads([str(tmp_path / "clip.mp4")])


def test_window_table_parses_and_refuses_non_numbers():
    from cinetune.ui.app import windows_from_table

    w = windows_from_table([["depth", 0.5, 0, 1], ["", None, None, None], ["pose", "1", "0.2", "0.8"]])
    assert (w["depth"].scale, w["pose"].start, w["pose"].end) == (0.5, 0.2, 0.8) and len(w) == 2
    with pytest.raises(CinetuneError, match="must be numbers"):
        windows_from_table([["depth", "strong", 0, 1]])
    with pytest.raises(CinetuneError, match="finite"):
        windows_from_table([["depth", "nan", 0, 1]])


def test_guarded_handler_reports_in_the_status_box():
    pytest.importorskip("gradio")
    from cinetune.ui.app import guarded

    @guarded(3)
    def handler(x):
        if x == "bad":
            raise CinetuneError("reference 0: no face found")
        if x == "bug":
            raise ZeroDivisionError("division by zero")
        return "ok", 1, 2

    assert handler("good") == ("ok", 1, 2)
    status, *rest = handler("bad")
    assert status == "**Error:** reference 0: no face found" and len(rest) == 2
    assert handler("bug")[0] == "**Error:** internal error: ZeroDivisionError: division by zero"


def test_ui_without_gradio_is_a_one_line_error(monkeypatch, capsys):
    from cinetune.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["ui", "--model", "toy-small"]) == 2
    assert "pip install 'cinetune[ui]'" in capsys.readouterr().err


def test_cinetune_ui_serves_on_localhost(tmp_path):
    """The command itself: prints the URL, serves the page, stops on a signal."""
    pytest.importorskip("gradio")
    import urllib.request

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cinetune.cli", "ui", "--model", "toy-small", "--port", str(port),
                             "--out", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read().decode()
        assert "cinetune" in page
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_taken_port_is_a_one_line_error(capsys, tmp_path):
    pytest.importorskip("gradio")
    from cinetune.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert main(["ui", "--model", "toy-small", "--port", str(s.getsockname()[1]), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the port is in use" in err[0]


def test_dry_run_builds_the_page_and_serves_nothing(capsys, tmp_path):
    pytest.importorskip("gradio")
    from cinetune.cli import main

    assert main(["ui", "--model", "toy-small", "--dry-run", "--host", "localhost", "--out", str(tmp_path)]) == 0
    assert "would serve toy-small on http://127.0.0.1:7860" in capsys.readouterr().out


def test_generate_is_a_local_http_api(studio):
    """What `cinetune bench ui` times: the page's Generate called over HTTP; bad input comes back as the message."""
    pytest.importorskip("gradio")
    from gradio_client import Client

    from cinetune.ui.app import WINDOW_HEADERS, launch

    app, url = launch(studio, "127.0.0.1", _free_port())
    try:
        client = Client(url, verbose=False)
        args = ["A blue square bounces on a beige background.", "", 1, 5.0, 0, 17, 64, 64, "none", None, [], "auto",
                None, {"headers": WINDOW_HEADERS, "data": []}, "none", None, "none", False, False, "unipc"]
        status, video, grid, command, _ = client.predict(*args, api_name="/generate")
        assert status.startswith("Generated in") and Path(video).stat().st_size > 0
        assert "--steps 1 --guidance 5 --scheduler unipc" in command
        args[7] = 65
        status = client.predict(*args, api_name="/generate")[0]
        assert status.startswith("**Error:**") and "multiples of 8" in status
    finally:
        app.close()


# -- a real browser -------------------------------------------------------------------------------------------------
def _browser_or_skip():
    """Chromium and its driver from Debian's packages, or a clear skip (a failure where CI requires them)."""
    missing = [b for b in ("chromium", "chromedriver") if shutil.which(b) is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install 'cinetune[test]')")
    if missing:
        reason = f"browser tests need {', '.join(missing)} (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get("CINETUNE_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def page(studio):
    """The app on a free localhost port and a headless Chromium on it (no network: the driver is Debian's, so
    Selenium Manager downloads nothing)."""
    _browser_or_skip()
    pytest.importorskip("gradio")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    from cinetune.ui.app import launch

    app, url = launch(studio, "127.0.0.1", _free_port())
    opts = Options()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100",
              "--autoplay-policy=no-user-gesture-required"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        driver.get(url)
        yield driver
    finally:
        driver.quit()
        app.close()


def _field(driver, elem_id: str, tag: str = "input"):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, 60).until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"#{elem_id} {tag}")))


def _type(driver, elem_id: str, text: str, tag: str = "input") -> None:
    from selenium.webdriver.common.keys import Keys

    el = _field(driver, elem_id, tag)
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.BACKSPACE)
    el.send_keys(text, Keys.TAB)


def _status_after_click(driver, previous: str, timeout: float = 240) -> str:
    """Click Generate, then wait for the status box to show a new message alone (while the request runs, Gradio
    lays its progress over the old message)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.CSS_SELECTOR, "#generate").click()
    status = lambda d: d.find_element(By.CSS_SELECTOR, "#status").text.strip()  # noqa: E731
    WebDriverWait(driver, timeout, poll_frequency=0.5).until(
        lambda d: status(d) not in ("", previous) and "\n" not in status(d) and status(d).startswith(("Error", "Gen")))
    return status(driver)


def test_browser_bad_input_then_a_playable_video(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _type(page, "prompt", "A large yellow star spins on a black background.", tag="textarea")
    _type(page, "steps", "2")
    _type(page, "width", "60")  # not a multiple of the model's 8
    error = _status_after_click(page, "Ready.")
    assert "Error:" in error and "multiples of 8" in error and "Traceback" not in page.page_source
    page.save_screenshot(str(ARTIFACTS / "ui-bad-input.png"))

    _type(page, "width", "64")  # the server still serves
    done = _status_after_click(page, error)
    assert "Generated in" in done, done

    def playable(d):
        return d.execute_script(
            "const v = document.querySelector('#result-video video');"
            "return v && v.src && v.readyState >= 2 && v.duration > 0 && v.videoWidth > 0 ? v.duration : null;")
    duration = WebDriverWait(page, 60, poll_frequency=0.5).until(playable)
    assert abs(duration - 17 / 8) < 0.2  # 17 frames at the toy models' 8 fps
    command = " ".join(page.find_element(By.CSS_SELECTOR, "#command").text.split())
    assert "cinetune generate --model toy-large" in command and "--steps 2" in command
    time.sleep(1)  # a frame painted for the screenshot
    page.save_screenshot(str(ARTIFACTS / "ui-text-to-video.png"))
    base = page.current_url.split("?")[0].rstrip("/")
    elsewhere = page.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"
                                    ".filter(n => !n.startsWith(arguments[0]) && !/^(data|blob):/.test(n));", base)
    assert elsewhere == []  # the page loads nothing from outside the app (fonts included)


def _tab(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    next(b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == name).click()


def _pick(driver, elem_id: str, value: str) -> None:
    """Choose a dropdown entry as a user does: open the list, click the entry."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    _field(driver, elem_id).click()
    WebDriverWait(driver, 30).until(ec.element_to_be_clickable(
        (By.CSS_SELECTOR, f'li[role=option][aria-label="{value}"]'))).click()


def _upload(driver, elem_id: str, *paths) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=file]").send_keys("\n".join(map(str, paths)))


def test_browser_every_panel_in_one_click(page, uploads):
    """Control extracted from an uploaded reference, two uploaded faces and the 4-step student, one Generate."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    status = lambda d: d.find_element(By.CSS_SELECTOR, "#status").text.strip()  # noqa: E731
    _type(page, "prompt", uploads["prompt"], tag="textarea")
    _tab(page, "Control")
    _pick(page, "adapter", "toy-large-controlnext")
    WebDriverWait(page, 60).until(lambda d: "canny, depth, pose" in status(d))
    _upload(page, "control-reference", uploads["reference"])
    page.find_element(By.CSS_SELECTOR, "#extract").click()
    WebDriverWait(page, 120).until(lambda d: status(d).startswith("Extracted"))
    _tab(page, "Identities")
    _pick(page, "identities", "toy-large-ingredients")
    _upload(page, "face-images", *uploads["faces"])
    page.find_element(By.CSS_SELECTOR, "#detect").click()
    WebDriverWait(page, 60).until(lambda d: status(d).startswith("2 face(s) found"))
    _tab(page, "Few-step")
    _pick(page, "student", "toy-large-4step")
    before = status(page)
    done = _status_after_click(page, before)
    assert "Generated in" in done and "canny | depth | pose | reference faces | result" in done, done
    command = " ".join(page.find_element(By.CSS_SELECTOR, "#command").text.split())
    assert "--adapter toy-large-4step --adapter toy-large-controlnext" in command and "--identity" in command, command
    page.save_screenshot(str(ARTIFACTS / "ui-every-panel.png"))
