"""Roles and who may grant what, on each database: staff call; a manager
changes their branch and its staff and managers; an organisation manager also
manages the further branches given to them, gives organisation roles (only
with branches they have themselves) and creates branches; nobody raises their
own role, nor touches an account above their own. The server's command line
may do anything."""

from __future__ import annotations

import pytest

from server import branch_file
from server.staff import Staff, StaffMember
from server.storage import Rejected
from tests.server_process import cli_in_process

PASSWORD = "correct horse battery"


def new_branch(ident: str) -> dict:
    return branch_file.check_branch(
        {
            "id": ident,
            "name": ident.capitalize(),
            "timezone": "Europe/Helsinki",
            "languages": ["fi", "sv"],
            "ticket_url_template": "https://q.example/t/{token}",
        }
    )


def member(staff: Staff, username: str) -> StaffMember:
    found = staff.session(staff.log_in(username, PASSWORD, "127.0.0.1"))
    assert found is not None
    return found


def roles(storage) -> dict[str, str]:
    with storage.reading() as db:
        return dict(db.execute("SELECT username, role FROM staff").fetchall())


@pytest.fixture
def people(storage):
    """The demo branch with east and west beside it; mia (organisation,
    also east), olli (manager), sara (staff)."""
    staff = Staff(storage)
    staff.create_branch(new_branch("east"))
    staff.create_branch(new_branch("west"))
    staff.add("demo", "mia", PASSWORD, "1", [], "organisation", branches=["east"])
    staff.add("demo", "olli", PASSWORD, "2", [], "manager")
    staff.add("demo", "sara", PASSWORD, "3", [], "staff")
    return staff, member(staff, "mia"), member(staff, "olli")


def test_a_manager_grants_staff_and_manager_of_their_own_branch_only(storage, people):
    staff, _mia, olli = people
    staff.add("demo", "new-staff", PASSWORD, "4", [], "staff", by=olli)
    staff.add("demo", "new-boss", PASSWORD, "5", [], "manager", by=olli)
    # a forged form granting 'organisation' is refused, and changes nothing
    before = roles(storage)
    with pytest.raises(Rejected, match="above your own"):
        staff.add("demo", "sara", PASSWORD, "3", [], "organisation", by=olli)
    with pytest.raises(Rejected, match="above your own"):
        staff.add("demo", "brand-new", PASSWORD, "3", [], "organisation", by=olli)
    # nor their own role
    with pytest.raises(Rejected, match="raise their own role"):
        staff.add("demo", "olli", PASSWORD, "2", [], "organisation", by=olli)
    # nor an organisation manager's account (her password would be his)
    with pytest.raises(Rejected, match="Only an organisation manager"):
        staff.add("demo", "mia", "another good password", "1", [], "manager", by=olli)
    with pytest.raises(Rejected, match="Only an organisation manager"):
        staff.remove("demo", "mia", by=olli)
    # nor another branch's staff
    with pytest.raises(Rejected, match="not one you manage"):
        staff.add("east", "easterner", PASSWORD, "1", [], "staff", by=olli)
    # nor further branches for anyone
    with pytest.raises(Rejected, match="Only an organisation manager has further"):
        staff.add("demo", "sara", PASSWORD, "3", [], "manager", branches=["east"], by=olli)
    assert roles(storage) == before
    assert staff.remove("demo", "new-boss", by=olli)


def test_staff_cannot_grant_anything(storage, people):
    staff, *_ = people
    sara = member(staff, "sara")
    with pytest.raises(Rejected, match="not one you manage"):
        staff.add("demo", "other", PASSWORD, "1", [], "staff", by=sara)
    with pytest.raises(Rejected):
        staff.create_branch(new_branch("north"), by=sara)


def test_an_organisation_manager_gives_only_the_branches_they_have(storage, people):
    staff, mia, _olli = people
    assert staff.branches(mia) == ["demo", "east"]
    staff.add("demo", "ella", PASSWORD, "6", [], "organisation", branches=["east"], by=mia)
    assert next(m for m in staff.members("demo") if m["username"] == "ella")["branches"] == ["east"]
    with pytest.raises(Rejected, match="branches that you can see"):
        staff.add("demo", "ella", PASSWORD, "6", [], "organisation", branches=["west"], by=mia)
    with pytest.raises(Rejected, match="no branch 'nowhere'"):
        staff.add("demo", "ella", PASSWORD, "6", [], "organisation", branches=["nowhere"], by=mia)
    # she manages east too: its staff, and its managers
    staff.add("east", "east-boss", PASSWORD, "1", [], "manager", by=mia)
    assert [m["username"] for m in staff.members("east")] == ["east-boss"]
    # but not west, which nobody gave her
    with pytest.raises(Rejected, match="not one you manage"):
        staff.add("west", "west-boss", PASSWORD, "1", [], "manager", by=mia)


