"""Where runs are stored and trained: the on-disk cache and the local and Ray executors."""
