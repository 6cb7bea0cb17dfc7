"""The FreePBX 16 GraphQL schema, with resolvers, pruned to what a token may use.

The schema comes from the introspection of a real FreePBX 16 (framework
16.0.33, core 16.0.68.4, api 16.0.13). FreePBX builds the schema per request
from the GraphQL classes whose scope check the token passes, so a field the
token may not use does not exist: there is no "forbidden" error.
"""

from __future__ import annotations

import functools
import json
import pathlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLFieldResolver,
    GraphQLObjectType,
    GraphQLSchema,
    build_client_schema,
)

from reconciler.sandbox.resolvers import ROOT_RESOLVERS, not_emulated

INTROSPECTION_FILE = pathlib.Path(__file__).with_name("introspection-freepbx16.json")

# Root fields of the framework module (Modules.php and System.php); every
# other root field except `node` belongs to core.
FRAMEWORK_QUERY_FIELDS = frozenset(
    {
        "fetchAllModuleStatus",
        "fetchModuleStatus",
        "fetchApiStatus",
        "fetchNeedReload",
        "fetchInstalledModules",
        "system",
        "fetchAsteriskDetails",
        "fetchDBStatus",
        "fetchGUIMode",
        "fetchAutomaticUpdate",
        "fetchSetupWizard",
    }
)
FRAMEWORK_MUTATION_FIELDS = frozenset(
    {
        "moduleOperations",
        "installModule",
        "uninstallModule",
        "enableModule",
        "disableModule",
        "upgradeModule",
        "upgradeAllModules",
        "doreload",
        "fwconsoleCommand",
        "addInitialSetup",
        "updateSystemRPM",
        "switchAstriskVersion",
    }
)

# Types graphql-core defines itself, whose introspection differs from graphql-php's.
BUILTIN_TYPE_NAMES = frozenset(
    {"String", "Int", "Float", "Boolean", "ID"}
    | {"__Schema", "__Type", "__TypeKind", "__Field", "__InputValue"}
    | {"__EnumValue", "__Directive", "__DirectiveLocation"}
)


@dataclass(frozen=True)
class Access:
    """Groups of root fields that a token's scopes unlock."""

    core_read: bool
    core_write: bool
    framework_modules: bool
    framework_system: bool

    @classmethod
    def for_scopes(cls, scopes: Iterable[str]) -> Access:
        granted = set(scopes)

        def any_of(*names: str) -> bool:
            return not granted.isdisjoint(names)

        # Core's classes check "all read" or "all write" only, so a fine
        # scope such as gql:core:read:extension unlocks nothing.
        return cls(
            core_read=any_of("gql", "gql:core", "gql:core:read"),
            core_write=any_of("gql", "gql:core", "gql:core:write"),
            framework_modules=any_of(
                "gql",
                "gql:framework",
                "gql:framework:read",
                "gql:framework:read:modules",
            ),
            framework_system=any_of(
                "gql",
                "gql:framework",
                "gql:framework:read",
                "gql:framework:read:system",
            ),
        )

    def allows_query(self, name: str) -> bool:
        if name == "node":
            return True
        if name == "system":
            return self.framework_system
        if name in FRAMEWORK_QUERY_FIELDS:
            return self.framework_modules
        return self.core_read

    def allows_mutation(self, name: str) -> bool:
        if name in FRAMEWORK_MUTATION_FIELDS:
            return self.framework_modules
        return self.core_write


def schema_for_scopes(scopes: Iterable[str]) -> GraphQLSchema:
    """Return the schema that a token with these scopes gets."""
    return _pruned_schema(Access.for_scopes(scopes))


@functools.cache
def recorded_introspection() -> dict[str, Any]:
    """Return the `data` of the recorded FreePBX 16 introspection."""
    with INTROSPECTION_FILE.open(encoding="utf-8") as file:
        data: dict[str, Any] = json.load(file)["data"]
    return data


@functools.cache
def full_schema() -> GraphQLSchema:
    """Build the whole FreePBX 16 schema once, with the sandbox's resolvers."""
    schema = build_client_schema(recorded_introspection())  # type: ignore[arg-type]
    for root in (schema.query_type, schema.mutation_type):
        assert root is not None
        for name, field in root.fields.items():
            field.resolve = _root_resolver(root.name, name)
    return schema


def _root_resolver(type_name: str, field_name: str) -> GraphQLFieldResolver:
    return ROOT_RESOLVERS.get(f"{type_name}.{field_name}", not_emulated)


@functools.cache
def _pruned_schema(access: Access) -> GraphQLSchema:
    full = full_schema()
    assert full.query_type is not None and full.mutation_type is not None
    query_fields = _fields(full.query_type, access.allows_query)
    mutation_fields = _fields(full.mutation_type, access.allows_mutation)
    if len(query_fields) == len(full.query_type.fields) and len(mutation_fields) == len(
        full.mutation_type.fields
    ):
        # Reuse the full schema so its introspection keeps the recorded order.
        return full
    query = GraphQLObjectType(
        "Query", query_fields, description=full.query_type.description
    )
    mutation = None
    if mutation_fields:
        mutation = GraphQLObjectType(
            "Mutation", mutation_fields, description=full.mutation_type.description
        )
    return GraphQLSchema(query=query, mutation=mutation, directives=full.directives)


def _fields(
    root: GraphQLObjectType, allows: Callable[[str], bool]
) -> dict[str, GraphQLField]:
    return {name: field for name, field in root.fields.items() if allows(name)}


def patch_builtin_introspection(data: dict[str, Any], keys: Iterable[str]) -> None:
    """Make introspection results of built-in types read as on FreePBX 16.

    graphql-core describes the standard scalars and the __ types with other
    texts and newer fields (specifiedByURL, isRepeatable, isOneOf) than
    graphql-php 0.13. A type entry that has exactly the keys of the recorded
    entry is replaced by it, and any other entry gets the recorded description.
    graphql-php also gives interfaces no `interfaces` list but null. `keys`
    are the response keys of the __schema and __type fields.
    """
    recorded = {
        entry["name"]: entry for entry in recorded_introspection()["__schema"]["types"]
    }
    for key in keys:
        value = data.get(key)
        if not isinstance(value, dict):
            continue
        entries = value.get("types")
        if isinstance(entries, list):
            value["types"] = [_patched_entry(entry, recorded) for entry in entries]
        elif "name" in value:
            value.update(_patched_entry(value, recorded))


def _patched_entry(entry: Any, recorded: dict[str, dict[str, Any]]) -> Any:
    if not isinstance(entry, dict):
        return entry
    if entry.get("kind") == "INTERFACE" and entry.get("interfaces") == []:
        entry["interfaces"] = None
    name = entry.get("name")
    if name not in BUILTIN_TYPE_NAMES or name not in recorded:
        return entry
    if set(entry) == set(recorded[name]):
        return recorded[name]
    if "description" in entry:
        entry["description"] = recorded[name]["description"]
    return entry
