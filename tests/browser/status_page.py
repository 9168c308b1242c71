#!/usr/bin/python3
"""The admin port's status page in a real browser (headless Chromium through Selenium).

Starts two edge-app servers and an edge in front of them with an admin port, then, as a person
would: signs in with the token, sees both servers up, sees one go down when its process is
stopped and come back when it is started again, drains a server and enables it with the
page's buttons, and purges a cached URL with the page's form (the next fetch through edge is a
MISS), signs out, and, signed in again, sees the error banner once edge stops. Screenshots of
the page (desktop and phone width) are written to the output directory.

Usage: status_page.py EDGE_BIN EDGE_APP_BIN OUTPUT_DIR
Everything listens on 127.0.0.1, on ports the kernel chose; every process started here is
stopped here, by its pid, also when the test fails.
"""

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common import utils as selenium_utils
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

TOKEN = "browser-test-token-0123456789abcdef"
# Generous: the suite also runs under the sanitizers, on a busy machine.
DEADLINE = 60
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CACHED = "/cache/page?cc=max-age%3D600"


class Process:
    """A child whose output goes to a file; stopped by its pid."""

    def __init__(self, name, args, directory):
        self.name = name
        self.log_path = os.path.join(directory, name + ".log")
        self.log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, pattern, what):
        """The first match of `pattern` in the output, waiting for it."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output())
            if match:
                return match
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("%s never said %r; its output:\n%s" % (what, pattern, self.output()))

    def stop(self, sig=signal.SIGTERM):
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.log.close()
        return self.popen.returncode


def start_app(app_bin, name, port, directory):
    app = Process(name, [app_bin, "--port", str(port), "--name", name], directory)
    match = app.wait_for(r"edge-app %s listening on [^\s]*:(\d+)" % re.escape(name), "edge-app " + name)
    return app, int(match.group(1))


def fetch(port, target):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", target, headers={"Host": "books.test"})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("X-Cache", "")
    finally:
        connection.close()


def wait(driver, condition, what):
    """Waits for condition(driver) to be true; the page redraws itself, so elements may go stale."""
    try:
        return WebDriverWait(driver, DEADLINE, poll_frequency=0.1,
                             ignored_exceptions=(StaleElementReferenceException,)).until(condition)
    except Exception:
        banner = ""
        try:
            banner = driver.find_element(By.ID, "error-banner").text
        except WebDriverException:
            pass
        page = ""
        try:
            page = "%s: %s" % (driver.current_url, driver.find_element(By.TAG_NAME, "body").text[:2000])
        except WebDriverException:
            pass
        raise AssertionError("waited in vain for: %s (error banner: %r; page %s)" % (what, banner, page))


def server_state(address):
    def state(driver):
        cells = driver.find_elements(By.CSS_SELECTOR, 'tr[data-server="%s"] td.state' % address)
        return cells[0].text if cells else None
    return state


def state_is(address, expected):
    return lambda driver: server_state(address)(driver) == expected


def click_action(driver, address, action):
    def press(d):
        buttons = d.find_elements(By.CSS_SELECTOR, 'tr[data-server="%s"] button[data-action="%s"]' % (address, action))
        if not buttons:
            return False
        buttons[0].click()
        return True
    wait(driver, press, "the %s button of %s" % (action, address))


class LoopbackService(Service):
    """chromedriver, reached at 127.0.0.1 rather than "localhost": a machine whose /etc/hosts does
    not name localhost (a bare debootstrap root, a container) runs the test all the same."""

    @property
    def service_url(self):
        return "http://127.0.0.1:%d" % self.port

    def is_connectable(self):
        return selenium_utils.is_connectable(self.port, "127.0.0.1")


def browser():
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,2000",
                 "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        options.add_argument(flag)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")
    return webdriver.Chrome(service=LoopbackService(CHROMEDRIVER), options=options)


def run(edge_bin, app_bin, output_dir, work):
    processes = []
    driver = None
    try:
        a, a_port = start_app(app_bin, "a", 0, work)
        processes.append(a)
        b, b_port = start_app(app_bin, "b", 0, work)
        processes.append(b)
        token_path = os.path.join(work, "admin.token")
        with open(token_path, "w") as f:
            f.write(TOKEN + "\n")
        config_path = os.path.join(work, "edge.yaml")
        with open(config_path, "w") as f:
            f.write("""workers: 2
listen: [{address: "127.0.0.1:0"}]
admin:
  address: "127.0.0.1:0"
  token_file: "%s"
backends:
  shop:
    balance: round_robin
    servers: ["127.0.0.1:%d", "127.0.0.1:%d"]
    health: {path: /health, interval: 200ms, timeout: 1s, rise: 1, fall: 1}
hosts:
  - match: ["*"]
    backend: shop
