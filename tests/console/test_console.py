"""The web console in a real browser: Debian's Chromium, driven through
WebDriver (chromedriver), against a running FaDO. Run by
tests/orchestrator/console.rs, which starts FaDO and the storage and passes
them in the environment:

  FADO_URL          the orchestrator's base URL
  FADO_TOKEN        its admin token
  FADO_S3           JSON list of S3 servers: endpoint, region, access_key, secret_key
  FADO_SCREENSHOTS  a directory for the README's screenshots (optional)

Every step goes through the page as a person would: fields are found by
their label, so a field without one fails the test.
"""

import json
import os
import pathlib
import tempfile
import time

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

URL = os.environ.get("FADO_URL", "http://127.0.0.1:3000")
TOKEN = os.environ.get("FADO_TOKEN", "")
WAIT = 30


@pytest.fixture
def downloads():
    with tempfile.TemporaryDirectory() as d:
        yield pathlib.Path(d)


@pytest.fixture
def browser(downloads):
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("FADO_CHROMIUM", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        opts.add_argument(a)
    opts.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(
        options=opts, service=Service(os.environ.get("FADO_CHROMEDRIVER", "/usr/bin/chromedriver"))
    )
    driver.implicitly_wait(0)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver
    logs = driver.get_log("browser")
    driver.quit()
    errors = [l for l in logs if l["level"] == "SEVERE" and "favicon" not in l["message"]]
    # A 401 or 4xx the test provoked is logged by Chromium as a failed load;
    # script errors are not allowed.
    assert not [l for l in errors if "Uncaught" in l["message"]], errors


def wait(driver, what, timeout=WAIT):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: what(d))
    except TimeoutException:
        page = driver.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"timed out on {driver.current_url}; the page shows:\n{page}") from None


def heading(driver, text):
    def seen(d):
        try:
            return d.find_element(By.TAG_NAME, "h1").text == text
        except StaleElementReferenceException:
            return False

    wait(driver, seen)
    rendered(driver)


def rendered(driver):
    """No value rendered as JavaScript's placeholders for a missing one."""
    text = driver.find_element(By.ID, "main").text
    assert "[object " not in text, text
    for word in ("null", "undefined", "NaN"):
        assert word not in text.split(), f"{word!r} shown on the page:\n{text}"


def text_shown(driver, text, timeout=WAIT):
    wait(driver, lambda d: text in d.find_element(By.ID, "main").text, timeout)


def field(driver, label, scope=None):
    """The control the <label> reading `label` (before any hint) names,
    found through the label's `for`."""
    root = scope or driver
    lab = root.find_element(By.XPATH, f".//label[normalize-space(text()[1])={json.dumps(label)}]")
    return driver.find_element(By.ID, lab.get_attribute("for"))


def fill(driver, values, scope=None):
    for label, value in values.items():
        el = field(driver, label, scope)
        if el.tag_name == "select":
            Select(el).select_by_value(value)
        elif el.get_attribute("type") == "checkbox":
            if el.is_selected() != value:
                el.click()
        else:
            el.clear()
            el.send_keys(value)


def submit(driver, button):
    driver.find_element(By.XPATH, f"//button[normalize-space(.)={json.dumps(button)}]").click()


def go(driver, section):
    driver.find_element(By.XPATH, f"//nav//a[normalize-space(.)={json.dumps(section)}]").click()


def sign_in(driver):
    driver.get(f"{URL}/console/")
    fill(driver, {"Admin token": TOKEN})
    submit(driver, "Sign in")
    heading(driver, "Dashboard")


def shoot(driver, name):
    d = os.environ.get("FADO_SCREENSHOTS")
    if d:
        pathlib.Path(d).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(pathlib.Path(d) / name))


def test_sign_in_needs_the_admin_token(browser):
    browser.get(f"{URL}/console/")
    heading(browser, "Sign in")
    fill(browser, {"Admin token": "not-the-token-at-all"})
    submit(browser, "Sign in")
    text_shown(browser, "That is not the admin token")
    assert field(browser, "Admin token") == browser.switch_to.active_element
    fill(browser, {"Admin token": TOKEN})
    submit(browser, "Sign in")
    heading(browser, "Dashboard")
    # Signing out forgets the token: a reload asks for it again.
    submit(browser, "Sign out")
    heading(browser, "Sign in")
    browser.refresh()
    heading(browser, "Sign in")


