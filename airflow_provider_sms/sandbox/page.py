"""The sandbox's web page: conversations per phone number, and a form to reply as the recipient."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from jinja2 import Environment

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SMS sandbox</title>
<meta http-equiv="refresh" content="5">
<style>
 body{font-family:system-ui,sans-serif;margin:2rem;background:#f4f5f7;color:#222}
 h1{font-size:1.4rem} .phone{background:#fff;border-radius:8px;padding:1rem;margin:1rem 0;max-width:46rem;
 box-shadow:0 1px 3px #0002} .msg{margin:.4rem 0;padding:.5rem .8rem;border-radius:12px;max-width:80%}
 .out{background:#dcf1ff;margin-left:auto} .in{background:#e9f8e5}
 .meta{font-size:.75rem;color:#666} form{display:flex;gap:.5rem;margin-top:.6rem}
 input[type=text]{flex:1;padding:.4rem} .empty{color:#666} .status{font-weight:600}
 .failed,.expired,.rejected,.unsubscribed{color:#b00020} .delivered{color:#1b7f3b}
</style></head><body>
<h1>SMS sandbox: {{ total }} message(s)</h1>
<p class="meta">Cellcast, Clickatell and Cloudware APIs on this host. The page refreshes every 5 seconds.</p>
{% if not phones %}
<p class="empty">Nothing sent yet. Run <code>make demo</code> or point a connection here.</p>
{% endif %}
{% for phone, messages in phones %}
<div class="phone"><h2>{{ phone }}</h2>
 {% for m in messages %}
 <div class="msg {{ 'out' if m.direction == 'out' else 'in' }}">{{ m.text }}
  <div class="meta">{{ 'sent via' if m.direction == 'out' else 'received by' }} {{ m.provider }}
  · {{ m.ts[:19].replace('T', ' ') }} UTC · {{ m.segments }} part(s), {{ m.encoding }}
  · <span class="status {{ m.status }}">{{ m.status }}</span>
  {% if m.scheduled_for %}· scheduled for {{ m.scheduled_for[:16].replace('T', ' ') }} UTC{% endif %}</div></div>
 {% endfor %}
 <form onsubmit="return reply(this)">
  <input type="hidden" name="from" value="{{ phone }}">
  <select name="provider">{% for p in providers %}
   <option{% if p == messages[-1].provider %} selected{% endif %}>{{ p }}</option>
  {% endfor %}</select>
  <input type="text" name="text" placeholder="Reply as {{ phone }}" required><button>Reply</button>
 </form></div>
{% endfor %}
<script>
async function reply(form) {
  const body = {provider: form.provider.value, from: form.from.value, text: form.text.value};
  const answer = await fetch("/_sandbox/inbound", {method: "POST", headers: {"Content-Type": "application/json"},
                                                    body: JSON.stringify(body)});
  if (answer.ok) { location.reload(); } else { alert((await answer.json()).error); }
  return false;
}
</script>
</body></html>
"""

_env = Environment(autoescape=True)
_page = _env.from_string(_TEMPLATE)


def render_page(messages: list[dict[str, Any]], now: str) -> str:
    """The conversations page for ``messages`` (oldest first), newest conversation on top."""
    by_phone: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        by_phone[message["phone"]].append(message)
    phones = sorted(by_phone.items(), key=lambda item: item[1][-1]["ts"], reverse=True)
    return _page.render(phones=phones, total=len(messages), now=now, providers=("cloudware", "cellcast", "clickatell"))
