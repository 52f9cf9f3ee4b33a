"""The opt-out register: the numbers that replied STOP (or that a provider reported opted out), kept
as Airflow Variables so that every send, through any connection and from any Airflow process, skips them.

One Variable per opted-out number, ``sms_optout.<digest>`` (the digest is a short hash of the E.164
number, so a send checks its recipients by key, never by scanning values), whose value is JSON
``{"number", "at", "source", "word", "by"}``: when it happened, where it came from (``reply:<conn_id>``,
``provider:<conn_id>``, ``cli``, ``ui:<user>``...), the word the person sent and who recorded it. A
number that opted back in (START, UNSTOP, or a person removing it) leaves an ``sms_optin.<digest>``
Variable with the same fields, so an older STOP arriving late (a delayed webhook, a poll reading back)
cannot undo a newer START, nor an older START a newer STOP: the later ``at`` wins, and a STOP wins a tie.
Variables are the store because a task, a trigger and a callback (Task SDK) and the API server, the CLI
and Airflow 2.11 (ORM) can all reach them (``state.variables``). This module is the only code that
touches these keys.

Checking (``opted_out``): through the ORM one ``IN`` query (in slices of 500 keys); in a task or trigger
on Airflow 3.3, a send to at most ``SMALL_SEND`` recipients asks for each key, a larger one lists the
register's keys once (the SDK pages them; the listing serves the same register object for
``LISTING_TTL`` seconds) and looks each recipient up in that set; on Airflow 3.0-3.2,
which cannot list keys from a task, every recipient's key is asked for. A register that cannot be read
raises ``SmsOptOutRegisterUnavailableError`` (fail closed); a process with no Airflow metadata database
at all (a plain script) is told once that the register is not consulted (``check``).

Writes from the paths that see replies and reports (``note_inbound``, ``note_reports``,
``note_unsubscribed``) never raise: a failed write is logged, with the number masked, and waiting or
sending goes on. Two processes writing the same number at the same moment may both write; the Variable
holds the last write, which is the same decision either way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_sms.core.errors import SmsOptOutRegisterUnavailableError, SmsValidationError
from airflow_provider_sms.core.inbound import OPT_IN_WORDS, OPT_OUT_WORDS, opt_out_word
from airflow_provider_sms.core.phone import mask_number, normalize_number
from airflow_provider_sms.state.variables import KeyStore, VariableKeys, in_task_runtime, keys_listable

if TYPE_CHECKING:
    from airflow_provider_sms.core.results import DeliveryReport, InboundMessage

__all__ = [
    "OPTED_IN",
    "OPTED_OUT",
    "OPT_IN_WORDS",
    "OPT_OUT_WORDS",
    "SMALL_SEND",
    "OptOut",
    "OptOutRegister",
    "digest",
    "note_inbound",
    "note_reports",
    "note_unsubscribed",
    "opt_out_word",
]

log = logging.getLogger(__name__)

OPTED_OUT = "sms_optout."
OPTED_IN = "sms_optin."
# A send to at most this many recipients asks the Task SDK for each one's key; a larger one lists the
# register once (1000 keys a page), which is fewer round trips from here on.
SMALL_SEND = 50
# How long one listing serves the later checks of the same register object (one operator's send).
LISTING_TTL = 30.0

_told_no_database = threading.Event()


def digest(number: str) -> str:
    """The key suffix of an E.164 number: 16 hex digits of its SHA-256."""
    return hashlib.sha256(number.encode("utf-8")).hexdigest()[:16]


def _now() -> datetime:
    return datetime.now(timezone.utc)  # to the microsecond: a correction made at once is later than the mistake


def _aware(moment: datetime | str | None) -> datetime:
    if moment is None:
        return _now()
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise SmsValidationError(f"an opt-out time must carry its time zone, not {moment.isoformat()}")
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class OptOut:
    """One entry of the register (or, under ``sms_optin.``, one opt-back-in)."""

    number: str
    at: datetime
    source: str
    word: str | None = None
    by: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {"number": self.number, "at": self.at.isoformat(), "source": self.source, "word": self.word, "by": self.by}
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "at": self.at.isoformat(),
            "source": self.source,
            "word": self.word,
            "by": self.by,
        }

    @classmethod
    def from_json(cls, text: str) -> OptOut:
        data = json.loads(text)
        return cls(
            number=str(data["number"]),
            at=_aware(data["at"]),
            source=str(data.get("source") or "unknown"),
            word=data.get("word"),
            by=data.get("by"),
        )


def _read(text: str | None) -> OptOut | None:
    if text is None:
        return None
    try:
        return OptOut.from_json(text)
    except (ValueError, KeyError, TypeError):
        return None  # a value written by hand that is not ours: the key alone still counts for checks


class OptOutRegister:
    """The register over a ``KeyStore`` (Airflow Variables by default, reached as this process may).

    :param store: where the keys live; ``state.variables.VariableKeys()`` when None.
    """

    def __init__(self, store: KeyStore | None = None) -> None:
        self.store: KeyStore = store if store is not None else VariableKeys()
        self._listing: tuple[float, frozenset[str]] | None = None

    # --- checking ------------------------------------------------------------------------------

    def opted_out(self, numbers: Iterable[str]) -> set[str]:
        """Which of ``numbers`` (E.164) are in the register.

        :raises Exception: whatever the store raises when it cannot be read (``check`` turns it into
            ``SmsOptOutRegisterUnavailableError``).
        """
        by_key = {OPTED_OUT + digest(n): n for n in dict.fromkeys(numbers)}
        if not by_key:
            return set()
        if self._lists_register(len(by_key)):
            listed = self._listed()
            return {number for key, number in by_key.items() if key in listed}
        found = self.store.get_many(by_key)
        return {by_key[key] for key in found}

    def _listed(self) -> frozenset[str]:
        """The register's keys, listed at most once every ``LISTING_TTL`` seconds by this object (the
        groups of a personalized send and a failover's fallbacks share one listing)."""
        now = time.monotonic()
        if self._listing is None or now - self._listing[0] > LISTING_TTL:
            self._listing = (now, frozenset(self.store.keys(OPTED_OUT)))
        return self._listing[1]

    def _lists_register(self, count: int) -> bool:
        """List the whole register instead of asking for each key: only where each ask is a round trip
        to the supervisor (a task or trigger) and listing is possible (Airflow 3.3+)."""
        if count <= SMALL_SEND or not isinstance(self.store, VariableKeys) or self.store.session is not None:
            return False
        return in_task_runtime() and keys_listable()

    def check(self, numbers: Iterable[str], *, conn_id: str | None = None) -> set[str] | None:
        """``opted_out`` for a send: None when this process has no Airflow metadata database at all (a
        plain script; said once per process), the opted-out numbers otherwise.

        :raises SmsOptOutRegisterUnavailableError: the register exists but cannot be read now.
        """
        try:
            return self.opted_out(numbers)
        except Exception as err:
            if self._no_database():
                if not _told_no_database.is_set():
                    _told_no_database.set()
                    log.warning(
                        "There is no Airflow metadata database here, so the SMS opt-out register is not "
                        "consulted for sends from this process (said once)"
                    )
                return None
            through = f" for a send through {conn_id!r}" if conn_id else ""
            raise SmsOptOutRegisterUnavailableError(
                f"the opt-out register could not be read{through} ({_describe(err)}); nothing was sent"
            ) from err

    def _no_database(self) -> bool:
        """Whether the register's store is the ORM of a process whose metadata database was never set up
        (no ``variable`` table): a plain script, not an outage."""
        if not isinstance(self.store, VariableKeys) or in_task_runtime():
            return False
        try:
            import sqlalchemy as sa
            from airflow import settings

            engine = getattr(settings, "engine", None)
            return engine is None or not sa.inspect(engine).has_table("variable")
        except ImportError:
            return True
        except Exception:  # the database cannot even be inspected: it is down, not absent
            return False

    # --- changing ------------------------------------------------------------------------------

    def _pair(self, number: str) -> tuple[str, str, OptOut | None, OptOut | None]:
        out_key, in_key = OPTED_OUT + digest(number), OPTED_IN + digest(number)
        values = self.store.get_many([out_key, in_key])
        return out_key, in_key, _read(values.get(out_key)), _read(values.get(in_key))

    def add(
        self,
        number: str,
        *,
        source: str,
        word: str | None = None,
        by: str | None = None,
        at: datetime | str | None = None,
    ) -> bool:
        """Opt ``number`` out, as of ``at`` (now by default).

        Nothing changes when the register already holds it as of ``at`` or later, or when it opted back
        in after ``at``. :return: True when the number was not opted out before.
        :raises SmsValidationError: ``number`` is not a phone number.
        """
        number = normalize_number(number)
        moment = _aware(at)
        out_key, in_key, current, back_in = self._pair(number)
        if current is not None and current.at >= moment:
            return False
        if back_in is not None and back_in.at > moment:
            log.info("opt-out of %s as of %s ignored: it opted back in later", mask_number(number), moment.isoformat())
            return False
        self.store.set(out_key, OptOut(number, moment, source, word, by).to_json())
        self._listing = None
        if back_in is not None:
            self.store.delete(in_key)
        if current is None:
            log.info("%s opted out (%s)", mask_number(number), source)
        return current is None

    def remove(
        self,
        number: str,
        *,
        source: str,
        by: str | None = None,
        at: datetime | str | None = None,
        word: str | None = None,
    ) -> bool:
        """Opt ``number`` back in, as of ``at`` (now by default); an opt-out recorded at or after ``at``
        stands. The opt-in is remembered, so an older STOP arriving later does not undo it.

        :return: True when the number was opted out before.
        :raises SmsValidationError: ``number`` is not a phone number.
        """
        number = normalize_number(number)
        moment = _aware(at)
        out_key, in_key, current, back_in = self._pair(number)
        if current is not None and current.at >= moment:
            log.info("opt-in of %s as of %s ignored: it opted out later", mask_number(number), moment.isoformat())
            return False
        if back_in is None or back_in.at < moment:
            self.store.set(in_key, OptOut(number, moment, source, word, by).to_json())
        if current is None:
            return False
        self.store.delete(out_key)
        self._listing = None
        log.info("%s opted back in (%s)", mask_number(number), source)
        return True

    def get(self, number: str) -> OptOut | None:
        """The register's entry for ``number``, or None when it is not opted out."""
        number = normalize_number(number)
        key = OPTED_OUT + digest(number)
        value = self.store.get(key)
        if value is None:
            return None
        return _read(value) or OptOut(number, _now(), "unknown")

    def entries(self) -> list[OptOut]:
        """Every opted-out number, newest first."""
        keys = list(self.store.keys(OPTED_OUT))
        found: list[OptOut] = []
        for start in range(0, len(keys), 500):
            values = self.store.get_many(keys[start : start + 500])
            found += [entry for entry in map(_read, values.values()) if entry is not None]
        return sorted(found, key=lambda e: (e.at, e.number), reverse=True)


