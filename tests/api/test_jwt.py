"""Subject tokens: every forged or invalid token is refused; JWKS rotation and flood control.

Tokens are checked through the gateway (401 = refused) and, for timing-sensitive JWKS
behaviour, on `JwtVerifier` directly with an injected clock.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from groupgate.auth import JwtVerifier
from groupgate.config import ConfigError, load_config
from groupgate.errors import AuthError
from tests.api.conftest import MakeClient

Client = TestClient[Any, Any]


@pytest.fixture(scope="session")
def keys() -> tuple[Any, Any]:
    """Two RSA key pairs: the trusted one and an attacker's."""
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


def pem(private: Any) -> bytes:
    data: bytes = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def jwk(private: Any, kid: str) -> dict[str, Any]:
    data: dict[str, Any] = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return {**data, "kid": kid, "alg": "RS256", "use": "sig"}


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "emp-viewer", "aud": "shop", "iss": "idp", "iat": now, "exp": now + 300, **extra}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge_hmac(payload: dict[str, Any], secret: bytes, **header: Any) -> str:
    """An HS256 token built by hand (pyjwt refuses to sign with a public key, attackers don't)."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", **header}).encode())
    body = b64(json.dumps(payload).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def unsigned(payload: dict[str, Any]) -> str:
    head = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{head}.{b64(json.dumps(payload).encode())}."


def rs256(private: Any, payload: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(payload, private, algorithm="RS256", headers=headers or None)


@pytest.fixture
async def rs(make_client: MakeClient, keys: tuple[Any, Any], tmp_path: Path) -> Client:
    path = tmp_path / "public.pem"
    path.write_bytes(pem(keys[0]))
    return await make_client(
        jwt_algorithms="RS256",
        jwt_public_keys=str(path),
        jwt_audience="shop",
        jwt_issuer="idp",
        jwt_leeway=2,
    )


async def gateway(client: Client, tok: str) -> int:
    response = await client.get(
        "/v1/gateway/auth",
        headers={
            "X-Original-Method": "GET",
            "X-Original-URI": "/api/orders",
            "Authorization": f"Bearer {tok}",
        },
    )
    return response.status


async def test_valid_rs256_token_is_accepted(rs: Client, keys: tuple[Any, Any]) -> None:
    assert await gateway(rs, rs256(keys[0], claims())) == 200


def refused_tokens(keys: tuple[Any, Any]) -> dict[str, str]:
    good, evil = keys
    now = int(time.time())
    public_jwk = json.dumps(jwk(good, "k1")).encode()
    return {
        "expired": rs256(good, claims(exp=now - 60)),
        "not yet valid": rs256(good, claims(nbf=now + 60)),
        "missing exp": rs256(good, {k: v for k, v in claims().items() if k != "exp"}),
        "missing sub": rs256(good, {k: v for k, v in claims().items() if k != "sub"}),
        "wrong audience": rs256(good, claims(aud="other")),
        "wrong issuer": rs256(good, claims(iss="evil")),
        "alg none": unsigned(claims()),
        "hs256 with the rs256 public key": forge_hmac(claims(), pem(good)),
        "hs256 with a jwk as hmac secret": forge_hmac(claims(), public_jwk),
        "unknown crit header": rs256(good, claims(), crit=["x-policy"], **{"x-policy": 1}),
        "jku pointing elsewhere": rs256(evil, claims(), jku="https://evil.example/jwks.json"),
        "embedded jwk": rs256(evil, claims(), jwk=jwk(evil, "e")),
        "signed by another key": rs256(evil, claims()),
        "tampered payload": rs256(good, claims())[:-10] + "AAAAAAAAAA",
        "sub not a string": rs256(good, claims(sub=42)),
    }


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "not yet valid",
        "missing exp",
        "missing sub",
        "wrong audience",
        "wrong issuer",
        "alg none",
        "hs256 with the rs256 public key",
        "hs256 with a jwk as hmac secret",
        "unknown crit header",
        "jku pointing elsewhere",
        "embedded jwk",
        "signed by another key",
        "tampered payload",
        "sub not a string",
    ],
)
async def test_refused(rs: Client, keys: tuple[Any, Any], case: str) -> None:
    assert await gateway(rs, refused_tokens(keys)[case]) == 401


def test_config_refuses_a_jwk_or_pem_as_hmac_secret(keys: tuple[Any, Any]) -> None:
    for secret in (json.dumps(jwk(keys[0], "k")), pem(keys[0]).decode()):
        with pytest.raises(ConfigError, match="not an HMAC secret"):
            load_config(env={}, overrides={"jwt_secret": secret})


def test_config_refuses_mixed_algorithm_families_and_none() -> None:
    with pytest.raises(ConfigError, match="do not mix"):
        load_config(env={}, overrides={"jwt_algorithms": "HS256,RS256", "jwt_secret": "s" * 40})
    with pytest.raises(ConfigError, match="unsupported algorithm 'none'"):
        load_config(env={}, overrides={"jwt_algorithms": "none"})
    with pytest.raises(ConfigError, match="32 bytes"):
        load_config(env={}, overrides={"jwt_secret": "short"})


# --------------------------------------------------------------------------- JWKS


class JwksServer:
    """A local JWKS endpoint counting its fetches; its keys can be rotated."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.fetches = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.json_response({"keys": self.keys})


