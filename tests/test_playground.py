"""The playground (GET /) and the embeddable snippets, driven in headless Chromium against a
real server: runs, compile errors, limits, interactive runs, share links, and a snippet on a
page of another origin. Screenshots for the README are taken on the way (docs/*.png, with
EXECBOX_SCREENSHOTS=1)."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, Server, free_port, slow

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="Debian's chromium and chromium-driver are needed"
)
# The README's screenshots are replaced only when asked (EXECBOX_SCREENSHOTS=1): a run of the
# suite leaves the tree as it was; otherwise they go to .pytest_cache.
DOCS = ROOT / ("docs" if os.environ.get("EXECBOX_SCREENSHOTS") == "1" else ".pytest_cache")
EMBED_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>A page about Python</title>
<link rel="stylesheet" href="{execbox}/embed.css"></head>
<body style="font-family: sans-serif; max-width: 40rem; margin: 1rem auto">
<h1>Reversing a string</h1>
<p>Slicing with a negative step walks backwards:</p>
<pre data-execbox="editable"><code class="language-python">word = "execbox"
print(word[::-1])
print(sum(range(10)))</code></pre>
<script src="{execbox}/embed.js"></script>
</body></html>
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def other_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A plain static web server on another port: another origin than execbox's."""
    root = tmp_path_factory.mktemp("site")
    port = free_port()
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", root
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def site(other_origin: tuple[str, Path]) -> Iterator[Server]:
    origin, _ = other_origin
    srv = Server(env={"EXECBOX_CORS_ORIGINS": origin}).start()
    yield srv
    srv.stop()


def _browser() -> WebDriver:
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,900")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(slow(30))
    return driver


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = _browser()
    yield driver
    driver.quit()


def wait(driver: WebDriver, condition, timeout: float = 30):
    return WebDriverWait(driver, slow(timeout), poll_frequency=0.05).until(lambda d: condition(d))


def text(driver: WebDriver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).get_attribute("textContent") or ""


def status(driver: WebDriver) -> str:
    return driver.find_element(By.ID, "status").get_attribute("data-status") or ""


def open_playground(driver: WebDriver, url: str) -> None:
    driver.get(url)
    wait(driver, lambda d: status(d) == "ready")


def choose(driver: WebDriver, language: str) -> None:
    Select(driver.find_element(By.ID, "language")).select_by_value(language)


def code(driver: WebDriver) -> str:
    return driver.execute_script(
        "return document.querySelector('.CodeMirror').CodeMirror.getValue()"
    )


def set_code(driver: WebDriver, source: str) -> None:
    driver.execute_script(
        "document.querySelector('.CodeMirror').CodeMirror.setValue(arguments[0])", source
    )


def run(driver: WebDriver) -> str:
    """Run with the keyboard shortcut from the editor; the final status."""
    driver.find_element(By.CSS_SELECTOR, ".CodeMirror textarea").send_keys(Keys.CONTROL, Keys.ENTER)
    wait(driver, lambda d: status(d) not in ("ready", "running", ""), 60)
    return status(driver)


def test_get_root_serves_the_page_to_browsers_only(site: Server) -> None:
    before = httpx.get(site.url + "/")
    assert before.status_code == 405
    assert before.headers["allow"] == "POST"
    assert before.json()["code"] == "method_not_allowed"
    page = httpx.get(site.url + "/", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text
    posted = httpx.post(site.url + "/", json={"lang": "bash", "code": "echo hi"}, timeout=60)
    assert posted.json()["output"] == "hi"


def test_three_languages_run_and_show_their_output(site: Server, browser: WebDriver) -> None:
    open_playground(browser, site.url + "/")
    names = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "option")]
    assert {"python", "go", "bash"} <= set(names)
    for language in ("go", "bash", "python"):
        choose(browser, language)
        assert "Hello, world!" in code(browser)
        assert run(browser) == "ok", (text(browser, "compile"), code(browser))
        assert text(browser, "stdout") == "Hello, world!\n"
        assert "exit code 0" in text(browser, "status")
        assert " ms" in text(browser, "status") and " MB" in text(browser, "status")
    browser.find_element(By.ID, "stdin").send_keys("from stdin")
    set_code(browser, "import sys\nprint('Hello, world!', sys.stdin.read(), sys.argv[1:])\n")
    browser.find_element(By.ID, "args").send_keys("one\ntwo")
    assert run(browser) == "ok"
    assert text(browser, "stdout") == "Hello, world! from stdin ['one', 'two']\n"
    DOCS.mkdir(exist_ok=True)
    browser.save_screenshot(str(DOCS / "playground.png"))


