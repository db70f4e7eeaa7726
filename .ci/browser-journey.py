#!/usr/bin/env python3
"""Real-browser end-to-end journeys for partnerd.

Standard library only: a tiny W3C WebDriver client (urllib) talking to a
chromedriver that this script starts itself, driving headless Chromium
against a `partnerd serve` started on a free port with a fresh data dir.

    .ci/install-browser.sh                       # chromium + chromedriver (apt)
    cargo build --release
    python3 .ci/browser-journey.py               # all journeys
    python3 .ci/browser-journey.py --only signup # journeys whose name contains "signup"
    python3 .ci/browser-journey.py --self-test   # checks the harness only (no partnerd)

Output: one line per journey, `ok  <name>` or `FAIL <name>: <reason>`
(diagnostics follow a failure on stderr), then exactly one summary line
`N passed, M failed`. Exit status is 1 if anything failed, 0 otherwise.
Screenshots and logs (server.log, chromedriver.log) go to --out.

Adding a journey: write `def journey_xxx(b, base_url): ...` using the
`Browser` helpers below (raise/`expect` on failure) and append it to
JOURNEYS. Each journey gets its own browser session (fresh profile, no
cookies) against the same server, and journeys run in list order.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parent.parent
ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"  # W3C web element identifier

# Never route localhost traffic through an HTTP(S)_PROXY from the environment.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
]


# --------------------------------------------------------------------------
# Errors and small utilities
# --------------------------------------------------------------------------


class JourneyError(AssertionError):
    """An expectation of a journey did not hold."""


class WebDriverError(Exception):
    """An error answered by the WebDriver endpoint (W3C error code + message)."""

    def __init__(self, error: str, message: str, status: int | None = None):
        self.error = error
        self.message = message
        self.status = status
        first = (message or "").strip().splitlines()[0:1]
        super().__init__(f"{error}: {first[0] if first else ''}".rstrip(": "))


def expect(condition: Any, message: str) -> None:
    if not condition:
        raise JourneyError(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """Status code of GET url, or None if nothing answered."""
    try:
        with _HTTP.open(urllib.request.Request(url), timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


def url_path(url: str) -> str:
    return urllib.parse.urlsplit(url).path


def log(msg: str = "") -> None:
    sys.stdout.flush()
    print(msg, file=sys.stderr, flush=True)


def indent(text: str, prefix: str = "    | ") -> str:
    return "\n".join(prefix + line for line in text.splitlines()) if text else prefix + "(empty)"


# --------------------------------------------------------------------------
# Child processes (chromedriver, partnerd, static http server)
# --------------------------------------------------------------------------


class Proc:
    """A child process in its own process group, output captured to a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict | None = None, cwd: str | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,  # own process group: stop() also reaps grandchildren (chromium)
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            if not self._log.closed:
                self._log.flush()
            data = self.log_path.read_bytes()
        except OSError as e:
            return f"(cannot read {self.log_path}: {e})"
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    def stop(self) -> None:
        pgid = self.proc.pid
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # Leader is gone; make sure no group member (e.g. a renderer) lingers.
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            break
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def wait_http_ok(proc: Proc, url: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{what} exited with status {proc.proc.returncode} before {url} answered 200")
        last = http_status(url, timeout=2.0)
        if last == 200:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what}: {url} did not answer 200 within {timeout:.0f}s (last status: {last})")


def start_chromedriver(chromedriver: str, out_dir: Path) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc("chromedriver", [chromedriver, f"--port={port}"], out_dir / "chromedriver.log")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"chromedriver exited with status {proc.proc.returncode}:\n{proc.log_tail()}")
        try:
            with _HTTP.open(url + "/status", timeout=2) as resp:
                if json.load(resp).get("value", {}).get("ready"):
                    return proc, url
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"chromedriver did not become ready on {url} within 20s")


