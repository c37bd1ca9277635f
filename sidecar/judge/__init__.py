"""LLM-as-judge: sample traffic (pure), ask a judge model to score it on a rubric, compare the
scores with a baseline."""
