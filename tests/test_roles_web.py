"""Roles and branch creation through the management page of a real server, on
each database: a manager's forged form cannot grant what the page does not
offer; an organisation manager creates a branch a kiosk pairs with at once,
and switches between the branches they manage; every field of the new-branch
form refuses hostile input and creates nothing; the pages speak the staff
member's language."""

from __future__ import annotations

import pytest
import requests

from sync import state, tickets
from sync.daemon import pair
from tests.server_process import sync_once
from tests.web import PASSWORD, add_staff


def session_of(server, username: str, branch: str = "") -> tuple[requests.Session, str]:
    """A logged-in browser session of ``username`` and its CSRF token."""
    web = requests.Session()
    web.post(
        f"{server.url}/console/login",
        data={"username": username, "password": PASSWORD},
        timeout=30,
    )
    page = web.get(f"{server.url}/console/manage", timeout=10).text
    return web, page.split('name="csrf" value="')[1].split('"')[0]


def branch_count(server) -> int:
    return server.sql("SELECT COUNT(*) FROM branches")[0][0]


def new_branch_fields(csrf: str, ident: str, server) -> dict[str, str]:
    return {
        "csrf": csrf,
        "id": ident,
        "name": f"Branch {ident}",
        "timezone": "Europe/Tallinn",
        "ticket_url_template": f"{server.url}/t/{{token}}",
        "lang_et": "on",
        "lang_en": "on",
    }


@pytest.fixture
def organisation(own_branch):
    """An organisation manager of the test's own branch, logged in."""
    server = own_branch.server
    name = own_branch.name("mia")
    add_staff(server, name, "1", role="organisation", branch=own_branch.id)
    web, csrf = session_of(server, name)
    yield server, own_branch, name, web, csrf
    web.close()


def test_a_managers_forged_form_cannot_grant_what_the_page_does_not_offer(own_branch):
    server, branch = own_branch.server, own_branch.id
    boss, clerk = own_branch.name("olli"), own_branch.name("sara")
    add_staff(server, boss, "2", role="manager", branch=branch)
    add_staff(server, clerk, "3", branch=branch)
    web, csrf = session_of(server, boss)
    page = web.get(f"{server.url}/console/manage", timeout=10).text
    assert 'value="manager"' in page and 'value="organisation"' not in page
    assert "New branch" not in page and 'name="branch"' not in page  # no picker, no form
    before = server.sql("SELECT username, role FROM staff ORDER BY username")
    staff_form = {"csrf": csrf, "password": "another good password", "counter": "3"}
    for username in (clerk, boss, own_branch.name("new")):
        forged = web.post(
            f"{server.url}/console/manage/staff",
            data=staff_form | {"username": username, "role": "organisation"},
            timeout=30,
        )
        assert forged.status_code == 400, username
        assert "above your own" in forged.text or "raise their own role" in forged.text
    unknown_role = web.post(
        f"{server.url}/console/manage/staff",
        data=staff_form | {"username": clerk, "role": "admin"},
        timeout=30,
    )
    assert unknown_role.status_code == 400 and "a role is one of" in unknown_role.text
    further = web.post(
        f"{server.url}/console/manage/staff",
        data=staff_form | {"username": clerk, "role": "manager", f"branch_{branch}x": "on"},
        timeout=30,
    )
    assert further.status_code == 400 and "Only an organisation manager has" in further.text
    assert server.sql("SELECT username, role FROM staff ORDER BY username") == before
    # an organisation manager of the same branch is out of his reach
    mia = own_branch.name("mia")
    add_staff(server, mia, "1", role="organisation", branch=branch)
    page = web.get(f"{server.url}/console/manage", timeout=10).text
    assert f"/console/manage/staff/{clerk}/remove" in page
    assert f"/console/manage/staff/{mia}/remove" not in page
    taken_over = web.post(
        f"{server.url}/console/manage/staff",
        data=staff_form | {"username": mia, "role": "manager"},
        timeout=30,
    )
    assert taken_over.status_code == 400 and "Only an organisation manager" in taken_over.text
    removed = web.post(
        f"{server.url}/console/manage/staff/{mia}/remove", data={"csrf": csrf}, timeout=10
    )
    assert removed.status_code == 403 and "Only an organisation manager" in removed.text
    assert server.sql("SELECT role FROM staff WHERE username = ?", [mia]) == [("organisation",)]
    # a manager creates no branch, and manages no other branch
    made = web.post(
        f"{server.url}/console/manage/branches",
        data=new_branch_fields(csrf, f"{branch}-north", server),
        timeout=10,
    )
    assert made.status_code == 403 and "Only an organisation manager can create" in made.text
    for other in ("demo", "nowhere", "../demo"):
        assert (
            web.get(
                f"{server.url}/console/manage", params={"branch": other}, timeout=10
            ).status_code
            == 403
        )
        assert (
            web.post(
                f"{server.url}/console/manage/pairing-code",
                params={"branch": other},
                data={"csrf": csrf},
                timeout=10,
            ).status_code
            == 403
        )
    assert not server.sql("SELECT 1 FROM branches WHERE id = ?", [f"{branch}-north"])
    web.close()


