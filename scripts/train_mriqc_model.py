#!/usr/bin/env python
"""Train the IQM model shipped as ``mmrqa_bids/data/mriqc_t1w_model.json``.

    pip install mriqc-learn        # provides the ABIDE and DS030 IQM tables (read in place)
    python scripts/train_mriqc_model.py [--seed 0] [--out mmrqa_bids/data/mriqc_t1w_model.json]

Selection by leave-one-site-out CV within ABIDE; the chosen model is refitted on all of ABIDE
and only then scored once on DS030 (held-out sites), which is recorded in the model card.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmrqa_bids.io import atomic_write_text
from mmrqa_bids.mriqc.train import evaluate_ds030, select_and_fit

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the ABIDE rater pick")
    parser.add_argument("--out", type=Path, default=ROOT / "mmrqa_bids/data/mriqc_t1w_model.json")
    args = parser.parse_args(argv)
    print(f"LOSO model selection on ABIDE (label seed {args.seed}):")
    model, table = select_and_fit(args.seed, verbose=True)
    chosen = model.card["chosen"]
    print(f"chosen: {chosen['kind']} C={chosen['C']}")
    test = evaluate_ds030(model)
    print("DS030 (held out, scored once): " + " ".join(f"{k} {v:.3f}" for k, v in test.items()))
    card = dict(model.card, ds030_test={k: round(float(v), 4) for k, v in test.items()})
    from dataclasses import replace
    atomic_write_text(args.out, replace(model, card=card).to_json())
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