def test_what_the_editor_cannot_see_stays_with_the_account(storage, people):
    """Changing an organisation manager keeps the branches the editor does not
    have: nobody takes away what they could not give."""
    staff, mia, _ = people
    staff.add("demo", "ella", PASSWORD, "6", [], "organisation", branches=["east", "west"])
    staff.add("demo", "ella", PASSWORD, "7", [], "organisation", branches=[], by=mia)
    ella = next(m for m in staff.members("demo") if m["username"] == "ella")
    assert ella["branches"] == ["west"] and ella["counter"] == "7"
    # demoted, she has no further branches at all
    staff.add("demo", "ella", PASSWORD, "7", [], "manager", by=mia)
    assert next(m for m in staff.members("demo") if m["username"] == "ella")["branches"] == []


def test_further_branch_lists_are_checked(storage, people):
    staff, mia, _ = people
    for hostile in (["x" * 65], ["east\n"], ["../east"], ["east'; DROP TABLE staff; --"]):
        with pytest.raises(Rejected, match="no branch"):
            staff.add("demo", "ella", PASSWORD, "6", [], "organisation", branches=hostile, by=mia)
    # the same one twice, and the home branch, are one and none
    staff.add("demo", "ella", PASSWORD, "6", [], "organisation", branches=["east", "east", "demo"])
    assert next(m for m in staff.members("demo") if m["username"] == "ella")["branches"] == ["east"]
    with pytest.raises(Rejected, match="at most 200"):
        staff.add(
            "demo", "ella", PASSWORD, "6", [], "organisation", branches=list(map(str, range(201)))
        )


def test_only_an_organisation_manager_creates_branches_and_manages_them_at_once(storage, people):
    staff, mia, olli = people
    with pytest.raises(Rejected, match="Only an organisation manager can create"):
        staff.create_branch(new_branch("north"), by=olli)
    assert not storage.has_branch("north")
    staff.create_branch(new_branch("north"), by=mia)
    assert staff.branches(mia) == ["demo", "east", "north"]
    with pytest.raises(Rejected, match="exists already"):
        staff.create_branch(new_branch("north"), by=mia)
    with pytest.raises(Rejected, match="exists already"):
        staff.create_branch(new_branch("demo"), by=mia)
    assert storage.branch_settings("demo")[0]["name"] != "Demo"  # untouched
    # a kiosk can pair with it at once
    reply = storage.pair(storage.new_pairing_code("north"), "north door")
    assert reply.branch_id == "north"


def test_the_language_a_member_chose_is_kept(storage, people):
    staff, mia, _ = people
    staff.set_language(mia, "fi")
    assert member(staff, "mia").language == "fi"
    staff.set_language(mia, None)
    assert member(staff, "mia").language is None
    for hostile in ("de", "../../etc", "fi\n", ""):
        with pytest.raises(Rejected):
            staff.set_language(mia, hostile)


def test_the_command_line_grants_any_role_and_creates_branches(storage, database):
    def cli(*args: str, stdin: str = "") -> tuple[object, str, str]:
        return cli_in_process("--db", database, *args, stdin=stdin)

    status, out, err = cli(
        "branch-add",
        "south",
        "--name",
        "South",
        "--timezone",
        "Europe/Tallinn",
        "--languages",
        "et,en",
        "--ticket-url",
        "https://q.example/t/{token}",
    )
    assert status == 0, err
    assert out.startswith("branch south created: South, Europe/Tallinn")
    assert cli("branch-add", "south", "--name", "S", "--ticket-url", "https://x/{token}")[0] == 2
    for bad in ("Söder", "../x", "x" * 65, "a b"):
        status, _, err = cli("branch-add", bad, "--name", "S", "--ticket-url", "https://x/{token}")
        assert status == 2 and "branch id" in err, bad
    status, _, err = cli(
        "branch-add",
        "mars",
        "--name",
        "M",
        "--timezone",
        "Mars/Olympus",
        "--ticket-url",
        "https://x/{token}",
    )
    assert status == 2 and "timezone" in err
    status, out, err = cli(
        "staff",
        "--branch",
        "demo",
        "--username",
        "mia",
        "--counter",
        "1",
        "--role",
        "organisation",
        "--branches",
        "south",
        stdin=PASSWORD + "\n",
    )
    assert (status, out) == (0, "organisation mia at counter 1, also south\n"), err
    status, out, _ = cli("staff-list", "--branch", "demo")
    assert "organisation" in out and "also south" in out
    status, _, err = cli(
        "staff",
        "--branch",
        "demo",
        "--username",
        "olli",
        "--counter",
        "2",
        "--role",
        "manager",
        "--branches",
        "south",
        stdin=PASSWORD + "\n",
    )
    assert status == 2 and "further branches" in err
    status, out, err = cli(
        "branch-add",
        "north",
        "--name",
        "North",
        "--ticket-url",
        "https://x/{token}",
        "--grant",
        "mia",
    )
    assert status == 0 and "mia manages north too" in out, err
    staff = Staff(storage)
    assert staff.branches(member(staff, "mia")) == ["demo", "north", "south"]
    assert "north" in cli("branches")[1]
