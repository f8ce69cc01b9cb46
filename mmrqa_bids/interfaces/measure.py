"""Load, validate and measure one run, then render its mosaics: one node per run.

Metrics and mosaics share one node because the mosaics need the reference volume and the
masks that the metrics computed: in one process they stay in memory, where two nodes wrote
them to disk (~100 MB per 1 mm run) and read them back, and paid a second round of Nipype
scheduling per run (see benchmarks/scaling.py).
"""
from __future__ import annotations

import time

import numpy as np
from nipype.interfaces.base import (BaseInterfaceInputSpec, File, SimpleInterface,
                                    TraitedSpec, traits)

from mmrqa_bids.bids import RunSpec
from mmrqa_bids.interfaces.mosaics import render_mosaics
from mmrqa_bids.io import RunInputError, file_checksum, load_image
from mmrqa_bids.metrics import measure
from mmrqa_bids.records import write_record


class _MeasureRunInputSpec(BaseInterfaceInputSpec):
    run = traits.Dict(mandatory=True, desc="RunSpec.to_dict() of the run")
    mriqc_dir = traits.Str(desc="MRIQC output folder whose IQMs are recorded next to mmrqa's")
    inu_method = traits.Enum("polynomial", "n4", usedefault=True,
                             desc="bias-field estimator of inu_med/inu_range (metrics.measure)")
    report_views = traits.Bool(True, usedefault=True,
                               desc="render the report mosaics besides the MLLM input mosaic")


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
            record["checksum"] = file_checksum(run.path)
            img, data = load_image(run.path, run.suffix)
            result = measure(data, run.suffix, img.header.get_zooms(), inu=self.inputs.inu_method)
        except (RunInputError, OSError) as exc:
            record["error"] = " ".join(str(exc).split())
            record["timings"]["measure"] = time.perf_counter() - start
            self._results["out_record"] = write_record(record, runtime.cwd)
            return runtime
        record["metrics"] = result.metrics
        if self.inputs.mriqc_dir:
            from mmrqa_bids.mriqc.participant import run_iqms
            iqms, record["mriqc"] = run_iqms(self.inputs.mriqc_dir, run)
            record["metrics"] = {**result.metrics, **iqms}
            if record["mriqc"]["note"]:
                print(f"[mmrqa] NOTE {run.bids_name}: {record['mriqc']['note']}", flush=True)
        record["shape"] = list(data.shape)
        record["zooms"] = [float(z) for z in img.header.get_zooms()[:3]]
        record["timings"]["measure"] = time.perf_counter() - start
        print(f"[mmrqa] measured {run.bids_name} in {record['timings']['measure']:.1f} s",
              flush=True)
        start = time.perf_counter()
        record["mosaics"] = render_mosaics(result.reference.astype(np.float32), result.head,
                                           result.background, runtime.cwd,
                                           report_views=self.inputs.report_views)
        record["timings"]["mosaics"] = time.perf_counter() - start
        self._results["out_record"] = write_record(record, runtime.cwd)
        return runtime