""" % (token_path, a_port, b_port))
        edge = Process("edge", [edge_bin, "--config", config_path], work)
        processes.append(edge)
        edge.wait_for(r"edge: serving", "edge")
        edge_port = int(re.search(r"edge: listening on [^\s]*:(\d+)", edge.output()).group(1))
        admin_port = int(re.search(r"edge: admin listening on [^\s]*:(\d+)", edge.output()).group(1))
        a_address = "127.0.0.1:%d" % a_port
        b_address = "127.0.0.1:%d" % b_port

        driver = browser()
        base = "http://127.0.0.1:%d" % admin_port

        # Signing in.
        driver.get(base + "/")
        wait(driver, lambda d: d.find_elements(By.ID, "token"), "the sign-in form")
        driver.find_element(By.ID, "token").send_keys("wrong-token")
        driver.find_element(By.ID, "sign-in").click()
        wait(driver, lambda d: "Wrong token." in d.find_element(By.ID, "message").text, "the wrong token refused")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "sign-in").click()
        wait(driver, lambda d: d.find_elements(By.ID, "backends-body"), "the status page")
        cookie = driver.get_cookie("edge_admin_session")
        assert cookie and cookie.get("httpOnly") and cookie.get("sameSite") == "Strict", cookie

        # Both servers up, then one down while its process is stopped, and back.
        wait(driver, state_is(a_address, "up"), a_address + " up")
        wait(driver, state_is(b_address, "up"), b_address + " up")
        assert a.stop() == 0, a.output()
        processes.remove(a)
        wait(driver, state_is(a_address, "down"), a_address + " down once stopped")
        a, _ = start_app(app_bin, "a", a_port, work)
        processes.append(a)
        wait(driver, state_is(a_address, "up"), a_address + " up again once started")

        # Drain and enable with the buttons.
        click_action(driver, b_address, "drain")
        wait(driver, state_is(b_address, "draining"), b_address + " draining")
        click_action(driver, b_address, "enable")
        wait(driver, state_is(b_address, "up"), b_address + " up once enabled")

        # A cached URL purged with the form: the next fetch is a MISS.
        fetch(edge_port, CACHED)
        status, cache = fetch(edge_port, CACHED)
        assert (status, cache) == (200, "HIT"), (status, cache)
        # A URL with markup in it, for the top URLs: it must show as text.
        hostile = "/echo?<script>document.title='owned'</script>"
        fetch(edge_port, hostile)
        driver.find_element(By.ID, "purge-value").send_keys("http://books.test" + CACHED)
        driver.find_element(By.ID, "purge-button").click()
        wait(driver, lambda d: d.find_element(By.ID, "purge-result").text.startswith("purged 1 object"),
             "the purge's answer")
        status, cache = fetch(edge_port, CACHED)
        assert (status, cache) == (200, "MISS"), (status, cache)
        wait(driver, lambda d: "hard purge of URL books.test/cache/page" in d.find_element(By.ID, "events-body").text,
             "the purge among the recent events")
        wait(driver, lambda d: "<script>document.title='owned'</script>" in d.find_element(By.ID, "top-body").text,
             "the hostile URL, as text, in the top URLs")
        assert driver.title == "edge status", driver.title
        assert not driver.find_element(By.ID, "error-banner").is_displayed()

        os.makedirs(output_dir, exist_ok=True)
        screenshot = os.path.join(output_dir, "status-page.png")
        # The whole page: as tall as its content.
        height = driver.execute_script(
            "return Math.ceil(document.querySelector('main').getBoundingClientRect().bottom + window.scrollY)")
        chrome = driver.execute_script("return window.outerHeight - window.innerHeight")
        driver.set_window_size(1280, min(max(height + chrome + 12, 600), 4000))
        wait(driver, lambda d: d.find_element(By.ID, "last-updated").text != "never", "a refresh")
        driver.save_screenshot(screenshot)
        print("screenshot: " + screenshot)
        # At phone width the page fits: wide tables scroll inside their sections.
        driver.set_window_size(390, 2400)
        wait(driver, lambda d: d.execute_script(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"),
            "the page to fit a phone's width")
        phone = os.path.join(output_dir, "status-page-phone.png")
        driver.save_screenshot(phone)
        print("screenshot: " + phone)

        # Signing out ends the session: the page goes back to the form.
        driver.find_element(By.ID, "sign-out").click()
        wait(driver, lambda d: d.find_elements(By.ID, "token"), "the sign-in form after signing out")
        assert driver.get_cookie("edge_admin_session") is None

        # Signed in again, the page says so when edge stops answering.
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "sign-in").click()
        wait(driver, state_is(a_address, "up"), "the status page again")
        assert edge.stop() == 0, edge.output()
        processes.remove(edge)
        wait(driver, lambda d: d.find_element(By.ID, "error-banner").is_displayed() and
             "Could not refresh" in d.find_element(By.ID, "error-banner").text, "the error banner once edge stopped")
    finally:
        if driver is not None:
            try:
                driver.quit()
            except WebDriverException:
                pass
        failures = []
        for process in reversed(processes):
            code = process.stop()
            if code != 0:
                failures.append("%s exited with %s:\n%s" % (process.name, code, process.output()))
        if failures and sys.exc_info()[0] is None:
            raise AssertionError("\n".join(failures))


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    edge_bin, app_bin, output_dir = sys.argv[1:]
    try:
        socket.getaddrinfo("localhost", None)
    except OSError:
        # chromedriver reaches the browser it starts by that name, whatever the test asks.
        print("FAILED: this machine cannot resolve localhost (no localhost line in /etc/hosts)")
        return 1
    with tempfile.TemporaryDirectory(prefix="edge-status-page-") as work:
        try:
            run(edge_bin, app_bin, output_dir, work)
        except Exception as error:
            print("FAILED: %s" % error)
            return 1
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
