"""Celery glue: the app, the beat schedule and thin tasks that call newsletter.*."""
