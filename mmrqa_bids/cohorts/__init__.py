"""Dataset-relative grading: cohorts of runs that should look alike, their robust reference
statistics, and the grade of each run against its own cohort."""
