"""The one clock and the one timestamp format of the shell.

The pure core reads no clock and makes no uids: the shell passes `timestamp_now` and
`new_uid` to the `Store`, and current times to whatever stamps conditions. Timestamps
are RFC 3339 in UTC with second precision, as Kubernetes writes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

#: What `evaluate_once` (validate, translate) stamps: output that depends on files only.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """`2026-01-02T03:04:05Z` (a naive datetime is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(moment: datetime) -> str:
    """Kubernetes' MicroTime (Lease renewals, events.k8s.io Events): microsecond precision."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def timestamp_now() -> str:
    return format_timestamp(utc_now())


def new_uid() -> str:
    return str(uuid.uuid4())
