"""Errors a user can cause. The CLI shows each as one line and exits non-zero."""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "CheckpointError",
    "DataError",
    "EdgecError",
    "OutputError",
    "PassError",
    "UnsupportedModelError",
    "UnsupportedOpError",
    "VerificationError",
]


class EdgecError(Exception):
    """Base of every error that is the user's to fix; the message says what is wrong and what to do."""


class CheckpointError(EdgecError):
    """A model checkpoint is missing, garbled, or disagrees with its config."""


class UnsupportedModelError(EdgecError):
    """The checkpoint is a model family edgec does not compile."""


class DataError(EdgecError):
    """Calibration or evaluation data is missing, empty, undecodable or non-finite."""


class ArtifactError(EdgecError):
    """An edgec output folder (a QDIR or a build) is missing files, garbled, or altered since it was written."""


class OutputError(EdgecError):
    """The output folder cannot be written."""


class PassError(EdgecError):
    """A pass failed; the message names the pass and the passes that ran before it."""


class UnsupportedOpError(EdgecError):
    """An interpreter or emitter met an op it has no handler for."""


class VerificationError(EdgecError):
    """An artifact disagrees with its reference beyond the allowed tolerance."""
