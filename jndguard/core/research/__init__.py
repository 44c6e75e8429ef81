"""Research tooling (Qt-free): method comparisons in the papers' Table 1 layout, figures and
analysis maps."""
