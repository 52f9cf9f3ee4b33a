"""Provider hooks and ``get_sms_hook``, which picks the right one for a connection's type.

Hook modules are imported only when asked for, so importing this package stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from airflow_provider_sms.connections import CONNECTION_TYPES
from airflow_provider_sms.core.errors import SmsValidationError

if TYPE_CHECKING:
    from airflow_provider_sms.hooks.base import SmsHook

# conn_type -> dotted path of its hook class, from the one table of connection types.
HOOK_CLASSES = {conn_type: spec["hook-class-name"] for conn_type, spec in CONNECTION_TYPES.items()}


def hook_class_for(conn_type: str) -> type[SmsHook]:
    """The hook class for a connection type, or a clear error naming the supported ones."""
    path = HOOK_CLASSES.get((conn_type or "").lower())
    if path is None:
        raise SmsValidationError(
            f"connection type {conn_type!r} is not an SMS provider; use one of: {', '.join(sorted(HOOK_CLASSES))}"
        )
    module, _, name = path.rpartition(".")
    return getattr(import_module(module), name)  # type: ignore[no-any-return]


def get_sms_hook(conn_id: str, **hook_kwargs: object) -> SmsHook:
    """Build the hook for connection ``conn_id`` according to its connection type.

    :param hook_kwargs: passed to the hook (``batch_size``, ``max_workers``, ...).
    """
    from airflow_provider_sms._compat import BaseHook

    conn = BaseHook.get_connection(conn_id)
    cls = hook_class_for(conn.conn_type or "")
    hook = cls(conn_id, **hook_kwargs)  # type: ignore[arg-type]
    hook.__dict__["connection"] = conn  # already fetched: do not look it up twice
    return hook
