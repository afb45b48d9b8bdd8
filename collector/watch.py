"""``triage serve --watch DIR``: take in every completed file dropped into a folder.

inotify (Linux) reports creations, writes and renames; a scan at start picks up what came while the
daemon was down, and a rescan every ``RESCAN_SECONDS`` catches what inotify could not report (its
queue overflowed, the kernel's watch limit was reached, or there is no inotify: then the rescan
runs every ``POLL_SECONDS``). A file is taken only once it is complete: names that writers use
while writing (dotfiles, ``*.tmp``, ``*.part``, ``*.swp``, ``*~``) are skipped until renamed, and any
other file waits until its size and modification time have held still for ``settle_seconds``.

Why not watchdog: its recursive watch walks the tree recursively (a 1000-deep tree raised
RecursionError and killed the watcher) and listens to opens and reads, so reading a file queued it
again (every file was re-read about once a second forever) and 10k subfolders overflowed its queue
in a loop. Here the walk is iterative, only writes and renames are watched, and a file already
taken is not read again until its size, mtime or inode change. One thread ingests files one at a
time (``files.FileIngester``); the ledger makes every file count once, across restarts too.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from otel_triage.collector.files import FileIngester, shown

try:  # Linux only; elsewhere the folder is polled
    from inotify_simple import INotify
    from inotify_simple import flags as F
except (ImportError, OSError):  # pragma: no cover - not Linux
    INotify = None  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)

IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial", ".swp", ".crdownload", "~")
RESCAN_SECONDS = 30.0  # safety net beside inotify: a scan stats every file, reads only changed ones
POLL_SECONDS = 2.0  # without inotify, the rescan is the only way to see new files
WAKE_SECONDS = 0.5  # longest the thread sleeps, so stop() is prompt
if INotify is not None:
    MASK = (F.CREATE | F.MOVED_TO | F.CLOSE_WRITE | F.MODIFY | F.ATTRIB | F.DELETE_SELF | F.MOVE_SELF
            | F.ONLYDIR | F.DONT_FOLLOW)  # never opens, reads or closes-without-write: our own reads stay silent


def in_progress(path: Path) -> bool:
    """Names writers use before the final rename."""
    return path.name.startswith(".") or path.name.endswith(IN_PROGRESS_SUFFIXES)


Signature = tuple[int, int, int, int]  # (device, inode, size, mtime_ns): unchanged means already handled


def signature(st: os.stat_result) -> Signature:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class FolderWatcher:
    def __init__(self, folders: list[Path], ingester: FileIngester, settle_seconds: float = 1.0) -> None:
        self._folders = [Path(os.path.realpath(f)) for f in folders]
        self._ingester = ingester
        self._settle = settle_seconds
        self._pending: dict[Path, tuple[Signature | None, float]] = {}  # path → (last signature, stable since)
        self._taken: dict[Path, Signature] = {}  # handled files: not read again until they change
        self._dirs: dict[int, Path] = {}  # inotify watch descriptor → folder
        self._failed: dict[Path, str] = {}  # files whose ingest raised, with the error last logged
        self._watch_full = False
        self._stop = threading.Event()
        self._inotify = INotify() if INotify is not None else None
        self._rescan_every = RESCAN_SECONDS if self._inotify is not None else POLL_SECONDS
        self._thread = threading.Thread(target=self._run, name="triage-watch", daemon=True)

    def start(self) -> None:
        self._scan()  # what arrived while the daemon was down
        self._thread.start()

    def _scan(self, tops: list[Path] | None = None) -> None:
        """Walk folders iteratively (no recursion limit), watch each one, queue its files. Links to
        folders are not walked; links to files are queued, and the ingester decides (it refuses
        any that lead out of the watched folder)."""
        stack = list(tops or self._folders)
        while stack:
            folder = stack.pop()
            self._watch(folder)
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        try:
                            is_dir = entry.is_dir(follow_symlinks=False)
                        except OSError:
                            continue
                        if is_dir:
                            stack.append(Path(entry.path))
                        else:
                            self.touch(Path(entry.path))
            except OSError as exc:  # removed meanwhile, or unreadable: the next rescan tries again
                log.debug("cannot list %s: %s", shown(folder), exc)

    def _watch(self, folder: Path) -> None:
        if self._inotify is None or self._watch_full:
            return
        try:
            wd = self._inotify.add_watch(folder, MASK)
        except OSError as exc:
            if exc.errno == 28:  # ENOSPC: fs.inotify.max_user_watches reached
                self._watch_full = True
                log.warning("the kernel's inotify watch limit is reached at %s; deeper and later folders are "
                            "seen by the rescan every %.0f s (raise fs.inotify.max_user_watches)",
                            shown(folder), RESCAN_SECONDS)
            return
        self._dirs[wd] = folder

    def touch(self, path: Path) -> None:
        if in_progress(path):
            return
        self._pending.setdefault(path, (None, time.monotonic()))

    def _events(self, timeout: float) -> None:
        if self._inotify is None:
            self._stop.wait(timeout)
            return
        for event in self._inotify.read(timeout=int(timeout * 1000)):
            if event.mask & F.Q_OVERFLOW:
                log.info("inotify queue overflowed; rescanning the watched folders")
                self._scan()
                continue
            if event.mask & F.IGNORED:
                self._dirs.pop(event.wd, None)
                continue
            folder = self._dirs.get(event.wd)
            if folder is None or not event.name:
                continue
            path = folder / event.name
            if event.mask & F.ISDIR:
                if event.mask & (F.CREATE | F.MOVED_TO):
                    self._scan([path])  # a folder created or moved in: its files made no events here
            else:
                self.touch(path)

    def _due(self) -> list[Path]:
        """Files whose size and mtime held still for the settle period and that changed since taken."""
        now, due = time.monotonic(), []
        for path, (last, since) in list(self._pending.items()):
            try:
                sig = signature(path.lstat())
            except OSError:  # renamed away or deleted before it settled
                del self._pending[path]
                self._taken.pop(path, None)
                continue
            if sig != last:
                self._pending[path] = (sig, now)
            elif now - since >= self._settle:
                del self._pending[path]
                if self._taken.get(path) != sig:
                    due.append(path)
        return sorted(due)

    def _run(self) -> None:
        next_rescan = time.monotonic() + self._rescan_every
        while not self._stop.is_set():
            for path in self._due():
                if self._stop.is_set():
                    return
                try:
                    sig = signature(path.lstat())
                    self._ingester.ingest(path, self._folders)
                    self._taken[path] = sig
                    self._failed.pop(path, None)
                except Exception as exc:  # one file must never stop the folder (or the daemon)
                    # Not marked taken: the rescan tries it again (a full disk recovers), logged once.
                    first = self._failed.get(path) != str(exc)
                    self._failed[path] = str(exc)
                    log.log(logging.WARNING if first else logging.DEBUG,
                            "could not take in %s (%s: %s); tried again every %.0f s", shown(path),
                            type(exc).__name__, str(exc)[:300], self._rescan_every)
            if time.monotonic() >= next_rescan:
                self._scan()
                next_rescan = time.monotonic() + self._rescan_every
            wait = WAKE_SECONDS if not self._pending else min(0.25, self._settle / 2)
            try:
                self._events(wait)
            except Exception:  # never let the watcher thread die: the rescan still finds files
                log.warning("watching failed; relying on the rescan", exc_info=True)
                self._stop.wait(wait)

    def stop(self) -> None:
        """Finish the file being ingested (its commit is atomic either way), then stop."""
        self._stop.set()
        self._thread.join(600)
        if self._inotify is not None:
            self._inotify.close()
