"""Recordings kept on disk, keyed by the engine, its voice, the language and the exact text.

A phrase said again (a number called twice, the kiosk's "Payments" each time
the focus passes it) costs a file read instead of an engine run. Writes are a
temporary file renamed into place, so several processes may share a cache
directory; a file that does not read back as a complete recording is made
again; the least recently used recordings go first beyond the caps.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import os
import tempfile
import time
from pathlib import Path

from speech.audio import samples_of_wav, to_output_format, wav_bytes
from speech.engines import Engine, EspeakEngine, SpeechFailed, SpeechInputError, check_language

STALE_TEMPORARY_S = 3600
"""A temporary file older than this was left by a process killed mid-write."""


class RecordingCache:
    """An engine's recordings, each synthesised once and kept in ``cache_dir``.

    The cache holds at most ``max_files`` recordings and ``max_bytes`` in all.
    A text longer than ``max_text_chars`` is refused before the engine runs.
    """

    def __init__(
        self,
        cache_dir: Path,
        engine: Engine | None = None,
        *,
        max_files: int = 2000,
        max_bytes: int = 200 * 1024 * 1024,
        max_text_chars: int = 200,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.engine: Engine = engine if engine is not None else EspeakEngine()
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.max_text_chars = max_text_chars

    def cache_path(self, text: str, language: str) -> Path:
        """Where the recording of this text in this language with this engine is kept."""
        key = "\0".join((self.engine.cache_key(language), language, text))
        return self.cache_dir / f"{hashlib.sha256(key.encode('utf-8')).hexdigest()}.wav"

    def cached(self, text: str, language: str) -> bool:
        """Whether a complete recording of the text is on disk (no engine run needed)."""
        return read_cached(self.cache_path(text, language)) is not None

    def recording(self, text: str, language: str) -> array.array:
        """The samples of one text: from the cache, or synthesised and cached.

        Raises :class:`SpeechInputError` for an unknown language or a text
        over :attr:`max_text_chars`, and whatever the engine raises.
        """
        check_language(language)
        if len(text) > self.max_text_chars:
            raise SpeechInputError(f"a phrase is at most {self.max_text_chars} characters")
        path = self.cache_path(text, language)
        cached = read_cached(path)
        if cached is not None:
            with contextlib.suppress(OSError):
                os.utime(path)  # least recently used goes first when pruning
            return cached
        samples = to_output_format(self.engine.synthesize(text, language))
        self._store(path, samples)
        return samples

    def _store(self, path: Path, samples: array.array) -> None:
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.cache_dir, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(wav_bytes(samples))
                os.replace(temporary, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError:
            return  # a full or read-only disk costs a new synthesis next time, not the speech
        self.prune()

    def prune(self) -> None:
        """Drop the least recently used recordings beyond the caps, and stale temp files."""
        entries: list[tuple[float, int, Path]] = []
        now = time.time()
        try:
            listing = list(os.scandir(self.cache_dir))
        except OSError:
            return
        for entry in listing:
            try:
                status = entry.stat()
            except OSError:
                continue
            if entry.name.endswith(".tmp"):
                if now - status.st_mtime > STALE_TEMPORARY_S:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                continue
            if entry.name.endswith(".wav"):
                entries.append((status.st_mtime, status.st_size, Path(entry.path)))
        entries.sort(reverse=True)
        total = 0
        for count, (_, size, path) in enumerate(entries, start=1):
            total += size
            if count > self.max_files or total > self.max_bytes:
                with contextlib.suppress(OSError):
                    path.unlink()


def read_cached(path: Path) -> array.array | None:
    """The cached recording's samples, or None when absent, truncated or not ours."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        return samples_of_wav(data)
    except SpeechFailed:
        return None