def test_output_is_text_not_html(site: Server, browser: WebDriver) -> None:
    open_playground(browser, site.url + "/")
    set_code(browser, "print('<img src=x onerror=alert(1)><b>bold</b>')\n")
    assert run(browser) == "ok"
    assert browser.find_elements(By.CSS_SELECTOR, "#stdout *") == []
    assert text(browser, "stdout").startswith("<img src=x")


def test_compile_error_shows_the_compilers_message(site: Server, browser: WebDriver) -> None:
    open_playground(browser, site.url + "/")
    choose(browser, "c")
    set_code(browser, "int main() {\n  return x;\n}\n")
    assert run(browser) == "compile_error"
    # gcc quotes with ' or with typographic quotes, depending on the locale.
    assert re.search(r"main\.c:2:10: error: .x. undeclared", text(browser, "compile"))
    assert browser.find_element(By.ID, "compile").is_displayed()


def test_time_limit_shows_the_status(site: Server, browser: WebDriver) -> None:
    open_playground(browser, site.url + "/")
    set_code(browser, "while True:\n    pass\n")
    browser.find_element(By.CSS_SELECTOR, "#limits-box summary").click()
    browser.find_element(By.ID, "wall_time_ms").send_keys("500")
    browser.find_element(By.ID, "cpu_time_ms").send_keys("400")
    assert run(browser) == "time_limit"
    assert "time_limit" in text(browser, "status")
    # Above the server's maximum is refused before anything is sent.
    browser.find_element(By.ID, "memory_mb").send_keys("999999")
    assert run(browser) == "invalid"


def test_interactive_echoes_typed_stdin_and_stop_ends_the_run(
    site: Server, browser: WebDriver
) -> None:
    open_playground(browser, site.url + "/")
    set_code(browser, "while True:\n    print('echo:', input(), flush=True)\n")
    browser.find_element(By.ID, "interactive").click()
    wait(browser, lambda d: "type stdin" in text(d, "status"))
    line = browser.find_element(By.ID, "stdin-line")
    line.send_keys("hello there", Keys.ENTER)
    wait(browser, lambda d: "echo: hello there" in text(d, "stdout"))
    line.send_keys("again", Keys.ENTER)
    wait(browser, lambda d: "echo: again" in text(d, "stdout"))
    browser.find_element(By.ID, "stop").click()
    wait(browser, lambda d: "SIGKILL" in text(d, "status"))
    wait(browser, lambda d: not d.find_element(By.ID, "stop").is_enabled())
    assert browser.find_element(By.ID, "run").is_enabled()


def test_share_link_restores_the_program_in_a_new_browser(site: Server, browser: WebDriver) -> None:
    open_playground(browser, site.url + "/")
    choose(browser, "bash")
    program = 'echo "args: $*"\nread -r line\necho "read: $line ✓"\n'
    set_code(browser, program)
    browser.find_element(By.ID, "stdin").send_keys("some input")
    browser.find_element(By.ID, "args").send_keys("a b\nc")
    browser.find_element(By.ID, "share").click()
    link = browser.find_element(By.ID, "share-link").get_attribute("value")
    assert link.startswith(site.url + "/#s=")
    other = _browser()
    try:
        open_playground(other, link)
        assert (
            Select(other.find_element(By.ID, "language")).first_selected_option.get_attribute(
                "value"
            )
            == "bash"
        )
        assert code(other) == program
        assert other.find_element(By.ID, "stdin").get_attribute("value") == "some input"
        assert other.find_element(By.ID, "args").get_attribute("value") == "a b\nc"
        assert run(other) == "ok"
        assert text(other, "stdout") == "args: a b c\nread: some input ✓\n"
    finally:
        other.quit()


