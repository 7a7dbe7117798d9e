"""Layer 6: the jobs users run: training, batch scoring (pandas or Spark), drift, the score history."""
