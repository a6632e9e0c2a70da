"""Opens floe serve's dashboard in headless Chromium as a person would:
signs in through the form, visits each page, and prints what it saw as
JSON (title, console errors, charts and their marks, the numbers shown),
keeping a screenshot of each page.

    python browse_dashboard.py BASE_URL TOKEN SCREENSHOT_DIR NAME
"""
import json
import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

base, token, shots, name = sys.argv[1:5]
os.makedirs(shots, exist_ok=True)

options = webdriver.ChromeOptions()
for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,2400"]:
    options.add_argument(arg)
options.binary_location = "/usr/bin/chromium"
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
driver.set_page_load_timeout(60)


def text(element):
    return (element.get_attribute("textContent") or "").strip()


def table(css):
    """Rows of a table as lists of cell texts (hidden ones too)."""
    found = driver.find_elements(By.CSS_SELECTOR, css)
    if not found:
        return None
    return [[text(c) for c in row.find_elements(By.CSS_SELECTOR, "td")]
            for row in found[0].find_elements(By.CSS_SELECTOR, "tbody tr")]


seen = {}
try:
    # a page asked for without the token leads to the sign-in form
    driver.get(base + "/")
    seen["redirected_to"] = driver.current_url.replace(base, "")
    driver.find_element(By.NAME, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form button").click()
    for path in ["/", "/quality", "/analytics"]:
        driver.get(base + path)
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
        page = {
            "title": driver.title,
            "errors": [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"],
            "charts": {c.get_attribute("id"): len(c.find_elements(By.CSS_SELECTOR, ".mark")) for c in charts},
            "hover": [
                text(m.find_element(By.TAG_NAME, "title"))
                for m in driver.find_elements(By.CSS_SELECTOR, "svg.chart .mark")[:1]
            ],
        }
        for key, css in [
            ("tables", "#tables"),
            ("trips_per_day", "#trips-per-day-numbers"),
            ("top_zones", "#top-zones-numbers"),
            ("quality", "#quality"),
        ]:
            rows = table(css)
            if rows is not None:
                page[key] = rows
        for key in ["job-summary", "quality-summary"]:
            found = driver.find_elements(By.ID, key)
            if found:
                page[key] = text(found[0])
        driver.save_screenshot(os.path.join(shots, name + path.replace("/", "_") + ".png"))
        seen[path] = page
finally:
    driver.quit()
print(json.dumps(seen))
