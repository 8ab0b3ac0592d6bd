"""The tenant file schema: one pydantic model per section of `tenants/<slug>.yaml`.

This is the single source of truth for what a tenant file may contain; the JSON
Schema in `tenants/schema.json` is exported from it (`tenantctl schema --write`).
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

SLUG_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
CONFIG_KEY_PATTERN = r"^[a-zA-Z][a-zA-Z0-9]*([-_][a-zA-Z0-9]+)*$"
# Kubernetes resource.Quantity, as the API server's own regular expression has it.
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
LLM_MODEL_PATTERN = r"^[a-z0-9][a-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._:-]*$"

Slug = Annotated[str, StringConstraints(min_length=3, max_length=40, pattern=SLUG_PATTERN)]
Quantity = Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=32)]
StrictInt = Annotated[int, Field(strict=True)]

# No value on the command line (ps, shell history): the CLI prompts for it, or reads it from stdin.
SECRET_SET_COMMAND = "pulumi config set --secret {key} --stack <stack> (it asks for the value)"  # noqa: S105
# Key names that, when they appear in a tenant file, almost certainly carry a literal credential.
SECRETISH_KEY = re.compile(
    r"(?:^|[_-])(api[_-]?key|apikey|secret|passw(?:or)?d|pwd|token|credentials?|private[_-]?key)(?:$|[_-])",
    re.I,
)


class Tier(StrEnum):
    BASIC = "basic"
    PREMIUM = "premium"


class TenantState(StrEnum):
    """`active` serves the tenant; `suspended` keeps everything it has (row, secrets, key, data) and refuses its
    webhooks (docs/operations.md, "Suspend and resume")."""

    ACTIVE = "active"
    SUSPENDED = "suspended"


class ContextSource(StrEnum):
    TICKET_HISTORY = "ticket_history"
    KB = "kb"
    MONITORING = "monitoring"


class OutputFormat(StrEnum):
    MARKDOWN = "markdown"
    HTML = "html"
    TEXT = "text"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


def looks_like_literal_secret(value: str) -> bool:
    """True for strings shaped like a generated key rather than a config key name."""
    if len(value) < 20:
        return False
    if re.fullmatch(r"[A-Fa-f0-9-]{20,}", value) or re.fullmatch(r"[A-Za-z0-9+/=_-]{32,}", value):
        counts = Counter(value)
        entropy = -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())
        has_digit = any(ch.isdigit() for ch in value)
        return has_digit and entropy >= 3.3
    return False


INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".lan", ".intranet", ".corp")
METADATA_HOSTS = {"metadata", "metadata.google.internal", "instance-data", "instance-data.ec2.internal"}


def non_public_host(hostname: str) -> str | None:
    """Why `hostname` is not a public host (loopback, private, link-local or metadata address, internal name),
    or None. Offline: names are judged by their form, never resolved."""
    import ipaddress

    host = hostname.rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        mapped = getattr(address, "ipv4_mapped", None) or address
        if mapped.is_loopback:
            return f"a loopback address ({host})"
        if mapped.is_link_local:
            return f"a link-local address ({host}; the cloud metadata service lives there)"
        if mapped.is_private or mapped.is_reserved or mapped.is_unspecified or mapped.is_multicast:
            return f"a private or reserved address ({host})"
        return None
    # inet_aton reads 2130706433, 0x7f.1 or 0177.0.0.1 as 127.0.0.1: every label a number is an address.
    if all(re.fullmatch(r"0x[0-9a-f]*|\d+", label) for label in host.split(".")):
        return f"an IP address in a non-standard form ({host})"
    if host == "localhost" or host in METADATA_HOSTS or host.endswith(INTERNAL_SUFFIXES):
        return f"an internal name ({host})"
    if "." not in host:
        return f"a single-label internal name ({host})"
    return None


def config_key_not_a_literal(value: str) -> str:
    """A tenant file names its secrets by config key: refuse a pasted key, or anything that is no key name."""
    if looks_like_literal_secret(value):
        raise ValueError(
            "looks like a literal API key; put the key in stack config with "
            + SECRET_SET_COMMAND.format(key="<name>")
            + " and write that <name> here"
        )
    if not re.fullmatch(CONFIG_KEY_PATTERN, value):
        raise ValueError("must be a Pulumi config key name (letters, digits, '-' or '_', starting with a letter)")
    return value


# The name of a stack config secret, as a tenant file gives it (never the secret itself).
SecretName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(config_key_not_a_literal)]


class ServiceDesk(_Section):
    url: Annotated[str, Field(max_length=500, description="The client's ServiceDesk Plus base URL (https).")]
    api_key_secret: Annotated[
        SecretName,
        Field(description=(
            "Name of the Pulumi config secret holding the client's ServiceDesk Plus API key "
            "(set with `pulumi config set --secret <name> <key>`). Never the key itself."
        )),
    ]

    @field_validator("url")
    @classmethod
    def _https_without_credentials(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https":
            raise ValueError(f"must be an https:// URL, got scheme {parts.scheme or '(none)'!r}")
        if not parts.hostname:
            raise ValueError("must include a host name")
        if parts.username or parts.password:
            raise ValueError(
                "must not contain credentials; store the API key with "
                + SECRET_SET_COMMAND.format(key="<api_key_secret>")
            )
        reason = non_public_host(parts.hostname)
        if reason:
            raise ValueError(f"must name the client's public ServiceDesk Plus host, not {reason}")
        return value


class Llm(_Section):
    api_key_secret: Annotated[
        SecretName,
        Field(description=(
            "Name of the Pulumi config secret holding the client's own LLM (OpenAI) API key, "
            "`<slug>-llm-api-key`. Leave the section out to use the platform's key."
        )),
    ]


class RateLimits(_Section):
    webhooks_per_minute: Annotated[StrictInt, Field(ge=1, le=10_000, description="Webhook rate limit.")] = 60


class EnhancementPreferences(_Section):
    context_sources: Annotated[
        list[ContextSource],
        Field(min_length=1, description="Context gathered for each enhancement."),
    ] = [ContextSource.TICKET_HISTORY, ContextSource.KB, ContextSource.MONITORING]
    output_format: OutputFormat = OutputFormat.MARKDOWN
    max_tokens: Annotated[StrictInt, Field(ge=50, le=4000)] = 500
    llm_model: Annotated[str, StringConstraints(pattern=LLM_MODEL_PATTERN, max_length=100)] = (
        "openai/gpt-4o-mini"
    )
    rate_limits: RateLimits = RateLimits()

    @field_validator("context_sources")
    @classmethod
    def _no_repeats(cls, value: list[ContextSource]) -> list[ContextSource]:
        if len(set(value)) != len(value):
            raise ValueError("must not list a source twice")
        return value


class SigningSecretRotation(_Section):
    """A signing-secret rotation under way, as `tenantctl rotate-signing-secret` writes it: until `overlap_until`
    the application accepts webhooks signed with the current secret or the next one."""

    next_version: Annotated[StrictInt, Field(ge=2, description="The version of the next signing secret.")]
    overlap_until: Annotated[datetime, Field(description=(
        "Until when (ISO 8601 with a time zone) both secrets are accepted; the first `up` after it retires the "
        "current secret, as `tenantctl rotate-signing-secret --finish` does."))]

    @field_validator("overlap_until")
    @classmethod
    def _has_time_zone(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("must carry a time zone, for example 2026-12-11T00:00:00Z")
        return value


class Webhook(_Section):
    signing_secret_version: Annotated[
        StrictInt,
        Field(ge=1, description=(
            "The signing secret in use. Rotate with `tenantctl rotate-signing-secret` (an overlap, no webhook "
            "dropped); bumping it by hand replaces the secret at once.")),
    ] = 1
    rotation: SigningSecretRotation | None = Field(
        default=None, description="A rotation under way (written by `tenantctl rotate-signing-secret`).")

    @model_validator(mode="after")
    def _next_version_is_newer(self) -> Webhook:
        if self.rotation is not None and self.rotation.next_version <= self.signing_secret_version:
            raise ValueError(
                f"rotation.next_version: must be above signing_secret_version ({self.signing_secret_version})")
        return self


class Resources(_Section):
    cpu: Quantity | None = None
    memory: Quantity | None = None
    pods: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None


# What a premium namespace gets when its tenant file does not say.
PREMIUM_DEFAULT_RESOURCES = Resources(cpu="2", memory="4Gi", pods=20)


class Offboarding(_Section):
    purge_data: Annotated[
        bool,
        Field(
            strict=True,
            description=(
                "Set to true (and `pulumi up`) before removing a tenant whose history rows should be deleted; "
                "otherwise removal refuses while history exists."
            ),
        ),
    ] = False


# A PersistentVolumeClaim's name (a DNS subdomain), or "*": every claim, including claims no one can list here
# (a stack whose Kubernetes objects are rendered, not applied).
ALL_VOLUMES = "*"
ClaimName = Annotated[str, StringConstraints(max_length=253,
                                             pattern=r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$")]


class TierChange(_Section):
    accept_volume_loss: Annotated[
        list[ClaimName],
        Field(
            max_length=100,
            description=(
                "Downgrade to basic only: the PersistentVolumeClaims of the premium namespace that may be deleted "
                "with it, by name (\"*\": every claim, also where the cluster cannot be asked). The downgrade is "
                "refused while the namespace holds a claim not named here (docs/operations.md)."
            ),
        ),
    ] = []


class Contacts(_Section):
    admin_email: EmailStr


# The tenant's alert thresholds when its file does not say (docs/observability.md): premium tenants get
# the tighter objective and thresholds, and their urgent alerts page; basic tenants' alerts open tickets.
SLO_OBJECTIVE_RANGE = (0.95, 0.9999)
SILENT_AFTER_HOURS_RANGE = (1, 168)
ENHANCEMENT_P95_SECONDS_RANGE = (5, 3600)
QUEUE_AGE_SECONDS_RANGE = (60, 86_400)


class Observability(_Section):
    """Per-tenant overrides of the alert rules' objective and thresholds; every field is optional."""

    slo_objective: Annotated[float | None, Field(
        json_schema_extra={"minimum": SLO_OBJECTIVE_RANGE[0], "maximum": SLO_OBJECTIVE_RANGE[1]},
        description=("Webhook success-ratio objective as a fraction (0.999 = 99.9%); default by tier: premium "
                     "0.999, basic 0.995. Drives the error-budget burn-rate alerts."),
    )] = None
    silent_after_hours: Annotated[StrictInt | None, Field(
        json_schema_extra={"minimum": SILENT_AFTER_HOURS_RANGE[0], "maximum": SILENT_AFTER_HOURS_RANGE[1]},
        description="Alert when no webhook arrived for this many hours (1-168). Absent: no silent-tenant alert.",
    )] = None
    enhancement_p95_seconds: Annotated[StrictInt | None, Field(
        json_schema_extra={"minimum": ENHANCEMENT_P95_SECONDS_RANGE[0],
                           "maximum": ENHANCEMENT_P95_SECONDS_RANGE[1]},
        description="Alert when the p95 end-to-end enhancement time exceeds this; default premium 60, basic 120.",
    )] = None
    queue_age_seconds: Annotated[StrictInt | None, Field(
        json_schema_extra={"minimum": QUEUE_AGE_SECONDS_RANGE[0], "maximum": QUEUE_AGE_SECONDS_RANGE[1]},
        description="Alert when the oldest queued enhancement is older than this; default premium 300, basic 900.",
    )] = None

    @field_validator("slo_objective", mode="before")
    @classmethod
    def _objective_is_a_fraction(cls, value: object) -> object:
        low, high = SLO_OBJECTIVE_RANGE
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number between {low} and {high}, for example 0.999 for 99.9%")
        if value > 1:
            raise ValueError(f"must be a fraction between {low} and {high}: write 0.999 for 99.9%, not 99.9")
        if not low <= value <= high:
            raise ValueError(
                f"must be between {low} and {high}: a lower objective makes the fast burn-rate alerts meaningless "
                f"(below 0.93, 14.4 times the error budget is more than every request failing), and above "
                f"{high} the error budget is too small to alert on"
            )
        return float(value)

    @field_validator("silent_after_hours", "enhancement_p95_seconds", "queue_age_seconds", mode="before")
    @classmethod
    def _whole_number_in_range(cls, value: object, info) -> object:
        low, high, unit = {
            "silent_after_hours": (*SILENT_AFTER_HOURS_RANGE, "hours"),
            "enhancement_p95_seconds": (*ENHANCEMENT_P95_SECONDS_RANGE, "seconds"),
            "queue_age_seconds": (*QUEUE_AGE_SECONDS_RANGE, "seconds"),
        }[info.field_name]
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number of {unit} from {low} to {high}")
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high} {unit}, got {value}")
        return value


