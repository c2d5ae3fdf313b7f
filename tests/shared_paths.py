"""Where the Gateway API data shared with the project lives (read in place, never copied).

`$PROPYLON_SHARED`, else `shared/` beside the checkout (how CI lays it out), else
/work/shared."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    candidates = [
        Path(os.environ["PROPYLON_SHARED"]) if os.environ.get("PROPYLON_SHARED") else None,
        REPO.parent / "shared",
        Path("/work/shared"),
    ]
    for candidate in candidates:
        if candidate is not None and (candidate / "gateway-api").is_dir():
            return candidate
    raise FileNotFoundError("the shared Gateway API data (shared/gateway-api) was not found")


GATEWAY_API = shared_dir() / "gateway-api"
CONFORMANCE = GATEWAY_API / "conformance"
