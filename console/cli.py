"""``stackdeck``: the console (no arguments) and its headless commands.

Every command that changes the stack runs through
:func:`console.core.ops.run_op`, the same engine the TUI's key bindings use:
same lock, same audit log, same events. Events are printed as they come,
one line each (``--json``: one JSON object per line).

Exit status and environment: :data:`EXIT_CODES` and :data:`ENVIRONMENT`,
printed by ``stackdeck --help`` and in the man page (``console/manpage.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["ENVIRONMENT", "EXIT_CODES", "build_parser", "main"]

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "success"),
    (1, "the operation failed; what was undone is in the output"),
    (2, "bad input, bad configuration or read-only mode; nothing was changed"),
    (3, "the deploy lock is held by someone else, or stale (stackdeck lock show)"),
    (130, "interrupted (Ctrl-C, or SIGHUP/SIGTERM); the operation undid itself"),
)
"""The exit codes of every command."""

ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("STACK_NAME", "the stack (compose project) to address; also read from .env"),
    ("HTTP_PORT", "nginx's port on 127.0.0.1; also read from .env"),
    (
        "DOCKER_HOST",
        "the engine; for a swarm stack a manager's (bash scripts/swarm.sh env)",
    ),
    (
        "STACKDECK_MODE",
        "auto (default), compose or swarm: which deploy, rollback and scale run",
    ),
    ("SWARM_REGISTRY_PORT", "the swarm's registry on 127.0.0.1 (versions a deploy lists)"),
    ("RUN_DIR", "the host folder with the stack's sockets (default /run/<stack>)"),
    (
        "STACKDECK_STATE_DIR",
        "deploy.env, lock, audit, history, backups (default /var/lib/stackdeck/<stack>)",
    ),
    ("IMAGE_PREFIX", "image names <prefix>-backend:<version>; also read from .env"),
    (
        "STACKDECK_CONFIG",
        "the TOML configuration file (default $XDG_CONFIG_HOME/stackdeck/config.toml)",
    ),
    ("STACKDECK_*", "any setting, e.g. STACKDECK_READ_ONLY=1, STACKDECK_REFRESH__STATS=2"),
    ("NO_COLOR", "no colours in the CLI's output"),
)
"""The environment the CLI reads (the settings' full list: docs/CONTRACT.md)."""


def _epilog() -> str:
    width = max(len(name) for name, _ in ENVIRONMENT)
    lines = ["exit status:"]
    lines += [f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES]
    lines += ["", "environment:"]
    lines += [f"  {name:<{width}}  {meaning}" for name, meaning in ENVIRONMENT]
    lines += ["", "man page: man .venv/share/man/man1/stackdeck.1 (from the checkout)"]
    return "\n".join(lines)


_SYMBOL = {"start": "…", "ok": "✓", "fail": "✗", "info": "·", "warn": "!", "done": "■"}
_COLOUR = {"ok": "32", "fail": "31", "warn": "33", "done": "1;32", "start": "36"}


class _Parser(argparse.ArgumentParser):
    """Bad usage exits 2 with one clear line (argparse's default, kept) and
    never prints secrets (there are none on the command line)."""


def build_parser() -> argparse.ArgumentParser:
    from console import __version__

    p = _Parser(
        prog="stackdeck",
        description="Operations console for the Investment Analysis Platform. Without a command: the TUI.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--version",
        action="version",
        version=f"stackdeck {__version__}",
        help="the console's own version (a deploy's version is: deploy --version TAG)",
    )
    _global_options(p, top=True)
    # The global options are accepted after the command too: the runbook's
    # wrapper scripts pass their arguments after it.
    common = _Parser(add_help=False)
    _global_options(common, top=False)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    _add = sub.add_parser

    def add_parser(name: str, **kw: Any) -> argparse.ArgumentParser:
        return _add(name, parents=[common], **kw)

    sub.add_parser = add_parser  # type: ignore[method-assign, assignment]

    # Every operation of the table, with the arguments of its parameter model.
    from console.core.ops.table import OPERATIONS

    groups: dict[str, Any] = {}
    for spec in OPERATIONS.values():
        if len(spec.cli) == 1:
            op_parser = sub.add_parser(spec.cli[0], help=spec.help)
        else:
            group, leaf = spec.cli
            if group not in groups:
                gp = sub.add_parser(group, help=_GROUP_HELP[group])
                groups[group] = gp.add_subparsers(
                    dest=f"{group}_command", metavar="ACTION", required=True
                )
            op_parser = groups[group].add_parser(leaf, parents=[common], help=spec.help)
        add_arguments(op_parser, spec.params)
        op_parser.set_defaults(op=spec.name)
        if spec.name == "backup":
            op_parser.add_argument("--list", action="store_true", help="list the backups instead")
    groups["lock"].add_parser("show", parents=[common], help="who holds the deploy lock")

    sc = sub.add_parser(
        "schedule", help="scheduled operations ([[schedule]] in the config): list | install | run"
    )
    sca = sc.add_subparsers(dest="schedule_command", metavar="ACTION")
    sca.add_parser("list", parents=[common], help="each entry: when, what, next and last run")
    sca.add_parser(
        "install", parents=[common], help="check the entries and write them to the host's cron"
    )
    run = sca.add_parser("run", parents=[common], help="run one entry now (what cron calls)")
    run.add_argument("name", help="the entry's name")

    h = sub.add_parser("history", help="deployment history")
    h.add_argument("-n", type=int, default=20)
    a = sub.add_parser("audit", help="audit log")
    a.add_argument("-n", type=int, default=50)
    return p


_GROUP_HELP = {
    "cache": "cache flush | warm",
    "lock": "lock show | lock break",
    "node": "node drain | activate (a swarm stack's nodes)",
    "silence": "silence add | expire | list (Alertmanager)",
}


def _scalar_type(annotation: Any) -> type | None:
    """``float`` for ``float`` / ``float | None`` (likewise ``int``); else None."""
    from typing import get_args

    kinds = {a for a in (get_args(annotation) or (annotation,)) if a is not type(None)}
    if kinds == {float}:
        return float
    if kinds == {int}:
        return int
    return None


def add_arguments(parser: argparse.ArgumentParser, model: Any) -> None:
    """The command-line arguments of an operation's parameter model: one per
    field (``--field-name``; a bool is a flag; a ``Literal`` gives choices),
    shaped by the field's :class:`~console.core.ops.table.Arg`."""
    from console.core.ops.table import arg_of, literal_choices

    for name, info in model.model_fields.items():
        arg = arg_of(model, name)
        if not arg.cli:
            continue
        kw: dict[str, Any] = {}
        if info.description:
            kw["help"] = info.description
        if arg.metavar:
            kw["metavar"] = arg.metavar
        required = info.is_required() if arg.required is None else arg.required
        if arg.positional:
            if arg.nargs:
                kw["nargs"] = arg.nargs
            elif not required:
                kw["nargs"] = "?"
            parser.add_argument(name, **kw)
            continue
        flag = arg.flag or "--" + name.replace("_", "-")
        if info.annotation is bool:
            kw["action"] = "store_false" if arg.negate else "store_true"
        else:
            choices = literal_choices(info.annotation)
            if choices:
                kw["choices"] = list(choices)
            scalar = _scalar_type(info.annotation)
            if scalar is not None:
                kw["type"] = scalar
            if required:
                kw["required"] = True
            elif info.default is not None:
                kw["default"] = info.default
        parser.add_argument(flag, dest=name, **kw)


def params_from_args(args: argparse.Namespace, model: Any) -> dict[str, Any]:
    """The values of the model's fields that the command line gave."""
    from console.core.ops.table import arg_of

    return {
        name: getattr(args, name)
        for name in model.model_fields
        if arg_of(model, name).cli and hasattr(args, name)
    }


def _global_options(p: argparse.ArgumentParser, *, top: bool) -> None:
    """On the top parser with real defaults; on each command with SUPPRESS,
    so a value given before the command is not reset by the command."""

    def d(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    p.add_argument(
        "--read-only",
        action="store_true",
        default=d(False),
        help="refuse every operation that changes the stack",
    )
    p.add_argument(
        "--json",
        action="store_true",
        default=d(False),
        help="one JSON object per line instead of text",
    )
    p.add_argument(
        "--stack",
        metavar="NAME",
        default=d(None),
        help="compose project / stack name (default: STACK_NAME, .env, investment)",
    )
    p.add_argument(
        "--http-port",
        type=int,
        metavar="PORT",
        default=d(None),
        help="nginx port on 127.0.0.1 (default: HTTP_PORT)",
    )
    p.add_argument(
        "--repo",
        type=Path,
        metavar="PATH",
        default=d(None),
        help="repository root of the bundled stack",
    )


# --- output -------------------------------------------------------------------------


class Printer:
    def __init__(self, as_json: bool, stream: Any = None):
        self.as_json = as_json
        self.stream = stream or sys.stdout
        self.colour = not as_json and self.stream.isatty() and not os.environ.get("NO_COLOR")

    def event(self, event: Any) -> None:
        if self.as_json:
            self.stream.write(event.model_dump_json() + "\n")
        else:
            sym = _SYMBOL.get(event.status, "?")
            at = event.at.astimezone().strftime("%H:%M:%S")
            head = f"{at} {sym} {event.step:<14}"
            if self.colour and event.status in _COLOUR:
                head = f"\x1b[{_COLOUR[event.status]}m{head}\x1b[0m"
            self.stream.write(f"{head} {event.message}\n")
        self.stream.flush()

    def obj(self, value: Any) -> None:
        self.stream.write(json.dumps(value, default=str, sort_keys=True) + "\n")
        self.stream.flush()


# --- context --------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Any:
    """The console's settings for these arguments: the one resolution of the
    stack (environment, then ``.env``, then the defaults of
    ``console/core/stack.facts``). The TUI needs nothing more: the ops package is imported only by commands
    (it is 0.6 s of imports, the start-up's largest part)."""
    from console.core.errors import StackdeckError

    overrides: dict[str, Any] = {}
    try:
        from console.core.config import Settings, find_repo_root, read_env_file
        from console.core.stack import DEFAULT_STACK, StackNames

        repo = args.repo or find_repo_root() or Path.cwd()
        if args.stack:
            overrides["project"] = args.stack
            env_stack = (
                os.environ.get("STACK_NAME")
                or read_env_file(Path(repo) / ".env").get("STACK_NAME")
                or DEFAULT_STACK
            )
            if args.stack != env_stack:
                # another stack than the environment's: none of its folders or its port
                from console.core.ops.context import discover_http_port

                names = StackNames(args.stack)
                overrides["run_dir"] = str(names.run_dir)
                overrides["state_dir"] = str(names.state_dir)
                port = args.http_port or discover_http_port(args.stack)
                if port:
                    overrides["base_url"] = f"http://127.0.0.1:{port}"
        if args.http_port:
            overrides["base_url"] = f"http://127.0.0.1:{args.http_port}"
        return Settings.for_stack(repo, **overrides)
    except StackdeckError as exc:
        raise SystemExit(_die(str(exc), 2)) from None


def _context(args: argparse.Namespace, settings: Any) -> Any:
    """The ops engine's context for a command."""
    from console.core.errors import StackdeckError
    from console.core.ops.context import OpContext, Operator

    try:
        return OpContext.from_settings(
            settings, read_only=args.read_only, operator=Operator.current(via="cli")
        )
    except StackdeckError as exc:
        raise SystemExit(_die(str(exc), 2)) from None


def _die(message: str, code: int) -> int:
    sys.stderr.write(f"stackdeck: error: {message}\n")
    return code


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _confirmations(
    args: argparse.Namespace, ctx: Any, name: str, params: dict[str, Any]
) -> int | None:
    """Prompts on a terminal (never in scripts): the runbook's rollback
    confirmation and the typed names the parameters ask for. Returns an exit
    code to stop with."""
    from console.core.ops.errors import BadInput
    from console.core.ops.table import OPERATIONS, parse_params

    if not _interactive() or args.json or ctx.read_only:
        return None
    if name == "rollback" and not args.force:
        answer = input("Roll back the serving version? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            return _die("rollback not confirmed; nothing was changed", 2)
    if name == "node-drain" and not args.force:
        from console.core.ops.engine import validate_op
        from console.core.ops.errors import OpError

        try:
            # an unknown node, or one that may not be drained, is refused
            # (by the run below, audited) without asking first
            checked = asyncio.run(validate_op(name, ctx, params))
        except OpError:
            return None
        node = getattr(checked, "node", params.get("node"))
        answer = (
            input(f"Drain {node}: every task on it moves to other nodes? [y/N] ").strip().lower()
        )
        if answer not in ("y", "yes"):
            return _die("drain not confirmed; nothing was changed", 2)
    try:
        target = parse_params(OPERATIONS[name], params).typed_confirmation()
    except BadInput:
        return None  # the engine refuses it with the field named
    if target == "database" and not params.get("confirm"):
        params["confirm"] = input(
            f"This replaces every row of {ctx.db_name}. Type the database name to confirm: "
        ).strip()
    elif target == "redis" and not params.get("confirm"):
        params["confirm"] = input(
            f"FLUSHDB deletes every key (quota counters are kept). "
            f"Type {ctx.container('redis')} to confirm: "
        ).strip()
    return None


async def _run(name: str, ctx: Any, params: dict[str, Any], printer: Printer) -> int:
    from console.core.ops import result_code, run_op
    from console.core.ops.errors import exit_code

    code: str | None = "failed"
    final_message = ""
    async for event in run_op(name, ctx, **params):
        printer.event(event)
        if event.status == "done":
            code = None
        elif event.status == "fail" and event.step == "result":
            code = result_code(event)
            final_message = event.message
    if code is not None and not printer.as_json:
        sys.stderr.write(f"stackdeck {name}: {final_message}\n")
    return exit_code(code)


async def _main_async(coro: Any) -> int:
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            loop.add_signal_handler(sig, task.cancel)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        return int(await task)
    except asyncio.CancelledError:
        sys.stderr.write("stackdeck: interrupted; `stackdeck status` shows what is left\n")
        return 130


def _show_lock(ctx: Any, printer: Printer) -> int:
    from console.core.ops.lock import lock_state

    state = lock_state(ctx.lock_path).as_dict()
    if printer.as_json:
        printer.obj(state)
    elif state["held"]:
        print(f"held: {state['description']}")
    elif state["stale"]:
        print(
            f"STALE: {state['description']}; its process is gone. `stackdeck lock break` clears it"
        )
    else:
        print("free")
    return 0


def _show_records(path: Path, n: int, printer: Printer, kind: str) -> int:
    from console.core.ops.audit import read_jsonl

    records = read_jsonl(path, n)
    if printer.as_json:
        for rec in records:
            printer.obj(rec)
        return 0
    if not records:
        print(f"no {kind} yet ({path})")
    for rec in records:
        if kind == "history":
            print(
                f"{str(rec.get('finished') or rec.get('started'))[:19]}  {rec.get('op'):<8} {rec.get('version') or '-':<14} "
                f"{rec.get('from_colour') or '-'}->{rec.get('colour') or '-':<6} {rec.get('result'):<12} "
                f"{rec.get('duration_s') or '':>6}s  {rec.get('user')}"
                + (f"  backup {rec['backup_id']}" if rec.get("backup_id") else "")
                + (f"  ({rec['reason']})" if rec.get("reason") else "")
            )
        else:
            print(
                f"{str(rec.get('at'))[:19]}  {rec.get('event'):<7} {rec.get('op'):<16} {rec.get('result') or '':<10} "
                f"{rec.get('user')}@{rec.get('ssh_client') or 'local'}  {json.dumps(rec.get('params'), sort_keys=True)[:100]}"
                + (f"  {rec['message'][:120]}" if rec.get("message") else "")
            )
    return 0


def _list_backups(ctx: Any, printer: Printer) -> int:
    from console.core.ops.backup import list_backups

    for b in list_backups(ctx):
        if printer.as_json:
            printer.obj({**b.meta, "path": str(b.path)})
        else:
            print(
                f"{b.id}  {b.meta.get('size', 0) / 1e6:8.1f} MB  schema {b.meta.get('schema_revision')}  {b.meta.get('reason')}  {b.path}"
            )
    return 0


def _since_deploy(settings: Any, args: argparse.Namespace, printer: Printer) -> int:
    """``stackdeck since-deploy``: read-only, one table (``--json``: one object)."""
    from console.core.ops.errors import BadInput
    from console.core.ops.table import OPERATIONS, parse_params
    from console.core.since import format_since, since_deploy

    try:
        params = parse_params(
            OPERATIONS["since-deploy"], params_from_args(args, OPERATIONS["since-deploy"].params)
        )
    except BadInput as exc:
        return _die(str(exc), 2)
    snap = asyncio.run(
        since_deploy(
            settings,
            window_max=params.window,  # type: ignore[attr-defined]
            min_ratio=params.min_ratio,  # type: ignore[attr-defined]
            min_calls=params.min_calls,  # type: ignore[attr-defined]
        )
    )
    if printer.as_json:
        printer.stream.write(snap.model_dump_json() + "\n")
    else:
        print(format_since(snap))
    return 0


def _schedule(settings: Any, ctx: Any, args: argparse.Namespace, printer: Printer) -> int:
    """``stackdeck schedule [list | install | run NAME]``."""
    from console.core.ops.errors import BadInput, exit_code
    from console.core.ops.schedule import install_schedule, run_entry, schedule_rows

    action = args.schedule_command or "list"
    try:
        if action == "install":
            report = asyncio.run(install_schedule(ctx, settings))
            if printer.as_json:
                printer.obj({**report.__dict__, "path": str(report.path)})
            elif report.removed:
                print(f"nothing enabled in the schedule: {report.path} removed")
            else:
                print(f"installed {', '.join(report.entries)} in {report.path}")
            if report.entries and not report.cron_running:
                sys.stderr.write(
                    "stackdeck: warning: no cron daemon runs on this host, so nothing will fire; "
                    "bash scripts/schedule.sh starts it\n"
                )
            return 0
        if action == "run":
            started = datetime.now(UTC).isoformat(timespec="seconds")
            entry = next((e for e in settings.schedule if e.name == args.name), None)
            if not printer.as_json and entry is not None:
                print(f"{started} schedule {args.name}: scale {entry.scale}", flush=True)
            code, run = asyncio.run(run_entry(settings, args.name, printer.event))
            if code is not None and not printer.as_json:
                sys.stderr.write(
                    f"stackdeck schedule run {args.name}: {run.result}: {run.message}\n"
                )
            return exit_code(code)
    except BadInput as exc:
        return _die(str(exc), 2)
    except OSError as exc:
        # /etc/cron.d or the state folder not writable by this user
        where = f" {exc.filename}" if exc.filename else ""
        return _die(
            f"schedule {action}: cannot write{where}: {exc.strerror or exc} "
            "(the schedule is installed and run as root: sudo stackdeck schedule ...)",
            2,
        )
    rows = schedule_rows(settings)
    if printer.as_json:
        for row in rows:
            printer.obj(row)
        return 0
    if not rows:
        print(
            "nothing scheduled: add [[schedule]] tables to the configuration (see README, Scheduled operations)"
        )
    for row in rows:
        last = row["last_run"]
        state = "" if row["enabled"] else " (disabled)"
        if row["enabled"] and not row["installed"]:
            state = " (not installed: stackdeck schedule install)"
        print(
            f"{row['name']:<14} {row['scale']:<12} {row['cron']:<16} {row['when']}{state}\n"
            f"{'':<14} next {str(row['next_run'] or '-')[:16].replace('T', ' ')}"
            + (
                f"  last {last['at'][:16].replace('T', ' ')} {last['result']}"
                + (f": {last['message'][:80]}" if last["message"] else "")
                if last
                else "  never run"
            )
        )
    return 0


_tui_left_with: int | None = None
"""The TUI's exit status once it has quit normally (see :func:`_leave_at_exit`)."""


def _leave_at_exit() -> None:
    """At exit, after a normal quit of the TUI: end the process without
    tearing the interpreter down.

    Python's own exit frees the whole heap object by object (Textual's DOM,
    the snapshots, every imported module): 0.1-0.3 s of CPU, which a busy
    host stretches further, while the operator waits for the prompt
    (issue 16: leaving is never slower than 0.5 s). By the time this runs
    the terminal is restored, the sources are closed, the non-daemon threads
    (an operation's notice) have been joined and the exit handlers
    registered while the TUI ran have run (this one was registered before
    them, so it runs after them); the log is flushed here. After an error
    or Ctrl-C the normal exit happens, traceback included."""
    code = _tui_left_with
    if code is None:
        return
    _end_process(code)


def _end_process(code: int) -> NoReturn:
    """Flush the log and the streams, then end the process at once."""
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _tui(settings: Any, args: argparse.Namespace) -> int:
    global _tui_left_with
    if args.read_only and not getattr(settings, "read_only", False):
        settings = settings.model_copy(update={"read_only": True})
    import atexit

    from console.ui.app import create_app

    atexit.register(_leave_at_exit)
    app = create_app(settings, leave=_end_process)
    app.run()
    _tui_left_with = int(getattr(app, "return_code", 0) or 0)
    return _tui_left_with


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `stackdeck status | head`: the reader left; not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    as_json = bool(args.json)
    printer = Printer(as_json)
    settings = _settings(args)
    if args.command is None:
        return _tui(settings, args)
    ctx = _context(args, settings)
    if args.command == "status":
        from console.core.ops.status import collect_status, format_status

        status = asyncio.run(collect_status(ctx))
        if as_json:
            printer.obj(status)
        else:
            print(format_status(status))
        return 0
    if args.command == "since-deploy":
        return _since_deploy(settings, args, printer)
    if args.command == "lock" and args.lock_command == "show":
        return _show_lock(ctx, printer)
    if args.command == "schedule":
        return _schedule(settings, ctx, args, printer)
    if args.command == "history":
        return _show_records(ctx.history_path, args.n, printer, "history")
    if args.command == "audit":
        return _show_records(ctx.audit_path, args.n, printer, "audit")
    if args.command == "backup" and args.list:
        return _list_backups(ctx, printer)

    from console.core.ops.table import OPERATIONS

    name = args.op
    params = params_from_args(args, OPERATIONS[name].params)
    stop = _confirmations(args, ctx, name, params)
    if stop is not None:
        return stop
    try:
        return asyncio.run(_main_async(_run(name, ctx, params, printer)))
    except KeyboardInterrupt:
        sys.stderr.write("stackdeck: interrupted; `stackdeck status` shows what is left\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
