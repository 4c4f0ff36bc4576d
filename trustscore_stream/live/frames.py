"""Server-Sent Events wire format (the WHATWG EventSource framing)."""

from __future__ import annotations

# A comment line with no blank line after it: it ends no block, so no client library turns
# it into an (empty) event, and the bytes still keep proxies and dead-peer checks going.
PING = b": ping\n"


def frame(event_id: str, event: str, data: bytes) -> bytes:
    """One event; `data` must be a single line (our JSON always is)."""
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (event_id.encode(), event.encode(), data)


def retry(milliseconds: int) -> bytes:
    """The `retry:` field, written in front of the stream's first frame (same block): a
    block of its own would be an empty event to some client libraries."""
    return b"retry: %d\n" % milliseconds


def single_line(data: bytes) -> bytes:
    """SSE data cannot hold a raw newline; JSON never needs one outside strings."""
    if b"\n" in data or b"\r" in data:
        return data.replace(b"\r", b"").replace(b"\n", b"")
    return data
