"""Orchestration: a run (train, evaluate, leaderboard, report), a hyper-parameter search, scoring saved models.

It calls the data readers, the models and the evaluation; nothing below it imports from here.
"""
