"""Basic auth for the exporter's endpoints: bcrypt hashes from the web config, checked in
constant time, with a small cache so a scrape every few seconds does not pay bcrypt's cost.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Mapping

import bcrypt

#: The challenge to send with a 401 (RFC 7617).
WWW_AUTHENTICATE = 'Basic realm="aivoice-exporter", charset="UTF-8"'
BCRYPT_HASH = re.compile(r"^\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}$")
_BCRYPT_MAX_PASSWORD = 72  # bcrypt ignores the rest; Go and htpasswd truncate alike
_MAX_AUTHORIZATION = 8192


class BasicAuth:
    """Checks `Authorization: Basic` headers against bcrypt hashes, caching successes.

    bcrypt is slow on purpose (about 70 ms at cost 10), far too slow to pay on every scrape.
    A verified password is remembered as an HMAC-SHA256 under a random per-instance key,
    never as plaintext, and compared in constant time. An unknown user still pays one bcrypt
    check against a decoy hash of the same cost, so timing does not reveal which users exist.
    """

    def __init__(self, users: Mapping[str, str], *, cache_size: int = 1024) -> None:
        self._users = {user: hashed.encode("ascii") for user, hashed in users.items()}
        self._cache_size = cache_size
        self._key = secrets.token_bytes(32)
        self._verified: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._cache_lock = threading.Lock()
        # One bcrypt at a time: it is CPU-bound, and a flood of bad passwords should cost one
        # core, not all of them.
        self._bcrypt_lock = threading.Lock()
        cost = max((bcrypt_cost(h) for h in self._users.values()), default=4)
        self._decoy = bcrypt.hashpw(secrets.token_hex(16).encode(), bcrypt.gensalt(rounds=cost))

    @property
    def users(self) -> tuple[str, ...]:
        return tuple(sorted(self._users))

    def __repr__(self) -> str:
        return f"BasicAuth(users={len(self._users)})"

    def check(self, authorization_header: str | None) -> bool:
        """True if the header carries a configured user and that user's password."""
        credentials = parse_basic_authorization(authorization_header)
        if credentials is None:
            return False
        user, password = credentials
        digest = self._digest(user, password)
        with self._cache_lock:
            remembered = self._verified.get(user)
            if remembered is not None:
                self._verified.move_to_end(user)
        if remembered is not None and hmac.compare_digest(remembered, digest):
            return True
        hashed = self._users.get(user)
        matched = self._bcrypt_matches(password, hashed if hashed is not None else self._decoy)
        if not matched or hashed is None:
            return False
        with self._cache_lock:
            self._verified[user] = digest
            self._verified.move_to_end(user)
            while len(self._verified) > self._cache_size:
                self._verified.popitem(last=False)
        return True

    def _digest(self, user: str, password: bytes) -> bytes:
        raw_user = user.encode("utf-8")
        framed = len(raw_user).to_bytes(4, "big") + raw_user + password
        return hmac.new(self._key, framed, hashlib.sha256).digest()

    def _bcrypt_matches(self, password: bytes, hashed: bytes) -> bool:
        with self._bcrypt_lock:
            try:
                return bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], hashed)
            except ValueError:
                return False


def parse_basic_authorization(header: str | None) -> tuple[str, bytes] | None:
    """`Basic dXNlcjpwdw==` -> ("user", b"pw"); None for anything else."""
    if not header or len(header) > _MAX_AUTHORIZATION:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    raw_user, colon, password = raw.partition(b":")
    if not colon:
        return None
    try:
        return raw_user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


def bcrypt_cost(hashed: bytes) -> int:
    return int(hashed.split(b"$")[2])
