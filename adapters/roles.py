"""Device roles: how tag values become domain records. Pure: no I/O, no clock reads.

An adapter (OPC UA, Modbus, TCP scanner) decodes values and hands them to the role
interpreter of its device with the current time. The interpreter validates every value
(non-finite, outside the tag's physical range, bad quality, stuck) and returns records:

* checkweigher -> one :class:`PackEvent` per pack, detected from the pack counter (or the
  label sequence when there is no counter). A counter that jumps by more than one records the
  missed packs as a device event; a counter that goes backwards records a reset. The first
  value seen after start-up is a baseline, unless the store knew the last counter. The pack
  carries the device's program, catch-weight mode and accepted/rejected verdict when the
  device has tags for them (:mod:`adapters.pack_signals`); a ``changeover`` flag becomes a
  ``changeover`` device event each time it changes.
* temperature probe -> a :class:`TemperatureReading` per good value.
* label scanner -> a :class:`LabelScan` per valid GS1 read; anything else a
  :class:`RejectedInput` with the raw bytes (hex) and the parser's reason.

A bad value is never stored as a good reading: it becomes a :class:`RejectedInput` (raw
value and reason) and is counted in :attr:`Interpreter.rejected`. A value that is one of its
tag's ``fault_codes`` is the device saying it has no measurement: it is rejected with reason
``sensor_fault_code`` (before any range check), and the rules raise a sensor fault on it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal

from adapters.base import Quality, TagSample
from adapters.pack_signals import Edge, RejectPairing, RejectVerdict, count_of, flag, program_text
from gateway.config import DeviceBase, TagLimits
from gateway.core.codecs.gs1 import Gs1Label, parse_gs1, salvage_serial
from gateway.core.records import (
    SENSOR_FAULT_CODE,
    DeviceEvent,
    LabelScan,
    PackEvent,
    Record,
    RecordFlag,
    RejectedInput,
    TemperatureReading,
)

_IN_FAULT = object()
"""A tag's remembered value while the device sends a fault code: the next real value is a
change, and silence in a fault is no stuck sensor."""


def utc_date(ts_us: int) -> date:
    """The UTC calendar date of a timestamp (for the GS1 century window)."""
    return datetime.fromtimestamp(ts_us / 1_000_000, UTC).date()


@dataclass
class _TagState:
    value: object = None
    changed_us: int = 0
    stuck_reported: bool = False
    quality: Quality = Quality.GOOD


@dataclass
class Interpreter(ABC):
    """Validation shared by every role; subclasses turn good values into records."""

    device: DeviceBase
    limits: Mapping[str, TagLimits]
    rejected: Counter[str] = field(default_factory=Counter)
    quality_changes: list[Record] = field(default_factory=list)
    _tags: dict[str, _TagState] = field(default_factory=dict)

    def _reject(
        self, ts_us: int, tag: str, raw: object, reason: str, detail: str = ""
    ) -> RejectedInput:
        self.rejected[reason] += 1
        return RejectedInput(
            ts_us=ts_us,
            source=self.device.id,
            line=self.device.line,
            tag=tag,
            raw=repr(raw) if not isinstance(raw, str) else raw,
            reason=reason,
            detail=detail,
        )

    def reject_raw(
        self, ts_us: int, tag: str, raw: object, reason: str, detail: str = ""
    ) -> RejectedInput:
        """A rejection for input that never became a sample (e.g. an over-long read)."""
        return self._reject(ts_us, tag, raw, reason, detail)

    def validate(self, sample: TagSample, ts_us: int) -> tuple[object, RejectedInput | None]:
        """Check one sample; return its value, or a rejection saying why it is not good."""
        state = self._tags.get(sample.tag)
        if state is None:
            state = self._tags[sample.tag] = _TagState(changed_us=ts_us)
        if sample.quality is not state.quality:
            self.quality_changes.append(
                DeviceEvent(
                    ts_us=ts_us,
                    device=self.device.id,
                    line=self.device.line,
                    kind="quality_change",
                    detail={
                        "tag": sample.tag,
                        "from": str(state.quality),
                        "to": str(sample.quality),
                        "status": sample.status,
                    },
                )
            )
            state.quality = sample.quality
        if sample.quality is not Quality.GOOD:
            return None, self._reject(
                ts_us, sample.tag, sample.value, f"quality_{sample.quality}", sample.status
            )
        value = sample.value
        limits = self.limits.get(sample.tag)
        if limits is not None and limits.fault_codes:
            raw = sample.raw if sample.raw is not None else value
            number = isinstance(raw, int | float) and not isinstance(raw, bool)
            if number and raw in limits.fault_codes:
                state.value = _IN_FAULT
                return None, self._reject(
                    ts_us, sample.tag, raw, SENSOR_FAULT_CODE, "a fault code of the device"
                )
        if isinstance(value, bool) or value is None:
            return value, None
        if isinstance(value, int | float):
            if not math.isfinite(value):
                return None, self._reject(ts_us, sample.tag, value, "non_finite")
            if limits is not None:
                if limits.min is not None and value < limits.min:
                    return None, self._reject(
                        ts_us, sample.tag, value, "out_of_range", f"below min {limits.min}"
                    )
                if limits.max is not None and value > limits.max:
                    return None, self._reject(
                        ts_us, sample.tag, value, "out_of_range", f"above max {limits.max}"
                    )
        if state.value != value:
            state.value, state.changed_us, state.stuck_reported = value, ts_us, False
        elif limits is not None and limits.stuck_after_s is not None:
            unchanged_s = (ts_us - state.changed_us) / 1_000_000
            if unchanged_s > limits.stuck_after_s:
                return None, self._reject(
                    ts_us,
                    sample.tag,
                    value,
                    "stuck",
                    f"unchanged for {unchanged_s:.0f} s (limit {limits.stuck_after_s:g} s)",
                )
        return value, None

    def tick(self, ts_us: int) -> list[Record]:
        """Time passing without data: report tags that have been unchanged too long, once."""
        events: list[Record] = []
        for tag, state in self._tags.items():
            limits = self.limits.get(tag)
            if limits is None or limits.stuck_after_s is None or state.stuck_reported:
                continue
            if state.quality is not Quality.GOOD or state.value is _IN_FAULT:
                continue  # a bad tag is already reported; silence is not a stuck sensor
            if (ts_us - state.changed_us) / 1_000_000 > limits.stuck_after_s:
                state.stuck_reported = True
                events.append(
                    DeviceEvent(
                        ts_us=ts_us,
                        device=self.device.id,
                        line=self.device.line,
                        kind="stuck_value",
                        detail={"tag": tag, "value": _jsonable(state.value)},
                    )
                )
        return events

    def interpret(self, samples: Sequence[TagSample], ts_us: int) -> list[Record]:
        """Turn samples read together into records, with any quality-change events first."""
        records = self.feed(samples, ts_us)
        if self.quality_changes:
            records[:0] = self.quality_changes
            self.quality_changes = []
        return records

    @abstractmethod
    def feed(self, samples: Sequence[TagSample], ts_us: int) -> list[Record]:
        """Turn samples read together into records (each role's own logic)."""


def _jsonable(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


@dataclass
class CheckweigherInterpreter(Interpreter):
    """Pack detection from a counter; net weight from the device or gross minus tare."""

    last_counter: int | None = None
    """The last pack counter seen (from the store at start-up, so restarts lose nothing)."""
    latest: dict[str, object] = field(default_factory=dict)
    uncertain_packs: int = 0
    """Packs stored with :attr:`RecordFlag.VALUES_UNCERTAIN` so far."""
    _doubts: tuple[str, ...] = ()
    _doubting: bool = False
    _rejects: RejectPairing = field(default_factory=RejectPairing)
    _changeover: Edge = field(default_factory=Edge)

    def interpret_pack(
        self, samples: Sequence[TagSample], ts_us: int, doubts: Sequence[str] = ()
    ) -> list[Record]:
        """As :meth:`interpret`, for samples the adapter could not prove all belong to the
        counter among them: ``doubts`` says why, and a pack they make is flagged
        VALUES_UNCERTAIN (never stored as if its values were surely its own)."""
        self._doubts = tuple(doubts)
        try:
            return self.interpret(samples, ts_us)
        finally:
            self._doubts = ()

    @property
    def counter_tag(self) -> str:
        """The tag whose change means "one more pack"."""
        return "pack_counter" if "pack_counter" in self.limits else "label_sequence"

    def feed(self, samples: Sequence[TagSample], ts_us: int) -> list[Record]:
        """Update the latest values; emit a pack when the counter moved."""
        records: list[Record] = []
        counter: int | None = None
        for sample in samples:
            value, rejection = self.validate(sample, ts_us)
            if rejection is not None:
                records.append(rejection)
                self.latest.pop(sample.tag, None)
                continue
            if sample.tag == self.counter_tag:
                if isinstance(value, int | float) and float(value).is_integer():
                    counter = int(value)
                else:
                    records.append(self._reject(ts_us, sample.tag, value, "not_a_counter"))
                continue
            if sample.tag == "changeover":
                # A level read on every poll or notification, pack or not: its changes are
                # events of their own, not values of a pack.
                state = flag(value)
                edge = None if state is None else self._changeover.update(state)
                if edge is not None:
                    records.append(self._event(ts_us, "changeover", source="device", active=edge))
                continue
            self.latest[sample.tag] = value
        if counter is not None:
            records.extend(self._counter_moved(counter, ts_us))
        return records

    @property
    def _counts_rejects(self) -> bool:
        return "reject_counter" in self.limits

    def _counter_moved(self, counter: int, ts_us: int) -> list[Record]:
        previous, self.last_counter = self.last_counter, counter
        if previous is None:
            if self._counts_rejects:
                self._rejects.baseline(counter, count_of(self.latest.get("reject_counter")))
            return [self._event(ts_us, "pack_counter_baseline", counter=counter)]
        if counter == previous:
            return []
        records: list[Record] = []
        if counter < previous:
            records.append(
                self._event(ts_us, "pack_counter_reset", previous=previous, counter=counter)
            )
            missed = max(counter - 1, 0)
        else:
            missed = counter - previous - 1
        if missed:
            records.append(
                self._event(
                    ts_us, "missed_packs", missed=missed, previous=previous, counter=counter
                )
            )
        verdict = None
        if self._counts_rejects:
            # Every move of the counter, stored pack or not, so the next pairing spans it.
            rejects = count_of(self.latest.get("reject_counter"))
            verdict = self._rejects.pack(counter, rejects, counter_reset=counter < previous)
        if counter == 0:
            return records
        accepted, doubt = self._acceptance(verdict)
        pack = self._pack(counter, ts_us, accepted)
        doubts = (*self._doubts, doubt) if doubt else self._doubts
        if isinstance(pack, PackEvent) and doubts:
            pack = replace(pack, flags=pack.flags | RecordFlag.VALUES_UNCERTAIN)
            self.uncertain_packs += 1
            if not self._doubting:
                # One event per run of doubtful packs, with the reasons: the flag on each
                # pack says which; the event says why, without a row per pack.
                records.append(
                    self._event(
                        ts_us, "pack_values_uncertain", counter=counter, reasons=list(doubts)
                    )
                )
        if isinstance(pack, PackEvent):
            self._doubting = bool(doubts)
        records.append(pack)
        return records

    def _acceptance(self, verdict: RejectVerdict | None) -> tuple[bool | None, str]:
        """Accepted or rejected, and why that is not known when it is a guess.

        A flag read with the pack (``accepted``, ``rejected``; a rejection by either wins)
        speaks for this very pack, so it beats the reject counter, which only counts. When
        only the counter tells and cannot pair its rejects with this pack, the pack's
        accepted is None and the reason makes it VALUES_UNCERTAIN: a rejected pack must not
        slip into the ℮ batch as an accepted one.
        """
        rejected = self._flag_of("rejected")
        said = [
            state
            for state in (self._flag_of("accepted"), None if rejected is None else not rejected)
            if state is not None
        ]
        if said:
            return all(said), ""
        if verdict is None:
            return None, ""
        return verdict.accepted, verdict.doubt

    def _flag_of(self, tag: str) -> bool | None:
        value = self.latest.get(tag)
        if tag == "accepted":
            # As before there were other signals: a bool or an integer counts, nothing else.
            return bool(value) if isinstance(value, bool | int) else None
        return flag(value)

    def _pack(self, counter: int, ts_us: int, accepted: bool | None) -> Record:
        net = self.latest.get("net_weight")
        gross = self.latest.get("gross_weight")
        tare = self.latest.get("tare")
        if net is None and isinstance(gross, int | float) and isinstance(tare, int | float):
            net = float(gross) - float(tare)
        if not isinstance(net, int | float) or isinstance(net, bool):
            return self._reject(
                ts_us,
                "net_weight",
                net,
                "no_weight",
                f"pack {counter} counted but no good weight was read for it",
            )
        nominal = self.latest.get("nominal_weight")
        label_seq = (
            self.latest.get("label_sequence") if self.counter_tag == "pack_counter" else counter
        )
        return PackEvent(
            ts_us=ts_us,
            line=self.device.line,
            device=self.device.id,
            net_g=float(net),
            pack_counter=counter if self.counter_tag == "pack_counter" else None,
            gross_g=float(gross) if isinstance(gross, int | float) else None,
            tare_g=float(tare) if isinstance(tare, int | float) else None,
            accepted=accepted,
            label_seq=int(label_seq) if isinstance(label_seq, int | float) else None,
            nominal_g=float(nominal)
            if isinstance(nominal, int | float) and not isinstance(nominal, bool) and nominal > 0
            else None,
            program=program_text(self.latest.get("program")),
            catch_weight=flag(self.latest.get("catch_weight_mode")),
        )

    def _event(self, ts_us: int, kind: str, **detail: object) -> DeviceEvent:
        return DeviceEvent(
            ts_us=ts_us, device=self.device.id, line=self.device.line, kind=kind, detail=detail
        )


@dataclass
class TemperatureInterpreter(Interpreter):
    """One reading per good probe value."""

    def feed(self, samples: Sequence[TagSample], ts_us: int) -> list[Record]:
        """Each sample is one probe."""
        records: list[Record] = []
        for sample in samples:
            value, rejection = self.validate(sample, ts_us)
            if rejection is not None:
                records.append(rejection)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                limits = self.limits.get(sample.tag)
                records.append(
                    TemperatureReading(
                        ts_us=ts_us,
                        line=self.device.line,
                        device=self.device.id,
                        probe=sample.tag,
                        location=limits.location if limits else "",
                        celsius=float(value),
                    )
                )
            else:
                records.append(self._reject(ts_us, sample.tag, value, "not_a_number"))
        return records


@dataclass
class LabelInterpreter(Interpreter):
    """GS1 label reads; ``separators`` are the scanner's substitutes for FNC1."""

    separators: tuple[str, ...] = ()

    def feed(self, samples: Sequence[TagSample], ts_us: int) -> list[Record]:
        """Each sample is one read (str or bytes)."""
        records: list[Record] = []
        for sample in samples:
            if sample.quality is not Quality.GOOD:
                _, rejection = self.validate(sample, ts_us)
                if rejection is not None:
                    records.append(rejection)
            elif isinstance(sample.value, bytes | str):
                records.append(self.read(sample.value, ts_us))
            else:
                records.append(self._reject(ts_us, sample.tag, sample.value, "not_text"))
        return records

    def read(self, raw: bytes | str, ts_us: int) -> Record:
        """Parse one read into a :class:`LabelScan`, or reject it with its raw bytes."""
        raw_bytes = raw if isinstance(raw, bytes) else raw.encode("utf-8", "backslashreplace")
        result = parse_gs1(raw_bytes, today=utc_date(ts_us), separators=self.separators)
        if not isinstance(result, Gs1Label):
            rejection = self._reject(
                ts_us, "barcode", raw_bytes.hex(" "), f"gs1_{result.reason}", result.detail
            )
            serial = salvage_serial(raw_bytes, separators=self.separators)
            return replace(rejection, serial=serial) if serial else rejection
        return label_scan(result, self.device, ts_us)


def label_scan(label: Gs1Label, device: DeviceBase, ts_us: int) -> LabelScan:
    """The stored form of a parsed label."""
    weight = label.net_weight_kg * Decimal(1000) if label.net_weight_kg is not None else None
    return LabelScan(
        ts_us=ts_us,
        line=device.line,
        device=device.id,
        raw=label.raw,
        gtin=label.gtin,
        batch=label.batch,
        use_by=label.use_by.isoformat() if label.use_by else None,
        pack_date=label.pack_date.isoformat() if label.pack_date else None,
        serial=label.serial,
        net_weight_g=float(weight) if weight is not None else None,
        parsed={"symbology": label.symbology, "elements": [list(e) for e in label.elements]},
    )


def interpreter_for(device: DeviceBase, limits: Mapping[str, TagLimits]) -> Interpreter:
    """The interpreter for a device's role."""
    if device.role == "checkweigher":
        return CheckweigherInterpreter(device, limits)
    if device.role == "temperature_probe":
        return TemperatureInterpreter(device, limits)
    separators = tuple(getattr(device, "separators", ()))
    return LabelInterpreter(device, limits, separators=separators)