def test_an_organisation_manager_creates_a_branch_a_kiosk_pairs_with_at_once(
    organisation, tmp_path
):
    server, own, name, web, csrf = organisation
    ident = f"{own.id}-east"
    page = web.get(f"{server.url}/console/manage", timeout=10).text
    # the form's defaults come from the branch being managed
    assert f'value="{server.url}/t/{{token}}"' in page
    assert "<option selected>Europe/Helsinki</option>" in page
    made = web.post(
        f"{server.url}/console/manage/branches",
        data=new_branch_fields(csrf, ident, server),
        allow_redirects=False,
        timeout=10,
    )
    assert made.status_code == 303, made.text
    assert made.headers["location"].startswith(f"/console/manage?branch={ident}&msg=")
    shown = web.get(f"{server.url}{made.headers['location']}", timeout=10).text
    assert f"Branch {ident} created" in shown and 'id="pick-branch"' in shown
    stored = server.sql("SELECT name, timezone, languages FROM branches WHERE id = ?", [ident])
    assert stored == [(f"Branch {ident}", "Europe/Tallinn", '["en", "et"]')]
    # it is among her branches; her own account stays in her own branch
    assert server.sql(
        "SELECT s.branch_id, b.branch_id FROM staff s JOIN staff_branches b ON b.staff_id = s.id "
        "WHERE s.username = ?",
        [name],
    ) == [(own.id, ident)]

    # a service for the new branch, from its own page: the form names the branch
    service = web.post(
        f"{server.url}/console/manage/services",
        params={"branch": ident},
        data={
            "csrf": csrf,
            "id": "permits",
            "prefix": "P",
            "name_et": "Load",
            "open": "on",
            "always_open": "on",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert service.status_code == 303, service.text
    assert server.sql("SELECT branch_id FROM services WHERE id = 'permits' AND prefix = 'P'") == [
        (ident,)
    ]
    # a kiosk pairs with it with a code from its manage page
    coded = web.post(
        f"{server.url}/console/manage/pairing-code",
        params={"branch": ident},
        data={"csrf": csrf},
        timeout=10,
    ).text
    code = coded.split('id="pairing-code">')[1].split("<")[0]
    kiosk_dir = tmp_path / "east-kiosk"
    credentials = pair(kiosk_dir, server.url, code, "east door")
    assert credentials.branch_id == ident
    sync_once(kiosk_dir)
    db = state.connect(kiosk_dir / "state.db")
    assert tickets.get_service(db, "permits").prefix == "P"
    db.close()
    # her own branch is untouched, and still the default page
    home = web.get(f"{server.url}/console/manage", timeout=10).text
    assert f'<option value="{own.id}" selected>' in home
    assert not server.sql(
        "SELECT 1 FROM services WHERE branch_id = ? AND prefix = 'P' AND id = 'permits'", [own.id]
    )


HOSTILE_IDS = [
    "x" * 65,  # oversized
    "x" * 5000,
    "äiti",  # unicode
    "ｅａｓｔ",  # full-width letters
    "../etc",  # path-like
    "a/b",
    "a\\b",
    "x'; DROP TABLE branches; --",  # SQL-ish
    "east\n",
    " east",
    "East",
    "",
    "-east",
    "east\x00",
]


def test_hostile_new_branch_forms_are_refused_and_create_nothing(organisation):
    server, own, _name, web, csrf = organisation
    before = branch_count(server)
    url = f"{server.url}/console/manage/branches"

    def post(fields: dict, **headers: str) -> requests.Response:
        return web.post(url, data=fields, headers=headers, allow_redirects=False, timeout=10)

    good = new_branch_fields(csrf, f"{own.id}-ok", server)
    for ident in HOSTILE_IDS:
        refused = post(good | {"id": ident})
        assert refused.status_code in (400, 413), ident
        if refused.status_code == 400:
            assert "A branch id is 1 to 64" in refused.text, ident
            assert 'role="alert"' in refused.text
    # taken ids: the own branch now, the new one at the end
    assert "exists already" in post(good | {"id": own.id}).text
    for zone in ("Mars/Olympus", "", "../../etc/passwd", "posixrules", "Europe/Helsinki\n"):
        refused = post(good | {"timezone": zone})
        assert refused.status_code == 400 and "time zone from the list" in refused.text, zone
    unknown = post(good | {"lang_zz": "on"})
    assert unknown.status_code == 400 and "unknown language" in unknown.text
    none = {k: v for k, v in good.items() if not k.startswith("lang_")}
    assert "at least one language" in post(none).text
    for address in ("javascript:alert(1)//{token}", "https://q.example/t/", "x" * 600):
        assert post(good | {"ticket_url_template": address}).status_code == 400, address
    assert post(good | {"name": ""}).status_code == 400
    assert post(good | {"csrf": "0" * 32}).status_code == 403
    assert post({k: v for k, v in good.items() if k != "csrf"}).status_code == 403
    cross = post(good, **{"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403 and "another site" in cross.text
    assert post(good, Origin="https://evil.example").status_code == 403
    assert branch_count(server) == before
    # the form comes back with what was typed
    kept = post(good | {"id": "Bad Id", "name": "Kept name"})
    assert 'value="Kept name"' in kept.text and 'value="Bad Id"' in kept.text
    # and then the good form goes through, once
    assert post(good).status_code == 303
    again = post(good)
    assert again.status_code == 400 and "exists already" in again.text
    assert branch_count(server) == before + 1


def test_the_pages_speak_the_members_language(organisation):
    server, _own, _name, web, csrf = organisation
    # no choice yet: the browser's language
    swedish = web.get(
        f"{server.url}/console/manage", headers={"Accept-Language": "sv-FI,sv;q=0.9"}, timeout=10
    ).text
    assert '<html lang="sv">' in swedish and "Nytt kontor" in swedish
    chosen = web.post(
        f"{server.url}/console/manage/language",
        data={"csrf": csrf, "language": "fi"},
        headers={"Accept-Language": "sv"},
        timeout=10,
    )
    assert chosen.status_code == 200 and "Kieli tallennettu." in chosen.text
    finnish = web.get(
        f"{server.url}/console/manage", headers={"Accept-Language": "sv"}, timeout=10
    ).text
    assert '<html lang="fi">' in finnish
    for words in (
        "Uusi toimipiste",
        "Palvelut",
        "Henkilökunta",
        "Kioskit",
        "Luo toimipiste",
        "organisaation esihenkilö",
    ):
        assert words in finnish, words
    assert "New branch" not in finnish and "Add a service" not in finnish
    service = web.get(f"{server.url}/console/manage/services/new", timeout=10).text
    assert "Tallenna palvelu" in service and "Aukioloajat" in service
    # a refusal in Finnish too
    refused = web.post(
        f"{server.url}/console/manage/branches",
        data=new_branch_fields(csrf, "", server),
        timeout=10,
    )
    assert "Toimipisteen tunnus on 1–64 merkkiä" in refused.text
    for hostile in ("de", "../../etc/passwd", "fi\n", "x" * 5000):
        assert web.post(
            f"{server.url}/console/manage/language",
            data={"csrf": csrf, "language": hostile},
            timeout=10,
        ).status_code in (400, 413)
    # back to the browser's
    web.post(
        f"{server.url}/console/manage/language", data={"csrf": csrf, "language": ""}, timeout=10
    )
    estonian = web.get(
        f"{server.url}/console/manage", headers={"Accept-Language": "et"}, timeout=10
    ).text
    assert '<html lang="et">' in estonian and "Uus harukontor" in estonian