def start_partnerd(binary: Path, data_dir: Path, out_dir: Path) -> tuple[Proc, str]:
    port = free_port()
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    env.setdefault("RUST_BACKTRACE", "1")
    argv = [str(binary), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir)]
    proc = Proc("partnerd", argv, out_dir / "server.log", env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(proc, base + "/healthz", 30, "partnerd")
    except Exception:
        proc.stop()
        raise _error_with_log(proc) from None
    return proc, base


def _error_with_log(proc: Proc) -> RuntimeError:
    """Wrap the exception being handled with the process's command line and log tail."""
    exc = sys.exc_info()[1]
    return RuntimeError(f"{exc}\n    command: {' '.join(proc.argv)}\n    log tail:\n{indent(proc.log_tail())}")


def start_static_server(root: Path, out_dir: Path) -> tuple[Proc, str]:
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)]
    proc = Proc("http.server", argv, out_dir / "selftest-http.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(proc, base + "/", 15, "http.server")
    except Exception:
        proc.stop()
        raise _error_with_log(proc) from None
    return proc, base


# --------------------------------------------------------------------------
# Minimal W3C WebDriver client
# --------------------------------------------------------------------------


class Element:
    def __init__(self, browser: "Browser", element_id: str, selector: str):
        self.b = browser
        self.id = element_id
        self.selector = selector

    def _cmd(self, method: str, suffix: str, body: Any = None) -> Any:
        return self.b.cmd(method, f"/element/{self.id}{suffix}", body)

    def click(self) -> "Element":
        self._cmd("POST", "/click", {})
        return self

    def clear(self) -> "Element":
        self._cmd("POST", "/clear", {})
        return self

    def send_keys(self, text: str, clear: bool = True) -> "Element":
        if clear:
            self.clear()
        self._cmd("POST", "/value", {"text": text})
        return self

    @property
    def text(self) -> str:
        return self._cmd("GET", "/text")

    @property
    def selected(self) -> bool:
        return bool(self._cmd("GET", "/selected"))

    @property
    def displayed(self) -> bool:
        return bool(self._cmd("GET", "/displayed"))

    def attr(self, name: str) -> str | None:
        return self._cmd("GET", f"/attribute/{urllib.parse.quote(name)}")

    def prop(self, name: str) -> Any:
        return self._cmd("GET", f"/property/{urllib.parse.quote(name)}")

    def __repr__(self) -> str:
        return f"<Element {self.selector!r}>"


class Browser:
    """One WebDriver session. Helpers take an Element or a CSS selector."""

    def __init__(self, driver_url: str, chromium: str, out_dir: Path, tmp_root: Path | None = None,
                 request_timeout: float = 60.0):
        self.driver_url = driver_url
        self.out_dir = out_dir
        self.request_timeout = request_timeout
        self.session_id: str | None = None
        self.profile_dir = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_root))
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": {"implicit": 0, "pageLoad": 30_000, "script": 10_000},
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": CHROMIUM_ARGS + [f"--user-data-dir={self.profile_dir}"],
                    },
                }
            }
        }
        try:
            value = self._request("POST", "/session", caps)
        except BaseException:
            shutil.rmtree(self.profile_dir, ignore_errors=True)
            raise
        self.session_id = value["sessionId"]
        self.capabilities = value.get("capabilities", {})

    # -- transport ---------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.driver_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json; charset=utf-8")
        try:
            with _HTTP.open(req, timeout=self.request_timeout) as resp:
                payload = json.load(resp)
        except urllib.error.HTTPError as e:
            raw = e.read().decode("utf-8", "replace")
            try:
                value = json.loads(raw).get("value", {})
                raise WebDriverError(value.get("error", f"http {e.code}"), value.get("message", ""), e.code) from None
            except (ValueError, AttributeError):
                raise WebDriverError(f"http {e.code}", raw[:500], e.code) from None
        except (urllib.error.URLError, OSError) as e:
            raise WebDriverError("transport", f"{method} {path}: {e}") from None
        return payload.get("value")

    def cmd(self, method: str, path: str, body: Any = None) -> Any:
        if self.session_id is None:
            raise WebDriverError("invalid session id", "session already deleted")
        if method == "POST" and body is None:
            body = {}
        return self._request(method, f"/session/{self.session_id}{path}", body)

    def quit(self) -> None:
        try:
            if self.session_id is not None:
                self._request("DELETE", f"/session/{self.session_id}")
        finally:
            self.session_id = None
            shutil.rmtree(self.profile_dir, ignore_errors=True)

    # -- navigation & page -------------------------------------------------

    def navigate(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    @property
    def url(self) -> str:
        return self.cmd("GET", "/url")

    @property
    def path(self) -> str:
        return url_path(self.url)

    @property
    def title(self) -> str:
        return self.cmd("GET", "/title")

    def source(self) -> str:
        return self.cmd("GET", "/source")

    def page_text(self) -> str:
        return self.find("body").text

    def execute(self, script: str, *args: Any) -> Any:
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def response_status(self) -> int | None:
        """HTTP status of the current document's navigation (None if the browser can't tell)."""
        status = self.execute(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return n && typeof n.responseStatus === 'number' && n.responseStatus > 0 ? n.responseStatus : null;"
        )
        return int(status) if status is not None else None

    def cookie_names(self) -> list[str]:
        return [c.get("name", "?") for c in self.cmd("GET", "/cookie") or []]

    def screenshot(self, name: str) -> Path:
        png = base64.b64decode(self.cmd("GET", "/screenshot"))
        path = self.out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return path

    # -- elements ----------------------------------------------------------

    def find(self, selector: str) -> Element:
        value = self.cmd("POST", "/element", {"using": "css selector", "value": selector})
        return Element(self, value[ELEMENT_KEY], selector)

    def find_all(self, selector: str) -> list[Element]:
        values = self.cmd("POST", "/elements", {"using": "css selector", "value": selector})
        return [Element(self, v[ELEMENT_KEY], selector) for v in values]

    def exists(self, selector: str) -> bool:
        return bool(self.find_all(selector))

    def _el(self, target: "Element | str") -> Element:
        return target if isinstance(target, Element) else self.find(target)

    def click(self, target: "Element | str") -> Element:
        return self._el(target).click()

    def send_keys(self, target: "Element | str", text: str, clear: bool = True) -> Element:
        return self._el(target).send_keys(text, clear=clear)

    fill = send_keys

    def check(self, target: "Element | str", on: bool = True) -> Element:
        el = self._el(target)
        if el.selected != on:
            el.click()
        return el

    def text(self, target: "Element | str | None" = None) -> str:
        return self.page_text() if target is None else self._el(target).text

    # -- waiting -----------------------------------------------------------

    def wait_until(
        self,
        condition: Callable[[], Any],
        timeout: float = 10.0,
        interval: float = 0.1,
        what: str = "condition",
        context: Callable[[], str] | None = None,
    ) -> Any:
        """Poll condition() until it returns something truthy (which is returned).

        WebDriverErrors (no such element, stale element, ...) count as "not yet".
        On timeout raises JourneyError naming `what`, the last error and context().
        """
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            try:
                result = condition()
                if result:
                    return result
                last_error = None
            except WebDriverError as e:
                if e.error in ("transport", "invalid session id"):
                    raise
                last_error = e
            if time.monotonic() >= deadline:
                msg = f"timed out after {timeout:g}s waiting for {what}"
                if last_error is not None:
                    msg += f" (last error: {last_error})"
                if context is not None:
                    try:
                        msg += f"; {context()}"
                    except Exception as e:  # diagnostics must not mask the real failure
                        msg += f"; (context unavailable: {e})"
                raise JourneyError(msg)
            time.sleep(interval)

    def wait_for(self, selector: str, timeout: float = 10.0, visible: bool = False) -> Element:
        def found() -> Element | None:
            el = self.find(selector)
            return el if (not visible or el.displayed) else None

        return self.wait_until(
            found,
            timeout,
            what=f"{'visible ' if visible else ''}element {selector!r}",
            context=self.where,
        )

    def wait_for_path(self, path: str, timeout: float = 10.0) -> str:
        return self.wait_until(
            lambda: self.path == path and self.url, timeout, what=f"URL path {path!r}", context=self.where
        )

    def click_and_wait_for_load(self, target: "Element | str", timeout: float = 15.0) -> None:
        """Click (e.g. a submit button) and wait until a new document has loaded."""
        el = self._el(target)
        self.execute("window.__journeyOldDocument = true;")
        el.click()
        self.wait_until(
            lambda: self.execute(
                "return window.__journeyOldDocument !== true && document.readyState === 'complete';"
            ),
            timeout,
            what=f"a new page to load after clicking {el.selector!r}",
            context=lambda: self.where() + self._invalid_fields(),
        )

    # -- diagnostics -------------------------------------------------------

    def where(self) -> str:
        try:
            msg = f"at {self.url}"
        except WebDriverError as e:
            return f"(current URL unavailable: {e})"
        errors = self.visible_errors()
        if errors:
            msg += f"; page shows: {errors}"
        return msg

    def visible_errors(self) -> list[str]:
        try:
            return self.execute(
                "return Array.from(document.querySelectorAll("
                "'[role=alert], [id$=\"-error\"], .error, .errors, .flash'))"
                ".filter(e => e.offsetParent !== null || e.getClientRects().length)"
                ".map(e => (e.id ? '#' + e.id + ': ' : '') + e.innerText.trim())"
                ".filter(t => t).slice(0, 10);"
            ) or []
        except WebDriverError:
            return []

    def _invalid_fields(self) -> str:
        try:
            bad = self.execute(
                "return Array.from(document.querySelectorAll('input, select, textarea'))"
                ".filter(e => e.willValidate && !e.checkValidity())"
                ".map(e => (e.name || e.id || e.type) + ': ' + e.validationMessage);"
            )
        except WebDriverError:
            return ""
        return f"; browser-side validation blocked the form: {bad}" if bad else ""


# --------------------------------------------------------------------------
# Journeys (partnerd page contracts)
# --------------------------------------------------------------------------


def h1_texts(b: Browser) -> list[str]:
    return [el.text for el in b.find_all("h1")]


def expect_panel_for(b: Browser, name: str) -> None:
    b.wait_for_path("/panel", timeout=15)
    b.wait_until(
        lambda: any(name in t for t in h1_texts(b)),
        timeout=10,
        what=f"an h1 containing {name!r} on /panel",
        context=lambda: f"h1 texts: {h1_texts(b)}; {b.where()}",
    )


def journey_signup_login_panel(b: Browser, base_url: str) -> None:
    name = "Journey Tester"
    email = f"journey-{int(time.time() * 1000)}@example.test"
    strong_password = "violet-harbour-lantern-93"
    form = 'form[action="/signup"]'

    def fill_signup(password: str) -> None:
        b.wait_for(f"{form} input[name=email]")
        b.fill(f"{form} input[name=name]", name)
        b.fill(f"{form} input[name=email]", email)
        b.fill(f"{form} input[name=password]", password)
        b.fill(f"{form} input[name=company]", "Journey Co")
        b.fill(f"{form} input[name=website]", "https://journey.example")
        b.check(f"{form} input[name=accept_terms]")

    # 1. Sign-up with a weak password: the server re-renders the form (422) with an error.
    b.navigate(base_url + "/signup")
    expect(b.path == "/signup", f"GET /signup ended at {b.url}")
    fill_signup("password12")
    b.click_and_wait_for_load(f"{form} button[type=submit]")
    err = b.wait_for("#password-error", visible=True)
    err_text = err.text.strip()
    expect(err_text, "#password-error is shown but empty")
    expect(b.path == "/signup", f"weak password: expected to stay on /signup, got {b.url}")
    status = b.response_status()
    expect(status in (None, 422), f"weak password: expected HTTP 422 for the re-rendered form, got {status}")
    b.screenshot("signup-error.png")

    # 2. Sign-up with a strong password lands on the panel.
    fill_signup(strong_password)
    b.click_and_wait_for_load(f"{form} button[type=submit]")
    expect_panel_for(b, name)
    b.screenshot("panel.png")

    # 3. Sign out; the panel then requires signing in.
    b.click_and_wait_for_load('form[action="/logout"] button[type=submit]')
    b.navigate(base_url + "/panel")
    b.wait_for_path("/login", timeout=10)

    # 4. Sign in: wrong password first, then the right one.
    login_submit = "form:has(input[name=password]) button[type=submit]"
    b.navigate(base_url + "/login")
    b.wait_for("input[name=email]")
    b.fill("input[name=email]", email)
    b.fill("input[name=password]", strong_password + "-wrong")
    b.click_and_wait_for_load(login_submit)
    b.wait_for("[role=alert]", visible=True)
    expect(b.path == "/login", f"wrong password: expected to stay on /login, got {b.url}")

    b.wait_for("input[name=email]")
    b.fill("input[name=email]", email)
    b.fill("input[name=password]", strong_password)
    b.click_and_wait_for_load(login_submit)
    expect_panel_for(b, name)
    b.screenshot("login-panel.png")


# What the journeys may need besides the browser: the binary and its data directory
# (to run CLI commands against the served database, as an operator would).
CONTEXT: dict[str, str] = {}


def journey_admin_console(b: Browser, base_url: str) -> None:
    """An admin made with `partnerd admin create` signs in to the console, removes the
    partner of the first journey for a violation (R-ACC-3), finds it in the audit log,
    and gets a named field error for an invalid setting."""
    password = "console-journey-passphrase"
    env = dict(os.environ, PARTNERD_ADMIN_PASSWORD=password)
    created = subprocess.run(
        [CONTEXT["bin"], "admin", "create", "--email", "admin@journey.test", "--role", "admin",
         "--data-dir", CONTEXT["data_dir"]],
        env=env, capture_output=True, text=True, timeout=60,
    )
    expect(created.returncode == 0, f"partnerd admin create failed: {created.stderr.strip()}")

    b.navigate(base_url + "/admin/login")
    b.wait_for("input[name=email]")
    b.fill("input[name=email]", "admin@journey.test")
    b.fill("input[name=password]", password)
    b.click_and_wait_for_load("form:has(input[name=password]) button[type=submit]")
    b.wait_for_path("/admin")
    expect("Overview" in b.text("h1"), f"the console's first page is not the overview: {b.text('h1')!r}")

    b.navigate(base_url + "/admin/partners")
    b.click_and_wait_for_load("table a")
    b.wait_for("textarea[name=reason]")
    b.fill("textarea[name=reason]", "Spam in search ads, against section 1 of the Terms")
    b.click_and_wait_for_load('form[action$="/remove"] button[type=submit]')
    b.wait_for(".badge-removed", visible=True)
    b.screenshot("admin-partner-removed.png")

    b.navigate(base_url + "/admin/audit")
    expect("partner.remove" in b.page_text(), "the removal is not in the audit log")
    b.screenshot("admin-audit.png")

    b.navigate(base_url + "/admin/settings")
    b.wait_for("input[name=cookie_days]")
    b.fill("input[name=cookie_days]", "0")
    b.click_and_wait_for_load('form[action="/admin/settings"] button[type=submit]')
    err = b.wait_for("#cookie_days-error", visible=True)
    expect("between" in err.text, f"the cookie_days error does not say why: {err.text!r}")
    b.screenshot("admin-settings-error.png")
    b.fill("input[name=cookie_days]", "90")
    b.click_and_wait_for_load('form[action="/admin/settings"] button[type=submit]')
    b.wait_for("[role=status]", visible=True)
    expect(b.find("input[name=cookie_days]").prop("value") == "90", "the saved cookie_days is not shown")


# A person's desktop browser. Headless Chromium says "HeadlessChrome" in its
# User-Agent, which partnerd rightly counts as a bot (R-AFF-7: clicks from
# bots are counted apart and never credited); the journey clicks as a person would.
PERSON_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"
)