@dataclass(frozen=True)
class EffectiveObservability:
    """What a tenant's alert rules use: its file's overrides over its tier's defaults."""

    slo_objective: float
    enhancement_p95_seconds: int
    queue_age_seconds: int
    silent_after_hours: int | None


OBSERVABILITY_DEFAULTS = {
    Tier.PREMIUM: EffectiveObservability(slo_objective=0.999, enhancement_p95_seconds=60, queue_age_seconds=300,
                                         silent_after_hours=None),
    Tier.BASIC: EffectiveObservability(slo_objective=0.995, enhancement_p95_seconds=120, queue_age_seconds=900,
                                       silent_after_hours=None),
}


class Tenant(_Section):
    """One MSP client, as written in `tenants/<slug>.yaml`."""

    tenant_id: Annotated[UUID, Field(description="Generated once by `tenantctl new`; never changes.")]
    slug: Slug
    previous_slugs: Annotated[
        list[Slug],
        Field(
            max_length=10,
            description=(
                "Slugs this tenant had before a rename. Pulumi then moves its resources (aliases) instead of "
                "recreating them, and keeps its signing secret; objects named from the slug get the new name."
            ),
        ),
    ] = []
    name: Annotated[str, Field(min_length=1, max_length=255)]
    tier: Tier
    state: TenantState = Field(default=TenantState.ACTIVE, description=(
        "`suspended`: the row is marked inactive and the tenant's webhooks are refused (HTTP 423); a premium "
        "namespace admits no new pod. Secrets, keys and data are kept; `active` restores the tenant."))
    servicedesk: ServiceDesk
    enhancement_preferences: EnhancementPreferences = EnhancementPreferences()
    webhook: Webhook = Webhook()
    resources: Resources | None = Field(
        default=None, description="Premium only: namespace ResourceQuota; tier defaults when absent."
    )
    contacts: Contacts
    offboarding: Offboarding = Offboarding()
    tier_change: TierChange = Field(
        default=TierChange(), description="What a tier change may cost (accept_volume_loss), reviewed with it.")
    llm: Llm | None = Field(default=None, description="The client's own LLM API key; absent: the platform's.")
    observability: Observability = Field(
        default=Observability(),
        description="Optional overrides of the tenant's alert objective and thresholds (docs/observability.md).",
    )

    @model_validator(mode="after")
    def _previous_slugs_are_other_names(self) -> Tenant:
        if self.slug in self.previous_slugs:
            raise ValueError("previous_slugs: must not list the current slug")
        if len(set(self.previous_slugs)) != len(self.previous_slugs):
            raise ValueError("previous_slugs: must not list a slug twice")
        return self

    @model_validator(mode="after")
    def _api_key_secret_is_this_tenants_own(self) -> Tenant:
        # The value is copied into this tenant's Kubernetes Secret, readable by its service account: naming
        # any other stack secret (fernetKey, another tenant's key) would hand it to this tenant.
        # After a rename the key may keep its old name: a previous slug is never another tenant's (loader).
        allowed = [api_key_secret_name(slug) for slug in (self.slug, *self.previous_slugs)]
        named = self.servicedesk.api_key_secret
        if named not in allowed:
            old = named.removesuffix("-servicedesk-api-key")
            hint = (f"; if this tenant was renamed from {old!r}, add `previous_slugs: [{old}]`"
                    if named.endswith("-servicedesk-api-key") and re.fullmatch(SLUG_PATTERN, old) else "")
            raise ValueError(
                f"servicedesk.api_key_secret: must be {allowed[0]!r}, this tenant's own stack secret{hint}"
            )
        llm_allowed = [llm_key_secret_name(slug) for slug in (self.slug, *self.previous_slugs)]
        if self.llm is not None and self.llm.api_key_secret not in llm_allowed:
            raise ValueError(f"llm.api_key_secret: must be {llm_allowed[0]!r}, this tenant's own stack secret")
        return self

    @model_validator(mode="after")
    def _resources_are_premium_only(self) -> Tenant:
        if self.resources is not None and self.tier is not Tier.PREMIUM:
            raise ValueError("resources: only premium tenants get a namespace quota; remove it or use tier: premium")
        return self

    @model_validator(mode="after")
    def _volume_loss_is_for_a_downgrade(self) -> Tenant:
        if self.tier_change.accept_volume_loss and self.tier is not Tier.BASIC:
            raise ValueError("tier_change.accept_volume_loss: names volumes a downgrade to basic may delete; this "
                             "tenant is premium, so remove it (or use tier: basic)")
        return self

    @property
    def secret_names(self) -> list[str]:
        """The stack config secrets this tenant names: its ServiceDesk Plus key, and its LLM key if it has one."""
        return [self.servicedesk.api_key_secret, *([self.llm.api_key_secret] if self.llm else [])]

    @property
    def digest(self) -> str:
        """What the file says, as a short hash: the same file content gives the same digest, comments aside.
        A tenant stack exports the digest it applied, so `tenantctl status` can tell applied from pending."""
        import hashlib
        import json

        dumped = self.model_dump(mode="json")
        # Fields added later count only when set: a file that does not use them keeps the digest it had.
        if dumped.get("state") == TenantState.ACTIVE.value:
            del dumped["state"]
        if dumped["webhook"].get("rotation") is None:
            del dumped["webhook"]["rotation"]
        canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def effective_observability(self) -> EffectiveObservability:
        given, defaults = self.observability, OBSERVABILITY_DEFAULTS[self.tier]
        return EffectiveObservability(
            slo_objective=given.slo_objective if given.slo_objective is not None else defaults.slo_objective,
            enhancement_p95_seconds=given.enhancement_p95_seconds or defaults.enhancement_p95_seconds,
            queue_age_seconds=given.queue_age_seconds or defaults.queue_age_seconds,
            silent_after_hours=given.silent_after_hours,
        )

    @property
    def suspended(self) -> bool:
        return self.state is TenantState.SUSPENDED

    @property
    def effective_resources(self) -> Resources:
        given = self.resources or Resources()
        return Resources(
            cpu=given.cpu or PREMIUM_DEFAULT_RESOURCES.cpu,
            memory=given.memory or PREMIUM_DEFAULT_RESOURCES.memory,
            pods=given.pods or PREMIUM_DEFAULT_RESOURCES.pods,
        )


