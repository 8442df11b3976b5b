"""The exceptions nvcodec raises; the command-line tools turn them into one-line messages."""


class NvcError(Exception):
    """Base class of every error nvcodec reports to a user."""

    exit_code = 1


class InputError(NvcError, ValueError):
    """A video or option the user gave cannot be used (missing, malformed, unsupported)."""

    exit_code = 2


class OutputError(NvcError, OSError):
    """An output cannot be written (exists without --force, unknown format, disk error)."""

    exit_code = 3


class BitstreamError(NvcError, ValueError):
    """A .nvc file is malformed, truncated, corrupted or of a version this decoder cannot read."""

    exit_code = 4


class DamagedRecord(BitstreamError):
    """A frame record was read in full but its contents are corrupted (CRC, fields, substreams):
    the records after it can still be read."""


class WeightsError(NvcError, ValueError):
    """Model weights are missing, malformed or not the ones a bitstream was made with."""

    exit_code = 5
