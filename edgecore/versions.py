"""Version numbers of datasets and models, claimed without a lock.

A version number is taken by creating its claim object with an S3 conditional write
(``If-None-Match: *``): of any number of writers racing for ``v000007`` exactly one
succeeds, the others move on to the next number.  A claim without a manifest is a gap
(a writer that died), never reused, so a version number always means one content.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from edgecore.errors import IntegrityError, NotFound
from edgecore.layout import VersionedName, format_version, parse_version, version_of_key
from edgecore.storage import ObjectStore

MAX_CLAIM_TRIES = 100


def known_versions(store: ObjectStore, name: VersionedName) -> list[str]:
    """Versions with files or a claim, oldest first."""
    found: set[str] = set()
    try:
        for key in store.list_prefixes(name.versions):
            if version := version_of_key(key, name.versions.key):
                found.add(version)
        for obj in store.list(name.claims):
            if version := version_of_key(obj.location.key.removesuffix(".json"), name.claims.key):
                found.add(version)
    except NotFound:  # the bucket does not exist yet: no versions
        return []
    return sorted(found, key=parse_version)


def claim_next_version(store: ObjectStore, name: VersionedName, owner: str) -> str:
    """The next free version number, owned by this caller alone."""
    versions = known_versions(store, name)
    number = parse_version(versions[-1]) + 1 if versions else 1
    record = json.dumps({"owner": owner, "at": datetime.now(UTC).isoformat()}).encode()
    for _ in range(MAX_CLAIM_TRIES):
        version = format_version(number)
        if store.put_if_absent(name.claim(version), record):
            return version
        number += 1
    raise IntegrityError(f"{name.versions.uri}: no free version after {MAX_CLAIM_TRIES} conditional writes")
