"""The tools: the command line, training recipes, the seed lab and the benchmark harness."""
