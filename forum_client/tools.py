"""The SDK's kit for command-line tools built on it (``forum-admin`` and ``forum-server`` use
it): the exit-code contract and the bulk-input readers, public and stable.

- :func:`run` / :func:`exit_with`: run a click command, turning library errors into the
  exit codes below and one human message (the library itself never exits);
- :func:`exit_code_for`: the code and label of one error;
- :func:`detect_format` / :func:`read_signals`: stream CSV or JSON Lines signal files,
  naming ``FILE:LINE`` in every error;
- :func:`version_option`, :func:`connection_hint` and the option types (``ADDRESS``,
  ``MEMBER_ID``, ``NEW_FILE``, ``Duration``...) and files (``LOCAL_COPY``, ``NOTE_FILE``,
  ``OUTPUT_FILE``...) that check every value while the command line is parsed (exit 2 naming
  the option);
- :func:`read_bounded`: read a small file whole, refusing more than a limit;
- :func:`without_password`: a database URL or error message fit to print;
- :func:`report_options` / :func:`emit_report`: the transparency report's options and
  output, shared by ``forum-client report`` and ``forum-admin report``.

Exit codes: 0 ok, 1 unexpected failure, 2 bad input or usage, 3 configuration, 4 the forum
refused or could not be reached, 5 a security failure, 6 local store failure, 7 no witness
quorum for the forum's newest entries (the copy stays at the last quorum checkpoint).

    >>> exit_code_for(StoreError("disk full"))
    (6, 'store')
"""

from __future__ import annotations

from .cli_errors import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_NO_QUORUM,
    EXIT_OK,
    EXIT_SECURITY,
    EXIT_STORE,
    EXIT_TRANSPORT,
    EXIT_USAGE,
    connection_hint,
    exit_code_for,
    exit_with,
    run,
    version_option,
)
from .cli_files import LOCAL_COPY, NOTE_FILE, OUTPUT_DIR, OUTPUT_FILE
from .cli_governance import emit_report, report_options
from .cli_types import (
    ADDRESS,
    DATABASE,
    DISPUTE_ID,
    HOST,
    HTTP_URL,
    INCIDENT_ID,
    MEMBER_ID,
    NAME,
    NEW_FILE,
    OPTIONAL_LISTEN,
    ORIGIN,
    PUBLIC_KEY_FILE,
    REQUIRED_GROUP_ID,
    REQUIRED_TEXT,
    SIGNAL_TYPE,
    TEXT,
    WITNESS_NAME,
    WITNESS_VKEY,
    Duration,
    FiniteRange,
    parse_duration_ms,
    signal_option,
    without_password,
)
from .errors import StoreError
from .files import MAX_PEM_BYTES, FileTooLargeError, read_bounded
from .inputfiles import detect_format, read_signals

__all__ = [
    "ADDRESS",
    "DATABASE",
    "DISPUTE_ID",
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_NO_QUORUM",
    "EXIT_OK",
    "EXIT_SECURITY",
    "EXIT_STORE",
    "EXIT_TRANSPORT",
    "EXIT_USAGE",
    "HOST",
    "HTTP_URL",
    "INCIDENT_ID",
    "LOCAL_COPY",
    "MAX_PEM_BYTES",
    "MEMBER_ID",
    "NAME",
    "NEW_FILE",
    "NOTE_FILE",
    "OPTIONAL_LISTEN",
    "ORIGIN",
    "OUTPUT_DIR",
    "OUTPUT_FILE",
    "PUBLIC_KEY_FILE",
    "REQUIRED_GROUP_ID",
    "REQUIRED_TEXT",
    "SIGNAL_TYPE",
    "TEXT",
    "WITNESS_NAME",
    "WITNESS_VKEY",
    "Duration",
    "FileTooLargeError",
    "FiniteRange",
    "StoreError",
    "connection_hint",
    "detect_format",
    "emit_report",
    "exit_code_for",
    "exit_with",
    "parse_duration_ms",
    "read_bounded",
    "read_signals",
    "report_options",
    "run",
    "signal_option",
    "version_option",
    "without_password",
]
