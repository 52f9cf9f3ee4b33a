"""Operators: thin Airflow tasks over the hooks, each returning ``SendResult.to_dict()`` to XCom."""