@pytest.fixture
async def jwks(aiohttp_server: Any, keys: tuple[Any, Any]) -> tuple[JwksServer, str]:
    server = JwksServer([jwk(keys[0], "k1"), {"kty": "oct", "k": b64(b"x" * 32), "kid": "h"}])
    app = web.Application()
    app.router.add_get("/jwks.json", server.handle)
    running = await aiohttp_server(app, host="127.0.0.1")
    return server, str(running.make_url("/jwks.json"))


async def test_jwks_url_rotation_and_unknown_kid_flood(
    make_client: MakeClient, jwks: tuple[JwksServer, str], keys: tuple[Any, Any]
) -> None:
    server, url = jwks
    client = await make_client(
        jwt_jwks_url=url, jwt_audience="shop", jwt_issuer="idp", jwt_jwks_refresh_interval=60
    )
    assert await gateway(client, rs256(keys[0], claims(), kid="k1")) == 200
    assert server.fetches == 1
    flood = [rs256(keys[1], claims(), kid=f"unknown-{uuid.uuid4().hex}") for _ in range(40)]
    statuses = await asyncio.gather(*(gateway(client, t) for t in flood))
    assert set(statuses) == {401}
    # The first unknown kid refetches (a rotation would be picked up), the other 39 do not.
    assert server.fetches == 2, "unknown kids refetch at most once within the interval"
    # A symmetric key in the JWKS is never used, even when a token names its kid.
    assert await gateway(client, forge_hmac(claims(), b"x" * 32, kid="h")) == 401
    # A jku equal to the configured JWKS URL is harmless (it is never fetched from the token).
    assert await gateway(client, rs256(keys[0], claims(), kid="k1", jku=url)) == 200


async def test_jwks_refetch_at_most_once_per_interval(
    jwks: tuple[JwksServer, str], keys: tuple[Any, Any]
) -> None:
    server, url = jwks
    now = [1000.0]
    config = load_config(env={}, overrides={"jwt_jwks_url": url, "jwt_jwks_refresh_interval": 10})
    import aiohttp

    async with aiohttp.ClientSession() as session:

        async def fetch(target: str) -> bytes:
            async with session.get(target) as response:
                return await response.read()

        verifier = JwtVerifier(config.jwt, fetch, clock=lambda: now[0])
        payload = {k: v for k, v in claims().items() if k not in {"aud", "iss"}}
        await verifier.verify(rs256(keys[0], payload, kid="k1"))
        assert server.fetches == 1
        # The IdP rotates to a new key a second later: its first token is accepted at once.
        now[0] += 1
        server.keys = [jwk(keys[1], "k2")]
        rotated = rs256(keys[1], payload, kid="k2")
        results = await asyncio.gather(
            *(verifier.verify(rotated) for _ in range(20)), return_exceptions=True
        )
        assert all(not isinstance(r, BaseException) for r in results)
        assert server.fetches == 2
        # A flood of unknown kids within the interval fetches nothing more.
        flood = [rs256(keys[0], payload, kid=f"x-{n}") for n in range(200)]
        refused = await asyncio.gather(*(verifier.verify(t) for t in flood), return_exceptions=True)
        assert all(isinstance(r, AuthError) for r in refused)
        assert server.fetches == 2
        now[0] += 11  # past the interval: one more fetch for the next unknown kid, then none
        for token in flood[:50]:
            with pytest.raises(AuthError):
                await verifier.verify(token)
        assert server.fetches == 3
        print(
            f"JWKS rotation: new kid accepted by its first token; {len(flood) + 50} "
            f"unknown-kid tokens over two intervals caused {server.fetches - 2} fetch(es)"
        )


