"""The SMS page in Airflow's UI (Airflow 3.1+): Outbox, Inbox, Opt-outs and Spend, per connection.

``data`` reads what the page shows, server-side, through the ``state`` modules and Airflow's own
tables; ``app`` is the FastAPI app the ``sms_webhooks`` plugin mounts on the API server at
``URL_PREFIX``, serving JSON under Airflow's own authentication (the UI's token cookie) and
authorization, and the one static page (``static/index.html``, no build step) that Airflow's UI shows
under its navigation as an external view. On Airflow 2.11 and 3.0 there is no page.
"""

from __future__ import annotations

URL_PREFIX = "/sms/ui"
URL_ROUTE = "sms"  # the page's address in Airflow's UI: /plugin/sms
