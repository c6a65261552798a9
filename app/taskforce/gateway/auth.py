"""Bearer tokens with scopes. The tokens file holds only SHA-256 hashes of the tokens."""
from __future__ import annotations

import hashlib
import hmac
import sys
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Request

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCOPES = frozenset({"submit", "read", "admin"})


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, entries: dict[str, Principal]) -> None:
        self._by_hash = entries

    @classmethod
    def load(cls, path: str) -> "TokenStore":
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"tokens file {path} does not exist; the gateway refuses to run without tokens")
        data = tomllib.loads(p.read_text())
        entries: dict[str, Principal] = {}
        for i, t in enumerate(data.get("token", [])):
            digest = str(t.get("sha256", "")).lower()
            scopes = frozenset(t.get("scopes", []))
            if len(digest) != 64 or not scopes <= SCOPES or not scopes:
                raise ValueError(f"{path}: token #{i + 1} needs a 64-hex sha256 and scopes from {sorted(SCOPES)}")
            entries[digest] = Principal(str(t.get("name", f"token{i + 1}")), scopes)
        if not entries:
            raise ValueError(f"{path}: no [[token]] entries")
        return cls(entries)

    def authenticate(self, header: str | None) -> Principal:
        if not header or not header.startswith("Bearer "):
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        digest = hash_token(header[len("Bearer "):].strip())
        for known, principal in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return principal
        raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})


def require(scope: str):
    """A FastAPI dependency: the caller's token must carry `scope` (admin implies all)."""

    def dep(request: Request) -> Principal:
        p = request.app.state.tokens.authenticate(request.headers.get("Authorization"))
        if scope not in p.scopes and "admin" not in p.scopes:
            raise HTTPException(403, f"token '{p.name}' lacks the '{scope}' scope")
        return p

    return dep
