"""A local server that speaks the Cellcast, Clickatell and Cloudware APIs, for demos and tests.

``python -m airflow_provider_sms.sandbox`` (or ``airflow-sms-sandbox``) serves every documented endpoint
on 127.0.0.1, keeps what it receives, lets a test or a person inject inbound replies and faults, and
shows the conversations at ``/``. ``SandboxServer`` runs it in a background thread for tests.
"""
