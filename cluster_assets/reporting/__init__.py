"""The research report and every figure: markdown, PNG plots, readable prompt text."""
