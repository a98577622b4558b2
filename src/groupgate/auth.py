"""Caller authentication (API keys, service JWTs) and subject token verification.

The only module that imports `jwt`. It does no network I/O itself: a JWKS URL is read through
a `fetch` callable the API layer passes in (an aiohttp client session), so the layering rule
"only api/ imports aiohttp" holds.

Callers:
- an API key as `Authorization: Bearer <key>`, as the bare header value (AuthZEN interop PEPs
  send that), or in `X-Groupgate-Key` (for the gateway, whose `Authorization` carries the
  subject's token). Keys are compared in constant time: the SHA-256 of the presented key
  against the SHA-256 of *every* configured key with `hmac.compare_digest`, no early exit, so
  neither the position of a matching key nor its length leaks; a key that matched is then
  remembered (`KeyRing._matched`, one entry per configured key at most) and found again by a
  dictionary look-up, whose timing depends on the presented key only through its SipHash,
  keyed at random per process;
- optionally a service JWT (`jwt_caller_tokens`), verified like a subject token; it is an
  admin credential when its `scope`/`scp` claim lists `jwt_admin_scope`.

Subject tokens (`JwtVerifier`): algorithms are pinned by configuration and never taken from the
token (an HS256 token is refused when RS256 is configured, so a public key can't be used as an
HMAC secret); `exp` is required, `nbf`/`exp` get a small leeway, `iss` and `aud` are checked
when configured; `alg: none`, any `crit` header, embedded keys (`jwk`, `x5c`) and `jku`/`x5u`
pointing anywhere but the configured JWKS URL are refused, and no URL from a token is ever
fetched. JWKS keys are cached by `kid`; an unknown `kid` triggers a refetch at once (a key
rotated in at the IdP is accepted with its first token), and at most one such refetch per
`jwks_refresh_interval`, however many unknown kids arrive. Symmetric (`oct`) JWKs are ignored.

Verified tokens (`VerifiedTokens`, `jwt_cache_size` entries, 0 turns it off): a gateway sees
the same few tokens on every request of a session, so the identity of a verified token is kept
and a token seen again costs a SHA-256 and a dict look-up instead of a signature check. An
entry is used only inside the token's validity window (`validity`: pyjwt's own rules for
`exp`, `nbf` and `iat`, leeway included), so it stops being used at the moment a fresh
verification would refuse the token; a token whose `nbf` or `iat` is still in the future is
not cached; a token without `exp` is never cached (the settings require `exp` anyway). The
whole cache is dropped when a JWKS refresh changes the key set (an unknown `kid`, or the TTL:
a JWKS past its TTL is re-read even when every token is answered from the cache, so a key the
IdP withdrew stops being trusted as it would without the cache). Refusals are not cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jwt
import orjson
from jwt.algorithms import get_default_algorithms

from groupgate import log
from groupgate.config import Config, JwtSettings
from groupgate.errors import AuthError, Forbidden

Fetch = Callable[[str], Awaitable[bytes]]

MAX_TOKEN_BYTES = 8192
MAX_CANDIDATE_KEYS = 8
_FAMILY = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling the sidecar: a key, a service token, or nobody (open mode)."""

    name: str
    tenant: str | None = None
    admin: bool = False


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified subject token: the subject id and tenant from the mapped claims."""

    subject: str
    tenant: str | None
    claims: Mapping[str, Any] = field(repr=False)


ANONYMOUS = Caller("anonymous")


def credential(authorization: str | None) -> str | None:
    """Return the credential in an `Authorization` value: after `Bearer `, or the whole value."""
    if not authorization:
        return None
    if authorization.startswith("Bearer "):  # the usual spelling, read without a split
        return authorization[7:].strip() or None
    scheme, sep, rest = authorization.partition(" ")
    if sep and scheme.lower() == "bearer":
        return rest.strip() or None
    return authorization.strip() or None


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class KeyRing:
    """Configured API keys, compared in constant time."""

    def __init__(self, keys: Sequence[Any]) -> None:
        self._keys = [
            (_digest(k.key), Caller(f"key#{index}", k.tenant, k.admin))
            for index, k in enumerate(keys)
        ]

        #: Keys presented that matched, with their caller: at most one entry per configured
        #: key (only the key itself matches its digest), so a caller's key is hashed and
        #: compared once. Looking a presented key up here compares it with a stored key only
        #: when their hashes (SipHash, keyed at random per process) are equal, so its timing
        #: tells an attacker nothing a wrong key's answer does not.
        self._matched: dict[str, Caller] = {}

    def __bool__(self) -> bool:
        return bool(self._keys)

    def match(self, presented: str) -> Caller | None:
        """Return the caller for `presented`: a key that matched before from `_matched`,
        any other compared with every key (no early exit)."""
        found = self._matched.get(presented)
        if found is not None:
            return found
        digest = _digest(presented)
        for expected, caller in self._keys:
            if hmac.compare_digest(digest, expected) and found is None:
                found = caller
        if found is not None:
            self._matched[presented] = found
        return found


class JwksCache:
    """JWKS keys by `kid`, from a file or a URL, refreshed on a TTL and on unknown kids."""

    def __init__(self, settings: JwtSettings, fetch: Fetch | None, clock: Callable[[], float]):
        self.settings = settings
        self.fetch = fetch
        self.clock = clock
        self.keys: dict[str | None, list[Any]] = {}
        #: Bumped whenever a refresh changes the key set (not when it re-reads the same keys):
        #: tokens verified under an older generation must be verified again.
        self.generation = 0
        self._fingerprint = b""
        self.loaded_at = float("-inf")
        self.last_attempt = float("-inf")
        #: When an unknown kid last caused a fetch (they are limited to one per interval).
        self.last_unknown = float("-inf")
        self.fetches = 0
        self._lock = asyncio.Lock()

    async def lookup(self, kid: str | None) -> list[Any]:
        """Return the keys for `kid` (every key when the token names none)."""
        now = self.clock()
        expired = now - self.loaded_at > self.settings.jwks_ttl
        found = self._find(kid)
        if found and not expired:
            return found
        # An unknown kid (the IdP rotated its keys) refetches at once unless another unknown
        # kid already did within the interval, however many arrive meanwhile; the TTL's
        # refresh of known keys also waits out the interval since the last fetch. A fetch in
        # flight is waited for (its keys may be the ones we need).
        unknown = not found
        interval = self.settings.jwks_refresh_interval
        if self._lock.locked() or now - self._gate(unknown) >= interval:
            async with self._lock:
                # Another waiter may have refreshed while we queued: re-check before fetching.
                if self.clock() - self._gate(unknown) >= interval:
                    if unknown:
                        self.last_unknown = self.clock()
                    await self._refresh()
            found = self._find(kid)
        return found

    def _gate(self, unknown: bool) -> float:
        return self.last_unknown if unknown else self.last_attempt

    def due(self) -> bool:
        """Whether the keys are past their TTL and a refresh may start now."""
        if self.settings.jwks_file is None and self.settings.jwks_url is None:
            return False
        now = self.clock()
        return (
            now - self.loaded_at > self.settings.jwks_ttl
            and now - self.last_attempt >= self.settings.jwks_refresh_interval
            and not self._lock.locked()
        )

    async def refresh_if_due(self) -> None:
        """Re-read the JWKS when `due`: tokens answered from the cache of verified tokens do
        not look keys up, and must not keep a key the IdP has withdrawn alive past the TTL."""
        if self.due():
            async with self._lock:
                if self.clock() - self.last_attempt >= self.settings.jwks_refresh_interval:
                    await self._refresh()

    def _find(self, kid: str | None) -> list[Any]:
        if kid is None:
            return [k for keys in self.keys.values() for k in keys][:MAX_CANDIDATE_KEYS]
        return self.keys.get(kid, [])

    async def _refresh(self) -> None:
        self.last_attempt = self.clock()
        self.fetches += 1
        try:
            if self.settings.jwks_file is not None:
                raw = self.settings.jwks_file.read_bytes()
            elif self.settings.jwks_url is not None and self.fetch is not None:
                raw = await self.fetch(self.settings.jwks_url)
            else:
                return
            self.keys, fingerprint = load_jwks(raw, self.settings.algorithms)
            if fingerprint != self._fingerprint:
                self._fingerprint = fingerprint
                self.generation += 1
            self.loaded_at = self.clock()
        except (TimeoutError, OSError, ValueError) as exc:
            # Keep serving the keys we had: a failed refresh must not lock everyone out.
            log.auth.warning("JWKS refresh failed: %s", exc)


def parse_jwks(raw: bytes, algorithms: Sequence[str]) -> dict[str | None, list[Any]]:
    """Parse a JWKS document into public keys by kid; refuse symmetric and mismatched keys."""
    return load_jwks(raw, algorithms)[0]


def load_jwks(raw: bytes, algorithms: Sequence[str]) -> tuple[dict[str | None, list[Any]], bytes]:
    """`parse_jwks`, plus a fingerprint of the keys it kept.

    The fingerprint is the SHA-256 of the kept entries, each serialised with sorted keys and
    the list sorted: the order of the keys and the formatting of the document do not change
    it, any key added, removed or changed does.
    """
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"JWKS is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("JWKS has no 'keys' list")
    families = {_FAMILY.get(a[:2]) for a in algorithms}
    out: dict[str | None, list[Any]] = {}
    kept: list[bytes] = []
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") not in families:
            continue  # `oct` (HMAC) keys and keys of another family are never used
        if entry.get("use", "sig") != "sig" or entry.get("alg", algorithms[0]) not in algorithms:
            continue
        try:
            key = jwt.PyJWK(entry).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
        try:
            canonical = orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            continue  # nested past orjson's depth limit: no key we want looks like that
        kid = entry.get("kid")
        out.setdefault(kid if isinstance(kid, str) else None, []).append(key)
        kept.append(canonical)
    return out, hashlib.sha256(b"\n".join(sorted(kept))).digest()


def validity(claims: Mapping[str, Any], leeway: float) -> tuple[float, float]:
    """Return (from, until): the token's time claims accept it while `from <= now < until`.

    pyjwt's rules, leeway included: it reads each claim as `int(value)` and refuses the token
    when `exp <= now - leeway`, `nbf > now + leeway` or `iat > now + leeway`. A missing claim
    sets no bound (`until` is infinite without `exp`); a claim that is not a number raises
    `AuthError`, as pyjwt would.
    """
    start, until = -math.inf, math.inf
    for name in ("nbf", "iat", "exp"):
        if name not in claims:
            continue
        try:
            value = int(claims[name])
        except (ValueError, TypeError, OverflowError):
            raise AuthError(f"invalid token: claim {name!r} is not a number") from None
        if name == "exp":
            until = value + leeway
        else:
            start = max(start, value - leeway)
    return start, until


@dataclass(frozen=True, slots=True)
class _Verified:
    identity: Identity
    valid_from: float
    valid_until: float


class VerifiedTokens:
    """Identities of verified tokens, by SHA-256 of the token, least recently used out first.

    Keyed by a digest, never by the token: a token is a bearer credential, and this table
    lives as long as the process; a digest cannot be replayed if memory is dumped or an entry
    is logged, and every key is 32 bytes however long the token (up to `MAX_TOKEN_BYTES`).
    Bounded by `size` with LRU eviction rather than clearing when full: a gateway with a few
    more active tokens than `size` would otherwise re-verify all of them after every clear.
    Entries outside their validity window are dropped when looked up (and by LRU otherwise).
    `generation` is the JWKS generation the entries were verified under: any other clears them.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.generation = 0
        self._entries: OrderedDict[bytes, _Verified] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes, now: float, generation: int) -> Identity | None:
        """The identity cached for `digest`, if it was verified under `generation` and its
        validity window holds `now`."""
        if generation != self.generation:
            self._entries.clear()
            self.generation = generation
            return None
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if not entry.valid_from <= now < entry.valid_until:
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return entry.identity

    def put(self, digest: bytes, identity: Identity, window: tuple[float, float]) -> None:
        """Remember a verified identity for its validity window (never an open-ended one)."""
        valid_from, valid_until = window
        if valid_until == math.inf:
            return
        self._entries[digest] = _Verified(identity, valid_from, valid_until)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


