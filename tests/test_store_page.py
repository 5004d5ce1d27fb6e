"""The store's page over real HTTP: its files, the staff login, and the review desk's routes."""

from __future__ import annotations

import json
import re
from datetime import date, datetime

import httpx
import pytest
from page_fixtures import PAGE_EDGE, StorePage, verdict_path

from edge_sync.uplink.sessions import COOKIE as COOKIE_PREFIX
from edge_sync.uplink.sessions import FAILED_WINDOW_S, MAX_FAILED_LOGINS, StaffSessions
from foundation.alarm_verdicts import read_verdicts
from foundation.assortment import changes, read_catalogue
from foundation.credentials import Credentials, new_token, write_tokens_file
from foundation.errors import TooManyRequests, Unauthorized
from foundation.telemetry import SENSORS
from testkit.uplink import image_bytes

COOKIE = f"{COOKIE_PREFIX}_{PAGE_EDGE}"


def test_the_page_and_its_files_come_from_the_gateway_alone(store_page: StorePage) -> None:
    for path in ("/staff/", "/staff/staff.js", "/staff/staff.css"):
        response = httpx.get(store_page.url + path)

        assert response.status_code == 200, path
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert not re.search(r"(src|href)=\"(https?:)?//", response.text), path
    assert httpx.get(store_page.url + "/staff/other.js").status_code == 404


def test_logging_in_with_a_staff_token_gives_a_strict_http_only_session_cookie(store_page: StorePage) -> None:
    response = httpx.post(f"{store_page.url}/v1/session", json={"token": store_page.staff_token})

    assert response.status_code == 201 and response.json() == {"staff": "manager", "edge": PAGE_EDGE}
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith(COOKIE) and "httponly" in cookie and "samesite=strict" in cookie
    assert store_page.staff_token not in response.headers["set-cookie"]


def test_a_device_token_or_an_unknown_one_does_not_log_in(store_page: StorePage) -> None:
    for token in (store_page.device_token, new_token()):
        response = httpx.post(f"{store_page.url}/v1/session", json={"token": token})

        assert response.status_code == 401
        assert token not in response.text


def test_without_a_session_the_desk_answers_401(store_page: StorePage) -> None:
    for method, path in (("GET", "/v1/unsure"), ("GET", "/v1/catalogue"), ("GET", "/v1/shipments")):
        response = httpx.request(method, store_page.url + path, cookies={COOKIE: "made-up"})

        assert response.status_code == 401, path


def test_unsure_photos_are_listed_newest_first_with_their_top_guesses(store_page: StorePage) -> None:
    store_page.unsure_photos([[("COLA-330", 0.41), ("CHIPS-200", 0.32), ("TEA-GREEN", 0.1)]] * 2)
    with store_page.login() as page:
        answer = page.get("/v1/unsure").json()

    assert answer["waiting"] == 2
    first, second = answer["unsure"]
    assert (first["day"], first["capture_id"]) > (second["day"], second["capture_id"])
    assert [(g["sku"], g["name"]) for g in first["guesses"]] == [
        ("COLA-330", "Cola 330 ml"), ("CHIPS-200", "Paprika chips"), ("TEA-GREEN", "Green tea")
    ]  # fmt: skip
    assert first["model_version"] == "v000003"


def test_a_labelled_photo_becomes_a_hard_example_and_leaves_the_list(store_page: StorePage) -> None:
    store_page.unsure_photos([[("COLA-330", 0.5), ("CHIPS-200", 0.3)]] * 2)
    with store_page.login() as page:
        photo = page.get("/v1/unsure").json()["unsure"][0]
        image = page.get(f"/v1/unsure/{photo['day']}/{photo['capture_id']}/image")
        labelled = page.post("/v1/hard-examples", json={**photo, "sku": "CHIPS-200"})
        after = page.get("/v1/unsure").json()

    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert labelled.status_code == 201, labelled.text
    assert store_page.hard_examples() == {photo["capture_id"]: "CHIPS-200"}
    assert after["waiting"] == 1 and after["unsure"][0]["capture_id"] != photo["capture_id"]


def test_a_discarded_photo_is_deleted_with_its_record(store_page: StorePage) -> None:
    store_page.unsure_photos([[("SOAP-100", 0.4)]])
    with store_page.login() as page:
        photo = page.get("/v1/unsure").json()["unsure"][0]
        response = page.delete(f"/v1/unsure/{photo['day']}/{photo['capture_id']}")
        again = page.delete(f"/v1/unsure/{photo['day']}/{photo['capture_id']}")

    assert (response.status_code, again.status_code) == (204, 404)
    assert list(store_page.store.list(store_page.layout.unrecognized_prefix(PAGE_EDGE))) == []
    assert store_page.hard_examples() == {}


