"""Load, validate and measure one run, then render its mosaics: one node per run.

Metrics and mosaics share one node because the mosaics need the reference volume and the
masks that the metrics computed: in one process they stay in memory, where two nodes wrote
them to disk (~100 MB per 1 mm run) and read them back, and paid a second round of Nipype
scheduling per run (see benchmarks/scaling.py).
"""
from __future__ import annotations

import logging
import math
import time
import traceback
from typing import Any

import nibabel as nb
import numpy as np
from nipype.interfaces.base import (BaseInterfaceInputSpec, File, SimpleInterface,
                                    TraitedSpec, traits)

from mmrqa_bids.bids import RunSpec
from mmrqa_bids.interfaces.mosaics import render_mosaics
from mmrqa_bids.io import RunInputError, file_checksum, read_image
from mmrqa_bids.metrics import MeasureError, measure
from mmrqa_bids.records import fail_record, write_record

logger = logging.getLogger(__name__)


class _MeasureRunInputSpec(BaseInterfaceInputSpec):
    run = traits.Dict(mandatory=True, desc="RunSpec.to_dict() of the run")
    mriqc_dir = traits.Str(desc="MRIQC output folder whose IQMs are recorded next to mmrqa's")
    inu_method = traits.Enum("polynomial", "n4", usedefault=True,
                             desc="bias-field estimator of inu_med/inu_range (metrics.measure)")
    report_views = traits.Bool(True, usedefault=True,
                               desc="render the report mosaics besides the MLLM input mosaic")
    memory_limit = traits.Int(0, usedefault=True,
                              desc="bytes one run may use (io.check_header); 0: no limit")


class _MeasureRunOutputSpec(TraitedSpec):
    out_record = File(exists=True, desc="run record with metrics and mosaic paths")


class MeasureRun(SimpleInterface):
    """Validate the image, compute the head/background masks and every metric, and render
    the slice mosaics from the same in-memory reference volume and masks."""

    input_spec = _MeasureRunInputSpec
    output_spec = _MeasureRunOutputSpec

    def _run_interface(self, runtime):
        run = RunSpec.from_dict(self.inputs.run)
        record = {"run": run.to_dict(), "error": None, "timings": {}}
        start = time.perf_counter()
        try:
            self._measure(run, record, runtime.cwd)
        except (RunInputError, MeasureError, OSError) as exc:  # the input's fault: one line
            fail_record(record, "measure", " ".join(str(exc).split()))
        except Exception as exc:  # noqa: BLE001 - any other error fails this run only
            fail_record(record, "measure", f"{type(exc).__name__}: {' '.join(str(exc).split())}",
                        traceback.format_exc())
        record["timings"]["measure"] = time.perf_counter() - start - \
            record["timings"].get("mosaics", 0.0)
        self._results["out_record"] = write_record(record, runtime.cwd)
        return runtime

    def _measure(self, run: RunSpec, record: dict[str, Any], cwd: str) -> None:
        start = time.perf_counter()
        record["checksum"] = file_checksum(run.path)
        loaded = read_image(run.path, run.suffix, self.inputs.memory_limit or None)
        img, data = loaded.img, loaded.data
        # source: the file's header and voxel order, which MRQy's slices follow (mrqy_*)
        result = measure(data, run.suffix, img.header.get_zooms(), inu=self.inputs.inu_method,
                         source=nb.load(str(run.path)))
        metrics = result.metrics
        if self.inputs.mriqc_dir:
            from mmrqa_bids.mriqc.participant import run_iqms
            iqms, record["mriqc"] = run_iqms(self.inputs.mriqc_dir, run)
            metrics = {**result.metrics, **iqms}
            if record["mriqc"]["note"]:
                logger.info("NOTE %s: %s", run.bids_name, record["mriqc"]["note"])
        record["metrics"], notes = finite_metrics(metrics)
        if loaded.scale_exponent:
            notes["intensity_scale"] = (
                f"intensities divided by 2^{loaded.scale_exponent} before measuring (beyond "
                "float32 arithmetic); intensity-valued metrics are in those units")
        if notes:
            record["metric_notes"] = notes
        record["shape"] = list(data.shape)
        record["zooms"] = [float(z) for z in img.header.get_zooms()[:3]]
        logger.info("measured %s in %.1f s", run.bids_name, time.perf_counter() - start)
        start = time.perf_counter()
        record["mosaics"] = render_mosaics(result.reference.astype(np.float32), result.head,
                                           result.background, cwd,
                                           report_views=self.inputs.report_views)
        record["timings"]["mosaics"] = time.perf_counter() - start


def finite_metrics(metrics: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Metrics with every non-finite number replaced by ``None`` (JSON ``null``), and a note
    per replaced metric saying what it was: strict JSON has no NaN or Infinity."""
    out, notes = {}, {}
    for name, value in metrics.items():
        if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
            out[name] = None
            notes[name] = (f"not computable for this image ({float(value)}), recorded as null: "
                           "e.g. a ratio over an empty or zero-valued region")
        else:
            out[name] = value.item() if isinstance(value, np.generic) else value
    return out, notes
