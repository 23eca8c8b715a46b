# -*- test-case-name: tests.test_reqlserver -*-
"""The server side of SCRAM-SHA-256 (RFC 5802 / 7677) as RethinkDB's handshake uses it."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


@dataclass(frozen=True)
class Credentials:
    """What a server stores for a user: salt, iterations and the derived keys."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    @classmethod
    def for_password(cls, password: str, salt: bytes, iterations: int) -> Credentials:
        salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        return cls(salt, iterations, hashlib.sha256(client_key).digest(),
                   _hmac(salted, b"Server Key"))


class AuthFailed(Exception):
    """The handshake fails; ``code`` is RethinkDB's error_code (10-20: ReqlAuthError)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ScramExchange:
    """One connection's exchange: client-first, server-first, client-final, server-final."""

    def __init__(self, credentials: Credentials, server_nonce: str) -> None:
        self._credentials = credentials
        self._server_nonce = server_nonce
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    def server_first(self, client_first: str) -> str:
        """Takes ``n,,n=admin,r=<nonce>`` and answers ``r=..,s=..,i=..``."""
        if not client_first.startswith("n,"):
            raise AuthFailed("Invalid GS2 header (channel binding is not supported).", 10)
        parts = client_first.split(",", 2)
        if len(parts) != 3:
            raise AuthFailed("Invalid client-first-message.", 10)
        self._client_first_bare = parts[2]
        fields = dict(f.split("=", 1) for f in self._client_first_bare.split(",") if "=" in f)
        if "r" not in fields or "n" not in fields:
            raise AuthFailed("Invalid client-first-message.", 10)
        self._nonce = fields["r"] + self._server_nonce
        salt = base64.b64encode(self._credentials.salt).decode("ascii")
        self._server_first = f"r={self._nonce},s={salt},i={self._credentials.iterations}"
        return self._server_first

    def user(self) -> str:
        fields = dict(f.split("=", 1) for f in self._client_first_bare.split(",") if "=" in f)
        return fields.get("n", "")

    def server_final(self, client_final: str) -> str:
        """Checks the proof in ``c=biws,r=..,p=..``; answers ``v=<server signature>``."""
        without_proof, sep, proof_b64 = client_final.rpartition(",p=")
        if not sep:
            raise AuthFailed("Invalid client-final-message.", 10)
        fields = dict(f.split("=", 1) for f in without_proof.split(",") if "=" in f)
        if fields.get("r") != self._nonce:
            raise AuthFailed("Invalid nonce.", 10)
        auth_message = ",".join(
            (self._client_first_bare, self._server_first, without_proof)
        ).encode("utf-8")
        try:
            proof = base64.b64decode(proof_b64, validate=True)
        except ValueError:
            raise AuthFailed("Invalid proof encoding.", 10) from None
        signature = _hmac(self._credentials.stored_key, auth_message)
        if len(proof) != len(signature):
            raise AuthFailed("Wrong password", 12)
        client_key = bytes(a ^ b for a, b in zip(proof, signature))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(),
                                   self._credentials.stored_key):
            raise AuthFailed("Wrong password", 12)
        server_signature = _hmac(self._credentials.server_key, auth_message)
        return "v=" + base64.b64encode(server_signature).decode("ascii")
