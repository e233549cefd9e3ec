"""Mistakes in what a run was given, told in one paragraph instead of a traceback.

A :class:`UsageError` is raised where the harness knows the cause is the user's: a setting the
machine cannot run (``--amp fp16`` on a CPU), a checkpoint of other settings, a missing file,
weights that cannot be downloaded, a table or folder the library rejects. The scripts
(``train.py``, ``demo.py``, ``leaderboard.py``) print its message and exit with status 2, as
argparse does for a bad flag; every other exception is a bug and keeps its traceback. Each
subclass is also the built-in type the same mistake raised before (``ValueError``,
``FileNotFoundError``, ``RuntimeError``), so code that caught those still does.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class UsageError(Exception):
    """A mistake in the settings or the files a run was given (not a bug of the harness)."""


class SettingsError(UsageError, ValueError):
    """Settings that cannot run here or do not match the checkpoint being resumed."""


class MissingFileError(UsageError, FileNotFoundError):
    """A file or folder the run needs is not where the settings say."""


class DataError(UsageError, ValueError):
    """A table, list or annotation file the library rejected (the message names the file)."""


class WeightsUnavailableError(UsageError, RuntimeError):
    """Pretrained weights that are neither cached nor downloadable (offline)."""


@contextmanager
def data_errors(what: str) -> Iterator[None]:
    """Turn the library's rejection of a user's data into a usage error that says what was read.

    ``FileNotFoundError`` becomes :class:`MissingFileError`, another ``OSError`` or a
    ``ValueError`` (a malformed table, image list or annotation) :class:`DataError`; anything
    else passes through untouched. Wrap only calls that read the user's files.
    """
    try:
        yield
    except FileNotFoundError as error:
        raise MissingFileError(f"{what}: {error}") from error
    except (ValueError, OSError) as error:  # a malformed table, image list or annotation
        raise DataError(f"{what}: {error}") from error


@contextmanager
def told_in_one_paragraph(prog: str) -> Iterator[None]:
    """End a script on a :class:`UsageError` with ``<prog>: error: <message>`` and status 2.

    Any other exception passes through with its traceback: it is a bug to report.
    """
    try:
        yield
    except UsageError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