def _describe(err: BaseException) -> str:
    from airflow_provider_sms.state import describe_fault

    return describe_fault(err)


def _register(register: OptOutRegister | None) -> OptOutRegister:
    return register if register is not None else OptOutRegister()


def note_inbound(
    messages: Iterable[InboundMessage],
    conn_id: str,
    *,
    register: OptOutRegister | None = None,
    strict: bool = False,
) -> int:
    """Record the STOP and START replies among ``messages`` (received through ``conn_id``); return how
    many changed the register. A failed write is logged and the caller goes on, unless ``strict`` (the
    webhook recorder, whose transaction must then fail as a whole so the provider sends it again)."""
    changed = 0
    for message in messages:
        kind = opt_out_word(message.text)
        if kind is None:
            continue
        word = message.text.strip()[:40]
        try:
            register = _register(register)
            if kind == "stop":
                changed += register.add(
                    message.from_number, source=f"reply:{conn_id}", word=word, at=message.received_at
                )
            else:
                changed += register.remove(
                    message.from_number, source=f"reply:{conn_id}", word=word, at=message.received_at
                )
        except SmsValidationError:
            continue  # not a phone number (an alphanumeric sender): nobody to opt out
        except Exception as err:
            if strict:
                raise
            if register is not None and register._no_database():
                return changed  # a plain script: there is no register to write (``check`` said so)
            log.warning(
                "could not record the %s reply of %s in the opt-out register (%s); it is recorded when seen again",
                kind.upper(),
                mask_number(message.from_number),
                _describe(err),
            )
    return changed


