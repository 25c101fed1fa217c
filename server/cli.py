"""``vuoro-server``: serve the API, and manage branches and kiosks from a shell."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import unicodedata
from pathlib import Path

from server import branch_file
from server.limits import Limits
from server.staff import ROLES
from server.storage import Rejected, Storage, migrate, transfer


def shown(text: object) -> str:
    """Stored text as a terminal may print it: control and format characters
    (and the backslash) escaped, so a kiosk's name or version cannot move the
    cursor, recolour the screen, retitle the window or reverse the line."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if _unsafe(ch) else ch for ch in str(text)
    )


def _unsafe(ch: str) -> bool:
    category = unicodedata.category(ch)
    return ch == "\\" or category[0] == "C" or category in ("Zl", "Zp")


#: ``serve`` options, each setting the :class:`Limits` field of its name.
LIMIT_OPTIONS = [
    (
        "--header-timeout",
        "head_timeout_s",
        float,
        "SECONDS",
        "close a connection whose request head is not in by then",
    ),
    ("--body-timeout", "body_timeout_s", float, "SECONDS", "answer 408 to a body not in by then"),
    (
        "--keep-alive-timeout",
        "keep_alive_s",
        int,
        "SECONDS",
        "close an idle connection between requests",
    ),
    (
        "--limit-concurrency",
        "concurrency",
        int,
        "N",
        "connections and requests at once; more get 503",
    ),
    ("--backlog", "backlog", int, "N", "connections the kernel queues before they are accepted"),
    ("--max-header-size", "max_head_bytes", int, "BYTES", "request line and headers together"),
    (
        "--max-streams",
        "max_streams",
        int,
        "N",
        "live pages (Server-Sent Events) per worker; more get 503 and poll",
    ),
]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vuoro-server", description="Vuoro's central queue server.")
    p.add_argument(
        "--db",
        default=os.environ.get("VUORO_DB", "var/server.db"),
        metavar="URL_OR_PATH",
        help="the database: postgresql://user@host/name, or an SQLite file's path "
        "(default: $VUORO_DB, else %(default)s)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the kiosk API and the ticket pages")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the socket, each with its own database connections; "
        "more than one wants PostgreSQL (default: %(default)s)",
    )
    limits = Limits()
    serve.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        metavar="ADDRESSES",
        help="proxies (comma-separated addresses or networks) whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; '' believes nobody (default: %(default)s)",
    )
    for option, field, kind, metavar, help_text in LIMIT_OPTIONS:
        serve.add_argument(
            option,
            dest=field,
            type=kind,
            default=getattr(limits, field),
            metavar=metavar,
            help=f"{help_text} (default: %(default)s)",
        )
    sub.add_parser(
        "migrate", help="bring the database's tables up to date (every command does, first)"
    )
    save = sub.add_parser(
        "backup", help="a consistent copy of the database while it serves (see README)"
    )
    save.add_argument("file", type=Path, help="the new backup file (never overwritten)")
    move = sub.add_parser(
        "copy-to", help="copy every row into another, empty database (an office to PostgreSQL)"
    )
    move.add_argument("target", metavar="URL", help="e.g. postgresql://vuoro@db.example/vuoro")
    branch = sub.add_parser(
        "branch", help="create or update a branch and its services from TOML, or export one"
    )
    which = branch.add_mutually_exclusive_group(required=True)
    which.add_argument("file", type=Path, nargs="?", help="branch TOML ([branch], [[services]])")
    which.add_argument("--export", metavar="BRANCH", help="print the branch as TOML")
    new_branch = sub.add_parser(
        "branch-add",
        help="create a new, empty branch (services from the management page or a branch file)",
    )
    new_branch.add_argument("id", help="a-z, 0-9, - or _ (cannot change later)")
    new_branch.add_argument("--name", required=True)
    new_branch.add_argument("--timezone", default="Europe/Helsinki", help="(default: %(default)s)")
    new_branch.add_argument(
        "--languages", default="fi,sv,en", metavar="LANG,LANG", help="(default: %(default)s)"
    )
    new_branch.add_argument(
        "--ticket-url",
        required=True,
        metavar="TEMPLATE",
        help="the public ticket page's address with {token}, e.g. https://q.example/t/{token}",
    )
    new_branch.add_argument(
        "--grant",
        metavar="USERNAME",
        help="an organisation manager who gets the branch among their further branches",
    )
    sub.add_parser("branches", help="every branch: id and name")
    listing = sub.add_parser("categories", help="the kiosk's service tree: categories")
    listing.add_argument("--branch", required=True)
    category = sub.add_parser(
        "category", help="add or change a category of the kiosk's service tree"
    )
    category.add_argument("--branch", required=True)
    category.add_argument("id", help="a-z, 0-9, - or _")
    category.add_argument(
        "--name", action="append", default=[], metavar="LANG=TEXT", help="repeatable: en=Payments"
    )
    category.add_argument("--parent", default="", help="the category it opens from (none: top)")
    category.add_argument("--position", type=int, default=0, help="0 to 999 (0: first)")
    uncategory = sub.add_parser(
        "category-remove", help="remove a category; what was in it moves up a level"
    )
    uncategory.add_argument("--branch", required=True)
    uncategory.add_argument("id")
    place = sub.add_parser(
        "service-place", help="put a service in a category and say where its customers go"
    )
    place.add_argument("--branch", required=True)
    place.add_argument("service")
    place.add_argument("--category", help='the category id ("" for the top level)')
    place.add_argument(
        "--location",
        action="append",
        metavar="LANG=TEXT",
        help='where to go, repeatable: "en=Room 204, 2nd floor"; "" alone removes it',
    )
    counter = sub.add_parser(
        "counter-location", help="where a counter is, said with its calls (none given: forget)"
    )
    counter.add_argument("--branch", required=True)
    counter.add_argument("counter")
    counter.add_argument("location", nargs="*", metavar="LANG=TEXT", help='e.g. "en=Room 204"')
    code = sub.add_parser("pair-code", help="a single-use pairing code for a new kiosk")
    code.add_argument("--branch", required=True)
    code.add_argument("--ttl", type=int, default=600, help="seconds the code stays valid")
    call = sub.add_parser("call-next", help="call the longest-waiting ticket to a counter")
    call.add_argument("--branch", required=True)
    call.add_argument("--counter", required=True, help="the counter's name or number")
    call.add_argument("--service", action="append", help="only these services (repeatable)")
    call.add_argument(
        "--finish",
        choices=("served", "no_show"),
        help="how the ticket still called at this counter ended (else it is refused)",
    )
    user = sub.add_parser(
        "staff", help="add a staff member (or change one): reads the password from standard input"
    )
    user.add_argument("--branch", required=True)
    user.add_argument("--username", required=True)
    user.add_argument("--counter", required=True)
    user.add_argument(
        "--service",
        action="append",
        default=[],
        help="services this counter calls (repeatable; none: all)",
    )
    user.add_argument(
        "--role",
        choices=ROLES,
        default="staff",
        help="managers edit the branch; organisation managers also the further --branches, "
        "read their reports and create branches",
    )
    user.add_argument(
        "--branches",
        default="",
        metavar="ID,ID",
        help="an organisation manager's further branches (comma-separated ids)",
    )
    members = sub.add_parser("staff-list", help="the branch's staff accounts")
    members.add_argument("--branch", required=True)
    unstaff = sub.add_parser("staff-remove", help="delete a staff account and its sessions")
    unstaff.add_argument("--branch", required=True)
    unstaff.add_argument("--username", required=True)
    command = sub.add_parser(
        "kiosk-command", help="tell a kiosk to restart its app, reboot or sync (next heartbeat)"
    )
    command.add_argument("kiosk_id")
    command.add_argument("kind", choices=("reload", "reboot", "sync_now"))
    rename = sub.add_parser("kiosk-rename", help="give a kiosk a name staff recognise")
    rename.add_argument("kiosk_id")
    rename.add_argument("name")
    kiosks = sub.add_parser("kiosks", help="the branch's kiosks: last seen, printer, outbox")
    kiosks.add_argument("--branch", required=True)
    stats = sub.add_parser("stats", help="a day's figures per service (JSON)")
    stats.add_argument("--branch", required=True)
    stats.add_argument("--day", help="YYYY-MM-DD (default: today in the branch)")
    revoke = sub.add_parser("revoke", help="revoke a kiosk's token")
    revoke.add_argument("kiosk_id")
    displays = sub.add_parser("displays", help="the branch's waiting-room displays")
    displays.add_argument("--branch", required=True)
    notes = sub.add_parser(
        "notifications",
        help='the branch\'s "your turn nears" messages, newest first: state, tries, last error',
    )
    notes.add_argument("--branch", required=True)
    unshow = sub.add_parser("display-revoke", help="revoke a display's token (it goes blank)")
    unshow.add_argument("display_id")
    message = sub.add_parser("display-message", help="the line the branch's displays show")
    message.add_argument("--branch", required=True)
    message.add_argument("text", help='the message ("" for none)')
    purge = sub.add_parser(
        "callbacks-purge",
        help="blank the phone number and reason of call-backs closed longer ago than the "
        "retention, now (the server does it by itself every ten minutes)",
    )
    purge.add_argument(
        "--days",
        type=int,
        help="closed more than this many days ago (default: each branch's retention_days, 30)",
    )
    purge.add_argument("--branch", help="only this branch (default: every branch)")
    return p


