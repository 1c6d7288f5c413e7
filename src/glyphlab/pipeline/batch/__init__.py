"""Batch jobs over files of any number: lazy sources, streaming writers, ordered parallel chunks.

The machinery is the use case's, not the model's: a job is a *source* of file paths (folders, lists, a CSV of
paths; :mod:`.sources`), a picklable *task* that turns a chunk of paths into one row per path (prediction today,
reading next), an *executor* that runs chunks in this process, in a pool of local processes or on a Dask
cluster (:mod:`.engine`, :mod:`.cluster`), and a *writer* that appends rows as they come as JSON lines, CSV or
Parquet and tells a resumed job which files are done (:mod:`.writers`). Memory stays bounded: the source is read
lazily and only a few chunks per worker are in flight.
"""
