"""One error hierarchy whose messages tell a person what to do next.

Every error the user can cause derives from `MEUError`; the CLI and the app print `str(err)` and nothing
else, so each message must stand alone as an actionable sentence.
"""

from __future__ import annotations


class MEUError(Exception):
    """Base class: a problem with the user's input or setup, not a bug."""


class UnreadableClipError(MEUError):
    """The file or folder could not be decoded as a video or as images."""


class ClipTooShortError(MEUError):
    """Fewer than two frames: there is no onset/apex pair to compare."""


class ClipTooLargeError(MEUError):
    """The upload or the frame count is over the configured limit."""


class FrameIndexError(MEUError):
    """An onset/apex/offset index lies outside the clip or in the wrong order."""


class NoFaceError(MEUError):
    """No face was found on the frame the landmarks are taken from."""


class AnnotationSheetError(MEUError):
    """An annotation sheet is missing, of the wrong dataset, or lacks required columns."""


class UnknownAUError(MEUError):
    """An action-unit code that the FACS table does not know was asked for explicitly."""


class BackendError(MEUError):
    """A named backend is unknown or its model/checkpoint cannot be loaded."""


class ConfigError(MEUError):
    """A configuration file or flag is invalid."""
