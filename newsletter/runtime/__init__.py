"""Where work runs: the dispatcher seam (in process or Celery) and long-running jobs."""
