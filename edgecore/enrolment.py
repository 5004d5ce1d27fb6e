"""Enrolling a store: the credentials it needs at the core, written once to an env file for its site.

``enrol`` issues the edge a front-door token (added to the door's tokens file, which the
door reads again when it changes) and a Kafka login with ACLs for its own topic, and
writes what the edge's processes need (``EDGECORE_DOOR_*``, ``EDGECORE_KAFKA_*``, the CA
to trust) to an env file readable by its owner only; secrets are never printed.
Rotating keeps the newest current token valid beside the new one until ``revoke
--old-only`` once the store has switched: no downtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from foundation.credentials import new_token, read_tokens_file, write_private, write_tokens_file
from foundation.errors import Conflict, NotFound
from foundation.kafka_users import grant_edge, kafka_user, new_password, revoke_edge
from foundation.layout import check_name
from foundation.settings import Settings


@dataclass(frozen=True)
class Enrolment:
    edge: str
    env_file: Path
    rotated: bool


def enrol(
    settings: Settings, edge: str, env_file: Path, rotate: bool = False, kafka: bool = True
) -> Enrolment:
    """A new front-door token (beside the current one when rotating) and, with ``kafka``, a Kafka login."""
    check_name(edge, "edge id")
    tokens = read_tokens_file(settings.door_tokens_file)
    current = tokens.get(edge, [])
    if current and not rotate:
        raise Conflict(f"edge {edge} is enrolled already: --rotate issues a new token beside the current one")
    token = new_token()
    env = {"EDGECORE_DOOR_URL": settings.door.url, "EDGECORE_DOOR_TOKEN": token}
    env["EDGECORE_TLS_CA_FILE"] = str(settings.ca_file)
    if kafka:  # first: a broker that fails leaves no token behind that would make a retry "enrolled"
        password = new_password()
        grant_edge(settings.kafka, edge, password)
        env |= {
            "EDGECORE_KAFKA_BOOTSTRAP": f"{settings.kafka.host}:{settings.kafka.edge_port}",
            "EDGECORE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "EDGECORE_KAFKA_USERNAME": kafka_user(edge),
            "EDGECORE_KAFKA_PASSWORD": password,
            "EDGECORE_KAFKA_CA_FILE": str(settings.ca_file),
            # the edge reads <this>.<edge id>, the topic its ACLs were just granted on
            "EDGECORE_TOPIC_MODEL_PUBLISHED": settings.kafka.topic_model_published,
            # and writes its machines' alarms on <this>.<edge id>, the only topic it may write
            "EDGECORE_TOPIC_ANOMALY_DETECTED": settings.kafka.topic_anomaly_detected,
        }
    tokens[edge] = [*current[-1:], token]
    write_tokens_file(settings.door_tokens_file, tokens)
    write_env_file(env_file, env, merge=rotate)
    return Enrolment(edge, env_file, bool(current))


def revoke(settings: Settings, edge: str, old_only: bool = False) -> int:
    """Withdraw an edge's older token (``old_only``: the store switched to the new one), or everything."""
    tokens = read_tokens_file(settings.door_tokens_file)
    if edge not in tokens:
        raise NotFound(f"edge {edge} holds no front-door token")
    if old_only:
        removed = len(tokens[edge]) - 1
        tokens[edge] = tokens[edge][-1:]
    else:
        removed = len(tokens.pop(edge))
    write_tokens_file(settings.door_tokens_file, tokens)  # first: the door is shut even if Kafka is down
    if not old_only:
        revoke_edge(settings.kafka, edge)
    return removed


def write_env_file(path: Path, values: dict[str, str], merge: bool = False) -> None:
    """``NAME=value`` lines (pydantic-settings reads them as ``.env``), owner-readable only."""
    existing: dict[str, str] = {}
    if merge and path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep:
                existing[name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, "".join(f"{k}={v}\n" for k, v in {**existing, **values}.items()))


def issue_operator(settings: Settings, operator: str, token_file: Path) -> None:
    """A new token for one operator of the core's status page, written to ``token_file`` (owner-readable)
    and added to the operators file; an earlier token of the same operator stays valid beside it."""
    check_name(operator, "operator id")
    tokens = read_tokens_file(settings.operators_file) if settings.operators_file.is_file() else {}
    token = new_token()
    write_tokens_file(settings.operators_file, {**tokens, operator: [*tokens.get(operator, [])[-1:], token]})
    token_file.parent.mkdir(parents=True, exist_ok=True)
    write_private(token_file, token + "\n")