def sign_up_partner(b: Browser, base_url: str, name: str, email: str, password: str) -> None:
    form = 'form[action="/signup"]'
    b.navigate(base_url + "/signup")
    b.wait_for(f"{form} input[name=email]")
    b.fill(f"{form} input[name=name]", name)
    b.fill(f"{form} input[name=email]", email)
    b.fill(f"{form} input[name=password]", password)
    b.check(f"{form} input[name=accept_terms]")
    b.click_and_wait_for_load(f"{form} button[type=submit]")
    expect_panel_for(b, name)


def journey_campaign_click_report(b: Browser, base_url: str) -> None:
    """R-AFF-2, R-REP-1, R-REP-2: a partner builds a campaign link (the live preview
    follows the form), a click on it is recorded before the redirect to the main
    page, and the UTM report shows it at once; staff see it in the program report."""
    stamp = int(time.time() * 1000)
    name = "Campaign Tester"
    sign_up_partner(b, base_url, name, f"campaigns-{stamp}@example.test", "violet-harbour-lantern-93")

    # 1. The builder: the preview is the server's at first, then follows the typing (panel.js).
    b.navigate(base_url + "/panel/campaigns")
    b.wait_for("form#campaign-form input[name=name]")
    expect(b.text("#preview-slug") == "campaign", f"initial preview slug {b.text('#preview-slug')!r}")
    b.fill("#name", "Spring Sale")
    b.click('#trial_days option[value="60"]')
    b.fill("#custom", "kw-chat")
    b.wait_until(
        lambda: b.text("#preview-slug") == "spring-sale-t60",
        what="the preview slug 'spring-sale-t60'",
        context=lambda: f"#preview-slug={b.text('#preview-slug')!r}",
    )
    preview_link = b.text("#preview-link")
    expect(preview_link.endswith("/spring-sale-t60") and "/r/" in preview_link, f"preview link {preview_link!r}")
    landing = b.text("#preview-landing")
    expect("utm_campaign=spring-sale-t60" in landing and "utm_term=kw-chat" in landing,
           f"preview landing page {landing!r}")
    b.screenshot("campaigns-preview.png")

    # 2. Save: back on the page with a flash, the link in the table (copy button shown by JS).
    b.click_and_wait_for_load('form#campaign-form button[type=submit]')
    b.wait_for_path("/panel/campaigns")
    flash = b.wait_for(".alert-success", visible=True)
    expect("spring-sale-t60" in flash.text, f"the flash does not name the link: {flash.text!r}")
    links = [el.prop("value") for el in b.find_all("td.link-cell input")]
    link = next((v for v in links if v and v.endswith("/spring-sale-t60")), None)
    expect(link, f"the saved link is not listed: {links}")
    expect(b.find('button[data-copy]').displayed, "the copy button is not shown with JavaScript")
    b.execute("document.querySelector('#links-title').scrollIntoView({block: 'center'});")
    b.screenshot("campaigns.png")

    # 3. Follow the link as a person would (a page navigation, as from a clicked link).
    #    It answers 302 to the program's main page (https://www.example.com/…,
    #    unreachable here): the click is recorded before the redirect, so only the
    #    redirect's arrival is awaited, not the page's load. (WebDriver's own "navigate"
    #    is not used: on the DNS failure chromedriver retries it, which clicks again.)
    b.cmd("POST", "/goog/cdp/execute",
          {"cmd": "Network.setUserAgentOverride", "params": {"userAgent": PERSON_USER_AGENT}})
    link_path = urllib.parse.urlsplit(link).path
    b.execute("window.location.href = arguments[0];", base_url + link_path)
    b.wait_until(
        lambda: "utm_campaign=spring-sale-t60" in b.url,
        timeout=15,
        what="the redirect to the landing page with utm_campaign=spring-sale-t60",
        context=lambda: f"at {b.url}",
    )

    # 4. The report shows the click at once (R-REP-1), in the row of the campaign.
    b.navigate(base_url + "/panel/report")
    b.wait_for("svg.chart[role=img]")
    cell = 'tr[data-campaign="spring-sale-t60"] td[data-col=clicks]'
    b.wait_for(cell)
    expect(b.text(cell) == "1", f"the report shows {b.text(cell)!r} clicks for spring-sale-t60, not 1")
    row = b.text('tr[data-campaign="spring-sale-t60"]')
    expect("kw-chat" in row, f"the row lacks its utm_term: {row!r}")
    csv_href = b.find('a[href^="/panel/report.csv"]').attr("href")
    expect(csv_href and "from=" in csv_href, f"no CSV export link: {csv_href!r}")
    b.screenshot("report.png")
    b.execute("document.querySelector('.report-table').scrollIntoView({block: 'center'});")
    b.screenshot("report-table.png")

    # 5. Staff see the program-wide report (UTC).
    password = "reports-journey-passphrase"
    email = f"reports-{stamp}@journey.test"
    created = subprocess.run(
        [CONTEXT["bin"], "admin", "create", "--email", email, "--role", "admin",
         "--data-dir", CONTEXT["data_dir"]],
        env=dict(os.environ, PARTNERD_ADMIN_PASSWORD=password), capture_output=True, text=True, timeout=60,
    )
    expect(created.returncode == 0, f"partnerd admin create failed: {created.stderr.strip()}")
    b.click_and_wait_for_load('form[action="/logout"] button[type=submit]')
    b.navigate(base_url + "/admin/login")
    b.wait_for("input[name=email]")
    b.fill("input[name=email]", email)
    b.fill("input[name=password]", password)
    b.click_and_wait_for_load("form:has(input[name=password]) button[type=submit]")
    b.wait_for_path("/admin")
    b.click_and_wait_for_load('.sidebar-nav a[href="/admin/report"]')
    b.wait_for_path("/admin/report")
    expect("Program report" in b.text("h1"), f"the program report's heading is {b.text('h1')!r}")
    b.wait_for(cell)
    expect(int(b.text(cell)) >= 1, f"the program report shows {b.text(cell)!r} clicks for spring-sale-t60")
    b.screenshot("admin-report.png")


