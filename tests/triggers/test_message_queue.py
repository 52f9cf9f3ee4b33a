"""``MessageQueueTrigger(scheme="sms")``, resolved by the real common.messaging provider, is ``InboundSmsEventTrigger``.

The provider is found through our provider info (``queues``), the trigger it resolves to serializes as the
event trigger with the same arguments, and run against the sandbox it fires what ``InboundSmsEventTrigger``
fires, once per reply, on the same shared poll. Arguments the scheme cannot take fail with a message
that names what it does take. Without the provider (Airflow 2.11) the package imports as before.
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from airflow_provider_sms._compat import AIRFLOW_V_3
from airflow_provider_sms.core.errors import SmsValidationError
from airflow_provider_sms.triggers.inbox import Inbox

MESSAGING = AIRFLOW_V_3 and sys.version_info >= (3, 11)
needs_messaging = pytest.mark.skipif(
    not MESSAGING, reason="common.messaging (MessageQueueTrigger) needs Airflow 3.0.1+ and Python 3.11+"
)
if MESSAGING:  # not importorskip: on Airflow 3, CI installs the real provider (`make venv`: the messaging extra)
    from airflow.providers.common.messaging.triggers.msg_queue import MESSAGE_QUEUE_PROVIDERS, MessageQueueTrigger
    from airflow.providers_manager import ProvidersManager

    from airflow_provider_sms.queues import SmsMessageQueueProvider
    from airflow_provider_sms.triggers.inbound import InboundSmsEventTrigger

NUMBERS = ["+61400000001", "+61400000002"]
LISTING = "GET /v1/sms/messages"


def rebuild(classpath: str, kwargs: dict[str, Any]) -> Any:
    """What the triggerer does with a stored trigger: import its class and call it with its kwargs."""
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs)


def sms_queue(**kwargs: Any) -> Any:
    return MessageQueueTrigger(scheme="sms", **kwargs)


@needs_messaging
def test_the_provider_info_registers_the_sms_scheme_with_common_messaging() -> None:
    assert "airflow_provider_sms.queues.SmsMessageQueueProvider" in ProvidersManager().queue_class_names
    (provider,) = [p for p in MESSAGE_QUEUE_PROVIDERS if p.scheme_matches("sms")]
    assert isinstance(provider, SmsMessageQueueProvider)
    assert not provider.queue_matches("sms://cloudware_default")  # no deprecated queue-URI form


@needs_messaging
def test_the_scheme_resolves_to_the_inbound_event_trigger_with_the_same_arguments() -> None:
    queued = sms_queue(conn_id="cloudware_default", from_numbers=NUMBERS, match=["yes", "no"], poll_interval=7)
    direct = InboundSmsEventTrigger("cloudware_default", from_numbers=NUMBERS, match=["yes", "no"], poll_interval=7)
    assert isinstance(queued.trigger, InboundSmsEventTrigger)
    assert queued.serialize() == direct.serialize()
    assert queued.serialize()[0] == "airflow_provider_sms.triggers.inbound.InboundSmsEventTrigger"
    stored = rebuild(*queued.serialize())
    assert type(stored) is InboundSmsEventTrigger
    assert stored.shared_stream_key() == direct.shared_stream_key()  # one shared poll with every other waiter
    assert sms_queue(conn_id="c").serialize() == InboundSmsEventTrigger("c").serialize()  # the same defaults


@needs_messaging
def test_the_asset_watcher_is_stored_as_the_inbound_event_trigger() -> None:
    from airflow.sdk import Asset, AssetWatcher
    from airflow.serialization.encoders import encode_trigger

    trigger = sms_queue(conn_id="cloudware_default", from_numbers=NUMBERS)
    asset = Asset("customer_replies", watchers=[AssetWatcher(name="replies", trigger=trigger)])
    encoded = encode_trigger(asset.watchers[0].trigger)
    assert encoded["classpath"] == "airflow_provider_sms.triggers.inbound.InboundSmsEventTrigger"
    assert encoded["kwargs"]["sms_conn_id"] == "cloudware_default"


@needs_messaging
def test_the_event_triggers_own_name_for_the_connection_works_too() -> None:
    assert sms_queue(sms_conn_id="c").serialize() == sms_queue(conn_id="c").serialize()
    assert sms_queue(conn_id="c", sms_conn_id="c").serialize() == sms_queue(conn_id="c").serialize()


@needs_messaging
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, SmsValidationError, r"needs conn_id: the SMS connection whose inbox to watch"),
        ({"conn_id": ""}, SmsValidationError, r"needs conn_id"),
        ({"conn_id": "a", "sms_conn_id": "b"}, SmsValidationError, r"conn_id='a' and sms_conn_id='b': pass one"),
        (
            {"conn_id": "c", "since": "2024-01-01", "timeout_at": "x"},
            TypeError,
            r"takes conn_id, from_numbers, match and poll_interval; not since, timeout_at",
        ),
        ({"conn_id": "c", "from_numbers": "+61400000001"}, SmsValidationError, r"from_numbers must be a list"),
        ({"conn_id": "c", "from_numbers": [61400000001]}, SmsValidationError, r"from_numbers must be a list"),
        ({"conn_id": "c", "match": "(unclosed"}, SmsValidationError, r"not a valid regular expression"),
        ({"conn_id": "c", "poll_interval": 0}, SmsValidationError, r"poll_interval must be at least"),
        ({"conn_id": "c", "poll_interval": "soon"}, SmsValidationError, r"poll_interval must be a number"),
    ],
)
def test_arguments_the_scheme_cannot_take_fail_when_the_dag_is_serialized(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """common.messaging resolves the scheme lazily; the DAG processor's serialization does, and shows the
    failure as the DAG file's import error."""
    from airflow.exceptions import SerializationError
    from airflow.sdk import DAG, Asset, AssetWatcher
    from airflow.serialization.serialized_objects import DagSerialization

    watcher = AssetWatcher(name="replies", trigger=sms_queue(**kwargs))
    with DAG("replies", schedule=[Asset("replies", watchers=[watcher])]) as dag:
        pass
    with pytest.raises(SerializationError, match=message) as failed:
        DagSerialization.to_dict(dag)
    assert isinstance(failed.value.__cause__, error)


