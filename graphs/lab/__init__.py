"""The theory and the lab: exact vote accuracy for any answer distribution (:mod:`~graphs.lab.scaling`),
the scaling law of Chen et al. (:mod:`~graphs.lab.scaling_law`), sample pools kept in SQLite and their exact
curves (:mod:`~graphs.lab.pool`), their analysis (:mod:`~graphs.lab.analysis`) and plots (:mod:`~graphs.lab.plots`).
"""
