"""Open SMS questions and the replies they consumed, kept in Airflow's metadata database for every process.

A question texted by ``operators.hitl`` may be answered by a reply from one of its phones; several
triggerers (and the workers that ask) must agree on which question a reply answers. They agree through
Airflow Variables, the one store with a prefix listing that both a task and a trigger may use in
Airflow 3.3 (``Variable.set``/``keys``/``delete``, served by the metadata database). Only keys are
used (values are ``"1"``), so reads never go through a cache:

- ``sms_q.<scope>.<ref>.<ti_id>.<asked>.<timeout>``: a question open to one phone on one connection
  (``scope`` is a hash of the two, so no number is stored), its reference, its task instance, when it
  was asked and until when it waits (epoch seconds, ``0`` without a timeout);
- ``sms_c.<scope>.<received>.<reply>.<claimant>``: a reply (a hash of its provider id) taken by the
  question ``claimant`` (a task instance id), or by ``none`` when it was ambiguous;
- ``sms_n.<scope>.<received>.<reply>.<ti_id>``: who texts the "which question?" notice for a reply.

Airflow's Variable API has no insert-if-absent, so a claim is *write, then list*: a process writes its
own key, lists the prefix, and holds the claim only when no other claimant's key is there; otherwise it
deletes its own key and yields. Of two processes, at most one can list no other key: whoever lists
last does so after both keys were written. Both may yield, which is safe: a reference is then chosen
again, and a reply answers nothing. References are unique among the open questions to a phone by the
same rule (the prefix is the reference). Keys of closed questions are deleted when a question ends
(answered, timed out, or resumed by a UI answer), and claims once no open question to the phone was
asked before their reply. A retry of a task (a new task instance id) names its earlier try's id and
takes over that try's question: same reference, its leftover key removed.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from airflow_provider_sms.state.variables import VariableKeys

log = logging.getLogger(__name__)

QUESTION = "sms_q."
CLAIM = "sms_c."
NOTICE = "sms_n."
NOBODY = "none"
REFERENCES = 10_000  # four digits
CHOICE_ATTEMPTS = 50


class KeyStore(Protocol):
    """The three calls a claim needs (``state.variables.VariableKeys`` in production)."""

    def set(self, key: str, value: Any) -> None: ...

    def keys(self, prefix: str) -> Sequence[str]: ...

    def delete(self, key: str) -> None: ...


def registry_available() -> bool:
    """Whether this Airflow lists Variable keys (3.3 and later); before, questions are not shared."""
    try:
        from airflow.sdk import Variable
    except ImportError:
        return False
    return hasattr(Variable, "keys")


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\0".join(parts).encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _epoch(moment: datetime | None) -> int:
    return int(moment.timestamp()) if moment is not None else 0


@dataclass(frozen=True)
class Question:
    """One open question to one phone, as its key holds it."""

    key: str
    ref: str
    ti_id: str
    asked: datetime
    timeout: datetime | None

    def open_at(self, moment: datetime) -> bool:
        """Whether the question was asked at or before ``moment`` and had not timed out by then."""
        return self.asked <= moment and (self.timeout is None or moment < self.timeout)


class Questions:
    """The open questions to one phone on one connection, and the claims on its replies."""

    def __init__(self, conn_id: str, phone: str, store: KeyStore | None = None) -> None:
        self.scope = _digest(conn_id, phone)
        self.store: KeyStore = store if store is not None else VariableKeys()

    # --- questions ------------------------------------------------------------------------------

    def _prefix(self, ref: str = "") -> str:
        return f"{QUESTION}{self.scope}." + (f"{ref}." if ref else "")

    def open(self) -> list[Question]:
        found = []
        for key in self.store.keys(self._prefix()):
            parts = key[len(self._prefix()) :].split(".")
            if len(parts) != 4 or not parts[2].isdigit() or not parts[3].isdigit():
                continue
            ref, ti_id, asked, timeout = parts
            found.append(
                Question(
                    key,
                    ref,
                    ti_id,
                    datetime.fromtimestamp(int(asked), timezone.utc),
                    datetime.fromtimestamp(int(timeout), timezone.utc) if int(timeout) else None,
                )
            )
        return found

    def key_for(self, ref: str, ti_id: str, asked: datetime, timeout: datetime | None) -> str:
        return f"{self._prefix(ref)}{ti_id}.{_epoch(asked)}.{_epoch(timeout)}"

    def hold(
        self, ref: str, ti_id: str, asked: datetime, timeout: datetime | None, *, earlier: Iterable[str] = ()
    ) -> bool:
        """Claim ``ref`` for ``ti_id`` (write, then list); False, with the key removed, when taken.

        :param earlier: task instance ids of earlier tries of the same task: their questions are this
            one's, not rivals (``take_over`` then removes their keys).
        """
        key = self.key_for(ref, ti_id, asked, timeout)
        self.store.set(key, "1")
        now = datetime.now(timezone.utc)
        mine = {ti_id, *earlier}
        rivals = [
            q for q in self.open() if q.ref == ref and q.ti_id not in mine and (q.timeout is None or q.timeout > now)
        ]
        if rivals:
            self.store.delete(key)
            return False
        return True

    def take_over(self, earlier: Iterable[str]) -> None:
        """Remove the keys an earlier try of the same task left (a worker killed before it deferred)."""
        gone = set(earlier)
        for question in self.open() if gone else ():
            if question.ti_id in gone:
                self.store.delete(question.key)

    def ensure(self, ref: str, ti_id: str, asked: datetime, timeout: datetime | None) -> None:
        """Write this question's key again (idempotent): a trigger resumed after its key was removed."""
        key = self.key_for(ref, ti_id, asked, timeout)
        if key not in self.store.keys(self._prefix(ref)):
            self.store.set(key, "1")

    def close(self, ti_id: str) -> None:
        """Remove ``ti_id``'s question, and the claims no open question can need any more."""
        remaining = []
        for question in self.open():
            if question.ti_id == ti_id:
                self.store.delete(question.key)
            else:
                remaining.append(question)
        oldest = min((q.asked for q in remaining), default=None)
        for prefix in (f"{CLAIM}{self.scope}.", f"{NOTICE}{self.scope}."):
            for key in self.store.keys(prefix):
                received = key[len(prefix) :].split(".", 1)[0]
                if received.isdigit() and (oldest is None or int(received) < _epoch(oldest) - 60):
                    self.store.delete(key)

    # --- replies --------------------------------------------------------------------------------

    def _reply_prefix(self, kind: str, provider: str, message_id: str, received: datetime) -> str:
        return f"{kind}{self.scope}.{_epoch(received)}.{_digest(provider, message_id)}."

    def claimants(self, provider: str, message_id: str, received: datetime) -> list[str]:
        prefix = self._reply_prefix(CLAIM, provider, message_id, received)
        return [key[len(prefix) :] for key in self.store.keys(prefix)]

    def claim(self, provider: str, message_id: str, received: datetime, claimant: str) -> bool:
        """Take a reply for ``claimant`` (write, then list); False, with the key removed, when another has it."""
        prefix = self._reply_prefix(CLAIM, provider, message_id, received)
        self.store.set(prefix + claimant, "1")
        if any(key != prefix + claimant for key in self.store.keys(prefix)):
            if claimant != NOBODY:
                self.store.delete(prefix + claimant)
            return False
        return True

    def take_notice(self, provider: str, message_id: str, received: datetime, ti_id: str) -> bool:
        """Whether ``ti_id`` texts the notice for an ambiguous reply (at most one question does)."""
        prefix = self._reply_prefix(NOTICE, provider, message_id, received)
        self.store.set(prefix + ti_id, "1")
        if any(key != prefix + ti_id for key in self.store.keys(prefix)):
            self.store.delete(prefix + ti_id)
            return False
        return True


