"""Render the slice mosaics of one run."""
from __future__ import annotations

import os
import time

import numpy as np
from nipype.interfaces.base import (BaseInterfaceInputSpec, File, SimpleInterface,
                                    TraitedSpec, traits)

from mmrqa_bids.io import atomic_write_bytes
from mmrqa_bids.records import failed, read_record, write_record
from mmrqa_bids.reports import mosaics


class _RenderMosaicsInputSpec(BaseInterfaceInputSpec):
    in_record = File(exists=True, mandatory=True)
    report_views = traits.Bool(True, usedefault=True, desc="also render the report mosaics")


class _RenderMosaicsOutputSpec(TraitedSpec):
    out_record = File(exists=True)


class RenderMosaics(SimpleInterface):
    """The MLLM input mosaic and, unless reports are off, the report mosaics."""

    input_spec = _RenderMosaicsInputSpec
    output_spec = _RenderMosaicsOutputSpec

    def _run_interface(self, runtime):
        record = read_record(self.inputs.in_record)
        if not failed(record):
            start = time.perf_counter()
            vol = np.load(record["reference"])
            masks = np.load(record["masks"])
            head, background = masks["head"], masks["background"]
            images = {"mllm": mosaics.mllm_mosaic(vol, head)}
            if self.inputs.report_views:
                for view in mosaics.VIEWS:
                    images[view] = mosaics.report_mosaic(vol, head, view, background=background)
                images["background"] = mosaics.background_mosaic(vol, head)
            record["mosaics"] = {}
            for name, png in images.items():
                path = os.path.join(runtime.cwd, f"{name}.png")
                atomic_write_bytes(path, png)
                record["mosaics"][name] = path
            record["timings"]["mosaics"] = time.perf_counter() - start
        self._results["out_record"] = write_record(record, runtime.cwd)
        return runtime
