"""A site's private scheduler for expyre, ``site-batch``.

It shows the whole of what a site writes: hook implementations for the scheduler hooks, each
answering only for its own scheduler name. Here the work is delegated to the built-in
``direct`` scheduler, with a site header line and a site environment variable added; a real
site would build its own submit/status/cancel commands in the same functions.
"""
from expyre import hookimpl
from expyre.schedulers import direct

NAME = "site-batch"
SITE_HEADER = "# site-batch: accounting project {partition}"


@hookimpl
def expyre_schedulers():
    return [NAME]


@hookimpl
def render_header(scheduler, job):
    if scheduler != NAME:
        return None
    return [SITE_HEADER.format(**job.node_dict)] + direct.render_header(scheduler=direct.NAME, job=job)


@hookimpl
def job_environment(scheduler, job):
    if scheduler != NAME:
        return None
    return ["export SITE_BATCH_SCHEDULER=1"]


@hookimpl
def submit(scheduler, job, script, shell):
    if scheduler != NAME:
        return None
    return "site-" + direct.submit(scheduler=direct.NAME, job=job, script=script, shell=shell)


def _as_direct(jobs):
    from expyre import RemoteJob
    return [RemoteJob(j.remote_id[len("site-"):], j.remote_dir, j.id) for j in jobs]


@hookimpl
def status(scheduler, jobs, shell):
    if scheduler != NAME:
        return None
    states = direct.status(scheduler=direct.NAME, jobs=_as_direct(jobs), shell=shell)
    return {"site-" + pid: state for pid, state in states.items()}


@hookimpl
def cancel(scheduler, jobs, shell):
    if scheduler != NAME:
        return None
    return direct.cancel(scheduler=direct.NAME, jobs=_as_direct(jobs), shell=shell)


@hookimpl
def find_submitted(scheduler, job, shell):
    if scheduler != NAME:
        return None
    return ["site-" + pid for pid in direct.find_submitted(scheduler=direct.NAME, job=job, shell=shell)]
