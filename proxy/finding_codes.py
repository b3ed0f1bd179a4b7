"""The finding codes the observer raises, for what reads a code a user typed.

``finding:CODE`` in a filter matches the codes of the findings frames carry;
a code no finding has (a typo: ``flow-control-exeeded``) matches nothing, and
what says so (``export``'s "no frame matches") names the code meant, from this
list. It is docs/findings.md's table, one to one (a test keeps them equal and
checks that every code the source raises is here).
"""

from __future__ import annotations

FINDING_CODES: frozenset[str] = frozenset((
    "connection-specific-header", "content-length-conflict", "content-length-forbidden",
    "content-length-invalid",
    "content-length-mismatch", "content-not-allowed", "continuation-flood",
    "continuation-missing", "continuation-unexpected", "data-before-headers", "desynced",
    "empty-frames-flood", "extended-connect-not-enabled", "extension-frame-ignored",
    "first-frame-not-settings",
    "flow-control-error-unexplained", "flow-control-exceeded", "flow-control-stalled",
    "frame-after-reset",
    "frame-malformed", "frame-on-closed-stream", "frame-on-idle-stream", "frame-too-large",
    "frame-truncated",
    "goaway-last-stream-id-increased", "grpc-status-invalid", "grpc-status-missing",
    "h2c-settings-invalid", "header-block-too-large", "header-block-truncated",
    "header-list-amplified", "header-list-too-large", "header-name-invalid",
    "header-name-uppercase",
    "header-value-invalid", "host-authority-mismatch", "hpack-error", "hpack-size-updates",
    "informational-end-stream", "max-concurrent-streams-exceeded", "padding-not-zero",
    "ping-ack-unmatched", "ping-flood", "preface-missing", "priority-field-invalid",
    "priority-tree-limit",
    "priority-update-from-server", "priority-update-stream-0", "pseudo-header-after-regular",
    "pseudo-header-duplicated", "pseudo-header-in-trailers", "pseudo-header-invalid",
    "pseudo-header-missing", "push-disabled", "push-from-client", "push-on-closed-stream",
    "push-request-invalid", "rapid-reset", "reserved-bit-set", "self-dependency",
    "server-opened-stream", "setting-out-of-range", "settings-ack-unexpected",
    "settings-ack-with-payload", "settings-flood", "settings-not-acknowledged", "status-101",
    "stream-after-goaway", "stream-id-not-zero", "stream-id-order", "stream-id-parity",
    "stream-id-zero", "stream-not-processed", "stream-unfinished",
    "trailers-without-end-stream", "unknown-frame-type", "unknown-setting", "window-overflow",
    "websocket-close-code", "websocket-control-frame", "websocket-deflate-invalid",
    "websocket-frame-invalid", "websocket-invalid-utf8", "websocket-masked-by-server",
    "websocket-reserved-bits", "websocket-unmasked", "window-update-zero",
))
