"""Statistics, aggregation, figures and the HTML report built from an ablation results folder."""