_ALLOWED_SECRETISH = {"api_key_secret", "signing_secret_version"}


def literal_secret_paths(data: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of keys that look like they hold a pasted credential (`api_key: ...`, `password: ...`).

    Reported with the command that stores the value properly, rather than as a bare unknown key.
    """
    found: list[tuple[str, ...]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            here = (*path, str(key))
            if isinstance(value, dict):
                found += literal_secret_paths(value, here)
            elif (str(key) not in _ALLOWED_SECRETISH and SECRETISH_KEY.search(str(key))
                  and not difflib.get_close_matches(str(key), _ALLOWED_SECRETISH, cutoff=0.8)):
                # A near miss of an allowed key (api_key_secrets) is a typo, reported as an unknown key.
                found.append(here)
    return found


def api_key_secret_name(slug: str) -> str:
    """The only stack secret a tenant file may name for its ServiceDesk Plus API key."""
    return f"{slug}-servicedesk-api-key"


def llm_key_secret_name(slug: str) -> str:
    """The only stack secret a tenant file may name for its own LLM API key."""
    return f"{slug}-llm-api-key"


def literal_secret_message(slug: str) -> str:
    key = api_key_secret_name(slug or "<slug>")
    return (
        "literal secrets are not allowed in tenant files; store the value with "
        + SECRET_SET_COMMAND.format(key=key)
        + f" and reference it by name (servicedesk.api_key_secret: {key})"
    )


def tenant_json_schema() -> dict:
    schema = Tenant.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Tenant onboarding file"
    return schema