VENDOR_PAGE = """<!doctype html>
<html><head><title>Vendor</title>
<script src="{base}/t.js" data-consent="required" async></script></head>
<body><h1>Vendor sign-up</h1>
<form id="signup"><input name="email"><input type="hidden" name="partnerd_ref"></form>
<button id="accept" onclick="window.partnerd.consent()">Accept cookies</button>
</body></html>
"""


def journey_tracking_script(b: Browser, base_url: str) -> None:
    """The vendor's own page, on another origin, loads /t.js: with ?a={partner_id} it
    records a click through partnerd only after the consent call, keeps the token in a
    first-party cookie and fills the sign-up form's hidden field; the vendor's backend
    then credits the partner with that token (R-AFF-3, R-AFF-4)."""
    key = subprocess.run(
        [CONTEXT["bin"], "api-key", "create", "--name", "journey", "--data-dir", CONTEXT["data_dir"]],
        capture_output=True, text=True, timeout=60,
    )
    expect(key.returncode == 0, f"api-key create failed: {key.stderr.strip()}")
    api_key = key.stdout.strip().splitlines()[-1]

    def api(method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            base_url + "/api/v1" + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    partner = api("POST", "/partners", {"email": f"script-{int(time.time() * 1000)}@example.test", "name": "Script Partner"})
    root = Path(CONTEXT["tmp_root"]) / "vendor"
    root.mkdir(exist_ok=True)
    (root / "index.html").write_text(VENDOR_PAGE.replace("{base}", base_url))
    vendor, vendor_url = start_static_server(root, Path(CONTEXT["out_dir"]))
    try:
        b.cmd("POST", "/goog/cdp/execute",
              {"cmd": "Network.setUserAgentOverride", "params": {"userAgent": PERSON_USER_AGENT}})
        b.navigate(f"{vendor_url}/index.html?a={partner['id']}&utm_term=journey-kw")
        b.wait_for("#accept")
        time.sleep(0.5)
        expect(not b.execute("return document.cookie;"), "t.js stored something before the consent call")
        b.click("#accept")
        b.wait_until(lambda: b.find('input[name="partnerd_ref"]').prop("value"), timeout=10,
                     what="t.js to fill the form's partnerd_ref field")
        token = b.find('input[name="partnerd_ref"]').prop("value")
        expect("partnerd_ref=" in b.execute("return document.cookie;"), "no first-party partnerd_ref cookie")
        expect(b.execute("return window.partnerd.referral();") == token, "partnerd.referral() does not return the token")
        b.screenshot("vendor-page.png")
        signup = api("POST", "/signups", {"customer_id": f"cus_script_{int(time.time())}", "referral": token})
        expect(signup.get("partner_id") == partner["id"] and signup.get("reason") == "last_click",
               f"the token from t.js was not credited: {signup}")
        expect(signup.get("utm_term") == "journey-kw", f"the click's utm_term was not kept: {signup}")
    finally:
        vendor.stop()


def journey_paid_referral_to_withdrawal(b: Browser, base_url: str) -> None:
    """R-COM-1, R-COM-4, R-PAY-1..4, R-PAY-3: a partner's referred customer pays (the
    vendor's billing reports it through the API); the commission shows in the panel's
    money page; the partner gives PayPal and tax details and asks for the whole
    available balance; an admin finds the request in the console's queue and approves
    it. The program's hold is set to 0 days by the admin first, as the seed's
    "withdrawable at once" reading allows, so no clock has to move."""
    stamp = int(time.time() * 1000)
    password = "money-journey-passphrase"
    admin_email = f"money-admin-{stamp}@journey.test"
    created = subprocess.run(
        [CONTEXT["bin"], "admin", "create", "--email", admin_email, "--role", "admin",
         "--data-dir", CONTEXT["data_dir"]],
        env=dict(os.environ, PARTNERD_ADMIN_PASSWORD=password), capture_output=True, text=True, timeout=60,
    )
    expect(created.returncode == 0, f"partnerd admin create failed: {created.stderr.strip()}")
    key = subprocess.run(
        [CONTEXT["bin"], "api-key", "create", "--name", f"billing-{stamp}", "--data-dir", CONTEXT["data_dir"]],
        capture_output=True, text=True, timeout=60,
    )
    expect(key.returncode == 0, f"api-key create failed: {key.stderr.strip()}")
    api_key = key.stdout.strip().splitlines()[-1]

    def api(path: str, body: dict) -> dict:
        request = urllib.request.Request(
            base_url + "/api/v1" + path, method="POST", data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def admin_login() -> None:
        b.navigate(base_url + "/admin/login")
        b.wait_for("input[name=email]")
        b.fill("input[name=email]", admin_email)
        b.fill("input[name=password]", password)
        b.click_and_wait_for_load("form:has(input[name=password]) button[type=submit]")
        b.wait_for_path("/admin")

    # 1. The admin sets the hold to 0 days (R-COM-4's setting).
    admin_login()
    b.navigate(base_url + "/admin/settings")
    b.wait_for("input[name=hold_days]")
    b.fill("input[name=hold_days]", "0")
    b.click_and_wait_for_load('form[action="/admin/settings"] button[type=submit]')
    b.wait_for("[role=status]", visible=True)
    b.click_and_wait_for_load('form[action="/logout"] button[type=submit]')

    # 2. A partner signs up; a customer they referred pays $500 a month, twice.
    name = "Money Partner"
    partner_password = "amber-orchard-kettle-58"
    sign_up_partner(b, base_url, name, f"money-{stamp}@example.test", partner_password)
    link = b.find('input[aria-label="Your affiliate link"]').prop("value")
    partner_id = urllib.parse.urlsplit(link).path.rstrip("/").split("/")[-1]
    customer = f"cus_money_{stamp}"
    signup = api("/signups", {"customer_id": customer, "referral": partner_id})
    expect(signup.get("partner_id") == partner_id, f"the customer was not credited: {signup}")
    for month in (1, 2):
        booked = api("/payments", {"id": f"in_money_{stamp}_{month}", "customer_id": customer,
                                   "amount": 50000, "currency": "USD"})
        expect(booked.get("commission") == 10000, f"20 % of $500 is not $100: {booked}")

    # 3. The panel shows $200.00 available (R-COM-1, hold 0) and the two commissions.
    b.navigate(base_url + "/panel/money")
    available = b.wait_for('[data-currency="USD"] [data-balance="available"]')
    expect("200.00" in available.text, f"the money page shows {available.text!r} available, not $200.00")
    expect(f"in_money_{stamp}_2" in b.page_text(), "the money page does not list the commissions")
    b.screenshot("panel-money.png")

    # 4. Payout details (R-PAY-2, R-PAY-4): a bad country is refused with a named error.
    b.navigate(base_url + "/panel/payouts")
    b.wait_for("input[name=paypal_email]")
    b.fill("input[name=paypal_email]", f"money-{stamp}@paypal.example.test")
    b.fill("input[name=legal_name]", "Money Partner Ltd")
    b.fill("input[name=country]", "ZZ")  # not an ISO 3166-1 code
    b.fill("input[name=tax_id]", "DE123456789")
    b.click_and_wait_for_load('form[action="/panel/payouts/profile"] button[type=submit]')
    err = b.wait_for("#country-error", visible=True)
    expect(err.text.strip(), "the country error says nothing")
    b.fill("input[name=country]", "DE")
    b.click_and_wait_for_load('form[action="/panel/payouts/profile"] button[type=submit]')
    b.wait_for('form[action="/panel/payouts/withdraw"] button[type=submit]', visible=True)
    b.screenshot("panel-payouts.png")

    # 5. The partner asks for the whole available balance (R-PAY-1).
    b.click_and_wait_for_load('form[action="/panel/payouts/withdraw"] button[type=submit]')
    b.wait_for_path("/panel/payouts")
    expect("requested" in b.page_text().lower(), "the withdrawal is not listed as requested")
    b.navigate(base_url + "/panel/money")
    in_flight = b.wait_for('[data-currency="USD"] [data-balance="in_flight"]')
    expect("200.00" in in_flight.text, f"the money page shows {in_flight.text!r} in flight, not $200.00")
    b.click_and_wait_for_load('form[action="/logout"] button[type=submit]')

    # 6. The admin approves it from the queue (R-PAY-3); without PayPal configured it
    #    waits there for the manual payout.
    admin_login()
    b.click_and_wait_for_load('.sidebar-nav a[href="/admin/withdrawals"]')
    b.wait_for_path("/admin/withdrawals")
    row = b.wait_for("table tbody tr")
    expect(name in row.text and "200.00" in row.text, f"the queue's row is {row.text!r}")
    b.screenshot("admin-withdrawals.png")
    b.click_and_wait_for_load("table tbody tr a.btn")
    b.click_and_wait_for_load('form[action$="/approve"] button[type=submit]')
    b.wait_until(lambda: "approved" in b.page_text().lower(), what="the withdrawal to show as approved",
                 context=lambda: b.page_text()[:400])
    b.screenshot("admin-withdrawal-approved.png")


JOURNEYS: list[Callable[[Browser, str], None]] = [
    journey_signup_login_panel,
    journey_admin_console,  # needs the partner the first journey signs up
    journey_campaign_click_report,
    journey_tracking_script,
    journey_paid_referral_to_withdrawal,
]


# --------------------------------------------------------------------------
# Self-test journeys (harness only: chromedriver + chromium + a static server)
# --------------------------------------------------------------------------

SELFTEST_INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><title>self-test form</title></head>
<body>
  <h1>Self-test form</h1>
  <form action="/result.html" method="get">
    <label>Name <input name="name" value="prefilled"></label>
    <label>Email <input type="email" name="email" required></label>
    <label>Password <input type="password" name="password"></label>
    <label><input type="checkbox" name="accept_terms" value="yes"> I accept</label>
    <button type="submit">Send</button>
  </form>
</body></html>
"""

SELFTEST_RESULT = """<!doctype html>
<html><head><meta charset="utf-8"><title>self-test result</title></head>
<body>
  <h1 id="greeting"></h1>
  <p role="alert" id="terms"></p>
  <script>
    const q = new URLSearchParams(location.search);
    document.getElementById('greeting').textContent = 'Welcome, ' + q.get('name');
    document.getElementById('terms').textContent = 'terms=' + q.get('accept_terms') + ' email=' + q.get('email');
  </script>
</body></html>
"""

SELFTEST_DATA_PAGE = (
    "<!doctype html><title>data</title><h1>data url</h1>"
    "<input id=q name=q value=old>"
    "<button id=go onclick=\"document.getElementById('out').textContent='got '+document.getElementById('q').value\">go</button>"
    "<p id=out></p>"
)


def selftest_data_url(b: Browser, base_url: str) -> None:
    b.navigate("data:text/html;charset=utf-8," + urllib.parse.quote(SELFTEST_DATA_PAGE))
    expect(b.find("h1").text == "data url", f"unexpected h1 {b.find('h1').text!r}")
    b.fill("#q", "hello browser")  # clears "old" first
    b.click("#go")
    out = b.wait_until(lambda: b.text("#out") == "got hello browser" and b.text("#out"), what="#out text",
                       context=lambda: f"#out={b.text('#out')!r}")
    expect("got hello browser" in b.page_text(), f"page text lacks {out!r}")
    b.screenshot("selftest-data.png")


def selftest_http_form(b: Browser, base_url: str) -> None:
    b.navigate(base_url + "/index.html")
    expect(b.response_status() == 200, f"index status {b.response_status()}")
    b.fill("input[name=name]", "Journey Tester")
    b.fill("input[name=email]", "self-test@example.test")
    b.fill("input[name=password]", "violet-harbour-lantern-93")
    b.check("input[name=accept_terms]")
    b.check("input[name=accept_terms]")  # idempotent: must stay checked
    expect(b.find("input[name=accept_terms]").selected, "checkbox not checked")
    b.click_and_wait_for_load("form[action='/result.html'] button[type=submit]")
    b.wait_for_path("/result.html")
    expect_h1 = "Welcome, Journey Tester"
    b.wait_until(lambda: expect_h1 in h1_texts(b), what=f"h1 {expect_h1!r}", context=lambda: str(h1_texts(b)))
    alert = b.wait_for("[role=alert]", visible=True)
    expect(alert.text == "terms=yes email=self-test@example.test", f"alert text {alert.text!r}")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(b.url).query)
    expect(query.get("password") == ["violet-harbour-lantern-93"], f"query {query}")
    shot = b.screenshot("selftest-form.png")
    expect(shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "screenshot is not a PNG")

    # Status detection (used for the 422 check) and a blocked submit (client-side validation).
    b.navigate(base_url + "/missing-page")
    expect(b.response_status() == 404, f"missing page status {b.response_status()}")
    b.navigate(base_url + "/index.html")
    b.fill("input[name=email]", "")  # required -> the browser refuses to submit
    try:
        b.click_and_wait_for_load("button[type=submit]", timeout=1.5)
    except JourneyError as e:
        expect("validation blocked" in str(e), f"blocked submit not diagnosed: {e}")
    else:
        raise JourneyError("a form with an empty required field was submitted")


SELFTEST_JOURNEYS: list[Callable[[Browser, str], None]] = [
    selftest_data_url,
    selftest_http_form,
]


# --------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------


def journey_name(fn: Callable) -> str:
    return fn.__name__.removeprefix("journey_")


def print_diagnostics(b: Browser | None, server: Proc | None, name: str, exc: BaseException) -> None:
    if not isinstance(exc, (JourneyError, WebDriverError)):
        log(indent("".join(traceback.format_exception(exc)).rstrip()))
    if b is not None and b.session_id is not None:
        try:
            log(f"    current URL: {b.url}")
            log(f"    cookies: {b.cookie_names()}")
            log("    page source (head):")
            log(indent(b.source()[:2000]))
            log(f"    failure screenshot: {b.screenshot(f'FAIL-{name}.png')}")
        except Exception as e:
            log(f"    (browser diagnostics unavailable: {e})")
    if server is not None:
        log(f"    {server.name} log tail ({server.log_path}):")
        log(indent(server.log_tail()))


def run_journeys(journeys, driver_url: str, chromium: str, base_url: str, server: Proc, out_dir: Path,
                 tmp_root: Path) -> tuple[int, int]:
    passed = failed = 0
    for fn in journeys:
        name = journey_name(fn)
        b: Browser | None = None
        try:
            b = Browser(driver_url, chromium, out_dir, tmp_root)
            fn(b, base_url)
        except Exception as exc:
            failed += 1
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"FAIL {name}: {reason}", flush=True)
            rest = str(exc).strip().splitlines()[1:]
            if rest:
                log("\n".join(rest))
            print_diagnostics(b, server, name, exc)
        else:
            passed += 1
            print(f"ok  {name}", flush=True)
        finally:
            if b is not None:
                try:
                    b.quit()
                except Exception as e:
                    log(f"    (could not delete session: {e})")
    return passed, failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", type=Path, default=None,
                    help="partnerd binary (default: target/release/partnerd in the repository)")
    ap.add_argument("--out", type=Path, default=None,
                    help="screenshots and logs (default: target/browser in the repository)")
    ap.add_argument("--only", action="append", default=[], metavar="SUBSTR",
                    help="run only journeys whose name contains SUBSTR (repeatable)")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    ap.add_argument("--self-test", action="store_true",
                    help="check the harness (chromedriver, chromium, helpers) against a static page; no partnerd")
    args = ap.parse_args(argv)

    binary = (args.bin or REPO_ROOT / "target/release/partnerd").resolve()
    out_dir = (args.out or REPO_ROOT / "target/browser").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    journeys = SELFTEST_JOURNEYS if args.self_test else JOURNEYS
    if args.only:
        journeys = [j for j in journeys if any(s in journey_name(j) for s in args.only)]
    if not journeys:
        print("FAIL setup: no journey selected", flush=True)
        print("0 passed, 1 failed", flush=True)
        return 1

    procs: list[Proc] = []
    # Everything temporary (server data dir, browser profiles, self-test pages) lives here and
    # is removed at the end, after the child processes are gone.
    tmp_root = Path(tempfile.mkdtemp(prefix="partnerd-journey-"))
    server: Proc | None = None
    try:
        for tool in (args.chromium, args.chromedriver):
            if not os.access(tool, os.X_OK):
                raise RuntimeError(f"{tool} not found; run .ci/install-browser.sh")
        if args.self_test:
            root = tmp_root / "www"
            root.mkdir()
            (root / "index.html").write_text(SELFTEST_INDEX)
            (root / "result.html").write_text(SELFTEST_RESULT)
            server, base_url = start_static_server(root, out_dir)
        else:
            if not os.access(binary, os.X_OK):
                raise RuntimeError(f"{binary} not found or not executable; run `cargo build --release` or pass --bin")
            data_dir = tmp_root / "data"
            data_dir.mkdir()
            CONTEXT.update(bin=str(binary), data_dir=str(data_dir), tmp_root=str(tmp_root), out_dir=str(out_dir))
            server, base_url = start_partnerd(binary, data_dir, out_dir)
        procs.append(server)
        driver, driver_url = start_chromedriver(args.chromedriver, out_dir)
        procs.append(driver)
        log(f"server {base_url} (log {server.log_path}); chromedriver {driver_url}; output {out_dir}")
        passed, failed = run_journeys(journeys, driver_url, args.chromium, base_url, server, out_dir, tmp_root)
    except Exception as exc:
        msg = str(exc).strip()
        print(f"FAIL setup: {msg.splitlines()[0] if msg else type(exc).__name__}", flush=True)
        if len(msg.splitlines()) > 1:
            log("\n".join(msg.splitlines()[1:]))
        if not isinstance(exc, RuntimeError):
            log(indent("".join(traceback.format_exception(exc)).rstrip()))
        for p in procs:
            log(f"    {p.name} log tail ({p.log_path}):")
            log(indent(p.log_tail()))
        passed, failed = 0, len(journeys)
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp_root, ignore_errors=True)

    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


def _terminate(signum, frame):  # CI cancellation: unwind so finally-blocks stop our children
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