def _texts(pairs: list[str], what: str) -> dict[str, str]:
    """``LANG=TEXT`` arguments as a table; Rejected for any other shape."""
    texts = {}
    for pair in pairs:
        if pair == "":
            continue
        language, sep, text = pair.partition("=")
        if not sep or language not in branch_file.LANGUAGES:
            raise Rejected(
                f"{what}: {pair[:40]!r} is not LANG=TEXT with LANG one of "
                f"{', '.join(branch_file.LANGUAGES)}"
            )
        texts[language] = text
    return texts


def _tree(storage: Storage, args: argparse.Namespace) -> None:
    """The service-tree and where-to-go commands (Rejected says what is wrong)."""
    if args.command == "categories":
        branch, services = storage.branch_settings(args.branch)
        print(f"{'category':<20} {'inside':<20} {'position':>8} {'services':>8}  names")
        for c in branch["categories"]:
            count = sum(1 for s in services if s["category"] == c["id"])
            names = "; ".join(f"{k}={v}" for k, v in c["names"].items())
            print(
                f"{shown(c['id']):<20} {shown(c['parent'] or '-'):<20} {c['position']:>8} "
                f"{count:>8}  {shown(names)}"
            )
    elif args.command == "category":
        checked = branch_file.check_category(
            {
                "id": args.id,
                "name": _texts(args.name, "--name"),
                "position": args.position,
                "parent": args.parent or None,
            },
            "category",
        )
        storage.put_category(args.branch, checked)
        print(f"category {checked['id']} saved")
    elif args.command == "category-remove":
        if not storage.remove_category(args.branch, args.id):
            raise Rejected(f"no category {args.id!r} in {args.branch}")
        print(f"removed category {args.id}; what was in it moved up a level")
    elif args.command == "service-place":
        _, services = storage.branch_settings(args.branch)
        service = next((s for s in services if s["id"] == args.service), None)
        if service is None:
            raise Rejected(f"no service {args.service!r} in {args.branch}")
        if args.category is not None:
            category = args.category.strip() or None
            if category is not None and not branch_file.ID.match(category):
                raise Rejected("--category: a category id (a-z, 0-9, - or _)")
            service["category"] = category
        if args.location is not None:
            service["locations"] = branch_file.locations(
                _texts(args.location, "--location"), "--location"
            )
        storage.put_service(args.branch, service)
        where = "; ".join(f"{k}={v}" for k, v in service["locations"].items()) or "no place"
        inside = service["category"] or "the top level"
        print(f"service {args.service}: in {inside}, {shown(where)}")
    elif args.command == "counter-location":
        counter, locations = branch_file.check_counter(
            {"id": args.counter, "location": _texts(args.location, "location")}, "counter"
        )
        storage.set_counter_location(args.branch, counter, locations)
        where = "; ".join(f"{k}={v}" for k, v in locations.items()) or "no place"
        print(f"counter {shown(counter)}: {shown(where)}")


