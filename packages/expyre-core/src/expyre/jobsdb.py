"""The jobs database: one SQLite file that records every job, its status and where it runs.

The file format stays readable by, and upgradable from, the ``jobs.db`` files of the original
ExPyRe: same table name, same column names and types, with one added column (``remote_dir``)
and indexes so that looking up one job reads only that job.

Several scripts (and several threads of one script) may use one database at a time: the
connection waits for locks (``busy_timeout``), writes run in ``BEGIN IMMEDIATE`` transactions,
and, as a last resort, an operation that still finds the database locked is retried a few times.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import re
import sqlite3
import string
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

__all__ = ["JobsDB"]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Columns of the ``jobs`` table, in table order, with their declared types. The first nine are
#: those of the original ExPyRe (``DATE`` gives NUMERIC affinity, the times are integer epochs).
_COLUMN_TYPES: Dict[str, str] = {
    "id": "TEXT",
    "name": "TEXT",
    "from_dir": "TEXT",
    "status": "TEXT",
    "system": "TEXT",
    "remote_id": "TEXT",
    "remote_status": "TEXT",
    "creation_time": "DATE",
    "status_time": "DATE",
    "remote_dir": "TEXT",
}
_COLUMNS: Tuple[str, ...] = tuple(_COLUMN_TYPES)
#: Columns an ExPyRe database must already have; the others are added on opening.
_ORIGINAL_COLUMNS: Tuple[str, ...] = _COLUMNS[:9]
_TIME_COLUMNS: Tuple[str, ...] = ("creation_time", "status_time")
_SELECT = "SELECT " + ", ".join(_COLUMNS) + " FROM jobs"
_GET_SQL = _SELECT + " WHERE id = ? ORDER BY rowid LIMIT 1"

#: index name -> (columns, unique)
_INDEXES: Dict[str, Tuple[str, bool]] = {
    "jobs_id_unique": ("id", True),
    "jobs_status": ("status", False),
    "jobs_name": ("name", False),
    "jobs_system": ("system", False),
}
#: used instead of the unique index when an old database already holds duplicate ids
_ID_FALLBACK_INDEX = "jobs_id"

#: Jobs created together (by one :class:`expyre.Executor`) share a batch name, kept in a table of
#: its own so that the ``jobs`` table stays the original ExPyRe's: a restarted script finds all
#: the jobs of its batch with one indexed lookup instead of one per call.
_BATCHES_TABLE = "CREATE TABLE IF NOT EXISTS batches (batch TEXT NOT NULL, job_id TEXT NOT NULL)"
_BATCHES_INDEX = "CREATE INDEX IF NOT EXISTS batches_batch ON batches (batch)"
#: The last status query of each host (key: scheduler and host), shared by every process using
#: this database, so that several scripts polling one host make one query per interval between
#: them (:mod:`expyre.politeness`): when it was made, which remote ids it asked about (JSON list)
#: and what the scheduler answered (JSON object remote id -> state), and which process is making
#: the next one (``claim_time``, ``claimed_by``) while it runs.
_STATUS_QUERIES_TABLE = ("CREATE TABLE IF NOT EXISTS status_queries (host TEXT PRIMARY KEY, query_time REAL, "
                         "remote_ids TEXT, answer TEXT, claim_time REAL, claimed_by TEXT)")
_BATCH_SQL = ("SELECT " + ", ".join(f"jobs.{c}" for c in _COLUMNS) + " FROM batches JOIN jobs ON jobs.id = "
              "batches.job_id WHERE batches.batch = ? ORDER BY jobs.rowid")

#: What preflight learnt about a system's job side (:mod:`expyre.preflight`), one row per system
#: and way of reaching its Python, with the time it was learnt (a time-to-live applies).
_PREFLIGHT_TABLE = ("CREATE TABLE IF NOT EXISTS preflight (system TEXT NOT NULL, probe TEXT NOT NULL, "
                    "checked_at REAL NOT NULL, report TEXT NOT NULL, PRIMARY KEY (system, probe))")

#: format of ``creation_time`` and ``status_time`` when ``readable=True``
TIME_FORMAT = "%Y-%m-%d %X"

_REGEXP_META = frozenset(".^$*+?{}[]|()")
_ESCAPE_IS_CLASS = frozenset(string.ascii_letters + string.digits)

Patterns = Union[str, Sequence[str], None]


# ---------------------------------------------------------------------------- regexp helpers


@functools.lru_cache(maxsize=512)
def _anchored(pattern: str) -> re.Pattern[str]:
    """The compiled form of ``'^' + pattern + '$'``, the way the jobs filters match values."""
    return re.compile("^" + pattern + "$")


def _sql_regexp(pattern: Optional[str], value: Any) -> int:
    """SQLite ``REGEXP`` function: ``value REGEXP pattern`` calls ``_sql_regexp(pattern, value)``.

    ``pattern`` is the user's regexp, anchored here; NULL values never match.
    """
    if pattern is None or value is None:
        return 0
    return 1 if _anchored(pattern).search(value if isinstance(value, str) else str(value)) else 0


def _split_literal(pattern: str) -> Tuple[str, str]:
    """Split a regexp into the text its leading literal part matches and the rest of the pattern.

    Only unambiguous literals are taken: ordinary characters and a backslash followed by a
    character that is not an ASCII letter or digit (what :func:`re.escape` produces). Scanning
    stops at the first metacharacter or class/backreference escape (``\\d``, ``\\1``, ...).

    Returns
    -------
    literal: str
        the text the literal part matches
    rest: str
        the remaining pattern, starting at the first character that is not a plain literal
    """
    out: List[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 < n and pattern[i + 1] not in _ESCAPE_IS_CLASS:
                out.append(pattern[i + 1])
                i += 2
                continue
            break
        if c in _REGEXP_META:
            break
        out.append(c)
        i += 1
    return "".join(out), pattern[i:]


def _successor(prefix: str) -> Optional[str]:
    """The smallest string greater than every string starting with ``prefix``.

    SQLite compares TEXT (BINARY collation) by UTF-8 bytes, which orders like code points, so
    ``prefix <= v < _successor(prefix)`` holds exactly for the values ``v`` that start with
    ``prefix``. None when there is no such string (empty prefix, or only U+10FFFF characters).
    """
    chars = list(prefix)
    while chars:
        code = ord(chars[-1])
        if code < 0x10FFFF:
            code += 1
            if 0xD800 <= code <= 0xDFFF:  # surrogates cannot be stored in UTF-8
                code = 0xE000
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


def _as_list(value: Union[str, Iterable[str], None], what: str) -> Optional[List[str]]:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    values = list(value)
    for v in values:
        if not isinstance(v, str):
            raise TypeError(f"JobsDB: {what} must be a str or a list of str, got {v!r}")
    return values


def _is_read_only(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the database file (or its directory) cannot be written."""
    text = str(exc).lower()
    return "readonly database" in text or "read-only" in text


