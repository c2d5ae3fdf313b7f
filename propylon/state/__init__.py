"""The state directory (generations, statuses, pid) and the local API socket."""

from propylon.state.api import ApiServer, InstanceRunningError, diagnostic_to_json
from propylon.state.client import ApiClient, ApiError, NoInstanceError
from propylon.state.conditions import merge_conditions, merge_statuses
from propylon.state.documents import object_list, to_document
from propylon.state.statedir import (
    STATE_DIR_ENV,
    StateDir,
    default_state_dir,
    read_json,
    write_json_atomic,
)
from propylon.state.status import StatusKeeper

__all__ = [
    "STATE_DIR_ENV",
    "ApiClient",
    "ApiError",
    "ApiServer",
    "InstanceRunningError",
    "NoInstanceError",
    "StateDir",
    "StatusKeeper",
    "default_state_dir",
    "diagnostic_to_json",
    "merge_conditions",
    "merge_statuses",
    "object_list",
    "read_json",
    "to_document",
    "write_json_atomic",
]
