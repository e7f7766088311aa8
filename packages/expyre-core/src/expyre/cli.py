"""``xpr``: the command line for the jobs database, the configured systems and the plugins."""
from __future__ import annotations

import functools
import json
import pickle
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional

import click

from . import config, jobfiles, jobstate, listing, plugins
from .listing import format_table

SELECTION_HELP = {
    "id": "comma-separated regexps, each matching a whole job id",
    "name": "comma-separated regexps, each matching a whole job name",
    "status": "comma-separated statuses or groups (ongoing, can_produce_results); '*' for all",
    "system": "comma-separated regexps, each matching a whole system name",
}


def selection_options(status_default: Optional[str] = None):
    """The -i/-n/-s/-S options that select jobs, shared by the commands that act on jobs."""
    def decorate(command):
        for long_name, short in (("system", "-S"), ("status", "-s"), ("name", "-n"), ("id", "-i")):
            help_text = SELECTION_HELP[long_name]
            default = status_default if long_name == "status" else None
            if default:
                help_text += f" [default: {default}]"
            command = click.option(f"--{long_name}", short, default=default, help=help_text)(command)
        return command
    return decorate


def domain_errors(command):
    """Turn expyre's own errors into one clear click error instead of a traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (config.ConfigError, plugins.PluginNotFoundError, ValueError, RuntimeError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc
    return wrapper


def _split(value: Optional[str]) -> Optional[List[str]]:
    if value is None or value.strip() == "*":
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def select_jobs(id=None, name=None, status=None, system=None, readable=True) -> List[dict]:
    """Jobs-database rows matching the selection options. An ``id`` regexp that matches an
    array's name (``<first task's id>_array``, as ``xpr ls`` shows it) selects all its tasks."""
    ids = _split(id)
    rows = list(config.db.jobs(id=ids, name=_split(name), status=_split(status), system=_split(system),
                               readable=readable))
    if ids:
        chosen = {row["id"] for row in rows}
        patterns = [re.compile(f"^{regexp}$") for regexp in ids]
        for row in config.db.jobs(name=_split(name), status=_split(status), system=_split(system), readable=readable):
            array = _array_of(row)
            if row["id"] not in chosen and array and any(p.search(array) for p in patterns):
                rows.append(row)
    return rows


def _array_of(row: dict) -> Optional[str]:
    """The name of the array job ``row`` is a task of, or None."""
    from .arrays import read_task_marker
    try:
        marker = read_task_marker(Path(row["from_dir"])) if row.get("from_dir") else None
    except (ValueError, OSError):
        return None
    return marker.array_id if marker is not None and row.get("remote_id") else None


def _require_selection(ctx, **selection) -> None:
    if all(v is None for v in selection.values()):
        raise click.UsageError("at least one of -i, -n, -s, -S is required (use -s '*' for all jobs)", ctx)


def _confirm(prompt: str, yes: bool) -> bool:
    """Ask ``prompt`` once; refuse with a sentence (not a bare error) when nobody can answer."""
    if yes:
        return True
    try:
        return click.confirm(prompt, default=False)
    except click.Abort:
        click.echo()  # end the prompt's line
        raise click.ClickException(
            "no answer to the confirmation question (standard input is closed); "
            "pass -y to go ahead without asking") from None


def _describe_selection(jobs: List[dict]) -> str:
    """``3 jobs (2 on cluster, 1 on local)``: how many jobs a command acts on, and where."""
    counts: Dict[str, int] = {}
    for job in jobs:
        where = job.get("system") or "no system"
        counts[where] = counts.get(where, 0) + 1
    places = ", ".join(f"{n} on {where}" for where, n in sorted(counts.items()))
    return f"{len(jobs)} job{'s' if len(jobs) != 1 else ''} ({places})"


def foreign_expyre_warning() -> Optional[str]:
    """A warning when the unrelated PyPI distribution named ``expyre`` is installed here too.

    That project (a wrapper over ``atd``) also ships a top-level ``expyre`` module, so
    installing it next to expyre-core overwrites or shadows our files.
    """
    from importlib.metadata import PackageNotFoundError, distribution
    try:
        foreign = distribution("expyre")
    except PackageNotFoundError:
        return None
    return (f"the distribution 'expyre' {foreign.version} is installed in this environment: it is an "
            "unrelated PyPI project (not part of expyre-core) that also ships a top-level 'expyre' "
            "module and can overwrite this one. Remove it with 'pip uninstall expyre', then reinstall "
            "expyre-core from the checkout: pip install --force-reinstall ./packages/expyre-core")


def _print_version(ctx, _param, value) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(version_text())
    ctx.exit()


def version_text() -> str:
    """expyre-core's version, then each plugin distribution's version and what it provides."""
    from . import __version__
    lines = [f"expyre-core {__version__}"]
    by_distribution: Dict[tuple, List[str]] = {}
    for info in plugins.list_plugins():
        if info.distribution == "expyre-core":
            continue
        provides = [f"scheduler {n}" for n in info.schedulers] + [f"transport {n}" for n in info.transports]
        by_distribution.setdefault((info.distribution, info.version), []).extend(provides)
    for (distribution, version), provides in by_distribution.items():
        lines.append(f"{distribution} {version or '(no version)'}: "
                     f"{', '.join(provides) or 'no schedulers or transports'}")
    warning = foreign_expyre_warning()
    if warning:
        lines.append(f"WARNING: {warning}")
    return "\n".join(lines)


@click.group("xpr", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="print the versions of expyre-core and of each installed plugin, and exit")
@click.option("--dbfile", type=click.Path(dir_okay=False, path_type=Path),
              help="jobs database file to use instead of the configured one")
@click.pass_context
def cli(ctx, dbfile):
    """Manage expyre jobs, systems and plugins."""
    ctx.ensure_object(dict)
    ctx.obj["dbfile"] = dbfile
    if dbfile is not None:
        from .jobsdb import JobsDB
        try:
            config.init()
        except config.ConfigError as exc:
            raise click.ClickException(str(exc)) from exc
        config.db = JobsDB(dbfile)


# --------------------------------------------------------------------------- ls

@cli.command("ls")
@selection_options()
@click.option("--long-output", "-l", is_flag=True,
              help="full ids, names, creation times and stage directories, and a row for each task of an array")
@click.option("--width", "-w", type=click.IntRange(min=0), metavar="COLS",
              help="fit the rows in COLS columns: the id shortened to what is left, times of day or dates, "
                   "the scheduler state only where it adds to the status. 0: full rows (the full time, "
                   "every field), one line per job, for scripts to read. Not used with -l or JSON. "
                   "[default: the width of the terminal when the output is one, else 0]")
@click.option("--json", "as_json", is_flag=True, help="print the jobs' database rows as a JSON list")
@domain_errors
def cli_ls(id, name, status, system, long_output, width, as_json):
    """List jobs (all jobs unless selected).

    The tasks of an array job are one row, with how many tasks are in each status (``-l``: a row
    for each task, naming its array). ``-i ARRAY`` selects an array's tasks, in this and the
    other commands.

    On a terminal the rows fit its width; piped, each job's row is whole (see ``-w``). In narrow
    rows an array's counts may be the progress line's totals: ``q3 r2 d10 f1`` for 3 queued,
    2 running, 10 done (succeeded, processed or cleaned) and 1 failed (failed or died)."""
    if width is None:
        width = _terminal_width() if sys.stdout.isatty() else 0
    fitted = width > 0 and not long_output and not as_json
    jobs = select_jobs(id, name, status, system, readable=not fitted)
    if as_json:
        click.echo(json.dumps(jobs, indent=1, default=str))
        return
    if not jobs:
        click.echo(f"No matching jobs in {config.db.db_filename}")
        return
    rows = []
    arrays: Dict[str, List[dict]] = {}
    for job in jobs:
        array = _array_of(job)
        if array is not None and not long_output:
            if array not in arrays:
                rows.append(array)  # the array's row goes where its first listed task is
            arrays.setdefault(array, []).append(job)
        else:
            rows.append(job)
    if fitted:
        click.echo(listing.fitted_table([(item, arrays[item]) if isinstance(item, str) else item for item in rows],
                                        width))
        return
    if long_output:
        headers = ["#", "name", "id", "created", "status (since)", "remote_id@system", "remote status", "stage dir",
                   "array"]
    else:
        headers = listing.full_headers()
    lines = []
    for i, item in enumerate(rows):
        if isinstance(item, str):
            lines.append([str(i), *listing.full_array_row(item, arrays[item])])
        elif long_output:
            job = item
            lines.append([str(i), job["name"], job["id"], str(job["creation_time"]),
                          f"{job['status']} ({job['status_time'] or job['creation_time']})",
                          f"{job['remote_id'] or '-'}@{job['system'] or '-'}", str(job["remote_status"] or "-"),
                          job["from_dir"], _array_of(job) or "-"])
        else:
            lines.append([str(i), *listing.full_job_row(item)])
    click.echo(format_table(headers, lines))


def _terminal_width() -> int:
    """Columns of the terminal standard output goes to (``COLUMNS`` wins, as for ``shutil``)."""
    from .progress import _terminal_width as columns
    return columns(sys.stdout)


# --------------------------------------------------------------------------- rm, cancel

@cli.command("rm")
@selection_options()
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation")
@click.option("--clean", "-c", is_flag=True,
              help="also cancel jobs that still run and delete their local and remote directories")
@click.pass_context
@domain_errors
def cli_rm(ctx, id, name, status, system, yes, clean):
    """Remove jobs from the database (at least one selection option is required)."""
    from .func import ExPyRe
    _require_selection(ctx, id=id, name=name, status=status, system=system)
    jobs = select_jobs(id, name, status, system)
    if not jobs:
        click.echo("No matching jobs", err=True)
        return
    what = "cancel, delete the local and remote directories of, and remove" if clean else "remove"
    if not _confirm(f"{what} {_describe_selection(jobs)}?", yes):
        click.echo(f"kept {len(jobs)} job{'s' if len(jobs) != 1 else ''}", err=True)
        return
    for xpr in ExPyRe.from_jobsdb(jobs):
        unreachable = None
        if clean:
            unreachable = _remote_side_unreachable(xpr)
            if unreachable is None:
                xpr.cancel()
        xpr.clean(wipe=True, dry_run=not clean)
        config.db.remove(xpr.id)
        click.echo(f"removed {xpr.id}", err=True)
        if unreachable:
            click.echo(f"  {unreachable}", err=True)


def _remote_side_unreachable(xpr) -> Optional[str]:
    """Why the remote directory of ``xpr`` cannot be cleaned, or None if it can (or has none)."""
    if xpr.system_name is None or xpr.system_name in config.systems or not xpr.remote_dir:
        return None
    still = " and the job was not cancelled" if xpr.status in jobstate.CANCELLABLE else ""
    return (f"its remote directory {xpr.remote_dir} on system '{xpr.system_name}' was NOT deleted{still}: "
            f"system '{xpr.system_name}' is no longer in the config (configured: "
            f"{', '.join(config.systems) or 'none'}); delete that directory by hand")



def _scheduler_command(action: str, past: str, help_text: str):
    @cli.command(action, help=help_text)
    @selection_options(status_default="ongoing")
    @click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation")
    @domain_errors
    def command(id, name, status, system, yes):
        from .func import ExPyRe
        jobs = [row for row in select_jobs(id, name, status, system) if row["remote_id"] is not None]
        if not jobs:
            click.echo("No matching jobs", err=True)
            return
        if not _confirm(f"{action} {_describe_selection(jobs)}?", yes):
            return
        for xpr in ExPyRe.from_jobsdb(jobs):
            getattr(xpr, action)()
            if action == "cancel" and xpr.status in jobstate.CANCELLABLE:
                # the job will not run any more: it leaves the ongoing group (see docs/restart.rst)
                jobstate.cancelled(xpr.id, xpr.status)
            click.echo(f"{past} {xpr.id}", err=True)
    return command


cli_cancel = _scheduler_command("cancel", "cancelled",
                                "Cancel queued or running jobs (jobs that are still ongoing unless selected).")
cli_hold = _scheduler_command("hold", "held", "Hold queued jobs in the queue until they are released.")
cli_release = _scheduler_command("release", "released", "Release held jobs.")


# --------------------------------------------------------------------------- sync

@cli.command("sync")
@selection_options(status_default="ongoing")
@click.option("--all-files", "-a", is_flag=True,
              help="copy back the files of every selected job, finished or not, whatever its status")
@click.option("--verbose", "-v", is_flag=True, help="report each remote status change")
@domain_errors
def cli_sync(id, name, status, system, all_files, verbose):
    """Poll remote status and copy back the files of finished jobs (one query per system)."""
    from . import gather
    jobs = select_jobs(id, name, status, system, readable=False)
    if not jobs:
        click.echo("No matching jobs", err=True)
        return
    states = gather.sync(jobs, force_fetch=all_files, verbose=verbose)
    for job_id, state in states.items():
        click.echo(f"{job_id}: {state}")


# --------------------------------------------------------------------------- database maintenance

@cli.command("db_unlock")
@domain_errors
def cli_db_unlock():
    """Unlock the jobs database after a crashed process left it locked.

    A process that is still using the database at the same time may see errors.
    """
    config.db.unlock()
    click.echo(f"unlocked {config.db.db_filename}")


@cli.command("reset_status")
@selection_options(status_default="*")
@click.argument("new_status", metavar="NEW_STATUS",
                type=click.Choice(["created", "submitting", "submitted", "started", "succeeded",
                                   "failed", "died", "processed", "cleaned"]))
@domain_errors
def cli_reset_status(id, name, status, system, new_status):
    """Set the local status of jobs (for example back to 'started' to gather them again).

    NEW_STATUS is one of: created, submitting, submitted, started, succeeded, failed, died,
    processed, cleaned.
    """
    jobs = select_jobs(id, name, status, system)
    for job in jobs:
        jobstate.reset(job["id"], job["status"], new_status)
        click.echo(f"{job['id']}: {job['status']} -> {new_status}", err=True)
    if not jobs:
        click.echo("No matching jobs", err=True)


@cli.command("create_job")
@click.option("--from_dir", "-d", required=True, help="stage directory of the job",
              type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--system", "-S", required=True, help="system the job belongs to")
@click.option("--id", "-i", "job_id", help="job id [default: the directory name without 'run_']")
@click.option("--name", "-n", help="job name [default: the id without hash and unique suffix]")
@domain_errors
def cli_create_job(from_dir, system, job_id, name):
    """Add a jobs-database row for an existing stage directory."""
    if job_id is None:
        if not from_dir.name.startswith("run_"):
            raise click.UsageError(f"cannot take an id from {from_dir.name!r} (not 'run_<id>'): give --id")
        job_id = from_dir.name[len("run_"):]
    if name is None:
        name = re.sub(r"_[A-Za-z0-9_\-]{43}=_.{8}$", "", job_id)
    jobstate.record_new(job_id, name=name, from_dir=str(from_dir.resolve()), system=system, remote_id="NA",
                        remote_status="unknown")
    click.echo(f"created {job_id} (name {name}) on {system}", err=True)


@cli.command("fail_job")
@selection_options()
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation")
@click.pass_context
@domain_errors
def cli_fail_job(ctx, id, name, status, system, yes):
    """Mark jobs as failed: get_results() then raises RuntimeError('xpr fail_job')."""
    _require_selection(ctx, id=id, name=name, status=status, system=system)
    jobs = select_jobs(id, name, status, system)
    if not jobs:
        click.echo("No matching jobs", err=True)
        return
    if not _confirm(f"fail {_describe_selection(jobs)}?", yes):
        return
    for job in jobs:
        stage_dir = Path(job["from_dir"])
        (stage_dir / jobfiles.SUCCEEDED).unlink(missing_ok=True)
        with open(stage_dir / jobfiles.EXCEPTION, "wb") as fout:
            pickle.dump((RuntimeError("xpr fail_job"), "RuntimeError: xpr fail_job\n"), fout)
        (stage_dir / jobfiles.ERROR).write_text("kind: exception\nRuntimeError: xpr fail_job\n")
        jobstate.fail(job["id"], job["status"])
        click.echo(f"failed {job['id']}", err=True)


# --------------------------------------------------------------------------- systems, plugins

@cli.command("systems")
@domain_errors
def cli_systems():
    """List configured systems, their partitions and the config files they come from."""
    files = config.config_files
    click.echo("config files: " + (", ".join(str(f) for f in files) if files else "none (built-in default)"))
    click.echo(f"stage directory: {config.local_stage_dir}")
    for system in config.systems.values():
        click.echo(f"\n{system.name}: scheduler {system.scheduler}, host {system.host or '(this machine)'}, "
                   f"transport {system.transport}, rundir {system.remote_rundir or '(stage directory)'}")
        sources = sorted(set(system.sources.values()))
        if sources:
            click.echo(f"  from: {', '.join(sources)}")
        elif config.is_builtin(system):
            click.echo("  built in (a system named 'local' in a config file replaces it)")
        rows = [[key, str(p.get("partition", key)), str(p["num_cores"]), _or_dash(p.get("max_time")),
                 _or_dash(p.get("max_mem"))] for key, p in system.partitions.items()]
        table = format_table(["partition", "scheduler name", "cores/node", "max_time (s)", "max_mem (kB)"], rows)
        click.echo("\n".join("  " + line for line in table.splitlines()))


@cli.command("logout")
@click.argument("system_names", metavar="SYSTEM...", nargs=-1, required=True)
@domain_errors
def cli_logout(system_names):
    """Close the shared login (the openssh transport's ControlMaster connection) to each SYSTEM.

    The next command to the system logs in again (asking for a one-time code if the host wants
    one). The ssh transport's login lives only as long as the process that made it, so there is
    nothing to close for its systems.
    """
    for name in system_names:
        system = config.systems.get(name)
        if system is None:
            raise click.ClickException(config.unknown_system_message(name))
        logout = getattr(system.shell, "logout", None)
        if logout is None:
            click.echo(f"{name}: transport {system.transport} keeps no login after its process ends; nothing to close")
        elif logout():
            click.echo(f"{name}: logged out (closed the shared ssh connection)")
        else:
            click.echo(f"{name}: no shared ssh connection was open")


def _or_dash(value) -> str:
    return "-" if value is None else str(value)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def cli_plugins(as_json):
    """List installed plugins: distribution, version, schedulers and transports they provide."""
    infos = plugins.list_plugins()
    broken = plugins.broken_plugins
    if as_json:
        data: Dict[str, list] = {"plugins": [vars(i) for i in infos], "broken": [vars(b) for b in broken]}
        click.echo(json.dumps(data, indent=2))
        return
    rows = [[i.name, i.distribution, i.version, ", ".join(i.schedulers) or "-", ", ".join(i.transports) or "-"]
            for i in infos]
    click.echo(format_table(["plugin", "distribution", "version", "schedulers", "transports"], rows))
    for b in broken:
        click.echo(f"BROKEN: {b.name} ({b.value}) from {b.distribution}: {b.error}", err=True)
    warning = foreign_expyre_warning()
    if warning:
        click.echo(f"WARNING: {warning}", err=True)


@cli.command("check")
@click.argument("system_names", nargs=-1, metavar="[SYSTEM]...")
@click.option("--modules", "-m", default="", help="comma-separated modules the jobs need, e.g. numpy,ase")
@click.option("--python-cmd", default=None, help="the job's Python, as for start(python_cmd=...)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@domain_errors
def cli_check(system_names, modules, python_cmd, as_json):
    """Check configured systems before queueing: login and host key, run directory, the
    scheduler's commands and partitions, the system's commands, Python, cloudpickle and
    --modules. Each line is ✓ or ✗ with the fix; exit status 1 if any is ✗."""
    from . import check
    names = list(system_names) or list(config.systems)
    unknown = [n for n in names if n not in config.systems]
    if unknown:
        raise click.ClickException(config.unknown_system_message(unknown[0]))
    wanted = [m.strip() for m in modules.split(",") if m.strip()]
    results = {name: check.check_system(config.systems[name], wanted, python_cmd) for name in names}
    click.echo(check.as_json(results) if as_json else check.render(results))
    if not all(r.ok for rs in results.values() for r in rs):
        sys.exit(1)


def main() -> None:  # pragma: no cover - console entry point
    cli(obj={})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
