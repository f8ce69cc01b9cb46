"""``mmrqa BIDS OUT group`` names each unreadable run JSON and failure record on the console and
exits 1, from the rows the group level tabulated: every valid run JSON is read once."""
from __future__ import annotations

import json
from pathlib import Path

from mmrqa_bids.cli.run import main
from mmrqa_bids.derivatives import DerivativesLayout, unreadable_outputs


def _doc(i: int) -> dict:
    name = f"sub-{i:02d}_T1w"
    return {"bids_meta": {"bids_name": name, "suffix": "T1w", "datatype": "anat",
                          "subject": f"{i:02d}"},
            "metrics": {"snr": 10.0 + i, "cnr": 3.0 + 0.1 * i},
            "grade": {"label": "Good", "probabilities": {"Good": 0.7, "Medium": 0.2, "Bad": 0.1},
                      "confidence": 0.7, "outside_training": []},
            "provenance": {"backend": "classifier", "model_id": "m"}}


def _outputs(out: Path) -> tuple[list[Path], list[Path]]:
    """(valid run JSONs, unreadable files): T1w and bold run JSONs, failure records."""
    valid = []
    for i in range(6):
        path = out / f"sub-{i:02d}" / "anat" / f"sub-{i:02d}_T1w.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(_doc(i)))
        valid.append(path)
    bad = {out / "sub-06" / "anat" / "sub-06_T1w.json": '{"bids_meta": ',
           out / "sub-07" / "anat" / "sub-07_T1w.json": json.dumps({**_doc(7), "metrics": None}),
           out / "sub-08" / "func" / "sub-08_task-rest_bold.json": "{oops",
           out / "logs" / "failed" / "sub-09_T1w.json": '{"bids_name": "sub-09_T1w", "suf',
           out / "logs" / "failed" / "sub-10_bold.json": json.dumps({"bids_name": 3})}
    for path, text in bad.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    sidecar = out / "sub-00" / "anat" / "sub-00_T1w_extra.json"  # another tool's JSON: not ours
    sidecar.write_text(json.dumps({"RepetitionTime": 2.0}))
    return valid, sorted(bad)


def test_group_names_unreadable_outputs_without_reading_the_runs_again(tmp_path, capsys,
                                                                       monkeypatch):
    bids, out = tmp_path / "bids", tmp_path / "out"
    bids.mkdir()
    (bids / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.8.0"}')
    valid, bad = _outputs(out)
    reads: dict[Path, int] = {}
    read_text = Path.read_text

    def counted(self, *args, **kwargs):
        if self.suffix == ".json" and (self in valid or self in bad):
            reads[self] = reads.get(self, 0) + 1
        return read_text(self, *args, **kwargs)

    for modalities, n_errors in ((["T1w", "bold"], 5), (["T1w"], 3)):
        reads.clear()
        capsys.readouterr()
        with monkeypatch.context() as m:
            m.setattr(Path, "read_text", counted)
            code = main([str(bids), str(out), "group", "--no-reports", "-m", *modalities])
        console = capsys.readouterr()
        assert code == 1
        # what the command line said before it took the rows from the group level: every
        # run JSON and failure record parsed again, in unreadable_outputs' order
        expected = [f"[mmrqa] ERROR unreadable: {r['error']}"
                    for r in unreadable_outputs(DerivativesLayout(out), modalities)]
        assert len(expected) == n_errors
        assert [line for line in console.err.splitlines() if "ERROR" in line] == expected
        assert "ERROR" not in console.out
        assert {reads.get(p, 0) for p in valid} == {1}  # read once, by the group level
        # the same rows in the group table, with status "unreadable"
        table = (out / "group_T1w.tsv").read_text().splitlines()
        header = table[0].split("\t")
        rows = [dict(zip(header, line.split("\t"))) for line in table[1:]]
        assert sorted(r["error"] for r in rows if r["status"] == "unreadable") == sorted(
            r["error"] for r in unreadable_outputs(DerivativesLayout(out), ["T1w"]))


def test_group_without_unreadable_outputs_exits_0(tmp_path, capsys):
    bids, out = tmp_path / "bids", tmp_path / "out"
    bids.mkdir()
    for i in range(3):
        path = out / f"sub-{i:02d}" / "anat" / f"sub-{i:02d}_T1w.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(_doc(i)))
    assert main([str(bids), str(out), "group", "--no-reports"]) == 0
    assert "ERROR" not in capsys.readouterr().err
