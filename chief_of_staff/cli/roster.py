"""The roster on the command line, the verified channel: agencies (list, show, set, pause, resume, retire,
reactivate) and their roles (list, set)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from chief_of_staff.cli.support import Add, add_nested, workspace_command
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput, NotFound
from chief_of_staff.core.fields import checked_text
from chief_of_staff.domain import agencies


def agency_line(view: agencies.AgencyView) -> str:
    """One agency as a terminal shows it: id, name, status (and who paused it), roles."""
    state: str = view.status
    if view.status == "paused":
        state += f" by {'the operator' if view.paused_by == 'verified' else view.paused_by} at {view.paused_at}"
        state += f': "{view.pause_note}"' if view.pause_note else ""
    roles = ", ".join(f"{role.name} ({role.id}{'' if role.status == 'active' else ', retired'})" for role in view.roles)
    return f"{view.id} {view.name} [{state}]  roles: {roles or 'none'}"


@workspace_command
async def cmd_agency_list(args: argparse.Namespace, store: Store) -> int:
    async with store.read() as tx:
        found = (await agencies.roster(tx)).agencies
    if not found:
        print(
            "No agencies yet. Stand one up from a blueprint (`chief-of-staff init --blueprint outbound`) or "
            f"by hand (`{agencies.CREATE_HINT}`)."
        )
    for view in found:
        print(agency_line(view))
    return 0


@workspace_command
async def cmd_agency_show(args: argparse.Namespace, store: Store) -> int:
    async with store.read() as tx:
        view = await agencies.get_agency(tx, args.agency)
        lessons = await agencies.playbook(tx, args.agency, limit=args.lessons)
    print(agency_line(view))
    print(f"  purpose: {view.purpose}")
    if view.operating_spec:
        print("  operating spec:")
        for line in view.operating_spec.splitlines():
            print(f"    {line}")
    for role in view.roles:
        print(f"  role {role.name} ({role.id}, {role.status}): {role.charter}")
    print(f"  playbook ({view.playbook_size} lessons, newest first):")
    for lesson in lessons:
        print(f"    {lesson.id} {lesson.kind}: {lesson.text}")
    return 0


def _spec(args: argparse.Namespace) -> str | None:
    if args.operating_spec_file is None:
        return None
    try:
        return Path(args.operating_spec_file).read_text("utf-8")
    except OSError as exc:
        raise InvalidInput(f"--operating-spec-file: cannot read {args.operating_spec_file}: {exc.strerror}.") from None


@workspace_command
async def cmd_agency_set(args: argparse.Namespace, store: Store) -> int:
    spec = _spec(args)
    async with store.write() as tx:
        try:
            await agencies.resolve_agency(tx, args.name, field="name")
        except NotFound:
            if args.purpose is None:
                raise InvalidInput(f"--purpose: {args.name!r} is a new agency; say what it is for.") from None
            view = await agencies.create_agency(
                tx, OPERATOR_CLI, name=args.name, purpose=args.purpose, operating_spec=spec or ""
            )
            print(f"Created {agency_line(view)}")
            return 0
        view = await agencies.update_agency(tx, OPERATOR_CLI, args.name, purpose=args.purpose, operating_spec=spec)
    print(f"Changed {agency_line(view)}")
    return 0


@workspace_command
async def cmd_agency_pause(args: argparse.Namespace, store: Store) -> int:
    note = checked_text(args.note, "--note", agencies.MAX_PAUSE_NOTE)
    async with store.write() as tx:
        view = await agencies.pause_agency(tx, OPERATOR_CLI, args.agency, note=note)
    print(f"{agency_line(view)}\nNothing is claimed or allowed for it until `{agencies.resume_command(view.name)}`.")
    return 0


@workspace_command
async def cmd_agency_resume(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        view = await agencies.resume_agency(tx, OPERATOR_CLI, args.agency)
    print(agency_line(view))
    return 0


def _set_status(status: str) -> Callable[[argparse.Namespace], int]:
    @workspace_command
    async def command(args: argparse.Namespace, store: Store) -> int:
        async with store.write() as tx:
            view = await agencies.update_agency(tx, OPERATOR_CLI, args.agency, status=status)
        print(agency_line(view))
        return 0

    return command


@workspace_command
async def cmd_role_list(args: argparse.Namespace, store: Store) -> int:
    async with store.read() as tx:
        found = (await agencies.roster(tx)).agencies
        wanted = None if args.agency is None else (await agencies.resolve_agency(tx, args.agency))["name"]
    for view in found:
        if wanted is None or view.name == wanted:
            for role in view.roles:
                print(f"{role.id} {view.name}/{role.name} [{role.status}]: {role.charter}")
    return 0


@workspace_command
async def cmd_role_set(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        role = await agencies.set_role(
            tx, OPERATOR_CLI, agency=args.agency, name=args.name, charter=args.charter, status=args.status
        )
    print(f"{role.id} {role.agency}/{role.name} [{role.status}]: {role.charter}")
    return 0


def register(add: Add) -> None:
    agency = add("agency", cmd_agency_list, "Agencies: list, show, set, pause, resume, retire, reactivate.")
    commands = agency.add_subparsers(
        dest="agency_command",
        required=True,
        metavar="ACTION",
        help="list, show, set, pause, resume, retire or reactivate",
    )
    add_nested(commands, "list", cmd_agency_list, "List the agencies with their status and roles.")
    show = add_nested(commands, "show", cmd_agency_show, "One agency: purpose, operating spec, roles, playbook.")
    show.add_argument("agency", help="agency name or id, e.g. Outbound or A1")
    show.add_argument("--lessons", type=int, default=10, help="how many playbook lessons to show (default 10)")
    create = add_nested(commands, "set", cmd_agency_set, "Create an agency, or change its purpose or operating spec.")
    create.add_argument("name", help="agency name (a new name creates it), e.g. Outbound")
    create.add_argument("--purpose", help="what it is for (needed to create one)")
    create.add_argument("--operating-spec-file", metavar="FILE", help="a text file with the spec its agents follow")
    pause = add_nested(
        commands, "pause", cmd_agency_pause, "Pause an agency: nothing is claimed or allowed for it until resumed."
    )
    pause.add_argument("agency", help="agency name or id")
    pause.add_argument("--note", default="", help="why, for the record (the agency reads it)")
    resume = add_nested(commands, "resume", cmd_agency_resume, "Lift an agency's pause, whoever made it.")
    resume.add_argument("agency", help="agency name or id")
    for name, status, text in (
        ("retire", "retired", "Retire an agency: it takes no new work and nothing is allowed for it."),
        ("reactivate", "active", "Bring a retired agency back, with every grant it held."),
    ):
        sub = add_nested(commands, name, _set_status(status), text)
        sub.add_argument("agency", help="agency name or id")

    role = add("role", cmd_role_list, "Roles (agent seats) in an agency: list, set.")
    role_commands = role.add_subparsers(dest="role_command", required=True, metavar="ACTION", help="list or set")
    listing = add_nested(role_commands, "list", cmd_role_list, "List roles, of every agency or one.")
    listing.add_argument("--agency", help="only this agency's roles")
    setting = add_nested(role_commands, "set", cmd_role_set, "Create a role, or change its charter or status.")
    setting.add_argument("--agency", required=True, help="the agency it belongs to, by name or id")
    setting.add_argument("--name", required=True, help="role name (a new name creates it), e.g. SDR")
    setting.add_argument("--charter", help="what the seat does and how (needed to create one)")
    setting.add_argument("--status", choices=["active", "retired"], help="retire a role, or bring it back")
