"""The store's page in a real browser (Debian's Chromium), at a tablet's size: staff log in,
label three photos the model was unsure of, and add a product.  Screenshots of each step
are kept under ``test-artifacts/browser/``."""

from __future__ import annotations

import json

from page_fixtures import ARTIFACTS, PAGE_EDGE, StorePage, cards, log_in

from foundation.assortment import read_catalogue
from testkit.browser import Browser


def test_staff_log_in_label_three_photos_and_add_a_product(store_page: StorePage, browser: Browser) -> None:
    store_page.unsure_photos(
        [
            [("COLA-330", 0.52), ("CHIPS-200", 0.30), ("TEA-GREEN", 0.08)],
            [("TEA-GREEN", 0.47), ("SOAP-100", 0.40), ("COLA-330", 0.05)],
            [("CHIPS-200", 0.44), ("COLA-330", 0.21), ("SOAP-100", 0.12)],
            [("SOAP-100", 0.39), ("TEA-GREEN", 0.33), ("CHIPS-200", 0.15)],
        ]
    )
    browser.open(store_page.url)
    browser.find("#login-form")
    browser.screenshot(ARTIFACTS / "1-login.png")

    log_in(browser, store_page)
    browser.wait(lambda: cards(browser) == 4, "four unsure photos")
    browser.run("return Promise.all([...document.images].map(i => i.decode()))")
    browser.screenshot(ARTIFACTS / "2-unsure-photos.png")
    shown = [browser.attribute(e, "data-capture") or "" for e in browser.find_all("article.card")]
    ids = [c.split("/")[1] for c in shown]
    first_guesses = dict(zip(ids, _first_guesses(store_page, ids), strict=True))  # labelling removes them

    browser.click("article.card:nth-of-type(1) button.confirm")  # the model's first guess
    browser.wait(lambda: cards(browser) == 3, "the first photo to leave the list")
    browser.click("article.card:nth-of-type(1) fieldset label:nth-of-type(2) input")  # its second guess
    browser.click("article.card:nth-of-type(1) button.confirm")
    browser.wait(lambda: cards(browser) == 2, "the second photo to leave the list")
    browser.select("article.card:nth-of-type(1) select", "TEA-GREEN")  # none of its guesses
    browser.click("article.card:nth-of-type(1) button.confirm")
    browser.wait(lambda: cards(browser) == 1, "the third photo to leave the list")
    browser.screenshot(ARTIFACTS / "3-three-labelled.png")

    labelled = store_page.hard_examples()
    assert labelled[ids[0]] == first_guesses[ids[0]][0]
    assert labelled[ids[1]] == first_guesses[ids[1]][1]
    assert labelled[ids[2]] == "TEA-GREEN"
    assert ids[3] not in labelled

    browser.click('button.tab[data-section="products"]')
    browser.type("#product-sku", "KOMBU-GNG")
    browser.type("#product-name", "Ginger kombucha")
    browser.type("#product-price", "3.95")
    browser.click("#product-form button[type=submit]")
    browser.wait(lambda: "KOMBU-GNG" in browser.text("#product-rows"), "the new product in the table")
    browser.screenshot(ARTIFACTS / "4-product-added.png")

    catalogue = read_catalogue(store_page.store, store_page.layout.edge_catalogue_home(PAGE_EDGE))
    assert catalogue is not None and catalogue.product("KOMBU-GNG").name == "Ginger kombucha"


def test_a_wrong_token_is_told_so_and_shows_nothing(store_page: StorePage, browser: Browser) -> None:
    browser.open(store_page.url)
    browser.type("#token", "not-a-token-anyone-issued")
    browser.click("#login-form button[type=submit]")

    browser.wait(lambda: "Not logged in" in browser.text("#login-error"), "the login error")
    assert browser.run("return document.getElementById('app').hidden") is True


def test_staff_dismiss_a_false_machine_alarm_and_confirm_a_real_one(
    store_page: StorePage, browser: Browser
) -> None:
    store_page.machine_alarms(["press-1", "press-2"])
    browser.open(store_page.url)
    browser.type("#token", store_page.staff_token)
    browser.click("#login-form button[type=submit]")
    browser.wait(lambda: browser.text("#staff-name") == "manager", "the staff name after logging in")

    browser.click('button.tab[data-section="machines"]')
    browser.wait(lambda: len(browser.find_all("article.alarm")) == 2, "two alarm cards")
    browser.screenshot(ARTIFACTS / "8-machine-alarms.png")
    browser.click('article.alarm button[aria-label^="Dismiss the alarm of press-2"]')
    browser.wait(lambda: "press-2 dismissed" in browser.text("#status"), "the dismissal")
    browser.click('article.alarm button[aria-label^="Confirm the alarm of press-1"]')
    browser.wait(lambda: "press-1 confirmed" in browser.text("#status"), "the confirmation")

    verdicts = {
        o.location.key.split("/")[1]: json.loads(store_page.store.get_bytes(o.location))["verdict"]
        for o in store_page.store.list(store_page.layout.anomalies_prefix(PAGE_EDGE))
        if o.location.key.endswith(".verdict.json")
    }
    assert verdicts == {"press-1": "confirmed", "press-2": "dismissed"}
    assert not browser.run("return document.getElementById('no-alarms').hidden")


def _first_guesses(page: StorePage, ids: list[str]) -> list[list[str]]:
    """The SKUs each capture's record guessed, in the model's order."""
    found = {}
    for o in page.store.list(page.layout.unrecognized_prefix(PAGE_EDGE)):
        if o.location.key.endswith(".json"):
            record = json.loads(page.store.get_bytes(o.location))
            found[o.location.key.rsplit("/", 1)[1][:-5]] = [t["sku"] for t in record["prediction"]["top"]]
    return [found[i] for i in ids]