def test_a_platform_is_built_and_run_from_the_browser(browser, downloads):
    s3 = json.loads(os.environ["FADO_S3"])
    sign_in(browser)

    # A bad input: the API's own message, next to the field it names.
    go(browser, "Clusters")
    heading(browser, "Clusters")
    fill(browser, {"Name": "Not A Name", "Zones": "germany"})
    submit(browser, "Create cluster")
    name = field(browser, "Name")
    wait(browser, lambda d: name.get_attribute("aria-invalid") == "true")
    error = browser.find_element(By.ID, name.get_attribute("aria-describedby"))
    assert "not a valid name" in error.text, error.text

    for n in (1, 2):
        go(browser, "Clusters")
        heading(browser, "Clusters")
        fill(browser, {"Name": f"c{n}", "Zones": "germany"})
        submit(browser, "Create cluster")
        heading(browser, f"Cluster c{n}")

        go(browser, "Storage")
        heading(browser, "Storage deployments")
        fill(
            browser,
            {
                "Name": f"s{n}",
                "Cluster": f"c{n}",
                "Endpoint": s3[n - 1]["endpoint"],
                "Region": s3[n - 1]["region"],
                "Access key": s3[n - 1]["access_key"],
                "Secret key": s3[n - 1]["secret_key"],
            },
        )
        submit(browser, "Create storage deployment")
        heading(browser, f"Storage deployment s{n}")
        text_shown(browser, "healthy")

        go(browser, "FaaS")
        heading(browser, "FaaS deployments")
        fill(browser, {"Name": f"f{n}", "Cluster": f"c{n}", "Platform": "spin", "Base URL": f"http://10.0.0.{n}"})
        submit(browser, "Create FaaS deployment")
        heading(browser, f"FaaS deployment f{n}")

    # A bucket with a policy: mastered on s1, one replica, in germany.
    go(browser, "Buckets")
    heading(browser, "Buckets")
    fill(browser, {"Name": "photos", "Master storage": "s1", "Allowed zones": "germany", "Replicas besides the master": "1"})
    submit(browser, "Create bucket")
    heading(browser, "Bucket photos")

    # Its replica becomes ready (the page is reloaded as a person would).
    deadline = time.time() + 90
    while "ready" not in browser.find_element(By.ID, "replicas").text:
        assert time.time() < deadline, browser.find_element(By.ID, "replicas").text
        time.sleep(1)
        browser.refresh()
        heading(browser, "Bucket photos")

    # Upload, then download, an object.
    payload = os.urandom(300_000)
    src = downloads.parent / f"upload-{os.getpid()}.bin"
    src.write_bytes(payload)
    try:
        browser.find_element(By.ID, "upload-file").send_keys(str(src))
        fill(browser, {"Key": "holiday/beach.bin"})
        submit(browser, "Upload")
        text_shown(browser, "holiday/beach.bin")
    finally:
        src.unlink()
    rendered(browser)
    shoot(browser, "console-bucket.png")
    row = browser.find_element(By.XPATH, "//tr[td[normalize-space(.)='holiday/beach.bin']]")
    row.find_element(By.XPATH, ".//button[normalize-space(.)='Download']").click()
    target = downloads / "beach.bin"
    wait(browser, lambda d: target.exists() and target.stat().st_size == len(payload))
    assert target.read_bytes() == payload

    # A route override, set and cleared.
    fill(browser, {"FaaS deployments": "f2"})
    submit(browser, "Set route override")
    text_shown(browser, "Invocations go to f2")
    submit(browser, "Clear route override")
    text_shown(browser, "Routed by placement")

    # A dead job (seeded by the test) is retried.
    go(browser, "Jobs")
    heading(browser, "Jobs")
    Select(field(browser, "State")).select_by_value("dead")
    text_shown(browser, "seeded for the console test")
    submit(browser, "Retry")
    wait(browser, lambda d: "queued again" in d.find_element(By.ID, "toast").text)

    # The dashboard counts what was built.
    go(browser, "Dashboard")
    heading(browser, "Dashboard")
    text_shown(browser, "storage deployments")
    cards = browser.find_element(By.CLASS_NAME, "cards").text
    assert "2\nclusters" in cards, cards
    rendered(browser)
    shoot(browser, "console-dashboard.png")

    # The map shows zones, clusters and their deployments.
    go(browser, "Map")
    heading(browser, "Map")
    text_shown(browser, "Zone germany")
    text_shown(browser, "s2")


