"""Analysis of results, callable without Prefect: seed aggregation with paired comparisons,
markdown tables, figures, the DVC metric and plot views, and the whole sweep report."""
