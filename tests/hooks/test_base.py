"""What every hook shares: get_sms_hook, base URL rules, UI metadata, provider info, secrets in logs."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from requests_mock import ANY

from airflow_provider_sms.core.errors import SmsError, SmsUnsupportedFeatureError, SmsValidationError
from airflow_provider_sms.get_provider_info import get_provider_info
from airflow_provider_sms.hooks import get_sms_hook
from airflow_provider_sms.hooks.cellcast import CellcastHook
from airflow_provider_sms.hooks.clickatell import ClickatellHook
from airflow_provider_sms.hooks.cloudware import CloudwareHook
from tests.conftest import TOKEN


@pytest.mark.parametrize(
    ("conn_type", "cls"), [("cellcast", CellcastHook), ("clickatell", ClickatellHook), ("cloudware", CloudwareHook)]
)
def test_get_sms_hook_picks_the_hook_for_the_connection_type(make_conn: Any, conn_type: str, cls: type) -> None:
    make_conn("my_sms", conn_type)
    hook = get_sms_hook("my_sms", max_workers=2)
    assert type(hook) is cls
    assert hook.conn_id == "my_sms" and hook.max_workers == 2


def test_get_sms_hook_names_supported_types(make_conn: Any) -> None:
    make_conn("not_sms", "http")
    with pytest.raises(SmsValidationError, match="cellcast, clickatell, cloudware"):
        get_sms_hook("not_sms")


def test_plain_http_to_a_remote_host_is_refused_before_sending(make_conn: Any, requests_mock: Any) -> None:
    make_conn("remote", "cloudware", host="http://sms.example.com")
    with pytest.raises(SmsError, match="refusing plain http://"):
        CloudwareHook("remote").send_sms("+2348012345678", "hi")
    assert requests_mock.call_count == 0


def test_loopback_http_host_is_used_as_base_url(make_conn: Any, requests_mock: Any) -> None:
    make_conn("local", "cloudware", host="http://127.0.0.1:8765")
    requests_mock.post("http://127.0.0.1:8765/v1/sms/send", json={"status": "success", "data": {"id": "1"}})
    assert CloudwareHook("local").send_sms("+2348012345678", "hi").accepted[0]["message_id"] == "1"


def test_clickatell_lists_no_inbound(make_conn: Any) -> None:
    make_conn("ck", "clickatell")
    with pytest.raises(SmsUnsupportedFeatureError, match="no API to list inbound"):
        list(ClickatellHook("ck").iter_messages())


def test_token_is_never_logged(make_conn: Any, requests_mock: Any, caplog: pytest.LogCaptureFixture) -> None:
    make_conn("cc", "cellcast")
    requests_mock.post("https://api.cellcast.com/api/v1/gateway", status_code=401, json={"message": "Token expired"})
    with caplog.at_level(logging.DEBUG), pytest.raises(SmsError) as info:
        CellcastHook("cc").send_sms("0400000001", "hi")
    assert caplog.records, "expected the failure to be logged"
    assert TOKEN not in caplog.text
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)


def test_ui_field_behaviour_relabels_the_token() -> None:
    behaviour = CellcastHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["password"] == "API token"
    assert "login" in behaviour["hidden_fields"]
    assert ClickatellHook.get_ui_field_behaviour()["relabeling"]["password"] == "API key"


def test_provider_info_lists_the_three_connection_types() -> None:
    info = get_provider_info()
    types = {c["connection-type"]: c for c in info["connection-types"]}
    assert set(types) == {"cellcast", "clickatell", "cloudware"}
    for conn_type, spec in types.items():
        module, _, name = spec["hook-class-name"].rpartition(".")
        cls = getattr(__import__(module, fromlist=[name]), name)
        assert cls.conn_type == conn_type
        assert spec["hook-name"] == cls.hook_name
        assert {"sender", "timeout"} <= set(spec["conn-fields"])


def test_timeout_extra_sets_the_read_timeout(make_conn: Any) -> None:
    make_conn("cw", "cloudware", timeout="7.5")
    assert CloudwareHook("cw").client.timeout == (10.0, 7.5)
    make_conn("bad", "cloudware", timeout="soon")
    with pytest.raises(SmsValidationError, match="must be a number of seconds"):
        _ = CloudwareHook("bad").client


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_airflow_discovers_the_provider_and_lists_the_hooks_by_their_names() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-sms" in manager.providers
    names = {conn_type: manager.hooks[conn_type].hook_name for conn_type in ("cellcast", "clickatell", "cloudware")}
    assert names == {"cellcast": "Cellcast SMS", "clickatell": "Clickatell SMS", "cloudware": "Cloudware SMS"}
    provider_info = {c["connection-type"]: c["hook-name"] for c in get_provider_info()["connection-types"]}
    assert provider_info == names


def test_test_connection_of_a_missing_connection_raises_not_found() -> None:
    from airflow_provider_sms._compat import AIRFLOW_V_3

    if AIRFLOW_V_3:
        from airflow.sdk.exceptions import AirflowNotFoundException
    else:
        from airflow.exceptions import AirflowNotFoundException
    with pytest.raises(AirflowNotFoundException):
        CloudwareHook("no_such_connection").test_connection()


@pytest.mark.parametrize(
    ("conn_type", "cls", "url", "field"),
    [
        ("cellcast", CellcastHook, "https://api.cellcast.com/api/v1/apiClient/getResponses", "API token"),
        ("clickatell", ClickatellHook, "https://platform.clickatell.com/messages", "API key"),
        ("cloudware", CloudwareHook, "https://api.cloudware.chat/v1/sms/messages", "Access token"),
    ],
)
def test_a_refused_token_names_the_connection_field_to_fix(
    make_conn: Any, requests_mock: Any, conn_type: str, cls: type, url: str, field: str
) -> None:
    make_conn("refused", conn_type)
    requests_mock.register_uri(ANY, url, status_code=401, json={"message": "Unauthorized"})
    ok, message = cls("refused").test_connection()
    assert not ok
    assert f"check the connection's {field}" in message
    assert "nothing was sent" not in message
