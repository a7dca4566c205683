"""Numbers from model outputs and attention: statistics, drift, features, relation heads, patterns, scores."""
