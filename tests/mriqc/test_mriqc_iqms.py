import pytest
from mriqc_testdata import DATA, NEW_JSON, OLD_JSON, data_dir, mriqc_site  # noqa: F401 (fixtures)

from mmrqa_bids.mriqc.iqms import (MriqcError, canonical_iqms, canonical_name, collect_mriqc,
                                   find_run_iqms, read_group_tsv, read_iqm_json)


def test_canonical_names_map_legacy_iqms():
    assert canonical_name("qi1") == "qi_1"
    assert canonical_name("snr") == "snr_total"
    assert canonical_name("summary_mean_bg") == "summary_bg_mean"
    assert canonical_name("summary_k_wm") == "summary_wm_k"
    assert canonical_name("summary_bg_mean") == "summary_bg_mean"
    assert canonical_name("snr_wm") == "snr_wm"


def test_new_name_wins_over_legacy_duplicate():
    iqms, renamed = canonical_iqms({"qi1": 1.0, "qi_1": 2.0, "cjv": "0.5", "flag": True,
                                    "x": "n/a", "bad": float("nan")})
    assert iqms == {"qi_1": 2.0, "cjv": 0.5}
    assert renamed == {}


def test_read_json_of_two_versions():
    new = read_iqm_json(NEW_JSON)
    old = read_iqm_json(OLD_JSON)
    assert new.bids_name == "sub-01_ses-1_T1w" and new.mriqc_version == "23.1.0"
    assert old.bids_name == "sub-02_T1w" and old.mriqc_version is None
    assert new.renamed == {}
    assert old.renamed["summary_mean_bg"] == "summary_bg_mean" and old.renamed["qi2"] == "qi_2"
    # Both end up under the same names; the old version never computed snrd_* nor medians.
    assert {"qi_1", "qi_2", "snr_total", "summary_bg_mean", "summary_wm_k"} <= old.iqms.keys()
    assert {"snrd_total", "summary_bg_median"} <= new.iqms.keys()
    assert not {"snrd_total", "summary_bg_median"} & old.iqms.keys()
    assert old.iqms["summary_bg_mean"] == pytest.approx(17.193)
    assert "bids_meta" not in new.iqms and "provenance" not in new.iqms


def test_read_group_tables_of_two_versions():
    new = read_group_tsv(DATA / "group_T1w_23.1.tsv", "T1w")
    old = read_group_tsv(DATA / "group_T1w_0.9.6.tsv", "T1w")
    assert [r.bids_name for r in new] == ["sub-01_ses-1_T1w", "sub-03_run-02_T1w"]
    # Old tables name runs by subject/session/run ids ("single_session" = no session).
    assert [r.bids_name for r in old] == ["sub-02_T1w", "sub-03_ses-1_run-2_T1w"]
    assert old[0].iqms["qi_1"] == pytest.approx(5.3e-6)
    assert old[0].iqms["summary_bg_mean"] == pytest.approx(17.193)
    assert new[1].iqms["snr_total"] == pytest.approx(9.8343)


def test_corrupt_json_is_a_clear_error(tmp_path):
    bad = tmp_path / "sub-01_T1w.json"
    bad.write_text('{"cjv": 0.4, ')
    with pytest.raises(MriqcError, match=r"sub-01_T1w\.json: not valid JSON"):
        read_iqm_json(bad)
    bad.write_text('{"bids_meta": {}}')
    with pytest.raises(MriqcError, match="no numeric IQMs"):
        read_iqm_json(bad)


def test_collect_skips_corrupt_json_and_reports_it(mriqc_site):
    victim = mriqc_site / "sub-03" / "anat" / "sub-03_T1w.json"
    victim.write_text("{not json")
    records, errors = collect_mriqc(mriqc_site, "T1w")
    assert len(records) == 13 and "sub-03_T1w" not in {r.bids_name for r in records}
    assert len(errors) == 1 and "sub-03_T1w.json" in errors[0]


def test_collect_old_flat_layout(tmp_path):
    from mriqc_testdata import write_site
    write_site(tmp_path, 3, template=OLD_JSON, layout="old")
    records, errors = collect_mriqc(tmp_path, "T1w")
    assert len(records) == 3 and not errors


def test_collect_without_outputs_is_an_error(tmp_path):
    with pytest.raises(MriqcError, match="no MRIQC outputs for bold"):
        collect_mriqc(tmp_path, "bold")
    with pytest.raises(MriqcError, match="does not exist"):
        collect_mriqc(tmp_path / "nope", "T1w")


def test_find_run_json_then_group_row_then_none(data_dir):
    new = data_dir / "mriqc_23.1"
    found = find_run_iqms(new, "sub-01_ses-1_T1w", "T1w", "anat",
                          {"subject": "01", "session": "1"})
    assert found is not None and found.source.endswith("sub-01_ses-1_T1w.json")
    # No JSON for sub-03, but a row in group_T1w.tsv.
    (data_dir / "group_T1w_23.1.tsv").rename(new / "group_T1w.tsv")
    row = find_run_iqms(new, "sub-03_run-02_T1w", "T1w", "anat", {"subject": "03", "run": "02"})
    assert row is not None and row.source.endswith("group_T1w.tsv:3")
    # A run present in BIDS that MRIQC never processed.
    assert find_run_iqms(new, "sub-09_T1w", "T1w", "anat", {"subject": "09"}) is None
    # Legacy flat layout.
    old = find_run_iqms(data_dir / "mriqc_0.9.6", "sub-02_T1w", "T1w", "anat", {"subject": "02"})
    assert old is not None and old.renamed


def test_find_run_with_corrupt_json_raises(tmp_path):
    path = tmp_path / "sub-01" / "anat" / "sub-01_T1w.json"
    path.parent.mkdir(parents=True)
    path.write_text("[1, 2")
    with pytest.raises(MriqcError, match="sub-01_T1w.json"):
        find_run_iqms(tmp_path, "sub-01_T1w", "T1w", "anat", {"subject": "01"})


def test_group_table_without_id_columns(tmp_path):
    table = tmp_path / "group_T1w.tsv"
    table.write_text("cjv\tcnr\n0.4\t3.1\n")
    with pytest.raises(MriqcError, match="not an MRIQC group table"):
        read_group_tsv(table)
