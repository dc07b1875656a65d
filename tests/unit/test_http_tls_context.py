"""A client builds a TLS context of its own only for a CA file of its own: otherwise it
uses aiohttp's default verifying one, so a command does not load the system CA bundle a
third time (~40 ms of CPU each, a large part of a no-change sync's start-up)."""

from __future__ import annotations

import ssl

from chunksync.transport.http import HttpClient


async def test_no_tls_context_is_built_without_a_ca_file(monkeypatch, tmp_path):
    built: list[str | None] = []
    real = ssl.create_default_context

    def counting(*args, cafile=None, **kw):
        built.append(cafile)
        return real(*args, cafile=cafile, **kw)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    plain = HttpClient("http://127.0.0.1:9")
    plain._ensure_session()
    await plain.aclose()
    assert built == []
    verified = HttpClient("https://example.invalid")
    assert verified._tls() is True  # aiohttp's default: certificates and host name checked
    await verified.aclose()