def _public_keys(settings: JwtSettings) -> list[Any]:
    if not settings.public_keys:
        return []
    family = settings.algorithms[0]
    algorithm = get_default_algorithms()[family]
    return [algorithm.prepare_key(pem) for pem in settings.public_keys]


class JwtVerifier:
    """Verify JWTs under pinned algorithms, claims and keys (see the module docstring)."""

    def __init__(
        self,
        settings: JwtSettings,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock` times JWKS refreshes; `wall_clock` (seconds since the epoch) is what token
        times are compared with, by `claims` and by the cache of verified tokens."""
        self.settings = settings
        self.jwks = JwksCache(settings, fetch, clock)
        self.wall_clock = wall_clock
        self.tokens = VerifiedTokens(settings.cache_size) if settings.cache_size > 0 else None
        self._static = _public_keys(settings)
        self._required = ["exp", settings.subject_claim]
        if settings.issuer:
            self._required.append("iss")
        if settings.audience:
            self._required.append("aud")

    @property
    def configured(self) -> bool:
        return self.settings.configured

    def verified(self, token: str) -> Identity | None:
        """`verify` answered from the verified-token cache alone: None when the token must be
        verified (or the key set re-read) first; then await `verify`."""
        if self.tokens is None or len(token) > MAX_TOKEN_BYTES or self.jwks.due():
            return None
        return self.tokens.get(_digest(token), self.wall_clock(), self.jwks.generation)

    async def verify(self, token: str) -> Identity:
        """Return the token's identity; raise `AuthError` saying why it is refused.

        A token verified before is answered from `tokens` while its validity window lasts
        and the JWKS key set is the one it was verified under (see `VerifiedTokens`).
        """
        if self.tokens is None or len(token) > MAX_TOKEN_BYTES:
            return self._identity(await self.claims(token))
        if self.jwks.due():
            await self.jwks.refresh_if_due()
        digest = _digest(token)
        generation = self.jwks.generation
        found = self.tokens.get(digest, self.wall_clock(), generation)
        if found is not None:
            return found
        claims = await self.claims(token)
        identity = self._identity(claims)
        start, until = validity(claims, self.settings.leeway)
        # Not cached: a token verified under keys that changed while we awaited them, or one
        # whose nbf/iat is still ahead (accepted only thanks to the leeway).
        if self.jwks.generation == generation and start + self.settings.leeway <= self.wall_clock():
            self.tokens.put(digest, identity, (start, until))
        return identity

    def _identity(self, claims: dict[str, Any]) -> Identity:
        subject = claims.get(self.settings.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise AuthError(f"invalid token: claim {self.settings.subject_claim!r} is not a string")
        tenant = claims.get(self.settings.tenant_claim)
        if tenant is not None and not isinstance(tenant, str):
            raise AuthError(f"invalid token: claim {self.settings.tenant_claim!r} is not a string")
        # Read-only: a cached identity is shared by every request presenting the token.
        return Identity(subject, tenant, MappingProxyType(claims))

    async def claims(self, token: str) -> dict[str, Any]:
        """Verify signature and claims; return the payload.

        pyjwt checks the time claims against its own clock; they are checked again with
        `validity` against `wall_clock` (the same time in production), so that fresh and
        cached verifications share one definition of when a token is valid, and a test can
        move that clock.
        """
        payload = await self._decoded(token)
        start, until = validity(payload, self.settings.leeway)
        now = self.wall_clock()
        if now >= until:
            raise AuthError("invalid token: Signature has expired")
        if now < start:
            raise AuthError("invalid token: The token is not yet valid")
        return payload

    async def _decoded(self, token: str) -> dict[str, Any]:
        if not self.configured:
            raise AuthError("no token verification is configured")
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthError("invalid token: too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        self._check_header(header)
        candidates = await self._keys(header)
        if not candidates:
            raise AuthError(f"invalid token: no key for kid {header.get('kid')!r}")
        last: Exception | None = None
        for key in candidates[:MAX_CANDIDATE_KEYS]:
            try:
                payload: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=list(self.settings.algorithms),
                    audience=list(self.settings.audience) or None,
                    issuer=self.settings.issuer,
                    leeway=self.settings.leeway,
                    options={"require": self._required, "verify_aud": bool(self.settings.audience)},
                )
            except jwt.InvalidSignatureError as exc:
                last = exc
                continue
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                raise AuthError(f"invalid token: {exc}") from None
            return payload
        raise AuthError(f"invalid token: {last or 'signature verification failed'}")

    def _check_header(self, header: Mapping[str, Any]) -> None:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.settings.algorithms:
            raise AuthError(f"invalid token: algorithm {alg!r} is not allowed")
        if "crit" in header:
            raise AuthError("invalid token: critical header extensions are not supported")
        if "jwk" in header or "x5c" in header:
            raise AuthError("invalid token: embedded keys are never trusted")
        for name in ("jku", "x5u"):
            if name in header and header[name] != self.settings.jwks_url:
                raise AuthError(f"invalid token: {name} points outside the configured JWKS")

    async def _keys(self, header: Mapping[str, Any]) -> list[Any]:
        if self.settings.secret is not None:
            return [self.settings.secret]
        kid = header.get("kid")
        kid = kid if isinstance(kid, str) else None
        keys = list(self._static)
        if self.settings.jwks_file is not None or self.settings.jwks_url is not None:
            keys += await self.jwks.lookup(kid)
        return keys


class Authenticator:
    """Decide who the caller is, for decision endpoints and for the admin API."""

    def __init__(self, config: Config, verifier: JwtVerifier) -> None:
        self.keys = KeyRing(config.api_keys)
        self.admin_keys_configured = any(k.admin for k in config.api_keys)
        self.admin_open = config.admin_open
        self.verifier = verifier
        self.caller_tokens = config.jwt.caller_tokens and verifier.configured
        self.open = not self.keys and not self.caller_tokens

    async def caller(self, authorization: str | None, key_header: str | None = None) -> Caller:
        """Return the caller of a decision endpoint; raise `AuthError` when one is required."""
        found = self.key_caller(authorization, key_header)
        if found is not None:
            return found
        return await self.token_caller(authorization, key_header)

    def key_caller(self, authorization: str | None, key_header: str | None = None) -> Caller | None:
        """`caller` without awaiting: None when a service token must be verified (await
        `token_caller` then); raise `AuthError` when a credential is required and none is
        valid."""
        presented = key_header or credential(authorization)
        if presented is None:
            if self.open:
                return ANONYMOUS
            raise AuthError("missing credential: send Authorization: Bearer <api key>")
        found = self.keys.match(presented) if self.keys else None
        if found is not None:
            return found
        if self.caller_tokens and presented.count(".") == 2:
            return None
        if self.open:
            # Open mode (no keys configured): a header meant for someone else is not ours.
            return ANONYMOUS
        raise AuthError("invalid credential")

    async def admin(self, authorization: str | None, key_header: str | None = None) -> Caller:
        """Return the caller of an admin endpoint; raise unless it holds an admin credential."""
        if self.admin_open and not self.admin_keys_configured:
            caller = await self.caller(authorization, key_header)
            return Caller(caller.name, caller.tenant, True)
        presented = key_header or credential(authorization)
        if presented is None:
            if not self.admin_keys_configured and not self.caller_tokens:
                raise Forbidden(
                    "the admin API is disabled: configure GROUPGATE_ADMIN_KEYS "
                    "(or GROUPGATE_ADMIN_OPEN=1 for a local demo)"
                )
            raise AuthError("missing admin credential")
        caller = await self.caller(authorization, key_header)
        if not caller.admin:
            raise Forbidden("this credential is not an admin credential")
        return caller

    async def token_caller(
        self, authorization: str | None, key_header: str | None = None
    ) -> Caller:
        """The caller a service token names (after `key_caller` answered None)."""
        identity = await self.verifier.verify(key_header or credential(authorization) or "")
        raw = identity.claims.get("scope", identity.claims.get("scp", ""))
        scopes = raw.split() if isinstance(raw, str) else [s for s in raw if isinstance(s, str)]
        admin = self.verifier.settings.admin_scope in scopes
        return Caller(f"jwt:{identity.subject}", identity.tenant, admin)


def mint_token(
    secret: str,
    subject: str,
    *,
    tenant: str | None = None,
    audience: str | None = None,
    issuer: str | None = None,
    ttl: int = 3600,
    tenant_claim: str = "tenant",
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Return a development HS256 token for `subject` (the `groupgate token` command)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "iat": now, "nbf": now, "exp": now + ttl}
    if tenant is not None:
        claims[tenant_claim] = tenant
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    claims.update(extra or {})
    return jwt.encode(claims, secret, algorithm="HS256")
