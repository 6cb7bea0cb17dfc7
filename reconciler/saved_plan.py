"""Saved plans: what a reviewer approved is exactly what apply runs.

A saved plan stores the plan with two fingerprints: the SHA-256 of the
desired-state file's bytes and of the live state the plan was computed from.
Applying it recomputes both; any difference makes the plan stale.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.models import LiveState
from reconciler.plan_formats import PLAN_FORMAT_VERSION, plan_to_dict
from reconciler.planner import Plan

SAVED_PLAN_KIND = "reconciler-saved-plan"


class StalePlan(ReconcilerError):
    """The file or the PBX changed since the saved plan was made."""


@dataclass(frozen=True)
class SavedPlan:
    """A saved plan as read back: where it applies and what it was made from."""

    desired_path: str
    target: str
    desired_fingerprint: str
    live_fingerprint: str
    plan: dict[str, Any]


def file_fingerprint(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def live_fingerprint(live: LiveState) -> str:
    """Hash the readable fields of every live extension, in a canonical order."""
    rows = sorted(
        (e.extension, e.name, e.tech, e.outbound_cid, e.emergency_cid, e.voicemail)
        for e in live.extensions
    )
    canonical = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_out_path(out: Path, desired_path: Path, force: bool) -> None:
    """Raise ReconcilerError unless ``plan --out`` may write ``out``.

    Run before any request, so that a bad path fails before the plan is shown.
    The desired-state file is never overwritten, not even with ``force``.
    """
    if out.resolve() == desired_path.resolve() or _same_file(out, desired_path):
        raise ReconcilerError(
            f"--out {out} is the extensions file itself; name another file for "
            "the saved plan, for example plan.json"
        )
    if out.is_dir():
        raise ReconcilerError(f"--out {out} is a directory; give a file name")
    if out.is_symlink() and not out.exists():
        # Writing through it would create a file wherever the link points.
        raise ReconcilerError(
            f"--out {out} is a symbolic link to the missing file "
            f"{os.readlink(out)}; remove the link or name another file"
        )
    if out.exists() and not force:
        raise ReconcilerError(
            f"--out {out} already exists; pass --force to overwrite it, or name "
            "another file"
        )
    directory = out.parent
    if not directory.is_dir():
        raise ReconcilerError(
            f"--out {out}: the directory {directory} does not exist; create it or "
            "name a file in an existing directory"
        )
    if not os.access(directory, os.W_OK):
        raise ReconcilerError(
            f"--out {out}: the directory {directory} is not writable; name a file "
            "in a directory you can write to"
        )


def _same_file(first: Path, second: Path) -> bool:
    # A hard link or a differently spelled path to one file.
    try:
        return first.samefile(second)
    except OSError:
        return False


def write_saved_plan(
    out: Path,
    plan: Plan,
    desired_path: Path,
    target: str,
    live: LiveState,
    *,
    force: bool = False,
) -> None:
    """Write the plan and its fingerprints to ``out`` (JSON, no secrets).

    Without ``force`` a file created at ``out`` since check_out_path is kept.
    """
    document = {
        "kind": SAVED_PLAN_KIND,
        "format_version": PLAN_FORMAT_VERSION,
        "desired_path": str(desired_path),
        "target": target,
        "fingerprints": {
            "desired_file": file_fingerprint(desired_path),
            "live_state": live_fingerprint(live),
        },
        "plan": plan_to_dict(plan, str(desired_path), target),
    }
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    try:
        with out.open("w" if force else "x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        raise ReconcilerError(
            f"--out {out} was created while planning; pass --force to overwrite it"
        ) from None
    except OSError as error:
        raise ReconcilerError(
            f"cannot write the saved plan to {out}: {error.strerror}"
        ) from None


def read_saved_plan(path: Path) -> SavedPlan:
    """Read a saved plan; raise ReconcilerError when it is not one."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReconcilerError(f"saved plan {path} not found") from None
    except (OSError, ValueError) as error:
        raise ReconcilerError(f"cannot read saved plan {path}: {error}") from None
    except RecursionError:
        raise ReconcilerError(
            f"cannot read saved plan {path}: its JSON nests too deeply"
        ) from None
    if not isinstance(document, dict) or document.get("kind") != SAVED_PLAN_KIND:
        raise ReconcilerError(
            f"{path} is not a saved plan; make one with reconciler plan --out {path}"
        )
    version = document.get("format_version")
    # json reads true as a bool, which Python also counts as the int 1.
    if type(version) is not int or version != PLAN_FORMAT_VERSION:
        raise ReconcilerError(
            f"{path} has plan format {json.dumps(version)}; this reconciler reads "
            f"format {PLAN_FORMAT_VERSION}"
        )
    fingerprints = document.get("fingerprints")
    fields = (
        document.get("desired_path"),
        document.get("target"),
        fingerprints.get("desired_file") if isinstance(fingerprints, dict) else None,
        fingerprints.get("live_state") if isinstance(fingerprints, dict) else None,
    )
    if not all(isinstance(value, str) and value for value in fields):
        raise ReconcilerError(
            f"saved plan {path} is incomplete or was edited; make a new one with "
            "reconciler plan --out"
        )
    desired_path, target, desired_fingerprint, live_fingerprint = fields
    return SavedPlan(
        desired_path=str(desired_path),
        target=str(target),
        desired_fingerprint=str(desired_fingerprint),
        live_fingerprint=str(live_fingerprint),
        plan=document.get("plan") or {},
    )


def check_desired_unchanged(saved: SavedPlan, plan_path: Path) -> None:
    """Raise StalePlan when the desired-state file differs from the planned one."""
    desired = Path(saved.desired_path)
    try:
        current = file_fingerprint(desired)
    except OSError as error:
        raise StalePlan(
            f"saved plan {plan_path} was made from {desired}, which cannot be read "
            f"now ({error.strerror})"
        ) from None
    if current != saved.desired_fingerprint:
        raise StalePlan(
            f"saved plan {plan_path} is stale: {desired} changed since the plan was "
            "made; run reconciler plan --out again and have the new plan reviewed. "
            "Nothing was created"
        )


def check_live_unchanged(
    saved: SavedPlan, plan_path: Path, target: str, live: LiveState
) -> None:
    """Raise StalePlan when the PBX or its address differs from the planned one."""
    if target != saved.target:
        raise StalePlan(
            f"saved plan {plan_path} was made for {saved.target}, not {target}. "
            "Nothing was created"
        )
    if live_fingerprint(live) != saved.live_fingerprint:
        raise StalePlan(
            f"saved plan {plan_path} is stale: the extensions on {target} changed "
            "since the plan was made; run reconciler plan --out again and have the "
            "new plan reviewed. Nothing was created"
        )
