import csv
import json

from mriqc_testdata import mriqc_site, site_model, write_site  # noqa: F401 (fixture)

from mmrqa_bids.cli.mriqc import main


def read_tsv(path):
    return list(csv.DictReader(path.read_text().splitlines(), delimiter="\t"))


def test_grades_mriqc_folder(mriqc_site, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(mriqc_site), str(out)]) == 0
    rows = read_tsv(out / "group_T1w.tsv")
    assert len(rows) == 14
    assert list(rows[0])[:12] == ["bids_name", "grade", "p_good", "p_medium", "p_bad",
                                  "confidence", "basis", "cohort", "cohort_size", "model_grade",
                                  "drivers", "missing_iqms"]
    assert {r["grade"] for r in rows} <= {"Good", "Medium", "Bad"}
    assert "cjv" in rows[0] and "size_x" not in rows[0]
    html = (out / "group_T1w.html").read_text()
    assert "sub-01_T1w" in html and "mriqc-iqm-" in html
    assert "14 run(s) graded" in capsys.readouterr().out


def test_group_table_input_and_html_escaping(tmp_path):
    mriqc = tmp_path / "mriqc"
    names = write_site(mriqc, 12)
    # Turn the JSONs into one MRIQC group table, with a hostile run name.
    docs = [json.loads(p.read_text()) for p in sorted(mriqc.glob("sub-*/anat/*.json"))]
    keys = [k for k in docs[0] if not isinstance(docs[0][k], dict)]
    lines = ["\t".join(["bids_name"] + keys)]
    for i, (name, doc) in enumerate(zip(names, docs)):
        name = "sub-99<script>alert(1)</script>_T1w" if i == 0 else name
        lines.append("\t".join([name] + [str(doc[k]) for k in keys]))
    (mriqc / "group_T1w.tsv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main([str(mriqc), str(out)]) == 0
    html = (out / "group_T1w.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html


def test_corrupt_json_skipped_with_exit_1(mriqc_site, tmp_path, capsys):
    (mriqc_site / "sub-02" / "anat" / "sub-02_T1w.json").write_text("{")
    out = tmp_path / "out"
    assert main([str(mriqc_site), str(out)]) == 1
    assert len(read_tsv(out / "group_T1w.tsv")) == 13
    assert "sub-02_T1w.json: not valid JSON" in capsys.readouterr().err
    assert "Skipped" in (out / "group_T1w.html").read_text()


def test_refusals_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    few = tmp_path / "few"
    write_site(few, 4)
    model = tmp_path / "site_model.json"
    model.write_text(site_model(("site",)).to_json())
    assert main([str(few), str(tmp_path / "out"), "--model", str(model)]) == 2
    assert "needs at least 10 runs" in capsys.readouterr().err
    lacking = tmp_path / "lacking"
    lacking.mkdir()
    rows = ["bids_name\tcjv\tcnr"] + [f"sub-{i:02d}_T1w\t0.{i + 10}\t3.{i}" for i in range(12)]
    (lacking / "group_T1w.tsv").write_text("\n".join(rows) + "\n")
    assert main([str(lacking), str(tmp_path / "out")]) == 2
    assert "too few of the IQMs the model needs" in capsys.readouterr().err


def test_bold_is_not_graded_by_the_t1w_model(mriqc_site, tmp_path, capsys):
    (mriqc_site / "group_bold.tsv").write_text("bids_name\ttsnr\nsub-01_task-rest_bold\t40\n")
    assert main([str(mriqc_site), str(tmp_path / "out")]) == 0
    assert "bold: not graded" in capsys.readouterr().out
    assert not (tmp_path / "out" / "group_bold.tsv").exists()