async def test_jwks_file(make_client: MakeClient, keys: tuple[Any, Any], tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(keys[0], "k1")]}))
    client = await make_client(jwt_jwks_file=str(path), jwt_audience="shop")
    assert await gateway(client, rs256(keys[0], claims(), kid="k1")) == 200
    assert await gateway(client, rs256(keys[1], claims(), kid="k1")) == 401


# --------------------------------------------------------------------------- verified tokens


SECRET = "verified-token-cache-secret-0123456789"  # a throw-away test secret


class Clock:
    """A wall clock the test moves; it starts at the real time (pyjwt reads the real one)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token pyjwt is asked to verify, in order."""
    calls: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return calls


def hs_verifier(clock: Clock, **settings: Any) -> JwtVerifier:
    config = load_config(env={}, overrides={"jwt_secret": SECRET, "jwt_leeway": 2, **settings})
    return JwtVerifier(config.jwt, wall_clock=clock)


def hs256(now: float, **extra: Any) -> str:
    payload = {"sub": "emp-viewer", "iat": int(now), "exp": int(now) + 300, **extra}
    return jwt.encode(payload, SECRET, algorithm="HS256")


async def test_a_token_seen_again_is_not_verified_again(decodes: list[str]) -> None:
    clock = Clock()
    verifier = hs_verifier(clock)
    token = hs256(clock.now)
    first = await verifier.verify(token)
    again = await verifier.verify(token)
    assert again == first and again.subject == "emp-viewer"
    assert decodes == [token]
    other = hs256(clock.now, sub="emp-other")
    assert (await verifier.verify(other)).subject == "emp-other"
    assert decodes == [token, other]
    # Keyed by digest: the token itself is not kept.
    assert verifier.tokens is not None and len(verifier.tokens) == 2
    assert all(len(key) == 32 for key in verifier.tokens._entries)


async def test_a_cached_token_stops_at_exp_plus_leeway(decodes: list[str]) -> None:
    clock = Clock()
    verifier = hs_verifier(clock)
    exp = int(clock.now) + 60
    token = hs256(clock.now, exp=exp)
    await verifier.verify(token)
    clock.now = exp + 2 - 0.001  # the last moment pyjwt (leeway 2) still accepts it
    await verifier.verify(token)
    assert len(decodes) == 1
    clock.now = exp + 2
    for _ in range(2):
        with pytest.raises(AuthError, match="expired"):
            await verifier.verify(token)
    assert verifier.tokens is not None and len(verifier.tokens) == 0
    # Time moving back does not revive an entry: it was dropped, the next one is fresh.
    clock.now = exp - 10
    await verifier.verify(token)
    assert len(decodes) == 4


async def test_not_before(decodes: list[str]) -> None:
    clock = Clock()
    verifier = hs_verifier(clock)
    nbf = int(clock.now) - 10  # valid by the real clock: only the test's clock says "too early"
    token = hs256(clock.now, nbf=nbf, iat=nbf)
    clock.now = nbf - 2 - 1
    with pytest.raises(AuthError, match="not yet valid"):
        await verifier.verify(token)
    # Within the leeway before nbf it is accepted, but not cached: nbf is still ahead.
    clock.now = nbf - 1
    await verifier.verify(token)
    await verifier.verify(token)
    assert len(decodes) == 3
    # From nbf on it is cached ...
    clock.now = nbf
    await verifier.verify(token)
    await verifier.verify(token)
    assert len(decodes) == 4
    # ... and a clock set back before nbf - leeway does not get the cached entry.
    clock.now = nbf - 3
    with pytest.raises(AuthError, match="not yet valid"):
        await verifier.verify(token)