def note_reports(
    reports: Iterable[DeliveryReport],
    conn_id: str,
    *,
    register: OptOutRegister | None = None,
    strict: bool = False,
) -> int:
    """Record the recipients of delivery reports with status ``unsubscribed`` (Cellcast ``replyStop``,
    Clickatell "stopped by user"); return how many were new. Never raises unless ``strict``."""
    return _note_provider(
        ((r.to, r.provider_status, r.at) for r in reports if r.status == "unsubscribed" and r.to),
        conn_id,
        register,
        strict=strict,
    )


def note_unsubscribed(numbers: Iterable[str], conn_id: str, *, register: OptOutRegister | None = None) -> int:
    """Record numbers a provider refused as opted out in its answer to a send (Cellcast
    ``unsubscribeContacts``); return how many were new. Never raises."""
    return _note_provider(((n, "unsubscribed", None) for n in numbers), conn_id, register)


def _note_provider(
    items: Iterable[tuple[str | None, str | None, datetime | None]],
    conn_id: str,
    register: OptOutRegister | None,
    *,
    strict: bool = False,
) -> int:
    changed = 0
    for number, word, at in items:
        if not number:
            continue
        try:
            register = _register(register)
            changed += register.add(number, source=f"provider:{conn_id}", word=word, at=at)
        except SmsValidationError:
            continue
        except Exception as err:
            if strict:
                raise
            if register is not None and register._no_database():
                return changed
            log.warning(
                "could not record the provider-reported opt-out of %s (%s)", mask_number(str(number)), _describe(err)
            )
    return changed