def choose_reference(
    registries: Iterable[Questions],
    ti_id: str,
    asked: datetime,
    timeout: datetime | None,
    *,
    preferred: str | None = None,
    earlier: Iterable[str] = (),
) -> str:
    """A four-digit reference no other open question to any of these phones holds, claimed for ``ti_id``.

    :param earlier: task instance ids of earlier tries of the same task (a retry asks the question an
        earlier try texted): their open questions count as this one's, and their keys are removed once
        the reference is held, so a retry keeps the reference the person was texted.
    :raises RuntimeError: no free reference was won in ``CHOICE_ATTEMPTS`` tries.
    """
    phones = list(registries)
    mine = {ti_id, *earlier}
    rng = random.SystemRandom()
    candidate = preferred
    for _ in range(CHOICE_ATTEMPTS):
        taken = {q.ref for registry in phones for q in registry.open() if q.ti_id not in mine}
        if candidate is None or candidate in taken:
            free = [f"{n:04d}" for n in range(REFERENCES) if f"{n:04d}" not in taken]
            if not free:
                break
            candidate = rng.choice(free)
        held = []
        for registry in phones:
            if registry.hold(candidate, ti_id, asked, timeout, earlier=mine):
                held.append(registry)
                continue
            for other in held:  # one phone refused it: give it back everywhere, and choose again
                other.store.delete(other.key_for(candidate, ti_id, asked, timeout))
            break
        else:
            for registry in phones:
                registry.take_over(mine - {ti_id})
            return candidate
        candidate = None
    raise RuntimeError("could not reserve a unique reference for the question; try again")


def open_before(questions: Sequence[Question], moment: datetime) -> list[Question]:
    """The questions that were open when a reply stamped ``moment`` arrived."""
    return [q for q in questions if q.open_at(moment)]