async def test_refusals_are_not_cached(decodes: list[str]) -> None:
    clock = Clock()
    verifier = hs_verifier(clock)
    forged = jwt.encode(
        {"sub": "emp-viewer", "exp": int(clock.now) + 300}, "x" * 40, algorithm="HS256"
    )
    not_a_string = hs256(clock.now, sub=42)
    for token in (forged, forged, not_a_string, not_a_string):
        with pytest.raises(AuthError):
            await verifier.verify(token)
    assert len(decodes) == 4
    assert verifier.tokens is not None and len(verifier.tokens) == 0


async def test_the_bound_evicts_the_least_recently_used(decodes: list[str]) -> None:
    clock = Clock()
    verifier = hs_verifier(clock, jwt_cache_size=3)
    tokens = [hs256(clock.now, sub=f"emp-{i}") for i in range(5)]
    for token in tokens[:3]:
        await verifier.verify(token)
    await verifier.verify(tokens[0])  # a hit: tokens[0] is now the most recently used
    await verifier.verify(tokens[3])  # evicts tokens[1]
    assert verifier.tokens is not None and len(verifier.tokens) == 3
    decodes.clear()
    await verifier.verify(tokens[0])
    assert decodes == []
    await verifier.verify(tokens[1])
    assert decodes == [tokens[1]]
    for token in tokens:
        await verifier.verify(token)
    assert len(verifier.tokens) == 3


async def test_cache_size_zero_turns_it_off(decodes: list[str]) -> None:
    clock = Clock()
    verifier = hs_verifier(clock, jwt_cache_size=0)
    token = hs256(clock.now)
    for _ in range(3):
        await verifier.verify(token)
    assert verifier.tokens is None and len(decodes) == 3


def test_config_jwt_cache_size() -> None:
    assert load_config(env={}).jwt.cache_size == 10_000
    assert load_config(env={"GROUPGATE_JWT_CACHE_SIZE": "0"}).jwt.cache_size == 0
    with pytest.raises(ConfigError, match="jwt_cache_size"):
        load_config(env={"GROUPGATE_JWT_CACHE_SIZE": "-1"})


class JwksFile:
    """A JWKS file the test rewrites, and the monotonic clock that times its refreshes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.now = 1000.0

    def write(self, *entries: dict[str, Any], indent: int | None = None) -> None:
        self.path.write_text(json.dumps({"keys": list(entries)}, indent=indent))

    def clock(self) -> float:
        return self.now


async def test_key_rotation_drops_the_cache(
    decodes: list[str], keys: tuple[Any, Any], tmp_path: Path
) -> None:
    good, other = keys
    jwks = JwksFile(tmp_path / "jwks.json")
    jwks.write(jwk(good, "k1"))
    config = load_config(
        env={},
        overrides={
            "jwt_jwks_file": str(jwks.path),
            "jwt_jwks_ttl": 60,
            "jwt_jwks_refresh_interval": 10,
        },
    )
    verifier = JwtVerifier(config.jwt, clock=jwks.clock)
    payload = {k: v for k, v in claims().items() if k not in {"aud", "iss"}}
    old = rs256(good, payload, kid="k1")
    await verifier.verify(old)
    await verifier.verify(old)
    assert decodes == [old]

    # The TTL passes and the file holds the same keys, reordered and reformatted: kept.
    jwks.write({"kty": "oct", "k": b64(b"x" * 32), "kid": "h"}, jwk(good, "k1"), indent=2)
    jwks.now += 61
    await verifier.verify(old)
    assert decodes == [old] and verifier.jwks.fetches == 2

    # A new kid appears (rotation by kid): its refresh changes the key set and drops the cache.
    jwks.write(jwk(good, "k1"), jwk(other, "k2"))
    jwks.now += 11
    new = rs256(other, payload, kid="k2")
    await verifier.verify(new)
    await verifier.verify(old)
    assert decodes == [old, new, old]

    # The IdP withdraws k1: past the TTL its cached tokens are refused, though not expired.
    jwks.write(jwk(other, "k2"))
    jwks.now += 61
    with pytest.raises(AuthError, match="no key for kid 'k1'"):
        await verifier.verify(old)
    await verifier.verify(new)
    assert decodes == [old, new, old, new]