def test_a_change_on_a_session_without_the_page_header_is_refused(store_page: StorePage) -> None:
    store_page.unsure_photos([[("SOAP-100", 0.4)]])
    with store_page.login() as page:
        photo = page.get("/v1/unsure").json()["unsure"][0]
        forged = httpx.delete(
            f"{store_page.url}/v1/unsure/{photo['day']}/{photo['capture_id']}", cookies=page.cookies
        )
        still = page.get("/v1/unsure").json()["waiting"]

    assert forged.status_code == 403
    assert still == 1


def test_staff_add_a_product_and_the_change_records_who(store_page: StorePage) -> None:
    with store_page.login() as page:
        added = page.put(
            "/v1/catalogue/products/KOMBU-GNG", json={"name": "Ginger kombucha", "price": "3.95"}
        )
        edited = page.put("/v1/catalogue/products/COLA-330", json={"name": "Cola 330 ml", "price": "1.30"})
        listed = page.get("/v1/catalogue").json()

    assert (added.status_code, edited.status_code) == (201, 200)
    home = store_page.layout.edge_catalogue_home(PAGE_EDGE)
    catalogue = read_catalogue(store_page.store, home)
    assert catalogue is not None and len(catalogue.products) == 5
    assert str(catalogue.product("COLA-330").price) == "1.30"
    assert [p["sku"] for p in listed["products"]][-1] == "KOMBU-GNG"
    assert changes(store_page.store, home)[-1].by == "staff:manager"


def test_a_product_without_a_valid_price_is_refused_without_echoing_it(store_page: StorePage) -> None:
    with store_page.login() as page:
        response = page.put("/v1/catalogue/products/KOMBU-GNG", json={"name": "Kombucha", "price": "cheap!"})

    assert response.status_code == 400
    assert "cheap!" not in response.text


def test_shipments_list_what_is_queued(store_page: StorePage) -> None:
    device = {"Authorization": f"Bearer {store_page.device_token}", "Content-Type": "image/jpeg"}
    for seed in (1, 2):
        httpx.post(f"{store_page.url}/v1/images/COLA-330", content=image_bytes(seed), headers=device)
    with store_page.login() as page:
        page.post("/v1/sets/COLA-330/complete")
        answer = page.get("/v1/shipments").json()

    assert [s["images"] for s in answer["queued"]] == [{"COLA-330": 2}]
    assert answer["shipped"] == []


def test_revoking_a_staff_token_ends_its_sessions(store_page: StorePage) -> None:
    with store_page.login() as page:
        _, staff_file = store_page.settings.gateway_tokens_files(PAGE_EDGE)
        write_tokens_file(staff_file, {"manager": [new_token()]})

        response = page.get("/v1/unsure")

    assert response.status_code == 401


def test_logging_out_ends_the_session(store_page: StorePage) -> None:
    with store_page.login() as page:
        page.delete("/v1/session")
        cookies = {COOKIE: page.cookies.get(COOKIE) or "gone"}

        assert page.get("/v1/session").status_code == 401
    assert httpx.get(f"{store_page.url}/v1/session", cookies=cookies).status_code == 401


def test_a_session_ends_after_its_lifetime() -> None:
    now = [0.0]
    token = new_token()
    sessions = StaffSessions(
        Credentials("staff", inline={"ana": [token]}), lifetime_s=60, clock=lambda: now[0]
    )
    session_id, _ = sessions.login(token)
    assert sessions.owner(session_id) == "ana"

    now[0] = 61.0

    with pytest.raises(Unauthorized):
        sessions.owner(session_id)


def test_an_address_that_failed_too_many_logins_waits_out_the_window_even_with_a_good_token() -> None:
    now = [0.0]
    token = new_token()
    sessions = StaffSessions(Credentials("staff", inline={"ana": [token]}), clock=lambda: now[0])
    for _ in range(MAX_FAILED_LOGINS):
        with pytest.raises(Unauthorized):
            sessions.login(new_token(), "10.0.0.9")

    with pytest.raises(TooManyRequests):
        sessions.login(token, "10.0.0.9")
    assert sessions.login(token, "10.0.0.7")[1] == "ana"  # another tablet is not held back

    now[0] = FAILED_WINDOW_S + 1
    assert sessions.login(token, "10.0.0.9")[1] == "ana"


def test_the_page_answers_429_to_an_address_guessing_tokens(store_page: StorePage) -> None:
    answers = [
        httpx.post(f"{store_page.url}/v1/session", json={"token": new_token()}).status_code
        for _ in range(MAX_FAILED_LOGINS + 1)
    ]

    assert answers == [401] * MAX_FAILED_LOGINS + [429]


def test_machine_alarms_are_listed_newest_first_with_the_readings_that_raised_them(
    store_page: StorePage,
) -> None:
    store_page.machine_alarms(["press-1", "press-2"])
    with store_page.login() as page:
        answer = page.get("/v1/alarms").json()

    assert answer["waiting"] == 2
    newest, older = answer["alarms"]
    assert (newest["machine"], older["machine"]) == ("press-2", "press-1")
    assert newest["sensors"] == list(SENSORS) and len(newest["readings"]) == 30
    assert newest["error"] == 1.25 and newest["threshold"] == 0.4
    assert (newest["texture_distance"], newest["texture_threshold"]) == (7.0, 6.5)


