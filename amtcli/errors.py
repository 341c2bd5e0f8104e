"""One exception hierarchy for everything a user can cause.

The CLI maps each class to a one-line message and an exit code (see ``amtcli.cli.common``);
library callers catch :class:`AmtError`.
"""

from __future__ import annotations


class AmtError(Exception):
    """Base class of every error amt raises on purpose."""

    exit_code = 1


class BadInput(AmtError):
    """An option or argument that cannot be used as given."""

    exit_code = 2


class BadAudio(AmtError):
    """A file that is missing, empty, truncated or not audio."""


class BadMidi(AmtError):
    """A MIDI file that is missing, unreadable or has no notes."""


class OutputExists(AmtError):
    """An output file is already there and ``--overwrite`` was not given."""


class ModelNotFound(AmtError):
    """A model name, folder or Hub reference that does not resolve."""


class ChecksumError(AmtError):
    """A model file whose sha256 does not match the registry."""


class ConfigMismatch(AmtError):
    """Weights and the front end / configuration they are used with do not agree."""


class DatasetNotFound(AmtError):
    """A dataset that is not where it was looked for."""


class SoundfontNotFound(AmtError):
    """A soundfont file that is missing or cannot be used."""


class MissingDependency(AmtError):
    """An external program or optional package is not installed."""


class AmtWarning(UserWarning):
    """Input amt can use but that is probably not what the user meant (a truncated file...).

    The CLI prints each as one ``warning:`` line; library callers see an ordinary Python warning.
    """
