"""The sandbox's web page: conversations per phone number, and a form to reply as the recipient.

``render_page`` is the whole page; ``render_conversations`` the part that changes, which the page
fetches from ``GET /_sandbox/conversations`` every few seconds and swaps in, except while someone is
typing a reply (a field has focus or holds text), so nothing half-typed is lost. A reply goes by
``fetch`` from one submit listener that cancels the form's own submission. Each message shows how
it went out (SMS, chat or MMS, with the MMS image), when a scheduled one is due, and its delivery status.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from jinja2 import Environment

_KINDS = {"/api/v1/gatewaymms": "MMS", "/api/v1/chat": "chat", "/v1/sms/queue": "queued SMS"}

_CONVERSATIONS = """
<p class="meta">{{ total }} message(s).</p>
{% if not phones %}
<p class="empty">Nothing sent yet. Run <code>make demo</code> or point a connection here.</p>
{% endif %}
{% for phone, messages in phones %}
<div class="phone"><h2>{{ phone }}</h2>
 {% for m in messages %}
 <div class="msg {{ 'out' if m.direction == 'out' else 'in' }}">
  {% if m.kind %}<span class="kind">{{ m.kind }}</span> {% endif %}{{ m.text }}
  {% if m.has_media %}<div><img class="media" alt="MMS image" src="/_sandbox/media/{{ m.message_id }}"></div>{% endif %}
  <div class="meta">{{ 'sent via' if m.direction == 'out' else 'received by' }} {{ m.provider }}
  · {{ m.ts[:19].replace('T', ' ') }} UTC · {{ m.segments }} part(s), {{ m.encoding }}
  · <span class="status {{ m.status }}">{{ m.status }}</span>
  {% if m.scheduled_for %}· {{ 'due' if m.scheduled_for > now else 'was due' }}
  {{ m.scheduled_for[:16].replace('T', ' ') }} UTC{% endif %}</div></div>
 {% endfor %}
 <form class="reply" method="post">
  <input type="hidden" name="from" value="{{ phone }}">
  <select name="provider" aria-label="provider">{% for p in receiving %}
   <option value="{{ p }}"{{ ' selected' if p == messages[-1].provider }}>{{ p }}
   {{- ' (no reply callback set: Airflow will not see it)' if p in unread }}</option>
  {% endfor %}</select>
  <input type="text" name="text" placeholder="Reply as {{ phone }}" required><button>Reply</button>
 </form></div>
{% endfor %}
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SMS sandbox</title>
<style>
 body{font-family:system-ui,sans-serif;margin:2rem;background:#f4f5f7;color:#222}
 h1{font-size:1.4rem} .phone{background:#fff;border-radius:8px;padding:1rem;margin:1rem 0;max-width:46rem;
 box-shadow:0 1px 3px #0002} .msg{margin:.4rem 0;padding:.5rem .8rem;border-radius:12px;max-width:80%}
 .out{background:#dcf1ff;margin-left:auto} .in{background:#e9f8e5}
 .meta{font-size:.75rem;color:#666} form{display:flex;gap:.5rem;margin-top:.6rem}
 input[type=text]{flex:1;padding:.4rem} .empty{color:#666} .status{font-weight:600}
 .failed,.expired,.rejected,.unsubscribed{color:#b00020} .delivered{color:#1b7f3b}
 .kind{font-size:.7rem;font-weight:700;background:#fff8;border-radius:4px;padding:0 .3rem}
 .media{max-width:12rem;max-height:12rem;margin-top:.3rem;border-radius:6px}
</style></head><body>
<h1>SMS sandbox</h1>
<p class="meta">Cellcast, Clickatell and Cloudware APIs on this host. The page updates every 3 seconds,
and waits while you type a reply.</p>
<div id="conversations">{{ conversations }}</div>
<script>
function typing() {
  const fields = [...document.querySelectorAll("#conversations input[type=text]")];
  return fields.some(f => f === document.activeElement || f.value !== "");
}
async function refresh() {
  if (typing()) { return; }
  const answer = await fetch("/_sandbox/conversations");
  if (answer.ok && !typing()) { document.getElementById("conversations").innerHTML = await answer.text(); }
}
setInterval(refresh, 3000);
async function reply(form) {
  const body = {provider: form.provider.value, from: form.from.value, text: form.text.value};
  const answer = await fetch("/_sandbox/inbound", {method: "POST", headers: {"Content-Type": "application/json"},
                                                    body: JSON.stringify(body)});
  if (answer.ok) { form.text.value = ""; form.text.blur(); refresh(); } else { alert((await answer.json()).error); }
}
// One listener for every form, present and future: the page itself is never submitted (the reply goes
// by fetch), so the text stays out of the URL and nothing aborts the request.
document.getElementById("conversations").addEventListener("submit", event => {
  event.preventDefault();
  reply(event.target);
});
</script>
</body></html>
"""

_env = Environment(autoescape=True)
_conversations = _env.from_string(_CONVERSATIONS)
_page = _env.from_string(_PAGE)


def render_conversations(
    messages: list[dict[str, Any]],
    now: str,
    receiving: Sequence[str],
    media: frozenset[str] = frozenset(),
    unread: Sequence[str] = (),
) -> str:
    """The conversations (oldest message first in each), newest conversation on top.

    :param receiving: the providers a reply can be sent through.
    :param media: ids of messages whose MMS image the sandbox kept.
    :param unread: providers whose replies nothing here passes on (Clickatell without its callback).
    """
    by_phone: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        kind = _KINDS.get(message.get("endpoint") or "") if message["direction"] == "out" else None
        by_phone[message["phone"]].append({**message, "kind": kind, "has_media": message["message_id"] in media})
    phones = sorted(by_phone.items(), key=lambda item: item[1][-1]["ts"], reverse=True)
    return _conversations.render(phones=phones, total=len(messages), now=now, receiving=receiving, unread=unread)


def render_page(conversations: str) -> str:
    """The whole page around ``render_conversations``' output (already escaped)."""
    from markupsafe import Markup

    return _page.render(conversations=Markup(conversations))  # noqa: S704 - rendered by the autoescaping template