def _is_locked(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg)


def _readable_time(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return time.strftime(TIME_FORMAT, time.localtime(value))
    return value


def _db_value(value: Any) -> Any:
    """Paths are stored as their string; everything else is bound as is."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


# ---------------------------------------------------------------------------- JobsDB


class UnknownStatusError(ValueError, AssertionError):
    """A job status (or status group) that the jobs database does not know.

    Also an ``AssertionError``, which ExPyRe raised, so that its callers' ``except`` clauses match.
    """


class UnknownColumnError(ValueError, sqlite3.OperationalError):
    """A field that the jobs database does not have.

    Also an ``sqlite3.OperationalError``, which ExPyRe raised, so that its callers' ``except``
    clauses match.
    """


class ReadOnlyDatabaseError(PermissionError, sqlite3.OperationalError):
    """The jobs database (or its directory) cannot be written; the message names the file.

    Also an ``sqlite3.OperationalError``, which ExPyRe raised, so that its callers' ``except``
    clauses match.
    """


class JobsDB:
    """Database of jobs, kept in one SQLite file.

    Each job is one row of the table ``jobs``, with columns

    ``id``
        unique job id (``<name>_<hash>_<n>`` for jobs made by ``ExPyRe``)
    ``name``
        job name, shared by the jobs of one call
    ``from_dir``
        local stage directory the job was created in
    ``status``
        one of :attr:`possible_status`, see below
    ``system``
        name of the system the job runs on
    ``remote_id``
        the scheduler's id for the job
    ``remote_status``
        the scheduler's last reported status
    ``creation_time``, ``status_time``
        integer seconds since the epoch when the job was added and its status last set
        (``status_time`` is NULL until the first status change)
    ``remote_dir``
        directory holding the job's files on the system's host, recorded at submission so
        results can be gathered from another machine that shares this database (NULL for jobs
        recorded by the original ExPyRe)

    A second table, ``batches`` (``batch``, ``job_id``), names the batch each job created by an
    :class:`expyre.Executor` belongs to, so that a restarted script finds all of them with one
    lookup (:meth:`batch_jobs`). The original ExPyRe ignores it.

    Status values, in the order of a job's life:

    ``created``
        staged locally, not yet handed to a scheduler
    ``submitting``
        recorded *before* the scheduler is asked to run the job. If the process crashes between
        the scheduler accepting the job and the job being marked ``submitted``, the job is left
        in this status and can be recovered (by looking for it on the system) instead of being
        submitted a second time
    ``submitted``
        accepted by the scheduler, ``remote_id`` is set
    ``started``
        running on the system
    ``succeeded``
        finished and its results are available
    ``failed``
        finished with an exception or error, which is available
    ``died``
        ended without producing the expected low-level output (killed, out of time, ...)
    ``processed``
        results have been read back; they no longer need to be kept
    ``cleaned``
        the job's local and remote directories have been cleaned (large files overwritten or
        all files removed)

    :attr:`status_group` names sets of statuses that can be used wherever a status is accepted:
    ``ongoing`` (not finished yet) and ``can_produce_results``.

    Parameters
    ----------
    db_filename: str or Path
        database file; created (with its table) if it does not exist. Its directory must exist.
        A database written by the original ExPyRe is upgraded in place (``remote_dir`` column
        and indexes added).
    busy_timeout: float, default 30
        seconds an operation waits for another process's lock before failing
    lock_retries: int, default 3
        how many more times an operation that still finds the database locked after
        ``busy_timeout`` is tried, ``retry_wait`` seconds apart, before RuntimeError
    retry_wait: float, default 1
        seconds between those retries
    journal_mode: str or None, default "WAL"
        SQLite journal mode to set on opening; None leaves the file's mode alone. WAL lets
        readers and a writer work at the same time, but needs all processes that use the file to
        run on one host: for a database shared over a network file system by several hosts
        use "DELETE". In WAL mode commits use ``synchronous=NORMAL`` (durable across a crash of
        the application, not across a power failure of the host).

    Notes
    -----
    One object may be used from several threads: it keeps one connection, guarded by a lock.
    After :func:`os.fork` the child opens its own connection on first use.
    """

    possible_status: List[str] = ["created", "submitting", "submitted", "started", "succeeded", "failed",
                                  "died", "processed", "cleaned"]
    status_group: Dict[str, List[str]] = {
        "ongoing": ["created", "submitting", "submitted", "started"],
        "can_produce_results": ["created", "submitting", "submitted", "started", "succeeded", "died"],
    }

    #: table columns, in order (also the keys of the dicts :meth:`jobs` and :meth:`get` return)
    columns: Tuple[str, ...] = _COLUMNS

    def __init__(self, db_filename: Union[str, os.PathLike], *, busy_timeout: float = 30.0,
                 lock_retries: int = 3, retry_wait: float = 1.0, journal_mode: Optional[str] = "WAL"):
        self.db_filename = Path(db_filename)
        self.busy_timeout = float(busy_timeout)
        self.lock_retries = int(lock_retries)
        self.retry_wait = float(retry_wait)
        if journal_mode is not None and journal_mode.upper() not in ("DELETE", "TRUNCATE", "PERSIST", "WAL",
                                                                      "MEMORY", "OFF"):
            raise ValueError(f"JobsDB: unknown journal_mode {journal_mode!r}")
        self.journal_mode = journal_mode.upper() if journal_mode is not None else None
        self._lock = threading.RLock()
        self._conn: Optional[sqlite3.Connection] = None
        self._pid = os.getpid()
        self._abandoned: List[sqlite3.Connection] = []
        self._unique_ids = True
        with self._lock:
            self._connect()

    # ------------------------------------------------------------------ connection

    def _connect(self) -> None:
        """Open the connection, set it up and bring the schema up to date (caller holds the lock)."""
        try:
            conn = sqlite3.connect(str(self.db_filename), timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise RuntimeError(f"JobsDB: cannot open database file {self.db_filename}: {exc}") from exc
        try:
            conn.create_function("regexp", 2, _sql_regexp, deterministic=True)
            self._conn = conn
            self._pid = os.getpid()
            if self.journal_mode is not None:
                self._retry(self._set_journal_mode, write=False)
            self._retry(self._ensure_schema, write=False)
        except sqlite3.DatabaseError as exc:
            self._conn = None
            conn.close()
            raise RuntimeError(f"JobsDB: cannot use {self.db_filename} as a jobs database: {exc}") from exc
        except BaseException:
            self._conn = None
            conn.close()
            raise

    def _set_journal_mode(self, conn: sqlite3.Connection) -> None:
        """Switch to ``self.journal_mode`` unless the file is already in it.

        Changing the mode needs the database to itself and SQLite reports a conflict at once,
        without waiting, so wait here (up to ``busy_timeout``) for the other process to finish.
        """
        mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).upper()
        if mode != self.journal_mode:
            deadline = time.monotonic() + self.busy_timeout
            delay = 0.001
            while True:
                try:
                    # the mode is one of a fixed list checked in __init__, not a user value
                    row = conn.execute(f"PRAGMA journal_mode = {self.journal_mode}").fetchone()
                    mode = str(row[0]).upper()
                    break
                except sqlite3.OperationalError as exc:
                    if not _is_locked(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(delay)
                    delay = min(2 * delay, 0.05)
            if mode != self.journal_mode:
                _log.debug("JobsDB %s: journal mode %s, not %s", self.db_filename, mode, self.journal_mode)
        if mode == "WAL":
            conn.execute("PRAGMA synchronous = NORMAL")

    def _connection(self) -> sqlite3.Connection:
        """The connection, reopened in a child process after fork (caller holds the lock)."""
        if self._conn is None or self._pid != os.getpid():
            if self._conn is not None:
                # a connection inherited across fork must not be used, not even to close it
                self._abandoned.append(self._conn)
                self._conn = None
            self._connect()
        assert self._conn is not None
        return self._conn

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            # the parent's lock may have been held by another thread at fork time
            self._lock = threading.RLock()

    def _retry(self, func: Callable[[sqlite3.Connection], _T], write: bool) -> _T:
        """Run ``func(connection)`` in a transaction, retrying if the database stays locked.

        Writes run in ``BEGIN IMMEDIATE`` so they take the write lock (waiting ``busy_timeout``)
        before reading anything, and are committed or rolled back as one. Reads run as single
        statements in autocommit mode.
        """
        self._check_fork()
        last: Optional[BaseException] = None
        for attempt in range(self.lock_retries + 1):
            if attempt:
                time.sleep(self.retry_wait)
            with self._lock:
                conn = self._connection()
                try:
                    if write:
                        conn.execute("BEGIN IMMEDIATE")
                    result = func(conn)
                    if write:
                        conn.execute("COMMIT")
                    return result
                except sqlite3.OperationalError as exc:
                    self._rollback(conn)
                    if _is_read_only(exc):
                        raise ReadOnlyDatabaseError(f"JobsDB: cannot write to the jobs database {self.db_filename}: "
                                                    f"{exc} (check the permissions of the file and of its "
                                                    "directory, which SQLite writes its journal to)") from exc
                    if not _is_locked(exc):
                        raise
                    last = exc
                    _log.warning("JobsDB %s: %s, try %d of %d", self.db_filename, exc, attempt + 1,
                                 self.lock_retries + 1)
                except BaseException:
                    self._rollback(conn)
                    raise
        raise RuntimeError(f"JobsDB: database {self.db_filename} is still locked after "
                           f"{self.lock_retries + 1} tries of {self.busy_timeout:g} s ({last}); if the "
                           "process holding the lock has died, JobsDB.unlock() may help") from last

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        """Create the table, or upgrade an older one, without taking the write lock if not needed."""
        try:
            if self._schema_current(conn):
                return
        except sqlite3.DatabaseError as exc:
            if _is_locked(exc):
                raise
            raise RuntimeError(f"JobsDB: {self.db_filename} is not a readable jobs database: {exc}") from exc
        conn.execute("BEGIN IMMEDIATE")
        try:
            # another process may have done it while we waited for the lock
            if not self._schema_current(conn):
                self._upgrade_schema(conn)
            conn.execute("COMMIT")
        except BaseException:
            self._rollback(conn)
            raise

    def _schema_current(self, conn: sqlite3.Connection) -> bool:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(jobs)")]
        if not columns:
            return False
        missing = [c for c in _ORIGINAL_COLUMNS if c not in columns]
        if missing:
            raise RuntimeError(f"JobsDB: table 'jobs' in {self.db_filename} lacks column(s) "
                               f"{', '.join(missing)}; not a jobs database")
        indexes = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'")}
        self._unique_ids = "jobs_id_unique" in indexes
        have_id_index = self._unique_ids or _ID_FALLBACK_INDEX in indexes
        others = all(name in indexes for name in _INDEXES if name != "jobs_id_unique")
        batches = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'batches_batch'").fetchone()
        preflight = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'preflight'").fetchone()
        queries = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                               "AND name = 'status_queries'").fetchone()
        return ("remote_dir" in columns and have_id_index and others and batches is not None
                and preflight is not None and queries is not None)

    def _upgrade_schema(self, conn: sqlite3.Connection) -> None:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(jobs)")]
        if not columns:
            conn.execute("CREATE TABLE IF NOT EXISTS jobs ("
                         + ", ".join(f"{c} {t}" for c, t in _COLUMN_TYPES.items()) + ")")
            columns = list(_COLUMNS)
        for column in _COLUMNS:
            if column not in columns:
                conn.execute(f"ALTER TABLE jobs ADD COLUMN {column} {_COLUMN_TYPES[column]}")
        for name, (column, unique) in _INDEXES.items():
            if unique:
                try:
                    conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {name} ON jobs ({column})")
                    self._unique_ids = True
                except sqlite3.IntegrityError:
                    # an old database with a repeated id: keep it readable, index without uniqueness
                    warnings.warn(f"JobsDB: {self.db_filename} holds repeated job ids; indexing ids "
                                  "without a uniqueness constraint", RuntimeWarning, stacklevel=2)
                    conn.execute(f"CREATE INDEX IF NOT EXISTS {_ID_FALLBACK_INDEX} ON jobs ({column})")
                    self._unique_ids = False
            else:
                conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON jobs ({column})")
        conn.execute(_BATCHES_TABLE)
        conn.execute(_BATCHES_INDEX)
        conn.execute(_STATUS_QUERIES_TABLE)
        conn.execute(_PREFLIGHT_TABLE)

    def close(self) -> None:
        """Close the connection; the next operation reopens it."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> JobsDB:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ changes

    @classmethod
    def _check_status(cls, status: str) -> None:
        if status not in cls.possible_status:
            raise UnknownStatusError(f"JobsDB: unknown job status {status!r}, "
                             f"not one of {', '.join(cls.possible_status)}")

    def add(self, id: str, name: str, from_dir: Union[str, os.PathLike], status: str = "created",
            system: Optional[str] = None, remote_id: Optional[str] = None,
            remote_status: Optional[str] = None, remote_dir: Optional[str] = None,
            batch: Optional[str] = None) -> None:
        """Add a job.

        Parameters
        ----------
        id: str
            unique id of the job
        name: str
            name of the job
        from_dir: str or Path
            local directory the job is staged in
        status: str, default "created"
            initial status, one of :attr:`possible_status`
        system: str, optional
            system the job runs on
        remote_id: str, optional
            the scheduler's id for the job
        remote_status: str, optional
            the scheduler's status of the job
        remote_dir: str, optional
            directory of the job's files on the system's host
        batch: str, optional
            name of the batch the job belongs to (see :meth:`batch_jobs`)

        Raises
        ------
        ValueError
            if a job with this id exists, or the status is unknown
        """
        self.add_many([dict(id=id, name=name, from_dir=from_dir, status=status, system=system, remote_id=remote_id,
                            remote_status=remote_status, remote_dir=remote_dir, batch=batch)])

    def add_many(self, jobs: Sequence[Mapping[str, Any]]) -> None:
        """:meth:`add` of many jobs, in one transaction: all are added, or none.

        Parameters
        ----------
        jobs: list(dict)
            per job, the arguments of :meth:`add` by name (``id``, ``name`` and ``from_dir``
            at least)

        Raises
        ------
        ValueError
            if a job with one of these ids exists, or a status is unknown
        """
        now = int(time.time())
        rows, batches = [], []
        for job in jobs:
            status = job.get("status", "created")
            self._check_status(status)
            rows.append([_db_value(v) for v in (job["id"], job["name"], job["from_dir"], status, job.get("system"),
                                                job.get("remote_id"), job.get("remote_status"), now, None,
                                                job.get("remote_dir"))])
            if job.get("batch") is not None:
                batches.append((job["batch"], rows[-1][0]))
        sql = "INSERT INTO jobs (" + ", ".join(_COLUMNS) + ") VALUES (" + ", ".join("?" * len(_COLUMNS)) + ")"

        def insert(conn: sqlite3.Connection) -> None:
            for values in rows if not self._unique_ids else ():  # old database: no unique index to rely on
                if conn.execute("SELECT 1 FROM jobs WHERE id = ?", values[:1]).fetchone():
                    raise ValueError(f"JobsDB: cannot add job {values[0]!r}, a job with this id already exists")
            conn.execute("SAVEPOINT add_many")
            try:
                conn.executemany(sql, rows)
            except sqlite3.IntegrityError as exc:
                conn.execute("ROLLBACK TO add_many")  # so that the look-up below sees only earlier jobs
                ids = [values[0] for values in rows]
                taken = [i for n, i in enumerate(ids) if i in ids[:n]
                         or conn.execute("SELECT 1 FROM jobs WHERE id = ?", (i,)).fetchone()]
                raise ValueError(f"JobsDB: cannot add job {(taken or ids)[0]!r}, a job with this id "
                                 "already exists") from exc
            conn.executemany("INSERT INTO batches (batch, job_id) VALUES (?, ?)", batches)

        if rows:
            self._retry(insert, write=True)

    def batch_jobs(self, batch: str, status: Union[str, Iterable[str], None] = None,
                   readable: bool = False) -> List[Dict[str, Any]]:
        """The jobs added with ``batch=batch``, in the order they were added: one indexed lookup.

        Parameters
        ----------
        batch: str
            the batch name (not a regexp)
        status: str or list(str), optional
            keep only jobs in these statuses or status groups (:attr:`status_group`)
        readable: bool, default False
            format the times as text, as :meth:`jobs` does

        Returns
        -------
        list(dict)
            one dict per job, column name -> value
        """
        wanted = set(self._expand_status(status)) if status is not None else None
        rows = self._retry(lambda conn: conn.execute(_BATCH_SQL, (batch,)).fetchall(), write=False)
        jobs = [self._row_dict(row, readable) for row in rows]
        return [job for job in jobs if wanted is None or job["status"] in wanted]

    def preflight_get(self, system: str, probe: str, max_age: float) -> Optional[str]:
        """The preflight report kept for ``system`` reached by ``probe``, if younger than
        ``max_age`` seconds (see :mod:`expyre.preflight`); None otherwise."""
        def read(conn: sqlite3.Connection) -> Optional[str]:
            row = conn.execute("SELECT report FROM preflight WHERE system = ? AND probe = ? AND checked_at >= ?",
                               (system, probe, time.time() - max_age)).fetchone()
            return row[0] if row else None
        return self._retry(read, write=False)

    def preflight_put(self, system: str, probe: str, report: str, checked_at: float) -> None:
        """Keep a preflight report for ``system`` reached by ``probe`` (replacing an older one)."""
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO preflight (system, probe, checked_at, report) VALUES (?, ?, ?, ?)",
                         (system, probe, checked_at, report))
        self._retry(write, write=True)

    def preflight_forget(self, system: Optional[str] = None) -> None:
        """Drop the kept preflight reports (of one system, or all)."""
        def write(conn: sqlite3.Connection) -> None:
            if system is None:
                conn.execute("DELETE FROM preflight")
            else:
                conn.execute("DELETE FROM preflight WHERE system = ?", (system,))
        self._retry(write, write=True)

    def remove(self, id: str) -> None:
        """Remove a job.

        Parameters
        ----------
        id: str
            id of the job

        Raises
        ------
        ValueError
            if there is no job with this id
        """
        def delete(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM jobs WHERE id = ?", (_db_value(id),)).rowcount == 0:
                raise ValueError(f"JobsDB: cannot remove job {id!r}, no job with this id")
            conn.execute("DELETE FROM batches WHERE job_id = ?", (_db_value(id),))

        self._retry(delete, write=True)

    def update(self, id: str, /, *, if_status: Union[str, Sequence[str], None] = None, **kwargs: Any) -> bool:
        """Set some fields of a job, optionally only if its status is still what the caller saw.

        Parameters
        ----------
        id: str
            id of the job
        if_status: str or list(str), optional
            compare-and-set: change the row only if its status is (one of) this, in the same
            transaction; a process that read the row earlier cannot then overwrite another's
            change (a poll never turns a ``processed`` job back into ``succeeded``)
        **kwargs
            column=value for any column but ``id`` (``name``, ``from_dir``, ``status``, ``system``,
            ``remote_id``, ``remote_status``, ``remote_dir``, ``creation_time``, ``status_time``).
            Setting ``status`` also sets ``status_time`` to now, unless it is given.

        Returns
        -------
        bool
            True if the row was changed; False only when ``if_status`` did not match

        Raises
        ------
        ValueError
            for an unknown column or status, or if there is no job with this id
        """
        columns, change = self._change(id, if_status, kwargs)
        return self._retry(change, write=bool(columns))

    def update_many(self, changes: Sequence[Tuple[Any, ...]],
                    if_status: Union[str, Sequence[str], None] = None) -> List[bool]:
        """:meth:`update` of many jobs, in one transaction: all are written, or none.

        Parameters
        ----------
        changes: list(tuple)
            ``(id, {column: value})`` per job, or ``(id, {column: value}, if_status)`` with a
            compare-and-set of its own
        if_status: str or list(str), optional
            compare-and-set, as for :meth:`update`, for every job without its own

        Returns
        -------
        list(bool)
            per job, as :meth:`update` returns
        """
        steps = [self._change(change[0], change[2] if len(change) > 2 else if_status, dict(change[1]))[1]
                 for change in changes]
        if not steps:
            return []
        return self._retry(lambda conn: [step(conn) for step in steps], write=True)

    def _change(self, id: str, if_status: Union[str, Sequence[str], None],
                kwargs: Dict[str, Any]) -> Tuple[List[str], Callable[[sqlite3.Connection], bool]]:
        """The columns :meth:`update` sets and the function that sets them in a transaction."""
        for column in kwargs:
            if column not in _COLUMNS or column == "id":
                raise UnknownColumnError(f"JobsDB: cannot update column {column!r}, not one of "
                                 f"{', '.join(c for c in _COLUMNS if c != 'id')}")
        if "status" in kwargs:
            self._check_status(kwargs["status"])
            kwargs.setdefault("status_time", int(time.time()))
        expected = None if if_status is None else [if_status] if isinstance(if_status, str) else list(if_status)
        for status in expected or ():
            self._check_status(status)
        columns = [c for c in _COLUMNS if c in kwargs]  # names from the known list only
        values = [_db_value(kwargs[c]) for c in columns]

        def change(conn: sqlite3.Connection) -> bool:
            if columns:
                sql = "UPDATE jobs SET " + ", ".join(f"{c} = ?" for c in columns) + " WHERE id = ?"
                params = [*values, _db_value(id)]
                if expected is not None:
                    sql += " AND status IN (" + ", ".join("?" * len(expected)) + ")"
                    params += expected
                count = conn.execute(sql, params).rowcount
            else:
                count = 0
            if count == 0:
                found = conn.execute("SELECT 1 FROM jobs WHERE id = ? LIMIT 1", (_db_value(id),)).fetchall()
                if not found:
                    raise ValueError(f"JobsDB: cannot update job {id!r}, no job with this id")
                return not columns  # the job is there: its status did not match
            return True

        return columns, change

    # ------------------------------------------------------------------ queries

    @staticmethod
    def _row_dict(row: Sequence[Any], readable: bool) -> Dict[str, Any]:
        job = dict(zip(_COLUMNS, row))
        if readable:
            for column in _TIME_COLUMNS:
                job[column] = _readable_time(job[column])
        return job

    def get(self, id: str, readable: bool = False) -> Optional[Dict[str, Any]]:
        """One job, looked up by its exact id.

        Parameters
        ----------
        id: str
            id of the job (not a regexp)
        readable: bool, default False
            format ``creation_time`` and ``status_time`` as text, as :meth:`jobs` does

        Returns
        -------
        dict or None
            column name -> value, or None if there is no such job
        """
        row = self._retry(lambda conn: conn.execute(_GET_SQL, (_db_value(id),)).fetchone(), write=False)
        return None if row is None else self._row_dict(row, readable)

    @classmethod
    def _expand_status(cls, status: Union[str, Iterable[str]]) -> List[str]:
        wanted: List[str] = []
        for s in _as_list(status, "status") or []:
            if s in cls.status_group:
                members = cls.status_group[s]
            elif s in cls.possible_status:
                members = [s]
            else:
                raise UnknownStatusError(f"JobsDB: unknown job status or status group {s!r}, not one of "
                                 f"{', '.join(cls.possible_status + list(cls.status_group))}")
            wanted.extend(m for m in members if m not in wanted)
        return wanted

    @staticmethod
    def _pattern_condition(column: str, patterns: List[str], use_index: bool = True) -> Tuple[str, List[Any]]:
        """SQL condition for ``column`` matching any of ``patterns`` in full, and its parameters.

        Literal patterns become ``column IN (...)``, literal prefixes followed by ``.*`` a range
        (``prefix <= column < successor``), anything else ``REGEXP``.
        With ``use_index=False`` the column is written ``+column`` so SQLite does not use its index.
        """
        expr = column if use_index else "+" + column
        literals: List[str] = []
        terms: List[str] = []
        params: List[Any] = []
        for pattern in patterns:
            literal, rest = _split_literal(pattern)
            if rest == "":
                # '^lit$' matches 'lit', and 'lit\n' because '$' also matches before a final newline
                literals += [literal, literal + "\n"]
            elif rest == ".*" and literal:
                # '^prefix.*$' matches a value that starts with prefix if the rest of it has no
                # newline ('.' does not match one), or only one, at its end ('$' matches before it)
                newline = f"instr(substr({expr}, ?), char(10)) IN (0, length({expr}) - ?)"
                upper = _successor(literal)
                if upper is None:
                    terms.append(f"({expr} >= ? AND {newline})")
                    params += [literal]
                else:
                    terms.append(f"({expr} >= ? AND {expr} < ? AND {newline})")
                    params += [literal, upper]
                params += [len(literal) + 1, len(literal)]
            else:
                _anchored(pattern)  # raise re.error here, not inside SQLite
                terms.append(f"{expr} REGEXP ?")
                params.append(pattern)
        if literals:
            terms.insert(0, f"{expr} IN (" + ", ".join("?" * len(literals)) + ")")
            params[:0] = literals
        if not terms:
            return "0", []
        return "(" + " OR ".join(terms) + ")", params

    @staticmethod
    def _indexable(patterns: List[str]) -> bool:
        """Whether every pattern is a literal or a literal prefix followed by ``.*``."""
        for pattern in patterns:
            literal, rest = _split_literal(pattern)
            if not (rest == "" or (rest == ".*" and literal)):
                return False
        return True

    def _query(self, status: Union[str, Iterable[str], None] = None, id: Patterns = None,
               name: Patterns = None, system: Patterns = None) -> Tuple[str, List[Any]]:
        """The SELECT statement and parameters for :meth:`jobs`."""
        ids = _as_list(id, "id")
        # An indexed condition on the id finds at most a few rows; without statistics SQLite
        # cannot know that, so keep it from choosing the index of a less selective column.
        by_id = ids is not None and self._indexable(ids)
        where: List[str] = []
        params: List[Any] = []
        for column, patterns in (("id", ids), ("name", _as_list(name, "name")),
                                 ("system", _as_list(system, "system"))):
            if patterns is not None:
                sql, values = self._pattern_condition(column, patterns, use_index=column == "id" or not by_id)
                where.append(sql)
                params += values
        if status is not None:
            wanted = self._expand_status(status)
            if wanted:
                expr = "+status" if by_id else "status"
                where.append(f"{expr} IN (" + ", ".join("?" * len(wanted)) + ")")
                params += wanted
            else:
                where.append("0")
        sql = _SELECT
        if where:
            sql += " WHERE " + " AND ".join(where)
        return sql + " ORDER BY rowid", params

    def jobs(self, status: Union[str, Iterable[str], None] = None, id: Patterns = None, name: Patterns = None,
             system: Patterns = None, readable: bool = True) -> Iterator[Dict[str, Any]]:
        """The jobs that match all the given criteria, in the order they were added.

        Parameters
        ----------
        status: str or list(str), optional
            status(es) or status group name(s) (:attr:`status_group`); a job matches if its
            status is any of them
        id: str or list(str), optional
            regexp(s); a job matches if its id matches any of them *in full*, as
            ``re.search('^' + regexp + '$', id)``. Literal regexps (``re.escape(job_id)``) and
            literal prefixes followed by ``.*`` are looked up in the index.
        name: str or list(str), optional
            regexp(s) for the job name, as for ``id``
        system: str or list(str), optional
            regexp(s) for the system name, as for ``id``; jobs without a system never match
        readable: bool, default True
            give ``creation_time`` and ``status_time`` as local time text (``%Y-%m-%d %X``)
            instead of seconds since the epoch

        Returns
        -------
        iterator of dict
            one dict per job, column name -> value

        Raises
        ------
        ValueError
            for an unknown status or status group
        re.error
            for an invalid regexp
        """
        sql, params = self._query(status=status, id=id, name=name, system=system)
        rows = self._retry(lambda conn: conn.execute(sql, params).fetchall(), write=False)
        return iter([self._row_dict(row, readable) for row in rows])

    # ------------------------------------------------------------------ status queries of hosts

    def last_status_query(self, host: str) -> Optional[Dict[str, Any]]:
        """The last status query recorded for ``host`` (see :mod:`expyre.politeness`).

        Returns
        -------
        dict or None
            ``query_time`` (seconds since the epoch, or None before the first answer),
            ``remote_ids`` (list), ``answer`` (dict remote id -> state), ``claim_time`` and
            ``claimed_by`` (the process making the next query, or None)
        """
        row = self._retry(lambda conn: conn.execute(
            "SELECT query_time, remote_ids, answer, claim_time, claimed_by FROM status_queries WHERE host = ?",
            (host,)).fetchone(), write=False)
        if row is None:
            return None
        return {"query_time": row[0], "remote_ids": json.loads(row[1] or "[]"), "answer": json.loads(row[2] or "{}"),
                "claim_time": row[3], "claimed_by": row[4]}

    def claim_status_query(self, host: str, who: str, min_interval: float, claim_timeout: float,
                           now: Optional[float] = None, dead: Sequence[str] = ()) -> bool:
        """Take the right to make the next status query of ``host``, if it is due.

        It is not due while the last answer is younger than ``min_interval`` seconds, nor while
        another process holds a claim younger than ``claim_timeout`` seconds (after that, the
        claimer is taken to have died), unless the claimer is one of ``dead`` (known to have
        died). One transaction: of several processes, one wins.

        Returns
        -------
        bool
            True if the caller now holds the claim and should query, then :meth:`record_status_query`
        """
        now = time.time() if now is None else now

        def claim(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT query_time, claim_time, claimed_by FROM status_queries WHERE host = ?",
                               (host,)).fetchone()
            if row is not None:
                query_time, claim_time, claimed_by = row
                if query_time is not None and now - query_time < min_interval:
                    return False
                if claim_time is not None and now - claim_time < claim_timeout and claimed_by not in dead:
                    return False
            conn.execute("INSERT INTO status_queries (host, claim_time, claimed_by) VALUES (?, ?, ?) "
                         "ON CONFLICT (host) DO UPDATE SET claim_time = excluded.claim_time, "
                         "claimed_by = excluded.claimed_by", (host, now, who))
            return True

        return self._retry(claim, write=True)

    def record_status_query(self, host: str, who: str, remote_ids: Sequence[str], answer: Dict[str, str],
                            now: Optional[float] = None) -> None:
        """Record the answer of the status query that ``who`` claimed, and release the claim."""
        now = time.time() if now is None else now
        self._retry(lambda conn: conn.execute(
            "INSERT INTO status_queries (host, query_time, remote_ids, answer, claim_time, claimed_by) "
            "VALUES (?, ?, ?, ?, NULL, NULL) ON CONFLICT (host) DO UPDATE SET query_time = excluded.query_time, "
            "remote_ids = excluded.remote_ids, answer = excluded.answer, claim_time = NULL, claimed_by = NULL",
            (host, now, json.dumps(list(remote_ids)), json.dumps(answer))), write=True)

    def release_status_query(self, host: str, who: str) -> None:
        """Give up the claim ``who`` holds on ``host`` (its query failed), so others may query."""
        self._retry(lambda conn: conn.execute(
            "UPDATE status_queries SET claim_time = NULL, claimed_by = NULL WHERE host = ? AND claimed_by = ?",
            (host, who)), write=True)

    # ------------------------------------------------------------------ recovery

    def unlock(self) -> None:
        """Replace a database left locked (by a crashed process) with a fresh copy.

        The contents are copied with SQLite's backup API into a temporary file next to the
        database, the old file is moved aside to ``<name>.old`` (with its ``-wal``/``-shm``
        files, if any, as ``<name>.old-wal``/``<name>.old-shm``), the copy is moved into place and
        this object reconnects. Processes that still have the old file open keep using the old
        file: stop them first.
        """
        with self._lock:
            self.close()
            path = self.db_filename
            fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".unlock", dir=str(path.parent))
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                src = sqlite3.connect(str(path), timeout=self.busy_timeout)
                try:
                    old_mode = str(src.execute("PRAGMA journal_mode").fetchone()[0]).upper()
                    dst = sqlite3.connect(tmp_name)
                    try:
                        src.backup(dst)
                        # leave no -wal file behind the temporary name; the mode is set again below
                        dst.execute("PRAGMA journal_mode = DELETE")
                    finally:
                        dst.close()
                finally:
                    src.close()
                old = path.with_name(path.name + ".old")
                os.replace(path, old)
                for suffix in ("-wal", "-shm"):
                    side = path.with_name(path.name + suffix)
                    if side.exists():
                        os.replace(side, old.with_name(old.name + suffix))
                os.replace(tmp, path)
            except BaseException:
                if tmp.exists():
                    tmp.unlink()
                raise
            self._connect()
            if self.journal_mode is None and old_mode == "WAL":
                self._retry(lambda conn: conn.execute("PRAGMA journal_mode = WAL").fetchone(), write=False)

    # ------------------------------------------------------------------ display

    def __repr__(self) -> str:
        return f"JobsDB({str(self.db_filename)!r})"

    def __str__(self) -> str:
        jobs = list(self.jobs())
        lines = [f"JobsDB {self.db_filename}: {len(jobs)} job{'' if len(jobs) == 1 else 's'}"]
        if jobs:
            cells = [list(_COLUMNS)]
            cells += [["" if job[c] is None else str(job[c]) for c in _COLUMNS] for job in jobs]
            widths = [max(len(row[i]) for row in cells) for i in range(len(_COLUMNS))]
            for n, row in enumerate(cells):
                lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
                if n == 0:
                    lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)
