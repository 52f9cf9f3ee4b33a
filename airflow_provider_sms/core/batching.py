"""Fan-out: split recipients into provider-sized batches and send them, alone or over a bounded pool.

A batch that fails does not stop the others: its recipients are listed in ``rejected`` with the error's
code, so the caller knows exactly who got the message. Only an authentication failure stops the send,
since every later batch would fail the same way; recipients never attempted are marked so. An
unexpected exception after a request may have gone out is recorded as ``delivery_unknown``. When every
batch failed, the first error is raised with the full result attached as ``error.result``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from airflow_provider_sms.core.errors import SmsAuthError, SmsDeliveryUnknownError, SmsError
from airflow_provider_sms.core.results import SendResult

log = logging.getLogger(__name__)

T = TypeVar("T")


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def send_batches(
    into: SendResult,
    batches: Sequence[Sequence[str]],
    send_batch: Callable[[Sequence[str]], SendResult],
    *,
    max_workers: int = 1,
) -> SendResult:
    """Call ``send_batch`` for each batch (at most ``max_workers`` at once) and merge into ``into``.

    Results are merged in batch order whatever order the calls finish in.

    :raises SmsError: the first batch's error when no batch succeeded, with ``error.result`` = ``into``.
    """
    provider = into.provider
    errors: list[SmsError | None] = [None] * len(batches)
    auth_failure: list[SmsAuthError] = []  # set once; every later batch would fail the same way

    def run(index: int) -> SendResult:
        batch = batches[index]
        if auth_failure:
            errors[index] = auth_failure[0]
            result = SendResult(provider)
            for number in batch:
                result.add_rejected(number, SmsAuthError.code, "not attempted: the provider refused the credentials")
            return result
        try:
            return send_batch(batch)
        except SmsError as err:
            errors[index] = err
            if isinstance(err, SmsAuthError):
                auth_failure.append(err)
            log.warning("%s: a batch of %d recipient(s) failed: %s", provider, len(batch), err)
            result = SendResult(provider, requests=1)
            for number in batch:
                result.add_rejected(number, err.code, str(err))
            return result
        except Exception as exc:  # a bug after the request went out must not lose who was texted
            errors[index] = SmsDeliveryUnknownError(f"unexpected {type(exc).__name__} after sending", provider=provider)
            log.exception("%s: unexpected error while sending a batch of %d", provider, len(batch))
            result = SendResult(provider, requests=1)
            reason = f"unexpected {type(exc).__name__} after sending; not resent"
            for number in batch:
                result.add_rejected(number, SmsDeliveryUnknownError.code, reason)
            return result

    if max_workers <= 1 or len(batches) <= 1:
        for index in range(len(batches)):
            into.merge(run(index))
    else:
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"sms-{provider}") as pool:
            for part in pool.map(run, range(len(batches))):
                into.merge(part)
    first = errors[0]
    if batches and first is not None and all(errors):
        first.result = into
        raise first
    return into
