"""The console in a real browser (Debian's Chromium, headless, driven by Selenium).

In English, a person (Adele, the demo's administrator too) signs in, connects their mailbox, picks a
sub-folder three levels deep and Sent Items, validates the connection, sees a message imported and
the incoming status turn to success, and adds a shared mailbox they are a delegate of.

In French, the administrator requires approval; another person (Chloé) signs in and connects, and
cannot open Adele's mailbox page; the administrator approves Chloé's pending mailbox and runs test
and enable; Chloé's grant is revoked, the administrator sees the alert on the wall, and Chloé
signs in again from the alert's own button, which clears it.

Screenshots of the main pages go to the directory given. Run by scripts/test.sh after the binaries
are built: python tests/web/console.py target/debug/mailbridge-local target/screenshots
.venv/axe-core/axe.min.js"""

import os
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from harness import call, serve

BINARY, SHOTS, AXE = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
# What axe-core checks on every page shown: WCAG 2.1 A and AA (names and labels, contrast,
# structure, language) and its best practices.
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
FOUND = []
AUDITED = []


def browser(language):
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for flag in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1280,900", f"--user-data-dir={tempfile.mkdtemp()}",
    ]:
        opts.add_argument(flag)
    opts.add_experimental_option("prefs", {"intl.accept_languages": language})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def wait_for(driver, text, reload=False, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if text in driver.page_source:
            return
        if reload:
            driver.refresh()
        time.sleep(0.3)
    raise AssertionError(f"{text!r} not on {driver.current_url}:\n{driver.page_source[:3000]}")


def press(driver, by, what):
    """Clicks a link or a form's button and waits until the browser has left the page, so that the
    next step never races the form's submission (a `get` right after a click can cancel it)."""
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(by, what).click()

    def gone(_):
        # Chromium may answer a node detached mid-check with an inspector error instead of a
        # stale-element error: either way, the old page is gone.
        try:
            return expected_conditions.staleness_of(page)(driver)
        except WebDriverException:
            return True

    WebDriverWait(driver, 20).until(gone)


def shot(driver, name):
    driver.save_screenshot(os.path.join(SHOTS, name))
    audit(driver, name)


def audit(driver, name):
    """Runs axe-core on the page; what it finds is reported at the end, and fails the test."""
    AUDITED.append(name)
    driver.set_script_timeout(60)
    driver.execute_script(AXE)
    violations = driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        axe.run(document, {runOnly: {type: "tag", values: arguments[0]}})
          .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}))))
          .catch(e => done([{id: "axe-error", impact: "critical", help: String(e), nodes: []}]));""",
        RULES)
    for v in violations:
        FOUND.append(f"{name} ({driver.current_url}): {v['id']} [{v['impact']}] {v['help']}: {v['nodes']}")


def keyboard_reaches(driver, label):
    """Tabbing from the top of the page reaches the control named `label`, which shows its focus."""
    for _ in range(80):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        el = driver.switch_to.active_element
        if el.text.strip() == label:
            outline = el.value_of_css_property("outline-style")
            assert outline not in ("none", ""), f"no visible focus on {label!r}: {outline}"
            return el
    raise AssertionError(f"{label!r} is not reachable with the keyboard on {driver.current_url}")


ENGLISH = ("Sign in with Microsoft", "Your mailboxes", "Connect my mailbox", "is connected")
FRENCH = ("Se connecter avec Microsoft", "Vos boîtes aux lettres",
          "Connecter ma boîte aux lettres", "est connectée")


def sign_in_and_connect(driver, base, words, screenshot):
    """From the console's sign-in page: sign in with Microsoft, then connect the mailbox (the
    simulator signs in as the user set with /_sim/browser)."""
    sign_in, home, connect, connected = words
    driver.get(f"{base}/console")
    wait_for(driver, sign_in)
    shot(driver, screenshot)
    press(driver, By.LINK_TEXT, sign_in)
    wait_for(driver, home)
    press(driver, By.LINK_TEXT, connect)
    wait_for(driver, connected)


def main():
    with serve(BINARY) as (base, sim, _):
        scenario(base, sim)
    assert not FOUND, "accessibility (axe-core):\n" + "\n".join(FOUND)
    print("accessibility: axe-core found nothing on", len(AUDITED), "pages")


def scenario(base, sim):
    driver = None
    try:
        demo = call("GET", f"{sim}/_sim/demo")
        upn = next(u["upn"] for u in demo["users"] if u["upn"].startswith("adele"))
        call("POST", f"{sim}/_sim/browser", {"user": upn})
        # A folder three levels under the Inbox.
        parent = "inbox"
        for name in ["Clients", "Dupont", "2026"]:
            parent = call("POST", f"{sim}/_sim/users/{upn}/folders", {"parent": parent, "name": name})["id"]

        driver = browser("en-GB,en")
        sign_in_and_connect(driver, base, ENGLISH, "console-sign-in.png")
        driver.get(f"{base}/console")
        wait_for(driver, upn.lower())

        # The mailbox: choose the sub-folder and Sent Items.
        press(driver, By.LINK_TEXT, upn.lower())
        wait_for(driver, "Choose the folders to import")
        press(driver, By.LINK_TEXT, "Choose the folders to import")
        wait_for(driver, "Inbox/Clients/Dupont/2026")
        for label in ["Inbox/Clients/Dupont/2026", "Sent Items", "Inbox"]:
            box = driver.find_element(By.XPATH, f"//label[text()='{label}']/preceding-sibling::input")
            want = label != "Inbox"
            if box.is_selected() != want:
                box.click()
        shot(driver, "console-folders.png")
        press(driver, By.XPATH, "//button[text()='Save']")
        # Both chosen, in the tree's order (which follows Graph's, not the names').
        wait_for(driver, "Sent Items")
        chosen = driver.find_element(By.XPATH, "//dt[text()='Folders']/following-sibling::dd[1]").text
        assert sorted(chosen.split(" · ")[0].split(", ")) == ["2026", "Sent Items"], chosen

        # Validate the connection, then a message arrives in the chosen sub-folder.
        # By keyboard alone: Tab to the button, Enter.
        keyboard_reaches(driver, "Validate connection").send_keys(Keys.ENTER)
        wait_for(driver, "Every check passed.")
        mime = b"From: a@example.com\r\nTo: adele@example.com\r\nSubject: Dossier Dupont\r\nMessage-ID: <browser-1@example.com>\r\n\r\nBonjour.\r\n"
        call("POST", f"{sim}/_sim/users/{upn}/messages?folder={parent}", mime, "message/rfc822")
        wait_for(driver, "<dd>success</dd>", reload=True)
        shot(driver, "console-mailbox.png")

        adele_page = driver.current_url

        # A shared mailbox Adele is a delegate of, added from her mailbox's page.
        domain = upn.split("@")[1]
        tenant = next(t for t in demo["tenants"] if t["domain"].lower() == domain.lower())
        support = f"support@{domain}"
        call("POST", f"{sim}/_sim/tenants/{tenant['id']}/users", {"upn": support, "kind": "shared"})
        call("PATCH", f"{sim}/_sim/users/{support}", {"delegates": [upn]})
        driver.find_element(By.ID, "shared-address").send_keys(support)
        press(driver, By.XPATH, "//button[text()='Add']")
        driver.get(f"{base}/console")
        wait_for(driver, support)

        # In French from here on: the administrator asks for approval of new mailboxes.
        driver.get(f"{base}/console/lang?to=fr&back=/console")
        wait_for(driver, "Toutes les boîtes aux lettres")
        assert 'lang="fr"' in driver.page_source
        shot(driver, "console-admin-fr.png")
        driver.get(f"{base}/console/profiles/demo")
        wait_for(driver, "Un administrateur approuve chaque boîte")
        audit(driver, "profile form")
        approval = driver.find_element(By.ID, "approval")
        if not approval.is_selected():
            approval.click()
        press(driver, By.XPATH, "//button[text()='Enregistrer']")
        wait_for(driver, "Profils de serveur")

        # Access tokens live a minute from now on, so that a revoked grant shows at the next use
        # rather than an hour later (Entra's token lifetime, shortened in the simulator).
        limits = call("GET", f"{sim}/_sim/limits")
        limits["access_token_seconds"] = 60
        call("PUT", f"{sim}/_sim/limits", limits)

        # Chloé, in French, signs in and connects: her mailbox waits for approval.
        chloe = f"chloe@{domain}"
        call("POST", f"{sim}/_sim/tenants/{tenant['id']}/users", {"upn": chloe, "display_name": "Chloé Martin"})
        call("POST", f"{sim}/_sim/browser", {"user": chloe})
        other = browser("fr-FR,fr")
        try:
            sign_in_and_connect(other, base, FRENCH, "console-sign-in-fr.png")
            assert "Un administrateur doit l" in other.page_source, other.page_source
            other.get(f"{base}/console")
            wait_for(other, "en attente d")
            assert "Toutes les boîtes aux lettres" not in other.page_source, "Chloé is no administrator"
            # Adele's mailbox is not Chloé's to see.
            other.get(adele_page)
            wait_for(other, "Cette page n")
            audit(other, "not found")
            assert upn.lower() not in other.page_source

            # The administrator approves the pending mailbox, then tests and enables it.
            driver.get(f"{base}/console?filter=pending")
            row = f"//tr[td/a[text()='{chloe}']]"
            wait_for(driver, chloe)
            press(driver, By.XPATH, f"{row}//button[text()='Approuver']")
            wait_for(driver, "Tester et activer")
            press(driver, By.XPATH, "//button[text()='Tester et activer']")
            wait_for(driver, "Toutes les vérifications ont réussi.")
            assert "un jeton a été obtenu avec le profil" in driver.page_source
            chloe_page = driver.current_url
            shot(driver, "console-test-and-enable-fr.png")

            # Chloé's grant is revoked (her password reset, say); the next use of it finds out.
            call("POST", f"{sim}/_sim/users/{chloe}/revoke")
            press(driver, By.XPATH, "//button[text()='Valider la connexion']")
            wait_for(driver, "Une vérification a échoué")
            driver.get(f"{base}/console#alerts")
            wait_for(driver, "Réauthentification requise")
            wall = driver.find_element(By.XPATH, "//h2[@id='alerts']/following-sibling::ul[1]").text
            assert chloe in wall and "Reconnectez-vous" in wall, wall
            shot(driver, "console-alerts-fr.png")

            # Chloé sees the alert on her page and signs in again from its button.
            other.get(chloe_page)
            wait_for(other, "Réauthentification requise")
            press(other, By.XPATH, "//ul[@class='alerts']//a[text()='Se réauthentifier']")
            wait_for(other, "est connectée")
            other.get(chloe_page)
            wait_for(other, "<dd>connectée</dd>")
            assert "Réauthentification requise" not in other.page_source, other.page_source
            driver.get(f"{base}/console")
            wait_for(driver, "Toutes les boîtes aux lettres")
            assert chloe not in driver.find_element(
                By.XPATH, "//h2[@id='alerts']/following-sibling::ul[1]").text
        finally:
            other.quit()
        print("browser test: passed; screenshots in", SHOTS)
    finally:
        if driver is not None:
            driver.quit()


main()