def test_embedded_snippet_runs_on_a_page_of_another_origin(
    site: Server, browser: WebDriver, other_origin: tuple[str, Path]
) -> None:
    origin, root = other_origin
    (root / "page.html").write_text(EMBED_PAGE.format(execbox=site.url))
    browser.get(f"{origin}/page.html")
    button = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".execbox-run"))
    button.click()
    output = browser.find_element(By.CSS_SELECTOR, ".execbox-output")
    wait(browser, lambda d: output.get_attribute("textContent"))
    assert output.get_attribute("textContent") == "xobcexe\n45\n"
    editor = browser.find_element(By.CSS_SELECTOR, ".execbox-editor")
    editor.send_keys(Keys.CONTROL, Keys.END)
    editor.send_keys("\nprint('edited')")
    editor.send_keys(Keys.CONTROL, Keys.ENTER)
    wait(browser, lambda d: "edited" in output.get_attribute("textContent"))
    browser.set_window_size(800, 500)
    browser.save_screenshot(str(DOCS / "embed.png"))
    browser.set_window_size(1280, 900)


def test_cors_only_for_the_configured_origin_and_the_embed_routes(
    site: Server, other_origin: tuple[str, Path]
) -> None:
    origin, _ = other_origin
    preflight = {"origin": origin, "access-control-request-method": "POST"}
    allowed = httpx.options(site.url + "/api/v1/execute", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == origin
    foreign = {**preflight, "origin": "http://evil.example"}
    refused = httpx.options(site.url + "/api/v1/execute", headers=foreign)
    assert "access-control-allow-origin" not in refused.headers
    # Routes the embed does not use stay same-origin even for the configured origin.
    other_route = httpx.options(site.url + "/api/v2/execute", headers=preflight)
    assert "access-control-allow-origin" not in other_route.headers
    script = httpx.get(site.url + "/embed.js", headers={"origin": "http://evil.example"})
    assert script.headers["access-control-allow-origin"] == "*"
    assert script.headers["content-type"].startswith("text/javascript")


def test_phone_width_has_no_sideways_scrolling(site: Server, browser: WebDriver) -> None:
    browser.set_window_size(390, 844)
    try:
        open_playground(browser, site.url + "/")
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        assert run(browser) == "ok"
        assert browser.find_element(By.ID, "stdout").is_displayed()
    finally:
        browser.set_window_size(1280, 900)


def test_keyboard_tab_indents_and_esc_tab_leaves_the_editor(
    site: Server, browser: WebDriver
) -> None:
    open_playground(browser, site.url + "/")
    set_code(browser, "")
    field = browser.find_element(By.CSS_SELECTOR, ".CodeMirror textarea")
    field.send_keys(Keys.TAB, "x")
    assert code(browser) == "    x"
    ActionChains(browser).send_keys(Keys.ESCAPE).send_keys(Keys.TAB).perform()
    active = browser.switch_to.active_element
    assert active.get_attribute("id") == "stdin", active.get_attribute("outerHTML")[:200]


def test_api_key_is_typed_by_the_user_and_kept_in_session_storage(browser: WebDriver) -> None:
    keyed = Server(env={"EXECBOX_API_KEYS": "s3cret"}).start()
    try:
        page = httpx.get(keyed.url + "/", headers={"accept": "text/html"})
        assert page.status_code == 200 and "s3cret" not in page.text
        browser.get(keyed.url + "/")
        wait(browser, lambda d: status(d) == "error")
        key = browser.find_element(By.ID, "api-key")
        key.send_keys("s3cret", Keys.TAB)
        wait(browser, lambda d: status(d) == "ready")
        assert (
            browser.execute_script("return sessionStorage.getItem('execbox-api-key')") == "s3cret"
        )
        assert run(browser) == "ok"
        assert text(browser, "stdout") == "Hello, world!\n"
        browser.execute_script("sessionStorage.clear()")
    finally:
        keyed.stop()
