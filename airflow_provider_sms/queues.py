"""The ``sms`` scheme of Airflow's common.messaging: ``MessageQueueTrigger(scheme="sms", ...)`` watches an inbox.

``SmsMessageQueueProvider`` (listed under ``queues`` in the provider info) resolves the scheme to
``InboundSmsEventTrigger``, built from the ``MessageQueueTrigger``'s keyword arguments and serialized
as that trigger: same shared poll, same once-per-reply events, same payload. Without common.messaging
(always on Airflow 2.11) importing this module raises ``AirflowOptionalProviderFeatureException``, which
Airflow's providers manager reads as a feature that is off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowOptionalProviderFeatureException

from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.core.inbound import compile_match
from airflow_provider_sms.triggers.inbound import InboundSmsEventTrigger

try:
    from airflow.providers.common.messaging.providers.base_provider import BaseMessageQueueProvider
except ImportError:
    raise AirflowOptionalProviderFeatureException(
        "the 'sms' scheme of MessageQueueTrigger needs apache-airflow-providers-common-messaging>=2.0 "
        "(pip install 'airflow-provider-sms[messaging]', Airflow 3.0.1 or later)"
    ) from None

if TYPE_CHECKING:
    from airflow.triggers.base import BaseEventTrigger  # type: ignore[attr-defined,unused-ignore]

SCHEME = "sms"
_EVENT_TRIGGER = f"{InboundSmsEventTrigger.__module__}.{InboundSmsEventTrigger.__qualname__}"
_TAKES = "conn_id, from_numbers, match and poll_interval"


class InboundSmsQueueTrigger(InboundSmsEventTrigger):
    """``InboundSmsEventTrigger`` from the keyword arguments of ``MessageQueueTrigger(scheme="sms", ...)``.

    It takes common.messaging's ``conn_id`` (or the event trigger's own name for it, ``sms_conn_id``),
    checks every argument when the DAG is parsed, with a message naming what the scheme takes, and
    serializes as ``InboundSmsEventTrigger``: the trigger stored for the ``AssetWatcher`` and run by the
    triggerer is that one.

    :param conn_id: a connection whose hook lists inbound messages (Cellcast, Cloudware).
    :param from_numbers: only messages from these numbers count (a list, not one string).
    :param match: a regex, or keywords matched case-insensitively as whole words.
    :param poll_interval: seconds between polls (at least 1).
    """

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        sms_conn_id: str | None = None,
        from_numbers: Sequence[str] | None = None,
        match: str | Sequence[str] | None = None,
        poll_interval: float = 60.0,
        **unexpected: Any,
    ) -> None:
        if unexpected:
            raise TypeError(
                f"MessageQueueTrigger(scheme={SCHEME!r}) takes {_TAKES}; not {', '.join(sorted(unexpected))}"
            )
        if conn_id is not None and sms_conn_id is not None and conn_id != sms_conn_id:
            raise SmsValidationError(
                f"MessageQueueTrigger(scheme={SCHEME!r}) got conn_id={conn_id!r} and sms_conn_id={sms_conn_id!r}: "
                "pass one"
            )
        connection = conn_id if conn_id is not None else sms_conn_id
        if not isinstance(connection, str) or not connection:
            raise SmsValidationError(
                f"MessageQueueTrigger(scheme={SCHEME!r}) needs conn_id: the SMS connection whose inbox to watch"
            )
        if isinstance(from_numbers, str) or not all(isinstance(n, str) and n for n in from_numbers or ()):
            raise SmsValidationError(
                f"MessageQueueTrigger(scheme={SCHEME!r}): from_numbers must be a list of phone numbers "
                f"(strings), got {type(from_numbers).__name__}"
            )
        compile_match(match)  # a bad regex fails the DAG's parse, not the triggerer
        super().__init__(connection, from_numbers=from_numbers, match=match, poll_interval=poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return _EVENT_TRIGGER, kwargs


class SmsMessageQueueProvider(BaseMessageQueueProvider):
    """The ``sms`` scheme: ``MessageQueueTrigger(scheme="sms", conn_id=..., from_numbers=[...], match=...)``.

    .. code-block:: python

        from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
        from airflow.sdk import Asset, AssetWatcher

        trigger = MessageQueueTrigger(scheme="sms", conn_id="cloudware_default", from_numbers=["+61400000001"])
        replies = Asset("customer_replies", watchers=[AssetWatcher(name="replies", trigger=trigger)])

    Each new matching reply becomes one asset event whose ``extra["payload"]["message"]`` is the
    ``InboundMessage`` dict, as with ``InboundSmsEventTrigger``. There is no queue-URI form (the
    deprecated ``queue=`` argument): an inbox is named by its connection.
    """

    scheme = SCHEME

    def trigger_class(self) -> type[BaseEventTrigger]:
        return InboundSmsQueueTrigger
