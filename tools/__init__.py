"""Developer tools: readable pipeline summary, generated document figures, suite checks."""
