"""What a request asked for, read the way each provider would: the tools it offers and
the images it carries. Tests assert on these (did every protocol carry the image bytes?)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from probes.images import media_type

_DATA_URI = "data:"


def requested_tools(body: dict[str, Any]) -> list[str]:
    """Names of the tools the request offers, in order, whatever the protocol's form."""
    names: list[str] = []
    tools = body.get("tools")
    config = body.get("toolConfig")
    if isinstance(config, dict):  # Bedrock
        tools = config.get("tools")
    for t in tools if isinstance(tools, list) else []:
        if not isinstance(t, dict):
            continue
        if isinstance(t.get("functionDeclarations"), list):  # Gemini
            names += [str(d.get("name")) for d in t["functionDeclarations"] if isinstance(d, dict)]
        elif isinstance(t.get("toolSpec"), dict):  # Bedrock
            names.append(str(t["toolSpec"].get("name")))
        elif isinstance(t.get("function"), dict):  # Chat Completions, Ollama
            names.append(str(t["function"].get("name")))
        elif "name" in t:  # Responses, Anthropic
            names.append(str(t["name"]))
    return names


def take_images(node: Any) -> tuple[Any, list[dict[str, Any]]]:
    """(the body with every image's base64 replaced by a short note, the images found:
    media type, size and sha256 of the decoded bytes). The body is kept for tests, and
    a thousand kept bodies must not each hold megabytes of image."""
    found: list[dict[str, Any]] = []

    def note(b64: str, media: str | None) -> str:
        try:
            data = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            found.append({"media_type": media, "bytes": None, "sha256": None, "error": "not base64"})
            return "<invalid base64>"
        digest = hashlib.sha256(data).hexdigest()
        # Ollama sends bare base64: the bytes say what they are, as a server would sniff them
        found.append({"media_type": media or media_type(data), "bytes": len(data), "sha256": digest})
        return f"<{len(data)} bytes sha256:{digest[:16]}>"

    def walk(n: Any, key: str = "", inherited: str | None = None) -> Any:
        if isinstance(n, dict):
            out = {}
            own = n.get("media_type") or n.get("mime_type") or n.get("mimeType") or n.get("format")
            media = own if isinstance(own, str) else inherited  # Bedrock: `format` beside `source`
            for k, v in n.items():
                if isinstance(v, str) and v.startswith(_DATA_URI) and ";base64," in v:  # image_url data URI
                    head, b64 = v.split(",", 1)
                    out[k] = head + "," + note(b64, head[len(_DATA_URI):].split(";", 1)[0])
                elif isinstance(v, str) and k in ("data", "bytes") and key in ("source", "inline_data", "inlineData"):
                    out[k] = note(v, media)
                else:
                    out[k] = walk(v, k, media)
            return out
        if isinstance(n, list):
            if key == "images":  # Ollama: bare base64 strings
                return [note(v, None) if isinstance(v, str) else walk(v) for v in n]
            return [walk(v, key) for v in n]
        return n

    return walk(node), found


def tool_arguments(tokens: int) -> tuple[dict[str, Any], list[str]]:
    """The simulated call's arguments, and their JSON text cut into `tokens` fragments."""
    args = {"location": "Florence, Italy", "unit": "celsius"}
    return args, fragments(json.dumps(args, separators=(",", ":")), tokens)


def fragments(text: str, tokens: int) -> list[str]:
    """`text` cut into `tokens` pieces of about the same size (fewer for a short text)."""
    n = max(1, min(tokens, len(text)))
    step = len(text) / n
    cuts = [round(i * step) for i in range(n + 1)]
    return [text[cuts[i]:cuts[i + 1]] for i in range(n)]
