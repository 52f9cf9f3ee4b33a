"""Helpers to read what a hook actually put on the wire (multipart and XML bodies)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any


def multipart_fields(content_type: str, body: bytes) -> dict[str, Any]:
    """Parse a multipart/form-data body into ``{name: str}`` or ``{name: (filename, bytes, type)}``."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    assert message.is_multipart(), "the body is not multipart"
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        filename = part.get_filename()
        if filename:
            fields[name] = (filename, payload, part.get_content_type())
        else:
            fields[name] = payload.decode()
    return fields


def xml_root(body: bytes | str) -> ET.Element:
    return ET.fromstring(body if isinstance(body, bytes) else body.encode())
