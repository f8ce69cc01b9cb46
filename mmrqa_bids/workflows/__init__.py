"""Nipype workflows, built by ``init_*_wf`` factories that take settings as arguments."""
