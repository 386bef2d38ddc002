"""Terminal summaries and reports."""
