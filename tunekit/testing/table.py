"""A table-driven adaptor for strategy research: config → (accuracy, latency), no framework.

Record the evaluations of a real workload once (``tunekit compare --cache evals.json`` writes
them), then compare strategies against the table in milliseconds: every config a strategy
proposes is answered by a lookup. A config the table does not hold fails its trial with that
reason, as an honest "not measured": a strategy that strays from what was recorded shows it in
its failure count instead of being scored on invented numbers. For synthetic tables, build the
mapping yourself (e.g. from :class:`~tunekit.testing.FakeAdaptor`'s formulas).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tunekit.adaptor import DataBatch
from tunekit.errors import TrialError
from tunekit.space import QuantConfig, TuningSpace
from tunekit.testing.fake import FakeAdaptor, FakeModel

#: One table row: the config's accuracy (the metric) and latency (any unit, lower is better).
Row = tuple[float, float]


class TableAdaptor(FakeAdaptor):
    """:class:`FakeAdaptor` whose accuracy and latency come from a table instead of formulas.

    ``base`` is the FP32 model's row. Models, data and :meth:`predict` work as in the
    FakeAdaptor, so the real tuner, metrics and :func:`~tunekit.testing.run_strategy` drive it.
    """

    def __init__(self, space: TuningSpace, table: Mapping[QuantConfig, Row], base: Row) -> None:
        super().__init__(ops=space, base_accuracy=base[0])
        self.table = dict(table)
        self.base = base
        outside = [c for c in self.table if not space.contains(c)]
        if outside:
            raise ValueError(f"{len(outside)} table row(s) are not configs of the space, e.g. "
                             f"{outside[0].summary()}")

    @classmethod
    def from_files(cls, cache: Path, space: Path, objective: str = "performance") -> TableAdaptor:
        """A table from a ``tunekit compare --cache`` file and the workload's ``space.json``
        (in any tuning workspace). The baseline row is the cache's best fp32-only config, or the
        best accuracy recorded when there is none."""
        tuning_space = TuningSpace.from_dict(json.loads(space.read_text(encoding="utf-8")))
        table: dict[QuantConfig, Row] = {}
        for key, attrs in json.loads(cache.read_text(encoding="utf-8")).items():
            if attrs.get("state") != "complete" or attrs.get("metric") is None:
                continue
            latency = (attrs.get("details") or {}).get(objective, attrs.get("objective"))
            table[QuantConfig.from_json(key)] = (float(attrs["metric"]),
                                                 float(latency) if latency is not None else 0.0)
        if not table:
            raise ValueError(f"{cache} holds no completed evaluations")
        fp32 = tuning_space.uniform("fp32")
        base = table.get(fp32) or max(table.values())
        return cls(tuning_space, table, base)

    def _row(self, config: QuantConfig) -> Row:
        row = self.table.get(config)
        if row is None:
            raise TrialError(f"{config.summary()} is not in the table (never measured)")
        return row

    def quantize(self, model: Any, config: QuantConfig,
                 calib_data: Iterable[DataBatch]) -> FakeModel:
        self._row(config)  # fail the trial here, as a real adaptor fails an unbuildable config
        return super().quantize(model, config, calib_data)

    def accuracy(self, config: QuantConfig | None) -> float:
        return self.base[0] if config is None else self._row(config)[0]

    def latency(self, model: FakeModel) -> float:
        return self.base[1] if model.config is None else self._row(model.config)[1]
