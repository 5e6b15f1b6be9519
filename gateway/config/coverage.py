"""Rule coverage: what a valid config leaves unjudged. Warnings, never errors.

A config can be valid and still keep rules from running: a checkweigher whose packs cannot
be matched to a product when a run packs several (so no ℮ or giveaway rule judges them,
docs/products.md), a probe with no HACCP limits, a line without a checkweigher.
``lineside check-config`` and ``lineside doctor`` print these (docs/configuration.md,
"Coverage warnings"). Pure: it reads the config only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from gateway.config import Device, LinesideConfig


class CoverageWarning(NamedTuple):
    """What a rule will not see: where (key path) and why."""

    location: str
    message: str

    def format(self, path: str) -> str:
        """Render as ``file: warning: key.path: message``."""
        return f"{path}: warning: {self.location}: {self.message}"


def coverage_warnings(config: LinesideConfig) -> list[CoverageWarning]:
    """Every gap in rule coverage, in file order (disabled devices are left out)."""
    warnings: list[CoverageWarning] = []
    enabled = [(i, d) for i, d in enumerate(config.devices) if d.enabled]
    scanned_lines = {d.line for _, d in enabled if d.role == "label_scanner"}
    for index, device in enabled:
        if device.role != "checkweigher":
            continue
        names = set(device.tag_names())
        by_program = "program" in names and bool(device.programs)
        by_label = "label_sequence" in names and device.line in scanned_lines
        if not (by_program or "nominal_weight" in names or by_label):
            warnings.append(
                CoverageWarning(
                    f"devices[{index}]",
                    f"checkweigher {device.id}: when a run packs several products, its packs "
                    "cannot be matched to one, and no ℮ or giveaway rule judges them: give it "
                    "a nominal_weight tag, a program tag with programs = {...}, or a "
                    f"label_sequence tag and a label scanner on line {device.line} "
                    "(docs/products.md)",
                )
            )
    limits = {(p.device, p.probe) for p in config.rules.probes}
    for index, device in enabled:
        if device.role != "temperature_probe":
            continue
        for name, where in _tag_paths(device).items():
            if (device.id, name) not in limits:
                warnings.append(
                    CoverageWarning(
                        f"devices[{index}]{where}",
                        f"probe {device.id}/{name} has no HACCP limits: it is recorded but "
                        f'never judged; add [[rules.probes]] device = "{device.id}", '
                        f'probe = "{name}" with upper_c and/or lower_c',
                    )
                )
    weighed = {d.line for _, d in enabled if d.role == "checkweigher"}
    for index, line in enumerate(config.lines):
        if line.id not in weighed:
            warnings.append(
                CoverageWarning(
                    f"lines[{index}]",
                    f"line {line.id} has no enabled checkweigher: no ℮, giveaway or yield "
                    "rule runs for it",
                )
            )
    return warnings


def _tag_paths(device: Device) -> dict[str, str]:
    """Each tag's name and its key path inside the device (``.groups[0].tags[1]``)."""
    groups = getattr(device, "groups", None)
    if groups is not None:
        return {
            tag.name: f".groups[{g}].tags[{t}]"
            for g, group in enumerate(groups)
            for t, tag in enumerate(group.tags)
        }
    return {tag.name: f".tags[{t}]" for t, tag in enumerate(getattr(device, "tags", ()))}
