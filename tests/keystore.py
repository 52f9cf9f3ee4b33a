"""Key stores that tests share: the in-memory stand-in for Airflow's Variables
(``state.variables.MemoryKeys``), and emptying the opt-out register in the suite's metadata database."""

from __future__ import annotations

from airflow_provider_sms.state.variables import MemoryKeys

__all__ = ["MemoryKeys", "empty_opt_out_register"]


def empty_opt_out_register() -> None:
    """Delete every Variable of the opt-out register in the suite's metadata database, in one statement
    per key prefix (as a new deployment has it)."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    from airflow_provider_sms.state.opt_outs import KEY_PREFIXES

    with create_session() as session:
        for prefix in KEY_PREFIXES:
            matching = Variable.key.startswith(prefix, autoescape=True)
            session.query(Variable).filter(matching).delete(synchronize_session=False)
