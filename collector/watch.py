"""``triage serve --watch DIR``: take in every completed file dropped into a folder.

watchdog reports creations, writes and renames into the folder; a scan at start picks up what came
while the daemon was down. A file is taken only once it is complete: names that writers use while
writing (dotfiles, ``*.tmp``, ``*.part``, ``*.swp``, ``*~``) are skipped until renamed, and any other
file waits until its size and modification time have held still for ``settle_seconds``. One thread
ingests files one at a time (``files.FileIngester``), so a huge file cannot starve the receivers of
memory; the ledger makes every file count once, across restarts too.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from otel_triage.collector.files import FileIngester
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger(__name__)

IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial", ".swp", ".crdownload", "~")


def in_progress(path: Path) -> bool:
    """Names writers use before the final rename."""
    return path.name.startswith(".") or path.name.endswith(IN_PROGRESS_SUFFIXES)


class _Events(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        path = getattr(event, "dest_path", "") or event.src_path
        self._watcher.touch(Path(str(path)))


class FolderWatcher:
    def __init__(self, folders: list[Path], ingester: FileIngester, settle_seconds: float = 1.0) -> None:
        self._folders = folders
        self._ingester = ingester
        self._settle = settle_seconds
        self._pending: dict[Path, tuple[int, int, float]] = {}  # path → (size, mtime_ns, stable since)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._observer = Observer()
        self._thread = threading.Thread(target=self._run, name="triage-watch", daemon=True)

    def start(self) -> None:
        for folder in self._folders:
            self._observer.schedule(_Events(self), str(folder), recursive=True)
        self._observer.start()
        for folder in self._folders:  # what arrived while the daemon was down
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    self.touch(path)
        self._thread.start()

    def touch(self, path: Path) -> None:
        if in_progress(path):
            return
        with self._lock:
            self._pending[path] = (-1, -1, time.monotonic())
        self._wake.set()

    def _due(self) -> list[Path]:
        """Files whose size and mtime held still for the settle period."""
        now, due = time.monotonic(), []
        with self._lock:
            for path, (size, mtime, since) in list(self._pending.items()):
                try:
                    st = path.stat()
                except FileNotFoundError:  # renamed away or deleted before it settled
                    del self._pending[path]
                    continue
                if (st.st_size, st.st_mtime_ns) != (size, mtime):
                    self._pending[path] = (st.st_size, st.st_mtime_ns, now)
                elif now - since >= self._settle:
                    del self._pending[path]
                    due.append(path)
        return sorted(due)

    def _run(self) -> None:
        while not self._stop.is_set():
            for path in self._due():
                if self._stop.is_set():
                    return
                try:
                    self._ingester.ingest(path)
                except Exception:  # one file must never stop the folder (or the daemon)
                    log.exception("could not take in %s; it will be retried when it changes", path)
            with self._lock:
                idle = not self._pending
            self._wake.wait(None if idle else min(0.25, self._settle / 2))
            self._wake.clear()

    def stop(self) -> None:
        """Finish the file being ingested (its commit is atomic either way), then stop."""
        self._stop.set()
        self._wake.set()
        self._observer.stop()
        self._observer.join(10)
        self._thread.join(600)
