"""JWTs from an external issuer (optional: on when ``ORDTOOL_AUTH__JWT_KEY`` is set).

Only the configured algorithm is accepted, so a token signed with ``alg: none`` or an HMAC
token forged with a public RSA key as its secret is refused; ``exp``, ``iss``, ``aud`` and
``sub`` must be present and right. Scopes come from the space-separated ``scope`` claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from ordtool.config import AuthSettings
from ordtool.domain.keys import known_scopes
from ordtool.errors import ConfigurationError


class InvalidToken(Exception):
    """The token is not acceptable; the message says why, for the 401's detail."""


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    subject: str
    scopes: frozenset[str]


# PyJWT's exceptions, most specific first, as messages a client can act on.
_REASONS: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired; get a new one from the issuer"),
    (jwt.InvalidAudienceError, "the token is for another audience"),
    (jwt.InvalidIssuerError, "the token is from an issuer this service does not trust"),
    (jwt.MissingRequiredClaimError, "the token lacks a required claim (exp, iss, aud, sub)"),
    (jwt.InvalidAlgorithmError, "the token's signing algorithm is not accepted"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
)


class JwtVerifier:
    def __init__(self, settings: AuthSettings) -> None:
        if settings.jwt_key is None:
            raise ConfigurationError("JWTs are off", hint="set ORDTOOL_AUTH__JWT_KEY")
        if not settings.jwt_issuer or not settings.jwt_audience:
            raise ConfigurationError(
                "JWTs need an issuer and an audience to check",
                hint="set ORDTOOL_AUTH__JWT_ISSUER and ORDTOOL_AUTH__JWT_AUDIENCE",
            )
        self._algorithm = settings.jwt_algorithm
        self._key = _prepared_key(settings.jwt_algorithm, settings.jwt_key.get_secret_value())
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_s

    def verify(self, token: str) -> TokenIdentity:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(_reason(exc)) from None
        scope = claims.get("scope", "")
        subject = claims["sub"]
        if not isinstance(scope, str) or not isinstance(subject, str) or not subject:
            raise InvalidToken("the token's sub and scope claims must be strings")
        return TokenIdentity(subject, known_scopes(scope))


def _prepared_key(algorithm: str, key: str) -> Any:
    """The key parsed once (PEM parsing per request would cost more than the check), and
    checked at start-up: a key that does not fit the algorithm is a configuration error."""
    try:
        return jwt.get_algorithm_by_name(algorithm).prepare_key(key)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"ORDTOOL_AUTH__JWT_KEY is not a valid {algorithm} key ({exc})",
            hint="give the issuer's PEM public key, or the shared secret for HS algorithms",
        ) from None


def _reason(exc: jwt.InvalidTokenError) -> str:
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return "the token is malformed"


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2