def test_a_verdict_is_recorded_once_with_who_gave_it_and_the_alarm_leaves_the_list(
    store_page: StorePage,
) -> None:
    store_page.machine_alarms(["press-1"])
    with store_page.login() as page:
        [alarm] = page.get("/v1/alarms").json()["alarms"]
        path = verdict_path(alarm)
        first = page.put(path, json={"verdict": "dismissed"})
        again = page.put(path, json={"verdict": "confirmed"})
        after = page.get("/v1/alarms").json()

    assert first.status_code == 201 and first.json()["by"] == "staff:manager"
    assert again.status_code == 409
    assert after["waiting"] == 0


def test_a_verdict_waits_for_the_core_with_the_span_of_readings_behind_the_alarm(
    store_page: StorePage,
) -> None:
    store_page.machine_alarms(["press-1"])
    with store_page.login() as page:
        [alarm] = page.get("/v1/alarms").json()["alarms"]
        path = verdict_path(alarm)
        page.put(path, json={"verdict": "confirmed"})

    [queued] = store_page.telemetry.ready()
    [verdict] = read_verdicts(queued.read_bytes())
    assert (verdict.machine, verdict.window_id, verdict.verdict) == (
        "press-1",
        alarm["window_id"],
        "confirmed",
    )
    assert verdict.end == datetime.fromisoformat(alarm["window_end"]).timestamp() == verdict.start + 690


def test_a_verdict_other_than_confirmed_or_dismissed_is_refused(store_page: StorePage) -> None:
    store_page.machine_alarms(["press-1"])
    with store_page.login() as page:
        [alarm] = page.get("/v1/alarms").json()["alarms"]
        path = verdict_path(alarm)
        answer = page.put(path, json={"verdict": "maybe"})

    assert answer.status_code == 400 and "maybe" not in answer.text


def test_an_address_guessing_bearer_tokens_is_held_back_as_a_guessing_login_is(store_page: StorePage) -> None:
    answers = [
        httpx.get(
            f"{store_page.url}/v1/unsure", headers={"Authorization": f"Bearer {new_token()}"}
        ).status_code
        for _ in range(MAX_FAILED_LOGINS)
    ]
    good = {"Authorization": f"Bearer {store_page.staff_token}"}

    assert answers == [401] * MAX_FAILED_LOGINS
    assert httpx.get(f"{store_page.url}/v1/unsure", headers=good).status_code == 429


def test_a_token_that_is_not_valid_text_is_refused_as_unknown(store_page: StorePage) -> None:
    body = b'{"token": "\\ud800"}'  # a lone surrogate: valid JSON, no string a token could be

    response = httpx.post(
        f"{store_page.url}/v1/session", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 401


def test_logging_in_again_ends_the_session_the_page_held(store_page: StorePage) -> None:
    with store_page.login() as page:
        first = page.cookies[COOKIE]
        assert page.post("/v1/session", json={"token": store_page.staff_token}).status_code == 201

    assert httpx.get(f"{store_page.url}/v1/session", cookies={COOKIE: first}).status_code == 401


def test_refusals_name_the_rule_never_the_value_sent(store_page: StorePage) -> None:
    probe = "<script>alert(1)</script>"
    with store_page.login() as page:
        answers = [
            httpx.get(f"{store_page.url}/staff/{probe}.js"),
            page.post(f"/v1/images/{probe}", content=b"x", headers={"Content-Type": "image/png"}),
            page.post("/v1/images/COLA-330", content=b"x", headers={"Content-Type": f"text/{probe}"}),
        ]

    for response in answers:
        assert 400 <= response.status_code < 500, response.text
        assert "script" not in response.text, response.text
        assert response.headers["x-content-type-options"] == "nosniff"


def test_an_alarm_window_the_page_cannot_plot_is_left_out_not_shown_broken(
    store_page: StorePage,
) -> None:
    store_page.machine_alarms(["press-1"])
    broken = {
        "window_end": "2026-12-03T11:00:00+00:00",
        "error": 2.0,
        "threshold": 0.4,
        "sensors": list(SENSORS),
    }
    for day, readings in ((3, []), (4, [[1.0]]), (5, [[float("inf")] * len(SENSORS)])):
        where = store_page.layout.anomaly_window(PAGE_EDGE, "press-9", date(2026, 12, day), f"w-{day}")
        store_page.store.put_bytes(where, json.dumps({**broken, "readings": readings}).encode())

    with store_page.login() as page:
        answer = page.get("/v1/alarms").json()

    assert [a["machine"] for a in answer["alarms"]] == ["press-1"]
