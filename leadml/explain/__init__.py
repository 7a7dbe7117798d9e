"""Layer 5: what people read: reason sentences, counterfactuals, one lead explained, trends, HTML reports."""