TREE_COMMANDS = ("categories", "category", "category-remove", "service-place", "counter-location")


def _branch_add(storage: Storage, args: argparse.Namespace) -> int:
    """``branch-add``: a new, empty branch; Rejected if its id is taken."""
    from server.staff import Staff

    branch_id = args.id
    if not branch_file.ID.fullmatch(branch_id):
        raise Rejected("a branch id is 1 to 64 of a-z, 0-9, - and _, starting with a-z or 0-9")
    branch = branch_file.check_branch(
        {
            "id": branch_id,
            "name": args.name,
            "timezone": args.timezone,
            "languages": [lang.strip() for lang in args.languages.split(",") if lang.strip()],
            "ticket_url_template": args.ticket_url,
        },
        "branch-add",
    )
    staff = Staff(storage)
    staff.create_branch(branch)
    print(f"branch {branch_id} created: {shown(branch['name'])}, {branch['timezone']}")
    if args.grant:
        staff.grant_branch(args.grant, branch_id)
        print(f"{args.grant} manages {branch_id} too")
    return 0


def _transfer(storage: Storage, args: argparse.Namespace) -> int:
    try:
        if args.command == "backup":
            transfer.backup(storage.database, args.file)
            print(f"{storage.database.describe()} saved in {args.file}")
            return 0
        target = Storage(args.target)
        counts = transfer.copy_database(storage.database, target.database)
    except (transfer.TransferError, ValueError) as exc:
        print(f"vuoro-server {args.command}: {exc}", file=sys.stderr)
        return 1
    print(f"copied to {target.database.describe()}:")
    for table, rows in counts.items():
        print(f"  {table:14} {rows:>9} rows")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        storage = Storage(args.db)
    except ValueError as exc:  # not a database URL we can use
        print(f"vuoro-server: --db: {exc}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        print(f"{storage.database.describe()}: at revision {migrate.revision(storage.database)}")
        return 0
    if args.command in ("backup", "copy-to"):
        return _transfer(storage, args)
    if args.command == "serve":
        from server.serving import Worker, serve

        if args.workers < 1:
            print("vuoro-server: --workers: at least 1", file=sys.stderr)
            return 2
        target = storage.target  # migrated above, once, before any worker starts
        storage.database.dispose()  # each worker opens its own engine
        return serve(
            Worker(target, body_timeout_s=args.body_timeout_s, max_streams=args.max_streams),
            host=args.host,
            port=args.port,
            workers=args.workers,
            limits=Limits(**{field: getattr(args, field) for _, field, *_ in LIMIT_OPTIONS}),
            forwarded_allow_ips=args.forwarded_allow_ips,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
        )
    try:
        if args.command == "branch" and args.export:
            print(branch_file.dump(*storage.branch_settings(args.export)), end="")
        elif args.command == "branch":
            branch, services = branch_file.load(args.file)
            storage.put_branch(branch, services)
            categories = len(branch["categories"])
            print(
                f"branch {branch['id']}: {len(services)} services"
                + (f", {categories} categories" if categories else "")
            )
        elif args.command == "branch-add":
            return _branch_add(storage, args)
        elif args.command == "branches":
            for ident, name in storage.branch_names().items():
                print(f"{ident:<24} {shown(name)}")
        elif args.command in TREE_COMMANDS:
            _tree(storage, args)
        elif args.command == "pair-code":
            print(storage.new_pairing_code(args.branch, args.ttl))
        elif args.command == "call-next":
            called = storage.call_next(args.branch, args.counter, args.service, args.finish or "")
            if called is None:
                print("nobody is waiting")
                return 1
            print(f"{shown(called['number'])} to counter {shown(called['counter'])}")
        elif args.command == "staff":
            from server.staff import Staff

            password = sys.stdin.readline().rstrip("\n")
            further = [b.strip() for b in args.branches.split(",") if b.strip()]
            name = Staff(storage).add(
                args.branch,
                args.username,
                password,
                args.counter,
                args.service,
                args.role,
                branches=further,
            )
            print(
                f"{args.role} {name} at counter {shown(args.counter)}"
                + (f", also {', '.join(further)}" if further else "")
            )
        elif args.command == "staff-list":
            from server.staff import Staff

            for m in Staff(storage).members(args.branch):
                services = ",".join(m["services"]) or "all"
                print(
                    f"{m['username']:<24} {m['role']:<8} counter {shown(m['counter']):<6} "
                    f"{shown(services)}"
                    + (f"  also {','.join(m['branches'])}" if m["branches"] else "")
                )
        elif args.command == "staff-remove":
            from server.staff import Staff

            if not Staff(storage).remove(args.branch, args.username):
                print(f"vuoro-server: no staff {args.username!r} in {args.branch}", file=sys.stderr)
                return 1
            print(f"removed {args.username}")
        elif args.command == "kiosk-command":
            if not storage.send_command(args.kiosk_id, args.kind):
                print(f"vuoro-server: no active kiosk {args.kiosk_id}", file=sys.stderr)
                return 1
            print(f"{args.kind} queued for {args.kiosk_id}")
        elif args.command == "kiosk-rename":
            if not storage.rename_kiosk(args.kiosk_id, args.name):
                print(f"vuoro-server: no kiosk {args.kiosk_id}", file=sys.stderr)
                return 1
            print(f"kiosk {shown(args.kiosk_id)} is now {shown(' '.join(args.name.split()))!r}")
        elif args.command == "kiosks":
            print(
                f"{'kiosk':<16} {'name':<24} {'tag':<4} {'last seen':<25} {'printer':<15} "
                f"{'outbox':>6} {'parked':>6}  version"
            )
            for k in storage.kiosks(args.branch):
                state = "REVOKED" if k["revoked"] else shown(k["printer"])
                name = shown(k["name"])
                name = name if len(name) <= 24 else name[:23] + "…"
                print(
                    f"{shown(k['id']):<16} {name:<24} {shown(k['reserve_tag']):<4} "
                    f"{shown(k['last_seen_at'] or 'never'):<25} {state:<15} "
                    f"{shown(k['outbox'] if k['outbox'] is not None else '-'):>6} "
                    f"{shown(k['parked'] if k['parked'] is not None else '-'):>6}  "
                    f"{shown(k['version'] or '-')}"
                )
        elif args.command == "stats":
            import json

            print(json.dumps(storage.daily_stats(args.branch, args.day), indent=2))
        elif args.command == "revoke":
            if not storage.revoke(args.kiosk_id):
                print(f"vuoro-server: no active kiosk {args.kiosk_id}", file=sys.stderr)
                return 1
            print(f"revoked {args.kiosk_id}")
        elif args.command == "displays":
            print(f"{'display':<16} {'name':<24} {'last seen':<25} speaks")
            for d in storage.displays(args.branch):
                seen = "REVOKED" if d["revoked"] else shown(d["last_seen_at"] or "never")
                name = shown(d["name"])
                name = name if len(name) <= 24 else name[:23] + "…"
                print(f"{shown(d['id']):<16} {name:<24} {seen:<25} {','.join(d['languages'])}")
        elif args.command == "notifications":
            print(
                f"{'queued at':<25} {'ticket':<8} {'kind':<5} {'via':<6} {'state':<8} tries  error"
            )
            for m in storage.notify_messages(args.branch):
                print(
                    f"{shown(m['created_at']):<25} {shown(m['ticket']):<8} {m['kind']:<5} "
                    f"{m['channel']:<6} {m['state']:<8} {m['tries']:>5}  {shown(m['last_error'])}"
                )
        elif args.command == "display-revoke":
            if not storage.revoke_display(args.display_id):
                print(f"vuoro-server: no active display {args.display_id}", file=sys.stderr)
                return 1
            print(f"revoked {args.display_id}")
        elif args.command == "callbacks-purge":
            blanked = storage.purge_callbacks(args.days, args.branch)
            print(f"{blanked} call-backs' phone numbers and reasons erased")
        elif args.command == "display-message":
            line = storage.set_display_message(args.branch, args.text)
            print(f"displays of {args.branch} show {shown(line)!r}" if line else "no message")
    except (Rejected, OSError) as exc:
        print(f"vuoro-server: {shown(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
