#!/usr/bin/env python3
"""Container HEALTHCHECK: is the exporter answering HTTP? (python:*-slim has no curl.)

Probes $AIVOICE_HEALTHCHECK_URL (default http://127.0.0.1:10188/-/healthy). Healthy is a 2xx, or
401/403: with basic auth on, a refusal still proves the server is alive. For a TLS listener set
the URL to https://...; the server certificate is not verified, as this only checks our own
process. When the web config demands client certificates, name one the server trusts in
$AIVOICE_HEALTHCHECK_CERT_FILE and $AIVOICE_HEALTHCHECK_KEY_FILE.
Exit 0 when healthy, 1 otherwise (Docker's convention).
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:10188/-/healthy"
ALIVE_REFUSALS = (401, 403)


def probe(url: str, timeout: float = 5.0, cert_file: str = "", key_file: str = "") -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        if cert_file:
            context.load_cert_chain(cert_file, key_file or None)
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return 200 <= response.status < 300
    except urllib.error.HTTPError as err:
        return err.code in ALIVE_REFUSALS
    except (OSError, ValueError, http.client.HTTPException):
        return False


def main() -> int:
    url = os.environ.get("AIVOICE_HEALTHCHECK_URL") or DEFAULT_URL
    cert_file = os.environ.get("AIVOICE_HEALTHCHECK_CERT_FILE", "")
    key_file = os.environ.get("AIVOICE_HEALTHCHECK_KEY_FILE", "")
    healthy = probe(url, cert_file=cert_file, key_file=key_file)
    if not healthy:
        print(f"unhealthy: no good answer from {url}", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