@pytest.fixture
def inbox(make_conn: Any, sandbox: Any) -> Any:
    make_conn("inbox", "cloudware", host=sandbox.url, country_code="61")
    Inbox._open.clear()
    return sandbox


def reply(sandbox: Any, phone: str, text: str) -> None:
    sandbox.store.add_message(direction="in", provider="cloudware", phone=phone, text=text, status="received")


@needs_messaging
def test_on_the_shared_stream_it_fires_once_per_reply_with_the_event_triggers_payload(inbox: Any) -> None:
    pytest.importorskip("airflow.triggers.shared_stream", reason="shared trigger streams need Airflow 3.3")
    from tests.triggers.test_shared_inbox import Triggerer, run

    queued = rebuild(*sms_queue(conn_id="inbox", from_numbers=NUMBERS, match=["yes"], poll_interval=0.2).serialize())
    direct = InboundSmsEventTrigger("inbox", from_numbers=NUMBERS, match=["yes"], poll_interval=0.2)

    async def scenario(triggerer: Triggerer) -> None:
        started = asyncio.get_running_loop().time()
        ids = [triggerer.add(queued), triggerer.add(direct)]
        await triggerer.until(lambda: LISTING in inbox.faults.stats()["requests"])
        reply(inbox, NUMBERS[0], "Yes please")
        reply(inbox, NUMBERS[1], "yes")
        reply(inbox, "+61400000009", "yes")  # not a number it watches
        reply(inbox, NUMBERS[0], "maybe")  # does not match
        await triggerer.until(lambda: all(len(triggerer.events[i]) >= 2 for i in ids))
        polls = inbox.faults.stats()["requests"][LISTING]
        await triggerer.until(lambda: inbox.faults.stats()["requests"][LISTING] >= polls + 3)  # listed again
        from_queue, from_event_trigger = (triggerer.events[i] for i in ids)
        assert from_queue == from_event_trigger  # the same payloads, each reply once
        assert sorted((e["message"]["from_number"], e["message"]["text"]) for e in from_queue) == [
            (NUMBERS[0], "Yes please"),
            (NUMBERS[1], "yes"),
        ]
        assert set(from_queue[0]) == {"message"} and "raw" not in from_queue[0]["message"]
        elapsed = asyncio.get_running_loop().time() - started
        assert inbox.faults.stats()["requests"][LISTING] <= elapsed / 0.2 + 3  # one poll for both, not two

    run(scenario)


async def first_events(stream: AsyncIterator[Any], limit: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async for event in stream:
        out.append(event.payload)
        if len(out) == limit:
            break
    return out


@needs_messaging
def test_run_on_its_own_fires_what_the_event_trigger_fires(inbox: Any) -> None:
    """``MessageQueueTrigger.run()`` (its own stream, as on Airflow 3.0-3.2) gives the event trigger's events."""

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        queued = sms_queue(conn_id="inbox", from_numbers=NUMBERS[:1], poll_interval=0.1)
        direct = InboundSmsEventTrigger("inbox", from_numbers=NUMBERS[:1], poll_interval=0.1)
        both = asyncio.gather(first_events(queued.run(), 2), first_events(direct.run(), 2))
        while inbox.faults.stats()["requests"].get(LISTING, 0) < 2:  # both have read the inbox once
            await asyncio.sleep(0.05)
        reply(inbox, NUMBERS[0], "first")
        reply(inbox, NUMBERS[1], "someone else")
        reply(inbox, NUMBERS[0], "second")
        return await asyncio.wait_for(both, 20)

    from_queue, from_event_trigger = asyncio.run(scenario())
    assert from_queue == from_event_trigger
    assert [e["message"]["text"] for e in from_queue] == ["first", "second"]


def test_without_common_messaging_the_package_imports_and_the_scheme_says_what_to_install() -> None:
    """As on Airflow 2.11, or Airflow 3 without the extra: Airflow's providers manager reads this exception
    as an optional feature that is off, and nothing else of the package needs the provider."""
    code = (
        "import sys\n"
        "sys.modules['airflow.providers.common.messaging.providers.base_provider'] = None  # not installed\n"
        "import airflow_provider_sms.get_provider_info, airflow_provider_sms.triggers.inbound\n"
        "from airflow.exceptions import AirflowOptionalProviderFeatureException\n"
        "try:\n"
        "    import airflow_provider_sms.queues\n"
        "except AirflowOptionalProviderFeatureException as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "pip install 'airflow-provider-sms[messaging]'" in done.stdout
