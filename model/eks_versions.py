"""Which Kubernetes versions Amazon EKS creates clusters with, and until when. No Pulumi import.

Source: the EKS user guide's "Kubernetes versions" page (standard and extended support
calendar; checked against endoflife.date). Standard support lasts 14 months from the EKS
release; extended support 12 more months at six times the control-plane price per hour; then
EKS upgrades the cluster itself. A version past its extended support is not created any more.
Update this table when EKS releases a minor version (about every four months).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class EksVersion:
    version: str
    released: date
    standard_until: date
    extended_until: date

    def state(self, today: date) -> str:
        if today < self.released:
            return "unreleased"
        if today <= self.standard_until:
            return "standard"
        if today <= self.extended_until:
            return "extended"
        return "ended"


CALENDAR = (
    EksVersion("1.30", date(2024, 5, 23), date(2025, 7, 23), date(2026, 7, 23)),
    EksVersion("1.31", date(2024, 9, 26), date(2025, 11, 26), date(2026, 11, 26)),
    EksVersion("1.32", date(2025, 1, 23), date(2026, 3, 23), date(2027, 3, 23)),
    EksVersion("1.33", date(2025, 5, 28), date(2026, 7, 29), date(2027, 7, 29)),
    EksVersion("1.34", date(2025, 10, 6), date(2026, 12, 2), date(2027, 12, 2)),
    EksVersion("1.35", date(2026, 1, 28), date(2027, 3, 27), date(2028, 3, 27)),
)
SOURCE = "https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html"


def creatable(today: date) -> list[EksVersion]:
    """Versions EKS creates clusters with on `today` (standard or extended support)."""
    return [v for v in CALENDAR if v.state(today) in ("standard", "extended")]


def version_problem(version: str, today: date) -> str | None:
    """Why an EKS cluster cannot have `version` today, or None."""
    known = {v.version: v for v in CALENDAR}
    offered = creatable(today)
    standard = [v.version for v in offered if v.state(today) == "standard"]
    choices = f"EKS creates {', '.join(v.version for v in offered)} today (standard support: {', '.join(standard)})"
    if version not in known:
        return f"EKS does not offer Kubernetes {version} (per {SOURCE}); {choices}"
    entry = known[version]
    if entry.state(today) == "ended":
        return (f"EKS no longer creates Kubernetes {version} clusters (extended support ended "
                f"{entry.extended_until.isoformat()}); {choices}")
    if entry.state(today) == "unreleased":
        return f"EKS releases Kubernetes {version} on {entry.released.isoformat()}; {choices}"
    return None


def version_warning(version: str, today: date) -> str | None:
    """A warning for a version in extended support (it costs six times as much)."""
    entry = {v.version: v for v in CALENDAR}.get(version)
    if entry is None or entry.state(today) != "extended":
        if entry is not None and entry.state(today) == "standard" and (entry.standard_until - today).days <= 60:
            return (f"Kubernetes {version} leaves EKS standard support on {entry.standard_until.isoformat()}: "
                    "plan the upgrade (extended support costs six times as much per cluster hour)")
        return None
    return (f"Kubernetes {version} is in EKS extended support until {entry.extended_until.isoformat()}: the control "
            "plane costs six times the standard price per hour; upgrade to a version in standard support")
