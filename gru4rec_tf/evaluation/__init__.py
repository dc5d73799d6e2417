"""Evaluation: full-catalogue next-item ranking metrics (Recall@k, MRR@k) with tie modes."""
