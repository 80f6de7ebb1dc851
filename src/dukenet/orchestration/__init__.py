"""Task orchestration: submission, DAG planning, input mapping, scheduling, workers, invocation."""