def test_a_catalog_of_10000_buckets_pages_through_the_api(browser):
    sign_in(browser)
    start = time.time()
    go(browser, "Buckets")
    heading(browser, "Buckets")
    rows = lambda d: len(d.find_elements(By.CSS_SELECTOR, "main table tbody tr"))
    wait(browser, lambda d: rows(d) == 100)
    first = time.time() - start
    submit(browser, "Load more")
    wait(browser, lambda d: rows(d) == 200)
    print(f"\nconsole: first page of 10,000 buckets in {first:.2f} s")
    go(browser, "Dashboard")
    heading(browser, "Dashboard")
    text_shown(browser, "10000\nbuckets")


def test_the_demo_shows_its_testbed(browser):
    """Run by demo.rs against `fado demo`: the thesis's three clusters
    and its `images` bucket, as a newcomer opening the printed URL sees
    them."""
    sign_in(browser)
    go(browser, "Map")
    heading(browser, "Map")
    for cluster in ("hpc-cluster", "cloud-cluster-1", "cloud-cluster-2"):
        text_shown(browser, cluster)
    text_shown(browser, "Zone high-performance")
    go(browser, "Buckets")
    heading(browser, "Buckets")
    text_shown(browser, "images")
    browser.find_element(By.LINK_TEXT, "images").click()
    heading(browser, "Bucket images")
    text_shown(browser, "sample.png")


# WCAG 2 contrast of each text's colour against the first opaque background
# behind it; large text (24px, or 18.66px bold) needs 3:1, other text 4.5:1.
CONTRAST = """
const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
  const p = m[1].split(',').map(Number); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
const lum = ({r, g, b}) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
const background = (el) => { for (let e = el; e; e = e.parentElement) {
  const c = parse(getComputedStyle(e).backgroundColor); if (c && c.a >= 0.99) return c; } return {r: 255, g: 255, b: 255}; };
const out = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const t = walker.currentNode; const el = t.parentElement;
  if (!t.textContent.trim() || !el || !el.getClientRects().length) continue;
  const s = getComputedStyle(el); if (s.visibility === 'hidden' || s.display === 'none') continue;
  const fg = parse(s.color), bg = background(el);
  const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
  const ratio = (hi + 0.05) / (lo + 0.05);
  const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
  const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
  if (ratio < need) out.push([t.textContent.trim().slice(0, 40), ratio.toFixed(2), need]);
}
return out;
"""


def test_text_contrast_and_keyboard_use(browser):
    """Signed in and moved around with the keyboard alone; every text on
    the pages visited meets WCAG's contrast minimum."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{URL}/console/")
    heading(browser, "Sign in")
    low = browser.execute_script(CONTRAST)
    assert not low, f"text below its contrast minimum on the sign-in page: {low}"
    # The token field has the focus; Enter submits.
    browser.switch_to.active_element.send_keys(TOKEN, Keys.ENTER)
    heading(browser, "Dashboard")
    text_shown(browser, "clusters")
    # After a page change the focus is on the page's content; Shift+Tab
    # walks back into the navigation, and Enter follows a link.
    keys = ActionChains(browser)
    visited = []
    for _ in range(30):
        el = browser.switch_to.active_element
        visited.append(f"{el.tag_name}:{el.text[:20]}")
        if el.tag_name == "a" and el.text == "Buckets":
            break
        keys.key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
    else:
        raise AssertionError(f"Shift+Tab never reached the Buckets link: {visited}")
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    heading(browser, "Buckets")
    for section, title, shown in (
        ("Dashboard", "Dashboard", "clusters"),
        ("Buckets", "Buckets", "New bucket"),
        ("Jobs", "Jobs", "State"),
        ("Map", "Map", "Map"),
        ("Settings", "Settings", "Save settings"),
    ):
        go(browser, section)
        heading(browser, title)
        text_shown(browser, shown)
        low = browser.execute_script(CONTRAST)
        assert not low, f"text below its contrast minimum on {section}: {low}"
