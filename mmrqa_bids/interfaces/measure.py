"""Load, validate and measure one run."""
from __future__ import annotations

import os
import time

import numpy as np
from nipype.interfaces.base import (BaseInterfaceInputSpec, File, SimpleInterface,
                                    TraitedSpec, traits)

from mmrqa_bids.bids import RunSpec
from mmrqa_bids.io import RunInputError, file_checksum, load_image
from mmrqa_bids.metrics import measure
from mmrqa_bids.records import write_record


class _MeasureRunInputSpec(BaseInterfaceInputSpec):
    run = traits.Dict(mandatory=True, desc="RunSpec.to_dict() of the run")
    mriqc_dir = traits.Str(desc="MRIQC output folder whose IQMs are recorded next to mmrqa's")


class _MeasureRunOutputSpec(TraitedSpec):
    out_record = File(exists=True, desc="run record with metrics and mask paths")


class MeasureRun(SimpleInterface):
    """Validate the image, compute the head/background masks and every metric."""

    input_spec = _MeasureRunInputSpec
    output_spec = _MeasureRunOutputSpec

    def _run_interface(self, runtime):
        run = RunSpec.from_dict(self.inputs.run)
        record = {"run": run.to_dict(), "error": None, "timings": {}}
        start = time.perf_counter()
        try:
            record["checksum"] = file_checksum(run.path)
            img, data = load_image(run.path, run.suffix)
            result = measure(data, run.suffix, img.header.get_zooms())
        except (RunInputError, OSError) as exc:
            record["error"] = " ".join(str(exc).split())
        else:
            record["metrics"] = result.metrics
            if self.inputs.mriqc_dir:
                from mmrqa_bids.mriqc.participant import run_iqms
                iqms, record["mriqc"] = run_iqms(self.inputs.mriqc_dir, run)
                record["metrics"] = {**result.metrics, **iqms}
                if record["mriqc"]["note"]:
                    print(f"[mmrqa] NOTE {run.bids_name}: {record['mriqc']['note']}", flush=True)
            record["shape"] = list(data.shape)
            record["zooms"] = [float(z) for z in img.header.get_zooms()[:3]]
            ref = os.path.join(runtime.cwd, "reference.npy")
            masks = os.path.join(runtime.cwd, "masks.npz")
            np.save(ref, result.reference.astype(np.float32))
            np.savez_compressed(masks, head=result.head, background=result.background)
            record["reference"], record["masks"] = ref, masks
        record["timings"]["measure"] = time.perf_counter() - start
        if not record["error"]:
            print(f"[mmrqa] measured {run.bids_name} in {record['timings']['measure']:.1f} s",
                  flush=True)
        self._results["out_record"] = write_record(record, runtime.cwd)
        return runtime
