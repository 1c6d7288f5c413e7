"""The use cases: one function per step (run, resume, evaluate, search, audit, explain, export, robustness,
compare, read, serve, eda, report, the listings), each taking settings and returning a result.

Both front doors call them: ``glyphlab``'s commands render the results, ``import glyphlab as gl`` returns
them. They call the data readers, the models, the evaluation and the services (reports, serving, tracking);
nothing below imports from here (docs/architecture.md, tests/test_layers.py).
"""
