"""Errors of the SMPP layer, grouped by what happens next.

- ``RemoteProtocolError``: the peer sent something wrong. It carries the command_status we
  answer with. ``fatal`` says whether the byte stream can still be trusted: a malformed body
  is answered with generic_nack and the bind stays up; a broken frame (command_length below
  the header size) leaves no way to find the next PDU, so the link is closed.
- ``LocalProtocolError``: we asked the session for something the protocol does not allow
  (sending in the wrong bind state, past the window). A bug in the caller, never the peer's.
- ``EncodeError``: a PDU value that cannot be put on the wire (a 300-octet short_message).
"""

from __future__ import annotations

from gateway.smpp.constants import Status, status_name


class SmppError(Exception):
    """Base of every error raised by gateway.smpp."""


class RemoteProtocolError(SmppError):
    """The peer broke the protocol; answer with ``command_status`` (generic_nack)."""

    def __init__(
        self,
        message: str,
        *,
        command_status: int = Status.RSYSERR,
        command_id: int = 0,
        sequence_number: int = 0,
        fatal: bool = False,
    ) -> None:
        super().__init__(message)
        self.command_status = command_status
        self.command_id = command_id
        self.sequence_number = sequence_number
        self.fatal = fatal

    def __str__(self) -> str:
        return f"{self.args[0]} ({status_name(self.command_status)})"


class DecodeError(RemoteProtocolError):
    """A PDU whose bytes do not decode. The only exception the decoder raises."""


class LocalProtocolError(SmppError):
    """The caller asked the session for something SMPP does not allow in this state."""


class WindowFull(LocalProtocolError):
    """No room in the window: wait for a response before sending another request."""


class EncodeError(SmppError, ValueError):
    """A PDU field value that cannot be encoded."""
